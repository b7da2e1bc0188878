//! The board top over its serial line: `etch_board` (the chip behind the UART bridge)
//! simulated in Verilator and served on a pseudo-terminal, driven by the driver's
//! serial backend through termios, gives what the in-process chip gives — tokens,
//! logits bit for bit, DMA errors — and `etch run --device serial:` gives what
//! `etch sim` gives.

mod common;

use std::path::Path;
use std::process::{Command as Process, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{expected, open_chip, prefill_outside_host_memory, session, small_chip};
use etch_driver::{Chip, Serial, Timeout};
use etch_firmware::Status;

fn wait_for_link(link: &Path, alive: &mut dyn FnMut() -> bool) {
    let start = Instant::now();
    while !link.exists() {
        assert!(alive(), "the board server stopped before serving");
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "the board was never served"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_serial_link_gives_what_the_in_process_chip_gives() {
    let dir = tempfile::tempdir().unwrap();
    let (out, m) = small_chip(dir.path());
    let want = session(&open_chip(&out, &m));

    let divisor = etch_sim::board::SIM_DIVISOR;
    let lib = etch_sim::build_board(&out, &m.design_hash, divisor).unwrap();
    let link = dir.path().join("tty");
    let stop = Arc::new(AtomicBool::new(false));
    let (o, l, s) = (out.clone(), link.clone(), stop.clone());
    let server = std::thread::spawn(move || {
        etch_sim::board::serve_pty(&o, &lib, &l, divisor, &s, &mut |_| {})
    });
    wait_for_link(&link, &mut || !server.is_finished());

    let timeout = Duration::from_secs(30);
    let dev = Serial::open(&link, etch_driver::serial::DEFAULT_BAUD, timeout).unwrap();
    let chip = Chip::open_with(dev, Some(&expected(&m)), Timeout::Wall(timeout)).unwrap();
    let got = session(&chip);
    assert_eq!(got.0, want.0, "greedy tokens");
    assert_eq!(got.1.len(), want.1.len(), "logit rows");
    for (k, (g, w)) in got.1.iter().zip(&want.1).enumerate() {
        let first = g.iter().zip(w).position(|(a, b)| a != b);
        assert!(
            g.len() == w.len() && first.is_none(),
            "logits of step {k} differ at {first:?} (lengths {} and {})",
            g.len(),
            w.len()
        );
    }
    assert_eq!(got.2, want.2, "sampled tokens");
    assert_eq!(got.3, want.3, "identify block");

    // A descriptor pointing outside the host's buffers: the host answers the DMA beat
    // with an error status, the chip completes with DMA_ERROR and keeps serving.
    assert_eq!(prefill_outside_host_memory(&chip), Status::DmaError as u16);

    // A new client (a reset on open) starts from a fresh chip.
    drop(chip);
    let dev = Serial::open(&link, etch_driver::serial::DEFAULT_BAUD, timeout).unwrap();
    let chip = Chip::open_with(dev, Some(&expected(&m)), Timeout::Wall(timeout)).unwrap();
    assert_eq!(session(&chip).0, want.0, "a second client");
    drop(chip);

    stop.store(true, Ordering::Relaxed);
    server.join().unwrap().unwrap();
    assert!(!link.exists(), "the server removes its link");
}

fn etch_json(args: &[&str]) -> serde_json::Value {
    let o = Process::new(env!("CARGO_BIN_EXE_etch"))
        .args(args)
        .env("ETCH_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "etch {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn etch_run_over_serial_gives_the_ids_of_etch_sim() {
    let dir = tempfile::tempdir().unwrap();
    let (out, _) = small_chip(dir.path());
    let link = dir.path().join("board-tty");
    let o = out.to_str().unwrap();
    let mut server = Process::new(env!("CARGO_BIN_EXE_etch"))
        .args(["serve", o, "--pty"])
        .arg(&link)
        .env("ETCH_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_link(&link, &mut || matches!(server.try_wait(), Ok(None)));
    let device = format!("serial:{},1000000", link.display());
    for flags in [
        vec!["-i", "abc", "-n", "12", "-t", "0"],
        vec!["-i", "b", "-n", "14", "-t", "1", "-p", "0.9", "-s", "7"],
    ] {
        let mut sim = vec!["sim", o, "--json"];
        sim.extend(&flags);
        let mut run = vec!["run", "--device", &device, "--manifest", o, "--json"];
        run.extend(&flags);
        let want = etch_json(&sim);
        let got = etch_json(&run);
        assert_eq!(got["ids"], want["ids"], "{flags:?}");
        assert_eq!(got["prompt_ids"], want["prompt_ids"]);
        assert_eq!(got["text"], want["text"]);
        assert!(got["device"].as_str().unwrap().starts_with("serial:"));
    }
    let _ = server.kill();
    let _ = server.wait();
}

#[test]
fn serial_devices_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let (out, _) = small_chip(dir.path());
    let o = out.to_str().unwrap();
    let missing = format!("serial:{}/nothing", dir.path().display());
    for (device, needle) in [
        (missing.as_str(), "cannot open the serial port"),
        ("serial:/dev/null", "not a serial port"),
        ("serial:/dev/ttyS0,12345", "not a rate"),
        ("serial:", "expected sim:OUT"),
    ] {
        let o = Process::new(env!("CARGO_BIN_EXE_etch"))
            .args(["run", "--device", device, "--manifest", o, "-n", "2"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{device}");
        assert!(err.contains(needle), "{device}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
}
