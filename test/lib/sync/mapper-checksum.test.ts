import assert from 'node:assert/strict';
import { checksumOf, stableJson } from '../../../lib/sync/checksum';

describe('sync/checksum', () => {
  it('is sha256 hex of stable JSON', () => {
    const c = checksumOf({ a: 1 });
    assert.match(c, /^[0-9a-f]{64}$/);
    // sha256('{"a":1}')
    assert.equal(c, '015abd7f5cc57a2dd94b7590f04ad8084273905ee33ec5cebeae62276a97f862');
  });

  it('does not depend on object key order, at any depth', () => {
    const a = { name: 'علی کریمی', phones: [{ type: 'موبایل', n: '0912' }], meta: { x: 1, y: [1, 2] } };
    const b = { meta: { y: [1, 2], x: 1 }, phones: [{ n: '0912', type: 'موبایل' }], name: 'علی کریمی' };
    assert.equal(stableJson(a), stableJson(b));
    assert.equal(checksumOf(a), checksumOf(b));
  });

  it('drops undefined object members (absent and undefined are the same)', () => {
    assert.equal(checksumOf({ a: 1, b: undefined }), checksumOf({ a: 1 }));
    assert.equal(stableJson([1, undefined]), '[1,null]');
  });

  it('changes when any value, array order or type changes', () => {
    const base = checksumOf({ rows: [{ price: 100000, qty: 1 }], customer: '8407' });
    assert.notEqual(checksumOf({ rows: [{ price: 100001, qty: 1 }], customer: '8407' }), base);
    assert.notEqual(checksumOf({ rows: [{ price: 100000, qty: 2 }], customer: '8407' }), base);
    assert.notEqual(checksumOf({ rows: [{ price: 100000, qty: 1 }], customer: 8407 }), base);
    assert.notEqual(checksumOf([['a', '1'], ['b', '2']]), checksumOf([['b', '2'], ['a', '1']]));
    assert.notEqual(checksumOf({ name: 'علي' }), checksumOf({ name: 'علی' })); // values are compared as sent
  });

  it('handles the JSON corner cases like JSON.stringify', () => {
    assert.equal(stableJson({ d: new Date('2025-12-21T14:06:17.173Z') }), '{"d":"2025-12-21T14:06:17.173Z"}');
    assert.equal(stableJson({ n: NaN, i: -Infinity, z: -0 }), '{"i":null,"n":null,"z":0}');
    assert.equal(stableJson({ f: () => 1, s: 'x' }), '{"s":"x"}');
    assert.equal(stableJson(undefined), 'null');
    assert.equal(stableJson(10n), '"10"');
  });

  it('refuses cycles but allows shared (non-cyclic) references', () => {
    const shared = { v: 1 };
    assert.equal(stableJson({ a: shared, b: shared }), '{"a":{"v":1},"b":{"v":1}}');
    const cyc: Record<string, unknown> = {};
    cyc.self = cyc;
    assert.throws(() => checksumOf(cyc), TypeError);
  });
});
