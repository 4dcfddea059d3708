/**
 * The queue job a message carries (msg.job = {id, token, attempt}, set by sync-queue): each node
 * that works on such a message for a while holds it, renewing the job's lease (and the message's
 * mapping claim) until it sends the message on, so a live pipeline never loses its job to the
 * lease timeout while a dead one's job is delivered again.
 */
import { queueHolding } from '../../lib/queue/queue-backend';
import { claimOf } from './claims';
import { peekMapping } from './store-ref';
import type { NodeMessage } from './red';

export interface JobRef {
  id: string;
  token: string;
  attempt?: number;
  /** Delivered again after a create whose outcome was unknown: check before creating. */
  recheck?: boolean;
}

export function jobOf(msg: NodeMessage): JobRef | undefined {
  const j = msg.job as Partial<JobRef> | undefined;
  return j && typeof j === 'object' && typeof j.id === 'string' && typeof j.token === 'string' ? (j as JobRef) : undefined;
}

/** Renew the message's job lease and mapping claim every few seconds until the returned stop() is called. */
export function holdJob(msg: NodeMessage): () => void {
  const job = jobOf(msg);
  const claim = claimOf(msg);
  if (!job && !claim) return () => undefined;
  const queue = job ? queueHolding(job.id, job.token) : undefined;
  const every = Math.max(250, Math.min(queue ? queue.policy.leaseMs / 4 : 15_000, 15_000));
  const renew = () => {
    // A renewal that fails (the database restarting) is tried again at the next tick.
    if (job && queue) void queue.renew(job.id, job.token).catch(() => undefined);
    if (claim) void peekMapping(claim.file)?.renewClaim(claim.entityType, claim.crmId, claim.token).catch(() => undefined);
  };
  renew();
  const t = setInterval(renew, every);
  t.unref();
  return () => clearInterval(t);
}

/** Run `work` while holding the message's job (see holdJob). */
export async function whileHolding<T>(msg: NodeMessage, work: () => Promise<T>): Promise<T> {
  const stop = holdJob(msg);
  try {
    return await work();
  } finally {
    stop();
  }
}
