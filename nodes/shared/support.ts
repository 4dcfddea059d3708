/**
 * What every node of this package does the same way: the `msg.sync` trace (its shape, SyncTrace,
 * is in lib/oplog/trace.ts, where the log reads it), the status dot, error reporting to Catch
 * nodes, and keeping secrets out of all of it.
 */
import { randomUUID } from 'node:crypto';
import { SyncError, toSyncError } from '../../lib/errors';
import { clip, hideSecrets } from '../../lib/oplog/scrub';
import type { ErrorFacts, SyncTrace } from '../../lib/oplog/trace';
import type { Node, NodeMessage } from './red';

/** The facts of a SyncError worth keeping (undefined and false flags left out). */
export function errorFacts(err: SyncError): ErrorFacts {
  const f: ErrorFacts = {};
  if (err.status !== undefined) f.status = err.status;
  if (err.retryAfterSec !== undefined) f.retryAfterSec = err.retryAfterSec;
  if (err.ambiguous) f.ambiguous = true;
  if (err.retryable) f.retryable = true;
  return f;
}

const MAX_WARNINGS = 5;
const MAX_TEXT = 140;

/** The trace of a message, created on first use (a new traceId), kept across nodes. */
export function traceOf(msg: NodeMessage): SyncTrace {
  const t = msg.sync as SyncTrace | undefined;
  if (t && typeof t === 'object' && typeof t.traceId === 'string') {
    if (!Array.isArray(t.warnings)) t.warnings = [];
    if (typeof t.attempts !== 'number') t.attempts = 0;
    if (typeof t.startedAt !== 'number') t.startedAt = Date.now();
    return t;
  }
  const fresh: SyncTrace = { traceId: randomUUID().slice(0, 8), attempts: 0, durationMs: 0, startedAt: Date.now(), warnings: [] };
  msg.sync = fresh;
  return fresh;
}

/** Update the trace: fields given, warnings appended (de-duplicated, capped), duration refreshed. */
export function updateTrace(msg: NodeMessage, patch: Partial<Omit<SyncTrace, 'warnings'>> & { warnings?: string[] }): SyncTrace {
  const t = traceOf(msg);
  const { warnings, ...rest } = patch;
  for (const [k, v] of Object.entries(rest)) {
    if (v === undefined) continue;
    (t as unknown as Record<string, unknown>)[k] = typeof v === 'string' ? clip(v, MAX_TEXT) : v;
  }
  for (const w of warnings ?? []) {
    const c = clip(w, MAX_TEXT);
    if (!t.warnings.includes(c) && t.warnings.length < MAX_WARNINGS) t.warnings.push(c);
  }
  t.durationMs = Date.now() - t.startedAt;
  fitTrace(t);
  return t;
}

/** The whole trace as JSON stays under 1000 characters (the debug sidebar shows it whole). */
const TRACE_BUDGET = 990;

/**
 * Shrink a trace that grew past the budget (five long warnings plus an error can): warnings are
 * shortened, then the last ones dropped (counted in a `+N more` entry), then the error message and
 * the other texts shortened. The first warning and the error code always stay.
 */
function fitTrace(t: SyncTrace): void {
  const size = () => JSON.stringify(t).length;
  if (size() <= TRACE_BUDGET) return;
  t.warnings = t.warnings.map((w) => clip(w, 80));
  let dropped = 0;
  const more = /^\+(\d+) more$/;
  const last = t.warnings[t.warnings.length - 1];
  if (last && more.test(last)) {
    dropped = Number(more.exec(last)![1]);
    t.warnings.pop();
  }
  while (size() > TRACE_BUDGET - 12 && t.warnings.length > 1) {
    t.warnings.pop();
    dropped++;
  }
  if (dropped) t.warnings.push(`+${dropped} more`);
  if (size() > TRACE_BUDGET && t.error) t.error = { ...t.error, message: clip(t.error.message, 120) };
  if (size() > TRACE_BUDGET) {
    const rec = t as unknown as Record<string, unknown>;
    for (const k of Object.keys(rec)) if (typeof rec[k] === 'string' && k !== 'traceId') rec[k] = clip(rec[k] as string, 60);
    t.warnings = t.warnings.map((w) => clip(w, 60));
  }
}

/**
 * Report a failure the Node-RED way: the trace says `failed`, the status turns red with a short
 * reason, and `done(err)` hands the msg to Catch nodes (err.code is stable, e.g. CRM_NOT_FOUND).
 */
export function fail(node: Node<any>, msg: NodeMessage, e: unknown, done: (err?: Error) => void, secrets: Array<string | undefined> = []): void {
  const err = toSyncError(e);
  const message = hideSecrets(err.message, secrets);
  // Always a fresh error without the original `cause`: Node-RED copies err.cause onto msg.error for
  // Catch and Debug nodes, and a transport cause (an AxiosError) holds the request it failed on —
  // for a login, its body with the password. The cause handed over instead is a plain object of
  // the retry facts ({code, status, retryAfterSec, ambiguous, retryable}: msg.error.cause), which
  // Node-RED would otherwise drop. The stack frames are kept for debugging.
  const facts = errorFacts(err);
  const clean = new SyncError(err.code, message, {
    cause: { code: err.code, ...facts },
    status: err.status,
    details: err.details.map((d) => hideSecrets(d, secrets)),
    column: err.column,
    path: err.path,
    retryable: err.retryable,
    ambiguous: err.ambiguous,
    retryAfterSec: err.retryAfterSec,
    review: err.review,
  });
  // A review item's facts travel on the message (Node-RED copies only message, code and stack of
  // the error onto a Catch node's msg.error): msg.review = {code, ...facts}.
  if (clean.review) msg.review = { code: clean.code, ...clean.review };
  else delete msg.review;
  const frames = ((e instanceof Error ? e.stack : err.stack) ?? '').split('\n').filter((l) => /^\s+at /.test(l));
  if (frames.length) clean.stack = `${clean.name}: ${message}\n${frames.join('\n')}`;
  updateTrace(msg, { action: 'failed', error: { code: clean.code, message: clip(message, 300), ...facts } });
  node.status({ fill: 'red', shape: 'dot', text: shortReason(clean) });
  done(clean);
}

export function shortReason(err: SyncError): string {
  const map: Partial<Record<string, string>> = {
    NETWORK: 'unreachable',
    TIMEOUT: 'timeout',
    TLS: 'TLS error',
    HTTP_5XX: 'server error',
    RATE_LIMITED: 'rate limited',
    BAD_REPLY: 'bad reply',
    SIAGH_LOGIN_FAILED: 'login failed',
    SIAGH_SESSION_EXPIRED: 'session expired',
    SIAGH_FORM_ERROR: 'Siagh rejected',
    SIAGH_DUPLICATE: 'duplicate in Siagh',
    SIAGH_UNKNOWN_CUSTOMER: 'unknown code',
    CRM_BAD_CREDENTIALS: 'bad credentials',
    CRM_MODULE_MISSING: 'module missing',
    CRM_LOCKED_OUT: 'locked out',
    CRM_LOGIN_FAILED: 'login failed',
    CRM_NOT_FOUND: 'not found',
    CRM_ERROR: 'CRM error',
    BAD_INPUT: 'bad input',
    CONFIG: 'config error',
    MAPPING_CONFLICT: 'mapping conflict',
    MAPPING_BUSY: 'busy',
    STORE_LOCKED: 'store locked',
    STORE_IO: 'store error',
    CUSTOMER_NOT_MAPPED: 'customer not synced',
    AMBIGUOUS_CREATE: 'check Siagh',
    LEASE_EXPIRED: 'lease ran out',
    LINK_NEEDS_REVIEW: 'link needs review',
    DOCUMENT_CHANGED_AFTER_TRANSFER: 'changed after transfer',
  };
  return map[err.code] ?? 'failed';
}

/** Counts shown in a green status: "12 ok · 1 failed". */
export class StatusCounter {
  ok = 0;
  failed = 0;
  constructor(private readonly node: Node<any>, private readonly label = 'ok') {}

  success(text?: string): void {
    this.ok++;
    this.node.status({ fill: 'green', shape: 'dot', text: text ?? this.summary() });
  }

  failure(): void {
    this.failed++;
  }

  retrying(text = 'retrying…'): void {
    this.node.status({ fill: 'yellow', shape: 'ring', text });
  }

  summary(): string {
    return `${this.ok} ${this.label}` + (this.failed ? ` · ${this.failed} failed` : '');
  }
}

/** A positive number from a node property, or the default. */
export function num(value: unknown, dflt: number, min = 0): number {
  const n = typeof value === 'number' ? value : Number(String(value ?? '').trim());
  return Number.isFinite(n) && n >= min && String(value ?? '').trim() !== '' ? n : dflt;
}
