/**
 * The retry policy of the durable sync queue (issue #9): which failures are worth another try,
 * how long to wait, and when to give up.
 *
 * `classify(err)` reads a SyncError, or the plain object a Catch node delivers as `msg.error`
 * ({message, code, source, cause}: Node-RED keeps only message, code, stack and cause of the
 * Error; nodes/shared/support.ts fail() puts the retry facts {status, retryAfterSec, ambiguous,
 * retryable} on the cause), or a plain object with those fields at its top level, or a whole
 * message whose `error` / `sync.error` carries them.
 *
 * Kinds:
 * - transient: try again later (timeouts and dropped connections on reads and idempotent calls,
 *   5xx, NETWORK, 429, a Siagh session refused even after the client's own re-login, a CRM lock-out,
 *   a busy mapping store). `retryAfterMs` when the server or the client knows how long to wait
 *   (429 Retry-After, in full whatever its length; the CRM lock-out cool-down).
 * - permanent: the same request will fail the same way until someone changes data or settings
 *   (form errors, duplicates, bad input, config, not found, mapping conflicts; any code not known
 *   here, e.g. LINK_NEEDS_REVIEW, DOCUMENT_CHANGED_AFTER_TRANSFER).
 * - ambiguous: a create may or may not have happened (AMBIGUOUS_CREATE, or any failure flagged
 *   `ambiguous: true`): never repeated blindly, someone checks first.
 * - dependency: waits for another record (CUSTOMER_NOT_MAPPED: the quote's customer is not synced
 *   yet); retry after that record is synced.
 */

export type RetryKind = 'transient' | 'permanent' | 'ambiguous' | 'dependency';

export interface Classification {
  kind: RetryKind;
  /** How long to wait before the next try, when known (429 Retry-After, CRM lock-out cool-down). */
  retryAfterMs?: number;
  /** Short English reason for logs and the failed list: `<CODE>: why`. */
  reason: string;
}

/** Always worth another try later (the server, the network or a lock will recover). */
const TRANSIENT: Record<string, string> = {
  TIMEOUT: 'the server did not answer in time',
  NETWORK: 'the server could not be reached or the connection was dropped',
  HTTP_5XX: 'the server had an internal error',
  RATE_LIMITED: 'the server asked to slow down (429)',
  SIAGH_SESSION_EXPIRED: 'Siagh refused the session even after a new login',
  CRM_LOCKED_OUT: 'the CRM locked the API user out for a while',
  MAPPING_BUSY: 'the mapping is being written by another sync',
  STORE_LOCKED: 'the mapping file is locked by another process',
  STORE_IO: 'the mapping file could not be read or written',
};

/** Never worth repeating as is: data or settings must change first. */
const PERMANENT: Record<string, string> = {
  BAD_INPUT: 'the input is invalid',
  CONFIG: 'the configuration is wrong',
  TLS: 'the TLS certificate check failed',
  CRM_NOT_FOUND: 'the CRM record does not exist',
  CRM_BAD_CREDENTIALS: 'the CRM user name or password is wrong',
  CRM_MODULE_MISSING: 'the CRM lacks the module the API needs',
  CRM_LOGIN_FAILED: 'the CRM login failed',
  SIAGH_LOGIN_FAILED: 'the Siagh login failed',
  SIAGH_FORM_ERROR: 'Siagh refused the data',
  SIAGH_DUPLICATE: 'Siagh already has a contact with this number',
  SIAGH_UNKNOWN_CUSTOMER: 'a code Siagh looked up does not exist',
  MAPPING_CONFLICT: 'the mapping conflicts with an existing one',
  LINK_NEEDS_REVIEW: 'the link to an existing contact needs a review',
  DOCUMENT_CHANGED_AFTER_TRANSFER: 'the document changed after it was transferred',
};

interface Facts {
  code: string;
  message?: string;
  status?: number;
  retryAfterSec?: number;
  ambiguous?: boolean;
  retryable?: boolean;
}

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null;
}

function num(v: unknown): number | undefined {
  const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
  return Number.isFinite(n) ? n : undefined;
}

/** The facts of an error in any of its shapes; top-level fields win over those of `cause`. */
function factsOf(err: unknown): Facts {
  if (!isObj(err)) return { code: 'UNKNOWN', message: err === undefined || err === null ? undefined : String(err) };
  // A whole message from a Catch node: look at msg.error (and msg.sync.error for the facts).
  if (typeof err.code !== 'string' && (isObj(err.error) || (isObj(err.sync) && isObj((err.sync as Record<string, unknown>).error)))) {
    const fromError = isObj(err.error) ? factsOf(err.error) : undefined;
    const fromTrace = isObj(err.sync) && isObj((err.sync as Record<string, unknown>).error) ? factsOf((err.sync as Record<string, unknown>).error) : undefined;
    if (fromError && fromTrace && fromError.code === fromTrace.code) return merge(fromError, fromTrace);
    return fromError && fromError.code !== 'UNKNOWN' ? fromError : fromTrace ?? fromError ?? { code: 'UNKNOWN' };
  }
  const own: Facts = {
    code: typeof err.code === 'string' && err.code.trim() !== '' ? err.code.trim() : 'UNKNOWN',
    message: typeof err.message === 'string' ? err.message : undefined,
    status: num(err.status),
    retryAfterSec: num(err.retryAfterSec),
    ambiguous: typeof err.ambiguous === 'boolean' ? err.ambiguous : undefined,
    retryable: typeof err.retryable === 'boolean' ? err.retryable : undefined,
  };
  const cause = err.cause;
  if (isObj(cause)) {
    const c = cause as Record<string, unknown>;
    // Only the cause fail() writes (same code, or no code) completes the facts; a foreign cause
    // (an AxiosError, the TIMEOUT inside an AMBIGUOUS_CREATE) is ignored.
    if (c.code === undefined || c.code === own.code) {
      return merge(own, {
        code: own.code,
        status: num(c.status),
        retryAfterSec: num(c.retryAfterSec),
        ambiguous: typeof c.ambiguous === 'boolean' ? c.ambiguous : undefined,
        retryable: typeof c.retryable === 'boolean' ? c.retryable : undefined,
      });
    }
  }
  return own;
}

function merge(a: Facts, b: Facts): Facts {
  return {
    code: a.code,
    message: a.message ?? b.message,
    status: a.status ?? b.status,
    retryAfterSec: a.retryAfterSec ?? b.retryAfterSec,
    ambiguous: a.ambiguous ?? b.ambiguous,
    retryable: a.retryable ?? b.retryable,
  };
}

function withWait(kind: RetryKind, reason: string, retryAfterSec: number | undefined): Classification {
  const out: Classification = { kind, reason };
  if (retryAfterSec !== undefined && retryAfterSec >= 0) out.retryAfterMs = Math.round(retryAfterSec * 1000);
  return out;
}

/**
 * How the queue treats a failure. Works on a SyncError, on `msg.error` as a Catch node delivers
 * it, on a plain `{code, status?, retryAfterSec?, ambiguous?, retryable?}` and on a whole message.
 */
export function classify(err: unknown): Classification {
  const f = factsOf(err);
  const code = f.code;
  if (code === 'AMBIGUOUS_CREATE') return { kind: 'ambiguous', reason: `${code}: a create may or may not have happened; check the other system before repeating it` };
  if (code === 'CUSTOMER_NOT_MAPPED') return { kind: 'dependency', reason: `${code}: the customer is not synced yet; retry after it is` };
  // A write whose outcome is unknown (timeout, dropped connection, 5xx or broken reply after a
  // create) is never repeated blindly, whatever its code.
  if (f.ambiguous === true) return { kind: 'ambiguous', reason: `${code}: a write may or may not have happened (ambiguous); check before repeating it` };
  if (code in TRANSIENT) return withWait('transient', `${code}: ${TRANSIENT[code]}`, f.retryAfterSec);
  if (code === 'BAD_REPLY') {
    // A broken reply to a read (an HTML page from a proxy during an outage, cut JSON) is worth
    // another try; a reply of the wrong shape (retryable not set) will not change by itself.
    return f.retryable ? { kind: 'transient', reason: `${code}: the server sent a broken reply` } : { kind: 'permanent', reason: `${code}: the server's reply has an unexpected shape` };
  }
  if (code === 'HTTP_ERROR') {
    if (f.status === 408 || f.status === 425 || f.status === 429) return withWait('transient', `${code}: HTTP ${f.status}, the server asked to try later`, f.retryAfterSec);
    return { kind: 'permanent', reason: `${code}: the server refused the request${f.status !== undefined ? ` (HTTP ${f.status})` : ''}` };
  }
  if (code === 'CRM_ERROR' && f.retryable === true) return withWait('transient', `${code}: the CRM reported a passing error`, f.retryAfterSec);
  if (code in PERMANENT) return { kind: 'permanent', reason: `${code}: ${PERMANENT[code]}` };
  return { kind: 'permanent', reason: `${code}: not known to be transient${f.message ? ` (${f.message.slice(0, 120)})` : ''}` };
}

export interface BackoffOptions {
  /** The first delay's ceiling (ms). */
  baseMs: number;
  /** The longest delay (ms). */
  maxMs: number;
  /** Full jitter (a uniform delay between 0 and the ceiling). Default true; false: the ceiling itself. */
  jitter?: boolean;
  /** Random source in [0, 1) (tests). Default Math.random. */
  random?: () => number;
}

/**
 * The wait before retry number `attempt` (1 = the first retry, after the first failure):
 * exponential, ceiling = min(maxMs, baseMs · 2^(attempt−1)), with full jitter a uniform delay in
 * [0, ceiling) ("full jitter": spreads the retries of many queued items that failed together).
 */
export function backoffMs(attempt: number, opts: BackoffOptions): number {
  const n = Number.isFinite(attempt) ? Math.max(1, Math.floor(attempt)) : 1;
  const base = Math.max(0, opts.baseMs);
  const max = Math.max(0, opts.maxMs);
  // 2^(n-1) overflows to Infinity long after the ceiling is reached; min() keeps it finite.
  const ceiling = Math.min(max, base * 2 ** Math.min(n - 1, 60));
  if (opts.jitter === false) return Math.round(ceiling);
  const r = (opts.random ?? Math.random)();
  return Math.floor(Math.min(Math.max(r, 0), 1) * ceiling);
}

export interface RetryPolicy {
  /** Attempts in all, the first one included. */
  maxAttempts: number;
  baseMs: number;
  maxMs: number;
  /** An item older than this (since its first attempt) is given up, whatever its attempts. */
  maxAgeMs: number;
  jitter: boolean;
}

/**
 * Defaults that ride out a one-hour outage of either server.
 *
 * Ceilings of the 29 waits between 30 attempts (base 5 s, doubled, at most 10 min):
 *   5 + 10 + 20 + 40 + 80 + 160 + 320 s = 635 s for the first 7, then 22 × 600 s = 13 200 s,
 *   in all 13 835 s ≈ 3 h 50 min.
 * Full jitter waits on average half the ceiling: ≈ 6 918 s ≈ 1 h 55 min in all, with a standard
 * deviation of ≈ 819 s (the sum of ceiling²/12), so the whole schedule falls short of 1 h (3 600 s)
 * only about 4 standard deviations below its mean: in practice never. (With 12 attempts the ceilings total only 3 035 s ≈ 51 min, and half of that
 * on average: too short for a one-hour outage.) The 24 h maximum age bounds the whole.
 */
export const DEFAULT_RETRY_POLICY: Readonly<RetryPolicy> = Object.freeze({
  maxAttempts: 30,
  baseMs: 5_000,
  maxMs: 10 * 60_000,
  maxAgeMs: 24 * 60 * 60_000,
  jitter: true,
});

function positive(v: string | undefined, min: number): number | undefined {
  if (v === undefined || v.trim() === '') return undefined;
  const n = Number(v.trim());
  return Number.isFinite(n) && n >= min ? n : undefined;
}

/**
 * The policy from the environment; a missing or invalid value keeps its default.
 * - `MAX_RETRY_ATTEMPTS` (the old SiaghSync variable): attempts in all, ≥ 1;
 * - `RETRY_BASE_SECONDS`: the first wait's ceiling (default 5);
 * - `RETRY_MAX_DELAY_SECONDS`: the longest wait (default 600);
 * - `RETRY_MAX_AGE_HOURS`: give up on an item this long after its first attempt (default 24).
 * Note: the old service used MAX_RETRY_ATTEMPTS=3 for in-process retries 2 s apart; an old .env
 * carrying it gives a queue that gives up within seconds. Raise it (or drop it) to ride out outages.
 */
export function retryPolicyFromEnv(env: Record<string, string | undefined> = process.env): RetryPolicy {
  const d = DEFAULT_RETRY_POLICY;
  const attempts = positive(env.MAX_RETRY_ATTEMPTS, 1);
  const base = positive(env.RETRY_BASE_SECONDS, 0);
  const max = positive(env.RETRY_MAX_DELAY_SECONDS, 0);
  const age = positive(env.RETRY_MAX_AGE_HOURS, 0);
  const baseMs = base !== undefined ? Math.round(base * 1000) : d.baseMs;
  const maxMs = max !== undefined ? Math.round(max * 1000) : d.maxMs;
  return {
    maxAttempts: attempts !== undefined ? Math.floor(attempts) : d.maxAttempts,
    baseMs,
    maxMs: Math.max(maxMs, baseMs),
    maxAgeMs: age !== undefined ? Math.round(age * 3_600_000) : d.maxAgeMs,
    jitter: d.jitter,
  };
}
