/**
 * lib/sync/field-settings.ts: the settings siagh-upsert and siagh-import share, parsed from a node's
 * configuration once, and the checksum agreement they exist for.
 */
import assert from 'node:assert/strict';
import { SyncError } from '../../../lib/errors';
import { mapIdentityToContact } from '../../../lib/sync/contact-mapper';
import { contactMapOptionsOf, fieldSettingsFromConfig, importMapOptionsOf } from '../../../lib/sync/field-settings';
import { mapContactToCrm } from '../../../lib/sync/import-mapper';
import type { CrmIdentity, SiaghContact } from '../../../lib/types';

const isConfig = (e: unknown) => e instanceof SyncError && e.code === 'CONFIG';

describe('sync/field-settings', () => {
  it('defaults for a node saved before the settings existed', () => {
    const fs = fieldSettingsFromConfig({ id: 'n1', type: 'siagh-upsert', wires: [] });
    assert.deepEqual(fs, {
      scheme: { prefix: '100-', offset: 1000 },
      phoneLabels: { mobile: 'موبایل', office: 'محل کار' },
      phoneTypes: { mobile: undefined, office: undefined },
      addressNames: true,
      economicCodeKey: '',
      genderLabels: { female: 'Female', male: 'Male' },
      tmpidKey: undefined,
      overrides: undefined,
    });
  });

  it('parses the dialog values', () => {
    const fs = fieldSettingsFromConfig({
      cnPrefix: 'S-', cnOffset: '5000', mobileLabel: ' Cellular ', officeLabel: 'Work', mobileTypes: 'cellular, handy', officeTypes: '',
      addressNames: false, economicCodeKey: ' gn_web_users.codeeghtesadi ', genderValues: 'زن، مرد', tmpidKey: 'tmpid', overrides: '{"gn_web_users.prename": "=x"}',
    });
    assert.deepEqual(fs.scheme, { prefix: 'S-', offset: 5000 });
    assert.deepEqual(fs.phoneLabels, { mobile: 'Cellular', office: 'Work' });
    assert.deepEqual(fs.phoneTypes, { mobile: ['cellular', 'handy'], office: undefined });
    assert.equal(fs.addressNames, false);
    assert.equal(fs.economicCodeKey, 'gn_web_users.codeeghtesadi');
    assert.deepEqual(fs.genderLabels, { female: 'زن', male: 'مرد' });
    assert.equal(fs.tmpidKey, 'tmpid');
    assert.deepEqual(fs.overrides, { 'gn_web_users.prename': '=x' });
    assert.equal(fieldSettingsFromConfig({ genderValues: '' }).genderLabels, null, 'empty: no gender copied');
  });

  it('refuses unusable values with CONFIG', () => {
    for (const c of [{ cnOffset: '-1' }, { cnOffset: 'x' }, { cnPrefix: 'a|b' }, { genderValues: 'Female' }, { genderValues: 'F, F' }, { economicCodeKey: 'a b' }, { overrides: '[1]' }, { overrides: '{"a": 1}' }, { overrides: '{' }, { mobileLabel: 5 }]) {
      assert.throws(() => fieldSettingsFromConfig(c), isConfig, JSON.stringify(c));
    }
  });

  it('the labels the import writes are read back by the upsert, whatever word lists are set', () => {
    const fs = fieldSettingsFromConfig({ mobileLabel: 'Cellular', officeLabel: 'Work', mobileTypes: 'handy', officeTypes: 'bureau', genderValues: 'F2, M2' });
    const opts = contactMapOptionsOf(fs);
    assert.deepEqual(opts.phoneTypes, { mobile: ['handy', 'Cellular'], office: ['bureau', 'Work'] });
    assert.deepEqual(opts.genderWords, { female: ['F2'], male: ['M2'] });
    const dflt = contactMapOptionsOf(fieldSettingsFromConfig({}));
    assert.ok(dflt.phoneTypes!.mobile!.includes('موبایل') && dflt.phoneTypes!.mobile!.includes('mobile'));
  });

  it('an imported Siagh contact maps back to the Siagh fields it came from (so its echo writes nothing)', () => {
    const fs = fieldSettingsFromConfig({ cnPrefix: 'S-', cnOffset: 5000, mobileLabel: 'Cellular', officeLabel: 'Work', mobileTypes: 'handy', officeTypes: 'bureau', genderValues: 'F2, M2', economicCodeKey: 'gn_web_users.codeeghtesadi' });
    const o = importMapOptionsOf(fs);
    const c: SiaghContact = { Code: 77, Name: 'مینا کاظمی', TowardType: false, MobileNo: '09121112233', TelNo: '02188776655', Gender: '0', CityCode: 'شیراز', Description: 'مشتری قدیمی', Address: 'خیابان زند', PostalCode: '7134567890' };
    const body = mapContactToCrm(c, o).body;
    assert.equal(body.customerNumber, 'S-5077');
    assert.equal(body.gender, 'F2');
    const m = mapIdentityToContact({ ...body, crmId: 'x', kind: 'person' } as CrmIdentity, o.contactMap);
    const get = (k: string) => m.fields.find(([x]) => x === k)?.[1];
    assert.equal(get('gn_web_users.mobileno'), '09121112233');
    assert.equal(get('gn_web_users.telno'), '02188776655');
    assert.equal(get('gn_web_users.gender'), '0');
    assert.equal(get('gn_web_users.codeshahr'), 'شیراز');
    assert.equal(get('gn_web_users.tozihat'), 'مشتری قدیمی');
    assert.equal(get('gn_web_users.tmpid'), '77');
    assert.equal(get('gn_web_users.codeeghtesadi'), '');
  });
});
