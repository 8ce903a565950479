/**
 * Loads the native addon (built by `npm run build:native` into native/, or a prebuilt
 * per-platform package) and adapts it to the Core binding surface. Loading never throws:
 * `nativeCore` is null where no binary loads, and `nativeLoadError` says why.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type * as Native from '../../native/graphstream.js';
import { checkDecodeTarget, type Core, type CoreWriter, type DecodeOptions, type RawSegment, type WriterOptions, type WriterStart } from './core.js';
import { packPayloads } from './packed.js';

type NativeBinding = typeof Native;

function findLoader(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let depth = 0; depth < 4; depth++) {
    const candidate = join(dir, 'native', 'graphstream.cjs');
    if (existsSync(candidate)) return candidate;
    dir = dirname(dir);
  }
  throw new Error('native/graphstream.cjs not found (run `npm run build:native`)');
}

function loadBinding(): { binding: NativeBinding | null; error: Error | null } {
  try {
    const require = createRequire(import.meta.url);
    return { binding: require(findLoader()) as NativeBinding, error: null };
  } catch (err) {
    return { binding: null, error: err instanceof Error ? err : new Error(String(err)) };
  }
}

/** Zero-copy view of bytes as a Buffer (async native calls take Buffers). */
function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** The native writer as a CoreWriter: payloads cross the boundary packed (one buffer, one Uint32Array). */
function adaptWriter(writer: Native.NativeJournalWriter): CoreWriter {
  return {
    append: (payloads, stampSequences) => {
      try {
        const { bytes, lengths } = packPayloads(payloads);
        return writer.append(bytes, lengths, stampSequences);
      } catch (err) {
        return Promise.reject(err);
      }
    },
    sealForUpload: () => writer.sealForUpload(),
    flush: () => writer.flush(),
    close: () => writer.close(),
    get sequence() {
      return writer.sequence;
    },
    get chainHash() {
      return writer.chainHash;
    },
    get alive() {
      return writer.alive;
    },
    stats: () => writer.stats(),
  };
}

/** The addon's segment as the Core's: its body is the first `bodyLength` bytes of the buffer it hands back. */
function fromNativeSegment({ bodyLength, ...segment }: Native.RawSegment): RawSegment {
  if (segment.body.length !== bodyLength) segment.body = segment.body.subarray(0, bodyLength);
  return segment;
}

function decodeOptions(bytes: Uint8Array, options: DecodeOptions | undefined): DecodeOptions | undefined {
  checkDecodeTarget(bytes, options?.into);
  return options;
}

function adapt(native: NativeBinding): Core {
  return {
    kind: 'native',
    crc32c: (data, initial) => native.crc32c(data, initial),
    computeEntryHash: (prevHash, payload) => native.computeEntryHash(prevHash, payload),
    encodeEntry: (sequence, prevHash, payload) => native.encodeEntry(sequence, prevHash, payload),
    encodeEntries: (firstSequence, prevHash, payloads) => {
      const { bytes, lengths } = packPayloads(payloads);
      return native.encodeEntries(firstSequence, prevHash, bytes, lengths);
    },
    decodeEntry: (bytes, offset) => native.decodeEntry(bytes, offset),
    encodeHeader: (header) =>
      native.encodeHeader({
        ...header,
        bodyChecksum: header.bodyChecksum === undefined ? undefined : asBuffer(header.bodyChecksum),
      }),
    decodeHeader: (bytes) => native.decodeHeader(bytes),
    sealSegment: (unsealed, options) => native.sealSegment(unsealed, options),
    sealSegmentAsync: (unsealed, options) => native.sealSegmentAsync(asBuffer(unsealed), options),
    decodeSegment: (bytes, options) => fromNativeSegment(native.decodeSegment(bytes, decodeOptions(bytes, options))),
    decodeSegmentAsync: async (bytes, options) => fromNativeSegment(await native.decodeSegmentAsync(asBuffer(bytes), decodeOptions(bytes, options))),
    openWriter: async (dir: string, start: WriterStart, options: WriterOptions): Promise<CoreWriter> =>
      // napi maps `undefined`, not `null`, to an absent Option.
      adaptWriter(
        await native.openJournalWriter(
          dir,
          { ...start, liveSegment: start.liveSegment ?? undefined, retiredSegments: start.retiredSegments === undefined ? undefined : [...start.retiredSegments] },
          options,
        ),
      ),
  };
}

const loaded = loadBinding();

/** The native binding itself, for the modules that wrap native classes (object storage). */
export const nativeBinding: NativeBinding | null = loaded.binding;
export const nativeCore: Core | null = loaded.binding ? adapt(loaded.binding) : null;
export const nativeLoadError: Error | null = loaded.error;
