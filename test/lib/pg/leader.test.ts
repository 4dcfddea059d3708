/**
 * The advisory-lock leader on a real server: of several instances one leads; when its connection
 * dies (terminated by the server, as when its process or network goes) another takes over within
 * a few seconds; a leader that stops hands over; a server restart pauses and then one leads again.
 */
import assert from 'node:assert/strict';
import { PgServer } from '../../../testkit/postgres';
import { Leader, LeaderRole } from '../../../lib/pg/leader';

async function until(what: string, cond: () => boolean, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('Leader (advisory lock, real server)', function () {
  this.timeout(60_000);
  let server: PgServer;
  const leaders: Leader[] = [];
  const start = async (url: string, name = 'poll', seen?: LeaderRole[]) => {
    const l = await Leader.start({ connectionString: url }, { name, retryMs: 100, checkMs: 100, onChange: (r) => seen?.push(r) });
    leaders.push(l);
    return l;
  };

  before(async () => {
    server = await PgServer.start();
  });
  afterEach(async () => {
    await Promise.all(leaders.splice(0).map((l) => l.stop()));
  });
  after(async () => {
    await server?.close();
  });

  it('one of two leads; killing its connection hands the lead to the other', async () => {
    const url = await server.database();
    const seenA: LeaderRole[] = [];
    const seenB: LeaderRole[] = [];
    const a = await start(url, 'poll', seenA);
    const b = await start(url, 'poll', seenB);
    assert.equal(a.role, 'leader');
    assert.equal(b.role, 'standby');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(b.role, 'standby', 'the standby does not take a held lock');
    // Another name is another election.
    const other = await start(url, 'import');
    assert.equal(other.role, 'leader');
    // The leader's session dies (its process gone): the server ends it, and with it the lock.
    const killed = await server.admin(async (c) => {
      const r = await c.query<{ n: string }>(
        "SELECT count(pg_terminate_backend(l.pid))::text AS n FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted AND l.objid = (hashtextextended('siagh_sync:leader:poll', 0) & 4294967295)::bigint::oid",
      );
      return Number(r.rows[0].n);
    });
    assert.equal(killed, 1);
    await until('b to lead', () => b.isLeader);
    await until('a to step down', () => a.role !== 'leader');
    assert.equal(seenB.at(-1), 'leader');
    assert.ok(seenA.includes('standby') || seenA.includes('waiting'), `a said ${seenA.join(',')}`);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(a.isLeader && b.isLeader, false, 'never two leaders');
  });

  it('a leader that stops hands over; a server restart pauses the lead and one leads again', async () => {
    const url = await server.database();
    const a = await start(url);
    const b = await start(url);
    assert.equal(a.role, 'leader');
    await a.stop();
    await until('b to lead', () => b.isLeader);
    const c = await start(url);
    assert.equal(c.role, 'standby');
    await server.restart();
    await until('one leader after the restart', () => [b, c].filter((l) => l.isLeader).length === 1, 30_000);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal([b, c].filter((l) => l.isLeader).length, 1);
  });

  it('a wrong password is a clear reason, never the password', async () => {
    const url = await server.database();
    const reasons: string[] = [];
    const l = await Leader.start({ connectionString: url, password: 'Wr0ng-Secret' }, { name: 'poll', retryMs: 100, onChange: (_r, why) => why && reasons.push(why) });
    leaders.push(l);
    assert.equal(l.role, 'waiting');
    assert.match(reasons[0], /refused the login/);
    assert.ok(!reasons.join(' ').includes('Wr0ng-Secret'));
  });
});
