/**
 * The background JSON-lines writer on real files: append only queues, flushes batch and keep
 * order, rotation by size and by the first line's age, retention by count and by days, close
 * writes what is queued, and a failing disk keeps the lines until it works again.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LogWriter, listRotated, rotatedName } from '../../../lib/oplog/log-writer';

function tmp(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'oplog-writer-'));
}

function lines(file: string): any[] {
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
}

async function until(cond: () => boolean, what: string, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out: ' + what);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('oplog: LogWriter', () => {
  let dir: string;
  beforeEach(() => {
    dir = tmp();
  });
  afterEach(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('append only queues; the timer writes the batch in order, one line per record', async () => {
    const file = path.join(dir, 'sub', 'log.jsonl');
    const w = new LogWriter(file, { flushMs: 20 });
    for (let i = 0; i < 5; i++) w.append({ i, text: 'سطر\n' + i });
    assert.equal(w.pending, 5, 'nothing written synchronously');
    assert.equal(fs.existsSync(file), false);
    await until(() => w.pending === 0 && lines(file).length === 5, 'the batch');
    assert.deepEqual(
      lines(file).map((l) => l.i),
      [0, 1, 2, 3, 4],
    );
    assert.equal(fs.readFileSync(file, 'utf8').split('\n').length, 6, 'an embedded newline stays escaped inside its line');
    await w.close();
  });

  it('writes at once when flushLines wait; close() writes what is still queued', async () => {
    const file = path.join(dir, 'log.jsonl');
    const w = new LogWriter(file, { flushMs: 60_000, flushLines: 3 });
    w.append({ n: 1 });
    w.append({ n: 2 });
    w.append({ n: 3 });
    await until(() => lines(file).length === 3, 'the full batch');
    w.append({ n: 4 });
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(lines(file).length, 3, 'the 4th line waits for the (long) timer');
    await w.close();
    assert.deepEqual(
      lines(file).map((l) => l.n),
      [1, 2, 3, 4],
    );
    w.append({ n: 5 });
    assert.equal(w.dropped, 1, 'after close a line is dropped, not thrown');
  });

  it('rotates by size into .1, .2 … and keeps at most keepFiles rotated files', async () => {
    const file = path.join(dir, 'sync-log.jsonl');
    const w = new LogWriter(file, { maxBytes: 300, keepFiles: 2, keepDays: 0, flushMs: 0 });
    for (let i = 0; i < 40; i++) {
      w.append({ i, pad: 'x'.repeat(40) });
      await w.flush();
    }
    await w.close();
    const rotated = await listRotated(file);
    assert.deepEqual(
      rotated.map(([n]) => n),
      [1, 2],
      'two rotated files kept',
    );
    assert.ok(w.rotations >= 5);
    for (const f of [file, rotatedName(file, 1), rotatedName(file, 2)]) assert.ok(fs.statSync(f).size <= 300, `${path.basename(f)} within the size`);
    // newest in the current file, older in .1, older still in .2; nothing reordered
    const cur = lines(file).map((l) => l.i);
    const one = lines(rotatedName(file, 1)).map((l) => l.i);
    const two = lines(rotatedName(file, 2)).map((l) => l.i);
    assert.equal(cur[cur.length - 1], 39);
    assert.equal(one[one.length - 1] + 1, cur[0]);
    assert.equal(two[two.length - 1] + 1, one[0]);
  });

  it('retention by days removes old rotated files; a current file whose first line is too old is rotated', async () => {
    const file = path.join(dir, 'sync-log.jsonl');
    const day = 86_400_000;
    const old = new Date(Date.now() - 10 * day);
    // An old rotated file (last written 10 days ago) and a current file that started 10 days ago.
    fs.writeFileSync(rotatedName(file, 1), JSON.stringify({ time: old.toISOString(), n: 'r1' }) + '\n');
    fs.utimesSync(rotatedName(file, 1), old, old);
    fs.writeFileSync(rotatedName(file, 2), JSON.stringify({ time: old.toISOString(), n: 'r2' }) + '\n');
    fs.utimesSync(rotatedName(file, 2), old, old);
    fs.writeFileSync(file, JSON.stringify({ time: old.toISOString(), n: 'cur' }) + '\n');
    const w = new LogWriter(file, { keepDays: 7, keepFiles: 0, flushMs: 0 });
    w.append({ time: new Date().toISOString(), n: 'new' });
    await w.close();
    assert.deepEqual(
      lines(file).map((l) => l.n),
      ['new'],
      'the old current file was rotated away',
    );
    assert.deepEqual(
      lines(rotatedName(file, 1)).map((l) => l.n),
      ['cur'],
      'it is now .1 (last written just now: kept)',
    );
    assert.equal(fs.existsSync(rotatedName(file, 2)), false, 'the 10-day-old rotated files are gone');
    assert.equal(fs.existsSync(rotatedName(file, 3)), false);
  });

  it('a failing disk keeps the lines queued and writes them once it works again', async () => {
    const blocker = path.join(dir, 'blocked');
    fs.writeFileSync(blocker, 'a file where the folder should be');
    const file = path.join(blocker, 'log.jsonl');
    const errors: Error[] = [];
    const w = new LogWriter(file, { flushMs: 0, onError: (e) => errors.push(e) });
    w.append({ n: 1 });
    w.append({ n: 2 });
    await assert.rejects(w.flush());
    assert.ok(errors.length >= 1);
    assert.equal(w.pending, 2, 'the lines wait in memory');
    fs.rmSync(blocker);
    await w.flush();
    assert.deepEqual(
      lines(file).map((l) => l.n),
      [1, 2],
    );
    await w.close();
  });
});
