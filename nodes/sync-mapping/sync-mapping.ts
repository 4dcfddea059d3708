/**
 * sync-mapping: lookup and store of CRM id ↔ Siagh Code ↔ customer number, in the mapping store
 * of its data store (one file per data folder, shared by every node and the import naming it; or
 * PostgreSQL, shared by every instance).
 *
 * lookup: msg.mapping = the record or null (for a quote/invoice also msg.customerMapping), and,
 *         with "claim" on, the entity is claimed until the store (or a failure, or the lease).
 * store:  persists msg.mappingUpdate (from siagh-upsert) durably before passing the message on.
 * delete, list, stats: maintenance.
 * rebuild: the contact mappings rebuilt from the two systems after the data folder was lost
 *         (lib/sync/relink.ts): msg.payload {dryRun: true} (default) reports what would be linked,
 *         {dryRun: false} stores it. Needs a CRM and a Siagh config; writes to neither system.
 */
import { SyncError } from '../../lib/errors';
import { customerIdOf, mappingTypeOf, requireCrmId } from '../../lib/ref';
import type { EntityType } from '../../lib/store/mapping-store';
import type { MappingBackend } from '../../lib/store/mapping-backend';
import { fieldSettingsFromConfig } from '../../lib/sync/field-settings';
import { rebuildMapping } from '../../lib/sync/relink';
import type { CrmConfigNode } from '../crm-config/options';
import type { SiaghConfigNode } from '../siagh-config/options';
import { claimOf, clearDocumentCreate, releaseClaim } from '../shared/claims';
import type { Node, NodeAPI, NodeDef, NodeMessage } from '../shared/red';
import { MappingHandle, openMappingFor, StoreOpeningStopped, storeProblemText, watchStore } from '../shared/store-ref';
import { fail, num, StatusCounter, updateTrace } from '../shared/support';
import { holdJob } from '../shared/job';
import { refOfMsg } from '../shared/msg-input';
import { createNode, migrationSettings } from '../shared/saved-settings';

interface SyncMappingDef extends NodeDef {
  /** The sync-store config node (its data folder holds the mapping file). */
  store?: string;
  /** Flows saved before sync-store: the mapping file itself. */
  file?: string;
  operation: 'lookup' | 'store' | 'delete' | 'list' | 'stats' | 'rebuild';
  entityType?: 'auto' | EntityType;
  claim?: boolean;
  leaseSeconds?: string | number;
  waitSeconds?: string | number;
  source?: string;
  /** rebuild only: the systems to read and the customer-number scheme (as in siagh-upsert). */
  crm?: string;
  siagh?: string;
  cnPrefix?: string;
  cnOffset?: string | number;
}

const ENTITY_TYPES: EntityType[] = ['contact', 'quote', 'invoice'];

function entityTypeOf(msg: NodeMessage, setting: SyncMappingDef['entityType']): EntityType {
  if (setting && setting !== 'auto') return setting;
  const upd = msg.mappingUpdate as { entityType?: unknown } | undefined;
  if (typeof upd?.entityType === 'string' && (ENTITY_TYPES as string[]).includes(upd.entityType)) return upd.entityType as EntityType;
  const entity = refOfMsg(msg).entity;
  if (entity) return mappingTypeOf(entity);
  throw new SyncError('BAD_INPUT', 'sync-mapping cannot tell the entity type. Send a CRM record from crm-fetch, set msg.payload.entityType (contact, quote or invoice), or choose the type in the node.');
}

function crmIdOf(msg: NodeMessage): string {
  return requireCrmId(refOfMsg(msg), 'sync-mapping needs the GUID of a CRM record: msg.payload.crmId (a record from crm-fetch), msg.payload.id or msg.sync.crmId.');
}

export = function (RED: NodeAPI) {
  function SyncMapping(this: Node, def: SyncMappingDef) {
    def = createNode(RED, this, 'sync-mapping', def);
    const node = this;
    const counter = new StatusCounter(node, def.operation === 'lookup' ? 'looked up' : def.operation === 'store' ? 'stored' : 'done');
    let opening: Promise<MappingHandle>;
    // A PostgreSQL store not reachable yet is tried again until it opens (store-ref's keepOpening).
    const watch = watchStore(node, 'sync-mapping');
    try {
      opening = openMappingFor(RED, def, watch);
    } catch (e) {
      opening = Promise.reject(e);
    }
    opening.then(
      async (h) => node.status({ fill: 'grey', shape: 'ring', text: `${(await h.backend.stats()).total} mappings` }),
      (e) => {
        if (e instanceof StoreOpeningStopped) return;
        node.status({ fill: 'red', shape: 'dot', text: e?.code === 'STORE_LOCKED' ? 'file locked' : e?.cause?.code || /PostgreSQL/.test(String(e?.message)) ? storeProblemText(e) : 'store error' });
        if (/PostgreSQL/.test(String(e?.message))) node.error(`sync-mapping cannot open the mapping store: ${e.message}`);
      },
    ).catch(() => undefined);
    const total = async (store: MappingBackend) => (await store.stats()).total;
    const leaseMs = num(def.leaseSeconds, 60, 1) * 1000;
    let rebuilding = false;
    const waitMs = num(def.waitSeconds, 300, 1) * 1000;

    node.on('input', (msg: NodeMessage, send, done) => {
      // Keep the queue job's lease (and the mapping claim) while this node works on the message.
      const letGo = holdJob(msg);
      void (async () => {
        try {
          const handle = await opening;
          const store = handle.backend;
          switch (def.operation) {
            case 'lookup': {
              const type = entityTypeOf(msg, def.entityType);
              const crmId = crmIdOf(msg);
              releaseClaim(msg); // a message never holds two claims
              if (def.claim !== false) {
                const token = await store.claim(type, crmId, { leaseMs, waitMs });
                msg.mappingClaim = { file: handle.key, entityType: type, crmId, token };
              }
              const rec = (await store.lookup(type, crmId)) ?? null;
              msg.mapping = rec;
              msg.mappingFile = handle.key;
              if (type !== 'contact') {
                const customerId = customerIdOf(msg.payload);
                msg.customerMapping = customerId ? (await store.lookup('contact', customerId)) ?? null : null;
              }
              updateTrace(msg, { crmId, siaghCode: rec?.siaghCode, customerNumber: rec?.customerNumber, step: 'sync-mapping' });
              counter.success(`${rec ? 'found' : 'new'} · ${await total(store)} mappings`);
              break;
            }
            case 'store': {
              const upd = msg.mappingUpdate as Record<string, unknown> | undefined;
              const claim = claimOf(msg);
              if (!upd) {
                // Nothing to persist (unchanged / skipped documents): just let go of the claim.
                releaseClaim(msg);
                counter.success(`${await total(store)} mappings`);
                break;
              }
              const type = entityTypeOf(msg, def.entityType);
              const crmId = crmIdOf(msg);
              const siaghCode = upd.siaghCode;
              if (typeof siaghCode !== 'string' && typeof siaghCode !== 'number') throw new SyncError('BAD_INPUT', 'msg.mappingUpdate.siaghCode is missing: nothing to store.');
              const prev = await store.lookup(type, crmId);
              const source = def.source || String((msg.sync as { trigger?: string } | undefined)?.trigger ?? 'flow');
              let rec = prev;
              const same = prev && prev.siaghCode === String(siaghCode) && prev.checksum === upd.checksum && (prev.customerNumber ?? undefined) === ((upd.customerNumber as string | undefined) || undefined);
              if (!same) {
                rec = await store.store(
                  {
                    entityType: type,
                    crmId,
                    siaghCode,
                    customerNumber: typeof upd.customerNumber === 'string' && upd.customerNumber ? upd.customerNumber : undefined,
                    checksum: typeof upd.checksum === 'string' ? upd.checksum : undefined,
                    source,
                    extra: upd.extra && typeof upd.extra === 'object' ? (upd.extra as Record<string, unknown>) : undefined,
                  },
                  { claimToken: claim?.crmId === crmId ? claim.token : undefined },
                );
              }
              if (type !== 'contact') await clearDocumentCreate(store, type, crmId);
              releaseClaim(msg);
              delete msg.mappingUpdate;
              msg.mapping = rec ?? null;
              updateTrace(msg, { crmId, siaghCode: String(siaghCode), step: 'sync-mapping' });
              counter.success(`${await total(store)} mappings`);
              break;
            }
            case 'delete': {
              const type = entityTypeOf(msg, def.entityType);
              const crmId = crmIdOf(msg);
              const removed = await store.delete(type, crmId);
              msg.payload = { deleted: removed, entityType: type, crmId };
              updateTrace(msg, { entity: type, crmId, step: 'sync-mapping' });
              counter.success(`${await total(store)} mappings`);
              break;
            }
            case 'list': {
              const p = (msg.payload ?? {}) as { entityType?: string; offset?: unknown; limit?: unknown };
              const type = def.entityType && def.entityType !== 'auto' ? def.entityType : (ENTITY_TYPES as string[]).includes(String(p.entityType)) ? (p.entityType as EntityType) : undefined;
              msg.payload = await store.list({ entityType: type, offset: num(p.offset, 0, 0), limit: num(p.limit, 1000, 1) });
              counter.success(`${await total(store)} mappings`);
              break;
            }
            case 'rebuild': {
              const crmCfg = def.crm ? (RED.nodes.getNode(def.crm) as CrmConfigNode | null) : null;
              const siaghCfg = def.siagh ? (RED.nodes.getNode(def.siagh) as SiaghConfigNode | null) : null;
              if (!crmCfg || !siaghCfg) throw new SyncError('CONFIG', 'sync-mapping (rebuild) needs a CRM config and a Siagh config: open the node and choose both.');
              if (rebuilding) throw new SyncError('MAPPING_BUSY', 'A rebuild is running in this node already; wait for its report.');
              const p = (msg.payload ?? {}) as { dryRun?: unknown };
              // Anything but an explicit false is a dry run: storing needs a deliberate request.
              const dryRun = !(p && typeof p === 'object' && (p.dryRun === false || p.dryRun === 'false'));
              const scheme = fieldSettingsFromConfig({ cnPrefix: def.cnPrefix, cnOffset: def.cnOffset }).scheme;
              rebuilding = true;
              node.status({ fill: 'blue', shape: 'ring', text: dryRun ? 'rebuild: dry run…' : 'rebuild: applying…' });
              try {
                const report = await rebuildMapping({ crm: crmCfg.client(), siagh: siaghCfg.client(), store }, { dryRun, scheme });
                msg.payload = report;
                const c = report.counts;
                updateTrace(msg, { action: dryRun ? 'skipped' : c.linked ? 'linked' : 'unchanged', step: 'sync-mapping' });
                counter.success(`${dryRun ? `would link ${c.wouldLink}` : `linked ${c.linked}`} · ${c.conflicts} conflicts · ${c.unmatched} unmatched`);
              } finally {
                rebuilding = false;
              }
              break;
            }
            case 'stats':
              msg.payload = await store.stats();
              counter.success(`${await total(store)} mappings`);
              break;
            default:
              throw new SyncError('CONFIG', `sync-mapping: unknown operation "${def.operation}".`);
          }
          if (def.operation === 'list' || def.operation === 'stats') updateTrace(msg, { step: 'sync-mapping' }); // every output carries msg.sync
          send(msg);
          done();
        } catch (e) {
          counter.failure();
          releaseClaim(msg);
          fail(node, msg, e, done);
        }
      })().finally(letGo);
    });

    node.on('close', (_removed: boolean, done: () => void) => {
      watch.stop();
      opening.then(
        (h) => h.release(),
        () => undefined,
      ).then(() => done(), () => done());
    });
  }
  RED.nodes.registerType('sync-mapping', SyncMapping, { settings: migrationSettings('sync-mapping') });
};
