/**
 * Client of the Payamgostar CRM REST API v2 (docs/crm-api.md).
 *
 * - Every call is a POST with a JSON body and `Authorization: Bearer <accessToken>`.
 * - Login (`/api/v2/auth/login`) is done lazily, once at a time (single flight), and the token is
 *   reused until `expiresAt - tokenSkewMs` (docs/known-faults.md#crm-token). A 401 on any other call drops the token, logs in
 *   again once and repeats the call once (a 401 means the server did not act on it).
 * - Login failures never loop: 401 (bad credentials), 402 (mobile-app module missing) and 403 (too
 *   many attempts) are reported at once, and after a 401 or 403 no further login is attempted for a
 *   cool-down, so a busy flow cannot turn a wrong password into a lock-out.
 * - Identity search pages from 0 until an EMPTY page (docs/known-faults.md#paging), never stopping on a short page, so a
 *   server-side page-size cap cannot hide identities.
 * - A person/organization create is never blindly repeated after an ambiguous failure (timeout,
 *   dropped connection, 5xx): the CRM is first searched for the customer number.
 */
import { SyncError, isSyncError } from '../errors';
import { HttpCore, HttpOptions, HttpReply } from '../http/http-core';
import { SingleFlight, sleep } from '../http/limiter';
import { toAsciiDigits } from '../text/normalize';
import type { CrmIdentity, CrmIdentitySummary, CrmIdentityWrite, CrmQuote, IdentityKind } from '../types';
import {
  identityGetSchema,
  kindFromRecord,
  parseIdentity,
  parseIdentitySearch,
  parseLoginReply,
  parseQuote,
  parseReply,
  parseWriteReply,
} from './schemas';

export const CRM_PATHS = {
  login: '/api/v2/auth/login',
  search: '/api/v2/crmobject/identity/search',
  personGet: '/api/v2/crmobject/person/get',
  personCreate: '/api/v2/crmobject/person/create',
  personUpdate: '/api/v2/crmobject/person/update',
  organizationGet: '/api/v2/crmobject/organization/get',
  organizationCreate: '/api/v2/crmobject/organization/create',
  organizationUpdate: '/api/v2/crmobject/organization/update',
  personFind: '/api/v2/crmobject/person/find',
  organizationFind: '/api/v2/crmobject/organization/find',
  quoteGet: '/api/v2/crmobject/quote/sales/get',
  invoiceGet: '/api/v2/crmobject/invoice/sales/get',
  quoteFind: '/api/v2/crmobject/quote/sales/find',
  invoiceFind: '/api/v2/crmobject/invoice/sales/find',
} as const;

export interface CrmClientOptions extends HttpOptions {
  username: string;
  password: string;
  /** Sent at login. Default 'node-red-siagh-sync'. */
  deviceId?: string;
  /** Log in again this long before `expiresAt`. Default 60 000 ms. */
  tokenSkewMs?: number;
  /** Page size asked of identity/search. Default 200 (the server may cap it lower). */
  searchPageSize?: number;
  /** After a 403 (too many login attempts) no login is attempted for this long. Default 15 min. */
  loginCooldownMs?: number;
  /** After a 401 at login (wrong user name or password) no login is attempted for this long. Default 5 min. */
  badCredentialsCooldownMs?: number;
  /**
   * After an ambiguous create failure, wait this long before searching the CRM for the customer
   * number (a timed-out request may still be running on the server). Default 1 000 ms.
   */
  createCheckDelayMs?: number;
  /** Safety stop for a search that never reaches an empty page. Default 100 000 pages. */
  maxSearchPages?: number;
}

export interface IdentitySearchOptions {
  searchTerm?: string;
  /** 1 / 'person' = persons, 2 / 'organization' = organizations; all when absent. */
  identityType?: IdentityKind | 1 | 2;
  pageSize?: number;
}

/**
 * Comparison operators of person/find and organization/find (docs/crm-api.md#person-and-organization, from the
 * vendor's C# client; 3 is not defined there).
 */
export const CRM_FIND_OPERATORS = { equals: 0, greaterThan: 1, greaterOrEqual: 2, lessThan: 4, lessOrEqual: 5, notEqual: 6 } as const;
export type CrmFindOperator = (typeof CRM_FIND_OPERATORS)[keyof typeof CRM_FIND_OPERATORS];

/** One condition of a find; several are ANDed. */
export interface CrmFindQuery {
  field: string;
  operator: CrmFindOperator;
  value: string | number | boolean | null;
}

export interface IdentityFindOptions {
  /** Conditions, ANDed. None = every record of the kind. */
  queries?: CrmFindQuery[];
  /** Page size asked (the server may cap it). Default: the client's searchPageSize. */
  pageSize?: number;
}

/** Sales documents listed by quote/sales/find and invoice/sales/find. */
export type CrmDocKind = 'quote' | 'invoice';
/** What a find lists: person/find, organization/find, quote/sales/find, invoice/sales/find. */
export type CrmFindKind = IdentityKind | CrmDocKind;

/** A row of a find reply, reduced to what a poller needs (the full row is in `raw`). */
export interface CrmFindRow {
  id: string;
  kind: CrmFindKind;
  /** As the CRM wrote it (local time without offset), when the row carries it. */
  modifyDate?: string;
  raw: Record<string, unknown>;
}

export interface CrmFindPage {
  pageNumber: number;
  /** `total` of the reply (all matches, not this page), when given. */
  total?: number;
  rows: CrmFindRow[];
}

export interface FindByCustomerNumberOptions {
  identityType?: IdentityKind | 1 | 2;
  /**
   * When the search by term finds no exact match, page through every identity as well (the
   * server's search may not look at customer numbers, docs/open-questions.md#crm-errors-and-paging). Costly: meant for rare checks.
   */
  fullScanOnMiss?: boolean;
}

export interface CrmSessionInfo {
  loggedIn: boolean;
  /** `expiresAt` as the CRM wrote it. */
  expiresAt?: string;
  /** When the client will log in again (ms since the epoch). */
  refreshAt?: number;
  /** No login is attempted before this time (ms since the epoch), after a 401/403 at login. */
  loginBlockedUntil?: number;
  logins: number;
}

interface Session {
  token: string;
  expiresAtText: string;
  refreshAt: number;
}

/** Server texts meaning "no such record" (English, Persian; Arabic yeh tolerated). */
const NOT_FOUND_RE = /not\s*found|not\s*exist|doesn'?t\s*exist|یافت\s*نشد|يافت\s*نشد|وجود\s*ندارد|وجود\s*نداره|پیدا\s*نشد/i;
/** A 404 that is about the route, not the record: the URL or the CRM version is wrong. */
const ROUTE_MISS_RE = /no\s+http\s+resource|no\s+route|no\s+action\s+was\s+found|endpoint/i;
/** Lifetime used when the login reply's expiry is already past by our clock (clock trouble). */
const MIN_TOKEN_REUSE_MS = 60_000;

export class CrmClient {
  readonly http: HttpCore;
  private readonly username: string;
  private readonly password: string;
  private readonly deviceId: string;
  private readonly skewMs: number;
  private readonly pageSize: number;
  private readonly loginCooldownMs: number;
  private readonly badCredentialsCooldownMs: number;
  private readonly createCheckDelayMs: number;
  private readonly maxSearchPages: number;
  private session?: Session;
  private readonly loginFlight = new SingleFlight<string>();
  private blocked?: { until: number; code: 'CRM_LOCKED_OUT' | 'CRM_BAD_CREDENTIALS'; status: number; details: string[] };
  private logins = 0;

  constructor(options: CrmClientOptions) {
    if (!options.username) throw new SyncError('CONFIG', 'The CRM user name is empty. Enter the API user in the CRM config node.');
    if (!options.password) throw new SyncError('CONFIG', 'The CRM password is empty. Enter it in the CRM config node.');
    this.http = new HttpCore(options);
    this.username = options.username;
    this.password = options.password;
    this.deviceId = options.deviceId || 'node-red-siagh-sync';
    this.skewMs = Math.max(0, options.tokenSkewMs ?? 60_000);
    this.pageSize = positiveInt(options.searchPageSize, 200, 'searchPageSize');
    this.loginCooldownMs = Math.max(0, options.loginCooldownMs ?? 15 * 60_000);
    this.badCredentialsCooldownMs = Math.max(0, options.badCredentialsCooldownMs ?? 5 * 60_000);
    this.createCheckDelayMs = Math.max(0, options.createCheckDelayMs ?? 1000);
    this.maxSearchPages = positiveInt(options.maxSearchPages, 100_000, 'maxSearchPages');
  }

  /** Stop: abort calls in flight, forget the token. */
  close(): void {
    this.session = undefined;
    this.http.close();
  }

  /** The token state for a status display (never the token itself). */
  sessionInfo(): CrmSessionInfo {
    const b = this.blocked && this.blocked.until > Date.now() ? this.blocked.until : undefined;
    return {
      loggedIn: this.session !== undefined,
      expiresAt: this.session?.expiresAtText,
      refreshAt: this.session?.refreshAt,
      loginBlockedUntil: b,
      logins: this.logins,
    };
  }

  // ---------------------------------------------------------------- login

  /** Log in now (normally done lazily). Resolves when a valid token is held. */
  async login(): Promise<void> {
    await this.token(true);
  }

  private async token(force = false): Promise<string> {
    const s = this.session;
    if (!force && s && Date.now() < s.refreshAt) return s.token;
    return this.loginFlight.run(() => this.doLogin());
  }

  /** Forget `token` if it is still the current one (a 401 seen by several calls drops it once). */
  private dropToken(token: string): void {
    if (this.session?.token === token) this.session = undefined;
  }

  private async doLogin(): Promise<string> {
    const path = CRM_PATHS.login;
    const before = Date.now();
    if (this.blocked && before < this.blocked.until) throw this.blockedError(before);
    this.blocked = undefined;
    this.logins++;
    // Idempotent: HttpCore retries network errors, timeouts, 5xx and 429 — never a 401/402/403,
    // which come back as replies and are handled below without any repeat.
    const r = await this.http.send({
      method: 'POST',
      path,
      idempotent: true,
      lenientErrorBody: true,
      data: {
        username: this.username,
        password: this.password,
        deviceId: this.deviceId,
        platformType: 1,
        os: 'Linux',
        osVersion: '1.0',
        token: '',
      },
    });
    const now = Date.now();
    const msg = serverMessage(r.data, r.text);
    const details = msg ? [msg] : [];
    if (r.status >= 200 && r.status < 300) {
      const reply = parseLoginReply(r.data, path);
      this.session = {
        token: reply.accessToken,
        expiresAtText: reply.expiresAtText,
        refreshAt: this.refreshTime(reply.expiresAtMs, now, r.headers['date']),
      };
      return reply.accessToken;
    }
    this.session = undefined;
    if (r.status === 401) {
      this.blocked = { until: now + this.badCredentialsCooldownMs, code: 'CRM_BAD_CREDENTIALS', status: 401, details };
      throw new SyncError(
        'CRM_BAD_CREDENTIALS',
        `The CRM rejected the user name or password of the API user "${this.username}" (HTTP 401 at ${path}). ` +
          `Correct them in the CRM config node and deploy. To avoid a lock-out, no further login is attempted for ${duration(this.badCredentialsCooldownMs)}.`,
        { status: 401, path, details },
      );
    }
    if (r.status === 402) {
      throw new SyncError(
        'CRM_MODULE_MISSING',
        `The CRM refused the login with HTTP 402: the CRM lacks the mobile-app module needed by the v2 API. ` +
          'Ask the CRM vendor/administrator to license and enable the mobile-app (MobileApp) module; nothing can be synced until then.',
        { status: 402, path, details },
      );
    }
    if (r.status === 403) {
      this.blocked = { until: now + this.loginCooldownMs, code: 'CRM_LOCKED_OUT', status: 403, details };
      throw new SyncError(
        'CRM_LOCKED_OUT',
        `The CRM locked the API user "${this.username}" out after too many login attempts (HTTP 403). ` +
          `Wait 15–30 minutes and check that no other program logs in with a wrong password; no further login is attempted for ${duration(this.loginCooldownMs)}.`,
        // retryAfterSec: the cool-down, so a retry queue waits it out instead of knocking again.
        { status: 403, path, details, retryAfterSec: Math.ceil(this.loginCooldownMs / 1000) },
      );
    }
    if (r.status >= 300 && r.status < 400) {
      throw new SyncError(
        'CRM_LOGIN_FAILED',
        `The CRM login answered HTTP ${r.status} (a redirect${typeof r.headers['location'] === 'string' ? ` to ${r.headers['location']}` : ''}). Check the CRM URL (http vs https, host, no path after the host).`,
        { status: r.status, path, details },
      );
    }
    throw new SyncError(
      'CRM_LOGIN_FAILED',
      `The CRM login failed with HTTP ${r.status}${msg ? `: ${msg}` : ''}. Check the CRM URL and the API user's settings.`,
      { status: r.status, path, details },
    );
  }

  private blockedError(now: number): SyncError {
    const b = this.blocked!;
    const left = duration(b.until - now);
    if (b.code === 'CRM_LOCKED_OUT') {
      return new SyncError(
        'CRM_LOCKED_OUT',
        `The CRM locked the API user "${this.username}" out after too many login attempts (HTTP 403). Wait 15–30 minutes; no further login is attempted for ${left}.`,
        { status: b.status, path: CRM_PATHS.login, details: b.details, retryAfterSec: Math.max(1, Math.ceil((b.until - now) / 1000)) },
      );
    }
    return new SyncError(
      'CRM_BAD_CREDENTIALS',
      `The CRM rejected the user name or password of the API user "${this.username}" (HTTP 401). Correct them in the CRM config node and deploy; no further login is attempted for ${left}, to avoid a lock-out.`,
      { status: b.status, path: CRM_PATHS.login, details: b.details },
    );
  }

  /**
   * When to log in again. The expiry is read on the server's clock; when the server's `Date`
   * header shows our clocks differ by more than 5 s, the difference is corrected, so a skewed
   * clock can neither make us use expired tokens nor log in on every call.
   */
  private refreshTime(expiresAtMs: number, now: number, dateHeader: unknown): number {
    let offset = 0;
    if (typeof dateHeader === 'string') {
      const serverNow = Date.parse(dateHeader);
      if (Number.isFinite(serverNow) && Math.abs(serverNow - now) > 5000) offset = serverNow - now;
    }
    const lifetime = expiresAtMs - offset - now;
    let useFor = lifetime - this.skewMs;
    if (useFor <= 0) useFor = lifetime > 0 ? lifetime / 2 : MIN_TOKEN_REUSE_MS;
    return now + useFor;
  }

  // ---------------------------------------------------------------- transport

  /**
   * POST with the bearer token; on 401 log in again and repeat (see below). Not-found replies with
   * status ≥ 500 are returned (not retried) so the caller can name them.
   */
  private async post(path: string, body: unknown, idempotent: boolean): Promise<HttpReply> {
    const send = (token: string) =>
      this.http.send({
        method: 'POST',
        path,
        data: body,
        idempotent,
        headers: { Authorization: `Bearer ${token}` },
        finalIf: (_status, text) => looksNotFound(text),
        lenientErrorBody: true,
      });
    let token = await this.token();
    let r = await send(token);
    // A 401: drop the token and repeat with a new one. The new one may be another call's renewal,
    // which can have expired again meanwhile (the request waited in the queue): then this call
    // logs in itself. A 401 right after a login of its own (or a third 401) is final.
    for (let round = 0; r.status === 401 && round < 2; round++) {
      this.dropToken(token);
      const logins = this.logins;
      token = await this.token();
      const fresh = this.logins > logins;
      r = await send(token);
      if (fresh) break;
    }
    if (r.status === 401) {
      throw new SyncError(
        'CRM_ERROR',
        `The CRM refused a freshly issued token for ${path} (HTTP 401 twice). The API user may lack the right for this operation, or the CRM rejects tokens it has just issued; check the user's roles in the CRM.`,
        { status: 401, path, details: messageDetails(r) },
      );
    }
    return r;
  }

  /** A 2xx reply's data, or the right SyncError (CRM_NOT_FOUND when `notFoundOf` is given). */
  private expectOk(r: HttpReply, path: string, what: string, notFoundOf?: string): unknown {
    if (r.status >= 200 && r.status < 300) {
      if (notFoundOf && isEmptyBody(r.data)) throw notFound(notFoundOf, path, r.status, []);
      if (notFoundOf && r.data && typeof r.data === 'object' && !Array.isArray(r.data)) {
        const o = r.data as Record<string, unknown>;
        const msg = serverMessage(o, '');
        if ((o.crmId === undefined || o.crmId === null) && msg && NOT_FOUND_RE.test(msg)) throw notFound(notFoundOf, path, r.status, [msg]);
      }
      return r.data;
    }
    const msg = serverMessage(r.data, r.text);
    const details = msg ? [msg] : [];
    // An HTML 404 is a web-server page: the request never reached the API (wrong URL or version).
    const htmlPage = /^\s*</.test(r.text);
    if (notFoundOf) {
      if (r.status === 404 && !htmlPage && !(msg && ROUTE_MISS_RE.test(msg))) throw notFound(notFoundOf, path, r.status, details);
      if (r.status >= 400 && msg && NOT_FOUND_RE.test(msg) && !ROUTE_MISS_RE.test(msg)) throw notFound(notFoundOf, path, r.status, details);
    }
    if (r.status === 404) {
      throw new SyncError(
        'CRM_ERROR',
        `The CRM has no endpoint ${path} (HTTP 404${msg ? `: ${msg}` : ''}). Check the CRM URL and that the CRM offers the REST API v2.`,
        { status: 404, path, details },
      );
    }
    if (r.status === 403) {
      throw new SyncError(
        'CRM_ERROR',
        `The CRM refused ${what} (HTTP 403${msg ? `: ${msg}` : ''}). The API user lacks the permission; grant it in the CRM.`,
        { status: 403, path, details },
      );
    }
    throw new SyncError('CRM_ERROR', `The CRM refused ${what} with HTTP ${r.status}${msg ? `: ${msg}` : ' (no message)'}.`, {
      status: r.status,
      path,
      details,
    });
  }

  // ---------------------------------------------------------------- identity search

  /**
   * Pages of identity/search from page 0 until the CRM returns an empty page. A short page does
   * not end the search (the server may cap the page size:
   * docs/known-faults.md#paging, docs/open-questions.md#crm-errors-and-paging).
   */
  async *searchIdentities(opts: IdentitySearchOptions = {}): AsyncGenerator<CrmIdentitySummary[]> {
    const path = CRM_PATHS.search;
    const pageSize = positiveInt(opts.pageSize, this.pageSize, 'pageSize');
    const identityType = typeNumber(opts.identityType);
    let previous = '';
    for (let pageNumber = 0; ; pageNumber++) {
      if (pageNumber >= this.maxSearchPages) {
        throw new SyncError(
          'CRM_ERROR',
          `The CRM identity search did not end after ${this.maxSearchPages} pages (it never returned an empty page). The search was stopped; report this to the maintainers.`,
          { path },
        );
      }
      const body: Record<string, unknown> = { pageNumber, pageSize, searchTerm: opts.searchTerm ?? '' };
      if (identityType !== undefined) body.identityType = identityType;
      const r = await this.post(path, body, true);
      const data = this.expectOk(r, path, 'the identity search');
      if (data === undefined) {
        throw new SyncError('BAD_REPLY', `The CRM answered the identity search (page ${pageNumber}) with an empty body instead of a list. Try again; if it persists, report it.`, {
          path,
          retryable: true,
        });
      }
      const rows = parseIdentitySearch(data, path);
      if (rows.length === 0) return;
      const signature = `${rows.length}:${rows[0].identityId}:${rows[rows.length - 1].identityId}`;
      if (signature === previous) {
        throw new SyncError(
          'CRM_ERROR',
          `The CRM identity search returned the same page again for page ${pageNumber}: the server seems to ignore pageNumber. The search was stopped to avoid an endless loop.`,
          { path },
        );
      }
      previous = signature;
      yield rows;
    }
  }

  /** Every identity the search finds (all pages). */
  async searchAllIdentities(opts: IdentitySearchOptions = {}): Promise<CrmIdentitySummary[]> {
    const all: CrmIdentitySummary[] = [];
    for await (const page of this.searchIdentities(opts)) all.push(...page);
    return all;
  }

  // ---------------------------------------------------------------- identity find

  /**
   * Pages of person/find or organization/find (`{queries, pageNumber, pageSize}` →
   * `{total, data}`, docs/crm-api.md#person-and-organization), from page 0 until an EMPTY page
   * (docs/known-faults.md#paging). Not used by the
   * old service and not verified on a real CRM: a CRM whose find is missing or refuses the query
   * answers with an error that `isFindUnsupported` recognises, so a caller can fall back to paging
   * identity/search.
   */
  findIdentities(kind: IdentityKind, opts: IdentityFindOptions = {}): AsyncGenerator<CrmFindPage> {
    return this.findPages(kind, opts);
  }

  /**
   * Pages of quote/sales/find or invoice/sales/find (the vendor's C# client, docs/crm-api.md#quotes-and-invoices):
   * the same body and reply as person/find, rows shaped like quote/sales/get. Paged like
   * findIdentities; an unsupported find is recognised by `isFindUnsupported` as well.
   */
  findDocuments(kind: CrmDocKind, opts: IdentityFindOptions = {}): AsyncGenerator<CrmFindPage> {
    if (kind !== 'quote' && kind !== 'invoice') throw new SyncError('BAD_INPUT', `A document find lists quotes or invoices, not ${String(kind)}.`);
    return this.findPages(kind, opts);
  }

  private async *findPages(kind: CrmFindKind, opts: IdentityFindOptions): AsyncGenerator<CrmFindPage> {
    const path = FIND_PATH[kind];
    const name = findName(kind);
    const pageSize = positiveInt(opts.pageSize, this.pageSize, 'pageSize');
    const queries = (opts.queries ?? []).map((q) => ({
      logicalOperator: 0,
      field: q.field,
      operator: q.operator,
      value: q.value,
      leafLogicalOperator: 0,
      leafNegate: false,
      leafs: [],
    }));
    let previous = '';
    for (let pageNumber = 0; ; pageNumber++) {
      if (pageNumber >= this.maxSearchPages) {
        throw new SyncError('CRM_ERROR', `The CRM ${name} did not end after ${this.maxSearchPages} pages (it never returned an empty page). The listing was stopped; report this to the maintainers.`, { path });
      }
      const r = await this.post(path, { queries, pageNumber, pageSize }, true);
      const data = this.expectOk(r, path, `the ${name}`);
      const page = parseFindPage(data, kind, path, r.status, pageNumber);
      if (page.rows.length === 0) return;
      const signature = `${page.rows.length}:${page.rows[0].id}:${page.rows[page.rows.length - 1].id}`;
      if (signature === previous) {
        throw new SyncError(
          'CRM_ERROR',
          `The CRM ${name} returned the same page again for page ${pageNumber}: the server seems to ignore pageNumber. The listing was stopped to avoid an endless loop.`,
          { path },
        );
      }
      previous = signature;
      yield page;
    }
  }

  /**
   * The identity whose customer number is exactly `customerNumber` (digits compared in ASCII,
   * white space and case ignored), or undefined.
   */
  async findByCustomerNumber(customerNumber: string, opts: FindByCustomerNumberOptions = {}): Promise<CrmIdentitySummary | undefined> {
    const key = customerKey(customerNumber);
    if (!key) return undefined;
    for await (const page of this.searchIdentities({ searchTerm: customerNumber.trim(), identityType: opts.identityType })) {
      const hit = page.find((row) => customerKey(row.customerNo) === key);
      if (hit) return hit;
    }
    if (opts.fullScanOnMiss) {
      for await (const page of this.searchIdentities({ identityType: opts.identityType })) {
        const hit = page.find((row) => customerKey(row.customerNo) === key);
        if (hit) return hit;
      }
    }
    return undefined;
  }

  // ---------------------------------------------------------------- identity get

  /** person/get. The kind is what the record says, else 'person'. */
  async getPerson(id: string): Promise<CrmIdentity> {
    const raw = await this.fetchIdentity('person', id);
    return parseIdentity(raw, kindFromRecord(raw) ?? 'person', CRM_PATHS.personGet);
  }

  /** organization/get. The kind is what the record says, else 'organization'. */
  async getOrganization(id: string): Promise<CrmIdentity> {
    const raw = await this.fetchIdentity('organization', id);
    return parseIdentity(raw, kindFromRecord(raw) ?? 'organization', CRM_PATHS.organizationGet);
  }

  /**
   * A person or an organization. With a hint, that endpoint is asked first; without, person/get
   * and then organization/get. The kind comes from the record (identityTypeName,
   * crmObjectTypeCode) or from the only endpoint that knows the id — never from a default (docs/known-faults.md#identity-kind).
   * When the record contradicts the endpoint that returned it, it is read again from the right one.
   */
  async getIdentity(id: string, kindHint?: IdentityKind): Promise<CrmIdentity> {
    const first: IdentityKind = kindHint ?? 'person';
    const other: IdentityKind = first === 'person' ? 'organization' : 'person';
    let raw: Record<string, unknown> | undefined;
    try {
      raw = await this.fetchIdentity(first, id);
    } catch (e) {
      if (!(isSyncError(e) && e.code === 'CRM_NOT_FOUND')) throw e;
    }
    if (raw) {
      const said = kindFromRecord(raw);
      if (said === first) return parseIdentity(raw, first, pathOf(first));
      if (said === other) {
        // Asked the wrong endpoint: read the record where its own fields live.
        const again = await this.fetchIdentity(other, id).catch((e) => {
          if (isSyncError(e) && e.code === 'CRM_NOT_FOUND') return undefined;
          throw e;
        });
        return parseIdentity(again ?? raw, other, pathOf(other));
      }
      // The record does not say. With a hint the caller knows; without, the other endpoint decides.
      if (kindHint) return parseIdentity(raw, kindHint, pathOf(kindHint));
      const also = await this.fetchIdentity(other, id).catch((e) => {
        if (isSyncError(e) && e.code === 'CRM_NOT_FOUND') return undefined;
        throw e;
      });
      if (!also) return parseIdentity(raw, first, pathOf(first));
      throw new SyncError(
        'CRM_ERROR',
        `The CRM returns identity ${id} from both person/get and organization/get and the record states no type (identityTypeName / crmObjectTypeCode), so it cannot be told whether it is a person or an organization. Set the kind explicitly.`,
        { path: pathOf(first) },
      );
    }
    let raw2: Record<string, unknown>;
    try {
      raw2 = await this.fetchIdentity(other, id);
    } catch (e) {
      if (isSyncError(e) && e.code === 'CRM_NOT_FOUND') {
        throw new SyncError('CRM_NOT_FOUND', `The CRM has no person or organization with id ${id} (it may have been deleted).`, {
          status: e.status,
          path: pathOf(other),
          details: e.details,
        });
      }
      throw e;
    }
    // The first endpoint does not know it, so `other` is its kind unless the record says otherwise.
    return parseIdentity(raw2, kindFromRecord(raw2) ?? other, pathOf(other));
  }

  /** The validated raw record of person/get or organization/get. */
  private async fetchIdentity(kind: IdentityKind, id: string): Promise<Record<string, unknown>> {
    checkId(id);
    const path = pathOf(kind);
    const r = await this.post(path, { id }, true);
    const data = this.expectOk(r, path, `${kind}/get of ${id}`, `${kind === 'person' ? 'person' : 'organization'} ${id}`);
    return parseReply(identityGetSchema, data, `${kind}/get`, path) as Record<string, unknown>;
  }

  // ---------------------------------------------------------------- identity write

  /** person/create → the new crmId. See createIdentity for the no-duplicate rule. */
  createPerson(body: CrmIdentityWrite): Promise<string> {
    return this.createIdentity('person', body);
  }

  /** organization/create → the new crmId. */
  createOrganization(body: CrmIdentityWrite): Promise<string> {
    return this.createIdentity('organization', body);
  }

  /**
   * Create once. After an ambiguous failure (timeout, dropped connection, 5xx, broken reply) the
   * request is not simply repeated: when the body has a customer number, the CRM is searched for
   * it — found → that id is returned; not found → the create is sent once more. Without a customer
   * number an ambiguous failure is AMBIGUOUS_CREATE (check the CRM before repeating).
   */
  async createIdentity(kind: IdentityKind, body: CrmIdentityWrite): Promise<string> {
    const payload = this.writeBody(kind, body);
    const path = kind === 'person' ? CRM_PATHS.personCreate : CRM_PATHS.organizationCreate;
    const what = `${kind}/create`;
    const customerNumber = typeof payload.customerNumber === 'string' ? payload.customerNumber.trim() : '';
    const ambiguousError = (cause: SyncError, afterCheck: boolean) =>
      new SyncError(
        'AMBIGUOUS_CREATE',
        `The CRM may or may not have created the ${kind} "${String(payload.nickName ?? '')}" (${cause.message})` +
          (afterCheck
            ? ` A search for customer number ${customerNumber} did not find it. Check the CRM before repeating, to avoid a duplicate.`
            : ' It has no customer number to check by, so it is not repeated automatically. Check the CRM before repeating, to avoid a duplicate.'),
        { ambiguous: true, retryable: false, path, status: cause.status, cause },
      );
    try {
      return await this.createOnce(path, payload, what);
    } catch (e) {
      if (!(isSyncError(e) && e.ambiguous)) throw e;
      if (!customerNumber) throw ambiguousError(e, false);
      const found = await this.checkCreated(customerNumber, kind);
      if (found) return found.identityId;
    }
    try {
      return await this.createOnce(path, payload, what);
    } catch (e) {
      if (!(isSyncError(e) && e.ambiguous)) throw e;
      const found = await this.checkCreated(customerNumber, kind);
      if (found) return found.identityId;
      throw ambiguousError(e, true);
    }
  }

  private async checkCreated(customerNumber: string, kind: IdentityKind): Promise<CrmIdentitySummary | undefined> {
    if (this.createCheckDelayMs > 0) await sleep(this.createCheckDelayMs);
    return this.findByCustomerNumber(customerNumber, { identityType: kind, fullScanOnMiss: true });
  }

  private async createOnce(path: string, payload: Record<string, unknown>, what: string): Promise<string> {
    const r = await this.post(path, payload, false);
    const data = this.expectOk(r, path, what);
    try {
      return parseWriteReply(data, what, path);
    } catch (e) {
      // A 2xx without an id: the CRM probably acted, but we cannot know on what.
      const err = e as SyncError;
      throw new SyncError(err.code, err.message, { status: r.status, details: err.details, path, ambiguous: true, retryable: false, cause: e });
    }
  }

  /** person/update: `body` plus `crmId`. Idempotent (the same body gives the same record). */
  updatePerson(crmId: string, body: Partial<CrmIdentityWrite>): Promise<string> {
    return this.updateIdentity('person', crmId, body);
  }

  /** organization/update. */
  updateOrganization(crmId: string, body: Partial<CrmIdentityWrite>): Promise<string> {
    return this.updateIdentity('organization', crmId, body);
  }

  async updateIdentity(kind: IdentityKind, crmId: string, body: Partial<CrmIdentityWrite>): Promise<string> {
    checkId(crmId);
    const payload = { ...this.writeBody(kind, body), crmId };
    const path = kind === 'person' ? CRM_PATHS.personUpdate : CRM_PATHS.organizationUpdate;
    const r = await this.post(path, payload, true);
    const data = this.expectOk(r, path, `${kind}/update of ${crmId}`, `${kind} ${crmId}`);
    return parseWriteReply(data, `${kind}/update`, path);
  }

  private writeBody(kind: IdentityKind, body: Partial<CrmIdentityWrite>): Record<string, unknown> {
    if (!body || typeof body !== 'object') throw new SyncError('BAD_INPUT', `The ${kind} to write is not an object.`);
    const code = body.crmObjectTypeCode ?? kind;
    if (code !== kind) {
      throw new SyncError('BAD_INPUT', `A ${kind} cannot be written with crmObjectTypeCode "${String(code)}": it must be "${kind}".`);
    }
    return { ...body, crmObjectTypeCode: kind };
  }

  // ---------------------------------------------------------------- quotes / invoices

  /** quote/sales/get. */
  getQuote(id: string): Promise<CrmQuote> {
    return this.getDoc('quote', id);
  }

  /** invoice/sales/get. */
  getInvoice(id: string): Promise<CrmQuote> {
    return this.getDoc('invoice', id);
  }

  private async getDoc(docKind: 'quote' | 'invoice', id: string): Promise<CrmQuote> {
    checkId(id);
    const path = docKind === 'quote' ? CRM_PATHS.quoteGet : CRM_PATHS.invoiceGet;
    const r = await this.post(path, { id }, true);
    const data = this.expectOk(r, path, `${docKind}/sales/get of ${id}`, `${docKind === 'quote' ? 'quote' : 'invoice'} ${id}`);
    return parseQuote(data, docKind, path);
  }
}

// ---------------------------------------------------------------- helpers

function pathOf(kind: IdentityKind): string {
  return kind === 'person' ? CRM_PATHS.personGet : CRM_PATHS.organizationGet;
}

function checkId(id: string): void {
  if (typeof id !== 'string' || id.trim() === '') throw new SyncError('BAD_INPUT', 'A CRM record id is required (got an empty value).');
}

function positiveInt(v: number | undefined, dflt: number, name: string): number {
  if (v === undefined) return dflt;
  if (!Number.isInteger(v) || v < 1) throw new SyncError('CONFIG', `${name} must be a whole number ≥ 1 (got ${v}).`);
  return v;
}

function typeNumber(t: IdentitySearchOptions['identityType']): number | undefined {
  if (t === undefined) return undefined;
  if (t === 'person' || t === 1) return 1;
  if (t === 'organization' || t === 2) return 2;
  throw new SyncError('BAD_INPUT', `identityType must be 'person' (1) or 'organization' (2), got ${String(t)}.`);
}

function customerKey(v: string | null | undefined): string {
  return v ? toAsciiDigits(String(v)).replace(/\s+/g, '').toLowerCase() : '';
}

const FIND_PATH: Record<CrmFindKind, string> = {
  person: CRM_PATHS.personFind,
  organization: CRM_PATHS.organizationFind,
  quote: CRM_PATHS.quoteFind,
  invoice: CRM_PATHS.invoiceFind,
};
const FIND_PATHS: readonly string[] = Object.values(FIND_PATH);

/** `person/find`, `quote/sales/find` … as an operator reads it. */
export function findName(kind: CrmFindKind): string {
  return kind === 'quote' || kind === 'invoice' ? `${kind}/sales/find` : `${kind}/find`;
}

/**
 * True when a find failed because this CRM does not offer it in the expected form: no such
 * endpoint (404/405), the query refused (400, e.g. an unknown field), not implemented (501), or a
 * 2xx reply that is not `{total, data:[rows with ids]}`. Network trouble, 5xx, 401/403 are not.
 */
export function isFindUnsupported(e: unknown): boolean {
  if (!isSyncError(e) || e.code !== 'CRM_ERROR' || !e.path || !FIND_PATHS.includes(e.path)) return false;
  const s = e.status;
  return s !== undefined && ((s >= 200 && s < 300) || s === 400 || s === 404 || s === 405 || s === 501);
}

function parseFindPage(data: unknown, kind: CrmFindKind, path: string, status: number, pageNumber: number): CrmFindPage {
  const unsupported = (what: string) =>
    new SyncError(
      'CRM_ERROR',
      `The CRM answered ${findName(kind)} (page ${pageNumber}) with ${what} instead of {total, data: [records]}: this CRM's find works differently.` +
        (kind === 'person' || kind === 'organization' ? ' Use the scan mode of the poll node.' : ''),
      { status, path },
    );
  if (!data || typeof data !== 'object' || Array.isArray(data)) {
    throw unsupported(data === undefined || data === null || data === '' ? 'an empty body' : Array.isArray(data) ? 'a bare list' : 'a non-object');
  }
  const o = data as Record<string, unknown>;
  const list = o.data ?? o.Data;
  if (!Array.isArray(list)) throw unsupported('an object without a data list');
  const totalRaw = o.total ?? o.Total;
  const total = typeof totalRaw === 'number' && Number.isFinite(totalRaw) ? totalRaw : undefined;
  const rows: CrmFindRow[] = list.map((item, i) => {
    if (!item || typeof item !== 'object' || Array.isArray(item)) throw unsupported(`row ${i} not an object`);
    const raw = item as Record<string, unknown>;
    const idRaw = raw.crmId ?? raw.CrmId ?? raw.id ?? raw.Id ?? raw.identityId;
    if (typeof idRaw !== 'string' || !idRaw.trim()) throw unsupported(`row ${i} without an id (crmId)`);
    const md = raw.modifyDate ?? raw.ModifyDate;
    return { id: idRaw.trim().toLowerCase(), kind, modifyDate: typeof md === 'string' && md.trim() ? md.trim() : undefined, raw };
  });
  return { pageNumber, total, rows };
}

function isEmptyBody(data: unknown): boolean {
  if (data === undefined || data === null || data === '') return true;
  return typeof data === 'object' && !Array.isArray(data) && Object.keys(data as object).length === 0;
}

function notFound(what: string, path: string, status: number, details: string[]): SyncError {
  return new SyncError('CRM_NOT_FOUND', `The CRM has no ${what} (it may have been deleted, or the id belongs to another record type).`, {
    status,
    path,
    details,
  });
}

function messageDetails(r: HttpReply): string[] {
  const m = serverMessage(r.data, r.text);
  return m ? [m] : [];
}

/**
 * The server's error text. The CRM's error shape was never captured (docs/open-questions.md#crm-errors-and-paging), so the usual ASP.NET /
 * OAuth fields are tried in turn, then the raw text (shortened).
 */
export function serverMessage(data: unknown, text: string): string | undefined {
  if (typeof data === 'string' && data.trim()) return clip(data);
  if (data && typeof data === 'object' && !Array.isArray(data)) {
    const o = data as Record<string, unknown>;
    for (const k of ['message', 'Message', 'errorMessage', 'ErrorMessage', 'error_description', 'error', 'Error', 'title', 'detail', 'ExceptionMessage']) {
      const v = o[k];
      if (typeof v === 'string' && v.trim()) return clip(v);
      if (v && typeof v === 'object') {
        const inner = serverMessage(v, '');
        if (inner) return inner;
      }
    }
    // ASP.NET validation problem: { errors: { field: ["text"] } }
    if (o.errors && typeof o.errors === 'object') {
      const texts = Object.entries(o.errors as Record<string, unknown>).flatMap(([f, v]) => (Array.isArray(v) ? v.map((x) => `${f}: ${String(x)}`) : []));
      if (texts.length) return clip(texts.join('; '));
    }
  }
  const t = text.replace(/\s+/g, ' ').trim();
  if (!t || /^\s*</.test(t)) return undefined;
  return clip(t);
}

function clip(s: string): string {
  const t = s.replace(/\s+/g, ' ').trim();
  return t.length > 300 ? t.slice(0, 300) + '…' : t;
}

/** For replies with status ≥ 500: JSON whose message says "not found" is an answer, not a fault. */
function looksNotFound(text: string): boolean {
  if (!text || text.length > 100_000) return false;
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    return false;
  }
  const m = serverMessage(data, '');
  return !!m && NOT_FOUND_RE.test(m) && !ROUTE_MISS_RE.test(m);
}

function duration(ms: number): string {
  const s = Math.max(1, Math.ceil(ms / 1000));
  if (s < 120) return `${s} second${s === 1 ? '' : 's'}`;
  const m = Math.ceil(s / 60);
  return `${m} minutes`;
}
