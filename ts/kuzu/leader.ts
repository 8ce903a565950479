/**
 * The leader: a Kuzu database whose every mutation is journaled, exactly once.
 *
 * `mutate(query, params)` runs BEGIN TRANSACTION; the statement; the journal append (durable
 * when it resolves: open the journal with durability 'fsync', the default) and, at the same
 * time, the meta table update recording that entry's sequence and chain hash (known in advance:
 * the leader is the journal's only writer; checked against the append's result); COMMIT. A statement Kuzu refuses is
 * rolled back and never journaled; an append that fails rolls the statement back. A crash
 * after the append and before the COMMIT leaves an entry the database lacks: opening the leader
 * applies every journal entry beyond the sequence the database recorded (a write-ahead-log
 * redo), each in its own transaction with its meta update, before it accepts writes. The
 * statement runs through the same decoded entry a replica reads, so both bind the same values.
 */
import type { Core } from '../core/core.js';
import type { AppendResult, Journal } from '../journal/journal.js';
import type { JournalEntry } from '../payload/payload.js';
import { GraphstreamError, ParamValue, computeEntryHash, decodeJournalEntry, encodeJournalEntry, readJournal } from './root.js';
import { checkReplayable } from './cypher.js';
import {
  applyEntry,
  checkConnection,
  control,
  ensureMetaTable,
  inTransaction,
  readPosition,
  runEntry,
  writePosition,
  type KuzuConnection,
  type KuzuPosition,
} from './database.js';
import { toParamsInput, type KuzuParams } from './params.js';

export interface KuzuLeaderOptions {
  /** a kuzu (or LadybugDB) Connection to the leader's database; the leader is its only writer */
  connection: KuzuConnection;
  /** the journal, opened with durability 'fsync' (the default): an entry is durable before its COMMIT */
  journal: Journal;
  /** the core reading the journal for the redo at open; default the one the root package picks */
  core?: Core;
  /**
   * @internal test hook: runs after the append resolved, before the meta update and the COMMIT
   * (the crash suite kills the process here)
   */
  afterAppend?: (result: AppendResult) => void | Promise<void>;
}

/** What a mutation did: its journal entry's sequence and chain hash, and the rows the statement returned. */
export interface KuzuMutation {
  sequence: number;
  chainHash: Buffer;
  rows: Record<string, unknown>[];
}

/** A Kuzu database that journals its mutations. Made by `openKuzuLeader`. */
export class KuzuLeader {
  /** serialises statements on the connection: Kuzu transactions belong to the connection */
  private queue: Promise<unknown> = Promise.resolve();
  private failure: GraphstreamError | null = null;
  private current: KuzuPosition;

  /** @internal use openKuzuLeader */
  constructor(
    private readonly connection: KuzuConnection,
    private readonly journal: Journal,
    position: KuzuPosition,
    /** journal entries applied at open (the redo after a crash between an append and its COMMIT) */
    readonly redone: number,
    private readonly afterAppend: KuzuLeaderOptions['afterAppend'],
  ) {
    this.current = position;
  }

  /** The last sequence the database committed and the chain hash after it (the journal's tip). */
  get position(): KuzuPosition {
    return { sequence: this.current.sequence, chainHash: Buffer.from(this.current.chainHash) };
  }

  /**
   * Runs a mutation, journals it and commits it (see the module comment). Refuses, with
   * `invalid_argument` and before anything runs: nondeterministic functions (`rand()`,
   * `gen_random_uuid()`, `current_timestamp()`, …: pass the value as a parameter), more than one
   * statement, transaction control, and parameter values Kuzu cannot hold (README table).
   */
  mutate(query: string, params?: KuzuParams): Promise<KuzuMutation> {
    return this.serialised(async () => {
      if (this.failure !== null) throw this.failure;
      checkReplayable(query);
      const payload = encodeJournalEntry({ query, params: toParamsInput(params), timestampMs: Date.now() });
      const entry = decodeJournalEntry(payload);
      let appended: AppendResult | null = null;
      try {
        return await inTransaction(this.connection, async () => {
          const rows = await runEntry(this.connection, entry);
          // The append (an fsync) and the meta update run at once: the leader is the journal's
          // only writer, so the entry's sequence and chain hash are known before the append ends.
          const expected = { sequence: this.journal.sequence + 1, chainHash: computeEntryHash(this.journal.chainHash, payload) };
          const [append, meta] = await Promise.allSettled([this.journal.appendRaw(payload), writePosition(this.connection, expected)]);
          if (append.status === 'rejected') throw append.reason;
          appended = append.value;
          if (meta.status === 'rejected') throw meta.reason;
          if (appended.sequence !== expected.sequence || !appended.chainHash.equals(expected.chainHash)) {
            throw new GraphstreamError('conflict', `kuzu: the journal appended sequence ${appended.sequence}, not ${expected.sequence}: another writer appends to it`);
          }
          await this.afterAppend?.(appended);
          this.current = { sequence: appended.sequence, chainHash: appended.chainHash };
          return { sequence: appended.sequence, chainHash: Buffer.from(appended.chainHash), rows };
        });
      } catch (err) {
        if (appended !== null) await this.redoAfterFailure(entry, appended, err);
        throw err;
      }
    });
  }

  /**
   * Runs a read in a read-only transaction (so a write is refused) and journals nothing; same
   * parameters as mutate. Waits for the mutations before it.
   */
  query(query: string, params?: KuzuParams): Promise<Record<string, unknown>[]> {
    return this.serialised(async () => {
      checkReplayable(query);
      const entry = { query, params: ParamValue.map(toParamsInput(params)).value };
      await control(this.connection, 'BEGIN TRANSACTION READ ONLY');
      try {
        return await runEntry(this.connection, entry);
      } finally {
        // a failed statement has ended the transaction already
        await control(this.connection, 'COMMIT').catch(() => undefined);
      }
    });
  }

  /** The entry is in the journal but its transaction failed after the append: apply it again, or stop taking writes. */
  private async redoAfterFailure(entry: JournalEntry, appended: AppendResult, cause: unknown): Promise<void> {
    try {
      await applyEntry(this.connection, entry, appended);
      this.current = { sequence: appended.sequence, chainHash: appended.chainHash };
    } catch {
      this.failure = new GraphstreamError(
        'conflict',
        `kuzu: entry ${appended.sequence} is journaled but its transaction failed and could not be applied again; open the leader again to redo it`,
        { cause, details: { sequence: appended.sequence } },
      );
    }
  }

  private serialised<T>(work: () => Promise<T>): Promise<T> {
    const run = this.queue.then(work, work);
    this.queue = run.catch(() => undefined);
    return run;
  }
}

/**
 * Opens the leader: creates the meta table if needed, then applies the journal entries beyond the
 * sequence the database recorded (each in its own transaction with its meta update), so the
 * database ends where the journal does. `conflict` when the database is ahead of the journal or
 * recorded another chain; `chain_broken` when the journal does not continue the database's
 * chain hash.
 */
export async function openKuzuLeader(options: KuzuLeaderOptions): Promise<KuzuLeader> {
  if (typeof options !== 'object' || options === null) throw new GraphstreamError('invalid_argument', 'openKuzuLeader takes { connection, journal }');
  const connection = checkConnection(options.connection, 'openKuzuLeader');
  const { journal } = options;
  if (typeof journal !== 'object' || journal === null || typeof journal.appendRaw !== 'function') {
    throw new GraphstreamError('invalid_argument', 'openKuzuLeader: journal must be an open Journal');
  }
  await ensureMetaTable(connection);
  const recorded = await readPosition(connection);
  const tip = { sequence: journal.sequence, chainHash: journal.chainHash };
  if (recorded.sequence > tip.sequence) {
    throw new GraphstreamError(
      'conflict',
      `kuzu: the database recorded sequence ${recorded.sequence} but the journal ${journal.directory} ends at ${tip.sequence}: it belongs to another journal`,
      { details: { sequence: recorded.sequence } },
    );
  }
  let position = recorded;
  let redone = 0;
  if (recorded.sequence < tip.sequence) {
    for await (const record of readJournal(journal.directory, {
      fromSeq: recorded.sequence + 1,
      initialHash: recorded.chainHash,
      ...(options.core ? { core: options.core } : {}),
    })) {
      if (record.sequence > tip.sequence) break;
      const next = { sequence: record.sequence, chainHash: record.chainHash };
      try {
        await applyEntry(connection, record.entry, next);
      } catch (err) {
        throw new GraphstreamError('conflict', `kuzu: redo of journal entry ${record.sequence} failed: ${(err as Error).message}`, {
          cause: err,
          details: { sequence: record.sequence },
        });
      }
      position = next;
      redone++;
    }
  }
  if (position.sequence !== tip.sequence || !position.chainHash.equals(tip.chainHash)) {
    throw new GraphstreamError(
      'conflict',
      `kuzu: the database is at sequence ${position.sequence} with another chain hash than the journal ${journal.directory} (at ${tip.sequence})`,
      { details: { sequence: position.sequence } },
    );
  }
  return new KuzuLeader(connection, journal, position, redone, options.afterAppend);
}
