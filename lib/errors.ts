/**
 * One error type for everything the sync core reports. `code` is stable (flows switch on it in a
 * Catch node: msg.error.code), `message` tells an operator what happened and what to do, and the
 * flags tell callers whether repeating the call is safe.
 *
 * Messages never contain credentials, session ids or tokens: callers build them from facts
 * (status codes, paths, server texts) only.
 */
export type SyncErrorCode =
  // transport
  | 'NETWORK'
  | 'TIMEOUT'
  | 'TLS'
  | 'HTTP_5XX'
  | 'RATE_LIMITED'
  | 'HTTP_ERROR'
  | 'BAD_REPLY'
  // siagh
  | 'SIAGH_LOGIN_FAILED'
  | 'SIAGH_SESSION_EXPIRED'
  | 'SIAGH_FORM_ERROR'
  | 'SIAGH_UNKNOWN_CUSTOMER'
  | 'SIAGH_DUPLICATE'
  // crm
  | 'CRM_BAD_CREDENTIALS'
  | 'CRM_MODULE_MISSING'
  | 'CRM_LOCKED_OUT'
  | 'CRM_LOGIN_FAILED'
  | 'CRM_NOT_FOUND'
  | 'CRM_ERROR'
  // sync
  | 'BAD_INPUT'
  | 'CONFIG'
  | 'MAPPING_CONFLICT'
  | 'MAPPING_BUSY'
  | 'STORE_LOCKED'
  | 'STORE_IO'
  | 'CUSTOMER_NOT_MAPPED'
  | 'AMBIGUOUS_CREATE'
  /** A queued job's lease ran out each time until its attempts were used up (nobody recorded an outcome). */
  | 'LEASE_EXPIRED'
  // review items: nothing was written; an operator decides and replays
  | 'LINK_NEEDS_REVIEW'
  | 'DOCUMENT_CHANGED_AFTER_TRANSFER'
  | 'UNKNOWN';

export interface SyncErrorOptions {
  /** The call may be repeated as is (network error before the request was sent, 5xx on a read, 429 …). */
  retryable?: boolean;
  /** A write may or may not have happened (timeout, dropped connection after sending). */
  ambiguous?: boolean;
  status?: number;
  /** Seconds the server asked us to wait (429 Retry-After). */
  retryAfterSec?: number;
  /** Server text(s) shown to the operator (Persian descriptions from Siagh, CRM messages). */
  details?: string[];
  /** Siagh `ColName` of the failing column, when given. */
  column?: string;
  /** Path of the remote call, never with query secrets. */
  path?: string;
  /**
   * Structured facts of a review item (LINK_NEEDS_REVIEW, DOCUMENT_CHANGED_AFTER_TRANSFER): plain
   * JSON an operator's view can keep and show. Never secrets.
   */
  review?: Record<string, unknown>;
  cause?: unknown;
}

export class SyncError extends Error {
  readonly code: SyncErrorCode;
  readonly retryable: boolean;
  readonly ambiguous: boolean;
  readonly status?: number;
  readonly retryAfterSec?: number;
  readonly details: string[];
  readonly column?: string;
  readonly path?: string;
  readonly review?: Record<string, unknown>;

  constructor(code: SyncErrorCode, message: string, opts: SyncErrorOptions = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'SyncError';
    this.code = code;
    this.retryable = opts.retryable ?? false;
    this.ambiguous = opts.ambiguous ?? false;
    this.status = opts.status;
    this.retryAfterSec = opts.retryAfterSec;
    this.details = opts.details ?? [];
    this.column = opts.column;
    this.path = opts.path;
    this.review = opts.review;
  }

  /** A plain object for traces, reports and the failed list (no stack, no cause). */
  toJSON(): Record<string, unknown> {
    const out: Record<string, unknown> = { code: this.code, message: this.message };
    if (this.status !== undefined) out.status = this.status;
    if (this.column) out.column = this.column;
    if (this.details.length) out.details = this.details;
    if (this.path) out.path = this.path;
    if (this.review) out.review = this.review;
    return out;
  }
}

export function isSyncError(e: unknown): e is SyncError {
  return e instanceof SyncError;
}

/** Wrap anything thrown into a SyncError, keeping SyncErrors as they are. */
export function toSyncError(e: unknown, fallbackCode: SyncErrorCode = 'UNKNOWN'): SyncError {
  if (e instanceof SyncError) return e;
  const msg = e instanceof Error ? e.message : String(e);
  return new SyncError(fallbackCode, msg, { cause: e });
}
