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
import { writeJournalEntry } from './payload.js';
import { journalFingerprint, recoverJournalState, type RecoveredJournalState } from './recovery.js';
import { VARINT, WireWriter } from './wire.js';

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
  /** the encoded payloads back to back (a private copy); graphd entries still lack their sequence field */
  bytes: Uint8Array;
  /** payload lengths, in order */
  lengths: readonly number[];
  /** payloads get their journal sequence as protobuf field 1 when submitted */
  graphdEntries: boolean;
  /** `append`/`appendRaw`: resolves to the one result rather than an array */
  single: boolean;
  resolve(results: AppendResult[] | AppendResult): void;
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

export class Journal {
  private readonly queue: Op[] = [];
  /** where appends encode their entries before copying them into their op */
  private readonly entryWriter = new WireWriter();
  /** set while entryWriter is in use: a params getter appending from inside gets a writer of its own */
  private encoding = false;
  /** where a group is packed for the core (which copies it before append returns) */
  private readonly groupWriter = new WireWriter();
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
    const writer = this.takeEntryWriter();
    try {
      this.encodeEntry(writer, entry, -1);
      return this.enqueueAppend(writer.copy(), [writer.pos], true, true) as Promise<AppendResult>;
    } catch (err) {
      return Promise.reject(toGraphstreamError(err));
    } finally {
      if (writer === this.entryWriter) this.encoding = false;
    }
  }

  /** Appends entries as consecutive sequences: all of them are validated before any is written. */
  appendBatch(entries: readonly JournalAppendEntry[]): Promise<AppendResult[]> {
    if (!Array.isArray(entries) || entries.length === 0) {
      return Promise.reject(invalid('appendBatch takes a non-empty array of entries'));
    }
    const writer = this.takeEntryWriter();
    try {
      const lengths = new Array<number>(entries.length);
      for (let i = 0; i < entries.length; i++) {
        const start = writer.pos;
        this.encodeEntry(writer, entries[i]!, entries.length > 1 ? i : -1);
        lengths[i] = writer.pos - start;
      }
      return this.enqueueAppend(writer.copy(), lengths, true, false) as Promise<AppendResult[]>;
    } catch (err) {
      return Promise.reject(toGraphstreamError(err));
    } finally {
      if (writer === this.entryWriter) this.encoding = false;
    }
  }

  /** Appends an opaque payload (for engines with their own payload format). The bytes are copied. */
  appendRaw(payload: Uint8Array): Promise<AppendResult> {
    try {
      if (!(payload instanceof Uint8Array)) throw invalid('appendRaw takes a Uint8Array payload');
      this.checkSize(payload.length, 'payload');
      return this.enqueueAppend(Buffer.from(payload), [payload.length], false, true) as Promise<AppendResult>;
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

  /** An empty writer for an append's entries: `entryWriter`, unless an append is already encoding. */
  private takeEntryWriter(): WireWriter {
    if (this.encoding) return new WireWriter(256);
    this.encoding = true;
    this.entryWriter.reset();
    return this.entryWriter;
  }

  /** Checks `entry` and writes its payload at the end of `writer`. */
  private encodeEntry(writer: WireWriter, entry: JournalAppendEntry, index: number): void {
    const where = index >= 0 ? `entry ${index}` : 'entry';
    if (typeof entry !== 'object' || entry === null) throw invalid(`${where} must be { query, params?, timestampMs? }`);
    const start = writer.pos;
    try {
      writeJournalEntry(writer, {
        query: entry.query,
        params: entry.params,
        timestampMs: entry.timestampMs ?? Date.now(),
      });
    } catch (err) {
      const error = toGraphstreamError(err);
      throw index >= 0 ? new GraphstreamError(error.code, `${where}: ${error.message}`, { cause: err }) : error;
    }
    this.checkSize(writer.pos - start, where);
  }

  private checkSize(length: number, what: string): void {
    if (length > this.maxEntryBytes) {
      throw new GraphstreamError('too_large', `${what} is ${length} bytes, over the limit of ${this.maxEntryBytes} (maxEntryBytes)`);
    }
  }

  private closedError(): GraphstreamError {
    return new GraphstreamError('closed', `journal ${this.dir} is closed`);
  }

  private enqueueAppend(
    bytes: Uint8Array,
    lengths: readonly number[],
    graphdEntries: boolean,
    single: boolean,
  ): Promise<AppendResult[] | AppendResult> {
    if (this.closing) return Promise.reject(this.closedError());
    return new Promise((resolve, reject) => {
      this.queue.push({ kind: 'append', bytes, lengths, graphdEntries, single, resolve, reject });
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
      if (group.length > 0 && (entries + next.lengths.length > MAX_GROUP_ENTRIES || bytes + next.bytes.length > MAX_GROUP_BYTES)) {
        break;
      }
      group.push(next);
      entries += next.lengths.length;
      bytes += next.bytes.length;
      this.queue.shift();
    }
    return group;
  }

  private async submitGroup(group: AppendOp[]): Promise<void> {
    // Nothing else is in flight, so the writer's sequence is exact: graphd entries get theirs embedded.
    let sequence = this.writer.sequence + 1;
    let count = 0;
    for (const op of group) count += op.lengths.length;
    const lengths = new Uint32Array(count);
    const packed = this.groupWriter;
    packed.reset();
    let index = 0;
    for (const op of group) {
      let offset = 0;
      for (const length of op.lengths) {
        const start = packed.pos;
        // protobuf field 1 (`sequence`) first: fields are written in field-number order
        if (op.graphdEntries) {
          packed.tag(1, VARINT);
          packed.uint(sequence);
        }
        packed.raw(op.bytes.subarray(offset, offset + length));
        offset += length;
        lengths[index++] = packed.pos - start;
        sequence++;
      }
    }
    this.groups++;
    let batch;
    try {
      // the core copies the packed bytes before append returns, so the writer's buffer is reused
      batch = await this.writer.append({ bytes: packed.view(0, packed.pos), lengths });
    } catch (err) {
      const error = toGraphstreamError(err, `appending to journal ${this.dir}`);
      for (const op of group) op.reject(error);
      return;
    }
    this.appended += count;
    const { firstSequence, chainHashes } = batch;
    index = 0;
    for (const op of group) {
      if (op.single) {
        op.resolve({ sequence: firstSequence + index, chainHash: chainHashes.subarray(index * 32, index * 32 + 32) });
        index++;
        continue;
      }
      const results = new Array<AppendResult>(op.lengths.length);
      for (let i = 0; i < results.length; i++, index++) {
        results[i] = { sequence: firstSequence + index, chainHash: chainHashes.subarray(index * 32, index * 32 + 32) };
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
