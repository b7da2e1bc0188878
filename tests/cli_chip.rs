//! `etch build` and `etch sim` on bad input: a clear line on stderr, exit code 2, no
//! panic, and nothing half-written passed off as a chip.

use std::process::{Command, Output};

use etch_compiler::synthetic::write_random_model;
use etch_compiler::Config;

fn etch(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_etch"))
        .args(args)
        .output()
        .unwrap()
}

fn bad(out: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains(needle), "expected {needle:?} in: {err}");
}

fn config() -> Config {
    Config {
        dim: 32,
        hidden_dim: 48,
        n_layers: 1,
        n_heads: 4,
        n_kv_heads: 2,
        vocab_size: 300,
        seq_len: 16,
        shared_classifier: true,
    }
}

/// A random model of `config()` built by `etch build` into `dir/chip` on 8 lanes with
/// `extra` flags; the build must succeed.
fn build_tiny(dir: &std::path::Path, seed: u64, extra: &[&str]) -> (std::path::PathBuf, Output) {
    let (model, _) = write_random_model(dir, &config(), seed).unwrap();
    let out = dir.join("chip");
    let mut args = vec![
        "build",
        model.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ];
    args.extend(["--lanes", "8"]);
    args.extend(extra);
    let built = etch(&args);
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    (out, built)
}

#[test]
fn build_rejects_corrupt_checkpoints_and_impossible_chips() {
    let dir = tempfile::tempdir().unwrap();
    let (model, _) = write_random_model(dir.path(), &config(), 1).unwrap();
    let bytes = std::fs::read(&model).unwrap();
    let cut = dir.path().join("cut.bin");
    std::fs::write(&cut, &bytes[..bytes.len() - 40]).unwrap();
    let out = dir.path().join("out");
    let (m, o) = (model.to_str().unwrap(), out.to_str().unwrap());
    let tok = dir.path().join("tokenizer.bin");
    bad(
        &etch(&[
            "build",
            cut.to_str().unwrap(),
            "-z",
            tok.to_str().unwrap(),
            "-o",
            o,
        ]),
        "truncated",
    );
    bad(
        &etch(&["build", m, "-o", o, "--lanes", "12"]),
        "power of two",
    );
    for lanes in ["0", "4", "512"] {
        bad(
            &etch(&["build", m, "-o", o, "--lanes", lanes]),
            "lanes must be a power of two from 8 to 256",
        );
    }
    bad(
        &etch(&["build", m, "-o", o, "--lanes", "256"]),
        "positions per cycle",
    );
    // An output path that is a file: nothing can be written there.
    bad(
        &etch(&["build", m, "-o", cut.to_str().unwrap()]),
        "cannot write",
    );
    bad(
        &etch(&["build", m, "-o", o, "--max-seq", "99"]),
        "--max-seq",
    );
    bad(
        &etch(&["build", m, "-o", o, "--contexts", "0"]),
        "--contexts",
    );
    assert!(
        !out.join("manifest.json").exists(),
        "no manifest for a failed build"
    );
}

#[test]
fn sim_refuses_altered_roms_and_prompts_that_do_not_fit() {
    let dir = tempfile::tempdir().unwrap();
    let (out, _) = build_tiny(dir.path(), 2, &["--contexts", "1"]);
    let o = out.to_str().unwrap();
    // A prompt longer than the chip's context.
    let long = "a b c d e f g h i j k l m n o p q r s t u v w x y z";
    bad(&etch(&["sim", o, "-i", long]), "context holds 16");
    // A working run first, then one gain altered in the ROM image.
    let ok = etch(&["sim", o, "-i", "a", "-n", "4", "-t", "0", "--json"]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    // The profile: every cycle in a phase, and the model's dependency limit below the
    // measured cycles per token.
    let prof = etch(&[
        "sim",
        o,
        "-i",
        "a",
        "-n",
        "4",
        "-t",
        "0",
        "--profile",
        "--json",
    ]);
    let j: serde_json::Value = serde_json::from_slice(&prof.stdout).unwrap();
    let phases: u64 = j["profile"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert!(phases >= j["cycles"].as_u64().unwrap(), "{j}");
    let limit = j["dependency_cycles_per_token"].as_f64().unwrap();
    let cpt = j["cycles_per_token"].as_f64().unwrap();
    assert!(limit > 10.0 && limit < cpt, "{limit} {cpt}");
    // Waveforms: VCD, and FST from a simulator built with Verilator's FST writer.
    let vcd = dir.path().join("run.vcd");
    let fst = dir.path().join("run.fst");
    for wave in [&vcd, &fst] {
        let w = wave.to_str().unwrap();
        let run = etch(&["sim", o, "-i", "a", "-n", "2", "-t", "0", "--trace", w]);
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
    }
    let vcd_text = std::fs::read(&vcd).unwrap();
    assert!(vcd_text.starts_with(b"$") && vcd_text.windows(9).any(|w| w == b"etch_chip"));
    let fst_bytes = std::fs::read(&fst).unwrap();
    // An FST file opens with its header block (type 0), and is far smaller than the VCD.
    assert_eq!(fst_bytes.first(), Some(&0u8), "not an FST header block");
    assert!(
        fst_bytes.len() * 4 < vcd_text.len(),
        "{} {}",
        fst_bytes.len(),
        vcd_text.len()
    );
    // The plain simulator (the runs above without --trace built it) has no trace code:
    // it refuses to write a waveform, and says so.
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    let plain = etch_sim::build(&out, manifest["design_hash"].as_str().unwrap()).unwrap();
    let mut sim = etch_sim::Simulator::new(&plain, &out).unwrap();
    let refused = sim.trace(&dir.path().join("plain.vcd")).unwrap_err();
    assert!(
        refused.to_string().contains("built without waveforms"),
        "{refused}"
    );
    let gains = out.join("rom/gains.hex");
    let mut text = std::fs::read(&gains).unwrap();
    text[0] = if text[0] == b'1' { b'2' } else { b'1' };
    std::fs::write(&gains, text).unwrap();
    bad(&etch(&["sim", o, "-i", "a", "-n", "4"]), "ROM signature");
    // Not a build directory at all.
    bad(
        &etch(&["sim", dir.path().join("nothing").to_str().unwrap()]),
        "manifest.json",
    );
    // A manifest that is not one.
    std::fs::write(out.join("manifest.json"), "{garbage").unwrap();
    bad(&etch(&["sim", o]), "is not an etch manifest");
}

#[test]
fn build_without_lanes_picks_the_most_the_model_shape_allows() {
    let dir = tempfile::tempdir().unwrap();
    // (dim, heads, hidden) → lanes: 64 cannot divide 48, 80 or 88.
    for (dim, heads, hidden, lanes) in [(48, 6, 128, 16), (80, 5, 200, 16), (88, 11, 232, 8)] {
        let c = Config {
            dim,
            n_heads: heads,
            n_kv_heads: heads,
            hidden_dim: hidden,
            ..config()
        };
        let sub = dir.path().join(format!("d{dim}"));
        std::fs::create_dir_all(&sub).unwrap();
        let (model, _) = write_random_model(&sub, &c, 3).unwrap();
        let out = sub.join("chip");
        let built = etch(&[
            "build",
            model.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--json",
        ]);
        assert!(
            built.status.success(),
            "{}",
            String::from_utf8_lossy(&built.stderr)
        );
        let j: serde_json::Value = serde_json::from_slice(&built.stdout).unwrap();
        assert_eq!(j["lanes"], lanes, "dim {dim}");
    }
    // A head size that is not a power of two: no lane count, and the reason.
    let c = Config {
        dim: 48,
        n_heads: 4,
        n_kv_heads: 4,
        ..config()
    };
    let (model, _) = write_random_model(dir.path(), &c, 3).unwrap();
    let out = dir.path().join("chip12");
    bad(
        &etch(&[
            "build",
            model.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ]),
        "head size (12)",
    );
}

#[test]
fn flash_builds_the_loader_command_and_says_when_no_board_is_there() {
    let dir = tempfile::tempdir().unwrap();
    let (out, _) = build_tiny(dir.path(), 4, &[]);
    let o = out.to_str().unwrap();
    // Before `etch synth`: what to run first.
    bad(&etch(&["flash", o, "--board", "ulx3s"]), "etch synth");
    // A bitstream where `etch synth --board ulx3s` puts it (its contents do not matter
    // to the command line).
    let bit = out.join("fpga/ecp5-85k/etch.bit");
    std::fs::create_dir_all(bit.parent().unwrap()).unwrap();
    std::fs::write(&bit, b"not really a bitstream").unwrap();
    let dry = etch(&[
        "flash",
        o,
        "--board",
        "ulx3s",
        "--flash",
        "--dry-run",
        "--json",
    ]);
    assert!(
        dry.status.success(),
        "{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    let j: serde_json::Value = serde_json::from_slice(&dry.stdout).unwrap();
    let command: Vec<&str> = j["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        command,
        [
            "openFPGALoader",
            "--board",
            "ulx3s",
            "--write-flash",
            bit.to_str().unwrap()
        ]
    );
    assert_eq!(j["flashed"], false);
    bad(&etch(&["flash", o, "--board", "orangecrab"]), "--flash");
    bad(
        &etch(&[
            "flash",
            o,
            "--board",
            "ulx3s",
            "--loader",
            "/nonexistent/loader",
        ]),
        "openfpgaloader",
    );
    // The real openFPGALoader (scripts/setup installs it) finds no cable on this machine.
    let run = etch(&["flash", o, "--board", "ulx3s"]);
    let err = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{err}");
    assert!(err.contains("openFPGALoader failed"), "{err}");
    if err.contains("ftdi") {
        assert!(err.contains("no ulx3s found on USB"), "{err}");
    }
}

#[test]
fn the_build_is_a_fusesoc_core_that_lints() {
    let dir = tempfile::tempdir().unwrap();
    let (out, built) = build_tiny(dir.path(), 6, &["--json"]);
    let j: serde_json::Value = serde_json::from_slice(&built.stdout).unwrap();
    let hash = j["design_hash"].as_str().unwrap();
    let core = std::fs::read_to_string(out.join("etch.core")).unwrap();
    let name = core
        .lines()
        .find_map(|l| l.strip_prefix("name: "))
        .unwrap()
        .to_string();
    assert!(
        name.starts_with(&format!("etch:chip:design_{}", &hash[..8])),
        "{name}"
    );
    // FuseSoC from the virtualenv scripts/setup makes.
    let fusesoc = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/fusesoc");
    assert!(
        fusesoc.exists(),
        "{} is missing: run scripts/setup",
        fusesoc.display()
    );
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let fs = |args: &[&str]| {
        Command::new(&fusesoc)
            .arg("--cores-root")
            .arg(&out)
            .args(args)
            .current_dir(&work)
            .output()
            .unwrap()
    };
    let list = fs(&["core", "list"]);
    assert!(String::from_utf8_lossy(&list.stdout).contains(&name));
    // The lint target runs Verilator -Wall over every file of the core.
    let lint = fs(&["run", "--target", "lint", &name]);
    assert!(
        lint.status.success(),
        "{}{}",
        String::from_utf8_lossy(&lint.stdout),
        String::from_utf8_lossy(&lint.stderr)
    );
    assert!(work.join("build").read_dir().unwrap().next().is_some());
}

#[test]
fn asic_estimate_counts_logic_rom_and_sram_transistors() {
    let dir = tempfile::tempdir().unwrap();
    let (out, _) = build_tiny(dir.path(), 8, &["--contexts", "1"]);
    let o = out.to_str().unwrap();
    bad(
        &etch(&["synth", o, "--target", "asic-estimate", "--board", "ulx3s"]),
        "takes no --board",
    );
    let run = etch(&["synth", o, "--target", "asic-estimate", "--json"]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let e: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    let n = |k: &str| e[k].as_u64().unwrap();
    // A chip of eight lanes has at least their multipliers' worth of gates.
    assert!(n("logic_transistors") > 100_000, "{e}");
    assert_eq!(
        n("total_transistors"),
        n("logic_transistors") + n("rom_bits") + 6 * n("sram_bits")
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(e["rom_bits"], manifest["rom_bits"]);
    assert_eq!(e["sram_bits"], manifest["sram_bits"]);
    let per = e["transistors_per_parameter"].as_f64().unwrap();
    assert!((per - n("total_transistors") as f64 / n("parameters") as f64).abs() < 1e-6);
    assert!(out.join("asic/stat.txt").exists());
}
