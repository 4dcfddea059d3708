/**
 * The mapping store as every backend offers it: CRM id ↔ Siagh Code ↔ customer number per entity
 * type, unique both ways per type, per-entity claims with a lease, and `meta` (poll cursors,
 * pre-invoice create marks). The same names and arguments as the file store's `MappingStore`
 * (lib/store/mapping-store.ts), every read and write a Promise, so a backend may live in another
 * process (PostgreSQL: lib/store/pg-mapping-store.ts; the file folder: file-mapping-backend.ts).
 *
 * The guarantees both backends give (test/lib/store/mapping-conformance.test.ts runs against each):
 * - a write resolves only once it is durable;
 * - a Siagh code is mapped to at most one CRM id per type: storing it for a second one rejects with
 *   MAPPING_CONFLICT and writes nothing; storing a CRM id again with a new code repoints it;
 * - `claim` gives one holder at a time per entity (across every instance sharing the backend),
 *   waits up to `waitMs` (then MAPPING_BUSY, retryable), and the claim ends on `release`, on
 *   `store` with its token, or when its lease (`leaseMs`: how long it may last without a sign of
 *   life, a `renewClaim` by its holder; a renewal without `leaseMs` gives it its own lease again)
 *   runs out; a stale token renews nothing and releases nothing, while `store` with it still
 *   records the mapping (it records something that already happened in Siagh);
 * - a killed holder's claims end soon, not after their lease: the file store's claims live in its
 *   process; PostgreSQL's instance renews the claims it holds with a heartbeat (`liveLeaseMs`,
 *   15 s), so they end within that once it is gone.
 */
import type { CommitOptions } from './mapping-store';
import type { EntityType, MappingInput, MappingRecord } from './mapping-store';

/** Counts every backend can give (the file store adds its file and journal figures). */
export interface MappingBackendStats {
  total: number;
  byType: Record<string, number>;
  bySource: Record<string, number>;
  /** ISO time of the last write made through this instance. */
  lastWriteAt?: string;
}

export interface ClaimOptions {
  leaseMs?: number;
  waitMs?: number;
}

export interface MappingBackend {
  /** 'file' or 'postgres': where the mappings live. */
  readonly kind: 'file' | 'postgres';
  lookup(entityType: EntityType, crmId: string): Promise<MappingRecord | undefined>;
  lookupBySiaghCode(entityType: EntityType, code: string | number): Promise<MappingRecord | undefined>;
  /** The contact mapping with this customer number (the least recently stored, if several share it). */
  lookupByCustomerNumber(customerNumber: string): Promise<MappingRecord | undefined>;
  lookupAllByCustomerNumber(customerNumber: string): Promise<MappingRecord[]>;
  /** Records in order of last write, contacts then quotes then invoices (or one type). */
  list(opts?: { entityType?: EntityType; offset?: number; limit?: number }): Promise<MappingRecord[]>;
  stats(): Promise<MappingBackendStats>;
  getMeta<T = unknown>(key: string): Promise<T | undefined>;
  /** Every meta key and value (the store transfer). */
  metaEntries(): Promise<Record<string, unknown>>;
  store(input: MappingInput, opts?: { claimToken?: string } & CommitOptions): Promise<MappingRecord>;
  delete(entityType: EntityType, crmId: string): Promise<boolean>;
  /** undefined removes the key. */
  setMeta(key: string, value: unknown, opts?: CommitOptions): Promise<void>;
  flush(): Promise<void>;
  claim(entityType: EntityType, crmId: string, opts?: ClaimOptions): Promise<string>;
  release(entityType: EntityType, crmId: string, token: string): Promise<void>;
  renewClaim(entityType: EntityType, crmId: string, token: string, leaseMs?: number): Promise<boolean>;
  isClaimed(entityType: EntityType, crmId: string): Promise<boolean>;
  close(): Promise<void>;
}
