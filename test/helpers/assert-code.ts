/** `assert.rejects(p, isCode('CRM_NOT_FOUND'))`: the error is a SyncError with that code. */
import assert from 'node:assert/strict';
import { SyncError } from '../../lib/errors';

export function isCode(code: string) {
  return (e: unknown): boolean => {
    assert.ok(e instanceof SyncError, `expected a SyncError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    return true;
  };
}
