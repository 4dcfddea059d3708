/** Small helpers shared by the benchmark parts (arguments, numbers, the summary table). */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** `--name=value` (or `--name` → 'true') from the command line. */
export function argValue(name: string): string | undefined {
  const a = process.argv.find((x) => x === `--${name}` || x.startsWith(`--${name}=`));
  if (!a) return undefined;
  return a.includes('=') ? a.slice(a.indexOf('=') + 1) : 'true';
}

/** A positive number from `--arg`, else from the environment variable, else the default. */
export function numSetting(arg: string, env: string, dflt: number): number {
  const raw = argValue(arg) ?? process.env[env];
  if (raw === undefined || raw.trim() === '') return dflt;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0) throw new Error(`--${arg} / ${env} must be a number ≥ 0 (got "${raw}")`);
  return n;
}

/** Value at quantile q (0–1) of an ascending array (nearest rank). */
export function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i];
}

export function round(n: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

export function fmtInt(n: number): string {
  return Math.round(n).toLocaleString('en');
}

export function fmtMs(ms: number): string {
  return ms >= 10_000 ? `${(ms / 1000).toFixed(1)} s` : ms >= 100 ? `${Math.round(ms)} ms` : `${ms.toFixed(2)} ms`;
}

/** A plain-text table: column widths from the longest cell, a rule under the header. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (c ?? '').padEnd(widths[i])).join(' | ').trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('-+-'), ...rows.map(line)].join('\n');
}

/** Sleep. */
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * A tiny HTTP receiver standing in for the webhook endpoint: records the query of every request
 * and answers 200 at once.
 */
export class WebhookRecorder {
  readonly hits: URLSearchParams[] = [];
  private readonly server = http.createServer((req, res) => {
    this.hits.push(new URL(req.url ?? '/', 'http://x').searchParams);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"accepted":true}');
  });
  url = '';

  async start(pathName = '/webhook/crm/identity'): Promise<string> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', () => r()));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}${pathName}`;
    return this.url;
  }

  /** Take every recorded hit (oldest first) and forget them. */
  drain(): URLSearchParams[] {
    return this.hits.splice(0, this.hits.length);
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

/** One row of the final table. */
export interface Figure {
  part: string;
  figure: string;
  measured: string;
  comparison: string;
  ratio: string;
  target: string;
  /** true / false, or undefined when there is no target to meet. */
  met: boolean | undefined;
  notes?: string[];
}
