/**
 * The pure twin of crate/src/writer.rs: a journal writer with group commit,
 * a bounded queue, rotation, sealing in the background (ts/pure/sealer.ts)
 * and a pid lock file. Node has no writer thread to offer, so the "thread" is
 * one async loop that owns the files; the semantics are the native ones.
 */
import { randomBytes } from 'node:crypto';
import { link, open, readFile, unlink, type FileHandle } from 'node:fs/promises';
import { join, resolve as resolvePath } from 'node:path';
import type { AppendedBatch, CoreWriter, Payloads, WriterOptions, WriterStart, WriterStats } from '../core/core.js';
import { syncDirectory, writeAll, writeFileSynced } from '../journal/durable-fs.js';
import { coreError, isCoreError } from '../core/core.js';
import { ioError } from './core-errors.js';
import { SegmentSealer } from './sealer.js';
import { segmentFileName } from '../format/format.js';
import { readHeadHint, writeHeadHint } from '../journal/head-hint.js';
import { copyPayloads } from '../core/packed.js';
import { ENTRY_HEADER_SIZE, FLAG_SEALED, HASH_SIZE, HEADER_SIZE, MAX_ENTRY_PAYLOAD_BYTES } from '../format/constants.js';
import { computeEntryHash, decodeHeader, encodeEntry, encodeHeader } from './format.js';

const LOCK_FILE = '.lock';

async function readExactly(handle: FileHandle, length: number, what: string): Promise<Buffer> {
  const out = Buffer.allocUnsafe(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await handle.read(out, done, length - done, done);
    if (bytesRead === 0) throw coreError('truncated', `${what}: expected ${length} bytes, the file ends at ${done}`);
    done += bytesRead;
  }
  return out;
}

// ---- the lock: an O_EXCL pid file (Node has no flock) ----------------------

/** Directories locked by pure writers of this process (a pid check cannot tell them apart). */
const lockedHere = new Set<string>();

function processIsAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * What a lock file says about its holder (the native writer's `LockHolder`):
 * `<pid>` alone (older writers, and systems without /proc) or
 * `<pid> <boot id> <start time>`, the boot id from
 * /proc/sys/kernel/random/boot_id and the start time from field 22 of
 * /proc/<pid>/stat (Linux). The last two tell the holder apart from a later
 * process that got the same pid, after a reboot or a pid wrap.
 */
interface LockHolder {
  pid: number;
  started?: { bootId: string; startTime: string };
}

function parseLockHolder(content: string): LockHolder | undefined {
  const [pidField, bootId, startTime] = content.trim().split(/\s+/);
  if (!pidField || !/^\d+$/.test(pidField)) return undefined;
  const pid = Number(pidField);
  if (pid <= 0 || pid > 0x7fff_ffff) return undefined;
  return bootId && startTime && /^\d+$/.test(startTime) ? { pid, started: { bootId, startTime } } : { pid };
}

async function bootId(): Promise<string | undefined> {
  const id = (await readFile('/proc/sys/kernel/random/boot_id', 'utf8').catch(() => '')).trim();
  return id && !/\s/.test(id) ? id : undefined;
}

/** Field 22 of /proc/<pid>/stat, counted after the command name (which may hold spaces and parentheses). */
function parseStartTime(stat: string): string | undefined {
  const field = stat.slice(stat.lastIndexOf(')') + 1).trim().split(/\s+/)[19];
  return stat.includes(')') && field && /^\d+$/.test(field) ? field : undefined;
}

async function processStartTime(pid: number): Promise<string | undefined> {
  return parseStartTime(await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => ''));
}

async function currentLockHolder(): Promise<LockHolder> {
  const [id, startTime] = await Promise.all([bootId(), processStartTime(process.pid)]);
  return id && startTime ? { pid: process.pid, started: { bootId: id, startTime } } : { pid: process.pid };
}

function lockContent(holder: LockHolder): string {
  return holder.started ? `${holder.pid} ${holder.started.bootId} ${holder.started.startTime}\n` : `${holder.pid}\n`;
}

/**
 * Whether the holder still runs: its pid is alive and, where the file records
 * them and /proc can tell, in this boot with the same start time.
 */
async function holderIsAlive(holder: LockHolder): Promise<boolean> {
  if (!processIsAlive(holder.pid)) return false;
  if (!holder.started) return true;
  const [id, startTime] = await Promise.all([bootId(), processStartTime(holder.pid)]);
  return (id === undefined || id === holder.started.bootId) && (startTime === undefined || startTime === holder.started.startTime);
}

/**
 * Creates `dir/.lock` naming this process (see LockHolder). The content is
 * written to a private file first and linked into place, so the lock file never
 * exists without it. A lock file whose holder is gone, unreadable, or this
 * process (but not held by a writer here) is stale and replaced. The content is
 * only a hint about a live process: the lock's directory entry is never
 * fsynced, so after a power loss the file may be missing or name the process
 * that died with the machine, whose pid another process may have by now.
 */
async function acquireLock(dir: string): Promise<string> {
  const lockPath = join(dir, LOCK_FILE);
  if (lockedHere.has(lockPath)) {
    throw coreError('locked', `journal directory ${dir} is already open by a writer in this process`);
  }
  const staging = join(dir, `${LOCK_FILE}.${process.pid}.${randomBytes(6).toString('hex')}`);
  try {
    await writeFileSynced(staging, Buffer.from(lockContent(await currentLockHolder())));
  } catch (err) {
    throw ioError(`creating lock file in ${dir}`, err);
  }
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        await link(staging, lockPath);
        lockedHere.add(lockPath);
        return lockPath;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) {
          throw (err as NodeJS.ErrnoException).code === 'EEXIST'
            ? coreError('locked', `journal directory ${dir} is locked (${lockPath} was re-created while opening)`)
            : ioError(`locking ${lockPath}`, err);
        }
      }
      const holder = parseLockHolder(await readFile(lockPath, 'utf8').catch(() => ''));
      if (holder && holder.pid !== process.pid && (await holderIsAlive(holder))) {
        throw coreError('locked', `journal directory ${dir} is locked by live process ${holder.pid} (${lockPath})`);
      }
      await unlink(lockPath).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw ioError(`removing stale lock ${lockPath}`, err);
      });
    }
  } finally {
    await unlink(staging).catch(() => undefined);
  }
}

async function releaseLock(lockPath: string): Promise<void> {
  lockedHere.delete(lockPath);
  await unlink(lockPath).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw ioError(`releasing lock ${lockPath}`, err);
  });
}

// ---- the writer ------------------------------------------------------------

/** Sequences are JavaScript numbers at the binding surface. */
const MAX_SEQUENCE = Number.MAX_SAFE_INTEGER;
/** most bytes `stampSequence` adds: a tag byte and a varint of up to 8 bytes (2^53) */
const SEQUENCE_STAMP_MAX = 9;

/** Protobuf field 1 (varint) holding `sequence`, which leads a graphd `JournalEntry`, then the rest of the message. */
function stampSequence(sequence: number, message: Uint8Array): Buffer {
  const stamped = Buffer.allocUnsafe(SEQUENCE_STAMP_MAX + message.length);
  stamped[0] = 0x08;
  let pos = 1;
  let value = sequence;
  while (value >= 0x80) {
    stamped[pos++] = (value % 0x80) | 0x80;
    value = Math.floor(value / 0x80);
  }
  stamped[pos++] = value;
  stamped.set(message, pos);
  return stamped.subarray(0, pos + message.length);
}

interface AppendOp {
  kind: 'append';
  payloads: readonly Uint8Array[];
  /** graphd entries without their sequence field: see `CoreWriter.append` */
  stampSequences: boolean;
  resolve(result: AppendedBatch): void;
  reject(err: Error): void;
}

interface ControlOp {
  kind: 'flush' | 'seal' | 'close' | 'sync';
  resolve(result: string | null): void;
  reject(err: Error): void;
}

type Op = AppendOp | ControlOp;

interface LiveSegment {
  path: string;
  handle: FileHandle;
  /** bytes written: header and entries */
  length: number;
  /** written but not yet fdatasynced */
  dirty: boolean;
  /** created since the directory was last fsynced: its name is not durable yet */
  newInDir: boolean;
}

/** The state a failing group rolls back to: every entry before it is durable or sealed. */
interface Checkpoint {
  nextSequence: number;
  chainHash: Buffer;
  liveLength: number;
}

/** One append of a group, encoded but not yet answered. */
interface PendingBatch {
  op: AppendOp;
  firstSequence: number;
  chainHashes: Buffer[];
}

function checkOptions(options: WriterOptions): void {
  const { maxSegmentBytes, level, durability, fsyncIntervalMs, queueCapacity } = options;
  if (!Number.isSafeInteger(maxSegmentBytes) || maxSegmentBytes <= HEADER_SIZE + ENTRY_HEADER_SIZE) {
    throw coreError('invalid_argument', `maxSegmentBytes must be an integer above ${HEADER_SIZE + ENTRY_HEADER_SIZE}, got ${String(maxSegmentBytes)}`);
  }
  if (!Number.isInteger(level) || level < 0 || level > 22) {
    throw coreError('invalid_argument', `level must be 0..22, got ${String(level)}`);
  }
  if (durability !== 'fsync' && durability !== 'interval' && durability !== 'none') {
    throw coreError('invalid_argument', `durability must be 'fsync', 'interval' or 'none', got ${String(durability)}`);
  }
  if (!Number.isSafeInteger(fsyncIntervalMs) || fsyncIntervalMs <= 0) {
    throw coreError('invalid_argument', `fsyncIntervalMs must be a positive integer, got ${String(fsyncIntervalMs)}`);
  }
  if (!Number.isSafeInteger(queueCapacity) || queueCapacity <= 0) {
    throw coreError('invalid_argument', `queueCapacity must be a positive integer, got ${String(queueCapacity)}`);
  }
}

function checkStart(start: WriterStart): void {
  if (!Number.isSafeInteger(start.sequence) || start.sequence < 0) {
    throw coreError('invalid_argument', `start.sequence must be a non-negative integer below 2^53, got ${String(start.sequence)}`);
  }
  if (!(start.chainHash instanceof Uint8Array) || start.chainHash.length !== HASH_SIZE) {
    throw coreError('invalid_argument', `start.chainHash must be ${HASH_SIZE} bytes`);
  }
  if (start.retiredSegments !== undefined && !(Array.isArray(start.retiredSegments) && start.retiredSegments.every((path) => typeof path === 'string'))) {
    throw coreError('invalid_argument', 'start.retiredSegments must be an array of paths');
  }
}

/** Opens an unsealed segment left by a previous writer (already truncated to its valid length) to continue it. */
async function resumeLive(path: string, sequence: number): Promise<LiveSegment> {
  let handle: FileHandle;
  try {
    handle = await open(path, 'r+');
  } catch (err) {
    throw ioError(`opening live segment ${path}`, err);
  }
  try {
    const { size } = await handle.stat();
    if (size < HEADER_SIZE) {
      throw coreError('truncated', `continuing live segment ${path}: ${size} bytes, shorter than a header`);
    }
    const header = decodeHeader(await readExactly(handle, HEADER_SIZE, `live segment ${path}`));
    const firstSeqFits = size === HEADER_SIZE ? header.firstSeq === sequence + 1 : header.firstSeq <= sequence;
    const sealed = (header.flags & FLAG_SEALED) !== 0;
    if (sealed || !firstSeqFits) {
      throw coreError(
        'invalid_segment',
        `continuing live segment ${path}: it is ${sealed ? 'sealed' : 'unsealed'} with first sequence ${header.firstSeq}, which cannot continue a journal at sequence ${sequence}`,
      );
    }
    return { path, handle, length: size, dirty: false, newInDir: false };
  } catch (err) {
    await handle.close().catch(() => undefined);
    throw ioError(`continuing live segment ${path}`, err);
  }
}

class PureWriter implements CoreWriter {
  /** published state: what the last group committed */
  private lastSequence: number;
  private lastChainHash: Buffer;
  /** working state of the writer loop */
  private nextSequence: number;
  private chain: Buffer;
  /** encoded entries not yet written to the live segment */
  private chunk: Buffer[] = [];
  private chunkBytes = 0;
  private readonly queue: Op[] = [];
  /** ops that arrived while the queue was full, admitted in call order */
  private readonly waiting: Op[] = [];
  private queuedAppends = 0;
  private draining = false;
  private syncTimer: NodeJS.Timeout | null = null;
  private lastSyncMs = Date.now();
  private failure: Error | null = null;
  private closing = false;
  private closed = false;
  private closePromise: Promise<void> | null = null;
  private readonly counters: WriterStats = { syncs: 0, batches: 0, segmentsSealed: 0 };
  /** file name of the newest segment this writer created, for the head hint */
  private newestSegment: string | null = null;
  private readonly sealer: SegmentSealer;

  constructor(
    private readonly dir: string,
    private readonly lockPath: string,
    start: WriterStart,
    private live: LiveSegment | null,
    private readonly options: WriterOptions,
  ) {
    this.lastSequence = start.sequence;
    this.lastChainHash = Buffer.from(start.chainHash);
    this.nextSequence = start.sequence + 1;
    this.chain = this.lastChainHash;
    this.sealer = new SegmentSealer(dir, options.level, () => this.counters.segmentsSealed++);
    for (const path of start.retiredSegments ?? []) this.sealer.retire(resolvePath(dir, path));
  }

  get sequence(): number {
    return this.lastSequence;
  }

  get chainHash(): Buffer {
    return Buffer.from(this.lastChainHash);
  }

  get alive(): boolean {
    return !this.closed && this.failure === null;
  }

  stats(): WriterStats {
    return { ...this.counters };
  }

  append(payloads: Payloads, stampSequences = false): Promise<AppendedBatch> {
    let copied: readonly Uint8Array[];
    try {
      copied = copyPayloads(payloads);
    } catch (err) {
      return Promise.reject(err as Error);
    }
    return new Promise((resolve, reject) => this.enqueue({ kind: 'append', payloads: copied, stampSequences, resolve, reject }));
  }

  sealForUpload(): Promise<string | null> {
    return new Promise((resolve, reject) => this.enqueue({ kind: 'seal', resolve, reject }));
  }

  async flush(): Promise<void> {
    await new Promise<string | null>((resolve, reject) => this.enqueue({ kind: 'flush', resolve, reject }));
  }

  close(): Promise<void> {
    if (this.closePromise === null) {
      const closed = new Promise<string | null>((resolve, reject) => this.enqueue({ kind: 'close', resolve, reject }));
      this.closing = true;
      this.closePromise = closed.then(() => undefined);
    }
    return this.closePromise;
  }

  private enqueue(op: Op): void {
    if (this.closing) {
      op.reject(coreError('closed', `journal writer for ${this.dir} is closed`));
      return;
    }
    if (this.waiting.length > 0 || (op.kind === 'append' && this.queuedAppends >= this.options.queueCapacity)) {
      this.waiting.push(op);
      return;
    }
    this.admit(op);
  }

  private admit(op: Op): void {
    if (op.kind === 'append') this.queuedAppends++;
    this.queue.push(op);
    if (!this.draining) {
      this.draining = true;
      void this.drain();
    }
  }

  private admitWaiting(): void {
    while (this.waiting.length > 0) {
      const next = this.waiting[0]!;
      if (next.kind === 'append' && this.queuedAppends >= this.options.queueCapacity) return;
      this.waiting.shift();
      this.admit(next);
    }
  }

  /** The writer loop: every queued append becomes one group; control requests run one at a time, in order. */
  private async drain(): Promise<void> {
    while (this.queue.length > 0) {
      const head = this.queue[0]!;
      if (head.kind === 'append') {
        const group: AppendOp[] = [];
        while (this.queue.length > 0 && this.queue[0]!.kind === 'append') group.push(this.queue.shift() as AppendOp);
        this.queuedAppends -= group.length;
        this.admitWaiting();
        await this.appendGroup(group);
        await this.syncIfDue();
      } else {
        this.queue.shift();
        this.admitWaiting();
        await this.runControl(head);
      }
    }
    this.draining = false;
  }

  private fail(err: Error): void {
    this.failure ??= err;
  }

  private checkpoint(): Checkpoint {
    return { nextSequence: this.nextSequence, chainHash: this.chain, liveLength: this.live?.length ?? HEADER_SIZE };
  }

  private checkBatch(payloads: readonly Uint8Array[], stamp: number): Error | null {
    if (payloads.length === 0) return coreError('invalid_argument', 'append needs at least one payload');
    const index = payloads.findIndex((payload) => payload.length + stamp > MAX_ENTRY_PAYLOAD_BYTES);
    if (index >= 0) {
      return coreError('too_large', `payload ${index} of the batch has ${payloads[index]!.length} bytes, over the ${MAX_ENTRY_PAYLOAD_BYTES}-byte entry limit`);
    }
    if (this.nextSequence - 1 + payloads.length > MAX_SEQUENCE) {
      return coreError('too_large', `appending ${payloads.length} entries after sequence ${this.nextSequence - 1} would pass 2^53-1`);
    }
    return null;
  }

  /** Whether an entry of `entryLength` bytes must go to a new segment. */
  private segmentFull(entryLength: number): boolean {
    if (this.live === null) return false;
    const used = this.live.length + this.chunkBytes;
    return used > HEADER_SIZE && used + entryLength > this.options.maxSegmentBytes;
  }

  /**
   * Encodes the group's batches in order and commits them with one write and
   * (durability 'fsync') one fdatasync, sealing and starting segments as they
   * fill. A failure rolls back to the last checkpoint and rejects exactly the
   * batches after it; the other batches of the group still go through.
   */
  private async appendGroup(group: AppendOp[]): Promise<void> {
    this.clearChunk();
    const pending: PendingBatch[] = [];
    // pending[0, safe) are wholly before the checkpoint (sealed)
    let safe = 0;
    let checkpoint = this.checkpoint();
    // while sealing fails with a full backlog, the segment grows past its limit
    let rotationBlocked = false;

    const rollBack = async (err: Error): Promise<void> => {
      this.clearChunk();
      this.nextSequence = checkpoint.nextSequence;
      this.chain = checkpoint.chainHash;
      const live = this.live;
      if (live !== null) {
        try {
          // no half-entry, and no rejected whole entry, may survive: cut back and make the cut durable
          await live.handle.truncate(checkpoint.liveLength);
          await live.handle.datasync();
        } catch (truncateErr) {
          const cause = ioError(`truncating ${live.path} after a failed write`, truncateErr);
          this.fail(coreError(isCoreError(err) ? err.code : 'io', `${err.message}; then ${cause.message}`, { cause: err }));
        }
        live.length = checkpoint.liveLength;
      }
      const first = pending[safe];
      if (this.failure === null && first !== undefined && first.firstSequence < checkpoint.nextSequence) {
        // part of this batch is already sealed: it can neither be completed nor withdrawn
        this.fail(err);
      }
      const error = this.failure ?? err;
      for (const batch of pending.splice(safe)) batch.op.reject(error);
    };

    batches: for (const op of group) {
      if (this.failure !== null) {
        op.reject(this.failure);
        continue;
      }
      const problem = this.checkBatch(op.payloads, op.stampSequences ? SEQUENCE_STAMP_MAX : 0);
      if (problem !== null) {
        op.reject(problem);
        continue;
      }
      const batch: PendingBatch = { op, firstSequence: this.nextSequence, chainHashes: [] };
      pending.push(batch);
      for (const message of op.payloads) {
        const payload = op.stampSequences ? stampSequence(this.nextSequence, message) : message;
        if (!rotationBlocked && this.segmentFull(ENTRY_HEADER_SIZE + payload.length)) {
          if (!(await this.sealer.makeRoom())) {
            rotationBlocked = true;
          } else {
            try {
              await this.writeChunk();
              await this.retireLive();
            } catch (err) {
              await rollBack(err as Error);
              continue batches;
            }
            checkpoint = this.checkpoint();
            safe = pending.length - 1;
          }
        }
        if (this.live === null) {
          try {
            await this.createSegment();
          } catch (err) {
            await rollBack(err as Error);
            continue batches;
          }
        }
        const entry = encodeEntry(this.nextSequence, this.chain, payload);
        this.chunk.push(entry);
        this.chunkBytes += entry.length;
        this.chain = computeEntryHash(this.chain, payload);
        this.nextSequence++;
        batch.chainHashes.push(this.chain);
      }
    }
    if (pending.length > safe) {
      try {
        await this.writeChunk();
        if (this.options.durability === 'fsync') await this.syncLive();
        this.counters.batches++;
      } catch (err) {
        await rollBack(err as Error);
      }
    }
    this.lastSequence = this.nextSequence - 1;
    this.lastChainHash = this.chain;
    for (const batch of pending) {
      batch.op.resolve({ firstSequence: batch.firstSequence, chainHashes: Buffer.concat(batch.chainHashes) });
    }
  }

  /** Writes the encoded entries at the end of the live segment (one write). */
  private async writeChunk(): Promise<void> {
    if (this.chunk.length === 0) return;
    const live = this.live;
    if (live === null) throw coreError('internal', 'encoded entries without a live segment');
    const bytes = this.chunk.length === 1 ? this.chunk[0]! : Buffer.concat(this.chunk);
    live.dirty = true;
    try {
      await writeAll(live.handle, bytes, live.length);
    } catch (err) {
      throw ioError(`writing to ${live.path} at offset ${live.length}`, err);
    }
    live.length += bytes.length;
    this.clearChunk();
  }

  private clearChunk(): void {
    this.chunk = [];
    this.chunkBytes = 0;
  }

  private async syncLive(): Promise<void> {
    const live = this.live;
    if (live === null || !live.dirty) return;
    try {
      // a file's first sync is a full fsync: its inode is new as well
      if (live.newInDir) await live.handle.sync();
      else await live.handle.datasync();
    } catch (err) {
      throw ioError(`fdatasync of ${live.path}`, err);
    }
    live.dirty = false;
    if (live.newInDir) {
      try {
        await syncDirectory(this.dir);
      } catch (err) {
        throw ioError(`fsync of directory ${this.dir}`, err);
      }
      live.newInDir = false;
    }
    this.lastSyncMs = Date.now();
    this.counters.syncs++;
  }

  /** 'interval': fdatasync once the interval since the last one has passed, now or by timer. */
  private async syncIfDue(): Promise<void> {
    if (this.options.durability !== 'interval' || this.failure !== null || this.live === null || !this.live.dirty) return;
    const dueIn = this.lastSyncMs + this.options.fsyncIntervalMs - Date.now();
    if (dueIn <= 0) {
      try {
        await this.syncLive();
      } catch (err) {
        // the entries were acknowledged already: their durability is now unknown
        this.fail(err as Error);
      }
      return;
    }
    if (this.syncTimer !== null) return;
    this.syncTimer = setTimeout(() => {
      this.syncTimer = null;
      if (!this.closing) this.admit({ kind: 'sync', resolve: () => undefined, reject: () => undefined });
    }, dueIn);
    this.syncTimer.unref();
  }

  /**
   * Creates the next unsealed segment and names it in the head hint; never
   * overwrites one. Its header and directory entry become durable with the
   * first sync of its entries (before any is acknowledged under 'fsync', and in
   * every mode before the segment retires), not at creation: a rotation costs
   * the appends behind it no extra fsync. Until then a power loss can leave the
   * name (made durable by the sealer's directory fsync) without the header: the
   * last segment, holding no entry, which recovery removes as the torn tail.
   */
  private async createSegment(): Promise<void> {
    const name = segmentFileName(this.nextSequence);
    const path = join(this.dir, name);
    let handle: FileHandle;
    try {
      handle = await open(path, 'wx+');
    } catch (err) {
      throw (err as NodeJS.ErrnoException).code === 'EEXIST'
        ? coreError('conflict', `segment file ${path} already exists; refusing to overwrite it`)
        : ioError(`creating segment ${path}`, err);
    }
    try {
      await writeAll(handle, encodeHeader({ firstSeq: this.nextSequence, createdMs: Date.now() }), 0);
    } catch (err) {
      await handle.close().catch(() => undefined);
      // best effort: a leftover header-only file would block the next attempt's name
      await unlink(path).catch(() => undefined);
      throw ioError(`writing segment ${path}`, err);
    }
    this.live = { path, handle, length: HEADER_SIZE, dirty: true, newInDir: true };
    // Until it has created one, the writer knows the segment before the new one from the hint
    // that recovery checked or rewrote (its head); recovery checks what this says too.
    let previous = this.newestSegment ?? (await readHeadHint(this.dir))?.segment ?? null;
    if (previous === name) previous = null;
    await writeHeadHint(this.dir, { segment: name, previous });
    this.newestSegment = name;
  }

  /**
   * Hands the live segment, if it has entries, to the sealer and returns its
   * path. Its entries, header and directory entry are made durable first, in
   * every durability mode (the sealer may take a while): only the live segment
   * then ever holds what a power loss can take, and what survives one is a
   * journal with a torn tail at most, never a segment that lost its end before
   * another segment (issue 21). On failure the segment stays live.
   */
  private async retireLive(): Promise<string | null> {
    const live = this.live;
    if (live === null || live.length <= HEADER_SIZE) return null;
    await this.syncLive();
    this.live = null;
    await live.handle.close().catch(() => undefined);
    this.sealer.retire(live.path);
    return live.path;
  }

  private async runControl(op: ControlOp): Promise<void> {
    try {
      switch (op.kind) {
        case 'sync':
          await this.syncIfDue();
          op.resolve(null);
          return;
        case 'flush':
          await this.flushLive();
          op.resolve(null);
          return;
        case 'seal': {
          if (this.failure !== null) throw this.failure;
          // Retiring is the writer's own step, done before the next group runs: a group must never
          // encode into a segment that is being retired. Only the wait for the sealer runs
          // beside the appends that follow.
          const path = await this.retireLive();
          this.sealer.whenSealed().then(() => op.resolve(path), op.reject);
          return;
        }
        case 'close':
          await this.shutDown();
          op.resolve(null);
          return;
      }
    } catch (err) {
      op.reject(err as Error);
    }
  }

  private async flushLive(): Promise<void> {
    if (this.failure !== null) throw this.failure;
    try {
      await this.syncLive();
    } catch (err) {
      if (this.options.durability !== 'fsync') this.fail(err as Error);
      throw err;
    }
  }

  /** The last work of close: seal the live segment (or at least make it durable), close files, release the lock. */
  private async shutDown(): Promise<void> {
    if (this.syncTimer !== null) {
      clearTimeout(this.syncTimer);
      this.syncTimer = null;
    }
    let error: Error | null = null;
    if (this.failure === null) {
      try {
        // durable first, whatever happens to sealing: an unsealed segment left behind is
        // continued (or sealed) by the next open
        await this.syncLive();
        await this.retireLive();
        await this.sealer.whenSealed();
      } catch (err) {
        error = err as Error;
      }
    }
    if (this.live !== null) {
      await this.live.handle.close().catch(() => undefined);
      this.live = null;
    }
    this.closed = true;
    try {
      await releaseLock(this.lockPath);
    } catch (err) {
      error ??= err as Error;
    }
    if (error !== null) throw error;
  }
}

/** `Core.openWriter` of the pure core. */
export async function openWriter(dir: string, start: WriterStart, options: WriterOptions): Promise<CoreWriter> {
  checkOptions(options);
  checkStart(start);
  const absoluteDir = resolvePath(dir);
  const lockPath = await acquireLock(absoluteDir);
  try {
    const live = start.liveSegment === null ? null : await resumeLive(resolvePath(absoluteDir, start.liveSegment), start.sequence);
    return new PureWriter(absoluteDir, lockPath, start, live, options);
  } catch (err) {
    await releaseLock(lockPath).catch(() => undefined);
    throw err;
  }
}
