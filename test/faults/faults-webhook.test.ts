/**
 * Fault matrix, webhook pipeline: a real Node-RED with the package installed from its tarball and
 * the shipped flows deployed unchanged, driven by the simulated CRM's own webhooks, with faults
 * injected through the simulators' switches on the CRM side and on the Siagh side. Every cell
 * asserts NO EVENT LOST (synced with the right fields, or in failed.json with a reason) and NO
 * DUPLICATE (Siagh contacts, CRM customer numbers, pre-invoices, mappings); events that land in
 * failed.json are replayed with the flow's "replay all failed" inject after the fault is cleared.
 *
 * Timeouts are tested at the node level (faults-timeout.test.ts): the shipped config nodes wait
 * 30 s per attempt.
 */
import assert from 'node:assert/strict';
import { CRM_CREATE_RE, E2eEnv, countMatching, CRM_LIST_RE } from '../helpers/e2e';
import { assertNoDuplicates, assertNoneLost, matrixHooks, onEverySave, person, QUOTE_ROWS, readFailed, replayAll, replayOne, settle, timed, Tracked } from '../helpers/faults';

const PERSON_GET = '/crmobject/person/get';
const QUOTE_GET = '/quote/sales/get';
const SAVE = '/SaveFormData';

describe('fault matrix × webhook pipeline (real Node-RED, shipped flows)', function () {
  this.timeout(90_000);
  let env: E2eEnv;
  let base: Tracked;

  before(async function () {
    this.timeout(180_000);
    env = await E2eEnv.start({ pollIntervalSeconds: 3600 });
    // The polling flow runs once at start; let it pass so it does not do the webhooks' work.
    await env.waitFor('the first polling run', () => countMatching(env.crm, CRM_LIST_RE) > 0, 15_000).catch(() => undefined);
    await env.waitQuiet('the first polling run', () => [...env.crm.counts.entries()], { quietMs: 500 });
    // A customer synced before any fault, for the quotes of the cells.
    const spec = person('base');
    base = { kind: 'identity', crmId: env.crm.addPerson(spec.fields).crmId, spec };
    await settle(env, [base]);
  });
  matrixHooks(() => env);

  /** n new CRM persons; the CRM sends their Insert webhooks. */
  function pushPersons(tag: string, n = 1): Tracked[] {
    return Array.from({ length: n }, () => {
      const spec = person(tag);
      const rec = env.crm.addPerson(spec.fields);
      return { kind: 'identity' as const, crmId: rec.crmId, spec };
    });
  }
  /** A quote for a synced customer; the CRM sends its Insert webhook. */
  function pushQuote(customer: Tracked): Tracked {
    const q = env.crm.addQuote({ identityId: customer.crmId, details: QUOTE_ROWS });
    return { kind: 'quote', crmId: q.crmId, customerId: customer.crmId };
  }
  const failedCodes = (items: Tracked[]) => {
    const keys = new Set(items.map((t) => `${t.kind}:${t.crmId}`));
    return readFailed(env.dataDir)
      .filter((e) => keys.has(e.key))
      .map((e) => e.reason.code)
      .sort();
  };

  for (const shape of ['errors200', 'http401'] as const) {
    it(
      `Siagh session expiry (${shape}) on every 2nd save, mid-burst → all synced, no duplicate`,
      timed(`webhook×expiry-${shape}`, async () => {
        env.siagh.expiryShape = shape;
        let saves = 0;
        env.siagh.onSave = onEverySave(() => {
          if (++saves % 2 === 0) env.siagh.expireAllSessions();
        });
        const logins = env.siagh.loginCount;
        const people = pushPersons(`exp-${shape}`, 4);
        await settle(env, people);
        const quote = pushQuote(people[0]);
        await settle(env, [...people, quote]);
        const r = assertNoneLost(env, [...people, quote]);
        assert.equal(r.failed.length, 0, `nothing failed: ${JSON.stringify(r.failed)}`);
        assert.ok(env.siagh.loginCount > logins, 'Siagh logins renewed the session');
        assertNoDuplicates(env);
      }),
    );
  }

  it(
    'CRM token expiry twice in a burst of reads → all synced, no duplicate',
    timed('webhook×token-expiry', async () => {
      // Twice in the burst (a token expires once; a freshly issued one is not refused again).
      let reads = 0;
      env.crm.beforeHandle = (req) => {
        if (/\/get$/.test(req.path) && [2, 5].includes(++reads)) env.crm.expireAllTokens();
      };
      const logins = env.crm.loginCount;
      const people = pushPersons('tok', 4);
      await settle(env, people);
      const quote = pushQuote(people[1]);
      await settle(env, [...people, quote]);
      const r = assertNoneLost(env, [...people, quote]);
      assert.equal(r.failed.length, 0, `nothing failed: ${JSON.stringify(r.failed)}`);
      assert.ok(env.crm.loginCount >= logins + 2, 'the CRM token was renewed');
      assertNoDuplicates(env);
    }),
  );

  /**
   * 5xx and dropped connections share the same shape: a few faults are absorbed by retries, many
   * exhaust them (failed.json, then replay); after a create Siagh handled, the client finds the
   * contact instead of creating it twice; a pre-invoice whose outcome is unknown is never repeated.
   */
  for (const kind of ['5xx', 'drop'] as const) {
    it(
      `${kind} on the CRM reads and the Siagh saves → retried, or failed.json then replayed; no duplicate`,
      timed(`webhook×${kind}`, async () => {
        // A. At once: (a) 2 faults on the CRM read, then one on the Siagh create after Siagh acts
        //    (created, reply lost: found by mobile, not created twice) → synced; (q1) every quote
        //    read fails → failed.json. (A fault before Siagh acts cannot be told apart from a save
        //    still running: AMBIGUOUS_CREATE, sent again only after a delayed check, as in B.)
        env.crm.faults.add({ kind, path: PERSON_GET, times: 2 });
        env.siagh.faults.add({ kind, path: SAVE, times: 1, afterHandling: true });
        env.crm.faults.add({ kind, path: QUOTE_GET, times: 50 });
        const [a] = pushPersons(`${kind}-absorbed`);
        const q1 = pushQuote(base);
        await settle(env, [a, q1]);
        env.crm.faults.clear();
        assert.equal(env.siagh.faults.pending, 0, 'both Siagh faults were hit');
        assert.deepEqual(failedCodes([a]), [], 'absorbed by retries');
        assert.deepEqual(failedCodes([q1]), [kind === '5xx' ? 'HTTP_5XX' : 'NETWORK'], 'CRM read retries exhausted');

        // B. Every Siagh save fails → AMBIGUOUS_CREATE (looked up; sent once more only after a delayed check found nothing).
        env.siagh.faults.add({ kind, path: SAVE, times: 50 });
        const [d] = pushPersons(`${kind}-siagh-exhausted`);
        await settle(env, [d]);
        env.siagh.faults.clear();
        assert.deepEqual(failedCodes([d]), ['AMBIGUOUS_CREATE']);

        // C. A pre-invoice whose save Siagh handled but whose reply was lost → failed.json, not repeated.
        const quoteBefore = env.siagh.preInvoices().length;
        env.siagh.faults.add({ kind, path: SAVE, times: 1, afterHandling: true });
        const q2 = pushQuote(a);
        await settle(env, [q2]);
        assert.deepEqual(failedCodes([q2]), ['AMBIGUOUS_CREATE']);
        assert.equal(env.siagh.preInvoices().length, quoteBefore + 1, 'Siagh has it once');

        const all = [a, q1, d, q2];
        assertNoneLost(env, all);
        assertNoDuplicates(env);

        // Fault cleared: "replay all failed". The AMBIGUOUS_CREATE entries stay for the operator.
        await replayAll(env, all);
        let r = assertNoneLost(env, all);
        assertNoDuplicates(env);
        assert.deepEqual(
          r.failed.map((x) => `${x.kind}:${x.reason}`).sort(),
          ['identity:AMBIGUOUS_CREATE', 'quote:AMBIGUOUS_CREATE'],
          'after "replay all" only the creates of unknown outcome wait in failed.json',
        );
        // The operator checks Siagh: the contact is not there → replays it by its id (the client looks before creating).
        await replayOne(env, d.crmId, all);
        // The pre-invoice is in Siagh once: it stays listed (with its reason) for the operator; never repeated.
        r = assertNoneLost(env, all);
        assertNoDuplicates(env);
        assert.deepEqual(
          r.failed.map((x) => `${x.kind}:${x.reason}`),
          ['quote:AMBIGUOUS_CREATE'],
        );
        assert.equal(env.siagh.preInvoices().length, quoteBefore + 2, 'q1 (replayed) and q2 (once)');
      }),
    );
  }

  it(
    '429 with Retry-After on the CRM reads, the Siagh login and saves → waited and retried; exhausted → failed.json, replayed',
    timed('webhook×429', async () => {
      env.siagh.expireAllSessions();
      env.crm.faults.add({ kind: '429', path: PERSON_GET, times: 1, retryAfterSec: 1 });
      env.siagh.faults.add({ kind: '429', path: '/LoginUser', times: 1, retryAfterSec: 1 });
      env.siagh.faults.add({ kind: '429', path: SAVE, times: 1, retryAfterSec: 1 });
      env.crm.faults.add({ kind: '429', path: QUOTE_GET, times: 50, retryAfterSec: 1 });
      const [a] = pushPersons('429-absorbed');
      const q = pushQuote(base);
      await settle(env, [a, q]);
      env.crm.faults.clear();
      assert.equal(env.siagh.faults.pending, 0, 'every Siagh 429 was hit');
      assert.deepEqual(failedCodes([a]), []);
      assert.deepEqual(failedCodes([q]), ['RATE_LIMITED']);

      await replayAll(env, [a, q]);
      const r = assertNoneLost(env, [a, q]);
      assert.deepEqual(r.failed, []);
      assertNoDuplicates(env);
    }),
  );

  it(
    'Node-RED SIGKILLed at the 3rd Siagh save of a burst, restarted → every event synced (poll at start), no duplicate',
    timed('webhook×kill', async function () {
      this.timeout(120_000);
      let saves = 0;
      env.siagh.onSave = onEverySave(() => {
        if (++saves === 3) env.red.child.kill('SIGKILL');
      });
      const people = pushPersons('kill', 6);
      await env.exited(30_000);
      env.siagh.onSave = undefined;
      await env.restart();
      // The polling flow runs once 5 s after the start and lists what changed since its cursor:
      // the events the dead process had accepted but not finished.
      await settle(env, people, { timeoutMs: 45_000 });
      const quote = pushQuote(people[5]);
      await settle(env, [...people, quote]);
      const r = assertNoneLost(env, [...people, quote]);
      if (r.failed.length) {
        await replayAll(env, [...people, quote]);
        assert.deepEqual(assertNoneLost(env, [...people, quote]).failed, []);
      }
      assertNoDuplicates(env);
      assert.equal(countMatching(env.crm, CRM_CREATE_RE), 0, 'the webhook pipeline never creates in the CRM');
    }),
  );
});
