/**
 * crm-config options (kept apart from the node file, which may only `export =`): where the Payamgostar CRM is and how to log in. One CRM client per config node,
 * shared by every node that uses it; a redeploy closes it (no timers or sockets left).
 */
import type { CrmClient } from '../../lib/crm/client';
import { envRefName } from '../../lib/env';
import { SyncError } from '../../lib/errors';
import type { Node, NodeAPI, NodeDef } from '../shared/red';
import type { RetryListener } from '../shared/config-support';
import { num } from '../shared/support';

export interface CrmConfigDef extends NodeDef {
  baseUrl: string;
  timeout?: string | number;
  concurrency?: string | number;
  ca?: string;
}

export interface CrmCredentials {
  username?: string;
  password?: string;
}

export interface CrmConfigNode extends Node<CrmCredentials> {
  baseUrl: string;
  client(): CrmClient;
  onRetry(listener: RetryListener): () => void;
  /** The client's connection for the operator's console; undefined while no client was needed yet (creates none). */
  connectionState(): ReturnType<CrmClient['connectionState']> | undefined;
}

export function crmClientOptions(def: { baseUrl?: string; timeout?: unknown; concurrency?: unknown; ca?: string }, creds: CrmCredentials) {
  for (const [label, value] of [['base URL', def.baseUrl], ['user name', creds.username], ['password', creds.password]] as const) {
    // Still a reference after deploy: NAME is set nowhere. Never used as it stands (a literal
    // "${NAME}" sent as a password is a failed login that counts toward a lock-out).
    const name = envRefName(value);
    if (name) throw new SyncError('CONFIG', `The CRM config node's ${label} is \${${name}}, but the environment variable ${name} is not set. Set it for the Node-RED process (or enter the value) and deploy again.`);
  }
  if (!def.baseUrl) throw new SyncError('CONFIG', 'The CRM config node has no base URL. Open it and enter the CRM address, e.g. http://crm.example.com.');
  if (!creds.username || !creds.password) throw new SyncError('CONFIG', 'The CRM config node has no user name or password. Open it and enter the API user (a value like ${CRM_USERNAME} reads an environment variable).');
  return {
    baseUrl: def.baseUrl,
    username: creds.username,
    password: creds.password,
    timeoutMs: num(def.timeout, 30, 1) * 1000,
    concurrency: Math.round(num(def.concurrency, 4, 1)),
    ca: def.ca?.trim() ? def.ca : undefined,
  };
}

