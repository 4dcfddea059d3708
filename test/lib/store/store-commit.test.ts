import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { MappingStore } from '../../../lib/store/mapping-store';
import { SyncError } from '../../../lib/errors';
import { guid, makeTempDir, readOnDisk, removeDir } from '../../fixtures/store-helpers';

describe('mapping store: group commit and durability', () => {
  let dir: string;
  let file: string;
  beforeEach(() => {
    dir = makeTempDir();
    file = path.join(dir, 'mapping.json');
  });
  afterEach(() => removeDir(dir));

  it('200 concurrent stores are all durable and share a few file writes', async () => {
    const s = await MappingStore.open(file);
    const before = s.writeCount;
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        s.store({ entityType: i % 2 ? 'contact' : 'quote', crmId: guid(i), siaghCode: String(1000 + i), source: 'import', customerNumber: `100-${2000 + i}` }),
      ),
    );
    const writes = s.writeCount - before;
    assert.equal(results.length, 200);
    assert.ok(writes >= 1 && writes <= 3, `200 stores took ${writes} file writes`);
    // durable: the files on disk (snapshot + journal, read by an independent parser) already hold every record
    const onDisk = readOnDisk(file);
    for (let i = 0; i < 200; i++) {
      const t = i % 2 ? 'contact' : 'quote';
      assert.equal(onDisk.mappings[t][guid(i)].siaghCode, String(1000 + i));
    }
    await s.close();
  });

  it('stores arriving while a write runs go into the next commit (about two writes per burst)', async () => {
    const s = await MappingStore.open(file);
    try {
      const before = s.writeCount;
      const first = s.store({ entityType: 'contact', crmId: guid(0), siaghCode: '0', source: 'webhook' });
      // let the first commit start, then send a burst while it is on its way to disk
      await new Promise((r) => setImmediate(r));
      const burst = Array.from({ length: 100 }, (_, i) => s.store({ entityType: 'contact', crmId: guid(i + 1), siaghCode: String(i + 1), source: 'webhook' }));
      await Promise.all([first, ...burst]);
      const writes = s.writeCount - before;
      assert.ok(writes >= 1 && writes <= 3, `101 stores took ${writes} writes`);
      assert.equal(s.stats().total, 101);
    } finally {
      await s.close();
    }
  });

  it('a store is visible to lookups at once, and each promise resolves only after its write', async () => {
    const s = await MappingStore.open(file);
    try {
      const p = s.store({ entityType: 'contact', crmId: guid(7), siaghCode: '7', source: 'webhook' });
      // memory first: a concurrent message sees the mapping (and the uniqueness check uses it)
      assert.equal(s.lookup('contact', guid(7))?.siaghCode, '7');
      await assert.rejects(s.store({ entityType: 'contact', crmId: guid(8), siaghCode: '7', source: 'webhook' }), (e: unknown) => e instanceof SyncError && e.code === 'MAPPING_CONFLICT');
      await p;
      assert.equal(readOnDisk(file).mappings.contact[guid(7)].siaghCode, '7');
    } finally {
      await s.close();
    }
  });

  it('commitDelayMs gathers sequential stores; flush and close write what is pending', async () => {
    const s = await MappingStore.open(file, { commitDelayMs: 50 });
    const before = s.writeCount;
    const ps: Promise<unknown>[] = [];
    for (let i = 0; i < 10; i++) {
      ps.push(s.store({ entityType: 'invoice', crmId: guid(i), siaghCode: String(i), source: 'poll' }));
      await new Promise((r) => setTimeout(r, 1));
    }
    ps.push(s.setMeta('cursor', { at: 10 }));
    await s.flush();
    await Promise.all(ps);
    assert.ok(s.writeCount - before <= 2, `took ${s.writeCount - before} writes`);
    const last = s.store({ entityType: 'invoice', crmId: guid(99), siaghCode: '99', source: 'poll' });
    await s.close(); // does not wait for the 50 ms timer to be useful, but must write it
    await last;
    const onDisk = JSON.parse(fs.readFileSync(file, 'utf8'));
    assert.equal(onDisk.mappings.invoice[guid(99)].siaghCode, '99');
    assert.deepEqual(onDisk.meta.cursor, { at: 10 });
  });

  it('a failed write rejects with STORE_IO (retryable); the change is written by the next commit', async () => {
    const s = await MappingStore.open(file);
    try {
      await s.store({ entityType: 'contact', crmId: guid(1), siaghCode: '1', source: 'x' });
      await s.compact(); // the journal is folded into the snapshot and set aside: the next commit creates it again
      assert.equal(fs.existsSync(`${file}.journal`), false);
      // Put a directory where the journal must go: the next write fails whatever our privileges.
      const journal = `${file}.journal`;
      fs.mkdirSync(journal);
      await assert.rejects(s.store({ entityType: 'contact', crmId: guid(2), siaghCode: '2', source: 'x' }), (e: unknown) => {
        assert.ok(e instanceof SyncError);
        assert.equal(e.code, 'STORE_IO');
        assert.equal(e.retryable, true);
        assert.ok(e.message.includes(file));
        return true;
      });
      assert.equal(s.lookup('contact', guid(2))?.siaghCode, '2', 'kept in memory');
      fs.rmdirSync(journal);
      assert.equal(readOnDisk(file).mappings.contact[guid(2)], undefined);
      await s.flush(); // the kept change is written now
      assert.equal(readOnDisk(file).mappings.contact[guid(2)].siaghCode, '2');
      assert.equal(readOnDisk(file).mappings.contact[guid(1)].siaghCode, '1');
    } finally {
      await s.close();
    }
  });

});
