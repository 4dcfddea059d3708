/**
 * Incremental polling of the CRM: which identities (persons and organizations), sales quotes or
 * sales invoices are new or changed since the last run. One Poller lists one entity (its own
 * cursor); the crm-poll node runs one per entity it polls. Plain logic; the crm-poll node wraps it.
 *
 * Quotes and invoices (`entity` 'quote' / 'invoice') are listed with quote/sales/find and
 * invoice/sales/find on modifyDate, exactly like the identities' find below. They have no
 * identity/search equivalent: when their find is unsupported the run lists none of them, leaves
 * their cursor, and says so in a warning the first time (`unsupported` on every such run).
 *
 * Two ways to list (docs/crm-api.md#identity-search, docs/crm-api.md#person-and-organization):
 * - `find` (default): person/find and organization/find with `modifyDate ≥ cursor − overlap`,
 *   each paged until an EMPTY page (docs/known-faults.md#paging). The CRM's find on modifyDate was never tried on a real
 *   server: when it answers that the endpoint or the query is unsupported (`isFindUnsupported`),
 *   the run falls back to `scan` and says so in a warning.
 * - `scan`: identity/search for persons, then organizations, each paged until an empty page; every
 *   identity is listed (downstream checksums make the unchanged ones write nothing).
 *
 * The cursor (peers-and-pain-points.md item 15):
 * - it is the (modifyDate, id) of the newest record seen, kept durably in the mapping file's meta
 *   area, so a restart continues where the last run ended;
 * - each run re-reads an overlap window below it, so records that became visible late (a long
 *   transaction) and records sharing the cursor's timestamp are not skipped;
 * - the records of that window already listed by the previous run (same id, same modifyDate) are
 *   remembered in the cursor's `edge` and not listed again, so a run lists real changes only;
 * - ids are de-duplicated within a run;
 * - it advances only when the run listed everything without error (a failed page, or fewer
 *   distinct records than the CRM's `total`, leave it where it was: the next run reads again);
 * - no cursor (first run, after a reset or an unreadable one) = a full reconcile: everything is
 *   listed; `fullEvery` forces one every N runs as well;
 * - the cursor also keeps where the last two runs started listing (`from`, `before`; null = a full
 *   listing). The cursor moves as soon as a run has LISTED, while the records it listed are still
 *   being synced downstream; if the process dies then (a crash, SIGKILL, a power cut), those records
 *   would be behind the cursor. So the first run of a new Poller (a node start, a redeploy, a
 *   restart) lists again from the older of the two starts, without the edge: whatever the dead
 *   process had not finished is listed again, and the checksums make the finished ones `unchanged`.
 *
 * Record dates are the CRM's local wall-clock time without offset (`2025-12-21T14:06:17.173`);
 * they are compared as written, never converted to this machine's time zone, so the clocks of the
 * two machines do not matter.
 */
import { SyncError } from '../errors';
import {
  CRM_FIND_OPERATORS,
  findName,
  isFindUnsupported,
  type CrmDocKind,
  type CrmFindKind,
  type CrmFindPage,
  type CrmFindQuery,
  type IdentityFindOptions,
  type IdentitySearchOptions,
} from '../crm/client';
import { RECORD_ENTITIES, type RecordEntity, type RecordRef } from '../ref';
import type { CrmIdentitySummary, IdentityKind } from '../types';

export type PollMode = 'find' | 'scan';
/** What a Poller lists: a record entity (lib/ref.ts). */
export type PollEntity = RecordEntity;
export const POLL_ENTITIES: readonly PollEntity[] = RECORD_ENTITIES;

/** What the poller needs of a CRM client (CrmClient has it). */
export interface PollSource {
  findIdentities(kind: IdentityKind, opts?: IdentityFindOptions): AsyncIterable<CrmFindPage>;
  searchIdentities(opts?: IdentitySearchOptions): AsyncIterable<CrmIdentitySummary[]>;
  /** quote/sales/find, invoice/sales/find; needed only by quote and invoice Pollers. */
  findDocuments?(kind: CrmDocKind, opts?: IdentityFindOptions): AsyncIterable<CrmFindPage>;
}

/** Where the cursor lives (MappingStore has it, and every MappingBackend: there it is a Promise). */
export interface CursorStore {
  getMeta<T = unknown>(key: string): T | undefined | Promise<T | undefined>;
  setMeta(key: string, value: unknown): Promise<void>;
}

export interface PollCursor {
  version: 1;
  /** Newest modifyDate seen, normalised to `YYYY-MM-DDTHH:mm:ss.SSS` (CRM local time). */
  modifyDate: string;
  /** Id of the record with that modifyDate (the largest id on a tie). */
  id: string;
  /** `[id, modifyDate]` of the records within the overlap window below the cursor, already listed. */
  edge: Array<[string, string]>;
  /** Incremental runs since the last full reconcile. */
  runs: number;
  /** When (this machine's clock, ISO) the last full reconcile ended. */
  fullAt?: string;
  /** When (this machine's clock, ISO) the cursor was saved. */
  savedAt: string;
  /** Where the run that saved this cursor started listing (modifyDate ≥ from); null = it listed everything. */
  from?: string | null;
  /** Where the run before it started listing; null = everything. */
  before?: string | null;
}

/**
 * A listed record: its reference (the Poller's entity, crmId, and for identities the kind, which
 * is undefined only in scan mode when the CRM listed the id as both kinds: it ignores identityType).
 */
export interface PollItem extends RecordRef {
  /** As the CRM wrote it, when known (find mode). */
  modifyDate?: string;
}

export interface PollResult {
  /** What was listed (the Poller's entity). */
  entity: PollEntity;
  /** New or changed records, oldest change first; each id once. */
  items: PollItem[];
  /** How the run listed: 'scan' also when find was unsupported and the run fell back. */
  mode: PollMode;
  /** Everything was listed (first run, reset, `fullEvery`, or scan mode). */
  full: boolean;
  /** find was unsupported; this run scanned instead. */
  fellBack: boolean;
  /** Rows read from the CRM (duplicates and edge re-reads included). */
  listed: number;
  /** Rows of the overlap window the previous run had already listed (not in items). */
  skipped: number;
  /** The cursor now (saved or kept); undefined when there is none. */
  cursor?: PollCursor;
  /** The cursor moved (and was saved). */
  advanced: boolean;
  /** Things an operator should know (fallback, incomplete listing, unreadable cursor …). */
  warnings: string[];
  /** First run of this Poller: it listed the last runs' window again (see the cursor notes above). */
  relisted?: boolean;
  /** Quotes/invoices only: their find is unsupported by this CRM, so none were listed (cursor kept). */
  unsupported?: boolean;
}

export interface PollerOptions {
  source: PollSource;
  store: CursorStore;
  /** Meta key of the cursor, e.g. `poll.cursor.<node id>`; one key per entity. */
  key: string;
  /** What to list. Default 'identity'. */
  entity?: PollEntity;
  /** Identities only (quotes and invoices are always listed with find). Default 'find'. */
  mode?: PollMode;
  /** Re-read window below the cursor (ms). Default 120 000. */
  overlapMs?: number;
  /** A full reconcile every N runs (0 = only without a cursor). Default 0. */
  fullEvery?: number;
  /** Page size asked of find / search (the server may cap it). Default 200. */
  pageSize?: number;
  /** Most edge entries kept in the cursor (beyond, the oldest are just listed again). Default 2000. */
  maxEdge?: number;
}

export const DEFAULT_OVERLAP_MS = 120_000;
const KINDS: IdentityKind[] = ['person', 'organization'];
const PLURAL: Record<PollEntity, string> = { identity: 'identities', quote: 'quotes', invoice: 'invoices' };
const DATE_RE = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?/;

/**
 * A CRM record date as wall-clock milliseconds (the text read as if it were UTC; any offset or
 * `Z` after it is ignored, fractions beyond milliseconds dropped). Undefined when not a date.
 */
export function parseCrmLocalTime(text: unknown): number | undefined {
  if (typeof text !== 'string') return undefined;
  const m = DATE_RE.exec(text.trim());
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s = '0', frac = ''] = m;
  const ms = Number((frac + '000').slice(0, 3));
  const t = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s), ms);
  if (!Number.isFinite(t)) return undefined;
  // Reject overflowing parts (Date.UTC would roll 2025-02-31 into March).
  const back = new Date(t);
  if (back.getUTCDate() !== Number(d) || back.getUTCMonth() !== Number(mo) - 1) return undefined;
  return t;
}

/** Wall-clock milliseconds back to the CRM's form: `2025-12-21T14:06:17.173`. */
export function formatCrmLocalTime(ms: number): string {
  return new Date(ms).toISOString().slice(0, 23);
}

/** A cursor's time for a status line: `2025-12-21 14:06:17`. */
export function cursorLabel(cursor: PollCursor | undefined): string {
  return cursor ? cursor.modifyDate.replace('T', ' ').slice(0, 19) : 'none';
}

/** The stored value when it is a usable cursor, else undefined. */
export function readCursor(value: unknown): PollCursor | undefined {
  if (!value || typeof value !== 'object') return undefined;
  const c = value as Partial<PollCursor>;
  if (c.version !== 1 || typeof c.modifyDate !== 'string' || parseCrmLocalTime(c.modifyDate) === undefined || typeof c.id !== 'string') return undefined;
  const edge = Array.isArray(c.edge)
    ? c.edge.filter((e): e is [string, string] => Array.isArray(e) && typeof e[0] === 'string' && typeof e[1] === 'string')
    : [];
  const runs = typeof c.runs === 'number' && Number.isInteger(c.runs) && c.runs >= 0 ? c.runs : 0;
  return {
    version: 1,
    modifyDate: c.modifyDate,
    id: c.id,
    edge,
    runs,
    fullAt: typeof c.fullAt === 'string' ? c.fullAt : undefined,
    savedAt: typeof c.savedAt === 'string' ? c.savedAt : '',
    from: readStart(c.from),
    before: readStart(c.before),
  };
}

/** A saved listing start: a CRM date, null (= everything), or undefined (not saved). */
function readStart(v: unknown): string | null | undefined {
  if (v === null) return null;
  return typeof v === 'string' && parseCrmLocalTime(v) !== undefined ? v : undefined;
}

/**
 * Where the first run after a restart starts listing: the older of the last two runs' starts
 * (null = everything). Undefined when the cursor predates these fields (then the normal window).
 */
export function restartStart(c: PollCursor): string | null | undefined {
  const starts = [c.from, c.before].filter((s) => s !== undefined);
  if (starts.length === 0) return undefined;
  if (starts.some((s) => s === null)) return null;
  return (starts as string[]).reduce((a, b) => (parseCrmLocalTime(a)! <= parseCrmLocalTime(b)! ? a : b));
}

interface Seen {
  id: string;
  kind?: CrmFindKind;
  modifyDate?: string;
  ms?: number;
}

export class Poller {
  private readonly source: PollSource;
  private readonly store: CursorStore;
  readonly key: string;
  readonly entity: PollEntity;
  readonly mode: PollMode;
  private readonly overlapMs: number;
  private readonly fullEvery: number;
  private readonly pageSize: number;
  private readonly maxEdge: number;
  private busy = false;
  /** Bumped by reset(): a run that started before a reset does not save its cursor. */
  private epoch = 0;
  /** No run of this Poller has saved a cursor yet: the next one lists the last runs' window again. */
  private fresh = true;
  /** The 'find unsupported' warning of a quote/invoice Poller was given (it is given once). */
  private toldUnsupported = false;

  constructor(opts: PollerOptions) {
    if (!opts.key) throw new SyncError('CONFIG', 'The poll cursor needs a key.');
    const entity = opts.entity ?? 'identity';
    if (!POLL_ENTITIES.includes(entity)) throw new SyncError('CONFIG', `A poller lists ${POLL_ENTITIES.join(', ')} (got ${String(entity)}).`);
    const mode = opts.mode ?? 'find';
    if (mode !== 'find' && mode !== 'scan') throw new SyncError('CONFIG', `The poll mode must be 'find' or 'scan' (got ${String(mode)}).`);
    if (entity !== 'identity' && !opts.source.findDocuments) throw new SyncError('CONFIG', `Polling ${PLURAL[entity]} needs a source that offers findDocuments.`);
    this.source = opts.source;
    this.store = opts.store;
    this.key = opts.key;
    this.entity = entity;
    // Quotes and invoices have no identity/search: always find.
    this.mode = entity === 'identity' ? mode : 'find';
    this.overlapMs = nonNegative(opts.overlapMs, DEFAULT_OVERLAP_MS, 'overlapMs');
    this.fullEvery = Math.floor(nonNegative(opts.fullEvery, 0, 'fullEvery'));
    this.pageSize = Math.floor(nonNegative(opts.pageSize, 200, 'pageSize')) || 200;
    this.maxEdge = Math.floor(nonNegative(opts.maxEdge, 2000, 'maxEdge'));
  }

  /** A run is going on. */
  get running(): boolean {
    return this.busy;
  }

  /** The saved cursor, if any and readable (a store that answers at once; else `savedCursor`). */
  cursor(): PollCursor | undefined {
    const v = this.store.getMeta(this.key);
    return v instanceof Promise ? undefined : readCursor(v);
  }

  /** The saved cursor, if any and readable, from any store. */
  async savedCursor(): Promise<PollCursor | undefined> {
    return readCursor(await this.store.getMeta(this.key));
  }

  /** Forget the cursor (durably): the next run is a full reconcile. A run in progress will not save. */
  async reset(): Promise<void> {
    this.epoch++;
    await this.store.setMeta(this.key, undefined);
  }

  /**
   * One run: list what changed, then save the advanced cursor. Rejects (cursor untouched) when a
   * listing fails; never two runs at once (a second call while one runs is refused).
   */
  async run(opts: { signal?: AbortSignal } = {}): Promise<PollResult> {
    if (this.busy) throw new SyncError('MAPPING_BUSY', 'A poll run is still going on; this one was not started.', { retryable: true });
    this.busy = true;
    try {
      return await this.runOnce(opts.signal);
    } finally {
      this.busy = false;
    }
  }

  private async runOnce(signal: AbortSignal | undefined): Promise<PollResult> {
    const epoch = this.epoch;
    const warnings: string[] = [];
    const stored = await this.store.getMeta(this.key);
    const prev = readCursor(stored);
    const entity = this.entity;
    if (stored !== undefined && !prev) warnings.push(`The saved poll cursor (${this.key}) was unreadable; this run lists every ${entity} (a full reconcile).`);

    if (this.mode === 'scan') {
      const scan = await this.scan(signal, warnings);
      return { entity, items: scan.items, mode: 'scan', full: true, fellBack: false, listed: scan.listed, skipped: 0, cursor: prev, advanced: false, warnings };
    }

    const prevMs = prev ? parseCrmLocalTime(prev.modifyDate)! : undefined;
    // After a restart: list again what the last runs listed (it may not have been synced).
    const replay = this.fresh && prev ? restartStart(prev) : undefined;
    const full = !prev || replay === null || (this.fullEvery > 0 && prev.runs + 1 >= this.fullEvery);
    let since = !full && prevMs !== undefined ? formatCrmLocalTime(prevMs - this.overlapMs) : undefined;
    if (!full && typeof replay === 'string' && parseCrmLocalTime(replay)! < parseCrmLocalTime(since)!) since = replay;

    let rows: Seen[];
    let listed: number;
    let complete: boolean;
    try {
      ({ rows, listed, complete } = await this.find(since, signal, warnings));
    } catch (e) {
      if (!isFindUnsupported(e)) throw e;
      const err = e as SyncError;
      if (entity !== 'identity') {
        // No other way to list quotes/invoices: skip them this run, keep the cursor, say it once.
        if (!this.toldUnsupported) {
          this.toldUnsupported = true;
          warnings.push(
            `The CRM's ${findName(entity)} cannot list ${since ? 'changes by modifyDate' : PLURAL[entity]} (${err.message}) ` +
              `Polling skips ${PLURAL[entity]} (their webhooks still sync them) and asks again on every run; this warning is not repeated. ` +
              `Untick ${PLURAL[entity]} in the poll node to stop asking.`,
          );
        }
        return { entity, items: [], mode: 'find', full, fellBack: false, listed: 0, skipped: 0, cursor: prev, advanced: false, warnings, unsupported: true };
      }
      const kind = err.path?.includes('organization') ? 'organization' : 'person';
      warnings.push(
        `The CRM's ${kind}/find cannot list ${since ? 'changes by modifyDate' : 'identities'} (${err.message}) ` +
          'This run listed every identity with identity/search instead; choose the scan mode to stop this warning.',
      );
      const scan = await this.scan(signal, warnings);
      return { entity, items: scan.items, mode: 'scan', full: true, fellBack: true, listed: scan.listed, skipped: 0, cursor: prev, advanced: false, warnings };
    }
    // A find that works again (a CRM upgrade) would be reported again if it disappeared once more.
    this.toldUnsupported = false;

    // Rows the previous run listed at the edge, unchanged since: not listed again (not on a full
    // run, nor on the first run after a restart).
    const edge = !full && prev && replay === undefined ? new Map(prev.edge) : new Map<string, string>();
    const items: PollItem[] = [];
    let skipped = 0;
    for (const r of rows) {
      if (r.modifyDate !== undefined && r.ms !== undefined && edge.get(r.id) === formatCrmLocalTime(r.ms)) {
        skipped++;
        continue;
      }
      const item: PollItem = { crmId: r.id, entity, modifyDate: r.modifyDate };
      if (r.kind === 'person' || r.kind === 'organization') item.kind = r.kind;
      items.push(item);
    }
    items.sort((a, b) => (parseCrmLocalTime(a.modifyDate) ?? -Infinity) - (parseCrmLocalTime(b.modifyDate) ?? -Infinity));

    // The newest (modifyDate, id) seen; never behind the previous cursor.
    let newest: { ms: number; id: string } | undefined = prev && prevMs !== undefined ? { ms: prevMs, id: prev.id } : undefined;
    let undated = 0;
    for (const r of rows) {
      if (r.ms === undefined) {
        undated++;
        continue;
      }
      if (!newest || r.ms > newest.ms || (r.ms === newest.ms && r.id > newest.id)) newest = { ms: r.ms, id: r.id };
    }
    if (undated > 0) {
      warnings.push(`${undated} record(s) listed by find carry no readable modifyDate: they are listed, but the cursor can only follow the dated ones.`);
    }

    if (!complete || epoch !== this.epoch || !newest) {
      if (epoch !== this.epoch) warnings.push('The cursor was reset during this run; it was not saved.');
      return { entity, items, mode: 'find', full, fellBack: false, listed, skipped, cursor: prev, advanced: false, warnings, relisted: replay !== undefined };
    }

    const floor = newest.ms - this.overlapMs;
    const edgeRows = rows.filter((r) => r.ms !== undefined && r.ms >= floor).sort((a, b) => b.ms! - a.ms!);
    const now = new Date().toISOString();
    const cursor: PollCursor = {
      version: 1,
      modifyDate: formatCrmLocalTime(newest.ms),
      id: newest.id,
      edge: edgeRows.slice(0, this.maxEdge).map((r) => [r.id, formatCrmLocalTime(r.ms!)]),
      runs: full ? 0 : prev!.runs + 1,
      fullAt: full ? now : prev?.fullAt,
      savedAt: now,
      from: since ?? null,
      before: prev?.from,
    };
    await this.store.setMeta(this.key, cursor);
    if (epoch !== this.epoch) {
      // A reset arrived while the cursor was being written: the reset wins.
      await this.store.setMeta(this.key, undefined);
      warnings.push('The cursor was reset during this run; it was not saved.');
      return { entity, items, mode: 'find', full, fellBack: false, listed, skipped, cursor: undefined, advanced: false, warnings };
    }
    this.fresh = false;
    const advanced = !prev || prev.modifyDate !== cursor.modifyDate || prev.id !== cursor.id;
    return { entity, items, mode: 'find', full, fellBack: false, listed, skipped, cursor, advanced, warnings, relisted: replay !== undefined };
  }

  /** This entity's pages of find, one listing per kind. */
  private pages(kind: CrmFindKind, opts: IdentityFindOptions): AsyncIterable<CrmFindPage> {
    if (kind === 'quote' || kind === 'invoice') return this.source.findDocuments!(kind, opts);
    return this.source.findIdentities(kind, opts);
  }

  /**
   * person/find then organization/find (identities), or quote/sales/find, or invoice/sales/find,
   * every page. `complete` is false when a kind listed fewer distinct ids than its total.
   */
  private async find(since: string | undefined, signal: AbortSignal | undefined, warnings: string[]): Promise<{ rows: Seen[]; listed: number; complete: boolean }> {
    const queries: CrmFindQuery[] = since ? [{ field: 'modifyDate', operator: CRM_FIND_OPERATORS.greaterOrEqual, value: since }] : [];
    const byId = new Map<string, Seen>();
    let listed = 0;
    let complete = true;
    const kinds: CrmFindKind[] = this.entity === 'identity' ? KINDS : [this.entity];
    for (const kind of kinds) {
      let firstTotal: number | undefined;
      const ofKind = new Set<string>();
      for await (const page of this.pages(kind, { queries, pageSize: this.pageSize })) {
        checkAbort(signal);
        if (firstTotal === undefined && page.total !== undefined) firstTotal = page.total;
        for (const row of page.rows) {
          listed++;
          ofKind.add(row.id);
          const ms = parseCrmLocalTime(row.modifyDate);
          const had = byId.get(row.id);
          // The same id twice (pages shifted under us): keep its newest modifyDate.
          if (had && (had.ms ?? -Infinity) >= (ms ?? -Infinity)) continue;
          byId.set(row.id, { id: row.id, kind, modifyDate: row.modifyDate, ms });
        }
      }
      checkAbort(signal);
      if (firstTotal !== undefined && ofKind.size < firstTotal) {
        complete = false;
        warnings.push(
          `The CRM ${findName(kind)} reported ${firstTotal} matching records but its pages held only ${ofKind.size} different ones (records deleted meanwhile, or pages that shift while they are read). ` +
            'The cursor was not advanced, so the next run reads this window again.',
        );
      }
    }
    return { rows: [...byId.values()], listed, complete };
  }

  /** identity/search for persons, then organizations, every page. */
  private async scan(signal: AbortSignal | undefined, warnings: string[]): Promise<{ items: PollItem[]; listed: number }> {
    const kinds = new Map<string, IdentityKind | undefined>();
    let listed = 0;
    let both = 0;
    for (const kind of KINDS) {
      for await (const page of this.source.searchIdentities({ identityType: kind, pageSize: this.pageSize })) {
        checkAbort(signal);
        for (const row of page) {
          listed++;
          const id = String(row.identityId).trim().toLowerCase();
          if (!id) continue;
          if (!kinds.has(id)) kinds.set(id, kind);
          else if (kinds.get(id) !== kind && kinds.get(id) !== undefined) {
            kinds.set(id, undefined);
            both++;
          }
        }
      }
    }
    checkAbort(signal);
    if (both > 0) {
      warnings.push(
        `identity/search listed ${both} identit${both === 1 ? 'y' : 'ies'} both as person and as organization (the CRM seems to ignore identityType); ` +
          'they are sent without a kind, and crm-fetch asks the CRM which kind each one is.',
      );
    }
    return { items: [...kinds].map(([crmId, kind]): PollItem => (kind ? { crmId, entity: 'identity', kind } : { crmId, entity: 'identity' })), listed };
  }
}

function checkAbort(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new SyncError('NETWORK', 'The poll run was stopped (redeploy or shutdown) before it listed everything; the cursor was not moved.', { retryable: true });
}

function nonNegative(v: number | undefined, dflt: number, name: string): number {
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new SyncError('CONFIG', `${name} must be a number ≥ 0 (got ${String(v)}).`);
  return v;
}

