import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { MappingStore, readMappingFile, type MappingRecord } from '../../../lib/store/mapping-store';
import { guid, makeTempDir, readOnDisk, removeDir } from '../../fixtures/store-helpers';
import { isCode } from '../../helpers/assert-code';

/** Everything a store holds, comparable across instances. */
function dump(s: MappingStore): { records: MappingRecord[]; meta: Record<string, unknown> } {
  return { records: s.list().map((r) => ({ ...r })), meta: { cursor: s.getMeta('cursor'), progress: s.getMeta('progress') } };
}

describe('mapping store: journal and compaction', function () {
  this.timeout(30_000);
  let dir: string;
  let file: string;
  beforeEach(() => {
    dir = makeTempDir();
    file = path.join(dir, 'mappings.json');
  });
  afterEach(() => removeDir(dir));

  it('writes go to the journal (not the file); a compaction folds them into the lowdb file and empties the journal', async () => {
    const s = await MappingStore.open(file);
    try {
      const snapshot0 = fs.readFileSync(file, 'utf8');
      await s.store({ entityType: 'contact', crmId: guid(1), siaghCode: '100', customerNumber: '100-1', source: 'webhook' });
      await s.store({ entityType: 'quote', crmId: guid(2), siaghCode: '7', source: 'poll', extra: { returnCode: 70 } });
      await s.setMeta('cursor', { at: 1 });
      assert.equal(fs.readFileSync(file, 'utf8'), snapshot0, 'a store does not rewrite the file');
      const lines = fs.readFileSync(`${file}.journal`, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
      assert.deepEqual(
        lines.map((l) => l.op),
        ['put', 'put', 'meta'],
      );
      assert.equal(s.stats().journalEntries, 3);
      assert.equal(s.stats().fileBytes, Buffer.byteLength(snapshot0) + fs.statSync(`${file}.journal`).size);

      await s.compact();
      assert.equal(s.stats().journalEntries, 0);
      assert.equal(s.stats().compactions, 1);
      assert.equal(fs.existsSync(`${file}.journal`), false, 'journal gone after the compaction');
      assert.equal(fs.existsSync(`${file}.journal.old`), false);
      const onDisk = JSON.parse(fs.readFileSync(file, 'utf8'));
      assert.equal(onDisk.version, 1);
      assert.equal(onDisk.mappings.contact[guid(1)].siaghCode, '100');
      assert.equal(onDisk.mappings.quote[guid(2)].extra.returnCode, 70);
      assert.deepEqual(onDisk.meta, { cursor: { at: 1 } });
      // the pieces make exactly the compact JSON of the whole data (what lowdb's JSON.stringify gives)
      const text = fs.readFileSync(file, 'utf8');
      assert.equal(text, JSON.stringify(JSON.parse(text)));
      await s.delete('contact', guid(1));
      assert.equal(readOnDisk(file).mappings.contact[guid(1)], undefined);
    } finally {
      await s.close();
    }
    // a clean close leaves one complete file and no journal
    assert.equal(fs.existsSync(`${file}.journal`), false);
    assert.equal(JSON.parse(fs.readFileSync(file, 'utf8')).mappings.contact[guid(1)], undefined);
  });

  it('compaction runs by itself at compactEntries while stores go on, and snapshot + journal always equal the state', async () => {
    const s = await MappingStore.open(file, { compactEntries: 100 });
    let expected: ReturnType<typeof dump>;
    try {
      for (let wave = 0; wave < 10; wave++) {
        await Promise.all(
          Array.from({ length: 40 }, (_, i) => {
            const n = wave * 40 + i;
            // repoint codes and customer numbers so that replay order matters
            return s.store({ entityType: n % 3 ? 'contact' : 'invoice', crmId: guid(n % 150), siaghCode: String(n), customerNumber: `100-${n % 7}`, source: 'import' });
          }),
        );
        if (wave % 3 === 0) await s.delete('contact', guid((wave * 7) % 150));
        await s.setMeta('progress', { wave });
        // what is on disk right now (read independently) equals what the store holds
        const disk = readOnDisk(file);
        for (const r of s.list()) assert.deepEqual(disk.mappings[r.entityType][r.crmId], { ...r });
        assert.equal(Object.keys(disk.mappings.contact).length + Object.keys(disk.mappings.invoice).length, s.stats().total);
      }
      await new Promise((r) => setTimeout(r, 50));
      assert.ok((s.stats().compactions ?? 0) >= 2, `${s.stats().compactions} compactions`);
      assert.ok((s.stats().journalEntries ?? 0) < 200, `${s.stats().journalEntries} journal entries`);
      expected = dump(s);
    } finally {
      await s.close();
    }
    const s2 = await MappingStore.open(file);
    try {
      assert.deepEqual(dump(s2), expected);
      assert.equal(s2.lookupBySiaghCode('contact', '398')?.crmId, guid(398 % 150));
    } finally {
      await s2.close();
    }
  });

  it('a crash between the snapshot rename and the journal delete replays idempotently', async () => {
    const s = await MappingStore.open(file);
    // code 100 moves from A to B; A is repointed to 101; C is stored then deleted; meta changes twice
    await s.store({ entityType: 'contact', crmId: guid(1), siaghCode: '100', customerNumber: '100-1', source: 'webhook' });
    await s.setMeta('cursor', { at: 1 });
    await s.store({ entityType: 'contact', crmId: guid(1), siaghCode: '101', customerNumber: '100-1', source: 'webhook' });
    await s.store({ entityType: 'contact', crmId: guid(2), siaghCode: '100', customerNumber: '100-1', source: 'poll' });
    await s.store({ entityType: 'quote', crmId: guid(3), siaghCode: '5', source: 'poll' });
    await s.delete('quote', guid(3));
    await s.setMeta('cursor', { at: 2 });
    const compactedJournal = fs.readFileSync(`${file}.journal`);
    await s.compact();
    await s.store({ entityType: 'contact', crmId: guid(4), siaghCode: '102', source: 'import' });
    await s.store({ entityType: 'contact', crmId: guid(1), siaghCode: '103', customerNumber: '100-1', source: 'webhook' });
    const expected = dump(s);
    // The state on disk at a crash right after the new snapshot was renamed into place, before the
    // compacted journal was deleted: new snapshot + `.journal.old` (the lines it already holds) + journal.
    const crash = path.join(dir, 'crash');
    fs.mkdirSync(crash);
    const cfile = path.join(crash, 'mappings.json');
    fs.copyFileSync(file, cfile);
    fs.copyFileSync(`${file}.journal`, `${cfile}.journal`);
    fs.writeFileSync(`${cfile}.journal.old`, compactedJournal);
    await s.close();

    const r = await MappingStore.open(cfile, { backup: false });
    try {
      assert.deepEqual(dump(r), expected);
      assert.deepEqual(r.warnings, [], 'no duplicate-code warnings from the replay');
      assert.equal(r.lookupBySiaghCode('contact', 100)?.crmId, guid(2));
      assert.equal(r.lookupBySiaghCode('contact', 101), undefined);
      assert.equal(r.lookupBySiaghCode('contact', 103)?.crmId, guid(1));
      assert.deepEqual(
        r.lookupAllByCustomerNumber('100-1').map((x) => x.crmId).sort(),
        [guid(1), guid(2)],
      );
      assert.equal(r.lookup('quote', guid(3)), undefined);
      // the store finishes the interrupted compaction by itself
      const end = Date.now() + 5000;
      while (fs.existsSync(`${cfile}.journal.old`) && Date.now() < end) await new Promise((x) => setTimeout(x, 10));
      assert.equal(fs.existsSync(`${cfile}.journal.old`), false);
      assert.deepEqual(dump(r), expected);
    } finally {
      await r.close();
    }
    assert.deepEqual(readMappingFile(cfile), readMappingFile(file));
  });

  it('a torn last journal line (crash mid-write) is ignored; a damaged line in the middle refuses the open, naming the line', async () => {
    const s = await MappingStore.open(file);
    for (let i = 1; i <= 4; i++) await s.store({ entityType: 'contact', crmId: guid(i), siaghCode: String(i), source: 'x' });
    // keep the journal as it is now, as if the process had died here
    const journal = fs.readFileSync(`${file}.journal`, 'utf8');
    const snapshot = fs.readFileSync(file);
    await s.close();
    fs.writeFileSync(file, snapshot);
    fs.writeFileSync(`${file}.journal`, journal + '{"op":"put","rec":{"entityType":"contact","crmId":"' + guid(5).slice(0, 10));

    const s2 = await MappingStore.open(file);
    try {
      assert.equal(s2.stats().total, 4);
      assert.equal(s2.lookup('contact', guid(4))?.siaghCode, '4');
      assert.equal(s2.lookup('contact', guid(5)), undefined);
      await s2.store({ entityType: 'contact', crmId: guid(6), siaghCode: '6', source: 'x' });
      assert.equal(readOnDisk(file).mappings.contact[guid(6)].siaghCode, '6', 'the next line starts on a clean line');
    } finally {
      await s2.close();
    }

    fs.writeFileSync(file, snapshot);
    const lines = journal.split('\n');
    lines[1] = lines[1].slice(0, 30); // damage in the middle
    fs.writeFileSync(`${file}.journal`, lines.join('\n'));
    await assert.rejects(MappingStore.open(file), (e: unknown) => {
      isCode('STORE_IO')(e);
      const m = (e as Error).message;
      assert.ok(m.includes(`${file}.journal`), m);
      assert.match(m, /line 2\b/);
      return true;
    });
    assert.equal(fs.existsSync(`${file}.lock`), false, 'a refused open leaves no lock');
    assert.equal(fs.readFileSync(`${file}.journal`, 'utf8'), lines.join('\n'), 'the damaged journal is left alone');

    // a journal without its file is refused too (it only holds the recent changes)
    fs.unlinkSync(file);
    fs.rmSync(`${file}.bak`, { force: true });
    await assert.rejects(MappingStore.open(file), (e: unknown) => isCode('STORE_IO')(e) && /missing but its journal/.test((e as Error).message));
  });

  it('close during a compaction waits for it and folds what came after it too: one complete file, no journal', async () => {
    const s = await MappingStore.open(file);
    await Promise.all(Array.from({ length: 5000 }, (_, i) => s.store({ entityType: 'quote', crmId: guid(i), siaghCode: String(i), source: 'import' })));
    const running = s.compact();
    const late = Array.from({ length: 50 }, (_, i) => s.store({ entityType: 'contact', crmId: guid(i), siaghCode: String(i), source: 'webhook' }));
    await s.close();
    await Promise.all([running, ...late]);
    assert.equal(fs.existsSync(`${file}.journal`), false);
    assert.equal(fs.existsSync(`${file}.journal.old`), false);
    const onDisk = JSON.parse(fs.readFileSync(file, 'utf8'));
    assert.equal(Object.keys(onDisk.mappings.quote).length, 5000);
    assert.equal(Object.keys(onDisk.mappings.contact).length, 50);
  });

  it('the snapshot written in pieces is what lowdb reads, at 20 000 mappings', async () => {
    const s = await MappingStore.open(file);
    await Promise.all(
      Array.from({ length: 20_000 }, (_, i) => s.store({ entityType: i % 2 ? 'contact' : 'quote', crmId: guid(i), siaghCode: String(i), source: 'import', extra: { name: 'شرکت نمونه' } })),
    );
    const expected = dump(s);
    await s.close();
    const { Low } = await import('lowdb');
    const { JSONFile } = await import('lowdb/node');
    const db = new Low<{ mappings: Record<string, Record<string, MappingRecord>> }>(new JSONFile(file), { mappings: {} });
    await db.read();
    assert.equal(Object.keys(db.data.mappings.contact).length + Object.keys(db.data.mappings.quote).length, 20_000);
    assert.equal(db.data.mappings.contact[guid(19_999)].extra?.name, 'شرکت نمونه');
    const s2 = await MappingStore.open(file);
    try {
      assert.deepEqual(dump(s2), expected);
    } finally {
      await s2.close();
    }
  });
});
