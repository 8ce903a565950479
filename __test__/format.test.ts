import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { createFormatApi, type DecodedSegment, type FormatApi } from '../ts/format/format.js';
import { GraphstreamError, normalizeErrors, type ErrorCode } from '../ts/errors.js';
import { corePairs, cores } from './helpers/cores.js';
import { hex, manifest, readVector, vectorFiles } from './helpers/vectors.js';
import { availableZstdCodecs } from '../ts/pure/zstd.js';

const ZERO_HASH = Buffer.alloc(32);
const HEADER_SIZE = 128;
const entriesOf = (segment: DecodedSegment) =>
  segment.entries.map((e) => ({ sequence: e.sequence, prevHash: Buffer.from(e.prevHash), payload: Buffer.from(e.payload) }));
const expectedEntries = manifest.entries.map((e) => ({
  sequence: e.sequence,
  prevHash: hex(e.prev_hash),
  payload: hex(e.payload),
}));

function codeOf(fn: () => unknown): ErrorCode | 'ok' {
  try {
    fn();
    return 'ok';
  } catch (err) {
    expect(err).toBeInstanceOf(GraphstreamError);
    return (err as GraphstreamError).code;
  }
}

/** The code of a core-level failure (an Error whose `code` is one of ERROR_CODES). */
function coreCodeOf(fn: () => unknown): ErrorCode | 'ok' {
  return codeOf(() => normalizeErrors(fn));
}

/** An unsealed segment (header + raw entries) holding `payloads` from `firstSeq`, chained from `prevHash`. */
function unsealedSegment(api: FormatApi, payloads: Uint8Array[], firstSeq = 1, prevHash: Uint8Array = ZERO_HASH): Buffer {
  const parts = [api.encodeHeader({ firstSeq, createdMs: manifest.created_ms })];
  let prev: Uint8Array = prevHash;
  payloads.forEach((payload, i) => {
    parts.push(api.encodeEntry({ sequence: firstSeq + i, prevHash: prev, payload }));
    prev = api.computeEntryHash(prev, payload);
  });
  return Buffer.concat(parts);
}

test('the fixtures are the vectors of FORMAT.md, unchanged', () => {
  expect(vectorFiles.sort()).toEqual(Object.keys(manifest.files).sort());
  for (const [name, file] of Object.entries(manifest.files)) {
    const bytes = readVector(name);
    expect(bytes.length, name).toBe(file.size);
    expect(createHash('sha256').update(bytes).digest('hex'), name).toBe(file.sha256);
  }
});

describe.each(cores)('$kind core', (core) => {
  const api = createFormatApi(core);

  describe('golden vectors', () => {
    test.each(Object.entries(manifest.files))('%s decodes as the manifest says', (name, file) => {
      const bytes = readVector(name);
      if (file.expect !== 'ok') {
        expect(codeOf(() => api.decodeSegment(bytes))).toBe(file.expect);
        return;
      }
      const segment = api.decodeSegment(bytes);
      expect(entriesOf(segment)).toEqual(expectedEntries);
      expect(segment.chainHash.toString('hex')).toBe(manifest.chain_hash);
      expect(segment.startHash).toEqual(ZERO_HASH);
      expect(segment.tornTail).toBe(false);
      expect(segment.validLength).toBe(bytes.length);
      segment.entries.forEach((entry, i) => {
        expect(api.computeEntryHash(entry.prevHash, entry.payload).toString('hex')).toBe(manifest.entries[i]!.hash);
      });
      expect(segment.header).toMatchObject({ version: 1, firstSeq: 1, createdMs: manifest.created_ms });
    });

    test('every entry encodes to entry_bytes and decodes back', () => {
      for (const e of manifest.entries) {
        const bytes = api.encodeEntry({ sequence: e.sequence, prevHash: hex(e.prev_hash), payload: hex(e.payload) });
        expect(bytes.toString('hex')).toBe(e.entry_bytes);
        const decoded = api.decodeEntry(bytes);
        expect(decoded.size).toBe(bytes.length);
        expect(decoded.entry).toEqual({ sequence: e.sequence, prevHash: hex(e.prev_hash), payload: hex(e.payload) });
        expect(api.computeEntryHash(hex(e.prev_hash), hex(e.payload)).toString('hex')).toBe(e.hash);
      }
    });

    test('encodeEntries chains the whole batch like entry_bytes and hash', () => {
      const batch = core.encodeEntries(1, ZERO_HASH, expectedEntries.map((e) => e.payload));
      expect(batch.bytes.toString('hex')).toBe(manifest.entries.map((e) => e.entry_bytes).join(''));
      expect(batch.chainHashes.toString('hex')).toBe(manifest.entries.map((e) => e.hash).join(''));
    });

    test('decodeEntry walks the entries of a segment by offset', () => {
      const bytes = readVector('unsealed.hadbj');
      let offset = HEADER_SIZE;
      for (const e of expectedEntries) {
        const { entry, size } = api.decodeEntry(bytes, offset);
        expect(entry).toEqual(e);
        offset += size;
      }
      expect(offset).toBe(bytes.length);
    });

    test('the unsealed segment encodes byte for byte', () => {
      expect(unsealedSegment(api, expectedEntries.map((e) => e.payload))).toEqual(readVector('unsealed.hadbj'));
    });

    test('sealing without compression gives sealed-raw byte for byte', () => {
      expect(api.sealSegment(readVector('unsealed.hadbj'), { level: 0 })).toEqual(readVector('sealed-raw.hadbj'));
    });

    test('sealing with zstd gives a segment that decodes like sealed-zstd', () => {
      const sealed = api.sealSegment(readVector('unsealed.hadbj'));
      const reference = api.decodeHeader(readVector('sealed-zstd.hadbj'));
      const header = api.decodeHeader(sealed);
      expect(header).toMatchObject({ flags: 0x0d, compression: 1, firstSeq: 1, lastSeq: 5, entryCount: 5 });
      expect({ ...header, bodyLen: 0, bodyChecksum: null }).toEqual({ ...reference, bodyLen: 0, bodyChecksum: null });
      const segment = api.decodeSegment(sealed);
      expect(entriesOf(segment)).toEqual(expectedEntries);
      expect(segment.chainHash.toString('hex')).toBe(manifest.chain_hash);
    });

    test('headers decode to their fields and encode back', () => {
      const bytes = readVector('sealed-raw.hadbj');
      const header = api.decodeHeader(bytes);
      expect(header).toEqual({
        version: 1,
        flags: 0x0c,
        compression: 0,
        firstSeq: 1,
        lastSeq: 5,
        entryCount: 5,
        bodyLen: bytes.length - HEADER_SIZE - 32,
        bodyChecksum: createHash('sha256').update(bytes.subarray(HEADER_SIZE, bytes.length - 32)).digest(),
        prevSegmentChecksum: 0n,
        createdMs: manifest.created_ms,
      });
      expect(api.encodeHeader(header)).toEqual(bytes.subarray(0, HEADER_SIZE));
      expect(api.encodeHeader({ firstSeq: 1, createdMs: manifest.created_ms })).toEqual(
        readVector('unsealed.hadbj').subarray(0, HEADER_SIZE),
      );
    });

    test('a torn tail is reported, or cut off when allowed', () => {
      const bytes = readVector('unsealed-torn-tail.hadbj');
      expect(codeOf(() => api.decodeSegment(bytes))).toBe('torn_tail');
      const segment = api.decodeSegment(bytes, { allowTornTail: true });
      expect(segment.tornTail).toBe(true);
      expect(entriesOf(segment)).toEqual(expectedEntries.slice(0, 4));
      expect(segment.chainHash.toString('hex')).toBe(manifest.entries[3]!.hash);
      expect(segment.validLength).toBe(HEADER_SIZE + manifest.entries.slice(0, 4).reduce((n, e) => n + e.entry_bytes.length / 2, 0));
    });

    test('the names and keys of FORMAT.md', () => {
      const { prefix, db, generation, first_seq, key } = manifest.segment_key_example;
      expect(api.segmentKey(prefix, db, generation, first_seq)).toBe(key);
      expect(api.segmentFileName(manifest.local_file_example.first_seq)).toBe(manifest.local_file_example.name);
      expect(api.segmentKey('p/', 'db', 0x1a, 2 ** 53 - 1)).toBe('p/db/001a/001fffffffffffff.hadbj');
      expect(api.segmentFileName(2 ** 53 - 1)).toBe('journal-9007199254740991.hadbj');
      expect(codeOf(() => api.segmentKey('p/', 'a/b', 0, 1))).toBe('invalid_argument');
      expect(codeOf(() => api.segmentFileName(-1))).toBe('invalid_argument');
    });
  });

  test('crc32c is CRC-32C (Castagnoli) and continues from an initial value', () => {
    const data = Buffer.from('123456789');
    expect(api.crc32c(data)).toBe(0xe3069283);
    expect(api.crc32c(data.subarray(4), api.crc32c(data.subarray(0, 4)))).toBe(0xe3069283);
    expect(api.crc32c(new Uint8Array(0))).toBe(0);
  });

  test('async variants resolve to what the sync ones return and reject with GraphstreamError', async () => {
    const unsealed = readVector('unsealed.hadbj');
    expect(await api.sealSegmentAsync(unsealed, { level: 0 })).toEqual(api.sealSegment(unsealed, { level: 0 }));
    const decoded = await api.decodeSegmentAsync(readVector('sealed-zstd.hadbj'));
    expect(entriesOf(decoded)).toEqual(expectedEntries);
    await expect(api.decodeSegmentAsync(readVector('bad-magic.hadbj'))).rejects.toMatchObject({ code: 'invalid_magic' });
    await expect(api.sealSegmentAsync(readVector('sealed-raw.hadbj'))).rejects.toBeInstanceOf(GraphstreamError);
  });

  test('decodeSegment returns payloads as views of one body, not copies', () => {
    const segment = api.decodeSegment(readVector('sealed-zstd.hadbj'));
    const buffers = new Set(segment.entries.map((e) => e.payload.buffer));
    expect(buffers.size).toBe(1);
  });

  test('a segment body is decoded into a given buffer when it fits, and into its own otherwise', async () => {
    for (const name of ['sealed-zstd.hadbj', 'sealed-raw.hadbj', 'unsealed.hadbj', 'unsealed-torn-tail.hadbj']) {
      const bytes = readVector(name);
      const options = { allowTornTail: true };
      const plain = core.decodeSegment(bytes, options);
      for (const decode of [core.decodeSegment, core.decodeSegmentAsync]) {
        const into = Buffer.alloc(plain.body.length + 7, 0xaa);
        const decoded = await decode(bytes, { ...options, into });
        expect(decoded.body.buffer, name).toBe(into.buffer);
        expect(decoded.body.byteOffset, name).toBe(into.byteOffset);
        expect(decoded.body, name).toEqual(plain.body);
        expect(into.subarray(plain.body.length), name).toEqual(Buffer.alloc(7, 0xaa));
        expect({ ...decoded, body: null }, name).toEqual({ ...plain, body: null });

        const small = Buffer.alloc(plain.body.length - 1);
        // a frame without its size is found not to fit only once the buffer is full
        const own = await decode(bytes, { ...options, into: small });
        expect(own.body.buffer, name).not.toBe(small.buffer);
        expect(own.body, name).toEqual(plain.body);
      }
    }
    const bytes = readVector('sealed-zstd.hadbj');
    expect(coreCodeOf(() => core.decodeSegment(bytes, { into: bytes }))).toBe('invalid_argument');
    await expect(core.decodeSegmentAsync(bytes, { into: bytes.subarray(100) })).rejects.toMatchObject({ code: 'invalid_argument', message: expect.stringMatching(/shares memory/) });
    await expect(core.decodeSegmentAsync(bytes, { into: new Uint8Array(1 << 20) as Buffer })).rejects.toMatchObject({ code: 'invalid_argument' });
    expect(coreCodeOf(() => core.decodeSegment(readVector('broken-chain.hadbj'), { into: Buffer.alloc(1 << 20) }))).toBe('chain_broken');
  });

  test('a segment is sealed into a given buffer when it fits, and into its own otherwise', async () => {
    const unsealed = readVector('unsealed.hadbj');
    for (const level of [0, 3]) {
      const plain = core.sealSegment(unsealed, { level });
      for (const seal of [core.sealSegment, core.sealSegmentAsync]) {
        const into = Buffer.alloc(plain.length + 7, 0xaa);
        const sealed = await seal(unsealed, { level, into });
        expect(sealed.buffer, `level ${level}`).toBe(into.buffer);
        expect(sealed.byteOffset, `level ${level}`).toBe(into.byteOffset);
        expect(sealed, `level ${level}`).toEqual(plain);
        expect(into.subarray(plain.length), `level ${level}`).toEqual(Buffer.alloc(7, 0xaa));

        const small = Buffer.alloc(plain.length - 1, 0xbb);
        const own = await seal(unsealed, { level, into: small });
        expect(own.buffer, `level ${level}`).not.toBe(small.buffer);
        expect(own, `level ${level}`).toEqual(plain);
        expect(small, 'a buffer too small is not written to').toEqual(Buffer.alloc(plain.length - 1, 0xbb));
      }
    }
    expect(coreCodeOf(() => core.sealSegment(unsealed, { into: unsealed }))).toBe('invalid_argument');
    await expect(core.sealSegmentAsync(unsealed, { into: unsealed.subarray(100) })).rejects.toMatchObject({ code: 'invalid_argument', message: expect.stringMatching(/shares memory/) });
    await expect(core.sealSegmentAsync(unsealed, { into: new Uint8Array(1 << 20) as Buffer })).rejects.toMatchObject({ code: 'invalid_argument' });
    expect(coreCodeOf(() => core.sealSegment(readVector('sealed-raw.hadbj'), { into: Buffer.alloc(1 << 20) }))).toBe('invalid_segment');
  });

  describe('checks and their error codes', () => {
    const payloads = expectedEntries.map((e) => e.payload);

    test('an empty unsealed segment decodes to no entries and cannot be sealed', () => {
      const empty = api.encodeHeader({ firstSeq: 7, createdMs: 1 });
      const segment = api.decodeSegment(empty);
      expect(segment.entries).toEqual([]);
      expect(segment.validLength).toBe(HEADER_SIZE);
      expect(codeOf(() => api.sealSegment(empty))).toBe('invalid_segment');
    });

    test('a sealed segment cannot be sealed again', () => {
      expect(codeOf(() => api.sealSegment(readVector('sealed-raw.hadbj')))).toBe('invalid_segment');
    });

    test('sealing verifies every entry', () => {
      expect(codeOf(() => api.sealSegment(readVector('unsealed-torn-tail.hadbj')))).toBe('torn_tail');
      const broken = Buffer.from(readVector('unsealed.hadbj'));
      broken[HEADER_SIZE + 20]! ^= 0xff; // inside the first entry's prev_hash: its CRC fails
      expect(codeOf(() => api.sealSegment(broken))).toBe('torn_tail');
    });

    test('sequences must run on from first_seq', () => {
      const shifted = unsealedSegment(api, payloads);
      shifted.writeUInt32BE(2, 16); // first_seq 2, entries from 1
      expect(codeOf(() => api.decodeSegment(shifted))).toBe('invalid_segment');
      const gap = Buffer.concat([
        api.encodeHeader({ firstSeq: 1 }),
        api.encodeEntry({ sequence: 1, prevHash: ZERO_HASH, payload: payloads[0]! }),
        api.encodeEntry({ sequence: 3, prevHash: api.computeEntryHash(ZERO_HASH, payloads[0]!), payload: payloads[1]! }),
      ]);
      expect(codeOf(() => api.decodeSegment(gap))).toBe('invalid_segment');
      expect(codeOf(() => api.sealSegment(gap))).toBe('invalid_segment');
    });

    test('a broken chain in an unsealed segment is chain_broken', () => {
      const bytes = Buffer.concat([
        api.encodeHeader({ firstSeq: 1 }),
        api.encodeEntry({ sequence: 1, prevHash: ZERO_HASH, payload: payloads[0]! }),
        api.encodeEntry({ sequence: 2, prevHash: ZERO_HASH, payload: payloads[1]! }),
      ]);
      expect(codeOf(() => api.decodeSegment(bytes))).toBe('chain_broken');
    });

    test("an entry's failure names its sequence and offset as error details", () => {
      const entry1 = api.encodeEntry({ sequence: 7, prevHash: ZERO_HASH, payload: payloads[0]! });
      const bytes = Buffer.concat([
        api.encodeHeader({ firstSeq: 7 }),
        entry1,
        api.encodeEntry({ sequence: 8, prevHash: ZERO_HASH, payload: payloads[1]! }),
      ]);
      const detailsOf = (fn: () => unknown) => {
        try {
          fn();
        } catch (err) {
          return { code: (err as GraphstreamError).code, ...(err as GraphstreamError).details };
        }
        throw new Error('expected a failure');
      };
      expect(detailsOf(() => api.decodeSegment(bytes))).toEqual({ code: 'chain_broken', sequence: 8, offset: HEADER_SIZE + entry1.length });
      // the entry where sequence 8 belongs says 9
      const skipping = Buffer.concat([
        api.encodeHeader({ firstSeq: 7 }),
        entry1,
        api.encodeEntry({ sequence: 9, prevHash: api.computeEntryHash(ZERO_HASH, payloads[0]!), payload: payloads[1]! }),
      ]);
      expect(detailsOf(() => api.decodeSegment(skipping))).toEqual({ code: 'invalid_segment', sequence: 8, offset: HEADER_SIZE + entry1.length });
    });

    test('a segment continuing a chain keeps prev_segment_checksum and its start hash', () => {
      const start = hex(manifest.entries[1]!.hash);
      const sealed = api.sealSegment(unsealedSegment(api, payloads.slice(2), 3, start), { level: 0 });
      const segment = api.decodeSegment(sealed);
      expect(segment.header.prevSegmentChecksum).toBe(start.readBigUInt64BE(0));
      expect(segment.startHash).toEqual(start);
      expect(entriesOf(segment)).toEqual(expectedEntries.slice(2));
      expect(segment.chainHash.toString('hex')).toBe(manifest.chain_hash);
    });

    test('bytes after the declared end of a sealed segment are rejected', () => {
      const bytes = Buffer.concat([readVector('sealed-raw.hadbj'), Buffer.alloc(1)]);
      expect(codeOf(() => api.decodeSegment(bytes))).toBe('invalid_segment');
    });

    test('short inputs are truncated', () => {
      const bytes = readVector('sealed-raw.hadbj');
      expect(codeOf(() => api.decodeHeader(bytes.subarray(0, 127)))).toBe('truncated');
      expect(codeOf(() => api.decodeSegment(bytes.subarray(0, 10)))).toBe('truncated');
      expect(codeOf(() => api.decodeSegment(bytes.subarray(0, bytes.length - 1)))).toBe('truncated');
      const entry = hex(manifest.entries[0]!.entry_bytes);
      expect(codeOf(() => api.decodeEntry(entry.subarray(0, 47)))).toBe('truncated');
      expect(codeOf(() => api.decodeEntry(entry.subarray(0, entry.length - 1)))).toBe('truncated');
      expect(codeOf(() => api.decodeEntry(entry, entry.length - 10))).toBe('truncated');
    });

    test('a corrupted entry fails its CRC', () => {
      const entry = Buffer.from(hex(manifest.entries[0]!.entry_bytes));
      entry[60]! ^= 1;
      expect(codeOf(() => api.decodeEntry(entry))).toBe('checksum_mismatch');
    });

    test('the body and the input are capped by maxBodyBytes', () => {
      const big = [new Uint8Array(4 * 1024 * 1024)]; // compresses to a few hundred bytes
      const sealed = api.sealSegment(unsealedSegment(api, big));
      expect(sealed.length).toBeLessThan(4096);
      expect(codeOf(() => api.decodeSegment(sealed, { maxBodyBytes: 1024 * 1024 }))).toBe('too_large');
      expect(api.decodeSegment(sealed).entries[0]!.payload.length).toBe(big[0]!.length);
      expect(codeOf(() => api.decodeSegment(readVector('unsealed.hadbj'), { maxBodyBytes: 100 }))).toBe('too_large');
      expect(codeOf(() => api.decodeSegment(readVector('sealed-raw.hadbj'), { maxBodyBytes: 100 }))).toBe('too_large');
    });

    test('a huge declared length is checked against the bytes present, not allocated', () => {
      const bytes = Buffer.from(readVector('sealed-raw.hadbj'));
      bytes.writeUInt32BE(0x001f_ffff, 36); // body_len ~ 2^53
      expect(codeOf(() => api.decodeSegment(bytes))).not.toBe('ok');
      const entry = Buffer.from(hex(manifest.entries[0]!.entry_bytes));
      entry.writeUInt32BE(0xffff_ffff, 4);
      expect(codeOf(() => api.decodeEntry(entry))).toBe('truncated');
    });

    test('invalid arguments are invalid_argument', () => {
      expect(codeOf(() => api.computeEntryHash(new Uint8Array(31), new Uint8Array()))).toBe('invalid_argument');
      expect(codeOf(() => api.encodeEntry({ sequence: -1, prevHash: ZERO_HASH, payload: new Uint8Array() }))).toBe(
        'invalid_argument',
      );
      expect(codeOf(() => api.encodeEntry({ sequence: 2 ** 53, prevHash: ZERO_HASH, payload: new Uint8Array() }))).toBe(
        'invalid_argument',
      );
      expect(codeOf(() => api.encodeHeader({ firstSeq: 1, bodyChecksum: new Uint8Array(3) }))).toBe('invalid_argument');
      expect(codeOf(() => api.sealSegment(readVector('unsealed.hadbj'), { level: 99 }))).toBe('invalid_argument');
    });
  });
});

describe.each(corePairs)('sealed by the $writer.kind core, decoded by the $reader.kind core', ({ writer, reader }) => {
  const write = createFormatApi(writer);
  const read = createFormatApi(reader);

  test.each([0, 1, 3, 19])('zstd level %i', (level) => {
    const sealed = write.sealSegment(readVector('unsealed.hadbj'), { level });
    const segment = read.decodeSegment(sealed);
    expect(entriesOf(segment)).toEqual(expectedEntries);
    expect(segment.chainHash.toString('hex')).toBe(manifest.chain_hash);
    expect(segment.header.flags).toBe(level > 0 ? 0x0d : 0x0c);
  });

  test('encoded entries are byte-identical', () => {
    const payloads = [new Uint8Array(0), Buffer.from('x'), new Uint8Array(70_000).fill(7)];
    expect(reader.encodeEntries(9, ZERO_HASH, payloads)).toEqual(writer.encodeEntries(9, ZERO_HASH, payloads));
  });
});

describe.each(availableZstdCodecs())('pure core zstd via $name', ({ codec }) => {
  const sealedZstd = readVector('sealed-zstd.hadbj');
  const storedBody = sealedZstd.subarray(HEADER_SIZE, sealedZstd.length - 32);
  const rawBody = readVector('sealed-raw.hadbj').subarray(HEADER_SIZE, -32);

  test('decompresses the reference frame (no declared content size)', () => {
    expect(codec.decompress(storedBody, 1 << 20)).toEqual(rawBody);
  });

  test('round-trips what it compresses, and what the other codecs compress', () => {
    const data = Buffer.from('graphstream '.repeat(50_000));
    for (const { codec: other } of availableZstdCodecs()) {
      expect(codec.decompress(other.compress(data, 3), data.length)).toEqual(data);
    }
  });

  test('caps the output', () => {
    const zeros = codec.compress(new Uint8Array(1 << 20), 3);
    expect(coreCodeOf(() => codec.decompress(zeros, (1 << 20) - 1))).toBe('too_large');
    expect(coreCodeOf(() => codec.decompress(storedBody, 100))).toBe('too_large');
  });

  test('rejects what is not a zstd frame', () => {
    expect(coreCodeOf(() => codec.decompress(Buffer.from('not zstd at all'), 1 << 20))).toBe('invalid_segment');
    expect(coreCodeOf(() => codec.decompress(storedBody.subarray(0, storedBody.length - 5), 1 << 20))).toBe('invalid_segment');
  });

  const native = createFormatApi(cores.find((core) => core.kind === 'native')!);
  /** A sealed segment around a zstd `body`, checksum right: the native core's verdict on it is its decompression's. */
  const sealedWithBody = (body: Buffer) =>
    Buffer.concat([
      native.encodeHeader({ flags: 0x0d, compression: 1, firstSeq: 1, lastSeq: 1, entryCount: 1, bodyLen: body.length, bodyChecksum: createHash('sha256').update(body).digest() }),
      body,
      ZERO_HASH,
    ]);

  test('fails as the native core does on a compressed block that holds no bytes', () => {
    // a frame without a declared size: a raw block of `raw` bytes, then an empty compressed block
    const frame = (raw: number) =>
      Buffer.concat([Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x38, (raw << 3) & 0xff, raw >> 5, 0]), Buffer.alloc(raw, 7), Buffer.from([0x05, 0, 0])]);
    const cases = [
      { raw: 0, maxOutput: 1 << 20, code: 'invalid_segment' },
      { raw: 100, maxOutput: 1 << 20, code: 'invalid_segment' },
      // the block before it outgrows the ceiling first
      { raw: 100, maxOutput: 50, code: 'too_large' },
    ];
    for (const { raw, maxOutput, code } of cases) {
      const body = frame(raw);
      expect(codeOf(() => native.decodeSegment(sealedWithBody(body), { maxBodyBytes: maxOutput })), `native, ${raw} bytes before`).toBe(code);
      expect(coreCodeOf(() => codec.decompress(body, maxOutput)), `${raw} bytes before`).toBe(code);
    }
  });

  test('fails as the native core does on a damaged frame that outgrows the ceiling before the damage', () => {
    // The reference frame with its last byte changed: a streaming decoder, which decompresses a
    // whole block before handing it out, finds the damage; the native core's one-shot decoder
    // runs out of room first.
    const damaged = Buffer.from(storedBody);
    damaged[damaged.length - 1]! ^= 0xff;
    expect(codeOf(() => native.decodeSegment(sealedWithBody(damaged), { maxBodyBytes: 100 }))).toBe('too_large');
    expect(coreCodeOf(() => codec.decompress(damaged, 100))).toBe('too_large');
    expect(coreCodeOf(() => codec.decompress(damaged, 1 << 20))).toBe('invalid_segment');
  });
});

test('a process exits cleanly when its sealSegmentAsync calls resolved while every core was busy', async () => {
  // With every core busy, an idle-class seal starves and the libuv thread seals in its place; the
  // starved run goes on reading the input after the promise has resolved. Node frees that Buffer
  // when the environment is torn down, so the teardown must wait for the run (it crashed with
  // SIGSEGV before). 32 MiB keeps the starved run busy well into the teardown.
  const api = createFormatApi(cores.find((core) => core.kind === 'native')!);
  const dir = await mkdtemp(join(tmpdir(), 'gs-seal-exit-'));
  try {
    const file = join(dir, 'unsealed');
    const word = (n: number) => Math.abs(Math.sin(n)).toString(36).slice(2, 10);
    const payloads = Array.from({ length: 140_000 }, (_, i) =>
      Buffer.from(`CREATE (p:Person {id: ${i}, name: '${word(i)} ${word(i + 1)}', email: '${word(i + 2)}@example.org', city: '${word(i % 97)}', score: ${Math.sin(i)}, tags: ['${word(i % 13)}', '${word(i % 31)}'], joined: '2026-0${1 + (i % 9)}-1${i % 10}'})`),
    );
    await writeFile(file, unsealedSegment(api, payloads));
    const root = dirname(dirname(fileURLToPath(import.meta.url)));
    const binary = join(root, 'native', readdirSync(join(root, 'native')).find((name) => name.endsWith('.node'))!);
    const script = `
      import { createRequire } from 'node:module';
      import { readFileSync } from 'node:fs';
      import { availableParallelism } from 'node:os';
      import { Worker } from 'node:worker_threads';
      const binding = createRequire(import.meta.url)(${JSON.stringify(binary)});
      const unsealed = readFileSync(${JSON.stringify(file)});
      const spinners = Array.from({ length: availableParallelism() }, () => new Worker('for (;;) {}', { eval: true }));
      await Promise.all(spinners.map((worker) => new Promise((online) => worker.once('online', online))));
      await Promise.all([binding.sealSegmentAsync(unsealed, { level: 3 }), binding.sealSegmentAsync(unsealed, { level: 3 })]);
      await Promise.all(spinners.map((worker) => worker.terminate()));
    `;
    for (let run = 0; run < 3; run++) {
      const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
      expect({ status: child.status, signal: child.signal, stderr: child.stderr }).toEqual({ status: 0, signal: null, stderr: '' });
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}, 120_000);
