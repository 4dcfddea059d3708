/**
 * Moving a store between a data folder and PostgreSQL with the real command
 * (`node dist/scripts/store-transfer.js`, what `npm run store:transfer` runs) on a real server:
 * a dry run reports and writes nothing; the move carries every mapping, meta value, failed entry
 * and queue job (attempts, next-run time, dependencies, data, trigger); moving back into an empty
 * folder gives the same store; a second run finds nothing to do; a job whose record waits in the
 * target merges into it; jobs in flight stop the move; a conflict stops the move before anything is
 * written; a wrong password is a clear error.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Pool } from 'pg';
import { FileFailedBackend } from '../../../lib/oplog/file-failed-backend';
import { FAILED_FILE } from '../../../lib/oplog/oplog';
import { PgFailedList } from '../../../lib/oplog/pg-failed-list';
import { openPool } from '../../../lib/pg/db';
import { mappingFileIn } from '../../../lib/store/data-folder';
import { FileMappingBackend } from '../../../lib/store/file-mapping-backend';
import type { MappingBackend } from '../../../lib/store/mapping-backend';
import { PgMappingStore } from '../../../lib/store/pg-mapping-store';
import { PgQueue } from '../../../lib/queue/pg-queue';
import type { QueueBackend } from '../../../lib/queue/queue-backend';
import { SyncQueue } from '../../../lib/queue/sync-queue';
import { main } from '../../../scripts/store-transfer';
import { PgServer } from '../../../testkit/postgres';
import { guid, makeTempDir, removeDir } from '../../fixtures/store-helpers';
import { BUILD_ROOT } from '../../helpers/paths';

const CLI = path.join(BUILD_ROOT, 'scripts', 'store-transfer.js');
const A = '11111111-2222-4333-8444-555555555555';
const B = '66666666-7777-4888-9999-aaaaaaaaaaaa';

function run(args: string[], env: Record<string, string>): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH ?? '', ...env }, timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err ? ((err as { code?: number }).code ?? 1) : 0;
      resolve({ code: typeof code === 'number' ? code : 1, out: stdout + stderr });
    });
  });
}

/** A data folder with contacts (two sharing a customer number), a quote with facts, a cursor and two failed entries. */
async function seedFolder(dir: string): Promise<void> {
  const m = await FileMappingBackend.open(mappingFileIn(dir));
  await m.store({ entityType: 'contact', crmId: guid(1), siaghCode: '101', customerNumber: '7001', checksum: 'c1', source: 'import', syncedAt: '2026-01-01T00:00:00Z' });
  await m.store({ entityType: 'contact', crmId: guid(2), siaghCode: '102', customerNumber: '7001', source: 'webhook', syncedAt: '2026-01-02T00:00:00Z' });
  await m.store({ entityType: 'quote', crmId: guid(3), siaghCode: '5001', source: 'webhook', extra: { returnCode: 77, documentNumber: '5001' } });
  await m.store({ entityType: 'invoice', crmId: guid(4), siaghCode: 'F-9', source: 'poll' });
  await m.store({ entityType: 'contact', crmId: guid(1), siaghCode: '101', customerNumber: '7001', checksum: 'c2', source: 'replay', syncedAt: '2026-01-03T00:00:00Z' }); // written last
  await m.setMeta('poll:identity', { since: '2026-01-03T00:00:00.000Z', overlapMs: 60000 });
  await m.setMeta('create:quote:x', 'started');
  await m.close();
  const f = await FileFailedBackend.open(path.join(dir, FAILED_FILE));
  await f.recordFailure({ event: { type: 'Identity', id: A, event: 'Update' }, entity: 'organization', code: 'LINK_NEEDS_REVIEW', message: 'two candidates', review: { code: 'LINK_NEEDS_REVIEW', siagh: { code: 12 } } });
  await f.recordFailure({ event: { type: 'Quote', id: B, event: 'Insert' }, code: 'HTTP_5XX', message: 'm' });
  await f.recordFailure({ event: { type: 'Quote', id: B, event: 'Update' }, code: 'HTTP_5XX', message: 'm2' });
  await f.markReplayed([`quote:${B}`]);
  await f.close();
}

/** Queue jobs in a folder: a retrying identity, a quote waiting for its customer, the customer's job, a plain one. */
async function seedQueue(dir: string): Promise<void> {
  const q = await SyncQueue.open(dir, { policy: { baseMs: 600_000, maxMs: 600_000 } });
  try {
    await q.enqueue({ type: 'Identity', id: guid(1), event: 'Insert', subtype: 'حقیقی', kind: 'person' }, { trigger: 'poll', data: { extraCount: 1 } });
    let [t] = await q.take(1);
    await q.fail(t.job.id, t.token, { kind: 'transient', code: 'HTTP_5XX', message: 'Siagh answered 503', retryAfterMs: 3_600_000 });
    await q.enqueue({ type: 'Quote', id: B, event: 'Insert' });
    [t] = await q.take(1);
    assert.equal(t.job.key, `quote:${B}`);
    await q.fail(t.job.id, t.token, { kind: 'dependency', code: 'CUSTOMER_NOT_MAPPED', message: 'sync the customer first', dependency: { type: 'Identity', id: guid(5), event: 'Update' } });
    await q.enqueue({ type: 'Identity', id: guid(6), event: 'Update' }, { data: { linkDecision: { decision: 'separate', crmId: guid(6) } } });
  } finally {
    await q.release();
  }
}

/** The jobs of a queue, without the lease flag, as plain JSON (oldest first). */
async function jobsOf(q: QueueBackend) {
  return (await q.list()).map(({ active: _a, ...j }) => JSON.parse(JSON.stringify(j)) as Record<string, unknown>);
}

async function folderJobs(dir: string) {
  const q = await SyncQueue.open(dir);
  try {
    return await jobsOf(q);
  } finally {
    await q.release();
  }
}

/** Everything a store holds, for comparing two of them. */
async function contents(m: MappingBackend, failed: { all(): Promise<unknown[]> }) {
  const plain = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;
  return {
    list: plain(await m.list()),
    meta: await m.metaEntries(),
    byCustomer: (await m.lookupAllByCustomerNumber('7001')).map((r) => r.crmId),
    failed: plain(await failed.all()),
  };
}

async function folderContents(dir: string) {
  const m = await FileMappingBackend.open(mappingFileIn(dir));
  const f = await FileFailedBackend.open(path.join(dir, FAILED_FILE));
  try {
    return await contents(m, f);
  } finally {
    await m.close();
    await f.close();
  }
}

describe('store transfer: a data folder into PostgreSQL and back (real server, real command)', function () {
  this.timeout(120_000);
  let server: PgServer;
  const dirs: string[] = [];
  const pools: Pool[] = [];
  const dir = () => {
    const d = makeTempDir();
    dirs.push(d);
    return d;
  };
  const pgContents = async (url: string) => {
    const p = openPool({ connectionString: url });
    pools.push(p);
    return contents(await PgMappingStore.open(p), await PgFailedList.open(p, { maxAgeDays: 0 }));
  };
  const tables = async (url: string) => {
    const p = openPool({ connectionString: url });
    pools.push(p);
    const r = await p.query<{ n: string }>("SELECT count(*) AS n FROM pg_tables WHERE schemaname = 'public'");
    return Number(r.rows[0].n);
  };

  before(async () => {
    server = await PgServer.start();
  });
  afterEach(async () => {
    await Promise.all(pools.splice(0).map((p) => p.end().catch(() => undefined)));
    for (const d of dirs.splice(0)) removeDir(d);
  });
  after(async () => {
    await server?.close();
  });

  it('dry run, move, second run, and back into an empty folder: the same mappings, order, meta and failed list', async () => {
    const src = dir();
    await seedFolder(src);
    const original = await folderContents(src);
    assert.equal(original.list.length, 4);
    assert.equal(original.failed.length, 2);
    const url = await server.database();
    const env = { DATABASE_URL: url };

    const dry = await run(['--from', `file:${src}`, '--to', 'postgres', '--dry-run'], env);
    assert.equal(dry.code, 0, dry.out);
    assert.match(dry.out, /Dry run: file:.* → postgres/);
    assert.match(dry.out, /mappings: +4 \(4 new, 0 replaced, 0 already there\)/);
    assert.match(dry.out, /meta values: 2 \(2 new/);
    assert.match(dry.out, /failed list: 2 \(2 new/);
    assert.match(dry.out, /Nothing was written/);
    assert.equal(await tables(url), 0, 'the dry run created no table');

    const moved = await run(['--from', `file:${src}`, '--to', 'postgres'], env);
    assert.equal(moved.code, 0, moved.out);
    assert.match(moved.out, /Written\./);
    assert.deepEqual(await pgContents(url), original);
    assert.deepEqual(original.byCustomer, [guid(2), guid(1)], 'guid(1) was written last: guid(2) stays the oldest');

    const again = await run(['--from', `file:${src}`, '--to', 'postgres'], env);
    assert.equal(again.code, 0, again.out);
    assert.match(again.out, /mappings: +4 \(0 new, 0 replaced, 4 already there\)/);
    assert.match(again.out, /Nothing to write/);

    const back = path.join(dir(), 'restored');
    const dryBack = await run(['--from', 'postgres', '--to', `file:${back}`, '--dry-run'], env);
    assert.equal(dryBack.code, 0, dryBack.out);
    assert.equal(fs.existsSync(back), false, 'the dry run made no folder');
    const home = await run(['--from', 'postgres', '--to', `file:${back}`], env);
    assert.equal(home.code, 0, home.out);
    assert.deepEqual(await folderContents(back), original);
  });

  it('queue jobs: file → PostgreSQL (a waiting job there merges), a second run adds nothing, and back into an empty folder', async () => {
    const src = dir();
    await seedFolder(src);
    await seedQueue(src);
    const jobs = await folderJobs(src);
    assert.equal(jobs.length, 4);
    const url = await server.database();
    const env = { DATABASE_URL: url };

    const dry = await run(['--from', `file:${src}`, '--to', 'postgres', '--dry-run'], env);
    assert.equal(dry.code, 0, dry.out);
    assert.match(dry.out, /queue jobs: +4 \(4 new, 0 merged into a waiting job of their record, 0 already there\)/);
    assert.equal(await tables(url), 0, 'the dry run created no table');

    // An instance on the database already waits to sync guid(6): the moved job merges into it.
    const live = await PgQueue.connect({ connectionString: url });
    let mine: string;
    try {
      mine = (await live.enqueue({ type: 'Identity', id: guid(6), event: 'Update' }, { data: { extraCount: 3 } })).job.id;
    } finally {
      await live.release();
    }
    const moved = await run(['--from', `file:${src}`, '--to', 'postgres'], env);
    assert.equal(moved.code, 0, moved.out);
    assert.match(moved.out, /queue jobs: +4 \(3 new, 1 merged into a waiting job of their record, 0 already there\)/);
    const pg = await PgQueue.connect({ connectionString: url });
    let inPg: Record<string, unknown>[];
    try {
      inPg = await jobsOf(pg);
      const byId = new Map(inPg.map((j) => [j.id, j]));
      for (const j of jobs.filter((x) => x.key !== `identity:${guid(6)}`)) assert.deepEqual(byId.get(j.id as string), j, `job ${String(j.key)} field for field`);
      const merged = inPg.find((j) => j.key === `identity:${guid(6)}`)!;
      assert.equal(merged.id, mine!, 'merged into the waiting job');
      assert.equal(merged.merged, 1);
      assert.deepEqual(merged.data, { extraCount: 3, linkDecision: { decision: 'separate', crmId: guid(6) } });
      assert.equal(inPg.length, 4);
      // The moved jobs keep their meaning: the quote waits for its customer; the retry waits out its backoff.
      const st = await pg.stats();
      assert.deepEqual([st.blocked, st.retrying, st.total], [1, 1, 4]);
      const ready = await pg.take(10);
      assert.deepEqual(ready.map((t) => t.job.key).sort(), [`identity:${guid(5)}`, `identity:${guid(6)}`].sort());
      for (const t of ready) await pg.complete(t.job.id, t.token);
      await pg.enqueue({ type: 'Identity', id: guid(5), event: 'Update' }); // the customer is waiting again: the quote stays blocked
      inPg = await jobsOf(pg);
    } finally {
      await pg.release();
    }

    const again = await run(['--from', `file:${src}`, '--to', 'postgres', '--dry-run'], env);
    // guid(6)'s job was done there since: it is new again; guid(5)'s waiting job there already says what the moved one says.
    assert.match(again.out, /queue jobs: +4 \(1 new, 0 merged into a waiting job of their record, 3 already there\)/);
    const src2 = dir();
    await seedFolder(src2);
    const none = await run(['--from', `file:${src2}`, '--to', 'postgres'], env);
    assert.equal(none.code, 0, none.out);
    assert.match(none.out, /queue jobs: +0 \(0 new/, 'a folder without a queue moves no jobs');

    const back = path.join(dir(), 'restored');
    const home = await run(['--from', 'postgres', '--to', `file:${back}`], env);
    assert.equal(home.code, 0, home.out);
    assert.match(home.out, /queue jobs: +3 \(3 new, 0 merged/);
    assert.deepEqual(await folderJobs(back), inPg, 'the same jobs, field for field, in the same order');
    const twice = await run(['--from', 'postgres', '--to', `file:${back}`], env);
    assert.match(twice.out, /queue jobs: +3 \(0 new, 0 merged into a waiting job of their record, 3 already there\)/);
    assert.match(twice.out, /Nothing to write/);
  });

  it('jobs in flight in the source stop the move until the instance stops; a lease of a killed instance that ran out moves as waiting', async () => {
    const url = await server.database();
    const env = { DATABASE_URL: url };
    const src = dir();
    await seedFolder(src);
    assert.equal((await run(['--from', `file:${src}`, '--to', 'postgres'], env)).code, 0);

    const running = await PgQueue.connect({ connectionString: url });
    await running.enqueue({ type: 'Identity', id: guid(7), event: 'Update' });
    await running.enqueue({ type: 'Identity', id: guid(8), event: 'Update' });
    const [held] = await running.take(1);
    const back = path.join(dir(), 'restored');
    for (const args of [['--dry-run'], []]) {
      const r = await run(['--from', 'postgres', '--to', `file:${back}`, ...args], env);
      assert.equal(r.code, 1, r.out);
      assert.match(r.out, /1 job\(s\) in flight in postgres: an instance is working on them, so nothing was written/);
      assert.match(r.out, /Stop every Node-RED instance that uses it/);
    }
    assert.deepEqual(await folderJobs(back), [], 'no job was moved');
    await running.release(); // a stopped instance gives its jobs back
    let r = await run(['--from', 'postgres', '--to', `file:${back}`], env);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /queue jobs: +2 \(2 new/);

    // A killed instance: its lease runs out, and no instance is left to sweep it.
    const killed = await PgQueue.connect({ connectionString: url }, { policy: { leaseMs: 200 } });
    await killed.enqueue({ type: 'Identity', id: guid(9), event: 'Update' });
    const [lost] = (await killed.take(5)).filter((t) => t.job.key === `identity:${guid(9)}`);
    assert.ok(lost && lost.job.id !== held.job.id);
    await (killed as unknown as { pool: { end(): Promise<void> } }).pool.end();
    await new Promise((res) => setTimeout(res, 400));
    r = await run(['--from', 'postgres', '--to', `file:${back}`], env);
    assert.equal(r.code, 0, r.out);
    const moved = (await folderJobs(back)).find((j) => j.id === lost.job.id);
    assert.equal(moved?.attempts, 0, 'moved as waiting, its attempts as they were');
    await killed.release().catch(() => undefined);
  });

  it('a conflict (the two stores disagree about a record) is reported and nothing is written; a changed checksum is replaced', async () => {
    const src = dir();
    await seedFolder(src);
    const url = await server.database();
    const p = openPool({ connectionString: url });
    pools.push(p);
    const target = await PgMappingStore.open(p);
    await target.store({ entityType: 'contact', crmId: guid(9), siaghCode: '101', source: 'manual' }); // code 101 is guid(1)'s in the folder
    await target.store({ entityType: 'invoice', crmId: guid(4), siaghCode: 'F-10', source: 'manual' }); // guid(4) is F-9 in the folder
    await target.store({ entityType: 'contact', crmId: guid(2), siaghCode: '102', customerNumber: '7001', source: 'webhook', checksum: 'other', syncedAt: '2026-01-02T00:00:00Z' });
    const before = await target.list();

    for (const args of [['--dry-run'], []]) {
      const r = await run(['--from', `file:${src}`, '--to', 'postgres', ...args], { DATABASE_URL: url });
      assert.equal(r.code, 1, r.out);
      assert.match(r.out, /2 conflict\(s\)/);
      assert.match(r.out, new RegExp(`contact ${guid(1)} → Siagh 101: the target maps this Siagh code to CRM id ${guid(9)}`));
      assert.match(r.out, new RegExp(`invoice ${guid(4)} → Siagh F-9: the target maps this CRM invoice to Siagh code F-10`));
      assert.match(r.out, /mappings: +4 \(1 new, 1 replaced, 0 already there\)/);
    }
    assert.deepEqual(await target.list(), before, 'nothing was written');
    assert.deepEqual(await target.metaEntries(), {});

    // the operator decides: the folder is right; the wrong mappings go, and the move goes through
    await target.delete('contact', guid(9));
    await target.delete('invoice', guid(4));
    const r = await run(['--from', `file:${src}`, '--to', 'postgres'], { DATABASE_URL: url });
    assert.equal(r.code, 0, r.out);
    assert.equal((await target.lookup('contact', guid(2)))?.checksum, undefined, 'the source’s record replaced the differing one');
    assert.equal((await target.lookup('invoice', guid(4)))?.siaghCode, 'F-9');
  });

  it('bad input: a wrong password, no DATABASE_URL, a folder without a store, and wrong arguments are clear errors', async () => {
    const src = dir();
    await seedFolder(src);
    const url = await server.database();
    const wrong = await run(['--from', `file:${src}`, '--to', 'postgres'], { DATABASE_URL: url, DATABASE_PASSWORD: 'wrong-secret-pw' });
    assert.equal(wrong.code, 1);
    assert.match(wrong.out, /refused the login: check the user and password/);
    assert.ok(!wrong.out.includes('wrong-secret-pw'), 'the password is not printed');
    const none = await run(['--from', `file:${src}`, '--to', 'postgres'], {});
    assert.equal(none.code, 1);
    assert.match(none.out, /Set DATABASE_URL/);
    const empty = dir();
    const nothing = await run(['--from', `file:${empty}`, '--to', 'postgres', '--dry-run'], { DATABASE_URL: url });
    assert.equal(nothing.code, 1);
    assert.match(nothing.out, /holds no store \(no mappings\.json\)/);
    assert.deepEqual(fs.readdirSync(empty), [], 'nothing was created in it');

    const lines: string[] = [];
    assert.equal(await main([], {}, (l) => lines.push(l)), 2);
    assert.match(lines.join('\n'), /--from is missing[\s\S]*Usage: npm run store:transfer/);
    assert.equal(await main(['--from', 'postgres', '--to', 'postgres'], {}, () => undefined), 2);
    assert.equal(await main(['--from', 'mysql://x', '--to', 'postgres'], {}, () => undefined), 2);
    assert.equal(await main(['--help'], {}, () => undefined), 0);
  });
});
