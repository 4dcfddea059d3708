/**
 * The transport both protocol clients share: one axios instance per client with keep-alive agents,
 * a concurrency limit, timeouts, size limits, certificate checking (optional custom CA, never
 * switched off), reply parsing that names broken replies, and retries with exponential backoff and
 * jitter that honour Retry-After.
 *
 * Retry policy:
 * - idempotent calls (reads, logins) are retried on network errors, timeouts, 5xx and 429;
 * - writes are retried only when the server surely did not act on them: 429 (rejected before
 *   processing) and connection refused / DNS failures (never reached). A timeout, a dropped
 *   connection or a 5xx after a write is *ambiguous*: the error says so (`ambiguous: true`) and the
 *   caller must check whether the write happened before repeating it.
 */
import http from 'node:http';
import https from 'node:https';
import axios, { AxiosError, AxiosInstance, Method } from 'axios';
import { SyncError } from '../errors';
import { Semaphore, sleep } from './limiter';

export interface HttpOptions {
  baseUrl: string;
  /** Per-request timeout (ms). Default 30 000. */
  timeoutMs?: number;
  /** Requests in flight at once. Default 4. */
  concurrency?: number;
  /** Extra attempts for retryable failures. Default 3. */
  retries?: number;
  /** First backoff (ms), doubled per attempt, with full jitter. Default 500. */
  retryBaseMs?: number;
  /** Longest wait between attempts (ms), Retry-After included. Default 30 000. */
  retryMaxMs?: number;
  /** Extra CA certificates (PEM) trusted for this server only. */
  ca?: string;
  /** Largest reply body accepted (bytes). Default 64 MiB (Siagh's GetAll is large). */
  maxContentLength?: number;
  /** Told about each retry, for a "retrying" status. */
  onRetry?: (info: RetryInfo) => void;
}

export interface RetryInfo {
  attempt: number;
  delayMs: number;
  code: string;
  path: string;
}

export interface HttpRequest {
  method: Method;
  path: string;
  data?: unknown;
  headers?: Record<string, string>;
  /** Safe to repeat as is. Reads and logins: true. Creates and saves: false. */
  idempotent: boolean;
  /** Overrides the client's retry count (0 = single attempt). */
  retries?: number;
  /**
   * A reply with status ≥ 500 for which this returns true is final: returned like a 4xx reply
   * instead of being thrown and retried (e.g. a CRM answering "record not found" with HTTP 500).
   */
  finalIf?: (status: number, text: string) => boolean;
  /**
   * For replies with status ≥ 300 only: a body that is not JSON (an IIS error page, plain text) is
   * returned as `text` with `data` undefined instead of being a BAD_REPLY, so the caller can act
   * on the status (a 401 with an HTML page is still a 401). 2xx bodies are always checked.
   */
  lenientErrorBody?: boolean;
}

export interface HttpReply {
  status: number;
  /** Parsed JSON, or undefined for an empty body. */
  data: unknown;
  headers: Record<string, unknown>;
  /** The raw body text (for error messages; never logged whole). */
  text: string;
}

const TLS_CODES = new Set([
  'CERT_HAS_EXPIRED',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'CERT_NOT_YET_VALID',
  'EPROTO',
  'ERR_SSL_WRONG_VERSION_NUMBER',
]);
/** Failures where the request never reached the server: always safe to repeat. */
const NOT_SENT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);

export class HttpCore {
  readonly axios: AxiosInstance;
  readonly baseUrl: string;
  private readonly limiter: Semaphore;
  private readonly httpAgent: http.Agent;
  private readonly httpsAgent: https.Agent;
  private readonly abort = new AbortController();
  private readonly opts: Required<Omit<HttpOptions, 'ca' | 'onRetry'>> & Pick<HttpOptions, 'ca' | 'onRetry'>;
  /** Requests sent, by path (attempts, not calls). */
  readonly sent = new Map<string, number>();

  constructor(options: HttpOptions) {
    let url: URL;
    try {
      url = new URL(options.baseUrl);
    } catch {
      throw new SyncError('CONFIG', `The server URL "${options.baseUrl}" is not a valid URL. Use the form http://host[:port].`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new SyncError('CONFIG', `The server URL must start with http:// or https:// (got ${url.protocol}).`);
    }
    this.baseUrl = url.toString().replace(/\/+$/, '');
    this.opts = {
      baseUrl: this.baseUrl,
      timeoutMs: options.timeoutMs ?? 30_000,
      concurrency: options.concurrency ?? 4,
      retries: options.retries ?? 3,
      retryBaseMs: options.retryBaseMs ?? 500,
      retryMaxMs: options.retryMaxMs ?? 30_000,
      maxContentLength: options.maxContentLength ?? 64 * 1024 * 1024,
      ca: options.ca,
      onRetry: options.onRetry,
    };
    this.limiter = new Semaphore(this.opts.concurrency);
    this.httpAgent = new http.Agent({ keepAlive: true, maxSockets: this.opts.concurrency });
    this.httpsAgent = new https.Agent({
      keepAlive: true,
      maxSockets: this.opts.concurrency,
      // Extra CAs are added to Node's trusted roots for this agent only; verification stays on.
      ...(this.opts.ca ? { ca: [...require('node:tls').rootCertificates, this.opts.ca] } : {}),
      rejectUnauthorized: true,
    });
    this.axios = axios.create({
      baseURL: this.baseUrl,
      allowAbsoluteUrls: false,
      timeout: this.opts.timeoutMs,
      maxContentLength: this.opts.maxContentLength,
      maxBodyLength: this.opts.maxContentLength,
      maxRedirects: 0,
      proxy: false,
      httpAgent: this.httpAgent,
      httpsAgent: this.httpsAgent,
      responseType: 'text',
      transformResponse: [(d: unknown) => d],
      validateStatus: () => true,
    });
  }

  get closed(): boolean {
    return this.abort.signal.aborted;
  }

  /** Stop: abort requests in flight and backoff waits, close idle sockets. */
  close(): void {
    if (!this.abort.signal.aborted) this.abort.abort(new SyncError('NETWORK', 'The client was closed (redeploy or shutdown).'));
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }

  async send(req: HttpRequest): Promise<HttpReply> {
    const retries = req.retries ?? this.opts.retries;
    for (let attempt = 0; ; attempt++) {
      if (this.closed) throw new SyncError('NETWORK', 'The client was closed (redeploy or shutdown).', { path: req.path });
      let err: SyncError;
      try {
        return await this.limiter.run(() => this.once(req));
      } catch (e) {
        err = e instanceof SyncError ? e : new SyncError('UNKNOWN', String(e), { path: req.path, cause: e });
      }
      const safe = err.retryable && (req.idempotent || !err.ambiguous);
      if (!safe || attempt >= retries || this.closed) throw err;
      // A server that asks for a longer wait than this client's own retries allow gets it in full:
      // the error goes up with its Retry-After (the sync queue waits it out), never an early retry.
      if (err.retryAfterSec !== undefined && err.retryAfterSec * 1000 > this.opts.retryMaxMs) throw err;
      const delayMs = this.backoff(attempt, err.retryAfterSec);
      this.opts.onRetry?.({ attempt: attempt + 1, delayMs, code: err.code, path: req.path });
      await sleep(delayMs, this.abort.signal).catch(() => undefined);
    }
  }

  private backoff(attempt: number, retryAfterSec?: number): number {
    if (retryAfterSec !== undefined) return Math.min(retryAfterSec * 1000, this.opts.retryMaxMs);
    const cap = Math.min(this.opts.retryBaseMs * 2 ** attempt, this.opts.retryMaxMs);
    return Math.round(cap / 2 + Math.random() * (cap / 2));
  }

  private async once(req: HttpRequest): Promise<HttpReply> {
    this.sent.set(req.path, (this.sent.get(req.path) ?? 0) + 1);
    let res;
    try {
      res = await this.axios.request<string>({
        method: req.method,
        url: req.path,
        data: req.data,
        headers: { Accept: 'application/json', ...(req.data !== undefined ? { 'Content-Type': 'application/json' } : {}), ...req.headers },
        signal: this.abort.signal,
      });
    } catch (e) {
      throw this.transportError(e, req);
    }
    const text = typeof res.data === 'string' ? res.data : res.data == null ? '' : String(res.data);
    const status = res.status;
    if (status === 429) {
      throw new SyncError('RATE_LIMITED', `${this.where(req)} answered 429 Too Many Requests; waiting before the next try.`, {
        status,
        retryable: true,
        retryAfterSec: parseRetryAfter(res.headers['retry-after']),
        path: req.path,
      });
    }
    if (status >= 500 && !req.finalIf?.(status, text)) {
      throw new SyncError('HTTP_5XX', `${this.where(req)} answered HTTP ${status}${snippet(text)}. The server had an internal error; it is retried automatically where that is safe.`, {
        status,
        retryable: true,
        ambiguous: !req.idempotent,
        path: req.path,
      });
    }
    let data: unknown;
    try {
      data = parseBody(text, status, this.where(req), req.path, req.idempotent);
    } catch (e) {
      if (!(req.lenientErrorBody && status >= 300)) throw e;
    }
    return { status, data, headers: res.headers as Record<string, unknown>, text };
  }

  private where(req: HttpRequest): string {
    return `${req.method.toUpperCase()} ${this.baseUrl}${req.path}`;
  }

  private transportError(e: unknown, req: HttpRequest): SyncError {
    if (e instanceof SyncError) return e;
    const ax = e as AxiosError;
    const code = String(ax?.code ?? (ax as { cause?: { code?: string } })?.cause?.code ?? '');
    if (axios.isCancel(e) || code === 'ERR_CANCELED') {
      return new SyncError('NETWORK', 'The client was closed (redeploy or shutdown).', { path: req.path, cause: e });
    }
    if (TLS_CODES.has(code)) {
      return new SyncError('TLS', `TLS check failed for ${this.baseUrl} (${code}). Give the server's CA certificate in the config node, or fix the server certificate; verification is never switched off.`, { path: req.path, cause: e });
    }
    if (code === 'ECONNABORTED' || code === 'ETIMEDOUT' || /timeout/i.test(ax?.message ?? '')) {
      return new SyncError('TIMEOUT', `${this.where(req)} did not answer within ${this.opts.timeoutMs} ms.`, {
        retryable: true,
        ambiguous: !req.idempotent,
        path: req.path,
        cause: e,
      });
    }
    if (NOT_SENT_CODES.has(code)) {
      return new SyncError('NETWORK', `Cannot reach ${this.baseUrl} (${code}). Check the URL, the network and that the server is running.`, {
        retryable: true,
        path: req.path,
        cause: e,
      });
    }
    if (code === 'ERR_FR_MAX_BODY_LENGTH_EXCEEDED' || /maxContentLength/i.test(ax?.message ?? '')) {
      return new SyncError('BAD_REPLY', `${this.where(req)} sent a reply larger than ${this.opts.maxContentLength} bytes.`, { path: req.path, cause: e });
    }
    return new SyncError('NETWORK', `${this.where(req)} failed: the connection was dropped (${code || ax?.message || 'unknown error'}).`, {
      retryable: true,
      ambiguous: !req.idempotent,
      path: req.path,
      cause: e,
    });
  }
}

export function parseRetryAfter(v: unknown): number | undefined {
  if (typeof v !== 'string' || v.trim() === '') return undefined;
  const n = Number(v.trim());
  if (Number.isFinite(n) && n >= 0) return n;
  const at = Date.parse(v);
  if (Number.isFinite(at)) return Math.max(0, Math.ceil((at - Date.now()) / 1000));
  return undefined;
}

function snippet(text: string): string {
  const t = text.replace(/\s+/g, ' ').trim();
  return t ? ` (${t.slice(0, 160)}${t.length > 160 ? '…' : ''})` : '';
}

/** JSON body, or undefined when empty. An HTML page or truncated JSON is a named BAD_REPLY. */
function parseBody(text: string, status: number, where: string, path: string, idempotent: boolean): unknown {
  if (text.trim() === '') return undefined;
  try {
    return JSON.parse(text);
  } catch {
    const kind = /^\s*</.test(text) ? 'an HTML page' : 'text that is not valid JSON (truncated or corrupt)';
    throw new SyncError('BAD_REPLY', `${where} answered HTTP ${status} with ${kind}${snippet(text)}. Check the server URL and that the API is running behind it.`, {
      status,
      path,
      // A broken reply to a read is worth another try; for writes the caller checks first.
      retryable: true,
      ambiguous: !idempotent,
    });
  }
}
