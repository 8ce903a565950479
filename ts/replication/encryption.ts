/**
 * Encryption at rest of what leaves the machine (docs/FORMAT.md, "Encrypted objects"): the
 * Uploader and compaction encrypt each sealed segment to its recipients right before the put;
 * the remote journal reader decrypts each object right after its download, before anything
 * checks it, so that what a follower verifies and keeps is the plaintext segment. Local journal
 * directories stay plaintext. No key, identity or passphrase reaches an error message, a log or
 * a metric.
 */
import { readFile } from 'node:fs/promises';
import type { AgeIdentities, AgeRecipients, Core } from '../core/core.js';
import { GraphstreamError, toGraphstreamError } from '../errors.js';
import { AGE_MAGIC } from '../format/constants.js';

/** Who may read what is uploaded: X25519 recipients (`age1...`), or one passphrase alone (scrypt). */
export type UploadEncryption = AgeRecipients;

/** What a reader opens encrypted objects with; several identities, so that keys can be rotated. */
export interface ReadEncryption extends Omit<AgeIdentities, 'maxBytes'> {
  /** accept plaintext objects too (a store being migrated); otherwise they are `not_encrypted` */
  allowPlaintext?: boolean;
}

export type EncryptionCore = Pick<Core, 'encryptSegment' | 'decryptSegment'>;

/** Whether stored bytes are an age file (an encrypted object), not a plaintext segment. */
export function isEncrypted(bytes: Uint8Array): boolean {
  return bytes.length >= AGE_MAGIC.length && AGE_MAGIC.equals(bytes.subarray(0, AGE_MAGIC.length));
}

function hasKeys(keys: { identities?: readonly string[]; recipients?: readonly string[]; passphrase?: string }): boolean {
  return (keys.identities?.length ?? 0) > 0 || (keys.recipients?.length ?? 0) > 0 || keys.passphrase !== undefined;
}

/** Whether uploads are to be encrypted: there is someone to encrypt to. */
export function encryptsUploads(encryption: UploadEncryption): boolean {
  return (encryption.recipients?.length ?? 0) > 0 || encryption.passphrase !== undefined;
}

/** Throws `invalid_argument` unless `encryption` is absent or names someone to encrypt to. */
export function checkUploadEncryption(encryption: UploadEncryption | undefined, what: string): void {
  if (encryption !== undefined && !encryptsUploads(encryption)) {
    throw new GraphstreamError('invalid_argument', `${what}: encryption needs recipients or a passphrase`);
  }
}

/** The bytes to store for a sealed segment: itself, or its age encryption. */
export async function encryptForUpload(core: EncryptionCore, sealed: Uint8Array, encryption: UploadEncryption | undefined, where: string): Promise<Uint8Array> {
  if (encryption === undefined) return sealed;
  try {
    return await core.encryptSegment(sealed, encryption);
  } catch (err) {
    throw toGraphstreamError(err, `encrypting ${where}`);
  }
}

/**
 * The sealed segment an object holds. Without identities, an encrypted object is
 * `decryption_failed`; with them, a plaintext one is `not_encrypted` unless allowPlaintext.
 */
export async function decryptDownloaded(core: EncryptionCore, stored: Buffer, encryption: ReadEncryption | undefined, where: string): Promise<Buffer> {
  const encrypted = isEncrypted(stored);
  if (encryption === undefined || !hasKeys(encryption)) {
    if (encrypted) throw new GraphstreamError('decryption_failed', `${where} is encrypted (age): give identities to read it (encryption.identities)`);
    return stored;
  }
  if (!encrypted) {
    if (encryption.allowPlaintext) return stored;
    throw new GraphstreamError('not_encrypted', `${where} is not encrypted, and encryption is required (encryption.allowPlaintext accepts it)`);
  }
  try {
    return await core.decryptSegment(stored, { identities: encryption.identities, passphrase: encryption.passphrase });
  } catch (err) {
    throw toGraphstreamError(err, where);
  }
}

/** The identities of an age identity file (`age-keygen`'s output: comments, blank lines, one AGE-SECRET-KEY-1... a line). */
export async function readIdentityFile(path: string): Promise<string[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw toGraphstreamError(err, `reading the age identity file ${path}`);
  }
  const lines = text.split(/\r?\n/).map((line) => line.trim());
  const identities = lines.filter((line) => line !== '' && !line.startsWith('#'));
  if (identities.length === 0 || identities.some((line) => !line.startsWith('AGE-SECRET-KEY-1'))) {
    throw new GraphstreamError('invalid_argument', `${path} is not an age identity file (one AGE-SECRET-KEY-1... a line, # comments)`);
  }
  return identities;
}
