/**
 * Refused webhook requests, kept for the operator (like the old service's view-webhooks): a count
 * per reason and the last N requests, redacted — the token never, not even its length.
 *
 * Memory is bounded: N entries (at most MAX_KEEP), each with clipped texts and at most a few
 * query fields and headers. Nothing here knows Node-RED.
 */
import { clip, hideSecrets } from '../oplog/scrub';
import { redactTokenParam } from './webhook';

export const DEFAULT_KEEP = 50;
export const MAX_KEEP = 1000;

/** Headers whose value is never shown. */
export const SECRET_HEADERS = /^(authorization|proxy-authorization|cookie|set-cookie|x-api-key|x-webhook-token|x-auth-token|x-webhook-signature)$/i;
/** Keys whose value is never shown (query fields, body fields, header names). */
const SECRET_KEY = /^(token|access_token|password|secret|api[-_]?key)$/i;

const MAX_URL = 300;
const MAX_VALUE = 100;
const MAX_FIELDS = 20;
const MAX_HEADERS = 20;

export interface RequestLike {
  method?: string;
  url?: string;
  originalUrl?: string;
  query?: unknown;
  headers?: Record<string, unknown>;
}

export interface RejectionEntry {
  /** ISO time. */
  at: string;
  method: string;
  /** Path and query, token values shown as ***. */
  url: string;
  query: Record<string, unknown>;
  headers: Record<string, unknown>;
  reason: string;
  status: number;
  /** The reply's error sentence (never a sent value of any length, never the token). */
  error?: string;
}

export interface RejectionSnapshot {
  total: number;
  counts: Record<string, number>;
  /** Newest first. */
  recent: RejectionEntry[];
  keep: number;
}

/**
 * A copy with every token-like key shown as ***, every token= parameter in a text as ***, and each
 * known secret replaced wherever it occurs. Depth-limited; binary data shown by its size only.
 */
export function redactDeep(v: unknown, secrets: ReadonlyArray<string | undefined>, depth = 0): unknown {
  if (typeof v === 'string') return redactTokenParam(hideSecrets(v, secrets));
  if (depth > 6 || v === null || typeof v !== 'object') return v;
  if (Buffer.isBuffer(v)) return `<${v.length} bytes>`;
  if (Array.isArray(v)) return v.map((x) => redactDeep(x, secrets, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) out[k] = SECRET_KEY.test(k) ? '***' : redactDeep(x, secrets, depth + 1);
  return out;
}

/** Headers with credentials shown as *** and secrets hidden in the others. */
export function redactHeaders(headers: Record<string, unknown> | undefined, secrets: ReadonlyArray<string | undefined>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(headers ?? {})) out[k] = SECRET_HEADERS.test(k) || SECRET_KEY.test(k) ? '***' : redactDeep(v, secrets);
  return out;
}

/** A short, redacted value for the rejection list. */
function small(v: unknown, secrets: ReadonlyArray<string | undefined>): unknown {
  const r = redactDeep(v, secrets);
  if (typeof r === 'string') return clip(r, MAX_VALUE);
  if (r === null || typeof r !== 'object') return r;
  return clip(JSON.stringify(r) ?? '', MAX_VALUE);
}

function bounded(obj: Record<string, unknown>, max: number, secrets: ReadonlyArray<string | undefined>, isSecret: (k: string) => boolean): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const keys = Object.keys(obj);
  for (const k of keys.slice(0, max)) out[clip(k, 40)] = isSecret(k) ? '***' : small(obj[k], secrets);
  if (keys.length > max) out['…'] = `${keys.length - max} more`;
  return out;
}

/** What the rejection list keeps of a request: method, URL, query and headers, redacted and clipped. */
export function describeRequest(req: RequestLike | undefined, secrets: ReadonlyArray<string | undefined>): Pick<RejectionEntry, 'method' | 'url' | 'query' | 'headers'> {
  const query = req?.query && typeof req.query === 'object' && !Array.isArray(req.query) ? (req.query as Record<string, unknown>) : {};
  return {
    method: clip(String(req?.method ?? '').toUpperCase() || '?', 10),
    url: clip(redactTokenParam(hideSecrets(String(req?.originalUrl ?? req?.url ?? ''), secrets)), MAX_URL),
    query: bounded(query, MAX_FIELDS, secrets, (k) => SECRET_KEY.test(k)),
    headers: bounded(req?.headers ?? {}, MAX_HEADERS, secrets, (k) => SECRET_HEADERS.test(k) || SECRET_KEY.test(k)),
  };
}

/** A count per reason and a ring of the last `keep` refused requests. */
export class RejectionLog {
  readonly keep: number;
  private readonly ring: RejectionEntry[] = [];
  private next = 0;
  private readonly counts = new Map<string, number>();
  private total = 0;

  constructor(keep: number = DEFAULT_KEEP) {
    this.keep = Number.isFinite(keep) ? Math.max(0, Math.min(MAX_KEEP, Math.floor(keep))) : DEFAULT_KEEP;
  }

  /** Count and keep one refused request (already redacted by describeRequest). */
  add(e: { reason: string; status: number; error?: string; at?: number } & Pick<RejectionEntry, 'method' | 'url' | 'query' | 'headers'>): void {
    this.total++;
    this.counts.set(e.reason, (this.counts.get(e.reason) ?? 0) + 1);
    if (this.keep === 0) return;
    const entry: RejectionEntry = {
      at: new Date(e.at ?? Date.now()).toISOString(),
      method: e.method,
      url: e.url,
      query: e.query,
      headers: e.headers,
      reason: e.reason,
      status: e.status,
    };
    if (e.error) entry.error = clip(e.error, 300);
    if (this.ring.length < this.keep) this.ring.push(entry);
    else this.ring[this.next] = entry;
    this.next = (this.next + 1) % this.keep;
  }

  /** Counts per reason and the kept entries, newest first. */
  snapshot(): RejectionSnapshot {
    const recent: RejectionEntry[] = [];
    const n = this.ring.length;
    // The newest entry sits just before `next` (once the ring is full; before that, at the end).
    for (let i = 1; i <= n; i++) recent.push(this.ring[(this.next - i + n * 2) % n]);
    return { total: this.total, counts: Object.fromEntries(this.counts), recent, keep: this.keep };
  }
}
