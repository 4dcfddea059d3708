/**
 * The failed list on PostgreSQL: the same entries, attempts, filters, bounds and review items as
 * the file list (lib/oplog/failed-list.ts), shared by every instance using the database.
 *
 * One table (component `failed` in siagh_sync_schema): `siagh_sync_failed`, one row per key with
 * the whole entry as jsonb and the columns the filters read (event type, CRM id, entity, code,
 * first and last failure). A failure reads and writes its row under a lock on its key (a
 * transaction-scoped advisory lock: a row lock cannot hold a key that has no row yet), so two
 * instances failing the same record count two attempts. The bounds (most entries, oldest last
 * failure) are applied at open and after each failure; the age bound at most once a minute per
 * instance, as in the file list.
 */
import type { Pool, PoolClient } from 'pg';
import { SyncError } from '../errors';
import { describePgError, inTransaction, isTransientPgError, migrate, type Migration } from '../pg/db';
import { isGuid } from '../ref';
import { eventTypeOf, failureKey } from './entry';
import { DEFAULT_MAX_AGE_DAYS, DEFAULT_MAX_ENTRIES, checkFilter, nextFailedEntry, olderThanMs, type DropReport, type FailedEntry, type FailedFilter, type FailedLimits, type FailureInput } from './failed-list';
import type { FailedBackend } from './failed-backend';

export const FAILED_COMPONENT = 'failed';
const DAY = 86_400_000;
const AGE_CHECK_MS = 60_000;

export const FAILED_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    sql: `
      CREATE TABLE siagh_sync_failed (
        key text PRIMARY KEY,
        entry jsonb NOT NULL,
        event_type text NOT NULL,
        crm_id text NOT NULL,
        entity text NOT NULL,
        code text NOT NULL,
        first_at timestamptz NOT NULL,
        last_at timestamptz NOT NULL
      );
      CREATE INDEX siagh_sync_failed_first ON siagh_sync_failed (first_at, key);
      CREATE INDEX siagh_sync_failed_last ON siagh_sync_failed (last_at, key);`,
  },
];

function validEntry(e: unknown): e is FailedEntry {
  const x = e as FailedEntry;
  return !!x && typeof x === 'object' && typeof x.key === 'string' && !!x.event && isGuid(x.event.id) && !!eventTypeOf(x.event.type);
}

export class PgFailedList implements FailedBackend {
  readonly kind = 'postgres' as const;
  onDrop: ((r: DropReport) => void) | undefined;
  dropped = 0;
  private maxEntries = DEFAULT_MAX_ENTRIES;
  private maxAgeMs = DEFAULT_MAX_AGE_DAYS * DAY;
  private lastAgeCheck = 0;
  private closed = false;
  /** Drops made before anyone listened (at open). */
  private earlyDrops: DropReport[] = [];

  private constructor(readonly pool: Pool) {}

  /** The failed list in the database `pool` reaches, its table created or migrated first. The pool stays the caller's. */
  static async open(pool: Pool, limits: FailedLimits = {}): Promise<PgFailedList> {
    try {
      await migrate(pool, FAILED_COMPONENT, FAILED_MIGRATIONS);
    } catch (e) {
      throw PgFailedList.dbError(e, 'could not prepare its table');
    }
    const list = new PgFailedList(pool);
    list.setLimits(limits);
    await list.prune(Date.now(), true); // as the file list at open: a lower bound applies at once
    return list;
  }

  private static dbError(e: unknown, what: string): SyncError {
    if (e instanceof SyncError) return e;
    return new SyncError('STORE_IO', `The failed list ${what}: ${describePgError(e)}.`, { retryable: isTransientPgError(e), cause: e });
  }

  private async run<T>(what: string, fn: () => Promise<T>): Promise<T> {
    if (this.closed) throw new SyncError('STORE_IO', 'The failed list is closed (the node was stopped or redeployed).');
    try {
      return await fn();
    } catch (e) {
      throw PgFailedList.dbError(e, what);
    }
  }

  setLimits(l: FailedLimits): void {
    if (l.maxEntries !== undefined && Number.isFinite(Number(l.maxEntries)) && Number(l.maxEntries) >= 1) this.maxEntries = Math.round(Number(l.maxEntries));
    if (l.maxAgeDays !== undefined && Number.isFinite(Number(l.maxAgeDays)) && Number(l.maxAgeDays) >= 0) this.maxAgeMs = Number(l.maxAgeDays) * DAY;
  }

  get limits(): { maxEntries: number; maxAgeDays: number } {
    return { maxEntries: this.maxEntries, maxAgeDays: this.maxAgeMs / DAY };
  }

  takeEarlyDrops(): DropReport[] {
    return this.earlyDrops.splice(0);
  }

  async size(): Promise<number> {
    const r = await this.run('could not be counted', () => this.pool.query<{ n: string }>('SELECT count(*) AS n FROM siagh_sync_failed'));
    return Number(r.rows[0].n);
  }

  async get(key: string): Promise<FailedEntry | undefined> {
    const r = await this.run('could not be read', () => this.pool.query<{ entry: FailedEntry }>('SELECT entry FROM siagh_sync_failed WHERE key = $1', [key]));
    return r.rows[0]?.entry;
  }

  async all(): Promise<FailedEntry[]> {
    const r = await this.run('could not be read', () => this.pool.query<{ entry: FailedEntry }>('SELECT entry FROM siagh_sync_failed ORDER BY first_at, key'));
    return r.rows.map((x) => x.entry);
  }

  private static async put(c: PoolClient, e: FailedEntry): Promise<void> {
    await c.query(
      `INSERT INTO siagh_sync_failed (key, entry, event_type, crm_id, entity, code, first_at, last_at) VALUES ($1, $2::jsonb, $3, $4, $5, $6, $7, $8)
       ON CONFLICT (key) DO UPDATE SET entry = EXCLUDED.entry, event_type = EXCLUDED.event_type, crm_id = EXCLUDED.crm_id, entity = EXCLUDED.entity,
         code = EXCLUDED.code, first_at = EXCLUDED.first_at, last_at = EXCLUDED.last_at`,
      [e.key, JSON.stringify(e), e.event.type, e.event.id, e.entity, e.reason.code, e.firstAt, e.lastAt],
    );
  }

  /** Record a failure: a new entry, or the existing one with attempts + 1 and the new reason. */
  async recordFailure(f: FailureInput): Promise<FailedEntry> {
    const key = failureKey(f.event.type, f.event.id);
    const now = f.now ?? Date.now();
    const at = new Date(now).toISOString();
    const entry = await this.run(`could not record the failure of ${key}`, () =>
      inTransaction(this.pool, async (c) => {
        await c.query("SELECT pg_advisory_xact_lock(hashtext('siagh_sync:failed:' || $1))", [key]);
        const r = await c.query<{ entry: FailedEntry }>('SELECT entry FROM siagh_sync_failed WHERE key = $1', [key]);
        const e = nextFailedEntry(key, r.rows[0]?.entry, f, at);
        await PgFailedList.put(c, e);
        return JSON.parse(JSON.stringify(e)) as FailedEntry;
      }),
    );
    await this.prune(now);
    return entry;
  }

  async recordSuccess(key: string): Promise<boolean> {
    return (await this.remove([key])) > 0;
  }

  async remove(keys: string[]): Promise<number> {
    if (!keys.length) return 0;
    const r = await this.run('could not remove entries', () => this.pool.query('DELETE FROM siagh_sync_failed WHERE key = ANY($1::text[])', [keys]));
    return r.rowCount ?? 0;
  }

  /**
   * Apply the bounds: entries past the age limit (at most once a minute unless `checkAge`), then
   * the least recently failed beyond the count. Returns how many went.
   */
  async prune(now = Date.now(), checkAge = false): Promise<number> {
    let n = 0;
    if (this.maxAgeMs > 0 && (checkAge || now - this.lastAgeCheck >= AGE_CHECK_MS)) {
      this.lastAgeCheck = now;
      const before = new Date(now - this.maxAgeMs).toISOString();
      const r = await this.run('could not apply its age bound', () =>
        this.pool.query<{ key: string; last_at: Date }>('DELETE FROM siagh_sync_failed WHERE last_at < $1 RETURNING key, last_at', [before]),
      );
      n += this.report(r.rows, 'age');
    }
    const r = await this.run('could not apply its size bound', () =>
      this.pool.query<{ key: string; last_at: Date }>(
        `DELETE FROM siagh_sync_failed WHERE key IN (
           SELECT key FROM siagh_sync_failed ORDER BY last_at, key
           LIMIT GREATEST(0, (SELECT count(*) FROM siagh_sync_failed) - $1))
         RETURNING key, last_at`,
        [this.maxEntries],
      ),
    );
    n += this.report(r.rows, 'count');
    return n;
  }

  private report(rows: { key: string; last_at: Date }[], why: DropReport['why']): number {
    if (!rows.length) return 0;
    rows.sort((a, b) => a.last_at.getTime() - b.last_at.getTime() || a.key.localeCompare(b.key));
    this.dropped += rows.length;
    const r: DropReport = { count: rows.length, why, oldestAt: rows[0].last_at.toISOString(), keys: rows.slice(0, 5).map((x) => x.key) };
    if (!this.onDrop) this.earlyDrops.push(r);
    else {
      try {
        this.onDrop(r);
      } catch {
        // the listener's trouble is its own
      }
    }
    return rows.length;
  }

  /** The entries a filter picks, oldest failure first. */
  async match(f: FailedFilter, now = Date.now()): Promise<FailedEntry[]> {
    checkFilter(f);
    const where: string[] = [];
    const params: unknown[] = [];
    const add = (sql: string, v: unknown) => {
      params.push(v);
      where.push(sql.replace('?', `$${params.length}`));
    };
    if (f.crmId !== undefined) add('crm_id = ANY(?::text[])', (Array.isArray(f.crmId) ? f.crmId : [f.crmId]).map((s) => s.trim().toLowerCase()));
    const ent = f.entity?.trim().toLowerCase();
    if (ent) {
      const byType = ent === 'identity' || ent === 'contact' || ent === 'quote' || ent === 'invoice';
      if (byType) add('event_type = ?', eventTypeOf(ent));
      else add('entity = ?', ent);
    }
    if (f.code) add('upper(code) = ?', f.code.trim().toUpperCase());
    if (f.olderThan !== undefined) add('last_at < ?', new Date(olderThanMs(f.olderThan, now)).toISOString());
    let sql = `SELECT entry FROM siagh_sync_failed${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY first_at, key`;
    if (f.limit) {
      params.push(Number(f.limit));
      sql += ` LIMIT $${params.length}`;
    }
    const r = await this.run('could not be searched', () => this.pool.query<{ entry: FailedEntry }>(sql, params));
    return r.rows.map((x) => x.entry);
  }

  /** Note that these entries were sent for replay (it does not make them recently failed). */
  async markReplayed(keys: string[], now = Date.now()): Promise<void> {
    if (!keys.length) return;
    const at = new Date(now).toISOString();
    await this.run('could not mark entries replayed', () =>
      this.pool.query(
        `UPDATE siagh_sync_failed SET entry = entry || jsonb_build_object('replays', COALESCE((entry->>'replays')::int, 0) + 1, 'lastReplayAt', $2::text)
         WHERE key = ANY($1::text[])`,
        [keys, at],
      ),
    );
  }

  async restore(entries: FailedEntry[]): Promise<number> {
    const valid = entries.filter(validEntry);
    if (!valid.length) return 0;
    await this.run('could not take the entries', () =>
      inTransaction(this.pool, async (c) => {
        for (const e of valid) await PgFailedList.put(c, JSON.parse(JSON.stringify(e)) as FailedEntry);
      }),
    );
    return valid.length;
  }

  /** Stops this instance; the pool and the rows stay. */
  async close(): Promise<void> {
    this.closed = true;
  }
}
