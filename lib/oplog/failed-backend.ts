/**
 * The failed list as every backend offers it: the CRM events that could not be synced, one entry
 * per record (`identity:<guid>`), with attempts, the last reason, first and last failure, replays
 * and a review item's facts; a later success removes the entry. The same names and arguments as
 * the file list's `FailedList` (lib/oplog/failed-list.ts), every read and write a Promise that
 * resolves once the change is durable. Backends: the data folder (file-failed-backend.ts) and
 * PostgreSQL (pg-failed-list.ts); test/lib/oplog/failed-conformance.test.ts runs against each.
 */
import type { DropReport, FailedEntry, FailedFilter, FailedLimits, FailureInput } from './failed-list';

export interface FailedBackend {
  /** 'file' or 'postgres': where the list lives. */
  readonly kind: 'file' | 'postgres';
  /** Change the bounds; applied at the next change. */
  setLimits(l: FailedLimits): void;
  readonly limits: { maxEntries: number; maxAgeDays: number };
  /** Told once per batch of entries dropped by the bounds. */
  onDrop: ((r: DropReport) => void) | undefined;
  /** Entries this instance dropped by the bounds since open. */
  readonly dropped: number;
  /** Drop reports made before onDrop was set (the bounds applied at open). */
  takeEarlyDrops(): DropReport[];
  size(): Promise<number>;
  get(key: string): Promise<FailedEntry | undefined>;
  /** All entries, oldest failure first. */
  all(): Promise<FailedEntry[]>;
  /** A new entry, or the existing one with attempts + 1 and the new reason (and review facts, if any). */
  recordFailure(f: FailureInput): Promise<FailedEntry>;
  /** A success for `key`: the entry goes (a review item is resolved so). Whether there was one. */
  recordSuccess(key: string): Promise<boolean>;
  /** Remove entries by key (operator clean-up). How many went. */
  remove(keys: string[]): Promise<number>;
  /** The entries a filter picks, oldest failure first (BAD_INPUT for a malformed filter). */
  match(f: FailedFilter, now?: number): Promise<FailedEntry[]>;
  /** Note that these entries were sent for replay. */
  markReplayed(keys: string[], now?: number): Promise<void>;
  /** Put whole entries as they are (the store transfer); an entry with the same key is replaced. */
  restore(entries: FailedEntry[]): Promise<number>;
  close(): Promise<void>;
}
