/**
 * CRM webhooks, the plain logic: what a delivery may carry, the shared-token check, and how two
 * events for one record merge (the sync queue merges a record's waiting deliveries with it).
 *
 * The real Payamgostar CRM sends a body-less GET `?event=Insert|Update&id=<GUID>&type=Identity|Quote
 * &subtype=<Persian name>` after every save, with no signature and no event id (docs/crm-api.md#webhooks-as-the-crm-sends-them).
 * A delivery therefore only means "go and fetch this record": N deliveries for one record waiting in
 * the queue become one job, and the record itself is always read fresh from the CRM.
 *
 * Nothing here knows Node-RED; the crm-webhook node is a thin adapter around it.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { ENV_NAME_RE, envRefName } from '../env';
import { clip, hideSecrets } from '../oplog/scrub';
import { isGuid } from '../ref';

export const WEBHOOK_EVENTS = ['Insert', 'Update', 'Delete'] as const;
export const WEBHOOK_TYPES = ['Identity', 'Quote', 'Invoice'] as const;
export type WebhookEvent = (typeof WEBHOOK_EVENTS)[number];
export type WebhookType = (typeof WEBHOOK_TYPES)[number];

/** One validated delivery: canonical event and type names, the id in lower case. */
export interface WebhookFields {
  event: WebhookEvent;
  id: string;
  type: WebhookType;
  /** The CRM's subtype name (Persian), spaces normalised; absent when the CRM sent none. */
  subtype?: string;
}

/**
 * Why a request was refused, as a stable code (counted per endpoint, shown to the operator).
 * Parse failures use the first problem's code; the node adds the token and disabled ones.
 */
export type RejectionReason =
  | 'not-an-object'
  | 'missing-field'
  | 'repeated-field'
  | 'nested-value'
  | 'too-large'
  | 'invalid-id'
  | 'invalid-event'
  | 'invalid-type'
  | 'invalid-subtype'
  | 'wrong-endpoint'
  | 'invalid'
  | 'token-missing'
  | 'token-wrong'
  | 'token-not-configured';

/** Fields the request carried besides the webhook's own: name → a short, redacted rendering of the value. */
export type ExtraFields = Record<string, string>;

export type WebhookParse =
  | {
      ok: true;
      fields: WebhookFields;
      /** Unknown fields, ignored (kept for the trace): at most MAX_EXTRA_SHOWN, values clipped, secrets hidden. */
      extra?: ExtraFields;
      /** How many unknown fields there were in all (extra may show fewer). */
      extraCount?: number;
      /** What was normalised on the way in (field-name case, braces round the id …), for the trace. */
      notes?: string[];
    }
  | { ok: false; error: string; problems: string[]; reason: RejectionReason };

export interface WebhookParseOptions {
  /** The only type this endpoint accepts ('any' or undefined: all three). A missing type then defaults to it. */
  expect?: WebhookType | 'any';
}

/** The fields a delivery may carry (token is taken off before validation). */
export const WEBHOOK_FIELDS = ['event', 'id', 'type', 'subtype', 'token'] as const;

export const LIMITS = { event: 20, type: 20, id: 64, subtype: 200 } as const;

/**
 * Bounds on what is ignored: unknown fields are never a reason to refuse, but a request that
 * carries more than this besides the webhook fields is not a CRM webhook (reason too-large).
 */
export const EXTRA_LIMITS = { fields: 50, characters: 16_384 } as const;
/** Unknown fields named in the trace (the rest are counted). */
export const MAX_EXTRA_SHOWN = 8;
const EXTRA_VALUE_SHOWN = 40;
/** Field names whose value is never shown, whatever it is. */
const SECRET_NAME = /token|secret|pass(word)?|auth|key|sig(nature)?|session|cookie|jwt|bearer/i;

/** What a CRM subtype name is made of: letters, marks, digits, spaces, ZWNJ/ZWJ and plain punctuation. */
const SUBTYPE_CHAR = /[\p{L}\p{M}\p{N}\p{Zs}\u200c\u200d\-_.,:;()[\]/&'’«»،؛#+]/u;
const SCRIPT_SCHEME = /\b(?:java|vb)script\s*:|\bdata\s*:[^,]*base64/i;

/** A short value that is safe to repeat in an error reply (never free text of any length). */
function shown(v: unknown, re = /^[\p{L}\p{N} _.-]{1,40}$/u): string {
  return typeof v === 'string' && re.test(v) ? ` "${v}"` : '';
}

function charName(c: string): string {
  const cp = c.codePointAt(0) ?? 0;
  return /[\p{Cc}\p{Cf}\p{Z}]/u.test(c) || cp > 0x7e ? `U+${cp.toString(16).toUpperCase().padStart(4, '0')}` : `"${c}"`;
}

/** A single text value: missing, repeated (query arrays) and nested values get their own messages. */
function single(name: string, max: number) {
  return z
    .string({
      error: (iss) =>
        iss.input === undefined || iss.input === null
          ? `${name} is missing`
          : Array.isArray(iss.input)
            ? `${name} is repeated (${iss.input.length} values); send it once`
            : `${name} must be a single text value`,
    })
    .max(max, { abort: true, error: (iss) => `${name} is too long (${String(iss.input ?? '').length} characters; at most ${max})` })
    .transform((s) => s.trim());
}

function oneOf<T extends string>(name: string, values: readonly T[]) {
  return single(name, LIMITS[name as keyof typeof LIMITS]).transform((s, ctx) => {
    if (!s) {
      ctx.issues.push({ code: 'custom', message: `${name} is missing`, input: s });
      return z.NEVER;
    }
    const hit = values.find((v) => v.toLowerCase() === s.toLowerCase());
    if (!hit) {
      ctx.issues.push({ code: 'custom', message: `${name}${shown(s)} is not one of ${values.join(', ')}`, input: s });
      return z.NEVER;
    }
    return hit;
  });
}

const EventField = oneOf('event', WEBHOOK_EVENTS);
const TypeField = oneOf('type', WEBHOOK_TYPES);

const IdField = single('id', LIMITS.id).transform((s, ctx) => {
  if (!s) {
    ctx.issues.push({ code: 'custom', message: 'id is missing', input: s });
    return z.NEVER;
  }
  // A GUID in braces ({…}, as .NET writes it) is the same GUID.
  const bare = /^\{.*\}$/.test(s) ? s.slice(1, -1).trim() : s;
  if (!isGuid(bare)) {
    ctx.issues.push({ code: 'custom', message: `id${shown(s, /^[0-9A-Za-z{}_-]{1,40}$/)} is not a CRM GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)`, input: s });
    return z.NEVER;
  }
  return bare.toLowerCase();
});

/** A subtype still percent-encoded (encoded twice on the way, or copied from a URL into a POST body) is decoded once. */
function decodeOnce(s: string): string {
  if (!/%[0-9A-Fa-f]{2}/.test(s)) return s;
  try {
    return decodeURIComponent(s.replace(/\+/g, ' '));
  } catch {
    return s;
  }
}

const SubtypeField = single('subtype', LIMITS.subtype).transform((raw, ctx) => {
  const s = decodeOnce(raw);
  const bad = [...s].find((c) => !SUBTYPE_CHAR.test(c));
  if (bad !== undefined) {
    ctx.issues.push({ code: 'custom', message: `subtype contains ${charName(bad)}, which a CRM subtype name never has (letters, digits, spaces and simple punctuation only)`, input: s });
    return z.NEVER;
  }
  // A literal + is a space (the CRM sends spaces as + and a POST client may copy that form).
  const v = s.replace(/\+/g, ' ').replace(/\p{Zs}+/gu, ' ').trim();
  if (SCRIPT_SCHEME.test(v)) {
    ctx.issues.push({ code: 'custom', message: 'subtype looks like a script URL, not a CRM subtype name', input: s });
    return z.NEVER;
  }
  return v || undefined;
});

const Delivery = z.object({
  event: EventField,
  id: IdField,
  type: TypeField,
  subtype: SubtypeField.optional(),
});

function describeKind(v: unknown): string {
  if (v === undefined || v === null) return 'nothing';
  if (Array.isArray(v)) return 'an array';
  if (Buffer.isBuffer(v)) return 'binary data';
  return typeof v === 'string' ? 'text' : typeof v;
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (!v || typeof v !== 'object' || Array.isArray(v) || Buffer.isBuffer(v)) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/** The first problem's stable code. */
export function reasonOf(problem: string): RejectionReason {
  if (/JSON object body/.test(problem)) return 'not-an-object';
  if (/ is missing$/.test(problem)) return 'missing-field';
  if (/ is repeated /.test(problem)) return 'repeated-field';
  if (/must be a single text value/.test(problem)) return 'nested-value';
  if (/too long|besides the webhook fields/.test(problem)) return 'too-large';
  if (/was sent to an endpoint that accepts/.test(problem)) return 'wrong-endpoint';
  const field = /^(id|event|type|subtype)\b/.exec(problem)?.[1];
  return field ? (`invalid-${field}` as RejectionReason) : 'invalid';
}

const OWN_FIELDS: readonly string[] = WEBHOOK_FIELDS;

/** The canonical name of a field the webhook acts on (any letter case), or undefined for any other field. */
export function ownFieldName(key: string): (typeof WEBHOOK_FIELDS)[number] | undefined {
  const k = key.trim().toLowerCase();
  return OWN_FIELDS.includes(k) ? (k as (typeof WEBHOOK_FIELDS)[number]) : undefined;
}

/** Does this input carry none of event, id, type and subtype (in any letter case)? A body-less probe does not. */
export function carriesNoWebhookFields(input: unknown): boolean {
  if (input === undefined || input === null || input === '') return true;
  if (!isPlainObject(input)) return false;
  return !Object.keys(input).some((k) => {
    const own = ownFieldName(k);
    return own !== undefined && own !== 'token';
  });
}

/** Every value of a `token` field (any letter case) in an object: the candidates for the token check. */
export function tokenValues(input: unknown): unknown[] {
  if (!isPlainObject(input)) return [];
  return Object.entries(input)
    .filter(([k]) => ownFieldName(k) === 'token')
    .map(([, v]) => v);
}

/** An unknown field's value as the trace shows it: short, one line, secrets hidden. */
function extraValue(name: string, v: unknown, secrets: ReadonlyArray<string | undefined>): string {
  if (SECRET_NAME.test(name)) return '***';
  if (typeof v === 'string') {
    return clip(hideSecrets(v, secrets).replace(/[\p{Cc}\p{Cf}]+/gu, ' '), EXTRA_VALUE_SHOWN);
  }
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return `<${describeKind(v)}>`;
}

function extraName(k: string): string {
  return /^[\p{L}\p{N}_.\-[\]$]{1,40}$/u.test(k) ? k : '<invalid name>';
}

function sizeOf(v: unknown): number {
  if (typeof v === 'string') return v.length;
  try {
    return JSON.stringify(v)?.length ?? 0;
  } catch {
    return EXTRA_LIMITS.characters + 1;
  }
}

/**
 * Validate one delivery (the query of a GET or the JSON body of a POST, token included or not).
 * Strict about what it acts on, tolerant about the rest:
 * - event, id, type and subtype are found in any letter case of their names (EVENT=, Id=);
 * - event and type values match in any case, the id may be upper case or in braces, a subtype may
 *   carry + or %20 for spaces (or still be percent-encoded);
 * - any other field is ignored and returned in `extra` (redacted, clipped) for the trace, unless
 *   there is more of it than a CRM webhook could carry (EXTRA_LIMITS: reason too-large).
 * On failure, `error` is one sentence for the reply, `problems` lists every problem found and
 * `reason` is the first one's stable code. Messages repeat a sent value only when it is short and
 * plain (never markup, never long text). `secrets` are hidden in the extra fields' values.
 */
export function parseWebhook(input: unknown, opts: WebhookParseOptions & { secrets?: ReadonlyArray<string | undefined> } = {}): WebhookParse {
  if (!isPlainObject(input)) {
    const msg = `the request must carry event, id, type and subtype as query parameters or as a JSON object body (got ${describeKind(input)})`;
    return { ok: false, error: msg, problems: [msg], reason: 'not-an-object' };
  }
  const fields: Record<string, unknown> = {};
  const extraKeys: string[] = [];
  const notes: string[] = [];
  let extraSize = 0;
  for (const [key, value] of Object.entries(input)) {
    const own = ownFieldName(key);
    if (!own) {
      extraKeys.push(key);
      extraSize += key.length + sizeOf(value);
      continue;
    }
    if (own === 'token') continue;
    if (key !== own) notes.push(`field name ${extraName(key)} read as ${own}`);
    // The same field twice under different letter cases (id= and Id=) is a repeated field.
    if (own in fields) {
      const prev = fields[own];
      fields[own] = [...(Array.isArray(prev) ? prev : [prev]), ...(Array.isArray(value) ? value : [value])];
    } else {
      fields[own] = value;
    }
  }
  const expect = opts.expect && opts.expect !== 'any' ? opts.expect : undefined;
  if (expect && (fields.type === undefined || fields.type === '')) fields.type = expect;
  if (fields.subtype === '' || fields.subtype === null) delete fields.subtype;

  const problems: string[] = [];
  if (extraKeys.length > EXTRA_LIMITS.fields || extraSize > EXTRA_LIMITS.characters) {
    problems.push(
      `the request carries ${extraKeys.length} other field(s) and ${extraSize} characters besides the webhook fields (at most ${EXTRA_LIMITS.fields} fields and ${EXTRA_LIMITS.characters} characters); a CRM webhook carries only event, id, type and subtype`,
    );
  }
  const r = Delivery.safeParse(fields);
  if (!r.success) {
    for (const iss of r.error.issues) problems.push(iss.message);
  } else if (expect && r.data.type !== expect) {
    problems.push(`type "${r.data.type}" was sent to an endpoint that accepts ${expect} only; register the CRM's ${r.data.type.toLowerCase()} webhook at its own URL`);
  }
  if (problems.length || !r.success) {
    const error = problems[0] ?? 'invalid webhook';
    return { ok: false, error, problems, reason: reasonOf(error) };
  }
  const d = r.data;
  const out: WebhookFields = { event: d.event, id: d.id, type: d.type };
  if (d.subtype) out.subtype = d.subtype;
  if (typeof fields.id === 'string' && /^\s*\{/.test(fields.id)) notes.unshift('id in braces');
  const result: WebhookParse = { ok: true, fields: out };
  if (extraKeys.length) {
    const extra: ExtraFields = {};
    for (const k of extraKeys.slice(0, MAX_EXTRA_SHOWN)) extra[extraName(k)] = extraValue(k, input[k], opts.secrets ?? []);
    result.extra = extra;
    result.extraCount = extraKeys.length;
  }
  if (notes.length) result.notes = notes.slice(0, 6);
  return result;
}

/**
 * Constant-time token check: both sides are hashed (SHA-256) first, so neither the content nor the
 * length of the expected token shows in the time taken. Anything but a non-empty string is false.
 */
export function tokenMatches(given: unknown, expected: string): boolean {
  if (typeof given !== 'string' || given.length === 0 || !expected) return false;
  const a = createHash('sha256').update(given, 'utf8').digest();
  const b = createHash('sha256').update(expected, 'utf8').digest();
  return timingSafeEqual(a, b);
}

export type TokenVerdict = 'not-required' | 'ok' | 'missing' | 'wrong';

/** The token check for a request: every candidate (query token, body token) is compared; one match is enough. */
export function checkToken(candidates: unknown[], expected: string | undefined): TokenVerdict {
  if (!expected) return 'not-required';
  const given = candidates.filter((c) => c !== undefined && c !== null && c !== '');
  if (!given.length) return 'missing';
  let ok = false;
  for (const c of given) ok = tokenMatches(c, expected) || ok; // compare all: no early exit
  return ok ? 'ok' : 'wrong';
}

// ------------------------------------------------------------------ where the token comes from

export interface TokenSource {
  /** The token every request must carry; undefined when none is configured anywhere. */
  token?: string;
  /** Where it came from: 'credential', 'env:<NAME>', or 'none'. Never the token itself. */
  from: string;
  /** The ${NAME} of the credential when NAME is set nowhere (for a warning). */
  unresolved?: string;
}

/**
 * The webhook token, failing closed: the node's credential when it holds a value; else the
 * variable the credential names (${NAME}, in case Node-RED left it unresolved); else the node's
 * "token from environment variable" (default WEBHOOK_TOKEN). A flow loaded from a file whose
 * credentials lack the token therefore still requires the token set in the environment.
 */
export function resolveToken(credential: unknown, envName: unknown, env: Record<string, string | undefined>): TokenSource {
  const raw = typeof credential === 'string' ? credential.trim() : '';
  const ref = envRefName(raw);
  if (raw && !ref) return { token: raw, from: 'credential' };
  const names: string[] = [];
  if (ref) names.push(ref);
  const fallback = typeof envName === 'string' && envName.trim() ? envName.trim() : envName === undefined || envName === null ? 'WEBHOOK_TOKEN' : '';
  if (fallback && ENV_NAME_RE.test(fallback) && !names.includes(fallback)) names.push(fallback);
  for (const name of names) {
    const v = env[name]?.trim();
    if (v) return { token: v, from: `env:${name}` };
  }
  return ref ? { from: 'none', unresolved: ref } : { from: 'none' };
}

/** ENABLE_WEBHOOKS of the old service: only an explicit false (false/0/no/off) switches webhooks off. */
export function webhooksDisabled(value: string | undefined): boolean {
  return /^\s*(false|0|no|off)\s*$/i.test(value ?? '');
}

export const DISABLED_REPLY = {
  accepted: false,
  disabled: true,
  reason: 'webhooks are disabled (ENABLE_WEBHOOKS=false); polling picks this change up',
} as const;

/**
 * The answer to a probe (a request with none of the webhook fields, as a CRM settings screen
 * sends when it tests a URL on save): what this endpoint expects, with an example URL.
 */
export function describeEndpoint(path: string, expect: WebhookType | 'any', tokenRequired: boolean): Record<string, unknown> {
  const type = expect === 'any' ? 'Identity' : expect;
  const subtype = type === 'Identity' ? 'مخاطب حقیقی' : type === 'Quote' ? 'پیش فاکتور' : 'فاکتور';
  const q = new URLSearchParams({ event: 'Insert', id: '0634d585-7e1b-4c2a-9f3d-1a2b3c4d5e6f', type, subtype });
  if (tokenRequired) q.set('token', '<WEBHOOK_TOKEN>');
  return {
    ok: true,
    accepted: false,
    probe: true,
    message: 'This is a CRM webhook endpoint. It expects a GET with the fields as query parameters (or a POST with a JSON body of the same fields); nothing was queued.',
    fields: {
      event: WEBHOOK_EVENTS.join(' | '),
      id: 'the record GUID',
      type: expect === 'any' ? WEBHOOK_TYPES.join(' | ') : `${expect} (may be left out)`,
      subtype: 'the CRM subtype name (optional)',
      ...(tokenRequired ? { token: 'required' } : {}),
    },
    example: `${path}?${q.toString().replace('%3CWEBHOOK_TOKEN%3E', '<WEBHOOK_TOKEN>')}`,
  };
}

const TOKEN_PARAM = /([?&;]token=)[^&#;]*/gi;

/** A URL or query string with the value of every `token=` parameter replaced by ***. */
export function redactTokenParam(url: string): string {
  return url.replace(TOKEN_PARAM, '$1***');
}

/** Insert beats Update (a record that is new in the window is new); a Delete that comes last wins. */
export function mergeEvent(prev: WebhookEvent, next: WebhookEvent): WebhookEvent {
  if (next === 'Delete') return 'Delete';
  if (prev === 'Delete') return next;
  return prev === 'Insert' || next === 'Insert' ? 'Insert' : 'Update';
}
