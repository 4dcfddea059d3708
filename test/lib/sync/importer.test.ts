/**
 * The initial import (lib/sync/importer.ts) against both simulators over real HTTP, once with a
 * real mapping file in a temp folder and once with a real PostgreSQL mapping store (a throwaway
 * server from testkit/postgres.ts, started once for the file, a new database per test): the same
 * tests, as the store conformance suites do. What only the file store has (its file writes) is
 * checked on the file backend only.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { CrmClient } from '../../../lib/crm/client';
import { SiaghClient } from '../../../lib/siagh/client';
import type { Pool } from 'pg';
import { openPool } from '../../../lib/pg/db';
import { FileMappingBackend } from '../../../lib/store/file-mapping-backend';
import type { MappingBackend } from '../../../lib/store/mapping-backend';
import { PgMappingStore } from '../../../lib/store/pg-mapping-store';
import { PgServer } from '../../../testkit/postgres';
import { readOnDisk } from '../../fixtures/store-helpers';
import { mapIdentityToContact } from '../../../lib/sync/contact-mapper';
import { IMPORT_PROGRESS_KEY, ImportOptions, ImportProgress, ImportReport, runImport } from '../../../lib/sync/importer';
import type { SiaghContact } from '../../../lib/types';
import { CrmSim, CrmSimOptions } from '../../../sim/crm-sim';
import { seedSiaghContacts } from '../../../sim/seed';
import { SiaghSim } from '../../../sim/siagh-sim';

const ADMIN = 'مدیر سیستم';
const CRM_PASSWORD = 'api-pass-S3cret';
const CREATE = /\/crmobject\/(person|organization)\/create$/;

function cn(code: number): string {
  return '100-' + (code + 1000);
}

/** A tiny webhook receiver: counts what the CRM simulator delivers. */
class Recorder {
  readonly hits: URLSearchParams[] = [];
  private server = http.createServer((req, res) => {
    this.hits.push(new URL(req.url ?? '/', 'http://x').searchParams);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"accepted":true}');
  });
  url = '';
  async start(): Promise<void> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', () => r()));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/webhook/crm/identity`;
  }
  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

/** Where a test's mappings live: a mapping file in the test's temp folder, or a PostgreSQL database. */
interface StoreKind {
  name: 'file' | 'postgres';
  before?(): Promise<void>;
  after?(): Promise<void>;
  /** A fresh, empty store (for a test whose temp folder is `tmp`). */
  fresh(tmp: string): Promise<MappingBackend>;
  /** The same data opened again (after the store was closed). */
  reopen(tmp: string): Promise<MappingBackend>;
  /** How many contact mappings are durable, read past the store under test. */
  durableContacts(tmp: string): Promise<number>;
  cleanup(): Promise<void>;
}

const fileKind: StoreKind = {
  name: 'file',
  fresh: (tmp) => FileMappingBackend.open(path.join(tmp, 'mappings.json')),
  reopen: (tmp) => FileMappingBackend.open(path.join(tmp, 'mappings.json')),
  durableContacts: async (tmp) => Object.keys(readOnDisk(path.join(tmp, 'mappings.json')).mappings.contact).length,
  cleanup: async () => undefined,
};

function pgKind(): StoreKind {
  let server: PgServer | undefined;
  let url = '';
  const pools: Pool[] = [];
  const pool = () => {
    const p = openPool({ connectionString: url }, () => undefined);
    pools.push(p);
    return p;
  };
  return {
    name: 'postgres',
    async before() {
      server = await PgServer.start();
    },
    async after() {
      await server?.close();
    },
    async fresh() {
      url = await server!.database();
      return PgMappingStore.open(pool());
    },
    reopen: async () => PgMappingStore.open(pool()),
    async durableContacts() {
      const r = await pools[0].query<{ n: string }>("SELECT count(*) AS n FROM siagh_sync_mappings WHERE entity_type = 'contact'");
      return Number(r.rows[0].n);
    },
    async cleanup() {
      await Promise.all(pools.splice(0).map((p) => p.end().catch(() => undefined)));
    },
  };
}

for (const kind of [fileKind, pgKind()]) importerSuite(kind);

function importerSuite(kind: StoreKind): void {
  describe(`importer (Siagh → CRM initial import), mappings in ${kind.name === 'file' ? 'a file' : 'PostgreSQL'}`, function () {
    this.timeout(60_000);
    before(async function () {
      this.timeout(120_000);
      await kind.before?.();
    });
    after(async () => {
      await kind.after?.();
    });
    let tmp: string;
    let siaghSim: SiaghSim;
    let crmSim: CrmSim;
    let siagh: SiaghClient;
    let crm: CrmClient;
    let store: MappingBackend;
    let contacts: SiaghContact[];
    let recorder: Recorder | undefined;

    async function setup(n: number, crmOpts: CrmSimOptions = {}, crmClientOpts: { timeoutMs?: number } = {}): Promise<void> {
      tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'siagh-import-test-'));
      contacts = seedSiaghContacts(n, { seed: 7, admins: 1 });
      siaghSim = new SiaghSim({ contacts });
      await siaghSim.start();
      crmSim = new CrmSim({ maxPageSize: 100, ...crmOpts });
      await crmSim.start();
      siagh = new SiaghClient({ baseUrl: siaghSim.url, username: ADMIN, password: 'admin', retryBaseMs: 1, retryMaxMs: 10 });
      crm = new CrmClient({
        baseUrl: crmSim.url,
        username: 'api',
        password: CRM_PASSWORD,
        retryBaseMs: 1,
        retryMaxMs: 10,
        createCheckDelayMs: 0,
        timeoutMs: crmClientOpts.timeoutMs ?? 5000,
        concurrency: 8,
      });
      store = await kind.fresh(tmp);
    }

    // The CRM sim's users: the password is deliberately recognisable, to prove it never reaches a report.
    const crmUsers = { users: [{ username: 'api', password: CRM_PASSWORD }] };

    afterEach(async () => {
      siagh?.close();
      crm?.close();
      await store?.close();
      await kind.cleanup();
      await siaghSim?.stop();
      await crmSim?.stop();
      await recorder?.stop();
      recorder = undefined;
      if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
    });

    const run = (opts: ImportOptions = {}): Promise<ImportReport> => runImport({ siagh, crm, store }, opts);

    function assertNoDuplicateCustomerNumbers(): void {
      const seen = new Map<string, string>();
      for (const r of crmSim.identities()) {
        const c = r.customerNumber as string | null;
        if (!c) continue;
        assert.ok(!seen.has(c), `customer number ${c} is carried by ${seen.get(c)} and ${r.crmId}`);
        seen.set(c, r.crmId);
      }
    }

    it('imports 500 contacts with one admin: 499 identities with the right customer numbers and 499 mappings; a re-run creates nothing', async () => {
      recorder = new Recorder();
      await recorder.start();
      await setup(500, { ...crmUsers, webhookUrl: recorder.url });
      const reportFile = path.join(tmp, 'reports', 'import.json');
      const seen: ImportProgress[] = [];
      const r1 = await run({ reportFile, onProgress: (p) => seen.push(p), secrets: [CRM_PASSWORD] });

      assert.equal(r1.total, 500);
      assert.deepEqual(
        { created: r1.counts.created, linked: r1.counts.linked, skipped: r1.counts.skipped, failed: r1.counts.failed },
        { created: 499, linked: 0, skipped: 1, failed: 0 },
      );
      assert.equal(r1.records.length, 500);
      const admin = contacts.find((c) => c.IsAdminUser)!;
      assert.deepEqual(
        r1.records.filter((r) => r.outcome === 'skipped').map((r) => [r.code, r.reason]),
        [[admin.Code, 'admin user']],
      );

      // CRM: 499 identities, each customer number '100-' + (Code + 1000), persons and organizations by TowardType.
      const ids = crmSim.identities();
      assert.equal(ids.length, 499);
      const byCn = new Map(ids.map((r) => [r.customerNumber as string, r]));
      for (const c of contacts) {
        if (c.IsAdminUser) {
          assert.ok(!byCn.has(cn(c.Code)), 'the admin user is not imported');
          continue;
        }
        const rec = byCn.get(cn(c.Code));
        assert.ok(rec, `contact ${c.Code} → ${cn(c.Code)} in the CRM`);
        assert.equal(crmSim.kindOf(rec.crmId), c.TowardType ? 'organization' : 'person');
        assert.deepEqual((rec.categories as Array<{ key: string }>).map((x) => x.key), ['syaghcontact']);
        // Store: the mapping Code ↔ crmId ↔ customer number, source import, with a checksum.
        const m = await store.lookupBySiaghCode('contact', c.Code);
        assert.ok(m, `mapping of ${c.Code}`);
        assert.equal(m.crmId, rec.crmId);
        assert.equal(m.customerNumber, cn(c.Code));
        assert.equal(m.source, 'import');
        assert.match(m.checksum ?? '', /^[0-9a-f]{64}$/);
      }
      assert.equal((await store.stats()).byType.contact, 499);
      assertNoDuplicateCustomerNumbers();

      // Progress: one call per record, ending at 500/500; persisted in the store.
      assert.equal(seen.length, 500);
      assert.deepEqual(seen.at(-1), { done: 500, total: 500, ...r1.counts });
      const saved = await store.getMeta<Record<string, unknown>>(IMPORT_PROGRESS_KEY);
      assert.equal(saved?.status, 'finished');
      assert.equal(saved?.done, 500);
      assert.equal(saved?.created, 499);

      // Report file: whole JSON, written via a temp file that is gone, without secrets.
      assert.equal(r1.reportFile, reportFile);
      const text = fs.readFileSync(reportFile, 'utf8');
      const onDisk = JSON.parse(text) as ImportReport;
      assert.equal(onDisk.records.length, 500);
      assert.equal(onDisk.counts.created, 499);
      assert.deepEqual(fs.readdirSync(path.dirname(reportFile)), ['import.json']);
      assert.ok(!text.includes(CRM_PASSWORD), 'no password in the report');

      // The echoes: the CRM fired an Insert per created identity; what the webhook path would compute
      // for each created identity equals the stored checksum, so the echoes compare as unchanged.
      await crmSim.flushWebhooks();
      assert.equal(recorder.hits.filter((q) => q.get('event') === 'Insert').length, 499);
      const created = r1.records.filter((r) => r.outcome === 'created');
      for (const rec of created) {
        const identity = await crm.getIdentity(rec.crmId!);
        const m = (await store.lookup('contact', rec.crmId!))!;
        assert.equal(mapIdentityToContact(identity).checksum, m.checksum, `checksum of ${rec.code}`);
      }

      // A re-run: everything is mapped already, nothing new in the CRM.
      crmSim.resetCounts();
      const r2 = await run();
      assert.equal(r2.counts.created, 0);
      assert.equal(r2.counts.linked, 0);
      assert.equal(r2.counts.failed, 0);
      assert.equal(r2.counts.skipped, 500);
      assert.equal(r2.records.filter((r) => r.reason === 'already mapped').length, 499);
      assert.equal(crmSim.identities().length, 499);
      assert.equal([...crmSim.counts.keys()].filter((k) => CREATE.test(k)).length, 0, 'no create request');
    });

    it('links contacts whose customer number the CRM already has, creating nothing for them', async () => {
      await setup(40, crmUsers);
      const pre = contacts.filter((c) => !c.IsAdminUser).slice(3, 13);
      const preIds = new Map<number, string>();
      for (const c of pre) {
        const rec = c.TowardType
          ? crmSim.addOrganization({ nickName: String(c.Name), customerNumber: cn(c.Code) }, { webhook: false })
          : crmSim.addPerson({ nickName: String(c.Name), customerNumber: cn(c.Code) }, { webhook: false });
        preIds.set(c.Code, rec.crmId);
      }
      // An unrelated CRM-native identity with a customer number outside the scheme.
      crmSim.addPerson({ nickName: 'مشتری CRM', customerNumber: '100-965815809' }, { webhook: false });

      const r = await run();
      assert.equal(r.counts.linked, 10);
      assert.equal(r.counts.created, 29);
      assert.equal(r.counts.failed, 0);
      assert.equal(r.crmIdentities, 11);
      for (const c of pre) {
        const rec = r.records.find((x) => x.code === c.Code)!;
        assert.equal(rec.outcome, 'linked');
        assert.equal(rec.crmId, preIds.get(c.Code));
        const m = (await store.lookupBySiaghCode('contact', c.Code))!;
        assert.equal(m.crmId, preIds.get(c.Code));
        assert.equal(m.source, 'import');
      }
      assert.equal(crmSim.identities().length, 11 + 29);
      assertNoDuplicateCustomerNumbers();
    });

    it('a dry run reports the plan and writes nothing to the CRM or the store', async () => {
      await setup(30, crmUsers);
      const c0 = contacts.find((c) => !c.IsAdminUser)!;
      crmSim.addPerson({ nickName: 'موجود', customerNumber: cn(c0.Code) }, { webhook: false });
      const file = path.join(tmp, 'mappings.json');
      const fileStore = store instanceof FileMappingBackend ? store.mappingStore : undefined;
      const before = fileStore ? fs.readFileSync(file, 'utf8') : '';
      const writesBefore = fileStore?.writeCount;
      const reportFile = path.join(tmp, 'plan.json');

      const r = await run({ dryRun: true, reportFile });
      assert.equal(r.dryRun, true);
      assert.equal(r.counts.plannedLink, 1);
      assert.equal(r.counts.plannedCreate, 28);
      assert.equal(r.counts.skipped, 1);
      assert.equal(r.counts.created + r.counts.linked + r.counts.failed, 0);
      const planned = r.records.filter((x) => x.outcome === 'planned-create');
      assert.ok(planned.every((x) => x.kind === 'person' || x.kind === 'organization'));
      assert.equal(r.records.find((x) => x.code === c0.Code)?.outcome, 'planned-link');

      assert.equal(crmSim.identities().length, 1, 'nothing created in the CRM');
      assert.equal([...crmSim.counts.keys()].filter((k) => CREATE.test(k)).length, 0);
      assert.equal((await store.stats()).total, 0, 'no mapping');
      assert.equal(await store.getMeta(IMPORT_PROGRESS_KEY), undefined);
      assert.deepEqual(await store.metaEntries(), {}, 'no meta value either');
      if (fileStore) {
        assert.equal(fileStore.writeCount, writesBefore, 'the store was not written');
        assert.equal(fs.readFileSync(file, 'utf8'), before);
      }
      assert.equal((JSON.parse(fs.readFileSync(reportFile, 'utf8')) as ImportReport).dryRun, true);
    });

    it('creates that fail are reported as failed without stopping the others; a re-run completes them with no duplicates', async () => {
      await setup(30, crmUsers);
      // Each failing record takes two 5xx (the create, and the one repeat after the customer-number
      // search found nothing): 6 faults at concurrency 1 fail exactly 3 records.
      crmSim.faults.add({ kind: '5xx', path: CREATE, times: 6 });
      const r1 = await run({ concurrency: 1 });
      assert.equal(r1.counts.failed, 3);
      assert.equal(r1.counts.created, 26);
      const failed = r1.records.filter((x) => x.outcome === 'failed');
      for (const f of failed) {
        assert.equal(f.errorCode, 'AMBIGUOUS_CREATE');
        assert.ok(f.reason && f.reason.length > 20);
        assert.equal(await store.lookupBySiaghCode('contact', f.code), undefined);
      }
      assert.equal(crmSim.identities().length, 26);

      const r2 = await run();
      assert.equal(r2.counts.created, 3);
      assert.equal(r2.counts.failed, 0);
      assert.deepEqual(
        r2.records.filter((x) => x.outcome === 'created').map((x) => x.code).sort(),
        failed.map((x) => x.code).sort(),
      );
      assert.equal(crmSim.identities().length, 29);
      assert.equal((await store.stats()).byType.contact, 29);
      assertNoDuplicateCustomerNumbers();
    });

    it('an ambiguous create (the CRM created it, the answer never came) creates no duplicate', async () => {
      await setup(12, crmUsers, { timeoutMs: 400 });
      crmSim.faults.add({ kind: 'timeout', path: CREATE, times: 2, afterHandling: true });
      const r = await run({ concurrency: 2 });
      assert.equal(r.counts.failed, 0, JSON.stringify(r.records.filter((x) => x.outcome === 'failed')));
      assert.equal(r.counts.created, 11);
      assert.equal(crmSim.identities().length, 11);
      assertNoDuplicateCustomerNumbers();
      for (const rec of r.records.filter((x) => x.outcome === 'created')) {
        assert.equal(crmSim.record(rec.crmId!)?.customerNumber, rec.customerNumber);
        assert.equal((await store.lookup('contact', rec.crmId!))?.siaghCode, String(rec.code));
      }
    });

    it('resumes after a crash between create and mapping: the identity is linked, not created again', async () => {
      await setup(20, crmUsers);
      // Creates slower than a file write, so the run is still going when the 8th record is durable.
      crmSim.faults.latencyMs = 15;
      // A first run stopped half way (signal), as a crash would stop it. The worker does not wait for
      // each mapping to reach the disk, so a create or two may be under way when the signal comes:
      // those finish (and are saved) before the run stops.
      const ac = new AbortController();
      const r1 = await run({ concurrency: 1, signal: ac.signal, onProgress: (p) => p.created >= 8 && ac.abort() });
      crmSim.faults.latencyMs = 0;
      assert.equal(r1.aborted, true);
      assert.ok(r1.counts.created >= 8 && r1.counts.created < 19, `${r1.counts.created} created`);
      assert.equal(crmSim.identities().length, r1.counts.created, 'every identity created is reported created (its mapping saved)');
      assert.ok(r1.records.some((x) => x.outcome === 'failed' && /not attempted/.test(x.reason ?? '')));
      assert.equal((await store.getMeta<{ status: string }>(IMPORT_PROGRESS_KEY))?.status, 'stopped');
      // …and a crash right after a create, before its mapping reached the disk: one mapping lost.
      const lost = r1.records.find((x) => x.outcome === 'created')!;
      await store.delete('contact', lost.crmId!);

      const r2 = await run();
      assert.equal(r2.counts.failed, 0);
      assert.equal(r2.counts.linked, 1);
      assert.equal(r2.records.find((x) => x.code === lost.code)?.crmId, lost.crmId);
      assert.equal(r2.counts.created, 19 - r1.counts.created);
      assert.equal(crmSim.identities().length, 19);
      assert.equal((await store.stats()).byType.contact, 19);
      assertNoDuplicateCustomerNumbers();
    });

    it(`one CRM call per created record${kind.name === 'file' ? '; mappings share file writes' : ''}, yet every record is durable before it is reported`, async () => {
      await setup(200, crmUsers);
      crmSim.faults.latencyMs = 2;
      const file = path.join(tmp, 'mappings.json');
      const fileStore = store instanceof FileMappingBackend ? store.mappingStore : undefined;
      const writes0 = fileStore?.writeCount ?? 0;
      const requests0 = [...crmSim.counts.values()].reduce((a, b) => a + b, 0);
      const behind: string[] = [];
      const reads: Array<Promise<void>> = [];
      let checks = 0;
      const r = await run({
        concurrency: 4,
        onProgress: (p) => {
          // Whatever the report counts as created is durable already (read independently: the file
          // on disk now; the database by a query started now, which can only see more).
          if (p.done % 10 !== 0 && p.done !== p.total) return;
          checks++;
          const reported = p.created + p.linked;
          reads.push(
            kind.durableContacts(tmp).then((durable) => {
              if (durable < reported) behind.push(`${reported} reported, ${durable} durable`);
            }),
          );
        },
      });
      await Promise.all(reads);
      assert.equal(r.counts.created, 199);
      assert.equal(r.counts.failed, 0);
      assert.ok(checks >= 10, `${checks} checks`);
      assert.deepEqual(behind, []);
      const requests = [...crmSim.counts.values()].reduce((a, b) => a + b, 0) - requests0;
      const creates = [...crmSim.counts].filter(([k]) => CREATE.test(k)).reduce((a, [, v]) => a + v, 0);
      assert.equal(creates, 199);
      assert.ok(requests - creates <= 5, `${requests - creates} CRM requests besides the creates (login and the search only)`);
      if (fileStore) {
        const writes = fileStore.writeCount - writes0;
        assert.ok(writes < 199 / 4, `${writes} file writes for 199 mappings`);
        assert.equal(Object.keys(readOnDisk(file).mappings.contact).length, 199);
      } else assert.equal(await kind.durableContacts(tmp), 199);
      assertNoDuplicateCustomerNumbers();
    });

    it('stops when the mapping store can no longer be written, and a re-run links what was created meanwhile', async () => {
      await setup(30, crmUsers);
      // Creates slower than a file write, so the workers (which do not wait for each mapping to reach
      // the disk) are still part way through when the store goes away.
      crmSim.faults.latencyMs = 15;
      let closing: Promise<void> | undefined;
      const r1 = await run({ concurrency: 2, onProgress: (p) => void (p.created >= 5 && !closing && (closing = store.close())) });
      await closing;
      crmSim.faults.latencyMs = 0;
      assert.equal(r1.stoppedBy?.code, 'STORE_IO');
      assert.ok(r1.counts.failed > 0);
      assert.ok(r1.records.some((x) => /not attempted: the import stopped after STORE_IO/.test(x.reason ?? '')));
      const createdInCrm = crmSim.identities().length;
      assert.ok(createdInCrm >= 5 && createdInCrm < 29);

      store = await kind.reopen(tmp);
      const mappedBefore = (await store.stats()).byType.contact;
      const r2 = await run();
      assert.equal(r2.counts.failed, 0);
      assert.equal(r2.stoppedBy, undefined);
      assert.equal(r2.counts.linked, createdInCrm - mappedBefore);
      assert.equal(crmSim.identities().length, 29);
      assert.equal((await store.stats()).byType.contact, 29);
      assertNoDuplicateCustomerNumbers();
    });

    it('a wrong CRM password fails the run itself, before anything is written', async () => {
      await setup(5, { users: [{ username: 'api', password: 'other' }] });
      await assert.rejects(run(), (e: Error & { code?: string }) => {
        assert.equal(e.code, 'CRM_BAD_CREDENTIALS');
        assert.ok(!e.message.includes(CRM_PASSWORD));
        return true;
      });
      assert.equal((await store.stats()).total, 0);
    });

    it('honours a limit per run and a custom customer-number scheme and categories', async () => {
      await setup(15, crmUsers);
      const r1 = await run({ limit: 5, scheme: { prefix: 'S-', offset: 0 }, categories: [{ key: 'a' }, { key: 'b' }] });
      assert.equal(r1.counts.created, 5);
      assert.equal(r1.records.filter((x) => /limit reached/.test(x.reason ?? '')).length, 9);
      const ids = crmSim.identities();
      assert.equal(ids.length, 5);
      for (const rec of ids) {
        assert.match(String(rec.customerNumber), /^S-\d+$/);
        assert.deepEqual((rec.categories as Array<{ key: string }>).map((c) => c.key), ['a', 'b']);
      }
      const r2 = await run({ scheme: { prefix: 'S-', offset: 0 } });
      assert.equal(r2.counts.created, 9);
      assert.equal(crmSim.identities().length, 14);
    });
  });
}
