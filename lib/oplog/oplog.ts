/**
 * The operator's view of one data folder: the sync log (`sync-log.jsonl`, batched, rotated), the
 * failed list (`failed.json`) and the stats counters, shared by every user of the same folder in
 * this process (so each flow tab can have its own sync-log node and they all write one log).
 *
 * `record()` is synchronous and does no I/O itself: the log line is queued, the counters move, and
 * a failed-list change starts its (coalesced, atomic) write in the background.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { REVIEW_CODES, type Operation } from './entry';
import { DropReport, FailedEntry, FailedFilter, FailedLimits, FailedList, checkFilter } from './failed-list';
import { LogWriter, LogWriterOptions } from './log-writer';
import { OpStats, StatsSnapshot } from './stats';
import { OpHistory } from './history';
import { SyncError } from '../errors';

export const LOG_FILE = 'sync-log.jsonl';
export const FAILED_FILE = 'failed.json';
/** Reason code of a create whose outcome is unknown (never replayed by a blanket replay). */
const AMBIGUOUS_CREATE = 'AMBIGUOUS_CREATE';
/** Codes a blanket replay leaves alone: they wait for the operator (by crmId or by their code). */
const NAMED_ONLY = new Set<string>([AMBIGUOUS_CREATE, ...REVIEW_CODES]);

export type OpLogOptions = Pick<LogWriterOptions, 'maxBytes' | 'keepFiles' | 'keepDays' | 'flushMs' | 'flushLines' | 'maxQueue'> & FailedLimits;

export interface RecordResult {
  /** The failed-list entry written for a failure (with its attempts count). */
  entry?: FailedEntry;
  /** A success removed an entry from the failed list. */
  removed?: boolean;
}

type Listener = (e: Error) => void;
type DropListener = (r: DropReport) => void;

const registry = new Map<string, { log: OpLog; refs: number }>();
/** Opens and closes in progress per folder: the next acquire waits for them. */
const transitions = new Map<string, Promise<unknown>>();

export class OpLog {
  readonly logFile: string;
  readonly failedFile: string;
  private listeners = new Set<Listener>();
  private dropListeners = new Set<DropListener>();

  private constructor(
    readonly dir: string,
    readonly writer: LogWriter,
    readonly failed: FailedList,
    readonly stats: OpStats,
    /** Recent lines per party and the last outcome per pipeline (the console's questions). */
    readonly history: OpHistory,
  ) {
    this.logFile = writer.file;
    this.failedFile = failed.file;
    writer.setOptions({ onError: (e) => this.emitError(e) });
    failed.onError = (e) => this.emitError(e);
    failed.onDrop = (r) => this.emitDrop(r);
  }

  /** Dropped entries are told to one listener (logged once per batch, however many nodes share the folder). */
  private emitDrop(r: DropReport): void {
    const first = this.dropListeners.values().next().value;
    try {
      first?.(r);
    } catch {
      // a listener's trouble is its own
    }
  }

  /** Be told when the failed list's bounds drop entries (the first listener only). Returns the unsubscribe function. */
  onDrop(l: DropListener): () => void {
    this.dropListeners.add(l);
    if (this.dropListeners.size === 1) for (const r of this.failed.takeEarlyDrops()) this.emitDrop(r);
    return () => this.dropListeners.delete(l);
  }

  private emitError(e: Error): void {
    for (const l of this.listeners) {
      try {
        l(e);
      } catch {
        // a listener's trouble is its own
      }
    }
  }

  /** Be told about write failures (disk full, permissions). Returns the unsubscribe function. */
  onError(l: Listener): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  private static async create(dir: string, opts: OpLogOptions): Promise<OpLog> {
    try {
      await fsp.mkdir(dir, { recursive: true });
    } catch (e) {
      throw new SyncError('STORE_IO', `Cannot create the sync log folder ${dir}: ${(e as Error).message}. Check the folder setting and its permissions.`);
    }
    const failed = await FailedList.open(path.join(dir, FAILED_FILE), { maxEntries: opts.maxEntries, maxAgeDays: opts.maxAgeDays });
    const logFile = path.join(dir, LOG_FILE);
    // Counters and history first, from the file as it is, in one pass; the writer starts after,
    // so nothing is counted twice.
    const history = new OpHistory();
    const stats = await OpStats.fromFile(logFile, Date.now(), (line) => history.add(line));
    const writer = new LogWriter(logFile, opts);
    return new OpLog(dir, writer, failed, stats, history);
  }

  /**
   * The shared instance for `dir` (opened on first use). Each acquire needs one release(). The
   * latest acquire's options apply to the shared writer.
   */
  static async acquire(dir: string, opts: OpLogOptions = {}): Promise<OpLog> {
    const key = path.resolve(dir);
    for (;;) {
      const t = transitions.get(key);
      if (t) {
        await t.catch(() => undefined);
        continue;
      }
      const e = registry.get(key);
      if (e) {
        e.refs++;
        e.log.writer.setOptions(opts);
        e.log.failed.setLimits(opts);
        return e.log;
      }
      const p = OpLog.create(key, opts).then((log) => {
        registry.set(key, { log, refs: 0 });
      });
      transitions.set(key, p);
      try {
        await p;
      } finally {
        transitions.delete(key);
      }
    }
  }

  /** The instance open for `dir`, if any (adds no reference). */
  static peek(dir: string): OpLog | undefined {
    return registry.get(path.resolve(dir))?.log;
  }

  /** Drop one reference; the last one writes what is queued and closes. */
  async release(): Promise<void> {
    const e = registry.get(this.dir);
    if (!e || e.log !== this) return;
    e.refs--;
    if (e.refs > 0) return;
    registry.delete(this.dir);
    const p = this.close();
    transitions.set(this.dir, p);
    try {
      await p;
    } finally {
      transitions.delete(this.dir);
    }
  }

  private async close(): Promise<void> {
    const results = await Promise.allSettled([this.writer.close(), this.failed.close()]);
    const bad = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (bad) throw bad.reason;
  }

  /** Log one operation; a failure goes to the failed list, a success takes its key off it. */
  record(op: Operation, now = Date.now()): RecordResult {
    this.writer.append(op.line);
    this.stats.add(op.line, now);
    this.history.add(op.line, op.party);
    const line = op.line;
    if (line.status === 'retrying' || line.status === 'waiting') return {};
    if (line.status === 'failed') {
      if (!op.event) return {};
      const entry = this.failed.recordFailure({
        event: op.event,
        entity: op.entity,
        code: line.error?.code ?? 'ERROR',
        message: line.error?.message ?? '',
        trigger: line.trigger,
        traceId: line.traceId,
        review: op.review,
        now,
      });
      return { entry };
    }
    // Only the end of a sync (an action was taken or decided) clears a failure.
    if (op.key && line.action && line.action !== 'failed') return { removed: this.failed.recordSuccess(op.key) };
    return {};
  }

  /**
   * The failed entries to replay for a filter (it must name a criterion, or all: true), marked
   * as replayed. BAD_INPUT for an empty or malformed filter.
   *
   * An AMBIGUOUS_CREATE entry (a create whose outcome is unknown: Siagh or the CRM may hold the
   * record already, and a pre-invoice cannot be looked up) is replayed only when the filter names
   * it — by its crmId, or by code AMBIGUOUS_CREATE — after the operator checked the other side.
   * A blanket replay ({all: true}, an entity, an age) leaves it in the list. So do review items
   * (LINK_NEEDS_REVIEW, DOCUMENT_CHANGED_AFTER_TRANSFER): replayed without a decision they would
   * only come back; they are resolved (resolve()) or replayed when named.
   */
  takeForReplay(filter: FailedFilter, now = Date.now()): FailedEntry[] {
    if (!checkFilter(filter)) {
      throw new SyncError('BAD_INPUT', 'Say what to replay: {crmId}, {entity}, {code}, {olderThan} (e.g. "1h"), a combination, or {all: true}.');
    }
    const byCode = typeof filter.code === 'string' ? filter.code.trim().toUpperCase() : undefined;
    const named = filter.crmId !== undefined || (byCode !== undefined && NAMED_ONLY.has(byCode));
    const picked = this.failed.match(filter, now).filter((e) => named || !NAMED_ONLY.has(e.reason.code.toUpperCase()));
    this.failed.markReplayed(
      picked.map((e) => e.key),
      now,
    );
    return picked;
  }

  /**
   * The review item for `crmId` (LINK_NEEDS_REVIEW or DOCUMENT_CHANGED_AFTER_TRANSFER), for a
   * replay that carries the operator's decision. BAD_INPUT when there is none.
   */
  reviewItem(crmId: string, now = Date.now()): FailedEntry {
    const items = this.failed.match({ crmId }, now);
    const item = items.find((e) => NAMED_ONLY.has(e.reason.code.toUpperCase()) && e.reason.code.toUpperCase() !== AMBIGUOUS_CREATE);
    if (!item) {
      throw new SyncError(
        'BAD_INPUT',
        items.length
          ? `The failed entry for CRM record ${crmId} is not a review item (its reason is ${items[0].reason.code}); replay it instead.`
          : `The failed list has no entry for CRM record ${crmId} (resolved already, or never failed).`,
      );
    }
    return item;
  }

  snapshot(now = Date.now()): StatsSnapshot {
    return { ...this.stats.snapshot(now), failed: this.failed.size, failedDropped: this.failed.dropped };
  }

  /** Everything queued is on disk (log lines and the failed list). */
  async flush(): Promise<void> {
    await this.writer.flush();
    await this.failed.settle();
  }
}
