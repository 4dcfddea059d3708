/**
 * An old flow in the editor: Node-RED starts on a user dir whose flows.json is the flows as the
 * 2026-11-28 release saved them (test/fixtures/saved-flows/release-0.json: no `version`). Opening an
 * old node's dialog shows the settings the runtime uses for it (resources/migrate.js with the tables
 * the runtime exports), Done and Deploy save them with the current version, and a node never
 * opened stays as it was saved (the runtime migrates it at every start).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { closeSharedBrowser, deploy, Editor, openEditor, openNodeDialog, Page, repoRoot, runtimeUnderTest, showWorkspace, Sims, startSims } from '../helpers/browser';

type FlowNode = Record<string, unknown> & { id: string; type: string };

async function done(page: Page): Promise<void> {
  await page.locator('#node-dialog-ok').click();
  await page.locator('#node-dialog-ok').waitFor({ state: 'detached' });
}

async function checked(page: Page, selector: string): Promise<boolean> {
  return page.locator(selector).isChecked();
}

describe(`browser: a flow saved by an older release, opened in the editor (${runtimeUnderTest().label})`, function () {
  this.timeout(60_000);
  let sims: Sims;
  let ed: Editor;
  let page: Page;
  const old = JSON.parse(fs.readFileSync(path.join(repoRoot(), 'test', 'fixtures', 'saved-flows', 'release-0.json'), 'utf8')) as FlowNode[];

  before(async function () {
    this.timeout(240_000);
    sims = await startSims();
    ed = await openEditor({ env: sims.env, flows: old });
    page = ed.page;
  });
  after(async () => {
    await ed?.close();
    await closeSharedBrowser();
    await sims?.stop();
  });

  it('the fixture is an old flow: none of our nodes has a version', () => {
    const ours = old.filter((n) => /^(crm|siagh|sync)-/.test(n.type));
    assert.ok(ours.length > 10);
    for (const n of ours) assert.equal(n.version, undefined, n.id);
  });

  it('crm-poll saved before the types setting: the dialog shows identities only, as it polls', async () => {
    await showWorkspace(page, 'poll-tab');
    await openNodeDialog(page, 'pl-poll');
    assert.deepEqual(
      [await checked(page, '#node-input-crm-poll-type-identity'), await checked(page, '#node-input-crm-poll-type-quote'), await checked(page, '#node-input-crm-poll-type-invoice')],
      [true, false, false],
    );
    await done(page);
    const n = await page.evaluate(() => {
      const x = (globalThis as any).RED.nodes.node('pl-poll');
      return { version: x.version, types: x.types, cursorName: x.cursorName };
    });
    assert.deepEqual(n, { version: 1, types: 'identity', cursorName: 'polling-sync' });
  });

  it('siagh-upsert and crm-webhook: the empty or missing settings of then shown as the values they mean', async () => {
    await showWorkspace(page, 'wh-tab');
    await openNodeDialog(page, 'wh-upsert');
    assert.equal(await page.locator('#node-input-salesCentre').inputValue(), 'auto');
    assert.equal(await page.locator('#node-input-intermediary').inputValue(), '31');
    assert.equal(await checked(page, '#node-input-addressNames'), true, 'address names: on, as a missing setting means');
    assert.equal(await page.locator('#node-input-paymentType').inputValue(), '2', 'a saved value stays');
    await done(page);
    await openNodeDialog(page, 'wh-hook-identity');
    assert.equal(await page.locator('#node-input-tokenEnv').inputValue(), 'WEBHOOK_TOKEN', 'not empty (empty turns the environment fallback off)');
    await done(page);
    assert.deepEqual(ed.pageErrors, []);
  });

  it('Deploy saves the opened nodes at the current version; a node not opened stays as saved', async () => {
    assert.match(await deploy(page), /Successfully deployed/i);
    const saved = JSON.parse(fs.readFileSync(path.join(ed.userDir, 'flows.json'), 'utf8')) as FlowNode[];
    const byId = new Map(saved.map((n) => [n.id, n]));
    assert.deepEqual([byId.get('pl-poll')?.version, byId.get('pl-poll')?.types], [1, 'identity']);
    assert.deepEqual([byId.get('wh-upsert')?.version, byId.get('wh-upsert')?.salesCentre, byId.get('wh-upsert')?.intermediary], [1, 'auto', '31']);
    assert.deepEqual([byId.get('wh-hook-identity')?.version, byId.get('wh-hook-identity')?.tokenEnv], [1, 'WEBHOOK_TOKEN']);
    assert.equal(byId.get('wh-hook-identity')?.coalesceMs, undefined, 'a removed setting is not saved');
    assert.equal(byId.get('im-run')?.version, undefined, 'not opened: left to the runtime');
    assert.doesNotMatch(ed.red.log(), /\[error\] \[(crm-|siagh-|sync-)/);
  });
});
