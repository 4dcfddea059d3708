/**
 * CRM identity (person / organization) → fields of Siagh's contact form 2BFDA (docs/siagh-api.md#form-2bfda-contact-create-and-update).
 *
 * The default mapping (`DEFAULT_CONTACT_FIELDS`) is the old service's table with its bugs fixed:
 * - Address names (docs/known-faults.md#address-names): city / state / country of the default address go to Siagh's `codeshahr`, `codeostan`,
 *   `countrycode` as the CRM writes them (names, as the old service sent them: whether Siagh wants
 *   codes there is unverified); `addressNames: false` stops sending them, an override maps them
 *   from elsewhere. `gender` is filled for persons whose CRM gender is male / female.
 * - The CRM `economicCode` has no known Siagh field: it is sent only under the key named by
 *   `economicCodeKey` (default: not sent).
 * - Phone types (docs/known-faults.md#phone-types): matched in Persian and English (`موبایل`, `همراه`, `mobile`, `cell`, …),
 *   and an untyped Iranian mobile number still counts as the mobile.
 * - Customer number (docs/known-faults.md#customer-number): `tmpid` is the exact inverse of the customer-number scheme, or not sent at all.
 * - Kind (docs/known-faults.md#identity-kind): person / organization comes from `identity.kind` (the endpoint that returned it), never
 *   from a display name.
 * - Updates (docs/known-faults.md#update-blanks): `fieldsForUpdate(fields, 'keep')` drops empty values so an update never blanks Siagh.
 *
 * Values are the CRM's text, trimmed; keys (phoneKey, nationalIdKey, textKey) are used only to
 * decide and to match. Escaping `|` and line breaks is the ctrlValues encoder's job
 * (lib/siagh/ctrl-values.ts), not this module's. Pure functions, no I/O.
 */
import { SyncError } from '../errors';
import type { CrmAddress, CrmIdentity, CrmPhone, SiaghFieldList } from '../types';
import { isIranianMobile, legalIdValid, nationalIdKey, nationalIdValid, phoneKey, phoneLocal, textKey, toAsciiDigits } from '../text/normalize';
import { checksumOf } from './checksum';
import { type CustomerNumberScheme, parseCustomerNumber, validateScheme } from './customer-number';

export interface ContactMapOptions {
  scheme?: CustomerNumberScheme;
  /**
   * Per-field overrides: Siagh key (e.g. `gn_web_users.codeshahr`) → source, or `''` to never send
   * that field. Sources:
   * - a path into the CRM identity: `email`, `addressContacts.0.city`, `phoneContacts.1.phoneNumber`;
   * - `phone:mobile`, `phone:office`, `phone:fax`: the phone this mapper picked for that role;
   * - `address:<field>`: a field of the default address (else the first): `address:city`;
   * - `fn:<name>`: a computed value: `fn:fullname`, `fn:gender`, `fn:nationalCode`, `fn:zipCode`,
   *   `fn:taraftype`, `fn:tmpid`;
   * - `=text`: the literal text after `=`.
   * A key already in the table keeps its place in the send order; new keys are appended in the
   * order given.
   */
  overrides?: Record<string, string>;
  /**
   * Phone-type words (case-insensitive, compared as textKey, substring) that mean mobile / office /
   * fax. A list given here replaces the default list of that role (`DEFAULT_PHONE_TYPES`; spread it
   * to extend). Fax is tested first, then mobile, then office: `موبایل کاری` is a mobile,
   * `Office fax` a fax.
   */
  phoneTypes?: { mobile?: string[]; office?: string[]; fax?: string[] };
  /** Key of the tmpid field, default `gn_web_users.tmpid` (the spelling Siagh stores is unknown: docs/open-questions.md#tmpid-key). */
  tmpidKey?: string;
  /**
   * Send the default address's city / state / country (as the CRM writes them, usually names) to
   * `codeshahr` / `codeostan` / `countrycode`. Default true (the old service did); false = never
   * sent (Siagh may want codes: docs/open-questions.md#address-codes). An override of one of these keys wins either way.
   */
  addressNames?: boolean;
  /**
   * Siagh key that receives the CRM `economicCode` (e.g. `gn_web_users.codeeghtesadi`); default ''
   * = not sent: the evidence shows no Siagh field for it.
   */
  economicCodeKey?: string;
  /**
   * More CRM gender words for female (0) / male (1), beyond the built-in ones (compared as
   * textKey): the values the initial import writes (its gender labels) belong here.
   */
  genderWords?: { female?: string[]; male?: string[] };
}

export interface MappedContact {
  /** Every mapped field in send order, empty values as ''. */
  fields: SiaghFieldList;
  /** checksumOf(fields): what is compared to decide 'unchanged'. */
  checksum: string;
  /**
   * Keys for finding an existing Siagh contact: `mobile` as sent in mobileno (compare with
   * phoneKey on both sides), `nationalCode` as nationalIdKey, `code` parsed from customerNumber.
   */
  match: { mobile?: string; nationalCode?: string; code?: number };
  /** Operator-readable notes; never a reason to stop. */
  warnings: string[];
  /** Keys sent when a contact is created but never on an update or link (and not compared). */
  createOnly: string[];
}

export interface ContactFieldRule {
  key: string;
  /** Source syntax of ContactMapOptions.overrides; '' = not sent. */
  source: string;
  note: string;
  /** Sent on create only, unless an override maps the field (then it is sent on every write). */
  createOnly?: boolean;
}

/**
 * The default mapping, in the send order of the captured requests (docs/siagh-api.md#form-2bfda-contact-create-and-update). `NickName` and `Param1`
 * control segments are added by the Siagh client, not here.
 */
export const DEFAULT_CONTACT_FIELDS: ReadonlyArray<Readonly<ContactFieldRule>> = Object.freeze([
  { key: 'gn_web_users.isactive', source: '=1', note: 'constant 1 (active) on create only, so an update never re-activates a contact deactivated in Siagh; an override sends it on every write', createOnly: true },
  { key: 'gn_web_users.gender', source: 'fn:gender', note: 'persons only: 1 male (male, m, مرد, آقا, مذکر), 0 female (female, f, زن, خانم, مونث); else empty' },
  { key: 'gn_web_users.websiteaddress', source: 'website', note: 'CRM website' },
  { key: 'gn_web_users.pocode', source: 'fn:zipCode', note: 'zip code of the default address (else the first), digits as ASCII' },
  { key: 'gn_web_users.codeostan', source: 'address:state', note: 'state (province) of the default address, as the CRM writes it (a name; whether Siagh wants a code is unverified); not sent with addressNames false' },
  { key: 'gn_web_users.address', source: 'address:address', note: 'address text of the default address (else the first)' },
  { key: 'gn_web_users.codeshahr', source: 'address:city', note: 'city of the default address, as the CRM writes it (a name; whether Siagh wants a code is unverified); not sent with addressNames false' },
  { key: 'gn_web_users.countrycode', source: 'address:country', note: 'country of the default address, as the CRM writes it (a name; whether Siagh wants a code is unverified); not sent with addressNames false' },
  { key: 'gn_web_users.email', source: 'email', note: 'CRM email' },
  { key: 'gn_web_users.fullname', source: 'fn:fullname', note: 'CRM nickName, else firstName + " " + lastName' },
  { key: 'gn_web_users.mobileno', source: 'phone:mobile', note: 'first mobile-typed phone (Persian or English type), else an untyped Iranian mobile number; written 09xxxxxxxxx' },
  { key: 'gn_web_users.telno', source: 'phone:office', note: 'first office/work phone, else the first phone that is neither a mobile nor a fax, else a fax' },
  { key: 'gn_web_users.passno', source: 'fn:nationalCode', note: 'CRM nationalCode, ASCII digits, separators removed, 8–9 digits zero-padded to 10' },
  { key: 'gn_web_users.tmpid', source: 'fn:tmpid', note: 'Siagh Code parsed from CRM customerNumber (exact inverse of the scheme); not sent when it does not parse. Key set by tmpidKey' },
  { key: 'gn_web_users.tozihat', source: 'description', note: 'CRM description; the initial import\'s note "Imported from Siagh (Code: N)" counts as empty' },
  { key: 'gn_web_users.taraftype', source: 'fn:taraftype', note: '0 person, 1 organization, from the endpoint that returned the identity' },
].map((r) => Object.freeze(r)));

/** Default phone-type words (compared as textKey substrings). */
export const DEFAULT_PHONE_TYPES: Readonly<{ mobile: readonly string[]; office: readonly string[]; fax: readonly string[] }> = Object.freeze({
  mobile: Object.freeze(['موبایل', 'همراه', 'سیار', 'گوشی', 'mobile', 'cell', 'handy']),
  office: Object.freeze(['دفتر', 'محل کار', 'کار', 'شرکت', 'اداره', 'تلفن ثابت', 'ثابت', 'office', 'work', 'business', 'company', 'landline']),
  fax: Object.freeze(['فکس', 'نمابر', 'fax']),
});

const KEY_RE = /^[A-Za-z0-9_.#]+$/;
/** The address-name keys `addressNames: false` stops sending. */
const ADDRESS_NAME_KEYS = new Set(['gn_web_users.codeostan', 'gn_web_users.codeshahr', 'gn_web_users.countrycode']);
/** The CRM description the initial import writes: `Imported from Siagh (Code: 8407)`. */
const IMPORT_NOTE = /^Imported from Siagh \(Code: *\d+\)$/i;
const FN_NAMES = new Set(['fullname', 'gender', 'nationalCode', 'zipCode', 'taraftype', 'tmpid']);
const PHONE_ROLES = new Set(['mobile', 'office', 'fax']);

type PhoneRole = 'mobile' | 'office' | 'fax' | 'other';

interface PickedPhone {
  phone: CrmPhone;
  role: PhoneRole;
  key: string | undefined;
  text: string;
}

const MALE = new Set(['male', 'm', 'man', 'mr', 'مرد', 'آقا', 'مذکر']);
const FEMALE = new Set(['female', 'f', 'woman', 'mrs', 'ms', 'زن', 'خانم', 'مونث', 'مؤنث']);

function text(v: unknown): string {
  if (v == null) return '';
  if (typeof v === 'string') return v.trim();
  if (typeof v === 'number') return Number.isFinite(v) ? String(v) : '';
  if (typeof v === 'boolean') return v ? '1' : '0';
  return '';
}

/** Default entries first, otherwise in the CRM's order (stable). */
function defaultFirst<T extends { default?: boolean | null }>(list: T[] | null | undefined): T[] {
  const arr = Array.isArray(list) ? list.filter((x) => x && typeof x === 'object') : [];
  return [...arr.filter((x) => x.default === true), ...arr.filter((x) => x.default !== true)];
}

function checkSource(key: string, source: unknown): void {
  if (typeof source !== 'string') {
    throw new SyncError('CONFIG', `The contact field mapping for ${key} must be text (a CRM field path, "phone:mobile", "=literal" or "" to not send it).`);
  }
  if (source === '' || source.startsWith('=')) return;
  const [head, rest] = source.includes(':') ? [source.slice(0, source.indexOf(':')), source.slice(source.indexOf(':') + 1)] : ['', source];
  const bad = (why: string): never => {
    throw new SyncError('CONFIG', `The contact field mapping ${key} ← ${JSON.stringify(source)} is not usable: ${why}. Fix the field overrides in the node configuration.`);
  };
  if (head === 'phone') {
    if (!PHONE_ROLES.has(rest)) bad('use phone:mobile, phone:office or phone:fax');
  } else if (head === 'fn') {
    if (!FN_NAMES.has(rest)) bad(`computed values are ${[...FN_NAMES].map((n) => 'fn:' + n).join(', ')}`);
  } else if (head === 'address') {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(rest)) bad('write address:<field>, e.g. address:city');
  } else if (head !== '') {
    bad(`unknown prefix "${head}:"`);
  } else if (!/^[A-Za-z_$][\w$]*(\.[\w$]+)*$/.test(rest)) {
    bad('a CRM field path looks like email or addressContacts.0.city');
  }
}

function getPath(obj: unknown, path: string): unknown {
  let cur: unknown = obj;
  for (const seg of path.split('.')) {
    if (cur == null || typeof cur !== 'object') return undefined;
    if (Array.isArray(cur)) {
      if (!/^\d+$/.test(seg)) return undefined;
      cur = cur[Number(seg)];
    } else {
      if (!Object.prototype.hasOwnProperty.call(cur, seg)) return undefined;
      cur = (cur as Record<string, unknown>)[seg];
    }
  }
  return cur;
}

function buildRules(opts: ContactMapOptions): Array<{ key: string; source: string; createOnly?: boolean }> {
  const tmpidKey = opts.tmpidKey ?? 'gn_web_users.tmpid';
  if (typeof tmpidKey !== 'string' || !KEY_RE.test(tmpidKey)) {
    throw new SyncError('CONFIG', `The tmpid field name ${JSON.stringify(tmpidKey)} is not usable: Siagh field names contain only Latin letters, digits, '_', '.' and '#'.`);
  }
  if (opts.addressNames !== undefined && typeof opts.addressNames !== 'boolean') {
    throw new SyncError('CONFIG', `The address-names setting ${JSON.stringify(opts.addressNames)} must be true (send city / state / country) or false.`);
  }
  const sendAddress = opts.addressNames !== false;
  const rules: Array<{ key: string; source: string; createOnly?: boolean }> = DEFAULT_CONTACT_FIELDS.map((r) => ({
    key: r.key === 'gn_web_users.tmpid' ? tmpidKey : r.key,
    source: !sendAddress && ADDRESS_NAME_KEYS.has(r.key) ? '' : r.source,
    createOnly: r.createOnly,
  }));
  const economicKey = opts.economicCodeKey ?? '';
  if (typeof economicKey !== 'string' || (economicKey.trim() !== '' && !KEY_RE.test(economicKey.trim()))) {
    throw new SyncError('CONFIG', `The Siagh field name for the economic code ${JSON.stringify(economicKey)} is not usable: use a name like gn_web_users.codeeghtesadi (Latin letters, digits, '_', '.', '#'), or leave it empty to not send it.`);
  }
  if (economicKey.trim()) {
    const k = economicKey.trim();
    const existing = rules.find((r) => r.key === k);
    if (existing) {
      existing.source = 'economicCode';
      existing.createOnly = false;
    } else rules.push({ key: k, source: 'economicCode' });
  }
  const overrides = opts.overrides ?? {};
  if (typeof overrides !== 'object' || Array.isArray(overrides)) {
    throw new SyncError('CONFIG', 'The contact field overrides must be an object: Siagh field name → CRM source.');
  }
  for (const [key, source] of Object.entries(overrides)) {
    if (!KEY_RE.test(key)) {
      throw new SyncError('CONFIG', `The Siagh field name ${JSON.stringify(key)} in the contact field overrides is not usable: use names like gn_web_users.codeshahr (Latin letters, digits, '_', '.', '#').`);
    }
    checkSource(key, source);
    const existing = rules.find((r) => r.key === key);
    if (existing) {
      existing.source = source;
      existing.createOnly = false;
    } else rules.push({ key, source });
  }
  for (const r of rules) if (r.source) checkSource(r.key, r.source);
  return rules;
}

function phoneWords(opts: ContactMapOptions): Record<'mobile' | 'office' | 'fax', string[]> {
  const pick = (role: 'mobile' | 'office' | 'fax'): string[] => {
    const given = opts.phoneTypes?.[role];
    const list = given ?? DEFAULT_PHONE_TYPES[role];
    if (!Array.isArray(list) || list.some((w) => typeof w !== 'string')) {
      throw new SyncError('CONFIG', `The ${role} phone-type words must be a list of texts.`);
    }
    return list.map((w) => textKey(w)).filter((w) => w !== '');
  };
  return { mobile: pick('mobile'), office: pick('office'), fax: pick('fax') };
}

/** The role a CRM phone type names: fax, mobile, office or other (tested in that order). */
export function phoneRole(phoneType: string | null | undefined, words?: ContactMapOptions['phoneTypes']): PhoneRole {
  return roleOf(phoneType, phoneWords({ phoneTypes: words }));
}

function roleOf(phoneType: string | null | undefined, words: Record<'mobile' | 'office' | 'fax', string[]>): PhoneRole {
  const t = textKey(phoneType);
  if (!t) return 'other';
  for (const role of ['fax', 'mobile', 'office'] as const) {
    if (words[role].some((w) => t.includes(w))) return role;
  }
  return 'other';
}

/**
 * The Siagh contact fields of a CRM identity. Throws SyncError('CONFIG') for unusable options and
 * SyncError('BAD_INPUT') when the identity's kind is neither person nor organization; everything
 * else doubtful becomes a warning.
 */
export function mapIdentityToContact(identity: CrmIdentity, opts: ContactMapOptions = {}): MappedContact {
  const scheme = validateScheme(opts.scheme);
  const rules = buildRules(opts);
  const words = phoneWords(opts);
  const warnings: string[] = [];
  const who = describe(identity);

  if (identity.kind !== 'person' && identity.kind !== 'organization') {
    throw new SyncError('BAD_INPUT', `The CRM identity ${who} has no usable kind (${JSON.stringify(identity.kind)}): it must be read from person/get or organization/get.`);
  }
  const isPerson = identity.kind === 'person';

  // ---- phones
  const phones: PickedPhone[] = defaultFirst(identity.phoneContacts)
    .map((p) => ({ phone: p, role: roleOf(p.phoneType, words), key: phoneKey(p.phoneNumber), text: text(p.phoneNumber) }))
    .filter((p) => p.text !== '' && p.key !== undefined);
  const mobile =
    phones.find((p) => p.role === 'mobile') ??
    phones.find((p) => p.role === 'other' && isIranianMobile(p.key)) ??
    phones.find((p) => p.role === 'office' && isIranianMobile(p.key));
  const office =
    phones.find((p) => p !== mobile && p.role === 'office') ??
    phones.find((p) => p !== mobile && p.role === 'other' && !isIranianMobile(p.key)) ??
    phones.find((p) => p !== mobile && p.role === 'fax');
  const fax = phones.find((p) => p.role === 'fax');
  const mobileValue = mobile?.key ? phoneLocal(mobile.key) : '';
  if (mobile && !isIranianMobile(mobile.key)) {
    const k = mobile.key ?? '';
    if (k.startsWith('+98')) {
      warnings.push(`The phone "${mobile.text}" of ${who} is used as the mobile but is not an Iranian mobile number (09…); it is sent as ${mobileValue}.`);
    } else if (!k.startsWith('+')) {
      warnings.push(`The phone "${mobile.text}" of ${who} is used as the mobile but has no area or country code; it is sent as ${mobileValue}.`);
    }
  }
  if (!mobile) {
    warnings.push(`No mobile number found for ${who}${phones.length ? ` (phone types: ${phones.map((p) => JSON.stringify(text(p.phone.phoneType))).join(', ')})` : ''}; the Siagh contact gets no mobile and cannot be matched by mobile.`);
  }

  // ---- address
  const address: CrmAddress | undefined = defaultFirst(identity.addressContacts)[0];

  // ---- national id
  const nationalRaw = text(identity.nationalCode);
  const nationalKey = nationalIdKey(nationalRaw);
  let nationalValue = '';
  if (nationalRaw) {
    if (nationalKey) {
      nationalValue = nationalKey;
      const len = nationalKey.length;
      if (len === 10) {
        if (!nationalIdValid(nationalKey)) warnings.push(`The national code ${nationalKey} of ${who} fails the check digit; it is sent as given. Check it in the CRM.`);
      } else if (len === 11 && !isPerson) {
        if (!legalIdValid(nationalKey)) warnings.push(`The national (legal) id ${nationalKey} of ${who} fails the check digit; it is sent as given. Check it in the CRM.`);
      } else {
        warnings.push(`The national code ${nationalKey} of ${who} has ${len} digits (expected ${isPerson ? '10' : '10 or 11'}); it is sent as given. Check it in the CRM.`);
      }
    } else {
      nationalValue = toAsciiDigits(nationalRaw);
      warnings.push(`The national code "${nationalRaw}" of ${who} is not a number; it is sent as written and not used for matching.`);
    }
  }

  // ---- customer number → tmpid / match.code
  const cnRaw = text(identity.customerNumber);
  const code = parseCustomerNumber(cnRaw || undefined, scheme);
  if (cnRaw && code === undefined) {
    warnings.push(`The CRM customer number "${cnRaw}" of ${who} is not in the scheme "${scheme.prefix}<Code + ${scheme.offset}>"; no tmpid is sent and it is not used for matching.`);
  }

  // ---- name
  const fullname = text(identity.nickName) || [text(identity.firstName), text(identity.lastName)].filter(Boolean).join(' ');
  if (!fullname) warnings.push(`The CRM identity ${who} has no name (nickName, firstName, lastName are empty); Siagh may refuse a contact without a name.`);

  // ---- gender
  let gender = '';
  const genderRaw = text(identity.gender);
  if (isPerson && genderRaw) {
    const g = textKey(genderRaw).replace(/\.$/, '');
    const extra = (list: string[] | undefined) => (Array.isArray(list) ? list.filter((w) => typeof w === 'string').map((w) => textKey(w)) : []);
    if (MALE.has(g) || extra(opts.genderWords?.male).includes(g)) gender = '1';
    else if (FEMALE.has(g) || extra(opts.genderWords?.female).includes(g)) gender = '0';
    else warnings.push(`The gender "${genderRaw}" of ${who} is not recognised as male or female; gender is left empty.`);
  }

  const computed: Record<string, string | undefined> = {
    fullname,
    gender,
    nationalCode: nationalValue,
    zipCode: toAsciiDigits(text(address?.zipCode)),
    taraftype: isPerson ? '0' : '1',
    tmpid: code === undefined ? undefined : String(code),
  };

  const fields: SiaghFieldList = [];
  for (const { key, source } of rules) {
    if (source === '') continue;
    let value: string | undefined;
    if (source.startsWith('=')) value = source.slice(1);
    else if (source.startsWith('phone:')) {
      const role = source.slice(6);
      value = role === 'mobile' ? mobileValue : role === 'office' ? office?.text ?? '' : fax?.text ?? '';
    } else if (source.startsWith('address:')) value = text(address ? (address as Record<string, unknown>)[source.slice(8)] : undefined);
    else if (source.startsWith('fn:')) value = computed[source.slice(3)];
    else {
      const raw = getPath(identity, source);
      if (raw != null && typeof raw === 'object') {
        warnings.push(`The CRM source "${source}" for ${key} is a list or object, not a value; ${key} is sent empty.`);
      }
      value = text(raw);
      // The note the initial import (ours and the old service's) leaves in the CRM description is
      // not content: sending it would replace the Siagh contact's own description (tozihat).
      if (source === 'description' && IMPORT_NOTE.test(value)) value = '';
    }
    if (value === undefined) continue; // not sent at all (tmpid that does not parse)
    fields.push([key, value]);
  }

  const match: MappedContact['match'] = {};
  if (mobileValue) match.mobile = mobileValue;
  if (nationalKey) match.nationalCode = nationalKey;
  if (code !== undefined) match.code = code;

  const createOnly = rules.filter((r) => r.createOnly && r.source).map((r) => r.key);
  return { fields, checksum: checksumOf(fields), match, warnings, createOnly };
}

/**
 * The fields to send on an update. `keep` (default): empty values are dropped, so an update never
 * blanks data that exists only in Siagh (docs/known-faults.md#update-blanks). `clear`: every field is sent, empty ones as ''.
 */
export function fieldsForUpdate(fields: SiaghFieldList, emptyPolicy: 'keep' | 'clear' = 'keep'): SiaghFieldList {
  if (emptyPolicy === 'clear') return fields.map(([k, v]) => [k, v] as [string, string]);
  if (emptyPolicy !== 'keep') {
    throw new SyncError('CONFIG', `The empty-field policy ${JSON.stringify(emptyPolicy)} is unknown: use "keep" (never blank Siagh fields) or "clear".`);
  }
  return fields.filter(([, v]) => String(v ?? '').trim() !== '').map(([k, v]) => [k, v] as [string, string]);
}

function describe(identity: CrmIdentity): string {
  const name = text(identity.nickName) || [text(identity.firstName), text(identity.lastName)].filter(Boolean).join(' ');
  const id = text(identity.crmId);
  return name ? `"${name}" (${id || 'no id'})` : id || '(no id)';
}
