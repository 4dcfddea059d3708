/**
 * The durable side of a mapping store: the journal's group commits, the file lock, compaction and
 * the backup. The store changes its memory at once and hands each change here (`persist`); the
 * promise resolves once the commit holding its line is on disk (see journal.ts).
 *
 * - The lock `<file>.lock` is checked before every commit and snapshot write and every
 *   `lockCheckMs`; if another process took it over, the writer stops: every write rejects with
 *   `lost` (STORE_LOCKED) and close() leaves the files and the other process's lock alone.
 * - Compaction folds the journal into the snapshot in the background when the journal reaches
 *   `compactBytes` / `compactEntries`, and at close: the journal is set aside as `.journal.old`,
 *   the state captured (`capture`, called at the rotation) is written in pieces with the event
 *   loop running between them (temp file, fsync, rename, fsync dir), then `.old` is deleted.
 */
import { SyncError } from '../errors';
import { writeFileAtomicChunks } from './atomic-file';
import { acquireLock, describeHolder, lockOwner, releaseLock, startHeartbeat, LOCK_HEARTBEAT_MS, type LockInfo } from './file-lock';
import { Journal, JournalClosedError } from './journal';
import { journalPathFor, MappingBackup, type LoadedMappingFile, type MappingJournalEntry } from './mapping-file';
import { errText } from './mapping-record';

export interface MappingWriterOptions {
  commitDelayMs: number;
  compactBytes: number;
  compactEntries: number;
  lockCheckMs: number;
  backup: boolean;
  backupIntervalMs: number;
}

/** The writer's part of MappingStoreStats. */
export interface MappingWriterStats {
  lastWriteAt?: string;
  fileBytes?: number;
  backupAt?: string;
  journalBytes: number;
  journalEntries: number;
  compactions: number;
  lastCompactAt?: string;
  lockLost?: string;
}

export class MappingWriter {
  readonly journal: Journal<MappingJournalEntry>;
  readonly backup: MappingBackup;
  private lock: LockInfo | undefined;
  private stopHeartbeat: (() => void) | undefined;
  /** Size of the snapshot file as last read or written. */
  private snapshotBytes: number | undefined;
  private snapshotWrites = 0;
  private compactions = 0;
  private lastCompactAt: string | undefined;
  private compactScheduled = false;
  private lastWriteAt: string | undefined;
  /** Set when another process took the lock: every write rejects with it. */
  private lostError: SyncError | undefined;
  private closed = false;

  constructor(
    readonly filePath: string,
    private readonly opts: MappingWriterOptions,
    /** The snapshot's text, captured at the moment it is called (compaction). */
    private readonly capture: () => Iterable<string>,
    private readonly warn: (msg: string) => void,
  ) {
    this.backup = new MappingBackup(filePath, opts.backup, opts.backupIntervalMs, warn);
    this.journal = new Journal<MappingJournalEntry>(journalPathFor(filePath), {
      commitDelayMs: opts.commitDelayMs,
      compactBytes: opts.compactBytes,
      compactEntries: opts.compactEntries,
      onCompactDue: () => this.scheduleCompaction(),
      beforeCommit: () => this.checkLock(),
    });
  }

  private get lockPath(): string {
    return `${this.filePath}.lock`;
  }

  /** Why this store refuses writes (another process took its lock), or undefined. */
  get lost(): SyncError | undefined {
    return this.lostError;
  }

  /** Durable writes: journal commits and snapshot writes (a new store's first, empty snapshot included). */
  get writeCount(): number {
    return this.snapshotWrites + this.journal.writeCount;
  }

  /** Take the file lock (STORE_LOCKED when another process holds it). */
  async acquire(): Promise<void> {
    this.lock = await acquireLock(this.filePath);
  }

  /** Give the lock back after a failed load. */
  async abandon(): Promise<void> {
    if (this.lock) await releaseLock(this.lockPath, this.lock.token);
  }

  /** The file is loaded: watch the lock, and compact now if the journal asks for it. */
  start(loaded: LoadedMappingFile): void {
    this.snapshotBytes = loaded.snapshotBytes;
    if (loaded.created) this.snapshotWrites++;
    this.stopHeartbeat = startHeartbeat(this.lockPath, this.lock!.token, LOCK_HEARTBEAT_MS, {
      checkMs: this.opts.lockCheckMs,
      onLost: (holder) => this.lockLost(holder),
    });
    if (this.journal.compactionDue || this.journal.hasOld) this.scheduleCompaction();
  }

  stats(): MappingWriterStats {
    return {
      lastWriteAt: this.lastWriteAt,
      fileBytes: this.snapshotBytes === undefined ? undefined : this.snapshotBytes + this.journal.bytes,
      backupAt: this.backup.at,
      journalBytes: this.journal.bytes,
      journalEntries: this.journal.entries,
      compactions: this.compactions,
      lastCompactAt: this.lastCompactAt,
      lockLost: this.lostError?.message,
    };
  }

  private lockLost(holder: Partial<LockInfo>): void {
    if (this.lostError || this.closed) return;
    this.lostError = new SyncError(
      'STORE_LOCKED',
      `Another process took over the data folder of the mapping file ${this.filePath}: its lock ${this.lockPath} now belongs to ${describeHolder(holder)}. ` +
        `This process has stopped writing mappings (this change was not saved) so that the two do not overwrite each other. ` +
        `Only one Node-RED process may use a data folder: stop the other process or give it a different folder, then restart or redeploy this one.`,
    );
    this.stopHeartbeat?.();
    this.journal.fail(this.lostError);
  }

  /**
   * Before every commit and snapshot write: is the lock still ours? Reads the token (a small file;
   * an inode comparison is not enough: a new lock file often gets the number of the deleted one).
   */
  private async checkLock(): Promise<void> {
    if (this.lostError) throw this.lostError;
    if (!this.lock) return;
    const who = await lockOwner(this.lockPath, this.lock.token).catch(() => 'ours' as const); // unreadable now: the periodic check looks again
    if (who === 'ours') return;
    if (who === 'missing') return;
    this.lockLost(who);
    throw this.lostError!;
  }

  /** Append the change to the journal; resolves once it is durable. */
  async persist(entry: MappingJournalEntry, withinMs?: number): Promise<void> {
    try {
      await this.journal.append(entry, { withinMs });
    } catch (e) {
      throw this.writeError(e);
    }
    this.lastWriteAt = new Date().toISOString();
  }

  /** Resolves when every change appended so far is on disk. */
  async flush(): Promise<void> {
    try {
      await this.journal.flush();
    } catch (e) {
      throw this.writeError(e);
    }
  }

  private writeError(e: unknown): SyncError {
    if (this.lostError) return this.lostError;
    if (e instanceof SyncError) return e;
    if (e instanceof JournalClosedError) return new SyncError('STORE_IO', `The mapping store ${this.filePath} is closed (the node was stopped or redeployed).`);
    const cause = e instanceof Error && e.cause !== undefined ? e.cause : e;
    return new SyncError(
      'STORE_IO',
      `Could not write the mapping journal ${this.journal.path} (${errText(cause)}). The change is kept in memory and written with the next change; check free disk space and permissions.`,
      { retryable: true, cause: e },
    );
  }

  /** Fold the journal into the snapshot now; then a backup copy, at most once per interval. */
  async compact(): Promise<void> {
    try {
      await this.journal.compact(() => this.captureSnapshot());
    } catch (e) {
      if (this.lostError) throw this.lostError;
      throw new SyncError('STORE_IO', `Could not write the mapping file ${this.filePath} (${errText(e)}); the changes are safe in the journal ${this.journal.path}. Check free disk space and permissions.`, {
        retryable: true,
        cause: e,
      });
    }
    this.compactions++;
    this.lastCompactAt = new Date().toISOString();
    await this.backup.copySoon();
  }

  private scheduleCompaction(): void {
    if (this.compactScheduled || this.closed || this.lostError) return;
    this.compactScheduled = true;
    setImmediate(() => {
      this.compactScheduled = false;
      if (this.closed || this.lostError || this.journal.isCompacting) return;
      this.compact().catch((e: unknown) => this.warn(`Background compaction failed: ${errText(e)}`));
    });
  }

  /**
   * Called by the journal right after it set the current journal aside: returns the writer of the
   * new snapshot, which walks the store's records live, piece by piece, with the event loop
   * running in between. So the snapshot holds, for each record, its value at the rotation or a
   * later one (or lacks a record deleted meanwhile): every such later change is also in the new
   * journal, whose replay over this snapshot gives the exact state (entries are absolute set/delete).
   */
  private captureSnapshot(): () => Promise<void> {
    const pieces = this.capture();
    return async () => {
      await this.checkLock(); // never overwrite the file of a process that took the folder over
      this.snapshotBytes = await writeFileAtomicChunks(this.filePath, pieces);
      this.snapshotWrites++;
    };
  }

  /**
   * The last close: write pending changes and leave one plain, complete file behind (the journal
   * folded into the snapshot), then close the journal and release the lock. After a lost lock
   * nothing is written and the other process's lock is left alone.
   */
  async close(): Promise<void> {
    this.closed = true;
    try {
      if (!this.lostError) {
        await this.flush();
        // A background compaction may be running: it only holds what came before its start, so look again.
        for (let i = 0; i < 3 && (this.journal.bytes > 0 || this.journal.hasOld || this.journal.isCompacting); i++) {
          try {
            await this.journal.compact(() => this.captureSnapshot());
          } catch (e) {
            if (!this.lostError) this.warn(`Could not fold the journal into ${this.filePath} at close (${errText(e)}); it is replayed at the next open.`);
            break;
          }
        }
      }
    } finally {
      await this.journal.close().catch(() => undefined);
      this.stopHeartbeat?.();
      if (this.lock && !this.lostError) await releaseLock(this.lockPath, this.lock.token);
      this.lock = undefined;
    }
  }
}
