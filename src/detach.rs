//! `--detach`: the process forks; the child serves in the background, and the parent exits
//! once the child says how its start went. That is what systemd's `ExecReload=` needs of a
//! successor: a command that ends, 0 when the new process serves, non-zero (with the reason on
//! standard error, which the child shares) when the old one serves on.

use std::fs::File;
use std::io::Read;
use std::os::fd::FromRawFd;
use std::process::ExitCode;

/// Which process this is after [`fork`].
pub enum Side {
    /// The parent: exit with this.
    Parent(ExitCode),
    /// The child: write `ok` here once serving (or just exit on failure).
    Child(File),
}

/// Forks. Call before any thread is started.
pub fn fork() -> Result<Side, String> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors, which are ours from here.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(format!(
            "--detach: cannot make a pipe: {}",
            std::io::Error::last_os_error()
        ));
    }
    let (read, write) = unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) };
    // SAFETY: no other thread runs yet (see above), so the child's copy of this one is whole.
    match unsafe { libc::fork() } {
        -1 => Err(format!(
            "--detach: cannot fork: {}",
            std::io::Error::last_os_error()
        )),
        0 => {
            drop(read);
            // Out of the parent's session: the parent's end (and a terminal's hang-up) does
            // not reach it.
            unsafe { libc::setsid() };
            Ok(Side::Child(write))
        }
        _ => {
            drop(write);
            let mut word = String::new();
            let _ = (&read).read_to_string(&mut word);
            Ok(Side::Parent(if word.trim() == "ok" {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }))
        }
    }
}
