/**
 * Encryption at rest (docs/FORMAT.md, "Encrypted objects"): both cores write age v1 files that
 * the other core and the standard `age` tool open, and read the files `age` writes; every bad
 * object is a typed error, and no key reaches a message.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, test } from 'vitest';
import type { Core } from '../ts/core/core.js';
import { corePairs, cores } from './helpers/cores.js';

const fixtures = join(dirname(fileURLToPath(import.meta.url)), 'fixtures');
const keyFile = join(fixtures, 'age', 'test-key.txt');
const IDENTITY = readFileSync(keyFile, 'utf8')
  .split('\n')
  .find((line) => line.startsWith('AGE-SECRET-KEY-1'))!;
const RECIPIENT = /# public key: (age1\w+)/.exec(readFileSync(keyFile, 'utf8'))![1]!;
// another test identity, matching none of the objects below
const OTHER_IDENTITY = execFileSync('age-keygen', { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
  .split('\n')
  .find((line) => line.startsWith('AGE-SECRET-KEY-1'))!;
const sealed = readFileSync(join(fixtures, 'vectors', 'sealed-zstd.hadbj'));
const golden = readFileSync(join(fixtures, 'age', 'sealed-zstd.hadbj.age'));

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

const dir = mkdtempSync(join(tmpdir(), 'graphstream-age-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return 'ok';
  } catch (err) {
    const message = (err as Error).message;
    expect(message).not.toContain(IDENTITY);
    expect(message).not.toContain(OTHER_IDENTITY);
    return (err as { code: string }).code;
  }
}

describe.each(cores)('$kind core', (core: Core) => {
  test('opens the golden object (age -r of a sealed segment) into that sealed segment, which decodes', async () => {
    expect(golden.subarray(0, 22).toString('latin1')).toBe('age-encryption.org/v1\n');
    const plain = await core.decryptSegment(golden, { identities: [IDENTITY] });
    expect(plain.equals(sealed)).toBe(true);
    expect((await core.decodeSegmentAsync(plain)).header.firstSeq).toBe(1);
  });

  test('what it encrypts, `age -d -i key.txt` opens into the sealed segment', async () => {
    const object = await core.encryptSegment(sealed, { recipients: [RECIPIENT] });
    expect(object.subarray(0, 22).toString('latin1')).toBe('age-encryption.org/v1\n');
    const file = join(dir, `${core.kind}.hadbj.age`);
    writeFileSync(file, object);
    const plain = execFileSync('age', ['-d', '-i', keyFile, file]);
    expect(Buffer.compare(plain, sealed)).toBe(0);
  });

  test('a reader with several identities (a rotation) opens objects for any of them', async () => {
    const object = await core.encryptSegment(sealed, { recipients: [RECIPIENT] });
    const plain = await core.decryptSegment(object, { identities: [OTHER_IDENTITY, IDENTITY] });
    expect(plain.equals(sealed)).toBe(true);
  });

  test('wrong key, truncated, one flipped byte, a stanza nobody matches: decryption_failed', async () => {
    const object = await core.encryptSegment(sealed, { recipients: [RECIPIENT] });
    expect(await codeOf(core.decryptSegment(object, { identities: [OTHER_IDENTITY] }))).toBe('decryption_failed');
    for (const cut of [object.length - 1, object.length - 17, 40]) {
      expect(await codeOf(core.decryptSegment(object.subarray(0, cut), { identities: [IDENTITY] }))).toBe('decryption_failed');
    }
    const headerEnd = object.indexOf('\n---') + 1;
    for (const at of [headerEnd - 20, headerEnd + 60, object.length - 1]) {
      const flipped = Buffer.from(object);
      flipped[at]! ^= 0x01;
      expect(await codeOf(core.decryptSegment(flipped, { identities: [IDENTITY] }))).toBe('decryption_failed');
    }
    // the recipient's stanza renamed to a type no identity knows
    const renamed = Buffer.from(object.toString('latin1').replace('-> X25519 ', '-> unknown '), 'latin1');
    expect(await codeOf(core.decryptSegment(renamed, { identities: [IDENTITY] }))).toBe('decryption_failed');
  });

  test('a plaintext segment is not_encrypted; a malformed key is invalid_argument, not echoed', async () => {
    expect(await codeOf(core.decryptSegment(sealed, { identities: [IDENTITY] }))).toBe('not_encrypted');
    expect(await codeOf(core.decryptSegment(golden, { identities: [IDENTITY.slice(0, -3)] }))).toBe('invalid_argument');
    expect(await codeOf(core.decryptSegment(golden, {}))).toBe('invalid_argument');
    expect(await codeOf(core.encryptSegment(sealed, { recipients: ['age1bogus'] }))).toBe('invalid_argument');
    expect(await codeOf(core.encryptSegment(sealed, { recipients: [IDENTITY] }))).toBe('invalid_argument');
    expect(await codeOf(core.encryptSegment(sealed, {}))).toBe('invalid_argument');
  });

  test('decryption stops at the ceiling: an object holding more is too_large', async () => {
    const big = Buffer.alloc(300_000, 7);
    const object = await core.encryptSegment(big, { recipients: [RECIPIENT] });
    expect(await codeOf(core.decryptSegment(object, { identities: [IDENTITY], maxBytes: 200_000 }))).toBe('too_large');
    expect((await core.decryptSegment(object, { identities: [IDENTITY], maxBytes: big.length })).equals(big)).toBe(true);
  });
});

describe.each(corePairs)('$writer.kind encrypts, $reader.kind decrypts', ({ writer, reader }) => {
  test('a segment round-trips, to two recipients', async () => {
    const other = execFileSync('age-keygen', ['-y'], { input: OTHER_IDENTITY, encoding: 'utf8' }).trim();
    const object = await writer.encryptSegment(sealed, { recipients: [other, RECIPIENT] });
    expect((await reader.decryptSegment(object, { identities: [IDENTITY] })).equals(sealed)).toBe(true);
    expect((await reader.decryptSegment(object, { identities: [OTHER_IDENTITY] })).equals(sealed)).toBe(true);
  });
});

describe('the native core encrypts a file for its upload (encryptFileForUpload)', () => {
  const native = cores.find((core) => core.kind === 'native')!;

  test('the age file of the file, with the SHA-256 of both; `age -d` and each core open it', async () => {
    const path = join(dir, 'segment.hadbj');
    writeFileSync(path, sealed);
    const file = await native.encryptFileForUpload!(path, { recipients: [RECIPIENT] });
    expect({ plaintextSize: file.plaintextSize, plaintextSha256: file.plaintextSha256 }).toEqual({ plaintextSize: sealed.length, plaintextSha256: sha256(sealed) });
    expect(file.sha256).toBe(sha256(file.bytes));
    const copy = join(dir, 'segment.hadbj.age');
    writeFileSync(copy, file.bytes);
    expect(Buffer.compare(execFileSync('age', ['-d', '-i', keyFile, copy]), sealed)).toBe(0);
    for (const reader of cores) expect((await reader.decryptSegment(file.bytes, { identities: [IDENTITY] })).equals(sealed), reader.kind).toBe(true);
    const byPassphrase = await native.encryptFileForUpload!(path, { passphrase: 'correct horse' });
    expect((await native.decryptSegment(byPassphrase.bytes, { passphrase: 'correct horse' })).equals(sealed)).toBe(true);
  });

  test('a missing file is not_found naming it; a bad recipient is invalid_argument naming the file, not the key', async () => {
    const missing = join(dir, 'no-such-segment');
    await expect(native.encryptFileForUpload!(missing, { recipients: [RECIPIENT] })).rejects.toMatchObject({ code: 'not_found', message: expect.stringContaining(missing) });
    const path = join(dir, 'small.hadbj');
    writeFileSync(path, sealed);
    expect(await codeOf(native.encryptFileForUpload!(path, { recipients: [IDENTITY] }))).toBe('invalid_argument');
    await expect(native.encryptFileForUpload!(path, { recipients: ['age1bogus'] })).rejects.toMatchObject({ message: expect.stringContaining(path) });
    expect(await codeOf(native.encryptFileForUpload!(path, {}))).toBe('invalid_argument');
  });

  test('the pure core has none: the Uploader encrypts through encryptSegment there', () => {
    expect(cores.find((core) => core.kind === 'pure')!.encryptFileForUpload).toBeUndefined();
  });
});

test('a passphrase (scrypt) round-trips between the cores; a wrong one is decryption_failed', async () => {
  const [native, pure] = cores as [Core, Core];
  const object = await native.encryptSegment(sealed, { passphrase: 'correct horse' });
  expect((await native.decryptSegment(object, { passphrase: 'correct horse' })).equals(sealed)).toBe(true);
  expect(await codeOf(native.decryptSegment(object, { passphrase: 'wrong horse' }))).toBe('decryption_failed');
  const fromPure = await pure.encryptSegment(sealed, { passphrase: 'correct horse' });
  expect((await native.decryptSegment(fromPure, { passphrase: 'correct horse' })).equals(sealed)).toBe(true);
  expect(await codeOf(pure.encryptSegment(sealed, { passphrase: 'x', recipients: [RECIPIENT] }))).toBe('invalid_argument');
  expect(await codeOf(native.encryptSegment(sealed, { passphrase: 'x', recipients: [RECIPIENT] }))).toBe('invalid_argument');
});
