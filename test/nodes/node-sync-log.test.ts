/**
 * sync-log in the real Node-RED 4.1 runtime (node-red-node-test-helper) on real files in temp user
 * dirs: log lines for ok and failed messages, no secret in any file, rotation and retention, the
 * failed list across a restart, replay (input and admin endpoint), stats, close flushing, and a
 * real pipeline whose failure is replayed into a success against the simulators.
 */
import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { readFailedOnDisk } from '../fixtures/store-helpers';
import type { CrmSim } from '../../sim/crm-sim';
import type { SiaghSim } from '../../sim/siagh-sim';
import { CRM_USER, SIAGH_USER, collect, configNodes, helper, n, nodeModule, startSims, tab, tmpDir, waitFor } from '../helpers/node-env';

const NODES = () => ['crm-config', 'siagh-config', 'crm-fetch', 'siagh-upsert', 'sync-mapping', 'sync-log'].map(nodeModule);
type Status = { fill?: string; shape?: string; text?: string };

function trace(over: Record<string, unknown> = {}): Record<string, unknown> {
  return { traceId: randomUUID().slice(0, 8), attempts: 0, durationMs: 5, startedAt: Date.now() - 20, warnings: [], ...over };
}

/** A message as a Catch node hands it over after a node of this package failed. */
function caughtMsg(crmId: string, code: string, message: string, over: { type?: string; entity?: string; event?: string; subtype?: string; trigger?: string } = {}) {
  const type = over.type ?? 'Identity';
  return {
    payload: { event: over.event ?? 'Insert', id: crmId, type, ...(over.subtype ? { subtype: over.subtype } : {}) },
    sync: trace({ trigger: over.trigger ?? 'webhook', event: over.event ?? 'Insert', entity: over.entity ?? type.toLowerCase(), crmId, action: 'failed', error: { code, message } }),
    error: { message: `SyncError: ${message}`, code, source: { id: 'somewhere', type: 'crm-fetch', name: '', count: 1 } },
  };
}

/** A review item as a Catch node hands it over: msg.review = {code, ...facts}. */
function reviewMsg(crmId: string, code: 'LINK_NEEDS_REVIEW' | 'DOCUMENT_CHANGED_AFTER_TRANSFER', facts: Record<string, unknown>) {
  const m = code === 'LINK_NEEDS_REVIEW' ? caughtMsg(crmId, code, 'same mobile, not the same party', { entity: 'organization', event: 'Update' }) : caughtMsg(crmId, code, 'changed after transfer', { type: 'Quote', entity: 'quote', event: 'Update' });
  (m.error.source as any).type = 'siagh-upsert';
  return { ...m, review: { code, ...facts } };
}

function linkFacts(crmId: string) {
  return {
    crm: { crmId, kind: 'organization', name: 'شرکت کریمی تجارت', mobile: '09121234567', nationalCode: null },
    siagh: { code: 8301, kind: 'person', name: 'رضا کریمی', mobile: '09121234567', nationalCode: '0012345679' },
    matchedBy: 'mobile',
    reason: 'the CRM record is an organization and the Siagh contact a person',
  };
}

function okMsg(crmId: string, over: Record<string, unknown> = {}) {
  return { payload: { crmId, kind: 'person', nickName: 'نگار' }, sync: trace({ trigger: 'webhook', event: 'Update', entity: 'person', crmId, siaghCode: '1204', customerNumber: '100-2204', action: 'updated', attempts: 1, ...over }) };
}

describe('sync-log node (Node-RED runtime, real files)', function () {
  this.timeout(20000);
  let sims: Awaited<ReturnType<typeof startSims>>;
  let crm: CrmSim;
  let siagh: SiaghSim;
  let userDir: string;
  let out: any[];
  let replays: any[];
  let caught: any[];
  let statuses: Status[];
  const savedEnv = process.env.SYNC_DATA_DIR;

  before(async () => {
    delete process.env.SYNC_DATA_DIR;
    sims = await startSims();
    crm = sims.crm;
    siagh = sims.siagh;
  });
  after(async () => {
    if (savedEnv === undefined) delete process.env.SYNC_DATA_DIR;
    else process.env.SYNC_DATA_DIR = savedEnv;
    await sims.stop();
  });
  beforeEach(() => {
    userDir = tmpDir('sync-log-test-');
    helper.settings({ userDir });
  });
  afterEach(async () => {
    await helper.unload();
  });

  const dataDir = () => path.join(userDir, 'siagh-sync');
  const logFile = () => path.join(dataDir(), 'sync-log.jsonl');
  const failedFile = () => path.join(dataDir(), 'failed.json');
  const logText = () => (fs.existsSync(logFile()) ? fs.readFileSync(logFile(), 'utf8') : '');
  const logLines = (): any[] =>
    logText()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l));
  /** The failed list on disk: the folded failed.json, then the journal failed.jsonl. */
  const failedEntries = (): Record<string, any> => readFailedOnDisk(failedFile());
  const failedText = () => [failedFile(), `${failedFile()}l`].filter((f) => fs.existsSync(f)).map((f) => fs.readFileSync(f, 'utf8')).join('\n');

  /**
   * Config nodes, sync-log 'log' (outputs → 'out', 'replays'), the tab's Catch → 'caught' (and
   * 'log' when catchToLog: one Catch per flow, a test-helper limit), and any extra nodes.
   */
  async function load(props: Record<string, unknown> = {}, extra: Array<Record<string, unknown>> = [], logWires?: string[][], catchToLog = false) {
    const cfg = configNodes(siagh.url, crm.url);
    const flow = [
      tab,
      ...cfg.nodes,
      n({ id: 'log', type: 'sync-log', flushMs: 10, wires: logWires ?? [['out'], ['replays']], ...props }),
      n({ id: 'out', type: 'helper' }),
      n({ id: 'replays', type: 'helper' }),
      n({ id: 'catch', type: 'catch', scope: null, uncaught: false, wires: [catchToLog ? ['caught', 'log'] : ['caught']] }),
      n({ id: 'caught', type: 'helper' }),
      ...extra,
    ];
    await helper.load(NODES(), flow, cfg.credentials);
    out = collect(helper.getNode('out'));
    replays = collect(helper.getNode('replays'));
    caught = collect(helper.getNode('caught'));
    statuses = [];
    helper.getNode('log').on('call:status', (call: { args: [Status] }) => statuses.push(call.args[0]));
    // the files are open (status "ready" / "N to replay") before the tests send anything
    await waitFor(() => statuses.length > 0 || fs.existsSync(dataDir()), 3000, 'sync-log opened');
    await new Promise((r) => setTimeout(r, 20));
  }

  async function send(msg: Record<string, unknown>): Promise<any> {
    const before = out.length;
    helper.getNode('log').receive(msg);
    await waitFor(() => out.length > before, 3000, 'the message on output 1');
    return out[before];
  }

  it('appends one line per ok and failed message with the trace fields, and passes each message on unchanged', async () => {
    await load();
    const A = randomUUID();
    const B = randomUUID();
    const ok = okMsg(A, { traceId: 'tr-ok-01' });
    const passed = await send(ok);
    assert.deepEqual({ ...passed, _msgid: undefined }, { ...ok, _msgid: undefined }, 'output 1 carries the message unchanged');
    await send(caughtMsg(B, 'CRM_NOT_FOUND', `The CRM has no person or organization with id ${B}.`, { subtype: 'مخاطب حقیقی siagh' }));
    await waitFor(() => logLines().length === 2, 3000, 'two lines');
    const [l1, l2] = logLines();
    assert.ok(Date.parse(l1.time) > Date.now() - 10_000);
    assert.deepEqual({ ...l1, time: undefined, durationMs: undefined }, {
      time: undefined,
      durationMs: undefined,
      trigger: 'webhook',
      entity: 'person',
      crmId: A,
      name: 'نگار', // the identity's name, for the console's search after a restart
      siaghCode: '1204',
      customerNumber: '100-2204',
      event: 'Update',
      action: 'updated',
      status: 'ok',
      attempts: 1,
      traceId: 'tr-ok-01',
    });
    assert.ok(l1.durationMs >= 20);
    assert.equal(l2.status, 'failed');
    assert.equal(l2.trigger, 'webhook');
    assert.equal(l2.entity, 'identity');
    assert.equal(l2.crmId, B);
    assert.equal(l2.action, 'failed');
    assert.equal(l2.step, 'crm-fetch');
    assert.deepEqual(l2.error, { code: 'CRM_NOT_FOUND', message: `The CRM has no person or organization with id ${B}.` });
    assert.equal(replays.length, 0);
    await waitFor(() => statuses.some((s) => s.text === '1 ok · 1 failed'), 2000, 'status "1 ok · 1 failed"');
  });

  it('puts no secret in the log, the failed list or the stats: config passwords (and their MD5), token=, password=', async () => {
    await load();
    const A = randomUUID();
    const md5 = createHash('md5').update(SIAGH_USER.Password).digest('hex').toUpperCase();
    const message =
      `Login to http://crm.example/api/v2/auth/login?token=abc&x=1 with ${CRM_USER.password} failed; ` + `body password=hunter2x UserPassword ${md5}; header Authorization: Bearer eyJ0eXAi.payload.sig`;
    const m = caughtMsg(A, 'CRM_LOGIN_FAILED', message);
    (m.sync as any).siaghCode = 'token=zz9secret';
    (m.sync as any).warnings = [`warn ${CRM_USER.password}`];
    await send(m);
    const stats = await send({ topic: 'stats' });
    const failed = await send({ topic: 'failed' });
    await waitFor(() => logLines().length === 1 && Object.keys(failedEntries()).length === 1, 3000, 'the line and the failed entry');
    const texts = [logText(), failedText(), JSON.stringify(stats.payload), JSON.stringify(failed.payload)];
    for (const t of texts) {
      for (const s of [CRM_USER.password, SIAGH_USER.Password, md5, 'token=abc', 'hunter2x', 'zz9secret', 'eyJ0eXAi']) assert.ok(!t.includes(s), `"${s}" leaked into ${t}`);
    }
    assert.match(logLines()[0].error.message, /token=\*\*\*/);
    assert.match(logLines()[0].error.message, /with \*\*\* failed/);
  });

  it('passes the message on before its line is in the file (no awaited write); close() writes the queued lines', async () => {
    await load({ flushMs: 60_000 });
    let inFileOnDelivery: boolean | undefined;
    helper.getNode('out').on('input', () => {
      inFileOnDelivery = logText().includes('tr-struct');
    });
    helper.getNode('log').receive(okMsg(randomUUID(), { traceId: 'tr-struct' }));
    helper.getNode('log').receive(caughtMsg(randomUUID(), 'HTTP_5XX', 'Siagh answered 503.', { trigger: 'poll' }));
    await waitFor(() => out.length === 2, 3000, 'both messages passed on');
    assert.equal(inFileOnDelivery, false, 'the line was not yet written when the message arrived downstream');
    assert.equal(logText(), '', 'still queued');
    await helper.unload();
    const lines = logLines();
    assert.deepEqual(
      lines.map((l) => [l.traceId === 'tr-struct', l.status, l.trigger]),
      [
        [true, 'ok', 'webhook'],
        [false, 'failed', 'poll'],
      ],
      'close() flushed both lines',
    );
  });

  it('a failure lands in failed.json, survives a restart, counts attempts; a later success removes it', async () => {
    await load();
    const A = randomUUID();
    const B = randomUUID();
    await send(caughtMsg(A, 'HTTP_5XX', 'Siagh answered 503.', { subtype: 'مخاطب حقیقی siagh' }));
    await send(caughtMsg(B, 'CUSTOMER_NOT_MAPPED', 'Sync the customer first.', { type: 'Quote', event: 'Update' }));
    await waitFor(() => Object.keys(failedEntries()).length === 2, 3000, 'two entries on disk');
    const a = failedEntries()[`identity:${A}`];
    assert.deepEqual(a.event, { type: 'Identity', id: A, event: 'Insert', subtype: 'مخاطب حقیقی siagh' });
    assert.deepEqual(a.reason, { code: 'HTTP_5XX', message: 'Siagh answered 503.' });
    assert.equal(a.attempts, 1);
    assert.ok(a.firstAt && a.lastAt);

    await helper.unload();
    await load();
    const listed = (await send({ topic: 'failed' })).payload as any[];
    assert.deepEqual(listed.map((e) => e.key).sort(), [`identity:${A}`, `quote:${B}`].sort());

    await send(caughtMsg(A, 'TIMEOUT', 'Siagh did not answer within 5 s.', { event: 'Update' }));
    await waitFor(() => failedEntries()[`identity:${A}`]?.attempts === 2, 3000, 'attempts 2 on disk');
    assert.equal(failedEntries()[`identity:${A}`].reason.code, 'TIMEOUT');
    assert.equal(failedEntries()[`identity:${A}`].event.subtype, 'مخاطب حقیقی siagh', 'the first failure’s subtype is kept');

    await send(okMsg(A, { action: 'created' }));
    await waitFor(() => !failedEntries()[`identity:${A}`], 3000, 'the success removed it');
    assert.ok(failedEntries()[`quote:${B}`], 'the other entry stays');
  });

  it('replay by id, by filter and all sends crm-fetch input on output 2 with a replay trace; an empty filter is refused', async () => {
    await load();
    const A = randomUUID();
    const B = randomUUID();
    const C = randomUUID();
    await send(caughtMsg(A, 'CRM_NOT_FOUND', 'gone', { subtype: 'مخاطب حقوقی' }));
    await send(caughtMsg(A, 'CRM_NOT_FOUND', 'gone', { subtype: 'مخاطب حقوقی' }));
    await send(caughtMsg(B, 'CUSTOMER_NOT_MAPPED', 'customer first', { type: 'Quote', event: 'Update' }));
    await send(caughtMsg(C, 'HTTP_5XX', 'down', { entity: 'person', event: 'Update' }));

    const byId = await send({ topic: 'replay', payload: { crmId: A } });
    await waitFor(() => replays.length === 1, 3000, 'one replay');
    assert.equal(byId.payload.replayed, 1);
    const r = replays[0];
    assert.deepEqual(r.payload, { id: A, type: 'Identity', event: 'Insert', subtype: 'مخاطب حقوقی' });
    assert.equal(r.sync.trigger, 'replay');
    assert.equal(r.sync.crmId, A);
    assert.equal(r.sync.attempts, 2, 'attempts carried over');
    assert.equal(r.topic, undefined, 'a replayed message is no command');

    await send({ topic: 'replay', payload: { entity: 'quote' } });
    await waitFor(() => replays.length === 2, 3000, 'the quote');
    assert.deepEqual(replays[1].payload, { id: B, type: 'Quote', event: 'Update' });

    await send({ topic: 'replay', payload: { code: 'HTTP_5XX' } });
    await waitFor(() => replays.length === 3, 3000, 'the 5xx one');
    assert.equal(replays[2].payload.id, C);

    await send({ topic: 'replay', payload: C });
    await waitFor(() => replays.length === 4, 3000, 'a GUID string payload');
    assert.equal(replays[3].payload.id, C);

    const all = await send({ topic: 'replay', payload: { all: true } });
    await waitFor(() => replays.length === 7, 3000, 'all three');
    assert.equal(all.payload.replayed, 3);
    assert.deepEqual(new Set(replays.slice(4).map((m) => m.payload.id)), new Set([A, B, C]));

    const lines = logLines().length;
    helper.getNode('log').receive({ topic: 'replay', payload: {} });
    await waitFor(() => caught.length === 1, 3000, 'the refusal reaches Catch');
    assert.equal(caught[0].error.code, 'BAD_INPUT');
    assert.match(caught[0].error.message, /all: true/);
    assert.equal(replays.length, 7);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(logLines().length, lines, 'commands are not logged as operations');
    const entries = failedEntries();
    assert.equal(Object.keys(entries).length, 3, 'replay keeps the entries until a success');
    assert.equal(entries[`identity:${A}`].replays, 2);
  });

  it('the refused command that comes back through Catch is passed on, not logged and not run again', async () => {
    // the tab's Catch is wired into sync-log, as in the shipped flows
    await load({}, [], undefined, true);
    helper.getNode('log').receive({ topic: 'replay', payload: { crmId: 'nope' } });
    await waitFor(() => out.length === 1, 3000, 'the caught copy passed on output 1');
    assert.equal(out[0].error.code, 'BAD_INPUT');
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(out.length, 1, 'no loop');
    assert.equal(logText(), '');
  });

  it('admin endpoints: replay (by filter, refused, unknown node), stats and the failed list', async () => {
    await load();
    const A = randomUUID();
    const B = randomUUID();
    await send(caughtMsg(A, 'HTTP_5XX', 'down'));
    await send(caughtMsg(B, 'CRM_NOT_FOUND', 'gone', { type: 'Invoice', event: 'Update' }));
    await send(okMsg(randomUUID()));

    const stats = await helper.request().get('/siagh-sync/sync-log/log/stats').expect(200);
    assert.deepEqual(stats.body.byStatus, { ok: 1, failed: 2 });
    assert.equal(stats.body.failed, 2);
    const list = await helper.request().get('/siagh-sync/sync-log/log/failed').expect(200);
    assert.equal(list.body.count, 2);
    const only = await helper.request().get('/siagh-sync/sync-log/log/failed?entity=invoice').expect(200);
    assert.deepEqual(
      only.body.entries.map((e: any) => e.event.id),
      [B],
    );

    const res = await helper.request().post('/siagh-sync/sync-log/log/replay').send({ crmId: A }).expect(200);
    assert.equal(res.body.ok, true);
    assert.equal(res.body.replayed, 1);
    assert.deepEqual(res.body.events, [{ type: 'Identity', id: A, event: 'Insert' }]);
    await waitFor(() => replays.length === 1, 3000, 'the replay on output 2');
    assert.deepEqual(replays[0].payload, { id: A, type: 'Identity', event: 'Insert' });
    assert.equal(replays[0].sync.trigger, 'replay');

    const all = await helper.request().post('/siagh-sync/sync-log/log/replay').send({ all: true }).expect(200);
    assert.equal(all.body.replayed, 2);
    await waitFor(() => replays.length === 3, 3000, 'both');

    const bad = await helper.request().post('/siagh-sync/sync-log/log/replay').send({}).expect(400);
    assert.equal(bad.body.code, 'BAD_INPUT');
    await helper.request().post('/siagh-sync/sync-log/not-a-node/replay').send({ all: true }).expect(404);
    await helper.request().get('/siagh-sync/sync-log/not-a-node/stats').expect(404);
    assert.equal(out.length, 3, 'admin replays send nothing on output 1');
  });

  it('refuses to replay when output 2 is not wired (the events would go nowhere) and leaves the list untouched', async () => {
    await load({}, [], [['out']]);
    const A = randomUUID();
    await send(caughtMsg(A, 'HTTP_5XX', 'down'));
    const res = await helper.request().post('/siagh-sync/sync-log/log/replay').send({ all: true }).expect(409);
    assert.equal(res.body.code, 'CONFIG');
    assert.match(res.body.message, /Output 2/);
    helper.getNode('log').receive({ topic: 'replay', payload: { all: true } });
    await waitFor(() => caught.length === 1, 3000, 'the refusal reaches Catch');
    assert.equal(caught[0].error.code, 'CONFIG');
    await waitFor(() => !!failedEntries()[`identity:${A}`], 3000, 'the entry on disk');
    assert.equal(failedEntries()[`identity:${A}`].replays, undefined, 'not marked as replayed');
  });

  it('stats: counts by status and trigger, the last 24 h failures grouped by message, rebuilt after a restart', async () => {
    await load();
    await send(okMsg(randomUUID()));
    await send(okMsg(randomUUID(), { trigger: 'poll' }));
    await send(okMsg(randomUUID(), { trigger: 'replay' }));
    const X = randomUUID();
    const Y = randomUUID();
    await send(caughtMsg(X, 'CRM_NOT_FOUND', `The CRM has no person or organization with id ${X}.`));
    await send(caughtMsg(Y, 'CRM_NOT_FOUND', `The CRM has no person or organization with id ${Y}.`, { trigger: 'poll' }));
    const s = (await send({ topic: 'stats' })).payload;
    assert.deepEqual(s.byStatus, { ok: 3, failed: 2 });
    assert.deepEqual(s.byTrigger, { webhook: 2, poll: 2, replay: 1 });
    assert.equal(s.last24h.ok, 3);
    assert.equal(s.last24h.failed, 2);
    assert.deepEqual(
      s.last24h.failures.map((f: any) => [f.code, f.message, f.count]),
      [['CRM_NOT_FOUND', 'The CRM has no person or organization with id <id>.', 2]],
    );
    assert.equal(s.failed, 2);
    assert.ok(Date.parse(s.since) <= Date.now());

    await helper.unload();
    await load();
    const again = (await send({ topic: 'stats' })).payload;
    assert.deepEqual(again.byStatus, { ok: 3, failed: 2 }, 'rebuilt from the log file');
    assert.deepEqual(again.last24h.failures, s.last24h.failures);
    assert.equal(again.failed, 2);
  });

  it('rotates by the size setting and keeps the set number of files; the folder setting is honoured', async () => {
    await load({ dir: 'logs/here', maxSizeMB: 0.001, keepFiles: 2, keepDays: 0, flushMs: 0 });
    for (let i = 0; i < 40; i++) {
      await send(okMsg(randomUUID(), { traceId: `rot-${i}` }));
      await new Promise((r) => setImmediate(r));
    }
    await helper.unload();
    const dir = path.join(userDir, 'logs', 'here');
    const names = fs.readdirSync(dir).filter((f) => f.startsWith('sync-log')).sort();
    assert.deepEqual(names, ['sync-log.1.jsonl', 'sync-log.2.jsonl', 'sync-log.jsonl']);
    for (const f of names) assert.ok(fs.statSync(path.join(dir, f)).size <= 1100, `${f} within the size`);
    const last = fs.readFileSync(path.join(dir, 'sync-log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(last[last.length - 1].traceId, 'rot-39', 'the newest line is in the current file');
    assert.equal(fs.existsSync(path.join(userDir, 'siagh-sync', 'sync-log.jsonl')), false);
  });

  it('review items: the failed entry keeps msg.review; a blanket replay skips them; resolve sends each decision on output 2', async () => {
    await load();
    const L = randomUUID();
    const L2 = randomUUID();
    const D = randomUUID();
    const O = randomUUID();
    await send(reviewMsg(L, 'LINK_NEEDS_REVIEW', linkFacts(L)));
    await send(reviewMsg(L2, 'LINK_NEEDS_REVIEW', linkFacts(L2)));
    const docFacts = { docKind: 'quote', crmId: D, number: 'Q-1001', siaghCode: '5501', differences: { linesAdded: [], linesRemoved: [], linesChanged: [], header: [], total: { before: 100, after: 120 } }, checksum: { transferred: 'a', current: 'b' } };
    await send(reviewMsg(D, 'DOCUMENT_CHANGED_AFTER_TRANSFER', docFacts));
    await send(caughtMsg(O, 'HTTP_5XX', 'down'));
    await waitFor(() => Object.keys(failedEntries()).length === 4, 3000, 'four entries on disk');
    assert.deepEqual(failedEntries()[`identity:${L}`].review, { code: 'LINK_NEEDS_REVIEW', ...linkFacts(L) });
    assert.deepEqual(failedEntries()[`quote:${D}`].review, { code: 'DOCUMENT_CHANGED_AFTER_TRANSFER', ...docFacts });
    const listed = (await send({ topic: 'failed', payload: { crmId: L } })).payload;
    assert.equal(listed[0].review.siagh.code, 8301, 'the list shows the facts');

    const all = await send({ topic: 'replay', payload: { all: true } });
    assert.equal(all.payload.replayed, 1);
    await waitFor(() => replays.length === 1, 3000, 'the ordinary entry only');
    assert.equal(replays[0].payload.id, O);
    assert.equal(replays[0].linkDecision, undefined);

    const link = await send({ topic: 'resolve', payload: { crmId: L, decision: 'link', code: '8301' } });
    assert.deepEqual(link.payload, { resolved: `identity:${L}`, decision: 'link', event: { type: 'Identity', id: L, event: 'Update' } });
    await waitFor(() => replays.length === 2, 3000, 'the linked item');
    assert.deepEqual(replays[1].payload, { type: 'Identity', id: L, event: 'Update' });
    assert.deepEqual(replays[1].linkDecision, { decision: 'link', code: 8301, crmId: L });
    assert.equal(replays[1].sync.trigger, 'replay');

    await send({ topic: 'resolve', payload: { crmId: L2.toUpperCase(), decision: 'separate' } });
    await waitFor(() => replays.length === 3, 3000, 'the separate item');
    assert.deepEqual(replays[2].linkDecision, { decision: 'separate', crmId: L2 });

    await send({ topic: 'resolve', payload: { crmId: D, decision: 'acknowledge' } });
    await waitFor(() => replays.length === 4, 3000, 'the acknowledged document');
    assert.deepEqual(replays[3].payload, { type: 'Quote', id: D, event: 'Update' });
    assert.deepEqual(replays[3].reviewDecision, { decision: 'acknowledge', crmId: D });
    assert.equal(replays[3].linkDecision, undefined);

    await waitFor(() => failedEntries()[`identity:${L}`]?.replays === 1, 3000, 'marked replayed on disk');
    assert.equal(Object.keys(failedEntries()).length, 4, 'entries stay until the replay succeeds');
    // the replayed pipeline succeeds: the item leaves the list
    await send(okMsg(L, { entity: 'organization', action: 'linked', trigger: 'replay' }));
    await waitFor(() => !failedEntries()[`identity:${L}`], 3000, 'the linked item left the list');
  });

  it('resolve refuses a wrong decision, a bad payload, an entry that is no review item and an unknown id (BAD_INPUT), and sends nothing', async () => {
    await load();
    const L = randomUUID();
    const D = randomUUID();
    const O = randomUUID();
    await send(reviewMsg(L, 'LINK_NEEDS_REVIEW', linkFacts(L)));
    await send(reviewMsg(D, 'DOCUMENT_CHANGED_AFTER_TRANSFER', { docKind: 'quote', crmId: D, differences: null }));
    await send(caughtMsg(O, 'HTTP_5XX', 'down'));
    const bad: Array<[unknown, RegExp]> = [
      [{ crmId: L, decision: 'acknowledge' }, /"acknowledge" does not answer a LINK_NEEDS_REVIEW item.*"link" or "separate"/],
      [{ crmId: D, decision: 'separate' }, /"separate" does not answer a DOCUMENT_CHANGED_AFTER_TRANSFER item.*"acknowledge"/],
      [{ crmId: L, decision: 'link' }, /code/],
      [{ crmId: L, decision: 'link', code: 'abc' }, /code/],
      [{ crmId: L, decision: 'merge' }, /not understood/],
      [{ crmId: 'nope', decision: 'separate' }, /crmId: not a GUID/],
      [{ crmId: L, decision: 'separate', extra: 1 }, /not understood/],
      [{ crmId: O, decision: 'separate' }, /not a review item .*HTTP_5XX/],
      [{ crmId: randomUUID(), decision: 'separate' }, /no entry for CRM record/],
      ['just text', /not understood/],
    ];
    for (const [payload, re] of bad) {
      const n0 = caught.length;
      helper.getNode('log').receive({ topic: 'resolve', payload });
      await waitFor(() => caught.length > n0, 3000, `refusal of ${JSON.stringify(payload)}`);
      assert.equal(caught[n0].error.code, 'BAD_INPUT', JSON.stringify(payload));
      assert.match(caught[n0].error.message, re);
    }
    assert.equal(replays.length, 0, 'nothing sent');
    assert.equal(failedEntries()[`identity:${L}`].replays, undefined, 'not marked');
  });

  it('admin route POST …/resolve: resolves (200, event on output 2), refuses a wrong decision (400)', async () => {
    await load();
    const L = randomUUID();
    await send(reviewMsg(L, 'LINK_NEEDS_REVIEW', linkFacts(L)));
    const wrong = await helper.request().post('/siagh-sync/sync-log/log/resolve').send({ crmId: L, decision: 'acknowledge' }).expect(400);
    assert.equal(wrong.body.code, 'BAD_INPUT');
    await helper.request().post('/siagh-sync/sync-log/nope/resolve').send({ crmId: L, decision: 'separate' }).expect(404);
    const ok = await helper.request().post('/siagh-sync/sync-log/log/resolve').send({ crmId: L, decision: 'link', code: 8301 }).expect(200);
    assert.equal(ok.body.ok, true);
    assert.equal(ok.body.resolved, `identity:${L}`);
    await waitFor(() => replays.length === 1, 3000, 'the event on output 2');
    assert.deepEqual(replays[0].linkDecision, { decision: 'link', code: 8301, crmId: L });
  });

  it('the failed list is bounded by the node settings: the oldest entries are dropped, counted in stats and logged once per batch', async () => {
    await load({ failedMaxEntries: 2, failedMaxAgeDays: 30 });
    const warnings: string[] = [];
    helper.getNode('log').on('call:warn', (call: { args: [unknown] }) => warnings.push(String(call.args[0])));
    const ids = [randomUUID(), randomUUID(), randomUUID()];
    for (const id of ids) {
      await send(caughtMsg(id, 'HTTP_5XX', 'down'));
      await new Promise((r) => setTimeout(r, 5));
    }
    await waitFor(() => Object.keys(failedEntries()).length === 2, 3000, 'two entries on disk');
    assert.deepEqual(Object.keys(failedEntries()).sort(), ids.slice(1).map((id) => `identity:${id}`).sort(), 'the oldest went');
    const stats = (await send({ topic: 'stats' })).payload;
    assert.equal(stats.failed, 2);
    assert.equal(stats.failedDropped, 1);
    assert.deepEqual(stats.failedLimits, { maxEntries: 2, maxAgeDays: 30 });
    assert.equal(warnings.filter((w) => /dropped/.test(w)).length, 1, warnings.join('\n'));
    assert.match(warnings[0], /1 failed entry was dropped .*at most 2 entries/);
  });

  it('end to end: a failed fetch is caught into the failed list; after the record appears, a replay syncs it and clears the entry', async () => {
    const X = randomUUID();
    const file = 'siagh-sync/mappings.json';
    await load(
      {},
      [
        n({ id: 'fetch', type: 'crm-fetch', crm: 'crm', what: 'auto', wires: [['lookup']] }),
        n({ id: 'lookup', type: 'sync-mapping', operation: 'lookup', file, entityType: 'auto', claim: true, wires: [['up']] }),
        n({ id: 'up', type: 'siagh-upsert', siagh: 'siagh', mode: 'auto', wires: [['store']] }),
        n({ id: 'store', type: 'sync-mapping', operation: 'store', file, entityType: 'auto', wires: [['log']] }),
      ],
      [['out'], ['replays', 'fetch']],
      true,
    );
    helper.getNode('fetch').receive({ payload: { event: 'Insert', id: X, type: 'Identity', subtype: 'مخاطب حقیقی siagh' } });
    await waitFor(() => !!failedEntries()[`identity:${X}`], 8000, 'the failure in failed.json');
    const entry = failedEntries()[`identity:${X}`];
    assert.equal(entry.reason.code, 'CRM_NOT_FOUND');
    assert.deepEqual(entry.event, { type: 'Identity', id: X, event: 'Insert', subtype: 'مخاطب حقیقی siagh' });

    crm.addPerson(
      { crmId: X, nickName: 'سارا کاظمی', firstName: 'سارا', lastName: 'کاظمی', email: 'sara@example.ir', phoneContacts: [{ phoneType: 'موبایل', phoneNumber: '09129876543', default: true }] },
      { webhook: false },
    );
    const contacts = siagh.contacts().length;
    await send({ topic: 'replay', payload: { crmId: X } });
    await waitFor(() => !failedEntries()[`identity:${X}`], 8000, 'the replay succeeded and cleared the entry');
    assert.equal(siagh.contacts().length, contacts + 1, 'one Siagh contact created');
    await waitFor(() => logLines().length === 2, 3000, 'two lines');
    const [failedLine, okLine] = logLines();
    assert.equal(failedLine.status, 'failed');
    assert.equal(failedLine.step, 'crm-fetch');
    assert.equal(okLine.status, 'ok');
    assert.equal(okLine.trigger, 'replay');
    assert.equal(okLine.action, 'created');
    assert.equal(okLine.crmId, X);
    assert.ok(okLine.siaghCode);
    assert.ok(okLine.attempts >= 1);
    const s = (await send({ topic: 'stats' })).payload;
    assert.equal(s.failed, 0);
    assert.equal(s.mappings?.total, 1, 'the mapping counts of the same data folder');
  });
});
