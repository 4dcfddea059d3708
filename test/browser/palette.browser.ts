/**
 * Palette Manager round trip, as an integrator would do it by hand: the packed tarball (what
 * `npm pack` ships) is uploaded through Menu > Manage palette > Install > upload into a Node-RED
 * whose user dir is fresh and empty (the package is not preinstalled, unlike openEditor). Node-RED
 * runs `npm install` of it in the user dir (dependencies come from the npm registry), and the
 * nodes must appear in the palette and in GET /nodes without a restart. Then Nodes > remove
 * uninstalls it: the palette, GET /nodes, <userDir>/node_modules and <userDir>/package.json are
 * clean again. Real Node-RED CLI child, real Chromium, real npm, real files.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { BrowserContext } from 'playwright-core';
import { PKG_NAME, Page, browser, closeSharedBrowser, dismissNotifications, nodeTypes, packTarball, repoRoot, runtimeUnderTest, shot, until } from '../helpers/browser';
import { NodeRedProcess, startNodeRed, writeSettings } from '../helpers/nodered-process';

/** What GET /nodes (Accept: application/json) answers: one entry per node set. */
interface NodeSetInfo {
  id: string;
  name: string;
  types: string[];
  enabled: boolean;
  module: string;
  version?: string;
  err?: unknown;
}

/** npm install of the tarball and its dependencies from the registry, then the load: generous. */
const INSTALL_MS = 180_000;

async function nodeList(url: string): Promise<NodeSetInfo[]> {
  const res = await fetch(url + '/nodes', { headers: { Accept: 'application/json' } });
  assert.equal(res.status, 200, 'GET /nodes');
  return (await res.json()) as NodeSetInfo[];
}

/** Our types the editor's palette shows, per palette category title. */
async function paletteByCategory(page: Page, types: string[]): Promise<Record<string, string[]>> {
  return page.evaluate((ts: string[]) => {
    const doc = (globalThis as any).document;
    const found: Record<string, string[]> = {};
    for (const n of Array.from(doc.querySelectorAll('.red-ui-palette-node[data-palette-type]')) as any[]) {
      const t = n.getAttribute('data-palette-type');
      if (!ts.includes(t)) continue;
      const title = n.closest('.red-ui-palette-category')?.querySelector('.red-ui-palette-header')?.textContent.trim() ?? '?';
      (found[title] ??= []).push(t);
    }
    return found;
  }, types);
}

/** Our types (palette and config) the editor's registry knows. */
async function registeredTypes(page: Page, types: string[]): Promise<string[]> {
  return page.evaluate((ts: string[]) => ts.filter((t) => !!(globalThis as any).RED.nodes.getType(t)), types);
}

function dependsOnUs(userDir: string): string | undefined {
  const pkg = JSON.parse(fs.readFileSync(path.join(userDir, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> };
  return pkg.dependencies?.[PKG_NAME];
}

/** Open Menu > Manage palette and wait for its tabs. */
async function openPaletteManager(page: Page): Promise<void> {
  await page.locator('#red-ui-header-button-sidemenu').click();
  await page.locator('#menu-item-edit-palette').click();
  await page.locator('#red-ui-palette-editor').waitFor({ state: 'visible' });
}

/** Close the User Settings tray (its Close button) and wait until the editor takes clicks again. */
async function closePaletteManager(page: Page): Promise<void> {
  await page.locator('.red-ui-tray #node-dialog-ok').click();
  await page.locator('#red-ui-palette-editor').waitFor({ state: 'detached', timeout: 10_000 });
  await page.waitForFunction(() => (globalThis as any).$('.red-ui-tray').length === 0 && !(globalThis as any).$('#red-ui-header-shade').is(':visible'), undefined, { timeout: 10_000 });
}

describe(`browser: Palette Manager uploads the packed tarball into a fresh user dir, shows the nodes without a restart, and removes them cleanly (${runtimeUnderTest().label})`, function () {
  this.timeout(60_000);
  const { palette, config } = nodeTypes();
  const ourTypes = [...palette, ...config];
  const pkg = JSON.parse(fs.readFileSync(path.join(repoRoot(), 'package.json'), 'utf8')) as {
    version: string;
    dependencies: Record<string, string>;
    'node-red': { nodes: Record<string, string> };
  };
  const sets = Object.keys(pkg['node-red'].nodes);
  let tmp = '';
  let userDir = '';
  let tgz = '';
  let red: NodeRedProcess | undefined;
  let context: BrowserContext | undefined;
  let page: Page;
  const pageErrors: string[] = [];
  const blockedRequests: string[] = [];
  let pid: number | undefined;

  /** Node-RED's own log, appended to assertion messages. */
  const log = () => `\n--- Node-RED log ---\n${red?.log().slice(-4000) ?? ''}`;

  before(async function () {
    this.timeout(120_000);
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'siagh-sync-palette-'));
    tgz = packTarball(tmp);
    // Empty: no package.json, no node_modules; Node-RED creates what it needs.
    userDir = path.join(tmp, 'userdir');
    fs.mkdirSync(userDir);
    const rt = runtimeUnderTest();
    red = await startNodeRed({
      userDir,
      settingsFile: writeSettings(userDir, {
        logging: { console: { level: 'info', metrics: false, audit: false } },
        // No tours (their modal blocks clicks), no Flow Library catalogue fetch (the browser stays on loopback).
        editorTheme: { tours: false, palette: { catalogues: [] } },
        // Installing and uploading are Node-RED's defaults; said explicitly here. (editorTheme.palette.upload
        // is the deprecated spelling: Node-RED 4.1/5 warn about it and read externalModules.palette.allowUpload.)
        externalModules: { palette: { allowInstall: true, allowUpload: true } },
      }),
      redJs: rt.redJs,
      nodeBin: rt.nodeBin,
    });
    pid = red.child.pid;
    const b = await browser();
    context = await b.newContext({ viewport: { width: 1400, height: 900 }, locale: 'en-US' });
    await context.route(/^(?![a-z]+:\/\/(127\.0\.0\.1|localhost)[:/])[a-z]+:\/\//i, (route) => {
      blockedRequests.push(route.request().url());
      return route.abort();
    });
    page = await context.newPage();
    page.on('pageerror', (e) => pageErrors.push(e.stack ?? String(e)));
    page.on('console', (m) => {
      if (m.type() === 'error' && !/^Failed to load resource/.test(m.text())) pageErrors.push(m.text());
    });
    await page.goto(red.url + '/', { waitUntil: 'domcontentloaded' });
    await page.waitForFunction(
      () => {
        const R = (globalThis as any).RED;
        return !!(R && R.nodes && R.nodes.getType('inject') && (globalThis as any).document.querySelector('.red-ui-palette-node[data-palette-type="inject"]') && R.workspaces.count() > 0 && R.workspaces.active());
      },
      undefined,
      { timeout: 30_000 },
    );
    await page.waitForSelector('#red-ui-main-container', { state: 'visible' });
  });

  after(async () => {
    await context?.close().catch(() => undefined);
    await closeSharedBrowser();
    await red?.stop();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('starts on a fresh user dir that does not have the package', async () => {
    assert.ok(fs.statSync(tgz).size > 0, `the packed tarball ${tgz}`);
    assert.equal(path.basename(tgz), `${PKG_NAME}-${pkg.version}.tgz`);
    assert.ok(!fs.existsSync(path.join(userDir, 'node_modules', PKG_NAME)), 'not in <userDir>/node_modules');
    if (fs.existsSync(path.join(userDir, 'package.json'))) assert.equal(dependsOnUs(userDir), undefined, '<userDir>/package.json does not depend on it');
    const list = await nodeList(red!.url);
    assert.ok(list.some((s) => s.module === 'node-red'), 'GET /nodes lists the core nodes');
    assert.deepEqual(list.filter((s) => s.module === PKG_NAME), [], 'GET /nodes does not list the package');
    assert.deepEqual(await registeredTypes(page, ourTypes), [], 'the editor knows none of its types');
    assert.deepEqual(await paletteByCategory(page, ourTypes), {}, 'the palette shows none of its types');
  });

  it('Manage palette > Install > upload of the tarball installs it: palette, GET /nodes and <userDir> have it, without a restart', async function () {
    this.timeout(INSTALL_MS + 60_000);
    await openPaletteManager(page);
    await page.locator('#red-ui-palette-editor #red-ui-tab-install a').click();
    const uploadButton = page.locator('#red-ui-palette-editor .red-ui-palette-editor-upload-button');
    await uploadButton.waitFor({ state: 'visible' });
    await shot(page, 'palette-install-tab');

    // The upload button wraps a hidden <input type=file>; choosing a file opens the upload bar.
    await uploadButton.locator('input[type="file"]').setInputFiles(tgz);
    const bar = page.locator('#red-ui-palette-editor .red-ui-palette-editor-upload');
    await bar.waitFor({ state: 'visible' });
    assert.equal((await bar.locator('.placeholder-input').innerText()).trim(), path.basename(tgz), 'the upload bar names the chosen tarball');
    await page.waitForTimeout(300); // the bar slides down
    await shot(page, 'palette-upload-confirm');

    const logStart = red!.log().length;
    const started = Date.now();
    const upload = page.waitForResponse((r) => r.request().method() === 'POST' && new URL(r.url()).pathname === '/nodes', { timeout: INSTALL_MS });
    await bar.locator('.red-ui-palette-editor-upload-buttons button.primary').click();
    const res = await upload;
    assert.equal(res.status(), 200, `POST /nodes (multipart upload): HTTP ${res.status()} ${await res.text()}${log()}`);
    const info = (await res.json()) as { name: string; version: string; nodes: NodeSetInfo[] };
    assert.equal(info.name, PKG_NAME);
    assert.equal(info.version, pkg.version);

    // The editor adds the node sets when the runtime announces them: no reload, no restart.
    await page
      .waitForFunction(
        (ts: string[]) => {
          const R = (globalThis as any).RED;
          const doc = (globalThis as any).document;
          return ts.every((t) => R.nodes.getType(t)) && ts.every((t) => doc.querySelector(`.red-ui-palette-node[data-palette-type="${t}"]`));
        },
        palette,
        { timeout: 30_000 },
      )
      .catch((e) => assert.fail(`the palette did not show ${palette.join(', ')}: ${e}${log()}`));
    console.log(`      (upload + npm install + load: ${((Date.now() - started) / 1000).toFixed(1)} s)`);
    // The nodes' notification (the console plugin gets one of its own, naming sync-console).
    const note = page.locator('.red-ui-notification', { hasText: /added to palette/i }).filter({ hasText: 'crm-fetch' });
    await note.first().waitFor({ state: 'visible', timeout: 10_000 });
    const noteText = (await note.first().innerText()).replace(/\s+/g, ' ');
    for (const t of palette) assert.ok(noteText.includes(t), `the "added to palette" notification names ${t}: ${noteText}`);
    await shot(page, 'palette-installed-notification');

    // Runtime: the same child process, started once; the install is logged, nothing failed.
    assert.equal(red!.child.exitCode, null, 'Node-RED is still running');
    assert.equal(red!.child.pid, pid, 'the same Node-RED process');
    assert.equal(red!.log().match(/Server now running/g)?.length, 1, 'Node-RED started once (no restart)');
    const installLog = red!.log().slice(logStart);
    assert.match(installLog, new RegExp(`Installing module: ${PKG_NAME}`), installLog);
    assert.match(installLog, new RegExp(`Installed module: ${PKG_NAME}`), installLog);
    assert.doesNotMatch(installLog, /\[error\]|Install failed/i, installLog);

    // GET /nodes: the module with every node set of package.json, each enabled, no load error.
    const ours = (await nodeList(red!.url)).filter((s) => s.module === PKG_NAME);
    assert.deepEqual(ours.map((s) => s.name).sort(), [...sets].sort(), 'GET /nodes lists every node set of the package');
    for (const s of ours) {
      assert.equal(s.enabled, true, `${s.id} enabled`);
      assert.equal(s.err, undefined, `${s.id} loaded without an error: ${String(s.err)}`);
      assert.equal(s.version, pkg.version, `${s.id} version`);
    }
    assert.deepEqual(ours.flatMap((s) => s.types).sort(), [...ourTypes].sort(), 'GET /nodes lists every node type of the package');

    // The palette: one category "siagh sync" with every palette type; config types registered but
    // not in the palette. (Added live, the types land in the order their node sets finish loading,
    // not always package.json's order, which a restart restores: compared as a set.)
    const cats = await paletteByCategory(page, ourTypes);
    assert.deepEqual(Object.keys(cats), ['siagh sync'], 'the palette shows the package category only');
    assert.deepEqual([...cats['siagh sync']].sort(), [...palette].sort(), 'the category holds every palette type, and no config type');
    assert.deepEqual((await registeredTypes(page, ourTypes)).sort(), [...ourTypes].sort(), 'the editor knows every type, config nodes included');
    assert.ok(await page.locator('#red-ui-palette-container-siagh_sync').isVisible(), 'the category is visible');

    // Files: the package (and its dependencies) under <userDir>/node_modules, saved in <userDir>/package.json.
    const modDir = path.join(userDir, 'node_modules', PKG_NAME);
    const installedPkg = JSON.parse(fs.readFileSync(path.join(modDir, 'package.json'), 'utf8')) as { name: string; version: string };
    assert.equal(installedPkg.name, PKG_NAME);
    assert.equal(installedPkg.version, pkg.version);
    for (const [set, js] of Object.entries(pkg['node-red'].nodes)) {
      assert.ok(fs.existsSync(path.join(modDir, js)), `${set}: ${js} installed`);
      assert.ok(fs.existsSync(path.join(modDir, js.replace(/\.js$/, '.html'))), `${set}: its editor .html installed`);
    }
    for (const dep of Object.keys(pkg.dependencies)) {
      assert.ok(fs.existsSync(path.join(userDir, 'node_modules', dep, 'package.json')), `dependency ${dep} installed from the registry`);
    }
    assert.match(dependsOnUs(userDir) ?? '', /\.tgz$/, '<userDir>/package.json depends on the uploaded tarball');

    assert.deepEqual(pageErrors, [], 'no script error in the editor while the nodes were added');
    await dismissNotifications(page);
    await closePaletteManager(page);
    await page.locator('#red-ui-palette-container-siagh_sync').scrollIntoViewIfNeeded();
    await shot(page, 'palette-installed');
    await shot(page, 'palette-installed-category', '#red-ui-palette-container-siagh_sync');
  });

  it('Manage palette > Nodes > remove uninstalls it: palette, GET /nodes, node_modules and package.json are clean', async function () {
    this.timeout(INSTALL_MS);
    assert.ok(fs.existsSync(path.join(userDir, 'node_modules', PKG_NAME)), 'installed by the previous test');
    await openPaletteManager(page);
    await page.locator('#red-ui-palette-editor #red-ui-tab-nodes a').click();
    const entry = page.locator('#red-ui-palette-module-list li').filter({ has: page.locator('.red-ui-palette-module-name span', { hasText: new RegExp(`^${PKG_NAME}$`) }) });
    await entry.first().waitFor({ state: 'visible', timeout: 10_000 });
    assert.equal(await entry.count(), 1, 'the Nodes tab lists the module once');
    assert.equal((await entry.locator('.red-ui-palette-module-version span').innerText()).trim(), pkg.version);
    const remove = entry.locator('.red-ui-palette-module-button-group a', { hasText: /^remove$/i });
    await remove.scrollIntoViewIfNeeded();
    await shot(page, 'palette-nodes-tab');
    await remove.click();
    const confirm = page.locator('.red-ui-palette-module-install-confirm-button-remove');
    await confirm.waitFor({ state: 'visible' });
    await shot(page, 'palette-remove-confirm');

    const logStart = red!.log().length;
    const started = Date.now();
    const del = page.waitForResponse((r) => r.request().method() === 'DELETE' && new URL(r.url()).pathname === `/nodes/${PKG_NAME}`, { timeout: INSTALL_MS });
    await confirm.click();
    const res = await del;
    assert.equal(res.status(), 204, `DELETE /nodes/${PKG_NAME}: HTTP ${res.status()} ${await res.text()}${log()}`);
    await page
      .waitForFunction(
        (ts: string[]) => {
          const doc = (globalThis as any).document;
          return ts.every((t) => !doc.querySelector(`.red-ui-palette-node[data-palette-type="${t}"]`));
        },
        ourTypes,
        { timeout: 30_000 },
      )
      .catch((e) => assert.fail(`the palette still shows the package's types: ${e}${log()}`));
    console.log(`      (remove + npm uninstall: ${((Date.now() - started) / 1000).toFixed(1)} s)`);
    const note = page.locator('.red-ui-notification', { hasText: /removed from palette/i });
    await note.first().waitFor({ state: 'visible', timeout: 10_000 });
    await until('the module gone from the Nodes tab', async () => (await entry.count()) === 0, 10_000);
    await shot(page, 'palette-removed-notification');

    // Runtime: still the same process; the uninstall is logged.
    assert.equal(red!.child.exitCode, null, 'Node-RED is still running');
    assert.equal(red!.log().match(/Server now running/g)?.length, 1, 'Node-RED started once (no restart)');
    const removeLog = red!.log().slice(logStart);
    assert.match(removeLog, new RegExp(`Uninstalled module: ${PKG_NAME}`), removeLog);
    assert.doesNotMatch(removeLog, /\[error\]|Uninstall failed/i, removeLog);

    assert.deepEqual((await nodeList(red!.url)).filter((s) => s.module === PKG_NAME), [], 'GET /nodes no longer lists the module');
    const mod = await fetch(`${red!.url}/nodes/${PKG_NAME}`, { headers: { Accept: 'application/json' } });
    assert.equal(mod.status, 404, `GET /nodes/${PKG_NAME} after removal`);
    assert.deepEqual(await paletteByCategory(page, ourTypes), {}, 'the palette shows none of its types');
    assert.equal(await page.locator('#red-ui-palette-container-siagh_sync').isVisible(), false, 'the emptied category is hidden');

    assert.ok(!fs.existsSync(path.join(userDir, 'node_modules', PKG_NAME)), 'the module folder is gone from <userDir>/node_modules');
    assert.equal(dependsOnUs(userDir), undefined, '<userDir>/package.json no longer depends on it');
    for (const dep of Object.keys(pkg.dependencies)) {
      assert.ok(!fs.existsSync(path.join(userDir, 'node_modules', dep)), `its dependency ${dep} is pruned too`);
    }

    assert.deepEqual(pageErrors, [], 'no script error in the editor');
    assert.deepEqual(blockedRequests, [], 'the editor made no request off loopback');
    await dismissNotifications(page);
    await closePaletteManager(page);
    await shot(page, 'palette-removed');

    // The open editor keeps the removed definitions in memory until it reloads (Node-RED's
    // registry only forgets subflow types); a reloaded editor gets none of them from the runtime.
    await page.reload({ waitUntil: 'domcontentloaded' });
    await page.waitForFunction(() => {
      const R = (globalThis as any).RED;
      return !!(R && R.nodes && R.nodes.getType('inject') && R.workspaces.count() > 0 && R.workspaces.active());
    });
    assert.deepEqual(await registeredTypes(page, ourTypes), [], 'a reloaded editor knows none of its types');
    assert.deepEqual(await paletteByCategory(page, ourTypes), {}, 'nor shows them in the palette');
    assert.deepEqual(pageErrors, [], 'no script error in the reloaded editor');
  });
});
