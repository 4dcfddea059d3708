/**
 * The small part of Node-RED's runtime API this package uses, typed here once so node files stay
 * short (the community @types/node-red pulls Express 5 types that do not match Node-RED 4's
 * Express 4).
 */
import type { Request, Response, NextFunction, RequestHandler } from './express-types';

export interface NodeMessage {
  _msgid?: string;
  payload?: unknown;
  topic?: string;
  [key: string]: unknown;
}

export type NodeStatus = { fill?: 'red' | 'green' | 'yellow' | 'blue' | 'grey'; shape?: 'ring' | 'dot'; text?: string } | Record<string, never>;

export interface NodeDef {
  id: string;
  type: string;
  name?: string;
  z?: string;
  [key: string]: unknown;
}

export interface Node<Creds = Record<string, string | undefined>> {
  id: string;
  type: string;
  name?: string;
  z?: string;
  credentials: Creds;
  on(event: 'input', handler: (msg: NodeMessage, send: (msg: NodeMessage | Array<NodeMessage | NodeMessage[] | null> | null) => void, done: (err?: Error) => void) => void): void;
  on(event: 'close', handler: ((removed: boolean, done: () => void) => void) | ((done: () => void) => void) | (() => void)): void;
  send(msg: NodeMessage | Array<NodeMessage | NodeMessage[] | null> | null): void;
  status(status: NodeStatus): void;
  log(msg: unknown): void;
  warn(msg: unknown): void;
  error(err: unknown, msg?: NodeMessage): void;
  debug(msg: unknown): void;
  trace(msg: unknown): void;
  receive(msg?: NodeMessage): void;
  context(): { get(key: string): unknown; set(key: string, value: unknown): void; flow: unknown; global: unknown };
}

export interface NodeAPI {
  nodes: {
    createNode(node: object, def: NodeDef): void;
    getNode(id: string): unknown;
    getCredentials(id: string): Record<string, string | undefined> | undefined;
    registerType(type: string, ctor: (this: any, def: any) => void, opts?: { credentials?: Record<string, { type: 'text' | 'password' }>; settings?: Record<string, unknown> }): void;
    eachNode(cb: (n: NodeDef) => void): void;
  };
  httpAdmin: {
    get(path: string, ...handlers: RequestHandler[]): void;
    post(path: string, ...handlers: RequestHandler[]): void;
  };
  httpNode?: unknown;
  auth: { needsPermission(permission: string): RequestHandler };
  settings: { userDir?: string; [k: string]: unknown };
  log: { info(m: unknown): void; warn(m: unknown): void; error(m: unknown): void; debug(m: unknown): void };
  util: {
    generateId(): string;
    cloneMessage<T>(msg: T): T;
    evaluateNodeProperty(value: unknown, type: string, node: unknown, msg: unknown, cb?: (err: Error | null, value: unknown) => void): unknown;
  };
  _: (key: string, subs?: Record<string, unknown>) => string;
  version(): string;
}

export type { Request, Response, NextFunction, RequestHandler };
