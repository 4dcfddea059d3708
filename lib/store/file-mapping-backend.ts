/**
 * The file mapping store (`MappingStore`, one data folder) behind the `MappingBackend` interface:
 * a thin adapter, every call passed through. The store answers reads from memory and makes its
 * writes durable before they resolve, so nothing here changes its guarantees.
 */
import { MappingStore, readMappingFile, type CommitOptions, type EntityType, type MappingInput, type MappingRecord, type MappingStoreOptions } from './mapping-store';
import type { ClaimOptions, MappingBackend, MappingBackendStats } from './mapping-backend';

export class FileMappingBackend implements MappingBackend {
  readonly kind = 'file' as const;

  constructor(readonly mappingStore: MappingStore) {}

  /** Opens (or shares) the file store at `file` (`mappingFileIn(dir)` for a data folder). */
  static async open(file: string, opts: MappingStoreOptions = {}): Promise<FileMappingBackend> {
    return new FileMappingBackend(await MappingStore.open(file, opts));
  }

  async lookup(entityType: EntityType, crmId: string): Promise<MappingRecord | undefined> {
    return this.mappingStore.lookup(entityType, crmId);
  }
  async lookupBySiaghCode(entityType: EntityType, code: string | number): Promise<MappingRecord | undefined> {
    return this.mappingStore.lookupBySiaghCode(entityType, code);
  }
  async lookupByCustomerNumber(customerNumber: string): Promise<MappingRecord | undefined> {
    return this.mappingStore.lookupByCustomerNumber(customerNumber);
  }
  async lookupAllByCustomerNumber(customerNumber: string): Promise<MappingRecord[]> {
    return this.mappingStore.lookupAllByCustomerNumber(customerNumber);
  }
  async list(opts: { entityType?: EntityType; offset?: number; limit?: number } = {}): Promise<MappingRecord[]> {
    return this.mappingStore.list(opts);
  }
  async stats(): Promise<MappingBackendStats> {
    return this.mappingStore.stats();
  }
  async getMeta<T = unknown>(key: string): Promise<T | undefined> {
    return this.mappingStore.getMeta<T>(key);
  }
  async metaEntries(): Promise<Record<string, unknown>> {
    // The store keeps no key list of its own: read what is durable, once every change is written.
    await this.mappingStore.flush();
    return readMappingFile(this.mappingStore.filePath).meta;
  }
  store(input: MappingInput, opts: { claimToken?: string } & CommitOptions = {}): Promise<MappingRecord> {
    return this.mappingStore.store(input, opts);
  }
  delete(entityType: EntityType, crmId: string): Promise<boolean> {
    return this.mappingStore.delete(entityType, crmId);
  }
  setMeta(key: string, value: unknown, opts: CommitOptions = {}): Promise<void> {
    return this.mappingStore.setMeta(key, value, opts);
  }
  flush(): Promise<void> {
    return this.mappingStore.flush();
  }
  claim(entityType: EntityType, crmId: string, opts: ClaimOptions = {}): Promise<string> {
    return this.mappingStore.claim(entityType, crmId, opts);
  }
  async release(entityType: EntityType, crmId: string, token: string): Promise<void> {
    this.mappingStore.release(entityType, crmId, token);
  }
  async renewClaim(entityType: EntityType, crmId: string, token: string, leaseMs?: number): Promise<boolean> {
    return this.mappingStore.renewClaim(entityType, crmId, token, leaseMs);
  }
  async isClaimed(entityType: EntityType, crmId: string): Promise<boolean> {
    return this.mappingStore.isClaimed(entityType, crmId);
  }
  close(): Promise<void> {
    return this.mappingStore.close();
  }
}
