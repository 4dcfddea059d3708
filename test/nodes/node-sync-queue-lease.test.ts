/**
 * A queued job whose lease runs out until its attempts are used up (the message carrying it is
 * lost each time: here the pipeline after sync-queue drops it) reaches the failed list by the path
 * every failure takes: sync-queue reports it (msg.error.code LEASE_EXPIRED, with the job's event),
 * the tab's Catch node hands it to sync-log, which keeps it in its failed list (failed.json of the
 * data folder; on PostgreSQL, the database's). On the file store and on PostgreSQL (a real
 * server), in the real Node-RED runtime.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { openPool } from '../../lib/pg/db';
import { PgFailedList } from '../../lib/oplog/pg-failed-list';
import type { FailedEntry } from '../../lib/oplog/failed-list';
import { PgServer } from '../../testkit/postgres';
import { readFailedOnDisk } from '../fixtures/store-helpers';
import { collect, helper, n, nodeModule, tab, tmpDir, waitFor } from '../helpers/node-env';

const NODES = () => ['sync-store', 'sync-queue', 'sync-log'].map(nodeModule);
const ID = '7c9e6679-7425-40de-944b-e07fc1f90ae7';

describe('sync-queue: a job that dies of its lease lands in the failed list (Node-RED runtime)', function () {
  this.timeout(60_000);
  let server: PgServer;

  before(async () => {
    server = await PgServer.start();
  });
  after(async () => {
    await server?.close();
  });
  afterEach(async () => {
    await helper.unload();
  });

  for (const backend of ['file', 'postgres'] as const) {
    it(`${backend} store: LEASE_EXPIRED in the failed list with the event, after the store's attempts`, async () => {
      const dir = tmpDir(`lease-${backend}-`);
      const store: Record<string, unknown> = { id: 'store', type: 'sync-store', backend, dir, leaseSeconds: 1, maxAttempts: 2, firstRetrySeconds: 0.01, maxRetryDelaySeconds: 0.01 };
      const url = backend === 'postgres' ? await server.database() : '';
      if (backend === 'postgres') Object.assign(store, { pgUrl: url, pgTls: 'off' });
      const flow = [
        tab,
        store,
        // The pipeline loses every message (nothing renews, nothing settles): the lease runs out.
        n({ id: 'q', type: 'sync-queue', store: 'store', wires: [['lost']] }),
        n({ id: 'lost', type: 'helper' }),
        n({ id: 'log', type: 'sync-log', store: 'store', flushMs: 10, wires: [[], []] }),
        n({ id: 'catch', type: 'catch', scope: null, uncaught: false, wires: [['log', 'caught']] }),
        n({ id: 'caught', type: 'helper' }),
      ];
      await helper.load(NODES(), flow, {});
      const lost = collect(helper.getNode('lost'));
      const caught = collect(helper.getNode('caught'));
      helper.getNode('q').receive({ payload: { type: 'Identity', id: ID, event: 'Update', kind: 'person' } });

      let entry: FailedEntry | undefined;
      if (backend === 'file') {
        const failedFile = path.join(dir, 'failed.json');
        await waitFor(() => !!readFailedOnDisk(failedFile)[`identity:${ID}`], 30_000, 'the entry in failed.json');
        entry = readFailedOnDisk(failedFile)[`identity:${ID}`] as FailedEntry;
      } else {
        const pool = openPool({ connectionString: url });
        try {
          const list = await PgFailedList.open(pool, { maxAgeDays: 0 });
          for (let i = 0; i < 300 && !entry; i++) {
            entry = (await list.all()).find((e) => e.key === `identity:${ID}`);
            if (!entry) await new Promise((r) => setTimeout(r, 100));
          }
        } finally {
          await pool.end();
        }
        assert.ok(entry, 'the entry in the database’s failed list');
      }
      assert.equal(entry!.reason.code, 'LEASE_EXPIRED');
      assert.match(entry!.reason.message, /Given up after 2 attempt\(s\), each ending with its lease running out/);
      assert.match(entry!.reason.message, /Replay it from the failed list/);
      assert.deepEqual(entry!.event, { type: 'Identity', id: ID, event: 'Update' });
      assert.equal(lost.length, 2, 'delivered twice (the store allows two attempts), lost twice');
      assert.equal(caught.length, 1, 'reported once');
      assert.equal(caught[0].error.code, 'LEASE_EXPIRED');
      assert.equal(caught[0].job, undefined, 'no job: nobody settles it again');
      assert.equal(caught[0].sync.step, 'sync-queue');
    });
  }
});
