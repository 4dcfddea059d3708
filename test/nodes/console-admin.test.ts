/**
 * The console plugin's admin routes in a real Node-RED child (the package installed from its
 * tarball, adminAuth with a full-permission user and a read-only one): a webhook pipeline syncs one
 * person and fails one event; the routes answer the console's questions to a read token, refuse to
 * act for it, replay for a full token, check their input, find the customer (and its quote) again
 * after Node-RED restarts, and never show a secret.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { installTarball, packedTarball, waitFor } from '../helpers/e2e';
import { QUOTE_ROWS } from '../helpers/faults';
import { CRM_USER, SIAGH_USER, startSims } from '../helpers/node-env';
import { NodeRedProcess, startNodeRed, writeSettings } from '../helpers/nodered-process';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const bcrypt = require(require.resolve('bcryptjs', { paths: [path.dirname(require.resolve('node-red/package.json'))] })) as { hashSync(s: string, rounds: number): string };

const ADMIN = { username: 'admin', password: 'admin-pass-77ab' };
const VIEWER = { username: 'viewer', password: 'viewer-pass-41cd' };
const MISSING = '0badf00d-1111-4222-8333-444455556666';

describe('console plugin: admin routes (real Node-RED child, adminAuth)', function () {
  this.timeout(60_000);
  let sims: Awaited<ReturnType<typeof startSims>>;
  let red: NodeRedProcess;
  let dir: string;
  let settingsFile: string;
  let adminToken: string;
  let viewerToken: string;
  let storeId: string;
  let personId: string;
  const answers: string[] = [];

  async function token(user: { username: string; password: string }, scope: string): Promise<string> {
    const res = await fetch(`${red.url}/auth/token`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ client_id: 'node-red-admin', grant_type: 'password', scope, username: user.username, password: user.password }),
    });
    const body = (await res.json()) as { access_token?: string };
    assert.equal(res.status, 200, JSON.stringify(body));
    return body.access_token!;
  }

  async function call(method: 'GET' | 'POST', p: string, tok: string | undefined, body?: unknown): Promise<{ status: number; body: any; text: string }> {
    const res = await fetch(`${red.url}/siagh-sync/console${p}`, {
      method,
      headers: { 'Content-Type': 'application/json', ...(tok ? { Authorization: `Bearer ${tok}` } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    answers.push(text);
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      /* not JSON */
    }
    return { status: res.status, body: parsed, text };
  }

  before(async function () {
    this.timeout(180_000);
    sims = await startSims();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'siagh-sync-console-admin-'));
    installTarball(dir, packedTarball());
    settingsFile = writeSettings(dir, {
      credentialSecret: 'console-admin-test-secret',
      adminAuth: {
        type: 'credentials',
        users: [
          { username: ADMIN.username, password: bcrypt.hashSync(ADMIN.password, 8), permissions: '*' },
          { username: VIEWER.username, password: bcrypt.hashSync(VIEWER.password, 8), permissions: 'read' },
        ],
      },
    });
    red = await startNodeRed({ userDir: dir, settingsFile, readyPath: '/auth/login' });
    adminToken = await token(ADMIN, '*');
    viewerToken = await token(VIEWER, 'read');
    const z = 't1';
    const at = (x: number, y: number) => ({ z, x, y });
    const flow = [
      { id: z, type: 'tab', label: 'console' },
      { id: 'in1', type: 'http in', ...at(100, 80), name: '', url: '/console-test/hook', method: 'get', upload: false, swaggerDoc: '', wires: [['res1', 'queue1']] },
      { id: 'res1', type: 'http response', ...at(300, 40), name: '', statusCode: '200', headers: {}, wires: [] },
      { id: 'queue1', type: 'sync-queue', ...at(300, 120), name: '', store: 'store1', concurrency: 2, wires: [['fetch1']] },
      { id: 'fetch1', type: 'crm-fetch', ...at(500, 120), name: '', crm: 'crm1', what: 'auto', searchOutput: 'each', pageSize: 200, wires: [['lookup1']] },
      { id: 'lookup1', type: 'sync-mapping', ...at(700, 120), name: '', file: '', store: 'store1', operation: 'lookup', entityType: 'auto', claim: true, leaseSeconds: 60, waitSeconds: 300, source: '', wires: [['upsert1']] },
      { id: 'upsert1', type: 'siagh-upsert', ...at(900, 120), name: '', siagh: 'siagh1', mode: 'auto', emptyPolicy: 'keep', wires: [['storemap1']] },
      { id: 'storemap1', type: 'sync-mapping', ...at(1100, 120), name: '', file: '', store: 'store1', operation: 'store', entityType: 'auto', claim: true, leaseSeconds: 60, waitSeconds: 300, source: 'webhook', wires: [['log1']] },
      { id: 'catch1', type: 'catch', ...at(700, 220), name: '', scope: null, uncaught: false, wires: [['log1']] },
      { id: 'log1', type: 'sync-log', ...at(1100, 220), name: 'sync log', store: 'store1', dir: '', trigger: 'webhook', wires: [[], ['queue1']] },
      { id: 'store1', type: 'sync-store', name: 'data', backend: 'file', dir: path.join(dir, 'data'), maxAttempts: '', maxAgeHours: '', firstRetrySeconds: '', maxRetryDelaySeconds: '', leaseSeconds: 120 },
      { id: 'crm1', type: 'crm-config', name: 'CRM sim', baseUrl: sims.crm.url, timeout: 10, concurrency: 4, ca: '', credentials: { username: CRM_USER.username, password: CRM_USER.password } },
      { id: 'siagh1', type: 'siagh-config', name: 'Siagh sim', baseUrl: sims.siagh.url, saveFormDataPath: '/BpmsApi/SaveFormData', indexMaxAge: 10, timeout: 10, concurrency: 4, ambiguousPreInvoice: 'fail', ca: '', credentials: { username: SIAGH_USER.UserName, password: SIAGH_USER.Password } },
    ];
    const from = red.log().length;
    const res = await fetch(`${red.url}/flows`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'Node-RED-Deployment-Type': 'full', Authorization: `Bearer ${adminToken}` },
      body: JSON.stringify(flow),
    });
    assert.ok(res.status === 200 || res.status === 204, `deploy: ${res.status} ${await res.text()}`);
    await waitFor('the flow to start', () => /Started flows/.test(red.log().slice(from)), { timeoutMs: 20_000 });

    // One person synced, one event for a record the CRM does not have (a permanent failure).
    personId = sims.crm.addPerson({ firstName: 'مریم', lastName: 'كاظمي', nationalCode: '0012345679', phoneContacts: [{ phoneType: 'موبایل', phoneNumber: '09123334455', default: true }] }, { webhook: false }).crmId;
    for (const id of [personId, MISSING]) assert.equal((await fetch(`${red.url}/console-test/hook?event=Update&type=Identity&id=${id}`)).status, 200);
  });

  after(async () => {
    await red?.stop();
    await sims?.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('anonymous requests are refused (401)', async () => {
    for (const [m, p] of [['GET', '/stores'], ['GET', '/x/now'], ['GET', '/x/search?q=a'], ['POST', '/x/replay']] as const) {
      const r = await call(m, p, undefined, m === 'POST' ? { code: 'CRM_NOT_FOUND' } : undefined);
      assert.equal(r.status, 401, `${m} ${p}: ${r.text}`);
    }
  });

  it('a read token sees the folder, the queue, the failures and a customer found by a Persian spelling variant', async () => {
    const stores = await call('GET', '/stores', viewerToken);
    assert.equal(stores.status, 200, stores.text);
    assert.equal(stores.body.stores.length, 1);
    assert.equal(stores.body.stores[0].dir, path.join(dir, 'data'));
    storeId = stores.body.stores[0].id;

    const failures = await waitFor('the failure in the console', async () => {
      const r = await call('GET', `/${storeId}/failures`, viewerToken);
      return r.body.groups?.length ? r.body : undefined;
    }, { timeoutMs: 20_000 });
    assert.deepEqual(failures.groups.map((g: any) => [g.code, g.count]), [['CRM_NOT_FOUND', 1]]);
    assert.equal(failures.groups[0].items[0].crmId, MISSING);

    const now = await waitFor('the success in the console', async () => {
      const r = await call('GET', `/${storeId}/now?minutes=60`, viewerToken);
      assert.equal(r.status, 200, r.text);
      return Object.values(r.body.lastPerPipeline).some((p: any) => p.ok) ? r : undefined;
    }, { timeoutMs: 20_000 });
    assert.equal(now.body.perMinute.length, 60);
    assert.equal(now.body.queue.failed, 1);
    // A plain http-in (no crm-webhook node) queues with the trigger "manual".
    assert.equal(now.body.lastPerPipeline.manual.ok.crmId, personId);
    assert.equal(now.body.lastPerPipeline.manual.failed.error.code, 'CRM_NOT_FOUND');
    const crm = now.body.connections.find((c: any) => c.type === 'crm-config');
    assert.equal(crm.state.loggedIn, true);
    assert.ok(Date.parse(crm.state.lastLoginAt) > 0);
    assert.equal(now.body.connections.find((c: any) => c.type === 'siagh-config').state.loggedIn, true);

    // Persian yeh and kaf typed where the CRM has the Arabic letters.
    const found = await call('GET', `/${storeId}/search?q=${encodeURIComponent('مریم کاظمی')}`, viewerToken);
    assert.equal(found.status, 200, found.text);
    assert.deepEqual(found.body.hits.map((h: any) => h.crmId), [personId]);
    const hit = found.body.hits[0];
    assert.equal(hit.mappings[0].entityType, 'contact');
    assert.equal(hit.timeline.items[0].status, 'ok');
    assert.ok(hit.timeline.items[0].durationMs >= 0);
    const byMobile = await call('GET', `/${storeId}/search?q=${encodeURIComponent('۰۹۱۲۳۳۳۴۴۵۵')}`, viewerToken);
    assert.deepEqual(byMobile.body.hits.map((h: any) => h.crmId), [personId]);
  });

  it('a read token cannot replay or resolve (401/403)', async () => {
    for (const [p, body] of [['replay', { crmId: MISSING }], ['resolve', { crmId: MISSING, decision: 'separate' }]] as const) {
      const r = await call('POST', `/${storeId}/${p}`, viewerToken, body);
      assert.ok(r.status === 401 || r.status === 403, `${p}: ${r.status} ${r.text}`);
    }
  });

  it('checks its input: 400 for a bad query or body, 404 for an unknown folder', async () => {
    assert.equal((await call('GET', `/${storeId}/search`, viewerToken)).status, 400);
    assert.equal((await call('GET', `/${storeId}/search?q=a&limit=1000`, viewerToken)).status, 400);
    assert.equal((await call('GET', `/${storeId}/failures?code=${encodeURIComponent('<script>')}`, viewerToken)).status, 400);
    assert.equal((await call('POST', `/${storeId}/replay`, adminToken, { crmId: 'not-a-guid' })).status, 400);
    assert.equal((await call('POST', `/${storeId}/replay`, adminToken, { all: true })).status, 400, 'no blanket replay from the console');
    const review = await call('POST', `/${storeId}/resolve`, adminToken, { crmId: MISSING, decision: 'separate' });
    assert.equal(review.status, 400, review.text);
    assert.match(review.body.message, /not a review item/);
    assert.equal((await call('GET', '/ffffffffffff/now', viewerToken)).status, 404);
  });

  it('a full token replays a group; the event runs again and fails again (the record is still missing)', async () => {
    const r = await call('POST', `/${storeId}/replay`, adminToken, { code: 'CRM_NOT_FOUND' });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.replayed, 1);
    assert.equal(r.body.via, 'log1');
    await waitFor('the replayed event to fail again', async () => {
      const f = await call('GET', `/${storeId}/failures`, viewerToken);
      const item = f.body.groups?.[0]?.items?.[0];
      return item && item.replays === 1 && item.attempts >= 2 ? item : undefined;
    }, { timeoutMs: 20_000 });
    const t = await call('GET', `/${storeId}/search?q=${MISSING}`, viewerToken);
    const triggers = t.body.hits[0].timeline.items.map((l: any) => l.trigger);
    assert.equal(triggers[0], 'replay', `newest first: ${triggers}`);
  });

  it('after Node-RED restarts, a read token finds the customer by a spelling variant of the name and by mobile, with its quote', async () => {
    const quote = sims.crm.addQuote({ identityId: personId, details: QUOTE_ROWS }, { webhook: false });
    assert.equal((await fetch(`${red.url}/console-test/hook?event=Insert&type=Quote&id=${quote.crmId}`)).status, 200);
    const name = encodeURIComponent('مريم کاظمی');
    await waitFor('the quote in its customer\u2019s timeline', async () => {
      const r = await call('GET', `/${storeId}/search?q=${name}`, viewerToken);
      return r.body.hits?.[0]?.timeline.items.some((l: any) => l.crmId === quote.crmId && l.status === 'ok') ? r : undefined;
    }, { timeoutMs: 30_000 });

    await red.stop(); // the console's index lives in memory: gone with the process
    red = await startNodeRed({ userDir: dir, settingsFile, readyPath: '/auth/login' });
    const found = await waitFor('the customer found by name after the restart', async () => {
      const r = await call('GET', `/${storeId}/search?q=${name}`, viewerToken);
      return r.status === 200 && r.body.hits?.length ? r.body : undefined;
    }, { timeoutMs: 20_000 });
    assert.deepEqual(found.hits.map((h: any) => h.crmId), [personId]);
    const hit = found.hits[0];
    assert.equal(hit.name, 'مریم كاظمي', 'the name as the CRM writes it');
    assert.equal(hit.mobile, '09123334455');
    assert.equal(hit.mappings[0].entityType, 'contact');
    const ops = hit.timeline.items.map((l: any) => [l.crmId, l.entity, l.status]);
    assert.deepEqual(ops[0], [quote.crmId, 'quote', 'ok'], `the quote, newest first: ${JSON.stringify(ops)}`);
    assert.ok(ops.some((o: string[]) => o[0] === personId && o[2] === 'ok'), JSON.stringify(ops));
    const byMobile = await call('GET', `/${storeId}/search?q=${encodeURIComponent('۰۹۱۲۳۳۳۴۴۵۵')}`, viewerToken);
    assert.deepEqual(byMobile.body.hits.map((h: any) => h.crmId), [personId]);
    const byCode = await call('GET', `/${storeId}/search?q=0012345679`, viewerToken);
    assert.deepEqual(byCode.body.hits.map((h: any) => h.crmId), [personId], 'by national code');
  });

  it('no answer carries a password, its MD5 or a token', () => {
    const all = answers.join('\n');
    const md5 = createHash('md5').update(SIAGH_USER.Password, 'utf8').digest('hex');
    for (const s of [CRM_USER.password, SIAGH_USER.Password, md5, md5.toUpperCase(), adminToken, viewerToken, 'console-admin-test-secret']) assert.ok(!all.includes(s), `an answer holds ${s.slice(0, 4)}…`);
    assert.doesNotMatch(all, /accessToken|SessionId|"token"/);
  });
});
