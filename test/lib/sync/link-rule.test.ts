/**
 * lib/sync/link-rule.ts: when an unmapped CRM identity may be linked to a Siagh contact found by
 * mobile or national code. One table of real Persian name variants; each row says what the rule
 * must answer and why.
 */
import assert from 'node:assert/strict';
import { partyNameTokens, samePartyVerdict } from '../../../lib/sync/link-rule';
import type { IdentityKind } from '../../../lib/types';

type Row = [note: string, crmKind: IdentityKind, crmName: string | null, siaghKind: IdentityKind | null, siaghName: string | null, ok: boolean];

const P: IdentityKind = 'person';
const O: IdentityKind = 'organization';

const TABLE: Row[] = [
  // the case of issue #10: an organization sharing a mobile with a person
  ['company vs the person who owns its mobile', O, 'شرکت کریمی تجارت', P, 'رضا کریمی', false],
  ['company vs the same company with Arabic ي/ك, without شرکت', O, 'شرکت کریمی تجارت', O, 'كريمي تجارت', true],
  ['company named like a person, both organizations, still different names', O, 'کریمی تجارت', O, 'رضا کریمی', false],
  ['person vs the same person, Arabic ي/ك, with آقای', P, 'آقای رضا کریمی', P, 'رضا كريمي', true],
  ['person with خانم vs the same person', P, 'خانم مریم احمدی', P, 'مريم احمدي', true],
  ['person vs organization with identical names: the kind decides', P, 'رضا کریمی', O, 'رضا کریمی', false],
  ['ZWNJ vs space', P, 'علی‌رضا کریمی', P, 'علی رضا کریمی', true],
  ['ZWNJ vs no separator at all', P, 'علی‌رضا کریمی', P, 'علیرضا کریمی', true],
  ['double spaces and tatweel', P, 'رضا   كـريمي', P, 'رضا کریمی', true],
  ['diacritics', P, 'رِضا کَریمی', P, 'رضا کریمی', true],
  ['Persian vs ASCII digits', O, 'شرکت پارس ۱۲۳', O, 'پارس 123', true],
  ['Arabic-Indic vs Persian digits', O, 'فروشگاه ١٢٣', O, 'فروشگاه ۱۲۳', true],
  ['different digits', O, 'فروشگاه ۱۲۳', O, 'فروشگاه ۱۲۴', false],
  ['سهامی خاص in parentheses vs bare name', O, 'شرکت آرمان صنعت (سهامی خاص)', O, 'آرمان صنعت', true],
  ['سهامی‌خاص with ZWNJ vs س.خ', O, 'آرمان صنعت سهامی‌خاص', O, 'شرکت آرمان صنعت س.خ', true],
  ['با مسئولیت محدود', O, 'شرکت نوآوران با مسئولیت محدود', O, 'نوآوران', true],
  ['موسسه vs مؤسسه', O, 'موسسه خیریه امید', O, 'مؤسسه خیریه امید', true],
  ['one name contained in the other (extra word)', O, 'بازرگانی کریمی تجارت', O, 'شرکت کریمی تجارت', true],
  ['person with a middle name (token subset)', P, 'رضا کریمی', P, 'محمد رضا کریمی', true],
  ['two different companies sharing a word', O, 'آرمان صنعت', O, 'آرمان تجارت', false],
  ['different persons with the same family name', P, 'رضا کریمی', P, 'سارا کریمی', false],
  ['Siagh side without a kind: names decide (agree)', P, 'رضا کریمی', null, 'رضا كريمي', true],
  ['Siagh side without a kind: names decide (differ)', O, 'شرکت کریمی تجارت', null, 'رضا کریمی', false],
  ['a Siagh contact without a name is never linked on its own', P, 'رضا کریمی', P, null, false],
  ['a name that is only a title is no name', O, 'شرکت', O, 'شرکت', false],
  ['English legal forms', O, 'Karimi Trading Co. Ltd', O, 'karimi trading', true],
  ['Arabic ة / ۀ', O, 'مؤسسة امید', O, 'موسسه امید', true],
];

describe('link rule: samePartyVerdict (Persian name variants)', () => {
  for (const [note, ck, cn, sk, sn, ok] of TABLE) {
    it(`${ok ? 'links' : 'review'}: ${note} — "${cn}" / "${sn}"`, () => {
      const v = samePartyVerdict({ kind: ck, name: cn }, { kind: sk, name: sn });
      assert.equal(v.ok, ok, v.reason);
      assert.ok(v.reason.length > 0);
      // the rule is symmetric in the names
      const back = samePartyVerdict({ kind: sk, name: sn }, { kind: ck, name: cn });
      assert.equal(back.ok, ok, `reversed: ${back.reason}`);
    });
  }

  it('the reason names the kinds or the normalised names', () => {
    assert.match(samePartyVerdict({ kind: O, name: 'شرکت کریمی تجارت' }, { kind: P, name: 'رضا کریمی' }).reason, /organization.*person/);
    assert.match(samePartyVerdict({ kind: O, name: 'آرمان صنعت' }, { kind: O, name: 'آرمان تجارت' }).reason, /آرمان صنعت.*آرمان تجارت/);
  });

  it('partyNameTokens folds letters, digits, marks and drops titles and legal forms', () => {
    assert.deepEqual(partyNameTokens('شرکت  كريمي‌تجارت (سهامی خاص)'), ['کریمی', 'تجارت']);
    assert.deepEqual(partyNameTokens('آقای دکتر رضا کریمی'), ['رضا', 'کریمی']);
    assert.deepEqual(partyNameTokens('پارس ۱۲۳'), ['پارس', '123']);
    assert.deepEqual(partyNameTokens(null), []);
  });
});
