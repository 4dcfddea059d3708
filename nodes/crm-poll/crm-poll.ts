/**
 * crm-poll: on each input (an inject every POLL_INTERVAL_SECONDS) lists the CRM identities that
 * are new or changed since its cursor and sends one message per identity, in the shape crm-fetch
 * (Identity) reads: payload {id, type: 'Identity', subtype: 'حقیقی' | 'حقوقی'}. The listing logic
 * (find on modifyDate or scan, overlap window, durable cursor) is lib/sync/poller.ts.
 *
 * - A tick while a run is still listing starts no second run (a warning, done()).
 * - msg.reset === true clears the cursor: the next run is a full reconcile.
 * - The cursor lives in the mapping file's meta area (key `poll.cursor.<cursor name or node id>`),
 *   the same file sync-mapping uses by default.
 */
import path from 'node:path';
import { SyncError } from '../../lib/errors';
import { MappingStore } from '../../lib/store/mapping-store';
import { Poller, cursorLabel, type PollMode, type PollResult, type PollSource } from '../../lib/sync/poller';
import type { CrmConfigNode } from '../crm-config/options';
import { defaultDataDir, userPath } from '../shared/data-path';
import type { Node, NodeAPI, NodeDef, NodeMessage } from '../shared/red';
import { fail, num, updateTrace } from '../shared/support';

interface CrmPollDef extends NodeDef {
  crm: string;
  mode?: PollMode;
  overlapSeconds?: string | number;
  fullEvery?: string | number;
  pageSize?: string | number;
  file?: string;
  cursorName?: string;
}

/** What crm-fetch's kindFromSubtype reads (the real CRM's subtypes contain these words). */
const SUBTYPE = { person: 'حقیقی', organization: 'حقوقی' } as const;

function statusText(res: PollResult): string {
  const n = res.items.length;
  if (res.fellBack) return `${n} listed · scan (find unsupported)`;
  if (res.mode === 'scan') return `${n} listed · full scan`;
  return `${n} changed${res.full ? ' (full)' : ''} · cursor ${cursorLabel(res.cursor)}`;
}

export = function (RED: NodeAPI) {
  function CrmPoll(this: Node, def: CrmPollDef) {
    RED.nodes.createNode(this, def);
    const node = this;
    const config = RED.nodes.getNode(def.crm) as CrmConfigNode | null;
    const abort = new AbortController();
    let closed = false;
    let running = false;
    let offRetry: (() => void) | undefined;

    const source: PollSource = {
      findIdentities: (kind, opts) => clientOf().findIdentities(kind, opts),
      searchIdentities: (opts) => clientOf().searchIdentities(opts),
    };
    function clientOf() {
      if (!config) throw new SyncError('CONFIG', 'crm-poll has no CRM config node. Open it and choose one.');
      return config.client();
    }

    let opening: Promise<MappingStore>;
    let polling: Promise<Poller>;
    try {
      const file = userPath(def.file, path.join(defaultDataDir(), 'mappings.json'), RED.settings.userDir, 'mapping file path');
      const options = {
        key: `poll.cursor.${(def.cursorName ?? '').trim() || node.id}`,
        mode: (def.mode === 'scan' ? 'scan' : 'find') as PollMode,
        overlapMs: num(def.overlapSeconds, 120, 0) * 1000,
        fullEvery: Math.floor(num(def.fullEvery, 0, 0)),
        pageSize: Math.round(num(def.pageSize, 200, 1)),
      };
      opening = MappingStore.open(file);
      polling = opening.then((store) => new Poller({ ...options, source, store }));
    } catch (e) {
      opening = Promise.reject(e);
      polling = opening as unknown as Promise<Poller>;
    }
    polling.then(
      (p) => {
        if (closed) return;
        if (!config) node.status({ fill: 'red', shape: 'dot', text: 'no CRM config' });
        else if (p.mode === 'scan') node.status({ fill: 'grey', shape: 'ring', text: 'scan mode' });
        else {
          const c = p.cursor();
          node.status({ fill: 'grey', shape: 'ring', text: c ? `cursor ${cursorLabel(c)}` : 'no cursor yet (first run lists all)' });
        }
      },
      (e) => {
        if (!closed) node.status({ fill: 'red', shape: 'dot', text: e?.code === 'STORE_LOCKED' ? 'file locked' : e?.code === 'CONFIG' ? 'config error' : 'store error' });
      },
    );
    if (config) offRetry = config.onRetry(() => node.status({ fill: 'yellow', shape: 'ring', text: 'polling… (retrying)' }));

    node.on('input', (msg: NodeMessage, send, done) => {
      if (msg.reset === true) {
        void (async () => {
          try {
            const poller = await polling;
            await poller.reset();
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
          const poller = await polling;
          clientOf();
          node.status({ fill: 'blue', shape: 'ring', text: 'polling…' });
          const res = await poller.run({ signal: abort.signal });
          if (closed) return done();
          for (const w of res.warnings) node.warn(w);
          if (res.relisted) node.log(`First run since start: the last runs' window was listed again (${res.items.length} identities), in case a stop interrupted their syncs; the unchanged ones write nothing.`);
          for (const item of res.items) {
            const payload: Record<string, unknown> = { id: item.id, type: 'Identity' };
            if (item.kind) payload.subtype = SUBTYPE[item.kind];
            if (item.modifyDate) payload.modifyDate = item.modifyDate;
            const m: NodeMessage = { payload };
            if (msg.topic !== undefined) m.topic = msg.topic;
            updateTrace(m, { trigger: 'poll', entity: item.kind ?? 'identity', crmId: item.id, step: 'crm-poll' });
            send(m);
          }
          node.status({ fill: res.warnings.length ? 'yellow' : 'green', shape: 'dot', text: statusText(res) });
          done();
        } catch (e) {
          if (closed) return done();
          fail(node, msg, e, done, [config?.credentials?.password]);
        } finally {
          running = false;
        }
      })();
    });

    node.on('close', (_removed: boolean, done: () => void) => {
      closed = true;
      abort.abort();
      offRetry?.();
      opening.then(
        (s) => s.close(),
        () => undefined,
      ).then(() => done(), () => done());
    });
  }
  RED.nodes.registerType('crm-poll', CrmPoll);
};
