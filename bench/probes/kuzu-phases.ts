/**
 * A focused probe of what a graphstream/kuzu mutation and a replayed entry cost (issue 20), outside
 * the suite: the bench kuzu group's statements (half creates, half updates), built up one part at
 * a time, each on a fresh database, with the CPU of the whole process (all threads) beside the
 * wall time per statement. The CPU figures stay readable on a loaded machine; the wall figures
 * do not.
 *
 *   npx esbuild bench/probes/kuzu-phases.ts --bundle --platform=node --format=esm \
 *     --packages=external --outfile=.bench-cache/kuzu-phases.mjs
 *   node .bench-cache/kuzu-phases.mjs [statements per run, default 600] [rounds, default 3]
 *
 * Variants: `autocommit` (a reused prepared statement, Kuzu's auto-commit: the plain baseline),
 * `txn` (+ BEGIN and COMMIT, prepared), `txn+meta` (+ the meta update: what replay does per
 * entry), `txn+merge-meta` (the same with the earlier primary-key MERGE), `txn+meta||append`
 * (+ the journal append with fsync beside the meta update: mutate's Kuzu and journal work),
 * `append` (the journal append alone), `mutate` (KuzuLeader.mutate). SCRATCH sets the directory.
 */
import kuzu from 'kuzu';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Journal, ParamValue } from '../../ts/index.js';
import { control, ensureMetaTable, META_TABLE, runStatement, writePosition, type KuzuConnection } from '../../ts/kuzu/database.js';
import { bindForKuzu, openKuzuLeader, scanCypher, toParamsInput, type KuzuParams } from '../../ts/kuzu/index.js';
import { encodeJournalEntry } from '../../ts/payload/payload.js';

const count = Number(process.argv[2] ?? 600);
const rounds = Number(process.argv[3] ?? 3);
const SCHEMA = 'CREATE NODE TABLE Person(id INT64 PRIMARY KEY, name STRING, born DATE, seen TIMESTAMP, score DOUBLE, visits INT64)';
const people = Math.floor(count / 2);
const work = Array.from({ length: count }, (_, i): { query: string; params: KuzuParams } =>
  i < people
    ? {
        query: 'CREATE (:Person {id: $id, name: $name, born: $born, seen: $seen, score: $score, visits: 0})',
        params: { id: i, name: `person ${i}`, born: ParamValue.date('1990-04-01'), seen: new Date(1_700_000_000_000 + i), score: ParamValue.float(i / 3) },
      }
    : { query: 'MATCH (p:Person) WHERE p.id = $id SET p.visits = p.visits + 1, p.seen = $seen', params: { id: (i * 31) % people, seen: new Date(1_700_000_000_000 - i) } },
);
const bound = work.map(({ query, params }) => bindForKuzu(query, scanCypher(query), ParamValue.map(toParamsInput(params)).value));
const payloads = work.map(({ query, params }) => encodeJournalEntry({ query, params: toParamsInput(params), timestampMs: 1 }));
const hash = Buffer.alloc(32, 7);
const MERGE_META = `MERGE (m:${META_TABLE} {id: 0}) SET m.seq = $seq, m.hash = $hash`;

type Variant = (connection: KuzuConnection, journal: Journal) => Promise<void>;
const inTxn = async (connection: KuzuConnection, body: () => Promise<unknown>) => {
  await control(connection, 'BEGIN TRANSACTION');
  await body();
  await control(connection, 'COMMIT');
};
const variants: Record<string, Variant> = {
  autocommit: async (c) => {
    for (const s of bound) await runStatement(c, s.query, s.values);
  },
  txn: async (c) => {
    for (const s of bound) await inTxn(c, () => runStatement(c, s.query, s.values));
  },
  'txn+meta': async (c) => {
    let sequence = 0;
    for (const s of bound) await inTxn(c, async () => (await runStatement(c, s.query, s.values), await writePosition(c, { sequence: ++sequence, chainHash: hash })));
  },
  'txn+merge-meta': async (c) => {
    let seq = 0;
    for (const s of bound) await inTxn(c, async () => (await runStatement(c, s.query, s.values), await runStatement(c, MERGE_META, { seq: ++seq, hash: hash.toString('hex') })));
  },
  'txn+meta||append': async (c, journal) => {
    let i = 0;
    for (const s of bound) {
      await inTxn(c, async () => {
        await runStatement(c, s.query, s.values);
        await Promise.all([journal.appendRaw(payloads[i]!), writePosition(c, { sequence: ++i, chainHash: hash })]);
      });
    }
  },
  append: async (_c, journal) => {
    for (const payload of payloads) await journal.appendRaw(payload);
  },
  mutate: async (c, journal) => {
    const leader = await openKuzuLeader({ connection: c, journal });
    for (const { query, params } of work) await leader.mutate(query, params);
  },
};

const scratch = await mkdtemp(join(process.env.SCRATCH ?? tmpdir(), 'kuzu-phases-'));
const cpu: Record<string, number[]> = {};
const wall: Record<string, number[]> = {};
let n = 0;
for (let round = 0; round < rounds; round++) {
  for (const [name, variant] of Object.entries(variants)) {
    const dir = join(scratch, String(n++));
    await mkdir(dir);
    const db = new kuzu.Database(join(dir, 'db'), 256 * 1024 * 1024, true, false, 2 ** 34);
    const connection = new kuzu.Connection(db);
    await runStatement(connection, SCHEMA, {});
    await ensureMetaTable(connection);
    const journal = await Journal.open(join(dir, 'journal'));
    const startCpu = process.cpuUsage();
    const start = performance.now();
    await variant(connection, journal);
    const used = process.cpuUsage(startCpu);
    (wall[name] ??= []).push(((performance.now() - start) * 1000) / count);
    (cpu[name] ??= []).push((used.user + used.system) / count);
    await journal.close();
    await connection.close();
    await db.close();
  }
}
await rm(scratch, { recursive: true, force: true });
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
console.log(`${count} statements per run, ${rounds} rounds; medians, µs per statement`);
for (const name of Object.keys(variants)) {
  console.log(`${name.padEnd(18)} CPU ${median(cpu[name]!).toFixed(0).padStart(5)}   wall ${median(wall[name]!).toFixed(0).padStart(5)}`);
}
