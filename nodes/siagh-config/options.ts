/**
 * siagh-config options (kept apart from the node file, which may only `export =`): where Siagh is and how to log in. One Siagh client (one session, one contact
 * index) per config node, shared by every node that uses it; a redeploy closes it.
 */
import type { SiaghClient } from '../../lib/siagh/client';
import { envRefName } from '../../lib/env';
import { SyncError } from '../../lib/errors';
import type { Node, NodeAPI, NodeDef } from '../shared/red';
import type { RetryListener } from '../shared/config-support';
import { num } from '../shared/support';

export interface SiaghConfigDef extends NodeDef {
  baseUrl: string;
  saveFormDataPath?: string;
  indexMaxAge?: string | number;
  timeout?: string | number;
  concurrency?: string | number;
  ambiguousPreInvoice?: 'fail' | 'repeat';
  ca?: string;
}

export interface SiaghCredentials {
  username?: string;
  password?: string;
}

export interface SiaghConfigNode extends Node<SiaghCredentials> {
  baseUrl: string;
  client(): SiaghClient;
  onRetry(listener: RetryListener): () => void;
  /** The client's connection for the operator's console; undefined while no client was needed yet (creates none). */
  connectionState(): ReturnType<SiaghClient['connectionState']> | undefined;
}

export function siaghClientOptions(def: { baseUrl?: string; saveFormDataPath?: string; indexMaxAge?: unknown; timeout?: unknown; concurrency?: unknown; ambiguousPreInvoice?: string; ca?: string }, creds: SiaghCredentials) {
  for (const [label, value] of [['base URL', def.baseUrl], ['user name', creds.username], ['password', creds.password]] as const) {
    // Still a reference after deploy: NAME is set nowhere. Never used as it stands (a literal
    // "${NAME}" sent as a password is a failed login that counts toward a lock-out).
    const name = envRefName(value);
    if (name) throw new SyncError('CONFIG', `The Siagh config node's ${label} is \${${name}}, but the environment variable ${name} is not set. Set it for the Node-RED process (or enter the value) and deploy again.`);
  }
  if (!def.baseUrl) throw new SyncError('CONFIG', 'The Siagh config node has no base URL. Open it and enter the Siagh address, e.g. http://siagh.example.com.');
  if (!creds.username || !creds.password) throw new SyncError('CONFIG', 'The Siagh config node has no user name or password. Open it and enter them (a value like ${FINANCE_USERNAME} reads an environment variable).');
  const path = (def.saveFormDataPath ?? '').trim() || '/BpmsApi/SaveFormData';
  if (!/^\/[A-Za-z0-9/_-]+$/.test(path)) throw new SyncError('CONFIG', `The SaveFormData path "${path}" is not a server path (e.g. /BpmsApi/SaveFormData).`);
  return {
    baseUrl: def.baseUrl,
    username: creds.username,
    password: creds.password,
    saveFormDataPath: path,
    contactIndexMaxAgeMs: num(def.indexMaxAge, 10, 0) * 60_000,
    timeoutMs: num(def.timeout, 30, 1) * 1000,
    concurrency: Math.round(num(def.concurrency, 4, 1)),
    ambiguousPreInvoice: def.ambiguousPreInvoice === 'repeat' ? ('repeat' as const) : ('fail' as const),
    ca: def.ca?.trim() ? def.ca : undefined,
  };
}

