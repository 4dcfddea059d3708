/**
 * What the mapping store holds, one record per CRM id and entity type, and the rules its keys
 * follow: CRM ids compared lower-case without braces, Siagh codes as text with ASCII digits,
 * customer numbers with ASCII digits. `buildMappingRecord` checks and freezes what store() is given.
 */
import { SyncError } from '../errors';
import { toAsciiDigits } from '../text/normalize';

export type EntityType = 'contact' | 'quote' | 'invoice';
export const ENTITY_TYPES: readonly EntityType[] = ['contact', 'quote', 'invoice'];

export interface MappingRecord {
  entityType: EntityType;
  /** Lower-case CRM GUID. */
  crmId: string;
  /** Contact Code, or pre-invoice document number / return code. */
  siaghCode: string;
  customerNumber?: string;
  /** Checksum of the last synced content. */
  checksum?: string;
  /** ISO time of the last write. */
  syncedAt: string;
  /** 'webhook' | 'poll' | 'import' | 'replay' | 'manual' | … */
  source: string;
  /** Small facts, e.g. {returnCode, documentNumber}. At most 8 KB as JSON. */
  extra?: Record<string, unknown>;
}

/** What store() accepts: a record without syncedAt (defaults to now); the code may be a number. */
export type MappingInput = Omit<MappingRecord, 'syncedAt' | 'siaghCode'> & { syncedAt?: string; siaghCode: string | number };

const EXTRA_MAX_BYTES = 8192;

/** How an entity type is named in messages to the operator. */
export const TYPE_LABEL: Record<EntityType, string> = { contact: 'contact', quote: 'quote (pre-invoice)', invoice: 'invoice' };

export function badInput(message: string): SyncError {
  return new SyncError('BAD_INPUT', message);
}

export function checkType(t: unknown): EntityType {
  if (t === 'contact' || t === 'quote' || t === 'invoice') return t;
  throw badInput(`Unknown mapping entity type ${JSON.stringify(t)}: use 'contact', 'quote' or 'invoice'.`);
}

/** CRM ids are GUIDs: compared lower-case, without surrounding braces or blanks. */
export function normalizeCrmId(id: unknown): string {
  if (typeof id !== 'string' && typeof id !== 'number') throw badInput('A CRM id (GUID text) is required for a mapping.');
  let s = String(id).trim().toLowerCase();
  if (s.startsWith('{') && s.endsWith('}')) s = s.slice(1, -1).trim();
  if (!s || s.length > 200) throw badInput(`CRM id ${JSON.stringify(String(id).slice(0, 60))} is empty or too long.`);
  return s;
}

/** Siagh codes compare as text with ASCII digits and no surrounding blanks (12 and "12" are equal). */
export function normalizeSiaghCode(code: unknown): string {
  if (typeof code === 'number') {
    if (!Number.isFinite(code)) throw badInput(`Siagh code ${code} is not a valid code.`);
    return String(code);
  }
  if (typeof code !== 'string') throw badInput('A Siagh code is required for a mapping.');
  const s = toAsciiDigits(code).trim();
  if (!s || s.length > 100) throw badInput(`Siagh code ${JSON.stringify(code.slice(0, 60))} is empty or too long.`);
  return s;
}

export function normalizeCustomerNumber(cn: unknown): string | undefined {
  if (cn === undefined || cn === null) return undefined;
  if (typeof cn !== 'string' && typeof cn !== 'number') throw badInput('A customer number must be text.');
  const s = toAsciiDigits(String(cn)).trim();
  return s || undefined;
}

/** An error's message with its errno code in front (ENOSPC: …), for messages to the operator. */
export function errText(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  const code = e instanceof Error ? (e as NodeJS.ErrnoException).code : undefined;
  return code && !msg.startsWith(code) ? `${code}: ${msg}` : msg;
}

/** The record store() saves: every field checked and normalised, frozen (extra included). */
export function buildMappingRecord(input: MappingInput): MappingRecord {
  if (!input || typeof input !== 'object') throw badInput('store() needs a mapping record.');
  const entityType = checkType(input.entityType);
  const crmId = normalizeCrmId(input.crmId);
  const siaghCode = normalizeSiaghCode(input.siaghCode);
  if (typeof input.source !== 'string' || !input.source.trim() || input.source.length > 100) {
    throw badInput(`The mapping for CRM id ${crmId} needs a source ('webhook', 'poll', 'import', 'replay', 'manual' …).`);
  }
  let syncedAt: string;
  if (input.syncedAt === undefined) syncedAt = new Date().toISOString();
  else {
    const ms = Date.parse(String(input.syncedAt));
    if (Number.isNaN(ms)) throw badInput(`syncedAt ${JSON.stringify(input.syncedAt)} of the mapping for CRM id ${crmId} is not a date.`);
    syncedAt = new Date(ms).toISOString();
  }
  const rec: MappingRecord = { entityType, crmId, siaghCode, syncedAt, source: input.source.trim() };
  const cn = normalizeCustomerNumber(input.customerNumber);
  if (cn !== undefined) rec.customerNumber = cn;
  if (input.checksum !== undefined && input.checksum !== null && input.checksum !== '') {
    if (typeof input.checksum !== 'string' || input.checksum.length > 200) throw badInput(`The checksum of the mapping for CRM id ${crmId} must be text (at most 200 characters).`);
    rec.checksum = input.checksum;
  }
  if (input.extra !== undefined && input.extra !== null) {
    if (typeof input.extra !== 'object' || Array.isArray(input.extra)) throw badInput(`extra of the mapping for CRM id ${crmId} must be an object.`);
    let json: string;
    try {
      json = JSON.stringify(input.extra);
    } catch (e) {
      throw badInput(`extra of the mapping for CRM id ${crmId} cannot be saved as JSON (${errText(e)}).`);
    }
    if (json.length > EXTRA_MAX_BYTES) throw badInput(`extra of the mapping for CRM id ${crmId} is ${json.length} bytes; keep it under ${EXTRA_MAX_BYTES} (small facts only).`);
    rec.extra = Object.freeze(JSON.parse(json) as Record<string, unknown>);
  }
  return Object.freeze(rec);
}
