/**
 * The poller (lib/sync/poller.ts) against the CRM simulator over real HTTP, with its cursor in a
 * real mapping file: first run lists all, then only what changed; late-visible and equal-time
 * records within the overlap; records created with webhooks off; the cursor across a reopen of the
 * store; a failed listing leaves the cursor; scan mode; the fallback to scan when find is
 * unsupported; reset; full reconcile every N runs; pages that shift under the reader. Quotes and
 * invoices: their own cursors, paging until an empty page, the overlap window, a failed listing,
 * and a missing find (skipped with one warning; no scan stands in).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CrmClient, isFindUnsupported } from '../../../lib/crm/client';
import { SyncError } from '../../../lib/errors';
import { MappingStore } from '../../../lib/store/mapping-store';
import { readOnDisk } from '../../fixtures/store-helpers';
import { Poller, PollCursor, PollSource, formatCrmLocalTime, parseCrmLocalTime, readCursor } from '../../../lib/sync/poller';
import { CrmSim, CrmSimOptions } from '../../../sim/crm-sim';

const PERSON_FIND = 'POST /api/v2/crmobject/person/find';
const ORG_FIND = 'POST /api/v2/crmobject/organization/find';
const SEARCH = 'POST /api/v2/crmobject/identity/search';
const KEY = 'poll.cursor.test';

async function rejectsWith(p: Promise<unknown>, code: string): Promise<SyncError> {
  let caught: unknown;
  try {
    await p;
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof SyncError, `expected a SyncError ${code}, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  return caught;
}

describe('poller (CRM simulator, real mapping file)', function () {
  this.timeout(10000);
  let sim: CrmSim;
  let client: CrmClient;
  let dir: string;
  let file: string;
  let store: MappingStore;
  let persons: string[];
  let orgs: string[];

  async function setup(simOpts: CrmSimOptions = {}): Promise<void> {
    // The server caps pages at 3, below the poller's 5: listing must go on past short pages (docs/known-faults.md#paging).
    sim = new CrmSim({ users: [{ username: 'api', password: 'api-pass' }], maxPageSize: 3, ...simOpts });
    await sim.start();
    client = new CrmClient({ baseUrl: sim.url, username: 'api', password: 'api-pass', retries: 1, retryBaseMs: 1, retryMaxMs: 5, timeoutMs: 3000 });
    persons = ['مریم احمدی', 'علی رضایی', 'سارا محمدی', 'رضا کریمی'].map((nickName) => sim.addPerson({ nickName }, { webhook: false }).crmId);
    orgs = ['شرکت نمونه', 'بازرگانی پارس', 'صنایع البرز'].map((nickName) => sim.addOrganization({ nickName }, { webhook: false }).crmId);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'poller-test-'));
    file = path.join(dir, 'mappings.json');
    store = await MappingStore.open(file);
  }

  function poller(opts: Partial<ConstructorParameters<typeof Poller>[0]> = {}): Poller {
    return new Poller({ source: client, store, key: KEY, pageSize: 5, ...opts });
  }

  function ids(items: Array<{ crmId: string }>): string[] {
    return items.map((i) => i.crmId).sort();
  }

  afterEach(async () => {
    client?.close();
    await store?.close();
    await sim?.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('first run lists every identity with its kind and saves the newest (modifyDate, id) durably', async () => {
    await setup();
    const p = poller();
    const r = await p.run();
    assert.equal(r.mode, 'find');
    assert.equal(r.full, true);
    assert.deepEqual(ids(r.items), [...persons, ...orgs].sort());
    for (const it of r.items) assert.equal(it.kind, persons.includes(it.crmId) ? 'person' : 'organization');
    assert.equal(new Set(r.items.map((i) => i.crmId)).size, r.items.length, 'each id once');
    // 4 persons over pages of 3 → pages 0, 1 and the empty page 2; 3 organizations → pages 0 and 1.
    assert.equal(sim.count(PERSON_FIND), 3);
    assert.equal(sim.count(ORG_FIND), 2);
    assert.equal(sim.count(SEARCH), 0);
    const newest = sim.record(orgs[2])!;
    assert.equal(r.cursor?.modifyDate, newest.modifyDate);
    assert.equal(r.cursor?.id, orgs[2]);
    assert.equal(r.advanced, true);
    // On disk, not only in memory.
    const onDisk = readOnDisk(file).meta[KEY] as PollCursor;
    assert.equal(onDisk.modifyDate, newest.modifyDate);
    assert.deepEqual(readCursor(onDisk), p.cursor());

    const again = await p.run();
    assert.deepEqual(again.items, [], 'nothing changed: nothing listed (the overlap re-reads are remembered)');
    assert.equal(again.full, false);
    assert.ok(again.skipped >= 1, 'the overlap window was read again');
    assert.equal(again.cursor?.modifyDate, r.cursor?.modifyDate);
  });

  it('after a change in the CRM the next run lists exactly the changed identity', async () => {
    await setup();
    const p = poller();
    await p.run();
    const before = p.cursor()!;
    const changed = sim.updateRecord(persons[1], { email: 'ali@example.ir' }, { webhook: false });
    const r = await p.run();
    assert.deepEqual(r.items.map((i) => [i.crmId, i.kind]), [[persons[1], 'person']]);
    assert.equal(r.items[0].modifyDate, changed.modifyDate);
    assert.equal(r.cursor?.modifyDate, changed.modifyDate);
    assert.equal(r.cursor?.id, persons[1]);
    assert.ok(parseCrmLocalTime(r.cursor!.modifyDate)! > parseCrmLocalTime(before.modifyDate)!);

    const o = sim.updateRecord(orgs[0], { website: 'https://pars.example' }, { webhook: false });
    const p2 = sim.updateRecord(persons[3], { email: 'reza@example.ir' }, { webhook: false });
    const r2 = await p.run();
    assert.deepEqual(r2.items.map((i) => i.crmId), [o.crmId, p2.crmId], 'oldest change first');
    assert.deepEqual(r2.items.map((i) => i.kind), ['organization', 'person']);
  });

  it('an identity created while webhooks are off is picked up by the next run', async () => {
    await setup({ webhookUrl: 'http://127.0.0.1:9/never' });
    const p = poller();
    await p.run();
    sim.setWebhooks({ enabled: false });
    const fresh = sim.addPerson({ nickName: 'نگار موسوی', customerNumber: '100-9500' });
    await sim.flushWebhooks();
    assert.equal(sim.webhookLog().length, 0, 'no webhook was sent');
    const r = await p.run();
    assert.deepEqual(r.items.map((i) => [i.crmId, i.kind]), [[fresh.crmId, 'person']]);
  });

  it('the overlap window catches late-visible records and records sharing the cursor time; older ones wait for a full reconcile', async () => {
    await setup();
    const p = poller({ overlapMs: 120_000, fullEvery: 2 });
    const first = await p.run();
    const cursorMs = parseCrmLocalTime(first.cursor!.modifyDate)!;
    // Records that became visible only now although their modifyDate is older (a long transaction).
    const tie = sim.addPerson({ nickName: 'هم‌زمان', modifyDate: first.cursor!.modifyDate }, { webhook: false });
    const late = sim.addOrganization({ nickName: 'دیررس', modifyDate: formatCrmLocalTime(cursorMs - 30_000) }, { webhook: false });
    const old = sim.addPerson({ nickName: 'خیلی قدیمی', modifyDate: formatCrmLocalTime(cursorMs - 600_000) }, { webhook: false });
    const r = await p.run();
    assert.deepEqual(ids(r.items), [tie.crmId, late.crmId].sort());
    assert.ok(!r.items.some((i) => i.crmId === old.crmId), 'outside the overlap window');
    assert.equal(r.cursor?.modifyDate, first.cursor!.modifyDate, 'the cursor time stays');
    assert.equal(r.cursor?.id, [first.cursor!.id, tie.crmId].sort()[1], 'ties are ordered by id');
    assert.equal(r.cursor?.runs, 1);
    // With fullEvery 2, every second run after a full one is full again: the old record is listed too.
    const full = await p.run();
    assert.equal(full.full, true);
    assert.ok(full.items.some((i) => i.crmId === old.crmId));
    assert.equal(full.items.length, persons.length + orgs.length + 3);
    assert.equal(full.cursor?.runs, 0);
  });

  it('the cursor survives closing and reopening the store (a new process)', async () => {
    await setup();
    await poller().run();
    const saved = store.getMeta(KEY);
    await store.close();
    store = await MappingStore.open(file);
    assert.deepEqual(store.getMeta(KEY), saved);
    const changed = sim.updateRecord(orgs[1], { description: 'تغییر' }, { webhook: false });
    // The new process's first run lists the last run's window again (here a full one): what the
    // dead process listed but may not have synced comes again, the change among it.
    const p = poller();
    const r = await p.run();
    assert.equal(r.relisted, true);
    assert.equal(r.full, true);
    assert.deepEqual(ids(r.items), [...persons, ...orgs].sort());
    // From then on, only changes.
    const changed2 = sim.updateRecord(persons[2], { description: 'تغییر دوم' }, { webhook: false });
    const r2 = await p.run();
    assert.equal(r2.full, false);
    assert.equal(r2.relisted, false);
    assert.deepEqual(r2.items.map((i) => i.crmId), [changed2.crmId]);
    assert.ok(changed.crmId);
  });

  it('a process killed after a run listed (its records not yet synced) → the next process lists them again, not more', async () => {
    await setup();
    // No overlap window, so that only the changes are newer than the listing starts.
    const p = poller({ overlapMs: 0 });
    await p.run();
    await p.run();
    // Run 3 lists two changes; the process dies before they reach Siagh.
    const a = sim.updateRecord(persons[0], { email: 'a@example.ir' }, { webhook: false });
    const b = sim.updateRecord(orgs[2], { website: 'https://b.example' }, { webhook: false });
    const lost = await p.run();
    assert.deepEqual(ids(lost.items), [a.crmId, b.crmId].sort());
    const saved = readCursor(store.getMeta(KEY))!;
    assert.equal(typeof saved.from, 'string', 'an incremental run saves where it started');
    assert.equal(typeof saved.before, 'string');
    await store.close();
    store = await MappingStore.open(file);
    // The new process: both records again, without a full listing and without the older ones.
    const r = await poller({ overlapMs: 0 }).run();
    assert.equal(r.relisted, true);
    assert.equal(r.full, false);
    assert.deepEqual(ids(r.items), [a.crmId, b.crmId].sort());
    assert.equal(r.advanced, false, 'nothing newer: the cursor stays where it was');
  });

  it('a listing that fails (5xx, retries exhausted) leaves the cursor; the next run reads the changes', async () => {
    await setup();
    const p = poller();
    await p.run();
    const before = store.getMeta(KEY);
    const changed = sim.updateRecord(persons[0], { email: 'maryam@example.ir' }, { webhook: false });
    sim.faults.add({ kind: '5xx', path: '/person/find', times: 2 });
    const err = await rejectsWith(p.run(), 'HTTP_5XX');
    assert.equal(isFindUnsupported(err), false);
    assert.deepEqual(store.getMeta(KEY), before, 'cursor unchanged');
    assert.equal(sim.count(SEARCH), 0, 'a server error is not "unsupported": no scan');
    // A failure after the persons were listed (organization/find) leaves it as well.
    sim.faults.add({ kind: '5xx', path: '/organization/find', times: 2 });
    await rejectsWith(p.run(), 'HTTP_5XX');
    assert.deepEqual(store.getMeta(KEY), before, 'cursor unchanged');
    assert.equal(p.running, false);
    const r = await p.run();
    assert.deepEqual(r.items.map((i) => i.crmId), [changed.crmId]);
    assert.equal(r.cursor?.modifyDate, changed.modifyDate);
  });

  it('scan mode lists every identity with its kind and writes no cursor', async () => {
    await setup();
    const r = await poller({ mode: 'scan' }).run();
    assert.equal(r.mode, 'scan');
    assert.equal(r.full, true);
    assert.deepEqual(ids(r.items), [...persons, ...orgs].sort());
    for (const it of r.items) assert.equal(it.kind, persons.includes(it.crmId) ? 'person' : 'organization');
    assert.equal(sim.count(PERSON_FIND) + sim.count(ORG_FIND), 0);
    // persons: pages 0, 1, empty 2; organizations: page 0, empty 1.
    assert.equal(sim.count(SEARCH), 5);
    assert.equal(store.getMeta(KEY), undefined);
  });

  it('find endpoint missing (404) → this run scans instead, with a warning; the cursor is not touched', async () => {
    await setup();
    sim.faults.add({ kind: '5xx', status: 404, path: '/person/find' });
    const r = await poller().run();
    assert.equal(r.fellBack, true);
    assert.equal(r.mode, 'scan');
    assert.deepEqual(ids(r.items), [...persons, ...orgs].sort());
    assert.ok(r.items.every((i) => i.kind));
    assert.equal(r.warnings.length, 1);
    assert.match(r.warnings[0], /find/);
    assert.match(r.warnings[0], /scan mode/);
    assert.equal(store.getMeta(KEY), undefined);
  });

  it('find refusing the modifyDate query (HTTP 400) → scan fallback; the cursor of the full find stays', async () => {
    await setup({ findFields: ['crmId'] });
    const p = poller();
    const first = await p.run(); // no query: a plain find works
    assert.equal(first.fellBack, false);
    const saved = store.getMeta(KEY);
    sim.updateRecord(persons[2], { email: 'sara@example.ir' }, { webhook: false });
    const r = await p.run();
    assert.equal(r.fellBack, true);
    assert.equal(r.items.length, persons.length + orgs.length, 'every identity, the changed one included');
    assert.match(r.warnings[0], /modifyDate/);
    assert.deepEqual(store.getMeta(KEY), saved);
  });

  it('reset clears the cursor durably; the next run is a full reconcile', async () => {
    await setup();
    const p = poller();
    await p.run();
    assert.ok(store.getMeta(KEY));
    await p.reset();
    assert.equal(store.getMeta(KEY), undefined);
    const r = await p.run();
    assert.equal(r.full, true);
    assert.equal(r.items.length, persons.length + orgs.length);
  });

  it('a second run while one is going is refused; a reset during a run wins over its cursor', async () => {
    await setup();
    const p = poller();
    sim.faults.latencyMs = 80;
    const first = p.run();
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(p.running, true);
    await rejectsWith(p.run(), 'MAPPING_BUSY');
    await p.reset();
    const r = await first;
    assert.equal(r.items.length, persons.length + orgs.length);
    assert.equal(r.advanced, false);
    assert.equal(store.getMeta(KEY), undefined, 'the reset is not undone by the run that was going on');
    assert.equal(sim.count(PERSON_FIND), 3, 'one run only');
  });

  it('pages that shift while read (a record deleted between pages) → not advanced, warned; the next run finds the skipped record', async () => {
    await setup();
    const p0 = poller();
    await p0.run();
    const before = store.getMeta(KEY);
    // Four persons change; one is deleted after the first page was read, shifting the rest forward.
    for (const id of persons) sim.updateRecord(id, { description: 'دسته‌ای' }, { webhook: false });
    let pagesRead = 0;
    const shifting: PollSource = {
      async *findIdentities(kind, opts) {
        for await (const page of client.findIdentities(kind, opts)) {
          yield page;
          if (kind === 'person' && ++pagesRead === 1) sim.deleteRecord(persons[0]);
        }
      },
      searchIdentities: (opts) => client.searchIdentities(opts),
    };
    const r = await poller({ source: shifting }).run();
    assert.ok(!r.items.some((i) => i.crmId === persons[3]), 'the shifted record was skipped by the pages');
    assert.equal(r.advanced, false);
    assert.match(r.warnings.join(' '), /not advanced/);
    assert.deepEqual(store.getMeta(KEY), before);
    const next = await poller().run();
    assert.ok(next.items.some((i) => i.crmId === persons[3]), 'read again by the next run');
  });

  it('scan on a CRM that ignores identityType: each id once, without a kind, and a warning', async () => {
    await setup();
    const ignoring: PollSource = {
      findIdentities: (kind, opts) => client.findIdentities(kind, opts),
      searchIdentities: (opts) => client.searchIdentities({ ...opts, identityType: undefined }),
    };
    const r = await poller({ mode: 'scan', source: ignoring }).run();
    assert.deepEqual(ids(r.items), [...persons, ...orgs].sort());
    assert.ok(r.items.every((i) => i.kind === undefined));
    assert.match(r.warnings[0], /ignore identityType/);
  });

  describe('quotes and invoices (quote/sales/find, invoice/sales/find)', () => {
    const QUOTE_FIND = 'POST /api/v2/crmobject/quote/sales/find';
    const INVOICE_FIND = 'POST /api/v2/crmobject/invoice/sales/find';
    let quotes: string[];
    let invoices: string[];

    async function setupDocs(simOpts: CrmSimOptions = {}): Promise<void> {
      await setup(simOpts);
      quotes = [0, 1, 2, 3].map((i) => sim.addQuote({ identityId: persons[i], description: `پیش‌فاکتور ${i}` }, { webhook: false }).crmId);
      invoices = [0, 1].map((i) => sim.addInvoice({ identityId: orgs[i] }, { webhook: false }).crmId);
    }

    it('the first run lists every quote, paged until an empty page, under its own cursor; then only the changed ones', async () => {
      await setupDocs();
      sim.resetCounts();
      const p = poller({ entity: 'quote', key: `${KEY}:quote` });
      const r = await p.run();
      assert.equal(r.entity, 'quote');
      assert.equal(r.full, true);
      assert.deepEqual(ids(r.items), [...quotes].sort());
      assert.ok(r.items.every((i) => i.entity === 'quote' && i.kind === undefined));
      // 4 quotes over pages of 3 (the server's cap, below the asked 5) → pages 0, 1 and the empty page 2.
      assert.equal(sim.count(QUOTE_FIND), 3);
      assert.equal(sim.count(PERSON_FIND) + sim.count(ORG_FIND) + sim.count(SEARCH) + sim.count(INVOICE_FIND), 0, 'quotes only');
      assert.equal(r.cursor?.id, quotes[3]);
      assert.equal(r.cursor?.modifyDate, sim.record(quotes[3])!.modifyDate);
      const onDisk = readOnDisk(file).meta as Record<string, any>;
      assert.equal(onDisk[`${KEY}:quote`].id, quotes[3], 'durable, under its own key');
      assert.equal(onDisk[KEY], undefined, 'the identity cursor is another one');

      assert.deepEqual((await p.run()).items, [], 'nothing changed');
      const changed = sim.updateRecord(quotes[1], { description: 'تخفیف جدید' }, { webhook: false });
      const fresh = sim.addQuote({ identityId: orgs[0] }, { webhook: false });
      sim.updateRecord(invoices[0], { description: 'not a quote' }, { webhook: false });
      const r2 = await p.run();
      assert.deepEqual(r2.items.map((i) => i.crmId), [changed.crmId, fresh.crmId], 'oldest change first, no invoice');
      assert.equal(r2.items[0].modifyDate, changed.modifyDate);
      assert.equal(r2.full, false);
      assert.equal(r2.cursor?.id, fresh.crmId);
    });

    it('invoices: the overlap window catches late-visible and equal-time invoices; the edge is not listed twice; the identity cursor is untouched', async () => {
      await setupDocs();
      const idp = poller();
      await idp.run();
      const idCursor = store.getMeta(KEY);
      const p = poller({ entity: 'invoice', key: `${KEY}:invoice`, overlapMs: 120_000 });
      const first = await p.run();
      assert.deepEqual(ids(first.items), [...invoices].sort());
      const cursorMs = parseCrmLocalTime(first.cursor!.modifyDate)!;
      const tie = sim.addInvoice({ identityId: persons[0], modifyDate: first.cursor!.modifyDate }, { webhook: false });
      const late = sim.addInvoice({ identityId: persons[1], modifyDate: formatCrmLocalTime(cursorMs - 30_000) }, { webhook: false });
      const old = sim.addInvoice({ identityId: persons[2], modifyDate: formatCrmLocalTime(cursorMs - 600_000) }, { webhook: false });
      const r = await p.run();
      assert.deepEqual(ids(r.items), [tie.crmId, late.crmId].sort());
      assert.ok(!r.items.some((i) => i.crmId === old.crmId), 'outside the overlap window');
      assert.ok(r.skipped >= 1, 'the invoices the first run sent were read again and skipped');
      assert.equal(r.cursor?.modifyDate, first.cursor!.modifyDate);
      assert.deepEqual((await p.run()).items, [], 'the edge is remembered');
      assert.deepEqual(store.getMeta(KEY), idCursor, 'the identity cursor did not move');
      assert.deepEqual((await idp.run()).items, [], 'and identities list nothing');
    });

    it('a failed quote listing (5xx) leaves the quote cursor; the next run lists the change', async () => {
      await setupDocs();
      const p = poller({ entity: 'quote', key: `${KEY}:quote` });
      await p.run();
      const before = store.getMeta(`${KEY}:quote`);
      const changed = sim.updateRecord(quotes[0], { description: 'x' }, { webhook: false });
      sim.faults.add({ kind: '5xx', path: '/quote/sales/find', times: 2 });
      const err = await rejectsWith(p.run(), 'HTTP_5XX');
      assert.equal(isFindUnsupported(err), false);
      assert.deepEqual(store.getMeta(`${KEY}:quote`), before);
      assert.deepEqual((await p.run()).items.map((i) => i.crmId), [changed.crmId]);
    });

    it('quote/sales/find missing (404) → no quotes, the cursor untouched, one warning only; invoices are listed as usual', async () => {
      await setupDocs();
      const qp = poller({ entity: 'quote', key: `${KEY}:quote` });
      await qp.run();
      const before = store.getMeta(`${KEY}:quote`);
      sim.faults.add({ kind: '5xx', status: 404, path: '/quote/sales/find', times: 100 });
      sim.updateRecord(quotes[2], { description: 'missed webhook' }, { webhook: false });
      const r = await qp.run();
      assert.equal(r.unsupported, true);
      assert.deepEqual(r.items, []);
      assert.equal(r.advanced, false);
      assert.equal(r.warnings.length, 1);
      assert.match(r.warnings[0], /quote\/sales\/find/);
      assert.match(r.warnings[0], /skips quotes/);
      assert.equal(sim.count(SEARCH), 0, 'no identity scan stands in for quotes');
      assert.deepEqual(store.getMeta(`${KEY}:quote`), before);
      const again = await qp.run();
      assert.equal(again.unsupported, true);
      assert.deepEqual(again.warnings, [], 'said once');

      const ip = poller({ entity: 'invoice', key: `${KEY}:invoice` });
      const inv = await ip.run();
      assert.equal(inv.unsupported, undefined);
      assert.deepEqual(ids(inv.items), [...invoices].sort());

      // The find comes back (a CRM upgrade): the quote missed meanwhile is listed.
      sim.faults.clear();
      const back = await qp.run();
      assert.equal(back.unsupported, undefined);
      assert.deepEqual(back.items.map((i) => i.crmId), [quotes[2]]);
    });

    it('a CRM without any find: no quote or invoice poller fails; the identity poller scans', async () => {
      await setupDocs();
      sim.faults.add({ kind: '5xx', status: 404, path: '/find', times: 3 });
      const results = await Promise.all([poller(), poller({ entity: 'quote', key: `${KEY}:quote` }), poller({ entity: 'invoice', key: `${KEY}:invoice` })].map((p) => p.run()));
      assert.deepEqual(results.map((r) => [r.entity, r.fellBack, r.unsupported === true, r.items.length]), [
        ['identity', true, false, persons.length + orgs.length],
        ['quote', false, true, 0],
        ['invoice', false, true, 0],
      ]);
    });

    it('a source without findDocuments cannot make a quote or invoice poller', () => {
      const identitiesOnly: PollSource = { findIdentities: (k, o) => client.findIdentities(k, o), searchIdentities: (o) => client.searchIdentities(o) };
      assert.throws(() => new Poller({ source: identitiesOnly, store: { getMeta: () => undefined, setMeta: async () => undefined }, key: 'k', entity: 'invoice' }), /findDocuments/);
    });
  });

  it('CRM dates: wall-clock parsing and formatting, 7 fractional digits, invalid texts', () => {
    const ms = parseCrmLocalTime('2025-12-21T14:06:17.173')!;
    assert.equal(formatCrmLocalTime(ms), '2025-12-21T14:06:17.173');
    assert.equal(formatCrmLocalTime(ms - 120_000), '2025-12-21T14:04:17.173');
    assert.equal(parseCrmLocalTime('2025-12-21T14:06:17.1739999'), ms, 'ticks are cut to ms');
    assert.equal(parseCrmLocalTime('2025-12-21T14:06:17.1739999+03:30'), ms, 'an offset does not shift the wall clock');
    assert.equal(parseCrmLocalTime('2025-12-21T14:06:17'), ms - 173);
    assert.equal(parseCrmLocalTime('2025-02-31T00:00:00'), undefined);
    assert.equal(parseCrmLocalTime('yesterday'), undefined);
    assert.equal(parseCrmLocalTime(undefined), undefined);
    assert.equal(readCursor({ version: 1, modifyDate: 'garbage', id: 'x' }), undefined);
  });
});
