/**
 * Typed query parameters (`ParamValue`), one to one with graphd's protobuf
 * `GraphValue` (FORMAT.md), and the mapping of plain JavaScript values onto
 * them. A plain value is converted straight into the protobuf message (no
 * intermediate ParamValue tree) because that runs on every append.
 */
import { GraphstreamError } from './errors.js';
import {
  TemporalKind,
  type GraphValue,
  type MapEntry,
  type PointValue,
} from './proto/graphd_pb.js';

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

const TEMPORAL_KINDS: Record<TemporalType, TemporalKind> = {
  date: TemporalKind.DATE,
  time: TemporalKind.TIME,
  localtime: TemporalKind.LOCAL_TIME,
  datetime: TemporalKind.DATETIME,
  localdatetime: TemporalKind.LOCAL_DATETIME,
  duration: TemporalKind.DURATION,
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

// String.prototype.isWellFormed (Node 20+) is missing from the ES2023 lib typings.
type WellFormedCheck = { isWellFormed(): boolean };

/** False when `value` holds a lone UTF-16 surrogate, which UTF-8 encoding would replace by U+FFFD. */
export function isWellFormedString(value: string): boolean {
  return (value as unknown as WellFormedCheck).isWellFormed();
}

function checkString(value: unknown, path: string): string {
  if (typeof value !== 'string') invalid(path, `expected a string, got ${describeValue(value)}`);
  if (!isWellFormedString(value)) invalid(path, 'string contains a lone UTF-16 surrogate');
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

const NULL_GRAPH_VALUE: GraphValue = {
  $typeName: 'graphd.GraphValue',
  value: { case: 'nullValue', value: { $typeName: 'graphd.NullValue' } },
};

function graphValue(value: GraphValue['value']): GraphValue {
  return { $typeName: 'graphd.GraphValue', value };
}

/** Containers on the path from the root to the value being converted: a repeat is a cycle. */
type Ancestors = Set<object>;

function enter(container: object, path: string, ancestors: Ancestors): void {
  if (ancestors.has(container)) invalid(path, 'value contains a cycle');
  ancestors.add(container);
}

function mapEntry(key: string, value: GraphValue): MapEntry {
  return { $typeName: 'graphd.MapEntry', key, value };
}

function typedToGraphValue(param: ParamValue): GraphValue {
  switch (param.type) {
    case 'null':
      return NULL_GRAPH_VALUE;
    case 'bool':
      return graphValue({ case: 'boolValue', value: param.value });
    case 'int':
      return graphValue({ case: 'intValue', value: param.value });
    case 'float':
      return graphValue({ case: 'floatValue', value: param.value });
    case 'string':
      return graphValue({ case: 'stringValue', value: param.value });
    case 'bytes':
      return graphValue({ case: 'bytesValue', value: param.value });
    case 'list': {
      const values = param.value.map(typedToGraphValue);
      return graphValue({ case: 'listValue', value: { $typeName: 'graphd.ListValue', values } });
    }
    case 'map': {
      const entries = param.value.map(([key, item]) => mapEntry(key, typedToGraphValue(item)));
      return graphValue({ case: 'mapValue', value: { $typeName: 'graphd.MapValue', entries } });
    }
    case 'point': {
      const point: PointValue = { $typeName: 'graphd.PointValue', srid: param.value.srid, x: param.value.x, y: param.value.y };
      if (param.value.z !== undefined) point.z = param.value.z;
      return graphValue({ case: 'pointValue', value: point });
    }
    default:
      return graphValue({
        case: 'temporalValue',
        value: { $typeName: 'graphd.TemporalValue', kind: TEMPORAL_KINDS[param.type], iso: param.value },
      });
  }
}

/**
 * Converts a parameter (typed or plain) into its protobuf GraphValue, checking
 * it on the way; `path` names it in errors (e.g. `params.tags[2]`).
 */
export function toGraphValue(input: ParamInput, path: string, ancestors: Ancestors = new Set()): GraphValue {
  switch (typeof input) {
    case 'boolean':
      return graphValue({ case: 'boolValue', value: input });
    case 'string':
      return graphValue({ case: 'stringValue', value: checkString(input, path) });
    case 'bigint':
      return graphValue({ case: 'intValue', value: checkInt(input, path) });
    case 'number':
      if (!Number.isInteger(input)) return graphValue({ case: 'floatValue', value: input });
      if (input < -TWO_POW_63 || input >= TWO_POW_63) invalid(path, `integer ${input} is outside signed 64-bit`);
      return graphValue({ case: 'intValue', value: BigInt(input) });
    case 'object': {
      if (input === null) return NULL_GRAPH_VALUE;
      if (input instanceof TypedParam) return typedToGraphValue(input);
      if (input instanceof Uint8Array) return graphValue({ case: 'bytesValue', value: input });
      if (Array.isArray(input)) {
        enter(input, path, ancestors);
        const values = new Array<GraphValue>(input.length);
        for (let i = 0; i < input.length; i++) values[i] = toGraphValue(input[i], `${path}[${i}]`, ancestors);
        ancestors.delete(input);
        return graphValue({ case: 'listValue', value: { $typeName: 'graphd.ListValue', values } });
      }
      if (isPlainObject(input)) {
        enter(input, path, ancestors);
        const entries = toMapEntries(input as { readonly [key: string]: ParamInput }, path, ancestors);
        ancestors.delete(input);
        return graphValue({ case: 'mapValue', value: { $typeName: 'graphd.MapValue', entries } });
      }
      return invalid(path, `${describeValue(input)} is not a parameter value (use a plain object, an array or ParamValue.*)`);
    }
    default:
      return invalid(path, `${typeof input} is not a parameter value`);
  }
}

function toMapEntries(object: { readonly [key: string]: ParamInput }, path: string, ancestors: Ancestors): MapEntry[] {
  const entries: MapEntry[] = [];
  for (const key in object) {
    if (Object.hasOwn(object, key)) entries.push(mapEntry(key, toGraphValue(object[key]!, `${path}.${key}`, ancestors)));
  }
  return entries;
}

/** Converts named parameters (object or [key, value] pairs) into protobuf map entries, in order. */
export function toParamEntries(params: ParamsInput, path = 'params'): MapEntry[] {
  if (typeof params !== 'object' || params === null) {
    return invalid(path, 'params must be a plain object or an array of [key, value] pairs');
  }
  if (!Array.isArray(params)) {
    if (!isPlainObject(params)) invalid(path, `${describeValue(params)} is not a plain object`);
    return toMapEntries(params as { readonly [key: string]: ParamInput }, path, new Set());
  }
  const ancestors: Ancestors = new Set();
  const entries = new Array<MapEntry>(params.length);
  for (let i = 0; i < params.length; i++) {
    const pair: unknown = params[i];
    if (!Array.isArray(pair) || pair.length !== 2 || typeof pair[0] !== 'string') {
      invalid(`${path}[${i}]`, 'expected a [key, value] pair with a string key');
    }
    const key = checkString(pair[0], `${path}[${i}]`);
    entries[i] = mapEntry(key, toGraphValue(pair[1] as ParamInput, `${path}.${key}`, ancestors));
  }
  return entries;
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
      return new TypedParam('bytes', value.value);
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
  map: (entries: ParamsInput): TypedParam<'map'> =>
    new TypedParam('map', fromMapEntries(toParamEntries(entries, 'map'))),
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
  from: (value: ParamInput): ParamValue => fromGraphValue(toGraphValue(value, 'value')),
  is: (value: unknown): value is ParamValue => value instanceof TypedParam,
};
