/**
 * crm-fetch in the real Node-RED 4.1 runtime (node-red-node-test-helper) against the CRM simulator
 * over real HTTP: every kind of read, the id and kind or subtype from msg.payload or from a webhook's
 * http-in request, search-all in both output modes, errors reaching a Catch node with a stable
 * code, a token expiring mid-run, the status, the msg.sync trace, and no password anywhere.
 */
import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import { CRM_USER, collect, configNodes, helper, n, nextMessage, nodeModule, startSims, tab, waitFor } from '../helpers/node-env';
import type { CrmSim } from '../../sim/crm-sim';
import { classify } from '../../lib/sync/retry-policy';

const NODES = () => [nodeModule('crm-config'), nodeModule('siagh-config'), nodeModule('crm-fetch')];

const PATHS = {
  login: 'POST /api/v2/auth/login',
  person: 'POST /api/v2/crmobject/person/get',
  organization: 'POST /api/v2/crmobject/organization/get',
  quote: 'POST /api/v2/crmobject/quote/sales/get',
  invoice: 'POST /api/v2/crmobject/invoice/sales/get',
  search: 'POST /api/v2/crmobject/identity/search',
};

const MISSING_ID = '0b7c9a52-4d1e-4f3a-9c8b-7e6d5c4b3a21';

/** Every text reachable from a message (circular-safe, deep), to look for secrets. */
function allText(m: unknown): string {
  return inspect(m, { depth: 12, maxArrayLength: null, maxStringLength: null, breakLength: Infinity, getters: false });
}

describe('crm-fetch (Node-RED runtime)', function () {
  this.timeout(15000);
  let sims: Awaited<ReturnType<typeof startSims>>;
  let crm: CrmSim;

  before(async () => {
    // A server page cap (3) below the node's page size (5), so search-all must page past short pages.
    sims = await startSims({ crm: { maxPageSize: 3 } });
    crm = sims.crm;
  });

  after(async () => {
    await sims.stop();
  });

  afterEach(async () => {
    crm.faults.clear();
    await helper.unload();
  });

  /** Deploy config nodes, one crm-fetch 'f' → helper 'out', and a Catch → helper 'caught'. */
  async function deploy(props: Record<string, unknown>, crmExtra: Record<string, unknown> = {}) {
    const cfg = configNodes(sims.siagh.url, crm.url, { crm: crmExtra });
    const flow = [
      tab,
      ...cfg.nodes,
      n({ id: 'f', type: 'crm-fetch', crm: 'crm', wires: [['out']], ...props }),
      n({ id: 'out', type: 'helper' }),
      n({ id: 'c', type: 'catch', wires: [['caught']] }),
      n({ id: 'caught', type: 'helper' }),
    ];
    await helper.load(NODES(), flow, cfg.credentials);
    const f = helper.getNode('f');
    const statuses: Array<{ fill?: string; shape?: string; text?: string }> = [];
    f.on('call:status', (call: { args: [{ fill?: string; shape?: string; text?: string }] }) => statuses.push(call.args[0]));
    return { f, out: helper.getNode('out'), caught: helper.getNode('caught'), statuses };
  }

  /** Send one message; resolve with what came out (or what the Catch node got). */
  async function run(node: { f: any; out: any; caught: any }, msg: Record<string, unknown>): Promise<{ out?: any; caught?: any }> {
    const outs = collect(node.out);
    const caughts = collect(node.caught);
    node.f.receive(msg);
    await waitFor(() => outs.length + caughts.length > 0, 5000, 'an output or a caught error');
    await new Promise((r) => setTimeout(r, 20));
    assert.ok(outs.length + caughts.length === 1, `exactly one outcome (out ${outs.length}, caught ${caughts.length})`);
    return { out: outs[0], caught: caughts[0] };
  }

  function checkTrace(m: any, entity: string, crmId: string) {
    assert.ok(m.sync, 'msg.sync is present');
    assert.equal(m.sync.entity, entity);
    assert.equal(m.sync.crmId, crmId);
    assert.equal(typeof m.sync.traceId, 'string');
    assert.ok(JSON.stringify(m.sync).length < 1000, 'msg.sync reads whole in the debug sidebar');
    assert.ok(!allText(m).includes(CRM_USER.password), 'no password in the message');
  }

  function snapshot() {
    return Object.fromEntries(Object.entries(PATHS).map(([k, p]) => [k, crm.count(p)])) as Record<keyof typeof PATHS, number>;
  }
  function delta(before: Record<keyof typeof PATHS, number>) {
    const now = snapshot();
    return Object.fromEntries(Object.entries(now).map(([k, v]) => [k, v - before[k as keyof typeof PATHS]])) as Record<keyof typeof PATHS, number>;
  }

  function addPerson(extra: Record<string, unknown> = {}) {
    return crm.addPerson({ nickName: 'مریم احمدی', firstName: 'مریم', lastName: 'احمدی', customerNumber: '10045', nationalCode: '0012345679', ...extra }, { webhook: false });
  }
  function addOrg(extra: Record<string, unknown> = {}) {
    return crm.addOrganization({ nickName: 'شرکت نمونه', customerNumber: '20077', registerNumber: '12345', ...extra }, { webhook: false });
  }

  // ------------------------------------------------------------------ single records

  describe('records by id', () => {
    it('person: the record, the trace and a green status', async () => {
      const p = addPerson();
      const node = await deploy({ what: 'person' });
      const { out } = await run(node, { payload: { id: p.crmId } });
      assert.equal(out.payload.crmId, p.crmId);
      assert.equal(out.payload.kind, 'person');
      assert.equal(out.payload.firstName, 'مریم');
      checkTrace(out, 'person', p.crmId);
      assert.equal(out.sync.customerNumber, '10045');
      assert.equal(out.sync.step, 'crm-fetch');
      await waitFor(() => node.statuses.some((s) => s.fill === 'green'), 2000, 'green status');
      const last = node.statuses[node.statuses.length - 1];
      assert.deepEqual(last, { fill: 'green', shape: 'dot', text: '1 fetched' });
      await run(node, { payload: { id: p.crmId } });
      await waitFor(() => node.statuses[node.statuses.length - 1]?.text === '2 fetched', 2000, 'status counts two');
    });

    it('organization', async () => {
      const o = addOrg();
      const node = await deploy({ what: 'organization' });
      const { out } = await run(node, { payload: { id: o.crmId.toUpperCase() } });
      assert.equal(out.payload.crmId, o.crmId);
      assert.equal(out.payload.kind, 'organization');
      assert.equal(out.payload.registerNumber, '12345');
      checkTrace(out, 'organization', o.crmId);
    });

    it('identity with subtype حقیقی / حقوقی in msg.payload asks the right endpoint only', async () => {
      const p = addPerson();
      const o = addOrg();
      const node = await deploy({ what: 'identity' });
      let before = snapshot();
      const a = await run(node, { payload: { id: p.crmId, subtype: 'مخاطب حقیقی siagh' } });
      assert.equal(a.out.payload.kind, 'person');
      checkTrace(a.out, 'person', p.crmId);
      assert.equal(delta(before).person, 1);
      assert.equal(delta(before).organization, 0);

      before = snapshot();
      const b = await run(node, { payload: { id: o.crmId, subtype: 'مخاطب حقوقی siagh' } });
      assert.equal(b.out.payload.kind, 'organization');
      checkTrace(b.out, 'organization', o.crmId);
      assert.equal(delta(before).organization, 1);
      assert.equal(delta(before).person, 0, 'the subtype hint avoids a wasted person/get');

      // Written with Arabic yeh (ي), as some CRM installations spell it: still a person hint.
      before = snapshot();
      const c = await run(node, { payload: { id: p.crmId, subtype: 'مخاطب حقيقي' } });
      assert.equal(c.out.payload.kind, 'person');
      assert.equal(delta(before).organization, 0);
    });

    it('identity with payload.kind (as crm-poll sends it) asks that endpoint only, also in auto mode; kind wins over a subtype', async () => {
      const p = addPerson();
      const o = addOrg();
      for (const what of ['identity', 'auto']) {
        const node = await deploy({ what });
        let before = snapshot();
        const a = await run(node, { payload: { id: o.crmId, type: 'Identity', kind: 'organization' } });
        assert.equal(a.out.payload.kind, 'organization');
        checkTrace(a.out, 'organization', o.crmId);
        assert.deepEqual([delta(before).organization, delta(before).person], [1, 0], `${what}: organization/get only`);

        before = snapshot();
        const b = await run(node, { payload: { id: p.crmId, type: 'Identity', kind: 'person', subtype: 'مخاطب حقوقی siagh' } });
        assert.equal(b.out.payload.kind, 'person');
        assert.deepEqual([delta(before).person, delta(before).organization], [1, 0], `${what}: payload.kind wins over the subtype`);

        // A kind that is neither is not trusted: the subtype (here none) and then the record decide.
        const c = await run(node, { payload: { id: o.crmId, type: 'Identity', kind: 'company' } });
        assert.equal(c.out.payload.kind, 'organization');
        await helper.unload();
      }
    });

    it('identity from a webhook http-in request (msg.req.query, payload = the query)', async () => {
      const o = addOrg();
      const p = addPerson();
      const node = await deploy({ what: 'identity' });
      const query = { event: 'Insert', id: o.crmId, type: 'Identity', subtype: 'مخاطب حقوقی siagh' };
      let before = snapshot();
      const a = await run(node, { req: { query }, payload: query });
      assert.equal(a.out.payload.crmId, o.crmId);
      assert.equal(a.out.payload.kind, 'organization');
      assert.equal(a.out.sync.event, 'Insert');
      checkTrace(a.out, 'organization', o.crmId);
      assert.equal(delta(before).person, 0);

      // The same request with an empty payload: the id and subtype come from msg.req.query alone.
      const q2 = { event: 'Update', id: p.crmId, type: 'Identity', subtype: 'مخاطب+حقیقی+siagh' };
      before = snapshot();
      const b = await run(node, { req: { query: q2 }, payload: {} });
      assert.equal(b.out.payload.crmId, p.crmId);
      assert.equal(b.out.payload.kind, 'person');
      assert.equal(b.out.sync.event, 'Update');
      assert.equal(delta(before).organization, 0);
    });

    it('identity without a subtype is decided from the record (person and organization)', async () => {
      const p = addPerson();
      const o = addOrg();
      const node = await deploy({ what: 'identity' });
      const a = await run(node, { payload: { id: p.crmId } });
      assert.equal(a.out.payload.kind, 'person');
      checkTrace(a.out, 'person', p.crmId);
      const b = await run(node, { payload: o.crmId });
      assert.equal(b.out.payload.kind, 'organization');
      checkTrace(b.out, 'organization', o.crmId);
      // A subtype that names neither kind is no hint: still decided from the record.
      const c = await run(node, { payload: { id: o.crmId, subtype: 'مشتری' } });
      assert.equal(c.out.payload.kind, 'organization');
    });

    it('identity whose webhook subtype contradicts the record follows the record (never a silent default)', async () => {
      const o = addOrg();
      const node = await deploy({ what: 'identity' });
      const { out } = await run(node, { payload: { id: o.crmId, subtype: 'مخاطب حقیقی siagh' } });
      assert.equal(out.payload.kind, 'organization');
      assert.equal(out.payload.crmId, o.crmId);
    });

    it('quote and invoice', async () => {
      const p = addPerson();
      const q = crm.addQuote({ identityId: p.crmId, number: 'Q-1', details: [{ productCode: 'K-1', count: 2, baseUnitPrice: 50_000 }] }, { webhook: false });
      const inv = crm.addInvoice({ identityId: p.crmId, number: 'I-1', details: [{ productCode: 'K-2', count: 1 }] }, { webhook: false });
      let node = await deploy({ what: 'quote' });
      const a = await run(node, { payload: { id: q.crmId } });
      assert.equal(a.out.payload.crmId, q.crmId);
      assert.equal(a.out.payload.docKind, 'quote');
      assert.equal(a.out.payload.identityId, p.crmId);
      assert.equal(a.out.payload.details[0].productCode, 'K-1');
      checkTrace(a.out, 'quote', q.crmId);
      assert.equal(a.out.sync.customerNumber, undefined);
      await helper.unload();

      node = await deploy({ what: 'invoice' });
      const b = await run(node, { payload: { id: inv.crmId } });
      assert.equal(b.out.payload.docKind, 'invoice');
      assert.equal(b.out.payload.details[0].productCode, 'K-2');
      checkTrace(b.out, 'invoice', inv.crmId);
    });

    it('auto: what to fetch comes from msg.payload.type (Identity, Quote, Invoice); another type is BAD_INPUT', async () => {
      const p = addPerson();
      const q = crm.addQuote({ identityId: p.crmId }, { webhook: false });
      const inv = crm.addInvoice({ identityId: p.crmId }, { webhook: false });
      const node = await deploy({ what: 'auto' });
      const a = await run(node, { payload: { event: 'Insert', id: p.crmId, type: 'Identity', subtype: 'مخاطب حقیقی siagh' } });
      assert.equal(a.out.payload.kind, 'person');
      const b = await run(node, { payload: { event: 'Update', id: q.crmId, type: 'Quote', subtype: 'پیش فاکتور رسمی بنیان گاز' } });
      assert.equal(b.out.payload.docKind, 'quote');
      checkTrace(b.out, 'quote', q.crmId);
      const c = await run(node, { req: { query: { event: 'Insert', id: inv.crmId, type: 'Invoice' } }, payload: {} });
      assert.equal(c.out.payload.docKind, 'invoice');
      const before = snapshot();
      const d = await run(node, { payload: { id: p.crmId, type: 'Opportunity' } });
      assert.equal(d.caught.error.code, 'BAD_INPUT');
      assert.match(d.caught.error.message, /opportunity/i);
      assert.deepEqual(delta(before), { login: 0, person: 0, organization: 0, quote: 0, invoice: 0, search: 0 });
    });
  });

  // ------------------------------------------------------------------ search-all

  describe('search-all', () => {
    let ids: string[];
    before(() => {
      crm.reset();
      for (let i = 0; i < 4; i++) addPerson({ nickName: `شخص ${i}`, customerNumber: `3000${i}` });
      for (let i = 0; i < 3; i++) addOrg({ nickName: `شرکت ${i}`, customerNumber: `4000${i}` });
      ids = crm.identities().map((r) => r.crmId);
    });

    it("'each': one message per identity, paging past the server's page cap", async () => {
      const node = await deploy({ what: 'search', searchOutput: 'each', pageSize: 5 });
      const outs = collect(node.out);
      const before = snapshot();
      node.f.receive({ payload: '' });
      await waitFor(() => outs.length === ids.length, 5000, 'one message per identity');
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(outs.length, 7);
      assert.deepEqual(outs.map((m) => m.payload.identityId), ids);
      // Pages of 3, 3, 1 and the empty page that ends the search (a short page does not end it).
      assert.equal(delta(before).search, 4);
      outs.forEach((m, i) => {
        checkTrace(m, 'identity', ids[i]);
        assert.deepEqual({ index: m.parts.index, count: m.parts.count }, { index: i, count: 7 });
      });
      assert.equal(new Set(outs.map((m) => m.sync.traceId)).size, 7, 'each message has its own trace');
      await waitFor(() => node.statuses[node.statuses.length - 1]?.text === '7 identities', 2000, 'status with the count');
    });

    it("'array': one message with every identity", async () => {
      const node = await deploy({ what: 'search', searchOutput: 'array', pageSize: 5 });
      const { out } = await run(node, { payload: {} });
      assert.ok(Array.isArray(out.payload));
      assert.deepEqual(out.payload.map((r: { identityId: string }) => r.identityId), ids);
      assert.ok(JSON.stringify(out.sync).length < 1000);
      assert.equal(out.sync.entity, 'identity');
    });

    it("search 'each' wired into an identity fetch (the polling flow): every identity is fetched whole", async () => {
      const cfg = configNodes(sims.siagh.url, crm.url);
      await helper.load(NODES(), [
        tab,
        ...cfg.nodes,
        n({ id: 's', type: 'crm-fetch', crm: 'crm', what: 'search', searchOutput: 'each', pageSize: 5, wires: [['f']] }),
        n({ id: 'f', type: 'crm-fetch', crm: 'crm', what: 'identity', wires: [['out']] }),
        n({ id: 'out', type: 'helper' }),
        n({ id: 'c', type: 'catch', wires: [['caught']] }),
        n({ id: 'caught', type: 'helper' }),
      ], cfg.credentials);
      const outs = collect(helper.getNode('out'));
      const caught = collect(helper.getNode('caught'));
      helper.getNode('s').receive({ payload: '' });
      await waitFor(() => outs.length + caught.length === ids.length, 8000, 'every identity fetched');
      assert.equal(caught.length, 0, `no errors: ${caught.map((m) => m.error?.message).join('; ')}`);
      assert.deepEqual(outs.map((m) => m.payload.crmId).sort(), [...ids].sort());
      assert.deepEqual(new Set(outs.map((m) => m.payload.kind)), new Set(['person', 'organization']));
    });

    it('a search term from msg.payload.searchTerm narrows the search', async () => {
      const node = await deploy({ what: 'search', searchOutput: 'array', pageSize: 5 });
      const { out } = await run(node, { payload: { searchTerm: 'شرکت' } });
      assert.equal(out.payload.length, 3);
      for (const r of out.payload) assert.match(r.nickName, /^شرکت/);
    });
  });

  // ------------------------------------------------------------------ errors

  describe('errors reach a Catch node', () => {
    it('not found → CRM_NOT_FOUND, red status, nothing on the output', async () => {
      const node = await deploy({ what: 'identity' });
      const r = await run(node, { payload: { id: MISSING_ID }, topic: 'keep-me' });
      assert.equal(r.out, undefined);
      assert.equal(r.caught.error.code, 'CRM_NOT_FOUND');
      assert.match(r.caught.error.message, new RegExp(MISSING_ID));
      assert.equal(r.caught.error.source.id, 'f');
      assert.equal(r.caught.topic, 'keep-me', 'the original msg travels with the error');
      assert.equal(r.caught.sync.action, 'failed');
      assert.equal(r.caught.sync.error.code, 'CRM_NOT_FOUND');
      assert.ok(JSON.stringify(r.caught.sync).length < 1000);
      await waitFor(() => node.statuses[node.statuses.length - 1]?.fill === 'red', 2000, 'red status');
      assert.deepEqual(node.statuses[node.statuses.length - 1], { fill: 'red', shape: 'dot', text: 'not found' });
    });

    it('msg.error at a Catch node carries what the retry queue needs: 429 → status and Retry-After on msg.error.cause and msg.sync.error', async () => {
      const node = await deploy({ what: 'person' });
      const p = addPerson();
      crm.faults.add({ kind: '429', path: '/person/get', times: 1000, retryAfterSec: 0 });
      try {
        const r = await run(node, { payload: { id: p.crmId } });
        assert.equal(r.caught.error.code, 'RATE_LIMITED');
        assert.deepEqual(r.caught.error.cause, { code: 'RATE_LIMITED', status: 429, retryAfterSec: 0, retryable: true });
        assert.equal(r.caught.sync.error.status, 429);
        assert.equal(r.caught.sync.error.retryAfterSec, 0);
        assert.deepEqual({ kind: classify(r.caught.error).kind, retryAfterMs: classify(r.caught.error).retryAfterMs }, { kind: 'transient', retryAfterMs: 0 });
        assert.equal(classify(r.caught).kind, 'transient', 'the whole message classifies the same');
      } finally {
        crm.faults.clear();
      }
      // A permanent failure: no retry facts beyond the status.
      const nf = await run(node, { payload: { id: MISSING_ID } });
      assert.equal(classify(nf.caught.error).kind, 'permanent');
    });

    it('not found for a quote, too', async () => {
      const node = await deploy({ what: 'quote' });
      const r = await run(node, { payload: { id: MISSING_ID } });
      assert.equal(r.caught.error.code, 'CRM_NOT_FOUND');
    });

    it('missing id / non-GUID id → BAD_INPUT and nothing is fetched', async () => {
      const node = await deploy({ what: 'identity' });
      const before = snapshot();
      const cases: Array<Record<string, unknown>> = [
        { payload: {} },
        { payload: { id: '' } },
        { payload: { id: 'not-a-guid' } },
        { payload: { id: "1' OR '1'='1" } },
        { req: { query: { event: 'Insert', type: 'Identity' } }, payload: { event: 'Insert', type: 'Identity' } },
        { req: { query: { id: '12345' } }, payload: {} },
      ];
      for (const msg of cases) {
        const r = await run(node, msg);
        assert.equal(r.caught?.error.code, 'BAD_INPUT', JSON.stringify(msg));
      }
      assert.deepEqual(delta(before), { login: 0, person: 0, organization: 0, quote: 0, invoice: 0, search: 0 }, 'no request at all');
    });

    it('CRM 401 mid-run (all tokens expired) → one new login and success', async () => {
      const p = addPerson();
      const node = await deploy({ what: 'person' });
      const a = await run(node, { payload: { id: p.crmId } });
      assert.ok(a.out);
      const before = snapshot();
      crm.expireAllTokens();
      const b = await run(node, { payload: { id: p.crmId } });
      assert.equal(b.out?.payload.crmId, p.crmId);
      const d = delta(before);
      assert.equal(d.login, 1, 'logged in again once');
      assert.equal(d.person, 2, 'the refused get and its repeat');
      await waitFor(() => node.statuses[node.statuses.length - 1]?.text === '2 fetched', 2000, 'green status after the re-login');
    });

    it('bad CRM credentials → CRM_BAD_CREDENTIALS; the password is nowhere in the message or the error', async () => {
      const cfg = configNodes(sims.siagh.url, crm.url);
      const flow = [
        tab,
        ...cfg.nodes,
        n({ id: 'f', type: 'crm-fetch', crm: 'crm', what: 'person', wires: [['out']] }),
        n({ id: 'out', type: 'helper' }),
        n({ id: 'c', type: 'catch', wires: [['caught']] }),
        n({ id: 'caught', type: 'helper' }),
      ];
      const wrong = 'wrong-pass-for-fetch';
      await helper.load(NODES(), flow, { ...cfg.credentials, crm: { username: CRM_USER.username, password: wrong } });
      const caught = nextMessage(helper.getNode('caught'), 5000);
      helper.getNode('f').receive({ payload: { id: MISSING_ID } });
      const m = await caught;
      assert.equal(m.error.code, 'CRM_BAD_CREDENTIALS');
      const text = allText(m);
      assert.ok(!text.includes(wrong), 'no password in the caught message');
      assert.ok(!text.includes(CRM_USER.password));
    });

    it('a TLS failure (https to a plain port) → TLS; neither msg.error nor its cause carries the password', async () => {
      const node = await deploy({ what: 'person' }, { baseUrl: crm.url.replace('http:', 'https:') });
      const r = await run(node, { payload: { id: MISSING_ID } });
      assert.equal(r.caught.error.code, 'TLS');
      const text = allText(r.caught);
      assert.ok(!text.includes(CRM_USER.password), `the password leaked into the caught message: ${text.slice(text.indexOf(CRM_USER.password) - 200, text.indexOf(CRM_USER.password) + 50)}`);
      assert.ok(!allText(r.caught.error.message).includes(CRM_USER.password));
      // Nor in anything Node-RED logged meanwhile.
      const logged = allText((helper.log() as { args: unknown[][] }).args);
      assert.ok(!logged.includes(CRM_USER.password), 'no password in the log');
    });

    it('without a CRM config node → CONFIG error at the Catch node', async () => {
      const flow = [
        tab,
        n({ id: 'f', type: 'crm-fetch', crm: 'nope', what: 'person', wires: [['out']] }),
        n({ id: 'out', type: 'helper' }),
        n({ id: 'c', type: 'catch', wires: [['caught']] }),
        n({ id: 'caught', type: 'helper' }),
      ];
      await helper.load(NODES(), flow, {});
      const caught = nextMessage(helper.getNode('caught'), 5000);
      helper.getNode('f').receive({ payload: { id: MISSING_ID } });
      const m = await caught;
      assert.equal(m.error.code, 'CONFIG');
    });
  });
});
