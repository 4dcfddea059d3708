/**
 * Relink without the mapping file (issue #10 item 7): the CRM ↔ Siagh link written where it
 * belongs, in the CRM, and a "rebuild mapping" that reads it back after a data folder is lost.
 *
 * WHERE THE LINK LIVES (the decision)
 * - Identities the initial import created from Siagh carry the link already: their customer
 *   number is `prefix + (Code + offset)` (customer-number.ts), and the scheme is an exact inverse.
 * - Identities created in the CRM have customer numbers people chose (CRM-native, arbitrary; the
 *   CRM is the source of truth). Overwriting one would change what sales staff see and search by,
 *   and a number typed by a person cannot be told from one we wrote. So the customer number is
 *   NEVER written. The link goes into `refId` instead: a CRM field the create/update bodies carry
 *   (docs/crm-api.md#person-and-organization) that nothing reads today (docs/crm-api.md#customer-number-and-siagh-code), and where the old import put its Siagh key.
 * - The value is `siagh:<Code>` (REF_ID_PREFIX), not a bare number: the old service left bare
 *   numbers in refId (Siagh RecordId, later tmpid; docs/crm-api.md#customer-number-and-siagh-code), which are not contact Codes. A bare
 *   number would relink to the wrong contact; a marked value cannot be mistaken. refId is written
 *   only when it is empty or already ours (`siagh:<n>`); anything else is someone else's and is left
 *   alone (a warning says so).
 * - refId is not read by the contact mapper, so it is not in the Siagh-bound checksum: the CRM's
 *   Update webhook that the write-back causes (its echo) maps to the same fields, compares as
 *   `unchanged` and writes nothing to Siagh. (A field override whose source is `refId` would break
 *   that; do not map refId to Siagh.)
 *
 * HOW IT IS WRITTEN (fetch-modify-write)
 * The update endpoint takes "the create fields plus crmId" (docs/crm-api.md#person-and-organization; the vendor client only); whether
 * fields left out are kept or blanked is not known for the real CRM (the simulator does either,
 * `updateMode`). A body of only `{crmId, refId}` would, on a replacing CRM, wipe the record. So
 * the record is read again just before the write (person/get or organization/get) and every
 * writable field it holds (the create fields, docs/crm-api.md#person-and-organization) is sent back as read, with refId set. Safe
 * under both semantics; the cost is one get, and a person's edit landing in the milliseconds
 * between the get and the update could be undone (their own webhook has already been queued and
 * syncs what the CRM then holds).
 *
 * REBUILD (`rebuildMapping`)
 * Lists every CRM identity (identity/search paged to an empty page, then one get each for refId
 * and the kind) and every Siagh contact (one GetAll), and matches: refId first, then the customer
 * number by the scheme; never by name, mobile or national code (that takes a person's judgement:
 * the review path of siagh-upsert). The existing mappings are read once (`list`), on either store
 * backend. Dry run: the report only. Apply: the links are stored in the mapping store (source
 * `rebuild`, no checksum, so the next change of each record compares with the Siagh contact field
 * by field); nothing is written to the CRM or to Siagh. Anything that contradicts
 * an existing mapping, or two CRM identities claiming one contact, is reported and not stored.
 * Running it again changes nothing.
 *
 * No Node-RED here; sync-mapping's `rebuild` operation and siagh-upsert's write-back are adapters.
 */
import type { CrmClient } from '../crm/client';
import { SyncError, toSyncError, type SyncErrorCode } from '../errors';
import type { SiaghClient } from '../siagh/client';
import type { MappingBackend } from '../store/mapping-backend';
import type { MappingRecord } from '../store/mapping-store';
import { toAsciiDigits } from '../text/normalize';
import type { CrmIdentity, IdentityKind } from '../types';
import { type CustomerNumberScheme, parseCustomerNumber, validateScheme } from './customer-number';

/** What marks a refId as ours: `siagh:8407`. */
export const REF_ID_PREFIX = 'siagh:';

/** The refId that links a CRM identity to Siagh contact `code`. */
export function buildRefId(code: number): string {
  if (!Number.isSafeInteger(code) || code < 1) throw new SyncError('BAD_INPUT', `Siagh contact code ${JSON.stringify(code)} cannot be written as a CRM refId: a code is a whole number ≥ 1.`);
  return REF_ID_PREFIX + String(code);
}

export type RefIdReading = { state: 'empty' } | { state: 'ours'; code: number } | { state: 'foreign'; value: string };

/**
 * What a CRM refId holds: empty, ours (`siagh:<Code>`, letter case, blanks and Persian digits
 * tolerated), or foreign (anything else: a person's value, the old service's RecordId / tmpid).
 */
export function readRefId(v: unknown): RefIdReading {
  if (v == null) return { state: 'empty' };
  const text = typeof v === 'string' ? v : typeof v === 'number' ? String(v) : '';
  const t = toAsciiDigits(text).trim();
  if (!t) return typeof v === 'string' || typeof v === 'number' ? { state: 'empty' } : { state: 'foreign', value: JSON.stringify(v).slice(0, 60) };
  const m = /^siagh:\s*(\d+)$/i.exec(t);
  if (m) {
    const code = Number(m[1]);
    if (Number.isSafeInteger(code) && code >= 1 && String(code) === m[1]) return { state: 'ours', code };
  }
  return { state: 'foreign', value: t.slice(0, 60) };
}

/**
 * The writable fields of person/create and organization/create (docs/crm-api.md#person-and-organization), i.e. what
 * update takes besides crmId. Read-only fields of the get result (crmId, creatDate, balance, …)
 * are not among them.
 */
export const CRM_WRITABLE_FIELDS: Readonly<Record<IdentityKind, readonly string[]>> = (() => {
  const common = [
    'parentCrmObjectId', 'refId', 'stageId', 'identityId', 'extendedProperties', 'tags', 'colorId', 'sourceTypeIndex',
    'description', 'subject', 'assignedToUserName', 'nickName', 'phoneContacts', 'addressContacts', 'email',
    'alternativeEmail', 'website', 'customerNumber', 'customerDate', 'categories', 'dontSms', 'dontSocialSms',
    'dontPhoneCall', 'dontEmail', 'dontFax', 'supportUsername', 'saleUsername', 'otherUsername', 'facebookUsername',
    'preferredContactType', 'nationalCode', 'economicCode',
  ];
  const person = ['firstName', 'lastName', 'gender', 'personPrefix', 'degree', 'paymentStatusType', 'areasOfInterest', 'mannerType', 'spouse', 'hobbies', 'children', 'birthDate', 'organizations'];
  const organization = ['businessType', 'registerNumber', 'shareType', 'trademark', 'ownershipType', 'tradeType', 'managerId', 'registerDate', 'employees'];
  return Object.freeze({ person: Object.freeze([...common, ...person]), organization: Object.freeze([...common, ...organization]) });
})();

/** The update body that writes `refId` and sends every other writable field back as read. */
export function refIdUpdateBody(record: CrmIdentity, refId: string): Record<string, unknown> {
  const body: Record<string, unknown> = { crmObjectTypeCode: record.kind };
  for (const k of CRM_WRITABLE_FIELDS[record.kind]) {
    const v = (record as Record<string, unknown>)[k];
    if (v !== undefined && v !== null) body[k] = v;
  }
  body.refId = refId;
  return body;
}

export type WriteBackOutcome =
  /** refId set to siagh:<Code>. */
  | 'written'
  /** refId already says siagh:<Code>. */
  | 'already'
  /** The customer number encodes this Code by the scheme (an imported identity): nothing to add. */
  | 'customer-number'
  /** refId holds someone else's value: left alone. */
  | 'foreign';

export interface WriteBackResult {
  outcome: WriteBackOutcome;
  refId?: string;
  /** Operator-readable, for `foreign`. */
  note?: string;
}

/**
 * Write the link of `identity` to Siagh contact `code` into the CRM (see the file comment). Reads
 * the record again first (fetch-modify-write). Throws the CRM client's errors; the caller decides
 * whether a failure matters (siagh-upsert: it does not fail the sync).
 */
export async function writeBackLink(crm: CrmClient, identity: Pick<CrmIdentity, 'crmId' | 'kind' | 'customerNumber' | 'refId'>, code: number, opts: { scheme?: CustomerNumberScheme } = {}): Promise<WriteBackResult> {
  const scheme = validateScheme(opts.scheme);
  const want = buildRefId(code);
  // Cheap checks on what the caller already holds, before any call.
  if (parseCustomerNumber(identity.customerNumber ?? undefined, scheme) === code) return { outcome: 'customer-number' };
  const held = readRefId(identity.refId);
  if (held.state === 'ours' && held.code === code) return { outcome: 'already', refId: want };
  if (held.state === 'foreign') return foreign(held.value, identity.crmId);

  const fresh = await crm.getIdentity(identity.crmId, identity.kind);
  if (parseCustomerNumber(fresh.customerNumber ?? undefined, scheme) === code) return { outcome: 'customer-number' };
  const now = readRefId(fresh.refId);
  if (now.state === 'ours' && now.code === code) return { outcome: 'already', refId: want };
  if (now.state === 'foreign') return foreign(now.value, identity.crmId);
  await crm.updateIdentity(fresh.kind, fresh.crmId, refIdUpdateBody(fresh, want) as Parameters<CrmClient['updateIdentity']>[2]);
  return { outcome: 'written', refId: want };
}

function foreign(value: string, crmId: string): WriteBackResult {
  return { outcome: 'foreign', note: `CRM ${crmId} refId holds "${value}" (not ours): link not written; a rebuild finds it by customer number only` };
}

// ============================================================================================ rebuild

export interface RebuildDeps {
  crm: CrmClient;
  siagh: SiaghClient;
  /** The mapping store: the data folder's file (FileMappingBackend) or PostgreSQL (PgMappingStore). */
  store: MappingBackend;
}

export interface RebuildOptions {
  /** Default true: report only, store nothing. */
  dryRun?: boolean;
  scheme?: CustomerNumberScheme;
  /** CRM gets at once (1–16, default 4). */
  concurrency?: number;
  signal?: AbortSignal;
  /** Mapping source of the stored links. Default 'rebuild'. */
  source?: string;
}

export interface RebuildLink {
  crmId: string;
  code: number;
  by: 'refId' | 'customerNumber';
  kind?: IdentityKind;
  customerNumber?: string;
}

export type RebuildConflictKind =
  /** The CRM identity is mapped to another Siagh contact already. */
  | 'crm-mapped-elsewhere'
  /** The Siagh contact is mapped to another CRM identity already. */
  | 'code-mapped-elsewhere'
  /** Several CRM identities point at the same Siagh contact. */
  | 'code-claimed-twice'
  /** The store refused it (MAPPING_CONFLICT at write time). */
  | 'store-refused';

export interface RebuildConflict {
  crmId: string;
  code: number;
  by: 'refId' | 'customerNumber';
  kind: RebuildConflictKind;
  /** The other side: the code or CRM id it conflicts with. */
  other?: string;
  reason: string;
}

export interface RebuildReport {
  dryRun: boolean;
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  crmIdentities: number;
  siaghContacts: number;
  /** Dry run: what apply would store. */
  wouldLink?: RebuildLink[];
  /** Apply: what was stored. */
  linked?: RebuildLink[];
  conflicts: RebuildConflict[];
  counts: {
    wouldLink: number;
    linked: number;
    /** Already mapped to the same contact: nothing to do. */
    alreadyMapped: number;
    conflicts: number;
    unmatched: number;
    /** CRM identities that could not be read (listed in `failed`). */
    failed: number;
  };
  unmatched: {
    /** Neither an own refId nor a customer number in the scheme. */
    noKey: number;
    /** The refId or customer number names a Code Siagh does not have. */
    codeNotInSiagh: number;
    /** refId held someone else's value (counted also when the customer number then matched). */
    foreignRefId: number;
  };
  failed: Array<{ crmId: string; code: SyncErrorCode; reason: string }>;
  warnings: string[];
}

const FATAL: ReadonlySet<SyncErrorCode> = new Set<SyncErrorCode>(['CRM_BAD_CREDENTIALS', 'CRM_LOCKED_OUT', 'CRM_MODULE_MISSING', 'CRM_LOGIN_FAILED', 'STORE_LOCKED', 'STORE_IO', 'CONFIG']);

/** Mapping saves of a rebuild in flight at once on PostgreSQL (each is one transaction). */
const REBUILD_PG_SAVES = 8;

interface Candidate {
  crmId: string;
  kind: IdentityKind;
  customerNumber?: string;
  code: number;
  by: 'refId' | 'customerNumber';
}

/**
 * Rebuild the contact mappings from the two systems (see the file comment). Rejects only when the
 * run cannot be done (options, login, reading either list, the store failing); one unreadable
 * identity is reported in `failed` and the others go on.
 */
export async function rebuildMapping(deps: RebuildDeps, opts: RebuildOptions = {}): Promise<RebuildReport> {
  const started = Date.now();
  const dryRun = opts.dryRun !== false;
  const scheme = validateScheme(opts.scheme);
  const concurrency = opts.concurrency ?? 4;
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 16) {
    throw new SyncError('CONFIG', `The rebuild concurrency ${JSON.stringify(opts.concurrency)} is not usable: use a whole number from 1 to 16 (default 4).`);
  }
  const source = (opts.source ?? 'rebuild').trim() || 'rebuild';
  const { crm, siagh, store } = deps;
  const warnings: string[] = [];
  const warn = (w: string) => {
    if (warnings.length < 200) warnings.push(w);
  };

  // ---- both lists, at once
  const [contacts, rows] = await Promise.all([siagh.contacts.refresh().then(() => siagh.contacts.all()), crm.searchAllIdentities()]);
  const siaghCodes = new Set(contacts.map((c) => c.Code));
  const ids = [...new Set(rows.map((r) => r.identityId.toLowerCase()))];

  // ---- refId and kind of each identity (search returns neither)
  const failed: RebuildReport['failed'] = [];
  const unmatched = { noKey: 0, codeNotInSiagh: 0, foreignRefId: 0 };
  const candidates: Candidate[] = [];
  let next = 0;
  let fatal: SyncError | undefined;
  const readOne = async (crmId: string): Promise<void> => {
    let rec: CrmIdentity;
    try {
      rec = await crm.getIdentity(crmId);
    } catch (e) {
      const err = toSyncError(e);
      if (FATAL.has(err.code)) fatal ??= err;
      failed.push({ crmId, code: err.code, reason: err.message });
      return;
    }
    const cn = typeof rec.customerNumber === 'string' && rec.customerNumber.trim() ? rec.customerNumber.trim() : undefined;
    const ref = readRefId(rec.refId);
    const byCn = parseCustomerNumber(cn, scheme);
    let missing = false;
    if (ref.state === 'foreign') unmatched.foreignRefId++;
    if (ref.state === 'ours') {
      if (siaghCodes.has(ref.code)) {
        if (byCn !== undefined && byCn !== ref.code) warn(`CRM ${crmId}: refId says Siagh contact ${ref.code}, its customer number ${cn} says ${byCn}; refId wins.`);
        candidates.push({ crmId, kind: rec.kind, customerNumber: cn, code: ref.code, by: 'refId' });
        return;
      }
      missing = true;
      warn(`CRM ${crmId}: refId names Siagh contact ${ref.code}, which Siagh does not have.`);
    }
    if (byCn !== undefined) {
      if (siaghCodes.has(byCn)) {
        candidates.push({ crmId, kind: rec.kind, customerNumber: cn, code: byCn, by: 'customerNumber' });
        return;
      }
      missing = true;
    }
    if (missing) unmatched.codeNotInSiagh++;
    else unmatched.noKey++;
  };
  const worker = async () => {
    while (!fatal && !opts.signal?.aborted && next < ids.length) await readOne(ids[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, Math.max(1, ids.length)) }, worker));
  if (fatal) throw fatal;
  if (opts.signal?.aborted) throw new SyncError('UNKNOWN', 'The rebuild was stopped before it had read every CRM identity; nothing was stored.');

  // ---- one contact, one identity
  const conflicts: RebuildConflict[] = [];
  const byCode = new Map<number, Candidate[]>();
  for (const c of candidates) {
    const list = byCode.get(c.code);
    if (list) list.push(c);
    else byCode.set(c.code, [c]);
  }
  const accepted: Candidate[] = [];
  for (const [code, list] of byCode) {
    if (list.length === 1) {
      accepted.push(list[0]);
      continue;
    }
    const byRef = list.filter((c) => c.by === 'refId');
    const winner = byRef.length === 1 ? byRef[0] : undefined;
    if (winner) accepted.push(winner);
    for (const c of list) {
      if (c === winner) continue;
      const others = list.filter((o) => o !== c).map((o) => o.crmId);
      conflicts.push({
        crmId: c.crmId,
        code,
        by: c.by,
        kind: 'code-claimed-twice',
        other: others.join(', '),
        reason: winner
          ? `Siagh contact ${code} is claimed by CRM ${c.crmId} (${c.by}) and by CRM ${winner.crmId} (refId); refId wins, ${c.crmId} is not linked. Merge the duplicates in the CRM.`
          : `Siagh contact ${code} is claimed by ${list.length} CRM identities (${list.map((o) => `${o.crmId} by ${o.by}`).join(', ')}); none is linked. Merge the duplicates in the CRM, or correct their customer numbers.`,
      });
    }
  }

  // ---- against the mappings there are (read once: one query on PostgreSQL, not two per identity)
  const byCrmId = new Map<string, MappingRecord>();
  const byMappedCode = new Map<string, MappingRecord>();
  for (const m of await store.list({ entityType: 'contact' })) {
    byCrmId.set(m.crmId, m);
    byMappedCode.set(m.siaghCode, m);
  }
  const links: RebuildLink[] = [];
  let alreadyMapped = 0;
  for (const c of accepted) {
    const mine = byCrmId.get(c.crmId);
    if (mine) {
      if (mine.siaghCode === String(c.code)) alreadyMapped++;
      else {
        conflicts.push({
          crmId: c.crmId,
          code: c.code,
          by: c.by,
          kind: 'crm-mapped-elsewhere',
          other: mine.siaghCode,
          reason: `CRM ${c.crmId} points at Siagh contact ${c.code} (${c.by}) but is mapped to Siagh contact ${mine.siaghCode}; the mapping is kept. Delete it first if the CRM is right.`,
        });
      }
      continue;
    }
    const holder = byMappedCode.get(String(c.code));
    if (holder && holder.crmId !== c.crmId) {
      conflicts.push({
        crmId: c.crmId,
        code: c.code,
        by: c.by,
        kind: 'code-mapped-elsewhere',
        other: holder.crmId,
        reason: `CRM ${c.crmId} points at Siagh contact ${c.code} (${c.by}), which is mapped to CRM ${holder.crmId}; the mapping is kept.`,
      });
      continue;
    }
    links.push({ crmId: c.crmId, code: c.code, by: c.by, kind: c.kind, ...(c.customerNumber ? { customerNumber: c.customerNumber } : {}) });
  }
  links.sort((a, b) => a.code - b.code);

  // ---- apply: the store only. A mapping stored meanwhile that contradicts one of these (a webhook
  // flow, another instance) is refused by the store (MAPPING_CONFLICT: reported), never overwritten.
  const stored: RebuildLink[] = [];
  if (!dryRun) {
    const save = (l: RebuildLink): Promise<void> =>
      store
        .store({ entityType: 'contact', crmId: l.crmId, siaghCode: l.code, customerNumber: l.customerNumber, source }, { commitWithinMs: 250 })
        .then(
          () => {
            stored.push(l);
          },
          (e: unknown) => {
            const err = toSyncError(e);
            if (err.code === 'MAPPING_CONFLICT') {
              conflicts.push({ crmId: l.crmId, code: l.code, by: l.by, kind: 'store-refused', reason: err.message });
            } else {
              // The store not writable fails the run; one record the store refuses (BAD_INPUT) does not.
              if (FATAL.has(err.code)) fatal ??= err;
              failed.push({ crmId: l.crmId, code: err.code, reason: err.message });
            }
          },
        );
    if (store.kind === 'file') {
      // All at once: the file store writes them in a few shared file writes.
      const saves = links.map(save);
      if (saves.length) store.flush().catch(() => undefined);
      await Promise.all(saves);
    } else {
      // One transaction each: a few at a time, so the pool the queue and the claims share stays free.
      let at = 0;
      const saver = async () => {
        while (!fatal && at < links.length) await save(links[at++]);
      };
      await Promise.all(Array.from({ length: Math.min(REBUILD_PG_SAVES, Math.max(1, links.length)) }, saver));
    }
    stored.sort((a, b) => a.code - b.code);
    if (fatal) throw fatal;
  }

  const finished = Date.now();
  const unmatchedCount = unmatched.noKey + unmatched.codeNotInSiagh;
  return {
    dryRun,
    startedAt: new Date(started).toISOString(),
    finishedAt: new Date(finished).toISOString(),
    durationMs: finished - started,
    crmIdentities: ids.length,
    siaghContacts: contacts.length,
    ...(dryRun ? { wouldLink: links } : { linked: stored }),
    conflicts,
    counts: {
      wouldLink: dryRun ? links.length : 0,
      linked: dryRun ? 0 : stored.length,
      alreadyMapped,
      conflicts: conflicts.length,
      unmatched: unmatchedCount,
      failed: failed.length,
    },
    unmatched,
    failed,
    warnings,
  };
}
