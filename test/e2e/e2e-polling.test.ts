/**
 * End to end, polling-sync: with the CRM's webhooks switched off, identities created or changed in
 * the CRM still reach Siagh within a few POLL_INTERVAL_SECONDS, and so do the quotes and invoices
 * of a synced customer (one pre-invoice each, however often they are listed again), on a real
 * Node-RED running the shipped flows unchanged.
 */
import assert from 'node:assert/strict';
import { nationalIdWithCheckDigit } from '../../sim/seed';
import { phoneKey } from '../../lib/text/normalize';
import { countMatching, E2eEnv } from '../helpers/e2e';

const CRM_DOC_GET_RE = /^POST \/api\/v2\/crmobject\/(quote|invoice)\/sales\/get$/i;

const INTERVAL_S = 2;
/** A few intervals, plus the start-up delay of the first tick. */
const WITHIN_MS = 8 * INTERVAL_S * 1000 + 6000;

describe('e2e: polling-sync on a real Node-RED (webhooks off)', function () {
  this.timeout(60_000);
  let env: E2eEnv;
  const byName = (name: unknown) => env.siagh.contacts().filter((c) => c.Name === name);
  const writes = () => [env.siagh.saveCount, env.siagh.contacts().length];

  before(async function () {
    this.timeout(180_000);
    env = await E2eEnv.start({ pollIntervalSeconds: INTERVAL_S, webhooks: false });
  });
  after(async () => {
    await env?.stop();
  });

  let crmId: string;
  let code: number;

  it('an identity created in the CRM without a webhook appears in Siagh within a few intervals', async () => {
    const org = env.crm.addOrganization(
      {
        nickName: 'شرکت پخش ستاره کویر',
        email: 'info@setare-kavir.ir',
        phoneContacts: [{ default: true, phoneType: 'محل کار', phoneNumber: '03538261450' }],
        economicCode: '411122223333',
      },
      { webhook: false },
    );
    const person = env.crm.addPerson(
      {
        firstName: 'مهدی',
        lastName: 'کاظمی',
        nickName: 'مهدی کاظمی',
        nationalCode: nationalIdWithCheckDigit('002345678'),
        phoneContacts: [{ default: true, phoneType: 'Mobile', phoneNumber: '+98 912 345 6780' }],
      },
      { webhook: false },
    );
    crmId = person.crmId;
    assert.equal(env.crm.webhookLog().length, 0, 'no webhook was sent');
    const [p] = await env.waitFor('the person in Siagh', () => (byName('مهدی کاظمی').length ? byName('مهدی کاظمی') : undefined), WITHIN_MS);
    const [o] = await env.waitFor('the organization in Siagh', () => (byName('شرکت پخش ستاره کویر').length ? byName('شرکت پخش ستاره کویر') : undefined), WITHIN_MS);
    code = p.Code;
    assert.equal(phoneKey(p.MobileNo), phoneKey('09123456780'));
    assert.equal(p.TowardType, false);
    assert.equal(o.TowardType, true, 'an organization');
    assert.equal(o.Email, 'info@setare-kavir.ir');
    assert.ok(org.crmId);
    // Later ticks re-read the CRM but write nothing new.
    await env.waitQuiet('Siagh writes', writes, { quietMs: 3 * INTERVAL_S * 1000, timeoutMs: 30_000 });
    assert.equal(byName('مهدی کاظمی').length, 1);
    assert.equal(byName('شرکت پخش ستاره کویر').length, 1);
  });

  it('a change made in the CRM without a webhook reaches the same Siagh contact', async () => {
    assert.ok(crmId, 'the first test ran');
    const count = env.siagh.contacts().length;
    env.crm.updateRecord(crmId, { email: 'mehdi.kazemi@example.ir' }, { webhook: false });
    await env.waitFor('the change in Siagh', () => env.siagh.contact(code)?.Email === 'mehdi.kazemi@example.ir', WITHIN_MS);
    assert.equal(env.siagh.contacts().length, count, 'updated in place');
    assert.equal(env.crm.webhookLog().length, 0);
  });

  for (const type of ['quote', 'invoice'] as const) {
    it(`${type === 'quote' ? 'a' : 'an'} ${type} of the synced customer, created in the CRM without a webhook, becomes one pre-invoice in Siagh; a change to it adds none`, async () => {
      assert.ok(crmId && code, 'the first test ran');
      const before = env.siagh.preInvoices().length;
      const details = [
        { productCode: 'P-100', productName: 'شیر گاز', count: 2, baseUnitPrice: 1_250_000 },
        { productCode: 'P-200', productName: 'رگولاتور', count: 1, baseUnitPrice: 3_400_000 },
      ];
      const doc = type === 'quote' ? env.crm.addQuote({ identityId: crmId, details }, { webhook: false }) : env.crm.addInvoice({ identityId: crmId, details }, { webhook: false });
      const made = await env.waitFor(`the ${type}'s pre-invoice in Siagh`, () => env.siagh.preInvoices().slice(before).find((x) => x.customerCode === String(code)), WITHIN_MS);
      assert.equal(made.rows.length, 2, `both ${type} rows`);
      const gets = countMatching(env.crm, CRM_DOC_GET_RE);
      env.crm.updateRecord(doc.crmId, { description: 'تغییر پس از ارسال' }, { webhook: false });
      await env.waitFor(`the changed ${type} to be read again`, () => countMatching(env.crm, CRM_DOC_GET_RE) > gets, WITHIN_MS);
      const docWrites = () => [env.siagh.saveCount, env.siagh.preInvoices().length];
      await env.waitQuiet('Siagh writes', docWrites, { quietMs: 3 * INTERVAL_S * 1000, timeoutMs: 30_000 });
      assert.equal(env.siagh.preInvoices().length, before + 1, 'one pre-invoice, not two');
      assert.equal(env.crm.webhookLog().length, 0, 'polling alone');
    });
  }
});
