/**
 * `npm start`: Node-RED on localhost with this package installed as the Palette Manager installs
 * it (a packed tarball, production dependencies only) into a user dir inside the project
 * (`.userdir/`, git-ignored), and the three shipped flows deployed. Without CRM/Finance URLs in
 * the environment or in `.env`, both simulators are started with demo data, the simulated CRM's
 * webhooks point at the flow, and a simulated user edits the CRM now and then so syncs show up in
 * the debug sidebar.
 */
import fs from 'node:fs';
import path from 'node:path';
import { startDemoSimulators, DEMO_CRM_USER, DEMO_SIAGH_USER, Demo } from '../sim/demo';
import { seedCrmIdentities } from '../sim/seed';
import { installTarball, packPackage, shippedFlows } from '../testkit/e2e';
import { startNodeRed, writeSettings } from '../testkit/nodered-process';

const root = path.resolve(__dirname, '..', '..');

function loadDotEnv(): void {
  const file = path.join(root, '.env');
  if (fs.existsSync(file)) {
    process.loadEnvFile(file);
    console.log('Read .env');
  }
}

function installPackage(userDir: string): void {
  const packDir = path.join(userDir, '.pack');
  fs.rmSync(packDir, { recursive: true, force: true });
  installTarball(userDir, packPackage(packDir, root), 'inherit');
}

async function main(): Promise<void> {
  loadDotEnv();
  const port = Number(process.env.PORT ?? 1880) || 1880;
  let demo: Demo | undefined;
  if (!process.env.CRM_API_BASE_URL && !process.env.FINANCE_API_BASE_URL) {
    demo = await startDemoSimulators();
    Object.assign(process.env, {
      CRM_API_BASE_URL: demo.crm.url,
      CRM_USERNAME: DEMO_CRM_USER.username,
      CRM_PASSWORD: DEMO_CRM_USER.password,
      FINANCE_API_BASE_URL: demo.siagh.url,
      FINANCE_USERNAME: DEMO_SIAGH_USER.UserName,
      FINANCE_PASSWORD: DEMO_SIAGH_USER.Password,
    });
    console.log(`No CRM/Finance URLs configured: simulators started (CRM ${demo.crm.url}, Siagh ${demo.siagh.url}).`);
  }
  process.env.POLL_INTERVAL_SECONDS ||= '300';

  const userDir = path.join(root, '.userdir');
  fs.mkdirSync(userDir, { recursive: true });
  console.log('Installing the package into .userdir/ as the Palette Manager would …');
  installPackage(userDir);
  const settingsFile = writeSettings(userDir, {
    credentialSecret: process.env.NODE_RED_CREDENTIAL_SECRET || 'siagh-sync-local-development',
    logging: { console: { level: 'info', metrics: false, audit: false } },
  });
  const red = await startNodeRed({ userDir, settingsFile, port, readyTimeoutMs: 120_000 });
  red.child.stdout!.pipe(process.stdout);
  red.child.stderr!.pipe(process.stderr);

  const res = await fetch(red.url + '/flows', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'Node-RED-Deployment-Type': 'full' },
    body: JSON.stringify(shippedFlows(path.join(root, 'flows'))),
  });
  if (!res.ok) throw new Error(`Deploying the shipped flows failed: HTTP ${res.status} ${await res.text()}`);
  console.log(`\nNode-RED is running at ${red.url} with the webhook-sync, polling-sync and initial-import flows.`);

  if (demo) {
    const base = `http://127.0.0.1:${port}/webhook/crm`;
    demo.crm.setWebhooks({ urls: { Identity: `${base}/identity`, Quote: `${base}/quote`, Invoice: `${base}/invoice` }, token: process.env.WEBHOOK_TOKEN, enabled: true });
    // A simulated CRM user: a new identity every 20 s, so webhook syncs appear in the debug sidebar.
    // New CRM identities: not ones "imported from Siagh" (their 100-… numbers would collide with the
    // seeded ones), each with its own CRM-native customer number (1405-…) or none.
    let n = 0;
    const fresh = seedCrmIdentities(400, { seed: 77 }).filter((i) => !String(i.customerNumber ?? '').startsWith('100-'));
    const timer = setInterval(() => {
      const ident = fresh[n % fresh.length];
      n++;
      const { kind, ...rest } = ident;
      if (rest.customerNumber) rest.customerNumber = `1405-${String(n).padStart(6, '0')}`;
      const rec = kind === 'organization' ? demo!.crm.addOrganization(rest) : demo!.crm.addPerson(rest);
      console.log(`[demo] CRM user created ${kind} "${String((rec as { nickName?: string }).nickName ?? '')}"; the CRM sends its webhook now.`);
    }, 20_000);
    timer.unref();
    console.log('Open the debug sidebar: a simulated CRM user creates an identity every 20 s; polling syncs all identities at start.');
  }

  const stop = async () => {
    await red.stop();
    await demo?.stop();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());
  red.child.on('exit', (code) => {
    void demo?.stop().then(() => process.exit(code ?? 0));
  });
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
