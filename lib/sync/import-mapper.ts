/**
 * Siagh contact (GetAll record) → body of CRM person/create or organization/create, for the
 * initial import (docs/crm-api.md#person-and-organization). Pure, no I/O.
 *
 * Decisions:
 * - kind from `TowardType` (false person, true organization, docs/siagh-api.md#person-or-organization). A missing `TowardType` is
 *   imported as a person WITH a warning, never silently.
 * - Persons: firstName = first word, lastName = the rest (words split at blanks only, so a ZWNJ
 *   inside `محمد‌علی` keeps it one word). Leading courtesy titles (آقای، خانم، دکتر، مهندس، Mr, Dr …)
 *   are skipped for the split when at least two words remain; nickName keeps the full name.
 * - Gender (persons only): Siagh `0` / `1` (female / male, as documented on the write side) become
 *   the CRM values `genderLabels.female` / `.male` (default `Female` / `Male`: the values the CRM
 *   accepts are unverified, so they are a setting; `genderLabels: null` copies no gender). Any other
 *   Siagh value is not copied (the old service copied it verbatim: docs/known-faults.md#address-names), with a warning.
 * - Description: Siagh's `Description` when it has one, else the note `Imported from Siagh (Code: N)`.
 * - City: Siagh `CityCode` becomes the CRM address's `city`, as Siagh holds it (the contact mapper
 *   sends the CRM city back to `codeshahr`, so the pair is stable).
 * - refId is not set: Siagh does not return tmpid, the old service set it from an absent value
 *   (docs/known-faults.md#tmpid-write-only).
 * - Phones: MobileNo, MobileNo2 as mobile, TelNo, TelNo2 as office, empty and repeated numbers
 *   skipped, the first one is the default; digits are written as ASCII (the layout is kept).
 *   The phone-type labels are configurable (docs/open-questions.md#phone-types: whether the CRM wants Persian labels or English
 *   keys is unknown).
 */
import { SyncError } from '../errors';
import type { CrmIdentityWrite, CrmPhone, IdentityKind, SiaghContact } from '../types';
import { legalIdValid, nationalIdKey, nationalIdValid, phoneKey, textKey, toAsciiDigits } from '../text/normalize';
import { type CustomerNumberScheme, buildCustomerNumber } from './customer-number';

export interface ImportMapOptions {
  scheme?: CustomerNumberScheme;
  /** Categories of every imported identity; default [{key: 'syaghcontact'}] (the operator's rule). */
  categories?: Array<{ key: string }>;
  /** docs/open-questions.md#phone-types: default {mobile: 'موبایل', office: 'محل کار'}. */
  phoneTypeLabels?: { mobile: string; office: string };
  /** Description of the CRM record; default Siagh's Description, else `Imported from Siagh (Code: N)`. */
  description?: (c: SiaghContact) => string;
  /** CRM gender values for Siagh 0 / 1; default DEFAULT_GENDER_LABELS; null = no gender copied. */
  genderLabels?: { female: string; male: string } | null;
}

export interface ImportMapped {
  kind: IdentityKind;
  body: CrmIdentityWrite;
  warnings: string[];
}

export const DEFAULT_IMPORT_CATEGORIES: ReadonlyArray<Readonly<{ key: string }>> = Object.freeze([Object.freeze({ key: 'syaghcontact' })]);
export const DEFAULT_GENDER_LABELS: Readonly<{ female: string; male: string }> = Object.freeze({ female: 'Female', male: 'Male' });
export const DEFAULT_PHONE_TYPE_LABELS: Readonly<{ mobile: string; office: string }> = Object.freeze({ mobile: 'موبایل', office: 'محل کار' });

const TITLES = new Set(['آقای', 'آقا', 'خانم', 'سرکار', 'جناب', 'دکتر', 'مهندس', 'استاد', 'حاج', 'حاجی', 'mr', 'mr.', 'mrs', 'mrs.', 'ms', 'ms.', 'dr', 'dr.', 'eng', 'eng.']);

function text(v: unknown): string {
  if (v == null) return '';
  if (typeof v === 'string') return v.trim();
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  return '';
}

/** First word / rest of a person's name (blanks split; ZWNJ kept inside words). */
export function splitPersonName(name: string): { firstName: string; lastName: string } {
  let words = name.trim().split(/[\s\u00a0]+/).filter(Boolean);
  let i = 0;
  while (i < words.length - 2 && TITLES.has(textKey(words[i]))) i++;
  words = words.slice(i);
  return { firstName: words[0] ?? '', lastName: words.slice(1).join(' ') };
}

export function mapContactToCrm(c: SiaghContact, opts: ImportMapOptions = {}): ImportMapped {
  if (!c || typeof c !== 'object' || typeof c.Code !== 'number' || !Number.isSafeInteger(c.Code) || c.Code < 1) {
    throw new SyncError('BAD_INPUT', `A Siagh contact without a usable Code (${JSON.stringify(c?.Code)}) cannot be imported: the Code is what links it to the CRM.`);
  }
  const labels = opts.phoneTypeLabels ?? DEFAULT_PHONE_TYPE_LABELS;
  if (!labels || typeof labels.mobile !== 'string' || typeof labels.office !== 'string' || !labels.mobile.trim() || !labels.office.trim()) {
    throw new SyncError('CONFIG', 'The phone-type labels for the import must name both a mobile and an office label (e.g. {"mobile": "موبایل", "office": "محل کار"}).');
  }
  const genders = opts.genderLabels === undefined ? DEFAULT_GENDER_LABELS : opts.genderLabels;
  if (genders !== null && (!genders || typeof genders.female !== 'string' || typeof genders.male !== 'string' || !genders.female.trim() || !genders.male.trim())) {
    throw new SyncError('CONFIG', 'The gender values for the import must name both a female and a male CRM value (e.g. {"female": "Female", "male": "Male"}), or be left out to copy no gender.');
  }
  const categories = opts.categories ?? DEFAULT_IMPORT_CATEGORIES;
  if (!Array.isArray(categories) || categories.some((x) => !x || typeof x.key !== 'string' || !x.key.trim())) {
    throw new SyncError('CONFIG', 'The import categories must be a list of {"key": "<category key>"} (default [{"key": "syaghcontact"}]).');
  }

  const warnings: string[] = [];
  const code = c.Code;

  let kind: IdentityKind;
  if (c.TowardType === true) kind = 'organization';
  else if (c.TowardType === false) kind = 'person';
  else {
    kind = 'person';
    warnings.push(`Siagh contact ${code} does not say whether it is a person or an organization (TowardType is empty); it is imported as a person. Correct it in the CRM if needed.`);
  }

  const name = text(c.Name).replace(/\s+/g, ' ');
  let nickName = name;
  if (!nickName) {
    nickName = 'مخاطب ' + code;
    warnings.push(`Siagh contact ${code} has no name; it is imported as "${nickName}".`);
  }

  const body: CrmIdentityWrite = {
    crmObjectTypeCode: kind,
    nickName,
    customerNumber: buildCustomerNumber(code, opts.scheme),
  };
  if (kind === 'person' && name) {
    const { firstName, lastName } = splitPersonName(name);
    if (firstName) body.firstName = firstName;
    if (lastName) body.lastName = lastName;
  }

  const nationalRaw = text(c.NationalCode);
  if (nationalRaw) {
    const key = nationalIdKey(nationalRaw);
    body.nationalCode = key ?? toAsciiDigits(nationalRaw);
    if (!key) warnings.push(`Siagh contact ${code}: the national code "${nationalRaw}" is not a number; it is copied as written.`);
    else if (key.length === 11 && kind === 'organization') {
      if (!legalIdValid(key)) warnings.push(`Siagh contact ${code}: the legal id ${key} fails the check digit; it is copied as given.`);
    } else if (key.length !== 10) warnings.push(`Siagh contact ${code}: the national code ${key} has ${key.length} digits; it is copied as given.`);
    else if (!nationalIdValid(key)) warnings.push(`Siagh contact ${code}: the national code ${key} fails the check digit; it is copied as given.`);
  }

  const email = text(c.Email);
  if (email) body.email = email;
  const website = text(c.WebSiteAddress);
  if (website) body.website = website;

  const phones: CrmPhone[] = [];
  const seen = new Set<string>();
  const add = (raw: unknown, phoneType: string): void => {
    const number = text(raw);
    const key = phoneKey(number);
    if (!number || !key || seen.has(key)) return;
    seen.add(key);
    phones.push({ ...(phones.length === 0 ? { default: true } : {}), phoneType, phoneNumber: toAsciiDigits(number) });
  };
  add(c.MobileNo, labels.mobile);
  add(c.MobileNo2, labels.mobile);
  add(c.TelNo, labels.office);
  add(c.TelNo2, labels.office);
  if (phones.length) body.phoneContacts = phones;

  const address = text(c.Address);
  const zip = text(c.PostalCode);
  const city = text(c.CityCode);
  if (address || zip || city) {
    body.addressContacts = [{ default: true, ...(city ? { city } : {}), ...(address ? { address } : {}), ...(zip ? { zipCode: toAsciiDigits(zip) } : {}) }];
  }

  if (kind === 'person' && genders) {
    const g = toAsciiDigits(text(c.Gender as unknown));
    if (g === '0') body.gender = genders.female.trim();
    else if (g === '1') body.gender = genders.male.trim();
    else if (g) warnings.push(`Siagh contact ${code}: the gender "${g}" is neither 0 (female) nor 1 (male); no gender is copied.`);
  }

  const description = opts.description ? opts.description(c) : text(c.Description) || `Imported from Siagh (Code: ${code})`;
  if (typeof description === 'string' && description.trim()) body.description = description.trim();

  body.categories = categories.map((x) => ({ key: x.key.trim() }));

  return { kind, body, warnings };
}
