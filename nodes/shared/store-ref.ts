/**
 * The data folder and the queue's retry policy of a node: from the sync-store config node it
 * points at, or (no store chosen, as in flows saved before sync-store existed) the default folder
 * with the policy from the environment. Nodes ask here; none builds a data path of its own.
 */
import { SyncError } from '../../lib/errors';
import { DEFAULT_QUEUE_POLICY, QueuePolicy } from '../../lib/queue/sync-queue';
import { retryPolicyFromEnv } from '../../lib/sync/retry-policy';
import { defaultDataDir, userPath } from './data-path';
import type { NodeAPI } from './red';

export interface StoreSettings {
  /** Absolute path of the data folder: mapping, queue, failed list, sync log, poll cursor, reports. */
  dir: string;
  policy: QueuePolicy;
}

/** What a deployed sync-store config node exposes to the nodes that point at it. */
export interface StoreConfigNode {
  type: 'sync-store';
  settings(): StoreSettings;
}

export function defaultStoreSettings(RED: NodeAPI): StoreSettings {
  return { dir: userPath('', defaultDataDir(), RED.settings.userDir, 'data folder'), policy: { ...DEFAULT_QUEUE_POLICY, ...retryPolicyFromEnv(process.env) } };
}

/** The settings of the sync-store node `id`, or the defaults when none is chosen. */
export function storeSettings(RED: NodeAPI, id: unknown): StoreSettings {
  if (typeof id === 'string' && id) {
    const n = RED.nodes.getNode(id) as Partial<StoreConfigNode> | null;
    if (n && n.type === 'sync-store' && typeof n.settings === 'function') return n.settings();
    throw new SyncError('CONFIG', 'The data store this node points at (a sync-store config node) is not deployed or was deleted: open the node, choose a data store, and deploy.');
  }
  return defaultStoreSettings(RED);
}
