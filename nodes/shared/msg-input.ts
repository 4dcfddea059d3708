/** Reading a message: the parts lib/ref.ts reads for the record reference, and single webhook fields. */
import { refOf, type FoundRef, type RefSource } from '../../lib/ref';
import type { NodeMessage } from './red';

/** A field of msg.payload, else of an http-in request's query (msg.req.query). */
export function pick(msg: NodeMessage, key: string): unknown {
  const p = msg.payload;
  if (p && typeof p === 'object' && key in (p as object)) return (p as Record<string, unknown>)[key];
  const q = (msg.req as { query?: Record<string, unknown> } | undefined)?.query;
  if (q && typeof q === 'object' && key in q) return q[key];
  return undefined;
}

/** The parts of a message the record reader looks at. */
export function refSource(msg: NodeMessage): RefSource {
  return { update: msg.mappingUpdate, payload: msg.payload, query: (msg.req as { query?: unknown } | undefined)?.query, trace: msg.sync };
}

/** The record this message is about (lib/ref.ts refOf: the one reader and its order). */
export function refOfMsg(msg: NodeMessage): FoundRef {
  return refOf(refSource(msg));
}
