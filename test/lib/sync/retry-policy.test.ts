import assert from 'node:assert/strict';
import { SyncError } from '../../../lib/errors';
import { backoffMs, classify, Classification, DEFAULT_RETRY_POLICY, retryPolicyFromEnv, RetryKind } from '../../../lib/sync/retry-policy';
import { CrmClient } from '../../../lib/crm/client';
import { SiaghClient } from '../../../lib/siagh/client';
import { errorFacts } from '../../../nodes/shared/support';
import { CrmSim } from '../../../sim/crm-sim';
import { SiaghSim } from '../../../sim/siagh-sim';

/** msg.error as a Catch node delivers it from fail(): Node-RED keeps message, code, stack, cause. */
function asCaught(e: SyncError): Record<string, unknown> {
  return {
    message: String(e),
    source: { id: 'n1', type: 'siagh-upsert', count: 1 },
    code: e.code,
    stack: e.stack,
    cause: { code: e.code, ...errorFacts(e) },
  };
}

describe('retry policy: classify', () => {
  const table: Array<[string, SyncError, RetryKind, number | undefined]> = [
    // transient
    ['timeout on a read', new SyncError('TIMEOUT', 't', { retryable: true, ambiguous: false }), 'transient', undefined],
    ['dropped connection on a read', new SyncError('NETWORK', 'd', { retryable: true }), 'transient', undefined],
    ['connection refused', new SyncError('NETWORK', 'refused', { retryable: true }), 'transient', undefined],
    ['5xx on a read', new SyncError('HTTP_5XX', '5', { status: 503, retryable: true }), 'transient', undefined],
    ['429 with Retry-After 2 s', new SyncError('RATE_LIMITED', 'r', { status: 429, retryable: true, retryAfterSec: 2 }), 'transient', 2000],
    ['429 with Retry-After 2 h, in full', new SyncError('RATE_LIMITED', 'r', { status: 429, retryable: true, retryAfterSec: 7200 }), 'transient', 7_200_000],
    ['429 with Retry-After 0', new SyncError('RATE_LIMITED', 'r', { status: 429, retryable: true, retryAfterSec: 0 }), 'transient', 0],
    ['429 without Retry-After', new SyncError('RATE_LIMITED', 'r', { status: 429, retryable: true }), 'transient', undefined],
    ['Siagh session refused after re-login', new SyncError('SIAGH_SESSION_EXPIRED', 's', { status: 200 }), 'transient', undefined],
    ['CRM lock-out with its cool-down', new SyncError('CRM_LOCKED_OUT', 'l', { status: 403, retryAfterSec: 900 }), 'transient', 900_000],
    ['store locked', new SyncError('STORE_LOCKED', 'l'), 'transient', undefined],
    ['mapping busy', new SyncError('MAPPING_BUSY', 'b'), 'transient', undefined],
    ['broken reply to a read', new SyncError('BAD_REPLY', 'html', { status: 200, retryable: true }), 'transient', undefined],
    ['HTTP 408', new SyncError('HTTP_ERROR', 'x', { status: 408 }), 'transient', undefined],
    // permanent
    ['bad input', new SyncError('BAD_INPUT', 'b'), 'permanent', undefined],
    ['config', new SyncError('CONFIG', 'c'), 'permanent', undefined],
    ['CRM not found', new SyncError('CRM_NOT_FOUND', 'n', { status: 404 }), 'permanent', undefined],
    ['Siagh form error', new SyncError('SIAGH_FORM_ERROR', 'اعتبار مشتری کافی نیست', { status: 200, details: ['اعتبار مشتری کافی نیست'] }), 'permanent', undefined],
    ['Siagh duplicate', new SyncError('SIAGH_DUPLICATE', 'd', { status: 200 }), 'permanent', undefined],
    ['Siagh unknown customer', new SyncError('SIAGH_UNKNOWN_CUSTOMER', 'u', { status: 200 }), 'permanent', undefined],
    ['mapping conflict', new SyncError('MAPPING_CONFLICT', 'm'), 'permanent', undefined],
    ['CRM bad credentials', new SyncError('CRM_BAD_CREDENTIALS', 'c', { status: 401 }), 'permanent', undefined],
    ['Siagh login failed', new SyncError('SIAGH_LOGIN_FAILED', 'c', { status: 401 }), 'permanent', undefined],
    ['TLS', new SyncError('TLS', 't'), 'permanent', undefined],
    ['HTTP 404', new SyncError('HTTP_ERROR', 'x', { status: 404 }), 'permanent', undefined],
    ['reply of a wrong shape', new SyncError('BAD_REPLY', 'schema'), 'permanent', undefined],
    ['unknown', new SyncError('UNKNOWN', '?'), 'permanent', undefined],
    // ambiguous
    ['ambiguous create', new SyncError('AMBIGUOUS_CREATE', 'a', { ambiguous: true }), 'ambiguous', undefined],
    ['ambiguous create without its flag', new SyncError('AMBIGUOUS_CREATE', 'a'), 'ambiguous', undefined],
    ['timeout after a write', new SyncError('TIMEOUT', 't', { retryable: true, ambiguous: true }), 'ambiguous', undefined],
    ['5xx after a write', new SyncError('HTTP_5XX', '5', { status: 500, retryable: true, ambiguous: true }), 'ambiguous', undefined],
    ['broken reply after a write', new SyncError('BAD_REPLY', 'b', { status: 200, retryable: true, ambiguous: true }), 'ambiguous', undefined],
    // dependency
    ['customer not mapped', new SyncError('CUSTOMER_NOT_MAPPED', 'c'), 'dependency', undefined],
  ];

  for (const [name, err, kind, wait] of table) {
    it(`${name} → ${kind}${wait !== undefined ? ` after ${wait} ms` : ''} (SyncError, msg.error from a Catch node, plain object)`, () => {
      const shapes: Array<[string, unknown]> = [
        ['SyncError', err],
        ['msg.error', asCaught(err)],
        ['plain', { code: err.code, message: err.message, ...errorFacts(err) }],
        ['whole msg', { payload: {}, error: asCaught(err), sync: { error: { code: err.code, message: err.message, ...errorFacts(err) } } }],
      ];
      for (const [shape, e] of shapes) {
        const c: Classification = classify(e);
        assert.equal(c.kind, kind, `${shape}: ${c.reason}`);
        assert.equal(c.retryAfterMs, wait, `${shape}: retryAfterMs`);
        assert.ok(c.reason.startsWith(`${err.code}:`), `${shape}: reason "${c.reason}"`);
      }
    });
  }

  it('codes others add (and unknown ones) are permanent', () => {
    for (const code of ['LINK_NEEDS_REVIEW', 'DOCUMENT_CHANGED_AFTER_TRANSFER', 'SOMETHING_NEW']) {
      assert.equal(classify({ code, message: 'x' }).kind, 'permanent');
      assert.equal(classify({ code, message: 'x', retryable: true }).kind, 'permanent');
    }
  });

  it('reads facts from msg.error.cause; a foreign cause (an AxiosError-like, another code) is ignored', () => {
    assert.deepEqual(classify({ code: 'RATE_LIMITED', cause: { status: 429, retryAfterSec: '30' } }).retryAfterMs, 30_000);
    assert.equal(classify({ code: 'TIMEOUT', cause: { code: 'TIMEOUT', ambiguous: true } }).kind, 'ambiguous');
    assert.equal(classify({ code: 'TIMEOUT', cause: { code: 'ECONNABORTED', ambiguous: true } }).kind, 'transient');
    const axiosLike = Object.assign(new Error('timeout of 300ms exceeded'), { code: 'ECONNABORTED' });
    assert.equal(classify(new SyncError('TIMEOUT', 't', { retryable: true, cause: axiosLike })).kind, 'transient');
  });

  it('anything else is permanent UNKNOWN, never a throw', () => {
    for (const e of [undefined, null, 'boom', 42, new Error('plain'), {}, [], { code: 7 }]) {
      const c = classify(e);
      assert.equal(c.kind, 'permanent');
      assert.match(c.reason, /^UNKNOWN:/);
    }
  });
});

describe('retry policy: the errors carry what classify needs (real clients, simulators)', () => {
  let siagh: SiaghSim;
  let crm: CrmSim;
  const closers: Array<() => void> = [];
  before(async () => {
    siagh = new SiaghSim();
    crm = new CrmSim();
    await siagh.start();
    await crm.start();
  });
  after(async () => {
    await siagh.stop();
    await crm.stop();
  });
  afterEach(() => {
    for (const c of closers.splice(0)) c();
    siagh.faults.clear();
    crm.faults.clear();
    siagh.reset();
    crm.reset();
  });

  it('Siagh 429 with a long Retry-After → transient, retryAfterMs in full', async () => {
    const c = new SiaghClient({ baseUrl: siagh.url, username: 'مدیر سیستم', password: 'admin', retries: 0 });
    closers.push(() => c.close());
    await c.login();
    siagh.faults.add({ kind: '429', path: 'GetAll', retryAfterSec: 3600 });
    const err = await c.getAllContacts().then(() => undefined, (e: unknown) => e);
    assert.deepEqual(classify(err), { kind: 'transient', retryAfterMs: 3_600_000, reason: classify(err).reason });
    assert.equal(classify(asCaught(err as SyncError)).retryAfterMs, 3_600_000);
  });

  it('a Siagh pre-invoice timeout → ambiguous; a credit refusal → permanent', async () => {
    const c = new SiaghClient({ baseUrl: siagh.url, username: 'مدیر سیستم', password: 'admin', timeoutMs: 300 });
    closers.push(() => c.close());
    const code = String(siagh.addContact({ Name: 'مشتری' }).Code);
    const input = {
      suid: 'A'.repeat(32),
      header: [['codemoshtari', code], ['codemarkazforush', '1'], ['codevaseteh', '31']] as Array<readonly [string, string]>,
      rows: [{ itemCode: '1', unitName: 'عدد', qty: 1, price: 10, discount: 0 }],
    };
    siagh.faults.add({ kind: 'timeout', path: 'SaveFormData', afterHandling: true });
    const amb = await c.createPreInvoice(input as never).then(() => undefined, (e: unknown) => e);
    assert.equal(classify(asCaught(amb as SyncError)).kind, 'ambiguous');
    siagh.noCredit.add(code);
    const perm = await c.createPreInvoice({ ...input, suid: 'B'.repeat(32) } as never).then(() => undefined, (e: unknown) => e);
    assert.equal((perm as SyncError).code, 'SIAGH_FORM_ERROR');
    assert.equal(classify(asCaught(perm as SyncError)).kind, 'permanent');
  });

  it('a CRM lock-out carries the cool-down the client knows (also on the blocked logins after it)', async () => {
    const locked = new CrmSim({ users: [{ username: 'api', password: 'api-pass', status: 403 }] });
    await locked.start();
    closers.push(() => void locked.stop());
    const c = new CrmClient({ baseUrl: locked.url, username: 'api', password: 'api-pass', loginCooldownMs: 20 * 60_000 });
    closers.push(() => c.close());
    const first = await c.login().then(() => undefined, (e: unknown) => e);
    assert.equal((first as SyncError).code, 'CRM_LOCKED_OUT');
    assert.equal(classify(first).kind, 'transient');
    assert.equal(classify(first).retryAfterMs, 20 * 60_000);
    const again = await c.login().then(() => undefined, (e: unknown) => e);
    const wait = classify(asCaught(again as SyncError)).retryAfterMs!;
    assert.ok(wait > 19 * 60_000 && wait <= 20 * 60_000, String(wait));
    assert.equal(locked.loginCount, 1, 'no login during the cool-down');
  });
});

describe('retry policy: backoff and policy', () => {
  it('backoffMs: exponential ceilings without jitter, capped at maxMs', () => {
    const o = { baseMs: 5000, maxMs: 600_000, jitter: false };
    assert.deepEqual(
      [1, 2, 3, 4, 5, 6, 7, 8, 9, 100, 10_000].map((a) => backoffMs(a, o)),
      [5000, 10_000, 20_000, 40_000, 80_000, 160_000, 320_000, 600_000, 600_000, 600_000, 600_000],
    );
    assert.equal(backoffMs(0, o), 5000);
    assert.equal(backoffMs(-3, o), 5000);
    assert.equal(backoffMs(Number.NaN, o), 5000);
  });

  it('backoffMs: full jitter is uniform in [0, ceiling)', () => {
    const o = { baseMs: 1000, maxMs: 8000 };
    assert.equal(backoffMs(3, { ...o, random: () => 0 }), 0);
    assert.equal(backoffMs(3, { ...o, random: () => 0.5 }), 2000);
    assert.equal(backoffMs(3, { ...o, random: () => 0.999999 }), 3999);
    assert.equal(backoffMs(10, { ...o, random: () => 0.5 }), 4000);
    for (let i = 0; i < 200; i++) {
      const d = backoffMs(4, o);
      assert.ok(d >= 0 && d < 8000);
    }
  });

  it('the defaults ride out a one-hour outage (computed, and by simulation)', () => {
    const p = DEFAULT_RETRY_POLICY;
    assert.deepEqual(p, { maxAttempts: 30, baseMs: 5000, maxMs: 600_000, maxAgeMs: 24 * 3_600_000, jitter: true });
    const waits = Array.from({ length: p.maxAttempts - 1 }, (_, i) => i + 1);
    const ceilings = waits.map((a) => backoffMs(a, { ...p, jitter: false }));
    const total = ceilings.reduce((a, b) => a + b, 0);
    assert.equal(total, 13_835_000);
    assert.ok(total / 2 > 3_600_000, 'the mean full-jitter schedule exceeds 1 h');
    // A seeded run of 2 000 schedules: none gives up within the hour.
    let seed = 42;
    const rnd = () => ((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31);
    let shortest = Infinity;
    for (let run = 0; run < 2000; run++) {
      const sum = waits.reduce((s, a) => s + backoffMs(a, { ...p, random: rnd }), 0);
      shortest = Math.min(shortest, sum);
    }
    assert.ok(shortest > 3_600_000, `shortest schedule ${shortest} ms`);
    assert.ok(p.maxAgeMs > total);
  });

  it('retryPolicyFromEnv reads MAX_RETRY_ATTEMPTS and the age/delay variables; bad values keep the defaults', () => {
    assert.deepEqual(retryPolicyFromEnv({}), { ...DEFAULT_RETRY_POLICY });
    assert.deepEqual(retryPolicyFromEnv({ MAX_RETRY_ATTEMPTS: '12', RETRY_BASE_SECONDS: '2', RETRY_MAX_DELAY_SECONDS: '60', RETRY_MAX_AGE_HOURS: '48' }), {
      maxAttempts: 12,
      baseMs: 2000,
      maxMs: 60_000,
      maxAgeMs: 48 * 3_600_000,
      jitter: true,
    });
    const bad = retryPolicyFromEnv({ MAX_RETRY_ATTEMPTS: '0', RETRY_BASE_SECONDS: 'x', RETRY_MAX_DELAY_SECONDS: '-1', RETRY_MAX_AGE_HOURS: '' });
    assert.deepEqual(bad, { ...DEFAULT_RETRY_POLICY });
    assert.equal(retryPolicyFromEnv({ MAX_RETRY_ATTEMPTS: ' 7.9 ' }).maxAttempts, 7);
    // a maximum delay below the base is raised to it
    assert.equal(retryPolicyFromEnv({ RETRY_BASE_SECONDS: '30', RETRY_MAX_DELAY_SECONDS: '10' }).maxMs, 30_000);
  });
});
