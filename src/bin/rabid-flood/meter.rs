//! CPU time of the generator itself (getrusage, all threads) and of the server process (Linux
//! `/proc/<pid>/stat`, all threads), read at the edges of the measured window so CPU per reply
//! can be computed for both sides of the same run.

use std::mem::MaybeUninit;
use std::time::{Duration, Instant};

/// One reading of the clocks.
#[derive(Clone, Copy)]
pub struct Snapshot {
    pub at: Instant,
    pub own_cpu: Duration,
    pub server_cpu: Option<Duration>,
    /// The server's CPU time by kind of thread (its threads' names say which).
    pub server_threads: Option<ThreadCpu>,
    /// Resident memory of the server, bytes.
    pub server_rss: Option<u64>,
}

/// A server's CPU time by kind of thread: what caps its rate with more workers is the receiver's
/// share (every datagram passes it), so it is read apart from the workers'.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ThreadCpu {
    pub receiver: Duration,
    /// All workers together.
    pub workers: Duration,
    /// The lobby directory thread (and the relay reader threads of servers before they were
    /// folded into the workers).
    pub others: Duration,
}

impl ThreadCpu {
    fn since(&self, earlier: &ThreadCpu) -> ThreadCpu {
        ThreadCpu {
            receiver: self.receiver.saturating_sub(earlier.receiver),
            workers: self.workers.saturating_sub(earlier.workers),
            others: self.others.saturating_sub(earlier.others),
        }
    }
}

impl Snapshot {
    pub fn take(server_pid: Option<u32>) -> Self {
        Self {
            at: Instant::now(),
            own_cpu: own_cpu(),
            server_cpu: server_pid.and_then(process_cpu),
            server_threads: server_pid.and_then(thread_cpu),
            server_rss: server_pid.and_then(process_rss),
        }
    }
}

/// What happened between two snapshots.
#[derive(Clone, Copy, Default)]
pub struct Window {
    pub wall: Duration,
    pub own_cpu: Duration,
    pub server_cpu: Option<Duration>,
    pub server_threads: Option<ThreadCpu>,
}

impl Window {
    pub fn between(a: &Snapshot, b: &Snapshot) -> Self {
        Self {
            wall: b.at.saturating_duration_since(a.at),
            own_cpu: b.own_cpu.saturating_sub(a.own_cpu),
            server_cpu: match (a.server_cpu, b.server_cpu) {
                (Some(x), Some(y)) => Some(y.saturating_sub(x)),
                _ => None,
            },
            server_threads: match (&a.server_threads, &b.server_threads) {
                (Some(x), Some(y)) => Some(y.since(x)),
                _ => None,
            },
        }
    }
}

/// User + system CPU time of this process, all threads.
pub fn own_cpu() -> Duration {
    // SAFETY: rusage is a plain C struct; getrusage only writes it.
    let ru = unsafe {
        let mut ru: libc::rusage = MaybeUninit::zeroed().assume_init();
        if libc::getrusage(libc::RUSAGE_SELF, &mut ru) != 0 {
            return Duration::ZERO;
        }
        ru
    };
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
    };
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// User + system CPU time of process `pid` (all its threads), or `None` when it cannot be read
/// (no such process, not Linux).
pub fn process_cpu(pid: u32) -> Option<Duration> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    parse_stat_cpu(&text, if ticks > 0 { ticks as u64 } else { 100 })
}

/// The CPU time of process `pid`'s threads by kind (`receiver`s, `worker-N`, the rest), from
/// `/proc/<pid>/task/*/stat`; `None` when it cannot be read. A thread that ended is not counted.
pub fn thread_cpu(pid: u32) -> Option<ThreadCpu> {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let ticks = if ticks > 0 { ticks as u64 } else { 100 };
    let mut cpu = ThreadCpu::default();
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
    {
        let Ok(text) = std::fs::read_to_string(task.path().join("stat")) else {
            continue; // ended meanwhile
        };
        let Some(time) = parse_stat_cpu(&text, ticks) else {
            continue;
        };
        match thread_name(&text) {
            Some(name) if name == "receiver" || name.starts_with("receiver-") => {
                cpu.receiver += time
            }
            Some(name) if name.starts_with("worker-") => cpu.workers += time,
            Some("directory") => cpu.others += time,
            Some(name) if name.starts_with("relay-") => cpu.others += time,
            _ => {}
        }
    }
    Some(cpu)
}

/// The thread name (field 2) of a `/proc/.../stat` line: between the first `(` and the last `)`.
fn thread_name(text: &str) -> Option<&str> {
    text.get(text.find('(')? + 1..text.rfind(')')?)
}

/// Resident memory of process `pid` in bytes (`VmRSS` of `/proc/<pid>/status`), or `None`.
pub fn process_rss(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_rss(&text)
}

/// `VmRSS:   1234 kB` from the text of `/proc/<pid>/status`, in bytes.
pub fn parse_rss(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut words = line["VmRSS:".len()..].split_ascii_whitespace();
    let kb: u64 = words.next()?.parse().ok()?;
    (words.next() == Some("kB")).then_some(kb * 1024)
}

/// utime + stime from the text of `/proc/<pid>/stat`, in `ticks_per_s` clock ticks. The
/// command name (field 2) may hold spaces and parentheses, so fields are counted after the
/// last `)`: there, field 3 (state) is the first, so utime (14) and stime (15) are the 12th and
/// 13th.
pub fn parse_stat_cpu(text: &str, ticks_per_s: u64) -> Option<Duration> {
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    let ticks = utime + stime;
    Some(Duration::from_nanos(
        (u128::from(ticks) * 1_000_000_000 / u128::from(ticks_per_s.max(1))) as u64,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let line = "4242 (rabid (x) punch) S 1 4242 4242 0 -1 4194560 300 0 0 0 150 50 0 0 20 0 \
                    3 0 123 456 78 18446744073709551615";
        assert_eq!(parse_stat_cpu(line, 100), Some(Duration::from_secs(2)));
        assert_eq!(parse_stat_cpu("garbage", 100), None);
        assert_eq!(parse_stat_cpu("1 (x) S 1 2", 100), None);
    }

    #[test]
    fn threads_are_told_apart_by_name_and_this_process_has_some() {
        assert_eq!(thread_name("7 (worker-3) S 1 2"), Some("worker-3"));
        assert_eq!(thread_name("7 (a (b)) S"), Some("a (b)"));
        assert!(thread_cpu(std::process::id()).is_some());
    }

    #[test]
    fn rss_is_read_in_bytes() {
        assert_eq!(
            parse_rss("Name:\tx\nVmRSS:\t    2048 kB\nVmData: 1 kB\n"),
            Some(2 << 20)
        );
        assert_eq!(parse_rss("VmRSS: lots\n"), None);
        assert_eq!(parse_rss(""), None);
        assert!(process_rss(std::process::id()).is_some_and(|b| b > 0));
    }

    #[test]
    fn own_process_cpu_is_readable_and_grows() {
        let pid = std::process::id();
        let before = process_cpu(pid).expect("/proc/self/stat readable on Linux");
        let a = own_cpu();
        // Burn a little CPU, bounded by the loop count.
        let mut x = 0u64;
        for i in 0..30_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(own_cpu() > a);
        assert!(process_cpu(pid).expect("readable") >= before);
        assert_eq!(process_cpu(u32::MAX), None);
    }
}
