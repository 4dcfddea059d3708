/**
 * CRM webhooks, the plain logic: what a delivery may carry, the shared-token check, and the
 * coalescing of repeated deliveries for one record.
 *
 * The real Payamgostar CRM sends a body-less GET `?event=Insert|Update&id=<GUID>&type=Identity|Quote
 * &subtype=<Persian name>` after every save, with no signature and no event id (API evidence §3.1).
 * A delivery therefore only means "go and fetch this record": N deliveries for one record within a
 * short window become one fetch, and the record itself is always read fresh from the CRM.
 *
 * Nothing here knows Node-RED; the crm-webhook node is a thin adapter around it.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';

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

export type WebhookParse = { ok: true; fields: WebhookFields } | { ok: false; error: string; problems: string[] };

export interface WebhookParseOptions {
  /** The only type this endpoint accepts ('any' or undefined: all three). A missing type then defaults to it. */
  expect?: WebhookType | 'any';
}

/** The fields a delivery may carry (token is taken off before validation). */
export const WEBHOOK_FIELDS = ['event', 'id', 'type', 'subtype', 'token'] as const;

export const LIMITS = { event: 20, type: 20, id: 64, subtype: 200 } as const;

const GUID_RE = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
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
  if (!GUID_RE.test(s)) {
    ctx.issues.push({ code: 'custom', message: `id${shown(s, /^[0-9A-Za-z{}_-]{1,40}$/)} is not a CRM GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)`, input: s });
    return z.NEVER;
  }
  return s.toLowerCase();
});

const SubtypeField = single('subtype', LIMITS.subtype).transform((s, ctx) => {
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

const Delivery = z.strictObject({
  event: EventField,
  id: IdField,
  type: TypeField,
  subtype: SubtypeField.optional(),
});

/** `"foo", "bar" and 2 more` — only plain names are repeated; others are counted. */
function fieldNames(keys: string[]): string {
  const plain = keys.filter((k) => /^[A-Za-z0-9_.-]{1,40}$/.test(k));
  const shownKeys = plain.slice(0, 5).map((k) => `"${k}"`);
  const rest = keys.length - shownKeys.length;
  if (!shownKeys.length) return rest === 1 ? 'with an invalid name' : `(${rest}, with invalid names)`;
  return shownKeys.join(', ') + (rest ? ` and ${rest} more` : '');
}

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

/**
 * Validate one delivery (the query of a GET or the JSON body of a POST, token already removed or
 * not). On failure, `error` is one sentence for the reply and `problems` lists every problem found.
 * Messages repeat a sent value only when it is short and plain (never markup, never long text).
 */
export function parseWebhook(input: unknown, opts: WebhookParseOptions = {}): WebhookParse {
  if (!isPlainObject(input)) {
    const msg = `the request must carry event, id, type and subtype as query parameters or as a JSON object body (got ${describeKind(input)})`;
    return { ok: false, error: msg, problems: [msg] };
  }
  const { token: _token, ...fields } = input;
  const expect = opts.expect && opts.expect !== 'any' ? opts.expect : undefined;
  if (expect && (fields.type === undefined || fields.type === '')) fields.type = expect;
  if (fields.subtype === '' || fields.subtype === null) delete fields.subtype;

  const r = Delivery.safeParse(fields);
  const problems: string[] = [];
  if (!r.success) {
    for (const iss of r.error.issues) {
      if (iss.code === 'unrecognized_keys') {
        const keys = iss.keys;
        problems.push(`unknown ${keys.length === 1 ? 'field' : 'fields'} ${fieldNames(keys)}; a CRM webhook carries only event, id, type and subtype (and token)`);
      } else {
        problems.push(iss.message);
      }
    }
  } else if (expect && r.data.type !== expect) {
    problems.push(`type "${r.data.type}" was sent to an endpoint that accepts ${expect} only; register the CRM's ${r.data.type.toLowerCase()} webhook at its own URL`);
  }
  if (problems.length || !r.success) return { ok: false, error: problems[0] ?? 'invalid webhook', problems };
  const d = r.data;
  const out: WebhookFields = { event: d.event, id: d.id, type: d.type };
  if (d.subtype) out.subtype = d.subtype;
  return { ok: true, fields: out };
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

export interface CoalescedEvent extends WebhookFields {
  /** How many deliveries this event stands for (1 when nothing was merged). */
  merged: number;
  /** When the first of them arrived (ms since epoch). */
  firstAt: number;
}

export interface CoalescerOptions {
  /** The window from the first delivery of a record to the one emitted event; 0 = emit each at once. */
  windowMs: number;
  /** Called once per record and window (never synchronously from add() unless windowMs is 0). */
  emit: (e: CoalescedEvent) => void;
  /** Records waiting at most; past it a delivery is emitted at once rather than held (memory bound). */
  maxPending?: number;
  /** Called when emit throws (the coalescer keeps running). */
  onError?: (err: unknown) => void;
}

/**
 * Coalesce deliveries per record (type + id): the first one opens a fixed window, later ones in it
 * merge into it, and one event leaves when the window closes. A fixed window (not one that restarts
 * with each delivery) bounds the delay even under a steady stream.
 */
export class WebhookCoalescer {
  private readonly pendingByKey = new Map<string, { ev: CoalescedEvent; timer: NodeJS.Timeout }>();
  private closed = false;
  private readonly windowMs: number;
  private readonly maxPending: number;

  constructor(private readonly opts: CoalescerOptions) {
    this.windowMs = Number.isFinite(opts.windowMs) && opts.windowMs > 0 ? opts.windowMs : 0;
    this.maxPending = opts.maxPending ?? 10_000;
  }

  static key(f: Pick<WebhookFields, 'type' | 'id'>): string {
    return `${f.type}:${f.id.toLowerCase()}`;
  }

  /** Would a delivery for this record merge into one already waiting? */
  isPending(f: Pick<WebhookFields, 'type' | 'id'>): boolean {
    return this.pendingByKey.has(WebhookCoalescer.key(f));
  }

  /** Records waiting for their window to close. */
  get pending(): number {
    return this.pendingByKey.size;
  }

  /** Take one delivery; `coalesced` tells whether it merged into one already waiting. */
  add(f: WebhookFields, now = Date.now()): { coalesced: boolean } {
    if (this.closed) return { coalesced: false };
    const key = WebhookCoalescer.key(f);
    const waiting = this.pendingByKey.get(key);
    if (waiting) {
      const ev = waiting.ev;
      ev.event = mergeEvent(ev.event, f.event);
      if (f.subtype) ev.subtype = f.subtype;
      ev.merged++;
      return { coalesced: true };
    }
    const ev: CoalescedEvent = { ...f, merged: 1, firstAt: now };
    if (this.windowMs === 0 || this.pendingByKey.size >= this.maxPending) {
      this.fire(ev);
      return { coalesced: false };
    }
    const timer = setTimeout(() => {
      this.pendingByKey.delete(key);
      this.fire(ev);
    }, this.windowMs);
    timer.unref?.();
    this.pendingByKey.set(key, { ev, timer });
    return { coalesced: false };
  }

  /** Stop: every timer cleared, nothing emitted any more. Returns how many records were waiting (dropped). */
  close(): number {
    this.closed = true;
    const n = this.pendingByKey.size;
    for (const { timer } of this.pendingByKey.values()) clearTimeout(timer);
    this.pendingByKey.clear();
    return n;
  }

  private fire(ev: CoalescedEvent): void {
    if (this.closed) return;
    try {
      this.opts.emit(ev);
    } catch (e) {
      this.opts.onError?.(e);
    }
  }
}
