/**
 * The one scrubbing module: known secrets hidden whole, texts clipped, and the secrets a running
 * Node-RED knows (credentials, their MD5, what a ${NAME} names, secret-named env variables).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { clip, hideSecrets, KnownSecrets, secretsOf } from '../../../lib/oplog/scrub';

describe('oplog: known secrets', () => {
  it('hideSecrets hides a secret that contains another whole; short ones (under 3) stay; clip ends in …', () => {
    assert.equal(hideSecrets('user pw is abcdef, pin ab', ['abc', 'abcdef', 'ab', undefined]), 'user pw is ***, pin ab');
    assert.equal(clip('abcdef', 4), 'abc…');
    assert.equal(clip('abcd', 4), 'abcd');
  });

  it('secretsOf: credential fields named like secrets, what a ${NAME} names, their MD5, and secret-named env variables', () => {
    const md5 = (s: string) => createHash('md5').update(s, 'utf8').digest('hex');
    const env = { CRM_PASSWORD: 'env-pass-123', SHORT_TOKEN: 'abc', HOME: '/root/not-secret' };
    const list = secretsOf([{ username: 'admin-user', password: 'siagh-pw' }, { token: '${CRM_PASSWORD}' }, { apiKey: 'no' }], env);
    for (const s of ['siagh-pw', md5('siagh-pw'), md5('siagh-pw').toUpperCase(), '${CRM_PASSWORD}', 'env-pass-123', md5('env-pass-123')]) assert.ok(list.includes(s), s);
    for (const s of ['admin-user', 'no', 'abc', '/root/not-secret']) assert.ok(!list.includes(s), s);
  });

  it('KnownSecrets: cached for its time; a reader that throws keeps what it collected', () => {
    let reads = 0;
    const known = new KnownSecrets((collect) => {
      reads++;
      collect({ password: `pass-${reads}` });
      throw new Error('between flows');
    }, 60_000);
    assert.ok(known.list().includes('pass-1'));
    assert.ok(known.list().includes('pass-1'));
    assert.equal(reads, 1);
  });
});
