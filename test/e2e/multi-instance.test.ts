/**
 * End to end, several Node-RED instances on one PostgreSQL (issue #11): three real Node-RED
 * processes with the packed package and the shipped flows, their data store (cfg-store) on one real
 * PostgreSQL database (testkit/postgres.ts), one pair of simulators. Webhooks spread over the
 * instances, repeats of one event at different instances, an instance killed with -9 in the
 * middle of a burst, PostgreSQL restarted mid-run, polling on one instance at a time, and a job dead
 * on one instance replayed from the sync-log of another (one failed list in the database).
 * Every change must reach Siagh once: saves are counted per record in the Siagh simulator.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { CRM_SIM_DEFAULTS } from '../../sim/crm-sim';
import { E2eCluster } from '../../testkit/cluster';
import { PgServer } from '../../testkit/postgres';
import { CRM_LIST_RE, sleep, waitFor } from '../helpers/e2e';
import { person, PersonSpec, QUOTE_ROWS, readFailed } from '../helpers/faults';

const identityQuery = (id: string, event = 'Insert') => ({ event, id, type: 'Identity', subtype: CRM_SIM_DEFAULTS.personSubtype });
const quoteQuery = (id: string, event = 'Insert') => ({ event, id, type: 'Quote', subtype: 'پیش فاکتور رسمی بنیان گاز' });

describe('e2e: three Node-RED instances on one PostgreSQL', function () {
  this.timeout(300_000);
  let pg: PgServer;
  let cluster: E2eCluster;

  /** Contact saves (form 2BFDA) in the Siagh simulator whose values name this person. */
  const contactSaves = (nickName: string) => cluster.siagh.saveLog.filter((s) => s.formId === '2BFDA' && s.ctrl.some((c) => c.value.includes(nickName))).length;
  const contactsNamed = (nickName: string) => cluster.siagh.contacts().filter((c) => (c.Name ?? '').startsWith(nickName));

  async function accept(kind: 'identity' | 'quote', q: Record<string, string>, to?: number): Promise<number> {
    const r = await cluster.webhook(kind, q, to);
    assert.equal(r.status, 200, `${kind} webhook at instance ${r.instance} answered ${r.status}: ${r.text}`);
    assert.equal((r.body as { queued?: boolean }).queued, true, 'answered once queued');
    return r.instance;
  }

  /** One mapping row per CRM record, no Siagh code mapped twice, nothing in a failed list. */
  async function assertDatabaseClean(expect: { contact: string[]; quote?: string[] }): Promise<void> {
    const rows = await cluster.query<{ entity_type: string; crm_id: string; siagh_code: string }>('SELECT entity_type, crm_id, siagh_code FROM siagh_sync_mappings');
    for (const [type, ids] of [['contact', expect.contact], ['quote', expect.quote ?? []]] as const) {
      for (const id of ids) {
        const mine = rows.filter((r) => r.entity_type === type && r.crm_id === id.toLowerCase());
        assert.equal(mine.length, 1, `one ${type} mapping row for ${id}`);
      }
      const codes = rows.filter((r) => r.entity_type === type).map((r) => r.siagh_code);
      assert.equal(new Set(codes).size, codes.length, `no Siagh ${type} code mapped from two CRM records`);
    }
    const failed = await cluster.query('SELECT * FROM siagh_sync_failed');
    assert.deepEqual(failed, [], 'nothing in the failed list');
    // (and nothing in an instance's own folder, where a failed list not yet in the database would be)
    for (const x of cluster.instances) assert.deepEqual(readFailed(x.dataDir), [], `nothing in instance ${x.index}'s failed.json`);
  }

  function assertNoDuplicateDocuments(): void {
    const suids = cluster.siagh.preInvoices().map((p) => p.suid);
    assert.equal(new Set(suids).size, suids.length, `one pre-invoice per quote: ${suids.join(', ')}`);
    const bySuid = new Map<string, number>();
    for (const s of cluster.siagh.saveLog) {
      if (s.formId !== '43D81') continue;
      const suid = s.params.find((p) => p.key === '_In_Suid')?.value.trim() ?? '';
      bySuid.set(suid, (bySuid.get(suid) ?? 0) + 1);
    }
    assert.deepEqual([...bySuid].filter(([, n]) => n > 1), [], 'one pre-invoice save per quote');
  }

  before(async function () {
    this.timeout(240_000);
    pg = await PgServer.start();
    cluster = await E2eCluster.start({
      pg,
      instances: 3,
      env: { MAX_RETRY_ATTEMPTS: '30' },
      // Short leases: the jobs of a killed instance (the store's lease) and the records it had
      // claimed (sync-mapping's lease, 60 s in the shipped flows) go back to the others within seconds.
      store: { firstRetrySeconds: 0.5, maxRetryDelaySeconds: 2, leaseSeconds: 5 },
      nodeSettings: { 'sync-mapping': { leaseSeconds: 5 } },
    });
    await cluster.queueEmpty('the start-up poll');
  });
  after(async () => {
    await cluster?.stop();
    await pg?.close();
  });
  afterEach(() => {
    cluster.latency = 0;
  });

  it('webhooks spread over three instances, repeats at other instances → every change once in Siagh, one mapping row each', async () => {
    const people = Array.from({ length: 6 }, (_, i) => person(`multi-${i}`));
    const recs = people.map((p) => cluster.crm.addPerson(p.fields, { webhook: false }));
    const quotes = recs.slice(0, 3).map((r) => cluster.crm.addQuote({ identityId: r.crmId, details: QUOTE_ROWS }, { webhook: false }));
    const savesBefore = cluster.siagh.saveCount;
    cluster.latency = 30;
    // Each identity at one instance, then the same event again at each of the other two.
    const firstAt = await Promise.all(recs.map((r, i) => accept('identity', identityQuery(r.crmId), i % 3)));
    assert.deepEqual([...new Set(firstAt)].sort(), [0, 1, 2], 'every instance answered some');
    await Promise.all(recs.flatMap((r, i) => [accept('identity', identityQuery(r.crmId), (i + 1) % 3), accept('identity', identityQuery(r.crmId), (i + 2) % 3)]));
    // Quotes (and repeats) at yet other instances: they wait for their customers where needed.
    await Promise.all(quotes.flatMap((q, i) => [accept('quote', quoteQuery(q.crmId), (i + 2) % 3), accept('quote', quoteQuery(q.crmId), i % 3)]));
    await cluster.queueEmpty('the first burst', 90_000);
    await cluster.quiet('the first burst');
    for (const p of people) {
      assert.equal(contactsNamed(p.nickName).length, 1, `one contact for ${p.nickName}\n${cluster.diagnose()}`);
      assert.equal(contactSaves(p.nickName), 1, `one save for ${p.nickName}`);
    }
    assert.equal(cluster.siagh.preInvoices().length, 3, 'one pre-invoice per quote');

    // Two people change in the CRM; each change is announced at two instances.
    const changed = [0, 1].map((i) => ({ i, nickName: `${people[i].nickName} تغییر` }));
    for (const c of changed) cluster.crm.updateRecord(recs[c.i].crmId, { nickName: c.nickName }, { webhook: false });
    await Promise.all(changed.flatMap((c) => [accept('identity', identityQuery(recs[c.i].crmId, 'Update'), c.i % 3), accept('identity', identityQuery(recs[c.i].crmId, 'Update'), (c.i + 1) % 3)]));
    await cluster.queueEmpty('the updates');
    await cluster.quiet('the updates');
    for (const c of changed) {
      assert.deepEqual(contactsNamed(people[c.i].nickName).map((x) => x.Name), [c.nickName], 'the contact renamed, not a second one');
      assert.equal(contactSaves(people[c.i].nickName), 2, `create and one update for ${people[c.i].nickName}`);
    }
    for (const p of people.slice(2)) assert.equal(contactSaves(p.nickName), 1, `still one save for ${p.nickName}`);
    assert.equal(cluster.siagh.saveCount - savesBefore, 6 + 3 + 2, 'six creates, three pre-invoices, two updates: nothing else');
    assertNoDuplicateDocuments();
    await assertDatabaseClean({ contact: recs.map((r) => r.crmId), quote: quotes.map((q) => q.crmId) });
  });

  it('a job dead on one instance is in the shared failed list, and the sync-log of another instance replays it', async () => {
    const p = person('replayed');
    const X = randomUUID();
    // No such record in the CRM yet: the job dies (CRM_NOT_FOUND) at the instance that took it.
    await accept('identity', identityQuery(X), 0);
    const rows = await waitFor(
      'the dead job in the failed list in the database',
      async () => {
        const r = await cluster.query<{ key: string; code: string }>('SELECT key, code FROM siagh_sync_failed WHERE crm_id = $1', [X]);
        return r.length ? r : undefined;
      },
      { timeoutMs: 60_000, diagnose: () => cluster.diagnose() },
    );
    assert.deepEqual(rows, [{ key: `identity:${X}`, code: 'CRM_NOT_FOUND' }]);
    cluster.crm.addPerson({ ...p.fields, crmId: X }, { webhook: false });
    // Replayed from the sync-log of instance 1 (its admin route, as its dialog does).
    const res = await fetch(`${cluster.instances[1].red.url}/siagh-sync/sync-log/wh-log/replay`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ crmId: X }) });
    const text = await res.text();
    assert.equal(res.status, 200, text);
    assert.equal((JSON.parse(text) as { replayed: number }).replayed, 1);
    await cluster.queueEmpty('the replay');
    await waitFor('the success to take the entry off', async () => (await cluster.query('SELECT 1 FROM siagh_sync_failed WHERE crm_id = $1', [X])).length === 0, { timeoutMs: 60_000 });
    assert.equal(contactsNamed(p.nickName).length, 1, 'synced once');
  });

  it('kill -9 of one instance in the middle of a burst → the others finish its jobs, each once', async () => {
    const people = Array.from({ length: 12 }, (_, i) => person(`kill-${i}`));
    const recs = people.map((p) => cluster.crm.addPerson(p.fields, { webhook: false }));
    cluster.latency = 250; // jobs are in flight at every instance when one dies
    // Instance 1 dies (kill -9) while it fetches its second record of the burst from the CRM: that job is leased to it.
    const ids = new Set(recs.map((r) => r.crmId.toLowerCase()));
    let fetches = 0;
    let cut: string | undefined;
    cluster.onCrmCall = (i, req) => {
      if (i !== 1 || cut || !/\/person\/get$/i.test(req.path)) return;
      const id = [...ids].find((x) => req.rawBody.toLowerCase().includes(x));
      if (id && ++fetches === 2) {
        cut = id;
        void cluster.kill(1);
      }
    };
    await Promise.all(recs.map((r, i) => accept('identity', identityQuery(r.crmId), i % 3)));
    await waitFor('instance 1 killed in the middle of a job', () => cut !== undefined && !cluster.instances[1].alive(), { timeoutMs: 30_000, diagnose: () => cluster.diagnose() });
    cluster.onCrmCall = undefined;
    const leased = await cluster.query('SELECT key FROM siagh_sync_queue WHERE key = $1 AND lease_token IS NOT NULL', [`identity:${cut}`]);
    assert.equal(leased.length, 1, `the job of ${cut} was leased to the killed instance`);
    cluster.latency = 0;
    await cluster.queueEmpty('after the kill (leases of 5 s run out)', 90_000);
    await cluster.quiet('after the kill');
    // A contact the killed instance saved without storing its mapping is found again and linked, never made twice.
    for (const p of people) assert.equal(contactsNamed(p.nickName).length, 1, `one contact for ${p.nickName}\n${cluster.diagnose()}`);
    const cutPerson = people[recs.findIndex((r) => r.crmId.toLowerCase() === cut)];
    assert.equal(contactSaves(cutPerson.nickName), 1, 'the job the killed instance held was finished by another, once');
    await assertDatabaseClean({ contact: recs.map((r) => r.crmId) });
    await cluster.restart(1);
  });

  it('PostgreSQL restarted mid-run → the work pauses and resumes: nothing lost, nothing doubled', async () => {
    const people = Array.from({ length: 9 }, (_, i) => person(`pgrestart-${i}`));
    const recs = people.map((p) => cluster.crm.addPerson(p.fields, { webhook: false }));
    cluster.latency = 200;
    await Promise.all(recs.slice(0, 6).map((r) => accept('identity', identityQuery(r.crmId))));
    const keys = recs.slice(0, 6).map((r) => `identity:${r.crmId.toLowerCase()}`);
    await waitFor('jobs of the burst leased (in flight) when the server restarts', async () => (await cluster.query('SELECT 1 FROM siagh_sync_queue WHERE key = ANY($1) AND lease_token IS NOT NULL', [keys])).length > 0, { timeoutMs: 10_000, intervalMs: 20 });
    pg.restart();
    // Webhooks after the restart: an instance answers 200 once its queue is reachable again.
    for (const r of recs.slice(6)) {
      await waitFor(`webhook for ${r.crmId} accepted after the restart`, async () => (await cluster.webhook('identity', identityQuery(r.crmId))).status === 200, { timeoutMs: 30_000, intervalMs: 500, diagnose: () => cluster.diagnose() });
    }
    cluster.latency = 0;
    await cluster.queueEmpty('after the PostgreSQL restart', 90_000);
    await cluster.quiet('after the PostgreSQL restart');
    for (const p of people) {
      assert.equal(contactsNamed(p.nickName).length, 1, `one contact for ${p.nickName}\n${cluster.diagnose()}`);
      assert.equal(contactSaves(p.nickName), 1, `one save for ${p.nickName}`);
    }
    await assertDatabaseClean({ contact: recs.map((r) => r.crmId) });
  });

  it('polling runs on one instance at a time, and moves to another when the leader is killed', async () => {
    // Poll every 2 s from now on: every instance restarted with the new interval.
    for (const i of [0, 1, 2]) await cluster.restart(i, { POLL_INTERVAL_SECONDS: '2' });
    const listCalls = () => cluster.crmCallsByInstance.map((m) => [...m].filter(([k]) => CRM_LIST_RE.test(k)).reduce((a, [, n]) => a + n, 0));
    const pollers = async (ms: number): Promise<number[]> => {
      const before = listCalls();
      await sleep(ms);
      const after = listCalls();
      return after.map((n, i) => n - before[i]).flatMap((d, i) => (d > 0 ? [i] : []));
    };
    await sleep(3000); // the instances agree on a leader
    const first = await pollers(7000);
    assert.equal(first.length, 1, `one instance polls the CRM (list calls by instance: ${listCalls().join(', ')})`);
    const leader = first[0];
    await cluster.kill(leader);
    let next: number[] = [];
    await waitFor('another instance to take over polling', async () => (next = await pollers(2500)).length > 0, { timeoutMs: 20_000, diagnose: () => cluster.diagnose() });
    assert.ok(!next.includes(leader), 'the killed instance is not polling');
    const after = await pollers(7000);
    assert.equal(after.length, 1, `one instance polls after the take-over (${after.join(', ')})`);
    assert.notEqual(after[0], leader);
    // A person added now is synced once, by whoever polls.
    const p: PersonSpec = person('polled');
    cluster.crm.addPerson(p.fields, { webhook: false });
    await waitFor(`${p.nickName} synced by polling`, () => contactsNamed(p.nickName).length === 1, { timeoutMs: 30_000, diagnose: () => cluster.diagnose() });
    await sleep(4000); // two more polls see the same person, unchanged
    assert.equal(contactsNamed(p.nickName).length, 1);
    assert.equal(contactSaves(p.nickName), 1);
  });
});
