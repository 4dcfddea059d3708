/**
 * End to end, the durable sync queue: a real Node-RED with the package installed from its tarball
 * and the shipped flows (the data store's retry delays shortened), driven as the CRM drives it.
 * Nothing lost across kill -9 and redeploys, outages ridden out with nobody pressing anything,
 * customers synced before their quotes, and one contact when Siagh is slow.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { CRM_SIM_DEFAULTS } from '../../sim/crm-sim';
import { E2eEnv, sleep } from '../helpers/e2e';
import { assertNoDuplicates, person, PersonSpec, QUOTE_ROWS, readFailed, readMappings, readSyncLog } from '../helpers/faults';

const identityQuery = (id: string, event = 'Insert') => ({ event, id, type: 'Identity', subtype: CRM_SIM_DEFAULTS.personSubtype });
const docQuery = (id: string, type: 'Quote' | 'Invoice', event = 'Insert') => ({ event, id, type, subtype: 'پیش فاکتور رسمی بنیان گاز' });

describe('e2e: the durable sync queue on a real Node-RED', function () {
  this.timeout(240_000);
  let env: E2eEnv;

  const contactsNamed = (spec: PersonSpec) => env.siagh.contacts().filter((c) => c.Name === spec.nickName);
  async function health(): Promise<{ queue?: { waiting: number; active: number; retrying: number; blocked: number; total: number; oldestAgeMs: number } }> {
    const res = await fetch(`${env.url}/health`);
    return (await res.json()) as never;
  }
  async function queueEmpty(what: string, timeoutMs = 60_000): Promise<void> {
    await env.waitFor(`${what}: the queue empty`, async () => (await health()).queue?.total === 0, timeoutMs);
  }
  async function accept(kind: 'identity' | 'quote' | 'invoice', q: Record<string, string>): Promise<void> {
    const r = await env.sendWebhook(kind, q);
    assert.equal(r.status, 200, `${kind} webhook answered ${r.status}: ${r.text}`);
    assert.equal((r.body as { queued?: boolean }).queued, true, 'answered once queued');
  }

  before(async function () {
    this.timeout(180_000);
    env = await E2eEnv.start({
      pollIntervalSeconds: 3600,
      webhooks: false,
      env: { MAX_RETRY_ATTEMPTS: '20' },
      store: { firstRetrySeconds: 0.5, maxRetryDelaySeconds: 4, leaseSeconds: 10 },
    });
    await queueEmpty('the start-up poll');
  });
  after(async () => {
    await env?.stop();
  });
  afterEach(() => {
    env.siagh.faults.clear();
    env.crm.faults.clear();
  });

  it('kill -9 right after a burst of mixed webhooks (all answered 200), then a restart → every change in Siagh exactly once', async () => {
    const people = Array.from({ length: 6 }, (_, i) => person(`kill-${i}`));
    const recs = people.map((p) => env.crm.addPerson(p.fields, { webhook: false }));
    const quotes = recs.slice(0, 3).map((r) => env.crm.addQuote({ identityId: r.crmId, details: QUOTE_ROWS }, { webhook: false }));
    const invoice = env.crm.addInvoice({ identityId: recs[3].crmId, details: QUOTE_ROWS }, { webhook: false });
    env.siagh.faults.latencyMs = 300; // jobs are in flight when the process dies
    // Quotes first (their customers are not synced yet), then the identities, then repeats.
    for (const q of quotes) await accept('quote', docQuery(q.crmId, 'Quote'));
    await accept('invoice', docQuery(invoice.crmId, 'Invoice'));
    for (const r of recs) await accept('identity', identityQuery(r.crmId));
    for (const r of recs) await accept('identity', identityQuery(r.crmId, 'Update'));
    await accept('quote', docQuery(quotes[0].crmId, 'Quote', 'Update'));
    await env.kill();
    await env.restart();
    env.siagh.faults.latencyMs = 0;
    await queueEmpty('after the restart', 90_000);
    for (const p of people) assert.equal(contactsNamed(p).length, 1, `one contact for ${p.nickName}`);
    const maps = readMappings(env.dataDir);
    const about = (...ids: string[]) => readSyncLog(env.dataDir).split('\n').filter((l) => ids.some((id) => l.includes(id))).map((l) => l.slice(0, 300)).join('\n');
    const q0 = () => ['queue.json', 'queue.jsonl'].map((f) => { try { return f + ': ' + fs.readFileSync(path.join(env.dataDir, f), 'utf8').slice(0, 6000); } catch { return f + ': none'; } }).join('\n');
    for (const q of quotes) assert.ok(maps.quote[q.crmId], `quote ${q.crmId} mapped\n${about(q.crmId)}\n${JSON.stringify(readFailed(env.dataDir)).slice(0, 3000)}\n${q0()}`);
    assert.ok(maps.invoice[invoice.crmId], `invoice mapped\n${about(invoice.crmId, recs[3].crmId)}`);
    assert.equal(env.siagh.preInvoices().length, 4, 'one pre-invoice per quote and invoice');
    assert.deepEqual(readFailed(env.dataDir), [], 'nothing failed');
    assertNoDuplicates(env);
  });

  it('a full redeploy right after the webhooks → all of them arrive', async () => {
    const people = Array.from({ length: 4 }, (_, i) => person(`redeploy-${i}`));
    const recs = people.map((p) => env.crm.addPerson(p.fields, { webhook: false }));
    env.siagh.faults.latencyMs = 300;
    for (const r of recs) await accept('identity', identityQuery(r.crmId));
    await env.redeploy();
    env.siagh.faults.latencyMs = 0;
    await queueEmpty('after the redeploy');
    for (const p of people) assert.equal(contactsNamed(p).length, 1, `one contact for ${p.nickName}`);
    assertNoDuplicates(env);
  });

  it('a quote before its customer → the customer is synced first (one contact), then one pre-invoice', async () => {
    const p = person('dep');
    const rec = env.crm.addPerson(p.fields, { webhook: false });
    const q = env.crm.addQuote({ identityId: rec.crmId, details: QUOTE_ROWS }, { webhook: false });
    const preBefore = env.siagh.preInvoices().length;
    await accept('quote', docQuery(q.crmId, 'Quote'));
    await queueEmpty('the quote and its customer');
    const [c] = contactsNamed(p);
    assert.ok(c, 'the customer reached Siagh');
    assert.equal(contactsNamed(p).length, 1);
    const docs = env.siagh.preInvoices().slice(preBefore);
    assert.equal(docs.length, 1, 'one pre-invoice');
    assert.equal(String(docs[0].header.codemoshtari), String(c.Code), 'on the customer that was just synced');
    const depLine = new RegExp(`"trigger":"dependency"[^\\n]*"crmId":"${rec.crmId}"`);
    await env.waitFor('the dependency line in the sync log', () => depLine.test(readSyncLog(env.dataDir)), 10_000);
    const log = readSyncLog(env.dataDir);
    assert.match(log, new RegExp(`"trigger":"dependency"[^\\n]*"crmId":"${rec.crmId}"|"crmId":"${rec.crmId}"[^\\n]*"trigger":"dependency"`), 'the customer ran as a dependency of the quote');
    assert.deepEqual(readFailed(env.dataDir), []);
  });

  it('Siagh unreachable for 60 s and the CRM answering 429 with Retry-After: 90 → everything arrives afterwards, nobody pressing anything', async () => {
    const reads: Array<{ id: string; at: number; status?: number }> = [];
    let limitedId = '';
    let limitedOnce = false;
    env.crm.beforeHandle = (req) => {
      if (!/\/person\/get$/.test(req.path)) return undefined;
      const id = String((req.body as { id?: unknown } | undefined)?.id ?? '');
      reads.push({ id, at: Date.now() });
      // The CRM rate-limits the first read of one identity with Retry-After: 90.
      if (id === limitedId && !limitedOnce) {
        limitedOnce = true;
        return { status: 429, text: 'Too Many Requests', headers: { 'retry-after': '90', 'content-type': 'text/plain' } };
      }
      return undefined;
    };
    const port = Number(new URL(env.siagh.url).port);
    await env.siagh.stop();
    const t0 = Date.now();
    const people = Array.from({ length: 3 }, (_, i) => person(`outage-${i}`));
    const recs = people.map((p) => env.crm.addPerson(p.fields, { webhook: false }));
    for (const r of recs) await accept('identity', identityQuery(r.crmId));
    const limited = person('retry-after');
    const lrec = env.crm.addPerson(limited.fields, { webhook: false });
    limitedId = lrec.crmId;
    const tLimited = Date.now();
    await accept('identity', identityQuery(lrec.crmId));
    await sleep(Math.max(0, 60_000 - (Date.now() - t0)));
    await env.siagh.start(port);
    await env.waitFor('the three identities of the outage in Siagh', () => people.every((p) => contactsNamed(p).length === 1), 60_000);
    const h = await health();
    assert.ok((h.queue?.retrying ?? 0) + (h.queue?.waiting ?? 0) >= 1, 'the rate-limited one is still waiting out its Retry-After');
    await env.waitFor('the rate-limited identity in Siagh', () => contactsNamed(limited).length === 1, 90_000);
    env.crm.beforeHandle = undefined;
    const lreads = reads.filter((r) => r.id === lrec.crmId);
    assert.ok(lreads.length >= 2, 'read again after the 429');
    assert.ok(lreads[lreads.length - 1].at - tLimited >= 90_000, `the next read waited out Retry-After: 90 in full (${lreads[lreads.length - 1].at - tLimited} ms)`);
    await queueEmpty('after the outage');
    assert.deepEqual(readFailed(env.dataDir), [], 'nothing in the failed list');
    assert.match(readSyncLog(env.dataDir), /"status":"retrying"/, 'the failed attempts were logged as retrying');
    assertNoDuplicates(env);
  });

  it('Siagh answering each call in 25 s, two events for one identity without mobile or national code → one contact (leases renewed while in flight)', async () => {
    const p = person('slow', { phoneContacts: [], nationalCode: '' });
    const rec = env.crm.addPerson(p.fields, { webhook: false });
    env.siagh.expireAllSessions(); // the login, the contact list and the save each take 25 s
    env.siagh.faults.latencyMs = 25_000;
    await accept('identity', identityQuery(rec.crmId));
    await sleep(1000);
    await accept('identity', identityQuery(rec.crmId, 'Update'));
    await env.waitFor('the contact in Siagh', () => contactsNamed(p).length >= 1, 150_000);
    env.siagh.faults.latencyMs = 0;
    await queueEmpty('the slow identity', 120_000);
    assert.equal(contactsNamed(p).length, 1, 'one contact: the 10 s job lease was renewed through 25 s calls');
    assert.deepEqual(readFailed(env.dataDir), []);
  });
});
