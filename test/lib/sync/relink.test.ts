/**
 * Relink without the mapping file (issue #10 item 7), on the real Node-RED runtime
 * (node-red-node-test-helper) against both simulators over HTTP:
 * - siagh-upsert's write-back puts `siagh:<Code>` into the CRM record's refId after a create, reads
 *   the record again and sends it back whole (the CRM simulator runs in `replace` update mode here,
 *   so a partial body would blank the record), never changes a customer number, leaves a foreign
 *   refId alone, and a failed write-back does not fail the sync;
 * - the CRM's Update webhook that the write-back causes (delivered by the simulator to a receiver
 *   that feeds it into the flow, as the webhook flow would) writes nothing to Siagh;
 * - sync-mapping `rebuild` after the data folder is deleted: the dry run reports the links and
 *   stores nothing; apply stores them; a conflicting mapping is reported, not overwritten; a second
 *   apply changes nothing; the same on a sync-store that keeps its mappings in PostgreSQL (a real
 *   server from testkit/postgres.ts).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { writeMappingFile, type MappingFileV1 } from '../../../lib/store/mapping-store';
import { mapIdentityToContact } from '../../../lib/sync/contact-mapper';
import { readRefId, refIdUpdateBody } from '../../../lib/sync/relink';
import type { CrmIdentity } from '../../../lib/types';
import { nationalIdWithCheckDigit } from '../../../sim/seed';
import { CRM_USER, SIAGH_USER, collect, configNodes, coreNode, helper, n, nodeModule, startSims, tab, tmpDir, waitFor } from '../../helpers/node-env';
import { readOnDisk } from '../../fixtures/store-helpers';
import { REPO_ROOT } from '../../helpers/paths';
import { openPool } from '../../../lib/pg/db';
import { PgMappingStore } from '../../../lib/store/pg-mapping-store';
import { PgServer } from '../../../testkit/postgres';

const NODES = () => ['crm-config', 'siagh-config', 'crm-fetch', 'siagh-upsert', 'sync-mapping'].map(nodeModule);
const UPDATE_RE = /^POST \/api\/v2\/crmobject\/(person|organization)\/update$/i;

function count(sim: { counts: Map<string, number> }, re: RegExp): number {
  let k = 0;
  for (const [key, v] of sim.counts) if (re.test(key)) k += v;
  return k;
}

let seq = 0;
/** A CRM person as a CRM user enters it: a customer number of the CRM's own, a mobile of its own. */
function person(tag: string, over: Record<string, unknown> = {}): Record<string, unknown> {
  seq++;
  const n7 = String(1_000_000 + ((Date.now() % 1_000_000) * 7 + seq * 13) % 8_999_999);
  return {
    firstName: 'مریم',
    lastName: `احمدی ${tag}`,
    nickName: `مریم احمدی ${tag}`,
    customerNumber: `C-${4700 + seq}`,
    email: `maryam.${tag}@example.ir`,
    nationalCode: nationalIdWithCheckDigit(`00${n7}`.slice(0, 9)),
    description: 'ثبت شده در CRM',
    gender: 'Female',
    phoneContacts: [{ default: true, phoneType: 'موبایل', phoneNumber: `0913${n7}` }],
    addressContacts: [{ default: true, country: 'ایران', state: 'فارس', city: 'شیراز', address: 'شیراز، خیابان زند', zipCode: '7134845111' }],
    ...over,
  };
}

describe('relink: write-back of the link into the CRM, and rebuild mapping (runtime, simulators)', function () {
  this.timeout(30_000);
  let sims: Awaited<ReturnType<typeof startSims>>;
  let receiver: http.Server;
  let dataDir: string;
  let file: string;
  /** Webhook deliveries the receiver got: [event, id]. */
  const delivered: Array<[string, string]> = [];
  /** While true, each delivery is fed into the flow's crm-fetch (as the webhook flow does). */
  let feed = false;

  before(async () => {
    receiver = http.createServer((req, res) => {
      const q = new URL(req.url ?? '/', 'http://x').searchParams;
      const id = q.get('id') ?? '';
      delivered.push([q.get('event') ?? '', id]);
      res.writeHead(200).end('{}');
      if (feed) {
        const fetch = helper.getNode('fetch');
        if (fetch) fetch.receive({ payload: { id, kind: 'person' }, topic: 'echo' });
      }
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/webhook/crm/identity`;
    // replace: an update blanks what it does not send, the harshest reading of the update rule (docs/crm-api.md#person-and-organization).
    sims = await startSims({ crm: { updateMode: 'replace', webhookUrl: url } });
  });
  after(async () => {
    await sims.stop();
    await new Promise((r) => receiver.close(r));
  });
  beforeEach(() => {
    dataDir = tmpDir('relink-test-');
    file = path.join(dataDir, 'mappings.json');
    helper.settings({ userDir: dataDir });
    delivered.length = 0;
    feed = false;
    sims.crm.faults.clear();
    sims.crm.resetCounts();
  });
  afterEach(async () => {
    await helper.unload();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  /** fetch → lookup (claim) → upsert (write-back) → store → out; rebuild → rbOut; a Catch → caught. */
  async function load(upProps: Record<string, unknown> = {}, extraCfg: Array<Record<string, unknown>> = [], creds: Record<string, unknown> = {}) {
    const cfg = configNodes(sims.siagh.url, sims.crm.url);
    const flow = [
      tab,
      ...cfg.nodes,
      ...extraCfg,
      n({ id: 'fetch', type: 'crm-fetch', crm: 'crm', wires: [['look']] }),
      n({ id: 'look', type: 'sync-mapping', operation: 'lookup', file, wires: [['up']] }),
      n({ id: 'up', type: 'siagh-upsert', siagh: 'siagh', crm: 'crm', writeBack: true, mode: 'contact', ...upProps, wires: [['store']] }),
      n({ id: 'store', type: 'sync-mapping', operation: 'store', file, wires: [['out']] }),
      n({ id: 'out', type: 'helper' }),
      n({ id: 'rb', type: 'sync-mapping', operation: 'rebuild', file, crm: 'crm', siagh: 'siagh', cnPrefix: '100-', cnOffset: 1000, wires: [['rbOut']] }),
      n({ id: 'rbOut', type: 'helper' }),
      n({ id: 'catch', type: 'catch', scope: null, uncaught: false, wires: [['caught']] }),
      n({ id: 'caught', type: 'helper' }),
    ];
    await helper.load(NODES(), flow, { ...cfg.credentials, ...creds });
    return { out: collect(helper.getNode('out')), rbOut: collect(helper.getNode('rbOut')), caught: collect(helper.getNode('caught')) };
  }

  /** Sync one CRM identity through the flow; resolves with the message that left 'store'. */
  async function syncOne(io: { out: any[]; caught: any[] }, id: string): Promise<any> {
    const before = io.out.length + io.caught.length;
    helper.getNode('fetch').receive({ payload: { id, kind: 'person' } });
    await waitFor(() => io.out.length + io.caught.length > before, 15_000, 'the sync of ' + id);
    if (io.caught.length) assert.fail(`the sync failed: ${JSON.stringify(io.caught.at(-1).error)}`);
    return io.out.at(-1);
  }

  async function rebuild(io: { rbOut: any[]; caught: any[] }, dryRun: boolean): Promise<any> {
    const before = io.rbOut.length;
    helper.getNode('rb').receive({ payload: { dryRun } });
    await waitFor(() => io.rbOut.length > before || io.caught.length > 0, 20_000, 'the rebuild report');
    if (io.caught.length) assert.fail(`the rebuild failed: ${JSON.stringify(io.caught.at(-1).error)}`);
    return io.rbOut.at(-1).payload;
  }

  const mappingsOnDisk = (): Record<string, { siaghCode: string; source: string }> =>
    fs.existsSync(file) ? (readOnDisk(file) as unknown as MappingFileV1).mappings.contact : {};

  it('refId is not part of the Siagh-bound checksum; the update body keeps every writable field', () => {
    const id = { crmId: '11111111-2222-3333-4444-555555555555', kind: 'person', ...person('pure') } as unknown as CrmIdentity;
    assert.equal(mapIdentityToContact({ ...id, refId: 'siagh:8301' }).checksum, mapIdentityToContact({ ...id, refId: null }).checksum);
    const body = refIdUpdateBody({ ...id, refId: null, creatDate: '2025-12-21T14:06:17.173', balance: 5 } as CrmIdentity, 'siagh:8301');
    assert.equal(body.refId, 'siagh:8301');
    assert.equal(body.customerNumber, id.customerNumber, 'the customer number is sent back as read');
    assert.deepEqual(body.phoneContacts, id.phoneContacts);
    assert.equal('creatDate' in body || 'balance' in body || 'crmId' in body, false, 'read-only fields are not sent');
    assert.deepEqual(readRefId('siagh:۸۳۰۱'), { state: 'ours', code: 8301 });
    assert.equal(readRefId('8301').state, 'foreign', 'a bare number (the old service\'s RecordId / tmpid) is not ours');
    assert.equal(readRefId('').state, 'empty');
  });

  it('after a create, refId = siagh:<Code>, the record is otherwise unchanged, and the echo webhook writes nothing to Siagh', async () => {
    const io = await load();
    const rec = sims.crm.addPerson(person('create'), { webhook: false });
    const before = sims.crm.record(rec.crmId)!;
    const msg = await syncOne(io, rec.crmId);
    assert.equal(msg.siagh.action, 'created');
    assert.equal(msg.siagh.crmLink, 'written');
    const code = msg.siagh.code as number;
    const after = sims.crm.record(rec.crmId)!;
    assert.equal(after.refId, `siagh:${code}`);
    assert.equal(after.customerNumber, before.customerNumber, 'the human-set customer number is not changed');
    for (const k of ['nickName', 'firstName', 'lastName', 'email', 'nationalCode', 'description', 'gender', 'phoneContacts', 'addressContacts']) {
      assert.deepEqual(after[k], before[k], `${k} survives the write-back (replace-mode CRM)`);
    }
    assert.equal(count(sims.crm, UPDATE_RE), 1, 'one CRM update');

    // The CRM's Update webhook of that write (the echo) goes through the same flow.
    await sims.crm.flushWebhooks();
    assert.deepEqual(delivered, [['Update', rec.crmId]], 'the write-back caused exactly one Update webhook');
    const saves = sims.siagh.saveCount;
    const echo = await syncOne(io, rec.crmId);
    assert.equal(echo.siagh.action, 'unchanged');
    assert.equal(echo.siagh.crmLink, 'already', 'nothing written back again');
    assert.equal(sims.siagh.saveCount, saves, 'the echo wrote nothing to Siagh');
    assert.equal(count(sims.crm, UPDATE_RE), 1, 'and nothing to the CRM');
  });

  it('the echo delivered by the CRM itself (webhook → flow) writes nothing to Siagh and ends the chain', async () => {
    const io = await load();
    feed = true;
    const saves = sims.siagh.saveCount;
    const rec = sims.crm.addPerson(person('webhook')); // Insert webhook → the flow
    await waitFor(() => io.out.length >= 2 || io.caught.length > 0, 15_000, 'the insert and its echo');
    await sims.crm.flushWebhooks();
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(io.caught.length, 0, JSON.stringify(io.caught[0]?.error));
    assert.deepEqual(
      io.out.map((m) => m.siagh.action),
      ['created', 'unchanged'],
    );
    assert.deepEqual(
      delivered.map(([e]) => e),
      ['Insert', 'Update'],
      'one echo, and the echo caused no further write',
    );
    assert.equal(sims.siagh.saveCount, saves + 1, 'one Siagh save: the create');
    assert.equal(sims.crm.record(rec.crmId)!.refId, `siagh:${io.out[0].siagh.code}`);
  });

  it('an imported identity (customer number by the scheme) is linked and nothing is written to the CRM', async () => {
    const io = await load();
    const contact = sims.siagh.addContact({ Name: 'فرهاد کاظمی', MobileNo: '09171234001', TowardType: false });
    const rec = sims.crm.addPerson(person('imported', { nickName: 'فرهاد کاظمی', customerNumber: `100-${contact.Code + 1000}` }), { webhook: false });
    const msg = await syncOne(io, rec.crmId);
    assert.equal(msg.siagh.action, 'linked');
    assert.equal(msg.siagh.crmLink, 'customer-number');
    assert.equal(count(sims.crm, UPDATE_RE), 0);
    assert.equal(sims.crm.record(rec.crmId)!.refId, null);
    assert.equal(sims.crm.record(rec.crmId)!.customerNumber, `100-${contact.Code + 1000}`);
  });

  it('a foreign refId is left alone; a failed write-back does not fail the sync', async () => {
    const io = await load();
    const a = sims.crm.addPerson(person('foreign', { refId: '77123' }), { webhook: false });
    const m1 = await syncOne(io, a.crmId);
    assert.equal(m1.siagh.action, 'created');
    assert.equal(m1.siagh.crmLink, 'foreign');
    assert.ok(m1.sync.warnings.some((w: string) => /not ours/.test(w)), JSON.stringify(m1.sync.warnings));
    assert.equal(sims.crm.record(a.crmId)!.refId, '77123');
    assert.equal(count(sims.crm, UPDATE_RE), 0);

    sims.crm.faults.add({ kind: '5xx', status: 500, path: '/person/update', times: 50 });
    const b = sims.crm.addPerson(person('fails'), { webhook: false });
    const saves = sims.siagh.saveCount;
    const m2 = await syncOne(io, b.crmId);
    assert.equal(m2.siagh.action, 'created', 'the Siagh side succeeded');
    assert.equal(m2.siagh.crmLink, 'failed');
    assert.ok(/CRM write-back failed/.test(m2.sync.warnings[0]), JSON.stringify(m2.sync.warnings));
    assert.equal(sims.siagh.saveCount, saves + 1);
    assert.equal(mappingsOnDisk()[b.crmId]?.siaghCode, String(m2.siagh.code), 'the mapping is stored all the same');
    assert.equal(sims.crm.record(b.crmId)!.refId, null);
  });

  it('write-back off (unticked, or no CRM config): nothing is written to the CRM', async () => {
    const io = await load({ writeBack: false });
    const rec = sims.crm.addPerson(person('off'), { webhook: false });
    const msg = await syncOne(io, rec.crmId);
    assert.equal(msg.siagh.action, 'created');
    assert.equal(msg.siagh.crmLink, undefined);
    assert.equal(count(sims.crm, UPDATE_RE), 0);
    assert.equal(sims.crm.record(rec.crmId)!.refId, null);
  });

  it('rebuild after the data folder is lost: dry run stores nothing, apply stores, conflicts are reported, a second apply is a no-op', async () => {
    // Only this test's identities in the CRM (earlier tests' refIds name contacts that still exist).
    for (const x of sims.crm.identities()) sims.crm.deleteRecord(x.crmId);
    // --- a synced world: two CRM-first identities (refId written back) and one imported one (scheme)
    const imported = sims.siagh.addContact({ Name: 'بهرام نادری', MobileNo: '09171234002', TowardType: false });
    let io = await load();
    const a = sims.crm.addPerson(person('rb-a'), { webhook: false });
    const b = sims.crm.addPerson(person('rb-b'), { webhook: false });
    const codeA = (await syncOne(io, a.crmId)).siagh.code as number;
    const codeB = (await syncOne(io, b.crmId)).siagh.code as number;
    const c = sims.crm.addPerson(person('rb-c', { nickName: 'بهرام نادری', customerNumber: `100-${imported.Code + 1000}` }), { webhook: false });
    const mc = await syncOne(io, c.crmId);
    assert.deepEqual([mc.siagh.action, mc.siagh.code, mc.siagh.crmLink], ['linked', imported.Code, 'customer-number'], JSON.stringify(mc.sync));
    // an identity nothing links (CRM-native number, no refId) and one whose refId names a missing contact
    const d = sims.crm.addPerson(person('rb-d'), { webhook: false });
    const e = sims.crm.addPerson(person('rb-e', { refId: 'siagh:99999' }), { webhook: false });
    assert.equal(Object.keys(mappingsOnDisk()).length, 3);

    // --- the data folder is lost
    await helper.unload();
    fs.rmSync(dataDir, { recursive: true, force: true });
    fs.mkdirSync(dataDir, { recursive: true });
    io = await load();
    const siaghSaves = sims.siagh.saveCount;
    const crmUpdates = count(sims.crm, UPDATE_RE);

    const dry = await rebuild(io, true);
    assert.equal(dry.dryRun, true);
    const want = [
      { crmId: a.crmId, code: codeA, by: 'refId' },
      { crmId: b.crmId, code: codeB, by: 'refId' },
      { crmId: c.crmId, code: imported.Code, by: 'customerNumber' },
    ].sort((x, y) => x.code - y.code);
    assert.deepEqual(
      dry.wouldLink.map((l: any) => ({ crmId: l.crmId, code: l.code, by: l.by })),
      want,
    );
    assert.equal(dry.linked, undefined);
    assert.equal(dry.counts.wouldLink, 3);
    assert.equal(dry.counts.conflicts, 0);
    assert.equal(dry.crmIdentities, 5);
    assert.equal(dry.unmatched.noKey, 1, 'd has no key');
    assert.equal(dry.unmatched.codeNotInSiagh, 1, 'e names a contact Siagh does not have');
    assert.equal(dry.counts.unmatched, 2);
    assert.equal(Object.keys(mappingsOnDisk()).length, 0, 'the dry run stored nothing');
    void d;
    void e;

    // --- an existing mapping that contradicts the CRM: b mapped to another contact
    await helper.unload();
    const other = sims.siagh.addContact({ Name: 'مخاطب دیگر', MobileNo: '09171234003', TowardType: false });
    await writeMappingFile(file, {
      version: 1,
      mappings: { contact: { [b.crmId]: { entityType: 'contact', crmId: b.crmId, siaghCode: String(other.Code), syncedAt: new Date().toISOString(), source: 'manual' } }, quote: {}, invoice: {} },
      meta: {},
    });
    io = await load();
    const applied = await rebuild(io, false);
    assert.equal(applied.dryRun, false);
    assert.deepEqual(
      applied.linked.map((l: any) => [l.crmId, l.code, l.by]),
      [
        [a.crmId, codeA, 'refId'],
        [c.crmId, imported.Code, 'customerNumber'],
      ].sort((x, y) => (x[1] as number) - (y[1] as number)),
    );
    assert.equal(applied.conflicts.length, 1);
    assert.equal(applied.conflicts[0].crmId, b.crmId);
    assert.equal(applied.conflicts[0].kind, 'crm-mapped-elsewhere');
    assert.equal(applied.conflicts[0].other, String(other.Code));
    const disk = mappingsOnDisk();
    assert.equal(disk[a.crmId].siaghCode, String(codeA));
    assert.equal(disk[a.crmId].source, 'rebuild');
    assert.equal(disk[c.crmId].siaghCode, String(imported.Code));
    assert.equal(disk[b.crmId].siaghCode, String(other.Code), 'the conflicting mapping is not overwritten');
    assert.equal(disk[b.crmId].source, 'manual');
    assert.equal(disk[d.crmId], undefined);

    // --- a second apply changes nothing
    const mtime = fs.statSync(file).mtimeMs;
    const again = await rebuild(io, false);
    assert.deepEqual(again.linked, []);
    assert.equal(again.counts.alreadyMapped, 2);
    assert.equal(again.conflicts.length, 1, 'the conflict is reported again, still not overwritten');
    assert.deepEqual(mappingsOnDisk(), disk);
    assert.equal(fs.statSync(file).mtimeMs, mtime, 'the mapping file was not even written');

    // --- neither system was written to by the rebuild
    assert.equal(sims.siagh.saveCount, siaghSaves, 'nothing written to Siagh');
    assert.equal(count(sims.crm, UPDATE_RE), crmUpdates, 'nothing written to the CRM');

    // --- and the relinked identities sync as before: no duplicate contact
    const contacts = sims.siagh.contacts().length;
    const m = await syncOne(io, a.crmId);
    assert.equal(m.siagh.code, codeA);
    assert.notEqual(m.siagh.action, 'created');
    assert.equal(sims.siagh.contacts().length, contacts);
  });

  it('rebuild needs both configs; dryRun defaults to true', async () => {
    const io = await load({}, [n({ id: 'rbBare', type: 'sync-mapping', operation: 'rebuild', file, wires: [['rbOut']] })]);
    helper.getNode('rbBare').receive({ payload: { dryRun: false } });
    await waitFor(() => io.caught.length > 0, 5000, 'the CONFIG error');
    assert.equal(io.caught[0].error.code, 'CONFIG');
    io.caught.length = 0;
    const dry = await (async () => {
      const before = io.rbOut.length;
      helper.getNode('rb').receive({ payload: {} });
      await waitFor(() => io.rbOut.length > before || io.caught.length > 0, 20_000, 'the report');
      return io.rbOut.at(-1)?.payload;
    })();
    assert.equal(dry.dryRun, true);
    assert.equal(Object.keys(mappingsOnDisk()).length, 0);
  });

  it('the example (examples/sync-mapping.json): "rebuild mapping (dry run)" then "(apply)", as shipped but for the addresses', async () => {
    const exFile = [REPO_ROOT, process.cwd()].map((root) => path.join(root, 'examples', 'sync-mapping.json')).find((f) => fs.existsSync(f));
    assert.ok(exFile, 'examples/sync-mapping.json found');
    const flow = JSON.parse(fs.readFileSync(exFile, 'utf8')) as Array<Record<string, unknown>>;
    const creds: Record<string, unknown> = {};
    for (const node of flow) {
      if (node.type === 'crm-config') {
        node.baseUrl = sims.crm.url;
        creds[node.id as string] = { username: CRM_USER.username, password: CRM_USER.password };
      } else if (node.type === 'siagh-config') {
        node.baseUrl = sims.siagh.url;
        creds[node.id as string] = { username: SIAGH_USER.UserName, password: SIAGH_USER.Password };
      }
      delete node.credentials;
      if (node.type === 'debug') node.type = 'helper';
    }
    const injects = flow.filter((x) => x.type === 'inject').map((x) => [x.name, x.id]);
    const dryId = injects.find(([name]) => name === 'rebuild mapping (dry run)')?.[1] as string;
    const applyId = injects.find(([name]) => name === 'rebuild mapping (apply)')?.[1] as string;
    assert.ok(dryId && applyId, 'both injects are there');
    await helper.load([...NODES(), coreNode('common/20-inject.js'), coreNode('common/90-comment.js')], flow, creds);
    const report = flow.find((x) => x.type === 'helper' && x.name === 'rebuild report')!;
    const out = collect(helper.getNode(report.id as string));
    // one linkable identity: imported from Siagh, its customer number by the scheme
    const contact = sims.siagh.addContact({ Name: 'نسرین فاضلی', MobileNo: '09171234009', TowardType: false });
    const rec = sims.crm.addPerson(person('example', { nickName: 'نسرین فاضلی', customerNumber: `100-${contact.Code + 1000}` }), { webhook: false });
    helper.getNode(dryId).receive({});
    await waitFor(() => out.length === 1, 20_000, 'the dry-run report');
    assert.equal(out[0].payload.dryRun, true);
    assert.ok(out[0].payload.wouldLink.some((l: any) => l.crmId === rec.crmId && l.code === contact.Code));
    helper.getNode(applyId).receive({});
    await waitFor(() => out.length === 2, 20_000, 'the apply report');
    assert.equal(out[1].payload.dryRun, false);
    assert.ok(out[1].payload.linked.some((l: any) => l.crmId === rec.crmId && l.code === contact.Code));
    const stored = readOnDisk(path.join(dataDir, 'siagh-sync', 'mappings.json')) as unknown as MappingFileV1;
    assert.equal(stored.mappings.contact[rec.crmId]?.siaghCode, String(contact.Code));
  });

  describe('rebuild on a PostgreSQL data store', () => {
    let server: PgServer;
    before(async function () {
      this.timeout(120_000);
      server = await PgServer.start();
    });
    after(async () => {
      await server?.close();
    });

    it('dry run stores nothing, apply stores the links as rows, a contradicting mapping is kept and reported, a second apply changes nothing', async () => {
      for (const x of sims.crm.identities()) sims.crm.deleteRecord(x.crmId);
      const url = await server.database();
      const pool = openPool({ connectionString: url }, () => undefined);
      try {
        // The world: two identities linked by refId, one by the scheme's customer number, one by nothing.
        const ca = sims.siagh.addContact({ Name: 'آرش کریمی', MobileNo: '09171234011', TowardType: false });
        const cb = sims.siagh.addContact({ Name: 'لیلا سعیدی', MobileNo: '09171234012', TowardType: false });
        const cc = sims.siagh.addContact({ Name: 'کاوه رضایی', MobileNo: '09171234013', TowardType: false });
        const other = sims.siagh.addContact({ Name: 'مخاطب دیگر پ', MobileNo: '09171234014', TowardType: false });
        const a = sims.crm.addPerson(person('pg-a', { refId: `siagh:${ca.Code}` }), { webhook: false });
        const b = sims.crm.addPerson(person('pg-b', { refId: `siagh:${cb.Code}` }), { webhook: false });
        const c = sims.crm.addPerson(person('pg-c', { customerNumber: `100-${cc.Code + 1000}` }), { webhook: false });
        sims.crm.addPerson(person('pg-d'), { webhook: false });
        // …and a mapping in the database that contradicts the CRM: b mapped to another contact.
        const seed = await PgMappingStore.open(pool);
        await seed.store({ entityType: 'contact', crmId: b.crmId, siaghCode: other.Code, source: 'manual' });

        const u = new URL(url);
        const pgPassword = decodeURIComponent(u.password);
        u.password = '';
        const cfg = configNodes(sims.siagh.url, sims.crm.url);
        const flow = [
          tab,
          ...cfg.nodes,
          { id: 'pgstore', type: 'sync-store', backend: 'postgres', dir: dataDir, pgUrl: u.toString(), pgTls: 'off' },
          n({ id: 'rb', type: 'sync-mapping', operation: 'rebuild', store: 'pgstore', crm: 'crm', siagh: 'siagh', cnPrefix: '100-', cnOffset: 1000, wires: [['rbOut']] }),
          n({ id: 'rbOut', type: 'helper' }),
          n({ id: 'catch', type: 'catch', scope: null, uncaught: false, wires: [['caught']] }),
          n({ id: 'caught', type: 'helper' }),
        ];
        await helper.load([...NODES(), nodeModule('sync-store')], flow, { ...cfg.credentials, pgstore: { pgPassword } });
        const io = { rbOut: collect(helper.getNode('rbOut')), caught: collect(helper.getNode('caught')) };
        const rows = async () =>
          (
            await pool.query<{ crm_id: string; siagh_code: string; source: string; synced_at: Date }>(
              "SELECT crm_id, siagh_code, source, synced_at FROM siagh_sync_mappings WHERE entity_type = 'contact' ORDER BY crm_id",
            )
          ).rows;
        const siaghSaves = sims.siagh.saveCount;
        const crmUpdates = count(sims.crm, UPDATE_RE);
        const want = [
          [a.crmId, ca.Code, 'refId'],
          [c.crmId, cc.Code, 'customerNumber'],
        ].sort((x, y) => (x[1] as number) - (y[1] as number));

        const dry = await rebuild(io, true);
        assert.deepEqual(
          dry.wouldLink.map((l: any) => [l.crmId, l.code, l.by]),
          want,
        );
        assert.deepEqual(
          dry.conflicts.map((x: any) => [x.crmId, x.kind, x.other]),
          [[b.crmId, 'crm-mapped-elsewhere', String(other.Code)]],
        );
        assert.equal(dry.unmatched.noKey, 1);
        assert.deepEqual(
          (await rows()).map((r) => [r.crm_id, r.siagh_code]),
          [[b.crmId, String(other.Code)]],
          'the dry run stored nothing',
        );

        const applied = await rebuild(io, false);
        assert.deepEqual(
          applied.linked.map((l: any) => [l.crmId, l.code, l.by]),
          want,
        );
        assert.equal(applied.conflicts.length, 1);
        const after = await rows();
        const byId = new Map(after.map((r) => [r.crm_id, r]));
        assert.equal(after.length, 3);
        assert.deepEqual([byId.get(a.crmId)?.siagh_code, byId.get(a.crmId)?.source], [String(ca.Code), 'rebuild']);
        assert.deepEqual([byId.get(c.crmId)?.siagh_code, byId.get(c.crmId)?.source], [String(cc.Code), 'rebuild']);
        assert.deepEqual([byId.get(b.crmId)?.siagh_code, byId.get(b.crmId)?.source], [String(other.Code), 'manual'], 'the contradicting mapping is kept');

        const again = await rebuild(io, false);
        assert.deepEqual(again.linked, []);
        assert.equal(again.counts.alreadyMapped, 2);
        assert.equal(again.conflicts.length, 1);
        assert.deepEqual(await rows(), after, 'nothing was written again');

        assert.equal(sims.siagh.saveCount, siaghSaves, 'nothing written to Siagh');
        assert.equal(count(sims.crm, UPDATE_RE), crmUpdates, 'nothing written to the CRM');
      } finally {
        await helper.unload();
        await pool.end().catch(() => undefined);
      }
    });
  });
});
