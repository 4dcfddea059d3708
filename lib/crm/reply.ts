/**
 * Reading the CRM's replies: its error text (`serverMessage`), "no such record" told apart from a
 * wrong URL, and `expectOk`, which turns a reply into its data or the right SyncError.
 */
import { SyncError } from '../errors';
import type { HttpReply } from '../http/http-core';
import { clip } from '../oplog/scrub';

/** Server texts meaning "no such record" (English, Persian; Arabic yeh tolerated). */
const NOT_FOUND_RE = /not\s*found|not\s*exist|doesn'?t\s*exist|یافت\s*نشد|يافت\s*نشد|وجود\s*ندارد|وجود\s*نداره|پیدا\s*نشد/i;
/** A 404 that is about the route, not the record: the URL or the CRM version is wrong. */
const ROUTE_MISS_RE = /no\s+http\s+resource|no\s+route|no\s+action\s+was\s+found|endpoint/i;

/** A 2xx reply's data, or the right SyncError (CRM_NOT_FOUND when `notFoundOf` is given). */
export function expectOk(r: HttpReply, path: string, what: string, notFoundOf?: string): unknown {
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

export function messageDetails(r: HttpReply): string[] {
  const m = serverMessage(r.data, r.text);
  return m ? [m] : [];
}

/**
 * The server's error text. The CRM's error shape was never captured (docs/open-questions.md#crm-errors-and-paging), so the usual ASP.NET /
 * OAuth fields are tried in turn, then the raw text (shortened).
 */
export function serverMessage(data: unknown, text: string): string | undefined {
  if (typeof data === 'string' && data.trim()) return oneLine(data);
  if (data && typeof data === 'object' && !Array.isArray(data)) {
    const o = data as Record<string, unknown>;
    for (const k of ['message', 'Message', 'errorMessage', 'ErrorMessage', 'error_description', 'error', 'Error', 'title', 'detail', 'ExceptionMessage']) {
      const v = o[k];
      if (typeof v === 'string' && v.trim()) return oneLine(v);
      if (v && typeof v === 'object') {
        const inner = serverMessage(v, '');
        if (inner) return inner;
      }
    }
    // ASP.NET validation problem: { errors: { field: ["text"] } }
    if (o.errors && typeof o.errors === 'object') {
      const texts = Object.entries(o.errors as Record<string, unknown>).flatMap(([f, v]) => (Array.isArray(v) ? v.map((x) => `${f}: ${String(x)}`) : []));
      if (texts.length) return oneLine(texts.join('; '));
    }
  }
  const t = text.replace(/\s+/g, ' ').trim();
  if (!t || /^\s*</.test(t)) return undefined;
  return oneLine(t);
}

/** The server's text on one line, at most 300 characters and …. */
function oneLine(s: string): string {
  return clip(s.replace(/\s+/g, ' ').trim(), 301);
}

/** For replies with status ≥ 500: JSON whose message says "not found" is an answer, not a fault. */
export function looksNotFound(text: string): boolean {
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
