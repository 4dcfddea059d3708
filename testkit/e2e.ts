/**
 * End-to-end harness: the package as an operator runs it. Both simulators run in the test process;
 * the package is packed once per process (`npm pack --ignore-scripts`, dist/ is already built) and
 * installed into a fresh Node-RED user dir with the Palette Manager's flags; a real Node-RED child
 * process runs with the environment of the old SiaghSync `.env` pointing at the simulators and a
 * temp data dir; the three shipped flow files are deployed unchanged (merged by id) through the
 * Admin API; the simulated CRM's webhooks point at the flow's http-in URLs with the token.
 *
 * Shared by the tests (test/helpers/e2e re-exports it), `npm start` (scripts/start.ts: `shippedFlows`,
 * `packPackage`, `installTarball`) and `npm run bench` (the recovery part): bench/ and scripts/ do
 * not import from test/ (issue #13), so the harness lives here, in testkit/.
 * Importing this module has no side effects beyond an exit hook that SIGKILLs the Node-RED
 * children still running when the process exits.
 */
import { ChildProcess, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CrmSim, CrmSimOptions } from '../sim/crm-sim';
import { SiaghSim, SiaghSimOptions } from '../sim/siagh-sim';
import type { SimRequest, SimResponse } from '../sim/sim-server';
import { NodeRedProcess, startNodeRed, writeSettings } from './nodered-process';

/** The package root (holds package.json, flows/, and dist/ with this file in dist/testkit). */
export const PACKAGE_ROOT = path.resolve(__dirname, '..', '..');

/** The shipped flows, in the order they are merged. */
export const SHIPPED_FLOW_NAMES = ['webhook-sync', 'polling-sync', 'initial-import'] as const;

export type FlowNode = Record<string, unknown> & { id: string; type: string };

/**
 * The three shipped flow files as one deployment: read from `flowsDir` unchanged and merged by id
 * (the config nodes every file carries are kept once, the first copy wins).
 */
export function shippedFlows(flowsDir = path.join(PACKAGE_ROOT, 'flows')): FlowNode[] {
  const seen = new Set<string>();
  const all: FlowNode[] = [];
  for (const name of SHIPPED_FLOW_NAMES) {
    const flow = JSON.parse(fs.readFileSync(path.join(flowsDir, `${name}.json`), 'utf8')) as FlowNode[];
    for (const n of flow) {
      if (seen.has(n.id)) continue;
      seen.add(n.id);
      all.push(n);
    }
  }
  return all;
}

/** `npm pack --ignore-scripts` of `root` into `destDir`; returns the tarball's path. */
export function packPackage(destDir: string, root = PACKAGE_ROOT): string {
  fs.mkdirSync(destDir, { recursive: true });
  const out = execFileSync('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', destDir], { cwd: root, encoding: 'utf8' });
  return path.join(destDir, (JSON.parse(out) as Array<{ filename: string }>)[0].filename);
}

/** Install a tarball into a Node-RED user dir as the Palette Manager does (production dependencies only). */
export function installTarball(userDir: string, tarball: string, stdio: 'inherit' | 'pipe' = 'pipe'): void {
  fs.mkdirSync(userDir, { recursive: true });
  if (!fs.existsSync(path.join(userDir, 'package.json'))) {
    fs.writeFileSync(path.join(userDir, 'package.json'), JSON.stringify({ name: 'node-red-project', private: true, version: '0.0.1' }, null, 2));
  }
  execFileSync(
    'npm',
    ['install', '--no-audit', '--no-update-notifier', '--no-fund', '--save', '--save-prefix=~', '--omit=dev', '--engine-strict', '--prefer-offline', '--', tarball],
    { cwd: userDir, stdio },
  );
}

// ------------------------------------------------------------------------------ process hygiene

const liveChildren = new Set<ChildProcess>();
const tempDirs = new Set<string>();

/** A temp folder removed at process exit if its owner did not remove it (E2eEnv, E2eCluster). */
export function makeTempDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

/** Remove a folder made by makeTempDir. */
export function removeTempDir(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
  tempDirs.delete(dir);
}
process.once('exit', () => {
  for (const c of liveChildren) {
    try {
      c.kill('SIGKILL');
    } catch {
      /* gone */
    }
  }
  for (const d of tempDirs) fs.rmSync(d, { recursive: true, force: true });
});

let packed: string | undefined;
/** The package tarball, packed on first use and reused for the rest of the process. */
export function packedTarball(): string {
  if (packed && fs.existsSync(packed)) return packed;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'siagh-sync-e2e-pack-'));
  tempDirs.add(dir);
  packed = packPackage(dir);
  return packed;
}

// ------------------------------------------------------------------------------ waiting

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Poll `fn` until it returns something truthy (returned) or `timeoutMs` passes (throws naming
 * `what`, plus `diagnose()` when given).
 */
export async function waitFor<T>(
  what: string,
  fn: () => T | Promise<T>,
  opts: { timeoutMs?: number; intervalMs?: number; diagnose?: () => string } = {},
): Promise<NonNullable<T>> {
  const timeoutMs = opts.timeoutMs ?? 15_000;
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as NonNullable<T>;
      last = v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      const why = last instanceof Error ? ` (last error: ${last.message})` : '';
      throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}${why}` + (opts.diagnose ? `\n${opts.diagnose()}` : ''));
    }
    await sleep(opts.intervalMs ?? 50);
  }
}

/**
 * Wait until `fn` (a snapshot of counters, compared as JSON) has not changed for `quietMs`, e.g.
 * the simulators' write counters after a burst of webhooks. Throws after `timeoutMs`.
 */
export async function waitQuiet(what: string, fn: () => unknown, opts: { quietMs?: number; timeoutMs?: number; diagnose?: () => string } = {}): Promise<void> {
  const quietMs = opts.quietMs ?? 1500;
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const deadline = Date.now() + timeoutMs;
  let snap = JSON.stringify(fn());
  let since = Date.now();
  for (;;) {
    await sleep(50);
    const now = JSON.stringify(fn());
    if (now !== snap) {
      snap = now;
      since = Date.now();
    } else if (Date.now() - since >= quietMs) return;
    if (Date.now() > deadline) throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what} to settle` + (opts.diagnose ? `\n${opts.diagnose()}` : ''));
  }
}

// ------------------------------------------------------------------------------ simulators

/** CrmSim with a hook called before each API request is handled (e.g. to SIGKILL Node-RED at the N-th create). */
export class E2eCrmSim extends CrmSim {
  /** Sees each request first; a response it returns is sent instead of the simulator's own. */
  beforeHandle: ((req: SimRequest) => SimResponse | void) | undefined;
  protected override handle(req: SimRequest): SimResponse {
    const instead = this.beforeHandle?.(req);
    return instead ?? super.handle(req);
  }
}

/** Requests a simulator received whose `METHOD /path` matches `re`. */
export function countMatching(sim: { counts: Map<string, number> }, re: RegExp): number {
  let n = 0;
  for (const [k, v] of sim.counts) if (re.test(k)) n += v;
  return n;
}

export const CRM_CREATE_RE = /^POST \/api\/v2\/crmobject\/(person|organization)\/create$/i;
export const CRM_IDENTITY_GET_RE = /^POST \/api\/v2\/crmobject\/(person|organization)\/get$/i;
export const CRM_QUOTE_GET_RE = /^POST \/api\/v2\/crmobject\/quote\/sales\/get$/i;
/** Any CRM read that polling could use to list identities. */
export const CRM_LIST_RE = /^POST \/api\/v2\/crmobject\/(identity\/search|(person|organization)\/find)$/i;

// ------------------------------------------------------------------------------ the environment

export const E2E_SIAGH_USER = { UserName: 'مدیر سیستم', Password: 'e2e-siagh-pass' };
export const E2E_CRM_USER = { username: 'e2e-api', password: 'e2e-crm-pass' };
export const E2E_TOKEN = 'e2e-webhook-token-7f3a';

export type WebhookKind = 'identity' | 'quote' | 'invoice';

export interface E2eOptions {
  siagh?: SiaghSimOptions;
  crm?: CrmSimOptions;
  /** POLL_INTERVAL_SECONDS. Default 3600 (polling stays out of the way of webhook tests). */
  pollIntervalSeconds?: number;
  /** WEBHOOK_TOKEN; null leaves it unset. Default E2E_TOKEN. */
  webhookToken?: string | null;
  /** Point the CRM's webhooks at the flow (default true; false leaves them switched off). */
  webhooks?: boolean;
  /** More environment for Node-RED. MAX_RETRY_ATTEMPTS is 2 unless given here (see start()). */
  env?: Record<string, string>;
  /**
   * Settings of the shipped flows' data store (cfg-store) to change, e.g. shorter retry delays.
   * `{ backend: 'postgres', url }` runs the flows on a PostgreSQL store: `url` (password included,
   * e.g. from PgServer.database()) goes to Node-RED as DATABASE_URL, and cfg-store's pgUrl stays
   * blank, as an operator's would.
   */
  store?: Record<string, unknown>;
  /** Deploy these flows instead of the shipped ones (e.g. a flow saved by an older release). */
  flows?: FlowNode[];
}

export interface WebhookReply {
  status: number;
  body: unknown;
  text: string;
}

/** The Node-RED settings of an end-to-end user dir (the credential secret fixed, so credentials survive a restart). */
export function writeE2eSettings(userDir: string): string {
  return writeSettings(userDir, {
    credentialSecret: 'e2e-credential-secret',
    logging: { console: { level: 'info', metrics: false, audit: false } },
  });
}

/**
 * The environment of the old SiaghSync `.env`, pointing at the simulators, for a Node-RED whose
 * data folder is `dataDir`. MAX_RETRY_ATTEMPTS is 2 unless `env` says otherwise.
 */
export function simulatorEnv(
  siagh: SiaghSim,
  crm: CrmSim,
  dataDir: string,
  opts: { pollIntervalSeconds?: number; token?: string; env?: Record<string, string>; crmUser?: { username: string; password: string } } = {},
): Record<string, string> {
  const crmUser = opts.crmUser ?? E2E_CRM_USER;
  return {
    CRM_API_BASE_URL: crm.url,
    CRM_USERNAME: crmUser.username,
    CRM_PASSWORD: crmUser.password,
    FINANCE_API_BASE_URL: siagh.url,
    FINANCE_USERNAME: E2E_SIAGH_USER.UserName,
    FINANCE_PASSWORD: E2E_SIAGH_USER.Password,
    POLL_INTERVAL_SECONDS: String(opts.pollIntervalSeconds ?? 3600),
    SYNC_DATA_DIR: dataDir,
    // The fault-matrix cells expect a failure to reach failed.json soon: two attempts, unless a
    // test asks for the queue's own default (e2e-queue) or another count.
    MAX_RETRY_ATTEMPTS: '2',
    RETRY_BASE_SECONDS: '0.5',
    RETRY_CHECK_DELAY_SECONDS: '1',
    ...(opts.token ? { WEBHOOK_TOKEN: opts.token } : {}),
    ...opts.env,
  };
}

/** The flows with the data store (cfg-store) patched with `store` (unchanged without it). */
export function withStore(flows: FlowNode[], store: Record<string, unknown> | undefined): FlowNode[] {
  return flows.map((n) => (n.id === 'cfg-store' && store ? { ...n, ...store } : n));
}

/**
 * A Node-RED child on this user dir (SIGKILLed at process exit unless forgotten), resolved once it
 * has started its saved flows.
 */
export async function launchNodeRed(userDir: string, settingsFile: string, env: Record<string, string>, port?: number): Promise<NodeRedProcess> {
  const red = await startNodeRed({ userDir, settingsFile, env, port, readyTimeoutMs: 60_000 });
  liveChildren.add(red.child);
  // "Server now running" comes before the saved flows are started.
  await waitFor('Node-RED to start its flows', () => /Started flows/.test(red.log()), { timeoutMs: 30_000, diagnose: () => red.log().split('\n').slice(-40).join('\n') });
  return red;
}

/** A Node-RED child stopped by its owner: no longer killed at process exit. */
export function forgetNodeRed(red: NodeRedProcess): void {
  liveChildren.delete(red.child);
}

/** A full deploy of `flows` through the Admin API, resolved once the new flows have started. */
export async function deployFlows(red: NodeRedProcess, flows: FlowNode[]): Promise<void> {
  const from = red.log().length;
  const res = await fetch(red.url + '/flows', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'Node-RED-Deployment-Type': 'full' },
    body: JSON.stringify(flows),
  });
  if (!res.ok) throw new Error(`Deploying the shipped flows failed: HTTP ${res.status} ${await res.text()}`);
  // The Admin API answers before the new flows have started.
  await waitFor('the deployed flows to start', () => /Updated flows[\s\S]*Started flows/.test(red.log().slice(from)), {
    timeoutMs: 30_000,
    diagnose: () => red.log().split('\n').slice(-40).join('\n'),
  });
}

export class E2eEnv {
  readonly siagh: SiaghSim;
  readonly crm: E2eCrmSim;
  /** Temp folder holding the user dir and the data dir (removed by stop()). */
  readonly dir: string;
  readonly userDir: string;
  /** SYNC_DATA_DIR. */
  readonly dataDir: string;
  readonly token: string | undefined;
  red!: NodeRedProcess;
  private readonly opts: E2eOptions;
  private settingsFile = '';
  private env: Record<string, string> = {};
  private earlierLogs = '';
  private stopped = false;

  private constructor(opts: E2eOptions) {
    this.opts = opts;
    this.siagh = new SiaghSim({ users: [E2E_SIAGH_USER], ...opts.siagh });
    this.crm = new E2eCrmSim({ users: [E2E_CRM_USER], ...opts.crm });
    this.dir = makeTempDir('siagh-sync-e2e-');
    this.userDir = path.join(this.dir, 'userdir');
    this.dataDir = path.join(this.dir, 'data');
    this.token = opts.webhookToken === null ? undefined : (opts.webhookToken ?? E2E_TOKEN);
  }

  /** Simulators, package install, Node-RED, deployment, webhooks. Cleans up after itself if any step fails. */
  static async start(opts: E2eOptions = {}): Promise<E2eEnv> {
    const e = new E2eEnv(opts);
    try {
      await e.siagh.start();
      await e.crm.start();
      installTarball(e.userDir, packedTarball());
      fs.mkdirSync(e.dataDir, { recursive: true });
      e.settingsFile = writeE2eSettings(e.userDir);
      e.env = simulatorEnv(e.siagh, e.crm, e.dataDir, {
        pollIntervalSeconds: opts.pollIntervalSeconds,
        token: e.token,
        env: { ...(opts.store?.backend === 'postgres' && typeof opts.store.url === 'string' ? { DATABASE_URL: opts.store.url } : {}), ...opts.env },
      });
      await e.launch();
      await e.deploy(e.flows());
      if (opts.webhooks !== false) e.pointWebhooks();
      else e.crm.setWebhooks({ enabled: false });
      return e;
    } catch (err) {
      await e.stop();
      throw err;
    }
  }

  get url(): string {
    return this.red.url;
  }

  /** The shipped flows (or `opts.flows`) as this environment deploys them (cfg-store patched with `opts.store`). */
  flows(): FlowNode[] {
    const { url: _url, ...store } = this.opts.store ?? {}; // a postgres url travels as DATABASE_URL
    return withStore(this.opts.flows ?? shippedFlows(), this.opts.store ? store : undefined);
  }

  /** A full deploy of the same flows again (every node stopped and started, as the editor's Deploy does). */
  async redeploy(): Promise<void> {
    await this.deploy(this.flows());
  }

  /** The URL of a webhook endpoint of the flow with this query (token added only when given). */
  webhookUrl(kind: WebhookKind | 'test', query: Record<string, string | undefined> = {}): string {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== undefined) q.set(k, v);
    const s = q.toString();
    return `${this.red.url}/webhook/crm/${kind}${s ? `?${s}` : ''}`;
  }

  /** The CRM's webhooks → the flow's http-in URLs, with the token. */
  pointWebhooks(): void {
    const base = `${this.red.url}/webhook/crm`;
    this.crm.setWebhooks({ urls: { Identity: `${base}/identity`, Quote: `${base}/quote`, Invoice: `${base}/invoice` }, token: this.token, enabled: true });
  }

  /**
   * Deliver one webhook as the CRM does (body-less GET with the query) or as a POST with a JSON body.
   * `token`: the env's token by default; a string sends that one; null sends none.
   */
  async sendWebhook(kind: WebhookKind | 'test', fields: Record<string, string | undefined>, opts: { token?: string | null; method?: 'GET' | 'POST' } = {}): Promise<WebhookReply> {
    const token = opts.token === null ? undefined : (opts.token ?? this.token);
    let res: Response;
    if (opts.method === 'POST') {
      res = await fetch(this.webhookUrl(kind, { token }), { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(fields) });
    } else {
      res = await fetch(this.webhookUrl(kind, { ...fields, token }), { headers: { Connection: 'Keep-Alive' } });
    }
    const text = await res.text();
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      /* not JSON */
    }
    return { status: res.status, body, text };
  }

  /** Press an inject node through the Admin API (`POST /inject/:id`). */
  async inject(nodeId: string): Promise<void> {
    const res = await fetch(`${this.red.url}/inject/${encodeURIComponent(nodeId)}`, { method: 'POST' });
    if (res.status !== 200) throw new Error(`POST /inject/${nodeId} answered ${res.status}: ${await res.text()}`);
  }

  /** Import report files written so far (`SYNC_DATA_DIR/reports`), oldest first. */
  reportFiles(): string[] {
    const dir = path.join(this.dataDir, 'reports');
    if (!fs.existsSync(dir)) return [];
    return fs
      .readdirSync(dir)
      .filter((f) => f.endsWith('.json'))
      .sort()
      .map((f) => path.join(dir, f));
  }

  /** SIGKILL Node-RED (no chance to flush or unlock anything) and wait until it is gone. */
  async kill(): Promise<void> {
    const c = this.red.child;
    if (c.exitCode !== null || c.signalCode !== null) return;
    const gone = new Promise<void>((r) => c.once('exit', () => r()));
    c.kill('SIGKILL');
    await gone;
  }

  /** Wait for Node-RED to exit (e.g. after a hook killed it), bounded. */
  async exited(timeoutMs = 10_000): Promise<void> {
    const c = this.red.child;
    if (c.exitCode !== null || c.signalCode !== null) return;
    await Promise.race([
      new Promise<void>((r) => c.once('exit', () => r())),
      sleep(timeoutMs).then(() => {
        throw new Error('Node-RED did not exit');
      }),
    ]);
  }

  /**
   * Start Node-RED again on the same user dir, port and environment (it redeploys its saved flows).
   * `envChanges` change the environment from this start on (undefined removes a variable).
   */
  async restart(envChanges: Record<string, string | undefined> = {}): Promise<void> {
    for (const [k, v] of Object.entries(envChanges)) {
      if (v === undefined) delete this.env[k];
      else this.env[k] = v;
    }
    await this.kill();
    await this.launch(this.red.port);
    this.pointWebhooks();
  }

  /** Everything Node-RED printed, across restarts. */
  log(): string {
    return this.earlierLogs + (this.red ? this.red.log() : '');
  }

  /** The end of the log, for failure messages. */
  diagnose = (lines = 40): string => {
    const all = this.log().trimEnd().split('\n');
    return `--- last ${Math.min(lines, all.length)} lines of the Node-RED log ---\n` + all.slice(-lines).join('\n');
  };

  /** waitFor with the Node-RED log tail in the timeout message. */
  waitFor<T>(what: string, fn: () => T | Promise<T>, timeoutMs = 15_000): Promise<NonNullable<T>> {
    return waitFor(what, fn, { timeoutMs, diagnose: () => this.diagnose() });
  }

  waitQuiet(what: string, fn: () => unknown, opts: { quietMs?: number; timeoutMs?: number } = {}): Promise<void> {
    return waitQuiet(what, fn, { ...opts, diagnose: () => this.diagnose() });
  }

  /** Stop Node-RED (SIGTERM, then SIGKILL) and both simulators, and remove the temp folder. Safe to call twice. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.crm.beforeHandle = undefined;
    this.crm.setWebhooks({ enabled: false });
    if (this.red) {
      await this.red.stop().catch(() => undefined);
      forgetNodeRed(this.red);
      // E2E_LOG_DIR=<folder> keeps each Node-RED log for a look after the run.
      const keep = process.env.E2E_LOG_DIR;
      if (keep) {
        fs.mkdirSync(keep, { recursive: true });
        fs.writeFileSync(path.join(keep, `${path.basename(this.dir)}.log`), this.log());
      }
    }
    await Promise.all([this.siagh.stop().catch(() => undefined), this.crm.stop().catch(() => undefined)]);
    removeTempDir(this.dir);
  }

  private async launch(port?: number): Promise<void> {
    if (this.red) {
      this.earlierLogs += this.red.log() + '\n--- Node-RED restarted ---\n';
      forgetNodeRed(this.red);
    }
    this.red = await launchNodeRed(this.userDir, this.settingsFile, this.env, port);
  }

  private async deploy(flows: FlowNode[]): Promise<void> {
    await deployFlows(this.red, flows);
  }
}

// ---------------------------------------------------------------------------------------------
// The initial-import flow

/** The shipped initial-import flow's "import" inject node (wired to siagh-import). */
export function importInjectId(): string {
  const flows = shippedFlows();
  const importer = new Set(flows.filter((x) => x.type === 'siagh-import').map((x) => x.id));
  const n = flows.find((x) => x.type === 'inject' && x.name === 'import' && (x.wires as string[][]).flat().some((id) => importer.has(id)));
  if (!n) throw new Error('flows/initial-import.json has no inject node named "import" wired to siagh-import');
  return n.id;
}

const IMPORT_DROPPED = /An import is already running; this message was dropped/g;

/**
 * Press "import" until a press is taken, and resolve with `probe`'s first answer. A press that
 * lands while the previous run is still winding down is dropped with a warning (the node runs one
 * import at a time) and is repeated.
 */
export async function pressImport<T>(env: E2eEnv, what: string, probe: () => T | undefined | false, timeoutMs = 45_000): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    const dropped = env.log().match(IMPORT_DROPPED)?.length ?? 0;
    await env.inject(importInjectId());
    const out = await env.waitFor(what, () => probe() || ((env.log().match(IMPORT_DROPPED)?.length ?? 0) > dropped ? ('dropped' as const) : undefined), timeoutMs);
    if (out !== 'dropped') return out as T;
    if (attempt >= 5) throw new Error('every press of "import" was dropped: an import seems to be still running');
    await sleep(200);
  }
}

/** Press "import" and resolve with the parsed report file it writes. */
export async function runImportReport<R>(env: E2eEnv, timeoutMs = 45_000): Promise<R> {
  const before = env.reportFiles().length;
  const file = await pressImport(env, 'the import report file', () => env.reportFiles()[before], timeoutMs);
  return JSON.parse(fs.readFileSync(file, 'utf8')) as R;
}

/** Press "import" and wait until Node-RED has died (a test kills it mid-run). */
export async function pressImportUntilKilled(env: E2eEnv, timeoutMs = 30_000): Promise<void> {
  await pressImport(env, 'Node-RED to be killed', () => env.red.child.exitCode !== null || env.red.child.signalCode !== null, timeoutMs);
  await env.exited(timeoutMs);
}

