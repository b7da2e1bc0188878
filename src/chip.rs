//! `etch build`: a checkpoint into a chip.

use etch_compiler::chip::{build as build_chip, BuildOptions, Datapath};
use etch_compiler::mix::{choose_mix, MixChoice};
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
    requantizers: usize,
    columns: usize,
    lut_columns: usize,
    vop_queue: bool,
    head_pairs: bool,
    pipeline: &'static str,
    weights: WeightsJson<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fit: Option<crate::fit::ChoiceJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mix: Option<&'a MixChoice>,
}

/// The weight format of a build.
#[derive(Serialize)]
pub struct WeightsJson<'a> {
    bits: u32,
    group: u32,
    wide: &'a [String],
    rounding: etch_compiler::Rounding,
    /// Weight, group scale and wide ROM bits.
    rom_bits: u64,
}

impl<'a> WeightsJson<'a> {
    /// The format `quant` names, taking `rom_bits` of weight ROM.
    pub fn new(quant: &'a etch_compiler::QuantSettings, rom_bits: u64) -> Self {
        WeightsJson {
            bits: quant.weight_bits,
            group: quant.group,
            wide: &quant.wide,
            rounding: quant.rounding,
            rom_bits,
        }
    }
}

/// `--rom-budget`: the weights that measure best within `budget` bits, with a
/// progress bar.
pub fn choose_weights(
    checkpoint: &etch_compiler::Checkpoint,
    tokenizer: &etch_compiler::Tokenizer,
    quant: &etch_compiler::QuantSettings,
    budget: u64,
    lanes: usize,
    datapath: Datapath,
) -> CliResult<MixChoice> {
    let bar = progress(100, "choosing weights");
    let choice = choose_mix(
        checkpoint,
        tokenizer,
        quant,
        budget,
        lanes,
        datapath,
        &mut |m| bar.set_message(m.to_string()),
    );
    bar.finish_and_clear();
    Ok(choice?)
}

/// A datapath in one line: `L lanes × C columns, R requantizers`, then the queue and
/// head pairs when it has them (`--fit`'s choice, `etch bench --chip`).
pub fn describe_datapath(lanes: usize, d: &Datapath) -> String {
    let mut s = format!(
        "{lanes} lanes{}, {} requantizers",
        describe_columns(d.columns, d.lut_columns),
        d.requantizers
    );
    if d.vop_queue {
        s += ", the vector-operation queue";
    }
    if d.head_pairs {
        s += ", head pairs";
    }
    s
}

/// ` × C columns (K in LUTs)` after a lane count, or nothing for one column.
pub fn describe_columns(columns: usize, lut_columns: usize) -> String {
    match (columns, lut_columns) {
        (0 | 1, _) => String::new(),
        (c, 0) => format!(" × {c} columns"),
        (c, k) => format!(" × {c} columns ({k} in LUTs)"),
    }
}

/// One line naming a weight format: bits, group scales, matrices kept at 8 bits.
pub fn describe_weights(q: &etch_compiler::QuantSettings) -> String {
    let mut s = format!("{}-bit weights", q.weight_bits);
    if q.group != 0 {
        s.push_str(&format!(", a scale per {} weights", q.group));
    } else if q.weight_bits == 4 {
        s.push_str(", one scale per row");
    }
    if !q.wide.is_empty() {
        s.push_str(&format!(", {} at 8 bits", q.wide.join(", ")));
    }
    s
}

/// Lanes of `etch build` without `--lanes` (fewer when the model's shape needs).
pub const DEFAULT_LANES: usize = 64;

/// `etch build`.
pub fn build(a: &BuildArgs) -> CliResult {
    let (checkpoint, tokenizer) = open_model(&a.model)?;
    let c = *checkpoint.config();
    let quant = a.quant.settings()?;
    let fitted = match &a.fit {
        Some(name) => {
            let (target, _) = crate::fit::part(name)?;
            let bar = progress(100, "fitting");
            let choice = crate::fit::fit(&checkpoint, &tokenizer, target, &mut |m| {
                bar.set_message(m.to_string())
            });
            bar.finish_and_clear();
            let choice = choice?;
            if !a.json {
                println!("{}", choice.describe());
            }
            Some(choice)
        }
        None => None,
    };
    let (options, mixed) = match &fitted {
        Some(choice) => (choice.options.clone(), None),
        None => {
            let preset = a.preset.map(|p| p.datapath());
            let lanes = match a.lanes.or(preset.map(|p| p.0)) {
                Some(l) => l,
                None => {
                    let l = etch_hdl::top::default_lanes(DEFAULT_LANES, c.dim, c.n_heads).map_err(
                        |e| CliError::Usage(format!("{e} (no lane count fits this model)")),
                    )?;
                    if l != DEFAULT_LANES && !a.json {
                        eprintln!(
                            "{l} lanes: the most up to {DEFAULT_LANES} that a model of dim {} with {} heads allows",
                            c.dim, c.n_heads
                        );
                    }
                    l
                }
            };
            let datapath = match preset {
                Some((_, datapath)) => datapath,
                None => Datapath {
                    requantizers: a.requantizers.unwrap_or(lanes),
                    pipeline: a.pipeline,
                    columns: a.columns,
                    vop_queue: a.vop_queue,
                    lut_columns: a.lut_columns,
                    head_pairs: a.head_pairs,
                },
            };
            let mix = a
                .rom_budget
                .map(|budget| {
                    choose_weights(&checkpoint, &tokenizer, &quant, budget, lanes, datapath)
                })
                .transpose()?;
            let quant = mix.as_ref().map_or(quant.clone(), |m| m.settings.clone());
            let options = BuildOptions {
                lanes,
                contexts: a.contexts,
                max_seq: a.max_seq.unwrap_or(c.seq_len),
                quant: quant.clone(),
                datapath,
            };
            (options, mix)
        }
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
    let weight_rom = manifest.storage.weights + manifest.storage.group_scales;
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
        requantizers: options.datapath.requantizers,
        columns: options.datapath.columns,
        lut_columns: options.datapath.lut_columns,
        vop_queue: options.datapath.vop_queue,
        head_pairs: options.datapath.head_pairs,
        pipeline: options.datapath.pipeline.name(),
        weights: WeightsJson::new(&options.quant, weight_rom),
        fit: fitted.as_ref().map(|c| c.json()),
        mix: mixed.as_ref(),
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
    let d = &options.datapath;
    let columns = describe_columns(d.columns, d.lut_columns);
    println!(
        "  chip         {} lanes{columns}, {} contexts × {} positions, {} attention position(s)/cycle",
        manifest.lanes, manifest.contexts, manifest.max_seq, manifest.attention_positions_per_cycle
    );
    println!(
        "  weights      {} ({:.3} Mbit)",
        describe_weights(&options.quant),
        weight_rom as f64 / 1e6
    );
    if let Some(m) = &mixed {
        println!(
            "  chosen for   a budget of {:.3} Mbit: perplexity {:+.2} % of float, top-1 {:.3} on the model's own stories ({} formats measured)",
            m.budget_bits as f64 / 1e6,
            100.0 * m.chosen.ppl_rel_diff,
            m.chosen.top1_agreement,
            m.trials.len()
        );
    }
    let in_luts = d.lane_multipliers(options.lanes) - d.lane_hard_multipliers(options.lanes);
    println!(
        "  storage      {:.2} Mbit ROM, {:.2} Mbit SRAM, {} multipliers{}",
        manifest.rom_bits as f64 / 1e6,
        manifest.sram_bits as f64 / 1e6,
        manifest.macs,
        if in_luts > 0 {
            format!(" ({in_luts} of them in LUTs)")
        } else {
            String::new()
        }
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

/// The `--json` output of `etch sim` and `etch run`.
#[derive(Serialize)]
struct SimJson<'a> {
    prompt_ids: &'a [u32],
    ids: &'a [u32],
    text: String,
    cycles: u64,
    tokens: usize,
    cycles_per_token: f64,
    tok_per_s_at_100mhz: f64,
    lanes: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    profile: Option<std::collections::BTreeMap<&'static str, u64>>,
    /// The model's chain of dependent work, cycles per token (with `--profile`).
    #[serde(skip_serializing_if = "Option::is_none")]
    dependency_cycles_per_token: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    device: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    wall_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tok_per_s_wall: Option<f64>,
}

/// What a generation on a chip measured, for printing.
pub struct RunReport<'a> {
    /// The generation.
    pub generation: &'a etch_compiler::Generation,
    /// Chip cycles it took.
    pub cycles: u64,
    /// MAC lanes of the chip.
    pub lanes: usize,
    /// Cycles by phase, when profiled.
    pub profile: Option<Vec<(&'static str, u64)>>,
    /// The model's dependency limit in cycles per token over the story's positions,
    /// when profiled.
    pub limit: Option<f64>,
    /// The device it ran on and the wall-clock seconds it took (`etch run`).
    pub wall: Option<(&'a str, f64)>,
}

/// Prints the summary of a generation (the text itself was streamed already).
pub fn report(r: &RunReport, json: bool) -> CliResult {
    let g = r.generation;
    let tokens = g.ids.len();
    let cpt = r.cycles as f64 / tokens.max(1) as f64;
    let tps = 100e6 / cpt;
    let wall_tps = r.wall.map(|(_, secs)| tokens as f64 / secs.max(1e-9));
    if json {
        return print_json(&SimJson {
            prompt_ids: &g.prompt_ids,
            ids: &g.ids,
            text: g.text_lossy(),
            cycles: r.cycles,
            tokens,
            cycles_per_token: cpt,
            tok_per_s_at_100mhz: tps,
            lanes: r.lanes,
            profile: r.profile.as_ref().map(|p| p.iter().copied().collect()),
            dependency_cycles_per_token: r.limit,
            device: r.wall.map(|w| w.0),
            wall_seconds: r.wall.map(|w| w.1),
            tok_per_s_wall: wall_tps,
        });
    }
    crate::output::write_stdout(b"\n");
    eprintln!(
        "{tokens} tokens in {} cycles: {cpt:.0} cycles/token, {tps:.0} tokens/s at 100 MHz ({} lanes)",
        r.cycles, r.lanes
    );
    if let (Some((device, secs)), Some(wtps)) = (r.wall, wall_tps) {
        eprintln!("wall clock on {device}: {secs:.2} s, {wtps:.1} tokens/s");
    }
    if let Some(profile) = &r.profile {
        let total: u64 = profile.iter().map(|p| p.1).sum();
        eprintln!(
            "{:<14} {:>12} {:>7} {:>12}",
            "phase", "cycles", "share", "per token"
        );
        for (name, c) in profile {
            eprintln!(
                "{name:<14} {c:>12} {:>6.1}% {:>12.0}",
                100.0 * *c as f64 / total.max(1) as f64,
                *c as f64 / tokens.max(1) as f64
            );
        }
    }
    if let Some(limit) = r.limit {
        eprintln!(
            "dependency limit: {limit:.0} cycles/token (the model's chain of dependent work, \
             one adder level per cycle); measured {cpt:.0}, {:.1}x the limit",
            cpt / limit.max(1.0)
        );
    }
    Ok(())
}

/// A chip opened on the in-process simulator of a build directory, whose simulator
/// writes `waveform` when traced.
pub fn open_sim_with(
    out: &std::path::Path,
    waveform: etch_sim::Waveform,
) -> CliResult<(
    etch_compiler::chip::Manifest,
    etch_compiler::Tokenizer,
    etch_driver::Chip<etch_driver::InProcess>,
)> {
    let manifest = etch_compiler::chip::Manifest::load(out)?;
    let tokenizer =
        etch_compiler::Tokenizer::open(out.join(&manifest.tokenizer), manifest.config.vocab_size)?;
    let expected = expected(&manifest)?;
    let bar = crate::output::spinner("building the simulator (cached per design)");
    let device = etch_driver::InProcess::open_with(out, &manifest.design_hash, waveform);
    bar.finish_and_clear();
    let chip = etch_driver::Chip::open(device?, Some(&expected))?;
    Ok((manifest, tokenizer, chip))
}

/// What the driver must find on the chip, from the manifest.
pub fn expected(m: &etch_compiler::chip::Manifest) -> CliResult<etch_driver::Expected> {
    Ok(etch_runtime::expected(m)?)
}

/// Runs run.c's generation loop on the chip in context 0 (created and destroyed
/// around it): the runtime's [`etch_runtime::run_story`].
pub fn chip_generate<D: etch_driver::Device>(
    chip: &etch_driver::Chip<D>,
    tokenizer: &etch_compiler::Tokenizer,
    s: &crate::SamplingArgs,
    on_text: &mut dyn FnMut(&[u8]),
) -> CliResult<(etch_compiler::Generation, u64)> {
    chip.create_context(0)?;
    let story = etch_runtime::run_story(
        chip,
        tokenizer,
        0,
        &s.prompt,
        s.steps,
        (s.temperature, s.topp, s.seed),
        on_text,
    )?;
    chip.destroy_context(0)?;
    Ok((story.generation, story.cycles))
}

/// `etch sim`.
pub fn sim(a: &crate::SimArgs) -> CliResult {
    let waveform = a
        .trace
        .as_deref()
        .map_or(etch_sim::Waveform::Off, etch_sim::Waveform::for_path);
    let (manifest, tokenizer, chip) = open_sim_with(&a.out, waveform)?;
    if let Some(path) = &a.trace {
        chip.with_device(|d| d.simulator().trace(path))
            .map_err(etch_driver::DriverError::from)?;
    }
    let json = a.sampling.json;
    let perf_before = chip.perf()?;
    let (g, cycles) = chip_generate(&chip, &tokenizer, &a.sampling, &mut |piece| {
        if !json {
            crate::output::write_stdout(piece);
        }
    })?;
    chip.with_device(|d| d.simulator().trace_close());
    let perf_after = chip.perf()?;
    let profile: Vec<(&'static str, u64)> = etch_firmware::regs::PERF
        .iter()
        .zip(perf_before.iter().zip(&perf_after))
        .map(|(&(name, _), (b, a))| (name, a.wrapping_sub(*b) as u64))
        .collect();
    report(
        &RunReport {
            generation: &g,
            cycles,
            lanes: manifest.lanes,
            profile: a.profile.then_some(profile),
            limit: a.profile.then(|| {
                etch_compiler::chain::mean_dependency_cycles(&manifest.config, 0..g.ids.len())
            }),
            wall: None,
        },
        json,
    )
}
