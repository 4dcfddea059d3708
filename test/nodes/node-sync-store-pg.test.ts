/**
 * sync-store on PostgreSQL in the real Node-RED runtime, against a real throwaway server
 * (testkit/postgres.ts): a wrong password or an unknown database turns the nodes that use the
 * store red with a short reason, logs what to do, and the webhook answers 503 (the CRM sends
 * again); with the right password the webhook's change lands in the database's queue. The Test
 * connection route says "connected (PostgreSQL 15.x, …)" or why not, and never the password.
 */
import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import { Client } from 'pg';
import request from 'supertest';
import { PgServer } from '../../testkit/postgres';
import { captureHttpNode, helper, httpNode, n, nodeModule, tab, tmpDir, waitFor } from '../helpers/node-env';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const httpNodes = require('@node-red/nodes/core/network/21-httpin.js');
const NODES = () => [httpNodes, captureHttpNode, nodeModule('crm-webhook'), nodeModule('sync-queue'), nodeModule('sync-mapping'), nodeModule('sync-store')];
const ID = '5b0d8a3e-1c2f-4e6a-9b7d-0a1b2c3d4e5f';

describe('sync-store on PostgreSQL (Node-RED runtime, real server)', function () {
  this.timeout(60_000);
  let server: PgServer;
  const WRONG = 'Wr0ng-Pg-Secret-77';

  before(async () => {
    server = await PgServer.start();
  });
  after(async () => {
    await server?.close();
  });
  afterEach(async () => {
    await helper.unload();
  });

  /** The URL without its password (as an operator would save it), and the password apart. */
  function split(url: string): { bare: string; password: string } {
    const u = new URL(url);
    const password = decodeURIComponent(u.password);
    u.password = '';
    return { bare: u.toString(), password };
  }

  async function deploy(pgUrl: string, pgPassword: string, opts: { mapping?: boolean } = {}) {
    const flow = [
      tab,
      n({ id: 'in-get', type: 'http in', url: '/webhook/crm/identity', method: 'get', wires: [['wh']] }),
      { id: 'store', type: 'sync-store', backend: 'postgres', dir: tmpDir('store-pg-'), pgUrl, pgTls: 'off' },
      n({ id: 'wh', type: 'crm-webhook', mode: 'webhook', expect: 'identity', store: 'store', allowNoToken: true, wires: [[], ['res']] }),
      n({ id: 'q', type: 'sync-queue', store: 'store', wires: [opts.mapping ? ['map'] : []] }),
      n({ id: 'res', type: 'http response' }),
      ...(opts.mapping ? [n({ id: 'map', type: 'sync-mapping', operation: 'lookup', entityType: 'contact', store: 'store', wires: [[]] })] : []),
    ];
    await helper.load(NODES(), flow, { store: { pgPassword } });
    const ids = opts.mapping ? ['wh', 'q', 'map'] : ['wh', 'q'];
    const seen: { statuses: Record<string, string[]>; errors: string[]; warnings: string[] } = { statuses: Object.fromEntries(ids.map((id) => [id, []])), errors: [], warnings: [] };
    for (const id of ids) {
      const node = helper.getNode(id);
      node.on('call:status', (c: { args: [{ fill?: string; text?: string }] }) => seen.statuses[id].push(`${c.args[0].fill}:${c.args[0].text}`));
      node.on('call:error', (c: { args: unknown[] }) => seen.errors.push(inspect(c.args)));
      node.on('call:warn', (c: { args: unknown[] }) => seen.warnings.push(`${id}: ${inspect(c.args)}`));
    }
    return { ...seen, http: request(httpNode as any) };
  }
  const hook = (id = ID) => `/webhook/crm/identity?event=Insert&type=Identity&id=${id}`;

  for (const [what, makeUrl, status] of [
    ['a wrong password', async () => split(await server.database()).bare, /red:PostgreSQL: wrong user or password/],
    ['an unknown database', async () => split(server.url('no_such_db')).bare, /red:PostgreSQL: unknown database/],
  ] as const) {
    it(`${what}: red status with the reason on the nodes, what to do in the log, the webhook answers 503, no password anywhere`, async () => {
      const url = await makeUrl();
      const pw = what === 'a wrong password' ? WRONG : split(server.url('x')).password;
      const d = await deploy(url, pw);
      await waitFor(() => d.statuses.q.some((s) => status.test(s)), 15_000, `sync-queue status ${status}`);
      await waitFor(() => d.statuses.wh.some((s) => status.test(s)), 15_000, `crm-webhook status ${status}`);
      const r = await d.http.get(hook()).expect(503);
      assert.match(r.text, /send it again later/);
      await waitFor(() => d.errors.length >= 2, 5000, 'the errors');
      const all = [...d.errors, ...d.statuses.wh, ...d.statuses.q, r.text].join('\n');
      assert.match(all, what === 'a wrong password' ? /check the user and password of the store/ : /database in the connection string does not exist/);
      assert.ok(!all.includes(pw), 'no password in status, log or answer');
    });
  }

  it('the right password: the webhook change is queued in the database (200), the queue node says so', async () => {
    const full = await server.database();
    const { bare, password } = split(full);
    const d = await deploy(bare, password);
    await d.http.get(hook()).expect(200);
    const c = new Client({ connectionString: full });
    await c.connect();
    try {
      const r = await c.query<{ n: string }>("SELECT count(*)::text AS n FROM siagh_sync_queue");
      assert.ok(Number(r.rows[0].n) >= 1, 'the job is a row in the database');
    } finally {
      await c.end();
    }
    assert.ok(!d.statuses.q.some((s) => s.startsWith('red')), d.statuses.q.join(', '));
  });

  it('PostgreSQL restarting mid-run: a webhook meanwhile answers 503 (the CRM sends again), then the work resumes; nothing is lost', async () => {
    const full = await server.database();
    const { bare, password } = split(full);
    const d = await deploy(bare, password);
    await d.http.get(hook()).expect(200);
    // A clean stop (an operator's restart; the test server runs without fsync, so a crash could drop commits).
    server.stop('fast');
    try {
      const r = await d.http.get(hook('6c1e9b4f-2d3a-4b5c-8e7f-1a2b3c4d5e6f'));
      assert.equal(r.status, 503, r.text);
    } finally {
      server.start();
    }
    // The same change sent again (as the CRM does after a 503) is queued once the server is back.
    let status = 0;
    const end = Date.now() + 20_000;
    while (Date.now() < end) {
      status = (await d.http.get(hook('6c1e9b4f-2d3a-4b5c-8e7f-1a2b3c4d5e6f'))).status;
      if (status === 200) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    assert.equal(status, 200, `accepted again after the restart; errors: ${d.errors.slice(-3).join(' | ')}`);
    const c = new Client({ connectionString: full });
    await c.connect();
    try {
      const r = await c.query<{ id: string }>("SELECT event->>'id' AS id FROM siagh_sync_queue ORDER BY 1");
      assert.deepEqual(r.rows.map((x) => x.id).sort(), [ID, '6c1e9b4f-2d3a-4b5c-8e7f-1a2b3c4d5e6f'].sort());
    } finally {
      await c.end();
    }
  });

  it('PostgreSQL not running at deploy: the nodes wait (yellow, with the reason), webhooks answer 503; once it starts they open by themselves and the webhook syncs', async () => {
    const full = await server.database();
    const { bare, password } = split(full);
    server.stop('fast');
    let d;
    try {
      d = await deploy(bare, password, { mapping: true });
      const dd = d;
      for (const id of ['wh', 'q', 'map']) {
        await waitFor(() => dd.statuses[id].some((s) => s === 'yellow:waiting for PostgreSQL: not answering'), 15_000, `${id}: waiting for PostgreSQL`);
      }
      const r = await d.http.get(hook()).expect(503);
      assert.match(r.text, /send it again later/);
      // Said once per node, not at every try (the first retry comes after 1 s, the next after 2 s).
      await waitFor(() => dd.statuses.q.filter((s) => s.startsWith('yellow:waiting')).length >= 2, 15_000, 'sync-queue tried again');
      assert.equal(d.warnings.filter((w) => w.startsWith('q:')).length, 1, d.warnings.join('\n'));
      assert.match(d.warnings.join('\n'), /goes on by itself once PostgreSQL answers/);
    } finally {
      server.start();
    }
    const dd = d;
    // The CRM sends the change again after its 503: it is queued once the store opens.
    let status = 0;
    const end = Date.now() + 45_000;
    while (Date.now() < end) {
      status = (await dd.http.get(hook())).status;
      if (status === 200) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    assert.equal(status, 200, `accepted once PostgreSQL runs; statuses: ${dd.statuses.wh.slice(-3).join(' | ')}`);
    // The queue hands the job to sync-mapping, which opened too and looked the record up.
    await waitFor(() => dd.statuses.map.some((s) => /^green:new · 0 mappings/.test(s)), 45_000, `sync-mapping looked the record up: ${dd.statuses.map.slice(-3).join(' | ')}`);
    assert.ok(!dd.statuses.q.at(-1)?.includes('waiting for PostgreSQL'), dd.statuses.q.join(', '));
    const c = new Client({ connectionString: full });
    await c.connect();
    try {
      const r = await c.query<{ id: string }>("SELECT event->>'id' AS id FROM siagh_sync_queue");
      assert.deepEqual(r.rows.map((x) => x.id), [ID]);
    } finally {
      await c.end();
    }
    assert.ok(![...dd.errors, ...dd.warnings].join('\n').includes(password), 'no password in the log');
  });

  it('a wrong password fixed on the server: the nodes, red meanwhile, open by themselves without a redeploy', async () => {
    const full = await server.database();
    const { bare, password } = split(full);
    const d = await deploy(bare, WRONG);
    await waitFor(() => d.statuses.q.some((s) => /^red:PostgreSQL: wrong user or password/.test(s)), 15_000, 'red on sync-queue');
    await d.http.get(hook()).expect(503);
    // The operator gives the role the password the store was saved with.
    await server.admin((c) => c.query(`ALTER ROLE siagh_sync PASSWORD '${WRONG}'`));
    try {
      await waitFor(() => d.statuses.q.some((s) => /waiting$/.test(s) || /^green|^blue/.test(s)), 45_000, `sync-queue opened: ${d.statuses.q.slice(-2).join(' | ')}`);
      let status = 0;
      const end = Date.now() + 45_000;
      while (Date.now() < end && (status = (await d.http.get(hook())).status) !== 200) await new Promise((r) => setTimeout(r, 250));
      assert.equal(status, 200);
      assert.equal(d.errors.filter((e) => /check the user and password/.test(e)).length, 2, 'said once per node, not at every try');
    } finally {
      await server.admin((c) => c.query(`ALTER ROLE siagh_sync PASSWORD '${password.replace(/'/g, "''")}'`));
    }
  });

  it('Test connection: "connected (PostgreSQL 15…, schema version …)" or the reason; never the password', async () => {
    const full = await server.database();
    const { bare, password } = split(full);
    const d = await deploy(bare, password); // migrates the queue: the test reports its schema version
    await waitFor(() => d.statuses.q.length > 0, 15_000, 'the queue open');
    const post = async (body: Record<string, unknown>) => {
      const res = await helper.request().post('/siagh-sync/sync-store/test').send(body).expect(200);
      assert.ok(!res.text.includes(password) && !res.text.includes(WRONG), res.text);
      return res.body as { ok: boolean; message: string; code?: string };
    };
    // The deployed node, unchanged: its stored password.
    const ok = await post({ id: 'store', pgUrl: bare, pgTls: 'off', pgPassword: '__PWRD__' });
    assert.equal(ok.ok, true, ok.message);
    assert.match(ok.message, /^connected \(PostgreSQL 15\.\d+, database \w+, schema version .*queue \d/);
    // Typed values, not deployed.
    const typed = await post({ id: 'new1', pgUrl: bare, pgTls: 'off', pgPassword: password });
    assert.equal(typed.ok, true, typed.message);
    const wrong = await post({ id: 'new1', pgUrl: bare, pgTls: 'off', pgPassword: WRONG });
    assert.equal(wrong.ok, false);
    assert.match(wrong.message, /refused the login: check the user and password/);
    const nodb = await post({ id: 'new1', pgUrl: split(server.url('no_such_db')).bare, pgPassword: password });
    assert.match(nodb.message, /database in the connection string does not exist/);
    const closed = await post({ id: 'new1', pgUrl: 'postgres://siagh_sync@127.0.0.1:1/x', pgPassword: password });
    assert.match(closed.message, /not answering/);
    // The stored password does not travel to another server; ${VAR} is not read from the dialog.
    const other = await post({ id: 'store', pgUrl: 'postgres://siagh_sync@127.0.0.1:1/x', pgPassword: '__PWRD__' });
    assert.equal(other.ok, false);
    assert.match(other.message, /stored password is used only with the connection string/);
    const env = await post({ id: 'new1', pgUrl: '${DATABASE_URL}', pgPassword: '' });
    assert.match(env.message, /reads no environment variable/);
    const bad = await post({ id: 'new1', pgUrl: 'mysql://a@h/db' });
    assert.match(bad.message, /starts with postgres:\/\//);
  });
});
