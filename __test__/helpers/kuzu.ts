/**
 * Kuzu for the graphstream/kuzu suites: databases in their own directories, a schema that uses
 * every mapped type, random typed mutations over it, and a dump of a database's contents that
 * reads every value exactly (through CAST(... AS STRING)), so two databases compare as strings.
 */
import kuzu from 'kuzu';
import { ParamValue } from '../../ts/payload/params.js';
import { kuzuMap, type KuzuParams } from '../../ts/kuzu/params.js';
import { runStatement, type KuzuConnection } from '../../ts/kuzu/database.js';

export interface OpenDatabase {
  db: InstanceType<typeof kuzu.Database>;
  connection: KuzuConnection & InstanceType<typeof kuzu.Connection>;
  close(): Promise<void>;
}

/**
 * A database in `dir` (created if needed) with a small buffer pool and a 4 GiB address-space
 * reservation (the default, 8 TiB each, runs a process with a few databases out of addresses).
 */
export async function openDatabase(dir: string, bufferPoolBytes = 64 * 1024 * 1024): Promise<OpenDatabase> {
  const db = new kuzu.Database(dir, bufferPoolBytes, true, false, 4 * 1024 * 1024 * 1024);
  await db.init();
  const connection = new kuzu.Connection(db);
  await connection.init();
  return {
    db,
    connection: connection as OpenDatabase['connection'],
    close: async () => {
      await connection.close();
      await db.close();
    },
  };
}

/** The schema, as mutations (journaled like any other statement, so replicas get it too). */
export const SCHEMA = [
  'CREATE NODE TABLE Item(id INT64 PRIMARY KEY, i INT64, d DOUBLE, s STRING, b BOOL, dt DATE, ts TIMESTAMP, iv INTERVAL, bl BLOB, li INT64[], ls STRING[], m MAP(STRING, INT64), st STRUCT(x INT64, y STRING), lts TIMESTAMP[], c INT64)',
  'CREATE REL TABLE Link(FROM Item TO Item, w DOUBLE, since DATE)',
];

const ITEM_COLUMNS = ['i', 'd', 's', 'b', 'dt', 'ts', 'iv', 'bl', 'li', 'ls', 'm', 'st', 'lts', 'c'] as const;

/** A deterministic PRNG (mulberry32), so a failing seed can be run again. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class RandomValues {
  constructor(readonly random: () => number) {}

  int(max: number): number {
    return Math.floor(this.random() * max);
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }

  int64(): bigint | number {
    switch (this.int(4)) {
      case 0:
        return this.pick([0, 1, -1, 2 ** 53 - 1, -(2 ** 53 - 1)]);
      case 1:
        return this.pick([2n ** 63n - 1n, -(2n ** 63n), 2n ** 53n + 1n, -(2n ** 60n) - 7n]);
      case 2:
        return this.int(2000) - 1000;
      default:
        return BigInt.asIntN(64, BigInt(this.int(2 ** 32)) * BigInt(this.int(2 ** 32)) + BigInt(this.int(2 ** 31)));
    }
  }

  double(): ParamValue | number {
    switch (this.int(3)) {
      case 0:
        return ParamValue.float(this.pick([0, 1, -2, 1e300, -1e-300, 0.1, 2 ** 53]));
      case 1:
        return (this.random() - 0.5) * 10 ** (this.int(40) - 20);
      default:
        return this.int(1000) + 0.25;
    }
  }

  string(): string {
    const alphabet = ['a', 'Z', ' ', "'", '"', '\\', '$x', '`', 'é', '日本', '😀', '\n', ';', '//', '{', '}', ',', '='];
    let out = '';
    for (let i = this.int(12); i > 0; i--) out += this.pick(alphabet);
    return out;
  }

  date(): ParamValue {
    const year = 1 + this.int(9999);
    const month = 1 + this.int(12);
    const day = 1 + this.int(28);
    return ParamValue.date(`${String(year).padStart(4, '0')}-${String(month).padStart(2, '0')}-${String(day).padStart(2, '0')}`);
  }

  timestamp(): Date | ParamValue {
    const ms = Date.UTC(1900, 0, 1) + this.int(300 * 365 * 86_400) * 1000 + this.int(1000);
    if (this.int(2) === 0) return new Date(ms);
    const micros = String(this.int(1_000_000)).padStart(6, '0');
    return ParamValue.datetime(`${new Date(ms).toISOString().slice(0, 19)}.${micros}Z`);
  }

  interval(): ParamValue {
    const signed = (max: number) => (this.int(2) === 0 ? '' : '-') + String(this.int(max));
    const parts = [`${signed(30)}Y`, `${signed(40)}M`, `${signed(400)}D`];
    const time = `T${signed(30)}H${signed(90)}M${signed(90)}.${String(this.int(1_000_000)).padStart(6, '0')}S`;
    return ParamValue.duration(`P${parts.filter(() => this.int(2) === 0).join('')}${time}`);
  }

  blob(): Uint8Array {
    return Uint8Array.from({ length: this.int(20) }, () => this.int(256));
  }

  /** a value for column `column` of Item (null sometimes) */
  column(column: (typeof ITEM_COLUMNS)[number]): KuzuParams[string] {
    if (this.int(10) === 0) return null;
    switch (column) {
      case 'i':
      case 'c':
        return this.int64();
      case 'd':
        return this.double();
      case 's':
        return this.string();
      case 'b':
        return this.int(2) === 0;
      case 'dt':
        return this.date();
      case 'ts':
        return this.timestamp();
      case 'iv':
        return this.interval();
      case 'bl':
        return this.blob();
      case 'li':
        return Array.from({ length: this.int(4) }, () => this.int64());
      case 'ls':
        return Array.from({ length: this.int(4) }, () => this.string());
      case 'm': {
        const keys = [...new Set(Array.from({ length: this.int(4) }, () => this.string()))];
        return kuzuMap(keys.map((key) => [key, this.int64()]));
      }
      case 'st':
        return { x: this.int64(), y: this.string() };
      case 'lts':
        return Array.from({ length: 1 + this.int(3) }, () => this.timestamp());
    }
  }
}

export interface Mutation {
  query: string;
  params: KuzuParams;
}

/**
 * Random mutations over SCHEMA: creates, property updates of every type, counter increments,
 * links, interval arithmetic and deletes, on ids 0..idSpace-1. Some fail (a duplicate id):
 * those must be refused on the leader and never reach a replica.
 */
export function randomMutation(values: RandomValues, idSpace = 200): Mutation {
  const id = values.int(idSpace);
  switch (values.int(9)) {
    case 0:
    case 1: {
      const columns = ITEM_COLUMNS.filter(() => values.int(2) === 0);
      const params: Record<string, KuzuParams[string]> = { id };
      for (const column of columns) params[`p_${column}`] = values.column(column);
      const props = ['id: $id', ...columns.map((column) => `${column}: $p_${column}`)].join(', ');
      return { query: `CREATE (:Item {${props}})`, params };
    }
    case 2:
    case 3: {
      const column = values.pick(ITEM_COLUMNS);
      return { query: `MATCH (n:Item) WHERE n.id = $id SET n.${column} = $v`, params: { id, v: values.column(column) } };
    }
    case 4:
      return { query: 'MATCH (n:Item) WHERE n.id = $id SET n.c = coalesce(n.c, 0) % 1000000 + 1', params: { id } };
    case 5:
      return {
        query: 'MATCH (a:Item), (b:Item) WHERE a.id = $a AND b.id = $b CREATE (a)-[:Link {w: $w, since: $since}]->(b)',
        params: { a: id, b: values.int(idSpace), w: values.double(), since: values.date() },
      };
    case 6:
      return { query: 'MATCH (n:Item) WHERE n.id = $id AND n.ts IS NOT NULL SET n.ts = n.ts + $iv', params: { id, iv: ParamValue.duration(`P${values.int(40)}DT${values.int(3000)}S`) } };
    case 7:
      return { query: 'MATCH (n:Item) WHERE n.id = $id SET n.lts = list_concat(coalesce(n.lts, []), $more)', params: { id, more: [values.timestamp() as Date | ParamValue] } };
    default:
      return { query: 'MATCH (n:Item) WHERE n.id = $id DETACH DELETE n', params: { id } };
  }
}

/** Every Item and Link, each value read as Kuzu's exact string, sorted: equal dumps mean equal contents. */
export async function dump(connection: KuzuConnection): Promise<string[]> {
  const cast = (variable: string, columns: readonly string[]) => columns.map((column) => `CAST(${variable}.${column} AS STRING) AS ${column}`).join(', ');
  const items = await runStatement(connection, `MATCH (n:Item) RETURN CAST(n.id AS STRING) AS id, ${cast('n', ITEM_COLUMNS)}`, {});
  const links = await runStatement(connection, `MATCH (a:Item)-[l:Link]->(b:Item) RETURN CAST(a.id AS STRING) AS a, CAST(b.id AS STRING) AS b, ${cast('l', ['w', 'since'])}`, {});
  return [...items.map((row) => `item ${JSON.stringify(row)}`), ...links.map((row) => `link ${JSON.stringify(row)}`)].sort();
}
