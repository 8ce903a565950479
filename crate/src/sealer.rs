//! Sealing of retired segments on a thread of their own, so that a rotation costs the
//! journal writer thread a `fdatasync` at most, not a compression pass: appends keep
//! flowing into the next segment while the previous one is sealed.
//!
//! The compression runs in Linux's `SCHED_IDLE` class while nothing waits for it, so that
//! a waking event loop or writer thread preempts it at once instead of waiting out its time
//! slice (the event loop's stall). Idle-class threads cannot be raised again without
//! privileges, so once something waits (a second retired segment, `seal_for_upload`,
//! `close`) the sealer thread, in the normal class, computes the seal itself rather than
//! wait for an idle-class thread a busy machine may starve.
//!
//! Segments are sealed strictly in the order they were retired, so a sealed segment
//! never follows an unsealed one. A failed seal leaves the unsealed file as it was
//! (complete and valid) and is retried when the writer next retires a segment or waits
//! for the sealer; whoever waits hears the error.

use std::collections::VecDeque;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use crate::error::{guard, Error, ErrorCode, Result};
use crate::format::{Header, HEADER_SIZE};
use crate::segment::seal_segment;
use crate::writer::{lock, sync_dir, Shared};

/// Retired segments allowed to wait for sealing before rotation waits for the sealer.
pub const MAX_SEAL_BACKLOG: usize = 4;

type Waiter = Box<dyn FnOnce(Result<()>) + Send>;

struct State {
    /// retired segments not yet sealed, oldest first; the first may be being sealed
    backlog: VecDeque<PathBuf>,
    /// the last attempt to seal `backlog[0]` failed; the thread waits for `retry`
    failure: Option<Error>,
    retry: bool,
    /// called once the backlog is empty, or with the error of a failed seal
    waiters: Vec<Waiter>,
    stop: bool,
    /// an idle-class thread is computing a seal (possibly one the sealer no longer awaits)
    idle_seal_running: bool,
    /// the seal the idle-class thread computed, tagged with the number of its request
    idle_seal_result: Option<(u64, Result<Vec<u8>>)>,
    idle_seal_requests: u64,
}

impl State {
    /// Someone waits for the seal being computed: the writer (a second segment is retired,
    /// so the backlog grows), `when_sealed`, or the sealer's own shutdown.
    fn urgent(&self) -> bool {
        self.backlog.len() > 1 || !self.waiters.is_empty() || self.stop
    }
}

struct Inner {
    shared: Arc<Shared>,
    level: i32,
    state: Mutex<State>,
    /// the sealer thread waits here for work
    work: Condvar,
    /// the writer thread waits here for the backlog to shrink
    progress: Condvar,
}

pub struct Sealer {
    inner: Arc<Inner>,
    thread: Option<JoinHandle<()>>,
}

impl Sealer {
    pub fn start(shared: Arc<Shared>, level: i32) -> Result<Sealer> {
        let inner = Arc::new(Inner {
            shared,
            level,
            state: Mutex::new(State {
                backlog: VecDeque::new(),
                failure: None,
                retry: false,
                waiters: Vec::new(),
                stop: false,
                idle_seal_running: false,
                idle_seal_result: None,
                idle_seal_requests: 0,
            }),
            work: Condvar::new(),
            progress: Condvar::new(),
        });
        let thread_inner = Arc::clone(&inner);
        let thread = std::thread::Builder::new()
            .name("graphstream-sealer".into())
            .spawn(move || thread_inner.run())
            .map_err(|err| Error::io("starting the segment sealer thread", err))?;
        Ok(Sealer {
            inner,
            thread: Some(thread),
        })
    }

    /// Hands over a complete unsealed segment the writer no longer appends to.
    pub fn retire(&self, path: PathBuf) {
        let mut state = lock(&self.inner.state);
        state.backlog.push_back(path);
        state.retry = true;
        drop(state);
        self.inner.work.notify_one();
    }

    /// Whether the writer may retire another segment: waits while the backlog is full
    /// and the sealer is making progress; false when it is full and sealing fails (the
    /// live segment then grows past its limit until a retry succeeds).
    pub fn make_room(&self) -> bool {
        let mut state = lock(&self.inner.state);
        loop {
            if state.backlog.len() < MAX_SEAL_BACKLOG {
                return true;
            }
            if state.failure.is_some() {
                state.retry = true;
                self.inner.work.notify_one();
                return false;
            }
            state = self
                .inner
                .progress
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }

    /// Calls `waiter` once every segment retired so far is sealed, or with the error that
    /// stopped it (after one more attempt).
    pub fn when_sealed(&self, waiter: Waiter) {
        let mut state = lock(&self.inner.state);
        if state.backlog.is_empty() {
            drop(state);
            waiter(Ok(()));
            return;
        }
        state.waiters.push(waiter);
        state.retry = true;
        drop(state);
        self.inner.work.notify_one();
    }

    /// Blocks until every segment retired so far is sealed (or sealing failed).
    pub fn wait_sealed(&self) -> Result<()> {
        let (reply, answer) = std::sync::mpsc::channel();
        self.when_sealed(Box::new(move |result| drop(reply.send(result))));
        answer.recv().unwrap_or_else(|_| {
            Err(Error::new(
                ErrorCode::Internal,
                "the segment sealer stopped without answering",
            ))
        })
    }
}

impl Drop for Sealer {
    fn drop(&mut self) {
        lock(&self.inner.state).stop = true;
        self.inner.work.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let waiters = std::mem::take(&mut lock(&self.inner.state).waiters);
        for waiter in waiters {
            waiter(Err(self.inner.shared.closed_error()));
        }
    }
}

impl Inner {
    fn run(self: &Arc<Self>) {
        loop {
            let path = {
                let mut state = lock(&self.state);
                loop {
                    let ready =
                        !state.backlog.is_empty() && (state.failure.is_none() || state.retry);
                    if ready || state.stop {
                        break;
                    }
                    state = self
                        .work
                        .wait(state)
                        .unwrap_or_else(|poisoned| poisoned.into_inner());
                }
                if state.stop {
                    return;
                }
                state.retry = false;
                state.backlog[0].clone()
            };
            let sealed = guard(|| self.seal_file(&path));
            let mut state = lock(&self.state);
            let answered = match sealed {
                Ok(()) => {
                    state.backlog.pop_front();
                    state.failure = None;
                    self.shared.segments_sealed.fetch_add(1, Ordering::Relaxed);
                    if state.backlog.is_empty() {
                        Some(Ok(()))
                    } else {
                        None
                    }
                }
                Err(err) => {
                    state.failure = Some(err.clone());
                    Some(Err(err))
                }
            };
            let waiters = match answered {
                Some(_) => std::mem::take(&mut state.waiters),
                None => Vec::new(),
            };
            drop(state);
            self.progress.notify_all();
            if let Some(result) = answered {
                for waiter in waiters {
                    waiter(result.clone());
                }
            }
        }
    }
}

impl Inner {
    /// Seals the segment file at `path` in place: temp file + fsync + rename + directory
    /// fsync. A file already sealed (a retry after a failed directory fsync) only gets the
    /// directory fsync.
    fn seal_file(self: &Arc<Self>, path: &Path) -> Result<()> {
        let dir = &self.shared.dir;
        let unsealed = fs::read(path)
            .map_err(|err| Error::io(&format!("reading {} to seal it", path.display()), err))?;
        let header = Header::decode(&unsealed[..unsealed.len().min(HEADER_SIZE)])
            .map_err(|err| err.context(format!("sealing {}", path.display())))?;
        if header.is_sealed() {
            return sync_dir(dir);
        }
        let sealed = self
            .sealed_form(unsealed)
            .map_err(|err| err.context(format!("sealing {}", path.display())))?;
        let mut temp_name = path.file_name().unwrap_or_default().to_os_string();
        temp_name.push(".seal.tmp");
        let temp = path.with_file_name(temp_name);
        let staged = File::create(&temp)
            .and_then(|mut file| {
                file.write_all(&sealed)?;
                file.sync_all()
            })
            .and_then(|()| fs::rename(&temp, path));
        if let Err(err) = staged {
            let _ = fs::remove_file(&temp);
            return Err(Error::io(
                &format!("writing the sealed form of {}", path.display()),
                err,
            ));
        }
        sync_dir(dir)
    }

    /// The sealed form of `unsealed`: computed by an idle-class thread while nobody waits
    /// for it, by this thread once somebody does. At most one idle-class computation runs
    /// at a time; one this thread stopped waiting for finishes on its own and is dropped.
    fn sealed_form(self: &Arc<Self>, unsealed: Vec<u8>) -> Result<Vec<u8>> {
        let unsealed = Arc::new(unsealed);
        let mut state = lock(&self.state);
        if state.urgent() || state.idle_seal_running {
            drop(state);
            return self.compute_seal(&unsealed);
        }
        state.idle_seal_requests += 1;
        let request = state.idle_seal_requests;
        state.idle_seal_running = true;
        state.idle_seal_result = None;
        drop(state);
        let inner = Arc::clone(self);
        let input = Arc::clone(&unsealed);
        let spawned = std::thread::Builder::new()
            .name("graphstream-sealer-idle".into())
            .spawn(move || {
                yield_to_foreground_threads();
                #[cfg(test)]
                while inner.shared.hold_idle_seals.load(Ordering::SeqCst) {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                let sealed = guard(|| inner.compute_seal(&input));
                let mut state = lock(&inner.state);
                state.idle_seal_running = false;
                state.idle_seal_result = Some((request, sealed));
                drop(state);
                inner.work.notify_all();
            });
        if spawned.is_err() {
            lock(&self.state).idle_seal_running = false;
            return self.compute_seal(&unsealed);
        }
        let mut state = lock(&self.state);
        loop {
            if matches!(&state.idle_seal_result, Some((done, _)) if *done == request) {
                if let Some((_, sealed)) = state.idle_seal_result.take() {
                    return sealed;
                }
            }
            if state.urgent() {
                drop(state);
                return self.compute_seal(&unsealed);
            }
            state = self
                .work
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }

    fn compute_seal(&self, unsealed: &[u8]) -> Result<Vec<u8>> {
        seal_segment(unsealed, self.level, unsealed.len())
    }
}

/// Idle-class computations [`in_idle_class`] has running (including ones nobody waits for any more).
static IDLE_RUNNING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Runs `work` on a fresh thread in Linux's `SCHED_IDLE` class, so that a waking event loop
/// preempts it at once, and returns its result; if it has not finished within `patience` (an
/// idle-class thread starves while every core is busy), the calling thread runs `work` itself, in
/// its own class, and the idle-class run finishes on its own, its result dropped. `work` may
/// therefore run twice (it must not have side effects), and whatever it holds stays alive until
/// both runs are done. While as many idle-class runs as there are cores are under way, `work`
/// runs on the calling thread at once.
pub fn in_idle_class<T: Send + 'static>(
    patience: std::time::Duration,
    work: Arc<dyn Fn() -> T + Send + Sync>,
) -> T {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if IDLE_RUNNING.fetch_add(1, Ordering::SeqCst) >= cores {
        IDLE_RUNNING.fetch_sub(1, Ordering::SeqCst);
        return work();
    }
    let (reply, answer) = std::sync::mpsc::sync_channel(1);
    let idle_work = Arc::clone(&work);
    let spawned = std::thread::Builder::new()
        .name("graphstream-idle".into())
        .spawn(move || {
            yield_to_foreground_threads();
            let result = idle_work();
            // the caller's reference is the last one when it waits: what `work` holds is
            // released on the caller's thread, not here
            drop(idle_work);
            IDLE_RUNNING.fetch_sub(1, Ordering::SeqCst);
            let _ = reply.send(result);
        });
    if spawned.is_err() {
        IDLE_RUNNING.fetch_sub(1, Ordering::SeqCst);
        return work();
    }
    match answer.recv_timeout(patience) {
        Ok(result) => result,
        Err(_) => work(),
    }
}

/// Waits until every idle-class run [`in_idle_class`] started has finished, overtaken ones
/// included. An overtaken run goes on reading what its work holds (`sealSegmentAsync`'s input, a
/// JavaScript Buffer whose memory Node frees when its environment is torn down, whatever
/// references Rust holds), so the binding waits here in the environment's cleanup.
pub fn wait_for_idle_runs() {
    while IDLE_RUNNING.load(Ordering::SeqCst) > 0 {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// Puts the calling thread (and the threads it starts: the second thread of a seal) in
/// Linux's `SCHED_IDLE` class. Where that fails, the thread keeps the normal class.
fn yield_to_foreground_threads() {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: pid 0 is the calling thread, and `param` outlives the call.
        unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    #[test]
    fn an_idle_class_run_that_finishes_in_time_is_the_answer() {
        let runs = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&runs);
        let answer = in_idle_class(
            Duration::from_secs(60),
            Arc::new(move || counted.fetch_add(1, Ordering::SeqCst) + 41),
        );
        assert_eq!(answer, 41);
        assert_eq!(runs.load(Ordering::SeqCst), 1, "the work ran once");
    }

    #[test]
    fn a_starved_idle_class_run_is_overtaken_by_the_caller() {
        // the idle-class run (the first) is held until the caller's run is over, as a busy
        // machine would starve it; the caller must not wait for it past its patience
        let (release, held) = std::sync::mpsc::channel::<()>();
        let held = Mutex::new(held);
        let runs = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&runs);
        let answer = in_idle_class(
            Duration::from_millis(20),
            Arc::new(move || {
                if counted.fetch_add(1, Ordering::SeqCst) == 0 {
                    let _ = lock(&held).recv_timeout(Duration::from_secs(30));
                    "idle"
                } else {
                    "caller"
                }
            }),
        );
        assert_eq!(answer, "caller");
        drop(release);
    }
}
