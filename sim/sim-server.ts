/**
 * The base of both simulators: a real HTTP server on loopback with switches for faults and a
 * count of requests per endpoint. Subclasses implement `handle`.
 *
 * Faults (one rule = one or more upcoming requests matching a path):
 * - `5xx`: answer with a status ≥ 500 (default 503) and an HTML error page, as IIS does;
 * - `429`: Too Many Requests with `Retry-After` (seconds);
 * - `timeout`: accept the request and never answer (the socket stays open until the client gives up);
 * - `drop`: destroy the socket without an answer;
 * - `html`, `truncated`, `empty`: a 200 whose body is an HTML page, cut JSON, or nothing.
 * With `afterHandling: true` the request is processed first (state changes) and then the fault
 * replaces the answer: the client cannot know whether its write happened.
 *
 * `latencyMs` delays every answer. Control is through the object (tests in the same process) or
 * through `/__sim/*` (GET state, POST faults {rules:[...]} or {latencyMs}, POST reset).
 */
import http from 'node:http';
import { AddressInfo, Socket } from 'node:net';

export type FaultKind = '5xx' | '429' | 'timeout' | 'drop' | 'html' | 'truncated' | 'empty';

export interface FaultRule {
  kind: FaultKind;
  /** Substring (or RegExp) the request path must contain; all paths when absent. */
  path?: string | RegExp;
  /** How many matching requests it hits. Default 1. */
  times?: number;
  status?: number;
  retryAfterSec?: number;
  afterHandling?: boolean;
}

export interface SimRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: http.IncomingHttpHeaders;
  rawBody: string;
  /** JSON body, undefined when empty; `INVALID_JSON` when it does not parse. */
  body: unknown;
}

export interface SimResponse {
  status: number;
  body?: unknown;
  /** A raw text body instead of JSON. */
  text?: string;
  headers?: Record<string, string>;
}

export const INVALID_JSON = Symbol('invalid-json');

export class Faults {
  latencyMs = 0;
  private rules: Array<FaultRule & { left: number }> = [];

  add(...rules: FaultRule[]): void {
    for (const r of rules) this.rules.push({ ...r, left: r.times ?? 1 });
  }

  clear(): void {
    this.rules = [];
    this.latencyMs = 0;
  }

  get pending(): number {
    return this.rules.reduce((n, r) => n + r.left, 0);
  }

  take(path: string): FaultRule | undefined {
    const i = this.rules.findIndex((r) => r.left > 0 && (r.path === undefined || (typeof r.path === 'string' ? path.includes(r.path) : r.path.test(path))));
    if (i < 0) return undefined;
    const r = this.rules[i];
    r.left--;
    if (r.left <= 0) this.rules.splice(i, 1);
    return r;
  }
}

export abstract class SimServer {
  readonly faults = new Faults();
  /** Requests received per `METHOD /path` (faulted ones included). */
  readonly counts = new Map<string, number>();
  private server?: http.Server;
  private readonly sockets = new Set<Socket>();
  private baseUrl = '';

  get url(): string {
    return this.baseUrl;
  }

  count(methodAndPath: string): number {
    return this.counts.get(methodAndPath) ?? 0;
  }

  resetCounts(): void {
    this.counts.clear();
  }

  protected abstract handle(req: SimRequest): Promise<SimResponse> | SimResponse;

  /** The state tests and benchmarks read (records, counters). */
  abstract state(): Record<string, unknown>;

  /** Forget every record and counter (back to the seed). */
  abstract reset(): void;

  async start(port = 0, host = '127.0.0.1'): Promise<string> {
    const server = http.createServer((req, res) => {
      this.onRequest(req, res).catch((e) => {
        if (!res.headersSent) {
          res.writeHead(500, { 'content-type': 'text/plain' });
          res.end(String(e?.stack ?? e));
        }
      });
    });
    server.keepAliveTimeout = 5000;
    server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    this.server = server;
    const addr = server.address() as AddressInfo;
    this.baseUrl = `http://${host}:${addr.port}`;
    return this.baseUrl;
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    for (const sock of this.sockets) sock.destroy();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  private async onRequest(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://sim');
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const c of req) {
      size += (c as Buffer).length;
      if (size > 20 * 1024 * 1024) {
        res.writeHead(413).end();
        return;
      }
      chunks.push(c as Buffer);
    }
    const rawBody = Buffer.concat(chunks).toString('utf8');
    let body: unknown;
    if (rawBody.trim() !== '') {
      try {
        body = JSON.parse(rawBody);
      } catch {
        body = INVALID_JSON;
      }
    }
    const path = url.pathname;
    if (path.startsWith('/__sim/')) return this.control(path, req.method ?? 'GET', body, res);

    const key = `${req.method} ${path}`;
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
    if (this.faults.latencyMs > 0) await new Promise((r) => setTimeout(r, this.faults.latencyMs));

    const fault = this.faults.take(path);
    if (fault && !fault.afterHandling) return this.applyFault(fault, req, res);
    const out = await this.handle({ method: req.method ?? 'GET', path, query: url.searchParams, headers: req.headers, rawBody, body });
    if (fault) return this.applyFault(fault, req, res);
    this.write(res, out);
  }

  private write(res: http.ServerResponse, out: SimResponse): void {
    if (out.text !== undefined) {
      res.writeHead(out.status, { 'content-type': 'text/plain; charset=utf-8', ...out.headers });
      res.end(out.text);
      return;
    }
    if (out.body === undefined) {
      res.writeHead(out.status, { 'content-length': '0', ...out.headers });
      res.end();
      return;
    }
    const json = JSON.stringify(out.body);
    res.writeHead(out.status, { 'content-type': 'application/json; charset=utf-8', 'content-length': String(Buffer.byteLength(json)), ...out.headers });
    res.end(json);
  }

  private applyFault(f: FaultRule, req: http.IncomingMessage, res: http.ServerResponse): void {
    switch (f.kind) {
      case '5xx':
        res.writeHead(f.status ?? 503, { 'content-type': 'text/html' });
        res.end('<html><body><h1>Service Unavailable</h1></body></html>');
        return;
      case '429':
        res.writeHead(429, { 'retry-after': String(f.retryAfterSec ?? 1), 'content-type': 'text/plain' });
        res.end('Too Many Requests');
        return;
      case 'timeout':
        // Keep the socket open; stop() or the client's timeout ends it.
        return;
      case 'drop':
        req.socket.destroy();
        return;
      case 'html':
        res.writeHead(200, { 'content-type': 'text/html' });
        res.end('<!DOCTYPE html><html><body>Runtime Error</body></html>');
        return;
      case 'truncated':
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{"Errors": [{"ColName": "", "Descr');
        return;
      case 'empty':
        res.writeHead(200, { 'content-length': '0' });
        res.end();
        return;
    }
  }

  private control(path: string, method: string, body: unknown, res: http.ServerResponse): void {
    const b = (body && typeof body === 'object' ? body : {}) as { rules?: FaultRule[]; latencyMs?: number };
    if (path === '/__sim/state' && method === 'GET') {
      return this.write(res, { status: 200, body: { ...this.state(), counts: Object.fromEntries(this.counts), faultsPending: this.faults.pending, latencyMs: this.faults.latencyMs } });
    }
    if (path === '/__sim/faults' && method === 'POST') {
      if (typeof b.latencyMs === 'number') this.faults.latencyMs = b.latencyMs;
      if (Array.isArray(b.rules)) this.faults.add(...b.rules);
      return this.write(res, { status: 200, body: { ok: true, faultsPending: this.faults.pending } });
    }
    if (path === '/__sim/reset' && method === 'POST') {
      this.reset();
      this.faults.clear();
      this.counts.clear();
      return this.write(res, { status: 200, body: { ok: true } });
    }
    return this.write(res, { status: 404, body: { error: 'unknown control path' } });
  }
}
