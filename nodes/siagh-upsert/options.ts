/** siagh-upsert settings from the edit dialog, parsed and checked once at deploy. */
import { SyncError } from '../../lib/errors';
import type { ContactSyncOptions } from '../../lib/sync/contact-sync';
import { contactMapOptionsOf, fieldSettingsFromConfig, type FieldSettingsConfig } from '../../lib/sync/field-settings';
import type { PreInvoiceSyncOptions } from '../../lib/sync/preinvoice-sync';
import type { NodeDef } from '../shared/red';

/** The shared field settings (lib/sync/field-settings.ts) are the same properties as siagh-import's. */
export interface SiaghUpsertDef extends NodeDef, FieldSettingsConfig {
  siagh: string;
  /** crm-config for the write-back of the link (refId); optional. */
  crm?: string;
  /** Write `siagh:<Code>` into the CRM record's refId after a sync (default on when `crm` is set). */
  writeBack?: boolean;
  mode: 'contact' | 'preinvoice' | 'auto';
  emptyPolicy?: 'keep' | 'clear';
  customerField?: 'codemoshtari' | 'codecontact' | 'both';
  customerValue?: 'code' | 'accountParty';
  saleModel?: string;
  paymentType?: string;
  salesCentre?: string;
  intermediary?: string;
  saleType?: string;
  documentName?: string;
  productMap?: string;
  requireMappedProducts?: boolean;
  vatPercentKey?: string;
  vatAmountKey?: string;
  rowVatKey?: string;
  discountKey?: string;
  discountPercentKey?: string;
  documentDiscount?: 'none' | 'rows';
}

function jsonObject(text: string | undefined, what: string): Record<string, string> | undefined {
  if (!text || !text.trim()) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new SyncError('CONFIG', `${what} is not valid JSON (${(e as Error).message}). Write an object like {"key": "value"}.`);
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new SyncError('CONFIG', `${what} must be a JSON object like {"key": "value"}.`);
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(v as Record<string, unknown>)) {
    if (typeof val !== 'string') throw new SyncError('CONFIG', `${what}: the value of "${k}" must be a string.`);
    out[k] = val;
  }
  return out;
}

export function contactOptions(def: SiaghUpsertDef): ContactSyncOptions {
  return {
    emptyPolicy: def.emptyPolicy === 'clear' ? 'clear' : 'keep',
    // The node's own properties are read; the others (id, wires, …) are ignored.
    map: contactMapOptionsOf(fieldSettingsFromConfig(def)),
  };
}

export function preInvoiceOptions(def: SiaghUpsertDef): PreInvoiceSyncOptions {
  const opt = (v: string | undefined) => (v === undefined ? undefined : v.trim());
  return {
    customerField: def.customerField ?? 'codemoshtari',
    customerValue: def.customerValue ?? 'code',
    saleModel: opt(def.saleModel) || 'auto',
    paymentType: opt(def.paymentType),
    // empty means the default (sale-model digits / 31): Siagh refuses an empty value
    salesCentre: opt(def.salesCentre) || 'auto',
    intermediary: opt(def.intermediary) || undefined,
    saleType: opt(def.saleType),
    documentName: opt(def.documentName) || undefined,
    productCodeMap: jsonObject(def.productMap, 'Product code map'),
    requireMappedProducts: def.requireMappedProducts === true,
    vatPercentKey: opt(def.vatPercentKey),
    vatAmountKey: opt(def.vatAmountKey),
    rowVatKey: opt(def.rowVatKey),
    discountKey: opt(def.discountKey),
    discountPercentKey: opt(def.discountPercentKey),
    documentDiscount: def.documentDiscount === 'rows' ? 'rows' : 'none',
  };
}
