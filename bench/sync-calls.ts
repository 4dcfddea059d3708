/**
 * Benchmark part 1: remote calls per steady-state identity event.
 *
 * Both simulators on loopback with a set latency; the CRM simulator seeded with CRM identities and
 * its webhooks pointed at a local recorder. Each event is what the CRM really sends (an Update
 * webhook after a change made as a CRM user would) and goes through the real sync path of the
 * webhook pipeline: CrmClient.getIdentity (kind from the webhook subtype) → MappingStore.lookup →
 * syncContact → MappingStore.store when the mapping changed (as sync-mapping "store" does).
 *
 * Warm-up: one event per identity (the first sync: logins, one GetAll for the contact index, the
 * creates in Siagh, the mappings). Then `events` events on those mapped identities, a share of them
 * changing a mapped field (description → one Siagh save) and the rest changing a field that is not
 * mapped (colorId → nothing to write). Requests are counted by the simulators per endpoint.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CrmClient } from '../lib/crm/client';
import { toSyncError } from '../lib/errors';
import { SiaghClient } from '../lib/siagh/client';
import { MappingStore } from '../lib/store/mapping-store';
import { syncContact } from '../lib/sync/contact-sync';
import { kindOf } from '../lib/ref';
import { CrmSim } from '../sim/crm-sim';
import { rng, seedCrmIdentities } from '../sim/seed';
import { SiaghSim } from '../sim/siagh-sim';
import { type Figure, WebhookRecorder, fmtMs, round } from './common';

export interface SyncCallsOptions {
  /** CRM identities (all mapped during the warm-up). Default 200. */
  identities?: number;
  /** Measured events after the warm-up. Default 400. */
  events?: number;
  /** Share of the events that change a mapped field. Default 0.5. */
  changedShare?: number;
  /** Simulator latency (ms). Default 5. */
  latencyMs?: number;
  seed?: number;
  log?: (line: string) => void;
}

export interface CallCounts {
  crmGets: number;
  siaghSaves: number;
  getAll: number;
  logins: number;
  /** Every request either simulator received (the four above and anything else). */
  total: number;
}

export interface SyncCallsResult {
  identities: number;
  events: number;
  changed: number;
  unchanged: number;
  failed: number;
  actions: Record<string, number>;
  latencyMs: number;
  warmup: CallCounts & { events: number; failed: number };
  totals: CallCounts;
  perEvent: CallCounts;
  perChangedEvent: number;
  perUnchangedEvent: number;
  /** Most remote calls any single event needed. */
  maxPerEvent: number;
  msPerEvent: number;
  met: boolean;
}

const CRM_LOGIN = 'POST /api/v2/auth/login';
const CRM_GETS = ['POST /api/v2/crmobject/person/get', 'POST /api/v2/crmobject/organization/get'];
const SIAGH_LOGIN = 'POST /GeneralApi/LoginUser';
const SIAGH_SAVES = ['POST /BpmsApi/SaveFormData', 'POST /GeneralApi/SaveFormData'];
const SIAGH_GETALL = ['GET /api/Sgh/GEN/Gn_Web_Users/GetAll', 'POST /api/Sgh/GEN/Gn_Web_Users/GetAll'];

function countsOf(crm: CrmSim, siagh: SiaghSim): CallCounts {
  const sum = (sim: CrmSim | SiaghSim, keys: string[]) => keys.reduce((n, k) => n + sim.count(k), 0);
  let total = 0;
  for (const v of crm.counts.values()) total += v;
  for (const v of siagh.counts.values()) total += v;
  return {
    crmGets: sum(crm, CRM_GETS),
    siaghSaves: sum(siagh, SIAGH_SAVES),
    getAll: sum(siagh, SIAGH_GETALL),
    logins: crm.count(CRM_LOGIN) + siagh.count(SIAGH_LOGIN),
    total,
  };
}

function minus(a: CallCounts, b: CallCounts): CallCounts {
  return { crmGets: a.crmGets - b.crmGets, siaghSaves: a.siaghSaves - b.siaghSaves, getAll: a.getAll - b.getAll, logins: a.logins - b.logins, total: a.total - b.total };
}

export async function runSyncCallsBench(opts: SyncCallsOptions = {}): Promise<SyncCallsResult> {
  const nIdentities = Math.max(1, Math.floor(opts.identities ?? 200));
  const nEvents = Math.max(1, Math.floor(opts.events ?? 400));
  const changedShare = opts.changedShare ?? 0.5;
  const latencyMs = opts.latencyMs ?? 5;
  const log = opts.log ?? ((l: string) => console.log(l));
  const r = rng(opts.seed ?? 5);

  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'siagh-bench-calls-'));
  const recorder = new WebhookRecorder();
  await recorder.start();
  const seeds = seedCrmIdentities(nIdentities, { seed: opts.seed ?? 5 });
  const strip = (k: 'person' | 'organization') => seeds.filter((s) => s.kind === k).map(({ kind: _k, ...rest }) => rest as Record<string, unknown>);
  const crmSim = new CrmSim({ persons: strip('person'), organizations: strip('organization'), webhookUrl: recorder.url });
  // Codes of created contacts start above the Codes the seed's customer numbers (100-(Code+1000))
  // point at, so a new contact never "matches" another identity's customer number.
  const siaghSim = new SiaghSim({ users: [{ UserName: 'bench', Password: 'bench-pass' }], firstCode: 100_000 });
  await crmSim.start();
  await siaghSim.start();
  crmSim.faults.latencyMs = latencyMs;
  siaghSim.faults.latencyMs = latencyMs;
  const crm = new CrmClient({ baseUrl: crmSim.url, username: 'api', password: 'api-pass', retryBaseMs: 20 });
  const siagh = new SiaghClient({ baseUrl: siaghSim.url, username: 'bench', password: 'bench-pass', retryBaseMs: 20 });
  const store = await MappingStore.open(path.join(tmp, 'mappings.json'));
  const actions: Record<string, number> = {};
  /** Failures by error code: how many, and the first message. */
  const errors = new Map<string, { n: number; first: string }>();

  /** The webhook pipeline for one identity event; returns the action or 'failed'. */
  const syncEvent = async (q: URLSearchParams): Promise<string> => {
    try {
      const identity = await crm.getIdentity(String(q.get('id')), kindOf(q.get('subtype')));
      const mapping = store.lookup('contact', identity.crmId);
      const res = await syncContact(siagh, identity, mapping ? { siaghCode: mapping.siaghCode, checksum: mapping.checksum } : null, {
        mappedCrmIdOf: (code) => store.lookupBySiaghCode('contact', code)?.crmId,
      });
      const same = mapping && mapping.siaghCode === String(res.code) && mapping.checksum === res.checksum && (mapping.customerNumber ?? undefined) === (res.customerNumber || undefined);
      if (!same) {
        await store.store({ entityType: 'contact', crmId: identity.crmId, siaghCode: res.code, customerNumber: res.customerNumber || undefined, checksum: res.checksum, source: 'webhook' });
      }
      return res.action;
    } catch (e) {
      const err = toSyncError(e);
      const e0 = errors.get(err.code);
      if (e0) e0.n++;
      else errors.set(err.code, { n: 1, first: err.message.slice(0, 240) });
      return 'failed';
    }
  };

  /** Let the CRM deliver what it fired, then sync each delivery in order. */
  const deliverAndSync = async (tally?: Record<string, number>): Promise<number> => {
    await crmSim.flushWebhooks();
    let failed = 0;
    for (const q of recorder.drain()) {
      const a = await syncEvent(q);
      if (a === 'failed') failed++;
      if (tally) tally[a] = (tally[a] ?? 0) + 1;
    }
    return failed;
  };

  try {
    log(`calls per event: ${nIdentities} CRM identities, ${nEvents} events (${Math.round(changedShare * 100)}% changing a mapped field), simulator latency ${latencyMs} ms`);
    // ---- warm-up: the first sync of every identity (an Update webhook each, as after a save in the CRM)
    const ids = crmSim.identities().map((i) => i.crmId);
    const c0 = countsOf(crmSim, siaghSim);
    let warmFailed = 0;
    for (let i = 0; i < ids.length; i += 50) {
      for (const id of ids.slice(i, i + 50)) crmSim.updateRecord(id, {});
      warmFailed += await deliverAndSync();
    }
    const c1 = countsOf(crmSim, siaghSim);
    const warmup = { ...minus(c1, c0), events: ids.length, failed: warmFailed };
    log(
      `  warm-up:  ${ids.length} first syncs: ${warmup.crmGets} CRM gets, ${warmup.siaghSaves} Siagh saves, ${warmup.getAll} GetAll, ${warmup.logins} logins${warmFailed ? `, ${warmFailed} failed` : ''}; ${store.stats().total} mappings`,
    );
    const mapped = ids.filter((id) => store.lookup('contact', id));
    if (mapped.length === 0) throw new Error(`no identity could be mapped in the warm-up: ${[...errors.values()].map((e) => e.first).join('; ')}`);

    // ---- measured: steady-state events on mapped identities
    let changed = 0;
    let unchanged = 0;
    let failed = 0;
    let changedCalls = 0;
    let unchangedCalls = 0;
    let maxCalls = 0;
    const t0 = performance.now();
    for (let i = 0; i < nEvents; i++) {
      const id = mapped[Math.floor(r() * mapped.length)];
      const change = r() < changedShare;
      const before = countsOf(crmSim, siaghSim).total;
      // A CRM user saves the identity: a mapped field (description) or one that is not mapped (colorId).
      crmSim.updateRecord(id, change ? { description: `ویرایش ${i + 1} در CRM` } : { colorId: 1 + (i % 7) });
      const tally: Record<string, number> = {};
      failed += await deliverAndSync(tally);
      for (const [k, v] of Object.entries(tally)) actions[k] = (actions[k] ?? 0) + v;
      const calls = countsOf(crmSim, siaghSim).total - before;
      maxCalls = Math.max(maxCalls, calls);
      if (change) {
        changed++;
        changedCalls += calls;
      } else {
        unchanged++;
        unchangedCalls += calls;
      }
    }
    const ms = performance.now() - t0;
    const totals = minus(countsOf(crmSim, siaghSim), c1);
    const per = (n: number) => round(n / nEvents, 3);
    const perEvent: CallCounts = { crmGets: per(totals.crmGets), siaghSaves: per(totals.siaghSaves), getAll: per(totals.getAll), logins: per(totals.logins), total: per(totals.total) };
    const perChangedEvent = changed ? round(changedCalls / changed, 3) : 0;
    const perUnchangedEvent = unchanged ? round(unchangedCalls / unchanged, 3) : 0;
    const met = failed === 0 && totals.getAll === 0 && perEvent.total <= 2 && maxCalls <= 2;
    log(
      `  measured: ${nEvents} events (${changed} changed, ${unchanged} unchanged; actions ${Object.entries(actions)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ')}) in ${fmtMs(ms)} (${fmtMs(ms / nEvents)} per event)`,
    );
    log(
      `  per event: ${perEvent.total} remote calls = ${perEvent.crmGets} CRM gets + ${perEvent.siaghSaves} Siagh saves + ${perEvent.getAll} GetAll + ${perEvent.logins} logins` +
        (perEvent.total !== round(perEvent.crmGets + perEvent.siaghSaves + perEvent.getAll + perEvent.logins, 3) ? ' + other requests' : ''),
    );
    log(`  changed event: ${perChangedEvent} calls on average; unchanged event: ${perUnchangedEvent}; most for one event: ${maxCalls}`);
    for (const [code, e] of errors) log(`  failed ×${e.n} ${code}, e.g.: ${e.first}`);
    return {
      identities: ids.length,
      events: nEvents,
      changed,
      unchanged,
      failed,
      actions,
      latencyMs,
      warmup,
      totals,
      perEvent,
      perChangedEvent,
      perUnchangedEvent,
      maxPerEvent: maxCalls,
      msPerEvent: round(ms / nEvents, 2),
      met,
    };
  } finally {
    crm.close();
    siagh.close();
    await store.close();
    await crmSim.stop();
    await siaghSim.stop();
    await recorder.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

export function syncCallsFigure(res: SyncCallsResult): Figure {
  const p = res.perEvent;
  return {
    part: '1',
    figure: 'Remote calls per steady-state identity event',
    measured: `${p.total} calls/event, ${p.getAll} GetAll (max ${res.maxPerEvent} for one event)`,
    comparison: 'limit 2 calls, 0 GetAll',
    ratio: `${round(p.total / 2, 2)}× (max ${round(res.maxPerEvent / 2, 2)}×)`,
    target: '≤ 1× (≤ 2 calls), 0 GetAll',
    met: res.met,
    notes: [
      `per event: CRM get ${p.crmGets}, Siagh save ${p.siaghSaves}, GetAll ${p.getAll}, login ${p.logins}; changed event ${res.perChangedEvent} calls, unchanged ${res.perUnchangedEvent}`,
      `${res.events} events (${res.changed} changed, ${res.unchanged} unchanged, ${res.failed} failed) on ${res.identities} mapped identities, after a warm-up of ${res.warmup.events} first syncs (${res.warmup.getAll} GetAll, ${res.warmup.logins} logins${res.warmup.failed ? `, ${res.warmup.failed} failed` : ''}); latency ${res.latencyMs} ms`,
    ],
  };
}
