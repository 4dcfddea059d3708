/**
 * CRM sales quote / sales invoice → Siagh sales pre-invoice (form 43D81, docs/siagh-api.md#form-43d81-sales-pre-invoice). Pure.
 *
 * Fixes over the old service:
 * - Fiscal year (docs/known-faults.md#fiscal-year): `salmali` is the fiscal year the Siagh login reported, passed in by the caller; never
 *   computed from the Gregorian calendar. A Gregorian-looking year is refused.
 * - Header codes (docs/open-questions.md#header-codes): `codemarkazforush` (sales centre) and `codevaseteh` (intermediary) are configuration. Their
 *   defaults follow the latest evidence: the real server answered a save with both empty
 *   with the RUNTIME ERROR "Field 'Code' not found", and the follow-up set codevaseteh = 31 and
 *   codemarkazforush = the sale-model digits; so empty or 'auto' means exactly that (an empty
 *   value is never sent). Where the customer goes (`codemoshtari`, `codecontact` or both) and what
 *   it is (contact Code or AccountPartyCode) is configurable because it is unresolved (docs/open-questions.md#pre-invoice-customer); CRM
 *   product codes go through `productCodeMap`.
 * - Retries (docs/known-faults.md#duplicate-pre-invoices): `_In_Suid` is derived from the CRM id (`suidFor`), so a retry carries the same value.
 *
 * The checksum covers header and rows (a changed price or quantity changes it); it does not cover
 * the suid or anything the mapping does not send (a new modifyDate alone leaves it unchanged).
 */
import { createHash } from 'node:crypto';
import { SyncError } from '../errors';
import type { CrmQuote, PreInvoiceInput, PreInvoiceRow, SiaghFieldList } from '../types';
import { toAsciiDigits } from '../text/normalize';
import { checksumOf } from './checksum';

export interface PreInvoiceOptions {
  /** From the Siagh login (SiaghSessionInfo.fiscalYear), never Gregorian − 621 (docs/known-faults.md#fiscal-year). Required. */
  fiscalYear: number;
  /** The mapped Siagh contact Code. */
  customerCode: number | string;
  /** From the Siagh contact record (GetAll AccountPartyCode), when known. */
  accountPartyCode?: number | string | null;
  /** Unresolved (docs/open-questions.md#pre-invoice-customer): which header field(s) carry the customer. Default 'codemoshtari'. */
  customerField?: 'codemoshtari' | 'codecontact' | 'both';
  /**
   * docs/open-questions.md#pre-invoice-customer: what goes into codemoshtari: the contact Code or its AccountPartyCode (falls back to the
   * Code with a warning). codecontact always gets the contact Code. Default 'code'.
   */
  customerValue?: 'code' | 'accountParty';
  /** Default 'auto' = the digits of crmObjectTypeCode (PI_5 → 5), else '1'. */
  saleModel?: string;
  /** Default '2'. */
  paymentType?: string;
  /** Default 'auto' (also for ''): the sale-model digits, as the real server was last sent. */
  salesCentre?: string;
  /** Default '31' (also for ''), as the real server was last sent. */
  intermediary?: string;
  /** Default '1'. */
  saleType?: string;
  /** Default 'پیش فاکتور فروش'. */
  documentName?: string;
  /** CRM productCode (or productId) → Siagh item code. */
  productCodeMap?: Record<string, string>;
  /** Unit name when the CRM row has none; default 'عدد'. */
  unitDefault?: string;
  /** Default false; true → an unmapped product is a BAD_INPUT error naming it. */
  requireMappedProducts?: boolean;
  /**
   * VAT and the document-level discount have no known Siagh field (none is known: docs/open-questions.md#unknown-fields).
   * Each key below names the `sl_sanad` header column (or, for rowVatKey, the `sl_rizsanad` row
   * column) that receives the value; '' (default) = not sent.
   * - vatPercentKey ← quote `vatPercent`;
   * - vatAmountKey ← quote `vat` (else the sum of the rows' `totalVat`);
   * - discountKey ← the document-level discount: quote `discount` less the rows' `totalDiscount`;
   * - discountPercentKey ← quote `discountPercent`;
   * - rowVatKey ← each row's `totalVat`.
   */
  vatPercentKey?: string;
  vatAmountKey?: string;
  discountKey?: string;
  discountPercentKey?: string;
  rowVatKey?: string;
  /**
   * 'rows': the document-level discount is spread over the rows' `mabtakhfif` (the one discount
   * column Siagh is known to read), in proportion to each row's amount after its own discount,
   * in whole units, the remainder on the largest row. Default 'none': not sent (a warning says so)
   * unless discountKey names a header column.
   */
  documentDiscount?: 'none' | 'rows';
}

/** codevaseteh when none is set: the value sent since the 2025-12-26 follow-up (docs/open-questions.md#header-codes). */
export const DEFAULT_INTERMEDIARY = '31';

export interface MappedPreInvoice {
  input: PreInvoiceInput;
  checksum: string;
  warnings: string[];
}

/**
 * `_In_Suid` of a CRM document: the first 32 hex characters, upper-case, of
 * sha256('siagh-sync:' + docKind + ':' + crmId). The id is trimmed and lower-cased first, so the
 * same GUID written in another letter case (webhook vs. get) gives the same suid.
 */
export function suidFor(crmId: string, docKind: 'quote' | 'invoice'): string {
  const id = typeof crmId === 'string' ? crmId.trim().toLowerCase() : '';
  if (!id) throw new SyncError('BAD_INPUT', 'A CRM document without an id cannot be sent to Siagh: its id is what makes a retry safe.');
  if (docKind !== 'quote' && docKind !== 'invoice') {
    throw new SyncError('BAD_INPUT', `Unknown CRM document kind ${JSON.stringify(docKind)}: expected "quote" or "invoice".`);
  }
  return createHash('sha256').update(`siagh-sync:${docKind}:${id}`, 'utf8').digest('hex').slice(0, 32).toUpperCase();
}

function text(v: unknown): string {
  if (v == null) return '';
  if (typeof v === 'string') return v.trim();
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  return '';
}

/** A whole number ≥ 1 written as ASCII digits, or undefined. */
function codeText(v: unknown): string | undefined {
  if (typeof v === 'number') return Number.isSafeInteger(v) && v >= 1 ? String(v) : undefined;
  if (typeof v !== 'string') return undefined;
  const t = toAsciiDigits(v).trim();
  return /^[1-9]\d*$/.test(t) ? t : undefined;
}

/** A finite number from a number or numeric text (Persian digits allowed), else undefined. */
function num(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isFinite(v) ? v : undefined;
  if (typeof v === 'string') {
    const t = toAsciiDigits(v).replace(/[,\u066c\s]/g, '').replace('\u066b', '.');
    if (!/^-?\d+(\.\d+)?$/.test(t)) return undefined;
    return Number(t);
  }
  return undefined;
}

function optText(name: string, v: unknown, dflt: string): string {
  if (v === undefined || v === null) return dflt;
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  if (typeof v !== 'string') throw new SyncError('CONFIG', `The pre-invoice option ${name} must be text (got ${typeof v}).`);
  return toAsciiDigits(v).trim();
}

export function mapQuoteToPreInvoice(q: CrmQuote, opts: PreInvoiceOptions): MappedPreInvoice {
  if (!opts || typeof opts !== 'object') throw new SyncError('CONFIG', 'Pre-invoice options are required (at least fiscalYear and customerCode).');
  const fy = opts.fiscalYear;
  if (typeof fy !== 'number' || !Number.isInteger(fy) || fy < 1300 || fy > 1499) {
    const hint = typeof fy === 'number' && fy >= 1900 && fy <= 2200 ? ' It looks like a Gregorian year;' : '';
    throw new SyncError('CONFIG', `The fiscal year ${JSON.stringify(fy)} is not a Jalali year.${hint} pass the FiscalYear the Siagh login reports (e.g. 1404).`);
  }
  if (!q || typeof q !== 'object') throw new SyncError('BAD_INPUT', 'No CRM quote was given.');
  const doc = `${q.docKind === 'invoice' ? 'invoice' : 'quote'} ${text(q.number) || text(q.crmId) || '(no id)'}`;
  const suid = suidFor(q.crmId, q.docKind);

  const customer = codeText(opts.customerCode);
  if (!customer) {
    throw new SyncError('CUSTOMER_NOT_MAPPED', `The customer of CRM ${doc} has no Siagh contact code (${JSON.stringify(opts.customerCode ?? null)}); sync the customer first.`);
  }
  const customerField = opts.customerField ?? 'codemoshtari';
  if (!['codemoshtari', 'codecontact', 'both'].includes(customerField)) {
    throw new SyncError('CONFIG', `The customer field ${JSON.stringify(customerField)} is unknown: use "codemoshtari", "codecontact" or "both".`);
  }
  const customerValue = opts.customerValue ?? 'code';
  if (customerValue !== 'code' && customerValue !== 'accountParty') {
    throw new SyncError('CONFIG', `The customer value ${JSON.stringify(customerValue)} is unknown: use "code" or "accountParty".`);
  }

  const warnings: string[] = [];

  let moshtari = customer;
  if (customerValue === 'accountParty') {
    const ap = codeText(opts.accountPartyCode);
    if (ap) moshtari = ap;
    else warnings.push(`The Siagh contact ${customer} has no AccountPartyCode; codemoshtari gets the contact code ${customer} instead.`);
  }

  let saleModel = optText('saleModel', opts.saleModel, 'auto');
  if (saleModel === '' || saleModel.toLowerCase() === 'auto') {
    const typeCode = toAsciiDigits(text(q.crmObjectTypeCode));
    const m = /(\d+)\D*$/.exec(typeCode);
    if (m) saleModel = String(Number(m[1]));
    else {
      saleModel = '1';
      warnings.push(`The CRM type "${typeCode || '(none)'}" of ${doc} carries no sale-model number; sale model 1 is used. Set the sale model in the node if that is wrong.`);
    }
  }

  let salesCentre = optText('salesCentre', opts.salesCentre, 'auto');
  if (salesCentre === '' || salesCentre.toLowerCase() === 'auto') salesCentre = saleModel;

  const header: SiaghFieldList = [
    ['hssanadstate', '8'],
    ['codenoeesanad', '2'],
    ['codesalemodel', saleModel],
    ['salmali', String(fy)],
    ['codenoeepardakht', optText('paymentType', opts.paymentType, '2')],
    ['codemarkazforush', salesCentre],
    ['codecontact', customerField === 'codemoshtari' ? '' : customer],
    ['codemoshtari', customerField === 'codecontact' ? '' : moshtari],
    ['codenoeeforush', optText('saleType', opts.saleType, '1')],
    ['codevaseteh', optText('intermediary', opts.intermediary, '') || DEFAULT_INTERMEDIARY],
    ['tozihat', text(q.description) || text(q.subject)],
    ['namenoesanad', opts.documentName == null ? 'پیش فاکتور فروش' : String(opts.documentName).trim()],
  ];

  // ---- rows
  const details = Array.isArray(q.details) ? q.details : [];
  if (details.length === 0) {
    throw new SyncError('BAD_INPUT', `CRM ${doc} has no product rows; Siagh does not accept a pre-invoice without rows. Add products in the CRM.`);
  }
  const map = opts.productCodeMap ?? {};
  if (typeof map !== 'object' || Array.isArray(map)) throw new SyncError('CONFIG', 'The product code map must be an object: CRM product code → Siagh item code.');
  const unitDefault = opts.unitDefault == null ? 'عدد' : String(opts.unitDefault).trim() || 'عدد';
  const lookup = (k: string): string | undefined => {
    if (!k || !Object.prototype.hasOwnProperty.call(map, k)) return undefined;
    const v = map[k];
    return typeof v === 'string' && v.trim() ? toAsciiDigits(v).trim() : undefined;
  };

  const rowVatKey = columnKey('rowVatKey', opts.rowVatKey, ROW_COLUMNS);
  const rows: PreInvoiceRow[] = [];
  const unmapped: string[] = [];
  const problems: string[] = [];
  let rowDiscounts = 0;
  details.forEach((d, i) => {
    const n = i + 1;
    const productCode = text(d?.productCode);
    const productId = text(d?.productId);
    const label = `row ${n}${text(d?.productName) ? ` (${text(d?.productName)})` : ''}`;
    const mapped = lookup(productCode) ?? lookup(productId);
    let itemCode = mapped;
    if (!itemCode) {
      if (!productCode) {
        problems.push(`${label} has no product code and no entry in the product code map`);
        return;
      }
      itemCode = toAsciiDigits(productCode);
      if (!unmapped.includes(productCode)) unmapped.push(productCode);
    }
    const qty = num(d?.count);
    const price = num(d?.baseUnitPrice);
    const discount = d?.totalDiscount == null ? 0 : num(d.totalDiscount);
    if (qty === undefined || qty <= 0) problems.push(`${label} has quantity ${JSON.stringify(d?.count ?? null)} (must be more than 0)`);
    if (price === undefined || price < 0) problems.push(`${label} has unit price ${JSON.stringify(d?.baseUnitPrice ?? null)} (must be 0 or more)`);
    if (discount === undefined || discount < 0) problems.push(`${label} has discount ${JSON.stringify(d?.totalDiscount ?? null)} (must be 0 or more)`);
    if (qty === undefined || price === undefined || discount === undefined) return;
    rowDiscounts += discount;
    const row: PreInvoiceRow = { itemCode, unitName: text(d?.productUnitTypeName) || unitDefault, qty, price, discount };
    if (rowVatKey) row.extra = { [rowVatKey]: num(d?.totalVat) ?? 0 };
    rows.push(row);
  });

  if (unmapped.length && opts.requireMappedProducts) {
    problems.push(`the CRM product code(s) ${unmapped.map((c) => `"${c}"`).join(', ')} have no Siagh item code in the product code map`);
  } else if (unmapped.length) {
    warnings.push(`CRM product code(s) ${unmapped.map((c) => `"${c}"`).join(', ')} of ${doc} are not in the product code map and are sent to Siagh as item codes unchanged; Siagh refuses them unless the codes are the same.`);
  }
  if (problems.length) {
    throw new SyncError('BAD_INPUT', `CRM ${doc} cannot be sent to Siagh: ${problems.join('; ')}. Correct it in the CRM${unmapped.length && opts.requireMappedProducts ? ' or add the codes to the product code map' : ''}.`);
  }

  const extra = amountsOf(q, details, rows, rowDiscounts, opts, header, warnings, doc);
  header.push(...extra);

  return { input: { suid, header, rows }, checksum: checksumOf({ header, rows }), warnings };
}

const COLUMN_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** Columns the mapper or the client already write: a setting may not name them. */
const HEADER_COLUMNS = new Set(['hssanadstate', 'codenoeesanad', 'codesalemodel', 'salmali', 'codenoeepardakht', 'codemarkazforush', 'codecontact', 'codemoshtari', 'codenoeeforush', 'codevaseteh', 'tozihat', 'namenoesanad']);
const ROW_COLUMNS = new Set(['__uid', '_status', 'codekala', 'nameunit', 'qty', 'mabtakhfif', 'vazn', 'hajm', 'price', 'radif', 'finalqty', 'takhfif', 'sumamelinc', 'sumameldec']);

/** A column named by a setting (`sl_sanad.` / `sl_rizsanad.` prefix dropped), '' when not set. */
function columnKey(name: string, v: unknown, taken: ReadonlySet<string>): string {
  if (v === undefined || v === null) return '';
  if (typeof v !== 'string') throw new SyncError('CONFIG', `The pre-invoice option ${name} must be a Siagh column name (got ${typeof v}).`);
  const k = v.trim().replace(/^sl_(sanad|rizsanad)\./i, '');
  if (k === '') return '';
  if (!COLUMN_RE.test(k)) throw new SyncError('CONFIG', `The pre-invoice option ${name} "${v}" is not a Siagh column name (Latin letters, digits, '_').`);
  if (taken.has(k.toLowerCase())) throw new SyncError('CONFIG', `The pre-invoice option ${name} "${v}" names a column the pre-invoice already fills; choose another column or leave it empty.`);
  return k;
}

/** A money amount as Siagh gets it: finite, rounded to 2 decimals (whole Rials stay whole). */
function amount(n: number): number {
  return Math.round(n * 100) / 100;
}

/**
 * The VAT / document-discount header fields the settings ask for, and the document discount
 * spread over the rows when `documentDiscount` is 'rows' (rows changed in place).
 */
function amountsOf(
  q: CrmQuote,
  details: CrmQuote['details'],
  rows: PreInvoiceRow[],
  rowDiscounts: number,
  opts: PreInvoiceOptions,
  header: SiaghFieldList,
  warnings: string[],
  doc: string,
): SiaghFieldList {
  const taken = new Set([...HEADER_COLUMNS, ...header.map(([k]) => k.toLowerCase())]);
  const keys = {
    vatPercent: columnKey('vatPercentKey', opts.vatPercentKey, taken),
    vatAmount: columnKey('vatAmountKey', opts.vatAmountKey, taken),
    discount: columnKey('discountKey', opts.discountKey, taken),
    discountPercent: columnKey('discountPercentKey', opts.discountPercentKey, taken),
  };
  const set = Object.values(keys).filter(Boolean);
  if (new Set(set.map((k) => k.toLowerCase())).size !== set.length) throw new SyncError('CONFIG', 'Two pre-invoice VAT / discount settings name the same Siagh column.');
  const spread = opts.documentDiscount ?? 'none';
  if (spread !== 'none' && spread !== 'rows') throw new SyncError('CONFIG', `The document-discount option ${JSON.stringify(spread)} is unknown: use "none" or "rows".`);

  const out: SiaghFieldList = [];
  if (keys.vatPercent) out.push([keys.vatPercent, String(num(q.vatPercent) ?? 0)]);
  if (keys.vatAmount) {
    const rowVat = details.reduce((s, d) => s + (num(d?.totalVat) ?? 0), 0);
    out.push([keys.vatAmount, String(amount(num(q.vat) ?? rowVat))]);
  }
  const quoteDiscount = num(q.discount);
  const docDiscount = quoteDiscount !== undefined && quoteDiscount - rowDiscounts > 0.005 ? amount(quoteDiscount - rowDiscounts) : 0;
  if (keys.discountPercent) out.push([keys.discountPercent, String(num(q.discountPercent) ?? 0)]);
  if (spread === 'rows' && docDiscount > 0) {
    const bases = rows.map((r) => Math.max(0, r.qty * r.price - r.discount));
    const total = bases.reduce((a, b) => a + b, 0);
    if (total + 0.005 < docDiscount) {
      throw new SyncError('BAD_INPUT', `CRM ${doc} has a document discount (${docDiscount}) larger than its rows' amounts after their own discounts (${total}); it cannot be spread over the rows. Correct it in the CRM.`);
    }
    const whole = Number.isInteger(docDiscount);
    const shares = bases.map((b) => (total > 0 ? (whole ? Math.floor((docDiscount * b) / total) : amount((docDiscount * b) / total)) : 0));
    const rest = amount(docDiscount - shares.reduce((a, b) => a + b, 0));
    const largest = bases.indexOf(Math.max(...bases));
    shares[largest] = amount(shares[largest] + rest);
    rows.forEach((r, i) => {
      r.discount = amount(r.discount + shares[i]);
    });
    if (keys.discount) out.push([keys.discount, '0']);
  } else if (keys.discount) out.push([keys.discount, String(docDiscount)]);
  else if (docDiscount > 0) {
    warnings.push(`CRM ${doc} has a document discount (${quoteDiscount}) beyond its row discounts (${rowDiscounts}); only row discounts are sent to Siagh. Set a Siagh column for it, or spread it over the rows, in the node.`);
  }
  return out;
}
