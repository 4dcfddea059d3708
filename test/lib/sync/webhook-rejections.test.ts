/**
 * lib/sync/webhook-rejections: the bounded ring of refused requests and the count per reason, and
 * the redaction of what is kept (the token never, in any place or letter case).
 */
import assert from 'node:assert/strict';
import { describeRequest, MAX_KEEP, redactDeep, redactHeaders, RejectionLog } from '../../../lib/sync/webhook-rejections';

const SECRET = 'tk-Ring-Secret-41';

function entry(i: number, reason = 'invalid-id') {
  return { method: 'GET', url: `/w?i=${i}`, query: { i: String(i) }, headers: {}, reason, status: 400, at: 1_700_000_000_000 + i };
}

describe('webhook rejections: RejectionLog', () => {
  it('keeps the last N, newest first, and counts every one per reason', () => {
    const log = new RejectionLog(3);
    for (let i = 1; i <= 7; i++) log.add(entry(i, i % 2 ? 'invalid-id' : 'token-missing'));
    const s = log.snapshot();
    assert.equal(s.total, 7);
    assert.deepEqual(s.counts, { 'invalid-id': 4, 'token-missing': 3 });
    assert.deepEqual(s.recent.map((e) => e.url), ['/w?i=7', '/w?i=6', '/w?i=5']);
    assert.equal(s.recent[0].at, new Date(1_700_000_000_007).toISOString());
    assert.equal(s.keep, 3);
  });

  it('before the ring is full: all of them, newest first', () => {
    const log = new RejectionLog(5);
    log.add(entry(1));
    log.add(entry(2));
    assert.deepEqual(log.snapshot().recent.map((e) => e.url), ['/w?i=2', '/w?i=1']);
  });

  it('keep 0 counts only; keep is bounded; a bad keep falls back to the default', () => {
    const none = new RejectionLog(0);
    none.add(entry(1));
    assert.deepEqual(none.snapshot(), { total: 1, counts: { 'invalid-id': 1 }, recent: [], keep: 0 });
    assert.equal(new RejectionLog(10 ** 9).keep, MAX_KEEP);
    assert.equal(new RejectionLog(Number.NaN).keep, 50);
    const big = new RejectionLog(MAX_KEEP);
    for (let i = 0; i < MAX_KEEP * 3; i++) big.add(entry(i));
    assert.equal(big.snapshot().recent.length, MAX_KEEP);
    assert.equal(big.snapshot().total, MAX_KEEP * 3);
  });
});

describe('webhook rejections: redaction', () => {
  it('describeRequest: the token never shows (URL, query in any case, headers, inside other values), texts are clipped', () => {
    const d = describeRequest(
      {
        method: 'get',
        originalUrl: `/webhook/crm/identity?event=Insert&TOKEN=${SECRET}&token=${SECRET}&note=${'n'.repeat(1000)}`,
        query: { event: 'Insert', token: SECRET, Token: [SECRET], note: 'n'.repeat(1000), ref: `x ${SECRET} y` },
        headers: { authorization: 'Bearer abc', cookie: 'sid=1', 'x-trace': `ref ${SECRET}`, host: 'h' },
      },
      [SECRET],
    );
    const text = JSON.stringify(d);
    assert.ok(!text.includes(SECRET), text);
    assert.equal(d.method, 'GET');
    assert.match(d.url, /TOKEN=\*\*\*&token=\*\*\*/);
    assert.ok(d.url.length <= 300);
    assert.equal(d.query.token, '***');
    assert.equal(d.query.Token, '***');
    assert.equal(d.query.ref, 'x *** y');
    assert.ok(String(d.query.note).length <= 100);
    assert.equal(d.headers.authorization, '***');
    assert.equal(d.headers.cookie, '***');
    assert.equal(d.headers['x-trace'], 'ref ***');
    assert.equal(d.headers.host, 'h');
  });

  it('describeRequest: many fields are bounded and counted', () => {
    const query = Object.fromEntries(Array.from({ length: 60 }, (_, i) => [`f${i}`, '1']));
    const d = describeRequest({ method: 'GET', url: '/x', query }, []);
    assert.equal(Object.keys(d.query).length, 21);
    assert.equal(d.query['…'], '40 more');
  });

  it('redactDeep and redactHeaders (the echo reply): token keys, token= parameters and known secrets', () => {
    const r = redactDeep({ token: SECRET, nested: { password: 'p', url: `/a?token=${SECRET}` }, list: [`${SECRET}!`], buf: Buffer.from('abc') }, [SECRET]);
    assert.deepEqual(r, { token: '***', nested: { password: '***', url: '/a?token=***' }, list: ['***!'], buf: '<3 bytes>' });
    assert.deepEqual(redactHeaders({ 'X-Api-Key': 'k', accept: '*/*' }, []), { 'X-Api-Key': '***', accept: '*/*' });
  });
});
