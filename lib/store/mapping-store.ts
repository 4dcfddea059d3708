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
 * Records handed out are frozen; do not try to change them, store a new one.
 */
import * as fs from 'node:fs';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { randomUUID } from 'node:crypto';
import { Low } from 'lowdb';
import { SyncError } from '../errors';
import { toAsciiDigits } from '../text/normalize';
import { DurableJsonFile, UnreadableFileError, copyFileAtomic, writeFileAtomic, writeFileAtomicChunks } from './atomic-file';
import { acquireLock, describeHolder, lockOwner, releaseLock, startHeartbeat, LOCK_HEARTBEAT_MS, type LockInfo } from './file-lock';
import { Journal, JournalClosedError, JournalCorruptError } from './journal';

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

/** One journal line: an absolute change, so replaying it twice is harmless. */
export type MappingJournalEntry =
  | { op: 'put'; rec: MappingRecord }
  | { op: 'del'; type: EntityType; crmId: string }
  | { op: 'meta'; key: string; value?: unknown };

/** The file format. `version` allows future migrations. */
export interface MappingFileV1 {
  version: 1;
  mappings: Record<EntityType, Record<string, MappingRecord>>;
  meta: Record<string, unknown>;
}

export const MAPPING_FILE_VERSION = 1;
const EXTRA_MAX_BYTES = 8192;
const DEFAULT_LEASE_MS = 60_000;
const DEFAULT_WAIT_MS = 60_000;
const DEFAULT_BACKUP_INTERVAL_MS = 60_000;
const DEFAULT_COMPACT_BYTES = 16 * 1024 * 1024;
const DEFAULT_COMPACT_ENTRIES = 50_000;
const DEFAULT_LOCK_CHECK_MS = 5_000;
/** Records per piece of a snapshot written by compaction (about 0.3 MB, 1–3 ms of work). */
const SNAPSHOT_PIECE_RECORDS = 1000;

const TYPE_LABEL: Record<EntityType, string> = { contact: 'contact', quote: 'quote (pre-invoice)', invoice: 'invoice' };

// ---------------------------------------------------------------------------------------------
// normalisation

function badInput(message: string): SyncError {
  return new SyncError('BAD_INPUT', message);
}

function checkType(t: unknown): EntityType {
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

function keyOf(t: EntityType, crmId: string): string {
  return `${t}\u0000${crmId}`;
}

function nullProto<T>(o: Record<string, T> | undefined | null): Record<string, T> {
  const out = o && typeof o === 'object' && !Array.isArray(o) ? o : ({} as Record<string, T>);
  Object.setPrototypeOf(out, null);
  return out;
}

function errText(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  const code = e instanceof Error ? (e as NodeJS.ErrnoException).code : undefined;
  return code && !msg.startsWith(code) ? `${code}: ${msg}` : msg;
}

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
// claims

interface ClaimWaiter {
  resolve(token: string): void;
  reject(err: Error): void;
  leaseMs: number;
  timer?: NodeJS.Timeout;
}
interface ClaimState {
  token: string;
  leaseTimer: NodeJS.Timeout;
  queue: ClaimWaiter[];
}

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

  private readonly db: Low<MappingFileV1>;
  private readonly adapter: DurableJsonFile<MappingFileV1>;
  private readonly opts: Required<MappingStoreOptions>;
  private lock: LockInfo | undefined;
  private stopHeartbeat: (() => void) | undefined;

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

  private readonly claims = new Map<string, ClaimState>();

  private readonly journal: Journal<MappingJournalEntry>;
  /** Size of the snapshot file as last read or written. */
  private snapshotBytes: number | undefined;
  private snapshotWrites = 0;
  private compactions = 0;
  private lastCompactAt: string | undefined;
  private compactScheduled = false;
  /** Set when another process took the lock: every write rejects with it. */
  private lost: SyncError | undefined;
  private lastWriteAt: string | undefined;
  private lastBackupMs = 0;
  private backupAt: string | undefined;
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
    this.adapter = new DurableJsonFile<MappingFileV1>(filePath);
    this.db = new Low<MappingFileV1>(this.adapter, MappingStore.emptyFile());
    this.journal = new Journal<MappingJournalEntry>(journalPathFor(filePath), {
      commitDelayMs: this.opts.commitDelayMs,
      compactBytes: this.opts.compactBytes,
      compactEntries: this.opts.compactEntries,
      onCompactDue: () => this.scheduleCompaction(),
      beforeCommit: () => this.checkLock(),
    });
  }

  private static emptyFile(): MappingFileV1 {
    return { version: 1, mappings: { contact: nullProto({}), quote: nullProto({}), invoice: nullProto({}) }, meta: nullProto({}) };
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
    s.lock = await acquireLock(filePath);
    try {
      await s.load();
    } catch (e) {
      await releaseLock(s.lockPath, s.lock.token);
      throw e;
    }
    s.stopHeartbeat = startHeartbeat(s.lockPath, s.lock.token, LOCK_HEARTBEAT_MS, {
      checkMs: s.opts.lockCheckMs,
      onLost: (holder) => s.lockLost(holder),
    });
    if (s.journal.compactionDue || s.journal.hasOld) s.scheduleCompaction();
    return s;
  }

  private get lockPath(): string {
    return `${this.filePath}.lock`;
  }

  /** Path of the journal beside the snapshot. */
  get journalPath(): string {
    return this.journal.path;
  }

  private lockLost(holder: Partial<LockInfo>): void {
    if (this.lost || this.closed) return;
    this.lost = new SyncError(
      'STORE_LOCKED',
      `Another process took over the data folder of the mapping file ${this.filePath}: its lock ${this.lockPath} now belongs to ${describeHolder(holder)}. ` +
        `This process has stopped writing mappings (this change was not saved) so that the two do not overwrite each other. ` +
        `Only one Node-RED process may use a data folder: stop the other process or give it a different folder, then restart or redeploy this one.`,
    );
    this.stopHeartbeat?.();
    this.journal.fail(this.lost);
  }

  /**
   * Before every commit and snapshot write: is the lock still ours? Reads the token (a small file;
   * an inode comparison is not enough: a new lock file often gets the number of the deleted one).
   */
  private async checkLock(): Promise<void> {
    if (this.lost) throw this.lost;
    if (!this.lock) return;
    const who = await lockOwner(this.lockPath, this.lock.token).catch(() => 'ours' as const); // unreadable now: the periodic check looks again
    if (who === 'ours') return;
    if (who === 'missing') return;
    this.lockLost(who);
    throw this.lost!;
  }

  private get bakPath(): string {
    return `${this.filePath}.bak`;
  }

  private async describeBackup(): Promise<string> {
    const bak = this.bakPath;
    let st: fs.Stats;
    try {
      st = await fsp.stat(bak);
    } catch {
      return `No backup ${bak} exists. Move the damaged file away to start with an empty mapping (every entity is then treated as new, which can create duplicates in Siagh), or restore it from your own backups.`;
    }
    let verdict = '';
    try {
      const parsed = JSON.parse(await fsp.readFile(bak, 'utf8')) as Partial<MappingFileV1>;
      if (parsed && parsed.mappings) {
        const n = ENTITY_TYPES.reduce((sum, t) => sum + Object.keys(parsed.mappings?.[t] ?? {}).length, 0);
        verdict = ` It is readable and holds ${n} mappings.`;
      }
    } catch {
      verdict = ' Warning: the backup is not readable either.';
    }
    return (
      `Restore the last good copy: stop Node-RED, copy ${bak} (from ${st.mtime.toISOString()}) over ${this.filePath}, and start again.${verdict} ` +
      `The journal ${this.journal.path} (the changes since the file was last written) is replayed over it; changes folded into the file between the backup and the damage are not in either, so sync those again.`
    );
  }

  private async load(): Promise<void> {
    const file = this.filePath;
    try {
      await this.db.read();
    } catch (e) {
      if (e instanceof UnreadableFileError) {
        throw new SyncError(
          'STORE_IO',
          `The mapping file ${file} cannot be read (${e.reason}). The store refused to start so that no mapping is lost. ${await this.describeBackup()}`,
          { cause: e },
        );
      }
      throw new SyncError('STORE_IO', `Cannot read the mapping file ${file} (${errText(e)}). Check its permissions.`, { cause: e });
    }
    const existed = this.adapter.lastBytes !== undefined;
    this.snapshotBytes = this.adapter.lastBytes;
    if (!existed) {
      if (fs.existsSync(this.bakPath)) {
        throw new SyncError(
          'STORE_IO',
          `The mapping file ${file} is missing but its backup ${this.bakPath} exists. Copy the backup to ${file} to keep the mappings, or delete the backup to start with an empty mapping.`,
        );
      }
      const j = this.journal.path;
      if (nonEmpty(j) || nonEmpty(this.journal.oldPath)) {
        throw new SyncError(
          'STORE_IO',
          `The mapping file ${file} is missing but its journal ${j} exists (it only holds the changes since the file was last written). Restore ${file} from your backups, or move the journal away to start with an empty mapping.`,
        );
      }
      this.db.data = MappingStore.emptyFile();
      await this.db.write(); // the file exists from now on
      this.snapshotBytes = this.adapter.lastBytes;
      return;
    }
    const data = this.db.data as unknown;
    if (!data || typeof data !== 'object' || Array.isArray(data)) {
      throw new SyncError('STORE_IO', `The mapping file ${file} does not hold a mapping store (no JSON object). ${await this.describeBackup()}`);
    }
    const d = data as Partial<MappingFileV1> & { version?: unknown };
    if (typeof d.version === 'number' && d.version > MAPPING_FILE_VERSION) {
      throw new SyncError(
        'STORE_IO',
        `The mapping file ${file} has format version ${d.version}, written by a newer version of node-red-contrib-siagh-sync. Upgrade the package, or restore ${this.bakPath} if it is older.`,
      );
    }
    if (d.version !== MAPPING_FILE_VERSION || !d.mappings || typeof d.mappings !== 'object') {
      throw new SyncError('STORE_IO', `The mapping file ${file} is not a mapping store of format version 1 (found version ${JSON.stringify(d.version)}). ${await this.describeBackup()}`);
    }
    const mappings = d.mappings as Partial<Record<EntityType, Record<string, MappingRecord>>>;
    const clean: MappingFileV1 = {
      version: 1,
      mappings: { contact: nullProto(mappings.contact), quote: nullProto(mappings.quote), invoice: nullProto(mappings.invoice) },
      meta: nullProto(d.meta as Record<string, unknown> | undefined),
    };
    this.db.data = clean;
    try {
      await this.journal.open((e) => applyEntry(clean, e));
    } catch (e) {
      if (e instanceof JournalCorruptError) {
        throw new SyncError(
          'STORE_IO',
          `The mapping journal ${e.file} is damaged at line ${e.line} (${e.reason}). The store refused to start so that no mapping is lost. ` +
            `Lines 1 to ${e.line - 1} are intact; a damaged line in the middle is not a crash (that only tears the last line): check the disk, ` +
            `then repair or remove that line by hand (every later line is still applied), or restore ${file} and the journal from your backups.`,
          { cause: e },
        );
      }
      throw new SyncError('STORE_IO', `Cannot read the mapping journal ${this.journal.path} (${errText(e)}). Check its permissions.`, { cause: e });
    }
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
    if (this.opts.backup) {
      try {
        await copyFileAtomic(file, this.bakPath);
        this.lastBackupMs = Date.now();
        this.backupAt = new Date(this.lastBackupMs).toISOString();
      } catch (e) {
        this.warn(`Could not copy the mapping file to its backup ${this.bakPath} (${errText(e)}).`);
      }
    }
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
    return this.adapter.writeCount + this.snapshotWrites + this.journal.writeCount;
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
      lastWriteAt: this.lastWriteAt,
      fileBytes: this.snapshotBytes === undefined ? undefined : this.snapshotBytes + this.journal.bytes,
      backupAt: this.backupAt,
      journalBytes: this.journal.bytes,
      journalEntries: this.journal.entries,
      compactions: this.compactions,
      lastCompactAt: this.lastCompactAt,
      lockLost: this.lost?.message,
    };
  }

  getMeta<T = unknown>(key: string): T | undefined {
    this.assertOpen();
    const v = this.db.data.meta[String(key)];
    return v === undefined ? undefined : (structuredClone(v) as T);
  }

  // ------------------------------------------------------------------------------------------
  // writes

  private buildRecord(input: MappingInput): MappingRecord {
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

  /**
   * Save a mapping; resolves with the stored record once it is durable on disk. Throws
   * MAPPING_CONFLICT (nothing written) when the Siagh code is already mapped to another CRM id of
   * the same type. Storing an existing CRM id with a new code repoints it. With `claimToken`, the
   * claim is released after the write (a wrong or expired token is ignored; the record is still
   * stored, because it records something that already happened in Siagh).
   */
  async store(input: MappingInput, opts: { claimToken?: string } & CommitOptions = {}): Promise<MappingRecord> {
    this.assertWritable();
    const rec = this.buildRecord(input);
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
    const meta = this.db.data.meta;
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
  async flush(): Promise<void> {
    try {
      await this.journal.flush();
    } catch (e) {
      throw this.writeError(e);
    }
  }

  /**
   * Fold the journal into the snapshot now (it happens by itself when the journal reaches
   * compactBytes / compactEntries, and at the last close). Writes go on meanwhile. Resolves when
   * the new snapshot is durable and the old journal deleted.
   */
  async compact(): Promise<void> {
    this.assertWritable();
    try {
      await this.journal.compact(() => this.captureSnapshot());
    } catch (e) {
      if (this.lost) throw this.lost;
      throw new SyncError('STORE_IO', `Could not write the mapping file ${this.filePath} (${errText(e)}); the changes are safe in the journal ${this.journal.path}. Check free disk space and permissions.`, {
        retryable: true,
        cause: e,
      });
    }
    this.compactions++;
    this.lastCompactAt = new Date().toISOString();
    await this.maybeBackup();
  }

  // ------------------------------------------------------------------------------------------
  // journal and compaction

  private assertWritable(): void {
    this.assertOpen();
    if (this.lost) throw this.lost;
  }

  /** Append the change to the journal; resolves once it is durable. */
  private async persist(entry: MappingJournalEntry, withinMs?: number): Promise<void> {
    try {
      await this.journal.append(entry, { withinMs });
    } catch (e) {
      throw this.writeError(e);
    }
    this.lastWriteAt = new Date().toISOString();
  }

  private writeError(e: unknown): SyncError {
    if (this.lost) return this.lost;
    if (e instanceof SyncError) return e;
    if (e instanceof JournalClosedError) return new SyncError('STORE_IO', `The mapping store ${this.filePath} is closed (the node was stopped or redeployed).`);
    const cause = e instanceof Error && e.cause !== undefined ? e.cause : e;
    return new SyncError(
      'STORE_IO',
      `Could not write the mapping journal ${this.journal.path} (${errText(cause)}). The change is kept in memory and written with the next change; check free disk space and permissions.`,
      { retryable: true, cause: e },
    );
  }

  private scheduleCompaction(): void {
    if (this.compactScheduled || this.closed || this.lost) return;
    this.compactScheduled = true;
    setImmediate(() => {
      this.compactScheduled = false;
      if (this.closed || this.lost || this.journal.isCompacting) return;
      this.compact().catch((e: unknown) => this.warn(`Background compaction failed: ${errText(e)}`));
    });
  }

  /**
   * Called by the journal right after it set the current journal aside: returns the writer of the
   * new snapshot, which walks the record Maps live, piece by piece, with the event loop running in
   * between. So the snapshot holds, for each record, its value at the rotation or a later one (or
   * lacks a record deleted meanwhile): every such later change is also in the new journal, whose
   * replay over this snapshot gives the exact state (entries are absolute set/delete).
   */
  private captureSnapshot(): () => Promise<void> {
    const maps = ENTITY_TYPES.map((t) => this.recs[t]);
    const metaJson = JSON.stringify(this.db.data.meta);
    return async () => {
      await this.checkLock(); // never overwrite the file of a process that took the folder over
      this.snapshotBytes = await writeFileAtomicChunks(this.filePath, snapshotPieces(maps, metaJson));
      this.snapshotWrites++;
    };
  }

  private async maybeBackup(): Promise<void> {
    if (!this.opts.backup) return;
    const now = Date.now();
    if (now - this.lastBackupMs < this.opts.backupIntervalMs) return;
    this.lastBackupMs = now;
    try {
      // The snapshot is only replaced by a rename, so the copy is of a whole file.
      await copyFileAtomic(this.filePath, this.bakPath);
      this.backupAt = new Date(now).toISOString();
    } catch (e) {
      this.warn(`Could not update the backup ${this.bakPath} (${errText(e)}).`);
    }
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
      const key = keyOf(t, id);
      const leaseMs = Math.max(1, opts.leaseMs ?? this.opts.leaseMs);
      const waitMs = Math.max(0, opts.waitMs ?? this.opts.waitMs);
      const st = this.claims.get(key);
      if (!st) return Promise.resolve(this.grant(key, leaseMs, []));
      if (waitMs === 0) return Promise.reject(this.busy(t, id, 0));
      return new Promise<string>((resolve, reject) => {
        const w: ClaimWaiter = { resolve, reject, leaseMs };
        w.timer = setTimeout(() => {
          const cur = this.claims.get(key);
          const i = cur ? cur.queue.indexOf(w) : -1;
          if (i >= 0) cur!.queue.splice(i, 1);
          reject(this.busy(t, id, waitMs));
        }, waitMs);
        st.queue.push(w);
      });
    } catch (e) {
      return Promise.reject(e);
    }
  }

  private busy(t: EntityType, id: string, waitMs: number): SyncError {
    return new SyncError(
      'MAPPING_BUSY',
      `Another message for CRM ${TYPE_LABEL[t]} ${id} is still being processed` +
        (waitMs ? ` and did not finish within ${Math.round(waitMs / 100) / 10} s` : '') +
        '; try this message again later.',
      { retryable: true },
    );
  }

  private grant(key: string, leaseMs: number, queue: ClaimWaiter[]): string {
    const token = randomUUID();
    const leaseTimer = setTimeout(() => {
      const cur = this.claims.get(key);
      if (cur && cur.token === token) this.handOff(key, cur);
    }, leaseMs);
    leaseTimer.unref();
    this.claims.set(key, { token, leaseTimer, queue });
    return token;
  }

  private handOff(key: string, st: ClaimState): void {
    clearTimeout(st.leaseTimer);
    const next = st.queue.shift();
    if (!next) {
      this.claims.delete(key);
      return;
    }
    if (next.timer) clearTimeout(next.timer);
    next.resolve(this.grant(key, next.leaseMs, st.queue));
  }

  /** Give a claim back. A wrong or expired token does nothing. */
  release(entityType: EntityType, crmId: string, token: string): void {
    let key: string;
    try {
      key = keyOf(checkType(entityType), normalizeCrmId(crmId));
    } catch {
      return;
    }
    const st = this.claims.get(key);
    if (st && st.token === token) this.handOff(key, st);
  }

  /** Extend a held claim's lease (its holder is still working). False for a wrong or expired token. */
  renewClaim(entityType: EntityType, crmId: string, token: string, leaseMs = this.opts.leaseMs): boolean {
    let key: string;
    try {
      key = keyOf(checkType(entityType), normalizeCrmId(crmId));
    } catch {
      return false;
    }
    const st = this.claims.get(key);
    if (!st || st.token !== token) return false;
    clearTimeout(st.leaseTimer);
    st.leaseTimer = setTimeout(() => {
      const cur = this.claims.get(key);
      if (cur && cur.token === token) this.handOff(key, cur);
    }, Math.max(1, leaseMs));
    st.leaseTimer.unref();
    return true;
  }

  /** True while someone holds the claim on this entity. */
  isClaimed(entityType: EntityType, crmId: string): boolean {
    return this.claims.has(keyOf(checkType(entityType), normalizeCrmId(crmId)));
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
    for (const st of this.claims.values()) {
      clearTimeout(st.leaseTimer);
      for (const w of st.queue) {
        if (w.timer) clearTimeout(w.timer);
        w.reject(new SyncError('MAPPING_BUSY', `The mapping store ${this.filePath} was closed while this message waited for another one; try again.`, { retryable: true }));
      }
    }
    this.claims.clear();
    try {
      if (!this.lost) {
        await this.flush();
        // Leave one plain, complete file behind: fold what the journal holds into the snapshot.
        // (A background compaction may be running: it only holds what came before its start, so look again.)
        for (let i = 0; i < 3 && (this.journal.bytes > 0 || this.journal.hasOld || this.journal.isCompacting); i++) {
          try {
            await this.journal.compact(() => this.captureSnapshot());
          } catch (e) {
            if (!this.lost) this.warn(`Could not fold the journal into ${this.filePath} at close (${errText(e)}); it is replayed at the next open.`);
            break;
          }
        }
      }
    } finally {
      await this.journal.close().catch(() => undefined);
      this.stopHeartbeat?.();
      if (this.lock && !this.lost) await releaseLock(this.lockPath, this.lock.token);
      this.lock = undefined;
      this.db.data = MappingStore.emptyFile();
      for (const t of ENTITY_TYPES) this.recs[t].clear();
      for (const t of ENTITY_TYPES) this.byCode[t].clear();
      this.byCustomer.clear();
      this.sources.clear();
    }
  }
}

/** Write a mapping file directly (import tools, tests, the benchmark). Not for a file a store has open. */
export async function writeMappingFile(filePath: string, data: MappingFileV1): Promise<void> {
  await writeFileAtomic(filePath, JSON.stringify(data));
  // A journal left beside it belongs to the file that was replaced.
  for (const j of [journalPathFor(filePath), `${journalPathFor(filePath)}.old`]) fs.rmSync(j, { force: true });
}

/** `<file>.journal`: the changes since the snapshot `<file>` was written. */
export function journalPathFor(filePath: string): string {
  return `${filePath}.journal`;
}

function nonEmpty(file: string): boolean {
  try {
    return fs.statSync(file).size > 0;
  } catch {
    return false;
  }
}

/** Apply one journal line to raw file data (replay). Throws on a line that is not a change. */
function applyEntry(data: MappingFileV1, e: MappingJournalEntry): void {
  if (!e || typeof e !== 'object') throw new Error('not a change record');
  if (e.op === 'put') {
    const rec = e.rec;
    if (!rec || typeof rec !== 'object' || typeof rec.crmId !== 'string') throw new Error('a put without a record');
    const t = checkType(rec.entityType);
    const m = data.mappings[t];
    delete m[rec.crmId]; // re-inserted: keeps the order of last write
    m[rec.crmId] = rec;
  } else if (e.op === 'del') {
    if (typeof e.crmId !== 'string') throw new Error('a delete without a CRM id');
    delete data.mappings[checkType(e.type)][e.crmId];
  } else if (e.op === 'meta') {
    if (typeof e.key !== 'string') throw new Error('a meta change without a key');
    if (e.value === undefined) delete data.meta[e.key];
    else data.meta[e.key] = e.value;
  } else {
    throw new Error(`unknown change ${JSON.stringify((e as { op?: unknown }).op)}`);
  }
}

/**
 * The snapshot text in pieces of SNAPSHOT_PIECE_RECORDS records: for an unchanging store, the same
 * bytes as JSON.stringify of the file data. The Maps are walked live (see captureSnapshot); a
 * record stored again meanwhile moves to the end of its Map and is met twice: written once.
 */
function* snapshotPieces(maps: Map<string, MappingRecord>[], metaJson: string): Generator<string> {
  yield '{"version":1,"mappings":{';
  for (let i = 0; i < ENTITY_TYPES.length; i++) {
    yield `${i ? ',' : ''}${JSON.stringify(ENTITY_TYPES[i])}:{`;
    const seen = new Set<string>();
    let parts: string[] = [];
    for (const [crmId, rec] of maps[i]) {
      if (seen.has(crmId)) continue;
      seen.add(crmId);
      parts.push(`${seen.size > 1 ? ',' : ''}${JSON.stringify(crmId)}:${JSON.stringify(rec)}`);
      if (parts.length >= SNAPSHOT_PIECE_RECORDS) {
        yield parts.join('');
        parts = [];
      }
    }
    if (parts.length) yield parts.join('');
    yield '}';
  }
  yield `},"meta":${metaJson}}`;
}

/**
 * Read the state a store on `filePath` holds on disk, without opening it (no lock): the snapshot
 * with the journal replayed over it (a torn last line ignored). For tools and tests that check
 * what is durable; not a substitute for MappingStore.open.
 */
export function readMappingFile(filePath: string): MappingFileV1 {
  const data = JSON.parse(fs.readFileSync(filePath, 'utf8')) as MappingFileV1;
  for (const t of ENTITY_TYPES) data.mappings[t] = nullProto(data.mappings[t]);
  data.meta = nullProto(data.meta);
  const j = journalPathFor(filePath);
  for (const f of [`${j}.old`, j]) {
    let text: string;
    try {
      text = fs.readFileSync(f, 'utf8');
    } catch {
      continue;
    }
    const lines = text.split('\n');
    lines.pop(); // after the last newline: empty, or a torn line
    lines.forEach((l, i) => {
      if (!l.trim()) return;
      try {
        applyEntry(data, JSON.parse(l) as MappingJournalEntry);
      } catch (e) {
        throw new Error(`${f} line ${i + 1}: ${errText(e)}`);
      }
    });
  }
  // plain objects for the caller (spread keeps any key as an own property)
  for (const t of ENTITY_TYPES) data.mappings[t] = { ...data.mappings[t] };
  data.meta = { ...data.meta };
  return data;
}
