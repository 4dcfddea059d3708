/**
 * The operator's console, below the editor: the per-party history an OpLog keeps (built from the
 * log file at start, kept by record(), bounded), the search with Persian spelling variants
 * (ي/ی, ك/ک, ZWNJ, Persian digits), the failures grouped by reason with paging, and answers that
 * come from memory (the log file may be gone meanwhile).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as consoleView from '../../../lib/console/console';
import { describeOperation } from '../../../lib/oplog/entry';
import { OpHistory } from '../../../lib/oplog/history';
import { OpLog } from '../../../lib/oplog/oplog';
import { FileMappingBackend } from '../../../lib/store/file-mapping-backend';
import { MappingStore } from '../../../lib/store/mapping-store';
import { openPool } from '../../../lib/pg/db';
import { PgMappingStore } from '../../../lib/store/pg-mapping-store';
import { PgServer } from '../../../testkit/postgres';

const A = '3f2a1b4c-5d6e-4f70-8a9b-0c1d2e3f4a5b';
const B = '4a2a1b4c-5d6e-4f70-8a9b-0c1d2e3f4a5c';
const C = '5b2a1b4c-5d6e-4f70-8a9b-0c1d2e3f4a5d';
const D = '6c2a1b4c-5d6e-4f70-8a9b-0c1d2e3f4a5e';

function tmp(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'siagh-sync-console-'));
}

/** A synced CRM person as sync-log sees it at the end of the pipeline. */
function synced(crmId: string, person: Record<string, unknown>, trace: Record<string, unknown> = {}) {
  return describeOperation({
    trace: { traceId: `t-${crmId.slice(0, 4)}`, trigger: 'webhook', entity: 'person', crmId, action: 'created', durationMs: 120, ...trace },
    payload: { crmId, kind: 'person', ...person },
  });
}

function failedOp(crmId: string, code: string, message = 'm', extra: Record<string, unknown> = {}) {
  return describeOperation({ trace: { traceId: 't', trigger: 'webhook', entity: 'person', crmId, action: 'failed', error: { code, message } }, ...extra });
}

describe('console: OpHistory', () => {
  it('finds a party by any Persian spelling of its name, by Persian-digit mobile and national code, by ids', () => {
    const h = new OpHistory();
    // Arabic kaf and yeh, a ZWNJ between the two parts of the first name
    const op = synced(A, { nickName: 'علي‌رضا كريمي', phoneContacts: [{ phoneNumber: '021-88776655' }, { phoneNumber: '0912 123 4567' }], nationalCode: '0012345679', customerNumber: '1001' }, { siaghCode: '8301' });
    h.add(op.line, op.party);
    const other = synced(B, { nickName: 'مریم احمدی', phoneContacts: [{ phoneNumber: '09350000000' }] });
    h.add(other.line, other.party);

    for (const q of ['علیرضا کریمی', 'علی رضا کریمی', 'علي‌رضا', 'كريمي', 'کریمی', ' ﻋﻠﻲ ', '۰۹۱۲۱۲۳۴۵۶۷', '+98 912 123 4567', '۰۰۱۲۳۴۵۶۷۹', A.toUpperCase(), '۸۳۰۱', '1001']) {
      const found = h.findParties(q).map((p) => p.crmId);
      assert.deepEqual(found, [A], `"${q}" finds A only, got ${JSON.stringify(found)}`);
    }
    const p = h.party(A)!;
    assert.equal(p.name, 'علي‌رضا كريمي', 'shown as the CRM spells it');
    assert.equal(p.mobile, '0912 123 4567', 'the mobile, not the landline');
    assert.equal(p.siaghCode, '8301');
    assert.deepEqual(h.findParties('احمدی').map((x) => x.crmId), [B]);
    assert.deepEqual(h.findParties('ناشناس'), []);
    assert.deepEqual(h.findParties('ی'), [], 'one letter matches nothing');
  });

  it('stays bounded: lines past maxLines leave the ring and their keys, the least recently seen parties go first', () => {
    const h = new OpHistory({ maxLines: 5, maxParties: 2 });
    for (let i = 0; i < 4; i++) h.add(synced(A, { nickName: 'الف' }, { durationMs: i }).line);
    for (let i = 0; i < 4; i++) h.add(synced(B, { nickName: 'ب' }, { durationMs: 10 + i }).line);
    assert.equal(h.size, 5);
    const a = h.timeline([`crm:${A}`]);
    assert.equal(a.total, 1, 'three of A\u2019s four lines fell out');
    assert.equal(a.items[0].durationMs, 3);
    const b = h.timeline([`crm:${B}`], { limit: 2 });
    assert.equal(b.total, 4);
    assert.deepEqual(b.items.map((l) => l.durationMs), [13, 12], 'newest first, one page');
    assert.deepEqual(h.timeline([`crm:${B}`], { offset: 2, limit: 2 }).items.map((l) => l.durationMs), [11, 10]);
    h.add(synced(C, { nickName: 'ج' }).line);
    assert.equal(h.partyCount, 3, 'one over the bound until the next trim');
    h.add(synced(D, { nickName: 'د' }).line);
    assert.equal(h.partyCount, 2, 'trimmed to the bound');
    assert.equal(h.party(A), undefined, 'A was seen least recently');
    assert.equal(h.party(B), undefined);
    assert.ok(h.party(D));
    // Keys whose lines all left are gone, not kept as empty lists.
    for (let i = 0; i < 5; i++) h.add(synced(C, { nickName: 'ج' }).line);
    assert.equal(h.timeline([`crm:${B}`]).total, 0);
    assert.equal(h.timeline([`crm:${D}`]).total, 0);
    assert.equal((h as unknown as { byKey: Map<string, unknown> }).byKey.size, 1);
  });

  it('by default holds the last 100,000 lines and about 50,000 parties, however many come', () => {
    const h = new OpHistory();
    const id = (i: number) => `${i.toString(16).padStart(8, '0')}-5d6e-4f70-8a9b-0c1d2e3f4a5b`;
    const t0 = Date.now();
    for (let i = 0; i < 130_000; i++) h.add({ time: new Date(t0 + i).toISOString(), trigger: 'poll', status: 'ok', entity: 'person', crmId: id(i % 70_000), action: 'unchanged', customerNumber: String(i % 70_000) });
    assert.equal(h.size, 100_000);
    assert.ok(h.partyCount >= 50_000 && h.partyCount <= 55_000, `${h.partyCount} parties`);
    const keys = (h as unknown as { byKey: Map<string, unknown> }).byKey;
    assert.ok(keys.size <= 2 * 70_000, `${keys.size} keys`);
    assert.equal(h.timeline([`crm:${id(0)}`]).total, 1, 'line 0 left; line 70,000 is held');
    assert.equal(h.timeline([`crm:${id(40_000)}`]).total, 2, 'lines 40,000 and 110,000');
  });

  it('keeps the last success and failure per pipeline', () => {
    const h = new OpHistory();
    h.add(synced(A, {}, { trigger: 'poll' }).line);
    h.add(failedOp(B, 'HTTP_5XX').line);
    h.add(synced(C, {}, { trigger: 'webhook' }).line);
    const last = h.lastPerPipeline();
    assert.deepEqual(Object.keys(last), ['poll', 'webhook']);
    assert.equal(last.poll.ok?.crmId, A);
    assert.equal(last.poll.failed, undefined);
    assert.equal(last.webhook.ok?.crmId, C);
    assert.equal(last.webhook.failed?.error?.code, 'HTTP_5XX');
  });

  it('the log line carries the name and the mobile and national-code keys of an identity, and the customer of a document', () => {
    const op = synced(A, { firstName: 'رضا', lastName: 'کریمی', phoneContacts: [{ phoneNumber: '۰۹۱۲ ۱۲۳ ۴۵۶۷' }], nationalCode: '12345679', email: 'reza@example.ir' });
    assert.deepEqual(op.party, { name: 'رضا کریمی', mobile: '۰۹۱۲ ۱۲۳ ۴۵۶۷', nationalCode: '12345679' });
    const line = JSON.parse(JSON.stringify(op.line));
    assert.equal(line.name, 'رضا کریمی');
    assert.equal(line.mobileKey, '+989121234567', 'the comparison key, not the text as typed');
    assert.equal(line.nationalKey, '0012345679');
    assert.ok(!JSON.stringify(line).includes('example.ir'), 'nothing else of the record');

    const quote = describeOperation({
      trace: { traceId: 'tq', trigger: 'webhook', entity: 'quote', crmId: C, documentNumber: 'Q-17', action: 'created' },
      payload: { crmId: C, docKind: 'quote', identityId: A.toUpperCase(), nickName: 'not a party' },
    });
    assert.equal(quote.line.customerId, A, 'the customer’s CRM id, lower case');
    assert.equal(quote.line.name, undefined, 'a document carries no party facts');
    assert.equal(quote.party, undefined);
    // An identity row's identityId is its own id, not a customer.
    assert.equal(synced(B, { identityId: B }).line.customerId, undefined);
  });

  it('lists a quote’s and an invoice’s lines in their customer’s timeline', () => {
    const h = new OpHistory();
    const person = synced(A, { nickName: 'مریم کاظمی' });
    h.add(person.line, person.party);
    for (const [id, kind, n] of [[C, 'quote', 'Q-1'], [D, 'invoice', 'I-9']] as const) {
      const doc = describeOperation({ trace: { traceId: 'td', trigger: 'poll', entity: kind, crmId: id, documentNumber: n, siaghCode: '501', action: 'created' }, payload: { crmId: id, docKind: kind, identityId: A } });
      h.add(doc.line, doc.party);
    }
    h.add(synced(B, { nickName: 'دیگری' }).line);
    const t = h.timeline([`crm:${A}`]);
    assert.deepEqual(t.items.map((l) => [l.crmId, l.entity]), [[D, 'invoice'], [C, 'quote'], [A, 'person']], 'newest first');
    assert.equal(h.timeline([`crm:${C}`]).total, 1, 'the quote’s own timeline');
    assert.equal(h.findParties('کاظمی')[0].crmId, A, 'the customer stays the party found by its name');
  });
});

describe('console: answers from an OpLog', () => {
  const opened: OpLog[] = [];
  const stores: MappingStore[] = [];
  afterEach(async () => {
    for (const l of opened.splice(0)) await l.release();
    for (const s of stores.splice(0)) await s.close();
  });

  it('builds the history from the log file at start, then answers from memory even with the file gone', async () => {
    const dir = tmp();
    const first = await OpLog.acquire(dir, { flushMs: 0 });
    first.record(synced(A, { nickName: 'علی کریمی' }, { siaghCode: '8301', customerNumber: '1001' }));
    first.record(failedOp(A, 'HTTP_5XX', 'Siagh answered 503'));
    await first.release();

    const log = await OpLog.acquire(dir, { flushMs: 60_000 });
    opened.push(log);
    // Lines from the file: found by id and customer number.
    let r = (await consoleView.search({ log }, A));
    assert.equal(r.hits.length, 1);
    assert.deepEqual(r.hits[0].timeline.items.map((l) => l.status), ['failed', 'ok'], 'newest first');
    assert.equal(r.hits[0].timeline.items[0].error?.message, 'Siagh answered 503');
    assert.equal(r.hits[0].timeline.items[1].durationMs, 120);
    assert.deepEqual((await consoleView.search({ log }, '۱۰۰۱')).hits.map((h) => h.crmId), [A], 'customer number in Persian digits');
    assert.equal((await consoleView.search({ log }, 'کریمی')).hits[0]?.name, 'علی کریمی', 'the name, from the file');

    // A new sync brings a new spelling; the file is removed: answers do not need it.
    log.record(synced(A, { nickName: 'علي كريمي' }, { action: 'updated' }));
    fs.rmSync(path.join(dir, 'sync-log.jsonl'), { force: true });
    r = (await consoleView.search({ log }, 'علی کریمی'));
    assert.equal(r.hits.length, 1);
    assert.equal(r.hits[0].name, 'علي كريمي');
    assert.deepEqual(r.hits[0].timeline.items.map((l) => l.action), ['updated', 'failed', 'created']);
    assert.equal(r.hits[0].timeline.total, 3);
    const page2 = (await consoleView.search({ log }, A, { offset: 1, limit: 1 })).hits[0].timeline;
    assert.deepEqual([page2.total, page2.offset, page2.items.map((l) => l.action)], [3, 1, ['failed']]);

    const now = await consoleView.now({ log }, { minutes: 30 });
    assert.equal(now.perMinute.length, 30);
    const minute = now.perMinute.at(-1)!;
    assert.deepEqual([minute.ok, minute.failed], [2, 1], 'the last minute: two successes, one failure');
    assert.equal(now.lastPerPipeline.webhook.ok?.action, 'updated');
    assert.equal(now.lastPerPipeline.webhook.failed?.error?.code, 'HTTP_5XX');
    assert.equal(now.history.lines, 3);
    assert.equal(now.queue, undefined, 'no queue open for this folder');
  });

  it('after a restart, finds a customer synced before it by a Persian spelling of the name, by mobile and national code, with its quote', async () => {
    const dir = tmp();
    // A log line written before the party fields existed: it still loads, found by its ids.
    const old = { time: new Date(Date.now() - 60_000).toISOString(), trigger: 'poll', status: 'ok', entity: 'person', crmId: B, customerNumber: '2002', action: 'unchanged' };
    fs.writeFileSync(path.join(dir, 'sync-log.jsonl'), JSON.stringify(old) + '\n');
    const before = await OpLog.acquire(dir, { flushMs: 0 });
    // Arabic yeh and kaf, a ZWNJ: as the CRM holds the name.
    before.record(synced(A, { nickName: 'علي‌رضا كريمي', phoneContacts: [{ phoneNumber: '+98 (912) 333-4455' }], nationalCode: '۰۰۱۲۳۴۵۶۷۹' }, { siaghCode: '8301', customerNumber: '1001' }));
    before.record(describeOperation({ trace: { traceId: 'tq', trigger: 'webhook', entity: 'quote', crmId: C, documentNumber: 'Q-17', siaghCode: '77', action: 'created' }, payload: { crmId: C, docKind: 'quote', identityId: A } }));
    await before.release(); // "Node-RED stops": the log is on disk, the memory gone

    const log = await OpLog.acquire(dir, { flushMs: 60_000 });
    opened.push(log);
    for (const q of ['علیرضا کریمی', 'علی رضا', 'کریمی', '۰۹۱۲۳۳۳۴۴۵۵', '0912 333 4455', '0012345679']) {
      const r = (await consoleView.search({ log }, q));
      assert.deepEqual(r.hits.map((h) => h.crmId), [A], `"${q}" finds A after the restart, got ${JSON.stringify(r.hits.map((h) => h.crmId))}`);
    }
    const hit = (await consoleView.search({ log }, 'علیرضا کریمی')).hits[0];
    assert.equal(hit.name, 'علي‌رضا كريمي', 'shown as the CRM spells it');
    assert.equal(hit.mobile, '09123334455', 'the mobile, in its local form');
    assert.equal(hit.nationalCode, '0012345679');
    assert.deepEqual(hit.timeline.items.map((l) => [l.crmId, l.entity, l.documentNumber]), [[C, 'quote', 'Q-17'], [A, 'person', undefined]], 'its quote first (newest)');
    assert.deepEqual((await consoleView.search({ log }, B)).hits.map((h) => [h.crmId, h.name, h.timeline.total]), [[B, undefined, 1]], 'the old line');
    assert.deepEqual((await consoleView.search({ log }, '2002')).hits.map((h) => h.crmId), [B]);
  });

  it('groups failures by reason (review items first) and pages a group; a success takes its entry out', async () => {
    const dir = tmp();
    const log = await OpLog.acquire(dir, { flushMs: 60_000 });
    opened.push(log);
    const ids = Array.from({ length: 5 }, (_, i) => `${String(i + 1).repeat(8)}-5d6e-4f70-8a9b-0c1d2e3f4a5b`);
    ids.forEach((id, i) => log.record(failedOp(id, 'HTTP_5XX', `down ${i}`), Date.now() + i));
    log.record(failedOp(A, 'LINK_NEEDS_REVIEW', 'same mobile', { review: { code: 'LINK_NEEDS_REVIEW', crm: { name: 'شرکت' }, siagh: { code: 8301, name: 'رضا' }, matchedBy: 'mobile' } }));
    log.record(synced(B, { nickName: 'مریم' }));
    log.record(failedOp(B, 'CRM_NOT_FOUND'));

    let f = await consoleView.failures({ log }, { limit: 2 });
    assert.equal(f.total, 7);
    assert.deepEqual(f.groups.map((g) => [g.code, g.count, g.review]), [['LINK_NEEDS_REVIEW', 1, true], ['HTTP_5XX', 5, false], ['CRM_NOT_FOUND', 1, false]]);
    assert.equal((f.groups[0].items[0].review as any).siagh.code, 8301);
    assert.deepEqual(f.groups[1].items.map((e) => e.message), ['down 4', 'down 3'], 'most recent first');
    assert.equal(f.groups[2].items[0].name, 'مریم', 'the name, from the party\u2019s line');
    f = await consoleView.failures({ log }, { code: 'http_5xx', offset: 4, limit: 2 });
    assert.deepEqual(f.groups.find((g) => g.code === 'HTTP_5XX')!.items.map((e) => e.message), ['down 0']);

    log.record(synced(ids[0], {}));
    assert.equal((await consoleView.failures({ log })).groups.find((g) => g.code === 'HTTP_5XX')!.count, 4);
  });

  it('search reaches the mapping store: by Siagh code or customer number, with the mappings of each party', async () => {
    const dir = tmp();
    const log = await OpLog.acquire(dir, { flushMs: 60_000 });
    opened.push(log);
    const file = await MappingStore.open(path.join(dir, 'mappings.json'));
    stores.push(file);
    const mappings = new FileMappingBackend(file);
    await file.store({ entityType: 'contact', crmId: C, siaghCode: 9100, customerNumber: 'CN-77', source: 'import' });
    const byCode = (await consoleView.search({ log, mappings }, '۹۱۰۰'));
    assert.deepEqual(byCode.hits.map((h) => h.crmId), [C]);
    assert.equal(byCode.hits[0].mappings[0].siaghCode, '9100');
    assert.equal(byCode.hits[0].timeline.total, 0, 'imported, never logged here');
    assert.deepEqual((await consoleView.search({ log, mappings }, 'CN-77')).hits.map((h) => h.crmId), [C]);
    assert.deepEqual((await consoleView.search({ log, mappings }, C.toUpperCase())).hits[0].mappings.map((m) => m.entityType), ['contact']);
  });
  it('search reaches a PostgreSQL store the same way (real server): by Siagh code, customer number and CRM id', async function () {
    this.timeout(60_000);
    const server = await PgServer.start();
    const pool = openPool({ connectionString: await server.database() });
    try {
      const dir = tmp();
      const log = await OpLog.acquire(dir, { flushMs: 60_000 });
      opened.push(log);
      const mappings = await PgMappingStore.open(pool);
      await mappings.store({ entityType: 'contact', crmId: C, siaghCode: 9100, customerNumber: 'CN-77', source: 'import' });
      const byCode = await consoleView.search({ log, mappings }, '۹۱۰۰');
      assert.deepEqual(byCode.hits.map((h) => h.crmId), [C]);
      assert.equal(byCode.hits[0].mappings[0].siaghCode, '9100');
      assert.deepEqual((await consoleView.search({ log, mappings }, 'CN-77')).hits.map((h) => h.crmId), [C]);
      assert.deepEqual((await consoleView.search({ log, mappings }, C.toUpperCase())).hits[0].mappings.map((m) => m.entityType), ['contact']);
      await mappings.close();
    } finally {
      await pool.end();
      await server.close();
    }
  });
});
