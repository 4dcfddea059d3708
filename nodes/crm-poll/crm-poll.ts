/**
 * crm-poll: on each input (an inject every POLL_INTERVAL_SECONDS) lists the CRM records that are
 * new or changed since their cursor — identities, quotes and invoices, as chosen in `types` — and
 * sends one message per record, in the shape crm-fetch reads:
 * payload {id, type: 'Identity', kind: 'person' | 'organization'} (kind absent when the CRM did not
 * tell), {id, type: 'Quote'} or {id, type: 'Invoice'}, each with modifyDate when known. The
 * listing logic (find on modifyDate or scan, overlap window, durable cursor) is lib/sync/poller.ts;
 * this node runs one Poller per type, identities first.
 *
 * - A tick while a run is still listing starts no second run (a warning, done()).
 * - msg.reset === true clears every cursor of the node: the next run is a full reconcile.
 * - The cursors live in the mapping file's meta area (key `poll.cursor.<cursor name or node id>`
 *   for identities, with `:quote` / `:invoice` appended for the others), the same file
 *   sync-mapping uses by default.
 * - A type whose listing fails does not stop the others: their records are sent, then the first
 *   failure goes to done(err) (a Catch node); the failed type's cursor stays.
 */
import { SyncError } from '../../lib/errors';
import { Leader } from '../../lib/pg/leader';
import { POLL_ENTITIES, Poller, cursorLabel, type PollEntity, type PollMode, type PollResult, type PollSource } from '../../lib/sync/poller';
import type { CrmConfigNode } from '../crm-config/options';
import { MappingHandle, openMappingFor, StoreOpeningStopped, storeProblemText, storeSettings, watchStore } from '../shared/store-ref';
import type { Node, NodeAPI, NodeDef, NodeMessage } from '../shared/red';
import { fail, num, updateTrace } from '../shared/support';
import { createNode, migrationSettings } from '../shared/saved-settings';

interface CrmPollDef extends NodeDef {
  crm: string;
  /** Which types to poll: comma-separated `identity`, `quote`, `invoice` (or an array). Default all three. */
  types?: string | string[];
  mode?: PollMode;
  overlapSeconds?: string | number;
  fullEvery?: string | number;
  pageSize?: string | number;
  /** The sync-store config node (the cursors live in its mapping file). */
  store?: string;
  /** Flows saved before sync-store: the mapping file itself. */
  file?: string;
  cursorName?: string;
}

/** The message type crm-fetch (auto) reads for each entity. */
const MSG_TYPE: Record<PollEntity, string> = { identity: 'Identity', quote: 'Quote', invoice: 'Invoice' };
const PLURAL: Record<PollEntity, string> = { identity: 'identities', quote: 'quotes', invoice: 'invoices' };

/** The types setting: undefined or empty = all three; anything unknown is a CONFIG error. */
function pollTypes(v: unknown): PollEntity[] {
  const parts = (Array.isArray(v) ? v.map(String) : typeof v === 'string' ? v.split(',') : []).map((x) => x.trim().toLowerCase()).filter(Boolean);
  if (v !== undefined && v !== null && v !== '' && !Array.isArray(v) && typeof v !== 'string') throw new SyncError('CONFIG', 'The types to poll must be a list of identity, quote, invoice.');
  if (parts.length === 0) return [...POLL_ENTITIES];
  const bad = parts.filter((x) => !(POLL_ENTITIES as readonly string[]).includes(x));
  if (bad.length) throw new SyncError('CONFIG', `crm-poll cannot poll "${bad.join(', ')}": choose among identity, quote, invoice.`);
  return POLL_ENTITIES.filter((e) => parts.includes(e));
}

function partText(res: PollResult): string {
  const n = res.items.length;
  if (res.entity === 'identity') {
    if (res.fellBack) return `${n} listed · scan (find unsupported)`;
    if (res.mode === 'scan') return `${n} listed · full scan`;
    return `${n} changed${res.full ? ' (full)' : ''} · cursor ${cursorLabel(res.cursor)}`;
  }
  if (res.unsupported) return `${PLURAL[res.entity]} skipped (no find)`;
  return `${n} ${n === 1 ? res.entity : PLURAL[res.entity]}`;
}

function statusText(results: PollResult[]): string {
  return results.map(partText).join(' · ');
}

export = function (RED: NodeAPI) {
  function CrmPoll(this: Node, def: CrmPollDef) {
    def = createNode(RED, this, 'crm-poll', def);
    const node = this;
    const config = RED.nodes.getNode(def.crm) as CrmConfigNode | null;
    const abort = new AbortController();
    let closed = false;
    let running = false;
    let offRetry: (() => void) | undefined;

    const source: PollSource = {
      findIdentities: (kind, opts) => clientOf().findIdentities(kind, opts),
      searchIdentities: (opts) => clientOf().searchIdentities(opts),
      findDocuments: (kind, opts) => clientOf().findDocuments(kind, opts),
    };
    function clientOf() {
      if (!config) throw new SyncError('CONFIG', 'crm-poll has no CRM config node. Open it and choose one.');
      return config.client();
    }

    let opening: Promise<MappingHandle>;
    const watch = watchStore(node, 'crm-poll');
    let polling: Promise<Poller[]>;
    /** PostgreSQL store: polling runs on the instance that leads (see lib/pg/leader.ts); undefined: always. */
    let leader: Promise<Leader> | undefined;
    let role: 'leader' | 'standby' | 'waiting' = 'leader';
    try {
      const types = pollTypes(def.types);
      const base = `poll.cursor.${(def.cursorName ?? '').trim() || node.id}`;
      const options = {
        mode: (def.mode === 'scan' ? 'scan' : 'find') as PollMode,
        overlapMs: num(def.overlapSeconds, 120, 0) * 1000,
        fullEvery: Math.floor(num(def.fullEvery, 0, 0)),
        pageSize: Math.round(num(def.pageSize, 200, 1)),
      };
      // A PostgreSQL store not reachable yet is tried again until it opens (store-ref's keepOpening).
      opening = openMappingFor(RED, def, watch);
      // The identities' key is the one used before quotes and invoices were polled: their cursor carries over.
      polling = opening.then((h) => types.map((entity) => new Poller({ ...options, entity, key: entity === 'identity' ? base : `${base}:${entity}`, source, store: h.backend })));
      const s = def.store ? storeSettings(RED, def.store) : undefined;
      if (s?.backend === 'postgres' && s.pg) {
        role = 'standby';
        leader = Leader.start(s.pg, {
          name: `poll:${(def.cursorName ?? '').trim() || node.id}`,
          onChange: (r, why) => {
            role = r;
            if (closed) return;
            if (r === 'leader') node.status({ fill: 'green', shape: 'ring', text: 'leader' });
            else if (r === 'standby') node.status({ fill: 'grey', shape: 'ring', text: 'standby (another instance polls)' });
            else node.status({ fill: 'yellow', shape: 'ring', text: `waiting for PostgreSQL${why ? `: ${why.replace(/^PostgreSQL:? ?/, '')}` : ''}`.slice(0, 80) });
          },
        });
        leader.catch(() => undefined);
      }

    } catch (e) {
      opening = Promise.reject(e);
      polling = opening as unknown as Promise<Poller[]>;
    }
    polling.then(
      async (pollers) => {
        if (closed) return;
        const ids = pollers.find((p) => p.entity === 'identity');
        const c = await (ids ?? pollers[0])?.savedCursor();
        if (closed) return;
        if (leader) {
          if (!config) node.status({ fill: 'red', shape: 'dot', text: 'no CRM config' });
          else node.status({ fill: role === 'leader' ? 'green' : 'grey', shape: 'ring', text: role === 'leader' ? 'leader' : role === 'standby' ? 'standby (another instance polls)' : 'waiting for PostgreSQL' });
          return;
        }
        const head = ids?.mode === 'scan' ? 'scan mode' : c ? `cursor ${cursorLabel(c)}` : 'no cursor yet (first run lists all)';
        const types = pollers.length === POLL_ENTITIES.length ? '' : ` · ${pollers.map((p) => PLURAL[p.entity]).join(', ')} only`;
        if (!config) node.status({ fill: 'red', shape: 'dot', text: 'no CRM config' });
        else node.status({ fill: 'grey', shape: 'ring', text: head + types });
      },
      (e) => {
        if (closed || e instanceof StoreOpeningStopped) return;
        if (/PostgreSQL/.test(String(e?.message))) {
          node.status({ fill: 'red', shape: 'dot', text: storeProblemText(e) });
          node.error(`crm-poll cannot open the data store: ${e.message}`);
        } else node.status({ fill: 'red', shape: 'dot', text: e?.code === 'STORE_LOCKED' ? 'file locked' : e?.code === 'CONFIG' ? 'config error' : 'store error' });
      },
    ).catch(() => undefined);
    if (config) offRetry = config.onRetry(() => node.status({ fill: 'yellow', shape: 'ring', text: 'polling… (retrying)' }));

    node.on('input', (msg: NodeMessage, send, done) => {
      if (!leader || msg.reset === true) return onInput(msg, send, done);
      // A tick that comes before the first election (the deploy's first run) waits for it.
      void leader.then(
        () => (role === 'leader' ? onInput(msg, send, done) : done()),
        () => done(),
      );
    });

    function onInput(msg: NodeMessage, send: (m: NodeMessage) => void, done: (e?: Error) => void): void {
      if (msg.reset === true) {
        void (async () => {
          try {
            const pollers = await polling;
            for (const p of pollers) await p.reset();
            node.status({ fill: 'grey', shape: 'ring', text: 'cursor cleared (next run lists all)' });
            done();
          } catch (e) {
            fail(node, msg, e, done);
          }
        })();
        return;
      }
      if (running) {
        node.warn('A poll tick arrived while the previous run was still listing; no second run was started. If this happens often, lengthen the interval (POLL_INTERVAL_SECONDS).');
        done();
        return;
      }
      running = true;
      void (async () => {
        try {
          const pollers = await polling;
          clientOf();
          node.status({ fill: 'blue', shape: 'ring', text: 'polling…' });
          const results: PollResult[] = [];
          let failure: unknown;
          for (const poller of pollers) {
            let res: PollResult;
            try {
              res = await poller.run({ signal: abort.signal });
            } catch (e) {
              // Stopped (close): nothing more. Otherwise the other types still run.
              if (closed) return done();
              failure ??= e;
              continue;
            }
            if (closed) return done();
            results.push(res);
            for (const w of res.warnings) node.warn(w);
            if (res.relisted) {
              node.log(`First run since start: the last runs' window of ${PLURAL[res.entity]} was listed again (${res.items.length}), in case a stop interrupted their syncs; the unchanged ones write nothing.`);
            }
            for (const item of res.items) {
              const payload: Record<string, unknown> = { id: item.crmId, type: MSG_TYPE[item.entity] };
              if (item.kind) payload.kind = item.kind;
              if (item.modifyDate) payload.modifyDate = item.modifyDate;
              const m: NodeMessage = { payload };
              if (msg.topic !== undefined) m.topic = msg.topic;
              updateTrace(m, { trigger: 'poll', entity: item.entity === 'identity' ? item.kind ?? 'identity' : item.entity, crmId: item.crmId, step: 'crm-poll' });
              send(m);
            }
          }
          if (failure !== undefined) {
            fail(node, msg, failure, done, [config?.credentials?.password]);
            return;
          }
          const warn = results.some((r) => r.warnings.length > 0 || r.unsupported);
          node.status({ fill: warn ? 'yellow' : 'green', shape: 'dot', text: statusText(results) });
          done();
        } catch (e) {
          if (closed) return done();
          fail(node, msg, e, done, [config?.credentials?.password]);
        } finally {
          running = false;
        }
      })();
    }

    node.on('close', (_removed: boolean, done: () => void) => {
      closed = true;
      watch.stop();
      abort.abort();
      offRetry?.();
      const stopLeader = leader ? leader.then((l) => l.stop(), () => undefined) : Promise.resolve();
      Promise.all([stopLeader, opening.then((h) => h.release(), () => undefined)]).then(() => done(), () => done());
    });
  }
  RED.nodes.registerType('crm-poll', CrmPoll, { settings: migrationSettings('crm-poll') });
};
