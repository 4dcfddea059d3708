/**
 * CRM identity → Siagh contact, the decision and the write. CRM wins; nothing is written when
 * nothing changed; a contact Siagh already has is linked, never created twice.
 *
 * 1. Map the identity (contact-mapper) and checksum the mapped content.
 * 2. Mapped already: same checksum → `unchanged`. Otherwise compare with the Siagh record in the
 *    contact index; no readable field differs → `unchanged` (the new checksum is still returned so
 *    the mapping learns it); else update in place (`updated`) under the empty-value policy.
 * 3. Not mapped: look in the contact index (downloaded at most once per max age) for the Code
 *    the customer number encodes, then the same mobile, then the same national code. Found →
 *    `linked` (and updated only if a field differs). Not found → create (`created`). A contact
 *    that is linked to another CRM identity already is a MAPPING_CONFLICT, not a silent merge.
 *    If Siagh still refuses the create as a duplicate mobile (the index predates a contact
 *    entered in Siagh since), the index is downloaded again and the link step repeated once.
 * 4. An update never sends a mobile that the index shows on another Siagh contact: that is
 *    SIAGH_DUPLICATE before anything is sent, naming both contacts.
 */
import { SyncError } from '../errors';
import type { SiaghClient } from '../siagh/client';
import { CONTACT_COLUMNS, contactColumn, flagValue } from '../siagh/fields';
import { nationalIdKey, phoneKey, textKey } from '../text/normalize';
import type { CrmIdentity, SiaghContact, SiaghFieldList } from '../types';
import { ContactMapOptions, fieldsForUpdate, mapIdentityToContact, MappedContact } from './contact-mapper';

export type EmptyPolicy = 'keep' | 'clear';

export interface ContactSyncOptions {
  map?: ContactMapOptions;
  emptyPolicy?: EmptyPolicy;
  /** Which keys may link an unmapped identity to an existing Siagh contact. All on by default. */
  linkBy?: { code?: boolean; mobile?: boolean; nationalCode?: boolean };
  /** The CRM id a Siagh Code is already mapped to, if any (from the mapping store). */
  mappedCrmIdOf?: (code: number) => string | undefined;
}

export interface ExistingMapping {
  siaghCode: string;
  checksum?: string;
}

export interface ContactSyncResult {
  action: 'created' | 'updated' | 'linked' | 'unchanged';
  code: number;
  checksum: string;
  customerNumber?: string;
  linkedBy?: 'code' | 'mobile' | 'nationalCode';
  /** Columns written (empty when nothing was written). */
  written: string[];
  warnings: string[];
}

/** The mapped fields an update or link may send (create-only ones, like isactive, left out). */
function updatable(mapped: MappedContact): SiaghFieldList {
  return mapped.createOnly.length ? mapped.fields.filter(([k]) => !mapped.createOnly.includes(k)) : mapped.fields;
}

/** Columns whose mapped value differs from the Siagh record (write-only columns are ignored). */
export function differingColumns(fields: SiaghFieldList, rec: SiaghContact, emptyPolicy: EmptyPolicy): string[] {
  const out: string[] = [];
  for (const [key, value] of fields) {
    const col = contactColumn(key);
    if (!col) continue;
    const map = CONTACT_COLUMNS[col];
    if (!map) continue;
    if (value.trim() === '' && emptyPolicy === 'keep') continue;
    const [field, conv] = map;
    const current = rec[field];
    let same: boolean;
    if (conv === 'flag') same = flagValue(value) === (current == null ? null : Boolean(current));
    else if (col.startsWith('mobileno') || col.startsWith('telno')) same = (phoneKey(value) ?? '') === (phoneKey(current as string | null) ?? '');
    else if (col === 'passno') same = (nationalIdKey(value) ?? '') === (nationalIdKey(current as string | null) ?? '');
    else same = textKey(value) === textKey(current as string | null);
    if (!same) out.push(col);
  }
  return out;
}

/**
 * Siagh refuses a mobile number another contact holds (SIAGH_DUPLICATE). Find that out from the
 * contact index before writing, never from Siagh's error: the message says which two contacts.
 */
function assertMobileFree(siagh: SiaghClient, identity: CrmIdentity, code: number, fields: SiaghFieldList, why: string): void {
  for (const [key, value] of fields) {
    if (contactColumn(key) !== 'mobileno' || !value.trim()) continue;
    const k = phoneKey(value);
    const owner = siagh.contacts.allByMobile(value).find((c) => c.Code !== code && phoneKey(c.MobileNo) === k);
    if (owner) {
      throw new SyncError(
        'SIAGH_DUPLICATE',
        `The mobile number ${value} of CRM identity ${identity.crmId} is already on Siagh contact ${owner.Code}, so it cannot be written to Siagh contact ${code} (${why}); nothing was sent. Two Siagh contacts seem to be this one: merge them in Siagh, or correct the number in the CRM, then replay.`,
      );
    }
  }
}

export async function syncContact(siagh: SiaghClient, identity: CrmIdentity, mapping: ExistingMapping | null | undefined, opts: ContactSyncOptions = {}): Promise<ContactSyncResult> {
  const emptyPolicy = opts.emptyPolicy ?? 'keep';
  const mapped = mapIdentityToContact(identity, opts.map);
  const warnings = [...mapped.warnings];
  const customerNumber = identity.customerNumber || undefined;
  const base = { checksum: mapped.checksum, customerNumber, warnings };

  if (mapping) {
    const code = Number(mapping.siaghCode);
    if (!Number.isInteger(code)) throw new SyncError('MAPPING_CONFLICT', `The mapping of CRM ${identity.crmId} holds "${mapping.siaghCode}", which is not a Siagh contact Code. Delete that mapping and sync again.`);
    if (mapping.checksum && mapping.checksum === mapped.checksum) return { ...base, action: 'unchanged', code, written: [] };
    await siagh.contacts.ensureFresh();
    const rec = siagh.contacts.byCode(code);
    if (rec && differingColumns(updatable(mapped), rec, emptyPolicy).length === 0) return { ...base, action: 'unchanged', code, written: [] };
    const fields = fieldsForUpdate(updatable(mapped), emptyPolicy);
    assertMobileFree(siagh, identity, code, fields, 'the contact it is mapped to');
    const res = await siagh.updateContact(code, fields);
    warnings.push(...res.notes);
    return { ...base, action: 'updated', code, written: fields.map(([k]) => k) };
  }

  await siagh.contacts.ensureFresh();
  return linkOrCreate(siagh, identity, mapped, base, emptyPolicy, opts, false);
}

/** How each way of linking is named in messages. */
const LINK_KEY_NAMES = { code: 'customer number', mobile: 'mobile number', nationalCode: 'national code' } as const;

async function linkOrCreate(
  siagh: SiaghClient,
  identity: CrmIdentity,
  mapped: ReturnType<typeof mapIdentityToContact>,
  base: { checksum: string; customerNumber: string | undefined; warnings: string[] },
  emptyPolicy: EmptyPolicy,
  opts: ContactSyncOptions,
  afterRefresh: boolean,
): Promise<ContactSyncResult> {
  const warnings = base.warnings;
  const linkBy = { code: true, mobile: true, nationalCode: true, ...opts.linkBy };
  const candidates: Array<{ by: 'code' | 'mobile' | 'nationalCode'; rec: SiaghContact }> = [];
  if (linkBy.code && mapped.match.code !== undefined) {
    const rec = siagh.contacts.byCode(mapped.match.code);
    if (rec) candidates.push({ by: 'code', rec });
  }
  if (linkBy.mobile && mapped.match.mobile) {
    const rec = siagh.contacts.byMobile(mapped.match.mobile);
    if (rec) candidates.push({ by: 'mobile', rec });
  }
  if (linkBy.nationalCode && mapped.match.nationalCode) {
    const rec = siagh.contacts.byNationalCode(mapped.match.nationalCode);
    if (rec) candidates.push({ by: 'nationalCode', rec });
  }
  const codes = [...new Set(candidates.map((c) => c.rec.Code))];
  if (codes.length > 1) warnings.push(`several Siagh contacts match (${codes.join(', ')}); linked to ${candidates[0].rec.Code} by ${candidates[0].by}`);

  const pick = candidates[0];
  if (pick) {
    const code = pick.rec.Code;
    const key = LINK_KEY_NAMES[pick.by];
    const other = opts.mappedCrmIdOf?.(code);
    if (other && other !== identity.crmId) {
      throw new SyncError(
        'MAPPING_CONFLICT',
        `Siagh contact ${code} (same ${key}) is already linked to CRM identity ${other}; CRM identity ${identity.crmId} cannot be linked to it too. Two CRM identities share this ${pick.by}: merge them in the CRM, or correct the field, then replay.`,
      );
    }
    const diff = differingColumns(updatable(mapped), pick.rec, emptyPolicy);
    if (diff.length === 0) return { ...base, action: 'linked', code, linkedBy: pick.by, written: [] };
    const fields = fieldsForUpdate(updatable(mapped), emptyPolicy);
    assertMobileFree(siagh, identity, code, fields, `linked by ${key}`);
    const res = await siagh.updateContact(code, fields);
    warnings.push(...res.notes);
    return { ...base, action: 'linked', code, linkedBy: pick.by, written: fields.map(([k]) => k) };
  }

  let res;
  try {
    res = await siagh.createContact(mapped.fields, { mobile: mapped.match.mobile, nationalCode: mapped.match.nationalCode });
  } catch (e) {
    // Siagh has the mobile after all: the index predates a contact entered in Siagh since its
    // download. Download it again (nothing was created) and link instead.
    if (!(e instanceof SyncError) || e.code !== 'SIAGH_DUPLICATE' || afterRefresh) throw e;
    await siagh.contacts.refresh();
    return linkOrCreate(siagh, identity, mapped, base, emptyPolicy, opts, true);
  }
  warnings.push(...res.notes);
  return { ...base, action: 'created', code: res.code, written: mapped.fields.map(([k]) => k) };
}
