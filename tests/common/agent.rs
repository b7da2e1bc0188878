//! Helpers for the system-call tests: the `etch` command on a state directory, a
//! minted workspace, system calls through the CLI and the library, crash points.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use etch_agent::{Request, Syscalls};
use serde_json::Value;

pub fn etch(state: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_etch"))
        .args(args)
        .env("ETCH_STATE", state)
        .env("USER", "sam")
        .output()
        .unwrap()
}

pub fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A workspace with docs/notes.txt, a state directory, and a minted capability file.
pub fn setup(dir: &Path, extra: &[&str]) -> (PathBuf, PathBuf, PathBuf) {
    let ws = dir.join("ws");
    std::fs::create_dir_all(ws.join("docs")).unwrap();
    std::fs::write(ws.join("docs/notes.txt"), "remember the milk\n").unwrap();
    let state = dir.join("state");
    let mut args = vec![
        "cap",
        "mint",
        "--agent",
        "alice",
        "--workspace",
        ws.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let o = etch(&state, &args);
    assert!(o.status.success(), "{}", stderr(&o));
    let cap = dir.join("alice.cap");
    std::fs::write(&cap, &o.stdout).unwrap();
    (ws, state, cap)
}

pub fn syscall(state: &Path, ws: &Path, cap: &Path, request: &str) -> (Option<i32>, Value) {
    syscall_with(state, ws, cap, request, &[])
}

/// `etch agent syscall` with `extra` arguments (`--device DEV`, …).
pub fn syscall_with(
    state: &Path,
    ws: &Path,
    cap: &Path,
    request: &str,
    extra: &[&str],
) -> (Option<i32>, Value) {
    let mut args = vec![
        "agent",
        "syscall",
        "--workspace",
        ws.to_str().unwrap(),
        "--agent",
        "alice",
        "--cap",
        cap.to_str().unwrap(),
        "--json",
    ];
    args.extend_from_slice(extra);
    args.push(request);
    let o = etch(state, &args);
    (o.status.code(), json(&o))
}

/// A template-only system call through the library.
pub fn ask(s: &Syscalls, ws: &Path, agent: &str, token: &str, text: &str) -> etch_agent::Answer {
    s.syscall(
        &Request {
            agent,
            token,
            workspace: ws,
            text,
        },
        None,
    )
    .unwrap()
}

/// Waits for the fault hook's mark, then SIGKILLs.
pub fn kill_at(mut child: std::process::Child, state: &Path) {
    let mark = state.join("fault-reached");
    let start = Instant::now();
    while !mark.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the fault point was never reached"
        );
        if let Some(s) = child.try_wait().unwrap() {
            panic!("exited before the fault point: {s}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    std::fs::remove_file(mark).unwrap();
}

pub fn approve_with_fault(state: &Path, id: i64, point: &str) {
    run_with_fault(state, &["approvals", "approve", &id.to_string()], point);
}

/// Runs an `etch` command that stops at the crash point `point`, and kills it there.
pub fn run_with_fault(state: &Path, args: &[&str], point: &str) {
    let child = Command::new(env!("CARGO_BIN_EXE_etch"))
        .args(args)
        .env("ETCH_STATE", state)
        .env("ETCH_FAULT", point)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    kill_at(child, state);
}

/// Approves a staged action through the CLI; its JSON answer.
pub fn approve(state: &Path, id: &Value) -> Value {
    let id = id.as_i64().expect("an action number").to_string();
    json(&etch(state, &["approvals", "approve", &id, "--json"]))
}
