/**
 * crm-config and siagh-config in the real Node-RED 4.1 runtime (node-red-node-test-helper), against
 * both simulators over real HTTP: one shared client per config node, `${ENV_VAR}` credentials, a
 * redeploy that leaves no sockets or timers behind, and the Test connection endpoints.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { createHash } from 'node:crypto';
import { CRM_USER, SIAGH_USER, collect, configNodes, helper, n, nextMessage, nodeModule, startSims, tab, waitFor } from '../helpers/node-env';
import type { CrmSim } from '../../sim/crm-sim';
import type { SiaghSim } from '../../sim/siagh-sim';
import type { CrmConfigNode } from '../../nodes/crm-config/options';
import type { SiaghConfigNode } from '../../nodes/siagh-config/options';

const NODES = () => [nodeModule('crm-config'), nodeModule('siagh-config'), nodeModule('crm-fetch')];

const NO_MODULE = { username: 'no-module-user', password: 'no-module-pass', status: 402 as const };
const LOCKED = { username: 'locked-user', password: 'locked-pass', status: 403 as const };

/** Open sockets the simulator's HTTP server holds (its private connection set). */
function serverSockets(sim: CrmSim | SiaghSim): number {
  return (sim as unknown as { sockets: Set<unknown> }).sockets.size;
}

/** Active handles by kind (Timeout, TCPSocketWrap, …). */
function resources(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of process.getActiveResourcesInfo()) out[r] = (out[r] ?? 0) + 1;
  return out;
}

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

async function settle(): Promise<void> {
  await new Promise((r) => setImmediate(r));
}

describe('config nodes (Node-RED runtime)', function () {
  this.timeout(15000);
  let sims: Awaited<ReturnType<typeof startSims>>;
  let crm: CrmSim;
  let siagh: SiaghSim;
  const savedEnv = { ...process.env };

  before(async () => {
    sims = await startSims({
      crm: { users: [CRM_USER, NO_MODULE, LOCKED] },
      siagh: { fiscalYear: 1403, branchName: 'شعبه تهران' },
    });
    crm = sims.crm;
    siagh = sims.siagh;
  });

  after(async () => {
    await sims.stop();
  });

  afterEach(async () => {
    await helper.unload();
    for (const k of ['TEST_CRM_USER', 'TEST_CRM_PASS', 'TEST_SIAGH_USER', 'TEST_SIAGH_PASS', 'TEST_CRM_URL']) {
      if (savedEnv[k] === undefined) delete process.env[k];
      else process.env[k] = savedEnv[k];
    }
  });

  function fetchFlow(ids: string[]) {
    const cfg = configNodes(siagh.url, crm.url);
    const flow: Array<Record<string, unknown>> = [tab, ...cfg.nodes];
    for (const id of ids) {
      flow.push(n({ id, type: 'crm-fetch', crm: 'crm', what: 'person', wires: [[`${id}-out`]] }));
      flow.push(n({ id: `${id}-out`, type: 'helper' }));
    }
    return { flow, credentials: cfg.credentials };
  }

  // ------------------------------------------------------------------ shared clients

  describe('one client per config node', () => {
    it('crm-config: two crm-fetch nodes and many messages share one client and one CRM login', async () => {
      const people = Array.from({ length: 6 }, (_, i) => crm.addPerson({ nickName: `شخص ${i}`, firstName: 'علی', lastName: `رضایی ${i}` }, { webhook: false }));
      const { flow, credentials } = fetchFlow(['f1', 'f2']);
      await helper.load(NODES(), flow, credentials);
      const loginsBefore = crm.loginCount;
      const out1 = collect(helper.getNode('f1-out'));
      const out2 = collect(helper.getNode('f2-out'));
      people.forEach((p, i) => helper.getNode(i % 2 ? 'f2' : 'f1').receive({ payload: { id: p.crmId } }));
      await waitFor(() => out1.length + out2.length === people.length, 5000, 'six fetched people');
      assert.equal(out1.length, 3);
      assert.equal(out2.length, 3);
      assert.deepEqual(new Set([...out1, ...out2].map((m) => m.payload.crmId)), new Set(people.map((p) => p.crmId)));
      assert.equal(crm.loginCount - loginsBefore, 1, 'one login serves every node and message');
      const cfg = helper.getNode('crm') as CrmConfigNode;
      assert.equal(cfg.client(), cfg.client(), 'the config node hands out the same client');
      assert.equal(cfg.client().sessionInfo().logins, 1);
    });

    it('siagh-config: every user of the config node gets the same client and one Siagh login', async () => {
      siagh.addContact({ Name: 'مشتری آزمون', MobileNo: '09121234567' });
      const cfg = configNodes(siagh.url, crm.url);
      await helper.load(NODES(), [tab, ...cfg.nodes], cfg.credentials);
      const before = siagh.loginCount;
      const node = helper.getNode('siagh') as SiaghConfigNode;
      const a = node.client();
      const b = node.client();
      assert.equal(a, b);
      const lists = await Promise.all([a.getAllContacts(), b.getAllContacts(), a.getAllContacts(), b.getAllContacts()]);
      for (const l of lists) assert.ok(l.some((c) => c.Name === 'مشتری آزمون'));
      await a.getAllContacts();
      assert.equal(siagh.loginCount - before, 1, 'one Siagh session for all calls');
      assert.equal(a.sessionInfo?.fiscalYear, 1403);
    });
  });

  // ------------------------------------------------------------------ ${ENV_VAR} credentials

  describe('credentials from environment variables', () => {
    it('crm-config resolves ${TEST_CRM_USER} / ${TEST_CRM_PASS} and logs in with them', async () => {
      process.env.TEST_CRM_USER = CRM_USER.username;
      process.env.TEST_CRM_PASS = CRM_USER.password;
      const p = crm.addPerson({ nickName: 'env person' }, { webhook: false });
      const { flow } = fetchFlow(['f1']);
      await helper.load(NODES(), flow, { crm: { username: '${TEST_CRM_USER}', password: '${TEST_CRM_PASS}' } });
      const got = nextMessage(helper.getNode('f1-out'), 5000);
      helper.getNode('f1').receive({ payload: { id: p.crmId } });
      const m = await got;
      assert.equal(m.payload.crmId, p.crmId);
      assert.equal(m.payload.nickName, 'env person');
    });

    it('siagh-config resolves ${TEST_SIAGH_USER} / ${TEST_SIAGH_PASS} and logs in with them', async () => {
      process.env.TEST_SIAGH_USER = SIAGH_USER.UserName;
      process.env.TEST_SIAGH_PASS = SIAGH_USER.Password;
      const cfg = configNodes(siagh.url, crm.url);
      await helper.load(NODES(), [tab, ...cfg.nodes], { siagh: { username: '${TEST_SIAGH_USER}', password: '${TEST_SIAGH_PASS}' } });
      const info = await (helper.getNode('siagh') as SiaghConfigNode).client().login();
      assert.equal(info.userName, SIAGH_USER.UserName);
      assert.equal(info.branchName, 'شعبه تهران');
    });

    it('an unset variable is a config error naming it; the literal text is never sent as a password', async () => {
      delete process.env.TEST_CRM_PASS;
      process.env.TEST_CRM_USER = CRM_USER.username;
      const { flow } = fetchFlow(['f1']);
      flow.push(n({ id: 'c', type: 'catch', wires: [['caught']] }), n({ id: 'caught', type: 'helper' }));
      await helper.load(NODES(), flow, { crm: { username: '${TEST_CRM_USER}', password: '${TEST_CRM_PASS}' } });
      const before = crm.loginCount;
      const caught = nextMessage(helper.getNode('caught'), 5000);
      helper.getNode('f1').receive({ payload: { id: '3f2b8c1e-0000-4000-8000-000000000001' } });
      const m = await caught;
      assert.equal(m.error.code, 'CONFIG');
      assert.match(m.error.message, /TEST_CRM_PASS/);
      assert.equal(crm.loginCount, before, 'no login with the literal ${...} text (it would count toward a lock-out)');
    });

    it('siagh-config: an unset variable is a config error naming it, and no login is attempted', async () => {
      delete process.env.TEST_SIAGH_PASS;
      process.env.TEST_SIAGH_USER = SIAGH_USER.UserName;
      const cfg = configNodes(siagh.url, crm.url);
      await helper.load(NODES(), [tab, ...cfg.nodes], { siagh: { username: '${TEST_SIAGH_USER}', password: '${TEST_SIAGH_PASS}' } });
      const attempts = siagh.loginAttemptCount;
      assert.throws(
        () => (helper.getNode('siagh') as SiaghConfigNode).client(),
        (e: { code?: string; message?: string }) => e.code === 'CONFIG' && /TEST_SIAGH_PASS/.test(e.message ?? ''),
      );
      assert.equal(siagh.loginAttemptCount, attempts);
    });
  });

  // ------------------------------------------------------------------ redeploy

  describe('redeploy', () => {
    it('unload closes both clients: no sockets to the simulators and no extra timers or sockets in the process', async () => {
      // Warm up (module loading, first-use timers of the runtime), then measure from a quiet state.
      await waitFor(() => serverSockets(crm) === 0 && serverSockets(siagh) === 0, 5000, 'quiet simulators');
      await settle();
      const before = resources();

      const p = crm.addPerson({ nickName: 'redeploy' }, { webhook: false });
      const { flow, credentials } = fetchFlow(['f1']);
      await helper.load(NODES(), flow, credentials);
      const got = nextMessage(helper.getNode('f1-out'), 5000);
      helper.getNode('f1').receive({ payload: { id: p.crmId } });
      await got;
      const siaghClient = (helper.getNode('siagh') as SiaghConfigNode).client();
      await siaghClient.getAllContacts();
      const crmClient = (helper.getNode('crm') as CrmConfigNode).client();
      // Keep-alive sockets are open while deployed: the check below would see a leak.
      assert.ok(serverSockets(crm) > 0, 'a keep-alive socket to the CRM while deployed');
      assert.ok(serverSockets(siagh) > 0, 'a keep-alive socket to Siagh while deployed');

      const crmNode = helper.getNode('crm') as CrmConfigNode;
      await helper.unload();
      assert.equal(crmClient.http.closed, true, 'CRM client closed');
      assert.equal(siaghClient.http.closed, true, 'Siagh client closed');
      // A late user of the stopped config node gets an error, not a new client nothing would close.
      assert.throws(() => crmNode.client(), (e: { code?: string }) => e.code === 'NETWORK');
      await waitFor(() => serverSockets(crm) === 0 && serverSockets(siagh) === 0, 3000, 'simulator sockets closed');
      await waitFor(
        () => {
          const now = resources();
          return (now.TCPSocketWrap ?? 0) <= (before.TCPSocketWrap ?? 0) && (now.Timeout ?? 0) <= (before.Timeout ?? 0);
        },
        3000,
        `no leaked handles (before ${JSON.stringify(before)}, now ${JSON.stringify(resources())})`,
      );
    });

    it('helper.setFlows with a changed config closes the old client and the new one works', async () => {
      const p = crm.addPerson({ nickName: 'before redeploy' }, { webhook: false });
      const { flow, credentials } = fetchFlow(['f1']);
      await helper.load(NODES(), flow, credentials);
      let got = nextMessage(helper.getNode('f1-out'), 5000);
      helper.getNode('f1').receive({ payload: { id: p.crmId } });
      await got;
      const oldClient = (helper.getNode('crm') as CrmConfigNode).client();
      const logins = crm.loginCount;

      const changed = flow.map((x) => (x.id === 'crm' ? { ...x, timeout: 6 } : x));
      await helper.setFlows(changed, 'full', credentials);
      assert.equal(oldClient.http.closed, true, 'the old client is closed on redeploy');
      const newClient = (helper.getNode('crm') as CrmConfigNode).client();
      assert.notEqual(newClient, oldClient);

      got = nextMessage(helper.getNode('f1-out'), 5000);
      helper.getNode('f1').receive({ payload: { id: p.crmId } });
      const m = await got;
      assert.equal(m.payload.crmId, p.crmId);
      assert.equal(crm.loginCount - logins, 1, 'the new client logs in once');
    });

    it('a request in flight during unload is aborted without an unhandled rejection, and its socket is closed', async () => {
      const rejections: unknown[] = [];
      const onRejection = (e: unknown) => rejections.push(e);
      process.on('unhandledRejection', onRejection);
      try {
        const p = crm.addPerson({ nickName: 'in flight' }, { webhook: false });
        const { flow, credentials } = fetchFlow(['f1']);
        await helper.load(NODES(), flow, credentials);
        const out = collect(helper.getNode('f1-out'));
        crm.faults.latencyMs = 300;
        const gets = crm.count('POST /api/v2/crmobject/person/get');
        helper.getNode('f1').receive({ payload: { id: p.crmId } });
        await waitFor(() => crm.count('POST /api/v2/crmobject/person/get') > gets, 3000, 'the get reached the CRM');
        await helper.unload();
        await new Promise((r) => setTimeout(r, 400));
        assert.equal(out.length, 0, 'nothing is sent after the flow stopped');
        assert.deepEqual(rejections, []);
        await waitFor(() => serverSockets(crm) === 0, 3000, 'the in-flight socket is closed');
      } finally {
        crm.faults.clear();
        process.off('unhandledRejection', onRejection);
      }
    });
  });

  // ------------------------------------------------------------------ Test connection

  describe('Test connection endpoints', () => {
    async function deployConfigs(creds?: Record<string, unknown>) {
      const cfg = configNodes(siagh.url, crm.url);
      await helper.load(NODES(), [tab, ...cfg.nodes], creds ?? cfg.credentials);
    }

    async function post(path: string, body: Record<string, unknown>): Promise<{ json: any; text: string }> {
      const res = await helper.request().post(path).send(body).expect(200);
      return { json: res.body, text: res.text };
    }

    const crmTest = (body: Record<string, unknown>) => post('/siagh-sync/crm-config/test', body);
    const siaghTest = (body: Record<string, unknown>) => post('/siagh-sync/siagh-config/test', body);

    function noSecret(text: string, ...secrets: string[]) {
      for (const s of secrets) assert.ok(!text.includes(s), `the reply must not contain the password (${text})`);
    }

    it('crm: good credentials → ok with the user', async () => {
      await deployConfigs();
      crm.addPerson({ nickName: 'visible' }, { webhook: false });
      const r = await crmTest({ baseUrl: crm.url, timeout: '5', username: CRM_USER.username, password: CRM_USER.password });
      assert.equal(r.json.ok, true, r.text);
      assert.equal(r.json.details.user, CRM_USER.username);
      assert.equal(r.json.details.identitiesVisible, true);
      noSecret(r.text, CRM_USER.password);
    });

    it('crm: wrong password → CRM_BAD_CREDENTIALS, without the password in the reply', async () => {
      await deployConfigs();
      const wrong = 'wrong-secret-9f3a';
      const r = await crmTest({ baseUrl: crm.url, timeout: '5', username: CRM_USER.username, password: wrong });
      assert.equal(r.json.ok, false);
      assert.equal(r.json.code, 'CRM_BAD_CREDENTIALS');
      assert.match(r.json.message, /user name or password/);
      noSecret(r.text, wrong, CRM_USER.password);
    });

    it('crm: 402 → CRM_MODULE_MISSING; 403 → CRM_LOCKED_OUT', async () => {
      await deployConfigs();
      const a = await crmTest({ baseUrl: crm.url, timeout: '5', username: NO_MODULE.username, password: NO_MODULE.password });
      assert.equal(a.json.ok, false);
      assert.equal(a.json.code, 'CRM_MODULE_MISSING');
      assert.match(a.json.message, /mobile-app module/);
      noSecret(a.text, NO_MODULE.password);
      const b = await crmTest({ baseUrl: crm.url, timeout: '5', username: LOCKED.username, password: LOCKED.password });
      assert.equal(b.json.ok, false);
      assert.equal(b.json.code, 'CRM_LOCKED_OUT');
      noSecret(b.text, LOCKED.password);
    });

    it('crm: unreachable URL → NETWORK; TLS to a plain-HTTP port → TLS', async () => {
      await deployConfigs();
      const port = await closedPort();
      const r = await crmTest({ baseUrl: `http://127.0.0.1:${port}`, timeout: '5', username: CRM_USER.username, password: CRM_USER.password });
      assert.equal(r.json.ok, false);
      assert.equal(r.json.code, 'NETWORK');
      assert.match(r.json.message, /ECONNREFUSED/);
      noSecret(r.text, CRM_USER.password);
      const t = await crmTest({ baseUrl: crm.url.replace('http:', 'https:'), timeout: '5', username: CRM_USER.username, password: CRM_USER.password });
      assert.equal(t.json.ok, false);
      assert.equal(t.json.code, 'TLS');
      noSecret(t.text, CRM_USER.password);
    });

    it('crm: __PWRD__ or an empty password with the id of a deployed config uses the stored credential', async () => {
      await deployConfigs();
      const logins = crm.loginCount;
      const a = await crmTest({ id: 'crm', baseUrl: crm.url, timeout: '5', username: CRM_USER.username, password: '__PWRD__' });
      assert.equal(a.json.ok, true, a.text);
      const b = await crmTest({ id: 'crm', baseUrl: crm.url, timeout: '5', username: CRM_USER.username, password: '' });
      assert.equal(b.json.ok, true, b.text);
      const c = await crmTest({ id: 'crm', baseUrl: crm.url, timeout: '5' });
      assert.equal(c.json.ok, true, c.text);
      assert.equal(crm.loginCount - logins, 3);
      for (const x of [a, b, c]) noSecret(x.text, CRM_USER.password);
      // Without an id there is nothing stored to use: a clear config error, no login attempted.
      const d = await crmTest({ baseUrl: crm.url, timeout: '5', username: CRM_USER.username, password: '__PWRD__' });
      assert.equal(d.json.ok, false);
      assert.equal(d.json.code, 'CONFIG');
      assert.equal(crm.loginCount - logins, 3);
    });

    it('crm: a deployed node with ${ENV} URL and credentials tests as deployed (the runtime resolved them, not the request)', async () => {
      process.env.TEST_CRM_USER = CRM_USER.username;
      process.env.TEST_CRM_PASS = CRM_USER.password;
      process.env.TEST_CRM_URL = crm.url;
      const cfg = configNodes(siagh.url, crm.url, { crm: { baseUrl: '${TEST_CRM_URL}' } });
      await helper.load(NODES(), [tab, ...cfg.nodes], { crm: { username: '${TEST_CRM_USER}', password: '${TEST_CRM_PASS}' } });
      // What the dialog of the deployed node sends: its configured texts and the unchanged marker.
      const r = await crmTest({ id: 'crm', baseUrl: '${TEST_CRM_URL}', timeout: '5', username: '${TEST_CRM_USER}', password: '__PWRD__' });
      assert.equal(r.json.ok, true, r.text);
      assert.equal(r.json.details.user, CRM_USER.username);
      noSecret(r.text, CRM_USER.password);
      // The same ${ENV} texts without the deployed node behind them are not read from the environment.
      const logins = crm.loginCount;
      const n = await crmTest({ baseUrl: '${TEST_CRM_URL}', timeout: '5', username: CRM_USER.username, password: CRM_USER.password });
      assert.equal(n.json.ok, false);
      assert.equal(n.json.code, 'CONFIG');
      assert.match(n.json.message, /does not read environment variables/);
      assert.equal(crm.loginCount, logins);
    });

    it('siagh: good credentials → ok with user, branch and fiscal year', async () => {
      await deployConfigs();
      const r = await siaghTest({ baseUrl: siagh.url, timeout: '5', username: SIAGH_USER.UserName, password: SIAGH_USER.Password });
      assert.equal(r.json.ok, true, r.text);
      assert.deepEqual(r.json.details, { user: SIAGH_USER.UserName, branch: 'شعبه تهران', fiscalYear: 1403 });
      assert.match(r.json.message, /1403/);
      assert.match(r.json.message, /شعبه تهران/);
      noSecret(r.text, SIAGH_USER.Password);
    });

    it('siagh: the password may be given as its MD5 hash', async () => {
      await deployConfigs();
      const md5 = createHash('md5').update(SIAGH_USER.Password, 'utf8').digest('hex');
      const r = await siaghTest({ baseUrl: siagh.url, timeout: '5', username: SIAGH_USER.UserName, password: md5 });
      assert.equal(r.json.ok, true, r.text);
      noSecret(r.text, md5, md5.toUpperCase());
    });

    it('siagh: wrong password → SIAGH_LOGIN_FAILED; unreachable → NETWORK; never the password', async () => {
      await deployConfigs();
      const wrong = 'not-the-siagh-pass';
      const r = await siaghTest({ baseUrl: siagh.url, timeout: '5', username: SIAGH_USER.UserName, password: wrong });
      assert.equal(r.json.ok, false);
      assert.equal(r.json.code, 'SIAGH_LOGIN_FAILED');
      noSecret(r.text, wrong, SIAGH_USER.Password);
      const port = await closedPort();
      const u = await siaghTest({ baseUrl: `http://127.0.0.1:${port}`, timeout: '5', username: SIAGH_USER.UserName, password: SIAGH_USER.Password });
      assert.equal(u.json.ok, false);
      assert.equal(u.json.code, 'NETWORK');
      noSecret(u.text, SIAGH_USER.Password);
    });

    it('siagh: __PWRD__ or an empty password with the id of a deployed config uses the stored credential', async () => {
      await deployConfigs();
      const logins = siagh.loginCount;
      const a = await siaghTest({ id: 'siagh', baseUrl: siagh.url, timeout: '5', username: SIAGH_USER.UserName, password: '__PWRD__' });
      assert.equal(a.json.ok, true, a.text);
      assert.equal(a.json.details.fiscalYear, 1403);
      const b = await siaghTest({ id: 'siagh', baseUrl: siagh.url, timeout: '5', username: SIAGH_USER.UserName, password: '' });
      assert.equal(b.json.ok, true, b.text);
      assert.equal(siagh.loginCount - logins, 2);
      for (const x of [a, b]) noSecret(x.text, SIAGH_USER.Password);
    });

    it('the endpoint clients are closed after each test (no sockets left to the simulators)', async () => {
      await deployConfigs();
      await crmTest({ baseUrl: crm.url, timeout: '5', username: CRM_USER.username, password: CRM_USER.password });
      await siaghTest({ baseUrl: siagh.url, timeout: '5', username: SIAGH_USER.UserName, password: SIAGH_USER.Password });
      await waitFor(() => serverSockets(crm) === 0 && serverSockets(siagh) === 0, 3000, 'test-connection sockets closed');
    });
  });
});
