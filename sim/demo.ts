/**
 * Both simulators started together and seeded with realistic Persian data, for `npm run sim` and
 * `npm start`: a few hundred Siagh contacts, CRM persons and organizations, some quotes.
 */
import { CrmSim } from './crm-sim';
import { seedCrmIdentities, seedQuotes, seedSiaghContacts } from './seed';
import { SiaghSim } from './siagh-sim';

export const DEMO_SIAGH_USER = { UserName: 'مدیر سیستم', Password: 'siagh-demo' };
export const DEMO_CRM_USER = { username: 'api', password: 'crm-demo' };

export interface Demo {
  siagh: SiaghSim;
  crm: CrmSim;
  stop(): Promise<void>;
}

export async function startDemoSimulators(opts: { siaghPort?: number; crmPort?: number; contacts?: number; identities?: number; quotes?: number; seed?: number } = {}): Promise<Demo> {
  const seed = opts.seed ?? 1404;
  const siagh = new SiaghSim({ users: [DEMO_SIAGH_USER], contacts: seedSiaghContacts(opts.contacts ?? 300, { seed, firstCode: 8300, admins: 1 }) });
  const crm = new CrmSim({ users: [DEMO_CRM_USER] });
  const ids: string[] = [];
  for (const ident of seedCrmIdentities(opts.identities ?? 40, { seed })) {
    const { kind, ...rest } = ident;
    const rec = kind === 'organization' ? crm.addOrganization(rest, { webhook: false }) : crm.addPerson(rest, { webhook: false });
    ids.push(String((rec as { crmId: string }).crmId));
  }
  for (const q of seedQuotes(ids, opts.quotes ?? 10, { seed })) crm.addQuote(q as Record<string, unknown> & { identityId?: string }, { webhook: false });
  await siagh.start(opts.siaghPort ?? 0);
  await crm.start(opts.crmPort ?? 0);
  return { siagh, crm, stop: async () => void (await Promise.all([siagh.stop(), crm.stop()])) };
}
