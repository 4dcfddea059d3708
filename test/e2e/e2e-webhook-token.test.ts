/**
 * The webhook token fails closed (issue #10 item 4), on a real Node-RED with the shipped flows:
 * 1. a fresh install (no WEBHOOK_TOKEN anywhere) works out of the box: the shipped flows allow
 *    requests without a token and say so;
 * 2. the flows loaded from the flows file at start, with a credentials file that has no webhook
 *    token (as in a container) and WEBHOOK_TOKEN set in the environment: every request without the
 *    right token gets 401, the test URL too, and the refusals are counted (never the token);
 * 3. ENABLE_WEBHOOKS=false: 200 {accepted: false, disabled: true}, nothing fetched or written.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { CRM_SIM_DEFAULTS } from '../../sim/crm-sim';
import { nationalIdWithCheckDigit } from '../../sim/seed';
import { countMatching, CRM_IDENTITY_GET_RE, CRM_LIST_RE, E2eEnv, sleep } from '../helpers/e2e';

const SETTLE_MS = 2500;
/** The credentialSecret E2eEnv writes into the settings. */
const CREDENTIAL_SECRET = 'e2e-credential-secret';
const ENV_TOKEN = 'container-env-token-52ab';

let seq = 0;
function person(tag: string): Record<string, unknown> {
  seq++;
  const n = (Date.now() % 100_000) * 100 + seq;
  return {
    firstName: 'سارا',
    lastName: `محمدی ${tag}`,
    nickName: `سارا محمدی ${tag} ${n}`,
    nationalCode: nationalIdWithCheckDigit(`00${String(1_000_000 + (n % 8_999_999)).slice(0, 7)}`),
    phoneContacts: [{ default: true, phoneType: 'موبایل', phoneNumber: `0935${String(1_000_000 + (n % 9_000_000)).padStart(7, '0')}` }],
  };
}

/** Node-RED's credentials file format: {"$": iv(hex) + aes-256-ctr(JSON) in base64}, key sha256(credentialSecret). */
function editCredentials(file: string, edit: (creds: Record<string, Record<string, unknown>>) => void): void {
  const key = crypto.createHash('sha256').update(CREDENTIAL_SECRET).digest();
  const enc = (JSON.parse(fs.readFileSync(file, 'utf8')) as { $: string }).$;
  const decipher = crypto.createDecipheriv('aes-256-ctr', key, Buffer.from(enc.slice(0, 32), 'hex'));
  const creds = JSON.parse(decipher.update(enc.slice(32), 'base64', 'utf8') + decipher.final('utf8')) as Record<string, Record<string, unknown>>;
  edit(creds);
  const iv = crypto.randomBytes(16);
  const cipher = crypto.createCipheriv('aes-256-ctr', key, iv);
  fs.writeFileSync(file, JSON.stringify({ $: iv.toString('hex') + cipher.update(JSON.stringify(creds), 'utf8', 'base64') + cipher.final('base64') }));
}

describe('e2e: the webhook token fails closed (shipped flows, real Node-RED)', function () {
  this.timeout(90_000);
  let env: E2eEnv;
  const byName = (name: unknown) => env.siagh.contacts().filter((c) => c.Name === name);
  const writes = () => ({ saves: env.siagh.saveCount, contacts: env.siagh.contacts().length, crmGets: countMatching(env.crm, CRM_IDENTITY_GET_RE) });
  const query = (id: string, token?: string) =>
    `event=Insert&id=${id}&type=Identity&subtype=${encodeURIComponent(CRM_SIM_DEFAULTS.personSubtype)}` + (token !== undefined ? `&token=${encodeURIComponent(token)}` : '');
  async function get(p: string): Promise<{ status: number; body: Record<string, unknown>; text: string }> {
    const res = await fetch(`${env.url}${p}`);
    const text = await res.text();
    let body: Record<string, unknown> = {};
    try {
      body = JSON.parse(text);
    } catch {
      /* not JSON */
    }
    return { status: res.status, body, text };
  }

  /** Restarts Node-RED and waits out the polling run it makes at start, so its CRM reads are not counted as the webhook's. */
  async function restartQuiet(vars: Record<string, string>): Promise<void> {
    const lists = countMatching(env.crm, CRM_LIST_RE);
    await env.restart(vars);
    await env.waitFor('the polling run after the restart', () => countMatching(env.crm, CRM_LIST_RE) > lists, 15_000).catch(() => undefined);
    await env.waitQuiet('the polling run after the restart', () => [...env.crm.counts.entries()], { quietMs: 500 });
  }

  before(async function () {
    this.timeout(180_000);
    // As `npm start` runs: no WEBHOOK_TOKEN anywhere.
    env = await E2eEnv.start({ pollIntervalSeconds: 3600, webhookToken: null, env: { WEBHOOK_TOKEN: '' } });
    await env.waitFor('the first polling run', () => countMatching(env.crm, CRM_LIST_RE) > 0, 15_000).catch(() => undefined);
    await env.waitQuiet('the first polling run', () => [...env.crm.counts.entries()], { quietMs: 500 });
  });
  after(async () => {
    await env?.stop();
  });

  it('a fresh install without any token: the shipped flows accept the CRM webhook (allowNoToken) and say the endpoint is open', async () => {
    const p = person('open');
    env.crm.addPerson(p); // the simulated CRM delivers its webhook, without a token
    await env.waitFor('the contact in Siagh', () => byName(p.nickName).length === 1);
    assert.match(env.log(), /accepted without a token because "accept requests without a token" is ticked/);
  });

  it('flows loaded from the flows file with a credentials file that lacks the token, WEBHOOK_TOKEN set: 401 without the right token, the test URL too', async () => {
    const credFile = path.join(env.userDir, 'flows_cred.json');
    const hooks = ['wh-hook-identity', 'wh-hook-quote', 'wh-hook-invoice', 'wh-echo'];
    editCredentials(credFile, (creds) => {
      for (const id of hooks) delete creds[id];
      assert.ok(creds['cfg-crm'], 'the other credentials stay');
    });
    editCredentials(credFile, (creds) => assert.deepEqual(hooks.filter((id) => creds[id]), [], 'no webhook token in the credentials file'));
    await restartQuiet({ WEBHOOK_TOKEN: ENV_TOKEN });

    const p = person('closed');
    const rec = env.crm.addPerson(p, { webhook: false });
    const before = writes();
    const refused: string[] = [];
    for (const [what, url] of [
      ['no token', `/webhook/crm/identity?${query(rec.crmId)}`],
      ['a wrong token', `/webhook/crm/identity?${query(rec.crmId, 'guess')}`],
      ['a wrong token of the right length', `/webhook/crm/identity?${query(rec.crmId, 'x'.repeat(ENV_TOKEN.length))}`],
      ['the old credential text', `/webhook/crm/identity?${query(rec.crmId, '${WEBHOOK_TOKEN}')}`],
      ['a probe without a token', '/webhook/crm/identity'],
      ['the test URL without a token', `/webhook/crm/test?${query(rec.crmId)}`],
      ['the test URL with a wrong token', `/webhook/crm/test?${query(rec.crmId, 'guess')}`],
    ] as const) {
      const r = await get(url);
      if (r.status !== 401) refused.push(`${what}: HTTP ${r.status} ${r.text.slice(0, 200)}`);
      if (/"token":"(ok|wrong|missing)"/.test(r.text)) refused.push(`${what}: the reply tells the token verdict`);
    }
    assert.deepEqual(refused, []);
    await sleep(SETTLE_MS);
    assert.deepEqual(writes(), before, 'nothing fetched or written');

    // The right token: accepted and synced once; the test URL answers.
    const ok = await get(`/webhook/crm/identity?${query(rec.crmId, ENV_TOKEN)}`);
    assert.equal(ok.status, 200, ok.text);
    const echo = await get(`/webhook/crm/test?${query(rec.crmId, ENV_TOKEN)}`);
    assert.equal(echo.status, 200, echo.text);
    assert.equal(echo.body.token, 'ok');
    assert.ok(!echo.text.includes(ENV_TOKEN));
    await env.waitFor('the contact in Siagh', () => byName(p.nickName).length === 1);
    await env.waitQuiet('Siagh writes', writes);
    assert.equal(byName(p.nickName).length, 1, 'synced once');

    // The refusals are counted per reason (the identity endpoint: 5; echo: 2), the token never shown.
    const rej = (await (await fetch(`${env.url}/siagh-sync/webhook-rejections/wh-hook-identity`)).json()) as { counts: Record<string, number> };
    assert.deepEqual(rej.counts, { 'token-missing': 2, 'token-wrong': 3 });
    const echoRej = (await (await fetch(`${env.url}/siagh-sync/webhook-rejections/wh-echo`)).json()) as { counts: Record<string, number> };
    assert.deepEqual(echoRej.counts, { 'token-missing': 1, 'token-wrong': 1 });
    assert.doesNotMatch(JSON.stringify([rej, echoRej]) + env.log(), new RegExp(ENV_TOKEN), 'the token is nowhere');
  });

  it('ENABLE_WEBHOOKS=false: 200 {accepted:false, disabled:true}, nothing fetched or written; a missing token is still 401', async () => {
    await restartQuiet({ ENABLE_WEBHOOKS: 'false' });
    const rec = env.crm.addPerson(person('disabled'), { webhook: false });
    const before = writes();
    const r = await get(`/webhook/crm/identity?${query(rec.crmId, ENV_TOKEN)}`);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body, { accepted: false, disabled: true, reason: 'webhooks are disabled (ENABLE_WEBHOOKS=false); polling picks this change up' });
    assert.equal((await get(`/webhook/crm/identity?${query(rec.crmId)}`)).status, 401);
    await sleep(SETTLE_MS);
    assert.deepEqual(writes(), before, 'nothing fetched or written while disabled');
  });
});
