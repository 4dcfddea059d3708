/**
 * Zod schemas for the Payamgostar CRM REST v2 replies (docs/crm-api.md). They are lenient to
 * unknown fields (the CRM sends far more than we read, and versions differ) and strict only where
 * the sync depends on a field: a token and its expiry, record ids, the customer of a quote.
 *
 * A reply that does not fit is a SyncError('BAD_REPLY') whose message names the field, so an
 * operator can tell "the CRM changed its reply" from "the network failed".
 */
import { z } from 'zod';
import { SyncError } from '../errors';
import type { CrmIdentity, CrmIdentitySummary, CrmQuote, IdentityKind } from '../types';

// ---------- dates ----------

const ISO_RE = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?\s*(Z|[+-]\d{2}(?::?\d{2})?)?$/i;

/**
 * Milliseconds since the epoch of an ISO-8601 date-time as the CRM writes it:
 * `2025-12-16T11:43:53.1385332+03:30` (7 fractional digits, .NET ticks), `…Z`, or without an
 * offset (then the time is read as local time of this process, as `Date` does). Any number of
 * fractional digits is accepted; digits beyond milliseconds are dropped (never rounded up, so an
 * expiry is never read later than written). Returns undefined when the text is not such a date.
 */
export function parseCrmDateTime(text: string): number | undefined {
  const m = ISO_RE.exec(text.trim());
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s = '0', frac = '', off] = m;
  const ms = Number((frac + '000').slice(0, 3));
  const parts = [Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s), ms] as const;
  if (parts[1] > 11 || parts[2] < 1 || parts[2] > 31 || parts[3] > 24 || parts[4] > 59 || parts[5] > 60) return undefined;
  let t: number;
  if (off === undefined) {
    t = new Date(...parts).getTime();
  } else {
    t = Date.UTC(...parts);
    if (off.toUpperCase() !== 'Z') {
      const sign = off[0] === '-' ? -1 : 1;
      const digits = off.slice(1).replace(':', '');
      const oh = Number(digits.slice(0, 2));
      const om = Number(digits.slice(2, 4) || '0');
      if (oh > 18 || om > 59) return undefined;
      t -= sign * (oh * 60 + om) * 60_000;
    }
  }
  return Number.isFinite(t) ? t : undefined;
}

// ---------- helpers ----------

const str = z.string().nullish();
const num = z.number().nullish();
const bool = z.boolean().nullish();
/** A GUID-like id: a non-empty string (the CRM sends lower-case GUIDs; we do not insist on the form). */
const id = z.string().trim().min(1, 'must be a non-empty id');

/** Parse `data` with `schema`; a failure is BAD_REPLY naming the first failing field. */
export function parseReply<S extends z.ZodType>(schema: S, data: unknown, what: string, path?: string): z.output<S> {
  const r = schema.safeParse(data);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const field = issue && issue.path.length ? issue.path.map(String).join('.') : '(the whole reply)';
  throw new SyncError(
    'BAD_REPLY',
    `The CRM's reply to ${what} does not have the expected shape: field "${field}" ${issue ? issue.message.replace(/^Invalid input: /, '') : 'is invalid'}. ` +
      'The CRM version may differ from the one this node was built for; report the reply to the maintainers.',
    { path, details: [z.prettifyError(r.error).slice(0, 500)] },
  );
}

// ---------- login ----------

export const loginReplySchema = z.looseObject({
  accessToken: z.string().trim().min(1, 'is missing or empty'),
  expiresAt: z
    .string()
    .refine((s) => parseCrmDateTime(s) !== undefined, 'is not a date-time like 2025-12-16T11:43:53.1385332+03:30'),
  refreshToken: z.string().nullish(),
});

export interface CrmLoginReply {
  accessToken: string;
  /** The expiry as the CRM wrote it. */
  expiresAtText: string;
  /** The expiry in ms since the epoch. */
  expiresAtMs: number;
  refreshToken?: string;
}

export function parseLoginReply(data: unknown, path?: string): CrmLoginReply {
  const r = parseReply(loginReplySchema, data, 'the login', path);
  return {
    accessToken: r.accessToken,
    expiresAtText: r.expiresAt,
    expiresAtMs: parseCrmDateTime(r.expiresAt) as number,
    refreshToken: r.refreshToken ?? undefined,
  };
}

// ---------- identity search ----------

export const identitySummarySchema = z.looseObject({
  identityId: id,
  nickName: str,
  customerNo: str,
});

export const identitySearchReplySchema = z.array(identitySummarySchema);

export function parseIdentitySearch(data: unknown, path?: string): CrmIdentitySummary[] {
  const rows = parseReply(identitySearchReplySchema, data, 'the identity search', path);
  return rows.map((r) => ({ ...r, identityId: r.identityId, nickName: r.nickName ?? null, customerNo: r.customerNo ?? null }));
}

// ---------- person / organization ----------

const phoneSchema = z.looseObject({
  id: str,
  default: bool,
  phoneType: str,
  phoneNumber: str,
  continuedNumber: str,
  extension: str,
});

const addressSchema = z.looseObject({
  id: str,
  default: bool,
  country: str,
  state: str,
  city: str,
  address: str,
  zipCode: str,
});

const categorySchema = z.looseObject({ key: str, name: str, id: str });

export const identityGetSchema = z.looseObject({
  crmId: id,
  crmObjectTypeCode: str,
  identityTypeName: str,
  nickName: str,
  firstName: str,
  lastName: str,
  customerNumber: str,
  nationalCode: str,
  economicCode: str,
  registerNumber: str,
  email: str,
  website: str,
  description: str,
  gender: str,
  phoneContacts: z.array(phoneSchema).nullish(),
  addressContacts: z.array(addressSchema).nullish(),
  categories: z.array(categorySchema).nullish(),
  refId: str,
  creatDate: str,
  modifyDate: str,
});

/**
 * What a record says about its own kind: `identityTypeName` (حقیقی / حقوقی, or English) first,
 * then `crmObjectTypeCode` (person / organization). Undefined when it says nothing we recognise.
 */
export function kindFromRecord(rec: { identityTypeName?: unknown; crmObjectTypeCode?: unknown }): IdentityKind | undefined {
  const name = typeof rec.identityTypeName === 'string' ? rec.identityTypeName.trim().toLowerCase() : '';
  if (name) {
    if (name.includes('حقوقی') || name === 'organization' || name === 'legal') return 'organization';
    if (name.includes('حقیقی') || name.includes('حقيقي') || name === 'person' || name === 'natural') return 'person';
  }
  const code = typeof rec.crmObjectTypeCode === 'string' ? rec.crmObjectTypeCode.trim().toLowerCase() : '';
  if (code === 'organization' || code === 'organisation') return 'organization';
  if (code === 'person') return 'person';
  return undefined;
}

/** Parse a person/get or organization/get reply; `kind` is the kind the caller decided. */
export function parseIdentity(data: unknown, kind: IdentityKind, path?: string): CrmIdentity {
  const r = parseReply(identityGetSchema, data, `${kind}/get`, path);
  return { ...r, crmId: r.crmId, kind } as CrmIdentity;
}

// ---------- create / update ----------

export const writeReplySchema = z.looseObject({ crmId: id });

export function parseWriteReply(data: unknown, what: string, path?: string): string {
  return parseReply(writeReplySchema, data, what, path).crmId;
}

// ---------- quote / invoice ----------

const detailSchema = z.looseObject({
  productCode: str,
  productId: str,
  productName: str,
  productUnitTypeName: str,
  count: num,
  baseUnitPrice: num,
  finalUnitPrice: num,
  totalDiscount: num,
  totalVat: num,
  discountPercent: num,
  detailDescription: str,
  isService: bool,
});

export const quoteGetSchema = z.looseObject({
  crmId: id,
  identityId: id,
  crmObjectTypeCode: str,
  subject: str,
  description: str,
  number: str,
  totalValue: num,
  discount: num,
  discountPercent: num,
  vat: num,
  vatPercent: num,
  finalValue: num,
  creatDate: str,
  modifyDate: str,
  details: z
    .array(detailSchema)
    .nullish()
    .transform((d) => d ?? []),
});

export function parseQuote(data: unknown, docKind: 'quote' | 'invoice', path?: string): CrmQuote {
  const r = parseReply(quoteGetSchema, data, docKind === 'quote' ? 'quote/sales/get' : 'invoice/sales/get', path);
  return { ...r, crmId: r.crmId, identityId: r.identityId, details: r.details, docKind } as CrmQuote;
}
