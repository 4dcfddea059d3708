/**
 * One behaviour, two backends: the failed list in a data folder (failed.json and its journal) and
 * on PostgreSQL (a real server from testkit/postgres.ts, a new database per test) pass the same
 * suite: failures and attempts, filters, success and removal, replays, review items and their
 * resolution, the bounds, and entries taken over whole (the store transfer).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Pool } from 'pg';
import type { ReplayEvent } from '../../../lib/oplog/entry';
import type { FailedBackend } from '../../../lib/oplog/failed-backend';
import type { DropReport, FailedLimits } from '../../../lib/oplog/failed-list';
import { FileFailedBackend } from '../../../lib/oplog/file-failed-backend';
import { PgFailedList } from '../../../lib/oplog/pg-failed-list';
import { openPool } from '../../../lib/pg/db';
import { PgServer } from '../../../testkit/postgres';
import { isCode } from '../../helpers/assert-code';

const A = '11111111-2222-4333-8444-555555555555';
const B = '66666666-7777-4888-9999-aaaaaaaaaaaa';
const C = 'bbbbbbbb-cccc-4ddd-8eee-ffffffffffff';
const D = '00000000-0000-4000-8000-000000000001';
const E = '00000000-0000-4000-8000-000000000002';
const DAY = 86_400_000;
const ev = (id: string, type: ReplayEvent['type'] = 'Identity'): ReplayEvent => ({ type, id, event: 'Update' });
/** As stored: JSON (an entry's absent fields and undefined ones are the same thing). */
const plain = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;

interface Harness {
  /** A list on the test's data (the same data each time; close the previous one first). */
  open(limits?: FailedLimits): Promise<FailedBackend>;
  cleanup(): Promise<void>;
}

function fileHarness(): Harness {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'failed-conf-'));
  const open: FailedBackend[] = [];
  return {
    async open(limits = {}) {
      const b = await FileFailedBackend.open(path.join(dir, 'failed.json'), limits);
      open.push(b);
      return b;
    },
    async cleanup() {
      for (const b of open.splice(0)) await b.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

function pgHarness(server: () => PgServer): Harness {
  let url: string | undefined;
  const pools: Pool[] = [];
  return {
    async open(limits = {}) {
      url ??= await server().database();
      const pool = openPool({ connectionString: url }, () => undefined);
      pools.push(pool);
      return PgFailedList.open(pool, limits);
    },
    async cleanup() {
      await Promise.all(pools.splice(0).map((p) => p.end().catch(() => undefined)));
    },
  };
}

function conformance(name: string, make: () => Harness): void {
  describe(`failed list conformance: ${name}`, function () {
    this.timeout(30_000);
    let h: Harness;
    beforeEach(() => {
      h = make();
    });
    afterEach(async () => {
      await h.cleanup();
    });

    it('records a failure, counts attempts, keeps the first time and subtype; it lasts; a success removes it', async () => {
      const list = await h.open({ maxAgeDays: 0 });
      const t0 = Date.parse('2026-01-01T08:00:00Z');
      const first = await list.recordFailure({ event: { type: 'Identity', id: A, event: 'Insert', subtype: 'مخاطب حقیقی' }, entity: 'identity', code: 'CRM_NOT_FOUND', message: 'm1', trigger: 'webhook', now: t0 });
      assert.equal(first.attempts, 1);
      const second = await list.recordFailure({ event: { type: 'Identity', id: A, event: 'Update' }, entity: 'person', code: 'HTTP_5XX', message: 'm2', traceId: 't2', now: t0 + 60_000 });
      assert.equal(second.attempts, 2);
      await list.recordFailure({ event: ev(B, 'Quote'), code: 'CUSTOMER_NOT_MAPPED', message: 'm3', now: t0 + 120_000 });
      assert.equal(await list.size(), 2);
      await list.close();

      const again = await h.open({ maxAgeDays: 0 });
      const a = (await again.get(`identity:${A}`))!;
      assert.deepEqual(plain(a), {
        key: `identity:${A}`,
        entity: 'person',
        event: { type: 'Identity', id: A, event: 'Update', subtype: 'مخاطب حقیقی' },
        reason: { code: 'HTTP_5XX', message: 'm2' },
        attempts: 2,
        firstAt: '2026-01-01T08:00:00.000Z',
        lastAt: '2026-01-01T08:01:00.000Z',
        traceId: 't2',
      });
      assert.equal((await again.get(`quote:${B}`))!.entity, 'quote', 'entity defaults to the event type');
      assert.equal(await again.get(`identity:${C}`), undefined);
      assert.equal(await again.recordSuccess(`identity:${A}`), true);
      assert.equal(await again.recordSuccess(`identity:${A}`), false);
      assert.deepEqual(
        (await again.all()).map((e) => e.key),
        [`quote:${B}`],
      );
      await again.recordFailure({ event: ev(C), code: 'X', message: 'm', now: t0 + 1000 });
      assert.equal(await again.remove([`quote:${B}`, `identity:${C}`, 'identity:nothing']), 2);
      assert.equal(await again.size(), 0);
    });

    it('filters by crmId, entity, code, olderThan and limit, oldest failure first; a malformed filter is BAD_INPUT', async () => {
      const list = await h.open();
      const now = Date.parse('2026-01-02T12:00:00Z');
      list.setLimits({ maxAgeDays: 0 });
      await list.recordFailure({ event: ev(A), entity: 'person', code: 'HTTP_5XX', message: 'x', now: now - 3 * 3_600_000 });
      await list.recordFailure({ event: ev(B), entity: 'organization', code: 'CRM_NOT_FOUND', message: 'x', now: now - 30 * 60_000 });
      await list.recordFailure({ event: ev(C, 'Quote'), entity: 'quote', code: 'HTTP_5XX', message: 'x', now: now - 5 * 60_000 });
      const ids = async (f: object) => (await list.match(f, now)).map((e) => e.event.id);
      assert.deepEqual(await ids({ crmId: A.toUpperCase() }), [A]);
      assert.deepEqual(await ids({ crmId: [A, C] }), [A, C]);
      assert.deepEqual(await ids({ entity: 'identity' }), [A, B]);
      assert.deepEqual(await ids({ entity: 'organization' }), [B]);
      assert.deepEqual(await ids({ entity: 'Quote' }), [C]);
      assert.deepEqual(await ids({ code: 'http_5xx' }), [A, C]);
      assert.deepEqual(await ids({ olderThan: '1h' }), [A]);
      assert.deepEqual(await ids({ olderThan: new Date(now - 10 * 60_000).toISOString() }), [A, B]);
      assert.deepEqual(await ids({ code: 'HTTP_5XX', olderThan: '10m' }), [A]);
      assert.deepEqual(await ids({ all: true, limit: 2 }), [A, B]);
      assert.deepEqual(await ids({ all: true }), [A, B, C]);
      await assert.rejects(list.match({ crmId: 'not-a-guid' }), isCode('BAD_INPUT'));
      await assert.rejects(list.match({ olderThan: 'soon' }), isCode('BAD_INPUT'));
      await assert.rejects(list.match({ all: true, limit: 0 }), isCode('BAD_INPUT'));
    });

    it('replays are counted and do not make an entry recently failed; a later failure keeps the count', async () => {
      const list = await h.open({ maxEntries: 2, maxAgeDays: 0 });
      const t0 = Date.now() - 10_000;
      await list.recordFailure({ event: ev(A), code: 'X', message: 'm', now: t0 });
      await list.recordFailure({ event: ev(B), code: 'X', message: 'm', now: t0 + 1000 });
      await list.markReplayed([`identity:${A}`, 'identity:nothing'], t0 + 2000);
      await list.markReplayed([`identity:${A}`], t0 + 3000);
      const a = (await list.get(`identity:${A}`))!;
      assert.equal(a.replays, 2);
      assert.equal(a.lastReplayAt, new Date(t0 + 3000).toISOString());
      assert.equal(a.lastAt, new Date(t0).toISOString());
      // a third entry: A, replayed but least recently failed, is the one dropped
      await list.recordFailure({ event: ev(C), code: 'X', message: 'm', now: t0 + 4000 });
      assert.deepEqual((await list.all()).map((e) => e.event.id).sort(), [B, C].sort());
      await list.markReplayed([`identity:${B}`], t0 + 5000);
      const b = await list.recordFailure({ event: ev(B), code: 'Y', message: 'm', now: t0 + 6000 });
      assert.equal(b.replays, 1);
      assert.equal(b.attempts, 2);
    });

    it('review items: the facts are kept, found by code, replaced by a later failure without them, resolved by a success', async () => {
      const list = await h.open();
      const review = { code: 'LINK_NEEDS_REVIEW', crm: { name: 'شرکت نمونه', phone: '0912' }, siagh: { code: 12 } };
      await list.recordFailure({ event: ev(A), entity: 'organization', code: 'LINK_NEEDS_REVIEW', message: 'two candidates', review });
      await list.recordFailure({ event: ev(C, 'Quote'), code: 'DOCUMENT_CHANGED_AFTER_TRANSFER', message: 'm', review: { code: 'DOCUMENT_CHANGED_AFTER_TRANSFER', differences: null } });
      await list.recordFailure({ event: ev(B), code: 'HTTP_5XX', message: 'm' });
      await list.close();
      const again = await h.open();
      assert.deepEqual((await again.get(`identity:${A}`))!.review, review);
      assert.deepEqual(
        (await again.match({ code: 'LINK_NEEDS_REVIEW' })).map((e) => e.key),
        [`identity:${A}`],
      );
      assert.deepEqual((await again.get(`quote:${C}`))!.review, { code: 'DOCUMENT_CHANGED_AFTER_TRANSFER', differences: null });
      await again.recordFailure({ event: ev(C, 'Quote'), code: 'HTTP_5XX', message: 'm' });
      assert.equal((await again.get(`quote:${C}`))!.review, undefined, 'a later failure without facts drops them');
      // the operator's decision went through: the success resolves the item
      assert.equal(await again.recordSuccess(`identity:${A}`), true);
      assert.deepEqual(await again.match({ code: 'LINK_NEEDS_REVIEW' }), []);
    });

    it('count bound: the least recently failed go first, counted and reported per batch; a lower bound applies at the next open', async () => {
      const list = await h.open({ maxEntries: 3 });
      const drops: DropReport[] = [];
      list.onDrop = (r) => drops.push(r);
      const ids = [A, B, C, D, E];
      const t0 = Date.now() - 10_000;
      for (const [i, id] of ids.entries()) await list.recordFailure({ event: ev(id), code: 'X', message: 'm', now: t0 + i * 1000 });
      await list.recordFailure({ event: ev(D), code: 'X', message: 'm', now: t0 + 9000 });
      await list.recordFailure({ event: ev(A), code: 'X', message: 'm', now: t0 + 9500 });
      assert.equal(await list.size(), 3);
      assert.deepEqual(new Set((await list.all()).map((e) => e.event.id)), new Set([E, D, A]));
      assert.equal(list.dropped, 3);
      assert.deepEqual(
        drops.map((d) => [d.why, d.count]),
        [
          ['count', 1],
          ['count', 1],
          ['count', 1],
        ],
      );
      assert.deepEqual(
        drops.map((d) => d.keys[0]),
        [`identity:${A}`, `identity:${B}`, `identity:${C}`],
      );
      await list.close();
      const again = await h.open({ maxEntries: 2 });
      assert.equal(await again.size(), 2);
      assert.deepEqual(
        again.takeEarlyDrops().map((d) => [d.why, d.count, d.keys]),
        [['count', 1, [`identity:${E}`]]],
      );
      assert.deepEqual(again.limits, { maxEntries: 2, maxAgeDays: 90 });
    });

    it('age bound: older than maxAgeDays goes (at open, and as failures come in); 0 = no limit', async () => {
      const now = Date.now();
      const list = await h.open({ maxAgeDays: 0 });
      await list.recordFailure({ event: ev(A), code: 'X', message: 'm', now: now - 100 * DAY });
      await list.recordFailure({ event: ev(B), code: 'X', message: 'm', now: now - 10 * DAY });
      await list.recordFailure({ event: ev(C), code: 'X', message: 'm', now: now - 1000 });
      assert.equal(await list.size(), 3, 'no limit');
      await list.close();
      const again = await h.open();
      assert.deepEqual(
        (await again.all()).map((e) => e.event.id),
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
      await again.recordFailure({ event: ev(C), code: 'X', message: 'm', now: now + 61_000 });
      assert.deepEqual(
        (await again.all()).map((e) => e.event.id),
        [C],
      );
      assert.deepEqual(
        drops.map((d) => [d.why, d.count, d.keys]),
        [['age', 1, [`identity:${B}`]]],
      );
    });

    it('restore takes whole entries as they are (attempts, times, replays, review), replacing the same key', async () => {
      const list = await h.open({ maxAgeDays: 0 });
      await list.recordFailure({ event: ev(A), code: 'OLD', message: 'm', now: Date.parse('2026-01-01T00:00:00Z') });
      const entries = [
        {
          key: `identity:${A}`,
          entity: 'person',
          event: ev(A),
          reason: { code: 'HTTP_5XX', message: 'm' },
          attempts: 4,
          firstAt: '2026-01-01T00:00:00.000Z',
          lastAt: '2026-01-03T00:00:00.000Z',
          replays: 1,
          lastReplayAt: '2026-01-02T00:00:00.000Z',
        },
        {
          key: `quote:${B}`,
          entity: 'quote',
          event: ev(B, 'Quote'),
          reason: { code: 'DOCUMENT_CHANGED_AFTER_TRANSFER', message: 'm' },
          attempts: 1,
          firstAt: '2026-01-02T00:00:00.000Z',
          lastAt: '2026-01-02T00:00:00.000Z',
          review: { code: 'DOCUMENT_CHANGED_AFTER_TRANSFER', differences: [{ field: 'total' }] },
        },
      ];
      assert.equal(await list.restore([...entries, { key: 'junk' } as never]), 2);
      assert.deepEqual(plain(await list.all()), entries);
      await list.close();
      const again = await h.open({ maxAgeDays: 0 });
      assert.deepEqual(plain(await again.all()), entries);
    });
  });
}

conformance('file', fileHarness);

describe('failed list on PostgreSQL (real server)', function () {
  this.timeout(60_000);
  let server: PgServer;
  before(async () => {
    server = await PgServer.start();
  });
  after(async () => {
    await server?.close();
  });

  conformance('postgres', () => pgHarness(() => server));

  it('two instances failing the same record together count every attempt', async () => {
    const url = await server.database();
    const pools = [openPool({ connectionString: url }), openPool({ connectionString: url })];
    try {
      const [a, b] = await Promise.all(pools.map((p) => PgFailedList.open(p)));
      await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).recordFailure({ event: ev(A), code: 'HTTP_5XX', message: `m${i}` })));
      assert.equal((await a.get(`identity:${A}`))!.attempts, 10);
    } finally {
      await Promise.all(pools.map((p) => p.end()));
    }
  });
});
