/**
 * crm-poll in the real Node-RED 4.1 runtime (node-red-node-test-helper) against the simulators
 * over real HTTP, with its cursors in a real mapping file in a temp user dir: one message per
 * changed identity, quote or invoice in the shape crm-fetch reads, the types setting, a quote find
 * the CRM lacks, a tick during a run, msg.reset, errors to a Catch node, and the whole polling
 * pipeline crm-poll → crm-fetch (auto) → sync-mapping → siagh-upsert → sync-mapping picking up a
 * person, then its quote and invoice, created in the CRM with webhooks off.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { inspect } from 'node:util';
import type { CrmSim } from '../../sim/crm-sim';
import type { SiaghSim } from '../../sim/siagh-sim';
import { CRM_USER, SIAGH_USER, collect, configNodes, coreNode, helper, n, nodeModule, startSims, tab, tmpDir, waitFor } from '../helpers/node-env';
import { readOnDisk } from '../fixtures/store-helpers';

const NODES = () => ['crm-config', 'siagh-config', 'crm-poll', 'crm-fetch', 'siagh-upsert', 'sync-mapping'].map(nodeModule);
const PERSON_FIND = 'POST /api/v2/crmobject/person/find';
const ORG_FIND = 'POST /api/v2/crmobject/organization/find';
const SEARCH = 'POST /api/v2/crmobject/identity/search';
const QUOTE_FIND = 'POST /api/v2/crmobject/quote/sales/find';
const INVOICE_FIND = 'POST /api/v2/crmobject/invoice/sales/find';

type Status = { fill?: string; shape?: string; text?: string };

/** The package root: the nearest folder above the compiled test holding flows/, else the working dir. */
function packageRoot(): string {
  for (let d = __dirname; d !== path.dirname(d); d = path.dirname(d)) {
    if (fs.existsSync(path.join(d, 'flows', 'polling-sync.json')) && fs.existsSync(path.join(d, 'package.json'))) return d;
  }
  return process.cwd();
}

describe('crm-poll (Node-RED runtime)', function () {
  this.timeout(15000);
  let sims: Awaited<ReturnType<typeof startSims>>;
  let crm: CrmSim;
  let siagh: SiaghSim;
  let userDir: string;
  let file: string;

  before(async () => {
    sims = await startSims({ crm: { maxPageSize: 3 } });
    crm = sims.crm;
    siagh = sims.siagh;
  });
  after(async () => {
    await sims.stop();
  });
  beforeEach(() => {
    crm.reset();
    siagh.reset();
    userDir = tmpDir('crm-poll-test-');
    file = path.join(userDir, 'data', 'mappings.json');
    helper.settings({ userDir });
  });
  afterEach(async () => {
    crm.faults.clear();
    siagh.faults.clear();
    await helper.unload();
    fs.rmSync(userDir, { recursive: true, force: true });
  });

  function seed() {
    const persons = ['مریم احمدی', 'علی رضایی', 'سارا محمدی', 'رضا کریمی'].map((nickName) => crm.addPerson({ nickName }, { webhook: false }).crmId);
    const orgs = ['شرکت نمونه', 'بازرگانی پارس'].map((nickName) => crm.addOrganization({ nickName }, { webhook: false }).crmId);
    return { persons, orgs };
  }

  function meta(): Record<string, any> {
    return fs.existsSync(file) ? (readOnDisk(file).meta as Record<string, any>) : {};
  }

  /** crm-poll 'poll' (as this release saves it: version 1) → helper 'out'; Catch → helper 'caught'. */
  async function deploy(props: Record<string, unknown> = {}) {
    const cfg = configNodes(siagh.url, crm.url);
    const flow = [
      tab,
      ...cfg.nodes,
      n({ id: 'poll', type: 'crm-poll', version: 1, crm: 'crm', file: 'data/mappings.json', wires: [['out']], ...props }),
      n({ id: 'out', type: 'helper' }),
      n({ id: 'c', type: 'catch', wires: [['caught']] }),
      n({ id: 'caught', type: 'helper' }),
    ];
    await helper.load(NODES(), flow, cfg.credentials);
    const poll = helper.getNode(String(props.id ?? 'poll'));
    const statuses: Status[] = [];
    const warnings: string[] = [];
    poll.on('call:status', (call: { args: [Status] }) => statuses.push(call.args[0]));
    poll.on('call:warn', (call: { args: [unknown] }) => warnings.push(String(call.args[0])));
    const out = collect(helper.getNode('out'));
    const caught = collect(helper.getNode('caught'));
    // Wait until the node opened its file (its first status).
    await waitFor(() => statuses.length > 0, 3000, 'the first status');
    return { poll, out, caught, statuses, warnings };
  }

  /** Send a tick; resolve when the run ended (green/yellow dot) or failed (red). */
  async function tick(node: { poll: any; statuses: Status[] }, msg: Record<string, unknown> = { payload: Date.now() }): Promise<Status> {
    const from = node.statuses.length;
    node.poll.receive(msg);
    await waitFor(() => node.statuses.slice(from).some((s) => s.shape === 'dot'), 8000, 'the end of the run');
    await new Promise((r) => setTimeout(r, 30));
    return node.statuses.slice(from).find((s) => s.shape === 'dot')!;
  }

  it('a tick sends one message per new identity, in the shape crm-fetch reads; the next tick only the changed one', async () => {
    const { persons, orgs } = seed();
    const node = await deploy();
    assert.match(node.statuses[0].text ?? '', /no cursor/);
    const st = await tick(node);
    assert.equal(node.statuses.find((s) => s.shape === 'ring' && s.fill === 'blue')?.text, 'polling…');
    const newest = crm.record(orgs[1])!;
    assert.deepEqual(st, { fill: 'green', shape: 'dot', text: `6 changed (full) · cursor ${String(newest.modifyDate).replace('T', ' ').slice(0, 19)} · 0 quotes · 0 invoices` });
    assert.equal(node.out.length, 6);
    assert.deepEqual(node.out.map((m) => m.payload.id).sort(), [...persons, ...orgs].sort());
    for (const m of node.out) {
      const isPerson = persons.includes(m.payload.id);
      assert.equal(m.payload.type, 'Identity');
      assert.equal(m.payload.kind, isPerson ? 'person' : 'organization', 'crm-fetch picks the right endpoint');
      assert.equal(m.payload.subtype, undefined, 'no Persian subtype to parse back');
      assert.equal(m.payload.modifyDate, crm.record(m.payload.id)!.modifyDate);
      assert.equal(m.sync.trigger, 'poll');
      assert.equal(m.sync.entity, isPerson ? 'person' : 'organization');
      assert.equal(m.sync.crmId, m.payload.id);
      assert.ok(JSON.stringify(m.sync).length < 1000);
      assert.ok(!inspect(m, { depth: 10 }).includes(CRM_USER.password));
    }
    assert.equal(new Set(node.out.map((m) => m.sync.traceId)).size, 6, 'one trace per identity');
    assert.equal(meta()['poll.cursor.poll'].modifyDate, newest.modifyDate, 'the cursor is in the mapping file');

    const changed = crm.updateRecord(persons[2], { email: 'sara@example.ir' }, { webhook: false });
    const st2 = await tick(node);
    assert.equal(node.out.length, 7);
    assert.equal(node.out[6].payload.id, persons[2]);
    assert.equal(st2.text, `1 changed · cursor ${String(changed.modifyDate).replace('T', ' ').slice(0, 19)} · 0 quotes · 0 invoices`);
    assert.equal(node.caught.length, 0);
  });

  it('a tick that arrives while a run is still listing starts no second run (a warning)', async () => {
    seed();
    const node = await deploy({ cursorName: 'nightly' });
    crm.resetCounts();
    crm.faults.latencyMs = 60;
    node.poll.receive({ payload: 1 });
    await waitFor(() => crm.count(PERSON_FIND) >= 1, 3000, 'the first find');
    node.poll.receive({ payload: 2 });
    await waitFor(() => node.warnings.length > 0, 3000, 'a warning');
    assert.match(node.warnings[0], /still listing; no second run/);
    await waitFor(() => node.statuses.some((s) => s.fill === 'green'), 8000, 'the run to end');
    await new Promise((r) => setTimeout(r, 200));
    // 4 persons over pages of 3: pages 0, 1 and the empty 2; 2 organizations: page 0 and the empty 1.
    assert.equal(crm.count(PERSON_FIND), 3, 'one run of person/find');
    assert.equal(crm.count(ORG_FIND), 2, 'one run of organization/find');
    assert.equal(node.out.length, 6);
    assert.equal(node.caught.length, 0, 'the skipped tick is no error');
    assert.ok(meta()['poll.cursor.nightly'], 'the cursor name sets the key');
  });

  it('msg.reset clears the cursor: the next tick lists everything again', async () => {
    seed();
    const node = await deploy();
    await tick(node);
    assert.equal(node.out.length, 6);
    assert.ok(meta()['poll.cursor.poll']);
    await tick(node);
    assert.equal(node.out.length, 6, 'nothing changed');
    const from = node.statuses.length;
    node.poll.receive({ reset: true });
    await waitFor(() => node.statuses.slice(from).some((s) => /cursor cleared/.test(s.text ?? '')), 3000, 'cursor cleared');
    assert.equal(meta()['poll.cursor.poll'], undefined, 'removed from the file');
    assert.equal(node.out.length, 6, 'a reset starts no run');
    const st = await tick(node);
    assert.match(st.text ?? '', /^6 changed \(full\)/);
    assert.equal(node.out.length, 12);
  });

  it('find unsupported → the run scans with a warning; scan mode lists everything every time', async () => {
    seed();
    const node = await deploy();
    crm.faults.add({ kind: '5xx', status: 404, path: '/person/find' });
    const st = await tick(node);
    assert.deepEqual(st, { fill: 'yellow', shape: 'dot', text: '6 listed · scan (find unsupported) · 0 quotes · 0 invoices' });
    assert.equal(node.out.length, 6);
    assert.match(node.warnings.join('\n'), /scan mode/);
    await helper.unload();

    const scan = await deploy({ id: 'poll2', mode: 'scan' });
    crm.resetCounts();
    await tick(scan);
    await tick(scan);
    assert.equal(scan.out.length, 12);
    assert.equal(crm.count(PERSON_FIND) + crm.count(ORG_FIND), 0);
    assert.ok(crm.count(SEARCH) > 0);
    assert.equal(scan.statuses[scan.statuses.length - 1].text, '6 listed · full scan · 0 quotes · 0 invoices');
  });

  it('a failed listing goes to a Catch node with its code; the cursor stays', async () => {
    const { persons } = seed();
    const node = await deploy();
    await tick(node);
    const before = meta()['poll.cursor.poll'];
    crm.updateRecord(persons[0], { email: 'x@example.ir' }, { webhook: false });
    crm.faults.add({ kind: '5xx', status: 403, path: '/organization/find' });
    const st = await tick(node);
    assert.equal(st.fill, 'red');
    await waitFor(() => node.caught.length === 1, 3000, 'the caught error');
    assert.equal(node.caught[0].error.code, 'CRM_ERROR');
    assert.equal(node.caught[0].sync.action, 'failed');
    assert.equal(node.out.length, 6, 'nothing sent by the failed run');
    assert.deepEqual(meta()['poll.cursor.poll'], before);
    await tick(node);
    assert.equal(node.out.length, 7);
    assert.equal(node.out[6].payload.id, persons[0]);
  });

  it('quotes and invoices: one message each in the shape crm-fetch reads, after the identities, each type with its own cursor; the types setting picks what is polled', async () => {
    const { persons, orgs } = seed();
    const q = crm.addQuote({ identityId: persons[0] }, { webhook: false });
    const inv = crm.addInvoice({ identityId: orgs[0] }, { webhook: false });
    const node = await deploy();
    const st = await tick(node);
    assert.equal(st.fill, 'green');
    assert.match(st.text ?? '', /^6 changed \(full\) · cursor .+ · 1 quote · 1 invoice$/);
    assert.equal(node.out.length, 8);
    assert.deepEqual(node.out.slice(0, 6).map((m) => m.payload.type), Array(6).fill('Identity'), 'identities first');
    const docs = node.out.slice(6);
    assert.deepEqual(docs.map((m) => m.payload), [
      { id: q.crmId, type: 'Quote', modifyDate: q.modifyDate },
      { id: inv.crmId, type: 'Invoice', modifyDate: inv.modifyDate },
    ]);
    assert.deepEqual(docs.map((m) => [m.sync.trigger, m.sync.entity, m.sync.crmId]), [
      ['poll', 'quote', q.crmId],
      ['poll', 'invoice', inv.crmId],
    ]);
    const saved = meta();
    assert.equal(saved['poll.cursor.poll'].id, orgs[1], 'the identity cursor under the key it always had');
    assert.equal(saved['poll.cursor.poll:quote'].id, q.crmId);
    assert.equal(saved['poll.cursor.poll:invoice'].id, inv.crmId);

    const changed = crm.updateRecord(q.crmId, { description: 'تخفیف' }, { webhook: false });
    const st2 = await tick(node);
    assert.match(st2.text ?? '', /^0 changed · cursor .+ · 1 quote · 0 invoices$/);
    assert.equal(node.out.length, 9);
    assert.deepEqual(node.out[8].payload, { id: q.crmId, type: 'Quote', modifyDate: changed.modifyDate });
    assert.equal(node.caught.length, 0);
    await helper.unload();

    // Quotes only: no identity or invoice listing at all.
    crm.resetCounts();
    const only = await deploy({ id: 'poll2', types: 'quote' });
    assert.match(only.statuses[0].text ?? '', /quotes only/);
    const st3 = await tick(only);
    assert.equal(st3.text, '1 quote');
    assert.deepEqual(only.out.map((m) => m.payload.id), [q.crmId]);
    assert.equal(crm.count(PERSON_FIND) + crm.count(ORG_FIND) + crm.count(SEARCH) + crm.count(INVOICE_FIND), 0);
    assert.ok(crm.count(QUOTE_FIND) >= 1);
  });

  it('a types setting naming something else is a config error (red status), not a silent default', async () => {
    const node = await deploy({ types: 'identity,contacts' });
    assert.deepEqual(node.statuses[0], { fill: 'red', shape: 'dot', text: 'config error' });
  });

  it('quote/sales/find missing (HTTP 404): quotes skipped with one warning, identities and invoices polled, no error', async () => {
    const { persons } = seed();
    crm.addQuote({ identityId: persons[0] }, { webhook: false });
    const inv = crm.addInvoice({ identityId: persons[1] }, { webhook: false });
    crm.faults.add({ kind: '5xx', status: 404, path: '/quote/sales/find', times: 100 });
    const node = await deploy();
    const st = await tick(node);
    assert.equal(st.fill, 'yellow');
    assert.match(st.text ?? '', /^6 changed \(full\) · cursor .+ · quotes skipped \(no find\) · 1 invoice$/);
    assert.deepEqual(node.out.map((m) => m.payload.type).sort(), [...Array(6).fill('Identity'), 'Invoice'].sort());
    assert.equal(node.out.find((m) => m.payload.type === 'Invoice').payload.id, inv.crmId);
    const said = () => node.warnings.filter((w) => /quote\/sales\/find/.test(w));
    assert.equal(said().length, 1);
    assert.match(said()[0], /skips quotes/);
    const st2 = await tick(node);
    assert.equal(st2.fill, 'yellow');
    assert.match(st2.text ?? '', /quotes skipped \(no find\)/);
    assert.equal(said().length, 1, 'said once');
    assert.equal(node.caught.length, 0, 'a missing quote find fails nothing');
    assert.equal(meta()['poll.cursor.poll:quote'], undefined, 'no quote cursor');
    assert.ok(meta()['poll.cursor.poll:invoice']);
  });

  it('pipeline with crm-fetch auto: a synced customer\'s quote and invoice become one pre-invoice each by polling alone; a quote of an unsynced customer fails CUSTOMER_NOT_MAPPED', async () => {
    crm.setWebhooks({ enabled: false });
    const cfg = configNodes(siagh.url, crm.url);
    const flow = [
      tab,
      ...cfg.nodes,
      n({ id: 'poll', type: 'crm-poll', crm: 'crm', file: 'data/mappings.json', types: 'identity,quote,invoice', wires: [['fetch']] }),
      n({ id: 'fetch', type: 'crm-fetch', crm: 'crm', what: 'auto', wires: [['lookup']] }),
      n({ id: 'lookup', type: 'sync-mapping', operation: 'lookup', file: 'data/mappings.json', entityType: 'auto', claim: true, wires: [['up']] }),
      n({ id: 'up', type: 'siagh-upsert', siagh: 'siagh', mode: 'auto', wires: [['store']] }),
      n({ id: 'store', type: 'sync-mapping', operation: 'store', file: 'data/mappings.json', entityType: 'auto', source: 'poll', wires: [['done']] }),
      n({ id: 'done', type: 'helper' }),
      n({ id: 'c', type: 'catch', wires: [['caught']] }),
      n({ id: 'caught', type: 'helper' }),
    ];
    await helper.load(NODES(), flow, cfg.credentials);
    const poll = helper.getNode('poll');
    const statuses: Status[] = [];
    poll.on('call:status', (call: { args: [Status] }) => statuses.push(call.args[0]));
    const done = collect(helper.getNode('done'));
    const caught = collect(helper.getNode('caught'));
    await waitFor(() => statuses.length > 0, 3000, 'the first status');
    const node = { poll, statuses };

    const person = crm.addPerson({ nickName: 'نگار موسوی', firstName: 'نگار', lastName: 'موسوی', customerNumber: '100-9200' });
    await tick(node);
    await waitFor(() => done.length === 1, 8000, 'the customer synced');
    const code = done[0].sync.siaghCode;
    assert.ok(code);

    const before = siagh.preInvoices().length;
    const quote = crm.addQuote({
      identityId: person.crmId,
      details: [
        { productCode: 'P-100', productName: 'شیر گاز', count: 2, baseUnitPrice: 1_250_000 },
        { productCode: 'P-200', productName: 'رگولاتور', count: 1, baseUnitPrice: 3_400_000 },
      ],
    });
    const invoice = crm.addInvoice({ identityId: person.crmId });
    await crm.flushWebhooks();
    assert.equal(crm.webhookLog().length, 0, 'no webhook was sent');
    await tick(node);
    await waitFor(() => done.length === 3, 8000, 'the quote and the invoice synced');
    assert.equal(caught.length, 0, caught.map((m) => m.error?.message).join('; '));
    assert.deepEqual(
      done.slice(1).map((m) => [m.sync.entity, m.sync.crmId, m.sync.trigger, m.sync.action]).sort(),
      [
        ['invoice', invoice.crmId, 'poll', 'created'],
        ['quote', quote.crmId, 'poll', 'created'],
      ],
    );
    const made = siagh.preInvoices().slice(before);
    assert.equal(made.length, 2, 'one pre-invoice each');
    assert.ok(made.every((x) => x.customerCode === String(code)));
    assert.ok(made.some((x) => x.rows.length === 2), 'both quote rows');
    const mappings = readOnDisk(file).mappings;
    assert.ok(mappings.quote[quote.crmId], 'the quote is mapped');

    // A change to the quote: listed and fetched again, no second pre-invoice: a review item for the accountant.
    crm.updateRecord(quote.crmId, { description: 'تغییر پس از ارسال' });
    await tick(node);
    await waitFor(() => caught.length === 1, 8000, 'the changed quote through the pipeline');
    assert.equal(caught[0].sync.crmId, quote.crmId);
    assert.equal(caught[0].error.code, 'DOCUMENT_CHANGED_AFTER_TRANSFER');
    assert.equal(siagh.preInvoices().length, before + 2);

    // A quote whose customer has no mapping (in the shipped flows the sync queue syncs the customer first).
    const orphan = crm.addQuote({ identityId: '0b7c9a52-4d1e-4f3a-9c8b-7e6d5c4b3a21' });
    await tick(node);
    await waitFor(() => caught.length === 2, 8000, 'the orphan quote failing');
    assert.equal(caught[1].error.code, 'CUSTOMER_NOT_MAPPED');
    assert.equal(caught[1].sync.crmId, orphan.crmId);
    assert.equal(siagh.preInvoices().length, before + 2);
  });

  it('pipeline: a person created in the CRM with webhooks off becomes a Siagh contact after one tick; the next ticks write nothing', async () => {
    crm.setWebhooks({ enabled: false });
    const existing = crm.addOrganization({ nickName: 'شرکت پیشین', customerNumber: '100-9100' });
    const cfg = configNodes(siagh.url, crm.url);
    const flow = [
      tab,
      ...cfg.nodes,
      n({ id: 'poll', type: 'crm-poll', version: 1, crm: 'crm', file: 'data/mappings.json', wires: [['fetch']] }),
      n({ id: 'fetch', type: 'crm-fetch', crm: 'crm', what: 'identity', wires: [['lookup']] }),
      n({ id: 'lookup', type: 'sync-mapping', operation: 'lookup', file: 'data/mappings.json', entityType: 'auto', claim: true, wires: [['up']] }),
      n({ id: 'up', type: 'siagh-upsert', siagh: 'siagh', mode: 'auto', wires: [['store']] }),
      n({ id: 'store', type: 'sync-mapping', operation: 'store', file: 'data/mappings.json', entityType: 'auto', source: 'poll', wires: [['done']] }),
      n({ id: 'done', type: 'helper' }),
      n({ id: 'c', type: 'catch', wires: [['caught']] }),
      n({ id: 'caught', type: 'helper' }),
    ];
    await helper.load(NODES(), flow, cfg.credentials);
    const poll = helper.getNode('poll');
    const statuses: Status[] = [];
    poll.on('call:status', (call: { args: [Status] }) => statuses.push(call.args[0]));
    const done = collect(helper.getNode('done'));
    const caught = collect(helper.getNode('caught'));
    await waitFor(() => statuses.length > 0, 3000, 'the first status');
    const node = { poll, statuses };

    await tick(node);
    await waitFor(() => done.length === 1, 8000, 'the existing organization synced');
    assert.equal(done[0].sync.crmId, existing.crmId);

    const person = crm.addPerson({
      nickName: 'نگار موسوی',
      firstName: 'نگار',
      lastName: 'موسوی',
      customerNumber: '100-9200',
      email: 'negar@example.ir',
      phoneContacts: [{ phoneType: 'موبایل', phoneNumber: '09121234567', default: true }],
    });
    await crm.flushWebhooks();
    assert.equal(crm.webhookLog().length, 0, 'no webhook was sent');
    const contactsBefore = siagh.contacts().length;
    await tick(node);
    await waitFor(() => done.length === 2, 8000, 'the new person synced');
    assert.equal(caught.length, 0, caught.map((m) => m.error?.message).join('; '));
    const m = done[1];
    assert.equal(m.sync.crmId, person.crmId);
    assert.equal(m.sync.trigger, 'poll');
    assert.equal(m.sync.action, 'created');
    assert.equal(siagh.contacts().length, contactsBefore + 1);
    const contact = siagh.contacts().find((c) => String(c.Code) === m.sync.siaghCode)!;
    assert.equal(contact.Name, 'نگار موسوی');
    const mapping = readOnDisk(file).mappings.contact[person.crmId];
    assert.equal(mapping.siaghCode, m.sync.siaghCode);
    assert.equal(mapping.source, 'poll');

    // Nothing changed: the next tick lists nothing; after a reset every identity flows through
    // again and the checksums make Siagh write nothing.
    const saves = siagh.saveCount;
    const st = await tick(node);
    assert.match(st.text ?? '', /^0 changed/);
    poll.receive({ reset: true });
    await waitFor(() => statuses.some((s) => /cursor cleared/.test(s.text ?? '')), 3000, 'cursor cleared');
    await tick(node);
    await waitFor(() => done.length === 4, 8000, 'both identities through the pipeline again');
    assert.deepEqual(done.slice(2).map((x) => x.sync.action).sort(), ['unchanged', 'unchanged']);
    assert.equal(siagh.saveCount, saves, 'no Siagh write');
    assert.equal(siagh.contacts().length, contactsBefore + 1);
    assert.equal(caught.length, 0);
    assert.ok(!inspect(done, { depth: 10 }).includes(SIAGH_USER.Password));
  });

  it('the shipped polling flow: inject every ${POLL_SECONDS} (POLL_INTERVAL_SECONDS or 300) → crm-poll → sync-queue → crm-fetch → lookup → upsert → store → sync-log → debug, failures and replay (into the queue) through sync-log, no function node', () => {
    const root = packageRoot();
    const text = fs.readFileSync(path.join(root, 'flows', 'polling-sync.json'), 'utf8');
    const flow = JSON.parse(text) as Array<Record<string, any>>;
    const byId = new Map(flow.map((x) => [x.id, x]));
    const next = (x: Record<string, any>) => (x.wires as string[][]).flat().map((id) => byId.get(id)!);
    assert.ok(!flow.some((x) => x.type === 'function'), 'no function node');
    const tick = flow.find((x) => x.type === 'inject' && x.repeat === '${POLL_SECONDS}')!;
    assert.ok(tick, 'an inject repeating every ${POLL_SECONDS}');
    assert.equal(tick.once, true);
    assert.equal(Number(tick.onceDelay), 5);
    const [poll] = next(tick);
    assert.equal(poll.type, 'crm-poll');
    assert.equal(poll.crm, 'cfg-crm');
    assert.equal(poll.types, 'identity,quote,invoice', 'identities, quotes and invoices');
    assert.equal(poll.store, 'cfg-store', 'the cursors live in the data store');
    const [queue] = next(poll);
    assert.deepEqual([queue.type, queue.store], ['sync-queue', 'cfg-store'], 'polled records go into the durable sync queue');
    const [fetch] = next(queue);
    assert.deepEqual([fetch.type, fetch.what], ['crm-fetch', 'auto'], 'fetched by msg.payload.type: Identity, Quote or Invoice');
    const [lookup] = next(fetch);
    assert.deepEqual([lookup.type, lookup.operation], ['sync-mapping', 'lookup']);
    const [up] = next(lookup);
    assert.deepEqual([up.type, up.siagh], ['siagh-upsert', 'cfg-siagh']);
    const [store] = next(up);
    assert.deepEqual([store.type, store.operation, store.source], ['sync-mapping', 'store', 'poll']);
    const [log] = next(store);
    assert.deepEqual([log.type, log.trigger], ['sync-log', 'poll']);
    assert.equal(log.store, 'cfg-store');
    const [[dbgId], [replayId]] = log.wires as string[][];
    assert.deepEqual([byId.get(dbgId)!.type, byId.get(dbgId)!.complete], ['debug', 'sync']);
    assert.equal(replayId, queue.id, 'replayed events go back into the queue');
    assert.equal(byId.get('cfg-store')!.type, 'sync-store');
    const c = flow.find((x) => x.type === 'catch')!;
    assert.deepEqual(next(c).map((x) => x.type).sort(), ['debug', 'sync-log']);
    assert.ok(next(c).some((x) => x.id === log.id));
    // The catch is scoped to this tab's sync nodes (the webhook flow's catch has its own).
    const processing = flow.filter((x) => ['crm-poll', 'sync-queue', 'crm-fetch', 'sync-mapping', 'siagh-upsert', 'sync-log'].includes(x.type)).map((x) => x.id);
    assert.deepEqual([...c.scope].sort(), processing.sort());
    const replay = flow.find((x) => x.type === 'inject' && x.topic === 'replay')!;
    assert.deepEqual(next(replay).map((x) => x.id), [log.id]);
    const reset = flow.find((x) => x.type === 'inject' && x.props?.some((p: any) => p.p === 'reset'))!;
    assert.deepEqual(next(reset).map((x) => x.id), [poll.id]);
    assert.equal(byId.get('cfg-crm')!.baseUrl, '${CRM_API_BASE_URL}');
    assert.deepEqual(byId.get('cfg-crm')!.credentials, { username: '${CRM_USERNAME}', password: '${CRM_PASSWORD}' });
    assert.equal(byId.get('cfg-siagh')!.baseUrl, '${FINANCE_API_BASE_URL}');
    assert.deepEqual(byId.get('cfg-siagh')!.credentials, { username: '${FINANCE_USERNAME}', password: '${FINANCE_PASSWORD}' });
  });

  for (const [value, seconds] of [[undefined, 300], ['', 300], ['7', 7]] as const) {
    it(`the shipped polling tab with POLL_INTERVAL_SECONDS ${value === undefined ? 'unset' : JSON.stringify(value)} → its inject repeats every ${seconds} s`, async () => {
      const flow = JSON.parse(fs.readFileSync(path.join(packageRoot(), 'flows', 'polling-sync.json'), 'utf8')) as Array<Record<string, any>>;
      const tabNode = flow.find((x) => x.type === 'tab')!;
      const tick = flow.find((x) => x.type === 'inject' && x.repeat === '${POLL_SECONDS}')!;
      const saved = process.env.POLL_INTERVAL_SECONDS;
      if (value === undefined) delete process.env.POLL_INTERVAL_SECONDS;
      else process.env.POLL_INTERVAL_SECONDS = value;
      try {
        // The real tab (with its env) and the real inject, not fired at once and wired nowhere.
        await helper.load([coreNode('common/20-inject.js')], [tabNode, { ...tick, once: false, wires: [[]] }]);
        const inject = helper.getNode(tick.id) as { repeat?: number; interval_id?: unknown };
        await waitFor(() => inject.interval_id != null, 3000, 'the inject to start repeating');
        assert.equal(inject.repeat, seconds * 1000);
      } finally {
        if (saved === undefined) delete process.env.POLL_INTERVAL_SECONDS;
        else process.env.POLL_INTERVAL_SECONDS = saved;
        await helper.unload();
      }
    });
  }
});
