/**
 * The failed list: every CRM event that could not be synced, keyed by entity + CRM id
 * (`identity:<guid>`), with the event that replays it, the last reason, the number of failed
 * attempts and the first and last failure time. A later success for the same key removes it.
 *
 * Kept in memory. On disk: a snapshot (`failed.json`, `{version: 1, entries}`, written atomically:
 * temp file, fsync, rename, see lib/store/atomic-file.ts) plus an append-only journal beside it
 * (`failed.jsonl`): one line per change, `{"put": entry}` or `{"del": key}`. A change appends its
 * line; the lines of one turn (and those made while a write runs) go out together in one append
 * and one fsync (group commit). The journal is folded into the snapshot (and removed) at open,
 * at close, and whenever it outgrows the snapshot, so a change never rewrites the whole list.
 * Puts carry the whole entry, so replaying a journal over a snapshot it was already folded into
 * is harmless; a torn last line (a crash mid-append) is skipped.
 *
 * Bounded: at most `maxEntries` entries (default 10,000; the least recently failed go first) and
 * none whose last failure is older than `maxAgeDays` (default 90). Dropped entries are counted
 * (`dropped`) and reported through `onDrop`, once per batch.
 *
 * A snapshot that cannot be read is set aside as `<file>.unreadable-<time>` (never overwritten)
 * and the list starts empty (from the journal, if any).
 */
import fs, { promises as fsp } from 'node:fs';
import { SyncError } from '../errors';
import path from 'node:path';
import { fsyncDir, writeFileAtomic } from '../store/atomic-file';
import { isGuid } from '../ref';
import { ReplayEvent, eventTypeOf, failureKey } from './entry';

export interface FailedEntry {
  key: string;
  /** The record's entity as last seen (person, organization, identity, quote, invoice). */
  entity: string;
  event: ReplayEvent;
  reason: { code: string; message: string };
  /** Failed attempts recorded for this key. */
  attempts: number;
  firstAt: string;
  lastAt: string;
  trigger?: string;
  traceId?: string;
  /** Times it was sent for replay, and when last. */
  replays?: number;
  lastReplayAt?: string;
  /**
   * A review item's facts (LINK_NEEDS_REVIEW: both records; DOCUMENT_CHANGED_AFTER_TRANSFER: the
   * differences), clipped and scrubbed (see entry.ts reviewOf). Only from the latest failure.
   */
  review?: Record<string, unknown>;
}

export interface FailureInput {
  event: ReplayEvent;
  entity?: string;
  code: string;
  message: string;
  trigger?: string;
  traceId?: string;
  review?: Record<string, unknown>;
  now?: number;
}

/** How big the list may grow. */
export interface FailedLimits {
  /** At most this many entries (default 10,000); the least recently failed are dropped first. */
  maxEntries?: number;
  /** Entries whose last failure is older than this many days are dropped (default 90; 0 = no limit). */
  maxAgeDays?: number;
}

export interface FailedOpenOptions extends FailedLimits {
  onError?: (e: Error) => void;
  /** Fold the journal into the snapshot once it is this big and bigger than the snapshot (default 256 KiB). */
  foldBytes?: number;
}

/** Entries dropped by the bounds in one batch. */
export interface DropReport {
  count: number;
  why: 'count' | 'age';
  /** The oldest dropped entry's last failure. */
  oldestAt: string;
  /** Up to 5 dropped keys. */
  keys: string[];
}

export const DEFAULT_MAX_ENTRIES = 10_000;
export const DEFAULT_MAX_AGE_DAYS = 90;
const DEFAULT_FOLD_BYTES = 256 * 1024;
const DAY = 86_400_000;
/** How often the age bound is checked while changes come in (and by a timer). */
const AGE_CHECK_MS = 60_000;

/** Which failed events to pick (all given criteria must hold). */
export interface FailedFilter {
  /** One CRM id or several. */
  crmId?: string | string[];
  /** identity / person / organization / quote / invoice (or Identity, Quote, Invoice). */
  entity?: string;
  /** The reason's error code, e.g. CRM_NOT_FOUND. */
  code?: string;
  /** Last failed before this: an ISO time, epoch ms, or an age like "30m", "2h", "1d". */
  olderThan?: string | number;
  /** Every entry (needed when no other criterion is given, for replay). */
  all?: boolean;
  /** At most this many (oldest failure first). */
  limit?: number;
}

interface FailedFileV1 {
  version: 1;
  entries: Record<string, FailedEntry>;
}

const FILE_VERSION = 1;

/** The journal beside a snapshot: failed.json → failed.jsonl. */
/**
 * The entry a failure makes, given the entry already kept for its record (if any): attempts + 1,
 * the new reason, the first time and replays kept. Every failed-list backend records with it.
 */
export function nextFailedEntry(key: string, prev: FailedEntry | undefined, f: FailureInput, at: string): FailedEntry {
  return {
    key,
    entity: f.entity ?? prev?.entity ?? f.event.type.toLowerCase(),
    // A later failure may know less (no subtype): keep what the first one knew.
    event: { ...prev?.event, ...f.event, ...(f.event.subtype || !prev?.event.subtype ? {} : { subtype: prev.event.subtype }) },
    reason: { code: f.code, message: f.message },
    attempts: (prev?.attempts ?? 0) + 1,
    firstAt: prev?.firstAt ?? at,
    lastAt: at,
    trigger: f.trigger,
    traceId: f.traceId,
    ...(prev?.replays ? { replays: prev.replays, lastReplayAt: prev.lastReplayAt } : {}),
    ...(f.review ? { review: f.review } : {}),
  };
}

export function journalPathFor(file: string): string {
  return /\.json$/i.test(file) ? `${file}l` : `${file}.jsonl`;
}

type JournalLine = { put: FailedEntry } | { del: string };

function validEntry(e: unknown): e is FailedEntry {
  const x = e as FailedEntry;
  return !!x && typeof x === 'object' && typeof x.key === 'string' && !!x.event && isGuid(x.event.id) && !!eventTypeOf(x.event.type);
}

/** Apply journal text to `entries`. Lines that do not parse (a torn last line) are skipped; returns how many applied. */
function applyJournal(text: string, entries: Map<string, FailedEntry>): { applied: number; skipped: number } {
  let applied = 0;
  let skipped = 0;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line) continue;
    let j: JournalLine;
    try {
      j = JSON.parse(line) as JournalLine;
    } catch {
      skipped++;
      continue;
    }
    if (j && typeof j === 'object' && 'put' in j && validEntry(j.put)) {
      // delete + set: the Map's order stays "least recently failed first"
      entries.delete(j.put.key);
      entries.set(j.put.key, j.put);
      applied++;
    } else if (j && typeof j === 'object' && 'del' in j && typeof j.del === 'string') {
      entries.delete(j.del);
      applied++;
    } else skipped++;
  }
  return { applied, skipped };
}

function readSnapshotText(text: string, entries: Map<string, FailedEntry>): void {
  const data = JSON.parse(text) as FailedFileV1;
  if (!data || typeof data !== 'object' || typeof data.entries !== 'object' || data.entries === null) throw new Error('no "entries" object');
  for (const [k, e] of Object.entries(data.entries)) if (validEntry({ ...e, key: e?.key ?? k })) entries.set(k, e);
}

/**
 * The list as it stands on disk, read synchronously without opening it (for tests and tools that
 * look at the files while Node-RED runs): the snapshot, then the journal replayed over it.
 */
export function readFailedFiles(file: string): Record<string, FailedEntry> {
  const entries = new Map<string, FailedEntry>();
  try {
    readSnapshotText(fs.readFileSync(file, 'utf8'), entries);
  } catch {
    // missing or unreadable: the journal alone
  }
  try {
    applyJournal(fs.readFileSync(journalPathFor(file), 'utf8'), entries);
  } catch {
    // no journal
  }
  return Object.fromEntries(entries);
}

function errCode(e: unknown): string | undefined {
  return e && typeof e === 'object' && 'code' in e ? String((e as { code: unknown }).code) : undefined;
}

/** The moment `olderThan` stands for, in epoch ms. */
export function olderThanMs(v: string | number, now = Date.now()): number {
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  const s = String(v).trim();
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|min|h|d)$/i.exec(s);
  if (m) {
    const unit: Record<string, number> = { ms: 1, s: 1000, m: 60_000, min: 60_000, h: 3_600_000, d: 86_400_000 };
    return now - Number(m[1]) * unit[m[2].toLowerCase()];
  }
  if (/^\d+$/.test(s)) return Number(s);
  const t = Date.parse(s);
  if (Number.isFinite(t)) return t;
  throw new SyncError('BAD_INPUT', `olderThan "${s.slice(0, 40)}" is neither a time (ISO 8601), epoch milliseconds, nor an age like 30m, 2h or 1d.`);
}

/** Throws BAD_INPUT when a filter is malformed; returns whether it names any criterion. */
export function checkFilter(f: FailedFilter): boolean {
  if (f === null || typeof f !== 'object' || Array.isArray(f)) throw new SyncError('BAD_INPUT', 'The filter must be an object: {crmId, entity, code, olderThan, all: true}.');
  const ids = f.crmId === undefined ? [] : Array.isArray(f.crmId) ? f.crmId : [f.crmId];
  for (const id of ids) if (!isGuid(id)) throw new SyncError('BAD_INPUT', `crmId "${String(id).slice(0, 60)}" is not a GUID.`);
  if (f.entity !== undefined && typeof f.entity !== 'string') throw new SyncError('BAD_INPUT', 'entity must be a text: identity, person, organization, quote or invoice.');
  if (f.code !== undefined && typeof f.code !== 'string') throw new SyncError('BAD_INPUT', 'code must be an error code text, e.g. CRM_NOT_FOUND.');
  if (f.olderThan !== undefined) olderThanMs(f.olderThan);
  if (f.limit !== undefined && !(Number.isInteger(Number(f.limit)) && Number(f.limit) > 0)) throw new SyncError('BAD_INPUT', 'limit must be a whole number above 0.');
  return ids.length > 0 || !!f.entity || !!f.code || f.olderThan !== undefined || f.all === true;
}

export class FailedList {
  private entries = new Map<string, FailedEntry>();
  /** Journal lines not yet written. */
  private pending: string[] = [];
  private writing: Promise<void> | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private ageTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private fh: fsp.FileHandle | undefined;
  /** A write failed part-way: the next one starts on a fresh line. */
  private torn = false;
  private wantFold = false;
  private journalBytes = 0;
  private snapshotBytes = 0;
  private lastAgeCheck = 0;
  private maxEntries = DEFAULT_MAX_ENTRIES;
  private maxAgeMs = DEFAULT_MAX_AGE_DAYS * DAY;
  private foldBytes = DEFAULT_FOLD_BYTES;
  readonly journal: string;
  /** Completed journal appends (each one fsync). */
  writes = 0;
  /** Times the journal was folded into the snapshot. */
  folds = 0;
  /** Entries dropped by the bounds since open. */
  dropped = 0;
  /** Journal lines skipped at open (a torn last line). */
  skippedLines = 0;
  /** Told about write failures (the change stays pending and is retried). */
  onError: ((e: Error) => void) | undefined;
  /** Told once per batch of entries dropped by the bounds. */
  onDrop: ((r: DropReport) => void) | undefined;
  /** Drops made before anyone listened (at open), reported to the first onDrop set via takeEarlyDrops(). */
  private earlyDrops: DropReport[] = [];
  /** Where an unreadable file was moved at open, if that happened. */
  setAside: string | undefined;

  private constructor(readonly file: string) {
    this.journal = journalPathFor(file);
  }

  static async open(file: string, opts: FailedOpenOptions | ((e: Error) => void) = {}): Promise<FailedList> {
    const o: FailedOpenOptions = typeof opts === 'function' ? { onError: opts } : opts;
    const list = new FailedList(file);
    list.onError = o.onError;
    list.setLimits(o);
    if (o.foldBytes !== undefined) list.foldBytes = Math.max(0, o.foldBytes);
    let text: string | undefined;
    try {
      text = await fsp.readFile(file, 'utf8');
    } catch (e) {
      if (errCode(e) !== 'ENOENT') throw new SyncError('STORE_IO', `Cannot read the failed list ${file}: ${(e as Error).message}`);
    }
    if (text !== undefined) {
      try {
        readSnapshotText(text, list.entries);
        list.snapshotBytes = Buffer.byteLength(text);
      } catch {
        list.entries.clear();
        list.setAside = `${file}.unreadable-${new Date().toISOString().replace(/[:.]/g, '-')}`;
        await fsp.rename(file, list.setAside);
      }
    }
    let journalText: string | undefined;
    try {
      journalText = await fsp.readFile(list.journal, 'utf8');
    } catch (e) {
      if (errCode(e) !== 'ENOENT') throw new SyncError('STORE_IO', `Cannot read the failed-list journal ${list.journal}: ${(e as Error).message}`);
    }
    if (journalText !== undefined) list.skippedLines = applyJournal(journalText, list.entries).skipped;
    // Least recently failed first (older files kept first-failure order).
    const sorted = [...list.entries.values()].sort((a, b) => a.lastAt.localeCompare(b.lastAt));
    list.entries = new Map(sorted.map((e) => [e.key, e]));
    const dropped = list.prune(Date.now(), true);
    if (journalText !== undefined || dropped || list.setAside) {
      await list.fold();
      // the snapshot holds every change, the drops' journal lines included
      list.pending = [];
    }
    list.ageTimer = setInterval(() => {
      if (list.prune(Date.now(), true)) list.save().catch(() => undefined);
    }, 3_600_000);
    list.ageTimer.unref?.();
    return list;
  }

  /** Change the bounds (the latest sync-log node's settings); applied at the next change. */
  setLimits(l: FailedLimits): void {
    if (l.maxEntries !== undefined && Number.isFinite(Number(l.maxEntries)) && Number(l.maxEntries) >= 1) this.maxEntries = Math.round(Number(l.maxEntries));
    if (l.maxAgeDays !== undefined && Number.isFinite(Number(l.maxAgeDays)) && Number(l.maxAgeDays) >= 0) this.maxAgeMs = Number(l.maxAgeDays) * DAY;
  }

  get limits(): { maxEntries: number; maxAgeDays: number } {
    return { maxEntries: this.maxEntries, maxAgeDays: this.maxAgeMs / DAY };
  }

  /** Drop reports made before a listener was set (at open). */
  takeEarlyDrops(): DropReport[] {
    return this.earlyDrops.splice(0);
  }

  get size(): number {
    return this.entries.size;
  }

  get(key: string): FailedEntry | undefined {
    return this.entries.get(key);
  }

  /** All entries, oldest failure first. */
  all(): FailedEntry[] {
    return [...this.entries.values()].sort((a, b) => a.firstAt.localeCompare(b.firstAt) || a.key.localeCompare(b.key));
  }

  private put(e: FailedEntry): void {
    this.entries.delete(e.key);
    this.entries.set(e.key, e);
    this.pending.push(JSON.stringify({ put: e }) + '\n');
  }

  private del(key: string): boolean {
    if (!this.entries.delete(key)) return false;
    this.pending.push(JSON.stringify({ del: key }) + '\n');
    return true;
  }

  /** Record a failure: a new entry, or the existing one with attempts + 1 and the new reason. */
  recordFailure(f: FailureInput): FailedEntry {
    const key = failureKey(f.event.type, f.event.id);
    const now = f.now ?? Date.now();
    const at = new Date(now).toISOString();
    const entry = nextFailedEntry(key, this.entries.get(key), f, at);
    this.put(entry);
    this.prune(now);
    this.save();
    return entry;
  }

  /** A success for `key`: the entry goes. Returns whether there was one. */
  recordSuccess(key: string): boolean {
    if (!this.del(key)) return false;
    this.save();
    return true;
  }

  /** Remove entries by key (operator clean-up). Returns how many went. */
  remove(keys: string[]): number {
    let n = 0;
    for (const k of keys) if (this.del(k)) n++;
    if (n) this.save();
    return n;
  }

  /**
   * Apply the bounds: entries past the age limit, then the least recently failed beyond the
   * count. The age check runs at most once a minute unless `checkAge`. Returns how many went
   * (their journal lines are pending: the caller saves).
   */
  prune(now = Date.now(), checkAge = false): number {
    let n = 0;
    if (this.maxAgeMs > 0 && (checkAge || now - this.lastAgeCheck >= AGE_CHECK_MS)) {
      this.lastAgeCheck = now;
      const before = now - this.maxAgeMs;
      const old = [...this.entries.values()].filter((e) => Date.parse(e.lastAt) < before);
      n += this.drop(old, 'age');
    }
    if (this.entries.size > this.maxEntries) {
      let over = this.entries.size - this.maxEntries;
      // The Map keeps "least recently failed first" (put re-inserts; open sorts by lastAt).
      const victims: FailedEntry[] = [];
      for (const e of this.entries.values()) {
        if (over-- <= 0) break;
        victims.push(e);
      }
      n += this.drop(victims, 'count');
    }
    return n;
  }

  private drop(victims: FailedEntry[], why: DropReport['why']): number {
    if (!victims.length) return 0;
    for (const v of victims) this.del(v.key);
    this.dropped += victims.length;
    const r: DropReport = {
      count: victims.length,
      why,
      oldestAt: victims.reduce((m, v) => (v.lastAt < m ? v.lastAt : m), victims[0].lastAt),
      keys: victims.slice(0, 5).map((v) => v.key),
    };
    if (this.onDrop) {
      try {
        this.onDrop(r);
      } catch {
        // the listener's trouble is its own
      }
    } else this.earlyDrops.push(r);
    return victims.length;
  }

  /** The entries a filter picks, oldest failure first. */
  match(f: FailedFilter, now = Date.now()): FailedEntry[] {
    checkFilter(f);
    const ids = f.crmId === undefined ? undefined : new Set((Array.isArray(f.crmId) ? f.crmId : [f.crmId]).map((s) => s.trim().toLowerCase()));
    const ent = f.entity?.trim().toLowerCase();
    const entType = eventTypeOf(ent);
    const code = f.code?.trim().toUpperCase();
    const before = f.olderThan === undefined ? undefined : olderThanMs(f.olderThan, now);
    const out = this.all().filter((e) => {
      if (ids && !ids.has(e.event.id)) return false;
      if (ent) {
        const byType = ent === 'identity' || ent === 'contact' || ent === 'quote' || ent === 'invoice';
        if (byType ? e.event.type !== entType : e.entity !== ent) return false;
      }
      if (code && e.reason.code.toUpperCase() !== code) return false;
      if (before !== undefined && !(Date.parse(e.lastAt) < before)) return false;
      return true;
    });
    return f.limit ? out.slice(0, Number(f.limit)) : out;
  }

  /**
   * Put whole entries as they are, least recently failed first (moving a failed list between
   * backends: lib/store/transfer.ts); an entry with the same key is replaced. Returns how many.
   */
  restore(entries: FailedEntry[]): number {
    const valid = entries.filter(validEntry).sort((a, b) => a.lastAt.localeCompare(b.lastAt));
    for (const e of valid) this.put(structuredClone(e));
    if (valid.length) this.save();
    return valid.length;
  }

  /** Note that these entries were sent for replay. */
  markReplayed(keys: string[], now = Date.now()): void {
    const at = new Date(now).toISOString();
    let n = 0;
    for (const k of keys) {
      const e = this.entries.get(k);
      if (!e) continue;
      e.replays = (e.replays ?? 0) + 1;
      e.lastReplayAt = at;
      // not put(): replaying does not make an entry "recently failed"
      this.pending.push(JSON.stringify({ put: e }) + '\n');
      n++;
    }
    if (n) this.save();
  }

  /** Start (or join) a write of the pending changes. Resolves when a write that includes them is done. */
  save(): Promise<void> {
    if (!this.writing) {
      this.writing = this.drain().finally(() => {
        this.writing = undefined;
      });
      this.writing.catch((e) => {
        this.onError?.(e as Error);
        if (!this.closed && !this.retryTimer) {
          this.retryTimer = setTimeout(() => {
            this.retryTimer = undefined;
            if (this.pending.length || this.wantFold) this.save().catch(() => undefined);
          }, 2000);
        }
      });
    }
    return this.writing;
  }

  private async drain(): Promise<void> {
    // Let the current turn's changes gather into this write.
    await Promise.resolve();
    while (this.pending.length || this.wantFold) {
      if (this.pending.length) {
        const lines = this.pending.splice(0);
        const text = (this.torn ? '\n' : '') + lines.join('');
        try {
          const fresh = !this.fh;
          if (!this.fh) this.fh = await fsp.open(this.journal, 'a');
          await this.fh.appendFile(text, 'utf8');
          await this.fh.sync();
          // a journal just (re)created: its directory entry must survive a power cut too
          if (fresh && this.journalBytes === 0) await fsyncDir(path.dirname(this.journal));
          this.torn = false;
          this.journalBytes += Buffer.byteLength(text);
          this.writes++;
        } catch (e) {
          this.pending.unshift(...lines);
          this.torn = true;
          await this.closeJournal();
          throw new SyncError('STORE_IO', `Cannot write the failed list ${this.journal}: ${(e as Error).message}. The change is kept in memory and written again shortly.`);
        }
        if (this.journalBytes >= this.foldBytes && this.journalBytes >= this.snapshotBytes) this.wantFold = true;
      }
      if (this.wantFold && !this.pending.length) await this.fold();
    }
  }

  private async closeJournal(): Promise<void> {
    const fh = this.fh;
    this.fh = undefined;
    await fh?.close().catch(() => undefined);
  }

  /** Write the snapshot (atomically) and remove the journal it now contains. Only while nothing else writes. */
  private async fold(): Promise<void> {
    this.wantFold = true;
    const text = JSON.stringify({ version: FILE_VERSION, entries: Object.fromEntries(this.entries) } satisfies FailedFileV1);
    try {
      await writeFileAtomic(this.file, text);
      await this.closeJournal();
      await fsp.rm(this.journal, { force: true });
    } catch (e) {
      throw new SyncError('STORE_IO', `Cannot fold the failed list into ${this.file}: ${(e as Error).message}. The journal ${this.journal} keeps every change; folding is tried again shortly.`);
    }
    this.snapshotBytes = Buffer.byteLength(text);
    this.journalBytes = 0;
    this.torn = false;
    this.wantFold = false;
    this.folds++;
  }

  /** Resolves when nothing is waiting to be written (after a failed write: rejects). */
  async settle(): Promise<void> {
    while (this.writing) await this.writing;
    if (this.pending.length || this.wantFold) await this.save();
  }

  /** Writes what is pending, folds the journal into the snapshot, and stops. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.ageTimer) clearInterval(this.ageTimer);
    this.retryTimer = undefined;
    this.ageTimer = undefined;
    try {
      await this.settle();
      if (this.journalBytes > 0 || this.torn) {
        this.wantFold = true;
        await this.save();
      }
    } finally {
      await this.closeJournal();
    }
  }
}
