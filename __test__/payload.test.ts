import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { create, toBinary, type DescMessage, type MessageInitShape } from '@bufbuild/protobuf';
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { GraphstreamError, type ErrorCode } from '../ts/errors.js';
import { createFormatApi } from '../ts/format/format.js';
import { ParamValue, type ParamInput, type ParamsInput } from '../ts/payload/params.js';
import { decodeJournalEntry, encodeJournalEntry } from '../ts/payload/payload.js';
import { graphdDecoding } from '../ts/payload/proto/graphd.js';
import { GRAPHD_FILE_DESCRIPTOR } from '../ts/payload/proto/graphd-descriptor.js';
import { GraphValueSchema, JournalEntrySchema, MapValueSchema, TemporalKind } from '../ts/payload/proto/graphd_pb.js';
import { cores } from './helpers/cores.js';
import { hex, manifest, paramFromManifest } from './helpers/vectors.js';

function codeOf(fn: () => unknown): ErrorCode | 'ok' {
  try {
    fn();
    return 'ok';
  } catch (err) {
    expect(err).toBeInstanceOf(GraphstreamError);
    return (err as GraphstreamError).code;
  }
}

const vectors = manifest.entries.map((e) => ({
  payload: hex(e.payload),
  entry: {
    sequence: e.decoded.sequence,
    query: e.decoded.query,
    params: e.decoded.params.map(([key, value]) => [key, paramFromManifest(value)] as [string, ParamValue]),
    timestampMs: e.decoded.timestamp_ms,
  },
}));

describe('graphd.JournalEntry vectors', () => {
  test.each(vectors.map((v, i) => ({ i: i + 1, ...v })))('entry $i encodes to its payload bytes', ({ payload, entry }) => {
    expect(Buffer.from(encodeJournalEntry(entry)).toString('hex')).toBe(payload.toString('hex'));
  });

  test.each(vectors.map((v, i) => ({ i: i + 1, ...v })))('entry $i decodes to its typed values', ({ payload, entry }) => {
    expect(decodeJournalEntry(payload)).toEqual(entry);
  });

  test('int64 values come back exact as bigint', () => {
    const [, meta] = decodeJournalEntry(vectors[2]!.payload).params[4]!;
    expect(meta).toEqual(ParamValue.map([['k', ParamValue.int(9223372036854775807n)], ['z', ParamValue.point({ srid: 9157, x: 0, y: 1, z: 0 })]]));
    const [, id] = decodeJournalEntry(vectors[1]!.payload).params[0]!;
    expect(id).toEqual(ParamValue.int(-7n));
  });
});

describe('plain JavaScript parameters', () => {
  const first = manifest.entries[0]!;

  test('map onto the same bytes as typed values, as an object or as pairs', () => {
    const base = { sequence: 1, query: first.decoded.query, timestampMs: first.decoded.timestamp_ms };
    const expected = first.payload;
    expect(Buffer.from(encodeJournalEntry({ ...base, params: { id: 1, name: 'Alice' } })).toString('hex')).toBe(expected);
    expect(Buffer.from(encodeJournalEntry({ ...base, params: [['id', 1n], ['name', 'Alice']] })).toString('hex')).toBe(expected);
    expect(Buffer.from(encodeJournalEntry({ ...base, sequence: 1n, timestampMs: BigInt(base.timestampMs), params: { id: 1, name: 'Alice' } })).toString('hex')).toBe(expected);
  });

  test('every kind maps as documented', () => {
    const params: ParamsInput = {
      int: 5,
      big: 2n ** 62n,
      float: 1.5,
      integralFloat: ParamValue.float(1),
      nan: Number.NaN,
      str: 'x',
      yes: true,
      nothing: null,
      raw: new Uint8Array([1, 2]),
      list: [1, 'a', [null]],
      map: { b: 1, a: { c: false } },
      when: ParamValue.date('2026-01-01'),
      where: ParamValue.point({ srid: 7203, x: 1, y: 2 }),
    };
    const { params: decoded } = decodeJournalEntry(encodeJournalEntry({ query: 'RETURN 1', params }));
    expect(decoded).toEqual([
      ['int', ParamValue.int(5n)],
      ['big', ParamValue.int(2n ** 62n)],
      ['float', ParamValue.float(1.5)],
      ['integralFloat', ParamValue.float(1)],
      ['nan', ParamValue.float(Number.NaN)],
      ['str', ParamValue.string('x')],
      ['yes', ParamValue.bool(true)],
      ['nothing', ParamValue.null()],
      ['raw', ParamValue.bytes(new Uint8Array([1, 2]))],
      ['list', ParamValue.list([ParamValue.int(1), ParamValue.string('a'), ParamValue.list([ParamValue.null()])])],
      ['map', ParamValue.map([['b', ParamValue.int(1)], ['a', ParamValue.map({ c: ParamValue.bool(false) })]])],
      ['when', ParamValue.date('2026-01-01')],
      ['where', ParamValue.point({ srid: 7203, x: 1, y: 2 })],
    ]);
    expect(decoded[3]![1].type).toBe('float');
    expect(ParamValue.from({ a: [1.5] })).toEqual(ParamValue.map([['a', ParamValue.list([ParamValue.float(1.5)])]]));
  });

  test.each<[string, () => unknown, RegExp]>([
    ['a function', () => encodeJournalEntry({ query: 'q', params: { f: () => 1 } as never }), /params\.f/],
    ['a symbol', () => encodeJournalEntry({ query: 'q', params: { s: Symbol('s') } as never }), /params\.s/],
    ['undefined', () => encodeJournalEntry({ query: 'q', params: { list: [1, undefined] } as never }), /params\.list\[1\]/],
    ['an int beyond 64 bits', () => encodeJournalEntry({ query: 'q', params: { n: 2n ** 63n } }), /params\.n/],
    ['an integral number beyond 64 bits', () => encodeJournalEntry({ query: 'q', params: { n: 1e20 } }), /params\.n/],
    ['a Date', () => encodeJournalEntry({ query: 'q', params: { d: new Date() } as never }), /params\.d.*Date/],
    ['a Map', () => encodeJournalEntry({ query: 'q', params: { m: new Map() } as never }), /params\.m/],
    ['a bad pair', () => encodeJournalEntry({ query: 'q', params: [['a', 1], ['b']] as never }), /params\[1\]/],
    ['a lone surrogate', () => encodeJournalEntry({ query: 'q', params: { s: '\ud800' } }), /params\.s/],
    ['a non-integer int', () => ParamValue.int(1.5), /int/],
    ['a bad srid', () => ParamValue.point({ srid: -1, x: 0, y: 0 }), /srid/],
  ])('rejects %s with invalid_argument naming the parameter', (_, fn, where) => {
    expect(codeOf(fn)).toBe('invalid_argument');
    expect(fn).toThrow(where);
  });

  test('rejects cycles', () => {
    const list: ParamInput[] = [1];
    list.push(list);
    expect(() => encodeJournalEntry({ query: 'q', params: { list } })).toThrow(/params\.list\[1\].*cycle/);
    const map: Record<string, ParamInput> = {};
    map.self = { again: map };
    expect(codeOf(() => encodeJournalEntry({ query: 'q', params: { map } }))).toBe('invalid_argument');
    const shared = [1];
    expect(codeOf(() => encodeJournalEntry({ query: 'q', params: { a: shared, b: shared, c: [shared, shared] } }))).toBe('ok');
  });

  test('an encoding that failed leaves no trace in the next one, and one started from a getter inside params is independent', () => {
    const inner: { b: ParamInput[] } = { b: [1, undefined as never] };
    expect(() => encodeJournalEntry({ query: 'q', params: { a: inner } })).toThrow(/params\.a\.b\[1\]/);
    inner.b[1] = 2;
    // the failed walk had entered `inner`: meeting it again is no cycle
    expect(decodeJournalEntry(encodeJournalEntry({ query: 'q', params: { a: inner } })).params).toEqual([['a', ParamValue.from(inner)]]);
    expect(() => encodeJournalEntry({ query: 'q', params: { z: Symbol('z') } as never })).toThrow(/params\.z\b/);

    const nested: string[] = [];
    const params = {
      list: [1, 2],
      get g() {
        nested.push(Buffer.from(encodeJournalEntry({ query: 'inner', params: { deep: { x: [1] } } })).toString('hex'));
        return 'v';
      },
    };
    expect(decodeJournalEntry(encodeJournalEntry({ query: 'q', params })).params).toEqual([
      ['list', ParamValue.from([1, 2])],
      ['g', ParamValue.string('v')],
    ]);
    expect(nested).toEqual([Buffer.from(encodeJournalEntry({ query: 'inner', params: { deep: { x: [1] } } })).toString('hex')]);
    const failing = {
      get g() {
        encodeJournalEntry({ query: 'inner', params: { deep: [1] } });
        return 1;
      },
      bad: Symbol('bad'),
    };
    expect(() => encodeJournalEntry({ query: 'q', params: { outer: failing } as never })).toThrow(/params\.outer\.bad\b/);
  });
});

describe('encoding rules', () => {
  test('proto3 defaults are omitted even when given', () => {
    expect(encodeJournalEntry({ sequence: 0, query: '', params: [], timestampMs: 0 })).toHaveLength(0);
    expect(Buffer.from(encodeJournalEntry({ sequence: 4, query: '' })).toString('hex')).toBe('0804');
  });

  test('oneof members are written even at their default', () => {
    const bytes = encodeJournalEntry({ query: 'q', params: { z: 0, f: ParamValue.float(0), s: '', b: false } });
    expect(decodeJournalEntry(bytes).params).toEqual([
      ['z', ParamValue.int(0n)],
      ['f', ParamValue.float(0)],
      ['s', ParamValue.string('')],
      ['b', ParamValue.bool(false)],
    ]);
  });

  test('a temporal value of an unknown kind decodes as a string', () => {
    const message = create(JournalEntrySchema, {
      query: 'q',
      params: [{ key: 't', value: { value: { case: 'temporalValue', value: { kind: 42 as TemporalKind, iso: '2026-01-01' } } } }],
    });
    expect(decodeJournalEntry(toBinary(JournalEntrySchema, message)).params).toEqual([['t', ParamValue.string('2026-01-01')]]);
  });

  test('every temporal kind round-trips', () => {
    const params = (['date', 'time', 'localtime', 'datetime', 'localdatetime', 'duration'] as const).map(
      (type) => [type, ParamValue[type]('x')] as [string, ParamValue],
    );
    expect(decodeJournalEntry(encodeJournalEntry({ query: 'q', params })).params).toEqual(params);
  });

  test('a decoded entry shares no memory with its payload, whose buffer a reader may reuse', () => {
    const bytes = Buffer.of(1, 2, 3);
    const payload = Buffer.from(encodeJournalEntry({ query: 'q', params: [['b', ParamValue.bytes(bytes)], ['l', ParamValue.list([ParamValue.bytes(bytes)])]] }));
    const decoded = decodeJournalEntry(payload);
    payload.fill(0);
    const [[, top], [, list]] = decoded.params as [[string, ParamValue], [string, ParamValue]];
    expect(Array.from(top.value as Uint8Array)).toEqual([1, 2, 3]);
    expect(Array.from((list.value as ParamValue[])[0]!.value as Uint8Array)).toEqual([1, 2, 3]);
  });

  test('bytes that are not a JournalEntry are invalid_argument', () => {
    expect(codeOf(() => decodeJournalEntry(Buffer.from([0x0a, 0x05, 0x61])))).toBe('invalid_argument');
    expect(codeOf(() => decodeJournalEntry(Buffer.from([0xff])))).toBe('invalid_argument');
  });

  test('out-of-range sequence and timestamp are rejected', () => {
    expect(codeOf(() => encodeJournalEntry({ sequence: -1, query: 'q' }))).toBe('invalid_argument');
    expect(codeOf(() => encodeJournalEntry({ query: 'q', timestampMs: 1.5 }))).toBe('invalid_argument');
    expect(codeOf(() => encodeJournalEntry({ sequence: 2n ** 64n, query: 'q' }))).toBe('invalid_argument');
    expect(codeOf(() => encodeJournalEntry({ query: 'q', timestampMs: 2n ** 63n }))).toBe('invalid_argument');
  });

  test('a sequence or timestamp beyond 2^53 that encodeJournalEntry writes decodes back as a bigint', () => {
    const far = decodeJournalEntry(encodeJournalEntry({ sequence: 2n ** 60n, query: 'q', timestampMs: -(2n ** 63n) }));
    expect(far.sequence).toBe(2n ** 60n);
    expect(far.timestampMs).toBe(-(2n ** 63n));
    const near = decodeJournalEntry(encodeJournalEntry({ sequence: 2n ** 53n - 1n, query: 'q', timestampMs: -(2n ** 53n) + 1n }));
    expect(near.sequence).toBe(Number.MAX_SAFE_INTEGER);
    expect(near.timestampMs).toBe(Number.MIN_SAFE_INTEGER);
    expect(decodeJournalEntry(encodeJournalEntry({ sequence: 2n ** 64n - 1n, query: 'q' })).sequence).toBe(2n ** 64n - 1n);
  });
});

/**
 * A generated parameter: the value handed to encodeJournalEntry (plain or typed)
 * and, built independently, the GraphValue (generated schema) it must encode as.
 */
interface Generated {
  input: ParamInput;
  message: MessageInitShape<typeof GraphValueSchema>;
}

const MIN_I64 = -(2n ** 63n);
const MAX_I64 = 2n ** 63n - 1n;
const TEMPORAL_KIND_OF = {
  date: TemporalKind.DATE,
  time: TemporalKind.TIME,
  localtime: TemporalKind.LOCAL_TIME,
  datetime: TemporalKind.DATETIME,
  localdatetime: TemporalKind.LOCAL_DATETIME,
  duration: TemporalKind.DURATION,
} as const;
const TEMPORAL_TYPES = Object.keys(TEMPORAL_KIND_OF) as (keyof typeof TEMPORAL_KIND_OF)[];

/** Unicode text (astral characters too), and text long enough to need a multi-byte length prefix. */
const text = fc.oneof(
  fc.string({ unit: 'grapheme', maxLength: 12 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ minLength: 100, maxLength: 400 }),
);
/** doubles including -0, +0, NaN, infinities and extremes */
const double = fc.oneof(fc.double(), fc.constantFrom(0, -0, Number.MIN_VALUE, -Number.MAX_VALUE));
const int64 = fc.oneof(
  fc.bigInt({ min: MIN_I64, max: MAX_I64 }),
  fc.constantFrom(MIN_I64, MAX_I64, -1n, 0n, 127n, 128n, 2n ** 32n, -(2n ** 32n), 2n ** 53n - 1n, 2n ** 53n, -(2n ** 53n) + 1n, -(2n ** 53n)),
);
/** numbers that map to int: safe integers, and integral doubles up to ±2^63 */
const integralNumber = fc.oneof(
  fc.integer(),
  fc.maxSafeInteger(),
  fc.constantFrom(-0, -(2 ** 63), 2 ** 62, -(2 ** 53), 2 ** 32 - 1, -(2 ** 31)),
);

function generated(input: ParamInput, value: MessageInitShape<typeof GraphValueSchema>['value']): Generated {
  return { input, message: { value } };
}

const leaf: fc.Arbitrary<Generated> = fc.oneof(
  fc.boolean().map((typed) => generated(typed ? ParamValue.null() : null, { case: 'nullValue', value: {} })),
  fc.tuple(fc.boolean(), fc.boolean()).map(([b, typed]) => generated(typed ? ParamValue.bool(b) : b, { case: 'boolValue', value: b })),
  fc.tuple(int64, fc.boolean()).map(([n, typed]) => generated(typed ? ParamValue.int(n) : n, { case: 'intValue', value: n })),
  integralNumber.map((n) => generated(n, { case: 'intValue', value: BigInt(n) })),
  double.map((x) => generated(ParamValue.float(x), { case: 'floatValue', value: x })),
  double.filter((x) => !Number.isInteger(x)).map((x) => generated(x, { case: 'floatValue', value: x })),
  fc.tuple(text, fc.boolean()).map(([t, typed]) => generated(typed ? ParamValue.string(t) : t, { case: 'stringValue', value: t })),
  fc.uint8Array({ maxLength: 200 }).map((b) => generated(b, { case: 'bytesValue', value: b })),
  fc.tuple(fc.constantFrom(...TEMPORAL_TYPES), text).map(([type, iso]) =>
    generated(ParamValue[type](iso), { case: 'temporalValue', value: { kind: TEMPORAL_KIND_OF[type], iso } }),
  ),
  fc.record({ srid: fc.nat({ max: 0xffff_ffff }), x: double, y: double, z: fc.option(double, { nil: undefined }) }).map(({ srid, x, y, z }) => {
    const point = z === undefined ? { srid, x, y } : { srid, x, y, z };
    return generated(ParamValue.point(point), { case: 'pointValue', value: point });
  }),
);

/** keys of plain objects: never array indexes, which objects would reorder */
const objectKey = text.map((t) => `k${t}`);

function mapOf(entries: [string, Generated][]): MessageInitShape<typeof GraphValueSchema>['value'] {
  return { case: 'mapValue', value: { entries: entries.map(([key, item]) => ({ key, value: item.message })) } };
}

function inputPairs(entries: [string, Generated][]): [string, ParamInput][] {
  return entries.map(([key, item]) => [key, item.input]);
}

const { value: generatedValue } = fc.letrec<{ value: Generated }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    leaf,
    fc.tuple(fc.array(tie('value'), { maxLength: 4 }), fc.boolean()).map(([items, typed]) => {
      const inputs = items.map((item) => item.input);
      return generated(typed ? ParamValue.list(inputs) : inputs, { case: 'listValue', value: { values: items.map((item) => item.message) } });
    }),
    fc.uniqueArray(fc.tuple(text, tie('value')), { maxLength: 4, selector: ([key]) => key }).map((entries) =>
      generated(ParamValue.map(inputPairs(entries)), mapOf(entries)),
    ),
    fc.uniqueArray(fc.tuple(objectKey, tie('value')), { maxLength: 4, selector: ([key]) => key }).map((entries) =>
      generated(Object.fromEntries(inputPairs(entries)), mapOf(entries)),
    ),
  ),
}));

const generatedEntry = fc.record({
  sequence: fc.option(fc.oneof(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.maxSafeNat(), fc.constant(2n ** 64n - 1n)), { nil: undefined }),
  query: text,
  params: fc.option(fc.uniqueArray(fc.tuple(objectKey, generatedValue), { maxLength: 6, selector: ([key]) => key }), { nil: undefined }),
  paramsAsObject: fc.boolean(),
  timestampMs: fc.option(fc.oneof(int64, fc.maxSafeInteger()), { nil: undefined }),
});

describe('the specialised encoder', () => {
  test('writes exactly what toBinary of the generated schema writes, for any entry', () => {
    fc.assert(
      fc.property(generatedEntry, ({ sequence, query, params, paramsAsObject, timestampMs }) => {
        const pairs = params === undefined ? undefined : inputPairs(params);
        const input = { sequence, query, params: paramsAsObject && pairs ? Object.fromEntries(pairs) : pairs, timestampMs };
        const reference = create(JournalEntrySchema, {
          sequence: BigInt(sequence ?? 0),
          query,
          params: (params ?? []).map(([key, value]) => ({ key, value: value.message })),
          timestampMs: BigInt(timestampMs ?? 0),
        });
        expect(Buffer.from(encodeJournalEntry(input)).toString('hex')).toBe(Buffer.from(toBinary(JournalEntrySchema, reference)).toString('hex'));
      }),
      { numRuns: 1000 },
    );
  });

  test('ParamValue.from keeps what a parameter encodes as', () => {
    fc.assert(
      fc.property(generatedValue, ({ input, message }) => {
        const reference = toBinary(JournalEntrySchema, create(JournalEntrySchema, { query: 'q', params: [{ key: 'v', value: message }] }));
        const typed = encodeJournalEntry({ query: 'q', params: [['v', ParamValue.from(input)]] });
        expect(Buffer.from(typed).toString('hex')).toBe(Buffer.from(reference).toString('hex'));
      }),
      { numRuns: 300 },
    );
  });

  test('a lone surrogate is rejected wherever a string goes, naming where', () => {
    expect(() => encodeJournalEntry({ query: 'a\udc00' })).toThrow(/query/);
    expect(() => encodeJournalEntry({ query: 'q', params: { 'k\ud800': 1 } })).toThrow(/params\.k\ud800: key/);
    expect(() => encodeJournalEntry({ query: 'q', params: [['k\ud800', 1]] })).toThrow(/params\[0\]/);
    expect(() => encodeJournalEntry({ query: 'q', params: { a: [{ b: `${'x'.repeat(300)}\ud800` }] } })).toThrow(/params\.a\[0\]\.b:/);
    expect(codeOf(() => encodeJournalEntry({ query: 'q', params: { s: '\ud83d\ude00', t: '\ud83d\ude00'.repeat(200) } }))).toBe('ok');
  });
});

describe.each(cores)('payloads through the $kind core', (core) => {
  const api = createFormatApi(core);

  test('journal entries survive a sealed segment', () => {
    const payloads = vectors.map((v) => encodeJournalEntry(v.entry));
    const batch = core.encodeEntries(1, Buffer.alloc(32), payloads);
    const unsealed = Buffer.concat([api.encodeHeader({ firstSeq: 1, createdMs: manifest.created_ms }), batch.bytes]);
    const segment = api.decodeSegment(api.sealSegment(unsealed));
    expect(segment.entries.map((e) => decodeJournalEntry(e.payload))).toEqual(vectors.map((v) => v.entry));
    expect(segment.chainHash.toString('hex')).toBe(manifest.chain_hash);
  });
});

describe('the graphd schema decoding loads on first use', () => {
  test('is built from the descriptor graphd_pb.ts embeds, with the same messages and fields', () => {
    const generated = readFileSync(fileURLToPath(new URL('../ts/payload/proto/graphd_pb.ts', import.meta.url)), 'utf8');
    expect(generated).toContain(`fileDesc("${GRAPHD_FILE_DESCRIPTOR}")`);
    const lazy = graphdDecoding();
    const shape = (schema: DescMessage) => [schema.typeName, schema.fields.map((field) => [field.number, field.name, field.fieldKind])];
    expect(shape(lazy.JournalEntrySchema)).toEqual(shape(JournalEntrySchema));
    expect(shape(lazy.GraphValueSchema)).toEqual(shape(GraphValueSchema));
    expect(shape(lazy.MapValueSchema)).toEqual(shape(MapValueSchema));
  });
});
