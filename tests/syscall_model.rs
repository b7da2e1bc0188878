//! The shipped syscall model, `models/syscall.bin` (`models/README.md`): how well it
//! understands the hand-written held-out requests (float and golden models,
//! constrained decoding), and its chip — `etch build` at default settings, simulated —
//! turning English into calls that the capabilities, staging and audit log then decide
//! on, bit-exact with the golden model.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

use common::agent;
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn model() -> (String, String) {
    let m = root().join("models");
    (
        m.join("syscall.bin").to_string_lossy().into_owned(),
        m.join("syscall-tok.bin").to_string_lossy().into_owned(),
    )
}

fn etch(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_etch"))
        .args(args)
        .env("ETCH_LOG", "warn")
        .output()
        .unwrap()
}

/// `etch agent understand ARGS --json`.
fn understand(args: &[&str]) -> Value {
    let mut all = vec!["agent", "understand", "--json"];
    all.extend_from_slice(args);
    json(&etch(&all))
}

fn json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// What the shipped model measures on the held-out requests: 151 of 164 (92.1 %) float,
/// 150 (91.5 %) golden and on the chip. The bar is 90 % and the goal 98 %
/// (`docs/runtime.md` says what limits it); this guards what is reached.
const MEASURED: f64 = 0.91;

#[test]
fn the_shipped_model_understands_the_held_out_requests() {
    let (m, tok) = model();
    for golden in [false, true] {
        let mut args = vec!["--model", &m, "-z", &tok, "--heldout"];
        if golden {
            args.push("--golden");
        }
        let v = understand(&args);
        let r = &v["report"];
        assert_eq!(r["cases"], 164);
        let accuracy = r["accuracy"].as_f64().unwrap();
        assert!(
            accuracy >= MEASURED,
            "{} model: {accuracy} of the held-out requests: {}",
            if golden { "golden" } else { "float" },
            serde_json::to_string_pretty(&r["per_tool"]).unwrap()
        );
        // Refusals stay refusals.
        let none = &r["per_tool"]["none"];
        assert!(
            none["correct"].as_u64().unwrap() * 10 >= none["cases"].as_u64().unwrap() * 9,
            "{none}"
        );
    }
    // It is a checkpoint like any other: the float reference runs it.
    let v = json(&etch(&[
        "reference",
        &m,
        "-z",
        &tok,
        "-i",
        "delete old.log\n",
        "-n",
        "40",
        "-t",
        "0",
        "--json",
    ]));
    assert!(
        v["text"]
            .as_str()
            .unwrap()
            .contains("delete old.log\n fs.delete path=\"old.log\"\n"),
        "{v}"
    );
}

#[test]
fn the_syscall_chip_writes_the_calls_the_checks_decide_on() {
    let (m, tok) = model();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("chip");
    let o = out.to_str().unwrap();
    json(&etch(&["build", &m, "-z", &tok, "-o", o, "--json"]));

    // The chip writes exactly what the golden model writes, cycle-accurately simulated.
    let requests = [
        "can you read the file README.md for me?",
        "give todo.md the new name done.md",
        "let alice know \"the report is ready\"",
        "make me a sandwich",
    ];
    let device = format!("sim:{o}");
    for r in requests {
        let chip = understand(&["--device", &device, r]);
        let golden = understand(&["--model", &m, "-z", &tok, "--golden", r]);
        assert_eq!(chip["line"], golden["line"], "{r}");
        assert!(chip["cycles"].as_u64().unwrap() > 0);
    }
    // Every eighth held-out request (each tool, and refusals): the chip's lines are the
    // golden model's, and as often exactly right.
    let heldout = std::fs::read_to_string(root().join("agent/eval/syscall-heldout.jsonl")).unwrap();
    let sample: Vec<&str> = heldout.lines().step_by(8).collect();
    let sample_file = dir.path().join("sample.jsonl");
    std::fs::write(&sample_file, sample.join("\n") + "\n").unwrap();
    let s = sample_file.to_str().unwrap();
    let chip = understand(&["--device", &device, "--eval", s]);
    let golden = understand(&["--model", &m, "-z", &tok, "--golden", "--eval", s]);
    assert_eq!(chip["report"]["cases"], sample.len());
    assert_eq!(chip["report"]["correct"], golden["report"]["correct"]);
    let lines = |v: &Value| -> Vec<Value> {
        let outcomes = v["report"]["outcomes"].as_array().unwrap();
        outcomes.iter().map(|o| o["got"].clone()).collect()
    };
    assert_eq!(lines(&chip), lines(&golden));
    assert!(chip["mean_cycles_per_call"].as_f64().unwrap() > 0.0);

    // Through the system call: capability, execution or staging, the audit log.
    let (ws, state, cap) = agent::setup(dir.path(), &[]);
    std::fs::write(ws.join("README.md"), "hello from the workspace\n").unwrap();
    std::fs::write(ws.join("todo.md"), "- ship it\n").unwrap();
    let syscall =
        |request: &str| agent::syscall_with(&state, &ws, &cap, request, &["--device", &device]);
    let (_, read) = syscall(requests[0]);
    assert_eq!(read["status"], "executed");
    assert_eq!(read["resolution"], "model");
    assert_eq!(read["tool"], "fs.read");
    assert!(read["output"]
        .as_str()
        .unwrap()
        .contains("hello from the workspace"));
    let (_, moved) = syscall(requests[1]);
    assert_eq!(moved["status"], "executed");
    assert!(ws.join("done.md").exists() && !ws.join("todo.md").exists());
    let (_, sent) = syscall(requests[2]);
    assert_eq!(
        sent["status"], "staged",
        "an irreversible call waits for a person"
    );
    assert_eq!(sent["args"]["to"], "alice");
    let (code, refused) = syscall(requests[3]);
    assert_eq!(code, Some(4), "denied");
    assert_eq!(refused["status"], "denied");
    let tail = agent::etch(&state, &["audit", "tail", "-n", "40"]);
    let tail = String::from_utf8_lossy(&tail.stdout);
    assert!(
        tail.contains(
            "the syscall model read \"give todo.md the new name done.md\" as `fs.move src=\"todo.md\" dst=\"done.md\"`"
        ),
        "{tail}"
    );
    assert!(tail.contains("no tool call (none)"), "{tail}");
}
