/**
 * An exclusive, process-level lock on a data file: `<file>.lock`, created with 'wx', holding the
 * owner's pid, hostname and a random token. A lock whose pid is no longer alive on this host is
 * stale and taken over; a lock held by a live process on this host is never taken over, whatever
 * its age (a busy or suspended process may miss its heartbeat); a lock from another host is
 * refused with SyncError('STORE_LOCKED') unless it was not refreshed for `staleMs`.
 *
 * A lock carrying our own pid is stale unless this process really holds it (a restarted container
 * often reuses the same pid, e.g. 1). "Really holds" is tracked in a process-wide set shared by
 * every copy of this module, so two copies of the package in one process cannot both take it.
 *
 * The holder refreshes the lock's mtime every 30 s (heartbeat). A lock from another host not
 * refreshed for `staleMs` (default 5 min) is stale: this frees locks left by a container that was
 * re-created under a new hostname. (On this host the pid decides, never the age.)
 *
 * The holder also checks every few seconds that the lock file still names it (startHeartbeat's
 * `onLost`): if another process took the lock over (an operator deleted it, or judged it stale by
 * mistake), the holder is told and must stop writing. A lock file that merely vanished is created
 * again with the holder's token (then the other process is refused, as it should be).
 */
import { promises as fsp, readFileSync, unlinkSync } from 'node:fs';
import * as os from 'node:os';
import { randomUUID } from 'node:crypto';
import { SyncError } from '../errors';

export interface LockInfo {
  pid: number;
  hostname: string;
  token: string;
  createdAt: string;
}

const HELD_KEY = Symbol.for('node-red-contrib-siagh-sync.store-locks');
type Held = Map<string, string>; // lock path → token
const g = globalThis as unknown as Record<symbol, Held | undefined>;
const held: Held = (g[HELD_KEY] ??= new Map());

let exitHookInstalled = false;
/** Locks taken by this module copy, removed synchronously if the process exits without close(). */
const ownLocks = new Map<string, string>();

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const [lockPath, token] of ownLocks) {
      try {
        const cur = JSON.parse(readFileSync(lockPath, 'utf8')) as Partial<LockInfo>;
        if (cur.token === token) unlinkSync(lockPath);
      } catch {
        /* nothing to clean */
      }
    }
  });
}

function errCode(e: unknown): string | undefined {
  return e && typeof e === 'object' && 'code' in e ? String((e as { code: unknown }).code) : undefined;
}

/** True when a process with this pid exists on this host (EPERM: it exists but is not ours). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return errCode(e) === 'EPERM';
  }
}

type Verdict = { stale: true; why: string } | { stale: false; message: string };

export const LOCK_HEARTBEAT_MS = 30_000;
export const LOCK_STALE_MS = 5 * 60_000;

function lockedMessage(dataPath: string, lockPath: string, who: string): string {
  return (
    `The mapping file ${dataPath} is in use by ${who}. Only one Node-RED process may use a mapping file: ` +
    `stop the other process or give this node a different file. If you are sure no such process runs, delete ${lockPath} and redeploy.`
  );
}

function judge(info: Partial<LockInfo>, dataPath: string, lockPath: string, ageMs: number, staleMs: number): Verdict {
  const pid = Number(info.pid);
  if (!Number.isInteger(pid) || pid <= 0) return { stale: true, why: 'no valid pid' };
  const since = info.createdAt ? `, since ${info.createdAt}` : '';
  if (info.hostname !== os.hostname()) {
    // Cannot check a process on another machine (shared folder, or a re-created container): only
    // a lock nobody refreshed for a long time is taken over.
    if (ageMs > staleMs) return { stale: true, why: `not refreshed for ${Math.round(ageMs / 1000)} s` };
    return { stale: false, message: lockedMessage(dataPath, lockPath, `process ${pid} on host ${String(info.hostname)}${since}`) };
  }
  // On this host the pid decides, whatever the age: a live holder is never stale (its heartbeat
  // may be late because it is busy, suspended, or its clock jumped).
  if (pid === process.pid) {
    if (held.has(lockPath)) {
      return { stale: false, message: lockedMessage(dataPath, lockPath, `another copy of this package in this same process (pid ${pid})`) };
    }
    return { stale: true, why: 'left by an earlier process with our pid' };
  }
  if (pidAlive(pid)) return { stale: false, message: lockedMessage(dataPath, lockPath, `process ${pid} on this host${since}`) };
  return { stale: true, why: `process ${pid} is gone` };
}

/**
 * Take the lock for `dataPath`. Resolves with what was written; rejects with STORE_LOCKED when a
 * live owner holds it, STORE_IO when the lock file cannot be made.
 */
export async function acquireLock(dataPath: string, lockPath = `${dataPath}.lock`, staleMs = LOCK_STALE_MS): Promise<LockInfo> {
  const info: LockInfo = { pid: process.pid, hostname: os.hostname(), token: randomUUID(), createdAt: new Date().toISOString() };
  const text = JSON.stringify(info);
  for (let attempt = 0; attempt < 40; attempt++) {
    try {
      await fsp.writeFile(lockPath, text, { flag: 'wx' });
      held.set(lockPath, info.token);
      ownLocks.set(lockPath, info.token);
      installExitHook();
      return info;
    } catch (e) {
      if (errCode(e) !== 'EEXIST') {
        throw new SyncError('STORE_IO', `Cannot create the lock file ${lockPath} (${errCode(e) ?? String(e)}). Check that the folder exists and Node-RED may write to it.`, { cause: e });
      }
    }
    let raw: string;
    let mtimeMs: number;
    try {
      raw = await fsp.readFile(lockPath, 'utf8');
      mtimeMs = (await fsp.stat(lockPath)).mtimeMs;
    } catch (e) {
      if (errCode(e) === 'ENOENT') continue; // released meanwhile: try again
      throw new SyncError('STORE_IO', `Cannot read the lock file ${lockPath} (${errCode(e) ?? String(e)}).`, { cause: e });
    }
    let parsed: Partial<LockInfo> | undefined;
    try {
      parsed = JSON.parse(raw) as Partial<LockInfo>;
    } catch {
      parsed = undefined;
    }
    if (!parsed || typeof parsed !== 'object') {
      // Possibly being written right now by its creator: give it a moment, then treat as garbage.
      if (Date.now() - mtimeMs < 5000) {
        await new Promise((r) => setTimeout(r, 25));
        continue;
      }
      parsed = {};
    }
    const verdict = judge(parsed, dataPath, lockPath, Date.now() - mtimeMs, staleMs);
    if (!verdict.stale) throw new SyncError('STORE_LOCKED', verdict.message);
    // Stale: move it aside (atomic, only one taker wins), check we moved the lock we judged, retry.
    const aside = `${lockPath}.stale-${process.pid}-${randomUUID().slice(0, 8)}`;
    try {
      await fsp.rename(lockPath, aside);
    } catch (e) {
      if (errCode(e) === 'ENOENT') continue;
      throw new SyncError('STORE_IO', `Cannot remove the stale lock file ${lockPath} (${errCode(e) ?? String(e)}).`, { cause: e });
    }
    const moved = await fsp.readFile(aside, 'utf8').catch(() => undefined);
    if (moved !== raw) {
      // Someone else replaced the stale lock between our read and our rename: give it back.
      await fsp.link(aside, lockPath).catch(() => undefined);
      await fsp.unlink(aside).catch(() => undefined);
      continue;
    }
    await fsp.unlink(aside).catch(() => undefined);
  }
  throw new SyncError('STORE_LOCKED', lockedMessage(dataPath, lockPath, 'another process (the lock file keeps changing)'));
}

/** Remove the lock if it is still ours. Never throws. */
export async function releaseLock(lockPath: string, token: string): Promise<void> {
  if (held.get(lockPath) === token) held.delete(lockPath);
  if (ownLocks.get(lockPath) === token) ownLocks.delete(lockPath);
  try {
    const cur = JSON.parse(await fsp.readFile(lockPath, 'utf8')) as Partial<LockInfo>;
    if (cur.token === token) await fsp.unlink(lockPath);
  } catch {
    /* already gone or replaced: nothing to do */
  }
}

export const LOCK_CHECK_MS = 5_000;

/** What the lock file at `lockPath` says now: 'ours', 'missing', or the other holder's info. */
export async function lockOwner(lockPath: string, token: string): Promise<'ours' | 'missing' | Partial<LockInfo>> {
  let raw: string;
  try {
    raw = await fsp.readFile(lockPath, 'utf8');
  } catch (e) {
    if (errCode(e) === 'ENOENT') return 'missing';
    throw e;
  }
  let info: Partial<LockInfo>;
  try {
    info = JSON.parse(raw) as Partial<LockInfo>;
  } catch {
    return {};
  }
  return info && info.token === token ? 'ours' : info && typeof info === 'object' ? info : {};
}

/** Text naming the process that holds a lock, for messages. */
export function describeHolder(info: Partial<LockInfo>): string {
  const pid = info.pid !== undefined ? `process ${String(info.pid)}` : 'another process';
  const host = info.hostname ? (info.hostname === os.hostname() ? ' on this host' : ` on host ${String(info.hostname)}`) : '';
  const since = info.createdAt ? ` (since ${String(info.createdAt)})` : '';
  return `${pid}${host}${since}`;
}

export interface HeartbeatOptions {
  /** How often to check that the lock file still names this holder (default LOCK_CHECK_MS). */
  checkMs?: number;
  /** Called once when another process holds the lock now; the heartbeat stops. */
  onLost?: (holder: Partial<LockInfo>) => void;
}

/**
 * Refresh the lock's mtime every `everyMs` (LOCK_HEARTBEAT_MS) while held, and check every
 * `checkMs` that the lock still names us (see onLost); returns the stop function.
 */
export function startHeartbeat(lockPath: string, token: string, everyMs = LOCK_HEARTBEAT_MS, opts: HeartbeatOptions = {}): () => void {
  const checkMs = Math.max(1, Math.min(opts.checkMs ?? LOCK_CHECK_MS, everyMs));
  let lastBeat = Date.now();
  let busy = false;
  let stopped = false;
  const stop = (): void => {
    stopped = true;
    clearInterval(timer);
  };
  const tick = async (): Promise<void> => {
    if (held.get(lockPath) !== token) return;
    const who = await lockOwner(lockPath, token).catch(() => 'ours' as const); // unreadable now: look again later
    if (stopped) return;
    if (who === 'missing') {
      // Deleted under us, and nobody has taken it yet: put ours back, so a newcomer is refused.
      const info = { pid: process.pid, hostname: os.hostname(), token, createdAt: new Date().toISOString() };
      try {
        await fsp.writeFile(lockPath, JSON.stringify(info), { flag: 'wx' });
      } catch {
        /* someone was faster: the next check sees whose it is */
      }
      return;
    }
    if (who !== 'ours') {
      stop();
      if (held.get(lockPath) === token) held.delete(lockPath);
      if (ownLocks.get(lockPath) === token) ownLocks.delete(lockPath);
      opts.onLost?.(who);
      return;
    }
    if (Date.now() - lastBeat >= everyMs) {
      lastBeat = Date.now();
      const now = new Date();
      await fsp.utimes(lockPath, now, now).catch(() => undefined);
    }
  };
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    tick().finally(() => (busy = false));
  }, checkMs);
  timer.unref();
  return stop;
}
