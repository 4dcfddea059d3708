/**
 * CRM quote or invoice → Siagh sales pre-invoice (form 43D81), at most once per CRM document (B6).
 *
 * - Already transferred (a mapping exists): nothing is sent. Same content → `unchanged`; different
 *   content → `skipped` with the warning `changed after transfer`, for a person to decide (Siagh
 *   pre-invoices cannot be updated through this form).
 * - The customer must be mapped first (CUSTOMER_NOT_MAPPED otherwise: sync the identity, then
 *   replay the quote).
 * - The fiscal year comes from the Siagh login, never from the calendar (B11); `_In_Suid` is
 *   derived from the CRM id so a retry carries the same id (Q4).
 */
import { SyncError } from '../errors';
import type { SiaghClient } from '../siagh/client';
import type { CrmQuote } from '../types';
import { mapQuoteToPreInvoice, PreInvoiceOptions } from './preinvoice-mapper';

export type PreInvoiceSyncOptions = Omit<PreInvoiceOptions, 'fiscalYear' | 'customerCode' | 'accountPartyCode'>;

export interface PreInvoiceSyncResult {
  action: 'created' | 'unchanged' | 'skipped';
  /** What the mapping stores for the document: the printed number when Siagh gives one, else its ReturnCode. */
  siaghCode?: string;
  documentNumber?: string;
  returnCode?: string;
  checksum: string;
  customerCode: string;
  warnings: string[];
}

export async function syncPreInvoice(
  siagh: SiaghClient,
  quote: CrmQuote,
  mapping: { siaghCode: string; checksum?: string } | null | undefined,
  customer: { siaghCode: string } | null | undefined,
  opts: PreInvoiceSyncOptions = {},
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
  if (mapping) {
    const same = !mapping.checksum || mapping.checksum === checksum;
    return {
      action: same ? 'unchanged' : 'skipped',
      siaghCode: mapping.siaghCode,
      checksum: mapping.checksum ?? checksum,
      customerCode: customer.siaghCode,
      warnings: same ? warnings : [...warnings, `changed after transfer: Siagh pre-invoice ${mapping.siaghCode} was not changed; edit it in Siagh if needed`],
    };
  }
  const res = await siagh.createPreInvoice(input);
  if (!res.documentNumber) warnings.push(`Siagh gave no document number in its message; ReturnCode ${res.returnCode} is stored instead`);
  return {
    action: 'created',
    siaghCode: res.documentNumber ?? res.returnCode,
    documentNumber: res.documentNumber,
    returnCode: res.returnCode,
    checksum,
    customerCode: customer.siaghCode,
    warnings: [...warnings, ...res.notes.filter((n) => !/موفقیت/.test(n))],
  };
}
