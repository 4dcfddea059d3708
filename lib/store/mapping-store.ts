/**
 * The mapping store: CRM id ↔ Siagh Code ↔ CRM customer number, per entity type, in one lowdb 7
 * file, plus a small persistent key/value area (`meta`) for cursors and job progress.
 *
 * Design (see also the benchmark in bench/mapping-store.ts):
 * - Everything is held in memory. The file data is the primary index (objects keyed by CRM id per
 *   entity type); Siagh code and customer number are secondary `Map` indexes built at load. Every
 *   lookup is O(1); nothing scans arrays.
 * - On disk: the lowdb snapshot `<file>` (compact JSON, format below) plus the journal
 *   `<file>.journal` (JSON lines, one per change since the snapshot; see journal.ts), and while a
 *   compaction runs `<file>.journal.old`. Open = read the snapshot, replay the journal(s) over it.
 * - Writes are durable and group-committed. A change is applied to memory at once (so lookups and
 *   the uniqueness checks of later calls see it), then its journal line joins the next commit. One
 *   commit = one append + one fdatasync of the journal for every change waiting, so it costs the
 *   size of the changes, not of the file. Changes arriving while a commit runs go into the
 *   following one. A promise resolves only after the commit holding its line is on disk. If a
 *   write fails, the promises of that commit reject with STORE_IO (retryable); the changes stay in
 *   memory and their lines are written by the next commit.
 *   A writer with many changes in flight (the initial import) may pass `commitWithinMs`: its change
 *   then waits up to that long for a commit (any earlier one takes it along).
 * - Compaction folds the journal into the snapshot in the background when the journal reaches
 *   `compactBytes` / `compactEntries` (and at the last close, so a cleanly closed store is one
 *   plain file again): the journal is set aside as `.journal.old`, the state is captured (key lists
 *   only: records are immutable) and written as a new snapshot in pieces of ~1000 records with the
 *   event loop running between them (temp file, fsync, rename, fsync dir), then `.old` is deleted.
 *   Journal lines are absolute "set"/"delete" changes, so replaying `.old` again after a crash
 *   between the rename and the delete gives the same state.
 * - One instance per real path per process (module registry, reference-counted). A second process
 *   on the same file is refused (STORE_LOCKED) by `<file>.lock` (see file-lock.ts for when a lock
 *   left behind is taken over). The holder checks before every commit and every few seconds that
 *   the lock still names it; if another process took it over, this store stops writing: every
 *   write rejects with STORE_LOCKED (lookups keep answering from memory) and close() leaves the
 *   files and the other process's lock alone.
 * - `<file>.bak`: a copy of the last good snapshot, made at open and at most once per backup
 *   interval (default 60 s) after compactions. An unreadable snapshot is never replaced by an
 *   empty store: open refuses with a message naming the backup. A damaged journal line (not the
 *   torn last line of a crash, which is ignored) refuses the open too, naming the line.
 * - Per-entity claims (FIFO, with lease) so two messages for one entity never both create in Siagh.
 *
 * Where each part lives: `mapping-record.ts` (the record, its keys and their normalisation),
 * `mapping-file.ts` (file format, load, backup, read and write for tools), `mapping-writer.ts`
 * (group commits, lock, compaction), `mapping-claims.ts` (the claims table). This file is the
 * store itself: the in-memory indexes, reads and writes, and one instance per file.
 *
 * Records handed out are frozen; do not try to change them, store a new one.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SyncError } from '../errors';
import { ClaimTable } from './mapping-claims';
import { emptyMappingFile, loadMappingFile, nullProto, snapshotPieces, type MappingFileV1, type MappingJournalEntry } from './mapping-file';
import {
  badInput,
  buildMappingRecord,
  checkType,
  ENTITY_TYPES,
  errText,
  normalizeCrmId,
  normalizeCustomerNumber,
  normalizeSiaghCode,
  TYPE_LABEL,
  type EntityType,
  type MappingInput,
  type MappingRecord,
} from './mapping-record';
import { MappingWriter } from './mapping-writer';

export { ENTITY_TYPES, normalizeCrmId, normalizeCustomerNumber, normalizeSiaghCode } from './mapping-record';
export type { EntityType, MappingInput, MappingRecord } from './mapping-record';
export { journalPathFor, MAPPING_FILE_VERSION, readMappingFile, writeMappingFile } from './mapping-file';
export type { MappingFileV1, MappingJournalEntry } from './mapping-file';

export interface MappingStoreOptions {
  /** Extra wait before a commit starts, to gather more changes (default 0: the next loop turn). */
  commitDelayMs?: number;
  /** Default claim lease (default 60 000 ms). */
  leaseMs?: number;
  /** Default time claim() waits for another holder (default 60 000 ms). */
  waitMs?: number;
  /** Keep `<file>.bak` (default true). */
  backup?: boolean;
  /** Least time between two backup copies during writes (default 60 000 ms). */
  backupIntervalMs?: number;
  /** Compact (fold the journal into the snapshot) once the journal has this many bytes (default 16 MiB). */
  compactBytes?: number;
  /** … or this many changes (default 50 000). */
  compactEntries?: number;
  /** How often to check that this process still holds the lock, besides before every commit (default 5 000 ms). */
  lockCheckMs?: number;
}

export interface MappingStoreStats {
  total: number;
  byType: Record<string, number>;
  bySource: Record<string, number>;
  /** ISO time of the last successful file write. */
  lastWriteAt?: string;
  /** Bytes on disk: the snapshot as last read or written plus the journal. */
  fileBytes?: number;
  /** ISO time of the last backup copy. */
  backupAt?: string;
  /** Bytes and changes in the journal (not yet folded into the snapshot). */
  journalBytes?: number;
  journalEntries?: number;
  /** Compactions made by this instance, and when the last one ended. */
  compactions?: number;
  lastCompactAt?: string;
  /** Set when another process took the lock over: why this store refuses every write. */
  lockLost?: string;
}

const DEFAULT_LEASE_MS = 60_000;
const DEFAULT_WAIT_MS = 60_000;
const DEFAULT_BACKUP_INTERVAL_MS = 60_000;
const DEFAULT_COMPACT_BYTES = 16 * 1024 * 1024;
const DEFAULT_COMPACT_ENTRIES = 50_000;
const DEFAULT_LOCK_CHECK_MS = 5_000;

// ---------------------------------------------------------------------------------------------
// registry

interface RegistryEntry {
  store: MappingStore;
  refs: number;
}
const registry = new Map<string, RegistryEntry>();
const opening = new Map<string, Promise<MappingStore>>();
const closing = new Map<string, Promise<void>>();

/** The real absolute path (symlinked folders resolved), creating the folder if needed. */
function canonicalPath(filePath: string): string {
  if (typeof filePath !== 'string' || !filePath.trim()) throw new SyncError('CONFIG', 'The mapping store needs a file path.');
  const abs = path.resolve(filePath);
  const dir = path.dirname(abs);
  try {
    fs.mkdirSync(dir, { recursive: true });
    return path.join(fs.realpathSync(dir), path.basename(abs));
  } catch (e) {
    throw new SyncError('STORE_IO', `Cannot create or open the folder ${dir} for the mapping file (${errText(e)}).`, { cause: e });
  }
}

// ---------------------------------------------------------------------------------------------

/** Options of one write: how soon its commit must start. */
export interface CommitOptions {
  /**
   * The change may wait this long (ms) for the commit that writes it, so that a caller with many
   * writes in flight (the initial import) shares one file write among more of them. Default 0: the
   * next loop turn (or the store's `commitDelayMs`). The promise still resolves only once the change
   * is on disk, and an earlier commit (any other write, flush, close) takes it along at once.
   */
  commitWithinMs?: number;
}

// ---------------------------------------------------------------------------------------------

export class MappingStore {
  /** Real absolute path of the data file. */
  readonly filePath: string;
  /** Problems found at open that did not stop it (duplicate codes in a hand-edited file, backup failed …). */
  readonly warnings: string[] = [];

  private readonly opts: Required<MappingStoreOptions>;
  private readonly writer: MappingWriter;
  /** The file's meta area (cursors, job progress); the records live in `recs`. */
  private data: MappingFileV1 = emptyMappingFile();

  /**
   * The records, per type, by CRM id, in order of last write. A Map rather than the file's plain
   * objects: it can be walked in pieces while it changes (compaction), and walking a 100 000-key
   * object (for-in, Object.keys) costs ~17 ms in one go. The file's objects are emptied at load.
   */
  private readonly recs: Record<EntityType, Map<string, MappingRecord>> = { contact: new Map(), quote: new Map(), invoice: new Map() };
  private readonly byCode: Record<EntityType, Map<string, string>> = { contact: new Map(), quote: new Map(), invoice: new Map() };
  /** Customer number → CRM ids of contacts carrying it (usually one; oldest first). */
  private readonly byCustomer = new Map<string, Set<string>>();
  private readonly counts: Record<EntityType, number> = { contact: 0, quote: 0, invoice: 0 };
  private readonly sources = new Map<string, number>();

  private readonly claims = new ClaimTable();
  private closed = false;

  private constructor(filePath: string, opts: MappingStoreOptions) {
    this.filePath = filePath;
    this.opts = {
      commitDelayMs: Math.max(0, opts.commitDelayMs ?? 0),
      leaseMs: opts.leaseMs ?? DEFAULT_LEASE_MS,
      waitMs: opts.waitMs ?? DEFAULT_WAIT_MS,
      backup: opts.backup ?? true,
      backupIntervalMs: opts.backupIntervalMs ?? DEFAULT_BACKUP_INTERVAL_MS,
      compactBytes: Math.max(1, opts.compactBytes ?? DEFAULT_COMPACT_BYTES),
      compactEntries: Math.max(1, opts.compactEntries ?? DEFAULT_COMPACT_ENTRIES),
      lockCheckMs: Math.max(1, opts.lockCheckMs ?? DEFAULT_LOCK_CHECK_MS),
    };
    this.writer = new MappingWriter(
      filePath,
      this.opts,
      () => snapshotPieces(ENTITY_TYPES.map((t) => this.recs[t]), JSON.stringify(this.data.meta)),
      (msg) => this.warn(msg),
    );
  }

  /**
   * Open (or share) the store for `filePath`. The first open in a process takes the file lock and
   * loads the file; later opens of the same real path return the same instance (their options are
   * ignored) and add a reference. Each open must be paired with one close().
   */
  static async open(filePath: string, opts: MappingStoreOptions = {}): Promise<MappingStore> {
    const key = canonicalPath(filePath);
    for (;;) {
      const c = closing.get(key);
      if (c) {
        await c.catch(() => undefined);
        continue;
      }
      const e = registry.get(key);
      if (e) {
        e.refs++;
        return e.store;
      }
      const o = opening.get(key);
      if (o) {
        await o.catch(() => undefined);
        continue;
      }
      const p = MappingStore.create(key, opts).then((s) => {
        registry.set(key, { store: s, refs: 0 });
        return s;
      });
      opening.set(key, p);
      try {
        await p;
      } finally {
        opening.delete(key);
      }
      // loop: takes the registry entry and counts this reference
    }
  }

  /**
   * The instance already open for this path in this process, or undefined. Adds no reference (do
   * not close() what peek returns); for code that only has a message's `store.filePath` at hand.
   */
  static peek(filePath: string): MappingStore | undefined {
    if (typeof filePath !== 'string' || !filePath) return undefined;
    const abs = path.resolve(filePath);
    let e = registry.get(abs);
    if (!e) {
      try {
        e = registry.get(path.join(fs.realpathSync(path.dirname(abs)), path.basename(abs)));
      } catch {
        e = undefined;
      }
    }
    return e?.store;
  }

  private static async create(filePath: string, opts: MappingStoreOptions): Promise<MappingStore> {
    const s = new MappingStore(filePath, opts);
    await s.writer.acquire();
    try {
      await s.load();
    } catch (e) {
      await s.writer.abandon();
      throw e;
    }
    return s;
  }

  /** Path of the journal beside the snapshot. */
  get journalPath(): string {
    return this.writer.journal.path;
  }

  /** Read the file and the journal, index every record, copy the backup, then start the writer. */
  private async load(): Promise<void> {
    const loaded = await loadMappingFile(this.filePath, this.writer.journal);
    this.data = loaded.data;
    if (!loaded.created) {
      const clean = loaded.data;
      for (const t of ENTITY_TYPES) {
        const m = clean.mappings[t];
        for (const crmId in m) {
          let rec = m[crmId];
          if (!rec || typeof rec !== 'object' || typeof rec.siaghCode !== 'string' || typeof rec.source !== 'string') {
            this.warn(`Dropped an unusable ${t} mapping for CRM id ${crmId} found in the file.`);
            delete m[crmId];
            continue;
          }
          if (rec.entityType !== t || rec.crmId !== crmId) m[crmId] = rec = { ...rec, entityType: t, crmId }; // hand-edited file
          const holder = this.byCode[t].get(rec.siaghCode);
          if (holder !== undefined) {
            this.warn(`The file maps Siagh ${TYPE_LABEL[t]} code ${rec.siaghCode} to two CRM ids (${holder} and ${crmId}); lookups by code return ${holder}.`);
          }
          if (rec.extra) Object.freeze(rec.extra);
          Object.freeze(rec);
          this.recs[t].set(crmId, rec);
          this.addIndexes(rec, holder === undefined);
        }
        clean.mappings[t] = nullProto({}); // the Map holds them from now on
      }
      await this.writer.backup.copyNow();
    }
    this.writer.start(loaded);
  }

  private warn(msg: string): void {
    if (this.warnings.length < 50) this.warnings.push(msg);
  }

  // ------------------------------------------------------------------------------------------
  // indexes

  private addIndexes(rec: MappingRecord, indexCode = true): void {
    const t = rec.entityType;
    this.counts[t]++;
    this.sources.set(rec.source, (this.sources.get(rec.source) ?? 0) + 1);
    if (indexCode) this.byCode[t].set(rec.siaghCode, rec.crmId);
    if (t === 'contact' && rec.customerNumber) {
      let set = this.byCustomer.get(rec.customerNumber);
      if (!set) this.byCustomer.set(rec.customerNumber, (set = new Set()));
      set.add(rec.crmId);
    }
  }

  private removeIndexes(rec: MappingRecord): void {
    const t = rec.entityType;
    this.counts[t]--;
    const n = (this.sources.get(rec.source) ?? 1) - 1;
    if (n > 0) this.sources.set(rec.source, n);
    else this.sources.delete(rec.source);
    if (this.byCode[t].get(rec.siaghCode) === rec.crmId) this.byCode[t].delete(rec.siaghCode);
    if (t === 'contact' && rec.customerNumber) {
      const set = this.byCustomer.get(rec.customerNumber);
      if (set) {
        set.delete(rec.crmId);
        if (!set.size) this.byCustomer.delete(rec.customerNumber);
      }
    }
  }

  private assertOpen(): void {
    if (this.closed) throw new SyncError('STORE_IO', `The mapping store ${this.filePath} is closed (the node was stopped or redeployed).`);
  }

  // ------------------------------------------------------------------------------------------
  // reads

  /** Number of open() calls not yet matched by close(). */
  get refCount(): number {
    const e = registry.get(this.filePath);
    return e && e.store === this ? e.refs : 0;
  }

  /** Durable writes made by this instance: journal commits and snapshot writes (the open's initial write included). */
  get writeCount(): number {
    return this.writer.writeCount;
  }

  lookup(entityType: EntityType, crmId: string): MappingRecord | undefined {
    this.assertOpen();
    const t = checkType(entityType);
    return this.recs[t].get(normalizeCrmId(crmId));
  }

  lookupBySiaghCode(entityType: EntityType, code: string | number): MappingRecord | undefined {
    this.assertOpen();
    const t = checkType(entityType);
    const crmId = this.byCode[t].get(normalizeSiaghCode(code));
    return crmId === undefined ? undefined : this.recs[t].get(crmId);
  }

  /** The contact mapping with this CRM customer number (the oldest, if several contacts share it). */
  lookupByCustomerNumber(customerNumber: string): MappingRecord | undefined {
    this.assertOpen();
    const cn = normalizeCustomerNumber(customerNumber);
    const set = cn === undefined ? undefined : this.byCustomer.get(cn);
    if (!set) return undefined;
    for (const crmId of set) return this.recs.contact.get(crmId);
    return undefined;
  }

  /** Every contact mapping with this customer number (more than one means duplicates in the CRM). */
  lookupAllByCustomerNumber(customerNumber: string): MappingRecord[] {
    this.assertOpen();
    const cn = normalizeCustomerNumber(customerNumber);
    const set = cn === undefined ? undefined : this.byCustomer.get(cn);
    if (!set) return [];
    const m = this.recs.contact;
    return [...set].map((id) => m.get(id)).filter((r): r is MappingRecord => !!r);
  }

  /** Records in insertion order, contacts then quotes then invoices (or one type). */
  list(opts: { entityType?: EntityType; offset?: number; limit?: number } = {}): MappingRecord[] {
    this.assertOpen();
    const types = opts.entityType === undefined ? ENTITY_TYPES : [checkType(opts.entityType)];
    let skip = Math.max(0, Math.floor(opts.offset ?? 0));
    const limit = opts.limit === undefined ? Infinity : Math.max(0, Math.floor(opts.limit));
    const out: MappingRecord[] = [];
    if (limit === 0) return out;
    for (const t of types) {
      if (skip >= this.counts[t]) {
        skip -= this.counts[t];
        continue;
      }
      for (const rec of this.recs[t].values()) {
        if (skip > 0) {
          skip--;
          continue;
        }
        out.push(rec);
        if (out.length >= limit) return out;
      }
    }
    return out;
  }

  stats(): MappingStoreStats {
    this.assertOpen();
    const byType: Record<string, number> = { ...this.counts };
    const bySource: Record<string, number> = {};
    for (const [s, n] of this.sources) bySource[s] = n;
    return {
      total: this.counts.contact + this.counts.quote + this.counts.invoice,
      byType,
      bySource,
      ...this.writer.stats(),
    };
  }

  getMeta<T = unknown>(key: string): T | undefined {
    this.assertOpen();
    const v = this.data.meta[String(key)];
    return v === undefined ? undefined : (structuredClone(v) as T);
  }

  // ------------------------------------------------------------------------------------------
  // writes

  /**
   * Save a mapping; resolves with the stored record once it is durable on disk. Throws
   * MAPPING_CONFLICT (nothing written) when the Siagh code is already mapped to another CRM id of
   * the same type. Storing an existing CRM id with a new code repoints it. With `claimToken`, the
   * claim is released after the write (a wrong or expired token is ignored; the record is still
   * stored, because it records something that already happened in Siagh).
   */
  async store(input: MappingInput, opts: { claimToken?: string } & CommitOptions = {}): Promise<MappingRecord> {
    this.assertWritable();
    const rec = buildMappingRecord(input);
    const t = rec.entityType;
    const holder = this.byCode[t].get(rec.siaghCode);
    if (holder !== undefined && holder !== rec.crmId) {
      throw new SyncError(
        'MAPPING_CONFLICT',
        `Siagh ${TYPE_LABEL[t]} code ${rec.siaghCode} is already mapped to CRM id ${holder}; it was not mapped to CRM id ${rec.crmId} as well (nothing was written). ` +
          `The two CRM records are probably duplicates: merge them in the CRM, or delete the wrong mapping and sync again.`,
        { details: [holder, rec.crmId] },
      );
    }
    const m = this.recs[t];
    const prev = m.get(rec.crmId);
    if (prev) {
      this.removeIndexes(prev);
      m.delete(rec.crmId); // re-inserted below: keeps list() in order of last write
    }
    m.set(rec.crmId, rec);
    this.addIndexes(rec);
    await this.persist({ op: 'put', rec }, opts.commitWithinMs);
    if (opts.claimToken) this.release(t, rec.crmId, opts.claimToken);
    return rec;
  }

  /** Remove a mapping; true when there was one. Durable when it resolves. */
  async delete(entityType: EntityType, crmId: string): Promise<boolean> {
    this.assertWritable();
    const t = checkType(entityType);
    const id = normalizeCrmId(crmId);
    const m = this.recs[t];
    const prev = m.get(id);
    if (!prev) return false;
    this.removeIndexes(prev);
    m.delete(id);
    await this.persist({ op: 'del', type: t, crmId: id });
    return true;
  }

  /** Save a small JSON value (cursor, job progress); undefined removes the key. Durable when it resolves. */
  async setMeta(key: string, value: unknown, opts: CommitOptions = {}): Promise<void> {
    this.assertWritable();
    const k = String(key);
    if (!k) throw badInput('A meta key must not be empty.');
    const meta = this.data.meta;
    let stored: unknown;
    if (value === undefined) {
      if (!(k in meta)) return;
      delete meta[k];
    } else {
      let json: string | undefined;
      try {
        json = JSON.stringify(value);
      } catch (e) {
        throw badInput(`Meta value ${k} cannot be saved as JSON (${errText(e)}).`);
      }
      if (json === undefined) throw badInput(`Meta value ${k} cannot be saved as JSON.`);
      meta[k] = JSON.parse(json) as unknown;
      stored = JSON.parse(json) as unknown; // the journal serialises it at once; meta values are never changed in place
    }
    await this.persist(stored === undefined ? { op: 'meta', key: k } : { op: 'meta', key: k, value: stored }, opts.commitWithinMs);
  }

  /** Resolves when every change made so far is on disk. */
  flush(): Promise<void> {
    return this.writer.flush();
  }

  /**
   * Fold the journal into the snapshot now (it happens by itself when the journal reaches
   * compactBytes / compactEntries, and at the last close). Writes go on meanwhile. Resolves when
   * the new snapshot is durable and the old journal deleted.
   */
  async compact(): Promise<void> {
    this.assertWritable();
    await this.writer.compact();
  }

  private assertWritable(): void {
    this.assertOpen();
    const lost = this.writer.lost;
    if (lost) throw lost;
  }

  /** Append the change to the journal; resolves once it is durable. */
  private persist(entry: MappingJournalEntry, withinMs?: number): Promise<void> {
    return this.writer.persist(entry, withinMs);
  }

  // ------------------------------------------------------------------------------------------
  // claims

  /**
   * Claim one entity so that only one message works on it at a time. Resolves with a token once
   * this caller holds the claim. Waiters are served first come, first served; the claim passes on
   * when released, when store() is called with the token, or when its lease ends. Waiting longer
   * than `waitMs` → SyncError('MAPPING_BUSY', retryable). Claims live in memory only (per process).
   */
  claim(entityType: EntityType, crmId: string, opts: { leaseMs?: number; waitMs?: number } = {}): Promise<string> {
    try {
      this.assertOpen();
      const t = checkType(entityType);
      const id = normalizeCrmId(crmId);
      const leaseMs = Math.max(1, opts.leaseMs ?? this.opts.leaseMs);
      const waitMs = Math.max(0, opts.waitMs ?? this.opts.waitMs);
      return this.claims.claim(t, id, leaseMs, waitMs);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** Give a claim back. A wrong or expired token does nothing. */
  release(entityType: EntityType, crmId: string, token: string): void {
    let t: EntityType;
    let id: string;
    try {
      t = checkType(entityType);
      id = normalizeCrmId(crmId);
    } catch {
      return;
    }
    this.claims.release(t, id, token);
  }

  /**
   * A sign of life from the claim's holder (it is still working): the claim may last another
   * `leaseMs` (default: its own lease). False for a wrong or expired token. Claims live in this
   * process's memory, so a killed process's claims end with it.
   */
  renewClaim(entityType: EntityType, crmId: string, token: string, leaseMs?: number): boolean {
    let t: EntityType;
    let id: string;
    try {
      t = checkType(entityType);
      id = normalizeCrmId(crmId);
    } catch {
      return false;
    }
    return this.claims.renew(t, id, token, leaseMs);
  }

  /** True while someone holds the claim on this entity. */
  isClaimed(entityType: EntityType, crmId: string): boolean {
    return this.claims.has(checkType(entityType), normalizeCrmId(crmId));
  }

  // ------------------------------------------------------------------------------------------
  // close

  /**
   * Drop one reference. The last close writes pending changes, rejects waiting claims, releases
   * the file lock and frees the memory; the instance cannot be used afterwards.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    const e = registry.get(this.filePath);
    if (e && e.store === this && e.refs > 1) {
      e.refs--;
      return;
    }
    if (e && e.store === this) registry.delete(this.filePath);
    this.closed = true;
    const p = this.shutdown();
    closing.set(this.filePath, p);
    try {
      await p;
    } finally {
      if (closing.get(this.filePath) === p) closing.delete(this.filePath);
    }
  }

  private async shutdown(): Promise<void> {
    this.claims.closeAll(`The mapping store ${this.filePath} was closed while this message waited for another one; try again.`);
    try {
      await this.writer.close();
    } finally {
      this.data = emptyMappingFile();
      for (const t of ENTITY_TYPES) this.recs[t].clear();
      for (const t of ENTITY_TYPES) this.byCode[t].clear();
      this.byCustomer.clear();
      this.sources.clear();
    }
  }
}
