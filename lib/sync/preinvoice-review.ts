/**
 * What was transferred to Siagh as a pre-invoice, kept compact in the mapping record's `extra`
 * (`extra.transferred`), and the differences between that and the CRM's current document — the
 * facts of a DOCUMENT_CHANGED_AFTER_TRANSFER review item. Pure functions, no I/O.
 *
 * Rows are matched by Siagh item code and occurrence (the second row of item 5001 matches the
 * second row of item 5001), so a reordering alone is no difference.
 */
import type { PreInvoiceInput } from '../types';

/** A row as kept: [itemCode, qty, price, discount]. */
export type SummaryRow = [item: string, qty: number, price: number, discount: number];

export interface TransferredSummary {
  v: 1;
  /** The customer as sent (codemoshtari, else codecontact). */
  customer: string;
  /** Σ qty × price − discount over the rows. */
  total: number;
  rowCount: number;
  /** Omitted when the document has too many rows to keep (see MAX_ROWS_JSON). */
  rows?: SummaryRow[];
  /** Header fields other than the customer, values clipped to 200 characters. */
  header: Record<string, string>;
}

export interface RowDiff {
  item: string;
  qty?: { before: number; after: number };
  price?: { before: number; after: number };
  discount?: { before: number; after: number };
}

export interface DocumentDifferences {
  customer?: { before: string; after: string };
  total?: { before: number; after: number };
  linesAdded: Array<{ item: string; qty: number; price: number; discount: number }>;
  linesRemoved: Array<{ item: string; qty: number; price: number; discount: number }>;
  linesChanged: RowDiff[];
  header: Array<{ field: string; before: string; after: string }>;
  /** Rows were not kept (too many): only totals, count and header are compared. */
  rowsUnknown?: boolean;
}

/** The facts of a DOCUMENT_CHANGED_AFTER_TRANSFER item (SyncError.review). */
export interface DocumentReview {
  docKind: 'quote' | 'invoice';
  crmId: string;
  number: string | null;
  /** The pre-invoice in Siagh (its printed number, or ReturnCode). */
  siaghCode: string;
  /** null: the mapping predates transfer summaries, so what was sent is unknown. */
  differences: DocumentDifferences | null;
  checksum: { transferred: string | null; current: string };
}

const MAX_ROWS_JSON = 6000;
const CLIP = 200;

const round = (n: number) => Math.round(n * 100) / 100;

export function summarizePreInvoice(input: PreInvoiceInput): TransferredSummary {
  const h = Object.fromEntries(input.header);
  const customer = (h.codemoshtari || h.codecontact || '').trim();
  const rows: SummaryRow[] = input.rows.map((r) => [r.itemCode, r.qty, r.price, r.discount]);
  const total = round(rows.reduce((s, [, q, p, d]) => s + q * p - d, 0));
  const header: Record<string, string> = {};
  for (const [k, v] of input.header) if (k !== 'codemoshtari' && k !== 'codecontact') header[k] = v.length > CLIP ? v.slice(0, CLIP) : v;
  const out: TransferredSummary = { v: 1, customer, total, rowCount: rows.length, header };
  if (JSON.stringify(rows).length <= MAX_ROWS_JSON) out.rows = rows;
  return out;
}

/** Read a summary back from a mapping's extra (undefined when absent or not ours). */
export function transferredOf(extra: Record<string, unknown> | undefined): TransferredSummary | undefined {
  const t = extra?.transferred as TransferredSummary | undefined;
  if (!t || typeof t !== 'object' || t.v !== 1 || typeof t.customer !== 'string' || typeof t.total !== 'number') return undefined;
  return t;
}

function keyed(rows: SummaryRow[]): Map<string, SummaryRow> {
  const seen = new Map<string, number>();
  const out = new Map<string, SummaryRow>();
  for (const r of rows) {
    const n = (seen.get(r[0]) ?? 0) + 1;
    seen.set(r[0], n);
    out.set(n === 1 ? r[0] : `${r[0]}#${n}`, r);
  }
  return out;
}

const asLine = ([item, qty, price, discount]: SummaryRow) => ({ item, qty, price, discount });

export function diffPreInvoice(before: TransferredSummary, after: TransferredSummary): DocumentDifferences {
  const d: DocumentDifferences = { linesAdded: [], linesRemoved: [], linesChanged: [], header: [] };
  if (before.customer !== after.customer) d.customer = { before: before.customer, after: after.customer };
  if (before.total !== after.total) d.total = { before: before.total, after: after.total };
  if (before.rows && after.rows) {
    const a = keyed(before.rows);
    const b = keyed(after.rows);
    for (const [k, r] of a) if (!b.has(k)) d.linesRemoved.push(asLine(r));
    for (const [k, r] of b) {
      const o = a.get(k);
      if (!o) {
        d.linesAdded.push(asLine(r));
        continue;
      }
      const c: RowDiff = { item: r[0] };
      if (o[1] !== r[1]) c.qty = { before: o[1], after: r[1] };
      if (o[2] !== r[2]) c.price = { before: o[2], after: r[2] };
      if (o[3] !== r[3]) c.discount = { before: o[3], after: r[3] };
      if (c.qty || c.price || c.discount) d.linesChanged.push(c);
    }
  } else d.rowsUnknown = true;
  const fields = new Set([...Object.keys(before.header ?? {}), ...Object.keys(after.header ?? {})]);
  for (const f of fields) {
    const x = before.header?.[f] ?? '';
    const y = after.header?.[f] ?? '';
    if (x !== y) d.header.push({ field: f, before: x, after: y });
  }
  return d;
}

/** One line an operator reads: "row 5001 qty 2 → 3; total 3,150,000 → 4,650,000; …". */
export function describeDifferences(d: DocumentDifferences | null): string {
  if (!d) return 'what was transferred is not known (it was transferred before this version kept a summary)';
  const parts: string[] = [];
  const n = (x: number) => x.toLocaleString('en-US');
  if (d.customer) parts.push(`customer ${d.customer.before} → ${d.customer.after}`);
  for (const l of d.linesAdded) parts.push(`line added: ${l.item} × ${n(l.qty)} at ${n(l.price)}`);
  for (const l of d.linesRemoved) parts.push(`line removed: ${l.item} × ${n(l.qty)} at ${n(l.price)}`);
  for (const c of d.linesChanged) {
    const bits = [c.qty && `qty ${n(c.qty.before)} → ${n(c.qty.after)}`, c.price && `price ${n(c.price.before)} → ${n(c.price.after)}`, c.discount && `discount ${n(c.discount.before)} → ${n(c.discount.after)}`].filter(Boolean);
    parts.push(`line ${c.item}: ${bits.join(', ')}`);
  }
  if (d.total) parts.push(`total ${n(d.total.before)} → ${n(d.total.after)}`);
  for (const h of d.header) parts.push(`${h.field} changed`);
  if (d.rowsUnknown) parts.push('rows not compared (too many rows were transferred to keep them)');
  return parts.length ? parts.join('; ') : 'a field this sync does not summarise changed';
}
