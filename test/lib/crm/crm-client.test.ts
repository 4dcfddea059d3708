import assert from 'node:assert/strict';
import { SyncError } from '../../../lib/errors';
import { CrmClient, CrmClientOptions } from '../../../lib/crm/client';
import { CrmSim, CrmSimOptions } from '../../../sim/crm-sim';
import type { SimRequest, SimResponse } from '../../../sim/sim-server';

const SEARCH = 'POST /api/v2/crmobject/identity/search';
const PERSON_GET = 'POST /api/v2/crmobject/person/get';
const ORG_GET = 'POST /api/v2/crmobject/organization/get';
const PERSON_CREATE = 'POST /api/v2/crmobject/person/create';

async function rejectsWith(p: Promise<unknown>, code: string): Promise<SyncError> {
  let caught: unknown;
  try {
    await p;
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof SyncError, `expected a SyncError ${code}, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  return caught;
}

describe('crm client', () => {
  let sim: CrmSim;
  let client: CrmClient;

  async function setup(simOpts: CrmSimOptions = {}, clientOpts: Partial<CrmClientOptions> = {}): Promise<void> {
    sim = new CrmSim(simOpts);
    await sim.start();
    client = new CrmClient({
      baseUrl: sim.url,
      username: 'api',
      password: 'api-pass',
      retryBaseMs: 1,
      retryMaxMs: 20,
      timeoutMs: 3000,
      createCheckDelayMs: 0,
      ...clientOpts,
    });
  }

  afterEach(async () => {
    client?.close();
    await sim?.stop();
  });

  describe('login and token', () => {
    it('logs in once and reuses the token for many calls', async () => {
      await setup();
      sim.addPerson({ nickName: 'علی رضایی' }, { webhook: false });
      for (let i = 0; i < 10; i++) assert.equal((await client.searchAllIdentities()).length, 1);
      assert.equal(sim.loginCount, 1);
      const info = client.sessionInfo();
      assert.equal(info.loggedIn, true);
      assert.match(info.expiresAt ?? '', /\+03:30$/);
    });

    it('401 at login is CRM_BAD_CREDENTIALS, not retried, and later calls do not log in again', async () => {
      await setup({}, { password: 'wrong-secret' });
      const e = await rejectsWith(client.searchAllIdentities(), 'CRM_BAD_CREDENTIALS');
      assert.equal(e.status, 401);
      assert.ok(!e.message.includes('wrong-secret'), 'the password must not appear in a message');
      assert.match(e.message, /no further login is attempted/);
      await rejectsWith(client.getPerson('x'), 'CRM_BAD_CREDENTIALS');
      assert.equal(sim.loginCount, 1);
    });

    it('402 at login is CRM_MODULE_MISSING, not retried', async () => {
      await setup({ users: [{ username: 'api', password: 'api-pass', status: 402 }] });
      const e = await rejectsWith(client.login(), 'CRM_MODULE_MISSING');
      assert.match(e.message, /mobile-app module needed by the v2 API/);
      assert.equal(sim.loginCount, 1);
    });

    it('403 at login is CRM_LOCKED_OUT, not retried, and no login is attempted during the cool-down', async () => {
      await setup({ users: [{ username: 'api', password: 'api-pass', status: 403 }] }, { loginCooldownMs: 60_000 });
      const e = await rejectsWith(client.searchAllIdentities(), 'CRM_LOCKED_OUT');
      assert.match(e.message, /15–30 minutes/);
      assert.match(e.message, /no further login is attempted for/);
      const again = await rejectsWith(client.getQuote('q'), 'CRM_LOCKED_OUT');
      assert.match(again.message, /no further login is attempted for 60 seconds|no further login is attempted for \d+ seconds/);
      assert.equal(sim.loginCount, 1);
      assert.ok(client.sessionInfo().loginBlockedUntil);
    });

    it('after the lock-out cool-down a login is attempted again', async () => {
      await setup({ users: [{ username: 'api', password: 'api-pass', status: 403 }] }, { loginCooldownMs: 30 });
      await rejectsWith(client.login(), 'CRM_LOCKED_OUT');
      await new Promise((r) => setTimeout(r, 60));
      await rejectsWith(client.login(), 'CRM_LOCKED_OUT');
      assert.equal(sim.loginCount, 2);
    });

    it('a login that meets a 5xx is retried (idempotent) and succeeds', async () => {
      await setup();
      sim.faults.add({ kind: '5xx', path: '/auth/login', times: 2 });
      assert.deepEqual(await client.searchAllIdentities(), []);
      assert.equal(sim.loginCount, 0 + 1, 'faulted requests never reach the handler');
      assert.equal(sim.count('POST /api/v2/auth/login'), 3);
    });

    it('other 4xx at login is CRM_LOGIN_FAILED with the server text; empty credentials are CONFIG', async () => {
      class BadLoginSim extends CrmSim {
        protected override handle(req: SimRequest): SimResponse {
          if (req.path === '/api/v2/auth/login') return { status: 400, body: { Message: 'The request is invalid.' } };
          return super.handle(req);
        }
      }
      sim = new BadLoginSim();
      await sim.start();
      assert.throws(() => new CrmClient({ baseUrl: sim.url, username: 'api', password: '' }), /password is empty/);
      client = new CrmClient({ baseUrl: sim.url, username: 'api', password: 'api-pass' });
      const e = await rejectsWith(client.login(), 'CRM_LOGIN_FAILED');
      assert.match(e.message, /The request is invalid/);
      assert.equal(sim.count('POST /api/v2/auth/login'), 1);
    });

    it('a 401 with an IIS error page at login is still CRM_BAD_CREDENTIALS', async () => {
      class IisSim extends CrmSim {
        protected override handle(req: SimRequest): SimResponse {
          if (req.path === '/api/v2/auth/login') return { status: 401, text: '<!DOCTYPE html><html><body>401 - Unauthorized</body></html>' };
          return super.handle(req);
        }
      }
      sim = new IisSim();
      await sim.start();
      client = new CrmClient({ baseUrl: sim.url, username: 'api', password: 'api-pass' });
      await rejectsWith(client.login(), 'CRM_BAD_CREDENTIALS');
    });

    it('an expired token (401) leads to one new login and the call succeeds', async () => {
      await setup();
      sim.addOrganization({ nickName: 'شرکت نمونه' }, { webhook: false });
      await client.searchAllIdentities();
      sim.expireAllTokens();
      const rows = await client.searchAllIdentities();
      assert.equal(rows.length, 1);
      assert.equal(sim.loginCount, 2);
      // first run: page 0 + empty page 1; second run: 401, page 0 again, empty page 1
      assert.equal(sim.count(SEARCH), 5);
    });

    it('logs in again before expiresAt (skew) without meeting a 401', async () => {
      await setup({ tokenTtlMs: 3000 }, { tokenSkewMs: 2500 });
      await client.searchAllIdentities();
      assert.equal(sim.loginCount, 1);
      await new Promise((r) => setTimeout(r, 700));
      await client.searchAllIdentities();
      assert.equal(sim.loginCount, 2);
      assert.equal(sim.count(SEARCH), 2, 'no call was refused with 401');
    });

    it('20 concurrent calls on a cold client make one login', async () => {
      await setup();
      const p = sim.addPerson({ nickName: 'x' }, { webhook: false });
      const results = await Promise.all(Array.from({ length: 20 }, () => client.getPerson(p.crmId)));
      assert.equal(results.length, 20);
      assert.equal(sim.loginCount, 1);
    });

    it('20 concurrent calls after token expiry make one new login', async () => {
      await setup();
      const p = sim.addPerson({ nickName: 'x' }, { webhook: false });
      await client.getPerson(p.crmId);
      sim.expireAllTokens();
      await Promise.all(Array.from({ length: 20 }, () => client.getPerson(p.crmId)));
      assert.equal(sim.loginCount, 2);
    });
  });

  describe('identity search', () => {
    it('pages to an empty page when the server caps the page size (250 identities, cap 100, asked 500)', async () => {
      await setup({ maxPageSize: 100 }, { searchPageSize: 500 });
      for (let i = 0; i < 250; i++) sim.addPerson({ nickName: `شخص ${i}`, customerNumber: `100-${1000 + i}` }, { webhook: false });
      const pages: number[] = [];
      const all: string[] = [];
      for await (const page of client.searchIdentities()) {
        pages.push(page.length);
        all.push(...page.map((r) => r.identityId));
      }
      assert.deepEqual(pages, [100, 100, 50]);
      assert.equal(new Set(all).size, 250);
      assert.equal(sim.count(SEARCH), 4, 'pages 0..2 and the empty page 3');
    });

    it('filters by term and identity type', async () => {
      await setup();
      sim.addPerson({ nickName: 'مریم احمدی', customerNumber: '100-2001' }, { webhook: false });
      sim.addOrganization({ nickName: 'شرکت احمدی', customerNumber: '100-2002' }, { webhook: false });
      assert.equal((await client.searchAllIdentities({ searchTerm: 'احمدی' })).length, 2);
      const orgs = await client.searchAllIdentities({ searchTerm: 'احمدی', identityType: 'organization' });
      assert.deepEqual(orgs.map((o) => o.nickName), ['شرکت احمدی']);
      assert.equal((await client.searchAllIdentities({ identityType: 1 })).length, 1);
    });

    it('findByCustomerNumber matches exactly, not by substring', async () => {
      await setup();
      sim.addPerson({ nickName: 'a', customerNumber: '100-10010' }, { webhook: false });
      const b = sim.addPerson({ nickName: 'b', customerNumber: '100-1001' }, { webhook: false });
      const hit = await client.findByCustomerNumber('100-1001');
      assert.equal(hit?.identityId, b.crmId);
      assert.equal(await client.findByCustomerNumber('100-100'), undefined);
      assert.equal(await client.findByCustomerNumber('  '), undefined);
    });

    it('stops with an error when the server never returns an empty page', async () => {
      class EndlessSim extends CrmSim {
        page = 0;
        protected override handle(req: SimRequest): SimResponse {
          if (req.path.endsWith('/identity/search')) {
            this.page++;
            return { status: 200, body: [{ identityId: `id-${this.page}`, nickName: 'n', customerNo: '' }] };
          }
          return super.handle(req);
        }
      }
      sim = new EndlessSim();
      await sim.start();
      client = new CrmClient({ baseUrl: sim.url, username: 'api', password: 'api-pass', maxSearchPages: 5 });
      const e = await rejectsWith(client.searchAllIdentities(), 'CRM_ERROR');
      assert.match(e.message, /5 pages/);
      assert.equal(sim.count(SEARCH), 5);
    });

    it('reads are retried on 5xx and on 429 honouring Retry-After', async () => {
      const retries: Array<{ code: string; delayMs: number }> = [];
      await setup({}, { retryMaxMs: 5000, onRetry: (i) => retries.push({ code: i.code, delayMs: i.delayMs }) });
      sim.addPerson({ nickName: 'x' }, { webhook: false });
      await client.login();
      sim.faults.add({ kind: '5xx', path: '/identity/search', times: 2 }, { kind: '429', path: '/identity/search', retryAfterSec: 1 });
      const rows = await client.searchAllIdentities();
      assert.equal(rows.length, 1);
      assert.equal(sim.count(SEARCH), 3 + 2, '3 faulted attempts, then page 0 and the empty page');
      assert.deepEqual(retries.map((r) => r.code), ['HTTP_5XX', 'HTTP_5XX', 'RATE_LIMITED']);
      assert.equal(retries[2].delayMs, 1000, 'the wait is the Retry-After value');
    });
  });

  describe('get', () => {
    it('getPerson / getOrganization return CrmIdentity with kind', async () => {
      await setup();
      const p = sim.addPerson(
        {
          nickName: 'علی رضایی',
          firstName: 'علی',
          lastName: 'رضایی',
          customerNumber: '100-9407',
          phoneContacts: [{ phoneType: 'موبایل', phoneNumber: '09121234567', default: true }],
          categories: [{ key: 'syaghcontact' }],
        },
        { webhook: false },
      );
      const got = await client.getPerson(p.crmId);
      assert.equal(got.kind, 'person');
      assert.equal(got.crmId, p.crmId);
      assert.equal(got.customerNumber, '100-9407');
      assert.equal(got.phoneContacts?.[0].phoneNumber, '09121234567');
      assert.equal(got.categories?.[0].key, 'syaghcontact');
      const o = sim.addOrganization({ nickName: 'شرکت' }, { webhook: false });
      assert.equal((await client.getOrganization(o.crmId)).kind, 'organization');
    });

    it('unknown ids are CRM_NOT_FOUND', async () => {
      await setup();
      const e = await rejectsWith(client.getPerson('00000000-0000-0000-0000-000000000000'), 'CRM_NOT_FOUND');
      assert.equal(e.status, 404);
      assert.match(e.details.join(' '), /یافت نشد/);
      await rejectsWith(client.getOrganization('nope'), 'CRM_NOT_FOUND');
      await rejectsWith(client.getQuote('nope'), 'CRM_NOT_FOUND');
      await rejectsWith(client.getInvoice('nope'), 'CRM_NOT_FOUND');
      await rejectsWith(client.getIdentity('nope'), 'CRM_NOT_FOUND');
      await rejectsWith(client.updatePerson('nope', { nickName: 'x' }), 'CRM_NOT_FOUND');
      // not found is an answer, not a fault: asked once each
      assert.equal(sim.count(PERSON_GET), 2);
    });

    it('getIdentity without a hint finds persons and organizations and takes the kind from the record', async () => {
      await setup();
      const p = sim.addPerson({ nickName: 'p' }, { webhook: false });
      const o = sim.addOrganization({ nickName: 'o' }, { webhook: false });
      const gp = await client.getIdentity(p.crmId);
      assert.equal(gp.kind, 'person');
      assert.equal(sim.count(ORG_GET), 0);
      const go = await client.getIdentity(o.crmId);
      assert.equal(go.kind, 'organization');
      assert.equal(go.identityTypeName, 'حقوقی');
      assert.equal(sim.count(ORG_GET), 1);
      // with a hint only that endpoint is asked
      sim.resetCounts();
      assert.equal((await client.getIdentity(o.crmId, 'organization')).kind, 'organization');
      assert.equal(sim.count(PERSON_GET), 0);
      // a wrong hint (e.g. a renamed webhook subtype, docs/known-faults.md#identity-kind) is corrected, not trusted
      assert.equal((await client.getIdentity(o.crmId, 'person')).kind, 'organization');
    });

    it('a record that states the other kind is re-read from the right endpoint', async () => {
      // A CRM whose person/get also answers for organizations.
      class LaxSim extends CrmSim {
        protected override handle(req: SimRequest): SimResponse {
          if (req.path.endsWith('/person/get')) {
            const id = (req.body as { id: string }).id;
            const rec = this.record(id);
            if (rec && this.kindOf(id) === 'organization') return { status: 200, body: rec };
          }
          return super.handle(req);
        }
      }
      sim = new LaxSim();
      await sim.start();
      client = new CrmClient({ baseUrl: sim.url, username: 'api', password: 'api-pass' });
      const o = sim.addOrganization({ nickName: 'o', registerNumber: '123' }, { webhook: false });
      const got = await client.getIdentity(o.crmId);
      assert.equal(got.kind, 'organization');
      assert.equal(got.registerNumber, '123');
      assert.equal(sim.count(ORG_GET), 1);
    });

    it('a not-found reply with HTTP 500 and a JSON message is CRM_NOT_FOUND, without retries', async () => {
      class Sim500 extends CrmSim {
        protected override handle(req: SimRequest): SimResponse {
          if (req.path.endsWith('/person/get')) return { status: 500, body: { Message: 'شخص مورد نظر وجود ندارد' } };
          return super.handle(req);
        }
      }
      sim = new Sim500();
      await sim.start();
      client = new CrmClient({ baseUrl: sim.url, username: 'api', password: 'api-pass', retryBaseMs: 1 });
      const o = sim.addOrganization({ nickName: 'o' }, { webhook: false });
      await rejectsWith(client.getPerson(o.crmId), 'CRM_NOT_FOUND');
      assert.equal(sim.count(PERSON_GET), 1);
      assert.equal((await client.getIdentity(o.crmId)).kind, 'organization');
    });

    it('other errors are CRM_ERROR with status and the server text', async () => {
      class Sim400 extends CrmSim {
        protected override handle(req: SimRequest): SimResponse {
          if (req.path.endsWith('/quote/sales/get')) return { status: 400, body: { errors: { id: ['The id field is not a valid GUID.'] }, title: '' } };
          if (req.path.endsWith('/invoice/sales/get')) return { status: 409, text: 'conflict happened' };
          if (req.path.endsWith('/organization/get')) return { status: 404, text: '<html><body>404 - File or directory not found.</body></html>' };
          return super.handle(req);
        }
      }
      sim = new Sim400();
      await sim.start();
      client = new CrmClient({ baseUrl: sim.url, username: 'api', password: 'api-pass' });
      const e = await rejectsWith(client.getQuote('abc'), 'CRM_ERROR');
      assert.equal(e.status, 400);
      assert.match(e.message, /not a valid GUID/);
      const e2 = await rejectsWith(client.getInvoice('abc'), 'CRM_ERROR');
      assert.equal(e2.status, 409);
      assert.match(e2.message, /conflict happened/);
      // an IIS 404 page means the endpoint is missing, not the record
      const e3 = await rejectsWith(client.getOrganization('abc'), 'CRM_ERROR');
      assert.match(e3.message, /has no endpoint/);
    });

    it('getQuote / getInvoice return CrmQuote with docKind and details', async () => {
      await setup();
      const p = sim.addPerson({ nickName: 'مشتری', customerNumber: '100-1001' }, { webhook: false });
      const q = sim.addQuote({ identityId: p.crmId, details: [{ productCode: 'P-1', count: 2, baseUnitPrice: 50_000 }] }, { webhook: false });
      const got = await client.getQuote(q.crmId);
      assert.equal(got.docKind, 'quote');
      assert.equal(got.identityId, p.crmId);
      assert.equal(got.details.length, 1);
      assert.equal(got.details[0].productCode, 'P-1');
      assert.equal(got.totalValue, 100_000);
      assert.equal(got.finalValue, 109_000);
      const inv = sim.addInvoice({ identityId: p.crmId }, { webhook: false });
      const gi = await client.getInvoice(inv.crmId);
      assert.equal(gi.docKind, 'invoice');
      assert.equal(gi.details.length, 1);
    });
  });

  describe('create and update', () => {
    it('creates a person and an organization; crmObjectTypeCode is set from the endpoint', async () => {
      await setup();
      const id = await client.createPerson({ crmObjectTypeCode: 'person', nickName: 'رضا', customerNumber: '100-1500', categories: [{ key: 'syaghcontact' }] });
      assert.match(id, /^[0-9a-f-]{36}$/);
      assert.equal(sim.record(id)?.crmObjectTypeCode, 'person');
      const oid = await client.createOrganization({ crmObjectTypeCode: 'organization', nickName: 'شرکت' });
      assert.equal(sim.kindOf(oid), 'organization');
      await assert.rejects(client.createPerson({ crmObjectTypeCode: 'organization', nickName: 'x' }), /must be "person"/);
    });

    it('update merges and returns the id', async () => {
      await setup();
      const id = await client.createPerson({ crmObjectTypeCode: 'person', nickName: 'a', email: 'a@example.com' });
      assert.equal(await client.updatePerson(id, { nickName: 'b' }), id);
      const got = await client.getPerson(id);
      assert.equal(got.nickName, 'b');
      assert.equal(got.email, 'a@example.com');
    });

    it('a create that timed out after the CRM acted is not repeated: the customer number is found', async () => {
      await setup({}, { timeoutMs: 300 });
      await client.login();
      sim.faults.add({ kind: 'timeout', path: '/person/create', afterHandling: true });
      const id = await client.createPerson({ crmObjectTypeCode: 'person', nickName: 'تکراری نشود', customerNumber: '100-7777' });
      const same = sim.identities().filter((r) => r.customerNumber === '100-7777');
      assert.equal(same.length, 1);
      assert.equal(same[0].crmId, id);
      assert.equal(sim.count(PERSON_CREATE), 1);
    });

    it('a create that failed before the CRM acted is sent once more after the check', async () => {
      await setup();
      await client.login();
      sim.faults.add({ kind: '5xx', path: '/person/create' });
      const id = await client.createPerson({ crmObjectTypeCode: 'person', nickName: 'x', customerNumber: '100-8888' });
      assert.equal(sim.identities().filter((r) => r.customerNumber === '100-8888').length, 1);
      assert.equal(sim.record(id)?.customerNumber, '100-8888');
      assert.equal(sim.count(PERSON_CREATE), 2);
    });

    it('an ambiguous create without a customer number is AMBIGUOUS_CREATE, never repeated', async () => {
      await setup({}, { timeoutMs: 300 });
      await client.login();
      sim.faults.add({ kind: 'drop', path: '/person/create', afterHandling: true });
      const e = await rejectsWith(client.createPerson({ crmObjectTypeCode: 'person', nickName: 'بی‌شماره' }), 'AMBIGUOUS_CREATE');
      assert.equal(e.ambiguous, true);
      assert.equal(sim.count(PERSON_CREATE), 1);
      assert.equal(sim.identities().length, 1);
    });

    it('a create refused with 401 (expired token) is repeated once after a new login', async () => {
      await setup();
      await client.login();
      sim.expireAllTokens();
      await client.createPerson({ crmObjectTypeCode: 'person', nickName: 'x', customerNumber: '100-1' });
      assert.equal(sim.loginCount, 2);
      assert.equal(sim.count(PERSON_CREATE), 2);
      assert.equal(sim.identities().length, 1);
    });
  });

  it('exposes http and close() stops further calls', async () => {
    await setup();
    assert.equal(client.http.baseUrl, sim.url);
    client.close();
    await rejectsWith(client.searchAllIdentities(), 'NETWORK');
  });
});
