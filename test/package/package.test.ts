/**
 * The package as integrators get it: `npm pack` gives a tarball that installs into an empty
 * Node-RED user dir the way the Palette Manager installs it, and Node-RED 4.1 starts with the
 * five node types registered, the console plugin loaded, and no load errors.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startNodeRed, writeSettings, NodeRedProcess } from '../helpers/nodered-process';
import { REPO_ROOT } from '../helpers/paths';

const root = REPO_ROOT;
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
/** Every node set the package declares (the five nodes and the import node). */
const TYPES = Object.keys(pkg['node-red'].nodes as Record<string, string>);
/** The editor plugins it declares (the operator's console). */
const PLUGINS = Object.keys((pkg['node-red'].plugins ?? {}) as Record<string, string>);

describe('package: npm pack → install into an empty user dir → Node-RED loads it', function () {
  this.timeout(240_000);
  let tmp: string;
  let red: NodeRedProcess | undefined;

  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'siagh-sync-pack-'));
  });
  after(async () => {
    await red?.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('packs the built files, installs with the Palette Manager flags and registers every node type', async () => {
    // dist/ is already built by `npm test`; --ignore-scripts keeps prepack from rebuilding under our feet.
    const out = execFileSync('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', tmp], { cwd: root, encoding: 'utf8' });
    const info = JSON.parse(out)[0] as { filename: string; files: Array<{ path: string }> };
    const files = info.files.map((f) => f.path);
    for (const t of TYPES) {
      assert.ok(files.includes(`dist/nodes/${t}/${t}.js`), `${t}.js packed`);
      assert.ok(files.includes(`dist/nodes/${t}/${t}.html`), `${t}.html packed`);
      assert.ok(files.some((f) => f.startsWith(`dist/nodes/${t}/locales/en-US/`)), `${t} locales packed`);
    }
    for (const p of PLUGINS) {
      assert.ok(files.includes(`dist/nodes/${p}/${p}.js`), `plugin ${p}.js packed`);
      assert.ok(files.includes(`dist/nodes/${p}/${p}.html`), `plugin ${p}.html packed`);
      for (const lang of ['en-US', 'fa']) assert.ok(files.includes(`dist/nodes/${p}/locales/${lang}/${p}.json`), `plugin ${p} ${lang} catalogue packed`);
    }
    assert.ok(!files.some((f) => f.startsWith('dist/test/') || f.startsWith('test/')), 'tests are not packed');
    assert.ok(files.some((f) => f.startsWith('examples/')), 'examples packed');
    // flows/ is the one source; the build produces examples/pipelines/ from it (not in git), and the tarball holds both.
    const flows = fs.readdirSync(path.join(root, 'flows')).filter((f) => f.endsWith('.json'));
    assert.equal(flows.length, 3, 'the three shipped flows');
    for (const f of flows) {
      assert.ok(files.includes(`flows/${f}`), `flows/${f} packed`);
      assert.ok(files.includes(`examples/pipelines/${f}`), `examples/pipelines/${f} packed (Import > Examples)`);
    }
    assert.ok(files.includes('resources/test-connection.js'), 'the editor resource (Test connection script) packed');
    assert.ok(files.includes('resources/migrate.js'), 'the editor resource (settings migrations) packed');

    const userDir = path.join(tmp, 'userdir');
    fs.mkdirSync(userDir);
    fs.writeFileSync(path.join(userDir, 'package.json'), JSON.stringify({ name: 'node-red-project', private: true, version: '0.0.1' }));
    execFileSync(
      'npm',
      ['install', '--no-audit', '--no-update-notifier', '--no-fund', '--save', '--save-prefix=~', '--omit=dev', '--engine-strict', '--prefer-offline', '--', path.join(tmp, info.filename)],
      { cwd: userDir, stdio: 'pipe' },
    );
    const installed = path.join(userDir, 'node_modules', pkg.name);
    assert.ok(fs.existsSync(path.join(installed, 'package.json')));
    for (const f of flows) {
      assert.equal(fs.readFileSync(path.join(installed, 'examples', 'pipelines', f), 'utf8'), fs.readFileSync(path.join(root, 'flows', f), 'utf8'), `the installed examples/pipelines/${f} is flows/${f}`);
    }

    red = await startNodeRed({ userDir, settingsFile: writeSettings(userDir) });
    const res = await fetch(red.url + '/nodes', { headers: { Accept: 'application/json' } });
    const sets = (await res.json()) as Array<{ module: string; types: string[]; enabled: boolean; err?: string }>;
    const ours = sets.filter((s) => s.module === pkg.name);
    assert.equal(ours.length, TYPES.length, 'one node set per declared node');
    for (const s of ours) {
      assert.equal(s.err, undefined, `load error in ${s.types}: ${s.err}`);
      assert.equal(s.enabled, true);
    }
    assert.deepEqual(ours.flatMap((s) => s.types).sort(), [...TYPES].sort());
    assert.doesNotMatch(red.log(), /\[warn\].*siagh-sync|Error loading|version_mismatch/i);
    // The console plugin is loaded (its sidebar tab) and answers its routes.
    assert.deepEqual(PLUGINS, ['sync-console']);
    const plugins = (await (await fetch(red.url + '/plugins', { headers: { Accept: 'application/json' } })).json()) as Array<{ id: string; module: string; enabled: boolean; err?: string; plugins?: Array<{ id: string }> }>;
    const ourPlugins = plugins.filter((p) => p.module === pkg.name);
    assert.deepEqual(ourPlugins.map((p) => p.id), PLUGINS.map((p) => `${pkg.name}/${p}`));
    for (const p of ourPlugins) {
      assert.equal(p.err, undefined, `plugin load error: ${p.err}`);
      assert.equal(p.enabled, true);
    }
    const stores = await fetch(red.url + '/siagh-sync/console/stores');
    assert.equal(stores.status, 200);
    assert.deepEqual(((await stores.json()) as { stores: unknown[] }).stores, [], 'no flow deployed: no data folder');
    // The config dialogs load their one Test connection script from the package's resources/ folder.
    const script = await fetch(`${red.url}/resources/${pkg.name}/test-connection.js`);
    assert.equal(script.status, 200, 'resources/<package>/test-connection.js is served');
    assert.match(await script.text(), /siaghSyncTestConnection/);
    // Every dialog migrates an old node's settings with resources/migrate.js and the tables the runtime exports.
    const migrate = await fetch(`${red.url}/resources/${pkg.name}/migrate.js`);
    assert.equal(migrate.status, 200, 'resources/<package>/migrate.js is served');
    assert.match(await migrate.text(), /siaghSyncMigrate/);
    const settings = (await (await fetch(`${red.url}/settings`)).json()) as Record<string, { current?: number } | undefined>;
    for (const t of TYPES) {
      const name = t.replace(/-([a-z0-9])/g, (_: string, c: string) => c.toUpperCase()) + 'Migrations';
      assert.equal(typeof settings[name]?.current, 'number', `the editor gets ${name}`);
      const html = fs.readFileSync(path.join(userDir, 'node_modules', pkg.name, 'dist', 'nodes', t, `${t}.html`), 'utf8');
      assert.match(html, new RegExp(`<script type="text/javascript" src="resources/${pkg.name}/migrate.js"></script>`), `${t}.html loads it`);
    }
    for (const t of ['crm-config', 'siagh-config']) {
      const html = fs.readFileSync(path.join(userDir, 'node_modules', pkg.name, 'dist', 'nodes', t, `${t}.html`), 'utf8');
      assert.match(html, new RegExp(`<script type="text/javascript" src="resources/${pkg.name}/test-connection.js"></script>`), `${t}.html loads it (relative URL)`);
    }
  });
});
