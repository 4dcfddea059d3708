/**
 * Benchmark part 3: webhook acknowledgement throughput and latency of `GET /webhook/crm/identity`
 * (http in → crm-webhook → output 2 → http response) against a bare `GET /bare` (http in → http
 * response) in the same real Node-RED process (a child started from node-red's CLI, this package
 * installed in its user dir the way a module is found in `<userDir>/node_modules`).
 *
 * crm-webhook runs as deployed for real, with durable intake: the token required (`?token=`), type
 * Identity expected, and a sync-store config node whose folder is a temp dir, so every 200 is sent
 * only once the change is in the sync queue's journal and fdatasync'd (group commit: one write +
 * fdatasync for all the requests waiting). Output 1 (the wake-up for a sync-queue node) is wired to
 * nothing: nobody takes the jobs, the queue fills up (one new job per request), which is the
 * intake's worst case. Both endpoints get the same query string (a CRM webhook: event, id, type,
 * subtype, token; a new id per request), from this process over loopback with a keep-alive agent
 * and a bounded number of requests in flight. After a warm-up of both, the measured requests are
 * sent in alternating rounds (bare, webhook, bare, webhook …) so a drift of the machine hits both
 * alike. A preload in the Node-RED child counts the journal's writes and fdatasyncs, so the figure
 * shows how many requests one commit carried.
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { startNodeRed, writeSettings, type NodeRedProcess } from '../testkit/nodered-process';
import { type Figure, fmtInt, quantile, round, sleep } from './common';

export interface WebhookAckOptions {
  /** Measured requests per endpoint. Default 5 000. */
  requests?: number;
  /** Warm-up requests per endpoint (not measured). Default 1 000. */
  warmup?: number;
  /** Requests in flight at once. Default 16. */
  concurrency?: number;
  /** Alternating rounds the measured requests are split into. Default 4. */
  rounds?: number;
  /** Folder of the compiled package (holds nodes/ and lib/). Default: the folder above this file. */
  buildDir?: string;
  log?: (line: string) => void;
}

export interface EndpointStats {
  requests: number;
  ms: number;
  perSec: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  errors: number;
  statuses: Record<string, number>;
}

/** The queue journal's activity during the measured requests (counted in the Node-RED child). */
export interface JournalStats {
  writes: number;
  syncs: number;
  lines: number;
}

export interface WebhookAckResult {
  webhook: EndpointStats;
  bare: EndpointStats;
  ratio: number;
  concurrency: number;
  met: boolean;
  /** Undefined when the counter could not be read. */
  journal?: JournalStats;
}

/** The target of issue #9: durable intake at ≥ 0.6× the bare http-in → http-response. */
export const WEBHOOK_TARGET_RATIO = 0.6;

export const PACKAGE_NAME = 'node-red-contrib-siagh-sync';
const TOKEN = 'bench-webhook-token-7Qx';
const SUBTYPE = 'مخاطب حقیقی siagh';

/** The repository root: above the build folder (dist/bench/…), else the working directory (npm run). */
function packageRoot(): string {
  for (const dir of [path.resolve(__dirname, '..', '..'), process.cwd()]) {
    try {
      if ((JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: string }).name === PACKAGE_NAME) return dir;
    } catch {
      /* not here */
    }
  }
  throw new Error(`cannot find the ${PACKAGE_NAME} package.json (run from the repository root)`);
}

/**
 * A user dir in which Node-RED finds this package: `node_modules/<name>/package.json` (the
 * repository's, with the node list limited to the nodes that are built) and `dist` → the build.
 */
export function prepareUserDir(buildDir: string): string {
  const root = packageRoot();
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { 'node-red': { nodes: Record<string, string> } };
  const nodes: Record<string, string> = {};
  const declared = { ...pkg['node-red'].nodes, 'crm-webhook': 'dist/nodes/crm-webhook/crm-webhook.js' };
  for (const [name, file] of Object.entries(declared)) {
    const rel = file.replace(/^dist\//, '');
    if (fs.existsSync(path.join(buildDir, rel)) && fs.existsSync(path.join(buildDir, rel.replace(/\.js$/, '.html')))) nodes[name] = file;
  }
  if (!nodes['crm-webhook']) {
    throw new Error(`crm-webhook is not built in ${buildDir} (nodes/crm-webhook/crm-webhook.js and .html): build the package first (npm run build)`);
  }
  const userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'siagh-bench-red-'));
  const pkgDir = path.join(userDir, 'node_modules', PACKAGE_NAME);
  fs.mkdirSync(pkgDir, { recursive: true });
  fs.writeFileSync(path.join(pkgDir, 'package.json'), JSON.stringify({ ...pkg, 'node-red': { ...pkg['node-red'], nodes } }, null, 2));
  fs.symlinkSync(buildDir, path.join(pkgDir, 'dist'), 'dir');
  fs.writeFileSync(path.join(userDir, 'package.json'), JSON.stringify({ name: 'node-red-project', private: true, version: '0.0.1', dependencies: { [PACKAGE_NAME]: '*' } }));
  return userDir;
}

/**
 * Loaded into the Node-RED child with --require: wraps fs.promises.open so the handle of the sync
 * queue's journal (queue.jsonl) counts its writes, lines and fdatasyncs, written to a file when the
 * bench sends SIGWINCH (on demand: a timer writing it would cost the child CPU while measuring; Node-RED
 * exits on SIGUSR2, and SIGWINCH is otherwise ignored).
 */
const JOURNAL_COUNTER = `'use strict';
const fs = require('fs');
const out = process.env.BENCH_JOURNAL_COUNT_FILE;
const c = { writes: 0, syncs: 0, lines: 0 };
const open = fs.promises.open;
fs.promises.open = async function (p, ...rest) {
  const fh = await open.call(this, p, ...rest);
  if (String(p).endsWith('queue.jsonl')) {
    const w = fh.write.bind(fh);
    const d = fh.datasync.bind(fh);
    fh.write = (buf, ...a) => { c.writes++; if (typeof buf === 'string') c.lines += buf.split('\\n').length - 1; return w(buf, ...a); };
    fh.datasync = () => { c.syncs++; return d(); };
  }
  return fh;
};
if (out) process.on('SIGWINCH', () => { try { fs.writeFileSync(out, JSON.stringify(c)); } catch {} });
`;

/** Ask the child for its journal counts (SIGWINCH) and read them; undefined when they do not come. */
async function readJournal(red: NodeRedProcess, file: string): Promise<JournalStats | undefined> {
  fs.rmSync(file, { force: true });
  red.child.kill('SIGWINCH');
  for (let i = 0; i < 40; i++) {
    await sleep(50);
    try {
      return JSON.parse(fs.readFileSync(file, 'utf8')) as JournalStats;
    } catch {
      /* not yet written */
    }
  }
  return undefined;
}

/** The benchmark flow: both endpoints on one tab; crm-webhook's queue in `dataDir` (a sync-store config node). */
export function benchFlow(dataDir: string): Array<Record<string, unknown>> {
  const tab = 'bench-tab';
  return [
    {
      id: 'bench-store',
      type: 'sync-store',
      name: 'bench data',
      backend: 'file',
      dir: dataDir,
      maxAttempts: '',
      maxAgeHours: '',
      firstRetrySeconds: '',
      maxRetryDelaySeconds: '',
      leaseSeconds: 120,
    },
    { id: tab, type: 'tab', label: 'bench', disabled: false },
    { id: 'wh-in', type: 'http in', z: tab, name: 'CRM identity webhook', url: '/webhook/crm/identity', method: 'get', upload: false, x: 150, y: 60, wires: [['wh']] },
    {
      id: 'wh',
      type: 'crm-webhook',
      z: tab,
      name: '',
      mode: 'webhook',
      expect: 'identity',
      store: 'bench-store',
      credentials: { token: TOKEN },
      x: 380,
      y: 60,
      // Output 1 (the wake-up for a sync-queue node) goes nowhere: only the durable acknowledgement is measured.
      wires: [[], ['wh-out']],
    },
    { id: 'wh-out', type: 'http response', z: tab, name: '', statusCode: '', headers: {}, x: 600, y: 80, wires: [] },
    { id: 'bare-in', type: 'http in', z: tab, name: 'bare', url: '/bare', method: 'get', upload: false, x: 150, y: 160, wires: [['bare-out']] },
    { id: 'bare-out', type: 'http response', z: tab, name: '', statusCode: '', headers: {}, x: 380, y: 160, wires: [] },
  ];
}

function webhookQuery(): string {
  return new URLSearchParams({ event: 'Update', id: randomUUID(), type: 'Identity', subtype: SUBTYPE, token: TOKEN }).toString();
}

function get(agent: http.Agent, port: number, pathAndQuery: string): Promise<{ status: number; ms: number; body: string }> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const req = http.request({ host: '127.0.0.1', port, path: pathAndQuery, method: 'GET', agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, ms: Number(process.hrtime.bigint() - t0) / 1e6, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.setTimeout(30_000, () => req.destroy(new Error('request timed out after 30 s')));
    req.on('error', reject);
    req.end();
  });
}

interface RawStats {
  sent: number;
  latencies: number[];
  ms: number;
  errors: number;
  statuses: Record<string, number>;
  firstError?: string;
}

/** `n` GETs with `concurrency` in flight; latencies of each, wall time of all. */
async function drive(agent: http.Agent, port: number, pathName: string, n: number, concurrency: number, into?: RawStats): Promise<RawStats> {
  const s: RawStats = into ?? { sent: 0, latencies: [], ms: 0, errors: 0, statuses: {} };
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: Math.min(concurrency, n) }, async () => {
      while (next < n) {
        next++;
        s.sent++;
        try {
          const r = await get(agent, port, `${pathName}?${webhookQuery()}`);
          s.latencies.push(r.ms);
          s.statuses[r.status] = (s.statuses[r.status] ?? 0) + 1;
          if (r.status !== 200) {
            s.errors++;
            s.firstError ??= `HTTP ${r.status}: ${r.body.slice(0, 200)}`;
          }
        } catch (e) {
          s.errors++;
          s.firstError ??= e instanceof Error ? e.message : String(e);
        }
      }
    }),
  );
  s.ms += performance.now() - t0;
  return s;
}

function summarize(s: RawStats): EndpointStats {
  const sorted = [...s.latencies].sort((a, b) => a - b);
  return {
    requests: s.sent,
    ms: Math.round(s.ms),
    perSec: Math.round((s.sent / s.ms) * 1000),
    p50Ms: round(quantile(sorted, 0.5), 2),
    p99Ms: round(quantile(sorted, 0.99), 2),
    maxMs: round(sorted[sorted.length - 1] ?? NaN, 2),
    errors: s.errors,
    statuses: s.statuses,
  };
}

export async function runWebhookAckBench(opts: WebhookAckOptions = {}): Promise<WebhookAckResult> {
  const requests = Math.max(1, Math.floor(opts.requests ?? 5000));
  const warmup = Math.max(0, Math.floor(opts.warmup ?? 1000));
  const concurrency = Math.max(1, Math.floor(opts.concurrency ?? 16));
  const rounds = Math.max(1, Math.floor(opts.rounds ?? 4));
  const log = opts.log ?? ((l: string) => console.log(l));
  const buildDir = path.resolve(opts.buildDir ?? path.join(__dirname, '..'));

  const userDir = prepareUserDir(buildDir);
  let red: NodeRedProcess | undefined;
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  try {
    // Info level: startNodeRed waits for the "Server now running" line.
    const settingsFile = writeSettings(userDir);
    const dataDir = path.join(userDir, 'bench-data');
    const preload = path.join(userDir, 'bench-journal-counter.js');
    const countFile = path.join(userDir, 'bench-journal-count.json');
    fs.writeFileSync(preload, JOURNAL_COUNTER);
    const env: Record<string, string> = {
      NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --require ${preload}`.trim(),
      BENCH_JOURNAL_COUNT_FILE: countFile,
      ENABLE_WEBHOOKS: 'true',
    };
    red = await startNodeRed({ userDir, settingsFile, env, readyTimeoutMs: 120_000 });
    const nodes = (await (await fetch(`${red.url}/nodes`, { headers: { Accept: 'application/json' } })).json()) as Array<{ module: string; types: string[]; err?: string }>;
    const ours = nodes.filter((s) => s.module === PACKAGE_NAME);
    const wh = ours.find((s) => s.types.includes('crm-webhook'));
    if (!wh || wh.err) throw new Error(`Node-RED did not load crm-webhook: ${wh?.err ?? 'not registered'}\n${red.log()}`);
    const dep = await fetch(`${red.url}/flows`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'Node-RED-Deployment-Type': 'full' },
      body: JSON.stringify(benchFlow(dataDir)),
    });
    if (!dep.ok) throw new Error(`deploying the bench flow failed: HTTP ${dep.status} ${await dep.text()}`);
    // The flow is started once both endpoints answer.
    for (let i = 0; ; i++) {
      const a = await get(agent, red.port, `/bare?${webhookQuery()}`).catch(() => undefined);
      const b = await get(agent, red.port, `/webhook/crm/identity?${webhookQuery()}`).catch(() => undefined);
      if (a?.status === 200 && b?.status === 200) break;
      if (i > 100) throw new Error(`the bench flow does not answer (bare ${a?.status}, webhook ${b?.status}: ${b?.body.slice(0, 200)})\n${red.log()}`);
      await sleep(100);
    }
    const check = await get(agent, red.port, `/webhook/crm/identity?${webhookQuery()}`);
    const ack = JSON.parse(check.body) as { accepted?: boolean; queued?: boolean };
    if (ack.accepted !== true || ack.queued !== true) throw new Error(`crm-webhook did not queue a valid delivery: ${check.body}`);
    const refused = await get(agent, red.port, `/webhook/crm/identity?${webhookQuery().replace(/token=[^&]*/, 'token=wrong')}`);
    if (refused.status !== 401) throw new Error(`crm-webhook accepted a wrong token (HTTP ${refused.status})`);

    log(`webhook ack: Node-RED ${red.url} (child process), durable intake into ${dataDir}; ${fmtInt(requests)} measured GETs per endpoint after ${fmtInt(warmup)} warm-up each, ${concurrency} in flight, keep-alive, ${rounds} alternating rounds`);
    await drive(agent, red.port, '/bare', warmup, concurrency);
    await drive(agent, red.port, '/webhook/crm/identity', warmup, concurrency);
    // Let the warm-up's last commits and fold of the journal end.
    await sleep(500);
    const j0 = await readJournal(red, countFile);

    const bare: RawStats = { sent: 0, latencies: [], ms: 0, errors: 0, statuses: {} };
    const webhook: RawStats = { sent: 0, latencies: [], ms: 0, errors: 0, statuses: {} };
    const per = Math.ceil(requests / rounds);
    for (let r = 0, left = requests; r < rounds && left > 0; r++, left -= per) {
      const n = Math.min(per, left);
      await drive(agent, red.port, '/bare', n, concurrency, bare);
      await drive(agent, red.port, '/webhook/crm/identity', n, concurrency, webhook);
    }
    const j1 = await readJournal(red, countFile);
    const journal = j0 && j1 ? { writes: j1.writes - j0.writes, syncs: j1.syncs - j0.syncs, lines: j1.lines - j0.lines } : undefined;
    const b = summarize(bare);
    const w = summarize(webhook);
    const ratio = round(w.perSec / Math.max(b.perSec, 0.001), 3);
    const line = (name: string, s: EndpointStats) =>
      `  ${name.padEnd(22)} ${String(s.perSec).padStart(6)} req/s  p50 ${s.p50Ms} ms  p99 ${s.p99Ms} ms  max ${s.maxMs} ms  (${fmtInt(s.requests)} requests in ${s.ms} ms${s.errors ? `, ${s.errors} errors` : ''})`;
    log(line('bare http in → out', b));
    log(line('/webhook/crm/identity', w));
    if (bare.firstError) log(`  bare: first error: ${bare.firstError}`);
    if (webhook.firstError) log(`  webhook: first error: ${webhook.firstError}`);
    log(`  ratio webhook / bare: ${ratio}×`);
    if (journal) log(`  queue journal during the measured webhooks: ${fmtInt(journal.lines)} lines in ${fmtInt(journal.writes)} writes, ${fmtInt(journal.syncs)} fdatasyncs (${round(w.requests / Math.max(1, journal.syncs), 1)} requests per commit)`);
    else log('  queue journal: the counter in the Node-RED child could not be read');
    return { webhook: w, bare: b, ratio, concurrency, journal, met: ratio >= WEBHOOK_TARGET_RATIO && w.errors === 0 && b.errors === 0 };
  } finally {
    agent.destroy();
    await red?.stop();
    fs.rmSync(userDir, { recursive: true, force: true });
  }
}

export function webhookFigure(res: WebhookAckResult): Figure {
  const w = res.webhook;
  const b = res.bare;
  return {
    part: '3',
    figure: 'Webhook ack throughput (durable intake), GET /webhook/crm/identity',
    measured: `${w.perSec} req/s, p50 ${w.p50Ms} ms, p99 ${w.p99Ms} ms${w.errors ? `, ${w.errors} errors` : ''}`,
    comparison: `bare http in→out: ${b.perSec} req/s, p50 ${b.p50Ms} ms, p99 ${b.p99Ms} ms`,
    ratio: `${res.ratio}×`,
    target: `≥ ${WEBHOOK_TARGET_RATIO}×`,
    met: res.met,
    notes: [
      `${fmtInt(w.requests)} requests per endpoint, ${res.concurrency} in flight, keep-alive, loopback; Node-RED in a child process; crm-webhook with token check, answering 200 once the change is in the sync queue (sync-store in a temp dir), output 1 unwired (the queue fills up)`,
      res.journal
        ? `fdatasync'd group commit: ${fmtInt(res.journal.syncs)} journal fdatasyncs (${fmtInt(res.journal.writes)} writes, ${fmtInt(res.journal.lines)} lines) for ${fmtInt(w.requests)} webhook requests = ${round(w.requests / Math.max(1, res.journal.syncs), 1)} requests per commit`
        : 'journal writes: not counted (the counter in the Node-RED child could not be read)',
    ],
  };
}
