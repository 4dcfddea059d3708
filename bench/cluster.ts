/**
 * Benchmark part `cluster`: several Node-RED instances on one PostgreSQL (issue #11).
 *
 * 1. Synced events per second for 1, 2 and 3 instances (testkit/cluster.ts, E2eCluster: the
 *    package packed and installed, real Node-RED children running the shipped flows with the data
 *    store on one database of a real PostgreSQL with fsync on, both simulators answering after
 *    L ms). Per run: E new CRM persons, their E webhooks spread round-robin over the instances
 *    (bounded concurrency, each answered 200 once queued), the clock running from the first
 *    webhook until the E contacts exist in Siagh and the shared queue is empty. The scaling is the
 *    rate of n instances over the rate of one.
 * 2. Webhook answer throughput of one instance on PostgreSQL: `GET /webhook/crm/identity` (http in
 *    → crm-webhook → the job committed in PostgreSQL → http response) against a bare `GET /bare`
 *    (http in → http response) deployed beside the shipped flows in the same Node-RED, alternating
 *    rounds after a warm-up. The queued jobs (ids the CRM does not know) are worked off by the
 *    same instance meanwhile, as they would be in production.
 *
 * Figures are printed, never asserted.
 */
import { randomUUID } from 'node:crypto';
import os from 'node:os';
import { CRM_SIM_DEFAULTS } from '../sim/crm-sim';
import { nationalIdWithCheckDigit } from '../sim/seed';
import { E2eCluster } from '../testkit/cluster';
import type { FlowNode } from '../testkit/e2e';
import { PgServer } from '../testkit/postgres';
import { type Figure, fmtInt, quantile, round, sleep } from './common';

export interface ClusterBenchOptions {
  /** Events (new persons) per instance count. Default 1 000. */
  events?: number;
  /** Simulator latency L (ms), both simulators. Default 20. */
  latencyMs?: number;
  /** Largest instance count (runs 1 … this). Default 3. */
  maxInstances?: number;
  /** Measured requests per endpoint in the webhook throughput part. Default 2 000. */
  requests?: number;
  /** Requests in flight. Default 16. */
  concurrency?: number;
  log?: (line: string) => void;
}

export interface ScalingRun {
  instances: number;
  events: number;
  ms: number;
  perSec: number;
}

export interface ThroughputStats {
  requests: number;
  perSec: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
}

export interface ClusterBenchResult {
  latencyMs: number;
  runs: ScalingRun[];
  webhook: ThroughputStats;
  bare: ThroughputStats;
  concurrency: number;
}

/** A bare http-in → http response, on a tab of its own. */
const BARE_FLOW: FlowNode[] = [
  { id: 'bench-bare-tab', type: 'tab', label: 'bench bare' },
  { id: 'bench-bare-in', type: 'http in', z: 'bench-bare-tab', url: '/bare', method: 'get', upload: false, swaggerDoc: '', wires: [['bench-bare-res']] },
  { id: 'bench-bare-res', type: 'http response', z: 'bench-bare-tab', statusCode: '200', headers: {}, wires: [] },
];

/** `n` requests, `concurrency` in flight; per-request latency and a count of non-200 answers. */
async function load(n: number, concurrency: number, url: () => string): Promise<ThroughputStats & { ms: number }> {
  const lat: number[] = [];
  let errors = 0;
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) {
        next++;
        const s = performance.now();
        try {
          const r = await fetch(url());
          await r.arrayBuffer();
          if (r.status !== 200) errors++;
        } catch {
          errors++;
        }
        lat.push(performance.now() - s);
      }
    }),
  );
  const ms = performance.now() - t0;
  lat.sort((a, b) => a - b);
  return { requests: n, ms, perSec: round((n / ms) * 1000, 1), p50Ms: round(quantile(lat, 0.5)), p99Ms: round(quantile(lat, 0.99)), errors };
}

function merge(parts: Array<ThroughputStats & { ms: number }>): ThroughputStats {
  const requests = parts.reduce((a, p) => a + p.requests, 0);
  const ms = parts.reduce((a, p) => a + p.ms, 0);
  return {
    requests,
    perSec: round((requests / ms) * 1000, 1),
    p50Ms: round(parts.reduce((a, p) => a + p.p50Ms, 0) / parts.length),
    p99Ms: round(Math.max(...parts.map((p) => p.p99Ms))),
    errors: parts.reduce((a, p) => a + p.errors, 0),
  };
}

async function syncRun(pg: PgServer, instances: number, events: number, latencyMs: number, concurrency: number, measureWebhooks: ((c: E2eCluster) => Promise<void>) | undefined, log: (l: string) => void): Promise<ScalingRun> {
  log(`  ${instances} instance(s): starting (a new database, the package installed, the shipped flows on PostgreSQL)…`);
  const cluster = await E2eCluster.start({ pg, instances, env: { MAX_RETRY_ATTEMPTS: '30' }, extraFlows: BARE_FLOW });
  try {
    await cluster.queueEmpty('the start-up poll', 120_000);
    if (measureWebhooks) await measureWebhooks(cluster);
    cluster.latency = latencyMs;
    const base = Date.now() % 100_000;
    const ids: string[] = [];
    const names: string[] = [];
    for (let i = 0; i < events; i++) {
      const nickName = `مشتری خوشه ${instances}-${base}-${i}`;
      const rec = cluster.crm.addPerson(
        {
          firstName: 'مشتری',
          lastName: `خوشه ${instances}-${base}-${i}`,
          nickName,
          nationalCode: nationalIdWithCheckDigit(`0${String(30_000_000 + i * 7 + base).slice(-8)}`),
          phoneContacts: [{ default: true, phoneType: 'موبایل', phoneNumber: `0936${String(i).padStart(7, '0')}` }],
        },
        { webhook: false },
      );
      ids.push(rec.crmId);
      names.push(nickName);
    }
    const want = new Set(names);
    const synced = () => cluster.siagh.contacts().filter((c) => want.has(c.Name ?? '')).length;
    const t0 = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < ids.length) {
          const id = ids[next++];
          const r = await cluster.webhook('identity', { event: 'Insert', id, type: 'Identity', subtype: CRM_SIM_DEFAULTS.personSubtype });
          if (r.status !== 200) throw new Error(`webhook at instance ${r.instance} answered ${r.status}: ${r.text}`);
        }
      }),
    );
    const deadline = Date.now() + 600_000;
    while (synced() < events) {
      if (Date.now() > deadline) throw new Error(`only ${synced()} of ${events} contacts in Siagh after 10 minutes\n${cluster.diagnose()}`);
      await sleep(20);
    }
    await cluster.queueEmpty('the burst', 120_000);
    const ms = performance.now() - t0;
    const run = { instances, events, ms: Math.round(ms), perSec: round((events / ms) * 1000, 1) };
    log(`  ${instances} instance(s): ${events} events synced in ${fmtInt(ms)} ms → ${run.perSec} events/s`);
    return run;
  } finally {
    await cluster.stop();
  }
}

export async function runClusterBench(opts: ClusterBenchOptions = {}): Promise<ClusterBenchResult> {
  const events = Math.max(1, Math.floor(opts.events ?? 1000));
  const latencyMs = opts.latencyMs ?? 20;
  const maxInstances = Math.max(1, Math.floor(opts.maxInstances ?? 3));
  const requests = Math.max(10, Math.floor(opts.requests ?? 2000));
  const concurrency = Math.max(1, Math.floor(opts.concurrency ?? 16));
  const log = opts.log ?? ((l: string) => console.log(l));

  log(`  starting a real PostgreSQL (fsync on)…`);
  const pg = await PgServer.start({ durable: true });
  try {
    let webhook: ThroughputStats | undefined;
    let bare: ThroughputStats | undefined;
    const measureWebhooks = async (c: E2eCluster) => {
      const url = c.urls[0];
      const hook = () => `${url}/webhook/crm/identity?${new URLSearchParams({ event: 'Insert', id: randomUUID(), type: 'Identity', subtype: CRM_SIM_DEFAULTS.personSubtype, token: c.token })}`;
      const plain = () => `${url}/bare?${new URLSearchParams({ event: 'Insert', id: randomUUID(), type: 'Identity', subtype: CRM_SIM_DEFAULTS.personSubtype, token: c.token })}`;
      const warm = Math.min(500, requests);
      await load(warm, concurrency, plain);
      await load(warm, concurrency, hook);
      const rounds = 4;
      const per = Math.ceil(requests / rounds);
      const b: Array<Awaited<ReturnType<typeof load>>> = [];
      const w: Array<Awaited<ReturnType<typeof load>>> = [];
      for (let r = 0; r < rounds; r++) {
        b.push(await load(per, concurrency, plain));
        w.push(await load(per, concurrency, hook));
      }
      bare = merge(b);
      webhook = merge(w);
      log(`  one instance: webhook on PostgreSQL ${webhook.perSec}/s (p50 ${webhook.p50Ms} ms, p99 ${webhook.p99Ms} ms, ${webhook.errors} not 200), bare http-in ${bare.perSec}/s (p50 ${bare.p50Ms} ms)`);
      // The jobs of unknown ids end (the CRM does not know them); wait until they are off the queue.
      await c.queueEmpty('the webhook part', 600_000);
    };
    const runs: ScalingRun[] = [];
    for (let n = 1; n <= maxInstances; n++) runs.push(await syncRun(pg, n, events, latencyMs, concurrency, n === 1 ? measureWebhooks : undefined, log));
    if (!webhook || !bare) throw new Error('the webhook part did not run');
    return { latencyMs, runs, webhook, bare, concurrency };
  } finally {
    await pg.close();
  }
}

export function clusterFigure(r: ClusterBenchResult): Figure {
  const one = r.runs[0]?.perSec ?? NaN;
  const scaling = r.runs.map((x) => `${x.instances}: ${x.perSec}/s${x.instances > 1 ? ` (×${round(x.perSec / one)})` : ''}`).join(', ');
  return {
    part: '7',
    figure: `Instances on one PostgreSQL: synced events/s at L = ${r.latencyMs} ms`,
    measured: scaling,
    comparison: `webhook answers on PostgreSQL ${r.webhook.perSec}/s vs bare http-in ${r.bare.perSec}/s (one instance)`,
    ratio: `scaling ×${round((r.runs[r.runs.length - 1]?.perSec ?? NaN) / one)} at ${r.runs.length}; webhook ${round(r.webhook.perSec / r.bare.perSec)}× bare`,
    target: '—',
    met: undefined,
    notes: [
      `${r.runs.map((x) => `${x.instances} instance(s): ${x.events} events in ${fmtInt(x.ms)} ms`).join('; ')}; webhooks round-robin, ${r.concurrency} in flight`,
      `the instances, PostgreSQL and both simulators (in the bench process) share this machine's ${os.cpus().length} CPU: with fewer cores than processes the scaling shows the CPU's limit, not the store's`,
      `webhook answer p50 ${r.webhook.p50Ms} ms, p99 ${r.webhook.p99Ms} ms (${r.webhook.errors} not 200); bare p50 ${r.bare.p50Ms} ms, p99 ${r.bare.p99Ms} ms; the instance works off the queued jobs meanwhile`,
    ],
  };
}
