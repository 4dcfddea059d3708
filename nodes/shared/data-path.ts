/** Where the package keeps its files (mapping store, import reports): one rule for every node. */
import os from 'node:os';
import path from 'node:path';
import { expandEnv } from '../../lib/env';

/**
 * A path from a node setting: `${VAR}` anywhere in it is replaced from the environment (an unset
 * variable is a CONFIG error naming it); an empty setting means `dflt`; relative paths are under
 * the Node-RED user dir.
 */
export function userPath(value: string | undefined, dflt: string, userDir: string | undefined, what: string): string {
  const base = userDir || path.join(os.homedir(), '.node-red');
  const raw = (value ?? '').trim() || dflt;
  return path.resolve(base, expandEnv(raw, what));
}

/**
 * The default folder of the package's files: SYNC_DATA_DIR when set (as in the old SiaghSync
 * `.env`), else `siagh-sync` under the user dir. Every node uses it, so the webhook flow and the
 * import always share one mapping file.
 */
export function defaultDataDir(): string {
  return process.env.SYNC_DATA_DIR?.trim() || 'siagh-sync';
}
