/**
 * End to end, initial-import: 500 Siagh contacts (one admin) imported into the CRM by the shipped
 * flow on a real Node-RED, pressed through the Admin API; the CRM's echo webhooks go to the
 * webhook flow. Once uninterrupted (with token expiry mid-run), once with Node-RED SIGKILLed in
 * the middle and restarted on the same user dir.
 */
import assert from 'node:assert/strict';
import { seedSiaghContacts } from '../../sim/seed';
import type { SiaghContact } from '../../lib/types';
import { countMatching, CRM_CREATE_RE, CRM_IDENTITY_GET_RE, E2eEnv, pressImportUntilKilled, runImportReport, sleep } from '../helpers/e2e';

const CONTACTS = 500;
const SEED = 4242;
interface Report {
  dryRun: boolean;
  total: number;
  counts: { created: number; linked: number; skipped: number; failed: number };
  stoppedBy?: unknown;
  records: Array<{ code: number; outcome: string; reason?: string; customerNumber: string }>;
}

/** Which contacts Siagh was asked to save, and how they differ from the seed (for failure messages). */
function describeSaves(env: E2eEnv, seed: SiaghContact[]): string {
  const out: string[] = [];
  for (const save of env.siagh.saveLog) {
    const code = Number(save.params.find((p) => p.key === 'CodeMain')?.value || save.ctrl.find((p) => p.key === 'Param1')?.value);
    const was = seed.find((c) => c.Code === code) as Record<string, unknown> | undefined;
    const now = env.siagh.contact(code) as Record<string, unknown> | undefined;
    const diff = was && now ? Object.keys(was).filter((k) => JSON.stringify(was[k]) !== JSON.stringify(now[k])).map((k) => `${k}: ${JSON.stringify(was[k])} → ${JSON.stringify(now[k])}`) : [];
    out.push(`form ${save.formId} Code ${code}: ${diff.join(', ') || 'no field changed'}`);
  }
  return out.join('; ');
}

const expectedNumber = (code: number) => `100-${code + 1000}`;

/** Press "import" and wait for its report file (a press dropped while a run winds down is repeated). */
const runImport = (env: E2eEnv, timeoutMs = 60_000) => runImportReport<Report>(env, timeoutMs);

function failures(r: Report): string {
  return r.records
    .filter((x) => x.outcome === 'failed')
    .slice(0, 5)
    .map((x) => `${x.code}: ${x.reason}`)
    .join('\n');
}

/** The CRM holds exactly one identity per non-admin Siagh contact, with its customer number. */
function assertCrmMatchesSiagh(env: E2eEnv): void {
  const want = env.siagh
    .contacts()
    .filter((c) => !c.IsAdminUser)
    .map((c) => expectedNumber(c.Code))
    .sort();
  const have = env.crm
    .identities()
    .map((i) => String(i.customerNumber))
    .sort();
  assert.equal(want.length, CONTACTS - 1);
  assert.equal(new Set(have).size, have.length, 'no two CRM identities share a customer number');
  assert.deepEqual(have, want, 'one CRM identity per non-admin Siagh contact, numbered 100-(Code+1000)');
}

describe('e2e: initial import of 500 Siagh contacts on a real Node-RED', function () {
  this.timeout(90_000);
  let env: E2eEnv;

  before(async function () {
    this.timeout(180_000);
    env = await E2eEnv.start({ siagh: { contacts: seedSiaghContacts(CONTACTS, { seed: SEED, firstCode: 1, admins: 1 }) } });
  });
  after(async () => {
    await env?.stop();
  });

  it('creates 499 CRM identities with the right customer numbers, through CRM token expiry mid-run', async () => {
    let creates = 0;
    env.crm.beforeHandle = (req) => {
      if (!CRM_CREATE_RE.test(`${req.method} ${req.path}`)) return;
      creates++;
      if (creates === 100 || creates === 300) env.crm.expireAllTokens();
    };
    const crmLogins = env.crm.loginCount;
    const r = await runImport(env);
    env.crm.beforeHandle = undefined;
    assert.equal(r.dryRun, false);
    assert.equal(r.total, CONTACTS);
    assert.equal(r.counts.failed, 0, failures(r));
    assert.equal(r.counts.created, CONTACTS - 1);
    assert.equal(r.counts.skipped, 1, 'the admin user');
    assert.equal(r.records.find((x) => x.outcome === 'skipped')?.reason, 'admin user');
    assert.equal(r.stoppedBy, undefined);
    assert.ok(env.crm.loginCount >= crmLogins + 2, 'logged in again after each expiry');
    assertCrmMatchesSiagh(env);
    const ids = env.crm.identities();
    const one = ids.find((i) => i.customerNumber === expectedNumber(2))!;
    assert.deepEqual(
      (one.categories as Array<{ key: string }>).map((c) => c.key),
      ['syaghcontact'],
    );
  });

  it('the CRM\'s echo webhooks of the imported identities write nothing to Siagh', async () => {
    await env.crm.flushWebhooks();
    const echoes = env.crm.webhookLog();
    assert.ok(echoes.length >= CONTACTS - 1, `the CRM sent its Insert webhooks (${echoes.length})`);
    assert.ok(
      echoes.every((d) => d.status === 200),
      'every echo was accepted: ' + JSON.stringify(echoes.find((d) => d.status !== 200)),
    );
    // Every echo is fetched by the flow, then the flow goes quiet.
    await env.waitFor('the flow to fetch every echoed identity', () => countMatching(env.crm, CRM_IDENTITY_GET_RE) >= CONTACTS - 1, 60_000);
    await env.waitQuiet('the echo processing', () => [env.siagh.saveCount, countMatching(env.crm, CRM_IDENTITY_GET_RE)], { quietMs: 2000, timeoutMs: 60_000 });
    assert.equal(env.siagh.saveCount, 0, 'no Siagh writes');
    assert.equal(env.siagh.contacts().length, CONTACTS, 'no Siagh contact created');
  });

  it('a re-run creates nothing', async () => {
    const r = await runImport(env);
    assert.equal(r.counts.failed, 0, failures(r));
    assert.equal(r.counts.created, 0);
    assert.equal(r.counts.linked, 0);
    assert.equal(r.counts.skipped, CONTACTS);
    assertCrmMatchesSiagh(env);
    await sleep(500);
    await env.crm.flushWebhooks();
    assert.equal(env.siagh.saveCount, 0);
  });

  it('a real change made in the CRM afterwards still syncs to the same Siagh contact, keeping its own description', async () => {
    const c = env.siagh.contacts().find((x) => !x.IsAdminUser && !x.TowardType && x.IsActive && x.Description && !x.Description.includes('|'))!;
    assert.ok(c, 'the seed has an active person with a description');
    const ident = env.crm.identities().find((i) => i.customerNumber === expectedNumber(c.Code))!;
    assert.equal(ident.description, c.Description?.trim(), 'the import keeps Siagh\'s description');
    env.crm.updateRecord(ident.crmId, { email: 'changed.in.crm@example.ir' });
    const now = await env.waitFor('the change in Siagh', () => {
      const x = env.siagh.contact(c.Code);
      return x?.Email === 'changed.in.crm@example.ir' ? x : undefined;
    });
    assert.equal(now.Description, c.Description, 'the Siagh description is kept');
    assert.equal(now.Name, c.Name);
    assert.equal(env.siagh.contacts().length, CONTACTS);
  });
});

describe('e2e: initial import, Node-RED SIGKILLed in the middle and restarted', function () {
  this.timeout(90_000);
  let env: E2eEnv;
  const seed = seedSiaghContacts(CONTACTS, { seed: SEED + 1, firstCode: 8300, admins: 1 });

  before(async function () {
    this.timeout(180_000);
    env = await E2eEnv.start({ siagh: { contacts: seed } });
  });
  after(async () => {
    await env?.stop();
  });

  it('re-running the import after the crash completes it without duplicates', async () => {
    // Kill Node-RED while the 150th create is in flight: the CRM creates it, Node-RED never hears back.
    let creates = 0;
    env.crm.beforeHandle = (req) => {
      if (!CRM_CREATE_RE.test(`${req.method} ${req.path}`)) return;
      if (++creates === 150) env.red.child.kill('SIGKILL');
    };
    await pressImportUntilKilled(env, 60_000);
    env.crm.beforeHandle = undefined;
    await sleep(300); // requests already received when Node-RED died are still handled by the simulator
    const atCrash = env.crm.identities().length;
    assert.ok(atCrash >= 150 && atCrash < CONTACTS - 1, `killed in the middle (${atCrash} created)`);
    assert.equal(env.reportFiles().length, 0, 'the first run never finished');

    await env.restart();
    const r = await runImport(env);
    assert.equal(r.counts.failed, 0, failures(r));
    assert.equal(r.stoppedBy, undefined);
    assert.equal(r.counts.created + r.counts.linked + r.counts.skipped, CONTACTS);
    assert.equal(r.counts.created, CONTACTS - 1 - atCrash, 'created only what the first run had not');
    assertCrmMatchesSiagh(env);

    const again = await runImport(env);
    assert.equal(again.counts.created, 0);
    assert.equal(again.counts.linked, 0);
    assert.equal(again.counts.failed, 0, failures(again));
    assertCrmMatchesSiagh(env);
    await env.crm.flushWebhooks();
    await env.waitQuiet('the echo processing', () => [env.siagh.saveCount, countMatching(env.crm, CRM_IDENTITY_GET_RE)], { quietMs: 2000, timeoutMs: 60_000 });
    assert.equal(env.siagh.contacts().length, CONTACTS, 'no contact created in Siagh');
    // The identities the crash left unmapped are linked by customer number without a checksum, so
    // their echoes (or a poll) compare them with Siagh field by field. No Siagh field may change,
    // IsActive included (isactive is sent on create only).
    const changed = seed.filter((c) => {
      const now = env.siagh.contact(c.Code) as Record<string, unknown>;
      return Object.entries(c).some(([k, v]) => JSON.stringify(v) !== JSON.stringify(now[k]));
    });
    assert.deepEqual(changed.map((c) => c.Code), [], 'Siagh contacts changed: ' + describeSaves(env, seed));
  });
});
