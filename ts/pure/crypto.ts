/**
 * The pure core's encryption at rest (FORMAT.md, "Encrypted objects"), through the
 * `age-encryption` package, loaded on first use (it is ESM only). Its errors become core errors;
 * no key, identity or passphrase reaches a message.
 */
import type { AgeIdentities, AgeRecipients } from '../core/core.js';
import { coreError } from '../core/core.js';
import { AGE_MAGIC, DEFAULT_MAX_SEALED_BYTES } from '../format/constants.js';

type AgeModule = typeof import('age-encryption');
let age: Promise<AgeModule> | undefined;

function loadAge(): Promise<AgeModule> {
  age ??= import('age-encryption').catch((err: unknown) => {
    age = undefined;
    throw coreError('internal', `the pure core needs the age-encryption package for encryption: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  });
  return age;
}

function checkKeys(keys: readonly string[] | undefined, what: string): readonly string[] {
  if (keys !== undefined && (!Array.isArray(keys) || keys.some((key) => typeof key !== 'string'))) {
    throw coreError('invalid_argument', `age: ${what} must be an array of strings`);
  }
  return keys ?? [];
}

export async function encryptSegment(bytes: Uint8Array, to: AgeRecipients): Promise<Buffer> {
  const recipients = checkKeys(to.recipients, 'recipients');
  if (to.passphrase !== undefined && recipients.length > 0) throw coreError('invalid_argument', 'age: a passphrase cannot be combined with recipients');
  if (to.passphrase === undefined && recipients.length === 0) throw coreError('invalid_argument', 'age: no recipient and no passphrase to encrypt to');
  const { Encrypter } = await loadAge();
  const encrypter = new Encrypter();
  if (to.passphrase !== undefined) encrypter.setPassphrase(to.passphrase);
  recipients.forEach((recipient, i) => {
    const text = recipient.trim();
    try {
      if (!text.startsWith('age1')) throw new Error('not age1');
      encrypter.addRecipient(text);
    } catch {
      throw coreError('invalid_argument', `age: recipient #${i + 1} is not an X25519 recipient (age1...)`);
    }
  });
  return Buffer.from(await encrypter.encrypt(bytes));
}

export async function decryptSegment(bytes: Uint8Array, using: AgeIdentities): Promise<Buffer> {
  const max = using.maxBytes ?? DEFAULT_MAX_SEALED_BYTES;
  if (!Number.isSafeInteger(max) || max < 0) throw coreError('invalid_argument', `maxBytes must be an integer in 0 ..= 2^53-1, got ${max}`);
  if (bytes.length < AGE_MAGIC.length || !AGE_MAGIC.equals(bytes.subarray(0, AGE_MAGIC.length))) {
    throw coreError('not_encrypted', 'not an age-encrypted object (no age-encryption.org/v1 header)');
  }
  const identities = checkKeys(using.identities, 'identities');
  if (identities.length === 0 && using.passphrase === undefined) throw coreError('invalid_argument', 'age: no identity and no passphrase to decrypt with');
  const { Decrypter } = await loadAge();
  const decrypter = new Decrypter();
  identities.forEach((identity, i) => {
    try {
      decrypter.addIdentity(identity.trim());
    } catch {
      throw coreError('invalid_argument', `age: identity #${i + 1} is not an X25519 identity (AGE-SECRET-KEY-1...)`);
    }
  });
  if (using.passphrase !== undefined) decrypter.addPassphrase(using.passphrase);
  const input = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(bytes);
      controller.close();
    },
  });
  // streamed, so that the output stops growing at the ceiling whatever the object holds
  const chunks: Uint8Array[] = [];
  let length = 0;
  try {
    const reader = (await decrypter.decrypt(input)).getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      length += value.length;
      if (length > max) {
        await reader.cancel();
        throw coreError('too_large', `age: the decrypted object exceeds the ceiling of ${max} bytes`);
      }
      chunks.push(value);
    }
  } catch (err) {
    if ((err as { code?: unknown }).code === 'too_large') throw err;
    throw coreError('decryption_failed', `age: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  return Buffer.concat(chunks, length);
}
