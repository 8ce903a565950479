/**
 * Bounded memory on any input: a decompression bomb (a ~33 KB sealed object whose zstd body
 * inflates to 1000 MiB, with a correct and with a wrong body_checksum) is refused with its code
 * by both cores, on every path that reads a segment, and the child process decoding it grows by
 * far less than the object would inflate to: the checksum is checked before anything is
 * decompressed, a declared size past the ceiling is refused before anything is allocated, and
 * an undeclared one is streamed and stopped at the ceiling (64 MiB).
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { DEFAULT_MAX_BODY_BYTES } from '../ts/format/constants.js';
import { createFormatApi } from '../ts/format/format.js';
import { GraphstreamError } from '../ts/errors.js';
import { Journal } from '../ts/journal/journal.js';
import { readJournal } from '../ts/journal/reader.js';
import { bundleScripts } from './helpers/bundle.js';
import { cores } from './helpers/cores.js';
import { tempDir } from './helpers/journal-fixtures.js';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const buildDir = join(root, '.vitest-tmp', `decode-bounds-${process.pid}`);
const child = join(buildDir, 'decode-child.mjs');
const MIB = 1024 * 1024;
const BOMB_BYTES = 1000 * MIB;
/** what a child may grow by while it decodes one object: well under the bomb, above the ceiling's cost */
const GROWTH_LIMIT = 200 * MIB;

beforeAll(async () => {
  await bundleScripts({ 'decode-child': join(root, '__test__/helpers/decode-child.ts') }, buildDir);
});

afterAll(async () => {
  await rm(buildDir, { recursive: true, force: true });
});

/** A zstd frame of RLE blocks (4 bytes per 128 KiB of zeros) that inflates to `size` bytes. */
function rleFrame(size: number, declare: boolean): Buffer {
  const parts: Buffer[] = [Buffer.from([0x28, 0xb5, 0x2f, 0xfd]), Buffer.from(declare ? [0xc0, 7 << 3] : [0x00, 7 << 3])];
  if (declare) {
    const declared = Buffer.alloc(8);
    declared.writeBigUInt64LE(BigInt(size));
    parts.push(declared);
  }
  const blocks = Math.ceil(size / (128 * 1024));
  for (let i = 0; i < blocks; i++) {
    const length = Math.min(128 * 1024, size - i * 128 * 1024);
    const header = (length << 3) | (1 << 1) | (i === blocks - 1 ? 1 : 0);
    parts.push(Buffer.from([header & 0xff, (header >>> 8) & 0xff, header >>> 16, 0]));
  }
  return Buffer.concat(parts);
}

/** A sealed zstd segment claiming one entry, whose body is `frame`, its checksum right or wrong. */
function bombSegment(frame: Buffer, checksum: 'right' | 'wrong'): Buffer {
  const header = createFormatApi(cores[0]!).encodeHeader({
    flags: 0x0d,
    compression: 1,
    firstSeq: 1,
    lastSeq: 1,
    entryCount: 1,
    bodyLen: frame.length,
    bodyChecksum: checksum === 'right' ? createHash('sha256').update(frame).digest() : Buffer.alloc(32, 7),
  });
  return Buffer.concat([header, frame, Buffer.alloc(32)]);
}

const bombs = [true, false].flatMap((declare) =>
  (['right', 'wrong'] as const).map((checksum) => ({
    name: `${declare ? 'declaring' : 'not declaring'} its size, checksum ${checksum}`,
    bytes: bombSegment(rleFrame(BOMB_BYTES, declare), checksum),
    code: checksum === 'right' ? 'too_large' : 'checksum_mismatch',
  })),
);

interface ChildResult {
  code: string;
  growth: number;
}

function runChild(args: string[]): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [child, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    proc.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    proc.on('error', reject);
    proc.on('close', (code) => {
      const last = stdout.trim().split('\n').at(-1) ?? '';
      if (code !== 0 || !last.startsWith('{')) reject(new Error(`decode-child ${args.join(' ')} exited ${code}: ${stdout}${stderr}`));
      else resolve(JSON.parse(last) as ChildResult);
    });
  });
}

test('the bombs are small objects that inflate to 1000 MiB', () => {
  for (const bomb of bombs) expect(bomb.bytes.length, bomb.name).toBeLessThan(34_000);
});

describe.each(cores)('$kind core', (core) => {
  const api = createFormatApi(core);

  test.each(bombs)('a bomb $name is refused with its code', async ({ bytes, code }) => {
    expect(() => api.decodeSegment(bytes)).toThrow(expect.objectContaining({ code }));
    await expect(api.decodeSegmentAsync(bytes)).rejects.toMatchObject({ code });
    await expect(api.decodeSegmentAsync(bytes)).rejects.toBeInstanceOf(GraphstreamError);
  });

  test('a raised ceiling admits what it allows, and no more', () => {
    for (const declare of [true, false]) {
      const frame = rleFrame(2 * MIB, declare);
      const bytes = bombSegment(frame, 'right');
      expect(() => api.decodeSegment(bytes, { maxBodyBytes: 2 * MIB - 1 })).toThrow(expect.objectContaining({ code: 'too_large' }));
      // 2 MiB of zeros decompress, then fail as an entry (its CRC)
      expect(() => api.decodeSegment(bytes, { maxBodyBytes: 2 * MIB })).toThrow(expect.objectContaining({ code: 'checksum_mismatch' }));
    }
  });

  test.each(bombs)('decoding a bomb $name costs a child process far less than it inflates to', async ({ bytes, code }) => {
    const dir = await tempDir('bomb');
    const file = join(dir, 'bomb.hadbj');
    await writeFile(file, bytes);
    for (const mode of ['decode', 'decode-async']) {
      const result = await runChild([core.kind, mode, file]);
      expect(result.code, mode).toBe(code);
      expect(result.growth, `${mode}: ${(result.growth / MIB).toFixed(1)} MiB`).toBeLessThan(GROWTH_LIMIT);
    }
  });

  test("the journal's limits keep what it writes under the readers' default ceiling", async () => {
    const dir = await tempDir('largest-entry');
    await expect(Journal.open(dir, { core, maxSegmentBytes: DEFAULT_MAX_BODY_BYTES + 1 })).rejects.toMatchObject({ code: 'invalid_argument' });
    await expect(Journal.open(dir, { core, maxEntryBytes: DEFAULT_MAX_BODY_BYTES - 63 })).rejects.toMatchObject({ code: 'invalid_argument' });
    // the largest entry the journal takes, alone in the largest segment: read back with the defaults
    const journal = await Journal.open(dir, { core, maxSegmentBytes: DEFAULT_MAX_BODY_BYTES });
    const largest = Buffer.alloc(DEFAULT_MAX_BODY_BYTES - 64, 0x61);
    await expect(journal.appendRaw(Buffer.alloc(largest.length + 1))).rejects.toMatchObject({ code: 'too_large' });
    await journal.appendRaw(largest);
    await journal.close();
    const [file] = (await readdir(dir)).filter((name) => name.endsWith('.hadbj'));
    const decoded = await api.decodeSegmentAsync(await readFile(join(dir, file!)));
    expect(decoded.entries.map((entry) => entry.payload.length)).toEqual([largest.length]);
    const read: number[] = [];
    for await (const record of readJournal(dir, { core, raw: true })) read.push(record.payload.length);
    expect(read).toEqual([largest.length]);
  });

  test('downloading a bomb from storage costs a child process far less than it inflates to', async () => {
    const storeRoot = await tempDir('bomb-store');
    const key = join(storeRoot, 'wal', 'db', '0000');
    await mkdir(key, { recursive: true });
    await writeFile(join(key, '0000000000000001.hadbj'), bombs[2]!.bytes); // not declaring its size: the costlier
    const result = await runChild([core.kind, 'download', storeRoot]);
    expect(result.code).toBe('too_large');
    expect(result.growth, `${(result.growth / MIB).toFixed(1)} MiB`).toBeLessThan(GROWTH_LIMIT);
  });
});

test('inspect and verify refuse a bomb in a journal directory at a bounded cost', async () => {
  const dir = await tempDir('bomb-journal');
  const file = join(dir, 'journal-0000000000000001.hadbj');
  await writeFile(file, bombs[2]!.bytes);
  for (const mode of ['inspect', 'verify']) {
    const result = await runChild(['native', mode, mode === 'inspect' ? file : dir]);
    expect(result.code, mode).toBe('too_large');
    expect(result.growth, `${mode}: ${(result.growth / MIB).toFixed(1)} MiB`).toBeLessThan(GROWTH_LIMIT);
  }
});
