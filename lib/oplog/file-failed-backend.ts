/**
 * The file failed list (`FailedList`: failed.json and its journal in a data folder) behind the
 * `FailedBackend` interface: each change is made in memory as before, and its promise resolves
 * once the journal line holding it is written (settle()).
 */
import { FailedList, type DropReport, type FailedEntry, type FailedFilter, type FailedLimits, type FailedOpenOptions, type FailureInput } from './failed-list';
import type { FailedBackend } from './failed-backend';

export class FileFailedBackend implements FailedBackend {
  readonly kind = 'file' as const;

  constructor(readonly list: FailedList) {}

  /** Opens the list at `file` (`failed.json` of a data folder, FAILED_FILE in oplog.ts). */
  static async open(file: string, opts: FailedOpenOptions = {}): Promise<FileFailedBackend> {
    return new FileFailedBackend(await FailedList.open(file, opts));
  }

  setLimits(l: FailedLimits): void {
    this.list.setLimits(l);
  }
  get limits(): { maxEntries: number; maxAgeDays: number } {
    return this.list.limits;
  }
  get onDrop(): ((r: DropReport) => void) | undefined {
    return this.list.onDrop;
  }
  set onDrop(fn: ((r: DropReport) => void) | undefined) {
    this.list.onDrop = fn;
  }
  get dropped(): number {
    return this.list.dropped;
  }
  takeEarlyDrops(): DropReport[] {
    return this.list.takeEarlyDrops();
  }
  async size(): Promise<number> {
    return this.list.size;
  }
  async get(key: string): Promise<FailedEntry | undefined> {
    return this.list.get(key);
  }
  async all(): Promise<FailedEntry[]> {
    return this.list.all();
  }
  async recordFailure(f: FailureInput): Promise<FailedEntry> {
    const e = this.list.recordFailure(f);
    await this.list.settle();
    return e;
  }
  async recordSuccess(key: string): Promise<boolean> {
    const had = this.list.recordSuccess(key);
    await this.list.settle();
    return had;
  }
  async remove(keys: string[]): Promise<number> {
    const n = this.list.remove(keys);
    await this.list.settle();
    return n;
  }
  async match(f: FailedFilter, now?: number): Promise<FailedEntry[]> {
    return this.list.match(f, now);
  }
  async markReplayed(keys: string[], now?: number): Promise<void> {
    this.list.markReplayed(keys, now);
    await this.list.settle();
  }
  async restore(entries: FailedEntry[]): Promise<number> {
    const n = this.list.restore(entries);
    await this.list.settle();
    return n;
  }
  close(): Promise<void> {
    return this.list.close();
  }
}
