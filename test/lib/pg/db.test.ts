/**
 * The PostgreSQL groundwork on a real server (testkit/postgres.ts): connection options and their
 * errors as an operator reads them, and per-component schema migrations that run once even when
 * several instances start together.
 */
import assert from 'node:assert/strict';
import { Pool } from 'pg';
import { PgServer } from '../../../testkit/postgres';
import { describePgError, isTransientPgError, migrate, openPool, pgOptionsFromEnv, poolConfig } from '../../../lib/pg/db';

describe('PostgreSQL connection and migrations (real server)', function () {
  this.timeout(60_000);
  let server: PgServer;
  const pools: Pool[] = [];
  const pool = (url: string, password?: string) => {
    const p = openPool({ connectionString: url, password });
    pools.push(p);
    return p;
  };

  before(async () => {
    server = await PgServer.start();
  });
  afterEach(async () => {
    await Promise.all(pools.splice(0).map((p) => p.end().catch(() => undefined)));
  });
  after(async () => {
    await server?.close();
  });

  it('options: DATABASE_URL and friends from the environment; unusable strings are refused with the reason', () => {
    assert.deepEqual(pgOptionsFromEnv({ DATABASE_URL: 'postgres://a@h/db', DATABASE_PASSWORD: 'pw', DATABASE_TLS: 'On' }), {
      connectionString: 'postgres://a@h/db',
      password: 'pw',
      tls: 'on',
    });
    assert.deepEqual(pgOptionsFromEnv({}), {});
    assert.throws(() => poolConfig({ connectionString: '' }), /connection string is needed/);
    assert.throws(() => poolConfig({ connectionString: 'mysql://a@h/db' }), /starts with postgres:\/\//);
    assert.throws(() => poolConfig({ connectionString: 'postgres://a@h:5432' }), /names no database/);
    const cfg = poolConfig({ connectionString: 'postgres://a@h/db', password: 'pw', tls: 'on' });
    assert.equal(new URL(String(cfg.connectionString)).password, 'pw');
    assert.equal(new URL(String(poolConfig({ connectionString: 'postgres://a:old@h/db', password: 'p@ss word' }).connectionString)).password, encodeURIComponent('p@ss word'));
    assert.deepEqual(cfg.ssl, { rejectUnauthorized: true });
    assert.deepEqual(poolConfig({ connectionString: 'postgres://a@h/db', tls: 'on', ca: 'PEM' }).ssl, { rejectUnauthorized: true, ca: 'PEM' });
    assert.throws(() => poolConfig({ connectionString: 'postgres://a@h/db', tls: 'require' as 'on' }), /PostgreSQL store/);
    assert.equal(poolConfig({ connectionString: 'postgres://a@h/db' }).ssl, undefined);
  });

  it('a wrong password, a missing database and a closed port read as what they are, the password never shown', async () => {
    const url = await server.database();
    const wrong = pool(url, 'not-the-password');
    const e1 = await wrong.query('SELECT 1').then(() => undefined, (e: unknown) => e);
    assert.match(describePgError(e1), /refused the login/);
    const missing = pool(server.url('no_such_db'));
    const e2 = await missing.query('SELECT 1').then(() => undefined, (e: unknown) => e);
    assert.match(describePgError(e2), /database .* does not exist/);
    const closed = pool(`postgres://u:secret-pw@127.0.0.1:1/db`);
    const e3 = await closed.query('SELECT 1').then(() => undefined, (e: unknown) => e);
    assert.match(describePgError(e3), /not answering/);
    assert.ok(isTransientPgError(e3));
    assert.ok(!describePgError({ message: 'failed for postgres://u:secret-pw@h/db' }).includes('secret-pw'));
  });

  it('migrations: each component at its own version; three instances starting together migrate once; a newer database is refused', async () => {
    const url = await server.database();
    const steps = [
      { version: 1, sql: 'CREATE TABLE t_one (id int PRIMARY KEY)' },
      { version: 2, sql: 'ALTER TABLE t_one ADD COLUMN note text' },
    ];
    const results = await Promise.all([pool(url), pool(url), pool(url)].map((p) => migrate(p, 'alpha', steps)));
    assert.deepEqual(results, [2, 2, 2]);
    const p = pool(url);
    await p.query("INSERT INTO t_one (id, note) VALUES (1, 'x')");
    assert.equal(await migrate(p, 'alpha', steps), 2, 'a second start changes nothing');
    assert.equal(await migrate(p, 'beta', [{ version: 1, sql: 'CREATE TABLE t_two (k text)' }]), 1);
    const v = await p.query('SELECT component, version FROM siagh_sync_schema ORDER BY component');
    assert.deepEqual(v.rows, [
      { component: 'alpha', version: 2 },
      { component: 'beta', version: 1 },
    ]);
    await assert.rejects(migrate(p, 'alpha', steps.slice(0, 1)), /version 2, newer than this release knows \(1\)/);
    const failing = migrate(p, 'gamma', [{ version: 1, sql: 'CREATE TABLE t_three (a int); SELECT no_such_function()' }]);
    await assert.rejects(failing);
    const t3 = await p.query("SELECT to_regclass('t_three') AS t");
    assert.equal(t3.rows[0].t, null, 'a failed step leaves nothing behind');
  });

  it('a server restart cuts the connections; the pool reconnects for the next query', async () => {
    const url = await server.database();
    const errors: Error[] = [];
    const p = openPool({ connectionString: url }, (e) => errors.push(e));
    pools.push(p);
    await p.query('SELECT 1');
    server.restart();
    let ok = false;
    for (let i = 0; i < 20 && !ok; i++) {
      ok = await p.query('SELECT 1').then(() => true, (e: unknown) => {
        assert.ok(isTransientPgError(e), `transient: ${String(e)}`);
        return false;
      });
    }
    assert.ok(ok, 'the pool answers again after the restart');
  });
});
