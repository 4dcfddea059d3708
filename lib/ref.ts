/**
 * What a message is about: the record reference (entity, CRM id, kind), the one GUID rule, and the
 * one reader that finds the reference in a message. crm-fetch, sync-mapping, sync-queue, the log
 * and the webhook all read a record this way; the names are those of the Vocabulary in
 * ARCHITECTURE.md.
 */
import { SyncError } from './errors';
import { textKey } from './text/normalize';
import type { EntityType } from './store/mapping-store';
import type { IdentityKind } from './types';

/** A CRM record's entity: an identity (a person or an organization), a quote or an invoice. */
export type RecordEntity = 'identity' | 'quote' | 'invoice';
export const RECORD_ENTITIES: readonly RecordEntity[] = ['identity', 'quote', 'invoice'];

/** Which CRM record a message is about. */
export interface RecordRef {
  entity: RecordEntity;
  /** Lower-case GUID. */
  crmId: string;
  /** An identity's kind, when known. */
  kind?: IdentityKind;
}

// ---------- the GUID rule ----------

const GUID_BODY = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';
const GUID = new RegExp(`^${GUID_BODY}$`, 'i');

/** A CRM id: a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx) in any letter case, blanks around ignored. */
export function isGuid(v: unknown): v is string {
  return typeof v === 'string' && GUID.test(v.trim());
}

/** The GUID as this package keeps it (trimmed, lower case), or undefined when `v` is not one. */
export function guidOf(v: unknown): string | undefined {
  return isGuid(v) ? v.trim().toLowerCase() : undefined;
}

/** A text with every GUID in it replaced (so one failure for many records reads as one). */
export function replaceGuids(text: string, by: string): string {
  return text.replace(new RegExp(GUID_BODY, 'gi'), by);
}

// ---------- entity and kind ----------

/**
 * The mapping file's entity type for a record: an identity is mapped to a Siagh contact, so the
 * mapping file (and sync-mapping's setting, msg.mappingUpdate) says `contact`; entityOf reads
 * `contact` back as `identity`.
 */
export function mappingTypeOf(entity: RecordEntity): EntityType {
  return entity === 'identity' ? 'contact' : entity;
}

/**
 * The entity named by a type or entity name: `Identity` (the CRM's webhook type), `identity`,
 * `person`, `organization` and `contact` (the mapping file's name) are identities; `quote`,
 * `invoice` in any case. Undefined for anything else.
 */
export function entityOf(v: unknown): RecordEntity | undefined {
  if (typeof v !== 'string') return undefined;
  switch (v.trim().toLowerCase()) {
    case 'identity':
    case 'person':
    case 'organization':
    case 'contact':
      return 'identity';
    case 'quote':
      return 'quote';
    case 'invoice':
      return 'invoice';
    default:
      return undefined;
  }
}

/**
 * An identity's kind: `person` / `organization` (any case), or a CRM subtype name containing
 * حقیقی (person) or حقوقی (organization), as a webhook sends it and flows saved before crm-poll
 * sent `kind` may still do. Undefined when it says neither (or both).
 */
export function kindOf(v: unknown): IdentityKind | undefined {
  if (typeof v !== 'string' || !v.trim()) return undefined;
  const plain = v.trim().toLowerCase();
  if (plain === 'person' || plain === 'organization') return plain;
  const k = textKey(v.replace(/\+/g, ' '));
  const person = k.includes('حقیقی');
  const org = k.includes('حقوقی');
  if (person && !org) return 'person';
  if (org && !person) return 'organization';
  return undefined;
}

// ---------- the reader ----------

/** The parts of a message the reader looks at (a node hands them over; lib never sees a Node-RED msg). */
export interface RefSource {
  /** msg.mappingUpdate: the mapping siagh-upsert is about to store. */
  update?: unknown;
  /** msg.payload: an event, a CRM record, a search row, or the bare id as text. */
  payload?: unknown;
  /** msg.req.query of an http-in message (a CRM webhook). */
  query?: unknown;
  /** msg.sync, the trace. */
  trace?: unknown;
}

/** What the reader found; each part undefined when the message does not say. */
export interface FoundRef {
  /** The first id candidate as it was found (for error messages), GUID or not. */
  raw?: unknown;
  /** `raw` as a GUID (lower case); undefined when absent or not a GUID. */
  crmId?: string;
  entity?: RecordEntity;
  kind?: IdentityKind;
}

function obj(v: unknown): Record<string, unknown> {
  return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

/** The first value that is there (not undefined, null or ''); of a list (a repeated query field), its first item. */
function first(...vals: unknown[]): unknown {
  for (const v of vals) {
    const x = Array.isArray(v) ? v[0] : v;
    if (x !== undefined && x !== null && x !== '') return x;
  }
  return undefined;
}

/**
 * The record a message is about. Each part is taken from the first place that has it:
 *
 * - CRM id: `msg.mappingUpdate.crmId` (what siagh-upsert wrote), `msg.payload.crmId` (a CRM record
 *   from crm-fetch), `msg.payload.id` (an event: webhook, crm-poll, sync-queue, replay, your own),
 *   `msg.payload.identityId` (an identity/search row; on a quote it names the customer, but a
 *   quote always has its own crmId first), `msg.req.query.id` (a webhook's http-in request),
 *   `msg.sync.crmId` (the trace), `msg.payload` itself when it is text.
 * - entity: `msg.payload.type` (Identity, Quote, Invoice), `.kind`, `.docKind`, `.entityType`,
 *   `.entity`, `msg.req.query.type`, then the trace's `entity` (see entityOf).
 * - kind: `msg.payload.kind`, `.entity`, the subtype (`msg.payload.subtype`, `msg.req.query.subtype`)
 *   (see kindOf).
 *
 * The message is read, never changed.
 */
export function refOf(src: RefSource): FoundRef {
  const u = obj(src.update);
  const p = obj(src.payload);
  const q = obj(src.query);
  const t = obj(src.trace);
  const raw = first(u.crmId, p.crmId, p.id, p.identityId, q.id, t.crmId, typeof src.payload === 'string' ? src.payload : undefined);
  const found: FoundRef = {};
  if (raw !== undefined) found.raw = raw;
  const crmId = guidOf(raw);
  if (crmId) found.crmId = crmId;
  const entity = [p.type, p.kind, p.docKind, p.entityType, p.entity, first(q.type), t.entity].map(entityOf).find((e) => e !== undefined);
  if (entity) found.entity = entity;
  const kind = [p.kind, p.entity, first(p.subtype), first(q.subtype)].map(kindOf).find((k) => k !== undefined);
  if (kind) found.kind = kind;
  return found;
}

/**
 * The crmId of a quote's or invoice's customer: the CRM calls it `identityId` on the document
 * (msg.payload.identityId of a record from crm-fetch). Undefined when absent or not a GUID.
 */
export function customerIdOf(payload: unknown): string | undefined {
  return guidOf(obj(payload).identityId);
}

/**
 * The CRM id a message names, as a GUID; BAD_INPUT saying what is missing or wrong otherwise.
 * `where` tells the user where to put it (a node names the fields its messages carry).
 */
export function requireCrmId(found: FoundRef, where: string): string {
  if (found.crmId) return found.crmId;
  if (found.raw === undefined) throw new SyncError('BAD_INPUT', `No CRM id in the message. ${where}`);
  throw new SyncError('BAD_INPUT', `The CRM id "${String(found.raw).trim().slice(0, 60)}" is not a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx).`);
}
