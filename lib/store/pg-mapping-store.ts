/**
 * The mapping store on PostgreSQL: the same records, rules and claims as the file store
 * (lib/store/mapping-store.ts), shared by every Node-RED instance using the database.
 *
 * Tables (component `mapping` in siagh_sync_schema, created and migrated on open):
 * - `siagh_sync_mappings`: one row per (entity type, CRM id); a unique constraint on
 *   (entity type, Siagh code) makes a code map to one CRM id only, across instances: the losing
 *   write rejects with MAPPING_CONFLICT and writes nothing. `seq` (from a sequence, renewed on every
 *   store) gives the file store's order of last write for list() and customer-number lookups.
 * - `siagh_sync_meta`: one row per meta key (poll cursors, create marks), the value as jsonb.
 * - `siagh_sync_claims`: one row per claimed entity with its token and lease expiry, by the
 *   database's clock. A claim is an insert that succeeds only when no row exists or the row's lease
 *   has run out; so a holder that dies leaves a claim that ends with its lease, and a waiter asks
 *   again, more slowly as it waits, until `waitMs`. Waiters of several instances are not served in
 *   arrival order (the file store's claims are, within its one process).
 *
 * Every write is one committed transaction before its promise resolves. A database that cannot be
 * reached rejects with STORE_IO (retryable when the server is restarting or the connection was cut),
 * its message written for the operator (describePgError), never with the connection string's secret.
 */
import { randomUUID } from 'node:crypto';
import type { Pool, PoolClient } from 'pg';
import { SyncError } from '../errors';
import { describePgError, inTransaction, isTransientPgError, migrate, type Migration } from '../pg/db';
import { badInput, buildMappingRecord, checkType, ENTITY_TYPES, errText, normalizeCrmId, normalizeCustomerNumber, normalizeSiaghCode, TYPE_LABEL, type EntityType, type MappingInput, type MappingRecord } from './mapping-record';
import type { CommitOptions } from './mapping-store';
import type { ClaimOptions, MappingBackend, MappingBackendStats } from './mapping-backend';

export const MAPPING_COMPONENT = 'mapping';
const CODE_UNIQUE = 'siagh_sync_mappings_code_unique';

export const MAPPING_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    sql: `
      CREATE SEQUENCE siagh_sync_mappings_seq;
      CREATE TABLE siagh_sync_mappings (
        entity_type text NOT NULL CHECK (entity_type IN ('contact', 'quote', 'invoice')),
        crm_id text NOT NULL,
        siagh_code text NOT NULL,
        customer_number text,
        checksum text,
        synced_at timestamptz NOT NULL,
        source text NOT NULL,
        extra jsonb,
        seq bigint NOT NULL,
        PRIMARY KEY (entity_type, crm_id),
        CONSTRAINT ${CODE_UNIQUE} UNIQUE (entity_type, siagh_code)
      );
      CREATE INDEX siagh_sync_mappings_order ON siagh_sync_mappings (entity_type, seq);
      CREATE INDEX siagh_sync_mappings_customer ON siagh_sync_mappings (customer_number, seq) WHERE entity_type = 'contact' AND customer_number IS NOT NULL;
      CREATE TABLE siagh_sync_meta (key text PRIMARY KEY, value jsonb NOT NULL);
      CREATE TABLE siagh_sync_claims (
        entity_type text NOT NULL,
        crm_id text NOT NULL,
        token text NOT NULL,
        expires_at timestamptz NOT NULL,
        PRIMARY KEY (entity_type, crm_id)
      );`,
  },
];

const DEFAULT_LEASE_MS = 60_000;
const DEFAULT_WAIT_MS = 60_000;
const DEFAULT_LIVE_LEASE_MS = 15_000;
const COLUMNS = 'entity_type, crm_id, siagh_code, customer_number, checksum, synced_at, source, extra';

export interface PgMappingStoreOptions {
  /** Default claim lease (default 60 000 ms). */
  leaseMs?: number;
  /** Default time claim() waits for another holder (default 60 000 ms). */
  waitMs?: number;
  /** Longest pause between two attempts of a waiting claim (default 200 ms). */
  claimPollMs?: number;
  /**
   * How long a claim outlives this instance (default 15 000 ms): the claims it holds are renewed
   * by a heartbeat every third of this while their holder shows signs of life (`renewClaim`) within
   * the claim's own lease, so a killed instance's claims end within this time, not their lease.
   */
  liveLeaseMs?: number;
}

/** A claim this instance holds, renewed by the heartbeat (see `liveLeaseMs`). */
interface HeldClaim {
  t: EntityType;
  id: string;
  /** The claim's lease: how long it may last without a sign of life (a renewal by its holder). */
  leaseMs: number;
  /** When its holder last showed a sign of life (this process's monotonic clock, ms). */
  lastSignAt: number;
}

interface Row {
  entity_type: EntityType;
  crm_id: string;
  siagh_code: string;
  customer_number: string | null;
  checksum: string | null;
  synced_at: Date;
  source: string;
  extra: Record<string, unknown> | null;
}

function fromRow(r: Row): MappingRecord {
  const rec: MappingRecord = { entityType: r.entity_type, crmId: r.crm_id, siaghCode: r.siagh_code, syncedAt: r.synced_at.toISOString(), source: r.source };
  if (r.customer_number !== null) rec.customerNumber = r.customer_number;
  if (r.checksum !== null) rec.checksum = r.checksum;
  if (r.extra !== null) rec.extra = Object.freeze(r.extra);
  return Object.freeze(rec);
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class PgMappingStore implements MappingBackend {
  readonly kind = 'postgres' as const;
  private readonly opts: Required<PgMappingStoreOptions>;
  private closed = false;
  private lastWriteAt: string | undefined;
  /** The claims this instance holds, by token (renewed by the heartbeat). */
  private readonly held = new Map<string, HeldClaim>();
  private heartbeat: NodeJS.Timeout | undefined;
  private beating = false;

  private constructor(
    readonly pool: Pool,
    opts: PgMappingStoreOptions,
  ) {
    this.opts = {
      leaseMs: opts.leaseMs ?? DEFAULT_LEASE_MS,
      waitMs: opts.waitMs ?? DEFAULT_WAIT_MS,
      claimPollMs: Math.max(5, opts.claimPollMs ?? 200),
      liveLeaseMs: Math.max(30, opts.liveLeaseMs ?? DEFAULT_LIVE_LEASE_MS),
    };
  }

  /**
   * The mapping store in the database `pool` reaches, its tables created or migrated first. The
   * pool stays the caller's: close() leaves it open.
   */
  static async open(pool: Pool, opts: PgMappingStoreOptions = {}): Promise<PgMappingStore> {
    try {
      await migrate(pool, MAPPING_COMPONENT, MAPPING_MIGRATIONS);
    } catch (e) {
      throw PgMappingStore.dbError(e, 'could not prepare the mapping tables');
    }
    return new PgMappingStore(pool, opts);
  }

  private static dbError(e: unknown, what: string): SyncError {
    if (e instanceof SyncError) return e;
    return new SyncError('STORE_IO', `The mapping store ${what}: ${describePgError(e)}.`, { retryable: isTransientPgError(e), cause: e });
  }

  private assertOpen(): void {
    if (this.closed) throw new SyncError('STORE_IO', 'The mapping store is closed (the node was stopped or redeployed).');
  }

  /** One statement (or transaction) with the errors an operator can act on. */
  private async run<T>(what: string, fn: () => Promise<T>): Promise<T> {
    this.assertOpen();
    try {
      return await fn();
    } catch (e) {
      throw PgMappingStore.dbError(e, what);
    }
  }

  private async one(sql: string, params: unknown[]): Promise<MappingRecord | undefined> {
    const r = await this.run('could not read a mapping', () => this.pool.query<Row>(sql, params));
    return r.rows[0] ? fromRow(r.rows[0]) : undefined;
  }

  // ------------------------------------------------------------------------------------------
  // reads

  async lookup(entityType: EntityType, crmId: string): Promise<MappingRecord | undefined> {
    this.assertOpen();
    return this.one(`SELECT ${COLUMNS} FROM siagh_sync_mappings WHERE entity_type = $1 AND crm_id = $2`, [checkType(entityType), normalizeCrmId(crmId)]);
  }

  async lookupBySiaghCode(entityType: EntityType, code: string | number): Promise<MappingRecord | undefined> {
    this.assertOpen();
    return this.one(`SELECT ${COLUMNS} FROM siagh_sync_mappings WHERE entity_type = $1 AND siagh_code = $2`, [checkType(entityType), normalizeSiaghCode(code)]);
  }

  async lookupByCustomerNumber(customerNumber: string): Promise<MappingRecord | undefined> {
    return (await this.byCustomer(customerNumber, 1))[0];
  }

  async lookupAllByCustomerNumber(customerNumber: string): Promise<MappingRecord[]> {
    return this.byCustomer(customerNumber);
  }

  private async byCustomer(customerNumber: string, limit?: number): Promise<MappingRecord[]> {
    this.assertOpen();
    const cn = normalizeCustomerNumber(customerNumber);
    if (cn === undefined) return [];
    const r = await this.run('could not read mappings', () =>
      this.pool.query<Row>(
        `SELECT ${COLUMNS} FROM siagh_sync_mappings WHERE entity_type = 'contact' AND customer_number = $1 ORDER BY seq${limit ? ` LIMIT ${limit}` : ''}`,
        [cn],
      ),
    );
    return r.rows.map(fromRow);
  }

  async list(opts: { entityType?: EntityType; offset?: number; limit?: number } = {}): Promise<MappingRecord[]> {
    this.assertOpen();
    const types = opts.entityType === undefined ? [...ENTITY_TYPES] : [checkType(opts.entityType)];
    const offset = Math.max(0, Math.floor(opts.offset ?? 0));
    const limit = opts.limit === undefined ? null : Math.max(0, Math.floor(opts.limit));
    if (limit === 0) return [];
    const r = await this.run('could not list mappings', () =>
      this.pool.query<Row>(
        `SELECT ${COLUMNS} FROM siagh_sync_mappings WHERE entity_type = ANY($1::text[])
         ORDER BY CASE entity_type WHEN 'contact' THEN 0 WHEN 'quote' THEN 1 ELSE 2 END, seq OFFSET $2 LIMIT $3`,
        [types, offset, limit],
      ),
    );
    return r.rows.map(fromRow);
  }

  async stats(): Promise<MappingBackendStats> {
    const r = await this.run('could not count mappings', () =>
      this.pool.query<{ entity_type: string; source: string; n: string }>('SELECT entity_type, source, count(*) AS n FROM siagh_sync_mappings GROUP BY entity_type, source'),
    );
    const byType: Record<string, number> = { contact: 0, quote: 0, invoice: 0 };
    const bySource: Record<string, number> = {};
    let total = 0;
    for (const row of r.rows) {
      const n = Number(row.n);
      total += n;
      byType[row.entity_type] = (byType[row.entity_type] ?? 0) + n;
      bySource[row.source] = (bySource[row.source] ?? 0) + n;
    }
    return { total, byType, bySource, lastWriteAt: this.lastWriteAt };
  }

  async getMeta<T = unknown>(key: string): Promise<T | undefined> {
    const r = await this.run('could not read a meta value', () => this.pool.query<{ value: unknown }>('SELECT value FROM siagh_sync_meta WHERE key = $1', [String(key)]));
    return r.rows.length ? (r.rows[0].value as T) : undefined;
  }

  async metaEntries(): Promise<Record<string, unknown>> {
    const r = await this.run('could not read the meta values', () => this.pool.query<{ key: string; value: unknown }>('SELECT key, value FROM siagh_sync_meta ORDER BY key'));
    const out: Record<string, unknown> = {};
    for (const row of r.rows) out[row.key] = row.value;
    return out;
  }

  // ------------------------------------------------------------------------------------------
  // writes

  /**
   * Save a mapping; resolves with the stored record once committed. MAPPING_CONFLICT (nothing
   * written) when the Siagh code is mapped to another CRM id of the same type; an existing CRM id
   * with a new code is repointed. With `claimToken`, the claim ends in the same transaction (a
   * wrong or expired token is ignored and the record still stored, as in the file store).
   */
  async store(input: MappingInput, opts: { claimToken?: string } & CommitOptions = {}): Promise<MappingRecord> {
    this.assertOpen();
    const rec = buildMappingRecord(input);
    try {
      await inTransaction(this.pool, async (c: PoolClient) => {
        await c.query(
          `INSERT INTO siagh_sync_mappings (${COLUMNS}, seq) VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, nextval('siagh_sync_mappings_seq'))
           ON CONFLICT (entity_type, crm_id) DO UPDATE SET siagh_code = EXCLUDED.siagh_code, customer_number = EXCLUDED.customer_number,
             checksum = EXCLUDED.checksum, synced_at = EXCLUDED.synced_at, source = EXCLUDED.source, extra = EXCLUDED.extra, seq = EXCLUDED.seq`,
          [rec.entityType, rec.crmId, rec.siaghCode, rec.customerNumber ?? null, rec.checksum ?? null, rec.syncedAt, rec.source, rec.extra === undefined ? null : JSON.stringify(rec.extra)],
        );
        if (opts.claimToken) await c.query('DELETE FROM siagh_sync_claims WHERE entity_type = $1 AND crm_id = $2 AND token = $3', [rec.entityType, rec.crmId, opts.claimToken]);
      });
    } catch (e) {
      const pe = e as { code?: string; constraint?: string };
      if (pe?.code === '23505' && pe.constraint === CODE_UNIQUE) {
        const holder = await this.lookupBySiaghCode(rec.entityType, rec.siaghCode);
        const h = holder?.crmId ?? '(another CRM id)';
        throw new SyncError(
          'MAPPING_CONFLICT',
          `Siagh ${TYPE_LABEL[rec.entityType]} code ${rec.siaghCode} is already mapped to CRM id ${h}; it was not mapped to CRM id ${rec.crmId} as well (nothing was written). ` +
            `The two CRM records are probably duplicates: merge them in the CRM, or delete the wrong mapping and sync again.`,
          { details: [h, rec.crmId] },
        );
      }
      throw PgMappingStore.dbError(e, `could not save the mapping of CRM id ${rec.crmId}`);
    }
    if (opts.claimToken) this.held.delete(opts.claimToken);
    this.lastWriteAt = new Date().toISOString();
    return rec;
  }

  async delete(entityType: EntityType, crmId: string): Promise<boolean> {
    this.assertOpen();
    const t = checkType(entityType);
    const id = normalizeCrmId(crmId);
    const r = await this.run(`could not delete the mapping of CRM id ${id}`, () => this.pool.query('DELETE FROM siagh_sync_mappings WHERE entity_type = $1 AND crm_id = $2', [t, id]));
    if (r.rowCount) this.lastWriteAt = new Date().toISOString();
    return !!r.rowCount;
  }

  async setMeta(key: string, value: unknown, _opts: CommitOptions = {}): Promise<void> {
    this.assertOpen();
    const k = String(key);
    if (!k) throw badInput('A meta key must not be empty.');
    if (value === undefined) {
      await this.run(`could not remove meta value ${k}`, () => this.pool.query('DELETE FROM siagh_sync_meta WHERE key = $1', [k]));
      return;
    }
    let json: string | undefined;
    try {
      json = JSON.stringify(value);
    } catch (e) {
      throw badInput(`Meta value ${k} cannot be saved as JSON (${errText(e)}).`);
    }
    if (json === undefined) throw badInput(`Meta value ${k} cannot be saved as JSON.`);
    await this.run(`could not save meta value ${k}`, () =>
      this.pool.query('INSERT INTO siagh_sync_meta (key, value) VALUES ($1, $2::jsonb) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value', [k, json]),
    );
    this.lastWriteAt = new Date().toISOString();
  }

  /** Every write is committed before it resolves: nothing waits. */
  async flush(): Promise<void> {
    this.assertOpen();
  }

  // ------------------------------------------------------------------------------------------
  // claims

  /**
   * Claim one entity across every instance: resolves with a token once this caller holds it.
   * Waiting longer than `waitMs` → MAPPING_BUSY (retryable).
   */
  async claim(entityType: EntityType, crmId: string, opts: ClaimOptions = {}): Promise<string> {
    this.assertOpen();
    const t = checkType(entityType);
    const id = normalizeCrmId(crmId);
    const leaseMs = Math.max(1, opts.leaseMs ?? this.opts.leaseMs);
    const waitMs = Math.max(0, opts.waitMs ?? this.opts.waitMs);
    const deadline = Date.now() + waitMs;
    let pause = 10;
    for (;;) {
      const token = randomUUID();
      let got: boolean;
      try {
        const r = await this.run(`could not claim CRM ${TYPE_LABEL[t]} ${id}`, () =>
          this.pool.query(
            `INSERT INTO siagh_sync_claims AS c (entity_type, crm_id, token, expires_at) VALUES ($1, $2, $3, clock_timestamp() + $4 * interval '1 millisecond')
             ON CONFLICT (entity_type, crm_id) DO UPDATE SET token = EXCLUDED.token, expires_at = EXCLUDED.expires_at WHERE c.expires_at <= clock_timestamp()
             RETURNING token`,
            [t, id, token, Math.min(leaseMs, this.opts.liveLeaseMs)],
          ),
        );
        got = !!r.rowCount;
        if (got) this.hold(token, { t, id, leaseMs, lastSignAt: performance.now() });
      } catch (e) {
        // The server restarting while we wait: keep waiting (the claims are in its tables), up to waitMs.
        if (!(e instanceof SyncError && e.retryable && Date.now() < deadline)) throw e;
        got = false;
      }
      if (got) return token;
      const left = deadline - Date.now();
      if (left <= 0) throw this.busy(t, id, waitMs);
      await sleep(Math.min(left, pause * (0.5 + Math.random())));
      pause = Math.min(this.opts.claimPollMs, pause * 2);
      if (this.closed) throw new SyncError('MAPPING_BUSY', 'The mapping store was closed while this message waited for another one; try again.', { retryable: true });
    }
  }

  private busy(t: EntityType, id: string, waitMs: number): SyncError {
    return new SyncError(
      'MAPPING_BUSY',
      `Another message for CRM ${TYPE_LABEL[t]} ${id} is still being processed` +
        (waitMs ? ` and did not finish within ${Math.round(waitMs / 100) / 10} s` : '') +
        '; try this message again later.',
      { retryable: true },
    );
  }

  /** Give a claim back. A wrong or expired token does nothing. */
  async release(entityType: EntityType, crmId: string, token: string): Promise<void> {
    let t: EntityType;
    let id: string;
    try {
      t = checkType(entityType);
      id = normalizeCrmId(crmId);
    } catch {
      return;
    }
    this.held.delete(String(token));
    await this.run('could not release a claim', () => this.pool.query('DELETE FROM siagh_sync_claims WHERE entity_type = $1 AND crm_id = $2 AND token = $3', [t, id, String(token)]));
  }

  /**
   * A sign of life from the claim's holder: the claim may last another `leaseMs` (default: its own
   * lease) without one, kept alive meanwhile by this instance's heartbeat. False for a wrong or
   * expired token.
   */
  async renewClaim(entityType: EntityType, crmId: string, token: string, leaseMs?: number): Promise<boolean> {
    let t: EntityType;
    let id: string;
    try {
      t = checkType(entityType);
      id = normalizeCrmId(crmId);
    } catch {
      return false;
    }
    const tok = String(token);
    const lease = Math.max(1, leaseMs ?? this.held.get(tok)?.leaseMs ?? this.opts.leaseMs);
    const at = performance.now();
    const r = await this.run('could not renew a claim', () =>
      this.pool.query(
        `UPDATE siagh_sync_claims SET expires_at = clock_timestamp() + $4 * interval '1 millisecond'
         WHERE entity_type = $1 AND crm_id = $2 AND token = $3 AND expires_at > clock_timestamp()`,
        [t, id, tok, Math.min(lease, this.opts.liveLeaseMs)],
      ),
    );
    if (r.rowCount) this.hold(tok, { t, id, leaseMs: lease, lastSignAt: at });
    else this.held.delete(tok);
    return !!r.rowCount;
  }

  /** Keep `token` alive with the heartbeat (started with the first claim held, stopped with the last). */
  private hold(token: string, c: HeldClaim): void {
    if (this.closed) return;
    this.held.set(token, c);
    if (this.heartbeat) return;
    this.heartbeat = setInterval(() => void this.beat(), Math.max(10, Math.floor(this.opts.liveLeaseMs / 3)));
    this.heartbeat.unref();
  }

  /**
   * The heartbeat: every claim held here whose holder showed a sign of life within its lease is
   * renewed for another `liveLeaseMs` (never past the end of that lease); the others are let run
   * out. One statement for them all; a claim that is gone (released elsewhere, expired) is dropped.
   */
  private async beat(): Promise<void> {
    if (this.beating || this.closed) return;
    const now = performance.now();
    const due: Array<{ token: string; c: HeldClaim; ms: number }> = [];
    for (const [token, c] of this.held) {
      const left = c.lastSignAt + c.leaseMs - now;
      if (left <= 0) this.held.delete(token); // no sign of life within its lease: it runs out
      else due.push({ token, c, ms: Math.max(1, Math.round(Math.min(left, this.opts.liveLeaseMs))) });
    }
    if (!due.length) {
      if (this.heartbeat) clearInterval(this.heartbeat);
      this.heartbeat = undefined;
      return;
    }
    this.beating = true;
    try {
      const r = await this.pool.query<{ token: string }>(
        `UPDATE siagh_sync_claims c SET expires_at = clock_timestamp() + v.ms * interval '1 millisecond'
         FROM unnest($1::text[], $2::text[], $3::text[], $4::int[]) AS v(entity_type, crm_id, token, ms)
         WHERE c.entity_type = v.entity_type AND c.crm_id = v.crm_id AND c.token = v.token AND c.expires_at > clock_timestamp()
         RETURNING c.token`,
        [due.map((d) => d.c.t), due.map((d) => d.c.id), due.map((d) => d.token), due.map((d) => d.ms)],
      );
      const kept = new Set(r.rows.map((x) => x.token));
      for (const d of due) if (!kept.has(d.token) && this.held.get(d.token) === d.c) this.held.delete(d.token);
    } catch {
      // The server restarting: the next beat tries again (the claims last liveLeaseMs meanwhile).
    } finally {
      this.beating = false;
    }
  }

  /** True while someone (in any instance) holds the claim on this entity. */
  async isClaimed(entityType: EntityType, crmId: string): Promise<boolean> {
    this.assertOpen();
    const t = checkType(entityType);
    const id = normalizeCrmId(crmId);
    const r = await this.run('could not read a claim', () =>
      this.pool.query('SELECT 1 FROM siagh_sync_claims WHERE entity_type = $1 AND crm_id = $2 AND expires_at > clock_timestamp()', [t, id]),
    );
    return !!r.rowCount;
  }

  /**
   * Stops this instance (waiting claims reject); the pool and the data stay. Its heartbeat stops:
   * the claims it held end within `liveLeaseMs`, as a killed instance's do.
   */
  async close(): Promise<void> {
    this.closed = true;
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = undefined;
    this.held.clear();
  }
}
