//! The native journal writer (the `CoreWriter` of ts/core/core.ts): one dedicated thread per
//! journal directory, fed by a FIFO of requests in call order.
//!
//! The thread takes every queued append (up to `queue_capacity` batches) as one group,
//! encodes the entries (CRC + chain hash), writes them with one write and, under
//! `Durability::Fsync`, one `fdatasync`, and only then answers each batch. Rotation, when
//! the next entry would pass `max_segment_bytes`, hands the live segment to the sealer
//! thread (crate/src/sealer.rs: temp file + fsync + rename + directory fsync) and goes on
//! in a new segment; `seal_for_upload` and `close` answer once the sealer has caught up.
//!
//! Failure model: the writer keeps a checkpoint, the point up to which every entry is
//! either durable or sealed. A write, fsync or segment-creation error truncates the live
//! file back to the checkpoint and rejects exactly the batches after it; the writer stays
//! usable. When that is impossible (the truncation fails, an interval fsync fails after the
//! entries were acknowledged, or a batch has entries on both sides of the checkpoint), the
//! writer becomes not alive and rejects everything but `close` with that error.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use crate::error::{guard, Error, ErrorCode, Result};
use crate::format::{
    encode_entry_into, entry_hash, now_ms, Header, ENTRY_HEADER_SIZE, HEADER_SIZE,
};
use crate::sealer::Sealer;
use crate::segment::{segment_file_name, DEFAULT_MAX_BODY_BYTES};
use spare::Spare;

/// Sequences are JavaScript numbers at the binding surface: the writer never assigns one above 2^53-1.
pub const MAX_SEQUENCE: u64 = (1 << 53) - 1;

/// The largest payload one entry may carry, so that a segment holding it alone still decodes
/// under the default body ceiling.
pub const MAX_ENTRY_PAYLOAD: usize = DEFAULT_MAX_BODY_BYTES - ENTRY_HEADER_SIZE;

const LOCK_FILE: &str = ".lock";
/// Under 'none' and 'interval', the writer thread starts writeback of the live segment each
/// time this much was written since it last did (see `WriterLoop::start_writeback`).
const WRITEBACK_CHUNK: u64 = 1 << 20;
/// The largest group `Writer::append_now` appends on the calling thread: hashing and copying it
/// takes a few microseconds; a larger one goes to the writer thread.
const INLINE_MAX_BYTES: usize = 16 * 1024;
/// Under 'fsync', the live segment is kept written ahead of its entries: when a group passes the
/// end of the file, the writer writes zeros after it up to this many bytes further (never past
/// `max_segment_bytes`), synced with the group. Appends until then overwrite blocks that are
/// allocated and written, inside the file's size, so their fdatasync has no metadata to commit:
/// no ext4 journal commit, which would wait for whatever else that commit holds (a sealer's
/// temp file). See `WriterLoop::preallocate`.
const PREALLOCATE_STEP: u64 = 1 << 20;
const HEADER_LEN: u64 = HEADER_SIZE as u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// every append resolves after its bytes are written and fdatasynced
    Fsync,
    /// fdatasync at most every `fsync_interval` (and on flush, seal and close)
    Interval,
    /// fdatasync only at rotation, flush, seal and close
    None,
}

impl Durability {
    pub fn parse(name: &str) -> Result<Durability> {
        match name {
            "fsync" => Ok(Durability::Fsync),
            "interval" => Ok(Durability::Interval),
            "none" => Ok(Durability::None),
            other => Err(Error::new(
                ErrorCode::InvalidArgument,
                format!("durability must be 'fsync', 'interval' or 'none', got '{other}'"),
            )),
        }
    }
}

#[derive(Debug, Clone)]
pub struct WriterOptions {
    pub max_segment_bytes: u64,
    /// zstd level used when sealing, 0 for none
    pub level: i32,
    pub durability: Durability,
    pub fsync_interval: Duration,
    /// most append batches the writer thread takes into one group
    pub queue_capacity: usize,
}

impl WriterOptions {
    fn validate(&self) -> Result<()> {
        let invalid = |message: String| Err(Error::new(ErrorCode::InvalidArgument, message));
        if self.max_segment_bytes == 0 {
            return invalid("maxSegmentBytes must be positive".into());
        }
        if !(0..=22).contains(&self.level) {
            return invalid(format!(
                "compression level {} is outside 0 (none) ..= 22",
                self.level
            ));
        }
        if self.queue_capacity == 0 {
            return invalid("queueCapacity must be at least 1".into());
        }
        if self.durability == Durability::Interval && self.fsync_interval.is_zero() {
            return invalid("fsyncIntervalMs must be positive with durability 'interval'".into());
        }
        Ok(())
    }
}

/// Where a writer starts, as found by recovery.
#[derive(Debug, Clone)]
pub struct WriterStart {
    /// last sequence written (0 for a new journal)
    pub sequence: u64,
    /// chain hash after `sequence`
    pub chain_hash: [u8; 32],
    /// an unsealed segment (truncated to its valid length) to continue; relative paths are
    /// taken relative to the journal directory
    pub live_segment: Option<PathBuf>,
    /// complete unsealed segments before the live one (a crash while they waited for the
    /// sealer), oldest first: the writer seals them first
    pub retired_segments: Vec<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendedBatch {
    pub first_sequence: u64,
    /// chain hash after each appended entry, 32 bytes each
    pub chain_hashes: Vec<u8>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// fdatasync calls made on live segments (group commit makes this smaller than the appends)
    pub syncs: u64,
    /// groups of appends committed with one write
    pub batches: u64,
    pub segments_sealed: u64,
}

/// The payloads of one append, back to back in one buffer.
#[derive(Debug, Clone, Default)]
pub struct PayloadBatch {
    bytes: Vec<u8>,
    ends: Vec<usize>,
    /// the payloads are graphd `JournalEntry` messages without their `sequence` field: the
    /// writer puts it in front of each (see `stamp_sequence`) before framing and hashing
    stamp_sequences: bool,
}

/// Most bytes `stamp_sequence` adds: a tag byte and a varint of up to 8 bytes (2^53).
const SEQUENCE_STAMP_MAX: usize = 9;

/// Writes protobuf field 1 (varint) holding `sequence`, which leads a graphd `JournalEntry`
/// (fields are written in field-number order), then the rest of the message.
fn stamp_sequence(out: &mut Vec<u8>, sequence: u64, message: &[u8]) {
    out.clear();
    out.push(0x08);
    let mut value = sequence;
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
    out.extend_from_slice(message);
}

/// Where each payload of a packed group ends: payload i is the `lengths[i]` bytes after
/// payload i-1, and together they must cover exactly `total` bytes.
pub fn packed_ends(total: usize, lengths: &[u32]) -> Result<Vec<usize>> {
    let mut ends = Vec::with_capacity(lengths.len());
    let mut end = 0usize;
    for &length in lengths {
        end = end.saturating_add(length as usize);
        ends.push(end);
    }
    if end != total {
        return Err(Error::new(
            ErrorCode::InvalidArgument,
            format!("packed payload lengths add up to {end} bytes, but {total} bytes are given"),
        ));
    }
    Ok(ends)
}

/// The payloads of a packed group, as slices of `bytes` (see `packed_ends`).
pub fn split_packed<'a>(bytes: &'a [u8], lengths: &[u32]) -> Result<Vec<&'a [u8]>> {
    let ends = packed_ends(bytes.len(), lengths)?;
    let starts = std::iter::once(0).chain(ends.iter().copied());
    Ok(starts
        .zip(&ends)
        .map(|(start, &end)| &bytes[start..end])
        .collect())
}

impl PayloadBatch {
    /// A copy of packed payloads (see `packed_ends`).
    pub fn from_packed(bytes: &[u8], lengths: &[u32]) -> Result<PayloadBatch> {
        let ends = packed_ends(bytes.len(), lengths)?;
        Ok(PayloadBatch {
            bytes: bytes.to_vec(),
            ends,
            stamp_sequences: false,
        })
    }

    /// Marks the payloads as graphd entries that get their journal sequence as field 1.
    pub fn stamping_sequences(mut self) -> PayloadBatch {
        self.stamp_sequences = true;
        self
    }

    pub fn push(&mut self, payload: &[u8]) {
        self.bytes.extend_from_slice(payload);
        self.ends.push(self.bytes.len());
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(self.ends.iter())
            .map(|(start, &end)| &self.bytes[start..end])
    }

    /// The entry payload `payload` becomes at `sequence`: itself, or (with `stamp_sequences`) a
    /// copy in `stamped` with the sequence in front.
    fn entry_payload<'a>(
        &self,
        stamped: &'a mut Vec<u8>,
        sequence: u64,
        payload: &'a [u8],
    ) -> &'a [u8] {
        if self.stamp_sequences {
            stamp_sequence(stamped, sequence, payload);
            stamped
        } else {
            payload
        }
    }
}

impl<P: AsRef<[u8]>> FromIterator<P> for PayloadBatch {
    fn from_iter<I: IntoIterator<Item = P>>(payloads: I) -> PayloadBatch {
        let mut batch = PayloadBatch::default();
        for payload in payloads {
            batch.push(payload.as_ref());
        }
        batch
    }
}

/// How the writer answers a request: a callback, run on the writer thread (or on the
/// caller's, for a request the thread will never see). A reply dropped unanswered (the
/// thread panicked while holding it) answers with an internal error, so nobody waits forever.
pub struct Reply<T> {
    answer: Option<Box<dyn FnOnce(Result<T>) + Send>>,
    shared: Weak<Shared>,
}

impl<T> Reply<T> {
    fn new(shared: &Arc<Shared>, answer: impl FnOnce(Result<T>) + Send + 'static) -> Reply<T> {
        Reply {
            answer: Some(Box::new(answer)),
            shared: Arc::downgrade(shared),
        }
    }

    fn send(mut self, result: Result<T>) {
        if let Some(answer) = self.answer.take() {
            answer(result);
        }
    }
}

impl<T> Drop for Reply<T> {
    fn drop(&mut self) {
        if let Some(answer) = self.answer.take() {
            let dir = match self.shared.upgrade() {
                Some(shared) => shared.dir.display().to_string(),
                None => "a journal".to_string(),
            };
            answer(Err(Error::new(
                ErrorCode::Internal,
                format!("journal writer thread for {dir} stopped while handling this request"),
            )));
        }
    }
}

enum Request {
    Append(PayloadBatch, Reply<AppendedBatch>),
    Flush(Reply<()>),
    Seal(Reply<Option<PathBuf>>),
    /// `None` when the handle was dropped without close
    Close(Option<Reply<()>>),
}

impl Request {
    /// Answers a request the writer thread will never see.
    fn settle_stopped(self, err: &Error) {
        match self {
            Request::Append(_, reply) => reply.send(Err(err.clone())),
            Request::Flush(reply) => reply.send(Err(err.clone())),
            Request::Seal(reply) => reply.send(Err(err.clone())),
            Request::Close(reply) => {
                if let Some(reply) = reply {
                    reply.send(Ok(()));
                }
            }
        }
    }
}

struct Queue {
    requests: VecDeque<Request>,
    /// the writer thread has taken a request (or a due sync) and not finished it yet
    in_progress: bool,
    /// the writer thread waits on `wake` (a submit wakes it only then)
    parked: bool,
    /// an append made on the caller's thread gave the thread something to do: compute its
    /// interval fsync deadline again (the segment was clean), or start writeback
    recheck: bool,
    /// close() was called: further appends are refused
    closing: bool,
    /// the thread has exited; every request is answered with this error (close with Ok)
    stopped: Option<Error>,
}

pub(crate) struct Shared {
    pub(crate) dir: PathBuf,
    queue: Mutex<Queue>,
    wake: Condvar,
    sequence: AtomicU64,
    chain_hash: Mutex<[u8; 32]>,
    alive: AtomicBool,
    syncs: AtomicU64,
    batches: AtomicU64,
    pub(crate) segments_sealed: AtomicU64,
    #[cfg(test)]
    panic_in_next_group: AtomicBool,
    /// keeps idle-class seals from starting, as a machine that is never idle would
    #[cfg(test)]
    pub(crate) hold_idle_seals: AtomicBool,
}

/// Locks a mutex, ignoring poisoning: every critical section leaves its data consistent.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    pub(crate) fn closed_error(&self) -> Error {
        Error::new(
            ErrorCode::Closed,
            format!("journal writer for {} is closed", self.dir.display()),
        )
    }

    fn submit(&self, request: Request) {
        let mut queue = lock(&self.queue);
        if let Some(err) = &queue.stopped {
            let err = err.clone();
            drop(queue);
            request.settle_stopped(&err);
            return;
        }
        match request {
            Request::Append(_, reply) if queue.closing => {
                drop(queue);
                reply.send(Err(self.closed_error()));
                return;
            }
            Request::Close(_) => queue.closing = true,
            _ => {}
        }
        queue.requests.push_back(request);
        let parked = queue.parked;
        drop(queue);
        if parked {
            self.wake.notify_one();
        }
    }

    /// Marks the work `next_work` returned as finished.
    fn work_done(&self) {
        lock(&self.queue).in_progress = false;
    }

    /// Blocks until there is work: a group of appends, one control request, or the
    /// interval fsync falling due at `sync_at`. (Spinning up to 50 µs before parking was
    /// measured and dropped: a caller awaiting each 'fsync' append came back later than that,
    /// and the spin cost 0.4 µs of CPU per append at c=256; BENCHMARKS.md, issue 15.)
    fn next_work(&self, sync_at: Option<Instant>, capacity: usize) -> Work {
        let mut queue = lock(&self.queue);
        loop {
            if queue.recheck {
                queue.recheck = false;
                return Work::Recheck;
            }
            let work = self.take_work(&mut queue, capacity);
            if let Some(work) = work {
                queue.in_progress = true;
                return work;
            }
            queue.parked = true;
            queue = match sync_at {
                None => self
                    .wake
                    .wait(queue)
                    .unwrap_or_else(|poisoned| poisoned.into_inner()),
                Some(at) => {
                    let now = Instant::now();
                    if now >= at {
                        queue.parked = false;
                        queue.in_progress = true;
                        return Work::SyncDue;
                    }
                    self.wake
                        .wait_timeout(queue, at - now)
                        .map(|(guard, _)| guard)
                        .unwrap_or_else(|poisoned| poisoned.into_inner().0)
                }
            };
            queue.parked = false;
        }
    }

    /// Takes a group of appends or one control request off the queue.
    fn take_work(&self, queue: &mut Queue, capacity: usize) -> Option<Work> {
        let work = {
            match queue.requests.pop_front() {
                Some(Request::Append(payloads, reply)) => {
                    let mut group = vec![(payloads, reply)];
                    while group.len() < capacity
                        && matches!(queue.requests.front(), Some(Request::Append(..)))
                    {
                        if let Some(Request::Append(payloads, reply)) = queue.requests.pop_front() {
                            group.push((payloads, reply));
                        }
                    }
                    Some(Work::Appends(group))
                }
                Some(Request::Flush(reply)) => Some(Work::Flush(reply)),
                Some(Request::Seal(reply)) => Some(Work::Seal(reply)),
                Some(Request::Close(reply)) => Some(Work::Close(reply)),
                None => None,
            }
        };
        work
    }

    /// Marks the thread gone and answers everything still queued with `err`.
    fn stop(&self, err: Error) {
        self.alive.store(false, Ordering::Release);
        let orphans: Vec<Request> = {
            let mut queue = lock(&self.queue);
            queue.stopped = Some(err.clone());
            queue.requests.drain(..).collect()
        };
        for request in orphans {
            request.settle_stopped(&err);
        }
    }

    fn publish(&self, sequence: u64, chain_hash: [u8; 32]) {
        *lock(&self.chain_hash) = chain_hash;
        self.sequence.store(sequence, Ordering::Release);
    }
}

enum Work {
    Appends(Vec<(PayloadBatch, Reply<AppendedBatch>)>),
    Flush(Reply<()>),
    Seal(Reply<Option<PathBuf>>),
    Close(Option<Reply<()>>),
    SyncDue,
    /// compute the interval fsync deadline again and start due writeback (see `Queue::recheck`)
    Recheck,
}

/// A handle on a journal writer. Methods enqueue synchronously, in call order, and return
/// futures that resolve when the writer thread has handled the request. Dropping the
/// handle closes the writer in the background.
pub struct Writer {
    shared: Arc<Shared>,
    /// the writer thread's state (None once it closed)
    state: Arc<Mutex<Option<WriterLoop>>>,
}

/// What `Writer::append_now` did with a batch.
pub enum AppendNow {
    /// written on the calling thread: durable per the durability (which is not `Fsync`)
    Done(AppendedBatch),
    /// not appended: hand it to `Writer::append`
    Queue(PayloadBatch),
}

impl Writer {
    /// Locks `dir` and starts the writer thread from `start`. Blocking: call it off the JS thread.
    pub fn open(dir: &Path, start: WriterStart, options: WriterOptions) -> Result<Writer> {
        options.validate()?;
        if start.sequence > MAX_SEQUENCE {
            return Err(Error::new(
                ErrorCode::InvalidArgument,
                format!("start sequence {} is above 2^53-1", start.sequence),
            ));
        }
        let lock_file = lock_directory(dir)?;
        let live = match &start.live_segment {
            Some(path) => Some(Live::resume(dir.join(path), start.sequence)?),
            None => None,
        };
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            queue: Mutex::new(Queue {
                requests: VecDeque::new(),
                in_progress: false,
                parked: false,
                recheck: false,
                closing: false,
                stopped: None,
            }),
            wake: Condvar::new(),
            sequence: AtomicU64::new(start.sequence),
            chain_hash: Mutex::new(start.chain_hash),
            alive: AtomicBool::new(true),
            syncs: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            segments_sealed: AtomicU64::new(0),
            #[cfg(test)]
            panic_in_next_group: AtomicBool::new(false),
            #[cfg(test)]
            hold_idle_seals: AtomicBool::new(false),
        });
        let sealer = Sealer::start(Arc::clone(&shared), options.level)?;
        for path in &start.retired_segments {
            sealer.retire(dir.join(path));
        }
        let writer_loop = WriterLoop {
            shared: Arc::clone(&shared),
            dir: dir.to_path_buf(),
            options,
            sealer,
            spare: None,
            spare_requested: false,
            _lock: lock_file,
            live,
            next_seq: start.sequence + 1,
            chain: start.chain_hash,
            failed: None,
            last_sync: Instant::now(),
            chunk: Vec::new(),
            newest_segment: None,
            head_hint_due: None,
            zeros: None,
        };
        let capacity = writer_loop.options.queue_capacity;
        let state = Arc::new(Mutex::new(Some(writer_loop)));
        let thread_state = Arc::clone(&state);
        let thread_shared = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("graphstream-writer".into())
            .spawn(move || {
                if let Err(err) = guard(|| {
                    WriterLoop::run(&thread_state, &thread_shared, capacity);
                    Ok(())
                }) {
                    // the state of a thread that panicked is not to be trusted: drop it (which
                    // releases the files and the lock) before the error is published
                    drop(lock(&thread_state).take());
                    thread_shared.stop(err.context(format!(
                        "journal writer thread for {}",
                        thread_shared.dir.display()
                    )));
                }
            })
            .map_err(|err| Error::io("starting the journal writer thread", err))?;
        Ok(Writer { shared, state })
    }

    /// Appends the payloads on the calling thread, when that costs no more than encoding them
    /// (at most `INLINE_MAX_BYTES`) and one write into the page cache: under `Durability::None`
    /// or `Interval` (an append
    /// then only has to reach the OS), with nothing queued or in progress on the writer thread
    /// (so call order holds), and when they fit the live segment (a rotation syncs, which is
    /// the thread's work). Otherwise, or if the write fails, nothing is appended and the batch
    /// comes back to be queued with `append`. An error only reports a panic while appending,
    /// after which the writer has failed.
    pub fn append_now(&self, payloads: PayloadBatch) -> Result<AppendNow> {
        let queue = lock(&self.shared.queue);
        if queue.stopped.is_some()
            || queue.closing
            || queue.in_progress
            || !queue.requests.is_empty()
        {
            return Ok(AppendNow::Queue(payloads));
        }
        // the thread may hold the state for a moment (reading its fsync deadline): never wait
        let Ok(mut state) = self.state.try_lock() else {
            return Ok(AppendNow::Queue(payloads));
        };
        drop(queue);
        let Some(writer) = state.as_mut() else {
            return Ok(AppendNow::Queue(payloads));
        };
        let was_clean = writer.live.as_ref().is_some_and(|live| !live.dirty);
        let interval = writer.options.durability == Durability::Interval;
        let appended = guard(|| Ok(writer.append_inline(payloads)));
        let writeback_due = writer.writeback_due();
        let appended = match appended {
            Ok(appended) => appended,
            Err(err) => {
                let err = err.context("appending on the calling thread");
                writer.fail(err.clone());
                return Err(err);
            }
        };
        drop(state);
        match appended {
            Ok(batch) => {
                if (interval && was_clean) || writeback_due {
                    // the thread waits without a deadline (it must learn that one is due), or
                    // has writeback to start, which can block: not on this thread
                    let mut queue = lock(&self.shared.queue);
                    queue.recheck = true;
                    let parked = queue.parked;
                    drop(queue);
                    if parked {
                        self.shared.wake.notify_one();
                    }
                }
                Ok(AppendNow::Done(batch))
            }
            Err(payloads) => Ok(AppendNow::Queue(payloads)),
        }
    }

    /// Appends the payloads as consecutive entries; `answer` hears once they are durable
    /// per the durability.
    pub fn append(
        &self,
        payloads: PayloadBatch,
        answer: impl FnOnce(Result<AppendedBatch>) + Send + 'static,
    ) {
        self.shared
            .submit(Request::Append(payloads, Reply::new(&self.shared, answer)));
    }

    /// Writes and fsyncs everything appended before this call.
    pub fn flush(&self, answer: impl FnOnce(Result<()>) + Send + 'static) {
        self.shared
            .submit(Request::Flush(Reply::new(&self.shared, answer)));
    }

    /// Seals the live segment if it has entries; answers with the sealed file's path, or None.
    pub fn seal_for_upload(&self, answer: impl FnOnce(Result<Option<PathBuf>>) + Send + 'static) {
        self.shared
            .submit(Request::Seal(Reply::new(&self.shared, answer)));
    }

    /// Handles everything queued before it, seals the live segment, stops the thread and
    /// releases the lock. Idempotent; appends after it fail with `closed`.
    pub fn close(&self, answer: impl FnOnce(Result<()>) + Send + 'static) {
        self.shared
            .submit(Request::Close(Some(Reply::new(&self.shared, answer))));
    }

    /// Last sequence acknowledged.
    pub fn sequence(&self) -> u64 {
        self.shared.sequence.load(Ordering::Acquire)
    }

    /// Chain hash after `sequence()`.
    pub fn chain_hash(&self) -> [u8; 32] {
        *lock(&self.shared.chain_hash)
    }

    /// False once closed or failed.
    pub fn alive(&self) -> bool {
        self.shared.alive.load(Ordering::Acquire)
    }

    pub fn stats(&self) -> WriterStats {
        WriterStats {
            syncs: self.shared.syncs.load(Ordering::Relaxed),
            batches: self.shared.batches.load(Ordering::Relaxed),
            segments_sealed: self.shared.segments_sealed.load(Ordering::Relaxed),
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.shared.submit(Request::Close(None));
    }
}

/// The lock on a journal directory: an advisory lock on `dir/.lock` (flock on Unix, which
/// the OS releases when the process dies) plus this process's identity written into the file
/// (a [`LockHolder`]). The identity is how the pure twin, which has no flock in Node, sees a
/// live native holder, and how a native writer sees a live pure one. It is cleared when the
/// lock is dropped. It is only a hint about a live process, never fsynced: after a power loss
/// the file may be missing, empty or name the process that died with the machine, whose pid
/// another process may have by now.
struct DirectoryLock {
    file: File,
}

impl Drop for DirectoryLock {
    fn drop(&mut self) {
        let _ = self.file.set_len(0);
    }
}

#[cfg(unix)]
fn process_alive(pid: i32) -> bool {
    // SAFETY: kill with signal 0 only checks whether the process exists.
    let result = unsafe { libc::kill(pid, 0) };
    result == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[cfg(not(unix))]
fn process_alive(_pid: i32) -> bool {
    false
}

/// What a lock file says about its holder: `<pid>` alone (older writers, and systems without
/// /proc) or `<pid> <boot id> <start time>`, the boot id from /proc/sys/kernel/random/boot_id
/// and the start time from field 22 of /proc/<pid>/stat (Linux). The last two tell the holder
/// apart from a later process that got the same pid, after a reboot or a pid wrap.
#[derive(Debug, PartialEq)]
struct LockHolder {
    pid: i32,
    started: Option<(String, u64)>,
}

impl LockHolder {
    fn parse(content: &str) -> Option<LockHolder> {
        let mut fields = content.split_whitespace();
        let pid = fields.next()?.parse::<i32>().ok().filter(|pid| *pid > 0)?;
        let started = match (fields.next(), fields.next().map(str::parse::<u64>)) {
            (Some(boot_id), Some(Ok(start_time))) => Some((boot_id.to_string(), start_time)),
            _ => None,
        };
        Some(LockHolder { pid, started })
    }

    fn current() -> LockHolder {
        let pid = std::process::id() as i32;
        let started = boot_id().zip(process_start_time(pid));
        LockHolder { pid, started }
    }

    fn to_content(&self) -> String {
        match &self.started {
            Some((boot_id, start_time)) => format!("{} {boot_id} {start_time}\n", self.pid),
            None => format!("{}\n", self.pid),
        }
    }

    /// Whether the holder still runs: its pid is alive and, where the file records them and
    /// /proc can tell, in this boot with the same start time.
    fn alive(&self) -> bool {
        if !process_alive(self.pid) {
            return false;
        }
        let Some((boot, start_time)) = &self.started else {
            return true;
        };
        boot_id().is_none_or(|current| current == *boot)
            && process_start_time(self.pid).is_none_or(|current| current == *start_time)
    }
}

fn boot_id() -> Option<String> {
    let id = fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    Some(id.trim().to_string()).filter(|id| !id.is_empty() && !id.contains(char::is_whitespace))
}

fn process_start_time(pid: i32) -> Option<u64> {
    parse_start_time(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Field 22 of a /proc/<pid>/stat line. Field 2 is the command name in parentheses, which may
/// itself hold spaces and parentheses, so fields are counted from the last `)`.
fn parse_start_time(stat: &str) -> Option<u64> {
    let (_, after_name) = stat.rsplit_once(')')?;
    after_name.split_whitespace().nth(19)?.parse().ok()
}

fn lock_directory(dir: &Path) -> Result<DirectoryLock> {
    let path = dir.join(LOCK_FILE);
    let locked_by = |holder: String| {
        Error::new(
            ErrorCode::Locked,
            format!(
                "journal directory {} is locked by {holder} ({})",
                dir.display(),
                path.display()
            ),
        )
    };
    let io = |what: &str, err| Error::io(&format!("{what} {}", path.display()), err);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|err| io("opening lock file", err))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => return Err(locked_by("another writer".into())),
        Err(fs::TryLockError::Error(err)) => return Err(io("locking", err)),
    }
    let mut content = String::new();
    file.read_to_string(&mut content)
        .map_err(|err| io("reading lock file", err))?;
    let own = LockHolder::current();
    if let Some(holder) = LockHolder::parse(&content) {
        if holder.pid != own.pid && holder.alive() {
            return Err(locked_by(format!("live process {}", holder.pid)));
        }
    }
    file.set_len(0)
        .and_then(|()| file.seek(SeekFrom::Start(0)))
        .and_then(|_| file.write_all(own.to_content().as_bytes()))
        .map_err(|err| io("writing pid to lock file", err))?;
    Ok(DirectoryLock { file })
}

/// One positioned write (pwrite on Unix: no seek before it).
fn write_at(file: &mut File, bytes: &[u8], offset: u64) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileExt;
        file.write_all_at(bytes, offset)
    }
    #[cfg(not(unix))]
    {
        file.seek(SeekFrom::Start(offset))?;
        file.write_all(bytes)
    }
}

pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)
            .and_then(|handle| handle.sync_all())
            .map_err(|err| Error::io(&format!("fsync of directory {}", dir.display()), err))
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// The unsealed segment being appended to.
struct Live {
    file: File,
    path: PathBuf,
    /// bytes written (header + entries)
    len: u64,
    /// written but not yet fdatasynced
    dirty: bool,
    /// created since the directory was last fsynced: its name is not durable yet
    new_in_dir: bool,
    /// writeback was started (or a sync made durable) up to here
    written_back: u64,
    /// the file's size: bytes `len..allocated` are zeros written ahead of the entries (see
    /// `PREALLOCATE_STEP`), which a crash leaves as a torn tail and a retirement cuts
    allocated: u64,
    /// writing zeros ahead failed (a full disk): this segment grows the plain way
    preallocation_failed: bool,
}

impl Live {
    /// A segment just created with its header (and `allocated` bytes in all), its name not yet durable.
    fn created(file: File, path: PathBuf, allocated: u64) -> Live {
        Live {
            file,
            path,
            len: HEADER_LEN,
            dirty: true,
            new_in_dir: true,
            written_back: 0,
            allocated,
            preallocation_failed: false,
        }
    }

    fn has_entries(&self) -> bool {
        self.len > HEADER_LEN
    }

    /// Opens an unsealed segment left by a previous writer to continue appending to it.
    fn resume(path: PathBuf, sequence: u64) -> Result<Live> {
        let what = |action: &str| format!("{action} live segment {}", path.display());
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|err| Error::io(&what("opening"), err))?;
        let len = file
            .metadata()
            .map_err(|err| Error::io(&what("reading the size of"), err))?
            .len();
        if len < HEADER_LEN {
            return Err(Error::new(
                ErrorCode::Truncated,
                format!("{}: {len} bytes, shorter than a header", what("continuing")),
            ));
        }
        let mut header = [0u8; HEADER_SIZE];
        file.read_exact(&mut header)
            .map_err(|err| Error::io(&what("reading the header of"), err))?;
        let header = Header::decode(&header).map_err(|err| err.context(what("continuing")))?;
        let first_seq_fits = if len == HEADER_LEN {
            header.first_seq == sequence + 1
        } else {
            header.first_seq <= sequence
        };
        if header.is_sealed() || !first_seq_fits {
            return Err(Error::new(
                ErrorCode::InvalidSegment,
                format!(
                    "{}: it is {} with first sequence {}, which cannot continue a journal at sequence {sequence}",
                    what("continuing"),
                    if header.is_sealed() { "sealed" } else { "unsealed" },
                    header.first_seq
                ),
            ));
        }
        Ok(Live {
            file,
            path,
            len,
            dirty: false,
            new_in_dir: false,
            written_back: len,
            allocated: len,
            preallocation_failed: false,
        })
    }
}

/// `head.json` in the journal directory names the newest segment and the one before it, so
/// that recovery (ts/journal/recovery.ts, format in ts/journal/head-hint.ts) need not list the directory.
const HEAD_HINT: &str = "head.json";
const HEAD_HINT_TEMP: &str = "head.json.tmp";

/// The newest segment the head hint names, if there is a readable hint.
fn hinted_segment(dir: &Path) -> Option<String> {
    let hint: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.join(HEAD_HINT)).ok()?).ok()?;
    hint.get("segment")?.as_str().map(str::to_owned)
}

/// Rewrites the head hint. Only a hint, which recovery checks before it relies on it: temp
/// file + rename without fsync, and a failure is ignored (recovery then lists the directory).
fn write_head_hint(dir: &Path, segment: &str, previous: Option<&str>) {
    let hint = format!(
        "{{\"segment\":{},\"previous\":{}}}\n",
        serde_json::Value::from(segment),
        serde_json::Value::from(previous)
    );
    let temp = dir.join(HEAD_HINT_TEMP);
    if fs::write(&temp, hint)
        .and_then(|()| fs::rename(&temp, dir.join(HEAD_HINT)))
        .is_err()
    {
        let _ = fs::remove_file(&temp);
    }
}

/// The state a failing group rolls back to: every entry before it is durable or sealed.
#[derive(Clone, Copy)]
struct Checkpoint {
    next_seq: u64,
    chain: [u8; 32],
    live_len: u64,
}

/// One append of a group, encoded but not yet answered.
struct Pending {
    reply: Reply<AppendedBatch>,
    first_sequence: u64,
    chain_hashes: Vec<u8>,
}

/// The batches of one group, and which of them a failure may no longer touch.
struct Group {
    pending: Vec<Pending>,
    /// `pending[..safe]` are wholly before the checkpoint
    safe: usize,
    checkpoint: Checkpoint,
}

impl Group {
    /// `pending[safe]` has entries before the checkpoint (a batch split by a rotation).
    fn straddles(&self) -> bool {
        self.pending
            .get(self.safe)
            .is_some_and(|batch| batch.first_sequence < self.checkpoint.next_seq)
    }
}

/// The writer thread: its state and the loop that takes work from the queue. Only the thread
/// touches it.
struct WriterLoop {
    shared: Arc<Shared>,
    dir: PathBuf,
    options: WriterOptions,
    /// declared before the lock: dropping the writer stops the sealer before the lock goes
    sealer: Sealer,
    /// the next segment prepared ahead, under 'fsync', started when first needed: a writer that
    /// appends nothing (Journal.open's guard during recovery) touches no file (declared before
    /// the lock, like the sealer)
    spare: Option<Spare>,
    /// a spare was asked for since the live segment was created
    spare_requested: bool,
    _lock: DirectoryLock,
    live: Option<Live>,
    /// next sequence to assign, and the chain hash it continues
    next_seq: u64,
    chain: [u8; 32],
    failed: Option<Error>,
    last_sync: Instant,
    /// encoded entries not yet written to the live segment
    chunk: Vec<u8>,
    /// file name of the newest segment this writer created, for the head hint
    newest_segment: Option<String>,
    /// the head hint of a segment just created, written once its group is answered
    head_hint_due: Option<(String, Option<String>)>,
    /// `PREALLOCATE_STEP` zero bytes, allocated the first time the writer preallocates
    zeros: Option<Vec<u8>>,
}

impl WriterLoop {
    /// The thread's loop. The state sits behind a mutex so that `Writer::append_now` can use it
    /// on the caller's thread while the thread has nothing to do; the thread holds it while it
    /// handles a request.
    fn run(state: &Mutex<Option<WriterLoop>>, shared: &Shared, capacity: usize) {
        loop {
            let sync_at = match lock(state).as_ref() {
                Some(writer) => writer.interval_sync_at(),
                None => return,
            };
            let work = shared.next_work(sync_at, capacity);
            let mut guard = lock(state);
            let Some(writer) = guard.as_mut() else {
                return;
            };
            match work {
                Work::Appends(group) => {
                    writer.append_group(group);
                    writer.sync_if_due();
                    writer.start_writeback();
                }
                Work::SyncDue => writer.sync_if_due(),
                Work::Recheck => writer.start_writeback(),
                Work::Flush(reply) => reply.send(writer.flush()),
                Work::Seal(reply) => writer.seal_for_upload(reply),
                Work::Close(reply) => {
                    let Some(mut writer) = guard.take() else {
                        return;
                    };
                    drop(guard);
                    let result = writer.finish();
                    let closed = shared.closed_error();
                    // release the files and the lock before anyone hears that close is done
                    drop(writer);
                    shared.stop(closed);
                    if let Some(reply) = reply {
                        reply.send(result);
                    }
                    return;
                }
            }
            drop(guard);
            shared.work_done();
        }
    }

    /// `Writer::append_now` on the thread's state: encodes and writes the batch if it fits
    /// the live segment, or hands it back for the writer thread (see there).
    fn append_inline(
        &mut self,
        payloads: PayloadBatch,
    ) -> std::result::Result<AppendedBatch, PayloadBatch> {
        if self.failed.is_some()
            || self.options.durability == Durability::Fsync
            || payloads.bytes.len() > INLINE_MAX_BYTES
            || self.check_batch(&payloads).is_err()
        {
            return Err(payloads);
        }
        if self.live.is_none() {
            return Err(payloads);
        }
        let first_sequence = self.next_seq;
        let chain_before = self.chain;
        let mut chain_hashes = Vec::with_capacity(32 * payloads.len());
        let mut stamped = Vec::new();
        self.chunk.clear();
        let mut fits = true;
        for payload in payloads.iter() {
            let payload = payloads.entry_payload(&mut stamped, self.next_seq, payload);
            // a rotation syncs the segment: that is the writer thread's work
            if self.segment_full((ENTRY_HEADER_SIZE + payload.len()) as u64) {
                fits = false;
                break;
            }
            encode_entry_into(&mut self.chunk, self.next_seq, &self.chain, payload);
            self.chain = entry_hash(&self.chain, payload);
            self.next_seq += 1;
            chain_hashes.extend_from_slice(&self.chain);
        }
        if !fits || self.write_chunk().is_err() {
            // nothing is acknowledged: the writer thread writes the batch again at the same
            // offset, and handles the error (rollback, disk_full) the way it always does
            self.chunk.clear();
            self.next_seq = first_sequence;
            self.chain = chain_before;
            return Err(payloads);
        }
        self.shared.batches.fetch_add(1, Ordering::Relaxed);
        self.shared.publish(self.next_seq - 1, self.chain);
        Ok(AppendedBatch {
            first_sequence,
            chain_hashes,
        })
    }

    fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            next_seq: self.next_seq,
            chain: self.chain,
            live_len: self.live.as_ref().map_or(HEADER_LEN, |live| live.len),
        }
    }

    fn fail(&mut self, err: Error) {
        self.shared.alive.store(false, Ordering::Release);
        self.failed = Some(err);
    }

    fn check_batch(&self, payloads: &PayloadBatch) -> Result<()> {
        let stamp = if payloads.stamp_sequences {
            SEQUENCE_STAMP_MAX
        } else {
            0
        };
        if payloads.is_empty() {
            return Err(Error::new(
                ErrorCode::InvalidArgument,
                "append needs at least one payload",
            ));
        }
        if let Some((index, payload)) = payloads
            .iter()
            .enumerate()
            .find(|(_, payload)| payload.len() + stamp > MAX_ENTRY_PAYLOAD)
        {
            return Err(Error::new(
                ErrorCode::TooLarge,
                format!(
                    "payload {index} of the batch has {} bytes, over the {MAX_ENTRY_PAYLOAD}-byte entry limit",
                    payload.len()
                ),
            ));
        }
        if self.next_seq - 1 + payloads.len() as u64 > MAX_SEQUENCE {
            return Err(Error::new(
                ErrorCode::TooLarge,
                format!(
                    "appending {} entries after sequence {} would pass 2^53-1",
                    payloads.len(),
                    self.next_seq - 1
                ),
            ));
        }
        Ok(())
    }

    /// Whether an entry of `entry_len` bytes must go to a new segment.
    fn segment_full(&self, entry_len: u64) -> bool {
        self.live.as_ref().is_some_and(|live| {
            let used = live.len + self.chunk.len() as u64;
            used > HEADER_LEN && used + entry_len > self.options.max_segment_bytes
        })
    }

    fn append_group(&mut self, requests: Vec<(PayloadBatch, Reply<AppendedBatch>)>) {
        #[cfg(test)]
        if self
            .shared
            .panic_in_next_group
            .swap(false, Ordering::SeqCst)
        {
            panic!("injected writer panic");
        }
        self.chunk.clear();
        let mut group = Group {
            pending: Vec::with_capacity(requests.len()),
            safe: 0,
            checkpoint: self.checkpoint(),
        };
        // while sealing fails with a full backlog, the segment grows past its limit
        let mut rotation_blocked = false;
        let mut stamped = Vec::new();
        'batches: for (payloads, reply) in requests {
            if let Some(err) = &self.failed {
                reply.send(Err(err.clone()));
                continue;
            }
            if let Err(err) = self.check_batch(&payloads) {
                reply.send(Err(err));
                continue;
            }
            group.pending.push(Pending {
                reply,
                first_sequence: self.next_seq,
                chain_hashes: Vec::with_capacity(32 * payloads.len()),
            });
            for payload in payloads.iter() {
                let payload = payloads.entry_payload(&mut stamped, self.next_seq, payload);
                let entry_len = (ENTRY_HEADER_SIZE + payload.len()) as u64;
                if !rotation_blocked && self.segment_full(entry_len) {
                    if !self.sealer.make_room() {
                        rotation_blocked = true;
                    } else {
                        if let Err(err) = self.write_chunk().and_then(|()| self.retire_live()) {
                            self.roll_back(&mut group, err);
                            continue 'batches;
                        }
                        group.checkpoint = self.checkpoint();
                        group.safe = group.pending.len() - 1;
                    }
                }
                if self.live.is_none() {
                    if let Err(err) = self.create_segment() {
                        self.roll_back(&mut group, err);
                        continue 'batches;
                    }
                }
                encode_entry_into(&mut self.chunk, self.next_seq, &self.chain, payload);
                self.chain = entry_hash(&self.chain, payload);
                self.next_seq += 1;
                if let Some(batch) = group.pending.last_mut() {
                    batch.chain_hashes.extend_from_slice(&self.chain);
                }
            }
        }
        if group.pending.len() > group.safe {
            let committed = self.write_chunk().and_then(|()| {
                if self.options.durability == Durability::Fsync {
                    self.sync_live()
                } else {
                    Ok(())
                }
            });
            match committed {
                Ok(()) => {
                    self.shared.batches.fetch_add(1, Ordering::Relaxed);
                }
                Err(err) => self.roll_back(&mut group, err),
            }
        }
        self.shared.publish(self.next_seq - 1, self.chain);
        for batch in group.pending {
            batch.reply.send(Ok(AppendedBatch {
                first_sequence: batch.first_sequence,
                chain_hashes: batch.chain_hashes,
            }));
        }
        self.write_due_head_hint();
    }

    /// Undoes everything after the group's checkpoint and rejects the batches it held.
    fn roll_back(&mut self, group: &mut Group, err: Error) {
        let checkpoint = group.checkpoint;
        self.chunk.clear();
        self.next_seq = checkpoint.next_seq;
        self.chain = checkpoint.chain;
        if let Some(live) = self.live.as_mut() {
            let truncated = live
                .file
                .set_len(checkpoint.live_len)
                .and_then(|()| live.file.sync_data());
            live.len = checkpoint.live_len;
            live.allocated = checkpoint.live_len;
            if let Err(truncate_err) = truncated {
                let truncate_err = Error::io(
                    &format!("truncating {} after a failed write", live.path.display()),
                    truncate_err,
                );
                self.fail(Error::new(
                    err.code,
                    format!("{}; then {}", err.message, truncate_err.message),
                ));
            }
        }
        if self.failed.is_none() && group.straddles() {
            // part of a batch is already sealed: it can neither be completed nor withdrawn
            self.fail(err.clone());
        }
        let err = self.failed.clone().unwrap_or(err);
        for batch in group.pending.drain(group.safe..) {
            batch.reply.send(Err(err.clone()));
        }
    }

    fn write_chunk(&mut self) -> Result<()> {
        if self.chunk.is_empty() {
            return Ok(());
        }
        let Some(live) = self.live.as_mut() else {
            return Err(Error::new(
                ErrorCode::Internal,
                "encoded entries without a live segment",
            ));
        };
        live.dirty = true;
        write_at(&mut live.file, &self.chunk, live.len).map_err(|err| {
            Error::io(
                &format!("writing to {} at offset {}", live.path.display(), live.len),
                err,
            )
        })?;
        live.len += self.chunk.len() as u64;
        let half_full = live.len.saturating_mul(2) >= self.options.max_segment_bytes;
        self.chunk.clear();
        self.preallocate();
        if half_full && !self.spare_requested && self.options.durability == Durability::Fsync {
            self.spare_requested = true;
            if self.spare.is_none() {
                // without its thread, segments are created the plain way
                self.spare = Spare::start(&self.dir, self.options.max_segment_bytes).ok();
            }
            if let Some(spare) = &self.spare {
                spare.request();
            }
        }
        Ok(())
    }

    /// The spare segment (see writer/spare.rs) as the segment at `path`, if one is ready: its
    /// header written and fdatasynced first (a name made durable by some other directory fsync
    /// must never show a file of zeros: recovery takes a header it cannot read for damage), then
    /// linked to its name (which fails if that exists, as creating it would), opened again by
    /// that name, and the spare name removed once no handle holds it (a file system that names
    /// open files by path, FUSE's, then never sees an open file lose its name). None when there
    /// is none, or writing, linking or opening it fails (the spare is then dropped and the
    /// segment made the plain way).
    fn take_spare(&mut self, path: &Path, header: &[u8]) -> Result<Option<(File, u64)>> {
        self.spare_requested = false;
        let Some(spare) = &self.spare else {
            return Ok(None);
        };
        let Some(mut file) = spare.take() else {
            return Ok(None);
        };
        let linked = write_at(&mut file, header, 0)
            .and_then(|()| file.sync_data())
            .and_then(|()| fs::hard_link(spare.path(), path));
        drop(file);
        let reopened = linked.and_then(|()| {
            OpenOptions::new()
                .read(true)
                .write(true)
                .open(path)
                .inspect_err(|_| {
                    let _ = fs::remove_file(path);
                })
        });
        // either way the spare name goes: a linked spare is the segment now, another is dropped
        let _ = fs::remove_file(spare.path());
        match reopened {
            Ok(file) => Ok(Some((file, spare.size()))),
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Err(Error::new(
                ErrorCode::Conflict,
                format!(
                    "segment file {} already exists; refusing to overwrite it",
                    path.display()
                ),
            )),
            Err(_) => Ok(None),
        }
    }

    /// Under 'fsync', when the entries just written passed the end of the file's zeros, writes
    /// zeros after them (see `PREALLOCATE_STEP`); the group's fdatasync makes them durable with
    /// its entries. A write that fails (a full disk) is cut off again and the segment goes on
    /// the plain way: the entries are already written, and an append that cannot be stored
    /// still fails on its own write (`disk_full`).
    fn preallocate(&mut self) {
        if self.options.durability != Durability::Fsync {
            return;
        }
        let max = self.options.max_segment_bytes;
        let Some(live) = self.live.as_mut() else {
            return;
        };
        if live.preallocation_failed || live.len <= live.allocated {
            return;
        }
        let target = live.len.saturating_add(PREALLOCATE_STEP).min(max);
        if target <= live.len {
            return;
        }
        let zeros = self
            .zeros
            .get_or_insert_with(|| vec![0u8; PREALLOCATE_STEP as usize]);
        let written = write_at(
            &mut live.file,
            &zeros[..(target - live.len) as usize],
            live.len,
        );
        if written.is_ok() {
            live.allocated = target;
        } else {
            // whatever part was written is zeros a crash would leave as a torn tail: cut it now
            let _ = live.file.set_len(live.len);
            live.allocated = live.len;
            live.preallocation_failed = true;
        }
    }

    /// Cuts the zeros written ahead of the entries, so that the file is exactly its header and
    /// entries (what the sealer reads, and what a retired segment must be: recovery takes bytes
    /// after the last entry of a segment that is not the last for damage). Durable with the
    /// next sync of the segment.
    fn trim_live(&mut self) -> Result<()> {
        let Some(live) = self.live.as_mut() else {
            return Ok(());
        };
        if live.allocated > live.len {
            live.file.set_len(live.len).map_err(|err| {
                Error::io(
                    &format!("cutting {} to its entries", live.path.display()),
                    err,
                )
            })?;
            live.allocated = live.len;
            live.dirty = true;
        }
        Ok(())
    }

    fn sync_live(&mut self) -> Result<()> {
        let Some(live) = self.live.as_mut() else {
            return Ok(());
        };
        if !live.dirty {
            return Ok(());
        }
        // a file's first sync is a full fsync: its inode is new as well
        let synced = if live.new_in_dir {
            live.file.sync_all()
        } else {
            live.file.sync_data()
        };
        synced.map_err(|err| Error::io(&format!("fdatasync of {}", live.path.display()), err))?;
        live.dirty = false;
        live.written_back = live.len;
        if live.new_in_dir {
            sync_dir(&self.dir)?;
            live.new_in_dir = false;
        }
        self.last_sync = Instant::now();
        self.shared.syncs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Whether `WRITEBACK_CHUNK` bytes or more were written since writeback last started, with
    /// a durability that does not sync every group.
    fn writeback_due(&self) -> bool {
        self.options.durability != Durability::Fsync
            && self
                .live
                .as_ref()
                .is_some_and(|live| live.len - live.written_back.min(live.len) >= WRITEBACK_CHUNK)
    }

    /// Starts writeback of what was written since it last started (Linux `sync_file_range`,
    /// which waits for nothing): the fdatasync of a rotation, flush or interval then finds
    /// little left to write. Only a hint: a failure is left to the next sync to report.
    fn start_writeback(&mut self) {
        if !self.writeback_due() {
            return;
        }
        let Some(live) = self.live.as_mut() else {
            return;
        };
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            let from = live.written_back.min(live.len);
            // SAFETY: a plain syscall on a file descriptor `live.file` owns.
            unsafe {
                libc::sync_file_range(
                    live.file.as_raw_fd(),
                    from as libc::off64_t,
                    (live.len - from) as libc::off64_t,
                    libc::SYNC_FILE_RANGE_WRITE,
                )
            };
        }
        live.written_back = live.len;
    }

    fn interval_sync_at(&self) -> Option<Instant> {
        let dirty = self.live.as_ref().is_some_and(|live| live.dirty);
        (self.options.durability == Durability::Interval && dirty && self.failed.is_none())
            .then(|| self.last_sync + self.options.fsync_interval)
    }

    fn sync_if_due(&mut self) {
        if self
            .interval_sync_at()
            .is_some_and(|at| at <= Instant::now())
        {
            if let Err(err) = self.sync_live() {
                // the entries were acknowledged already: their durability is now unknown
                self.fail(err);
            }
        }
    }

    /// Creates the next unsealed segment and names it in the head hint. Its header and
    /// directory entry become durable with the first sync of its entries (one fdatasync and
    /// one directory fsync, before any of them is acknowledged under `Durability::Fsync`, and
    /// in every mode before the segment retires), not at creation: a rotation costs the
    /// appends behind it no extra fsync. Until then a power loss can leave the name (made
    /// durable by the sealer's directory fsync) without the header: the last segment,
    /// holding no entry, which recovery removes as the torn tail.
    fn create_segment(&mut self) -> Result<()> {
        let name = segment_file_name(self.next_seq);
        let path = self.dir.join(&name);
        let header = Header::unsealed(self.next_seq, now_ms()).encode();
        if let Some((file, allocated)) = self.take_spare(&path, &header)? {
            self.live = Some(Live::created(file, path, allocated));
            self.created_segment(name);
            return Ok(());
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|err| {
                if err.kind() == std::io::ErrorKind::AlreadyExists {
                    Error::new(
                        ErrorCode::Conflict,
                        format!(
                            "segment file {} already exists; refusing to overwrite it",
                            path.display()
                        ),
                    )
                } else {
                    Error::io(&format!("creating segment {}", path.display()), err)
                }
            })?;
        let written = file
            .write_all(&header)
            .map_err(|err| Error::io(&format!("writing segment {}", path.display()), err));
        if let Err(err) = written {
            drop(file);
            // best effort: a leftover header-only file would block the next attempt's name
            let _ = fs::remove_file(&path);
            return Err(err);
        }
        self.live = Some(Live::created(file, path, HEADER_LEN));
        self.created_segment(name);
        Ok(())
    }

    /// Names the segment just created in the head hint, once its group is answered.
    fn created_segment(&mut self, name: String) {
        // Until it has created one, the writer knows the segment before the new one from the
        // hint that recovery checked or rewrote (its head); recovery checks what this says too.
        let previous = self
            .newest_segment
            .take()
            .or_else(|| hinted_segment(&self.dir))
            .filter(|previous| *previous != name);
        self.head_hint_due = Some((name.clone(), previous));
        self.newest_segment = Some(name);
    }

    /// Writes the head hint of the segment created last, once the group that created it is
    /// answered: replacing head.json costs a rotation a millisecond or two (ext4 flushes a file
    /// renamed over another), and a hint lost in a crash only makes recovery list the directory.
    fn write_due_head_hint(&mut self) {
        if let Some((segment, previous)) = self.head_hint_due.take() {
            write_head_hint(&self.dir, &segment, previous.as_deref());
        }
    }

    /// Hands the live segment, if it has entries, to the sealer and returns its path. Its
    /// entries, header and directory entry are made durable first, in every durability mode
    /// (the sealer may take a while): only the live segment then ever holds what a power loss
    /// can take, and what survives one is a journal with a torn tail at most, never a segment
    /// that lost its end before another segment (issue 21). On failure the segment stays live.
    fn retire_live(&mut self) -> Result<Option<PathBuf>> {
        let Some(live) = self.live.as_ref() else {
            return Ok(None);
        };
        if !live.has_entries() {
            return Ok(None);
        }
        self.trim_live()?;
        self.sync_live()?;
        let Some(live) = self.live.take() else {
            return Ok(None);
        };
        self.sealer.retire(live.path.clone());
        Ok(Some(live.path))
    }

    fn flush(&mut self) -> Result<()> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        let synced = self.sync_live();
        if let Err(err) = &synced {
            if self.options.durability != Durability::Fsync {
                self.fail(err.clone());
            }
        }
        synced
    }

    /// Retires the live segment and answers `reply` with its path (or None when it was
    /// empty) once it and every segment before it is sealed; appends go on meanwhile.
    fn seal_for_upload(&mut self, reply: Reply<Option<PathBuf>>) {
        if let Some(err) = &self.failed {
            reply.send(Err(err.clone()));
            return;
        }
        match self.retire_live() {
            Ok(path) => self
                .sealer
                .when_sealed(Box::new(move |sealed| reply.send(sealed.map(|()| path)))),
            Err(err) => reply.send(Err(err)),
        }
    }

    /// The last work of close: make everything durable and seal every segment.
    fn finish(&mut self) -> Result<()> {
        if self.failed.is_some() {
            return Ok(());
        }
        // durable first, whatever happens to sealing: an unsealed segment left behind is
        // continued (or sealed) by the next open
        self.sync_live()?;
        self.retire_live()?;
        self.sealer.wait_sealed()
    }
}

mod spare;
#[cfg(test)]
mod tests;
