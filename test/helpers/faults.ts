/**
 * What the fault-matrix, bad-input and secrets tests share on top of the end-to-end harness
 * (helpers/e2e.ts): distinctive CRM records, the operator's files in SYNC_DATA_DIR (failed.json,
 * mappings.json, sync-log.jsonl), the two invariants of every cell — NO EVENT LOST (each record
 * the pipeline was asked to sync is synced in Siagh, or listed in failed.json with a reason) and
 * NO DUPLICATE (in Siagh, in the CRM, in the pre-invoices) — and the replay of the failed list.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { nationalIdWithCheckDigit } from '../../sim/seed';
import type { SiaghSimSave } from '../../sim/siagh-sim';
import type { SimResponse } from '../../sim/sim-server';
import { suidFor } from '../../lib/sync/preinvoice-mapper';
import { nationalIdKey, phoneKey } from '../../lib/text/normalize';
import { E2eEnv, shippedFlows } from './e2e';
import { readFailedOnDisk, readOnDisk } from '../fixtures/store-helpers';

// ------------------------------------------------------------------------------ records

let seq = 0;
/** A different base per process, so two runs on one machine never share a mobile. */
const BASE = (process.pid * 7919 + Date.now()) % 900_000;

export interface PersonSpec {
  /** CRM fields for CrmSim.addPerson. */
  fields: Record<string, unknown>;
  nickName: string;
  mobile: string;
  nationalCode: string;
}

/** A realistic CRM person with its own mobile and a valid national code of its own. */
export function person(tag: string, extra: Record<string, unknown> = {}): PersonSpec {
  seq++;
  const n = (BASE + seq * 37) % 1_000_000;
  const mobile = `0935${String(n).padStart(6, '0')}${seq % 10}`;
  const nationalCode = nationalIdWithCheckDigit(`00${String(2_000_000 + ((BASE * 13 + seq * 101) % 7_000_000)).slice(0, 7)}`);
  const nickName = `مشتری ${tag} ${seq}`;
  return {
    nickName,
    mobile,
    nationalCode,
    fields: {
      firstName: 'مشتری',
      lastName: `${tag} ${seq}`,
      nickName,
      email: `c${seq}.${BASE}@example.ir`,
      nationalCode,
      phoneContacts: [{ default: true, phoneType: 'موبایل', phoneNumber: mobile }],
      ...extra,
    },
  };
}

/** Two quote rows (valid for the simulator). */
export const QUOTE_ROWS = [
  { productCode: 'P-100', productName: 'شیر گاز', count: 2, baseUnitPrice: 1_250_000 },
  { productCode: 'P-200', productName: 'رگولاتور', count: 1, baseUnitPrice: 3_400_000 },
];

// ------------------------------------------------------------------------------ the data dir

export interface FailedEntryLike {
  key: string;
  entity: string;
  event: { type: string; id: string; event: string; subtype?: string };
  reason: { code: string; message: string };
  attempts: number;
  replays?: number;
}

/**
 * The failed list as it stands on disk (empty when there is none yet): the folded snapshot
 * failed.json, then its journal failed.jsonl replayed over it.
 */
export function readFailed(dataDir: string): FailedEntryLike[] {
  return Object.values(readFailedOnDisk(path.join(dataDir, 'failed.json'))) as FailedEntryLike[];
}

/** The raw text of failed.json and failed.jsonl (whichever exist), e.g. to look for secrets. */
export function failedFilesText(dataDir: string): string {
  const f = path.join(dataDir, 'failed.json');
  return [f, f.replace(/\.json$/i, '.jsonl')]
    .filter((x) => fs.existsSync(x))
    .map((x) => fs.readFileSync(x, 'utf8'))
    .join('\n');
}

export interface MappingLike {
  crmId: string;
  siaghCode: string;
  customerNumber?: string;
  checksum?: string;
  source?: string;
}

/** mappings.json (with its journal replayed over it): per entity type, CRM id → record. */
export function readMappings(dataDir: string): Record<'contact' | 'quote' | 'invoice', Record<string, MappingLike>> {
  const f = path.join(dataDir, 'mappings.json');
  const empty = { contact: {}, quote: {}, invoice: {} };
  if (!fs.existsSync(f)) return empty;
  const d = readOnDisk(f) as unknown as { mappings?: typeof empty };
  return { ...empty, ...d.mappings };
}

/** Every line of sync-log.jsonl (and its rotated files), oldest file first. */
export function readSyncLog(dataDir: string): string {
  if (!fs.existsSync(dataDir)) return '';
  return fs
    .readdirSync(dataDir)
    .filter((f) => f.startsWith('sync-log'))
    .sort()
    .reverse()
    .map((f) => fs.readFileSync(path.join(dataDir, f), 'utf8'))
    .join('');
}

// ------------------------------------------------------------------------------ the invariants

/** A CRM record a pipeline was asked to sync. */
export type Tracked = { kind: 'identity'; crmId: string; spec: PersonSpec } | { kind: 'quote'; crmId: string; customerId: string };

export type Verdict = { state: 'synced'; code: string } | { state: 'failed'; code: string; message: string } | { state: 'pending'; why: string };

/** Where one tracked record stands: synced (with the right fields), in failed.json with a reason, or neither yet. */
export function verdict(env: E2eEnv, t: Tracked, maps = readMappings(env.dataDir), failed = readFailed(env.dataDir)): Verdict {
  const f = failed.find((e) => e.key === `${t.kind}:${t.crmId.toLowerCase()}`);
  if (t.kind === 'identity') {
    const m = maps.contact[t.crmId.toLowerCase()];
    if (m) {
      const c = env.siagh.contact(Number(m.siaghCode));
      if (!c) return { state: 'pending', why: `mapped to Siagh ${m.siaghCode}, which does not exist` };
      const bad: string[] = [];
      if (c.Name !== t.spec.nickName) bad.push(`Name ${JSON.stringify(c.Name)} ≠ ${JSON.stringify(t.spec.nickName)}`);
      if (phoneKey(c.MobileNo) !== phoneKey(t.spec.mobile)) bad.push(`MobileNo ${c.MobileNo} ≠ ${t.spec.mobile}`);
      if (nationalIdKey(c.NationalCode) !== nationalIdKey(t.spec.nationalCode)) bad.push(`NationalCode ${c.NationalCode} ≠ ${t.spec.nationalCode}`);
      if (bad.length === 0 && !f) return { state: 'synced', code: m.siaghCode };
      if (bad.length) return { state: 'pending', why: `Siagh contact ${m.siaghCode}: ${bad.join('; ')}` };
    }
  } else {
    const m = maps.quote[t.crmId.toLowerCase()];
    const suid = suidFor(t.crmId, 'quote');
    const docs = env.siagh.preInvoices().filter((p) => p.suid === suid);
    if (m && docs.length >= 1 && !f) return { state: 'synced', code: m.siaghCode };
  }
  if (f) {
    if (!f.reason?.code || !f.reason?.message) return { state: 'pending', why: `failed.json entry without a reason: ${JSON.stringify(f)}` };
    return { state: 'failed', code: f.reason.code, message: f.reason.message };
  }
  return { state: 'pending', why: 'neither synced nor in failed.json' };
}

export function describeAll(env: E2eEnv, items: Tracked[]): string {
  const maps = readMappings(env.dataDir);
  const failed = readFailed(env.dataDir);
  return items.map((t) => `${t.kind} ${t.crmId}: ${JSON.stringify(verdict(env, t, maps, failed))}`).join('\n');
}

/**
 * Wait (bounded) until every tracked record is synced or failed, and the simulators, the mapping
 * file and failed.json have been quiet for `quietMs`. Returns the verdicts.
 */
export async function settle(env: E2eEnv, items: Tracked[], opts: { timeoutMs?: number; quietMs?: number } = {}): Promise<Map<string, Verdict>> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  await env.waitFor('every record synced or in failed.json', () => items.every((t) => verdict(env, t).state !== 'pending'), timeoutMs).catch((e: Error) => {
    const log = readSyncLog(env.dataDir).trim().split('\n').slice(-12).map((l) => l.slice(0, 260)).join('\n');
    const hooks = env.crm.webhookLog().slice(-6).map((d) => `${d.event} ${d.type} ${d.id} → ${d.status}`).join('\n');
    const idents = env.crm.identities().slice(-4).map((i) => `${i.crmId} ${String(i.nickName)}`).join('\n');
    const contacts = `${hooks}\n--- CRM identities ---\n${idents}\n--- Siagh ---\n` + env.siagh.contacts().slice(-6).map((c) => `${c.Code} ${c.Name} ${c.MobileNo}`).join('\n');
    throw new Error(`${e.message}\n--- records ---\n${describeAll(env, items)}\n--- last lines of the sync log ---\n${log}\n--- last Siagh contacts ---\n${contacts}`);
  });
  await env.waitQuiet('the pipeline', () => activity(env), { quietMs: opts.quietMs ?? 700, timeoutMs });
  const maps = readMappings(env.dataDir);
  const failed = readFailed(env.dataDir);
  return new Map(items.map((t) => [t.crmId, verdict(env, t, maps, failed)]));
}

/** A snapshot of everything a pipeline changes (for waitQuiet). */
export function activity(env: E2eEnv): unknown {
  const size = (f: string) => {
    try {
      return fs.statSync(path.join(env.dataDir, f)).mtimeMs;
    } catch {
      return 0;
    }
  };
  return [env.siagh.saveCount, env.siagh.contacts().length, env.siagh.preInvoices().length, [...env.crm.counts.values()].reduce((a, b) => a + b, 0), env.crm.identities().length, size('failed.json'), size('failed.jsonl'), size('mappings.json'), size('mappings.json.journal')];
}

/** NO EVENT LOST, strictly: every tracked record is synced or in failed.json with a reason. */
export function assertNoneLost(env: E2eEnv, items: Tracked[]): { synced: Tracked[]; failed: Array<Tracked & { reason: string }> } {
  const maps = readMappings(env.dataDir);
  const failedList = readFailed(env.dataDir);
  const out = { synced: [] as Tracked[], failed: [] as Array<Tracked & { reason: string }> };
  const lost: string[] = [];
  for (const t of items) {
    const v = verdict(env, t, maps, failedList);
    if (v.state === 'synced') out.synced.push(t);
    else if (v.state === 'failed') out.failed.push({ ...t, reason: v.code });
    else lost.push(`${t.kind} ${t.crmId}: ${v.why}`);
  }
  assert.deepEqual(lost, [], `EVENT LOST: neither synced nor in failed.json\n${lost.join('\n')}\n${env.diagnose(20)}`);
  return out;
}

/**
 * NO DUPLICATE in either system: no two Siagh contacts share a mobile or a national code, no two
 * CRM identities share a customer number, no two pre-invoices share a suid (one per quote), no
 * Siagh contact is mapped from two CRM identities.
 */
export function assertNoDuplicates(env: E2eEnv): void {
  const dupes = <T>(list: T[], key: (x: T) => string | undefined): string[] => {
    const seen = new Map<string, number>();
    for (const x of list) {
      const k = key(x);
      if (k) seen.set(k, (seen.get(k) ?? 0) + 1);
    }
    return [...seen].filter(([, n]) => n > 1).map(([k, n]) => `${k} ×${n}`);
  };
  const contacts = env.siagh.contacts();
  assert.deepEqual(dupes(contacts, (c) => phoneKey(c.MobileNo)), [], 'two Siagh contacts with the same mobile');
  assert.deepEqual(dupes(contacts, (c) => nationalIdKey(c.NationalCode)), [], 'two Siagh contacts with the same national code');
  assert.deepEqual(dupes(env.crm.identities(), (i) => (i.customerNumber ? String(i.customerNumber) : undefined)), [], 'two CRM identities with the same customer number');
  assert.deepEqual(dupes(env.siagh.preInvoices(), (p) => p.suid || undefined), [], 'two pre-invoices for one quote (same suid)');
  const maps = readMappings(env.dataDir);
  assert.deepEqual(dupes(Object.values(maps.contact), (m) => m.siaghCode), [], 'one Siagh contact mapped from two CRM identities');
}

// ------------------------------------------------------------------------------ driving

/** The shipped webhook flow's "replay all failed" inject node. */
export function replayInjectId(): string {
  const n = shippedFlows().find((x) => x.type === 'inject' && x.name === 'replay all failed');
  if (!n) throw new Error('flows/webhook-sync.json has no inject node named "replay all failed"');
  return n.id;
}

/** The shipped webhook flow's sync-log node whose output 2 leads back into the pipeline. */
export function replayLogId(): string {
  const n = shippedFlows().find((x) => x.type === 'sync-log' && Array.isArray(x.wires) && Array.isArray((x.wires as string[][])[1]) && (x.wires as string[][])[1].length > 0);
  if (!n) throw new Error('no shipped sync-log node has its replay output wired');
  return n.id;
}

/**
 * Press "replay all failed" and wait (bounded) for the replayed entries to leave failed.json or
 * fail again. AMBIGUOUS_CREATE entries are not replayed by it (they wait for an operator).
 */
export async function replayAll(env: E2eEnv, items: Tracked[], timeoutMs = 30_000): Promise<void> {
  const before = new Map(readFailed(env.dataDir).filter((e) => e.reason.code !== 'AMBIGUOUS_CREATE').map((e) => [e.key, e.attempts]));
  await env.inject(replayInjectId());
  await waitReplayed(env, before, items, timeoutMs);
}

/**
 * Replay one event by its CRM id through the sync-log admin endpoint, as the operator does from the
 * editor after checking the other system (the only way an AMBIGUOUS_CREATE entry is replayed).
 */
export async function replayOne(env: E2eEnv, crmId: string, items: Tracked[], timeoutMs = 30_000): Promise<void> {
  const before = new Map(readFailed(env.dataDir).filter((e) => e.event.id === crmId.toLowerCase()).map((e) => [e.key, e.attempts]));
  const res = await fetch(`${env.url}/siagh-sync/sync-log/${replayLogId()}/replay`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ crmId }),
  });
  const body = (await res.json()) as { ok?: boolean; replayed?: number };
  assert.equal(res.status, 200, JSON.stringify(body));
  assert.equal(body.replayed, before.size, `replayed ${JSON.stringify(body)}`);
  await waitReplayed(env, before, items, timeoutMs);
}

async function waitReplayed(env: E2eEnv, before: Map<string, number>, items: Tracked[], timeoutMs: number): Promise<void> {
  // A replayed entry either goes (success) or comes back with one more attempt.
  await env.waitFor(
    'every replayed event to be synced or to fail again',
    () => {
      const now = new Map(readFailed(env.dataDir).map((e) => [e.key, e.attempts]));
      return [...before].every(([k, a]) => !now.has(k) || (now.get(k) ?? 0) > a);
    },
    timeoutMs,
  );
  await settle(env, items, { timeoutMs });
}

/** Kill Node-RED (SIGKILL) from inside a simulator hook, once, at the n-th call of `hook`. */
export function killAt(env: E2eEnv, n: number): () => void {
  let calls = 0;
  return () => {
    if (++calls === n) env.red.child.kill('SIGKILL');
  };
}

/** Wrap a Siagh save hook so it runs `fn` on every save (and keeps the reply). */
export function onEverySave(fn: (save: SiaghSimSave) => void): (save: SiaghSimSave, reply: SimResponse) => SimResponse {
  return (save, reply) => {
    fn(save);
    return reply;
  };
}

/** Clear every fault and hook of both simulators (records are kept: the mapping file refers to them). */
export function clearFaults(env: E2eEnv): void {
  env.siagh.faults.clear();
  env.crm.faults.clear();
  env.siagh.onSave = undefined;
  env.siagh.expiryShape = 'errors200';
  env.crm.beforeHandle = undefined;
}


/**
 * The hooks every fault-matrix file shares: clear the simulators' faults after each cell; after
 * the file, stop its Node-RED and print the timings of its own cells.
 */
export function matrixHooks(env: () => E2eEnv | undefined): void {
  let first = 0;
  before(() => {
    first = cellTimes.length;
  });
  afterEach(() => {
    const e = env();
    if (e) clearFaults(e);
  });
  after(async () => {
    await env()?.stop();
    const mine = cellTimes.slice(first);
    if (mine.length) console.log('      cell timings: ' + mine.map((c) => `${c.cell} ${(c.ms / 1000).toFixed(1)} s`).join(' · '));
  });
}

/** Timings of the cells (see `timed`), printed by matrixHooks. */
export const cellTimes: Array<{ cell: string; ms: number }> = [];
export function timed<T>(cell: string, fn: (this: Mocha.Context) => Promise<T>): (this: Mocha.Context) => Promise<T> {
  return async function (this: Mocha.Context) {
    const t0 = Date.now();
    try {
      return await fn.call(this);
    } finally {
      cellTimes.push({ cell, ms: Date.now() - t0 });
    }
  };
}
