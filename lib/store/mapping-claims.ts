/**
 * The claims of a mapping store: per entity (type and CRM id), one holder at a time, so that two
 * messages for one entity never both create in Siagh. Waiters are served first come, first
 * served; a claim passes on when released or when its lease ends. In memory only (per process).
 * Callers pass entity types and CRM ids already checked and normalised (mapping-record.ts).
 */
import { randomUUID } from 'node:crypto';
import { SyncError } from '../errors';
import { TYPE_LABEL, type EntityType } from './mapping-record';

interface ClaimWaiter {
  resolve(token: string): void;
  reject(err: Error): void;
  leaseMs: number;
  timer?: NodeJS.Timeout;
}
interface ClaimState {
  token: string;
  /** The claim's lease: how long it lasts without a renewal (a sign of life from its holder). */
  leaseMs: number;
  leaseTimer: NodeJS.Timeout;
  queue: ClaimWaiter[];
}

function keyOf(t: EntityType, crmId: string): string {
  return `${t}\u0000${crmId}`;
}

export class ClaimTable {
  private readonly claims = new Map<string, ClaimState>();

  /**
   * Resolves with a token once this caller holds the claim. Waiting longer than `waitMs` →
   * SyncError('MAPPING_BUSY', retryable); `waitMs` 0 rejects at once when someone holds it.
   */
  claim(t: EntityType, id: string, leaseMs: number, waitMs: number): Promise<string> {
    const key = keyOf(t, id);
    const st = this.claims.get(key);
    if (!st) return Promise.resolve(this.grant(key, leaseMs, []));
    if (waitMs === 0) return Promise.reject(busy(t, id, 0));
    return new Promise<string>((resolve, reject) => {
      const w: ClaimWaiter = { resolve, reject, leaseMs };
      w.timer = setTimeout(() => {
        const cur = this.claims.get(key);
        const i = cur ? cur.queue.indexOf(w) : -1;
        if (i >= 0) cur!.queue.splice(i, 1);
        reject(busy(t, id, waitMs));
      }, waitMs);
      st.queue.push(w);
    });
  }

  private grant(key: string, leaseMs: number, queue: ClaimWaiter[]): string {
    const token = randomUUID();
    const leaseTimer = setTimeout(() => {
      const cur = this.claims.get(key);
      if (cur && cur.token === token) this.handOff(key, cur);
    }, leaseMs);
    leaseTimer.unref();
    this.claims.set(key, { token, leaseMs, leaseTimer, queue });
    return token;
  }

  private handOff(key: string, st: ClaimState): void {
    clearTimeout(st.leaseTimer);
    const next = st.queue.shift();
    if (!next) {
      this.claims.delete(key);
      return;
    }
    if (next.timer) clearTimeout(next.timer);
    next.resolve(this.grant(key, next.leaseMs, st.queue));
  }

  /** Give a claim back. A wrong or expired token does nothing. */
  release(t: EntityType, id: string, token: string): void {
    const key = keyOf(t, id);
    const st = this.claims.get(key);
    if (st && st.token === token) this.handOff(key, st);
  }

  /** Extend a held claim's lease by `leaseMs` (default: its own). False for a wrong or expired token. */
  renew(t: EntityType, id: string, token: string, leaseMs?: number): boolean {
    const key = keyOf(t, id);
    const st = this.claims.get(key);
    if (!st || st.token !== token) return false;
    if (leaseMs !== undefined) st.leaseMs = Math.max(1, leaseMs);
    leaseMs = st.leaseMs;
    clearTimeout(st.leaseTimer);
    st.leaseTimer = setTimeout(() => {
      const cur = this.claims.get(key);
      if (cur && cur.token === token) this.handOff(key, cur);
    }, Math.max(1, leaseMs));
    st.leaseTimer.unref();
    return true;
  }

  /** True while someone holds the claim on this entity. */
  has(t: EntityType, id: string): boolean {
    return this.claims.has(keyOf(t, id));
  }

  /** Drop every claim; each waiter rejects with MAPPING_BUSY (retryable) saying why. */
  closeAll(why: string): void {
    for (const st of this.claims.values()) {
      clearTimeout(st.leaseTimer);
      for (const w of st.queue) {
        if (w.timer) clearTimeout(w.timer);
        w.reject(new SyncError('MAPPING_BUSY', why, { retryable: true }));
      }
    }
    this.claims.clear();
  }
}

function busy(t: EntityType, id: string, waitMs: number): SyncError {
  return new SyncError(
    'MAPPING_BUSY',
    `Another message for CRM ${TYPE_LABEL[t]} ${id} is still being processed` +
      (waitMs ? ` and did not finish within ${Math.round(waitMs / 100) / 10} s` : '') +
      '; try this message again later.',
    { retryable: true },
  );
}
