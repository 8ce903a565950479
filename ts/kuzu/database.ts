/**
 * What the Kuzu integration does with a connection: run one statement, run a unit of work in an
 * explicit transaction, and keep the journal position the database holds in a small meta table
 * (`_graphstream_meta`, one row: the last sequence applied and the chain hash after it), written
 * inside the same transaction as the entry it records. Kuzu's and LadybugDB's `Connection` both
 * fit `KuzuConnection`; nothing here loads either package.
 */
import { GraphstreamError } from './root.js';
import type { ParamValue } from '../payload/params.js';
import { checkReplayable } from './cypher.js';
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

/** Runs one statement with bound values; a Kuzu failure becomes `invalid_argument` with its message. */
export async function runStatement(connection: KuzuConnection, query: string, values: Record<string, KuzuBound>): Promise<Record<string, unknown>[]> {
  let prepared: KuzuPreparedStatement;
  try {
    prepared = await connection.prepare(query);
  } catch (err) {
    throw kuzuError(err, 'preparing the statement');
  }
  if (!prepared.isSuccess()) throw new GraphstreamError('invalid_argument', `kuzu: ${prepared.getErrorMessage()}`);
  try {
    return await rowsOf(await connection.execute(prepared, values));
  } catch (err) {
    throw kuzuError(err, 'executing the statement');
  }
}

/**
 * Runs a statement without parameters (transaction control, DDL of the meta table). Every result
 * is closed once read: Kuzu's Node binding crashes the process when a result it finalises later
 * outlives its database.
 */
export async function control(connection: KuzuConnection, statement: string): Promise<void> {
  try {
    await rowsOf(await connection.query(statement));
  } catch (err) {
    throw kuzuError(err, statement);
  }
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

/** The position the database recorded; sequence 0 and the zero hash when it recorded none. */
export async function readPosition(connection: KuzuConnection): Promise<KuzuPosition> {
  const rows = await runStatement(connection, `MATCH (m:${META_TABLE}) WHERE m.id = 0 RETURN CAST(m.seq AS STRING) AS seq, m.hash AS hash`, {});
  const row = rows[0];
  if (row === undefined) return { sequence: 0, chainHash: ZERO_HASH };
  const sequence = Number(row.seq);
  const hash = row.hash;
  if (!Number.isSafeInteger(sequence) || sequence < 0 || typeof hash !== 'string' || !/^[0-9a-f]{64}$/.test(hash)) {
    throw new GraphstreamError('corrupt', `kuzu: ${META_TABLE} holds ${JSON.stringify(row)}, not a sequence and a ${HASH_SIZE}-byte chain hash`);
  }
  return { sequence, chainHash: Buffer.from(hash, 'hex') };
}

const WRITE_POSITION = `MERGE (m:${META_TABLE} {id: 0}) SET m.seq = $seq, m.hash = $hash`;
/** the meta update, prepared once per connection (it runs with every entry) */
const preparedPositions = new WeakMap<KuzuConnection, Promise<KuzuPreparedStatement>>();

/** Records the position, inside the caller's transaction. */
export async function writePosition(connection: KuzuConnection, position: KuzuPosition): Promise<void> {
  let prepared = preparedPositions.get(connection);
  if (prepared === undefined) {
    prepared = connection.prepare(WRITE_POSITION);
    preparedPositions.set(connection, prepared);
    prepared.catch(() => preparedPositions.delete(connection));
  }
  const statement = await prepared;
  if (!statement.isSuccess()) {
    preparedPositions.delete(connection);
    throw new GraphstreamError('invalid_argument', `kuzu: ${statement.getErrorMessage()}`);
  }
  try {
    await rowsOf(await connection.execute(statement, { seq: position.sequence, hash: position.chainHash.toString('hex') }));
  } catch (err) {
    throw kuzuError(err, 'recording the journal position');
  }
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
