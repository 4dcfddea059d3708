/**
 * The field settings siagh-upsert (CRM → Siagh) and siagh-import (Siagh → CRM) share: the
 * customer-number scheme, the phone-type labels the import writes and the phone-type words the
 * upsert reads (docs/open-questions.md#phone-types), the address names, the economic-code key, the gender values, the tmpid key and
 * the field overrides.
 *
 * Why one set: the import stores, with each mapping, the checksum of the Siagh fields the upsert
 * would compute for the CRM record it just created. The CRM then sends Insert/Update webhooks for
 * those records (echoes); they compare as `unchanged` and write nothing to Siagh only when both
 * nodes map with the same options. Both nodes carry these settings under the same property names
 * and build their options here, the same way (`fieldSettingsFromConfig`, then
 * `contactMapOptionsOf` / `importMapOptionsOf`).
 *
 * Pure, no Node-RED; zod checks the dialog values at this boundary.
 */
import { z } from 'zod';
import { SyncError } from '../errors';
import { type ContactMapOptions, DEFAULT_PHONE_TYPES } from './contact-mapper';
import { type CustomerNumberScheme, validateScheme } from './customer-number';
import { DEFAULT_GENDER_LABELS, DEFAULT_PHONE_TYPE_LABELS } from './import-mapper';

export interface FieldSettings {
  scheme: CustomerNumberScheme;
  /** Phone types the import writes for Siagh's mobiles / landlines (docs/open-questions.md#phone-types). */
  phoneLabels: { mobile: string; office: string };
  /** Phone-type words the upsert reads as mobile / office; undefined = the built-in list. */
  phoneTypes: { mobile?: string[]; office?: string[] };
  /** Send the CRM city / state / country to codeshahr / codeostan / countrycode (docs/open-questions.md#address-codes). */
  addressNames: boolean;
  /** Siagh key for the CRM economic code; '' = not sent. */
  economicCodeKey: string;
  /** CRM gender values for Siagh 0 / 1; null = the import copies no gender. */
  genderLabels: { female: string; male: string } | null;
  /** Siagh key of tmpid; undefined = `gn_web_users.tmpid`. */
  tmpidKey?: string;
  /** Contact field overrides (Siagh key → CRM source), see ContactMapOptions.overrides. */
  overrides?: Record<string, string>;
}

/**
 * The settings as the edit dialogs of siagh-upsert and siagh-import store them (same names in
 * both). Missing values take the defaults, so flows saved before a setting existed keep working.
 */
export interface FieldSettingsConfig {
  cnPrefix?: string;
  cnOffset?: string | number;
  /** Phone type the import writes for a Siagh mobile; default `موبایل`. */
  mobileLabel?: string;
  /** Phone type the import writes for a Siagh landline; default `محل کار`. */
  officeLabel?: string;
  /** Phone-type words read as mobile, comma separated; empty = the built-in list. */
  mobileTypes?: string;
  officeTypes?: string;
  /** Default true. */
  addressNames?: boolean | string;
  /** Default '' (not sent). */
  economicCodeKey?: string;
  /** `female, male` CRM values for Siagh 0 / 1; default `Female, Male`; '' = no gender copied. */
  genderValues?: string;
  tmpidKey?: string;
  /** JSON object: Siagh key → CRM source. */
  overrides?: string;
}

export const DEFAULT_FIELD_SETTINGS_CONFIG: Readonly<Required<FieldSettingsConfig>> = Object.freeze({
  cnPrefix: '100-',
  cnOffset: 1000,
  mobileLabel: DEFAULT_PHONE_TYPE_LABELS.mobile,
  officeLabel: DEFAULT_PHONE_TYPE_LABELS.office,
  mobileTypes: '',
  officeTypes: '',
  addressNames: true,
  economicCodeKey: '',
  genderValues: `${DEFAULT_GENDER_LABELS.female}, ${DEFAULT_GENDER_LABELS.male}`,
  tmpidKey: 'gn_web_users.tmpid',
  overrides: '',
});

const optText = z.string().optional();
const configSchema = z.object({
  cnPrefix: optText,
  cnOffset: z.union([z.string(), z.number()]).optional(),
  mobileLabel: optText,
  officeLabel: optText,
  mobileTypes: optText,
  officeTypes: optText,
  addressNames: z.union([z.boolean(), z.string()]).optional(),
  economicCodeKey: optText,
  genderValues: optText,
  tmpidKey: optText,
  overrides: optText,
});

const KEY_RE = /^[A-Za-z0-9_.#]+$/;

function words(text: string | undefined): string[] | undefined {
  const list = (text ?? '').split(/[,،\n]/).map((w) => w.trim()).filter(Boolean);
  return list.length ? list : undefined;
}

function jsonOverrides(text: string | undefined): Record<string, string> | undefined {
  if (!text || !text.trim()) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new SyncError('CONFIG', `Field overrides is not valid JSON (${(e as Error).message}). Write an object like {"gn_web_users.codeshahr": "address:city"}.`);
  }
  const parsed = z.record(z.string(), z.string()).safeParse(v);
  if (!parsed.success || !v || typeof v !== 'object' || Array.isArray(v)) {
    throw new SyncError('CONFIG', 'Field overrides must be a JSON object of texts, like {"gn_web_users.codeshahr": "address:city"}.');
  }
  return parsed.data;
}

/**
 * Parse and check the shared settings of a node's configuration (throws SyncError('CONFIG')). Other
 * properties of the object (a node's id, wires, …) are ignored.
 */
export function fieldSettingsFromConfig(raw: unknown): FieldSettings {
  const parsed = configSchema.safeParse(raw ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new SyncError('CONFIG', `The field setting ${issue?.path.join('.') || '(unknown)'} is not usable (${issue?.message ?? 'wrong type'}).`);
  }
  const c = parsed.data;
  const offset = Number(c.cnOffset === undefined || c.cnOffset === '' ? DEFAULT_FIELD_SETTINGS_CONFIG.cnOffset : c.cnOffset);
  if (!Number.isInteger(offset) || offset < 0) throw new SyncError('CONFIG', `The customer-number offset "${c.cnOffset}" must be a whole number ≥ 0.`);
  const scheme = validateScheme({ prefix: c.cnPrefix ?? DEFAULT_FIELD_SETTINGS_CONFIG.cnPrefix, offset });

  const mobile = c.mobileLabel?.trim() || DEFAULT_FIELD_SETTINGS_CONFIG.mobileLabel;
  const office = c.officeLabel?.trim() || DEFAULT_FIELD_SETTINGS_CONFIG.officeLabel;

  const economicCodeKey = (c.economicCodeKey ?? '').trim();
  if (economicCodeKey && !KEY_RE.test(economicCodeKey)) {
    throw new SyncError('CONFIG', `The Siagh field for the economic code "${economicCodeKey}" is not usable: use a name like gn_web_users.codeeghtesadi, or leave it empty.`);
  }

  let genderLabels: FieldSettings['genderLabels'];
  const gv = c.genderValues === undefined ? DEFAULT_FIELD_SETTINGS_CONFIG.genderValues : c.genderValues;
  const g = gv.split(/[,،]/).map((w) => w.trim());
  if (gv.trim() === '') genderLabels = null;
  else if (g.length === 2 && g[0] && g[1] && g[0] !== g[1]) genderLabels = { female: g[0], male: g[1] };
  else throw new SyncError('CONFIG', `The gender values "${gv}" are not usable: write the CRM values for female and male, comma separated (e.g. "Female, Male"), or leave it empty to copy no gender.`);

  const addressNames = c.addressNames === undefined || c.addressNames === '' ? true : c.addressNames === true || c.addressNames === 'true';

  return {
    scheme,
    phoneLabels: { mobile, office },
    phoneTypes: { mobile: words(c.mobileTypes), office: words(c.officeTypes) },
    addressNames,
    economicCodeKey,
    genderLabels,
    tmpidKey: c.tmpidKey?.trim() || undefined,
    overrides: jsonOverrides(c.overrides),
  };
}

/**
 * The contact-mapper options of these settings. The phone labels the import writes are always
 * read back as mobile / office, and its gender values as female / male, whatever word lists are
 * set: an imported record maps to the same Siagh fields it came from.
 */
export function contactMapOptionsOf(fs: FieldSettings): ContactMapOptions {
  const withLabel = (list: string[] | undefined, dflt: readonly string[], label: string): string[] => {
    const base = list ?? [...dflt];
    return base.includes(label) ? base : [...base, label];
  };
  return {
    scheme: fs.scheme,
    overrides: fs.overrides,
    phoneTypes: {
      mobile: withLabel(fs.phoneTypes.mobile, DEFAULT_PHONE_TYPES.mobile, fs.phoneLabels.mobile),
      office: withLabel(fs.phoneTypes.office, DEFAULT_PHONE_TYPES.office, fs.phoneLabels.office),
    },
    tmpidKey: fs.tmpidKey,
    addressNames: fs.addressNames,
    economicCodeKey: fs.economicCodeKey,
    ...(fs.genderLabels ? { genderWords: { female: [fs.genderLabels.female], male: [fs.genderLabels.male] } } : {}),
  };
}

/** The importer options of these settings (the contact-map options included, for the checksums). */
export function importMapOptionsOf(fs: FieldSettings): {
  scheme: CustomerNumberScheme;
  phoneTypeLabels: { mobile: string; office: string };
  genderLabels: { female: string; male: string } | null;
  contactMap: ContactMapOptions;
} {
  return { scheme: fs.scheme, phoneTypeLabels: fs.phoneLabels, genderLabels: fs.genderLabels, contactMap: contactMapOptionsOf(fs) };
}
