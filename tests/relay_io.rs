//! Where `io_uring` is refused (Docker's default seccomp profile, the `kernel.io_uring_disabled`
//! sysctl), `--relay-io auto` (the default) relays through `epoll` and says so once, at INFO;
//! `--relay-io uring` does not start, with one clear line. The refusal is a seccomp filter on
//! the server process, as a container's.

mod common;

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::process::Command;

use common::{binary, free_ports, Player};

/// Makes `io_uring_setup` fail with EPERM in the command's process, as Docker's profile does.
fn deny_io_uring(command: &mut Command) {
    // SAFETY: the closure only makes two system calls (async-signal-safe), on data of its own.
    unsafe {
        command.pre_exec(|| {
            // seccomp_data.nr == io_uring_setup ? ERRNO(EPERM) : ALLOW
            let filter = [
                libc::sock_filter {
                    code: (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16,
                    jt: 0,
                    jf: 0,
                    k: 0,
                },
                libc::sock_filter {
                    code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
                    jt: 0,
                    jf: 1,
                    k: libc::SYS_io_uring_setup as u32,
                },
                libc::sock_filter {
                    code: (libc::BPF_RET | libc::BPF_K) as u16,
                    jt: 0,
                    jf: 0,
                    k: libc::SECCOMP_RET_ERRNO | libc::EPERM as u32,
                },
                libc::sock_filter {
                    code: (libc::BPF_RET | libc::BPF_K) as u16,
                    jt: 0,
                    jf: 0,
                    k: libc::SECCOMP_RET_ALLOW,
                },
            ];
            let program = libc::sock_fprog {
                len: filter.len() as u16,
                filter: filter.as_ptr().cast_mut(),
            };
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                || libc::prctl(
                    libc::PR_SET_SECCOMP,
                    libc::SECCOMP_MODE_FILTER,
                    &program as *const libc::sock_fprog,
                ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

fn args(ports: &str, io: &'static str, log: &std::path::Path) -> Vec<String> {
    [
        "--port",
        "0",
        "--bind",
        "127.0.0.1",
        "--workers",
        "2",
        "--relay",
        "always",
        "--relay-ports",
        ports,
        "--relay-io",
        io,
        "--start-sends",
        "1",
        "--log-file",
        log.to_str().unwrap(),
    ]
    .map(String::from)
    .to_vec()
}

#[test]
fn without_io_uring_auto_relays_through_epoll_and_says_so_once() {
    let ports = free_ports(8);
    let range = format!("{}-{}", ports.start(), ports.end());
    let dir = binary::temp_dir("relay-io-auto");
    let args = args(&range, "auto", &dir.join("server.log"));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = binary::start_prepared(&args, &[], deny_io_uring);
    let said: Vec<_> = server
        .early
        .iter()
        .filter(|line| line.contains("io_uring unavailable"))
        .collect();
    assert_eq!(
        said.len(),
        1,
        "one line for both workers: {:?}",
        server.early
    );
    assert!(said[0].contains("INFO"), "{}", said[0]);

    // A relayed pair: the client's greeting reaches the host through the relay.
    let addr = server.addr;
    let (host, client) = (Player::new(addr), Player::new(addr));
    assert_eq!(host.request("h:noring:P0:2"), "i:P0");
    assert_eq!(client.request("c:noring:P1"), "i:P0:P1");
    assert_eq!(host.recv(), "i:P0:P1");
    host.send("s:noring:P0");
    let host_start = host.recv_skipping_info();
    let client_start = client.recv_skipping_info();
    let port = |start: &str| -> u16 { start.rsplit(':').next().unwrap().parse().unwrap() };
    let (to_host, to_client) = (port(&client_start), port(&host_start));
    assert!(ports.contains(&to_host) && ports.contains(&to_client));
    let greeting = format!("g:P1:{}:{to_host}", client.port());
    client.send_bytes_to(
        greeting.as_bytes(),
        SocketAddr::from(([127, 0, 0, 1], to_host)),
    );
    host.wait_from(SocketAddr::from(([127, 0, 0, 1], to_client)));
    assert!(server.stop().success());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn without_io_uring_relay_io_uring_refuses_to_start_with_one_line() {
    let ports = free_ports(8);
    let range = format!("{}-{}", ports.start(), ports.end());
    let mut command = Command::new(binary::BIN);
    deny_io_uring(&mut command);
    let dir = binary::temp_dir("relay-io-uring");
    let output = command
        .args(args(&range, "uring", &dir.join("server.log")))
        .output()
        .expect("run rabid-punch");
    // One line that says why and what to use instead, before anything is bound.
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "should fail: {stderr}");
    let last = stderr.trim_end().lines().last().unwrap_or_default();
    assert!(
        last.starts_with("rabid-punch: --relay-io uring: io_uring is refused here")
            && last.ends_with("use --relay-io auto or epoll"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("panicked") && !stderr.contains("listening on"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(dir);
}
