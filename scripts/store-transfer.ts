/**
 * `npm run store:transfer -- --from file:<dir> --to postgres [--dry-run]` (and back:
 * `--from postgres --to file:<dir>`): moves a store's mappings, meta values (poll cursors), failed
 * list and sync queue jobs between a data folder and PostgreSQL (lib/store/transfer.ts). The
 * database is the one DATABASE_URL names (DATABASE_PASSWORD and DATABASE_TLS as for Node-RED).
 *
 * Stop Node-RED first: a data folder in use is refused by its lock; a PostgreSQL store with jobs in
 * flight (live leases: an instance is working) is reported and nothing is written. A dry run
 * reports what would move and every conflict, and writes nothing. Exit code 0: done (or a clean
 * dry run); 1: conflicts, jobs in flight, or an error; 2: wrong arguments.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Pool } from 'pg';
import { SyncError } from '../lib/errors';
import { FileFailedBackend } from '../lib/oplog/file-failed-backend';
import { FAILED_FILE } from '../lib/oplog/oplog';
import { PgFailedList } from '../lib/oplog/pg-failed-list';
import { describePgError, openPool, pgOptionsFromEnv, type PgOptions } from '../lib/pg/db';
import { MAPPING_FILE, mappingFileIn } from '../lib/store/data-folder';
import { FileMappingBackend } from '../lib/store/file-mapping-backend';
import { PgMappingStore } from '../lib/store/pg-mapping-store';
import { PgQueue, PG_QUEUE_TABLE } from '../lib/queue/pg-queue';
import { QUEUE_FILE, QUEUE_JOURNAL, SyncQueue } from '../lib/queue/sync-queue';
import { describeTransfer, transferStore, type StoreSide } from '../lib/store/transfer';

const USAGE = `Usage: npm run store:transfer -- --from <store> --to <store> [--dry-run]
  <store> is file:<data folder> or postgres (the database DATABASE_URL names;
  DATABASE_PASSWORD and DATABASE_TLS=off|on as for Node-RED).
  Moves the mappings, meta values (poll cursors), the failed list and the sync queue's jobs
  (waiting and retrying). Stop Node-RED first: jobs in flight stop the move.
  --dry-run  report what would move and any conflicts; write nothing.`;

/** Everything moved keeps: no bound of the failed list drops an entry on the way. */
const KEEP_ALL = { maxEntries: 1_000_000_000, maxAgeDays: 0 };

type Spec = { kind: 'file'; dir: string } | { kind: 'postgres' };

class UsageError extends Error {}

function parseSpec(v: string | undefined, flag: string): Spec {
  if (!v) throw new UsageError(`${flag} is missing.`);
  if (v === 'postgres' || v === 'postgresql') return { kind: 'postgres' };
  if (v.startsWith('file:') && v.length > 5) return { kind: 'file', dir: path.resolve(v.slice(5)) };
  throw new UsageError(`${flag} ${v}: say file:<data folder> or postgres.`);
}

export function parseArgs(argv: string[]): { from: Spec; to: Spec; dryRun: boolean } | 'help' {
  const vals: Record<string, string | undefined> = {};
  let dryRun = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--help' || a === '-h') return 'help';
    if (a === '--dry-run') dryRun = true;
    else if (a === '--from' || a === '--to') vals[a] = argv[++i];
    else if (a.startsWith('--from=') || a.startsWith('--to=')) vals[a.slice(0, a.indexOf('='))] = a.slice(a.indexOf('=') + 1);
    else throw new UsageError(`Unknown argument ${a}.`);
  }
  const from = parseSpec(vals['--from'], '--from');
  const to = parseSpec(vals['--to'], '--to');
  if (from.kind === to.kind && (from.kind === 'postgres' || (to.kind === 'file' && from.kind === 'file' && from.dir === to.dir))) {
    throw new UsageError('--from and --to name the same store.');
  }
  return { from, to, dryRun };
}

interface Opened {
  side?: StoreSide;
  label: string;
  close(): Promise<void>;
}

async function openFile(dir: string, role: 'source' | 'target', dryRun: boolean): Promise<Opened> {
  const label = `file:${dir}`;
  const exists = fs.existsSync(mappingFileIn(dir));
  if (!exists && role === 'source') throw new SyncError('CONFIG', `${dir} holds no store (no ${MAPPING_FILE}).`);
  if (!exists && dryRun) return { label, close: async () => undefined }; // an empty target: opening it would create it
  const mapping = await FileMappingBackend.open(mappingFileIn(dir));
  let failed: FileFailedBackend;
  try {
    failed = await FileFailedBackend.open(path.join(dir, FAILED_FILE), KEEP_ALL);
  } catch (e) {
    await mapping.close();
    throw e;
  }
  // The queue: a folder without one has no jobs (a source, or a dry run's target, is not given one).
  const hasQueue = [QUEUE_FILE, QUEUE_JOURNAL].some((f) => fs.existsSync(path.join(dir, f)));
  let queue: SyncQueue | undefined;
  try {
    if (hasQueue || (role === 'target' && !dryRun)) queue = await SyncQueue.open(dir);
  } catch (e) {
    await Promise.all([mapping.close(), failed.close()]);
    throw e;
  }
  return { label, side: { label, mapping, failed, queue }, close: async () => void (await Promise.all([mapping.close(), failed.close(), queue?.release()])) };
}

async function openPostgres(env: NodeJS.ProcessEnv, role: 'source' | 'target', dryRun: boolean): Promise<Opened> {
  const opts = pgOptionsFromEnv(env);
  if (!opts.connectionString) throw new SyncError('CONFIG', 'Set DATABASE_URL to the PostgreSQL database (postgres://user@host:5432/database).');
  const pool: Pool = openPool(opts as PgOptions, () => undefined);
  const label = 'postgres';
  let queue: PgQueue | undefined;
  const close = async () => {
    await queue?.release().catch(() => undefined);
    await pool.end().catch(() => undefined);
  };
  try {
    if (dryRun && role === 'target') {
      const r = await pool.query<{ t: string | null }>("SELECT to_regclass('siagh_sync_mappings') AS t");
      if (r.rows[0].t === null) return { label, close }; // no tables yet: an empty target, left as it is
    }
    const mapping = await PgMappingStore.open(pool);
    const failed = await PgFailedList.open(pool, KEEP_ALL);
    // The queue: a database without its table has no jobs (a source, or a dry run's target, is not given one).
    const q = await pool.query<{ t: string | null }>('SELECT to_regclass($1) AS t', [PG_QUEUE_TABLE]);
    // No sweep: a lease that ran out is moved as waiting, never ended here with nobody to report it.
    if (q.rows[0].t !== null || (role === 'target' && !dryRun)) queue = await PgQueue.connect(opts as PgOptions, { sweep: false });
    return { label, side: { label, mapping, failed, queue }, close };
  } catch (e) {
    await close();
    throw e instanceof SyncError ? e : new SyncError('STORE_IO', describePgError(e));
  }
}

function open(spec: Spec, env: NodeJS.ProcessEnv, role: 'source' | 'target', dryRun: boolean): Promise<Opened> {
  return spec.kind === 'file' ? openFile(spec.dir, role, dryRun) : openPostgres(env, role, dryRun);
}

/** The command; returns its exit code. */
export async function main(argv: string[], env: NodeJS.ProcessEnv = process.env, out: (line: string) => void = console.log): Promise<number> {
  let args: ReturnType<typeof parseArgs>;
  try {
    args = parseArgs(argv);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    out(`store-transfer: ${e.message}`);
    out(USAGE);
    return 2;
  }
  if (args === 'help') {
    out(USAGE);
    return 0;
  }
  const opened: Opened[] = [];
  try {
    const from = await open(args.from, env, 'source', args.dryRun);
    opened.push(from);
    const to = await open(args.to, env, 'target', args.dryRun);
    opened.push(to);
    const report = await transferStore({ from: from.side!, to: to.side, toLabel: to.label, dryRun: args.dryRun });
    for (const line of describeTransfer(report)) out(line);
    return report.conflictCount || report.inFlight ? 1 : 0;
  } catch (e) {
    out(`store-transfer: ${e instanceof Error ? e.message : String(e)}`);
    return 1;
  } finally {
    for (const o of opened.reverse()) await o.close().catch(() => undefined);
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e: unknown) => {
      console.error(e);
      process.exit(1);
    },
  );
}
