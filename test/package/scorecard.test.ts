/**
 * The Flow Library scorecard rules that can run offline (node-red-dev validate stops at the
 * catalogue download here): license, repository, keyword, node-red.version admitting 4.1 and 5,
 * engines.node admitting 22.9, an .html beside every node .js with a literal registerType, examples
 * covering every non-config type, and at most 6 runtime dependencies.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import * as acorn from 'acorn';
import semver from 'semver';
import { REPO_ROOT } from '../helpers/paths';

const root = REPO_ROOT;
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));

interface Registered {
  type: string;
  category?: string;
}

/** The types registered in an editor .html, found as the scorecard does: parse each text/javascript script. */
function registeredTypes(html: string): Registered[] {
  const out: Registered[] = [];
  const scripts = [...html.matchAll(/<script type="text\/javascript">([\s\S]*?)<\/script>/g)].map((m) => m[1]);
  for (const code of scripts) {
    const ast = acorn.parse(code, { ecmaVersion: 'latest' }) as unknown as acorn.Program;
    const walk = (node: unknown): void => {
      if (!node || typeof node !== 'object') return;
      const n = node as { type?: string; callee?: any; arguments?: any[] };
      if (n.type === 'CallExpression' && n.callee?.type === 'MemberExpression' && n.callee.property?.name === 'registerType') {
        const [name, def] = n.arguments ?? [];
        assert.equal(name?.type, 'Literal', 'registerType is called with a literal type name');
        assert.equal(def?.type, 'ObjectExpression', `registerType('${name?.value}') has an inline object literal`);
        const cat = (def.properties as any[]).find((p) => p.key?.name === 'category' || p.key?.value === 'category');
        out.push({ type: String(name.value), category: cat?.value?.type === 'Literal' ? String(cat.value.value) : undefined });
      }
      for (const v of Object.values(node as object)) {
        if (Array.isArray(v)) v.forEach(walk);
        else if (v && typeof v === 'object') walk(v);
      }
    };
    walk(ast);
  }
  return out;
}

function exampleFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? exampleFiles(path.join(dir, e.name)) : e.name.endsWith('.json') ? [path.join(dir, e.name)] : []));
}

describe('Flow Library scorecard rules (offline)', () => {
  it('P01/P03/P05: license, repository or bugs, the node-red keyword', () => {
    assert.ok(pkg.license, 'license');
    assert.ok(pkg.repository || pkg.bugs, 'repository or bugs');
    assert.ok((pkg.keywords as string[]).includes('node-red'), 'keyword node-red');
  });

  it('P06: node-red.version admits Node-RED 4.1 and 5', () => {
    const range = pkg['node-red'].version as string;
    for (const v of ['4.1.0', '4.1.15', '5.0.7']) assert.ok(semver.satisfies(v, range), `${range} admits ${v}`);
  });

  it('P07: engines.node admits 22.9 (Node-RED 5) and 20.19 (our floor)', () => {
    for (const v of ['22.9.0', '20.19.0']) assert.ok(semver.satisfies(v, pkg.engines.node), `${pkg.engines.node} admits ${v}`);
  });

  it('D01: at most 6 runtime dependencies, none of them Node-RED or test tooling', () => {
    const deps = Object.keys(pkg.dependencies ?? {});
    assert.ok(deps.length <= 6, deps.join(', '));
    for (const d of deps) assert.doesNotMatch(d, /^(node-red|mocha|typescript|node-red-node-test-helper)$/);
  });

  it('every node .js has its .html beside it (in the source and the build), with a literal registerType; N02: examples cover every non-config type', () => {
    const all: Registered[] = [];
    for (const [set, file] of Object.entries(pkg['node-red'].nodes as Record<string, string>)) {
      const js = path.join(root, file);
      assert.ok(fs.existsSync(js), `${file} is built`);
      const html = js.replace(/\.js$/, '.html');
      assert.ok(fs.existsSync(html), `${path.relative(root, html)} beside the .js`);
      const types = registeredTypes(fs.readFileSync(html, 'utf8'));
      assert.ok(types.some((t) => t.type === set), `${set}.html registers ${set}`);
      all.push(...types);
    }
    const used = new Set<string>();
    for (const f of exampleFiles(path.join(root, 'examples'))) {
      const flow = JSON.parse(fs.readFileSync(f, 'utf8'));
      assert.ok(Array.isArray(flow), `${path.relative(root, f)} is a JSON array`);
      for (const n of flow) {
        assert.equal(typeof n.type, 'string', `${path.relative(root, f)}: node ${n.id} has a type name`);
        if ('x' in n || 'y' in n) assert.ok(typeof n.x === 'number' && typeof n.y === 'number', `${path.relative(root, f)}: node ${n.id} has a numeric position`);
        used.add(n.type);
      }
    }
    const nonConfig = all.filter((t) => t.category !== 'config').map((t) => t.type);
    assert.ok(nonConfig.length >= 4);
    for (const t of nonConfig) assert.ok(used.has(t), `an example uses ${t}`);
  });

  it('every editor plugin .js has its .html (registerPlugin, a sidebar tab) and both catalogues beside it', () => {
    const plugins = Object.entries((pkg['node-red'].plugins ?? {}) as Record<string, string>);
    assert.ok(plugins.length >= 1, 'the console plugin is declared');
    for (const [id, file] of plugins) {
      const js = path.join(root, file);
      assert.ok(fs.existsSync(js), `${file} is built`);
      const html = fs.readFileSync(js.replace(/\.js$/, '.html'), 'utf8');
      assert.match(html, new RegExp(`RED\\.plugins\\.registerPlugin\\('${id}'`), `${id}.html registers plugin ${id}`);
      assert.match(html, /RED\.sidebar\.addTab\(/);
      for (const lang of ['en-US', 'fa']) assert.ok(fs.existsSync(path.join(path.dirname(js), 'locales', lang, `${id}.json`)), `${id} ${lang} catalogue`);
    }
  });
});
