/**
 * Moving a store between a data folder and PostgreSQL with the real command
 * (`node dist/scripts/store-transfer.js`, what `npm run store:transfer` runs) on a real server:
 * a dry run reports and writes nothing; the move carries every mapping, meta value and failed
 * entry; moving back into an empty folder gives the same store; a second run finds nothing to do;
 * a conflict stops the move before anything is written; a wrong password is a clear error.
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
