/**
 * Write-side (form 2BFDA, `gn_web_users.<column>`) ↔ read-side (GetAll, PascalCase) names of a
 * Siagh contact (docs/siagh-api.md#contacts-getall, inference by name similarity). Used by the contact index to keep
 * itself current after our own writes, and by the simulator to store what a form writes.
 *
 * Columns with no read-side field (`codeostan`, `tmpid`, `password`, …) are write-only: GetAll
 * never returns them (docs/known-faults.md#tmpid-write-only).
 */
import type { SiaghContact, SiaghFieldList } from '../types';

export const CONTACT_TABLE = 'gn_web_users';

type Conv = 'text' | 'flag';

/** Lower-case column → [read-side field, conversion]. */
export const CONTACT_COLUMNS: Readonly<Record<string, readonly [keyof SiaghContact & string, Conv]>> = {
  fullname: ['Name', 'text'],
  nickname: ['NickName', 'text'],
  passno: ['NationalCode', 'text'],
  mobileno: ['MobileNo', 'text'],
  mobileno2: ['MobileNo2', 'text'],
  telno: ['TelNo', 'text'],
  telno2: ['TelNo2', 'text'],
  email: ['Email', 'text'],
  email2: ['Email2', 'text'],
  address: ['Address', 'text'],
  pocode: ['PostalCode', 'text'],
  codeshahr: ['CityCode', 'text'],
  countrycode: ['CountryCode', 'text'],
  gender: ['Gender', 'text'],
  tozihat: ['Description', 'text'],
  websiteaddress: ['WebSiteAddress', 'text'],
  isactive: ['IsActive', 'flag'],
  taraftype: ['TowardType', 'flag'],
  fathername: ['FatherName', 'text'],
  prename: ['PreName', 'text'],
  orgfield: ['OrgField', 'text'],
};

/** The column of a form key: `gn_web_users.MobileNo` → `mobileno`; keys of other tables → undefined. */
export function contactColumn(key: string): string | undefined {
  const k = key.toLowerCase();
  if (k.startsWith(CONTACT_TABLE + '.')) return k.slice(CONTACT_TABLE.length + 1);
  if (k === 'tmpid') return 'tmpid'; // the bare spelling of the operator's sample (docs/open-questions.md#tmpid-key)
  return undefined;
}

/** `'1'` → true, `'0'` → false, `''` → null; other text: true unless it reads as zero/false. */
export function flagValue(v: string): boolean | null {
  const t = v.trim();
  if (t === '') return null;
  if (t === '0' || /^false$/i.test(t)) return false;
  return true;
}

/**
 * Apply form fields to a read-side record (in place) and return the write-only columns that have
 * no read-side field (`tmpid`, `codeostan`, …), lower-case column → value.
 */
export function applyContactFields(target: Partial<SiaghContact>, fields: ReadonlyArray<readonly [string, string]>): Record<string, string> {
  const writeOnly: Record<string, string> = {};
  const rec = target as Record<string, unknown>;
  for (const [key, value] of fields) {
    const col = contactColumn(key);
    if (col === undefined) continue;
    const map = CONTACT_COLUMNS[col];
    if (!map) {
      writeOnly[col] = value;
      continue;
    }
    const [field, conv] = map;
    rec[field] = conv === 'flag' ? flagValue(value) : value === '' ? null : value;
  }
  return writeOnly;
}

/** The value of the first field whose column is `column` (e.g. 'mobileno'). */
export function fieldValue(fields: SiaghFieldList, column: string): string | undefined {
  for (const [k, v] of fields) if (contactColumn(k) === column) return v;
  return undefined;
}
