import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SyncQueue } from '../../../lib/queue/sync-queue';
import { guid, makeTempDir, removeDir } from '../../fixtures/store-helpers';

const ident = (n: number, event = 'Update') => ({ type: 'Identity' as const, id: guid(n), event });
const quote = (n: number, event = 'Insert') => ({ type: 'Quote' as const, id: guid(n, 'bbbbbbbb'), event });

describe('sync queue (file backend)', () => {
  let dir: string;
  let q: SyncQueue | undefined;
  beforeEach(() => {
    dir = makeTempDir();
  });
  afterEach(async () => {
    await q?.release();
    q = undefined;
    removeDir(dir);
  });

  it('keeps every enqueued job across a reopen (journal, then snapshot) and delivers nothing twice at once', async () => {
    q = await SyncQueue.open(dir, { policy: { leaseMs: 60_000 } });
    await q.enqueue(ident(1, 'Insert'));
    await q.enqueue(ident(2));
    await q.enqueue(quote(3));
    const journal = fs.readFileSync(path.join(dir, 'queue.jsonl'), 'utf8').trim().split('\n');
    assert.equal(journal.length, 3, 'one durable journal line per change');
    const taken = await q.take(2);
    assert.equal(taken.length, 2);
    await q.release();
    q = await SyncQueue.open(dir);
    const jobs = await q.list();
    assert.equal(jobs.length, 3, 'jobs in flight at the stop are waiting again');
    assert.ok(jobs.every((j) => !j.active));
    assert.deepEqual(jobs.map((j) => j.event.id), [guid(1), guid(2), guid(3, 'bbbbbbbb')]);
    assert.equal(fs.readFileSync(path.join(dir, 'queue.jsonl'), 'utf8'), '', 'the journal was folded into queue.json');
  });

  it('merges an event into the waiting job of its record; one job per record in flight, the next waits', async () => {
    q = await SyncQueue.open(dir);
    const a = await q.enqueue(ident(1, 'Insert'));
    const b = await q.enqueue(ident(1, 'Update'));
    assert.equal(b.merged, true);
    assert.equal(b.job.id, a.job.id);
    assert.equal(b.job.event.event, 'Insert', 'Insert + Update is still an Insert');
    const [t] = await q.take(10);
    assert.equal(t.job.merged, 1);
    const c = await q.enqueue(ident(1, 'Update'));
    assert.equal(c.merged, false, 'the job in flight does not absorb a later change');
    assert.deepEqual(await q.take(10), [], 'the second job waits for the first');
    assert.equal(await q.complete(t.job.id, t.token), true);
    const [t2] = await q.take(10);
    assert.equal(t2.job.id, c.job.id);
  });

  it('retries a transient failure after a backoff, honours Retry-After in full, and gives up after the attempts', async () => {
    q = await SyncQueue.open(dir, { policy: { maxAttempts: 3, baseMs: 1000, maxMs: 4000 } });
    await q.enqueue(ident(1));
    let [t] = await q.take(1);
    const now = Date.now();
    const r1 = await q.fail(t.job.id, t.token, { kind: 'transient', code: 'HTTP_5XX', message: 'down' }, now);
    assert.equal(r1.outcome, 'retry');
    assert.ok(r1.at! >= now && r1.at! <= now + 1000, `first backoff within [0, base]: ${r1.at! - now}`);
    if (r1.at! > now) assert.deepEqual(await q.take(1, r1.at! - 1), [], 'not before its time');
    [t] = await q.take(1, r1.at!);
    const r2 = await q.fail(t.job.id, t.token, { kind: 'transient', code: 'RATE_LIMITED', message: '429', retryAfterMs: 90_000 }, now);
    assert.equal(r2.outcome, 'retry');
    assert.ok(r2.at! >= now + 90_000, 'Retry-After: 90 is waited out in full');
    [t] = await q.take(1, r2.at!);
    const r3 = await q.fail(t.job.id, t.token, { kind: 'transient', code: 'HTTP_5XX', message: 'still down' }, now);
    assert.equal(r3.outcome, 'dead');
    assert.equal(r3.job.attempts, 3);
    assert.equal((await q.stats()).total, 0);
  });

  it('ends a permanent failure at once; retries an ambiguous create once, marked for a check', async () => {
    q = await SyncQueue.open(dir, { policy: { ambiguousDelayMs: 30_000 } });
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
    assert.equal((await q.fail(again.job.id, again.token, { kind: 'ambiguous', code: 'AMBIGUOUS_CREATE', message: 'again' }, now)).outcome, 'dead', 'only one checked re-send');
    await q.enqueue(quote(3));
    const [doc] = await q.take(1);
    assert.equal((await q.fail(doc.job.id, doc.token, { kind: 'ambiguous', code: 'AMBIGUOUS_CREATE', message: 'pre-invoice timeout' })).outcome, 'dead', 'a pre-invoice cannot be looked up: never sent again by the queue');
  });

  it('queues the customer first for a quote whose customer has no mapping; the quote dies with it', async () => {
    q = await SyncQueue.open(dir, { policy: { maxAttempts: 1 } });
    await q.enqueue(quote(5));
    let [t] = await q.take(5);
    const r = await q.fail(t.job.id, t.token, { kind: 'dependency', code: 'CUSTOMER_NOT_MAPPED', message: 'sync customer first', dependency: ident(9) });
    assert.equal(r.outcome, 'dependency');
    assert.equal(r.job.attempts, 0, 'waiting for a customer is not a failed attempt');
    assert.equal((await q.stats()).blocked, 1);
    const ready = await q.take(5);
    assert.deepEqual(ready.map((x) => x.job.key), [`identity:${guid(9)}`], 'only the customer runs');
    await q.complete(ready[0].job.id, ready[0].token);
    [t] = await q.take(5);
    assert.equal(t.job.key, `quote:${guid(5, 'bbbbbbbb')}`, 'then the quote');
    // A second CUSTOMER_NOT_MAPPED is not waited out again: the quote ends in the failed list.
    const r2 = await q.fail(t.job.id, t.token, { kind: 'dependency', code: 'CUSTOMER_NOT_MAPPED', message: 'still', dependency: ident(9) });
    assert.equal(r2.outcome, 'dead');

    await q.enqueue(quote(6));
    [t] = await q.take(5);
    await q.fail(t.job.id, t.token, { kind: 'dependency', code: 'CUSTOMER_NOT_MAPPED', message: 'x', dependency: ident(10) });
    const [cust] = await q.take(5);
    const dead = await q.fail(cust.job.id, cust.token, { kind: 'permanent', code: 'SIAGH_FORM_ERROR', message: 'bad mobile' });
    assert.equal(dead.outcome, 'dead');
    assert.deepEqual(dead.dependents.map((d) => d.key), [`quote:${guid(6, 'bbbbbbbb')}`]);
    assert.match(dead.dependents[0].lastError!.message, /bad mobile/);
    assert.equal((await q.stats()).total, 0);
  });

  it('delivers a job again when its lease runs out, and keeps it while the lease is renewed', async () => {
    q = await SyncQueue.open(dir, { policy: { leaseMs: 300, baseMs: 10, maxMs: 10 }, sweepMs: 50 });
    await q.enqueue(ident(1));
    await q.enqueue(ident(2));
    const [held, lost] = await q.take(2);
    const renew = setInterval(() => void q!.renew(held.job.id, held.token), 100);
    try {
      await new Promise((r) => setTimeout(r, 800));
    } finally {
      clearInterval(renew);
    }
    assert.equal(await q.isLeased(held.job.id, held.token), true, 'a renewed lease is kept');
    assert.equal(await q.isLeased(lost.job.id, lost.token), false, 'an abandoned one expires');
    const again = await q.take(2);
    assert.deepEqual(again.map((x) => x.job.id), [lost.job.id]);
    assert.equal(again[0].job.lastError?.code, 'LEASE_EXPIRED');
    assert.equal(again[0].job.attempts, 1);
    assert.equal(await q.complete(lost.job.id, lost.token), false, 'the old carrier cannot end it any more');
  });

  it('ignores a torn last journal line (a crash while writing) but refuses a damaged middle line', async () => {
    q = await SyncQueue.open(dir);
    await q.enqueue(ident(1));
    await q.release();
    q = undefined;
    const snap = JSON.parse(fs.readFileSync(path.join(dir, 'queue.json'), 'utf8'));
    assert.equal(snap.jobs.length, 1);
    const line = JSON.stringify({ put: { ...snap.jobs[0], id: 'x2', key: `identity:${guid(2)}`, event: ident(2) } });
    fs.writeFileSync(path.join(dir, 'queue.jsonl'), line + '\n' + line.slice(0, 30));
    q = await SyncQueue.open(dir);
    assert.equal((await q.list()).length, 2);
    await q.release();
    q = undefined;
    fs.writeFileSync(path.join(dir, 'queue.jsonl'), '{"put": broken\n' + line + '\n');
    await assert.rejects(SyncQueue.open(dir), /Line 1 of the queue journal/);
  });
});
