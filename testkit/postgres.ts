/**
 * A real PostgreSQL server for tests and benchmarks: a throwaway cluster made with Debian's
 * `initdb` in a temporary folder, listening on 127.0.0.1 only (a free port) and on a Unix socket
 * inside that folder. Nothing of the machine's own PostgreSQL service is used.
 *
 * - `scripts/pg-setup.sh` installs the binaries (`npm test` runs it); `PG_BIN` names another
 *   `bin/` folder holding initdb, pg_ctl and postgres.
 * - As root (CI), the cluster runs as the `postgres` user (initdb refuses root).
 * - The superuser `postgres` and the application role `siagh_sync` log in over TCP with a
 *   password (scram-sha-256), so a wrong password is refused as it would be on a real server.
 * - `database()` makes a new, empty database owned by the application role and returns its URL:
 *   each test gets its own.
 * - `restart()` and `stop()` are what an operator's restart and a crash of the server look like
 *   to the clients; the cluster is removed when the process exits.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { Client } from 'pg';

export const APP_ROLE = 'siagh_sync';

export interface PgServerOptions {
  /** Real fsync and synchronous commit (benchmarks); tests default to off, which is faster and survives a clean restart. */
  durable?: boolean;
}

function binDir(): string {
  if (process.env.PG_BIN) return process.env.PG_BIN;
  const base = '/usr/lib/postgresql';
  const versions = fs.existsSync(base) ? fs.readdirSync(base).filter((v) => fs.existsSync(path.join(base, v, 'bin', 'initdb'))) : [];
  versions.sort((a, b) => Number(b) - Number(a));
  if (!versions.length) throw new Error('PostgreSQL binaries not found: run `bash scripts/pg-setup.sh` (installs Debian\'s postgresql), or set PG_BIN');
  return path.join(base, versions[0], 'bin');
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

const live = new Set<PgServer>();
process.on('exit', () => {
  for (const s of live) s.removeNow();
});

export class PgServer {
  readonly host = '127.0.0.1';
  private constructor(
    readonly port: number,
    readonly dir: string,
    private readonly bin: string,
    private readonly asUser: string | undefined,
    readonly superPassword: string,
    readonly appPassword: string,
  ) {}

  static async start(opts: PgServerOptions = {}): Promise<PgServer> {
    const bin = binDir();
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'siagh-pg-'));
    fs.chmodSync(root, 0o755);
    const dir = path.join(root, 'data');
    fs.mkdirSync(dir, { mode: 0o700 });
    const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
    const asUser = isRoot ? 'postgres' : undefined;
    const superPassword = randomBytes(12).toString('hex');
    const appPassword = randomBytes(12).toString('hex');
    const pwfile = path.join(root, 'pw');
    fs.writeFileSync(pwfile, superPassword + '\n', { mode: 0o600 });
    if (asUser) {
      const uid = Number(execFileSync('id', ['-u', asUser]).toString().trim());
      const gid = Number(execFileSync('id', ['-g', asUser]).toString().trim());
      fs.chownSync(dir, uid, gid);
      fs.chownSync(pwfile, uid, gid);
    }
    const port = await freePort();
    const server = new PgServer(port, dir, bin, asUser, superPassword, appPassword);
    server.run('initdb', ['-D', dir, '-U', 'postgres', '--pwfile', pwfile, '--auth-local=trust', '--auth-host=scram-sha-256', '-E', 'UTF8', '--locale=C.UTF-8', '--no-sync']);
    fs.rmSync(pwfile);
    const conf = [
      `listen_addresses = '127.0.0.1'`,
      `port = ${port}`,
      `unix_socket_directories = '${dir}'`,
      `max_connections = 200`,
      ...(opts.durable ? [] : ['fsync = off', 'synchronous_commit = off', 'full_page_writes = off']),
    ];
    fs.appendFileSync(path.join(dir, 'postgresql.conf'), '\n' + conf.join('\n') + '\n');
    live.add(server);
    server.pgctl('start');
    await server.admin(async (c) => {
      await c.query(`CREATE ROLE ${APP_ROLE} LOGIN PASSWORD '${appPassword}'`);
    });
    return server;
  }

  private run(tool: string, args: string[]): string {
    const exe = path.join(this.bin, tool);
    const [cmd, argv] = this.asUser ? ['runuser', ['-u', this.asUser, '--', exe, ...args]] : [exe, args];
    return execFileSync(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'], cwd: os.tmpdir() }).toString();
  }

  private pgctl(action: 'start' | 'stop' | 'restart', mode = 'fast'): void {
    const args = ['-D', this.dir, '-w', '-t', '60'];
    if (action !== 'stop') args.push('-l', path.join(this.dir, 'server.log'));
    if (action !== 'start') args.push('-m', mode);
    this.run('pg_ctl', [action, ...args]);
  }

  /** The URL of the superuser's maintenance database. */
  get superUrl(): string {
    return `postgres://postgres:${this.superPassword}@${this.host}:${this.port}/postgres`;
  }

  /** The URL of database `name` as the application role (password included). */
  url(name: string, password = this.appPassword): string {
    return `postgres://${APP_ROLE}:${encodeURIComponent(password)}@${this.host}:${this.port}/${name}`;
  }

  async admin<T>(fn: (c: Client) => Promise<T>): Promise<T> {
    const c = new Client({ connectionString: this.superUrl });
    await c.connect();
    try {
      return await fn(c);
    } finally {
      await c.end();
    }
  }

  /** A new, empty database owned by the application role; returns its URL. */
  async database(name = `t_${randomBytes(5).toString('hex')}`): Promise<string> {
    if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`database name "${name}" is not a plain identifier`);
    await this.admin((c) => c.query(`CREATE DATABASE ${name} OWNER ${APP_ROLE}`));
    return this.url(name);
  }

  /** A clean restart (as an operator's `systemctl restart`): connections are cut, data stays. */
  restart(): void {
    this.pgctl('restart');
  }

  /** Stops the server: `immediate` is what a crash looks like to the clients. */
  stop(mode: 'fast' | 'immediate' = 'fast'): void {
    this.pgctl('stop', mode);
  }

  start(): void {
    this.pgctl('start');
  }

  /** Stops the server and removes its folder. */
  async close(): Promise<void> {
    this.removeNow();
  }

  /** Synchronous, for process exit. */
  removeNow(): void {
    if (!live.delete(this)) return;
    try {
      this.pgctl('stop', 'immediate');
    } catch {
      /* already stopped */
    }
    fs.rmSync(path.dirname(this.dir), { recursive: true, force: true });
  }
}
