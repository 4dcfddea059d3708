/**
 * lib/sync/contact-sync.ts and lib/sync/preinvoice-sync.ts against the Siagh simulator (real HTTP):
 * create / update / unchanged / link decisions, the empty-value policy, conflicts, and the
 * pre-invoice transfer-once rules with the fiscal year from the login.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { SyncError } from '../../../lib/errors';
import { SiaghClient } from '../../../lib/siagh/client';
import { differingColumns, syncContact } from '../../../lib/sync/contact-sync';
import { mapIdentityToContact } from '../../../lib/sync/contact-mapper';
import { syncPreInvoice } from '../../../lib/sync/preinvoice-sync';
import type { CrmIdentity, CrmQuote } from '../../../lib/types';
import { nationalIdWithCheckDigit } from '../../../sim/seed';
import { SiaghSim } from '../../../sim/siagh-sim';
import { isCode } from '../../helpers/assert-code';

const USER = { UserName: 'مدیر سیستم', Password: 'lib-secret-pass' };

let phoneSeq = 0;
/** A person with a unique mobile (0912 000 xxxx) and national code. */
function person(over: Partial<CrmIdentity> = {}): CrmIdentity {
  phoneSeq++;
  const tail = String(1000 + phoneSeq).padStart(4, '0');
  return {
    crmId: randomUUID(),
    kind: 'person',
    nickName: 'مریم احمدی',
    customerNumber: null,
    nationalCode: nationalIdWithCheckDigit('001' + String(100000 + phoneSeq)),
    email: `p${phoneSeq}@example.ir`,
    description: 'مشتری تست',
    phoneContacts: [
      { phoneType: 'موبایل', phoneNumber: `+98 912 000 ${tail}`, default: true },
      { phoneType: 'محل کار', phoneNumber: `021-8877${tail}` },
    ],
    addressContacts: [{ default: true, country: 'ایران', state: 'تهران', city: 'تهران', address: 'خیابان ولیعصر', zipCode: '1234567890' }],
    ...over,
  };
}

function quote(identityId: string, over: Partial<CrmQuote> = {}): CrmQuote {
  return {
    crmId: randomUUID(),
    docKind: 'quote',
    crmObjectTypeCode: 'PI_5',
    identityId,
    subject: 'پیش فاکتور تست',
    number: 'Q-1',
    details: [
      { productCode: 'P-100', productName: 'کالا یک', productUnitTypeName: 'عدد', count: 2, baseUnitPrice: 1_500_000, totalDiscount: 0 },
      { productCode: 'P-200', productName: 'کالا دو', count: 1, baseUnitPrice: 250_000 },
    ],
    ...over,
  };
}

describe('contact-sync and preinvoice-sync (lib, against the Siagh simulator)', () => {
  let sim: SiaghSim;
  let client: SiaghClient;

  before(async () => {
    sim = new SiaghSim({ users: [USER], fiscalYear: 1403 });
    await sim.start();
  });
  after(async () => {
    await sim.stop();
  });
  beforeEach(() => {
    sim.reset();
    sim.faults.clear();
    sim.resetCounts();
    client = new SiaghClient({ baseUrl: sim.url, username: USER.UserName, password: USER.Password, retryBaseMs: 5, timeoutMs: 3000, contactIndexMaxAgeMs: 60_000 });
  });
  afterEach(() => client.close());

  const creates = () => sim.saveLog.filter((s) => s.formId === '2BFDA' && !s.params.find((p) => p.key === 'CodeMain')?.value);

  describe('syncContact', () => {
    it('creates an unknown identity with the mapped fields and returns the code and checksum', async () => {
      const id = person({ customerNumber: '100-9500', nickName: 'شرکت نمونه', kind: 'organization' });
      const r = await syncContact(client, id, null);
      assert.equal(r.action, 'created');
      const c = sim.contact(r.code)!;
      assert.equal(c.Name, 'شرکت نمونه');
      assert.equal(c.MobileNo, '0912000' + String(1000 + phoneSeq));
      assert.equal(c.TowardType, true, 'organization → taraftype 1');
      assert.equal(c.tmpid, '8500');
      assert.equal(c.CityCode, 'تهران', 'city sent by name, as the old service did (a setting turns it off)');
      assert.equal(c.writeOnly.codeostan, 'تهران');
      assert.equal(r.checksum, mapIdentityToContact(id).checksum);
      assert.equal(r.customerNumber, '100-9500');
      assert.equal(creates().length, 1);
    });

    it('a mapping with the same checksum writes nothing and does not even download the contact list', async () => {
      const id = person();
      const first = await syncContact(client, id, null);
      const saves = sim.saveCount;
      sim.resetCounts();
      const r = await syncContact(client, id, { siaghCode: String(first.code), checksum: first.checksum });
      assert.equal(r.action, 'unchanged');
      assert.deepEqual(r.written, []);
      assert.equal(sim.saveCount, saves);
      assert.equal(sim.count('GET /api/Sgh/GEN/Gn_Web_Users/GetAll'), 0);
    });

    it('a mapping without checksum (an imported one) whose Siagh record already matches is unchanged, and returns the checksum to learn', async () => {
      const id = person();
      const first = await syncContact(client, id, null);
      const saves = sim.saveCount;
      const r = await syncContact(client, id, { siaghCode: String(first.code) });
      assert.equal(r.action, 'unchanged');
      assert.equal(r.checksum, first.checksum);
      assert.equal(sim.saveCount, saves);
    });

    it('a mapped identity whose content changed is updated in place', async () => {
      const id = person();
      const first = await syncContact(client, id, null);
      const before = sim.contacts().length;
      const r = await syncContact(client, { ...id, email: 'new@example.ir' }, { siaghCode: String(first.code), checksum: first.checksum });
      assert.equal(r.action, 'updated');
      assert.equal(r.code, first.code);
      assert.notEqual(r.checksum, first.checksum);
      assert.equal(sim.contact(first.code)!.Email, 'new@example.ir');
      assert.equal(sim.contacts().length, before);
      assert.equal(sim.lastSave!.params.find((p) => p.key === 'CodeMain')?.value, String(first.code));
    });

    it('isactive is sent on create only: an update or link never re-activates a contact deactivated in Siagh', async () => {
      const localMobile = (id: CrmIdentity) => '0912000' + (id.phoneContacts![0].phoneNumber as string).slice(-4);
      const isactiveSent = () => sim.lastSave!.ctrl.some((p) => p.key === 'gn_web_users.isactive');

      const created = await syncContact(client, person(), null);
      assert.equal(created.action, 'created');
      assert.ok(isactiveSent(), 'a new contact is created active');

      // Mapped to a contact a person deactivated in Siagh: the update leaves the flag alone.
      const id = person();
      const inactive = sim.addContact({ Name: id.nickName, MobileNo: localMobile(id), IsActive: false });
      await client.contacts.refresh();
      const r = await syncContact(client, id, { siaghCode: String(inactive.Code) });
      assert.equal(r.action, 'updated');
      assert.ok(!isactiveSent(), 'the update does not send isactive');
      assert.equal(sim.contact(inactive.Code)!.IsActive, false);
      assert.equal(sim.contact(inactive.Code)!.Email, id.email);

      // Linked (same mobile, not mapped): the same.
      const twin = person();
      const other = sim.addContact({ Name: twin.nickName, MobileNo: localMobile(twin), IsActive: false });
      await client.contacts.refresh();
      const linked = await syncContact(client, twin, null);
      assert.equal(linked.action, 'linked');
      assert.equal(linked.code, other.Code);
      assert.ok(linked.written.length > 0, 'the other fields were written');
      assert.ok(!isactiveSent(), 'the link does not send isactive');
      assert.equal(sim.contact(other.Code)!.IsActive, false);
    });

    it("empty CRM fields keep Siagh's value by default and clear it with emptyPolicy 'clear'", async () => {
      const id = person();
      const first = await syncContact(client, id, null);
      // keep: email emptied and description changed → update without the email
      const keep = await syncContact(client, { ...id, email: '', description: 'تغییر' }, { siaghCode: String(first.code), checksum: first.checksum });
      assert.equal(keep.action, 'updated');
      assert.equal(sim.contact(first.code)!.Email, id.email);
      assert.equal(sim.contact(first.code)!.Description, 'تغییر');
      assert.ok(!sim.lastSave!.ctrl.some((s) => s.key === 'gn_web_users.email'), 'an empty email is not sent under keep');
      // only an emptied field under keep: nothing to write
      const saves = sim.saveCount;
      const none = await syncContact(client, { ...id, email: '', description: 'تغییر', website: '' }, { siaghCode: String(first.code), checksum: 'older' });
      assert.equal(none.action, 'unchanged');
      assert.equal(sim.saveCount, saves);
      // clear
      const clear = await syncContact(client, { ...id, email: '', description: 'تغییر' }, { siaghCode: String(first.code), checksum: 'older' }, { emptyPolicy: 'clear' });
      assert.equal(clear.action, 'updated');
      assert.equal(sim.contact(first.code)!.Email, null);
    });

    it('links to the contact whose Code the customer number encodes, before any mobile match', async () => {
      const id = person({ customerNumber: '100-9400' });
      sim.addContact({ Code: 8400, Name: 'مریم احمدی' });
      const other = person();
      sim.addContact({ Name: 'کس دیگر', NationalCode: id.nationalCode, MobileNo: (other.phoneContacts![0].phoneNumber as string).replace('+98 ', '0') });
      const before = sim.contacts().length;
      const r = await syncContact(client, id, null);
      assert.equal(r.action, 'linked');
      assert.equal(r.linkedBy, 'code');
      assert.equal(r.code, 8400);
      assert.ok(r.warnings.some((w) => w.includes('several Siagh contacts match')), r.warnings.join('\n'));
      assert.equal(sim.contacts().length, before);
      assert.equal(creates().length, 0);
      assert.equal(sim.contact(8400)!.MobileNo, '0912000' + (id.phoneContacts![0].phoneNumber as string).slice(-4));
    });

    it('never sends a mobile another Siagh contact holds: SIAGH_DUPLICATE from the index, naming both, nothing sent', async () => {
      const id = person({ customerNumber: '100-9400' });
      sim.addContact({ Code: 8400, Name: 'مریم احمدی' });
      const holder = sim.addContact({ Name: 'کس دیگر', MobileNo: (id.phoneContacts![0].phoneNumber as string).replace('+98 ', '0').replace(/ /g, '') });
      const saves = sim.saveCount;
      await assert.rejects(syncContact(client, id, null), (e: unknown) => {
        isCode('SIAGH_DUPLICATE')(e);
        const m = (e as Error).message;
        assert.ok(m.includes(String(holder.Code)) && m.includes('8400') && m.includes('nothing was sent'), m);
        return true;
      });
      // a mapped contact whose CRM mobile moved to a number another Siagh contact holds: the same
      const mine = await syncContact(client, person(), null);
      await assert.rejects(
        syncContact(client, { ...id, crmId: randomUUID(), customerNumber: null, nationalCode: null }, { siaghCode: String(mine.code), checksum: 'x' }),
        isCode('SIAGH_DUPLICATE'),
      );
      assert.equal(sim.saveCount, saves + 1, 'only the create of the second identity was sent');
    });

    it('a contact entered in Siagh after the index was downloaded is linked, not created twice', async () => {
      await syncContact(client, person(), null); // the index is loaded now
      const id = person();
      const manual = sim.addContact({ Name: 'مريم احمدي', MobileNo: (id.phoneContacts![0].phoneNumber as string).replace(/\D/g, '').slice(2) });
      const before = sim.contacts().length;
      const r = await syncContact(client, id, null);
      assert.equal(r.action, 'linked');
      assert.equal(r.linkedBy, 'mobile');
      assert.equal(r.code, manual.Code);
      assert.equal(sim.contacts().length, before);
      assert.equal(sim.contact(manual.Code)!.Name, id.nickName);
    });

    it('links by mobile (any written form) and by national code; the duplicate-mobile error never happens', async () => {
      const a = person();
      const mobileTail = (a.phoneContacts![0].phoneNumber as string).slice(-4);
      const byMobile = sim.addContact({ Name: 'مريم احمدي', MobileNo: `۹۱۲۰۰۰${[...mobileTail].map((d) => '۰۱۲۳۴۵۶۷۸۹'[Number(d)]).join('')}` });
      const b = person();
      const byNational = sim.addContact({ Name: 'خانم مریم‌احمدی', NationalCode: b.nationalCode!.replace(/^(\d{3})(\d{6})(\d)$/, '$1-$2-$3') });
      const before = sim.contacts().length;
      const ra = await syncContact(client, a, null);
      assert.equal(ra.action, 'linked');
      assert.equal(ra.linkedBy, 'mobile');
      assert.equal(ra.code, byMobile.Code);
      const rb = await syncContact(client, b, null);
      assert.equal(rb.action, 'linked');
      assert.equal(rb.linkedBy, 'nationalCode');
      assert.equal(rb.code, byNational.Code);
      assert.equal(sim.contacts().length, before);
      assert.equal(creates().length, 0);
      // CRM wins: the linked contacts now carry the CRM name
      assert.equal(sim.contact(byMobile.Code)!.Name, a.nickName);
      // a second sync of the same content, now mapped, writes nothing
      const saves = sim.saveCount;
      const again = await syncContact(client, a, { siaghCode: String(ra.code), checksum: ra.checksum });
      assert.equal(again.action, 'unchanged');
      assert.equal(sim.saveCount, saves);
    });

    it('a linked contact that already matches is not written at all', async () => {
      const id = person();
      const first = await syncContact(client, id, null);
      const saves = sim.saveCount;
      // the same identity arrives again before its mapping was stored (webhook racing the import)
      const r = await syncContact(client, id, null);
      assert.equal(r.action, 'linked');
      assert.equal(r.code, first.code);
      assert.deepEqual(r.written, []);
      assert.equal(sim.saveCount, saves);
    });

    it('without linking, Siagh refuses the duplicate mobile (what linking prevents)', async () => {
      const id = person();
      await syncContact(client, id, null);
      await assert.rejects(syncContact(client, { ...id, crmId: randomUUID(), nationalCode: null }, null, { linkBy: { mobile: false, nationalCode: false } }), isCode('SIAGH_DUPLICATE'));
    });

    it('a Siagh contact mapped to another CRM identity is a MAPPING_CONFLICT, not a merge', async () => {
      const id = person();
      const existing = await syncContact(client, id, null);
      const other = randomUUID();
      const saves = sim.saveCount;
      await assert.rejects(
        syncContact(client, { ...id, crmId: randomUUID() }, null, { mappedCrmIdOf: (code) => (code === existing.code ? other : undefined) }),
        (e: unknown) => isCode('MAPPING_CONFLICT')(e) && (e as Error).message.includes(other),
      );
      assert.equal(sim.saveCount, saves);
      // the identity it is mapped to may link to it
      const r = await syncContact(client, id, null, { mappedCrmIdOf: () => id.crmId });
      assert.equal(r.action, 'linked');
    });

    describe('link rule: only the same party is linked by mobile or national code', () => {
      /** The case of issue #10: a CRM organization whose mobile is that of a Siagh person. */
      function company(): { org: CrmIdentity; mobile: string } {
        const org = person({ kind: 'organization', nickName: 'شرکت کریمی تجارت', nationalCode: null, email: 'info@karimi.example' });
        return { org, mobile: '0912000' + (org.phoneContacts![0].phoneNumber as string).slice(-4) };
      }

      it('an organization sharing a mobile with a Siagh person is LINK_NEEDS_REVIEW with both sides; nothing is written', async () => {
        const { org, mobile } = company();
        const reza = sim.addContact({ Name: 'رضا کریمی', MobileNo: mobile, TowardType: false, NationalCode: '0012345679' });
        const saves = sim.saveCount;
        await assert.rejects(syncContact(client, org, null), (e: unknown) => {
          isCode('LINK_NEEDS_REVIEW')(e);
          const err = e as SyncError;
          assert.match(err.message, /شرکت کریمی تجارت/);
          assert.match(err.message, /رضا کریمی/);
          assert.match(err.message, /Nothing was written/);
          assert.match(err.message, /linkDecision/);
          assert.deepEqual(err.review, {
            crm: { crmId: org.crmId, kind: 'organization', name: 'شرکت کریمی تجارت', mobile, nationalCode: null },
            siagh: { code: reza.Code, kind: 'person', name: 'رضا کریمی', mobile, nationalCode: '0012345679' },
            matchedBy: 'mobile',
            reason: 'the CRM record is an organization and the Siagh contact a person',
          });
          assert.deepEqual(err.toJSON().review, err.review);
          return true;
        });
        assert.equal(sim.saveCount, saves, 'nothing sent to Siagh');
        assert.equal(sim.contact(reza.Code)!.Name, 'رضا کریمی');
        assert.equal(sim.contact(reza.Code)!.TowardType, false);
      });

      it('the same by national code: a person whose national code a differently named Siagh person holds', async () => {
        const id = person({ nickName: 'سارا رضایی' });
        const other = sim.addContact({ Name: 'مهدی رضایی', NationalCode: id.nationalCode });
        await assert.rejects(syncContact(client, id, null), (e: unknown) => {
          isCode('LINK_NEEDS_REVIEW')(e);
          const r = (e as SyncError).review as any;
          assert.equal(r.matchedBy, 'nationalCode');
          assert.equal(r.siagh.code, other.Code);
          assert.match(r.reason, /names differ/);
          return true;
        });
        assert.equal(creates().length, 0);
      });

      it("linkDecision link: links to the code the operator named and writes the CRM's data", async () => {
        const { org, mobile } = company();
        const reza = sim.addContact({ Name: 'رضا کریمی', MobileNo: mobile, TowardType: false });
        const r = await syncContact(client, org, null, { linkDecision: { decision: 'link', code: reza.Code } });
        assert.equal(r.action, 'linked');
        assert.equal(r.linkedBy, 'operator');
        assert.equal(r.code, reza.Code);
        assert.equal(sim.contact(reza.Code)!.Name, 'شرکت کریمی تجارت');
        assert.equal(sim.contact(reza.Code)!.TowardType, true);
        assert.equal(creates().length, 0);
        // an unknown code, or a code another CRM identity holds, is refused before anything is sent
        const saves = sim.saveCount;
        await assert.rejects(syncContact(client, person(), null, { linkDecision: { decision: 'link', code: 99999 } }), isCode('BAD_INPUT'));
        await assert.rejects(syncContact(client, person(), null, { linkDecision: { decision: 'link', code: reza.Code }, mappedCrmIdOf: () => org.crmId }), isCode('MAPPING_CONFLICT'));
        assert.equal(sim.saveCount, saves);
      });

      it('linkDecision separate: a create is attempted; Siagh refuses the duplicate mobile (SIAGH_DUPLICATE), without a second try', async () => {
        const { org, mobile } = company();
        sim.addContact({ Name: 'رضا کریمی', MobileNo: mobile, TowardType: false });
        const saves = sim.saveCount;
        await assert.rejects(syncContact(client, org, null, { linkDecision: { decision: 'separate' } }), isCode('SIAGH_DUPLICATE'));
        assert.equal(sim.saveCount, saves + 1, 'one create sent');
        assert.equal(creates().length, 1);
        // separate with a national-code candidate only: the create succeeds
        const id = person({ nickName: 'سارا رضایی' });
        sim.addContact({ Name: 'مهدی رضایی', NationalCode: id.nationalCode });
        const r = await syncContact(client, id, null, { linkDecision: { decision: 'separate' } });
        assert.equal(r.action, 'created');
      });

      it('a linkDecision on a mapped identity is ignored with a warning', async () => {
        const id = person();
        const first = await syncContact(client, id, null);
        const r = await syncContact(client, { ...id, email: 'x@example.ir' }, { siaghCode: String(first.code), checksum: first.checksum }, { linkDecision: { decision: 'separate' } });
        assert.equal(r.action, 'updated');
        assert.ok(r.warnings.some((w) => w.includes('linkDecision separate ignored')), r.warnings.join('\n'));
      });
    });

    it('a mapping that does not hold a contact Code is refused', async () => {
      await assert.rejects(syncContact(client, person(), { siaghCode: '100-9400' }), isCode('MAPPING_CONFLICT'));
    });

    it('differingColumns compares keys, not spellings', () => {
      const id = person({ nickName: 'علي كريمي' });
      const mapped = mapIdentityToContact(id);
      const rec = {
        Code: 1,
        Name: 'علی کریمی',
        MobileNo: '+98' + (id.phoneContacts![0].phoneNumber as string).replace(/\D/g, '').slice(2),
        TelNo: (id.phoneContacts![1].phoneNumber as string).replace('-', ''),
        NationalCode: id.nationalCode,
        Email: id.email,
        Address: 'خیابان ولیعصر',
        PostalCode: '1234567890',
        Description: 'مشتری تست',
        IsActive: true,
        TowardType: false,
        Gender: null,
        WebSiteAddress: null,
        CityCode: 'تهران',
        CountryCode: 'ايران',
      };
      assert.deepEqual(differingColumns(mapped.fields, rec, 'keep'), []);
      assert.deepEqual(differingColumns(mapped.fields, { ...rec, WebSiteAddress: 'x.ir' }, 'keep'), []);
      assert.deepEqual(differingColumns(mapped.fields, { ...rec, WebSiteAddress: 'x.ir' }, 'clear'), ['websiteaddress']);
      assert.deepEqual(differingColumns(mapped.fields, { ...rec, TowardType: true }, 'keep'), ['taraftype']);
    });
  });

  describe('syncPreInvoice', () => {
    const customer = { siaghCode: '8400' };
    beforeEach(() => {
      sim.addContact({ Code: 8400, Name: 'مشتری', AccountPartyCode: 7700 });
    });

    it('creates one pre-invoice with the fiscal year of the login and the product-code mapping', async () => {
      const q = quote(randomUUID());
      const r = await syncPreInvoice(client, q, null, customer, { productCodeMap: { 'P-100': '5001', 'P-200': '5002' }, salesCentre: '12' });
      assert.equal(r.action, 'created');
      const [inv] = sim.preInvoices();
      assert.equal(sim.preInvoices().length, 1);
      assert.equal(inv.header.salmali, '1403');
      assert.equal(inv.header.codemoshtari, '8400');
      assert.equal(inv.header.codemarkazforush, '12');
      assert.equal(inv.header.codesalemodel, '5');
      assert.deepEqual(inv.rows.map((x) => x.codekala), ['5001', '5002']);
      assert.equal(r.documentNumber, inv.printedNumber);
      assert.equal(r.siaghCode, r.documentNumber);
      assert.equal(r.returnCode, inv.returnCode);
    });

    it('customerValue accountParty sends the AccountPartyCode from the contact list', async () => {
      const r = await syncPreInvoice(client, quote(randomUUID()), null, customer, { customerValue: 'accountParty', customerField: 'both' });
      assert.equal(r.action, 'created');
      const [inv] = sim.preInvoices();
      assert.equal(inv.header.codemoshtari, '7700');
      assert.equal(inv.header.codecontact, '8400');
    });

    it('a transferred quote is never sent again: same content unchanged; changed content is DOCUMENT_CHANGED_AFTER_TRANSFER listing the differences', async () => {
      const q = quote(randomUUID());
      const first = await syncPreInvoice(client, q, null, customer);
      assert.deepEqual(first.transferred, {
        v: 1,
        customer: '8400',
        total: 3_250_000,
        rowCount: 2,
        rows: [
          ['P-100', 2, 1_500_000, 0],
          ['P-200', 1, 250_000, 0],
        ],
        header: {
          hssanadstate: '8',
          codenoeesanad: '2',
          codesalemodel: '5',
          salmali: '1403',
          codenoeepardakht: '2',
          codemarkazforush: '5',
          codenoeeforush: '1',
          codevaseteh: '31',
          tozihat: 'پیش فاکتور تست',
          namenoesanad: 'پیش فاکتور فروش',
        },
      });
      const mapping = { siaghCode: first.siaghCode!, checksum: first.checksum, extra: { transferred: first.transferred } };
      const saves = sim.saveCount;
      const same = await syncPreInvoice(client, q, mapping, customer);
      assert.equal(same.action, 'unchanged');
      assert.equal(same.siaghCode, first.siaghCode);
      const changedQuote = { ...q, details: [{ ...q.details[0], count: 3 }, { productCode: 'P-300', count: 1, baseUnitPrice: 90_000 }] };
      await assert.rejects(syncPreInvoice(client, changedQuote, mapping, { siaghCode: '8401' }), (e: unknown) => {
        isCode('DOCUMENT_CHANGED_AFTER_TRANSFER')(e);
        const err = e as SyncError;
        const r = err.review as any;
        assert.equal(r.docKind, 'quote');
        assert.equal(r.crmId, q.crmId);
        assert.equal(r.number, 'Q-1');
        assert.equal(r.siaghCode, first.siaghCode);
        assert.equal(r.checksum.transferred, first.checksum);
        assert.notEqual(r.checksum.current, first.checksum);
        assert.deepEqual(r.differences.customer, { before: '8400', after: '8401' });
        assert.deepEqual(r.differences.total, { before: 3_250_000, after: 4_590_000 });
        assert.deepEqual(r.differences.linesAdded, [{ item: 'P-300', qty: 1, price: 90_000, discount: 0 }]);
        assert.deepEqual(r.differences.linesRemoved, [{ item: 'P-200', qty: 1, price: 250_000, discount: 0 }]);
        assert.deepEqual(r.differences.linesChanged, [{ item: 'P-100', qty: { before: 2, after: 3 } }]);
        assert.deepEqual(r.differences.header, []);
        assert.match(err.message, /customer 8400 → 8401/);
        assert.match(err.message, /line P-100: qty 2 → 3/);
        assert.match(err.message, /reviewDecision/);
        return true;
      });
      // acknowledged: nothing sent; the new checksum and summary are returned for the mapping
      const ack = await syncPreInvoice(client, changedQuote, mapping, customer, {}, { decision: 'acknowledge' });
      assert.equal(ack.action, 'acknowledged');
      assert.equal(ack.siaghCode, first.siaghCode);
      assert.notEqual(ack.checksum, first.checksum);
      assert.equal(ack.transferred!.rowCount, 2);
      assert.ok(ack.warnings.some((w) => w.includes('acknowledged')), ack.warnings.join('\n'));
      // and with that checksum the document is unchanged
      const after = await syncPreInvoice(client, changedQuote, { siaghCode: first.siaghCode!, checksum: ack.checksum, extra: { transferred: ack.transferred } }, customer);
      assert.equal(after.action, 'unchanged');
      assert.equal(sim.saveCount, saves);
      assert.equal(sim.preInvoices().length, 1);
    });

    it('a changed document transferred before summaries were kept is still a review item, its differences unknown', async () => {
      const q = quote(randomUUID());
      const first = await syncPreInvoice(client, q, null, customer);
      await assert.rejects(syncPreInvoice(client, { ...q, details: [{ ...q.details[0], baseUnitPrice: 1 }] }, { siaghCode: first.siaghCode!, checksum: first.checksum }, customer), (e: unknown) => {
        isCode('DOCUMENT_CHANGED_AFTER_TRANSFER')(e);
        assert.equal(((e as SyncError).review as any).differences, null);
        assert.match((e as Error).message, /not known/);
        return true;
      });
    });

    it('a new fiscal year alone (from the Siagh login) is no change of the CRM document', async () => {
      const q = quote(randomUUID());
      const first = await syncPreInvoice(client, q, null, customer);
      const next = new SiaghSim({ users: [USER], fiscalYear: 1404, contacts: [{ Code: 8400, Name: 'مشتری' }] });
      await next.start();
      const c = new SiaghClient({ baseUrl: next.url, username: USER.UserName, password: USER.Password, retryBaseMs: 5 });
      try {
        const r = await syncPreInvoice(c, q, { siaghCode: first.siaghCode!, checksum: first.checksum, extra: { transferred: first.transferred } }, customer);
        assert.equal(r.action, 'unchanged');
        assert.equal(r.checksum, first.checksum);
        assert.equal(next.saveCount, 0);
      } finally {
        c.close();
        await next.stop();
      }
    });

    it('the header defaults follow the latest evidence: codevaseteh 31, codemarkazforush = the sale-model digits; Siagh accepts them', async () => {
      const r = await syncPreInvoice(client, quote(randomUUID()), null, customer);
      assert.equal(r.action, 'created');
      const h = sim.preInvoices()[0].header;
      assert.equal(h.codesalemodel, '5');
      assert.equal(h.codemarkazforush, '5');
      assert.equal(h.codevaseteh, '31');
    });

    it('a customer that is not mapped is CUSTOMER_NOT_MAPPED and nothing is sent', async () => {
      await assert.rejects(syncPreInvoice(client, quote(randomUUID()), null, null), isCode('CUSTOMER_NOT_MAPPED'));
      assert.equal(sim.saveCount, 0);
    });

    it('reads a document number printed in Persian digits', async () => {
      const fa = new SiaghSim({ users: [USER], fiscalYear: 1402, persianDigits: true, firstDocumentNumber: 3107 });
      await fa.start();
      const c = new SiaghClient({ baseUrl: fa.url, username: USER.UserName, password: USER.Password, retryBaseMs: 5 });
      try {
        fa.addContact({ Code: 8400, Name: 'مشتری' });
        const r = await syncPreInvoice(c, quote(randomUUID()), null, customer);
        assert.equal(fa.preInvoices()[0].printedNumber, '۳۱۰۷');
        assert.equal(r.documentNumber, '3107');
        assert.equal(fa.preInvoices()[0].header.salmali, '1402');
      } finally {
        c.close();
        await fa.stop();
      }
    });
  });
});
