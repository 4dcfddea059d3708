/**
 * crm-webhook in the real Node-RED 4.1 runtime (node-red-node-test-helper), behind the real core
 * `http in` and `http response` nodes, driven over HTTP with supertest: the CRM's body-less GET
 * with a Persian subtype, POST bodies, the shared token (literal, from ${WEBHOOK_TOKEN}, unset),
 * every kind of malformed request, the durable intake (the 200 leaves once the change is in the
 * data store's queue file; repeated deliveries merge into one job), echo mode with redaction,
 * status counts, and nothing lost by a stop.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { inspect } from 'node:util';
import request from 'supertest';
import { captureHttpNode, collect, helper, httpNode, n, nodeModule, tab, tmpDir, waitFor } from '../helpers/node-env';
import { REPO_ROOT } from '../helpers/paths';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const httpNodes = require('@node-red/nodes/core/network/21-httpin.js');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const commentNode = require('@node-red/nodes/core/common/90-comment.js');
const NODES = () => [httpNodes, captureHttpNode, nodeModule('crm-webhook'), nodeModule('sync-store')];

interface QueuedJob {
  id: string;
  key: string;
  event: { type: string; id: string; event: string; subtype?: string };
  merged: number;
}

/** The jobs in a data folder's queue, read from its files as they are on disk (snapshot, then journal). */
function queuedJobs(dir: string): QueuedJob[] {
  const jobs = new Map<string, QueuedJob>();
  const read = (f: string) => (fs.existsSync(path.join(dir, f)) ? fs.readFileSync(path.join(dir, f), 'utf8') : '');
  const snap = read('queue.json');
  if (snap) for (const j of (JSON.parse(snap) as { jobs: QueuedJob[] }).jobs) jobs.set(j.id, j);
  for (const line of read('queue.jsonl').split('\n')) {
    if (!line.trim()) continue;
    const r = JSON.parse(line) as { put?: QueuedJob; del?: string };
    if (r.put) jobs.set(r.put.id, r.put);
    else if (r.del) jobs.delete(r.del);
  }
  return [...jobs.values()];
}

const ID = '0634d585-7e1b-4c2a-9f3d-1a2b3c4d5e6f';
const ID2 = '52e469f2-0c4d-4b8e-a1f2-6e5d4c3b2a10';
const ID3 = '880d8361-aa11-4b22-8c33-d44e55f66a77';
const PERSON = 'مخاطب حقیقی siagh';
const SECRET = 'tk-Secret-9f2c71';

/** The CRM's own query string: URLSearchParams writes spaces as +, as the CRM does. */
function q(fields: Record<string, string>): string {
  return '?' + new URLSearchParams(fields).toString();
}

function allText(m: unknown): string {
  return inspect(m, { depth: 12, maxArrayLength: null, maxStringLength: null, breakLength: Infinity });
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

interface Deployed {
  hook: any;
  /** The data folder of the node's data store. */
  dir: string;
  out: any[];
  replies: any[];
  statuses: Array<{ fill?: string; text?: string }>;
  warns: string[];
  http: ReturnType<typeof request>;
}

describe('crm-webhook (Node-RED runtime, real http in / http response)', function () {
  this.timeout(15000);
  const saved = { WEBHOOK_TOKEN: process.env.WEBHOOK_TOKEN, ENABLE_WEBHOOKS: process.env.ENABLE_WEBHOOKS, HOOK_TOKEN_X: process.env.HOOK_TOKEN_X, SYNC_DATA_DIR: process.env.SYNC_DATA_DIR };

  beforeEach(() => {
    // Each test sets what it needs; nothing from the shell leaks in.
    delete process.env.WEBHOOK_TOKEN;
    delete process.env.ENABLE_WEBHOOKS;
    delete process.env.HOOK_TOKEN_X;
    // A data store without a folder of its own (the example's) uses SYNC_DATA_DIR: a temp folder.
    process.env.SYNC_DATA_DIR = tmpDir('crm-webhook-data-');
  });
  afterEach(async () => {
    await helper.unload();
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });

  /**
   * GET and POST /webhook/crm/identity → crm-webhook 'wh' → [helper 'out'], [http response + helper 'rep'];
   * GET and POST /webhook/crm/test → crm-webhook 'echo' (mode echo) → same.
   */
  async function deploy(props: Record<string, unknown> = {}, token?: string, echoProps: Record<string, unknown> = {}): Promise<Deployed> {
    const dir = tmpDir('crm-webhook-queue-');
    const flow = [
      tab,
      n({ id: 'in-get', type: 'http in', url: '/webhook/crm/identity', method: 'get', wires: [['wh']] }),
      n({ id: 'in-post', type: 'http in', url: '/webhook/crm/identity', method: 'post', wires: [['wh']] }),
      { id: 'store', type: 'sync-store', dir },
      n({ id: 'wh', type: 'crm-webhook', mode: 'webhook', expect: 'identity', store: 'store', allowNoToken: true, wires: [['out'], ['res', 'rep']], ...props }),
      n({ id: 't-get', type: 'http in', url: '/webhook/crm/test', method: 'get', wires: [['echo']] }),
      n({ id: 't-post', type: 'http in', url: '/webhook/crm/test', method: 'post', wires: [['echo']] }),
      n({ id: 'echo', type: 'crm-webhook', mode: 'echo', allowNoToken: true, wires: [['out'], ['res', 'rep']], ...echoProps }),
      n({ id: 'res', type: 'http response' }),
      n({ id: 'out', type: 'helper' }),
      n({ id: 'rep', type: 'helper' }),
    ];
    const creds = token === undefined ? {} : { wh: { token }, echo: { token } };
    await helper.load(NODES(), flow, creds);
    const hook = helper.getNode('wh');
    const statuses: Array<{ fill?: string; text?: string }> = [];
    hook.on('call:status', (call: { args: [{ fill?: string; text?: string }] }) => statuses.push(call.args[0]));
    const warns: string[] = [];
    hook.on('call:warn', (call: { args: [unknown] }) => warns.push(String(call.args[0])));
    return { hook, dir, out: collect(helper.getNode('out')), replies: collect(helper.getNode('rep')), statuses, warns, http: request(httpNode as any) };
  }

  /** Give anything still on its way time to arrive, so "nothing emitted" is really nothing. */
  const settle = () => sleep(200);

  it('accepts the CRM GET with a Persian subtype (spaces as +): 200 at once, then one clean event on output 1', async () => {
    const d = await deploy();
    const res = await d.http.get('/webhook/crm/identity' + q({ event: 'Insert', id: ID.toUpperCase(), type: 'Identity', subtype: PERSON })).expect(200);
    assert.match(String(res.headers['content-type']), /application\/json/);
    assert.deepEqual(res.body, { accepted: true, event: 'Insert', type: 'Identity', id: ID, queued: true, merged: false });
    assert.deepEqual(
      queuedJobs(d.dir).map((j) => j.event),
      [{ type: 'Identity', id: ID, event: 'Insert', subtype: PERSON }],
      'the change was on disk in the queue when the 200 left',
    );
    await waitFor(() => d.out.length === 1, 3000, 'the event');
    await settle();
    assert.equal(d.out.length, 1);
    const m = d.out[0];
    assert.deepEqual(m.payload, { event: 'Insert', id: ID, type: 'Identity', subtype: PERSON });
    assert.equal(m.req, undefined, 'no request on output 1');
    assert.equal(m.res, undefined, 'no response on output 1');
    assert.equal(m.topic, `Identity:${ID}`);
    assert.equal(m.sync.trigger, 'webhook');
    assert.equal(m.sync.event, 'Insert');
    assert.equal(m.sync.entity, 'identity');
    assert.equal(m.sync.crmId, ID);
    assert.equal(m.queued, true, 'output 1 only wakes the sync-queue node');
    assert.equal(typeof m.sync.traceId, 'string');
    assert.equal(d.replies.length, 1, 'exactly one reply');
  });

  it('accepts a POST with a JSON body of the same fields (and a missing type means the endpoint\'s type)', async () => {
    const d = await deploy();
    const r1 = await d.http.post('/webhook/crm/identity').send({ event: 'update', id: ID, type: 'identity', subtype: 'مخاطب+حقوقی' }).expect(200);
    assert.equal(r1.body.accepted, true);
    assert.equal(r1.body.event, 'Update');
    await d.http.post('/webhook/crm/identity').send({ event: 'Insert', id: ID2 }).expect(200);
    await waitFor(() => d.out.length === 2, 3000, 'two events');
    const byId = Object.fromEntries(d.out.map((m) => [m.payload.id, m.payload]));
    assert.deepEqual(byId[ID], { event: 'Update', id: ID, type: 'Identity', subtype: 'مخاطب حقوقی' });
    assert.deepEqual(byId[ID2], { event: 'Insert', id: ID2, type: 'Identity' });
  });

  it('a POST whose body is not an object is refused with 400', async () => {
    const d = await deploy();
    const r = await d.http.post('/webhook/crm/identity').set('Content-Type', 'text/plain').send('event=Insert').expect(400);
    assert.equal(r.body.accepted, false);
    assert.match(r.body.error, /JSON object body \(got text\)/);
    const r2 = await d.http.post('/webhook/crm/identity').send([{ event: 'Insert', id: ID, type: 'Identity' }]).expect(400);
    assert.match(r2.body.error, /got an array/);
    await settle();
    assert.equal(d.out.length, 0);
  });

  it('with a token: missing or wrong → 401 and nothing emitted; right (query or POST body) → 200', async () => {
    const d = await deploy({}, SECRET);
    const fields = { event: 'Insert', id: ID, type: 'Identity', subtype: PERSON };
    const missing = await d.http.get('/webhook/crm/identity' + q(fields)).expect(401);
    assert.equal(missing.body.accepted, false);
    assert.match(missing.body.error, /token missing/);
    const wrong = await d.http.get('/webhook/crm/identity' + q({ ...fields, token: SECRET + 'x' })).expect(401);
    assert.match(wrong.body.error, /token wrong/);
    await d.http.get('/webhook/crm/identity' + q({ ...fields, token: SECRET.slice(0, 4) })).expect(401);
    await d.http.get('/webhook/crm/identity' + q(fields) + `&token=${SECRET}&token=${SECRET}`).expect(401);
    await d.http.post('/webhook/crm/identity').send({ ...fields, token: 'nope' }).expect(401);
    await settle();
    assert.equal(d.out.length, 0, 'nothing emitted for a rejected token');
    for (const r of d.replies) assert.ok(!JSON.stringify(r.payload).includes(SECRET), 'no token in a reply');

    await d.http.get('/webhook/crm/identity' + q({ ...fields, token: SECRET })).expect(200);
    await d.http.post('/webhook/crm/identity').send({ event: 'Insert', id: ID2, type: 'Identity', token: SECRET }).expect(200);
    await d.http.post('/webhook/crm/identity' + q({ token: SECRET })).send({ event: 'Insert', id: ID3, type: 'Identity' }).expect(200);
    await waitFor(() => d.out.length === 3, 3000, 'three events');
    assert.equal(d.replies.length, 8, 'one reply per request');
  });

  it('the token never appears on output 1, in the replies or in the log warnings', async () => {
    const d = await deploy({}, SECRET);
    await d.http.get('/webhook/crm/identity' + q({ event: 'Insert', id: ID, type: 'Identity', subtype: PERSON, token: SECRET })).expect(200);
    await d.http.get('/webhook/crm/identity' + q({ event: 'Bad', id: ID, type: 'Identity', token: SECRET })).expect(400);
    await waitFor(() => d.out.length === 1, 3000, 'the event');
    const text = allText(d.out[0]) + JSON.stringify(d.out[0]);
    assert.ok(!text.includes(SECRET), 'no token on output 1');
    assert.ok(!text.includes('token'), 'no token field on output 1');
    for (const r of d.replies) assert.ok(!JSON.stringify(r.payload).includes(SECRET));
    assert.ok(d.warns.length >= 1, 'the rejection was logged');
    assert.ok(!d.warns.join('\n').includes(SECRET));
  });

  it('token ${WEBHOOK_TOKEN}: required when the variable is set', async () => {
    process.env.WEBHOOK_TOKEN = 'env-token-5d1e0b';
    const d = await deploy({}, '${WEBHOOK_TOKEN}');
    const fields = { event: 'Insert', id: ID, type: 'Identity' };
    await d.http.get('/webhook/crm/identity' + q(fields)).expect(401);
    await d.http.get('/webhook/crm/identity' + q({ ...fields, token: '${WEBHOOK_TOKEN}' })).expect(401);
    await d.http.get('/webhook/crm/identity' + q({ ...fields, token: 'env-token-5d1e0b' })).expect(200);
    await waitFor(() => d.out.length === 1, 3000, 'the event');
  });

  it('token ${WEBHOOK_TOKEN} with the variable unset: no token needed (and a warning says so)', async () => {
    delete process.env.WEBHOOK_TOKEN;
    const d = await deploy({}, '${WEBHOOK_TOKEN}');
    await d.http.get('/webhook/crm/identity' + q({ event: 'Insert', id: ID, type: 'Identity' })).expect(200);
    // A token sent anyway is ignored, not an unknown field.
    await d.http.get('/webhook/crm/identity' + q({ event: 'Update', id: ID2, type: 'Identity', token: 'whatever' })).expect(200);
    await waitFor(() => d.out.length === 2, 3000, 'two events');
    assert.equal(d.statuses[0]?.text, 'no token (open)');
    assert.equal(d.statuses[0]?.fill, 'yellow');
  });

  it('refuses malformed requests with 400 and a message naming the problem; nothing is emitted', async () => {
    const d = await deploy();
    const ok = { event: 'Insert', id: ID, type: 'Identity', subtype: PERSON };
    const cases: Array<[string, string, RegExp]> = [
      ['no id', q({ event: 'Insert', type: 'Identity' }), /^id is missing/],
      ['non-GUID id', q({ ...ok, id: '12345' }), /id "12345" is not a CRM GUID/],
      ['unknown event', q({ ...ok, event: 'Created' }), /event "Created" is not one of Insert, Update, Delete/],
      ['unknown type', q({ ...ok, type: 'Person' }), /type "Person" is not one of Identity, Quote, Invoice/],
      ['wrong type for the endpoint', q({ ...ok, type: 'Quote' }), /type "Quote" was sent to an endpoint that accepts Identity only/],
      ['repeated id', q(ok) + `&id=${ID2}`, /id is repeated \(2 values\)/],
      ['10 kB value', q({ ...ok, subtype: 'a'.repeat(10_240) }), /subtype is too long \(10240 characters; at most 200\)/],
      ['script value', q({ ...ok, subtype: '<script>alert(1)</script>' }), /subtype contains "<"/],
      ['unknown field with a malformed id', q({ ...ok, id: 'nope', source: 'x' }), /id "nope" is not a CRM GUID/],
      ['nested value', `?event=Insert&id[a]=${ID}&type=Identity`, /id must be a single text value/],
    ];
    for (const [what, query, re] of cases) {
      const r = await d.http.get('/webhook/crm/identity' + query).expect(400);
      assert.equal(r.body.accepted, false, what);
      assert.match(r.body.error, re, what);
      assert.ok(!JSON.stringify(r.body).includes('<script'), `${what}: markup is never echoed`);
    }
    const big = await d.http.post('/webhook/crm/identity').send({ ...ok, subtype: 'ب'.repeat(10_240) }).expect(400);
    assert.match(big.body.error, /subtype is too long/);
    await settle();
    assert.equal(d.out.length, 0, 'nothing emitted');
    assert.equal(d.replies.length, cases.length + 1);
    assert.equal(d.statuses.at(-1)?.text, `0 accepted · ${cases.length + 1} rejected · no token (open)`);
    assert.equal(d.warns.length, 1, 'rejections are logged at most once a minute');
  });

  it('5 deliveries for one id → 5 replies, one job in the queue (Insert wins, the other 4 merged)', async () => {
    const d = await deploy();
    const events = ['Insert', 'Update', 'Update', 'Update', 'Update'];
    const res = [];
    for (const event of events) res.push(await d.http.get('/webhook/crm/identity' + q({ event, id: ID, type: 'Identity', subtype: PERSON })).expect(200));
    assert.equal(res.filter((r) => r.body.accepted === true && r.body.queued === true).length, 5);
    assert.deepEqual(res.map((r) => r.body.merged), [false, true, true, true, true], 'all but the first merged into the waiting job');
    assert.equal(d.replies.length, 5);
    const jobs = queuedJobs(d.dir);
    assert.equal(jobs.length, 1, 'one job');
    assert.equal(jobs[0].event.event, 'Insert');
    assert.equal(jobs[0].merged, 4);
    await waitFor(() => d.out.length === 5, 3000, 'a wake-up per accepted change');
    assert.equal(d.statuses.at(-1)?.text, '5 accepted · no token (open)');
  });

  it('deliveries for different ids are separate jobs', async () => {
    const d = await deploy();
    await Promise.all([ID, ID2, ID3, ID2].map((id) => d.http.get('/webhook/crm/identity' + q({ event: 'Update', id, type: 'Identity' })).expect(200)));
    const jobs = queuedJobs(d.dir);
    assert.deepEqual(jobs.map((j) => j.event.id).sort(), [ID, ID2, ID3].sort());
    assert.equal(jobs.find((j) => j.event.id === ID2)!.merged, 1);
  });

  it('the 200 leaves only once the change is on disk; a stop right after loses nothing', async () => {
    const d = await deploy();
    const seenAtReply: number[] = [];
    helper.getNode('rep').on('input', () => seenAtReply.push(queuedJobs(d.dir).length));
    await d.http.get('/webhook/crm/identity' + q({ event: 'Insert', id: ID, type: 'Identity' })).expect(200);
    await d.http.get('/webhook/crm/identity' + q({ event: 'Insert', id: ID2, type: 'Identity' })).expect(200);
    assert.deepEqual(seenAtReply, [1, 2], 'each reply found its job in the queue file');
    await helper.unload();
    assert.deepEqual(queuedJobs(d.dir).map((j) => j.event.id).sort(), [ID, ID2].sort(), 'both jobs are still queued after the stop');
  });

  it('echo mode answers with what arrived, token and credential headers redacted, and emits nothing', async () => {
    const d = await deploy({}, SECRET);
    const url = '/webhook/crm/test' + q({ event: 'Insert', id: ID, type: 'Identity', subtype: PERSON, token: SECRET });
    const r = await d.http.get(url).set('Authorization', 'Bearer abc').set('X-Trace', `ref ${SECRET}`).expect(200);
    const body = r.body;
    assert.equal(body.method, 'GET');
    assert.equal(body.query.token, '***');
    assert.equal(body.query.subtype, PERSON);
    assert.match(body.url, /token=\*\*\*/);
    assert.equal(body.headers.authorization, '***');
    assert.equal(body.headers['x-trace'], 'ref ***');
    assert.equal(body.token, 'ok');
    assert.deepEqual(body.check, { ok: true, event: 'Insert', id: ID, type: 'Identity', subtype: PERSON });
    assert.ok(!JSON.stringify(body).includes(SECRET), 'the token is redacted everywhere');

    const p = await d.http.post('/webhook/crm/test').send({ event: 'Bogus', id: 'x', token: SECRET }).expect(200);
    assert.equal(p.body.body.token, '***');
    assert.equal(p.body.token, 'ok');
    assert.equal(p.body.check.ok, false);
    assert.ok(!JSON.stringify(p.body).includes(SECRET));

    // Without the right token echo answers 401 like the real endpoints: it never says whether a token is right.
    const w = await d.http.get('/webhook/crm/test?token=wrong').expect(401);
    assert.equal(w.body.accepted, false);
    assert.equal(w.body.token, undefined);
    await d.http.get('/webhook/crm/test' + q({ event: 'Insert', id: ID, type: 'Identity' })).expect(401);
    await settle();
    assert.equal(d.out.length, 0, 'echo emits nothing');
  });

  // ------------------------------------------------------------------ issue #10.4: the token fails closed

  it('no token anywhere and allowNoToken off: every request 401 (with or without a token), red status, counted', async () => {
    const d = await deploy({ allowNoToken: false }, undefined, { allowNoToken: false });
    const fields = { event: 'Insert', id: ID, type: 'Identity' };
    const a = await d.http.get('/webhook/crm/identity' + q(fields)).expect(401);
    assert.match(a.body.error, /token missing/, 'the reply says nothing about the configuration');
    const b = await d.http.get('/webhook/crm/identity' + q({ ...fields, token: 'guess' })).expect(401);
    assert.match(b.body.error, /token wrong/);
    await d.http.get('/webhook/crm/test' + q(fields)).expect(401);
    await settle();
    assert.equal(d.out.length, 0);
    assert.deepEqual(d.statuses[0], { fill: 'red', shape: 'ring', text: 'no token configured: refusing all' });
    assert.equal(d.statuses.at(-1)?.fill, 'red');
    // The start-up warning (logged before the test's spies attach) reaches Node-RED's log.
    const logged = (helper.log().args as unknown[][]).map((a) => JSON.stringify(a[0]));
    assert.ok(logged.some((l) => /every webhook request is refused with 401/.test(l)), logged.join('\n'));
    const r = await helper.request().get('/siagh-sync/webhook-rejections/wh').expect(200);
    assert.deepEqual(r.body.counts, { 'token-not-configured': 2 });
  });

  it('a flow loaded without the token credential (a credentials file that lacks it) requires WEBHOOK_TOKEN from the environment, allowNoToken or not', async () => {
    process.env.WEBHOOK_TOKEN = 'env-only-token-8c1d';
    for (const allowNoToken of [true, false]) {
      const d = await deploy({ allowNoToken }); // no credentials at all
      const fields = { event: 'Insert', id: ID, type: 'Identity', subtype: PERSON };
      const missing = await d.http.get('/webhook/crm/identity' + q(fields)).expect(401);
      assert.match(missing.body.error, /token missing/);
      await d.http.get('/webhook/crm/identity' + q({ ...fields, token: 'nope' })).expect(401);
      await d.http.get('/webhook/crm/identity' + q({ ...fields, token: 'env-only-token-8c1d' })).expect(200);
      await waitFor(() => d.out.length === 1, 3000, 'the event');
      assert.equal(d.statuses[0]?.text, 'token required');
      // Echo needs it too.
      await d.http.get('/webhook/crm/test' + q(fields)).expect(401);
      const e = await d.http.get('/webhook/crm/test' + q({ ...fields, token: 'env-only-token-8c1d' })).expect(200);
      assert.equal(e.body.token, 'ok');
      assert.ok(!JSON.stringify(e.body).includes('env-only-token-8c1d'));
      await helper.unload();
    }
  });

  it('"token from environment variable" names another variable; the token then sits there only', async () => {
    process.env.HOOK_TOKEN_X = 'x-var-token-31';
    const d = await deploy({ tokenEnv: 'HOOK_TOKEN_X' });
    const fields = { event: 'Update', id: ID, type: 'Identity' };
    await d.http.get('/webhook/crm/identity' + q(fields)).expect(401);
    await d.http.get('/webhook/crm/identity' + q({ ...fields, TOKEN: 'x-var-token-31' })).expect(200);
    await waitFor(() => d.out.length === 1, 3000, 'the event');
  });

  it('ENABLE_WEBHOOKS=false: 200 {accepted:false, disabled:true}, nothing emitted, grey "disabled"; a wrong token is still 401', async () => {
    process.env.ENABLE_WEBHOOKS = 'false';
    const d = await deploy({}, SECRET);
    const fields = { event: 'Insert', id: ID, type: 'Identity', subtype: PERSON };
    const r = await d.http.get('/webhook/crm/identity' + q({ ...fields, token: SECRET })).expect(200);
    assert.deepEqual(r.body, { accepted: false, disabled: true, reason: 'webhooks are disabled (ENABLE_WEBHOOKS=false); polling picks this change up' });
    await d.http.get('/webhook/crm/identity' + q(fields)).expect(401);
    await settle();
    assert.equal(d.out.length, 0, 'nothing emitted while disabled');
    assert.deepEqual(d.statuses[0], { fill: 'grey', shape: 'ring', text: 'disabled (ENABLE_WEBHOOKS=false)' });
    assert.equal(d.statuses.at(-1)?.fill, 'grey');
    assert.match(String(d.statuses.at(-1)?.text), /^disabled/);
    // Echo (the test URL) still answers.
    const e = await d.http.get('/webhook/crm/test' + q({ ...fields, token: SECRET })).expect(200);
    assert.equal(e.body.received, true);
  });

  // ------------------------------------------------------------------ issue #14: tolerant intake

  it('tolerates small variations: unknown fields (kept redacted in msg.sync.extraFields), field-name case, braced upper-case GUID, %20 and + in subtypes', async () => {
    const d = await deploy({}, SECRET);
    const sends: Array<[string, string]> = [
      ['cache-buster', `?event=Insert&id=${ID}&type=Identity&subtype=${encodeURIComponent(PERSON).replace(/%20/g, '+')}&_=1733140000&token=${SECRET}`],
      ['name case', `?EVENT=Update&Id=${ID2}&TYPE=identity&SubType=${encodeURIComponent(PERSON)}&Token=${SECRET}`],
      ['braces', `?event=insert&id=${encodeURIComponent(`{${ID3.toUpperCase()}}`)}&type=Identity&token=${SECRET}`],
    ];
    for (const [what, query] of sends) {
      const r = await d.http.get('/webhook/crm/identity' + query);
      assert.equal(r.status, 200, `${what}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.accepted, true, what);
    }
    await waitFor(() => d.out.length === 3, 3000, 'three events');
    const byId = Object.fromEntries(d.out.map((m) => [m.payload.id, m]));
    assert.deepEqual(byId[ID].payload, { event: 'Insert', id: ID, type: 'Identity', subtype: PERSON });
    assert.deepEqual(byId[ID].sync.extraFields, { _: '1733140000' });
    assert.deepEqual(byId[ID2].payload, { event: 'Update', id: ID2, type: 'Identity', subtype: PERSON });
    assert.ok(byId[ID2].sync.normalised.some((x: string) => /EVENT read as event/.test(x)));
    assert.deepEqual(byId[ID3].payload, { event: 'Insert', id: ID3, type: 'Identity' });
    assert.ok(byId[ID3].sync.normalised.includes('id in braces'));
    assert.ok(!allText(d.out).includes(SECRET), 'no token on output 1');
    assert.equal(d.replies.length, 3);
  });

  it('a trailing slash on the path reaches the same http in (Express routes non-strictly)', async () => {
    const d = await deploy();
    const r = await d.http.get('/webhook/crm/identity/' + q({ event: 'Insert', id: ID, type: 'Identity' })).expect(200);
    assert.equal(r.body.accepted, true);
    await waitFor(() => d.out.length === 1, 3000, 'the event');
  });

  it('a body-less probe (no fields; a token or cache-buster at most) → 200 with what the endpoint expects; nothing emitted', async () => {
    const d = await deploy({}, SECRET);
    await d.http.get('/webhook/crm/identity').expect(401);
    const g = await d.http.get(`/webhook/crm/identity?token=${SECRET}&_=17`).expect(200);
    assert.equal(g.body.probe, true);
    assert.equal(g.body.accepted, false);
    assert.match(g.body.example, /^\/webhook\/crm\/identity\?event=Insert&id=.+&type=Identity&subtype=.+&token=<WEBHOOK_TOKEN>$/);
    assert.deepEqual(Object.keys(g.body.fields), ['event', 'id', 'type', 'subtype', 'token']);
    assert.ok(!JSON.stringify(g.body).includes(SECRET));
    const p = await d.http.post(`/webhook/crm/identity?token=${SECRET}`).expect(200);
    assert.equal(p.body.probe, true);
    // A POST with a body that lacks the fields is no probe.
    await d.http.post(`/webhook/crm/identity?token=${SECRET}`).send({ foo: 1 }).expect(400);
    await settle();
    assert.equal(d.out.length, 0, 'a probe emits nothing');
  });

  it('every refusal is counted per reason and readable, redacted, through GET /siagh-sync/webhook-rejections/:id', async () => {
    const d = await deploy({ keepRejections: 3 }, SECRET);
    const ok = { event: 'Insert', id: ID, type: 'Identity', token: SECRET };
    await d.http.get('/webhook/crm/identity' + q({ ...ok, token: '' })).set('Authorization', `Bearer ${SECRET}`).expect(401);
    await d.http.get('/webhook/crm/identity' + q({ ...ok, token: SECRET + 'x' })).expect(401);
    await d.http.get('/webhook/crm/identity' + q({ ...ok, id: '12345' })).expect(400);
    await d.http.get('/webhook/crm/identity' + q({ ...ok, event: 'Boom' })).expect(400);
    await d.http.get('/webhook/crm/identity' + q({ ...ok, type: 'Quote' })).expect(400);
    await d.http.get('/webhook/crm/identity' + q({ ...ok, id: 'abc' })).expect(400);
    await d.http.get('/webhook/crm/identity' + q({ ...ok, _: '1' })).expect(200);
    const r = await helper.request().get('/siagh-sync/webhook-rejections/wh').expect(200);
    assert.deepEqual(r.body.counts, { 'token-missing': 1, 'token-wrong': 1, 'invalid-id': 2, 'invalid-event': 1, 'wrong-endpoint': 1 });
    assert.equal(r.body.total, 6);
    assert.equal(r.body.recent.length, 3, 'the last 3 (keepRejections)');
    assert.deepEqual(r.body.recent.map((x: { reason: string }) => x.reason), ['invalid-id', 'wrong-endpoint', 'invalid-event']);
    const newest = r.body.recent[0];
    assert.equal(newest.method, 'GET');
    assert.equal(newest.status, 400);
    assert.match(newest.url, /^\/webhook\/crm\/identity\?.*token=\*\*\*/);
    assert.equal(newest.query.token, '***');
    assert.equal(typeof newest.headers, 'object');
    assert.ok(!Number.isNaN(Date.parse(newest.at)));
    assert.ok(!JSON.stringify(r.body).includes(SECRET), 'the token is in no rejection');
    await helper.request().get('/siagh-sync/webhook-rejections/nope').expect(404);
    assert.ok(!d.warns.join('\n').includes(SECRET));
  });

  it('the per-node example (examples/crm-webhook.json) works as shipped, its debug node swapped for a helper', async () => {
    delete process.env.WEBHOOK_TOKEN;
    // The package root: above dist/test in a build, or the working directory mocha runs in.
    const file = [REPO_ROOT, process.cwd()].map((root) => path.join(root, 'examples', 'crm-webhook.json')).find((f) => fs.existsSync(f));
    assert.ok(file, 'examples/crm-webhook.json found');
    const flow = JSON.parse(fs.readFileSync(file, 'utf8')) as Array<Record<string, unknown>>;
    const creds: Record<string, unknown> = {};
    for (const node of flow) {
      if (node.credentials) {
        creds[node.id as string] = node.credentials;
        delete node.credentials;
      }
      if (node.type === 'debug') node.type = 'helper';
    }
    await helper.load([...NODES(), commentNode], flow, creds);
    const debug = flow.find((x) => x.type === 'helper')!;
    const out = collect(helper.getNode(debug.id as string));
    const http = request(httpNode as any);
    const r = await http.get('/example/crm-webhook' + q({ event: 'Insert', id: ID, type: 'Identity', subtype: PERSON })).expect(200);
    assert.equal(r.body.accepted, true);
    await waitFor(() => out.length === 1, 5000, 'the event in the example');
    assert.deepEqual(out[0].payload, { event: 'Insert', id: ID, type: 'Identity', subtype: PERSON });
    await http.get('/example/crm-webhook?event=Insert&id=nope&type=Identity').expect(400);
  });
});
