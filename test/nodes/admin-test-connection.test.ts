/**
 * The Test connection endpoints cannot be turned against the secrets Node-RED holds (issue #10.3),
 * on the real Node-RED runtime (node-red-node-test-helper) with a loopback HTTP server that records
 * every request it gets:
 * (a) the id of a core http request node with basic-auth credentials: its password reaches no server;
 * (b) the id of a deployed crm-config / siagh-config with a base URL of another server: the stored
 *     password does not go there;
 * (c) `${SECRET_ENV}` as base URL, user name or password: never read from the environment, so the
 *     value appears in no outgoing request and not in the reply;
 * (d) the honest cases still work: typed values, and the stored credentials against the node's own URL.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { CRM_USER, SIAGH_USER, configNodes, coreNode, helper, n, nodeModule, startSims, tab } from '../helpers/node-env';

const NODES = () => [nodeModule('crm-config'), nodeModule('siagh-config'), coreNode('network/21-httprequest.js')];

interface Recorded {
  method: string;
  url: string;
  headers: string;
  body: string;
}

/** A loopback HTTP server that records every request (line, headers, body) and answers 404. */
async function recorder(): Promise<{ url: string; requests: Recorded[]; stop(): Promise<void> }> {
  const requests: Recorded[] = [];
  const sockets = new Set<net.Socket>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      requests.push({ method: req.method ?? '', url: req.url ?? '', headers: JSON.stringify(req.headers), body: Buffer.concat(chunks).toString('utf8') });
      res.writeHead(404, { 'Content-Type': 'application/json' }).end('{"error":"recorder"}');
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    stop: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** Every way a secret could travel in a request: as is, URL-encoded, in Basic auth (base64). */
function carries(r: Recorded, secret: string): boolean {
  const all = [r.url, r.headers, r.body].join('\n');
  const forms = [secret, encodeURIComponent(secret), Buffer.from(secret).toString('base64')];
  let decoded = all;
  try {
    decoded = decodeURIComponent(all);
  } catch {
    /* not decodable: as is */
  }
  // Basic auth carries base64("user:password"): decode every base64 token of the headers too.
  const b64 = (r.headers.match(/[A-Za-z0-9+/=]{8,}/g) ?? []).map((t) => Buffer.from(t, 'base64').toString('utf8')).join('\n');
  return forms.some((f) => all.includes(f)) || decoded.includes(secret) || b64.includes(secret);
}

describe('Test connection endpoints refuse to leak stored or environment secrets (Node-RED runtime)', function () {
  this.timeout(15000);
  let sims: Awaited<ReturnType<typeof startSims>>;
  let rec: Awaited<ReturnType<typeof recorder>>;
  const HTTP_PASSWORD = 'http-node-basic-pass-51ab';
  const SECRET_ENV = 'env-secret-value-83f0';
  const saved = process.env.SECRET_ENV;

  before(async () => {
    sims = await startSims({ siagh: { fiscalYear: 1403, branchName: 'شعبه تهران' } });
    rec = await recorder();
  });
  after(async () => {
    await rec.stop();
    await sims.stop();
  });
  beforeEach(() => {
    rec.requests.length = 0;
  });
  afterEach(async () => {
    await helper.unload();
    if (saved === undefined) delete process.env.SECRET_ENV;
    else process.env.SECRET_ENV = saved;
  });

  /** The two config nodes (ids crm, siagh) on the simulators and a core http request node (id hr) with basic auth. */
  async function deploy(): Promise<void> {
    const cfg = configNodes(sims.siagh.url, sims.crm.url);
    const hr = n({ id: 'hr', type: 'http request', method: 'GET', ret: 'txt', url: `${rec.url}/hr`, authType: 'basic', wires: [[]] });
    await helper.load(NODES(), [tab, ...cfg.nodes, hr], { ...cfg.credentials, hr: { user: 'hr-user', password: HTTP_PASSWORD } });
  }

  async function post(path: string, body: Record<string, unknown>): Promise<{ json: any; text: string }> {
    const res = await helper.request().post(path).send(body).expect(200);
    return { json: res.body, text: res.text };
  }
  const routes = ['/siagh-sync/crm-config/test', '/siagh-sync/siagh-config/test'];

  function nothingCarries(secret: string): void {
    const hits = rec.requests.filter((r) => carries(r, secret));
    assert.deepEqual(hits, [], `a request carried the secret: ${JSON.stringify(hits)}`);
  }

  it('(a) the id of a core http request node: its password reaches no server, and the reply says why', async () => {
    await deploy();
    const crmLogins = sims.crm.loginCount;
    const siaghAttempts = sims.siagh.loginAttemptCount;
    for (const route of routes) {
      for (const baseUrl of [rec.url, `${rec.url}/hr`, sims.crm.url, sims.siagh.url]) {
        for (const password of ['__PWRD__', '']) {
          const r = await post(route, { id: 'hr', baseUrl, username: 'hr-user', password, timeout: '5' });
          assert.equal(r.json.ok, false, r.text);
          assert.equal(r.json.code, 'CONFIG', r.text);
          assert.match(r.json.message, /is not a (crm|siagh)-config node/);
          assert.ok(!r.text.includes(HTTP_PASSWORD), r.text);
        }
      }
    }
    nothingCarries(HTTP_PASSWORD);
    assert.deepEqual(rec.requests, [], 'no request at all');
    assert.equal(sims.crm.loginCount, crmLogins);
    assert.equal(sims.siagh.loginAttemptCount, siaghAttempts);
  });

  it('(a) the id of the other config type is refused too (the CRM password never goes to the Siagh route and back)', async () => {
    await deploy();
    const a = await post('/siagh-sync/siagh-config/test', { id: 'crm', baseUrl: sims.crm.url, username: CRM_USER.username, password: '__PWRD__', timeout: '5' });
    assert.equal(a.json.code, 'CONFIG', a.text);
    assert.match(a.json.message, /not a siagh-config node/);
    const b = await post('/siagh-sync/crm-config/test', { id: 'siagh', baseUrl: rec.url, username: SIAGH_USER.UserName, password: '', timeout: '5' });
    assert.equal(b.json.code, 'CONFIG', b.text);
    assert.match(b.json.message, /not a crm-config node/);
    assert.deepEqual(rec.requests, []);
  });

  it('(b) the id of a deployed config node with another base URL: the stored password never goes there', async () => {
    await deploy();
    const cases = [
      { route: routes[0], id: 'crm', username: CRM_USER.username, secret: CRM_USER.password },
      { route: routes[1], id: 'siagh', username: SIAGH_USER.UserName, secret: SIAGH_USER.Password },
    ];
    for (const c of cases) {
      for (const body of [
        { id: c.id, baseUrl: rec.url, username: c.username, password: '__PWRD__', timeout: '5' },
        { id: c.id, baseUrl: `${rec.url}/`, username: '', password: '', timeout: '5' },
        { id: c.id, baseUrl: rec.url, timeout: '5' },
      ]) {
        const r = await post(c.route, body);
        assert.equal(r.json.ok, false, r.text);
        assert.equal(r.json.code, 'CONFIG', r.text);
        assert.match(r.json.message, /used only against the base URL it was deployed with/);
        assert.ok(!r.text.includes(c.secret), r.text);
      }
      nothingCarries(c.secret);
    }
    assert.deepEqual(rec.requests, [], 'nothing was sent: there is no password to send');
    // A password typed in the dialog may of course be tried against the new URL (and only it travels).
    const typed = 'typed-for-new-url-42';
    const t = await post(routes[0], { id: 'crm', baseUrl: rec.url, username: CRM_USER.username, password: typed, timeout: '5' });
    assert.equal(t.json.ok, false, t.text);
    assert.ok(rec.requests.length > 0, 'the typed values were tried');
    nothingCarries(CRM_USER.password);
    assert.ok(!t.text.includes(typed), t.text);
  });

  it('(c) ${SECRET_ENV} as base URL, user name or password is never read from the environment', async () => {
    await deploy();
    for (const value of [`${rec.url}/leak`, SECRET_ENV]) {
      process.env.SECRET_ENV = value;
      const secret = value === SECRET_ENV ? SECRET_ENV : '/leak';
      for (const route of routes) {
        for (const id of [undefined, route.includes('crm') ? 'crm' : 'siagh']) {
          for (const body of [
            { baseUrl: '${SECRET_ENV}', username: 'someone', password: 'typed-pass', timeout: '5' },
            { baseUrl: '$(SECRET_ENV)', username: 'someone', password: 'typed-pass', timeout: '5' },
            { baseUrl: rec.url, username: '${SECRET_ENV}', password: 'typed-pass', timeout: '5' },
            { baseUrl: rec.url, username: 'someone', password: '${SECRET_ENV}', timeout: '5' },
            { baseUrl: rec.url, username: ' ${SECRET_ENV} ', password: 'typed-pass', timeout: '5' },
          ]) {
            const r = await post(route, id ? { id, ...body } : body);
            assert.equal(r.json.ok, false, r.text);
            assert.equal(r.json.code, 'CONFIG', r.text);
            assert.match(r.json.message, /does not read environment variables/);
            assert.ok(!r.text.includes(value), `the reply holds the environment value: ${r.text}`);
          }
        }
      }
      const hits = rec.requests.filter((r) => carries(r, secret) || (value === SECRET_ENV && carries(r, SECRET_ENV)));
      assert.deepEqual(hits, [], JSON.stringify(hits));
    }
    assert.deepEqual(rec.requests, [], 'a ${...} value is refused before any request');
    // The other settings are sent as typed (never expanded): a ${...} timeout is just not a number.
    process.env.SECRET_ENV = SECRET_ENV;
    const other = await post(routes[0], { baseUrl: rec.url, username: 'someone', password: 'typed-pass', timeout: '${SECRET_ENV}', ca: '' });
    assert.equal(other.json.ok, false);
    assert.ok(!other.text.includes(SECRET_ENV));
    nothingCarries(SECRET_ENV);
  });

  it('(d) the honest cases: typed values, and stored credentials against the deployed URL', async () => {
    await deploy();
    const crm = await post(routes[0], { baseUrl: sims.crm.url, username: CRM_USER.username, password: CRM_USER.password, timeout: '5' });
    assert.equal(crm.json.ok, true, crm.text);
    const crmStored = await post(routes[0], { id: 'crm', baseUrl: sims.crm.url, username: CRM_USER.username, password: '__PWRD__', timeout: '5' });
    assert.equal(crmStored.json.ok, true, crmStored.text);
    const crmSlash = await post(routes[0], { id: 'crm', baseUrl: `${sims.crm.url}/`, password: '', timeout: '5' });
    assert.equal(crmSlash.json.ok, true, crmSlash.text);
    const siagh = await post(routes[1], { id: 'siagh', baseUrl: sims.siagh.url, username: SIAGH_USER.UserName, password: SIAGH_USER.Password, timeout: '5' });
    assert.equal(siagh.json.ok, true, siagh.text);
    const siaghStored = await post(routes[1], { id: 'siagh', baseUrl: sims.siagh.url, username: SIAGH_USER.UserName, password: '__PWRD__', timeout: '5' });
    assert.equal(siaghStored.json.ok, true, siaghStored.text);
    assert.equal(siaghStored.json.details.fiscalYear, 1403);
    // An id the runtime does not know (a node not deployed yet) stores nothing: typed values only.
    const fresh = await post(routes[0], { id: 'not-deployed-yet', baseUrl: sims.crm.url, username: CRM_USER.username, password: CRM_USER.password, timeout: '5' });
    assert.equal(fresh.json.ok, true, fresh.text);
    const freshStored = await post(routes[0], { id: 'not-deployed-yet', baseUrl: sims.crm.url, username: CRM_USER.username, password: '__PWRD__', timeout: '5' });
    assert.equal(freshStored.json.ok, false);
    assert.equal(freshStored.json.code, 'CONFIG');
    for (const r of [crm, crmStored, crmSlash, siagh, siaghStored, fresh, freshStored]) {
      assert.ok(!r.text.includes(CRM_USER.password) && !r.text.includes(SIAGH_USER.Password), r.text);
    }
    assert.deepEqual(rec.requests, []);
  });
});
