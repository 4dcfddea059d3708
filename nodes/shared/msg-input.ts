/** Reading what a message is about: the CRM id and webhook fields, from msg.payload or an http-in request. */
import { z } from 'zod';
import { SyncError } from '../../lib/errors';
import { textKey } from '../../lib/text/normalize';
import type { IdentityKind } from '../../lib/types';
import type { NodeMessage } from './red';

const Guid = z.string().trim().regex(/^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/);

export function pick(msg: NodeMessage, key: string): unknown {
  const p = msg.payload;
  if (p && typeof p === 'object' && key in (p as object)) return (p as Record<string, unknown>)[key];
  const q = (msg.req as { query?: Record<string, unknown> } | undefined)?.query;
  if (q && typeof q === 'object' && key in q) return q[key];
  return undefined;
}

/** The CRM id this message is about, validated; a clear BAD_INPUT error otherwise. */
export function idFrom(msg: NodeMessage): string {
  // id: webhooks and manual messages; crmId: a record from crm-fetch; identityId: a search-all row.
  let raw = pick(msg, 'id') ?? pick(msg, 'crmId') ?? pick(msg, 'identityId');
  if (raw === undefined && typeof msg.payload === 'string') raw = msg.payload;
  if (Array.isArray(raw)) raw = raw[0];
  if (raw === undefined || raw === null || raw === '') {
    throw new SyncError('BAD_INPUT', 'No CRM id in the message. Put the GUID in msg.payload.id (or msg.payload), or wire a CRM webhook http-in node so msg.req.query.id carries it.');
  }
  const r = Guid.safeParse(raw);
  if (!r.success) throw new SyncError('BAD_INPUT', `The CRM id "${String(raw).slice(0, 60)}" is not a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx).`);
  return r.data.toLowerCase();
}

/** Person or organization from a webhook subtype (حقیقی / حقوقی), or undefined when it does not say. */
export function kindFromSubtype(subtype: unknown): IdentityKind | undefined {
  if (typeof subtype !== 'string' || !subtype.trim()) return undefined;
  const k = textKey(subtype.replace(/\+/g, ' '));
  const person = k.includes('حقیقی');
  const org = k.includes('حقوقی');
  if (person && !org) return 'person';
  if (org && !person) return 'organization';
  return undefined;
}

