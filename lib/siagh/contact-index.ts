/**
 * In-memory index of Siagh's contacts (one GetAll), by Code, by mobile (MobileNo / MobileNo2, as
 * phoneKey) and by national code (NationalCode, as nationalIdKey).
 *
 * A fault of the old service (docs/known-faults.md#full-scans): every event downloaded all contacts. Here:
 * - `ensureFresh()` downloads only when the index is older than `maxAgeMs` (or never loaded);
 *   concurrent callers share one download;
 * - `refresh()` forces a download that starts after the call (a download already running when
 *   refresh() is called is not enough: it may predate the write the caller wants to see);
 * - `noteWritten(code, fields)` keeps the index current after our own creates and updates without
 *   a download (also across a download that was running while the write happened).
 *
 * The age counts from the moment the download was requested, so a slow download never makes the
 * data look newer than it is.
 */
import type { SiaghContact, SiaghFieldList } from '../types';
import { nationalIdKey, phoneKey } from '../text/normalize';
import { applyContactFields } from './fields';
import { encodeValue } from './ctrl-values';

export interface ContactIndexOptions {
  /** Oldest data served without a new download (ms). Default 600 000 (10 minutes). */
  maxAgeMs?: number;
  /** Clock, for tests. */
  now?: () => number;
}

export class ContactIndex {
  private readonly maxAgeMs: number;
  private readonly now: () => number;
  private byCodeMap = new Map<number, SiaghContact>();
  private byMobileMap = new Map<string, Entry[]>();
  private byNationalMap = new Map<string, Entry[]>();
  private loadedAtMs: number | undefined;
  private current: Promise<void> | undefined;
  private queued: Promise<void> | undefined;
  /** Writes noted while a download runs: re-applied on top of its result. */
  private notedDuringLoad: Array<[number, SiaghFieldList]> = [];
  private loads = 0;

  constructor(
    private readonly loader: () => Promise<SiaghContact[]>,
    opts: ContactIndexOptions = {},
  ) {
    this.maxAgeMs = opts.maxAgeMs ?? 600_000;
    this.now = opts.now ?? Date.now;
  }

  /** Number of contacts held. */
  get size(): number {
    return this.byCodeMap.size;
  }

  /** When the data held was requested (ms since epoch), undefined before the first download. */
  get loadedAt(): number | undefined {
    return this.loadedAtMs;
  }

  /** Downloads completed. */
  get downloads(): number {
    return this.loads;
  }

  /** Loaded and younger than maxAgeMs. */
  get fresh(): boolean {
    return this.loadedAtMs !== undefined && this.now() - this.loadedAtMs < this.maxAgeMs;
  }

  all(): SiaghContact[] {
    return [...this.byCodeMap.values()];
  }

  /** Download only when stale; a download already running is shared. */
  ensureFresh(): Promise<void> {
    if (this.fresh) return Promise.resolve();
    if (this.current) return this.current;
    return this.refresh();
  }

  /** Force a download that starts at or after this call; concurrent callers share it. */
  refresh(): Promise<void> {
    if (!this.current) return this.start();
    if (!this.queued) {
      const q = this.current
        .catch(() => undefined)
        .then(() => {
          this.queued = undefined;
          return this.start();
        });
      this.queued = q;
    }
    return this.queued;
  }

  private start(): Promise<void> {
    const p = this.load().finally(() => {
      if (this.current === p) this.current = undefined;
    });
    this.current = p;
    return p;
  }

  private async load(): Promise<void> {
    const requestedAt = this.now();
    this.notedDuringLoad = [];
    const list = await this.loader();
    this.replace(list);
    this.loadedAtMs = requestedAt;
    this.loads++;
    const noted = this.notedDuringLoad;
    this.notedDuringLoad = [];
    for (const [code, fields] of noted) this.apply(code, fields);
  }

  /** Replace the whole content (a download's result). */
  replace(list: SiaghContact[]): void {
    this.byCodeMap = new Map();
    this.byMobileMap = new Map();
    this.byNationalMap = new Map();
    for (const c of list) {
      this.byCodeMap.set(c.Code, c);
      this.addKeys(c);
    }
  }

  byCode(code: number | string): SiaghContact | undefined {
    const n = typeof code === 'number' ? code : Number(String(code).trim());
    return Number.isFinite(n) ? this.byCodeMap.get(n) : undefined;
  }

  /** Every contact whose MobileNo or MobileNo2 is the same number (MobileNo matches first, then by Code). */
  allByMobile(raw: string | null | undefined): SiaghContact[] {
    const k = phoneKey(raw);
    return k ? (this.byMobileMap.get(k) ?? []).map((e) => e.c) : [];
  }

  /** The contact with this mobile number (see allByMobile for the order). */
  byMobile(raw: string | null | undefined): SiaghContact | undefined {
    return this.allByMobile(raw)[0];
  }

  allByNationalCode(raw: string | null | undefined): SiaghContact[] {
    const k = nationalIdKey(raw);
    return k ? (this.byNationalMap.get(k) ?? []).map((e) => e.c) : [];
  }

  byNationalCode(raw: string | null | undefined): SiaghContact | undefined {
    return this.allByNationalCode(raw)[0];
  }

  /**
   * Record our own create/update of contact `code` with the form fields sent
   * (`gn_web_users.<column>` keys), without a download.
   */
  noteWritten(code: number, fields: SiaghFieldList): void {
    if (this.current) this.notedDuringLoad.push([code, fields]);
    this.apply(code, fields);
  }

  private apply(code: number, fields: SiaghFieldList): void {
    const existing = this.byCodeMap.get(code);
    const next: SiaghContact = existing ? { ...existing } : { Code: code, Name: null };
    applyContactFields(
      next,
      fields.map(([k, v]) => [k, encodeValue(v)] as const),
    );
    next.Code = code;
    if (existing) this.removeKeys(existing);
    this.byCodeMap.set(code, next);
    this.addKeys(next);
  }

  private addKeys(c: SiaghContact): void {
    const m1 = phoneKey(c.MobileNo);
    const m2 = phoneKey(c.MobileNo2);
    if (m1) insertSorted(this.byMobileMap, m1, c, 0);
    if (m2 && m2 !== m1) insertSorted(this.byMobileMap, m2, c, 1);
    const n = nationalIdKey(c.NationalCode);
    if (n) insertSorted(this.byNationalMap, n, c, 0);
  }

  private removeKeys(c: SiaghContact): void {
    for (const map of [this.byMobileMap, this.byNationalMap]) {
      for (const k of [phoneKey(c.MobileNo), phoneKey(c.MobileNo2), nationalIdKey(c.NationalCode)]) {
        if (!k) continue;
        const list = map.get(k);
        if (!list) continue;
        const i = list.findIndex((x) => x.c.Code === c.Code);
        if (i >= 0) list.splice(i, 1);
        if (list.length === 0) map.delete(k);
      }
    }
  }
}

interface Entry {
  c: SiaghContact;
  /** 0 = primary field (MobileNo, NationalCode), 1 = secondary (MobileNo2). */
  rank: number;
}

/** Keep lists ordered: primary matches first, then by Code. */
function insertSorted(map: Map<string, Entry[]>, key: string, c: SiaghContact, rank: number): void {
  const list = map.get(key);
  if (!list) {
    map.set(key, [{ c, rank }]);
    return;
  }
  let i = list.length;
  while (i > 0) {
    const p = list[i - 1];
    if (p.rank < rank || (p.rank === rank && p.c.Code <= c.Code)) break;
    i--;
  }
  list.splice(i, 0, { c, rank });
}
