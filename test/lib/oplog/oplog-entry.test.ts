/**
 * What a message becomes in the sync log: the line's fields from the trace and a Catch node's
 * error, the replay event of a failure, and the scrubbing that keeps secrets out.
 */
import assert from 'node:assert/strict';
import { describeOperation, eventTypeOf, failureKey } from '../../../lib/oplog/entry';
import { hideCredentialPatterns, scrubText } from '../../../lib/oplog/scrub';

const ID = '3f2a1b4c-5d6e-4f70-8a9b-0c1d2e3f4a5b';

describe('oplog: scrubbing', () => {
  it('hides token=, password=, key: value, JSON secrets, Bearer and URL user info', () => {
    const cases: Array<[string, string[]]> = [
      ['GET /webhook/crm/identity?id=1&token=abc&x=2', ['abc']],
      ['login failed: password=hunter2x; retry', ['hunter2x']],
      ['Password: s3cr3t-value was refused', ['s3cr3t-value']],
      ['body {"UserName":"u","Password":"p@ss\\"word"}', ['p@ss']],
      ['Authorization: Bearer eyJhbGciOi.abc.def', ['eyJhbGciOi']],
      ['fetch https://admin:topsecret@crm.example/api failed', ['topsecret']],
      ['cookie ASP.NET_SessionId=qwe123rty; path=/', ['qwe123rty']],
      ['{"access_token":"tok-998877","expires_in":3600}', ['tok-998877']],
    ];
    for (const [text, hidden] of cases) {
      const out = hideCredentialPatterns(text);
      for (const h of hidden) assert.ok(!out.includes(h), `${h} hidden in ${out}`);
      assert.match(out, /\*\*\*/);
    }
    // prose stays readable
    assert.equal(hideCredentialPatterns('Siagh session expired; logged in again'), 'Siagh session expired; logged in again');
    assert.equal(hideCredentialPatterns('The CRM record was not found (HTTP 404).'), 'The CRM record was not found (HTTP 404).');
  });

  it('hides known secrets anywhere, flattens newlines and clips', () => {
    const out = scrubText('line1\nthe pass is crm-secret-pass\r\nend', ['crm-secret-pass']);
    assert.equal(out, 'line1 the pass is *** end');
    assert.equal(scrubText('x'.repeat(500)).length, 300);
  });
});

describe('oplog: describeOperation', () => {
  it('keeps the fields a webhook carried besides its own (msg.sync.extraFields), scrubbed and bounded', () => {
    const extra: Record<string, string> = { _: '1733140000', ref: 'see s3cret-tok here' };
    for (let i = 0; i < 10; i++) extra[`f${i}`] = String(i);
    const op = describeOperation({ trace: { traceId: 't1', trigger: 'webhook', entity: 'identity', crmId: ID, extraFields: extra }, secrets: ['s3cret-tok'] });
    assert.equal(op.line.extraFields?._, '1733140000');
    assert.ok(!JSON.stringify(op.line).includes('s3cret-tok'));
    assert.equal(Object.keys(op.line.extraFields!).length, 8);
    assert.equal('extraFields' in describeOperation({ trace: { traceId: 't2', crmId: ID } }).line, false);
  });

  it('an ok message: trace fields, action, duration, no error, the key of its record; of the record only its name (for the console)', () => {
    const now = Date.parse('2026-01-05T10:00:00Z');
    const op = describeOperation({
      trace: { traceId: 'ab12cd34', trigger: 'webhook', event: 'Update', entity: 'person', crmId: ID.toUpperCase(), siaghCode: '1204', customerNumber: '100-2204', action: 'updated', attempts: 1, durationMs: 10, startedAt: now - 250, warnings: ['w'] },
      payload: { crmId: ID, kind: 'person', nickName: 'Parsa Co', email: 'x@example.ir' },
      now,
    });
    assert.deepEqual(JSON.parse(JSON.stringify(op.line)), {
      time: '2026-01-05T10:00:00.000Z',
      trigger: 'webhook',
      entity: 'person',
      crmId: ID,
      name: 'Parsa Co',
      siaghCode: '1204',
      customerNumber: '100-2204',
      event: 'Update',
      action: 'updated',
      status: 'ok',
      durationMs: 250,
      attempts: 1,
      traceId: 'ab12cd34',
    });
    assert.equal(op.key, `identity:${ID}`);
    assert.equal(op.event, undefined);
  });

  it('a Catch message before crm-fetch: failed, code and message from msg.error, the webhook event to replay', () => {
    const op = describeOperation({
      trace: { traceId: 't1', action: 'failed', error: { code: 'CRM_NOT_FOUND', message: 'old' }, attempts: 0, durationMs: 40, startedAt: 0, warnings: [] },
      error: { message: 'SyncError: The CRM has no identity 3f2a… (HTTP 404).', code: 'CRM_NOT_FOUND', source: { id: 'n1', type: 'crm-fetch', name: '' } },
      payload: { event: 'Insert', id: ID, type: 'Identity', subtype: 'مخاطب حقیقی siagh' },
      fromHttp: true,
    });
    assert.equal(op.line.status, 'failed');
    assert.equal(op.line.trigger, 'webhook', 'an http-in message without a trace trigger');
    assert.equal(op.line.action, 'failed');
    assert.equal(op.line.step, 'crm-fetch');
    assert.deepEqual(op.line.error, { code: 'CRM_NOT_FOUND', message: 'The CRM has no identity 3f2a… (HTTP 404).' });
    assert.equal(op.line.entity, 'identity');
    assert.deepEqual(op.event, { type: 'Identity', id: ID, event: 'Insert', subtype: 'مخاطب حقیقی siagh' });
    assert.equal(op.key, `identity:${ID}`);
  });

  it('a failure from a core node (no code, only msg.error) and the default trigger', () => {
    const op = describeOperation({ trace: { traceId: 't', entity: 'quote', crmId: ID }, error: { message: 'Error: boom' }, defaultTrigger: 'poll' });
    assert.equal(op.line.trigger, 'poll');
    assert.deepEqual(op.line.error, { code: 'ERROR', message: 'boom' });
    assert.deepEqual(op.event, { type: 'Quote', id: ID, event: 'Update' });
    assert.equal(op.key, `quote:${ID}`);
  });

  it('no id: logged, nothing to replay; the event type names', () => {
    const op = describeOperation({ trace: { traceId: 't', trigger: 'import', entity: 'contact', action: 'failed', error: { code: 'SIAGH_LOGIN_FAILED', message: 'login' } } });
    assert.equal(op.line.status, 'failed');
    assert.equal(op.key, undefined);
    assert.equal(op.event, undefined);
    assert.equal(eventTypeOf('organization'), 'Identity');
    assert.equal(eventTypeOf('Invoice'), 'Invoice');
    assert.equal(eventTypeOf('order'), undefined);
    assert.equal(failureKey('Invoice', ID.toUpperCase()), `invoice:${ID}`);
  });

  it('copies nothing but trace fields and the scrubbed error text', () => {
    const op = describeOperation({
      trace: { traceId: 't', crmId: ID, entity: 'person', action: 'failed', siaghCode: 'token=zzz999', error: { code: 'X', message: 'm' }, secretField: 'never-copied-1' },
      error: { message: 'Request to http://crm/api?token=abc failed: password=hunter2x (crm-secret-pass)', code: 'HTTP_5XX', stack: 'never-copied-2' },
      payload: { crmId: ID, password: 'never-copied-3' },
      secrets: ['crm-secret-pass'],
    });
    const text = JSON.stringify(op);
    for (const s of ['zzz999', 'token=abc', 'hunter2x', 'crm-secret-pass', 'never-copied-1', 'never-copied-2', 'never-copied-3']) assert.ok(!text.includes(s), `${s} in ${text}`);
  });
});
