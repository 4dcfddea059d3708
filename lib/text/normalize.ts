/**
 * Persian text, digits, phone numbers and national ids: the one place where comparison keys are
 * built. Keys are for matching only; the original text is what we store and send.
 *
 * @persian-tools/persian-tools does the digit conversion (where it is correct, wrapped so that a
 * non-string never reaches it). The other rules are written here on purpose, because its known
 * faults would otherwise reach callers —
 * - `toPersianChars` leaves anything inside `{{…}}` unconverted (template placeholders);
 * - `digitsFaToEn` / `digitsArToEn` throw on non-strings;
 * - `phoneNumberNormalizer` throws on spaces and other separators;
 * - `verifyIranianNationalId` rejects Persian digits and, by default, every id whose 3-digit
 *   prefix is missing from its built-in list of city codes (a false alarm for newer prefixes).
 * The rules here are short and are exercised by test/lib/text/text-normalize.test.ts.
 */

import { digitsArToEn, digitsFaToEn } from '@persian-tools/persian-tools';

const ZWNJ = /\u200c/g;
// ZWJ, LRM, RLM, bidi embeddings/overrides/isolates, BOM, soft hyphen, tatweel (kashida): removed.
const INVISIBLES = /[\u200d\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff\u00ad\u0640]/g;
// Arabic harakat, tanwin, shadda, sukun, hamza above/below, superscript alef.
const ARABIC_DIACRITICS = /[\u064b-\u065f\u0670]/g;

/** Persian (۰–۹) and Arabic-Indic (٠–٩) digits to ASCII; everything else unchanged. */
export function toAsciiDigits(s: string): string {
  const t = String(s);
  return /[\u06f0-\u06f9\u0660-\u0669]/.test(t) ? digitsArToEn(digitsFaToEn(t)) : t;
}

/**
 * Arabic letter forms to the Persian ones a Persian keyboard types: ي ى → ی, ك → ک,
 * ة ۀ ە ہ → ه, أ إ ٱ → ا. آ, ؤ and ئ are kept (they are real Persian spellings).
 */
function persianLetters(s: string): string {
  return s
    .replace(/[\u064a\u0649]/g, '\u06cc') // ي ى → ی
    .replace(/\u0643/g, '\u06a9') // ك → ک
    .replace(/[\u0629\u06c0\u06d5\u06c1]/g, '\u0647') // ة ۀ ە ہ → ه
    .replace(/[\u0623\u0625\u0671]/g, '\u0627'); // أ إ ٱ → ا
}

/**
 * A comparison key for names and free text: Unicode compatibility forms folded (NFKC: Arabic
 * presentation forms, full-width characters), Arabic ي/ى/ك → Persian ی/ک (and ة/ۀ → ه, أ/إ → ا),
 * Persian and Arabic-Indic digits to ASCII, diacritics, tatweel and invisible marks removed, ZWNJ
 * treated as a space, runs of white space folded to one space, trimmed, lower-case.
 *
 * So `'علي‌رضا  كريمي'`, `'علی رضا کریمی'` and `'ﻋﻠﻲ رضا كريمي'` share one key. `'علیرضا'` (no
 * separator at all) is a different spelling and a different key.
 */
export function textKey(s: string | null | undefined): string {
  if (s == null) return '';
  let t = String(s).normalize('NFKC');
  t = toAsciiDigits(t);
  t = persianLetters(t);
  t = t.replace(INVISIBLES, '').replace(ARABIC_DIACRITICS, '').replace(ZWNJ, ' ');
  return t.replace(/\s+/g, ' ').trim().toLowerCase();
}

// An extension written after the number: "x 12", "ext. 12", "#12", "داخلی ۱۲", "(داخلی 12)".
const EXTENSION_TAIL = /\s*[([]?\s*(?:ext\.?|extension|x|#|داخلی|داخل)\s*[:.]?\s*\d{1,6}\s*[)\]]?\s*$/i;
// Several numbers in one field: keep the first.
const LIST_SEPARATORS = /[,;،؛|\n\r]/;

/**
 * Canonical key of a phone number.
 *
 * - Iranian numbers in any written form (`+98`, `0098`, `98`, `9…`, `09…`, `(021) 8877-6655`,
 *   Persian digits, spaces, dashes, dots, brackets, `+98 (0) 912…`) become `+98` followed by the
 *   national number without its trunk `0`: `+989121234567`, `+982188776655`.
 * - A national number is never rejected by its prefix (0904…, 0999…, new operators and area codes
 *   are all kept).
 * - Other international numbers (`+` or `00` and a country code other than 98) keep their digits:
 *   `+14155550100`.
 * - A number that cannot be placed (no `+`/`00`/`98`, no trunk `0`, and not the 10 digits of a
 *   national number) — typically a landline written without its area code, `8877 6655` — is
 *   returned as its bare digits `88776655`, without a country.
 * - An extension at the end (`x 12`, `ext. 12`, `#12`, `داخلی 12`) is dropped; when a field holds
 *   several numbers (separated by `,` `;` `،` `؛` `|` or a new line, or `/` after a complete
 *   number) the first one counts.
 *
 * Returns undefined when no digits are left.
 */
export function phoneKey(raw: string | null | undefined): string | undefined {
  if (raw == null) return undefined;
  let s = toAsciiDigits(String(raw).normalize('NFKC'));
  s = s.split(LIST_SEPARATORS).find((part) => /\d/.test(part)) ?? '';
  const slash = s.indexOf('/');
  if (slash >= 0 && s.slice(0, slash).replace(/\D+/g, '').length >= 8) s = s.slice(0, slash);
  s = s.replace(EXTENSION_TAIL, '').trim();
  const plus = /^[\s([]*\+/.test(s);
  const d = s.replace(/\D+/g, '');
  if (!d) return undefined;

  const national = (n: string): string | undefined => {
    const rest = n.replace(/^0+/, '');
    return rest ? '+98' + rest : undefined;
  };
  if (plus && d.startsWith('0') && !d.startsWith('00')) return national(d); // "+0912…": a stray plus
  if (plus || d.startsWith('00')) {
    const intl = plus ? d.replace(/^00/, '') : d.slice(2);
    if (!intl.replace(/^0+/, '')) return undefined;
    if (intl.startsWith('98')) return national(intl.slice(2));
    return '+' + intl;
  }
  if (d.startsWith('98') && d.length >= 12) return national(d.slice(2)); // 98 912 …, 98 21 …
  if (d.startsWith('0')) return national(d);
  if (d.length === 10) return '+98' + d; // 912 123 4567, 21 8877 6655
  return d;
}

/** True when the canonical key is an Iranian mobile number (+989…, 10 national digits). */
export function isIranianMobile(key: string | undefined): boolean {
  return !!key && /^\+989\d{9}$/.test(key);
}

/** The local written form `09121234567` of a canonical Iranian key; other keys unchanged. */
export function phoneLocal(key: string): string {
  return key.startsWith('+98') ? '0' + key.slice(3) : key;
}

/**
 * Key of an Iranian national id (کد ملی) or legal id (شناسه ملی): digits to ASCII, separators
 * (spaces, `-`, `.`, `/`, `_`) removed, left-padded with zeros to 10 digits when 8 or 9 digits were
 * given (leading zeros are often lost in spreadsheets). Undefined when nothing usable is left or
 * when the text holds anything else (letters: a passport number is not a national id).
 */
export function nationalIdKey(raw: string | null | undefined): string | undefined {
  if (raw == null) return undefined;
  const t = toAsciiDigits(String(raw).normalize('NFKC')).replace(INVISIBLES, '').trim();
  if (!/^[\d\s\-./_]*$/.test(t)) return undefined;
  const d = t.replace(/\D+/g, '');
  if (!d) return undefined;
  if (d.length >= 8 && d.length < 10) return d.padStart(10, '0');
  return d;
}

/**
 * Whether a national id (کد ملی, 10 digits; 8–9 digits are zero-padded) passes the check digit.
 * Ids made of one repeated digit and ids whose six middle digits are all zero are rejected; the
 * 3-digit city prefix is deliberately not checked. A warning for callers, never a block.
 */
export function nationalIdValid(raw: string | null | undefined): boolean {
  const k = nationalIdKey(raw);
  if (!k || k.length !== 10) return false;
  if (/^(\d)\1{9}$/.test(k) || /^\d{3}0{6}\d$/.test(k)) return false;
  let sum = 0;
  for (let i = 0; i < 9; i++) sum += Number(k[i]) * (10 - i);
  const r = sum % 11;
  const check = r < 2 ? r : 11 - r;
  return Number(k[9]) === check;
}

/**
 * Whether an organization's legal id (شناسه ملی اشخاص حقوقی, 11 digits) passes its check digit.
 * A warning for callers, never a block.
 */
export function legalIdValid(raw: string | null | undefined): boolean {
  const k = nationalIdKey(raw);
  if (!k || k.length !== 11) return false;
  if (/^0+$/.test(k) || /^\d{3}0{6}\d{2}$/.test(k)) return false;
  const coef = [29, 27, 23, 19, 17];
  const dec = Number(k[9]) + 2;
  let sum = 0;
  for (let i = 0; i < 10; i++) sum += (dec + Number(k[i])) * coef[i % 5];
  let r = sum % 11;
  if (r === 10) r = 0;
  return Number(k[10]) === r;
}
