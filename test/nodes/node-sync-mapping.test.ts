/**
 * sync-mapping in the real Node-RED 4.1 runtime (node-red-node-test-helper) on real files in temp
 * user dirs, and the claim that keeps two messages for one CRM id from both creating in Siagh,
 * proved through a real flow lookup → siagh-upsert → store against the Siagh simulator.
 */
import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import path from 'node:path';
import { inspect } from 'node:util';
import { MappingStore } from '../../lib/store/mapping-store';
import { readOnDisk } from '../fixtures/store-helpers';
import type { CrmIdentity } from '../../lib/types';
import type { SiaghSim } from '../../sim/siagh-sim';
import { CRM_USER, SIAGH_USER, collect, configNodes, helper, n, nodeModule, startSims, tab, tmpDir, waitFor } from '../helpers/node-env';

const NODES = () => [nodeModule('crm-config'), nodeModule('siagh-config'), nodeModule('siagh-upsert'), nodeModule('sync-mapping')];

let seq = 0;
function person(over: Partial<CrmIdentity> = {}): CrmIdentity {
  seq++;
  const tail = String(3000 + seq);
  return {
    crmId: randomUUID(),
    kind: 'person',
    nickName: `نگار موسوی ${seq}`,
    customerNumber: null,
    email: `negar${seq}@example.ir`,
    phoneContacts: [{ phoneType: 'موبایل', phoneNumber: `0901 222 ${tail}` }],
    ...over,
  };
}

/** The mapping file with its journal replayed over it: what is durable on disk. */
function readFile(file: string): { mappings: Record<string, Record<string, any>> } {
  return readOnDisk(file);
}

describe('sync-mapping node (Node-RED runtime, real files)', function () {
  this.timeout(15000);
  let sims: Awaited<ReturnType<typeof startSims>>;
  let sim: SiaghSim;
  let userDir: string;
  let out: any[];
  let caught: any[];
  const seen: any[] = [];
  const savedEnv = process.env.SIAGH_MAP_TEST_DIR;

  before(async () => {
    sims = await startSims();
    sim = sims.siagh;
  });
  after(async () => {
    await sims.stop();
  });
  beforeEach(() => {
    sim.reset();
    sim.faults.clear();
    sim.resetCounts();
    userDir = tmpDir('sync-mapping-test-');
    helper.settings({ userDir });
  });
  afterEach(async () => {
    const secrets = [SIAGH_USER.Password, createHash('md5').update(SIAGH_USER.Password).digest('hex').toUpperCase(), CRM_USER.password];
    try {
      for (const m of seen) {
        assert.ok(m.sync && typeof m.sync === 'object', 'msg.sync present');
        if (m.error || m.siagh) assert.ok(m.sync.action, 'msg.sync.action set');
        if (m.error) assert.equal(m.sync.action, 'failed');
        assert.ok(JSON.stringify(m.sync).length < 1000);
        const text = JSON.stringify(m) + inspect(m, { depth: 12 });
        for (const s of secrets) assert.ok(!text.includes(s), 'a secret appears in a message');
      }
    } finally {
      seen.length = 0;
      if (savedEnv === undefined) delete process.env.SIAGH_MAP_TEST_DIR;
      else process.env.SIAGH_MAP_TEST_DIR = savedEnv;
      await helper.unload();
    }
  });

  async function load(nodes: Array<Record<string, unknown>>) {
    const cfg = configNodes(sim.url, sims.crm.url);
    const flow = [
      tab,
      ...cfg.nodes,
      ...nodes,
      n({ id: 'out', type: 'helper' }),
      n({ id: 'catch', type: 'catch', scope: null, uncaught: false, wires: [['caught']] }),
      n({ id: 'caught', type: 'helper' }),
    ];
    await helper.load(NODES(), flow, cfg.credentials);
    out = collect(helper.getNode('out'));
    caught = collect(helper.getNode('caught'));
    helper.getNode('out').on('input', (m: any) => seen.push(m));
    helper.getNode('caught').on('input', (m: any) => seen.push(m));
  }

  async function send(id: string, msg: Record<string, unknown>): Promise<{ out?: any; caught?: any }> {
    const o = out.length;
    const c = caught.length;
    helper.getNode(id).receive(msg);
    await waitFor(() => out.length > o || caught.length > c, 8000, 'a result');
    return { out: out[o], caught: caught[c] };
  }

  const mapNode = (id: string, operation: string, props: Record<string, unknown> = {}) => n({ id, type: 'sync-mapping', operation, wires: [['out']], ...props });
  const update = (crmId: string, siaghCode: string, extra: Record<string, unknown> = {}) => ({
    mappingUpdate: { entityType: 'contact', crmId, siaghCode, customerNumber: `100-${Number(siaghCode) + 1000}`, checksum: 'c-' + siaghCode, ...extra },
  });

  describe('operations', () => {
    it('store is durable before the message moves on; lookup, list, stats and delete work through the node', async () => {
      const file = path.join(userDir, 'm.json');
      await load([mapNode('store', 'store', { file }), mapNode('look', 'lookup', { file, claim: false }), mapNode('list', 'list', { file }), mapNode('stats', 'stats', { file }), mapNode('del', 'delete', { file, entityType: 'contact' })]);
      const crmId = randomUUID();
      // read the file the moment the stored message arrives
      let onDisk: any;
      helper.getNode('out').on('input', (m: any) => {
        if (onDisk === undefined && m.mapping) onDisk = readFile(file).mappings.contact[crmId] ?? null;
      });
      const stored = (await send('store', { payload: { crmId, kind: 'person' }, ...update(crmId, '8401') })).out;
      assert.ok(onDisk, 'the mapping is in the file when the message arrives');
      assert.equal(onDisk.siaghCode, '8401');
      assert.equal(onDisk.customerNumber, '100-9401');
      assert.equal(onDisk.checksum, 'c-8401');
      assert.ok(onDisk.syncedAt && onDisk.source);
      assert.equal(stored.mapping.siaghCode, '8401');
      assert.equal(stored.mappingUpdate, undefined);

      const looked = (await send('look', { payload: { crmId: crmId.toUpperCase(), kind: 'person' } })).out;
      assert.equal(looked.mapping.siaghCode, '8401');
      assert.equal(looked.mappingClaim, undefined, 'no claim when claim is off');
      const missing = (await send('look', { payload: { crmId: randomUUID(), kind: 'person' } })).out;
      assert.equal(missing.mapping, null);

      const list = (await send('list', { payload: { entityType: 'contact' } })).out;
      assert.deepEqual(list.payload.map((r: any) => r.crmId), [crmId]);
      const stats = (await send('stats', { payload: {} })).out;
      assert.equal(stats.payload.total, 1);
      assert.equal(stats.payload.byType.contact, 1);

      const del = (await send('del', { payload: { crmId } })).out;
      assert.deepEqual(del.payload, { deleted: true, entityType: 'contact', crmId });
      assert.equal(readFile(file).mappings.contact[crmId], undefined, 'the delete is on disk');
      const again = (await send('del', { payload: { crmId } })).out;
      assert.equal(again.payload.deleted, false);
    });

    it('the default file is <userDir>/siagh-sync/mappings.json', async () => {
      const saved = process.env.SYNC_DATA_DIR;
      delete process.env.SYNC_DATA_DIR;
      try {
        await load([mapNode('store', 'store')]);
      } finally {
        if (saved !== undefined) process.env.SYNC_DATA_DIR = saved;
      }
      const crmId = randomUUID();
      const r = (await send('store', update(crmId, '8402'))).out;
      assert.ok(r.mapping);
      assert.equal(readFile(path.join(userDir, 'siagh-sync', 'mappings.json')).mappings.contact[crmId].siaghCode, '8402');
    });

    it('two sync-mapping nodes naming the same file (written differently) share one store', async () => {
      const abs = path.join(userDir, 'shared', 'm.json');
      await load([mapNode('a', 'store', { file: 'shared/m.json' }), mapNode('b', 'lookup', { file: abs, claim: false }), mapNode('c', 'stats', { file: path.join(userDir, 'shared', '..', 'shared', 'm.json') })]);
      const crmId = randomUUID();
      await send('a', update(crmId, '8403'));
      const r = (await send('b', { payload: { crmId, kind: 'person' } })).out;
      assert.equal(r.mapping.siaghCode, '8403');
      const store = MappingStore.peek(abs)!;
      assert.ok(store, 'the store is open');
      assert.equal(store.refCount, 3, 'one instance, one reference per node');
      assert.equal(r.mappingFile, store.filePath);
      assert.equal((await send('c', {})).out.payload.total, 1);
    });

    it('a second CRM id for the same Siagh Code is MAPPING_CONFLICT at Catch; the file keeps the first', async () => {
      const file = path.join(userDir, 'm.json');
      await load([mapNode('store', 'store', { file })]);
      const first = randomUUID();
      const second = randomUUID();
      await send('store', update(first, '8404'));
      const r = await send('store', update(second, '8404'));
      assert.equal(r.out, undefined);
      assert.equal(r.caught.error.code, 'MAPPING_CONFLICT');
      assert.equal(r.caught.error.source.id, 'store');
      assert.ok(r.caught.error.message.includes(first), r.caught.error.message);
      const onDisk = readFile(file).mappings.contact;
      assert.equal(onDisk[first].siaghCode, '8404');
      assert.equal(onDisk[second], undefined);
    });

    it('${VAR} in the file path is read from the environment; an unset one is CONFIG at Catch', async () => {
      const dir = tmpDir('sync-mapping-env-');
      process.env.SIAGH_MAP_TEST_DIR = dir;
      await load([mapNode('store', 'store', { file: '${SIAGH_MAP_TEST_DIR}/env-map.json' }), mapNode('bad', 'stats', { file: '${SIAGH_MAP_TEST_UNSET_VAR}/x.json' })]);
      const crmId = randomUUID();
      await send('store', update(crmId, '8405'));
      assert.equal(readFile(path.join(dir, 'env-map.json')).mappings.contact[crmId].siaghCode, '8405');
      const r = await send('bad', {});
      assert.equal(r.caught.error.code, 'CONFIG');
      assert.ok(r.caught.error.message.includes('SIAGH_MAP_TEST_UNSET_VAR'));
    });

    it('a message without a usable CRM id is BAD_INPUT at Catch', async () => {
      await load([mapNode('look', 'lookup', { file: path.join(userDir, 'm.json') })]);
      const r = await send('look', { payload: { crmId: 'not-a-guid', kind: 'person' } });
      assert.equal(r.caught.error.code, 'BAD_INPUT');
    });
  });

  describe('claims through a real flow lookup → siagh-upsert → store', () => {
    function pipeline(file: string, lookProps: Record<string, unknown> = {}) {
      return [
        n({ id: 'look', type: 'sync-mapping', operation: 'lookup', file, ...lookProps, wires: [['up']] }),
        n({ id: 'up', type: 'siagh-upsert', siagh: 'siagh', mode: 'contact', wires: [['store']] }),
        n({ id: 'store', type: 'sync-mapping', operation: 'store', file, wires: [['out']] }),
      ];
    }
    const creates = () => sim.saveLog.filter((s) => s.formId === '2BFDA' && !s.params.find((p) => p.key === 'CodeMain')?.value).length;

    it('THE CONCURRENCY PROOF: 20 messages at once for one new CRM identity create exactly one Siagh contact', async () => {
      const file = path.join(userDir, 'm.json');
      await load(pipeline(file));
      const id = person();
      const before = sim.contacts().length;
      for (let i = 0; i < 20; i++) helper.getNode('look').receive({ payload: structuredClone(id) });
      await waitFor(() => out.length + caught.length >= 20, 10000, '20 results');
      assert.deepEqual(
        caught.map((m) => m.error.message),
        [],
      );
      assert.equal(out.length, 20);
      assert.equal(sim.contacts().length, before + 1, 'one Siagh contact');
      assert.equal(creates(), 1, 'one create SaveFormData');
      const actions = out.map((m) => m.sync.action);
      assert.equal(actions.filter((a) => a === 'created').length, 1, actions.join());
      assert.equal(actions.filter((a) => a === 'unchanged' || a === 'linked').length, 19, actions.join());
      const code = String(sim.contacts()[0].Code);
      assert.ok(out.every((m) => m.sync.siaghCode === code && m.mapping.siaghCode === code));
      const onDisk = readFile(file).mappings.contact;
      assert.deepEqual(Object.keys(onDisk), [id.crmId]);
      assert.equal(onDisk[id.crmId].siaghCode, code);
      assert.equal(MappingStore.peek(file)!.isClaimed('contact', id.crmId), false, 'no claim is left behind');
      assert.equal(sim.count('POST /BpmsApi/SaveFormData'), 1, 'the 19 others sent nothing');
    });

    it('20 different identities at once are not serialised into one: 20 contacts, 20 mappings', async () => {
      const file = path.join(userDir, 'm.json');
      await load(pipeline(file));
      const ids = Array.from({ length: 20 }, () => person());
      for (const id of ids) helper.getNode('look').receive({ payload: id });
      await waitFor(() => out.length + caught.length >= 20, 10000, '20 results');
      assert.equal(caught.length, 0, caught[0]?.error?.message);
      assert.equal(sim.contacts().length, 20);
      assert.equal(Object.keys(readFile(file).mappings.contact).length, 20);
      assert.ok(out.every((m) => m.sync.action === 'created'));
    });

    it('a failure in siagh-upsert releases the claim: the next message for that id proceeds without waiting for the lease', async () => {
      const file = path.join(userDir, 'm.json');
      // a long lease and a short wait: were the claim kept, the second message would fail MAPPING_BUSY
      await load(pipeline(file, { leaseSeconds: 120, waitSeconds: 3 }));
      sim.faults.add({ kind: '5xx', path: 'SaveFormData', status: 503, times: 1 });
      const id = person();
      helper.getNode('look').receive({ payload: structuredClone(id) });
      helper.getNode('look').receive({ payload: structuredClone(id) });
      await waitFor(() => out.length + caught.length >= 2, 10000, '2 results');
      assert.equal(caught.length, 1);
      assert.equal(caught[0].error.code, 'AMBIGUOUS_CREATE');
      assert.equal(caught[0].error.source.id, 'up');
      assert.equal(caught[0].mappingClaim, undefined);
      assert.equal(out.length, 1, caught.map((m) => m.error.message).join('\n'));
      assert.equal(out[0].sync.action, 'created');
      assert.equal(sim.contacts().length, 1);
      assert.equal(readFile(file).mappings.contact[id.crmId].siaghCode, String(sim.contacts()[0].Code));
      assert.equal(MappingStore.peek(file)!.isClaimed('contact', id.crmId), false);
    });

    it('a failure at the store (mapping conflict) releases the claim too', async () => {
      const file = path.join(userDir, 'm.json');
      await load([
        n({ id: 'look', type: 'sync-mapping', operation: 'lookup', file, leaseSeconds: 120, waitSeconds: 3, wires: [['store']] }),
        n({ id: 'store', type: 'sync-mapping', operation: 'store', file, wires: [['out']] }),
      ]);
      const a = randomUUID();
      const b = randomUUID();
      await send('look', { payload: { crmId: a, kind: 'person' }, ...update(a, '8410') });
      const r = await send('look', { payload: { crmId: b, kind: 'person' }, ...update(b, '8410') });
      assert.equal(r.caught.error.code, 'MAPPING_CONFLICT');
      assert.equal(MappingStore.peek(file)!.isClaimed('contact', b), false);
      const again = await send('look', { payload: { crmId: b, kind: 'person' }, ...update(b, '8411') });
      assert.equal(again.out.mapping.siaghCode, '8411');
    });

    it('a message that never reaches the store gives the claim back when its lease ends', async () => {
      const file = path.join(userDir, 'm.json');
      await load([n({ id: 'look', type: 'sync-mapping', operation: 'lookup', file, leaseSeconds: 1, waitSeconds: 10, wires: [['out']] })]);
      const crmId = randomUUID();
      const first = await send('look', { payload: { crmId, kind: 'person' } });
      assert.ok(first.out.mappingClaim?.token, 'the lookup holds a claim');
      const second = await send('look', { payload: { crmId, kind: 'person' } });
      assert.ok(second.out, second.caught?.error?.message);
      assert.notEqual(second.out.mappingClaim.token, first.out.mappingClaim.token);
    });
  });
});
