/**
 * zstd for the pure core: `node:zlib` where the runtime has it (Node >= 22.15),
 * otherwise the WebAssembly build of `@bokuweb/zstd-wasm`.
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
  /** Decompresses one zstd frame; throws `too_large` past `maxOutput` bytes. */
  decompress(frame: Uint8Array, maxOutput: number): Buffer;
}

// Node >= 22.15 ships zstd in zlib; @types/node 20 does not declare it.
interface ZlibWithZstd {
  zstdCompressSync(data: Uint8Array, options: { params: Record<number, number> }): Buffer;
  zstdDecompressSync(data: Uint8Array, options: { maxOutputLength: number }): Buffer;
  constants: { ZSTD_c_compressionLevel: number };
}

function zlibCodec(z: ZlibWithZstd): ZstdCodec {
  return {
    compress(data, level) {
      return z.zstdCompressSync(data, { params: { [z.constants.ZSTD_c_compressionLevel]: level } });
    },
    decompress(frame, maxOutput) {
      try {
        return z.zstdDecompressSync(frame, { maxOutputLength: maxOutput });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
          fail('too_large', `zstd body decompresses to more than ${maxOutput} bytes`);
        }
        fail('invalid_segment', `zstd body does not decompress: ${(err as Error).message}`);
      }
    },
  };
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

const BLOCK_SIZE_MAX = 128 * 1024;

/**
 * Upper bound of what one zstd frame decompresses to, read from its frame and
 * block headers (RFC 8878 §3.1.1) without decompressing: the declared content
 * size when present, else the sum of raw/RLE block sizes plus the maximum
 * block size per compressed block. The wasm build only has one-shot
 * ZSTD_decompress, which needs its output buffer allocated up front: this
 * keeps that allocation bounded by the data actually present.
 */
function zstdFrameBound(frame: Uint8Array, maxOutput: number): number {
  const bad = (what: string): never => fail('invalid_segment', `zstd body: ${what}`);
  if (frame.length < 6) bad('shorter than a frame header');
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  if (view.getUint32(0, true) !== 0xfd2fb528) bad('bad frame magic');
  const descriptor = frame[4]!;
  const contentSizeFlag = descriptor >> 6;
  const singleSegment = (descriptor >> 5) & 1;
  const hasChecksum = (descriptor >> 2) & 1;
  let pos = 5;
  let windowSize = 0;
  if (!singleSegment) {
    const windowDescriptor = frame[pos++]!;
    const windowBase = 2 ** (10 + (windowDescriptor >> 3));
    windowSize = windowBase + (windowBase / 8) * (windowDescriptor & 7);
  }
  pos += [0, 1, 2, 4][descriptor & 3]!;
  const contentSizeBytes = contentSizeFlag === 0 ? singleSegment : [0, 2, 4, 8][contentSizeFlag]!;
  if (pos + contentSizeBytes > frame.length) bad('truncated frame header');
  if (contentSizeBytes > 0) {
    let contentSize: number;
    if (contentSizeBytes === 1) contentSize = frame[pos]!;
    else if (contentSizeBytes === 2) contentSize = view.getUint16(pos, true) + 256;
    else if (contentSizeBytes === 4) contentSize = view.getUint32(pos, true);
    else contentSize = view.getUint32(pos, true) + view.getUint32(pos + 4, true) * 2 ** 32;
    if (contentSize > maxOutput) {
      fail('too_large', `zstd body declares ${contentSize} bytes, over the limit of ${maxOutput}`);
    }
    return contentSize;
  }
  pos += contentSizeBytes;
  const blockMax = Math.min(windowSize, BLOCK_SIZE_MAX);
  let bound = 0;
  for (;;) {
    if (pos + 3 > frame.length) bad(`truncated block header at byte ${pos}`);
    const blockHeader = frame[pos]! | (frame[pos + 1]! << 8) | (frame[pos + 2]! << 16);
    pos += 3;
    const blockType = (blockHeader >> 1) & 3;
    const blockSize = blockHeader >>> 3;
    if (blockType === 3) bad(`reserved block type at byte ${pos - 3}`);
    bound += blockType === 2 ? blockMax : blockSize;
    pos += blockType === 1 ? 1 : blockSize;
    if (bound > maxOutput) {
      fail('too_large', `zstd body decompresses to more than ${maxOutput} bytes`);
    }
    if (blockHeader & 1) break;
  }
  if (hasChecksum) pos += 4;
  if (pos !== frame.length) bad(`frame ends at byte ${pos} of ${frame.length}`);
  return bound;
}

function loadWasmZstd(): EmscriptenZstd {
  const require = createRequire(import.meta.url);
  const distDir = dirname(require.resolve('@bokuweb/zstd-wasm'));
  let module: EmscriptenZstd;
  try {
    module = (require(join(distDir, 'module.js')) as { Module: EmscriptenZstd }).Module;
    const { WebAssembly: wasmApi } = globalThis as unknown as { WebAssembly: WebAssemblyApi };
    const wasm = new wasmApi.Module(readFileSync(join(distDir, 'zstd.wasm')));
    module.instantiateWasm = (imports, receive) => receive(new wasmApi.Instance(wasm, imports));
    module.init();
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
  return {
    compress(data, level) {
      const out = compress(data, level);
      return Buffer.from(out.buffer, out.byteOffset, out.byteLength);
    },
    decompress(frame, maxOutput) {
      const capacity = zstdFrameBound(frame, maxOutput);
      const src = module._malloc(frame.length);
      const dst = module._malloc(Math.max(capacity, 1));
      try {
        if (src === 0 || dst === 0) fail('too_large', `cannot allocate ${capacity} bytes for the zstd body`);
        module.HEAPU8.set(frame, src);
        const result = module._ZSTD_decompress(dst, capacity, src, frame.length);
        if (module._ZSTD_isError(result)) fail('invalid_segment', 'zstd body does not decompress');
        // HEAPU8 may have been replaced by memory growth: read it after the call.
        return Buffer.from(module.HEAPU8.subarray(dst, dst + (result >>> 0)));
      } finally {
        module._free(dst);
        module._free(src);
      }
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

function getCodec(): ZstdCodec {
  codec ??= zlibHasZstd ? zlibCodec(runtimeZlib as ZlibWithZstd) : getWasmCodec();
  return codec;
}

/** Every zstd implementation this runtime can use (the wasm one always), so tests cover each. */
export function availableZstdCodecs(): { name: 'node:zlib' | 'zstd-wasm'; codec: ZstdCodec }[] {
  const codecs: { name: 'node:zlib' | 'zstd-wasm'; codec: ZstdCodec }[] = [{ name: 'zstd-wasm', codec: getWasmCodec() }];
  if (zlibHasZstd) codecs.push({ name: 'node:zlib', codec: zlibCodec(runtimeZlib as ZlibWithZstd) });
  return codecs;
}

export function zstdCompress(data: Uint8Array, level: number): Buffer {
  return getCodec().compress(data, level);
}

export function zstdDecompress(frame: Uint8Array, maxOutput: number): Buffer {
  return getCodec().decompress(frame, maxOutput);
}
