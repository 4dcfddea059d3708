/**
 * lib/sync/webhook: what a CRM webhook delivery may carry (the real CRM's GET query, a POST body
 * of the same fields), the constant-time token check, token redaction in URLs, and coalescing of
 * repeated deliveries per record with real timers and short windows.
 */
import assert from 'node:assert/strict';
import {
  carriesNoWebhookFields,
  checkToken,
  describeEndpoint,
  EXTRA_LIMITS,
  LIMITS,
  MAX_EXTRA_SHOWN,
  reasonOf,
  resolveToken,
  tokenValues,
  webhooksDisabled,
  mergeEvent,
  parseWebhook,
  redactTokenParam,
  tokenMatches,
  WebhookFields,
} from '../../../lib/sync/webhook';

const ID = '0634d585-7e1b-4c2a-9f3d-1a2b3c4d5e6f';
const ID2 = '52e469f2-0c4d-4b8e-a1f2-6e5d4c3b2a10';

function bad(input: unknown, opts?: Parameters<typeof parseWebhook>[1]): { error: string; problems: string[] } {
  const r = parseWebhook(input, opts);
  assert.equal(r.ok, false, `expected a rejection for ${JSON.stringify(input)?.slice(0, 80)}`);
  return r as { ok: false; error: string; problems: string[] };
}

function good(input: unknown, opts?: Parameters<typeof parseWebhook>[1]): WebhookFields {
  const r = parseWebhook(input, opts);
  assert.ok(r.ok, `expected acceptance: ${r.ok ? '' : r.error}`);
  return r.fields;
}

describe('webhook: parseWebhook', () => {
  it('accepts what the real CRM sends (Persian subtype) and returns canonical names, the id in lower case', () => {
    const f = good({ event: 'Insert', id: ID.toUpperCase(), type: 'Identity', subtype: 'مخاطب حقیقی siagh' });
    assert.deepEqual(f, { event: 'Insert', id: ID, type: 'Identity', subtype: 'مخاطب حقیقی siagh' });
  });

  it('matches event and type in any letter case, and accepts Delete', () => {
    assert.deepEqual(good({ event: 'update', id: ID, type: 'QUOTE' }), { event: 'Update', id: ID, type: 'Quote' });
    assert.equal(good({ event: 'DELETE', id: ID, type: 'invoice' }).event, 'Delete');
  });

  it('reads + as a space in a subtype, collapses spaces, keeps the ZWNJ of Persian words, and drops an empty subtype', () => {
    assert.equal(good({ event: 'Insert', id: ID, type: 'Quote', subtype: 'پیش+فاکتور+رسمی  بنیان+گاز ' }).subtype, 'پیش فاکتور رسمی بنیان گاز');
    assert.equal(good({ event: 'Insert', id: ID, type: 'Quote', subtype: 'پیش‌فاکتور (کالا) - ۱۴۰۴' }).subtype, 'پیش‌فاکتور (کالا) - ۱۴۰۴');
    assert.equal('subtype' in good({ event: 'Insert', id: ID, type: 'Quote', subtype: '' }), false);
  });

  it('takes the token off before validation (it is never part of the fields)', () => {
    const f = good({ event: 'Insert', id: ID, type: 'Identity', token: 's3cret-token' });
    assert.equal(JSON.stringify(f).includes('s3cret'), false);
  });

  it('names a missing id, event or type', () => {
    assert.match(bad({ event: 'Insert', type: 'Identity' }).error, /^id is missing/);
    assert.match(bad({ id: ID, type: 'Identity' }).error, /^event is missing/);
    assert.match(bad({ event: 'Insert', id: ID }).error, /^type is missing/);
    assert.match(bad({ event: 'Insert', id: '', type: 'Identity' }).error, /^id is missing/);
    assert.deepEqual(bad({}).problems, ['event is missing', 'id is missing', 'type is missing']);
  });

  it('refuses an id that is not a GUID, an unknown event and an unknown type', () => {
    assert.match(bad({ event: 'Insert', id: '12345', type: 'Identity' }).error, /id "12345" is not a CRM GUID/);
    assert.match(bad({ event: 'Created', id: ID, type: 'Identity' }).error, /event "Created" is not one of Insert, Update, Delete/);
    assert.match(bad({ event: 'Insert', id: ID, type: 'Person' }).error, /type "Person" is not one of Identity, Quote, Invoice/);
  });

  it('refuses repeated query values (arrays) and nested values', () => {
    assert.match(bad({ event: 'Insert', id: [ID, ID2], type: 'Identity' }).error, /id is repeated \(2 values\); send it once/);
    assert.match(bad({ event: ['Insert', 'Update'], id: ID, type: 'Identity' }).error, /event is repeated/);
    assert.match(bad({ event: 'Insert', id: { a: ID }, type: 'Identity' }).error, /id must be a single text value/);
  });

  it('refuses over-long values without repeating them', () => {
    const long = 'ب'.repeat(10_240);
    for (const field of ['subtype', 'event', 'type', 'id'] as const) {
      const r = bad({ event: 'Insert', id: ID, type: 'Identity', [field]: long });
      assert.match(r.error, new RegExp(`^${field} is too long \\(10240 characters; at most ${LIMITS[field]}\\)`));
      assert.ok(r.error.length < 200);
    }
    good({ event: 'Insert', id: ID, type: 'Identity', subtype: 'م'.repeat(LIMITS.subtype) });
  });

  it('refuses markup, control characters and script URLs in a subtype without echoing them', () => {
    for (const v of ['<script>alert(1)</script>', 'مخاطب"><img src=x onerror=alert(1)>', 'javascript:alert(1)', 'a\nb', 'x{{7*7}}', 'a`b`']) {
      const r = bad({ event: 'Insert', id: ID, type: 'Identity', subtype: v });
      assert.match(r.error, /^subtype (contains|looks like)/, v);
      assert.equal(r.error.includes('script>'), false);
      assert.equal(r.error.includes('alert'), false);
    }
    // A script in the id or event is just not a GUID / not an event, and is not repeated either.
    const r = bad({ event: '<script>x</script>', id: '<script>alert(1)</script>', type: 'Identity' });
    assert.equal(r.problems.some((p) => p.includes('<')), false);
    assert.ok(r.problems.some((p) => /^id is not a CRM GUID/.test(p)));
  });

  it('ignores unknown fields (a cache-buster, anything): accepted, kept redacted and clipped in `extra`', () => {
    const r = parseWebhook({ event: 'Insert', id: ID, type: 'Identity', subtype: 'حقیقی', _: '1733140000', source: 'crm' });
    assert.ok(r.ok);
    assert.deepEqual(r.fields, { event: 'Insert', id: ID, type: 'Identity', subtype: 'حقیقی' });
    assert.deepEqual(r.extra, { _: '1733140000', source: 'crm' });
    assert.equal(r.extraCount, 2);
    // Secret-looking names are hidden, long values clipped, markup names not repeated, known secrets hidden.
    const s = parseWebhook(
      { event: 'Insert', id: ID, type: 'Identity', password: 'p4ss', api_key: 'k', note: 'x'.repeat(500), '<svg onload=x>': 1, ref: 'see tk-Secret-77' },
      { secrets: ['tk-Secret-77'] },
    );
    assert.ok(s.ok);
    assert.equal(s.extra!.password, '***');
    assert.equal(s.extra!.api_key, '***');
    assert.ok(s.extra!.note.length <= 40);
    assert.equal(s.extra!['<invalid name>'], '1');
    assert.equal(s.extra!.ref, 'see ***');
    assert.ok(!JSON.stringify(s).includes('<svg'));
    // At most MAX_EXTRA_SHOWN are named; all are counted.
    const many = Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`f${i}`, String(i)]));
    const m = parseWebhook({ event: 'Insert', id: ID, type: 'Identity', ...many });
    assert.ok(m.ok);
    assert.equal(Object.keys(m.extra!).length, MAX_EXTRA_SHOWN);
    assert.equal(m.extraCount, 20);
  });

  it('refuses a request that carries more besides the webhook fields than a CRM webhook could (too-large)', () => {
    const big = bad({ event: 'Insert', id: ID, type: 'Identity', junk: 'x'.repeat(EXTRA_LIMITS.characters + 1) });
    assert.match(big.error, /besides the webhook fields/);
    assert.equal((parseWebhook({ event: 'Insert', id: ID, type: 'Identity', junk: 'x'.repeat(EXTRA_LIMITS.characters + 1) }) as { reason: string }).reason, 'too-large');
    const fields = Object.fromEntries(Array.from({ length: EXTRA_LIMITS.fields + 1 }, (_, i) => [`f${i}`, '1']));
    assert.match(bad({ event: 'Insert', id: ID, type: 'Identity', ...fields }).error, /besides the webhook fields/);
    good({ event: 'Insert', id: ID, type: 'Identity', junk: 'x'.repeat(1000) });
  });

  it('normalises small variations: field-name case, a GUID in braces or upper case, + / %20 / still-encoded subtypes', () => {
    const r = parseWebhook({ EVENT: 'insert', Id: `{${ID.toUpperCase()}}`, TYPE: 'IDENTITY', SubType: 'مخاطب%20حقیقی+siagh' });
    assert.ok(r.ok, r.ok ? '' : r.error);
    assert.deepEqual(r.fields, { event: 'Insert', id: ID, type: 'Identity', subtype: 'مخاطب حقیقی siagh' });
    assert.equal(r.extra, undefined, 'differently cased names are the fields themselves, not extras');
    assert.ok(r.notes!.some((n) => /field name EVENT read as event/.test(n)));
    assert.ok(r.notes!.includes('id in braces'));
    // Percent-encoded twice on the way: decoded once.
    assert.equal(good({ event: 'Insert', id: ID, type: 'Identity', subtype: encodeURIComponent('مخاطب حقوقی') }).subtype, 'مخاطب حقوقی');
    // Braces round a non-GUID are still refused; so is one brace.
    assert.match(bad({ event: 'Insert', id: '{12345}', type: 'Identity' }).error, /not a CRM GUID/);
    assert.match(bad({ event: 'Insert', id: `{${ID}`, type: 'Identity' }).error, /not a CRM GUID/);
    // The same field under two letter cases is a repeated field; TOKEN is the token (never a field).
    assert.match(bad({ event: 'Insert', id: ID, Id: ID2, type: 'Identity' }).error, /id is repeated \(2 values\)/);
    const t = parseWebhook({ event: 'Insert', id: ID, type: 'Identity', TOKEN: 'abc' });
    assert.ok(t.ok && t.extra === undefined);
  });

  it('gives each refusal a stable reason code', () => {
    const reason = (input: unknown, opts?: Parameters<typeof parseWebhook>[1]) => (parseWebhook(input, opts) as { reason?: string }).reason;
    assert.equal(reason('x'), 'not-an-object');
    assert.equal(reason({ event: 'Insert', type: 'Identity' }), 'missing-field');
    assert.equal(reason({ event: 'Insert', id: [ID, ID], type: 'Identity' }), 'repeated-field');
    assert.equal(reason({ event: 'Insert', id: { a: 1 }, type: 'Identity' }), 'nested-value');
    assert.equal(reason({ event: 'Insert', id: 'x'.repeat(100), type: 'Identity' }), 'too-large');
    assert.equal(reason({ event: 'Insert', id: '12345', type: 'Identity' }), 'invalid-id');
    assert.equal(reason({ event: 'Boom', id: ID, type: 'Identity' }), 'invalid-event');
    assert.equal(reason({ event: 'Insert', id: ID, type: 'Banana' }), 'invalid-type');
    assert.equal(reason({ event: 'Insert', id: ID, type: 'Identity', subtype: '<b>' }), 'invalid-subtype');
    assert.equal(reason({ event: 'Insert', id: ID, type: 'Quote' }, { expect: 'Identity' }), 'wrong-endpoint');
    assert.equal(reasonOf('something else'), 'invalid');
  });

  it('carriesNoWebhookFields: a probe carries none of event, id, type, subtype (a token or a cache-buster may be there)', () => {
    assert.equal(carriesNoWebhookFields(undefined), true);
    assert.equal(carriesNoWebhookFields({}), true);
    assert.equal(carriesNoWebhookFields({ token: 'x', _: '1' }), true);
    assert.equal(carriesNoWebhookFields({ ID: ID }), false);
    assert.equal(carriesNoWebhookFields({ subtype: '' }), false);
    assert.equal(carriesNoWebhookFields('text'), false);
    assert.deepEqual(tokenValues({ Token: 'a', token: 'b', other: 'c' }), ['a', 'b']);
  });

  it('refuses anything but an object (a text or array body)', () => {
    assert.match(bad('event=Insert').error, /JSON object body \(got text\)/);
    assert.match(bad([{ id: ID }]).error, /got an array/);
    assert.match(bad(undefined).error, /got nothing/);
  });

  it('with an expected type: refuses other types, and takes a missing type as the expected one', () => {
    assert.match(bad({ event: 'Insert', id: ID, type: 'Quote' }, { expect: 'Identity' }).error, /type "Quote" was sent to an endpoint that accepts Identity only/);
    assert.equal(good({ event: 'Insert', id: ID }, { expect: 'Invoice' }).type, 'Invoice');
    assert.equal(good({ event: 'Insert', id: ID, type: 'quote' }, { expect: 'any' }).type, 'Quote');
  });

  it('lists every problem, the first one as the error', () => {
    const r = bad({ event: 'Nope', id: 'x', type: 'Banana' });
    assert.equal(r.problems.length, 3);
    assert.equal(r.error, r.problems[0]);
  });
});

describe('webhook: token', () => {
  it('resolveToken: the credential, else the variable it names, else the token env variable (default WEBHOOK_TOKEN); fails closed', () => {
    const env = { WEBHOOK_TOKEN: ' env-tok ', OTHER: 'other-tok', EMPTY: '' };
    assert.deepEqual(resolveToken('literal-tok', undefined, env), { token: 'literal-tok', from: 'credential' });
    // A credentials file without the token (a flow loaded from a file): the environment still counts.
    assert.deepEqual(resolveToken(undefined, undefined, env), { token: 'env-tok', from: 'env:WEBHOOK_TOKEN' });
    assert.deepEqual(resolveToken('', 'WEBHOOK_TOKEN', env), { token: 'env-tok', from: 'env:WEBHOOK_TOKEN' });
    assert.deepEqual(resolveToken('${OTHER}', 'WEBHOOK_TOKEN', env), { token: 'other-tok', from: 'env:OTHER' });
    assert.deepEqual(resolveToken('${UNSET}', 'WEBHOOK_TOKEN', env), { token: 'env-tok', from: 'env:WEBHOOK_TOKEN' });
    assert.deepEqual(resolveToken('', 'OTHER', env), { token: 'other-tok', from: 'env:OTHER' });
    assert.deepEqual(resolveToken('${UNSET}', 'EMPTY', env), { from: 'none', unresolved: 'UNSET' });
    assert.deepEqual(resolveToken('', '', env), { from: 'none' }, 'an empty env setting: the credential only');
    assert.deepEqual(resolveToken('', 'not a name', env), { from: 'none' });
    assert.deepEqual(resolveToken(undefined, undefined, {}), { from: 'none' });
  });

  it('webhooksDisabled: only an explicit false switches webhooks off', () => {
    for (const v of ['false', 'FALSE', ' 0', 'no', 'off']) assert.equal(webhooksDisabled(v), true, v);
    for (const v of [undefined, '', 'true', '1', 'yes', 'nope']) assert.equal(webhooksDisabled(v), false, String(v));
  });

  it('describeEndpoint: the fields and an example URL, the token named only as a placeholder', () => {
    const d = describeEndpoint('/webhook/crm/identity', 'Identity', true) as { probe: boolean; example: string; fields: Record<string, string> };
    assert.equal(d.probe, true);
    assert.match(d.example, /^\/webhook\/crm\/identity\?event=Insert&id=[0-9a-f-]{36}&type=Identity&subtype=.+&token=<WEBHOOK_TOKEN>$/);
    assert.equal(d.fields.token, 'required');
    const open = describeEndpoint('/x', 'any', false) as { example: string; fields: Record<string, string> };
    assert.ok(!open.example.includes('token'));
    assert.equal(open.fields.token, undefined);
  });

  it('tokenMatches: equal strings only, whatever the lengths', () => {
    assert.equal(tokenMatches('abc-123', 'abc-123'), true);
    assert.equal(tokenMatches('abc-124', 'abc-123'), false);
    assert.equal(tokenMatches('abc', 'abc-123'), false);
    assert.equal(tokenMatches('abc-123-and-much-longer', 'abc-123'), false);
    assert.equal(tokenMatches('', 'abc'), false);
    assert.equal(tokenMatches(['abc'], 'abc'), false);
    assert.equal(tokenMatches(undefined, 'abc'), false);
    assert.equal(tokenMatches('abc', ''), false);
    assert.equal(tokenMatches('توکن', 'توکن'), true);
  });

  it('checkToken: not required / ok / missing / wrong; one matching candidate is enough', () => {
    assert.equal(checkToken(['x'], undefined), 'not-required');
    assert.equal(checkToken([undefined, undefined], 'k3y'), 'missing');
    assert.equal(checkToken(['', null], 'k3y'), 'missing');
    assert.equal(checkToken(['nope'], 'k3y'), 'wrong');
    assert.equal(checkToken([['k3y', 'k3y']], 'k3y'), 'wrong');
    assert.equal(checkToken([undefined, 'k3y'], 'k3y'), 'ok');
    assert.equal(checkToken(['nope', 'k3y'], 'k3y'), 'ok');
  });

  it('redactTokenParam: every token= value in a URL becomes ***', () => {
    assert.equal(redactTokenParam('/webhook/crm/identity?event=Insert&token=abc%20def&id=1'), '/webhook/crm/identity?event=Insert&token=***&id=1');
    assert.equal(redactTokenParam('/x?token=a&TOKEN=b#frag'), '/x?token=***&TOKEN=***#frag');
    assert.equal(redactTokenParam('/x?mytoken=a'), '/x?mytoken=a');
  });
});

describe('webhook: merging events of one record', () => {
  it('mergeEvent: Insert beats Update, a Delete that comes last wins', () => {
    assert.equal(mergeEvent('Update', 'Update'), 'Update');
    assert.equal(mergeEvent('Insert', 'Update'), 'Insert');
    assert.equal(mergeEvent('Update', 'Insert'), 'Insert');
    assert.equal(mergeEvent('Insert', 'Delete'), 'Delete');
    assert.equal(mergeEvent('Delete', 'Update'), 'Update');
  });
});
