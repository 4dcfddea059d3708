/**
 * siagh-upsert: writes a CRM record into Siagh — an identity as a contact (form 2BFDA) or a quote /
 * invoice as a sales pre-invoice (form 43D81). The decisions live in lib/sync (contact-sync,
 * preinvoice-sync); this file only moves values between the message and them.
 *
 * Reads msg.payload (the CRM record from crm-fetch), msg.mapping (from sync-mapping lookup: the
 * record's mapping or null) and, for pre-invoices, msg.customerMapping. Writes msg.siagh (what
 * happened in Siagh), msg.mappingUpdate (what sync-mapping store should persist) and msg.sync.
 */
import { SyncError } from '../../lib/errors';
import { syncContact } from '../../lib/sync/contact-sync';
import { syncPreInvoice } from '../../lib/sync/preinvoice-sync';
import type { CrmIdentity, CrmQuote } from '../../lib/types';
import type { SiaghConfigNode } from '../siagh-config/options';
import { mappedCrmIdOf, releaseClaim } from '../shared/claims';
import type { Node, NodeAPI, NodeMessage } from '../shared/red';
import { fail, StatusCounter, traceOf, updateTrace } from '../shared/support';
import { contactOptions, preInvoiceOptions, SiaghUpsertDef } from './options';
import { holdJob } from '../shared/job';

interface MappingLike {
  siaghCode: string;
  checksum?: string;
}

function mappingOf(v: unknown): MappingLike | null {
  if (!v || typeof v !== 'object') return null;
  const m = v as Record<string, unknown>;
  return typeof m.siaghCode === 'string' || typeof m.siaghCode === 'number' ? { siaghCode: String(m.siaghCode), checksum: typeof m.checksum === 'string' ? m.checksum : undefined } : null;
}

function isQuote(p: unknown): p is CrmQuote {
  return !!p && typeof p === 'object' && ((p as CrmQuote).docKind === 'quote' || (p as CrmQuote).docKind === 'invoice');
}

function isIdentity(p: unknown): p is CrmIdentity {
  return !!p && typeof p === 'object' && typeof (p as CrmIdentity).crmId === 'string' && ((p as CrmIdentity).kind === 'person' || (p as CrmIdentity).kind === 'organization');
}

export = function (RED: NodeAPI) {
  function SiaghUpsert(this: Node, def: SiaghUpsertDef) {
    RED.nodes.createNode(this, def);
    const node = this;
    const config = RED.nodes.getNode(def.siagh) as SiaghConfigNode | null;
    const counter = new StatusCounter(node, 'synced');
    let setupError: SyncError | undefined;
    let cOpts: ReturnType<typeof contactOptions> | undefined;
    let pOpts: ReturnType<typeof preInvoiceOptions> | undefined;
    try {
      cOpts = contactOptions(def);
      pOpts = preInvoiceOptions(def);
    } catch (e) {
      setupError = e as SyncError;
    }
    if (!config) setupError = new SyncError('CONFIG', 'siagh-upsert has no Siagh config node. Open it and choose one.');
    if (setupError) node.status({ fill: 'red', shape: 'dot', text: 'config error' });
    const off = config?.onRetry(() => counter.retrying());
    node.on('close', (_removed: boolean, done: () => void) => {
      off?.();
      done();
    });

    node.on('input', (msg: NodeMessage, send, done) => {
      // Keep the queue job's lease (and the mapping claim) while this node works on the message.
      const letGo = holdJob(msg);
      void (async () => {
        const trace = traceOf(msg);
        trace.attempts = (trace.attempts ?? 0) + 1;
        try {
          if (setupError) throw setupError;
          const client = config!.client();
          const p = msg.payload;
          const mode = def.mode === 'auto' || !def.mode ? (isQuote(p) ? 'preinvoice' : 'contact') : def.mode;
          node.status({ fill: 'blue', shape: 'ring', text: 'writing…' });
          if (mode === 'contact') {
            if (!isIdentity(p)) throw new SyncError('BAD_INPUT', 'siagh-upsert (contact) needs a CRM person or organization in msg.payload, as crm-fetch outputs it (with crmId and kind).');
            const r = await syncContact(client, p, mappingOf(msg.mapping), { ...cOpts, mappedCrmIdOf: (code) => mappedCrmIdOf(msg, 'contact', code) });
            msg.siagh = { code: r.code, action: r.action, linkedBy: r.linkedBy, written: r.written.length };
            msg.mappingUpdate = { entityType: 'contact', crmId: p.crmId, siaghCode: String(r.code), customerNumber: r.customerNumber, checksum: r.checksum };
            updateTrace(msg, { entity: p.kind, crmId: p.crmId, siaghCode: String(r.code), customerNumber: r.customerNumber, action: r.action, step: 'siagh-upsert', warnings: r.warnings });
          } else {
            if (!isQuote(p)) throw new SyncError('BAD_INPUT', 'siagh-upsert (pre-invoice) needs a CRM quote or invoice in msg.payload, as crm-fetch outputs it (with crmId, docKind and details).');
            const r = await syncPreInvoice(client, p, mappingOf(msg.mapping), mappingOf(msg.customerMapping), pOpts);
            msg.siagh = { code: r.siaghCode, documentNumber: r.documentNumber, returnCode: r.returnCode, customerCode: r.customerCode, action: r.action };
            msg.mappingUpdate =
              r.action === 'created'
                ? { entityType: p.docKind, crmId: p.crmId, siaghCode: r.siaghCode, checksum: r.checksum, extra: { documentNumber: r.documentNumber, returnCode: r.returnCode, customerCode: r.customerCode } }
                : undefined;
            updateTrace(msg, { entity: p.docKind, crmId: p.crmId, siaghCode: r.siaghCode, documentNumber: r.documentNumber, action: r.action, step: 'siagh-upsert', warnings: r.warnings });
          }
          send(msg);
          counter.success();
          done();
        } catch (e) {
          counter.failure();
          releaseClaim(msg);
          fail(node, msg, e, done);
        }
      })().finally(letGo);
    });
  }
  RED.nodes.registerType('siagh-upsert', SiaghUpsert);
};
