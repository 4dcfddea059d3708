/**
 * The data folder and the queue's retry policy of a node: from the sync-store config node it
 * points at, or (no store chosen, as in flows saved before sync-store existed) the default folder
 * with the policy from the environment. Nodes ask here; none builds a data path of its own.
 */
import { SyncError } from '../../lib/errors';
import type { PgOptions } from '../../lib/pg/db';
import type { QueueBackend } from '../../lib/queue/queue-backend';
import { PgQueue } from '../../lib/queue/pg-queue';
import { openPool, poolConfig } from '../../lib/pg/db';
import type { Pool } from 'pg';
import type { MappingBackend } from '../../lib/store/mapping-backend';
import { PgMappingStore } from '../../lib/store/pg-mapping-store';
import { FileMappingBackend } from '../../lib/store/file-mapping-backend';
import { MappingStore } from '../../lib/store/mapping-store';
import type { FailedBackend } from '../../lib/oplog/failed-backend';
import { PgFailedList } from '../../lib/oplog/pg-failed-list';
import { QueuePolicy, queuePolicyFromEnv, SyncQueue } from '../../lib/queue/sync-queue';
import { MAPPING_FILE, mappingFileIn, REPORTS_DIR, reportsDirIn } from '../../lib/store/data-folder';
import path from 'node:path';
import { defaultDataDir, userPath } from './data-path';
import type { NodeAPI } from './red';

export interface StoreSettings {
  /**
   * Absolute path of the data folder: mapping, queue, failed list, sync log, poll cursor, reports
   * (with the postgres backend: the sync log, reports and webhook-rejection counts only).
   */
  dir: string;
  policy: QueuePolicy;
  /** Where the mapping, claims, queue, failed list and poll cursor live (default 'file'). */
  backend?: 'file' | 'postgres';
  /** postgres: the connection options (the password among them: never shown). */
  pg?: PgOptions;
}

/** What a deployed sync-store config node exposes to the nodes that point at it. */
export interface StoreConfigNode {
  type: 'sync-store';
  settings(): StoreSettings;
}

export function defaultStoreSettings(RED: NodeAPI): StoreSettings {
  return { dir: userPath('', defaultDataDir(), RED.settings.userDir, 'data folder'), policy: queuePolicyFromEnv(process.env) };
}

/** The settings of the sync-store node `id`, or the defaults when none is chosen. */
export function storeSettings(RED: NodeAPI, id: unknown): StoreSettings {
  if (typeof id === 'string' && id) {
    const n = RED.nodes.getNode(id) as Partial<StoreConfigNode> | null;
    if (n && n.type === 'sync-store' && typeof n.settings === 'function') return n.settings();
    throw new SyncError('CONFIG', 'The data store this node points at (a sync-store config node) is not deployed or was deleted: open the node, choose a data store, and deploy.');
  }
  return defaultStoreSettings(RED);
}

/**
 * The sync queue of a data store, shared by the nodes of this process (each calls `release()` when
 * it closes). Nodes use it through `QueueBackend` only, so the backend is chosen here alone.
 */
export async function openQueueFor(s: StoreSettings): Promise<QueueBackend> {
  if (s.backend !== 'postgres') return SyncQueue.open(s.dir, { policy: s.policy });
  if (!s.pg) throw new SyncError('CONFIG', 'PostgreSQL store: no connection options.');
  const q = await PgQueue.open(s.pg, { policy: s.policy });
  pgQueues.set(s.dir, q);
  return q;
}

/** The PostgreSQL queues opened here, by the data folder of their store (for peekQueueIn). */
const pgQueues = new Map<string, QueueBackend>();

/** The queue of the data store in `dir` if a node of this process has it open (for the operator's stats). */
export function peekQueueIn(dir: string): QueueBackend | undefined {
  return SyncQueue.peek(dir) ?? pgQueues.get(dir);
}

interface SharedBackends {
  refs: number;
  pool: Pool;
  mapping: Promise<MappingBackend>;
  failed: Promise<FailedBackend>;
}
const pgShared = new Map<string, SharedBackends>();

/**
 * The mapping store and failed list of a PostgreSQL store, shared by the nodes of this process:
 * one pool per database, each component migrated once at open. Each user calls the returned
 * `release()` when it closes; the last one closes the pool.
 */
export function openPgBackendsFor(s: StoreSettings): { mapping: Promise<MappingBackend>; failed: Promise<FailedBackend>; release(): Promise<void> } {
  if (s.backend !== 'postgres' || !s.pg) throw new SyncError('CONFIG', 'This data store keeps its data in files, not in PostgreSQL.');
  const key = String(poolConfig(s.pg).connectionString);
  let sh = pgShared.get(key);
  if (!sh) {
    const pool = openPool(s.pg, () => undefined); // idle connections cut by a restart: the next query reconnects
    sh = { refs: 0, pool, mapping: PgMappingStore.open(pool), failed: PgFailedList.open(pool) };
    sh.mapping.catch(() => undefined);
    sh.failed.catch(() => undefined);
    pgShared.set(key, sh);
  }
  sh.refs++;
  const mine = sh;
  let released = false;
  return {
    mapping: mine.mapping,
    failed: mine.failed,
    async release() {
      if (released) return;
      released = true;
      if (--mine.refs > 0) return;
      pgShared.delete(key);
      await Promise.allSettled([mine.mapping.then((m) => m.close()), mine.failed.then((f) => f.close())]);
      await mine.pool.end().catch(() => undefined);
    },
  };
}

/** A PostgreSQL store as the operator may see it: its URL without the password. */
function pgKeyOf(s: StoreSettings): string {
  const u = new URL(String(poolConfig(s.pg!).connectionString));
  u.password = '';
  return u.toString();
}

/**
 * The failed list of a sync-log node's store for its OpLog: none for a file store (the OpLog keeps
 * failed.json in the data folder), else the store's PostgreSQL list, shared by every instance on
 * the database. Call `release()` when the node closes, after releasing its OpLog.
 */
export async function openFailedFor(s: StoreSettings): Promise<{ backend: FailedBackend; where: string; release(): Promise<void> } | undefined> {
  if (s.backend !== 'postgres') return undefined;
  const h = openPgBackendsFor(s);
  try {
    return { backend: await h.failed, where: `PostgreSQL ${pgKeyOf(s)}`, release: () => h.release() };
  } catch (e) {
    await h.release();
    throw e;
  }
}

/**
 * The mapping file of a node: in its data store's folder; in a flow saved before sync-store with a
 * file setting of its own (and no store chosen), that file.
 */
export function mappingFileFor(RED: NodeAPI, def: { store?: unknown; file?: unknown }): string {
  if (typeof def.file === 'string' && def.file.trim() && !def.store) {
    return userPath(def.file, path.join(defaultDataDir(), MAPPING_FILE), RED.settings.userDir, 'mapping file path');
  }
  return mappingFileIn(storeSettings(RED, def.store).dir);
}

/** The import's report folder: in the data store's folder, or a legacy report-folder setting. */
export function reportsDirFor(RED: NodeAPI, def: { store?: unknown; reportDir?: unknown }): string {
  if (typeof def.reportDir === 'string' && def.reportDir.trim() && !def.store) {
    return userPath(def.reportDir, path.join(defaultDataDir(), REPORTS_DIR), RED.settings.userDir, 'report folder');
  }
  return reportsDirIn(storeSettings(RED, def.store).dir);
}

/** The data folder of a node: its data store's, or a legacy folder setting (flows saved before sync-store). */
export function dataDirFor(RED: NodeAPI, def: { store?: unknown; dir?: unknown }, what: string): string {
  if (typeof def.dir === 'string' && def.dir.trim() && !def.store) return userPath(def.dir, defaultDataDir(), RED.settings.userDir, what);
  return storeSettings(RED, def.store).dir;
}

/**
 * The short status text of a store that could not be opened: the data folder locked, or the
 * PostgreSQL reason (wrong password, unknown database, not answering); the node's error says
 * what to do.
 */
export function storeProblemText(e: unknown): string {
  const err = e as { code?: string; cause?: { code?: string }; message?: string };
  if (err?.code === 'STORE_LOCKED') return 'data folder locked';
  const pgCode = err?.cause?.code ?? err?.code ?? '';
  if (pgCode === '28P01' || pgCode === '28000') return 'PostgreSQL: wrong user or password';
  if (pgCode === '3D000') return 'PostgreSQL: unknown database';
  if (['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT'].includes(pgCode) || /^57P/.test(pgCode)) return 'waiting for PostgreSQL';
  if (/^PostgreSQL store:/.test(String(err?.message ?? ''))) return 'PostgreSQL: bad settings';
  return 'queue error';
}

/** A node's mapping store, opened through `openMappingFor`; `key` names it in messages (claims). */
export interface MappingHandle {
  /** The mapping file's path, or `postgres://user@host:port/database` (no password). */
  key: string;
  backend: MappingBackend;
  release(): Promise<void>;
}

const pgMappings = new Map<string, MappingBackend>();

/**
 * The mapping store of a node (`def.store`, or a legacy `file` setting): the file store of its
 * data folder, or the PostgreSQL store's (shared per database). What a message carries as
 * `mappingFile` and in its claim is the handle's key; `peekMapping(key)` finds the store again.
 */
export async function openMappingFor(RED: NodeAPI, def: { store?: unknown; file?: unknown }): Promise<MappingHandle> {
  const legacyFile = typeof def.file === 'string' && def.file.trim() && !def.store;
  const s = legacyFile ? undefined : storeSettings(RED, def.store);
  if (!s || s.backend !== 'postgres') {
    const b = await FileMappingBackend.open(mappingFileFor(RED, def));
    return { key: b.mappingStore.filePath, backend: b, release: () => b.close() };
  }
  const h = openPgBackendsFor(s);
  let m: MappingBackend;
  try {
    m = await h.mapping;
  } catch (e) {
    await h.release();
    throw e;
  }
  const key = pgKeyOf(s);
  pgMappings.set(key, m);
  pgMappingsByDir.set(path.resolve(s.dir), m);
  return { key, backend: m, release: () => h.release() };
}

/** The PostgreSQL mapping stores opened here, by the data folder of their store (for the operator's console). */
const pgMappingsByDir = new Map<string, MappingBackend>();

/** The mapping store of the data store in `dir` if a node of this process has it open: file or PostgreSQL. */
export function peekMappingIn(dir: string): MappingBackend | undefined {
  const pg = pgMappingsByDir.get(path.resolve(dir));
  if (pg) return pg;
  const f = MappingStore.peek(mappingFileIn(dir));
  return f ? new FileMappingBackend(f) : undefined;
}

/** The mapping store named `key` if a node of this process has it open. */
export function peekMapping(key: string): MappingBackend | undefined {
  const pg = pgMappings.get(key);
  if (pg) return pg;
  const f = MappingStore.peek(key);
  return f ? new FileMappingBackend(f) : undefined;
}

/**
 * The file store behind a mapping backend, for the work that still needs it (sync-mapping's
 * rebuild, siagh-import): on a PostgreSQL store that work is refused with what to do instead.
 */
export function fileStoreOf(b: MappingBackend, what: string): MappingStore {
  if (b instanceof FileMappingBackend) return b.mappingStore;
  throw new SyncError('CONFIG', `The ${what} runs on a file data store only in this release. Move the store to files (npm run store:transfer), run it there, and move it back; or run it on an instance whose sync-store keeps files.`);
}
