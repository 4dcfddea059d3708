/**
 * Client of the Payamgostar CRM REST API v2 (docs/crm-api.md).
 *
 * - Every call is a POST with a JSON body and `Authorization: Bearer <accessToken>`; the token,
 *   the login and its lock-out guard are the session's (session.ts, docs/known-faults.md#crm-token).
 * - Lists are paged until an EMPTY page (paging.ts, docs/known-faults.md#paging), never stopping
 *   on a short page, so a server-side page-size cap cannot hide identities.
 * - Replies are read by reply.ts (the server's error text, not-found told apart from a wrong URL).
 * - A person/organization create is never blindly repeated after an ambiguous failure (timeout,
 *   dropped connection, 5xx): the CRM is first searched for the customer number.
 */
import { SyncError, isSyncError } from '../errors';
import { HttpCore, HttpOptions, HttpReply } from '../http/http-core';
import { sleep } from '../http/limiter';
import { toAsciiDigits } from '../text/normalize';
import type { ConnectionState, CrmIdentity, CrmIdentitySummary, CrmIdentityWrite, CrmQuote, IdentityKind } from '../types';
import { findPages, positiveInt, searchIdentityPages, type CrmDocKind, type CrmFindPage, type IdentityFindOptions, type IdentitySearchOptions, type PageLimits } from './paging';
import { CRM_PATHS } from './paths';
import { expectOk } from './reply';
import { identityGetSchema, kindFromRecord, parseIdentity, parseQuote, parseReply, parseWriteReply } from './schemas';
import { CrmSession, type CrmSessionInfo } from './session';

export { CRM_PATHS } from './paths';
export { CRM_FIND_OPERATORS, findName, isFindUnsupported } from './paging';
export type { CrmDocKind, CrmFindKind, CrmFindOperator, CrmFindPage, CrmFindQuery, CrmFindRow, IdentityFindOptions, IdentitySearchOptions } from './paging';
export { serverMessage } from './reply';
export type { CrmSessionInfo } from './session';

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

export interface FindByCustomerNumberOptions {
  identityType?: IdentityKind | 1 | 2;
  /**
   * When the search by term finds no exact match, page through every identity as well (the
   * server's search may not look at customer numbers, docs/open-questions.md#crm-errors-and-paging). Costly: meant for rare checks.
   */
  fullScanOnMiss?: boolean;
}

export class CrmClient {
  readonly http: HttpCore;
  private readonly session: CrmSession;
  private readonly paging: PageLimits;
  private readonly createCheckDelayMs: number;

  constructor(options: CrmClientOptions) {
    if (!options.username) throw new SyncError('CONFIG', 'The CRM user name is empty. Enter the API user in the CRM config node.');
    if (!options.password) throw new SyncError('CONFIG', 'The CRM password is empty. Enter it in the CRM config node.');
    this.http = new HttpCore(options);
    this.session = new CrmSession(this.http, options);
    this.paging = {
      pageSize: positiveInt(options.searchPageSize, 200, 'searchPageSize'),
      maxPages: positiveInt(options.maxSearchPages, 100_000, 'maxSearchPages'),
    };
    this.createCheckDelayMs = Math.max(0, options.createCheckDelayMs ?? 1000);
  }

  /** Stop: abort calls in flight, forget the token. */
  close(): void {
    this.session.forget();
    this.http.close();
  }

  /** The token state for a status display (never the token itself). */
  sessionInfo(): CrmSessionInfo {
    return this.session.info();
  }

  /** The connection for the operator's console (never the token). */
  connectionState(now = Date.now()): ConnectionState {
    return this.session.connectionState(now);
  }

  /** Log in now (normally done lazily). Resolves when a valid token is held. */
  login(): Promise<void> {
    return this.session.login();
  }

  /** POST with the session's token (a 401 logs in again and repeats once; see session.ts). */
  private post(path: string, body: unknown, idempotent: boolean): Promise<HttpReply> {
    return this.session.post(path, body, idempotent);
  }

  // ---------------------------------------------------------------- identity search

  /**
   * Pages of identity/search from page 0 until the CRM returns an empty page. A short page does
   * not end the search (the server may cap the page size:
   * docs/known-faults.md#paging, docs/open-questions.md#crm-errors-and-paging).
   */
  searchIdentities(opts: IdentitySearchOptions = {}): AsyncGenerator<CrmIdentitySummary[]> {
    return searchIdentityPages((p, b, i) => this.post(p, b, i), opts, this.paging);
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
    return findPages((p, b, i) => this.post(p, b, i), kind, opts, this.paging);
  }

  /**
   * Pages of quote/sales/find or invoice/sales/find (the vendor's C# client, docs/crm-api.md#quotes-and-invoices):
   * the same body and reply as person/find, rows shaped like quote/sales/get. Paged like
   * findIdentities; an unsupported find is recognised by `isFindUnsupported` as well.
   */
  findDocuments(kind: CrmDocKind, opts: IdentityFindOptions = {}): AsyncGenerator<CrmFindPage> {
    if (kind !== 'quote' && kind !== 'invoice') throw new SyncError('BAD_INPUT', `A document find lists quotes or invoices, not ${String(kind)}.`);
    return findPages((p, b, i) => this.post(p, b, i), kind, opts, this.paging);
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
    const data = expectOk(r, path, `${kind}/get of ${id}`, `${kind === 'person' ? 'person' : 'organization'} ${id}`);
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
    const data = expectOk(r, path, what);
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
    const data = expectOk(r, path, `${kind}/update of ${crmId}`, `${kind} ${crmId}`);
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
    const data = expectOk(r, path, `${docKind}/sales/get of ${id}`, `${docKind === 'quote' ? 'quote' : 'invoice'} ${id}`);
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

function customerKey(v: string | null | undefined): string {
  return v ? toAsciiDigits(String(v)).replace(/\s+/g, '').toLowerCase() : '';
}
