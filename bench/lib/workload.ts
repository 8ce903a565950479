/**
 * Journal-like workloads: graphd entries (Cypher CREATE/MERGE/SET with 2-8 typed params, about
 * 150-300 bytes encoded) and raw payloads. Deterministic (seeded), so every run sees the same bytes.
 */
import { encodeJournalEntry, ParamValue, type JournalAppendEntry } from '../../ts/index.js';
import type { Core } from '../../ts/core/core.js';
import { HEADER_SIZE, ZERO_HASH } from '../../ts/format/constants.js';
import { seededRandom } from '../../ts/cli/mutations.js';


const FIRST = ['Ada', 'Grace', 'Alan', 'Edsger', 'Barbara', 'Donald', 'Frances', 'Ken', 'Leslie', 'Margaret', 'Niklaus', 'Radia'];
const LAST = ['Lovelace', 'Hopper', 'Turing', 'Dijkstra', 'Liskov', 'Knuth', 'Allen', 'Thompson', 'Lamport', 'Hamilton', 'Wirth', 'Perlman'];
const CITIES = ['Lisbon', 'Oslo', 'Kyoto', 'Quito', 'Nairobi', 'Montreal', 'Tallinn', 'Hobart'];
const TAGS = ['new', 'sale', 'featured', 'bulk', 'eco', 'import', 'limited', 'gift'];

/** One graphd entry of a mix of query shapes; `i` makes ids unique. */
export function graphdEntry(random: () => number, i: number): JournalAppendEntry {
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!;
  const timestampMs = 1_767_225_600_000 + i * 7;
  switch (i % 4) {
    case 0:
      return {
        query: 'CREATE (p:Person {id: $id, name: $name, email: $email, age: $age, city: $city, joined: $joined})',
        params: {
          id: i,
          name: `${pick(FIRST)} ${pick(LAST)}`,
          email: `${pick(FIRST).toLowerCase()}.${i}@example.org`,
          age: 18 + Math.floor(random() * 70),
          city: pick(CITIES),
          joined: ParamValue.datetime(`2026-0${1 + (i % 9)}-1${i % 10}T12:${String(i % 60).padStart(2, '0')}:00Z`),
        },
        timestampMs,
      };
    case 1:
      return {
        query: 'MERGE (a:Account {id: $id}) SET a.balance = $balance, a.updated = $updated',
        params: { id: `acct-${i}`, balance: ParamValue.float(Math.round(random() * 1e6) / 100), updated: ParamValue.int(timestampMs) },
        timestampMs,
      };
    case 2:
      return {
        query: 'MATCH (a:Person {id: $from}), (b:Person {id: $to}) CREATE (a)-[:KNOWS {since: $since, weight: $weight, via: $via}]->(b)',
        params: { from: i - 1, to: Math.floor(random() * i), since: ParamValue.date(`20${10 + (i % 16)}-0${1 + (i % 9)}-15`), weight: random(), via: pick(CITIES) },
        timestampMs,
      };
    default:
      return {
        query: 'MATCH (n:Item {sku: $sku}) SET n.price = $price, n.stock = $stock, n.tags = $tags, n.active = $active, n.location = $location, n.note = $note, n.rev = $rev',
        params: {
          sku: `SKU-${(i * 7919) % 1_000_003}`,
          price: ParamValue.float(Math.round(random() * 100_000) / 100),
          stock: Math.floor(random() * 500),
          tags: [pick(TAGS), pick(TAGS)],
          active: random() < 0.8,
          location: ParamValue.point({ srid: 4326, x: random() * 360 - 180, y: random() * 180 - 90 }),
          note: random() < 0.5 ? null : `restocked by ${pick(FIRST)}`,
          rev: i,
        },
        timestampMs,
      };
  }
}

export function graphdEntries(count: number, seed = 42): JournalAppendEntry[] {
  const random = seededRandom(seed);
  const out: JournalAppendEntry[] = new Array(count);
  for (let i = 0; i < count; i++) out[i] = graphdEntry(random, i + 1);
  return out;
}

/** Encoded graphd payloads, each with its journal sequence (protobuf field 1) as the journal writes them. */
export function graphdPayloads(count: number, firstSequence = 1, seed = 42): Buffer[] {
  const random = seededRandom(seed);
  const out: Buffer[] = new Array(count);
  for (let i = 0; i < count; i++) {
    const sequence = firstSequence + i;
    const bytes = encodeJournalEntry({ ...graphdEntry(random, sequence), sequence });
    out[i] = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  return out;
}

/** Raw payloads of `size` bytes: graphd-like text (compressible about like real entries), varied per payload. */
export function rawPayloads(count: number, size: number, seed = 7): Buffer[] {
  const source = Buffer.concat(graphdPayloads(Math.ceil((size * 4) / 200) + 64, 1, seed));
  const random = seededRandom(seed);
  const out: Buffer[] = new Array(count);
  for (let i = 0; i < count; i++) {
    const start = Math.floor(random() * (source.length - size));
    const payload = Buffer.from(source.subarray(start, start + size));
    payload.writeUInt32BE(i >>> 0, 0);
    out[i] = payload;
  }
  return out;
}

/** An unsealed segment (header + entries) of `payloads` from `firstSeq`, chained from `prevHash`, and the chain hash after it. */
export function unsealedSegment(core: Core, firstSeq: number, prevHash: Buffer, payloads: Buffer[]): { bytes: Buffer; chainHash: Buffer } {
  const header = core.encodeHeader({ firstSeq, createdMs: 1_767_225_600_000 });
  const batch = core.encodeEntries(firstSeq, prevHash, payloads);
  const chainHash = Buffer.from(batch.chainHashes.subarray(batch.chainHashes.length - 32));
  return { bytes: Buffer.concat([header, batch.bytes]), chainHash };
}

/** Payloads that fill a segment of about `targetBytes` (header + 48-byte entry headers + payloads). */
export function takeForSegment(payloads: Buffer[], from: number, targetBytes: number): number {
  let size = HEADER_SIZE;
  let count = 0;
  while (from + count < payloads.length && size + 48 + payloads[from + count]!.length <= targetBytes) {
    size += 48 + payloads[from + count]!.length;
    count++;
  }
  return count;
}

export interface SealedJournal {
  /** sealed segments in order */
  segments: { firstSeq: number; lastSeq: number; bytes: Buffer }[];
  entries: number;
  chainHash: Buffer;
  unsealedBytes: number;
}

/** Seals `payloads` into consecutive segments of about `segmentBytes` each (native core: fast to build). */
export function sealJournal(core: Core, payloads: Buffer[], segmentBytes: number, level = 3): SealedJournal {
  const segments: SealedJournal['segments'] = [];
  let chainHash: Buffer = ZERO_HASH;
  let unsealedBytes = 0;
  for (let from = 0; from < payloads.length; ) {
    const count = Math.max(1, takeForSegment(payloads, from, segmentBytes));
    const firstSeq = from + 1;
    const unsealed = unsealedSegment(core, firstSeq, chainHash, payloads.slice(from, from + count));
    unsealedBytes += unsealed.bytes.length;
    segments.push({ firstSeq, lastSeq: firstSeq + count - 1, bytes: core.sealSegment(unsealed.bytes, { level }) });
    chainHash = unsealed.chainHash;
    from += count;
  }
  return { segments, entries: payloads.length, chainHash, unsealedBytes };
}
