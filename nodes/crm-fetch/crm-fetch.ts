/**
 * crm-fetch: authenticated reads from the CRM — a person, an organization, an identity of either
 * kind, a quote, an invoice, or all identities (paged). The record goes to msg.payload; msg.sync
 * carries the trace.
 *
 * Which record: lib/ref.ts `refOf` (msg.payload.id of an event, msg.req.query.id of a CRM webhook,
 * msg.payload when it is the id as text, … in the order documented there). Person or organization:
 * msg.payload.kind ('person' | 'organization', as crm-poll and sync-queue send it), else the
 * webhook's subtype when it contains حقیقی / حقوقی, else the CRM record itself.
 */
import { SyncError } from '../../lib/errors';
import { requireCrmId, type FoundRef } from '../../lib/ref';
import type { CrmConfigNode } from '../crm-config/options';
import type { Node, NodeAPI, NodeDef, NodeMessage } from '../shared/red';
import { fail, num, StatusCounter, updateTrace } from '../shared/support';
import { pick, refOfMsg } from '../shared/msg-input';
import { holdJob } from '../shared/job';
import { createNode, migrationSettings } from '../shared/saved-settings';

type What = 'identity' | 'person' | 'organization' | 'quote' | 'invoice' | 'auto' | 'search';

interface CrmFetchDef extends NodeDef {
  crm: string;
  what: What;
  searchOutput?: 'each' | 'array';
  pageSize?: string | number;
}

/** auto: a type of person or organization fetches that endpoint; otherwise the record's entity decides. */
function whatFromType(msg: NodeMessage, ref: FoundRef): What {
  const t = String(pick(msg, 'type') ?? '').trim().toLowerCase();
  if (t === 'person' || t === 'organization') return t;
  if (ref.entity) return ref.entity;
  throw new SyncError('BAD_INPUT', `Cannot tell what to fetch: msg.payload.type is "${t || '(none)'}"; expected Identity, Quote or Invoice.`);
}

export = function (RED: NodeAPI) {
  function CrmFetch(this: Node, def: CrmFetchDef) {
    def = createNode(RED, this, 'crm-fetch', def);
    const node = this;
    const config = RED.nodes.getNode(def.crm) as CrmConfigNode | null;
    const counter = new StatusCounter(node, 'fetched');
    const what: What = def.what || 'identity';
    if (!config) {
      node.status({ fill: 'red', shape: 'dot', text: 'no CRM config' });
    } else {
      const off = config.onRetry(() => counter.retrying());
      node.on('close', (_removed: boolean, done: () => void) => {
        off();
        done();
      });
    }

    node.on('input', (msg, send, done) => {
      // Keep the queue job's lease (and the mapping claim) while this node works on the message.
      const letGo = holdJob(msg);
      void (async () => {
        try {
          if (!config) throw new SyncError('CONFIG', 'crm-fetch has no CRM config node. Open it and choose one.');
          const client = config.client();
          node.status({ fill: 'blue', shape: 'ring', text: 'fetching…' });
          const ref = refOfMsg(msg);
          const w = what === 'auto' ? whatFromType(msg, ref) : what;
          if (w === 'search') {
            const pageSize = Math.round(num(def.pageSize, 200, 1));
            const term = pick(msg, 'searchTerm');
            const all = [];
            for await (const page of client.searchIdentities({ pageSize, searchTerm: typeof term === 'string' ? term : undefined })) {
              all.push(...page);
            }
            if (def.searchOutput === 'each') {
              all.forEach((row, i) => {
                const m: NodeMessage = { ...RED.util.cloneMessage(msg), payload: row, parts: { id: msg._msgid, index: i, count: all.length } };
                delete m.sync;
                updateTrace(m, { entity: 'identity', crmId: row.identityId, customerNumber: row.customerNo ?? undefined, step: 'crm-fetch' });
                send(m);
              });
            } else {
              msg.payload = all;
              updateTrace(msg, { entity: 'identity', step: 'crm-fetch' });
              send(msg);
            }
            counter.success(`${all.length} identities`);
            return done();
          }
          const crmId = requireCrmId(ref, 'Put the GUID in msg.payload.id (or msg.payload), or wire a CRM webhook http-in node so msg.req.query.id carries it.');
          let record;
          if (w === 'quote') record = await client.getQuote(crmId);
          else if (w === 'invoice') record = await client.getInvoice(crmId);
          else if (w === 'person') record = await client.getPerson(crmId);
          else if (w === 'organization') record = await client.getOrganization(crmId);
          else record = await client.getIdentity(crmId, ref.kind);
          msg.payload = record;
          const isDoc = w === 'quote' || w === 'invoice';
          updateTrace(msg, {
            entity: isDoc ? w : (record as { kind?: string }).kind ?? w,
            crmId,
            customerNumber: isDoc ? undefined : ((record as { customerNumber?: string | null }).customerNumber ?? undefined) || undefined,
            event: typeof pick(msg, 'event') === 'string' ? String(pick(msg, 'event')) : undefined,
            step: 'crm-fetch',
          });
          send(msg);
          counter.success();
          done();
        } catch (e) {
          counter.failure();
          fail(node, msg, e, done, [config?.credentials?.password]);
        }
      })().finally(letGo);
    });
  }
  RED.nodes.registerType('crm-fetch', CrmFetch, { settings: migrationSettings('crm-fetch') });
};
