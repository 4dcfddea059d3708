/**
 * Fault matrix, the timeout column, at the node level: the shipped config nodes wait 30 s per
 * attempt, so a timeout cell against a real Node-RED would take 30–120 s. Here the nodes of the
 * shipped flows (taken from flows/*.json, wiring unchanged, debug nodes left out) run in
 * node-red-node-test-helper with the config nodes' timeout set to 2 s, against the simulators'
 * `timeout` fault (the request is held until the client gives up). Same invariants as the other
 * cells: NO EVENT LOST (synced, or in failed.json / the import report with a reason; replayed or
 * re-run after the fault) and NO DUPLICATE.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import type { CrmSim } from '../../sim/crm-sim';
import { CRM_SIM_DEFAULTS } from '../../sim/crm-sim';
import { seedSiaghContacts } from '../../sim/seed';
import type { SiaghSim } from '../../sim/siagh-sim';
import { readFailedFiles } from '../../lib/oplog/failed-list';
import { phoneKey } from '../../lib/text/normalize';
import { CRM_USER, SIAGH_USER, collect, helper, nodeModule, startSims, tab, tmpDir, waitFor } from '../helpers/node-env';
import { person, QUOTE_ROWS } from '../helpers/faults';
import { readOnDisk } from '../fixtures/store-helpers';
import { REPO_ROOT } from '../helpers/paths';

const FLOWS = path.join(REPO_ROOT, 'flows');
const NODES = () => ['crm-config', 'siagh-config', 'crm-fetch', 'crm-poll', 'siagh-upsert', 'sync-mapping', 'sync-log', 'siagh-import', 'sync-store', 'sync-queue'].map(nodeModule);
const TIMEOUT_S = 2;

type FlowNode = Record<string, unknown> & { id: string; type: string; wires?: string[][] };

/**
 * The nodes of a shipped flow file on the test tab: debug and comment nodes left out (and their
 * wires), the config nodes pointed at the simulators with a 2 s timeout, `tap` helper nodes
 * wired where a debug node was.
 */
function shipped(file: string, siaghUrl: string, crmUrl: string): FlowNode[] {
  const all = JSON.parse(fs.readFileSync(path.join(FLOWS, file), 'utf8')) as FlowNode[];
  // The sync path only: the http endpoints, injects (pressed by the test instead), the /health
  // branch and the debug nodes are left out (test-helper loads each core node type once).
  const keep = all.filter((x) => !['tab', 'debug', 'comment', 'http in', 'http response', 'crm-webhook', 'inject', 'change'].includes(x.type) && !x.id.startsWith('wh-health') && x.id !== 'wh-catch-health');
  const ids = new Set(keep.map((x) => x.id));
  const debugs = new Set(all.filter((x) => x.type === 'debug').map((x) => x.id));
  return keep.map((x) => {
    const out: FlowNode = { ...x };
    if (x.type === 'crm-config') Object.assign(out, { baseUrl: crmUrl, timeout: TIMEOUT_S });
    if (x.type === 'siagh-config') Object.assign(out, { baseUrl: siaghUrl, timeout: TIMEOUT_S });
    if (x.type === 'crm-config' || x.type === 'siagh-config') {
      delete out.z;
      delete out.credentials;
      return out;
    }
    out.z = tab.id;
    if (x.type === 'catch' && Array.isArray(x.scope)) out.scope = (x.scope as string[]).filter((id) => ids.has(id));
    if (Array.isArray(x.wires)) out.wires = x.wires.map((port) => port.flatMap((id) => (ids.has(id) ? [id] : debugs.has(id) ? [`tap-${id}`] : [])));
    return out;
  });
}

function taps(flow: FlowNode[]): FlowNode[] {
  const ids = new Set(flow.flatMap((x) => (x.wires ?? []).flat()).filter((id) => id.startsWith('tap-')));
  return [...ids].map((id) => ({ id, type: 'helper', z: tab.id }));
}

describe('fault matrix × timeouts (node level: the shipped flows\' nodes, config timeout 2 s)', function () {
  this.timeout(60_000);
  let sims: Awaited<ReturnType<typeof startSims>>;
  let siagh: SiaghSim;
  let crm: CrmSim;
  let dataDir: string;
  const savedEnv = process.env.SYNC_DATA_DIR;
  const savedRetry = { MAX_RETRY_ATTEMPTS: process.env.MAX_RETRY_ATTEMPTS, RETRY_BASE_SECONDS: process.env.RETRY_BASE_SECONDS, RETRY_CHECK_DELAY_SECONDS: process.env.RETRY_CHECK_DELAY_SECONDS };

  before(async () => {
    // The queue's retries, short: an exhausted job reaches failed.json within the cells' time.
    process.env.MAX_RETRY_ATTEMPTS = '2';
    process.env.RETRY_BASE_SECONDS = '0.2';
    process.env.RETRY_CHECK_DELAY_SECONDS = '0.5';
    sims = await startSims();
    siagh = sims.siagh;
    crm = sims.crm;
  });
  after(async () => {
    if (savedEnv === undefined) delete process.env.SYNC_DATA_DIR;
    else process.env.SYNC_DATA_DIR = savedEnv;
    for (const [k, v] of Object.entries(savedRetry)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    await sims.stop();
  });
  beforeEach(() => {
    const userDir = tmpDir('faults-timeout-');
    dataDir = path.join(userDir, 'data');
    process.env.SYNC_DATA_DIR = dataDir;
    helper.settings({ userDir });
    siagh.reset();
    crm.reset();
    crm.setWebhooks({ enabled: false });
  });
  afterEach(async () => {
    siagh.faults.clear();
    crm.faults.clear();
    await helper.unload();
  });

  async function load(file: string): Promise<FlowNode[]> {
    const flow = shipped(file, siagh.url, crm.url);
    const creds = {
      'cfg-crm': { username: CRM_USER.username, password: CRM_USER.password },
      'cfg-siagh': { username: SIAGH_USER.UserName, password: SIAGH_USER.Password },
    };
    await helper.load(NODES(), [tab, ...flow, ...taps(flow)], creds);
    return flow;
  }
  const failed = (): Array<{ key: string; reason: { code: string } }> => {
    return Object.values(readFailedFiles(path.join(dataDir, 'failed.json')));
  };
  const mappings = (type: 'contact' | 'quote') => {
    const f = path.join(dataDir, 'mappings.json');
    return fs.existsSync(f) ? (readOnDisk(f).mappings[type] as unknown as Record<string, { siaghCode: string }>) : {};
  };
  const noDuplicates = () => {
    const mobiles = siagh.contacts().map((c) => phoneKey(c.MobileNo)).filter(Boolean);
    assert.equal(new Set(mobiles).size, mobiles.length, 'two Siagh contacts with one mobile');
    const suids = siagh.preInvoices().map((p) => p.suid);
    assert.equal(new Set(suids).size, suids.length, 'two pre-invoices for one quote');
    const cns = crm.identities().map((i) => i.customerNumber).filter(Boolean);
    assert.equal(new Set(cns).size, cns.length, 'two CRM identities with one customer number');
  };

  it('webhook pipeline: a CRM read or a Siagh save that times out → retried / checked; exhausted → failed.json, replayed; no duplicate', async () => {
    await load('webhook-sync.json');
    const event = (id: string, type: 'Identity' | 'Quote') => ({ payload: { event: 'Insert', id, type, ...(type === 'Identity' ? { subtype: CRM_SIM_DEFAULTS.personSubtype } : {}) }, sync: { traceId: randomUUID().slice(0, 8), trigger: 'webhook', attempts: 0, durationMs: 0, startedAt: Date.now(), warnings: [] } });
    const push = (type: 'Identity' | 'Quote', id: string) => helper.getNode('wh-queue').receive(event(id, type));
    const syncedContact = (id: string) => mappings('contact')[id] && siagh.contact(Number(mappings('contact')[id].siaghCode));
    const failedCode = (key: string) => failed().find((e) => e.key === key)?.reason.code;

    // A. One timeout on the CRM read, one on the Siagh create after Siagh acts (found by mobile).
    // A create whose timeout came before Siagh acted is indistinguishable from one still running:
    // it is never sent again (AMBIGUOUS_CREATE, issue #9; see siagh-client.test.ts).
    crm.faults.add({ kind: 'timeout', path: '/person/get', times: 1 });
    siagh.faults.add({ kind: 'timeout', path: '/SaveFormData', times: 1, afterHandling: true });
    const a = crm.addPerson(person('timeout-a').fields);
    push('Identity', a.crmId);
    await waitFor(() => !!syncedContact(a.crmId) || !!failedCode(`identity:${a.crmId}`), 30_000, 'A synced');
    assert.ok(syncedContact(a.crmId), `A synced (failed: ${failedCode(`identity:${a.crmId}`)})`);
    assert.equal(siagh.faults.pending + crm.faults.pending, 0);
    assert.equal(siagh.contacts().length, 1, 'one contact: the create Siagh handled was found, not repeated');

    // B. Every read times out → failed.json TIMEOUT.  C. A pre-invoice whose reply never came → AMBIGUOUS_CREATE, Siagh has it once.
    crm.faults.add({ kind: 'timeout', path: '/person/get', times: 1000 });
    const b = crm.addPerson(person('timeout-b').fields);
    push('Identity', b.crmId);
    siagh.faults.add({ kind: 'timeout', path: '/SaveFormData', times: 1, afterHandling: true });
    const q = crm.addQuote({ identityId: a.crmId, details: QUOTE_ROWS });
    push('Quote', q.crmId);
    await waitFor(() => !!failedCode(`identity:${b.crmId}`) && !!failedCode(`quote:${q.crmId}`), 30_000, 'B and the quote in failed.json');
    assert.equal(failedCode(`identity:${b.crmId}`), 'TIMEOUT');
    assert.equal(failedCode(`quote:${q.crmId}`), 'AMBIGUOUS_CREATE');
    assert.equal(siagh.preInvoices().length, 1);
    crm.faults.clear();

    // Replay all: B is synced; the pre-invoice stays listed for the operator and is not repeated.
    helper.getNode('wh-log').receive({ topic: 'replay', payload: { all: true } });
    await waitFor(() => !!syncedContact(b.crmId) && !failedCode(`identity:${b.crmId}`), 20_000, 'B synced by the replay');
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(failedCode(`quote:${q.crmId}`), 'AMBIGUOUS_CREATE');
    assert.equal(siagh.preInvoices().length, 1, 'never repeated');
    assert.equal(siagh.contacts().length, 2);
    noDuplicates();
  });

  it('polling pipeline: the find and the read each time out once → retried, synced once', async () => {
    await load('polling-sync.json');
    const out = collect(helper.getNode('tap-pl-debug'));
    crm.faults.add({ kind: 'timeout', path: '/person/find', times: 1 }, { kind: 'timeout', path: '/person/get', times: 1 });
    const specs = [person('poll-timeout-1'), person('poll-timeout-2')];
    const ids = specs.map((s) => crm.addPerson(s.fields, { webhook: false }).crmId);
    helper.getNode('pl-poll').receive({ payload: Date.now() });
    await waitFor(() => ids.every((id) => mappings('contact')[id]) && out.length >= 2, 30_000, 'both synced');
    assert.equal(crm.faults.pending, 0, 'both timeouts were hit');
    assert.equal(siagh.contacts().length, 2);
    assert.equal(out.filter((m) => m.sync?.action === 'created').length, 2);
    noDuplicates();
  });

  it('import pipeline: GetAll and a create time out once (before and after the CRM acts) → retried / found by customer number; exhausted → failed in the report, re-run imports; no duplicate', async () => {
    for (const c of seedSiaghContacts(6, { seed: 77, firstCode: 500, admins: 0 })) siagh.addContact(c);
    await load('initial-import.json');
    const reports = collect(helper.getNode('tap-im-debug'));
    siagh.faults.add({ kind: 'timeout', path: '/GetAll', times: 1 });
    crm.faults.add({ kind: 'timeout', path: '/create', times: 1 }, { kind: 'timeout', path: '/create', times: 1, afterHandling: true });
    helper.getNode('im-run').receive({ payload: Date.now() });
    await waitFor(() => reports.length === 1, 40_000, 'the first report');
    assert.equal(reports[0].payload.counts.failed, 0, JSON.stringify(reports[0].payload.records.filter((r: { outcome: string }) => r.outcome === 'failed')));
    assert.equal(reports[0].payload.counts.created, 6);
    assert.equal(crm.identities().length, 6);
    noDuplicates();

    for (const c of seedSiaghContacts(2, { seed: 78, firstCode: 900, admins: 0 })) siagh.addContact(c);
    crm.faults.add({ kind: 'timeout', path: '/create', times: 1000 });
    helper.getNode('im-run').receive({ payload: Date.now() });
    await waitFor(() => reports.length === 2, 40_000, 'the second report');
    const r2 = reports[1].payload;
    assert.equal(r2.counts.failed, 2);
    assert.deepEqual([...new Set(r2.records.filter((r: { outcome: string }) => r.outcome === 'failed').map((r: { errorCode: string }) => r.errorCode))], ['AMBIGUOUS_CREATE']);
    crm.faults.clear();
    helper.getNode('im-run').receive({ payload: Date.now() });
    await waitFor(() => reports.length === 3, 40_000, 'the re-run report');
    assert.equal(reports[2].payload.counts.failed, 0);
    assert.equal(crm.identities().length, 8);
    noDuplicates();
  });
});
