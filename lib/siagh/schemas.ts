/**
 * zod schemas of Siagh replies (docs/siagh-api.md). Lenient to unknown fields
 * (`z.looseObject`), strict where the client depends on a field. `parseReply` turns a schema
 * failure into SyncError('BAD_REPLY') whose message names the failing field(s).
 */
import { z } from 'zod';
import { SyncError } from '../errors';
import type { SiaghContact } from '../types';

/** A number, or a string of digits (some Siagh builds may quote numbers). */
const intLike = z.union([z.number().int(), z.string().trim().regex(/^-?\d+$/, 'expected a whole number').transform(Number)]);
/** Text; numbers are accepted and written as text; null kept. */
const text = z
  .union([z.string(), z.number()])
  .transform((v) => String(v))
  .nullable()
  .optional();

export const LoginReplySchema = z.looseObject({
  SessionId: z.string({ error: 'SessionId is missing' }).trim().min(1, 'SessionId is empty'),
  Token: z.string().nullable().optional(),
  FiscalYear: intLike,
  UserName: z.string().nullable().optional(),
  UserCode: intLike.nullable().optional(),
  BranchName: z.string().nullable().optional(),
  BranchCode: intLike.nullable().optional(),
  ContactCode: intLike.nullable().optional(),
  ContactName: z.string().nullable().optional(),
  IsAdminUser: z.boolean().nullable().optional(),
  SystemDate: z.string().nullable().optional(),
  SystemTime: z.string().nullable().optional(),
});
export type LoginReply = z.infer<typeof LoginReplySchema>;

export const ContactRecordSchema = z.looseObject({
  Code: intLike,
  Name: text,
  NickName: text,
  NationalCode: text,
  MobileNo: text,
  MobileNo2: text,
  TelNo: text,
  TelNo2: text,
  Email: text,
  Address: text,
  PostalCode: text,
  CityCode: text,
  CountryCode: text,
  Gender: text,
  Description: text,
  WebSiteAddress: text,
  IsActive: z.boolean().nullable().optional(),
  IsAdminUser: z.boolean().nullable().optional(),
  TowardType: z.boolean().nullable().optional(),
  AccountPartyCode: intLike.nullable().optional(),
  RecordId: z.string().nullable().optional(),
});

export const GetAllReplySchema = z.array(ContactRecordSchema);

export const SiaghErrorEntrySchema = z.looseObject({
  ColName: z.string().nullable().optional(),
  Group: z.string().nullable().optional(),
  ErrorType: z.string().nullable().optional(),
  Description: z.string().nullable().optional(),
  ErrorCode: z.number().nullable().optional(),
  MessageText: z.string().nullable().optional(),
});
export type SiaghErrorEntry = z.infer<typeof SiaghErrorEntrySchema>;

const codeText = z
  .union([z.string(), z.number()])
  .transform((v) => String(v))
  .nullable()
  .optional();

export const SaveReplySchema = z
  .looseObject({
    Errors: z.array(SiaghErrorEntrySchema).nullable().optional(),
    FinalMessages: z.array(z.string().nullable()).nullable().optional(),
    ReturnValue: z.boolean().nullable().optional(),
    ReturnCode: codeText,
    ReturnParams: codeText,
  })
  .refine((r) => Array.isArray(r.Errors) || typeof r.ReturnValue === 'boolean' || (r.ReturnCode != null && r.ReturnCode !== ''), {
    message: 'none of Errors, ReturnValue, ReturnCode is present',
  });
export type SaveReply = z.infer<typeof SaveReplySchema>;

/** Describe up to three issues with their paths (`[12].Code: expected number`). */
export function describeIssues(error: z.ZodError, max = 3): string {
  const parts = error.issues.slice(0, max).map((i) => {
    const path = i.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('').replace(/^\./, '');
    return `${path || '(reply)'}: ${i.message}`;
  });
  const more = error.issues.length - max;
  return parts.join('; ') + (more > 0 ? `; and ${more} more problem(s)` : '');
}

export interface ParseContext {
  /** What was asked, for the message ("the login reply", "GetAll"). */
  what: string;
  path?: string;
  status?: number;
  /** The call was a write: a broken reply leaves its outcome unknown. */
  write?: boolean;
}

/** Validate `data` or throw SyncError('BAD_REPLY') naming the field(s). */
export function parseReply<S extends z.ZodType>(schema: S, data: unknown, ctx: ParseContext): z.output<S> {
  const r = schema.safeParse(data);
  if (r.success) return r.data;
  const shape = data === undefined ? 'an empty body' : Array.isArray(data) ? 'a list' : typeof data === 'object' && data !== null ? 'an object' : typeof data;
  throw new SyncError(
    'BAD_REPLY',
    `Siagh sent ${ctx.what} in an unexpected form (${shape}): ${describeIssues(r.error)}.` +
      (ctx.write ? ' The save may or may not have happened; check Siagh before repeating it.' : ' Check that the URL points at the Siagh API and that its version is supported.'),
    { path: ctx.path, status: ctx.status, ambiguous: !!ctx.write, retryable: !ctx.write, details: [z.prettifyError(r.error).slice(0, 2000)] },
  );
}

/** A GetAll record as the shared SiaghContact type. */
export function toSiaghContact(r: z.output<typeof ContactRecordSchema>): SiaghContact {
  return r as unknown as SiaghContact;
}
