/**
 * The public journal: `Journal.open(dir)`, then `append({ query, params })`.
 *
 * Written once over a Core (native or pure). Appends are validated and
 * encoded on the caller's turn, so a value that cannot be journaled is
 * rejected before anything is written. The facade keeps one group in flight to
 * the core: every append made while a group is being written and synced joins
 * the next group (one core call, one write, one fdatasync), in call order.
 * With nothing in flight, appends made in the same tick form one group.
 */
import { mkdir } from 'node:fs/promises';
import { resolve as resolvePath } from 'node:path';
import type { Core, CoreWriter, Durability, WriterOptions, WriterStats } from './core.js';
import { resolveCore } from './default-core.js';
import { GraphstreamError, normalizeAsyncErrors, toGraphstreamError } from './errors.js';
import type { ParamsInput } from './params.js';
import { encodeJournalEntry } from './payload.js';
import { journalFingerprint, recoverJournalState, type RecoveredJournalState } from './recovery.js';

export type Compression = 'zstd' | 'none' | { zstd: number };

export interface JournalOptions {
  /** seal the live segment and start a new one when the next entry would pass this size; default 4 MiB */
  maxSegmentBytes?: number;
  /** compression of sealed segments: `'zstd'` (level 3, the default), `{ zstd: level }` (1..22) or `'none'` */
  compression?: Compression;
  /**
   * `'fsync'` (default): an append resolves once its bytes are written and fdatasynced.
   * `'interval'`: once written; fdatasync every `fsyncIntervalMs`. `'none'`: fdatasync only on flush, seal and close.
   */
  durability?: Durability;
  /** default 100 */
  fsyncIntervalMs?: number;
  /** largest payload accepted; default 64 MiB */
  maxEntryBytes?: number;
  /** append batches the core writer queues before appends wait; default 1024 */
  queueCapacity?: number;
  /** the core doing the byte work; default the native addon (`graphstream/pure` passes the pure core) */
  core?: Core;
}

/** A graphd entry to append; `timestampMs` defaults to `Date.now()`. */
export interface JournalAppendEntry {
  query: string;
  params?: ParamsInput;
  timestampMs?: number | bigint;
}

export interface AppendResult {
  sequence: number;
  /** chain hash after this entry */
  chainHash: Buffer;
}

export interface JournalStats extends WriterStats {
  /** entries appended (acknowledged) through this Journal */
  appends: number;
  /** core append calls (groups) */
  groups: number;
}

const MIB = 1024 * 1024;
const DEFAULT_MAX_SEGMENT_BYTES = 4 * MIB;
const DEFAULT_ZSTD_LEVEL = 3;
const DEFAULT_FSYNC_INTERVAL_MS = 100;
const DEFAULT_MAX_ENTRY_BYTES = 64 * MIB;
/** the seal ceiling: a segment body (and so an entry) beyond it cannot be sealed or read back */
const ENTRY_BYTES_LIMIT = 1024 * MIB - 48;
const DEFAULT_QUEUE_CAPACITY = 1024;
const MIN_SEGMENT_BYTES = 128 + 48 + 1;
/** bounds on one group, so a burst becomes several writes rather than one giant buffer */
const MAX_GROUP_ENTRIES = 16_384;
const MAX_GROUP_BYTES = 16 * MIB;
const OPEN_ATTEMPTS = 3;

interface AppendOp {
  kind: 'append';
  /** encoded payloads; graphd entries still lack their sequence field */
  payloads: Uint8Array[];
  /** payloads get their journal sequence as protobuf field 1 when submitted */
  graphdEntries: boolean;
  bytes: number;
  resolve(results: AppendResult[]): void;
  reject(err: GraphstreamError): void;
}

interface ControlOp {
  kind: 'seal' | 'flush' | 'close';
  resolve(result: string | null): void;
  reject(err: GraphstreamError): void;
}

type Op = AppendOp | ControlOp;

function invalid(message: string): GraphstreamError {
  return new GraphstreamError('invalid_argument', message);
}

function positiveInteger(value: unknown, name: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    throw invalid(`${name} must be an integer in ${min}..${max}, got ${String(value)}`);
  }
  return value;
}

function zstdLevel(compression: Compression | undefined): number {
  if (compression === undefined || compression === 'zstd') return DEFAULT_ZSTD_LEVEL;
  if (compression === 'none') return 0;
  if (typeof compression === 'object' && compression !== null) {
    return positiveInteger(compression.zstd, 'compression.zstd', 1, 22);
  }
  throw invalid(`compression must be 'zstd', 'none' or { zstd: level }, got ${String(compression)}`);
}

function writerOptionsOf(options: JournalOptions): WriterOptions {
  const durability = options.durability ?? 'fsync';
  if (durability !== 'fsync' && durability !== 'interval' && durability !== 'none') {
    throw invalid(`durability must be 'fsync', 'interval' or 'none', got ${String(durability)}`);
  }
  return {
    maxSegmentBytes: positiveInteger(options.maxSegmentBytes ?? DEFAULT_MAX_SEGMENT_BYTES, 'maxSegmentBytes', MIN_SEGMENT_BYTES, 1024 * MIB),
    level: zstdLevel(options.compression),
    durability,
    fsyncIntervalMs: positiveInteger(options.fsyncIntervalMs ?? DEFAULT_FSYNC_INTERVAL_MS, 'fsyncIntervalMs', 1, 3_600_000),
    queueCapacity: positiveInteger(options.queueCapacity ?? DEFAULT_QUEUE_CAPACITY, 'queueCapacity', 1, 1 << 20),
  };
}

/** `payload` with protobuf field 1 (`sequence`, a varint) in front: fields are written in field-number order. */
function withSequenceField(payload: Uint8Array, sequence: number): Uint8Array {
  const prefix: number[] = [0x08];
  let rest = sequence;
  while (rest >= 0x80) {
    prefix.push((rest % 0x80) | 0x80);
    rest = Math.floor(rest / 0x80);
  }
  prefix.push(rest);
  const out = Buffer.allocUnsafe(prefix.length + payload.length);
  out.set(prefix, 0);
  out.set(payload, prefix.length);
  return out;
}

export class Journal {
  private readonly queue: Op[] = [];
  private pumping = false;
  private closing = false;
  private closePromise: Promise<void> | null = null;
  private appended = 0;
  private groups = 0;

  protected constructor(
    private readonly dir: string,
    private readonly writer: CoreWriter,
    private readonly maxEntryBytes: number,
  ) {}

  /**
   * Opens (creating it if needed) the journal in `dir`: locks it, recovers
   * from whatever a crash left (see recoverJournalState) and starts a writer
   * that continues the sequence and the chain.
   */
  static async open(dir: string, options: JournalOptions = {}): Promise<Journal> {
    if (typeof dir !== 'string' || dir === '') throw invalid('dir must be a non-empty path');
    if (typeof options !== 'object' || options === null) throw invalid('options must be an object');
    const writerOptions = writerOptionsOf(options);
    const maxEntryBytes = positiveInteger(options.maxEntryBytes ?? DEFAULT_MAX_ENTRY_BYTES, 'maxEntryBytes', 1, ENTRY_BYTES_LIMIT);
    const core = await resolveCore(options.core);
    const absoluteDir = resolvePath(dir);
    try {
      await mkdir(absoluteDir, { recursive: true });
    } catch (err) {
      throw toGraphstreamError(err, `creating journal directory ${absoluteDir}`);
    }
    for (let attempt = 0; attempt < OPEN_ATTEMPTS; attempt++) {
      // Recovery may truncate and remove files, so it runs under the lock: a writer that
      // appends nothing holds it (and creates no file) while recovery repairs the directory.
      const guard = await normalizeAsyncErrors(
        core.openWriter(absoluteDir, { sequence: 0, chainHash: Buffer.alloc(32), liveSegment: null }, writerOptions),
        `locking journal ${absoluteDir}`,
      );
      let state: RecoveredJournalState;
      let fingerprint: string;
      try {
        state = await recoverJournalState(absoluteDir, { core });
        fingerprint = await journalFingerprint(absoluteDir, state);
      } finally {
        await normalizeAsyncErrors(guard.close(), `unlocking journal ${absoluteDir}`);
      }
      const writer = await normalizeAsyncErrors(core.openWriter(absoluteDir, state, writerOptions), `opening journal ${absoluteDir}`);
      // Between the guard's release and this lock another process could have appended: then recover again.
      if ((await journalFingerprint(absoluteDir, state)) === fingerprint) return new this(absoluteDir, writer, maxEntryBytes);
      await normalizeAsyncErrors(writer.close(), `closing journal ${absoluteDir}`);
    }
    throw new GraphstreamError('conflict', `journal ${absoluteDir} kept changing while it was being opened`);
  }

  /** The journal directory (absolute). */
  get directory(): string {
    return this.dir;
  }

  /** Last sequence acknowledged (0 for an empty journal). */
  get sequence(): number {
    return this.writer.sequence;
  }

  /** Chain hash after `sequence`. */
  get chainHash(): Buffer {
    return this.writer.chainHash;
  }

  /** False once closed or after an I/O failure the writer could not recover from. */
  get alive(): boolean {
    return !this.closing && this.writer.alive;
  }

  stats(): JournalStats {
    return { ...this.writer.stats(), appends: this.appended, groups: this.groups };
  }

  /** Appends one graphd entry; resolves once it is durable per the journal's durability. */
  append(entry: JournalAppendEntry): Promise<AppendResult> {
    return this.appendBatch([entry]).then((results) => results[0]!);
  }

  /** Appends entries as consecutive sequences: all of them are validated before any is written. */
  appendBatch(entries: readonly JournalAppendEntry[]): Promise<AppendResult[]> {
    try {
      if (!Array.isArray(entries) || entries.length === 0) throw invalid('appendBatch takes a non-empty array of entries');
      const payloads = entries.map((entry, index) => this.encodeEntry(entry, entries.length > 1 ? index : -1));
      return this.enqueueAppend(payloads, true);
    } catch (err) {
      return Promise.reject(toGraphstreamError(err));
    }
  }

  /** Appends an opaque payload (for engines with their own payload format). The bytes are copied. */
  appendRaw(payload: Uint8Array): Promise<AppendResult> {
    try {
      if (!(payload instanceof Uint8Array)) throw invalid('appendRaw takes a Uint8Array payload');
      this.checkSize(payload.length, 'payload');
      return this.enqueueAppend([Buffer.from(payload)], false).then((results) => results[0]!);
    } catch (err) {
      return Promise.reject(toGraphstreamError(err));
    }
  }

  /** Seals the live segment (after every append made before this call); resolves to its path, or null when it is empty. */
  sealForUpload(): Promise<string | null> {
    return this.enqueueControl('seal');
  }

  /** Makes every append made before this call durable, whatever the durability setting. */
  async flush(): Promise<void> {
    await this.enqueueControl('flush');
  }

  /** Finishes pending appends, seals the live segment and releases the lock. Idempotent. */
  close(): Promise<void> {
    if (this.closePromise === null) {
      this.closePromise = this.enqueueControl('close').then(() => undefined);
      this.closing = true;
    }
    return this.closePromise;
  }

  private encodeEntry(entry: JournalAppendEntry, index: number): Uint8Array {
    const where = index >= 0 ? `entry ${index}` : 'entry';
    if (typeof entry !== 'object' || entry === null) throw invalid(`${where} must be { query, params?, timestampMs? }`);
    let payload: Uint8Array;
    try {
      payload = encodeJournalEntry({
        query: entry.query,
        params: entry.params,
        timestampMs: entry.timestampMs ?? Date.now(),
      });
    } catch (err) {
      const error = toGraphstreamError(err);
      throw index >= 0 ? new GraphstreamError(error.code, `${where}: ${error.message}`, { cause: err }) : error;
    }
    this.checkSize(payload.length, where);
    return payload;
  }

  private checkSize(length: number, what: string): void {
    if (length > this.maxEntryBytes) {
      throw new GraphstreamError('too_large', `${what} is ${length} bytes, over the limit of ${this.maxEntryBytes} (maxEntryBytes)`);
    }
  }

  private closedError(): GraphstreamError {
    return new GraphstreamError('closed', `journal ${this.dir} is closed`);
  }

  private enqueueAppend(payloads: Uint8Array[], graphdEntries: boolean): Promise<AppendResult[]> {
    if (this.closing) return Promise.reject(this.closedError());
    const bytes = payloads.reduce((sum, payload) => sum + payload.length, 0);
    return new Promise((resolve, reject) => {
      this.queue.push({ kind: 'append', payloads, graphdEntries, bytes, resolve, reject });
      this.schedule();
    });
  }

  private enqueueControl(kind: ControlOp['kind']): Promise<string | null> {
    if (this.closing) return Promise.reject(this.closedError());
    return new Promise((resolve, reject) => {
      this.queue.push({ kind, resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.pumping) return;
    this.pumping = true;
    // Wait for the rest of this tick: appends made in it join the same group.
    queueMicrotask(() => void this.pump());
  }

  private async pump(): Promise<void> {
    while (this.queue.length > 0) {
      const head = this.queue[0]!;
      if (head.kind === 'append') {
        await this.submitGroup(this.takeGroup());
      } else {
        this.queue.shift();
        await this.runControl(head);
      }
    }
    this.pumping = false;
  }

  private takeGroup(): AppendOp[] {
    const group: AppendOp[] = [];
    let entries = 0;
    let bytes = 0;
    while (this.queue.length > 0) {
      const next = this.queue[0]!;
      if (next.kind !== 'append') break;
      if (group.length > 0 && (entries + next.payloads.length > MAX_GROUP_ENTRIES || bytes + next.bytes > MAX_GROUP_BYTES)) {
        break;
      }
      group.push(next);
      entries += next.payloads.length;
      bytes += next.bytes;
      this.queue.shift();
    }
    return group;
  }

  private async submitGroup(group: AppendOp[]): Promise<void> {
    // Nothing else is in flight, so the writer's sequence is exact: graphd entries get theirs embedded.
    let sequence = this.writer.sequence + 1;
    const payloads: Uint8Array[] = [];
    for (const op of group) {
      for (const payload of op.payloads) {
        payloads.push(op.graphdEntries ? withSequenceField(payload, sequence) : payload);
        sequence++;
      }
    }
    this.groups++;
    let batch;
    try {
      batch = await this.writer.append(payloads);
    } catch (err) {
      const error = toGraphstreamError(err, `appending to journal ${this.dir}`);
      for (const op of group) op.reject(error);
      return;
    }
    this.appended += payloads.length;
    let index = 0;
    for (const op of group) {
      const results: AppendResult[] = [];
      for (let i = 0; i < op.payloads.length; i++, index++) {
        results.push({
          sequence: batch.firstSequence + index,
          chainHash: Buffer.from(batch.chainHashes.subarray(index * 32, (index + 1) * 32)),
        });
      }
      op.resolve(results);
    }
  }

  private async runControl(op: ControlOp): Promise<void> {
    try {
      switch (op.kind) {
        case 'seal':
          op.resolve(await this.writer.sealForUpload());
          return;
        case 'flush':
          await this.writer.flush();
          op.resolve(null);
          return;
        case 'close':
          await this.writer.close();
          op.resolve(null);
          return;
      }
    } catch (err) {
      op.reject(toGraphstreamError(err, `${op.kind} of journal ${this.dir}`));
    }
  }
}
