/**
 * The siagh-import node in a real Node-RED runtime (node-red-node-test-helper), against both
 * simulators over real HTTP, with the user dir in a temp folder; and on a sync-store that keeps
 * its data in PostgreSQL (a real server from testkit/postgres.ts): the mappings and the progress in
 * the database, the report in the store's data folder.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ImportReport } from '../../lib/sync/importer';
import type { SiaghContact } from '../../lib/types';
import { CrmSim } from '../../sim/crm-sim';
import { seedSiaghContacts } from '../../sim/seed';
import { SiaghSim } from '../../sim/siagh-sim';
import { nodeRedModule } from '../helpers/node-env';
import { readOnDisk } from '../fixtures/store-helpers';
import { Client } from 'pg';
import { PgServer } from '../../testkit/postgres';

const helper = require('node-red-node-test-helper');
const importNode = require('../../nodes/siagh-import/siagh-import');
const siaghConfigNode = require('../../nodes/siagh-config/siagh-config');
const crmConfigNode = require('../../nodes/crm-config/crm-config');
const syncMappingNode = require('../../nodes/sync-mapping/sync-mapping');
const crmFetchNode = require('../../nodes/crm-fetch/crm-fetch');
const upsertNode = require('../../nodes/siagh-upsert/siagh-upsert');
const syncStoreNode = require('../../nodes/sync-store/sync-store');

helper.init(nodeRedModule());

const ADMIN = 'مدیر سیستم';
const CRM_PASSWORD = 'crm-S3cret-pw';

interface Msg {
  payload?: unknown;
  reportFile?: string;
  error?: { code?: string; message?: string; source?: { id: string } };
  [k: string]: unknown;
}

type StatusCall = { fill?: string; shape?: string; text?: string };

interface RedNode {
  receive(msg: Msg): void;
  on(event: 'input', cb: (msg: Msg) => void): void;
  status(s: StatusCall): void;
  warn(m: unknown): void;
}

describe('siagh-import node', function () {
  this.timeout(30_000);
  let siaghSim: SiaghSim;
  let crmSim: CrmSim;
  let userDir: string;

  before((done) => {
    helper.startServer(done);
  });
  after((done) => {
    helper.stopServer(done);
  });

  async function start(n: number, edit?: (c: SiaghContact, i: number) => SiaghContact): Promise<void> {
    userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'siagh-import-node-'));
    const seed = seedSiaghContacts(n, { seed: 3, admins: 1 });
    siaghSim = new SiaghSim({ contacts: edit ? seed.map(edit) : seed });
    await siaghSim.start();
    crmSim = new CrmSim({ users: [{ username: 'api', password: CRM_PASSWORD }] });
    await crmSim.start();
  }

  afterEach(async () => {
    await helper.unload();
    await siaghSim?.stop();
    await crmSim?.stop();
    if (userDir) fs.rmSync(userDir, { recursive: true, force: true });
  });

  function flow(importProps: Record<string, unknown> = {}) {
    return [
      { id: 'tab1', type: 'tab', label: 'import' },
      { id: 'siagh1', type: 'siagh-config', z: 'tab1', name: 'siagh', baseUrl: siaghSim.url, timeout: 5, concurrency: 4, indexMaxAge: 10 },
      { id: 'crm1', type: 'crm-config', z: 'tab1', name: 'crm', baseUrl: crmSim.url, timeout: 5, concurrency: 4 },
      { id: 'imp1', type: 'siagh-import', z: 'tab1', name: '', siagh: 'siagh1', crm: 'crm1', concurrency: 4, cnPrefix: '100-', cnOffset: 1000, categories: 'syaghcontact', x: 300, y: 100, wires: [['out1']], ...importProps },
      { id: 'out1', type: 'helper', z: 'tab1', x: 500, y: 100, wires: [] },
      { id: 'map1', type: 'sync-mapping', z: 'tab1', operation: 'stats', entityType: 'auto', x: 300, y: 200, wires: [['mapout1']] },
      { id: 'mapout1', type: 'helper', z: 'tab1', x: 500, y: 200, wires: [] },
      { id: 'catch1', type: 'catch', z: 'tab1', name: '', scope: null, uncaught: false, x: 300, y: 300, wires: [['caught1']] },
      { id: 'caught1', type: 'helper', z: 'tab1', x: 500, y: 300, wires: [] },
    ];
  }

  /** A sync-store on PostgreSQL (the URL without its password, the password as its credential) for imp1 and map1. */
  interface PgStore {
    url: string;
    dir: string;
  }

  async function load(importProps: Record<string, unknown> = {}, crmPassword = CRM_PASSWORD, pg?: PgStore): Promise<{ imp: RedNode; statuses: StatusCall[]; warnings: unknown[] }> {
    helper.settings({ userDir });
    let nodes: Array<Record<string, unknown>> = flow(importProps);
    const creds: Record<string, unknown> = { siagh1: { username: ADMIN, password: 'admin' }, crm1: { username: 'api', password: crmPassword } };
    if (pg) {
      const u = new URL(pg.url);
      creds.store1 = { pgPassword: decodeURIComponent(u.password) };
      u.password = '';
      nodes = nodes.map((x) => (x.id === 'imp1' || x.id === 'map1' ? { ...x, store: 'store1' } : x));
      nodes.push({ id: 'store1', type: 'sync-store', backend: 'postgres', dir: pg.dir, pgUrl: u.toString(), pgTls: 'off' });
    }
    await helper.load([siaghConfigNode, crmConfigNode, syncMappingNode, importNode, syncStoreNode], nodes, creds);
    const imp = helper.getNode('imp1') as RedNode;
    const statuses: StatusCall[] = [];
    const warnings: unknown[] = [];
    const status = imp.status.bind(imp);
    imp.status = (s) => {
      statuses.push(s);
      status(s);
    };
    const warn = imp.warn.bind(imp);
    imp.warn = (m) => {
      warnings.push(m);
      warn(m);
    };
    return { imp, statuses, warnings };
  }

  function next(id: string, timeoutMs = 20_000): Promise<Msg> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no message at ${id} within ${timeoutMs} ms`)), timeoutMs);
      (helper.getNode(id) as RedNode).on('input', (msg) => {
        clearTimeout(t);
        resolve(msg);
      });
    });
  }

  function collect(id: string): Msg[] {
    const out: Msg[] = [];
    (helper.getNode(id) as RedNode).on('input', (msg) => out.push(msg));
    return out;
  }

  it('runs the import on an inject: one report message with the counts, progress in the status, a report file, the mapping shared', async () => {
    await start(60);
    const { imp, statuses, warnings } = await load();
    const reports = collect('out1');
    const caught = collect('caught1');
    const got = next('out1');
    imp.receive({ payload: Date.now() });
    imp.receive({ payload: 'again' }); // while running: warned and dropped
    const msg = await got;
    await new Promise((r) => setTimeout(r, 100));

    assert.equal(reports.length, 1, 'exactly one report message');
    assert.equal(caught.length, 0, JSON.stringify(caught.map((m) => m.error)));
    assert.equal(warnings.length, 1);
    assert.match(String(warnings[0]), /already running/);

    const report = msg.payload as ImportReport;
    assert.equal(report.dryRun, false);
    assert.equal(report.total, 60);
    assert.equal(report.counts.created, 59);
    assert.equal(report.counts.skipped, 1);
    assert.equal(report.counts.failed, 0);
    assert.equal(report.records.length, 60);
    assert.equal(crmSim.identities().length, 59);

    // Progress in the status: "done/total", ending at 60/60, then the counts.
    const texts = statuses.map((s) => s.text ?? '');
    assert.ok(texts.includes('60/60'), texts.join(' | '));
    assert.ok(texts.every((t) => !/^\d+\/\d+$/.test(t) || /^\d+\/60$/.test(t)));
    assert.equal(statuses.at(-1)?.fill, 'green');
    assert.match(texts.at(-1)!, /created 59 · linked 0 · skipped 1 · failed 0/);

    // The report file under <userDir>/siagh-sync/reports, whole, without the password.
    assert.equal(typeof msg.reportFile, 'string');
    assert.equal(path.dirname(msg.reportFile!), path.join(fs.realpathSync(userDir), 'siagh-sync', 'reports'));
    const text = fs.readFileSync(msg.reportFile!, 'utf8');
    assert.equal((JSON.parse(text) as ImportReport).records.length, 60);
    assert.ok(!text.includes(CRM_PASSWORD));

    // The sync-mapping node on the same (default) file sees the 59 mappings at once: one shared store.
    const stats = next('mapout1');
    helper.getNode('map1').receive({ payload: {} });
    assert.equal(((await stats).payload as { byType: Record<string, number> }).byType.contact, 59);

    // A second run: nothing new.
    const again = next('out1');
    imp.receive({ payload: 1 });
    const r2 = (await again).payload as ImportReport;
    assert.equal(r2.counts.created, 0);
    assert.equal(r2.counts.skipped, 60);
    assert.equal(crmSim.identities().length, 59);
  });

  it('shares its field settings with siagh-upsert: after an import, the first CRM event for each imported identity is unchanged and writes nothing to Siagh', async () => {
    // Non-default shared settings on both nodes (the same properties, built the same way in lib).
    const shared = {
      cnPrefix: 'S-', cnOffset: 5000, mobileLabel: 'Cellular', officeLabel: 'Work', mobileTypes: 'handy', officeTypes: 'bureau',
      genderValues: 'F2, M2', economicCodeKey: 'gn_web_users.codeeghtesadi', tmpidKey: 'tmpid', addressNames: true,
    };
    const cities = ['شیراز', 'تبریز', '021'];
    await start(30, (c, i) => (c.IsAdminUser ? c : { ...c, CityCode: cities[i % 3], Description: i % 4 === 0 ? `توضیح سیاق ${i}` : c.Description }));
    const contacts = siaghSim.contacts();
    assert.ok(contacts.some((c) => c.Gender === '0') && contacts.some((c) => c.Gender === '1'), 'the seed has both genders');
    helper.settings({ userDir });
    await helper.load(
      [siaghConfigNode, crmConfigNode, syncMappingNode, importNode, crmFetchNode, upsertNode],
      [
        ...flow(shared),
        { id: 'fetch1', type: 'crm-fetch', z: 'tab1', crm: 'crm1', what: 'identity', x: 100, y: 400, wires: [['look1']] },
        { id: 'look1', type: 'sync-mapping', z: 'tab1', operation: 'lookup', entityType: 'contact', claim: false, x: 300, y: 400, wires: [['up1']] },
        { id: 'up1', type: 'siagh-upsert', z: 'tab1', siagh: 'siagh1', mode: 'contact', emptyPolicy: 'keep', ...shared, x: 500, y: 400, wires: [['upout1']] },
        { id: 'upout1', type: 'helper', z: 'tab1', x: 700, y: 400, wires: [] },
      ],
      { siagh1: { username: ADMIN, password: 'admin' }, crm1: { username: 'api', password: CRM_PASSWORD } },
    );
    const caught = collect('caught1');
    const got = next('out1');
    helper.getNode('imp1').receive({ payload: 1 });
    const report = (await got).payload as ImportReport;
    assert.equal(report.counts.created, 29, JSON.stringify(report.records.filter((r) => r.outcome === 'failed').slice(0, 3)));

    // What the CRM got: the shared scheme and labels, Siagh's gender, city and description.
    const ids = crmSim.identities();
    const byNumber = new Map(ids.map((r) => [String(r.customerNumber), r]));
    for (const c of contacts.filter((x) => !x.IsAdminUser)) {
      const r = byNumber.get(`S-${c.Code + 5000}`);
      assert.ok(r, `identity for Siagh ${c.Code}`);
      assert.equal((r.addressContacts as Array<{ city?: string }>)[0]?.city, c.CityCode);
      if (c.Description) assert.equal(r.description, c.Description.trim());
      if (!c.TowardType && (c.Gender === '0' || c.Gender === '1')) assert.equal(r.gender, c.Gender === '0' ? 'F2' : 'M2');
      for (const ph of (r.phoneContacts as Array<{ phoneType: string }>) ?? []) assert.ok(['Cellular', 'Work'].includes(ph.phoneType));
    }

    // The first CRM event for each imported identity: fetched, looked up, mapped with the same settings.
    const saves = siaghSim.saveCount;
    const results = collect('upout1');
    for (const r of ids) helper.getNode('fetch1').receive({ payload: { id: r.crmId, type: 'Identity' } });
    const deadline = Date.now() + 20_000;
    while (results.length < ids.length && caught.length === 0 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 50));
    assert.equal(caught.length, 0, JSON.stringify(caught.map((m) => m.error)));
    assert.equal(results.length, ids.length);
    for (const m of results) {
      const mapping = m.mapping as { checksum?: string };
      const update = m.mappingUpdate as { checksum: string };
      assert.equal((m.siagh as { action: string }).action, 'unchanged');
      assert.equal(update.checksum, mapping.checksum, 'the checksum the import stored is the one siagh-upsert computes');
    }
    assert.equal(siaghSim.saveCount, saves, 'no Siagh write');
  });

  it('with SYNC_DATA_DIR set, the import and sync-mapping (both left at their defaults) share the mapping file there', async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'siagh-import-datadir-'));
    const saved = process.env.SYNC_DATA_DIR;
    process.env.SYNC_DATA_DIR = dataDir;
    try {
      await start(12);
      const { imp } = await load();
      const got = next('out1');
      imp.receive({ payload: 1 });
      const msg = await got;
      assert.equal((msg.payload as ImportReport).counts.created, 11);
      assert.equal(path.dirname(msg.reportFile!), path.join(fs.realpathSync(dataDir), 'reports'));
      const onDisk = readOnDisk(path.join(dataDir, 'mappings.json')) as unknown as { mappings: { contact: object } };
      assert.equal(Object.keys(onDisk.mappings.contact).length, 11);
      assert.ok(!fs.existsSync(path.join(userDir, 'siagh-sync', 'mappings.json')), 'nothing under the user dir');
      const stats = next('mapout1');
      helper.getNode('map1').receive({ payload: {} });
      assert.equal(((await stats).payload as { byType: Record<string, number> }).byType.contact, 11);
    } finally {
      await helper.unload();
      if (saved === undefined) delete process.env.SYNC_DATA_DIR;
      else process.env.SYNC_DATA_DIR = saved;
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('msg.dryRun makes a dry run: the plan is reported and nothing is written', async () => {
    await start(25);
    const { imp, statuses } = await load();
    const got = next('out1');
    imp.receive({ payload: '', dryRun: true });
    const msg = await got;
    const report = msg.payload as ImportReport;
    assert.equal(report.dryRun, true);
    assert.equal(report.counts.plannedCreate, 24);
    assert.equal(report.counts.created, 0);
    assert.equal(crmSim.identities().length, 0, 'nothing created in the CRM');
    assert.equal([...crmSim.counts.keys()].filter((k) => /\/create$/.test(k)).length, 0);
    assert.match(path.basename(msg.reportFile!), /dry-run\.json$/);
    const mappingFile = path.join(userDir, 'siagh-sync', 'mappings.json');
    const data = readOnDisk(mappingFile) as unknown as { mappings: { contact: object }; meta: object };
    assert.equal(Object.keys(data.mappings.contact).length, 0, 'no mapping stored');
    assert.deepEqual(data.meta, {}, 'no progress stored');
    assert.match(statuses.at(-1)?.text ?? '', /^plan: create 24 · link 0 · skip 1/);
  });

  it('a large import sends the report without the records (the file has them all)', async () => {
    await start(1001);
    const { imp } = await load({ dryRun: true });
    const got = next('out1');
    imp.receive({ payload: '' });
    const msg = await got;
    const p = msg.payload as Record<string, unknown>;
    assert.equal(p.records, undefined);
    assert.equal(p.recordsOmitted, 1001);
    assert.equal((p.counts as { plannedCreate: number }).plannedCreate, 1000);
    assert.equal((JSON.parse(fs.readFileSync(msg.reportFile!, 'utf8')) as ImportReport).records.length, 1001);
  });

  it('a redeploy in the middle of an import stops it; the next run finishes the rest with no duplicates', async () => {
    await start(120);
    crmSim.faults.latencyMs = 10;
    const first = await load();
    const progressed = new Promise<void>((resolve) => {
      const status = first.imp.status.bind(first.imp);
      first.imp.status = (s) => {
        status(s);
        const m = /^(\d+)\/120$/.exec(s.text ?? '');
        if (m && Number(m[1]) >= 20) resolve();
      };
    });
    first.imp.receive({ payload: '' });
    await progressed;
    await helper.unload(); // the redeploy: closes the nodes while the import runs
    const createdBefore = crmSim.identities().length;
    assert.ok(createdBefore > 0 && createdBefore < 119, `stopped part way (${createdBefore} created)`);
    const progress = readOnDisk(path.join(userDir, 'siagh-sync', 'mappings.json')).meta['import.progress'] as { status: string };
    assert.equal(progress.status, 'stopped');

    crmSim.faults.latencyMs = 0;
    const { imp } = await load();
    const got = next('out1');
    imp.receive({ payload: '' });
    const report = (await got).payload as ImportReport;
    assert.equal(report.counts.failed, 0);
    assert.equal(report.counts.created + report.counts.linked, 119 - (report.counts.skipped - 1));
    const ids = crmSim.identities();
    assert.equal(ids.length, 119);
    assert.equal(new Set(ids.map((r) => r.customerNumber)).size, 119, 'no two identities share a customer number');
  });

  it('a bad CRM password reaches the Catch node with CRM_BAD_CREDENTIALS; no report is sent', async () => {
    await start(5);
    const { imp, statuses } = await load({}, 'wrong-password');
    const reports = collect('out1');
    const caughtP = next('caught1');
    imp.receive({ payload: '' });
    const caught = await caughtP;
    assert.equal(caught.error?.code, 'CRM_BAD_CREDENTIALS');
    assert.equal(caught.error?.source?.id, 'imp1');
    assert.ok(!String(caught.error?.message).includes('wrong-password'));
    assert.equal(reports.length, 0);
    assert.equal(statuses.at(-1)?.fill, 'red');
    assert.equal(crmSim.identities().length, 0);
  });

  describe('on a PostgreSQL data store', () => {
    let server: PgServer;
    let pg: PgStore;
    before(async function () {
      this.timeout(120_000);
      server = await PgServer.start();
    });
    after(async () => {
      await server?.close();
    });
    beforeEach(async () => {
      pg = { url: await server.database(), dir: fs.mkdtempSync(path.join(os.tmpdir(), 'siagh-import-pg-')) };
    });
    afterEach(() => {
      fs.rmSync(pg.dir, { recursive: true, force: true });
    });

    async function sql<T extends Record<string, unknown>>(text: string): Promise<T[]> {
      const c = new Client({ connectionString: pg.url });
      await c.connect();
      try {
        return (await c.query<T>(text)).rows;
      } finally {
        await c.end();
      }
    }

    it('imports into the database: the mappings and the progress are rows, the report is in the data folder, sync-mapping sees them, a re-run imports nothing twice', async () => {
      await start(40);
      const { imp, statuses } = await load({}, CRM_PASSWORD, pg);
      const caught = collect('caught1');
      const got = next('out1');
      imp.receive({ payload: 1 });
      const msg = await got;
      assert.equal(caught.length, 0, JSON.stringify(caught.map((m) => m.error)));
      const report = msg.payload as ImportReport;
      assert.deepEqual([report.counts.created, report.counts.skipped, report.counts.failed], [39, 1, 0]);
      assert.match(statuses.at(-1)?.text ?? '', /created 39 · linked 0 · skipped 1 · failed 0/);

      // The mappings: rows in the database, one per created identity, with the import's checksum.
      const rows = await sql<{ crm_id: string; siagh_code: string; customer_number: string; source: string; checksum: string }>(
        "SELECT crm_id, siagh_code, customer_number, source, checksum FROM siagh_sync_mappings WHERE entity_type = 'contact'",
      );
      assert.equal(rows.length, 39);
      const byCrmId = new Map(crmSim.identities().map((r) => [r.crmId, r]));
      for (const r of rows) {
        assert.equal(byCrmId.get(r.crm_id)?.customerNumber, r.customer_number);
        assert.equal(r.customer_number, `100-${Number(r.siagh_code) + 1000}`);
        assert.equal(r.source, 'import');
        assert.match(r.checksum, /^[0-9a-f]{64}$/);
      }
      const [progress] = await sql<{ value: { status: string; done: number; created: number; reportFile: string } }>("SELECT value FROM siagh_sync_meta WHERE key = 'import.progress'");
      assert.deepEqual([progress.value.status, progress.value.done, progress.value.created], ['finished', 40, 39]);
      // No mapping file anywhere: the data folder holds the report only.
      assert.equal(path.dirname(msg.reportFile!), path.join(fs.realpathSync(pg.dir), 'reports'));
      assert.equal(progress.value.reportFile, msg.reportFile);
      assert.equal((JSON.parse(fs.readFileSync(msg.reportFile!, 'utf8')) as ImportReport).records.length, 40);
      assert.ok(!fs.existsSync(path.join(pg.dir, 'mappings.json')));
      assert.ok(!fs.existsSync(path.join(userDir, 'siagh-sync', 'mappings.json')));

      const stats = next('mapout1');
      helper.getNode('map1').receive({ payload: {} });
      assert.equal(((await stats).payload as { byType: Record<string, number> }).byType.contact, 39);

      const again = next('out1');
      imp.receive({ payload: 2 });
      const r2 = (await again).payload as ImportReport;
      assert.deepEqual([r2.counts.created, r2.counts.linked, r2.counts.skipped, r2.counts.failed], [0, 0, 40, 0]);
      assert.equal(crmSim.identities().length, 39);
      assert.equal((await sql("SELECT 1 FROM siagh_sync_mappings")).length, 39);
    });

    it('a redeploy in the middle of an import stops it (progress "stopped" in the database); the next run finishes the rest with no duplicates', async () => {
      await start(120);
      crmSim.faults.latencyMs = 10;
      const first = await load({}, CRM_PASSWORD, pg);
      const progressed = new Promise<void>((resolve) => {
        const status = first.imp.status.bind(first.imp);
        first.imp.status = (s) => {
          status(s);
          const m = /^(\d+)\/120$/.exec(s.text ?? '');
          if (m && Number(m[1]) >= 20) resolve();
        };
      });
      first.imp.receive({ payload: '' });
      await progressed;
      await helper.unload();
      const createdBefore = crmSim.identities().length;
      assert.ok(createdBefore > 0 && createdBefore < 119, `stopped part way (${createdBefore} created)`);
      const [progress] = await sql<{ value: { status: string } }>("SELECT value FROM siagh_sync_meta WHERE key = 'import.progress'");
      assert.equal(progress.value.status, 'stopped');
      // A create cut off by the redeploy (its CRM client closed) may have landed without its mapping.
      const mappedBefore = (await sql("SELECT 1 FROM siagh_sync_mappings")).length;
      assert.ok(mappedBefore > 0 && mappedBefore <= createdBefore, `${mappedBefore} mapped, ${createdBefore} created`);

      crmSim.faults.latencyMs = 0;
      const { imp } = await load({}, CRM_PASSWORD, pg);
      const got = next('out1');
      imp.receive({ payload: '' });
      const report = (await got).payload as ImportReport;
      assert.equal(report.counts.failed, 0);
      assert.equal(report.counts.skipped, 1 + mappedBefore);
      // Created but not mapped (a create the CRM finished after the redeploy counts too): linked by
      // the customer number, never created again.
      assert.ok(report.counts.linked >= createdBefore - mappedBefore, `${report.counts.linked} linked`);
      assert.equal(report.counts.created + report.counts.linked, 119 - mappedBefore);
      const ids = crmSim.identities();
      assert.equal(ids.length, 119);
      assert.equal(new Set(ids.map((r) => r.customerNumber)).size, 119, 'no two identities share a customer number');
      assert.equal((await sql("SELECT 1 FROM siagh_sync_mappings")).length, 119);
    });
  });
});
