/**
 * The operator's console: answers its three questions for one data folder from what is already in
 * memory — the OpLog (counters, history, the file failed list), the sync queue and the mapping
 * store — so a refresh never reads a file, however fast lines come in. On a PostgreSQL store the
 * failed list (every instance's) is one query.
 *
 * 1. now(): the queue, outcomes per minute, the last success and failure per pipeline.
 * 2. failures(): the failed list grouped by reason (review items apart), each group paged.
 * 3. search(): the parties matching a text (name with Persian spelling variants, mobile, national
 *    code, CRM id, customer number, Siagh code), each with its mappings and its timeline.
 *
 * The connections (both servers' sessions) are the adapter's: it asks the config nodes.
 * Everything returned is a copy; log lines and failed entries are already scrubbed of secrets.
 */
import { isReviewCode, type LogLine } from '../oplog/entry';
import { isGuid } from '../ref';
import type { FailedEntry } from '../oplog/failed-list';
import { lineKeys, type Page, type PartyInfo, type PipelineLast } from '../oplog/history';
import type { OpLog } from '../oplog/oplog';
import type { QueueStats } from '../queue/sync-queue';
import type { MappingBackend } from '../store/mapping-backend';
import { ENTITY_TYPES, type MappingRecord } from '../store/mapping-store';
import { toAsciiDigits } from '../text/normalize';

export interface ConsoleSources {
  log: OpLog;
  /** The sync queue's counts, read by the caller (the queue's calls are promises; these views are not). */
  queue?: QueueStats;
  /** The store's mappings, file or PostgreSQL (read through the backend interface). */
  mappings?: MappingBackend;
}

export interface NowView {
  queue?: QueueStats & { failed: number };
  /** Entries waiting in the failed list (dead jobs and review items). */
  failed: number;
  perMinute: Array<{ t: string; ok: number; failed: number }>;
  last24h: { ok: number; failed: number };
  lastPerPipeline: Record<string, PipelineLast>;
  since: string;
  /** Lines and parties the history holds (its bounds). */
  history: { lines: number; parties: number };
}

export interface FailureItem {
  key: string;
  crmId: string;
  entity: string;
  event: string;
  code: string;
  message: string;
  attempts: number;
  firstAt: string;
  lastAt: string;
  replays?: number;
  lastReplayAt?: string;
  /** The party's name, when the history knows it (a line of it in the current log, or synced since). */
  name?: string;
  review?: Record<string, unknown>;
}

export interface FailureGroup {
  code: string;
  /** A review item group: resolved one by one with a decision, never replayed as a group. */
  review: boolean;
  count: number;
  /** Latest failure in the group. */
  lastAt: string;
  /** One page of the group, most recent first. */
  offset: number;
  items: FailureItem[];
}

export interface SearchHit extends Partial<PartyInfo> {
  crmId: string;
  mappings: MappingRecord[];
  timeline: Page<TimelineItem>;
}

export type TimelineItem = Pick<LogLine, 'time' | 'trigger' | 'status' | 'action' | 'entity' | 'event' | 'durationMs' | 'attempts' | 'error' | 'step' | 'siaghCode' | 'customerNumber' | 'documentNumber' | 'crmId' | 'nextAttemptAt'>;

/** Most parties one search answers (narrow the text for more). */
export const MAX_HITS = 20;

export async function now(src: ConsoleSources, opts: { minutes?: number } = {}, at = Date.now()): Promise<NowView> {
  const snap = await src.log.snapshot(at);
  const failed = snap.failed ?? 0;
  return {
    ...(src.queue ? { queue: { ...src.queue, failed } } : {}),
    failed,
    perMinute: src.log.stats.perMinute(opts.minutes ?? 180, at),
    last24h: { ok: snap.last24h.ok, failed: snap.last24h.failed },
    lastPerPipeline: src.log.history.lastPerPipeline(),
    since: snap.since,
    history: { lines: src.log.history.size, parties: src.log.history.partyCount },
  };
}

function itemOf(src: ConsoleSources, e: FailedEntry): FailureItem {
  const name = src.log.history.party(e.event.id)?.name;
  return {
    key: e.key,
    crmId: e.event.id,
    entity: e.entity,
    event: e.event.event,
    code: e.reason.code,
    message: e.reason.message,
    attempts: e.attempts,
    firstAt: e.firstAt,
    lastAt: e.lastAt,
    ...(e.replays ? { replays: e.replays, lastReplayAt: e.lastReplayAt } : {}),
    ...(name ? { name } : {}),
    ...(e.review ? { review: structuredClone(e.review) } : {}),
  };
}

/**
 * The failed list grouped by reason code, review items first, then the biggest groups. Each group
 * carries one page of its entries (most recent first): `offset`/`limit` page the group named by
 * `code` (the others show their first page).
 */
export async function failures(src: ConsoleSources, opts: { code?: string; offset?: number; limit?: number } = {}): Promise<{ total: number; groups: FailureGroup[] }> {
  const limit = Math.max(1, Math.floor(opts.limit ?? 20));
  const byCode = new Map<string, FailedEntry[]>();
  const all = await src.log.failed.all();
  for (const e of all) {
    const code = e.reason.code.toUpperCase();
    const list = byCode.get(code);
    if (list) list.push(e);
    else byCode.set(code, [e]);
  }
  const groups: FailureGroup[] = [];
  for (const [code, list] of byCode) {
    list.sort((a, b) => b.lastAt.localeCompare(a.lastAt));
    const offset = code === opts.code?.toUpperCase() ? Math.max(0, Math.floor(opts.offset ?? 0)) : 0;
    groups.push({ code, review: isReviewCode(code), count: list.length, lastAt: list[0].lastAt, offset, items: list.slice(offset, offset + limit).map((e) => itemOf(src, e)) });
  }
  groups.sort((a, b) => Number(b.review) - Number(a.review) || b.count - a.count || a.code.localeCompare(b.code));
  return { total: all.length, groups };
}

function timelineItem(l: LogLine): TimelineItem {
  const { time, trigger, status, action, entity, event, durationMs, attempts, error, step, siaghCode, customerNumber, documentNumber, crmId, nextAttemptAt } = l;
  const out: TimelineItem = { time, trigger, status, action, entity, event, durationMs, attempts, error: error ? { ...error } : undefined, step, siaghCode, customerNumber, documentNumber, crmId, nextAttemptAt };
  for (const k of Object.keys(out) as Array<keyof TimelineItem>) if (out[k] === undefined) delete out[k];
  return out;
}

/**
 * Who matches `query` and what happened to each: the history's parties (name, mobile, national
 * code, ids), plus the mapping store's records for a CRM id, Siagh code or customer number; for
 * each at most MAX_HITS parties, its mappings and one page of its timeline (newest first).
 */
export async function search(src: ConsoleSources, query: string, opts: { offset?: number; limit?: number } = {}): Promise<{ query: string; hits: SearchHit[]; more: boolean }> {
  const q = query.trim();
  if (!q) return { query: q, hits: [], more: false };
  const found = new Map<string, Partial<PartyInfo> & { crmId: string }>();
  for (const p of src.log.history.findParties(q, MAX_HITS + 1)) found.set(p.crmId, p);
  const m = src.mappings;
  const ascii = toAsciiDigits(q).trim();
  if (m) {
    const recs: MappingRecord[] = [];
    if (isGuid(q)) {
      for (const t of ENTITY_TYPES) {
        const r = await m.lookup(t, q.toLowerCase());
        if (r) recs.push(r);
      }
    }
    if (/^\d+$/.test(ascii)) {
      for (const t of ENTITY_TYPES) {
        const r = await m.lookupBySiaghCode(t, ascii);
        if (r) recs.push(r);
      }
    }
    recs.push(...(await m.lookupAllByCustomerNumber(ascii)));
    for (const r of recs) if (!found.has(r.crmId)) found.set(r.crmId, { crmId: r.crmId, siaghCode: r.siaghCode, customerNumber: r.customerNumber });
  }
  if (isGuid(q) && !found.has(q.toLowerCase())) {
    // A record the history knows only by its lines (synced before start, no mapping yet).
    const id = q.toLowerCase();
    if (src.log.history.timeline([`crm:${id}`], { limit: 1 }).total > 0) found.set(id, { crmId: id });
  }
  const parties = [...found.values()];
  const hits: SearchHit[] = [];
  for (const p of parties.slice(0, MAX_HITS)) {
    const mappings: MappingRecord[] = [];
    if (m) {
      for (const t of ENTITY_TYPES) {
        const r = await m.lookup(t, p.crmId);
        if (r) mappings.push({ ...r, ...(r.extra ? { extra: { ...r.extra } } : {}) });
      }
    }
    const cn = p.customerNumber ?? mappings.find((r) => r.customerNumber)?.customerNumber;
    const keys = [`crm:${p.crmId}`, ...(cn ? lineKeys({ customerNumber: cn }) : [])];
    const page = src.log.history.timeline(keys, opts);
    hits.push({ ...p, mappings, timeline: { ...page, items: page.items.map(timelineItem) } });
  }
  return { query: q, hits, more: parties.length > MAX_HITS };
}
