/**
 * What the node tests share: node-red-node-test-helper on the real Node-RED runtime (the 4.1 dev
 * dependency, or the one whose red.js NR_RED_JS names: `npm run test:nr5`), the compiled node
 * modules of this package, both simulators on loopback, and a temp user dir.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
// eslint-disable-next-line @typescript-eslint/no-require-imports
const helper = require('node-red-node-test-helper');
import { CrmSim } from '../../sim/crm-sim';
import { SiaghSim } from '../../sim/siagh-sim';

/** The node-red module the tests run on: NR_RED_JS's package (e.g. Node-RED 5), else the dev dependency. */
export function nodeRedModule(): string {
  const redJs = process.env.NR_RED_JS;
  return redJs ? require.resolve(path.dirname(redJs)) : require.resolve('node-red');
}

helper.init(nodeRedModule());

/** A core node module (e.g. `common/20-inject.js`) of the Node-RED under test. */
export function coreNode(file: string): unknown {
  const nodesPkg = require.resolve('@node-red/nodes/package.json', { paths: [path.dirname(nodeRedModule())] });
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require(path.join(path.dirname(nodesPkg), 'core', file));
}

export { helper };

const nodesDir = path.resolve(__dirname, '..', '..', 'nodes');
export function nodeModule(type: string): unknown {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require(path.join(nodesDir, type, `${type}.js`));
}

export const ALL_NODES = () => ['crm-config', 'siagh-config', 'crm-fetch', 'siagh-upsert', 'sync-mapping'].map(nodeModule);

/** A module that only captures RED.httpNode, so tests can reach http-in routes (test-helper limit). */
export let httpNode: unknown;
export function captureHttpNode(RED: { httpNode: unknown }): void {
  httpNode = RED.httpNode;
}

export const TAB = 'tab1';
let seq = 0;
/** A flow node on the test tab, with x/y so the runtime does not take it for a config node. */
export function n(props: Record<string, unknown>): Record<string, unknown> {
  seq++;
  return { z: TAB, x: 100 + seq, y: 100 + seq, wires: [], ...props };
}
export const tab = { id: TAB, type: 'tab', label: 'test' };

export function tmpDir(prefix = 'siagh-sync-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export const SIAGH_USER = { UserName: 'مدیر سیستم', Password: 'siagh-secret-pass' };
export const CRM_USER = { username: 'api-user', password: 'crm-secret-pass' };

export async function startSims(opts: { siagh?: ConstructorParameters<typeof SiaghSim>[0]; crm?: ConstructorParameters<typeof CrmSim>[0] } = {}) {
  const siagh = new SiaghSim({ users: [SIAGH_USER], ...opts.siagh });
  const crm = new CrmSim({ users: [CRM_USER], ...opts.crm });
  await siagh.start();
  await crm.start();
  return { siagh, crm, stop: async () => Promise.all([siagh.stop(), crm.stop()]) };
}

/** Config nodes pointing at the simulators (ids 'crm' and 'siagh') and their credentials. */
export function configNodes(siaghUrl: string, crmUrl: string, extra: { crm?: object; siagh?: object } = {}) {
  return {
    nodes: [
      { id: 'crm', type: 'crm-config', name: 'CRM', baseUrl: crmUrl, timeout: 5, concurrency: 4, ...extra.crm },
      { id: 'siagh', type: 'siagh-config', name: 'Siagh', baseUrl: siaghUrl, timeout: 5, concurrency: 4, indexMaxAge: 10, ...extra.siagh },
    ],
    credentials: {
      crm: { username: CRM_USER.username, password: CRM_USER.password },
      siagh: { username: SIAGH_USER.UserName, password: SIAGH_USER.Password },
    },
  };
}

/** Resolve with the next message a helper node receives (or reject after ms). */
export function nextMessage(node: { on(ev: string, cb: (m: any) => void): void }, ms = 8000): Promise<any> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('no message within ' + ms + ' ms')), ms);
    node.on('input', (m: any) => {
      clearTimeout(t);
      resolve(m);
    });
  });
}

/** Collect every message a helper node receives. */
export function collect(node: { on(ev: string, cb: (m: any) => void): void }): any[] {
  const out: any[] = [];
  node.on('input', (m: any) => out.push(m));
  return out;
}

export async function waitFor(cond: () => boolean, ms = 8000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
