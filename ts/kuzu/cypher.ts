/**
 * The little of Cypher that the Kuzu integration reads: where a query refers to a parameter
 * (`$name`), which functions it calls, and whether it holds more than one statement. String
 * literals, backtick-quoted names and comments are skipped, so a `$x` or a `rand()` inside them
 * is neither a parameter nor a call.
 */
import { GraphstreamError } from './root.js';

export interface ParamReference {
  name: string;
  /** offset of the `$` */
  start: number;
  /** offset after the name */
  end: number;
}

export interface CypherScan {
  params: ParamReference[];
  /** identifiers followed by `(` (or always-refused keywords), lower case, with their offset */
  calls: { name: string; start: number }[];
  /** a `;` followed by anything but whitespace and comments */
  multipleStatements: boolean;
  /** the first keyword of the statement, upper case */
  firstKeyword: string;
}

const IDENTIFIER_START = /[A-Za-z_]/;
const IDENTIFIER_PART = /[A-Za-z0-9_]/;
/** a parameter name's first character and the rest, as Kuzu's lexer has them (Unicode letters too) */
const PARAM_START = /^[\p{ID_Start}\p{Pc}]/u;
const PARAM_PART = /^[\p{ID_Continue}\p{Sc}]/u;

function unterminated(what: string, at: number): never {
  throw new GraphstreamError('invalid_argument', `kuzu: query has an unterminated ${what} starting at offset ${at}`);
}

/** Scans a Cypher query (see the module comment). */
export function scanCypher(query: string): CypherScan {
  const params: ParamReference[] = [];
  const calls: { name: string; start: number }[] = [];
  let multipleStatements = false;
  let afterSemicolon = false;
  let firstKeyword = '';
  let previousSignificant = '';
  let i = 0;
  const n = query.length;
  while (i < n) {
    const c = query[i]!;
    if (c === "'" || c === '"') {
      const start = i++;
      while (i < n && query[i] !== c) i += query[i] === '\\' ? 2 : 1;
      if (i >= n) unterminated('string', start);
      i++;
      if (afterSemicolon) multipleStatements = true;
      previousSignificant = c;
      continue;
    }
    if (c === '`') {
      const start = i++;
      while (i < n && query[i] !== '`') i++;
      if (i >= n) unterminated('quoted name', start);
      i++;
      if (afterSemicolon) multipleStatements = true;
      previousSignificant = '`';
      continue;
    }
    if (c === '/' && query[i + 1] === '/') {
      while (i < n && query[i] !== '\n') i++;
      continue;
    }
    if (c === '/' && query[i + 1] === '*') {
      const start = i;
      const end = query.indexOf('*/', i + 2);
      if (end < 0) unterminated('comment', start);
      i = end + 2;
      continue;
    }
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    if (afterSemicolon) multipleStatements = true;
    if (c === ';') {
      afterSemicolon = true;
      i++;
      continue;
    }
    if (c === '$') {
      // Kuzu's grammar: '$' then digits, or a name (ID_Start or Pc, then ID_Continue or Sc: Unicode letters too)
      const start = i++;
      if (query[i] === '`') {
        throw new GraphstreamError('invalid_argument', `kuzu: the parameter at offset ${start} has a quoted name; name parameters with letters, digits and _`);
      }
      if (i < n && /\d/.test(query[i]!)) {
        while (i < n && /\d/.test(query[i]!)) i++;
      } else if (PARAM_START.test(query.slice(i, i + 2))) {
        do i += query.codePointAt(i)! > 0xffff ? 2 : 1;
        while (i < n && PARAM_PART.test(query.slice(i, i + 2)));
      }
      if (i > start + 1) params.push({ name: query.slice(start + 1, i), start, end: i });
      previousSignificant = '$';
      continue;
    }
    if (IDENTIFIER_START.test(c)) {
      const start = i;
      while (i < n && IDENTIFIER_PART.test(query[i]!)) i++;
      const word = query.slice(start, i);
      if (firstKeyword === '') firstKeyword = word.toUpperCase();
      let j = i;
      while (j < n && /\s/.test(query[j]!)) j++;
      const lower = word.toLowerCase();
      if (previousSignificant !== '.' && (query[j] === '(' || ALWAYS_REFUSED.has(lower))) {
        calls.push({ name: lower, start });
      }
      previousSignificant = 'a';
      continue;
    }
    previousSignificant = c;
    i++;
  }
  return { params, calls, multipleStatements, firstKeyword };
}

/** Functions whose result differs between the leader and a replica; refused when called. */
export const NONDETERMINISTIC_FUNCTIONS: ReadonlySet<string> = new Set([
  'rand',
  'random',
  'gen_random_uuid',
  'uuid_generate',
  'current_timestamp',
  'current_date',
  'current_time',
  'localtimestamp',
  'now',
  'timestamp_now',
]);

/** Refused even without parentheses (SQL-style keywords). */
const ALWAYS_REFUSED: ReadonlySet<string> = new Set(['current_timestamp', 'current_date', 'current_time', 'localtimestamp']);

const TRANSACTION_KEYWORDS: ReadonlySet<string> = new Set(['BEGIN', 'COMMIT', 'ROLLBACK', 'CHECKPOINT']);

/**
 * The scans of the query texts checked last (a leader and a replica run a few texts over and
 * over; each takes a scan of its own otherwise). Longer texts are not kept.
 */
const replayableScans = new Map<string, Readonly<CypherScan>>();
const SCANS_KEPT = 256;
const KEPT_QUERY_LENGTH = 4096;

/**
 * Checks that a query can be journaled and replayed to the same result: one statement, no
 * transaction control (mutate runs its own transaction), no nondeterministic function. Throws
 * `invalid_argument` naming what was refused; returns the scan, frozen (later checks of the same
 * text return the same object).
 */
export function checkReplayable(query: string): Readonly<CypherScan> {
  if (typeof query !== 'string') throw new GraphstreamError('invalid_argument', 'kuzu: the query must be a string');
  const kept = replayableScans.get(query);
  if (kept !== undefined) return kept;
  const scan = checkScan(query);
  if (query.length <= KEPT_QUERY_LENGTH) {
    if (replayableScans.size >= SCANS_KEPT) replayableScans.delete(replayableScans.keys().next().value!);
    replayableScans.set(query, scan);
  }
  return scan;
}

function checkScan(query: string): Readonly<CypherScan> {
  const scan = scanCypher(query);
  for (const call of scan.calls) {
    if (NONDETERMINISTIC_FUNCTIONS.has(call.name)) {
      throw new GraphstreamError(
        'invalid_argument',
        `kuzu: ${call.name}() at offset ${call.start} is nondeterministic: a replica would compute another value. Compute it in the application and pass it as a parameter`,
      );
    }
  }
  if (scan.multipleStatements) throw new GraphstreamError('invalid_argument', 'kuzu: one statement per mutation (the query holds a ";" followed by more)');
  if (TRANSACTION_KEYWORDS.has(scan.firstKeyword)) {
    throw new GraphstreamError('invalid_argument', `kuzu: ${scan.firstKeyword} is not a mutation: mutate() runs each statement in a transaction of its own`);
  }
  // frozen, as every later check of the same text returns this object
  for (const ref of scan.params) Object.freeze(ref);
  for (const call of scan.calls) Object.freeze(call);
  Object.freeze(scan.params);
  Object.freeze(scan.calls);
  return Object.freeze(scan);
}
