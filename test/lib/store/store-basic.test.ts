import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { MappingStore } from '../../../lib/store/mapping-store';
import type { SyncError } from '../../../lib/errors';
import { guid, makeTempDir, removeDir } from '../../fixtures/store-helpers';
import { isCode } from '../../helpers/assert-code';

describe('mapping store: records, indexes, meta', () => {
  let dir: string;
  let file: string;
  beforeEach(() => {
    dir = makeTempDir();
    file = path.join(dir, 'mapping.json');
  });
  afterEach(() => removeDir(dir));

  it('stores, looks up (by CRM id, Siagh code, customer number), lists, counts and deletes', async () => {
    const s = await MappingStore.open(file);
    try {
      const c1 = await s.store({ entityType: 'contact', crmId: guid(1).toUpperCase(), siaghCode: 5500014, customerNumber: '100-9407', source: 'webhook', checksum: 'abc' });
      assert.equal(c1.crmId, guid(1), 'CRM id is kept lower-case');
      assert.equal(c1.siaghCode, '5500014', 'numeric code kept as text');
      assert.ok(!Number.isNaN(Date.parse(c1.syncedAt)));
      await s.store({ entityType: 'contact', crmId: `{${guid(2)}}`, siaghCode: '۸۳۲۷', source: 'import' });
      await s.store({ entityType: 'quote', crmId: guid(3), siaghCode: '1201', source: 'webhook', extra: { returnCode: 77, documentNumber: 1201 } });

      assert.deepEqual(s.lookup('contact', guid(1)), c1);
      assert.equal(s.lookup('contact', `  ${guid(1).toUpperCase()} `)?.siaghCode, '5500014');
      assert.equal(s.lookup('contact', guid(2))?.siaghCode, '8327', 'Persian digits stored as ASCII');
      assert.equal(s.lookupBySiaghCode('contact', 8327)?.crmId, guid(2));
      assert.equal(s.lookupBySiaghCode('contact', '۸۳۲۷')?.crmId, guid(2));
      assert.equal(s.lookupBySiaghCode('quote', '1201')?.extra?.returnCode, 77);
      assert.equal(s.lookupBySiaghCode('quote', '5500014'), undefined, 'codes are per entity type');
      assert.equal(s.lookup('quote', guid(1)), undefined);
      assert.equal(s.lookupByCustomerNumber('100-9407')?.crmId, guid(1));
      assert.equal(s.lookupByCustomerNumber('100-۹۴۰۷')?.crmId, guid(1));
      assert.equal(s.lookupByCustomerNumber('100-1'), undefined);

      assert.deepEqual(
        s.list().map((r) => r.crmId),
        [guid(1), guid(2), guid(3)],
      );
      assert.deepEqual(
        s.list({ entityType: 'contact' }).map((r) => r.crmId),
        [guid(1), guid(2)],
      );
      assert.deepEqual(
        s.list({ offset: 1, limit: 1 }).map((r) => r.crmId),
        [guid(2)],
      );
      assert.deepEqual(
        s.list({ offset: 2 }).map((r) => r.crmId),
        [guid(3)],
      );
      assert.deepEqual(s.list({ offset: 5 }), []);

      const st = s.stats();
      assert.equal(st.total, 3);
      assert.deepEqual(st.byType, { contact: 2, quote: 1, invoice: 0 });
      assert.deepEqual(st.bySource, { webhook: 2, import: 1 });
      assert.ok(st.lastWriteAt);
      assert.ok((st.fileBytes ?? 0) > 100);

      assert.equal(await s.delete('contact', guid(1)), true);
      assert.equal(await s.delete('contact', guid(1)), false);
      assert.equal(s.lookup('contact', guid(1)), undefined);
      assert.equal(s.lookupBySiaghCode('contact', 5500014), undefined);
      assert.equal(s.lookupByCustomerNumber('100-9407'), undefined);
      assert.deepEqual(s.stats().bySource, { import: 1, webhook: 1 });
    } finally {
      await s.close();
    }
    // everything survives a reopen, indexes rebuilt from the file
    const s2 = await MappingStore.open(file);
    try {
      assert.equal(s2.stats().total, 2);
      assert.equal(s2.lookupBySiaghCode('contact', '8327')?.crmId, guid(2));
      assert.equal(s2.lookupBySiaghCode('quote', 1201)?.extra?.documentNumber, 1201);
      assert.equal(s2.lookup('contact', guid(1)), undefined);
    } finally {
      await s2.close();
    }
    const onDisk = JSON.parse(fs.readFileSync(file, 'utf8'));
    assert.equal(onDisk.version, 1);
    assert.ok(onDisk.mappings.contact[guid(2)]);
    assert.ok(onDisk.meta && typeof onDisk.meta === 'object');
    assert.ok(!fs.readFileSync(file, 'utf8').includes('\n'), 'compact JSON');
  });

  it('is unique both ways per entity type: a second CRM id for a code is refused and nothing is written', async () => {
    const s = await MappingStore.open(file);
    try {
      await s.store({ entityType: 'contact', crmId: guid(1), siaghCode: '100', source: 'webhook' });
      const writes = s.writeCount;
      await assert.rejects(s.store({ entityType: 'contact', crmId: guid(2), siaghCode: ' 100 ', source: 'webhook' }), (e: unknown) => {
        isCode('MAPPING_CONFLICT')(e);
        const err = e as SyncError;
        assert.match(err.message, new RegExp(guid(1)));
        assert.match(err.message, new RegExp(guid(2)));
        assert.match(err.message, /100/);
        assert.deepEqual(err.details, [guid(1), guid(2)]);
        return true;
      });
      assert.equal(s.writeCount, writes, 'no file write for a refused store');
      assert.equal(s.lookup('contact', guid(2)), undefined);
      assert.equal(s.lookupBySiaghCode('contact', 100)?.crmId, guid(1));
      // the same code under another type is fine
      await s.store({ entityType: 'invoice', crmId: guid(2), siaghCode: '100', source: 'webhook' });
      // one CRM id has one code: storing a new code repoints it and frees the old one
      await s.store({ entityType: 'contact', crmId: guid(1), siaghCode: '101', source: 'webhook' });
      assert.equal(s.lookupBySiaghCode('contact', 100), undefined);
      assert.equal(s.lookupBySiaghCode('contact', 101)?.crmId, guid(1));
      assert.equal(s.stats().byType.contact, 1);
      await s.store({ entityType: 'contact', crmId: guid(2), siaghCode: '100', source: 'manual' });
      assert.equal(s.lookupBySiaghCode('contact', 100)?.crmId, guid(2));
      // storing the same pair again is an update, not a conflict
      const again = await s.store({ entityType: 'contact', crmId: guid(2), siaghCode: 100, source: 'poll', checksum: 'x2' });
      assert.equal(again.checksum, 'x2');
      assert.deepEqual(s.stats().bySource, { webhook: 2, poll: 1 });
    } finally {
      await s.close();
    }
  });

  it('customer-number index: contacts only, follows updates, reports shared numbers', async () => {
    const s = await MappingStore.open(file);
    try {
      await s.store({ entityType: 'contact', crmId: guid(1), siaghCode: '1', customerNumber: '100-1001', source: 'import' });
      await s.store({ entityType: 'quote', crmId: guid(9), siaghCode: '1', customerNumber: '100-5555', source: 'webhook' });
      assert.equal(s.lookupByCustomerNumber('100-5555'), undefined, 'quotes are not in the customer index');
      await s.store({ entityType: 'contact', crmId: guid(1), siaghCode: '1', customerNumber: '100-2002', source: 'import' });
      assert.equal(s.lookupByCustomerNumber('100-1001'), undefined);
      assert.equal(s.lookupByCustomerNumber('100-2002')?.crmId, guid(1));
      // two CRM contacts with one customer number: both stored (never lose a mapping), the oldest answers
      await s.store({ entityType: 'contact', crmId: guid(2), siaghCode: '2', customerNumber: '100-2002', source: 'import' });
      assert.equal(s.lookupByCustomerNumber('100-2002')?.crmId, guid(1));
      assert.deepEqual(
        s.lookupAllByCustomerNumber('100-2002').map((r) => r.crmId),
        [guid(1), guid(2)],
      );
      await s.delete('contact', guid(1));
      assert.equal(s.lookupByCustomerNumber('100-2002')?.crmId, guid(2));
    } finally {
      await s.close();
    }
  });

  it('meta: durable small values, cloned in and out, undefined removes', async () => {
    const s = await MappingStore.open(file);
    const cursor = { since: '2026-01-01T00:00:00Z', page: 3 };
    try {
      assert.equal(s.getMeta('poll.contact'), undefined);
      await s.setMeta('poll.contact', cursor);
      cursor.page = 99;
      assert.deepEqual(s.getMeta('poll.contact'), { since: '2026-01-01T00:00:00Z', page: 3 });
      const got = s.getMeta<{ page: number }>('poll.contact')!;
      got.page = 1000;
      assert.equal(s.getMeta<{ page: number }>('poll.contact')!.page, 3);
      await s.setMeta('import.progress', 1234);
      await s.setMeta('gone', 'x');
      await s.setMeta('gone', undefined);
      await assert.rejects(s.setMeta('bad', { n: 10n }), isCode('BAD_INPUT'));
    } finally {
      await s.close();
    }
    const s2 = await MappingStore.open(file);
    try {
      assert.deepEqual(s2.getMeta('poll.contact'), { since: '2026-01-01T00:00:00Z', page: 3 });
      assert.equal(s2.getMeta('import.progress'), 1234);
      assert.equal(s2.getMeta('gone'), undefined);
      assert.equal(s2.stats().total, 0, 'meta is not counted as mappings');
    } finally {
      await s2.close();
    }
  });

  it('rejects bad input with BAD_INPUT and hands out frozen records', async () => {
    const s = await MappingStore.open(file);
    try {
      await assert.rejects(s.store({ entityType: 'order' as never, crmId: guid(1), siaghCode: '1', source: 'x' }), isCode('BAD_INPUT'));
      await assert.rejects(s.store({ entityType: 'contact', crmId: '  ', siaghCode: '1', source: 'x' }), isCode('BAD_INPUT'));
      await assert.rejects(s.store({ entityType: 'contact', crmId: guid(1), siaghCode: '', source: 'x' }), isCode('BAD_INPUT'));
      await assert.rejects(s.store({ entityType: 'contact', crmId: guid(1), siaghCode: '1', source: '' }), isCode('BAD_INPUT'));
      await assert.rejects(s.store({ entityType: 'contact', crmId: guid(1), siaghCode: '1', source: 'x', syncedAt: 'yesterday' }), isCode('BAD_INPUT'));
      await assert.rejects(s.store({ entityType: 'contact', crmId: guid(1), siaghCode: '1', source: 'x', extra: { big: 'x'.repeat(10_000) } }), isCode('BAD_INPUT'));
      assert.throws(() => s.lookup('nope' as never, guid(1)), isCode('BAD_INPUT'));
      assert.equal(s.stats().total, 0);
      const rec = await s.store({ entityType: 'contact', crmId: guid(1), siaghCode: '1', source: 'x', syncedAt: '2026-02-03T04:05:06+03:30', extra: { a: { b: 1 } } });
      assert.equal(rec.syncedAt, '2026-02-03T00:35:06.000Z');
      assert.ok(Object.isFrozen(rec));
      assert.throws(() => {
        (rec as { siaghCode: string }).siaghCode = '2';
      }, TypeError);
      assert.equal(s.lookupBySiaghCode('contact', 1)?.crmId, guid(1));
    } finally {
      await s.close();
    }
  });

  it('shares one instance per path, reference-counted; the last close releases it', async () => {
    assert.equal(MappingStore.peek(file), undefined);
    const a = await MappingStore.open(file);
    const b = await MappingStore.open(path.join(dir, '.', 'sub', '..', 'mapping.json'));
    assert.equal(a, b);
    assert.equal(a.refCount, 2);
    assert.equal(MappingStore.peek(a.filePath), a);
    assert.equal(MappingStore.peek(file), a);
    assert.equal(a.refCount, 2, 'peek adds no reference');
    const [c, d] = await Promise.all([MappingStore.open(file), MappingStore.open(file)]);
    assert.equal(c, a);
    assert.equal(d, a);
    assert.equal(a.refCount, 4);
    await a.store({ entityType: 'contact', crmId: guid(1), siaghCode: '1', source: 'x' });
    await a.close();
    await a.close();
    await a.close();
    assert.equal(a.refCount, 1);
    assert.ok(fs.existsSync(`${file}.lock`), 'still locked while one user remains');
    assert.equal(b.lookup('contact', guid(1))?.siaghCode, '1');
    await b.close();
    assert.equal(fs.existsSync(`${file}.lock`), false, 'lock released by the last close');
    assert.equal(MappingStore.peek(file), undefined);
    assert.throws(() => a.lookup('contact', guid(1)), isCode('STORE_IO'));
    await assert.rejects(a.store({ entityType: 'contact', crmId: guid(2), siaghCode: '2', source: 'x' }), isCode('STORE_IO'));
    // an open racing with a last close waits for it (no STORE_LOCKED from our own lock)
    const f = await MappingStore.open(file);
    await f.store({ entityType: 'contact', crmId: guid(3), siaghCode: '3', source: 'x' });
    const closing = f.close();
    const e = await MappingStore.open(file);
    await closing;
    try {
      assert.notEqual(e, f);
      assert.equal(e.lookup('contact', guid(3))?.siaghCode, '3');
      assert.notEqual(e, a, 'a fresh instance after the last close');
      assert.equal(e.refCount, 1);
      assert.equal(e.lookup('contact', guid(1))?.siaghCode, '1');
    } finally {
      await e.close();
    }
  });

  it('keeps a backup and refuses an unreadable main file, naming the backup', async () => {
    const s = await MappingStore.open(file);
    await s.store({ entityType: 'contact', crmId: guid(1), siaghCode: '1', source: 'x' });
    await s.close();
    const s2 = await MappingStore.open(file); // the open copies the good file to .bak
    await s2.close();
    const bak = `${file}.bak`;
    assert.ok(fs.existsSync(bak));
    assert.equal(JSON.parse(fs.readFileSync(bak, 'utf8')).mappings.contact[guid(1)].siaghCode, '1');

    fs.writeFileSync(file, '{"version":1,"mappings":{"contact":{"a'); // torn / damaged
    await assert.rejects(MappingStore.open(file), (e: unknown) => {
      isCode('STORE_IO')(e);
      const m = (e as Error).message;
      assert.ok(m.includes(bak), m);
      assert.match(m, /cannot be read/);
      assert.match(m, /holds 1 mappings/);
      return true;
    });
    assert.equal(fs.existsSync(`${file}.lock`), false, 'a refused open leaves no lock');
    assert.equal(fs.readFileSync(file, 'utf8'), '{"version":1,"mappings":{"contact":{"a', 'the damaged file is left alone');
    assert.equal(JSON.parse(fs.readFileSync(bak, 'utf8')).mappings.contact[guid(1)].siaghCode, '1', 'the backup is not overwritten');

    fs.writeFileSync(file, '');
    await assert.rejects(MappingStore.open(file), (e: unknown) => isCode('STORE_IO')(e) && (e as Error).message.includes(bak));

    // the operator restores the backup: everything is back
    fs.copyFileSync(bak, file);
    const s3 = await MappingStore.open(file);
    try {
      assert.equal(s3.lookup('contact', guid(1))?.siaghCode, '1');
    } finally {
      await s3.close();
    }
  });

  it('refuses a missing main file when a backup exists, a newer format, and a non-store file', async () => {
    const s = await MappingStore.open(file);
    await s.store({ entityType: 'contact', crmId: guid(1), siaghCode: '1', source: 'x' });
    await s.close();
    await (await MappingStore.open(file)).close();
    fs.unlinkSync(file);
    await assert.rejects(MappingStore.open(file), (e: unknown) => isCode('STORE_IO')(e) && /missing but its backup/.test((e as Error).message));

    const other = path.join(dir, 'v2.json');
    fs.writeFileSync(other, JSON.stringify({ version: 2, mappings: {} }));
    await assert.rejects(MappingStore.open(other), (e: unknown) => isCode('STORE_IO')(e) && /newer version/.test((e as Error).message));
    const arr = path.join(dir, 'arr.json');
    fs.writeFileSync(arr, '[1,2]');
    await assert.rejects(MappingStore.open(arr), (e: unknown) => isCode('STORE_IO')(e) && /No backup/.test((e as Error).message));
  });

  it('backup during writes is made at most once per interval', async () => {
    const s = await MappingStore.open(file, { backupIntervalMs: 60_000 });
    try {
      await s.store({ entityType: 'contact', crmId: guid(1), siaghCode: '1', source: 'x' });
      const bak = `${file}.bak`;
      assert.equal(fs.existsSync(bak), false, 'a fresh file has no backup at open');
      // the first compaction (journal folded into the file) makes one
      await s.compact();
      await waitUntil(() => fs.existsSync(bak));
      assert.equal(JSON.parse(fs.readFileSync(bak, 'utf8')).mappings.contact[guid(1)].siaghCode, '1');
      const first = fs.readFileSync(bak, 'utf8');
      for (let i = 2; i < 6; i++) await s.store({ entityType: 'contact', crmId: guid(i), siaghCode: String(i), source: 'x' });
      await s.compact();
      assert.equal(fs.readFileSync(bak, 'utf8'), first, 'no new copy within the interval');
    } finally {
      await s.close();
    }
    const t = await MappingStore.open(file, { backupIntervalMs: 0, backup: true });
    await t.close();
    assert.equal(JSON.parse(fs.readFileSync(`${file}.bak`, 'utf8')).mappings.contact[guid(5)].siaghCode, '5');
  });
});

async function waitUntil(cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}
