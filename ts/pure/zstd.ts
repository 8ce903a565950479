/**
 * zstd for the pure core: compression by `node:zlib` where the runtime has it (Node >= 22.15),
 * otherwise by the WebAssembly build of `@bokuweb/zstd-wasm`; decompression always by the
 * latter's one-shot ZSTD_decompress, frame by frame, exactly as the native core does
 * (crate/src/segment.rs), so that both fail alike on any body.
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
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as zlib from 'node:zlib';

/** A compressed body, or the bytes it decompresses to, failed a check: thrown as `[code] message`. */
function fail(code: 'invalid_segment' | 'too_large' | 'internal', message: string): never {
  throw new Error(`[${code}] ${message}`);
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
      if (header & 1) break;
    }
    if (descriptor & 0x04) {
      if (len - pos < 4) zstdError(`checksum of the frame at byte ${frame} is cut short`);
      pos += 4;
    }
    frames.push({ start: frame, end: pos, declared: contentSize, bound: contentSize ?? blocks });
  }
  return frames;
}

// Node >= 22.15 ships zstd in zlib; @types/node 20 does not declare it.
interface ZlibWithZstd {
  zstdCompressSync(data: Uint8Array, options: { params: Record<number, number> }): Buffer;
  constants: { ZSTD_c_compressionLevel: number };
}

function zlibCompress(z: ZlibWithZstd): ZstdCodec['compress'] {
  return (data, level) => z.zstdCompressSync(data, { params: { [z.constants.ZSTD_c_compressionLevel]: level } });
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
  const require = createRequire(import.meta.url);
  const distDir = dirname(require.resolve('@bokuweb/zstd-wasm'));
  let module: EmscriptenZstd;
  try {
    module = (require(join(distDir, 'module.js')) as { Module: EmscriptenZstd }).Module;
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

function wasmCodec(): ZstdCodec {
  const module = loadWasmZstd();
  // Loaded after the runtime is up: its compress() uses the same Module object.
  const { compress } = createRequire(import.meta.url)('@bokuweb/zstd-wasm') as {
    compress(data: Uint8Array, level: number): Uint8Array;
  };
  /**
   * Decompresses the frames one after another into `capacity` bytes of WebAssembly memory,
   * each in one shot: a frame that declares its size into exactly that many bytes, one that
   * does not into the room left. Returns null when they need more room.
   */
  const decompressFrames = (stored: Uint8Array, frames: readonly ZstdFrame[], capacity: number): Buffer | null => {
    const src = module._malloc(stored.length);
    const dst = module._malloc(Math.max(capacity, 1));
    try {
      if (src === 0 || dst === 0) fail('too_large', `cannot allocate ${capacity} bytes for the zstd body`);
      module.HEAPU8.set(stored, src);
      let filled = 0;
      for (const frame of frames) {
        const room = capacity - filled;
        if (frame.declared !== null && frame.declared > room) return null;
        const result = module._ZSTD_decompress(dst + filled, Math.min(frame.bound, room), src + frame.start, frame.end - frame.start) >>> 0;
        if (module._ZSTD_isError(result)) {
          if (result === ZSTD_DST_TOO_SMALL && frame.declared === null) return null;
          zstdError(`frame at byte ${frame.start} does not decompress`);
        }
        if (frame.declared !== null && result !== frame.declared) {
          zstdError(`frame at byte ${frame.start} declares ${frame.declared} bytes but holds ${result}`);
        }
        filled += result;
      }
      // HEAPU8 may have been replaced by memory growth: read it after the calls.
      return Buffer.from(module.HEAPU8.subarray(dst, dst + filled));
    } finally {
      module._free(dst);
      module._free(src);
    }
  };
  return {
    compress(data, level) {
      const out = compress(data, level);
      return Buffer.from(out.buffer, out.byteOffset, out.byteLength);
    },
    decompress(stored, maxOutput) {
      const frames = zstdFrames(stored, maxOutput);
      if (frames.length === 0) return Buffer.alloc(0);
      const limit = Math.min(
        frames.reduce((sum, frame) => sum + frame.bound, 0),
        maxOutput,
      );
      const body = decompressFrames(stored, frames, limit);
      if (body !== null) return body;
      if (limit === maxOutput) fail('too_large', `zstd body decompresses to more than the ${maxOutput}-byte ceiling`);
      zstdError(`decompresses to more than the ${limit} bytes its frames allow`);
    },
  };
}

const runtimeZlib = zlib as unknown as Partial<ZlibWithZstd>;
const zlibHasZstd = typeof runtimeZlib.zstdCompressSync === 'function';

let wasm: ZstdCodec | undefined;
let codec: ZstdCodec | undefined;

function getWasmCodec(): ZstdCodec {
  wasm ??= wasmCodec();
  return wasm;
}

/** node:zlib's compressor where there is one, with the one decompression. */
function withZlibCompression(z: ZlibWithZstd): ZstdCodec {
  return { compress: zlibCompress(z), decompress: getWasmCodec().decompress };
}

function getCodec(): ZstdCodec {
  codec ??= zlibHasZstd ? withZlibCompression(runtimeZlib as ZlibWithZstd) : getWasmCodec();
  return codec;
}

/** Every zstd compressor this runtime can use (the wasm one always), so tests cover each. */
export function availableZstdCodecs(): { name: 'node:zlib' | 'zstd-wasm'; codec: ZstdCodec }[] {
  const codecs: { name: 'node:zlib' | 'zstd-wasm'; codec: ZstdCodec }[] = [{ name: 'zstd-wasm', codec: getWasmCodec() }];
  if (zlibHasZstd) codecs.push({ name: 'node:zlib', codec: withZlibCompression(runtimeZlib as ZlibWithZstd) });
  return codecs;
}

export function zstdCompress(data: Uint8Array, level: number): Buffer {
  return getCodec().compress(data, level);
}

export function zstdDecompress(frames: Uint8Array, maxOutput: number): Buffer {
  return getCodec().decompress(frames, maxOutput);
}
