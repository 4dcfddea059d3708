/**
 * The operator's console (the sync-console plugin's sidebar tab) against a real Node-RED running
 * the three shipped flows and both simulators, in English and in Persian (right to left):
 * failures and a review item are produced through the webhook flow, the console groups them with
 * counts; a customer whose CRM name is spelled with Arabic ي/ك and a ZWNJ is found by its Persian
 * spelling, and its quote joins its timeline; a burst of 25 webhooks is counted while the operator keeps refreshing; "Replay all" of a group syncs the record that now exists and fails the other again;
 * "Link" resolves the review item; the counts change as it happens. Screenshots in
 * test-output/screenshots/console-*.png.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { CRM_LIST_RE, countMatching, shippedFlows } from '../../testkit/e2e';
import { Editor, Page, Sims, deployViaApi, openEditor, repoRoot, runtimeUnderTest, shot, startSims, until } from '../helpers/browser';

type Catalogue = { console: Record<string, any> };

function catalogue(lang: string): Catalogue {
  return JSON.parse(fs.readFileSync(path.join(repoRoot(), 'nodes', 'sync-console', 'locales', lang, 'sync-console.json'), 'utf8')) as Catalogue;
}

const MOBILE = '09127771234';
const ORG_NAME = 'شرکت کریمی تجارت';
const PERSON_NAME = 'رضا کریمی';
/** As the CRM holds it: Arabic yeh and kaf, a ZWNJ inside the first name. */
const CUSTOMER_CRM_SPELLING = 'علي‌رضا كريمي';
/** As an operator types it on a Persian keyboard. */
const CUSTOMER_TYPED = 'علیرضا کریمی';

/** The text of the first match now ('' when none): read at once, as the console may redraw between two calls. */
async function text(page: Page, selector: string): Promise<string> {
  return ((await page.locator(selector).allInnerTexts())[0] ?? '').trim();
}

async function failedCount(page: Page): Promise<number> {
  return Number(await text(page, '.sync-console-queue-failed .sync-console-count'));
}

async function groupCount(page: Page, code: string): Promise<number> {
  const t = await text(page, `.sync-console-group[data-code="${code}"] .sync-console-group-count`);
  return t ? Number(t) : 0;
}

/** Drag the sidebar's separator to the left, as an operator makes room for the console. */
async function widenSidebar(page: Page, by: number): Promise<void> {
  const box = (await page.locator('#red-ui-sidebar-separator').boundingBox())!;
  const x = box.x + box.width / 2;
  const y = box.y + box.height / 2;
  await page.mouse.move(x, y);
  await page.mouse.down();
  await page.mouse.move(x - by / 2, y, { steps: 5 });
  await page.mouse.move(x - by, y, { steps: 5 });
  await page.mouse.up();
}

/** Scroll an element into view for a screenshot; the console may redraw it meanwhile (new data), then try again. */
async function scrollTo(l: ReturnType<Page['locator']>): Promise<void> {
  await until('the element in view', async () => l.scrollIntoViewIfNeeded({ timeout: 2000 }).then(() => true, () => false), 10_000);
}

/** Wait until the console (refreshed by its button) shows what `probe` wants. */
async function untilShown<T>(page: Page, what: string, probe: () => Promise<T | undefined | false>, ms = 30_000): Promise<T> {
  return until(
    what,
    async () => {
      await page.locator('.sync-console-refresh').click();
      await page.waitForTimeout(400);
      return probe();
    },
    ms,
  );
}

for (const lang of ['en-US', 'fa']) {
  describe(`browser: the operator's console in ${lang} (${runtimeUnderTest().label})`, function () {
    this.timeout(120_000);
    const cat = catalogue(lang).console;
    const tag = lang === 'fa' ? 'fa' : 'en';
    let sims: Sims;
    let ed: Editor;
    let page: Page;

    before(async function () {
      this.timeout(240_000);
      sims = await startSims();
      ed = await openEditor({ env: { ...sims.env, POLL_SECONDS: '3600' }, ...(lang === 'fa' ? { lang: 'fa' } : {}) });
      page = ed.page;
      await deployViaApi(ed.red.url, shippedFlows());
      await ed.reload();
      // The polling flow runs once, 5 s after the deploy: let it pass (on an empty CRM) so it cannot do the webhooks' work below.
      await until('the first polling run', async () => countMatching(sims.crm, CRM_LIST_RE) > 0, 30_000);
      await new Promise((r) => setTimeout(r, 1000));
    });
    after(async () => {
      await ed?.close();
      await sims?.stop();
    });

    it('shows the queue, groups failures and a review item with counts, finds a customer by a Persian spelling variant, replays a group and resolves the item', async () => {
      const hook = (id: string, event = 'Update') => fetch(`${ed.red.url}/webhook/crm/identity?event=${event}&type=Identity&id=${id}`);

      // The console, opened from the sidebar: in the language of the browser.
      await page.evaluate(() => (globalThis as any).RED.sidebar.show('sync-console'));
      const root = page.locator('.sync-console');
      await root.waitFor({ state: 'visible', timeout: 10_000 });
      const narrow = (await root.boundingBox())!.width;
      await widenSidebar(page, 260);
      assert.ok((await root.boundingBox())!.width > narrow + 200, 'the sidebar is wider');
      assert.equal(await root.getAttribute('dir'), cat.dir);
      assert.equal(await root.evaluate((el) => (globalThis as any).getComputedStyle(el).direction), cat.dir);
      assert.deepEqual(await page.locator('.sync-console h3').allInnerTexts(), [cat.now.title, cat.failures.title, cat.search.title]);
      await untilShown(page, 'the queue tiles', async () => (await page.locator('.sync-console-queue-failed').count()) === 1);
      assert.equal(await text(page, '.sync-console-queue-failed .sync-console-label'), cat.queue.failed);
      const failedAtStart = await failedCount(page);

      // A customer synced (the CRM spells the name with Arabic letters and a ZWNJ) …
      const customer = sims.crm.addPerson({ nickName: CUSTOMER_CRM_SPELLING, firstName: null, lastName: null, nationalCode: '0012345679', phoneContacts: [{ phoneType: 'موبایل', phoneNumber: '09351112233', default: true }] }, { webhook: false });
      assert.equal((await hook(customer.crmId, 'Insert')).status, 200);
      // … two events for records the CRM does not have …
      const later = '7e1a0000-0000-4000-8000-00000000000' + (lang === 'fa' ? '2' : '1');
      const gone = '7e1a0000-0000-4000-8000-00000000010' + (lang === 'fa' ? '2' : '1');
      for (const id of [later, gone]) assert.equal((await hook(id)).status, 200);
      // … and a CRM organization with the mobile of an unmapped Siagh person: a review item.
      const reza = sims.siagh.addContact({ Name: PERSON_NAME, MobileNo: MOBILE, TowardType: false, NationalCode: '0067749828' });
      const org = sims.crm.addOrganization({ nickName: ORG_NAME, phoneContacts: [{ phoneType: 'موبایل', phoneNumber: MOBILE, default: true }] }, { webhook: false });
      assert.equal((await hook(org.crmId, 'Insert')).status, 200);

      await untilShown(page, 'two CRM_NOT_FOUND and one LINK_NEEDS_REVIEW', async () => (await groupCount(page, 'CRM_NOT_FOUND')) === 2 && (await groupCount(page, 'LINK_NEEDS_REVIEW')) === 1);
      assert.equal(await failedCount(page), failedAtStart + 3);
      const codes = await page.locator('.sync-console-group').evaluateAll((els) => els.map((e) => e.getAttribute('data-code')));
      assert.deepEqual(codes, ['LINK_NEEDS_REVIEW', 'CRM_NOT_FOUND'], 'review items first');
      const reviewRow = page.locator(`.sync-console-item[data-crm-id="${org.crmId}"]`);
      assert.ok((await reviewRow.innerText()).includes(String(reza.Code)), 'the review item names the Siagh contact');
      assert.equal(await reviewRow.locator('button.sync-console-replay-one').count(), 0, 'a review item is resolved, not replayed bare');
      assert.equal(await page.locator('.sync-console-group[data-code="LINK_NEEDS_REVIEW"] .sync-console-replay-group').count(), 0);
      const goneRow = page.locator(`.sync-console-item[data-crm-id="${gone}"]`);
      assert.ok((await goneRow.innerText()).includes(gone), 'the record of a failure');
      assert.equal(await goneRow.locator('button.sync-console-replay-one').count(), 1, 'a failure can be replayed alone');
      assert.match(await goneRow.locator('.sync-console-error').innerText(), new RegExp(gone), 'with its last error');
      assert.ok((await page.locator('.sync-console-pipeline').count()) >= 1, 'the last outcome per pipeline');
      assert.ok((await page.locator('.sync-console-bar-ok').count()) >= 1, 'the chart has a bar of successes');
      assert.match(await text(page, '.sync-console-connection[data-type="crm-config"]'), /\S/);
      await shot(page, `console-${tag}-failures`);

      // Search by the Persian spelling: the customer, its mapping and its timeline.
      await page.locator('.sync-console-q').fill(CUSTOMER_TYPED);
      await page.locator('.sync-console-search-go').click();
      const hit = page.locator(`.sync-console-hit[data-crm-id="${customer.crmId}"]`);
      await hit.waitFor({ state: 'visible', timeout: 10_000 });
      assert.equal(await page.locator('.sync-console-hit').count(), 1);
      assert.equal(await text(page, `.sync-console-hit[data-crm-id="${customer.crmId}"] .sync-console-name`), CUSTOMER_CRM_SPELLING);
      assert.equal(await hit.locator('.sync-console-mapping[data-entity="contact"]').count(), 1);
      assert.equal(await hit.locator('.sync-console-op-ok').count(), 1);
      // A mobile written with Persian digits finds it too.
      await page.locator('.sync-console-q').fill('۰۹۳۵۱۱۱۲۲۳۳');
      await page.locator('.sync-console-search-go').click();
      await until('the hit by mobile', async () => (await page.locator(`.sync-console-hit[data-crm-id="${customer.crmId}"]`).count()) === 1, 10_000);

      // Its quote joins its timeline, marked as the quote.
      const quote = sims.crm.addQuote({ identityId: customer.crmId, details: [{ productCode: 'P-100', productName: 'شیر گاز', count: 2, baseUnitPrice: 1_250_000 }] }, { webhook: false });
      assert.equal((await fetch(`${ed.red.url}/webhook/crm/quote?event=Insert&type=Quote&id=${quote.crmId}`)).status, 200);
      await page.locator('.sync-console-q').fill(CUSTOMER_TYPED);
      await page.locator('.sync-console-search-go').click();
      const quoteRow = `.sync-console-hit[data-crm-id="${customer.crmId}"] .sync-console-op-ok[data-crm-id="${quote.crmId}"]`;
      await untilShown(page, 'the quote in its customer\u2019s timeline', async () => (await page.locator(quoteRow).count()) === 1);
      assert.match(await text(page, `${quoteRow} .sync-console-outcome`), /^quote\b/);
      assert.ok((await page.locator(`.sync-console-hit[data-crm-id="${customer.crmId}"] .sync-console-op[data-crm-id="${customer.crmId}"]`).count()) >= 1, 'beside the customer\u2019s own sync');
      await scrollTo(page.locator(`.sync-console-hit[data-crm-id="${customer.crmId}"]`));
      await shot(page, `console-${tag}-search`);

      // A burst of 25 webhooks while the operator keeps refreshing: the console keeps answering, and counts them.
      const storeId = await page.locator('.sync-console-store').inputValue();
      const okBefore = ((await (await fetch(`${ed.red.url}/siagh-sync/console/${storeId}/now`)).json()) as { last24h: { ok: number } }).last24h.ok;
      const burst = Array.from({ length: 25 }, (_, i) => sims.crm.addPerson({ nickName: `مشتری انبوه ${i}` }, { webhook: false }).crmId);
      const sent = Promise.all(burst.map((id) => hook(id, 'Insert')));
      for (let i = 0; i < 3; i++) {
        await page.locator('.sync-console-refresh').click();
        await page.waitForTimeout(150);
      }
      assert.deepEqual((await sent).map((r) => r.status), Array(25).fill(200));
      await untilShown(page, 'the burst synced', async () => {
        const now = (await (await fetch(`${ed.red.url}/siagh-sync/console/${storeId}/now`)).json()) as { last24h: { ok: number } };
        return now.last24h.ok >= okBefore + 25;
      });
      assert.doesNotMatch(await text(page, '.sync-console-result'), /✘/, 'no refresh failed');

      // One of the missing records appears in the CRM; "Replay all" of the group: it syncs, the other fails again.
      sims.crm.addPerson({ crmId: later, nickName: 'مشتری دیررس' }, { webhook: false });
      const replayAll = page.locator('.sync-console-group[data-code="CRM_NOT_FOUND"] .sync-console-replay-group');
      await replayAll.click();
      await until('the replay answer', async () => /^✔/.test(await text(page, '.sync-console-result')), 10_000);
      await untilShown(page, 'the group to shrink to the record still missing', async () => (await groupCount(page, 'CRM_NOT_FOUND')) === 1 && (await page.locator(`.sync-console-item[data-crm-id="${later}"]`).count()) === 0);
      assert.equal(await page.locator(`.sync-console-item[data-crm-id="${gone}"]`).count(), 1);
      assert.equal(await failedCount(page), failedAtStart + 2);

      // Resolve the review item: link the organization to the Siagh contact.
      const link = page.locator(`.sync-console-item[data-crm-id="${org.crmId}"] button.sync-console-link`);
      await link.click();
      await until('the Siagh contact to take the CRM organization\u2019s name', async () => sims.siagh.contact(reza.Code)?.Name === ORG_NAME, 30_000);
      // No click on Refresh: the console looks again by itself after an action and every few seconds.
      await until('the review group to go', async () => (await groupCount(page, 'LINK_NEEDS_REVIEW')) === 0, 15_000);
      assert.equal(await failedCount(page), failedAtStart + 1);

      // The organization's timeline: the failure, then the linked sync, newest first.
      await page.locator('.sync-console-q').fill(org.crmId);
      await page.locator('.sync-console-search-go').click();
      const orgHit = page.locator(`.sync-console-hit[data-crm-id="${org.crmId}"]`);
      await orgHit.waitFor({ state: 'visible', timeout: 10_000 });
      const rows = await orgHit.locator('.sync-console-op').evaluateAll((els) => els.map((e) => e.className));
      assert.match(rows[0], /sync-console-op-ok/, rows.join(' | '));
      assert.match(rows.at(-1)!, /sync-console-op-failed/, rows.join(' | '));
      await scrollTo(orgHit);
      await shot(page, `console-${tag}-resolved`);

      // Nothing secret on screen.
      const all = await root.innerText();
      for (const s of [sims.env.CRM_PASSWORD, sims.env.FINANCE_PASSWORD]) assert.ok(!all.includes(s));
      assert.deepEqual(ed.pageErrors, []);
    });
  });
}
