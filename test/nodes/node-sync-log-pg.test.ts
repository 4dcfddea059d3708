/**
 * sync-log on a PostgreSQL sync-store in the real Node-RED runtime, against a real throwaway server
 * (testkit/postgres.ts). Two sync-log nodes, each on its own sync-store (its own data folder and
 * its own connection pool: the second URL names another application) on one database, stand for
 * two instances: they see one failed list. A failure caught by one is listed, replayed and resolved
 * through the other, a later success on one takes the other's entry off, the console's failure
 * groups show it; the list survives a redeploy with PostgreSQL restarted; a failure while the
 * database is away is written when it is back, and one still waiting at a redeploy is an error;
 * the bounds' drops reach the node's warning, with no password in it.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { PgServer } from '../../testkit/postgres';
import { collect, helper, n, nodeModule, tab, tmpDir, waitFor } from '../helpers/node-env';

const A0 = randomUUID();
const NODES = () => ['sync-store', 'sync-log', 'sync-console'].map(nodeModule);

function trace(over: Record<string, unknown> = {}): Record<string, unknown> {
  return { traceId: randomUUID().slice(0, 8), attempts: 0, durationMs: 5, startedAt: Date.now() - 20, warnings: [], ...over };
}

/** A message as a Catch node hands it over after a node of this package failed. */
function caughtMsg(crmId: string, code: string, message: string, review?: Record<string, unknown>) {
  return {
    payload: { event: 'Update', id: crmId, type: 'Identity' },
    sync: trace({ trigger: 'webhook', event: 'Update', entity: 'person', crmId, action: 'failed', error: { code, message } }),
    error: { message: `SyncError: ${message}`, code, source: { id: 'somewhere', type: review ? 'siagh-upsert' : 'crm-fetch', name: '', count: 1 } },
    ...(review ? { review } : {}),
  };
}

function okMsg(crmId: string) {
  return { payload: { crmId, kind: 'person' }, sync: trace({ trigger: 'webhook', event: 'Update', entity: 'person', crmId, siaghCode: '1204', action: 'updated', attempts: 1 }) };
}

describe('sync-log on PostgreSQL: one failed list for every instance (Node-RED runtime, real server)', function () {
  this.timeout(90_000);
  let server: PgServer;
  let bare: string;
  let password: string;
  let dirs: string[];
  const out: Record<string, any[]> = {};
  const replays: Record<string, any[]> = {};
  const warnings: string[] = [];
  const errors: string[] = [];
  const statuses: Record<string, string[]> = {};

  before(async () => {
    server = await PgServer.start();
  });
  after(async () => {
    await server?.close();
  });
  beforeEach(async () => {
    const u = new URL(await server.database());
    password = decodeURIComponent(u.password);
    u.password = '';
    bare = u.toString();
    dirs = [tmpDir('sync-log-pg-1-'), tmpDir('sync-log-pg-2-')];
    helper.settings({ userDir: tmpDir('sync-log-pg-user-') });
  });
  afterEach(async () => {
    await helper.unload();
    warnings.length = 0;
    errors.length = 0;
  });

  async function load(logProps: Record<string, unknown> = {}, ready = true) {
    const flow = [
      tab,
      { id: 'store1', type: 'sync-store', backend: 'postgres', dir: dirs[0], pgUrl: bare, pgTls: 'off' },
      // Another pool on the same database (as a second Node-RED instance would have).
      { id: 'store2', type: 'sync-store', backend: 'postgres', dir: dirs[1], pgUrl: `${bare}?application_name=instance2`, pgTls: 'off' },
      n({ id: 'log1', type: 'sync-log', store: 'store1', flushMs: 10, wires: [['out1'], ['rep1']], ...logProps }),
      n({ id: 'log2', type: 'sync-log', store: 'store2', flushMs: 10, wires: [['out2'], ['rep2']], ...logProps }),
      ...['out1', 'rep1', 'out2', 'rep2'].map((id) => n({ id, type: 'helper' })),
    ];
    await helper.load(NODES(), flow, { store1: { pgPassword: password }, store2: { pgPassword: password } });
    for (const i of ['1', '2']) {
      out[i] = collect(helper.getNode(`out${i}`));
      replays[i] = collect(helper.getNode(`rep${i}`));
      const log = helper.getNode(`log${i}`);
      statuses[i] = [];
      log.on('call:status', (c: { args: [{ text?: string }] }) => statuses[i].push(String(c.args[0].text)));
      log.on('call:warn', (c: { args: [unknown] }) => warnings.push(String(c.args[0])));
      log.on('call:error', (c: { args: [unknown] }) => errors.push(String(c.args[0])));
    }
    // both are open once each answers a command
    if (ready) for (const i of ['1', '2']) await command(i, 'stats');
  }

  async function send(i: string, msg: Record<string, unknown>): Promise<any> {
    const before = out[i].length;
    helper.getNode(`log${i}`).receive(msg);
    await waitFor(() => out[i].length > before, 10_000, `the message on output 1 of log${i}`);
    return out[i][before];
  }
  const command = async (i: string, topic: string, payload: unknown = {}) => (await send(i, { topic, payload })).payload;
  const listed = async (i: string): Promise<string[]> => ((await command(i, 'failed')) as Array<{ key: string }>).map((e) => e.key).sort();

  /** Wait until log `i` lists exactly `keys` (the other node's change is written in the background). */
  async function until(i: string, keys: string[]): Promise<void> {
    const want = [...keys].sort();
    let last: string[] = [];
    for (let n = 0; n < 200; n++) {
      last = await listed(i);
      if (JSON.stringify(last) === JSON.stringify(want)) return;
      await new Promise((r) => setTimeout(r, 25));
    }
    assert.deepEqual(last, want, `log${i} lists`);
  }

  it('a failure caught by one node is listed, replayed and resolved through the other; a success on one takes the other’s entry off; the console groups them', async () => {
    await load();
    const A = randomUUID();
    const B = randomUUID();
    await send('1', caughtMsg(A, 'HTTP_5XX', 'Siagh answered 503.'));
    await send('1', caughtMsg(B, 'LINK_NEEDS_REVIEW', 'same mobile', { code: 'LINK_NEEDS_REVIEW', crm: { crmId: B, name: 'شرکت' }, siagh: { code: 8301, name: 'رضا' }, matchedBy: 'mobile' }));
    await until('2', [`identity:${A}`, `identity:${B}`]);
    const stats = await command('2', 'stats');
    assert.equal(stats.failed, 2);
    assert.match(stats.failedFile, /^PostgreSQL postgres:\/\//);
    assert.ok(!JSON.stringify(stats).includes(password), 'no password in the stats');

    // The console (its admin routes) on the second node's folder: the same list, grouped.
    const admin = helper.request();
    const stores = (await admin.get('/siagh-sync/console/stores').expect(200)).body.stores as Array<{ id: string; dir: string }>;
    const second = stores.find((s) => s.dir === path.resolve(dirs[1]))!;
    assert.ok(second, JSON.stringify(stores));
    const f = (await admin.get(`/siagh-sync/console/${second.id}/failures`).expect(200)).body;
    assert.equal(f.total, 2);
    assert.deepEqual(
      f.groups.map((g: any) => [g.code, g.count, g.review]),
      [
        ['LINK_NEEDS_REVIEW', 1, true],
        ['HTTP_5XX', 1, false],
      ],
    );
    assert.equal((await admin.get(`/siagh-sync/console/${second.id}/now`).expect(200)).body.failed, 2);

    // Replay through the other node: its event leaves on that node's output 2.
    const r = await command('2', 'replay', { all: true });
    assert.deepEqual(r.events.map((e: any) => e.id), [A], 'the blanket replay skips the review item');
    await waitFor(() => replays['2'].length === 1, 5000, 'the replayed event');
    assert.deepEqual(replays['2'][0].payload, { event: 'Update', id: A, type: 'Identity' });
    assert.equal(replays['1'].length, 0);
    const viaConsole = (await admin.post(`/siagh-sync/console/${second.id}/resolve`).send({ crmId: B, decision: 'link', code: 8301 }).expect(200)).body;
    assert.equal(viaConsole.resolved, `identity:${B}`);
    await waitFor(() => replays['2'].length === 2, 5000, 'the resolved item');
    assert.deepEqual(replays['2'][1].linkDecision, { decision: 'link', code: 8301, crmId: B });
    const one = (await command('1', 'failed', { crmId: A }))[0];
    assert.equal(one.replays, 1, 'the first node sees the replay the second made');

    // The replay runs on the other instance and succeeds there: the entry leaves both lists.
    await send('2', okMsg(A));
    await until('1', [`identity:${B}`]);
    await send('1', okMsg(B));
    await until('2', []);
    assert.equal((await admin.get(`/siagh-sync/console/${second.id}/failures`).expect(200)).body.total, 0);

    // Each instance keeps its own sync log in its own folder; no failed.json there.
    await helper.unload();
    const lines = (d: string) => fs.readFileSync(path.join(d, 'sync-log.jsonl'), 'utf8').trim().split('\n').length;
    assert.deepEqual([lines(dirs[0]), lines(dirs[1])], [3, 1]);
    for (const d of dirs) assert.ok(!fs.existsSync(path.join(d, 'failed.json')));
    assert.deepEqual(errors, []);
  });

  it('the failed list survives a redeploy with PostgreSQL restarted meanwhile; the status says what waits', async () => {
    await load();
    const A = randomUUID();
    await send('1', caughtMsg(A, 'CRM_NOT_FOUND', 'not in the CRM'));
    await until('1', [`identity:${A}`]);
    await helper.unload();
    server.restart();
    await load();
    await waitFor(() => statuses['2'].includes('1 to replay'), 5000, 'the status of the other node: 1 to replay');
    assert.deepEqual(await listed('2'), [`identity:${A}`]);
    const r = await command('1', 'replay', { crmId: A });
    assert.equal(r.replayed, 1);
  });

  it('PostgreSQL away: a failure is kept and written when it is back (a warning says so); one still waiting at a redeploy is an error naming the record', async () => {
    await load();
    const [A, B] = [randomUUID(), randomUUID()];
    server.stop();
    try {
      await send('1', caughtMsg(A, 'HTTP_5XX', 'down'));
      await waitFor(() => warnings.some((w) => w.includes(`identity:${A}`)), 15_000, 'the warning');
      assert.match(warnings.find((w) => w.includes(`identity:${A}`))!, /could not be written to the failed list .*kept in memory and written again/);
    } finally {
      server.start();
    }
    await until('2', [`identity:${A}`]);

    server.stop();
    try {
      await send('1', caughtMsg(B, 'HTTP_5XX', 'down'));
      // A redeploy: the flows stop (the test helper's unload would stop listening to the nodes first).
      await helper.clearFlows();
      await waitFor(() => errors.some((e) => e.includes(`identity:${B}`)), 5000, 'the error naming the record');
      await helper.unload();
    } finally {
      server.start();
    }
    const lost = errors.filter((e) => e.includes(`identity:${B}`));
    assert.equal(lost.length, 1, errors.join('\n'));
    assert.match(lost[0], /is not in the failed list .*sync-log\.jsonl.*send the record again/);
    assert.ok(!lost[0].includes(password));
    await load();
    assert.deepEqual(await listed('1'), [`identity:${A}`]);
  });

  it('the bounds drop the oldest entries: the warning reaches the node, says where, and carries no password', async () => {
    await load({ failedMaxEntries: 1 });
    const ids = [randomUUID(), randomUUID()];
    await send('1', caughtMsg(ids[0], 'HTTP_5XX', 'down'));
    await until('1', [`identity:${ids[0]}`]);
    await send('1', caughtMsg(ids[1], 'HTTP_5XX', 'down'));
    await until('2', [`identity:${ids[1]}`]);
    await waitFor(() => warnings.some((w) => /dropped/.test(w)), 5000, 'the drop warning');
    const w = warnings.filter((x) => /dropped/.test(x));
    assert.equal(w.length, 1, w.join('\n'));
    assert.match(w[0], /1 failed entry was dropped from PostgreSQL postgres:\/\/.*at most 1 entries/);
    assert.ok(!w[0].includes(password));
    assert.equal((await command('1', 'stats')).failedDropped, 1);
  });

  it('PostgreSQL not running at deploy: sync-log waits (yellow, with the reason, said once), then opens by itself and keeps a failure caught meanwhile', async () => {
    server.stop('fast');
    try {
      await load({}, false);
      await waitFor(() => statuses['1'].some((t) => t === 'waiting for PostgreSQL: not answering'), 15_000, `log1 waits: ${statuses['1'].join(' | ')}`);
      // A failure caught while the store is not open yet waits with the node.
      helper.getNode('log1').receive(caughtMsg(A0, 'HTTP_5XX', 'Siagh answered 503.'));
      await waitFor(() => statuses['1'].filter((t) => t.startsWith('waiting for PostgreSQL')).length >= 2, 15_000, 'log1 tried again');
      assert.equal(warnings.filter((w) => /sync-log is waiting for its data store/.test(w)).length, 2, `said once per node: ${warnings.join('\n')}`);
      assert.equal(errors.length, 0, errors.join('\n'));
    } finally {
      server.start();
    }
    await until('2', [`identity:${A0}`]);
    assert.ok(![...warnings, ...errors].join('\n').includes(password), 'no password in the log');
  });
});
