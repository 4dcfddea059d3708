/**
 * The sync queue in PostgreSQL: the `QueueBackend` (queue-backend.ts) that several Node-RED
 * instances share. One row per job in `siagh_sync_queue`; a lease is columns of that row.
 *
 * - Durable: a promise resolves once its transaction has committed.
 * - Take: the ready jobs are claimed with `FOR UPDATE SKIP LOCKED`, so takers on several instances
 *   never wait for each other nor take one job twice. Only the oldest job of a record may be taken,
 *   and only when no job of that record is leased; a unique partial index (one leased row per key)
 *   makes "one job per record in flight" a rule of the database, not of the takers' timing.
 * - Merge: an enqueue holds a transaction advisory lock on its record key, so two instances
 *   queueing the same record at once merge into one waiting job instead of adding two.
 * - Leases: token and expiry in the row. A lease that ran out is failed (transient, LEASE_EXPIRED,
 *   one attempt) by whichever instance sweeps first, under the row's lock; from then on the old
 *   token matches nothing, so its carrier can neither complete nor fail the job.
 * - Wake-ups: every change sends NOTIFY on commit; each instance LISTENs on its own connection and
 *   calls its onChange listeners, so an enqueue on one instance wakes the takers on the others.
 *   After a lost listening connection (a server restart) it reconnects and wakes its listeners once,
 *   since notifications may have been missed meanwhile.
 * - Faults: while the server is away every call rejects (SyncError STORE_IO, the reason from
 *   describePgError; `isTransientPgError` on its cause); nothing is changed by a call that failed,
 *   and the next call after the server is back works (the pool reconnects).
 *
 * Times: the database's clock, one clock for every instance (as the PostgreSQL mapping claims),
 * so instances whose own clocks disagree cannot end each other's leases early nor run a job
 * before its time. Leases (take, renew, the sweep) always go by the database's now(); nothing a
 * caller passes changes them. Created-at, not-before and backoff times are the database's now()
 * too, unless the caller passes `now` (only tests do, to look ahead without sleeping, as on the
 * file queue; no node passes one). `holds()` keeps the lease's end by the local clock, in memory,
 * for this process only. `nextDueAt()` answers in the database's clock.
 */
import { randomUUID } from 'node:crypto';
import { Client, Pool, PoolClient } from 'pg';
import { SyncError } from '../errors';
import { eventTypeOf, ReplayEvent } from '../oplog/entry';
import { describePgError, inTransaction, migrate, Migration, openPool, PgOptions, poolConfig } from '../pg/db';
import { decideFailure, dependentError, LEASE_EXPIRED, LeaseDeaths, mergeWaiting, QueueBackend, registerQueue, restoreDecision, RestoreOutcome, unregisterQueue } from './queue-backend';
import { DEFAULT_QUEUE_POLICY, EnqueueOptions, Failure, FailResult, Job, jobKey, QueuePolicy, QueueStats, Taken } from './sync-queue';

export const PG_QUEUE_TABLE = 'siagh_sync_queue';
export const PG_QUEUE_CHANNEL = 'siagh_sync_queue';

export const PG_QUEUE_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    sql: `
CREATE TABLE ${PG_QUEUE_TABLE} (
  id uuid PRIMARY KEY,
  seq bigserial NOT NULL,
  key text NOT NULL,
  event jsonb NOT NULL,
  trigger text NOT NULL,
  state text NOT NULL,
  attempts integer NOT NULL DEFAULT 0,
  created_at bigint NOT NULL,
  not_before bigint NOT NULL,
  merged integer NOT NULL DEFAULT 0,
  last_error jsonb,
  after_key text,
  dependency_waits integer,
  data jsonb,
  lease_token uuid,
  lease_until bigint,
  CHECK ((lease_token IS NULL) = (lease_until IS NULL))
);
CREATE INDEX ${PG_QUEUE_TABLE}_key ON ${PG_QUEUE_TABLE} (key, seq);
CREATE INDEX ${PG_QUEUE_TABLE}_ready ON ${PG_QUEUE_TABLE} (not_before, seq) WHERE lease_token IS NULL;
CREATE INDEX ${PG_QUEUE_TABLE}_after ON ${PG_QUEUE_TABLE} (after_key) WHERE after_key IS NOT NULL;
CREATE INDEX ${PG_QUEUE_TABLE}_leases ON ${PG_QUEUE_TABLE} (lease_until) WHERE lease_token IS NOT NULL;
CREATE UNIQUE INDEX ${PG_QUEUE_TABLE}_one_in_flight ON ${PG_QUEUE_TABLE} (key) WHERE lease_token IS NOT NULL;
`,
  },
];

export interface PgQueueOptions {
  policy?: Partial<QueuePolicy>;
  /** How often leases that ran out are looked for (ms, default 1000). */
  sweepMs?: number;
  /**
   * False: never look for leases that ran out (the store transfer, which only reads and writes
   * jobs: a sweep there could end a job with nobody to report it). Default true.
   */
  sweep?: boolean;
}

interface Row {
  id: string;
  key: string;
  event: ReplayEvent;
  trigger: string;
  state: Job['state'];
  attempts: number;
  created_at: string;
  not_before: string;
  merged: number;
  last_error: Job['lastError'] | null;
  after_key: string | null;
  dependency_waits: number | null;
  data: Record<string, unknown> | null;
  lease_token: string | null;
  lease_until: string | null;
}

function jobOf(r: Row): Job {
  const j: Job = {
    id: r.id,
    key: r.key,
    event: r.event,
    trigger: r.trigger,
    state: r.state,
    attempts: r.attempts,
    createdAt: Number(r.created_at),
    notBefore: Number(r.not_before),
    merged: r.merged,
  };
  if (r.last_error) j.lastError = r.last_error;
  if (r.after_key) j.after = r.after_key;
  if (r.dependency_waits != null) j.dependencyWaits = r.dependency_waits;
  if (r.data) j.data = r.data;
  return j;
}

const T = PG_QUEUE_TABLE;
/** The database's clock in epoch ms (the transaction's start): the one clock of a shared queue. */
const DB_NOW = `(extract(epoch from now()) * 1000)::bigint`;
const COLS = 'id, key, event, trigger, state, attempts, created_at, not_before, merged, last_error, after_key, dependency_waits, data, lease_token, lease_until';

/** The job's columns in the order of `$2…$12` of INSERT and UPDATE below ($1 is the id). */
function params(j: Job): unknown[] {
  return [j.id, j.key, JSON.stringify(j.event), j.trigger, j.state, j.attempts, j.createdAt, j.notBefore, j.merged, j.lastError ? JSON.stringify(j.lastError) : null, j.after ?? null, j.dependencyWaits ?? null, j.data ? JSON.stringify(j.data) : null];
}

const INSERT = `INSERT INTO ${T} (id, key, event, trigger, state, attempts, created_at, not_before, merged, last_error, after_key, dependency_waits, data) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`;
/** Writes the job and ends its lease. */
const UPDATE = `UPDATE ${T} SET key = $2, event = $3, trigger = $4, state = $5, attempts = $6, created_at = $7, not_before = $8, merged = $9, last_error = $10, after_key = $11, dependency_waits = $12, data = $13, lease_token = NULL, lease_until = NULL WHERE id = $1`;
/** Writes a waiting job (a merge), its lease untouched. */
const UPDATE_WAITING = `UPDATE ${T} SET event = $2, data = $3, merged = $4, not_before = $5 WHERE id = $1`;

interface Registered {
  queue: PgQueue;
  refs: number;
}
const registry = new Map<string, Registered>();
const opening = new Map<string, Promise<PgQueue>>();

export class PgQueue implements QueueBackend {
  readonly backend = 'postgres' as const;
  policy: QueuePolicy;
  /** Leases this instance handed out: id → token and (as far as it knows) expiry. */
  private mine = new Map<string, { token: string; until: number }>();
  private listeners = new Set<() => void>();
  private listener: Client | undefined;
  private listenRetry: NodeJS.Timeout | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private sweeping: Promise<void> | undefined;
  private closed = false;
  private deaths = new LeaseDeaths();
  private readonly sweeps: boolean;
  private inflight = new Set<Promise<unknown>>();
  readonly instance = randomUUID();
  private registryKey: string | undefined;

  private constructor(
    private readonly pool: Pool,
    private readonly opts: PgOptions,
    qopts: PgQueueOptions,
  ) {
    this.policy = { ...DEFAULT_QUEUE_POLICY, ...(qopts.policy ?? {}) };
    this.sweeps = qopts.sweep !== false;
    if (this.sweeps) {
      const sweepMs = Math.max(50, qopts.sweepMs ?? 1000);
      this.sweepTimer = setInterval(() => void this.sweepNow(), sweepMs);
      this.sweepTimer.unref();
    }
  }

  /**
   * A queue instance of its own (its own pool and listening connection): what one Node-RED
   * process is to the database. Tests and benchmarks use several to play several instances.
   */
  static async connect(opts: PgOptions, qopts: PgQueueOptions = {}): Promise<PgQueue> {
    poolConfig(opts); // refuses unusable options with the reason, before anything is opened
    const pool = openPool(opts, () => undefined); // idle connections cut by a restart: the next query reconnects
    const q = new PgQueue(pool, opts, qopts);
    try {
      await migrate(pool, 'queue', PG_QUEUE_MIGRATIONS);
      await q.listen();
    } catch (e) {
      q.closed = true;
      q.stopTimers();
      await pool.end().catch(() => undefined);
      throw PgQueue.error(e, 'open the queue');
    }
    registerQueue(q);
    return q;
  }

  /** The queue of this database, shared by every user in this process (released with `release()`). */
  static async open(opts: PgOptions, qopts: PgQueueOptions = {}): Promise<PgQueue> {
    const key = String(poolConfig(opts).connectionString);
    const reg = registry.get(key);
    if (reg) {
      reg.refs++;
      if (qopts.policy) reg.queue.setPolicy(qopts.policy);
      return reg.queue;
    }
    let p = opening.get(key);
    if (!p) {
      p = PgQueue.connect(opts, qopts).then((q) => {
        q.registryKey = key;
        registry.set(key, { queue: q, refs: 0 });
        return q;
      });
      opening.set(key, p);
      p.then(
        () => opening.delete(key),
        () => opening.delete(key),
      );
    }
    const q = await p;
    const r = registry.get(key);
    if (r) r.refs++;
    if (qopts.policy) q.setPolicy(qopts.policy);
    return q;
  }

  private static error(e: unknown, what: string): Error {
    if (e instanceof SyncError) return e;
    return new SyncError('STORE_IO', `The sync queue could not ${what}: ${describePgError(e)}.`, { cause: e });
  }

  setPolicy(p: Partial<QueuePolicy>): void {
    this.policy = { ...this.policy, ...p };
  }

  // ------------------------------------------------------------------ wake-ups

  private async listen(): Promise<void> {
    const c = new Client(poolConfig(this.opts));
    const lost = () => {
      if (this.listener !== c) return;
      this.listener = undefined;
      c.end().catch(() => undefined);
      this.relisten();
    };
    c.on('error', lost);
    c.on('end', lost);
    c.on('notification', (n) => {
      if (n.payload !== this.instance) this.changed();
    });
    await c.connect();
    await c.query(`LISTEN ${PG_QUEUE_CHANNEL}`);
    if (this.closed) {
      await c.end().catch(() => undefined);
      return;
    }
    this.listener = c;
  }

  private relisten(): void {
    if (this.closed || this.listenRetry) return;
    this.listenRetry = setTimeout(() => {
      this.listenRetry = undefined;
      if (this.closed) return;
      this.listen().then(
        // Notifications sent while we were away are lost: look again.
        () => this.changed(),
        () => this.relisten(),
      );
    }, 500);
    this.listenRetry.unref();
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

  onChange(l: () => void): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  private notify(c: PoolClient): Promise<unknown> {
    return c.query('SELECT pg_notify($1, $2)', [PG_QUEUE_CHANNEL, this.instance]);
  }

  // ------------------------------------------------------------------ calls

  /** Runs one call in a transaction; the error an operator reads if it fails; counted for flush(). */
  private async tx<R>(what: string, fn: (c: PoolClient) => Promise<R>): Promise<R> {
    if (this.closed) throw new SyncError('STORE_IO', 'The sync queue is closed (the flows are being stopped); the change was not recorded.');
    const p = inTransaction(this.pool, fn).catch((e: unknown) => {
      throw PgQueue.error(e, what);
    });
    this.inflight.add(p);
    try {
      return await p;
    } finally {
      this.inflight.delete(p);
    }
  }

  async enqueue(event: ReplayEvent, opts: EnqueueOptions = {}): Promise<{ job: Job; merged: boolean }> {
    const type = eventTypeOf(event.type);
    if (!type) throw new SyncError('BAD_INPUT', `Cannot queue an event of type "${String(event.type)}": Identity, Quote or Invoice.`);
    const ev: ReplayEvent = { ...event, type, id: String(event.id).trim().toLowerCase() };
    const r = await this.tx('queue the change', async (c) => {
      const out = await this.enqueueIn(c, ev, opts);
      await this.notify(c);
      return out;
    });
    this.changed();
    return r;
  }

  private async enqueueIn(c: PoolClient, ev: ReplayEvent, opts: EnqueueOptions): Promise<{ job: Job; merged: boolean }> {
    const key = jobKey(ev);
    // Two instances queueing one record at once: the second waits here and merges into the first's job.
    const locked = await c.query<{ now: string }>(`SELECT pg_advisory_xact_lock(hashtext($1)), ${DB_NOW} AS now`, [`siagh_sync:queue:${key}`]);
    const now = opts.now ?? Number(locked.rows[0].now);
    const w = await c.query<Row>(`SELECT ${COLS} FROM ${T} WHERE key = $1 AND lease_token IS NULL ORDER BY seq LIMIT 1 FOR UPDATE`, [key]);
    if (w.rows[0]) {
      // As in the file queue: an operator's replay does not wait out a backoff meant for an outage.
      const job = mergeWaiting(jobOf(w.rows[0]), ev, { data: opts.data, trigger: opts.trigger, now });
      await c.query(UPDATE_WAITING, [job.id, JSON.stringify(job.event), job.data ? JSON.stringify(job.data) : null, job.merged, job.notBefore]);
      return { job, merged: true };
    }
    const job: Job = { id: randomUUID(), key, event: ev, trigger: opts.trigger ?? 'webhook', state: 'waiting', attempts: 0, createdAt: now, notBefore: now, merged: 0 };
    if (opts.data) job.data = opts.data;
    if (opts.after) job.after = opts.after;
    await c.query(INSERT, params(job));
    return { job, merged: false };
  }

  async take(max: number, now?: number): Promise<Taken[]> {
    if (this.closed || max <= 0) return [];
    // Leases run out by the database's clock: a `now` given for the take itself (a test looking
    // ahead) neither ends other carriers' leases early nor lengthens this one.
    await this.sweepNow();
    const taken = await this.tx('take jobs', async (c) => {
      // Ready: not leased, due, the oldest of its record with no job of the record in flight, and
      // not waiting for a record that still has a job. Rows another taker holds are skipped.
      const r = await c.query<Row>(
        `SELECT ${COLS} FROM ${T} j
          WHERE j.lease_token IS NULL AND j.not_before <= coalesce($1::bigint, ${DB_NOW})
            AND NOT EXISTS (SELECT 1 FROM ${T} o WHERE o.key = j.key AND (o.seq < j.seq OR o.lease_token IS NOT NULL))
            AND (j.after_key IS NULL OR NOT EXISTS (SELECT 1 FROM ${T} d WHERE d.key = j.after_key))
          ORDER BY j.not_before, j.created_at, j.seq
          LIMIT $2
          FOR UPDATE OF j SKIP LOCKED`,
        [now ?? null, max],
      );
      if (!r.rows.length) return [];
      const out: Taken[] = r.rows.map((row) => ({ job: jobOf(row), token: randomUUID() }));
      await c.query(
        `UPDATE ${T} SET lease_token = t.token, lease_until = ${DB_NOW} + $3 FROM unnest($1::uuid[], $2::uuid[]) AS t(id, token) WHERE ${T}.id = t.id`,
        [out.map((t) => t.job.id), out.map((t) => t.token), this.policy.leaseMs],
      );
      // No NOTIFY: a take makes nothing ready for the other instances.
      return out;
    }).catch((e: unknown) => {
      // Another instance leased a job of the same record between our snapshot and our lock: the
      // database refused the second lease (one in flight per record). Nothing was taken; try later.
      if ((e as { cause?: { code?: string } }).cause?.code === '23505') return [] as Taken[];
      throw e;
    });
    const until = Date.now() + this.policy.leaseMs; // local, in memory: see holds()
    for (const t of taken) this.mine.set(t.job.id, { token: t.token, until });
    if (taken.length) this.changed();
    return taken;
  }

  async nextDueAt(): Promise<number | undefined> {
    const r = await this.pool.query<{ next: string | null }>(`SELECT min(not_before) AS next FROM ${T} WHERE lease_token IS NULL`).catch((e: unknown) => {
      throw PgQueue.error(e, 'read the queue');
    });
    return r.rows[0]?.next == null ? undefined : Number(r.rows[0].next);
  }

  holds(id: string, token: string): boolean {
    const m = this.mine.get(id);
    if (!m || m.token !== token) return false;
    if (m.until <= Date.now()) {
      this.mine.delete(id);
      return false;
    }
    return true;
  }

  /** By the database's clock: a `now` passed (the interface allows one) is not used here. */
  async renew(id: string, token: string, _now?: number): Promise<boolean> {
    const until = Date.now() + this.policy.leaseMs; // local, in memory: see holds()
    const r = await this.pool.query(`UPDATE ${T} SET lease_until = ${DB_NOW} + $3 WHERE id = $1 AND lease_token = $2`, [id, token, this.policy.leaseMs]).catch((e: unknown) => {
      throw PgQueue.error(e, 'renew a lease');
    });
    const ok = (r.rowCount ?? 0) > 0;
    if (ok) this.mine.set(id, { token, until });
    else if (this.mine.get(id)?.token === token) this.mine.delete(id);
    return ok;
  }

  async isLeased(id: string, token: string): Promise<boolean> {
    const r = await this.pool.query(`SELECT 1 FROM ${T} WHERE id = $1 AND lease_token = $2`, [id, token]).catch((e: unknown) => {
      throw PgQueue.error(e, 'read the queue');
    });
    return (r.rowCount ?? 0) > 0;
  }

  async complete(id: string, token: string): Promise<boolean> {
    const ok = await this.tx('record the job as done', async (c) => {
      const r = await c.query(`DELETE FROM ${T} WHERE id = $1 AND lease_token = $2`, [id, token]);
      if (!r.rowCount) return false;
      await this.notify(c);
      return true;
    });
    if (this.mine.get(id)?.token === token) this.mine.delete(id);
    if (ok) this.changed();
    return ok;
  }

  async fail(id: string, token: string, f: Failure, now?: number): Promise<FailResult> {
    const r = await this.tx('record the failure', async (c) => {
      const res = await this.failIn(c, id, token, f, now);
      if (res.outcome !== 'stale') await this.notify(c);
      return res;
    });
    if (this.mine.get(id)?.token === token) this.mine.delete(id);
    if (r.outcome !== 'stale') this.changed();
    return r;
  }

  private async failIn(c: PoolClient, id: string, token: string, f: Failure, at?: number): Promise<FailResult> {
    const cur = await c.query<Row & { now: string }>(`SELECT ${COLS}, ${DB_NOW} AS now FROM ${T} WHERE id = $1 FOR UPDATE`, [id]);
    const row = cur.rows[0];
    if (!row || row.lease_token !== token) return { outcome: 'stale', job: row ? jobOf(row) : ({ id } as Job), dependents: [] };
    const now = at ?? Number(row.now);
    const d = decideFailure(jobOf(row), f, this.policy, now, jobKey);
    if (d.outcome === 'dependency') {
      await c.query(UPDATE, params(d.job));
      await this.enqueueIn(c, f.dependency!, { trigger: 'dependency', now });
      return { outcome: 'dependency', job: d.job, dependents: [] };
    }
    if (d.outcome === 'retry') {
      await c.query(UPDATE, params(d.job));
      return { outcome: 'retry', job: d.job, at: d.at, dependents: [] };
    }
    // Dead: the job leaves; if it was its record's last, the jobs that waited for it die with it.
    await c.query(`DELETE FROM ${T} WHERE id = $1`, [id]);
    const dependents: Job[] = [];
    const left = await c.query(`SELECT 1 FROM ${T} WHERE key = $1 LIMIT 1`, [d.job.key]);
    if (!left.rowCount) {
      const gone = await c.query<Row>(`DELETE FROM ${T} WHERE after_key = $1 RETURNING ${COLS}`, [d.job.key]);
      const err = dependentError(d.job);
      for (const g of gone.rows.sort((a, b) => Number(a.created_at) - Number(b.created_at))) dependents.push({ ...jobOf(g), lastError: err });
    }
    return { outcome: 'dead', job: d.job, dependents };
  }

  /** Leases that ran out (on any instance): failed as transient, so the job is delivered again. */
  private sweepNow(): Promise<void> {
    if (this.closed || !this.sweeps) return Promise.resolve();
    // A sweep already running (the timer's) is waited for, so a take right after sees its outcome.
    if (!this.sweeping) this.sweeping = this.sweepOnce().finally(() => (this.sweeping = undefined));
    return this.sweeping;
  }

  /**
   * By the database's clock. A job that dies of it (its attempts used up) is kept for
   * `takeLeaseDeaths` by the instance whose sweep ended it, once its transaction has committed:
   * one instance reports it, once.
   */
  private async sweepOnce(): Promise<void> {
    let dead: FailResult[] = [];
    let changed = false;
    try {
      dead = await this.tx('look for leases that ran out', async (c) => {
        const r = await c.query<{ id: string; lease_token: string }>(`SELECT id, lease_token FROM ${T} WHERE lease_token IS NOT NULL AND lease_until <= ${DB_NOW} FOR UPDATE SKIP LOCKED`);
        const out: FailResult[] = [];
        for (const row of r.rows) {
          const res = await this.failIn(c, row.id, row.lease_token, LEASE_EXPIRED);
          if (res.outcome === 'dead') out.push(res);
        }
        if (r.rows.length) await this.notify(c);
        changed = r.rows.length > 0;
        return out;
      });
    } catch {
      // The database is away: the next sweep (or take) tries again.
    }
    for (const d of dead) this.deaths.add(d.job, d.dependents);
    if (changed) this.changed();
  }

  takeLeaseDeaths(): Job[] {
    return this.deaths.take();
  }

  async restore(jobs: Job[]): Promise<RestoreOutcome[]> {
    const out: RestoreOutcome[] = [];
    // One transaction per job, under its record's lock (as an enqueue): a running instance merges with it.
    for (const src of jobs) {
      out.push(
        await this.tx('restore a moved job', async (c) => {
          await c.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`siagh_sync:queue:${src.key}`]);
          const r = await c.query<Row>(`SELECT ${COLS} FROM ${T} WHERE key = $1 OR id = $2 ORDER BY seq FOR UPDATE`, [src.key, src.id]);
          const d = restoreDecision(src, r.rows.map((row) => ({ ...jobOf(row), active: row.lease_token !== null })));
          if (d.outcome === 'merged') {
            const j = d.into!;
            await c.query(UPDATE_WAITING, [j.id, JSON.stringify(j.event), j.data ? JSON.stringify(j.data) : null, j.merged, j.notBefore]);
          } else if (d.outcome === 'added') await c.query(INSERT, params(src));
          if (d.outcome !== 'same') await this.notify(c);
          return d.outcome;
        }),
      );
    }
    if (out.some((o) => o !== 'same')) this.changed();
    return out;
  }

  async remove(id: string): Promise<boolean> {
    const ok = await this.tx('remove the job', async (c) => {
      const r = await c.query(`DELETE FROM ${T} WHERE id = $1 AND lease_token IS NULL`, [id]);
      if (r.rowCount) await this.notify(c);
      return (r.rowCount ?? 0) > 0;
    });
    if (ok) this.changed();
    return ok;
  }

  async get(id: string): Promise<Job | undefined> {
    const r = await this.pool.query<Row>(`SELECT ${COLS} FROM ${T} WHERE id = $1`, [id]).catch((e: unknown) => {
      throw PgQueue.error(e, 'read the queue');
    });
    return r.rows[0] ? jobOf(r.rows[0]) : undefined;
  }

  async list(): Promise<Array<Job & { active: boolean; leaseExpired?: boolean }>> {
    const r = await this.pool.query<Row & { expired: boolean }>(`SELECT ${COLS}, lease_until <= ${DB_NOW} AS expired FROM ${T} ORDER BY created_at, seq`).catch((e: unknown) => {
      throw PgQueue.error(e, 'read the queue');
    });
    return r.rows.map((row) => ({ ...jobOf(row), active: row.lease_token !== null, ...(row.expired ? { leaseExpired: true } : {}) }));
  }

  async stats(now?: number): Promise<QueueStats> {
    const r = await this.pool
      .query<{ waiting: string; active: string; retrying: string; blocked: string; total: string; oldest: string | null; now: string }>(
        `SELECT count(*) FILTER (WHERE s = 'active') AS active, count(*) FILTER (WHERE s = 'blocked') AS blocked,
                count(*) FILTER (WHERE s = 'retrying') AS retrying, count(*) FILTER (WHERE s = 'waiting') AS waiting,
                count(*) AS total, min(created_at) AS oldest, coalesce($1::bigint, ${DB_NOW}) AS now
           FROM (SELECT created_at,
                        CASE WHEN lease_token IS NOT NULL THEN 'active'
                             WHEN after_key IS NOT NULL AND EXISTS (SELECT 1 FROM ${T} d WHERE d.key = j.after_key) THEN 'blocked'
                             WHEN state = 'retrying' THEN 'retrying'
                             ELSE 'waiting' END AS s
                   FROM ${T} j) x`,
        [now ?? null],
      )
      .catch((e: unknown) => {
        throw PgQueue.error(e, 'read the queue');
      });
    const s = r.rows[0];
    return {
      waiting: Number(s.waiting),
      active: Number(s.active),
      retrying: Number(s.retrying),
      blocked: Number(s.blocked),
      total: Number(s.total),
      oldestAgeMs: s.oldest == null ? 0 : Math.max(0, Number(s.now) - Number(s.oldest)),
    };
  }

  /** Every call started so far has committed (or failed). */
  async flush(): Promise<void> {
    while (this.inflight.size) await Promise.allSettled([...this.inflight]);
  }

  private stopTimers(): void {
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.sweepTimer = undefined;
    if (this.listenRetry) clearTimeout(this.listenRetry);
    this.listenRetry = undefined;
  }

  /**
   * One user is done with the queue; the last one closes it. The jobs this instance still has in
   * flight are given back (waiting again, no attempt counted), as the file queue does at a restart.
   */
  async release(): Promise<void> {
    if (this.registryKey !== undefined) {
      const reg = registry.get(this.registryKey);
      if (reg && reg.queue === this && --reg.refs > 0) return;
      if (reg?.queue === this) registry.delete(this.registryKey);
    }
    if (this.closed) return;
    await this.flush();
    this.closed = true;
    this.stopTimers();
    unregisterQueue(this);
    const held = [...this.mine.entries()];
    this.mine.clear();
    if (held.length) {
      await this.pool
        .query(`UPDATE ${T} SET lease_token = NULL, lease_until = NULL FROM unnest($1::uuid[], $2::uuid[]) AS t(id, token) WHERE ${T}.id = t.id AND ${T}.lease_token = t.token`, [held.map(([id]) => id), held.map(([, m]) => m.token)])
        .then((r) => (r.rowCount ? this.pool.query('SELECT pg_notify($1, $2)', [PG_QUEUE_CHANNEL, this.instance]) : undefined))
        .catch(() => undefined); // the database is away: the leases run out instead
    }
    const l = this.listener;
    this.listener = undefined;
    await l?.end().catch(() => undefined);
    await this.pool.end().catch(() => undefined);
  }
}
