/**
 * Objects as files under one directory: the embedded default when no bucket is configured.
 * Every put is atomic and durable (temp file, fsync, rename or link, directory fsync); a
 * create-only put links the temp file into place, which fails if the key exists, so two writers
 * can never both create a key.
 */
import { randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { link, mkdir, open, readdir, readFile, rename, unlink } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { GraphstreamError, toGraphstreamError } from '../errors.js';
import { compareKeys, sameBytes } from './bytes.js';
import type { GetOptions, ListOptions, PutOptions, PutResult, SegmentStorage } from './types.js';

const TEMP_PREFIX = '.graphstream-tmp-';

function errnoOf(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

async function fsyncPath(path: string, flags: number): Promise<void> {
  const handle = await open(path, flags);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** A file's bytes: in `into` when they fit, otherwise in a buffer of their own. */
async function readObject(path: string, into: Uint8Array | undefined): Promise<Uint8Array> {
  const handle = await open(path, 'r');
  try {
    const { size } = await handle.stat();
    const target = into !== undefined && into.length >= size ? into : Buffer.allocUnsafeSlow(size);
    let length = 0;
    while (length < size) {
      const { bytesRead } = await handle.read(target, length, size - length, length);
      if (bytesRead === 0) break;
      length += bytesRead;
    }
    return target.subarray(0, length);
  } finally {
    await handle.close();
  }
}

async function fsyncDirectory(dir: string): Promise<void> {
  // Windows cannot open a directory for fsync; its metadata updates are not deferred the same way.
  if (process.platform === 'win32') return;
  await fsyncPath(dir, fsConstants.O_RDONLY);
}

export class LocalStorage implements SegmentStorage {
  readonly description: string;
  readonly identity: string;
  readonly root: string;

  constructor(root: string) {
    this.root = resolve(root);
    this.description = `file://${this.root}`;
    this.identity = this.description;
  }

  /** The file a key is stored in; rejects keys that could leave the root. */
  private pathOf(key: string): string {
    const segments = key.split('/');
    const bad =
      key.length === 0 ||
      key.includes('\0') ||
      key.includes('\\') ||
      segments.some((s) => s === '' || s === '.' || s === '..' || s.startsWith(TEMP_PREFIX));
    if (bad) {
      throw new GraphstreamError(
        'invalid_argument',
        `invalid storage key ${JSON.stringify(key)} for ${this.description}: keys are relative, '/'-separated, ` +
          `without empty, '.' or '..' segments`,
        { details: { key, retryable: false } },
      );
    }
    return join(this.root, ...segments);
  }

  /** mkdir -p that fsyncs the parent of every directory it creates. */
  private async ensureDirectory(dir: string): Promise<void> {
    try {
      await mkdir(dir);
    } catch (err) {
      const errno = errnoOf(err);
      if (errno === 'EEXIST') return;
      if (errno !== 'ENOENT' || dir === dirname(dir)) throw err;
      await this.ensureDirectory(dirname(dir));
      try {
        await mkdir(dir);
      } catch (again) {
        if (errnoOf(again) === 'EEXIST') return;
        throw again;
      }
    }
    await fsyncDirectory(dirname(dir));
  }

  async put(key: string, bytes: Uint8Array, options?: PutOptions): Promise<PutResult> {
    const path = this.pathOf(key);
    const dir = dirname(path);
    const temp = join(dir, `${TEMP_PREFIX}${process.pid}-${randomBytes(6).toString('hex')}`);
    try {
      await this.ensureDirectory(dir);
      const handle = await open(temp, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL, 0o644);
      try {
        await handle.writeFile(bytes);
        await handle.sync();
      } finally {
        await handle.close();
      }
      if (options?.ifNoneMatch === '*') {
        try {
          await link(temp, path);
        } catch (err) {
          if (errnoOf(err) !== 'EEXIST') throw err;
          return await this.resolveExisting(key, path, bytes);
        } finally {
          await unlink(temp).catch(() => undefined);
        }
      } else {
        await rename(temp, path);
      }
      await fsyncDirectory(dir);
      return { created: true };
    } catch (err) {
      await unlink(temp).catch(() => undefined);
      throw this.failure('put', key, err);
    }
  }

  private async resolveExisting(key: string, path: string, bytes: Uint8Array): Promise<PutResult> {
    const existing = await readFile(path);
    if (sameBytes(existing, bytes)) return { created: false };
    throw new GraphstreamError(
      'conflict',
      `${path} already holds different bytes (another writer created key ${key}); not overwritten`,
      { details: { key, retryable: false } },
    );
  }

  async get(key: string, options?: GetOptions): Promise<Uint8Array | null> {
    const path = this.pathOf(key);
    try {
      return await readObject(path, options?.into);
    } catch (err) {
      const errno = errnoOf(err);
      if (errno === 'ENOENT' || errno === 'EISDIR' || errno === 'ENOTDIR') return null;
      throw this.failure('get', key, err);
    }
  }

  async list(prefix: string, options?: ListOptions): Promise<string[]> {
    // Walk only the directory that holds the prefix.
    const slash = prefix.lastIndexOf('/');
    const base = slash < 0 ? '' : prefix.slice(0, slash + 1);
    const keys: string[] = [];
    try {
      await this.collect(base, keys);
    } catch (err) {
      throw this.failure('list', prefix, err);
    }
    const after = options?.startAfter;
    return keys
      .filter((key) => key.startsWith(prefix) && (after === undefined || compareKeys(key, after) > 0))
      .sort(compareKeys);
  }

  private async collect(keyPrefix: string, into: string[]): Promise<void> {
    if (keyPrefix.split('/').some((s) => s === '.' || s === '..')) return;
    let entries;
    try {
      entries = await readdir(join(this.root, keyPrefix), { withFileTypes: true });
    } catch (err) {
      const errno = errnoOf(err);
      if (errno === 'ENOENT' || errno === 'ENOTDIR') return;
      throw err;
    }
    for (const entry of entries) {
      if (entry.name.startsWith(TEMP_PREFIX)) continue;
      if (entry.isDirectory()) await this.collect(`${keyPrefix}${entry.name}/`, into);
      else if (entry.isFile()) into.push(keyPrefix + entry.name);
    }
  }

  async delete(key: string): Promise<void> {
    const path = this.pathOf(key);
    try {
      await unlink(path);
      await fsyncDirectory(dirname(path));
    } catch (err) {
      const errno = errnoOf(err);
      if (errno === 'ENOENT' || errno === 'ENOTDIR') return;
      throw this.failure('delete', key, err);
    }
  }

  private failure(op: string, key: string, err: unknown): GraphstreamError {
    if (err instanceof GraphstreamError) return err;
    const normalized = toGraphstreamError(err, `${op} ${join(this.root, key)}`);
    return new GraphstreamError(normalized.code, normalized.message, {
      cause: err,
      details: { key, retryable: false },
    });
  }
}
