/**
 * The operator's view of one data folder: the sync log (`sync-log.jsonl`, batched, rotated), the
 * failed list and the stats counters, shared by every user of the same folder in this process (so
 * each flow tab can have its own sync-log node and they all write one log).
 *
 * The failed list is a `FailedBackend`: by default the folder's `failed.json` (FileFailedBackend),
 * or the PostgreSQL list of a postgres store (`opts.failed`, shared by every instance on that
 * database, opened and closed by its caller). The log file, the counters and the history stay in
 * this folder, per instance.
 *
 * `record()` queues the log line and moves the counters at once (no I/O); the failed-list change
 * follows. On the file list it is made in memory at once and written in the background, as it
 * always was (a write error is reported and retried by the list). On PostgreSQL it is a query: the
 * changes for one record run in order (a chain per key), and the promise `record()` returns
 * resolves once its change is in the database or reported lost. A database that does not answer
 * (a transient error) is waited out: the change is kept in memory and tried again with a growing
 * pause (1 s to 30 s) until it lands, the first error told to the onError listeners (the sync-log
 * node shows it). It is lost only when the error is not transient (a permission, a broken table)
 * or when the OpLog closes (a redeploy, Node-RED stopping) while the database is still away: then
 * a `FailedWriteError` with `lost: true` says which record and what to do (its log line stays in
 * `sync-log.jsonl`). `flush()` waits for every change.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { REVIEW_CODES, failureKey, type Operation } from './entry';
import { DropReport, FailedEntry, FailedFilter, FailedLimits, FailedList, checkFilter } from './failed-list';
import type { FailedBackend } from './failed-backend';
import { FileFailedBackend } from './file-failed-backend';
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

/** A failed list the caller opened and closes (PostgreSQL: shared by the nodes and instances on one database). */
export interface FailedSource {
  backend: FailedBackend;
  /** Where it is, for the operator (e.g. `PostgreSQL postgres://user@host:5432/db`, never a password). */
  where: string;
}

export type OpLogOptions = Pick<LogWriterOptions, 'maxBytes' | 'keepFiles' | 'keepDays' | 'flushMs' | 'flushLines' | 'maxQueue'> &
  FailedLimits & {
    /** The failed list to use instead of the folder's failed.json (a postgres store's). */
    failed?: FailedSource;
  };

/**
 * A failed-list change that could not be written. `lost`: it never will be (the record's entry is
 * missing from the list, or a success did not take its entry off); otherwise it is tried again.
 */
export class FailedWriteError extends SyncError {
  constructor(
    message: string,
    readonly key: string,
    readonly lost: boolean,
    cause?: unknown,
  ) {
    super('STORE_IO', message, { cause });
    this.name = 'FailedWriteError';
  }
}

/** Pauses between attempts of a failed-list change the database did not take (transient errors). */
const RETRY_FIRST_MS = 1000;
const RETRY_MAX_MS = 30_000;

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
/**
 * The OpLogs using one shared failed list (several data folders on one database): its drop reports
 * go to the first of them that has a drop listener.
 */
const dropHubs = new Map<FailedBackend, Set<OpLog>>();

export class OpLog {
  readonly logFile: string;
  /** Where the failed list is: the path of failed.json, or the PostgreSQL store (no password). */
  readonly failedFile: string;
  private listeners = new Set<Listener>();
  private dropListeners = new Set<DropListener>();
  /** The last pending change per failed-list key (PostgreSQL): the next change for the key runs after it. */
  private chains = new Map<string, Promise<void>>();
  /** Pauses between retries in progress: close() ends them, so each change gets one last try. */
  private sleepers = new Set<() => void>();
  private closing = false;
  /** Drop reports of a shared list made before this OpLog had a drop listener. */
  private earlyDrops: DropReport[] = [];

  private constructor(
    readonly dir: string,
    readonly writer: LogWriter,
    /** The failed list: the folder's failed.json, or the PostgreSQL list shared by every instance. */
    readonly failed: FailedBackend,
    /** The file list behind `failed` when it is the folder's (changed synchronously, as always). */
    private readonly fileList: FailedList | undefined,
    failedWhere: string,
    readonly stats: OpStats,
    /** Recent lines per party and the last outcome per pipeline (the console's questions). */
    readonly history: OpHistory,
  ) {
    this.logFile = writer.file;
    this.failedFile = failedWhere;
    writer.setOptions({ onError: (e) => this.emitError(e) });
    if (fileList) {
      fileList.onError = (e) => this.emitError(e);
      fileList.onDrop = (r) => this.emitDrop(r);
    } else {
      let hub = dropHubs.get(failed);
      if (!hub) {
        const users = new Set<OpLog>();
        hub = users;
        dropHubs.set(failed, users);
        failed.onDrop = (r) => {
          const to = [...users].find((l) => l.dropListeners.size > 0) ?? users.values().next().value;
          to?.emitDrop(r);
        };
      }
      hub.add(this);
    }
  }

  /** Where an unreadable failed.json was moved at open (the file list only). */
  get failedSetAside(): string | undefined {
    return this.fileList?.setAside;
  }

  /** Dropped entries are told to one listener (logged once per batch, however many nodes share the folder). */
  private emitDrop(r: DropReport): void {
    const first = this.dropListeners.values().next().value;
    if (!first) {
      // nobody listens here yet: kept for the first listener (as the list keeps its drops at open), the latest 100
      this.earlyDrops.push(r);
      if (this.earlyDrops.length > 100) this.earlyDrops.shift();
      return;
    }
    try {
      first(r);
    } catch {
      // a listener's trouble is its own
    }
  }

  /** Be told when the failed list's bounds drop entries (the first listener only). Returns the unsubscribe function. */
  onDrop(l: DropListener): () => void {
    this.dropListeners.add(l);
    if (this.dropListeners.size === 1) for (const r of [...this.earlyDrops.splice(0), ...this.failed.takeEarlyDrops()]) this.emitDrop(r);
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
    const limits = { maxEntries: opts.maxEntries, maxAgeDays: opts.maxAgeDays };
    let fileList: FailedList | undefined;
    let failed: FailedBackend;
    let where: string;
    if (opts.failed) {
      failed = opts.failed.backend;
      failed.setLimits(limits);
      where = opts.failed.where;
    } else {
      const f = await FileFailedBackend.open(path.join(dir, FAILED_FILE), limits);
      fileList = f.list;
      failed = f;
      where = f.list.file;
    }
    const logFile = path.join(dir, LOG_FILE);
    // Counters and history first, from the file as it is, in one pass; the writer starts after,
    // so nothing is counted twice.
    const history = new OpHistory();
    let stats: OpStats;
    try {
      stats = await OpStats.fromFile(logFile, Date.now(), (line) => history.add(line));
    } catch (e) {
      await fileList?.close().catch(() => undefined);
      throw e;
    }
    const writer = new LogWriter(logFile, opts);
    return new OpLog(dir, writer, failed, fileList, where, stats, history);
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
        if ((opts.failed?.backend ?? undefined) !== (e.log.fileList ? undefined : e.log.failed)) {
          throw new SyncError(
            'CONFIG',
            `The data folder ${key} is already used by a sync-log node whose failed list is ${e.log.failedFile}, not ${opts.failed?.where ?? 'the folder\'s failed.json'}. Give each data store its own folder (the sync-store's Folder setting), then deploy.`,
          );
        }
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

  /**
   * Writes what is queued and stops. A PostgreSQL change still waiting for the database gets one
   * last try and is otherwise reported lost. The file list is closed here; a shared list stays its
   * opener's.
   */
  private async close(): Promise<void> {
    this.closing = true;
    for (const wake of [...this.sleepers]) wake();
    await this.settleChanges();
    const hub = dropHubs.get(this.failed);
    if (hub) {
      hub.delete(this);
      if (!hub.size) {
        dropHubs.delete(this.failed);
        this.failed.onDrop = undefined;
      }
    }
    const results = await Promise.allSettled([this.writer.close(), this.fileList?.close()]);
    const bad = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (bad) throw bad.reason;
  }

  /**
   * Log one operation; a failure goes to the failed list, a success takes its key off it. The line
   * is queued before this returns; the promise resolves once the failed-list change is written (or,
   * on PostgreSQL, reported lost: see the file's comment). It never rejects.
   */
  record(op: Operation, now = Date.now()): Promise<RecordResult> {
    this.writer.append(op.line);
    this.stats.add(op.line, now);
    this.history.add(op.line, op.party);
    const line = op.line;
    if (line.status === 'retrying' || line.status === 'waiting') return Promise.resolve({});
    if (line.status === 'failed') {
      if (!op.event) return Promise.resolve({});
      const input = {
        event: op.event,
        entity: op.entity,
        code: line.error?.code ?? 'ERROR',
        message: line.error?.message ?? '',
        trigger: line.trigger,
        traceId: line.traceId,
        review: op.review,
        now,
      };
      if (this.fileList) return this.written({ entry: this.fileList.recordFailure(input) });
      const key = failureKey(op.event.type, op.event.id);
      return this.change(
        key,
        async () => ({ entry: await this.failed.recordFailure(input) }),
        (why, lost) =>
          lost
            ? `The failure of ${key} (${input.code}) is not in the failed list (${this.failedFile}): ${why}. It cannot be replayed from the list; its line is in ${this.logFile}. Once the database answers, send the record again (change it in the CRM, or inject {payload: {id, type}} into the sync-queue).`
            : `The failure of ${key} (${input.code}) could not be written to the failed list (${this.failedFile}): ${why}. It is kept in memory and written again every few seconds until the database answers; until then other instances do not list it.`,
      );
    }
    // Only the end of a sync (an action was taken or decided) clears a failure.
    if (op.key && line.action && line.action !== 'failed') {
      const key = op.key;
      if (this.fileList) return this.written({ removed: this.fileList.recordSuccess(key) });
      return this.change(
        key,
        async () => ({ removed: await this.failed.recordSuccess(key) }),
        (why, lost) =>
          lost
            ? `The success of ${key} could not take its entry off the failed list (${this.failedFile}): ${why}. If the record was listed it stays listed though it synced: replay it (it syncs as unchanged and leaves the list).`
            : `The success of ${key} could not take its entry off the failed list (${this.failedFile}): ${why}. Tried again every few seconds until the database answers.`,
      );
    }
    return Promise.resolve({});
  }

  /** The file list's change is made; resolves when it is on disk (a write error is the list's to report and retry). */
  private written(r: RecordResult): Promise<RecordResult> {
    return this.fileList!.settle().then(
      () => r,
      () => r,
    );
  }

  /**
   * Run one failed-list change for `key` after the pending ones for the same key. A transient
   * error is reported once and the change tried again (with a growing pause) until it lands or
   * the OpLog closes; any other error, or the last try at close, reports it lost.
   */
  private change(key: string, fn: () => Promise<RecordResult>, say: (why: string, lost: boolean) => string): Promise<RecordResult> {
    const prev = this.chains.get(key) ?? Promise.resolve();
    const run = prev.then(async (): Promise<RecordResult> => {
      let pause = RETRY_FIRST_MS;
      let told = false;
      for (;;) {
        try {
          return await fn();
        } catch (e) {
          const why = String((e as Error)?.message ?? e).replace(/[.\s]+$/, '');
          const transient = e instanceof SyncError && e.retryable;
          if (!transient || this.closing) {
            this.emitError(new FailedWriteError(say(why, true), key, true, e));
            return {};
          }
          if (!told) this.emitError(new FailedWriteError(say(why, false), key, false, e));
          told = true;
          await this.sleep(pause);
          pause = Math.min(pause * 2, RETRY_MAX_MS);
        }
      }
    });
    const tail = run.then(() => undefined);
    this.chains.set(key, tail);
    void tail.then(() => {
      if (this.chains.get(key) === tail) this.chains.delete(key);
    });
    return run;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(t);
        this.sleepers.delete(done);
        resolve();
      };
      const t = setTimeout(done, ms);
      t.unref?.();
      this.sleepers.add(done);
    });
  }

  /** Every failed-list change made so far is written (or reported lost). */
  private async settleChanges(): Promise<void> {
    while (this.chains.size) await Promise.all([...this.chains.values()]);
  }

  /** Entries in the failed list (every instance's, on PostgreSQL). */
  async failedCount(): Promise<number> {
    return this.fileList ? this.fileList.size : this.failed.size();
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
  async takeForReplay(filter: FailedFilter, now = Date.now()): Promise<FailedEntry[]> {
    if (!checkFilter(filter)) {
      throw new SyncError('BAD_INPUT', 'Say what to replay: {crmId}, {entity}, {code}, {olderThan} (e.g. "1h"), a combination, or {all: true}.');
    }
    const byCode = typeof filter.code === 'string' ? filter.code.trim().toUpperCase() : undefined;
    const named = filter.crmId !== undefined || (byCode !== undefined && NAMED_ONLY.has(byCode));
    // On PostgreSQL two instances replaying at once may both pick an entry: the queue merges the
    // two events of one record into one job, so it runs once.
    const picked = (await this.failed.match(filter, now)).filter((e) => named || !NAMED_ONLY.has(e.reason.code.toUpperCase()));
    await this.markReplayed(
      picked.map((e) => e.key),
      now,
    );
    return picked;
  }

  /** Note that these entries were sent for replay (the file list: in memory now, written in the background). */
  async markReplayed(keys: string[], now = Date.now()): Promise<void> {
    if (this.fileList) this.fileList.markReplayed(keys, now);
    else await this.failed.markReplayed(keys, now);
  }

  /**
   * The review item for `crmId` (LINK_NEEDS_REVIEW or DOCUMENT_CHANGED_AFTER_TRANSFER), for a
   * replay that carries the operator's decision. BAD_INPUT when there is none.
   */
  async reviewItem(crmId: string, now = Date.now()): Promise<FailedEntry> {
    const items = await this.failed.match({ crmId }, now);
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

  async snapshot(now = Date.now()): Promise<StatsSnapshot> {
    return { ...this.stats.snapshot(now), failed: await this.failedCount(), failedDropped: this.failed.dropped };
  }

  /** Everything queued is written (log lines and the failed list's changes). */
  async flush(): Promise<void> {
    await this.writer.flush();
    await this.settleChanges();
    await this.fileList?.settle();
  }
}
