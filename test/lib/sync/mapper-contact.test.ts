import assert from 'node:assert/strict';
import { SyncError } from '../../../lib/errors';
import type { CrmIdentity, SiaghFieldList } from '../../../lib/types';
import { DEFAULT_CONTACT_FIELDS, DEFAULT_PHONE_TYPES, fieldsForUpdate, mapIdentityToContact, phoneRole } from '../../../lib/sync/contact-mapper';
import { checksumOf } from '../../../lib/sync/checksum';
import { phoneKey } from '../../../lib/text/normalize';

function person(over: Partial<CrmIdentity> = {}): CrmIdentity {
  return {
    crmId: '3f6448af-6dfd-4c36-8be1-9f3d46ccff6c',
    kind: 'person',
    crmObjectTypeCode: 'person',
    nickName: 'علی رضایی',
    firstName: 'علی',
    lastName: 'رضایی',
    customerNumber: '100-9407',
    nationalCode: '0013542419',
    email: 'ali.rezaei@example.ir',
    website: 'https://rezaei.example.ir',
    description: 'مشتری عمده\nپرداخت چکی',
    gender: 'مرد',
    phoneContacts: [
      { phoneType: 'محل کار', phoneNumber: '021-8877 6655' },
      { phoneType: 'موبایل', phoneNumber: '0912 123 4567', default: true },
    ],
    addressContacts: [
      { country: 'ایران', state: 'تهران', city: 'تهران', address: 'خیابان ولیعصر، پلاک ۱۲', zipCode: '۱۴۳۴۸۶۳۱۱۱' },
    ],
    ...over,
  };
}

const get = (fields: SiaghFieldList, key: string): string | undefined => fields.find(([k]) => k === key)?.[1];
const keys = (fields: SiaghFieldList): string[] => fields.map(([k]) => k);

describe('sync/contact-mapper', () => {
  describe('default table', () => {
    it('maps a Persian person in the send order of the captured requests', () => {
      const m = mapIdentityToContact(person());
      assert.deepEqual(m.fields, [
        ['gn_web_users.isactive', '1'],
        ['gn_web_users.gender', '1'],
        ['gn_web_users.websiteaddress', 'https://rezaei.example.ir'],
        ['gn_web_users.pocode', '1434863111'],
        ['gn_web_users.codeostan', 'تهران'],
        ['gn_web_users.address', 'خیابان ولیعصر، پلاک ۱۲'],
        ['gn_web_users.codeshahr', 'تهران'],
        ['gn_web_users.countrycode', 'ایران'],
        ['gn_web_users.email', 'ali.rezaei@example.ir'],
        ['gn_web_users.fullname', 'علی رضایی'],
        ['gn_web_users.mobileno', '09121234567'],
        ['gn_web_users.telno', '021-8877 6655'],
        ['gn_web_users.passno', '0013542419'],
        ['gn_web_users.tmpid', '8407'],
        ['gn_web_users.tozihat', 'مشتری عمده\nپرداخت چکی'],
        ['gn_web_users.taraftype', '0'],
      ]);
      assert.deepEqual(m.match, { mobile: '09121234567', nationalCode: '0013542419', code: 8407 });
      assert.deepEqual(m.warnings, []);
      assert.equal(m.checksum, checksumOf(m.fields));
    });

    it('documents every default field with a source and a note', () => {
      assert.equal(DEFAULT_CONTACT_FIELDS.length, 16);
      for (const r of DEFAULT_CONTACT_FIELDS) {
        assert.match(r.key, /^gn_web_users\.[a-z]+$/);
        assert.equal(typeof r.source, 'string');
        assert.ok(r.note.length > 5);
      }
      assert.throws(() => (DEFAULT_CONTACT_FIELDS as ContactRuleArray).push({ key: 'x', source: '', note: '' }));
    });

    it('sends city/state/country of the default address as the CRM writes them, as the old service did', () => {
      const m = mapIdentityToContact(
        person({ addressContacts: [{ city: 'کرج', state: 'البرز', country: 'ایران', address: 'الف' }, { default: true, city: ' اصفهان ', state: 'اصفهان', address: 'ب' }] }),
      );
      assert.equal(get(m.fields, 'gn_web_users.codeshahr'), 'اصفهان');
      assert.equal(get(m.fields, 'gn_web_users.codeostan'), 'اصفهان');
      assert.equal(get(m.fields, 'gn_web_users.countrycode'), '', 'no country on the default address: empty (an update keeps Siagh\'s)');
      assert.deepEqual(fieldsForUpdate(m.fields).filter(([k]) => k === 'gn_web_users.countrycode'), []);
    });

    it('addressNames false never writes city/state/country names into code fields', () => {
      const m = mapIdentityToContact(person(), { addressNames: false });
      for (const k of ['gn_web_users.codeshahr', 'gn_web_users.codeostan', 'gn_web_users.countrycode']) {
        assert.equal(get(m.fields, k), undefined, k);
      }
      assert.ok(!m.fields.some(([, v]) => v === 'تهران'));
      assert.throws(() => mapIdentityToContact(person(), { addressNames: 'no' as unknown as boolean }), /address-names/);
    });

    it('economic code: not sent by default; sent under the key a setting names', () => {
      const id = person({ economicCode: ' ۴۱۱۱۲۲۳۳۴۴۵۵ ' });
      assert.ok(!mapIdentityToContact(id).fields.some(([k]) => /econom|eghtesad/i.test(k)));
      const m = mapIdentityToContact(id, { economicCodeKey: 'gn_web_users.codeeghtesadi' });
      assert.equal(keys(m.fields).at(-1), 'gn_web_users.codeeghtesadi');
      assert.equal(get(m.fields, 'gn_web_users.codeeghtesadi'), '۴۱۱۱۲۲۳۳۴۴۵۵');
      assert.equal(get(mapIdentityToContact(person(), { economicCodeKey: 'gn_web_users.codeeghtesadi' }).fields, 'gn_web_users.codeeghtesadi'), '');
      assert.throws(() => mapIdentityToContact(id, { economicCodeKey: 'bad key|x' }), (e: unknown) => (e as { code?: string }).code === 'CONFIG');
    });

    it('gender words of a setting count as female / male', () => {
      assert.equal(get(mapIdentityToContact(person({ gender: 'F2' }), { genderWords: { female: ['f2'], male: ['m2'] } }).fields, 'gn_web_users.gender'), '0');
      assert.equal(get(mapIdentityToContact(person({ gender: 'M2' }), { genderWords: { female: ['f2'], male: ['m2'] } }).fields, 'gn_web_users.gender'), '1');
    });

    it('an override may map city/state/country, in their original place in the send order', () => {
      const m = mapIdentityToContact(
        person({ addressContacts: [{ city: '021', state: '23', country: 'IR', address: 'ونک' }] }),
        { overrides: { 'gn_web_users.codeshahr': 'addressContacts.0.city', 'gn_web_users.codeostan': 'address:state' } },
      );
      assert.equal(get(m.fields, 'gn_web_users.codeshahr'), '021');
      assert.equal(get(m.fields, 'gn_web_users.codeostan'), '23');
      assert.equal(get(m.fields, 'gn_web_users.countrycode'), 'IR');
      assert.equal(get(mapIdentityToContact(person(), { addressNames: false, overrides: { 'gn_web_users.codeshahr': 'address:city' } }).fields, 'gn_web_users.codeshahr'), 'تهران', 'an override wins over addressNames');
      const order = keys(m.fields);
      assert.ok(order.indexOf('gn_web_users.codeostan') < order.indexOf('gn_web_users.address'));
      assert.ok(order.indexOf('gn_web_users.address') < order.indexOf('gn_web_users.codeshahr'));
    });

    it('maps an organization: taraftype 1, no gender, legal id checked', () => {
      const m = mapIdentityToContact({
        crmId: 'a1b2',
        kind: 'organization',
        nickName: 'شرکت بنیان گاز',
        nationalCode: '10380284790',
        gender: 'male',
        phoneContacts: [{ phoneType: 'Office', phoneNumber: '+98 21 4455 6677' }],
      });
      assert.equal(get(m.fields, 'gn_web_users.taraftype'), '1');
      assert.equal(get(m.fields, 'gn_web_users.gender'), '');
      assert.equal(get(m.fields, 'gn_web_users.passno'), '10380284790');
      assert.equal(get(m.fields, 'gn_web_users.telno'), '+98 21 4455 6677');
      assert.equal(get(m.fields, 'gn_web_users.mobileno'), '');
      assert.ok(m.warnings.some((w) => w.includes('No mobile')));
      assert.ok(!m.warnings.some((w) => w.includes('check digit')));
      const bad = mapIdentityToContact({ crmId: 'a1b2', kind: 'organization', nickName: 'شرکت', nationalCode: '10380284791' });
      assert.ok(bad.warnings.some((w) => w.includes('check digit')));
    });

    it('refuses an identity without a usable kind (never guess from a name)', () => {
      assert.throws(
        () => mapIdentityToContact(person({ kind: 'حقیقی' as unknown as 'person' })),
        (e: unknown) => e instanceof SyncError && e.code === 'BAD_INPUT',
      );
    });
  });

  describe('names', () => {
    it('falls back to firstName + lastName when nickName is empty', () => {
      const m = mapIdentityToContact(person({ nickName: '  ', firstName: 'مریم', lastName: 'احمدی‌نژاد' }));
      assert.equal(get(m.fields, 'gn_web_users.fullname'), 'مریم احمدی‌نژاد');
    });

    it('warns when there is no name at all', () => {
      const m = mapIdentityToContact(person({ nickName: null, firstName: null, lastName: '' }));
      assert.equal(get(m.fields, 'gn_web_users.fullname'), '');
      assert.ok(m.warnings.some((w) => w.includes('no name')));
    });

    it('sends values as the original text, trimmed (no letter folding)', () => {
      const m = mapIdentityToContact(person({ nickName: '  علي كريمي ', description: ' توضیح ' }));
      assert.equal(get(m.fields, 'gn_web_users.fullname'), 'علي كريمي');
      assert.equal(get(m.fields, 'gn_web_users.tozihat'), 'توضیح');
    });
  });

  describe('phones (Persian and English types)', () => {
    const mobileTypes = ['موبایل', 'موبايل', 'همراه', 'تلفن همراه', 'تلفن‌همراه', 'Mobile', 'MOBILE', 'mobile phone', 'Cell', 'cellphone', 'Cell Phone', 'گوشی'];
    for (const t of mobileTypes) {
      it(`reads phone type ${JSON.stringify(t)} as mobile`, () => {
        assert.equal(phoneRole(t), 'mobile');
        const m = mapIdentityToContact(person({ phoneContacts: [{ phoneType: 'منزل', phoneNumber: '021-22334455' }, { phoneType: t, phoneNumber: '۰۹۳۵-۱۱۱-۲۲۳۳' }] }));
        assert.equal(get(m.fields, 'gn_web_users.mobileno'), '09351112233');
        assert.equal(get(m.fields, 'gn_web_users.telno'), '021-22334455');
      });
    }

    const officeTypes = ['دفتر', 'محل کار', 'محل كار', 'کار', 'تلفن ثابت', 'Office', 'work', 'Business', 'Landline'];
    for (const t of officeTypes) {
      it(`reads phone type ${JSON.stringify(t)} as office`, () => {
        assert.equal(phoneRole(t), 'office');
        const m = mapIdentityToContact(
          person({ phoneContacts: [{ phoneType: 'منزل', phoneNumber: '021-22334455' }, { phoneType: t, phoneNumber: '021-88776655' }, { phoneType: 'mobile', phoneNumber: '09121234567' }] }),
        );
        assert.equal(get(m.fields, 'gn_web_users.telno'), '021-88776655');
      });
    }

    it('tests fax first, then mobile, then office', () => {
      assert.equal(phoneRole('Office fax'), 'fax');
      assert.equal(phoneRole('نمابر'), 'fax');
      assert.equal(phoneRole('موبایل کاری'), 'mobile');
      assert.equal(phoneRole('Work mobile'), 'mobile');
      assert.equal(phoneRole('منزل'), 'other');
      assert.equal(phoneRole(''), 'other');
      assert.equal(phoneRole(null), 'other');
    });

    it('takes an untyped Iranian mobile number as the mobile when no phone is typed mobile', () => {
      const m = mapIdentityToContact(
        person({ phoneContacts: [{ phoneType: 'منزل', phoneNumber: '021-22334455' }, { phoneType: '', phoneNumber: '+98 912 765 4321' }] }),
      );
      assert.equal(get(m.fields, 'gn_web_users.mobileno'), '09127654321');
      assert.equal(get(m.fields, 'gn_web_users.telno'), '021-22334455');
      assert.equal(m.match.mobile, '09127654321');
    });

    it('does not take an untyped landline as the mobile', () => {
      const m = mapIdentityToContact(person({ phoneContacts: [{ phoneType: 'Home', phoneNumber: '021-22334455' }] }));
      assert.equal(get(m.fields, 'gn_web_users.mobileno'), '');
      assert.equal(get(m.fields, 'gn_web_users.telno'), '021-22334455');
      assert.equal(m.match.mobile, undefined);
      assert.ok(m.warnings.some((w) => w.includes('No mobile') && w.includes('Home')));
    });

    it('writes the mobile in the local form 09xxxxxxxxx from any written form', () => {
      for (const n of ['+989121234567', '0098 912 123 4567', '9121234567', '(0912) 123-4567', '۰۹۱۲۱۲۳۴۵۶۷']) {
        const m = mapIdentityToContact(person({ phoneContacts: [{ phoneType: 'موبایل', phoneNumber: n }] }));
        assert.equal(get(m.fields, 'gn_web_users.mobileno'), '09121234567', n);
      }
    });

    it('keeps new operator prefixes (0904, 0999) and foreign mobiles', () => {
      const a = mapIdentityToContact(person({ phoneContacts: [{ phoneType: 'موبایل', phoneNumber: '0904 123 4567' }] }));
      assert.equal(get(a.fields, 'gn_web_users.mobileno'), '09041234567');
      const b = mapIdentityToContact(person({ phoneContacts: [{ phoneNumber: '09991234567' }] }));
      assert.equal(get(b.fields, 'gn_web_users.mobileno'), '09991234567');
      const c = mapIdentityToContact(person({ phoneContacts: [{ phoneType: 'Mobile', phoneNumber: '+971 50 123 4567' }] }));
      assert.equal(get(c.fields, 'gn_web_users.mobileno'), '+971501234567');
      assert.deepEqual(c.warnings, []);
    });

    it('warns when a phone typed mobile is a landline', () => {
      const m = mapIdentityToContact(person({ phoneContacts: [{ phoneType: 'موبایل', phoneNumber: '021-88776655' }] }));
      assert.equal(get(m.fields, 'gn_web_users.mobileno'), '02188776655');
      assert.ok(m.warnings.some((w) => w.includes('not an Iranian mobile')));
    });

    it('prefers the default phone of a role, then the CRM order', () => {
      const m = mapIdentityToContact(
        person({
          phoneContacts: [
            { phoneType: 'موبایل', phoneNumber: '09121111111' },
            { phoneType: 'موبایل', phoneNumber: '09122222222', default: true },
            { phoneType: 'دفتر', phoneNumber: '021-11111111' },
            { phoneType: 'دفتر', phoneNumber: '021-22222222' },
          ],
        }),
      );
      assert.equal(get(m.fields, 'gn_web_users.mobileno'), '09122222222');
      assert.equal(get(m.fields, 'gn_web_users.telno'), '021-11111111');
    });

    it('skips empty phone numbers and uses a fax for telno only as the last resort', () => {
      const m = mapIdentityToContact(
        person({ phoneContacts: [{ phoneType: 'موبایل', phoneNumber: '  ' }, { phoneType: 'فکس', phoneNumber: '021-66554433' }, { phoneType: 'همراه', phoneNumber: '09351234567' }] }),
      );
      assert.equal(get(m.fields, 'gn_web_users.mobileno'), '09351234567');
      assert.equal(get(m.fields, 'gn_web_users.telno'), '021-66554433');
    });

    it('accepts configured phone-type words', () => {
      const opts = { phoneTypes: { mobile: ['شخصی'], office: [...DEFAULT_PHONE_TYPES.office, 'کارخانه'] } };
      assert.equal(phoneRole('شخصی', opts.phoneTypes), 'mobile');
      assert.equal(phoneRole('موبایل', opts.phoneTypes), 'other'); // the given list replaces the default
      const m = mapIdentityToContact(
        person({ phoneContacts: [{ phoneType: 'شخصی', phoneNumber: '09121234567' }, { phoneType: 'کارخانه', phoneNumber: '0261-3334455' }] }),
        opts,
      );
      assert.equal(get(m.fields, 'gn_web_users.mobileno'), '09121234567');
      assert.equal(get(m.fields, 'gn_web_users.telno'), '0261-3334455');
    });

    it('phone:fax can be mapped by an override', () => {
      const m = mapIdentityToContact(person({ phoneContacts: [{ phoneType: 'Fax', phoneNumber: '021-66554433' }] }), {
        overrides: { 'gn_web_users.fax': 'phone:fax' },
      });
      assert.equal(get(m.fields, 'gn_web_users.fax'), '021-66554433');
      assert.equal(keys(m.fields).at(-1), 'gn_web_users.fax');
    });
  });

  describe('national code', () => {
    it('sends ASCII digits, zero-padded, and matches by the key', () => {
      const m = mapIdentityToContact(person({ nationalCode: '۰۰۱-۳۵۴۲۴۱-۹' }));
      assert.equal(get(m.fields, 'gn_web_users.passno'), '0013542419');
      assert.equal(m.match.nationalCode, '0013542419');
      const n = mapIdentityToContact(person({ nationalCode: '13542419' }));
      assert.equal(get(n.fields, 'gn_web_users.passno'), '0013542419');
    });

    it('warns (never blocks) when the check digit fails', () => {
      const m = mapIdentityToContact(person({ nationalCode: '0013542418' }));
      assert.equal(get(m.fields, 'gn_web_users.passno'), '0013542418');
      assert.equal(m.match.nationalCode, '0013542418');
      assert.ok(m.warnings.some((w) => w.includes('0013542418') && w.includes('check digit')));
    });

    it('warns on a wrong length and on a non-numeric value, which is not used for matching', () => {
      const a = mapIdentityToContact(person({ nationalCode: '12345' }));
      assert.ok(a.warnings.some((w) => w.includes('5 digits')));
      const b = mapIdentityToContact(person({ nationalCode: 'P۱۲۳۴۵۶۷۸' }));
      assert.equal(get(b.fields, 'gn_web_users.passno'), 'P12345678');
      assert.equal(b.match.nationalCode, undefined);
      assert.ok(b.warnings.some((w) => w.includes('not a number')));
    });

    it('sends passno empty when the CRM has none', () => {
      const m = mapIdentityToContact(person({ nationalCode: null }));
      assert.equal(get(m.fields, 'gn_web_users.passno'), '');
      assert.equal(m.match.nationalCode, undefined);
    });
  });

  describe('customer number → tmpid', () => {
    it('sends the parsed Code and matches by it', () => {
      const m = mapIdentityToContact(person({ customerNumber: '۱۰۰-۱۰۵۰۰' }));
      assert.equal(get(m.fields, 'gn_web_users.tmpid'), '9500');
      assert.equal(m.match.code, 9500);
    });

    for (const cn of ['100-0003', '100-1000', 'CRM-5521', '100-9407x']) {
      it(`does not send tmpid for ${cn}, with a warning`, () => {
        const m = mapIdentityToContact(person({ customerNumber: cn }));
        assert.ok(!keys(m.fields).some((k) => k.endsWith('tmpid')));
        assert.equal(m.match.code, undefined);
        assert.ok(m.warnings.some((w) => w.includes(cn) && w.includes('not in the scheme')));
      });
    }

    it('does not send tmpid and does not warn when the CRM has no customer number', () => {
      const m = mapIdentityToContact(person({ customerNumber: '' }));
      assert.ok(!keys(m.fields).some((k) => k.endsWith('tmpid')));
      assert.deepEqual(m.warnings, []);
    });

    it('uses the configured tmpid key and scheme', () => {
      const m = mapIdentityToContact(person({ customerNumber: 'SG-77' }), { tmpidKey: 'tmpid', scheme: { prefix: 'SG-', offset: 0 } });
      assert.equal(get(m.fields, 'tmpid'), '77');
      assert.equal(get(m.fields, 'gn_web_users.tmpid'), undefined);
      assert.equal(keys(m.fields).indexOf('tmpid'), keys(mapIdentityToContact(person()).fields).indexOf('gn_web_users.tmpid'));
      assert.equal(m.match.code, 77);
    });
  });

  describe('gender', () => {
    for (const [g, v] of [
      ['مرد', '1'],
      ['male', '1'],
      ['Male', '1'],
      ['آقا', '1'],
      ['زن', '0'],
      ['female', '0'],
      ['Female', '0'],
      ['خانم', '0'],
    ] as const) {
      it(`${g} → ${v} for a person`, () => {
        assert.equal(get(mapIdentityToContact(person({ gender: g })).fields, 'gn_web_users.gender'), v);
      });
    }

    it('leaves it empty when the CRM gives nothing or something else (with a warning)', () => {
      assert.equal(get(mapIdentityToContact(person({ gender: null })).fields, 'gn_web_users.gender'), '');
      const m = mapIdentityToContact(person({ gender: 'نامشخص' }));
      assert.equal(get(m.fields, 'gn_web_users.gender'), '');
      assert.ok(m.warnings.some((w) => w.includes('نامشخص')));
    });
  });

  describe('overrides', () => {
    it('"" never sends a field, "=text" sends a literal, paths read the identity', () => {
      const m = mapIdentityToContact(person(), {
        overrides: {
          'gn_web_users.isactive': '',
          'gn_web_users.email': 'website',
          'gn_web_users.countrycode': '=IR',
          'gn_web_users.nickname': 'firstName',
          'gn_web_users.password': 'phoneContacts.5.phoneNumber',
        },
      });
      assert.equal(get(m.fields, 'gn_web_users.isactive'), undefined);
      assert.equal(get(m.fields, 'gn_web_users.email'), 'https://rezaei.example.ir');
      assert.equal(get(m.fields, 'gn_web_users.countrycode'), 'IR');
      assert.equal(get(m.fields, 'gn_web_users.nickname'), 'علی');
      assert.equal(get(m.fields, 'gn_web_users.password'), '');
      assert.deepEqual(keys(m.fields).slice(-2), ['gn_web_users.nickname', 'gn_web_users.password']);
    });

    it('refuses unusable keys and sources with a CONFIG error', () => {
      const cases: Array<Record<string, string>> = [
        { 'gn_web_users.x|y': 'email' },
        { 'gn_web_users.x': 'phone:home' },
        { 'gn_web_users.x': 'fn:unknown' },
        { 'gn_web_users.x': 'crm:email' },
        { 'gn_web_users.x': 'a..b' },
        { 'gn_web_users.x': 5 as unknown as string },
      ];
      for (const overrides of cases) {
        assert.throws(() => mapIdentityToContact(person(), { overrides }), (e: unknown) => e instanceof SyncError && e.code === 'CONFIG', JSON.stringify(overrides));
      }
      assert.throws(() => mapIdentityToContact(person(), { tmpidKey: 'bad key' }), (e: unknown) => e instanceof SyncError && e.code === 'CONFIG');
    });

    it('warns when a path points at a list or object', () => {
      const m = mapIdentityToContact(person(), { overrides: { 'gn_web_users.address': 'addressContacts' } });
      assert.equal(get(m.fields, 'gn_web_users.address'), '');
      assert.ok(m.warnings.some((w) => w.includes('addressContacts')));
    });
  });

  describe('addresses', () => {
    it('uses the default address first', () => {
      const m = mapIdentityToContact(
        person({
          addressContacts: [
            { address: 'انبار: جاده مخصوص کرج', zipCode: '1111111111' },
            { address: 'دفتر مرکزی: میدان ونک', zipCode: '1994834567', default: true },
          ],
        }),
      );
      assert.equal(get(m.fields, 'gn_web_users.address'), 'دفتر مرکزی: میدان ونک');
      assert.equal(get(m.fields, 'gn_web_users.pocode'), '1994834567');
    });

    it('sends empty address fields when the CRM has none', () => {
      const m = mapIdentityToContact(person({ addressContacts: null }));
      assert.equal(get(m.fields, 'gn_web_users.address'), '');
      assert.equal(get(m.fields, 'gn_web_users.pocode'), '');
    });
  });

  describe('checksum', () => {
    it('is stable for the same content in a different key order and ignores modifyDate', () => {
      const a = mapIdentityToContact(person({ modifyDate: '2025-12-21T14:06:17.173' }));
      const p = person();
      const reordered = Object.fromEntries(Object.entries(p).reverse()) as unknown as CrmIdentity;
      const b = mapIdentityToContact({ ...reordered, modifyDate: '2025-12-22T09:00:00' });
      assert.equal(a.checksum, b.checksum);
    });

    it('changes when a sent value changes, not when only the letter form of a key changes', () => {
      const base = mapIdentityToContact(person()).checksum;
      assert.notEqual(mapIdentityToContact(person({ email: 'ali@example.com' })).checksum, base);
      assert.notEqual(mapIdentityToContact(person({ phoneContacts: [{ phoneType: 'موبایل', phoneNumber: '09127654321' }] })).checksum, base);
      // the mobile is written canonically: another written form of the same number is no change
      const same = person({
        phoneContacts: [
          { phoneType: 'Office', phoneNumber: '021-8877 6655' },
          { phoneType: 'Mobile', phoneNumber: '+98 912 123 4567', default: true },
        ],
      });
      assert.equal(mapIdentityToContact(same).checksum, base);
    });
  });

  describe('fieldsForUpdate (an update never blanks Siagh)', () => {
    const fields: SiaghFieldList = [
      ['gn_web_users.isactive', '1'],
      ['gn_web_users.gender', ''],
      ['gn_web_users.email', ''],
      ['gn_web_users.fullname', 'علی رضایی'],
      ['gn_web_users.telno', '  '],
      ['gn_web_users.mobileno', '09121234567'],
    ];

    it('keep (default) drops empty values so an update never blanks Siagh', () => {
      assert.deepEqual(fieldsForUpdate(fields), [
        ['gn_web_users.isactive', '1'],
        ['gn_web_users.fullname', 'علی رضایی'],
        ['gn_web_users.mobileno', '09121234567'],
      ]);
      assert.deepEqual(fieldsForUpdate(fields, 'keep'), fieldsForUpdate(fields));
    });

    it('clear sends every field, empty ones as sent', () => {
      const out = fieldsForUpdate(fields, 'clear');
      assert.deepEqual(out, fields);
      assert.notEqual(out, fields); // a copy
    });

    it('refuses an unknown policy', () => {
      assert.throws(() => fieldsForUpdate(fields, 'blank' as 'keep'), (e: unknown) => e instanceof SyncError && e.code === 'CONFIG');
    });

    it('works on a mapped contact: the update of a contact without email keeps Siagh\'s email', () => {
      const m = mapIdentityToContact(person({ email: '', website: null }));
      const upd = fieldsForUpdate(m.fields);
      assert.equal(get(upd, 'gn_web_users.email'), undefined);
      assert.equal(get(upd, 'gn_web_users.websiteaddress'), undefined);
      assert.equal(get(upd, 'gn_web_users.fullname'), 'علی رضایی');
    });
  });

  it('match.mobile compares with phoneKey like the Siagh contact index', () => {
    const m = mapIdentityToContact(person());
    assert.equal(phoneKey(m.match.mobile), phoneKey('0912-123-4567'));
  });
});

type ContactRuleArray = Array<{ key: string; source: string; note: string }>;
