/**
 * Typed query parameters (`ParamValue`), one to one with graphd's protobuf
 * `GraphValue` (FORMAT.md), and the mapping of plain JavaScript values onto
 * them. A plain value is checked and written straight into the protobuf bytes
 * (no intermediate ParamValue tree or message objects) because that runs on
 * every append.
 */
import { GraphstreamError } from '../errors.js';
import { graphdDecoding } from './proto/graphd.js';
import type { GraphValue, MapEntry, TemporalKind } from './proto/graphd_pb.js';
import { FIXED64, isWellFormedString, LENGTH_DELIMITED, VARINT, WireWriter } from './wire.js';

export type TemporalType = 'date' | 'time' | 'localtime' | 'datetime' | 'localdatetime' | 'duration';

export interface Point {
  /** spatial reference id (u32), e.g. 4326 for WGS-84, 7203 for cartesian */
  srid: number;
  x: number;
  y: number;
  /** present for 3D points */
  z?: number;
}

/** What each ParamValue type carries in `value`. */
export interface ParamValueTypes {
  null: null;
  bool: boolean;
  /** signed 64-bit */
  int: bigint;
  float: number;
  string: string;
  bytes: Uint8Array;
  list: readonly ParamValue[];
  /** entries in order */
  map: readonly (readonly [string, ParamValue])[];
  /** ISO 8601 text, e.g. `2026-01-01` */
  date: string;
  time: string;
  localtime: string;
  datetime: string;
  localdatetime: string;
  duration: string;
  point: Point;
}

export type ParamType = keyof ParamValueTypes;

/**
 * One typed value. Made only by the `ParamValue.*` constructors and by
 * decoding (the private member keeps an object literal from passing as one:
 * a plain object is a map).
 */
export class TypedParam<T extends ParamType = ParamType> {
  private declare readonly typedParamBrand: never;

  /** @internal use the ParamValue.* constructors */
  constructor(
    readonly type: T,
    readonly value: ParamValueTypes[T],
  ) {}
}

export type ParamValue = { [T in ParamType]: TypedParam<T> }[ParamType];

/** A value accepted where a parameter is expected: a ParamValue or a plain JavaScript value. */
export type ParamInput =
  | ParamValue
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | readonly ParamInput[]
  | { readonly [key: string]: ParamInput };

/** Named parameters: a plain object (keys in property order) or [key, value] pairs (in order). */
export type ParamsInput = { readonly [key: string]: ParamInput } | readonly (readonly [string, ParamInput])[];

const MIN_INT64 = -(2n ** 63n);
const MAX_INT64 = 2n ** 63n - 1n;
const TWO_POW_63 = 2 ** 63;

/** graphd.TemporalKind's values (graphd_pb.ts is imported for its types only; a test checks these against it) */
const TEMPORAL_KINDS: Record<TemporalType, TemporalKind> = {
  date: 1,
  time: 2,
  localtime: 3,
  datetime: 4,
  localdatetime: 5,
  duration: 6,
};

const TEMPORAL_TYPES: ReadonlyMap<number, TemporalType> = new Map(
  Object.entries(TEMPORAL_KINDS).map(([type, kind]) => [kind, type as TemporalType]),
);

function invalid(path: string, what: string): never {
  throw new GraphstreamError('invalid_argument', `parameter ${path}: ${what}`);
}

function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'object') return value.constructor?.name ?? 'object without prototype';
  return typeof value;
}

function checkInt(value: bigint, path: string): bigint {
  if (value < MIN_INT64 || value > MAX_INT64) invalid(path, `integer ${value} is outside signed 64-bit`);
  return value;
}

const LONE_SURROGATE = 'string contains a lone UTF-16 surrogate';

function checkString(value: unknown, path: string): string {
  if (typeof value !== 'string') invalid(path, `expected a string, got ${describeValue(value)}`);
  if (!isWellFormedString(value)) invalid(path, LONE_SURROGATE);
  return value;
}

function checkPoint(point: Point, path: string): Point {
  if (typeof point !== 'object' || point === null) invalid(path, 'a point is { srid, x, y, z? }');
  const { srid, x, y, z } = point;
  if (!Number.isInteger(srid) || srid < 0 || srid > 0xffff_ffff) invalid(path, `point srid must be a u32, got ${srid}`);
  if (typeof x !== 'number' || typeof y !== 'number' || (z !== undefined && typeof z !== 'number')) {
    invalid(path, 'point coordinates must be numbers');
  }
  return z === undefined ? { srid, x, y } : { srid, x, y, z };
}

function isPlainObject(value: object): boolean {
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

/**
 * Where a walk over a parameter tree is: the root's name, the keys and indexes
 * below it (joined into a path such as `params.tags[2]` only for an error) and
 * the containers entered (a repeat is a cycle).
 */
class Walk {
  readonly keys: (string | number)[] = [];
  readonly containers: object[] = [];

  constructor(public root: string) {}

  /** Starts a walk from `root` (a walk an error ended may have left keys and containers). */
  restart(root: string): this {
    this.root = root;
    if (this.keys.length !== 0) this.keys.length = 0;
    if (this.containers.length !== 0) this.containers.length = 0;
    return this;
  }

  get path(): string {
    let path = this.root;
    for (const key of this.keys) path += typeof key === 'number' ? `[${key}]` : `.${key}`;
    return path;
  }

  invalid(what: string): never {
    return invalid(this.path, what);
  }

  enter(container: object): void {
    if (this.containers.includes(container)) this.invalid('value contains a cycle');
    this.containers.push(container);
  }

  leave(): void {
    this.containers.pop();
  }
}

// Field numbers of graphd.GraphValue's `value` oneof (proto/graphd.proto).
const NULL_VALUE = 1;
const BOOL_VALUE = 2;
const INT_VALUE = 3;
const FLOAT_VALUE = 4;
const STRING_VALUE = 5;
const LIST_VALUE = 6;
const MAP_VALUE = 7;
const BYTES_VALUE = 8;
const TEMPORAL_VALUE = 9;
const POINT_VALUE = 10;

function writeNull(writer: WireWriter): void {
  writer.tag(NULL_VALUE, LENGTH_DELIMITED);
  writer.byte(0);
}

function writeBool(writer: WireWriter, value: boolean): void {
  writer.tag(BOOL_VALUE, VARINT);
  writer.byte(value ? 1 : 0);
}

function writeFloat(writer: WireWriter, value: number): void {
  writer.tag(FLOAT_VALUE, FIXED64);
  writer.double(value);
}

function writeString(writer: WireWriter, value: string, walk: Walk): void {
  writer.tag(STRING_VALUE, LENGTH_DELIMITED);
  if (!writer.string(value)) walk.invalid(LONE_SURROGATE);
}

function writeBytes(writer: WireWriter, value: Uint8Array): void {
  writer.tag(BYTES_VALUE, LENGTH_DELIMITED);
  writer.bytes(value);
}

/** A proto3 double with implicit presence: +0 is omitted, -0 is not. */
function writeImplicitDouble(writer: WireWriter, field: number, value: number): void {
  if (Object.is(value, 0)) return;
  writer.tag(field, FIXED64);
  writer.double(value);
}

/**
 * Starts a graphd.MapEntry as field `field` of the enclosing message, up to its
 * `value` field's tag; the caller writes the value as a delimited GraphValue and
 * ends the entry with `endDelimited` of the returned start. -1 when the key
 * holds a lone surrogate (the caller throws).
 */
function beginMapEntry(writer: WireWriter, field: number, key: string): number {
  writer.tag(field, LENGTH_DELIMITED);
  const entry = writer.beginDelimited();
  if (key !== '') {
    writer.tag(1, LENGTH_DELIMITED);
    if (!writer.string(key)) return -1;
  }
  writer.tag(2, LENGTH_DELIMITED);
  return entry;
}

/**
 * Writes a typed parameter as the content of a graphd.GraphValue. Its values
 * were checked when it was made.
 */
function writeTypedValue(writer: WireWriter, param: ParamValue, walk: Walk): void {
  switch (param.type) {
    case 'null':
      return writeNull(writer);
    case 'bool':
      return writeBool(writer, param.value);
    case 'int':
      writer.tag(INT_VALUE, VARINT);
      return writer.int64Bigint(param.value);
    case 'float':
      return writeFloat(writer, param.value);
    case 'string':
      return writeString(writer, param.value, walk);
    case 'bytes':
      return writeBytes(writer, param.value);
    case 'list': {
      writer.tag(LIST_VALUE, LENGTH_DELIMITED);
      const list = writer.beginDelimited();
      for (const item of param.value) {
        writer.tag(1, LENGTH_DELIMITED);
        const value = writer.beginDelimited();
        writeTypedValue(writer, item, walk);
        writer.endDelimited(value);
      }
      return writer.endDelimited(list);
    }
    case 'map': {
      writer.tag(MAP_VALUE, LENGTH_DELIMITED);
      const map = writer.beginDelimited();
      for (const [key, item] of param.value) {
        const entry = beginMapEntry(writer, 1, key);
        if (entry < 0) walk.invalid(LONE_SURROGATE);
        const value = writer.beginDelimited();
        writeTypedValue(writer, item, walk);
        writer.endDelimited(value);
        writer.endDelimited(entry);
      }
      return writer.endDelimited(map);
    }
    case 'point': {
      const { srid, x, y, z } = param.value;
      writer.tag(POINT_VALUE, LENGTH_DELIMITED);
      const point = writer.beginDelimited();
      if (srid !== 0) {
        writer.tag(1, VARINT);
        writer.uint(srid);
      }
      writeImplicitDouble(writer, 2, x);
      writeImplicitDouble(writer, 3, y);
      if (z !== undefined) {
        writer.tag(4, FIXED64);
        writer.double(z);
      }
      return writer.endDelimited(point);
    }
    default: {
      writer.tag(TEMPORAL_VALUE, LENGTH_DELIMITED);
      const temporal = writer.beginDelimited();
      writer.tag(1, VARINT);
      writer.uint(TEMPORAL_KINDS[param.type]);
      if (param.value !== '') {
        writer.tag(2, LENGTH_DELIMITED);
        if (!writer.string(param.value)) walk.invalid(LONE_SURROGATE);
      }
      return writer.endDelimited(temporal);
    }
  }
}

/**
 * Checks a parameter (typed or plain) and writes it as the content of a
 * graphd.GraphValue, in one walk; `walk` says where it is for errors.
 */
function writeGraphValue(writer: WireWriter, input: ParamInput, walk: Walk): void {
  switch (typeof input) {
    case 'boolean':
      return writeBool(writer, input);
    case 'string':
      return writeString(writer, input, walk);
    case 'bigint':
      if (input < MIN_INT64 || input > MAX_INT64) walk.invalid(`integer ${input} is outside signed 64-bit`);
      writer.tag(INT_VALUE, VARINT);
      return writer.int64Bigint(input);
    case 'number':
      if (!Number.isInteger(input)) return writeFloat(writer, input);
      if (input < -TWO_POW_63 || input >= TWO_POW_63) walk.invalid(`integer ${input} is outside signed 64-bit`);
      writer.tag(INT_VALUE, VARINT);
      return writer.int64Number(input);
    case 'object': {
      if (input === null) return writeNull(writer);
      if (input instanceof TypedParam) return writeTypedValue(writer, input, walk);
      if (input instanceof Uint8Array) return writeBytes(writer, input);
      if (Array.isArray(input)) {
        walk.enter(input);
        writer.tag(LIST_VALUE, LENGTH_DELIMITED);
        const list = writer.beginDelimited();
        for (let i = 0; i < input.length; i++) {
          writer.tag(1, LENGTH_DELIMITED);
          const value = writer.beginDelimited();
          walk.keys.push(i);
          writeGraphValue(writer, input[i], walk);
          walk.keys.pop();
          writer.endDelimited(value);
        }
        writer.endDelimited(list);
        walk.leave();
        return;
      }
      if (isPlainObject(input)) {
        walk.enter(input);
        writer.tag(MAP_VALUE, LENGTH_DELIMITED);
        const map = writer.beginDelimited();
        writeObjectEntries(writer, 1, input as { readonly [key: string]: ParamInput }, walk);
        writer.endDelimited(map);
        walk.leave();
        return;
      }
      return walk.invalid(`${describeValue(input)} is not a parameter value (use a plain object, an array or ParamValue.*)`);
    }
    default:
      return walk.invalid(`${typeof input} is not a parameter value`);
  }
}

/** Writes a plain object's own properties, in order, as graphd.MapEntry fields numbered `field`. */
function writeObjectEntries(
  writer: WireWriter,
  field: number,
  object: { readonly [key: string]: ParamInput },
  walk: Walk,
): void {
  for (const key in object) {
    if (!Object.hasOwn(object, key)) continue;
    walk.keys.push(key);
    const entry = beginMapEntry(writer, field, key);
    if (entry < 0) walk.invalid(`key ${LONE_SURROGATE}`);
    const value = writer.beginDelimited();
    writeGraphValue(writer, object[key]!, walk);
    writer.endDelimited(value);
    writer.endDelimited(entry);
    walk.keys.pop();
  }
}

/**
 * Checks named parameters (object or [key, value] pairs) and writes them, in
 * order, as graphd.MapEntry fields numbered `field`.
 */
export function writeParamEntries(writer: WireWriter, field: number, params: ParamsInput, path = 'params'): void {
  if (typeof params !== 'object' || params === null) {
    return invalid(path, 'params must be a plain object or an array of [key, value] pairs');
  }
  // One walk serves every encoding (a walk per entry was a third of an append's garbage); an
  // encoding started from inside another (a getter in params) gets its own.
  if (sharedWalkBusy) return writeParamsWalking(writer, field, params, new Walk(path));
  sharedWalkBusy = true;
  try {
    writeParamsWalking(writer, field, params, sharedWalk.restart(path));
  } finally {
    sharedWalkBusy = false;
  }
}

const sharedWalk = new Walk('params');
let sharedWalkBusy = false;

function writeParamsWalking(writer: WireWriter, field: number, params: object, walk: Walk): void {
  const path = walk.root;
  if (!Array.isArray(params)) {
    if (!isPlainObject(params)) invalid(path, `${describeValue(params)} is not a plain object`);
    return writeObjectEntries(writer, field, params as { readonly [key: string]: ParamInput }, walk);
  }
  for (let i = 0; i < params.length; i++) {
    const pair: unknown = params[i];
    if (!Array.isArray(pair) || pair.length !== 2 || typeof pair[0] !== 'string') {
      invalid(`${path}[${i}]`, 'expected a [key, value] pair with a string key');
    }
    const key = pair[0] as string;
    const entry = beginMapEntry(writer, field, key);
    if (entry < 0) invalid(`${path}[${i}]`, LONE_SURROGATE);
    const value = writer.beginDelimited();
    walk.keys.push(key);
    writeGraphValue(writer, pair[1] as ParamInput, walk);
    walk.keys.pop();
    writer.endDelimited(value);
    writer.endDelimited(entry);
  }
}

/** Converts a decoded protobuf GraphValue into a ParamValue (an unknown temporal kind becomes a string). */
export function fromGraphValue(message: GraphValue | undefined): ParamValue {
  const value = message?.value;
  switch (value?.case) {
    case 'boolValue':
      return new TypedParam('bool', value.value);
    case 'intValue':
      return new TypedParam('int', value.value);
    case 'floatValue':
      return new TypedParam('float', value.value);
    case 'stringValue':
      return new TypedParam('string', value.value);
    case 'bytesValue':
      return new TypedParam('bytes', Uint8Array.prototype.slice.call(value.value)); // a copy (Buffer's own slice is a view): the payload's buffer may be reused
    case 'listValue':
      return new TypedParam('list', value.value.values.map(fromGraphValue));
    case 'mapValue':
      return new TypedParam('map', fromMapEntries(value.value.entries));
    case 'temporalValue': {
      const type = TEMPORAL_TYPES.get(value.value.kind);
      return type === undefined ? new TypedParam('string', value.value.iso) : new TypedParam(type, value.value.iso);
    }
    case 'pointValue': {
      const { srid, x, y, z } = value.value;
      return new TypedParam('point', z === undefined ? { srid, x, y } : { srid, x, y, z });
    }
    default:
      // null_value, or a GraphValue with no member set (nothing else carries no value)
      return NULL_PARAM;
  }
}

export function fromMapEntries(entries: readonly MapEntry[]): [string, ParamValue][] {
  return entries.map((entry) => [entry.key, fromGraphValue(entry.value)]);
}

const NULL_PARAM = new TypedParam('null', null);

function temporal<T extends TemporalType>(type: T): (iso: string) => TypedParam<T> {
  return (iso) => new TypedParam(type, checkString(iso, type) as ParamValueTypes[T]);
}

/** Constructors of typed parameter values, and `from` for plain JavaScript values. */
export const ParamValue = {
  null: (): TypedParam<'null'> => NULL_PARAM,
  bool: (value: boolean): TypedParam<'bool'> => {
    if (typeof value !== 'boolean') invalid('bool', `expected a boolean, got ${describeValue(value)}`);
    return new TypedParam('bool', value);
  },
  /** A signed 64-bit integer; a number must be an integer (use a bigint beyond 2^53). */
  int: (value: bigint | number): TypedParam<'int'> => {
    if (typeof value === 'number') {
      if (!Number.isSafeInteger(value)) invalid('int', `${value} is not a safe integer (use a bigint)`);
      return new TypedParam('int', BigInt(value));
    }
    if (typeof value !== 'bigint') invalid('int', `expected a bigint, got ${describeValue(value)}`);
    return new TypedParam('int', checkInt(value, 'int'));
  },
  /** A double, even when integral (`ParamValue.float(1)` is 1.0, not the int 1). */
  float: (value: number): TypedParam<'float'> => {
    if (typeof value !== 'number') invalid('float', `expected a number, got ${describeValue(value)}`);
    return new TypedParam('float', value);
  },
  string: (value: string): TypedParam<'string'> => new TypedParam('string', checkString(value, 'string')),
  /** Bytes (kept by reference, not copied). */
  bytes: (value: Uint8Array): TypedParam<'bytes'> => {
    if (!(value instanceof Uint8Array)) invalid('bytes', `expected a Uint8Array, got ${describeValue(value)}`);
    return new TypedParam('bytes', value);
  },
  list: (items: readonly ParamInput[]): TypedParam<'list'> => {
    if (!Array.isArray(items)) invalid('list', 'expected an array');
    return ParamValue.from(items) as TypedParam<'list'>;
  },
  /** A map, from a plain object or from [key, value] pairs (which keep any order, including numeric keys). */
  map: (entries: ParamsInput): TypedParam<'map'> => {
    const writer = new WireWriter(256);
    writeParamEntries(writer, 1, entries, 'map');
    const { fromBinary, MapValueSchema } = graphdDecoding();
    return new TypedParam('map', fromMapEntries(fromBinary(MapValueSchema, writer.copy()).entries));
  },
  date: temporal('date'),
  time: temporal('time'),
  localtime: temporal('localtime'),
  datetime: temporal('datetime'),
  localdatetime: temporal('localdatetime'),
  duration: temporal('duration'),
  /** A 2D point, or 3D when `z` is given. */
  point: (point: Point): TypedParam<'point'> => new TypedParam('point', checkPoint(point, 'point')),
  /**
   * Maps a plain JavaScript value: integral numbers and bigints → int, other
   * numbers → float, strings, booleans, null, Uint8Array → bytes, arrays →
   * list, plain objects → map. ParamValues pass through.
   */
  from: (value: ParamInput): ParamValue => {
    const writer = new WireWriter(256);
    writeGraphValue(writer, value, new Walk('value'));
    const { fromBinary, GraphValueSchema } = graphdDecoding();
    return fromGraphValue(fromBinary(GraphValueSchema, writer.copy()));
  },
  is: (value: unknown): value is ParamValue => value instanceof TypedParam,
};
