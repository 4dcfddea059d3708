/**
 * A lowdb `Adapter` that writes compact JSON durably: the text goes to a temp file beside the
 * target, the temp file is fsynced, renamed over the target, and the directory is fsynced so the
 * rename itself survives a power cut. (lowdb's own JSONFile uses steno, which renames but never
 * fsyncs, and pretty-prints every write.)
 *
 * `write(data)` stringifies synchronously before its first `await`, so the caller's data is
 * captured at the moment `write` is called: changes made while the bytes go to disk belong to the
 * next write.
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import type { Adapter } from 'lowdb';

/** Codes that Windows reports while another program (antivirus, indexer) briefly holds the file. */
const TRANSIENT_RENAME = new Set(['EPERM', 'EACCES', 'EBUSY']);

function errCode(e: unknown): string | undefined {
  return e && typeof e === 'object' && 'code' in e ? String((e as { code: unknown }).code) : undefined;
}

async function renameWithRetry(from: string, to: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await fsp.rename(from, to);
      return;
    } catch (e) {
      if (process.platform !== 'win32' || !TRANSIENT_RENAME.has(errCode(e) ?? '') || attempt >= 10) throw e;
      await new Promise((r) => setTimeout(r, 20 * (attempt + 1)));
    }
  }
}

/** fsync a directory so a rename inside it is durable. Not possible on Windows: skipped there. */
export async function fsyncDir(dir: string): Promise<void> {
  if (process.platform === 'win32') return;
  let fh: fsp.FileHandle | undefined;
  try {
    fh = await fsp.open(dir, 'r');
    await fh.sync();
  } catch (e) {
    // Some file systems refuse fsync on directories (EINVAL, EISDIR); the rename is then as
    // durable as that file system allows.
    const c = errCode(e);
    if (c !== 'EINVAL' && c !== 'EISDIR' && c !== 'EPERM' && c !== 'EBADF') throw e;
  } finally {
    await fh?.close();
  }
}

/** The temp name used for `target` (hidden, beside it, same directory so rename is atomic). */
export function tempPathFor(target: string): string {
  return path.join(path.dirname(target), `.${path.basename(target)}.tmp`);
}

/** Write `data` to `target` atomically and durably (temp file, fsync, rename, fsync directory). */
export async function writeFileAtomic(target: string, data: Buffer | string): Promise<void> {
  const tmp = tempPathFor(target);
  const fh = await fsp.open(tmp, 'w');
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await renameWithRetry(tmp, target);
  await fsyncDir(path.dirname(target));
}

/**
 * Like writeFileAtomic, but the content comes as a sequence of text pieces, produced lazily: each
 * piece is written before the next is asked for, so a large file never exists as one string and
 * the event loop runs between pieces (each write is an await). Resolves with the bytes written.
 */
export async function writeFileAtomicChunks(target: string, pieces: Iterable<string>): Promise<number> {
  const tmp = tempPathFor(target);
  const fh = await fsp.open(tmp, 'w');
  let bytes = 0;
  try {
    for (const piece of pieces) {
      if (!piece) continue;
      const buf = Buffer.from(piece, 'utf8');
      let off = 0;
      while (off < buf.length) {
        const { bytesWritten } = await fh.write(buf, off, buf.length - off);
        off += bytesWritten;
      }
      bytes += buf.length;
    }
    await fh.sync();
  } finally {
    await fh.close();
  }
  await renameWithRetry(tmp, target);
  await fsyncDir(path.dirname(target));
  return bytes;
}

/** Copy `src` to `dst` atomically and durably. */
export async function copyFileAtomic(src: string, dst: string): Promise<void> {
  const tmp = tempPathFor(dst);
  await fsp.copyFile(src, tmp);
  const fh = await fsp.open(tmp, 'r+');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
  await renameWithRetry(tmp, dst);
  await fsyncDir(path.dirname(dst));
}

/** Thrown by `read()` when the file exists but does not hold JSON. */
export class UnreadableFileError extends Error {
  constructor(
    readonly filePath: string,
    readonly reason: string,
  ) {
    super(`${filePath}: ${reason}`);
    this.name = 'UnreadableFileError';
  }
}

export class DurableJsonFile<T> implements Adapter<T> {
  /** Completed writes since this adapter was made. */
  writeCount = 0;
  /** Size in bytes of the last file read or written. */
  lastBytes: number | undefined;

  constructor(readonly filePath: string) {}

  /** The parsed file, or null when it does not exist. An empty or non-JSON file throws UnreadableFileError. */
  async read(): Promise<T | null> {
    let buf: Buffer;
    try {
      buf = await fsp.readFile(this.filePath);
    } catch (e) {
      if (errCode(e) === 'ENOENT') return null;
      throw e;
    }
    this.lastBytes = buf.length;
    const text = buf.toString('utf8');
    if (!text.trim()) throw new UnreadableFileError(this.filePath, 'the file is empty');
    try {
      return JSON.parse(text) as T;
    } catch (e) {
      throw new UnreadableFileError(this.filePath, `not valid JSON (${(e as Error).message})`);
    }
  }

  async write(data: T): Promise<void> {
    // Synchronous up to here: the snapshot is taken at call time.
    const buf = Buffer.from(JSON.stringify(data), 'utf8');
    await writeFileAtomic(this.filePath, buf);
    this.writeCount++;
    this.lastBytes = buf.length;
  }
}
