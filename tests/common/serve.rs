//! Helpers for tests of `etch serve`: a served chip, a client of it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, Stdio};
use std::time::{Duration, Instant};

use etch_compiler::chip::Manifest;
use etch_driver::{Chip, Timeout, VfioUser};

use super::expected;

/// A socket path in `dir` (short enough for sun_path).
pub fn socket_in(dir: &Path) -> PathBuf {
    dir.join("chip.sock")
}

pub fn connect(socket: &Path, m: &Manifest) -> Chip<VfioUser> {
    let dev = VfioUser::connect(socket, Duration::from_secs(20)).unwrap();
    Chip::open_with(
        dev,
        Some(&expected(m)),
        Timeout::Wall(Duration::from_secs(20)),
    )
    .unwrap()
}

/// Waits until something accepts connections on `socket`.
pub fn wait_for_socket(socket: &Path, child: &mut Child) {
    let start = Instant::now();
    while std::os::unix::net::UnixStream::connect(socket).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("etch serve exited early: {status}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "etch serve never listened"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn etch() -> Process {
    let mut p = Process::new(env!("CARGO_BIN_EXE_etch"));
    p.env("ETCH_LOG", "warn");
    p
}

pub fn spawn_server(out: &Path, socket: &Path) -> Child {
    let mut child = etch()
        .args(["serve"])
        .arg(out)
        .arg("--socket")
        .arg(socket)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_socket(socket, &mut child);
    // The probe connection above is served (and reset) first; let it pass.
    std::thread::sleep(Duration::from_millis(200));
    child
}
