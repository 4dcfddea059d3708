/**
 * The failed list: every CRM event that could not be synced, keyed by entity + CRM id
 * (`identity:<guid>`), with the event that replays it, the last reason, the number of failed
 * attempts and the first and last failure time. A later success for the same key removes it.
 *
 * Kept in memory and written to one JSON file atomically (temp file, fsync, rename: see
 * lib/store/atomic-file.ts). Writes start at once and are coalesced: changes made while a write
 * runs go out together in the next one. A file that cannot be read is set aside as
 * `<file>.unreadable-<time>` (never overwritten) and the list starts empty.
 */
import { promises as fsp } from 'node:fs';
import { SyncError } from '../errors';
import { writeFileAtomic } from '../store/atomic-file';
import { ReplayEvent, eventTypeOf, failureKey, isGuid } from './entry';

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
}

export interface FailureInput {
  event: ReplayEvent;
  entity?: string;
  code: string;
  message: string;
  trigger?: string;
  traceId?: string;
  now?: number;
}

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
  private writing: Promise<void> | undefined;
  private dirty = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private closed = false;
  /** Completed file writes. */
  writes = 0;
  /** Told about write failures (the change stays pending and is retried). */
  onError: ((e: Error) => void) | undefined;
  /** Where an unreadable file was moved at open, if that happened. */
  setAside: string | undefined;

  private constructor(readonly file: string) {}

  static async open(file: string, onError?: (e: Error) => void): Promise<FailedList> {
    const list = new FailedList(file);
    list.onError = onError;
    let text: string | undefined;
    try {
      text = await fsp.readFile(file, 'utf8');
    } catch (e) {
      if (errCode(e) !== 'ENOENT') throw new SyncError('STORE_IO', `Cannot read the failed list ${file}: ${(e as Error).message}`);
    }
    if (text !== undefined) {
      try {
        const data = JSON.parse(text) as FailedFileV1;
        if (!data || typeof data !== 'object' || typeof data.entries !== 'object' || data.entries === null) throw new Error('no "entries" object');
        for (const [k, e] of Object.entries(data.entries)) {
          if (e && typeof e === 'object' && e.event && isGuid(e.event.id) && eventTypeOf(e.event.type)) list.entries.set(k, e);
        }
      } catch {
        list.setAside = `${file}.unreadable-${new Date().toISOString().replace(/[:.]/g, '-')}`;
        await fsp.rename(file, list.setAside);
      }
    }
    return list;
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

  /** Record a failure: a new entry, or the existing one with attempts + 1 and the new reason. */
  recordFailure(f: FailureInput): FailedEntry {
    const key = failureKey(f.event.type, f.event.id);
    const at = new Date(f.now ?? Date.now()).toISOString();
    const prev = this.entries.get(key);
    const entry: FailedEntry = {
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
    };
    this.entries.set(key, entry);
    this.save();
    return entry;
  }

  /** A success for `key`: the entry goes. Returns whether there was one. */
  recordSuccess(key: string): boolean {
    if (!this.entries.delete(key)) return false;
    this.save();
    return true;
  }

  /** Remove entries by key (operator clean-up). Returns how many went. */
  remove(keys: string[]): number {
    let n = 0;
    for (const k of keys) if (this.entries.delete(k)) n++;
    if (n) this.save();
    return n;
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

  /** Note that these entries were sent for replay. */
  markReplayed(keys: string[], now = Date.now()): void {
    const at = new Date(now).toISOString();
    for (const k of keys) {
      const e = this.entries.get(k);
      if (!e) continue;
      e.replays = (e.replays ?? 0) + 1;
      e.lastReplayAt = at;
    }
    if (keys.length) this.save();
  }

  /** Start (or join) a write of the current state. Resolves when a write that includes it is done. */
  save(): Promise<void> {
    this.dirty = true;
    if (!this.writing) {
      this.writing = this.drain().finally(() => {
        this.writing = undefined;
      });
      this.writing.catch((e) => {
        this.onError?.(e as Error);
        if (!this.closed && !this.retryTimer) {
          this.retryTimer = setTimeout(() => {
            this.retryTimer = undefined;
            if (this.dirty) this.save().catch(() => undefined);
          }, 2000);
        }
      });
    }
    return this.writing;
  }

  private async drain(): Promise<void> {
    // Let the current turn's changes gather into this write.
    await Promise.resolve();
    while (this.dirty) {
      this.dirty = false;
      const data: FailedFileV1 = { version: FILE_VERSION, entries: Object.fromEntries(this.entries) };
      try {
        await writeFileAtomic(this.file, JSON.stringify(data));
        this.writes++;
      } catch (e) {
        this.dirty = true;
        throw new SyncError('STORE_IO', `Cannot write the failed list ${this.file}: ${(e as Error).message}. The change is kept in memory and written again shortly.`);
      }
    }
  }

  /** Resolves when nothing is waiting to be written (after a failed write: rejects). */
  async settle(): Promise<void> {
    while (this.writing) await this.writing;
    if (this.dirty) await this.save();
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    await this.settle();
  }
}
