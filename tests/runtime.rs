//! The host runtime on a simulated chip: its stories are `etch sim`'s, its scores the
//! golden model's; with more contexts than KV slots, eviction and restore are invisible
//! in the tokens; a restarted process continues a persisted context exactly; a damaged
//! context file is a clear error that leaves the other contexts usable; a context that
//! reaches the model's sequence is compacted and keeps going.

mod common;

use std::path::Path;
use std::process::Command as Process;

use common::{quick_quant, small_chip};
use etch_compiler::chip::Manifest;
use etch_compiler::{Golden, QuantizedModel};
use etch_driver::{InProcess, Timeout};
use etch_runtime::{ContextEvent, Engine, GenOptions, RuntimeError, Source};

fn engine(out: &Path, m: &Manifest, state: Option<&Path>) -> Engine<InProcess> {
    let dev = InProcess::open(out, &m.design_hash).unwrap();
    Engine::open(dev, out, state, Timeout::Slices(2000)).unwrap()
}

fn opts(seed: u64) -> GenOptions {
    GenOptions {
        max_tokens: 6,
        temperature: 1.0,
        topp: 0.9,
        seed,
        stop: Vec::new(),
    }
}

/// Two turns of three agents: (agent, first text, second text).
const TURNS: [(&str, &str, &str); 3] = [
    ("alice", "the cat", "and then"),
    ("bob", "a dog ran", "so"),
    ("carol", "once", "the end"),
];

fn say(e: &Engine<InProcess>, agent: &str, text: &str, seed: u64) -> Vec<u32> {
    e.chat(agent, "main", text, &opts(seed), &mut |_| {})
        .unwrap()
        .ids
}

#[test]
fn stories_equal_etch_sim_and_scores_equal_the_golden_model() {
    let dir = tempfile::tempdir().unwrap();
    let (out, m) = small_chip(dir.path());
    let e = engine(&out, &m, None);
    for (flags, (t, p, s)) in [
        (vec!["-t", "0"], (0.0, 0.9, 0u64)),
        (vec!["-t", "1", "-p", "0.9", "-s", "5"], (1.0, 0.9, 5)),
    ] {
        let story = e.story("a b", 20, t, p, s, &mut |_| {}).unwrap();
        let o = Process::new(env!("CARGO_BIN_EXE_etch"))
            .args([
                "sim",
                out.to_str().unwrap(),
                "-i",
                "a b",
                "-n",
                "20",
                "--json",
            ])
            .args(&flags)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let sim: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let ids: Vec<u32> = serde_json::from_value(sim["ids"].clone()).unwrap();
        assert_eq!(story.generation.ids, ids, "{flags:?}");
        assert_eq!(
            String::from_utf8_lossy(&story.generation.text),
            sim["text"].as_str().unwrap()
        );
    }

    // SCORE against the golden model's log-probabilities, bit for bit (Q10 log2).
    let ck = etch_compiler::Checkpoint::open(dir.path().join("model.bin")).unwrap();
    let tok = e.tokenizer().clone();
    let model = QuantizedModel::build(&ck, &tok, &quick_quant()).unwrap();
    let score = e.score("the quick fox").unwrap();
    let mut golden = Golden::new(&model);
    for (k, w) in score.tokens.windows(2).enumerate() {
        let logits = golden.forward(w[0], k).to_vec();
        let q = etch_compiler::logprob(&logits, &model, w[1]);
        let want = q as f64 / 1024.0 * std::f64::consts::LN_2;
        assert_eq!(score.logprobs[k], want, "token {k}");
    }
    assert!(score.total < 0.0);
    assert!(matches!(e.score(""), Err(RuntimeError::InvalidArgument(_))));
}

#[test]
fn more_contexts_than_slots_give_the_tokens_of_each_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (out, m) = small_chip(dir.path());
    // Each agent alone on a fresh chip.
    let mut alone = Vec::new();
    for (k, (agent, a, b)) in TURNS.iter().enumerate() {
        let e = engine(&out, &m, None);
        alone.push((
            say(&e, agent, a, k as u64),
            say(&e, agent, b, 10 + k as u64),
        ));
    }
    // Interleaved on one chip with two slots: the third agent evicts the first, whose
    // second turn restores it (evicting the second), and so on.
    let state = dir.path().join("state");
    let e = engine(&out, &m, Some(&state));
    let mut first = Vec::new();
    for (k, (agent, a, _)) in TURNS.iter().enumerate() {
        first.push(say(&e, agent, a, k as u64));
    }
    for (k, (agent, _, b)) in TURNS.iter().enumerate() {
        let second = say(&e, agent, b, 10 + k as u64);
        assert_eq!(first[k], alone[k].0, "{agent}: first turn");
        assert_eq!(second, alone[k].1, "{agent}: second turn after eviction");
    }
    let events = e.take_events();
    let evicted = events
        .iter()
        .filter(|e| matches!(e, ContextEvent::Evicted { to_disk: true, .. }))
        .count();
    let restored = events
        .iter()
        .filter(|e| {
            matches!(
                e,
                ContextEvent::Restored {
                    from: Source::Memory,
                    ..
                }
            )
        })
        .count();
    assert!(evicted >= 3 && restored >= 3, "{events:#?}");
    assert!(events[0]
        .describe()
        .starts_with("created context alice/main"));
    assert!(state.join("contexts/alice/main.ctx").exists());
}

#[test]
fn a_restarted_process_continues_a_persisted_context_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let (out, m) = small_chip(dir.path());
    let uninterrupted = {
        let e = engine(&out, &m, None);
        let a = say(&e, "alice", "the cat", 1);
        (a, say(&e, "alice", "and then", 2))
    };
    let state = dir.path().join("state");
    {
        let e = engine(&out, &m, Some(&state));
        assert_eq!(say(&e, "alice", "the cat", 1), uninterrupted.0);
        say(&e, "bob", "a dog ran", 3);
        let files = e.persist().unwrap();
        assert_eq!(files.len(), 2);
    }
    // A new process: a fresh chip (all slots empty), the same state directory.
    let e = engine(&out, &m, Some(&state));
    assert_eq!(
        say(&e, "alice", "and then", 2),
        uninterrupted.1,
        "restored from disk"
    );
    assert!(e.take_events().iter().any(|ev| matches!(
        ev,
        ContextEvent::Restored {
            from: Source::Disk,
            ..
        }
    )));

    // Damage bob's file: a clear error naming it; alice keeps working; bob's file is
    // left as it was for inspection.
    let bob = state.join("contexts/bob/main.ctx");
    let mut bytes = std::fs::read(&bob).unwrap();
    let k = bytes.len() - 10;
    bytes[k] ^= 0x55;
    std::fs::write(&bob, &bytes).unwrap();
    let err = e
        .chat("bob", "main", "so", &opts(4), &mut |_| {})
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("bob/main.ctx") && msg.contains("SHA-256"),
        "{msg}"
    );
    assert_eq!(
        std::fs::read(&bob).unwrap(),
        bytes,
        "the damaged file is kept"
    );
    say(&e, "alice", "more", 5);
    // A context of another model is refused, not restored.
    let mut other = std::fs::read(state.join("contexts/alice/main.ctx")).unwrap();
    let at = other
        .windows(64)
        .position(|w| w == m.model_identity.as_bytes());
    if let Some(at) = at {
        other[at] = if other[at] == b'0' { b'1' } else { b'0' };
    }
    std::fs::write(state.join("contexts/carol/main.ctx"), &other).ok();
    std::fs::create_dir_all(state.join("contexts/carol")).unwrap();
    std::fs::write(state.join("contexts/carol/main.ctx"), &other).unwrap();
    let err = e
        .chat("carol", "main", "x", &opts(6), &mut |_| {})
        .unwrap_err();
    assert!(
        err.to_string().contains("saved by a chip of model"),
        "{err}"
    );
}

#[test]
fn a_full_context_is_compacted_and_keeps_going() {
    let dir = tempfile::tempdir().unwrap();
    let (out, m) = small_chip(dir.path());
    let e = engine(&out, &m, None);
    e.set_system("dave", "log", "you are a cat").unwrap();
    let system = e.context_tokens("dave", "log").unwrap().unwrap();
    let mut compactions = 0;
    for turn in 0..12 {
        let r = e
            .chat("dave", "log", "and the dog", &opts(turn), &mut |_| {})
            .unwrap();
        assert!(r.context_tokens <= 64, "turn {turn}: {}", r.context_tokens);
        let tokens = e.context_tokens("dave", "log").unwrap().unwrap();
        assert_eq!(
            &tokens[..system.len()],
            &system[..],
            "the system prompt stays"
        );
        compactions += e
            .take_events()
            .iter()
            .filter(|ev| matches!(ev, ContextEvent::Compacted { .. }))
            .count();
    }
    assert!(compactions >= 1, "64 positions and 12 turns of ~10 tokens");
    // The same reply as an iterator of pieces.
    let shared = std::sync::Arc::new(e);
    let want = {
        let r = shared
            .chat("frank", "a", "the cat", &opts(9), &mut |_| {})
            .unwrap();
        shared.forget("frank", "a").unwrap();
        r
    };
    let mut stream = shared.chat_stream("frank", "a", "the cat", &opts(9));
    let pieces: Vec<String> = stream.by_ref().collect();
    let r = stream.finish().unwrap();
    assert_eq!(r.ids, want.ids);
    assert_eq!(pieces.concat(), r.text);
    let e = shared;
    // Stop strings cut the reply.
    let r = e
        .chat(
            "erin",
            "x",
            "a",
            &GenOptions {
                max_tokens: 20,
                temperature: 0.0,
                stop: vec![" ".into()],
                ..GenOptions::default()
            },
            &mut |_| {},
        )
        .unwrap();
    assert!(!r.text.contains(' '), "{:?}", r.text);
    assert!(matches!(
        e.chat("bad/name", "x", "a", &opts(0), &mut |_| {}),
        Err(RuntimeError::BadName(_))
    ));
}

fn etch_chat(out: &Path, state: &Path, args: &[&str], stdin: Option<&str>) -> std::process::Output {
    use std::io::Write;
    let mut child = Process::new(env!("CARGO_BIN_EXE_etch"))
        .args(["chat", "--device"])
        .arg(format!("sim:{}", out.display()))
        .arg("--state")
        .arg(state)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

#[test]
fn etch_chat_keeps_a_context_across_runs() {
    let dir = tempfile::tempdir().unwrap();
    let (out, m) = small_chip(dir.path());
    let want = {
        let e = engine(&out, &m, None);
        let a = say(&e, "user", "the cat", 3);
        (a, say(&e, "user", "and then", 4))
    };
    let state = dir.path().join("state");
    let turn = |text: &str, seed: &str| -> serde_json::Value {
        let o = etch_chat(
            &out,
            &state,
            &[
                "--context",
                "main",
                "-i",
                text,
                "-n",
                "6",
                "-t",
                "1",
                "-p",
                "0.9",
                "-s",
                seed,
                "--json",
            ],
            None,
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let first = turn("the cat", "3");
    let second = turn("and then", "4");
    let ids =
        |v: &serde_json::Value| -> Vec<u32> { serde_json::from_value(v["ids"].clone()).unwrap() };
    assert_eq!(ids(&first), want.0);
    assert_eq!(
        ids(&second),
        want.1,
        "the second process continues the first's context"
    );
    for key in [
        "prompt_ids",
        "text",
        "cycles",
        "tokens",
        "cycles_per_token",
        "tok_per_s_at_100mhz",
        "lanes",
    ] {
        assert!(second.get(key).is_some(), "{key}: {second}");
    }
    // The conversation on standard input: a reply per line, the context kept.
    let o = etch_chat(
        &out,
        &state,
        &["--context", "repl", "-n", "5", "-t", "0"],
        Some("the dog\n\n/quit\n"),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!o.stdout.is_empty());
    assert!(String::from_utf8_lossy(&o.stderr).contains("created context user/repl"));
    assert!(state.join("contexts/user/repl.ctx").exists());
}
