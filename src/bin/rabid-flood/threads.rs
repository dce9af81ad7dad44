//! What the ping and relay floods share about their generator threads: how a run's sessions and
//! limits are split among them, where the threads meet (after their set-ups, at the start of the
//! measured window, when one fails), and how a run collects what each saw. One copy, so that the
//! two modes cannot drift apart in how their threads start, measure and stop.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Barrier, OnceLock};
use std::time::{Duration, Instant};

use crate::meter::Snapshot;

/// Start of part `t` of `n` equal parts of `0..len`.
pub fn split_start(len: usize, n: usize, t: usize) -> usize {
    t * (len / n) + t.min(len % n)
}

/// Length of part `t` of `n` equal parts of `0..len`.
pub fn split_len(len: usize, n: usize, t: usize) -> usize {
    len / n + usize::from(t < len % n)
}

/// Runs `thread` for each share, each on a thread of its own, and returns what they returned in
/// share order; a thread that panicked counts as failed.
pub fn run_each<S: Sync, T: Send>(
    shares: &[S],
    thread: impl Fn(&S) -> Result<T, String> + Sync,
) -> Vec<Result<T, String>> {
    std::thread::scope(|scope| {
        let thread = &thread;
        let handles: Vec<_> = shares
            .iter()
            .map(|share| scope.spawn(move || thread(share)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("a generator thread panicked".into()))
            })
            .collect()
    })
}

/// Where the threads of one run meet.
pub struct Together {
    /// Passed once every thread has finished its set-up, failed or not.
    barrier: Barrier,
    /// When the flood begins, warm-up included: the same instant for every thread.
    t0: OnceLock<Instant>,
    /// The snapshot that opens the measured window.
    window_start: OnceLock<Snapshot>,
    /// Set when a thread failed: the others stop too.
    abort: AtomicBool,
}

impl Together {
    pub fn new(threads: usize) -> Self {
        Self {
            barrier: Barrier::new(threads),
            t0: OnceLock::new(),
            window_start: OnceLock::new(),
            abort: AtomicBool::new(false),
        }
    }

    /// Runs this thread's set-up (`prepare`), then waits for the other threads' set-ups.
    /// Returns what the set-up made, the instant the flood begins (the same for every thread)
    /// and how long the set-up took.
    ///
    /// Every thread reaches the barrier, failed or not, so none waits forever; a failed set-up
    /// stops every thread before it floods.
    pub fn set_up<T>(
        &self,
        prepare: impl FnOnce() -> Result<T, String>,
    ) -> Result<(T, Instant, Duration), String> {
        let began = Instant::now();
        let prepared = prepare();
        let setup = began.elapsed();
        if prepared.is_err() {
            self.abort.store(true, Ordering::SeqCst);
        }
        self.barrier.wait();
        let prepared = prepared?;
        if self.abort.load(Ordering::SeqCst) {
            return Err("stopped: another generator thread failed".into());
        }
        Ok((prepared, *self.t0.get_or_init(Instant::now), setup))
    }

    /// The snapshot that opens the measured window, taken by the first thread past the warm-up.
    /// Every thread measures until `--duration` after it, so the window is never shorter than
    /// `--duration`, however late a preempted thread noticed the end of the warm-up.
    pub fn window_start(&self, server_pid: Option<u32>) -> Snapshot {
        *self.window_start.get_or_init(|| Snapshot::take(server_pid))
    }

    /// When the measured window opened, once a thread opened it.
    pub fn window_started(&self) -> Option<Instant> {
        self.window_start.get().map(|s| s.at)
    }

    /// Stops every thread: this one cannot go on (nothing listens at the target).
    pub fn abort(&self) {
        self.abort.store(true, Ordering::SeqCst);
    }

    /// Whether a thread stopped the run.
    pub fn aborted(&self) -> bool {
        self.abort.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_cover_the_range_exactly() {
        for (len, n) in [(10, 3), (1000, 1), (7, 7), (64, 5)] {
            let mut next = 0;
            for t in 0..n {
                assert_eq!(split_start(len, n, t), next);
                next += split_len(len, n, t);
            }
            assert_eq!(next, len);
        }
    }

    #[test]
    fn a_failed_set_up_stops_every_thread_and_none_waits_forever() {
        let together = Together::new(2);
        let results = run_each(&[true, false], |&fails| {
            together
                .set_up(|| {
                    if fails {
                        Err("no sockets".to_string())
                    } else {
                        Ok(())
                    }
                })
                .map(|_| ())
        });
        assert_eq!(
            results,
            vec![
                Err("no sockets".to_string()),
                Err("stopped: another generator thread failed".to_string())
            ]
        );
        assert!(together.t0.get().is_none(), "nobody began flooding");
    }
}
