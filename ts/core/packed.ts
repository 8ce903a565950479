/**
 * Conversions between the two forms of `Payloads` (ts/core/core.ts): an array of
 * buffers, and one buffer with a Uint32Array of lengths.
 */
import { coreError, type PackedPayloads, type Payloads } from './core.js';

function invalid(message: string): Error {
  return coreError('invalid_argument', message);
}

function checkPacked(payloads: unknown): PackedPayloads {
  const packed = payloads as Partial<PackedPayloads> | null;
  if (typeof packed !== 'object' || packed === null || !(packed.bytes instanceof Uint8Array) || !(packed.lengths instanceof Uint32Array)) {
    throw invalid('payloads must be an array of Uint8Array or { bytes: Uint8Array, lengths: Uint32Array }');
  }
  return packed as PackedPayloads;
}

/** Payloads in packed form; an array is copied into one buffer. */
export function packPayloads(payloads: Payloads): PackedPayloads {
  if (!Array.isArray(payloads)) return checkPacked(payloads);
  const lengths = new Uint32Array(payloads.length);
  let total = 0;
  for (let i = 0; i < payloads.length; i++) {
    const payload: unknown = payloads[i];
    if (!(payload instanceof Uint8Array)) throw invalid(`payload ${i} is not a Uint8Array`);
    if (payload.length > 0xffff_ffff) throw invalid(`payload ${i} has ${payload.length} bytes, over the u32 length limit`);
    lengths[i] = payload.length;
    total += payload.length;
  }
  const bytes = Buffer.allocUnsafe(total);
  let offset = 0;
  for (const payload of payloads) {
    bytes.set(payload, offset);
    offset += payload.length;
  }
  return { bytes, lengths };
}

/** Views of each packed payload (no copy); an array is returned as it is. */
export function unpackPayloads(payloads: Payloads): readonly Uint8Array[] {
  if (Array.isArray(payloads)) return payloads as readonly Uint8Array[];
  const { bytes, lengths } = checkPacked(payloads);
  let total = 0;
  for (let i = 0; i < lengths.length; i++) total += lengths[i]!;
  if (total !== bytes.length) {
    throw invalid(`packed payload lengths add up to ${total} bytes, but ${bytes.length} bytes are given`);
  }
  const views = new Array<Uint8Array>(lengths.length);
  let offset = 0;
  for (let i = 0; i < lengths.length; i++) {
    views[i] = bytes.subarray(offset, offset + lengths[i]!);
    offset += lengths[i]!;
  }
  return views;
}

/** Views of a private copy of the payloads, which the caller may then reuse. */
export function copyPayloads(payloads: Payloads): readonly Uint8Array[] {
  if (Array.isArray(payloads)) return unpackPayloads(packPayloads(payloads));
  const { bytes, lengths } = checkPacked(payloads);
  return unpackPayloads({ bytes: Buffer.from(bytes), lengths });
}
