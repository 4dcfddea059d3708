/**
 * Which Node-RED the runtime tests run on: the 4.1 dev dependency, or (npm run test:nr5) the
 * Node-RED 5 that NR_RED_JS names, on the Node that runs mocha. A run meant for Node-RED 5 that
 * silently loaded 4.1 would prove nothing, so this says which one was loaded and checks it.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import semver from 'semver';
import { helper, nodeRedModule } from '../helpers/node-env';

interface RedPackage {
  name: string;
  version: string;
  engines?: { node?: string };
}

function packageOf(mainFile: string): RedPackage {
  for (let dir = path.dirname(mainFile); dir !== path.dirname(dir); dir = path.dirname(dir)) {
    const file = path.join(dir, 'package.json');
    if (fs.existsSync(file)) {
      const pkg = JSON.parse(fs.readFileSync(file, 'utf8')) as RedPackage;
      if (pkg.name === 'node-red') return pkg;
    }
  }
  throw new Error(`no node-red package.json above ${mainFile}`);
}

describe('runtime under test', () => {
  it('is the Node-RED this run asked for, on a Node it supports', () => {
    const loaded = helper._RED.version() as string;
    const wanted = packageOf(nodeRedModule());
    console.log(`      Node-RED ${loaded} on Node ${process.version}`);
    assert.equal(loaded.replace(/-git$/, ''), wanted.version);
    if (wanted.engines?.node) assert.ok(semver.satisfies(process.version, wanted.engines.node), `Node-RED ${loaded} needs Node ${wanted.engines.node} (got ${process.version})`);
    if (!process.env.NR_RED_JS) assert.equal(semver.major(semver.coerce(loaded)!), 4, 'the dev dependency is Node-RED 4.1');
  });
});
