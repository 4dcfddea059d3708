/**
 * CRM quote or invoice → Siagh sales pre-invoice (form 43D81), at most once per CRM document
 * (docs/known-faults.md#duplicate-pre-invoices).
 *
 * - Already transferred (a mapping exists): nothing is sent. Same content → `unchanged`; different
 *   content → DOCUMENT_CHANGED_AFTER_TRANSFER, a review item whose `review` lists the differences
 *   between what was transferred (a summary kept in the mapping's `extra.transferred`) and the
 *   CRM's current document (Siagh pre-invoices cannot be updated through this form). The operator
 *   acknowledges it by replaying with `reviewDecision: {decision: 'acknowledge'}`: nothing is
 *   sent, the mapping learns the new checksum and summary (`acknowledged`); the accountant
 *   corrects the pre-invoice in Siagh by hand. A new fiscal year alone (salmali comes from the
 *   Siagh login, not from the CRM) is no change.
 * - The customer must be mapped first (CUSTOMER_NOT_MAPPED otherwise: sync the identity, then
 *   replay the quote).
 * - The fiscal year comes from the Siagh login, never from the calendar (docs/known-faults.md#fiscal-year); `_In_Suid` is
 *   derived from the CRM id so a retry carries the same id (docs/open-questions.md#suid-dedup).
 */
import { SyncError } from '../errors';
import type { SiaghClient } from '../siagh/client';
import type { CrmQuote } from '../types';
import { mapQuoteToPreInvoice, PreInvoiceOptions } from './preinvoice-mapper';
import { describeDifferences, diffPreInvoice, DocumentDifferences, DocumentReview, summarizePreInvoice, TransferredSummary, transferredOf } from './preinvoice-review';

export type PreInvoiceSyncOptions = Omit<PreInvoiceOptions, 'fiscalYear' | 'customerCode' | 'accountPartyCode'>;

/** An operator's answer to DOCUMENT_CHANGED_AFTER_TRANSFER. */
export interface ReviewDecision {
  decision: 'acknowledge';
}

export interface PreInvoiceSyncResult {
  /** acknowledged: a changed document the operator acknowledged; nothing sent, the mapping learns it. */
  action: 'created' | 'unchanged' | 'acknowledged';
  /** What the mapping stores for the document: the printed number when Siagh gives one, else its ReturnCode. */
  siaghCode?: string;
  documentNumber?: string;
  returnCode?: string;
  checksum: string;
  customerCode: string;
  /** What the mapping keeps in extra.transferred (created / acknowledged). */
  transferred?: TransferredSummary;
  warnings: string[];
}

/** Nothing differs but salmali (the fiscal year comes from the login, not from the CRM). */
function onlyFiscalYear(d: DocumentDifferences): boolean {
  return !d.customer && !d.total && !d.rowsUnknown && !d.linesAdded.length && !d.linesRemoved.length && !d.linesChanged.length && d.header.length > 0 && d.header.every((h) => h.field === 'salmali');
}

export async function syncPreInvoice(
  siagh: SiaghClient,
  quote: CrmQuote,
  mapping: { siaghCode: string; checksum?: string; extra?: Record<string, unknown> } | null | undefined,
  customer: { siaghCode: string } | null | undefined,
  opts: PreInvoiceSyncOptions = {},
  reviewDecision?: ReviewDecision,
): Promise<PreInvoiceSyncResult> {
  if (!customer) {
    throw new SyncError(
      'CUSTOMER_NOT_MAPPED',
      `The customer of ${quote.docKind} ${quote.crmId} (CRM identity ${quote.identityId}) is not synced to Siagh yet. Sync that identity first (its webhook or the polling flow does), then replay this ${quote.docKind}.`,
    );
  }
  const info = siagh.sessionInfo ?? (await siagh.login());
  let accountPartyCode: number | null | undefined;
  if (opts.customerValue === 'accountParty') {
    await siagh.contacts.ensureFresh();
    accountPartyCode = siagh.contacts.byCode(customer.siaghCode)?.AccountPartyCode;
  }
  const { input, checksum, warnings } = mapQuoteToPreInvoice(quote, {
    ...opts,
    fiscalYear: info.fiscalYear,
    customerCode: customer.siaghCode,
    accountPartyCode,
  });
  const summary = summarizePreInvoice(input);
  if (mapping) {
    const same = !mapping.checksum || mapping.checksum === checksum;
    if (same) {
      if (reviewDecision) warnings.push(`reviewDecision ${reviewDecision.decision} ignored: ${quote.docKind} ${quote.crmId} is unchanged since its transfer`);
      return { action: 'unchanged', siaghCode: mapping.siaghCode, checksum: mapping.checksum ?? checksum, customerCode: customer.siaghCode, warnings };
    }
    const before = transferredOf(mapping.extra);
    const differences = before ? diffPreInvoice(before, summary) : null;
    if (differences && onlyFiscalYear(differences)) {
      // The CRM document did not change; the Siagh login reports another fiscal year now.
      return { action: 'unchanged', siaghCode: mapping.siaghCode, checksum: mapping.checksum ?? checksum, customerCode: customer.siaghCode, warnings };
    }
    if (reviewDecision?.decision === 'acknowledge') {
      return {
        action: 'acknowledged',
        siaghCode: mapping.siaghCode,
        checksum,
        customerCode: customer.siaghCode,
        transferred: summary,
        warnings: [...warnings, `changed after transfer, acknowledged: Siagh pre-invoice ${mapping.siaghCode} was not changed by this sync (${describeDifferences(differences)})`],
      };
    }
    const review: DocumentReview = {
      docKind: quote.docKind,
      crmId: quote.crmId,
      number: typeof quote.number === 'string' && quote.number.trim() ? quote.number.trim() : null,
      siaghCode: mapping.siaghCode,
      differences,
      checksum: { transferred: mapping.checksum ?? null, current: checksum },
    };
    throw new SyncError(
      'DOCUMENT_CHANGED_AFTER_TRANSFER',
      `CRM ${quote.docKind} ${review.number ?? quote.crmId} changed after it was transferred to Siagh as pre-invoice ${mapping.siaghCode}: ${describeDifferences(differences)}. ` +
        `Nothing was sent (a pre-invoice is transferred once). Correct pre-invoice ${mapping.siaghCode} in Siagh by hand if needed, then replay with msg.reviewDecision = {"decision":"acknowledge"} so this version counts as transferred.`,
      { review: review as unknown as Record<string, unknown> },
    );
  }
  if (reviewDecision) warnings.push(`reviewDecision ${reviewDecision.decision} ignored: ${quote.docKind} ${quote.crmId} was not transferred yet`);
  const res = await siagh.createPreInvoice(input);
  if (!res.documentNumber) warnings.push(`Siagh gave no document number in its message; ReturnCode ${res.returnCode} is stored instead`);
  return {
    action: 'created',
    siaghCode: res.documentNumber ?? res.returnCode,
    documentNumber: res.documentNumber,
    returnCode: res.returnCode,
    checksum,
    customerCode: customer.siaghCode,
    transferred: summary,
    warnings: [...warnings, ...res.notes.filter((n) => !/موفقیت/.test(n))],
  };
}
