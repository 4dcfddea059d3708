/**
 * PROVISIONAL (replaced by the retry-policy module of the Siagh-replies work): how the queue
 * retries. Kept minimal so the queue compiles and runs.
 */
export interface RetryPolicy {
  maxAttempts: number;
  maxAgeMs: number;
  baseMs: number;
  maxDelayMs: number;
  ambiguousDelayMs: number;
  leaseMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = {
  maxAttempts: 20,
  maxAgeMs: 24 * 3_600_000,
  baseMs: 5_000,
  maxDelayMs: 10 * 60_000,
  ambiguousDelayMs: 60_000,
  leaseMs: 120_000,
};

export function backoffMs(attempt: number, p: Pick<RetryPolicy, 'baseMs' | 'maxDelayMs'>, random = Math.random): number {
  const cap = Math.min(p.maxDelayMs, p.baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(cap / 2 + random() * (cap / 2));
}

export type RetryKind = 'transient' | 'permanent' | 'ambiguous' | 'dependency';

export interface Classified {
  kind: RetryKind;
  retryAfterMs?: number;
  reason: string;
}

const TRANSIENT = new Set(['NETWORK', 'TIMEOUT', 'HTTP_5XX', 'RATE_LIMITED', 'SIAGH_SESSION_EXPIRED', 'CRM_LOCKED_OUT', 'MAPPING_BUSY', 'STORE_LOCKED', 'STORE_IO', 'LEASE_EXPIRED']);

export function classify(err: unknown): Classified {
  const e = (err && typeof err === 'object' ? err : {}) as { code?: unknown; retryAfterSec?: unknown; ambiguous?: unknown; message?: unknown };
  const code = typeof e.code === 'string' ? e.code : 'UNKNOWN';
  const reason = typeof e.message === 'string' ? e.message : code;
  const ra = Number(e.retryAfterSec);
  const retryAfterMs = Number.isFinite(ra) && ra > 0 ? ra * 1000 : undefined;
  if (code === 'AMBIGUOUS_CREATE' || e.ambiguous === true) return { kind: 'ambiguous', reason };
  if (code === 'CUSTOMER_NOT_MAPPED') return { kind: 'dependency', reason };
  if (TRANSIENT.has(code)) return { kind: 'transient', retryAfterMs, reason };
  return { kind: 'permanent', reason };
}

/** The policy from the environment: MAX_RETRY_ATTEMPTS (as the old service's .env), RETRY_MAX_AGE_HOURS. */
export function retryPolicyFromEnv(env: Record<string, string | undefined>, base: RetryPolicy = DEFAULT_RETRY_POLICY): RetryPolicy {
  const p = { ...base };
  const n = Number(env.MAX_RETRY_ATTEMPTS);
  if (env.MAX_RETRY_ATTEMPTS && Number.isInteger(n) && n >= 1) p.maxAttempts = n;
  const h = Number(env.RETRY_MAX_AGE_HOURS);
  if (env.RETRY_MAX_AGE_HOURS && Number.isFinite(h) && h > 0) p.maxAgeMs = h * 3_600_000;
  return p;
}
