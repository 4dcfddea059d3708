/**
 * Shared by the two config nodes: one client per config node (created on first use, closed on
 * redeploy), retry notifications for the nodes that use it, and the Test connection endpoint.
 */
import type { RetryInfo } from '../../lib/http/http-core';
import { SyncError, toSyncError } from '../../lib/errors';
import type { NodeAPI, Request, Response } from './red';
import { redact, resolveEnv } from './support';

export type RetryListener = (info: RetryInfo) => void;

export interface ClientHolder<C extends { close(): void }> {
  get(): C;
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

/**
 * POST <path> with the dialog's values {id, baseUrl, username, password, ...}. A password of
 * `__PWRD__` (the editor's "unchanged" marker) or an empty one means the stored credential of node
 * `id`. `${ENV}` values are resolved. The reply never carries a secret.
 */
export function registerTestEndpoint(
  RED: NodeAPI,
  path: string,
  permission: string,
  run: (values: Record<string, string>) => Promise<TestResult>,
): void {
  RED.httpAdmin.post(path, RED.auth.needsPermission(permission), (req: Request, res: Response) => {
    const body = (req.body && typeof req.body === 'object' ? req.body : {}) as Record<string, unknown>;
    const stored = typeof body.id === 'string' && body.id ? RED.nodes.getCredentials(body.id) ?? {} : {};
    const values: Record<string, string> = {};
    for (const [k, v] of Object.entries(body)) values[k] = typeof v === 'string' ? v : v == null ? '' : String(v);
    for (const key of ['username', 'password']) {
      const v = values[key];
      if (v === undefined || v === '' || v === '__PWRD__') values[key] = stored[key] ?? '';
    }
    for (const k of Object.keys(values)) values[k] = resolveEnv(values[k]);
    const secrets = [values.password];
    run(values)
      .then((r) => res.json({ ...r, message: redact(r.message, secrets) }))
      .catch((e) => {
        const err = toSyncError(e);
        res.json({ ok: false, code: err.code, message: redact(err.message, secrets) } satisfies TestResult);
      });
  });
}
