/**
 * Initial import, Siagh → CRM (issue 4 "initial-import"; docs/known-faults.md#races,
 * docs/known-faults.md#skipped-unmapped, docs/known-faults.md#customer-number, docs/known-faults.md#paging).
 *
 * For every Siagh contact (one GetAll at the start) except admin users:
 * - already mapped by its Code → `skipped` ('already mapped');
 * - the CRM already has its customer number → `linked`: the mapping is stored, nothing is created
 *   (the old service skipped these without a mapping, so the next webhook duplicated them);
 * - otherwise → a person or organization is created in the CRM and its mapping stored at once,
 *   with the checksum the webhook path computes for the same content, so the CRM's Insert/Update
 *   echoes of the import compare as `unchanged` and rewrite nothing in Siagh.
 *
 * The CRM is read once, whole (identity/search paged to an empty page), into an index by customer
 * number: never one search per contact, so a record costs one CRM call (its create) or none (a
 * link). The mappings already stored are read once too (`list`, one query on PostgreSQL), so the
 * contacts mapped already are skipped without a lookup each. Work runs in a small pool of workers, each with
 * at most one CRM call in flight; before its write a worker asks the store again whether the record
 * was mapped meanwhile (a webhook flow or another instance on the same store; its two lookups at
 * once, one round trip on PostgreSQL). A worker does not wait for the mapping of its last record to
 * reach the store (on the file store the saves of ~`saveWithinMs` share one file write; on
 * PostgreSQL each is its own transaction, several at once), but a record is reported done only once
 * its mapping is durable, and the run ends only when every save has settled. A failure of
 * one record never stops the others. Resumable: a re-run skips what is mapped, links what was created
 * but not mapped (a crash between create and store), and creates the rest; the CRM client itself
 * searches by customer number after an ambiguous create instead of repeating it. Dry run: the plan
 * only, nothing written (neither the CRM nor the mapping store).
 *
 * Failures of the run itself (login refused, GetAll or the CRM search failing) reject. Errors that
 * would fail every later record too (bad credentials, lock-out, the store not writable) stop the
 * run: the records not attempted are reported as failed and the report carries `stoppedBy`.
 *
 * No Node-RED here; nodes/siagh-import is a thin adapter.
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import type { CrmClient } from '../crm/client';
import { SyncError, toSyncError, type SyncErrorCode } from '../errors';
import { hideSecrets } from '../oplog/scrub';
import type { SiaghClient } from '../siagh/client';
import type { MappingBackend } from '../store/mapping-backend';
import type { MappingInput, MappingRecord } from '../store/mapping-store';
import { writeFileAtomic } from '../store/atomic-file';
import { toAsciiDigits } from '../text/normalize';
import type { CrmIdentity, CrmIdentitySummary, IdentityKind, SiaghContact } from '../types';
import { type ContactMapOptions, mapIdentityToContact } from './contact-mapper';
import { type CustomerNumberScheme, buildCustomerNumber, validateScheme } from './customer-number';
import { mapContactToCrm, type ImportMapOptions } from './import-mapper';

export interface ImportDeps {
  siagh: SiaghClient;
  crm: CrmClient;
  /** The mapping store: the data folder's file (FileMappingBackend) or PostgreSQL (PgMappingStore). */
  store: MappingBackend;
}

export type ImportOutcome = 'created' | 'linked' | 'skipped' | 'failed' | 'planned-create' | 'planned-link';

export interface ImportRecord {
  /** Siagh contact Code. */
  code: number;
  /** Siagh contact Name (trimmed). */
  name: string;
  outcome: ImportOutcome;
  /** The CRM identity created, linked, found mapped, or planned to be linked. */
  crmId?: string;
  customerNumber: string;
  /** person / organization, for created and planned-create records. */
  kind?: IdentityKind;
  /** Why it was skipped or failed. */
  reason?: string;
  /** Error code of a failed record. */
  errorCode?: string;
  /** Operator notes (mapper warnings, duplicate customer numbers in the CRM). */
  warnings?: string[];
}

export interface ImportCounts {
  created: number;
  linked: number;
  skipped: number;
  failed: number;
  /** Dry run only. */
  plannedCreate: number;
  plannedLink: number;
}

export interface ImportProgress extends ImportCounts {
  done: number;
  total: number;
}

export interface ImportReport {
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  dryRun: boolean;
  /** Siagh contacts read (admins included). */
  total: number;
  counts: ImportCounts;
  /** CRM identities found at the start. */
  crmIdentities: number;
  /** Set when the run was stopped by its signal; records not attempted are failed 'not attempted'. */
  aborted?: boolean;
  /** Set when an error that would fail every later record stopped the run. */
  stoppedBy?: { code: string; message: string };
  warnings: string[];
  /** Where the report was written (when a file was asked for and written). */
  reportFile?: string;
  records: ImportRecord[];
}

export interface ImportOptions {
  /** Plan only: nothing is written to the CRM or the store. */
  dryRun?: boolean;
  /** Records worked on at once. Default 4 (1–32). */
  concurrency?: number;
  scheme?: CustomerNumberScheme;
  /** Default [{key: 'syaghcontact'}]. */
  categories?: Array<{ key: string }>;
  phoneTypeLabels?: ImportMapOptions['phoneTypeLabels'];
  /** CRM gender values for Siagh 0 / 1 (see import-mapper); null = no gender copied. */
  genderLabels?: ImportMapOptions['genderLabels'];
  /**
   * The contact-mapper options of the webhook path (siagh-upsert), so the stored checksum is the
   * one the echo webhooks will compute. Default: `{scheme}`.
   */
  contactMap?: ContactMapOptions;
  /** At most this many contacts are created or linked in this run; the others are skipped ('limit reached'). */
  limit?: number;
  onProgress?: (p: ImportProgress) => void;
  signal?: AbortSignal;
  /** Write the report here (JSON, atomically). */
  reportFile?: string;
  /** Texts (passwords) removed from every reason and message of the report. */
  secrets?: Array<string | undefined>;
  /** Persist `import.progress` every this many records (default 100) or this often (default 5 000 ms). */
  progressEvery?: number;
  progressEveryMs?: number;
  /**
   * A worker moves on to its next record while the mapping of the last one is on its way to disk;
   * the mapping may wait this long (ms) for a file write shared with others (default 250; 0 = the
   * next write). A record is reported (outcome, progress) only once its mapping is durable.
   */
  saveWithinMs?: number;
}

export const IMPORT_PROGRESS_KEY = 'import.progress';

/**
 * Default of `saveWithinMs`: how long a mapping saved by the import may wait for the file write that
 * makes it durable (ms). The store writes the whole file on each commit; letting the saves of this
 * long share one write keeps the workers on the CRM instead of on the disk.
 */
export const IMPORT_SAVE_WITHIN_MS = 250;
/** Saves per worker after which the import asks for the file write at once instead of at its timer. */
export const IMPORT_FLUSH_PENDING_SAVES = 8;
/** Saves one worker may have on their way to disk; at this many it waits for the oldest. */
export const IMPORT_MAX_PENDING_SAVES = 32;

/** Errors after which every later record would fail the same way: the run stops. */
const FATAL: ReadonlySet<SyncErrorCode> = new Set<SyncErrorCode>(['CRM_BAD_CREDENTIALS', 'CRM_LOCKED_OUT', 'CRM_MODULE_MISSING', 'STORE_LOCKED', 'STORE_IO', 'CONFIG']);

interface WorkItem {
  index: number;
  contact: SiaghContact;
  customerNumber: string;
}

/** A record whose mapping is on its way to disk: final once `saving` settles (it never rejects). */
interface Saving {
  saving: Promise<ImportRecord>;
}

/** How customer numbers are compared: ASCII digits, no blanks, lower case (as the CRM client does). */
function cnKey(v: string | null | undefined): string {
  return v ? toAsciiDigits(String(v)).replace(/\s+/g, '').toLowerCase() : '';
}

function emptyCounts(): ImportCounts {
  return { created: 0, linked: 0, skipped: 0, failed: 0, plannedCreate: 0, plannedLink: 0 };
}

function checkOptions(opts: ImportOptions): { concurrency: number; scheme: CustomerNumberScheme; mapOpts: ImportMapOptions; contactMap: ContactMapOptions } {
  const concurrency = opts.concurrency ?? 4;
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 32) {
    throw new SyncError('CONFIG', `The import concurrency ${JSON.stringify(opts.concurrency)} is not usable: use a whole number from 1 to 32 (default 4).`);
  }
  if (opts.limit !== undefined && (!Number.isInteger(opts.limit) || opts.limit < 0)) {
    throw new SyncError('CONFIG', `The import limit ${JSON.stringify(opts.limit)} is not usable: use a whole number ≥ 0, or leave it out for no limit.`);
  }
  const scheme = validateScheme(opts.scheme);
  const mapOpts: ImportMapOptions = { scheme, categories: opts.categories, phoneTypeLabels: opts.phoneTypeLabels, genderLabels: opts.genderLabels };
  const contactMap: ContactMapOptions = { ...opts.contactMap, scheme: opts.contactMap?.scheme ?? scheme };
  // Try both mappers once on a sample, so bad categories / labels / overrides stop the run before
  // anything is written instead of failing every record.
  const sample = mapContactToCrm({ Code: 1, Name: 'نمونه', TowardType: false }, mapOpts);
  mapIdentityToContact({ ...sample.body, crmId: '00000000-0000-0000-0000-000000000000', kind: sample.kind } as CrmIdentity, contactMap);
  return { concurrency, scheme, mapOpts, contactMap };
}

/**
 * Import every Siagh contact into the CRM (see the file comment). Resolves with the report; rejects
 * only when the run cannot start (options, login, reading Siagh or the CRM).
 */
export async function runImport(deps: ImportDeps, opts: ImportOptions = {}): Promise<ImportReport> {
  const started = Date.now();
  const startedAt = new Date(started).toISOString();
  const dryRun = opts.dryRun === true;
  const clean = (s: string) => hideSecrets(s, opts.secrets);
  const { concurrency, scheme, mapOpts, contactMap } = checkOptions(opts);
  const { siagh, crm, store } = deps;
  const saveWithinMs = Math.max(0, opts.saveWithinMs ?? IMPORT_SAVE_WITHIN_MS);
  const warnings: string[] = [];
  const warn = (w: string) => {
    if (warnings.length < 200) warnings.push(clean(w));
  };
  if (opts.signal?.aborted) throw new SyncError('UNKNOWN', 'The import was stopped before it started.');

  // ---- read both sides, at once (the old service did the same)
  const [contacts, crmRows] = await Promise.all([
    siagh.contacts.refresh().then(() => siagh.contacts.all().sort((a, b) => a.Code - b.Code)),
    crm.searchAllIdentities(),
  ]);
  const crmIndex = new Map<string, CrmIdentitySummary[]>();
  for (const row of crmRows) {
    const k = cnKey(row.customerNo);
    if (!k) continue;
    const list = crmIndex.get(k);
    if (list) list.push(row);
    else crmIndex.set(k, [row]);
  }

  const total = contacts.length;
  const records: ImportRecord[] = new Array(total);
  const counts = emptyCounts();
  let done = 0;
  const progress = (): ImportProgress => ({ done, total, ...counts });
  const emit = () => {
    if (!opts.onProgress) return;
    try {
      opts.onProgress(progress());
    } catch {
      /* a listener's fault is not the import's */
    }
  };

  // ---- progress persisted in the store (never in a dry run)
  const every = Math.max(1, opts.progressEvery ?? 100);
  const everyMs = Math.max(0, opts.progressEveryMs ?? 5000);
  let lastSaved = Date.now();
  let lastSavedDone = 0;
  // One progress save at a time, the newest value waiting behind it (a value superseded while it
  // waits is never written): on PostgreSQL two saves in flight could commit out of order, and a
  // late 'running' must never overwrite 'finished'. No backlog builds up either way.
  let saving: Promise<void> = Promise.resolve();
  let waiting: { value: Record<string, unknown>; commitWithinMs: number } | undefined;
  const saveProgress = (status: 'running' | 'finished' | 'stopped', extra: Record<string, unknown> = {}, commitWithinMs = 0): Promise<void> => {
    if (dryRun) return Promise.resolve();
    const value = { status, startedAt, updatedAt: new Date().toISOString(), ...progress(), ...extra };
    lastSaved = Date.now();
    lastSavedDone = done;
    const queued = waiting !== undefined;
    waiting = { value, commitWithinMs: Math.min(waiting?.commitWithinMs ?? commitWithinMs, commitWithinMs) };
    if (!queued) {
      saving = saving.then(async () => {
        const w = waiting!;
        waiting = undefined;
        try {
          await store.setMeta(IMPORT_PROGRESS_KEY, w.value, { commitWithinMs: w.commitWithinMs });
        } catch (e) {
          warn(`The import progress could not be saved in the mapping store (${toSyncError(e).message}).`);
        }
      });
    }
    return saving;
  };
  const maybeSaveProgress = () => {
    if (dryRun) return;
    // Rides along with the mapping saves' commits (file store) instead of forcing one of its own.
    if (done - lastSavedDone >= every || Date.now() - lastSaved >= everyMs) void saveProgress('running', {}, saveWithinMs);
  };

  const finish = (i: number, rec: ImportRecord): void => {
    if (rec.reason) rec.reason = clean(rec.reason);
    if (rec.warnings) rec.warnings = rec.warnings.map(clean);
    records[i] = rec;
    done++;
    switch (rec.outcome) {
      case 'created':
        counts.created++;
        break;
      case 'linked':
        counts.linked++;
        break;
      case 'skipped':
        counts.skipped++;
        break;
      case 'failed':
        counts.failed++;
        break;
      case 'planned-create':
        counts.plannedCreate++;
        break;
      case 'planned-link':
        counts.plannedLink++;
        break;
    }
    emit();
    maybeSaveProgress();
  };

  await saveProgress('running');

  // ---- classify what needs no call: the contacts mapped already, from one read of the mappings
  const mappedAtStart = new Map<string, MappingRecord>();
  for (const m of await store.list({ entityType: 'contact' })) mappedAtStart.set(m.siaghCode, m);
  const work: WorkItem[] = [];
  let limited = 0;
  for (let i = 0; i < total; i++) {
    const c = contacts[i];
    const name = typeof c.Name === 'string' ? c.Name.trim() : '';
    let customerNumber = '';
    try {
      customerNumber = buildCustomerNumber(c.Code, scheme);
    } catch (e) {
      finish(i, { code: c.Code, name, customerNumber, outcome: 'failed', reason: toSyncError(e).message, errorCode: toSyncError(e).code });
      continue;
    }
    if (c.IsAdminUser === true) {
      finish(i, { code: c.Code, name, customerNumber, outcome: 'skipped', reason: 'admin user' });
      continue;
    }
    const mapped = mappedAtStart.get(String(c.Code));
    if (mapped) {
      finish(i, { code: c.Code, name, customerNumber, outcome: 'skipped', reason: 'already mapped', crmId: mapped.crmId });
      continue;
    }
    if (opts.limit !== undefined && work.length >= opts.limit) {
      limited++;
      finish(i, { code: c.Code, name, customerNumber, outcome: 'skipped', reason: `limit reached (${opts.limit} per run)` });
      continue;
    }
    work.push({ index: i, contact: c, customerNumber });
  }
  if (limited) warn(`${limited} contacts were left for a later run (limit ${opts.limit} per run).`);

  // ---- the pool
  let stoppedBy: SyncError | undefined;
  let aborted = false;

  /**
   * Save a mapping without holding the worker: the record's outcome is `ok` once the mapping is
   * durable, or `onFail(err)` when it could not be saved (a fatal error stops the run).
   */
  const save = (input: MappingInput, ok: ImportRecord, onFail: (err: SyncError) => ImportRecord): Saving => ({
    saving: store.store(input, { commitWithinMs: saveWithinMs }).then(
      () => ok,
      (e: unknown) => {
        const err = toSyncError(e);
        if (FATAL.has(err.code)) stoppedBy ??= err;
        return onFail(err);
      },
    ),
  });

  /** `other`: the mapping the store holds for the first hit's CRM id (if any). */
  const link = (item: WorkItem, base: Omit<ImportRecord, 'outcome'>, hits: CrmIdentitySummary[], other: MappingRecord | undefined): ImportRecord | Saving => {
    const hit = hits[0];
    const crmId = hit.identityId.toLowerCase();
    const w: string[] = [];
    if (hits.length > 1) {
      w.push(`${hits.length} CRM identities carry customer number ${item.customerNumber} (${hits.map((h) => h.identityId).join(', ')}); linked to the first. Merge the duplicates in the CRM.`);
    }
    if (other && other.siaghCode !== String(item.contact.Code)) {
      return {
        ...base,
        outcome: 'failed',
        crmId,
        errorCode: 'MAPPING_CONFLICT',
        reason: `CRM identity ${crmId} has customer number ${item.customerNumber} but is already mapped to Siagh contact ${other.siaghCode}; nothing was linked. Correct the customer number in the CRM or the mapping, then run the import again.`,
        ...(w.length ? { warnings: w } : {}),
      };
    }
    if (dryRun) return { ...base, outcome: 'planned-link', crmId, ...(w.length ? { warnings: w } : {}) };
    return save(
      { entityType: 'contact', crmId, siaghCode: item.contact.Code, customerNumber: item.customerNumber, source: 'import' },
      { ...base, outcome: 'linked', crmId, ...(w.length ? { warnings: w } : {}) },
      (err) => ({ ...base, outcome: 'failed', crmId, errorCode: err.code, reason: err.message, ...(w.length ? { warnings: w } : {}) }),
    );
  };

  const create = async (item: WorkItem, base: Omit<ImportRecord, 'outcome'>): Promise<ImportRecord | Saving> => {
    const mapped = mapContactToCrm(item.contact, mapOpts);
    const w = mapped.warnings.length ? { warnings: mapped.warnings } : {};
    if (dryRun) return { ...base, outcome: 'planned-create', kind: mapped.kind, ...w };
    const crmId = (await crm.createIdentity(mapped.kind, mapped.body)).toLowerCase();
    const key = cnKey(item.customerNumber);
    if (!crmIndex.has(key)) crmIndex.set(key, [{ identityId: crmId, nickName: mapped.body.nickName, customerNo: item.customerNumber }]);
    const checksum = mapIdentityToContact({ ...mapped.body, crmId, kind: mapped.kind } as CrmIdentity, contactMap).checksum;
    // Seen by lookups at once (file store: in memory) or once committed (PostgreSQL); durable before
    // the record is reported created. A crash in between leaves an identity the next run finds by
    // its customer number and links.
    return save(
      { entityType: 'contact', crmId, siaghCode: item.contact.Code, customerNumber: item.customerNumber, checksum, source: 'import' },
      { ...base, outcome: 'created', kind: mapped.kind, crmId, ...w },
      (err) => ({
        ...base,
        outcome: 'failed',
        kind: mapped.kind,
        crmId,
        errorCode: err.code,
        reason: `Created in the CRM as ${crmId}, but the mapping could not be saved (${err.message}). Run the import again: it links the identity by its customer number and creates nothing twice.`,
        ...w,
      }),
    );
  };

  const processOne = async (item: WorkItem): Promise<ImportRecord | Saving> => {
    const c = item.contact;
    const base = { code: c.Code, name: typeof c.Name === 'string' ? c.Name.trim() : '', customerNumber: item.customerNumber };
    try {
      // Mapped meanwhile (a webhook flow on the same store, another instance, or a second run)? And
      // for a link, is its CRM id mapped to another contact? Both asked at once.
      const hits = crmIndex.get(cnKey(item.customerNumber));
      const linkTo = hits && hits.length ? hits[0].identityId.toLowerCase() : undefined;
      const [mapped, other] = await Promise.all([store.lookupBySiaghCode('contact', c.Code), linkTo ? store.lookup('contact', linkTo) : undefined]);
      if (mapped) return { ...base, outcome: 'skipped', reason: 'already mapped', crmId: mapped.crmId };
      if (hits && hits.length) return link(item, base, hits, other);
      return await create(item, base);
    } catch (e) {
      const err = toSyncError(e);
      if (FATAL.has(err.code)) stoppedBy ??= err;
      return { ...base, outcome: 'failed', errorCode: err.code, reason: err.message };
    }
  };

  // Each worker has at most one CRM call in flight, and moves on while the mapping of its last
  // records is on its way to disk (at most IMPORT_MAX_PENDING_SAVES of them); it ends only when
  // all of them are durable (or failed), so the report and the progress count durable records only.
  let next = 0;
  const workers = Math.min(concurrency, Math.max(1, work.length));
  let savesSinceFlush = 0;
  const worker = async (): Promise<void> => {
    const inFlight = new Set<Promise<void>>();
    for (;;) {
      if (opts.signal?.aborted) aborted = true;
      if (aborted || stoppedBy || next >= work.length) break;
      const item = work[next++];
      const r = await processOne(item);
      if ('saving' in r) {
        const p: Promise<void> = r.saving.then((rec) => {
          inFlight.delete(p);
          finish(item.index, rec);
        });
        inFlight.add(p);
        // Enough for one write: ask for it now rather than at its timer (the worker goes on).
        if (++savesSinceFlush >= IMPORT_FLUSH_PENDING_SAVES * workers) {
          savesSinceFlush = 0;
          store.flush().catch(() => undefined);
        }
        if (inFlight.size >= IMPORT_MAX_PENDING_SAVES) await Promise.race(inFlight);
      } else finish(item.index, r);
    }
    // No more work for this worker: its last saves need not wait for their timer.
    if (inFlight.size) store.flush().catch(() => undefined);
    await Promise.all(inFlight);
  };
  await Promise.all(Array.from({ length: workers }, () => worker()));

  // Whatever the pool did not reach (stopped or aborted).
  for (let k = next; k < work.length; k++) {
    const item = work[k];
    const why = stoppedBy ? `not attempted: the import stopped after ${stoppedBy.code} (${stoppedBy.message})` : 'not attempted: the import was stopped';
    finish(item.index, { code: item.contact.Code, name: typeof item.contact.Name === 'string' ? item.contact.Name.trim() : '', customerNumber: item.customerNumber, outcome: 'failed', reason: why });
  }

  const finished = Date.now();
  const report: ImportReport = {
    startedAt,
    finishedAt: new Date(finished).toISOString(),
    durationMs: finished - started,
    dryRun,
    total,
    counts,
    crmIdentities: crmRows.length,
    ...(aborted ? { aborted: true } : {}),
    ...(stoppedBy ? { stoppedBy: { code: stoppedBy.code, message: clean(stoppedBy.message) } } : {}),
    warnings,
    records,
  };

  // The progress first, the report file last: once the report file is there, the run has ended
  // (an operator or a script that waits for the file can start the next run at once).
  const state = stoppedBy || aborted ? 'stopped' : 'finished';
  const ended = { finishedAt: report.finishedAt, ...(report.stoppedBy ? { stoppedBy: report.stoppedBy } : {}) };
  const planned = opts.reportFile ? path.resolve(opts.reportFile) : undefined;
  // A running-progress save may be waiting for its shared write (file store): not for its timer.
  if (!dryRun) store.flush().catch(() => undefined);
  await saveProgress(state, { ...ended, ...(planned ? { reportFile: planned } : {}) });
  if (opts.reportFile) {
    try {
      await writeReport(opts.reportFile, report);
      report.reportFile = planned;
    } catch (e) {
      warn(`The report could not be written to ${opts.reportFile} (${e instanceof Error ? e.message : String(e)}).`);
      await saveProgress(state, ended);
    }
  }
  return report;
}

/** Write the report as indented JSON, atomically (temp file, fsync, rename), creating the folder. */
export async function writeReport(file: string, report: ImportReport): Promise<void> {
  const target = path.resolve(file);
  await fsp.mkdir(path.dirname(target), { recursive: true });
  await writeFileAtomic(target, JSON.stringify({ ...report, reportFile: target }, null, 2) + '\n');
}

/** The report without its records (for a message), with how many were left out. */
export function reportSummary(report: ImportReport): Omit<ImportReport, 'records'> & { recordsOmitted: number } {
  const { records, ...rest } = report;
  return { ...rest, recordsOmitted: records.length };
}
