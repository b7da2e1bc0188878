//! The stories260K end-to-end tests: `etch build` the bundled model into a 64-lane
//! chip, `etch sim` it, and compare with `etch emulate` (greedy and sampled), with
//! `etch run` against `etch serve` over vfio-user, and, step by step, with the golden
//! model's logits; and its 4-bit, group-scaled build on 16 lanes, step by step.

mod common;

use std::process::Command;

use common::{models, open_chip};
use etch_compiler::chip::Manifest;
use etch_compiler::{Golden, QuantizedModel};
use serde_json::Value;

fn etch(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_etch"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "etch {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn stories260k_on_the_chip_matches_the_golden_model() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("chip");
    let out_s = out.to_str().unwrap();
    let m = models();
    let (model, tok) = (m.join("stories260K.bin"), m.join("tok512.bin"));
    let (model, tok) = (model.to_str().unwrap(), tok.to_str().unwrap());
    let built = etch(&[
        "build", model, "-z", tok, "-o", out_s, "--lanes", "64", "--json",
    ]);
    assert_eq!(built["lanes"], 64);
    // The design is clean under Verilator's lint (-Wall; documented waivers only).
    let mut lint = Command::new("verilator");
    lint.args([
        "--lint-only",
        "-Wall",
        "-Wno-DECLFILENAME",
        "--top-module",
        "etch_chip",
    ]);
    for f in std::fs::read_dir(out.join("rtl")).unwrap() {
        lint.arg(f.unwrap().path());
    }
    let lint = lint.output().unwrap();
    assert!(
        lint.status.success(),
        "{}",
        String::from_utf8_lossy(&lint.stderr)
    );

    // The same chip served over vfio-user by another process.
    let socket = dir.path().join("chip.sock");
    let mut server = Command::new(env!("CARGO_BIN_EXE_etch"))
        .args(["serve", out_s, "--socket"])
        .arg(&socket)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let device = format!("vfio-user:{}", socket.display());

    // The 256-token greedy story and a sampled one: the chip's ids are the golden ids,
    // in process and over vfio-user.
    for flags in [
        vec!["-i", "Once upon a time", "-n", "256", "-t", "0"],
        vec!["-n", "96", "-t", "1.0", "-p", "0.9", "-s", "42"],
    ] {
        let mut sim_args = vec!["sim", out_s];
        sim_args.extend(&flags);
        sim_args.push("--json");
        let chip = etch(&sim_args);
        let mut emu_args = vec!["emulate", model, "-z", tok];
        emu_args.extend(&flags);
        emu_args.push("--json");
        let golden = etch(&emu_args);
        assert_eq!(chip["ids"], golden["ids"], "{flags:?}");
        assert_eq!(chip["text"], golden["text"], "{flags:?}");
        let start = std::time::Instant::now();
        while !socket.exists() {
            assert!(start.elapsed().as_secs() < 600, "etch serve never listened");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let mut run_args = vec!["run", "--device", &device, "--manifest", out_s];
        run_args.extend(&flags);
        run_args.push("--json");
        let served = etch(&run_args);
        assert_eq!(served["ids"], chip["ids"], "vfio-user {flags:?}");
        assert!(served["tok_per_s_wall"].as_f64().unwrap() > 0.0);
        let cpt = chip["cycles_per_token"].as_f64().unwrap();
        assert!(cpt > 100.0, "cycles come from the chip's counter: {cpt}");
        assert_eq!(
            chip["tokens"].as_u64().unwrap() as usize,
            chip["ids"].as_array().unwrap().len()
        );
        if flags.contains(&"Once upon a time") {
            assert!(chip["text"]
                .as_str()
                .unwrap()
                .starts_with("Once upon a time, there was a little girl named Lily."));
        }
    }

    server.kill().unwrap();
    let _ = server.wait();

    // Logits at every step of the first 64 positions, bit for bit.
    let steps = greedy_logits_match_golden(&out, 2, 60);
    assert!(steps >= 60, "{steps} steps");
}

/// Opens the chip built in `out`, generates greedily from "Once upon a time" in context
/// `ctx` for `generate` tokens with the logits of every step, and checks them, bit for
/// bit, against the golden model of the manifest's quantization; returns the steps
/// compared.
fn greedy_logits_match_golden(out: &std::path::Path, ctx: u8, generate: u32) -> usize {
    let manifest = Manifest::load(out).unwrap();
    let (ck, tokenizer) = common::stories();
    let q = QuantizedModel::build(&ck, &tokenizer, &manifest.quant).unwrap();
    let chip = open_chip(out, &manifest);
    let prompt = tokenizer.encode("Once upon a time");
    chip.create_context(ctx).unwrap();
    let pre = chip
        .prefill(ctx, &prompt[..prompt.len() - 1], true)
        .unwrap();
    let g = chip
        .generate(
            ctx,
            prompt[prompt.len() - 1],
            generate,
            etch_driver::Sampling {
                inv_temp: 0,
                topp: 0,
                seed: 1,
            },
            &[],
            true,
            &mut |_| {},
        )
        .unwrap();
    let mut golden = Golden::new(&q);
    let mut feed = prompt.clone();
    feed.extend(&g.tokens);
    for (pos, logits) in pre.iter().chain(&g.logits).enumerate() {
        assert_eq!(
            logits.as_slice(),
            golden.forward(feed[pos], pos),
            "step {pos}"
        );
    }
    pre.len() + g.logits.len()
}

/// stories260K with 4-bit weights and their default group scales (what the FPGA
/// configuration uses), on 16 lanes: logits bit for bit with the golden model for the
/// first 40 positions.
#[test]
fn stories260k_with_4bit_group_scales_matches_the_golden_model() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("chip");
    let out_s = out.to_str().unwrap();
    let m = models();
    let (model, tok) = (m.join("stories260K.bin"), m.join("tok512.bin"));
    let (model, tok) = (model.to_str().unwrap(), tok.to_str().unwrap());
    let built = etch(&[
        "build",
        model,
        "-z",
        tok,
        "-o",
        out_s,
        "--lanes",
        "16",
        "--weight-bits",
        "4",
        "--max-seq",
        "64",
        "--json",
    ]);
    assert_eq!(built["lanes"], 16);
    let manifest = Manifest::load(&out).unwrap();
    assert_eq!(manifest.quant.weight_bits, 4);
    assert_eq!(manifest.quant.group, etch_compiler::DEFAULT_GROUP_4BIT);
    assert!(manifest.storage.group_scales > 0);

    let steps = greedy_logits_match_golden(&out, 0, 36);
    assert!(steps >= 30, "{steps} steps");
}
