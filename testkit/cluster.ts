/**
 * Several Node-RED instances on one PostgreSQL, as an integrator runs replicas (issue #11): one pair
 * of simulators in the test process, N real Node-RED children, each with its own user dir and data
 * folder (the sync log, import reports and webhook-rejection counts stay there), all running the
 * shipped flows with the data store (cfg-store) on the same PostgreSQL database: `backend:
 * 'postgres'`, the URL from the environment's DATABASE_URL (the contract of the store config node).
 *
 * Each instance logs in to the CRM as its own user (`e2e-api-<i>`), so a test can tell from the
 * CRM simulator which instance made a call (`crmCallsByInstance`). The CRM's own webhooks are off:
 * a test delivers them with `webhook()`, round-robin over the live instances, or to one instance.
 *
 * Built from the pieces of testkit/e2e.ts (package packed once, installed once and copied into the
 * other user dirs; the same environment, settings and deployment).
 */
import fs from 'node:fs';
import path from 'node:path';
import { Client } from 'pg';
import type { SimRequest } from '../sim/sim-server';
import { SiaghSim, SiaghSimOptions } from '../sim/siagh-sim';
import type { CrmSimOptions } from '../sim/crm-sim';
import {
  deployFlows,
  E2E_CRM_USER,
  E2E_SIAGH_USER,
  E2E_TOKEN,
  E2eCrmSim,
  FlowNode,
  forgetNodeRed,
  installTarball,
  launchNodeRed,
  makeTempDir,
  packedTarball,
  removeTempDir,
  shippedFlows,
  simulatorEnv,
  waitFor,
  waitQuiet,
  WebhookKind,
  WebhookReply,
  withStore,
  writeE2eSettings,
} from './e2e';
import type { NodeRedProcess } from './nodered-process';
import type { PgServer } from './postgres';

export interface ClusterOptions {
  /** Node-RED instances. Default 3. */
  instances?: number;
  /** The PostgreSQL server; each cluster gets a new, empty database on it. */
  pg: PgServer;
  /** Latency of both simulators (ms). Default 0. */
  latencyMs?: number;
  /** POLL_INTERVAL_SECONDS. Default 3600 (polling stays out of the way of webhook tests). */
  pollIntervalSeconds?: number;
  /** More environment for every instance. */
  env?: Record<string, string>;
  /** Settings of cfg-store to change (e.g. a short leaseSeconds); backend postgres unless given here. */
  store?: Record<string, unknown>;
  /** Settings to change on every node of a type, e.g. `{ 'sync-mapping': { leaseSeconds: 5 } }` (the claims' lease). */
  nodeSettings?: Record<string, Record<string, unknown>>;
  /** More flow nodes deployed beside the shipped flows on every instance (e.g. a bare http-in for a benchmark). */
  extraFlows?: FlowNode[];
  siagh?: SiaghSimOptions;
  crm?: CrmSimOptions;
}

/** The CRM user of instance `i`. */
export const clusterCrmUser = (i: number) => ({ username: `${E2E_CRM_USER.username}-${i}`, password: E2E_CRM_USER.password });

export interface ClusterInstance {
  index: number;
  userDir: string;
  /** SYNC_DATA_DIR of this instance. */
  dataDir: string;
  red: NodeRedProcess;
  env: Record<string, string>;
  settingsFile: string;
  /** Everything this instance printed, across restarts. */
  log(): string;
  alive(): boolean;
}

interface Instance extends ClusterInstance {
  earlierLogs: string;
}

export class E2eCluster {
  readonly siagh: SiaghSim;
  readonly crm: E2eCrmSim;
  readonly dir: string;
  readonly token = E2E_TOKEN;
  /** The cluster's database (the application role's URL, password included). */
  dbUrl = '';
  readonly instances: ClusterInstance[] = [];
  /** CRM API calls per instance (by the CRM user the call's token was issued to): `METHOD /path` → count. */
  readonly crmCallsByInstance: Array<Map<string, number>> = [];
  /**
   * Sees each CRM API call first, with the instance that made it (e.g. to SIGKILL that instance in
   * the middle of a job: `void cluster.kill(i)` sends the signal at once).
   */
  onCrmCall: ((instance: number, req: SimRequest) => void) | undefined;
  private readonly opts: ClusterOptions;
  private next = 0;
  private stopped = false;

  private constructor(opts: ClusterOptions) {
    this.opts = opts;
    const n = opts.instances ?? 3;
    this.siagh = new SiaghSim({ users: [E2E_SIAGH_USER], ...opts.siagh });
    this.crm = new E2eCrmSim({ users: Array.from({ length: n }, (_, i) => clusterCrmUser(i)), ...opts.crm });
    this.dir = makeTempDir('siagh-sync-cluster-');
    for (let i = 0; i < n; i++) this.crmCallsByInstance.push(new Map());
  }

  /** Database, simulators, N Node-RED instances with the shipped flows on PostgreSQL. Cleans up if a step fails. */
  static async start(opts: ClusterOptions): Promise<E2eCluster> {
    const c = new E2eCluster(opts);
    try {
      c.dbUrl = await opts.pg.database();
      await c.siagh.start();
      await c.crm.start();
      c.crm.setWebhooks({ enabled: false });
      c.latency = opts.latencyMs ?? 0;
      c.crm.beforeHandle = (req) => c.countCrmCall(req);
      const n = opts.instances ?? 3;
      const tarball = packedTarball();
      const first = path.join(c.dir, '0', 'userdir');
      installTarball(first, tarball);
      const flows = c.flows();
      const starting: Array<Promise<void>> = [];
      for (let i = 0; i < n; i++) {
        const userDir = path.join(c.dir, String(i), 'userdir');
        const dataDir = path.join(c.dir, String(i), 'data');
        if (i > 0) fs.cpSync(first, userDir, { recursive: true });
        fs.mkdirSync(dataDir, { recursive: true });
        const settingsFile = writeE2eSettings(userDir);
        const env = simulatorEnv(c.siagh, c.crm, dataDir, {
          pollIntervalSeconds: opts.pollIntervalSeconds,
          token: c.token,
          crmUser: clusterCrmUser(i),
          env: { DATABASE_URL: c.dbUrl, ...opts.env },
        });
        const inst: Instance = {
          index: i,
          userDir,
          dataDir,
          env,
          settingsFile,
          red: undefined as unknown as NodeRedProcess,
          earlierLogs: '',
          log: () => inst.earlierLogs + (inst.red ? inst.red.log() : ''),
          alive: () => !!inst.red && inst.red.child.exitCode === null && inst.red.child.signalCode === null,
        };
        c.instances.push(inst);
        starting.push(
          (async () => {
            inst.red = await launchNodeRed(userDir, settingsFile, env);
            await deployFlows(inst.red, flows);
          })(),
        );
      }
      await Promise.all(starting);
      return c;
    } catch (err) {
      await c.stop();
      throw err;
    }
  }

  set latency(ms: number) {
    this.siagh.faults.latencyMs = ms;
    this.crm.faults.latencyMs = ms;
  }

  /** The shipped flows as every instance runs them: cfg-store on PostgreSQL (DATABASE_URL), patched with `opts.store`, every node of a type in `opts.nodeSettings` patched; then `opts.extraFlows`. */
  flows(): FlowNode[] {
    const byType = this.opts.nodeSettings ?? {};
    const shipped = withStore(shippedFlows(), { backend: 'postgres', ...this.opts.store }).map((n) => (byType[n.type] ? { ...n, ...byType[n.type] } : n));
    return [...shipped, ...(this.opts.extraFlows ?? [])];
  }

  /** The Node-RED URLs, by instance. */
  get urls(): string[] {
    return this.instances.map((x) => x.red.url);
  }

  /** Indexes of the instances running now. */
  live(): number[] {
    return this.instances.filter((x) => x.alive()).map((x) => x.index);
  }

  /**
   * Deliver one webhook as the CRM does (GET with the query and the token) to instance `to`, or
   * to the next live instance in turn.
   */
  async webhook(kind: WebhookKind, fields: Record<string, string | undefined>, to?: number): Promise<WebhookReply & { instance: number }> {
    let i = to;
    if (i === undefined) {
      const live = this.live();
      if (!live.length) throw new Error('no instance is running');
      i = live[this.next++ % live.length];
    }
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries({ ...fields, token: this.token })) if (v !== undefined) q.set(k, v);
    const res = await fetch(`${this.instances[i].red.url}/webhook/crm/${kind}?${q.toString()}`);
    const text = await res.text();
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      /* not JSON */
    }
    return { status: res.status, body, text, instance: i };
  }

  /** GET /health of instance `i` (default: the first live one). */
  async health(i?: number): Promise<{ status?: string; queue?: { waiting: number; active: number; retrying: number; blocked: number; total: number } }> {
    const at = i ?? this.live()[0];
    const res = await fetch(`${this.instances[at].red.url}/health`);
    return (await res.json()) as never;
  }

  /** SIGKILL instance `i` (no chance to release a lease, a claim or a lock) and wait until it is gone. */
  async kill(i: number): Promise<void> {
    const inst = this.instances[i] as Instance;
    const c = inst.red.child;
    if (c.exitCode !== null || c.signalCode !== null) return;
    const gone = new Promise<void>((r) => c.once('exit', () => r()));
    c.kill('SIGKILL');
    await gone;
  }

  /** Start instance `i` again (killed first if running) on its user dir, port and environment; it runs its saved flows. */
  async restart(i: number, envChanges: Record<string, string | undefined> = {}): Promise<void> {
    const inst = this.instances[i] as Instance;
    for (const [k, v] of Object.entries(envChanges)) {
      if (v === undefined) delete inst.env[k];
      else inst.env[k] = v;
    }
    await this.kill(i);
    inst.earlierLogs += inst.red.log() + '\n--- Node-RED restarted ---\n';
    forgetNodeRed(inst.red);
    inst.red = await launchNodeRed(inst.userDir, inst.settingsFile, inst.env, inst.red.port);
  }

  /** A query on the cluster's database (as the application role). */
  async query<R extends Record<string, unknown>>(sql: string, params: unknown[] = []): Promise<R[]> {
    const c = new Client({ connectionString: this.dbUrl });
    await c.connect();
    try {
      return (await c.query<R>(sql, params)).rows;
    } finally {
      await c.end();
    }
  }

  /** Wait until every live instance's /health reports an empty queue (the queue is shared: one would do; all must answer). */
  async queueEmpty(what: string, timeoutMs = 60_000): Promise<void> {
    await waitFor(
      `${what}: the shared queue empty`,
      async () => {
        for (const i of this.live()) if ((await this.health(i)).queue?.total !== 0) return false;
        return true;
      },
      { timeoutMs, diagnose: () => this.diagnose() },
    );
  }

  /** Wait until the simulators' state has not changed for `quietMs`. */
  async quiet(what: string, quietMs = 1000, timeoutMs = 60_000): Promise<void> {
    await waitQuiet(what, () => [this.siagh.saveCount, this.siagh.contacts().length, this.siagh.preInvoices().length, [...this.crm.counts.values()].reduce((a, b) => a + b, 0)], {
      quietMs,
      timeoutMs,
      diagnose: () => this.diagnose(),
    });
  }

  /** The end of every instance's log, for failure messages. */
  diagnose = (lines = 25): string =>
    this.instances
      .map((x) => {
        const all = x.log().trimEnd().split('\n');
        return `--- instance ${x.index} (${x.alive() ? 'running' : 'not running'}), last ${Math.min(lines, all.length)} lines ---\n` + all.slice(-lines).join('\n');
      })
      .join('\n');

  /** Stop every instance and both simulators, and remove the temp folder (the database stays on its server). Safe to call twice. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.crm.beforeHandle = undefined;
    this.onCrmCall = undefined;
    await Promise.all(
      (this.instances as Instance[]).map(async (x) => {
        if (!x.red) return;
        await x.red.stop().catch(() => undefined);
        forgetNodeRed(x.red);
        const keep = process.env.E2E_LOG_DIR;
        if (keep) {
          fs.mkdirSync(keep, { recursive: true });
          fs.writeFileSync(path.join(keep, `${path.basename(this.dir)}-${x.index}.log`), x.log());
        }
      }),
    );
    await Promise.all([this.siagh.stop().catch(() => undefined), this.crm.stop().catch(() => undefined)]);
    removeTempDir(this.dir);
  }

  private countCrmCall(req: SimRequest): void {
    const m = /^Bearer\s+[^.]+\.([^.]+)\./.exec(String(req.headers.authorization ?? ''));
    if (!m) return;
    let name: unknown;
    try {
      name = (JSON.parse(Buffer.from(m[1], 'base64url').toString('utf8')) as Record<string, unknown>)['http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name'];
    } catch {
      return;
    }
    const i = this.crmCallsByInstance.findIndex((_, k) => clusterCrmUser(k).username === name);
    if (i < 0) return;
    const key = `${req.method} ${req.path}`;
    const calls = this.crmCallsByInstance[i];
    calls.set(key, (calls.get(key) ?? 0) + 1);
    this.onCrmCall?.(i, req);
  }
}
