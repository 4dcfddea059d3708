/**
 * A review item resolved in the editor: a webhook-style flow (http in → sync-queue → crm-fetch →
 * sync-mapping lookup → siagh-upsert → sync-mapping store → sync-log, the tab's Catch into
 * sync-log, sync-log output 2 back into the sync-queue) is imported and deployed. A CRM
 * organization carries the mobile of an unmapped Siagh person with another name: siagh-upsert
 * raises LINK_NEEDS_REVIEW and nothing is written. The sync-log dialog lists the item with both
 * records; "Link" replays it with the decision, Siagh's contact takes the CRM's data and the item
 * leaves the list.
 */
import assert from 'node:assert/strict';
import {
  CRM_USER,
  Editor,
  Page,
  SIAGH_USER,
  Sims,
  deploy,
  editorSession,
  importText,
  invalidNodes,
  openNodeDialog,
  runtimeUnderTest,
  shot,
  showWorkspace,
  until,
} from '../helpers/browser';

const MOBILE = '09127771234';
const ORG_NAME = 'شرکت کریمی تجارت';
const PERSON_NAME = 'رضا کریمی';

function reviewFlow(sims: Sims): unknown[] {
  const z = 'rv-tab';
  const at = (x: number, y: number) => ({ z, x, y });
  return [
    { id: z, type: 'tab', label: 'review items', disabled: false, info: '' },
    { id: 'rv-in', type: 'http in', ...at(130, 80), name: '', url: '/review-hook', method: 'get', upload: false, swaggerDoc: '', wires: [['rv-res', 'rv-queue']] },
    { id: 'rv-res', type: 'http response', ...at(330, 40), name: 'ack', statusCode: '200', headers: {}, wires: [] },
    { id: 'rv-queue', type: 'sync-queue', ...at(330, 120), name: 'sync queue', store: 'rv-store', concurrency: 2, wires: [['rv-fetch']] },
    { id: 'rv-fetch', type: 'crm-fetch', ...at(520, 120), name: '', crm: 'rv-crm', what: 'auto', searchOutput: 'each', pageSize: 200, wires: [['rv-lookup']] },
    { id: 'rv-lookup', type: 'sync-mapping', ...at(700, 120), name: '', file: '', store: 'rv-store', operation: 'lookup', entityType: 'auto', claim: true, leaseSeconds: 60, waitSeconds: 300, source: '', wires: [['rv-upsert']] },
    { id: 'rv-upsert', type: 'siagh-upsert', ...at(880, 120), name: '', siagh: 'rv-siagh', mode: 'auto', emptyPolicy: 'keep', wires: [['rv-store-map']] },
    { id: 'rv-store-map', type: 'sync-mapping', ...at(1060, 120), name: '', file: '', store: 'rv-store', operation: 'store', entityType: 'auto', claim: true, leaseSeconds: 60, waitSeconds: 300, source: 'webhook', wires: [['rv-log']] },
    { id: 'rv-catch', type: 'catch', ...at(700, 220), name: '', scope: null, uncaught: false, wires: [['rv-log']] },
    { id: 'rv-log', type: 'sync-log', ...at(1060, 220), name: 'sync log', store: 'rv-store', dir: '', trigger: 'webhook', maxSizeMB: 10, keepFiles: 10, keepDays: 30, failedMaxEntries: 10000, failedMaxAgeDays: 90, wires: [[], ['rv-queue']] },
    { id: 'rv-store', type: 'sync-store', name: 'data', backend: 'file', dir: '', maxAttempts: '', maxAgeHours: '', firstRetrySeconds: '', maxRetryDelaySeconds: '', leaseSeconds: 120 },
    { id: 'rv-crm', type: 'crm-config', name: 'CRM sim', baseUrl: sims.crm.url, timeout: 10, concurrency: 4, ca: '', credentials: { username: CRM_USER.username, password: CRM_USER.password } },
    {
      id: 'rv-siagh',
      type: 'siagh-config',
      name: 'Siagh sim',
      baseUrl: sims.siagh.url,
      saveFormDataPath: '/BpmsApi/SaveFormData',
      indexMaxAge: 10,
      timeout: 10,
      concurrency: 4,
      ambiguousPreInvoice: 'fail',
      ca: '',
      credentials: { username: SIAGH_USER.UserName, password: SIAGH_USER.Password },
    },
  ];
}

interface FailedEntryLike {
  key: string;
  event: { id: string };
  reason: { code: string };
  review?: { crm?: { name?: string }; siagh?: { code?: number; name?: string } };
}

async function failedList(ed: Editor): Promise<FailedEntryLike[]> {
  const res = await fetch(`${ed.red.url}/siagh-sync/sync-log/rv-log/failed`);
  const body = (await res.json()) as { entries?: FailedEntryLike[] };
  return body.entries ?? [];
}

describe(`browser: a review item resolved in the sync-log dialog (${runtimeUnderTest().label})`, function () {
  this.timeout(90_000);
  let sims: Sims;
  let ed: Editor;
  let page: Page;

  editorSession({}, (s) => ({ sims, ed, page } = s));

  it('LINK_NEEDS_REVIEW shows both records; "Link" replays it with the decision, Siagh takes the CRM data and the item leaves the list', async () => {
    await importText(page, JSON.stringify(reviewFlow(sims)));
    await showWorkspace(page, 'rv-tab');
    assert.deepEqual(await invalidNodes(page), []);
    assert.match(await deploy(page), /Successfully deployed/);

    // An unmapped Siagh person, and a CRM organization with the same mobile and another name.
    const reza = sims.siagh.addContact({ Name: PERSON_NAME, MobileNo: MOBILE, TowardType: false, NationalCode: '0012345679' });
    const org = sims.crm.addOrganization({ nickName: ORG_NAME, phoneContacts: [{ phoneType: 'موبایل', phoneNumber: MOBILE, default: true }] }, { webhook: false });
    const saves = sims.siagh.saveCount;
    const hook = await fetch(`${ed.red.url}/review-hook?event=Insert&type=Identity&id=${org.crmId}`);
    assert.equal(hook.status, 200);

    const item = await until(
      'the review item in the failed list',
      async () => (await failedList(ed)).find((e) => e.event.id === org.crmId && e.reason.code === 'LINK_NEEDS_REVIEW'),
      30_000,
    );
    assert.equal(item.review?.siagh?.code, reza.Code);
    assert.equal(item.review?.crm?.name, ORG_NAME);
    assert.equal(sims.siagh.saveCount, saves, 'nothing written to Siagh');

    // The operator opens the sync-log dialog: the item with both records and its buttons.
    await openNodeDialog(page, 'rv-log');
    const row = page.locator(`.node-sync-log-row.node-sync-log-review[data-crm-id="${org.crmId}"]`);
    await row.waitFor({ state: 'visible', timeout: 10_000 });
    await row.scrollIntoViewIfNeeded();
    assert.equal((await row.locator('.node-sync-log-review-crm').first().innerText()).trim(), ORG_NAME);
    assert.equal((await row.locator('.node-sync-log-review-siagh').first().innerText()).trim(), PERSON_NAME);
    const rowText = await row.innerText();
    assert.ok(rowText.includes(MOBILE), rowText);
    assert.ok(rowText.includes('0012345679'), rowText);
    assert.ok(rowText.includes(String(reza.Code)), rowText);
    assert.equal(await row.locator('button.node-sync-log-link').count(), 1);
    assert.equal(await row.locator('button.node-sync-log-separate').count(), 1);
    assert.equal(await row.locator('button.node-sync-log-acknowledge').count(), 0, 'acknowledge is for changed documents');
    assert.equal(await row.locator('button.node-sync-log-replay').count(), 0, 'no bare replay: it would only come back');
    await row.locator('button.node-sync-log-link').scrollIntoViewIfNeeded();
    await shot(page, 'sync-log-review-item');

    await row.locator('button.node-sync-log-link').click();
    await page.waitForFunction(() => /^✔/.test(((globalThis as any).document.querySelector('#node-sync-log-result')?.textContent ?? '').trim()), undefined, { timeout: 10_000 });

    // The replay runs through the queue and the pipeline: the contact is linked and updated.
    await until('the Siagh contact to take the CRM organization\u2019s name', async () => sims.siagh.contact(reza.Code)?.Name === ORG_NAME, 30_000);
    assert.equal(sims.siagh.contact(reza.Code)!.TowardType, true, 'now an organization');
    await until('the item to leave the failed list', async () => !(await failedList(ed)).some((e) => e.event.id === org.crmId), 30_000);
    // and the dialog's list, once refreshed
    await until(
      'the row to leave the dialog',
      async () => {
        await page.locator('#node-sync-log-refresh').click();
        await page.waitForTimeout(300);
        return (await row.count()) === 0;
      },
      15_000,
    );
    assert.match(await page.locator('#node-sync-log-failed').innerText(), /No failed events/);
    await shot(page, 'sync-log-review-resolved');
    await page.locator('#node-dialog-cancel').click();
    assert.deepEqual(ed.pageErrors, []);
  });
});
