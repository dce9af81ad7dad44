//! What the ping and relay floods share about their generator threads: how a run's sessions and
//! limits are split among them, how they start flooding together once every one has finished its
//! set-up, and how a run collects what each saw. One copy, so that the two modes cannot drift
//! apart in how their threads start and stop.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Barrier, OnceLock};
use std::time::{Duration, Instant};

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

/// Runs this thread's set-up (`prepare`), then meets the other threads at `barrier`. Returns
/// what the set-up made, the instant the flood begins (`t0`, the same for every thread) and how
/// long the set-up took.
///
/// Every thread reaches the barrier, failed or not, so none waits forever; a failed set-up sets
/// `abort`, and then no thread floods.
pub fn set_up_together<T>(
    barrier: &Barrier,
    t0: &OnceLock<Instant>,
    abort: &AtomicBool,
    prepare: impl FnOnce() -> Result<T, String>,
) -> Result<(T, Instant, Duration), String> {
    let began = Instant::now();
    let prepared = prepare();
    let setup = began.elapsed();
    if prepared.is_err() {
        abort.store(true, Ordering::SeqCst);
    }
    barrier.wait();
    let prepared = prepared?;
    if abort.load(Ordering::SeqCst) {
        return Err("stopped: another generator thread failed".into());
    }
    Ok((prepared, *t0.get_or_init(Instant::now), setup))
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
        let barrier = Barrier::new(2);
        let t0 = OnceLock::new();
        let abort = AtomicBool::new(false);
        let results = run_each(&[true, false], |&fails| {
            set_up_together(&barrier, &t0, &abort, || {
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
        assert!(t0.get().is_none(), "nobody began flooding");
    }
}
