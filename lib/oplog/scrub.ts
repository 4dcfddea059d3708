/**
 * The one place secrets are scrubbed from text. What goes into the sync log, the failed list and
 * the stats is scrubbed here first (`scrubText`): known secrets (the config nodes' passwords, as
 * the caller passes them) become ***, as do the values of anything that looks like a credential in
 * a URL, a header, JSON or prose (`token=…`, `password: …`, `"secret":"…"`, `Bearer …`,
 * `https://user:pass@host`). Control characters become spaces (one log line stays one line) and
 * the text is clipped. Error messages, traces and reports hide the known secrets (`hideSecrets`);
 * `KnownSecrets` gathers them from the deployed nodes' credentials and the environment.
 */
import { createHash } from 'node:crypto';
import { resolveEnv } from '../env';

/** Keys whose `key=value` (query strings, cookies, form bodies) value is always hidden. */
const EQ_KEYS = String.raw`(?:access_?token|refresh_?token|id_?token|token|password|passwd|pwd|pass|secret|client_?secret|api[_-]?key|apikey|key|sessionid|session_?id|asp\.net_sessionid|session|sid|auth|authorization|cookie|signature|sig|code_?verifier)`;
/** Keys whose `key: value` / `"key":"value"` value is hidden (prose like "session expired" stays). */
const COLON_KEYS = String.raw`(?:access_?token|refresh_?token|token|password|passwd|pwd|secret|client_?secret|api[_ -]?key|apikey|authorization|cookie|set-cookie|x-webhook-signature|sessionid|session_?id)`;

const EQ_RE = new RegExp(String.raw`(^|[^A-Za-z0-9_])(${EQ_KEYS})(\s*=\s*)("[^"]*"|'[^']*'|[^\s&;,#"'<>)\]}]*)`, 'gi');
const JSON_RE = new RegExp(String.raw`(["'])(${COLON_KEYS})\1(\s*:\s*)("(?:[^"\\]|\\.)*"|'[^']*'|[^\s,}\]]+)`, 'gi');
const COLON_RE = new RegExp(String.raw`(^|[^A-Za-z0-9_"'])(${COLON_KEYS})(\s*:\s*)(?!\*\*\*)([^\s,;&"'<>)\]}]+)`, 'gi');
const BEARER_RE = /\b(Bearer|Basic|Digest|Token)\s+[A-Za-z0-9._~+/=-]{3,}/gi;
const URL_USERINFO_RE = /\b([a-z][a-z0-9+.-]*:\/\/)[^\s/?#@]+@/gi;
// eslint-disable-next-line no-control-regex
const CONTROL_RE = /[\u0000-\u001f\u007f\u2028\u2029]+/g;

export const MAX_TEXT = 300;

/** At most `n` characters: a longer text is cut and ends in …. */
export function clip(s: string, n: number): string {
  return s.length > n ? s.slice(0, Math.max(0, n - 1)) + '…' : s;
}

/** Replace every occurrence of each known secret (3 characters or more) with ***. */
export function hideSecrets(text: string, secrets: ReadonlyArray<string | undefined> = []): string {
  let out = text;
  // Longest first, so a secret that contains another is hidden whole.
  const list = [...new Set(secrets.filter((s): s is string => typeof s === 'string' && s.length >= 3))].sort((a, b) => b.length - a.length);
  for (const s of list) if (out.includes(s)) out = out.split(s).join('***');
  return out;
}

/** Hide credential-looking values: token=…, password: …, "secret":"…", Bearer …, user:pass@ in URLs. */
export function hideCredentialPatterns(text: string): string {
  return text
    .replace(URL_USERINFO_RE, '$1***@')
    .replace(BEARER_RE, '$1 ***')
    .replace(JSON_RE, (_m, q: string, key: string, sep: string) => `${q}${key}${q}${sep}"***"`)
    .replace(EQ_RE, (_m, pre: string, key: string, sep: string, value: string) => (value ? `${pre}${key}${sep}***` : `${pre}${key}${sep}`))
    .replace(COLON_RE, (_m, pre: string, key: string, sep: string) => `${pre}${key}${sep}***`);
}

/**
 * A text safe for the log: secrets and credential patterns hidden, control characters flattened,
 * clipped to `max` characters (the clip happens last, so it never cuts a secret in half first).
 */
export function scrubText(value: unknown, secrets: ReadonlyArray<string | undefined> = [], max = MAX_TEXT): string {
  if (value === undefined || value === null) return '';
  const text = typeof value === 'string' ? value : String(value);
  const flat = text.replace(CONTROL_RE, ' ');
  return clip(hideCredentialPatterns(hideSecrets(flat, secrets)).trim(), max);
}

/** An optional short field: scrubbed, or undefined when empty / not a string or number. */
export function scrubField(value: unknown, secrets: ReadonlyArray<string | undefined> = [], max = 80): string | undefined {
  if (typeof value !== 'string' && typeof value !== 'number') return undefined;
  const s = scrubText(String(value), secrets, max);
  return s ? s : undefined;
}

/** Credential fields whose values are secrets (password, token, apiKey …). */
const SECRET_CREDENTIAL = /pass|secret|token|key|pwd/i;
/** Environment variables named like secrets; their values (6 characters or more) are hidden too. */
const SECRET_ENV = /PASSWORD|SECRET|TOKEN|API_?KEY/i;

/**
 * The secrets to hide, from credential objects (each field named like a secret) and the
 * environment: each value of 3 characters or more, what it names when it is a `${NAME}`
 * reference, and their MD5 in hex, lower and upper case (Siagh logs in with the MD5 of the password).
 */
export function secretsOf(credentials: Iterable<Record<string, unknown>>, env: Record<string, string | undefined> = process.env): string[] {
  const out = new Set<string>();
  const add = (v: unknown) => {
    if (typeof v !== 'string' || v.length < 3) return;
    for (const s of [v, resolveEnv(v, env)]) {
      if (s.length < 3) continue;
      out.add(s);
      const md5 = createHash('md5').update(s, 'utf8').digest('hex');
      out.add(md5);
      out.add(md5.toUpperCase());
    }
  };
  for (const creds of credentials) for (const [k, v] of Object.entries(creds)) if (SECRET_CREDENTIAL.test(k)) add(v);
  for (const [k, v] of Object.entries(env)) if (SECRET_ENV.test(k) && v && v.length >= 6) add(v);
  return [...out];
}

/**
 * `secretsOf` the credentials `read` hands to `collect`, cached for `ttlMs` (it is asked for each
 * logged message). `read` may throw (a runtime between flows): what it collected before, and the
 * environment's secrets, still count.
 */
export class KnownSecrets {
  private cache: { at: number; list: string[] } | undefined;

  constructor(
    private readonly read: (collect: (credentials: Record<string, unknown>) => void) => void,
    private readonly ttlMs = 5000,
  ) {}

  list(): string[] {
    const now = Date.now();
    if (this.cache && now - this.cache.at < this.ttlMs) return this.cache.list;
    const creds: Record<string, unknown>[] = [];
    try {
      this.read((c) => creds.push(c));
    } catch {
      // the patterns still apply
    }
    this.cache = { at: now, list: secretsOf(creds) };
    return this.cache.list;
  }
}
