/**
 * Reading Siagh SaveFormData replies (docs/siagh-api.md#saveformdata-the-envelope,
 * docs/siagh-api.md#the-document-number).
 *
 * - `ErrError` entries and `ReturnValue: false` are failures → SyncError with the Persian
 *   Description(s) in `details` and the first `ColName` in `column`:
 *   - a duplicate mobile/phone text (تکراری) → SIAGH_DUPLICATE;
 *   - the script dump "RUNTIME ERROR … Field 'Code' not found" → SIAGH_UNKNOWN_CUSTOMER (a code
 *     the form looked up does not exist);
 *   - anything else → SIAGH_FORM_ERROR.
 * - `ErrSuccs` and `ErrWarning` are notes, never errors.
 * - A 200 with `Errors[]` and no `ReturnCode` is read the same way.
 * - The printed document number is read from the Persian text (`… به شماره 2488 ثبت گردید`) with
 *   ASCII, Persian and Arabic-Indic digits; it is never replaced by `ReturnCode`, a different
 *   identifier (docs/known-faults.md#document-number).
 * - Session expiry: HTTP 401/403, or an `ErrError` whose text says that the session / login /
 *   token is expired or invalid, or asks to log in again (docs/open-questions.md#session-expiry: the real shape is unknown, so both
 *   are accepted). Only such a text: business errors that merely share a word — "اعتبار مشتری
 *   کافی نیست" (customer credit insufficient), "ورود کد کالا الزامی است" (item code entry
 *   required) — are form errors, never a reason to log in again and re-send a write.
 */
import { SyncError } from '../errors';
import { toAsciiDigits } from '../text/normalize';
import type { SaveReply, SiaghErrorEntry } from './schemas';

export type SaveKind = 'contact-create' | 'contact-update' | 'pre-invoice' | 'contact-list' | 'form';

export interface SaveReading {
  returnCode: string;
  returnParams: string;
  finalMessages: string[];
  /** ErrSuccs / ErrWarning descriptions. */
  notes: string[];
  /** ErrSuccs descriptions only (they carry the document number). */
  successTexts: string[];
}

/**
 * What a session is called: session / session id, نشست (session), جلسه کاری (work session), login /
 * لاگین, token / توکن. Deliberately not "اعتبار" (credit, validity) nor "ورود" (entry) alone.
 */
const SESSION_NOUN_RE = /session|نشست|جلسه ?(?:ی ?)?کاری|log ?-?in|لاگین|token|توکن/i;
/** What happened to it: expired, invalid, ended, not found. */
const SESSION_STATE_RE =
  /منقضی|نامعتبر|معتبر نیست|معتبر نمی ?باشد|باطل|به پایان رسیده|پایان یافته|خاتمه یافته|یافت نشد|expired?|invalid|not valid|timed? ?-?out|not found|unknown/i;
/** Asking the user to log in (again / first), or an HTTP-style refusal: session trouble on its own. */
const RELOGIN_RE =
  /(?:دوباره|مجددا|مجدد|ابتدا|لطفا) ?(?:به ?)?(?:سیستم ?)?وارد ?(?:سیستم ?)?شوید|(?:please ?)?log ?in again|please log ?in|not logged ?in|login required|unauthori[sz]ed|authori[sz]ation has been denied/i;
const RUNTIME_RE = /RUNTIME ERROR/i;
const FIELD_CODE_RE = /Field\s+'Code'\s+not\s+found/i;
const DUPLICATE_RE = /تکراری|تكراري/;

function isErrorEntry(e: SiaghErrorEntry): boolean {
  // Anything that is not explicitly a success note or a warning counts as an error.
  const t = (e.ErrorType ?? '').trim();
  return t !== 'ErrSuccs' && t !== 'ErrWarning' && !(t === '' && (e.ErrorCode ?? -1) === 0);
}

function describe(e: SiaghErrorEntry): string {
  return (e.Description ?? e.MessageText ?? '').trim();
}

/** Arabic yeh/kaf → Persian, ZWNJ and runs of white space → one space, tatweel and diacritics out. */
function normalizeForMatch(text: string): string {
  return text
    .replace(/[\u064a\u0649]/g, '\u06cc')
    .replace(/\u0643/g, '\u06a9')
    .replace(/[\u0640\u064b-\u0652]/g, '')
    .replace(/[\s\u200c\u200f\u200e]+/g, ' ');
}

/**
 * Whether a server text says the session is gone: a session word (session, نشست, جلسه کاری, login,
 * token, توکن) together with a state word (expired, invalid, منقضی, نامعتبر, …), or a request to
 * log in again (لطفا دوباره وارد شوید, unauthorized). Never a script dump or a duplicate.
 */
export function isExpiryText(text: string): boolean {
  if (RUNTIME_RE.test(text) || DUPLICATE_RE.test(text)) return false;
  const t = normalizeForMatch(text);
  if (RELOGIN_RE.test(t)) return true;
  return SESSION_NOUN_RE.test(t) && SESSION_STATE_RE.test(t);
}

/**
 * Whether a reply means "the session is expired or invalid": HTTP 401/403, or a JSON object whose
 * error entries talk about the session.
 */
export function isSessionExpiredReply(status: number, data: unknown): boolean {
  if (status === 401 || status === 403) return true;
  if (!data || typeof data !== 'object' || Array.isArray(data)) return false;
  const d = data as { Errors?: unknown; ReturnValue?: unknown; Message?: unknown };
  if (d.ReturnValue === true) return false;
  if (Array.isArray(d.Errors)) {
    const errs = (d.Errors as SiaghErrorEntry[]).filter((e) => e && typeof e === 'object' && isErrorEntry(e));
    if (errs.length > 0 && errs.some((e) => isExpiryText(describe(e)))) return true;
  }
  if (typeof d.Message === 'string' && !Array.isArray(d.Errors) && isExpiryText(d.Message)) return true;
  return false;
}

/** The printed number after `شماره` (ASCII, ۰–۹ or ٠–٩ digits), returned in ASCII digits. */
export function extractDocumentNumber(texts: ReadonlyArray<string | null | undefined>): string | undefined {
  const re = /شماره[\s\u200c-\u200f:：#]*([0-9\u06f0-\u06f9\u0660-\u0669]+)/;
  for (const t of texts) {
    if (!t) continue;
    const m = re.exec(t);
    if (m) return toAsciiDigits(m[1]);
  }
  return undefined;
}

function failureMessage(kind: SaveKind, code: 'SIAGH_FORM_ERROR' | 'SIAGH_DUPLICATE' | 'SIAGH_UNKNOWN_CUSTOMER', details: string[], column?: string): string {
  const what =
    kind === 'contact-create' ? 'create the contact' : kind === 'contact-update' ? 'update the contact' : kind === 'pre-invoice' ? 'save the sales pre-invoice' : kind === 'contact-list' ? 'send the contact list' : 'save the form';
  const first = details[0] ? ` Siagh says: ${details.map((d) => d.split(/\r?\n/)[0].trim()).filter(Boolean).join(' / ')}` : '';
  switch (code) {
    case 'SIAGH_DUPLICATE':
      return `Siagh refused to ${what}: a contact with the same mobile or phone number already exists.${first} Link the CRM record to the existing Siagh contact or correct the number.`;
    case 'SIAGH_UNKNOWN_CUSTOMER':
      if (kind === 'contact-update') {
        return `Siagh could not ${what}: the contact code does not exist in Siagh (its form script answered "Field 'Code' not found"). The contact may have been deleted in Siagh; remove or fix the mapping and sync again.`;
      }
      return `Siagh could not ${what}: a code it looked up does not exist in Siagh (its form script answered "Field 'Code' not found"). Check that the customer code, the sale model, the sales centre and the intermediary (codemoshtari, codesalemodel, codemarkazforush, codevaseteh) exist in Siagh.`;
    default:
      return `Siagh refused to ${what}${column ? ` (column ${column})` : ''}.${first || ' It gave no reason.'} Correct the data and send it again.`;
  }
}

/**
 * Read a validated SaveFormData reply: return the reading on success, throw the matching SyncError
 * on failure. Callers check session expiry first (isSessionExpiredReply).
 */
export function readSaveReply(reply: SaveReply, kind: SaveKind, path?: string): SaveReading {
  const entries = (reply.Errors ?? []).filter((e): e is SiaghErrorEntry => !!e && typeof e === 'object');
  const errors = entries.filter(isErrorEntry);
  const notes = entries.filter((e) => !isErrorEntry(e)).map(describe).filter(Boolean);
  const successTexts = entries.filter((e) => (e.ErrorType ?? '').trim() === 'ErrSuccs').map(describe).filter(Boolean);
  const finalMessages = (reply.FinalMessages ?? []).filter((m): m is string => typeof m === 'string' && m.trim() !== '');

  if (errors.length > 0 || reply.ReturnValue === false) {
    const details = errors.map(describe).filter(Boolean);
    if (details.length === 0) details.push(...finalMessages);
    const column = errors.map((e) => (e.ColName ?? '').trim()).find(Boolean);
    const all = details.join('\n');
    const code = RUNTIME_RE.test(all) && FIELD_CODE_RE.test(all) ? 'SIAGH_UNKNOWN_CUSTOMER' : DUPLICATE_RE.test(all) ? 'SIAGH_DUPLICATE' : 'SIAGH_FORM_ERROR';
    throw new SyncError(code, failureMessage(kind, code, details, column), { details, column, path, status: 200 });
  }
  return {
    returnCode: (reply.ReturnCode ?? '').trim(),
    returnParams: (reply.ReturnParams ?? '').trim(),
    finalMessages,
    notes,
    successTexts,
  };
}
