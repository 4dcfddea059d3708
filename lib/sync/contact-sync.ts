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
 *    A contact found by mobile or national code is linked only when it is plausibly the same
 *    party (link-rule.ts: same kind, names agree); otherwise nothing is written and the error is
 *    LINK_NEEDS_REVIEW with both sides in `review`. The operator answers by replaying with a
 *    `linkDecision`: `{decision: 'link', code}` links to that contact (then updates it as the CRM
 *    says), `{decision: 'separate'}` creates a new contact without linking by mobile / national
 *    code (Siagh may still refuse a duplicate mobile: SIAGH_DUPLICATE).
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
import { crmPartyName, samePartyVerdict, siaghKind } from './link-rule';

export type EmptyPolicy = 'keep' | 'clear';

export interface ContactSyncOptions {
  map?: ContactMapOptions;
  emptyPolicy?: EmptyPolicy;
  /** Which keys may link an unmapped identity to an existing Siagh contact. All on by default. */
  linkBy?: { code?: boolean; mobile?: boolean; nationalCode?: boolean };
  /** The CRM id a Siagh Code is already mapped to, if any (from the mapping store). */
  mappedCrmIdOf?: (code: number) => string | undefined | Promise<string | undefined>;
  /** An operator's answer to a LINK_NEEDS_REVIEW item (msg.linkDecision); used only while unmapped. */
  linkDecision?: LinkDecision;
  /**
   * The queue delivers this identity again after a create whose outcome was unknown: check Siagh
   * (a fresh contact list) before creating, and create only when the check can find the contact
   * (by mobile or national code; Siagh itself refuses a second contact with the same mobile).
   */
  recheck?: boolean;
}

/** An operator's answer to LINK_NEEDS_REVIEW. */
export type LinkDecision = { decision: 'link'; code: number } | { decision: 'separate' };

/** The facts of a LINK_NEEDS_REVIEW item (SyncError.review), kept by the failed list. */
export interface LinkReview {
  crm: { crmId: string; kind: string; name: string; mobile: string | null; nationalCode: string | null };
  siagh: { code: number; kind: string | null; name: string | null; mobile: string | null; nationalCode: string | null };
  matchedBy: 'mobile' | 'nationalCode';
  reason: string;
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
  /** How the contact was found; 'operator' = msg.linkDecision named it. */
  linkedBy?: 'code' | 'mobile' | 'nationalCode' | 'operator';
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
    if (opts.linkDecision) warnings.push(`linkDecision ${opts.linkDecision.decision} ignored: CRM ${identity.crmId} is mapped to Siagh contact ${mapping.siaghCode} already`);
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

  if (opts.recheck) {
    const { mobile, nationalCode } = mapped.match;
    if (!mobile && !nationalCode) {
      throw new SyncError(
        'AMBIGUOUS_CREATE',
        `An earlier create of CRM identity ${identity.crmId} in Siagh may or may not have happened, and it has no mobile or national code by which Siagh could be checked. Look for it in Siagh: if it is there, link it (replay with msg.linkDecision {decision: "link", code}); if not, replay it by its CRM id.`,
        { ambiguous: true },
      );
    }
    await siagh.contacts.refresh();
  }
  await siagh.contacts.ensureFresh();
  const decision = opts.linkDecision;
  if (decision?.decision === 'link') return linkByDecision(siagh, identity, mapped, base, emptyPolicy, opts, decision.code);
  if (decision?.decision === 'separate') {
    warnings.push('operator decision: a separate Siagh contact, not linked by mobile or national code');
    // afterRefresh = true: a duplicate-mobile refusal is the answer (SIAGH_DUPLICATE), not a cue to link.
    return linkOrCreate(siagh, identity, mapped, base, emptyPolicy, { ...opts, linkBy: { ...opts.linkBy, mobile: false, nationalCode: false } }, true);
  }
  return linkOrCreate(siagh, identity, mapped, base, emptyPolicy, opts, false);
}

/** msg.linkDecision {decision: 'link', code}: link to that contact, then write what the CRM says. */
async function linkByDecision(
  siagh: SiaghClient,
  identity: CrmIdentity,
  mapped: MappedContact,
  base: { checksum: string; customerNumber: string | undefined; warnings: string[] },
  emptyPolicy: EmptyPolicy,
  opts: ContactSyncOptions,
  code: number,
): Promise<ContactSyncResult> {
  let rec = siagh.contacts.byCode(code);
  if (!rec) {
    // entered in Siagh after the list was downloaded?
    await siagh.contacts.refresh();
    rec = siagh.contacts.byCode(code);
  }
  if (!rec) {
    throw new SyncError('BAD_INPUT', `msg.linkDecision links CRM identity ${identity.crmId} to Siagh contact ${code}, but Siagh has no contact ${code}; nothing was written. Check the code and replay.`);
  }
  const other = await opts.mappedCrmIdOf?.(code);
  if (other && other !== identity.crmId) {
    throw new SyncError('MAPPING_CONFLICT', `Siagh contact ${code} named in msg.linkDecision is already linked to CRM identity ${other}; CRM identity ${identity.crmId} cannot be linked to it too. Nothing was written.`);
  }
  base.warnings.push(`operator decision: linked to Siagh contact ${code}`);
  const diff = differingColumns(updatable(mapped), rec, emptyPolicy);
  if (diff.length === 0) return { ...base, action: 'linked', code, linkedBy: 'operator', written: [] };
  const fields = fieldsForUpdate(updatable(mapped), emptyPolicy);
  assertMobileFree(siagh, identity, code, fields, 'linked by the operator');
  const res = await siagh.updateContact(code, fields);
  base.warnings.push(...res.notes);
  return { ...base, action: 'linked', code, linkedBy: 'operator', written: fields.map(([k]) => k) };
}

/** LINK_NEEDS_REVIEW when a mobile / national-code candidate is not plausibly the same party. */
function assertSameParty(identity: CrmIdentity, mapped: MappedContact, rec: SiaghContact, by: 'mobile' | 'nationalCode'): void {
  const crmName = crmPartyName(identity);
  const kind = siaghKind(rec);
  const verdict = samePartyVerdict({ kind: identity.kind, name: crmName }, { kind, name: rec.Name });
  if (verdict.ok) return;
  const review: LinkReview = {
    crm: { crmId: identity.crmId, kind: identity.kind, name: crmName, mobile: mapped.match.mobile ?? null, nationalCode: mapped.match.nationalCode ?? null },
    siagh: { code: rec.Code, kind, name: rec.Name ?? null, mobile: rec.MobileNo ?? null, nationalCode: rec.NationalCode ?? null },
    matchedBy: by,
    reason: verdict.reason,
  };
  const q = (s: string | null) => (s ? `"${s}"` : '(no name)');
  throw new SyncError(
    'LINK_NEEDS_REVIEW',
    `CRM ${identity.kind} ${q(crmName)} (${identity.crmId}) has the same ${LINK_KEY_NAMES[by]} as Siagh ${kind ?? 'contact'} ${q(rec.Name ?? null)} (contact ${rec.Code}), ` +
      `but they do not look like the same party: ${verdict.reason}. Nothing was written to Siagh. ` +
      `Decide, then replay with msg.linkDecision = {"decision":"link","code":${rec.Code}} to link them (Siagh's contact then takes the CRM's data), ` +
      `or {"decision":"separate"} to create a new Siagh contact.`,
    { review: review as unknown as Record<string, unknown> },
  );
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
    const other = await opts.mappedCrmIdOf?.(code);
    if (other && other !== identity.crmId) {
      throw new SyncError(
        'MAPPING_CONFLICT',
        `Siagh contact ${code} (same ${key}) is already linked to CRM identity ${other}; CRM identity ${identity.crmId} cannot be linked to it too. Two CRM identities share this ${pick.by}: merge them in the CRM, or correct the field, then replay.`,
      );
    }
    if (pick.by !== 'code' && other !== identity.crmId) assertSameParty(identity, mapped, pick.rec, pick.by);
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
