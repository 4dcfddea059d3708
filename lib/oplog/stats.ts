/**
 * The numbers the old `check-db` printed, kept as counters in memory: operations by status and by
 * trigger since `since`, and the last 24 hours in one-minute buckets (ok / failed counts and the
 * failures grouped by code + message). Rebuilt at start from the current log file only, so the
 * work at start is bounded by the rotation size.
 */
import { createReadStream, promises as fsp } from 'node:fs';
import readline from 'node:readline';
import type { LogLine } from './entry';
import { replaceGuids } from '../ref';

const MINUTE = 60_000;
const WINDOW = 24 * 60 * MINUTE;
/** Distinct failure messages shown (the most frequent). */
const MAX_GROUPS = 50;

export interface FailureGroup {
  code: string;
  message: string;
  count: number;
  last: string;
}

export interface StatsSnapshot {
  byStatus: { ok: number; failed: number };
  byTrigger: Record<string, number>;
  last24h: { ok: number; failed: number; failures: FailureGroup[] };
  /** Attempts that failed and were queued again, since the start of counting in this process. */
  retries?: number;
  /** Entries in the failed list (filled in by the caller). */
  failed?: number;
  /** Failed-list entries dropped by its bounds (count, age) since the list was opened (filled in by the caller). */
  failedDropped?: number;
  /** Start of the counting: the first line of the current log file, or when counting began. */
  since: string;
}

interface Bucket {
  ok: number;
  failed: number;
  groups: Map<string, { count: number; last: number }>;
}

/** The message with ids taken out, so one failure for many records counts as one group. */
export function groupMessage(message: string): string {
  return replaceGuids(message, '<id>').slice(0, 200);
}

export class OpStats {
  private ok = 0;
  private failed = 0;
  private retries = 0;
  private byTrigger = new Map<string, number>();
  private buckets = new Map<number, Bucket>();
  private sinceMs: number;

  constructor(now = Date.now()) {
    this.sinceMs = now;
  }

  /** Count one log line. */
  add(line: Pick<LogLine, 'time' | 'status' | 'trigger' | 'error'>, now = Date.now()): void {
    const t = Date.parse(line.time);
    if (!Number.isFinite(t)) return;
    if (line.status !== 'ok' && line.status !== 'failed') {
      // An attempt that will be retried (or waits for its customer) is not an outcome.
      this.retries++;
      return;
    }
    if (t < this.sinceMs) this.sinceMs = t;
    const failed = line.status === 'failed';
    if (failed) this.failed++;
    else this.ok++;
    const trig = typeof line.trigger === 'string' && line.trigger ? line.trigger : 'unknown';
    this.byTrigger.set(trig, (this.byTrigger.get(trig) ?? 0) + 1);
    if (now - t > WINDOW) return;
    const minute = Math.floor(t / MINUTE);
    let b = this.buckets.get(minute);
    if (!b) {
      b = { ok: 0, failed: 0, groups: new Map() };
      this.buckets.set(minute, b);
      this.prune(now);
    }
    if (failed) {
      b.failed++;
      const code = line.error?.code ?? 'ERROR';
      const key = `${code}\u0000${groupMessage(line.error?.message ?? '')}`;
      const g = b.groups.get(key);
      if (g) {
        g.count++;
        g.last = Math.max(g.last, t);
      } else b.groups.set(key, { count: 1, last: t });
    } else b.ok++;
  }

  private prune(now: number): void {
    const oldest = Math.floor((now - WINDOW) / MINUTE);
    for (const m of this.buckets.keys()) if (m < oldest) this.buckets.delete(m);
  }

  snapshot(now = Date.now()): StatsSnapshot {
    this.prune(now);
    let ok = 0;
    let failed = 0;
    const groups = new Map<string, { count: number; last: number }>();
    const from = now - WINDOW;
    for (const [m, b] of this.buckets) {
      if ((m + 1) * MINUTE <= from) continue;
      ok += b.ok;
      failed += b.failed;
      for (const [k, g] of b.groups) {
        const s = groups.get(k);
        if (s) {
          s.count += g.count;
          s.last = Math.max(s.last, g.last);
        } else groups.set(k, { ...g });
      }
    }
    const failures = [...groups.entries()]
      .map(([k, g]) => {
        const [code, message] = k.split('\u0000');
        return { code, message, count: g.count, last: new Date(g.last).toISOString() };
      })
      .sort((a, b) => b.count - a.count || b.last.localeCompare(a.last))
      .slice(0, MAX_GROUPS);
    return {
      byStatus: { ok: this.ok, failed: this.failed },
      byTrigger: Object.fromEntries([...this.byTrigger.entries()].sort((a, b) => b[1] - a[1])),
      last24h: { ok, failed, failures },
      retries: this.retries,
      since: new Date(this.sinceMs).toISOString(),
    };
  }

  /**
   * Outcomes per minute over the last `minutes` (at most 24 h), oldest first, one entry per minute
   * (empty minutes as zeros): the console's small chart.
   */
  perMinute(minutes: number, now = Date.now()): Array<{ t: string; ok: number; failed: number }> {
    const n = Math.max(1, Math.min(WINDOW / MINUTE, Math.floor(minutes)));
    const last = Math.floor(now / MINUTE);
    const out: Array<{ t: string; ok: number; failed: number }> = [];
    for (let m = last - n + 1; m <= last; m++) {
      const b = this.buckets.get(m);
      out.push({ t: new Date(m * MINUTE).toISOString(), ok: b?.ok ?? 0, failed: b?.failed ?? 0 });
    }
    return out;
  }

  /**
   * Counters rebuilt from a log file (the current one; rotated files are not read). Lines that are
   * not JSON are skipped. A missing file gives empty counters starting now. `onLine` sees every
   * line read (the history index is built in the same pass).
   */
  static async fromFile(file: string, now = Date.now(), onLine?: (line: LogLine) => void): Promise<OpStats> {
    const stats = new OpStats(now);
    try {
      await fsp.access(file);
    } catch {
      return stats;
    }
    const rl = readline.createInterface({ input: createReadStream(file, { encoding: 'utf8' }), crlfDelay: Infinity });
    for await (const text of rl) {
      if (!text.trim()) continue;
      try {
        const line = JSON.parse(text) as LogLine;
        if (line && typeof line === 'object' && (line.status === 'ok' || line.status === 'failed')) stats.add(line, now);
        if (onLine && line && typeof line === 'object' && typeof line.time === 'string') onLine(line);
      } catch {
        // a torn last line (killed mid-write) or foreign text: skip it
      }
    }
    return stats;
  }
}
