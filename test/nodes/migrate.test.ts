/**
 * Settings migrations (nodes/shared/migrate.ts): the engine on its own, the table of every node type
 * (sound, matching the .html defaults), the real steps (settings as older releases saved them), and
 * every shipped flow and example saved at the current version.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { applyStep, checkMigrations, MIGRATED_TYPES, migrateSettings, MIGRATIONS, migrationsSettingName, versionOf, type MigratedType } from '../../nodes/shared/migrate';
import { BUILD_ROOT, REPO_ROOT } from '../helpers/paths';

const root = REPO_ROOT;
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));

/** A node of `type` as the release before versions saved it (settings from git history). */
function saved(type: MigratedType, props: Record<string, unknown>): Record<string, unknown> {
  return { id: 'n1', type, z: 'tab', name: '', ...props };
}

describe('settings migrations (nodes/shared/migrate.ts)', () => {
  describe('the engine', () => {
    it('versionOf: none is 0; a whole number, also as text; anything else unreadable', () => {
      assert.equal(versionOf({}), 0);
      assert.equal(versionOf({ version: '' }), 0);
      assert.equal(versionOf({ version: null }), 0);
      assert.equal(versionOf({ version: 3 }), 3);
      assert.equal(versionOf({ version: '2' }), 2);
      assert.equal(versionOf({ version: ' 2 ' }), 2);
      for (const bad of [-1, 1.5, 'two', '1.0', true, {}]) assert.equal(versionOf({ version: bad }), undefined, JSON.stringify(bad));
    });

    it('a step renames (the new name wins when both are set), removes, adds only what is missing, replaces listed values, and sets its version', () => {
      const step = {
        from: 0,
        to: 1,
        why: 'test',
        rename: { oldName: 'newName', both: 'kept' },
        remove: ['gone'],
        add: { added: 'x', present: 'not used', emptyKept: 'not used' },
        replace: { mode: [['', 'auto'] as [string, string], ['old', 'new'] as [string, string]] },
      };
      const before = { oldName: 7, both: 'old value', kept: 'new value', gone: true, present: 'mine', emptyKept: '', mode: 'old', other: 1 };
      const out = applyStep(before, step);
      assert.deepEqual(out, { newName: 7, kept: 'new value', present: 'mine', emptyKept: '', added: 'x', mode: 'new', other: 1, version: 1 });
      assert.equal(before.gone, true, 'the input is not changed');
      assert.equal(applyStep({ mode: 'manual' }, step).mode, 'manual', 'a value not listed stays');
    });

    it('applies the steps from the saved version on, never changes its input, and is idempotent', () => {
      const old = saved('crm-poll', { crm: 'cfg-crm', file: '' });
      const frozen = structuredClone(old);
      const m = migrateSettings('crm-poll', old);
      assert.deepEqual(old, frozen, 'the saved settings are not changed');
      assert.equal(m.from, 0);
      assert.deepEqual(m.applied, ['0→1']);
      assert.equal(m.config.version, MIGRATIONS['crm-poll'].current);
      assert.equal(m.newer, false);
      assert.equal(m.unreadable, false);
      const again = migrateSettings('crm-poll', m.config);
      assert.deepEqual(again.config, m.config, 'a migrated node migrates to itself');
      assert.deepEqual(again.applied, []);
    });

    it('settings saved by a newer release are used as saved and flagged; an unreadable version is read as 0 and flagged', () => {
      const newer = migrateSettings('crm-poll', saved('crm-poll', { version: 99, somethingNew: 1 }));
      assert.equal(newer.newer, true);
      assert.deepEqual(newer.applied, []);
      assert.equal(newer.config.version, 99);
      assert.equal(newer.config.types, undefined, 'no step applied');
      const odd = migrateSettings('crm-poll', saved('crm-poll', { version: 'x' }));
      assert.equal(odd.unreadable, true);
      assert.deepEqual(odd.applied, ['0→1']);
    });

    it('checkMigrations finds gaps, skipped versions and a current version without its steps', () => {
      assert.deepEqual(checkMigrations({ current: 1, steps: [{ from: 0, to: 1, why: 'ok' }] }), []);
      assert.deepEqual(checkMigrations({ current: 2, steps: [{ from: 0, to: 1, why: 'ok' }] }), ['1 steps for current version 2']);
      assert.deepEqual(checkMigrations({ current: 2, steps: [{ from: 0, to: 1, why: 'ok' }, { from: 2, to: 3, why: 'ok' }] }), ['step 1 reads version 2, not 1']);
      assert.deepEqual(checkMigrations({ current: 2, steps: [{ from: 0, to: 1, why: 'ok' }, { from: 1, to: 3, why: 'ok' }] }), ['step 1 goes 1→3, not one version']);
      assert.deepEqual(checkMigrations({ current: 1, steps: [{ from: 0, to: 1, why: ' ' }] }), ['step 0 says nothing about why']);
    });
  });

  describe('the table', () => {
    it('covers exactly the node types the package registers, each sound', () => {
      assert.deepEqual([...MIGRATED_TYPES].sort(), Object.keys(pkg['node-red'].nodes).sort());
      for (const t of MIGRATED_TYPES) assert.deepEqual(checkMigrations(MIGRATIONS[t]), [], t);
    });

    it('each .html saves the current version as its `version` default (source and build)', () => {
      for (const t of MIGRATED_TYPES) {
        for (const dir of [path.join(root, 'nodes'), path.join(BUILD_ROOT, 'nodes')]) {
          const html = fs.readFileSync(path.join(dir, t, `${t}.html`), 'utf8');
          const m = /defaults: \{[\s\S]*?\n\s+version: \{ value: (\d+) \}/.exec(html);
          assert.ok(m, `${dir}/${t}.html has a version default`);
          assert.equal(Number(m[1]), MIGRATIONS[t].current, `${dir}/${t}.html saves version ${MIGRATIONS[t].current}`);
        }
      }
    });

    it('exports each table under a name Node-RED accepts (the type in camel case first)', () => {
      assert.equal(migrationsSettingName('crm-poll'), 'crmPollMigrations');
      assert.equal(migrationsSettingName('sync-store'), 'syncStoreMigrations');
      assert.equal(migrationsSettingName('siagh-import'), 'siaghImportMigrations');
      // The rule Node-RED applies when a node registers settings (registerNodeSettings).
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { util } = require('@node-red/util') as { util: { normaliseNodeTypeName(t: string): string } };
      for (const t of MIGRATED_TYPES) assert.ok(migrationsSettingName(t).startsWith(util.normaliseNodeTypeName(t)), t);
    });

    it('every shipped flow and example saves our nodes at the current version', () => {
      const files = [
        ...fs.readdirSync(path.join(root, 'flows')).map((f) => path.join('flows', f)),
        ...fs.readdirSync(path.join(root, 'examples')).filter((f) => f.endsWith('.json')).map((f) => path.join('examples', f)),
      ];
      let seen = 0;
      for (const f of files) {
        for (const n of JSON.parse(fs.readFileSync(path.join(root, f), 'utf8')) as Array<Record<string, unknown>>) {
          if (!(MIGRATED_TYPES as readonly string[]).includes(String(n.type))) continue;
          seen++;
          assert.equal(n.version, MIGRATIONS[n.type as MigratedType].current, `${f}: ${n.id} (${n.type})`);
        }
      }
      assert.ok(seen > 30, `${seen} nodes checked`);
    });
  });

  describe('the steps, on settings as older releases saved them', () => {
    it('crm-poll saved before the types setting polled identities only, and still does; one saved now keeps "all three" when types is left empty', () => {
      // flows/polling-sync.json at 597c839 (2026-11-28)
      const old = saved('crm-poll', { crm: 'cfg-crm', mode: 'find', overlapSeconds: 120, fullEvery: 0, pageSize: 200, file: '', cursorName: 'polling-sync' });
      assert.equal(migrateSettings('crm-poll', old).config.types, 'identity');
      assert.equal(migrateSettings('crm-poll', { ...old, types: 'identity,quote' }).config.types, 'identity,quote', 'a set value stays');
      assert.equal(migrateSettings('crm-poll', { ...old, version: 1 } as Record<string, unknown>).config.types, undefined, 'current: empty means all three (crm-poll.ts)');
    });

    it('crm-webhook: the coalescing window goes; the token settings get the values a missing one meant, an empty one stays empty', () => {
      // flows/webhook-sync.json at 597c839
      const old = saved('crm-webhook', { name: 'Identity webhook', mode: 'webhook', expect: 'identity', coalesceMs: 1500 });
      const c = migrateSettings('crm-webhook', old).config;
      assert.equal('coalesceMs' in c, false);
      assert.equal(c.tokenEnv, 'WEBHOOK_TOKEN');
      assert.equal(c.allowNoToken, false, 'a node without a token is not opened up again');
      assert.equal(c.keepRejections, 50);
      assert.equal(c.expect, 'identity');
      assert.equal(migrateSettings('crm-webhook', { ...old, tokenEnv: '' }).config.tokenEnv, '', '"" turns the environment fallback off and stays');
    });

    it('siagh-upsert: the empty sales centre and intermediary of the first release written out as the values they mean; the added settings at their defaults', () => {
      // flows/webhook-sync.json at 597c839 (wh-upsert)
      const old = saved('siagh-upsert', {
        siagh: 'cfg-siagh', mode: 'auto', emptyPolicy: 'keep', overrides: '', mobileTypes: '', officeTypes: '', tmpidKey: 'gn_web_users.tmpid',
        cnPrefix: '100-', cnOffset: 1000, customerField: 'codemoshtari', customerValue: 'code', saleModel: 'auto', paymentType: '2',
        salesCentre: '', intermediary: '', saleType: '1', documentName: 'پیش فاکتور فروش', productMap: '', requireMappedProducts: false,
      });
      const c = migrateSettings('siagh-upsert', old).config;
      assert.equal(c.salesCentre, 'auto');
      assert.equal(c.intermediary, '31');
      assert.equal(c.addressNames, true);
      assert.equal(c.genderValues, 'Female, Male');
      assert.equal(c.documentDiscount, 'none');
      assert.equal(c.crm, undefined, 'no CRM chosen: nothing is written back, as before');
      assert.equal(c.writeBack, undefined, 'not ticked for a node without a CRM (it would warn at every deploy)');
      assert.equal(c.paymentType, '2');
      const set = migrateSettings('siagh-upsert', { ...old, salesCentre: '7', intermediary: '12' }).config;
      assert.deepEqual([set.salesCentre, set.intermediary], ['7', '12'], 'chosen values stay');
    });

    it('sync-log, sync-mapping and siagh-import keep their own folder or file settings and gain the added ones at their defaults', () => {
      const log = migrateSettings('sync-log', saved('sync-log', { dir: 'old-data', trigger: 'webhook', maxSizeMB: 10, keepFiles: 10, keepDays: 30 })).config;
      assert.equal(log.dir, 'old-data');
      assert.equal(log.store, undefined);
      assert.deepEqual([log.failedMaxEntries, log.failedMaxAgeDays], [10000, 90]);
      const map = migrateSettings('sync-mapping', saved('sync-mapping', { file: 'm.json', operation: 'lookup', entityType: 'auto', claim: true, leaseSeconds: 60, waitSeconds: 300, source: '' })).config;
      assert.equal(map.file, 'm.json');
      assert.deepEqual([map.cnPrefix, map.cnOffset], ['100-', 1000]);
      const imp = migrateSettings('siagh-import', saved('siagh-import', { siagh: 's', crm: 'c', file: '', reportDir: 'r', concurrency: 4, dryRun: false, cnPrefix: '200-', cnOffset: 5, categories: 'syaghcontact' })).config;
      assert.deepEqual([imp.reportDir, imp.cnPrefix, imp.cnOffset], ['r', '200-', 5]);
      assert.equal(imp.addressNames, true);
      assert.equal(imp.tmpidKey, 'gn_web_users.tmpid');
    });

    it('the config nodes, crm-fetch, sync-queue and sync-store: the version only', () => {
      const cases: Array<[MigratedType, Record<string, unknown>]> = [
        ['crm-config', { baseUrl: '${CRM_API_BASE_URL}', timeout: 30, concurrency: 4, ca: '' }],
        ['siagh-config', { baseUrl: '${FINANCE_API_BASE_URL}', saveFormDataPath: '/BpmsApi/SaveFormData', indexMaxAge: 10, timeout: 30, concurrency: 4, ambiguousPreInvoice: 'fail', ca: '' }],
        ['crm-fetch', { crm: 'cfg-crm', what: 'identity', searchOutput: 'each', pageSize: 200 }],
        ['sync-queue', { store: 'cfg-store', concurrency: 4 }],
        ['sync-store', { backend: 'file', dir: '', maxAttempts: '', maxAgeHours: '', leaseSeconds: 120, firstRetrySeconds: 5, maxRetryDelaySeconds: 600 }],
      ];
      for (const [t, props] of cases) {
        const old = saved(t, props);
        assert.deepEqual(migrateSettings(t, old).config, { ...old, version: 1 }, t);
      }
    });
  });
});
