/**
 * Moving a store from one backend to another (a data folder into PostgreSQL, or back): the
 * mapping records, the meta values (poll cursors, create marks), the failed list and the sync
 * queue's jobs. It reads one side and writes the other through the backend interfaces only, so it
 * knows nothing of files or SQL; scripts/store-transfer.ts is the command around it.
 *
 * First a plan, always: every source record is compared with the target's. A conflict is a
 * disagreement about identity — the target maps the same CRM id to another Siagh code, or holds
 * the source's Siagh code for another CRM id. One conflict and nothing is written (the operator
 * decides which side is right, fixes it, and runs again). Otherwise the source wins: new records,
 * meta values and failed entries are added, differing ones replaced, and records only in the
 * target stay. A dry run makes the plan and writes nothing. Running the move twice changes nothing
 * the second time.
 *
 * Queue jobs: every job waiting or retrying moves as it is (id, attempts, next-run time, the
 * record it waits for, data, trigger), through `QueueBackend.restore`: a job already in the target
 * (same id) is left alone, one whose record has a waiting job there merges into it as an enqueue
 * would (so a second run adds nothing). Dead jobs are not in a queue: they are the failed list's
 * entries, moved above. A job in flight in the source (a live lease: an instance is working on it)
 * stops the move, as a conflict does: stop the instances first. A lease that ran out with nobody
 * left to sweep it (every instance stopped) is not live: that job moves as waiting, its attempts as
 * they were, as a restart gives back the jobs in flight.
 */
import type { FailedEntry } from '../oplog/failed-list';
import type { FailedBackend } from '../oplog/failed-backend';
import type { MappingBackend } from './mapping-backend';
import { restoreDecision, type QueueBackend } from '../queue/queue-backend';
import type { Job } from '../queue/sync-queue';
import { ENTITY_TYPES, type EntityType, type MappingRecord } from './mapping-store';

/** One side of a move: where its mappings, failed list and queue live. */
export interface StoreSide {
  /** How the report names it: `file:/data/siagh`, `postgres`. */
  label: string;
  mapping: MappingBackend;
  failed: FailedBackend;
  /** Its sync queue; absent: no queue there yet (no jobs). */
  queue?: QueueBackend;
}

export interface QueueTransferCounts {
  /** Jobs in the source (waiting, retrying, waiting for another record; not in flight). */
  total: number;
  /** Not in the target: added as they were. */
  added: number;
  /** Merged into the target's waiting job of the same record (as an enqueue would). */
  merged: number;
  /** In the target already (the same job, or a merge that would change nothing). */
  same: number;
}

export interface TransferCounts {
  /** In the source. */
  total: number;
  /** Not in the target: added. */
  added: number;
  /** In the target already, the same: left alone. */
  same: number;
  /** In the target with other values: replaced by the source's. */
  replaced: number;
}

export interface TransferConflict {
  entityType: EntityType;
  crmId: string;
  siaghCode: string;
  /** What the target holds instead, for the operator. */
  reason: string;
}

export interface TransferReport {
  from: string;
  to: string;
  dryRun: boolean;
  /** True when the target was changed. */
  written: boolean;
  mappings: TransferCounts;
  meta: TransferCounts;
  failed: TransferCounts;
  queue: QueueTransferCounts;
  /** Jobs in flight in the source (live leases): while there are any, nothing is written. */
  inFlight: number;
  /** At most 100 are listed; `conflictCount` has them all. */
  conflicts: TransferConflict[];
  conflictCount: number;
}

export interface TransferOptions {
  from: StoreSide;
  /** The target; absent for a dry run against a target that does not exist yet (it is empty). */
  to?: StoreSide;
  /** The target's label when `to` is absent. */
  toLabel?: string;
  dryRun?: boolean;
  /** Records read per page (default 1000). */
  pageSize?: number;
  /** Writes in flight at once (default 20). */
  concurrency?: number;
}

const MAX_LISTED_CONFLICTS = 100;
const LABEL: Record<EntityType, string> = { contact: 'contact', quote: 'quote', invoice: 'invoice' };

async function readAll(m: MappingBackend, pageSize: number): Promise<MappingRecord[]> {
  const out: MappingRecord[] = [];
  for (const t of ENTITY_TYPES) {
    for (let offset = 0; ; offset += pageSize) {
      const page = await m.list({ entityType: t, offset, limit: pageSize });
      out.push(...page);
      if (page.length < pageSize) break;
    }
  }
  return out;
}

/** The fields that say the same thing (key order and absent-vs-undefined aside). */
function sameRecord(a: MappingRecord, b: MappingRecord): boolean {
  return canonical(a) === canonical(b);
}

function canonical(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) =>
    x && typeof x === 'object' && !Array.isArray(x) ? Object.fromEntries(Object.entries(x as Record<string, unknown>).sort(([p], [q]) => (p < q ? -1 : p > q ? 1 : 0))) : x,
  );
}

async function inBatches<T>(items: T[], size: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  for (let i = 0; i < items.length; i += size) await Promise.all(items.slice(i, i + size).map(fn));
}

function counts(total: number): TransferCounts {
  return { total, added: 0, same: 0, replaced: 0 };
}

/** Plan the move, and unless it is a dry run or a conflict was found, make it. */
export async function transferStore(opts: TransferOptions): Promise<TransferReport> {
  const pageSize = Math.max(1, opts.pageSize ?? 1000);
  const concurrency = Math.max(1, opts.concurrency ?? 20);
  const dryRun = opts.dryRun === true;
  const to = opts.to;
  if (!to && !dryRun) throw new Error('transferStore: a target is needed unless this is a dry run');

  // --- read both sides
  const records = await readAll(opts.from.mapping, pageSize);
  const meta = await opts.from.mapping.metaEntries();
  const failed = await opts.from.failed.all();
  const theirs = to ? await readAll(to.mapping, pageSize) : [];
  const theirMeta = to ? await to.mapping.metaEntries() : {};
  const theirFailed = to ? await to.failed.all() : [];
  const sourceJobs = opts.from.queue ? await opts.from.queue.list() : [];
  const theirJobs = to?.queue ? await to.queue.list() : [];
  const live = sourceJobs.filter((j) => j.active && !j.leaseExpired);
  const jobs: Job[] = sourceJobs.filter((j) => !live.includes(j)).map(({ active: _a, leaseExpired: _e, ...j }) => j);

  // --- plan
  const report: TransferReport = {
    from: opts.from.label,
    to: to?.label ?? opts.toLabel ?? 'target',
    dryRun,
    written: false,
    mappings: counts(records.length),
    meta: counts(Object.keys(meta).length),
    failed: counts(failed.length),
    queue: { total: jobs.length, added: 0, merged: 0, same: 0 },
    inFlight: live.length,
    conflicts: [],
    conflictCount: 0,
  };
  const byId = new Map<string, MappingRecord>();
  const byCode = new Map<string, MappingRecord>();
  for (const r of theirs) {
    byId.set(`${r.entityType}\u0000${r.crmId}`, r);
    byCode.set(`${r.entityType}\u0000${r.siaghCode}`, r);
  }
  const conflict = (c: TransferConflict) => {
    report.conflictCount++;
    if (report.conflicts.length < MAX_LISTED_CONFLICTS) report.conflicts.push(c);
  };
  const toStore: MappingRecord[] = [];
  for (const r of records) {
    const mine = byId.get(`${r.entityType}\u0000${r.crmId}`);
    const holder = byCode.get(`${r.entityType}\u0000${r.siaghCode}`);
    if (mine && mine.siaghCode !== r.siaghCode) {
      conflict({ entityType: r.entityType, crmId: r.crmId, siaghCode: r.siaghCode, reason: `the target maps this CRM ${LABEL[r.entityType]} to Siagh code ${mine.siaghCode}` });
    } else if (holder && holder.crmId !== r.crmId) {
      conflict({ entityType: r.entityType, crmId: r.crmId, siaghCode: r.siaghCode, reason: `the target maps this Siagh code to CRM id ${holder.crmId}` });
    } else if (!mine) {
      report.mappings.added++;
      toStore.push(r);
    } else if (sameRecord(mine, r)) report.mappings.same++;
    else {
      report.mappings.replaced++;
      toStore.push(r);
    }
  }
  const metaToSet: [string, unknown][] = [];
  for (const [k, v] of Object.entries(meta)) {
    if (!(k in theirMeta)) report.meta.added++;
    else if (canonical(theirMeta[k]) === canonical(v)) {
      report.meta.same++;
      continue;
    } else report.meta.replaced++;
    metaToSet.push([k, v]);
  }
  const theirFailedByKey = new Map(theirFailed.map((e) => [e.key, e]));
  const failedToPut: FailedEntry[] = [];
  for (const e of failed) {
    const t = theirFailedByKey.get(e.key);
    if (!t) report.failed.added++;
    else if (canonical(t) === canonical(e)) {
      report.failed.same++;
      continue;
    } else report.failed.replaced++;
    failedToPut.push(e);
  }
  // The jobs, one after another against the target as it would be (two source jobs of one record:
  // the second merges into the first, as restore will do).
  const table = new Map<string, Array<Job & { active?: boolean }>>();
  const ids = new Set<string>();
  for (const j of theirJobs) {
    table.set(j.key, [...(table.get(j.key) ?? []), j]);
    ids.add(j.id);
  }
  for (const j of jobs) {
    const here = table.get(j.key) ?? [];
    const d = ids.has(j.id) ? { outcome: 'same' as const, into: undefined } : restoreDecision(j, here);
    report.queue[d.outcome]++;
    if (d.outcome === 'added') {
      table.set(j.key, [...here, j]);
      ids.add(j.id);
    } else if (d.outcome === 'merged') table.set(j.key, here.map((h) => (h.id === d.into!.id ? d.into! : h)));
  }
  if (dryRun || report.conflictCount > 0 || report.inFlight > 0 || !to) return report;
  if (jobs.length && !to.queue) throw new Error('transferStore: the target has no queue to move the jobs into');

  // --- write: mappings in the source's order (it keeps the order of last write), then meta, then the failed list
  if (toStore.length || metaToSet.length || failedToPut.length) report.written = true;
  // The order of last write matters (list(), the oldest of a customer number). The file store
  // takes calls in the order made, so a batch goes at once (and shares one journal write); a
  // database orders concurrent writes as they arrive, so there they go one at a time.
  await inBatches(toStore, to.mapping.kind === 'file' ? Math.max(concurrency, 500) : 1, (r) => to.mapping.store({ ...r }));
  await inBatches(metaToSet, concurrency, ([k, v]) => to.mapping.setMeta(k, v));
  await to.mapping.flush();
  for (let i = 0; i < failedToPut.length; i += pageSize) await to.failed.restore(failedToPut.slice(i, i + pageSize));
  // Jobs last: one that runs at once on a live target finds its mapping and cursor there already.
  if (jobs.length && report.queue.added + report.queue.merged > 0) {
    const outcomes = await to.queue!.restore(jobs);
    // What happened (a running target instance may have changed its queue since the plan).
    report.queue = { total: jobs.length, added: 0, merged: 0, same: 0 };
    for (const o of outcomes) report.queue[o]++;
    if (report.queue.added + report.queue.merged > 0) report.written = true;
  }
  return report;
}

/** The report as lines for a terminal. */
export function describeTransfer(r: TransferReport): string[] {
  const c = (x: TransferCounts) => `${x.total} (${x.added} new, ${x.replaced} replaced, ${x.same} already there)`;
  const lines = [
    `${r.dryRun ? 'Dry run: ' : ''}${r.from} → ${r.to}`,
    `  mappings:    ${c(r.mappings)}`,
    `  meta values: ${c(r.meta)}`,
    `  failed list: ${c(r.failed)}`,
    `  queue jobs:  ${r.queue.total} (${r.queue.added} new, ${r.queue.merged} merged into a waiting job of their record, ${r.queue.same} already there)`,
  ];
  if (r.inFlight) {
    lines.push(
      `  ${r.inFlight} job(s) in flight in ${r.from}: an instance is working on them, so nothing was written.`,
      '  Stop every Node-RED instance that uses it (a stopped instance gives its jobs back; one that was',
      '  killed holds them until its lease runs out, at most the store\'s lease time), then run again.',
    );
  }
  if (r.conflictCount) {
    lines.push(`  ${r.conflictCount} conflict(s): the two stores disagree about these records, so nothing was written:`);
    for (const k of r.conflicts) lines.push(`    ${k.entityType} ${k.crmId} → Siagh ${k.siaghCode}: ${k.reason}`);
    if (r.conflictCount > r.conflicts.length) lines.push(`    … and ${r.conflictCount - r.conflicts.length} more`);
    lines.push('  Decide which side is right, delete the wrong mapping there, and run again.');
  } else if (r.inFlight) {
    // said above
  } else if (r.dryRun) lines.push('  Nothing was written. Run again without --dry-run to move.');
  else lines.push(r.written ? '  Written.' : '  Nothing to write: the target holds all of it already.');
  return lines;
}
