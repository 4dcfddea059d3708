import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Journal, JournalCorruptError, JournalWriteError } from '../../../lib/store/journal';
import { writeFileAtomic } from '../../../lib/store/atomic-file';
import { forkStoreChild, makeTempDir, removeDir } from '../../fixtures/store-helpers';

interface Entry {
  k: string;
  v?: number;
}

/** A tiny owner of a journal: a key → value map, a JSON snapshot, the journal beside it. */
class KV {
  readonly state = new Map<string, number>();
  readonly journal: Journal<Entry>;
  snapshotWrites = 0;
  /** Make the next snapshot writer fail after the snapshot is renamed into place (a "crash" before the journal is cleaned). */
  failAfterSnapshot = false;

  constructor(
    readonly dir: string,
    opts: { compactEntries?: number; compactBytes?: number; onCompactDue?: () => void } = {},
  ) {
    this.journal = new Journal<Entry>(path.join(dir, 'kv.journal'), opts);
  }

  get snapPath(): string {
    return path.join(this.dir, 'kv.json');
  }

  async open(): Promise<void> {
    if (fs.existsSync(this.snapPath)) {
      for (const [k, v] of Object.entries(JSON.parse(fs.readFileSync(this.snapPath, 'utf8')) as Record<string, number>)) this.state.set(k, v);
    }
    await this.journal.open((e) => this.apply(e));
  }

  apply(e: Entry): void {
    if (typeof e.k !== 'string') throw new Error('entry without a key');
    if (e.v === undefined) this.state.delete(e.k);
    else this.state.set(e.k, e.v);
  }

  set(k: string, v: number | undefined): Promise<void> {
    this.apply({ k, v });
    return this.journal.append(v === undefined ? { k } : { k, v });
  }

  compact(): Promise<void> {
    return this.journal.compact(() => {
      const text = JSON.stringify(Object.fromEntries(this.state)); // the state at the rotation
      return async () => {
        await writeFileAtomic(this.snapPath, text);
        this.snapshotWrites++;
        if (this.failAfterSnapshot) throw new Error('simulated crash after the snapshot rename');
      };
    });
  }
}

async function reopen(dir: string): Promise<Map<string, number>> {
  const kv = new KV(dir);
  await kv.open();
  await kv.journal.close();
  return kv.state;
}

describe('journal: append-only JSON lines, group commit, replay, compaction', function () {
  this.timeout(30_000);
  let dir: string;
  beforeEach(() => {
    dir = makeTempDir();
  });
  afterEach(() => removeDir(dir));

  it('300 concurrent appends are durable when they resolve, share a few fsync’d writes, and replay in order', async () => {
    const kv = new KV(dir);
    await kv.open();
    await Promise.all(Array.from({ length: 300 }, (_, i) => kv.set(`k${i % 100}`, i)));
    assert.ok(kv.journal.writeCount >= 1 && kv.journal.writeCount <= 3, `${kv.journal.writeCount} writes`);
    assert.equal(kv.journal.entries, 300);
    // on disk, read independently: 300 complete JSON lines in append order
    const lines = fs.readFileSync(path.join(dir, 'kv.journal'), 'utf8').split('\n');
    assert.equal(lines.pop(), '', 'every line ends with a newline');
    assert.deepEqual(
      lines.map((l) => JSON.parse(l).v),
      Array.from({ length: 300 }, (_, i) => i),
    );
    assert.equal(kv.journal.bytes, fs.statSync(path.join(dir, 'kv.journal')).size);
    await kv.journal.close();
    const state = await reopen(dir);
    assert.equal(state.size, 100);
    for (let k = 0; k < 100; k++) assert.equal(state.get(`k${k}`), 200 + k, 'the last write of each key wins');
    await assert.rejects(kv.set('late', 1), /closed/);
  });

  it('withinMs lets appends wait for a shared commit; a later append without it takes them along', async () => {
    const kv = new KV(dir);
    await kv.open();
    const t0 = Date.now();
    const slow = Array.from({ length: 20 }, (_, i) => kv.journal.append({ k: `s${i}`, v: i }, { withinMs: 10_000 }));
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(kv.journal.writeCount, 0, 'nothing written yet: they may wait');
    await kv.journal.append({ k: 'now', v: 1 });
    await Promise.all(slow);
    assert.ok(Date.now() - t0 < 5000);
    assert.equal(kv.journal.writeCount, 1, 'one write carried all 21');
    await kv.journal.close();
  });

  it('ignores and cuts off a torn last line; a damaged line in the middle is an error naming the line', async () => {
    const kv = new KV(dir);
    await kv.open();
    for (let i = 0; i < 5; i++) await kv.set(`k${i}`, i);
    await kv.journal.close();
    const file = path.join(dir, 'kv.journal');
    const good = fs.readFileSync(file, 'utf8');
    fs.appendFileSync(file, '{"k":"k9","v":'); // a crash in the middle of a write

    const kv2 = new KV(dir);
    const r = await kv2.journal.open((e) => kv2.apply(e));
    assert.deepEqual(r, { entries: 5, tornBytes: Buffer.byteLength('{"k":"k9","v":') });
    assert.equal(kv2.state.has('k9'), false);
    assert.equal(fs.readFileSync(file, 'utf8'), good, 'the torn tail is cut off the file');
    await kv2.set('k5', 5); // appends continue on a clean line boundary
    await kv2.journal.close();
    assert.equal((await reopen(dir)).get('k5'), 5);

    // damage in the middle (not a torn tail): refused, naming the file and the line
    const lines = fs.readFileSync(file, 'utf8').split('\n');
    lines[2] = '{"k":"k2",#garbage';
    fs.writeFileSync(file, lines.join('\n'));
    await assert.rejects(reopen(dir), (e: unknown) => {
      assert.ok(e instanceof JournalCorruptError);
      assert.equal(e.line, 3);
      assert.equal(e.file, file);
      assert.match(e.message, /line 3/);
      return true;
    });
    // a line the owner cannot apply is reported the same way
    lines[2] = '{"x":1}';
    fs.writeFileSync(file, lines.join('\n'));
    await assert.rejects(reopen(dir), (e: unknown) => e instanceof JournalCorruptError && e.line === 3 && /without a key/.test(e.message));
  });

  it('compaction: snapshot + journal equals the state; the journal is emptied; appends go on during it', async () => {
    const kv = new KV(dir);
    await kv.open();
    for (let i = 0; i < 50; i++) await kv.set(`k${i}`, i);
    await kv.set('k3', undefined);
    const during: Promise<void>[] = [];
    const c = kv.compact();
    for (let i = 50; i < 80; i++) during.push(kv.set(`k${i - 10}`, 1000 + i)); // rewrites k40..k49 and adds k50..k69
    await Promise.all([c, ...during]);
    assert.equal(kv.snapshotWrites, 1);
    assert.equal(fs.existsSync(path.join(dir, 'kv.journal.old')), false, 'the compacted journal is gone');
    // the snapshot holds at least the 50 first changes; the journal only what came after the rotation
    const snap = JSON.parse(fs.readFileSync(kv.snapPath, 'utf8')) as Record<string, number>;
    for (let i = 0; i < 50; i++) if (i !== 3) assert.ok(snap[`k${i}`] !== undefined, `k${i} in the snapshot`);
    assert.equal(snap.k3, undefined);
    assert.ok(kv.journal.entries <= 30, `${kv.journal.entries} entries left in the journal`);
    await kv.journal.close();
    assert.deepEqual(await reopen(dir), kv.state);

    // compacting with nothing new leaves an empty journal behind
    const kv2 = new KV(dir);
    await kv2.open();
    await kv2.compact();
    assert.equal(kv2.journal.bytes, 0);
    assert.equal(fs.existsSync(path.join(dir, 'kv.journal')), false);
    await kv2.journal.close();
    assert.deepEqual(await reopen(dir), kv.state);
  });

  it('a crash between the snapshot rename and the journal delete replays idempotently; the next compaction cleans up', async () => {
    const kv = new KV(dir);
    await kv.open();
    // order matters within the journal: a key set, deleted, set again; another rewritten many times
    await kv.set('a', 1);
    await kv.set('a', undefined);
    await kv.set('a', 3);
    for (let i = 0; i < 20; i++) await kv.set('b', i);
    await kv.set('c', 7);
    await kv.set('c', undefined);
    kv.failAfterSnapshot = true;
    await assert.rejects(kv.compact(), /simulated crash/);
    assert.ok(fs.existsSync(path.join(dir, 'kv.journal.old')), 'the journal the snapshot already holds is still there');
    assert.deepEqual(JSON.parse(fs.readFileSync(kv.snapPath, 'utf8')), { a: 3, b: 19 });
    await kv.journal.close();
    // "restart": the old journal is replayed over a snapshot that already holds it
    assert.deepEqual(await reopen(dir), new Map([['a', 3], ['b', 19]]));

    // new changes after the crash; compaction must now fold `.old` + the new journal
    const kv2 = new KV(dir);
    await kv2.open();
    await kv2.set('b', 100);
    await kv2.set('d', 4);
    kv2.failAfterSnapshot = true;
    await assert.rejects(kv2.compact(), /simulated crash/); // crash again: the new lines were appended to `.old`
    assert.equal(fs.existsSync(path.join(dir, 'kv.journal')), false);
    await kv2.journal.close();
    assert.deepEqual(await reopen(dir), new Map([['a', 3], ['b', 100], ['d', 4]]));
    const kv3 = new KV(dir);
    await kv3.open();
    await kv3.set('e', 5);
    await kv3.compact();
    assert.equal(fs.existsSync(path.join(dir, 'kv.journal.old')), false);
    assert.deepEqual(JSON.parse(fs.readFileSync(kv3.snapPath, 'utf8')), { a: 3, b: 100, d: 4, e: 5 });
    await kv3.journal.close();
  });

  it('tells its owner when compaction is due (entries or bytes), once per crossing', async () => {
    let due = 0;
    const kv = new KV(dir, { compactEntries: 10, onCompactDue: () => due++ });
    await kv.open();
    for (let i = 0; i < 9; i++) await kv.set(`k${i}`, i);
    assert.equal(due, 0);
    assert.equal(kv.journal.compactionDue, false);
    await kv.set('k9', 9);
    assert.equal(due, 1);
    assert.equal(kv.journal.compactionDue, true);
    await kv.set('k10', 10);
    assert.equal(due, 1, 'not again before a compaction');
    await kv.compact();
    assert.equal(kv.journal.compactionDue, false);
    for (let i = 0; i < 10; i++) await kv.set(`n${i}`, i);
    assert.equal(due, 2);
    await kv.journal.close();

    let dueBytes = 0;
    const kb = new KV(makeTempDirIn(dir), { compactBytes: 200, onCompactDue: () => dueBytes++ });
    await kb.open();
    for (let i = 0; i < 20 && !dueBytes; i++) await kb.set(`key-${i}`, i);
    assert.equal(dueBytes, 1);
    assert.ok(kb.journal.bytes >= 200);
    await kb.journal.close();
  });

  it('a failed write rejects that commit; its lines are kept in order and written by the next commit', async () => {
    const kv = new KV(dir);
    await kv.open();
    await kv.set('a', 1);
    await kv.compact(); // the journal file is recreated by the next commit
    fs.mkdirSync(path.join(dir, 'kv.journal')); // … which cannot happen while a folder is in the way
    await assert.rejects(kv.set('b', 2), (e: unknown) => e instanceof JournalWriteError && /EISDIR/.test(e.message));
    await assert.rejects(kv.set('c', 3), JournalWriteError);
    assert.equal(kv.journal.pending, 2);
    fs.rmdirSync(path.join(dir, 'kv.journal'));
    await kv.journal.flush();
    assert.equal(kv.journal.pending, 0);
    await kv.set('b', 4);
    await kv.journal.close();
    const lines = fs.readFileSync(path.join(dir, 'kv.journal'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(lines, [{ k: 'b', v: 2 }, { k: 'c', v: 3 }, { k: 'b', v: 4 }]);
    assert.deepEqual(await reopen(dir), new Map([['a', 1], ['b', 4], ['c', 3]]));
  });

  it('fail() rejects pending and later appends with the given error', async () => {
    const kv = new KV(dir);
    await kv.open();
    await kv.set('a', 1);
    const pending = kv.set('b', 2);
    const err = new Error('lost the folder');
    kv.journal.fail(err);
    await assert.rejects(pending, (e: unknown) => e === err);
    await assert.rejects(kv.set('c', 3), (e: unknown) => e === err);
    await assert.rejects(kv.compact(), (e: unknown) => e === err);
    await kv.journal.close();
    assert.deepEqual(await reopen(dir), new Map([['a', 1]]));
  });

  it('every append that resolved survives SIGKILL of the writer, also in the middle of compactions (3 rounds)', async () => {
    const acked = new Map<string, number>();
    for (let round = 0; round < 3; round++) {
      const child = forkStoreChild([dir, `r${round}`, String(300 + round * 200)], { script: 'journal-child.js' });
      try {
        await child.waitFor((l) => l === 'ready');
        const killAfter = 400 + round * 700 + Math.floor(Math.random() * 300);
        await child.waitFor(() => child.lines.length >= killAfter);
        await new Promise((r) => setTimeout(r, Math.random() * 20));
        child.proc.kill('SIGKILL');
        await child.exited;
      } finally {
        if (child.proc.exitCode === null && child.proc.signalCode === null) child.proc.kill('SIGKILL');
      }
      const acks = child.lines.filter((l) => l.startsWith('ack '));
      assert.ok(acks.length >= 300, child.stderr() + child.lines.slice(-3).join('\n'));
      for (const l of acks) {
        const [, k, v] = l.split(' ');
        acked.set(k, Math.max(acked.get(k) ?? -1, Number(v)));
      }
      const state = await reopen(dir);
      for (const [k, v] of acked) {
        const got = state.get(k);
        assert.ok(got !== undefined && got >= v, `round ${round}: ${k} acknowledged as ${v}, found ${got}`);
      }
    }
  });
});

function makeTempDirIn(parent: string): string {
  return fs.mkdtempSync(path.join(parent, 'sub-'));
}
