/**
 * Paging through CRM lists: identity/search and the finds (person, organization, quote, invoice).
 * Both page from 0 until an EMPTY page (docs/known-faults.md#paging), never stopping on a short
 * page, so a server-side page-size cap cannot hide records; a page that repeats, or a list that
 * never ends, stops with CRM_ERROR instead of looping.
 */
import { SyncError, isSyncError } from '../errors';
import type { HttpReply } from '../http/http-core';
import type { CrmIdentitySummary, IdentityKind } from '../types';
import { CRM_PATHS } from './paths';
import { expectOk } from './reply';
import { parseIdentitySearch } from './schemas';

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

/** An authenticated POST to the CRM (the session's). */
export type CrmPost = (path: string, body: unknown, idempotent: boolean) => Promise<HttpReply>;

/** The client's defaults: page size asked, and the safety stop for a list that never ends. */
export interface PageLimits {
  pageSize: number;
  maxPages: number;
}

export function positiveInt(v: number | undefined, dflt: number, name: string): number {
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

/**
 * Pages of identity/search from page 0 until the CRM returns an empty page. A short page does
 * not end the search (the server may cap the page size:
 * docs/known-faults.md#paging, docs/open-questions.md#crm-errors-and-paging).
 */
export async function* searchIdentityPages(post: CrmPost, opts: IdentitySearchOptions, limits: PageLimits): AsyncGenerator<CrmIdentitySummary[]> {
  const path = CRM_PATHS.search;
  const pageSize = positiveInt(opts.pageSize, limits.pageSize, 'pageSize');
  const identityType = typeNumber(opts.identityType);
  let previous = '';
  for (let pageNumber = 0; ; pageNumber++) {
    if (pageNumber >= limits.maxPages) {
      throw new SyncError(
        'CRM_ERROR',
        `The CRM identity search did not end after ${limits.maxPages} pages (it never returned an empty page). The search was stopped; report this to the maintainers.`,
        { path },
      );
    }
    const body: Record<string, unknown> = { pageNumber, pageSize, searchTerm: opts.searchTerm ?? '' };
    if (identityType !== undefined) body.identityType = identityType;
    const r = await post(path, body, true);
    const data = expectOk(r, path, 'the identity search');
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

/** Pages of a find (`{queries, pageNumber, pageSize}` → `{total, data}`) until an empty page. */
export async function* findPages(post: CrmPost, kind: CrmFindKind, opts: IdentityFindOptions, limits: PageLimits): AsyncGenerator<CrmFindPage> {
  const path = FIND_PATH[kind];
  const name = findName(kind);
  const pageSize = positiveInt(opts.pageSize, limits.pageSize, 'pageSize');
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
    if (pageNumber >= limits.maxPages) {
      throw new SyncError('CRM_ERROR', `The CRM ${name} did not end after ${limits.maxPages} pages (it never returned an empty page). The listing was stopped; report this to the maintainers.`, { path });
    }
    const r = await post(path, { queries, pageNumber, pageSize }, true);
    const data = expectOk(r, path, `the ${name}`);
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
