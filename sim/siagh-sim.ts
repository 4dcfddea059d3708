/**
 * Siagh (سیاق) v8.3 simulator: a real HTTP server faithful to what was observed of the real one
 * (docs/siagh-api.md). Where the evidence is silent the behaviour is a documented
 * choice, marked [SIM] below, and configurable where it matters.
 *
 * Endpoints (root paths, no prefix):
 * - POST /GeneralApi/LoginUser {UserName, Password}: Password must be the UPPER-case hex MD5 of the
 *   plain password; otherwise 401 {"Message":"Invalid username or password"} (as the earlier service's notes say). Success: the
 *   full login object of docs/siagh-api.md#login-and-session, SessionId = 32 lower-case hex, Token = SessionId + ":0".
 * - GET|POST /api/Sgh/GEN/Gn_Web_Users/GetAll: every contact in one array, PascalCase, without
 *   tmpid (write-only, docs/known-faults.md#tmpid-write-only). POST {} → all; POST with fields (MobileNo, TelNo, Code, …) → records
 *   equal on every given field ([SIM] docs/open-questions.md#getall-filter: phones compared as phone keys).
 * - POST /BpmsApi/SaveFormData and the alias /GeneralApi/SaveFormData: forms 2BFDA (contact
 *   create / update) and 43D81 (sales pre-invoice). Business errors are HTTP 200 with Errors[].
 *   ctrlValues/parameters are read by splitting on `|` then at the first `=`; a segment without
 *   `=` is reported as an error and nothing is saved ([SIM]).
 * - 43D81 with `codemarkazforush` or `codevaseteh` empty (or absent) is refused with the RUNTIME
 *   ERROR dump, as the real server answered on 2025-12-26 (observed, with codemarkazforush=,
 *   codevaseteh=, codecontact=): HTTP 200, one ErrError, ReturnValue false, nothing saved.
 *
 * Auth: the raw session id in `Authorization`. An unknown or expired session (idle longer than
 * `sessionTtlMs`, or after `expireAllSessions()`) is answered in the `expiryShape` chosen (an open
 * question: docs/open-questions.md#session-expiry): 'errors200' (default: HTTP 200 with a Persian ErrError) or 'http401'.
 *
 * Test controls: `state()`, `contacts()`, `preInvoices()`, `loginCount`, `saveCount`,
 * `addContact()`, `expireAllSessions()`, `reset()`, `loginReply` (make the next logins answer
 * without a SessionId or with Errors[]), `lastSave` / `saveLog` (the decoded requests),
 * `noCredit` (customer codes refused with "اعتبار مشتری کافی نیست"), plus the fault switches of
 * SimServer. A pre-invoice row without an item code is refused with "ورود کد کالا الزامی است".
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { SiaghContact } from '../lib/types';
import { decodeSegments, DecodedSegment } from '../lib/siagh/ctrl-values';
import { applyContactFields, contactColumn } from '../lib/siagh/fields';
import { phoneKey } from '../lib/text/normalize';
import { INVALID_JSON, SimRequest, SimResponse, SimServer } from './sim-server';

export interface SiaghSimUser {
  UserName: string;
  /** Plain password; the client must send its upper-case MD5. */
  Password: string;
}

export type SiaghSeedContact = Partial<SiaghContact> & { tmpid?: string | null };
export type SiaghSimContact = SiaghContact & { tmpid?: string | null };

export interface SiaghSimOptions {
  users?: SiaghSimUser[];
  /** First Code given to a created contact (default 8300; above the highest seed Code if higher). */
  firstCode?: number;
  fiscalYear?: number;
  branchName?: string;
  /** Idle time after which a session is refused (ms). Default: never. */
  sessionTtlMs?: number;
  /** How a refused session is answered. Default 'errors200'. */
  expiryShape?: 'http401' | 'errors200';
  /** Same `_In_Suid` → the first document again (docs/open-questions.md#suid-dedup is unknown; default false: a new document each time). */
  dedupeSuid?: boolean;
  contacts?: SiaghSeedContact[];
  /** Known item codes (`codekala`); any code is accepted when absent. */
  items?: Iterable<string>;
  /** Known sale models / sales centres / intermediaries; an unknown value triggers the RUNTIME ERROR dump. Any value accepted when absent. */
  validSaleModels?: Iterable<string>;
  validSalesCentres?: Iterable<string>;
  validIntermediaries?: Iterable<string>;
  /** Write the document number in Persian digits (shortcut for documentDigits 'persian'). */
  persianDigits?: boolean;
  documentDigits?: 'ascii' | 'persian' | 'arabic';
  /** First printed document number (default 2488). */
  firstDocumentNumber?: number;
  /** Also refuse a duplicate TelNo ("شماره تلفن نمی تواند تکراری باشد."). Default false. */
  uniqueTelNo?: boolean;
  /**
   * [SIM] Customer codes whose pre-invoices are refused with "اعتبار مشتری کافی نیست" (customer
   * credit insufficient): a business error that shares a word (اعتبار) with session texts.
   */
  noCreditCustomers?: Iterable<string | number>;
}

export interface SiaghSimPreInvoice {
  documentNumber: number;
  /** The number as printed in the message (digits per option). */
  printedNumber: string;
  returnCode: string;
  returnParams: string;
  suid: string;
  customerCode: string;
  /** Header columns without the `sl_sanad.` prefix. */
  header: Record<string, string>;
  rows: Array<Record<string, unknown>>;
  net: number;
}

export interface SiaghSimSave {
  path: string;
  formId: string;
  ctrl: DecodedSegment[];
  params: DecodedSegment[];
  dataRows: string;
}

interface Stored {
  pub: SiaghContact;
  tmpid: string | null;
  writeOnly: Record<string, string>;
}

interface Session {
  id: string;
  user: string;
  lastUsed: number;
}

export const SIAGH_EXPIRED_TEXT = 'نشست کاربر منقضی شده است. لطفا دوباره وارد شوید';
export const SIAGH_DUPLICATE_MOBILE_TEXT = 'شماره موبایل نمی تواند تکراری باشد.';
export const SIAGH_DUPLICATE_PHONE_TEXT = 'شماره تلفن نمی تواند تکراری باشد.';
/** The script crash observed on 2025-12-26 (docs/siagh-api.md#saveformdata-the-envelope), leading space and line breaks included. */
/** [SIM] A pre-invoice for a customer in `noCreditCustomers`. */
export const SIAGH_NO_CREDIT_TEXT = 'اعتبار مشتری کافی نیست';
/** [SIM] A pre-invoice row with an empty item code (codekala). */
export const SIAGH_ITEM_CODE_REQUIRED_TEXT = 'ورود کد کالا الزامی است';
export const SIAGH_RUNTIME_DUMP =
  " پیامهای سرویس : RUNTIME ERROR\r\nField 'Code' not found when evaluating instruction CallProc ($FFFFFFFF,$1,$1E888D0,$0,'FieldByName').\r\nStack content is: [Null,Null,0,97227280...].\r\nSource position: 218,84\r\nPosition: 218, 84";

const LOGIN_PATH = '/GeneralApi/LoginUser';
const GETALL_PATH = '/api/Sgh/GEN/Gn_Web_Users/GetAll';
const SAVE_PATHS = new Set(['/BpmsApi/SaveFormData', '/GeneralApi/SaveFormData']);
const SAVE_LOG_MAX = 1000;

function md5Upper(s: string): string {
  return createHash('md5').update(s, 'utf8').digest('hex').toUpperCase();
}

function errEntry(description: string, colName = '', type: 'ErrError' | 'ErrSuccs' | 'ErrWarning' = 'ErrError') {
  return {
    ColName: colName,
    Group: '',
    ErrorType: type,
    Description: description,
    ErrorCode: type === 'ErrError' ? -1 : 0,
    MessageText: '',
    Solution: '',
    HelpIndex: '',
  };
}

function errorReply(...entries: Array<ReturnType<typeof errEntry>>): SimResponse {
  return { status: 200, body: { Errors: entries, FinalMessages: [], ReturnValue: false, ReturnCode: '', ReturnParams: '' } };
}

function toDigits(n: number | string, kind: 'ascii' | 'persian' | 'arabic'): string {
  const s = String(n);
  if (kind === 'ascii') return s;
  const base = kind === 'persian' ? 0x06f0 : 0x0660;
  return s.replace(/[0-9]/g, (d) => String.fromCharCode(base + Number(d)));
}

function jalaliNow(): { date: string; time: string } {
  const now = new Date();
  try {
    const parts = new Intl.DateTimeFormat('en-US-u-ca-persian-nu-latn', { year: 'numeric', month: '2-digit', day: '2-digit', timeZone: 'Asia/Tehran' }).formatToParts(now);
    const get = (t: string) => parts.find((p) => p.type === t)?.value ?? '';
    const time = new Intl.DateTimeFormat('en-GB', { hour: '2-digit', minute: '2-digit', hour12: false, timeZone: 'Asia/Tehran' }).format(now);
    return { date: `${get('year')}/${get('month')}/${get('day')}`, time };
  } catch {
    return { date: '1404/09/04', time: '17:33' };
  }
}

/** A GetAll record with every field of docs/siagh-api.md#contacts-getall (nulls where unknown). */
function blankContact(code: number): SiaghContact {
  return {
    RecordId: randomUUID(),
    Code: code,
    Name: null,
    NickName: null,
    NationalCode: null,
    MobileNo: null,
    MobileNo2: null,
    TelNo: null,
    TelNo2: null,
    Email: null,
    Email2: null,
    Address: null,
    PostalCode: null,
    CityCode: null,
    CountryCode: null,
    Gender: null,
    BirthDate: null,
    RegDate: null,
    ExpireDate: null,
    FatherName: null,
    Description: null,
    WebSiteAddress: null,
    PreName: null,
    OrgField: null,
    IsActive: true,
    IsAdminUser: false,
    TowardType: false,
    ParentCode: null,
    AccountPartyCode: null,
    Coin: null,
    GeographicCode: null,
    FraternityCode: null,
    JobTypeCode: null,
    TrackingCode: null,
    CodeRoshd: null,
    RepresentativeId: null,
    Confirm: false,
    GiveCoinToParentCode: false,
    HasDisCount: false,
    img: null,
    Picture: null,
    Password: null,
  };
}

export class SiaghSim extends SimServer {
  readonly options: Readonly<SiaghSimOptions>;
  /** How the next logins answer: 'normal', without a SessionId, or 200 with Errors[]. */
  loginReply: 'normal' | 'noSessionId' | 'errors200' = 'normal';
  /** Expiry shape (may be switched by tests). */
  expiryShape: 'http401' | 'errors200';
  /** Session idle limit (ms), may be changed by tests. */
  sessionTtlMs: number | undefined;
  /** The last SaveFormData request, decoded. */
  lastSave: SiaghSimSave | undefined;
  /** Up to the last 1000 SaveFormData requests, decoded. */
  saveLog: SiaghSimSave[] = [];
  /**
   * Test hook: rewrite the answer of a SaveFormData request after it was handled (state already
   * changed), e.g. to imitate a reply shape the evidence does not show. Cleared by reset().
   */
  onSave: ((save: SiaghSimSave, reply: SimResponse) => SimResponse) | undefined;
  /** Customer codes whose pre-invoices are refused for insufficient credit (reset() restores the option). */
  noCredit = new Set<string>();

  private readonly users: SiaghSimUser[];
  private readonly items?: Set<string>;
  private readonly saleModels?: Set<string>;
  private readonly salesCentres?: Set<string>;
  private readonly intermediaries?: Set<string>;
  private readonly digits: 'ascii' | 'persian' | 'arabic';

  private byCode = new Map<number, Stored>();
  private byMobile = new Map<string, number>();
  private byTel = new Map<string, number>();
  private accountParties = new Map<number, number>();
  private sessions = new Map<string, Session>();
  private invoices: SiaghSimPreInvoice[] = [];
  private bySuid = new Map<string, SiaghSimPreInvoice>();
  private nextCode = 0;
  private nextDoc = 0;
  private nextReturn = 0;
  private logins = 0;
  private loginAttempts = 0;
  private saves = 0;

  constructor(options: SiaghSimOptions = {}) {
    super();
    this.options = { ...options };
    this.users = options.users ?? [{ UserName: 'مدیر سیستم', Password: 'admin' }];
    this.expiryShape = options.expiryShape ?? 'errors200';
    this.sessionTtlMs = options.sessionTtlMs;
    this.items = options.items ? new Set([...options.items].map(String)) : undefined;
    this.saleModels = options.validSaleModels ? new Set([...options.validSaleModels].map(String)) : undefined;
    this.salesCentres = options.validSalesCentres ? new Set([...options.validSalesCentres].map(String)) : undefined;
    this.intermediaries = options.validIntermediaries ? new Set([...options.validIntermediaries].map(String)) : undefined;
    this.digits = options.documentDigits ?? (options.persianDigits ? 'persian' : 'ascii');
    this.reset();
  }

  // ---------------- test controls ----------------

  get loginCount(): number {
    return this.logins;
  }

  get loginAttemptCount(): number {
    return this.loginAttempts;
  }

  /** Authenticated SaveFormData requests handled (refused sessions not counted). */
  get saveCount(): number {
    return this.saves;
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  reset(): void {
    this.byCode = new Map();
    this.byMobile = new Map();
    this.byTel = new Map();
    this.accountParties = new Map();
    this.sessions = new Map();
    this.invoices = [];
    this.bySuid = new Map();
    this.logins = 0;
    this.loginAttempts = 0;
    this.saves = 0;
    this.lastSave = undefined;
    this.saveLog = [];
    this.loginReply = 'normal';
    this.onSave = undefined;
    this.noCredit = new Set([...(this.options.noCreditCustomers ?? [])].map((c) => String(c).trim()));
    this.nextCode = this.options.firstCode ?? 8300;
    this.nextDoc = this.options.firstDocumentNumber ?? 2488;
    this.nextReturn = 0;
    for (const c of this.options.contacts ?? []) this.addContact(c);
  }

  /** Add a contact directly (as if entered in Siagh's UI). Returns it as GetAll shows it, plus tmpid. */
  addContact(partial: SiaghSeedContact): SiaghSimContact {
    const code = typeof partial.Code === 'number' ? partial.Code : this.nextCode++;
    if (this.byCode.has(code)) throw new Error(`SiaghSim: contact code ${code} exists`);
    if (code >= this.nextCode) this.nextCode = code + 1;
    const { tmpid, ...rest } = partial;
    const pub = { ...blankContact(code), ...rest, Code: code } as SiaghContact;
    const st: Stored = { pub, tmpid: tmpid ?? null, writeOnly: {} };
    this.byCode.set(code, st);
    this.indexAdd(st);
    return { ...pub, tmpid: st.tmpid };
  }

  /** Every contact as stored (GetAll fields plus the write-only tmpid). */
  contacts(): SiaghSimContact[] {
    return [...this.byCode.values()].map((s) => ({ ...s.pub, tmpid: s.tmpid }));
  }

  contact(code: number): (SiaghSimContact & { writeOnly: Record<string, string> }) | undefined {
    const s = this.byCode.get(code);
    return s ? { ...s.pub, tmpid: s.tmpid, writeOnly: { ...s.writeOnly } } : undefined;
  }

  preInvoices(): SiaghSimPreInvoice[] {
    return this.invoices.map((p) => ({ ...p, header: { ...p.header }, rows: p.rows.map((r) => ({ ...r })) }));
  }

  /** Refuse every session issued so far (the next request gets the expiry answer). */
  expireAllSessions(): void {
    this.sessions.clear();
  }

  state(): Record<string, unknown> {
    return {
      contacts: this.contacts(),
      preInvoices: this.preInvoices(),
      logins: this.logins,
      loginAttempts: this.loginAttempts,
      sessions: this.sessions.size,
      saveCount: this.saves,
      nextCode: this.nextCode,
    };
  }

  // ---------------- indexes ----------------

  private indexAdd(s: Stored): void {
    const m = phoneKey(s.pub.MobileNo);
    if (m && !this.byMobile.has(m)) this.byMobile.set(m, s.pub.Code);
    const t = phoneKey(s.pub.TelNo);
    if (t && !this.byTel.has(t)) this.byTel.set(t, s.pub.Code);
    const a = s.pub.AccountPartyCode;
    if (typeof a === 'number') this.accountParties.set(a, s.pub.Code);
  }

  private indexRemove(s: Stored): void {
    const m = phoneKey(s.pub.MobileNo);
    if (m && this.byMobile.get(m) === s.pub.Code) this.byMobile.delete(m);
    const t = phoneKey(s.pub.TelNo);
    if (t && this.byTel.get(t) === s.pub.Code) this.byTel.delete(t);
  }

  // ---------------- HTTP ----------------

  protected handle(req: SimRequest): SimResponse {
    const path = req.path.replace(/\/+$/, '');
    if (path === LOGIN_PATH) return req.method === 'POST' ? this.login(req) : this.notAllowed(req);
    if (path === GETALL_PATH) return req.method === 'GET' || req.method === 'POST' ? this.getAll(req) : this.notAllowed(req);
    if (SAVE_PATHS.has(path)) return req.method === 'POST' ? this.saveFormData(req, path) : this.notAllowed(req);
    return { status: 404, body: { Message: `No HTTP resource was found that matches the request URI '${req.path}'.` } };
  }

  private notAllowed(req: SimRequest): SimResponse {
    return { status: 405, body: { Message: `The requested resource does not support http method '${req.method}'.` } };
  }

  private login(req: SimRequest): SimResponse {
    this.loginAttempts++;
    const b = req.body;
    if (b === INVALID_JSON || !b || typeof b !== 'object') return { status: 400, body: { Message: 'The request is invalid.' } };
    const { UserName, Password } = b as { UserName?: unknown; Password?: unknown };
    const user = this.users.find((u) => u.UserName === UserName && typeof Password === 'string' && md5Upper(u.Password) === Password);
    if (!user) return { status: 401, body: { Message: 'Invalid username or password' } };
    if (this.loginReply === 'errors200') {
      return errorReply(errEntry('نام کاربری یا کلمه عبور اشتباه است'));
    }
    const { date, time } = jalaliNow();
    const reply: Record<string, unknown> = {
      ContactCode: 2,
      ContactName: user.UserName,
      UserCode: this.users.indexOf(user) + 1,
      UserName: user.UserName,
      BranchCode: 1,
      BranchName: this.options.branchName ?? 'دفتر مرکزی',
      IsAdminUser: true,
      FiscalYear: this.options.fiscalYear ?? 1404,
      MobileNo: '9120000000',
      SystemDate: date,
      SystemTime: time,
    };
    if (this.loginReply === 'noSessionId') return { status: 200, body: reply };
    const id = randomBytes(16).toString('hex');
    this.sessions.set(id, { id, user: user.UserName, lastUsed: Date.now() });
    this.logins++;
    return { status: 200, body: { ...reply, SessionId: id, Token: `${id}:0` } };
  }

  /** The session of the request, or the answer for a refused one. */
  private auth(req: SimRequest): Session | SimResponse {
    const raw = req.headers.authorization;
    const id = typeof raw === 'string' ? raw.trim() : '';
    const s = id ? this.sessions.get(id) : undefined;
    const now = Date.now();
    if (s && this.sessionTtlMs !== undefined && now - s.lastUsed > this.sessionTtlMs) this.sessions.delete(s.id);
    else if (s) {
      s.lastUsed = now;
      return s;
    }
    if (this.expiryShape === 'http401') return { status: 401, body: { Message: 'Authorization has been denied for this request.' } };
    return errorReply(errEntry(SIAGH_EXPIRED_TEXT));
  }

  private getAll(req: SimRequest): SimResponse {
    const s = this.auth(req);
    if ('status' in s) return s;
    const all = [...this.byCode.values()].map((x) => x.pub);
    if (req.method === 'GET' || req.body === undefined) return { status: 200, body: all };
    const f = req.body;
    if (f === INVALID_JSON || typeof f !== 'object' || f === null || Array.isArray(f)) return { status: 400, body: { Message: 'The request is invalid.' } };
    const filters = Object.entries(f as Record<string, unknown>).filter(([, v]) => v !== undefined && v !== null && v !== '');
    if (filters.length === 0) return { status: 200, body: all };
    const matches = (c: SiaghContact) =>
      filters.every(([k, v]) => {
        const have = (c as Record<string, unknown>)[k];
        if (k === 'Code' || typeof have === 'number') return Number(have) === Number(v);
        if (/^(MobileNo2?|TelNo2?)$/.test(k)) return phoneKey(String(v)) !== undefined && phoneKey(have == null ? null : String(have)) === phoneKey(String(v));
        if (typeof have === 'boolean') return have === (v === true || v === 'true' || v === 1 || v === '1');
        return have != null && String(have).trim() === String(v).trim();
      });
    if (filters.length === 1 && filters[0][0] === 'Code') {
      const one = this.byCode.get(Number(filters[0][1]));
      return { status: 200, body: one ? [one.pub] : [] };
    }
    return { status: 200, body: all.filter(matches) };
  }

  private saveFormData(req: SimRequest, path: string): SimResponse {
    const s = this.auth(req);
    if ('status' in s) return s;
    const b = req.body;
    if (b === INVALID_JSON || !b || typeof b !== 'object' || Array.isArray(b)) return { status: 400, body: { Message: 'The request is invalid.' } };
    this.saves++;
    const env = b as Record<string, unknown>;
    const str = (k: string) => (typeof env[k] === 'string' ? (env[k] as string) : env[k] == null ? '' : String(env[k]));
    const formId = str('formId');
    const ctrl = decodeSegments(str('ctrlValues'));
    const params = decodeSegments(str('parameters'));
    const save: SiaghSimSave = { path, formId, ctrl, params, dataRows: str('dataRows') };
    this.lastSave = save;
    this.saveLog.push(save);
    if (this.saveLog.length > SAVE_LOG_MAX) this.saveLog.splice(0, this.saveLog.length - SAVE_LOG_MAX);

    // [SIM] a segment the server cannot read is refused: nothing is saved.
    const bad = [...ctrl, ...params].filter((x) => !x.hasEquals || x.key.trim() === '');
    if (bad.length > 0) {
      const reply = errorReply(...bad.map((x) => errEntry(`مقدار "${x.raw.slice(0, 80)}" قالب نام=مقدار ندارد و خوانده نشد`)));
      return this.onSave ? this.onSave(save, reply) : reply;
    }
    const reply =
      formId === '2BFDA'
        ? this.contactForm(ctrl, params)
        : formId === '43D81'
          ? this.preInvoiceForm(ctrl, params, save.dataRows)
          : errorReply(errEntry(`فرم با شناسه "${formId}" یافت نشد`));
    return this.onSave ? this.onSave(save, reply) : reply;
  }

  private contactForm(ctrl: DecodedSegment[], params: DecodedSegment[]): SimResponse {
    const codeMain = params.find((p) => p.key === 'CodeMain')?.value.trim() ?? '';
    const param1 = ctrl.find((p) => p.key === 'Param1')?.value.trim() ?? '';
    const target = codeMain || param1;
    const fields = ctrl.filter((x) => contactColumn(x.key) !== undefined).map((x) => [x.key, x.value] as [string, string]);
    let existing: Stored | undefined;
    if (target !== '') {
      existing = /^\d+$/.test(target) ? this.byCode.get(Number(target)) : undefined;
      if (!existing) return errorReply(errEntry(SIAGH_RUNTIME_DUMP));
    }
    const code = existing?.pub.Code;
    for (const [k, v] of fields) {
      const col = contactColumn(k);
      const key = phoneKey(v);
      if (!key) continue;
      if (col === 'mobileno') {
        const owner = this.byMobile.get(key);
        if (owner !== undefined && owner !== code) return errorReply(errEntry(SIAGH_DUPLICATE_MOBILE_TEXT));
      }
      if (col === 'telno' && this.options.uniqueTelNo) {
        const owner = this.byTel.get(key);
        if (owner !== undefined && owner !== code) return errorReply(errEntry(SIAGH_DUPLICATE_PHONE_TEXT));
      }
    }
    let st: Stored;
    if (existing) {
      st = existing;
      this.indexRemove(st);
    } else {
      const newCode = this.nextCode++;
      st = { pub: { ...blankContact(newCode), RegDate: jalaliNow().date }, tmpid: null, writeOnly: {} };
      this.byCode.set(newCode, st);
    }
    const prevActive = st.pub.IsActive;
    const prevToward = st.pub.TowardType;
    const writeOnly = applyContactFields(st.pub, fields);
    // [SIM] an empty flag keeps the stored value (defaults: active, person).
    if (st.pub.IsActive === null) st.pub.IsActive = prevActive ?? true;
    if (st.pub.TowardType === null) st.pub.TowardType = prevToward ?? false;
    for (const [k, v] of Object.entries(writeOnly)) {
      if (k === 'tmpid') st.tmpid = v === '' ? null : v;
      else st.writeOnly[k] = v;
    }
    this.indexAdd(st);
    const rc = String(st.pub.Code);
    return { status: 200, body: { Errors: [], FinalMessages: [], ReturnValue: true, ReturnCode: rc, ReturnParams: rc } };
  }

  private preInvoiceForm(ctrl: DecodedSegment[], params: DecodedSegment[], dataRows: string): SimResponse {
    const suid = params.find((p) => p.key === '_In_Suid')?.value.trim() ?? '';
    if (this.options.dedupeSuid && suid && this.bySuid.has(suid)) return this.preInvoiceReply(this.bySuid.get(suid)!);

    const header: Record<string, string> = {};
    for (const x of ctrl) {
      const k = x.key.toLowerCase();
      if (k.startsWith('sl_sanad.')) header[k.slice('sl_sanad.'.length)] = x.value;
    }
    // Observed 2025-12-26: an empty sales centre or intermediary crashes the server-side script.
    if (!(header.codemarkazforush ?? '').trim() || !(header.codevaseteh ?? '').trim()) return errorReply(errEntry(SIAGH_RUNTIME_DUMP));
    const customer = (header.codemoshtari ?? '').trim();
    const known =
      /^\d+$/.test(customer) && (this.byCode.has(Number(customer)) || this.accountParties.has(Number(customer)));
    const inSet = (set: Set<string> | undefined, v: string | undefined) => !set || set.has((v ?? '').trim());
    if (!known || !inSet(this.saleModels, header.codesalemodel) || !inSet(this.salesCentres, header.codemarkazforush) || !inSet(this.intermediaries, header.codevaseteh)) {
      return errorReply(errEntry(SIAGH_RUNTIME_DUMP));
    }
    if (this.noCredit.has(customer)) return errorReply(errEntry(SIAGH_NO_CREDIT_TEXT, 'CodeMoshtari'));

    let grids: unknown;
    try {
      grids = JSON.parse(dataRows);
    } catch {
      return errorReply(errEntry('اطلاعات ردیف های سند قابل خواندن نیست'));
    }
    const grid = Array.isArray(grids) ? (grids as Array<Record<string, unknown>>).find((g) => g && g.name === 'dbgrid1') : undefined;
    const data = grid && Array.isArray(grid.data) ? (grid.data as Array<Record<string, { newValue?: unknown } | undefined>>) : [];
    if (data.length === 0) return errorReply(errEntry('ردیفی برای سند وارد نشده است'));

    const rows: Array<Record<string, unknown>> = [];
    const errors: Array<ReturnType<typeof errEntry>> = [];
    let net = 0;
    data.forEach((row, i) => {
      const val = (k: string) => (row && typeof row === 'object' ? row[k]?.newValue : undefined);
      const flat: Record<string, unknown> = {};
      for (const k of Object.keys(row ?? {})) flat[k] = val(k);
      const n = i + 1;
      const price = val('price');
      const qty = val('qty');
      const disc = val('mabtakhfif');
      const item = val('codekala');
      if (item == null || String(item).trim() === '') errors.push(errEntry(SIAGH_ITEM_CODE_REQUIRED_TEXT, 'CodeKala'));
      else if (this.items && !this.items.has(String(item ?? ''))) errors.push(errEntry(`کالای ردیف ${n} با کد ${String(item ?? '')} تعریف نشده است`, 'CodeKala'));
      if (typeof qty !== 'number' || !Number.isFinite(qty) || qty <= 0) errors.push(errEntry(`مقدار ردیف ${n} درست وارد نشده است`, 'Qty'));
      if (typeof price !== 'number' || !Number.isFinite(price) || price <= 0) errors.push(errEntry(`قیمت ردیف ${n} درست وارد نشده است`, 'Price'));
      if (typeof qty === 'number' && typeof price === 'number') net += qty * price - (typeof disc === 'number' ? disc : 0);
      rows.push(flat);
    });
    if (errors.length > 0) return errorReply(...errors);

    const documentNumber = this.nextDoc++;
    const k = this.nextReturn++;
    const inv: SiaghSimPreInvoice = {
      documentNumber,
      printedNumber: toDigits(documentNumber, this.digits),
      returnCode: String(15459 + k * 3),
      returnParams: String(458640 + k * 17),
      suid,
      customerCode: customer,
      header,
      rows,
      net: Math.round(net),
    };
    this.invoices.push(inv);
    if (suid && !this.bySuid.has(suid)) this.bySuid.set(suid, inv);
    return this.preInvoiceReply(inv);
  }

  private preInvoiceReply(inv: SiaghSimPreInvoice): SimResponse {
    const base = `پیش فاکتور فروش با موفقیت به شماره ${inv.printedNumber} ثبت گردید`;
    return {
      status: 200,
      body: {
        Errors: [errEntry(`${base} خالص سند: ${inv.net.toLocaleString('en-US')}`, '', 'ErrSuccs')],
        FinalMessages: [base],
        ReturnValue: true,
        ReturnCode: inv.returnCode,
        ReturnParams: inv.returnParams,
      },
    };
  }
}
