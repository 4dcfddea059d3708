/**
 * Benchmark part 2: the initial import (lib/sync/importer.ts runImport) of N Siagh contacts into an
 * empty CRM, both simulators answering after a set latency L, C records at once. The limit is
 * N × L / C: every contact needs one CRM create, and C of them can be in flight together. Reading
 * both sides at the start (login, one GetAll, the CRM search) and the durable mapping stores are
 * part of the elapsed time. A worker does not wait for its last mapping to reach the disk before its
 * next create (the saves share file writes), but a record counts only once its mapping is durable.
 * `backend: 'postgres'` runs the same import into a PostgreSQL mapping store (a throwaway server
 * from testkit/postgres.ts, fsync on): each mapping is then one committed transaction.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CrmClient } from '../lib/crm/client';
import { SiaghClient } from '../lib/siagh/client';
import { openPool } from '../lib/pg/db';
import { FileMappingBackend } from '../lib/store/file-mapping-backend';
import type { MappingBackend } from '../lib/store/mapping-backend';
import { PgMappingStore } from '../lib/store/pg-mapping-store';
import { runImport } from '../lib/sync/importer';
import { PgServer } from '../testkit/postgres';
import { type Figure, fmtInt, fmtMs, round } from './common';
import { countOf, startSimProcess, totalCount } from './sim-process';

export interface ImportBenchOptions {
  /** Siagh contacts to import (an admin user is added and skipped, as in real data). Default 10 000. */
  contacts?: number;
  /** Simulator latency L (ms). Default 20. */
  latencyMs?: number;
  /** Import concurrency C (and the CRM client's request limit). Default 8. */
  concurrency?: number;
  seed?: number;
  /** Where the mappings go: the data folder's file (default) or PostgreSQL. */
  backend?: 'file' | 'postgres';
  log?: (line: string) => void;
}

export interface ImportBenchResult {
  backend: 'file' | 'postgres';
  contacts: number;
  latencyMs: number;
  concurrency: number;
  elapsedMs: number;
  /** CRM create requests sent (= contacts created when nothing failed). */
  creates: number;
  idealMs: number;
  ratio: number;
  counts: { created: number; linked: number; skipped: number; failed: number };
  otherRequests: number;
  /** CRM and Siagh requests of the run divided by the contacts imported. */
  callsPerRecord: number;
  /** File: mapping-file writes; PostgreSQL: mapping transactions. */
  storeWrites: number;
  perSec: number;
  /** Per record (ms): the CRM create call, and the time its mapping took to become durable (not awaited by the worker). */
  perRecord: { createMs: number; storeMs: number };
  met: boolean;
  failures: string[];
}

const CREATE_KEYS = ['POST /api/v2/crmobject/person/create', 'POST /api/v2/crmobject/organization/create'];

const mean = (xs: number[]): number => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);

/** Wrap one async method of an object so that each call's duration is pushed to `into`. */
function timeCalls<T extends object>(obj: T, name: keyof T & string, into: number[]): void {
  const fn = (obj as Record<string, unknown>)[name] as (...a: unknown[]) => Promise<unknown>;
  (obj as Record<string, unknown>)[name] = async (...args: unknown[]) => {
    const t0 = performance.now();
    try {
      return await fn.apply(obj, args);
    } finally {
      into.push(performance.now() - t0);
    }
  };
}

export async function runImportBench(opts: ImportBenchOptions = {}): Promise<ImportBenchResult> {
  const n = Math.max(1, Math.floor(opts.contacts ?? 10_000));
  const latencyMs = opts.latencyMs ?? 20;
  const concurrency = Math.max(1, Math.floor(opts.concurrency ?? 8));
  const log = opts.log ?? ((l: string) => console.log(l));
  const idealPreview = (n * latencyMs) / concurrency;
  const backend = opts.backend ?? 'file';
  log(`import: ${fmtInt(n)} Siagh contacts → empty CRM, ${backend === 'postgres' ? 'mappings in PostgreSQL' : 'mapping file'}, latency L = ${latencyMs} ms, concurrency C = ${concurrency}; limit N × L / C = ${fmtMs(idealPreview)}`);

  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'siagh-bench-import-'));
  // The simulators run in a child process, as remote servers would: their work and timers do not
  // share this process's event loop with the importer.
  const sims = await startSimProcess({ siaghContacts: n, admins: 1, seed: opts.seed ?? 11, latencyMs: 0 });
  const siagh = new SiaghClient({ baseUrl: sims.siaghUrl, username: 'bench', password: 'bench-pass', retryBaseMs: 50, timeoutMs: 60_000 });
  const crm = new CrmClient({ baseUrl: sims.crmUrl, username: 'api', password: 'api-pass', retryBaseMs: 50, timeoutMs: 30_000, concurrency });
  let server: PgServer | undefined;
  let pool: ReturnType<typeof openPool> | undefined;
  let store: MappingBackend;
  try {
    if (backend === 'postgres') {
      server = await PgServer.start({ durable: true });
      pool = openPool({ connectionString: await server.database() }, () => undefined);
      store = await PgMappingStore.open(pool);
    } else store = await FileMappingBackend.open(path.join(tmp, 'mappings.json'));
  } catch (e) {
    crm.close();
    siagh.close();
    await pool?.end().catch(() => undefined);
    await server?.close();
    await sims.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  const storeMs: number[] = [];
  const writeCount = () => (store instanceof FileMappingBackend ? store.mappingStore.writeCount : storeMs.length);
  try {
    await sims.setLatency(latencyMs);
    // Time the two steps of each record from outside: the create (awaited by the worker) and the
    // durable store (its promise; the worker goes on meanwhile).
    const createMs: number[] = [];
    timeCalls(crm, 'createIdentity', createMs);
    timeCalls(store, 'store', storeMs);
    const w0 = writeCount();
    let lastLog = performance.now();
    const t0 = performance.now();
    const report = await runImport(
      { siagh, crm, store },
      {
        concurrency,
        onProgress: (p) => {
          const now = performance.now();
          if (now - lastLog >= 10_000) {
            lastLog = now;
            log(`  … ${fmtInt(p.done)} / ${fmtInt(p.total)} after ${fmtMs(now - t0)}`);
          }
        },
      },
    );
    const elapsedMs = performance.now() - t0;
    const crmState = await sims.crmState();
    const creates = countOf(crmState, ...CREATE_KEYS);
    const all = totalCount(crmState) + totalCount(await sims.siaghState());
    const idealMs = (creates * latencyMs) / concurrency;
    const ratio = round(elapsedMs / Math.max(idealMs, 0.001), 3);
    const failures = report.records.filter((r) => r.outcome === 'failed').slice(0, 5).map((r) => `${r.code}: ${r.errorCode} ${r.reason ?? ''}`.slice(0, 200));
    const res: ImportBenchResult = {
      backend,
      contacts: n,
      latencyMs,
      concurrency,
      elapsedMs: Math.round(elapsedMs),
      creates,
      idealMs: Math.round(idealMs),
      ratio,
      counts: { created: report.counts.created, linked: report.counts.linked, skipped: report.counts.skipped, failed: report.counts.failed },
      otherRequests: all - creates,
      callsPerRecord: round(all / Math.max(1, report.counts.created + report.counts.linked), 3),
      storeWrites: writeCount() - w0,
      perSec: Math.round((report.counts.created / elapsedMs) * 1000),
      perRecord: { createMs: round(mean(createMs), 1), storeMs: round(mean(storeMs), 1) },
      met: report.counts.failed === 0 && ratio <= 1.2,
      failures,
    };
    log(
      `  ${fmtInt(res.counts.created)} created, ${res.counts.linked} linked, ${res.counts.skipped} skipped, ${res.counts.failed} failed in ${fmtMs(elapsedMs)} (${res.perSec} contacts/s); ` +
        `${fmtInt(creates)} CRM creates + ${res.otherRequests} other requests (${res.callsPerRecord} calls per record); ${res.storeWrites} ${backend === 'postgres' ? 'mapping transactions' : 'mapping-file writes'}`,
    );
    log(
      `  per record: CRM create ${res.perRecord.createMs} ms (L = ${latencyMs} ms; awaited by each of the ${concurrency} workers → ${res.perRecord.createMs} × ${fmtInt(creates)} / ${concurrency} ≈ ${fmtMs((res.perRecord.createMs * creates) / concurrency)}); ` +
        `mapping durable after ${res.perRecord.storeMs} ms (not awaited; ${backend === 'postgres' ? 'one transaction each, several at once' : 'saves share file writes'})`,
    );
    log(`  limit ${fmtInt(creates)} × ${latencyMs} ms / ${concurrency} = ${fmtMs(idealMs)} → ratio ${ratio}×`);
    for (const f of failures) log(`  failed: ${f}`);
    return res;
  } finally {
    crm.close();
    siagh.close();
    await store.close();
    await pool?.end().catch(() => undefined);
    await server?.close();
    await sims.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

export function importFigure(res: ImportBenchResult): Figure {
  return {
    part: res.backend === 'postgres' ? '2b' : '2',
    figure: `Initial import${res.backend === 'postgres' ? ' into PostgreSQL' : ''}, ${fmtInt(res.contacts)} contacts, L ${res.latencyMs} ms, C ${res.concurrency}`,
    measured: `${fmtMs(res.elapsedMs)} (${res.perSec} contacts/s)`,
    comparison: `N × L / C = ${fmtMs(res.idealMs)}`,
    ratio: `${res.ratio}×`,
    target: '≤ 1.2×',
    met: res.met,
    notes: [
      `${fmtInt(res.counts.created)} created, ${res.counts.skipped} skipped (admin), ${res.counts.failed} failed; ${fmtInt(res.creates)} CRM creates + ${res.otherRequests} other requests (${res.callsPerRecord} calls per record)`,
      `per record: CRM create ${res.perRecord.createMs} ms (awaited); mapping durable after ${res.perRecord.storeMs} ms (not awaited${res.backend === 'postgres' ? '' : ', shared writes'}); ${res.storeWrites} ${res.backend === 'postgres' ? 'mapping transactions' : 'mapping-file writes'}`,
    ],
  };
}
