/**
 * One leader across the Node-RED instances that share a PostgreSQL store: the instance that holds
 * a session-level advisory lock on a connection of its own. Polling and other scheduled work run
 * on the leader only; the others stand by and try again every `retryMs`. When the leader's
 * connection dies (its process stopped, the network cut, the server restarted) PostgreSQL ends
 * its session and with it the lock, so a standby takes over at its next try.
 *
 * The leader checks its own connection every `checkMs` as well: a leader whose connection broke
 * steps down at once (it cannot know whether another took over) and competes again after two of
 * the standbys' tries, so a standby takes the lead first.
 */
import { Client } from 'pg';
import { describePgError, PgOptions, poolConfig } from './db';

export type LeaderRole = 'leader' | 'standby' | 'waiting';

export interface LeaderOptions {
  /** Which work this election is for; one lock per name per database. */
  name: string;
  /** How often a standby tries to take the lock (ms). Default 2000. */
  retryMs?: number;
  /** How often the leader checks that its connection is alive (ms). Default 2000. */
  checkMs?: number;
  /** Told on every change of role; `reason` says why the database could not be asked ('waiting'). */
  onChange?: (role: LeaderRole, reason?: string) => void;
}

/** The 64-bit lock key of a name, computed by the server (the same on every instance). */
const LOCK_SQL = "SELECT pg_try_advisory_lock(hashtextextended('siagh_sync:leader:' || $1, 0)) AS ok";

export class Leader {
  private client: Client | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private busy = false;
  private current: LeaderRole = 'standby';
  private reason: string | undefined;
  private cooldownUntil = 0;
  private readonly retryMs: number;
  private readonly checkMs: number;

  private constructor(
    private readonly opts: PgOptions,
    private readonly lo: LeaderOptions,
  ) {
    this.retryMs = Math.max(50, lo.retryMs ?? 2000);
    this.checkMs = Math.max(50, lo.checkMs ?? 2000);
  }

  /** Starts competing at once; resolves after the first try (leader, standby or waiting). */
  static async start(opts: PgOptions, lo: LeaderOptions): Promise<Leader> {
    poolConfig(opts); // refuses unusable options with the reason
    const l = new Leader(opts, lo);
    await l.tick();
    return l;
  }

  get role(): LeaderRole {
    return this.current;
  }

  get isLeader(): boolean {
    return this.current === 'leader';
  }

  private set(role: LeaderRole, reason?: string): void {
    if (role === this.current && reason === this.reason) return;
    this.current = role;
    this.reason = reason;
    this.lo.onChange?.(role, reason);
  }

  private schedule(): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.tick(), this.current === 'leader' ? this.checkMs : this.retryMs);
    this.timer.unref();
  }

  /** A leader that lost its session lets the standbys try first (two of their retries). */
  private stepDown(): void {
    if (this.current === 'leader') this.cooldownUntil = Date.now() + 2 * this.retryMs;
  }

  private async drop(): Promise<void> {
    const c = this.client;
    this.client = undefined;
    if (c) await c.end().catch(() => undefined);
  }

  private async tick(): Promise<void> {
    if (this.stopped || this.busy) return;
    this.busy = true;
    try {
      if (Date.now() < this.cooldownUntil) return;
      if (!this.client) {
        const c = new Client(poolConfig(this.opts));
        c.on('error', () => {
          // The session is gone, and the lock with it: step down now, compete again at the next tick.
          if (this.client === c) {
            this.client = undefined;
            void c.end().catch(() => undefined);
            this.stepDown();
            if (!this.stopped) this.set('standby');
          }
        });
        this.client = c;
        await c.connect();
      }
      if (this.current === 'leader') {
        await this.client.query('SELECT 1');
      } else {
        const r = await this.client.query<{ ok: boolean }>(LOCK_SQL, [this.lo.name]);
        if (this.stopped) return;
        this.set(r.rows[0]?.ok ? 'leader' : 'standby');
      }
    } catch (e) {
      await this.drop();
      this.stepDown();
      if (!this.stopped) this.set('waiting', describePgError(e));
    } finally {
      this.busy = false;
      this.schedule();
    }
  }

  /** Give up the lead (if held) and stop competing; the lock ends with the session. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.drop();
  }
}
