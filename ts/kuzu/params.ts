/**
 * The one mapping between graphd's typed parameters (`ParamValue`, the protobuf `GraphValue` the
 * journal carries) and Kuzu values, in both directions (README, "graphstream/kuzu").
 *
 * JavaScript → journal: `toParamsInput` turns what a caller passes to `mutate` (plain values, a
 * `Date`, ParamValues, `kuzuMap(...)`) into ParamValue inputs.
 *
 * Journal → Kuzu: `bindForKuzu` turns a journal entry's query and typed parameters into the
 * query Kuzu runs and the values it binds. Kuzu's Node binding can bind only booleans, strings,
 * numbers (an integral number is an INT64, any other a DOUBLE), bigints (as INT128) and dates
 * (as DATE, cutting the time off), so every other type is spelled out in the query: each `$name`
 * holding such a value becomes an expression over plain bound values, e.g.
 * `CAST($__gs1 AS TIMESTAMP)`, `[CAST($__gs2 AS DOUBLE), NULL]`, `{a: $__gs3}` or
 * `map([$__gs4], [$__gs5])`. The leader runs the mutation through the same decoded entry that
 * replay reads, so leader and replica bind exactly the same values.
 *
 * Kuzu → JavaScript/journal: `fromKuzuValue` turns a value Kuzu's binding returned, with its
 * column type (`QueryResult.getColumnDataTypes()`), back into a ParamValue.
 */
import type { ParamInput } from '../payload/params.js';
import { GraphstreamError, ParamValue, TypedParam } from './root.js';
import type { CypherScan } from './cypher.js';

/** A value `mutate` and `query` take: a ParamValue input, or a JavaScript `Date` (a TIMESTAMP) anywhere inside one. */
export type KuzuParamInput = ParamInput | Date | readonly KuzuParamInput[] | { readonly [key: string]: KuzuParamInput };

/** Named parameters of a Kuzu statement. */
export type KuzuParams = { readonly [key: string]: KuzuParamInput };

/** The key that marks a GraphValue map as a Kuzu MAP (a list of [key, value] pairs) instead of a STRUCT. */
export const KUZU_MAP_KEY = '__kuzu_map';

function unsupported(path: string, what: string): never {
  throw new GraphstreamError('invalid_argument', `kuzu: parameter ${path}: ${what}`);
}

/**
 * A Kuzu MAP value (keys of any one type, values of any one type), carried in the journal as a
 * GraphValue map with the single key `__kuzu_map` holding a list of [key, value] lists.
 */
export function kuzuMap(entries: Iterable<readonly [KuzuParamInput, KuzuParamInput]>): ParamValue {
  const pairs: ParamValue[] = [];
  for (const [key, value] of entries) pairs.push(ParamValue.list([toParamInput(key, 'map key'), toParamInput(value, 'map value')]));
  return ParamValue.map([[KUZU_MAP_KEY, ParamValue.list(pairs)]]);
}

function isPlainObject(value: object): boolean {
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

/** A JavaScript Date as the TIMESTAMP it stands for: ISO 8601 in UTC, millisecond precision. */
function dateParam(value: Date, path: string): ParamValue {
  if (Number.isNaN(value.getTime())) unsupported(path, 'invalid Date');
  return ParamValue.datetime(value.toISOString());
}

/** One caller's value as a ParamValue input: `Date`s become TIMESTAMPs (datetime), the rest passes as is. */
export function toParamInput(value: KuzuParamInput, path = 'value'): ParamInput {
  if (value instanceof Date) return dateParam(value, path);
  if (typeof value !== 'object' || value === null || value instanceof TypedParam || value instanceof Uint8Array) return value as ParamInput;
  if (Array.isArray(value)) return value.map((item: KuzuParamInput, i) => toParamInput(item, `${path}[${i}]`));
  if (!isPlainObject(value)) return value as ParamInput; // refused by the encoder, which names the type
  const out: { [key: string]: ParamInput } = {};
  for (const key of Object.keys(value)) {
    const member = toParamInput((value as { readonly [key: string]: KuzuParamInput })[key]!, `${path}.${key}`);
    // an own property also for a field named __proto__ (JSON.parse makes those), which `out[key] =` would take as the prototype
    Object.defineProperty(out, key, { value: member, enumerable: true, writable: true, configurable: true });
  }
  return out;
}

/** mutate()'s named parameters as journal parameters, in order. */
export function toParamsInput(params: KuzuParams | undefined): [string, ParamInput][] {
  if (params === undefined) return [];
  if (typeof params !== 'object' || params === null || Array.isArray(params) || !isPlainObject(params)) {
    throw new GraphstreamError('invalid_argument', 'kuzu: params must be a plain object');
  }
  return Object.keys(params).map((key) => [key, toParamInput(params[key]!, key)]);
}

/** What Kuzu's Node binding binds as is (JSON-like scalars). */
export type KuzuBound = null | boolean | number | string;

/** A statement ready for Kuzu: the query with typed parameters spelled out, and the plain values it binds. */
export interface KuzuStatement {
  query: string;
  values: Record<string, KuzuBound>;
}

const INT53 = BigInt(Number.MAX_SAFE_INTEGER);
const MAX_INT64 = 2n ** 63n - 1n;

/** ISO 8601 duration: an optional sign, then P[nY][nM][nW][nD][T[nH][nM][n[.f]S]], each n optionally signed. */
const ISO_DURATION = /^([+-])?P(?:([+-]?\d+)Y)?(?:([+-]?\d+)M)?(?:([+-]?\d+)W)?(?:([+-]?\d+)D)?(?:T(?:([+-]?\d+)H)?(?:([+-]?\d+)M)?(?:([+-]?)(\d+)(?:[.,](\d{1,9}))?S)?)?$/;

/** An ISO 8601 duration as Kuzu's interval parts: months, days, microseconds (sub-microsecond digits refused). */
export function parseDuration(iso: string, path = 'duration'): { months: bigint; days: bigint; micros: bigint } {
  const match = ISO_DURATION.exec(iso);
  if (match === null || iso === 'P' || iso.endsWith('T')) unsupported(path, `${JSON.stringify(iso)} is not an ISO 8601 duration`);
  const [, sign, years, months, weeks, days, hours, minutes, secondsSign, seconds, fraction] = match;
  const num = (text: string | undefined): bigint => (text === undefined ? 0n : BigInt(text));
  if (fraction !== undefined && fraction.length > 6 && /[1-9]/.test(fraction.slice(6))) {
    unsupported(path, `${iso}: Kuzu's INTERVAL holds microseconds, not finer`);
  }
  const micros6 = BigInt((fraction ?? '').padEnd(6, '0').slice(0, 6));
  let secondsMicros = num(seconds) * 1_000_000n + micros6;
  if (secondsSign === '-') secondsMicros = -secondsMicros;
  const factor = sign === '-' ? -1n : 1n;
  return {
    months: factor * (num(years) * 12n + num(months)),
    days: factor * (num(weeks) * 7n + num(days)),
    micros: factor * ((num(hours) * 60n + num(minutes)) * 60_000_000n + secondsMicros),
  };
}

/** Kuzu interval parts as an ISO 8601 duration (years and months, days, then seconds with the fraction). */
export function formatDuration(months: bigint, days: bigint, micros: bigint): string {
  let out = 'P';
  if (months !== 0n) out += `${months}M`;
  if (days !== 0n) out += `${days}D`;
  if (micros !== 0n || out === 'P') {
    const negative = micros < 0n;
    const abs = negative ? -micros : micros;
    const whole = abs / 1_000_000n;
    const fraction = (abs % 1_000_000n).toString().padStart(6, '0').replace(/0+$/, '');
    out += `T${negative ? '-' : ''}${whole}${fraction === '' ? '' : `.${fraction}`}S`;
  }
  return out;
}

function blobText(bytes: Uint8Array): string {
  let text = '';
  for (const byte of bytes) text += `\\x${byte.toString(16).padStart(2, '0').toUpperCase()}`;
  return text;
}

function quoteName(name: string): string {
  if (name.includes('`')) unsupported(name, 'a STRUCT field name cannot contain a backtick');
  return `\`${name}\``;
}

/** Builds the expression for one parameter value, binding plain values under fresh names. */
class Binder {
  readonly values: Record<string, KuzuBound> = {};
  private counter = 0;

  constructor(private readonly taken: ReadonlySet<string>) {}

  bind(value: KuzuBound): string {
    let name: string;
    do name = `__gs${++this.counter}`;
    while (this.taken.has(name));
    this.values[name] = value;
    return `$${name}`;
  }

  expression(param: ParamValue, path: string): string {
    switch (param.type) {
      case 'null':
        return 'NULL';
      case 'bool':
      case 'string':
        return this.bind(param.value);
      case 'int':
        return param.value >= -INT53 && param.value <= INT53 ? this.bind(Number(param.value)) : `CAST(${this.bind(param.value.toString())} AS INT64)`;
      case 'float':
        if (!Number.isFinite(param.value)) unsupported(path, `${param.value} cannot be bound: Kuzu's Node binding turns NaN and ±Infinity into NULL`);
        return `CAST(${this.bind(param.value)} AS DOUBLE)`;
      case 'bytes':
        return `CAST(${this.bind(blobText(param.value))} AS BLOB)`;
      case 'date':
        return `CAST(${this.bind(param.value)} AS DATE)`;
      case 'datetime':
      case 'localdatetime':
        return `CAST(${this.bind(param.value)} AS TIMESTAMP)`;
      case 'duration': {
        const { months, days, micros } = parseDuration(param.value, path);
        const part = (fn: string, value: bigint) =>
          `${fn}(${value >= -INT53 && value <= INT53 ? this.bind(Number(value)) : `CAST(${this.bind(value.toString())} AS INT64)`})`;
        return `(${part('to_months', months)} + ${part('to_days', days)} + ${part('to_microseconds', micros)})`;
      }
      case 'time':
      case 'localtime':
        return unsupported(path, `${param.type} has no Kuzu type (Kuzu has DATE, TIMESTAMP and INTERVAL, no TIME)`);
      case 'point':
        return unsupported(path, 'a point has no Kuzu type');
      case 'list':
        return `[${param.value.map((item, i) => this.expression(item, `${path}[${i}]`)).join(', ')}]`;
      case 'map': {
        const entries = param.value;
        if (entries.length === 1 && entries[0]![0] === KUZU_MAP_KEY) return this.map(entries[0]![1], path);
        if (entries.length === 0) unsupported(path, 'an empty object has no Kuzu type (a STRUCT has fields; use kuzuMap([]) for an empty MAP)');
        const seen = new Set<string>();
        const fields = entries.map(([key, value]) => {
          if (seen.has(key.toLowerCase())) unsupported(path, `STRUCT field ${key} appears twice (Kuzu's names are case-insensitive)`);
          seen.add(key.toLowerCase());
          return `${quoteName(key)}: ${this.expression(value, `${path}.${key}`)}`;
        });
        return `{${fields.join(', ')}}`;
      }
    }
  }

  private map(pairs: ParamValue, path: string): string {
    const keys: string[] = [];
    const values: string[] = [];
    if (pairs.type !== 'list') unsupported(path, `${KUZU_MAP_KEY} must hold a list of [key, value] lists`);
    pairs.value.forEach((pair, i) => {
      if (pair.type !== 'list' || pair.value.length !== 2) unsupported(`${path}[${i}]`, 'a MAP entry is a [key, value] list');
      keys.push(this.expression(pair.value[0]!, `${path}[${i}].key`));
      values.push(this.expression(pair.value[1]!, `${path}[${i}].value`));
    });
    return `map([${keys.join(', ')}], [${values.join(', ')}])`;
  }
}

/**
 * The statement Kuzu runs for a journal entry: each `$name` the query refers to is bound as is
 * when Kuzu's binding carries its type exactly (booleans, strings, integers within ±2^53, null),
 * and replaced by an expression otherwise. Parameters the query does not refer to are not bound
 * (Kuzu refuses unknown parameters); a reference without a parameter is left for Kuzu to report.
 */
export function bindForKuzu(query: string, scan: Readonly<CypherScan>, params: readonly (readonly [string, ParamValue])[]): KuzuStatement {
  const byName = new Map<string, ParamValue>(params.map(([key, value]) => [key, value]));
  const binder = new Binder(new Set(byName.keys()));
  const expressions = new Map<string, string>();
  const values: Record<string, KuzuBound> = binder.values;
  for (const ref of scan.params) {
    if (expressions.has(ref.name) || !byName.has(ref.name)) continue;
    const value = byName.get(ref.name)!;
    if (value.type === 'bool' || value.type === 'string' || value.type === 'null' || (value.type === 'int' && value.value >= -INT53 && value.value <= INT53)) {
      values[ref.name] = value.type === 'int' ? Number(value.value) : value.value;
      expressions.set(ref.name, `$${ref.name}`);
    } else {
      expressions.set(ref.name, `(${binder.expression(value, ref.name)})`);
    }
  }
  let out = '';
  let at = 0;
  for (const ref of scan.params) {
    const expression = expressions.get(ref.name);
    if (expression === undefined) continue;
    out += query.slice(at, ref.start) + expression;
    at = ref.end;
  }
  return { query: out + query.slice(at), values };
}

// ---------------------------------------------------------------------------------------------
// Kuzu → ParamValue

/** A parsed Kuzu column type. */
export type KuzuType =
  | { kind: 'scalar'; name: string }
  | { kind: 'list'; element: KuzuType }
  | { kind: 'map'; key: KuzuType; value: KuzuType }
  | { kind: 'struct'; fields: [string, KuzuType][] };

/** Splits `a, b(c, d), e` at the top-level commas. */
function splitTopLevel(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (c === ',' && depth === 0) {
      parts.push(text.slice(start, i).trim());
      start = i + 1;
    }
  }
  parts.push(text.slice(start).trim());
  return parts.filter((part) => part !== '');
}

/** Parses a type as `getColumnDataTypes()` names it: `INT64`, `STRING[]`, `INT64[3]`, `MAP(STRING, DATE)`, `STRUCT(a INT64, b STRING)`. */
export function parseKuzuType(text: string): KuzuType {
  const type = text.trim();
  const list = /^(.*)\[\d*\]$/.exec(type);
  if (list) return { kind: 'list', element: parseKuzuType(list[1]!) };
  const nested = /^(MAP|STRUCT|UNION)\((.*)\)$/is.exec(type);
  if (nested) {
    const parts = splitTopLevel(nested[2]!);
    if (nested[1]!.toUpperCase() === 'MAP') {
      if (parts.length !== 2) throw new GraphstreamError('invalid_argument', `kuzu: cannot read the type ${type}`);
      return { kind: 'map', key: parseKuzuType(parts[0]!), value: parseKuzuType(parts[1]!) };
    }
    return {
      kind: 'struct',
      fields: parts.map((part) => {
        const space = part.search(/\s/);
        return [part.slice(0, space).replace(/^`|`$/g, ''), parseKuzuType(part.slice(space + 1))];
      }),
    };
  }
  return { kind: 'scalar', name: type.toUpperCase().replace(/\(.*\)$/, '') };
}

const INTEGER_TYPES = new Set(['INT8', 'INT16', 'INT32', 'INT64', 'SERIAL', 'UINT8', 'UINT16', 'UINT32', 'UINT64', 'INT128']);

function notCarried(type: string, why: string): never {
  throw new GraphstreamError('invalid_argument', `kuzu: a ${type} value cannot be carried as a GraphValue: ${why}`);
}

/**
 * A value Kuzu's Node binding returned, of column type `type` (a string from
 * `getColumnDataTypes()` or a parsed type), as a ParamValue. Exact except where that binding
 * already lost precision: INT64 beyond ±2^53 (it returns numbers), TIMESTAMP below the
 * millisecond (it returns Dates) and INTERVAL (it returns milliseconds, a month counted as 30
 * days). Read those through `CAST(x AS STRING)` where exactness matters.
 */
export function fromKuzuValue(value: unknown, type: string | KuzuType): ParamValue {
  const parsed = typeof type === 'string' ? parseKuzuType(type) : type;
  if (value === null || value === undefined) return ParamValue.null();
  switch (parsed.kind) {
    case 'list':
      if (!Array.isArray(value)) return notCarried('LIST', 'expected an array');
      return ParamValue.list(value.map((item: unknown) => fromKuzuValue(item, parsed.element)));
    case 'map': {
      if (typeof value !== 'object') return notCarried('MAP', 'expected an object');
      const entries = Object.entries(value as Record<string, unknown>).map(
        ([key, item]) => ParamValue.list([fromKuzuValue(key, { kind: 'scalar', name: 'STRING' }), fromKuzuValue(item, parsed.value)]),
      );
      return ParamValue.map([[KUZU_MAP_KEY, ParamValue.list(entries)]]);
    }
    case 'struct': {
      const object = value as Record<string, unknown>;
      return ParamValue.map(
        parsed.fields.map(([name, fieldType]): [string, ParamValue] => {
          // the binding sets a field named __proto__ as the object's prototype: the value is gone
          if (!Object.hasOwn(object, name) && name === '__proto__') notCarried('STRUCT', "Kuzu's Node binding drops a field named __proto__");
          return [name, fromKuzuValue(object[name], fieldType)];
        }),
      );
    }
    case 'scalar':
      break;
  }
  const name = parsed.name;
  if (INTEGER_TYPES.has(name)) {
    if (typeof value === 'bigint') return ParamValue.int(value);
    if (typeof value === 'number' && Number.isInteger(value)) {
      // beyond ±2^53 the binding already rounded it; 2^63 is what INT64's maximum rounds to
      const big = BigInt(value);
      return ParamValue.int(big > MAX_INT64 ? MAX_INT64 : big);
    }
    return notCarried(name, `unexpected ${typeof value}`);
  }
  switch (name) {
    case 'BOOL':
      return ParamValue.bool(value as boolean);
    case 'DOUBLE':
    case 'FLOAT':
    case 'DECIMAL':
      return ParamValue.float(value as number);
    case 'STRING':
    case 'UUID':
      return ParamValue.string(value as string);
    case 'BLOB':
      return ParamValue.bytes(new Uint8Array(value as Uint8Array));
    case 'DATE':
      return ParamValue.date((value as Date).toISOString().slice(0, 10));
    case 'TIMESTAMP':
    case 'TIMESTAMP_TZ':
    case 'TIMESTAMP_MS':
    case 'TIMESTAMP_NS':
    case 'TIMESTAMP_SEC':
      return ParamValue.datetime((value as Date).toISOString());
    case 'INTERVAL':
      return ParamValue.duration(formatDuration(0n, 0n, BigInt(Math.round(value as number)) * 1000n));
    default:
      return notCarried(name, 'GraphValue has no such type (nodes, relationships, paths and internal ids are query results, not parameters)');
  }
}
