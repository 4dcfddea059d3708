/**
 * HTTPS towards the servers: certificates are verified, a custom CA can be given per config node,
 * and nothing switches verification off for the whole process. The simulators are put behind an
 * HTTPS front (a small TLS-terminating proxy on loopback) whose certificate is signed by a test CA
 * (fixed material in fixtures/tls/certs.ts).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { AddressInfo } from 'node:net';
import path from 'node:path';
import { CrmClient } from '../../../lib/crm/client';
import { SiaghClient } from '../../../lib/siagh/client';
import { CRM_SIM_DEFAULTS } from '../../../sim/crm-sim';
import { CA_PEM, OTHER_CA_PEM, SERVER_CERT_PEM, SERVER_KEY_PEM } from '../../fixtures/tls/certs';
import { CRM_USER, SIAGH_USER, collect, configNodes, helper, n, nodeModule, startSims, tab, tmpDir, waitFor } from '../../helpers/node-env';
import { isCode } from '../../helpers/assert-code';
import { BUILD_ROOT } from '../../helpers/paths';

/** An HTTPS front for an http server: every request is passed on to `target`. */
async function httpsFront(target: string): Promise<{ url: string; close: () => Promise<void> }> {
  const server = https.createServer({ key: SERVER_KEY_PEM, cert: SERVER_CERT_PEM }, (req, res) => {
    const u = new URL(req.url ?? '/', target);
    const up = http.request(u, { method: req.method, headers: { ...req.headers, host: u.host } }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `https://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

describe('TLS: certificates verified, a CA per config node, never switched off for the process', function () {
  this.timeout(20_000);
  let sims: Awaited<ReturnType<typeof startSims>>;
  let crmFront: Awaited<ReturnType<typeof httpsFront>>;
  let siaghFront: Awaited<ReturnType<typeof httpsFront>>;
  const envBefore = process.env.NODE_TLS_REJECT_UNAUTHORIZED;

  before(async () => {
    sims = await startSims();
    crmFront = await httpsFront(sims.crm.url);
    siaghFront = await httpsFront(sims.siagh.url);
  });
  after(async () => {
    await crmFront?.close();
    await siaghFront?.close();
    await sims?.stop();
  });

  const crm = (ca?: string) => new CrmClient({ baseUrl: crmFront.url, username: CRM_USER.username, password: CRM_USER.password, ca, retries: 0 });
  const siagh = (ca?: string) => new SiaghClient({ baseUrl: siaghFront.url, username: SIAGH_USER.UserName, password: SIAGH_USER.Password, ca, retries: 0 });

  it('the CRM client refuses the server without its CA (code TLS, says what to do) and with the wrong CA', async () => {
    for (const ca of [undefined, OTHER_CA_PEM]) {
      const c = crm(ca);
      try {
        await assert.rejects(c.login(), (e: Error) => {
          isCode('TLS')(e);
          assert.match(e.message, /CA certificate/);
          assert.doesNotMatch(e.message, new RegExp(CRM_USER.password));
          return true;
        });
      } finally {
        c.close();
      }
    }
    assert.equal(sims.crm.loginCount, 0, 'no login request got through');
  });

  it('the CRM client works over HTTPS with the CA given', async () => {
    const c = crm(CA_PEM);
    try {
      const p = sims.crm.addPerson({ nickName: 'مشتری TLS' }, { webhook: false });
      await c.login();
      const got = await c.getPerson(p.crmId);
      assert.equal(got.nickName, 'مشتری TLS');
    } finally {
      c.close();
    }
  });

  it('the Siagh client refuses the server without its CA or with the wrong one, and works with it', async () => {
    for (const ca of [undefined, OTHER_CA_PEM]) {
      const c = siagh(ca);
      try {
        await assert.rejects(c.login(), isCode('TLS'));
      } finally {
        c.close();
      }
    }
    assert.equal(sims.siagh.loginAttemptCount, 0);
    const c = siagh(CA_PEM);
    try {
      await c.login();
      assert.ok(Array.isArray(await c.getAllContacts()));
      assert.equal(sims.siagh.loginCount, 1);
    } finally {
      c.close();
    }
  });

  describe('config nodes: the `ca` property', () => {
    afterEach(() => helper.unload());

    async function load(ca: string | undefined) {
      helper.settings({ userDir: tmpDir('tls-test-') });
      const cfg = configNodes(siaghFront.url, crmFront.url, { crm: { ca: ca ?? '' }, siagh: { ca: ca ?? '' } });
      const flow = [
        tab,
        ...cfg.nodes,
        n({ id: 'fetch', type: 'crm-fetch', crm: 'crm', what: 'identity', wires: [['upsert']] }),
        n({ id: 'upsert', type: 'siagh-upsert', siagh: 'siagh', mode: 'contact', wires: [['out']] }),
        n({ id: 'out', type: 'helper' }),
        n({ id: 'catch', type: 'catch', scope: null, uncaught: false, wires: [['caught']] }),
        n({ id: 'caught', type: 'helper' }),
      ];
      await helper.load(['crm-config', 'siagh-config', 'crm-fetch', 'siagh-upsert'].map(nodeModule), flow, cfg.credentials);
      return { out: collect(helper.getNode('out')), caught: collect(helper.getNode('caught')) };
    }

    it('crm-fetch → siagh-upsert over HTTPS with the CA in both config nodes', async () => {
      const { out, caught } = await load(CA_PEM);
      const p = sims.crm.addPerson({ nickName: 'مشتری TLS ۲', phoneContacts: [{ default: true, phoneType: 'موبایل', phoneNumber: '09127770011' }] }, { webhook: false });
      helper.getNode('fetch').receive({ payload: { id: p.crmId, subtype: CRM_SIM_DEFAULTS.personSubtype } });
      await waitFor(() => out.length + caught.length > 0, 8000, 'a result');
      assert.deepEqual(caught.map((m) => m.error?.message), []);
      assert.equal(out[0].siagh.action, 'created');
      assert.equal(sims.siagh.contact(out[0].siagh.code)?.Name, 'مشتری TLS ۲');
    });

    it('without a CA the node fails with TLS (Catch), nothing is read or written', async () => {
      const { out, caught } = await load(undefined);
      const gets = sims.crm.count('POST /api/v2/crmobject/person/get');
      const p = sims.crm.addPerson({ nickName: 'مشتری TLS ۳' }, { webhook: false });
      helper.getNode('fetch').receive({ payload: { id: p.crmId, subtype: CRM_SIM_DEFAULTS.personSubtype } });
      await waitFor(() => caught.length > 0, 8000, 'the TLS failure');
      assert.equal(out.length, 0);
      assert.equal(caught[0].error.code, 'TLS');
      assert.equal(sims.crm.count('POST /api/v2/crmobject/person/get'), gets);
    });
  });

  it('the package never touches NODE_TLS_REJECT_UNAUTHORIZED nor turns certificate checks off (compiled lib/ and nodes/)', () => {
    assert.equal(process.env.NODE_TLS_REJECT_UNAUTHORIZED, envBefore, 'unchanged by the runs above');
    const roots = [path.join(BUILD_ROOT, 'lib'), path.join(BUILD_ROOT, 'nodes')];
    const files: string[] = [];
    const walk = (d: string) => {
      for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        const p = path.join(d, e.name);
        if (e.isDirectory()) walk(p);
        else if (/\.(js|html)$/.test(e.name)) files.push(p);
      }
    };
    for (const r of roots) walk(r);
    assert.ok(files.length > 20, `the compiled package is there (${files.length} files)`);
    const hits = files.filter((f) => /NODE_TLS_REJECT_UNAUTHORIZED|rejectUnauthorized\s*:\s*(false|0)|checkServerIdentity|insecureHTTPParser/.test(fs.readFileSync(f, 'utf8')));
    assert.deepEqual(hits, []);
  });
});
