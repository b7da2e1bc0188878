//! What the chip would cost in silicon: a transistor count, not a layout.
//!
//! yosys synthesizes the chip's logic to generic gates (`synth -flatten`, no FPGA
//! primitives) with its memories — the weight, requantization, gain, table and
//! firmware ROMs, the activation RAMs and the KV cache — left as black boxes, and
//! `stat -tech cmos` counts the gates' transistors (a static CMOS estimate: 4 for a
//! NAND, 12 for an XOR, …). The memories are counted from the manifest's bits: a ROM
//! bit is one transistor (a mask ROM's cell), an SRAM bit six (the 6T cell), without
//! sense amplifiers or decoders. Divided by the model's parameters, that is the figure
//! to compare with a hard-wired commercial chip (Taalas HC1: about 53 billion
//! transistors for 8 billion parameters, ≈ 6.6 per parameter).

use std::path::Path;
use std::time::Instant;

use etch_contract::Manifest;
use serde::Serialize;

use crate::error::{FpgaError, Result};
use crate::tools::{tool, Run};

/// The estimate for one built chip.
#[derive(Clone, Debug, Serialize)]
pub struct AsicEstimate {
    /// The design it was made for.
    pub design_hash: String,
    /// MAC lanes.
    pub lanes: usize,
    /// The model's parameters.
    pub parameters: u64,
    /// Transistors of the logic (yosys `stat -tech cmos`).
    pub logic_transistors: u64,
    /// ROM bits (one transistor each).
    pub rom_bits: u64,
    /// SRAM bits (six transistors each).
    pub sram_bits: u64,
    /// Logic, ROM and SRAM.
    pub total_transistors: u64,
    /// `total_transistors / parameters`.
    pub transistors_per_parameter: f64,
    /// Seconds yosys took.
    pub seconds: f64,
}

/// Reads `Estimated number of transistors: N` (or `N+`) off yosys's log.
pub fn transistors_in_log(log: &str) -> Option<u64> {
    log.lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("Estimated number of transistors:"))
        .and_then(|n| n.trim().trim_end_matches('+').parse().ok())
}

/// Synthesizes `out`'s chip to generic gates in `OUT/asic/` and counts transistors.
pub fn estimate(out: &Path, progress: &mut dyn FnMut(&str)) -> Result<AsicEstimate> {
    let manifest = Manifest::load(out)?;
    let dir = out.join("asic");
    std::fs::create_dir_all(&dir).map_err(|e| FpgaError::io("write", &dir, e))?;
    let rtl = out.join("rtl");
    let mut sources: Vec<String> = std::fs::read_dir(&rtl)
        .map_err(|e| FpgaError::io("read", &rtl, e))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        // The chip alone: not the board top and its UART bridge.
        .filter(|n| n.ends_with(".v") && n != "etch_board.v" && n != "etch_bridge.v")
        .map(|n| format!("rtl/{n}"))
        .collect();
    sources.sort();
    // YoWASP's yosys sees only its working directory: paths relative to OUT.
    let script = format!(
        "read_verilog -sv -defer {}\n\
         hierarchy -top etch_chip\n\
         blackbox $paramod*etch_rom* $paramod*etch_ram*\n\
         synth -top etch_chip -flatten\n\
         tee -o asic/stat.txt stat -tech cmos\n",
        sources.join(" ")
    );
    let ys = dir.join("asic.ys");
    std::fs::write(&ys, script).map_err(|e| FpgaError::io("write", &ys, e))?;
    progress("yosys: generic synthesis, memories as black boxes");
    let t0 = Instant::now();
    Run {
        program: tool("yosys")?,
        args: vec!["-q".into(), "asic/asic.ys".into()],
        dir: out,
        log: dir.join("yosys.log"),
        what: "yosys",
    }
    .run(None, progress)?;
    let seconds = t0.elapsed().as_secs_f64();
    let stat = dir.join("stat.txt");
    let text = std::fs::read_to_string(&stat).map_err(|e| FpgaError::io("read", &stat, e))?;
    let logic = transistors_in_log(&text)
        .ok_or_else(|| FpgaError::Tool(format!("no transistor count in {}", stat.display())))?;
    let parameters = manifest.config.parameter_count() as u64;
    let (rom, sram) = (manifest.rom_bits, manifest.sram_bits);
    let total = logic + rom + 6 * sram;
    let e = AsicEstimate {
        design_hash: manifest.design_hash.clone(),
        lanes: manifest.lanes,
        parameters,
        logic_transistors: logic,
        rom_bits: rom,
        sram_bits: sram,
        total_transistors: total,
        transistors_per_parameter: total as f64 / parameters.max(1) as f64,
        seconds,
    };
    let json = dir.join("estimate.json");
    let text = serde_json::to_string_pretty(&e)
        .map_err(|err| FpgaError::Tool(format!("cannot write the estimate: {err}")))?;
    std::fs::write(&json, text).map_err(|err| FpgaError::io("write", &json, err))?;
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_count_is_read_off_the_log() {
        let log = "   Number of cells: 12\n\n   Estimated number of transistors:    1202064+\n";
        assert_eq!(transistors_in_log(log), Some(1_202_064));
        assert_eq!(transistors_in_log("nothing"), None);
    }
}
