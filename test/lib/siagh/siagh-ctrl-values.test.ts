import assert from 'node:assert/strict';
import { SyncError } from '../../../lib/errors';
import { decodeSegments, encodeSegments, encodeValue, PIPE_REPLACEMENT } from '../../../lib/siagh/ctrl-values';

describe('siagh ctrlValues encoder', () => {
  it('replaces | with the broken bar so no segment is added', () => {
    assert.equal(encodeValue('a|b||c'), `a${PIPE_REPLACEMENT}b${PIPE_REPLACEMENT}${PIPE_REPLACEMENT}c`);
    const s = encodeSegments([
      ['gn_web_users.fullname', 'شرکت الف | ب'],
      ['gn_web_users.mobileno', '09121234567'],
    ]);
    const d = decodeSegments(s);
    assert.equal(d.length, 2);
    assert.deepEqual(
      d.map((x) => [x.key, x.value]),
      [
        ['gn_web_users.fullname', 'شرکت الف ¦ ب'],
        ['gn_web_users.mobileno', '09121234567'],
      ],
    );
  });

  it('keeps = inside values; the reader splits at the first =', () => {
    const s = encodeSegments([
      ['a', 'x=1=2'],
      ['b', '='],
    ]);
    assert.equal(s, 'a=x=1=2|b==');
    assert.deepEqual(
      decodeSegments(s).map((x) => [x.key, x.value, x.hasEquals]),
      [
        ['a', 'x=1=2', true],
        ['b', '=', true],
      ],
    );
  });

  it('turns CR, LF, TAB and other control characters into one space and trims', () => {
    assert.equal(encodeValue('  line1\r\nline2\tend\u0000x\u2028y  '), 'line1 line2 end x y');
    assert.equal(encodeValue('\r\n\r\n'), '');
    assert.equal(encodeValue('   leading'), 'leading');
    assert.equal(encodeValue('a\u007f\u0085b'), 'a b');
  });

  it('keeps Persian and Arabic digits, ZWNJ and Persian letters as they are', () => {
    const v = 'می‌خواهم ۰۹۱۲۱۲۳۴۵۶۷ و ٠٩١٢ ي ك';
    assert.equal(encodeValue(v), v);
  });

  it('writes null/undefined as empty and numbers as plain decimals', () => {
    assert.equal(encodeValue(null), '');
    assert.equal(encodeValue(undefined), '');
    assert.equal(encodeValue(8407), '8407');
    assert.equal(encodeValue(-0), '0');
    assert.equal(encodeValue(12.5), '12.5');
    assert.equal(encodeValue(1e21), '1000000000000000000000');
    assert.equal(encodeValue(1e-7), '0.0000001');
    assert.equal(encodeValue(true), '1');
    assert.equal(encodeValue(false), '0');
    assert.equal(encodeValue(10n), '10');
    assert.equal(encodeSegments([['CodeMain', '']]), 'CodeMain=');
    assert.equal(encodeSegments([['Param1', 8407]]), 'Param1=8407');
  });

  it('rejects NaN, Infinity and objects as BAD_INPUT', () => {
    for (const v of [NaN, Infinity, {}, [1]]) {
      assert.throws(
        () => encodeSegments([['k', v]]),
        (e: unknown) => e instanceof SyncError && e.code === 'BAD_INPUT' && /k/.test(e.message),
      );
    }
  });

  it('validates keys and never rewrites them', () => {
    assert.equal(encodeSegments([['NickName', 'dbgrid1.#nickname#']]), 'NickName=dbgrid1.#nickname#');
    assert.equal(encodeSegments([['_In_Suid', 'ABC']]), '_In_Suid=ABC');
    for (const bad of ['', 'a|b', 'a=b', 'نام', 'a b', 'a\nb', 'x-y']) {
      assert.throws(
        () => encodeSegments([[bad, 'v']]),
        (e: unknown) => e instanceof SyncError && e.code === 'BAD_INPUT',
        `key ${JSON.stringify(bad)}`,
      );
    }
  });

  it('keeps a 10,000-character hostile value in one segment', () => {
    const chunk = 'ab|c=d\r\n\t ۱٢';
    const long = chunk.repeat(Math.ceil(10_000 / chunk.length)).slice(0, 10_000);
    const s = encodeSegments([
      ['x.before', 'b'],
      ['x.long', long],
      ['x.after', 'a'],
    ]);
    const d = decodeSegments(s);
    assert.equal(d.length, 3);
    assert.equal(d[0].value, 'b');
    assert.equal(d[2].value, 'a');
    assert.ok(!d[1].value.includes('|'));
    assert.ok(!/[\r\n\t]/.test(d[1].value));
    assert.ok(d[1].value.includes('='));
    assert.ok(d[1].value.length > 8_000);
  });

  it('decodes: empty string has no segments; a segment without = is flagged', () => {
    assert.deepEqual(decodeSegments(''), []);
    const d = decodeSegments('a=1|broken|b=');
    assert.deepEqual(
      d.map((x) => [x.key, x.value, x.hasEquals]),
      [
        ['a', '1', true],
        ['broken', '', false],
        ['b', '', true],
      ],
    );
  });
});
