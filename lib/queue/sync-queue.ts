/**
 * The durable sync queue of one data folder: every accepted CRM change (webhook, poll, replay, a
 * dependency) is a job here until its outcome is recorded, so a redeploy, a stop or a kill -9 loses
 * nothing that was accepted.
 *
 * - Durable: `enqueue()` resolves only once the job's line is in `queue.jsonl` and fsync'd (one
 *   write + fsync for every change waiting: group commit). The journal is folded into
 *   `queue.json` (atomic write) when it grows, and at open.
 * - One job per entity at a time: a job waiting for an entity absorbs later events for it (merge);
 *   a job for an entity that is in flight waits until that one ends (per-entity order).
 * - Leases: a job taken for delivery is leased; whoever carries it renews the lease while it works
 *   (`renew`). A lease that runs out puts the job back (counted as an attempt): a message lost in a
 *   rewired flow is delivered again. Leases live in memory: after a restart every job is waiting.
 * - Retries: `fail()` with a transient failure reschedules with exponential backoff and jitter
 *   (Retry-After honoured in full), up to the policy's attempts and age; a permanent failure, or the
 *   end of the retries, ends the job ("dead": the caller records it in the failed list). A contact
 *   create whose outcome is unknown is delivered once more after a delay, marked `recheck`, so the
 *   pipeline looks for it in Siagh first; a pre-invoice's never is (it cannot be looked up).
 * - Dependencies: a job that needs another entity first (a quote whose customer has no mapping)
 *   queues that entity's job and waits for it (`after`); if it dies, its dependents die with it.
 *
 * This is the file backend of the queue's interface (`QueueBackend`, queue-backend.ts); `PgQueue`
 * (pg-queue.ts) is the PostgreSQL one.
 */
import { randomUUID } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { SyncError } from '../errors';
import { eventTypeOf, failureKey, ReplayEvent } from '../oplog/entry';
import { refOf } from '../ref';
import { writeFileAtomic } from '../store/atomic-file';
import { acquireLock, releaseLock, startHeartbeat } from '../store/file-lock';
import { DEFAULT_RETRY_POLICY, RetryPolicy, retryPolicyFromEnv } from '../sync/retry-policy';
import { decideFailure, dependentError, LEASE_EXPIRED, LeaseDeaths, mergeWaiting, QueueBackend, registerQueue, restoreDecision, RestoreOutcome, unregisterQueue } from './queue-backend';

/** How the queue retries (the retry policy) and leases. */
export interface QueuePolicy extends RetryPolicy {
  /** Before a create whose outcome is unknown is tried again (with a check first). */
  ambiguousDelayMs: number;
  /** A job taken for delivery is given back when nobody renews it within this time. */
  leaseMs: number;
}

export const DEFAULT_QUEUE_POLICY: Readonly<QueuePolicy> = Object.freeze({ ...DEFAULT_RETRY_POLICY, ambiguousDelayMs: 60_000, leaseMs: 120_000 });

/** The queue's policy from the environment: the retry policy's variables and RETRY_CHECK_DELAY_SECONDS. */
export function queuePolicyFromEnv(env: Record<string, string | undefined> = process.env): QueuePolicy {
  const p: QueuePolicy = { ...DEFAULT_QUEUE_POLICY, ...retryPolicyFromEnv(env) };
  const check = Number(env.RETRY_CHECK_DELAY_SECONDS);
  if (env.RETRY_CHECK_DELAY_SECONDS?.trim() && Number.isFinite(check) && check >= 0) p.ambiguousDelayMs = Math.round(check * 1000);
  return p;
}

export const QUEUE_FILE = 'queue.json';
export const QUEUE_JOURNAL = 'queue.jsonl';

/** Persisted states. In flight ("active") is a lease in memory on top of one of these. */
export type JobState = 'waiting' | 'retrying';

export interface Job {
  id: string;
  /** `identity:<guid>`, `quote:<guid>`, `invoice:<guid>`: the same key as the failed list. */
  key: string;
  event: ReplayEvent;
  trigger: string;
  state: JobState;
  /** Delivery attempts that ended without success. */
  attempts: number;
  createdAt: number;
  /** Not delivered before this (epoch ms). */
  notBefore: number;
  /** Events merged into this job after the first. */
  merged: number;
  lastError?: { code: string; message: string };
  /** Key of the job this one waits for (its customer's identity). */
  after?: string;
  /** Times this job was held back for a dependency. */
  dependencyWaits?: number;
  /** Extra data carried to the pipeline (for example an operator's decision). */
  data?: Record<string, unknown>;
}

export interface Lease {
  token: string;
  until: number;
  startedAt: number;
}

export interface Taken {
  job: Job;
  token: string;
}

export type FailureKind = 'transient' | 'permanent' | 'ambiguous' | 'dependency';

export interface Failure {
  kind: FailureKind;
  code: string;
  message: string;
  /** The server asked us to wait this long (429 Retry-After, a lock-out cool-down). */
  retryAfterMs?: number;
  /** For kind 'dependency': the entity that must be synced first. */
  dependency?: ReplayEvent;
}

export interface FailResult {
  outcome: 'retry' | 'dead' | 'dependency' | 'stale';
  job: Job;
  /** For a retry: when it runs next. */
  at?: number;
  /** Jobs that waited for this one and die with it. */
  dependents: Job[];
}

export interface EnqueueOptions {
  trigger?: string;
  data?: Record<string, unknown>;
  after?: string;
  now?: number;
}

export interface QueueStats {
  waiting: number;
  active: number;
  retrying: number;
  /** Waiting for another job (a dependency). */
  blocked: number;
  total: number;
  /** Age of the oldest job not yet done, ms (0 when empty). */
  oldestAgeMs: number;
}

export interface QueueOptions {
  policy?: Partial<QueuePolicy>;
  /** Journal lines before it is folded into queue.json (default 2000). */
  compactAfter?: number;
  /** How often expired leases are looked for (ms, default 1000). */
  sweepMs?: number;
}

type Listener = () => void;

export function jobKey(ev: Pick<ReplayEvent, 'type' | 'id'>): string {
  return failureKey(ev.type, ev.id);
}

/** The event a payload asks to queue ({type, id, event, subtype, kind}), or BAD_INPUT saying what is missing. */
export function eventOf(payload: unknown): ReplayEvent {
  const p = (payload && typeof payload === 'object' ? payload : {}) as Record<string, unknown>;
  const ref = refOf({ payload: p });
  const type = eventTypeOf(ref.entity);
  if (!type || !ref.crmId) {
    throw new SyncError('BAD_INPUT', 'The queue needs msg.payload {type: Identity | Quote | Invoice, id: <CRM GUID>} (event, subtype and kind are optional).');
  }
  const ev: ReplayEvent = { type, id: ref.crmId, event: typeof p.event === 'string' && p.event ? p.event : 'Update' };
  if (typeof p.subtype === 'string' && p.subtype) ev.subtype = p.subtype;
  if (ref.kind) ev.kind = ref.kind;
  return ev;
}

/** The jobs by id, with an index by record key (a queue of thousands stays cheap per event). */
class JobTable extends Map<string, Job> {
  private byRecord = new Map<string, Set<string>>();

  override set(id: string, job: Job): this {
    const prev = super.get(id);
    if (prev && prev.key !== job.key) this.unindex(prev);
    super.set(id, job);
    let ids = this.byRecord.get(job.key);
    if (!ids) this.byRecord.set(job.key, (ids = new Set()));
    ids.add(id);
    return this;
  }

  override delete(id: string): boolean {
    const prev = super.get(id);
    if (prev) this.unindex(prev);
    return super.delete(id);
  }

  private unindex(job: Job): void {
    const ids = this.byRecord.get(job.key);
    ids?.delete(job.id);
    if (ids && !ids.size) this.byRecord.delete(job.key);
  }

  /** The jobs of one record, oldest first. */
  ofKey(key: string): Job[] {
    const ids = this.byRecord.get(key);
    if (!ids) return [];
    const out: Job[] = [];
    for (const id of ids) {
      const j = super.get(id);
      if (j) out.push(j);
    }
    return out.sort((a, b) => a.createdAt - b.createdAt);
  }
}

interface Registered {
  queue: SyncQueue;
  refs: number;
}
const registry = new Map<string, Registered>();
const opening = new Map<string, Promise<SyncQueue>>();

export class SyncQueue implements QueueBackend {
  readonly backend = 'file' as const;
  readonly file: string;
  readonly journalFile: string;
  private jobs = new JobTable();
  private leases = new Map<string, Lease>();
  private listeners = new Set<Listener>();
  private pending: string[] = [];
  private waiters: Array<{ resolve: () => void; reject: (e: Error) => void }> = [];
  private flushing: Promise<void> | undefined;
  private journalLines = 0;
  private fh: fsp.FileHandle | undefined;
  private lockToken = '';
  private stopHeartbeat: (() => void) | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private deaths = new LeaseDeaths();
  policy: QueuePolicy;
  private readonly compactAfter: number;

  private constructor(readonly dir: string, opts: QueueOptions) {
    this.file = path.join(dir, QUEUE_FILE);
    this.journalFile = path.join(dir, QUEUE_JOURNAL);
    this.policy = { ...DEFAULT_QUEUE_POLICY, ...(opts.policy ?? {}) };
    this.compactAfter = Math.max(10, opts.compactAfter ?? 2000);
    const sweepMs = Math.max(50, opts.sweepMs ?? 1000);
    this.sweepTimer = setInterval(() => this.sweep(), sweepMs);
    this.sweepTimer.unref();
  }

  /** The queue of `dir`, shared by every user in this process (released with `release()`). */
  static async open(dir: string, opts: QueueOptions = {}): Promise<SyncQueue> {
    const abs = path.resolve(dir);
    const reg = registry.get(abs);
    if (reg) {
      reg.refs++;
      if (opts.policy) reg.queue.setPolicy(opts.policy);
      return reg.queue;
    }
    let p = opening.get(abs);
    if (!p) {
      p = (async () => {
        const q = new SyncQueue(abs, opts);
        try {
          await q.load();
        } catch (e) {
          q.stopTimers();
          throw e;
        }
        registry.set(abs, { queue: q, refs: 0 });
        registerQueue(q);
        return q;
      })();
      opening.set(abs, p);
      p.then(
        () => opening.delete(abs),
        () => opening.delete(abs),
      );
    }
    const q = await p;
    const r = registry.get(abs);
    if (r) r.refs++;
    if (opts.policy) q.setPolicy(opts.policy);
    return q;
  }

  /** The open queue of `dir` in this process, if any. */
  static peek(dir: string): SyncQueue | undefined {
    return registry.get(path.resolve(dir))?.queue;
  }

  /** The open queue that leased job `id` under `token` (a message carries only the id and token). */
  static holding(id: string, token: string): SyncQueue | undefined {
    for (const { queue } of registry.values()) if (queue.holds(id, token)) return queue;
    return undefined;
  }

  setPolicy(p: Partial<QueuePolicy>): void {
    this.policy = { ...this.policy, ...p };
  }

  private async load(): Promise<void> {
    await fsp.mkdir(this.dir, { recursive: true });
    const lock = await acquireLock(this.file);
    this.lockToken = lock.token;
    this.stopHeartbeat = startHeartbeat(`${this.file}.lock`, lock.token);
    try {
      let snap: { version?: number; jobs?: Job[] } | undefined;
      try {
        snap = JSON.parse(await fsp.readFile(this.file, 'utf8')) as { version?: number; jobs?: Job[] };
      } catch (e) {
        if ((e as { code?: string }).code !== 'ENOENT') {
          const aside = `${this.file}.unreadable-${Date.now()}`;
          await fsp.rename(this.file, aside).catch(() => undefined);
          throw new SyncError('STORE_IO', `The queue file ${this.file} could not be read (${(e as Error).message}); it was kept as ${aside}. Check it, then redeploy.`);
        }
      }
      for (const j of snap?.jobs ?? []) if (j && typeof j.id === 'string') this.jobs.set(j.id, j);
      let text = '';
      try {
        text = await fsp.readFile(this.journalFile, 'utf8');
      } catch (e) {
        if ((e as { code?: string }).code !== 'ENOENT') throw e;
      }
      const lines = text.split('\n');
      lines.forEach((line, i) => {
        if (!line.trim()) return;
        let rec: { put?: Job; del?: string };
        try {
          rec = JSON.parse(line) as { put?: Job; del?: string };
        } catch {
          // The last line may be torn by a crash while it was written: its change never resolved.
          if (i >= lines.length - 2) return;
          throw new SyncError('STORE_IO', `Line ${i + 1} of the queue journal ${this.journalFile} is damaged. Move the file aside to start with the jobs in ${QUEUE_FILE} only.`);
        }
        if (rec.put && typeof rec.put.id === 'string') this.jobs.set(rec.put.id, rec.put);
        else if (typeof rec.del === 'string') this.jobs.delete(rec.del);
      });
      // Jobs in flight when the process stopped are simply waiting again.
      await this.compact();
      this.fh = await fsp.open(this.journalFile, 'a');
    } catch (e) {
      await releaseLock(`${this.file}.lock`, this.lockToken);
      this.stopHeartbeat?.();
      throw e;
    }
  }

  // ------------------------------------------------------------------ persistence

  private persist(change: { put?: Job; del?: string }): Promise<void> {
    if (this.closed) return Promise.reject(new SyncError('STORE_IO', 'The sync queue is closed (the flows are being stopped); the change was not recorded.'));
    this.pending.push(JSON.stringify(change));
    const p = new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject }));
    if (!this.flushing) this.flushing = this.flushLoop();
    return p;
  }

  private async flushLoop(): Promise<void> {
    try {
      while (this.pending.length) {
        const lines = this.pending;
        const waiters = this.waiters;
        this.pending = [];
        this.waiters = [];
        try {
          if (!this.fh) this.fh = await fsp.open(this.journalFile, 'a');
          await this.fh.write(lines.join('\n') + '\n');
          await this.fh.datasync();
          this.journalLines += lines.length;
          for (const w of waiters) w.resolve();
        } catch (e) {
          const err = new SyncError('STORE_IO', `The sync queue could not write ${this.journalFile} (${(e as { code?: string }).code ?? (e as Error).message}). Check the disk and the folder's permissions.`, { cause: e });
          for (const w of waiters) w.reject(err);
        }
        if (this.journalLines >= this.compactAfter && !this.pending.length) await this.compact().catch(() => undefined);
      }
    } finally {
      this.flushing = undefined;
    }
  }

  /** Fold the journal into queue.json: write the whole (small) job set, then empty the journal. */
  private async compact(): Promise<void> {
    const body = JSON.stringify({ version: 1, jobs: [...this.jobs.values()] });
    await writeFileAtomic(this.file, body);
    if (this.fh) await this.fh.truncate(0);
    else await fsp.writeFile(this.journalFile, '');
    this.journalLines = 0;
  }

  private changed(): void {
    for (const l of this.listeners) {
      try {
        l();
      } catch {
        // a listener's trouble is its own
      }
    }
  }

  /** Called after every change of the queue (for status, and to wake the deliverer). */
  onChange(l: Listener): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  // ------------------------------------------------------------------ jobs

  private byKey(key: string): Job[] {
    return this.jobs.ofKey(key);
  }


  /**
   * Queue an event durably. An event for an entity that already has a job waiting (not in flight)
   * is merged into it; otherwise a new job is added (after the one in flight, if any).
   */
  async enqueue(event: ReplayEvent, opts: EnqueueOptions = {}): Promise<{ job: Job; merged: boolean }> {
    const type = eventTypeOf(event.type);
    if (!type) throw new SyncError('BAD_INPUT', `Cannot queue an event of type "${String(event.type)}": Identity, Quote or Invoice.`);
    const ev: ReplayEvent = { ...event, type, id: String(event.id).trim().toLowerCase() };
    const key = jobKey(ev);
    const now = opts.now ?? Date.now();
    const waiting = this.byKey(key).find((j) => !this.leases.has(j.id));
    if (waiting) {
      // An operator's replay does not wait out a backoff meant for an outage (mergeWaiting).
      const job = mergeWaiting(waiting, ev, { data: opts.data, trigger: opts.trigger, now });
      this.jobs.set(job.id, job);
      await this.persist({ put: job });
      this.changed();
      return { job, merged: true };
    }
    const job: Job = {
      id: randomUUID(),
      key,
      event: ev,
      trigger: opts.trigger ?? 'webhook',
      state: 'waiting',
      attempts: 0,
      createdAt: now,
      notBefore: now,
      merged: 0,
    };
    if (opts.data) job.data = opts.data;
    if (opts.after) job.after = opts.after;
    this.jobs.set(job.id, job);
    await this.persist({ put: job });
    this.changed();
    return { job, merged: false };
  }

  /**
   * Per key, in one pass over the jobs: how many are in flight and the oldest createdAt. take()
   * asks this for every job, so `ready` costs O(1) instead of a scan of the whole queue (which made
   * a take() over a queue of 20 000 jobs take about a second).
   */
  private keyIndex(): Map<string, { leased: number; oldest: number }> {
    const idx = new Map<string, { leased: number; oldest: number }>();
    for (const o of this.jobs.values()) {
      const leased = this.leases.has(o.id) ? 1 : 0;
      const e = idx.get(o.key);
      if (!e) idx.set(o.key, { leased, oldest: o.createdAt });
      else {
        e.leased += leased;
        if (o.createdAt < e.oldest) e.oldest = o.createdAt;
      }
    }
    return idx;
  }

  private ready(j: Job, now: number, idx: Map<string, { leased: number; oldest: number }>): boolean {
    if (this.leases.has(j.id) || j.notBefore > now) return false;
    if (j.after && idx.has(j.after)) return false;
    // Per entity: the oldest job of a key goes first, and never two at once.
    const e = idx.get(j.key);
    return !e || (e.leased === 0 && j.createdAt <= e.oldest);
  }

  /** Up to `max` jobs ready now, leased to the caller (oldest first). */
  async take(max: number, now = Date.now()): Promise<Taken[]> {
    const out: Taken[] = [];
    if (this.closed || max <= 0) return out;
    const idx = this.keyIndex();
    const candidates = [...this.jobs.values()].filter((j) => this.ready(j, now, idx)).sort((a, b) => a.notBefore - b.notBefore || a.createdAt - b.createdAt);
    const keys = new Set<string>();
    for (const j of candidates) {
      if (out.length >= max) break;
      if (keys.has(j.key)) continue;
      keys.add(j.key);
      const lease: Lease = { token: randomUUID(), until: now + this.policy.leaseMs, startedAt: now };
      this.leases.set(j.id, lease);
      out.push({ job: j, token: lease.token });
    }
    if (out.length) this.changed();
    return out;
  }

  /** When the next job not yet ready becomes ready by time (for the deliverer's timer). */
  async nextDueAt(): Promise<number | undefined> {
    let next: number | undefined;
    for (const j of this.jobs.values()) {
      if (this.leases.has(j.id)) continue;
      if (next === undefined || j.notBefore < next) next = j.notBefore;
    }
    return next;
  }

  private leaseOf(id: string, token: string): Lease | undefined {
    const l = this.leases.get(id);
    return l && l.token === token ? l : undefined;
  }

  /** Keep a job's lease while its carrier still works on it. False when the lease is gone. */
  async renew(id: string, token: string, now = Date.now()): Promise<boolean> {
    const l = this.leaseOf(id, token);
    if (!l) return false;
    l.until = now + this.policy.leaseMs;
    return true;
  }

  async isLeased(id: string, token: string): Promise<boolean> {
    return this.holds(id, token);
  }

  holds(id: string, token: string): boolean {
    return !!this.leaseOf(id, token);
  }

  /** The job ended well: it leaves the queue (durably), and its dependents may run. */
  async complete(id: string, token: string): Promise<boolean> {
    if (!this.leaseOf(id, token)) return false;
    this.leases.delete(id);
    this.jobs.delete(id);
    await this.persist({ del: id });
    this.changed();
    return true;
  }

  /**
   * The job failed. Transient: retried after a backoff while attempts and age allow. Ambiguous (a
   * create whose outcome is unknown): retried once after the policy's check delay, marked so the
   * pipeline checks before it creates. Dependency: the named entity is queued and this job waits
   * for it (once). Otherwise, or when the retries are used up: dead.
   */
  async fail(id: string, token: string, f: Failure, now = Date.now()): Promise<FailResult> {
    const cur = this.jobs.get(id);
    if (!cur || !this.leaseOf(id, token)) {
      return { outcome: 'stale', job: cur ?? ({ id } as Job), dependents: [] };
    }
    // Every change to the job's state is made before the first await: a delivery that runs in
    // between (enqueue wakes the deliverer) must see the job as it now is, never unleased and
    // unchanged.
    this.leases.delete(id);
    const d = decideFailure(cur, f, this.policy, now, jobKey);
    const job = d.job;
    if (d.outcome === 'dependency') {
      this.jobs.set(id, job);
      const saved = this.persist({ put: job });
      // The customer's job is in the table before this call's first await, so the document waits.
      await Promise.all([saved, this.enqueue(f.dependency!, { trigger: 'dependency', now })]);
      this.changed();
      return { outcome: 'dependency', job, dependents: [] };
    }
    if (d.outcome === 'retry') {
      this.jobs.set(id, job);
      await this.persist({ put: job });
      this.changed();
      return { outcome: 'retry', job, at: d.at, dependents: [] };
    }
    const dependents = await this.kill(job);
    return { outcome: 'dead', job, dependents };
  }

  /** Remove a dead job and every job waiting for its key (recursively). */
  private async kill(job: Job): Promise<Job[]> {
    this.jobs.delete(job.id);
    this.leases.delete(job.id);
    const dead: Job[] = [];
    const ps: Array<Promise<void>> = [this.persist({ del: job.id })];
    if (!this.byKey(job.key).length) {
      for (const d of [...this.jobs.values()]) {
        if (d.after !== job.key) continue;
        const dj: Job = { ...d, lastError: dependentError(job) };
        dead.push(dj);
        this.jobs.delete(d.id);
        this.leases.delete(d.id);
        ps.push(this.persist({ del: d.id }));
      }
    }
    await Promise.all(ps);
    this.changed();
    return dead;
  }

  /** Leases that ran out: the carrier is gone (a lost message, a stuck node); deliver again. */
  private sweep(now = Date.now()): void {
    if (this.closed) return;
    const expired: string[] = [];
    for (const [id, l] of this.leases) if (l.until <= now) expired.push(id);
    if (!expired.length) return;
    for (const id of expired) {
      const l = this.leases.get(id)!;
      void this.fail(id, l.token, LEASE_EXPIRED, now).then(
        (r) => {
          // Died of its lease: nobody holds it to settle it, so it is kept for the node to report.
          if (r.outcome === 'dead') {
            this.deaths.add(r.job, r.dependents);
            this.changed();
          }
        },
        () => undefined,
      );
    }
  }

  takeLeaseDeaths(): Job[] {
    return this.deaths.take();
  }

  async restore(jobs: Job[]): Promise<RestoreOutcome[]> {
    const out: RestoreOutcome[] = [];
    const writes: Array<Promise<void>> = [];
    for (const src of jobs) {
      const here = this.byKey(src.key).map((j) => ({ ...j, active: this.leases.has(j.id) }));
      const d = restoreDecision(src, here);
      out.push(d.outcome);
      if (d.outcome === 'same') continue;
      const job = d.outcome === 'merged' ? d.into! : { ...src };
      this.jobs.set(job.id, job);
      writes.push(this.persist({ put: job }));
    }
    await Promise.all(writes);
    if (writes.length) this.changed();
    return out;
  }

  /** Remove a job that is not in flight (operator's choice), durably. */
  async remove(id: string): Promise<boolean> {
    if (!this.jobs.has(id) || this.leases.has(id)) return false;
    this.jobs.delete(id);
    await this.persist({ del: id });
    this.changed();
    return true;
  }

  async get(id: string): Promise<Job | undefined> {
    return this.jobs.get(id);
  }

  async list(): Promise<Array<Job & { active: boolean }>> {
    return [...this.jobs.values()].sort((a, b) => a.createdAt - b.createdAt).map((j) => ({ ...j, active: this.leases.has(j.id) }));
  }

  async stats(now = Date.now()): Promise<QueueStats> {
    const s: QueueStats = { waiting: 0, active: 0, retrying: 0, blocked: 0, total: this.jobs.size, oldestAgeMs: 0 };
    for (const j of this.jobs.values()) {
      if (this.leases.has(j.id)) s.active++;
      else if (j.after && this.byKey(j.after).length) s.blocked++;
      else if (j.state === 'retrying') s.retrying++;
      else s.waiting++;
      s.oldestAgeMs = Math.max(s.oldestAgeMs, now - j.createdAt);
    }
    return s;
  }

  /** Wait for every change made so far to be on disk. */
  async flush(): Promise<void> {
    while (this.flushing) await this.flushing;
  }

  private stopTimers(): void {
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.sweepTimer = undefined;
  }

  /** One user is done with the queue; the last one closes it. */
  async release(): Promise<void> {
    const reg = registry.get(this.dir);
    if (!reg || reg.queue !== this) return;
    reg.refs--;
    if (reg.refs > 0) return;
    registry.delete(this.dir);
    unregisterQueue(this);
    await this.flush();
    this.closed = true;
    this.stopTimers();
    this.leases.clear();
    await this.compact().catch(() => undefined);
    await this.fh?.close().catch(() => undefined);
    this.fh = undefined;
    this.stopHeartbeat?.();
    await releaseLock(`${this.file}.lock`, this.lockToken);
  }
}
