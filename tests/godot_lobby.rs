//! The GDScript lobby browser (contrib/godot/lobby_browser.gd) in a real Godot 3, headless,
//! against the real server: tests/godot/test_lobby.gd plays hosts on stand-in plugin sockets and
//! lists, pages and quick-joins through the helper, printing `ok: ...` per step.
//!
//! Needs `godot3-server` (Debian's package, Godot 3.2.3) on the PATH, or its path in `GODOT`.
//! Without it the test says why and passes, unless `GODOT_REQUIRED=1` (CI), where it fails.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::binary::{start, temp_dir};

/// The whole Godot run, bounded: the script's own watchdog gives up after 60 s.
const GODOT_TIMEOUT: Duration = Duration::from_secs(90);

/// `GODOT`, else `godot3-server` found on the PATH.
fn godot() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("GODOT") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("godot3-server"))
        .find(|candidate| candidate.is_file())
}

/// Reads a child's pipe to its end on a thread of its own, so that a chatty child never blocks.
fn drain(pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = { pipe }.read_to_string(&mut text);
        text
    })
}

#[test]
fn the_lobby_browser_lists_pages_and_quick_joins_in_godot_3() {
    let Some(godot) = godot() else {
        let why = "godot3-server is not installed (apt-get install godot3-server, or set GODOT)";
        assert!(
            std::env::var("GODOT_REQUIRED").as_deref() != Ok("1"),
            "GODOT_REQUIRED=1 but {why}"
        );
        eprintln!("skipping the Godot lobby browser test: {why}");
        return;
    };
    let server = start(&["--port", "0", "--bind", "127.0.0.1"]);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // Godot's user and cache directories go to a scratch directory, not the home directory.
    let scratch = temp_dir("godot-lobby");

    let mut child = Command::new(&godot)
        .arg("--path")
        .arg(root.join("tests/godot"))
        .args(["--script", "test_lobby.gd", "--"])
        .arg(format!("--server={}", server.addr))
        .arg(format!(
            "--helper={}",
            root.join("contrib/godot/lobby_browser.gd").display()
        ))
        .env("XDG_DATA_HOME", scratch.join("data"))
        .env("XDG_CONFIG_HOME", scratch.join("config"))
        .env("XDG_CACHE_HOME", scratch.join("cache"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", godot.display()));
    let stdout = drain(child.stdout.take().unwrap());
    let stderr = drain(child.stderr.take().unwrap());

    let deadline = Instant::now() + GODOT_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() >= deadline {
            // Kills our own child, by its pid, and reaps it.
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stdout = stdout.join().unwrap();
    let stderr = stderr.join().unwrap();
    let _ = std::fs::remove_dir_all(&scratch);
    let report = format!("--- stdout\n{stdout}\n--- stderr\n{stderr}");

    let Some(status) = status else {
        panic!("Godot ran over {GODOT_TIMEOUT:?} and was killed\n{report}");
    };
    // A GDScript parse error leaves Godot with exit code 0: the last line is what counts.
    assert!(!stderr.contains("SCRIPT ERROR"), "{report}");
    assert!(!stdout.contains("FAIL: "), "{report}");
    assert!(stdout.contains("GODOT LOBBY TEST PASSED"), "{report}");
    assert!(status.success(), "Godot exited with {status}\n{report}");
    for step in [
        "Room1 announced",
        "Room2 listed by d:",
        "browse lists Room1, Room3, Room5 on one page",
        "small pages hold every lobby once",
        "an unpadded browse: page too small",
        "quick join finds Room1",
        "l: lists Room2 only",
        "chat reaches Room1's players",
        "Room1 left the list when it started",
        "a silent server: timeout after 3 sends",
    ] {
        assert!(
            stdout.contains(&format!("ok: {step}")),
            "no `ok: {step}`\n{report}"
        );
    }
    assert_eq!(server.stop().code(), Some(0));
}
