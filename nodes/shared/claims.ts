/**
 * The per-entity claim that travels with a message from sync-mapping (lookup) to sync-mapping
 * (store): while one message for a CRM id is between the two, a second one for the same id waits
 * at its lookup, so two messages never both create in Siagh. The store, a failure in our nodes, or
 * the lease timeout releases it.
 */
import { EntityType, MappingStore } from '../../lib/store/mapping-store';
import type { NodeMessage } from './red';

export interface ClaimRef {
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
  MappingStore.peek(c.file)?.release(c.entityType, c.crmId, c.token);
  delete msg.mappingClaim;
}

/** The CRM id that a Siagh Code is already mapped to, from the store the message's lookup used. */
export function mappedCrmIdOf(msg: NodeMessage, entityType: EntityType, code: number | string): string | undefined {
  const c = claimOf(msg);
  const file = c?.file ?? (typeof msg.mappingFile === 'string' ? msg.mappingFile : undefined);
  if (!file) return undefined;
  return MappingStore.peek(file)?.lookupBySiaghCode(entityType, code)?.crmId;
}
