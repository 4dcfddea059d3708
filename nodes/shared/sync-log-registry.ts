/**
 * The sync-log nodes deployed in this process, by data folder: the operator's console reaches the
 * replay and resolve of a sync-log node here (the same ones its dialog uses), so there is one
 * replay logic, and replayed events leave on that node's output 2 into its pipeline.
 */
export interface SyncLogHandle {
  id: string;
  name?: string;
  /** The data folder (resolved path). */
  dir: string;
  /** Output 2 is wired: replayed events have somewhere to go. */
  canReplay: boolean;
  replay(filter: unknown): Promise<{ replayed: number; events: unknown[] }>;
  resolve(body: unknown): Promise<unknown>;
}

const handles = new Map<string, SyncLogHandle>();

/** Register a deployed sync-log node; returns the unregister function (call it on close). */
export function registerSyncLog(h: SyncLogHandle): () => void {
  handles.set(h.id, h);
  return () => {
    if (handles.get(h.id) === h) handles.delete(h.id);
  };
}

/** Every deployed sync-log node. */
export function syncLogs(): SyncLogHandle[] {
  return [...handles.values()];
}
