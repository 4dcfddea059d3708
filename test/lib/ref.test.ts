/**
 * The record reference (lib/ref.ts): the one GUID rule, the entity and kind names, and the one
 * reader's order, on every message shape the shipped flows produce.
 */
import assert from 'node:assert/strict';
import { customerIdOf, entityOf, guidOf, isGuid, kindOf, mappingTypeOf, refOf, replaceGuids, requireCrmId } from '../../lib/ref';
import { isSyncError } from '../../lib/errors';

const ID = '3f2a1b4c-5d6e-4f70-8a9b-0c1d2e3f4a5b';
const OTHER = '880d8361-1a2b-4c3d-8e4f-5a6b7c8d9e0f';

describe('ref: the GUID rule', () => {
  it('a GUID in any letter case, blanks around ignored; kept trimmed and lower case', () => {
    assert.equal(isGuid(ID), true);
    assert.equal(isGuid(` ${ID.toUpperCase()}\n`), true);
    assert.equal(guidOf(` ${ID.toUpperCase()} `), ID);
    for (const bad of ['', 'not-a-guid', ID.slice(1), `${ID}0`, `{${ID}}`, ID.replace(/-/g, ''), 12345, null, undefined, [ID], { id: ID }]) {
      assert.equal(isGuid(bad), false, JSON.stringify(bad));
      assert.equal(guidOf(bad), undefined, JSON.stringify(bad));
    }
  });

  it('replaceGuids masks every GUID in a text, any case', () => {
    assert.equal(replaceGuids(`CRM ${ID} and ${OTHER.toUpperCase()} failed`, '<id>'), 'CRM <id> and <id> failed');
    assert.equal(replaceGuids('no ids here', '<id>'), 'no ids here');
  });
});

describe('ref: entity and kind', () => {
  it('entityOf: Identity, identity, person, organization and contact are identities; quote and invoice in any case', () => {
    for (const v of ['Identity', 'identity', 'person', 'ORGANIZATION', ' contact ']) assert.equal(entityOf(v), 'identity', v);
    assert.equal(entityOf('Quote'), 'quote');
    assert.equal(entityOf('invoice'), 'invoice');
    for (const v of ['Opportunity', '', 7, undefined]) assert.equal(entityOf(v), undefined, String(v));
  });

  it('kindOf reads person / organization and the CRM subtype (حقیقی / حقوقی, Arabic letters, + for spaces)', () => {
    assert.equal(kindOf('person'), 'person');
    assert.equal(kindOf(' Organization '), 'organization');
    assert.equal(kindOf('مخاطب حقیقی siagh'), 'person');
    assert.equal(kindOf('مخاطب+حقوقی'), 'organization');
    assert.equal(kindOf('مخاطب حقيقي'), 'person');
    assert.equal(kindOf('حقیقی و حقوقی'), undefined);
    assert.equal(kindOf('پیش فاکتور'), undefined);
    assert.equal(kindOf(''), undefined);
    assert.equal(kindOf(undefined), undefined);
  });

  it('an identity is a contact in the mapping file; quotes and invoices keep their name', () => {
    assert.equal(mappingTypeOf('identity'), 'contact');
    assert.equal(mappingTypeOf('quote'), 'quote');
    assert.equal(mappingTypeOf('invoice'), 'invoice');
    assert.equal(entityOf(mappingTypeOf('identity')), 'identity');
  });
});

describe('ref: the reader', () => {
  it('a webhook event (payload or http-in query), as crm-webhook and sync-queue send it', () => {
    assert.deepEqual(refOf({ payload: { event: 'Update', id: ID, type: 'Identity', subtype: 'مخاطب حقیقی' } }), { raw: ID, crmId: ID, entity: 'identity', kind: 'person' });
    assert.deepEqual(refOf({ payload: {}, query: { event: 'Insert', id: ID.toUpperCase(), type: 'Invoice' } }), { raw: ID.toUpperCase(), crmId: ID, entity: 'invoice' });
    // A repeated query field: its first value.
    assert.equal(refOf({ payload: {}, query: { id: [ID, OTHER], type: ['Quote'] } }).crmId, ID);
  });

  it('crm-poll: {id, type, kind} with its trace', () => {
    const r = refOf({ payload: { id: ID, type: 'Identity', kind: 'organization', modifyDate: '2025-01-01' }, trace: { crmId: ID, entity: 'organization' } });
    assert.deepEqual(r, { raw: ID, crmId: ID, entity: 'identity', kind: 'organization' });
  });

  it('a CRM record from crm-fetch: its crmId (a quote names its customer in identityId, which is not the record)', () => {
    assert.deepEqual(refOf({ payload: { crmId: ID, kind: 'person', customerNumber: '100-1012' } }), { raw: ID, crmId: ID, entity: 'identity', kind: 'person' });
    const quote = { crmId: ID, docKind: 'quote', identityId: OTHER, details: [] };
    assert.deepEqual(refOf({ payload: quote, trace: { crmId: ID, entity: 'quote' } }), { raw: ID, crmId: ID, entity: 'quote' });
    assert.equal(customerIdOf(quote), OTHER);
    assert.equal(customerIdOf({ identityId: 'nope' }), undefined);
    assert.equal(customerIdOf('x'), undefined);
  });

  it('an identity/search row: identityId is the record; the trace says identity', () => {
    assert.deepEqual(refOf({ payload: { identityId: ID, nickName: 'x', customerNo: null }, trace: { crmId: ID, entity: 'identity' } }), { raw: ID, crmId: ID, entity: 'identity' });
  });

  it('sync-mapping store: msg.mappingUpdate names the record siagh-upsert wrote, before the payload', () => {
    const r = refOf({ update: { entityType: 'contact', crmId: ID, siaghCode: '8301' }, payload: { crmId: ID.toUpperCase(), kind: 'person' } });
    assert.equal(r.crmId, ID);
    assert.equal(r.raw, ID);
  });

  it('a Catch message whose payload says nothing: the trace; the id as text: the payload', () => {
    assert.deepEqual(refOf({ payload: {}, trace: { crmId: ID, entity: 'quote' } }), { raw: ID, crmId: ID, entity: 'quote' });
    assert.deepEqual(refOf({ payload: ` ${ID} ` }), { raw: ` ${ID} `, crmId: ID });
  });

  it('the first id found decides: a wrong one is not silently replaced by another record', () => {
    const r = refOf({ payload: { id: 'not-a-guid' }, trace: { crmId: OTHER } });
    assert.equal(r.raw, 'not-a-guid');
    assert.equal(r.crmId, undefined);
    // Empty values are not there at all.
    assert.equal(refOf({ payload: { crmId: '', id: null }, query: { id: ID } }).crmId, ID);
    assert.deepEqual(refOf({}), {});
    assert.deepEqual(refOf({ payload: [ID] }), {});
  });

  it('the payload names the entity before the trace; an unknown type is passed over', () => {
    assert.equal(refOf({ payload: { id: ID, type: 'Quote' }, trace: { entity: 'person' } }).entity, 'quote');
    assert.equal(refOf({ payload: { id: ID, type: 'Opportunity' } }).entity, undefined);
    assert.equal(refOf({ payload: { crmId: ID, entityType: 'contact' } }).entity, 'identity');
    assert.equal(refOf({ payload: { id: ID, type: 'Identity', entity: 'organization' } }).kind, 'organization');
  });

  it('requireCrmId: the GUID, or BAD_INPUT saying whether the id is missing or malformed', () => {
    assert.equal(requireCrmId(refOf({ payload: { id: ID } }), 'where'), ID);
    assert.throws(() => requireCrmId(refOf({ payload: {} }), 'Put it in msg.payload.id.'), (e: unknown) => isSyncError(e) && e.code === 'BAD_INPUT' && /No CRM id in the message\. Put it in msg\.payload\.id\./.test(e.message));
    assert.throws(() => requireCrmId(refOf({ payload: { id: "1' OR '1'='1" } }), 'x'), (e: unknown) => isSyncError(e) && e.code === 'BAD_INPUT' && /is not a GUID/.test(e.message));
  });
});
