/**
 * Fault matrix, the session column under load (client level, real HTTP against the simulators):
 * a session / token that expires TWICE while many requests are queued behind the concurrency
 * limit. Found by the polling fault matrix: a queued request still carrying the first session was
 * refused, was handed the session another request had renewed meanwhile — already expired by the
 * second expiry — and failed (SIAGH_SESSION_EXPIRED / CRM_ERROR) without ever logging in itself.
 */
import assert from 'node:assert/strict';
import { CrmClient } from '../../lib/crm/client';
import { SiaghClient } from '../../lib/siagh/client';
import { syncContact } from '../../lib/sync/contact-sync';
import type { CrmIdentity } from '../../lib/types';
import { CrmSim } from '../../sim/crm-sim';
import { SiaghSim } from '../../sim/siagh-sim';

const N = 12;

function identity(i: number): CrmIdentity {
  return {
    crmId: `6a1c7e52-0000-4000-8000-${String(i).padStart(12, '0')}`,
    kind: 'person',
    nickName: `مشتری ${i}`,
    firstName: 'مشتری',
    lastName: String(i),
    phoneContacts: [{ default: true, phoneType: 'موبایل', phoneNumber: `0912${String(3_000_000 + i).padStart(7, '0')}` }],
  } as unknown as CrmIdentity;
}

describe('fault matrix × sessions: expiry twice while requests are queued (client level)', () => {
  for (const shape of ['errors200', 'http401'] as const) {
    it(`Siagh (${shape}): ${N} concurrent creates, sessions expired at the 2nd and 7th save → all created once`, async () => {
      const sim = new SiaghSim({ users: [{ UserName: 'u', Password: 'p' }], expiryShape: shape });
      await sim.start();
      const client = new SiaghClient({ baseUrl: sim.url, username: 'u', password: 'p', concurrency: 4, retryBaseMs: 10 });
      try {
        let saves = 0;
        sim.onSave = (_s, reply) => {
          if ([2, 7].includes(++saves)) sim.expireAllSessions();
          return reply;
        };
        const res = await Promise.allSettled(Array.from({ length: N }, (_, i) => syncContact(client, identity(i), null)));
        const failed = res.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => `${r.reason.code}: ${r.reason.message}`);
        assert.deepEqual(failed, []);
        assert.equal(sim.contacts().length, N, 'each created once');
        assert.equal(sim.loginCount, 3, 'one login, then one per expiry');
      } finally {
        client.close();
        await sim.stop();
      }
    });
  }

  it(`Siagh: a session refused right after the client's own login is still SIAGH_SESSION_EXPIRED (no loop)`, async () => {
    const sim = new SiaghSim({ users: [{ UserName: 'u', Password: 'p' }], expiryShape: 'http401' });
    await sim.start();
    const client = new SiaghClient({ baseUrl: sim.url, username: 'u', password: 'p', retryBaseMs: 10 });
    try {
      sim.onSave = (_s, reply) => {
        sim.expireAllSessions();
        return { status: 401, body: { Message: 'Authorization has been denied for this request.' } };
      };
      await assert.rejects(syncContact(client, identity(99), null), (e: { code?: string }) => e.code === 'SIAGH_SESSION_EXPIRED');
      assert.ok(sim.loginCount <= 3, `bounded logins (${sim.loginCount})`);
    } finally {
      client.close();
      await sim.stop();
    }
  });

  it(`CRM: ${N} concurrent reads, tokens expired after the 2nd and 7th read served → all read`, async () => {
    const sim = new CrmSim({ users: [{ username: 'api', password: 'pw' }], webhooks: false });
    await sim.start();
    const client = new CrmClient({ baseUrl: sim.url, username: 'api', password: 'pw', concurrency: 4, retryBaseMs: 10 });
    try {
      const ids = Array.from({ length: N }, (_, i) => sim.addPerson({ nickName: `p${i}` }, { webhook: false }).crmId);
      let reads = 0;
      // Like Siagh's onSave: counted when a read was served, then every token is expired.
      type Handle = (r: { path: string }) => { status: number };
      const orig = (sim as unknown as { handle: Handle }).handle.bind(sim);
      (sim as unknown as { handle: Handle }).handle = (req) => {
        const out = orig(req);
        if (req.path.endsWith('/get') && out.status === 200 && [2, 7].includes(++reads)) sim.expireAllTokens();
        return out;
      };
      const res = await Promise.allSettled(ids.map((id) => client.getPerson(id)));
      const failed = res.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => `${r.reason.code}: ${r.reason.message}`);
      assert.deepEqual(failed, []);
      assert.ok(sim.loginCount >= 2 && sim.loginCount <= 5, `logins ${sim.loginCount}`);
    } finally {
      client.close();
      await sim.stop();
    }
  });
});
