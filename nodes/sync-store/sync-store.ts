/**
 * sync-store: the config node that owns the data folder (mapping, queue, failed list, sync log,
 * poll cursor, import reports) and the queue's retry policy. Every node that keeps or reads sync
 * data points at one; none builds a file path of its own.
 *
 * Backend "file": a folder (default `siagh-sync` in the Node-RED user dir, or SYNC_DATA_DIR).
 * Backend "postgres": the mapping, claims, queue, failed list and poll cursor in one PostgreSQL
 * database shared by several Node-RED instances (pgUrl, blank: DATABASE_URL; the password in the
 * credentials, blank: DATABASE_PASSWORD, else the URL's own; pgTls, blank: DATABASE_TLS, else
 * off). The sync log, import reports and webhook-rejection counts stay in the instance's folder.
 */
import { Client } from 'pg';
import { SyncError, toSyncError } from '../../lib/errors';
import { describePgError, PgOptions, pgOptionsFromEnv, poolConfig, SCHEMA_TABLE } from '../../lib/pg/db';
import { hideSecrets } from '../../lib/oplog/scrub';
import { envRefName } from '../../lib/env';
import { DEFAULT_QUEUE_POLICY, QueuePolicy, queuePolicyFromEnv } from '../../lib/queue/sync-queue';
import { defaultDataDir, userPath } from '../shared/data-path';
import type { Node, NodeAPI, NodeDef, Request, Response } from '../shared/red';
import type { StoreSettings } from '../shared/store-ref';
import { num } from '../shared/support';
import { createNode, migrationSettings } from '../shared/saved-settings';

interface SyncStoreDef extends NodeDef {
  backend?: 'file' | 'postgres';
  dir?: string;
  /** postgres: the connection string (blank: DATABASE_URL; ${VAR} is read from the environment). */
  pgUrl?: string;
  /** postgres: 'off' | 'on' (blank: DATABASE_TLS, else off). */
  pgTls?: string;
  /** postgres: the CA certificate(s) to trust (PEM), with TLS on. */
  pgCa?: string;
  /** Blank: MAX_RETRY_ATTEMPTS from the environment, else the default. */
  maxAttempts?: string | number;
  maxAgeHours?: string | number;
  leaseSeconds?: string | number;
  /** The first retry's delay; each next one doubles, up to maxRetryDelaySeconds. */
  firstRetrySeconds?: string | number;
  maxRetryDelaySeconds?: string | number;
}

export = function (RED: NodeAPI) {
  function SyncStore(this: Node & { settings?: () => StoreSettings }, def: SyncStoreDef) {
    def = createNode(RED, this, 'sync-store', def);
    const fromEnv: QueuePolicy = queuePolicyFromEnv(process.env);
    const blank = (v: unknown) => v === undefined || v === null || String(v).trim() === '';
    const policy: QueuePolicy = {
      ...fromEnv,
      maxAttempts: blank(def.maxAttempts) ? fromEnv.maxAttempts : Math.round(num(def.maxAttempts, DEFAULT_QUEUE_POLICY.maxAttempts, 1)),
      maxAgeMs: blank(def.maxAgeHours) ? fromEnv.maxAgeMs : num(def.maxAgeHours, 24, 0.01) * 3_600_000,
      leaseMs: num(def.leaseSeconds, DEFAULT_QUEUE_POLICY.leaseMs / 1000, 1) * 1000,
      // Blank: RETRY_BASE_SECONDS / RETRY_MAX_DELAY_SECONDS from the environment, else 5 s / 600 s.
      baseMs: blank(def.firstRetrySeconds) ? fromEnv.baseMs : num(def.firstRetrySeconds, 5, 0.01) * 1000,
      maxMs: blank(def.maxRetryDelaySeconds) ? fromEnv.maxMs : num(def.maxRetryDelaySeconds, 600, 0.01) * 1000,
    };
    let dir: string | undefined;
    let problem: unknown;
    try {
      dir = userPath(def.dir, defaultDataDir(), RED.settings.userDir, 'data folder');
    } catch (e) {
      problem = e;
    }
    const backend = def.backend === 'postgres' ? 'postgres' : 'file';
    let pg: PgOptions | undefined;
    if (backend === 'postgres' && !problem) {
      try {
        pg = storePgOptions(def, (this.credentials ?? {}) as { pgPassword?: string }, process.env);
      } catch (e) {
        problem = e;
      }
    }
    this.settings = () => {
      if (!dir || problem) throw problem;
      return backend === 'postgres' ? { dir, policy, backend, pg } : { dir, policy, backend };
    };
  }
  RED.nodes.registerType('sync-store', SyncStore, {
    settings: migrationSettings('sync-store'),
    credentials: { pgPassword: { type: 'password' } },
  });

  // Test connection: connects with the dialog's values, reads the server's version and the
  // store's schema versions, changes nothing. The reply never carries the password.
  RED.httpAdmin.post('/siagh-sync/sync-store/test', RED.auth.needsPermission('sync-store.write'), (req: Request, res: Response) => {
    const body = (req.body && typeof req.body === 'object' ? req.body : {}) as Record<string, unknown>;
    const text = (k: string) => (typeof body[k] === 'string' ? (body[k] as string) : '');
    const secrets: string[] = [];
    const reply = (ok: boolean, message: string, code?: string, details?: Record<string, unknown>) =>
      res.json({ ok, message: hideSecrets(message, secrets), ...(code ? { code } : {}), ...(details ? { details } : {}) });
    let opts: PgOptions;
    try {
      opts = testOptions(RED, body, text, secrets);
    } catch (e) {
      const err = toSyncError(e);
      reply(false, err.message, err.code);
      return;
    }
    void testPg(opts).then(
      (r) => reply(true, r.message, undefined, r.details),
      (e) => reply(false, describePgError(e), 'CONFIG'),
    );
  });
};

const UNCHANGED = '__PWRD__';

/** The PostgreSQL options of a deployed store: its settings, then the environment. */
function storePgOptions(def: { pgUrl?: unknown; pgTls?: unknown; pgCa?: unknown }, creds: { pgPassword?: string }, env: Record<string, string | undefined>): PgOptions {
  const fromEnv = pgOptionsFromEnv(env);
  const str = (v: unknown) => (typeof v === 'string' ? v.trim() : '');
  const url = resolveEnv(str(def.pgUrl), env) || fromEnv.connectionString || '';
  if (!url) throw new SyncError('CONFIG', 'PostgreSQL store: no connection string. Type one in the data store (postgres://user@host:5432/database) or set DATABASE_URL.');
  const tls = str(def.pgTls) || fromEnv.tls || 'off';
  if (tls !== 'off' && tls !== 'on') throw new SyncError('CONFIG', `PostgreSQL store: TLS is "${tls}"; it is "off" or "on".`);
  const password = creds.pgPassword || fromEnv.password;
  const ca = str(def.pgCa);
  const opts: PgOptions = { connectionString: url, tls, ...(password ? { password } : {}), ...(ca ? { ca } : {}) };
  poolConfig(opts); // refuses an unusable string with the reason now
  return opts;
}

/** `${NAME}` as the whole value is read from the environment (as Node-RED does for text settings). */
function resolveEnv(v: string, env: Record<string, string | undefined>): string {
  const name = envRefName(v);
  return name ? (env[name] ?? '').trim() : v;
}

/**
 * The options a Test connection may use. The stored password and the environment are used only
 * for a deployed sync-store node tested with the connection string it was deployed with (blank
 * or `${VAR}` included); otherwise the dialog's values alone, and a `${VAR}` is refused.
 */
function testOptions(RED: NodeAPI, body: Record<string, unknown>, text: (k: string) => string, secrets: string[]): PgOptions {
  const id = text('id');
  const url = text('pgUrl').trim();
  let password = text('pgPassword');
  secrets.push(password);
  const found = (id ? RED.nodes.getNode(id) : null) as (Node & { type?: string; credentials?: { pgPassword?: string } }) | null;
  if (found && found.type !== 'sync-store') throw new SyncError('CONFIG', `Node ${id} is not a sync-store node.`);
  let configured: string | undefined;
  if (found) {
    RED.nodes.eachNode((n) => {
      if (n.id === id) configured = typeof n.pgUrl === 'string' ? n.pgUrl.trim() : '';
    });
  }
  const stored = found?.credentials?.pgPassword ?? '';
  if (stored) secrets.push(stored);
  const envPw = process.env.DATABASE_PASSWORD ?? '';
  if (envPw) secrets.push(envPw);
  const deployedSame = !!found && configured !== undefined && configured === url;
  if (deployedSame) {
    const usePw = !password || password === UNCHANGED ? stored : password;
    return storePgOptions({ pgUrl: url, pgTls: text('pgTls'), pgCa: text('pgCa') }, { pgPassword: usePw }, process.env);
  }
  if (!url || envRefName(url)) {
    throw new SyncError('CONFIG', 'Test connection reads no environment variable (DATABASE_URL included) from the dialog: type the connection string, or deploy the store and test it unchanged.');
  }
  if (password === UNCHANGED) {
    if (found) throw new SyncError('CONFIG', 'The stored password is used only with the connection string the store was deployed with. Type the password to test another (or deploy first).');
    password = '';
  }
  const tls = text('pgTls').trim() || 'off';
  const ca = text('pgCa').trim();
  const opts: PgOptions = { connectionString: url, tls: tls as 'off' | 'on', ...(password ? { password } : {}), ...(ca ? { ca } : {}) };
  try {
    const u = new URL(url);
    if (u.password) secrets.push(decodeURIComponent(u.password), u.password);
  } catch {
    /* poolConfig says what is wrong */
  }
  poolConfig(opts);
  return opts;
}

async function testPg(opts: PgOptions): Promise<{ message: string; details: Record<string, unknown> }> {
  const cfg = poolConfig({ ...opts, connectTimeoutMs: 5000 });
  const c = new Client({ ...cfg, connectionTimeoutMillis: 5000 });
  c.on('error', () => undefined);
  try {
    await c.connect();
    const v = await c.query<{ v: string; db: string }>("SELECT current_setting('server_version') AS v, current_database() AS db");
    const db = v.rows[0].db;
    const version = v.rows[0].v.split(' ')[0]; // "15.18 (Debian 15.18-0+deb12u1)" → 15.18
    const t = await c.query<{ t: string | null }>('SELECT to_regclass($1)::text AS t', [SCHEMA_TABLE]);
    let schema: Record<string, number> = {};
    if (t.rows[0]?.t) {
      const r = await c.query<{ component: string; version: number }>(`SELECT component, version FROM ${SCHEMA_TABLE} ORDER BY component`);
      schema = Object.fromEntries(r.rows.map((x) => [x.component, x.version]));
    }
    const parts = Object.entries(schema).map(([k, n]) => `${k} ${n}`);
    const sv = parts.length ? `schema version ${parts.join(', ')}` : 'no store tables yet: they are created on deploy';
    return { message: `connected (PostgreSQL ${version}, database ${db}, ${sv})`, details: { serverVersion: version, database: db, schema } };
  } finally {
    await c.end().catch(() => undefined);
  }
}
