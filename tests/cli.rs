//! The command-line contract that scripts depend on: JSON shapes, exit codes, and one
//! clear line on stderr for bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use etch_compiler::synthetic::write_random_model;
use etch_compiler::Config;
use serde_json::Value;

fn models() -> PathBuf {
    match std::env::var_os("ETCH_MODELS") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/models"),
    }
}

fn etch(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_etch"))
        .args(args)
        .output()
        .expect("run etch")
}

fn stories() -> (String, String) {
    let m = models();
    (
        m.join("stories260K.bin").display().to_string(),
        m.join("tok512.bin").display().to_string(),
    )
}

/// A random model's shape small enough to build in seconds.
fn tiny_config() -> Config {
    Config {
        dim: 16,
        hidden_dim: 24,
        n_layers: 1,
        n_heads: 2,
        n_kv_heads: 1,
        vocab_size: 300,
        seq_len: 8,
        shared_classifier: true,
    }
}

fn json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "etch failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object on stdout")
}

/// Exit code 2, one line on stderr that mentions `needle`, and no panic.
fn assert_bad_input(out: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(err.contains(needle), "expected {needle:?} in {err}");
}

#[test]
fn reference_json_reproduces_run_c() {
    let (model, tok) = stories();
    let cases: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(models().join("expected/stories260K.json")).unwrap(),
    )
    .unwrap();
    for case in cases {
        let n = case["steps"].to_string();
        let t = case["temperature"].to_string();
        let p = case["topp"].to_string();
        let s = case["seed"].to_string();
        let prompt = case["prompt"].as_str().unwrap();
        let out = etch(&[
            "reference",
            &model,
            "-z",
            &tok,
            "-i",
            prompt,
            "-n",
            &n,
            "-t",
            &t,
            "-p",
            &p,
            "-s",
            &s,
            "--json",
        ]);
        let v = json(&out);
        assert_eq!(v["prompt_ids"], case["prompt_ids"], "{}", case["name"]);
        assert_eq!(v["ids"], case["ids"], "{}", case["name"]);
        assert_eq!(v["text"], case["text"], "{}", case["name"]);
    }
}

#[test]
fn reference_prints_the_text_as_run_c_does() {
    let (model, tok) = stories();
    let out = etch(&[
        "reference",
        &model,
        "-z",
        &tok,
        "-i",
        "Once upon a time",
        "-t",
        "0",
        "-n",
        "30",
    ]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("Once upon a time, there was a little girl named Lily."));
    assert!(text.ends_with('\n'));
    assert!(String::from_utf8_lossy(&out.stderr).contains("achieved tok/s"));
}

#[test]
fn emulate_json_has_the_contract_fields_and_is_deterministic() {
    let (model, tok) = stories();
    let args = [
        "emulate", &model, "-z", &tok, "-i", "One day", "-n", "40", "-t", "0.8", "-p", "0.9", "-s",
        "7", "--json",
    ];
    let a = json(&etch(&args));
    let b = json(&etch(&args));
    assert_eq!(a, b);
    assert_eq!(a["prompt_ids"][0], 1);
    let ids = a["ids"].as_array().unwrap();
    assert!(
        !ids.is_empty() && ids.len() <= 40,
        "one id per forward pass"
    );
    assert!(a["text"].as_str().unwrap().starts_with("One day"));
}

#[test]
fn accuracy_json_reports_the_targets() {
    let (model, tok) = stories();
    let text = models().join("eval/stories260K-samples.txt");
    let v = json(&etch(&[
        "accuracy",
        &model,
        "-z",
        &tok,
        "--text",
        text.to_str().unwrap(),
        "--json",
    ]));
    for key in [
        "tokens",
        "top1_agreement",
        "ppl_float",
        "ppl_quant",
        "max_abs_logit_err",
        "mean_abs_logit_err",
        "greedy_first_divergence",
    ] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
    assert!(v["top1_agreement"].as_f64().unwrap() >= 0.98);
    let (f, q) = (
        v["ppl_float"].as_f64().unwrap(),
        v["ppl_quant"].as_f64().unwrap(),
    );
    assert!((q / f - 1.0).abs() <= 0.02);
}

#[test]
fn accuracy_per_format_per_matrix_and_per_budget() {
    let (model, tok) = stories();
    let text = models().join("eval/stories260K-samples.txt");
    let text = text.to_str().unwrap();
    let base = [
        "accuracy",
        &model,
        "-z",
        &tok,
        "--text",
        text,
        "--greedy-steps",
        "16",
    ];
    let run = |extra: &[&str]| {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        args.push("--json");
        json(&etch(&args))
    };
    // 4-bit, groups of 32, each matrix alone.
    let v = run(&["--weight-bits", "4", "--group", "32", "--per-matrix"]);
    assert_eq!(v["weights"]["bits"], 4);
    assert_eq!(v["weights"]["group"], 32);
    let per = v["per_matrix"].as_array().unwrap();
    let names: Vec<&str> = per.iter().map(|m| m["matrix"].as_str().unwrap()).collect();
    assert_eq!(names, ["token_embedding", "wqkv", "wo", "w1", "w3", "w2"]);
    for m in per {
        // One matrix at 4 bits costs less than all of them.
        assert!(m["ppl_rel_diff"].as_f64().unwrap() < v["ppl_rel_diff"].as_f64().unwrap());
    }
    // A budget between the 4-bit and 8-bit sizes: a 4-bit mix within it.
    let budget = 1_500_000u64;
    let v = run(&["--rom-budget", "1.5M"]);
    assert_eq!(v["weights"]["bits"], 4, "{v}");
    assert!(v["weights"]["rom_bits"].as_u64().unwrap() <= budget, "{v}");
    assert_eq!(v["mix"]["budget_bits"], budget);
    assert!(v["mix"]["trials"].as_array().unwrap().len() > 5);
    // Bad formats: one clear line, exit 2.
    let out = etch(&[&base[..], &["--weight-bits", "4", "--group", "12"]].concat());
    assert_bad_input(&out, "8, 16, 32 or 64");
    let out = etch(&[&base[..], &["--weight-bits", "8", "--group", "8"]].concat());
    assert_bad_input(&out, "need 4-bit weights");
    let out = etch(&[&base[..], &["--weight-bits", "4", "--wide", "wz"]].concat());
    assert_bad_input(&out, "\"wz\" is not a matrix");
    let out = etch(&[&base[..], &["--rom-budget", "100k"]].concat());
    assert_bad_input(&out, "too small");
    let out = etch(&[&base[..], &["--rom-budget", "lots"]].concat());
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn info_json_gives_shapes_and_sizes() {
    let (model, tok) = stories();
    let v = json(&etch(&["info", &model, "-z", &tok, "--json"]));
    assert_eq!(v["dim"], 64);
    assert_eq!(v["n_kv_heads"], 4);
    assert_eq!(v["params"], 260_032);
    assert_eq!(v["file_bytes"], 1_056_540);
    assert_eq!(v["tokenizer"]["pieces"], 512);
}

#[test]
fn bad_input_exits_2_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let (model, tok) = stories();
    // Truncated checkpoint.
    let bytes = std::fs::read(&model).unwrap();
    let cut = dir.path().join("cut.bin");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let out = etch(&["reference", cut.to_str().unwrap(), "-z", &tok]);
    assert_bad_input(&out, "cut.bin is truncated");
    // NaN weight.
    let mut nan = bytes.clone();
    nan[28 + 4 * 1000..28 + 4 * 1001].copy_from_slice(&f32::NAN.to_le_bytes());
    let nan_path = dir.path().join("nan.bin");
    std::fs::write(&nan_path, &nan).unwrap();
    assert_bad_input(
        &etch(&["emulate", nan_path.to_str().unwrap(), "-z", &tok]),
        "not a finite number",
    );
    // A tokenizer of another model.
    let config = tiny_config();
    let (small, small_tok) = write_random_model(dir.path(), &config, 1).unwrap();
    let out = etch(&["reference", &model, "-z", small_tok.to_str().unwrap()]);
    assert_bad_input(&out, "do not match");
    // A prompt longer than the context.
    let out = etch(&[
        "reference",
        small.to_str().unwrap(),
        "-z",
        small_tok.to_str().unwrap(),
        "-i",
        "a very long prompt that cannot fit into eight positions",
    ]);
    assert_bad_input(&out, "context holds 8");
    // Missing files.
    assert_bad_input(&etch(&["info", "/nonexistent.bin"]), "/nonexistent.bin");
    let lonely = dir.path().join("lonely");
    std::fs::create_dir(&lonely).unwrap();
    std::fs::copy(&small, lonely.join("m.bin")).unwrap();
    let out = etch(&["reference", lonely.join("m.bin").to_str().unwrap()]);
    assert_bad_input(&out, "pass -z");
    // Usage errors are exit code 2 too (clap).
    let out = etch(&["reference"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn tokenizer_beside_the_model_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        seq_len: 16,
        shared_classifier: false,
        ..tiny_config()
    };
    let (small, _) = write_random_model(dir.path(), &config, 2).unwrap();
    let v = json(&etch(&[
        "reference",
        small.to_str().unwrap(),
        "-s",
        "3",
        "--json",
    ]));
    let ids = v["ids"].as_array().unwrap();
    assert!(
        !ids.is_empty() && ids.len() <= 16,
        "steps default to 256, capped at the context"
    );
}

#[test]
fn help_teaches_the_commands() {
    let out = etch(&["--help"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for cmd in ["info", "reference", "emulate", "accuracy"] {
        assert!(text.contains(cmd), "{cmd} missing from --help");
    }
}

/// `etch build --fit`: the configuration the resource model chooses for a board, in
/// the build's JSON, within the part; a part nothing fits, or a fit with sizes given
/// by hand, is refused with one line.
#[test]
fn build_fit_chooses_a_configuration_within_the_part() {
    let (model, tok) = stories();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("fit");
    let o = out.to_str().unwrap();
    let v = json(&etch(&[
        "build", &model, "-z", &tok, "-o", o, "--fit", "ulx3s", "--json",
    ]));
    let fit = &v["fit"];
    assert_eq!(fit["target"], "ecp5-85k", "{v}");
    assert_eq!(fit["pipeline"], "fpga");
    assert_eq!(v["lanes"], fit["lanes"]);
    assert_eq!(v["requantizers"], fit["requantizers"]);
    assert_eq!(v["columns"], fit["columns"]);
    assert_eq!(v["lut_columns"], fit["lut_columns"]);
    assert!(
        fit["lut_columns"].as_u64() < fit["columns"].as_u64(),
        "{fit}"
    );
    assert!(
        fit["estimated_cycles_per_token"].as_f64().unwrap() > 1_000.0,
        "{fit}"
    );
    assert_eq!(v["max_seq"], fit["max_seq"]);
    let lanes = fit["lanes"].as_u64().unwrap();
    assert!(lanes.is_power_of_two() && lanes >= 8, "{fit}");
    for (key, have) in [
        ("luts", 83_640.0 * 0.45),
        ("brams", 208.0 * 0.85),
        ("dsps", 156.0),
    ] {
        let need = fit["estimate"][key].as_f64().unwrap();
        assert!(need > 0.0 && need <= have, "{key}: {fit}");
    }
    assert!(!fit["reasons"].as_array().unwrap().is_empty(), "{fit}");
    // The weights it chose, measured.
    assert_eq!(v["weights"]["bits"], fit["weight_bits"]);
    assert_eq!(v["weights"]["group"], fit["group"]);
    let acc = &fit["accuracy"];
    assert!(acc["top1_agreement"].as_f64().unwrap() > 0.5, "{fit}");
    assert!(acc["ppl_rel_diff"].as_f64().unwrap().is_finite(), "{fit}");
    assert_eq!(acc["weight_rom_bits"], v["weights"]["rom_bits"], "{v}");
    // `etch bench --board … --chip OUT` measures a chip already built, from its own
    // model: another model is refused before anything is synthesized, and --chip
    // needs a board.
    let config = tiny_config();
    let (other, other_tok) = write_random_model(dir.path(), &config, 5).unwrap();
    let bench_out = dir.path().join("bench");
    assert_bad_input(
        &etch(&[
            "bench",
            "--board",
            "ulx3s",
            "--chip",
            o,
            "--model",
            other.to_str().unwrap(),
            "-z",
            other_tok.to_str().unwrap(),
            "--out",
            bench_out.to_str().unwrap(),
        ]),
        "pass that model with --model and -z",
    );
    assert!(!out.join("fpga").exists(), "nothing synthesized");
    let no_board = etch(&["bench", "--chip", o]);
    assert_eq!(no_board.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&no_board.stderr).contains("--board"));
    // A clock the flow cannot aim for is refused before anything is synthesized.
    let fast = etch(&[
        "bench",
        "--board",
        "ulx3s",
        "--chip",
        o,
        "--model",
        &model,
        "-z",
        &tok,
        "--freq",
        "2000",
        "--out",
        bench_out.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&fast.stderr);
    assert_eq!(fast.status.code(), Some(2), "{err}");
    assert!(err.contains("--freq 2000 MHz is not a clock"), "{err}");
    assert!(!out.join("fpga").join("ecp5-85k").join("pnr.json").exists());
    // The smaller ECP5 gets a smaller chip, or none at all.
    let small = etch(&[
        "build", &model, "-z", &tok, "-o", o, "--fit", "ecp5-25k", "--json",
    ]);
    if small.status.success() {
        let s = json(&small);
        assert!(s["lanes"].as_u64().unwrap() <= lanes, "{s}");
    } else {
        let err = String::from_utf8_lossy(&small.stderr);
        assert_eq!(small.status.code(), Some(3), "{err}");
        assert!(err.contains("fits the ecp5-25k"), "{err}");
    }
    let err = etch(&[
        "build", &model, "-z", &tok, "-o", o, "--fit", "ulx3s", "--lanes", "8",
    ]);
    assert_eq!(err.status.code(), Some(2));
    assert_bad_input(
        &etch(&["build", &model, "-z", &tok, "-o", o, "--fit", "de10"]),
        "not a board",
    );
    // Column 0 keeps its multiplier.
    assert_bad_input(
        &etch(&[
            "build",
            &model,
            "-z",
            &tok,
            "-o",
            o,
            "--columns",
            "2",
            "--lut-columns",
            "2",
        ]),
        "at most 1 of 2 columns can multiply in logic",
    );
}

#[test]
fn without_the_model_the_demo_and_bench_say_what_to_get() {
    let empty = tempfile::tempdir().unwrap();
    // scripts/demo checks for the model before it sets anything up: without one in
    // $ETCH_MODELS it runs the story model the repository ships, and says so …
    let demo = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/demo"))
        .env("ETCH_MODELS", empty.path())
        .env("ETCH_DEMO_DRY_RUN", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&demo.stderr);
    assert_eq!(demo.status.code(), Some(0), "{err}");
    assert!(err.contains("models/stories260K-q4.bin"), "{err}");
    assert!(String::from_utf8_lossy(&demo.stdout).contains("would build models/stories260K-q4.bin"));
    // … and in a checkout without it, it says what to get and where to put it.
    let bare = tempfile::tempdir().unwrap();
    std::fs::create_dir(bare.path().join("scripts")).unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/demo"),
        bare.path().join("scripts/demo"),
    )
    .unwrap();
    let demo = Command::new(bare.path().join("scripts/demo"))
        .env("ETCH_MODELS", empty.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&demo.stderr);
    assert_eq!(demo.status.code(), Some(2), "{err}");
    for needle in [
        "stories260K.bin",
        "tok512.bin",
        "karpathy/tinyllamas",
        "ETCH_MODELS",
    ] {
        assert!(err.contains(needle), "{needle:?} missing in: {err}");
    }
    let bench = Command::new(env!("CARGO_BIN_EXE_etch"))
        .args(["bench", "--lanes", "8", "--out"])
        .arg(empty.path().join("out"))
        .env("ETCH_MODELS", empty.path())
        .output()
        .unwrap();
    assert_bad_input(&bench, "karpathy/tinyllamas");
}

#[test]
fn train_syscall_trains_on_the_registrys_corpus_and_measures_the_held_out_requests() {
    let (_, tok) = stories();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sys");
    let o = out.to_str().unwrap();
    let args = [
        "train",
        "syscall",
        "-o",
        o,
        "-z",
        &tok,
        "--examples",
        "400",
        "--steps",
        "25",
        "--batch",
        "8",
        "--dim",
        "16",
        "--hidden",
        "32",
        "--layers",
        "1",
        "--heads",
        "2",
        "--kv-heads",
        "1",
        "--lr",
        "1e-2",
        "--json",
    ];
    let v = json(&etch(&args));
    assert_eq!(v["examples"], 400);
    assert_eq!(v["config"]["dim"], 16);
    let (before, after) = (
        v["validation_loss_before"].as_f64().unwrap(),
        v["validation_loss_after"].as_f64().unwrap(),
    );
    assert!(
        after < before,
        "the call lines' loss falls: {before} → {after}"
    );
    assert_eq!(
        v["heldout_cases"], 164,
        "measured on the hand-written requests"
    );
    let heldout: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("heldout.json")).unwrap()).unwrap();
    assert_eq!(heldout["outcomes"].as_array().unwrap().len(), 164);
    let corpus = std::fs::read_to_string(out.join("corpus.jsonl")).unwrap();
    assert_eq!(corpus.lines().count(), 400);
    // The same seed writes the same corpus and trains the same model.
    let again = dir.path().join("again");
    let mut args2 = args;
    args2[3] = again.to_str().unwrap();
    etch(&args2);
    assert_eq!(
        std::fs::read(out.join("model.bin")).unwrap(),
        std::fs::read(again.join("model.bin")).unwrap()
    );
    assert_eq!(
        corpus,
        std::fs::read_to_string(again.join("corpus.jsonl")).unwrap()
    );
    // The export is a llama2.c checkpoint the other commands take, and its calls come
    // out of `etch agent understand` well formed (the tiny model knows little).
    let model = out.join("model.bin");
    let info = json(&etch(&["info", model.to_str().unwrap(), "--json"]));
    assert_eq!(info["dim"], 16);
    let u = json(&etch(&[
        "agent",
        "understand",
        "--model",
        model.to_str().unwrap(),
        "show me notes.txt",
        "--json",
    ]));
    let line = u["line"].as_str().unwrap();
    assert!(
        line == "none" || line.starts_with("fs.") || line.contains('.'),
        "{line}"
    );
    // Without -z it learns its tokenizer from the corpus: --vocab pieces, beside the
    // model, and a call line costs few tokens.
    let learned = dir.path().join("learned");
    let mut args3: Vec<&str> = args2
        .iter()
        .copied()
        .filter(|&a| a != "-z" && a != tok)
        .collect();
    args3[3] = learned.to_str().unwrap();
    args3.extend(["--vocab", "400"]);
    let v = json(&etch(&args3));
    assert_eq!(v["config"]["vocab_size"], 400);
    let learned_tok = etch_compiler::Tokenizer::open(learned.join("tokenizer.bin"), 400).unwrap();
    let story_tok = etch_compiler::Tokenizer::open(&tok, 512).unwrap();
    let line = "fs.read path=\"notes.txt\"\n";
    let (learned_ids, story_ids) = (
        learned_tok.encode_with(line, false, false),
        story_tok.encode_with(line, false, false),
    );
    assert!(
        learned_ids.len() < story_ids.len(),
        "{learned_ids:?} against tok512's {story_ids:?}"
    );
    let bad = etch(&["train", "syscall", "-o", o, "-z", "/nonexistent/tok.bin"]);
    assert_bad_input(&bad, "/nonexistent/tok.bin");
}

#[test]
fn train_writes_a_checkpoint_the_other_commands_take() {
    let (_, tok) = stories();
    let dir = tempfile::tempdir().unwrap();
    let text: String = (0..40)
        .map(|i| format!("The cat number {i} sat on the mat. It was a happy cat.\n\n"))
        .collect();
    let corpus = dir.path().join("corpus.txt");
    std::fs::write(&corpus, text).unwrap();
    let out = dir.path().join("m");
    let o = out.to_str().unwrap();
    let args = [
        "train",
        "-o",
        o,
        "-z",
        &tok,
        "--text",
        corpus.to_str().unwrap(),
        "--dim",
        "16",
        "--hidden",
        "32",
        "--layers",
        "1",
        "--heads",
        "2",
        "--seq-len",
        "32",
        "--steps",
        "30",
        "--batch",
        "4",
        "--lr",
        "1e-2",
        "--json",
    ];
    let v = json(&etch(&args));
    assert_eq!(v["config"]["dim"], 16);
    assert_eq!(v["config"]["vocab_size"], 512);
    assert_eq!(
        v["sequences"].as_u64().unwrap() + v["validation_sequences"].as_u64().unwrap(),
        40
    );
    let (before, after) = (
        v["validation_loss_before"].as_f64().unwrap(),
        v["validation_loss_after"].as_f64().unwrap(),
    );
    assert!(after < before, "{before} → {after}");
    let csv = std::fs::read_to_string(out.join("loss.csv")).unwrap();
    assert_eq!(csv.lines().count(), 31);
    let png = std::fs::read(out.join("loss.png")).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "loss.png is a PNG");
    // The checkpoint is a llama2.c model like any other.
    let model = out.join("model.bin");
    let info = json(&etch(&[
        "info",
        model.to_str().unwrap(),
        "-z",
        out.join("tokenizer.bin").to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(info["dim"], 16);
    // Quantization-aware fine-tuning of that model, distilled from itself: its shape,
    // its settings on record, and a checkpoint that `etch accuracy` compares with the
    // original.
    let qat = dir.path().join("q");
    let m = model.to_str().unwrap();
    let q = json(&etch(&[
        "train",
        "-o",
        qat.to_str().unwrap(),
        "-z",
        &tok,
        "--init",
        m,
        "--teacher",
        m,
        "--teacher-stories",
        "8",
        "--distill",
        "--qat",
        "4",
        "--from-start",
        "--steps",
        "3",
        "--batch",
        "2",
        "--lr",
        "1e-3",
        "--json",
    ]));
    assert_eq!(q["config"], v["config"]);
    assert_eq!(q["init"], m);
    assert_eq!(q["distilled"], true);
    assert_eq!(q["qat"]["bits"], 4);
    assert_eq!(q["qat"]["group"], 8);
    assert_eq!(q["settings"]["from_start"], true);
    let acc = json(&etch(&[
        "accuracy",
        qat.join("model.bin").to_str().unwrap(),
        "-z",
        &tok,
        "--text",
        corpus.to_str().unwrap(),
        "--weight-bits",
        "4",
        "--rounding",
        "nearest",
        "--reference",
        m,
        "--json",
    ]));
    let top1 = acc["top1_agreement"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&top1) && acc["tokens"].as_u64().unwrap() > 0);
    // A reference of another shape, and a shape given with --init: exit 2.
    let other = models().join("stories260K.bin");
    assert_bad_input(
        &etch(&[
            "accuracy",
            m,
            "-z",
            &tok,
            "--text",
            corpus.to_str().unwrap(),
            "--reference",
            other.to_str().unwrap(),
        ]),
        "reference",
    );
    let o = etch(&[
        "train",
        "-o",
        o,
        "-z",
        &tok,
        "--init",
        m,
        "--text",
        corpus.to_str().unwrap(),
        "--dim",
        "32",
    ]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // Bad shapes and corpora: one clear line, exit 2.
    let mut bad = args.to_vec();
    bad[8] = "3";
    assert_bad_input(&etch(&bad), "heads");
    let empty = dir.path().join("empty.txt");
    std::fs::write(&empty, "\n\n").unwrap();
    let mut bad = args.to_vec();
    bad[6] = empty.to_str().unwrap();
    assert_bad_input(&etch(&bad), "fewer than two sequences");
}
