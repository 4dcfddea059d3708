/**
 * The browser tests' harness: the real Node-RED editor in headless Debian Chromium.
 *
 * - The package is packed (`npm pack`) from the compiled output this file belongs to and installed
 *   into a fresh user dir with the Palette Manager's npm flags (once per process; every editor
 *   gets its own copy of that user dir).
 * - Node-RED runs as a CLI child (testkit/nodered-process.ts) with telemetry and tours off and
 *   a credentialSecret, so no modal blocks the clicks. `NR_RED_JS` (path of a node-red `red.js`) and
 *   `NR_NODE_BIN` (a node binary) run the same suite on another Node-RED, e.g. 5 on Node 22
 *   (scripts/nr5-setup.sh prints both).
 * - Chromium is Debian's `/usr/bin/chromium` (override: `CHROMIUM_BIN`), driven by playwright-core;
 *   no browser is downloaded. scripts/browser-setup.sh installs it.
 * - Screenshots go to `<repo>/test-output/screenshots/` (git-ignored).
 *
 * Code passed to `page.evaluate` runs in the browser; it is written against `any` because the
 * project compiles without the DOM library.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, Browser, BrowserContext, Page } from 'playwright-core';
import { CrmSim } from '../../sim/crm-sim';
import { SiaghSim } from '../../sim/siagh-sim';
import { NodeRedProcess, startNodeRed, writeSettings } from './nodered-process';

export type { Page } from 'playwright-core';

export const PKG_NAME = 'node-red-contrib-siagh-sync';
/** The four nodes the suite checks field by field (every other palette type gets the generic checks). */
export const DETAILED_TYPES = ['crm-fetch', 'siagh-upsert', 'sync-mapping', 'siagh-import'];
export const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-dev-shm-usage',
];

export const SIAGH_USER = { UserName: 'مدیر سیستم', Password: 'siagh-secret-pass' };
export const CRM_USER = { username: 'api-user', password: 'crm-secret-pass' };

/** The compiled output root (dist/ or a BUILD_OUT folder): holds nodes/, lib/, test/. */
const OUT = path.resolve(__dirname, '..', '..');

function isOurPackageDir(dir: string): boolean {
  try {
    return JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')).name === PKG_NAME;
  } catch {
    return false;
  }
}

/** The repository root: above the compiled output when it is dist/, else the working directory. */
export function repoRoot(): string {
  for (let d = OUT; ; d = path.dirname(d)) {
    if (isOurPackageDir(d)) return d;
    if (path.dirname(d) === d) break;
  }
  if (isOurPackageDir(process.cwd())) return process.cwd();
  throw new Error(`Cannot find the ${PKG_NAME} repository from ${OUT} or ${process.cwd()}; run mocha from the repository root.`);
}

/**
 * Our node types from package.json's node sets, in that order, split by the `category` their
 * editor .html registers ('config' or a palette category) and with their paletteLabel.
 */
export function nodeTypes(): { palette: string[]; config: string[]; paletteLabel: Record<string, string> } {
  const root = repoRoot();
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { 'node-red': { nodes: Record<string, string> } };
  const palette: string[] = [];
  const config: string[] = [];
  const paletteLabel: Record<string, string> = {};
  for (const type of Object.keys(pkg['node-red'].nodes)) {
    const html = fs.readFileSync(path.join(root, 'nodes', type, `${type}.html`), 'utf8');
    if (/category:\s*['"]config['"]/.test(html)) config.push(type);
    else palette.push(type);
    const m = /paletteLabel:\s*['"]([^'"]+)['"]/.exec(html);
    paletteLabel[type] = m ? m[1] : type;
  }
  return { palette, config, paletteLabel };
}

export function screenshotDir(): string {
  const dir = path.join(repoRoot(), 'test-output', 'screenshots');
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

/** Which Node-RED/Node this run uses (NR_RED_JS / NR_NODE_BIN, else the node-red dev dependency). */
export function runtimeUnderTest(): { redJs: string; nodeBin: string; label: string } {
  const redJs = process.env.NR_RED_JS || require.resolve('node-red/red.js');
  const nodeBin = process.env.NR_NODE_BIN || process.execPath;
  let version = '?';
  try {
    version = JSON.parse(fs.readFileSync(path.join(path.dirname(redJs), 'package.json'), 'utf8')).version;
  } catch {
    /* unknown */
  }
  const nodeVersion = nodeBin === process.execPath ? process.version : execFileSync(nodeBin, ['--version'], { encoding: 'utf8' }).trim();
  return { redJs, nodeBin, label: `Node-RED ${version} on Node ${nodeVersion}` };
}

// ---------------------------------------------------------------------------------------------
// The package: packed once per process from the compiled output, installed into a template dir.

let templateUserDir: Promise<string> | undefined;
const tmpRoots: string[] = [];
process.once('exit', () => {
  for (const d of tmpRoots) fs.rmSync(d, { recursive: true, force: true });
});

/**
 * Stage package.json and the non-dist `files` of the repository with this compiled output as
 * dist/, then `npm pack` it: the tarball is what the Palette Manager would get, built from the
 * code these tests were compiled with (not whatever is in the shared dist/ at the moment).
 */
export function packTarball(destDir: string): string {
  const root = repoRoot();
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { files: string[] };
  const stage = path.join(destDir, 'stage');
  fs.mkdirSync(stage, { recursive: true });
  fs.copyFileSync(path.join(root, 'package.json'), path.join(stage, 'package.json'));
  for (const entry of pkg.files) {
    const clean = entry.replace(/\/$/, '');
    if (clean === 'dist' || clean.startsWith('dist/')) continue;
    const src = path.join(root, clean);
    if (fs.existsSync(src)) fs.cpSync(src, path.join(stage, clean), { recursive: true });
  }
  for (const sub of ['nodes', 'lib']) {
    fs.cpSync(path.join(OUT, sub), path.join(stage, 'dist', sub), { recursive: true, filter: (p) => !p.endsWith('.map') });
  }
  const out = execFileSync('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', destDir], { cwd: stage, encoding: 'utf8' });
  return path.join(destDir, JSON.parse(out)[0].filename);
}

function makeTemplateUserDir(): Promise<string> {
  templateUserDir ??= (async () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'siagh-sync-browser-'));
    tmpRoots.push(tmp);
    const tgz = packTarball(tmp);
    const userDir = path.join(tmp, 'template-userdir');
    fs.mkdirSync(userDir);
    fs.writeFileSync(path.join(userDir, 'package.json'), JSON.stringify({ name: 'node-red-project', private: true, version: '0.0.1' }));
    execFileSync(
      'npm',
      ['install', '--no-audit', '--no-update-notifier', '--no-fund', '--save', '--save-prefix=~', '--omit=dev', '--engine-strict', '--prefer-offline', '--', tgz],
      { cwd: userDir, stdio: 'pipe' },
    );
    return userDir;
  })();
  return templateUserDir;
}

/** A fresh user dir with the package installed (a copy of the per-process template). */
export async function freshUserDir(): Promise<string> {
  const template = await makeTemplateUserDir();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'siagh-sync-editor-'));
  tmpRoots.push(dir);
  fs.cpSync(template, dir, { recursive: true });
  return dir;
}

// ---------------------------------------------------------------------------------------------
// Simulators

export interface Sims {
  siagh: SiaghSim;
  crm: CrmSim;
  /** Environment for the Node-RED child: the variables the shipped examples reference. */
  env: Record<string, string>;
  stop(): Promise<void>;
}

export async function startSims(): Promise<Sims> {
  const siagh = new SiaghSim({ users: [SIAGH_USER] });
  const crm = new CrmSim({ users: [CRM_USER] });
  await siagh.start();
  await crm.start();
  return {
    siagh,
    crm,
    env: {
      CRM_API_BASE_URL: crm.url,
      CRM_USERNAME: CRM_USER.username,
      CRM_PASSWORD: CRM_USER.password,
      FINANCE_API_BASE_URL: siagh.url,
      FINANCE_USERNAME: SIAGH_USER.UserName,
      FINANCE_PASSWORD: SIAGH_USER.Password,
    },
    stop: async () => void (await Promise.all([siagh.stop(), crm.stop()])),
  };
}

// ---------------------------------------------------------------------------------------------
// Browser and editor

let browserP: Promise<Browser> | undefined;
export function browser(opts: { lang?: string } = {}): Promise<Browser> {
  if (opts.lang) return launchBrowser(opts.lang);
  browserP ??= launchBrowser();
  return browserP;
}

async function launchBrowser(lang?: string): Promise<Browser> {
  const executablePath = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
  if (!fs.existsSync(executablePath)) {
    throw new Error(`${executablePath} is missing: run scripts/browser-setup.sh (apt-get install chromium) or set CHROMIUM_BIN.`);
  }
  return chromium.launch({ executablePath, headless: true, args: [...CHROMIUM_FLAGS, ...(lang ? [`--lang=${lang}`] : [])] });
}

export async function closeSharedBrowser(): Promise<void> {
  const b = browserP;
  browserP = undefined;
  if (b) await (await b).close();
}

export interface Editor {
  red: NodeRedProcess;
  userDir: string;
  context: BrowserContext;
  page: Page;
  /** Uncaught page errors and console errors (script errors) seen so far. */
  pageErrors: string[];
  /** Requests that failed or were answered with an HTTP error (Chromium's "Failed to load resource"). */
  failedResources: string[];
  /** Requests to anything but loopback, refused (the editor should make none). */
  blockedRequests: string[];
  /** Reload the editor page (e.g. after a deploy through the Admin API) and wait until it is ready. */
  reload(): Promise<void>;
  close(): Promise<void>;
}

/** What a browser test file works with: both simulators and an open editor. */
export interface EditorSession {
  sims: Sims;
  ed: Editor;
  page: Page;
}

/**
 * Mocha hooks for one describe: start both simulators and open an editor before its tests (with
 * the simulators' environment when `withEnv`), close everything after. `ready` receives the
 * session once open, for the describe's own variables.
 */
export function editorSession(opts: { withEnv?: boolean; lang?: string }, ready: (s: EditorSession) => void): void {
  let s: Partial<EditorSession> = {};
  before(async function () {
    this.timeout(240_000);
    s.sims = await startSims();
    s.ed = await openEditor({ ...(opts.withEnv ? { env: s.sims.env } : {}), ...(opts.lang ? { lang: opts.lang } : {}) });
    s.page = s.ed.page;
    ready(s as EditorSession);
  });
  after(async () => {
    await s.ed?.close();
    await closeSharedBrowser();
    await s.sims?.stop();
    s = {};
  });
}

/**
 * Node-RED with the package in a fresh user dir and the editor open in a new browser context.
 * `env` reaches the Node-RED child (e.g. the simulators' URLs for ${ENV} references); `lang` sets
 * the browser's locale (Chromium `--lang` and the context locale, i.e. navigator.language).
 */
export async function openEditor(opts: { env?: Record<string, string>; lang?: string; flows?: unknown[]; settings?: Record<string, unknown> } = {}): Promise<Editor> {
  const userDir = await freshUserDir();
  if (opts.flows) fs.writeFileSync(path.join(userDir, 'flows.json'), JSON.stringify(opts.flows, null, 2));
  const rt = runtimeUnderTest();
  const red = await startNodeRed({
    userDir,
    settingsFile: writeSettings(userDir, {
      logging: { console: { level: 'info', metrics: false, audit: false } },
      // No tours (their modal blocks clicks) and no Flow Library catalogue fetch (no outside traffic).
      editorTheme: { tours: false, palette: { catalogues: [] } },
      ...opts.settings,
    }),
    env: opts.env,
    redJs: rt.redJs,
    nodeBin: rt.nodeBin,
  });
  const b = await browser(opts.lang ? { lang: opts.lang } : {});
  const context = await b.newContext({ viewport: { width: 1400, height: 900 }, locale: opts.lang ?? 'en-US' });
  const blockedRequests: string[] = [];
  // The editor must work offline: anything not on loopback is refused and recorded.
  await context.route(/^(?![a-z]+:\/\/(127\.0\.0\.1|localhost)[:/])[a-z]+:\/\//i, (route) => {
    blockedRequests.push(route.request().url());
    return route.abort();
  });
  const page = await context.newPage();
  const pageErrors: string[] = [];
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  const failedResources: string[] = [];
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    const line = m.text() + (m.location()?.url ? ` (${m.location().url})` : '');
    // An HTTP error answer is logged by Chromium as "Failed to load resource"; kept apart from script errors.
    (/^Failed to load resource/.test(m.text()) ? failedResources : pageErrors).push(line);
  });
  page.on('requestfailed', (r) => failedResources.push(`request failed: ${r.url()} ${r.failure()?.errorText ?? ''}`));
  const ready = async () => {
    await page.waitForFunction(
      (types: string[]) => {
        const R = (globalThis as any).RED;
        return !!(
          R &&
          types.length > 0 &&
          R.nodes &&
          types.every((t) => R.nodes.getType(t)) &&
          (globalThis as any).document.querySelector('.red-ui-palette-node[data-palette-type="crm-fetch"]') &&
          // The flows are loaded (an empty deployment gets its default tab then).
          R.workspaces.count() > 0 &&
          R.workspaces.active()
        );
      },
      nodeTypes().palette,
      { timeout: 30_000 },
    );
    // The loading shade must be gone before clicks land.
    await page.waitForSelector('#red-ui-main-container', { state: 'visible' });
  };
  await page.goto(red.url + '/', { waitUntil: 'domcontentloaded' });
  await ready();
  return {
    red,
    userDir,
    context,
    page,
    pageErrors,
    failedResources,
    blockedRequests,
    reload: async () => {
      // A dirty workspace makes the editor ask "leave the page?", which would cancel the reload.
      await page.evaluate(() => {
        const w = globalThis as any;
        w.RED.nodes.dirty(false);
        w.onbeforeunload = null;
        w.$(w).off('beforeunload');
      });
      await page.reload({ waitUntil: 'domcontentloaded' });
      await ready();
    },
    close: async () => {
      await context.close().catch(() => undefined);
      if (opts.lang) await b.close().catch(() => undefined);
      await red.stop();
    },
  };
}

/** Save a screenshot as test-output/screenshots/<name>.png and return its path. */
export async function shot(page: Page, name: string, selector?: string): Promise<string> {
  const file = path.join(screenshotDir(), `${runtimeTag()}${name}.png`);
  if (selector) await page.locator(selector).first().screenshot({ path: file });
  else await page.screenshot({ path: file });
  return file;
}

/** Screenshots of another runtime (NR_RED_JS) get its major version as a prefix, e.g. `nr5-`. */
function runtimeTag(): string {
  if (!process.env.NR_RED_JS) return '';
  const m = /^Node-RED (\d+)\./.exec(runtimeUnderTest().label);
  return `nr${m ? m[1] : 'x'}-`;
}

// ---------------------------------------------------------------------------------------------
// Editor actions

/** Drag a node type from the palette onto the workspace at (x, y) of the chart; returns the new node's id. */
export async function dragFromPalette(page: Page, type: string, at: { x: number; y: number }): Promise<string> {
  const before: string[] = await page.evaluate((t: string) => {
    const out: string[] = [];
    (globalThis as any).RED.nodes.eachNode((n: any) => {
      if (n.type === t) out.push(n.id);
    });
    return out;
  }, type);
  const item = page.locator(`.red-ui-palette-node[data-palette-type="${type}"]`);
  await item.scrollIntoViewIfNeeded();
  const src = await item.boundingBox();
  const chart = await page.locator('#red-ui-workspace-chart').boundingBox();
  if (!src || !chart) throw new Error(`palette node ${type} or the workspace is not visible`);
  await page.mouse.move(src.x + src.width / 2, src.y + src.height / 2);
  await page.mouse.down();
  // jQuery UI draggable needs real moves (with a few intermediate steps) to start and to hit the droppable.
  await page.mouse.move(src.x + src.width / 2 + 20, src.y + src.height / 2 + 5, { steps: 4 });
  await page.mouse.move(chart.x + at.x, chart.y + at.y, { steps: 12 });
  await page.mouse.up();
  const id = await page.waitForFunction(
    ({ t, known }: { t: string; known: string[] }) => {
      let found: string | undefined;
      (globalThis as any).RED.nodes.eachNode((n: any) => {
        if (n.type === t && known.indexOf(n.id) < 0) found = n.id;
      });
      return found;
    },
    { t: type, known: before },
    { timeout: 5000 },
  );
  return (await id.jsonValue()) as string;
}

/** Double-click a workspace node to open its edit tray; resolves when the tray is open. */
export async function openNodeDialog(page: Page, id: string): Promise<void> {
  await page.locator(`#red-ui-workspace-chart g.red-ui-flow-node-group[id="${id}"] rect.red-ui-flow-node`).dblclick();
  await page.waitForSelector('#node-dialog-ok', { state: 'visible' });
  await settleTray(page);
}

/** Wait for the tray's open animation to end (the editor animates the tray's position). */
export async function settleTray(page: Page): Promise<void> {
  await page.waitForFunction(() => {
    const $ = (globalThis as any).$;
    return $('.red-ui-tray:animated').length === 0 && $('.red-ui-tray').length > 0;
  });
  await page.waitForTimeout(150);
}

/** Number of open trays (edit dialogs stacked: node editor, config-node editor, …). */
export async function trayCount(page: Page): Promise<number> {
  return page.locator('.red-ui-tray').count();
}

/** Whether an input carries the editor's red validation mark. */
export async function hasError(page: Page, selector: string): Promise<boolean> {
  return page.locator(selector).evaluate((el: any) => el.classList.contains('input-error'));
}

/** Replace an input's value as a user would (select all, type, leave the field). */
export async function fill(page: Page, selector: string, value: string): Promise<void> {
  const loc = page.locator(selector);
  await loc.fill(value);
  await loc.dispatchEvent('change');
  await loc.press('Tab');
}

/**
 * Click Deploy and return the text of the notification that answers it: "Successfully deployed"
 * (then the workspace is clean), or whatever the editor says instead (an error, or the "not
 * properly configured" confirmation, which is cancelled so it cannot block later clicks).
 */
export async function deploy(page: Page): Promise<string> {
  await dismissNotifications(page);
  await page.locator('#red-ui-header-button-deploy').click();
  const note = page.locator('.red-ui-notification').first();
  await note.waitFor({ state: 'visible', timeout: 15_000 });
  const text = (await note.innerText()).trim();
  if (/Successfully deployed/i.test(text)) {
    await page.waitForFunction(() => !(globalThis as any).RED.nodes.dirty(), undefined, { timeout: 15_000 });
  } else {
    const cancel = note.locator('button', { hasText: /cancel/i });
    if (await cancel.count()) await cancel.first().click();
  }
  return text;
}

/** Close every notification so it does not cover buttons. */
export async function dismissNotifications(page: Page): Promise<void> {
  // Through each notification's own close(), then wait until its slide-up has removed it: removing
  // the element at once makes the editor's slide-up callback throw "Cannot read properties of
  // null (reading 'removeChild')" in the page a moment later.
  await page.evaluate(() => {
    const $ = (globalThis as any).$;
    $('.red-ui-notification').each(function (this: any) {
      if (this.close) this.close();
      else $(this).remove();
    });
  });
  await page.waitForFunction(() => (globalThis as any).$('.red-ui-notification').length === 0, undefined, { timeout: 5000 });
}

/** Open the debug sidebar tab. */
export async function showDebugSidebar(page: Page): Promise<void> {
  await page.evaluate(() => (globalThis as any).RED.sidebar.show('debug'));
  await page.waitForSelector('.red-ui-debug-content', { state: 'visible' });
}

/** The debug sidebar's messages as text (name line + body), newest last. */
export async function debugMessages(page: Page): Promise<string[]> {
  return page.locator('.red-ui-debug-content .red-ui-debug-msg').allInnerTexts();
}

/** Deploy a flow through the Admin API (full deployment, credentials carried inside nodes). */
export async function deployViaApi(url: string, flows: unknown[]): Promise<void> {
  const res = await fetch(url + '/flows', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'Node-RED-Deployment-Type': 'full' },
    body: JSON.stringify(flows),
  });
  if (!res.ok) throw new Error(`POST /flows: HTTP ${res.status} ${await res.text()}`);
}

/** Poll until a condition holds (an async predicate), or fail naming what was awaited. */
export async function until<T>(what: string, probe: () => Promise<T | undefined | false>, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Show a flow tab. */
export async function showWorkspace(page: Page, id: string): Promise<void> {
  await page.evaluate((w: string) => (globalThis as any).RED.workspaces.show(w), id);
  await page.waitForTimeout(200);
}

/** Types in the workspace that the editor does not know (shown as "unknown" nodes). */
export async function unknownTypes(page: Page): Promise<string[]> {
  return page.evaluate(() => {
    const R = (globalThis as any).RED;
    const out = new Set<string>();
    const check = (n: any) => {
      if (!R.nodes.getType(n.type) && n.type !== 'tab' && n.type !== 'group' && n.type !== 'junction' && n.type !== 'global-config') out.add(n.type);
    };
    R.nodes.eachNode(check);
    R.nodes.eachConfig(check);
    return [...out];
  });
}

/** Nodes the editor marks invalid (red triangle), with the properties it complains about. */
export async function invalidNodes(page: Page): Promise<string[]> {
  return page.evaluate(() => {
    const R = (globalThis as any).RED;
    const out: string[] = [];
    const check = (n: any) => {
      if (n.valid === false) out.push(`${n.type} ${n.id}: ${JSON.stringify(n.validationErrors ?? [])}`);
    };
    R.nodes.eachNode(check);
    R.nodes.eachConfig(check);
    return out;
  });
}

/** Ids of the flow tabs, in order. */
export async function workspaceIds(page: Page): Promise<string[]> {
  return page.evaluate(() => {
    const ids: string[] = [];
    (globalThis as any).RED.nodes.eachWorkspace((w: any) => ids.push(w.id));
    return ids;
  });
}

/** Open Menu > Import (the editor's own menu, as a user would). */
export async function openImportDialog(page: Page): Promise<void> {
  await page.locator('#red-ui-header-button-sidemenu').click();
  await page.locator('#menu-item-import').click();
  await page.locator('#red-ui-clipboard-dialog').waitFor({ state: 'visible' });
}

/** The visible labels of the Import > Examples tree. */
export async function exampleTreeLabels(page: Page): Promise<string[]> {
  return page.locator('#red-ui-clipboard-dialog-import-tab-examples .red-ui-treeList-label:visible').allInnerTexts();
}

/** In the open Import dialog: Examples tab, expand the path (module, folders …), select the entry. */
export async function selectExample(page: Page, pathParts: string[]): Promise<void> {
  await page.locator('#red-ui-tab-red-ui-clipboard-dialog-import-tab-examples a').click();
  const tab = page.locator('#red-ui-clipboard-dialog-import-tab-examples');
  for (const part of pathParts) {
    const label = tab.locator('.red-ui-treeList-label:visible').filter({ has: page.locator('.red-ui-treeList-label-text', { hasText: new RegExp(`^${part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`) }) });
    await label.first().waitFor({ state: 'visible', timeout: 5000 });
    // Folders expand on click; an entry is selected (its flow preview loads).
    const expanded = await label.first().evaluate((el: any) => el.parentElement?.classList.contains('expanded'));
    if (!expanded) await label.first().click();
  }
}

/** Import JSON text through Menu > Import > Clipboard, into a new flow when the JSON has no tab. */
export async function importText(page: Page, json: string): Promise<void> {
  await openImportDialog(page);
  await page.locator('#red-ui-tab-red-ui-clipboard-dialog-import-tab-clipboard a').click();
  const text = page.locator('#red-ui-clipboard-dialog-import-text');
  await text.fill(json);
  // The dialog validates the JSON on keyup/paste, then enables Import.
  await text.press('End');
  await page.locator('#red-ui-clipboard-dialog-ok').click();
  await page.locator('#red-ui-clipboard-dialog').waitFor({ state: 'hidden' });
}
