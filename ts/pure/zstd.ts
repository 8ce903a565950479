/**
 * zstd for the pure core: `node:zlib` where the runtime has it (Node >= 22.15 and 23.8),
 * otherwise the WebAssembly build of `@bokuweb/zstd-wasm`, loaded on first use (with node:zlib,
 * only for the rare damaged body that zlibCodec leaves to it). Either way a body is decompressed
 * frame by frame, each bounded by what its headers allow, and checked as the native core checks
 * it (crate/src/segment.rs), so that both fail alike on any body.
 *
 * The wasm module is instantiated synchronously on first use (Node compiles
 * WebAssembly synchronously without a size limit), so every pure-core function
 * stays synchronous and the CJS build needs no top-level await. The package's
 * public `init()` is async only because it reads the .wasm file with
 * fs/promises; we hand its emscripten glue the instance through the documented
 * `Module.instantiateWasm` hook instead. The glue (`dist/common/module.js`) is
 * not an exported subpath, so it is required by absolute path; the dependency
 * is pinned (`^0.0.27` admits only 0.0.27), and a layout change fails loudly
 * with an `internal` error on first use.
 */
import { readFileSync } from 'node:fs';
import { packageRequire } from '../package-require.js';
import { dirname, join } from 'node:path';
import * as zlib from 'node:zlib';
import { coreError } from '../core/core.js';

/** A compressed body, or the bytes it decompresses to, failed a check: thrown as a core error. */
function fail(code: 'invalid_segment' | 'too_large' | 'internal', message: string): never {
  throw coreError(code, message);
}

export interface ZstdCodec {
  compress(data: Uint8Array, level: number): Buffer;
  /**
   * Decompresses a body of zstd frames; throws `too_large` past `maxOutput` bytes and
   * `invalid_segment` when the frames are malformed (see zstdFrames).
   */
  decompress(frames: Uint8Array, maxOutput: number): Buffer;
}

const ZSTD_MAGIC = 0xfd2fb528;
/** Skippable frames have the magic numbers 0x184D2A50 ..= 0x184D2A5F. */
const ZSTD_SKIPPABLE_MAGIC = 0x184d2a50;
const ZSTD_BLOCK_MAX = 128 * 1024;
/**
 * The window zstd's streaming decoders accept by default (ZSTD_WINDOWLOG_LIMIT_DEFAULT): the
 * reference crate's refuses a frame that needs more, so both twins do.
 */
const ZSTD_WINDOW_MAX = 2 ** 27;

function zstdError(message: string): never {
  fail('invalid_segment', `zstd body: ${message}`);
}

/** One zstd frame of a stored body, as its headers describe it. */
interface ZstdFrame {
  start: number;
  end: number;
  /** the content size its header declares */
  declared: number | null;
  /** the most it can decompress to: the declared size, else its raw and RLE block sizes plus the largest block per compressed block */
  bound: number;
  /** where the first compressed block that holds no bytes starts, if any (see zlibCodec) */
  emptyCompressedBlock: number | null;
}

/**
 * The zstd frames of a stored body, read from their frame and block headers (RFC 8878 §3.1)
 * without decompressing. Frames follow one another (skippable ones are left out), as the
 * reference crate's decoder reads them. Declared sizes past the ceiling are `too_large` before
 * anything is allocated; a malformed header is `invalid_segment`. The native core scans the
 * same way (crate/src/segment.rs).
 */
export function zstdFrames(stored: Uint8Array, maxOutput: number): ZstdFrame[] {
  const len = stored.length;
  const view = new DataView(stored.buffer, stored.byteOffset, stored.byteLength);
  const field = (at: number, size: number): number => {
    let value = 0;
    for (let i = size - 1; i >= 0; i--) value = value * 256 + stored[at + i]!;
    return value;
  };
  let pos = 0;
  let declared = 0;
  const frames: ZstdFrame[] = [];
  while (pos < len) {
    const frame = pos;
    if (len - pos < 4) zstdError(`${len - pos} stray bytes at byte ${frame}`);
    const magic = view.getUint32(pos, true);
    if ((magic & ~0xf) >>> 0 === ZSTD_SKIPPABLE_MAGIC) {
      if (len - pos < 8) zstdError(`skippable frame at byte ${frame} is cut short`);
      pos += 8 + view.getUint32(pos + 4, true);
      if (pos > len) zstdError(`skippable frame at byte ${frame} runs past the body`);
      continue;
    }
    if (magic !== ZSTD_MAGIC) zstdError(`no frame magic at byte ${frame}`);
    pos += 4;
    if (pos >= len) zstdError(`frame at byte ${frame} is cut short`);
    const descriptor = stored[pos++]!;
    if (descriptor & 0x08) zstdError(`frame at byte ${frame} sets a reserved bit`);
    const singleSegment = (descriptor & 0x20) !== 0;
    const contentSizeFlag = descriptor >> 6;
    const contentSizeBytes = contentSizeFlag === 0 ? Number(singleSegment) : 2 ** contentSizeFlag;
    const dictionaryBytes = [0, 1, 2, 4][descriptor & 3]!;
    if (len - pos < Number(!singleSegment) + dictionaryBytes + contentSizeBytes) {
      zstdError(`frame header at byte ${frame} is cut short`);
    }
    let window = 0;
    if (!singleSegment) {
      const base = 2 ** (10 + (stored[pos]! >> 3));
      window = base + (base / 8) * (stored[pos]! & 7);
      pos += 1;
    }
    if (field(pos, dictionaryBytes) !== 0) zstdError(`frame at byte ${frame} needs a dictionary`);
    pos += dictionaryBytes;
    let contentSize: number | null = null;
    if (contentSizeBytes === 2) contentSize = field(pos, 2) + 256;
    else if (contentSizeBytes > 0) contentSize = field(pos, contentSizeBytes);
    pos += contentSizeBytes;
    if (contentSize !== null) {
      declared += contentSize;
      if (declared > maxOutput) {
        fail('too_large', `zstd frame at byte ${frame} declares ${contentSize} bytes, past the ${maxOutput}-byte ceiling`);
      }
      if (singleSegment) window = contentSize;
    }
    if (window > ZSTD_WINDOW_MAX) {
      zstdError(`frame at byte ${frame} needs a ${window}-byte window, over the ${ZSTD_WINDOW_MAX} bytes decoders accept`);
    }
    const blockMax = Math.min(window, ZSTD_BLOCK_MAX);
    let blocks = 0;
    let emptyCompressedBlock: number | null = null;
    for (;;) {
      if (len - pos < 3) zstdError(`block header at byte ${pos} is cut short`);
      const header = field(pos, 3);
      const at = pos;
      pos += 3;
      const size = header >>> 3;
      const type = (header >>> 1) & 3;
      if (type === 3) zstdError(`block at byte ${at} has the reserved type`);
      if (size > blockMax) zstdError(`block at byte ${at} holds ${size} bytes, over the frame's ${blockMax}-byte blocks`);
      const storedSize = type === 1 ? 1 : size;
      if (len - pos < storedSize) zstdError(`block at byte ${at} is cut short`);
      pos += storedSize;
      blocks += type === 2 ? blockMax : size;
      if (type === 2 && size === 0) emptyCompressedBlock ??= at;
      if (header & 1) break;
    }
    if (descriptor & 0x04) {
      if (len - pos < 4) zstdError(`checksum of the frame at byte ${frame} is cut short`);
      pos += 4;
    }
    frames.push({ start: frame, end: pos, declared: contentSize, bound: contentSize ?? blocks, emptyCompressedBlock });
  }
  return frames;
}

/**
 * Decompresses the frames one after another into at most `capacity` bytes, each in one go into
 * the room left: a frame that declares its size into exactly that many bytes, one that does not
 * into no more than its bound. `decodeFrame` decompresses one frame into at most `room` bytes
 * after the `filled` ones and returns how many it wrote, or null when it needs more room; it
 * throws `invalid_segment` when the frame does not decompress. Returns the bytes written, or
 * null when the frames need more room than `capacity`.
 */
function decompressFrames(
  frames: readonly ZstdFrame[],
  capacity: number,
  decodeFrame: (frame: ZstdFrame, room: number, filled: number) => number | null,
): number | null {
  let filled = 0;
  for (const frame of frames) {
    const room = capacity - filled;
    if (frame.declared !== null && frame.declared > room) return null;
    const written = decodeFrame(frame, Math.min(frame.bound, room), filled);
    if (written === null) {
      if (frame.declared === null) return null;
      zstdError(`frame at byte ${frame.start} does not decompress into the ${frame.declared} bytes it declares`);
    }
    if (frame.declared !== null && written !== frame.declared) {
      zstdError(`frame at byte ${frame.start} declares ${frame.declared} bytes but holds ${written}`);
    }
    filled += written;
  }
  return filled;
}

/**
 * A codec whose decompression reads the frames' headers first (zstdFrames), so that nothing is
 * allocated past their bound or the ceiling, then decompresses them with `decompressAll` into
 * at most that many bytes, or null when they need more.
 */
function boundedCodec(
  compress: ZstdCodec['compress'],
  decompressAll: (stored: Uint8Array, frames: readonly ZstdFrame[], capacity: number) => Buffer | null,
): ZstdCodec {
  return {
    compress,
    decompress(stored, maxOutput) {
      const frames = zstdFrames(stored, maxOutput);
      if (frames.length === 0) return Buffer.alloc(0);
      const limit = Math.min(
        frames.reduce((sum, frame) => sum + frame.bound, 0),
        maxOutput,
      );
      const body = decompressAll(stored, frames, limit);
      if (body !== null) return body;
      if (limit === maxOutput) fail('too_large', `zstd body decompresses to more than the ${maxOutput}-byte ceiling`);
      zstdError(`decompresses to more than the ${limit} bytes its frames allow`);
    },
  };
}

// Node >= 22.15 (and 23.8) ships zstd in zlib; @types/node 20 does not declare it.
interface ZlibWithZstd {
  zstdCompressSync(data: Uint8Array, options: { params: Record<number, number> }): Buffer;
  zstdDecompressSync(data: Uint8Array, options: { maxOutputLength: number; chunkSize?: number }): Buffer;
  constants: { ZSTD_c_compressionLevel: number };
}

/** The last block of a frame: raw, empty. */
const EMPTY_LAST_BLOCK = Buffer.from([0x01, 0x00, 0x00]);
/** Frame header descriptor bit: a content checksum follows the last block. */
const CHECKSUM_FLAG = 0x04;

/** The smallest output chunk node:zlib takes (Z_MIN_CHUNK): the room a frame's chunk has past its declared size. */
const ZLIB_MIN_CHUNK = 64;

/**
 * node:zlib's zstd. Its decompressor streams, so each frame is decompressed on its own, stopped
 * past the room it has (maxOutputLength: zlib then holds at most one more chunk), and its size
 * checked against the size it declares here (libzstd's streaming decoder skips that check when
 * the last block is empty; the one-shot decoder of the native core does not). A frame that
 * declares its size is decompressed into one chunk with a little room to spare, so that zlib
 * sees the frame end without allocating another.
 *
 * The streaming decoder decompresses a whole block before it hands out any of it, the one-shot
 * decoder writes it out as it goes: in a frame cut short by its room, the one-shot decoder may
 * run out of room before it reaches the corruption the streaming decoder reports. There (corrupt
 * input under a ceiling below the frame's bound) the one-shot decoder of the WebAssembly build
 * decides.
 *
 * The streaming decoder also passes over a compressed block that holds no bytes, where the
 * one-shot decoder stops as on corrupt data. Such a frame is invalid; a frame that does not
 * declare its size may first outgrow its room, which the one-shot decoder reports instead: the
 * blocks before the empty one decide, decompressed as a frame of their own that ends there.
 */
function zlibCodec(z: ZlibWithZstd): ZstdCodec {
  const decompressFrame = (bytes: Uint8Array, frame: ZstdFrame, room: number): Buffer | null => {
    let part: Buffer;
    try {
      const chunk = frame.declared === null ? {} : { chunkSize: frame.declared + ZLIB_MIN_CHUNK };
      part = z.zstdDecompressSync(bytes, { maxOutputLength: Math.max(room, 1), ...chunk });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') return null;
      if (frame.declared === null && room < frame.bound) return oneShotFrame(bytes, frame, room);
      zstdError(`frame at byte ${frame.start} does not decompress: ${(err as Error).message}`);
    }
    return part.length > room ? null : part;
  };
  return boundedCodec(
    (data, level) => z.zstdCompressSync(data, { params: { [z.constants.ZSTD_c_compressionLevel]: level } }),
    (stored, frames, capacity) => {
      const parts: Buffer[] = [];
      const filled = decompressFrames(frames, capacity, (frame, room) => {
        const empty = frame.emptyCompressedBlock;
        if (empty !== null) {
          const blocksBefore = Buffer.concat([stored.subarray(frame.start, empty), EMPTY_LAST_BLOCK]);
          blocksBefore[4]! &= ~CHECKSUM_FLAG;
          if (frame.declared === null && decompressFrame(blocksBefore, frame, room) === null) return null;
          zstdError(`frame at byte ${frame.start} does not decompress: the compressed block at byte ${empty} is empty`);
        }
        const part = decompressFrame(stored.subarray(frame.start, frame.end), frame, room);
        if (part === null) return null;
        parts.push(part);
        return part.length;
      });
      if (filled === null) return null;
      return parts.length === 1 ? parts[0]! : Buffer.concat(parts, filled);
    },
  );
}

/**
 * The one-shot decoder's verdict on one frame that does not declare its size, in `room` bytes
 * (the wasm build, as the native core decodes): its bytes, or null when it needs more room.
 */
function oneShotFrame(bytes: Uint8Array, frame: ZstdFrame, room: number): Buffer | null {
  try {
    return getWasmCodec().decompress(bytes, room);
  } catch (err) {
    const { code } = err as { code?: unknown };
    if (code === 'too_large') return null;
    if (code === 'invalid_segment') zstdError(`frame at byte ${frame.start} does not decompress`);
    throw err;
  }
}

// The lib settings (ES2023 + @types/node 20) do not type the WebAssembly JS API.
interface WebAssemblyApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => object;
}

interface EmscriptenZstd {
  calledRun?: boolean;
  instantiateWasm?: (imports: object, receive: (instance: object) => unknown) => unknown;
  init(): unknown;
  HEAPU8: Uint8Array;
  _malloc(size: number): number;
  _free(ptr: number): void;
  _ZSTD_isError(code: number): number;
  _ZSTD_decompress(dst: number, dstCapacity: number, src: number, srcSize: number): number;
}

/** ZSTD_decompress's result for "destination buffer is too small" (-ZSTD_error_dstSize_tooSmall as a u32). */
const ZSTD_DST_TOO_SMALL = 2 ** 32 - 70;

function loadWasmZstd(): EmscriptenZstd {
  const distDir = dirname(packageRequire.resolve('@bokuweb/zstd-wasm'));
  let module: EmscriptenZstd;
  try {
    module = (packageRequire(join(distDir, 'module.js')) as { Module: EmscriptenZstd }).Module;
    // Another copy of this module in the process (the ESM and CommonJS builds, the root and
    // graphstream/pure) may have started the one runtime already; starting it again breaks both.
    if (!module.calledRun) {
      const { WebAssembly: wasmApi } = globalThis as unknown as { WebAssembly: WebAssemblyApi };
      const wasm = new wasmApi.Module(readFileSync(join(distDir, 'zstd.wasm')));
      module.instantiateWasm = (imports, receive) => receive(new wasmApi.Instance(wasm, imports));
      module.init();
    }
  } catch (err) {
    fail('internal', `cannot load @bokuweb/zstd-wasm from ${distDir}: ${(err as Error).message}`);
  }
  if (!module.calledRun) fail('internal', `@bokuweb/zstd-wasm in ${distDir} did not initialize`);
  return module;
}

/** The WebAssembly build of libzstd: its one-shot ZSTD_decompress, as the native core uses (crate/src/segment.rs). */
function wasmCodec(): ZstdCodec {
  const module = loadWasmZstd();
  // Loaded after the runtime is up: its compress() uses the same Module object.
  const { compress } = packageRequire('@bokuweb/zstd-wasm') as {
    compress(data: Uint8Array, level: number): Uint8Array;
  };
  return boundedCodec(
    (data, level) => {
      const out = compress(data, level);
      return Buffer.from(out.buffer, out.byteOffset, out.byteLength);
    },
    (stored, frames, capacity) => {
      const src = module._malloc(stored.length);
      const dst = module._malloc(Math.max(capacity, 1));
      try {
        if (src === 0 || dst === 0) fail('too_large', `cannot allocate ${capacity} bytes for the zstd body`);
        module.HEAPU8.set(stored, src);
        const filled = decompressFrames(frames, capacity, (frame, room, filled) => {
          const result = module._ZSTD_decompress(dst + filled, room, src + frame.start, frame.end - frame.start) >>> 0;
          if (!module._ZSTD_isError(result)) return result;
          if (result === ZSTD_DST_TOO_SMALL) return null;
          zstdError(`frame at byte ${frame.start} does not decompress`);
        });
        // HEAPU8 may have been replaced by memory growth: read it after the calls.
        return filled === null ? null : Buffer.from(module.HEAPU8.subarray(dst, dst + filled));
      } finally {
        module._free(dst);
        module._free(src);
      }
    },
  );
}

const runtimeZlib = zlib as unknown as Partial<ZlibWithZstd>;
const zlibHasZstd = typeof runtimeZlib.zstdCompressSync === 'function' && typeof runtimeZlib.zstdDecompressSync === 'function';

let wasm: ZstdCodec | undefined;
let codec: ZstdCodec | undefined;

function getWasmCodec(): ZstdCodec {
  wasm ??= wasmCodec();
  return wasm;
}

/** node:zlib's codec where the runtime has one; the WebAssembly one, loaded on first use, on older Node. */
function getCodec(): ZstdCodec {
  codec ??= zlibHasZstd ? zlibCodec(runtimeZlib as ZlibWithZstd) : getWasmCodec();
  return codec;
}

/** Every zstd codec this runtime can use (the wasm one always), so tests cover each. */
export function availableZstdCodecs(): { name: 'node:zlib' | 'zstd-wasm'; codec: ZstdCodec }[] {
  const codecs: { name: 'node:zlib' | 'zstd-wasm'; codec: ZstdCodec }[] = [{ name: 'zstd-wasm', codec: getWasmCodec() }];
  if (zlibHasZstd) codecs.push({ name: 'node:zlib', codec: getCodec() });
  return codecs;
}

export function zstdCompress(data: Uint8Array, level: number): Buffer {
  return getCodec().compress(data, level);
}

export function zstdDecompress(frames: Uint8Array, maxOutput: number): Buffer {
  return getCodec().decompress(frames, maxOutput);
}
