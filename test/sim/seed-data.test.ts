import assert from 'node:assert/strict';
import {
  nationalIdWithCheckDigit,
  quoteSubject,
  randomGuid,
  rng,
  seedCrmIdentities,
  seedProducts,
  seedQuotes,
  seedSiaghContacts,
} from '../../sim/seed';
import { nationalIdKey, nationalIdValid, phoneKey, textKey } from '../../lib/text/normalize';
import type { SiaghContact } from '../../lib/types';

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const PERSIAN_DIGIT = /[۰-۹]/;

function assertUnique<T>(values: T[], what: string): void {
  const seen = new Set<T>();
  for (const v of values) {
    assert.ok(!seen.has(v), `duplicate ${what}: ${String(v)}`);
    seen.add(v);
  }
}

describe('seed: PRNG and national ids', () => {
  it('rng is deterministic, in [0,1), and differs between seeds', () => {
    const a = rng(42);
    const b = rng(42);
    const c = rng(43);
    const xs = Array.from({ length: 1000 }, () => a());
    assert.deepEqual(xs, Array.from({ length: 1000 }, () => b()));
    assert.notDeepEqual(xs.slice(0, 10), Array.from({ length: 10 }, () => c()));
    assert.ok(xs.every((x) => x >= 0 && x < 1));
    const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
    assert.ok(mean > 0.45 && mean < 0.55, `mean ${mean}`);
  });

  it('randomGuid gives v4 GUIDs', () => {
    const r = rng(7);
    const ids = Array.from({ length: 500 }, () => randomGuid(r));
    for (const id of ids) assert.match(id, GUID);
    assertUnique(ids, 'guid');
  });

  it('nationalIdWithCheckDigit computes the Iranian check digit', () => {
    // Known valid ids: 0499370899 (r = 2 → 9), 0790419904 (r = 7 → 4), 0084575948.
    assert.equal(nationalIdWithCheckDigit('049937089'), '0499370899');
    assert.equal(nationalIdWithCheckDigit('079041990'), '0790419904');
    assert.equal(nationalIdWithCheckDigit('008457594'), '0084575948');
    assert.equal(nationalIdWithCheckDigit('۰۴۹۹۳۷۰۸۹'), '0499370899');
    for (const id of ['0499370899', '0790419904', '0084575948']) assert.ok(nationalIdValid(id));
    assert.throws(() => nationalIdWithCheckDigit('12345'), RangeError);
    // Remainders 0 and 1 keep the remainder as the check digit.
    const r = rng(99);
    let low = 0;
    for (let i = 0; i < 2000; i++) {
      const nine = '001' + String(Math.floor(r() * 1e6)).padStart(6, '0');
      const id = nationalIdWithCheckDigit(nine);
      if (id.endsWith('0') || id.endsWith('1')) low++;
      if (nine.slice(3) !== '000000') assert.ok(nationalIdValid(id), id);
    }
    assert.ok(low > 0);
  });
});

describe('seed: Siagh contacts', () => {
  const contacts = seedSiaghContacts(3000, { seed: 11, admins: 3, firstCode: 8300 });

  it('is deterministic for a seed and differs between seeds', () => {
    assert.deepEqual(seedSiaghContacts(3000, { seed: 11, admins: 3, firstCode: 8300 }), contacts);
    assert.notDeepEqual(seedSiaghContacts(50, { seed: 12 }), seedSiaghContacts(50, { seed: 11 }));
  });

  it('has increasing, unique, sparse Codes from firstCode', () => {
    assert.equal(contacts[0]!.Code, 8300);
    for (let i = 1; i < contacts.length; i++) assert.ok(contacts[i]!.Code > contacts[i - 1]!.Code);
    assertUnique(contacts.map((c) => c.Code), 'Code');
    const span = contacts[contacts.length - 1]!.Code - contacts[0]!.Code + 1;
    assert.ok(span > contacts.length * 1.2, `Codes should have gaps (span ${span})`);
  });

  it('puts the admins first and only there', () => {
    assert.equal(contacts.filter((c) => c.IsAdminUser === true).length, 3);
    assert.deepEqual(contacts.slice(0, 3).map((c) => c.IsAdminUser), [true, true, true]);
    assert.equal(contacts.slice(0, 3).every((c) => c.TowardType === false && c.IsActive === true), true);
    assert.equal(seedSiaghContacts(10, { seed: 1 }).filter((c) => c.IsAdminUser).length, 1);
    assert.equal(seedSiaghContacts(10, { seed: 1, admins: 0 }).filter((c) => c.IsAdminUser).length, 0);
  });

  it('is about 80% persons and 20% organizations, mostly active', () => {
    const orgs = contacts.filter((c) => c.TowardType === true).length / contacts.length;
    assert.ok(orgs > 0.15 && orgs < 0.25, `organization share ${orgs}`);
    assert.ok(contacts.every((c) => typeof c.TowardType === 'boolean'));
    const active = contacts.filter((c) => c.IsActive === true).length / contacts.length;
    assert.ok(active > 0.85 && active < 1, `active share ${active}`);
  });

  it('has unique mobiles and phones by phoneKey, some missing, some in Persian digits or +98', () => {
    const mobiles = contacts.flatMap((c) => [c.MobileNo, c.MobileNo2]).filter((m): m is string => !!m);
    const keys = mobiles.map((m) => phoneKey(m));
    for (const k of keys) assert.match(k ?? '', /^\+989\d{9}$/);
    assertUnique(keys, 'mobile');
    const tels = contacts.flatMap((c) => [c.TelNo, c.TelNo2]).filter((t): t is string => !!t);
    for (const t of tels) assert.match(phoneKey(t) ?? '', /^\+98[1-8]\d{9}$/);
    assertUnique(tels.map((t) => phoneKey(t)), 'landline');
    assert.ok(contacts.some((c) => c.MobileNo == null), 'some contacts have no mobile');
    assert.ok(mobiles.some((m) => PERSIAN_DIGIT.test(m)), 'some mobiles in Persian digits');
    assert.ok(mobiles.some((m) => m.startsWith('+98')), 'some mobiles as +98');
    assert.ok(mobiles.filter((m) => /^09\d{9}$/.test(m)).length > mobiles.length * 0.8, 'mostly 09xxxxxxxxx');
    assert.ok(tels.some((t) => t.startsWith('021')), 'Tehran landlines');
  });

  it('has unique, valid national ids on persons, some missing', () => {
    const ids = contacts.map((c) => c.NationalCode).filter((x): x is string => !!x);
    assert.ok(ids.length > contacts.length * 0.5);
    for (const id of ids) assert.ok(nationalIdValid(id), `invalid national id ${id}`);
    assertUnique(ids.map((id) => nationalIdKey(id)), 'national id');
    assert.ok(ids.every((id) => nationalIdKey(id)!.length === 10));
    assert.ok(ids.some((id) => id.startsWith('00')), 'leading zeros kept');
    assert.ok(contacts.some((c) => c.TowardType === false && c.NationalCode == null), 'some persons without id');
  });

  it('has Persian names with ZWNJ and Arabic ي/ك spellings, and organization names', () => {
    const names = contacts.map((c) => c.Name ?? '');
    assert.ok(names.every((n) => n.trim().length > 0));
    assert.ok(names.some((n) => n.includes('\u200c')), 'ZWNJ names');
    assert.ok(names.some((n) => n.includes('محمدرضا') || n.includes('عبدالله')));
    const arabic = names.filter((n) => /[يك]/.test(n));
    assert.ok(arabic.length > 0 && arabic.length < names.length * 0.1, `arabic spellings ${arabic.length}`);
    const orgNames = contacts.filter((c) => c.TowardType).map((c) => textKey(c.Name));
    assert.ok(orgNames.every((n) => /^(شرکت|صنایع|گروه|فروشگاه|کارخانه|موسسه|مؤسسه|تعاونی)/.test(n)), 'organization prefixes');
    const persons = contacts.filter((c) => c.TowardType === false);
    assert.ok(persons.every((c) => (c.Name ?? '').trim().split(' ').length >= 2));
  });

  it('fills addresses, postal codes, emails, RecordIds and AccountPartyCodes realistically', () => {
    const withAddr = contacts.filter((c) => c.Address);
    assert.ok(withAddr.length > contacts.length * 0.6);
    const cities = ['تهران', 'اصفهان', 'شیراز', 'مشهد', 'تبریز'];
    for (const city of cities) assert.ok(withAddr.some((c) => textKey(c.Address).startsWith(city)), city);
    for (const c of contacts) {
      if (c.PostalCode != null) assert.match(c.PostalCode, /^[13-9]{5}\d{5}$/);
      if (c.Email != null) assert.match(c.Email, /^[a-z0-9._]+@[a-z0-9.-]+\.[a-z]+$/);
      assert.match(c.RecordId ?? '', GUID);
      assert.equal(c.Password, null);
      assert.equal('tmpid' in c, false);
    }
    assertUnique(contacts.map((c) => c.RecordId), 'RecordId');
    for (let i = 1; i < contacts.length; i++) assert.ok(contacts[i]!.RegDate! >= contacts[i - 1]!.RegDate!, 'RegDate follows Code');
    for (const c of contacts) assert.match(String(c.RegDate), /^(1398|1399|140\d)\/(0[1-9]|1[0-2])\/(0[1-9]|[12]\d|3[01])$/);
    const parties = contacts.map((c) => c.AccountPartyCode).filter((x): x is number => x != null);
    assert.ok(parties.length > 0 && parties.length < contacts.length);
    assertUnique(parties, 'AccountPartyCode');
  });

  it('noise: false gives tidy spellings with the same guarantees', () => {
    const tidy = seedSiaghContacts(2000, { seed: 11, noise: false });
    const texts = tidy.flatMap((c) => [c.Name, c.Address, c.MobileNo, c.TelNo, c.NationalCode, c.Description]);
    for (const t of texts) {
      if (t == null) continue;
      assert.ok(!/[يك|=\n]/.test(t) && !PERSIAN_DIGIT.test(t) && t === t.trim(), `untidy: ${t}`);
    }
    for (const c of tidy) if (c.MobileNo) assert.match(c.MobileNo, /^09\d{9}$/);
  });

  it('generates 10,000 contacts', () => {
    const many: SiaghContact[] = seedSiaghContacts(10_000, { seed: 5 });
    assert.equal(many.length, 10_000);
    assertUnique(many.map((c) => c.Code), 'Code');
    assertUnique(many.flatMap((c) => [c.MobileNo, c.MobileNo2]).filter(Boolean).map((m) => phoneKey(m)), 'mobile');
    assertUnique(many.map((c) => nationalIdKey(c.NationalCode)).filter(Boolean), 'national id');
  });
});

describe('seed: CRM identities', () => {
  const ids = seedCrmIdentities(2000, { seed: 3 });

  it('is deterministic for a seed', () => {
    assert.deepEqual(seedCrmIdentities(2000, { seed: 3 }), ids);
    assert.notDeepEqual(seedCrmIdentities(30, { seed: 4 }), seedCrmIdentities(30, { seed: 3 }));
  });

  it('honours organizationShare and fills person names', () => {
    const orgs = ids.filter((x) => x.kind === 'organization').length / ids.length;
    assert.ok(orgs > 0.15 && orgs < 0.25, `organization share ${orgs}`);
    const half = seedCrmIdentities(1000, { seed: 3, organizationShare: 0.5 });
    const share = half.filter((x) => x.kind === 'organization').length / half.length;
    assert.ok(share > 0.42 && share < 0.58, `share ${share}`);
    for (const p of ids.filter((x) => x.kind === 'person')) {
      assert.ok(p.firstName && p.lastName);
      assert.equal(textKey(p.nickName), textKey(`${p.firstName} ${p.lastName}`));
    }
    for (const o of ids.filter((x) => x.kind === 'organization')) {
      assert.ok(o.nickName);
      assert.equal(o.firstName, undefined);
    }
    assert.ok(ids.every((x) => x.crmId === undefined), 'crmId is left to the simulator');
  });

  it('mixes Persian and English phone types, phones unique by phoneKey', () => {
    const phones = ids.flatMap((x) => x.phoneContacts ?? []);
    const types = new Set(phones.map((p) => p.phoneType));
    for (const t of ['موبایل', 'همراه', 'Mobile', 'محل کار', 'Office']) assert.ok(types.has(t), t);
    assertUnique(phones.map((p) => phoneKey(p.phoneNumber)), 'phone');
    assert.ok(ids.some((x) => (x.phoneContacts ?? []).length === 0));
  });

  it('has three customer-number schemes, unique when set', () => {
    const nums = ids.map((x) => x.customerNumber ?? '');
    const siagh = nums.filter((n) => /^100-\d+$/.test(n));
    const native = nums.filter((n) => /^14\d\d-\d{6}$/.test(n));
    const empty = nums.filter((n) => n === '');
    assert.equal(siagh.length + native.length + empty.length, nums.length);
    for (const part of [siagh, native, empty]) assert.ok(part.length > nums.length * 0.15);
    assertUnique(nums.filter((n) => n !== ''), 'customerNumber');
    for (const x of ids) {
      if (/^100-/.test(x.customerNumber ?? '')) {
        const code = Number(x.customerNumber!.slice(4)) - 1000;
        assert.equal(x.description, `Imported from Siagh (Code: ${code})`);
      }
    }
  });

  it('has valid unique national codes, addresses and emails', () => {
    const codes = ids.map((x) => x.nationalCode).filter((c): c is string => !!c);
    for (const c of codes) assert.ok(nationalIdValid(c), c);
    assertUnique(codes.map((c) => nationalIdKey(c)), 'nationalCode');
    const addrs = ids.flatMap((x) => x.addressContacts ?? []);
    assert.ok(addrs.length > ids.length / 2);
    for (const a of addrs) {
      assert.equal(a.country, 'ایران');
      assert.ok(a.city && a.state && a.address);
      if (a.zipCode) assert.match(a.zipCode, /^\d{10}$/);
    }
    assert.ok(ids.some((x) => x.email && x.email.includes('@')));
  });
});

describe('seed: quotes', () => {
  const identities = seedCrmIdentities(40, { seed: 8 }).map((x, i) => ({ ...x, crmId: `id-${i}` }));
  const idList = identities.map((x) => x.crmId);
  const quotes = seedQuotes(idList, 300, { seed: 8, identities });

  it('is deterministic for a seed', () => {
    assert.deepEqual(seedQuotes(idList, 300, { seed: 8, identities }), quotes);
    assert.deepEqual(seedQuotes(idList, 20, { seed: 2 }), seedQuotes(idList, 20, { seed: 2 }));
    assert.notDeepEqual(seedQuotes(idList, 20, { seed: 2 }), seedQuotes(idList, 20, { seed: 3 }));
  });

  it('has consistent totals, VAT 9% and round-thousand prices', () => {
    for (const q of quotes) {
      const d = q.details!;
      assert.ok(d.length >= 1 && d.length <= 4);
      assertUnique(d.map((x) => x.productCode), 'product in a quote');
      let total = 0;
      let disc = 0;
      let vat = 0;
      for (const x of d) {
        assert.match(x.productCode ?? '', /^Product-\d+$/);
        assert.ok(['عدد', 'قطعه', 'کیلوگرم', 'متر'].includes(x.productUnitTypeName ?? ''));
        assert.equal(x.baseUnitPrice! % 1000, 0);
        assert.ok(x.count! > 0);
        assert.equal(x.totalUnitPrice, Math.round(x.baseUnitPrice! * x.count!));
        assert.equal(x.totalVat, Math.round(((x.totalUnitPrice as number) - x.totalDiscount!) * 0.09));
        total += x.totalUnitPrice as number;
        disc += x.totalDiscount!;
        vat += x.totalVat!;
      }
      assert.equal(q.totalValue, total);
      assert.equal(q.discount, disc);
      assert.equal(q.vat, vat);
      assert.equal(q.vatPercent, 9);
      assert.equal(q.finalValue, q.totalValue! - q.discount! + q.vat! + (q.toll as number));
      for (const v of [q.totalValue, q.discount, q.vat, q.finalValue]) assert.ok(Number.isInteger(v));
    }
    assert.ok(quotes.some((q) => q.discount! > 0) && quotes.some((q) => q.discount === 0));
  });

  it('uses both type codes and the real subject format', () => {
    const types = new Set(quotes.map((q) => q.crmObjectTypeCode));
    assert.deepEqual([...types].sort(), ['PI_5', 'Productinvoice']);
    const byId = new Map(identities.map((x) => [x.crmId, x]));
    for (const q of quotes) {
      const who = byId.get(q.identityId!)!;
      assert.equal(q.subject, quoteSubject(who.nickName ?? '', who.customerNumber ?? ''));
      assert.ok(q.subject!.includes('(مشتری) - ') && q.subject!.endsWith('(پیش فاکتور فروش)'));
    }
    // Without identity details the subject is still in the format, and stable per id.
    const bare = seedQuotes(['x1'], 3, { seed: 1 });
    assert.equal(new Set(bare.map((q) => q.subject)).size, 1);
    assert.match(bare[0]!.subject!, /^.+\(مشتری\) - (100-\d+)?\(پیش فاکتور فروش\)$/);
  });

  it('draws products from the fixed catalogue', () => {
    const catalogue = new Map(seedProducts().map((p) => [p.productCode, p]));
    assert.ok(catalogue.size >= 20);
    for (const q of quotes) {
      for (const x of q.details!) {
        const p = catalogue.get(x.productCode!)!;
        assert.equal(x.productId, p.productId);
        assert.equal(x.productName, p.productName);
        assert.equal(x.productUnitTypeName, p.productUnitTypeName);
      }
    }
    assert.throws(() => seedQuotes([], 1), RangeError);
    assert.deepEqual(seedQuotes([], 0), []);
  });
});
