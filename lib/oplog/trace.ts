/**
 * The `msg.sync` trace: every node adds to it (nodes/shared/support.ts `updateTrace`), the debug
 * sidebar shows it, and the log reads it (entry.ts `describeOperation`). The names are those of the
 * Vocabulary in ARCHITECTURE.md.
 */

export type SyncAction = 'created' | 'updated' | 'linked' | 'unchanged' | 'skipped' | 'failed';

/**
 * What a retry queue needs to know about a failure (lib/sync/retry-policy classify()), as a plain
 * object: Node-RED builds msg.error afresh from an Error and keeps only its message, code, stack
 * and cause, so fail() hands these facts over as the error's `cause` (msg.error.cause) and puts
 * them on msg.sync.error too. No secrets: status numbers and flags only.
 */
export interface ErrorFacts {
  status?: number;
  retryAfterSec?: number;
  ambiguous?: boolean;
  retryable?: boolean;
}

/** The compact trace on msg.sync: reads whole in the debug sidebar (under 1000 characters). */
export interface SyncTrace {
  traceId: string;
  trigger?: string;
  event?: string;
  /** person, organization, identity, quote, invoice (or contact, from siagh-import and sync-mapping). */
  entity?: string;
  crmId?: string;
  siaghCode?: string;
  customerNumber?: string;
  documentNumber?: string;
  action?: SyncAction;
  attempts: number;
  durationMs: number;
  startedAt: number;
  step?: string;
  error?: { code: string; message: string } & ErrorFacts;
  warnings: string[];
  /** Fields a webhook carried besides its own (ignored, secrets hidden), set by crm-webhook and sync-queue. */
  extraFields?: Record<string, string>;
  /** How many such fields there were in all. */
  extraCount?: number;
  /** What the webhook intake normalised on the way in. */
  normalised?: string[];
  /** Events merged into the queue job after the first (sync-queue). */
  merged?: number;
}

/** A trace as read from a message: every field may be anything (the log checks each one). */
export type TraceFields = { [K in keyof SyncTrace]?: unknown };
