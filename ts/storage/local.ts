/**
 * Objects as files under one directory: the embedded default when no bucket is configured.
 * Every put is atomic and durable (temp file, fsync, rename or link, directory fsync); a
 * create-only put links the temp file into place, which fails if the key exists, so two writers
 * can never both create a key. A put with ifMatch compares and renames under a lock file that only
 * one process at a time can create (O_EXCL), so two processes cannot both replace the same version;
 * an object's ETag is the SHA-256 of its bytes, which any process computes from the file. A symbolic link under the directory is followed only when it
 * leads to a place inside it: no operation reads, writes or lists outside the directory.
 *
 * Metadata (PutOptions.metadata) lives in a sidecar file beside the object,
 * `.graphstream-meta-{16 hex of SHA-256(file name)}-{32 hex of SHA-256(object bytes)}`, JSON
 * `{"key":…,"metadata":{…}}`, written durably (temp file, fsync, rename, directory fsync) before
 * the object is linked into place: an object is never visible before its metadata is durable.
 * Naming it by the object's bytes ties it to exactly those bytes: a sidecar left by a put that
 * crashed before its link, or that lost a create-only race to another writer, never describes
 * another writer's object (extended attributes would be atomic too, but Node has no API for them
 * and not every filesystem keeps them; ObjectStoreStorage's file:// stores use the same sidecars).
 */
import { createHash, randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { link, lstat, mkdir, open, readdir, readFile, realpath, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join, resolve, sep } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { readFileInto, replaceFileAtomically, syncDirectory } from '../journal/durable-fs.js';
import { GraphstreamError, toGraphstreamError } from '../errors.js';
import { checkBody, checkPutConditions, compareKeys, contentETag, preconditionFailed, sameBytes, sha256Hex } from './bytes.js';
import { checkKey, checkListPrefix, objectName } from './names.js';
import type { GetOptions, ListOptions, ObjectHead, ObjectMetadata, PutOptions, PutResult, SegmentStorage, VersionedObject } from './types.js';

const TEMP_PREFIX = '.graphstream-tmp-';
/** sidecar files holding an object's metadata (see the module comment): never keys, never listed */
const META_PREFIX = '.graphstream-meta-';

/** The sidecars of the object named `name` (a file name) start with this. */
function sidecarStem(name: string): string {
  return `${META_PREFIX}${createHash('sha256').update(name).digest('hex').slice(0, 16)}-`;
}

/** The sidecar of the object named `name` whose bytes have SHA-256 `sha256` (hex). */
function sidecarName(name: string, sha256: string): string {
  return `${sidecarStem(name)}${sha256.slice(0, 32)}`;
}
/** A swap holds its key's lock for a read and a rename; a lock this old was left by a process that died holding it. */
const STALE_LOCK_MS = 10_000;
/** How long a put with ifMatch waits for another process's swap of the same key. */
const LOCK_WAIT_MS = 30_000;
const LOCK_POLL_MS = 2;

function errnoOf(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

export class LocalStorage implements SegmentStorage {
  readonly description: string;
  readonly identity: string;
  readonly root: string;
  /** the root with its symbolic links resolved, once it exists */
  private realRoot: string | null = null;

  constructor(root: string) {
    if (typeof root !== 'string' || root === '') {
      throw new GraphstreamError('invalid_argument', `LocalStorage: root must be a non-empty directory path, got ${JSON.stringify(root) ?? typeof root}`);
    }
    this.root = resolve(root);
    this.description = `file://${this.root}`;
    this.identity = this.description;
  }

  /** The file a key is stored in; rejects keys that could leave the root. */
  private pathOf(key: string): string {
    checkKey(key, this.description);
    const segments = key.split('/');
    if (segments.some((s) => s.startsWith(TEMP_PREFIX) || s.startsWith(META_PREFIX))) {
      throw new GraphstreamError('invalid_argument', `invalid storage key ${JSON.stringify(key)} for ${this.description}: '${TEMP_PREFIX}' and '${META_PREFIX}' name graphstream's own files`, {
        details: { key, retryable: false },
      });
    }
    return join(this.root, ...segments);
  }

  /**
   * Refuses `key` (a key, or a key prefix ending in '/') when a symbolic link on its way from the
   * root, or the file itself, leads out of the root (or nowhere). Parts that do not exist yet are
   * created as plain directories and files, inside.
   */
  private async checkInside(key: string): Promise<void> {
    if (this.realRoot === null) {
      try {
        this.realRoot = await realpath(this.root);
      } catch (err) {
        if (errnoOf(err) === 'ENOENT') return;
        throw err;
      }
    }
    const root = this.realRoot;
    let at = root;
    let walked = this.root;
    for (const segment of key.split('/').filter((s) => s !== '')) {
      at = join(at, segment);
      walked = join(walked, segment);
      let stat;
      try {
        stat = await lstat(at);
      } catch (err) {
        if (errnoOf(err) === 'ENOENT' || errnoOf(err) === 'ENOTDIR') return;
        throw err;
      }
      if (!stat.isSymbolicLink()) continue;
      const target = await realpath(at).catch(() => null);
      if (target === null || (target !== root && !target.startsWith(root + sep))) {
        throw new GraphstreamError(
          'invalid_argument',
          `${objectName(this.description, key)}: ${walked} is a symbolic link leading ${target === null ? 'nowhere' : `out of ${this.root}`}; not followed`,
          { details: { key, retryable: false } },
        );
      }
      at = target;
    }
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
    await syncDirectory(dirname(dir));
  }

  async put(key: string, bytes: Uint8Array, options?: PutOptions): Promise<PutResult> {
    const path = this.pathOf(key);
    checkBody(bytes, objectName(this.description, key));
    checkPutConditions(options, objectName(this.description, key));
    const dir = dirname(path);
    const temp = join(dir, `${TEMP_PREFIX}${process.pid}-${randomBytes(6).toString('hex')}`);
    try {
      await this.checkInside(key);
      await this.ensureDirectory(dir);
      const handle = await open(temp, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL, 0o644);
      try {
        await handle.writeFile(bytes);
        await handle.sync();
      } finally {
        await handle.close();
      }
      const sha256 = await sha256Hex(bytes);
      const sidecar = options?.metadata === undefined ? null : await this.writeSidecar(key, path, sha256, options.metadata);
      options?.signal?.throwIfAborted();
      if (options?.ifNoneMatch === '*') {
        try {
          await link(temp, path);
        } catch (err) {
          if (errnoOf(err) !== 'EEXIST') throw err;
          return await this.resolveExisting(key, path, bytes, sidecar);
        } finally {
          await unlink(temp).catch(() => undefined);
        }
      } else if (options?.ifMatch !== undefined) {
        await this.swap(key, path, temp, options.ifMatch);
      } else {
        await rename(temp, path);
      }
      await syncDirectory(dir);
      if (options?.ifNoneMatch !== '*') await this.removeSidecars(path, sidecar);
      return { created: true, etag: `"${sha256}"` };
    } catch (err) {
      await unlink(temp).catch(() => undefined);
      if (options?.signal?.aborted && err === options.signal.reason) throw err;
      throw this.failure('put', key, err);
    }
  }

  /** Renames `temp` over `path` if the object there has ETag `ifMatch`, under the key's lock file. */
  private async swap(key: string, path: string, temp: string, ifMatch: string): Promise<void> {
    const lock = join(dirname(path), `${TEMP_PREFIX}lock-${basename(path)}`);
    await this.lock(key, lock);
    try {
      const current = await readFileInto(path, undefined).catch((err: unknown) => {
        if (errnoOf(err) === 'ENOENT') return null;
        throw err;
      });
      const found = current === null ? null : await contentETag(current);
      if (found !== ifMatch) throw preconditionFailed(key, objectName(this.description, key), ifMatch, found);
      await rename(temp, path);
    } finally {
      await unlink(lock).catch(() => undefined);
    }
  }

  /** Creates the lock file (O_EXCL: one process at a time), waiting while another process holds it. */
  private async lock(key: string, lock: string): Promise<void> {
    const start = performance.now();
    for (;;) {
      try {
        await (await open(lock, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL, 0o644)).close();
        return;
      } catch (err) {
        if (errnoOf(err) !== 'EEXIST') throw err;
      }
      const held = await stat(lock).catch(() => null);
      if (held !== null && Date.now() - held.mtimeMs > STALE_LOCK_MS) {
        await unlink(lock).catch(() => undefined);
        continue;
      }
      if (performance.now() - start > LOCK_WAIT_MS) {
        throw new GraphstreamError('storage', `put ${objectName(this.description, key)}: ${lock} stayed locked by another writer for ${LOCK_WAIT_MS} ms (retryable)`, {
          details: { key, retryable: true },
        });
      }
      await sleep(LOCK_POLL_MS);
    }
  }

  /** Writes the sidecar of the object `bytes` (SHA-256 `sha256`) at `key` durably; its file name. */
  private async writeSidecar(key: string, path: string, sha256: string, metadata: ObjectMetadata): Promise<string> {
    const name = sidecarName(basename(path), sha256);
    const sidecar = join(dirname(path), name);
    const text = JSON.stringify({ key, metadata });
    await replaceFileAtomically(sidecar, join(dirname(path), `${TEMP_PREFIX}${process.pid}-${randomBytes(6).toString('hex')}`), Buffer.from(text));
    return name;
  }

  /** Removes the sidecars of the object at `path` except `keep` (best effort: a leftover never describes other bytes). */
  private async removeSidecars(path: string, keep: string | null): Promise<void> {
    const stem = sidecarStem(basename(path));
    const names = await readdir(dirname(path)).catch(() => [] as string[]);
    for (const name of names) {
      if (name.startsWith(stem) && name !== keep) await unlink(join(dirname(path), name)).catch(() => undefined);
    }
  }

  private async resolveExisting(key: string, path: string, bytes: Uint8Array, sidecar: string | null): Promise<PutResult> {
    const existing = await readFileInto(path, undefined);
    if (sameBytes(existing, bytes)) return { created: false, etag: await contentETag(existing) };
    // this put's sidecar describes bytes that were not stored
    if (sidecar !== null) await unlink(join(dirname(path), sidecar)).catch(() => undefined);
    throw new GraphstreamError(
      'conflict',
      `${objectName(this.description, key)} already holds different bytes (another writer created it); not overwritten`,
      { details: { key, retryable: false } },
    );
  }

  async getWithETag(key: string): Promise<VersionedObject | null> {
    const bytes = await this.get(key);
    return bytes === null ? null : { bytes, etag: await contentETag(bytes) };
  }

  /** Reads the object to hash it: its metadata is the sidecar of exactly those bytes. */
  async head(key: string): Promise<ObjectHead | null> {
    const bytes = await this.get(key);
    if (bytes === null) return null;
    const sha256 = await sha256Hex(bytes);
    const path = this.pathOf(key);
    const sidecar = join(dirname(path), sidecarName(basename(path), sha256));
    let metadata: Record<string, string> = {};
    try {
      const stored = JSON.parse(await readFile(sidecar, 'utf8')) as { key?: unknown; metadata?: unknown };
      if (stored.key === key && typeof stored.metadata === 'object' && stored.metadata !== null) {
        metadata = Object.fromEntries(Object.entries(stored.metadata).filter((entry): entry is [string, string] => typeof entry[1] === 'string'));
      }
    } catch (err) {
      if (errnoOf(err) !== 'ENOENT' && !(err instanceof SyntaxError)) throw this.failure('head', key, err);
    }
    return { size: bytes.byteLength, etag: `"${sha256}"`, metadata };
  }

  async get(key: string, options?: GetOptions): Promise<Uint8Array | null> {
    const path = this.pathOf(key);
    try {
      await this.checkInside(key);
      return await readFileInto(path, options?.into);
    } catch (err) {
      const errno = errnoOf(err);
      if (errno === 'ENOENT' || errno === 'EISDIR' || errno === 'ENOTDIR') return null;
      throw this.failure('get', key, err);
    }
  }

  async list(prefix: string, options?: ListOptions): Promise<string[]> {
    checkListPrefix(prefix, this.description);
    // Walk only the directory that holds the prefix.
    const slash = prefix.lastIndexOf('/');
    const base = slash < 0 ? '' : prefix.slice(0, slash + 1);
    const keys: string[] = [];
    try {
      await this.checkInside(base);
      await this.collect(base, keys);
    } catch (err) {
      throw this.failure('list', prefix, err);
    }
    const after = options?.startAfter;
    return keys
      .filter((key) => key.startsWith(prefix) && (after === undefined || compareKeys(key, after) > 0))
      .sort(compareKeys);
  }

  /** Keys of the files under the directory `keyPrefix` names; symbolic links are not followed. */
  private async collect(keyPrefix: string, into: string[]): Promise<void> {
    let entries;
    try {
      entries = await readdir(join(this.root, keyPrefix), { withFileTypes: true });
    } catch (err) {
      const errno = errnoOf(err);
      if (errno === 'ENOENT' || errno === 'ENOTDIR') return;
      throw err;
    }
    for (const entry of entries) {
      if (entry.name.startsWith(TEMP_PREFIX) || entry.name.startsWith(META_PREFIX)) continue;
      if (entry.isDirectory()) await this.collect(`${keyPrefix}${entry.name}/`, into);
      else if (entry.isFile()) into.push(keyPrefix + entry.name);
    }
  }

  async delete(key: string): Promise<void> {
    const path = this.pathOf(key);
    try {
      await this.checkInside(key);
      await unlink(path);
      await this.removeSidecars(path, null);
      await syncDirectory(dirname(path));
    } catch (err) {
      const errno = errnoOf(err);
      if (errno === 'ENOENT' || errno === 'ENOTDIR') return;
      throw this.failure('delete', key, err);
    }
  }

  private failure(op: string, key: string, err: unknown): GraphstreamError {
    if (err instanceof GraphstreamError) return err;
    const normalized = toGraphstreamError(err, `${op} ${objectName(this.description, key)}`);
    return new GraphstreamError(normalized.code, normalized.message, {
      cause: err,
      details: { key, retryable: false },
    });
  }
}
