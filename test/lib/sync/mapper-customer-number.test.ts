import assert from 'node:assert/strict';
import { SyncError } from '../../../lib/errors';
import {
  DEFAULT_CUSTOMER_NUMBER_SCHEME,
  buildCustomerNumber,
  parseCustomerNumber,
  validateScheme,
} from '../../../lib/sync/customer-number';

describe('sync/customer-number', () => {
  it('uses {prefix: "100-", offset: 1000} by default', () => {
    assert.deepEqual({ ...DEFAULT_CUSTOMER_NUMBER_SCHEME }, { prefix: '100-', offset: 1000 });
    assert.deepEqual(validateScheme(undefined), { prefix: '100-', offset: 1000 });
  });

  describe('buildCustomerNumber (the old service\'s examples)', () => {
    for (const [code, cn] of [
      [1, '100-1001'],
      [234, '100-1234'],
      [8389, '100-9389'],
      [8407, '100-9407'],
      [9500, '100-10500'],
    ] as const) {
      it(`${code} → ${cn}`, () => assert.equal(buildCustomerNumber(code), cn));
    }

    it('refuses codes that are not whole numbers ≥ 1', () => {
      for (const bad of [0, -5, 1.5, NaN, Infinity]) {
        assert.throws(() => buildCustomerNumber(bad), (e: unknown) => e instanceof SyncError && e.code === 'BAD_INPUT');
      }
    });

    it('follows a configured scheme', () => {
      assert.equal(buildCustomerNumber(7, { prefix: 'SG-', offset: 0 }), 'SG-7');
      assert.equal(buildCustomerNumber(7, { prefix: '', offset: 500000 }), '500007');
    });
  });

  describe('parseCustomerNumber: the exact inverse, no clamping', () => {
    for (const [cn, code] of [
      ['100-1001', 1],
      ['100-9407', 8407],
      ['100-9389', 8389],
      ['100-10500', 9500],
      ['۱۰۰-۹۴۰۷', 8407],
      ['١٠٠-٩٤٠٧', 8407],
      [' 100-9407 ', 8407],
      ['100\u20139407', 8407], // en dash typed by a word processor
    ] as const) {
      it(`${JSON.stringify(cn)} → ${code}`, () => assert.equal(parseCustomerNumber(cn), code));
    }

    for (const cn of [
      '100-0003', // the old service clamped this to 1
      '100-1000', // and this: a collision with the real contact 1
      '100-965', // below the offset
      '100-01001', // leading zero: build() never writes it
      '100-',
      '100',
      '1001',
      '200-9407',
      '100-94a7',
      '100-9407.0',
      '100--9407',
      'abc',
      '',
      '100-99999999999999999999', // beyond safe integers
    ]) {
      it(`${JSON.stringify(cn)} → undefined`, () => assert.equal(parseCustomerNumber(cn), undefined));
    }

    it('returns undefined for null, undefined and non-strings', () => {
      assert.equal(parseCustomerNumber(null), undefined);
      assert.equal(parseCustomerNumber(undefined), undefined);
      assert.equal(parseCustomerNumber(9407 as unknown as string), undefined);
    });

    it('accepts the random 9-digit CRM-native numbers only as what they are under the scheme', () => {
      // the old test script created "100-" + 9 random digits; they parse (they are in the scheme's
      // form) and round-trip, nothing is invented.
      const code = parseCustomerNumber('100-965815809');
      assert.equal(code, 965814809);
      assert.equal(buildCustomerNumber(code!), '100-965815809');
    });

    it('round-trips build(parse(x)) === x and parse(build(n)) === n', () => {
      for (const n of [1, 2, 99, 1000, 8300, 8410, 123456]) {
        assert.equal(parseCustomerNumber(buildCustomerNumber(n)), n);
      }
      const scheme = { prefix: 'C', offset: 0 };
      for (const n of [1, 5, 8407]) assert.equal(parseCustomerNumber(buildCustomerNumber(n, scheme), scheme), n);
      assert.equal(parseCustomerNumber('C0', scheme), undefined);
      assert.equal(parseCustomerNumber('C007', scheme), undefined);
      assert.equal(parseCustomerNumber('100-9407', scheme), undefined);
    });
  });

  describe('validateScheme', () => {
    it('refuses offsets that are not whole numbers ≥ 0 and unusable prefixes', () => {
      for (const bad of [{ offset: -1 }, { offset: 1.5 }, { offset: NaN }, { offset: '1000' as unknown as number }, { prefix: 'a|b' }, { prefix: 5 as unknown as string }]) {
        assert.throws(() => validateScheme(bad), (e: unknown) => e instanceof SyncError && e.code === 'CONFIG', JSON.stringify(bad));
        assert.throws(() => buildCustomerNumber(1, bad), (e: unknown) => e instanceof SyncError && e.code === 'CONFIG');
        assert.throws(() => parseCustomerNumber('100-1001', bad), (e: unknown) => e instanceof SyncError && e.code === 'CONFIG');
      }
    });

    it('fills missing fields with the defaults', () => {
      assert.deepEqual(validateScheme({ prefix: 'X-' }), { prefix: 'X-', offset: 1000 });
      assert.deepEqual(validateScheme({ offset: 0 }), { prefix: '100-', offset: 0 });
    });
  });
});
