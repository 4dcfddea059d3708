/**
 * When may an unmapped CRM identity be linked to an existing, unmapped Siagh contact that shares
 * its mobile number or national code? Only when the two are plausibly the same party. One rule,
 * one function: `samePartyVerdict(crm, siagh)`.
 *
 * THE RULE
 * 1. Kind: a person is never linked to an organization or back. The CRM kind is the identity's
 *    `kind`; the Siagh kind is `TowardType` (false person, true organization). A Siagh record
 *    without TowardType (null) has no known kind and is decided by the names alone.
 * 2. Names agree, compared as `partyNameTokens`:
 *    - textKey: Arabic ي/ى/ك → Persian ی/ک, ة/ۀ → ه, Persian/Arabic-Indic digits → ASCII,
 *      diacritics, tatweel and invisible marks removed, ZWNJ → space, lower-case;
 *    - punctuation (. , ، ؛ : ( ) [ ] « » " ' - _ / \ & +) → space;
 *    - titles and legal forms dropped as whole words: شرکت, موسسه/مؤسسه, آقای/آقا, خانم, جناب,
 *      سرکار, دکتر, مهندس, حاج/حاجی, سهامی خاص/عام, با مسئولیت محدود, تضامنی, تعاونی, س خ
 *      (س.خ), ltd, co, inc, llc, company, mr, mrs, ms, dr …;
 *    - and then they agree when
 *      a. both are equal once every space is removed (so علی‌رضا = علی رضا = علیرضا), or
 *      b. the word set of one is contained in the word set of the other (کریمی تجارت ⊂
 *         بازرگانی کریمی تجارت; رضا کریمی ⊂ رضا کریمی نژاد is also accepted — the kind and the
 *         shared mobile / national code are the other two witnesses).
 *    A side left without any word (no name, or only a title) never agrees.
 * Anything else is a review item for a person (LINK_NEEDS_REVIEW): nothing is written to Siagh.
 *
 * Pure functions, no I/O.
 */
import { textKey } from '../text/normalize';
import type { CrmIdentity, IdentityKind, SiaghContact } from '../types';

export interface PartyFacts {
  kind?: IdentityKind | null;
  name?: string | null;
}

export interface PartyVerdict {
  ok: boolean;
  /** Why, in a few words an operator understands. */
  reason: string;
}

const PUNCT = /[.,،؛;:()[\]{}«»"'`\-_/\\&+*!?؟٫٬]/g;

/** Multi-word forms first (they are removed before single words are looked at). */
const DROP_PHRASES: readonly string[] = [
  'سهامی خاص',
  'سهامی عام',
  'با مسئولیت محدود',
  'با مسیولیت محدود',
  'بامسئولیت محدود',
  'مسئولیت محدود',
  'مسیولیت محدود',
  'س خ',
  'س ع',
  'م م',
];

const DROP_WORDS = new Set([
  'شرکت',
  'شركت',
  'موسسه',
  'مؤسسه',
  'مسسه',
  'آقای',
  'آقا',
  'اقای',
  'اقا',
  'خانم',
  'جناب',
  'سرکار',
  'دکتر',
  'مهندس',
  'حاج',
  'حاجی',
  'سهامی',
  'تضامنی',
  'تعاونی',
  'سخ',
  'ltd',
  'co',
  'inc',
  'llc',
  'company',
  'corp',
  'mr',
  'mrs',
  'ms',
  'dr',
  'eng',
]);

/** The words of a party name that identify it (normalised, titles and legal forms removed). */
export function partyNameTokens(name: string | null | undefined): string[] {
  let t = ` ${textKey(name).replace(PUNCT, ' ').replace(/\s+/g, ' ').trim()} `;
  for (const p of DROP_PHRASES) {
    while (t.includes(` ${p} `)) t = t.replace(` ${p} `, ' ');
  }
  return t
    .split(' ')
    .filter((w) => w && !DROP_WORDS.has(w));
}

/** The name the CRM identity goes to Siagh with: nickName, else first + last name. */
export function crmPartyName(identity: Pick<CrmIdentity, 'nickName' | 'firstName' | 'lastName'>): string {
  const t = (v: unknown) => (typeof v === 'string' ? v.trim() : '');
  return t(identity.nickName) || [t(identity.firstName), t(identity.lastName)].filter(Boolean).join(' ');
}

/** person / organization of a Siagh record (TowardType), or null when Siagh does not say. */
export function siaghKind(rec: Pick<SiaghContact, 'TowardType'>): IdentityKind | null {
  return rec.TowardType === true ? 'organization' : rec.TowardType === false ? 'person' : null;
}

const KIND_FA: Record<IdentityKind, string> = { person: 'person', organization: 'organization' };

/** The rule of this module (see the header): may these two be linked without asking a person? */
export function samePartyVerdict(crm: PartyFacts, siagh: PartyFacts): PartyVerdict {
  if (crm.kind && siagh.kind && crm.kind !== siagh.kind) {
    return { ok: false, reason: `the CRM record is ${article(crm.kind)} and the Siagh contact ${article(siagh.kind)}` };
  }
  const a = partyNameTokens(crm.name);
  const b = partyNameTokens(siagh.name);
  if (a.length === 0) return { ok: false, reason: 'the CRM record has no name to compare' };
  if (b.length === 0) return { ok: false, reason: 'the Siagh contact has no name to compare' };
  if (a.join('') === b.join('')) return { ok: true, reason: 'the names are the same after normalisation' };
  const sa = new Set(a);
  const sb = new Set(b);
  if ([...sa].every((w) => sb.has(w))) return { ok: true, reason: 'every word of the CRM name is in the Siagh name' };
  if ([...sb].every((w) => sa.has(w))) return { ok: true, reason: 'every word of the Siagh name is in the CRM name' };
  return { ok: false, reason: `the names differ ("${a.join(' ')}" / "${b.join(' ')}" after normalisation)` };
}

function article(kind: IdentityKind): string {
  return kind === 'organization' ? `an ${KIND_FA[kind]}` : `a ${KIND_FA[kind]}`;
}
