/**
 * The mapping store on disk: the snapshot `<file>` (compact JSON, `MappingFileV1`), the journal
 * `<file>.journal` of changes since (one `MappingJournalEntry` a line, see journal.ts) and the
 * backup `<file>.bak`. Loading checks the snapshot and replays the journal over it, refusing with
 * a message that names the backup rather than ever starting empty over an unreadable file.
 */
import * as fs from 'node:fs';
import { promises as fsp } from 'node:fs';
import { Low } from 'lowdb';
import { SyncError } from '../errors';
import { DurableJsonFile, UnreadableFileError, copyFileAtomic, writeFileAtomic } from './atomic-file';
import { Journal, JournalCorruptError } from './journal';
import { checkType, ENTITY_TYPES, errText, type EntityType, type MappingRecord } from './mapping-record';

/** One journal line: an absolute change, so replaying it twice is harmless. */
export type MappingJournalEntry =
  | { op: 'put'; rec: MappingRecord }
  | { op: 'del'; type: EntityType; crmId: string }
  | { op: 'meta'; key: string; value?: unknown };

/** The file format. `version` allows future migrations. */
export interface MappingFileV1 {
  version: 1;
  mappings: Record<EntityType, Record<string, MappingRecord>>;
  meta: Record<string, unknown>;
}

export const MAPPING_FILE_VERSION = 1;
/** Records per piece of a snapshot written by compaction (about 0.3 MB, 1–3 ms of work). */
const SNAPSHOT_PIECE_RECORDS = 1000;

/** `<file>.journal`: the changes since the snapshot `<file>` was written. */
export function journalPathFor(filePath: string): string {
  return `${filePath}.journal`;
}

/** `<file>.bak`: a copy of the last good snapshot. */
export function backupPathFor(filePath: string): string {
  return `${filePath}.bak`;
}

/** The object itself (or a new one) without a prototype, so any CRM id is a plain key. */
export function nullProto<T>(o: Record<string, T> | undefined | null): Record<string, T> {
  const out = o && typeof o === 'object' && !Array.isArray(o) ? o : ({} as Record<string, T>);
  Object.setPrototypeOf(out, null);
  return out;
}

export function emptyMappingFile(): MappingFileV1 {
  return { version: 1, mappings: { contact: nullProto({}), quote: nullProto({}), invoice: nullProto({}) }, meta: nullProto({}) };
}

function nonEmpty(file: string): boolean {
  try {
    return fs.statSync(file).size > 0;
  } catch {
    return false;
  }
}

/** Apply one journal line to raw file data (replay). Throws on a line that is not a change. */
export function applyEntry(data: MappingFileV1, e: MappingJournalEntry): void {
  if (!e || typeof e !== 'object') throw new Error('not a change record');
  if (e.op === 'put') {
    const rec = e.rec;
    if (!rec || typeof rec !== 'object' || typeof rec.crmId !== 'string') throw new Error('a put without a record');
    const t = checkType(rec.entityType);
    const m = data.mappings[t];
    delete m[rec.crmId]; // re-inserted: keeps the order of last write
    m[rec.crmId] = rec;
  } else if (e.op === 'del') {
    if (typeof e.crmId !== 'string') throw new Error('a delete without a CRM id');
    delete data.mappings[checkType(e.type)][e.crmId];
  } else if (e.op === 'meta') {
    if (typeof e.key !== 'string') throw new Error('a meta change without a key');
    if (e.value === undefined) delete data.meta[e.key];
    else data.meta[e.key] = e.value;
  } else {
    throw new Error(`unknown change ${JSON.stringify((e as { op?: unknown }).op)}`);
  }
}

/**
 * The snapshot text in pieces of SNAPSHOT_PIECE_RECORDS records: for an unchanging store, the same
 * bytes as JSON.stringify of the file data. The Maps are walked live (see MappingWriter's
 * compaction); a record stored again meanwhile moves to the end of its Map and is met twice:
 * written once.
 */
export function* snapshotPieces(maps: Map<string, MappingRecord>[], metaJson: string): Generator<string> {
  yield '{"version":1,"mappings":{';
  for (let i = 0; i < ENTITY_TYPES.length; i++) {
    yield `${i ? ',' : ''}${JSON.stringify(ENTITY_TYPES[i])}:{`;
    const seen = new Set<string>();
    let parts: string[] = [];
    for (const [crmId, rec] of maps[i]) {
      if (seen.has(crmId)) continue;
      seen.add(crmId);
      parts.push(`${seen.size > 1 ? ',' : ''}${JSON.stringify(crmId)}:${JSON.stringify(rec)}`);
      if (parts.length >= SNAPSHOT_PIECE_RECORDS) {
        yield parts.join('');
        parts = [];
      }
    }
    if (parts.length) yield parts.join('');
    yield '}';
  }
  yield `},"meta":${metaJson}}`;
}

/** What the operator can do about a damaged snapshot: the backup, if there is a readable one. */
async function describeBackup(file: string, journalPath: string): Promise<string> {
  const bak = backupPathFor(file);
  let st: fs.Stats;
  try {
    st = await fsp.stat(bak);
  } catch {
    return `No backup ${bak} exists. Move the damaged file away to start with an empty mapping (every entity is then treated as new, which can create duplicates in Siagh), or restore it from your own backups.`;
  }
  let verdict = '';
  try {
    const parsed = JSON.parse(await fsp.readFile(bak, 'utf8')) as Partial<MappingFileV1>;
    if (parsed && parsed.mappings) {
      const n = ENTITY_TYPES.reduce((sum, t) => sum + Object.keys(parsed.mappings?.[t] ?? {}).length, 0);
      verdict = ` It is readable and holds ${n} mappings.`;
    }
  } catch {
    verdict = ' Warning: the backup is not readable either.';
  }
  return (
    `Restore the last good copy: stop Node-RED, copy ${bak} (from ${st.mtime.toISOString()}) over ${file}, and start again.${verdict} ` +
    `The journal ${journalPath} (the changes since the file was last written) is replayed over it; changes folded into the file between the backup and the damage are not in either, so sync those again.`
  );
}

export interface LoadedMappingFile {
  /** The snapshot with the journal replayed over it; records not yet checked one by one. */
  data: MappingFileV1;
  /** Size of the snapshot file as read (or written, for a new store). */
  snapshotBytes: number | undefined;
  /** True when there was no snapshot and an empty one was written (the first durable write). */
  created: boolean;
}

/**
 * Read the snapshot and replay `journal` over it (the journal is opened here, its `.old` too).
 * A missing snapshot is created empty, unless a backup or a journal says there was one. Anything
 * unreadable or of another format refuses with STORE_IO naming what to restore.
 */
export async function loadMappingFile(file: string, journal: Journal<MappingJournalEntry>): Promise<LoadedMappingFile> {
  const adapter = new DurableJsonFile<MappingFileV1>(file);
  const db = new Low<MappingFileV1>(adapter, emptyMappingFile());
  const bak = backupPathFor(file);
  try {
    await db.read();
  } catch (e) {
    if (e instanceof UnreadableFileError) {
      throw new SyncError(
        'STORE_IO',
        `The mapping file ${file} cannot be read (${e.reason}). The store refused to start so that no mapping is lost. ${await describeBackup(file, journal.path)}`,
        { cause: e },
      );
    }
    throw new SyncError('STORE_IO', `Cannot read the mapping file ${file} (${errText(e)}). Check its permissions.`, { cause: e });
  }
  if (adapter.lastBytes === undefined) {
    if (fs.existsSync(bak)) {
      throw new SyncError(
        'STORE_IO',
        `The mapping file ${file} is missing but its backup ${bak} exists. Copy the backup to ${file} to keep the mappings, or delete the backup to start with an empty mapping.`,
      );
    }
    const j = journal.path;
    if (nonEmpty(j) || nonEmpty(journal.oldPath)) {
      throw new SyncError(
        'STORE_IO',
        `The mapping file ${file} is missing but its journal ${j} exists (it only holds the changes since the file was last written). Restore ${file} from your backups, or move the journal away to start with an empty mapping.`,
      );
    }
    db.data = emptyMappingFile();
    await db.write(); // the file exists from now on
    return { data: db.data, snapshotBytes: adapter.lastBytes, created: true };
  }
  const snapshotBytes = adapter.lastBytes;
  const raw = db.data as unknown;
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new SyncError('STORE_IO', `The mapping file ${file} does not hold a mapping store (no JSON object). ${await describeBackup(file, journal.path)}`);
  }
  const d = raw as Partial<MappingFileV1> & { version?: unknown };
  if (typeof d.version === 'number' && d.version > MAPPING_FILE_VERSION) {
    throw new SyncError(
      'STORE_IO',
      `The mapping file ${file} has format version ${d.version}, written by a newer version of node-red-contrib-siagh-sync. Upgrade the package, or restore ${bak} if it is older.`,
    );
  }
  if (d.version !== MAPPING_FILE_VERSION || !d.mappings || typeof d.mappings !== 'object') {
    throw new SyncError('STORE_IO', `The mapping file ${file} is not a mapping store of format version 1 (found version ${JSON.stringify(d.version)}). ${await describeBackup(file, journal.path)}`);
  }
  const mappings = d.mappings as Partial<Record<EntityType, Record<string, MappingRecord>>>;
  const clean: MappingFileV1 = {
    version: 1,
    mappings: { contact: nullProto(mappings.contact), quote: nullProto(mappings.quote), invoice: nullProto(mappings.invoice) },
    meta: nullProto(d.meta as Record<string, unknown> | undefined),
  };
  try {
    await journal.open((e) => applyEntry(clean, e));
  } catch (e) {
    if (e instanceof JournalCorruptError) {
      throw new SyncError(
        'STORE_IO',
        `The mapping journal ${e.file} is damaged at line ${e.line} (${e.reason}). The store refused to start so that no mapping is lost. ` +
          `Lines 1 to ${e.line - 1} are intact; a damaged line in the middle is not a crash (that only tears the last line): check the disk, ` +
          `then repair or remove that line by hand (every later line is still applied), or restore ${file} and the journal from your backups.`,
        { cause: e },
      );
    }
    throw new SyncError('STORE_IO', `Cannot read the mapping journal ${journal.path} (${errText(e)}). Check its permissions.`, { cause: e });
  }
  return { data: clean, snapshotBytes, created: false };
}

/**
 * `<file>.bak`, a copy of the last good snapshot: made at open (`copyNow`) and at most once per
 * interval after compactions (`copySoon`). A failed copy is a warning, never an error.
 */
export class MappingBackup {
  readonly path: string;
  /** ISO time of the last copy made. */
  at: string | undefined;
  private lastMs = 0;

  constructor(
    private readonly file: string,
    private readonly enabled: boolean,
    private readonly intervalMs: number,
    private readonly warn: (msg: string) => void,
  ) {
    this.path = backupPathFor(file);
  }

  /** The copy made at open. */
  async copyNow(): Promise<void> {
    if (!this.enabled) return;
    try {
      await copyFileAtomic(this.file, this.path);
      this.lastMs = Date.now();
      this.at = new Date(this.lastMs).toISOString();
    } catch (e) {
      this.warn(`Could not copy the mapping file to its backup ${this.path} (${errText(e)}).`);
    }
  }

  /** After a compaction: a new copy unless the last one is younger than the interval. */
  async copySoon(): Promise<void> {
    if (!this.enabled) return;
    const now = Date.now();
    if (now - this.lastMs < this.intervalMs) return;
    this.lastMs = now;
    try {
      // The snapshot is only replaced by a rename, so the copy is of a whole file.
      await copyFileAtomic(this.file, this.path);
      this.at = new Date(now).toISOString();
    } catch (e) {
      this.warn(`Could not update the backup ${this.path} (${errText(e)}).`);
    }
  }
}

/** Write a mapping file directly (import tools, tests, the benchmark). Not for a file a store has open. */
export async function writeMappingFile(filePath: string, data: MappingFileV1): Promise<void> {
  await writeFileAtomic(filePath, JSON.stringify(data));
  // A journal left beside it belongs to the file that was replaced.
  for (const j of [journalPathFor(filePath), `${journalPathFor(filePath)}.old`]) fs.rmSync(j, { force: true });
}

/**
 * Read the state a store on `filePath` holds on disk, without opening it (no lock): the snapshot
 * with the journal replayed over it (a torn last line ignored). For tools and tests that check
 * what is durable; not a substitute for MappingStore.open.
 */
export function readMappingFile(filePath: string): MappingFileV1 {
  const data = JSON.parse(fs.readFileSync(filePath, 'utf8')) as MappingFileV1;
  for (const t of ENTITY_TYPES) data.mappings[t] = nullProto(data.mappings[t]);
  data.meta = nullProto(data.meta);
  const j = journalPathFor(filePath);
  for (const f of [`${j}.old`, j]) {
    let text: string;
    try {
      text = fs.readFileSync(f, 'utf8');
    } catch {
      continue;
    }
    const lines = text.split('\n');
    lines.pop(); // after the last newline: empty, or a torn line
    lines.forEach((l, i) => {
      if (!l.trim()) return;
      try {
        applyEntry(data, JSON.parse(l) as MappingJournalEntry);
      } catch (e) {
        throw new Error(`${f} line ${i + 1}: ${errText(e)}`);
      }
    });
  }
  // plain objects for the caller (spread keeps any key as an own property)
  for (const t of ENTITY_TYPES) data.mappings[t] = { ...data.mappings[t] };
  data.meta = { ...data.meta };
  return data;
}
