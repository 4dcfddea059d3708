/**
 * The PostgreSQL side of the store: one connection pool per database, built from a connection
 * string (DATABASE_URL by default, the earlier service's name), a password given apart from it
 * (Node-RED credentials) and a TLS choice; and versioned schema migrations, per component, run
 * on start under an advisory lock so that several instances starting together migrate once.
 *
 * Each component of the store (queue, mapping, failed list, ...) keeps its own version in
 * `siagh_sync_schema`, so components are added and migrated independently.
 */
import { Pool, PoolClient, PoolConfig } from 'pg';
import { z } from 'zod';
import { SyncError } from '../errors';

export const SCHEMA_TABLE = 'siagh_sync_schema';

export const PgOptionsSchema = z.object({
  /** postgres://user[:password]@host[:port]/database[?options] */
  connectionString: z
    .string()
    .trim()
    .min(1, 'a PostgreSQL connection string is needed (DATABASE_URL, or the store node\'s setting)')
    .refine((s) => /^postgres(ql)?:\/\//i.test(s), 'a PostgreSQL connection string starts with postgres:// or postgresql://'),
  /** Overrides the URL's password (kept in credentials, never in the URL the flow saves). */
  password: z.string().optional(),
  /**
   * off: plain TCP (a database on the same host or private network); on: TLS with the server's
   * certificate checked against the system's roots and `ca` if given. There is no TLS without the
   * check: the package never turns certificate checks off.
   */
  tls: z.enum(['off', 'on']).default('off'),
  ca: z.string().optional(),
  maxConnections: z.number().int().min(1).max(100).default(10),
  connectTimeoutMs: z.number().int().min(100).default(10_000),
});
export type PgOptions = z.input<typeof PgOptionsSchema>;

/** The options from the environment: DATABASE_URL, DATABASE_PASSWORD, DATABASE_TLS (off | on). */
export function pgOptionsFromEnv(env: Record<string, string | undefined> = process.env): Partial<PgOptions> {
  const o: Partial<PgOptions> = {};
  if (env.DATABASE_URL) o.connectionString = env.DATABASE_URL;
  if (env.DATABASE_PASSWORD) o.password = env.DATABASE_PASSWORD;
  const tls = env.DATABASE_TLS?.trim().toLowerCase();
  if (tls === 'off' || tls === 'on') o.tls = tls;
  return o;
}

/** The pool settings for `pg`; throws BAD_INPUT with the reason when the options are unusable. */
export function poolConfig(input: PgOptions): PoolConfig {
  const r = PgOptionsSchema.safeParse(input);
  if (!r.success) throw new SyncError('CONFIG', `PostgreSQL store: ${r.error.issues.map((i) => i.message).join('; ')}`);
  const o = r.data;
  let url: URL;
  try {
    url = new URL(o.connectionString);
  } catch {
    throw new SyncError('CONFIG', 'PostgreSQL store: the connection string is not a URL (postgres://user@host:5432/database)');
  }
  if (!url.pathname || url.pathname === '/') throw new SyncError('CONFIG', 'PostgreSQL store: the connection string names no database (…/database at its end)');
  // pg lets the URL's password win over a `password` setting, so the credential goes into the URL.
  if (o.password !== undefined && o.password !== '') url.password = encodeURIComponent(o.password);
  const cfg: PoolConfig = {
    connectionString: url.toString(),
    max: o.maxConnections,
    connectionTimeoutMillis: o.connectTimeoutMs,
    idleTimeoutMillis: 30_000,
    application_name: 'node-red-contrib-siagh-sync',
  };
  if (o.tls === 'on') cfg.ssl = { rejectUnauthorized: true, ...(o.ca ? { ca: o.ca } : {}) };
  return cfg;
}

/** What an operator reads when the database cannot be reached or refuses us. */
export function describePgError(e: unknown): string {
  const err = e as { code?: string; message?: string };
  switch (err?.code) {
    case '28P01':
    case '28000':
      return 'PostgreSQL refused the login: check the user and password of the store';
    case '3D000':
      return 'PostgreSQL: the database in the connection string does not exist';
    case 'ECONNREFUSED':
      return 'PostgreSQL is not answering at that host and port (is it running?)';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'PostgreSQL: the host in the connection string is unknown';
    case '57P01':
    case '57P02':
    case '57P03':
      return 'PostgreSQL is restarting or shutting down; the work waits and resumes';
    default:
      return `PostgreSQL: ${String(err?.message ?? e).replace(/postgres(ql)?:\/\/[^@\s]*@/gi, 'postgres://…@')}`;
  }
}

/** Errors after which the same statement may succeed later (server restarting, connection cut). */
export function isTransientPgError(e: unknown): boolean {
  const code = (e as { code?: string })?.code ?? '';
  if (/^(08|57P|53)/.test(code)) return true; // connection exception, operator intervention, insufficient resources
  if (code === '40001' || code === '40P01') return true; // serialization failure, deadlock
  return ['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT'].includes(code) || /Connection terminated|connection timeout|not queryable/i.test(String((e as Error)?.message));
}

export interface Migration {
  /** The version this step brings the component to (1, 2, ...). */
  version: number;
  /** SQL run in one transaction. */
  sql: string;
}

/**
 * Brings `component`'s tables to the newest version in `steps`, once across instances (a
 * transaction-scoped advisory lock serialises concurrent starts). Returns the version reached.
 * A database newer than this release (a later version recorded) is refused: the operator runs
 * the newer release, or restores.
 */
export async function migrate(pool: Pool, component: string, steps: readonly Migration[]): Promise<number> {
  const sorted = [...steps].sort((a, b) => a.version - b.version);
  const newest = sorted.length ? sorted[sorted.length - 1].version : 0;
  const c = await pool.connect();
  // As in inTransaction: a connection cut mid-migration rejects the call (not an uncaught error)
  // and the broken client is dropped.
  let broken: Error | undefined;
  const onError = (e: Error) => {
    broken = e;
  };
  c.on('error', onError);
  try {
    await c.query('BEGIN');
    await c.query("SELECT pg_advisory_xact_lock(hashtext('siagh_sync:migrate'))");
    await c.query(`CREATE TABLE IF NOT EXISTS ${SCHEMA_TABLE} (component text PRIMARY KEY, version integer NOT NULL, migrated_at timestamptz NOT NULL DEFAULT now())`);
    const r = await c.query<{ version: number }>(`SELECT version FROM ${SCHEMA_TABLE} WHERE component = $1`, [component]);
    const current = r.rows[0]?.version ?? 0;
    if (current > newest) {
      throw new SyncError('CONFIG', `PostgreSQL store: the ${component} tables are at version ${current}, newer than this release knows (${newest}); run the newer release`);
    }
    for (const step of sorted) {
      if (step.version <= current) continue;
      await c.query(step.sql);
    }
    if (newest > current) {
      await c.query(
        `INSERT INTO ${SCHEMA_TABLE} (component, version) VALUES ($1, $2) ON CONFLICT (component) DO UPDATE SET version = EXCLUDED.version, migrated_at = now()`,
        [component, newest],
      );
    }
    await c.query('COMMIT');
    return newest;
  } catch (e) {
    if (!broken && isTransientPgError(e)) broken = e as Error;
    if (!broken) await c.query('ROLLBACK').catch(() => undefined);
    throw e;
  } finally {
    c.off('error', onError);
    c.release(broken);
  }
}

/** Runs `fn` in a transaction on one connection: COMMIT on success, ROLLBACK on error. */
export async function inTransaction<T>(pool: Pool, fn: (c: PoolClient) => Promise<T>): Promise<T> {
  const c = await pool.connect();
  // A connection cut between two statements (a server restart) is reported here, not thrown
  // from the client as an uncaught error; the broken client is then dropped, not pooled again.
  let broken: Error | undefined;
  const onError = (e: Error) => {
    broken = e;
  };
  c.on('error', onError);
  try {
    await c.query('BEGIN');
    const out = await fn(c);
    await c.query('COMMIT');
    return out;
  } catch (e) {
    if (!broken && isTransientPgError(e)) broken = e as Error;
    if (!broken) await c.query('ROLLBACK').catch(() => undefined);
    throw e;
  } finally {
    c.off('error', onError);
    c.release(broken);
  }
}

/** A pool for `opts` whose idle-connection errors (server restart) are reported, not thrown. */
export function openPool(opts: PgOptions, onError?: (e: Error) => void): Pool {
  const pool = new Pool(poolConfig(opts));
  pool.on('error', (e) => onError?.(e));
  return pool;
}
