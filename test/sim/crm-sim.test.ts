import assert from 'node:assert/strict';
import http from 'node:http';
import { AddressInfo } from 'node:net';
import { CrmSim, crmLocalTime } from '../../sim/crm-sim';

interface Recorded {
  method: string;
  rawUrl: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** A tiny webhook receiver that records raw requests. */
async function receiver(status = 200): Promise<{ url: string; got: Recorded[]; close: () => Promise<void> }> {
  const got: Recorded[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      got.push({ method: req.method ?? '', rawUrl: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end('{"success":true}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/webhook/crm/identity`,
    got,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

describe('crm simulator', () => {
  let sim: CrmSim;

  async function post(path: string, body: unknown, token?: string): Promise<{ status: number; data: any; text: string }> {
    const res = await fetch(sim.url + path, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify(body),
    });
    const text = await res.text();
    let data: unknown;
    try {
      data = text ? JSON.parse(text) : undefined;
    } catch {
      data = undefined;
    }
    return { status: res.status, data, text };
  }

  async function login(): Promise<string> {
    const r = await post('/api/v2/auth/login', { username: 'api', password: 'api-pass', deviceId: 'd', platformType: 1, os: 'Linux', osVersion: '1.0', token: '' });
    assert.equal(r.status, 200);
    return r.data.accessToken;
  }

  afterEach(async () => {
    await sim?.stop();
  });

  describe('login and auth', () => {
    it('answers a login with expiresAt (+03:30, 7 fractional digits), a JWT-looking token and a refresh token', async () => {
      sim = new CrmSim({ tokenTtlMs: 7_200_000 });
      await sim.start();
      const before = Date.now();
      const r = await post('/api/v2/auth/login', { username: 'api', password: 'api-pass', deviceId: 'd', platformType: 1 });
      assert.equal(r.status, 200);
      assert.deepEqual(Object.keys(r.data), ['expiresAt', 'accessToken', 'refreshToken']);
      assert.match(r.data.expiresAt, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{7}\+03:30$/);
      const exp = Date.parse(r.data.expiresAt.replace(/(\.\d{3})\d{4}/, '$1'));
      assert.ok(exp >= before + 7_200_000 - 1000 && exp <= Date.now() + 7_200_000 + 1000);
      const parts = r.data.accessToken.split('.');
      assert.equal(parts.length, 3);
      for (const p of parts) assert.match(p, /^[A-Za-z0-9_-]+$/);
      const header = JSON.parse(Buffer.from(parts[0], 'base64url').toString());
      assert.equal(header.typ, 'JWT');
      const claims = JSON.parse(Buffer.from(parts[1], 'base64url').toString());
      assert.equal(claims['http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name'], 'api');
      assert.match(claims['http://schemas.xmlsoap.org/ws/2005/05/identity/claims/nameidentifier'], /^[0-9a-f-]{36}$/);
      assert.equal(claims.exp - claims.nbf, 7200);
      assert.ok(r.data.refreshToken);
      assert.equal(sim.loginCount, 1);
    });

    it('answers 401 / 402 / 403 for configured users and locks out after repeated wrong passwords', async () => {
      sim = new CrmSim({
        users: [
          { username: 'api', password: 'api-pass' },
          { username: 'nomodule', password: 'p', status: 402 },
          { username: 'locked', password: 'p', status: 403 },
        ],
        lockoutAfterFailures: 3,
      });
      await sim.start();
      assert.equal((await post('/api/v2/auth/login', { username: 'nomodule', password: 'p' })).status, 402);
      assert.equal((await post('/api/v2/auth/login', { username: 'locked', password: 'p' })).status, 403);
      for (let i = 0; i < 3; i++) assert.equal((await post('/api/v2/auth/login', { username: 'api', password: 'bad' })).status, 401);
      const r = await post('/api/v2/auth/login', { username: 'api', password: 'api-pass' });
      assert.equal(r.status, 403, 'locked out even with the right password');
      assert.match(r.data.message, /Too many login attempts/);
      assert.equal(sim.loginCount, 6);
      sim.reset();
      assert.equal((await post('/api/v2/auth/login', { username: 'api', password: 'api-pass' })).status, 200);
    });

    it('requires a valid, unexpired Bearer token on everything else', async () => {
      sim = new CrmSim();
      await sim.start();
      assert.equal((await post('/api/v2/crmobject/identity/search', { pageNumber: 0, pageSize: 10 })).status, 401);
      assert.equal((await post('/api/v2/crmobject/identity/search', { pageNumber: 0, pageSize: 10 }, 'a.b.c')).status, 401);
      const token = await login();
      assert.equal((await post('/api/v2/crmobject/identity/search', { pageNumber: 0, pageSize: 10 }, token)).status, 200);
      sim.expireAllTokens();
      assert.equal((await post('/api/v2/crmobject/identity/search', { pageNumber: 0, pageSize: 10 }, token)).status, 401);
    });

    it('tokens expire after tokenTtlMs', async () => {
      sim = new CrmSim({ tokenTtlMs: 100 });
      await sim.start();
      const token = await login();
      await new Promise((r) => setTimeout(r, 150));
      assert.equal((await post('/api/v2/crmobject/person/get', { id: 'x' }, token)).status, 401);
    });

    it('unknown paths are 404, GET on an API path is 405', async () => {
      sim = new CrmSim();
      await sim.start();
      assert.equal((await post('/api/v2/crmobject/nothing', {})).status, 404);
      const r = await fetch(sim.url + '/api/v2/crmobject/person/get');
      assert.equal(r.status, 405);
      await r.text();
    });
  });

  describe('identity search', () => {
    it('returns a bare array, 0-based pages, capped page size, customerNo "" when unset', async () => {
      sim = new CrmSim({ maxPageSize: 100 });
      await sim.start();
      for (let i = 0; i < 250; i++) sim.addPerson({ nickName: `p${i}`, customerNumber: i % 2 ? `100-${1000 + i}` : undefined }, { webhook: false });
      const token = await login();
      const p0 = await post('/api/v2/crmobject/identity/search', { pageNumber: 0, pageSize: 500, searchTerm: '' }, token);
      assert.ok(Array.isArray(p0.data));
      assert.equal(p0.data.length, 100);
      assert.deepEqual(Object.keys(p0.data[0]), ['identityId', 'nickName', 'customerNo']);
      assert.equal(p0.data[0].nickName, 'p0');
      assert.equal(p0.data[0].customerNo, '');
      assert.equal(p0.data[1].customerNo, '100-1001');
      const p2 = await post('/api/v2/crmobject/identity/search', { pageNumber: 2, pageSize: 500 }, token);
      assert.equal(p2.data.length, 50);
      const p3 = await post('/api/v2/crmobject/identity/search', { pageNumber: 3, pageSize: 500 }, token);
      assert.deepEqual(p3.data, []);
      const small = await post('/api/v2/crmobject/identity/search', { pageNumber: 1, pageSize: 5 }, token);
      assert.deepEqual(small.data.map((r: any) => r.nickName), ['p5', 'p6', 'p7', 'p8', 'p9']);
    });

    it('filters by searchTerm (nickName or customerNo substring) and identityType', async () => {
      sim = new CrmSim();
      await sim.start();
      sim.addPerson({ nickName: 'Ali Rezaei', customerNumber: '100-2001' }, { webhook: false });
      sim.addOrganization({ nickName: 'شرکت آلفا', customerNumber: '100-2002' }, { webhook: false });
      const token = await login();
      const s = async (body: object) => (await post('/api/v2/crmobject/identity/search', { pageNumber: 0, pageSize: 50, ...body }, token)).data.length;
      assert.equal(await s({ searchTerm: 'ali' }), 1);
      assert.equal(await s({ searchTerm: '100-200' }), 2);
      assert.equal(await s({ searchTerm: 'آلفا' }), 1);
      assert.equal(await s({ identityType: 1 }), 1);
      assert.equal(await s({ identityType: 2, searchTerm: 'ali' }), 0);
    });

    it('holds 10,000+ identities and finds one by customer number', async () => {
      sim = new CrmSim();
      await sim.start();
      for (let i = 0; i < 10_050; i++) sim.addPerson({ nickName: `شخص ${i}`, customerNumber: `100-${10_000 + i}` }, { webhook: false });
      const token = await login();
      const r = await post('/api/v2/crmobject/identity/search', { pageNumber: 0, pageSize: 100, searchTerm: '100-20049' }, token);
      assert.equal(r.data.length, 1);
      assert.equal(r.data[0].nickName, 'شخص 10049');
      const last = await post('/api/v2/crmobject/identity/search', { pageNumber: 100, pageSize: 100 }, token);
      assert.equal(last.data.length, 50);
      assert.equal(sim.state().persons, 10_050);
    });
  });

  describe('records', () => {
    it('person/get returns the full camelCase record; unknown id is 404 with a Persian message', async () => {
      sim = new CrmSim();
      await sim.start();
      const p = sim.addPerson({ nickName: 'علی', phoneContacts: [{ phoneType: 'موبایل', phoneNumber: '09120000000' }], categories: [{ key: 'syaghcontact' }] }, { webhook: false });
      const token = await login();
      const r = await post('/api/v2/crmobject/person/get', { id: p.crmId }, token);
      assert.equal(r.status, 200);
      for (const k of ['crmId', 'crmObjectTypeCode', 'identityTypeName', 'nickName', 'phoneContacts', 'addressContacts', 'categories', 'customerNumber', 'creatDate', 'modifyDate', 'firstName', 'organizations']) {
        assert.ok(k in r.data, `field ${k}`);
      }
      assert.equal(r.data.crmObjectTypeCode, 'person');
      assert.equal(r.data.identityTypeName, 'حقیقی');
      assert.match(r.data.creatDate, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}$/);
      assert.equal(r.data.phoneContacts[0].phoneType, 'موبایل');
      assert.match(r.data.phoneContacts[0].id, /^[0-9a-f-]{36}$/);
      assert.equal(r.data.categories[0].key, 'syaghcontact');
      assert.equal(r.data.categories[0].identityId, p.crmId);
      const nf = await post('/api/v2/crmobject/person/get', { id: '11111111-1111-1111-1111-111111111111' }, token);
      assert.equal(nf.status, 404);
      assert.match(nf.data.message, /یافت نشد/);
      // an organization is not a person
      const o = sim.addOrganization({ nickName: 'o' }, { webhook: false });
      assert.equal((await post('/api/v2/crmobject/person/get', { id: o.crmId }, token)).status, 404);
      const og = await post('/api/v2/crmobject/organization/get', { Id: o.crmId }, token);
      assert.equal(og.data.identityTypeName, 'حقوقی');
      assert.equal(og.data.crmObjectTypeCode, 'organization');
      assert.ok('registerNumber' in og.data);
    });

    it('create returns a new lower-case GUID and validates crmObjectTypeCode; update merges and bumps modifyDate', async () => {
      sim = new CrmSim();
      await sim.start();
      const token = await login();
      const bad = await post('/api/v2/crmobject/person/create', { crmObjectTypeCode: 'organization', nickName: 'x' }, token);
      assert.equal(bad.status, 400);
      assert.equal((await post('/api/v2/crmobject/person/create', { nickName: 'x' }, token)).status, 400);
      const c = await post('/api/v2/crmobject/person/create', { crmObjectTypeCode: 'person', nickName: 'رضا', email: 'r@example.com', customerNumber: '100-1234', unknownThing: 1 }, token);
      assert.equal(c.status, 200);
      assert.deepEqual(Object.keys(c.data), ['crmId']);
      assert.match(c.data.crmId, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
      const rec = sim.record(c.data.crmId)!;
      assert.equal(rec.customerNumber, '100-1234');
      assert.equal('unknownThing' in rec, false);
      const u = await post('/api/v2/crmobject/person/update', { crmId: c.data.crmId, crmObjectTypeCode: 'person', nickName: 'رضا ۲' }, token);
      assert.deepEqual(u.data, { crmId: c.data.crmId });
      const after = sim.record(c.data.crmId)!;
      assert.equal(after.nickName, 'رضا ۲');
      assert.equal(after.email, 'r@example.com');
      assert.ok(String(after.modifyDate) > String(rec.modifyDate));
      assert.equal((await post('/api/v2/crmobject/organization/update', { crmId: c.data.crmId, nickName: 'x' }, token)).status, 404);
      const del = await post('/api/v2/crmobject/person/delete', { id: c.data.crmId, option: 1 }, token);
      assert.equal(del.status, 200);
      assert.equal(sim.identities().length, 0);
    });

    it('find filters with Equals and pages {total, data}', async () => {
      sim = new CrmSim();
      await sim.start();
      sim.addPerson({ nickName: 'a', customerNumber: '1' }, { webhook: false });
      sim.addPerson({ nickName: 'b', customerNumber: '2' }, { webhook: false });
      const token = await login();
      const r = await post('/api/v2/crmobject/person/find', { typeKey: 'person', queries: [{ field: 'customerNumber', operator: 0, value: '2' }], pageNumber: 0, pageSize: 10 }, token);
      assert.equal(r.data.total, 1);
      assert.equal(r.data.data[0].nickName, 'b');
    });

    it('quote/sales/find and invoice/sales/find: the body and {total, data} of person/find, 0-based pages, rows as quote/sales/get', async () => {
      sim = new CrmSim({ maxPageSize: 2 });
      await sim.start();
      const p = sim.addPerson({ nickName: 'مشتری', customerNumber: '100-1001' }, { webhook: false });
      const qs = [0, 1, 2].map(() => sim.addQuote({ identityId: p.crmId }, { webhook: false }));
      const inv = sim.addInvoice({ identityId: p.crmId }, { webhook: false });
      const token = await login();
      const page = (n: number, queries: unknown[] = []) => post('/api/v2/crmobject/quote/sales/find', { typeKey: 'quote', queries, orders: [], pageNumber: n, pageSize: 10 }, token);
      const [p0, p1, p2] = [await page(0), await page(1), await page(2)];
      assert.deepEqual([p0.status, p0.data.total, p0.data.data.length, p1.data.data.length, p2.data.data.length], [200, 3, 2, 1, 0], 'capped at 2 per page, until an empty page');
      const got = (await post('/api/v2/crmobject/quote/sales/get', { id: qs[0].crmId }, token)).data;
      assert.deepEqual(p0.data.data[0], got, 'a row is the quote/sales/get record');
      const since = await page(0, [{ logicalOperator: 0, field: 'modifyDate', operator: 2, value: qs[2].modifyDate, leafLogicalOperator: 0, leafNegate: false, leafs: [] }]);
      assert.deepEqual(since.data.data.map((r: any) => r.crmId), [qs[2].crmId], 'modifyDate ≥');
      const invs = await post('/api/v2/crmobject/invoice/sales/find', { queries: [], pageNumber: 0, pageSize: 10 }, token);
      assert.deepEqual([invs.data.total, invs.data.data[0].crmId, invs.data.data[0].invoiceType], [1, inv.crmId, 'Invoice']);
    });

    it('quote/sales/get and invoice/sales/get carry the field set of the real CRM', async () => {
      sim = new CrmSim();
      await sim.start();
      const p = sim.addPerson({ nickName: 'مشتری', customerNumber: '100-1001' }, { webhook: false });
      const q = sim.addQuote({ identityId: p.crmId, details: [{ productCode: 'Product-1', productName: 'کالا', count: 1, baseUnitPrice: 100_000 }] }, { webhook: false });
      const token = await login();
      const r = await post('/api/v2/crmobject/quote/sales/get', { id: q.crmId }, token);
      assert.equal(r.status, 200);
      assert.equal(r.data.crmObjectTypeCode, 'PI_5');
      assert.equal(r.data.identityId, p.crmId);
      assert.equal(r.data.subject, 'مشتری(مشتری) - 100-1001(پیش فاکتور فروش)');
      assert.equal(r.data.quoteType, 'Quote');
      assert.equal(r.data.totalValue, 100_000);
      assert.equal(r.data.vat, 9000);
      assert.equal(r.data.finalValue, 109_000);
      const d = r.data.details[0];
      for (const k of ['productCode', 'productId', 'productName', 'productUnitTypeName', 'count', 'baseUnitPrice', 'finalUnitPrice', 'totalDiscount', 'totalVat', 'isService']) assert.ok(k in d, k);
      assert.equal(d.finalUnitPrice, 109_000);
      const inv = sim.addInvoice({ identityId: p.crmId }, { webhook: false });
      const ri = await post('/api/v2/crmobject/invoice/sales/get', { id: inv.crmId }, token);
      assert.equal(ri.data.invoiceType, 'Invoice');
      assert.ok('relatedQuoteId' in ri.data);
      assert.equal((await post('/api/v2/crmobject/invoice/sales/get', { id: q.crmId }, token)).status, 404);
      assert.equal(sim.quotes().length, 1);
    });

    it('reset() goes back to the seed', async () => {
      sim = new CrmSim({ persons: [{ nickName: 'seed', crmId: 'AAAAAAAA-0000-0000-0000-000000000001' }] });
      await sim.start();
      await login();
      sim.addPerson({ nickName: 'extra' }, { webhook: false });
      assert.equal(sim.identities().length, 2);
      sim.reset();
      assert.deepEqual(sim.identities().map((r) => r.crmId), ['aaaaaaaa-0000-0000-0000-000000000001']);
      assert.equal(sim.loginCount, 0);
    });

    it('writes Tehran local time without offset', () => {
      assert.equal(crmLocalTime(Date.UTC(2025, 11, 21, 10, 36, 17, 173)), '2025-12-21T14:06:17.173');
    });
  });

  describe('webhooks', () => {
    it('sends a body-less GET with event/id/type/subtype (+ for spaces) and only host/connection headers', async () => {
      const rx = await receiver();
      try {
        sim = new CrmSim({ webhookUrl: rx.url, webhookToken: 's3cret t' });
        await sim.start();
        const token = await login();
        const c = await post('/api/v2/crmobject/person/create', { crmObjectTypeCode: 'person', nickName: 'x' }, token);
        await post('/api/v2/crmobject/person/update', { crmId: c.data.crmId, nickName: 'y' }, token);
        await sim.flushWebhooks();
        assert.equal(rx.got.length, 2);
        const [ins, upd] = rx.got;
        assert.equal(ins.method, 'GET');
        assert.equal(ins.body, '');
        assert.deepEqual(Object.keys(ins.headers).sort(), ['connection', 'host']);
        assert.equal(ins.headers['content-length'], undefined);
        assert.equal(ins.headers['transfer-encoding'], undefined);
        assert.ok(ins.rawUrl.startsWith('/webhook/crm/identity?event=Insert&id='), ins.rawUrl);
        assert.ok(ins.rawUrl.includes('+siagh'), 'spaces are encoded as +');
        assert.ok(!ins.rawUrl.includes('%20'));
        const q = new URL(ins.rawUrl, 'http://x').searchParams;
        assert.equal(q.get('event'), 'Insert');
        assert.equal(q.get('id'), c.data.crmId);
        assert.equal(q.get('type'), 'Identity');
        assert.equal(q.get('subtype'), 'مخاطب حقیقی siagh');
        assert.equal(q.get('token'), 's3cret t');
        const q2 = new URL(upd.rawUrl, 'http://x').searchParams;
        assert.equal(q2.get('event'), 'Update');
        assert.equal(q2.get('id'), c.data.crmId);
        const log = sim.webhookLog();
        assert.equal(log.length, 2);
        assert.equal(log[0].status, 200);
        assert.ok(!log[0].url.includes('token'), 'the log never holds the token');
      } finally {
        await rx.close();
      }
    });

    it('fires for helpers and updateRecord, with organization, quote and invoice subtypes; can be switched off', async () => {
      const rx = await receiver();
      try {
        sim = new CrmSim({ webhookUrl: rx.url });
        await sim.start();
        const o = sim.addOrganization({ nickName: 'o' });
        const q = sim.addQuote({ identityId: o.crmId });
        sim.updateRecord(q.crmId, { description: 'changed' });
        sim.addInvoice({ identityId: o.crmId, subtype: 'فاکتور فروش' });
        sim.addQuote({ identityId: o.crmId, subtype: 'پیش فاکتور کالا' });
        await sim.flushWebhooks();
        const seen = rx.got.map((g) => {
          const p = new URL(g.rawUrl, 'http://x').searchParams;
          return [p.get('event'), p.get('type'), p.get('subtype')];
        });
        assert.deepEqual(seen, [
          ['Insert', 'Identity', 'مخاطب حقوقی siagh'],
          ['Insert', 'Quote', 'پیش فاکتور رسمی بنیان گاز'],
          ['Update', 'Quote', 'پیش فاکتور رسمی بنیان گاز'],
          ['Insert', 'Invoice', 'فاکتور فروش'],
          ['Insert', 'Quote', 'پیش فاکتور کالا'],
        ]);
        assert.equal(sim.record(q.crmId)?.description, 'changed');
        sim.setWebhooks({ enabled: false });
        sim.addPerson({ nickName: 'quiet' });
        await sim.flushWebhooks();
        assert.equal(rx.got.length, 5);
      } finally {
        await rx.close();
      }
    });

    it('does not block the API reply and never throws when the target is down', async () => {
      const rx = await receiver();
      const deadUrl = rx.url;
      await rx.close();
      sim = new CrmSim({ webhookUrl: deadUrl, webhookTimeoutMs: 500 });
      await sim.start();
      const token = await login();
      const c = await post('/api/v2/crmobject/organization/create', { crmObjectTypeCode: 'organization', nickName: 'o' }, token);
      assert.equal(c.status, 200);
      await sim.flushWebhooks();
      const log = sim.webhookLog();
      assert.equal(log.length, 1);
      assert.equal(log[0].status, undefined);
      assert.ok(log[0].error);
      assert.equal(log[0].type, 'Identity');
    });

    it('records the receiver status and honours setWebhooks url/token at run time', async () => {
      const rx = await receiver(500);
      try {
        sim = new CrmSim();
        await sim.start();
        sim.addPerson({ nickName: 'no url yet' });
        await sim.flushWebhooks();
        assert.equal(sim.webhookLog().length, 0);
        sim.setWebhooks({ url: rx.url + '?source=crm', token: 'tk' });
        sim.addPerson({ nickName: 'now' });
        await sim.flushWebhooks();
        assert.equal(rx.got.length, 1);
        const p = new URL(rx.got[0].rawUrl, 'http://x').searchParams;
        assert.equal(p.get('source'), 'crm');
        assert.equal(p.get('token'), 'tk');
        assert.equal(sim.webhookLog()[0].status, 500);
      } finally {
        await rx.close();
      }
    });
  });
});
