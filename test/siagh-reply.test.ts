import assert from 'node:assert/strict';
import { SyncError } from '../lib/errors';
import { extractDocumentNumber, isExpiryText, isSessionExpiredReply, readSaveReply } from '../lib/siagh/reply';
import { GetAllReplySchema, LoginReplySchema, parseReply, SaveReplySchema } from '../lib/siagh/schemas';
import { SIAGH_DUPLICATE_MOBILE_TEXT, SIAGH_EXPIRED_TEXT, SIAGH_RUNTIME_DUMP } from '../sim/siagh-sim';

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
