import assert from 'node:assert/strict';
import { SyncError } from '../../../lib/errors';
import { extractDocumentNumber, isExpiryText, isSessionExpiredReply, readSaveReply } from '../../../lib/siagh/reply';
import { GetAllReplySchema, LoginReplySchema, parseReply, SaveReplySchema } from '../../../lib/siagh/schemas';
import { SIAGH_DUPLICATE_MOBILE_TEXT, SIAGH_EXPIRED_TEXT, SIAGH_ITEM_CODE_REQUIRED_TEXT, SIAGH_NO_CREDIT_TEXT, SIAGH_RUNTIME_DUMP } from '../../../sim/siagh-sim';

function entry(Description: string, ErrorType = 'ErrError', ColName = '') {
  return { ColName, Group: '', ErrorType, Description, ErrorCode: ErrorType === 'ErrError' ? -1 : 0, MessageText: '', Solution: '', HelpIndex: '' };
}

describe('siagh reply reading', () => {
  it('extracts the document number in ASCII, Persian and Arabic-Indic digits', () => {
    assert.equal(extractDocumentNumber(['پیش فاکتور فروش با موفقیت به شماره 2488 ثبت گردید']), '2488');
    assert.equal(extractDocumentNumber(['پیش فاکتور فروش با موفقیت به شماره ۲۴۸۸ ثبت گردید']), '2488');
    assert.equal(extractDocumentNumber(['پیش فاکتور فروش با موفقیت به شماره ٢٤٨٨ ثبت گردید']), '2488');
    assert.equal(extractDocumentNumber(['به شماره: 77 ثبت شد']), '77');
    // the first text with a number wins; texts without one are skipped
    assert.equal(extractDocumentNumber(['', null, 'ثبت شد', 'به شماره 12 و شماره 13']), '12');
    assert.equal(extractDocumentNumber(['شماره موبایل نمی تواند تکراری باشد.']), undefined);
    assert.equal(extractDocumentNumber([]), undefined);
  });

  it('classifies failures: duplicate, unknown customer, form error; notes are not errors', () => {
    const dup = SaveReplySchema.parse({ Errors: [entry(SIAGH_DUPLICATE_MOBILE_TEXT)], FinalMessages: [], ReturnValue: false, ReturnCode: '', ReturnParams: '' });
    assert.throws(() => readSaveReply(dup, 'contact-create'), (e: unknown) => e instanceof SyncError && e.code === 'SIAGH_DUPLICATE');
    const phone = SaveReplySchema.parse({ Errors: [entry('شماره تلفن نمی تواند تکراری باشد.')], ReturnValue: false });
    assert.throws(() => readSaveReply(phone, 'contact-update'), (e: unknown) => e instanceof SyncError && e.code === 'SIAGH_DUPLICATE');
    const dump = SaveReplySchema.parse({ Errors: [entry(SIAGH_RUNTIME_DUMP)], ReturnValue: false });
    assert.throws(() => readSaveReply(dump, 'pre-invoice'), (e: unknown) => e instanceof SyncError && e.code === 'SIAGH_UNKNOWN_CUSTOMER');
    const otherDump = SaveReplySchema.parse({ Errors: [entry(' پیامهای سرویس : RUNTIME ERROR\r\nDivision by zero')], ReturnValue: false });
    assert.throws(() => readSaveReply(otherDump, 'pre-invoice'), (e: unknown) => e instanceof SyncError && e.code === 'SIAGH_FORM_ERROR');
    const ok = readSaveReply(
      SaveReplySchema.parse({
        Errors: [entry('پیش فاکتور فروش با موفقیت به شماره 2488 ثبت گردید خالص سند: 5,720,000', 'ErrSuccs'), entry('توجه', 'ErrWarning')],
        FinalMessages: ['پیش فاکتور فروش با موفقیت به شماره 2488 ثبت گردید'],
        ReturnValue: true,
        ReturnCode: 15459,
        ReturnParams: '458640',
      }),
      'pre-invoice',
    );
    assert.equal(ok.returnCode, '15459');
    assert.equal(ok.returnParams, '458640');
    assert.equal(ok.notes.length, 2);
    assert.equal(ok.successTexts.length, 1);
  });

  it('an ErrError wins even when ReturnValue is true', () => {
    const r = SaveReplySchema.parse({ Errors: [entry('خطا')], ReturnValue: true, ReturnCode: '1' });
    assert.throws(() => readSaveReply(r, 'form'), (e: unknown) => e instanceof SyncError && e.code === 'SIAGH_FORM_ERROR');
  });

  it('detects session expiry in both shapes, and not in business errors', () => {
    assert.equal(isSessionExpiredReply(401, undefined), true);
    assert.equal(isSessionExpiredReply(403, { Message: 'x' }), true);
    assert.equal(isSessionExpiredReply(200, { Errors: [entry(SIAGH_EXPIRED_TEXT)], ReturnValue: false }), true);
    assert.equal(isSessionExpiredReply(200, { Errors: [entry('Invalid SessionId')] }), true);
    assert.equal(isSessionExpiredReply(200, { Errors: [entry('لطفا ابتدا وارد سیستم شوید. توکن نامعتبر')] }), true);
    assert.equal(isSessionExpiredReply(200, { Errors: [entry(SIAGH_DUPLICATE_MOBILE_TEXT)], ReturnValue: false }), false);
    assert.equal(isSessionExpiredReply(200, { Errors: [entry(SIAGH_RUNTIME_DUMP)], ReturnValue: false }), false);
    assert.equal(isSessionExpiredReply(200, { Errors: [entry('login note', 'ErrSuccs')], ReturnValue: true }), false);
    assert.equal(isSessionExpiredReply(200, [{ Code: 1 }]), false);
    assert.equal(isExpiryText('قیمت ردیف 1 درست وارد نشده است'), false);
  });

  describe('session texts vs business texts (issue #9 item 7)', () => {
    // Texts that say the session / login / token is expired or invalid, or ask to log in again.
    const session: string[] = [
      SIAGH_EXPIRED_TEXT, // what the simulator emits
      'نشست کاربر منقضی شده است. لطفا دوباره وارد شوید',
      'نشست شما منقضي شده است', // Arabic yeh
      'نشست نامعتبر است',
      'نشست کاربر یافت نشد',
      'اعتبار نشست به پایان رسیده است',
      'جلسه کاری شما به پایان رسیده است',
      'جلسه‌ی کاری منقضی شده است', // ZWNJ
      'جلسه كاري نامعتبر است', // Arabic kaf and yeh
      'توکن نامعتبر است',
      'توکن منقضی شده است',
      'لطفا ابتدا وارد سیستم شوید. توکن نامعتبر',
      'لطفا مجددا وارد شوید',
      'لطفاً دوباره وارد سیستم شوید', // with tanwin
      'Session expired',
      'Session has expired. Please login again.',
      'Invalid SessionId',
      'SessionId is not valid',
      'Invalid session',
      'Login expired',
      'Token expired',
      'The token is invalid',
      'Unauthorized',
      'Authorization has been denied for this request.',
      'User is not logged in',
    ];
    // Business errors that only share a word (اعتبار credit/validity, ورود entry, وارد entered) —
    // or nothing at all — with session texts.
    const business: string[] = [
      SIAGH_NO_CREDIT_TEXT,
      'اعتبار مشتری کافی نیست',
      'اعتبار مشتري کافي نيست', // Arabic yeh
      'سقف اعتبار مشتری تمام شده است',
      'تاریخ اعتبار سند گذشته است',
      'اعتبار کالا منقضی شده است', // credit/validity of an item expired: no session word
      SIAGH_ITEM_CODE_REQUIRED_TEXT,
      'ورود کد کالا الزامی است',
      'ورود نام مشتری الزامی است',
      'ورود اطلاعات ناقص است',
      'قیمت ردیف 1 درست وارد نشده است',
      'مقدار ردیف 2 درست وارد نشده است',
      'کالای ردیف 1 با کد 123 تعریف نشده است',
      'کد کالا نامعتبر است', // invalid item code: no session word
      'شماره موبایل نمی تواند تکراری باشد.',
      SIAGH_DUPLICATE_MOBILE_TEXT,
      SIAGH_RUNTIME_DUMP,
      'Invalid price',
      'Item code is required',
      '',
    ];
    for (const t of session) {
      it(`session: "${t}"`, () => {
        assert.equal(isExpiryText(t), true);
        assert.equal(isSessionExpiredReply(200, { Errors: [entry(t)], ReturnValue: false }), true);
      });
    }
    for (const t of business) {
      it(`not session: "${t.split(/\r?\n/)[0]}"`, () => {
        assert.equal(isExpiryText(t), false);
        assert.equal(isSessionExpiredReply(200, { Errors: [entry(t)], ReturnValue: false }), false);
      });
    }
    it('a business error is a SIAGH_FORM_ERROR carrying the Persian text', () => {
      for (const t of [SIAGH_NO_CREDIT_TEXT, SIAGH_ITEM_CODE_REQUIRED_TEXT]) {
        const r = SaveReplySchema.parse({ Errors: [entry(t, 'ErrError', 'CodeKala')], ReturnValue: false });
        assert.throws(
          () => readSaveReply(r, 'pre-invoice'),
          (e: unknown) => e instanceof SyncError && e.code === 'SIAGH_FORM_ERROR' && e.details[0] === t && e.message.includes(t),
        );
      }
    });
    it('a Message-only reply is read by the same rule', () => {
      assert.equal(isSessionExpiredReply(200, { Message: 'Authorization has been denied for this request.' }), true);
      assert.equal(isSessionExpiredReply(200, { Message: 'Session expired' }), true);
      assert.equal(isSessionExpiredReply(200, { Message: SIAGH_NO_CREDIT_TEXT }), false);
      assert.equal(isSessionExpiredReply(200, { Message: 'An error has occurred.' }), false);
    });
  });

  it('schema failures are BAD_REPLY naming the field', () => {
    assert.throws(
      () => parseReply(GetAllReplySchema, [{ Code: 1 }, { Name: 'بی کد' }], { what: 'GetAll' }),
      (e: unknown) => e instanceof SyncError && e.code === 'BAD_REPLY' && /\[1\]\.Code/.test(e.message),
    );
    assert.throws(
      () => parseReply(LoginReplySchema, { SessionId: 'abc' }, { what: 'the login reply' }),
      (e: unknown) => e instanceof SyncError && e.code === 'BAD_REPLY' && /FiscalYear/.test(e.message),
    );
    assert.throws(
      () => parseReply(SaveReplySchema, {}, { what: 'the save reply', write: true }),
      (e: unknown) => e instanceof SyncError && e.code === 'BAD_REPLY' && e.ambiguous,
    );
    assert.throws(
      () => parseReply(SaveReplySchema, undefined, { what: 'the save reply', write: true }),
      (e: unknown) => e instanceof SyncError && /empty body/.test(e.message),
    );
    // lenient: unknown fields kept, numeric strings accepted for Code
    const r = parseReply(GetAllReplySchema, [{ Code: '8407', Extra: 1, MobileNo: 9121234567 }], { what: 'GetAll' });
    assert.equal(r[0].Code, 8407);
    assert.equal(r[0].MobileNo, '9121234567');
    assert.equal((r[0] as Record<string, unknown>).Extra, 1);
  });
});
