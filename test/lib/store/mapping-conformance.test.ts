/**
 * One behaviour, two backends: the same suite runs against the file mapping store (a temp folder)
 * and the PostgreSQL one (a real server from testkit/postgres.ts, a new database per test). Then,
 * on PostgreSQL only, what a shared database adds: instances claiming one record take turns, and a
 * server restart mid-run loses nothing that was acknowledged.
 */
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { Pool } from 'pg';
import { SyncError } from '../../../lib/errors';
import { openPool } from '../../../lib/pg/db';
import { FileMappingBackend } from '../../../lib/store/file-mapping-backend';
import type { MappingBackend } from '../../../lib/store/mapping-backend';
import { PgMappingStore } from '../../../lib/store/pg-mapping-store';
import { PgServer } from '../../../testkit/postgres';
import { guid, makeTempDir, removeDir } from '../../fixtures/store-helpers';
import { isCode } from '../../helpers/assert-code';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Harness {
  /** A fresh, empty store. */
  fresh(): Promise<MappingBackend>;
  /** Another instance on the same data (for the file store: the same folder, opened again). */
  again(): Promise<MappingBackend>;
  cleanup(): Promise<void>;
}

function fileHarness(): Harness {
  let dir = '';
  const open: MappingBackend[] = [];
  const file = () => path.join(dir, 'mappings.json');
  return {
    async fresh() {
      dir = makeTempDir();
      const b = await FileMappingBackend.open(file());
      open.push(b);
      return b;
    },
    async again() {
      const b = await FileMappingBackend.open(file());
      open.push(b);
      return b;
    },
    async cleanup() {
      for (const b of open.splice(0).reverse()) await b.close();
      removeDir(dir);
    },
  };
}

function pgHarness(server: () => PgServer): Harness {
  let url = '';
  const pools: Pool[] = [];
  const open = async () => {
    const pool = openPool({ connectionString: url }, () => undefined);
    pools.push(pool);
    // A short live lease, so the heartbeat that keeps a living holder's claims runs often here.
    return PgMappingStore.open(pool, { claimPollMs: 20, liveLeaseMs: 300 });
  };
  return {
    async fresh() {
      url = await server().database();
      return open();
    },
    again: open,
    async cleanup() {
      await Promise.all(pools.splice(0).map((p) => p.end().catch(() => undefined)));
    },
  };
}

function conformance(name: string, make: () => Harness): void {
  describe(`mapping store conformance: ${name}`, function () {
    this.timeout(30_000);
    let h: Harness;
    let s: MappingBackend;
    beforeEach(async () => {
      h = make();
      s = await h.fresh();
    });
    afterEach(async () => {
      await h.cleanup();
    });

    it('stores a record and finds it by CRM id, Siagh code and customer number, normalised as the file store does', async () => {
      const rec = await s.store({
        entityType: 'contact',
        crmId: `{${guid(1).toUpperCase()}}`,
        siaghCode: '۱۲',
        customerNumber: ' ۷۰۰۱ ',
        checksum: 'c1',
        source: 'webhook',
        syncedAt: '2026-01-02T03:04:05Z',
        extra: { note: 'x', n: 2 },
      });
      assert.deepEqual(rec, {
        entityType: 'contact',
        crmId: guid(1),
        siaghCode: '12',
        customerNumber: '7001',
        checksum: 'c1',
        source: 'webhook',
        syncedAt: '2026-01-02T03:04:05.000Z',
        extra: { note: 'x', n: 2 },
      });
      assert.ok(Object.isFrozen(rec));
      assert.deepEqual(await s.lookup('contact', guid(1).toUpperCase()), rec);
      assert.deepEqual(await s.lookupBySiaghCode('contact', 12), rec);
      assert.deepEqual(await s.lookupByCustomerNumber('7001'), rec);
      assert.equal(await s.lookup('quote', guid(1)), undefined, 'types are apart');
      assert.equal(await s.lookupBySiaghCode('contact', '13'), undefined);
      assert.equal(await s.lookupByCustomerNumber('7002'), undefined);
      // a second contact with the same customer number (duplicates in the CRM): the first stays the answer
      await s.store({ entityType: 'contact', crmId: guid(2), siaghCode: '14', customerNumber: '7001', source: 'poll' });
      assert.equal((await s.lookupByCustomerNumber('7001'))?.crmId, guid(1));
      assert.deepEqual(
        (await s.lookupAllByCustomerNumber('7001')).map((r) => r.crmId),
        [guid(1), guid(2)],
      );
      const reread = await (await h.again()).lookup('contact', guid(1));
      assert.deepEqual(reread, rec, 'another instance reads the same record');
    });

    it('unique both ways: a code held by another CRM id is MAPPING_CONFLICT and writes nothing; a CRM id stored with a new code is repointed', async () => {
      await s.store({ entityType: 'contact', crmId: guid(1), siaghCode: '100', source: 'webhook' });
      await assert.rejects(s.store({ entityType: 'contact', crmId: guid(2), siaghCode: '100', source: 'webhook' }), (e: unknown) => {
        assert.ok(e instanceof SyncError);
        assert.equal(e.code, 'MAPPING_CONFLICT');
        assert.equal(e.retryable, false);
        assert.deepEqual(e.details, [guid(1), guid(2)]);
        assert.match(e.message, /already mapped to CRM id/);
        return true;
      });
      assert.equal(await s.lookup('contact', guid(2)), undefined, 'nothing written');
      assert.equal((await s.lookupBySiaghCode('contact', '100'))?.crmId, guid(1));
      // the same code in another type is another mapping
      await s.store({ entityType: 'quote', crmId: guid(2), siaghCode: '100', source: 'webhook' });
      // repoint: the CRM id moves to a new code and frees the old one
      await s.store({ entityType: 'contact', crmId: guid(1), siaghCode: '101', source: 'replay' });
      assert.equal(await s.lookupBySiaghCode('contact', '100'), undefined);
      assert.equal((await s.lookupBySiaghCode('contact', '101'))?.crmId, guid(1));
      await s.store({ entityType: 'contact', crmId: guid(3), siaghCode: '100', source: 'webhook' });
      assert.equal((await s.lookupBySiaghCode('contact', '100'))?.crmId, guid(3));
      assert.equal((await s.stats()).total, 3);
    });

    it('refuses bad input with BAD_INPUT and writes nothing', async () => {
      await assert.rejects(s.store({ entityType: 'lead' as never, crmId: guid(1), siaghCode: '1', source: 'x' }), isCode('BAD_INPUT'));
      await assert.rejects(s.store({ entityType: 'contact', crmId: '', siaghCode: '1', source: 'x' }), isCode('BAD_INPUT'));
      await assert.rejects(s.store({ entityType: 'contact', crmId: guid(1), siaghCode: '1', source: '' }), isCode('BAD_INPUT'));
      await assert.rejects(s.store({ entityType: 'contact', crmId: guid(1), siaghCode: '1', source: 'x', extra: { big: 'x'.repeat(9000) } }), isCode('BAD_INPUT'));
      await assert.rejects(s.setMeta('', 1), isCode('BAD_INPUT'));
      assert.equal((await s.stats()).total, 0);
    });

    it('lists in order of last write, contacts then quotes then invoices, in pages; stats count by type and source; delete removes', async () => {
      for (let i = 1; i <= 5; i++) await s.store({ entityType: 'contact', crmId: guid(i), siaghCode: String(i), source: i % 2 ? 'poll' : 'webhook' });
      await s.store({ entityType: 'invoice', crmId: guid(20), siaghCode: 'I-1', source: 'import' });
      await s.store({ entityType: 'quote', crmId: guid(10), siaghCode: 'Q-1', source: 'import' });
      await s.store({ entityType: 'contact', crmId: guid(2), siaghCode: '2', source: 'replay' }); // written last: moves to the end
      const ids = (rs: { crmId: string }[]) => rs.map((r) => r.crmId);
      assert.deepEqual(ids(await s.list()), [guid(1), guid(3), guid(4), guid(5), guid(2), guid(10), guid(20)]);
      assert.deepEqual(ids(await s.list({ offset: 3, limit: 3 })), [guid(5), guid(2), guid(10)]);
      assert.deepEqual(ids(await s.list({ offset: 6, limit: 10 })), [guid(20)]);
      assert.deepEqual(ids(await s.list({ entityType: 'contact', offset: 1, limit: 2 })), [guid(3), guid(4)]);
      assert.deepEqual(await s.list({ limit: 0 }), []);
      assert.deepEqual(await s.list({ offset: 50 }), []);
      const st = await s.stats();
      assert.equal(st.total, 7);
      assert.deepEqual(st.byType, { contact: 5, quote: 1, invoice: 1 });
      assert.deepEqual(st.bySource, { poll: 3, webhook: 1, replay: 1, import: 2 });
      assert.ok(st.lastWriteAt);
      assert.equal(await s.delete('contact', guid(3)), true);
      assert.equal(await s.delete('contact', guid(3)), false);
      assert.equal(await s.lookup('contact', guid(3)), undefined);
      assert.equal(await s.lookupBySiaghCode('contact', '3'), undefined);
      assert.deepEqual((await s.stats()).byType, { contact: 4, quote: 1, invoice: 1 });
      // a deleted code may be mapped again
      await s.store({ entityType: 'contact', crmId: guid(30), siaghCode: '3', source: 'manual' });
      assert.equal((await s.lookupBySiaghCode('contact', 3))?.crmId, guid(30));
    });

    it('meta keeps a poll cursor: set, read back, moved on, read by another instance, removed', async () => {
      assert.equal(await s.getMeta('poll:identity'), undefined);
      await s.setMeta('poll:identity', { since: '2026-01-01T00:00:00.000Z', seen: ['a', 'b'] });
      assert.deepEqual(await s.getMeta('poll:identity'), { since: '2026-01-01T00:00:00.000Z', seen: ['a', 'b'] });
      await s.setMeta('poll:identity', { since: '2026-01-02T00:00:00.000Z', seen: [] });
      await s.setMeta('create:quote:x', 'started');
      await s.setMeta('zero', 0);
      const other = await h.again();
      assert.deepEqual(await other.getMeta('poll:identity'), { since: '2026-01-02T00:00:00.000Z', seen: [] });
      assert.equal(await other.getMeta('create:quote:x'), 'started');
      assert.equal(await other.getMeta('zero'), 0);
      assert.deepEqual(await s.metaEntries(), { 'create:quote:x': 'started', 'poll:identity': { since: '2026-01-02T00:00:00.000Z', seen: [] }, zero: 0 });
      await s.setMeta('create:quote:x', undefined);
      assert.equal(await other.getMeta('create:quote:x'), undefined);
      await assert.rejects(s.setMeta('k', { f: () => 1, n: 1n } as unknown), isCode('BAD_INPUT'));
    });

    it('claims: one holder per entity; others wait up to waitMs (then MAPPING_BUSY, retryable) and get it on release', async () => {
      const t1 = await s.claim('contact', guid(1));
      assert.equal(await s.isClaimed('contact', guid(1)), true);
      assert.equal(await s.isClaimed('contact', guid(2)), false);
      await assert.rejects(s.claim('contact', guid(1), { waitMs: 0 }), (e: unknown) => e instanceof SyncError && e.code === 'MAPPING_BUSY' && e.retryable);
      await assert.rejects(s.claim('contact', guid(1), { waitMs: 80 }), (e: unknown) => e instanceof SyncError && e.code === 'MAPPING_BUSY' && e.message.includes(guid(1)));
      // other entities and types do not wait
      const other = await s.claim('contact', guid(2), { waitMs: 0 });
      const quote = await s.claim('quote', guid(1), { waitMs: 0 });
      assert.ok(other && quote && other !== t1);
      let t2: string | undefined;
      const waiting = s.claim('contact', guid(1), { waitMs: 5000 }).then((t) => (t2 = t));
      await sleep(60);
      assert.equal(t2, undefined, 'the second waits');
      await s.release('contact', guid(1), t1);
      await waiting;
      assert.ok(t2 && t2 !== t1);
      await s.release('contact', guid(1), t1); // the old token frees nothing
      assert.equal(await s.isClaimed('contact', guid(1)), true);
      await s.release('contact', guid(1), t2!);
      assert.equal(await s.isClaimed('contact', guid(1)), false);
    });

    it('claims: store() with the token ends the claim; a lease runs out (holder gone); renew keeps it; a stale token renews and releases nothing', async () => {
      const t1 = await s.claim('quote', guid(3));
      await s.store({ entityType: 'quote', crmId: guid(3), siaghCode: '9001', source: 'webhook' }, { claimToken: t1 });
      assert.equal(await s.isClaimed('quote', guid(3)), false);

      // a holder that never comes back: its lease ends and the entity is free again
      await s.claim('contact', guid(6), { leaseMs: 100 });
      assert.equal(await s.isClaimed('contact', guid(6)), true);
      await sleep(200);
      assert.equal(await s.isClaimed('contact', guid(6)), false);

      // renewing keeps the claim past its first lease
      const t3 = await s.claim('contact', guid(7), { leaseMs: 300 });
      for (let i = 0; i < 3; i++) {
        await sleep(150);
        assert.equal(await s.renewClaim('contact', guid(7), t3, 300), true);
      }
      assert.equal(await s.isClaimed('contact', guid(7)), true, 'held 450 ms on a 300 ms lease');
      await assert.rejects(s.claim('contact', guid(7), { waitMs: 0 }), isCode('MAPPING_BUSY'));
      await s.release('contact', guid(7), t3);

      // stale: the lease ran out and someone else holds it now
      const old = await s.claim('contact', guid(8), { leaseMs: 100 });
      const fresh = await s.claim('contact', guid(8), { waitMs: 5000 });
      assert.notEqual(old, fresh);
      assert.equal(await s.renewClaim('contact', guid(8), old), false);
      await s.release('contact', guid(8), old);
      assert.equal(await s.isClaimed('contact', guid(8)), true, 'the stale release did not free the new holder');
      // store() with the stale token records what happened in Siagh, and leaves the new holder's claim alone
      await s.store({ entityType: 'contact', crmId: guid(8), siaghCode: '808', source: 'webhook' }, { claimToken: old });
      assert.equal((await s.lookup('contact', guid(8)))?.siaghCode, '808');
      assert.equal(await s.isClaimed('contact', guid(8)), true);
      assert.equal(await s.renewClaim('contact', guid(8), fresh), true);
      await s.release('contact', guid(8), fresh);
      assert.equal(await s.isClaimed('contact', guid(8)), false);
      assert.equal(await s.renewClaim('contact', guid(8), fresh), false, 'released: nothing to renew');
    });

    it('claims across two instances: a holder that stops renewing lets go after its lease; one that keeps renewing keeps it; a renewal without a lease keeps the claim\'s own', async () => {
      const b = await h.again();
      // silent holder (its instance alive): the claim passes on after its lease, to the other instance
      await s.claim('contact', guid(21), { leaseMs: 600 });
      await assert.rejects(b.claim('contact', guid(21), { waitMs: 0 }), isCode('MAPPING_BUSY'));
      assert.ok(await b.claim('contact', guid(21), { waitMs: 20_000 }), 'b got it after the silent holder\'s lease');

      // a holder that keeps renewing (signs of life) keeps it past several leases
      const t = await s.claim('contact', guid(22), { leaseMs: 400 });
      for (let i = 0; i < 6; i++) {
        await sleep(120);
        assert.equal(await s.renewClaim('contact', guid(22), t), true);
      }
      assert.equal(await b.isClaimed('contact', guid(22)), true, 'held well past its 400 ms lease');
      await assert.rejects(b.claim('contact', guid(22), { waitMs: 0 }), isCode('MAPPING_BUSY'));
      await s.release('contact', guid(22), t);
      assert.ok(await b.claim('contact', guid(22), { waitMs: 0 }), 'released: b takes it at once');

      // a renewal without a lease gives the claim its own lease again, not the store's default (60 s)
      const t2 = await s.claim('quote', guid(23), { leaseMs: 300 });
      assert.equal(await s.renewClaim('quote', guid(23), t2), true);
      assert.ok(await b.claim('quote', guid(23), { waitMs: 20_000 }), 'b got it after the 300 ms lease, well before 60 s');
    });

    it('only one of three racing messages creates: the others see its mapping', async () => {
      let creates = 0;
      const handle = async (): Promise<string> => {
        const token = await s.claim('contact', guid(5), { waitMs: 10_000 });
        try {
          const m = await s.lookup('contact', guid(5));
          if (m) return `update ${m.siaghCode}`;
          creates++;
          await sleep(20); // "create in Siagh"
          const rec = await s.store({ entityType: 'contact', crmId: guid(5), siaghCode: '555', source: 'webhook' }, { claimToken: token });
          return `created ${rec.siaghCode}`;
        } finally {
          await s.release('contact', guid(5), token);
        }
      };
      const results = await Promise.all([handle(), handle(), handle()]);
      assert.equal(creates, 1);
      assert.deepEqual(results.sort(), ['created 555', 'update 555', 'update 555']);
    });

    it('a closed store refuses to work', async () => {
      const b = await h.again();
      await b.close();
      await s.store({ entityType: 'contact', crmId: guid(1), siaghCode: '1', source: 'x' }); // the first instance still works
      if (s.kind === 'postgres') await assert.rejects(b.lookup('contact', guid(1)), isCode('STORE_IO'));
    });
  });
}

conformance('file', fileHarness);

describe('mapping store on PostgreSQL: shared by instances (real server)', function () {
  this.timeout(60_000);
  let server: PgServer;
  before(async () => {
    server = await PgServer.start();
  });
  after(async () => {
    await server?.close();
  });

  conformance('postgres', () => pgHarness(() => server));

  describe('what several instances add', () => {
    const pools: Pool[] = [];
    const instance = async (url: string) => {
      const p = openPool({ connectionString: url }, () => undefined);
      pools.push(p);
      return PgMappingStore.open(p, { claimPollMs: 20 });
    };
    afterEach(async () => {
      await Promise.all(pools.splice(0).map((p) => p.end().catch(() => undefined)));
    });

    it('three instances starting together migrate once; claiming one record concurrently, they get it one at a time and create once', async () => {
      const url = await server.database();
      const stores = await Promise.all([instance(url), instance(url), instance(url)]);
      let inside = 0;
      let maxInside = 0;
      let creates = 0;
      const work = async (s: PgMappingStore, round: number) => {
        const token = await s.claim('contact', guid(9), { waitMs: 20_000, leaseMs: 10_000 });
        inside++;
        maxInside = Math.max(maxInside, inside);
        try {
          const m = await s.lookup('contact', guid(9));
          if (!m) {
            creates++;
            await sleep(30);
            await s.store({ entityType: 'contact', crmId: guid(9), siaghCode: '909', source: 'webhook' });
          } else {
            await sleep(5);
            await s.store({ ...m, checksum: `r${round}` });
          }
        } finally {
          inside--;
          await s.release('contact', guid(9), token);
        }
      };
      await Promise.all(stores.flatMap((s, i) => [0, 1, 2, 3].map((r) => work(s, i * 10 + r))));
      assert.equal(maxInside, 1, 'never two holders at once');
      assert.equal(creates, 1);
      assert.equal((await stores[0].stats()).total, 1);
      assert.equal(await stores[2].isClaimed('contact', guid(9)), false);
      const v = await pools[0].query("SELECT version FROM siagh_sync_schema WHERE component = 'mapping'");
      assert.deepEqual(v.rows, [{ version: 1 }]);
    });

    it('a killed instance\'s claims pass on within its live lease, long before their own lease; while it lives its heartbeat keeps them', async () => {
      const url = await server.database();
      const p = openPool({ connectionString: url }, () => undefined);
      const a = await PgMappingStore.open(p, { claimPollMs: 20, liveLeaseMs: 300 });
      const b = await instance(url);
      try {
        // a 10-minute claim, no renewal by its holder: a's heartbeat (every 100 ms) keeps it past many live leases
        await a.claim('contact', guid(31), { leaseMs: 600_000, waitMs: 0 });
        await assert.rejects(b.claim('contact', guid(31), { waitMs: 1500 }), isCode('MAPPING_BUSY'));
        // kill -9: the connections go and nothing more comes from a (no release)
        await p.end();
        const t = await b.claim('contact', guid(31), { waitMs: 20_000 });
        assert.ok(t, 'b holds it, well within the 10-minute lease');
      } finally {
        await a.close();
        await p.end().catch(() => undefined);
      }
    });

    it('a claim left by an instance that died passes to another when its lease ends', async () => {
      const url = await server.database();
      const a = await instance(url);
      const b = await instance(url);
      await a.claim('invoice', guid(4), { leaseMs: 300 });
      await pools[0].end(); // instance a is gone, its claim still in the table
      const started = Date.now();
      const t = await b.claim('invoice', guid(4), { waitMs: 5000 });
      assert.ok(t);
      assert.ok(Date.now() - started >= 150, 'b waited for the lease');
    });

    it('a server restart mid-run: writes pause with retryable STORE_IO, resume, and every acknowledged record is there', async () => {
      const url = await server.database();
      const s = await instance(url);
      const acked: string[] = [];
      let transient = 0;
      let restarted = false;
      for (let i = 1; i <= 60; i++) {
        if (i === 20) {
          server.restart();
          restarted = true;
        }
        for (let attempt = 0; ; attempt++) {
          try {
            await s.store({ entityType: 'contact', crmId: guid(i), siaghCode: String(i), source: 'webhook' });
            acked.push(guid(i));
            break;
          } catch (e) {
            assert.ok(e instanceof SyncError && e.code === 'STORE_IO' && e.retryable, `retryable STORE_IO: ${String(e)}`);
            assert.ok(!/password|postgres:\/\/[^@\s]*:[^@\s]*@/.test(e.message), 'no secret in the message');
            transient++;
            assert.ok(attempt < 50, 'the store came back');
            await sleep(100);
          }
        }
        if (i === 30) await s.setMeta('poll:identity', { since: '2026-01-01T00:00:00.000Z' });
      }
      assert.ok(restarted);
      const fresh = await instance(url);
      const ids = (await fresh.list()).map((r) => r.crmId).sort();
      assert.deepEqual(ids, [...acked].sort());
      assert.equal(ids.length, 60);
      assert.deepEqual(await fresh.getMeta('poll:identity'), { since: '2026-01-01T00:00:00.000Z' });
      assert.ok(transient >= 1, 'the restart cut the pool’s connection: the next write failed retryably, a later one went through');
    });

    it('claims live in the database: a claim held across a server restart still holds, and a waiter gets it when its lease ends', async () => {
      const url = await server.database();
      const a = await instance(url);
      const b = await instance(url);
      const held = await a.claim('quote', guid(11), { leaseMs: 1500 });
      let got: string | undefined;
      const waiting = b.claim('quote', guid(11), { waitMs: 20_000 }).then((t) => (got = t));
      await sleep(100);
      server.restart();
      await sleep(300);
      assert.equal(got, undefined, 'the restart did not free the claim');
      await waiting;
      assert.ok(got && got !== held);
      assert.equal(await a.renewClaim('quote', guid(11), held), false, 'the first holder’s lease ended');
      await b.release('quote', guid(11), got!);
      assert.equal(await a.isClaimed('quote', guid(11)), false);
    });

    it('a wrong password is a clear STORE_IO error without the secret', async () => {
      const url = await server.database();
      const p = openPool({ connectionString: url, password: 'wrong-secret-pw' }, () => undefined);
      pools.push(p);
      await assert.rejects(PgMappingStore.open(p), (e: unknown) => {
        assert.ok(e instanceof SyncError);
        assert.equal(e.code, 'STORE_IO');
        assert.match(e.message, /refused the login: check the user and password/);
        assert.ok(!e.message.includes('wrong-secret-pw'));
        return true;
      });
    });
  });
});
