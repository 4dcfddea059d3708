/** siagh-upsert settings from the edit dialog, parsed and checked once at deploy. */
import { SyncError } from '../../lib/errors';
import type { ContactSyncOptions } from '../../lib/sync/contact-sync';
import type { PreInvoiceSyncOptions } from '../../lib/sync/preinvoice-sync';
import type { NodeDef } from '../shared/red';

export interface SiaghUpsertDef extends NodeDef {
  siagh: string;
  mode: 'contact' | 'preinvoice' | 'auto';
  emptyPolicy?: 'keep' | 'clear';
  overrides?: string;
  mobileTypes?: string;
  officeTypes?: string;
  tmpidKey?: string;
  cnPrefix?: string;
  cnOffset?: string | number;
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

function words(text: string | undefined): string[] | undefined {
  const list = (text ?? '').split(/[,،\n]/).map((w) => w.trim()).filter(Boolean);
  return list.length ? list : undefined;
}

export function contactOptions(def: SiaghUpsertDef): ContactSyncOptions {
  const offset = def.cnOffset === undefined || def.cnOffset === '' ? 1000 : Number(def.cnOffset);
  if (!Number.isInteger(offset) || offset < 0) throw new SyncError('CONFIG', `The customer-number offset "${def.cnOffset}" must be a whole number ≥ 0.`);
  return {
    emptyPolicy: def.emptyPolicy === 'clear' ? 'clear' : 'keep',
    map: {
      scheme: { prefix: def.cnPrefix ?? '100-', offset },
      overrides: jsonObject(def.overrides, 'Field overrides'),
      phoneTypes: { mobile: words(def.mobileTypes), office: words(def.officeTypes) },
      tmpidKey: def.tmpidKey?.trim() || undefined,
    },
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
  };
}
