/**
 * The failed list on real files (attempts, success removes, filters, reopen, an unreadable file
 * set aside) and the stats counters (grouping by message, the 24-hour window, rebuilt from the
 * log file), and OpLog sharing one folder between users.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describeOperation } from '../../../lib/oplog/entry';
import { DropReport, FailedList, journalPathFor, olderThanMs, readFailedFiles } from '../../../lib/oplog/failed-list';
import { OpLog } from '../../../lib/oplog/oplog';
import { OpStats } from '../../../lib/oplog/stats';
import { isCode } from '../../helpers/assert-code';

const A = '11111111-2222-4333-8444-555555555555';
const B = '66666666-7777-4888-9999-aaaaaaaaaaaa';
const C = 'bbbbbbbb-cccc-4ddd-8eee-ffffffffffff';

function tmp(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'oplog-failed-'));
}

describe('oplog: FailedList', () => {
  let dir: string;
  beforeEach(() => {
    dir = tmp();
  });
  afterEach(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('counts attempts per key, keeps first/last time and the subtype, survives a reopen; a success removes', async () => {
    const file = path.join(dir, 'failed.json');
    // fixed past times: no age bound here (tested below)
    const list = await FailedList.open(file, { maxAgeDays: 0 });
    const t0 = Date.parse('2026-01-01T08:00:00Z');
    list.recordFailure({ event: { type: 'Identity', id: A, event: 'Insert', subtype: 'مخاطب حقیقی' }, entity: 'identity', code: 'CRM_NOT_FOUND', message: 'm1', now: t0 });
    list.recordFailure({ event: { type: 'Identity', id: A, event: 'Update' }, entity: 'person', code: 'HTTP_5XX', message: 'm2', now: t0 + 60_000 });
    list.recordFailure({ event: { type: 'Quote', id: B, event: 'Update' }, code: 'CUSTOMER_NOT_MAPPED', message: 'm3', now: t0 + 120_000 });
    await list.close();

    const again = await FailedList.open(file, { maxAgeDays: 0 });
    assert.equal(again.size, 2);
    const a = again.get(`identity:${A}`)!;
    assert.equal(a.attempts, 2);
    assert.equal(a.entity, 'person');
    assert.deepEqual(a.event, { type: 'Identity', id: A, event: 'Update', subtype: 'مخاطب حقیقی' });
    assert.deepEqual(a.reason, { code: 'HTTP_5XX', message: 'm2' });
    assert.equal(a.firstAt, '2026-01-01T08:00:00.000Z');
    assert.equal(a.lastAt, '2026-01-01T08:01:00.000Z');
    assert.equal(again.recordSuccess(`identity:${A}`), true);
    assert.equal(again.recordSuccess(`identity:${A}`), false);
    await again.close();
    const third = await FailedList.open(file, { maxAgeDays: 0 });
    assert.deepEqual(
      third.all().map((e) => e.key),
      [`quote:${B}`],
    );
    await third.close();
  });

  it('filters by crmId, entity, code, olderThan and limit', async () => {
    const list = await FailedList.open(path.join(dir, 'failed.json'));
    const now = Date.parse('2026-01-02T12:00:00Z');
    list.recordFailure({ event: { type: 'Identity', id: A, event: 'Update' }, entity: 'person', code: 'HTTP_5XX', message: 'x', now: now - 3 * 3_600_000 });
    list.recordFailure({ event: { type: 'Identity', id: B, event: 'Update' }, entity: 'organization', code: 'CRM_NOT_FOUND', message: 'x', now: now - 30 * 60_000 });
    list.recordFailure({ event: { type: 'Quote', id: C, event: 'Insert' }, entity: 'quote', code: 'HTTP_5XX', message: 'x', now: now - 5 * 60_000 });
    const keys = (f: object) => list.match(f, now).map((e) => e.event.id);
    assert.deepEqual(keys({ crmId: A.toUpperCase() }), [A]);
    assert.deepEqual(keys({ crmId: [A, C] }), [A, C]);
    assert.deepEqual(keys({ entity: 'identity' }), [A, B]);
    assert.deepEqual(keys({ entity: 'organization' }), [B]);
    assert.deepEqual(keys({ entity: 'Quote' }), [C]);
    assert.deepEqual(keys({ code: 'http_5xx' }), [A, C]);
    assert.deepEqual(keys({ olderThan: '1h' }), [A]);
    assert.deepEqual(keys({ olderThan: new Date(now - 10 * 60_000).toISOString() }), [A, B]);
    assert.deepEqual(keys({ code: 'HTTP_5XX', olderThan: '10m' }), [A]);
    assert.deepEqual(keys({ all: true, limit: 2 }), [A, B]);
    assert.throws(() => list.match({ crmId: 'not-a-guid' }), isCode('BAD_INPUT'));
    assert.throws(() => list.match({ olderThan: 'yesterday-ish' }), isCode('BAD_INPUT'));
    assert.equal(olderThanMs('2h', now), now - 7_200_000);
    await list.close();
  });

  it('an unreadable file is set aside (kept), and a new list starts', async () => {
    const file = path.join(dir, 'failed.json');
    fs.writeFileSync(file, '{"version":1,"entries":{"identity:');
    const list = await FailedList.open(file);
    assert.equal(list.size, 0);
    assert.ok(list.setAside && fs.existsSync(list.setAside), 'the broken file is kept beside');
    assert.equal(fs.readFileSync(list.setAside!, 'utf8'), '{"version":1,"entries":{"identity:');
    list.recordFailure({ event: { type: 'Identity', id: A, event: 'Update' }, code: 'X', message: 'y' });
    await list.close();
    assert.equal(JSON.parse(fs.readFileSync(file, 'utf8')).entries[`identity:${A}`].attempts, 1);
  });

  it('changes made in one turn go out in one write', async () => {
    const list = await FailedList.open(path.join(dir, 'failed.json'));
    for (let i = 0; i < 50; i++) list.recordFailure({ event: { type: 'Identity', id: A, event: 'Update' }, code: 'X', message: String(i) });
    await list.settle();
    assert.equal(list.writes, 1);
    assert.equal(list.get(`identity:${A}`)!.attempts, 50);
    await list.close();
  });
});

describe('oplog: FailedList journal and bounds', () => {
  let dir: string;
  let file: string;
  beforeEach(() => {
    dir = tmp();
    file = path.join(dir, 'failed.json');
  });
  afterEach(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const ev = (id: string) => ({ type: 'Identity' as const, id, event: 'Update' });
  const journalLines = () => (fs.existsSync(journalPathFor(file)) ? fs.readFileSync(journalPathFor(file), 'utf8').split('\n').filter(Boolean) : []);

  it('a change appends a journal line (failed.json is not rewritten); close folds the journal into failed.json', async () => {
    fs.writeFileSync(file, JSON.stringify({ version: 1, entries: {} }));
    const before = fs.statSync(file).mtimeMs;
    const list = await FailedList.open(file);
    list.recordFailure({ event: ev(A), code: 'HTTP_5XX', message: 'down' });
    await list.settle();
    list.recordFailure({ event: ev(B), code: 'HTTP_5XX', message: 'down' });
    await list.settle();
    list.recordSuccess(`identity:${A}`);
    await list.settle();
    assert.equal(list.writes, 3, 'one append (and fsync) per turn');
    assert.equal(list.folds, 0);
    assert.equal(fs.statSync(file).mtimeMs, before, 'failed.json untouched');
    assert.deepEqual(JSON.parse(fs.readFileSync(file, 'utf8')).entries, {});
    const lines = journalLines().map((l) => JSON.parse(l));
    assert.deepEqual(
      lines.map((l) => (l.put ? `put ${l.put.key}` : `del ${l.del}`)),
      [`put identity:${A}`, `put identity:${B}`, `del identity:${A}`],
    );
    assert.deepEqual(Object.keys(readFailedFiles(file)), [`identity:${B}`], 'snapshot + journal, as a reader sees them');
    await list.close();
    assert.equal(fs.existsSync(journalPathFor(file)), false, 'the journal is folded away');
    assert.deepEqual(Object.keys(JSON.parse(fs.readFileSync(file, 'utf8')).entries), [`identity:${B}`]);
  });

  it('after a crash: a torn last journal line is skipped, the rest applied over the snapshot and folded at open', async () => {
    const list = await FailedList.open(file);
    list.recordFailure({ event: ev(A), code: 'X', message: 'a' });
    await list.close();
    // what a crash mid-append leaves: whole lines, then half of one
    const put = (id: string, attempts: number) => JSON.stringify({ put: { key: `identity:${id}`, entity: 'identity', event: ev(id), reason: { code: 'Y', message: 'b' }, attempts, firstAt: new Date().toISOString(), lastAt: new Date().toISOString() } });
    fs.writeFileSync(journalPathFor(file), `${put(B, 1)}\n${JSON.stringify({ del: `identity:${A}` })}\n${put(B, 2)}\n${put(C, 1).slice(0, 40)}`);
    const again = await FailedList.open(file);
    assert.equal(again.skippedLines, 1);
    assert.deepEqual(
      again.all().map((e) => [e.key, e.attempts]),
      [[`identity:${B}`, 2]],
    );
    assert.equal(again.folds, 1, 'folded at open');
    assert.equal(fs.existsSync(journalPathFor(file)), false);
    assert.deepEqual(Object.keys(JSON.parse(fs.readFileSync(file, 'utf8')).entries), [`identity:${B}`]);
    // a journal replayed over a snapshot it was already folded into changes nothing (a crash between rename and removal)
    fs.writeFileSync(journalPathFor(file), `${put(B, 2)}\n`);
    await again.close();
    const third = await FailedList.open(file);
    assert.deepEqual(
      third.all().map((e) => [e.key, e.attempts]),
      [[`identity:${B}`, 2]],
    );
    await third.close();
  });

  it('folds into failed.json when the journal outgrows it', async () => {
    const list = await FailedList.open(file, { foldBytes: 2000 });
    for (let i = 0; i < 20; i++) {
      list.recordFailure({ event: ev(A), code: 'X', message: `attempt ${i} `.repeat(10) });
      await list.settle();
    }
    assert.ok(list.folds >= 1, `folded ${list.folds} times`);
    assert.ok(fs.statSync(file).size < 2000, 'the snapshot holds one entry');
    assert.ok(!fs.existsSync(journalPathFor(file)) || fs.statSync(journalPathFor(file)).size < 3000, 'the journal stays small');
    assert.equal(readFailedFiles(file)[`identity:${A}`].attempts, 20);
    await list.close();
  });

  it('count bound: the least recently failed entries are dropped first, counted and reported once per batch', async () => {
    const list = await FailedList.open(file, { maxEntries: 3 });
    const drops: DropReport[] = [];
    list.onDrop = (r) => drops.push(r);
    const ids = [A, B, C, '00000000-0000-4000-8000-000000000001', '00000000-0000-4000-8000-000000000002'];
    const t0 = Date.now() - 10_000;
    ids.forEach((id, i) => list.recordFailure({ event: ev(id), code: 'X', message: 'm', now: t0 + i * 1000 }));
    // A fails again: now the most recent
    list.recordFailure({ event: ev(ids[3]), code: 'X', message: 'm', now: t0 + 9000 });
    list.recordFailure({ event: ev(A), code: 'X', message: 'm', now: t0 + 9500 });
    assert.equal(list.size, 3);
    assert.deepEqual(new Set(list.all().map((e) => e.event.id)), new Set([ids[4], ids[3], A]));
    assert.equal(list.dropped, 3);
    assert.deepEqual(
      drops.map((d) => [d.why, d.count]),
      [
        ['count', 1],
        ['count', 1],
        ['count', 1],
      ],
    );
    await list.close();
    const again = await FailedList.open(file, { maxEntries: 2 });
    assert.equal(again.size, 2, 'a lower bound applies at open');
    assert.deepEqual(
      again.takeEarlyDrops().map((d) => [d.why, d.count]),
      [['count', 1]],
    );
    assert.deepEqual(new Set(again.all().map((e) => e.event.id)), new Set([ids[3], A]));
    await again.close();
    assert.equal(Object.keys(JSON.parse(fs.readFileSync(file, 'utf8')).entries).length, 2);
  });

  it('age bound: entries whose last failure is older than maxAgeDays go (at open and while changes come in); 0 = no limit', async () => {
    const now = Date.now();
    const list = await FailedList.open(file, { maxAgeDays: 0 });
    list.recordFailure({ event: ev(A), code: 'X', message: 'm', now: now - 100 * 86_400_000 });
    list.recordFailure({ event: ev(B), code: 'X', message: 'm', now: now - 10 * 86_400_000 });
    list.recordFailure({ event: ev(C), code: 'X', message: 'm', now: now - 1000 });
    assert.equal(list.size, 3, 'no limit');
    await list.close();
    const again = await FailedList.open(file);
    assert.deepEqual(
      again.all().map((e) => e.event.id),
      [B, C],
      'the default keeps 90 days',
    );
    assert.deepEqual(
      again.takeEarlyDrops().map((d) => [d.why, d.count]),
      [['age', 1]],
    );
    again.setLimits({ maxAgeDays: 5 });
    const drops: DropReport[] = [];
    again.onDrop = (r) => drops.push(r);
    again.recordFailure({ event: ev(C), code: 'X', message: 'm', now: now + 61_000 });
    assert.deepEqual(
      again.all().map((e) => e.event.id),
      [C],
    );
    assert.deepEqual(
      drops.map((d) => [d.why, d.count, d.keys]),
      [['age', 1, [`identity:${B}`]]],
    );
    assert.equal(again.dropped, 2);
    await again.close();
    assert.deepEqual(Object.keys(readFailedFiles(file)), [`identity:${C}`]);
  });

  it('a failure with review facts keeps them; a later failure without them drops them', async () => {
    const list = await FailedList.open(file);
    const review = { code: 'LINK_NEEDS_REVIEW', crm: { name: 'x' }, siagh: { code: 12 } };
    list.recordFailure({ event: ev(A), code: 'LINK_NEEDS_REVIEW', message: 'm', review });
    await list.close();
    const again = await FailedList.open(file);
    assert.deepEqual(again.get(`identity:${A}`)!.review, review);
    again.recordFailure({ event: ev(A), code: 'HTTP_5XX', message: 'm' });
    assert.equal(again.get(`identity:${A}`)!.review, undefined);
    await again.close();
  });
});

describe('oplog: OpStats', () => {
  it('counts by status and trigger, groups the last 24 h failures by code + message (ids taken out)', () => {
    const now = Date.parse('2026-01-03T12:00:00Z');
    const s = new OpStats(now - 48 * 3_600_000);
    const at = (msAgo: number) => new Date(now - msAgo).toISOString();
    s.add({ time: at(1000), status: 'ok', trigger: 'webhook' }, now);
    s.add({ time: at(2000), status: 'ok', trigger: 'poll' }, now);
    s.add({ time: at(3000), status: 'failed', trigger: 'webhook', error: { code: 'CRM_NOT_FOUND', message: `No identity ${A}.` } }, now);
    s.add({ time: at(4000), status: 'failed', trigger: 'replay', error: { code: 'CRM_NOT_FOUND', message: `No identity ${B}.` } }, now);
    s.add({ time: at(5000), status: 'failed', trigger: 'webhook', error: { code: 'HTTP_5XX', message: 'Siagh answered 503.' } }, now);
    s.add({ time: at(30 * 3_600_000), status: 'failed', trigger: 'poll', error: { code: 'OLD', message: 'a day and more ago' } }, now);
    const snap = s.snapshot(now);
    assert.deepEqual(snap.byStatus, { ok: 2, failed: 4 });
    assert.deepEqual(snap.byTrigger, { webhook: 3, poll: 2, replay: 1 });
    assert.equal(snap.last24h.ok, 2);
    assert.equal(snap.last24h.failed, 3);
    assert.deepEqual(
      snap.last24h.failures.map((f) => [f.code, f.message, f.count]),
      [
        ['CRM_NOT_FOUND', 'No identity <id>.', 2],
        ['HTTP_5XX', 'Siagh answered 503.', 1],
      ],
    );
    assert.equal(snap.since, new Date(now - 48 * 3_600_000).toISOString());
  });

  it('is rebuilt from the log file (torn lines skipped)', async () => {
    const dir = tmp();
    const file = path.join(dir, 'sync-log.jsonl');
    const now = Date.now();
    const rows = [
      { time: new Date(now - 3 * 86_400_000).toISOString(), status: 'ok', trigger: 'import' },
      { time: new Date(now - 60_000).toISOString(), status: 'failed', trigger: 'webhook', error: { code: 'X', message: 'boom' } },
      { time: new Date(now - 1000).toISOString(), status: 'ok', trigger: 'webhook' },
    ];
    fs.writeFileSync(file, rows.map((r) => JSON.stringify(r)).join('\n') + '\n{"time":"torn');
    const s = await OpStats.fromFile(file, now);
    const snap = s.snapshot(now);
    assert.deepEqual(snap.byStatus, { ok: 2, failed: 1 });
    assert.deepEqual(snap.byTrigger, { webhook: 2, import: 1 });
    assert.equal(snap.last24h.ok, 1);
    assert.equal(snap.last24h.failed, 1);
    assert.equal(snap.since, rows[0].time);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

describe('oplog: OpLog (one folder, shared)', () => {
  it('review items: kept with their (scrubbed, clipped) facts, skipped by a blanket replay, replayed when named, found by reviewItem', async () => {
    const dir = tmp();
    const log = await OpLog.acquire(dir, { flushMs: 60_000 });
    const review = {
      code: 'LINK_NEEDS_REVIEW',
      crm: { crmId: A, kind: 'organization', name: 'شرکت token=abc123', mobile: '09121234567', nationalCode: null },
      siagh: { code: 8301, kind: 'person', name: 'رضا کریمی', mobile: '09121234567', nationalCode: '0012345679' },
      matchedBy: 'mobile',
      reason: 'x'.repeat(500),
      blob: Array.from({ length: 400 }, (_, i) => ({ i, text: 'y'.repeat(190) })),
    };
    const fail = (id: string, code: string, r?: unknown) =>
      describeOperation({ trace: { traceId: 't', trigger: 'webhook', entity: 'organization', crmId: id, action: 'failed', error: { code, message: 'm' } }, review: r, secrets: ['abc123'] });
    log.record(fail(A, 'LINK_NEEDS_REVIEW', review));
    log.record(fail(B, 'HTTP_5XX'));
    log.record(describeOperation({ trace: { traceId: 't', entity: 'quote', crmId: C, action: 'failed', error: { code: 'DOCUMENT_CHANGED_AFTER_TRANSFER', message: 'm' } }, review: { code: 'DOCUMENT_CHANGED_AFTER_TRANSFER', differences: null } }));
    const kept = (await log.failed.get(`identity:${A}`))!.review!;
    assert.equal((kept.crm as any).name, 'شرکت token=***');
    assert.equal((kept.siagh as any).code, 8301);
    assert.ok((kept.reason as string).length <= 200);
    assert.equal(kept.truncated, true);
    assert.ok(JSON.stringify(kept).length <= 8000);
    assert.deepEqual(
      (await log.takeForReplay({ all: true })).map((e) => e.event.id),
      [B],
      'a blanket replay skips review items',
    );
    assert.deepEqual(
      (await log.takeForReplay({ entity: 'quote' })).map((e) => e.event.id),
      [],
    );
    assert.deepEqual(
      (await log.takeForReplay({ code: 'link_needs_review' })).map((e) => e.event.id),
      [A],
      'by its code',
    );
    assert.deepEqual(
      (await log.takeForReplay({ crmId: C })).map((e) => e.event.id),
      [C],
      'by its id',
    );
    assert.equal((await log.reviewItem(A)).key, `identity:${A}`);
    await assert.rejects(log.reviewItem(B), (e: any) => e.code === 'BAD_INPUT' && /not a review item/.test(e.message));
    await assert.rejects(log.reviewItem('99999999-9999-4999-8999-999999999999'), (e: any) => e.code === 'BAD_INPUT' && /no entry/.test(e.message));
    await log.release();
    assert.deepEqual(readFailedFiles(path.join(dir, 'failed.json'))[`identity:${A}`].review, kept, 'on disk as in memory');
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('two users share one instance; record logs, lists and clears; the last release flushes', async () => {
    const dir = tmp();
    const l1 = await OpLog.acquire(dir, { flushMs: 60_000 });
    const l2 = await OpLog.acquire(dir, { flushMs: 60_000 });
    assert.equal(l1, l2);
    const fail = describeOperation({ trace: { traceId: 't1', trigger: 'webhook', entity: 'person', crmId: A, action: 'failed', error: { code: 'HTTP_5XX', message: 'down' } } });
    const r1 = await l1.record(fail);
    assert.equal(r1.entry?.attempts, 1);
    assert.equal(await l2.failed.size(), 1);
    await assert.rejects(l1.takeForReplay({}), isCode('BAD_INPUT'));
    assert.deepEqual(
      (await l1.takeForReplay({ all: true })).map((e) => e.event.id),
      [A],
    );
    const okNoAction = describeOperation({ trace: { traceId: 't2', entity: 'person', crmId: A } });
    assert.deepEqual(await l1.record(okNoAction), {}, 'an ok message without an action does not clear');
    const ok = describeOperation({ trace: { traceId: 't3', entity: 'person', crmId: A, action: 'unchanged' } });
    assert.deepEqual(await l1.record(ok), { removed: true });
    await l1.release();
    assert.equal(OpLog.peek(dir), l2, 'still open for the second user');
    assert.equal(l2.writer.pending, 3);
    await l2.release();
    assert.equal(OpLog.peek(dir), undefined);
    const logged = fs.readFileSync(path.join(dir, 'sync-log.jsonl'), 'utf8').trim().split('\n').map((s) => JSON.parse(s));
    assert.deepEqual(
      logged.map((l) => l.status),
      ['failed', 'ok', 'ok'],
    );
    assert.deepEqual(JSON.parse(fs.readFileSync(path.join(dir, 'failed.json'), 'utf8')).entries, {});
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
