/**
 * What the Kuzu integration does with a connection: run one statement, run a unit of work in an
 * explicit transaction, and keep the journal position the database holds in a small meta table
 * (`_graphstream_meta`), written inside the same transaction as the entry it records. Kuzu's
 * and LadybugDB's `Connection` both fit `KuzuConnection`; nothing here loads either package.
 *
 * The meta table is append-only: each entry inserts a row (id and seq: its sequence; hash: the
 * chain hash after it), and the position is the row with the largest sequence. Every
 * `PRUNE_EVERY`th entry also deletes the rows below its own, in the same transaction, so the
 * table stays small. Updating one row in place instead runs Kuzu 0.11 out of buffer pool: every
 * update keeps a copy of the updated column vectors in the pool until a checkpoint (measured:
 * a 16 MiB pool full after 556 updates of that row, the tests' 64 MiB after about 2,300
 * mutations; inserts: 30,000 and more). An entry recorded twice fails on the primary key. The
 * earlier layout (one row, id 0, updated) reads the same way.
 *
 * Statements run through prepared statements kept per connection and query text (at most
 * `PREPARED_PER_CONNECTION`, least recently used dropped first). Kuzu parses a statement only
 * when it is prepared and binds and plans it again at every execution, so a reused prepared
 * statement sees the current schema; each `prepare()` also stays allocated inside the
 * connection until it closes (about 11 KB each, measured), so preparing once per text is what
 * keeps a long-running leader or replica from growing. A prepared statement keeps the values of
 * its previous execution for parameters not passed again: `runStatement` binds every parameter
 * the query refers to (a missing one as NULL, as a freshly prepared statement would).
 */
import { GraphstreamError } from './root.js';
import type { ParamValue } from '../payload/params.js';
import { checkReplayable, scanCypher } from './cypher.js';
import { bindForKuzu, type KuzuBound } from './params.js';

/** A prepared statement of Kuzu's Node API. */
export interface KuzuPreparedStatement {
  isSuccess(): boolean;
  getErrorMessage(): string;
}

/** A query result of Kuzu's Node API. */
export interface KuzuQueryResult {
  getAll(): Promise<Record<string, unknown>[]>;
  getColumnDataTypes(): Promise<string[]>;
  close?(): void;
}

/** The part of a Kuzu (or LadybugDB) `Connection` graphstream uses. */
export interface KuzuConnection {
  prepare(statement: string): Promise<KuzuPreparedStatement>;
  execute(statement: KuzuPreparedStatement, params?: Record<string, KuzuBound>): Promise<KuzuQueryResult | KuzuQueryResult[]>;
  query(statement: string): Promise<KuzuQueryResult | KuzuQueryResult[]>;
}

/** Where a database is in the journal: the last sequence applied and the chain hash after it. */
/** A statement as the journal carries it: Cypher text and typed parameters, in order. */
export interface KuzuEntry {
  query: string;
  params: readonly (readonly [string, ParamValue])[];
}

export interface KuzuPosition {
  sequence: number;
  chainHash: Buffer;
}

export const META_TABLE = '_graphstream_meta';
const HASH_SIZE = 32;
const ZERO_HASH = Buffer.alloc(HASH_SIZE);

export function checkConnection(connection: unknown, where: string): KuzuConnection {
  const c = connection as Partial<KuzuConnection> | null;
  if (typeof c !== 'object' || c === null || typeof c.prepare !== 'function' || typeof c.execute !== 'function' || typeof c.query !== 'function') {
    throw new GraphstreamError('invalid_argument', `${where}: connection must be a kuzu (or LadybugDB) Connection`);
  }
  return c as KuzuConnection;
}

function kuzuError(err: unknown, what: string): GraphstreamError {
  if (err instanceof GraphstreamError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new GraphstreamError('invalid_argument', `kuzu: ${what}: ${message}`, { cause: err });
}

async function rowsOf(result: KuzuQueryResult | KuzuQueryResult[]): Promise<Record<string, unknown>[]> {
  const results = Array.isArray(result) ? result : [result];
  const rows: Record<string, unknown>[] = [];
  for (const one of results) {
    rows.push(...(await one.getAll()));
    one.close?.();
  }
  return rows;
}

/** At most this many prepared statements are kept per connection (the least recently used are dropped). */
export const PREPARED_PER_CONNECTION = 256;

interface Prepared {
  statement: KuzuPreparedStatement;
  /** the parameters the query refers to, each bound at every execution */
  params: readonly string[];
}

const statementCaches = new WeakMap<KuzuConnection, Map<string, Promise<Prepared>>>();

/** The connection's prepared statement for `query`, prepared on first use (a failed prepare is not kept). */
function prepared(connection: KuzuConnection, query: string): Promise<Prepared> {
  let cache = statementCaches.get(connection);
  if (cache === undefined) {
    cache = new Map();
    statementCaches.set(connection, cache);
  }
  const kept = cache.get(query);
  if (kept !== undefined) {
    // most recently used last
    cache.delete(query);
    cache.set(query, kept);
    return kept;
  }
  const params = [...new Set(scanCypher(query).params.map((ref) => ref.name))];
  const making = (async (): Promise<Prepared> => {
    let statement: KuzuPreparedStatement;
    try {
      statement = await connection.prepare(query);
    } catch (err) {
      throw kuzuError(err, 'preparing the statement');
    }
    if (!statement.isSuccess()) throw new GraphstreamError('invalid_argument', `kuzu: ${statement.getErrorMessage()}`);
    return { statement, params };
  })();
  const owner = cache;
  owner.set(query, making);
  making.catch(() => {
    if (owner.get(query) === making) owner.delete(query);
  });
  if (owner.size > PREPARED_PER_CONNECTION) owner.delete(owner.keys().next().value!);
  return making;
}

async function execute(connection: KuzuConnection, query: string, values: Record<string, KuzuBound>, what: string): Promise<Record<string, unknown>[]> {
  const { statement, params } = await prepared(connection, query);
  let bound = values;
  for (const name of params) {
    if (Object.hasOwn(values, name)) continue;
    if (bound === values) bound = { ...values };
    Object.defineProperty(bound, name, { value: null, enumerable: true, writable: true, configurable: true });
  }
  try {
    return await rowsOf(await connection.execute(statement, bound));
  } catch (err) {
    throw kuzuError(err, what);
  }
}

/**
 * Runs one statement with bound values (a parameter the query refers to but `values` lacks is
 * bound as NULL); a Kuzu failure becomes `invalid_argument` with its message.
 */
export function runStatement(connection: KuzuConnection, query: string, values: Record<string, KuzuBound>): Promise<Record<string, unknown>[]> {
  return execute(connection, query, values, 'executing the statement');
}

/**
 * Runs a statement without parameters (transaction control, DDL of the meta table). Every result
 * is closed once read: Kuzu's Node binding crashes the process when a result it finalises later
 * outlives its database.
 */
export async function control(connection: KuzuConnection, statement: string): Promise<void> {
  await execute(connection, statement, {}, statement);
}

/** Runs a journal entry (its query and typed parameters) as Kuzu binds it. */
export function runEntry(connection: KuzuConnection, entry: KuzuEntry): Promise<Record<string, unknown>[]> {
  const scan = checkReplayable(entry.query);
  const statement = bindForKuzu(entry.query, scan, entry.params);
  return runStatement(connection, statement.query, statement.values);
}

/** Creates the meta table when the database has none (in a transaction of its own). */
export async function ensureMetaTable(connection: KuzuConnection): Promise<void> {
  await control(connection, `CREATE NODE TABLE IF NOT EXISTS ${META_TABLE}(id INT64 PRIMARY KEY, seq INT64, hash STRING)`);
}

/** The position the database recorded (its meta row with the largest sequence); sequence 0 and the zero hash when it recorded none. */
export async function readPosition(connection: KuzuConnection): Promise<KuzuPosition> {
  const rows = await runStatement(connection, `MATCH (m:${META_TABLE}) RETURN CAST(m.seq AS STRING) AS seq, m.hash AS hash ORDER BY m.seq DESC LIMIT 1`, {});
  const row = rows[0];
  if (row === undefined) return { sequence: 0, chainHash: ZERO_HASH };
  const sequence = Number(row.seq);
  const hash = row.hash;
  if (!Number.isSafeInteger(sequence) || sequence < 0 || typeof hash !== 'string' || !/^[0-9a-f]{64}$/.test(hash)) {
    throw new GraphstreamError('corrupt', `kuzu: ${META_TABLE} holds ${JSON.stringify(row)}, not a sequence and a ${HASH_SIZE}-byte chain hash`);
  }
  return { sequence, chainHash: Buffer.from(hash, 'hex') };
}

/** Every this many sequences, the meta update also deletes the older rows. */
export const PRUNE_EVERY = 1024;
const WRITE_POSITION = `CREATE (:${META_TABLE} {id: $seq, seq: $seq, hash: $hash})`;
const PRUNE_POSITIONS = `MATCH (m:${META_TABLE}) WHERE m.seq < $seq DELETE m`;

/** Records the position, inside the caller's transaction (see the module comment). */
export async function writePosition(connection: KuzuConnection, position: KuzuPosition): Promise<void> {
  const seq = position.sequence;
  await execute(connection, WRITE_POSITION, { seq, hash: position.chainHash.toString('hex') }, 'recording the journal position');
  if (seq % PRUNE_EVERY === 0) await execute(connection, PRUNE_POSITIONS, { seq }, 'pruning the recorded journal positions');
}

/**
 * Runs `work` between BEGIN TRANSACTION and COMMIT; on any failure the transaction is rolled back
 * (Kuzu rolls back by itself when a statement fails, so a ROLLBACK finding no transaction is fine)
 * and the failure rethrown.
 */
export async function inTransaction<T>(connection: KuzuConnection, work: () => Promise<T>): Promise<T> {
  await control(connection, 'BEGIN TRANSACTION');
  let result: T;
  try {
    result = await work();
  } catch (err) {
    await control(connection, 'ROLLBACK').catch(() => undefined);
    throw err;
  }
  await control(connection, 'COMMIT');
  return result;
}

/** Applies a journal entry and records its position, in one transaction. */
export function applyEntry(connection: KuzuConnection, entry: KuzuEntry, position: KuzuPosition): Promise<void> {
  return inTransaction(connection, async () => {
    await runEntry(connection, entry);
    await writePosition(connection, position);
  });
}
