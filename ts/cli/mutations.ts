/**
 * The demo's workload: a reproducible stream of graph mutations (CREATE / MERGE / SET Cypher) with
 * 2 to 8 typed parameters each, covering ints (also beyond 2^53), floats, strings, lists, maps,
 * temporal values and points.
 */
import type { JournalAppendEntry } from '../journal/journal.js';
import { ParamValue, type ParamInput } from '../payload/params.js';

/** mulberry32: a tiny seeded PRNG, so every demo run writes the same journal. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const NAMES = ['Ada', 'Grace', 'Alan', 'Edsger', 'Barbara', 'Donald', 'Frances', 'Ken', 'Radia', 'Tim'];
const CITIES = ['Lisbon', 'Oslo', 'Kyoto', 'Lagos', 'Lima', 'Perth', 'Quebec', 'Tallinn'];
const TAGS = ['graph', 'journal', 'replica', 'stream', 'hash', 'chain', 'segment'];
const BASE_MS = Date.UTC(2026, 0, 1);

export type MutationKind = 'CREATE' | 'MERGE' | 'SET';

export function mutationKind(query: string): MutationKind | 'OTHER' {
  if (query.startsWith('CREATE')) return 'CREATE';
  if (query.startsWith('MERGE')) return 'MERGE';
  if (query.startsWith('MATCH') && query.includes(' SET ')) return 'SET';
  return 'OTHER';
}

/** The first `count` entries of the demo's stream (the same for every run with the same seed). */
export function* graphMutations(count: number, seed = 0x9e3779b9): Generator<JournalAppendEntry> {
  const random = seededRandom(seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const isoDay = (offsetDays: number) => new Date(BASE_MS + offsetDays * 86_400_000).toISOString().slice(0, 10);

  for (let i = 1; i <= count; i++) {
    const personId = Math.floor(random() * 1000);
    const timestampMs = BASE_MS + i * 17;
    switch (i % 3) {
      case 1: {
        const params: Record<string, ParamInput> = {
          id: personId,
          name: `${pick(NAMES)} ${i}`,
          score: Math.round(random() * 10_000) / 100 + 0.5,
          born: ParamValue.date(isoDay(-Math.floor(random() * 20_000))),
        };
        let query = 'CREATE (p:Person {id: $id, name: $name, score: $score, born: $born';
        if (i % 2 === 0) {
          params.tags = [pick(TAGS), pick(TAGS), i];
          query += ', tags: $tags';
        }
        if (i % 5 === 0) {
          params.home = ParamValue.point({ srid: 4326, x: (Math.round(random() * 36_000) - 18_000) / 100, y: (Math.round(random() * 18_000) - 9_000) / 100 });
          query += ', home: $home';
        }
        if (i % 7 === 0) {
          params.big = 2n ** 60n + BigInt(i);
          query += ', big: $big';
        }
        if (i % 11 === 0) {
          params.avatar = Uint8Array.from({ length: 16 }, (_, k) => (i * 31 + k) & 0xff);
          query += ', avatar: $avatar';
        }
        yield { query: `${query}})`, params, timestampMs };
        break;
      }
      case 2: {
        const params: Record<string, ParamInput> = {
          a: personId,
          b: (personId + 1 + Math.floor(random() * 50)) % 1000,
          since: ParamValue.datetime(new Date(BASE_MS + Math.floor(random() * 1e10)).toISOString()),
          props: { weight: random(), city: pick(CITIES), hops: Math.floor(random() * 6) },
        };
        if (i % 4 === 0) params.every = ParamValue.duration(`P${1 + (i % 12)}M${i % 28}DT${i % 24}H`);
        if (i % 6 === 0) params.at = ParamValue.localtime(`${String(i % 24).padStart(2, '0')}:${String(i % 60).padStart(2, '0')}:00`);
        if (i % 9 === 0) params.where3d = ParamValue.point({ srid: 9157, x: random(), y: random(), z: random() });
        const extra = Object.keys(params).slice(4).map((key) => `, r.${key} = $${key}`).join('');
        yield {
          query: `MERGE (a:Person {id: $a}) MERGE (b:Person {id: $b}) MERGE (a)-[r:KNOWS]->(b) SET r.since = $since, r += $props${extra}`,
          params,
          timestampMs,
        };
        break;
      }
      default: {
        const params: Record<string, ParamInput> = {
          id: personId,
          visits: i,
        };
        let sets = 'p.visits = $visits';
        if (i % 2 === 0) {
          params.last = ParamValue.localdatetime(new Date(BASE_MS + i * 60_000).toISOString().slice(0, 19));
          sets += ', p.last = $last';
        }
        if (i % 4 === 0) {
          params.ratio = ParamValue.float(i % 10);
          sets += ', p.ratio = $ratio';
        }
        if (i % 8 === 0) {
          params.nothing = null;
          params.ok = random() > 0.5;
          sets += ', p.gone = $nothing, p.ok = $ok';
        }
        yield { query: `MATCH (p:Person {id: $id}) SET ${sets}`, params, timestampMs };
      }
    }
  }
}
