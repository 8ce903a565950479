/**
 * Group 1, format: encoding typed entries, the hash chain, sealing a 4 MiB segment and decoding
 * it back, native vs pure, next to plain zstd -3 / zstd -d (the zstd CLI's own in-memory
 * benchmark, libzstd alone) and SHA-256 (OpenSSL through node:crypto) on the same bytes.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { encodeJournalEntry, nativeCore, pureCore } from '../../ts/index.js';
import { availableZstdCodecs } from '../../ts/pure/zstd.js';
import type { Core } from '../../ts/core/core.js';
import { addTable, addTarget, MB, type Context } from '../lib/context.js';
import { interleave, ratioOf, summarize, syncThroughput, type Summary } from '../lib/stats.js';
import { graphdEntries, graphdPayloads, takeForSegment, unsealedSegment } from '../lib/workload.js';
import { fmtNumber } from '../lib/report.js';
import { crateRef, runCrateRef } from '../lib/crate-ref.js';

const ENTRIES = 100_000;
const SEGMENT_BYTES = 4 * 1024 * 1024;

interface ZstdBench {
  compressMBs: number;
  decompressMBs: number;
  compressedBytes: number;
}

function parseZstdBench(output: string): ZstdBench {
  const matches = [...output.matchAll(/(\d+)\s*->\s*(\d+)\s*\(x[\d.]+\),\s*([\d.]+) MB\/s,\s*([\d.]+) MB\/s/g)];
  const last = matches[matches.length - 1];
  if (!last) throw new Error(`could not parse zstd -b output: ${output.slice(-500)}`);
  return { compressedBytes: Number(last[2]), compressMBs: Number(last[3]), decompressMBs: Number(last[4]) };
}

/** `zstd -b3`: the CLI's in-memory benchmark of libzstd level 3 (compression, then decompression), one thread. */
function zstdBench(file: string, seconds: number): ZstdBench {
  // the benchmark lines go to stderr
  const result = spawnSync('zstd', ['-b3', `-i${seconds}`, '--single-thread', file], { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`zstd -b3 failed (is the zstd CLI installed?): ${result.error?.message ?? result.stderr}`);
  return parseZstdBench(result.stderr + result.stdout);
}

export async function formatGroup(context: Context): Promise<void> {
  if (nativeCore === null) throw new Error('the native addon did not load (npm run build:native)');
  const native = nativeCore;
  const runs = context.quick ? 3 : 7;
  const minMs = context.quick ? 150 : 400;
  const cores: Record<'native' | 'pure', Core> = { native, pure: pureCore };

  context.log(`format: building ${ENTRIES} graphd entries`);
  const inputs = graphdEntries(ENTRIES);
  const payloads = graphdPayloads(ENTRIES);
  const payloadBytes = payloads.reduce((sum, p) => sum + p.length, 0);
  const sizes = payloads.map((p) => p.length).sort((a, b) => a - b);
  const zero = Buffer.alloc(32);

  // 1. payload encoding (shared TS protobuf code, the same for both cores)
  context.log('format: encodeJournalEntry');
  const protobuf = await interleave(runs, {
    encode: () => syncThroughput(ENTRIES, () => {
      for (let i = 0; i < ENTRIES; i++) encodeJournalEntry(inputs[i]!);
    }, minMs),
  });

  // 2. encodeEntries (CRC + chain + framing) over the 100k payloads
  context.log('format: encodeEntries, hash chain');
  const encode = await interleave(runs, {
    native: () => syncThroughput(ENTRIES, () => native.encodeEntries(1, zero, payloads), minMs),
    pure: () => syncThroughput(ENTRIES, () => pureCore.encodeEntries(1, zero, payloads), minMs),
  });

  // 3. hash chain, one computeEntryHash call per entry (public API), and SHA-256 alone
  const chain = (core: Core) => () => {
    let hash: Buffer = zero;
    for (let i = 0; i < ENTRIES; i++) hash = core.computeEntryHash(hash, payloads[i]!);
  };
  const joined = Buffer.concat(payloads);
  const hash = await interleave(runs, {
    native: () => syncThroughput(ENTRIES, chain(native), minMs),
    pure: () => syncThroughput(ENTRIES, chain(pureCore), minMs),
    sha256PerEntry: () => syncThroughput(ENTRIES, () => {
      let h: Buffer = zero;
      for (let i = 0; i < ENTRIES; i++) h = createHash('sha256').update(h).update(payloads[i]!).digest();
    }, minMs),
    sha256Bulk: () => syncThroughput(ENTRIES, () => createHash('sha256').update(joined).digest(), minMs),
  });

  // 4. sealing a 4 MiB segment and decoding it back
  const count = takeForSegment(payloads, 0, SEGMENT_BYTES);
  const unsealed = unsealedSegment(native, 1, zero, payloads.slice(0, count)).bytes;
  const body = unsealed.subarray(128);
  const bodyFile = join(context.scratch, 'segment-body.bin');
  writeFileSync(bodyFile, body);
  const sealed = { native: native.sealSegment(unsealed, { level: 3 }), pure: pureCore.sealSegment(unsealed, { level: 3 }) };
  const segMB = unsealed.length / MB;
  // the reference decompresses into the same buffer run after run; so does the decode into a reused buffer
  const decodeTarget = Buffer.allocUnsafeSlow(unsealed.length);
  context.log(`format: seal/decode a ${(unsealed.length / 1048576).toFixed(2)} MiB segment (${count} entries), zstd -b3`);
  const zstdSeconds = context.quick ? 1 : 2;
  const zstdRuns: ZstdBench[] = [];
  // the graphstream 0.3 crate's sealing of the same segment (bench/crate-ref), in its own process
  const crate = crateRef(context, context.root);
  const unsealedFile = join(context.scratch, 'segment-unsealed.hadbj');
  const crateSealedFile = join(context.scratch, 'segment-sealed-by-crate.hadbj');
  writeFileSync(unsealedFile, unsealed);
  const crateSeal: Record<string, () => number> = crate.binary === null
    ? {}
    : { sealCrate: () => runCrateRef<{ mbPerSecond: number }>(crate.binary!, ['seal', unsealedFile, String(minMs), crateSealedFile]).mbPerSecond };
  const segment = await interleave(runs, {
    ...crateSeal,
    sealNative: () => syncThroughput(segMB, () => native.sealSegment(unsealed, { level: 3 }), minMs),
    sealPure: () => syncThroughput(segMB, () => pureCore.sealSegment(unsealed, { level: 3 }), minMs),
    decodeNative: () => syncThroughput(segMB, () => native.decodeSegment(sealed.native), minMs),
    decodePure: () => syncThroughput(segMB, () => pureCore.decodeSegment(sealed.native), minMs),
    decodeNativeInto: () => syncThroughput(segMB, () => native.decodeSegment(sealed.native, { into: decodeTarget }), minMs),
    decodePureInto: () => syncThroughput(segMB, () => pureCore.decodeSegment(sealed.native, { into: decodeTarget }), minMs),
    zstd: () => {
      const result = zstdBench(bodyFile, zstdSeconds);
      zstdRuns.push(result);
      return result.compressMBs;
    },
    sha256: () => syncThroughput(body.length / MB, () => createHash('sha256').update(body).digest(), minMs),
  });
  // the crate's sealed form, read by this package: the same entries, chain and header fields (its
  // zstd frame differs: it streams through zstd::encode_all, this package compresses in one call)
  let sameAsCrate = 'the crate could not be built';
  if (crate.binary !== null) {
    const bigints = (_key: string, value: unknown) => (typeof value === 'bigint' ? value.toString() : value);
    const theirs = native.decodeSegment(readFileSync(crateSealedFile));
    const ours = native.decodeSegment(sealed.native);
    const { createdMs: _t, bodyLen: _l, bodyChecksum: _c, ...theirHeader } = theirs.header as unknown as Record<string, unknown>;
    const { createdMs: _o, bodyLen: _m, bodyChecksum: _d, ...ourHeader } = ours.header as unknown as Record<string, unknown>;
    const same = theirs.body.equals(ours.body) && theirs.chainHash.equals(ours.chainHash) && JSON.stringify(theirHeader, bigints) === JSON.stringify(ourHeader, bigints);
    sameAsCrate = same
      ? `decoded by this package to the same entries, chain hash and header fields (but for created_ms and the zstd frame: ${theirs.header.bodyLen} vs ${ours.header.bodyLen} B)`
      : 'NOT decoded to the same entries and header as this package\'s';
  }
  const sealCrate = (segment as Record<string, Summary | undefined>).sealCrate;
  if (sealCrate) context.figures['seal vs crate'] = segment.sealNative.median / sealCrate.median;
  // the warm-up round is the first entry of zstdRuns
  const zstdTimed = zstdRuns.slice(-runs);
  const zstdCompress = summarize(zstdTimed.map((r) => r.compressMBs));
  const zstdDecompress = summarize(zstdTimed.map((r) => r.decompressMBs));
  // plain decompression + SHA-256 of the same bytes, run after run: 1 / (1/zstd_d + 1/sha)
  const decodeReference = summarize(zstdTimed.map((r, i) => 1 / (1 / r.decompressMBs + 1 / segment.sha256.samples[i]!)));
  // zstd -b counts MB of its input (the body); ours count the whole unsealed segment (header too): same to 0.003%.

  const mbs = (entriesPerSecond: Summary, bytesPerEntry: number): Summary => ({
    ...entriesPerSecond,
    median: (entriesPerSecond.median * bytesPerEntry) / MB,
    samples: entriesPerSecond.samples.map((s) => (s * bytesPerEntry) / MB),
  });
  const avgPayload = payloadBytes / ENTRIES;
  const ratio = (a: Summary, b: Summary) => ratioOf(a, b);
  addTable(context, {
    group: 'format',
    title: `1. Format — ${ENTRIES.toLocaleString('en')} graphd entries (payload ${sizes[0]}–${sizes[sizes.length - 1]} B, median ${sizes[sizes.length >> 1]} B); segment ${(unsealed.length / 1048576).toFixed(2)} MiB, ${count} entries, zstd 3 → ${(sealed.native.length / 1048576).toFixed(2)} MiB`,
    columns: ['operation', 'native', 'pure', 'native/pure', 'reference', 'native/reference', 'unit'],
    rows: [
      ['encodeJournalEntry (TS protobuf, same code for both)', protobuf.encode, protobuf.encode, '1', null, null, 'entries/s'],
      ['encodeEntries (CRC + chain + framing)', encode.native, encode.pure, ratio(encode.native, encode.pure), null, null, 'entries/s'],
      ['encodeEntries', mbs(encode.native, avgPayload + 48), mbs(encode.pure, avgPayload + 48), null, null, null, 'MB/s'],
      ['hash chain, computeEntryHash per entry', hash.native, hash.pure, ratio(hash.native, hash.pure), hash.sha256PerEntry, ratio(hash.native, hash.sha256PerEntry), 'entries/s (ref: node:crypto SHA-256 per entry)'],
      ['SHA-256 bulk over the same payloads (OpenSSL)', null, null, null, mbs(hash.sha256Bulk, avgPayload), null, 'MB/s'],
      ['sealSegment 4 MiB, zstd 3', segment.sealNative, segment.sealPure, ratio(segment.sealNative, segment.sealPure), zstdCompress, ratio(segment.sealNative, zstdCompress), 'MB/s (ref: zstd -b3)'],
      ['  the graphstream 0.3 crate sealing the same segment (decode_entry, seal, encode_compressed; in memory)', null, null, null, sealCrate ?? null, sealCrate ? ratio(segment.sealNative, sealCrate) : null, 'MB/s (ref: the crate)'],
      ['decodeSegment + verify, into a reused buffer (DecodeOptions.into)', segment.decodeNativeInto, segment.decodePureInto, ratio(segment.decodeNativeInto, segment.decodePureInto), decodeReference, ratio(segment.decodeNativeInto, decodeReference), 'MB/s (ref: zstd -d then SHA-256)'],
      ['decodeSegment + verify, a fresh body each call', segment.decodeNative, segment.decodePure, ratio(segment.decodeNative, segment.decodePure), decodeReference, ratio(segment.decodeNative, decodeReference), 'MB/s (ref: zstd -d then SHA-256)'],
      ['  zstd -d alone', null, null, null, zstdDecompress, null, 'MB/s'],
      ['  SHA-256 alone (segment bytes)', null, null, null, segment.sha256, null, 'MB/s'],
    ],
    notes: [
      `median of ${runs} interleaved runs ±half their range; MB = 10^6 bytes of the uncompressed segment; ratios are medians of per-run ratios' medians`,
      `the crate's row: the calls its private seal_segment makes between reading the file and rewriting it, at zstd 3, in its own process (bench/crate-ref); its sealed form is ${sameAsCrate}`,
      'target 2 compares like with like: zstd -b decompresses into the same buffer run after run, and so does the decode into a reused buffer; a fresh 4 MiB body each call also pays for its pages (about 1,000 page faults)',
    ],
  });

  // 5. the pure core's zstd codecs on the same body: node:zlib's (its default from Node 22.15) and the WebAssembly build
  const codecs = availableZstdCodecs();
  const storedNative = sealed.native.subarray(128, sealed.native.length - 32);
  const bodyMB = body.length / MB;
  context.log(`format: the pure core's zstd codecs (${codecs.map(({ name }) => name).join(', ')})`);
  const codecRuns = await interleave(
    runs,
    Object.fromEntries(
      codecs.flatMap(({ name, codec }) => [
        [`${name} compress`, () => syncThroughput(bodyMB, () => codec.compress(body, 3), minMs)],
        [`${name} decompress`, () => syncThroughput(bodyMB, () => codec.decompress(storedNative, body.length), minMs)],
      ]),
    ),
  );
  addTable(context, {
    group: 'format',
    title: `1b. The pure core's zstd on the same segment body, Node ${process.version} (node:zlib's from Node 22.15, where it is the default)`,
    columns: ['codec', 'compress, level 3', 'decompress', 'unit'],
    rows: codecs.map(({ name }) => [name, codecRuns[`${name} compress`], codecRuns[`${name} decompress`], 'MB/s']),
    notes: [`median of ${runs} interleaved runs ±half their range; MB = 10^6 bytes of the uncompressed body; decompression of the native core's frame`],
  });

  const sealVsZstd = segment.sealNative.median / zstdCompress.median;
  const sealVsPure = segment.sealNative.median / segment.sealPure.median;
  addTarget(context, {
    id: 1,
    target: 'seal 4 MiB vs zstd -3; vs pure',
    measured: `${sealVsZstd.toFixed(2)}× zstd (${fmtNumber(segment.sealNative.median)} vs ${fmtNumber(zstdCompress.median)} MB/s); ${sealVsPure.toFixed(1)}× pure`,
    required: '≥ 0.7× zstd; ≥ 5× pure',
    met: sealVsZstd >= 0.7 && sealVsPure >= 5,
    value: sealVsZstd,
  });
  const decodeVsRef = segment.decodeNativeInto.median / decodeReference.median;
  const decodeVsPure = segment.decodeNativeInto.median / segment.decodePureInto.median;
  const freshVsRef = segment.decodeNative.median / decodeReference.median;
  addTarget(context, {
    id: 2,
    target: 'decode+verify vs zstd -d + SHA-256; vs pure',
    measured: `${decodeVsRef.toFixed(2)}× reference into a reused buffer (${fmtNumber(segment.decodeNativeInto.median)} vs ${fmtNumber(decodeReference.median)} MB/s; a fresh body each call ${freshVsRef.toFixed(2)}×); ${decodeVsPure.toFixed(1)}× pure`,
    required: '≥ 0.5× reference; ≥ 5× pure',
    met: decodeVsRef >= 0.5 && decodeVsPure >= 5,
    value: decodeVsRef,
  });
}
