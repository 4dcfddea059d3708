/**
 * Checksums of what we send, to tell "unchanged since the last sync" from "changed".
 *
 * `stableJson` is JSON with object keys sorted (by UTF-16 code units, the order of `Array.sort`),
 * so two objects with the same content give the same text whatever order their keys were set in.
 * Array order is kept (it is meaningful: field send order, invoice rows).
 *
 * Rules, as JSON.stringify where JSON has one: `undefined`, functions and symbols are dropped from
 * objects and become `null` in arrays; NaN and ±Infinity become `null`; `-0` is `0`; objects with a
 * `toJSON` method (Date) are replaced by its result; bigint becomes its decimal text. A cycle
 * throws TypeError (it cannot be a value we send).
 */
import { createHash } from 'node:crypto';

export function stableJson(value: unknown): string {
  const out = enc(value, []);
  return out === undefined ? 'null' : out;
}

function enc(v: unknown, stack: object[]): string | undefined {
  if (v === null) return 'null';
  switch (typeof v) {
    case 'string':
      return JSON.stringify(v);
    case 'number':
      return Number.isFinite(v) ? JSON.stringify(Object.is(v, -0) ? 0 : v) : 'null';
    case 'boolean':
      return v ? 'true' : 'false';
    case 'bigint':
      return JSON.stringify(v.toString());
    case 'undefined':
    case 'function':
    case 'symbol':
      return undefined;
  }
  const obj = v as Record<string, unknown> & { toJSON?: () => unknown };
  if (typeof obj.toJSON === 'function') return enc(obj.toJSON(), stack);
  if (stack.includes(obj)) throw new TypeError('checksumOf: the value contains a cycle');
  stack.push(obj);
  try {
    if (Array.isArray(obj)) {
      return '[' + obj.map((x) => enc(x, stack) ?? 'null').join(',') + ']';
    }
    const parts: string[] = [];
    for (const k of Object.keys(obj).sort()) {
      const e = enc(obj[k], stack);
      if (e !== undefined) parts.push(JSON.stringify(k) + ':' + e);
    }
    return '{' + parts.join(',') + '}';
  } finally {
    stack.pop();
  }
}

/** sha256 (lower-case hex) of `stableJson(value)`. */
export function checksumOf(value: unknown): string {
  return createHash('sha256').update(stableJson(value), 'utf8').digest('hex');
}
