/**
 * The one encoder for Siagh's `ctrlValues` and `parameters` strings (docs/siagh-api.md#ctrlvalues-and-parameters-encoding-and-escaping,
 * docs/known-faults.md#escaping).
 *
 * Format: segments joined by `|`, each segment `key=value`. Siagh has no escape syntax, so the
 * rule here is: **no value may add, split or shift a segment.**
 *
 * Values (`encodeValue`):
 * - `|` becomes `¦` (U+00A6 BROKEN BAR), so a value can never start a new segment;
 * - CR, LF, TAB and every other control character (C0, DEL, C1, and the Unicode line/paragraph
 *   separators U+2028/U+2029) become one space; a run of them becomes a single space;
 * - `=` inside a value is kept: the server splits a segment at its FIRST `=` (the simulator does
 *   the same), so `key=a=b` carries the value `a=b`;
 * - leading and trailing blanks are trimmed (the operator's sample `fullname= ویرایش شده` shows
 *   stray blanks reaching Siagh otherwise);
 * - `null` / `undefined` become `''` (sent as `key=`);
 * - numbers are written as plain decimal text (never exponent notation); NaN and ±Infinity are
 *   rejected; booleans become `1` / `0` (Siagh's own flags, e.g. `isactive=1`);
 * - Persian (۰–۹) and Arabic-Indic (٠–٩) digits, ZWNJ and every other printable character are
 *   kept exactly as they are;
 * - objects, arrays and functions are rejected (they have no meaning in a form field).
 *
 * Keys are checked, never rewritten: only `[A-Za-z0-9_.#]` is allowed, and a key that breaks the
 * rule throws SyncError('BAD_INPUT').
 *
 * `decodeSegments` is the server's reading (used by the simulator): split on `|`, then at the first
 * `=`; a segment without `=` is reported, not silently dropped.
 */
import { SyncError } from '../errors';

export const PIPE_REPLACEMENT = '\u00a6';
const KEY_RE = /^[A-Za-z0-9_.#]+$/;
// C0 controls, DEL, C1 controls, line and paragraph separators.
const CONTROL_RUN = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g;

/** Whether `key` may be used as a ctrlValues / parameters key. */
export function isValidKey(key: unknown): key is string {
  return typeof key === 'string' && KEY_RE.test(key);
}

/** Throws SyncError('BAD_INPUT') unless `key` is a valid ctrlValues / parameters key. */
export function assertKey(key: unknown): asserts key is string {
  if (!isValidKey(key)) {
    const shown = typeof key === 'string' ? JSON.stringify(key.length > 60 ? key.slice(0, 60) + '…' : key) : String(key);
    throw new SyncError(
      'BAD_INPUT',
      `The Siagh field name ${shown} is not allowed: field names may contain only Latin letters, digits, '_', '.' and '#'. Fix the field mapping.`,
    );
  }
}

function numberText(n: number): string {
  if (!Number.isFinite(n)) {
    throw new SyncError('BAD_INPUT', `The number ${String(n)} cannot be sent to Siagh. Check the source value.`);
  }
  if (Object.is(n, -0)) return '0';
  const plain = String(n);
  if (!/e/i.test(plain)) return plain;
  // Exponent notation (1e21, 1e-7): write every digit instead.
  return n.toLocaleString('en-US', { useGrouping: false, maximumFractionDigits: 20 });
}

/** One value as it goes on the wire (see the file header for the rule). */
export function encodeValue(v: unknown): string {
  if (v === null || v === undefined) return '';
  let s: string;
  switch (typeof v) {
    case 'string':
      s = v;
      break;
    case 'number':
      return numberText(v);
    case 'bigint':
      return v.toString();
    case 'boolean':
      return v ? '1' : '0';
    default:
      throw new SyncError('BAD_INPUT', `A ${Array.isArray(v) ? 'list' : typeof v} cannot be sent as a Siagh form value; give text or a number.`);
  }
  return s.replace(/\|/g, PIPE_REPLACEMENT).replace(CONTROL_RUN, ' ').trim();
}

/** `key=value|key=value…` with every key checked and every value encoded. */
export function encodeSegments(list: ReadonlyArray<readonly [key: string, value: unknown]>): string {
  const out: string[] = [];
  for (const [key, value] of list) {
    assertKey(key);
    let text: string;
    try {
      text = encodeValue(value);
    } catch (e) {
      if (e instanceof SyncError) throw new SyncError('BAD_INPUT', `Siagh field ${key}: ${e.message}`);
      throw e;
    }
    out.push(`${key}=${text}`);
  }
  return out.join('|');
}

export interface DecodedSegment {
  key: string;
  value: string;
  /** False for a segment without `=` (value is then ''): the server cannot read it. */
  hasEquals: boolean;
  raw: string;
}

/** The server's reading: split on `|`, then at the first `=`. An empty string has no segments. */
export function decodeSegments(s: string): DecodedSegment[] {
  if (s === '') return [];
  return s.split('|').map((raw) => {
    const i = raw.indexOf('=');
    if (i < 0) return { key: raw, value: '', hasEquals: false, raw };
    return { key: raw.slice(0, i), value: raw.slice(i + 1), hasEquals: true, raw };
  });
}
