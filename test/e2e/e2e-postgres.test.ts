/**
 * End to end on a PostgreSQL store: the shipped flows on a real Node-RED, cfg-store switched to
 * the postgres backend (DATABASE_URL from the environment, as an operator sets it), a real
 * throwaway PostgreSQL server. A CRM change reaches the Siagh simulator once; its mapping, the
 * poll cursor and the queue are rows in the database, not files; a restart of Node-RED keeps
 * them (the next change of the same person updates that contact, no second one).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Client } from 'pg';
import { CRM_SIM_DEFAULTS } from '../../sim/crm-sim';
import { nationalIdWithCheckDigit } from '../../sim/seed';
import { PgServer } from '../../testkit/postgres';
import { countMatching, CRM_LIST_RE, E2eEnv } from '../helpers/e2e';

function person(tag: string): Record<string, unknown> {
  const n = Date.now() % 1_000_000;
  return {
    firstName: 'سارا',
    lastName: `کریمی ${tag}`,
    nickName: `سارا کریمی ${tag} ${n}`,
    nationalCode: nationalIdWithCheckDigit(`00${String(1_000_000 + (n % 8_999_999)).slice(0, 7)}`),
    phoneContacts: [{ default: true, phoneType: 'موبایل', phoneNumber: `0935${String(1_000_000 + (n % 8_999_999)).padStart(7, '0')}` }],
  };
}

describe('e2e: the shipped webhook flow on a PostgreSQL store', function () {
  this.timeout(120_000);
  let server: PgServer;
  let env: E2eEnv | undefined;
  let url: string;

  async function rows<T extends Record<string, unknown>>(sql: string): Promise<T[]> {
    const c = new Client({ connectionString: url });
    await c.connect();
    try {
      return (await c.query<T>(sql)).rows;
    } finally {
      await c.end();
    }
  }

  before(async function () {
    this.timeout(240_000);
    server = await PgServer.start();
    url = await server.database();
    env = await E2eEnv.start({ pollIntervalSeconds: 3600, store: { backend: 'postgres', url } });
    // The polling flow runs once at start (this instance leads): let it pass.
    await env.waitFor('the first polling run', () => countMatching(env!.crm, CRM_LIST_RE) > 0, 20_000).catch(() => undefined);
    await env.waitQuiet('the first polling run', () => [...env!.crm.counts.entries()], { quietMs: 500 });
  });
  after(async () => {
    await env?.stop();
    await server?.close();
  });

  it('a CRM person reaches Siagh once; mapping, cursor and queue are database rows; a restart keeps them', async () => {
    const e = env!;
    const byName = (name: unknown) => e.siagh.contacts().filter((c) => c.Name === name);
    const p = person('pg');
    const rec = e.crm.addPerson(p);
    const [c] = await e.waitFor('the Siagh contact of the new CRM person', () => (byName(p.nickName).length ? byName(p.nickName) : undefined));
    await e.waitQuiet('Siagh writes', () => [e.siagh.saveCount, e.siagh.contacts().length]);
    assert.equal(byName(p.nickName).length, 1, 'exactly one contact');
    assert.deepEqual(e.crm.webhookLog().filter((d) => d.id === rec.crmId).map((d) => d.status), [200]);

    // The mapping is a row in PostgreSQL (and no mapping file was written in the data folder).
    const mapped = await e.waitFor('the mapping row', async () => {
      const r = await rows<{ siagh_code: string }>(`SELECT siagh_code FROM siagh_sync_mappings WHERE entity_type = 'contact' AND crm_id = '${rec.crmId.toLowerCase()}'`);
      return r[0];
    });
    assert.equal(String(mapped.siagh_code), String(c.Code));
    assert.equal(fs.existsSync(path.join(e.dataDir, 'mappings.json')), false, 'no mapping file');
    const done = await rows<{ n: string }>('SELECT count(*)::text AS n FROM siagh_sync_queue');
    assert.equal(done[0].n, '0', 'the job ended (the queue is empty)');

    // A restart of Node-RED keeps the mapping: the next change updates the same contact. Its
    // polling run (5 s after the start; the CRM now has a record) saves the cursor in the database.
    await e.restart();
    const cursor = await e.waitFor('the poll cursor row', async () => (await rows<{ key: string }>("SELECT key FROM siagh_sync_meta WHERE key LIKE 'poll.cursor.%'"))[0], 30_000);
    assert.match(cursor.key, /^poll\.cursor\.polling-sync/);
    assert.equal(byName(p.nickName).length, 1, 'the polling run after the restart wrote no second contact');
    const saves = e.siagh.saveCount;
    e.crm.updateRecord(rec.crmId, { email: 'sara.pg@example.ir' });
    await e.waitFor('the update in Siagh', () => byName(p.nickName).find((x) => x.Email === 'sara.pg@example.ir'));
    await e.waitQuiet('Siagh writes', () => [e.siagh.saveCount, e.siagh.contacts().length]);
    assert.equal(byName(p.nickName).length, 1, 'still one contact after the restart');
    assert.ok(e.siagh.saveCount > saves);
    const after = await rows<{ siagh_code: string }>(`SELECT siagh_code FROM siagh_sync_mappings WHERE entity_type = 'contact' AND crm_id = '${rec.crmId.toLowerCase()}'`);
    assert.equal(String(after[0].siagh_code), String(c.Code));
  });
});
