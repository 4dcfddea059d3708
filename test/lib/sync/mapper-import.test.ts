import assert from 'node:assert/strict';
import { SyncError } from '../../../lib/errors';
import type { SiaghContact } from '../../../lib/types';
import { mapContactToCrm, splitPersonName } from '../../../lib/sync/import-mapper';
import { parseCustomerNumber } from '../../../lib/sync/customer-number';

function contact(over: Partial<SiaghContact> = {}): SiaghContact {
  return {
    RecordId: '451b4e87-7cff-4e2a-9c1a-2b7d1c9e0a11',
    Code: 8407,
    Name: 'محمد‌علی حسینی نژاد',
    NickName: null,
    NationalCode: '0013542419',
    MobileNo: '09121234567',
    MobileNo2: null,
    TelNo: '021-88776655',
    TelNo2: '',
    Email: 'hosseini@example.ir',
    Address: 'تهران، خیابان شریعتی، کوچه بهار، پلاک ۷',
    PostalCode: '۱۶۶۱۷۸۵۴۳۲',
    CityCode: '021',
    CountryCode: '98',
    Gender: '1',
    Description: 'مشتری قدیمی',
    WebSiteAddress: 'www.hosseini.ir',
    IsActive: true,
    IsAdminUser: false,
    TowardType: false,
    AccountPartyCode: 5500014,
    ...over,
  };
}

describe('sync/import-mapper', () => {
  it('maps a Siagh person to a CRM person/create body', () => {
    const r = mapContactToCrm(contact());
    assert.equal(r.kind, 'person');
    assert.deepEqual(r.warnings, []);
    assert.deepEqual(r.body, {
      crmObjectTypeCode: 'person',
      nickName: 'محمد‌علی حسینی نژاد',
      customerNumber: '100-9407',
      firstName: 'محمد‌علی', // ZWNJ kept: one word
      lastName: 'حسینی نژاد',
      nationalCode: '0013542419',
      email: 'hosseini@example.ir',
      website: 'www.hosseini.ir',
      phoneContacts: [
        { default: true, phoneType: 'موبایل', phoneNumber: '09121234567' },
        { phoneType: 'محل کار', phoneNumber: '021-88776655' },
      ],
      addressContacts: [{ default: true, city: '021', address: 'تهران، خیابان شریعتی، کوچه بهار، پلاک ۷', zipCode: '1661785432' }],
      gender: 'Male',
      description: 'مشتری قدیمی',
      categories: [{ key: 'syaghcontact' }],
    });
  });

  it('customerNumber round-trips to the Siagh Code', () => {
    for (const code of [1, 8389, 9500]) {
      const r = mapContactToCrm(contact({ Code: code }));
      assert.equal(parseCustomerNumber(r.body.customerNumber), code);
    }
    assert.equal(mapContactToCrm(contact({ Code: 9500 })).body.customerNumber, '100-10500');
    assert.equal(mapContactToCrm(contact({ Code: 3 }), { scheme: { prefix: 'SG-', offset: 0 } }).body.customerNumber, 'SG-3');
  });

  it('keeps Siagh\'s description; the import note only when Siagh has none', () => {
    assert.equal(mapContactToCrm(contact({ Description: '  خرید عمده  ' })).body.description, 'خرید عمده');
    assert.equal(mapContactToCrm(contact({ Description: null })).body.description, 'Imported from Siagh (Code: 8407)');
    assert.equal(mapContactToCrm(contact({ Description: ' ' })).body.description, 'Imported from Siagh (Code: 8407)');
  });

  it('Siagh Gender 0 / 1 becomes the CRM values of the setting; anything else is not copied', () => {
    assert.equal(mapContactToCrm(contact({ Gender: '0' })).body.gender, 'Female');
    assert.equal(mapContactToCrm(contact({ Gender: '۱' })).body.gender, 'Male');
    assert.equal(mapContactToCrm(contact({ Gender: '1' }), { genderLabels: { female: 'زن', male: 'مرد' } }).body.gender, 'مرد');
    assert.equal('gender' in mapContactToCrm(contact({ Gender: '1' }), { genderLabels: null }).body, false, 'null: no gender copied');
    assert.equal('gender' in mapContactToCrm(contact({ Gender: null })).body, false);
    const odd = mapContactToCrm(contact({ Gender: 'M' }));
    assert.equal('gender' in odd.body, false);
    assert.ok(odd.warnings.some((w) => w.includes('"M"')));
    assert.equal('gender' in mapContactToCrm(contact({ Gender: '1', TowardType: true, Name: 'شرکت نوین', NationalCode: '10380284790' })).body, false, 'organizations have no gender');
    assert.throws(() => mapContactToCrm(contact(), { genderLabels: { female: '', male: 'Male' } }), (e: unknown) => e instanceof SyncError && e.code === 'CONFIG');
  });

  it('Siagh CityCode becomes the CRM city as Siagh holds it; CountryCode is not copied', () => {
    const r = mapContactToCrm(contact({ CityCode: ' مشهد ', Address: null, PostalCode: null }));
    assert.deepEqual(r.body.addressContacts, [{ default: true, city: 'مشهد' }]);
    assert.equal(JSON.stringify(r.body).includes('"98"'), false);
  });

  describe('kind from TowardType', () => {
    it('true → organization, without first/last name', () => {
      const r = mapContactToCrm(contact({ TowardType: true, Name: 'شرکت بازرگانی نوین پارس', NationalCode: '10380284790' }));
      assert.equal(r.kind, 'organization');
      assert.equal(r.body.crmObjectTypeCode, 'organization');
      assert.equal(r.body.nickName, 'شرکت بازرگانی نوین پارس');
      assert.equal(r.body.firstName, undefined);
      assert.equal(r.body.lastName, undefined);
      assert.equal(r.body.nationalCode, '10380284790');
      assert.deepEqual(r.warnings, []);
    });

    for (const t of [null, undefined]) {
      it(`${String(t)} → person WITH a warning`, () => {
        const r = mapContactToCrm(contact({ TowardType: t }));
        assert.equal(r.kind, 'person');
        assert.equal(r.body.crmObjectTypeCode, 'person');
        assert.ok(r.warnings.some((w) => w.includes('8407') && w.includes('TowardType')));
      });
    }
  });

  describe('names', () => {
    it('splits at blanks only and keeps ZWNJ', () => {
      assert.deepEqual(splitPersonName('زهرا   موسوی‌پور'), { firstName: 'زهرا', lastName: 'موسوی‌پور' });
      assert.deepEqual(splitPersonName('سید محمد حسین طباطبایی'), { firstName: 'سید', lastName: 'محمد حسین طباطبایی' });
      assert.deepEqual(splitPersonName('رضایی'), { firstName: 'رضایی', lastName: '' });
    });

    it('skips courtesy titles when two words remain', () => {
      assert.deepEqual(splitPersonName('آقای علی رضایی'), { firstName: 'علی', lastName: 'رضایی' });
      assert.deepEqual(splitPersonName('آقاي علي رضايي'), { firstName: 'علي', lastName: 'رضايي' });
      assert.deepEqual(splitPersonName('Dr. Sara Karimi'), { firstName: 'Sara', lastName: 'Karimi' });
      assert.deepEqual(splitPersonName('خانم رضایی'), { firstName: 'خانم', lastName: 'رضایی' });
    });

    it('a one-word person name gives firstName only; nickName keeps the full name', () => {
      const r = mapContactToCrm(contact({ Name: '  آقای   علی رضایی ' }));
      assert.equal(r.body.nickName, 'آقای علی رضایی');
      assert.equal(r.body.firstName, 'علی');
      const one = mapContactToCrm(contact({ Name: 'رضایی' }));
      assert.equal(one.body.firstName, 'رضایی');
      assert.equal('lastName' in one.body, false);
    });

    it('an empty name becomes "مخاطب <Code>" with a warning', () => {
      const r = mapContactToCrm(contact({ Name: '  ', Code: 8390 }));
      assert.equal(r.body.nickName, 'مخاطب 8390');
      assert.equal(r.body.firstName, undefined);
      assert.ok(r.warnings.some((w) => w.includes('no name')));
    });
  });

  describe('phones', () => {
    it('MobileNo, MobileNo2 as mobile, TelNo, TelNo2 as office; empty and repeated skipped; first is default', () => {
      const r = mapContactToCrm(
        contact({ MobileNo: '', MobileNo2: '۰۹۳۵ ۱۱۱ ۲۲۳۳', TelNo: '021-88776655', TelNo2: '+98 21 8877 6655' }),
      );
      assert.deepEqual(r.body.phoneContacts, [
        { default: true, phoneType: 'موبایل', phoneNumber: '0935 111 2233' },
        { phoneType: 'محل کار', phoneNumber: '021-88776655' },
      ]);
    });

    it('uses configured phone-type labels', () => {
      const r = mapContactToCrm(contact(), { phoneTypeLabels: { mobile: 'Mobile', office: 'Office' } });
      assert.deepEqual(r.body.phoneContacts?.map((p) => p.phoneType), ['Mobile', 'Office']);
    });

    it('sends no phoneContacts when Siagh has none', () => {
      const r = mapContactToCrm(contact({ MobileNo: null, TelNo: null }));
      assert.equal(r.body.phoneContacts, undefined);
    });
  });

  describe('national code', () => {
    it('copies it as ASCII digits and warns on a failing check digit', () => {
      const r = mapContactToCrm(contact({ NationalCode: '۰۰۱۳۵۴۲۴۱۸' }));
      assert.equal(r.body.nationalCode, '0013542418');
      assert.ok(r.warnings.some((w) => w.includes('check digit')));
    });

    it('pads 9 digits (lost leading zero)', () => {
      assert.equal(mapContactToCrm(contact({ NationalCode: '499370899' })).body.nationalCode, '0499370899');
    });

    it('leaves nationalCode out when empty', () => {
      assert.equal('nationalCode' in mapContactToCrm(contact({ NationalCode: null })).body, false);
    });
  });

  it('address only when Siagh has one', () => {
    const r = mapContactToCrm(contact({ Address: null, PostalCode: '', CityCode: null }));
    assert.equal(r.body.addressContacts, undefined);
    const z = mapContactToCrm(contact({ Address: '', PostalCode: '1661785432', CityCode: '' }));
    assert.deepEqual(z.body.addressContacts, [{ default: true, zipCode: '1661785432' }]);
  });

  it('accepts a description function and other categories', () => {
    const r = mapContactToCrm(contact(), {
      description: (c) => `از سیاق، کد ${c.Code}: ${c.Description ?? ''}`,
      categories: [{ key: 'syaghcontact' }, { key: 'customer' }],
    });
    assert.equal(r.body.description, 'از سیاق، کد 8407: مشتری قدیمی');
    assert.deepEqual(r.body.categories, [{ key: 'syaghcontact' }, { key: 'customer' }]);
  });

  it('does not set refId (tmpid is not readable)', () => {
    assert.equal('refId' in mapContactToCrm(contact({ tmpid: '111' })).body, false);
  });

  it('refuses a contact without a usable Code and bad options', () => {
    assert.throws(() => mapContactToCrm(contact({ Code: 0 })), (e: unknown) => e instanceof SyncError && e.code === 'BAD_INPUT');
    assert.throws(() => mapContactToCrm(contact({ Code: '12' as unknown as number })), (e: unknown) => e instanceof SyncError && e.code === 'BAD_INPUT');
    assert.throws(
      () => mapContactToCrm(contact(), { phoneTypeLabels: { mobile: '', office: 'x' } }),
      (e: unknown) => e instanceof SyncError && e.code === 'CONFIG',
    );
    assert.throws(() => mapContactToCrm(contact(), { categories: [{ key: '' }] }), (e: unknown) => e instanceof SyncError && e.code === 'CONFIG');
  });
});
