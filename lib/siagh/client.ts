/**
 * Siagh (سیاق) protocol client (docs/siagh-api.md): login, contacts (GetAll, form 2BFDA) and sales
 * pre-invoices (form 43D81).
 *
 * Session: one per client, shared by every caller; at most one login in flight. The session id
 * is sent raw in `Authorization` (no Bearer) and never leaves this class (not in messages, not in
 * getters, not visible to util.inspect). An expired session (HTTP 401/403, or an Errors[] entry
 * about the session, docs/open-questions.md#session-expiry) is renewed and the call repeated; a refusal right after a login of the
 * call's own is SIAGH_SESSION_EXPIRED (see `authed`).
 *
 * Writes and ambiguity: a timeout, dropped connection, 5xx or broken reply after a save leaves its
 * outcome unknown.
 * - contact create: never sent again. A timeout or a dropped connection does not tell whether the
 *   request reached Siagh, and the first request may still be running there (a slow save), so a
 *   second one could create the contact twice. The contact index is downloaded again and searched
 *   for the same mobile or national code; found → that Code is returned; not found →
 *   AMBIGUOUS_CREATE (ambiguous: true): the operator, or the sync queue's ambiguous handling,
 *   checks Siagh before anything is sent again. Failures where the request surely never arrived
 *   (connection refused, DNS, 429) are retried by HttpCore as before.
 * - contact update: idempotent, repeated like a read.
 * - pre-invoice: Siagh cannot be queried for pre-invoices, so by default (`ambiguousPreInvoice:
 *   'fail'`) the call fails with AMBIGUOUS_CREATE and the operator checks Siagh; with `'repeat'`
 *   it is sent once more with the same `_In_Suid` (useful only if Siagh de-duplicates on it,
 *   docs/open-questions.md#suid-dedup;
 *   an explicit opt-in of the operator, never the default).
 */
import { createHash } from 'node:crypto';
import { SyncError } from '../errors';
import { HttpCore, HttpOptions, HttpReply, HttpRequest } from '../http/http-core';
import { SingleFlight } from '../http/limiter';
import type { ConnectionState, PreInvoiceInput, PreInvoiceSaveResult, SiaghContact, SiaghContactSaveResult, SiaghFieldList, SiaghSessionInfo } from '../types';
import { ContactIndex } from './contact-index';
import { encodeSegments, encodeValue } from './ctrl-values';
import { fieldValue } from './fields';
import { extractDocumentNumber, isSessionExpiredReply, readSaveReply, SaveKind, SaveReading } from './reply';
import { GetAllReplySchema, LoginReplySchema, parseReply, SaveReplySchema, toSiaghContact } from './schemas';

export const LOGIN_PATH = '/GeneralApi/LoginUser';
export const GETALL_PATH = '/api/Sgh/GEN/Gn_Web_Users/GetAll';
export const SAVE_PATH_BPMS = '/BpmsApi/SaveFormData';
export const SAVE_PATH_GENERAL = '/GeneralApi/SaveFormData';
export const CONTACT_FORM = '2BFDA';
export const PRE_INVOICE_FORM = '43D81';

export interface SiaghClientOptions extends Omit<HttpOptions, 'baseUrl'> {
  baseUrl: string;
  username: string;
  /** Plain password, or its 32-hex MD5 (as the old SiaghSync .env stored it). */
  password: string;
  /** Default '/BpmsApi/SaveFormData' (what the real server answered); '/GeneralApi/SaveFormData' is the documented alternative. */
  saveFormDataPath?: string;
  /** Age (ms) after which the contact index is downloaded again. Default 600 000. */
  contactIndexMaxAgeMs?: number;
  /** What a pre-invoice save with an unknown outcome does: 'fail' (default) or 'repeat' with the same suid. */
  ambiguousPreInvoice?: 'fail' | 'repeat';
}

/** Which CRM values identify a contact when checking whether an ambiguous create happened. */
export interface ContactMatch {
  mobile?: string;
  nationalCode?: string;
}

interface Session {
  id: string;
  info: SiaghSessionInfo;
}

/** Upper-case hex MD5 of the password; a value that already is 32 hex chars is sent upper-cased as is. */
export function siaghPasswordHash(password: string): string {
  if (/^[0-9a-fA-F]{32}$/.test(password)) return password.toUpperCase();
  return createHash('md5').update(password, 'utf8').digest('hex').toUpperCase();
}

/**
 * `_In_Suid` for a CRM document: 32 upper-case hex (SHA-256 of the id and salt, truncated), the
 * format of the official sample. The same id always gives the same suid, so a repeat carries it (docs/open-questions.md#suid-dedup).
 */
export function suidFromId(crmId: string, salt = ''): string {
  if (typeof crmId !== 'string' || crmId.trim() === '') throw new SyncError('BAD_INPUT', 'A pre-invoice suid needs the CRM document id.');
  return createHash('sha256').update(`${salt}\u0000${crmId.trim().toLowerCase()}`, 'utf8').digest('hex').slice(0, 32).toUpperCase();
}

/** The grid row id of row `index`: 8 lower-case hex derived from the suid (official sample `f1bb740d`). */
export function rowUid(suid: string, index: number): string {
  return createHash('sha256').update(`${suid}:${index}`, 'utf8').digest('hex').slice(0, 8);
}

const FIXED_ROW_COLUMNS: Readonly<Record<string, true>> = Object.freeze({ __uid: true, _status: true, codekala: true, nameunit: true, qty: true, mabtakhfif: true, vazn: true, hajm: true, price: true, radif: true, finalqty: true, takhfif: true, sumamelinc: true, sumameldec: true });

/** The double-encoded `dataRows` of a pre-invoice (docs/siagh-api.md#form-43d81-sales-pre-invoice). */
export function preInvoiceDataRows(input: PreInvoiceInput): string {
  const data = input.rows.map((r, i) => {
    const uid = rowUid(input.suid, i);
    const cell = (v: unknown) => ({ oldValue: null, newValue: v });
    return {
      __uid: { oldValue: uid, newValue: uid },
      _status: { oldValue: 'inserted', newValue: 'inserted' },
      codekala: cell(encodeValue(r.itemCode)),
      nameunit: cell(encodeValue(r.unitName)),
      qty: cell(r.qty),
      mabtakhfif: cell(r.discount ?? 0),
      vazn: cell('0'),
      hajm: cell('0'),
      price: cell(r.price),
      radif: cell(String(i + 1)),
      finalqty: cell(r.qty),
      takhfif: cell(null),
      sumamelinc: cell(null),
      sumameldec: cell(null),
      // Columns a setting adds (the row's VAT); never one of the columns above.
      ...Object.fromEntries(Object.entries(r.extra ?? {}).filter(([k]) => !(k in FIXED_ROW_COLUMNS)).map(([k, v]) => [k, cell(typeof v === 'string' ? encodeValue(v) : v)])),
    };
  });
  return JSON.stringify([{ name: 'dbgrid1', entity: 'sl_rizsanad', keyField: 'coderiz', data }]);
}

export class SiaghClient {
  readonly contacts: ContactIndex;
  private readonly core: HttpCore;
  private readonly username: string;
  private readonly passwordHash: string;
  private readonly savePath: string;
  private readonly ambiguousPreInvoice: 'fail' | 'repeat';
  private readonly loginFlight = new SingleFlight<Session>();
  #session: Session | undefined;
  private logins = 0;

  constructor(opts: SiaghClientOptions) {
    if (!opts || typeof opts.username !== 'string' || opts.username.trim() === '') {
      throw new SyncError('CONFIG', 'The Siagh user name is missing. Enter it in the Siagh config node.');
    }
    if (typeof opts.password !== 'string' || opts.password === '') {
      throw new SyncError('CONFIG', 'The Siagh password is missing. Enter it (plain or its MD5 hash) in the Siagh config node.');
    }
    const savePath = opts.saveFormDataPath ?? SAVE_PATH_BPMS;
    if (!/^\/[A-Za-z0-9_\-/.]+$/.test(savePath)) {
      throw new SyncError('CONFIG', `The SaveFormData path "${savePath}" is not a valid path. Use ${SAVE_PATH_BPMS} or ${SAVE_PATH_GENERAL}.`);
    }
    const { username, password, saveFormDataPath: _s, contactIndexMaxAgeMs, ambiguousPreInvoice, ...http } = opts;
    void _s;
    this.core = new HttpCore(http);
    this.username = username.trim();
    this.passwordHash = siaghPasswordHash(password);
    this.savePath = savePath;
    this.ambiguousPreInvoice = ambiguousPreInvoice ?? 'fail';
    this.contacts = new ContactIndex(() => this.getAllContacts(), { maxAgeMs: contactIndexMaxAgeMs ?? 600_000 });
  }

  /** The transport (request counters: `http.sent`). */
  get http(): HttpCore {
    return this.core;
  }

  /** What the last login said (user, branch, fiscal year); undefined before the first login. */
  get sessionInfo(): SiaghSessionInfo | undefined {
    return this.#session ? { ...this.#session.info } : undefined;
  }

  /** The session for the operator's console: login time and age, never the session id. */
  connectionState(now = Date.now()): ConnectionState & { contacts: number; contactsLoadedAt?: string } {
    const info = this.#session?.info;
    const loaded = this.contacts.loadedAt;
    return {
      system: 'siagh',
      loggedIn: info !== undefined,
      ...(info ? { lastLoginAt: new Date(info.loggedInAt).toISOString(), sessionAgeMs: Math.max(0, now - info.loggedInAt) } : {}),
      logins: this.logins,
      contacts: this.contacts.size,
      ...(loaded !== undefined ? { contactsLoadedAt: new Date(loaded).toISOString() } : {}),
    };
  }

  /** Logins performed by this client. */
  get loginCount(): number {
    return this.logins;
  }

  close(): void {
    this.core.close();
    this.#session = undefined;
  }

  // ---------------- session ----------------

  /** Log in (sharing a login already in flight) and return the session facts. */
  async login(): Promise<SiaghSessionInfo> {
    const s = await this.loginFlight.run(() => this.doLogin());
    return { ...s.info };
  }

  private async session(): Promise<Session> {
    return this.#session ?? this.loginFlight.run(() => this.doLogin());
  }

  /** The session `stale` was refused: drop it (unless someone already renewed it) and log in again. */
  private async renew(stale: Session): Promise<Session> {
    if (this.#session && this.#session !== stale) return this.#session;
    if (this.#session === stale) this.#session = undefined;
    return this.loginFlight.run(() => this.doLogin());
  }

  private async doLogin(): Promise<Session> {
    this.logins++;
    const reply = await this.core.send({
      method: 'POST',
      path: LOGIN_PATH,
      data: { UserName: this.username, Password: this.passwordHash },
      idempotent: true,
      // A 401 with an IIS error page is still a refused login.
      lenientErrorBody: true,
    });
    const failed = (why: string, details: string[] = []) =>
      new SyncError(
        'SIAGH_LOGIN_FAILED',
        `Siagh refused the login of user "${this.username}" (${why}). Check the user name and password in the Siagh config node; the password may be given plain or as its MD5 hash.`,
        { status: reply.status, path: LOGIN_PATH, details },
      );
    const d = reply.data as Record<string, unknown> | undefined;
    if (reply.status === 401 || reply.status === 403) {
      throw failed(`HTTP ${reply.status}`, typeof d?.Message === 'string' ? [d.Message] : []);
    }
    if (reply.status >= 400) {
      throw new SyncError('HTTP_ERROR', `Siagh answered the login with HTTP ${reply.status}. Check the server URL (it must point at the Siagh web API root).`, {
        status: reply.status,
        path: LOGIN_PATH,
      });
    }
    if (d && typeof d === 'object' && !Array.isArray(d) && Array.isArray(d.Errors) && d.Errors.length > 0 && !(typeof d.SessionId === 'string' && d.SessionId.trim())) {
      const details = (d.Errors as Array<{ Description?: unknown }>).map((e) => String(e?.Description ?? '')).filter(Boolean);
      throw failed('the reply lists errors', details);
    }
    if (!d || typeof d !== 'object' || Array.isArray(d) || typeof d.SessionId !== 'string' || d.SessionId.trim() === '') {
      throw failed('the reply carries no session id');
    }
    const r = parseReply(LoginReplySchema, d, { what: 'the login reply', path: LOGIN_PATH, status: reply.status });
    const session: Session = {
      id: r.SessionId,
      info: {
        userName: r.UserName ?? this.username,
        branchName: r.BranchName ?? '',
        ...(r.BranchCode != null ? { branchCode: r.BranchCode } : {}),
        fiscalYear: r.FiscalYear,
        ...(r.SystemDate ? { systemDate: r.SystemDate } : {}),
        loggedInAt: Date.now(),
      },
    };
    this.#session = session;
    return session;
  }

  /**
   * Send with the session header; on an expired session renew it and send once more (the server
   * refused the request, so repeating it is safe even for a write). A request that waited in the
   * queue with a session another call has renewed since gets that newer session; if that one was
   * refused too (expired again meanwhile), it logs in itself. A refusal right after a login of its
   * own — or a third refusal — is SIAGH_SESSION_EXPIRED.
   */
  private async authed(req: Omit<HttpRequest, 'headers'>): Promise<HttpReply> {
    let session = await this.session();
    let fresh = false;
    for (let attempt = 0; ; attempt++) {
      // lenientErrorBody: a 401/403 with an HTML page is still an expired session.
      const reply = await this.core.send({ ...req, headers: { Authorization: session.id }, lenientErrorBody: true });
      if (!isSessionExpiredReply(reply.status, reply.data)) return reply;
      if (fresh || attempt >= 2) {
        const d = reply.data as { Errors?: Array<{ Description?: unknown }> } | undefined;
        const details = Array.isArray(d?.Errors) ? d.Errors.map((e) => String(e?.Description ?? '')).filter(Boolean) : [];
        throw new SyncError(
          'SIAGH_SESSION_EXPIRED',
          `Siagh refused the session again right after a new login (${reply.status === 200 ? 'error text in the reply' : `HTTP ${reply.status}`}) on ${req.path}. Check that user "${this.username}" may use this API and that Siagh is not logging sessions out; then try again.`,
          { status: reply.status, path: req.path, details },
        );
      }
      const logins = this.logins;
      session = await this.renew(session);
      fresh = this.logins > logins;
    }
  }

  private httpError(reply: HttpReply, path: string, what: string): SyncError {
    const hint =
      reply.status === 404 && path === this.savePath
        ? ` The SaveFormData path may differ on this server: try ${path === SAVE_PATH_BPMS ? SAVE_PATH_GENERAL : SAVE_PATH_BPMS} in the Siagh config node.`
        : reply.status === 404
          ? ' Check the server URL.'
          : '';
    const d = reply.data as { Message?: unknown } | undefined;
    return new SyncError('HTTP_ERROR', `Siagh answered ${what} with HTTP ${reply.status}.${hint}`, {
      status: reply.status,
      path,
      details: typeof d?.Message === 'string' ? [d.Message] : [],
    });
  }

  // ---------------- contacts ----------------

  /** Every contact (GET GetAll: one array, no paging). Retried on 5xx / 429 / network errors. */
  async getAllContacts(): Promise<SiaghContact[]> {
    const reply = await this.authed({ method: 'GET', path: GETALL_PATH, idempotent: true });
    if (reply.status >= 400) throw this.httpError(reply, GETALL_PATH, 'the contact list request');
    const d = reply.data;
    if (d && typeof d === 'object' && !Array.isArray(d) && Array.isArray((d as { Errors?: unknown }).Errors)) {
      // An error object instead of the list.
      const r = parseReply(SaveReplySchema, d, { what: 'the contact list', path: GETALL_PATH, status: reply.status });
      readSaveReply({ ...r, ReturnValue: false }, 'contact-list', GETALL_PATH);
    }
    return parseReply(GetAllReplySchema, d, { what: 'the contact list (GetAll)', path: GETALL_PATH, status: reply.status }).map(toSiaghContact);
  }

  private async saveForm(envelope: Record<string, string>, kind: SaveKind, idempotent: boolean): Promise<SaveReading> {
    const reply = await this.authed({ method: 'POST', path: this.savePath, data: envelope, idempotent });
    if (reply.status >= 400) throw this.httpError(reply, this.savePath, `the ${envelope.formId} form save`);
    const r = parseReply(SaveReplySchema, reply.data, { what: `the ${envelope.formId} save reply`, path: this.savePath, status: reply.status, write: !idempotent });
    return readSaveReply(r, kind, this.savePath);
  }

  private contactEnvelope(ctrl: Array<readonly [string, unknown]>, codeMain: string): Record<string, string> {
    return {
      formId: CONTACT_FORM,
      ctrlValues: encodeSegments(ctrl),
      parameters: encodeSegments([['CodeMain', codeMain]]),
      dataRows: '[]',
      attachments: '[]',
      postCode: '1110',
      flowId: '',
    };
  }

  /**
   * Create a contact from form fields (`gn_web_users.<column>` keys): sent once. After a failure of
   * unknown outcome, the contact list is downloaded and searched by mobile / national code (from
   * `match`, else from the fields); not found → AMBIGUOUS_CREATE, never a second create.
   */
  async createContact(fields: SiaghFieldList, match?: ContactMatch): Promise<SiaghContactSaveResult> {
    const envelope = this.contactEnvelope([['NickName', 'dbgrid1.#nickname#'], ...fields], '');
    const mobile = match?.mobile ?? fieldValue(fields, 'mobileno');
    const nationalCode = match?.nationalCode ?? fieldValue(fields, 'passno');
    let lastError: SyncError;
    try {
      const reading = await this.saveForm(envelope, 'contact-create', false);
      const code = parseCode(reading.returnCode);
      if (code !== undefined) {
        this.contacts.noteWritten(code, fields);
        return { code, notes: reading.notes };
      }
      lastError = new SyncError('BAD_REPLY', 'Siagh reported the contact as saved but sent no contact code (ReturnCode).', {
        path: this.savePath,
        ambiguous: true,
      });
    } catch (e) {
      if (!(e instanceof SyncError) || !e.ambiguous) throw e;
      lastError = e;
    }
    // Outcome unknown: look, and never send again (the first request may still be running).
    const ambiguous = (message: string) =>
      new SyncError('AMBIGUOUS_CREATE', message, { ambiguous: true, path: this.savePath, status: lastError.status, cause: lastError, details: lastError.details });
    if (!mobile?.trim() && !nationalCode?.trim()) {
      throw ambiguous(
        `Creating a Siagh contact failed in a way that leaves its outcome unknown (${lastError.message}), and the record has no mobile or national code to look it up by. Check Siagh for the contact "${fieldValue(fields, 'fullname') ?? ''}" before replaying the message.`,
      );
    }
    try {
      await this.contacts.refresh();
    } catch (e) {
      throw ambiguous(
        `Creating a Siagh contact failed in a way that leaves its outcome unknown (${lastError.message}), and the contact list could not be read to check it (${e instanceof Error ? e.message : String(e)}). Check Siagh for a contact with this mobile / national code before replaying the message.`,
      );
    }
    // The newest contact with the same mobile or national code (Codes only grow).
    const candidates = [...(mobile ? this.contacts.allByMobile(mobile) : []), ...(nationalCode ? this.contacts.allByNationalCode(nationalCode) : [])];
    const found = candidates.reduce<SiaghContact | undefined>((best, c) => (!best || c.Code > best.Code ? c : best), undefined);
    if (found) {
      const by = mobile && this.contacts.allByMobile(mobile).includes(found) ? 'mobile' : 'national code';
      return { code: found.Code, notes: [`recovered after ambiguous failure: the contact was found in Siagh by ${by} with code ${found.Code} (${lastError.code})`] };
    }
    throw ambiguous(
      `Creating a Siagh contact failed with an unknown outcome (${lastError.message}) and the contact was not found (yet) by its mobile or national code; it was not sent again, because the first request may still be running in Siagh. Check Siagh before replaying the message.`,
    );
  }

  /**
   * Update contact `code` with the fields given (only those; Siagh may blank fields sent empty).
   * Idempotent: retried like a read. A different ReturnCode is reported in notes, never followed.
   */
  async updateContact(code: number, fields: SiaghFieldList): Promise<SiaghContactSaveResult> {
    if (!Number.isSafeInteger(code) || code <= 0) throw new SyncError('BAD_INPUT', `"${code}" is not a Siagh contact code (a positive whole number).`);
    const envelope = this.contactEnvelope([['Param1', code], ...fields], String(code));
    const reading = await this.saveForm(envelope, 'contact-update', true);
    const notes = [...reading.notes];
    const returned = parseCode(reading.returnCode);
    if (returned !== undefined && returned !== code) {
      notes.push(`Siagh answered the update of contact ${code} with a different code (${returned}); the mapping was kept on ${code}. Check Siagh for a duplicate contact ${returned}.`);
    }
    this.contacts.noteWritten(code, fields);
    return { code, notes };
  }

  // ---------------- pre-invoices ----------------

  /** Save a sales pre-invoice (form 43D81). */
  async createPreInvoice(input: PreInvoiceInput): Promise<PreInvoiceSaveResult> {
    if (!input || typeof input.suid !== 'string' || !/^[0-9A-Fa-f-]{32,36}$/.test(input.suid)) {
      throw new SyncError('BAD_INPUT', 'The pre-invoice needs a suid of 32 hex characters (use suidFromId(crmId)).');
    }
    if (!Array.isArray(input.rows) || input.rows.length === 0) {
      throw new SyncError('BAD_INPUT', 'The pre-invoice has no rows; Siagh needs at least one item row.');
    }
    const header = input.header.map(([k, v]) => [k.toLowerCase().startsWith('sl_sanad.') ? k : `sl_sanad.${k}`, v] as const);
    const envelope: Record<string, string> = {
      formId: PRE_INVOICE_FORM,
      ctrlValues: encodeSegments(header),
      parameters: encodeSegments([
        ['_In_EditKeys', ''],
        ['_In_Suid', input.suid],
        ['nocheck', ''],
      ]),
      dataRows: preInvoiceDataRows(input),
      attachments: '[]',
      postCode: '1110',
      flowId: '',
    };
    let reading: SaveReading;
    try {
      reading = await this.saveForm(envelope, 'pre-invoice', false);
    } catch (e) {
      if (!(e instanceof SyncError) || !e.ambiguous) throw e;
      if (this.ambiguousPreInvoice !== 'repeat') throw ambiguousPreInvoiceError(input.suid, e, this.savePath);
      try {
        reading = await this.saveForm(envelope, 'pre-invoice', false);
      } catch (e2) {
        if (e2 instanceof SyncError && e2.ambiguous) throw ambiguousPreInvoiceError(input.suid, e2, this.savePath);
        throw e2;
      }
      reading = { ...reading, notes: [...reading.notes, `sent twice with the same suid after an unknown outcome (${e.code})`] };
    }
    const documentNumber = extractDocumentNumber([...reading.finalMessages, ...reading.successTexts]);
    return {
      ...(documentNumber !== undefined ? { documentNumber } : {}),
      returnCode: reading.returnCode,
      returnParams: reading.returnParams,
      notes: reading.notes,
    };
  }
}

function ambiguousPreInvoiceError(suid: string, e: SyncError, path: string): SyncError {
  return new SyncError(
    'AMBIGUOUS_CREATE',
    `Saving the sales pre-invoice failed in a way that leaves its outcome unknown (${e.message}). Siagh cannot be asked whether it exists: look for it in Siagh (suid ${suid}) before replaying the message, or the pre-invoice may be created twice.`,
    { ambiguous: true, path, status: e.status, cause: e, details: e.details },
  );
}

function parseCode(s: string): number | undefined {
  const t = s.trim();
  if (!/^\d+$/.test(t)) return undefined;
  const n = Number(t);
  return Number.isSafeInteger(n) && n > 0 ? n : undefined;
}
