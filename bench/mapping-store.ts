/**
 * Benchmark of the mapping store at scale (a script, not a test):
 *   node <out>/bench/mapping-store.js [--entries=100000] [--naive=200] [--naive-max-ms=30000] [--keep]
 *
 * Prints: time to fill the store, load time, lookups/s, durable stores/s (a concurrent burst and
 * sustained concurrent workers, both group-committed, with event-loop delay), the same for naive
 * lowdb (`new Low(new JSONFile(f))` + `await db.write()` after each store; no fsync, so it is
 * faster per write than it should be) and the ratio, and heap use.
 *
 * `runMappingStoreBench(opts)` is exported for a combined `npm run bench`.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomUUID } from 'node:crypto';
import { Low } from 'lowdb';
import { JSONFile } from 'lowdb/node';
import { MappingStore, type EntityType, type MappingFileV1, type MappingInput } from '../lib/store/mapping-store';

export interface MappingStoreBenchOptions {
  /** Mappings in the store (default 100 000). */
  entries?: number;
  /** Lookups timed (default 1 000 000). */
  lookups?: number;
  /** Stores fired at once in the burst test (default 2 000). */
  burstStores?: number;
  /** Concurrent workers (each awaiting its own store, like messages in a flow) (default 64). */
  workers?: number;
  /** Total stores by the workers (default 1 000). */
  workerStores?: number;
  /** Naive lowdb stores, one awaited write each (default 200) … */
  naiveStores?: number;
  /** … but stop the naive run after this long (default 30 000 ms). */
  naiveMaxMs?: number;
  /** Folder to work in (default: a new temp folder, removed afterwards unless keep). */
  dir?: string;
  keep?: boolean;
  log?: (line: string) => void;
}

export interface MappingStoreBenchResult {
  entries: number;
  fileBytes: number;
  fillMs: number;
  fillWrites: number;
  loadMs: number;
  heapUsedMB: number;
  heapForStoreMB: number;
  lookupsPerSec: number;
  burst: { stores: number; ms: number; perSec: number; writes: number; maxLoopDelayMs: number };
  sustained: { stores: number; workers: number; ms: number; perSec: number; writes: number; maxLoopDelayMs: number; p99LoopDelayMs: number };
  naive: { stores: number; ms: number; perSec: number };
  ratioBurst: number;
  ratioSustained: number;
}

const TYPES: EntityType[] = ['contact', 'contact', 'contact', 'quote', 'quote', 'invoice'];
const NAMES = ['شرکت بنیان گاز', 'محمد رضایی', 'فروشگاه آریا', 'Tehran Trading Co.'];

function record(i: number, source: string): MappingInput {
  const entityType = TYPES[i % TYPES.length];
  const rec: MappingInput = {
    entityType,
    crmId: randomUUID(),
    siaghCode: String(5_500_000 + i),
    checksum: (i * 2654435761).toString(16).padStart(16, '0').slice(-16),
    source,
  };
  if (entityType === 'contact') {
    rec.customerNumber = `100-${1000 + i}`;
    rec.extra = { name: NAMES[i % NAMES.length] };
  } else {
    rec.extra = { returnCode: 70_000 + i, documentNumber: 5_500_000 + i };
  }
  return rec;
}

function gc(): void {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g) {
    g();
    g();
  }
}

/** Longest gaps between 5 ms ticks, minus the 5 ms: how long the event loop was blocked. */
function stallMonitor(): { stop(): { maxMs: number; p99Ms: number } } {
  const gaps: number[] = [];
  let last = performance.now();
  const timer = setInterval(() => {
    const now = performance.now();
    gaps.push(Math.max(0, now - last - 5));
    last = now;
  }, 5);
  return {
    stop() {
      clearInterval(timer);
      gaps.push(Math.max(0, performance.now() - last - 5));
      gaps.sort((a, b) => a - b);
      return { maxMs: Math.round(gaps[gaps.length - 1] ?? 0), p99Ms: Math.round(gaps[Math.floor(gaps.length * 0.99)] ?? 0) };
    },
  };
}

const mb = (n: number): number => Math.round((n / 1048576) * 10) / 10;
const perSec = (n: number, ms: number): number => {
  const v = (n / Math.max(ms, 0.001)) * 1000;
  return v >= 100 ? Math.round(v) : Math.round(v * 10) / 10;
};

export async function runMappingStoreBench(opts: MappingStoreBenchOptions = {}): Promise<MappingStoreBenchResult> {
  const entries = opts.entries ?? 100_000;
  const lookups = opts.lookups ?? 1_000_000;
  const burstStores = opts.burstStores ?? 2000;
  const workers = opts.workers ?? 64;
  const workerStores = opts.workerStores ?? 1000;
  const naiveStores = opts.naiveStores ?? 200;
  const naiveMaxMs = opts.naiveMaxMs ?? 30_000;
  const log = opts.log ?? ((l: string) => console.log(l));
  const dir = opts.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'siagh-store-bench-'));
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'mapping.json');
  const naiveFile = path.join(dir, 'naive.json');
  for (const f of [file, `${file}.bak`, naiveFile]) fs.rmSync(f, { force: true });

  log(`mapping store benchmark: ${entries} entries, Node ${process.version}, ${os.cpus().length} CPU (${os.cpus()[0]?.model ?? '?'})${(globalThis as { gc?: unknown }).gc ? '' : ' (run with --expose-gc for exact heap figures)'}`);
  try {
    // 1. fill (all stores fired at once: group commit turns them into a couple of writes)
    let s = await MappingStore.open(file);
    let t0 = performance.now();
    const w0 = s.writeCount;
    const chunk = 20_000;
    for (let i = 0; i < entries; i += chunk) {
      const ps: Promise<unknown>[] = [];
      for (let k = i; k < Math.min(entries, i + chunk); k++) ps.push(s.store(record(k, 'import')));
      await Promise.all(ps);
    }
    const fillMs = performance.now() - t0;
    const fillWrites = s.writeCount - w0;
    await s.close();
    const fileBytes = fs.statSync(file).size;
    log(`fill:      ${entries} stores in ${fillMs.toFixed(0)} ms with ${fillWrites} file writes; file ${mb(fileBytes)} MB (compact JSON)`);

    // 2. load
    gc();
    const heap0 = process.memoryUsage().heapUsed;
    t0 = performance.now();
    s = await MappingStore.open(file);
    const loadMs = performance.now() - t0;
    gc();
    const heapUsed = process.memoryUsage().heapUsed;
    log(`load:      ${loadMs.toFixed(0)} ms (read, parse, index, backup copy)`);
    log(`memory:    heapUsed ${mb(heapUsed)} MB, of which the open store ≈ ${mb(heapUsed - heap0)} MB`);

    // 3. lookups (by CRM id, by Siagh code, by customer number, in turn)
    const sample = s.list({ limit: 10_000 });
    const ids = sample.map((r) => [r.entityType, r.crmId, r.siaghCode, r.customerNumber] as const);
    let hits = 0;
    t0 = performance.now();
    for (let i = 0; i < lookups; i++) {
      const [t, id, code, cn] = ids[i % ids.length];
      const m = i % 3;
      const r = m === 0 ? s.lookup(t, id) : m === 1 ? s.lookupBySiaghCode(t, code) : cn ? s.lookupByCustomerNumber(cn) : s.lookup(t, id);
      if (r) hits++;
    }
    const lookupMs = performance.now() - t0;
    if (hits !== lookups) throw new Error(`lookup misses: ${lookups - hits}`);
    const lookupsPerSec = perSec(lookups, lookupMs);
    log(`lookups:   ${lookupsPerSec.toLocaleString('en')} /s (${lookups} mixed lookups in ${lookupMs.toFixed(0)} ms)`);

    // 4a. burst: many stores at once
    const h1 = stallMonitor();
    let w = s.writeCount;
    t0 = performance.now();
    await Promise.all(Array.from({ length: burstStores }, (_, i) => s.store(record(entries + i, 'webhook'))));
    const burstMs = performance.now() - t0;
    const d1 = h1.stop();
    const burst = { stores: burstStores, ms: Math.round(burstMs), perSec: perSec(burstStores, burstMs), writes: s.writeCount - w, maxLoopDelayMs: d1.maxMs };
    log(`burst:     ${burst.perSec} durable stores/s (${burstStores} at once in ${burst.ms} ms, ${burst.writes} file writes, longest event-loop stall ${burst.maxLoopDelayMs} ms)`);

    // 4b. sustained: N workers, each awaiting its own store before the next (messages in a flow)
    const h2 = stallMonitor();
    w = s.writeCount;
    let next = 0;
    t0 = performance.now();
    await Promise.all(
      Array.from({ length: workers }, async () => {
        while (next < workerStores) {
          const i = next++;
          await s.store(record(entries + burstStores + i, 'poll'));
        }
      }),
    );
    const susMs = performance.now() - t0;
    const d2 = h2.stop();
    const sustained = {
      stores: workerStores,
      workers,
      ms: Math.round(susMs),
      perSec: perSec(workerStores, susMs),
      writes: s.writeCount - w,
      maxLoopDelayMs: d2.maxMs,
      p99LoopDelayMs: d2.p99Ms,
    };
    log(
      `sustained: ${sustained.perSec} durable stores/s (${workers} workers, ${workerStores} stores in ${sustained.ms} ms, ${sustained.writes} file writes; event-loop stall p99 ${sustained.p99LoopDelayMs} ms, max ${sustained.maxLoopDelayMs} ms)`,
    );
    await s.close();

    // 5. naive lowdb: one awaited write per store (JSONFile: pretty JSON, steno, no fsync)
    const data = JSON.parse(fs.readFileSync(file, 'utf8')) as MappingFileV1;
    const db = new Low<MappingFileV1>(new JSONFile<MappingFileV1>(naiveFile), data);
    await db.write(); // the starting file, not timed
    let n = 0;
    t0 = performance.now();
    while (n < naiveStores && performance.now() - t0 < naiveMaxMs) {
      const r = record(entries * 2 + n, 'webhook');
      db.data.mappings[r.entityType][r.crmId] = { ...r, siaghCode: String(r.siaghCode), syncedAt: new Date().toISOString() };
      await db.write();
      n++;
    }
    const naiveMs = performance.now() - t0;
    const naive = { stores: n, ms: Math.round(naiveMs), perSec: perSec(n, naiveMs) };
    log(`naive:     ${naive.perSec} stores/s (lowdb write per store: ${n} stores in ${naive.ms} ms${n < naiveStores ? `, stopped at ${naiveMaxMs} ms` : ''})`);

    const ratioBurst = Math.round((burst.perSec / Math.max(naive.perSec, 0.001)) * 10) / 10;
    const ratioSustained = Math.round((sustained.perSec / Math.max(naive.perSec, 0.001)) * 10) / 10;
    log(`ratio:     group commit vs naive: burst ×${ratioBurst}, sustained (${workers} workers) ×${ratioSustained}`);

    return { entries, fileBytes, fillMs: Math.round(fillMs), fillWrites, loadMs: Math.round(loadMs), heapUsedMB: mb(heapUsed), heapForStoreMB: mb(heapUsed - heap0), lookupsPerSec, burst, sustained, naive, ratioBurst, ratioSustained };
  } finally {
    if (!opts.keep && !opts.dir) fs.rmSync(dir, { recursive: true, force: true });
  }
}

function argValue(name: string): string | undefined {
  const a = process.argv.find((x) => x === `--${name}` || x.startsWith(`--${name}=`));
  if (!a) return undefined;
  return a.includes('=') ? a.slice(a.indexOf('=') + 1) : 'true';
}

if (require.main === module) {
  const num = (name: string): number | undefined => {
    const v = argValue(name);
    return v === undefined ? undefined : Number(v);
  };
  runMappingStoreBench({
    entries: num('entries'),
    lookups: num('lookups'),
    naiveStores: num('naive'),
    naiveMaxMs: num('naive-max-ms'),
    workers: num('workers'),
    keep: argValue('keep') !== undefined,
  }).catch((e: unknown) => {
    console.error(e);
    process.exitCode = 1;
  });
}
