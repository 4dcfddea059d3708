import assert from 'node:assert/strict';
import {
  isIranianMobile,
  legalIdValid,
  nationalIdKey,
  nationalIdValid,
  phoneKey,
  phoneLocal,
  textKey,
  toAsciiDigits,
} from '../../../lib/text/normalize';

describe('text/normalize', () => {
  describe('toAsciiDigits', () => {
    it('converts Persian and Arabic-Indic digits and leaves everything else', () => {
      assert.equal(toAsciiDigits('۰۱۲۳۴۵۶۷۸۹'), '0123456789');
      assert.equal(toAsciiDigits('٠١٢٣٤٥٦٧٨٩'), '0123456789');
      assert.equal(toAsciiDigits('کد ۸۴۰۷ و ٨٤٠٧ و 8407'), 'کد 8407 و 8407 و 8407');
      assert.equal(toAsciiDigits(''), '');
    });
  });

  describe('textKey', () => {
    it('folds Arabic yeh/kaf to Persian ی/ک', () => {
      assert.equal(textKey('علي كريمي'), 'علی کریمی');
      assert.equal(textKey('علي كريمي'), textKey('علی کریمی'));
      assert.equal(textKey('مصطفى'), textKey('مصطفی'));
    });

    it('treats ZWNJ as a space and folds runs of white space, trims and lower-cases', () => {
      const a = textKey('علی‌رضا   محمدی‌نژاد');
      assert.equal(a, 'علی رضا محمدی نژاد');
      assert.equal(textKey('  علی رضا\tمحمدی نژاد\n'), a);
      assert.equal(textKey('Ali  REZA'), 'ali reza');
      // no separator at all is a different spelling
      assert.notEqual(textKey('علیرضا'), textKey('علی‌رضا'));
    });

    it('converts Persian and Arabic-Indic digits to ASCII', () => {
      assert.equal(textKey('پلاک ۱۲ واحد ٣'), 'پلاک 12 واحد 3');
    });

    it('removes tatweel, diacritics and bidi marks without splitting words', () => {
      assert.equal(textKey('کـــتاب'), 'کتاب');
      assert.equal(textKey('مُحَمَّد'), 'محمد');
      assert.equal(textKey('\u200fشرکت\u200e'), 'شرکت');
    });

    it('folds Arabic presentation forms (NFKC), ة/ۀ and أ/إ', () => {
      assert.equal(textKey('ﻋﻠﻲ'), 'علی');
      assert.equal(textKey('مدرسة'), textKey('مدرسه'));
      assert.equal(textKey('خانۀ'), textKey('خانه'));
      assert.equal(textKey('أحمد'), textKey('احمد'));
      assert.equal(textKey('آرش'), 'آرش'); // آ is kept
    });

    it('converts text inside {{…}} too (persian-tools toPersianChars does not)', () => {
      assert.equal(textKey('{{علي}}'), '{{علی}}');
    });

    it('gives "" for null, undefined and blank text', () => {
      assert.equal(textKey(null), '');
      assert.equal(textKey(undefined), '');
      assert.equal(textKey(' \u200c '), '');
    });
  });

  describe('phoneKey', () => {
    const mobile = '+989121234567';
    for (const form of [
      '09121234567',
      '9121234567',
      '+989121234567',
      '+98 912 123 4567',
      '0098 912 123 4567',
      '0098-912-123-4567',
      '98 912 123 4567',
      '989121234567',
      '+98 (0) 912 123 4567',
      '(0912) 123-4567',
      '0912.123.4567',
      '۰۹۱۲ ۱۲۳ ۴۵۶۷',
      '٠٩١٢١٢٣٤٥٦٧',
      '+۹۸۹۱۲۱۲۳۴۵۶۷',
      ' 0912 123 4567 ',
      '+0912 123 4567',
    ]) {
      it(`canonicalises the mobile ${JSON.stringify(form)}`, () => {
        assert.equal(phoneKey(form), mobile);
      });
    }

    it('canonicalises landlines with area codes', () => {
      assert.equal(phoneKey('021-8877 6655'), '+982188776655');
      assert.equal(phoneKey('(021) 88776655'), '+982188776655');
      assert.equal(phoneKey('۰۲۱-۸۸۷۷۶۶۵۵'), '+982188776655');
      assert.equal(phoneKey('+98 21 8877 6655'), '+982188776655');
      assert.equal(phoneKey('0098 21 88776655'), '+982188776655');
      assert.equal(phoneKey('031 3222 1100'), '+983132221100');
      assert.equal(phoneKey('2188776655'), '+982188776655');
    });

    it('never rejects a number by its prefix', () => {
      assert.equal(phoneKey('0904 123 4567'), '+989041234567');
      assert.equal(phoneKey('09991234567'), '+989991234567');
      assert.equal(phoneKey('0993-123-4567'), '+989931234567');
      assert.equal(phoneKey('09662523145689'), '+989662523145689'); // too long, still a key (operator sample)
      assert.ok(isIranianMobile(phoneKey('0904 123 4567')));
      assert.ok(isIranianMobile(phoneKey('09991234567')));
    });

    it('keeps foreign numbers with their country code', () => {
      assert.equal(phoneKey('+1 (415) 555-0100'), '+14155550100');
      assert.equal(phoneKey('0044 20 7946 0958'), '+442079460958');
      assert.equal(phoneKey('+971 50 123 4567'), '+971501234567');
      assert.equal(isIranianMobile(phoneKey('+971 50 123 4567')), false);
    });

    it('drops an extension at the end', () => {
      assert.equal(phoneKey('021 8877 6655 داخلی ۱۲'), '+982188776655');
      assert.equal(phoneKey('(021) 88776655 (داخلی 12)'), '+982188776655');
      assert.equal(phoneKey('021-88776655 ext. 204'), '+982188776655');
      assert.equal(phoneKey('021-88776655 x204'), '+982188776655');
      assert.equal(phoneKey('021-88776655#12'), '+982188776655');
    });

    it('takes the first of several numbers in one field', () => {
      assert.equal(phoneKey('09121234567 / 09351234567'), mobile);
      assert.equal(phoneKey('0912-123-4567، 021-88776655'), mobile);
      assert.equal(phoneKey('0912 123 4567; 0935 123 4567'), mobile);
      assert.equal(phoneKey('0912 123 4567\n0935 123 4567'), mobile);
    });

    it('keeps a number without area code as bare digits (no invented country)', () => {
      assert.equal(phoneKey('8877 6655'), '88776655');
      assert.equal(phoneLocal('88776655'), '88776655');
    });

    it('returns undefined when no digits are left', () => {
      assert.equal(phoneKey(null), undefined);
      assert.equal(phoneKey(undefined), undefined);
      assert.equal(phoneKey(''), undefined);
      assert.equal(phoneKey('ندارد'), undefined);
      assert.equal(phoneKey('+'), undefined);
      assert.equal(phoneKey('0'), undefined);
    });

    it('phoneLocal writes Iranian keys as 0…, others unchanged', () => {
      assert.equal(phoneLocal('+989121234567'), '09121234567');
      assert.equal(phoneLocal('+982188776655'), '02188776655');
      assert.equal(phoneLocal('+14155550100'), '+14155550100');
    });

    it('isIranianMobile only for +989 and 9 more digits', () => {
      assert.equal(isIranianMobile('+989121234567'), true);
      assert.equal(isIranianMobile('+982188776655'), false);
      assert.equal(isIranianMobile('+98912123456'), false);
      assert.equal(isIranianMobile(undefined), false);
    });
  });

  describe('nationalIdKey / nationalIdValid / legalIdValid', () => {
    it('builds the key from Persian digits and separators, zero-padding 8 and 9 digits', () => {
      assert.equal(nationalIdKey('۰۰۱۳۵۴۲۴۱۹'), '0013542419');
      assert.equal(nationalIdKey('001-354241-9'), '0013542419');
      assert.equal(nationalIdKey(' 013542419 '), '0013542419');
      assert.equal(nationalIdKey('13542419'), '0013542419');
      assert.equal(nationalIdKey('14007650912'), '14007650912');
    });

    it('gives no key for empty text or text with letters (a passport number is not a national id)', () => {
      assert.equal(nationalIdKey(null), undefined);
      assert.equal(nationalIdKey(''), undefined);
      assert.equal(nationalIdKey('---'), undefined);
      assert.equal(nationalIdKey('P12345678'), undefined);
    });

    it('accepts ids with a correct check digit, in any digit form', () => {
      for (const id of ['0013542419', '0499370899', '1273456785', '2280123452', '0050089676', '3712345674']) {
        assert.equal(nationalIdValid(id), true, id);
      }
      assert.equal(nationalIdValid('۰۰۱۳۵۴۲۴۱۹'), true);
      assert.equal(nationalIdValid('٠٠١٣٥٤٢٤١٩'), true);
      assert.equal(nationalIdValid('13542419'), true); // leading zeros lost in a spreadsheet
      assert.equal(nationalIdValid('001-354241-9'), true);
    });

    it('does not check the city prefix (persian-tools does by default)', () => {
      // 9991234561 has a correct check digit; persian-tools rejects it because prefix 999 is not in
      // its city list. New prefixes appear; the check digit is what we warn on.
      assert.equal(nationalIdValid('9991234561'), true);
    });

    it('rejects wrong check digits, repeated digits, zero middles and wrong lengths', () => {
      assert.equal(nationalIdValid('0013542418'), false);
      assert.equal(nationalIdValid('1273456786'), false);
      assert.equal(nationalIdValid('1111111111'), false); // passes the arithmetic, still invalid
      assert.equal(nationalIdValid('0000000000'), false);
      assert.equal(nationalIdValid('1230000008'), false);
      assert.equal(nationalIdValid('12345'), false);
      assert.equal(nationalIdValid('123456789012'), false);
      assert.equal(nationalIdValid(null), false);
      assert.equal(nationalIdValid('abc'), false);
    });

    it('checks an organization legal id (11 digits)', () => {
      assert.equal(legalIdValid('14007650912'), true);
      assert.equal(legalIdValid('10380284790'), true);
      assert.equal(legalIdValid('۱۰۳۸۰۲۸۴۷۹۰'), true);
      assert.equal(legalIdValid('10380284791'), false);
      assert.equal(legalIdValid('0013542419'), false);
      assert.equal(legalIdValid('00000000000'), false);
    });
  });
});
