/**
 * The recent history of a data folder, per party, in memory: what the operator's console asks
 * ("what happened to customer X?") without reading `sync-log.jsonl` again.
 *
 * - The last `maxLines` log lines (default 100,000) in a ring, and for each party key (CRM id,
 *   Siagh code, customer number, document number) the positions of its lines. A line that falls
 *   out of the ring leaves its keys' lists, so memory stays bounded however long it runs.
 *   A quote's or invoice's line is also listed under its customer's CRM id (the line's
 *   `customerId`), so the customer's timeline shows its documents.
 * - The parties seen (at most `maxParties`, default 50,000, and 10 % more between two trims; the
 *   least recently seen dropped first): CRM id, Siagh code, customer number, name, mobile and
 *   national code, with comparison keys (lib/text/normalize.ts) so a search by name finds ي/ی,
 *   ك/ک and ZWNJ spellings alike. The name and the mobile and national-code keys come from the log
 *   line (entry.ts writes them for an identity), so the parties of the log file are found again
 *   after a restart; a line written before it had them still loads, found by its ids only.
 * - The last success and the last failure per pipeline (the line's trigger).
 *
 * Built once at start from the current log file (in the same pass as the counters, see
 * OpLog), then kept current by OpLog.record(). Lines are the log's own (already scrubbed).
 */
import { nationalIdKey, phoneKey, phoneLocal, textKey, toAsciiDigits } from '../text/normalize';
import type { LogLine } from './entry';

/** What a synced record tells about its party as the CRM writes it (the log line carries the name and the keys). */
export interface PartyFacts {
  name?: string;
  mobile?: string;
  nationalCode?: string;
  customerNumber?: string;
}

export interface PartyInfo {
  crmId: string;
  entity?: string;
  name?: string;
  mobile?: string;
  nationalCode?: string;
  customerNumber?: string;
  siaghCode?: string;
  /** ISO time of its latest line. */
  lastAt: string;
}

interface PartyState extends PartyInfo {
  nameKey?: string;
  mobileKey?: string;
  nationalKey?: string;
}

export interface HistoryOptions {
  maxLines?: number;
  maxParties?: number;
}

export interface PipelineLast {
  ok?: LogLine;
  failed?: LogLine;
}

export interface Page<T> {
  total: number;
  offset: number;
  items: T[];
}

const DEFAULT_MAX_LINES = 100_000;
const DEFAULT_MAX_PARTIES = 50_000;

/** A field of a line read back from the file: text, or nothing (a foreign line may hold anything). */
function text(v: unknown): string | undefined {
  return typeof v === 'string' && v ? v : undefined;
}

/**
 * The index keys of a line: crm:<guid> (the record's, and a document's customer's), siagh:<code>,
 * cn:<customer number>, doc:<document number>.
 */
export function lineKeys(line: Pick<LogLine, 'crmId' | 'customerId' | 'siaghCode' | 'customerNumber' | 'documentNumber'>): string[] {
  const keys: string[] = [];
  const crmId = text(line.crmId)?.toLowerCase();
  if (crmId) keys.push(`crm:${crmId}`);
  const customerId = text(line.customerId)?.toLowerCase();
  if (customerId && customerId !== crmId) keys.push(`crm:${customerId}`);
  const siaghCode = text(line.siaghCode);
  if (siaghCode) keys.push(`siagh:${toAsciiDigits(siaghCode).trim()}`);
  const cn = text(line.customerNumber);
  if (cn) keys.push(`cn:${toAsciiDigits(cn).trim().toLowerCase()}`);
  const doc = text(line.documentNumber);
  if (doc) keys.push(`doc:${toAsciiDigits(doc).trim().toLowerCase()}`);
  return keys;
}

/** A name key without any separator, so "علی‌رضا", "علی رضا" and "علیرضا" all meet. */
function compact(key: string): string {
  return key.replace(/ /g, '');
}

export class OpHistory {
  private readonly maxLines: number;
  private readonly maxParties: number;
  private ring: Array<LogLine | undefined>;
  /** Sequence number of the next line; line n sits at ring[n % maxLines]. */
  private next = 0;
  /** Per key, its lines' sequence numbers (oldest first) from `head` on; dropped ones are skipped, then cut away in bulk. */
  private byKey = new Map<string, { seqs: number[]; head: number }>();
  private parties = new Map<string, PartyState>();
  private lastByTrigger = new Map<string, PipelineLast>();

  constructor(opts: HistoryOptions = {}) {
    this.maxLines = Math.max(1, Math.floor(opts.maxLines ?? DEFAULT_MAX_LINES));
    this.maxParties = Math.max(1, Math.floor(opts.maxParties ?? DEFAULT_MAX_PARTIES));
    this.ring = new Array(this.maxLines);
  }

  /** Lines held. */
  get size(): number {
    return Math.min(this.next, this.maxLines);
  }

  /** Parties held. */
  get partyCount(): number {
    return this.parties.size;
  }

  /** Take one log line (and, for a record synced now, what it says about its party). */
  add(line: LogLine, facts?: PartyFacts): void {
    const seq = this.next++;
    const slot = seq % this.maxLines;
    const old = this.ring[slot];
    if (old) {
      // The oldest line leaves: it is the first of each of its keys' lists.
      for (const k of lineKeys(old)) {
        const list = this.byKey.get(k);
        if (!list) continue;
        while (list.head < list.seqs.length && list.seqs[list.head] <= seq - this.maxLines) list.head++;
        if (list.head >= list.seqs.length) this.byKey.delete(k);
        else if (list.head > 64 && list.head * 2 > list.seqs.length) {
          list.seqs = list.seqs.slice(list.head);
          list.head = 0;
        }
      }
    }
    this.ring[slot] = line;
    for (const k of lineKeys(line)) {
      const list = this.byKey.get(k);
      if (list) list.seqs.push(seq);
      else this.byKey.set(k, { seqs: [seq], head: 0 });
    }
    if (line.status === 'ok' || line.status === 'failed') {
      const trig = line.trigger || 'unknown';
      const last = this.lastByTrigger.get(trig) ?? {};
      last[line.status] = line;
      this.lastByTrigger.set(trig, last);
    }
    if (text(line.crmId)) this.noteParty(line, facts);
  }

  private noteParty(line: LogLine, facts?: PartyFacts): void {
    const id = line.crmId!.toLowerCase();
    const prev = this.parties.get(id);
    const p: PartyState = prev ?? { crmId: id, lastAt: line.time };
    if (prev) this.parties.delete(id); // re-inserted last: the Map's order is "least recently seen first"
    p.lastAt = line.time;
    if (line.entity) p.entity = line.entity;
    if (line.siaghCode) p.siaghCode = line.siaghCode;
    const cn = facts?.customerNumber ?? line.customerNumber;
    if (cn) p.customerNumber = cn;
    // As the CRM writes them when synced now; from the line's keys when read back from the file.
    const name = facts?.name ?? text(line.name);
    if (name) {
      p.name = name;
      p.nameKey = textKey(name);
    }
    const mobileKey = facts?.mobile ? phoneKey(facts.mobile) : text(line.mobileKey);
    if (facts?.mobile || mobileKey) {
      p.mobile = facts?.mobile ?? phoneLocal(mobileKey!);
      p.mobileKey = mobileKey;
    }
    const nationalKey = facts?.nationalCode ? nationalIdKey(facts.nationalCode) : text(line.nationalKey);
    if (facts?.nationalCode || nationalKey) {
      p.nationalCode = facts?.nationalCode ?? nationalKey;
      p.nationalKey = nationalKey;
    }
    this.parties.set(id, p);
    // Trimmed in batches (a Map walked from its start after much delete/set churn is slow one by one).
    if (this.parties.size > this.maxParties + Math.max(1, Math.floor(this.maxParties / 10))) {
      let over = this.parties.size - this.maxParties;
      for (const k of this.parties.keys()) {
        if (over-- <= 0) break;
        this.parties.delete(k);
      }
    }
  }

  /** The last success and failure of each pipeline (trigger). */
  lastPerPipeline(): Record<string, PipelineLast> {
    return Object.fromEntries([...this.lastByTrigger.entries()].sort((a, b) => a[0].localeCompare(b[0])));
  }

  /** A party as last seen (no internal keys). */
  party(crmId: string): PartyInfo | undefined {
    const p = this.parties.get(crmId.trim().toLowerCase());
    return p ? publicParty(p) : undefined;
  }

  /**
   * Parties matching a search text: a CRM id, Siagh code, customer number, mobile or national code
   * (any digits: Persian, Arabic or ASCII), or a part of a name (Persian-normalised, separators
   * ignored). Most recently seen first; at most `limit`.
   */
  findParties(query: string, limit = 50): PartyInfo[] {
    const q = query.trim();
    if (!q) return [];
    const key = textKey(q);
    const ascii = toAsciiDigits(q).trim();
    const phone = /\d{4,}/.test(ascii.replace(/[\s()+-]/g, '')) ? phoneKey(q) : undefined;
    const national = /^\d{8,10}$/.test(ascii.replace(/[\s-]/g, '')) ? nationalIdKey(q) : undefined;
    const nameQ = compact(key);
    const out: PartyInfo[] = [];
    const all = [...this.parties.values()].reverse();
    for (const p of all) {
      const hit =
        p.crmId === key ||
        (p.siaghCode !== undefined && toAsciiDigits(p.siaghCode) === ascii) ||
        (p.customerNumber !== undefined && toAsciiDigits(p.customerNumber).toLowerCase() === ascii.toLowerCase()) ||
        (phone !== undefined && p.mobileKey === phone) ||
        (national !== undefined && p.nationalKey === national) ||
        (nameQ.length >= 2 && p.nameKey !== undefined && compact(p.nameKey).includes(nameQ));
      if (hit) {
        out.push(publicParty(p));
        if (out.length >= limit) break;
      }
    }
    return out;
  }

  /** The lines of any of `keys` (see lineKeys), newest first, one page. */
  timeline(keys: string[], opts: { offset?: number; limit?: number } = {}): Page<LogLine> {
    const floor = this.next - this.maxLines;
    const seqs = new Set<number>();
    for (const k of keys) {
      const list = this.byKey.get(k);
      if (!list) continue;
      for (let i = list.head; i < list.seqs.length; i++) if (list.seqs[i] >= floor) seqs.add(list.seqs[i]);
    }
    const sorted = [...seqs].sort((a, b) => b - a);
    const offset = Math.max(0, Math.floor(opts.offset ?? 0));
    const limit = Math.max(1, Math.floor(opts.limit ?? 50));
    const items = sorted.slice(offset, offset + limit).map((s) => this.ring[s % this.maxLines]!);
    return { total: sorted.length, offset, items };
  }
}

function publicParty(p: PartyState): PartyInfo {
  const { nameKey: _n, mobileKey: _m, nationalKey: _k, ...rest } = p;
  void _n;
  void _m;
  void _k;
  return { ...rest };
}
