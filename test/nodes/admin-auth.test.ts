/**
 * The package's admin endpoints under Node-RED's adminAuth: a real Node-RED child with the package
 * installed from its tarball, a full-permission user ('*') and a read-only one ('read'). The
 * Test-connection endpoints of the config nodes and sync-log's replay refuse an anonymous request
 * (401) and a read-only token (401/403), and work with a full-permission token obtained from
 * POST /auth/token (grant_type password, client_id node-red-admin, scope *).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { installTarball, packedTarball, waitFor } from '../helpers/e2e';
import { CRM_USER, SIAGH_USER, startSims } from '../helpers/node-env';
import { NodeRedProcess, startNodeRed, writeSettings } from '../helpers/nodered-process';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const bcrypt = require(require.resolve('bcryptjs', { paths: [path.dirname(require.resolve('node-red/package.json'))] })) as { hashSync(s: string, rounds: number): string };

const ADMIN = { username: 'admin', password: 'admin-pass-4d1f' };
const VIEWER = { username: 'viewer', password: 'viewer-pass-9c2e' };

type Red = NodeRedProcess;

describe('admin endpoints under adminAuth (real Node-RED child)', function () {
  this.timeout(30_000);
  let sims: Awaited<ReturnType<typeof startSims>>;
  let red: Red;
  let dir: string;
  let adminToken: string;
  let viewerToken: string;

  async function token(user: { username: string; password: string }, scope: string): Promise<string> {
    const res = await fetch(`${red.url}/auth/token`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ client_id: 'node-red-admin', grant_type: 'password', scope, username: user.username, password: user.password }),
    });
    const body = (await res.json()) as { access_token?: string };
    assert.equal(res.status, 200, JSON.stringify(body));
    assert.ok(body.access_token);
    return body.access_token;
  }

  before(async function () {
    this.timeout(180_000);
    sims = await startSims();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'siagh-sync-adminauth-'));
    installTarball(dir, packedTarball());
    const settingsFile = writeSettings(dir, {
      credentialSecret: 'admin-auth-test-secret',
      adminAuth: {
        type: 'credentials',
        users: [
          { username: ADMIN.username, password: bcrypt.hashSync(ADMIN.password, 8), permissions: '*' },
          { username: VIEWER.username, password: bcrypt.hashSync(VIEWER.password, 8), permissions: 'read' },
        ],
      },
    });
    // Under adminAuth /settings needs a token: ready when the public GET /auth/login answers.
    red = await startNodeRed({ userDir: dir, settingsFile, readyPath: '/auth/login' });
    adminToken = await token(ADMIN, '*');
    viewerToken = await token(VIEWER, 'read');
    // A sync-log whose replay output is wired (else a replay is refused with 409).
    const flow = [
      { id: 't1', type: 'tab', label: 'auth' },
      { id: 'log1', type: 'sync-log', z: 't1', x: 100, y: 100, name: '', dir: path.join(dir, 'data'), trigger: 'auto', wires: [[], ['dbg1']] },
      { id: 'dbg1', type: 'debug', z: 't1', x: 300, y: 100, active: false, tosidebar: false, console: false, complete: 'payload', wires: [] },
      // A crm-webhook with a token, behind http in / http response, for its rejection list.
      { id: 'whin1', type: 'http in', z: 't1', x: 100, y: 200, name: '', url: '/auth-test/hook', method: 'get', upload: false, swaggerDoc: '', wires: [['wh1']] },
      { id: 'wh1', type: 'crm-webhook', z: 't1', x: 300, y: 200, name: '', mode: 'webhook', expect: 'identity', coalesceMs: 0, tokenEnv: '', allowNoToken: false, keepRejections: 50, credentials: { token: 'auth-test-hook-token-3e' }, wires: [[], ['whres1']] },
      { id: 'whres1', type: 'http response', z: 't1', x: 500, y: 200, name: '', statusCode: '', headers: {}, wires: [] },
    ];
    const from = red.log().length;
    const res = await fetch(`${red.url}/flows`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'Node-RED-Deployment-Type': 'full', Authorization: `Bearer ${adminToken}` },
      body: JSON.stringify(flow),
    });
    assert.ok(res.status === 200 || res.status === 204, `deploy: ${res.status} ${await res.text()}`);
    await waitFor('the flow to start', () => /Started flows/.test(red.log().slice(from)), { timeoutMs: 20_000 });
  });
  after(async () => {
    await red?.stop();
    await sims?.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  async function call(method: 'GET' | 'POST', p: string, tok: string | undefined, body?: unknown): Promise<{ status: number; body: unknown; text: string }> {
    const res = await fetch(`${red.url}${p}`, {
      method,
      headers: { 'Content-Type': 'application/json', ...(tok ? { Authorization: `Bearer ${tok}` } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      /* not JSON */
    }
    return { status: res.status, body: parsed, text };
  }

  const endpoints = () => [
    { name: 'crm-config test', path: '/siagh-sync/crm-config/test', body: { baseUrl: sims.crm.url, username: CRM_USER.username, password: CRM_USER.password, timeout: 5 } },
    { name: 'siagh-config test', path: '/siagh-sync/siagh-config/test', body: { baseUrl: sims.siagh.url, username: SIAGH_USER.UserName, password: SIAGH_USER.Password, timeout: 5 } },
    { name: 'sync-log replay', path: '/siagh-sync/sync-log/log1/replay', body: { all: true } },
  ];

  it('anonymous requests are refused with 401 and reach no server', async () => {
    const before = { crm: sims.crm.loginCount, siagh: sims.siagh.loginAttemptCount };
    for (const e of endpoints()) {
      const r = await call('POST', e.path, undefined, e.body);
      assert.equal(r.status, 401, `${e.name}: ${r.text}`);
    }
    assert.deepEqual({ crm: sims.crm.loginCount, siagh: sims.siagh.loginAttemptCount }, before, 'no login was attempted');
  });

  it('a read-only token is refused (401/403) by the endpoints that act, and reaches no server', async () => {
    const before = { crm: sims.crm.loginCount, siagh: sims.siagh.loginAttemptCount };
    for (const e of endpoints()) {
      const r = await call('POST', e.path, viewerToken, e.body);
      assert.ok(r.status === 403 || r.status === 401, `${e.name}: ${r.status} ${r.text}`);
    }
    assert.deepEqual({ crm: sims.crm.loginCount, siagh: sims.siagh.loginAttemptCount }, before);
    // …while it may read the sync-log's stats and failed list (permission sync-log.read).
    const stats = await call('GET', '/siagh-sync/sync-log/log1/stats', viewerToken);
    assert.equal(stats.status, 200, stats.text);
    const anonStats = await call('GET', '/siagh-sync/sync-log/log1/stats', undefined);
    assert.equal(anonStats.status, 401);
  });

  it('the crm-webhook rejection list (GET /siagh-sync/webhook-rejections/:id) needs crm-webhook.read: anonymous 401; read-only and full tokens see it, redacted', async () => {
    const hook = await fetch(`${red.url}/auth-test/hook?event=Insert&id=not-a-guid&type=Identity&token=auth-test-hook-token-3e`);
    assert.equal(hook.status, 400);
    assert.equal((await fetch(`${red.url}/auth-test/hook?event=Insert&id=not-a-guid&type=Identity`)).status, 401);
    const anon = await call('GET', '/siagh-sync/webhook-rejections/wh1', undefined);
    assert.equal(anon.status, 401, anon.text);
    for (const tok of [viewerToken, adminToken]) {
      const r = await call('GET', '/siagh-sync/webhook-rejections/wh1', tok);
      assert.equal(r.status, 200, r.text);
      assert.deepEqual((r.body as { counts?: unknown }).counts, { 'invalid-id': 1, 'token-missing': 1 });
      assert.doesNotMatch(r.text, /auth-test-hook-token-3e/);
    }
  });

  it('a full-permission token gets the real answers', async () => {
    const [crmTest, siaghTest, replay] = endpoints();
    const c = await call('POST', crmTest.path, adminToken, crmTest.body);
    assert.equal(c.status, 200, c.text);
    assert.equal((c.body as { ok?: boolean }).ok, true, c.text);
    assert.doesNotMatch(c.text, new RegExp(CRM_USER.password));
    const s = await call('POST', siaghTest.path, adminToken, siaghTest.body);
    assert.equal(s.status, 200, s.text);
    assert.equal((s.body as { ok?: boolean }).ok, true, s.text);
    assert.doesNotMatch(s.text, new RegExp(SIAGH_USER.Password));
    const r = await call('POST', replay.path, adminToken, replay.body);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body, { ok: true, replayed: 0, events: [] });
  });
});
