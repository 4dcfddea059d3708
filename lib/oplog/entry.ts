/**
 * One sync operation as the log sees it. `describeOperation` turns what a message carries (its
 * trace, a Catch node's error, the webhook fields) into a log line, and — for a failure — the
 * event that replays it. Only the trace fields and the error text are copied, each scrubbed
 * (scrub.ts); the record itself (msg.payload) is read for its id, type, event and subtype, and
 * for what the console's search needs after a restart: an identity's display name and the
 * comparison keys of its mobile and national code (partyOf), a document's customer (customerIdOf).
 */
import { customerIdOf, entityOf, refOf, type RecordEntity } from '../ref';
import type { IdentityKind } from '../types';
import type { TraceFields } from './trace';
import { scrubField, scrubText } from './scrub';
import type { PartyFacts } from './history';
import { isIranianMobile, nationalIdKey, phoneKey } from '../text/normalize';

export type Trigger = 'webhook' | 'poll' | 'import' | 'replay' | 'manual';
export const TRIGGERS: readonly Trigger[] = ['webhook', 'poll', 'import', 'replay', 'manual'];

/** ok / failed: an outcome. retrying / waiting: an attempt that failed and was queued again (or waits for its customer). */
export type OpStatus = 'ok' | 'failed' | 'retrying' | 'waiting';

/** The CRM event a replay sends into crm-fetch (its webhook input shape). */
export type EventType = 'Identity' | 'Quote' | 'Invoice';

export interface ReplayEvent {
  type: EventType;
  id: string;
  event: string;
  subtype?: string;
  /** person or organization, when known (an Identity's kind). */
  kind?: IdentityKind;
}

/** One line of sync-log.jsonl. Absent fields are left out. */
export interface LogLine {
  time: string;
  trigger: string;
  status: OpStatus;
  entity?: string;
  crmId?: string;
  /** A quote's or invoice's customer: its CRM id (the document's `identityId`), so the document shows in the customer's timeline. */
  customerId?: string;
  /** An identity's display name (partyOf), so the console finds it by name after a restart. */
  name?: string;
  siaghCode?: string;
  customerNumber?: string;
  /** An identity's mobile as its comparison key (phoneKey: `+989121234567`). */
  mobileKey?: string;
  /** An identity's national code as its comparison key (nationalIdKey). */
  nationalKey?: string;
  documentNumber?: string;
  event?: string;
  action?: string;
  durationMs?: number;
  attempts?: number;
  /** The node that reported the failure (its type), or the trace's last step. */
  step?: string;
  error?: { code: string; message: string };
  traceId?: string;
  /** For a retrying line: when the queue tries again. */
  nextAttemptAt?: string;
  /** Fields a webhook carried besides its own (ignored, redacted by crm-webhook), from msg.sync.extraFields. */
  extraFields?: Record<string, string>;
}

/** What a message carries, as plain values (the node reads them off msg). */
export interface OperationInput {
  /** msg.sync (a SyncTrace, read field by field: a message may carry anything) */
  trace?: unknown;
  /** msg.error (a Catch node's message) */
  error?: unknown;
  /** msg.payload: read for id / type / event / subtype only */
  payload?: unknown;
  /** msg.req.query of an http-in message */
  query?: unknown;
  /** msg.req is present (the message came from an http-in node) */
  fromHttp?: boolean;
  /** Trigger when the trace names none ('auto': webhook for http-in messages, else manual). */
  defaultTrigger?: Trigger | 'auto';
  /** msg.review: a review item's facts (kept on the failed entry of a failure). */
  review?: unknown;
  /** Known secrets to hide wherever they appear. */
  secrets?: ReadonlyArray<string | undefined>;
  now?: number;
}

export interface Operation {
  line: LogLine;
  /** The failed-list key (`identity:<guid>`), when the operation names a CRM record. */
  key?: string;
  /** For a failure that names a CRM record: the event that replays it. */
  event?: ReplayEvent;
  /** The record's own entity (person, organization, quote …) when known. */
  entity?: string;
  /** For a failure with msg.review: its facts, clipped and scrubbed (reviewOf). */
  review?: Record<string, unknown>;
  /** Who the record is (name, mobile, national code) as the CRM writes it, for the console's search (the line carries the name and the keys). */
  party?: PartyFacts;
}

/** The error codes of review items: the operator decides, then the item is replayed with the decision. */
export const REVIEW_CODES = ['LINK_NEEDS_REVIEW', 'DOCUMENT_CHANGED_AFTER_TRANSFER'] as const;
export type ReviewCode = (typeof REVIEW_CODES)[number];

export function isReviewCode(code: unknown): code is ReviewCode {
  return typeof code === 'string' && (REVIEW_CODES as readonly string[]).includes(code.trim().toUpperCase());
}

/** Largest review kept on a failed entry (JSON characters); beyond it the lists inside are cut. */
export const MAX_REVIEW_JSON = 8000;

/**
 * A copy of msg.review fit for the failed list: plain data only (text, numbers, booleans, null,
 * arrays, objects), at most 5 levels, 40 keys per object, 50 items per list, each text scrubbed
 * (secrets, credential patterns) and clipped to 200 characters; when still over 8,000 characters
 * the lists are cut to 5 items (and then to none), with `truncated: true`. Undefined when not an object.
 */
export function reviewOf(v: unknown, secrets: ReadonlyArray<string | undefined> = []): Record<string, unknown> | undefined {
  if (!v || typeof v !== 'object' || Array.isArray(v)) return undefined;
  const copy = (x: unknown, depth: number, items: number): unknown => {
    if (x === null || typeof x === 'boolean') return x;
    if (typeof x === 'number') return Number.isFinite(x) ? x : null;
    if (typeof x === 'string') return scrubText(x, secrets, 200);
    if (depth >= 5 || typeof x !== 'object') return undefined;
    if (Array.isArray(x)) return x.slice(0, items).map((y) => copy(y, depth + 1, items) ?? null);
    const out: Record<string, unknown> = {};
    for (const [k, y] of Object.entries(x as Record<string, unknown>).slice(0, 40)) {
      const name = scrubText(k, secrets, 40);
      const c = copy(y, depth + 1, items);
      if (name && c !== undefined) out[name] = c;
    }
    return out;
  };
  for (const items of [50, 5, 0]) {
    const r = copy(v, 0, items) as Record<string, unknown>;
    if (items < 50) r.truncated = true;
    if (JSON.stringify(r).length <= MAX_REVIEW_JSON) return r;
  }
  const r = copy(v, 3, 0) as Record<string, unknown>;
  return { ...r, truncated: true };
}

const ACTIONS = new Set(['created', 'updated', 'linked', 'unchanged', 'skipped', 'deleted', 'failed']);

/** At most 8 ignored webhook fields, names and values short and scrubbed. */
function extraFieldsOf(v: unknown, secrets: ReadonlyArray<string | undefined>): Record<string, string> | undefined {
  if (!v || typeof v !== 'object' || Array.isArray(v)) return undefined;
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(v as Record<string, unknown>).slice(0, 8)) {
    const name = scrubField(k, secrets, 40);
    if (name) out[name] = scrubField(x, secrets, 40) ?? '';
  }
  return Object.keys(out).length ? out : undefined;
}

function obj(v: unknown): Record<string, unknown> {
  return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

function first(...vals: unknown[]): unknown {
  for (const v of vals) {
    const x = Array.isArray(v) ? v[0] : v;
    if (x !== undefined && x !== null && x !== '') return x;
  }
  return undefined;
}

const EVENT_TYPES: Record<RecordEntity, EventType> = { identity: 'Identity', quote: 'Quote', invoice: 'Invoice' };

/** Identity | Quote | Invoice from an entity or type name (person, organization, contact … count as Identity: lib/ref.ts entityOf). */
export function eventTypeOf(v: unknown): EventType | undefined {
  const e = entityOf(v);
  return e && EVENT_TYPES[e];
}

/** The failed-list key: `identity:<guid>`, `quote:<guid>`, `invoice:<guid>`. */
export function failureKey(type: EventType, crmId: string): string {
  return `${type.toLowerCase()}:${crmId.trim().toLowerCase()}`;
}

export function normalizeTrigger(v: unknown): string | undefined {
  if (typeof v !== 'string') return undefined;
  const t = v.trim().toLowerCase();
  return /^[a-z][a-z0-9-]{0,19}$/.test(t) ? t : undefined;
}

/** "SyncError: text" (how Node-RED hands an Error to a Catch node) → "text". */
function stripErrorName(s: string): string {
  return s.replace(/^\s*(?:[A-Z][A-Za-z]*)?Error:\s*/, '');
}

function errorCode(v: unknown): string | undefined {
  if (typeof v !== 'string' && typeof v !== 'number') return undefined;
  const c = String(v).trim().replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 40);
  return c || undefined;
}

/** Turn a message's trace and error into a log line (and, for a failure, its replay event). */
export function describeOperation(input: OperationInput): Operation {
  const secrets = input.secrets ?? [];
  const now = input.now ?? Date.now();
  const t: TraceFields = obj(input.trace);
  const p = obj(input.payload);
  const q = obj(input.query);
  const err = input.error;
  const traceErr = obj(t.error);

  const traceFailed = t.action === 'failed';
  let failed = (err !== undefined && err !== null && err !== false && err !== '') || traceFailed;

  // --- what the operation is about
  const ref = refOf({ payload: input.payload, query: input.query, trace: input.trace });
  const crmId = ref.crmId;
  const type = ref.entity && EVENT_TYPES[ref.entity];
  const specific = first(t.entity, p.kind, p.docKind, p.entityType);
  const entity = scrubField(specific, secrets, 40)?.toLowerCase() ?? type?.toLowerCase();
  const rawEvent = first(t.event, p.event, q.event);
  const event = typeof rawEvent === 'string' && /^[A-Za-z][A-Za-z_-]{0,29}$/.test(rawEvent.trim()) ? rawEvent.trim() : undefined;
  const subtype = scrubField(first(typeof p.subtype === 'string' ? p.subtype : undefined, q.subtype), secrets, 120);

  // --- trigger
  let trigger = normalizeTrigger(t.trigger);
  if (!trigger) {
    const d = input.defaultTrigger ?? 'auto';
    trigger = d === 'auto' ? (input.fromHttp ? 'webhook' : 'manual') : d;
  }

  // --- error
  let error: LogLine['error'];
  if (failed) {
    const e = obj(err);
    const rawMsg = typeof err === 'string' ? err : first(e.message, traceErr.message);
    const code = errorCode(first(e.code, traceErr.code)) ?? 'ERROR';
    const message = scrubText(stripErrorName(typeof rawMsg === 'string' ? rawMsg : rawMsg === undefined ? 'failed (no message)' : String(rawMsg)), secrets, 300);
    error = { code, message: message || 'failed (no message)' };
  }

  const startedAt = typeof t.startedAt === 'number' && Number.isFinite(t.startedAt) ? t.startedAt : undefined;
  let durationMs: number | undefined = typeof t.durationMs === 'number' && Number.isFinite(t.durationMs) ? Math.max(0, Math.round(t.durationMs)) : undefined;
  if (startedAt !== undefined && now >= startedAt && now - startedAt < 7 * 86_400_000) durationMs = Math.max(durationMs ?? 0, now - startedAt);

  let action = typeof t.action === 'string' && ACTIONS.has(t.action) ? t.action : failed ? 'failed' : undefined;
  // A Delete whose record is gone from the CRM is what a deletion looks like, not a failure: the
  // Siagh contact or document stays (the books keep it), and nothing waits in the failed list.
  if (failed && error?.code === 'CRM_NOT_FOUND' && event?.toLowerCase() === 'delete') {
    failed = false;
    error = undefined;
    action = 'deleted';
  }
  const source = obj(obj(err).source);
  // Who an identity is: the line carries its name and the keys of its mobile and national code, so
  // the console's index (history.ts), rebuilt from the log at start, finds it again.
  const party = type === 'Identity' ? partyOf(p, secrets) : undefined;
  const line: LogLine = {
    time: new Date(now).toISOString(),
    trigger,
    entity,
    crmId,
    customerId: type === 'Quote' || type === 'Invoice' ? customerIdOf(input.payload) : undefined,
    name: party?.name,
    siaghCode: scrubField(t.siaghCode, secrets, 40),
    customerNumber: scrubField(t.customerNumber, secrets, 40),
    mobileKey: phoneKey(party?.mobile),
    nationalKey: nationalIdKey(party?.nationalCode),
    documentNumber: scrubField(t.documentNumber, secrets, 40),
    event,
    action,
    status: failed ? 'failed' : 'ok',
    durationMs,
    attempts: typeof t.attempts === 'number' && Number.isFinite(t.attempts) && t.attempts > 0 ? Math.round(t.attempts) : undefined,
    step: scrubField(failed ? first(source.type, t.step) : t.step, secrets, 40),
    error,
    traceId: scrubField(t.traceId, secrets, 40),
  };
  const extra = extraFieldsOf(t.extraFields, secrets);
  if (extra) line.extraFields = extra;
  // Key order as written; undefined fields vanish in JSON.
  const op: Operation = { line, entity };
  if (crmId && type) {
    op.key = failureKey(type, crmId);
    if (failed) op.event = { type, id: crmId, event: event ?? 'Update', ...(subtype ? { subtype } : {}) };
  }
  if (failed) {
    const review = reviewOf(input.review, secrets);
    if (review) op.review = review;
  }
  if (party) op.party = party;
  return op;
}

/**
 * Who a CRM identity is (msg.payload after crm-fetch): its name (nickName, else first and last
 * name), its first mobile (else first phone), national code and customer number. Undefined when
 * the payload carries none of them (a webhook's bare event).
 */
export function partyOf(p: Record<string, unknown>, secrets: ReadonlyArray<string | undefined> = []): PartyFacts | undefined {
  const text = (v: unknown, max = 120) => (typeof v === 'string' && v.trim() ? scrubField(v.trim(), secrets, max) : undefined);
  const name = text(p.nickName) ?? text([p.firstName, p.lastName].filter((x) => typeof x === 'string' && x.trim()).join(' '));
  const phones = Array.isArray(p.phoneContacts) ? (p.phoneContacts as unknown[]).map((x) => obj(x)) : [];
  const numbers = phones.map((x) => text(x.phoneNumber, 40)).filter((x): x is string => !!x);
  const mobile = numbers.find((n) => isIranianMobile(phoneKey(n))) ?? numbers[0];
  const facts: PartyFacts = { name, mobile, nationalCode: text(p.nationalCode, 20), customerNumber: text(p.customerNumber, 40) };
  for (const k of Object.keys(facts) as Array<keyof PartyFacts>) if (facts[k] === undefined) delete facts[k];
  return Object.keys(facts).length ? facts : undefined;
}
