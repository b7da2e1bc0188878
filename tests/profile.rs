//! The performance counters and `etch bench`: the phases add up to the cycle counter,
//! and the bench's JSON has the contract's fields.

mod common;

use std::process::Command;

use common::{build_chip, open_chip, quick_quant, random_model};
use etch_compiler::Config;
use etch_firmware::regs;

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

#[test]
fn phase_counters_account_for_every_cycle() {
    let dir = tempfile::tempdir().unwrap();
    let (ck, tok) = random_model(dir.path(), &config(), 4);
    let out = dir.path().join("chip");
    let m = build_chip(&ck, &tok, &out, 8, 1, 16, quick_quant());
    let chip = open_chip(&out, &m);
    chip.create_context(0).unwrap();
    let c0 = chip.cycles().unwrap();
    let p0 = chip.perf().unwrap();
    chip.prefill(0, &[1, 20, 30], false).unwrap();
    let g = chip
        .generate(
            0,
            40,
            6,
            etch_driver::Sampling {
                inv_temp: 300,
                topp: 50000,
                seed: 9,
            },
            &[],
            false,
            &mut |_| {},
        )
        .unwrap();
    let p1 = chip.perf().unwrap();
    let c1 = chip.cycles().unwrap();
    let deltas: Vec<u64> = p0
        .iter()
        .zip(&p1)
        .map(|(a, b)| b.wrapping_sub(*a) as u64)
        .collect();
    let total: u64 = deltas.iter().sum();
    let elapsed = c1 - c0;
    // The counter reads themselves take a few cycles each, on both sides of the window.
    assert!(
        total <= elapsed && elapsed - total < 64,
        "phases {total} vs cycles {elapsed}"
    );
    let share = |name: &str| {
        let k = regs::PERF.iter().position(|p| p.0 == name).unwrap();
        deltas[k] as f64 / total as f64
    };
    assert!(share("matvec") > 0.3, "{deltas:?}");
    assert!(share("attention") > 0.0 && share("softmax") > 0.0 && share("sampling") > 0.0);
    assert!(share("normalization") > 0.0 && share("elementwise") > 0.0 && share("host/DMA") > 0.0);
    // Every token record carries the cycle counter: stamps rise, one token apart.
    assert_eq!(g.stamps.len(), 6);
    assert!(g.stamps.windows(2).all(|w| w[1] > w[0]));
}

#[test]
fn bench_json_has_the_contract_fields() {
    let dir = tempfile::tempdir().unwrap();
    let (model, _) =
        etch_compiler::synthetic::write_random_model(dir.path(), &config(), 5).unwrap();
    let out = dir.path().join("bench");
    let run = Command::new(env!("CARGO_BIN_EXE_etch"))
        .args([
            "bench",
            "--model",
            model.to_str().unwrap(),
            "--lanes",
            "8",
            "-n",
            "10",
            "-i",
            "a",
            "--swap",
        ])
        .args(["--out", out.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    let row = &v["rows"][0];
    for key in [
        "lanes",
        "cycles_per_token",
        "first_token_cycles",
        "last_token_cycles",
        "mac_utilization",
        "tok_per_s_at_100mhz",
        "rom_bits",
        "sram_bits",
        "macs",
        "sim_cycles_per_s",
    ] {
        assert!(row.get(key).is_some(), "missing {key} in {row}");
    }
    assert_eq!(row["lanes"], 8);
    let util = row["mac_utilization"].as_f64().unwrap();
    assert!(util > 0.05 && util <= 1.0, "{util}");
    assert!(
        row["first_token_cycles"].as_u64().unwrap() > row["last_token_cycles"].as_u64().unwrap()
    );
    assert!(v["reference_tok_per_s"].as_f64().unwrap() > 0.0);
    assert!(v["golden_tok_per_s"].as_f64().unwrap() > 0.0);
    assert!(out.join("bench.json").exists());
    // --swap: a full context saved and restored, timed by the chip's counter.
    let swap = &row["swap"];
    let positions = swap["positions"].as_u64().unwrap();
    assert_eq!(positions, config().seq_len as u64, "{swap}");
    let c = config();
    let row_bytes = (c.n_kv_heads * (c.dim / c.n_heads) * 2).next_multiple_of(8) as u64;
    assert_eq!(
        swap["image_bytes"].as_u64().unwrap(),
        64 + positions * 2 * c.n_layers as u64 * row_bytes
    );
    assert!(swap["save_cycles"].as_u64().unwrap() > 0);
    assert!(swap["restore_cycles"].as_u64().unwrap() > 0);
}
