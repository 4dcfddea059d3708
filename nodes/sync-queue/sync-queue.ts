/**
 * sync-queue: the durable queue between intake and the pipeline.
 *
 * Input: an event ({event, id, type, subtype, kind}: from crm-poll, a replay, or your own flow) is
 * queued durably before done(); a message from crm-webhook (already queued there, msg.queued) only
 * wakes the queue. Output: one message per job, shaped like crm-webhook's events, with msg.job (id
 * and lease token) for the nodes downstream and the sync-log at the end, which ends the job.
 * Never two jobs for one record at once; at most `concurrency` jobs in flight.
 *
 * A job whose lease ran out until its attempts were used up (the process or the message carrying
 * it was lost each time) has nobody to settle it: the queue hands it to this node
 * (`takeLeaseDeaths`), which reports it as an error LEASE_EXPIRED with the job's event, the way
 * any failed step reports, so the tab's Catch node takes it to sync-log's failed list.
 */
import { SyncError } from '../../lib/errors';
import { OpLog } from '../../lib/oplog/oplog';
import type { QueueBackend } from '../../lib/queue/queue-backend';
import { eventOf, Job, Taken } from '../../lib/queue/sync-queue';
import type { Node, NodeAPI, NodeDef, NodeMessage } from '../shared/red';
import { openQueueFor, StoreOpeningStopped, storeProblemText, storeSettings, watchStore } from '../shared/store-ref';
import { fail, num, updateTrace } from '../shared/support';
import { createNode, migrationSettings } from '../shared/saved-settings';

interface SyncQueueDef extends NodeDef {
  store?: string;
  concurrency?: string | number;
}

const DECISIONS = ['linkDecision', 'reviewDecision'] as const;

export = function (RED: NodeAPI) {
  function SyncQueueNode(this: Node, def: SyncQueueDef) {
    def = createNode(RED, this, 'sync-queue', def);
    const node = this;
    const concurrency = Math.round(num(def.concurrency, 4, 1));
    const mine = new Map<string, string>(); // job id → lease token, for jobs this node sent
    let queue: QueueBackend | undefined;
    let dir = '';
    let timer: NodeJS.Timeout | undefined;
    let closed = false;
    let off: (() => void) | undefined;
    let statusTimer: NodeJS.Timeout | undefined;

    // A PostgreSQL store not reachable yet is tried again until it opens (store-ref's keepOpening).
    const watch = watchStore(node, 'sync-queue');
    const opening: Promise<QueueBackend> = (async () => {
      const s = storeSettings(RED, def.store);
      dir = s.dir;
      return openQueueFor(s, watch);
    })();

    async function showStatus(): Promise<void> {
      if (!queue || closed) return;
      let s;
      try {
        s = await queue.stats();
      } catch {
        return; // the queue cannot be read now (pump says so)
      }
      if (closed) return;
      // The failed list's count (on PostgreSQL every instance's; a count that cannot be read now shows none).
      const failed = (await OpLog.peek(dir)?.failedCount().catch(() => 0)) ?? 0;
      if (closed) return;
      const parts = [`${s.waiting + s.blocked} waiting`, `${s.active} in flight`];
      if (s.retrying) parts.push(`${s.retrying} retrying`);
      if (failed) parts.push(`${failed} failed`);
      node.status({ fill: s.retrying || failed ? 'yellow' : s.active || s.waiting ? 'blue' : 'green', shape: s.active ? 'dot' : 'ring', text: parts.join(' · ') });
    }
    function statusSoon(): void {
      if (statusTimer) return;
      statusTimer = setTimeout(() => {
        statusTimer = undefined;
        void showStatus();
      }, 200);
      statusTimer.unref?.();
    }

    function eventMessage(job: Job): NodeMessage {
      const payload: Record<string, string> = { event: job.event.event, id: job.event.id, type: job.event.type };
      if (job.event.subtype) payload.subtype = job.event.subtype;
      if (job.event.kind) payload.kind = job.event.kind;
      return { topic: `${job.event.type}:${job.event.id}`, payload };
    }

    function messageOf(t: Taken): NodeMessage {
      const { job, token } = t;
      const m = eventMessage(job);
      m.job = { id: job.id, token, attempt: job.attempts + 1, ...(job.data?.recheck ? { recheck: true } : {}) };
      for (const k of DECISIONS) if (job.data?.[k]) m[k] = job.data[k];
      const tr = updateTrace(m, { trigger: job.trigger, event: job.event.event, entity: job.event.type.toLowerCase(), crmId: job.event.id, attempts: job.attempts, step: 'sync-queue' }) as unknown as Record<string, unknown>;
      // Fields the webhook intake ignored or tolerated, for the sync log (see crm-webhook).
      for (const k of ['extraFields', 'extraCount', 'normalised']) if (job.data?.[k] !== undefined) tr[k] = job.data[k];
      if (job.merged) tr.merged = job.merged;
      return m;
    }

    /**
     * Jobs that died of their lease: reported as a failed step would be (done(err) → Catch →
     * sync-log, which puts the event in the failed list), with the job's event and attempts.
     */
    function reportLeaseDeaths(q: QueueBackend): void {
      for (const job of q.takeLeaseDeaths()) {
        const m = eventMessage(job);
        updateTrace(m, { trigger: job.trigger, event: job.event.event, entity: job.event.type.toLowerCase(), crmId: job.event.id, attempts: job.attempts, step: 'sync-queue' });
        const why = job.lastError?.message ?? 'its lease ran out';
        const text =
          job.lastError?.code === 'LEASE_EXPIRED'
            ? `Given up after ${job.attempts} attempt(s), each ending with its lease running out. ${why} Replay it from the failed list once that is fixed.`
            : `${why} (its lease ran out until its attempts were used up). Replay it from the failed list once that is fixed.`;
        fail(node, m, new SyncError('LEASE_EXPIRED', text), (err) => node.error(err, m));
      }
    }

    /** Deliver what is ready, then set the timer for what becomes ready later. One delivery round at a time. */
    async function deliver(q: QueueBackend): Promise<void> {
      reportLeaseDeaths(q);
      for (const [id, token] of mine) if (!q.holds(id, token)) mine.delete(id);
      const room = concurrency - mine.size;
      const taken = room > 0 ? await q.take(room) : [];
      unavailable = false;
      if (closed) return;
      for (const t of taken) mine.set(t.job.id, t.token);
      for (const t of taken) node.send(messageOf(t));
      const next = await q.nextDueAt();
      if (closed) return;
      if (timer) clearTimeout(timer);
      timer = undefined;
      if (next !== undefined && mine.size < concurrency) {
        timer = setTimeout(pump, Math.min(Math.max(next - Date.now(), 20), 60_000));
        timer.unref?.();
      }
      statusSoon();
    }

    let delivering: Promise<void> | undefined;
    let unavailable = false;
    let again = false;
    function pump(): void {
      if (!queue || closed) return;
      if (delivering) {
        again = true;
        return;
      }
      const q = queue;
      delivering = deliver(q)
        .catch((e) => {
          // The queue cannot be reached (a database restarting): say so, and try again shortly.
          if (closed) return;
          node.status({ fill: 'red', shape: 'ring', text: q.backend === 'postgres' ? 'waiting for PostgreSQL' : 'queue unavailable, retrying' });
          if (!unavailable) node.warn(`sync-queue: ${e instanceof Error ? e.message : String(e)}`);
          unavailable = true;
          if (timer) clearTimeout(timer);
          timer = setTimeout(pump, 2000);
          timer.unref?.();
        })
        .finally(() => {
          delivering = undefined;
          if (again) {
            again = false;
            pump();
          }
        });
    }

    let pumping = false;
    opening.then(
      (q) => {
        if (closed) return void q.release();
        queue = q;
        off = q.onChange(() => {
          // Changes come from inside queue calls: deliver right after, never re-entrantly.
          if (pumping) return;
          pumping = true;
          setImmediate(() => {
            pumping = false;
            pump();
          });
        });
        pump();
        void showStatus();
      },
      (e) => {
        if (e instanceof StoreOpeningStopped) return;
        node.status({ fill: 'red', shape: 'dot', text: storeProblemText(e) });
        node.error(`sync-queue cannot open the queue: ${e instanceof Error ? e.message : String(e)}`);
      },
    );

    node.on('input', (msg, _send, done) => {
      void (async () => {
        try {
          const q = await opening;
          if (msg.queued === true) {
            pump();
            return done();
          }
          const ev = eventOf(msg.payload);
          const data: Record<string, unknown> = {};
          for (const k of DECISIONS) if (msg[k] && typeof msg[k] === 'object') data[k] = msg[k];
          const trigger = String((msg.sync as { trigger?: unknown } | undefined)?.trigger ?? 'manual');
          await q.enqueue(ev, { trigger, data: Object.keys(data).length ? data : undefined });
          done();
        } catch (e) {
          fail(node, msg, e, done);
        }
      })();
    });

    node.on('close', (_removed: boolean, done: () => void) => {
      closed = true;
      watch.stop();
      if (timer) clearTimeout(timer);
      if (statusTimer) clearTimeout(statusTimer);
      off?.();
      opening.then(
        (q) => q.release(),
        () => undefined,
      ).then(() => done(), () => done());
    });
  }
  RED.nodes.registerType('sync-queue', SyncQueueNode, { settings: migrationSettings('sync-queue') });
};
