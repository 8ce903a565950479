/**
 * The replica: a follower's entries applied to a Kuzu database exactly once. Each entry runs in
 * its own transaction together with the meta table update that records its sequence and chain
 * hash, and replay starts after the sequence the database itself recorded (the follower's own
 * position, saved per segment, is not trusted for that): an entry is either committed with its
 * position or not at all, whenever the process dies. An entry that fails to apply stops the
 * replay: a `failed` event, the `graphstream_kuzu_apply_failures_total` metric, and `done`
 * rejecting with a `conflict` error naming its sequence (`error.details.sequence`).
 */
import { EventEmitter } from 'node:events';
import { Counter, Gauge } from 'prom-client';
import { GraphstreamError } from './root.js';
import type { GraphstreamMetrics } from '../metrics.js';
import type { Follower, TailOptions } from '../replication/follower.js';
import { applyEntry, checkConnection, ensureMetaTable, readPosition, type KuzuConnection, type KuzuPosition } from './database.js';

export interface ReplayIntoKuzuOptions {
  /** the follower whose entries are applied; its tail starts after the database's recorded sequence */
  follower: Follower;
  /** a kuzu (or LadybugDB) Connection to the replica's database; replay is its only writer */
  connection: KuzuConnection;
  /** ends the replay: `done` rejects with an AbortError after the entry under way is committed or not */
  signal?: AbortSignal;
  /** registers graphstream_kuzu_* metrics on its registry */
  metrics?: GraphstreamMetrics;
  /** the follower's polling settings */
  tail?: Pick<TailOptions, 'pollIntervalMs' | 'maxPollIntervalMs' | 'gapTimeoutMs'>;
}

export interface KuzuReplayEvents {
  /** an entry committed, with the position the database now records */
  applied: [KuzuPosition];
  /** an entry failed to apply; replay stops, `done` rejects with `error` */
  failed: [{ sequence: number; error: GraphstreamError }];
}

/** A running replay. */
export class KuzuReplay extends EventEmitter<KuzuReplayEvents> {
  /** rejects when the replay stops: AbortError when aborted, `conflict` when an entry fails to apply, or the follower's error */
  readonly done: Promise<never>;
  private current: KuzuPosition | null = null;

  /** @internal use replayIntoKuzu */
  constructor(run: (replay: KuzuReplay) => Promise<never>) {
    super();
    this.done = run(this);
    this.done.catch(() => undefined);
  }

  /** What the database recorded last (null until replay has read it). */
  get position(): KuzuPosition | null {
    return this.current && { sequence: this.current.sequence, chainHash: Buffer.from(this.current.chainHash) };
  }

  /** @internal */
  setPosition(position: KuzuPosition): void {
    this.current = position;
  }
}

interface ReplayMetrics {
  applied: Counter<string>;
  failures: Counter<string>;
  sequence: Gauge<string>;
  labels: Record<string, string>;
}

function replayMetrics(metrics: GraphstreamMetrics | undefined): ReplayMetrics | undefined {
  if (metrics === undefined) return undefined;
  const registry = metrics.registry;
  const labelNames = ['db'];
  const get = <T>(name: string, make: () => T): T => (registry.getSingleMetric(name) as T | undefined) ?? make();
  return {
    applied: get('graphstream_kuzu_entries_applied_total', () => new Counter({ name: 'graphstream_kuzu_entries_applied_total', help: 'Journal entries applied to the Kuzu replica', labelNames, registers: [registry] })),
    failures: get('graphstream_kuzu_apply_failures_total', () => new Counter({ name: 'graphstream_kuzu_apply_failures_total', help: 'Journal entries that failed to apply to the Kuzu replica (replay stopped)', labelNames, registers: [registry] })),
    sequence: get('graphstream_kuzu_applied_sequence', () => new Gauge({ name: 'graphstream_kuzu_applied_sequence', help: 'Last journal sequence the Kuzu replica committed', labelNames, registers: [registry] })),
    labels: { db: metrics.db ?? '' },
  };
}

/**
 * Applies the follower's entries to the database until `signal` aborts or an entry fails (see the
 * module comment). The follower must not be tailing already; after the replay stops, the same
 * follower can `promote()`, and `openKuzuLeader` on the promoted journal and this database
 * continues the chain.
 */
export function replayIntoKuzu(options: ReplayIntoKuzuOptions): KuzuReplay {
  if (typeof options !== 'object' || options === null) throw new GraphstreamError('invalid_argument', 'replayIntoKuzu takes { follower, connection }');
  const connection = checkConnection(options.connection, 'replayIntoKuzu');
  const { follower, signal } = options;
  if (typeof follower?.tail !== 'function') throw new GraphstreamError('invalid_argument', 'replayIntoKuzu: follower must be a Follower');
  const metrics = replayMetrics(options.metrics);
  return new KuzuReplay(async (replay) => {
    await ensureMetaTable(connection);
    let position = await readPosition(connection);
    replay.setPosition(position);
    metrics?.sequence.set(metrics.labels, position.sequence);
    // ends the tail when the replay stops for any reason, also during the read of the entry after
    // the one that failed
    const stopTail = new AbortController();
    const records = follower
      .tail({
        ...options.tail,
        fromSeq: position.sequence + 1,
        initialHash: position.chainHash,
        signal: signal === undefined ? stopTail.signal : AbortSignal.any([signal, stopTail.signal]),
      })
      [Symbol.asyncIterator]();
    try {
      let upcoming = records.next();
      for (;;) {
        const { done, value: record } = await upcoming;
        if (done) break;
        // the follower reads (and verifies) the next entry while Kuzu applies this one
        upcoming = records.next();
        upcoming.catch(() => undefined);
        const next = { sequence: record.sequence, chainHash: record.chainHash };
        try {
          await applyEntry(connection, record.entry, next);
        } catch (err) {
          const error = new GraphstreamError('conflict', `kuzu: journal entry ${record.sequence} failed to apply, replay stopped: ${(err as Error).message}`, {
            cause: err,
            details: { sequence: record.sequence },
          });
          metrics?.failures.inc(metrics.labels);
          replay.emit('failed', { sequence: record.sequence, error });
          throw error;
        }
        position = next;
        replay.setPosition(position);
        metrics?.applied.inc(metrics.labels);
        metrics?.sequence.set(metrics.labels, position.sequence);
        replay.emit('applied', { sequence: position.sequence, chainHash: Buffer.from(position.chainHash) });
      }
    } finally {
      stopTail.abort();
      await records.return?.(undefined).catch(() => undefined);
    }
    // the tail ends only through the follower's close(): say so
    throw new GraphstreamError('closed', `kuzu: the follower was closed; replay stopped at sequence ${position.sequence}`);
  });
}
