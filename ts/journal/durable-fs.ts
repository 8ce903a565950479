/**
 * The file operations durability rests on, shared by the pure writer and
 * recovery: "fsync means fsync", and a file is replaced only by temp file +
 * fsync + rename + directory fsync. Also the one whole-file read into a reused
 * buffer that the uploader's checks and LocalStorage share.
 */
import { constants as fsConstants } from 'node:fs';
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';

/** fsyncs a directory so that file creations, renames and removals in it are durable. */
export async function syncDirectory(dir: string): Promise<void> {
  // Windows cannot open a directory for fsync; its metadata updates are not deferred the same way.
  if (process.platform === 'win32') return;
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

/** A whole file's bytes: in `into` when they fit (a view of it), otherwise in a buffer of their own. */
export async function readFileInto(path: string, into: Uint8Array | undefined): Promise<Buffer> {
  const handle = await open(path, fsConstants.O_RDONLY);
  try {
    const { size } = await handle.stat();
    const target = into !== undefined && into.length >= size ? into : Buffer.allocUnsafeSlow(size);
    let length = 0;
    while (length < size) {
      const { bytesRead } = await handle.read(target, length, size - length, length);
      if (bytesRead === 0) break;
      length += bytesRead;
    }
    return Buffer.from(target.buffer, target.byteOffset, length);
  } finally {
    await handle.close();
  }
}
