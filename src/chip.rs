//! `etch build`: a checkpoint into a chip.

use etch_compiler::chip::{build as build_chip, BuildOptions};
use etch_compiler::QuantSettings;
use serde::Serialize;

use crate::error::{CliError, CliResult};
use crate::models::open_model;
use crate::output::{print_json, progress};
use crate::BuildArgs;

#[derive(Serialize)]
struct BuildJson<'a> {
    out: String,
    model_identity: &'a str,
    lanes: usize,
    contexts: usize,
    max_seq: usize,
    rom_bits: u64,
    sram_bits: u64,
    macs: usize,
    firmware_instructions: usize,
    rom_signature: &'a str,
    design_hash: &'a str,
}

/// `etch build`.
pub fn build(a: &BuildArgs) -> CliResult {
    let (checkpoint, tokenizer) = open_model(&a.model)?;
    let c = *checkpoint.config();
    if !matches!(a.quant.weight_bits, 4 | 8) {
        return Err(CliError::Usage(format!(
            "--weight-bits must be 4 or 8, not {}",
            a.quant.weight_bits
        )));
    }
    let options = BuildOptions {
        lanes: a.lanes,
        contexts: a.contexts,
        max_seq: a.max_seq.unwrap_or(c.seq_len),
        quant: QuantSettings {
            weight_bits: a.quant.weight_bits,
            ..QuantSettings::default()
        },
    };
    let bar = progress(100, "building");
    let manifest = build_chip(
        &checkpoint,
        &tokenizer,
        &options,
        &a.out,
        &mut |step, frac| {
            bar.set_message(step.to_string());
            bar.set_position((frac * 100.0) as u64);
        },
    )?;
    bar.finish_and_clear();
    let summary = BuildJson {
        out: a.out.display().to_string(),
        model_identity: &manifest.model_identity,
        lanes: manifest.lanes,
        contexts: manifest.contexts,
        max_seq: manifest.max_seq,
        rom_bits: manifest.rom_bits,
        sram_bits: manifest.sram_bits,
        macs: manifest.macs,
        firmware_instructions: manifest.firmware_instructions,
        rom_signature: &manifest.rom_signature,
        design_hash: &manifest.design_hash,
    };
    if a.json {
        return print_json(&summary);
    }
    println!(
        "built {} into {}",
        checkpoint.path().display(),
        a.out.display()
    );
    println!("  identity     {}", manifest.model_identity);
    println!(
        "  chip         {} lanes, {} contexts × {} positions, {} attention position(s)/cycle",
        manifest.lanes, manifest.contexts, manifest.max_seq, manifest.attention_positions_per_cycle
    );
    println!(
        "  storage      {:.2} Mbit ROM, {:.2} Mbit SRAM, {} multipliers",
        manifest.rom_bits as f64 / 1e6,
        manifest.sram_bits as f64 / 1e6,
        manifest.macs
    );
    println!(
        "  firmware     {} instructions (sha256 {}…)",
        manifest.firmware_instructions,
        &manifest.firmware_sha256[..16]
    );
    println!(
        "  next         etch sim {} -i \"Once upon a time\"",
        a.out.display()
    );
    Ok(())
}
