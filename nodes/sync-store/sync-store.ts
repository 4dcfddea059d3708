/**
 * sync-store: the config node that owns the data folder (mapping, queue, failed list, sync log,
 * poll cursor, import reports) and the queue's retry policy. Every node that keeps or reads sync
 * data points at one; none builds a file path of its own.
 *
 * Backend "file": a folder (default `siagh-sync` in the Node-RED user dir, or SYNC_DATA_DIR).
 */
import { DEFAULT_QUEUE_POLICY, QueuePolicy, queuePolicyFromEnv } from '../../lib/queue/sync-queue';
import { defaultDataDir, userPath } from '../shared/data-path';
import type { Node, NodeAPI, NodeDef } from '../shared/red';
import type { StoreSettings } from '../shared/store-ref';
import { num } from '../shared/support';
import { createNode, migrationSettings } from '../shared/saved-settings';

interface SyncStoreDef extends NodeDef {
  backend?: 'file';
  dir?: string;
  /** Blank: MAX_RETRY_ATTEMPTS from the environment, else the default. */
  maxAttempts?: string | number;
  maxAgeHours?: string | number;
  leaseSeconds?: string | number;
  /** The first retry's delay; each next one doubles, up to maxRetryDelaySeconds. */
  firstRetrySeconds?: string | number;
  maxRetryDelaySeconds?: string | number;
}

export = function (RED: NodeAPI) {
  function SyncStore(this: Node & { settings?: () => StoreSettings }, def: SyncStoreDef) {
    def = createNode(RED, this, 'sync-store', def);
    const fromEnv: QueuePolicy = queuePolicyFromEnv(process.env);
    const blank = (v: unknown) => v === undefined || v === null || String(v).trim() === '';
    const policy: QueuePolicy = {
      ...fromEnv,
      maxAttempts: blank(def.maxAttempts) ? fromEnv.maxAttempts : Math.round(num(def.maxAttempts, DEFAULT_QUEUE_POLICY.maxAttempts, 1)),
      maxAgeMs: blank(def.maxAgeHours) ? fromEnv.maxAgeMs : num(def.maxAgeHours, 24, 0.01) * 3_600_000,
      leaseMs: num(def.leaseSeconds, DEFAULT_QUEUE_POLICY.leaseMs / 1000, 1) * 1000,
      // Blank: RETRY_BASE_SECONDS / RETRY_MAX_DELAY_SECONDS from the environment, else 5 s / 600 s.
      baseMs: blank(def.firstRetrySeconds) ? fromEnv.baseMs : num(def.firstRetrySeconds, 5, 0.01) * 1000,
      maxMs: blank(def.maxRetryDelaySeconds) ? fromEnv.maxMs : num(def.maxRetryDelaySeconds, 600, 0.01) * 1000,
    };
    let dir: string | undefined;
    let problem: unknown;
    try {
      dir = userPath(def.dir, defaultDataDir(), RED.settings.userDir, 'data folder');
    } catch (e) {
      problem = e;
    }
    this.settings = () => {
      if (!dir) throw problem;
      return { dir, policy };
    };
  }
  RED.nodes.registerType('sync-store', SyncStore, { settings: migrationSettings('sync-store') });
};
