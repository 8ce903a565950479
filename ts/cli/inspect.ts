/** `graphstream inspect <segment>`: a segment's header and entries, as a table or as JSON. */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import type { HeaderFields } from '../core/core.js';
import { GraphstreamError, toGraphstreamError } from '../errors.js';
import { ENTRY_HEADER_SIZE, FLAG_COMPRESSED, FLAG_HAS_CHAIN_HASH, FLAG_SEALED } from '../format/constants.js';
import { zeroTailLength } from '../format/format.js';
import { decodeHeader, decodeJournalEntry, decodeSegmentAsync, type DecodedSegment, type JournalEntry } from '../index.js';
import { Output, formatBytes, formatFields, formatTable, hashPrefix, paramToJson, summarizeParams, toJson } from './output.js';

const FLAG_NAMES: readonly (readonly [number, string])[] = [
  [FLAG_COMPRESSED, 'compressed'],
  [FLAG_SEALED, 'sealed'],
  [FLAG_HAS_CHAIN_HASH, 'chain-hash'],
];
const QUERY_COLUMN_LIMIT = 60;

interface InspectedEntry {
  sequence: number;
  prevHash: Buffer;
  chainHash: Buffer;
  /** bytes the entry occupies in the body */
  size: number;
  payload: Buffer;
  /** the graphd entry, or null when the payload is not one (an engine with its own payload format) */
  entry: JournalEntry | null;
}

/** created_ms as a date where it is one (it is any i64 in a header). */
function createdText(createdMs: number | bigint): string {
  const date = new Date(typeof createdMs === 'bigint' ? Number.NaN : createdMs);
  return Number.isNaN(date.getTime()) ? `${createdMs} ms (not a date)` : `${date.toISOString()} (${createdMs})`;
}

function flagNames(flags: number): string {
  const names = FLAG_NAMES.filter(([bit]) => (flags & bit) !== 0).map(([, name]) => name);
  return `0x${flags.toString(16).padStart(2, '0')}${names.length > 0 ? ` (${names.join(', ')})` : ''}`;
}

function inspectEntries(segment: DecodedSegment): InspectedEntry[] {
  return segment.entries.map((entry, index) => {
    let decoded: JournalEntry | null;
    try {
      decoded = decodeJournalEntry(entry.payload);
    } catch {
      decoded = null;
    }
    return {
      sequence: entry.sequence,
      prevHash: entry.prevHash,
      chainHash: segment.entries[index + 1]?.prevHash ?? segment.chainHash,
      size: ENTRY_HEADER_SIZE + entry.payload.length,
      payload: entry.payload,
      entry: decoded,
    };
  });
}

function headerJson(header: HeaderFields) {
  return {
    ...header,
    bodyChecksum: header.bodyChecksum.toString('hex'),
    prevSegmentChecksum: header.prevSegmentChecksum.toString(),
    sealed: (header.flags & FLAG_SEALED) !== 0,
  };
}

/** What follows the last whole entry of an unsealed segment: a torn entry, and the zeros a writer under 'fsync' wrote ahead. */
function tailOf(bytes: Buffer, segment: DecodedSegment): { tornBytes: number; zeroTailBytes: number } {
  if (!segment.tornTail) return { tornBytes: 0, zeroTailBytes: 0 };
  const zeroTailBytes = zeroTailLength(bytes, segment.validLength);
  return { tornBytes: bytes.length - segment.validLength - zeroTailBytes, zeroTailBytes };
}

function printSegment(path: string, bytes: Buffer, segment: DecodedSegment, entries: InspectedEntry[], output: Output): void {
  const { header } = segment;
  const size = bytes.length;
  const { tornBytes, zeroTailBytes } = tailOf(bytes, segment);
  const sealed = (header.flags & FLAG_SEALED) !== 0;
  output.print(`segment ${path} (${formatBytes(size)}, ${sealed ? 'sealed' : 'unsealed'})`);
  output.print(
    formatFields([
      ['version', header.version],
      ['flags', flagNames(header.flags)],
      ['compression', header.compression === 0 ? 'none' : header.compression === 1 ? 'zstd' : `unknown (${header.compression})`],
      ['first sequence', header.firstSeq],
      ['last sequence', sealed ? header.lastSeq : '(unsealed)'],
      ['entry count', sealed ? header.entryCount : '(unsealed)'],
      ['body', sealed ? `${header.bodyLen} bytes, sha256 ${header.bodyChecksum.toString('hex')}` : '(unsealed)'],
      ['prev segment checksum', header.prevSegmentChecksum.toString()],
      ['created', createdText(header.createdMs)],
      ['entries', entries.length],
      ['start hash', segment.startHash.toString('hex')],
      ['chain hash', segment.chainHash.toString('hex')],
      ...(tornBytes > 0 ? ([['torn tail', `${tornBytes} bytes after byte ${segment.validLength}`]] as const) : []),
      ...(zeroTailBytes > 0 ? ([['zeros written ahead', `${zeroTailBytes} bytes (a live segment under 'fsync')`]] as const) : []),
    ]),
  );
  output.print();
  const rows = entries.map((item) => {
    let query = `<${item.payload.length}-byte payload, not a graphd entry>`;
    if (item.entry) query = item.entry.query === '' ? '<no query>' : item.entry.query.replace(/\s+/g, ' ');
    return [
      String(item.sequence),
      hashPrefix(item.prevHash),
      hashPrefix(item.chainHash),
      String(item.payload.length),
      query.length > QUERY_COLUMN_LIMIT ? `${query.slice(0, QUERY_COLUMN_LIMIT - 1)}…` : query,
      item.entry ? summarizeParams(item.entry.params) : '',
    ];
  });
  output.print(formatTable(['SEQ', 'PREV', 'HASH', 'PAYLOAD', 'QUERY', 'PARAMS'], rows));
}

function entryJson(item: InspectedEntry) {
  return {
    sequence: item.sequence,
    prevHash: item.prevHash.toString('hex'),
    chainHash: item.chainHash.toString('hex'),
    size: item.size,
    payloadBytes: item.payload.length,
    ...(item.entry
      ? {
          entry: {
            sequence: item.entry.sequence,
            query: item.entry.query,
            timestampMs: item.entry.timestampMs,
            params: item.entry.params.map(([name, value]) => [name, paramToJson(value)]),
          },
        }
      : { entry: null, payloadHex: item.payload.toString('hex') }),
  };
}

export function registerInspect(program: Command, output: Output): void {
  program
    .command('inspect')
    .summary("show a segment's header and entries")
    .description(
      "Decodes and verifies one .hadbj segment (sealed or unsealed) and prints its header and every entry: " +
        'sequence, prev/chain hash prefixes, payload size, and the decoded graphd query with its parameters.',
    )
    .argument('<segment>', 'a .hadbj segment file')
    .option('--json', 'print the full decode as JSON, parameters typed')
    .action(async (file: string, options: { json?: boolean }) => {
      const path = resolve(file);
      let bytes: Buffer;
      try {
        bytes = await readFile(path);
      } catch (err) {
        throw toGraphstreamError(err, `reading ${path}`);
      }
      let segment: DecodedSegment;
      try {
        const { flags } = decodeHeader(bytes);
        segment = await decodeSegmentAsync(bytes, { allowTornTail: (flags & FLAG_SEALED) === 0 });
      } catch (err) {
        const error = toGraphstreamError(err);
        throw new GraphstreamError(error.code, `${path}: ${error.message}`, { cause: err });
      }
      const entries = inspectEntries(segment);
      if (options.json) {
        output.print(
          toJson(
            {
              file: path,
              size: bytes.length,
              header: headerJson(segment.header),
              startHash: segment.startHash.toString('hex'),
              chainHash: segment.chainHash.toString('hex'),
              validLength: segment.validLength,
              tornTail: segment.tornTail,
              ...tailOf(bytes, segment),
              entries: entries.map(entryJson),
            },
            2,
          ),
        );
        return;
      }
      printSegment(path, bytes, segment, entries, output);
    });
}
