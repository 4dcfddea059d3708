/**
 * sync-log: the operator's view. Wire the end of each pipeline and the tab's Catch node into it.
 *
 * - Every other message is one line in `<data dir>/sync-log.jsonl` (queued, written in the
 *   background: the message moves on at once) and passes on output 1 unchanged.
 * - A failure (msg.error, or msg.sync.action "failed") that names a CRM record lands in the failed
 *   list (`<data dir>/failed.json`; on a PostgreSQL store the database's, shared by every
 *   instance); a later success for the same record, on any instance, takes it off.
 * - msg.topic "replay" (payload: {crmId, entity, code, olderThan, all: true}) sends the matching
 *   failed events on output 2, shaped as crm-fetch input; "stats" and "failed" answer on output 1.
 * - A failure with msg.review (LINK_NEEDS_REVIEW, DOCUMENT_CHANGED_AFTER_TRANSFER) is a review item:
 *   its entry keeps the facts; a blanket replay skips it; msg.topic "resolve" (payload {crmId,
 *   decision: link + code | separate | acknowledge}) replays it on output 2 with msg.linkDecision /
 *   msg.reviewDecision.
 * - The failed list is bounded (failedMaxEntries, failedMaxAgeDays; oldest dropped first).
 * - Admin endpoints (editor): POST /siagh-sync/sync-log/:id/replay, POST …/:id/resolve,
 *   GET …/:id/stats, GET …/:id/failed.
 */
import { z } from 'zod';
import { SyncError, toSyncError } from '../../lib/errors';
import { describeOperation, Operation, ReplayEvent, Trigger, TRIGGERS } from '../../lib/oplog/entry';
import { customerIdOf, isGuid } from '../../lib/ref';
import { DEFAULT_MAX_AGE_DAYS, DEFAULT_MAX_ENTRIES, type FailedEntry, type FailedFilter } from '../../lib/oplog/failed-list';
import { FailedWriteError, OpLog } from '../../lib/oplog/oplog';
import { KnownSecrets } from '../../lib/oplog/scrub';
import { queueHolding } from '../../lib/queue/queue-backend';
import type { Failure } from '../../lib/queue/sync-queue';
import { mappingFileIn } from '../../lib/store/data-folder';
import { MappingStore } from '../../lib/store/mapping-store';
import { classify } from '../../lib/sync/retry-policy';
import { jobOf } from '../shared/job';
import { dataDirFor, openFailedFor, peekQueueIn, StoreOpeningStopped, storeProblemText, storeSettings, watchStore } from '../shared/store-ref';
import { registerSyncLog } from '../shared/sync-log-registry';
import type { Node, NodeAPI, NodeDef, NodeMessage, Request, Response } from '../shared/red';
import { fail, num, updateTrace } from '../shared/support';
import { createNode, migrationSettings } from '../shared/saved-settings';

interface SyncLogDef extends NodeDef {
  /** The sync-store config node (its data folder and queue). */
  store?: string;
  /** Flows saved before sync-store: the folder itself. */
  dir?: string;
  trigger?: Trigger | 'auto';
  maxSizeMB?: string | number;
  keepFiles?: string | number;
  keepDays?: string | number;
  /** Not in the editor: longest a log line waits before it is written (ms, default 100). */
  flushMs?: string | number;
  /** Failed list: at most this many entries (default 10,000), the least recently failed dropped first. */
  failedMaxEntries?: string | number;
  /** Failed list: entries whose last failure is older than this many days are dropped (default 90; 0 = no limit). */
  failedMaxAgeDays?: string | number;
}

/** What the admin endpoints reach on a deployed node. */
interface SyncLogApi {
  replay(filter: unknown): Promise<{ replayed: number; events: ReplayEvent[] }>;
  stats(): Promise<Record<string, unknown>>;
  failed(filter: unknown): Promise<FailedEntry[]>;
  resolve(body: unknown): Promise<ResolveResult>;
}

interface ResolveResult {
  resolved: string;
  decision: Decision['decision'];
  event: ReplayEvent;
}

const ResolveSchema = z.discriminatedUnion('decision', [
  z.object({ crmId: z.string().trim().refine(isGuid, 'not a GUID'), decision: z.literal('link'), code: z.coerce.number().int().positive() }).strict(),
  z.object({ crmId: z.string().trim().refine(isGuid, 'not a GUID'), decision: z.literal('separate') }).strict(),
  z.object({ crmId: z.string().trim().refine(isGuid, 'not a GUID'), decision: z.literal('acknowledge') }).strict(),
]);
type Decision = z.infer<typeof ResolveSchema>;
/** Which decisions answer which review item. */
const DECISIONS_FOR: Record<string, ReadonlyArray<Decision['decision']>> = {
  LINK_NEEDS_REVIEW: ['link', 'separate'],
  DOCUMENT_CHANGED_AFTER_TRANSFER: ['acknowledge'],
};
const RESOLVE_SHAPE = '{crmId, decision: "link", code} or {crmId, decision: "separate"} (LINK_NEEDS_REVIEW), {crmId, decision: "acknowledge"} (DOCUMENT_CHANGED_AFTER_TRANSFER)';

function decisionOf(payload: unknown): Decision {
  const r = ResolveSchema.safeParse(payload);
  if (!r.success) {
    const why = r.error.issues.map((i) => `${i.path.join('.') || 'payload'}: ${i.message}`).join('; ');
    throw new SyncError('BAD_INPUT', `resolve: the payload is not understood (${why}). Send ${RESOLVE_SHAPE}.`);
  }
  return r.data;
}

const instances = new Map<string, SyncLogApi>();
const COMMANDS = new Set(['replay', 'stats', 'failed', 'resolve']);
/** At most this many events listed in a replay result (all are sent). */
const LISTED = 100;

function filterOf(payload: unknown): FailedFilter {
  if (typeof payload === 'string' && payload.trim()) return { crmId: payload.trim() };
  if (payload && typeof payload === 'object' && !Array.isArray(payload)) return payload as FailedFilter;
  return {};
}

export = function (RED: NodeAPI) {
  /** The secrets in the credentials of every node deployed (config nodes' passwords, a webhook token …). */
  const secrets = new KnownSecrets((collect) =>
    RED.nodes.eachNode((n) => {
      const creds = RED.nodes.getCredentials(n.id);
      if (creds) collect(creds);
    }),
  );

  function SyncLog(this: Node, def: SyncLogDef) {
    def = createNode(RED, this, 'sync-log', def);
    const node = this;
    const trigger: Trigger | 'auto' = def.trigger && (TRIGGERS as string[]).includes(def.trigger) ? def.trigger : 'auto';
    let dir = '';
    let log: OpLog | undefined;
    let opening: Promise<OpLog>;
    /** A postgres store's failed list (shared by every instance): released after the OpLog. */
    let failedSource: { release(): Promise<void> } | undefined;
    // A PostgreSQL store not reachable yet is tried again until it opens (store-ref's keepOpening).
    const watch = watchStore(node, 'sync-log');
    try {
      dir = dataDirFor(RED, def, 'sync log folder');
      const legacyDir = typeof def.dir === 'string' && !!def.dir.trim() && !def.store;
      const s = legacyDir ? undefined : storeSettings(RED, def.store);
      const opts = {
        maxBytes: Math.max(1024, Math.round(num(def.maxSizeMB, 10, 0.000001) * 1024 * 1024)),
        keepFiles: Math.round(num(def.keepFiles, 10, 0)),
        keepDays: num(def.keepDays, 30, 0),
        flushMs: Math.round(num(def.flushMs, 100, 0)),
        maxEntries: Math.round(num(def.failedMaxEntries, DEFAULT_MAX_ENTRIES, 1)),
        maxAgeDays: num(def.failedMaxAgeDays, DEFAULT_MAX_AGE_DAYS, 0),
      };
      opening = (async () => {
        const f = s ? await openFailedFor(s, watch) : undefined;
        failedSource = f;
        try {
          return await OpLog.acquire(dir, { ...opts, ...(f ? { failed: { backend: f.backend, where: f.where } } : {}) });
        } catch (e) {
          failedSource = undefined;
          await f?.release();
          throw e;
        }
      })();
    } catch (e) {
      opening = Promise.reject(e);
    }
    let ok = 0;
    let failed = 0;
    let broken = false;
    let lastWarn = 0;
    let offError: (() => void) | undefined;
    let offDrop: (() => void) | undefined;
    let closed = false;

    const showCounts = () => {
      if (broken) return;
      node.status({ fill: failed ? 'yellow' : 'green', shape: 'dot', text: `${ok} ok · ${failed} failed` });
    };
    opening.then(
      (l) => {
        if (closed) return;
        log = l;
        offError = l.onError((e) => {
          node.status({ fill: 'red', shape: 'ring', text: 'log write error' });
          if (e instanceof FailedWriteError && e.lost) {
            // A failed-list change on PostgreSQL that will never be written: each one is an error naming its record.
            node.error(`sync-log: ${e.message}`);
            return;
          }
          const now = Date.now();
          if (now - lastWarn > 60_000) {
            lastWarn = now;
            node.warn(`sync-log: ${e.message}${e instanceof FailedWriteError ? '' : ' Lines are kept in memory and written again shortly.'}`);
          }
        });
        offDrop = l.onDrop((r) => {
          const why = r.why === 'age' ? `their last failure is older than ${l.failed.limits.maxAgeDays} days` : `the list holds at most ${l.failed.limits.maxEntries} entries`;
          node.warn(`sync-log: ${r.count} failed entr${r.count === 1 ? 'y was' : 'ies were'} dropped from ${l.failedFile}: ${why} (oldest last failed ${r.oldestAt}; e.g. ${r.keys.join(', ')}). They are no longer replayable; ${l.failed.dropped} dropped since start.`);
        });
        l.failedCount().then(
          (waiting) => {
            if (!closed && !ok && !failed) node.status({ fill: 'grey', shape: 'ring', text: waiting ? `${waiting} to replay` : 'ready' });
          },
          (e) => node.warn(`sync-log: ${toSyncError(e).message}`),
        );
        if (l.failedSetAside) node.warn(`sync-log: ${l.failedFile} could not be read; it was kept as ${l.failedSetAside} and a new failed list started.`);
      },
      (e) => {
        if (e instanceof StoreOpeningStopped) return;
        broken = true;
        const pg = e?.code !== 'CONFIG' && storeProblemText(e);
        node.status({ fill: 'red', shape: 'dot', text: e?.code === 'CONFIG' ? 'config error' : pg && pg !== 'queue error' ? pg : 'log error' });
        node.error(`sync-log cannot open its ${pg && pg !== 'queue error' ? 'failed list' : 'files'} in ${dir || '(folder setting)'}: ${toSyncError(e).message}`);
      },
    );

    function apply(l: OpLog, op: Operation): void {
      try {
        // The failed-list change goes on in the background (its errors reach onError above).
        void l.record(op);
      } catch (e) {
        node.warn(`sync-log: ${toSyncError(e).message}`);
      }
    }

    function replayMessages(entries: FailedEntry[], decision?: Decision): NodeMessage[] {
      return entries.map((e) => {
        const m: NodeMessage = { payload: { ...e.event } };
        // The operator's answer to a review item, as siagh-upsert reads it (crmId guards the record).
        if (decision?.decision === 'link') m.linkDecision = { decision: 'link', code: decision.code, crmId: e.event.id };
        else if (decision?.decision === 'separate') m.linkDecision = { decision: 'separate', crmId: e.event.id };
        else if (decision?.decision === 'acknowledge') m.reviewDecision = { decision: 'acknowledge', crmId: e.event.id };
        updateTrace(m, { trigger: 'replay', event: e.event.event, entity: e.entity, crmId: e.event.id, attempts: e.attempts, step: 'sync-log' });
        return m;
      });
    }

    // Replayed events leave on output 2; with nothing wired there they would be marked as replayed
    // and go nowhere, so replay is refused.
    const wires = (def as { wires?: unknown }).wires;
    const canReplay = Array.isArray(wires) && Array.isArray(wires[1]) && wires[1].length > 0;

    async function replay(filter: unknown): Promise<{ entries: FailedEntry[]; messages: NodeMessage[] }> {
      if (!canReplay) {
        throw new SyncError('CONFIG', 'Output 2 of this sync-log node is not wired, so replayed events would go nowhere. Wire it to a crm-fetch set to "from msg.payload.type" (followed by the sync pipeline), or replay from the sync-log node of the webhook flow.');
      }
      const l = await opening;
      const entries = await l.takeForReplay(filterOf(filter));
      return { entries, messages: replayMessages(entries) };
    }

    /** A review item answered: its event on output 2 with the decision (sync-queue carries it to siagh-upsert). */
    async function resolve(payload: unknown): Promise<{ result: ResolveResult; messages: NodeMessage[] }> {
      const d = decisionOf(payload);
      if (!canReplay) {
        throw new SyncError('CONFIG', 'Output 2 of this sync-log node is not wired, so the resolved item would go nowhere. Wire it to the sync-queue (or crm-fetch) of the pipeline, or resolve from the sync-log node whose output 2 is wired.');
      }
      const l = await opening;
      const item = await l.reviewItem(d.crmId);
      const code = item.reason.code.toUpperCase();
      const allowed = DECISIONS_FOR[code] ?? [];
      if (!allowed.includes(d.decision)) {
        throw new SyncError('BAD_INPUT', `resolve: "${d.decision}" does not answer a ${code} item (CRM record ${item.event.id}); use ${allowed.map((a) => `"${a}"`).join(' or ')}.`);
      }
      await l.markReplayed([item.key]);
      return { result: { resolved: item.key, decision: d.decision, event: { ...item.event } }, messages: replayMessages([item], d) };
    }

    async function stats(): Promise<Record<string, unknown>> {
      const l = await opening;
      const snap: Record<string, unknown> = { ...(await l.snapshot()), logFile: l.logFile, failedFile: l.failedFile, failedLimits: l.failed.limits };
      const mappings = MappingStore.peek(mappingFileIn(dir));
      if (mappings) snap.mappings = mappings.stats();
      const queue = peekQueueIn(dir);
      if (queue) snap.queue = await queue.stats();
      return snap;
    }

    async function listFailed(filter: unknown): Promise<FailedEntry[]> {
      const l = await opening;
      const f = filterOf(filter);
      const picked = Object.keys(f).length ? await l.failed.match(f) : await l.failed.all();
      return picked.map((e) => ({ ...e, event: { ...e.event }, reason: { ...e.reason }, ...(e.review ? { review: structuredClone(e.review) } : {}) }));
    }

    const api: SyncLogApi = {
      async replay(filter) {
        const r = await replay(filter);
        if (r.messages.length) node.send([null, r.messages]);
        return { replayed: r.entries.length, events: r.entries.slice(0, LISTED).map((e) => e.event) };
      },
      stats,
      failed: listFailed,
      async resolve(body) {
        const r = await resolve(body);
        node.send([null, r.messages]);
        return r.result;
      },
    };
    instances.set(node.id, api);
    // The operator's console replays and resolves through this node too.
    const unregister = dir ? registerSyncLog({ id: node.id, name: node.name, dir, canReplay, replay: api.replay, resolve: api.resolve }) : () => undefined;

    node.on('input', (msg: NodeMessage, send, done) => {
      const topic = typeof msg.topic === 'string' ? msg.topic.trim().toLowerCase() : '';
      // A command is a message without a trace and without an error: pipeline messages (they all
      // carry msg.sync) are log entries whatever their topic, and a Catch node's copy of a failed
      // command must not run it again.
      const traced = !!msg.sync && typeof msg.sync === 'object' && typeof (msg.sync as { traceId?: unknown }).traceId === 'string';
      if (COMMANDS.has(topic) && !msg.error && !traced) {
        void (async () => {
          try {
            if (topic === 'replay') {
              const r = await replay(msg.payload);
              msg.payload = { replayed: r.entries.length, events: r.entries.slice(0, LISTED).map((e) => e.event) };
              send([msg, r.messages.length ? r.messages : null]);
            } else if (topic === 'resolve') {
              const r = await resolve(msg.payload);
              msg.payload = r.result;
              send([msg, r.messages]);
            } else if (topic === 'stats') {
              msg.payload = await stats();
              send([msg, null]);
            } else {
              msg.payload = await listFailed(msg.payload);
              send([msg, null]);
            }
            done();
          } catch (e) {
            fail(node, msg, e, done);
            showCountsLater();
          }
        })();
        return;
      }

      // An error this node raised itself (a bad replay request) comes back through Catch: pass it on, do not log it.
      const source = (msg.error as { source?: { id?: string } } | undefined)?.source;
      if (source && source.id === node.id) {
        send([msg, null]);
        done();
        return;
      }

      let op: Operation | undefined;
      try {
        op = describeOperation({
          trace: msg.sync,
          error: msg.error,
          payload: msg.payload,
          query: (msg.req as { query?: unknown } | undefined)?.query,
          fromHttp: msg.req !== undefined && msg.req !== null,
          defaultTrigger: trigger,
          review: msg.review,
          secrets: secrets.list(),
        });
      } catch (e) {
        node.warn(`sync-log could not describe a message: ${toSyncError(e).message}`);
      }
      const job = jobOf(msg);
      if (op && job) {
        // A queued job: its outcome ends it, or puts it back for a retry (logged, not a failure yet).
        const o = op;
        void settleJob(msg, job, o).then(
          (dead) => {
            record(o);
            for (const d of dead) record(d);
            send([msg, null]);
            done();
          },
          (e) => fail(node, msg, e, done),
        );
        return;
      }
      if (op) record(op);
      send([msg, null]);
      done();
    });

    function record(o: Operation): void {
      if (o.line.status === 'failed') failed++;
      else if (o.line.status === 'ok') ok++;
      // Queue only: the line is written in the background, the message moves on now.
      if (log) apply(log, o);
      else opening.then((l) => apply(l, o), () => undefined);
      showCounts();
    }

    /**
     * Tell the queue how the job ended. Success: done. Failure: retried later (the line says
     * "retrying"), waiting for its customer ("waiting"), or dead (a failure in the failed list, as
     * are the jobs that waited for it: returned for the log).
     */
    async function settleJob(msg: NodeMessage, job: { id: string; token: string }, op: Operation): Promise<Operation[]> {
      const queue = queueHolding(job.id, job.token);
      delete msg.job;
      if (!queue) {
        // The lease ran out meanwhile and the job went back to the queue: it runs again.
        if (op.line.status === 'failed') op.line.status = 'retrying';
        return [];
      }
      if (op.line.status === 'ok') {
        await queue.complete(job.id, job.token);
        return [];
      }
      const c = classify(msg.error ?? op.line.error);
      const f: Failure = { kind: c.kind, code: op.line.error?.code ?? 'ERROR', message: op.line.error?.message ?? c.reason, retryAfterMs: c.retryAfterMs };
      if (c.kind === 'dependency') {
        const customerId = customerIdOf(msg.payload);
        if (customerId) f.dependency = { type: 'Identity', id: customerId, event: 'Update' };
        else f.kind = 'permanent';
      }
      const r = await queue.fail(job.id, job.token, f);
      if (r.outcome === 'retry' || r.outcome === 'stale') {
        op.line.status = 'retrying';
        if (r.at) op.line.nextAttemptAt = new Date(r.at).toISOString();
      } else if (r.outcome === 'dependency') {
        op.line.status = 'waiting';
      }
      return r.dependents.map((d) => ({
        line: { time: new Date().toISOString(), trigger: d.trigger, status: 'failed', entity: d.event.type.toLowerCase(), crmId: d.event.id, event: d.event.event, action: 'failed', error: d.lastError, attempts: d.attempts },
        key: d.key,
        event: d.event,
        entity: d.event.type.toLowerCase(),
      }));
    }

    function showCountsLater(): void {
      setTimeout(showCounts, 3000).unref();
    }

    node.on('close', (_removed: boolean, done: () => void) => {
      closed = true;
      watch.stop();
      if (instances.get(node.id) === api) instances.delete(node.id);
      unregister();
      opening
        .then(
          // Still listening while the last release writes what is queued: a failed-list change lost
          // there (PostgreSQL away) is said by this node.
          (l) => l.release(),
          () => undefined,
        )
        .catch((e) => node.warn(`sync-log: ${toSyncError(e).message}`))
        .then(() => {
          offError?.();
          offDrop?.();
        })
        .then(() => failedSource?.release())
        .catch((e) => node.warn(`sync-log: ${toSyncError(e).message}`))
        .then(() => done());
    });
  }

  RED.nodes.registerType('sync-log', SyncLog, { settings: migrationSettings('sync-log') });

  // ------------------------------------------------------------------ admin endpoints (editor)

  function sendError(res: Response, e: unknown): void {
    const err = toSyncError(e);
    res.status(err.code === 'BAD_INPUT' ? 400 : err.code === 'CONFIG' ? 409 : 500).json({ ok: false, code: err.code, message: err.message });
  }

  function apiOf(req: Request, res: Response): SyncLogApi | undefined {
    const api = instances.get(String(req.params.id ?? ''));
    if (!api) {
      res.status(404).json({ ok: false, code: 'NOT_DEPLOYED', message: 'This sync-log node is not deployed (deploy it first).' });
      return undefined;
    }
    return api;
  }

  RED.httpAdmin.post('/siagh-sync/sync-log/:id/replay', RED.auth.needsPermission('sync-log.write'), (req: Request, res: Response) => {
    const api = apiOf(req, res);
    if (!api) return;
    api.replay(req.body ?? {}).then(
      (r) => res.json({ ok: true, ...r }),
      (e) => sendError(res, e),
    );
  });

  RED.httpAdmin.post('/siagh-sync/sync-log/:id/resolve', RED.auth.needsPermission('sync-log.write'), (req: Request, res: Response) => {
    const api = apiOf(req, res);
    if (!api) return;
    api.resolve(req.body ?? {}).then(
      (r) => res.json({ ok: true, ...r }),
      (e) => sendError(res, e),
    );
  });

  RED.httpAdmin.get('/siagh-sync/sync-log/:id/stats', RED.auth.needsPermission('sync-log.read'), (req: Request, res: Response) => {
    const api = apiOf(req, res);
    if (!api) return;
    api.stats().then(
      (s) => res.json(s),
      (e) => sendError(res, e),
    );
  });

  RED.httpAdmin.get('/siagh-sync/sync-log/:id/failed', RED.auth.needsPermission('sync-log.read'), (req: Request, res: Response) => {
    const api = apiOf(req, res);
    if (!api) return;
    const q = req.query ?? {};
    const filter: Record<string, unknown> = {};
    for (const k of ['crmId', 'entity', 'code', 'olderThan', 'limit']) if (typeof q[k] === 'string' && q[k]) filter[k] = q[k];
    api.failed(filter).then(
      (list) => res.json({ ok: true, count: list.length, entries: list }),
      (e) => sendError(res, e),
    );
  });
};
