/** `${NAME}` references in settings: the whole-value form, and expansion inside a path. */
import assert from 'node:assert/strict';
import { envRefName, expandEnv, resolveEnv } from '../../lib/env';
import { SyncError } from '../../lib/errors';

describe('env references', () => {
  const env = { CRM_USER: 'crm-admin', EMPTY: '', DATA: '/srv/sync' };

  it('envRefName: NAME of a whole ${NAME} or $(NAME), blanks around allowed; anything else is no reference', () => {
    assert.equal(envRefName('${CRM_USER}'), 'CRM_USER');
    assert.equal(envRefName(' $(CRM_USER) '), 'CRM_USER');
    for (const v of ['plain', 'x${CRM_USER}', '${1BAD}', '${A B}', '', undefined, 12]) assert.equal(envRefName(v), undefined, String(v));
  });

  it('resolveEnv: a reference gives the value (empty when unset), other text stays as it is, non-text is empty', () => {
    assert.equal(resolveEnv('${CRM_USER}', env), 'crm-admin');
    assert.equal(resolveEnv('${UNSET}', env), '');
    assert.equal(resolveEnv(' literal ', env), ' literal ');
    assert.equal(resolveEnv(undefined, env), '');
  });

  it('expandEnv: every ${NAME} in a path replaced; an unset or empty one is a CONFIG error naming it', () => {
    assert.equal(expandEnv('${DATA}/maps/${CRM_USER}.json', 'mapping file path', env), '/srv/sync/maps/crm-admin.json');
    for (const name of ['UNSET', 'EMPTY']) {
      assert.throws(
        () => expandEnv(`\${${name}}/x`, 'data folder', env),
        (e: unknown) => e instanceof SyncError && e.code === 'CONFIG' && e.message === `The data folder uses \${${name}}, but that environment variable is not set.`,
      );
    }
  });
});
