/**
 * Both simulators in a child process, so that a benchmark measures the client side alone: the
 * simulators' work (and their latency timers) does not share an event loop with the code under
 * test, as with real remote servers. Controlled over HTTP (`/__sim/state`, `/__sim/faults`).
 *
 * Parent: `startSimProcess({siaghContacts, seed, latencyMs})` forks this file; the child seeds the
 * Siagh simulator, starts both on loopback and reports their URLs over IPC.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { CrmSim } from '../sim/crm-sim';
import { seedSiaghContacts } from '../sim/seed';
import { SiaghSim } from '../sim/siagh-sim';

export interface SimProcessConfig {
  /** Siagh contacts seeded (plus `admins` admin users first). Default 0. */
  siaghContacts?: number;
  admins?: number;
  seed?: number;
  latencyMs?: number;
  siaghUser?: { UserName: string; Password: string };
  crmUser?: { username: string; password: string };
}

export interface SimState {
  counts: Record<string, number>;
  [k: string]: unknown;
}

export interface SimProcess {
  siaghUrl: string;
  crmUrl: string;
  siaghState(): Promise<SimState>;
  crmState(): Promise<SimState>;
  setLatency(ms: number): Promise<void>;
  stop(): Promise<void>;
}

async function getJson(url: string, init?: RequestInit): Promise<SimState> {
  const r = await fetch(url, init);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return (await r.json()) as SimState;
}

export async function startSimProcess(cfg: SimProcessConfig): Promise<SimProcess> {
  const child: ChildProcess = fork(__filename, ['--sim-child'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: [] });
  const urls = await new Promise<{ siagh: string; crm: string }>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('the simulator process did not start within 60 s')), 60_000);
    child.once('message', (m) => {
      clearTimeout(t);
      const msg = m as { siagh?: string; crm?: string; error?: string };
      if (msg.error || !msg.siagh || !msg.crm) reject(new Error(`the simulator process failed: ${msg.error ?? 'no URLs'}`));
      else resolve({ siagh: msg.siagh, crm: msg.crm });
    });
    child.once('exit', (code) => {
      clearTimeout(t);
      reject(new Error(`the simulator process exited with ${code}`));
    });
    child.send(cfg);
  });
  const post = (url: string, body: unknown) => getJson(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return {
    siaghUrl: urls.siagh,
    crmUrl: urls.crm,
    siaghState: () => getJson(`${urls.siagh}/__sim/state`),
    crmState: () => getJson(`${urls.crm}/__sim/state`),
    async setLatency(ms: number) {
      await post(`${urls.siagh}/__sim/faults`, { latencyMs: ms });
      await post(`${urls.crm}/__sim/faults`, { latencyMs: ms });
    },
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        const t = setTimeout(() => child.kill('SIGKILL'), 5000);
        child.once('exit', () => {
          clearTimeout(t);
          resolve();
        });
        child.kill('SIGTERM');
      }),
  };
}

/** Sum of the request counts whose `METHOD /path` key matches. */
export function countOf(state: SimState, ...keys: string[]): number {
  return keys.reduce((n, k) => n + (state.counts[k] ?? 0), 0);
}

export function totalCount(state: SimState): number {
  return Object.values(state.counts).reduce((n, v) => n + v, 0);
}

async function child(cfg: SimProcessConfig): Promise<void> {
  const contacts = cfg.siaghContacts ? seedSiaghContacts(cfg.siaghContacts + (cfg.admins ?? 1), { seed: cfg.seed ?? 11, admins: cfg.admins ?? 1 }) : [];
  const siagh = new SiaghSim({ users: [cfg.siaghUser ?? { UserName: 'bench', Password: 'bench-pass' }], contacts });
  const crm = new CrmSim({ users: [cfg.crmUser ?? { username: 'api', password: 'api-pass' }], webhooks: false });
  await siagh.start();
  await crm.start();
  siagh.faults.latencyMs = cfg.latencyMs ?? 0;
  crm.faults.latencyMs = cfg.latencyMs ?? 0;
  const stop = () => {
    void Promise.allSettled([siagh.stop(), crm.stop()]).then(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('disconnect', stop);
  process.send!({ siagh: siagh.url, crm: crm.url });
}

if (require.main === module && process.argv.includes('--sim-child')) {
  process.once('message', (cfg) => {
    child(cfg as SimProcessConfig).catch((e: unknown) => {
      process.send?.({ error: e instanceof Error ? e.message : String(e) });
      process.exit(1);
    });
  });
}
