/**
 * What lives in a data folder (a sync-store): one name per file, so no node builds a path itself.
 * The queue's files are named in lib/queue/sync-queue.ts, the sync log's and failed list's in
 * lib/oplog/oplog.ts.
 */
import path from 'node:path';

export const MAPPING_FILE = 'mappings.json';

/** The mapping file of a data folder. */
export function mappingFileIn(dir: string): string {
  return path.join(dir, MAPPING_FILE);
}

export const REPORTS_DIR = 'reports';

/** The folder of the initial import's report files in a data folder. */
export function reportsDirIn(dir: string): string {
  return path.join(dir, REPORTS_DIR);
}
