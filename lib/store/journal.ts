/**
 * An append-only, group-committed, fsync'd journal of JSON lines beside a snapshot file: the
 * reusable part of the mapping store's write path (and of any other collection that keeps its
 * state in memory, a snapshot on disk, and the changes since the snapshot in a journal).
 *
 * Files: `<path>` (the current journal) and, only while a compaction runs or after one was
 * interrupted, `<path>.old` (the journal the snapshot being written replaces). One line = one
 * entry = `JSON.stringify(entry) + "\n"`.
 *
 * API
 *   const j = new Journal<E>(path, { commitDelayMs?, compactBytes?, compactEntries?, onCompactDue?,
 *                                    beforeCommit? })
 *   await j.open(apply)        Replays `<path>.old` then `<path>`, calling apply(entry, {file, line})
 *                              for every line in order. A final line without its newline (a write
 *                              torn by a crash) is ignored and cut off the file; any other line
 *                              that is not JSON, or for which apply throws, rejects with
 *                              JournalCorruptError naming the file and the line number. Resolves
 *                              with {entries, tornBytes}. Call once, before anything else.
 *   await j.append(entry, { withinMs? })
 *                              Serialises the entry at once (later changes to the object do not
 *                              matter) and resolves only after the line is written AND fsync'd.
 *                              All appends waiting when a commit starts share one write + one
 *                              fdatasync (group commit); appends arriving during a commit go into
 *                              the next. `withinMs`: this entry may wait that long for a commit
 *                              (an earlier one takes it along). A failed write rejects the
 *                              appends of that commit (JournalWriteError, the cause attached);
 *                              their lines are kept, in order, and written by the next commit
 *                              (the torn part of the failed write is truncated away first).
 *   await j.flush()            Resolves when every line appended so far is durable.
 *   j.compactionDue            True when the journal holds ≥ compactBytes or ≥ compactEntries;
 *                              onCompactDue() is called (once per crossing) after the commit that
 *                              crossed it. The owner then calls compact().
 *   await j.compact(capture)   Compaction, for the owner to fold the journal into its snapshot:
 *                              between two commits the current journal becomes `<path>.old` (if
 *                              an `.old` is left over, the current lines are appended to it
 *                              instead), then capture() is called synchronously: it must take
 *                              the in-memory state at that moment and return a function that
 *                              writes it as the new snapshot (atomically and durably). When that
 *                              resolves, `<path>.old` is deleted. Appends go on meanwhile into
 *                              the new journal. Entries must be idempotent "set/delete" records
 *                              so that replaying `.old` over a snapshot that already holds them
 *                              (a crash after the snapshot rename, before the delete) gives the
 *                              same state, and so that a snapshot that also holds some newer
 *                              entries (taken lazily while appends go on) is still right once
 *                              the new journal is replayed over it. Concurrent calls share one run.
 *   j.fail(err)                Refuse from now on: pending and future appends reject with err.
 *   await j.close()            Flushes, then refuses further appends (JournalClosedError).
 *   j.bytes / j.entries        Size of the current journal (plus `.old` while one exists).
 *   j.writeCount               Durable commits made.
 *
 * The journal never reads the owner's data: the owner applies entries during open() and writes
 * its snapshot during compact().
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { fsyncDir } from './atomic-file';

export interface JournalOptions {
  /** Extra wait before a commit starts, to gather more entries (default 0: the next loop turn). */
  commitDelayMs?: number;
  /** Compaction is due at this many journal bytes (default 16 MiB). */
  compactBytes?: number;
  /** … or at this many journal entries (default 50 000). */
  compactEntries?: number;
  /** Called after the commit that made compaction due (once until the next compaction). */
  onCompactDue?: () => void;
  /**
   * Awaited before every commit's write (e.g. "do we still own the folder?"). If it throws, that
   * commit's appends reject with the error (unwrapped) and their lines are kept.
   */
  beforeCommit?: () => Promise<void>;
}

export interface ReplayPosition {
  file: string;
  /** 1-based line number. */
  line: number;
}

export interface ReplayResult {
  /** Entries replayed (both files). */
  entries: number;
  /** Bytes of a torn final line that were ignored and cut off (0: none). */
  tornBytes: number;
}

export class JournalCorruptError extends Error {
  constructor(
    readonly file: string,
    readonly line: number,
    readonly reason: string,
  ) {
    super(`${file} line ${line}: ${reason}`);
    this.name = 'JournalCorruptError';
  }
}

export class JournalWriteError extends Error {
  constructor(
    readonly file: string,
    override readonly cause: unknown,
  ) {
    super(`Could not write the journal ${file} (${errText(cause)})`);
    this.name = 'JournalWriteError';
  }
}

export class JournalClosedError extends Error {
  constructor(readonly file: string) {
    super(`The journal ${file} is closed.`);
    this.name = 'JournalClosedError';
  }
}

interface Waiter {
  resolve(): void;
  reject(err: Error): void;
}

function errCode(e: unknown): string | undefined {
  return e && typeof e === 'object' && 'code' in e ? String((e as { code: unknown }).code) : undefined;
}

function errText(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  const code = errCode(e);
  return code && !msg.startsWith(code) ? `${code}: ${msg}` : msg;
}

const DEFAULT_COMPACT_BYTES = 16 * 1024 * 1024;
const DEFAULT_COMPACT_ENTRIES = 50_000;

export class Journal<E = unknown> {
  readonly path: string;
  readonly oldPath: string;
  /** Durable commits made. */
  writeCount = 0;

  private readonly commitDelayMs: number;
  private readonly compactBytes: number;
  private readonly compactEntries: number;
  private readonly onCompactDue: (() => void) | undefined;
  private readonly beforeCommit: (() => Promise<void>) | undefined;

  /** Bytes of the current file known durable (the next write goes there). */
  private goodSize = 0;
  /** A failed write may have left a torn tail past goodSize: cut it before the next write. */
  private needsRepair = false;
  /** The current file may not exist yet: fsync the folder after creating it. */
  private mayCreate = true;
  private oldBytes = 0;
  private oldEntries = 0;
  private curEntries = 0;
  private dueSignalled = false;

  private lines: string[] = [];
  private waiters: Waiter[] = [];
  private dueAt = Infinity;
  private committing: Promise<void> | undefined;
  private scheduled = false;
  private scheduledAt = Infinity;
  private timer: NodeJS.Timeout | undefined;
  private immediate: NodeJS.Immediate | undefined;
  /** Serialises file operations: commits and the rotation of compact(). */
  private ioChain: Promise<void> = Promise.resolve();
  private compacting: Promise<void> | undefined;
  private failure: Error | undefined;
  private opened = false;

  constructor(filePath: string, opts: JournalOptions = {}) {
    this.path = filePath;
    this.oldPath = `${filePath}.old`;
    this.commitDelayMs = Math.max(0, opts.commitDelayMs ?? 0);
    this.compactBytes = Math.max(1, opts.compactBytes ?? DEFAULT_COMPACT_BYTES);
    this.compactEntries = Math.max(1, opts.compactEntries ?? DEFAULT_COMPACT_ENTRIES);
    this.onCompactDue = opts.onCompactDue;
    this.beforeCommit = opts.beforeCommit;
  }

  get bytes(): number {
    return this.oldBytes + this.goodSize;
  }

  get entries(): number {
    return this.oldEntries + this.curEntries;
  }

  /** Lines appended but not yet durable. */
  get pending(): number {
    return this.lines.length;
  }

  get compactionDue(): boolean {
    return this.bytes >= this.compactBytes || this.entries >= this.compactEntries;
  }

  /** True while a `<path>.old` exists (a compaction runs, or one was interrupted). */
  get hasOld(): boolean {
    return this.oldBytes > 0 || this.oldEntries > 0;
  }

  // ------------------------------------------------------------------------------------------
  // open / replay

  async open(apply: (entry: E, at: ReplayPosition) => void): Promise<ReplayResult> {
    if (this.opened) throw new Error(`The journal ${this.path} is already open.`);
    this.opened = true;
    let entries = 0;
    let tornBytes = 0;
    const old = await readIfExists(this.oldPath);
    if (old) {
      // `.old` is complete when renamed (rotation happens between commits); a torn tail can only
      // come from a crash while lines were appended to it, and is cut off the same way.
      const r = replayText(old, this.oldPath, apply);
      entries += r.entries;
      this.oldBytes = r.goodBytes;
      this.oldEntries = r.entries;
      if (r.goodBytes < old.length) {
        tornBytes += old.length - r.goodBytes;
        await truncateFile(this.oldPath, r.goodBytes);
      }
      if (!this.oldBytes) this.oldEntries = 0;
    }
    const cur = await readIfExists(this.path);
    if (cur) {
      const r = replayText(cur, this.path, apply);
      entries += r.entries;
      this.curEntries = r.entries;
      this.goodSize = r.goodBytes;
      this.mayCreate = false;
      if (r.goodBytes < cur.length) {
        tornBytes += cur.length - r.goodBytes;
        await truncateFile(this.path, r.goodBytes);
      }
    }
    return { entries, tornBytes };
  }

  // ------------------------------------------------------------------------------------------
  // append / group commit

  append(entry: E, opts: { withinMs?: number } = {}): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    let line: string;
    try {
      line = JSON.stringify(entry);
    } catch (e) {
      return Promise.reject(e);
    }
    if (typeof line !== 'string') return Promise.reject(new TypeError('A journal entry must be JSON.'));
    if (line.includes('\n')) return Promise.reject(new Error('A journal line must not contain a newline.')); // JSON.stringify never emits one
    this.lines.push(line);
    const wait = typeof opts.withinMs === 'number' && Number.isFinite(opts.withinMs) && opts.withinMs > 0 ? opts.withinMs : 0;
    const due = Date.now() + wait;
    const p = new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject }));
    if (due < this.dueAt) this.dueAt = due;
    this.schedule();
    return p;
  }

  /** Resolves when every line appended so far is durable (rejects if the commit holding them fails). */
  async flush(): Promise<void> {
    for (;;) {
      if (this.failure && this.waiters.length) throw this.failure;
      if (this.waiters.length) {
        this.cancelScheduled();
        if (!this.committing) this.committing = this.commitLoop(true);
        await this.committing;
        continue;
      }
      if (this.committing) {
        await this.committing;
        continue;
      }
      if (this.lines.length) {
        // lines kept from a failed commit, without waiters: write them now
        if (this.failure) throw this.failure;
        await new Promise<void>((resolve, reject) => {
          this.waiters.push({ resolve, reject });
          this.cancelScheduled();
          this.committing = this.commitLoop(true);
        });
        continue;
      }
      return;
    }
  }

  private cancelScheduled(): void {
    if (this.timer) clearTimeout(this.timer);
    if (this.immediate) clearImmediate(this.immediate);
    this.timer = undefined;
    this.immediate = undefined;
    this.scheduled = false;
    this.scheduledAt = Infinity;
  }

  private schedule(): void {
    // While a commit runs, its loop looks at the waiters again when its write ends.
    if (this.committing || !this.waiters.length) return;
    const now = Date.now();
    const wait = Math.max(this.commitDelayMs, this.dueAt - now);
    if (this.scheduled && this.scheduledAt <= now + wait) return; // already soon enough
    this.cancelScheduled();
    this.scheduled = true;
    this.scheduledAt = now + wait;
    const run = (): void => {
      this.timer = undefined;
      this.immediate = undefined;
      this.scheduled = false;
      this.scheduledAt = Infinity;
      if (!this.committing && this.waiters.length) this.committing = this.commitLoop(false);
    };
    // setImmediate: every append made in this turn of the event loop (and its I/O callbacks) joins.
    if (wait > 0) this.timer = setTimeout(run, wait);
    else this.immediate = setImmediate(run);
  }

  private async commitLoop(force: boolean): Promise<void> {
    try {
      // The first batch is written whatever its due times (its timer fired, or flush asked); after
      // that, appends that came in during a write follow at once only when one is due (or when
      // flushing), else they wait for their own timer.
      let first = true;
      while (this.waiters.length && (first || force || this.dueAt <= Date.now())) {
        first = false;
        if (this.failure) {
          const batch = this.waiters;
          this.waiters = [];
          for (const w of batch) w.reject(this.failure);
          break;
        }
        const batch = this.waiters;
        const lines = this.lines;
        this.waiters = [];
        this.lines = [];
        this.dueAt = Infinity;
        let failure: Error | undefined;
        try {
          await this.exclusive(async () => {
            if (this.beforeCommit) await this.beforeCommit();
            await this.writeLines(lines);
          });
        } catch (e) {
          failure = e instanceof Error ? e : new JournalWriteError(this.path, e);
          this.lines = lines.concat(this.lines); // kept, in order, for the next commit
        }
        for (const w of batch) {
          if (failure) w.reject(failure);
          else w.resolve();
        }
        if (!failure && !this.dueSignalled && this.compactionDue && this.onCompactDue) {
          this.dueSignalled = true;
          try {
            this.onCompactDue();
          } catch {
            /* the owner's problem */
          }
        }
        if (failure) break;
      }
    } finally {
      this.committing = undefined;
    }
    if (this.waiters.length) this.schedule();
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.ioChain.then(fn);
    this.ioChain = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  private async writeLines(lines: string[]): Promise<void> {
    if (!lines.length) return;
    const buf = Buffer.from(lines.join('\n') + '\n', 'utf8');
    let fh: fsp.FileHandle;
    try {
      fh = await fsp.open(this.path, 'a');
    } catch (e) {
      throw new JournalWriteError(this.path, e);
    }
    try {
      if (this.needsRepair) {
        await fh.truncate(this.goodSize);
        this.needsRepair = false;
      }
      try {
        // 'a': every write goes to the end, whatever the position
        let off = 0;
        while (off < buf.length) {
          const { bytesWritten } = await fh.write(buf, off, buf.length - off);
          off += bytesWritten;
        }
        await fh.datasync();
      } catch (e) {
        this.needsRepair = true;
        throw new JournalWriteError(this.path, e);
      }
    } finally {
      await fh.close().catch(() => undefined);
    }
    if (this.mayCreate) {
      await fsyncDir(path.dirname(this.path)).catch(() => undefined);
      this.mayCreate = false;
    }
    this.goodSize += buf.length;
    this.curEntries += lines.length;
    this.writeCount++;
  }

  // ------------------------------------------------------------------------------------------
  // compaction

  compact(capture: () => () => Promise<void>): Promise<void> {
    if (this.compacting) return this.compacting;
    const run = this.runCompaction(capture).finally(() => {
      if (this.compacting === run) this.compacting = undefined;
    });
    this.compacting = run;
    return run;
  }

  get isCompacting(): boolean {
    return this.compacting !== undefined;
  }

  private async runCompaction(capture: () => () => Promise<void>): Promise<void> {
    if (this.failure) throw this.failure;
    let writeSnapshot: (() => Promise<void>) | undefined;
    await this.exclusive(async () => {
      await this.rotate();
      // Synchronously after the rotation: the captured state holds every line now in `.old`.
      writeSnapshot = capture();
    });
    await writeSnapshot!();
    if (this.failure) throw this.failure; // lost our right to the folder meanwhile: leave `.old`
    await fsp.unlink(this.oldPath).catch((e: unknown) => {
      if (errCode(e) !== 'ENOENT') throw e;
    });
    await fsyncDir(path.dirname(this.oldPath)).catch(() => undefined);
    this.oldBytes = 0;
    this.oldEntries = 0;
    this.dueSignalled = false; // the next commit signals again if the new journal is already due
  }

  /** Make the current journal part of `.old` (called inside exclusive(): no commit runs). */
  private async rotate(): Promise<void> {
    if (this.goodSize === 0 && !this.needsRepair) return; // nothing new since the last rotation
    if (!this.hasOld) {
      if (this.needsRepair) {
        await truncateFile(this.path, this.goodSize);
        this.needsRepair = false;
      }
      await fsp.rename(this.path, this.oldPath);
    } else {
      // An `.old` is left (an interrupted compaction): append to it, then empty the current file.
      // A crash in between leaves the lines in both: replaying them twice is harmless.
      const fh = await fsp.open(this.path, 'r');
      let buf: Buffer;
      try {
        buf = Buffer.alloc(this.goodSize);
        await fh.read(buf, 0, this.goodSize, 0);
      } finally {
        await fh.close();
      }
      const oh = await fsp.open(this.oldPath, 'a');
      try {
        await oh.write(buf);
        await oh.datasync();
      } finally {
        await oh.close();
      }
      await fsp.unlink(this.path);
      this.needsRepair = false;
    }
    await fsyncDir(path.dirname(this.path)).catch(() => undefined);
    this.oldBytes += this.goodSize;
    this.oldEntries += this.curEntries;
    this.goodSize = 0;
    this.curEntries = 0;
    this.mayCreate = true;
  }

  // ------------------------------------------------------------------------------------------
  // refusal / close

  /** From now on every pending and future append rejects with `err`. */
  fail(err: Error): void {
    if (!this.failure) this.failure = err;
    this.cancelScheduled();
    const batch = this.waiters;
    this.waiters = [];
    this.lines = [];
    for (const w of batch) w.reject(err);
  }

  get failed(): Error | undefined {
    return this.failure;
  }

  async close(): Promise<void> {
    try {
      if (!this.failure) await this.flush();
      if (this.compacting) await this.compacting.catch(() => undefined);
    } finally {
      if (!this.failure) this.failure = new JournalClosedError(this.path);
      this.cancelScheduled();
    }
  }
}

async function truncateFile(file: string, size: number): Promise<void> {
  const fh = await fsp.open(file, 'r+');
  try {
    await fh.truncate(size);
    await fh.datasync();
  } finally {
    await fh.close();
  }
}

async function readIfExists(file: string): Promise<Buffer | undefined> {
  try {
    return await fsp.readFile(file);
  } catch (e) {
    if (errCode(e) === 'ENOENT') return undefined;
    throw e;
  }
}

/** Replay every newline-terminated line; the bytes after the last newline are a torn tail. */
function replayText<E>(buf: Buffer, file: string, apply: (entry: E, at: ReplayPosition) => void): { entries: number; goodBytes: number } {
  const lastNl = buf.lastIndexOf(0x0a);
  const goodBytes = lastNl + 1;
  let entries = 0;
  let start = 0;
  let line = 0;
  while (start < goodBytes) {
    const end = buf.indexOf(0x0a, start);
    line++;
    const text = buf.toString('utf8', start, end);
    start = end + 1;
    if (!text.trim()) continue;
    let entry: E;
    try {
      entry = JSON.parse(text) as E;
    } catch (e) {
      throw new JournalCorruptError(file, line, `not a JSON line (${(e as Error).message}): ${JSON.stringify(text.slice(0, 80))}`);
    }
    try {
      apply(entry, { file, line });
    } catch (e) {
      throw new JournalCorruptError(file, line, e instanceof Error ? e.message : String(e));
    }
    entries++;
  }
  return { entries, goodBytes };
}
