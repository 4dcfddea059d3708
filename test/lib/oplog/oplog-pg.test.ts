/**
 * OpLog on a PostgreSQL failed list (a real server from testkit/postgres.ts): two OpLogs, each with
 * its own data folder and its own pool, as two Node-RED instances would have them, see one failed
 * list. A failure recorded by one is listed, replayed and resolved through the other, a later
 * success on one removes the other's entry, and the console's failure groups show it; the list
 * survives both instances stopping and the server restarting; a failure recorded while the
 * database is away is kept and written when it answers; one still waiting when the OpLog closes is
 * reported lost, never dropped in silence; the bounds' drops reach the drop listener.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Pool } from 'pg';
import * as consoleView from '../../../lib/console/console';
import { describeOperation } from '../../../lib/oplog/entry';
import type { DropReport } from '../../../lib/oplog/failed-list';
import { FailedWriteError, OpLog } from '../../../lib/oplog/oplog';
import { PgFailedList } from '../../../lib/oplog/pg-failed-list';
import { openPool } from '../../../lib/pg/db';
import { PgServer } from '../../../testkit/postgres';

const A = '11111111-2222-4333-8444-555555555555';
const B = '66666666-7777-4888-9999-aaaaaaaaaaaa';
const C = 'bbbbbbbb-cccc-4ddd-8eee-ffffffffffff';

const failedOp = (id: string, code: string, review?: Record<string, unknown>) =>
  describeOperation({ trace: { traceId: `t-${id}`, trigger: 'webhook', entity: 'person', crmId: id, action: 'failed', error: { code, message: `${code} for ${id}` } }, review });
const synced = (id: string) => describeOperation({ trace: { traceId: `s-${id}`, trigger: 'webhook', entity: 'person', crmId: id, action: 'updated' } });

describe('oplog: OpLog on PostgreSQL (one failed list for every instance, real server)', function () {
  this.timeout(120_000);
  let server: PgServer;
  const pools: Pool[] = [];
  const logs: OpLog[] = [];
  const dirs: string[] = [];

  before(async () => {
    server = await PgServer.start();
  });
  after(async () => {
    await server?.close();
  });
  afterEach(async () => {
    for (const l of logs.splice(0)) await l.release().catch(() => undefined);
    for (const p of pools.splice(0)) await p.end().catch(() => undefined);
    for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
  });

  /** One "instance": its own data folder, its own pool and list on the shared database. */
  async function instance(url: string, limits: { maxEntries?: number } = {}): Promise<{ log: OpLog; list: PgFailedList; dir: string }> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'oplog-pg-'));
    dirs.push(dir);
    const pool = openPool({ connectionString: url }, () => undefined);
    pools.push(pool);
    const list = await PgFailedList.open(pool);
    const log = await OpLog.acquire(dir, { flushMs: 0, ...limits, failed: { backend: list, where: 'PostgreSQL test' } });
    logs.push(log);
    return { log, list, dir };
  }

  it('a failure recorded on one instance is listed, replayed and resolved through the other; a success on either removes it', async () => {
    const url = await server.database();
    const one = await instance(url);
    const two = await instance(url);
    assert.notEqual(one.log, two.log, 'two OpLogs (two data folders)');

    const r = await one.log.record(failedOp(A, 'HTTP_5XX'));
    assert.equal(r.entry?.attempts, 1);
    await one.log.record(failedOp(B, 'LINK_NEEDS_REVIEW', { code: 'LINK_NEEDS_REVIEW', crm: { name: 'شرکت' }, siagh: { code: 8301 } }));
    assert.equal((await two.log.record(failedOp(A, 'HTTP_5XX'))).entry?.attempts, 2, 'the second instance counts on the first one’s entry');

    assert.equal(await two.log.failedCount(), 2);
    assert.equal((await two.log.snapshot()).failed, 2);
    assert.deepEqual((await two.log.failed.all()).map((e) => e.key), [`identity:${A}`, `identity:${B}`]);
    const groups = await consoleView.failures({ log: two.log });
    assert.deepEqual(
      groups.groups.map((g) => [g.code, g.count, g.review]),
      [
        ['LINK_NEEDS_REVIEW', 1, true],
        ['HTTP_5XX', 1, false],
      ],
      'the console of the other instance groups them',
    );
    assert.equal((await consoleView.now({ log: two.log })).failed, 2);

    // Replay through the other instance: the blanket replay skips the review item.
    assert.deepEqual((await two.log.takeForReplay({ all: true })).map((e) => e.event.id), [A]);
    assert.equal((await one.log.failed.get(`identity:${A}`))?.replays, 1, 'the replay is marked where both see it');
    const item = await two.log.reviewItem(B);
    assert.equal((item.review as { siagh: { code: number } }).siagh.code, 8301);
    await two.log.markReplayed([item.key]);
    assert.equal((await one.log.failed.get(item.key))?.replays, 1);

    // A later success on either instance takes the entry off for both.
    assert.deepEqual(await two.log.record(synced(A)), { removed: true });
    assert.deepEqual(await one.log.record(synced(B)), { removed: true });
    assert.equal(await one.log.failedCount(), 0);
    assert.equal((await consoleView.failures({ log: one.log })).total, 0);
    // The log lines stay per instance, in each data folder.
    await one.log.flush();
    await two.log.flush();
    const lines = (d: string) => fs.readFileSync(path.join(d, 'sync-log.jsonl'), 'utf8').trim().split('\n').length;
    assert.deepEqual([lines(one.dir), lines(two.dir)], [3, 2]);
    assert.ok(!fs.existsSync(path.join(one.dir, 'failed.json')), 'no failed.json in the folder of a postgres store');
  });

  it('the failed list survives both instances stopping and the server restarting', async () => {
    const url = await server.database();
    const one = await instance(url);
    await one.log.record(failedOp(C, 'CRM_NOT_FOUND'));
    for (const l of logs.splice(0)) await l.release();
    for (const p of pools.splice(0)) await p.end();
    server.restart();
    const again = await instance(url);
    const all = await again.log.failed.all();
    assert.deepEqual(
      all.map((e) => [e.key, e.reason.code, e.attempts]),
      [[`identity:${C}`, 'CRM_NOT_FOUND', 1]],
    );
    assert.deepEqual((await again.log.takeForReplay({ crmId: C })).map((e) => e.event.id), [C]);
  });

  it('a failure recorded while the database is away is kept, said once, and written when it answers; one still waiting at close is reported lost', async () => {
    const url = await server.database();
    const one = await instance(url);
    const errors: FailedWriteError[] = [];
    let told: () => void = () => undefined;
    const firstError = new Promise<void>((resolve) => (told = resolve));
    one.log.onError((e) => {
      if (e instanceof FailedWriteError) errors.push(e);
      told();
    });
    server.stop();
    try {
      const pending = one.log.record(failedOp(A, 'HTTP_5XX'));
      await firstError;
      assert.equal(errors.length, 1);
      assert.equal(errors[0].lost, false);
      assert.match(errors[0].message, /identity:1111.*kept in memory and written again/);
      server.start();
      const r = await pending;
      assert.equal(r.entry?.attempts, 1, 'written once the database answered');
    } finally {
      try {
        server.start();
      } catch {
        // already running
      }
    }
    assert.equal(errors.length, 1, 'told once, not at every try');
    assert.equal((await one.log.failed.get(`identity:${A}`))?.reason.code, 'HTTP_5XX');

    // Away again, and the OpLog closes (a redeploy) before it answers: one last try, then "lost".
    server.stop();
    try {
      const pending = one.log.record(failedOp(B, 'HTTP_5XX'));
      await one.log.release();
      logs.splice(logs.indexOf(one.log), 1);
      assert.deepEqual(await pending, {});
      const lost = errors.find((e) => e.lost);
      assert.ok(lost, 'reported lost');
      assert.equal(lost.key, `identity:${B}`);
      assert.match(lost.message, /is not in the failed list .*sync-log\.jsonl.*send the record again/);
    } finally {
      server.start();
    }
    const fresh = await instance(url);
    assert.deepEqual((await fresh.log.failed.all()).map((e) => e.key), [`identity:${A}`]);
  });

  it('the bounds’ drops reach the drop listener of an OpLog on the shared list', async () => {
    const url = await server.database();
    const one = await instance(url, { maxEntries: 1 });
    const drops: DropReport[] = [];
    one.log.onDrop((r) => drops.push(r));
    await one.log.record(failedOp(A, 'HTTP_5XX'));
    await one.log.record(failedOp(B, 'HTTP_5XX'));
    assert.deepEqual(
      drops.map((d) => [d.why, d.count, d.keys]),
      [['count', 1, [`identity:${A}`]]],
    );
    assert.equal(one.log.failed.dropped, 1);
    assert.deepEqual((await one.log.failed.all()).map((e) => e.key), [`identity:${B}`]);
  });

  it('refuses a data folder already open with another failed list (CONFIG)', async () => {
    const url = await server.database();
    const one = await instance(url);
    await assert.rejects(OpLog.acquire(one.dir, {}), (e: { code?: string; message?: string }) => e.code === 'CONFIG' && /already used by a sync-log node whose failed list is PostgreSQL test/.test(String(e.message)));
  });
});
