/**
 * The CRM session: login and token, and the lock-out guard (docs/crm-api.md, docs/known-faults.md#crm-token).
 *
 * - Login (`/api/v2/auth/login`) is done lazily, once at a time (single flight), and the token is
 *   reused until `expiresAt - tokenSkewMs`. A 401 on any other call drops the token, logs in
 *   again once and repeats the call once (a 401 means the server did not act on it): `post`.
 * - Login failures never loop: 401 (bad credentials), 402 (mobile-app module missing) and 403 (too
 *   many attempts) are reported at once, and after a 401 or 403 no further login is attempted for a
 *   cool-down, so a busy flow cannot turn a wrong password into a lock-out.
 */
import { SyncError } from '../errors';
import type { HttpCore, HttpReply } from '../http/http-core';
import { SingleFlight } from '../http/limiter';
import { CRM_PATHS } from './paths';
import { looksNotFound, messageDetails, serverMessage } from './reply';
import { parseLoginReply } from './schemas';
import type { ConnectionState } from '../types';

export interface CrmSessionOptions {
  username: string;
  password: string;
  /** Sent at login. Default 'node-red-siagh-sync'. */
  deviceId?: string;
  /** Log in again this long before `expiresAt`. Default 60 000 ms. */
  tokenSkewMs?: number;
  /** After a 403 (too many login attempts) no login is attempted for this long. Default 15 min. */
  loginCooldownMs?: number;
  /** After a 401 at login (wrong user name or password) no login is attempted for this long. Default 5 min. */
  badCredentialsCooldownMs?: number;
}

export interface CrmSessionInfo {
  loggedIn: boolean;
  /** `expiresAt` as the CRM wrote it. */
  expiresAt?: string;
  /** When the client will log in again (ms since the epoch). */
  refreshAt?: number;
  /** No login is attempted before this time (ms since the epoch), after a 401/403 at login. */
  loginBlockedUntil?: number;
  logins: number;
}

interface Session {
  token: string;
  expiresAtText: string;
  refreshAt: number;
  loggedInAt: number;
}

/** Lifetime used when the login reply's expiry is already past by our clock (clock trouble). */
const MIN_TOKEN_REUSE_MS = 60_000;

export class CrmSession {
  private readonly username: string;
  private readonly password: string;
  private readonly deviceId: string;
  private readonly skewMs: number;
  private readonly loginCooldownMs: number;
  private readonly badCredentialsCooldownMs: number;
  private session?: Session;
  private readonly loginFlight = new SingleFlight<string>();
  private blocked?: { until: number; code: 'CRM_LOCKED_OUT' | 'CRM_BAD_CREDENTIALS'; status: number; details: string[] };
  private logins = 0;

  constructor(
    private readonly http: HttpCore,
    options: CrmSessionOptions,
  ) {
    this.username = options.username;
    this.password = options.password;
    this.deviceId = options.deviceId || 'node-red-siagh-sync';
    this.skewMs = Math.max(0, options.tokenSkewMs ?? 60_000);
    this.loginCooldownMs = Math.max(0, options.loginCooldownMs ?? 15 * 60_000);
    this.badCredentialsCooldownMs = Math.max(0, options.badCredentialsCooldownMs ?? 5 * 60_000);
  }

  /** Forget the token (the client is closing). */
  forget(): void {
    this.session = undefined;
  }

  /** The token state for a status display (never the token itself). */
  info(): CrmSessionInfo {
    const b = this.blocked && this.blocked.until > Date.now() ? this.blocked.until : undefined;
    return {
      loggedIn: this.session !== undefined,
      expiresAt: this.session?.expiresAtText,
      refreshAt: this.session?.refreshAt,
      loginBlockedUntil: b,
      logins: this.logins,
    };
  }

  /** The connection for the operator's console: login time, token age, cool-down (never the token). */
  connectionState(now = Date.now()): ConnectionState {
    const b = this.blocked && this.blocked.until > now ? this.blocked : undefined;
    const s = this.session;
    return {
      system: 'crm',
      loggedIn: s !== undefined,
      ...(s ? { lastLoginAt: new Date(s.loggedInAt).toISOString(), sessionAgeMs: Math.max(0, now - s.loggedInAt), expiresAt: new Date(s.refreshAt).toISOString() } : {}),
      ...(b ? { loginBlockedUntil: new Date(b.until).toISOString(), blockedBy: b.code } : {}),
      logins: this.logins,
    };
  }

  /** Log in now (normally done lazily). Resolves when a valid token is held. */
  async login(): Promise<void> {
    await this.token(true);
  }

  private async token(force = false): Promise<string> {
    const s = this.session;
    if (!force && s && Date.now() < s.refreshAt) return s.token;
    return this.loginFlight.run(() => this.doLogin());
  }

  /** Forget `token` if it is still the current one (a 401 seen by several calls drops it once). */
  private dropToken(token: string): void {
    if (this.session?.token === token) this.session = undefined;
  }

  private async doLogin(): Promise<string> {
    const path = CRM_PATHS.login;
    const before = Date.now();
    if (this.blocked && before < this.blocked.until) throw this.blockedError(before);
    this.blocked = undefined;
    this.logins++;
    // Idempotent: HttpCore retries network errors, timeouts, 5xx and 429 — never a 401/402/403,
    // which come back as replies and are handled below without any repeat.
    const r = await this.http.send({
      method: 'POST',
      path,
      idempotent: true,
      lenientErrorBody: true,
      data: {
        username: this.username,
        password: this.password,
        deviceId: this.deviceId,
        platformType: 1,
        os: 'Linux',
        osVersion: '1.0',
        token: '',
      },
    });
    const now = Date.now();
    const msg = serverMessage(r.data, r.text);
    const details = msg ? [msg] : [];
    if (r.status >= 200 && r.status < 300) {
      const reply = parseLoginReply(r.data, path);
      this.session = {
        token: reply.accessToken,
        expiresAtText: reply.expiresAtText,
        refreshAt: this.refreshTime(reply.expiresAtMs, now, r.headers['date']),
        loggedInAt: now,
      };
      return reply.accessToken;
    }
    this.session = undefined;
    if (r.status === 401) {
      this.blocked = { until: now + this.badCredentialsCooldownMs, code: 'CRM_BAD_CREDENTIALS', status: 401, details };
      throw new SyncError(
        'CRM_BAD_CREDENTIALS',
        `The CRM rejected the user name or password of the API user "${this.username}" (HTTP 401 at ${path}). ` +
          `Correct them in the CRM config node and deploy. To avoid a lock-out, no further login is attempted for ${duration(this.badCredentialsCooldownMs)}.`,
        { status: 401, path, details },
      );
    }
    if (r.status === 402) {
      throw new SyncError(
        'CRM_MODULE_MISSING',
        `The CRM refused the login with HTTP 402: the CRM lacks the mobile-app module needed by the v2 API. ` +
          'Ask the CRM vendor/administrator to license and enable the mobile-app (MobileApp) module; nothing can be synced until then.',
        { status: 402, path, details },
      );
    }
    if (r.status === 403) {
      this.blocked = { until: now + this.loginCooldownMs, code: 'CRM_LOCKED_OUT', status: 403, details };
      throw new SyncError(
        'CRM_LOCKED_OUT',
        `The CRM locked the API user "${this.username}" out after too many login attempts (HTTP 403). ` +
          `Wait 15–30 minutes and check that no other program logs in with a wrong password; no further login is attempted for ${duration(this.loginCooldownMs)}.`,
        // retryAfterSec: the cool-down, so a retry queue waits it out instead of knocking again.
        { status: 403, path, details, retryAfterSec: Math.ceil(this.loginCooldownMs / 1000) },
      );
    }
    if (r.status >= 300 && r.status < 400) {
      throw new SyncError(
        'CRM_LOGIN_FAILED',
        `The CRM login answered HTTP ${r.status} (a redirect${typeof r.headers['location'] === 'string' ? ` to ${r.headers['location']}` : ''}). Check the CRM URL (http vs https, host, no path after the host).`,
        { status: r.status, path, details },
      );
    }
    throw new SyncError(
      'CRM_LOGIN_FAILED',
      `The CRM login failed with HTTP ${r.status}${msg ? `: ${msg}` : ''}. Check the CRM URL and the API user's settings.`,
      { status: r.status, path, details },
    );
  }

  private blockedError(now: number): SyncError {
    const b = this.blocked!;
    const left = duration(b.until - now);
    if (b.code === 'CRM_LOCKED_OUT') {
      return new SyncError(
        'CRM_LOCKED_OUT',
        `The CRM locked the API user "${this.username}" out after too many login attempts (HTTP 403). Wait 15–30 minutes; no further login is attempted for ${left}.`,
        { status: b.status, path: CRM_PATHS.login, details: b.details, retryAfterSec: Math.max(1, Math.ceil((b.until - now) / 1000)) },
      );
    }
    return new SyncError(
      'CRM_BAD_CREDENTIALS',
      `The CRM rejected the user name or password of the API user "${this.username}" (HTTP 401). Correct them in the CRM config node and deploy; no further login is attempted for ${left}, to avoid a lock-out.`,
      { status: b.status, path: CRM_PATHS.login, details: b.details },
    );
  }

  /**
   * When to log in again. The expiry is read on the server's clock; when the server's `Date`
   * header shows our clocks differ by more than 5 s, the difference is corrected, so a skewed
   * clock can neither make us use expired tokens nor log in on every call.
   */
  private refreshTime(expiresAtMs: number, now: number, dateHeader: unknown): number {
    let offset = 0;
    if (typeof dateHeader === 'string') {
      const serverNow = Date.parse(dateHeader);
      if (Number.isFinite(serverNow) && Math.abs(serverNow - now) > 5000) offset = serverNow - now;
    }
    const lifetime = expiresAtMs - offset - now;
    let useFor = lifetime - this.skewMs;
    if (useFor <= 0) useFor = lifetime > 0 ? lifetime / 2 : MIN_TOKEN_REUSE_MS;
    return now + useFor;
  }

  /**
   * POST with the bearer token; on 401 log in again and repeat (see below). Not-found replies with
   * status ≥ 500 are returned (not retried) so the caller can name them.
   */
  async post(path: string, body: unknown, idempotent: boolean): Promise<HttpReply> {
    const send = (token: string) =>
      this.http.send({
        method: 'POST',
        path,
        data: body,
        idempotent,
        headers: { Authorization: `Bearer ${token}` },
        finalIf: (_status, text) => looksNotFound(text),
        lenientErrorBody: true,
      });
    let token = await this.token();
    let r = await send(token);
    // A 401: drop the token and repeat with a new one. The new one may be another call's renewal,
    // which can have expired again meanwhile (the request waited in the queue): then this call
    // logs in itself. A 401 right after a login of its own (or a third 401) is final.
    for (let round = 0; r.status === 401 && round < 2; round++) {
      this.dropToken(token);
      const logins = this.logins;
      token = await this.token();
      const fresh = this.logins > logins;
      r = await send(token);
      if (fresh) break;
    }
    if (r.status === 401) {
      throw new SyncError(
        'CRM_ERROR',
        `The CRM refused a freshly issued token for ${path} (HTTP 401 twice). The API user may lack the right for this operation, or the CRM rejects tokens it has just issued; check the user's roles in the CRM.`,
        { status: 401, path, details: messageDetails(r) },
      );
    }
    return r;
  }
}

function duration(ms: number): string {
  const s = Math.max(1, Math.ceil(ms / 1000));
  if (s < 120) return `${s} second${s === 1 ? '' : 's'}`;
  const m = Math.ceil(s / 60);
  return `${m} minutes`;
}
