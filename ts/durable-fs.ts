/**
 * The file operations durability rests on, shared by the pure writer and
 * recovery: "fsync means fsync", and a file is replaced only by temp file +
 * fsync + rename + directory fsync.
 */
import { constants as fsConstants } from 'node:fs';
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';

/** fsyncs a directory so that file creations, renames and removals in it are durable. */
export async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, fsConstants.O_RDONLY | fsConstants.O_DIRECTORY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Writes all of `bytes` at `position` (a positional write may be short). */
export async function writeAll(handle: FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < bytes.length) {
    const { bytesWritten } = await handle.write(bytes, done, bytes.length - done, position + done);
    done += bytesWritten;
  }
}

/** Creates or truncates `path`, writes `bytes` and fsyncs the file (not its directory). */
export async function writeFileSynced(path: string, bytes: Uint8Array): Promise<void> {
  const handle = await open(path, 'w');
  try {
    await writeAll(handle, bytes, 0);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Replaces `path` atomically: `tempPath` written and fsynced, renamed over `path`, directory fsynced. */
export async function replaceFileAtomically(path: string, tempPath: string, bytes: Uint8Array): Promise<void> {
  try {
    await writeFileSynced(tempPath, bytes);
    await rename(tempPath, path);
  } catch (err) {
    await unlink(tempPath).catch(() => undefined);
    throw err;
  }
  await syncDirectory(dirname(path));
}
