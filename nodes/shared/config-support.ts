/**
 * Shared by the two config nodes: one client per config node (created on first use, closed on
 * redeploy), retry notifications for the nodes that use it, and the Test connection endpoint.
 */
import type { RetryInfo } from '../../lib/http/http-core';
import { envRefName } from '../../lib/env';
import { SyncError, toSyncError } from '../../lib/errors';
import { hideSecrets } from '../../lib/oplog/scrub';
import type { NodeAPI, Request, Response } from './red';

export type RetryListener = (info: RetryInfo) => void;

export interface ClientHolder<C extends { close(): void }> {
  get(): C;
  /** The client if one was made (never makes one). */
  peek(): C | undefined;
  onRetry(listener: RetryListener): () => void;
  close(): void;
}

export function clientHolder<C extends { close(): void }>(make: (onRetry: RetryListener) => C): ClientHolder<C> {
  let client: C | undefined;
  let closed = false;
  const listeners = new Set<RetryListener>();
  const notify: RetryListener = (info) => {
    for (const l of listeners) {
      try {
        l(info);
      } catch {
        /* a listener's fault is not the client's */
      }
    }
  };
  return {
    get() {
      // A user that comes late (a message still in flight during a redeploy) must not open a new
      // client that nothing would close.
      if (closed) throw new SyncError('NETWORK', 'The client was closed (redeploy or shutdown).');
      if (!client) client = make(notify);
      return client;
    },
    peek() {
      return closed ? undefined : client;
    },
    onRetry(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    close() {
      closed = true;
      client?.close();
      client = undefined;
      listeners.clear();
    },
  };
}

export interface TestResult {
  ok: boolean;
  message: string;
  code?: string;
  details?: Record<string, unknown>;
}

/** A deployed config node as the Test connection endpoint sees it (runtime values, env already resolved). */
interface DeployedConfig {
  type?: string;
  baseUrl?: string;
  credentials?: { username?: string; password?: string };
}

/** The editor's "unchanged" marker for a password field (never the password itself). */
const UNCHANGED = '__PWRD__';

function sameUrl(a: string | undefined, b: string | undefined): boolean {
  const norm = (u: string | undefined) => (u ?? '').trim().replace(/\/+$/, '');
  return norm(a) !== '' && norm(a) === norm(b);
}

/**
 * The values a Test connection request may use, from the dialog's body {id, baseUrl, username,
 * password, ...}:
 * - stored credentials only of a deployed node of `type` with that id, and only against the URL it
 *   was deployed with (the dialog shows its configured text, e.g. `${CRM_API_BASE_URL}`, or the
 *   deployed value). Then the deployed node's own values are used, as the runtime resolved them.
 *   A password of `__PWRD__` or empty means "the stored one"; so does the stored user name or an
 *   empty one. A node not yet deployed has nothing stored: the user types the password.
 * - the id of any other node (a core http request node, a node of the other config type) is refused.
 * - values from the request are never read from the environment: a `${NAME}` left in the base URL,
 *   user name or password is refused (only a deployed node reads the environment).
 * Throws a CONFIG SyncError with a message for the dialog; returns the values and every secret to
 * keep out of the reply.
 */
export function testConnectionValues(RED: NodeAPI, type: string, label: string, body: Record<string, unknown>): { values: Record<string, string>; secrets: string[] } {
  const values: Record<string, string> = {};
  for (const [k, v] of Object.entries(body)) {
    if (k === 'id') continue;
    values[k] = typeof v === 'string' ? v : typeof v === 'number' || typeof v === 'boolean' ? String(v) : '';
  }
  const id = typeof body.id === 'string' ? body.id : '';
  const found = (id ? RED.nodes.getNode(id) : null) as DeployedConfig | null;
  if (found && found.type !== type) {
    throw new SyncError('CONFIG', `Node ${id} is not a ${type} node. Test connection uses stored credentials only of a deployed ${type} node; type the user name and password in the dialog.`);
  }
  const deployed = found ?? undefined;
  const secrets = [values.password];
  let storedRefused = false;
  const wantsStoredPassword = !values.password || values.password === UNCHANGED;
  if (deployed) {
    let configuredUrl: string | undefined;
    RED.nodes.eachNode((n) => {
      if (n.id === id && typeof n.baseUrl === 'string') configuredUrl = n.baseUrl;
    });
    const creds = deployed.credentials ?? {};
    secrets.push(creds.password ?? '');
    if (sameUrl(values.baseUrl, configuredUrl) || sameUrl(values.baseUrl, deployed.baseUrl)) {
      const storedRaw = RED.nodes.getCredentials(id) ?? {};
      values.baseUrl = deployed.baseUrl ?? '';
      const user = (values.username ?? '').trim();
      if (!user || user === storedRaw.username || user === creds.username) values.username = creds.username ?? '';
      if (wantsStoredPassword) values.password = creds.password ?? '';
    } else if (wantsStoredPassword) {
      storedRefused = true;
      values.password = '';
    }
  } else if (values.password === UNCHANGED) {
    values.password = '';
  }
  for (const [key, what] of [['baseUrl', 'base URL'], ['username', 'user name'], ['password', 'password']] as const) {
    const name = envRefName(values[key]);
    if (name) {
      throw new SyncError(
        'CONFIG',
        `The ${what} is \${${name}}: Test connection does not read environment variables from the dialog. Type the value, or deploy the node (the deployed node reads ${name}) and test it unchanged.`,
      );
    }
  }
  if (storedRefused) {
    throw new SyncError('CONFIG', `The stored password of this ${label} connection is used only against the base URL it was deployed with. Type the password to test another URL (or deploy first).`);
  }
  return { values, secrets: secrets.filter((s): s is string => !!s) };
}

/**
 * POST /siagh-sync/<type>/test (permission <type>.write) with the dialog's values; see
 * testConnectionValues for what it may use. The reply never carries a secret.
 */
export function registerTestEndpoint(RED: NodeAPI, type: 'crm-config' | 'siagh-config', label: string, run: (values: Record<string, string>) => Promise<TestResult>): void {
  RED.httpAdmin.post(`/siagh-sync/${type}/test`, RED.auth.needsPermission(`${type}.write`), (req: Request, res: Response) => {
    const body = (req.body && typeof req.body === 'object' ? req.body : {}) as Record<string, unknown>;
    let secrets: string[] = [];
    const reply = (e: unknown) => {
      const err = toSyncError(e);
      res.json({ ok: false, code: err.code, message: hideSecrets(err.message, secrets) } satisfies TestResult);
    };
    let values: Record<string, string>;
    try {
      ({ values, secrets } = testConnectionValues(RED, type, label, body));
    } catch (e) {
      reply(e);
      return;
    }
    run(values)
      .then((r) => res.json({ ...r, message: hideSecrets(r.message, secrets) }))
      .catch(reply);
  });
}
