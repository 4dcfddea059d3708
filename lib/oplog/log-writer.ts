/**
 * An append-only JSON-lines file written in the background: `append()` only queues the line (no
 * I/O, never awaited by the caller); the queue goes to disk every `flushMs` or as soon as
 * `flushLines` lines wait, one write at a time, in order.
 *
 * Rotation: before a write that would take the file past `maxBytes`, and when the file's first
 * line is older than `keepDays`, `name.jsonl` becomes `name.1.jsonl` (older ones shift to .2, .3 …).
 * Retention: at most `keepFiles` rotated files are kept, and a rotated file whose last line is
 * older than `keepDays` is removed (0 turns either rule off).
 *
 * A failing disk keeps the lines queued (up to `maxQueue`, oldest dropped and counted) and tries
 * again later; `close()` writes what is queued.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';

export interface LogWriterOptions {
  /** Rotate before the file would pass this size (default 10 MB). */
  maxBytes?: number;
  /** Rotated files kept (default 10; 0 = no limit). */
  keepFiles?: number;
  /** Days a rotated file is kept after its last line (default 30; 0 = no limit). */
  keepDays?: number;
  /** Longest a line waits in the queue (default 100 ms). */
  flushMs?: number;
  /** Write at once when this many lines wait (default 200). */
  flushLines?: number;
  /** Most lines kept in memory while the disk fails (default 50 000). */
  maxQueue?: number;
  /** Told about write failures (the lines stay queued). */
  onError?: (e: Error) => void;
  /** Clock (tests). */
  now?: () => number;
}

const DAY = 86_400_000;
const RETRY_MS = 1000;

function errCode(e: unknown): string | undefined {
  return e && typeof e === 'object' && 'code' in e ? String((e as { code: unknown }).code) : undefined;
}

/** `sync-log.jsonl` → `sync-log.3.jsonl` */
export function rotatedName(file: string, n: number): string {
  const ext = path.extname(file);
  return path.join(path.dirname(file), `${path.basename(file, ext)}.${n}${ext}`);
}

/** The rotated files of `file` on disk, as [number, path], newest (.1) first. */
export async function listRotated(file: string): Promise<Array<[number, string]>> {
  const ext = path.extname(file);
  const base = path.basename(file, ext);
  const re = new RegExp(`^${base.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\.(\\d+)${ext.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`);
  let names: string[];
  try {
    names = await fsp.readdir(path.dirname(file));
  } catch (e) {
    if (errCode(e) === 'ENOENT') return [];
    throw e;
  }
  return names
    .map((n) => [re.exec(n), n] as const)
    .filter((x): x is readonly [RegExpExecArray, string] => x[0] !== null)
    .map(([m, n]) => [Number(m[1]), path.join(path.dirname(file), n)] as [number, string])
    .sort((a, b) => a[0] - b[0]);
}

/** The `time` of the first line of a JSON-lines file (reads its first 4 KB), or undefined. */
async function firstLineTime(file: string): Promise<number | undefined> {
  let fh: fsp.FileHandle | undefined;
  try {
    fh = await fsp.open(file, 'r');
    const buf = Buffer.alloc(4096);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    const text = buf.subarray(0, bytesRead).toString('utf8');
    const nl = text.indexOf('\n');
    if (nl < 0) return undefined;
    const t = Date.parse((JSON.parse(text.slice(0, nl)) as { time?: string }).time ?? '');
    return Number.isFinite(t) ? t : undefined;
  } catch {
    return undefined;
  } finally {
    await fh?.close();
  }
}

export class LogWriter {
  private queue: string[] = [];
  private inFlight = 0;
  private timer: NodeJS.Timeout | undefined;
  private timerDue = 0;
  private chain: Promise<void>;
  private size = -1;
  private startedAt: number | undefined;
  private closed = false;
  private opts: Required<Omit<LogWriterOptions, 'onError' | 'now'>> & Pick<LogWriterOptions, 'onError'> & { now: () => number };
  /** Lines written since this writer was made. */
  written = 0;
  /** Lines dropped because the queue was full while the disk failed. */
  dropped = 0;
  /** Rotations done by this writer. */
  rotations = 0;

  /** `ready`: writes start only after it settles (e.g. while the caller reads the file). */
  constructor(
    readonly file: string,
    opts: LogWriterOptions = {},
    ready: Promise<unknown> = Promise.resolve(),
  ) {
    this.opts = LogWriter.withDefaults(opts);
    this.chain = ready.then(
      () => undefined,
      () => undefined,
    );
  }

  private static withDefaults(o: LogWriterOptions) {
    return {
      maxBytes: o.maxBytes ?? 10 * 1024 * 1024,
      keepFiles: o.keepFiles ?? 10,
      keepDays: o.keepDays ?? 30,
      flushMs: o.flushMs ?? 100,
      flushLines: o.flushLines ?? 200,
      maxQueue: o.maxQueue ?? 50_000,
      onError: o.onError,
      now: o.now ?? Date.now,
    };
  }

  /** Change the settings (later lines follow them). */
  setOptions(opts: LogWriterOptions): void {
    this.opts = LogWriter.withDefaults({ ...this.opts, ...opts });
  }

  /** Lines not yet on disk (queued, or in a write that has not finished). */
  get pending(): number {
    return this.queue.length + this.inFlight;
  }

  /** Queue one line (an object, written as one line of JSON). Never does I/O; after close() the line is dropped (counted). */
  append(record: object): void {
    if (this.closed) {
      this.dropped++;
      return;
    }
    this.queue.push(JSON.stringify(record) + '\n');
    if (this.queue.length > this.opts.maxQueue) {
      const over = this.queue.length - this.opts.maxQueue;
      this.queue.splice(0, over);
      this.dropped += over;
    }
    this.schedule(this.queue.length >= this.opts.flushLines ? 0 : this.opts.flushMs);
  }

  private schedule(ms: number): void {
    const due = Date.now() + ms;
    if (this.timer && this.timerDue <= due) return;
    if (this.timer) clearTimeout(this.timer);
    this.timerDue = due;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.flush().catch(() => undefined);
    }, ms);
  }

  /** Write everything queued now; resolves when it is on disk (rejects if the write failed). */
  flush(): Promise<void> {
    const p = this.chain.then(() => this.writeBatch());
    this.chain = p.catch(() => undefined);
    return p;
  }

  /** Write what is queued and stop. Safe to call twice. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    try {
      await this.flush();
    } catch (e) {
      this.opts.onError?.(e as Error);
    }
  }

  private async writeBatch(): Promise<void> {
    if (!this.queue.length) return;
    const batch = this.queue.splice(0, this.queue.length);
    const text = batch.join('');
    const bytes = Buffer.byteLength(text, 'utf8');
    this.inFlight = batch.length;
    try {
      if (this.size < 0) {
        await fsp.mkdir(path.dirname(this.file), { recursive: true });
        try {
          this.size = (await fsp.stat(this.file)).size;
          this.startedAt = this.size > 0 ? await firstLineTime(this.file) : undefined;
        } catch (e) {
          if (errCode(e) !== 'ENOENT') throw e;
          this.size = 0;
        }
        await this.applyRetention();
      }
      const now = this.opts.now();
      const tooBig = this.size + bytes > this.opts.maxBytes;
      const tooOld = this.opts.keepDays > 0 && this.startedAt !== undefined && now - this.startedAt > this.opts.keepDays * DAY;
      if (this.size > 0 && (tooBig || tooOld)) await this.rotate();
      await fsp.appendFile(this.file, text, 'utf8');
      if (this.size === 0) this.startedAt = now;
      this.size += bytes;
      this.written += batch.length;
      this.inFlight = 0;
    } catch (e) {
      this.inFlight = 0;
      // Keep the lines for the next try, in order, within the queue limit.
      this.queue.unshift(...batch);
      if (this.queue.length > this.opts.maxQueue) {
        const over = this.queue.length - this.opts.maxQueue;
        this.queue.splice(0, over);
        this.dropped += over;
      }
      this.size = -1; // stat again next time
      if (!this.closed) this.schedule(RETRY_MS);
      this.opts.onError?.(e as Error);
      throw e;
    }
  }

  private async rotate(): Promise<void> {
    const rotated = await listRotated(this.file);
    // Shift from the oldest down, so nothing is overwritten; those past keepFiles go.
    for (const [n, f] of [...rotated].reverse()) {
      if (this.opts.keepFiles > 0 && n + 1 > this.opts.keepFiles) await fsp.rm(f, { force: true });
      else await fsp.rename(f, rotatedName(this.file, n + 1));
    }
    await fsp.rename(this.file, rotatedName(this.file, 1));
    this.size = 0;
    this.startedAt = undefined;
    this.rotations++;
    await this.applyRetention();
  }

  /** Remove rotated files beyond keepFiles and those whose last line is older than keepDays. */
  async applyRetention(): Promise<void> {
    const now = this.opts.now();
    for (const [n, f] of await listRotated(this.file)) {
      let remove = this.opts.keepFiles > 0 && n > this.opts.keepFiles;
      if (!remove && this.opts.keepDays > 0) {
        try {
          remove = now - (await fsp.stat(f)).mtimeMs > this.opts.keepDays * DAY;
        } catch {
          remove = false;
        }
      }
      if (remove) await fsp.rm(f, { force: true });
    }
  }
}
