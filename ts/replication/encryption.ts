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
import type { ObjectMetadata } from '../storage/types.js';

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
 * What an encrypted object says of the sealed segment it holds, in its object metadata
 * (PutOptions.metadata, `x-amz-meta-graphstream-*` on S3): the SHA-256 of the plaintext
 * segment, its last sequence and its chain hash there. age output differs each time, so an
 * uploader restarted after a crash between its put and its manifest write cannot compare bytes:
 * it recognises its own object by these (docs/FORMAT.md, "Encrypted objects"). They reveal no
 * entry; a digest or chain hash only confirms an exact guess of the whole segment. Only writers
 * read them, to decide what they put next; a reader never trusts them, it verifies what it
 * downloads.
 */
export interface SegmentClaims {
  /** SHA-256 of the sealed plaintext segment, lowercase hex */
  plaintextSha256: string;
  lastSeq: number;
  /** the chain hash after its last entry, lowercase hex */
  chainHash: string;
}

export const META_PLAINTEXT_SHA256 = 'graphstream-plaintext-sha256';
export const META_LAST_SEQ = 'graphstream-last-seq';
export const META_CHAIN_HASH = 'graphstream-chain-hash';
const HEX_256 = /^[0-9a-f]{64}$/;

/** The object metadata of an encrypted segment (lowercase keys: S3 and object_store give them back lowercase). */
export function claimsMetadata(claims: SegmentClaims): ObjectMetadata {
  return { [META_PLAINTEXT_SHA256]: claims.plaintextSha256, [META_LAST_SEQ]: String(claims.lastSeq), [META_CHAIN_HASH]: claims.chainHash };
}

/** What the metadata of an object claims, or null unless it holds all three, well formed. */
export function claimsOf(metadata: Readonly<Record<string, string>> | undefined): SegmentClaims | null {
  const plaintextSha256 = metadata?.[META_PLAINTEXT_SHA256];
  const lastSeqText = metadata?.[META_LAST_SEQ];
  const chainHash = metadata?.[META_CHAIN_HASH];
  if (plaintextSha256 === undefined || lastSeqText === undefined || chainHash === undefined) return null;
  if (!HEX_256.test(plaintextSha256) || !HEX_256.test(chainHash) || !/^[1-9][0-9]{0,15}$/.test(lastSeqText)) return null;
  const lastSeq = Number(lastSeqText);
  return Number.isSafeInteger(lastSeq) ? { plaintextSha256, lastSeq, chainHash } : null;
}

/** Whether two claims are of the same segment. */
export function sameClaims(a: SegmentClaims, b: SegmentClaims): boolean {
  return a.plaintextSha256 === b.plaintextSha256 && a.lastSeq === b.lastSeq && a.chainHash === b.chainHash;
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
