/**
 * nodes/shared/saved-settings.ts in the real Node-RED runtime (node-red-node-test-helper): a node
 * saved by an older release runs with its migrated settings, one saved by a newer release runs as
 * saved with a warning, an unreadable version is read as 0 with a warning, and the deployed flow
 * keeps the settings as saved (the migration works on a copy).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { configNodes, helper, n, nodeModule, startSims, tab, tmpDir, waitFor } from '../helpers/node-env';

const NODES = () => [nodeModule('crm-config'), nodeModule('siagh-config'), nodeModule('crm-poll')];

interface Status {
  fill?: string;
  shape?: string;
  text?: string;
}

describe('saved settings: migrated when a node is constructed (Node-RED runtime)', function () {
  this.timeout(15000);
  let sims: Awaited<ReturnType<typeof startSims>>;
  let userDir: string;

  before(async () => {
    sims = await startSims();
  });
  after(async () => {
    await sims.stop();
  });
  beforeEach(() => {
    userDir = tmpDir();
    helper.settings({ userDir });
  });
  afterEach(async () => {
    await helper.unload();
    fs.rmSync(userDir, { recursive: true, force: true });
  });

  /** One crm-poll with these settings; its first status (it names the types it polls) and our warnings. */
  async function deploy(props: Record<string, unknown>) {
    const cfg = configNodes(sims.siagh.url, sims.crm.url);
    const flow = [tab, ...cfg.nodes, n({ id: 'poll', type: 'crm-poll', crm: 'crm', file: 'data/mappings.json', wires: [[]], ...props })];
    await helper.load(NODES(), flow, cfg.credentials);
    const poll = helper.getNode('poll');
    const statuses: Status[] = [];
    poll.on('call:status', (call: { args: [Status] }) => statuses.push(call.args[0]));
    await waitFor(() => statuses.length > 0, 3000, 'the first status');
    const warnings = (helper.log().args as Array<[{ level?: number; msg?: unknown; type?: string }]>)
      .map((a) => a[0])
      .filter((e) => e.type === 'crm-poll' && e.level === 30)
      .map((e) => String(e.msg));
    return { status: statuses[0].text ?? '', warnings, deployed: helper._redNodes.getFlows().flows.find((x: { id: string }) => x.id === 'poll') };
  }

  it('no version (saved before versions): crm-poll polls identities only, as then; the deployed flow still holds what was saved', async () => {
    const { status, warnings, deployed } = await deploy({});
    assert.match(status, /identities only/);
    assert.deepEqual(warnings, []);
    assert.equal(deployed.types, undefined, 'the flow is not changed');
    assert.equal(deployed.version, undefined);
  });

  it('the current version: a missing types setting means all three', async () => {
    const { status, warnings } = await deploy({ version: 1 });
    assert.doesNotMatch(status, /only/);
    assert.deepEqual(warnings, []);
  });

  it('a newer version: used as saved, with a warning to update the package', async () => {
    const { status, warnings } = await deploy({ version: 7 });
    assert.doesNotMatch(status, /only/, 'no step applied');
    assert.equal(warnings.length, 1, warnings.join('\n'));
    assert.match(warnings[0], /saved by a newer release .*settings version 7; this one knows up to 1/);
  });

  it('a version that is not a whole number: read as 0, with a warning', async () => {
    const { status, warnings } = await deploy({ version: 'v2' });
    assert.match(status, /identities only/);
    assert.equal(warnings.length, 1, warnings.join('\n'));
    assert.match(warnings[0], /"v2" is not a whole number/);
  });
});
