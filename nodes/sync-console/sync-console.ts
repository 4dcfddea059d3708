/**
 * sync-console: the operator's console, a Node-RED editor plugin (a sidebar tab, sync-console.html).
 * This file is its thin admin adapter: it validates the editor's requests (zod), finds the data
 * folders of the deployed sync-log nodes, and answers from lib/console/console.ts. Replay and
 * resolve go through a sync-log node of the folder (the same code as its dialog), so replayed
 * events take that node's output 2 into its pipeline.
 *
 * Routes (views need the read permission, replay and resolve the write permission):
 *   GET  /siagh-sync/console/stores                 the data folders, the connections
 *   GET  /siagh-sync/console/:store/now?minutes=     queue, per-minute outcomes, last per pipeline
 *   GET  /siagh-sync/console/:store/failures?code=&offset=&limit=
 *   GET  /siagh-sync/console/:store/search?q=&offset=&limit=
 *   POST /siagh-sync/console/:store/replay           {crmId} or {code}
 *   POST /siagh-sync/console/:store/resolve          {crmId, decision: link + code | separate | acknowledge}
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
import { z } from 'zod';
import * as consoleView from '../../lib/console/console';
import { SyncError, toSyncError } from '../../lib/errors';
import { isGuid } from '../../lib/ref';
import { OpLog } from '../../lib/oplog/oplog';
import type { ConnectionState } from '../../lib/types';
import type { NodeAPI, Request, Response } from '../shared/red';
import { peekMappingIn, peekQueueIn } from '../shared/store-ref';
import { syncLogs, type SyncLogHandle } from '../shared/sync-log-registry';

const READ = 'sync-console.read';
const WRITE = 'sync-console.write';

const page = {
  offset: z.coerce.number().int().min(0).max(1_000_000).default(0),
  limit: z.coerce.number().int().min(1).max(100).default(20),
};
const NowQuery = z.object({ minutes: z.coerce.number().int().min(10).max(1440).default(180) });
const FailuresQuery = z.object({ code: z.string().trim().regex(/^[A-Za-z0-9_.-]{1,40}$/).optional(), ...page });
const SearchQuery = z.object({ q: z.string().trim().min(1).max(100), ...page });
const ReplayBody = z.union([z.object({ crmId: z.string().trim().refine(isGuid, 'not a GUID') }).strict(), z.object({ code: z.string().trim().regex(/^[A-Za-z0-9_.-]{1,40}$/) }).strict()]);

interface Store {
  id: string;
  dir: string;
  logs: SyncLogHandle[];
}

/** A short stable id for a data folder (the path itself is shown, not used in URLs). */
function storeId(dir: string): string {
  return createHash('sha1').update(dir).digest('hex').slice(0, 12);
}

function stores(): Store[] {
  const byDir = new Map<string, Store>();
  for (const h of syncLogs()) {
    const dir = path.resolve(h.dir);
    const s = byDir.get(dir) ?? { id: storeId(dir), dir, logs: [] };
    s.logs.push(h);
    byDir.set(dir, s);
  }
  return [...byDir.values()].sort((a, b) => a.dir.localeCompare(b.dir));
}

function parse<T>(schema: z.ZodType<T>, v: unknown, what: string): T {
  const r = schema.safeParse(v ?? {});
  if (!r.success) throw new SyncError('BAD_INPUT', `${what}: ${r.error.issues.map((i) => `${i.path.join('.') || 'value'}: ${i.message}`).join('; ')}`);
  return r.data;
}

/** A data folder that no deployed sync-log node keeps (404). */
class UnknownStore extends Error {}

function sendError(res: Response, e: unknown): void {
  if (e instanceof UnknownStore) {
    res.status(404).json({ ok: false, code: 'NOT_DEPLOYED', message: e.message });
    return;
  }
  const err = toSyncError(e);
  const status = err.code === 'BAD_INPUT' ? 400 : err.code === 'CONFIG' ? 409 : 500;
  res.status(status).json({ ok: false, code: err.code, message: err.message });
}

/** A URL as shown: no user:password part, no query (a token could hide there). */
function shownUrl(u: unknown): string | undefined {
  if (typeof u !== 'string' || !u) return undefined;
  try {
    const url = new URL(u);
    return `${url.protocol}//${url.host}${url.pathname === '/' ? '' : url.pathname}`;
  } catch {
    return undefined;
  }
}

export = function (RED: NodeAPI & { plugins?: { registerPlugin(id: string, def: Record<string, unknown>): void } }) {
  RED.plugins?.registerPlugin('sync-console', { type: 'siagh-sync-console' });

  function storeOf(req: Request): { store: Store; log: OpLog } {
    const store = stores().find((s) => s.id === String(req.params.store ?? ''));
    const log = store && OpLog.peek(store.dir);
    if (!store || !log) throw new UnknownStore('No deployed sync-log node keeps this data folder (deploy the flow, then refresh).');
    return { store, log };
  }

  function sources(req: Request): consoleView.ConsoleSources & { store: Store } {
    const { store, log } = storeOf(req);
    return { store, log, mappings: peekMappingIn(store.dir) };
  }

  /** Both servers' connections as the config nodes' clients know them (none is created for this). */
  function connections(): Array<{ id: string; name?: string; type: string; url?: string; state?: ConnectionState }> {
    const out: Array<{ id: string; name?: string; type: string; url?: string; state?: ConnectionState }> = [];
    RED.nodes.eachNode((def) => {
      if (def.type !== 'crm-config' && def.type !== 'siagh-config') return;
      const live = RED.nodes.getNode(def.id) as { connectionState?: () => ConnectionState | undefined } | null;
      const state = live?.connectionState?.();
      out.push({ id: def.id, type: def.type, ...(def.name ? { name: String(def.name) } : {}), url: shownUrl(def.baseUrl), ...(state ? { state } : {}) });
    });
    return out;
  }

  function route(method: 'get' | 'post', p: string, permission: string, answer: (req: Request) => Promise<unknown> | unknown): void {
    RED.httpAdmin[method](`/siagh-sync/console${p}`, RED.auth.needsPermission(permission), (req: Request, res: Response) => {
      Promise.resolve()
        .then(() => answer(req))
        .then(
          (body) => res.json({ ok: true, ...(body as object) }),
          (e) => sendError(res, e),
        );
    });
  }

  route('get', '/stores', READ, () => ({
    stores: stores().map((s) => ({ id: s.id, dir: s.dir, logNodes: s.logs.map((l) => ({ id: l.id, name: l.name, canReplay: l.canReplay })) })),
    connections: connections(),
  }));

  route('get', '/:store/now', READ, async (req) => {
    const q = parse(NowQuery, req.query, 'now');
    const src = sources(req);
    const queue = peekQueueIn(src.store.dir);
    return { ...(await consoleView.now({ ...src, queue: queue ? await queue.stats() : undefined }, q)), connections: connections() };
  });

  route('get', '/:store/failures', READ, (req) => {
    const q = parse(FailuresQuery, req.query, 'failures');
    return consoleView.failures(sources(req), q);
  });

  route('get', '/:store/search', READ, (req) => {
    const q = parse(SearchQuery, req.query, 'search');
    return consoleView.search(sources(req), q.q, q);
  });

  /** The sync-log node of the folder that can replay (its output 2 is wired). */
  function replayer(store: Store): SyncLogHandle {
    const h = store.logs.find((l) => l.canReplay);
    if (!h) throw new SyncError('CONFIG', `No sync-log node of ${store.dir} has its output 2 wired, so a replay would go nowhere. Wire output 2 of the pipeline's sync-log node back into its sync-queue (or crm-fetch).`);
    return h;
  }

  route('post', '/:store/replay', WRITE, async (req) => {
    const body = parse(ReplayBody, req.body, 'replay: send {crmId} or {code}');
    const { store } = storeOf(req);
    const h = replayer(store);
    const r = await h.replay(body);
    return { via: h.id, replayed: r.replayed, events: r.events };
  });

  route('post', '/:store/resolve', WRITE, async (req) => {
    const { store } = storeOf(req);
    const h = replayer(store);
    // sync-log validates the decision (its zod schema) and checks it answers the item's reason.
    const r = await h.resolve(req.body ?? {});
    return { via: h.id, ...(r as object) };
  });
};
