/**
 * The encryption of a segment, kept in the journal directory from before its put until the
 * destination's manifest records the upload.
 *
 * age output differs each time, so a segment encrypted again after a crash between its put and
 * its manifest write would meet its own object as a `conflict` (a create-only put of other
 * bytes), and stay pending for ever. The Uploader therefore writes the ciphertext durably (temp
 * file, fsync, rename, directory fsync) before the put, and puts exactly those bytes again after
 * a restart: the create-only put then finds identical bytes, a no-op success. Under a lease, the
 * restarted uploader compares the object with them to learn where the earlier generation ends.
 *
 * They live in `uploads/{hash of storage, prefix and db}.age/`, one file per segment and
 * plaintext: `journal-{first_seq:016}.hadbj.{SHA-256 of the plaintext, 32 hex digits}.age`, so that
 * a kept ciphertext is only ever put for the very plaintext it encrypts.
 */
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { replaceFileAtomically, syncDirectory } from '../journal/durable-fs.js';
import { GraphstreamError, toGraphstreamError } from '../errors.js';
import { SEGMENT_FILE_NAME } from '../format/constants.js';
import { MANIFEST_DIR, type Destination } from './cache.js';

const KEPT_FILE = /^(journal-\d{16}\.hadbj)\.([0-9a-f]{32})\.age$/;
const TEMP_SUFFIX = '.tmp';

/** The kept ciphertexts of one db's destination (any generation) in a journal directory. */
export class KeptCiphertexts {
  /** segment name -> plaintext SHA-256 prefixes of its kept ciphertexts */
  private readonly kept = new Map<string, Set<string>>();
  private folderReady = false;

  private constructor(readonly folder: string) {}

  /** The folder of `destination`'s db (its storage, prefix and db; every generation shares it) in the journal directory `dir`. */
  static folderOf(dir: string, destination: Destination): string {
    const canonical = JSON.stringify([destination.storage, destination.prefix, destination.db]);
    return join(dir, MANIFEST_DIR, `${createHash('sha256').update(canonical).digest('hex').slice(0, 32)}.age`);
  }

  /** Lists what is kept for `destination`'s db in `dir` (nothing when the folder does not exist); removes leftover temp files. */
  static async open(dir: string, destination: Destination): Promise<KeptCiphertexts> {
    const kept = new KeptCiphertexts(KeptCiphertexts.folderOf(dir, destination));
    let names: string[];
    try {
      names = await readdir(kept.folder);
      kept.folderReady = true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return kept;
      throw toGraphstreamError(err, `listing ${kept.folder}`);
    }
    for (const name of names) {
      const match = KEPT_FILE.exec(name);
      if (match !== null) kept.add(match[1]!, match[2]!);
      else if (name.endsWith(TEMP_SUFFIX)) await kept.unlink(name);
    }
    return kept;
  }

  /** Whether some ciphertext of segment `name` is kept (of any plaintext). */
  has(name: string): boolean {
    return this.kept.has(name);
  }

  /** The segment names something is kept for. */
  names(): string[] {
    return [...this.kept.keys()];
  }

  /** The kept ciphertext of segment `name` holding the plaintext whose SHA-256 is `plaintextSha256`, or null. */
  async get(name: string, plaintextSha256: string): Promise<Buffer | null> {
    const id = plaintextSha256.slice(0, 32);
    if (!this.kept.get(name)?.has(id)) return null;
    const path = join(this.folder, fileName(name, id));
    try {
      return await readFile(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw toGraphstreamError(err, `reading the kept ciphertext ${path}`);
      this.kept.get(name)?.delete(id);
      return null;
    }
  }

  /** Keeps `ciphertext` of segment `name` (plaintext SHA-256 `plaintextSha256`) durably; resolves once it is on disk. */
  async keep(name: string, plaintextSha256: string, ciphertext: Uint8Array): Promise<void> {
    if (!SEGMENT_FILE_NAME.test(name)) throw new GraphstreamError('invalid_argument', `kept ciphertext: ${name} is not a segment file name`);
    const id = plaintextSha256.slice(0, 32);
    const file = fileName(name, id);
    const path = join(this.folder, file);
    try {
      if (!this.folderReady) {
        await mkdir(this.folder, { recursive: true });
        await syncDirectory(join(this.folder, '..'));
        await syncDirectory(join(this.folder, '..', '..'));
        this.folderReady = true;
      }
      await replaceFileAtomically(path, `${path}${TEMP_SUFFIX}`, ciphertext);
    } catch (err) {
      throw toGraphstreamError(err, `keeping the ciphertext of ${name} in ${this.folder}`);
    }
    this.add(name, id);
  }

  /**
   * Removes every kept ciphertext of segment `name`. Its removal need not be durable: one that
   * comes back after a crash is removed again (see prune).
   */
  async remove(name: string): Promise<void> {
    const ids = this.kept.get(name);
    if (ids === undefined) return;
    this.kept.delete(name);
    for (const id of ids) await this.unlink(fileName(name, id));
  }

  /** Removes the kept ciphertexts of the segments `obsolete` says no longer need them. */
  async prune(obsolete: (name: string) => boolean): Promise<void> {
    for (const name of this.names()) if (obsolete(name)) await this.remove(name);
  }

  private add(name: string, id: string): void {
    let ids = this.kept.get(name);
    if (ids === undefined) this.kept.set(name, (ids = new Set()));
    ids.add(id);
  }

  private async unlink(file: string): Promise<void> {
    const path = join(this.folder, file);
    try {
      await unlink(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw toGraphstreamError(err, `removing the kept ciphertext ${path}`);
    }
  }
}

function fileName(name: string, id: string): string {
  return `${name}.${id}.age`;
}
