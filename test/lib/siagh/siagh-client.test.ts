import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { inspect } from 'node:util';
import { SyncError } from '../../../lib/errors';
import { preInvoiceDataRows, SiaghClient, SiaghClientOptions, siaghPasswordHash, suidFromId } from '../../../lib/siagh/client';
import { readSaveReply } from '../../../lib/siagh/reply';
import { SaveReplySchema } from '../../../lib/siagh/schemas';
import type { PreInvoiceInput, SiaghFieldList } from '../../../lib/types';
import { SiaghSim, SiaghSimOptions, SIAGH_DUPLICATE_MOBILE_TEXT, SIAGH_ITEM_CODE_REQUIRED_TEXT, SIAGH_NO_CREDIT_TEXT, SIAGH_RUNTIME_DUMP } from '../../../sim/siagh-sim';
import { isCode } from '../../helpers/assert-code';

const ADMIN = 'مدیر سیستم';
const SAVE = 'POST /BpmsApi/SaveFormData';
const GETALL = 'GET /api/Sgh/GEN/Gn_Web_Users/GetAll';

function contactFields(name: string, mobile: string, extra: SiaghFieldList = []): SiaghFieldList {
  return [
    ['gn_web_users.isactive', '1'],
    ['gn_web_users.fullname', name],
    ['gn_web_users.mobileno', mobile],
    ['gn_web_users.telno', '02188776655'],
    ['gn_web_users.address', 'تهران، خیابان آزادی'],
    ['gn_web_users.taraftype', '0'],
    ...extra,
  ];
}

function invoice(customer: string, price = 1_430_000, suid = suidFromId('quote-1')): PreInvoiceInput {
  return {
    suid,
    header: [
      ['hssanadstate', '8'],
      ['codenoeesanad', '2'],
      ['codesalemodel', '1'],
      ['salmali', '1404'],
      ['codenoeepardakht', '2'],
      ['codemarkazforush', '2'],
      ['codecontact', ''],
      ['codemoshtari', customer],
      ['codenoeeforush', '1'],
      ['codevaseteh', '31'],
      ['tozihat', 'Test Organization(مشتری) - 100-965815809(پیش فاکتور فروش)'],
      ['namenoesanad', 'پیش فاکتور فروش بنیان گاز'],
    ],
    rows: [{ itemCode: '500102014', unitName: 'عدد', qty: 4, price, discount: 0 }],
  };
}

describe('siagh client', () => {
  let sim: SiaghSim;
  const clients: SiaghClient[] = [];

  async function start(opts: SiaghSimOptions = {}): Promise<void> {
    sim = new SiaghSim({ contacts: [{ Code: 8388, Name: 'مشتری موجود', MobileNo: '09121111111', NationalCode: '0012345678' }], ...opts });
    await sim.start();
  }

  function client(extra: Partial<SiaghClientOptions> = {}): SiaghClient {
    const c = new SiaghClient({
      baseUrl: sim.url,
      username: ADMIN,
      password: 'admin',
      timeoutMs: 1500,
      retries: 3,
      retryBaseMs: 5,
      retryMaxMs: 20,
      ...extra,
    });
    clients.push(c);
    return c;
  }

  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    await sim?.stop();
  });

  describe('login and session', () => {
    beforeEach(() => start());

    it('logs in with the plain password and keeps the session facts', async () => {
      const c = client();
      const info = await c.login();
      assert.equal(info.userName, ADMIN);
      assert.equal(info.fiscalYear, 1404);
      assert.equal(info.branchName, 'دفتر مرکزی');
      assert.equal(info.branchCode, 1);
      assert.deepEqual(c.sessionInfo?.fiscalYear, 1404);
      assert.equal(sim.loginCount, 1);
      // the session id is nowhere to be seen
      const shown = inspect(c, { depth: 5, showHidden: true }) + JSON.stringify(c.sessionInfo);
      assert.ok(!/[0-9a-f]{32}/.test(shown), 'session id leaked');
    });

    it('accepts a password given as its MD5 hash (any case)', async () => {
      const hash = createHash('md5').update('admin').digest('hex');
      assert.equal(siaghPasswordHash(hash), hash.toUpperCase());
      assert.equal(siaghPasswordHash('admin'), hash.toUpperCase());
      await client({ password: hash }).login();
      await client({ password: hash.toUpperCase() }).login();
      assert.equal(sim.loginCount, 2);
    });

    it('a wrong password is SIAGH_LOGIN_FAILED naming the fix, never the password', async () => {
      const c = client({ password: 'Secret-pw-123' });
      await assert.rejects(c.login(), (e: unknown) => {
        isCode('SIAGH_LOGIN_FAILED')(e);
        const err = e as SyncError;
        assert.match(err.message, /password/i);
        assert.match(err.message, /MD5/);
        assert.ok(!err.message.includes('Secret-pw-123'));
        assert.ok(!err.message.includes(siaghPasswordHash('Secret-pw-123')));
        assert.equal(err.status, 401);
        return true;
      });
      // a refused login is not retried (401 is not transient)
      assert.equal(sim.count('POST /GeneralApi/LoginUser'), 1);
    });

    it('a login reply without SessionId or with Errors[] is SIAGH_LOGIN_FAILED, and nothing is sent without a session', async () => {
      const c = client();
      sim.loginReply = 'noSessionId';
      await assert.rejects(c.getAllContacts(), isCode('SIAGH_LOGIN_FAILED'));
      sim.loginReply = 'errors200';
      await assert.rejects(c.login(), isCode('SIAGH_LOGIN_FAILED'));
      assert.equal(sim.count(GETALL), 0);
      sim.loginReply = 'normal';
      assert.equal((await c.getAllContacts()).length, 1);
    });

    it('20 concurrent calls on a cold client make exactly one login', async () => {
      const c = client({ concurrency: 4 });
      const results = await Promise.all(Array.from({ length: 20 }, () => c.getAllContacts()));
      assert.equal(results.length, 20);
      assert.ok(results.every((r) => r.length === 1 && r[0].Code === 8388));
      assert.equal(sim.loginCount, 1);
      assert.equal(c.loginCount, 1);
      assert.equal(sim.count(GETALL), 20);
    });

    it('an expired session (Persian Errors[] with HTTP 200) → one re-login and the call succeeds', async () => {
      const c = client();
      await c.getAllContacts();
      sim.expireAllSessions();
      const r = await c.createContact(contactFields('پس از انقضا', '09125555555'));
      assert.equal(r.code, 8389);
      assert.equal(sim.loginCount, 2);
      assert.equal(sim.contacts().length, 2);
    });

    it('concurrent calls that all meet an expired session share one re-login', async () => {
      const c = client({ concurrency: 8 });
      await c.login();
      sim.expireAllSessions();
      await Promise.all(Array.from({ length: 10 }, () => c.getAllContacts()));
      assert.equal(sim.loginCount, 2);
    });

    it('a session refused again right after a new login is SIAGH_SESSION_EXPIRED', async () => {
      sim.sessionTtlMs = -1; // every session is refused
      const c = client();
      await assert.rejects(c.getAllContacts(), (e: unknown) => {
        isCode('SIAGH_SESSION_EXPIRED')(e);
        assert.ok((e as SyncError).details.some((d) => /نشست/.test(d)));
        return true;
      });
      assert.equal(sim.loginCount, 2);
      assert.equal(sim.count(GETALL), 2);
    });
  });

  describe('session expiry as HTTP 401', () => {
    beforeEach(() => start({ expiryShape: 'http401', sessionTtlMs: 40 }));

    it('a 401 with an HTML page is an expired session too', async () => {
      const c = client();
      await c.login();
      sim.faults.add({ kind: '5xx', status: 401, path: 'GetAll' });
      assert.equal((await c.getAllContacts()).length, 1);
      assert.equal(sim.loginCount, 2);
    });

    it('re-logs in once after the idle limit and the call succeeds', async () => {
      const c = client();
      await c.getAllContacts();
      await new Promise((r) => setTimeout(r, 90));
      const all = await c.getAllContacts();
      assert.equal(all.length, 1);
      assert.equal(sim.loginCount, 2);
    });
  });

  describe('Siagh error shapes', () => {
    beforeEach(() => start());

    it('a duplicate mobile is SIAGH_DUPLICATE carrying the Persian text', async () => {
      const c = client();
      await assert.rejects(c.createContact(contactFields('تکراری', '0912 111 1111')), (e: unknown) => {
        isCode('SIAGH_DUPLICATE')(e);
        assert.deepEqual((e as SyncError).details, [SIAGH_DUPLICATE_MOBILE_TEXT]);
        return true;
      });
      assert.equal(sim.contacts().length, 1);
    });

    it('a bad row price is SIAGH_FORM_ERROR with ColName in column', async () => {
      const c = client();
      await assert.rejects(c.createPreInvoice(invoice('8388', 0)), (e: unknown) => {
        isCode('SIAGH_FORM_ERROR')(e);
        const err = e as SyncError;
        assert.equal(err.column, 'Price');
        assert.deepEqual(err.details, ['قیمت ردیف 1 درست وارد نشده است']);
        assert.match(err.message, /Price/);
        return true;
      });
    });

    // Issue #9 item 7: business errors that share a word with session texts (اعتبار, ورود) are
    // form errors: one save, no re-login, no second save.
    const business = [
      { name: 'insufficient customer credit', text: SIAGH_NO_CREDIT_TEXT, column: 'CodeMoshtari', input: () => invoice('8388') },
      { name: 'item code required', text: SIAGH_ITEM_CODE_REQUIRED_TEXT, column: 'CodeKala', input: () => ({ ...invoice('8388'), rows: [{ itemCode: '', unitName: 'عدد', qty: 1, price: 1000, discount: 0 }] }) },
    ];
    for (const b of business) {
      it(`"${b.text}" (${b.name}) is SIAGH_FORM_ERROR after one save and no re-login`, async () => {
        sim.noCredit.add('8388');
        if (b.column === 'CodeKala') sim.noCredit.clear();
        const c = client();
        await c.login();
        assert.equal(sim.loginCount, 1);
        await assert.rejects(c.createPreInvoice(b.input()), (e: unknown) => {
          isCode('SIAGH_FORM_ERROR')(e);
          const err = e as SyncError;
          assert.deepEqual(err.details, [b.text]);
          assert.equal(err.column, b.column);
          assert.ok(err.message.includes(b.text), err.message);
          assert.equal(err.ambiguous, false);
          return true;
        });
        assert.equal(sim.count(SAVE), 1, 'one save request');
        assert.equal(sim.saveCount, 1);
        assert.equal(sim.loginCount, 1, 'no re-login');
        assert.equal(sim.count('POST /GeneralApi/LoginUser'), 1);
        assert.equal(c.loginCount, 1);
        assert.equal(sim.preInvoices().length, 0);
      });
    }

    it('the RUNTIME ERROR dump is SIAGH_UNKNOWN_CUSTOMER telling what to check', async () => {
      const c = client();
      await assert.rejects(c.createPreInvoice(invoice('8399')), (e: unknown) => {
        isCode('SIAGH_UNKNOWN_CUSTOMER')(e);
        const err = e as SyncError;
        assert.match(err.message, /customer code/);
        assert.match(err.message, /sale model/);
        assert.match(err.message, /sales centre/);
        assert.match(err.message, /intermediary/);
        assert.deepEqual(err.details, [SIAGH_RUNTIME_DUMP.trim()]);
        return true;
      });
      await assert.rejects(c.updateContact(9999, [['gn_web_users.fullname', 'x']]), (e: unknown) => {
        isCode('SIAGH_UNKNOWN_CUSTOMER')(e);
        assert.match((e as SyncError).message, /contact code does not exist/);
        return true;
      });
    });

    it('an unknown form answer and an Errors[]-only reply are read as SIAGH_FORM_ERROR', async () => {
      const c = client();
      await c.login();
      // An unknown formId through the real wire: raw request with a fresh session from the simulator.
      const login = await fetch(sim.url + '/GeneralApi/LoginUser', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ UserName: ADMIN, Password: siaghPasswordHash('admin') }),
      }).then((r) => r.json() as Promise<{ SessionId: string }>);
      const raw = await fetch(sim.url + '/BpmsApi/SaveFormData', {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: login.SessionId },
        body: JSON.stringify({ formId: 'NOPE1', ctrlValues: 'a=1', parameters: '', dataRows: '[]', attachments: '[]', postCode: '1110', flowId: '' }),
      }).then((r) => r.json());
      assert.throws(() => readSaveReply(SaveReplySchema.parse(raw), 'form'), (e: unknown) => {
        isCode('SIAGH_FORM_ERROR')(e);
        assert.match((e as SyncError).details[0], /NOPE1/);
        return true;
      });
      const onlyErrors = SaveReplySchema.parse({ Errors: [{ ErrorType: 'ErrError', Description: 'کد مرکز فروش نامعتبر است', ColName: 'codemarkazforush' }] });
      assert.throws(() => readSaveReply(onlyErrors, 'pre-invoice'), (e: unknown) => {
        isCode('SIAGH_FORM_ERROR')(e);
        assert.equal((e as SyncError).column, 'codemarkazforush');
        return true;
      });
      // ErrSuccs / ErrWarning are notes
      const ok = readSaveReply(
        SaveReplySchema.parse({ Errors: [{ ErrorType: 'ErrWarning', Description: 'هشدار' }], ReturnValue: true, ReturnCode: '12' }),
        'form',
      );
      assert.deepEqual(ok.notes, ['هشدار']);
      // ReturnValue false without any entry is still a failure
      assert.throws(() => readSaveReply(SaveReplySchema.parse({ Errors: [], ReturnValue: false, FinalMessages: ['ثبت نشد'] }), 'form'), isCode('SIAGH_FORM_ERROR'));
    });

    it('a broken reply to a read is BAD_REPLY after retries', async () => {
      const c = client({ retries: 1 });
      await c.login();
      sim.faults.add({ kind: 'html', path: 'GetAll', times: 5 });
      await assert.rejects(c.getAllContacts(), isCode('BAD_REPLY'));
      assert.equal(sim.count(GETALL), 2);
    });
  });

  describe('hostile values', () => {
    beforeEach(() => start());

    it('a name with |, =, newlines and Persian/Arabic digits changes no other field', async () => {
      const c = client();
      const name = '  شرکت | الف=ب\r\nسهامی\tخاص ۱۲۳ ٤٥٦  ';
      const r = await c.createContact([
        ['gn_web_users.isactive', '1'],
        ['gn_web_users.fullname', name],
        ['gn_web_users.mobileno', '۰۹۱۲۳۴۵۶۷۸۹'],
        ['gn_web_users.telno', '021|88776655'],
        ['gn_web_users.email', 'a=b@example.com'],
        ['gn_web_users.address', 'خیابان ۱۲\nپلاک ٣'],
        ['gn_web_users.passno', '0012345679'],
        ['gn_web_users.tozihat', 'x=y|z'],
        ['gn_web_users.taraftype', '1'],
      ]);
      const s = sim.contact(r.code)!;
      assert.equal(s.Name, 'شرکت ¦ الف=ب سهامی خاص ۱۲۳ ٤٥٦');
      assert.equal(s.MobileNo, '۰۹۱۲۳۴۵۶۷۸۹');
      assert.equal(s.TelNo, '021¦88776655');
      assert.equal(s.Email, 'a=b@example.com');
      assert.equal(s.Address, 'خیابان ۱۲ پلاک ٣');
      assert.equal(s.NationalCode, '0012345679');
      assert.equal(s.Description, 'x=y¦z');
      assert.equal(s.TowardType, true);
      assert.equal(s.IsActive, true);
      // exactly the segments sent: NickName + 9 fields, none malformed
      const save = sim.lastSave!;
      assert.equal(save.ctrl.length, 10);
      assert.ok(save.ctrl.every((x) => x.hasEquals));
      assert.deepEqual(save.ctrl[0], { key: 'NickName', value: 'dbgrid1.#nickname#', hasEquals: true, raw: 'NickName=dbgrid1.#nickname#' });
      assert.deepEqual(
        save.params.map((p) => p.raw),
        ['CodeMain='],
      );
      // the index knows the contact under its mobile, whatever the digits
      assert.equal(c.contacts.byMobile('+989123456789')?.Code, r.code);
    });

    it('a bad field key is BAD_INPUT and nothing is sent', async () => {
      const c = client();
      await assert.rejects(c.createContact([['gn_web_users.fullname|x', 'a']]), isCode('BAD_INPUT'));
      assert.equal(sim.count(SAVE), 0);
    });
  });

  describe('updates', () => {
    beforeEach(() => start());

    it('sends Param1 first and CodeMain=<code>; other fields stay', async () => {
      const c = client();
      const r = await c.updateContact(8388, [['gn_web_users.fullname', 'نام ویرایش شده']]);
      assert.deepEqual(r, { code: 8388, notes: [] });
      const s = sim.contact(8388)!;
      assert.equal(s.Name, 'نام ویرایش شده');
      assert.equal(s.MobileNo, '09121111111');
      assert.equal(sim.lastSave!.ctrl[0].raw, 'Param1=8388');
      assert.equal(sim.lastSave!.params[0].raw, 'CodeMain=8388');
    });

    it('an update is retried after a 5xx (idempotent)', async () => {
      const c = client();
      sim.faults.add({ kind: '5xx', path: 'SaveFormData', afterHandling: true });
      const r = await c.updateContact(8388, [['gn_web_users.fullname', 'دوباره']]);
      assert.equal(r.code, 8388);
      assert.equal(sim.count(SAVE), 2);
      assert.equal(sim.contacts().length, 1);
    });

    it('a different ReturnCode is reported in notes and not followed', async () => {
      const c = client();
      sim.onSave = (_save, reply) => ({ ...reply, body: { ...(reply.body as object), ReturnCode: '9001', ReturnParams: '9001' } });
      const r = await c.updateContact(8388, [['gn_web_users.fullname', 'x']]);
      assert.equal(r.code, 8388);
      assert.ok(r.notes.some((n) => /9001/.test(n)));
    });

    it('a 200 with Errors[] and no ReturnCode/ReturnValue is a form error', async () => {
      const c = client();
      sim.onSave = () => ({ status: 200, body: { Errors: [{ ErrorType: 'ErrError', Description: 'شهر نامعتبر است', ColName: 'codeshahr' }] } });
      await assert.rejects(c.updateContact(8388, [['gn_web_users.codeshahr', 'x']]), (e: unknown) => {
        isCode('SIAGH_FORM_ERROR')(e);
        assert.equal((e as SyncError).column, 'codeshahr');
        assert.deepEqual((e as SyncError).details, ['شهر نامعتبر است']);
        return true;
      });
    });

    it('uses the alternative SaveFormData path when configured', async () => {
      const c = client({ saveFormDataPath: '/GeneralApi/SaveFormData' });
      await c.updateContact(8388, [['gn_web_users.email', 'x@example.com']]);
      assert.equal(sim.count('POST /GeneralApi/SaveFormData'), 1);
      assert.equal(sim.count(SAVE), 0);
    });
  });

  describe('retries and ambiguous creates', () => {
    beforeEach(() => start());

    it('GetAll is retried on 5xx and 429', async () => {
      const c = client();
      const retries: string[] = [];
      const c2 = client({ onRetry: (i) => retries.push(i.code) });
      await c.login();
      sim.faults.add({ kind: '5xx', path: 'GetAll', times: 2 }, { kind: '429', path: 'GetAll', retryAfterSec: 0 });
      assert.equal((await c.getAllContacts()).length, 1);
      assert.equal(sim.count(GETALL), 4);
      sim.faults.add({ kind: '429', path: 'GetAll', retryAfterSec: 0 }, { kind: '5xx', path: 'GetAll' });
      assert.equal((await c2.getAllContacts()).length, 1);
      assert.deepEqual(retries, ['RATE_LIMITED', 'HTTP_5XX']);
      // A Retry-After longer than the client's own retries wait (20 ms here) is never cut short: the
      // error goes up with it, for the sync queue to wait it out in full.
      sim.faults.add({ kind: '429', path: 'GetAll', retryAfterSec: 90 });
      const before = sim.count(GETALL);
      const e = await c2.getAllContacts().then(() => undefined, (x: unknown) => x as { code?: string; retryAfterSec?: number });
      assert.equal(e?.code, 'RATE_LIMITED');
      assert.equal(e?.retryAfterSec, 90);
      assert.equal(sim.count(GETALL) - before, 1, 'not asked again before the 90 s');
    });

    for (const kind of ['timeout', 'drop', '5xx', 'truncated'] as const) {
      it(`a create answered by "${kind}" after it was handled is not repeated: one contact, the same Code`, async () => {
        const c = client({ timeoutMs: 300 });
        await c.contacts.ensureFresh();
        sim.faults.add({ kind, path: 'SaveFormData', afterHandling: true });
        const r = await c.createContact(contactFields('مبهم', '09126666666'));
        assert.equal(sim.contacts().length, 2);
        const stored = sim.contacts().find((x) => x.MobileNo === '09126666666')!;
        assert.equal(r.code, stored.Code);
        assert.ok(r.notes.some((n) => /recovered after ambiguous failure/.test(n)));
        assert.equal(sim.count(SAVE), 1);
        assert.equal(sim.count(GETALL), 2); // the first index load and one forced refresh
      });
    }

    // Issue #9: after a timeout or a dropped connection the client cannot tell whether the create
    // reached Siagh (or is still running there): it looks, and never sends it again.
    for (const kind of ['timeout', 'drop'] as const) {
      it(`a create lost by "${kind}" (before Siagh saw it) is looked up, not found → AMBIGUOUS_CREATE, never sent again`, async () => {
        const c = client({ timeoutMs: 300 });
        sim.faults.add({ kind, path: 'SaveFormData' });
        await assert.rejects(c.createContact(contactFields('گم شده', '09127777777'), { nationalCode: '0012345679' }), (e: unknown) => {
          isCode('AMBIGUOUS_CREATE')(e);
          const err = e as SyncError;
          assert.equal(err.ambiguous, true);
          assert.equal(err.retryable, false);
          assert.match(err.message, /not sent again/);
          return true;
        });
        assert.equal(sim.count(SAVE), 1, 'exactly one save request reached the simulator');
        assert.equal(sim.saveCount, 0);
        assert.equal(sim.contacts().length, 1);
      });
    }

    it('a create still running in Siagh when the client gives up is not sent again: one save, one contact', async () => {
      const c = client({ timeoutMs: 300, retries: 1 });
      await c.login();
      sim.faults.latencyMs = 700; // Siagh answers (and saves) after the client's timeout
      await assert.rejects(c.createContact(contactFields('کند', '09123333333')), (e: unknown) => {
        isCode('AMBIGUOUS_CREATE')(e);
        assert.equal((e as SyncError).ambiguous, true);
        return true;
      });
      sim.faults.latencyMs = 0;
      await new Promise((r) => setTimeout(r, 800)); // the first request finishes in Siagh
      assert.equal(sim.count(SAVE), 1, 'exactly one save request reached the simulator');
      assert.equal(sim.saveCount, 1);
      assert.equal(sim.contacts().filter((x) => x.MobileNo === '09123333333').length, 1);
    });

    for (const kind of ['timeout', 'drop'] as const) {
      it(`an update (CodeMain=<Code>) lost by "${kind}" is retried (idempotent)`, async () => {
        const c = client({ timeoutMs: 300 });
        sim.faults.add({ kind, path: 'SaveFormData', afterHandling: true });
        const r = await c.updateContact(8388, [['gn_web_users.fullname', 'نام تازه']]);
        assert.equal(r.code, 8388);
        assert.equal(sim.count(SAVE), 2);
        assert.equal(sim.contact(8388)?.Name, 'نام تازه');
        assert.equal(sim.contacts().length, 1);
      });
    }

    for (const kind of ['timeout', 'drop'] as const) {
      it(`a read (GetAll) lost by "${kind}" is retried`, async () => {
        const c = client({ timeoutMs: 300 });
        await c.login();
        sim.faults.add({ kind, path: 'GetAll' });
        assert.equal((await c.getAllContacts()).length, 1);
        assert.equal(sim.count(GETALL), 2);
      });
    }

    it('finds the contact by national code when the mobile is absent', async () => {
      const c = client({ timeoutMs: 300 });
      sim.faults.add({ kind: 'timeout', path: 'SaveFormData', afterHandling: true });
      const r = await c.createContact([
        ['gn_web_users.fullname', 'بدون موبایل'],
        ['gn_web_users.passno', '۰۰۱۲۳۴۵۶۷۹'],
      ]);
      assert.equal(sim.contacts().length, 2);
      assert.equal(sim.contact(r.code)?.Name, 'بدون موبایل');
    });

    it('without mobile or national code an ambiguous create fails as AMBIGUOUS_CREATE and is not repeated', async () => {
      const c = client({ timeoutMs: 300 });
      sim.faults.add({ kind: 'drop', path: 'SaveFormData', afterHandling: true });
      await assert.rejects(c.createContact([['gn_web_users.fullname', 'فقط نام']]), (e: unknown) => {
        isCode('AMBIGUOUS_CREATE')(e);
        assert.ok((e as SyncError).ambiguous);
        assert.match((e as SyncError).message, /Check Siagh/);
        return true;
      });
      assert.equal(sim.count(SAVE), 1);
    });

    it('a create reported as saved without a ReturnCode is looked up, not repeated', async () => {
      const c = client();
      sim.onSave = (_save, reply) => ({ ...reply, body: { ...(reply.body as object), ReturnCode: '', ReturnParams: '' } });
      const r = await c.createContact(contactFields('بی کد', '09124444444'));
      assert.equal(sim.contacts().length, 2);
      assert.equal(sim.contact(r.code)?.Name, 'بی کد');
      assert.equal(sim.count(SAVE), 1);
    });

    it('a 429 on a create is retried (the server did not act)', async () => {
      const c = client();
      sim.faults.add({ kind: '429', path: 'SaveFormData', retryAfterSec: 0 });
      const r = await c.createContact(contactFields('محدود', '09128888888'));
      assert.equal(sim.contact(r.code)?.Name, 'محدود');
      assert.equal(sim.count(SAVE), 2);
    });
  });

  describe('pre-invoices', () => {
    it('reads the document number in ASCII digits and keeps it apart from ReturnCode', async () => {
      await start();
      const c = client();
      const r = await c.createPreInvoice(invoice('8388'));
      assert.equal(r.documentNumber, '2488');
      assert.notEqual(r.returnCode, '2488');
      assert.match(r.returnCode, /^\d+$/);
      assert.match(r.returnParams, /^\d+$/);
      assert.ok(r.notes.some((n) => /خالص سند: 5,720,000/.test(n)));
      const inv = sim.preInvoices()[0];
      assert.equal(inv.suid, suidFromId('quote-1'));
      assert.equal(inv.header.codemoshtari, '8388');
      assert.equal(inv.header.tozihat, 'Test Organization(مشتری) - 100-965815809(پیش فاکتور فروش)');
      assert.deepEqual(
        sim.lastSave!.params.map((p) => p.raw),
        ['_In_EditKeys=', `_In_Suid=${suidFromId('quote-1')}`, 'nocheck='],
      );
    });

    for (const digits of ['persian', 'arabic'] as const) {
      it(`reads a document number written in ${digits} digits as ASCII`, async () => {
        await start({ documentDigits: digits, firstDocumentNumber: 3017 });
        const r = await client().createPreInvoice(invoice('8388'));
        assert.equal(r.documentNumber, '3017');
      });
    }

    it('sends the grid rows of form 43D81', () => {
      const input = invoice('8388');
      input.rows.push({ itemCode: 'K-2', unitName: 'قطعه', qty: 1.5, price: 100_000, discount: 5000 });
      const grids = JSON.parse(preInvoiceDataRows(input));
      assert.equal(grids.length, 1);
      assert.deepEqual(
        { name: grids[0].name, entity: grids[0].entity, keyField: grids[0].keyField },
        { name: 'dbgrid1', entity: 'sl_rizsanad', keyField: 'coderiz' },
      );
      const row = grids[0].data[1];
      assert.match(row.__uid.newValue, /^[0-9a-f]{8}$/);
      assert.equal(row.__uid.oldValue, row.__uid.newValue);
      assert.notEqual(row.__uid.newValue, grids[0].data[0].__uid.newValue);
      assert.deepEqual(row._status, { oldValue: 'inserted', newValue: 'inserted' });
      assert.deepEqual(row.codekala, { oldValue: null, newValue: 'K-2' });
      assert.deepEqual(row.qty, { oldValue: null, newValue: 1.5 });
      assert.deepEqual(row.finalqty, { oldValue: null, newValue: 1.5 });
      assert.deepEqual(row.mabtakhfif, { oldValue: null, newValue: 5000 });
      assert.deepEqual(row.vazn, { oldValue: null, newValue: '0' });
      assert.deepEqual(row.hajm, { oldValue: null, newValue: '0' });
      assert.deepEqual(row.radif, { oldValue: null, newValue: '2' });
      assert.deepEqual(row.takhfif, { oldValue: null, newValue: null });
      assert.deepEqual(row.sumamelinc, { oldValue: null, newValue: null });
      assert.deepEqual(row.sumameldec, { oldValue: null, newValue: null });
      // same input, same rows (a repeat carries the same ids)
      assert.equal(preInvoiceDataRows(input), preInvoiceDataRows(input));
    });

    it('suidFromId is deterministic 32 upper-case hex, salted, and rejects empty ids', () => {
      const a = suidFromId('265d2327-64bd-4ac5-9fb9-22ae0e838539');
      assert.match(a, /^[0-9A-F]{32}$/);
      assert.equal(a, suidFromId('265d2327-64bd-4ac5-9fb9-22ae0e838539'));
      assert.equal(a, suidFromId('265D2327-64BD-4AC5-9FB9-22AE0E838539'));
      assert.notEqual(a, suidFromId('265d2327-64bd-4ac5-9fb9-22ae0e838539', 'v2'));
      assert.notEqual(a, suidFromId('880d8361-0000-0000-0000-000000000000'));
      assert.throws(() => suidFromId(''), isCode('BAD_INPUT'));
    });

    for (const [kind, afterHandling] of [['timeout', true], ['timeout', false], ['drop', true], ['drop', false]] as const) {
      it(`an ambiguous save ("${kind}" ${afterHandling ? 'after' : 'before'} Siagh handled it) fails as AMBIGUOUS_CREATE by default and is sent only once`, async () => {
        await start();
        const c = client({ timeoutMs: 300 });
        sim.faults.add({ kind, path: 'SaveFormData', afterHandling });
        await assert.rejects(c.createPreInvoice(invoice('8388')), (e: unknown) => {
          isCode('AMBIGUOUS_CREATE')(e);
          assert.equal((e as SyncError).ambiguous, true);
          assert.match((e as SyncError).message, /look for it in Siagh/);
          return true;
        });
        assert.equal(sim.count(SAVE), 1, 'exactly one save request reached the simulator');
        assert.equal(sim.preInvoices().length, afterHandling ? 1 : 0);
      });
    }

    it('a pre-invoice still running in Siagh when the client gives up is not sent again', async () => {
      await start();
      const c = client({ timeoutMs: 300 });
      await c.login();
      sim.faults.latencyMs = 700;
      await assert.rejects(c.createPreInvoice(invoice('8388')), isCode('AMBIGUOUS_CREATE'));
      sim.faults.latencyMs = 0;
      await new Promise((r) => setTimeout(r, 800));
      assert.equal(sim.count(SAVE), 1);
      assert.equal(sim.preInvoices().length, 1);
    });

    it("with 'repeat' it is sent again with the same suid (de-duplicated when Siagh does)", async () => {
      await start({ dedupeSuid: true });
      const c = client({ timeoutMs: 300, ambiguousPreInvoice: 'repeat' });
      sim.faults.add({ kind: 'drop', path: 'SaveFormData', afterHandling: true });
      const r = await c.createPreInvoice(invoice('8388'));
      assert.equal(r.documentNumber, '2488');
      assert.equal(sim.count(SAVE), 2);
      assert.equal(sim.preInvoices().length, 1);
      assert.deepEqual(
        sim.saveLog.map((s) => s.params.find((p) => p.key === '_In_Suid')?.value),
        [suidFromId('quote-1'), suidFromId('quote-1')],
      );
    });

    it('a pre-invoice without rows or with a bad suid is BAD_INPUT', async () => {
      await start();
      const c = client();
      await assert.rejects(c.createPreInvoice({ ...invoice('8388'), rows: [] }), isCode('BAD_INPUT'));
      await assert.rejects(c.createPreInvoice({ ...invoice('8388'), suid: 'x|y' }), isCode('BAD_INPUT'));
      assert.equal(sim.count(SAVE), 0);
    });
  });

  describe('contact index', () => {
    beforeEach(() =>
      start({
        contacts: [
          { Code: 8388, Name: 'یک', MobileNo: '09121111111', NationalCode: '0012345678' },
          { Code: 8390, Name: 'دو', MobileNo: '09350000000', MobileNo2: '09121111111', NationalCode: '12345678' },
        ],
      }),
    );

    it('downloads once within maxAge; refresh() forces one; concurrent callers share it', async () => {
      const c = client();
      await Promise.all(Array.from({ length: 10 }, () => c.contacts.ensureFresh()));
      assert.equal(sim.count(GETALL), 1);
      await c.contacts.ensureFresh();
      assert.equal(sim.count(GETALL), 1);
      assert.equal(c.contacts.size, 2);
      assert.ok(c.contacts.loadedAt! <= Date.now());
      await c.contacts.refresh();
      assert.equal(sim.count(GETALL), 2);
      await Promise.all([c.contacts.refresh(), c.contacts.refresh(), c.contacts.refresh()]);
      assert.ok(sim.count(GETALL) <= 4);
    });

    it('an index older than maxAge is downloaded again', async () => {
      const c = client({ contactIndexMaxAgeMs: 30 });
      await c.contacts.ensureFresh();
      await new Promise((r) => setTimeout(r, 60));
      await c.contacts.ensureFresh();
      assert.equal(sim.count(GETALL), 2);
    });

    it('looks up by Code, mobile (any written form, MobileNo before MobileNo2) and national code', async () => {
      const c = client();
      await c.contacts.ensureFresh();
      assert.equal(c.contacts.byCode(8390)?.Name, 'دو');
      assert.equal(c.contacts.byCode('8390')?.Name, 'دو');
      assert.equal(c.contacts.byMobile('+98 912 111 1111')?.Code, 8388);
      assert.deepEqual(
        c.contacts.allByMobile('۰۹۱۲۱۱۱۱۱۱۱').map((x) => x.Code),
        [8388, 8390],
      );
      assert.equal(c.contacts.byNationalCode('0012345678')?.Code, 8388);
      assert.equal(c.contacts.byNationalCode('۰۰۱۲۳۴۵۶۷۸')?.Code, 8388);
      assert.equal(c.contacts.byMobile('09000000000'), undefined);
      assert.equal(c.contacts.all().length, 2);
    });

    it('our own creates and updates are in the index without a download', async () => {
      const c = client();
      await c.contacts.ensureFresh();
      const r = await c.createContact(contactFields('تازه', '09129999999', [['gn_web_users.passno', '0012345679']]));
      assert.equal(c.contacts.byMobile('09129999999')?.Code, r.code);
      assert.equal(c.contacts.byNationalCode('0012345679')?.Code, r.code);
      await c.updateContact(r.code, [['gn_web_users.mobileno', '09131234567']]);
      assert.equal(c.contacts.byMobile('09129999999'), undefined);
      assert.equal(c.contacts.byMobile('09131234567')?.Code, r.code);
      assert.equal(c.contacts.byCode(r.code)?.Name, 'تازه');
      assert.equal(c.contacts.size, 3);
      assert.equal(sim.count(GETALL), 1);
    });
  });

  it('close() stops the client', async () => {
    await start();
    const c = client();
    await c.login();
    c.close();
    await assert.rejects(c.getAllContacts(), isCode('NETWORK'));
  });

  it('a session id never appears in an error', async () => {
    await start();
    const c = client({ retries: 0 });
    await c.login();
    sim.faults.add({ kind: '5xx', path: 'GetAll' });
    const err = await c.getAllContacts().then(
      () => undefined,
      (e: unknown) => e as SyncError,
    );
    assert.ok(err);
    assert.ok(!/[0-9a-f]{32}/.test(JSON.stringify(err.toJSON()) + err.message));
  });
});
