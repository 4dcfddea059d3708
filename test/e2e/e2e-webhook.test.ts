/**
 * End to end, webhook-sync: a real Node-RED with the package installed from its tarball and the
 * shipped flows deployed unchanged, driven as the real CRM drives it (body-less GETs with
 * event/id/type/subtype and the token), asserting on the simulators' state.
 */
import assert from 'node:assert/strict';
import { CRM_SIM_DEFAULTS } from '../../sim/crm-sim';
import { nationalIdWithCheckDigit } from '../../sim/seed';
import { phoneKey } from '../../lib/text/normalize';
import { countMatching, CRM_IDENTITY_GET_RE, CRM_LIST_RE, CRM_QUOTE_GET_RE, E2eEnv, sleep } from '../helpers/e2e';
import { readSyncLog } from '../helpers/faults';

/** Longer than any coalescing window the flow may use: after it, a webhook has been acted on (or never will be). */
const SETTLE_MS = 2500;

let seq = 0;
/** A unique, realistic CRM person (valid national id, a mobile of its own). */
function person(tag: string): Record<string, unknown> {
  seq++;
  const n = (Date.now() % 100_000) * 100 + seq;
  const mobile = `0912${String(1_000_000 + (n % 9_000_000)).padStart(7, '0')}`;
  return {
    firstName: 'نگار',
    lastName: `رضایی ${tag}`,
    nickName: `نگار رضایی ${tag}`,
    email: `negar.${tag}@example.ir`,
    nationalCode: nationalIdWithCheckDigit(`00${String(1_000_000 + (n % 8_999_999)).slice(0, 7)}`),
    description: 'مشتری از نمایشگاه',
    phoneContacts: [{ default: true, phoneType: 'موبایل', phoneNumber: mobile }],
    addressContacts: [{ default: true, country: 'ایران', state: 'تهران', city: 'تهران', address: 'تهران، خیابان ولیعصر، پلاک ۱۲', zipCode: '1965843511' }],
  };
}

function identityQuery(id: string, event: 'Insert' | 'Update' = 'Insert'): Record<string, string> {
  return { event, id, type: 'Identity', subtype: CRM_SIM_DEFAULTS.personSubtype };
}

describe('e2e: webhook-sync on a real Node-RED', function () {
  this.timeout(60_000);
  let env: E2eEnv;

  /** Siagh contacts carrying this name (the mapper writes the CRM nickName to Siagh's Name). */
  const byName = (name: unknown) => env.siagh.contacts().filter((c) => c.Name === name);
  const writes = () => ({ saves: env.siagh.saveCount, contacts: env.siagh.contacts().length, preInvoices: env.siagh.preInvoices().length });

  before(async function () {
    this.timeout(180_000);
    env = await E2eEnv.start({ pollIntervalSeconds: 3600 });
    // The polling flow may run once at start; let that pass so it cannot do the webhooks' work below.
    await env.waitFor('the first polling run', () => countMatching(env.crm, CRM_LIST_RE) > 0, 15_000).catch(() => undefined);
    await env.waitQuiet('the first polling run', () => [...env.crm.counts.entries()], { quietMs: 500 });
  });
  after(async () => {
    await env?.stop();
  });

  let insertedId: string;
  let insertedCode: number;

  it('identity Insert (the CRM webhook) → one Siagh contact with the identity\'s fields', async () => {
    const p = person('insert');
    const rec = env.crm.addPerson(p);
    insertedId = rec.crmId;
    const [c] = await env.waitFor('the Siagh contact of the new CRM person', () => (byName(p.nickName).length ? byName(p.nickName) : undefined));
    insertedCode = c.Code;
    await env.waitQuiet('Siagh writes', writes);
    assert.equal(byName(p.nickName).length, 1, 'exactly one contact');
    const phone = (p.phoneContacts as Array<{ phoneNumber: string }>)[0].phoneNumber;
    assert.equal(phoneKey(c.MobileNo), phoneKey(phone));
    assert.equal(c.NationalCode, p.nationalCode);
    assert.equal(c.Email, p.email);
    assert.equal(c.Address, 'تهران، خیابان ولیعصر، پلاک ۱۲');
    assert.equal(c.PostalCode, '1965843511');
    assert.equal(c.Description, p.description);
    assert.equal(c.TowardType, false, 'a person');
    assert.equal(c.IsActive, true);
    const delivered = env.crm.webhookLog().filter((d) => d.id === insertedId);
    assert.deepEqual(
      delivered.map((d) => [d.event, d.status]),
      [['Insert', 200]],
      'the CRM delivered its Insert and got 200',
    );
  });

  it('the same Insert delivered 3 times, then 20 deliveries at once → still one contact each', async () => {
    // 3 duplicates, one after the other.
    const p1 = person('dup3');
    const r1 = env.crm.addPerson(p1, { webhook: false });
    for (let i = 0; i < 3; i++) {
      const reply = await env.sendWebhook('identity', identityQuery(r1.crmId));
      assert.equal(reply.status, 200, `delivery ${i + 1}: ${reply.text}`);
    }
    // 20 at once, for another identity.
    const p2 = person('dup20');
    const r2 = env.crm.addPerson(p2, { webhook: false });
    const replies = await Promise.all(Array.from({ length: 20 }, () => env.sendWebhook('identity', identityQuery(r2.crmId))));
    assert.deepEqual(
      replies.map((r) => r.status),
      Array(20).fill(200),
    );
    await env.waitFor('both contacts in Siagh', () => byName(p1.nickName).length > 0 && byName(p2.nickName).length > 0);
    await env.waitQuiet('Siagh writes', writes);
    assert.equal(byName(p1.nickName).length, 1, '3 sequential deliveries → one contact');
    assert.equal(byName(p2.nickName).length, 1, '20 concurrent deliveries → one contact');
  });

  it('identity Update → the same Siagh Code changed in place', async () => {
    assert.ok(insertedId, 'the Insert test ran');
    const before = env.siagh.contacts().length;
    env.crm.updateRecord(insertedId, { email: 'negar.updated@example.ir', description: 'به‌روز شده در CRM' });
    const c = await env.waitFor('the Siagh contact to take the new email', () => {
      const x = env.siagh.contact(insertedCode);
      return x?.Email === 'negar.updated@example.ir' ? x : undefined;
    });
    await env.waitQuiet('Siagh writes', writes);
    assert.equal(c.Description, 'به‌روز شده در CRM');
    assert.equal(env.siagh.contacts().length, before, 'no contact created');
    assert.equal(env.siagh.contacts().filter((x) => x.Email === 'negar.updated@example.ir').length, 1);
  });

  it('quote Insert, then Update → exactly one pre-invoice for the synced customer', async () => {
    const p = person('quote');
    const cust = env.crm.addPerson(p);
    const [c] = await env.waitFor('the customer in Siagh', () => (byName(p.nickName).length ? byName(p.nickName) : undefined));
    await env.waitQuiet('Siagh writes', writes);
    const before = env.siagh.preInvoices().length;
    const quote = env.crm.addQuote({
      identityId: cust.crmId,
      details: [
        { productCode: 'P-100', productName: 'شیر گاز', count: 2, baseUnitPrice: 1_250_000 },
        { productCode: 'P-200', productName: 'رگولاتور', count: 1, baseUnitPrice: 3_400_000 },
      ],
    });
    const inv = await env.waitFor('the pre-invoice in Siagh', () => env.siagh.preInvoices().slice(before).find((x) => x.customerCode === String(c.Code)));
    assert.equal(inv.rows.length, 2, 'both quote rows');
    const gets = countMatching(env.crm, CRM_QUOTE_GET_RE);
    env.crm.updateRecord(quote.crmId, { description: 'تغییر پس از ارسال' });
    await env.waitFor('the flow to fetch the updated quote', () => countMatching(env.crm, CRM_QUOTE_GET_RE) > gets);
    await env.waitQuiet('Siagh writes', writes);
    const mine = env.siagh.preInvoices().filter((x) => x.customerCode === String(c.Code));
    assert.equal(mine.length, 1, 'one pre-invoice after Insert and Update');
    assert.equal(env.siagh.preInvoices().length, before + 1);
  });

  it('a missing or wrong token → 401, a malformed request → 400; nothing is read or written', async () => {
    const p = person('refused');
    const rec = env.crm.addPerson(p, { webhook: false });
    const snap = () => ({ ...writes(), crmGets: countMatching(env.crm, CRM_IDENTITY_GET_RE), crmIdentities: env.crm.identities().length });
    const before = snap();
    const q = identityQuery(rec.crmId);

    const noToken = await env.sendWebhook('identity', q, { token: null });
    assert.equal(noToken.status, 401, `no token: ${noToken.text}`);
    const wrong = await env.sendWebhook('identity', q, { token: 'not-the-token' });
    assert.equal(wrong.status, 401, `wrong token: ${wrong.text}`);
    const wrongSameLength = await env.sendWebhook('identity', q, { token: 'x'.repeat(env.token!.length) });
    assert.equal(wrongSameLength.status, 401, `wrong token of the right length: ${wrongSameLength.text}`);
    const wrongPost = await env.sendWebhook('identity', q, { token: 'not-the-token', method: 'POST' });
    assert.equal(wrongPost.status, 401, `POST with a wrong token: ${wrongPost.text}`);

    const noId = await env.sendWebhook('identity', { event: 'Insert', type: 'Identity', subtype: CRM_SIM_DEFAULTS.personSubtype });
    assert.equal(noId.status, 400, `no id: ${noId.text}`);
    assert.equal(typeof (noId.body as { error?: unknown }).error, 'string', 'a JSON error says what is wrong');
    const notGuid = await env.sendWebhook('identity', { ...q, id: 'not-a-guid' });
    assert.equal(notGuid.status, 400, `non-GUID id: ${notGuid.text}`);
    const badPost = await env.sendWebhook('identity', { ...q, id: '12345' }, { method: 'POST' });
    assert.equal(badPost.status, 400, `POST with a non-GUID id: ${badPost.text}`);
    const badEvent = await env.sendWebhook('identity', { ...q, event: 'Explode' });
    assert.equal(badEvent.status, 400, `unknown event: ${badEvent.text}`);
    const badType = await env.sendWebhook('identity', { ...q, type: 'Banana' });
    assert.equal(badType.status, 400, `unknown type: ${badType.text}`);

    await sleep(SETTLE_MS);
    assert.deepEqual(snap(), before, 'nothing fetched from the CRM, nothing written to Siagh or the CRM');
    assert.equal(byName(p.nickName).length, 0);
    assert.doesNotMatch(env.log(), new RegExp(env.token!), 'the token never appears in the log');
  });

  /** A raw GET to the flow (the query written by hand, as a CRM might), with its reply. */
  async function rawGet(pathAndQuery: string): Promise<{ status: number; body: Record<string, unknown>; text: string }> {
    const res = await fetch(`${env.url}${pathAndQuery}`, { headers: { Connection: 'Keep-Alive' } });
    const text = await res.text();
    let body: Record<string, unknown> = {};
    try {
      body = JSON.parse(text);
    } catch {
      /* not JSON */
    }
    return { status: res.status, body, text };
  }

  it('small variations are tolerated (issue #14): each synced exactly once', async () => {
    const tok = `token=${encodeURIComponent(env.token!)}`;
    const sub = (s: string) => encodeURIComponent(s).replace(/%20/g, '+');
    const org = (tag: string) => ({
      nickName: `شرکت آزمون ${tag} ${Date.now() % 100_000}`,
      email: `info.${tag}@example.ir`,
      phoneContacts: [{ default: true, phoneType: 'محل کار', phoneNumber: `0353${String(Math.floor(Math.random() * 1e7)).padStart(7, '0')}` }],
    });
    const cases: Array<{ name: string; kind: 'person' | 'organization'; url: (id: string) => string }> = [
      { name: 'a cache-buster and an unknown field', kind: 'person', url: (id) => `/webhook/crm/identity?event=Insert&id=${id}&type=Identity&subtype=${sub(CRM_SIM_DEFAULTS.personSubtype)}&_=1733140000&source=crm&${tok}` },
      { name: 'field names and values in other letter cases', kind: 'person', url: (id) => `/webhook/crm/identity?EVENT=INSERT&Id=${id}&TYPE=identity&SubType=${sub(CRM_SIM_DEFAULTS.personSubtype)}&Token=${encodeURIComponent(env.token!)}` },
      { name: 'an upper-case GUID in braces', kind: 'person', url: (id) => `/webhook/crm/identity?event=Insert&id=${encodeURIComponent(`{${id.toUpperCase()}}`)}&type=Identity&${tok}` },
      { name: '%20 for the spaces of the subtype', kind: 'person', url: (id) => `/webhook/crm/identity?event=Insert&id=${id}&type=Identity&subtype=${encodeURIComponent(CRM_SIM_DEFAULTS.personSubtype)}&${tok}` },
      { name: 'a trailing slash on the path', kind: 'person', url: (id) => `/webhook/crm/identity/?event=Insert&id=${id}&type=Identity&subtype=${sub(CRM_SIM_DEFAULTS.personSubtype)}&${tok}` },
      { name: 'an organization without a subtype', kind: 'organization', url: (id) => `/webhook/crm/identity?event=Insert&id=${id}&type=Identity&${tok}` },
      { name: 'an organization with an unknown subtype', kind: 'organization', url: (id) => `/webhook/crm/identity?event=Insert&id=${id}&type=Identity&subtype=${sub('مشتری ویژه')}&${tok}` },
    ];
    const wrong: string[] = [];
    const sent: Array<{ name: string; nick: string; kind: string; crmId: string }> = [];
    for (const [i, c] of cases.entries()) {
      const fields = c.kind === 'person' ? person(`variation${i}`) : org(`variation${i}`);
      const rec = c.kind === 'person' ? env.crm.addPerson(fields, { webhook: false }) : env.crm.addOrganization(fields, { webhook: false });
      const r = await rawGet(c.url(rec.crmId));
      if (r.status !== 200 || r.body.accepted !== true) wrong.push(`${c.name}: HTTP ${r.status} ${r.text.slice(0, 200)}`);
      else if (r.body.id !== rec.crmId) wrong.push(`${c.name}: answered for id ${String(r.body.id)}`);
      sent.push({ name: c.name, nick: String(fields.nickName), kind: c.kind, crmId: rec.crmId });
    }
    assert.deepEqual(wrong, []);
    await env.waitFor('every variation in Siagh', () => sent.every((x) => byName(x.nick).length > 0), 30_000);
    await env.waitQuiet('Siagh writes', writes);
    for (const x of sent) {
      const found = byName(x.nick);
      assert.equal(found.length, 1, `${x.name}: exactly one contact`);
      assert.equal(found[0].TowardType, x.kind === 'organization', `${x.name}: synced as ${x.kind} (the kind taken from the record)`);
    }
    // The ignored fields reach the sync log (through msg.sync.extraFields), the token never.
    await env.waitFor('the sync log line of the cache-buster delivery', () =>
      readSyncLog(env.dataDir)
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as { crmId?: string; extraFields?: Record<string, string> })
        .find((l) => l.crmId === sent[0].crmId && l.extraFields),
    );
    const line = readSyncLog(env.dataDir)
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { crmId?: string; extraFields?: Record<string, string> })
      .find((l) => l.crmId === sent[0].crmId && l.extraFields)!;
    assert.deepEqual(line.extraFields, { _: '1733140000', source: 'crm' });
    assert.doesNotMatch(readSyncLog(env.dataDir), new RegExp(env.token!));
  });

  it('a body-less probe is answered 200 with what the endpoint expects, and nothing is read or written', async () => {
    const before = { ...writes(), crmGets: countMatching(env.crm, CRM_IDENTITY_GET_RE) };
    const r = await rawGet(`/webhook/crm/identity?token=${encodeURIComponent(env.token!)}`);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.probe, true);
    assert.equal(r.body.accepted, false);
    assert.match(String(r.body.example), /^\/webhook\/crm\/identity\?event=Insert&id=/);
    assert.ok(!r.text.includes(env.token!));
    const noToken = await rawGet('/webhook/crm/quote');
    assert.equal(noToken.status, 401, 'a probe without the token is refused like any request');
    await sleep(SETTLE_MS);
    assert.deepEqual({ ...writes(), crmGets: countMatching(env.crm, CRM_IDENTITY_GET_RE) }, before);
  });

  it('every refusal is counted per reason and readable (redacted) through GET /siagh-sync/webhook-rejections/:nodeId', async () => {
    const read = async () => {
      const res = await fetch(`${env.url}/siagh-sync/webhook-rejections/wh-hook-identity`);
      assert.equal(res.status, 200);
      return (await res.json()) as { counts: Record<string, number>; total: number; recent: Array<{ reason: string; status: number; url: string; method: string; query: Record<string, unknown>; at: string }> };
    };
    const before = await read();
    const id = '7c9e6679-7425-40de-944b-e07fc1f90ae7';
    const tok = `token=${encodeURIComponent(env.token!)}`;
    const sends: Array<[string, number, string]> = [
      [`/webhook/crm/identity?event=Insert&id=${id}&type=Identity`, 401, 'token-missing'],
      [`/webhook/crm/identity?event=Insert&id=${id}&type=Identity&token=wrong-${env.token}`, 401, 'token-wrong'],
      [`/webhook/crm/identity?event=Insert&id=12345&type=Identity&${tok}`, 400, 'invalid-id'],
      [`/webhook/crm/identity?event=Explode&id=${id}&type=Identity&${tok}`, 400, 'invalid-event'],
      [`/webhook/crm/identity?event=Insert&id=${id}&type=Quote&${tok}`, 400, 'wrong-endpoint'],
      [`/webhook/crm/identity?event=Insert&type=Identity&${tok}`, 400, 'missing-field'],
    ];
    for (const [url, status] of sends) assert.equal((await rawGet(url)).status, status, url);
    const after = await read();
    const diff: Record<string, number> = {};
    for (const [k, v] of Object.entries(after.counts)) if (v !== (before.counts[k] ?? 0)) diff[k] = v - (before.counts[k] ?? 0);
    assert.deepEqual(diff, { 'token-missing': 1, 'token-wrong': 1, 'invalid-id': 1, 'invalid-event': 1, 'wrong-endpoint': 1, 'missing-field': 1 });
    assert.equal(after.total - before.total, sends.length);
    assert.deepEqual(after.recent.slice(0, sends.length).map((x) => [x.reason, x.status]), sends.map(([, st, reason]) => [reason, st]).reverse());
    assert.ok(after.recent.slice(0, sends.length).every((x) => x.method === 'GET' && x.url.startsWith('/webhook/crm/identity') && !Number.isNaN(Date.parse(x.at))));
    assert.doesNotMatch(JSON.stringify(after), new RegExp(env.token!), 'the token is in no rejection');
    assert.equal((await fetch(`${env.url}/siagh-sync/webhook-rejections/no-such-node`)).status, 404);
  });

  it('a POST with a JSON body syncs like the GET', async () => {
    const p = person('post');
    const rec = env.crm.addPerson(p, { webhook: false });
    const reply = await env.sendWebhook('identity', identityQuery(rec.crmId), { method: 'POST' });
    assert.equal(reply.status, 200, reply.text);
    await env.waitFor('the contact in Siagh', () => byName(p.nickName).length === 1);
  });

  it('Siagh session expiry (both shapes) and CRM token expiry between syncs → the syncs still complete', async () => {
    for (const shape of ['errors200', 'http401'] as const) {
      env.siagh.expiryShape = shape;
      env.siagh.expireAllSessions();
      env.crm.expireAllTokens();
      const siaghLogins = env.siagh.loginCount;
      const crmLogins = env.crm.loginCount;
      const p = person(`expiry-${shape}`);
      const rec = env.crm.addPerson(p);
      const [c] = await env.waitFor(`the contact after expiry (${shape})`, () => (byName(p.nickName).length ? byName(p.nickName) : undefined));
      assert.ok(env.siagh.loginCount > siaghLogins, 'logged in to Siagh again');
      assert.ok(env.crm.loginCount > crmLogins, 'logged in to the CRM again');
      // Expire again, then an Update must reach the same contact.
      env.siagh.expireAllSessions();
      env.crm.expireAllTokens();
      env.crm.updateRecord(rec.crmId, { email: `after.${shape}@example.ir` });
      await env.waitFor(`the update after expiry (${shape})`, () => env.siagh.contact(c.Code)?.Email === `after.${shape}@example.ir`);
      await env.waitQuiet('Siagh writes', writes);
      assert.equal(byName(p.nickName).length, 1);
    }
    env.siagh.expiryShape = 'errors200';
    assert.doesNotMatch(env.log(), /\[error\]/, 'no node reported an error');
  });

  it('/health answers {status: "ok"} with the mapping and sync counts, and /webhook/crm/test echoes the request with the token redacted', async () => {
    await sleep(1500); // the sync log is written in the background
    const linesBefore = readSyncLog(env.dataDir).split('\n').filter(Boolean).length;
    const health = await fetch(`${env.url}/health`);
    assert.equal(health.status, 200);
    const h = (await health.json()) as {
      status?: string;
      mappings?: { total: number; byType: Record<string, number> };
      sync?: { byStatus?: { ok: number; failed: number }; byTrigger?: Record<string, number>; failed?: number; last24h?: unknown };
    };
    assert.equal(h.status, 'ok');
    // The tests above synced identities and a quote through this flow.
    assert.ok(h.mappings && h.mappings.total >= 2 && h.mappings.byType.contact >= 1 && h.mappings.byType.quote >= 1, JSON.stringify(h));
    assert.ok(h.sync?.byStatus && h.sync.byStatus.ok >= 2, JSON.stringify(h));
    assert.ok((h.sync.byTrigger?.webhook ?? 0) >= 2, JSON.stringify(h));
    assert.equal(typeof h.sync.failed, 'number');
    assert.ok(h.sync.last24h, JSON.stringify(h));
    await sleep(1500);
    assert.equal(readSyncLog(env.dataDir).split('\n').filter(Boolean).length, linesBefore, 'asking /health is not logged as a sync');
    const echo = await env.sendWebhook('test', { event: 'Insert', id: '7c9e6679-7425-40de-944b-e07fc1f90ae7', type: 'Identity' });
    assert.equal(echo.status, 200, echo.text);
    assert.match(echo.text, /7c9e6679-7425-40de-944b-e07fc1f90ae7/);
    assert.doesNotMatch(echo.text, new RegExp(env.token!), 'the token is redacted');
  });
});
