import assert from 'node:assert/strict';
import * as path from 'node:path';
import { MappingStore } from '../../../lib/store/mapping-store';
import { SyncError } from '../../../lib/errors';
import { guid, makeTempDir, removeDir } from '../../fixtures/store-helpers';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('mapping store: per-entity claims', () => {
  let dir: string;
  let s: MappingStore;
  beforeEach(async () => {
    dir = makeTempDir();
    s = await MappingStore.open(path.join(dir, 'mapping.json'));
  });
  afterEach(async () => {
    await s.close();
    removeDir(dir);
  });

  it('20 concurrent claims for one entity are served one at a time, in arrival order', async () => {
    let inside = 0;
    let maxInside = 0;
    const order: number[] = [];
    await Promise.all(
      Array.from({ length: 20 }, async (_, i) => {
        const token = await s.claim('contact', guid(1));
        inside++;
        maxInside = Math.max(maxInside, inside);
        order.push(i);
        await sleep(2);
        inside--;
        s.release('contact', guid(1), token);
      }),
    );
    assert.equal(maxInside, 1);
    assert.deepEqual(
      order,
      Array.from({ length: 20 }, (_, i) => i),
    );
    assert.equal(s.isClaimed('contact', guid(1)), false);
  });

  it('claims on different entities (or types) do not wait for each other', async () => {
    const a = await s.claim('contact', guid(1));
    const b = await s.claim('contact', guid(2), { waitMs: 0 });
    const c = await s.claim('quote', guid(1), { waitMs: 0 });
    assert.ok(a && b && c);
    assert.notEqual(a, b);
  });

  it('only one of two racing messages creates: the second sees the first one’s mapping', async () => {
    let creates = 0;
    const handle = async (): Promise<string> => {
      const token = await s.claim('contact', guid(5));
      try {
        const m = s.lookup('contact', guid(5));
        if (m) return `update ${m.siaghCode}`;
        creates++;
        await sleep(5); // "create in Siagh"
        const rec = await s.store({ entityType: 'contact', crmId: guid(5), siaghCode: '555', source: 'webhook' }, { claimToken: token });
        return `created ${rec.siaghCode}`;
      } finally {
        s.release('contact', guid(5), token);
      }
    };
    const results = await Promise.all([handle(), handle(), handle()]);
    assert.equal(creates, 1);
    assert.deepEqual(results.sort(), ['created 555', 'update 555', 'update 555']);
  });

  it('store() with the claim token releases the claim for the next waiter', async () => {
    const t1 = await s.claim('quote', guid(3));
    let t2: string | undefined;
    const waiting = s.claim('quote', guid(3)).then((t) => (t2 = t));
    await sleep(5);
    assert.equal(t2, undefined, 'the second waits');
    await s.store({ entityType: 'quote', crmId: guid(3), siaghCode: '9001', source: 'webhook' }, { claimToken: t1 });
    await waiting;
    assert.ok(t2 && t2 !== t1);
    // the old token is now worthless: releasing with it changes nothing
    s.release('quote', guid(3), t1);
    assert.equal(s.isClaimed('quote', guid(3)), true);
    await assert.rejects(s.claim('quote', guid(3), { waitMs: 0 }), (e: unknown) => e instanceof SyncError && e.code === 'MAPPING_BUSY');
    s.release('quote', guid(3), t2!);
    assert.equal(s.isClaimed('quote', guid(3)), false);
  });

  it('a claim whose lease ends passes to the next waiter', async () => {
    const t1 = await s.claim('contact', guid(4), { leaseMs: 30 });
    const t2 = await s.claim('contact', guid(4), { waitMs: 5000 });
    assert.notEqual(t1, t2);
    // the expired holder's release does not free the new holder's claim
    s.release('contact', guid(4), t1);
    assert.equal(s.isClaimed('contact', guid(4)), true);
    s.release('contact', guid(4), t2);
    // and a lease that ends with nobody waiting frees the entity
    await s.claim('contact', guid(6), { leaseMs: 10 });
    await sleep(40);
    assert.equal(s.isClaimed('contact', guid(6)), false);
  });

  it('waiting longer than waitMs rejects with MAPPING_BUSY (retryable) and leaves the queue', async () => {
    const t1 = await s.claim('invoice', guid(8));
    await assert.rejects(s.claim('invoice', guid(8), { waitMs: 30 }), (e: unknown) => {
      assert.ok(e instanceof SyncError);
      assert.equal(e.code, 'MAPPING_BUSY');
      assert.equal(e.retryable, true);
      assert.ok(e.message.includes(guid(8)));
      return true;
    });
    // the timed-out waiter is gone: a release hands the claim to nobody, a new claim gets it at once
    s.release('invoice', guid(8), t1);
    assert.equal(s.isClaimed('invoice', guid(8)), false);
    const t3 = await s.claim('invoice', guid(8), { waitMs: 0 });
    s.release('invoice', guid(8), t3);
  });

  it('the last close rejects waiting claims', async () => {
    const other = await MappingStore.open(path.join(dir, 'other.json'));
    await other.claim('contact', guid(1));
    const waiting = assert.rejects(other.claim('contact', guid(1), { waitMs: 10_000 }), (e: unknown) => e instanceof SyncError && e.code === 'MAPPING_BUSY');
    await other.close();
    await waiting;
  });
});
