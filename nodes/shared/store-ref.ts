/**
 * The data folder and the queue's retry policy of a node: from the sync-store config node it
 * points at, or (no store chosen, as in flows saved before sync-store existed) the default folder
 * with the policy from the environment. Nodes ask here; none builds a data path of its own.
 */
import { SyncError } from '../../lib/errors';
import type { PgOptions } from '../../lib/pg/db';
import type { QueueBackend } from '../../lib/queue/queue-backend';
import { PgQueue } from '../../lib/queue/pg-queue';
import { isTransientPgError, openPool, poolConfig } from '../../lib/pg/db';
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
import type { Node, NodeAPI } from './red';

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
 * it closes). Nodes use it through `QueueBackend` only, so the backend is chosen here alone. A
 * PostgreSQL store that cannot be opened (not reachable yet, a wrong password the operator may
 * still fix) is tried again with backoff (`keepOpening`) until it opens or `watch.signal` aborts.
 */
export async function openQueueFor(s: StoreSettings, watch: StoreWatch = {}): Promise<QueueBackend> {
  if (s.backend !== 'postgres') return SyncQueue.open(s.dir, { policy: s.policy });
  if (!s.pg) throw new SyncError('CONFIG', 'PostgreSQL store: no connection options.');
  const pg = s.pg;
  const q = await keepOpening(() => PgQueue.open(pg, { policy: s.policy }), watch);
  pgQueues.set(s.dir, q);
  return q;
}

/** How a node follows the opening of its store: told of each failed try, stopped when it closes. */
export interface StoreWatch {
  /** Each try that failed, with whether waiting alone may heal it (see `storeWaitsFor`). */
  onWait?(e: unknown): void;
  /** Aborted when the node closes: no more tries, and the opening rejects. */
  signal?: AbortSignal;
}

/** The pause after the first failed try of a store; it doubles up to REOPEN_MAX_MS. */
export const REOPEN_FIRST_MS = 1000;
export const REOPEN_MAX_MS = 30_000;

/** The error an opening rejects with once its node closed (nothing to show or log). */
export class StoreOpeningStopped extends Error {
  constructor() {
    super('The data store was not opened: the node was stopped or redeployed.');
  }
}

function pause(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new StoreOpeningStopped());
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', stop);
      resolve();
    }, ms);
    t.unref?.();
    const stop = () => {
      clearTimeout(t);
      reject(new StoreOpeningStopped());
    };
    signal?.addEventListener('abort', stop, { once: true });
  });
}

/**
 * `open()` until it succeeds: after a failed try `watch.onWait(e)` is told, and the next try comes
 * after a pause of 1 s doubling to 30 s. Every failure is tried again, also those waiting alone
 * will not heal (a wrong password, an unknown database): the operator may fix the server, and the
 * nodes then open without a redeploy. Rejects only when `watch.signal` aborts (StoreOpeningStopped);
 * a caller without a signal (it could not stop the tries) gets one try and its error.
 */
export async function keepOpening<T>(open: () => Promise<T>, watch: StoreWatch = {}): Promise<T> {
  let wait = REOPEN_FIRST_MS;
  for (;;) {
    if (watch.signal?.aborted) throw new StoreOpeningStopped();
    try {
      return await open();
    } catch (e) {
      if (watch.signal?.aborted) throw new StoreOpeningStopped();
      watch.onWait?.(e);
      if (!watch.signal) throw e;
    }
    await pause(wait, watch.signal);
    wait = Math.min(wait * 2, REOPEN_MAX_MS);
  }
}

/** `p`, or a StoreOpeningStopped rejection as soon as `signal` aborts. */
function untilAborted<T>(p: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (!signal) return p;
  return new Promise<T>((resolve, reject) => {
    if (signal.aborted) return reject(new StoreOpeningStopped());
    const stop = () => reject(new StoreOpeningStopped());
    signal.addEventListener('abort', stop, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', stop);
        resolve(v);
      },
      (e) => {
        signal.removeEventListener('abort', stop);
        reject(e);
      },
    );
  });
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
  /** Aborted when the last user releases: the openings stop trying. */
  stop: AbortController;
  mapping: Promise<MappingBackend>;
  failed: Promise<FailedBackend>;
  /** The users' onWait, told of every failed try of either opening. */
  waiters: Set<(e: unknown) => void>;
  /** The last failed try while not yet open (told to a user that comes later). */
  problem?: unknown;
}
const pgShared = new Map<string, SharedBackends>();

/**
 * The mapping store and failed list of a PostgreSQL store, shared by the nodes of this process:
 * one pool per database, each component migrated once at open. A database that cannot be reached
 * (or refuses the login) is tried again with backoff (`keepOpening`) while any user holds the
 * store; each user's `watch.onWait` hears of the failed tries. Each user calls the returned
 * `release()` when it closes; the last one stops the tries and closes the pool.
 */
export function openPgBackendsFor(s: StoreSettings, watch: StoreWatch = {}): { mapping: Promise<MappingBackend>; failed: Promise<FailedBackend>; release(): Promise<void> } {
  if (s.backend !== 'postgres' || !s.pg) throw new SyncError('CONFIG', 'This data store keeps its data in files, not in PostgreSQL.');
  const key = String(poolConfig(s.pg).connectionString);
  let sh = pgShared.get(key);
  if (!sh) {
    const pool = openPool(s.pg, () => undefined); // idle connections cut by a restart: the next query reconnects
    const stop = new AbortController();
    const waiters = new Set<(e: unknown) => void>();
    const shared: SharedBackends = { refs: 0, pool, stop, waiters, mapping: undefined as never, failed: undefined as never };
    const told = { signal: stop.signal, onWait: (e: unknown) => {
      shared.problem = e;
      for (const w of waiters) w(e);
    } };
    shared.mapping = keepOpening(() => PgMappingStore.open(pool), told);
    shared.failed = keepOpening(() => PgFailedList.open(pool), told);
    shared.mapping.then(() => (shared.problem = undefined), () => undefined);
    shared.failed.catch(() => undefined);
    sh = shared;
    pgShared.set(key, sh);
  }
  sh.refs++;
  const mine = sh;
  const onWait = watch.onWait;
  if (onWait) {
    mine.waiters.add(onWait);
    if (mine.problem !== undefined) onWait(mine.problem);
  }
  let released = false;
  return {
    mapping: untilAborted(mine.mapping, watch.signal),
    failed: untilAborted(mine.failed, watch.signal),
    async release() {
      if (released) return;
      released = true;
      if (onWait) mine.waiters.delete(onWait);
      if (--mine.refs > 0) return;
      if (pgShared.get(key) === mine) pgShared.delete(key);
      mine.stop.abort();
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
 * the database. Call `release()` when the node closes, after releasing its OpLog. A database not
 * reachable yet is tried again until it opens or `watch` stops (the node closed).
 */
export async function openFailedFor(s: StoreSettings, watch: StoreWatch = {}): Promise<{ backend: FailedBackend; where: string; release(): Promise<void> } | undefined> {
  if (s.backend !== 'postgres') return undefined;
  const h = openPgBackendsFor(s, watch);
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

/**
 * Whether waiting alone may let a store open: PostgreSQL not answering yet, restarting, a host
 * name not resolving yet. Not so for a wrong password, an unknown database or bad settings: those
 * are still tried again (the operator may fix the server), but shown red with what to do.
 */
export function storeWaitsFor(e: unknown): boolean {
  const err = e as { code?: string; cause?: unknown; message?: string };
  if (storeProblemText(e) === 'waiting for PostgreSQL') return true;
  return isTransientPgError(err?.cause ?? e);
}

/** The reason a store is waited for, short, for a node's status ("not answering", …). */
function waitReason(e: unknown): string {
  const err = e as { code?: string; cause?: { code?: string }; message?: string };
  const code = err?.cause?.code ?? err?.code ?? '';
  if (code === 'ECONNREFUSED') return 'not answering';
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return 'host unknown';
  if (code === 'ETIMEDOUT' || /timeout/i.test(String(err?.message))) return 'no answer in time';
  if (/^57P/.test(code)) return 'restarting';
  return 'connection lost';
}

/**
 * What a node does while its store is being opened again and again (`StoreWatch` for
 * openQueueFor / openMappingFor): its status says "waiting for PostgreSQL: <reason>" (yellow,
 * waiting may heal it) or the problem and "retrying" (red: the operator must act); the log says
 * each kind of problem once, not at every try. `stop()` (the node closing) ends the tries.
 */
export function watchStore(node: Pick<Node, 'status' | 'warn' | 'error'>, what: string): StoreWatch & { stop(): void; readonly signal: AbortSignal } {
  const ctl = new AbortController();
  let said = '';
  return {
    signal: ctl.signal,
    stop: () => ctl.abort(),
    onWait(e: unknown) {
      if (ctl.signal.aborted) return;
      const heals = storeWaitsFor(e);
      const problem = heals ? `waiting for PostgreSQL: ${waitReason(e)}` : `${storeProblemText(e)} (retrying)`;
      node.status({ fill: heals ? 'yellow' : 'red', shape: heals ? 'ring' : 'dot', text: problem });
      if (said === problem) return;
      said = problem;
      const why = e instanceof Error ? e.message : String(e);
      if (heals) node.warn(`${what} is waiting for its data store: ${why} It tries again (every 30 s at most) and goes on by itself once PostgreSQL answers; webhooks are answered 503 meanwhile, so the CRM sends them again.`);
      else node.error(`${what} cannot open its data store: ${why} Fix this on the server or in the sync-store node; it tries again (every 30 s at most) and goes on by itself once the store opens.`);
    },
  };
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
export async function openMappingFor(RED: NodeAPI, def: { store?: unknown; file?: unknown }, watch: StoreWatch = {}): Promise<MappingHandle> {
  const legacyFile = typeof def.file === 'string' && def.file.trim() && !def.store;
  const s = legacyFile ? undefined : storeSettings(RED, def.store);
  if (!s || s.backend !== 'postgres') {
    const b = await FileMappingBackend.open(mappingFileFor(RED, def));
    return { key: b.mappingStore.filePath, backend: b, release: () => b.close() };
  }
  // A caller that cannot stop the tries (no signal) gets the first problem as its error.
  const once = watch.signal ? undefined : new AbortController();
  let first: unknown;
  const w: StoreWatch = once
    ? {
        signal: once.signal,
        onWait: (e) => {
          first ??= e;
          watch.onWait?.(e);
          once.abort();
        },
      }
    : watch;
  const h = openPgBackendsFor(s, w);
  let m: MappingBackend;
  try {
    m = await h.mapping;
  } catch (e) {
    await h.release();
    throw first ?? e;
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
