/**
 * siagh-upsert in the real Node-RED 4.1 runtime (node-red-node-test-helper), against the Siagh
 * simulator over real HTTP, with sync-mapping on real files where the mapping matters. Outcomes
 * are read from the simulator's state: contacts and pre-invoices held, SaveFormData requests sent.
 */
import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import path from 'node:path';
import { inspect } from 'node:util';
import { writeMappingFile } from '../../lib/store/mapping-store';
import type { CrmIdentity, CrmQuote } from '../../lib/types';
import { nationalIdWithCheckDigit } from '../../sim/seed';
import type { SiaghSim } from '../../sim/siagh-sim';
import { classify } from '../../lib/sync/retry-policy';
import { CRM_USER, SIAGH_USER, collect, configNodes, helper, n, nodeModule, startSims, tab, tmpDir, waitFor } from '../helpers/node-env';

const NODES = () => [nodeModule('crm-config'), nodeModule('siagh-config'), nodeModule('siagh-upsert'), nodeModule('sync-mapping')];
const SAVE = 'POST /BpmsApi/SaveFormData';

let seq = 0;
function person(over: Partial<CrmIdentity> = {}): CrmIdentity {
  seq++;
  const tail = String(2000 + seq);
  return {
    crmId: randomUUID(),
    kind: 'person',
    nickName: `سارا رضایی ${seq}`,
    firstName: 'سارا',
    lastName: 'رضایی',
    customerNumber: `100-${9600 + seq}`,
    nationalCode: nationalIdWithCheckDigit('002' + String(300000 + seq)),
    email: `sara${seq}@example.ir`,
    description: 'مشتری',
    phoneContacts: [
      { phoneType: 'محل کار', phoneNumber: `021-6655${tail}` },
      { phoneType: 'موبایل', phoneNumber: `+98 (935) 100-${tail}`, default: true },
    ],
    addressContacts: [{ default: true, country: 'ایران', state: 'اصفهان', city: 'اصفهان', address: 'خیابان چهارباغ', zipCode: '۸۱۳۳۳۴۴۵۵۶' }],
    ...over,
  };
}
const mobileOf = (id: CrmIdentity) => '0935100' + (id.phoneContacts![1].phoneNumber as string).slice(-4);

function quote(identityId: string, over: Partial<CrmQuote> = {}): CrmQuote {
  return {
    crmId: randomUUID(),
    docKind: 'quote',
    crmObjectTypeCode: 'PI_3',
    identityId,
    subject: 'پیش فاکتور',
    number: 'Q-77',
    details: [
      { productCode: 'P-100', productName: 'کالا یک', productUnitTypeName: 'عدد', count: 2, baseUnitPrice: 1_500_000, totalDiscount: 100_000 },
      { productCode: 'P-200', productName: 'کالا دو', count: 1, baseUnitPrice: 250_000 },
    ],
    ...over,
  };
}

describe('siagh-upsert node (Node-RED runtime, Siagh simulator)', function () {
  this.timeout(15000);
  let sims: Awaited<ReturnType<typeof startSims>>;
  let sim: SiaghSim;
  let userDir: string;
  let out: any[];
  let caught: any[];
  const seen: any[] = [];

  before(async () => {
    sims = await startSims({ siagh: { fiscalYear: 1403 } });
    sim = sims.siagh;
  });
  after(async () => {
    await sims.stop();
  });
  beforeEach(() => {
    sim.reset();
    sim.faults.clear();
    sim.resetCounts();
    userDir = tmpDir('siagh-upsert-test-');
    helper.settings({ userDir });
  });
  afterEach(async () => {
    // every message that left a node in this test: trace present, compact, and no secret in it
    const secrets = [SIAGH_USER.Password, createHash('md5').update(SIAGH_USER.Password).digest('hex').toUpperCase(), CRM_USER.password, ...sessionIds()];
    try {
      for (const m of seen) {
        assert.ok(m.sync && typeof m.sync === 'object', 'msg.sync present');
        assert.ok(m.sync.action, 'msg.sync.action set');
        const len = JSON.stringify(m.sync).length;
        assert.ok(len < 1000, `msg.sync is ${len} characters`);
        const text = JSON.stringify(m) + inspect(m, { depth: 12 });
        for (const s of secrets) assert.ok(!text.includes(s), `a secret appears in a message: ${s.slice(0, 4)}…`);
      }
    } finally {
      seen.length = 0;
      await helper.unload();
    }
  });

  function sessionIds(): string[] {
    return [...(sim as unknown as { sessions: Map<string, unknown> }).sessions.keys()];
  }

  /** upsert (id 'up') → 'out'; a Catch node → 'caught'. `head` nodes are wired before 'up' by the caller. */
  async function load(upProps: Record<string, unknown>, more: Array<Record<string, unknown>> = [], upWires = [['out']]) {
    const cfg = configNodes(sim.url, sims.crm.url);
    const flow = [
      tab,
      ...cfg.nodes,
      n({ id: 'up', type: 'siagh-upsert', name: 'upsert', siagh: 'siagh', mode: 'contact', ...upProps, wires: upWires }),
      n({ id: 'out', type: 'helper' }),
      n({ id: 'catch', type: 'catch', scope: null, uncaught: false, wires: [['caught']] }),
      n({ id: 'caught', type: 'helper' }),
      ...more,
    ];
    await helper.load(NODES(), flow, cfg.credentials);
    out = collect(helper.getNode('out'));
    caught = collect(helper.getNode('caught'));
    helper.getNode('out').on('input', (m: any) => seen.push(m));
    helper.getNode('caught').on('input', (m: any) => seen.push(m));
  }

  /** Send one message into node `id` and wait for the next result on out or caught. */
  async function send(msg: Record<string, unknown>, id = 'up'): Promise<{ out?: any; caught?: any }> {
    const o = out.length;
    const c = caught.length;
    helper.getNode(id).receive(msg);
    await waitFor(() => out.length > o || caught.length > c, 8000, 'a result');
    return { out: out[o], caught: caught[c] };
  }

  const contactCreates = () => sim.saveLog.filter((s) => s.formId === '2BFDA' && !s.params.find((p) => p.key === 'CodeMain')?.value).length;

  describe('contact mode', () => {
    it('field settings: no address names, the economic code under its key; an unchanged identity is not written again', async () => {
      await load({ addressNames: false, economicCodeKey: 'gn_web_users.codeeghtesadi' });
      const id = person({ economicCode: '411122223333' });
      const r = await send({ payload: id, mapping: null });
      assert.equal(r.caught, undefined, r.caught?.error?.message);
      const c = sim.contact(r.out.siagh.code)!;
      assert.equal(c.CityCode, null);
      assert.equal(c.CountryCode, null);
      assert.ok(!sim.lastSave!.ctrl.some((x) => /codeshahr|codeostan|countrycode/i.test(x.key)));
      assert.equal(c.writeOnly.codeeghtesadi, '411122223333');
      // An identity without an economic code never blanks the one Siagh has (docs/known-faults.md#update-blanks).
      const saves = sim.saveLog.length;
      const r2 = await send({ payload: { ...id, economicCode: null, email: 'new@example.ir' }, mapping: { siaghCode: String(c.Code), checksum: r.out.mappingUpdate.checksum } });
      assert.equal(r2.out.siagh.action, 'updated');
      assert.equal(sim.saveLog.length, saves + 1);
      assert.ok(!sim.lastSave!.ctrl.some((x) => /codeeghtesadi/i.test(x.key)), 'an empty economic code is not sent');
      assert.equal(sim.contact(c.Code)!.writeOnly.codeeghtesadi, '411122223333');
    });

    it('a bad field setting is a config error at deploy', async () => {
      await load({ genderValues: 'Female' });
      const r = await send({ payload: person(), mapping: null });
      assert.equal(r.caught?.error?.code, 'CONFIG');
      assert.match(r.caught?.error?.message, /gender values/);
    });

    it('creates an identity that is neither mapped nor in Siagh, with the mapped fields', async () => {
      await load({});
      const id = person();
      const before = sim.contacts().length;
      const r = await send({ payload: id, mapping: null });
      assert.equal(r.caught, undefined, r.caught?.error?.message);
      const m = r.out;
      assert.equal(m.sync.action, 'created');
      assert.equal(m.siagh.action, 'created');
      assert.equal(sim.contacts().length, before + 1);
      assert.equal(contactCreates(), 1);
      const c = sim.contact(m.siagh.code)!;
      assert.equal(c.Name, id.nickName);
      assert.equal(c.MobileNo, mobileOf(id), 'mobile from the Persian type موبایل, written 09…');
      assert.equal(c.TelNo, id.phoneContacts![0].phoneNumber, 'telno from محل کار');
      assert.equal(c.NationalCode, id.nationalCode);
      assert.equal(c.TowardType, false, 'taraftype 0 for a person');
      assert.equal(c.tmpid, String(9600 + seq - 1000), 'tmpid = the Code the customer number encodes');
      assert.equal(c.PostalCode, '8133344556');
      // docs/open-questions.md#address-codes: city / province / country sent as the CRM writes them (names), as the old service did
      assert.equal(c.CityCode, 'اصفهان');
      assert.equal(c.CountryCode, 'ایران');
      assert.equal(c.writeOnly.codeostan, 'اصفهان');
      // what sync-mapping store would persist
      assert.deepEqual(
        { ...m.mappingUpdate, checksum: typeof m.mappingUpdate.checksum },
        { entityType: 'contact', crmId: id.crmId, siaghCode: String(c.Code), customerNumber: id.customerNumber, checksum: 'string' },
      );
      assert.equal(m.sync.crmId, id.crmId);
      assert.equal(m.sync.siaghCode, String(c.Code));
      assert.equal(m.sync.customerNumber, id.customerNumber);
      assert.equal(m.sync.attempts, 1);
    });

    it('an organization gets taraftype 1', async () => {
      await load({});
      const r = await send({ payload: person({ kind: 'organization', nickName: 'شرکت آرمان' }) });
      assert.equal(sim.contact(r.out.siagh.code)!.TowardType, true);
    });

    it('a mapped identity is updated in place; the same content again writes nothing', async () => {
      await load({});
      const id = person();
      const first = (await send({ payload: id, mapping: null })).out;
      const code = first.siagh.code;
      const mapping = { siaghCode: String(code), checksum: first.mappingUpdate.checksum };
      const count = sim.contacts().length;

      const changed = { ...id, email: 'changed@example.ir' };
      const upd = (await send({ payload: changed, mapping })).out;
      assert.equal(upd.sync.action, 'updated');
      assert.equal(upd.siagh.code, code);
      assert.equal(sim.contact(code)!.Email, 'changed@example.ir');
      assert.equal(sim.contacts().length, count);
      assert.equal(sim.lastSave!.params.find((p) => p.key === 'CodeMain')?.value, String(code));

      const saves = sim.saveCount;
      const same = (await send({ payload: changed, mapping: { siaghCode: String(code), checksum: upd.mappingUpdate.checksum } })).out;
      assert.equal(same.sync.action, 'unchanged');
      assert.equal(same.siagh.written, 0);
      assert.equal(sim.saveCount, saves, 'no SaveFormData for unchanged content');
      assert.equal(sim.count(SAVE), saves);
    });

    it("an empty CRM field keeps Siagh's value by default", async () => {
      await load({});
      const id = person();
      const first = (await send({ payload: id })).out;
      const code = first.siagh.code;
      const r = (await send({ payload: { ...id, email: '', description: 'توضیح تازه' }, mapping: { siaghCode: String(code), checksum: first.mappingUpdate.checksum } })).out;
      assert.equal(r.sync.action, 'updated');
      assert.equal(sim.contact(code)!.Email, id.email);
      assert.equal(sim.contact(code)!.Description, 'توضیح تازه');
    });

    it("emptyPolicy 'clear' clears the Siagh field an empty CRM field maps to", async () => {
      await load({ emptyPolicy: 'clear' });
      const id = person();
      const first = (await send({ payload: id })).out;
      const code = first.siagh.code;
      const r = (await send({ payload: { ...id, email: '' }, mapping: { siaghCode: String(code), checksum: first.mappingUpdate.checksum } })).out;
      assert.equal(r.sync.action, 'updated');
      assert.equal(sim.contact(code)!.Email, null);
    });

    it('links to the Siagh contact whose Code the customer number encodes (100-(Code+1000))', async () => {
      sim.addContact({ Code: 8450, Name: 'ثبت قدیمی' });
      await load({});
      const id = person({ customerNumber: '100-9450' });
      const before = sim.contacts().length;
      const m = (await send({ payload: id })).out;
      assert.equal(m.sync.action, 'linked');
      assert.equal(m.siagh.linkedBy, 'code');
      assert.equal(m.siagh.code, 8450);
      assert.equal(m.mappingUpdate.siaghCode, '8450');
      assert.equal(sim.contacts().length, before);
      assert.equal(contactCreates(), 0);
      assert.equal(sim.contact(8450)!.Name, id.nickName, 'CRM wins on the linked contact');
    });

    it('links by the same mobile (written differently) and by the same national code; never the duplicate-mobile error', async () => {
      const a = person({ customerNumber: null });
      const b = person({ customerNumber: null });
      const byMobile = sim.addContact({ Name: 'خانم سارا رضايي', MobileNo: '+98' + mobileOf(a).slice(1) });
      const byNational = sim.addContact({ Name: 'سارا رضایی', NationalCode: b.nationalCode });
      await load({});
      const before = sim.contacts().length;
      const ra = (await send({ payload: a })).out;
      const rb = (await send({ payload: b })).out;
      assert.deepEqual([ra.sync.action, ra.siagh.linkedBy, ra.siagh.code], ['linked', 'mobile', byMobile.Code]);
      assert.deepEqual([rb.sync.action, rb.siagh.linkedBy, rb.siagh.code], ['linked', 'nationalCode', byNational.Code]);
      assert.equal(sim.contacts().length, before);
      assert.equal(contactCreates(), 0);
      assert.equal(caught.length, 0);
    });

    it('a Siagh contact already mapped to another CRM id is a MAPPING_CONFLICT at Catch, and nothing is written', async () => {
      const file = path.join(userDir, 'conflict.json');
      const holder = sim.addContact({ Name: 'دارنده' });
      const otherCrm = randomUUID();
      await writeMappingFile(file, {
        version: 1,
        mappings: { contact: { [otherCrm]: { entityType: 'contact', crmId: otherCrm, siaghCode: String(holder.Code), syncedAt: new Date().toISOString(), source: 'import' } }, quote: {}, invoice: {} },
        meta: {},
      });
      const id = person({ customerNumber: `100-${holder.Code + 1000}` });
      await load({}, [n({ id: 'look', type: 'sync-mapping', operation: 'lookup', file, entityType: 'contact', wires: [['up']] })]);
      const saves = sim.saveCount;
      const r = await send({ payload: id }, 'look');
      assert.equal(r.out, undefined);
      assert.equal(r.caught.error.code, 'MAPPING_CONFLICT');
      assert.ok(r.caught.error.message.includes(otherCrm), r.caught.error.message);
      assert.equal(r.caught.error.source.id, 'up');
      assert.equal(r.caught.sync.action, 'failed');
      assert.equal(r.caught.sync.error.code, 'MAPPING_CONFLICT');
      assert.equal(r.caught.mappingClaim, undefined, 'the claim was given back');
      assert.equal(sim.saveCount, saves);
    });

    describe('link review (issue #10): an organization whose mobile is that of a Siagh person', () => {
      function company() {
        const org = person({ kind: 'organization', nickName: 'شرکت کریمی تجارت', firstName: null, lastName: null, customerNumber: null, nationalCode: null });
        const reza = sim.addContact({ Name: 'رضا کریمی', MobileNo: mobileOf(org), TowardType: false, NationalCode: '0012345679' });
        return { org, reza };
      }

      it('nothing is written to Siagh; LINK_NEEDS_REVIEW reaches a Catch node with both sides on msg.review', async () => {
        const { org, reza } = company();
        await load({});
        const r = await send({ payload: org, mapping: null });
        assert.equal(r.out, undefined);
        assert.equal(r.caught.error.code, 'LINK_NEEDS_REVIEW');
        assert.equal(r.caught.error.source.id, 'up');
        assert.match(r.caught.error.message, /شرکت کریمی تجارت/);
        assert.match(r.caught.error.message, /linkDecision/);
        assert.equal(r.caught.sync.action, 'failed');
        assert.equal(r.caught.sync.error.code, 'LINK_NEEDS_REVIEW');
        assert.deepEqual(r.caught.review, {
          code: 'LINK_NEEDS_REVIEW',
          crm: { crmId: org.crmId, kind: 'organization', name: 'شرکت کریمی تجارت', mobile: mobileOf(org), nationalCode: null },
          siagh: { code: reza.Code, kind: 'person', name: 'رضا کریمی', mobile: mobileOf(org), nationalCode: '0012345679' },
          matchedBy: 'mobile',
          reason: 'the CRM record is an organization and the Siagh contact a person',
        });
        assert.equal(sim.saveCount, 0, 'no SaveFormData at all');
        assert.equal(sim.contact(reza.Code)!.Name, 'رضا کریمی');
        assert.equal(sim.contact(reza.Code)!.TowardType, false);
      });

      it('replayed with msg.linkDecision {decision: "link", code}: linked to that contact and updated as the CRM says', async () => {
        const { org, reza } = company();
        await load({});
        const first = await send({ payload: org, mapping: null });
        assert.equal(first.caught.error.code, 'LINK_NEEDS_REVIEW');
        // the operator's replay: the same event, now with the decision
        const r = await send({ payload: org, mapping: null, linkDecision: { decision: 'link', code: String(reza.Code), crmId: org.crmId } });
        assert.equal(r.caught, undefined, r.caught?.error?.message);
        assert.equal(r.out.sync.action, 'linked');
        assert.equal(r.out.siagh.linkedBy, 'operator');
        assert.equal(r.out.siagh.code, reza.Code);
        assert.equal(r.out.review, undefined, 'msg.review cleared on success');
        assert.deepEqual([r.out.mappingUpdate.entityType, r.out.mappingUpdate.siaghCode], ['contact', String(reza.Code)]);
        const c = sim.contact(reza.Code)!;
        assert.equal(c.Name, 'شرکت کریمی تجارت');
        assert.equal(c.TowardType, true);
        assert.equal(contactCreates(), 0);
      });

      it('replayed with msg.linkDecision {decision: "separate"}: a create is attempted, and Siagh refuses the duplicate mobile (SIAGH_DUPLICATE)', async () => {
        const { org } = company();
        await load({});
        const r = await send({ payload: org, mapping: null, linkDecision: { decision: 'separate' } });
        assert.equal(r.caught.error.code, 'SIAGH_DUPLICATE');
        assert.equal(contactCreates(), 1, 'one create was sent');
        assert.equal(r.caught.review, undefined);
        // without the shared mobile the separate contact is created
        const other = person({ kind: 'organization', nickName: 'شرکت دیگر', nationalCode: null });
        sim.addContact({ Name: 'علی محمدی', NationalCode: '0084575948', TowardType: false });
        const ok = await send({ payload: { ...other, nationalCode: '0084575948' }, linkDecision: { decision: 'separate' } });
        assert.equal(ok.out?.sync.action, 'created', ok.caught?.error?.message);
      });

      it('a malformed decision, or one meant for another record, is BAD_INPUT and nothing is written', async () => {
        const { org } = company();
        await load({});
        for (const linkDecision of [{ decision: 'merge' }, { decision: 'link' }, { decision: 'link', code: 'abc' }, { decision: 'link', code: 8300, crmId: randomUUID() }, 'link']) {
          const r = await send({ payload: org, linkDecision });
          assert.equal(r.caught?.error.code, 'BAD_INPUT', JSON.stringify(linkDecision));
          assert.match(r.caught.error.message, /linkDecision/);
        }
        assert.equal(sim.saveCount, 0);
      });
    });

    it('per-field overrides from the editor apply (a literal, and a field not sent)', async () => {
      await load({ overrides: JSON.stringify({ 'gn_web_users.tozihat': '=از CRM', 'gn_web_users.email': '' }) });
      const m = (await send({ payload: person() })).out;
      const c = sim.contact(m.siagh.code)!;
      assert.equal(c.Description, 'از CRM');
      assert.equal(c.Email, null);
    });
  });

  describe('pre-invoice mode', () => {
    const PRE = {
      mode: 'preinvoice',
      productMap: JSON.stringify({ 'P-100': '5001', 'P-200': '5002' }),
      salesCentre: '12',
      intermediary: '7',
      paymentType: '3',
      saleModel: '4',
      documentName: 'پیش فاکتور آزمایشی',
    };

    it('sends one pre-invoice: fiscal year from the login, product codes mapped, header defaults from the node', async () => {
      const customer = sim.addContact({ Name: 'مشتری' });
      await load(PRE);
      const q = quote(randomUUID());
      const m = (await send({ payload: q, mapping: null, customerMapping: { siaghCode: String(customer.Code) } })).out;
      assert.ok(m, caught[0]?.error?.message);
      assert.equal(m.sync.action, 'created');
      const invs = sim.preInvoices();
      assert.equal(invs.length, 1);
      const h = invs[0].header;
      assert.equal(h.salmali, '1403');
      assert.equal(h.codemoshtari, String(customer.Code));
      assert.equal(h.codemarkazforush, '12');
      assert.equal(h.codevaseteh, '7');
      assert.equal(h.codenoeepardakht, '3');
      assert.equal(h.codesalemodel, '4');
      assert.equal(h.namenoesanad, 'پیش فاکتور آزمایشی');
      assert.deepEqual(invs[0].rows.map((r) => r.codekala), ['5001', '5002']);
      assert.deepEqual(invs[0].rows.map((r) => r.mabtakhfif), [100_000, 0]);
      // document number read from Siagh's message
      assert.equal(m.siagh.documentNumber, invs[0].printedNumber);
      assert.equal(m.sync.documentNumber, invs[0].printedNumber);
      assert.equal(m.mappingUpdate.entityType, 'quote');
      assert.equal(m.mappingUpdate.siaghCode, invs[0].printedNumber);
      assert.equal(m.mappingUpdate.extra.returnCode, invs[0].returnCode);
    });

    it('VAT and the document discount: to the columns the settings name, or spread over the rows; nothing of them by default', async () => {
      const customer = sim.addContact({ Name: 'مشتری' });
      // quote rows: 2 × 1 500 000 − 100 000 and 1 × 250 000; document discount 250 000 − 100 000 = 150 000
      const q = () => quote(randomUUID(), { vat: 270_000, vatPercent: 9, discount: 250_000, discountPercent: 5, details: quote('x').details.map((d, i) => ({ ...d, totalVat: i === 0 ? 252_000 : 18_000 })) });
      await load({ ...PRE, vatPercentKey: 'darsadmaliat', vatAmountKey: 'mablaghmaliat', rowVatKey: 'maliat', discountKey: 'takhfifsanad', discountPercentKey: 'darsadtakhfif' });
      const r = await send({ payload: q(), mapping: null, customerMapping: { siaghCode: String(customer.Code) } });
      assert.equal(r.caught, undefined, r.caught?.error?.message);
      let inv = sim.preInvoices().at(-1)!;
      assert.equal(inv.header.darsadmaliat, '9');
      assert.equal(inv.header.mablaghmaliat, '270000');
      assert.equal(inv.header.takhfifsanad, '150000');
      assert.equal(inv.header.darsadtakhfif, '5');
      assert.deepEqual(inv.rows.map((x) => x.maliat), [252_000, 18_000]);
      assert.deepEqual(inv.rows.map((x) => x.mabtakhfif), [100_000, 0]);
      await helper.unload();

      await load({ ...PRE, documentDiscount: 'rows' });
      const r2 = await send({ payload: q(), mapping: null, customerMapping: { siaghCode: String(customer.Code) } });
      assert.equal(r2.caught, undefined, r2.caught?.error?.message);
      inv = sim.preInvoices().at(-1)!;
      // rows after their own discounts: 2 900 000 and 250 000 → 150 000 spread 138 095 + 11 904, the rest (1) on the largest
      assert.deepEqual(inv.rows.map((x) => x.mabtakhfif), [100_000 + 138_096, 11_904]);
      assert.equal(inv.header.takhfifsanad, undefined);
      assert.equal(inv.net, 2_900_000 + 250_000 - 150_000 - 0);
      await helper.unload();

      await load(PRE);
      const r3 = await send({ payload: q(), mapping: null, customerMapping: { siaghCode: String(customer.Code) } });
      inv = sim.preInvoices().at(-1)!;
      assert.deepEqual(Object.keys(inv.header).filter((k) => /maliat|takhfif/.test(k)), []);
      assert.ok(!('maliat' in inv.rows[0]));
      assert.ok(r3.out.sync.warnings.some((w: string) => w.includes('document discount')));
    });

    it('the defaults follow the latest evidence and Siagh accepts them: sale model = CRM type number, sales centre = the same digits, intermediary 31 (also for the empty settings of the shipped flows)', async () => {
      const customer = sim.addContact({ Name: 'مشتری' });
      // no settings (a node from the palette: the editor's defaults are 'auto' and '31'), the editor's defaults, and the empty strings the shipped flows carry
      for (const props of [{}, { saleModel: 'auto', salesCentre: 'auto', intermediary: '31' }, { salesCentre: '', intermediary: '' }]) {
        sim.reset();
        const c = sim.addContact({ Name: 'مشتری' });
        assert.equal(c.Code, customer.Code);
        await load({ mode: 'preinvoice', ...props });
        const r = await send({ payload: quote(randomUUID()), customerMapping: { siaghCode: String(c.Code) } });
        assert.equal(r.caught, undefined, r.caught?.error?.message);
        assert.equal(r.out.sync.action, 'created');
        const h = sim.preInvoices()[0].header;
        assert.equal(h.codesalemodel, '3');
        assert.equal(h.codemarkazforush, '3');
        assert.equal(h.codevaseteh, '31');
        await helper.unload();
      }
    });

    it('the simulator refuses what the real server refused: empty sales centre or intermediary → the RUNTIME ERROR at Catch', async () => {
      const customer = sim.addContact({ Name: 'مشتری' });
      await load({ mode: 'preinvoice' });
      // what the old service sent on 2025-12-26, straight to the simulator through the client of the config node
      const client = (helper.getNode('siagh') as any).client();
      await assert.rejects(
        client.createPreInvoice({
          suid: 'BE8892DF92EA4C4986082AFED6F07DCB',
          header: [['hssanadstate', '8'], ['codenoeesanad', '2'], ['codesalemodel', '1'], ['salmali', '1403'], ['codenoeepardakht', '2'], ['codemarkazforush', ''], ['codecontact', ''], ['codemoshtari', String(customer.Code)], ['codenoeeforush', '1'], ['codevaseteh', ''], ['tozihat', ''], ['namenoesanad', 'پیش فاکتور فروش']],
          rows: [{ itemCode: '5001', unitName: 'عدد', qty: 1, price: 100000, discount: 0 }],
        }),
        (e: any) => e.code === 'SIAGH_UNKNOWN_CUSTOMER' && /Field 'Code' not found/.test(e.details.join('\n')),
      );
      assert.equal(sim.preInvoices().length, 0);
    });

    it('a transferred quote changed in the CRM: DOCUMENT_CHANGED_AFTER_TRANSFER at Catch with the differences; acknowledged on replay with msg.reviewDecision, nothing sent', async () => {
      const customer = sim.addContact({ Name: 'مشتری' });
      const identityId = randomUUID();
      const file = path.join(userDir, 'changed.json');
      await writeMappingFile(file, {
        version: 1,
        mappings: { contact: { [identityId]: { entityType: 'contact', crmId: identityId, siaghCode: String(customer.Code), syncedAt: new Date().toISOString(), source: 'import' } }, quote: {}, invoice: {} },
        meta: {},
      });
      await load(PRE, [n({ id: 'look', type: 'sync-mapping', operation: 'lookup', file, wires: [['up']] }), n({ id: 'store', type: 'sync-mapping', operation: 'store', file, wires: [['out']] })], [['store']]);
      const q = quote(identityId);
      const first = (await send({ payload: q }, 'look')).out;
      assert.equal(first.sync.action, 'created');
      assert.equal(first.mapping.extra.transferred.rowCount, 2, 'the transferred summary is kept in the mapping');
      const same = (await send({ payload: q }, 'look')).out;
      assert.equal(same.sync.action, 'unchanged');
      const saves = sim.saveCount;

      const changed = { ...q, details: [{ ...q.details[0], baseUnitPrice: 1_700_000 }, { productCode: 'P-300', productName: 'کالا سه', count: 4, baseUnitPrice: 10_000 }] };
      const r = await send({ payload: changed }, 'look');
      assert.equal(r.out, undefined);
      assert.equal(r.caught.error.code, 'DOCUMENT_CHANGED_AFTER_TRANSFER');
      assert.equal(r.caught.sync.action, 'failed');
      assert.match(r.caught.error.message, /reviewDecision/);
      const rv = r.caught.review;
      assert.equal(rv.code, 'DOCUMENT_CHANGED_AFTER_TRANSFER');
      assert.equal(rv.docKind, 'quote');
      assert.equal(rv.crmId, q.crmId);
      assert.equal(rv.siaghCode, first.mapping.siaghCode);
      assert.deepEqual(rv.differences.linesChanged, [{ item: '5001', price: { before: 1_500_000, after: 1_700_000 } }]);
      assert.deepEqual(rv.differences.linesAdded, [{ item: 'P-300', qty: 4, price: 10_000, discount: 0 }]);
      assert.deepEqual(rv.differences.linesRemoved, [{ item: '5002', qty: 1, price: 250_000, discount: 0 }]);
      assert.deepEqual(rv.differences.total, { before: 3_150_000, after: 3_340_000 });
      assert.equal(rv.differences.customer, undefined);

      // the operator acknowledges (the accountant corrects the pre-invoice in Siagh by hand)
      const ack = await send({ payload: changed, reviewDecision: { decision: 'acknowledge', crmId: q.crmId } }, 'look');
      assert.equal(ack.caught, undefined, ack.caught?.error?.message);
      assert.equal(ack.out.siagh.action, 'acknowledged');
      assert.equal(ack.out.sync.action, 'skipped');
      assert.ok(ack.out.sync.warnings.some((w: string) => w.includes('acknowledged')), JSON.stringify(ack.out.sync.warnings));
      assert.equal(ack.out.mapping.siaghCode, first.mapping.siaghCode, 'the same pre-invoice');
      assert.notEqual(ack.out.mapping.checksum, first.mapping.checksum, 'the new checksum is recorded');
      assert.equal(ack.out.mapping.extra.acknowledged.previousChecksum, first.mapping.checksum);
      assert.equal(ack.out.mapping.extra.returnCode, first.mapping.extra.returnCode, 'the facts of the transfer are kept');
      assert.equal(sim.saveCount, saves, 'nothing sent to Siagh');
      assert.equal(sim.preInvoices().length, 1);
      // from now on this version is the transferred one
      const again = (await send({ payload: changed }, 'look')).out;
      assert.equal(again.sync.action, 'unchanged');
      // a malformed decision is BAD_INPUT
      const bad = await send({ payload: { ...changed, details: [changed.details[0]] }, reviewDecision: { decision: 'ignore' } }, 'look');
      assert.equal(bad.caught.error.code, 'BAD_INPUT');
      assert.equal(sim.saveCount, saves);
    });

    it('a customer not mapped is CUSTOMER_NOT_MAPPED at Catch; nothing sent', async () => {
      await load(PRE);
      const r = await send({ payload: quote(randomUUID()), mapping: null, customerMapping: null });
      assert.equal(r.caught.error.code, 'CUSTOMER_NOT_MAPPED');
      assert.equal(r.caught.sync.action, 'failed');
      assert.equal(sim.saveCount, 0);
    });

    it('through sync-mapping: the customer mapping is found, the quote stored, the replay unchanged', async () => {
      const customer = sim.addContact({ Name: 'مشتری' });
      const identityId = randomUUID();
      const file = path.join(userDir, 'pre.json');
      await writeMappingFile(file, {
        version: 1,
        mappings: { contact: { [identityId]: { entityType: 'contact', crmId: identityId, siaghCode: String(customer.Code), syncedAt: new Date().toISOString(), source: 'import' } }, quote: {}, invoice: {} },
        meta: {},
      });
      await load(PRE, [n({ id: 'look', type: 'sync-mapping', operation: 'lookup', file, wires: [['up']] }), n({ id: 'store', type: 'sync-mapping', operation: 'store', file, wires: [['out']] })], [['store']]);
      const q = quote(identityId);
      const first = (await send({ payload: q }, 'look')).out;
      assert.equal(first.sync.action, 'created');
      assert.equal(first.mapping.entityType, 'quote');
      assert.equal(first.mapping.siaghCode, sim.preInvoices()[0].printedNumber);
      const again = (await send({ payload: q }, 'look')).out;
      assert.equal(again.sync.action, 'unchanged');
      assert.equal(sim.preInvoices().length, 1);
    });
  });

  describe('errors reach Catch with a stable code', () => {
    it('BAD_INPUT for a payload that is not a CRM identity', async () => {
      await load({});
      const r = await send({ payload: { hello: 'world' } });
      assert.equal(r.caught.error.code, 'BAD_INPUT');
      assert.equal(r.caught.sync.action, 'failed');
    });

    it('CONFIG for overrides that are not JSON', async () => {
      await load({ overrides: '{not json' });
      const r = await send({ payload: person() });
      assert.equal(r.caught.error.code, 'CONFIG');
      assert.equal(sim.saveCount, 0);
    });

    it('SIAGH_LOGIN_FAILED for a wrong password, without the password in the message', async () => {
      const cfg = configNodes(sim.url, sims.crm.url);
      const flow = [
        tab,
        ...cfg.nodes,
        n({ id: 'up', type: 'siagh-upsert', siagh: 'siagh', mode: 'contact', wires: [['out']] }),
        n({ id: 'out', type: 'helper' }),
        n({ id: 'catch', type: 'catch', scope: null, uncaught: false, wires: [['caught']] }),
        n({ id: 'caught', type: 'helper' }),
      ];
      await helper.load(NODES(), flow, { ...cfg.credentials, siagh: { username: SIAGH_USER.UserName, password: 'wrong-password-123' } });
      out = collect(helper.getNode('out'));
      caught = collect(helper.getNode('caught'));
      helper.getNode('caught').on('input', (m: any) => seen.push(m));
      const r = await send({ payload: person() });
      assert.equal(r.caught.error.code, 'SIAGH_LOGIN_FAILED');
      assert.ok(!JSON.stringify(r.caught).includes('wrong-password-123'));
      assert.ok(!inspect(r.caught, { depth: 12 }).includes(createHash('md5').update('wrong-password-123').digest('hex').toUpperCase()));
    });

    it('a Siagh rejection (runtime dump for an unknown customer) is SIAGH_UNKNOWN_CUSTOMER', async () => {
      await load({ mode: 'preinvoice' });
      const r = await send({ payload: quote(randomUUID()), customerMapping: { siaghCode: '999999' } });
      assert.equal(r.caught.error.code, 'SIAGH_UNKNOWN_CUSTOMER');
    });

    it('an unknown outcome of the create (connection dropped) is AMBIGUOUS_CREATE, with no session id or password anywhere on the message', async () => {
      await load({});
      sim.faults.add({ kind: 'drop', path: 'SaveFormData', times: 1, afterHandling: false });
      const r = await send({ payload: person() });
      assert.equal(r.caught.error.code, 'AMBIGUOUS_CREATE');
      assert.equal(r.caught.sync.action, 'failed');
      // the retry facts survive Node-RED's msg.error (on its cause) and the trace
      assert.equal(r.caught.error.cause.ambiguous, true);
      assert.equal(r.caught.sync.error.ambiguous, true);
      assert.equal(classify(r.caught.error).kind, 'ambiguous');
      assert.equal(sim.count('POST /BpmsApi/SaveFormData'), 1, 'sent once');
      assert.equal(sim.contacts().length, 0);
    });

    it('a message that is too long a story still has a compact trace', async () => {
      await load({});
      // many warnings: no mobile, a national code failing its check digit, an unknown gender, a foreign customer number
      const id = person({ phoneContacts: [], nationalCode: '0012345678', gender: 'نامشخص', customerNumber: 'CRM-0042', nickName: 'ن'.repeat(300) });
      const m = (await send({ payload: id })).out;
      assert.equal(m.sync.action, 'created');
      assert.ok(m.sync.warnings.length >= 3);
      assert.ok(JSON.stringify(m.sync).length < 1000);
    });

    it('a failure after many warnings (store conflict on the new Code) still has a trace under 1000 characters', async () => {
      const file = path.join(userDir, 'late.json');
      const otherCrm = randomUUID();
      // the Code Siagh will give the next contact is already mapped (a hand-edited or stale file)
      await writeMappingFile(file, {
        version: 1,
        mappings: { contact: { [otherCrm]: { entityType: 'contact', crmId: otherCrm, siaghCode: '8300', syncedAt: new Date().toISOString(), source: 'manual' } }, quote: {}, invoice: {} },
        meta: {},
      });
      await load({}, [n({ id: 'store', type: 'sync-mapping', operation: 'store', file, wires: [['out']] })], [['store']]);
      const id = person({
        phoneContacts: [{ phoneType: 'فکس', phoneNumber: '021-1' }],
        nationalCode: '0012345678',
        gender: 'نامشخص'.repeat(20),
        customerNumber: 'CRM-' + '9'.repeat(100),
        nickName: 'ن'.repeat(300),
        crmObjectTypeCode: 'x'.repeat(500),
      });
      const r = await send({ payload: id });
      assert.equal(r.caught?.error.code, 'MAPPING_CONFLICT', r.out?.sync.action);
      assert.ok(r.caught.sync.warnings.length >= 4, JSON.stringify(r.caught.sync.warnings));
      const len = JSON.stringify(r.caught.sync).length;
      assert.ok(len < 1000, `msg.sync is ${len} characters: ${JSON.stringify(r.caught.sync)}`);
    });
  });
});
