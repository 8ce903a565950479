/**
 * The public journal: `Journal.open(dir)`, then `append({ query, params })`.
 *
 * Written once over a Core (native or pure). Appends are validated and
 * encoded on the caller's turn, straight into the group of the current tick,
 * so a value that cannot be journaled is rejected before anything is written.
 * The appends of one tick become one core call, in call order (a group that
 * grows large goes at once, so the core writes it while the rest encode); up to
 * MAX_GROUPS_IN_FLIGHT such calls are in flight at once, and the core writer
 * commits whatever has queued up as one write and one fdatasync. When nothing
 * awaits an answer and the core can (CoreWriter.appendNow: the native core under
 * 'none' and 'interval', up to 16 KiB, no rotation due), a group is appended on this thread
 * instead, with one write into the page cache and no thread hop. Graphd
 * entries are encoded without their sequence: the core writer stamps the one
 * it assigns, so nothing here has to wait to learn it.
 */
import { mkdir } from 'node:fs/promises';
import { resolve as resolvePath } from 'node:path';
import type { AppendedBatch, Core, CoreWriter, Durability, WriterOptions, WriterStats } from '../core/core.js';
import { resolveCore } from '../core/default.js';
import { GraphstreamError, normalizeAsyncErrors, toGraphstreamError } from '../errors.js';
import { DEFAULT_MAX_BODY_BYTES, DEFAULT_ZSTD_LEVEL, HASH_SIZE, MAX_ENTRY_PAYLOAD_BYTES, MIN_SEGMENT_BYTES, ZERO_HASH } from '../format/constants.js';
import type { ParamsInput } from '../payload/params.js';
import { writeJournalEntryFields } from '../payload/payload.js';
import { assertNotBehindUploads } from '../replication/cache.js';
import { journalFingerprint, recoverJournalState, type RecoveredJournalState } from './recovery.js';
import { WireWriter } from '../payload/wire.js';

export type Compression = 'zstd' | 'none' | { zstd: number };

export interface JournalOptions {
  /** seal the live segment and start a new one when the next entry would pass this size; default 4 MiB, at most 64 MiB (the readers' default body ceiling) */
  maxSegmentBytes?: number;
  /** compression of sealed segments: `'zstd'` (level 3, the default), `{ zstd: level }` (1..22) or `'none'` */
  compression?: Compression;
  /**
   * `'fsync'` (default): an append resolves once its bytes are written and fdatasynced.
   * `'interval'`: once written; fdatasync every `fsyncIntervalMs`. `'none'`: fdatasync only at rotation, flush, seal and close.
   */
  durability?: Durability;
  /** default 100 */
  fsyncIntervalMs?: number;
  /** largest payload accepted; default and at most 64 MiB - 64 bytes (see ENTRY_BYTES_LIMIT) */
  maxEntryBytes?: number;
  /** append batches the core writer queues before appends wait; default 1024 */
  queueCapacity?: number;
  /** the core doing the byte work; default the native addon (`graphstream/pure` passes the pure core) */
  core?: Core;
  /**
   * A torn tail (what a crash leaves) is always cut at open. Corruption (anything a crash
   * cannot leave) fails the open with `corrupt` and changes nothing, unless `'quarantine'`:
   * then the damaged data (the damaged segment and every later one, or the end of the live
   * segment from the damage on) is moved into `quarantine/<time>/` in the journal directory,
   * never deleted, and the journal continues after the last entry that verifies;
   * `journal.recovery.quarantine` says which sequences were dropped.
   */
  repair?: 'quarantine';
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
const DEFAULT_FSYNC_INTERVAL_MS = 100;
/** Bytes kept beside an entry for the sequence the writer stamps into it (a tag and a varint: at most 11). */
const SEQUENCE_STAMP_ROOM = 16;
/**
 * The largest payload: what fits the largest entry beside the stamped sequence, so that every
 * segment this package writes is read back by its own readers (follower, restore, verify) with
 * their defaults.
 */
const ENTRY_BYTES_LIMIT = MAX_ENTRY_PAYLOAD_BYTES - SEQUENCE_STAMP_ROOM;
const DEFAULT_MAX_ENTRY_BYTES = ENTRY_BYTES_LIMIT;
const DEFAULT_QUEUE_CAPACITY = 1024;
/** bounds on one group, so a burst becomes several writes rather than one giant buffer */
const MAX_GROUP_ENTRIES = 16_384;
const MAX_GROUP_BYTES = 16 * MIB;
/** a group this large goes to the core at once, not at the end of the tick (appendBatch-sized: single appends still share a tick's group) */
const EARLY_DISPATCH_ENTRIES = 512;
const EARLY_DISPATCH_BYTES = 256 * 1024;
/** core append calls awaiting their answer before further groups wait here */
const MAX_GROUPS_IN_FLIGHT = 4;
/** a group's lengths array longer than this (16 KiB) is not kept for the next group */
const MAX_SPARE_LENGTHS = 4096;
const OPEN_ATTEMPTS = 3;

interface AppendOp {
  /** entries this append takes from its group, in order */
  count: number;
  /** `append`/`appendRaw`: resolves to the one result rather than an array */
  single: boolean;
  resolve(results: AppendResult[] | AppendResult): void;
  reject(err: GraphstreamError): void;
}

/** Appends bound for one core call: their payloads back to back, and who waits for them. */
interface AppendGroup {
  kind: 'group';
  bytes: WireWriter;
  lengths: Uint32Array;
  entries: number;
  /** graphd entries (the core stamps their sequence) or raw payloads */
  graphd: boolean;
  ops: AppendOp[];
}

interface ControlOp {
  kind: 'seal' | 'flush' | 'close';
  resolve(result: string | null): void;
  reject(err: GraphstreamError): void;
}

type Op = AppendGroup | ControlOp;

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
    maxSegmentBytes: positiveInteger(options.maxSegmentBytes ?? DEFAULT_MAX_SEGMENT_BYTES, 'maxSegmentBytes', MIN_SEGMENT_BYTES, DEFAULT_MAX_BODY_BYTES),
    level: zstdLevel(options.compression),
    durability,
    fsyncIntervalMs: positiveInteger(options.fsyncIntervalMs ?? DEFAULT_FSYNC_INTERVAL_MS, 'fsyncIntervalMs', 1, 3_600_000),
    queueCapacity: positiveInteger(options.queueCapacity ?? DEFAULT_QUEUE_CAPACITY, 'queueCapacity', 1, 1 << 20),
  };
}

export class Journal {
  /** closed groups and control requests not yet handed to the core, in call order */
  private readonly queue: Op[] = [];
  /** the group this tick's appends join */
  private open: AppendGroup | null = null;
  /** set while an entry is encoded into the open group: an append from inside (a params getter) waits for it */
  private encoding = false;
  private readonly appendsDuringEncoding: (() => void)[] = [];
  /** group buffers handed back once the core has copied them */
  private readonly spareWriters: WireWriter[] = [];
  /** the lengths arrays of groups handed to the core (which copies them), for the next groups */
  private readonly spareLengths: Uint32Array[] = [];
  private inFlight = 0;
  private scheduled = false;
  private closing = false;
  private closePromise: Promise<void> | null = null;
  private appended = 0;
  private groups = 0;

  protected constructor(
    private readonly dir: string,
    private readonly writer: CoreWriter,
    private readonly maxEntryBytes: number,
    /** what recovery found and repaired when this journal was opened */
    readonly recovery: RecoveredJournalState,
  ) {}

  /**
   * Opens (creating it if needed) the journal in `dir`: locks it, recovers
   * from whatever a crash left (see recoverJournalState) and starts a writer
   * that continues the sequence and the chain. A journal behind what its
   * upload manifests record as shipped is refused (`corrupt`, see
   * assertNotBehindUploads): restore it from storage first.
   */
  static async open(dir: string, options: JournalOptions = {}): Promise<Journal> {
    if (typeof dir !== 'string' || dir === '') throw invalid('dir must be a non-empty path');
    if (typeof options !== 'object' || options === null) throw invalid('options must be an object');
    const writerOptions = writerOptionsOf(options);
    const maxEntryBytes = positiveInteger(options.maxEntryBytes ?? DEFAULT_MAX_ENTRY_BYTES, 'maxEntryBytes', 1, ENTRY_BYTES_LIMIT);
    if (options.repair !== undefined && options.repair !== 'quarantine') {
      throw invalid(`repair must be 'quarantine' when given, got ${String(options.repair)}`);
    }
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
        core.openWriter(absoluteDir, { sequence: 0, chainHash: ZERO_HASH, liveSegment: null }, writerOptions),
        `locking journal ${absoluteDir}`,
      );
      let state: RecoveredJournalState;
      let fingerprint: string;
      try {
        if (options.repair === 'quarantine') {
          // what quarantine would drop must not include shipped sequences: refused before anything moves
          await assertNotBehindUploads(absoluteDir, await recoverJournalState(absoluteDir, { core, repair: 'quarantine', dryRun: true }));
        }
        state = await recoverJournalState(absoluteDir, { core, repair: options.repair ?? true });
        await assertNotBehindUploads(absoluteDir, state);
        fingerprint = await journalFingerprint(absoluteDir, state);
      } finally {
        await normalizeAsyncErrors(guard.close(), `unlocking journal ${absoluteDir}`);
      }
      const writer = await normalizeAsyncErrors(core.openWriter(absoluteDir, state, writerOptions), `opening journal ${absoluteDir}`);
      // Between the guard's release and this lock another process could have appended: then recover again.
      if ((await journalFingerprint(absoluteDir, state)) === fingerprint) return new this(absoluteDir, writer, maxEntryBytes, state);
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
    return this.appendEntries([entry], true) as Promise<AppendResult>;
  }

  /** Appends entries as consecutive sequences: all of them are validated before any is written. */
  appendBatch(entries: readonly JournalAppendEntry[]): Promise<AppendResult[]> {
    if (!Array.isArray(entries) || entries.length === 0) {
      return Promise.reject(invalid('appendBatch takes a non-empty array of entries'));
    }
    return this.appendEntries(entries, false) as Promise<AppendResult[]>;
  }

  /** Appends an opaque payload (for engines with their own payload format). The bytes are copied. */
  appendRaw(payload: Uint8Array): Promise<AppendResult> {
    try {
      if (!(payload instanceof Uint8Array)) throw invalid('appendRaw takes a Uint8Array payload');
      this.checkSize(payload.length, 'payload');
      if (this.closing) throw this.closedError();
      if (this.encoding) return this.afterEncoding(() => this.appendRaw(payload)) as Promise<AppendResult>;
      const group = this.groupFor(false, 1);
      group.bytes.raw(payload);
      pushLength(group, payload.length);
      const joined = this.joinGroup(group, 1, true) as Promise<AppendResult>;
      this.dispatchIfLarge(group);
      return joined;
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

  /** `await using journal = await Journal.open(dir)` closes it when the scope ends. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** Encodes graphd entries into the open group; on any failure none of them stays in it. */
  private appendEntries(entries: readonly JournalAppendEntry[], single: boolean): Promise<AppendResult[] | AppendResult> {
    if (this.closing) return Promise.reject(this.closedError());
    if (this.encoding) return this.afterEncoding(() => this.appendEntries(entries, single));
    let group: AppendGroup | null = null;
    let start = 0;
    let entriesBefore = 0;
    this.encoding = true;
    try {
      group = this.groupFor(true, entries.length);
      start = group.bytes.pos;
      entriesBefore = group.entries;
      for (let i = 0; i < entries.length; i++) {
        const entryStart = group.bytes.pos;
        this.encodeEntry(group.bytes, entries[i]!, single ? -1 : i);
        pushLength(group, group.bytes.pos - entryStart);
      }
      const joined = this.joinGroup(group, entries.length, single);
      this.dispatchIfLarge(group);
      return joined;
    } catch (err) {
      if (group !== null) {
        group.bytes.pos = start;
        group.entries = entriesBefore;
      }
      return Promise.reject(toGraphstreamError(err));
    } finally {
      this.encoding = false;
      this.runAppendsDuringEncoding();
    }
  }

  /** An append made while another one encodes (from a params getter): it follows that one. */
  private afterEncoding(append: () => Promise<AppendResult[] | AppendResult>): Promise<AppendResult[] | AppendResult> {
    return new Promise((resolve) => this.appendsDuringEncoding.push(() => resolve(append())));
  }

  private runAppendsDuringEncoding(): void {
    while (this.appendsDuringEncoding.length > 0 && !this.encoding) this.appendsDuringEncoding.shift()!();
  }

  /** The open group, if it takes `count` more entries of this kind; otherwise a new one. */
  private groupFor(graphd: boolean, count: number): AppendGroup {
    const open = this.open;
    if (open !== null && open.graphd === graphd && open.entries + count <= MAX_GROUP_ENTRIES && open.bytes.pos < MAX_GROUP_BYTES) {
      return open;
    }
    this.closeOpenGroup();
    const group: AppendGroup = {
      kind: 'group',
      bytes: this.spareWriters.pop() ?? new WireWriter(),
      lengths: this.lengthsFor(count),
      entries: 0,
      graphd,
      ops: [],
    };
    group.bytes.reset();
    this.open = group;
    this.schedule();
    return group;
  }

  private joinGroup(group: AppendGroup, count: number, single: boolean): Promise<AppendResult[] | AppendResult> {
    return new Promise((resolve, reject) => group.ops.push({ count, single, resolve, reject }));
  }

  /**
   * Hands the open group to the core now rather than at the end of the tick once it is large:
   * the core writes it while this thread encodes the rest of the tick's appends. Otherwise a
   * tick of large appends (the continuations of a whole group's answers, say) would encode
   * everything first and then wait, idle, for one big write.
   */
  private dispatchIfLarge(group: AppendGroup): void {
    if (this.open !== group || (group.entries < EARLY_DISPATCH_ENTRIES && group.bytes.pos < EARLY_DISPATCH_BYTES)) return;
    this.closeOpenGroup();
    this.dispatch();
  }

  /** Checks `entry` and writes its payload (without the sequence, which the core stamps) at the end of `writer`. */
  private encodeEntry(writer: WireWriter, entry: JournalAppendEntry, index: number): void {
    const where = index >= 0 ? `entry ${index}` : 'entry';
    if (typeof entry !== 'object' || entry === null) throw invalid(`${where} must be { query, params?, timestampMs? }`);
    const start = writer.pos;
    try {
      writeJournalEntryFields(writer, entry.query, entry.params, undefined, entry.timestampMs ?? Date.now());
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

  private enqueueControl(kind: ControlOp['kind']): Promise<string | null> {
    if (this.closing) return Promise.reject(this.closedError());
    this.closeOpenGroup();
    return new Promise((resolve, reject) => {
      this.queue.push({ kind, resolve, reject });
      this.schedule();
    });
  }

  private closeOpenGroup(): void {
    const open = this.open;
    if (open === null) return;
    this.open = null;
    if (open.ops.length > 0) this.queue.push(open);
    else this.recycle(open);
  }

  private lengthsFor(count: number): Uint32Array {
    const spare = this.spareLengths.pop();
    return spare !== undefined && spare.length >= count ? spare : new Uint32Array(Math.max(count, 64));
  }

  /** Keeps a group's buffers for the next groups, once the core has copied them (or never got them). */
  private recycle(group: AppendGroup): void {
    this.spareWriters.push(group.bytes);
    if (group.lengths.length <= MAX_SPARE_LENGTHS) this.spareLengths.push(group.lengths);
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    // Wait for the rest of this tick: appends made in it join the same group. A reaction to a
    // settled promise is the same microtask queue as queueMicrotask, without the AsyncResource
    // Node makes for every queueMicrotask call (a quarter of a lone append's garbage).
    SETTLED.then(this.runScheduled);
  }

  private readonly runScheduled = (): void => {
    this.scheduled = false;
    this.closeOpenGroup();
    this.dispatch();
  };

  /** Hands queued work to the core in order, while fewer than MAX_GROUPS_IN_FLIGHT groups await their answer. */
  private dispatch(): void {
    while (this.queue.length > 0) {
      const head = this.queue[0]!;
      if (head.kind === 'group') {
        if (this.inFlight >= MAX_GROUPS_IN_FLIGHT) return;
        this.queue.shift();
        this.submitGroup(head);
      } else {
        this.queue.shift();
        void this.runControl(head);
      }
    }
  }

  private submitGroup(group: AppendGroup): void {
    this.groups++;
    let appended: AppendedBatch | Promise<AppendedBatch>;
    try {
      // the core copies the bytes before append returns, so the group's buffer is reused at once
      const payloads = { bytes: group.bytes.view(0, group.bytes.pos), lengths: group.lengths.subarray(0, group.entries) };
      // with nothing of this journal awaiting an answer, the core may append on this thread (no
      // thread hop there and back), and answers stay in call order
      appended = this.inFlight === 0 && this.writer.appendNow !== undefined ? this.writer.appendNow(payloads, group.graphd) : this.writer.append(payloads, group.graphd);
    } catch (err) {
      appended = Promise.reject(err as Error);
    }
    if (!isPromise(appended)) {
      this.recycle(group);
      this.appended += group.entries;
      settleGroup(group, appended);
      return;
    }
    this.inFlight++;
    this.recycle(group);
    appended.then(
      (batch) => {
        this.inFlight--;
        this.appended += group.entries;
        settleGroup(group, batch);
        this.dispatch();
      },
      (err: unknown) => {
        this.inFlight--;
        const error = toGraphstreamError(err, `appending to journal ${this.dir}`);
        for (const op of group.ops) op.reject(error);
        this.dispatch();
      },
    );
  }

  /** Runs a control request: the core takes it in call order, after the groups handed to it before. */
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

const SETTLED = Promise.resolve();

function isPromise<T>(value: T | Promise<T>): value is Promise<T> {
  return typeof (value as { then?: unknown }).then === 'function';
}

function pushLength(group: AppendGroup, length: number): void {
  if (group.entries === group.lengths.length) {
    const grown = new Uint32Array(group.lengths.length * 2);
    grown.set(group.lengths);
    group.lengths = grown;
  }
  group.lengths[group.entries++] = length;
}

/** Answers each append of a committed group with its share of the results. */
function settleGroup(group: AppendGroup, batch: AppendedBatch): void {
  const { firstSequence, chainHashes } = batch;
  let index = 0;
  for (const op of group.ops) {
    if (op.single) {
      const chainHash = chainHashes.length === HASH_SIZE ? chainHashes : chainHashes.subarray(index * HASH_SIZE, (index + 1) * HASH_SIZE);
      op.resolve({ sequence: firstSequence + index, chainHash });
      index++;
      continue;
    }
    const results = new Array<AppendResult>(op.count);
    for (let i = 0; i < results.length; i++, index++) {
      results[i] = { sequence: firstSequence + index, chainHash: chainHashes.subarray(index * HASH_SIZE, (index + 1) * HASH_SIZE) };
    }
    op.resolve(results);
  }
}
