/**
 * The editor as an integrator meets it: the palette, dragging each node onto the workspace, its
 * edit dialog with red validation, creating the config nodes from the dialog, Test connection
 * against the simulators (unsaved values, good and bad credentials, stored credentials after a
 * deploy) and the deploy itself. Real Node-RED CLI, real Chromium, real simulators.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import {
  CRM_USER,
  DETAILED_TYPES,
  Editor,
  Page,
  SIAGH_USER,
  Sims,
  deploy,
  dragFromPalette,
  editorSession,
  fill,
  hasError,
  importText,
  invalidNodes,
  nodeTypes,
  openNodeDialog,
  runtimeUnderTest,
  settleTray,
  shot,
} from '../helpers/browser';

/** Wait for a Test connection result (✔ or ✘) and return its text. */
async function testResult(page: Page, button: string, result: string): Promise<string> {
  await page.locator(result).evaluate((el: any) => (el.textContent = ''));
  await page.locator(button).click();
  await page.waitForFunction((sel: string) => /^[✔✘]/.test((globalThis as any).document.querySelector(sel).textContent.trim()), result, { timeout: 20_000 });
  return (await page.locator(result).innerText()).trim();
}

/** Open a config node's dialog from a node dialog (pencil or +) and wait until it is ready. */
async function openConfigFrom(page: Page, button: string): Promise<void> {
  await page.locator(button).click();
  await page.locator('#node-config-input-baseUrl').waitFor({ state: 'visible' });
  await settleTray(page);
}

async function closeConfig(page: Page, nodeSelect: string): Promise<void> {
  await page.locator('#node-config-dialog-ok').click();
  await page.locator(nodeSelect).waitFor({ state: 'visible' });
  await settleTray(page);
}

async function done(page: Page): Promise<void> {
  await page.locator('#node-dialog-ok').click();
  await page.locator('#node-dialog-ok').waitFor({ state: 'detached' });
}

async function nodeLabel(page: Page, id: string): Promise<string> {
  // SVG text: textContent, not innerText.
  return ((await page.locator(`#red-ui-workspace-chart g.red-ui-flow-node-group[id="${id}"] .red-ui-flow-node-label`).textContent()) ?? '').trim();
}

describe(`browser: palette, edit dialogs, Test connection, deploy (${runtimeUnderTest().label})`, function () {
  this.timeout(60_000);
  let sims: Sims;
  let ed: Editor;
  let page: Page;
  const ids: Record<string, string> = {};
  let crmCfg = '';
  let siaghCfg = '';

  // No environment for the child: these dialogs are filled by hand.
  editorSession({}, (s) => ({ sims, ed, page } = s));

  it('the palette shows one category "siagh sync" holding every node type of the package, and no config node', async () => {
    const { palette, config, paletteLabel } = nodeTypes();
    for (const t of DETAILED_TYPES) assert.ok(palette.includes(t), `${t} is a palette node`);
    const cats = await page.evaluate((types: string[]) => {
      const doc = (globalThis as any).document;
      const found: Record<string, string[]> = {};
      for (const c of Array.from(doc.querySelectorAll('.red-ui-palette-category')) as any[]) {
        const title = c.querySelector('.red-ui-palette-header')?.textContent.trim() ?? '';
        for (const n of Array.from(c.querySelectorAll('.red-ui-palette-node')) as any[]) {
          const t = n.getAttribute('data-palette-type');
          if (types.includes(t)) (found[title] ??= []).push(t);
        }
      }
      return found;
    }, [...palette, ...config]);
    assert.deepEqual(Object.keys(cats), ['siagh sync']);
    assert.deepEqual(cats['siagh sync'], palette, 'in package.json order, config nodes not in the palette');
    const labels = await page.locator('#red-ui-palette-container-siagh_sync .red-ui-palette-label').allInnerTexts();
    assert.deepEqual(
      labels.map((l) => l.replace(/\s+/g, ' ').trim()),
      palette.map((t) => paletteLabel[t]),
    );
    await page.locator('#red-ui-palette-container-siagh_sync').scrollIntoViewIfNeeded();
    await shot(page, 'palette', '#red-ui-palette-container-siagh_sync');
  });

  it('the help of every node type follows the core layout (Inputs/Outputs/Details, or Properties/Details for config nodes)', async () => {
    const { palette, config } = nodeTypes();
    const missing: string[] = [];
    for (const t of [...palette, ...config]) {
      const headings = await page.evaluate((type: string) => {
        const w = globalThis as any;
        const help = w.$('script[data-help-name="' + type + '"]').html() || '';
        const d = w.document.createElement('div');
        d.innerHTML = help;
        return Array.from(d.querySelectorAll('h3')).map((h: any) => h.textContent.trim());
      }, t);
      const want = config.includes(t) ? ['Properties', 'Details'] : ['Inputs', 'Outputs', 'Details'];
      for (const h of want) if (!headings.includes(h)) missing.push(`${t}: ${h} (has ${headings.join(', ') || 'no help'})`);
    }
    assert.deepEqual(missing, []);
    await page.evaluate(() => (globalThis as any).RED.sidebar.help.show('siagh-upsert'));
    await page.waitForTimeout(300);
    await shot(page, 'help-siagh-upsert');
  });

  it('crm-fetch: dragged in, its dialog creates a crm-config; bad URL and out-of-range numbers show red; Test connection with unsaved values', async () => {
    ids.fetch = await dragFromPalette(page, 'crm-fetch', { x: 220, y: 100 });
    await openNodeDialog(page, ids.fetch);
    assert.equal(await hasError(page, '#node-input-crm'), true, 'no CRM connection yet: the select is red');

    await openConfigFrom(page, '#node-input-btn-crm-add');
    assert.equal(await hasError(page, '#node-config-input-baseUrl'), true, 'empty base URL is red');
    for (const bad of ['not a url', 'ftp://crm.example.com', 'http://', 'http://crm example.com']) {
      await fill(page, '#node-config-input-baseUrl', bad);
      assert.equal(await hasError(page, '#node-config-input-baseUrl'), true, `"${bad}" must be red`);
    }
    await fill(page, '#node-config-input-baseUrl', '${CRM_API_BASE_URL}');
    assert.equal(await hasError(page, '#node-config-input-baseUrl'), false, 'an ${ENV} reference is accepted');
    await fill(page, '#node-config-input-baseUrl', sims.crm.url);
    assert.equal(await hasError(page, '#node-config-input-baseUrl'), false);

    // Unreachable server.
    await fill(page, '#node-config-input-baseUrl', 'http://127.0.0.1:9');
    await fill(page, '#node-config-input-username', CRM_USER.username);
    await fill(page, '#node-config-input-password', CRM_USER.password);
    const down = await testResult(page, '#node-config-crm-test', '#node-config-crm-test-result');
    assert.match(down, /^✘/);
    assert.doesNotMatch(down, new RegExp(CRM_USER.password));

    // Bad password, typed but not saved.
    await fill(page, '#node-config-input-baseUrl', sims.crm.url);
    await fill(page, '#node-config-input-password', 'wrong-password-123');
    const bad = await testResult(page, '#node-config-crm-test', '#node-config-crm-test-result');
    assert.match(bad, /^✘ .*\[CRM_BAD_CREDENTIALS\]$/s);
    assert.doesNotMatch(bad, /wrong-password-123/);
    assert.equal(await page.locator('#node-config-crm-test-result').evaluate((el: any) => el.classList.contains('siagh-sync-bad')), true);

    await fill(page, '#node-config-input-password', CRM_USER.password);
    const good = await testResult(page, '#node-config-crm-test', '#node-config-crm-test-result');
    assert.match(good, new RegExp(`^✔ Logged in to ${sims.crm.url.replace(/[.]/g, '\\.')} as ${CRM_USER.username}`));

    // Advanced settings are folded away until asked for.
    assert.equal(await page.locator('#node-config-input-timeout').isVisible(), false, 'advanced settings start folded');
    await page.locator('#node-config-crm-advanced-toggle').click();
    for (const [sel, bad2, ok] of [
      ['#node-config-input-timeout', '0', '30'],
      ['#node-config-input-timeout', '601', '30'],
      ['#node-config-input-concurrency', '65', '4'],
      ['#node-config-input-concurrency', '2.5', '4'],
    ]) {
      await fill(page, sel, bad2);
      assert.equal(await hasError(page, sel), true, `${sel} = ${bad2} must be red`);
      await fill(page, sel, ok);
      assert.equal(await hasError(page, sel), false, `${sel} = ${ok} must pass`);
    }
    await fill(page, '#node-config-input-name', 'CRM sim');
    await shot(page, 'crm-config-dialog');
    await closeConfig(page, '#node-input-crm');

    crmCfg = await page.locator('#node-input-crm').inputValue();
    assert.ok(crmCfg && crmCfg !== '_ADD_', 'the new crm-config is selected');
    assert.equal(await hasError(page, '#node-input-crm'), false);

    // What = search shows the paging fields; page size is range-checked.
    assert.equal(await page.locator('#node-input-pageSize').isVisible(), false);
    await page.locator('#node-input-what').selectOption('search');
    assert.equal(await page.locator('#node-input-pageSize').isVisible(), true);
    for (const bad3 of ['0', '1001', 'ten']) {
      await fill(page, '#node-input-pageSize', bad3);
      assert.equal(await hasError(page, '#node-input-pageSize'), true, `page size ${bad3} must be red`);
    }
    await fill(page, '#node-input-pageSize', '100');
    assert.equal(await hasError(page, '#node-input-pageSize'), false);
    await page.locator('#node-input-what').selectOption('person');
    await shot(page, 'crm-fetch-dialog');
    await done(page);
    assert.equal(await nodeLabel(page, ids.fetch), 'crm-fetch: person');
    assert.deepEqual(await invalidNodes(page), []);
  });

  it('siagh-upsert: dragged in, its dialog creates a siagh-config; Test connection good and bad; JSON fields and numbers validated', async () => {
    ids.upsert = await dragFromPalette(page, 'siagh-upsert', { x: 220, y: 200 });
    await openNodeDialog(page, ids.upsert);
    assert.equal(await hasError(page, '#node-input-siagh'), true);
    await openConfigFrom(page, '#node-input-btn-siagh-add');

    await fill(page, '#node-config-input-baseUrl', 'siagh.local');
    assert.equal(await hasError(page, '#node-config-input-baseUrl'), true, 'a URL without scheme is red');
    await fill(page, '#node-config-input-baseUrl', sims.siagh.url);
    assert.equal(await hasError(page, '#node-config-input-baseUrl'), false);
    await fill(page, '#node-config-input-username', SIAGH_USER.UserName);
    await fill(page, '#node-config-input-password', 'not-the-password');
    const bad = await testResult(page, '#node-config-siagh-test', '#node-config-siagh-test-result');
    assert.match(bad, /^✘ /);
    assert.match(bad, /\[SIAGH_[A-Z_]+\]$/);
    assert.doesNotMatch(bad, /not-the-password/);

    await fill(page, '#node-config-input-password', SIAGH_USER.Password);
    const good = await testResult(page, '#node-config-siagh-test', '#node-config-siagh-test-result');
    assert.match(good, /^✔ Logged in to .* as مدیر سیستم · branch .* · fiscal year \d+\.$/);

    await page.locator('#node-config-siagh-advanced-toggle').click();
    for (const [sel, bad2, ok] of [
      ['#node-config-input-saveFormDataPath', 'BpmsApi/SaveFormData', '/BpmsApi/SaveFormData'],
      ['#node-config-input-indexMaxAge', '1441', '10'],
      ['#node-config-input-indexMaxAge', '-1', '0'],
      ['#node-config-input-timeout', 'abc', '30'],
    ]) {
      await fill(page, sel, bad2);
      assert.equal(await hasError(page, sel), true, `${sel} = ${bad2} must be red`);
      await fill(page, sel, ok);
      assert.equal(await hasError(page, sel), false, `${sel} = ${ok} must pass`);
    }
    await shot(page, 'siagh-config-dialog');
    await closeConfig(page, '#node-input-siagh');
    siaghCfg = await page.locator('#node-input-siagh').inputValue();
    assert.ok(siaghCfg && siaghCfg !== '_ADD_');

    await fill(page, '#node-input-productMap', '{"Product-1": 500102014');
    assert.equal(await hasError(page, '#node-input-productMap'), true, 'broken JSON is red');
    await fill(page, '#node-input-productMap', '{"Product-1": "500102014"}');
    assert.equal(await hasError(page, '#node-input-productMap'), false);

    assert.equal(await page.locator('#node-input-overrides').isVisible(), false, 'advanced settings start folded');
    await page.locator('#siagh-upsert-advanced-toggle').click();
    await fill(page, '#node-input-overrides', '["not", "an", "object"]');
    assert.equal(await hasError(page, '#node-input-overrides'), true);
    await fill(page, '#node-input-overrides', '{"gn_web_users.codeshahr": "addressContacts.0.city"}');
    assert.equal(await hasError(page, '#node-input-overrides'), false);
    await fill(page, '#node-input-cnOffset', '-5');
    assert.equal(await hasError(page, '#node-input-cnOffset'), true);
    await fill(page, '#node-input-cnOffset', '1000');
    assert.equal(await hasError(page, '#node-input-cnOffset'), false);
    await fill(page, '#node-input-tmpidKey', 'has space');
    assert.equal(await hasError(page, '#node-input-tmpidKey'), true);
    await fill(page, '#node-input-tmpidKey', 'gn_web_users.tmpid');

    await page.locator('#node-input-mode').selectOption('contact');
    assert.equal(await page.locator('#node-input-productMap').isVisible(), false, 'pre-invoice fields hide in contact mode');
    assert.equal(await page.locator('#node-input-emptyPolicy').isVisible(), true);
    await shot(page, 'siagh-upsert-dialog');
    await done(page);
    assert.equal(await nodeLabel(page, ids.upsert), 'siagh-upsert: contact');
    assert.deepEqual(await invalidNodes(page), []);
  });

  it('sync-mapping: dragged in; lease and wait seconds range-checked; the label follows the operation', async () => {
    ids.mapping = await dragFromPalette(page, 'sync-mapping', { x: 220, y: 300 });
    await openNodeDialog(page, ids.mapping);
    for (const [sel, bad, ok] of [
      ['#node-input-leaseSeconds', '0', '60'],
      ['#node-input-leaseSeconds', '3601', '60'],
      ['#node-input-waitSeconds', 'x', '300'],
    ]) {
      await fill(page, sel, bad);
      assert.equal(await hasError(page, sel), true, `${sel} = ${bad} must be red`);
      await fill(page, sel, ok);
      assert.equal(await hasError(page, sel), false);
    }
    await shot(page, 'sync-mapping-dialog');
    await page.locator('#node-input-operation').selectOption('store');
    assert.equal(await page.locator('#node-input-leaseSeconds').isVisible(), false, 'claim settings only for lookup');
    await done(page);
    assert.equal(await nodeLabel(page, ids.mapping), 'sync-mapping: store');
  });

  it('siagh-import: dragged in; the existing config nodes are offered and selected; concurrency range-checked', async () => {
    ids.import = await dragFromPalette(page, 'siagh-import', { x: 220, y: 400 });
    await openNodeDialog(page, ids.import);
    const crmOptions = await page.locator('#node-input-crm option').evaluateAll((os: any[]) => os.map((o) => o.value));
    assert.ok(crmOptions.includes(crmCfg), 'the crm-config made earlier is offered');
    if ((await page.locator('#node-input-crm').inputValue()) !== crmCfg) await page.locator('#node-input-crm').selectOption(crmCfg);
    if ((await page.locator('#node-input-siagh').inputValue()) !== siaghCfg) await page.locator('#node-input-siagh').selectOption(siaghCfg);
    assert.equal(await hasError(page, '#node-input-crm'), false);
    assert.equal(await hasError(page, '#node-input-siagh'), false);
    await fill(page, '#node-input-concurrency', '33');
    assert.equal(await hasError(page, '#node-input-concurrency'), true);
    await fill(page, '#node-input-concurrency', '8');
    assert.equal(await hasError(page, '#node-input-concurrency'), false);
    await page.locator('#node-input-dryRun').check();
    await shot(page, 'siagh-import-dialog');
    await done(page);
    assert.equal(await nodeLabel(page, ids.import), 'siagh-import (dry run)');
  });

  it('every other palette node: dragged in, its dialog opens, its config nodes are chosen, Done leaves it valid', async () => {
    const others = nodeTypes().palette.filter((t) => !DETAILED_TYPES.includes(t));
    let y = 100;
    for (const type of others) {
      const id = await dragFromPalette(page, type, { x: 520, y });
      y += 80;
      ids[type] = id;
      await openNodeDialog(page, id);
      const refs = await page.evaluate((t: string) => {
        const d = (globalThis as any).RED.nodes.getType(t).defaults;
        return Object.keys(d).filter((k) => d[k].type).map((k) => ({ prop: k, type: d[k].type as string }));
      }, type);
      for (const r of refs) {
        // The data store is optional: none chosen means the default data folder (valid, not red).
        if (r.type === 'sync-store') {
          assert.equal(await hasError(page, `#node-input-${r.prop}`), false, `${type}.${r.prop}: no data store chosen is valid`);
          continue;
        }
        const want = r.type === 'crm-config' ? crmCfg : r.type === 'siagh-config' ? siaghCfg : '';
        assert.ok(want, `${type}.${r.prop} refers to ${r.type}, which this suite does not create`);
        if ((await page.locator(`#node-input-${r.prop}`).inputValue()) !== want) await page.locator(`#node-input-${r.prop}`).selectOption(want);
        assert.equal(await hasError(page, `#node-input-${r.prop}`), false);
      }
      const red = await page.locator('#dialog-form .input-error:visible').evaluateAll((els: any[]) => els.map((e) => e.id));
      assert.deepEqual(red, [], `${type}: fields red with the defaults`);
      await shot(page, `${type}-dialog`);
      await done(page);
      const bad = (await invalidNodes(page)).filter((l) => l.includes(id));
      assert.deepEqual(bad, [], `${type} is valid with its defaults`);
    }
  });

  it('a node left without its config node is marked invalid before deploy', async () => {
    const stray = await dragFromPalette(page, 'crm-fetch', { x: 520, y: 100 });
    // A second crm-fetch with nothing chosen… unless the editor picked the only crm-config itself.
    const invalid = await invalidNodes(page);
    const strayNode = await page.evaluate((id: string) => {
      const n = (globalThis as any).RED.nodes.node(id);
      return { crm: n.crm, valid: n.valid };
    }, stray);
    if (strayNode.crm) assert.equal(strayNode.valid, true);
    else assert.ok(invalid.some((l) => l.startsWith(`crm-fetch ${stray}`)), `expected ${stray} in ${invalid}`);
    // Remove it again so the deploy below is clean.
    await page.evaluate((id: string) => {
      const R = (globalThis as any).RED;
      R.view.select({ nodes: [R.nodes.node(id)] });
      R.actions.invoke('core:delete-selection');
    }, stray);
    assert.deepEqual(await invalidNodes(page), []);
  });

  it('deploys; the flow file holds the nodes and the credentials file no secret in clear', async () => {
    const text = await deploy(page);
    assert.match(text, /Successfully deployed/);
    await shot(page, 'deployed-workspace');
    const flows = JSON.parse(fs.readFileSync(path.join(ed.userDir, 'flows.json'), 'utf8')) as Array<{ id: string; type: string }>;
    for (const t of [...nodeTypes().palette, 'crm-config', 'siagh-config']) assert.ok(flows.some((n) => n.type === t), `${t} deployed`);
    const credFile = fs.readFileSync(path.join(ed.userDir, 'flows_cred.json'), 'utf8');
    assert.doesNotMatch(credFile, new RegExp(CRM_USER.password));
    assert.doesNotMatch(credFile, new RegExp(SIAGH_USER.Password));
    const cred = (await (await fetch(`${ed.red.url}/credentials/crm-config/${crmCfg}`)).json()) as Record<string, unknown>;
    assert.deepEqual(cred, { username: CRM_USER.username, has_password: true });
    assert.doesNotMatch(ed.red.log(), /\[error\]/);
  });

  it('after deploy and a reload, the config dialogs show __PWRD__ and Test connection uses the stored secret', async () => {
    await ed.reload();
    const bodies: string[] = [];
    const onRequest = (r: { url(): string; postData(): string | null }) => {
      if (/siagh-sync\/(crm|siagh)-config\/test$/.test(r.url())) bodies.push(r.postData() ?? '');
    };
    page.on('request', onRequest);
    try {
      // CRM, through the crm-fetch node's pencil button.
      await openNodeDialog(page, ids.fetch);
      await openConfigFrom(page, '#node-input-btn-crm-edit');
      assert.equal(await page.locator('#node-config-input-password').inputValue(), '__PWRD__');
      assert.equal(await page.locator('#node-config-input-username').inputValue(), CRM_USER.username);
      const stored = await testResult(page, '#node-config-crm-test', '#node-config-crm-test-result');
      assert.match(stored, /^✔ Logged in/);
      const sent = JSON.parse(bodies.at(-1)!) as Record<string, string>;
      assert.equal(sent.password, '__PWRD__', 'the browser never had the password: the server used the stored one');
      await shot(page, 'crm-config-stored-credentials');
      // An unsaved wrong user name with the stored password fails, and says why.
      await fill(page, '#node-config-input-username', 'someone-else');
      const other = await testResult(page, '#node-config-crm-test', '#node-config-crm-test-result');
      assert.match(other, /^✘ .*\[CRM_BAD_CREDENTIALS\]$/s);
      await page.locator('#node-config-dialog-cancel').click();
      await page.locator('#node-input-crm').waitFor({ state: 'visible' });
      await settleTray(page);
      await page.locator('#node-dialog-cancel').click();
      await page.locator('#node-dialog-cancel').waitFor({ state: 'detached' });

      // Siagh, through the siagh-upsert node.
      await openNodeDialog(page, ids.upsert);
      await openConfigFrom(page, '#node-input-btn-siagh-edit');
      assert.equal(await page.locator('#node-config-input-password').inputValue(), '__PWRD__');
      const storedS = await testResult(page, '#node-config-siagh-test', '#node-config-siagh-test-result');
      assert.match(storedS, /^✔ Logged in .* as مدیر سیستم/);
      assert.equal((JSON.parse(bodies.at(-1)!) as Record<string, string>).password, '__PWRD__');
      await shot(page, 'siagh-config-stored-credentials');
      await page.locator('#node-config-dialog-cancel').click();
      await page.locator('#node-input-siagh').waitFor({ state: 'visible' });
      await settleTray(page);
      await page.locator('#node-dialog-cancel').click();
    } finally {
      page.off('request', onRequest);
    }
    const secrets = await page.evaluate(() => {
      const R = (globalThis as any).RED;
      const out: unknown[] = [];
      R.nodes.eachConfig((n: any) => out.push(n.credentials ?? null));
      return JSON.stringify(out);
    });
    assert.doesNotMatch(secrets, new RegExp(`${CRM_USER.password}|${SIAGH_USER.Password}`), 'no secret reached the browser');
    assert.deepEqual(ed.pageErrors, [], 'no script errors in the browser console');
    if (ed.failedResources.length) console.log(`      (observed HTTP errors in the browser: ${ed.failedResources.join('; ')})`);
    assert.deepEqual(ed.blockedRequests, [], 'the editor asked for nothing outside this machine');
  });

  it('a hand-written or older flow that leaves optional properties out imports without red triangles', async () => {
    const { palette } = nodeTypes();
    // Each node gets only its required properties (at their defaults) and its config references.
    const flow = await page.evaluate(
      ({ types, crm, siagh }: { types: string[]; crm: string; siagh: string }) => {
        const R = (globalThis as any).RED;
        const out: any[] = [{ id: 'min-tab', type: 'tab', label: 'minimal' }];
        types.forEach((t, i) => {
          const d = R.nodes.getType(t).defaults;
          const n: any = { id: 'min-' + t, type: t, z: 'min-tab', x: 200, y: 60 + 60 * i, wires: [] };
          for (const k of Object.keys(d)) {
            if (d[k].type === 'crm-config') n[k] = crm;
            else if (d[k].type === 'siagh-config') n[k] = siagh;
            else if (d[k].required) n[k] = d[k].value;
          }
          out.push(n);
        });
        return out;
      },
      { types: palette, crm: crmCfg, siagh: siaghCfg },
    );
    await importText(page, JSON.stringify(flow));
    const bad = (await invalidNodes(page)).filter((l) => / min-/.test(l));
    assert.deepEqual(bad, [], 'optional properties absent must not mark a node invalid (the runtime has defaults)');
  });
});
