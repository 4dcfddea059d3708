import assert from 'node:assert/strict';
import { SyncError } from '../../../lib/errors';
import { kindFromRecord, parseCrmDateTime, parseIdentity, parseIdentitySearch, parseLoginReply, parseQuote, parseWriteReply } from '../../../lib/crm/schemas';

function badReply(fn: () => unknown, field: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof SyncError);
    assert.equal(e.code, 'BAD_REPLY');
    assert.match(e.message, new RegExp(`"${field.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}"`));
    return true;
  });
}

describe('crm schemas', () => {
  describe('parseCrmDateTime', () => {
    it('reads the CRM expiresAt with 7 fractional digits and a +03:30 offset', () => {
      assert.equal(parseCrmDateTime('2025-12-16T11:43:53.1385332+03:30'), Date.UTC(2025, 11, 16, 8, 13, 53, 138));
    });
    it('reads Z, negative offsets, offsets without colon, no fraction and short fractions', () => {
      assert.equal(parseCrmDateTime('2025-12-16T08:13:53Z'), Date.UTC(2025, 11, 16, 8, 13, 53));
      assert.equal(parseCrmDateTime('2025-12-16T03:13:53.5-05:00'), Date.UTC(2025, 11, 16, 8, 13, 53, 500));
      assert.equal(parseCrmDateTime('2025-12-16T11:43:53.1+0330'), Date.UTC(2025, 11, 16, 8, 13, 53, 100));
    });
    it('reads a date without offset as local time, as Date does', () => {
      assert.equal(parseCrmDateTime('2025-12-21T14:06:17.173'), new Date(2025, 11, 21, 14, 6, 17, 173).getTime());
    });
    it('rejects what is not a date-time', () => {
      assert.equal(parseCrmDateTime(''), undefined);
      assert.equal(parseCrmDateTime('tomorrow'), undefined);
      assert.equal(parseCrmDateTime('2025-13-01T00:00:00Z'), undefined);
    });
  });

  it('login reply: token and parsed expiry; missing fields are BAD_REPLY naming the field', () => {
    const r = parseLoginReply({ expiresAt: '2025-12-16T11:43:53.1385332+03:30', accessToken: 'a.b.c', refreshToken: 'r', extra: 1 });
    assert.equal(r.accessToken, 'a.b.c');
    assert.equal(r.expiresAtMs, Date.UTC(2025, 11, 16, 8, 13, 53, 138));
    assert.equal(r.refreshToken, 'r');
    badReply(() => parseLoginReply({ expiresAt: '2025-12-16T11:43:53+03:30' }), 'accessToken');
    badReply(() => parseLoginReply({ accessToken: 'x', expiresAt: 'soon' }), 'expiresAt');
    badReply(() => parseLoginReply(undefined), '(the whole reply)');
  });

  it('identity search rows: nullable names, id required', () => {
    const rows = parseIdentitySearch([{ identityId: 'a', nickName: 'x', customerNo: '' }, { identityId: 'b' }]);
    assert.deepEqual(rows[1], { identityId: 'b', nickName: null, customerNo: null });
    badReply(() => parseIdentitySearch([{ nickName: 'x' }]), '0.identityId');
    badReply(() => parseIdentitySearch({ data: [] }), '(the whole reply)');
  });

  it('identity get: crmId required, everything else optional, kind set by the caller', () => {
    const p = parseIdentity({ crmId: 'id1', nickName: null, phoneContacts: null, unknownField: 5 }, 'organization');
    assert.equal(p.kind, 'organization');
    assert.equal(p.unknownField, 5);
    badReply(() => parseIdentity({ nickName: 'x' }, 'person'), 'crmId');
    badReply(() => parseIdentity({ crmId: 'x', phoneContacts: 'no' }, 'person'), 'phoneContacts');
  });

  it('kindFromRecord reads identityTypeName first, then crmObjectTypeCode', () => {
    assert.equal(kindFromRecord({ identityTypeName: 'حقوقی', crmObjectTypeCode: 'person' }), 'organization');
    assert.equal(kindFromRecord({ identityTypeName: 'حقیقی' }), 'person');
    assert.equal(kindFromRecord({ crmObjectTypeCode: 'Organization' }), 'organization');
    assert.equal(kindFromRecord({ crmObjectTypeCode: 'custom_type' }), undefined);
    assert.equal(kindFromRecord({}), undefined);
  });

  it('write reply needs crmId', () => {
    assert.equal(parseWriteReply({ crmId: 'abc' }, 'person/create'), 'abc');
    badReply(() => parseWriteReply({ id: 'abc' }, 'person/create'), 'crmId');
  });

  it('quote: identityId required, details default to []', () => {
    const q = parseQuote({ crmId: 'q', identityId: 'i', details: null }, 'invoice');
    assert.equal(q.docKind, 'invoice');
    assert.deepEqual(q.details, []);
    assert.deepEqual(parseQuote({ crmId: 'q', identityId: 'i' }, 'quote').details, []);
    badReply(() => parseQuote({ crmId: 'q' }, 'quote'), 'identityId');
    badReply(() => parseQuote({ crmId: 'q', identityId: 'i', details: [{ count: 'one' }] }, 'quote'), 'details.0.count');
  });
});
