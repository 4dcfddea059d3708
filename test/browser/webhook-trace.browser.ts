/**
 * A sync seen where an integrator looks for it: a small webhook flow (http in GET
 * /webhook/crm/identity → crm-fetch → sync-mapping lookup → siagh-upsert → sync-mapping store →
 * debug msg.sync) is imported through Menu > Import and deployed with the Deploy button; the CRM
 * simulator creates a person and sends its webhook; the debug sidebar shows the trace.
 */
import assert from 'node:assert/strict';
import { seedCrmIdentities } from '../../sim/seed';
import {
  CRM_USER,
  Editor,
  Page,
  SIAGH_USER,
  Sims,
  debugMessages,
  deploy,
  editorSession,
  importText,
  invalidNodes,
  runtimeUnderTest,
  shot,
  showDebugSidebar,
  showWorkspace,
  until,
} from '../helpers/browser';

function webhookFlow(sims: Sims): unknown[] {
  const z = 'trace-tab';
  const at = (x: number, y: number) => ({ z, x, y });
  return [
    { id: z, type: 'tab', label: 'webhook trace', disabled: false, info: '' },
    { id: 'tr-in', type: 'http in', ...at(170, 80), name: '', url: '/webhook/crm/identity', method: 'get', upload: false, swaggerDoc: '', wires: [['tr-res', 'tr-fetch']] },
    { id: 'tr-res', type: 'http response', ...at(420, 40), name: 'ack', statusCode: '200', headers: {}, wires: [] },
    { id: 'tr-fetch', type: 'crm-fetch', ...at(420, 120), name: '', crm: 'tr-crm', what: 'identity', searchOutput: 'each', pageSize: 200, wires: [['tr-lookup']] },
    { id: 'tr-lookup', type: 'sync-mapping', ...at(620, 120), name: '', file: '', operation: 'lookup', entityType: 'auto', claim: true, leaseSeconds: 60, waitSeconds: 300, source: '', wires: [['tr-upsert']] },
    { id: 'tr-upsert', type: 'siagh-upsert', ...at(820, 120), name: '', siagh: 'tr-siagh', mode: 'auto', emptyPolicy: 'keep', wires: [['tr-store']] },
    { id: 'tr-store', type: 'sync-mapping', ...at(1020, 120), name: '', file: '', operation: 'store', entityType: 'auto', claim: true, leaseSeconds: 60, waitSeconds: 300, source: 'webhook', wires: [['tr-debug']] },
    { id: 'tr-debug', type: 'debug', ...at(1200, 120), name: 'sync trace', active: true, tosidebar: true, console: false, tostatus: false, complete: 'sync', targetType: 'msg', statusVal: '', statusType: 'auto', wires: [] },
    { id: 'tr-catch', type: 'catch', ...at(620, 220), name: '', scope: null, uncaught: false, wires: [['tr-failed']] },
    { id: 'tr-failed', type: 'debug', ...at(820, 220), name: 'failed', active: true, tosidebar: true, console: false, tostatus: false, complete: 'error', targetType: 'msg', statusVal: '', statusType: 'auto', wires: [] },
    { id: 'tr-crm', type: 'crm-config', name: 'CRM sim', baseUrl: sims.crm.url, timeout: 10, concurrency: 4, ca: '', credentials: { username: CRM_USER.username, password: CRM_USER.password } },
    {
      id: 'tr-siagh',
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

/** Expand the newest debug message's top-level object, so its text shows every field. */
async function expandLast(page: Page): Promise<void> {
  const last = page.locator('.red-ui-debug-content .red-ui-debug-msg').last();
  await last.locator('.red-ui-debug-msg-top-level.collapsed > .red-ui-debug-msg-row.red-ui-debug-msg-expandable').click();
  await last.locator('.red-ui-debug-msg-top-level:not(.collapsed)').waitFor();
}

describe(`browser: a webhook's sync trace in the debug sidebar (${runtimeUnderTest().label})`, function () {
  this.timeout(60_000);
  let sims: Sims;
  let ed: Editor;
  let page: Page;

  editorSession({}, (s) => ({ sims, ed, page } = s));

  it('imports and deploys the webhook flow, then shows the trace of a CRM person synced to Siagh', async () => {
    await importText(page, JSON.stringify(webhookFlow(sims)));
    await showWorkspace(page, 'trace-tab');
    assert.deepEqual(await invalidNodes(page), []);
    assert.match(await deploy(page), /Successfully deployed/);
    await showDebugSidebar(page);

    // The CRM calls the flow, as the real one does after a save (GET ?event=&id=&type=&subtype=).
    sims.crm.setWebhooks({ urls: { Identity: `${ed.red.url}/webhook/crm/identity` }, enabled: true });
    const person = seedCrmIdentities(20, { seed: 11 }).find((i) => i.kind === 'person')!;
    const { kind: _kind, ...fields } = person;
    const rec = sims.crm.addPerson(fields);
    await sims.crm.flushWebhooks();
    const delivery = sims.crm.webhookLog().at(-1)!;
    assert.equal(delivery.id, rec.crmId);
    assert.equal(delivery.status, 200, 'the flow answered the webhook');

    const texts = await until('a message in the debug sidebar', async () => {
      const m = await debugMessages(page);
      return m.length ? m : undefined;
    }, 20_000);
    assert.equal(texts.length, 1, `one message, not a failure: ${texts.join('\n---\n')}`);
    await expandLast(page);
    const text = (await debugMessages(page)).at(-1)!;
    await shot(page, 'debug-sidebar-sync-trace');

    const contact = sims.siagh.contacts().find((c) => (c as { tmpid?: string | null }).tmpid === rec.crmId) ?? sims.siagh.contacts().at(-1)!;
    assert.ok(contact, 'Siagh has the contact');
    assert.match(text, /sync trace/, 'the debug node\'s name');
    assert.match(text, /msg\.sync/);
    assert.ok(text.includes(rec.crmId), `the trace names the CRM id:\n${text}`);
    assert.ok(text.includes(String(contact.Code)), `the trace names the Siagh code ${contact.Code}:\n${text}`);
    // With a plain http-in (no crm-webhook node) the trace has no trigger; the query's event is kept.
    assert.match(text, /entity: "person"/, text);
    assert.match(text, /event: "Insert"/, text);
    assert.match(text, /action: "created"/, text);
    assert.match(text, new RegExp(`siaghCode: "${contact.Code}"`), text);
    assert.match(text, /warnings: array\[0\]/, 'no warnings');
    assert.doesNotMatch(text, new RegExp(`${CRM_USER.password}|${SIAGH_USER.Password}`));
    assert.deepEqual(ed.pageErrors, []);
  });
});
