//! The scheduling policy of the threads that move datagrams.
//!
//! With the default policy, a thread woken by a datagram preempts the thread running on its
//! core. On a small box the receiver and the workers share cores, so every request that arrives
//! while a worker is sending pulls the receiver in for a datagram or two and hands the core back:
//! measured on 2 cores under a ping flood, the worker was preempted once every 5 replies, and the
//! switches cost more than the protocol work (README, Performance). `SCHED_BATCH` (Linux, no
//! privilege needed) keeps the same fair share of CPU but does not preempt on wake-up: the worker
//! finishes its `sendmmsg`, and the receiver then takes everything that arrived meanwhile in one
//! `recvmmsg`. Latency grows by at most a scheduler slice (a few milliseconds when another
//! program keeps the core busy), which a rendezvous server never notices; the rest of the
//! machine gains, as our threads no longer preempt other programs either.

use std::io;

/// How the receivers and the workers are scheduled (`--scheduling`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Scheduling {
    /// `SCHED_BATCH`: no preemption on wake-up, so datagrams are taken in larger batches.
    #[default]
    Batch,
    /// The system's default policy, untouched.
    Normal,
}

impl Scheduling {
    /// Applies the policy to the calling thread. `Normal` leaves it as it is.
    pub fn apply_to_this_thread(self) -> io::Result<()> {
        match self {
            Scheduling::Normal => Ok(()),
            Scheduling::Batch => set_batch(),
        }
    }
}

#[cfg(target_os = "linux")]
fn set_batch() -> io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: pid 0 is the calling thread; `param` is a valid sched_param for the call.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn set_batch() -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "SCHED_BATCH is Linux only",
    ))
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// The policy of the calling thread, as the kernel reports it.
    fn policy() -> libc::c_int {
        // SAFETY: pid 0 is the calling thread.
        unsafe { libc::sched_getscheduler(0) }
    }

    #[test]
    fn batch_sets_sched_batch_and_normal_leaves_the_policy() {
        std::thread::spawn(|| {
            let before = policy();
            Scheduling::Normal.apply_to_this_thread().unwrap();
            assert_eq!(policy(), before);
            Scheduling::Batch.apply_to_this_thread().unwrap();
            assert_eq!(policy(), libc::SCHED_BATCH);
        })
        .join()
        .unwrap();
    }
}
