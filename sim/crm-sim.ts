/**
 * A faithful simulator of the Payamgostar CRM REST API v2 (docs/crm-api.md), served over
 * real HTTP on loopback.
 *
 * - `POST /api/v2/auth/login` → `{expiresAt, accessToken, refreshToken}`; `expiresAt` in Tehran time
 *   (+03:30) with 7 fractional digits; the token is a JWT-looking string with the claims of the real
 *   one (nameidentifier, name, role, nbf, exp, …; the signature is random). Users can be configured
 *   to answer 401 / 402 / 403, and repeated wrong passwords lock a user out (403), as the real CRM does.
 * - Every other call needs `Authorization: Bearer <token>` (401 with an empty body otherwise).
 * - `identity/search`: bare array of `{identityId, nickName, customerNo}`, 0-based pages, the page
 *   size capped at `maxPageSize` (docs/open-questions.md#crm-errors-and-paging), `searchTerm` a case-insensitive substring of nickName or
 *   customerNo, `identityType` 1 person / 2 organization.
 * - `person|organization/{get,create,update,delete,find}`, `quote/sales/{get,find}`, `invoice/sales/{get,find}`
 *   with the camelCase field sets of docs/crm-api.md; an unknown id is HTTP 404 `{"message": "…یافت نشد"}`.
 *   Every find takes `{queries, pageNumber (0-based), pageSize}` and answers `{total, data}`.
 * - Webhooks as the real CRM sends them (docs/crm-api.md#webhooks-as-the-crm-sends-them): after each create an `Insert`, after each update an
 *   `Update`, as a body-less GET `<url>?event=…&id=…&type=Identity|Quote|Invoice&subtype=<Persian>`
 *   with only host/connection headers, delivered in order, asynchronously, never throwing.
 *
 * Record dates (`creatDate`, `modifyDate`) are Tehran local time without offset, with milliseconds
 * (`2025-12-21T14:06:17.173`); each change gets a strictly later `modifyDate`.
 */
import crypto from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import { INVALID_JSON, SimRequest, SimResponse, SimServer } from './sim-server';

export type CrmSimKind = 'person' | 'organization' | 'quote' | 'invoice';
export type CrmRecord = Record<string, unknown> & { crmId: string };

export interface CrmSimUser {
  username: string;
  password: string;
  /** Answer every login of this user with this status (401 bad credentials, 402 module missing, 403 locked out). */
  status?: 401 | 402 | 403;
}

export interface CrmSimOptions {
  users?: CrmSimUser[];
  /** Token lifetime. Default 7 200 000 ms (2 h, as observed). */
  tokenTtlMs?: number;
  /** Largest page identity/search returns, whatever is asked. Default 100. */
  maxPageSize?: number;
  /** Wrong passwords in a row after which a user is locked out (403). Default 5; 0 = never. */
  lockoutAfterFailures?: number;
  /** How long a lock-out lasts. Default 15 min. */
  lockoutMs?: number;
  /**
   * Fields the finds (person, organization, quote/sales, invoice/sales) may filter on; a query on any other field is HTTP 400
   * with a message, as a CRM whose find does not know the field might answer. Default: any field.
   */
  findFields?: string[];
  /** `merge` (default): update changes only the fields sent. `replace`: fields not sent are blanked. */
  updateMode?: 'merge' | 'replace';
  /** Base URL the webhooks are sent to (the query string is appended). */
  webhookUrl?: string;
  /** Per-type URLs overriding webhookUrl (the real CRM registers one URL per entity type). */
  webhookUrls?: Partial<Record<'Identity' | 'Quote' | 'Invoice', string>>;
  /** Appended as `&token=…` (never recorded in the webhook log). */
  webhookToken?: string;
  /** Webhooks on/off. Default true (nothing is sent without a URL). */
  webhooks?: boolean;
  /** Give up a delivery after this long. Default 10 000 ms. */
  webhookTimeoutMs?: number;
  /** Delay before a webhook is sent. Default 0 (sent right after the change, not waiting for the reply). */
  webhookDelayMs?: number;
  personSubtype?: string;
  organizationSubtype?: string;
  /** Default subtype of quotes (each quote may carry its own `subtype` in addQuote). */
  quoteSubtype?: string;
  invoiceSubtype?: string;
  persons?: Array<Record<string, unknown>>;
  organizations?: Array<Record<string, unknown>>;
  quotes?: Array<Record<string, unknown>>;
  invoices?: Array<Record<string, unknown>>;
}

export interface WebhookDelivery {
  event: 'Insert' | 'Update';
  id: string;
  type: 'Identity' | 'Quote' | 'Invoice';
  subtype: string;
  /** The URL called, without the token. */
  url: string;
  status?: number;
  error?: string;
  at: string;
}

interface Stored {
  kind: CrmSimKind;
  data: CrmRecord;
  subtype: string;
}

interface TokenInfo {
  username: string;
  userId: string;
  expiresMs: number;
}

export const CRM_SIM_DEFAULTS = {
  personSubtype: 'مخاطب حقیقی siagh',
  organizationSubtype: 'مخاطب حقوقی siagh',
  quoteSubtype: 'پیش فاکتور رسمی بنیان گاز',
  invoiceSubtype: 'فاکتور فروش بنیان گاز',
} as const;

const TEHRAN_OFFSET_MS = 3.5 * 3600_000;
const NOT_FOUND_TEXT = 'رکورد مورد نظر یافت نشد';
const TYPE_IDS: Record<CrmSimKind, string> = {
  person: '8c1e2d3f-0a4b-4c5d-9e6f-101112131415',
  organization: '9d2f3e40-1b5c-4d6e-8f70-161718191a1b',
  quote: 'ae304f51-2c6d-4e7f-9081-1c1d1e1f2021',
  invoice: 'bf415062-3d7e-4f80-a192-222324252627',
};

const IDENTITY_FIELDS = [
  'parentCrmObjectId', 'refId', 'stageId', 'identityId', 'extendedProperties', 'tags', 'colorId', 'sourceTypeIndex',
  'description', 'subject', 'assignedToUserName', 'nickName', 'phoneContacts', 'addressContacts', 'email',
  'alternativeEmail', 'website', 'customerNumber', 'customerDate', 'categories', 'dontSms', 'dontSocialSms',
  'dontPhoneCall', 'dontEmail', 'dontFax', 'supportUsername', 'saleUsername', 'otherUsername', 'facebookUsername',
  'preferredContactType', 'nationalCode', 'economicCode',
];
const PERSON_FIELDS = [
  'firstName', 'lastName', 'gender', 'personPrefix', 'degree', 'paymentStatusType', 'areasOfInterest', 'mannerType',
  'spouse', 'hobbies', 'children', 'birthDate', 'organizations', 'creditType',
];
const ORGANIZATION_FIELDS = [
  'businessType', 'registerNumber', 'shareType', 'trademark', 'ownershipType', 'tradeType', 'managerId', 'registerDate',
  'employees',
];

/** Tehran local time without offset, milliseconds: `2025-12-21T14:06:17.173`. */
export function crmLocalTime(ms: number): string {
  return new Date(ms + TEHRAN_OFFSET_MS).toISOString().slice(0, 23);
}

/** `expiresAt` as the CRM writes it: `2025-12-16T11:43:53.1385332+03:30`. */
export function crmOffsetTime(ms: number): string {
  const local = new Date(ms + TEHRAN_OFFSET_MS).toISOString();
  const ticks = String(crypto.randomInt(0, 10_000)).padStart(4, '0');
  return `${local.slice(0, 23)}${ticks}+03:30`;
}

function b64url(v: string | Buffer): string {
  return Buffer.from(v).toString('base64url');
}

function guid(): string {
  return crypto.randomUUID().toLowerCase();
}

/** Value of `name` in `o`, matching keys case-insensitively (ASP.NET model binding). */
function field(o: Record<string, unknown>, name: string): unknown {
  if (name in o) return o[name];
  const lower = name.toLowerCase();
  for (const k of Object.keys(o)) if (k.toLowerCase() === lower) return o[k];
  return undefined;
}

/** Top-level keys to camelCase (`NickName` → `nickName`), as the server's binder accepts either. */
function camelKeys(o: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) out[k.charAt(0).toLowerCase() + k.slice(1)] = v;
  return out;
}

function clone<T>(v: T): T {
  return structuredClone(v);
}

function num(v: unknown, dflt: number): number {
  const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : v;
  return typeof n === 'number' && Number.isFinite(n) ? n : dflt;
}

function round2(n: number): number {
  return Math.round(n * 100) / 100;
}

function bad(message: string): SimResponse {
  return { status: 400, body: { message } };
}

export class CrmSim extends SimServer {
  private readonly opts: CrmSimOptions;
  private readonly users: Array<CrmSimUser & { id: string }>;
  /** The CRM user that "edits in the browser" (creator of helper-made records). */
  private readonly crmUserId = guid();
  private readonly kid = crypto.randomBytes(20).toString('hex').toUpperCase();
  private readonly records = new Map<string, Stored>();
  /** Identity ids in creation order (the search order). */
  private identityOrder: string[] = [];
  private version = 0;
  private searchCache?: { key: string; version: number; ids: string[] };
  private readonly tokens = new Map<string, TokenInfo>();
  private readonly failures = new Map<string, { count: number; lockedUntil: number }>();
  private lastStamp = 0;
  private logins = 0;
  private webhookCfg: { url?: string; urls: Partial<Record<'Identity' | 'Quote' | 'Invoice', string>>; token?: string; enabled: boolean };
  private deliveries: WebhookDelivery[] = [];
  private chain: Promise<void> = Promise.resolve();
  private pending = 0;
  private readonly httpAgent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  private readonly httpsAgent = new https.Agent({ keepAlive: true, maxSockets: 1 });

  constructor(options: CrmSimOptions = {}) {
    super();
    this.opts = options;
    this.users = (options.users ?? [{ username: 'api', password: 'api-pass' }]).map((u) => ({ ...u, id: guid() }));
    this.webhookCfg = this.initialWebhookCfg();
    this.seed();
  }

  // ================================================================ test helpers

  /** Login requests received (successful or not). */
  get loginCount(): number {
    return this.logins;
  }

  /** Every token issued so far stops working (as after a server restart or a 2 h wait). */
  expireAllTokens(): void {
    for (const t of this.tokens.values()) t.expiresMs = 0;
  }

  addPerson(partial: Record<string, unknown> = {}, opts: { webhook?: boolean } = {}): CrmRecord {
    return this.insert('person', partial, this.crmUserId, opts.webhook ?? true, true);
  }

  addOrganization(partial: Record<string, unknown> = {}, opts: { webhook?: boolean } = {}): CrmRecord {
    return this.insert('organization', partial, this.crmUserId, opts.webhook ?? true, true);
  }

  /** A sales quote; `identityId` is required, `details` rows are completed with computed totals. `subtype` sets the webhook subtype. */
  addQuote(partial: Record<string, unknown> & { identityId?: string }, opts: { webhook?: boolean } = {}): CrmRecord {
    return this.insert('quote', partial, this.crmUserId, opts.webhook ?? true, true);
  }

  addInvoice(partial: Record<string, unknown> & { identityId?: string }, opts: { webhook?: boolean } = {}): CrmRecord {
    return this.insert('invoice', partial, this.crmUserId, opts.webhook ?? true, true);
  }

  /** Change a record as a CRM user would in the browser: merge, bump modifyDate, fire an Update webhook. */
  updateRecord(id: string, patch: Record<string, unknown>, opts: { webhook?: boolean } = {}): CrmRecord {
    const s = this.records.get(id);
    if (!s) throw new Error(`CrmSim.updateRecord: no record ${id}`);
    this.applyPatch(s, patch, 'merge', this.crmUserId, true);
    if (opts.webhook ?? true) this.fireFor('Update', s);
    return clone(s.data);
  }

  /** Remove a record (no webhook: the real CRM was never seen sending delete events). */
  deleteRecord(id: string): boolean {
    return this.remove(id);
  }

  /** A copy of one record, or undefined. */
  record(id: string): CrmRecord | undefined {
    const s = this.records.get(id);
    return s ? clone(s.data) : undefined;
  }

  /** Kind of a stored record. */
  kindOf(id: string): CrmSimKind | undefined {
    return this.records.get(id)?.kind;
  }

  /** Copies of all persons and organizations, in creation order. */
  identities(): CrmRecord[] {
    return this.identityOrder.map((id) => clone(this.records.get(id)!.data));
  }

  quotes(): CrmRecord[] {
    return this.ofKind('quote');
  }

  invoices(): CrmRecord[] {
    return this.ofKind('invoice');
  }

  /** Change the webhook target, token or switch at run time. */
  setWebhooks(cfg: { url?: string; urls?: Partial<Record<'Identity' | 'Quote' | 'Invoice', string>>; token?: string; enabled?: boolean }): void {
    if ('url' in cfg) this.webhookCfg.url = cfg.url;
    if (cfg.urls) this.webhookCfg.urls = { ...cfg.urls };
    if ('token' in cfg) this.webhookCfg.token = cfg.token;
    if (cfg.enabled !== undefined) this.webhookCfg.enabled = cfg.enabled;
  }

  /** Deliveries so far, oldest first (URL without the token). */
  webhookLog(): WebhookDelivery[] {
    return this.deliveries.map((d) => ({ ...d }));
  }

  /** Resolves when every webhook fired so far (and any fired meanwhile) has been delivered or failed. */
  async flushWebhooks(): Promise<void> {
    while (this.pending > 0) await this.chain;
  }

  state(): Record<string, unknown> {
    const by = { person: 0, organization: 0, quote: 0, invoice: 0 };
    for (const s of this.records.values()) by[s.kind]++;
    return {
      persons: by.person,
      organizations: by.organization,
      quotes: by.quote,
      invoices: by.invoice,
      loginCount: this.logins,
      tokensIssued: this.tokens.size,
      webhooksPending: this.pending,
      webhooksDelivered: this.deliveries.length,
      webhookUrl: this.webhookCfg.url,
      webhooksEnabled: this.webhookCfg.enabled,
    };
  }

  /** Back to the seed: records, tokens, lock-outs, login count, webhook log and settings, request counts. */
  reset(): void {
    this.records.clear();
    this.identityOrder = [];
    this.version++;
    this.searchCache = undefined;
    this.tokens.clear();
    this.failures.clear();
    this.logins = 0;
    this.deliveries = [];
    this.webhookCfg = this.initialWebhookCfg();
    this.resetCounts();
    this.seed();
  }

  override async stop(): Promise<void> {
    await super.stop();
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }

  // ================================================================ HTTP

  protected handle(req: SimRequest): SimResponse {
    const path = req.path.toLowerCase().replace(/\/+$/, '');
    const route = ROUTES[path];
    if (!route) return { status: 404 };
    if (req.method !== 'POST') {
      return { status: 405, body: { message: `The requested resource does not support http method '${req.method}'.` }, headers: { allow: 'POST' } };
    }
    if (req.body === INVALID_JSON) return bad('The request is invalid: the body is not valid JSON.');
    if (route === 'login') return this.login(req.body);
    const auth = this.authenticate(req.headers.authorization);
    if (!auth) return { status: 401, headers: { 'www-authenticate': 'Bearer error="invalid_token"' } };
    const body = req.body && typeof req.body === 'object' && !Array.isArray(req.body) ? (req.body as Record<string, unknown>) : undefined;
    if (!body) return bad('The request is invalid: a JSON object is required.');
    const [kind, op] = route.split('.') as [CrmSimKind | 'identity', string];
    if (kind === 'identity') return this.search(body);
    switch (op) {
      case 'get':
        return this.get(kind, body);
      case 'create':
        return this.create(kind as 'person' | 'organization', body, auth.userId);
      case 'update':
        return this.update(kind as 'person' | 'organization', body, auth.userId);
      case 'delete':
        return this.del(kind, body);
      case 'find':
        return this.find(kind, body);
    }
    return { status: 404 };
  }

  private login(raw: unknown): SimResponse {
    this.logins++;
    const body = raw && typeof raw === 'object' ? (raw as Record<string, unknown>) : {};
    const username = field(body, 'username');
    const password = field(body, 'password');
    if (typeof username !== 'string' || typeof password !== 'string' || !username) {
      return bad('username and password are required.');
    }
    const user = this.users.find((u) => u.username === username);
    const now = Date.now();
    const fail = this.failures.get(username) ?? { count: 0, lockedUntil: 0 };
    if (user?.status === 402) return { status: 402, body: { message: 'MobileApp module not available in CRM' } };
    if (user?.status === 403 || fail.lockedUntil > now) return { status: 403, body: { message: 'Too many login attempts! Try again later.' } };
    if (!user || user.password !== password || user.status === 401) {
      fail.count++;
      const limit = this.opts.lockoutAfterFailures ?? 5;
      if (limit > 0 && fail.count >= limit) {
        fail.lockedUntil = now + (this.opts.lockoutMs ?? 15 * 60_000);
        fail.count = 0;
      }
      this.failures.set(username, fail);
      return { status: 401, body: { message: 'Invalid username or password' } };
    }
    this.failures.delete(username);
    const ttl = this.opts.tokenTtlMs ?? 7_200_000;
    const expiresMs = now + ttl;
    const header = { alg: 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256', kid: this.kid, typ: 'JWT' };
    const claims = {
      'http://schemas.xmlsoap.org/ws/2005/05/identity/claims/nameidentifier': user.id,
      'http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name': user.username,
      'http://schemas.microsoft.com/accesscontrolservice/2010/07/claims/identityprovider': 'PG ASP.NET Identity',
      'AspNet.Identity.SecurityStamp': guid(),
      'http://schemas.microsoft.com/ws/2008/06/identity/claims/role': ['SystemOperator', 'SystemCustomer', 'SystemAdmin'],
      email: `${user.username}@example.invalid`,
      identityType: 'Person',
      uasi: guid(),
      nbf: Math.floor(now / 1000),
      exp: Math.floor(expiresMs / 1000),
      iss: 'PayamGostar.com',
      aud: 'app.api.employeeprofile',
    };
    const token = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}.${b64url(crypto.randomBytes(256))}`;
    this.tokens.set(token, { username: user.username, userId: user.id, expiresMs });
    return { status: 200, body: { expiresAt: crmOffsetTime(expiresMs), accessToken: token, refreshToken: crypto.randomBytes(32).toString('base64url') } };
  }

  private authenticate(header: string | undefined): TokenInfo | undefined {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
    if (!m) return undefined;
    const t = this.tokens.get(m[1]);
    if (!t || t.expiresMs <= Date.now()) return undefined;
    return t;
  }

  private search(body: Record<string, unknown>): SimResponse {
    const pageNumber = num(field(body, 'pageNumber'), 0);
    const asked = num(field(body, 'pageSize'), 0);
    if (!Number.isInteger(pageNumber) || pageNumber < 0) return bad('pageNumber must be a whole number ≥ 0.');
    const cap = this.opts.maxPageSize ?? 100;
    const pageSize = asked > 0 ? Math.min(Math.floor(asked), cap) : cap;
    const term = field(body, 'searchTerm');
    const type = num(field(body, 'identityType'), 0);
    const ids = this.searchIds(typeof term === 'string' ? term.trim().toLowerCase() : '', type === 1 ? 'person' : type === 2 ? 'organization' : undefined);
    const page = ids.slice(pageNumber * pageSize, pageNumber * pageSize + pageSize).map((id) => {
      const d = this.records.get(id)!.data;
      return { identityId: d.crmId, nickName: (d.nickName as string | null) ?? '', customerNo: (d.customerNumber as string | null) ?? '' };
    });
    return { status: 200, body: page };
  }

  private searchIds(term: string, kind: 'person' | 'organization' | undefined): string[] {
    if (!term && !kind) return this.identityOrder;
    const key = `${kind ?? ''}|${term}`;
    if (this.searchCache && this.searchCache.key === key && this.searchCache.version === this.version) return this.searchCache.ids;
    const ids = this.identityOrder.filter((id) => {
      const s = this.records.get(id)!;
      if (kind && s.kind !== kind) return false;
      if (!term) return true;
      const nick = String(s.data.nickName ?? '').toLowerCase();
      const cn = String(s.data.customerNumber ?? '').toLowerCase();
      return nick.includes(term) || cn.includes(term);
    });
    this.searchCache = { key, version: this.version, ids };
    return ids;
  }

  private get(kind: CrmSimKind, body: Record<string, unknown>): SimResponse {
    const id = field(body, 'id');
    if (typeof id !== 'string' || !id) return bad('id is required.');
    const s = this.records.get(id.toLowerCase());
    if (!s || s.kind !== kind) return { status: 404, body: { message: NOT_FOUND_TEXT } };
    return { status: 200, body: s.data };
  }

  private create(kind: 'person' | 'organization', raw: Record<string, unknown>, userId: string): SimResponse {
    const body = camelKeys(raw);
    const code = body.crmObjectTypeCode;
    if (typeof code !== 'string' || !code) return bad(`crmObjectTypeCode is required (use "${kind}").`);
    if (code.toLowerCase() !== kind) return bad(`crmObjectTypeCode "${code}" does not belong to ${kind}/create.`);
    const input: Record<string, unknown> = {};
    for (const k of [...IDENTITY_FIELDS, ...(kind === 'person' ? PERSON_FIELDS : ORGANIZATION_FIELDS)]) if (k in body) input[k] = body[k];
    if (!input.nickName && kind === 'person') {
      const n = [input.firstName, input.lastName].filter((x) => typeof x === 'string' && x.trim()).join(' ');
      if (n) input.nickName = n;
    }
    if (typeof input.nickName !== 'string' || !input.nickName.trim()) return bad('nickName is required.');
    const rec = this.insert(kind, input, userId, true, false);
    return { status: 200, body: { crmId: rec.crmId } };
  }

  private update(kind: 'person' | 'organization', raw: Record<string, unknown>, userId: string): SimResponse {
    const body = camelKeys(raw);
    const id = body.crmId ?? body.id;
    if (typeof id !== 'string' || !id) return bad('crmId is required.');
    const s = this.records.get(id.toLowerCase());
    if (!s || s.kind !== kind) return { status: 404, body: { message: NOT_FOUND_TEXT } };
    const code = body.crmObjectTypeCode;
    if (typeof code === 'string' && code && code.toLowerCase() !== kind) return bad(`crmObjectTypeCode "${code}" does not belong to ${kind}/update.`);
    const patch: Record<string, unknown> = {};
    for (const k of [...IDENTITY_FIELDS, ...(kind === 'person' ? PERSON_FIELDS : ORGANIZATION_FIELDS)]) if (k in body) patch[k] = body[k];
    this.applyPatch(s, patch, this.opts.updateMode ?? 'merge', userId, false);
    this.fireFor('Update', s);
    return { status: 200, body: { crmId: s.data.crmId } };
  }

  private del(kind: CrmSimKind, body: Record<string, unknown>): SimResponse {
    const id = field(body, 'id');
    if (typeof id !== 'string' || !id) return bad('id is required.');
    const s = this.records.get(id.toLowerCase());
    if (!s || s.kind !== kind) return { status: 404, body: { message: NOT_FOUND_TEXT } };
    this.remove(s.data.crmId);
    return { status: 200 };
  }

  /** find: `{queries:[{field, operator, value}], pageNumber, pageSize}` → `{total, data}` (all queries ANDed). */
  private find(kind: CrmSimKind, body: Record<string, unknown>): SimResponse {
    const queries = Array.isArray(field(body, 'queries')) ? (field(body, 'queries') as Array<Record<string, unknown>>) : [];
    const pageNumber = Math.max(0, Math.floor(num(field(body, 'pageNumber'), 0)));
    const pageSize = Math.min(Math.max(1, Math.floor(num(field(body, 'pageSize'), 20))), this.opts.maxPageSize ?? 100);
    const allowed = this.opts.findFields;
    if (allowed) {
      for (const q of queries) {
        const f = String(field(q, 'field') ?? '');
        if (!allowed.some((a) => a.toLowerCase() === f.toLowerCase())) return bad(`The field '${f}' cannot be used in a ${kind} query.`);
      }
    }
    const all = [...this.records.values()].filter((s) => s.kind === kind).map((s) => s.data);
    const hits = all.filter((rec) =>
      queries.every((q) => {
        const f = String(field(q, 'field') ?? '');
        const op = num(field(q, 'operator'), 0);
        const want = field(q, 'value');
        const have = field(rec, f);
        const a = typeof have === 'number' ? have : String(have ?? '');
        const b = typeof have === 'number' ? num(want, NaN) : String(want ?? '');
        switch (op) {
          case 0: return a === b;
          case 1: return a > b;
          case 2: return a >= b;
          case 4: return a < b;
          case 5: return a <= b;
          case 6: return a !== b;
          default: return false;
        }
      }),
    );
    return { status: 200, body: { total: hits.length, data: hits.slice(pageNumber * pageSize, pageNumber * pageSize + pageSize) } };
  }

  // ================================================================ records

  private seed(): void {
    for (const p of this.opts.persons ?? []) this.insert('person', p, this.crmUserId, false, true);
    for (const o of this.opts.organizations ?? []) this.insert('organization', o, this.crmUserId, false, true);
    for (const q of this.opts.quotes ?? []) this.insert('quote', q, this.crmUserId, false, true);
    for (const i of this.opts.invoices ?? []) this.insert('invoice', i, this.crmUserId, false, true);
  }

  private ofKind(kind: CrmSimKind): CrmRecord[] {
    const out: CrmRecord[] = [];
    for (const s of this.records.values()) if (s.kind === kind) out.push(clone(s.data));
    return out;
  }

  /** A strictly increasing time stamp (ms), so every change has a later modifyDate. */
  private stamp(): number {
    const now = Date.now();
    this.lastStamp = now > this.lastStamp ? now : this.lastStamp + 1;
    return this.lastStamp;
  }

  private insert(kind: CrmSimKind, input: Record<string, unknown>, userId: string, webhook: boolean, helper: boolean): CrmRecord {
    const given = helper ? { ...input } : input;
    const subtype = typeof given.subtype === 'string' ? given.subtype : this.defaultSubtype(kind);
    if (helper) delete given.subtype;
    const crmId = helper && typeof given.crmId === 'string' && given.crmId ? given.crmId.toLowerCase() : guid();
    if (this.records.has(crmId)) throw new Error(`CrmSim: a record with id ${crmId} already exists`);
    const data = kind === 'person' || kind === 'organization' ? this.buildIdentity(kind, crmId, given, userId) : this.buildDoc(kind, crmId, given, userId);
    const stored: Stored = { kind, data, subtype };
    this.records.set(crmId, stored);
    if (kind === 'person' || kind === 'organization') {
      this.identityOrder.push(crmId);
      this.version++;
    }
    if (webhook) this.fireFor('Insert', stored);
    return clone(data);
  }

  private remove(id: string): boolean {
    const s = this.records.get(id);
    if (!s) return false;
    this.records.delete(id);
    if (s.kind === 'person' || s.kind === 'organization') {
      const i = this.identityOrder.indexOf(id);
      if (i >= 0) this.identityOrder.splice(i, 1);
      this.version++;
    }
    return true;
  }

  private defaultSubtype(kind: CrmSimKind): string {
    switch (kind) {
      case 'person':
        return this.opts.personSubtype ?? CRM_SIM_DEFAULTS.personSubtype;
      case 'organization':
        return this.opts.organizationSubtype ?? CRM_SIM_DEFAULTS.organizationSubtype;
      case 'quote':
        return this.opts.quoteSubtype ?? CRM_SIM_DEFAULTS.quoteSubtype;
      case 'invoice':
        return this.opts.invoiceSubtype ?? CRM_SIM_DEFAULTS.invoiceSubtype;
    }
  }

  private buildIdentity(kind: 'person' | 'organization', crmId: string, input: Record<string, unknown>, userId: string): CrmRecord {
    const at = crmLocalTime(this.stamp());
    const rec: CrmRecord = {
      crmId,
      crmObjectTypeName: kind === 'person' ? this.opts.personSubtype ?? CRM_SIM_DEFAULTS.personSubtype : this.opts.organizationSubtype ?? CRM_SIM_DEFAULTS.organizationSubtype,
      crmObjectTypeCode: kind,
      crmObjectTypeIndex: kind === 'person' ? 1 : 2,
      crmObjectTypeId: TYPE_IDS[kind],
      identityTypeName: kind === 'person' ? 'حقیقی' : 'حقوقی',
      parentCrmObjectId: null,
      extendedProperties: [],
      creatDate: at,
      modifyDate: at,
      creatorId: userId,
      modifierId: userId,
      assignedToId: userId,
      tags: [],
      refId: null,
      stage: null,
      stageId: null,
      processLifePathIndex: null,
      description: null,
      subject: null,
      nickName: '',
      phoneContacts: [],
      addressContacts: [],
      email: null,
      alternativeEmail: null,
      website: null,
      sourceTypeName: null,
      customerNumber: null,
      colorName: null,
      classification: null,
      customerDate: null,
      balance: 0,
      categories: [],
      dontSms: false,
      dontSocialSms: false,
      dontPhoneCall: false,
      dontEmail: false,
      dontFax: false,
      supportUsername: null,
      saleUsername: null,
      otherUsername: null,
      facebookUsername: null,
      preferredContactType: null,
      nationalCode: null,
      economicCode: null,
      ...(kind === 'person'
        ? {
            firstName: null,
            lastName: null,
            birthDate: null,
            gender: null,
            personPrefix: null,
            degree: null,
            creditType: null,
            spouse: null,
            paymentStatusType: null,
            areasOfInterest: null,
            hobbies: null,
            children: null,
            mannerType: null,
            organizations: [],
          }
        : {
            businessType: null,
            registerNumber: null,
            registerDate: null,
            shareType: null,
            trademark: null,
            ownershipType: null,
            tradeType: null,
            managerId: null,
            employees: [],
          }),
    };
    for (const [k, v] of Object.entries(input)) {
      if (k === 'crmId' || v === undefined) continue;
      rec[k] = clone(v);
    }
    this.normalizeIdentity(rec);
    return rec;
  }

  /** Give contacts ids and the full field set, categories their identity id, as the CRM stores them. */
  private normalizeIdentity(rec: CrmRecord): void {
    if (Array.isArray(rec.phoneContacts)) {
      rec.phoneContacts = (rec.phoneContacts as Array<Record<string, unknown>>).map((p) => ({
        id: typeof p.id === 'string' && p.id ? p.id : guid(),
        default: p.default === true,
        phoneType: p.phoneType ?? null,
        phoneNumber: p.phoneNumber ?? null,
        continuedNumber: p.continuedNumber ?? null,
        extension: p.extension ?? null,
      }));
    }
    if (Array.isArray(rec.addressContacts)) {
      rec.addressContacts = (rec.addressContacts as Array<Record<string, unknown>>).map((a) => ({
        id: typeof a.id === 'string' && a.id ? a.id : guid(),
        default: a.default === true,
        country: a.country ?? null,
        state: a.state ?? null,
        city: a.city ?? null,
        addressType: a.addressType ?? null,
        areaCode: a.areaCode ?? null,
        address: a.address ?? null,
        zipCode: a.zipCode ?? null,
        zipBox: a.zipBox ?? null,
        longitude: a.longitude ?? null,
        latitude: a.latitude ?? null,
      }));
    }
    if (Array.isArray(rec.categories)) {
      rec.categories = (rec.categories as Array<Record<string, unknown>>).map((c) => ({
        identityId: rec.crmId,
        id: typeof c.id === 'string' && c.id ? c.id : guid(),
        name: c.name ?? c.key ?? null,
        key: c.key ?? null,
        type: c.type ?? null,
      }));
    }
  }

  private buildDoc(kind: 'quote' | 'invoice', crmId: string, input: Record<string, unknown>, userId: string): CrmRecord {
    const identityId = input.identityId;
    if (typeof identityId !== 'string' || !identityId) throw new Error(`CrmSim.add${kind === 'quote' ? 'Quote' : 'Invoice'}: identityId is required`);
    const at = crmLocalTime(this.stamp());
    const customer = this.records.get(identityId)?.data;
    const subject = customer
      ? `${String(customer.nickName ?? '')}(مشتری) - ${String(customer.customerNumber ?? '')}(${kind === 'quote' ? 'پیش فاکتور فروش' : 'فاکتور فروش'})`
      : '';
    const rec: CrmRecord = {
      crmId,
      crmObjectTypeCode: kind === 'quote' ? 'PI_5' : 'SI_1',
      crmObjectTypeId: TYPE_IDS[kind],
      crmObjectTypeIndex: kind === 'quote' ? 8 : 9,
      crmObjectTypeName: null,
      crmObjectTypeIndexPreview: null,
      identityId,
      identityIdPreview: null,
      subject,
      description: '',
      number: '',
      refId: '',
      priceListName: '',
      ...(kind === 'quote' ? { quoteType: 'Quote', quoteDate: null } : { invoiceType: 'Invoice', invoiceDate: null, relatedQuoteId: null }),
      expireDate: null,
      creatDate: at,
      modifyDate: at,
      totalValue: 0,
      discount: 0,
      vat: 0,
      toll: 0,
      finalValue: 0,
      additionalCosts: null,
      vatPercent: 9,
      tollPercent: 0,
      discountPercent: 0,
      totalDiscountPercent: 0,
      billableObjectState: null,
      billableObjectStateIndex: 1,
      stageId: null,
      parentCrmObjectId: null,
      color: null,
      extendedProperties: [],
      tags: [],
      processLifePaths: [],
      creatorId: userId,
      creatorIdPreview: null,
      modifierId: userId,
      modifierIdPreview: null,
      assignedToId: userId,
      assignedToIdPreview: null,
      details: [],
    };
    for (const [k, v] of Object.entries(input)) {
      if (k === 'crmId' || k === 'details' || v === undefined) continue;
      rec[k] = clone(v);
    }
    const rows = Array.isArray(input.details) ? (input.details as Array<Record<string, unknown>>) : [{}];
    this.setDetails(kind, rec, rows, input);
    return rec;
  }

  /** Complete detail rows (totals, VAT) and, unless given, the header sums. */
  private setDetails(kind: 'quote' | 'invoice', rec: CrmRecord, rows: Array<Record<string, unknown>>, given: Record<string, unknown>): void {
    const vatPercent = num(rec.vatPercent, 9);
    const details = rows.map((r, i) => {
      const count = num(r.count, 1);
      const base = num(r.baseUnitPrice, 100_000);
      const totalUnitPrice = num(r.totalUnitPrice, round2(base * count));
      const discountPercent = num(r.discountPercent, 0);
      const totalDiscount = num(r.totalDiscount, round2((totalUnitPrice * discountPercent) / 100));
      const totalVat = num(r.totalVat, round2(((totalUnitPrice - totalDiscount) * vatPercent) / 100));
      const row: Record<string, unknown> = {
        productCode: `Product-${i + 1}`,
        productId: guid(),
        productName: `کالای ${i + 1}`,
        isService: false,
        baseUnitPrice: base,
        finalUnitPrice: round2(base * (1 + vatPercent / 100)),
        count,
        returnedCount: 0,
        totalUnitPrice,
        totalDiscount,
        totalVat,
        totalToll: 0,
        discountPercent,
        detailDescription: '',
        productUnitTypeName: 'قطعه',
        serial: null,
        ...(kind === 'invoice' ? { inventoryName: null, inventoryCode: null } : {}),
      };
      for (const [k, v] of Object.entries(r)) if (v !== undefined) row[k] = clone(v);
      return row;
    });
    rec.details = details;
    const sum = (k: string) => round2(details.reduce((n, d) => n + num(d[k], 0), 0));
    if (given.totalValue === undefined) rec.totalValue = sum('totalUnitPrice');
    if (given.discount === undefined) rec.discount = sum('totalDiscount');
    if (given.vat === undefined) rec.vat = sum('totalVat');
    if (given.toll === undefined) rec.toll = sum('totalToll');
    if (given.finalValue === undefined) rec.finalValue = round2(num(rec.totalValue, 0) - num(rec.discount, 0) + num(rec.vat, 0) + num(rec.toll, 0));
  }

  private applyPatch(s: Stored, patch: Record<string, unknown>, mode: 'merge' | 'replace', userId: string, helper: boolean): void {
    const rec = s.data;
    if (helper && typeof patch.subtype === 'string') s.subtype = patch.subtype;
    if (mode === 'replace' && (s.kind === 'person' || s.kind === 'organization')) {
      for (const k of [...IDENTITY_FIELDS, ...(s.kind === 'person' ? PERSON_FIELDS : ORGANIZATION_FIELDS)]) {
        if (!(k in patch)) rec[k] = Array.isArray(rec[k]) ? [] : null;
      }
    }
    for (const [k, v] of Object.entries(patch)) {
      if (k === 'crmId' || k === 'crmObjectTypeCode' || k === 'subtype' || k === 'details' || v === undefined) continue;
      rec[k] = clone(v);
    }
    if (s.kind === 'person' || s.kind === 'organization') {
      this.normalizeIdentity(rec);
      this.version++;
    } else if (Array.isArray(patch.details)) {
      this.setDetails(s.kind, rec, patch.details as Array<Record<string, unknown>>, patch);
    }
    rec.modifyDate = crmLocalTime(this.stamp());
    rec.modifierId = userId;
  }

  // ================================================================ webhooks

  private initialWebhookCfg() {
    return {
      url: this.opts.webhookUrl,
      urls: { ...(this.opts.webhookUrls ?? {}) },
      token: this.opts.webhookToken,
      enabled: this.opts.webhooks ?? true,
    };
  }

  private fireFor(event: 'Insert' | 'Update', s: Stored): void {
    const type = s.kind === 'quote' ? 'Quote' : s.kind === 'invoice' ? 'Invoice' : 'Identity';
    this.fire(event, s.data.crmId, type, s.subtype);
  }

  private fire(event: 'Insert' | 'Update', id: string, type: 'Identity' | 'Quote' | 'Invoice', subtype: string): void {
    const cfg = this.webhookCfg;
    const base = cfg.urls[type] ?? cfg.url;
    if (!cfg.enabled || !base) return;
    const query = new URLSearchParams({ event, id, type, subtype }).toString();
    const logUrl = `${base}${base.includes('?') ? '&' : '?'}${query}`;
    const url = cfg.token ? `${logUrl}&${new URLSearchParams({ token: cfg.token }).toString()}` : logUrl;
    const entry: WebhookDelivery = { event, id, type, subtype, url: logUrl, at: new Date().toISOString() };
    const delay = this.opts.webhookDelayMs ?? 0;
    this.pending++;
    this.chain = this.chain
      .then(() => new Promise<void>((r) => setTimeout(r, delay)))
      .then(() => this.deliver(url, entry))
      .catch(() => undefined)
      .finally(() => {
        this.pending--;
      });
  }

  /** One body-less GET with only Host and Connection headers; the outcome goes into the log. */
  private deliver(url: string, entry: WebhookDelivery): Promise<void> {
    return new Promise<void>((resolve) => {
      let done = false;
      const finish = (status?: number, error?: string) => {
        if (done) return;
        done = true;
        if (status !== undefined) entry.status = status;
        if (error !== undefined) entry.error = error;
        this.deliveries.push(entry);
        resolve();
      };
      let target: URL;
      try {
        target = new URL(url);
      } catch {
        finish(undefined, 'invalid webhook URL');
        return;
      }
      const isHttps = target.protocol === 'https:';
      const mod = isHttps ? https : http;
      try {
        const req = mod.request(
          target,
          { method: 'GET', agent: isHttps ? this.httpsAgent : this.httpAgent, headers: { Connection: 'Keep-Alive' } },
          (res) => {
            res.resume();
            res.on('end', () => finish(res.statusCode));
            res.on('error', (e) => finish(res.statusCode, e.message));
          },
        );
        req.setTimeout(this.opts.webhookTimeoutMs ?? 10_000, () => {
          req.destroy(new Error('timeout'));
        });
        req.on('error', (e) => finish(undefined, (e as NodeJS.ErrnoException).code ?? e.message));
        req.end();
      } catch (e) {
        finish(undefined, (e as Error).message);
      }
    });
  }
}

/** Lower-case path → route name (`kind.op`, `identity.search`, `login`). */
const ROUTES: Record<string, string> = {
  '/api/v2/auth/login': 'login',
  '/api/v2/crmobject/identity/search': 'identity.search',
  '/api/v2/crmobject/quote/sales/get': 'quote.get',
  '/api/v2/crmobject/invoice/sales/get': 'invoice.get',
  // Same body and reply as person/find (the vendor's C# client, docs/crm-api.md#quotes-and-invoices); rows as quote/sales/get.
  '/api/v2/crmobject/quote/sales/find': 'quote.find',
  '/api/v2/crmobject/invoice/sales/find': 'invoice.find',
};
for (const kind of ['person', 'organization']) {
  for (const op of ['get', 'create', 'update', 'delete', 'find']) ROUTES[`/api/v2/crmobject/${kind}/${op}`] = `${kind}.${op}`;
}
