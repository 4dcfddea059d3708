/**
 * The per-entity claim that travels with a message from sync-mapping (lookup) to sync-mapping
 * (store): while one message for a CRM id is between the two, a second one for the same id waits
 * at its lookup, so two messages never both create in Siagh. The store, a failure in our nodes, or
 * the lease timeout releases it.
 */
import { SyncError } from '../../lib/errors';
import type { EntityType } from '../../lib/store/mapping-store';
import type { MappingBackend } from '../../lib/store/mapping-backend';
import { peekMapping } from './store-ref';
import type { NodeMessage } from './red';

export interface ClaimRef {
  /** The mapping store's key (its file, or its PostgreSQL database without password): see store-ref. */
  file: string;
  entityType: EntityType;
  crmId: string;
  token: string;
}

export function claimOf(msg: NodeMessage): ClaimRef | undefined {
  const c = msg.mappingClaim as ClaimRef | undefined;
  return c && typeof c === 'object' && typeof c.token === 'string' && typeof c.file === 'string' ? c : undefined;
}

/** Release the message's claim, if it holds one (after a failure, or when nothing is to be stored). */
export function releaseClaim(msg: NodeMessage): void {
  const c = claimOf(msg);
  if (!c) return;
  // A release that fails (the database restarting) leaves the claim to run out by its lease.
  void peekMapping(c.file)?.release(c.entityType, c.crmId, c.token).catch(() => undefined);
  delete msg.mappingClaim;
}

/** The CRM id that a Siagh Code is already mapped to, from the store the message's lookup used. */
export async function mappedCrmIdOf(msg: NodeMessage, entityType: EntityType, code: number | string): Promise<string | undefined> {
  const c = claimOf(msg);
  const file = c?.file ?? (typeof msg.mappingFile === 'string' ? msg.mappingFile : undefined);
  if (!file) return undefined;
  return (await peekMapping(file)?.lookupBySiaghCode(entityType, code))?.crmId;
}

/**
 * A pre-invoice create is written down (durably, in the mapping store's meta) before it is sent,
 * and forgotten once its mapping is stored or Siagh surely refused it. A document delivered again
 * while its mark is still there (the process died between Siagh's create and the mapping) may be
 * in Siagh already, and Siagh offers no way to look a pre-invoice up: it is not sent again but
 * reported as AMBIGUOUS_CREATE, for the operator to check and replay by its CRM id.
 */
export function createMarkKey(entityType: EntityType, crmId: string): string {
  return `create-sent:${entityType}:${crmId.trim().toLowerCase()}`;
}

function storeOf(msg: NodeMessage): MappingBackend | undefined {
  const c = claimOf(msg);
  const file = c?.file ?? (typeof msg.mappingFile === 'string' ? msg.mappingFile : undefined);
  return file ? peekMapping(file) : undefined;
}

/** Before a document create: refuse one that may already have been sent; else mark it. Returns the unmark. */
export async function markDocumentCreate(msg: NodeMessage, entityType: EntityType, crmId: string, operatorReplay: boolean): Promise<() => Promise<void>> {
  const store = storeOf(msg);
  if (!store) return async () => undefined;
  const key = createMarkKey(entityType, crmId);
  const mark = await store.getMeta<{ at: string }>(key);
  if (mark && !operatorReplay) {
    throw new SyncError(
      'AMBIGUOUS_CREATE',
      `A pre-invoice for CRM ${entityType} ${crmId} was being sent to Siagh (${mark.at}) when the sync stopped, so it may be in Siagh already; it was not sent again. Look for it in Siagh: if it is not there, replay this ${entityType} by its CRM id.`,
      { ambiguous: true },
    );
  }
  await store.setMeta(key, { at: new Date().toISOString() });
  return () => store.setMeta(key, undefined);
}

/** The mapping of a document is stored: its create mark is no longer needed. */
export async function clearDocumentCreate(store: MappingBackend, entityType: EntityType, crmId: string): Promise<void> {
  if ((await store.getMeta(createMarkKey(entityType, crmId))) !== undefined) await store.setMeta(createMarkKey(entityType, crmId), undefined);
}
