/**
 * One suite, two backends: the sync queue's guarantees (lib/queue/queue-backend.ts) checked on the
 * file queue in a temp folder and on the PostgreSQL queue on a real server (testkit/postgres.ts).
 * Then what only a shared database has: several instances taking at once, wake-ups across
 * instances, a server restart in the middle of the work, and a wrong password.
 */
import assert from 'node:assert/strict';
import { PgServer } from '../../../testkit/postgres';
import type { QueueBackend } from '../../../lib/queue/queue-backend';
import { PgQueue } from '../../../lib/queue/pg-queue';
import { Job, QueuePolicy, SyncQueue, Taken } from '../../../lib/queue/sync-queue';
import { isTransientPgError } from '../../../lib/pg/db';
import { Pool } from 'pg';
import { guid, makeTempDir, removeDir } from '../../fixtures/store-helpers';

const ident = (n: number, event = 'Update') => ({ type: 'Identity' as const, id: guid(n), event });
const quote = (n: number, event = 'Insert') => ({ type: 'Quote' as const, id: guid(n, 'bbbbbbbb'), event });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface OpenOptions {
  policy?: Partial<QueuePolicy>;
  sweepMs?: number;
}

/** A backend under test: a fresh, empty store per test; `open` may be called again after `release` (a restart). */
interface Harness {
  name: string;
  before?(): Promise<void>;
  after?(): Promise<void>;
  fresh(): Promise<void>;
  open(o?: OpenOptions): Promise<QueueBackend>;
  cleanup(): Promise<void>;
}

function conformance(h: Harness): void {
  describe(`sync queue conformance: ${h.name}`, function () {
    this.timeout(60_000);
    const opened: QueueBackend[] = [];
    const open = async (o?: OpenOptions) => {
      const q = await h.open(o);
      opened.push(q);
      return q;
    };
    const restart = async (q: QueueBackend, o?: OpenOptions) => {
      await q.release();
      opened.splice(opened.indexOf(q), 1);
      return open(o);
    };

    before(async () => h.before?.());
    after(async () => h.after?.());
    beforeEach(async () => h.fresh());
    afterEach(async () => {
      for (const q of opened.splice(0)) await q.release().catch(() => undefined);
      await h.cleanup();
    });

    it('merges an event into the waiting job of its record; one job per record in flight, the next waits', async () => {
      const q = await open();
      const a = await q.enqueue(ident(1, 'Insert'), { data: { extraCount: 1 } });
      const b = await q.enqueue(ident(1, 'Update'), { data: { normalised: ['x'] } });
      assert.equal(b.merged, true);
      assert.equal(b.job.id, a.job.id);
      assert.equal(b.job.event.event, 'Insert', 'Insert + Update is still an Insert');
      assert.deepEqual(b.job.data, { extraCount: 1, normalised: ['x'] });
      const [t] = await q.take(10);
      assert.equal(t.job.merged, 1);
      assert.deepEqual((await q.get(t.job.id))?.data, { extraCount: 1, normalised: ['x'] });
      const c = await q.enqueue(ident(1, 'Update'));
      assert.equal(c.merged, false, 'the job in flight does not absorb a later change');
      const d = await q.enqueue(ident(1, 'Delete'));
      assert.equal(d.merged, true, 'but the one waiting behind it does');
      assert.deepEqual(await q.take(10), [], 'the second job waits for the first');
      assert.equal(await q.complete(t.job.id, t.token), true);
      const [t2] = await q.take(10);
      assert.equal(t2.job.id, c.job.id);
      assert.equal(t2.job.event.event, 'Delete');
    });

    it('takes the oldest ready jobs first, at most `max`, never two of one record', async () => {
      const q = await open();
      const now = Date.now();
      for (let i = 1; i <= 5; i++) await q.enqueue(ident(i), { now: now + i });
      const first = await q.take(3, now + 10);
      assert.deepEqual(first.map((t) => t.job.event.id), [guid(1), guid(2), guid(3)]);
      const rest = await q.take(10, now + 10);
      assert.deepEqual(rest.map((t) => t.job.event.id), [guid(4), guid(5)]);
      assert.deepEqual(await q.take(10, now + 10), []);
      assert.deepEqual(await q.take(0), [], 'take(0) takes nothing');
    });

    it('a lease runs out without renewals: delivered again (one attempt), and the old token can neither complete nor fail it', async () => {
      const q = await open({ policy: { leaseMs: 300, baseMs: 10, maxMs: 10 }, sweepMs: 50 });
      await q.enqueue(ident(1));
      await q.enqueue(ident(2));
      const [held, lost] = await q.take(2);
      assert.equal(q.holds(held.job.id, held.token), true);
      assert.equal(q.holds(held.job.id, 'not-the-token'), false);
      const renew = setInterval(() => void q.renew(held.job.id, held.token).catch(() => undefined), 100);
      try {
        await sleep(900);
      } finally {
        clearInterval(renew);
      }
      assert.equal(await q.isLeased(held.job.id, held.token), true, 'a renewed lease is kept');
      assert.equal(await q.isLeased(lost.job.id, lost.token), false, 'an abandoned one expires');
      assert.equal(q.holds(lost.job.id, lost.token), false);
      const again = await q.take(2);
      assert.deepEqual(again.map((x) => x.job.id), [lost.job.id]);
      assert.equal(again[0].job.lastError?.code, 'LEASE_EXPIRED');
      assert.equal(again[0].job.attempts, 1);
      assert.notEqual(again[0].token, lost.token);
      assert.equal(await q.renew(lost.job.id, lost.token), false, 'the old carrier cannot renew it');
      assert.equal(await q.complete(lost.job.id, lost.token), false, 'nor complete it');
      assert.equal((await q.fail(lost.job.id, lost.token, { kind: 'permanent', code: 'X', message: 'late' })).outcome, 'stale', 'nor fail it');
      assert.equal(await q.complete(again[0].job.id, again[0].token), true, 'the new carrier can');
      assert.equal(await q.complete(held.job.id, held.token), true);
      assert.equal((await q.stats()).total, 0);
    });

    it('a lease that runs out until the attempts are used up: the job dies and is handed out once as a lease death, with the jobs that waited for it', async () => {
      const q = await open({ policy: { leaseMs: 200, maxAttempts: 1 }, sweepMs: 50 });
      await q.enqueue(quote(5));
      const [doc] = await q.take(5);
      await q.fail(doc.job.id, doc.token, { kind: 'dependency', code: 'CUSTOMER_NOT_MAPPED', message: 'sync customer first', dependency: ident(9) });
      const [cust] = await q.take(5);
      assert.equal(cust.job.key, `identity:${guid(9)}`);
      // Its carrier is gone (the process died): nobody renews, completes or fails it.
      let changes = 0;
      q.onChange(() => changes++);
      const deaths: Job[] = [];
      for (let i = 0; i < 200 && deaths.length < 2; i++) {
        await sleep(50);
        deaths.push(...q.takeLeaseDeaths());
      }
      assert.equal((await q.stats()).total, 0, 'the customer died of its lease, and the quote with it');
      assert.ok(changes > 0, 'the listeners were told');
      assert.deepEqual(deaths.map((d) => d.key), [`identity:${guid(9)}`, `quote:${guid(5, 'bbbbbbbb')}`]);
      assert.equal(deaths[0].id, cust.job.id);
      assert.equal(deaths[0].attempts, 1);
      assert.equal(deaths[0].lastError?.code, 'LEASE_EXPIRED');
      assert.equal(deaths[1].lastError?.code, 'LEASE_EXPIRED');
      assert.match(deaths[1].lastError!.message, new RegExp(`Its customer \\(${guid(9)}\\) could not be synced`));
      assert.deepEqual(q.takeLeaseDeaths(), [], 'each handed out once');

      // A death its carrier settles (fail) is not a lease death: the carrier reports it.
      await q.enqueue(ident(1));
      const [t] = await q.take(1);
      assert.equal((await q.fail(t.job.id, t.token, { kind: 'permanent', code: 'CRM_NOT_FOUND', message: 'gone' })).outcome, 'dead');
      assert.deepEqual(q.takeLeaseDeaths(), []);
    });

    it('restore (the store transfer): adds a job as it was, merges into a waiting job of its record as enqueue does, and a second restore changes nothing', async () => {
      const q = await open();
      const now = Date.now();
      const moved = [
        { id: '0f0e0d0c-0b0a-4909-8807-060504030201', key: `identity:${guid(1)}`, event: { ...ident(1, 'Insert'), subtype: 'حقیقی' }, trigger: 'poll', state: 'retrying' as const, attempts: 2, createdAt: now - 60_000, notBefore: now + 30_000, merged: 3, lastError: { code: 'HTTP_5XX', message: 'down' }, data: { extraCount: 1 } },
        { id: '1f0e0d0c-0b0a-4909-8807-060504030201', key: `quote:${guid(2, 'bbbbbbbb')}`, event: quote(2), trigger: 'webhook', state: 'waiting' as const, attempts: 0, createdAt: now - 50_000, notBefore: now - 50_000, merged: 0, after: `identity:${guid(1)}`, dependencyWaits: 1 },
        { id: '2f0e0d0c-0b0a-4909-8807-060504030201', key: `identity:${guid(3)}`, event: ident(3, 'Delete'), trigger: 'webhook', state: 'waiting' as const, attempts: 0, createdAt: now - 40_000, notBefore: now - 40_000, merged: 0, data: { normalised: ['x'] } },
      ];
      const here = await q.enqueue(ident(3, 'Update'), { data: { extraCount: 2 } });
      assert.deepEqual(await q.restore(moved), ['added', 'added', 'merged']);
      const jobs = await q.list();
      const strip = (j: object) => JSON.parse(JSON.stringify({ ...j, active: undefined })) as unknown;
      assert.deepEqual(strip(jobs.find((j) => j.id === moved[0].id)!), strip(moved[0]), 'field for field');
      assert.deepEqual(strip(jobs.find((j) => j.id === moved[1].id)!), strip(moved[1]));
      const merged = jobs.find((j) => j.key === `identity:${guid(3)}`)!;
      assert.equal(merged.id, here.job.id, 'merged into the waiting job');
      assert.equal(merged.event.event, 'Delete');
      assert.deepEqual(merged.data, { extraCount: 2, normalised: ['x'] });
      assert.equal(jobs.length, 3);
      assert.deepEqual(await q.restore(moved), ['same', 'same', 'same'], 'a second run adds nothing');
      assert.equal((await q.list()).length, 3);
      // The moved jobs behave as before: the quote waits for its customer, the customer waits out its backoff.
      assert.equal((await q.stats(now)).blocked, 1);
      assert.deepEqual((await q.take(10, now + 1000)).map((t) => t.job.key), [`identity:${guid(3)}`]);
      assert.deepEqual((await q.take(10, now + 30_000)).map((t) => t.job.key), [`identity:${guid(1)}`]);
    });

    it('retries a transient failure with backoff and attempt counts, honours Retry-After in full, and gives up after the attempts', async () => {
      const q = await open({ policy: { maxAttempts: 3, baseMs: 1000, maxMs: 4000 } });
      await q.enqueue(ident(1));
      let [t] = await q.take(1);
      const now = Date.now();
      const r1 = await q.fail(t.job.id, t.token, { kind: 'transient', code: 'HTTP_5XX', message: 'down' }, now);
      assert.equal(r1.outcome, 'retry');
      assert.equal(r1.job.attempts, 1);
      assert.equal(r1.job.state, 'retrying');
      assert.ok(r1.at! >= now && r1.at! <= now + 1000, `first backoff within [0, base]: ${r1.at! - now}`);
      assert.equal(await q.nextDueAt(), r1.at);
      assert.equal((await q.stats(now)).retrying, 1);
      if (r1.at! > now) assert.deepEqual(await q.take(1, r1.at! - 1), [], 'not before its time');
      [t] = await q.take(1, r1.at!);
      assert.equal(t.job.attempts, 1);
      assert.deepEqual(t.job.lastError, { code: 'HTTP_5XX', message: 'down' });
      const r2 = await q.fail(t.job.id, t.token, { kind: 'transient', code: 'RATE_LIMITED', message: '429', retryAfterMs: 90_000 }, now);
      assert.equal(r2.outcome, 'retry');
      assert.ok(r2.at! >= now + 90_000, 'Retry-After: 90 is waited out in full');
      [t] = await q.take(1, r2.at!);
      const r3 = await q.fail(t.job.id, t.token, { kind: 'transient', code: 'HTTP_5XX', message: 'still down' }, now);
      assert.equal(r3.outcome, 'dead');
      assert.equal(r3.job.attempts, 3);
      assert.equal((await q.stats()).total, 0);
    });

    it('a transient failure of a job older than the policy\'s age limit ends it', async () => {
      const q = await open({ policy: { maxAttempts: 10, maxAgeMs: 60_000 } });
      const now = Date.now();
      await q.enqueue(ident(1), { now: now - 61_000 });
      const [t] = await q.take(1, now);
      const r = await q.fail(t.job.id, t.token, { kind: 'transient', code: 'HTTP_5XX', message: 'down' }, now);
      assert.equal(r.outcome, 'dead');
      assert.equal(r.job.attempts, 1);
      assert.equal(await q.get(t.job.id), undefined);
    });

    it('ends a permanent failure at once; retries an ambiguous create once, marked for a check; never a pre-invoice', async () => {
      const q = await open({ policy: { ambiguousDelayMs: 30_000 } });
      await q.enqueue(ident(1));
      await q.enqueue(ident(2));
      const [a, b] = await q.take(2);
      assert.equal((await q.fail(a.job.id, a.token, { kind: 'permanent', code: 'CRM_NOT_FOUND', message: 'gone' })).outcome, 'dead');
      const now = Date.now();
      const r = await q.fail(b.job.id, b.token, { kind: 'ambiguous', code: 'AMBIGUOUS_CREATE', message: 'timeout on create' }, now);
      assert.equal(r.outcome, 'retry');
      assert.ok(r.at! >= now + 30_000);
      assert.equal(r.job.data?.recheck, true);
      const [again] = await q.take(1, r.at!);
      assert.equal(again.job.data?.recheck, true, 'the mark is kept with the job');
      assert.equal((await q.fail(again.job.id, again.token, { kind: 'ambiguous', code: 'AMBIGUOUS_CREATE', message: 'again' }, now)).outcome, 'dead', 'only one checked re-send');
      await q.enqueue(quote(3));
      const [doc] = await q.take(1);
      assert.equal((await q.fail(doc.job.id, doc.token, { kind: 'ambiguous', code: 'AMBIGUOUS_CREATE', message: 'pre-invoice timeout' })).outcome, 'dead');
    });

    it('queues the customer first for a quote whose customer has no mapping; the quote dies with it', async () => {
      const q = await open({ policy: { maxAttempts: 1 } });
      await q.enqueue(quote(5));
      let [t] = await q.take(5);
      const r = await q.fail(t.job.id, t.token, { kind: 'dependency', code: 'CUSTOMER_NOT_MAPPED', message: 'sync customer first', dependency: ident(9) });
      assert.equal(r.outcome, 'dependency');
      assert.equal(r.job.attempts, 0, 'waiting for a customer is not a failed attempt');
      assert.equal(r.job.after, `identity:${guid(9)}`);
      const st = await q.stats();
      assert.deepEqual([st.blocked, st.waiting, st.total], [1, 1, 2]);
      const ready = await q.take(5);
      assert.deepEqual(ready.map((x) => [x.job.key, x.job.trigger]), [[`identity:${guid(9)}`, 'dependency']], 'only the customer runs');
      await q.complete(ready[0].job.id, ready[0].token);
      [t] = await q.take(5);
      assert.equal(t.job.key, `quote:${guid(5, 'bbbbbbbb')}`, 'then the quote');
      const r2 = await q.fail(t.job.id, t.token, { kind: 'dependency', code: 'CUSTOMER_NOT_MAPPED', message: 'still', dependency: ident(9) });
      assert.equal(r2.outcome, 'dead', 'a second CUSTOMER_NOT_MAPPED is not waited out again');

      await q.enqueue(quote(6));
      await q.enqueue(quote(7));
      for (const x of await q.take(5)) await q.fail(x.job.id, x.token, { kind: 'dependency', code: 'CUSTOMER_NOT_MAPPED', message: 'x', dependency: ident(10) });
      const [cust] = await q.take(5);
      assert.equal(cust.job.key, `identity:${guid(10)}`);
      const dead = await q.fail(cust.job.id, cust.token, { kind: 'permanent', code: 'SIAGH_FORM_ERROR', message: 'bad mobile' });
      assert.equal(dead.outcome, 'dead');
      assert.deepEqual(dead.dependents.map((d) => d.key).sort(), [`quote:${guid(6, 'bbbbbbbb')}`, `quote:${guid(7, 'bbbbbbbb')}`]);
      assert.match(dead.dependents[0].lastError!.message, /bad mobile/);
      assert.equal((await q.stats()).total, 0);
    });

    it('stats, nextDueAt, get, list and remove say what the queue holds', async () => {
      const q = await open({ policy: { baseMs: 60_000, maxMs: 60_000 } });
      const now = Date.now();
      assert.equal(await q.nextDueAt(), undefined);
      assert.deepEqual(await q.stats(now), { waiting: 0, active: 0, retrying: 0, blocked: 0, total: 0, oldestAgeMs: 0 });
      await q.enqueue(ident(1), { now: now - 5000 });
      await q.enqueue(ident(2), { now: now - 3000 });
      const c = await q.enqueue(ident(3), { now: now - 1000, trigger: 'poll' });
      const [t1, t2] = await q.take(2, now);
      assert.equal(await q.nextDueAt(), now - 1000, 'the job not in flight is due');
      const r = await q.fail(t2.job.id, t2.token, { kind: 'transient', code: 'HTTP_5XX', message: 'x' }, now);
      assert.deepEqual(await q.stats(now), { waiting: 1, active: 1, retrying: 1, blocked: 0, total: 3, oldestAgeMs: 5000 });
      assert.equal(await q.nextDueAt(), now - 1000);
      assert.equal((await q.get(c.job.id))?.trigger, 'poll');
      assert.equal(await q.get('00000000-0000-4000-8000-000000000000'), undefined);
      const list = await q.list();
      assert.deepEqual(list.map((j) => [j.event.id, j.active]), [[guid(1), true], [guid(2), false], [guid(3), false]]);
      assert.equal(await q.remove(t1.job.id), false, 'a job in flight is not removed');
      assert.equal(await q.remove(c.job.id), true);
      assert.equal(await q.nextDueAt(), r.at);
      assert.equal((await q.stats(now)).total, 2);
    });

    it('tells its listeners about every change', async () => {
      const q = await open();
      let calls = 0;
      const off = q.onChange(() => calls++);
      await q.enqueue(ident(1));
      const [t] = await q.take(1);
      await q.complete(t.job.id, t.token);
      assert.ok(calls >= 3, `enqueue, take and complete each told (${calls})`);
      off();
      const before = calls;
      await q.enqueue(ident(2));
      await sleep(100);
      assert.equal(calls, before, 'a removed listener hears nothing');
    });

    it('a reopen (a restart) keeps every job, its attempts and data; jobs in flight are waiting again', async () => {
      let q = await open({ policy: { baseMs: 10, maxMs: 10 } });
      await q.enqueue(ident(1, 'Insert'), { data: { linkDecision: { decision: 'link' } } });
      await q.enqueue(ident(2));
      await q.enqueue(quote(3), { trigger: 'poll' });
      const [t1, t2] = await q.take(2);
      await q.fail(t2.job.id, t2.token, { kind: 'transient', code: 'HTTP_5XX', message: 'down' });
      assert.equal(t1.job.event.id, guid(1));
      const before = await q.list();
      q = await restart(q);
      const after = await q.list();
      assert.equal(after.length, 3);
      assert.ok(after.every((j) => !j.active), 'nothing is in flight after a restart');
      assert.deepEqual(
        after.map(({ active: _a, ...j }) => j),
        before.map(({ active: _a, ...j }) => j),
        'the same jobs, field for field',
      );
      assert.equal(await q.complete(t1.job.id, t1.token), false, 'a lease from before the restart ends nothing');
      const again = await q.take(10, Date.now() + 1000);
      assert.deepEqual(again.map((t) => t.job.event.id).sort(), [guid(1), guid(2), guid(3, 'bbbbbbbb')].sort());
    });
  });
}

// ---------------------------------------------------------------------------------------- file

let dir = '';
conformance({
  name: 'file (a data folder)',
  async fresh() {
    dir = makeTempDir();
  },
  open: (o = {}) => SyncQueue.open(dir, o),
  async cleanup() {
    removeDir(dir);
  },
});

// ---------------------------------------------------------------------------------- PostgreSQL

let server: PgServer;
let url = '';
conformance({
  name: 'PostgreSQL (a real server)',
  async before() {
    server = await PgServer.start();
  },
  async after() {
    await server?.close();
  },
  async fresh() {
    url = await server.database();
  },
  open: (o = {}) => PgQueue.connect({ connectionString: url }, o),
  async cleanup() {},
});

describe('sync queue on PostgreSQL: several instances, one database', function () {
  this.timeout(120_000);
  let pg: PgServer;
  const queues: PgQueue[] = [];
  const connect = async (u: string, o: { policy?: Partial<QueuePolicy>; sweepMs?: number } = {}) => {
    const q = await PgQueue.connect({ connectionString: u }, o);
    queues.push(q);
    return q;
  };
  before(async () => {
    pg = await PgServer.start();
  });
  afterEach(async () => {
    for (const q of queues.splice(0)) await q.release().catch(() => undefined);
  });
  after(async () => {
    await pg?.close();
  });

  it('three instances enqueueing and taking a burst at once: each job taken once, never two of one record in flight', async () => {
    const u = await pg.database();
    const qs = [await connect(u), await connect(u), await connect(u)];
    // 300 events for 120 records, sent to the three instances in turn, all at once.
    const events = Array.from({ length: 300 }, (_, i) => ident(i % 120, i < 120 ? 'Insert' : 'Update'));
    const results = await Promise.all(events.map((ev, i) => qs[i % 3].enqueue(ev)));
    const jobs = new Set(results.map((r) => r.job.id));
    assert.equal(jobs.size, 120, 'the events of one record merged into one job across instances');
    assert.equal((await qs[0].stats()).total, 120);

    const takenBy = new Map<string, number>();
    const inFlight = new Set<string>();
    let overlap = 0;
    await Promise.all(
      qs.flatMap((q, n) =>
        [0, 1].map(async () => {
          for (;;) {
            const batch: Taken[] = await q.take(7);
            if (!batch.length) {
              if ((await q.stats()).total === 0) return;
              await sleep(5);
              continue;
            }
            for (const t of batch) {
              if (inFlight.has(t.job.key)) overlap++;
              inFlight.add(t.job.key);
              takenBy.set(t.job.id, (takenBy.get(t.job.id) ?? 0) + 1);
            }
            await sleep(1);
            for (const t of batch) {
              inFlight.delete(t.job.key);
              assert.equal(await q.complete(t.job.id, t.token), true, `instance ${n} completes what it took`);
            }
          }
        }),
      ),
    );
    assert.equal(overlap, 0, 'never two jobs of one record in flight');
    assert.equal(takenBy.size, 120);
    assert.ok([...takenBy.values()].every((c) => c === 1), 'every job taken exactly once');
  });

  it('an enqueue on one instance wakes the takers on the others (LISTEN/NOTIFY)', async () => {
    const u = await pg.database();
    const [a, b] = [await connect(u), await connect(u)];
    const woken = new Promise<void>((resolve) => b.onChange(resolve));
    await a.enqueue(ident(1));
    await Promise.race([woken, sleep(5000).then(() => assert.fail('instance b was not told'))]);
    const [t] = await b.take(1);
    assert.equal(t.job.event.id, guid(1));
  });

  it('a lease held by an instance that died runs out and another instance delivers the job', async () => {
    const u = await pg.database();
    const dying = await connect(u, { policy: { leaseMs: 300 } });
    const other = await connect(u, { policy: { leaseMs: 300, baseMs: 10, maxMs: 10 }, sweepMs: 50 });
    await dying.enqueue(ident(1));
    const [t] = await dying.take(1);
    // The process is gone without giving anything back: its connections just end.
    await (dying as unknown as { pool: { end(): Promise<void> } }).pool.end();
    assert.deepEqual(await other.take(1), [], 'in flight elsewhere');
    await sleep(500);
    const [again] = await other.take(1);
    assert.equal(again.job.id, t.job.id);
    assert.equal(again.job.lastError?.code, 'LEASE_EXPIRED');
  });

  it('a lease death is reported by the one instance whose sweep ended it', async () => {
    const u = await pg.database();
    const dying = await connect(u, { policy: { leaseMs: 200, maxAttempts: 1 }, sweepMs: 50 });
    const others = [await connect(u, { policy: { leaseMs: 200, maxAttempts: 1 }, sweepMs: 50 }), await connect(u, { policy: { leaseMs: 200, maxAttempts: 1 }, sweepMs: 50 })];
    await dying.enqueue(ident(1));
    const [t] = await dying.take(1);
    await (dying as unknown as { pool: { end(): Promise<void> } }).pool.end();
    const reported: Job[] = [];
    for (let i = 0; i < 200 && !reported.length; i++) {
      await sleep(50);
      reported.push(...others.flatMap((q) => q.takeLeaseDeaths()));
    }
    await sleep(300); // more sweeps on both: neither reports it again
    reported.push(...others.flatMap((q) => q.takeLeaseDeaths()));
    assert.deepEqual(reported.map((d) => [d.id, d.lastError?.code]), [[t.job.id, 'LEASE_EXPIRED']], 'once, across the instances');
  });

  it("instances whose callers' clocks differ by minutes do not steal each other's leases: leases go by the database's clock", async () => {
    const u = await pg.database();
    const skew = 5 * 60_000;
    const slowClock = () => Date.now() - skew;
    const fastClock = () => Date.now() + skew;
    const slow = await connect(u, { policy: { leaseMs: 60_000 }, sweepMs: 50 });
    const fast = await connect(u, { policy: { leaseMs: 60_000 }, sweepMs: 50 });
    const p = new Pool({ connectionString: u });
    try {
      const leaseLeft = async (id: string) => Number((await p.query<{ left: string }>(`SELECT lease_until - (extract(epoch from now()) * 1000)::bigint AS left FROM siagh_sync_queue WHERE id = $1`, [id])).rows[0].left);
      await slow.enqueue(ident(1), { now: slowClock() });
      await fast.enqueue(ident(2), { now: fastClock() });
      const [s] = await slow.take(1, slowClock());
      assert.equal(s.job.event.id, guid(1));
      assert.equal(await slow.renew(s.job.id, s.token, slowClock()), true);
      const [f] = await fast.take(1, fastClock());
      assert.equal(f.job.event.id, guid(2));
      for (const id of [s.job.id, f.job.id]) {
        const left = await leaseLeft(id);
        assert.ok(left > 0 && left <= 60_000, `a lease of leaseMs by the database's clock, whatever the caller's clock says: ${left}`);
      }
      await sleep(300); // several sweeps on both instances
      assert.deepEqual(await fast.take(5, fastClock()), [], 'the fast instance finds nothing to take');
      assert.deepEqual(await slow.take(5, slowClock()), []);
      assert.equal(await slow.isLeased(s.job.id, s.token), true, "the slow instance's lease was not ended by the fast one");
      assert.equal(await fast.isLeased(f.job.id, f.token), true);
      assert.equal(await slow.complete(s.job.id, s.token), true);
      assert.equal(await fast.complete(f.job.id, f.token), true);
      assert.equal((await slow.stats()).total, 0);
    } finally {
      await p.end();
    }
  });

  it('the server restarting mid-run: calls fail as transient, the work resumes, no job is lost', async () => {
    const u = await pg.database();
    const qs = [await connect(u, { sweepMs: 100 }), await connect(u, { sweepMs: 100 }), await connect(u, { sweepMs: 100 })];
    const errors: unknown[] = [];
    const retrying = async <R>(fn: () => Promise<R>): Promise<R> => {
      for (;;) {
        try {
          return await fn();
        } catch (e) {
          errors.push(e);
          assert.ok(isTransientPgError((e as { cause?: unknown }).cause), `a transient error: ${String(e)}`);
          assert.match(String((e as Error).message), /sync queue could not/);
          await sleep(50);
        }
      }
    };
    const accepted = new Set<string>();
    const delivered = new Set<string>();
    let stop = false;
    const producers = qs.map(async (q, n) => {
      for (let i = 0; i < 100; i++) {
        const ev = ident(n * 1000 + i);
        await retrying(() => q.enqueue(ev));
        accepted.add(`identity:${ev.id}`);
        await sleep(2);
      }
    });
    const takers = qs.map(async (q) => {
      while (!stop) {
        const batch = await retrying(() => q.take(5));
        for (const t of batch) {
          delivered.add(t.job.key);
          await retrying(() => q.complete(t.job.id, t.token));
        }
        if (!batch.length) await sleep(10);
      }
    });
    await sleep(150);
    // Down for a moment rather than restart(): a restart done within one blocking call can land
    // while every connection is idle and be healed unseen; while it is down, the takers' next
    // calls (every 10 ms) meet it.
    pg.stop('fast');
    await sleep(300);
    pg.start();
    await Promise.all(producers);
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline && (await retrying(() => qs[0].stats())).total > 0) await sleep(100);
    stop = true;
    await Promise.all(takers);
    assert.ok(errors.length > 0, 'the restart was felt');
    assert.equal(accepted.size, 300);
    assert.deepEqual([...accepted].filter((k) => !delivered.has(k)), [], 'every accepted change was delivered');
    assert.equal((await qs[1].stats()).total, 0);
    // The instances listen again after the restart: an enqueue on one still wakes another.
    const woken = new Promise<void>((resolve) => qs[1].onChange(resolve));
    await retrying(() => qs[0].enqueue(ident(9999)));
    await Promise.race([woken, sleep(5000).then(() => assert.fail('no wake-up after the restart'))]);
  });

  it('a wrong password or an unusable connection string is a clear error', async () => {
    const u = await pg.database();
    await assert.rejects(PgQueue.connect({ connectionString: u, password: 'wrong' }), (e: Error & { code?: string }) => {
      assert.equal(e.code, 'STORE_IO');
      assert.match(e.message, /refused the login/);
      assert.ok(!e.message.includes(pg.appPassword));
      return true;
    });
    await assert.rejects(PgQueue.connect({ connectionString: 'mysql://x@h/db' }), /starts with postgres:\/\//);
  });
});
