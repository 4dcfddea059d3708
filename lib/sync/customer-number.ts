/**
 * CRM `customerNumber` ↔ Siagh contact `Code` (docs/crm-api.md#customer-number-and-siagh-code,
 * docs/known-faults.md#customer-number).
 *
 * `build` writes `prefix + (Code + offset)`; `parse` is its exact inverse: a customer number that
 * `build` could not have produced (wrong prefix, leading zeros, a value at or below the offset,
 * anything but digits after the prefix) parses to `undefined` instead of being clamped to 1 as the
 * old service did (`100-0003` → 1, `100-1000` → 1 collided with the real contact 1). CRM-native
 * customer numbers therefore simply do not parse: callers treat them as "not ours".
 *
 * The scheme is configuration, not code: `{prefix: '100-', offset: 1000}` is only the default.
 */
import { SyncError } from '../errors';
import { toAsciiDigits } from '../text/normalize';

export interface CustomerNumberScheme {
  /** Text before the number, e.g. `100-`. May be empty. */
  prefix: string;
  /** Added to the Siagh Code; an integer ≥ 0. */
  offset: number;
}

export const DEFAULT_CUSTOMER_NUMBER_SCHEME: Readonly<CustomerNumberScheme> = Object.freeze({ prefix: '100-', offset: 1000 });

// Hyphen look-alikes a Persian or word-processor keyboard produces, read as '-'.
const DASHES = /[\u2010-\u2015\u2212\u2043\ufe58\ufe63\uff0d]/g;

function canon(s: string): string {
  return toAsciiDigits(s.normalize('NFKC')).replace(DASHES, '-').replace(/[\u200c-\u200f\u202a-\u202e\u2066-\u2069\ufeff]/g, '');
}

/**
 * Checks a scheme (missing fields take the defaults) and returns it complete. Throws
 * SyncError('CONFIG') when the prefix is not a string, contains `|` or a line break, or the offset
 * is not an integer ≥ 0.
 */
export function validateScheme(s?: Partial<CustomerNumberScheme> | null): CustomerNumberScheme {
  const prefix = s?.prefix ?? DEFAULT_CUSTOMER_NUMBER_SCHEME.prefix;
  const offset = s?.offset ?? DEFAULT_CUSTOMER_NUMBER_SCHEME.offset;
  if (typeof prefix !== 'string' || /[|\r\n]/.test(prefix)) {
    throw new SyncError('CONFIG', `The customer-number prefix ${JSON.stringify(prefix)} is not usable: it must be text without '|' or line breaks (e.g. "100-"). Fix the customer-number scheme in the node configuration.`);
  }
  if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0) {
    throw new SyncError('CONFIG', `The customer-number offset ${JSON.stringify(offset)} is not usable: it must be a whole number ≥ 0 (e.g. 1000). Fix the customer-number scheme in the node configuration.`);
  }
  return { prefix, offset };
}

/**
 * The CRM customer number of a Siagh contact: `prefix + (code + offset)`.
 * 1 → `100-1001`, 8389 → `100-9389`, 9500 → `100-10500` with the default scheme.
 * Throws SyncError('BAD_INPUT') unless `code` is a whole number ≥ 1.
 */
export function buildCustomerNumber(code: number, s?: Partial<CustomerNumberScheme> | null): string {
  const sc = validateScheme(s);
  if (typeof code !== 'number' || !Number.isSafeInteger(code) || code < 1 || !Number.isSafeInteger(code + sc.offset)) {
    throw new SyncError('BAD_INPUT', `The Siagh contact code ${JSON.stringify(code)} cannot be turned into a CRM customer number: a contact code is a whole number ≥ 1.`);
  }
  return sc.prefix + String(code + sc.offset);
}

/**
 * The Siagh Code encoded in a CRM customer number, or undefined when the value is not one that
 * `buildCustomerNumber` produces under this scheme. Persian/Arabic digits and hyphen look-alikes
 * are read as ASCII, surrounding blanks ignored; nothing is clamped.
 * `100-9407` → 8407, `۱۰۰-۹۴۰۷` → 8407, `100-0003` / `100-1000` / `100-965` / `abc` → undefined.
 */
export function parseCustomerNumber(cn: string | null | undefined, s?: Partial<CustomerNumberScheme> | null): number | undefined {
  const sc = validateScheme(s);
  if (cn == null || typeof cn !== 'string') return undefined;
  const text = canon(cn).trim();
  const prefix = canon(sc.prefix);
  if (!text.startsWith(prefix)) return undefined;
  const rest = text.slice(prefix.length);
  if (!/^\d+$/.test(rest)) return undefined;
  const value = Number(rest);
  if (!Number.isSafeInteger(value)) return undefined;
  const code = value - sc.offset;
  if (code < 1) return undefined;
  // Exact inverse: leading zeros ('100-01001') and anything else build() would not write fail here.
  if (prefix + String(code + sc.offset) !== text) return undefined;
  return code;
}
