/**
 * `npm run bench`: the benchmarks of issues 5 and 9, in one run, then one table of figures with
 * their comparison, ratio, target and whether the target is met. Always exits 0 when the run
 * itself completes (a missed target is a figure, not a failure); 1 only when a part crashed.
 *
 *   node --expose-gc dist/bench/run.js [--only=calls,import,webhook,store,queue,recovery,cluster] [--quick]
 *
 * Settings (argument or environment variable; defaults in brackets):
 *   --latency-ms        BENCH_LATENCY_MS        simulator latency L of the import (part 2) [20]
 *   --calls-latency-ms  BENCH_CALLS_LATENCY_MS  latency in part 1 [5]
 *   --identities        BENCH_IDENTITIES        CRM identities in part 1 [200]
 *   --events            BENCH_EVENTS            measured events in part 1 [400]
 *   --import-n          BENCH_IMPORT_N          contacts imported in part 2 [10000]
 *   --concurrency       BENCH_CONCURRENCY       import concurrency C in part 2 [8]
 *   --requests          BENCH_REQUESTS          measured requests per endpoint in part 3 [5000]
 *   --http-concurrency  BENCH_HTTP_CONCURRENCY  requests in flight in part 3 [16]
 *   --store-entries     BENCH_STORE_ENTRIES     mapping-store entries in part 4 [100000]
 *   --queue-jobs        BENCH_QUEUE_JOBS        jobs enqueued and completed in part 5 (queue) [20000]
 *   --queue-in-flight   BENCH_QUEUE_IN_FLIGHT   enqueues / completions in flight in part 5 [256]
 *   --recovery-jobs     BENCH_RECOVERY_JOBS     jobs waiting for Siagh in part 6 (recovery) [1000]
 *   --recovery-latency-ms BENCH_RECOVERY_LATENCY_MS  simulator latency L in part 6 [20]
 *   --cluster-events    BENCH_CLUSTER_EVENTS    events synced per instance count in part 7 (cluster) [1000]
 *   --cluster-latency-ms BENCH_CLUSTER_LATENCY_MS simulator latency L in part 7 [20]
 *   --cluster-instances BENCH_CLUSTER_INSTANCES largest instance count in part 7 (runs 1 … n) [3]
 *   --cluster-requests  BENCH_CLUSTER_REQUESTS  measured webhook / bare requests in part 7 [2000]
 *   --quick             BENCH_QUICK=1           small sizes for a quick look (figures not comparable)
 */
import os from 'node:os';
import { type Figure, argValue, numSetting, round, table } from './common';
import { clusterFigure, runClusterBench } from './cluster';
import { importFigure, runImportBench } from './import';
import { pgQueueFigure, QueueBenchResult, queueFigure, runQueueBench } from './queue';
import { recoveryFigure, runRecoveryBench } from './recovery';
import { runMappingStoreBench, type MappingStoreBenchResult } from './mapping-store';
import { runSyncCallsBench, syncCallsFigure } from './sync-calls';
import { runWebhookAckBench, webhookFigure } from './webhook-ack';

const PARTS = ['calls', 'import', 'webhook', 'store', 'queue', 'recovery', 'cluster'] as const;
type Part = (typeof PARTS)[number];

function storeFigure(r: MappingStoreBenchResult): Figure {
  return {
    part: '4',
    figure: `Mapping store, ${r.entries.toLocaleString('en')} entries: durable stores/s`,
    measured: `${r.sustained.perSec}/s sustained (${r.sustained.workers} workers), ${r.burst.perSec}/s burst`,
    comparison: `naive lowdb: ${r.naive.perSec}/s`,
    ratio: `${r.ratioSustained}× (burst ${r.ratioBurst}×)`,
    target: `≥ ${r.targets.perSec}/s sustained, event-loop stall ≤ ${r.targets.maxStallMs} ms (max ${r.sustained.maxLoopDelayMs} ms)`,
    met: r.targets.met,
    notes: [
      `load ${r.loadMs} ms, ${r.lookupsPerSec.toLocaleString('en')} lookups/s, file ${Math.round(r.fileBytes / 1048576)} MB, heap for the store ≈ ${r.heapForStoreMB} MB; sustained: ${r.sustained.writes} durable writes, ${r.sustained.compactions} compaction(s) beside them, event-loop stall p99 ${r.sustained.p99LoopDelayMs} ms, max ${r.sustained.maxLoopDelayMs} ms (histogram ${r.sustained.histMaxMs} ms)`,
      `stores/s ${r.targets.perSecMet ? 'MET' : 'NOT MET'}, stall ${r.targets.stallMet ? 'MET' : 'NOT MET'}; a compaction alone: ${r.compaction.ms} ms, longest stall ${r.compaction.maxLoopDelayMs} ms; burst of ${r.burst.stores}: longest stall ${r.burst.maxLoopDelayMs} ms`,
      `naive: ${r.naive.stores} stores in ${r.naive.ms} ms, one awaited lowdb write each (no fsync)`,
    ],
  };
}

async function main(): Promise<void> {
  const quick = argValue('quick') !== undefined || process.env.BENCH_QUICK === '1';
  const onlyRaw = argValue('only');
  const only = onlyRaw ? onlyRaw.split(',').map((s) => s.trim()).filter(Boolean) : [...PARTS];
  for (const p of only) if (!(PARTS as readonly string[]).includes(p)) throw new Error(`--only: unknown part "${p}" (use ${PARTS.join(', ')})`);
  const want = (p: Part) => only.includes(p);

  const latencyMs = numSetting('latency-ms', 'BENCH_LATENCY_MS', 20);
  const callsLatencyMs = numSetting('calls-latency-ms', 'BENCH_CALLS_LATENCY_MS', 5);
  const identities = numSetting('identities', 'BENCH_IDENTITIES', quick ? 50 : 200);
  const events = numSetting('events', 'BENCH_EVENTS', quick ? 100 : 400);
  const importN = numSetting('import-n', 'BENCH_IMPORT_N', quick ? 1000 : 10_000);
  const concurrency = numSetting('concurrency', 'BENCH_CONCURRENCY', 8);
  const requests = numSetting('requests', 'BENCH_REQUESTS', quick ? 1000 : 5000);
  const httpConcurrency = numSetting('http-concurrency', 'BENCH_HTTP_CONCURRENCY', 16);
  const storeEntries = numSetting('store-entries', 'BENCH_STORE_ENTRIES', quick ? 10_000 : 100_000);
  const queueJobs = numSetting('queue-jobs', 'BENCH_QUEUE_JOBS', quick ? 2000 : 20_000);
  const queueInFlight = numSetting('queue-in-flight', 'BENCH_QUEUE_IN_FLIGHT', 256);
  const recoveryJobs = numSetting('recovery-jobs', 'BENCH_RECOVERY_JOBS', quick ? 100 : 1000);
  const recoveryLatencyMs = numSetting('recovery-latency-ms', 'BENCH_RECOVERY_LATENCY_MS', 20);
  const clusterEvents = numSetting('cluster-events', 'BENCH_CLUSTER_EVENTS', quick ? 100 : 1000);
  const clusterLatencyMs = numSetting('cluster-latency-ms', 'BENCH_CLUSTER_LATENCY_MS', 20);
  const clusterInstances = numSetting('cluster-instances', 'BENCH_CLUSTER_INSTANCES', 3);
  const clusterRequests = numSetting('cluster-requests', 'BENCH_CLUSTER_REQUESTS', quick ? 300 : 2000);

  const cpus = os.cpus();
  const load = () => os.loadavg().map((x) => x.toFixed(2)).join(' ');
  console.log(`siagh-sync benchmarks — Node ${process.version}, ${cpus.length} CPU (${cpus[0]?.model ?? '?'}), ${os.platform()} ${os.release()}, load average ${load()}${quick ? ' — QUICK RUN (sizes shrunk)' : ''}`);
  console.log(`parts: ${only.join(', ')}\n`);

  const figures: Figure[] = [];
  const crashed: string[] = [];
  const started = performance.now();
  const run = async (part: Part, title: string, fn: () => Promise<Figure>) => {
    if (!want(part)) return;
    console.log(`== ${title}`);
    const t0 = performance.now();
    try {
      figures.push(await fn());
    } catch (e) {
      const msg = e instanceof Error ? e.stack ?? e.message : String(e);
      crashed.push(part);
      console.log(`  FAILED: ${msg}`);
      figures.push({ part: String(PARTS.indexOf(part) + 1), figure: title, measured: 'did not complete', comparison: '—', ratio: '—', target: '—', met: false, notes: [msg.split('\n')[0]] });
    }
    console.log(`  (${round((performance.now() - t0) / 1000, 1)} s; load average ${load()})\n`);
  };

  await run('calls', '1. Remote calls per steady-state identity event', async () =>
    syncCallsFigure(await runSyncCallsBench({ identities, events, latencyMs: callsLatencyMs, log: (l) => console.log(l) })),
  );
  await run('import', '2. Initial import', async () => importFigure(await runImportBench({ contacts: importN, latencyMs, concurrency, log: (l) => console.log(l) })));
  await run('import', '2b. Initial import into a PostgreSQL mapping store', async () =>
    importFigure(await runImportBench({ contacts: importN, latencyMs, concurrency, backend: 'postgres', log: (l) => console.log(l) })),
  );
  await run('webhook', '3. Webhook acknowledgement throughput (durable intake)', async () =>
    webhookFigure(await runWebhookAckBench({ requests, concurrency: httpConcurrency, log: (l) => console.log(l) })),
  );
  await run('store', '4. Mapping store against naive lowdb', async () =>
    storeFigure(await runMappingStoreBench({ entries: storeEntries, naiveMaxMs: quick ? 5000 : 30_000, log: (l) => console.log(`  ${l}`) })),
  );
  let fileQueue: QueueBenchResult | undefined;
  await run('queue', '5. Sync queue: durable enqueue + completion', async () =>
    queueFigure((fileQueue = await runQueueBench({ jobs: queueJobs, inFlight: queueInFlight, log: (l) => console.log(l) }))),
  );
  await run('queue', '5b. Sync queue on PostgreSQL: durable enqueue + completion', async () =>
    pgQueueFigure(await runQueueBench({ backend: 'postgres', jobs: queueJobs, inFlight: queueInFlight, log: (l) => console.log(l) }), fileQueue),
  );
  await run('recovery', '6. Siagh back → empty queue (shipped flows, real Node-RED)', async () =>
    recoveryFigure(await runRecoveryBench({ jobs: recoveryJobs, latencyMs: recoveryLatencyMs, log: (l) => console.log(l) })),
  );

  await run('cluster', '7. Several Node-RED instances on one PostgreSQL (shipped flows, real Node-RED)', async () =>
    clusterFigure(
      await runClusterBench({ events: clusterEvents, latencyMs: clusterLatencyMs, maxInstances: clusterInstances, requests: clusterRequests, concurrency: httpConcurrency, log: (l) => console.log(l) }),
    ),
  );

  console.log(`== Summary (${round((performance.now() - started) / 1000, 1)} s, load average now ${load()})${quick ? ' — QUICK RUN: sizes shrunk, figures not comparable' : ''}`);
  const rows = figures.map((f) => [f.part, f.figure, f.measured, f.comparison, f.ratio, f.target, f.met === undefined ? 'n/a' : f.met ? 'MET' : 'NOT MET']);
  console.log(table(['#', 'Figure', 'Measured', 'Compared with', 'Ratio', 'Target', 'Met'], rows));
  const notes = figures.flatMap((f) => (f.notes ?? []).map((n) => `  ${f.part}: ${n}`));
  if (notes.length) console.log(`\nNotes:\n${notes.join('\n')}`);
  if (crashed.length) {
    console.log(`\nParts that did not complete: ${crashed.join(', ')}`);
    process.exitCode = 1;
  }
}

main().then(
  () => {
    // Keep-alive sockets or timers left by a part must not keep the process up.
    setTimeout(() => process.exit(process.exitCode ?? 0), 200).unref();
  },
  (e: unknown) => {
    console.error(e instanceof Error ? e.message : e);
    process.exit(1);
  },
);
