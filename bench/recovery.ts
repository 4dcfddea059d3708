/**
 * Benchmark part `recovery`: how long after Siagh comes back the queue is empty again, for N
 * waiting jobs (default 1 000), with both simulators answering after L = 20 ms.
 *
 * Exactly as the end-to-end tests run the package (testkit/e2e.ts, E2eEnv): the package packed
 * and installed into a fresh Node-RED user dir, a real Node-RED child process, the three shipped
 * flows deployed unchanged except the data store's retry delays (cfg-store: first retry 1 s, at
 * most 5 s apart; MAX_RETRY_ATTEMPTS high so nothing ends in the failed list), the simulators in
 * this process, the CRM's own webhooks off. Procedure: Siagh is stopped; N new CRM persons are
 * created and their N webhooks sent to the flow (bounded concurrency, every one answered 200 once
 * queued); once every job has failed at least once (the sync log has a "retrying" line for each),
 * Siagh is started again on the same port and the clock runs until GET /health reports an empty
 * queue and the N contacts exist in Siagh. Printed next to the floor N × calls × L / C, where calls
 * is the simulator requests per job counted during the recovery and C = 8 jobs in flight (two
 * sync-queue nodes, 4 each, deliver from the one queue).
 */
import fs from 'node:fs';
import path from 'node:path';
import { CRM_SIM_DEFAULTS } from '../sim/crm-sim';
import { nationalIdWithCheckDigit } from '../sim/seed';
import { E2eEnv } from '../testkit/e2e';
import { type Figure, fmtInt, fmtMs, round } from './common';

export interface RecoveryBenchOptions {
  /** Jobs waiting when Siagh comes back. Default 1 000. */
  jobs?: number;
  /** Simulator latency L (ms), both simulators. Default 20. */
  latencyMs?: number;
  /** Webhooks in flight while they are sent. Default 16. */
  sendConcurrency?: number;
  /** cfg-store retry settings. */
  firstRetrySeconds?: number;
  maxRetryDelaySeconds?: number;
  maxAttempts?: number;
  log?: (line: string) => void;
}

export interface RecoveryBenchResult {
  jobs: number;
  latencyMs: number;
  ms: number;
  floorMs: number;
  callsPerJob: number;
  jobsInFlight: number;
  firstRetrySeconds: number;
  maxRetryDelaySeconds: number;
  maxAttempts: number;
  failPhaseMs: number;
  sendMs: number;
  siaghCalls: number;
  crmCalls: number;
}

/** Both sync-queue nodes of the shipped flows (webhook-sync, polling-sync) take 4 jobs each. */
export const RECOVERY_JOBS_IN_FLIGHT = 8;

interface Health {
  queue?: { waiting: number; active: number; retrying: number; blocked: number; total: number };
}

function totalRequests(sim: { counts: Map<string, number> }): number {
  let n = 0;
  for (const v of sim.counts.values()) n += v;
  return n;
}

/** Distinct CRM ids with a "retrying" line in the sync log (all rotated files). */
function retriedIds(dataDir: string, ids: Set<string>): number {
  if (!fs.existsSync(dataDir)) return 0;
  const seen = new Set<string>();
  for (const f of fs.readdirSync(dataDir)) {
    if (!f.startsWith('sync-log')) continue;
    for (const line of fs.readFileSync(path.join(dataDir, f), 'utf8').split('\n')) {
      if (!line.includes('"retrying"')) continue;
      try {
        const e = JSON.parse(line) as { status?: string; crmId?: string };
        if (e.status === 'retrying' && e.crmId && ids.has(e.crmId.toLowerCase())) seen.add(e.crmId.toLowerCase());
      } catch {
        /* a line being written */
      }
    }
  }
  return seen.size;
}

export async function runRecoveryBench(opts: RecoveryBenchOptions = {}): Promise<RecoveryBenchResult> {
  const n = Math.max(1, Math.floor(opts.jobs ?? 1000));
  const latencyMs = opts.latencyMs ?? 20;
  const sendConcurrency = Math.max(1, Math.floor(opts.sendConcurrency ?? 16));
  const firstRetrySeconds = opts.firstRetrySeconds ?? 1;
  const maxRetryDelaySeconds = opts.maxRetryDelaySeconds ?? 5;
  const maxAttempts = opts.maxAttempts ?? 1000;
  const log = opts.log ?? ((l: string) => console.log(l));

  log(`  recovery: starting the simulators and a Node-RED with the shipped flows (package packed and installed)…`);
  const env = await E2eEnv.start({
    pollIntervalSeconds: 3600,
    webhooks: false,
    env: { MAX_RETRY_ATTEMPTS: String(maxAttempts) },
    store: { firstRetrySeconds, maxRetryDelaySeconds },
  });
  try {
    const health = async (): Promise<Health> => (await (await fetch(`${env.url}/health`)).json()) as Health;
    await env.waitFor('the start-up poll to leave the queue empty', async () => (await health()).queue?.total === 0, 60_000);
    env.siagh.faults.latencyMs = latencyMs;
    env.crm.faults.latencyMs = latencyMs;
    const port = Number(new URL(env.siagh.url).port);
    await env.siagh.stop();
    const contactsBefore = env.siagh.contacts().length;

    // N new persons, distinct mobile and national code each (no two link to one contact).
    const base = Date.now() % 100_000;
    const ids: string[] = [];
    for (let i = 0; i < n; i++) {
      const nickName = `مشتری بازیابی ${base}-${i}`;
      const rec = env.crm.addPerson(
        {
          firstName: 'مشتری',
          lastName: `بازیابی ${base}-${i}`,
          nickName,
          email: `recovery.${base}.${i}@example.ir`,
          nationalCode: nationalIdWithCheckDigit(`0${String(30_000_000 + i * 7 + base).slice(-8)}`),
          phoneContacts: [{ default: true, phoneType: 'موبایل', phoneNumber: `0936${String(i).padStart(7, '0')}` }],
        },
        { webhook: false },
      );
      ids.push(rec.crmId);
    }
    const idSet = new Set(ids.map((x) => x.toLowerCase()));
    log(`  Siagh stopped; ${fmtInt(n)} CRM persons created; sending their webhooks (${sendConcurrency} in flight)…`);
    const tSend = performance.now();
    let next = 0;
    const refused: string[] = [];
    await Promise.all(
      Array.from({ length: Math.min(sendConcurrency, n) }, async () => {
        while (next < n) {
          const id = ids[next++];
          const r = await env.sendWebhook('identity', { event: 'Insert', id, type: 'Identity', subtype: CRM_SIM_DEFAULTS.personSubtype });
          if (r.status !== 200 || (r.body as { queued?: boolean }).queued !== true) refused.push(`${r.status} ${r.text.slice(0, 120)}`);
        }
      }),
    );
    const sendMs = performance.now() - tSend;
    if (refused.length) throw new Error(`${refused.length} webhooks were not queued, e.g. ${refused[0]}`);
    const tFail = performance.now();
    // Each first attempt against a stopped Siagh takes seconds (the HTTP client's own retries with
    // backoff before the job fails), so this phase is long: progress every 30 s.
    let lastReport = performance.now();
    await env.waitFor(
      `every one of the ${n} jobs to have failed once`,
      async () => {
        const failed = retriedIds(env.dataDir, idSet);
        if (performance.now() - lastReport > 30_000) {
          lastReport = performance.now();
          log(`    … ${fmtInt(failed)} of ${fmtInt(n)} jobs failed at least once (${fmtMs(performance.now() - tFail)}); queue ${JSON.stringify((await health()).queue)}`);
        }
        return failed >= n && ((await health()).queue?.total ?? 0) >= n;
      },
      Math.max(120_000, n * 1500),
    );
    const failPhaseMs = performance.now() - tFail;
    const h0 = await health();
    log(`  webhooks sent in ${fmtMs(sendMs)}; all ${fmtInt(n)} jobs failed at least once after ${fmtMs(failPhaseMs)} more; queue ${JSON.stringify(h0.queue)}`);

    const siagh0 = totalRequests(env.siagh);
    const crm0 = totalRequests(env.crm);
    await env.siagh.start(port);
    env.siagh.faults.latencyMs = latencyMs;
    const t0 = performance.now();
    await env.waitFor(
      'the queue to be empty and every contact in Siagh',
      async () => env.siagh.contacts().length - contactsBefore >= n && (await health()).queue?.total === 0,
      Math.max(300_000, n * 1000),
    );
    const ms = performance.now() - t0;
    const siaghCalls = totalRequests(env.siagh) - siagh0;
    const crmCalls = totalRequests(env.crm) - crm0;
    const created = env.siagh.contacts().length - contactsBefore;
    if (created !== n) throw new Error(`${created} contacts were created in Siagh for ${n} persons`);
    const callsPerJob = round((siaghCalls + crmCalls) / n, 2);
    const floorMs = (n * callsPerJob * latencyMs) / RECOVERY_JOBS_IN_FLIGHT;
    log(`  Siagh back → queue empty and ${fmtInt(n)} contacts in Siagh: ${fmtMs(ms)}; ${fmtInt(siaghCalls)} Siagh + ${fmtInt(crmCalls)} CRM requests (${callsPerJob} per job); floor N × calls × L / ${RECOVERY_JOBS_IN_FLIGHT} = ${fmtMs(floorMs)}`);
    return { jobs: n, latencyMs, ms: Math.round(ms), floorMs: Math.round(floorMs), callsPerJob, jobsInFlight: RECOVERY_JOBS_IN_FLIGHT, firstRetrySeconds, maxRetryDelaySeconds, maxAttempts, failPhaseMs: Math.round(failPhaseMs), sendMs: Math.round(sendMs), siaghCalls, crmCalls };
  } finally {
    await env.stop();
  }
}

export function recoveryFigure(r: RecoveryBenchResult): Figure {
  return {
    part: '6',
    figure: `Siagh back → empty queue, ${fmtInt(r.jobs)} waiting jobs, L ${r.latencyMs} ms`,
    measured: fmtMs(r.ms),
    comparison: `floor N × calls × L / C = ${fmtMs(r.floorMs)}`,
    ratio: `${round(r.ms / Math.max(1, r.floorMs), 2)}× the floor`,
    target: 'none set (figure only)',
    met: undefined,
    notes: [
      `shipped flows on a real Node-RED, simulators at ${r.latencyMs} ms; calls = ${r.callsPerJob} simulator requests per job during the recovery (${fmtInt(r.siaghCalls)} Siagh, ${fmtInt(r.crmCalls)} CRM); C = ${r.jobsInFlight} jobs in flight (two sync-queue nodes × 4; the CRM and Siagh config nodes allow 4 calls each)`,
      `retry settings: cfg-store first retry ${r.firstRetrySeconds} s, at most ${r.maxRetryDelaySeconds} s apart (with jitter), MAX_RETRY_ATTEMPTS ${r.maxAttempts}: a job that had just failed waits up to ${r.maxRetryDelaySeconds} s after Siagh is back; all jobs had failed once ${fmtMs(r.failPhaseMs)} after the ${fmtMs(r.sendMs)} of sending`,
    ],
  };
}
