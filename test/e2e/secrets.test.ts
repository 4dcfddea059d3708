/**
 * Secrets: the three pipelines run on a real Node-RED (shipped flows, package from its tarball)
 * with known, distinctive credentials — the CRM password, the Siagh password and the upper-case
 * MD5 Siagh logs in with, the WEBHOOK_TOKEN — plus the CRM access tokens and Siagh session ids
 * issued during the run. Then every place an operator can see is searched: each message the
 * flows' debug nodes publish (captured on the editor's /comms websocket), the Node-RED log,
 * sync-log.jsonl, failed.json, mappings.json, the import report, the /health and test-echo
 * replies, a flow export (GET /flows) and the operator's console's views. Zero hits for every secret.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { seedSiaghContacts } from '../../sim/seed';
import { CRM_SIM_DEFAULTS } from '../../sim/crm-sim';
import { E2E_CRM_USER, E2E_SIAGH_USER, E2eEnv, shippedFlows, sleep } from '../helpers/e2e';
import { failedFilesText, person, QUOTE_ROWS, readFailed, readSyncLog, replayAll, settle, Tracked } from '../helpers/faults';

const CRM_PASSWORD = 'Crm-S3cret-Zq81x';
const SIAGH_PASSWORD = 'Sgh-S3cret-Wv27k';
const SIAGH_MD5 = createHash('md5').update(SIAGH_PASSWORD, 'utf8').digest('hex').toUpperCase();
const WEBHOOK_TOKEN = 'wh-T0ken-Qp93x7Lm';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const WebSocket = require(require.resolve('ws', { paths: [require.resolve('node-red/package.json')] })) as new (url: string) => {
  on(ev: 'message', cb: (data: Buffer | string) => void): void;
  on(ev: 'open' | 'close', cb: () => void): void;
  on(ev: 'error', cb: (e: Error) => void): void;
  send(s: string): void;
  close(): void;
};

describe('secrets: no password, hash, token or session id anywhere an operator can look', function () {
  this.timeout(120_000);
  let env: E2eEnv;
  const debugMessages: string[] = [];
  const crmTokens = new Set<string>();
  const siaghSessions = new Set<string>();
  let ws: InstanceType<typeof WebSocket> | undefined;

  before(async function () {
    this.timeout(180_000);
    env = await E2eEnv.start({
      pollIntervalSeconds: 2,
      webhookToken: WEBHOOK_TOKEN,
      siagh: { users: [{ UserName: E2E_SIAGH_USER.UserName, Password: SIAGH_PASSWORD }] },
      crm: { users: [{ username: E2E_CRM_USER.username, password: CRM_PASSWORD }] },
      env: { CRM_PASSWORD, FINANCE_PASSWORD: SIAGH_PASSWORD },
    });
    // Every bearer token the CRM sees, every session id Siagh holds.
    env.crm.beforeHandle = (req) => {
      const m = /^Bearer\s+(\S+)/.exec(String(req.headers.authorization ?? ''));
      if (m) crmTokens.add(m[1]);
    };
    const sessions = () => (env.siagh as unknown as { sessions: Map<string, unknown> }).sessions;
    env.siagh.onSave = (_s, reply) => {
      for (const id of sessions().keys()) siaghSessions.add(id);
      return reply;
    };
    // The editor's view of the debug nodes.
    ws = new WebSocket(env.url.replace(/^http/, 'ws') + '/comms');
    await new Promise<void>((resolve, reject) => {
      ws!.on('open', () => resolve());
      ws!.on('error', reject);
    });
    ws.on('message', (data) => {
      const text = data.toString();
      if (text.includes('"topic":"debug"')) debugMessages.push(text);
    });
    ws.send(JSON.stringify({ subscribe: 'debug' }));
  });
  after(async () => {
    ws?.close();
    await env?.stop();
  });

  it('runs the webhook (incl. failing events and a replay), polling and import pipelines, then finds no secret anywhere', async () => {
    // Webhook: a synced person and quote, through a Siagh session expiry and a CRM token expiry.
    const spec = person('secret');
    const p: Tracked = { kind: 'identity', crmId: env.crm.addPerson(spec.fields).crmId, spec };
    await settle(env, [p]);
    env.siagh.expireAllSessions();
    env.crm.expireAllTokens();
    const q: Tracked = { kind: 'quote', crmId: env.crm.addQuote({ identityId: p.crmId, details: QUOTE_ROWS }).crmId, customerId: p.crmId };
    await settle(env, [q]);
    // Failing events: an id the CRM does not know; a Siagh that answers 5xx to every save.
    const ghost = '5f0c2a8e-1111-4222-8333-944455556666';
    const r1 = await env.sendWebhook('identity', { event: 'Update', id: ghost, type: 'Identity', subtype: CRM_SIM_DEFAULTS.personSubtype });
    assert.equal(r1.status, 200);
    // p2 reaches Siagh only through the poll (every 2 s here): with a webhook as well, whichever
    // of the two came second could succeed once the fault is cleared and empty its failed entry.
    env.siagh.faults.add({ kind: '5xx', path: '/SaveFormData', times: 1000 });
    const spec2 = person('secret-fail');
    const p2: Tracked = { kind: 'identity', crmId: env.crm.addPerson(spec2.fields, { webhook: false }).crmId, spec: spec2 };
    await settle(env, [p2], { timeoutMs: 20_000 });
    await env.waitFor('both failures in failed.json', () => readFailed(env.dataDir).length >= 2);
    env.siagh.faults.clear();
    // Rejected requests (the right token on a malformed request, a wrong token) and the test echo.
    assert.equal((await env.sendWebhook('identity', { event: 'Insert', id: 'not-a-guid', type: 'Identity' })).status, 400);
    assert.equal((await env.sendWebhook('identity', { event: 'Insert', id: ghost, type: 'Identity' }, { token: 'not-the-token' })).status, 401);
    const echo = await env.sendWebhook('test', { event: 'Insert', id: ghost, type: 'Identity' });
    assert.equal(echo.status, 200);
    // Replay (the ghost fails again, the AMBIGUOUS_CREATE one waits for the operator).
    await replayAll(env, []);

    // Import: Siagh contacts into the CRM; its report file.
    for (const c of seedSiaghContacts(15, { seed: 4711, firstCode: 30_000, admins: 1 })) env.siagh.addContact(c);
    const inject = shippedFlows().find((x) => x.type === 'inject' && x.name === 'import')!;
    await env.inject(inject.id);
    await env.waitFor('the import report', () => env.reportFiles().length > 0, 30_000);
    // Polling: an identity without a webhook, found by the poll.
    const spec3 = person('secret-poll');
    const p3: Tracked = { kind: 'identity', crmId: env.crm.addPerson(spec3.fields, { webhook: false }).crmId, spec: spec3 };
    await settle(env, [p3], { timeoutMs: 20_000 });
    const health = await (await fetch(`${env.url}/health`)).text();
    const flowsExport = await (await fetch(`${env.url}/flows`)).text();
    // The operator's console: every view it has, for the shipped flows' data folder.
    const consoleGet = async (p: string) => (await fetch(`${env.url}/siagh-sync/console${p}`)).text();
    const consoleStores = await consoleGet('/stores');
    const storeId = (JSON.parse(consoleStores) as { stores: Array<{ id: string }> }).stores[0].id;
    const consoleViews = [consoleStores, await consoleGet(`/${storeId}/now`), await consoleGet(`/${storeId}/failures?limit=100`), await consoleGet(`/${storeId}/search?q=${ghost}`), await consoleGet(`/${storeId}/search?q=${p3.crmId}`)];
    assert.match(consoleViews[2], /"groups":\[\{/, 'the console lists the failures');
    await sleep(500); // the last debug messages and log lines

    assert.ok(crmTokens.size >= 2, `CRM tokens seen: ${crmTokens.size}`);
    assert.ok(siaghSessions.size >= 2, `Siagh sessions seen: ${siaghSessions.size}`);
    assert.ok(debugMessages.length >= 5, `debug messages captured: ${debugMessages.length}`);
    const places: Record<string, string> = {
      'debug messages (/comms)': debugMessages.join('\n'),
      'Node-RED log': env.log(),
      'sync-log.jsonl': readSyncLog(env.dataDir),
      'failed.json + failed.jsonl': failedFilesText(env.dataDir),
      'mappings.json': fs.readFileSync(path.join(env.dataDir, 'mappings.json'), 'utf8'),
      'mappings.json.journal': fs.existsSync(path.join(env.dataDir, 'mappings.json.journal')) ? fs.readFileSync(path.join(env.dataDir, 'mappings.json.journal'), 'utf8') : '',
      'import report': env.reportFiles().map((f) => fs.readFileSync(f, 'utf8')).join('\n'),
      '/health': health,
      'test echo': echo.text,
      'GET /flows': flowsExport,
      'the console (its admin routes)': consoleViews.join('\n'),
    };
    for (const [where, text] of Object.entries(places)) assert.ok(text.length > 0, `${where} is not empty`);
    assert.match(places['sync-log.jsonl'], /"status":"failed"/, 'the failures were logged');
    assert.match(places['import report'], /"records"/);
    const secrets: Record<string, string> = {
      'CRM password': CRM_PASSWORD,
      'Siagh password': SIAGH_PASSWORD,
      'Siagh password MD5': SIAGH_MD5,
      'Siagh password md5 (lower case)': SIAGH_MD5.toLowerCase(),
      WEBHOOK_TOKEN,
      ...Object.fromEntries([...crmTokens].map((t, i) => [`CRM access token ${i + 1}`, t.split('.')[2] ?? t])),
      ...Object.fromEntries([...siaghSessions].map((s, i) => [`Siagh session id ${i + 1}`, s])),
    };
    const hits: string[] = [];
    for (const [where, text] of Object.entries(places)) {
      for (const [what, secret] of Object.entries(secrets)) if (text.includes(secret)) hits.push(`${what} in ${where}`);
    }
    assert.deepEqual(hits, []);
  });
});
