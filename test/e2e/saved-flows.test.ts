/**
 * Saved flows keep working: a real Node-RED (the package installed from its tarball) runs
 * - test/fixtures/saved-flows/release-0.json: the three shipped flows as the release of 2026-11-28
 *   saved them (git show 597c839:flows/<name>.json, merged by id): no `version`, the settings of
 *   then (coalesceMs, empty sales centre and intermediary, crm-poll without types, node folders);
 * - test/fixtures/saved-flows/release-1.json: the same flows as this release saves them (every
 *   node type, `version: 1`).
 * A CRM person's webhook becomes the same Siagh contact with both, and the old crm-poll polls what
 * it polled then (identities only) while the current one polls quotes and invoices too.
 * When a setting changes, the next release adds its own fixture; the old ones stay.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { nationalIdWithCheckDigit } from '../../sim/seed';
import { countMatching, CRM_LIST_RE, E2eEnv, FlowNode, PACKAGE_ROOT } from '../helpers/e2e';

const FIXTURES = path.join(PACKAGE_ROOT, 'test', 'fixtures', 'saved-flows');
const QUOTE_FIND_RE = /^POST \/api\/v2\/crmobject\/quote\/sales\/find$/i;
const INVOICE_FIND_RE = /^POST \/api\/v2\/crmobject\/invoice\/sales\/find$/i;

function fixture(name: string): FlowNode[] {
  return JSON.parse(fs.readFileSync(path.join(FIXTURES, `${name}.json`), 'utf8')) as FlowNode[];
}

/** The same CRM person in both runs. */
const PERSON = {
  firstName: 'نگار',
  lastName: 'رضایی',
  nickName: 'نگار رضایی (saved flows)',
  email: 'negar.saved@example.ir',
  nationalCode: nationalIdWithCheckDigit('004215873'),
  description: 'مشتری از نمایشگاه',
  phoneContacts: [{ default: true, phoneType: 'موبایل', phoneNumber: '09121234567' }],
  addressContacts: [{ default: true, country: 'ایران', state: 'تهران', city: 'تهران', address: 'تهران، خیابان ولیعصر، پلاک ۱۲', zipCode: '1965843511' }],
};

/** What the runs are compared on: the Siagh contact of PERSON. */
const contacts: Record<string, Record<string, unknown>> = {};

for (const release of ['release-0', 'release-1'] as const) {
  describe(`saved flows: ${release}.json on a real Node-RED`, function () {
    this.timeout(60_000);
    let env: E2eEnv;

    before(async function () {
      this.timeout(180_000);
      env = await E2eEnv.start({ flows: fixture(release), pollIntervalSeconds: 3600 });
      // Both polling flows run once 5 s after the deploy; let that run end before the webhook.
      await env.waitFor('the first polling run', () => countMatching(env.crm, CRM_LIST_RE) > 0, 20_000);
      await env.waitQuiet('the first polling run', () => [...env.crm.counts.entries()], { quietMs: 1000 });
    });
    after(async () => {
      await env?.stop();
    });

    it('deploys with no error or warning from our nodes', () => {
      assert.doesNotMatch(env.log(), /\[(error|warn)\] \[(crm-|siagh-|sync-)/, env.diagnose());
    });

    it('the polling flow lists what its crm-poll was saved to poll', () => {
      const quotes = countMatching(env.crm, QUOTE_FIND_RE);
      const invoices = countMatching(env.crm, INVOICE_FIND_RE);
      if (release === 'release-0') {
        // Saved before the types setting: identities only, as then.
        assert.deepEqual([quotes, invoices], [0, 0], env.diagnose());
      } else {
        assert.ok(quotes > 0 && invoices > 0, `quotes ${quotes}, invoices ${invoices}\n${env.diagnose()}`);
      }
    });

    it('a CRM person\'s webhook → one Siagh contact', async () => {
      const rec = env.crm.addPerson(structuredClone(PERSON));
      const byName = () => env.siagh.contacts().filter((c) => c.Name === PERSON.nickName);
      const [c] = await env.waitFor('the Siagh contact of the new CRM person', () => (byName().length ? byName() : undefined));
      await env.waitQuiet('Siagh writes', () => env.siagh.saveCount);
      assert.equal(byName().length, 1, 'exactly one contact');
      assert.equal(c.NationalCode, PERSON.nationalCode);
      assert.deepEqual(
        env.crm.webhookLog().filter((d) => d.id === rec.crmId).map((d) => d.status),
        [200],
      );
      const { RecordId: _recordId, ...same } = c;
      contacts[release] = same;
    });
  });
}

describe('saved flows: both releases', () => {
  it('wrote the same Siagh contact', () => {
    assert.ok(contacts['release-0'] && contacts['release-1'], 'both runs wrote the contact');
    assert.deepEqual(contacts['release-0'], contacts['release-1']);
  });
});
