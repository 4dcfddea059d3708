import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { SiaghSim, SIAGH_DUPLICATE_MOBILE_TEXT, SIAGH_EXPIRED_TEXT, SIAGH_RUNTIME_DUMP } from '../../sim/siagh-sim';

const md5 = (s: string) => createHash('md5').update(s, 'utf8').digest('hex');
const ADMIN = 'مدیر سیستم';

interface Reply {
  status: number;
  body: any;
}

async function call(sim: SiaghSim, method: string, path: string, body?: unknown, auth?: string): Promise<Reply> {
  const res = await fetch(sim.url + path, {
    method,
    headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...(auth ? { authorization: auth } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

async function login(sim: SiaghSim, password = md5('admin').toUpperCase()): Promise<Reply> {
  return call(sim, 'POST', '/GeneralApi/LoginUser', { UserName: ADMIN, Password: password });
}

async function session(sim: SiaghSim): Promise<string> {
  const r = await login(sim);
  assert.equal(r.status, 200);
  return r.body.SessionId;
}

function contactSave(ctrlValues: string, parameters = 'CodeMain=') {
  return { formId: '2BFDA', ctrlValues, parameters, dataRows: '[]', attachments: '[]', postCode: '1110', flowId: '' };
}

function preInvoice(customer: string, rows: Array<{ price: unknown; qty?: unknown; item?: string }>, suid = 'BE8892DF92EA4C4986082AFED6F07DCB') {
  const data = rows.map((r, i) => ({
    __uid: { oldValue: `u${i}`, newValue: `u${i}` },
    _status: { oldValue: 'inserted', newValue: 'inserted' },
    codekala: { oldValue: null, newValue: r.item ?? '500102014' },
    nameunit: { oldValue: null, newValue: 'عدد' },
    qty: { oldValue: null, newValue: r.qty ?? 2 },
    mabtakhfif: { oldValue: null, newValue: 0 },
    price: { oldValue: null, newValue: r.price },
    radif: { oldValue: null, newValue: String(i + 1) },
  }));
  return {
    formId: '43D81',
    ctrlValues: `sl_sanad.hssanadstate=8|sl_sanad.codenoeesanad=2|sl_sanad.codesalemodel=1|sl_sanad.codemarkazforush=2|sl_sanad.codemoshtari=${customer}|sl_sanad.codevaseteh=31`,
    parameters: `_In_EditKeys=|_In_Suid=${suid}|nocheck=`,
    dataRows: JSON.stringify([{ name: 'dbgrid1', entity: 'sl_rizsanad', keyField: 'coderiz', data }]),
    attachments: '[]',
    postCode: '1110',
    flowId: '',
  };
}

describe('siagh simulator', () => {
  let sim: SiaghSim;
  afterEach(async () => {
    await sim?.stop();
  });

  describe('login', () => {
    beforeEach(async () => {
      sim = new SiaghSim();
      await sim.start();
    });

    it('accepts the upper-case MD5 and answers every login field', async () => {
      const r = await login(sim);
      assert.equal(r.status, 200);
      assert.match(r.body.SessionId, /^[0-9a-f]{32}$/);
      assert.equal(r.body.Token, r.body.SessionId + ':0');
      for (const f of ['ContactCode', 'ContactName', 'UserCode', 'UserName', 'BranchCode', 'BranchName', 'IsAdminUser', 'FiscalYear', 'MobileNo', 'SystemDate', 'SystemTime']) {
        assert.ok(f in r.body, f);
      }
      assert.equal(r.body.FiscalYear, 1404);
      assert.equal(r.body.BranchName, 'دفتر مرکزی');
      assert.match(r.body.SystemDate, /^\d{4}\/\d{2}\/\d{2}$/);
      assert.equal(sim.loginCount, 1);
    });

    it('refuses a plain or lower-case hash password with 401', async () => {
      for (const pw of ['admin', md5('admin')]) {
        const r = await login(sim, pw);
        assert.equal(r.status, 401);
        assert.deepEqual(r.body, { Message: 'Invalid username or password' });
      }
      assert.equal(sim.loginCount, 0);
    });

    it('can answer without a SessionId or with Errors[] (test switch)', async () => {
      sim.loginReply = 'noSessionId';
      let r = await login(sim);
      assert.equal(r.status, 200);
      assert.equal(r.body.SessionId, undefined);
      sim.loginReply = 'errors200';
      r = await login(sim);
      assert.equal(r.body.Errors[0].ErrorType, 'ErrError');
    });
  });

  describe('sessions', () => {
    it('answers an unknown, Bearer-prefixed or expired session with a Persian error (errors200)', async () => {
      sim = new SiaghSim();
      await sim.start();
      const id = await session(sim);
      assert.equal((await call(sim, 'GET', '/api/Sgh/GEN/Gn_Web_Users/GetAll', undefined, id)).status, 200);
      for (const auth of [undefined, 'Bearer ' + id, 'f'.repeat(32)]) {
        const r = await call(sim, 'GET', '/api/Sgh/GEN/Gn_Web_Users/GetAll', undefined, auth);
        assert.equal(r.status, 200);
        assert.equal(r.body.ReturnValue, false);
        assert.equal(r.body.Errors[0].Description, SIAGH_EXPIRED_TEXT);
      }
      sim.expireAllSessions();
      const r = await call(sim, 'POST', '/BpmsApi/SaveFormData', contactSave('gn_web_users.fullname=x'), id);
      assert.equal(r.body.Errors[0].Description, SIAGH_EXPIRED_TEXT);
      assert.equal(sim.contacts().length, 0);
      assert.equal(sim.saveCount, 0);
    });

    it('answers 401 in the http401 shape and honours sessionTtlMs', async () => {
      sim = new SiaghSim({ expiryShape: 'http401', sessionTtlMs: 30 });
      await sim.start();
      const id = await session(sim);
      assert.equal((await call(sim, 'GET', '/api/Sgh/GEN/Gn_Web_Users/GetAll', undefined, id)).status, 200);
      await new Promise((r) => setTimeout(r, 80));
      const r = await call(sim, 'GET', '/api/Sgh/GEN/Gn_Web_Users/GetAll', undefined, id);
      assert.equal(r.status, 401);
      assert.equal(sim.sessionCount, 0);
    });
  });

  describe('contacts', () => {
    beforeEach(async () => {
      sim = new SiaghSim({
        contacts: [
          { Code: 8320, Name: 'مشتری یک', MobileNo: '09121111111', NationalCode: '0012345678', tmpid: '7320' },
          { Code: 8321, Name: 'شرکت دو', MobileNo: '09122222222', TelNo: '02188776655', TowardType: true, AccountPartyCode: 5500014 },
        ],
      });
      await sim.start();
    });

    it('GetAll (GET and POST {}) returns every record with the fields of the real reply and without tmpid', async () => {
      const id = await session(sim);
      const g = await call(sim, 'GET', '/api/Sgh/GEN/Gn_Web_Users/GetAll', undefined, id);
      const p = await call(sim, 'POST', '/api/Sgh/GEN/Gn_Web_Users/GetAll', {}, id);
      assert.equal(g.body.length, 2);
      assert.deepEqual(p.body, g.body);
      const c = g.body[0];
      for (const f of ['RecordId', 'Code', 'Name', 'NickName', 'NationalCode', 'MobileNo', 'MobileNo2', 'TelNo', 'Email', 'Address', 'PostalCode', 'IsActive', 'IsAdminUser', 'TowardType', 'AccountPartyCode', 'Password']) {
        assert.ok(f in c, f);
      }
      assert.ok(!('tmpid' in c) && !('TmpId' in c));
      assert.equal(g.body[1].TowardType, true);
      assert.equal(sim.contacts()[0].tmpid, '7320');
    });

    it('POST GetAll filters by MobileNo, TelNo and Code', async () => {
      const id = await session(sim);
      const byMobile = await call(sim, 'POST', '/api/Sgh/GEN/Gn_Web_Users/GetAll', { MobileNo: '+989122222222' }, id);
      assert.deepEqual(
        byMobile.body.map((c: any) => c.Code),
        [8321],
      );
      const byTel = await call(sim, 'POST', '/api/Sgh/GEN/Gn_Web_Users/GetAll', { TelNo: '021-88776655' }, id);
      assert.deepEqual(
        byTel.body.map((c: any) => c.Code),
        [8321],
      );
      const byCode = await call(sim, 'POST', '/api/Sgh/GEN/Gn_Web_Users/GetAll', { Code: 8320 }, id);
      assert.deepEqual(
        byCode.body.map((c: any) => c.Code),
        [8320],
      );
      const none = await call(sim, 'POST', '/api/Sgh/GEN/Gn_Web_Users/GetAll', { Code: 1 }, id);
      assert.deepEqual(none.body, []);
    });

    it('creates with increasing Codes on both SaveFormData paths, stores tmpid write-only', async () => {
      const id = await session(sim);
      const a = await call(sim, 'POST', '/BpmsApi/SaveFormData', contactSave('NickName=dbgrid1.#nickname#|gn_web_users.fullname=الف|gn_web_users.mobileno=09123333333|gn_web_users.tmpid=55|gn_web_users.taraftype=1|gn_web_users.passno=0012345679'), id);
      const b = await call(sim, 'POST', '/GeneralApi/SaveFormData', contactSave('gn_web_users.fullname=ب|tmpid=56'), id);
      assert.deepEqual(a.body, { Errors: [], FinalMessages: [], ReturnValue: true, ReturnCode: '8322', ReturnParams: '8322' });
      assert.equal(b.body.ReturnCode, '8323');
      const stored = sim.contact(8322)!;
      assert.equal(stored.Name, 'الف');
      assert.equal(stored.MobileNo, '09123333333');
      assert.equal(stored.NationalCode, '0012345679');
      assert.equal(stored.TowardType, true);
      assert.equal(stored.tmpid, '55');
      assert.equal(sim.contact(8323)!.tmpid, '56');
      const all = await call(sim, 'GET', '/api/Sgh/GEN/Gn_Web_Users/GetAll', undefined, id);
      assert.ok(all.body.every((c: any) => !('tmpid' in c)));
    });

    it('refuses a duplicate mobile with the exact Persian error and HTTP 200', async () => {
      const id = await session(sim);
      const r = await call(sim, 'POST', '/BpmsApi/SaveFormData', contactSave('gn_web_users.fullname=x|gn_web_users.mobileno=+98 912 111 1111'), id);
      assert.equal(r.status, 200);
      assert.deepEqual(r.body, {
        Errors: [{ ColName: '', Group: '', ErrorType: 'ErrError', Description: SIAGH_DUPLICATE_MOBILE_TEXT, ErrorCode: -1, MessageText: '', Solution: '', HelpIndex: '' }],
        FinalMessages: [],
        ReturnValue: false,
        ReturnCode: '',
        ReturnParams: '',
      });
      assert.equal(sim.contacts().length, 2);
    });

    it('updates only the keys present; an unknown code gets the RUNTIME ERROR dump', async () => {
      const id = await session(sim);
      const r = await call(sim, 'POST', '/BpmsApi/SaveFormData', contactSave('Param1=8320|gn_web_users.fullname=نام تازه', 'CodeMain=8320'), id);
      assert.equal(r.body.ReturnCode, '8320');
      const c = sim.contact(8320)!;
      assert.equal(c.Name, 'نام تازه');
      assert.equal(c.MobileNo, '09121111111');
      assert.equal(c.NationalCode, '0012345678');
      // keeping its own mobile is not a duplicate
      const same = await call(sim, 'POST', '/BpmsApi/SaveFormData', contactSave('Param1=8320|gn_web_users.mobileno=09121111111', 'CodeMain=8320'), id);
      assert.equal(same.body.ReturnValue, true);
      const u = await call(sim, 'POST', '/BpmsApi/SaveFormData', contactSave('Param1=9999|gn_web_users.fullname=x', 'CodeMain=9999'), id);
      assert.equal(u.body.ReturnValue, false);
      assert.equal(u.body.Errors[0].Description, SIAGH_RUNTIME_DUMP);
    });

    it('flags segments without = and unknown forms', async () => {
      const id = await session(sim);
      const r = await call(sim, 'POST', '/BpmsApi/SaveFormData', contactSave('gn_web_users.fullname=a|b c|gn_web_users.mobileno=09124444444'), id);
      assert.equal(r.body.ReturnValue, false);
      assert.match(r.body.Errors[0].Description, /b c/);
      assert.equal(sim.contacts().length, 2);
      const f = await call(sim, 'POST', '/BpmsApi/SaveFormData', { ...contactSave('a=1'), formId: 'ZZZZZ' }, id);
      assert.equal(f.body.ReturnValue, false);
      assert.match(f.body.Errors[0].Description, /ZZZZZ/);
      assert.equal(f.body.ReturnCode, '');
    });

    it('reset() goes back to the seed; state() and /__sim/state report it', async () => {
      const id = await session(sim);
      await call(sim, 'POST', '/BpmsApi/SaveFormData', contactSave('gn_web_users.fullname=x'), id);
      assert.equal(sim.contacts().length, 3);
      const st = await call(sim, 'GET', '/__sim/state');
      assert.equal(st.body.contacts.length, 3);
      assert.equal(st.body.logins, 1);
      sim.reset();
      assert.equal(sim.contacts().length, 2);
      assert.equal(sim.loginCount, 0);
      assert.equal(sim.state().sessions, 0);
      const added = sim.addContact({ Name: 'دستی' });
      assert.equal(added.Code, 8322);
    });
  });

  describe('pre-invoices', () => {
    beforeEach(async () => {
      sim = new SiaghSim({ contacts: [{ Code: 8388, Name: 'مشتری', AccountPartyCode: 5500014 }] });
      await sim.start();
    });

    it('saves with an ErrSuccs note, a separate document number and unrelated return numbers', async () => {
      const id = await session(sim);
      const r = await call(sim, 'POST', '/BpmsApi/SaveFormData', preInvoice('8388', [{ price: 1_430_000, qty: 4 }]), id);
      assert.equal(r.body.ReturnValue, true);
      assert.equal(r.body.Errors[0].ErrorType, 'ErrSuccs');
      assert.equal(r.body.Errors[0].Description, 'پیش فاکتور فروش با موفقیت به شماره 2488 ثبت گردید خالص سند: 5,720,000');
      assert.deepEqual(r.body.FinalMessages, ['پیش فاکتور فروش با موفقیت به شماره 2488 ثبت گردید']);
      assert.notEqual(r.body.ReturnCode, '2488');
      assert.notEqual(r.body.ReturnParams, r.body.ReturnCode);
      const second = await call(sim, 'POST', '/BpmsApi/SaveFormData', preInvoice('5500014', [{ price: 10 }]), id);
      assert.match(second.body.FinalMessages[0], /2489/);
      assert.equal(sim.preInvoices().length, 2);
      assert.equal(sim.preInvoices()[0].header.codevaseteh, '31');
    });

    it('an unknown customer code gets the RUNTIME ERROR dump; bad prices name the row and ColName Price', async () => {
      const id = await session(sim);
      const u = await call(sim, 'POST', '/BpmsApi/SaveFormData', preInvoice('8399', [{ price: 10 }]), id);
      assert.equal(u.body.Errors[0].Description, SIAGH_RUNTIME_DUMP);
      const p = await call(sim, 'POST', '/BpmsApi/SaveFormData', preInvoice('8388', [{ price: 10 }, { price: 0 }, { price: '12' }]), id);
      assert.equal(p.body.ReturnValue, false);
      assert.deepEqual(
        p.body.Errors.map((e: any) => [e.Description, e.ColName]),
        [
          ['قیمت ردیف 2 درست وارد نشده است', 'Price'],
          ['قیمت ردیف 3 درست وارد نشده است', 'Price'],
        ],
      );
      assert.equal(sim.preInvoices().length, 0);
    });

    it('unknown sale model / item codes are refused when the sets are given', async () => {
      await sim.stop();
      sim = new SiaghSim({ contacts: [{ Code: 8388 }], validSaleModels: ['5'], items: ['500102014'] });
      await sim.start();
      const id = await session(sim);
      const r = await call(sim, 'POST', '/BpmsApi/SaveFormData', preInvoice('8388', [{ price: 10 }]), id);
      assert.equal(r.body.Errors[0].Description, SIAGH_RUNTIME_DUMP);
    });

    it('an empty sales centre or intermediary is refused as the real server did on 2025-12-26: HTTP 200, one ErrError with the RUNTIME ERROR text, ReturnValue false, nothing saved', async () => {
      const id = await session(sim);
      // the request observed: codemarkazforush=, codevaseteh=, codecontact= (empty)
      const observed = preInvoice('8388', [{ price: 10 }]);
      observed.ctrlValues = 'sl_sanad.hssanadstate=8|sl_sanad.codenoeesanad=2|sl_sanad.codesalemodel=1|sl_sanad.salmali=1404|sl_sanad.codenoeepardakht=2|sl_sanad.codemarkazforush=|sl_sanad.codecontact=|sl_sanad.codemoshtari=8388|sl_sanad.codenoeeforush=1|sl_sanad.codevaseteh=|sl_sanad.tozihat=|sl_sanad.namenoesanad=پیش فاکتور فروش';
      const onlyCentre = preInvoice('8388', [{ price: 10 }]);
      onlyCentre.ctrlValues = onlyCentre.ctrlValues.replace('codemarkazforush=2', 'codemarkazforush=');
      const onlyIntermediary = preInvoice('8388', [{ price: 10 }]);
      onlyIntermediary.ctrlValues = onlyIntermediary.ctrlValues.replace('|sl_sanad.codevaseteh=31', '|sl_sanad.codevaseteh= ');
      const absent = preInvoice('8388', [{ price: 10 }]);
      absent.ctrlValues = absent.ctrlValues.replace('|sl_sanad.codevaseteh=31', '');
      for (const body of [observed, onlyCentre, onlyIntermediary, absent]) {
        const r = await call(sim, 'POST', '/BpmsApi/SaveFormData', body, id);
        assert.equal(r.status, 200);
        assert.equal(r.body.ReturnValue, false);
        assert.equal(r.body.ReturnCode, '');
        assert.equal(r.body.Errors.length, 1);
        assert.equal(r.body.Errors[0].ErrorType, 'ErrError');
        assert.equal(r.body.Errors[0].ErrorCode, -1);
        assert.equal(r.body.Errors[0].Description, SIAGH_RUNTIME_DUMP);
        assert.match(r.body.Errors[0].Description, /^ پیامهای سرویس : RUNTIME ERROR\r?\nField 'Code' not found when evaluating instruction CallProc \(\$FFFFFFFF,\$1,\$1E888D0,\$0,'FieldByName'\)\.\r?\nStack content is: \[Null,Null,0,97227280\.\.\.\]\.\r?\nSource position: 218,84\r?\nPosition: 218, 84$/);
      }
      assert.equal(sim.preInvoices().length, 0);
      // the follow-up values (codevaseteh=31, codemarkazforush = the sale-model digits) are accepted
      const followUp = preInvoice('8388', [{ price: 10 }]);
      followUp.ctrlValues = observed.ctrlValues.replace('codemarkazforush=', 'codemarkazforush=1').replace('codevaseteh=', 'codevaseteh=31');
      const ok = await call(sim, 'POST', '/BpmsApi/SaveFormData', followUp, id);
      assert.equal(ok.body.ReturnValue, true, JSON.stringify(ok.body.Errors));
      assert.equal(sim.preInvoices().length, 1);
    });

    it('writes Persian digits when asked and de-duplicates on suid only when enabled', async () => {
      await sim.stop();
      sim = new SiaghSim({ contacts: [{ Code: 8388 }], persianDigits: true, dedupeSuid: true });
      await sim.start();
      const id = await session(sim);
      const a = await call(sim, 'POST', '/BpmsApi/SaveFormData', preInvoice('8388', [{ price: 10 }]), id);
      assert.match(a.body.FinalMessages[0], /به شماره ۲۴۸۸ ثبت/);
      const b = await call(sim, 'POST', '/BpmsApi/SaveFormData', preInvoice('8388', [{ price: 10 }]), id);
      assert.deepEqual(b.body, a.body);
      assert.equal(sim.preInvoices().length, 1);
      const c = await call(sim, 'POST', '/BpmsApi/SaveFormData', preInvoice('8388', [{ price: 10 }], 'A'.repeat(32)), id);
      assert.match(c.body.FinalMessages[0], /۲۴۸۹/);
    });

    it('without dedupeSuid the same suid makes a new document', async () => {
      const id = await session(sim);
      await call(sim, 'POST', '/BpmsApi/SaveFormData', preInvoice('8388', [{ price: 10 }]), id);
      await call(sim, 'POST', '/BpmsApi/SaveFormData', preInvoice('8388', [{ price: 10 }]), id);
      assert.deepEqual(
        sim.preInvoices().map((p) => p.documentNumber),
        [2488, 2489],
      );
    });
  });

  it('holds 10,000 contacts and serves them in one GetAll', async () => {
    const contacts = Array.from({ length: 10_000 }, (_, i) => ({ Code: 1000 + i, Name: `مخاطب ${i}`, MobileNo: '0912' + String(i).padStart(7, '0') }));
    sim = new SiaghSim({ contacts });
    await sim.start();
    const id = await session(sim);
    const all = await call(sim, 'GET', '/api/Sgh/GEN/Gn_Web_Users/GetAll', undefined, id);
    assert.equal(all.body.length, 10_000);
    const dup = await call(sim, 'POST', '/BpmsApi/SaveFormData', contactSave('gn_web_users.fullname=x|gn_web_users.mobileno=09120009999'), id);
    assert.equal(dup.body.Errors[0].Description, SIAGH_DUPLICATE_MOBILE_TEXT);
    const ok = await call(sim, 'POST', '/BpmsApi/SaveFormData', contactSave('gn_web_users.fullname=x|gn_web_users.mobileno=09350000000'), id);
    assert.equal(ok.body.ReturnCode, '11000');
  });
});
