/**
 * Loads the native addon and adapts it to the Core binding surface. The binary comes from the
 * platform's prebuilt package (`@graphstream/native-linux-x64-gnu`, ...: optional dependencies of
 * the package, one per target in package.json's `napi.targets`), or, in a source checkout, from
 * native/ where `npm run build:native` leaves it.
 *
 * `GRAPHSTREAM_CORE=native|pure` forces a core: `pure` does not load the addon at all; `native`
 * makes the package root refuse to start without it. Loading itself never throws: `nativeCore`
 * is null where no binary loads, and `nativeLoadError` says why; `defaultNativeCore()` decides
 * what the package root does about it.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GraphstreamError } from '../errors.js';
import { HASH_SIZE } from '../format/constants.js';
import { checkDecodeTarget, checkSealTarget, nativeRecipients, type Core, type CoreWriter, type DecodeOptions, type RawSegment, type SealOptions, type WriterOptions, type WriterStart } from './core.js';
import type * as Native from './native-binding.js';
import { packPayloads } from './packed.js';

export type { NativeCancel, NativeObjectStore, NativeStagedFile, NativeStored } from './native-binding.js';
type NativeBinding = typeof Native;

/** This module's file; in a CommonJS bundle of the ESM build import.meta.url is empty, and __filename says it. */
const moduleFile = import.meta.url ? fileURLToPath(import.meta.url) : __filename;
const require = createRequire(moduleFile);

/**
 * The prebuilt binaries, by napi-rs platform name. Each `require` names its package literally, so
 * that bundlers and file tracers (esbuild, webpack, @vercel/nft) see the dependency.
 */
const PLATFORM_PACKAGES: Record<string, () => unknown> = {
  'linux-x64-gnu': () => require('@graphstream/native-linux-x64-gnu'),
  'linux-arm64-gnu': () => require('@graphstream/native-linux-arm64-gnu'),
  'linux-x64-musl': () => require('@graphstream/native-linux-x64-musl'),
  'linux-arm64-musl': () => require('@graphstream/native-linux-arm64-musl'),
  'darwin-x64': () => require('@graphstream/native-darwin-x64'),
  'darwin-arm64': () => require('@graphstream/native-darwin-arm64'),
  'win32-x64-msvc': () => require('@graphstream/native-win32-x64-msvc'),
};

function linuxLibc(): 'gnu' | 'musl' {
  try {
    return readFileSync('/usr/bin/ldd', 'utf8').includes('musl') ? 'musl' : 'gnu';
  } catch {
    // no ldd (a distroless image): musl's dynamic loader is /lib/ld-musl-<arch>.so.1
    try {
      return readdirSync('/lib').some((name) => name.startsWith('ld-musl-')) ? 'musl' : 'gnu';
    } catch {
      return 'gnu';
    }
  }
}

/** This process's platform as napi-rs names it: `linux-x64-gnu`, `darwin-arm64`, `win32-x64-msvc`, ... */
function hostPlatform(): string {
  const base = `${process.platform}-${process.arch}`;
  if (process.platform === 'linux') return `${base}-${linuxLibc()}`;
  if (process.platform === 'win32') return `${base}-msvc`;
  return base;
}

/** In graphstream's own source checkout, where `npm run build:native` leaves the binary; null in an installed package or a bundle. */
function sourceCheckoutBinary(platform: string): string | null {
  for (let dir = dirname(moduleFile); ; dir = dirname(dir)) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest)) {
      const isGraphstream = (JSON.parse(readFileSync(manifest, 'utf8')) as { name?: unknown }).name === 'graphstream';
      const binary = join(dir, 'native', `graphstream.${platform}.node`);
      return isGraphstream && existsSync(binary) ? binary : null;
    }
    if (dirname(dir) === dir) return null;
  }
}

type CoreChoice = 'native' | 'pure' | undefined;

function forcedCore(): CoreChoice {
  const value = process.env.GRAPHSTREAM_CORE;
  if (value === undefined || value === '') return undefined;
  if (value === 'native' || value === 'pure') return value;
  throw new GraphstreamError('invalid_argument', `GRAPHSTREAM_CORE=${JSON.stringify(value)}: expected 'native' or 'pure' (or unset, for native with the pure fallback)`);
}

interface Loaded {
  binding: NativeBinding | null;
  error: Error | null;
  /** the package this platform's binary comes in; null where none is built */
  platformPackage: string | null;
}

function loadBinding(choice: CoreChoice): Loaded {
  const platform = hostPlatform();
  const requirePackage = PLATFORM_PACKAGES[platform];
  const platformPackage = requirePackage ? `@graphstream/native-${platform}` : null;
  if (choice === 'pure') {
    return { binding: null, error: new Error('the native core is not loaded: GRAPHSTREAM_CORE=pure'), platformPackage };
  }
  const local = sourceCheckoutBinary(platform);
  try {
    if (local !== null) return { binding: require(local) as NativeBinding, error: null, platformPackage };
    if (requirePackage === undefined) {
      const built = Object.keys(PLATFORM_PACKAGES).join(', ');
      return { binding: null, error: new Error(`no prebuilt native core for ${platform} (there are for ${built})`), platformPackage };
    }
    return { binding: requirePackage() as NativeBinding, error: null, platformPackage };
  } catch (err) {
    const why = err instanceof Error ? err.message.split('\n')[0] : String(err);
    const from = local ?? platformPackage;
    return { binding: null, error: new Error(`the native core for ${platform} did not load from ${from}: ${why}`, { cause: err }), platformPackage };
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
    appendNow: (payloads, stampSequences) => {
      try {
        const { bytes, lengths } = packPayloads(payloads);
        // the chain hashes of an inline append land in a Buffer made here (from Node's pool for
        // small groups), not in one the addon makes: an external buffer costs more than the append
        const chainHashes = Buffer.allocUnsafe(lengths.length * HASH_SIZE);
        const appended = writer.appendNow(bytes, lengths, stampSequences, chainHashes);
        return typeof appended === 'number' ? { firstSequence: appended, chainHashes } : appended;
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

function sealOptions(unsealed: Uint8Array, options: SealOptions | undefined): SealOptions | undefined {
  checkSealTarget(unsealed, options?.into);
  return options;
}

/** The binding answers with the length it wrote at the start of `into`, or a buffer of its own when the sealed segment did not fit there. */
function sealedSegment(sealed: number | Buffer, options: SealOptions | undefined): Buffer {
  return typeof sealed === 'number' ? options!.into!.subarray(0, sealed) : sealed;
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
    sealSegment: (unsealed, options) => sealedSegment(native.sealSegment(unsealed, sealOptions(unsealed, options)), options),
    sealSegmentAsync: async (unsealed, options) => sealedSegment(await native.sealSegmentAsync(asBuffer(unsealed), sealOptions(unsealed, options)), options),
    decodeSegment: (bytes, options) => fromNativeSegment(native.decodeSegment(bytes, decodeOptions(bytes, options))),
    decodeSegmentAsync: async (bytes, options) => fromNativeSegment(await native.decodeSegmentAsync(asBuffer(bytes), decodeOptions(bytes, options))),
    encryptSegment: (bytes, to) => native.encryptSegmentAsync(asBuffer(bytes), nativeRecipients(to)),
    encryptFileForUpload: (path, to) => native.encryptFileForUploadAsync(path, nativeRecipients(to)),
    decryptSegment: (bytes, using) =>
      native.decryptSegmentAsync(asBuffer(bytes), { identities: using.identities && [...using.identities], passphrase: using.passphrase, maxBytes: using.maxBytes }),
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

let choice: CoreChoice;
let choiceError: GraphstreamError | null = null;
try {
  choice = forcedCore();
} catch (err) {
  choiceError = err as GraphstreamError;
}
const loaded = loadBinding(choice);

/**
 * The addon's storage half, the one part of it that storage reaches beside the Core: the
 * `object_store` client behind ObjectStoreStorage and the whole-file read behind ReadBuffers.
 * It has no pure twin: ObjectStoreStorage needs the addon, and ReadBuffers reads through node:fs
 * and WebCrypto where it does not load.
 */
export type NativeStorage = Pick<NativeBinding, 'openNativeObjectStore' | 'readFileForUpload'>;
export const nativeStorage: NativeStorage | null = loaded.binding;
export const nativeCore: Core | null = loaded.binding ? adapt(loaded.binding) : null;
export const nativeLoadError: Error | null = loaded.error;

/** What a feature that exists only in the native core says where it is not loaded. */
export function nativeCoreRequired(feature: string): GraphstreamError {
  return new GraphstreamError('invalid_argument', `${feature} needs graphstream's native core, which is not loaded: ${nativeLoadError?.message ?? 'unknown reason'}`, {
    cause: nativeLoadError ?? undefined,
  });
}

let warned = false;

/**
 * The package root's default core when it is the native one; null when the root runs the pure
 * core instead. Falling back where a prebuilt binary exists warns once
 * (`GRAPHSTREAM_PURE_FALLBACK`); with GRAPHSTREAM_CORE=native, a missing addon throws.
 */
export function defaultNativeCore(): Core | null {
  if (choiceError !== null) throw choiceError;
  if (nativeCore !== null || choice === 'pure') return nativeCore;
  const install = loaded.platformPackage
    ? `install ${loaded.platformPackage} (npm installs it as an optional dependency of graphstream unless optional dependencies are omitted, or the lockfile was made on another platform)`
    : 'no prebuilt binary exists for this platform';
  if (choice === 'native') {
    throw new GraphstreamError('invalid_argument', `GRAPHSTREAM_CORE=native, but the native core is not available: ${nativeLoadError?.message}; ${install}`, {
      cause: nativeLoadError ?? undefined,
    });
  }
  if (loaded.platformPackage !== null && !warned) {
    warned = true;
    process.emitWarning(
      `graphstream runs its pure-TypeScript core (same bytes, slower) because ${nativeLoadError?.message}; ${install}, or set GRAPHSTREAM_CORE=pure to choose the pure core without this warning`,
      { code: 'GRAPHSTREAM_PURE_FALLBACK' },
    );
  }
  return null;
}
