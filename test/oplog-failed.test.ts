/**
 * The failed list on real files (attempts, success removes, filters, reopen, an unreadable file
 * set aside) and the stats counters (grouping by message, the 24-hour window, rebuilt from the
 * log file), and OpLog sharing one folder between users.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describeOperation } from '../lib/oplog/entry';
import { FailedList, olderThanMs } from '../lib/oplog/failed-list';
import { OpLog } from '../lib/oplog/oplog';
import { OpStats } from '../lib/oplog/stats';
import { isCode } from './helpers/assert-code';

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
  it('two users share one instance; record logs, lists and clears; the last release flushes', async () => {
    const dir = tmp();
    const l1 = await OpLog.acquire(dir, { flushMs: 60_000 });
    const l2 = await OpLog.acquire(dir, { flushMs: 60_000 });
    assert.equal(l1, l2);
    const fail = describeOperation({ trace: { traceId: 't1', trigger: 'webhook', entity: 'person', crmId: A, action: 'failed', error: { code: 'HTTP_5XX', message: 'down' } } });
    const r1 = l1.record(fail);
    assert.equal(r1.entry?.attempts, 1);
    assert.equal(l2.failed.size, 1);
    assert.throws(() => l1.takeForReplay({}), isCode('BAD_INPUT'));
    assert.deepEqual(
      l1.takeForReplay({ all: true }).map((e) => e.event.id),
      [A],
    );
    const okNoAction = describeOperation({ trace: { traceId: 't2', entity: 'person', crmId: A } });
    assert.deepEqual(l1.record(okNoAction), {}, 'an ok message without an action does not clear');
    const ok = describeOperation({ trace: { traceId: 't3', entity: 'person', crmId: A, action: 'unchanged' } });
    assert.deepEqual(l1.record(ok), { removed: true });
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
