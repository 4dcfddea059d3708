import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { MappingStore } from '../../../lib/store/mapping-store';
import { acquireLock, releaseLock, startHeartbeat } from '../../../lib/store/file-lock';
import { SyncError } from '../../../lib/errors';
import { deadPid, forkStoreChild, guid, makeTempDir, removeDir } from '../../fixtures/store-helpers';

describe('mapping store: processes (kill -9, file lock)', function () {
  this.timeout(30_000);
  let dir: string;
  let file: string;
  beforeEach(() => {
    dir = makeTempDir();
    file = path.join(dir, 'mapping.json');
  });
  afterEach(() => removeDir(dir));

  it('every acknowledged store survives SIGKILL of the writing process (3 rounds)', async () => {
    const acked = new Map<string, string>();
    const prefixes = ['0000a1a1', '0000b2b2', '0000c3c3'];
    for (const [round, prefix] of prefixes.entries()) {
      // 20 000 quote mappings first (a 4 MB file), so a commit takes a while and the kill below
      // lands at a random point of stringify / temp write / fsync / rename
      const child = forkStoreChild(['store', file, prefix, '20000']);
      try {
        await child.waitFor((l) => l === 'ready');
        // kill at a different point each round, while waves of stores are being written
        const killAfter = 60 + round * 90 + Math.floor(Math.random() * 40);
        await child.waitFor(() => child.lines.filter((l) => l.startsWith('ack ')).length >= killAfter);
        await new Promise((r) => setTimeout(r, Math.random() * 40));
        child.proc.kill('SIGKILL');
        await child.exited;
      } finally {
        if (child.proc.exitCode === null && child.proc.signalCode === null) child.proc.kill('SIGKILL');
      }
      const acks = child.lines.filter((l) => l.startsWith('ack '));
      assert.ok(acks.length >= 60, child.stderr());
      for (const l of acks) {
        const [, crmId, code] = l.split(' ');
        acked.set(crmId, code);
      }
      assert.equal(fs.existsSync(`${file}.lock`), true, 'the killed child left its lock behind');
      // a new open takes over the stale lock and finds every acknowledged record
      const s = await MappingStore.open(file);
      try {
        for (const [crmId, code] of acked) {
          const rec = s.lookup('contact', crmId);
          assert.ok(rec, `acknowledged store ${crmId} lost after kill in round ${round}`);
          assert.equal(rec.siaghCode, code);
          assert.equal(s.lookupBySiaghCode('contact', code)?.crmId, crmId);
        }
        assert.ok(s.stats().total >= acked.size + 20_000);
      } finally {
        await s.close();
      }
    }
  });

  it('every acknowledged store survives SIGKILL while background compactions run (3 rounds)', async () => {
    const acked = new Map<string, string>();
    for (const [round, prefix] of ['0000d4d4', '0000e5e5', '0000f6f6'].entries()) {
      // a compaction every 150 changes (a 1 MB file with the 4 000 prefilled quotes), so kills land
      // before, during and after the set-aside / snapshot write / cleanup
      const child = forkStoreChild(['store', file, prefix, '4000'], { env: { STORE_COMPACT_ENTRIES: '150' } });
      try {
        await child.waitFor((l) => l === 'ready');
        const killAfter = 200 + round * 170 + Math.floor(Math.random() * 100);
        await child.waitFor(() => child.lines.filter((l) => l.startsWith('ack ')).length >= killAfter);
        await new Promise((r) => setTimeout(r, Math.random() * 30));
        child.proc.kill('SIGKILL');
        await child.exited;
      } finally {
        if (child.proc.exitCode === null && child.proc.signalCode === null) child.proc.kill('SIGKILL');
      }
      for (const l of child.lines.filter((x) => x.startsWith('ack '))) {
        const [, crmId, code] = l.split(' ');
        acked.set(crmId, code);
      }
      const s = await MappingStore.open(file);
      try {
        assert.ok((s.stats().fileBytes ?? 0) > 500_000);
        for (const [crmId, code] of acked) {
          const rec = s.lookup('contact', crmId);
          assert.ok(rec, `acknowledged store ${crmId} lost after kill in round ${round}`);
          assert.equal(rec.siaghCode, code);
        }
        assert.ok(s.stats().total >= acked.size + 4000);
      } finally {
        await s.close();
      }
    }
  });

  it('a second process is refused with STORE_LOCKED while this one holds the file', async () => {
    const s = await MappingStore.open(file);
    try {
      await s.store({ entityType: 'contact', crmId: guid(1), siaghCode: '1', source: 'x' });
      const child = forkStoreChild(['open', file]);
      const line = await child.waitFor((l) => l.startsWith('error ') || l === 'opened');
      await child.exited;
      assert.match(line, /^error STORE_LOCKED /);
      const message = JSON.parse(line.slice('error STORE_LOCKED '.length)) as string;
      assert.ok(message.includes(file), message);
      assert.ok(message.includes(String(process.pid)), message);
      assert.ok(message.includes(`${file}.lock`), message);
      // the refused process did not disturb the holder
      await s.store({ entityType: 'contact', crmId: guid(2), siaghCode: '2', source: 'x' });
      assert.equal(JSON.parse(fs.readFileSync(`${file}.lock`, 'utf8')).pid, process.pid);
    } finally {
      await s.close();
    }
    // once released, the other process may open it
    const child = forkStoreChild(['open', file]);
    assert.equal(await child.waitFor((l) => l.startsWith('error ') || l === 'opened'), 'opened');
    await child.exited;
  });

  it('this process is refused while a live child holds the file, and takes over once it is killed', async () => {
    const child = forkStoreChild(['hold', file]);
    try {
      await child.waitFor((l) => l === 'ready');
      await assert.rejects(MappingStore.open(file), (e: unknown) => {
        assert.ok(e instanceof SyncError);
        assert.equal(e.code, 'STORE_LOCKED');
        assert.ok(e.message.includes(String(child.proc.pid)));
        return true;
      });
    } finally {
      child.proc.kill('SIGKILL');
      await child.exited;
    }
    const s = await MappingStore.open(file);
    assert.equal(JSON.parse(fs.readFileSync(`${file}.lock`, 'utf8')).pid, process.pid);
    await s.close();
  });

  it('a stale lock (dead pid on this host, or our own pid left by an earlier life) is taken over', async () => {
    const pid = await deadPid();
    fs.writeFileSync(`${file}.lock`, JSON.stringify({ pid, hostname: os.hostname(), token: 'old', createdAt: '2026-01-01T00:00:00Z' }));
    const s = await MappingStore.open(file);
    const lock = JSON.parse(fs.readFileSync(`${file}.lock`, 'utf8'));
    assert.equal(lock.pid, process.pid);
    assert.notEqual(lock.token, 'old');
    await s.close();
    assert.equal(fs.existsSync(`${file}.lock`), false);

    // a container restart often gives Node-RED the same pid again: a lock with our pid that this
    // process does not hold is stale
    fs.writeFileSync(`${file}.lock`, JSON.stringify({ pid: process.pid, hostname: os.hostname(), token: 'previous-life' }));
    const s2 = await MappingStore.open(file);
    await s2.close();

    // garbage in the lock file (older than a few seconds) is stale too
    fs.writeFileSync(`${file}.lock`, 'not json');
    const old = new Date(Date.now() - 60_000);
    fs.utimesSync(`${file}.lock`, old, old);
    const s3 = await MappingStore.open(file);
    await s3.close();
    assert.ok(!fs.readdirSync(dir).some((n) => n.includes('.stale-')), 'no leftovers of the takeover');
  });

  it('a lock held by a live process on this host is never taken over, however old it is', async () => {
    const child = forkStoreChild(['hold', file]);
    try {
      await child.waitFor((l) => l === 'ready');
      // its heartbeat is late (busy, suspended, clock jump): the lock looks an hour old
      const old = new Date(Date.now() - 60 * 60_000);
      fs.utimesSync(`${file}.lock`, old, old);
      await assert.rejects(MappingStore.open(file), (e: unknown) => {
        assert.ok(e instanceof SyncError);
        assert.equal(e.code, 'STORE_LOCKED');
        assert.ok(e.message.includes(String(child.proc.pid)), e.message);
        return true;
      });
      assert.equal(JSON.parse(fs.readFileSync(`${file}.lock`, 'utf8')).pid, child.proc.pid, 'the live holder keeps its lock');
    } finally {
      child.proc.kill('SIGKILL');
      await child.exited;
    }
    // the same for a lock naming any live process of this host, written long ago
    fs.writeFileSync(`${file}.lock`, JSON.stringify({ pid: process.ppid, hostname: os.hostname(), token: 'parent', createdAt: '2026-01-01T00:00:00Z' }));
    const old = new Date(Date.now() - 24 * 60 * 60_000);
    fs.utimesSync(`${file}.lock`, old, old);
    await assert.rejects(MappingStore.open(file), (e: unknown) => e instanceof SyncError && e.code === 'STORE_LOCKED');
    assert.equal(JSON.parse(fs.readFileSync(`${file}.lock`, 'utf8')).token, 'parent');
  });

  it('a holder whose lock was taken over notices: writes reject with STORE_LOCKED, and it leaves the files to the new holder', async () => {
    // lockCheckMs long: the periodic check (which would put a merely deleted lock back) stays out of
    // the way, so it is the check before the commit that notices (the next test covers the periodic one)
    const s = await MappingStore.open(file, { lockCheckMs: 60_000 });
    let child: ReturnType<typeof forkStoreChild> | undefined;
    try {
      await s.store({ entityType: 'contact', crmId: guid(1), siaghCode: '1', source: 'x' });
      // An operator deletes the lock ("no such process runs") and starts a second Node-RED at once.
      fs.unlinkSync(`${file}.lock`);
      child = forkStoreChild(['hold', file]);
      await child.waitFor((l) => l === 'ready');
      assert.equal(JSON.parse(fs.readFileSync(`${file}.lock`, 'utf8')).pid, child.proc.pid);
      // the very next commit checks the lock first: nothing is written to the other process's journal
      const journalBefore = fs.readFileSync(`${file}.journal`, 'utf8');
      await assert.rejects(s.store({ entityType: 'contact', crmId: guid(2), siaghCode: '2', source: 'x' }), (e: unknown) => {
        assert.ok(e instanceof SyncError);
        assert.equal(e.code, 'STORE_LOCKED');
        assert.match(e.message, /Another process took over the data folder/);
        assert.ok(e.message.includes(`${file}.lock`), e.message);
        assert.ok(e.message.includes(String(child!.proc.pid)), e.message);
        return true;
      });
      assert.equal(fs.readFileSync(`${file}.journal`, 'utf8'), journalBefore);
      // from now on every write is refused at once; lookups still answer from memory
      await assert.rejects(s.setMeta('cursor', 1), (e: unknown) => e instanceof SyncError && e.code === 'STORE_LOCKED');
      await assert.rejects(s.delete('contact', guid(1)), (e: unknown) => e instanceof SyncError && e.code === 'STORE_LOCKED');
      await assert.rejects(s.compact(), (e: unknown) => e instanceof SyncError && e.code === 'STORE_LOCKED');
      assert.equal(s.lookup('contact', guid(1))?.siaghCode, '1');
    } finally {
      const snapshot = fs.readFileSync(file, 'utf8');
      await s.close();
      assert.equal(fs.readFileSync(file, 'utf8'), snapshot, 'the closing loser did not write the file');
      if (child) {
        assert.equal(JSON.parse(fs.readFileSync(`${file}.lock`, 'utf8')).pid, child.proc.pid, 'the new holder keeps its lock');
        child.proc.kill('SIGKILL');
        await child.exited;
      }
    }
  });

  it('the periodic check notices a takeover without any write', async () => {
    const s = await MappingStore.open(file, { lockCheckMs: 50 });
    try {
      const other = { pid: process.ppid, hostname: os.hostname(), token: 'other', createdAt: new Date().toISOString() };
      fs.writeFileSync(`${file}.lock.new`, JSON.stringify(other));
      fs.renameSync(`${file}.lock.new`, `${file}.lock`);
      const end = Date.now() + 3000;
      while (s.stats().lockLost === undefined) {
        assert.ok(Date.now() < end, 'the takeover was not noticed');
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.match(s.stats().lockLost!, /Another process took over the data folder/);
      await assert.rejects(s.setMeta('probe', 1), (e: unknown) => e instanceof SyncError && e.code === 'STORE_LOCKED');
    } finally {
      await s.close();
    }
    assert.equal(JSON.parse(fs.readFileSync(`${file}.lock`, 'utf8')).token, 'other', 'close leaves the other holder’s lock alone');
  });

  it('a lock from another host is never taken over', async () => {
    fs.writeFileSync(`${file}.lock`, JSON.stringify({ pid: 4242, hostname: `not-${os.hostname()}`, token: 't', createdAt: '2026-01-01T00:00:00Z' }));
    await assert.rejects(MappingStore.open(file), (e: unknown) => {
      assert.ok(e instanceof SyncError);
      assert.equal(e.code, 'STORE_LOCKED');
      assert.ok(e.message.includes(`not-${os.hostname()}`));
      assert.ok(e.message.includes('delete'));
      return true;
    });
    assert.equal(JSON.parse(fs.readFileSync(`${file}.lock`, 'utf8')).token, 't', 'the foreign lock is left alone');
  });

  it('a lock nobody refreshed for a long time is stale even from another host (re-created container)', async () => {
    fs.writeFileSync(`${file}.lock`, JSON.stringify({ pid: 4242, hostname: 'old-container-id', token: 't', createdAt: '2026-01-01T00:00:00Z' }));
    const old = new Date(Date.now() - 60 * 60_000);
    fs.utimesSync(`${file}.lock`, old, old);
    const s = await MappingStore.open(file);
    assert.equal(JSON.parse(fs.readFileSync(`${file}.lock`, 'utf8')).hostname, os.hostname());
    await s.close();
  });

  it('the holder keeps its lock fresh (heartbeat) and release removes only its own lock', async () => {
    const lockPath = `${file}.lock`;
    const info = await acquireLock(file, lockPath);
    const stop = startHeartbeat(lockPath, info.token, 20);
    try {
      const old = new Date(Date.now() - 60 * 60_000);
      fs.utimesSync(lockPath, old, old);
      const end = Date.now() + 3000;
      while (Date.now() - fs.statSync(lockPath).mtimeMs > 60_000) {
        assert.ok(Date.now() < end, 'heartbeat did not refresh the lock');
        await new Promise((r) => setTimeout(r, 10));
      }
    } finally {
      stop();
    }
    await releaseLock(lockPath, 'someone-else');
    assert.ok(fs.existsSync(lockPath));
    await releaseLock(lockPath, info.token);
    assert.equal(fs.existsSync(lockPath), false);
  });
});
