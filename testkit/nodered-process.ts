/**
 * Start a real Node-RED (the CLI of the node-red dev dependency) as a child process on a free
 * loopback port with a given user dir, and stop it. Used by the packaging and end-to-end tests.
 */
import { ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

export interface NodeRedProcess {
  url: string;
  port: number;
  child: ChildProcess;
  log: () => string;
  stop: (signal?: NodeJS.Signals) => Promise<void>;
}

export function writeSettings(userDir: string, extra: Record<string, unknown> = {}): string {
  const file = path.join(userDir, 'test-settings.js');
  const settings = {
    uiHost: '127.0.0.1',
    credentialSecret: 'test-credential-secret',
    flowFile: 'flows.json',
    telemetry: { enabled: false, updateNotification: false },
    editorTheme: { tours: false },
    logging: { console: { level: 'info', metrics: false, audit: false } },
    ...extra,
  };
  fs.writeFileSync(file, 'module.exports = ' + JSON.stringify(settings, null, 2) + ';\n');
  return file;
}

/**
 * Node-RED's CLI as a child on a free port; ready when `readyPath` (default /settings) answers 2xx
 * after "Started flows". Under adminAuth /settings needs a token: pass the public /auth/login.
 */
export async function startNodeRed(opts: { userDir: string; settingsFile: string; env?: Record<string, string>; port?: number; redJs?: string; nodeBin?: string; readyTimeoutMs?: number; readyPath?: string }): Promise<NodeRedProcess> {
  const port = opts.port ?? (await freePort());
  // NR_RED_JS / NR_NODE_BIN (scripts/nr5-setup.sh) run the same tests on another Node-RED and Node.
  const redJs = opts.redJs ?? (process.env.NR_RED_JS || require.resolve('node-red/red.js'));
  const child = spawn(opts.nodeBin ?? (process.env.NR_NODE_BIN || process.execPath), [redJs, '-u', opts.userDir, '-s', opts.settingsFile, '-p', String(port)], {
    env: { ...process.env, ...opts.env, NODE_ENV: 'production' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d.toString()));
  child.stderr!.on('data', (d) => (out += d.toString()));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + (opts.readyTimeoutMs ?? 60_000);
  for (;;) {
    if (child.exitCode !== null) throw new Error(`Node-RED exited with ${child.exitCode}:\n${out}`);
    if (/Started flows|Server now running/.test(out)) {
      try {
        const r = await fetch(url + (opts.readyPath ?? '/settings'));
        if (r.ok) break;
      } catch {
        /* not yet */
      }
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`Node-RED did not start in time:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    url,
    port,
    child,
    log: () => out,
    stop: (signal: NodeJS.Signals = 'SIGTERM') =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
        child.once('exit', () => {
          clearTimeout(t);
          resolve();
        });
        child.kill(signal);
      }),
  };
}
