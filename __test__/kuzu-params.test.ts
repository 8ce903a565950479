/**
 * The parameter mapping of graphstream/kuzu, through the journal and a real Kuzu database: a value
 * encoded into a journal entry, decoded, bound into Kuzu and stored in a column of its type
 * compares equal inside Kuzu to the same value bound again, and reads back (fromKuzuValue) as the
 * ParamValue it was, exactly where Kuzu's Node binding returns it exactly. Values Kuzu cannot hold
 * are refused with invalid_argument before anything runs.
 *
 * The properties run from a fresh fast-check seed each time; a failure prints fast-check's
 * `{ seed, path }`. Rerun with that seed: GRAPHSTREAM_FC_SEED=<seed> npx vitest run __test__/kuzu-params.test.ts
 */
import fc from 'fast-check';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { GraphstreamError } from '../ts/errors.js';
import { runEntry, runStatement } from '../ts/kuzu/database.js';
import { checkReplayable, scanCypher } from '../ts/kuzu/cypher.js';
import { bindForKuzu, formatDuration, fromKuzuValue, kuzuMap, parseDuration, parseKuzuType, toParamsInput, type KuzuParamInput } from '../ts/kuzu/params.js';
import { ParamValue } from '../ts/payload/params.js';
import { decodeJournalEntry, encodeJournalEntry } from '../ts/payload/payload.js';
import { openDatabase, type OpenDatabase } from './helpers/kuzu.js';

if (process.env.GRAPHSTREAM_FC_SEED !== undefined) fc.configureGlobal({ seed: Number(process.env.GRAPHSTREAM_FC_SEED) });

let dir: string;
let db: OpenDatabase;
let nextId = 0;

const COLUMNS = {
  i: 'INT64',
  d: 'DOUBLE',
  s: 'STRING',
  b: 'BOOL',
  dt: 'DATE',
  ts: 'TIMESTAMP',
  iv: 'INTERVAL',
  bl: 'BLOB',
  li: 'INT64[]',
  ls: 'STRING[][]',
  m: 'MAP(STRING, INT64)',
  st: 'STRUCT(x INT64, y STRING, z DATE[])',
  lts: 'TIMESTAMP[]',
} as const;
type Column = keyof typeof COLUMNS;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'gs-kuzu-params-'));
  db = await openDatabase(join(dir, 'db'));
  const columns = Object.entries(COLUMNS).map(([name, type]) => `${name} ${type}`).join(', ');
  await runStatement(db.connection, `CREATE NODE TABLE V(id INT64 PRIMARY KEY, ${columns})`, {});
});

afterAll(async () => {
  await db?.close();
  await rm(dir, { recursive: true, force: true });
});

/** The value as a replica sees it: encoded into a journal entry and decoded. */
function throughJournal(query: string, params: Record<string, KuzuParamInput>) {
  return decodeJournalEntry(encodeJournalEntry({ query, params: toParamsInput(params), sequence: 7, timestampMs: 1 }));
}

/** Stores `value` in column `column` of a new row (through the journal) and reads it back. */
async function roundTrip(column: Column, value: KuzuParamInput): Promise<{ same: unknown; read: ParamValue; exact: unknown }> {
  const id = nextId++;
  await runEntry(db.connection, throughJournal(`CREATE (:V {id: $id, ${column}: $v})`, { id, v: value }));
  const check = throughJournal(`MATCH (n:V) WHERE n.id = $id RETURN n.${column} = $v AS same, n.${column} AS value`, { id, v: value });
  const scan = checkReplayable(check.query);
  const statement = bindForKuzu(check.query, scan, check.params);
  const prepared = await db.connection.prepare(statement.query);
  expect(prepared.isSuccess(), prepared.getErrorMessage()).toBe(true);
  const result = await db.connection.execute(prepared, statement.values);
  const one = Array.isArray(result) ? result[0]! : result;
  const types = await one.getColumnDataTypes();
  const [row] = await one.getAll();
  one.close?.(); // Kuzu's binding crashes when a result outlives its database
  const exact = (await runStatement(db.connection, `MATCH (n:V) WHERE n.id = $id RETURN CAST(n.${column} AS STRING) AS s`, { id }))[0]!.s;
  return { same: row!.same, read: fromKuzuValue(row!.value, types[1]!), exact };
}

const int64 = fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n });
const safeInt = fc.integer({ min: -(2 ** 31), max: 2 ** 31 });
const double = fc.double({ noNaN: true, noDefaultInfinity: true });
const string = fc.string({ unit: 'binary', maxLength: 30 });
const dateText = fc
  .record({ y: fc.integer({ min: 1, max: 9999 }), m: fc.integer({ min: 1, max: 12 }), d: fc.integer({ min: 1, max: 28 }) })
  .map(({ y, m, d }) => `${String(y).padStart(4, '0')}-${String(m).padStart(2, '0')}-${String(d).padStart(2, '0')}`);
const jsDate = fc.integer({ min: Date.UTC(1, 0, 1), max: Date.UTC(9999, 11, 31) }).map((ms) => new Date(ms));
const microsTimestamp = fc
  .tuple(jsDate, fc.integer({ min: 0, max: 999_999 }))
  .map(([date, micros]) => `${date.toISOString().slice(0, 19)}.${String(micros).padStart(6, '0')}Z`);
const duration = fc
  .record({
    months: fc.integer({ min: -10_000, max: 10_000 }),
    days: fc.integer({ min: -100_000, max: 100_000 }),
    micros: fc.bigInt({ min: -(10n ** 15n), max: 10n ** 15n }),
  })
  .map(({ months, days, micros }) => formatDuration(BigInt(months), BigInt(days), micros));

const PARAM_RUNS = 40;

describe('graphstream/kuzu parameter mapping, through the journal and Kuzu', () => {
  test('INT64 (bigint anywhere in the signed 64-bit range, numbers within ±2^53) stores exactly', async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof(int64, safeInt), async (value) => {
        const { same, exact, read } = await roundTrip('i', value);
        expect(same).toBe(true);
        expect(exact).toBe(String(value));
        if (typeof value === 'number') expect(read).toEqual(ParamValue.int(value));
      }),
      { numRuns: PARAM_RUNS },
    );
  });

  test('DOUBLE, even an integral one (ParamValue.float(2) stays 2.0, not INT64 2)', async () => {
    await fc.assert(
      fc.asyncProperty(double, async (value) => {
        const { same, read } = await roundTrip('d', ParamValue.float(value));
        expect(same).toBe(true);
        // Kuzu's binding reads -0.0 back as 0 (both compare equal inside Kuzu, and every replica applies the same entry)
        expect(read).toEqual(ParamValue.float(Object.is(value, -0) ? 0 : value));
      }),
      { numRuns: PARAM_RUNS },
    );
    const rows = await runEntry(db.connection, throughJournal('RETURN $x / 2 AS half', { x: ParamValue.float(3) }));
    expect(rows[0]!.half).toBe(1.5);
  });

  test('STRING, BOOL and NULL', async () => {
    await fc.assert(
      fc.asyncProperty(string, async (value) => {
        const { same, read } = await roundTrip('s', value);
        expect(same).toBe(true);
        expect(read).toEqual(ParamValue.string(value));
      }),
      { numRuns: PARAM_RUNS },
    );
    for (const value of [true, false]) expect((await roundTrip('b', value)).read).toEqual(ParamValue.bool(value));
    const { same, read, exact } = await roundTrip('s', null);
    expect([same, exact]).toEqual([null, null]);
    expect(read).toEqual(ParamValue.null());
  });

  test('DATE from ParamValue.date, TIMESTAMP from a JS Date (milliseconds) or an ISO datetime (microseconds)', async () => {
    await fc.assert(
      fc.asyncProperty(dateText, jsDate, microsTimestamp, async (date, instant, micros) => {
        const a = await roundTrip('dt', ParamValue.date(date));
        expect([a.same, a.exact, a.read]).toEqual([true, date, ParamValue.date(date)]);
        const b = await roundTrip('ts', instant);
        expect(b.same).toBe(true);
        expect(b.read).toEqual(ParamValue.datetime(instant.toISOString()));
        const c = await roundTrip('ts', ParamValue.datetime(micros));
        expect(c.same).toBe(true);
        expect(c.exact).toBe(micros.slice(0, 10) + ' ' + micros.slice(11, 26).replace(/\.?0+$/, ''));
      }),
      { numRuns: PARAM_RUNS },
    );
    // a Date is a TIMESTAMP even at midnight: its time of day is kept, never cut to a DATE
    const midnight = await roundTrip('ts', new Date(Date.UTC(2024, 1, 29)));
    expect(midnight.exact).toBe('2024-02-29 00:00:00');
  });

  test('INTERVAL from an ISO 8601 duration: months, days and microseconds, each signed', async () => {
    await fc.assert(
      fc.asyncProperty(duration, async (iso) => {
        const { same } = await roundTrip('iv', ParamValue.duration(iso));
        expect(same).toBe(true);
        const parts = parseDuration(iso);
        expect(formatDuration(parts.months, parts.days, parts.micros)).toBe(iso);
      }),
      { numRuns: PARAM_RUNS },
    );
    expect(parseDuration('P1Y2M3W4DT5H6M7.000008S')).toEqual({ months: 14n, days: 25n, micros: (5n * 3600n + 6n * 60n + 7n) * 1_000_000n + 8n });
    expect(parseDuration('-P1DT-2S')).toEqual({ months: 0n, days: -1n, micros: 2_000_000n });
    const rows = await runEntry(db.connection, throughJournal('RETURN CAST($v AS STRING) AS s', { v: ParamValue.duration('P1Y2M3DT4H5M6.000007S') }));
    expect(rows[0]!.s).toBe('1 year 2 months 3 days 04:05:06.000007');
  });

  test('BLOB from bytes, every byte value', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 64 }), async (bytes) => {
        const { same, read } = await roundTrip('bl', bytes);
        expect(same).toBe(true);
        expect(read).toEqual(ParamValue.bytes(bytes));
      }),
      { numRuns: PARAM_RUNS },
    );
  });

  test('lists (nested, empty), MAPs (kuzuMap) and STRUCTs (plain objects), with typed members', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(int64, { maxLength: 5 }),
        fc.array(fc.array(string, { maxLength: 3 }), { maxLength: 3 }),
        // Kuzu's binding returns a MAP as an object whose keys end at a NUL character, and sets a key __proto__ as its prototype
        fc.uniqueArray(fc.tuple(string.filter((key) => !key.includes('\u0000') && key !== '__proto__'), safeInt), { selector: ([key]) => key, maxLength: 4 }),
        fc.record({ x: int64, y: string, z: fc.array(dateText, { minLength: 1, maxLength: 3 }) }),
        fc.array(jsDate, { minLength: 1, maxLength: 3 }),
        async (ints, strings, entries, struct, dates) => {
          expect((await roundTrip('li', ints)).same).toBe(true);
          const ls = await roundTrip('ls', strings);
          expect(ls.same).toBe(true);
          expect(ls.read).toEqual(ParamValue.list(strings.map((inner) => ParamValue.list(inner))));
          const m = await roundTrip('m', kuzuMap(entries));
          expect(m.same).toBe(true);
          expect(m.read).toEqual(kuzuMap(entries));
          const st = await roundTrip('st', { x: struct.x, y: struct.y, z: struct.z.map((d) => ParamValue.date(d)) });
          expect(st.same).toBe(true);
          const lts = await roundTrip('lts', dates);
          expect(lts.same).toBe(true);
          expect(lts.read).toEqual(ParamValue.list(dates.map((d) => ParamValue.datetime(d.toISOString()))));
        },
      ),
      { numRuns: PARAM_RUNS },
    );
  });

  test('inside a STRUCT, Kuzu wants exact field types: a NULL field takes a CAST in the query', async () => {
    const id = nextId++;
    const value = { x: null, y: 'y', z: [ParamValue.date('2024-02-29')] };
    await expect(runEntry(db.connection, throughJournal('CREATE (:V {id: $id, st: $v})', { id, v: value }))).rejects.toThrow(/Implicit cast/);
    await runEntry(db.connection, throughJournal(`CREATE (:V {id: $id, st: CAST($v AS ${COLUMNS.st})})`, { id, v: value }));
    const rows = await runStatement(db.connection, 'MATCH (n:V) WHERE n.id = $id RETURN CAST(n.st AS STRING) AS s', { id });
    expect(rows[0]!.s).toBe('{x: , y: y, z: [2024-02-29]}');
  });

  test('a STRUCT field named __proto__ (as JSON.parse makes) is journaled as a field; reading it back through the binding is refused, not misread', async () => {
    const value = JSON.parse('{"__proto__": 7, "y": "a"}') as KuzuParamInput;
    const entry = decodeJournalEntry(encodeJournalEntry({ query: 'RETURN $v', params: toParamsInput({ v: value }) }));
    expect(entry.params).toEqual([['v', ParamValue.map([['__proto__', ParamValue.int(7n)], ['y', ParamValue.string('a')]])]]);
    const read = Object.create({}) as Record<string, unknown>;
    read.y = 'a';
    expect(() => fromKuzuValue(read, 'STRUCT(__proto__ INT64, y STRING)')).toThrow(/drops a field named __proto__/);
  });

  test('what Kuzu cannot hold is refused with invalid_argument, naming the parameter', () => {
    const refused = (value: KuzuParamInput) => {
      const entry = throughJournal('RETURN $v', { v: value });
      try {
        bindForKuzu(entry.query, scanCypher(entry.query), entry.params);
      } catch (err) {
        expect(err).toBeInstanceOf(GraphstreamError);
        expect((err as GraphstreamError).code).toBe('invalid_argument');
        expect((err as GraphstreamError).message).toContain('parameter v');
        return (err as GraphstreamError).message;
      }
      throw new Error('not refused');
    };
    expect(refused(ParamValue.time('10:00:00'))).toMatch(/TIME/);
    expect(refused(ParamValue.localtime('10:00:00'))).toMatch(/TIME/);
    expect(refused(ParamValue.point({ srid: 7203, x: 1, y: 2 }))).toMatch(/point/);
    expect(refused(NaN)).toMatch(/NaN/);
    expect(refused([1, Infinity])).toMatch(/Infinity/);
    expect(refused({})).toMatch(/empty object/);
    expect(refused(ParamValue.duration('P1DT0.0000001S'))).toMatch(/microseconds/);
    expect(refused(ParamValue.duration('1 day'))).toMatch(/ISO 8601/);
    expect(() => toParamsInput({ v: new Date(NaN) })).toThrow(/invalid Date/);
  });

  test('Kuzu values GraphValue has no type for are refused when read back', () => {
    expect(() => fromKuzuValue({ _label: 'V', _id: { offset: 0, table: 0 } }, 'NODE')).toThrow(GraphstreamError);
    expect(parseKuzuType('STRUCT(x INT64, y MAP(STRING, INT64[]))')).toEqual({
      kind: 'struct',
      fields: [
        ['x', { kind: 'scalar', name: 'INT64' }],
        ['y', { kind: 'map', key: { kind: 'scalar', name: 'STRING' }, value: { kind: 'list', element: { kind: 'scalar', name: 'INT64' } } }],
      ],
    });
  });

  test('a parameter inside a string, a comment or a quoted name is not one; unused parameters are not bound', () => {
    const query = "RETURN '$v' AS a, /* $v */ `$v` AS b, $v AS c // $v";
    const entry = throughJournal(query, { v: ParamValue.float(1), unused: 3 });
    const statement = bindForKuzu(entry.query, scanCypher(entry.query), entry.params);
    expect(statement.query).toBe("RETURN '$v' AS a, /* $v */ `$v` AS b, (CAST($__gs1 AS DOUBLE)) AS c // $v");
    expect(statement.values).toEqual({ __gs1: 1 });
  });

  test('checkReplayable keeps the scan of a text it accepted (one frozen object per text) and refuses a refused text every time', () => {
    const query = 'MATCH (n:V) WHERE n.id = $id SET n.s = $s';
    const scan = checkReplayable(query);
    expect(checkReplayable(query)).toBe(scan);
    expect(scan.params.map((ref) => ref.name)).toEqual(['id', 's']);
    expect(Object.isFrozen(scan) && Object.isFrozen(scan.params) && Object.isFrozen(scan.params[0]) && Object.isFrozen(scan.calls)).toBe(true);
    expect(() => (scan.params as { name: string }[]).push({ name: 'x' })).toThrow(TypeError);
    for (let i = 0; i < 2; i++) expect(() => checkReplayable('MATCH (n:V) SET n.d = rand()')).toThrow(/rand\(\) at offset \d+ is nondeterministic/);
  });
});
