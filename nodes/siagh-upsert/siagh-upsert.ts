/**
 * siagh-upsert: writes a CRM record into Siagh — an identity as a contact (form 2BFDA) or a quote /
 * invoice as a sales pre-invoice (form 43D81). The decisions live in lib/sync (contact-sync,
 * preinvoice-sync); this file only moves values between the message and them.
 *
 * Reads msg.payload (the CRM record from crm-fetch), msg.mapping (from sync-mapping lookup: the
 * record's mapping or null) and, for pre-invoices, msg.customerMapping. Writes msg.siagh (what
 * happened in Siagh), msg.mappingUpdate (what sync-mapping store should persist) and msg.sync.
 *
 * Review items (LINK_NEEDS_REVIEW, DOCUMENT_CHANGED_AFTER_TRANSFER) fail with their facts on
 * msg.review; the operator's answer comes back on a replay as msg.linkDecision
 * ({decision:'link', code} | {decision:'separate'}) or msg.reviewDecision ({decision:'acknowledge'}),
 * each optionally with the crmId it answers for.
 */
import { z } from 'zod';
import { SyncError } from '../../lib/errors';
import { LinkDecision, syncContact, type ContactSyncResult } from '../../lib/sync/contact-sync';
import { writeBackLink } from '../../lib/sync/relink';
import { ReviewDecision, syncPreInvoice } from '../../lib/sync/preinvoice-sync';
import type { CrmIdentity, CrmQuote } from '../../lib/types';
import type { CrmConfigNode } from '../crm-config/options';
import type { SiaghConfigNode } from '../siagh-config/options';
import { mappedCrmIdOf, markDocumentCreate, releaseClaim } from '../shared/claims';
import type { Node, NodeAPI, NodeMessage } from '../shared/red';
import { fail, StatusCounter, traceOf, updateTrace } from '../shared/support';
import { contactOptions, preInvoiceOptions, SiaghUpsertDef } from './options';
import { holdJob, jobOf } from '../shared/job';
import { createNode, migrationSettings } from '../shared/saved-settings';

interface MappingLike {
  siaghCode: string;
  checksum?: string;
  extra?: Record<string, unknown>;
}

function mappingOf(v: unknown): MappingLike | null {
  if (!v || typeof v !== 'object') return null;
  const m = v as Record<string, unknown>;
  if (typeof m.siaghCode !== 'string' && typeof m.siaghCode !== 'number') return null;
  const extra = m.extra && typeof m.extra === 'object' && !Array.isArray(m.extra) ? (m.extra as Record<string, unknown>) : undefined;
  return { siaghCode: String(m.siaghCode), checksum: typeof m.checksum === 'string' ? m.checksum : undefined, extra };
}

const CrmIdGuard = z.string().trim().min(1).optional();
const LinkDecisionSchema = z.discriminatedUnion('decision', [
  z.object({ decision: z.literal('link'), code: z.coerce.number().int().positive(), crmId: CrmIdGuard }).strict(),
  z.object({ decision: z.literal('separate'), crmId: CrmIdGuard }).strict(),
]);
const ReviewDecisionSchema = z.object({ decision: z.literal('acknowledge'), crmId: CrmIdGuard }).strict();

/** msg.linkDecision / msg.reviewDecision, checked; BAD_INPUT when malformed or meant for another record. */
function decisionOf<T extends { crmId?: string }>(v: unknown, schema: z.ZodType<T>, name: string, shape: string, crmId: string): Omit<T, 'crmId'> | undefined {
  if (v === undefined || v === null) return undefined;
  const r = schema.safeParse(v);
  if (!r.success) throw new SyncError('BAD_INPUT', `msg.${name} is not understood (${r.error.issues.map((i) => `${i.path.join('.') || name}: ${i.message}`).join('; ')}). Use ${shape}.`);
  const { crmId: forId, ...decision } = r.data;
  if (forId && forId.toLowerCase() !== crmId.trim().toLowerCase()) {
    throw new SyncError('BAD_INPUT', `msg.${name} is for CRM record ${forId}, but this message carries ${crmId}; nothing was written.`);
  }
  return decision;
}

function isQuote(p: unknown): p is CrmQuote {
  return !!p && typeof p === 'object' && ((p as CrmQuote).docKind === 'quote' || (p as CrmQuote).docKind === 'invoice');
}

function isIdentity(p: unknown): p is CrmIdentity {
  return !!p && typeof p === 'object' && typeof (p as CrmIdentity).crmId === 'string' && ((p as CrmIdentity).kind === 'person' || (p as CrmIdentity).kind === 'organization');
}

export = function (RED: NodeAPI) {
  function SiaghUpsert(this: Node, def: SiaghUpsertDef) {
    def = createNode(RED, this, 'siagh-upsert', def);
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
    // Write-back of the link into the CRM (lib/sync/relink.ts): on unless unticked, and only with a
    // CRM connection (flows saved before the setting have none, so they behave as before).
    const crmConfig = def.crm ? (RED.nodes.getNode(def.crm) as CrmConfigNode | null) : null;
    const writeBack = def.writeBack !== false && !!crmConfig;
    if (def.writeBack === true && !crmConfig) node.warn('siagh-upsert: "write the link into the CRM" is ticked but no CRM config is chosen; nothing is written back. Choose a CRM config or untick it.');
    const off = config?.onRetry(() => counter.retrying());
    node.on('close', (_removed: boolean, done: () => void) => {
      off?.();
      done();
    });

    /**
     * After Siagh holds the contact: refId := siagh:<Code> in the CRM record (when empty or already
     * ours; never the customer number). A failure never fails the sync: it is a warning on
     * msg.sync and msg.siagh.crmLink 'failed'; the next sync of the record tries again, and the
     * rebuild still finds imported identities by their customer number.
     */
    async function linkIntoCrm(identity: CrmIdentity, r: ContactSyncResult): Promise<{ outcome: string; warning?: string }> {
      try {
        const res = await writeBackLink(crmConfig!.client(), identity, r.code, { scheme: cOpts?.map?.scheme });
        return { outcome: res.outcome, warning: res.note };
      } catch (e) {
        const err = e instanceof SyncError ? e : new SyncError('UNKNOWN', e instanceof Error ? e.message : String(e));
        return { outcome: 'failed', warning: `CRM write-back failed (${err.code}): ${err.message}` };
      }
    }

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
            const linkDecision = decisionOf(msg.linkDecision, LinkDecisionSchema, 'linkDecision', '{"decision":"link","code":8301} or {"decision":"separate"}', p.crmId) as LinkDecision | undefined;
            const r = await syncContact(client, p, mappingOf(msg.mapping), { ...cOpts, linkDecision, recheck: jobOf(msg)?.recheck === true, mappedCrmIdOf: (code) => mappedCrmIdOf(msg, 'contact', code) });
            const crmLink = writeBack ? await linkIntoCrm(p, r) : undefined;
            msg.siagh = { code: r.code, action: r.action, linkedBy: r.linkedBy, written: r.written.length, ...(crmLink ? { crmLink: crmLink.outcome } : {}) };
            msg.mappingUpdate = { entityType: 'contact', crmId: p.crmId, siaghCode: String(r.code), customerNumber: r.customerNumber, checksum: r.checksum };
            // The write-back's warning first: the trace keeps only the first few.
            const warnings = crmLink?.warning ? [crmLink.warning, ...r.warnings] : r.warnings;
            updateTrace(msg, { entity: p.kind, crmId: p.crmId, siaghCode: String(r.code), customerNumber: r.customerNumber, action: r.action, step: 'siagh-upsert', warnings });
          } else {
            if (!isQuote(p)) throw new SyncError('BAD_INPUT', 'siagh-upsert (pre-invoice) needs a CRM quote or invoice in msg.payload, as crm-fetch outputs it (with crmId, docKind and details).');
            const reviewDecision = decisionOf(msg.reviewDecision, ReviewDecisionSchema, 'reviewDecision', '{"decision":"acknowledge"}', p.crmId) as ReviewDecision | undefined;
            const mapping = mappingOf(msg.mapping);
            // Only a create needs the mark: a mapped document is never sent again.
            const trigger = (msg.sync as { trigger?: unknown } | undefined)?.trigger;
            const unmark = mapping || !msg.customerMapping ? undefined : await markDocumentCreate(msg, p.docKind, p.crmId, trigger === 'replay');
            let r;
            try {
              r = await syncPreInvoice(client, p, mapping, mappingOf(msg.customerMapping), pOpts, reviewDecision);
            } catch (e) {
              // Siagh surely did not create it: forget the mark. An unknown outcome keeps it.
              if (unmark && !(e instanceof SyncError && e.ambiguous)) await unmark().catch(() => undefined);
              throw e;
            }
            if (unmark && r.action !== 'created') await unmark().catch(() => undefined);
            msg.siagh = { code: r.siaghCode, documentNumber: r.documentNumber, returnCode: r.returnCode, customerCode: r.customerCode, action: r.action };
            if (r.action === 'created') {
              msg.mappingUpdate = { entityType: p.docKind, crmId: p.crmId, siaghCode: r.siaghCode, checksum: r.checksum, extra: { documentNumber: r.documentNumber, returnCode: r.returnCode, customerCode: r.customerCode, transferred: r.transferred } };
            } else if (r.action === 'acknowledged') {
              const prev = mapping?.extra ?? {};
              msg.mappingUpdate = {
                entityType: p.docKind,
                crmId: p.crmId,
                siaghCode: r.siaghCode,
                checksum: r.checksum,
                extra: { ...prev, transferred: r.transferred, acknowledged: { at: new Date().toISOString(), previousChecksum: mapping?.checksum ?? null } },
              };
            } else msg.mappingUpdate = undefined;
            const action = r.action === 'acknowledged' ? 'skipped' : r.action;
            updateTrace(msg, { entity: p.docKind, crmId: p.crmId, siaghCode: r.siaghCode, documentNumber: r.documentNumber, action, step: 'siagh-upsert', warnings: r.warnings });
          }
          delete msg.review;
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
  RED.nodes.registerType('siagh-upsert', SiaghUpsert, { settings: migrationSettings('siagh-upsert') });
};
