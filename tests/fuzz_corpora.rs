//! The fuzz corpora, replayed: every input under `fuzz/corpus/TARGET` goes through the
//! target's own check (`fuzz/src/lib.rs`, included here) in the plain test build. The
//! corpora hold the inputs that reached new code when they were fuzzed, and every input
//! that once failed, so a regression in any parser a hostile peer reaches fails here
//! without cargo-fuzz or an instrumented build (scripts/fuzz fuzzes for longer).

#[path = "../fuzz/src/lib.rs"]
mod fuzz;

use std::path::PathBuf;

/// Every target's corpus, input by input; a failure names the target and the file.
#[test]
fn every_fuzz_corpus_input_passes_its_target() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let mut replayed = 0;
    for (name, target) in fuzz::TARGETS {
        let dir = root.join(name);
        let mut inputs: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.unwrap().path())
            .collect();
        inputs.sort();
        assert!(!inputs.is_empty(), "{} holds no inputs", dir.display());
        for input in &inputs {
            let data = std::fs::read(input).unwrap();
            if std::panic::catch_unwind(|| target(&data)).is_err() {
                panic!("fuzz target {name} fails on {}", input.display());
            }
        }
        replayed += inputs.len();
    }
    assert!(replayed > 1000, "only {replayed} inputs replayed");
}

/// The targets this test replays are the ones `fuzz/Cargo.toml` declares.
#[test]
fn the_replayed_targets_are_the_declared_ones() {
    let manifest =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/Cargo.toml")).unwrap();
    let mut declared: Vec<&str> = manifest
        .lines()
        .filter_map(|l| l.strip_prefix("name = \""))
        .filter_map(|l| l.strip_suffix('"'))
        .filter(|n| *n != "etch-fuzz")
        .collect();
    let mut replayed: Vec<&str> = fuzz::TARGETS.iter().map(|(n, _)| *n).collect();
    declared.sort();
    replayed.sort();
    assert_eq!(replayed, declared);
}
