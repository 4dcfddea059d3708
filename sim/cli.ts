/** `npm run sim`: both simulators on loopback with demo data, until Ctrl-C. */
import { DEMO_CRM_USER, DEMO_SIAGH_USER, startDemoSimulators } from './demo';

async function main(): Promise<void> {
  const demo = await startDemoSimulators({
    siaghPort: Number(process.env.SIAGH_SIM_PORT ?? 0) || 0,
    crmPort: Number(process.env.CRM_SIM_PORT ?? 0) || 0,
  });
  if (process.env.WEBHOOK_URL) demo.crm.setWebhooks({ url: process.env.WEBHOOK_URL, token: process.env.WEBHOOK_TOKEN, enabled: true });
  console.log(`Siagh simulator: ${demo.siagh.url}  (user "${DEMO_SIAGH_USER.UserName}", password "${DEMO_SIAGH_USER.Password}")`);
  console.log(`CRM simulator:   ${demo.crm.url}  (user "${DEMO_CRM_USER.username}", password "${DEMO_CRM_USER.password}")`);
  console.log('Faults and state: POST <url>/__sim/faults {"latencyMs":100,"rules":[{"kind":"5xx"}]}, GET <url>/__sim/state');
  const stop = () => void demo.stop().then(() => process.exit(0));
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
