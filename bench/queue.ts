/**
 * Benchmark part `queue`: the durable sync queue (lib/queue/sync-queue.ts) on its own, in this
 * process, in a temp folder. N jobs (one new CRM identity each, as webhooks bring them) are
 * enqueued with a bounded number of enqueues in flight (each resolves only once its journal line
 * is written and fdatasync'd: group commit); then taken (`take(64)` loops, several at once so the
 * same number of jobs is in flight) and completed, every `complete` awaited in parallel (again one
 * durable journal line each). So every job is made durable twice. Figures: jobs/s for the enqueue
 * phase, for the completion phase, and end to end (N / both phases); the fdatasync calls of the
 * journal, counted on the queue's file handle, show how far the group commit batches.
 *
 * With `backend: 'postgres'` the same run goes to the PostgreSQL queue (lib/queue/pg-queue.ts) on
 * a real throwaway server started for it (testkit/postgres.ts) with `durable: true` (fsync and
 * synchronous commit on, as deployed): every enqueue and completion is its own committed
 * transaction, every take one transaction (plus the lease sweep), over TCP on loopback.
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { QueueBackend } from '../lib/queue/queue-backend';
import { PgQueue } from '../lib/queue/pg-queue';
import { SyncQueue } from '../lib/queue/sync-queue';
import { PgServer } from '../testkit/postgres';
import { type Figure, fmtInt, fmtMs, round } from './common';

export interface QueueBenchOptions {
  /** Jobs. Default 20 000. */
  jobs?: number;
  /** Enqueues (and completions) in flight at once. Default 256. */
  inFlight?: number;
  /** Jobs per take(). Default 64. */
  takeBatch?: number;
  /** Default `file`. */
  backend?: 'file' | 'postgres';
  log?: (line: string) => void;
}

export interface QueueBenchResult {
  backend: 'file' | 'postgres';
  jobs: number;
  inFlight: number;
  takeBatch: number;
  enqueue: { ms: number; perSec: number; syncs: number };
  complete: { ms: number; perSec: number; syncs: number; takes: number; takeMs: number };
  endToEnd: { ms: number; perSec: number };
  left: number;
  met: boolean;
}

export const QUEUE_TARGET_PER_SEC = 2000;

export async function runQueueBench(opts: QueueBenchOptions = {}): Promise<QueueBenchResult> {
  const n = Math.max(1, Math.floor(opts.jobs ?? 20_000));
  const inFlight = Math.max(1, Math.floor(opts.inFlight ?? 256));
  const takeBatch = Math.max(1, Math.floor(opts.takeBatch ?? 64));
  const log = opts.log ?? ((l: string) => console.log(l));
  const backend = opts.backend ?? 'file';
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'siagh-bench-queue-'));
  let server: PgServer | undefined;
  let q: QueueBackend;
  let where = dir;
  try {
    if (backend === 'postgres') {
      server = await PgServer.start({ durable: true });
      const url = await server.database();
      where = `PostgreSQL ${server.host}:${server.port} (fsync on)`;
      q = await PgQueue.connect({ connectionString: url, maxConnections: 20 });
    } else {
      // The default journal size before a fold into queue.json, as deployed.
      q = await SyncQueue.open(dir);
    }
  } catch (e) {
    await server?.close();
    fs.rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  let syncs = 0;
  // Count the journal's fdatasync calls (one per group commit) on the queue's own file handle.
  const fh = backend === 'file' ? (q as unknown as { fh?: FileHandle }).fh : undefined;
  if (fh) {
    const orig = fh.datasync.bind(fh);
    fh.datasync = () => {
      syncs++;
      return orig();
    };
  }
  try {
    log(`  queue (${backend}): ${fmtInt(n)} jobs in ${where}; ${inFlight} enqueues in flight, then take(${takeBatch}) loops with ${inFlight} completions in flight (each awaited, each a durable journal line)`);
    // Enqueue.
    const ids = Array.from({ length: n }, () => randomUUID());
    let next = 0;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: Math.min(inFlight, n) }, async () => {
        while (next < n) {
          const id = ids[next++];
          await q.enqueue({ type: 'Identity', id, event: 'Insert' }, { trigger: 'webhook' });
        }
      }),
    );
    const enqMs = performance.now() - t0;
    const enqSyncs = syncs;
    const held = (await q.stats()).total;
    if (held !== n) throw new Error(`the queue holds ${held} jobs after ${n} enqueues`);
    const enqCommits = backend === 'file' ? `; ${fmtInt(enqSyncs)} fdatasyncs, ${round(n / Math.max(1, enqSyncs), 1)} jobs per commit` : '; one transaction each';
    log(`  enqueue:  ${fmtInt((n / enqMs) * 1000)} jobs/s (${fmtInt(n)} in ${fmtMs(enqMs)}${enqCommits})`);

    // Take and complete.
    let done = 0;
    let takes = 0;
    let takeMs = 0;
    const loops = Math.max(1, Math.round(inFlight / takeBatch));
    const t1 = performance.now();
    await Promise.all(
      Array.from({ length: loops }, async () => {
        for (;;) {
          const ta = performance.now();
          const batch = await q.take(takeBatch);
          takeMs += performance.now() - ta;
          takes++;
          if (!batch.length) {
            // Another loop may still hold leased jobs; nothing left to take means this loop is done.
            return;
          }
          const ok = await Promise.all(batch.map((t) => q.complete(t.job.id, t.token)));
          done += ok.filter(Boolean).length;
        }
      }),
    );
    const compMs = performance.now() - t1;
    const compSyncs = syncs - enqSyncs;
    const left = (await q.stats()).total;
    if (done !== n || left !== 0) throw new Error(`${done} of ${n} jobs completed, ${left} left in the queue`);
    const compCommits = backend === 'file' ? `${fmtInt(compSyncs)} fdatasyncs, ${round(n / Math.max(1, compSyncs), 1)} jobs per commit` : 'one transaction each';
    log(`  complete: ${fmtInt((n / compMs) * 1000)} jobs/s (${fmtInt(n)} in ${fmtMs(compMs)}; ${compCommits}; ${takes} take() calls, ${fmtMs(takeMs)} in take())`);
    const totalMs = enqMs + compMs;
    const perSec = Math.round((n / totalMs) * 1000);
    log(`  end to end: ${fmtInt(perSec)} jobs/s (${fmtMs(totalMs)})`);
    return {
      backend,
      jobs: n,
      inFlight,
      takeBatch,
      enqueue: { ms: Math.round(enqMs), perSec: Math.round((n / enqMs) * 1000), syncs: enqSyncs },
      complete: { ms: Math.round(compMs), perSec: Math.round((n / compMs) * 1000), syncs: compSyncs, takes, takeMs: Math.round(takeMs) },
      endToEnd: { ms: Math.round(totalMs), perSec },
      left,
      met: perSec >= QUEUE_TARGET_PER_SEC,
    };
  } finally {
    await q.release().catch(() => undefined);
    await server?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export function queueFigure(r: QueueBenchResult): Figure {
  return {
    part: '5',
    figure: `Sync queue, ${fmtInt(r.jobs)} jobs: durable enqueue + completion`,
    measured: `${fmtInt(r.endToEnd.perSec)} jobs/s end to end (enqueue ${fmtInt(r.enqueue.perSec)}/s, completion ${fmtInt(r.complete.perSec)}/s)`,
    comparison: '—',
    ratio: '—',
    target: `≥ ${fmtInt(QUEUE_TARGET_PER_SEC)} jobs/s end to end`,
    met: r.met,
    notes: [
      `${r.inFlight} in flight; each job durable twice (enqueue, complete), fdatasync'd group commit: ${fmtInt(r.enqueue.syncs)} + ${fmtInt(r.complete.syncs)} journal fdatasyncs for ${fmtInt(2 * r.jobs)} changes; ${r.complete.takes} take(${r.takeBatch}) calls took ${fmtMs(r.complete.takeMs)} of the completion phase`,
    ],
  };
}

/** The PostgreSQL queue's figure, beside the file queue's (when that part ran too). */
export function pgQueueFigure(r: QueueBenchResult, file?: QueueBenchResult): Figure {
  return {
    part: '5b',
    figure: `Sync queue on PostgreSQL, ${fmtInt(r.jobs)} jobs: durable enqueue + completion`,
    measured: `${fmtInt(r.endToEnd.perSec)} jobs/s end to end (enqueue ${fmtInt(r.enqueue.perSec)}/s, completion ${fmtInt(r.complete.perSec)}/s)`,
    comparison: file ? `file backend: ${fmtInt(file.endToEnd.perSec)} jobs/s` : '—',
    ratio: file ? `${round(r.endToEnd.perSec / Math.max(1, file.endToEnd.perSec), 2)}×` : '—',
    target: '—',
    met: undefined,
    notes: [
      `a real PostgreSQL on loopback with fsync and synchronous commit on; ${r.inFlight} in flight; every enqueue and completion its own committed transaction; ${r.complete.takes} take(${r.takeBatch}) calls (FOR UPDATE SKIP LOCKED) took ${fmtMs(r.complete.takeMs)} of the completion phase`,
    ],
  };
}
