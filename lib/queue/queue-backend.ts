/**
 * The sync queue's interface, as the nodes use it, and what its backends share.
 *
 * Two backends implement it: `SyncQueue` (sync-queue.ts, the queue of a data folder: one process)
 * and `PgQueue` (pg-queue.ts, one PostgreSQL database shared by several Node-RED instances). Every
 * method that another node, or another instance, could race on returns a Promise; a promise
 * resolves only once its change is durable. The guarantees are the same on both, and one
 * conformance suite (test/lib/queue/conformance.test.ts) runs against each:
 *
 * - one job per record key waiting (a later change merges into it), one in flight (across every
 *   instance), the oldest first;
 * - a job taken is leased under a token; the carrier renews the lease while it works; a lease that
 *   runs out puts the job back (a transient failure, counted as an attempt), and its old token can
 *   no longer end it;
 * - `fail()` decides by the same rules on both (`decideFailure` below): retry with backoff, a wait
 *   for a dependency, one checked re-send of an ambiguous create, or dead.
 */
import { backoffMs } from '../sync/retry-policy';
import type { EnqueueOptions, Failure, FailResult, Job, QueuePolicy, QueueStats, Taken } from './sync-queue';
import type { ReplayEvent } from '../oplog/entry';
import { mergeEvent, type WebhookEvent } from '../sync/webhook';

export interface QueueBackend {
  /** Which backend this is (for status texts and logs). */
  readonly backend: 'file' | 'postgres';
  readonly policy: QueuePolicy;
  setPolicy(p: Partial<QueuePolicy>): void;
  /** Queue an event durably; merged into the waiting (not in flight) job of its record if there is one. */
  enqueue(event: ReplayEvent, opts?: EnqueueOptions): Promise<{ job: Job; merged: boolean }>;
  /** Up to `max` jobs ready now, leased to the caller; never two of one record at once. */
  take(max: number, now?: number): Promise<Taken[]>;
  /** Extend a lease; false when it is gone (ran out and was given to another carrier, or ended). */
  renew(id: string, token: string, now?: number): Promise<boolean>;
  isLeased(id: string, token: string): Promise<boolean>;
  /**
   * Whether this instance handed out that lease and has not seen it end or run out (in memory, no
   * I/O): how a node finds, among the queues open in this process, the one a message's job came
   * from. The backend still checks the token when the job is completed or failed.
   */
  holds(id: string, token: string): boolean;
  complete(id: string, token: string): Promise<boolean>;
  fail(id: string, token: string, f: Failure, now?: number): Promise<FailResult>;
  /** Remove a job that is not in flight (an operator's choice). */
  remove(id: string): Promise<boolean>;
  get(id: string): Promise<Job | undefined>;
  /**
   * Every job, oldest first; `active`: leased. `leaseExpired` (PostgreSQL): leased, but the lease
   * ran out and no sweep has ended it yet (its holder is gone; e.g. every instance stopped).
   */
  list(): Promise<Array<Job & { active: boolean; leaseExpired?: boolean }>>;
  stats(now?: number): Promise<QueueStats>;
  /** When the next job not in flight becomes ready by time (for the deliverer's timer). */
  nextDueAt(): Promise<number | undefined>;
  /** Called after every change of the queue, made here or (PostgreSQL) by another instance. */
  onChange(l: () => void): () => void;
  /** Wait until every change made so far is durable. */
  flush(): Promise<void>;
  /** One user is done with the queue; the last one closes it. */
  release(): Promise<void>;
  /**
   * The jobs that died of a lease running out (their attempts used up while nobody held them:
   * the process carrying them died, each time), and the jobs that waited for them and died with
   * them, each with its `lastError`; each handed out once, to whichever caller asks first in this
   * process. No node settles such a job, so the sync-queue node reports them (LEASE_EXPIRED, to
   * Catch and so to sync-log's failed list). Held in memory (at most 1000, the oldest dropped).
   */
  takeLeaseDeaths(): Job[];
  /**
   * Put jobs moved from another store (the store transfer): per job, as `restoreDecision` says:
   * one whose id is here already is left alone; one whose record has a waiting job here merges
   * into it as `enqueue` does; otherwise it is added as it was (id, attempts, times, dependency,
   * data, trace). In the order given (the source's, oldest first). Durable when it resolves.
   */
  restore(jobs: Job[]): Promise<RestoreOutcome[]>;
}

export type RestoreOutcome = 'added' | 'merged' | 'same';

/** What `restore` does with `job`, given the jobs of its record here (oldest first) and which of them are leased. */
export function restoreDecision(job: Job, here: Array<Job & { active?: boolean }>): { outcome: RestoreOutcome; into?: Job } {
  if (here.some((j) => j.id === job.id)) return { outcome: 'same' };
  const waiting = here.find((j) => !j.active);
  if (!waiting) return { outcome: 'added' };
  const into = mergeWaiting(waiting, job.event, { data: job.data });
  // Merged before (a second run): merging again would change nothing but the count.
  if (sameJson(into.event, waiting.event) && sameJson(into.data ?? null, waiting.data ?? null)) return { outcome: 'same' };
  return { outcome: 'merged', into };
}

function sameJson(a: unknown, b: unknown): boolean {
  const canon = (v: unknown) =>
    JSON.stringify(v, (_k, x: unknown) => (x && typeof x === 'object' && !Array.isArray(x) ? Object.fromEntries(Object.entries(x as Record<string, unknown>).sort(([p], [q]) => (p < q ? -1 : p > q ? 1 : 0))) : x));
  return canon(a) === canon(b);
}

/**
 * A later event for a record merged into its waiting job, on every backend: the events combine
 * (`mergeEvent`: Insert + Update is still an Insert), the data is merged, and an operator's replay
 * does not wait out a backoff meant for an outage.
 */
export function mergeWaiting(waiting: Job, ev: ReplayEvent, opts: { data?: Record<string, unknown>; trigger?: string; now?: number }): Job {
  const job: Job = {
    ...waiting,
    event: { ...waiting.event, event: mergeEvent(waiting.event.event as WebhookEvent, ev.event as WebhookEvent), subtype: ev.subtype ?? waiting.event.subtype, ...(ev.kind ? { kind: ev.kind } : {}) },
    merged: waiting.merged + 1,
    data: opts.data ? { ...(waiting.data ?? {}), ...opts.data } : waiting.data,
  };
  if ((opts.trigger === 'replay' || opts.trigger === 'manual') && opts.now !== undefined) job.notBefore = Math.min(job.notBefore, opts.now);
  return job;
}

/** The lease deaths a backend keeps for `takeLeaseDeaths` (bounded: nobody may be asking). */
export class LeaseDeaths {
  private jobs: Job[] = [];
  add(dead: Job, dependents: Job[]): void {
    this.jobs.push(dead, ...dependents);
    if (this.jobs.length > 1000) this.jobs.splice(0, this.jobs.length - 1000);
  }
  take(): Job[] {
    return this.jobs.splice(0);
  }
}

const open = new Set<QueueBackend>();

/** Backends add themselves while open, so a message's job finds its queue (`queueHolding`). */
export function registerQueue(q: QueueBackend): void {
  open.add(q);
}

export function unregisterQueue(q: QueueBackend): void {
  open.delete(q);
}

/** The open queue in this process that leased job `id` under `token` (a message carries only those). */
export function queueHolding(id: string, token: string): QueueBackend | undefined {
  for (const q of open) if (q.holds(id, token)) return q;
  return undefined;
}

export interface FailureDecision {
  outcome: 'retry' | 'dead' | 'dependency';
  /** The job as it is to be kept (retry, dependency) or as it ended (dead). */
  job: Job;
  /** For a retry: when it runs next. */
  at?: number;
  /** For a dependency: the key the job now waits for (the caller queues that event). */
  dependencyKey?: string;
}

/**
 * What a failure does to a job, on every backend. Transient: retried after a backoff while
 * attempts and age allow. Ambiguous (a create whose outcome is unknown): retried once after the
 * policy's check delay, marked `recheck` so the pipeline checks before it creates; a pre-invoice's
 * never (it cannot be looked up in Siagh). Dependency: the job waits for the named entity (once;
 * not a failed attempt). Otherwise, or when the retries are used up: dead.
 */
export function decideFailure(cur: Job, f: Failure, p: QueuePolicy, now: number, keyOf: (ev: ReplayEvent) => string): FailureDecision {
  const job: Job = { ...cur, attempts: cur.attempts + 1, lastError: { code: f.code, message: f.message } };
  if (f.kind === 'dependency' && f.dependency && (job.dependencyWaits ?? 0) < 1) {
    const depKey = keyOf(f.dependency);
    if (depKey !== job.key) {
      job.attempts = cur.attempts; // waiting for a customer is not a failed attempt
      job.dependencyWaits = (job.dependencyWaits ?? 0) + 1;
      job.after = depKey;
      job.state = 'waiting';
      job.notBefore = now;
      return { outcome: 'dependency', job, dependencyKey: depKey };
    }
  }
  const young = now - job.createdAt < p.maxAgeMs;
  if (f.kind === 'transient' && job.attempts < p.maxAttempts && young) {
    const at = now + Math.max(backoffMs(job.attempts, p), f.retryAfterMs ?? 0);
    return { outcome: 'retry', job: { ...job, state: 'retrying', notBefore: at }, at };
  }
  if (f.kind === 'ambiguous' && job.event.type === 'Identity' && !job.data?.recheck && young) {
    const at = now + Math.max(p.ambiguousDelayMs, f.retryAfterMs ?? 0);
    return { outcome: 'retry', job: { ...job, state: 'retrying', notBefore: at, data: { ...(job.data ?? {}), recheck: true } }, at };
  }
  return { outcome: 'dead', job };
}

/** The last error a job that waited for `dead` is given when it dies with it. */
export function dependentError(dead: Job): { code: string; message: string } {
  return { code: dead.lastError?.code ?? 'DEPENDENCY_FAILED', message: `Its customer (${dead.event.id}) could not be synced: ${dead.lastError?.message ?? 'see the failed list'}` };
}

/** The lease-expiry failure (the carrier is gone: a lost message, a stuck node). */
export const LEASE_EXPIRED: Failure = {
  kind: 'transient',
  code: 'LEASE_EXPIRED',
  message: "No outcome was recorded before the job's lease ran out: is the end of the pipeline (and its Catch node) wired to a sync-log node?",
};
