//! `etch bench`: chips of several lane counts on the greedy story, measured.

use std::path::{Path, PathBuf};
use std::time::Instant;

use etch_compiler::chip::{build as build_chip, BuildOptions, Datapath, Manifest};
use etch_compiler::{
    generate, Checkpoint, ChipSampling, Config, GoldenDecoder, QuantSettings, QuantizedModel,
    ReferenceDecoder, SamplingParams, Tokenizer,
};
use etch_firmware::regs;
use serde::Serialize;

use crate::chip::expected;
use crate::error::{CliError, CliResult};
use crate::models::open_model;
use crate::output::{print_json, progress};
use crate::{BenchArgs, ModelArgs};

/// One configuration's measurements (`--json` row).
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    lanes: usize,
    /// Input columns per lane and cycle.
    columns: usize,
    /// Shared requantizers.
    requantizers: usize,
    cycles_per_token: f64,
    first_token_cycles: u64,
    last_token_cycles: u64,
    mac_utilization: f64,
    tok_per_s_at_100mhz: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    tok_per_s_at_fmax: Option<f64>,
    rom_bits: u64,
    sram_bits: u64,
    macs: usize,
    sim_cycles_per_s: f64,
    tokens: usize,
    cycles: u64,
    phases: std::collections::BTreeMap<&'static str, f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    swap: Option<Swap>,
}

impl Row {
    /// Lanes, and `×C` with several columns.
    fn label(&self) -> String {
        match self.columns {
            1 => self.lanes.to_string(),
            c => format!("{}×{c}", self.lanes),
        }
    }
}

/// SAVE_CONTEXT and RESTORE_CONTEXT of a full context (`--swap`): an agent's resume.
#[derive(Serialize, Clone, Copy, Debug)]
struct Swap {
    positions: usize,
    image_bytes: usize,
    save_cycles: u64,
    restore_cycles: u64,
}

#[derive(Serialize)]
struct BenchJson<'a> {
    rows: &'a [Row],
    reference_tok_per_s: f64,
    golden_tok_per_s: f64,
    steps: usize,
}

/// Where the bundled models are looked for: `$ETCH_MODELS`, else `../shared/models`.
pub fn default_models() -> PathBuf {
    std::env::var_os("ETCH_MODELS").map_or_else(|| PathBuf::from("../shared/models"), PathBuf::from)
}

/// Multiply-accumulates the model needs for the forward pass at `pos`.
pub fn useful_macs(c: &Config, pos: usize) -> u64 {
    let (d, h, kv, l) = (c.dim, c.hidden_dim, c.kv_dim(), c.n_layers);
    let matvec = l * (2 * d * d + 2 * kv * d + 3 * h * d) + c.vocab_size * d;
    let attention = l * c.n_heads * c.head_size() * 2 * (pos + 1);
    (matvec + attention) as u64
}

/// Tokens per second of a decoder on the story (best of three).
fn software_speed(run: &mut dyn FnMut() -> CliResult<usize>) -> CliResult<f64> {
    let mut best = 0.0f64;
    for _ in 0..3 {
        let t = Instant::now();
        let n = run()?;
        best = best.max(n as f64 / t.elapsed().as_secs_f64());
    }
    Ok(best)
}

fn fmax(out: &Path) -> Option<f64> {
    let dir = std::fs::read_dir(out.join("fpga")).ok()?;
    dir.filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read_to_string(e.path().join("report.json")).ok())
        .filter_map(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .filter_map(|v| v["fmax_mhz"].as_f64())
        .reduce(f64::max)
}

/// Fills context 0 (after the story) to the chip's last position with the story's
/// tokens, then times its save and its restore by the chip's cycle counter.
fn swap<D: etch_driver::Device>(
    chip: &etch_driver::Chip<D>,
    manifest: &Manifest,
    used: usize,
    story: &[u32],
) -> CliResult<Swap> {
    let max_seq = manifest.max_seq;
    let fill: Vec<u32> = story.iter().copied().cycle().take(max_seq - used).collect();
    if !fill.is_empty() {
        chip.prefill(0, &fill, false)?;
    }
    let row = (manifest.config.kv_dim() * 2).next_multiple_of(8);
    let c0 = chip.cycles()?;
    let image = chip.save_context(0, chip.save_bytes(max_seq, row))?;
    let c1 = chip.cycles()?;
    chip.destroy_context(0)?;
    chip.create_context(0)?;
    let c2 = chip.cycles()?;
    let position = chip.restore_context(0, &image)?;
    let c3 = chip.cycles()?;
    if position as usize != max_seq {
        return Err(CliError::Internal(format!(
            "the restored context is at position {position}, not {max_seq}"
        )));
    }
    Ok(Swap {
        positions: max_seq,
        image_bytes: image.len(),
        save_cycles: c1 - c0,
        restore_cycles: c3 - c2,
    })
}

fn measure(
    out: &Path,
    manifest: &Manifest,
    tok: &Tokenizer,
    prompt: &str,
    steps: usize,
    with_swap: bool,
) -> CliResult<Row> {
    let dev = etch_driver::InProcess::open(out, &manifest.design_hash)?;
    let chip = etch_driver::Chip::open(dev, Some(&expected(manifest)?))?;
    let c = manifest.config;
    let max_seq = manifest.max_seq;
    let prompt_ids = etch_compiler::encode_prompt(tok, prompt, max_seq)?;
    let steps = etch_compiler::effective_steps(steps, max_seq);
    let forced = steps.min(prompt_ids.len() - 1);
    chip.create_context(0)?;
    let perf0 = chip.perf()?;
    let wall = Instant::now();
    let c0 = chip.cycles()?;
    chip.prefill(0, &prompt_ids[..forced], false)?;
    let g = if steps > forced {
        chip.generate(
            0,
            prompt_ids[forced],
            (steps - forced) as u32,
            etch_driver::Sampling {
                inv_temp: 0,
                topp: 0,
                seed: ChipSampling::seed_state(1),
            },
            &[etch_compiler::BOS],
            false,
            &mut |_| {},
        )?
    } else {
        etch_driver::Generated::default()
    };
    let c1 = chip.cycles()?;
    let seconds = wall.elapsed().as_secs_f64();
    let perf1 = chip.perf()?;
    let tokens = forced + g.tokens.len();
    let cycles = c1 - c0;
    let stamps = &g.stamps;
    let first = stamps
        .first()
        .map_or(0, |s| s.wrapping_sub(c0 as u32) as u64);
    let last = match stamps.len() {
        0 => 0,
        1 => first,
        n => stamps[n - 1].wrapping_sub(stamps[n - 2]) as u64,
    };
    let macs: u64 = (0..tokens).map(|pos| useful_macs(&c, pos)).sum();
    let cpt = cycles as f64 / tokens.max(1) as f64;
    let story: Vec<u32> = prompt_ids[..forced]
        .iter()
        .chain(&g.tokens)
        .copied()
        .filter(|&t| t != etch_compiler::BOS)
        .collect();
    let swap = match with_swap {
        true => Some(swap(&chip, manifest, tokens, &story)?),
        false => None,
    };
    let phases = regs::PERF
        .iter()
        .zip(perf0.iter().zip(&perf1))
        .filter(|(p, _)| p.0 != "idle")
        .map(|(&(name, _), (b, a))| (name, a.wrapping_sub(*b) as f64 / tokens.max(1) as f64))
        .collect();
    Ok(Row {
        lanes: manifest.lanes,
        columns: manifest.datapath().columns,
        requantizers: manifest.datapath().requantizers,
        cycles_per_token: cpt,
        first_token_cycles: first,
        last_token_cycles: last,
        mac_utilization: macs as f64
            / (manifest.datapath().lane_multipliers(manifest.lanes) as f64 * cycles as f64),
        tok_per_s_at_100mhz: 100e6 / cpt,
        tok_per_s_at_fmax: fmax(out).map(|f| f * 1e6 / cpt),
        rom_bits: manifest.rom_bits,
        sram_bits: manifest.sram_bits,
        macs: manifest.macs,
        sim_cycles_per_s: cycles as f64 / seconds,
        tokens,
        cycles,
        phases,
        swap,
    })
}

/// `etch bench`.
pub fn bench(a: &BenchArgs) -> CliResult {
    let models = default_models();
    let model_args = ModelArgs {
        model: a
            .model
            .clone()
            .unwrap_or_else(|| models.join("stories260K.bin")),
        tokenizer: a
            .tokenizer
            .clone()
            .or_else(|| a.model.is_none().then(|| models.join("tok512.bin"))),
    };
    if a.model.is_none() && !model_args.model.is_file() {
        return Err(CliError::Usage(format!(
            "no stories260K.bin in {} ($ETCH_MODELS, or ../shared/models): get stories260K.bin \
             and tok512.bin from https://huggingface.co/karpathy/tinyllamas (README.md, \
             \"The model\"), or pass --model and -z",
            models.display()
        )));
    }
    let (ck, tok) = open_model(&model_args)?;
    if let Some(board) = &a.board {
        return board_bench(a, board, &ck, &tok);
    }
    // (directory, lanes, datapath) of every chip to measure.
    let configs: Vec<(String, usize, Datapath)> = match a.preset {
        Some(p) => {
            let (lanes, datapath) = p.datapath();
            let name = format!("{p:?}").to_lowercase();
            vec![(format!("preset-{name}"), lanes, datapath)]
        }
        None => a
            .lanes
            .iter()
            .map(|&l| (format!("lanes-{l}"), l, Datapath::per_lane(l)))
            .collect(),
    };
    if configs.is_empty() {
        return Err(CliError::Usage(
            "--lanes needs at least one lane count".into(),
        ));
    }
    let bar = progress(configs.len() as u64 + 2, "bench");
    let (reference, golden) = software(&ck, &tok, &a.prompt, a.steps)?;
    bar.inc(2);
    let mut rows = Vec::new();
    for (dir, lanes, datapath) in configs {
        bar.set_message(dir.clone());
        let out = a.out.join(&dir);
        let options = BuildOptions {
            lanes,
            contexts: 4,
            max_seq: ck.config().seq_len,
            quant: QuantSettings::default(),
            datapath,
        };
        let manifest = build_chip(&ck, &tok, &options, &out, &mut |_, _| {})?;
        rows.push(measure(&out, &manifest, &tok, &a.prompt, a.steps, a.swap)?);
        bar.inc(1);
    }
    bar.finish_and_clear();
    std::fs::create_dir_all(&a.out).map_err(|source| CliError::Io {
        action: "write",
        path: a.out.clone(),
        source,
    })?;
    let plotted = crate::bench::plots(&rows, &a.out);
    let json = BenchJson {
        rows: &rows,
        reference_tok_per_s: reference,
        golden_tok_per_s: golden,
        steps: a.steps,
    };
    let text =
        serde_json::to_string_pretty(&json).map_err(|e| CliError::Internal(e.to_string()))?;
    let _ = std::fs::write(a.out.join("bench.json"), text);
    if a.json {
        return print_json(&json);
    }
    println!(
        "{:>8} {:>10} {:>10} {:>10} {:>7} {:>11} {:>9} {:>9} {:>6} {:>12}",
        "lanes",
        "cyc/token",
        "first",
        "last",
        "util",
        "tok/s@100M",
        "ROM Mb",
        "SRAM Mb",
        "MACs",
        "sim cyc/s"
    );
    for r in &rows {
        println!(
            "{:>8} {:>10.0} {:>10} {:>10} {:>6.1}% {:>11.0} {:>9.2} {:>9.2} {:>6} {:>12.0}",
            r.label(),
            r.cycles_per_token,
            r.first_token_cycles,
            r.last_token_cycles,
            100.0 * r.mac_utilization,
            r.tok_per_s_at_100mhz,
            r.rom_bits as f64 / 1e6,
            r.sram_bits as f64 / 1e6,
            r.macs,
            r.sim_cycles_per_s
        );
    }
    for r in &rows {
        if let Some(w) = r.swap {
            println!(
                "{:>6} lanes: SAVE_CONTEXT of {} positions {} cycles, RESTORE_CONTEXT {} cycles ({} bytes)",
                r.lanes, w.positions, w.save_cycles, w.restore_cycles, w.image_bytes
            );
        }
    }
    println!("software on this machine: float reference {reference:.0} tokens/s, golden model {golden:.0} tokens/s");
    match plotted {
        Ok(files) => println!("plots: {}", files.join(", ")),
        Err(e) => eprintln!("etch: no plots: {e}"),
    }
    Ok(())
}

fn software(ck: &Checkpoint, tok: &Tokenizer, prompt: &str, steps: usize) -> CliResult<(f64, f64)> {
    let greedy = SamplingParams::from_cli(0.0, 0.9, 1);
    let reference = software_speed(&mut || {
        let mut d = ReferenceDecoder::new(ck, greedy);
        Ok(generate(&mut d, tok, prompt, steps, &mut |_| {})?.ids.len())
    })?;
    let q = QuantizedModel::build(ck, tok, &QuantSettings::default())?;
    let golden = software_speed(&mut || {
        let mut d = GoldenDecoder::new(&q, ChipSampling::from_params(&greedy));
        Ok(generate(&mut d, tok, prompt, steps, &mut |_| {})?.ids.len())
    })?;
    Ok((reference, golden))
}

/// Registers a system font for the PNG plots (SVG text needs none).
pub fn font() -> Result<(), String> {
    static DONE: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    DONE.get_or_init(|| {
        let candidates = [
            "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
            "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
            "/usr/share/fonts/truetype/lato/Lato-Regular.ttf",
        ];
        for c in candidates {
            if let Ok(bytes) = std::fs::read(c) {
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font(
                    "sans-serif",
                    plotters::style::FontStyle::Normal,
                    bytes,
                )
                .is_ok()
                {
                    return Ok(());
                }
            }
        }
        Err("no TrueType font found for the plots' text".into())
    })
    .clone()
}

/// Draws `cycles_per_token` and `phases` as SVG and PNG; returns the files written.
pub fn plots(rows: &[Row], out: &Path) -> Result<Vec<String>, String> {
    use plotters::prelude::*;
    font()?;
    let mut files = Vec::new();
    let labels: Vec<String> = rows.iter().map(Row::label).collect();
    let n = rows.len();
    let max_cpt = rows.iter().map(|r| r.cycles_per_token).fold(1.0, f64::max) * 1.1;
    macro_rules! draw_both {
        ($name:literal, |$root:ident| $body:block) => {{
            for ext in ["svg", "png"] {
                let path = out.join(format!("{}.{}", $name, ext));
                let result: Result<(), String> = if ext == "svg" {
                    let $root = SVGBackend::new(&path, (800, 480)).into_drawing_area();
                    (|| -> Result<(), Box<dyn std::error::Error>> {
                        $body;
                        $root.present()?;
                        Ok(())
                    })()
                    .map_err(|e| e.to_string())
                } else {
                    let $root = BitMapBackend::new(&path, (800, 480)).into_drawing_area();
                    (|| -> Result<(), Box<dyn std::error::Error>> {
                        $body;
                        $root.present()?;
                        Ok(())
                    })()
                    .map_err(|e| e.to_string())
                };
                result?;
                files.push(path.display().to_string());
            }
        }};
    }
    draw_both!("cycles_per_token", |root| {
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "stories260K: cycles per token against lanes",
                ("sans-serif", 22),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(0usize..n.max(1), 0f64..max_cpt)?;
        chart
            .configure_mesh()
            .x_labels(n.max(1))
            .x_label_formatter(&|i| labels.get(*i).cloned().unwrap_or_default())
            .x_desc("lanes")
            .y_desc("cycles per token")
            .draw()?;
        chart.draw_series(LineSeries::new(
            rows.iter()
                .enumerate()
                .map(|(i, r)| (i, r.cycles_per_token)),
            BLUE.stroke_width(2),
        ))?;
        chart.draw_series(
            rows.iter()
                .enumerate()
                .map(|(i, r)| Circle::new((i, r.cycles_per_token), 4, BLUE.filled())),
        )?;
    });
    let phase_names: Vec<&'static str> = rows
        .first()
        .map(|r| r.phases.keys().copied().collect())
        .unwrap_or_default();
    let colors = [
        &BLUE,
        &RED,
        &GREEN,
        &MAGENTA,
        &CYAN,
        &BLACK,
        &YELLOW,
        &RGBColor(128, 128, 128),
    ];
    draw_both!("phases", |root| {
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption("where the cycles of a token go", ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(-0.5f64..n as f64 - 0.5, 0f64..max_cpt)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(4 * n + 1)
            .x_label_formatter(&|x| {
                if (x - x.round()).abs() < 1e-6 && *x >= 0.0 {
                    labels.get(x.round() as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .x_desc("lanes")
            .y_desc("cycles per token")
            .draw()?;
        for (k, name) in phase_names.iter().enumerate() {
            let color = colors[k % colors.len()];
            chart
                .draw_series(rows.iter().enumerate().map(|(i, r)| {
                    let below: f64 = phase_names[..k].iter().map(|p| r.phases[p]).sum();
                    let top = below + r.phases[name];
                    Rectangle::new(
                        [(i as f64 - 0.35, below), (i as f64 + 0.35, top)],
                        color.filled(),
                    )
                }))?
                .label(*name)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled())
                });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
    });
    Ok(files)
}

/// `etch bench --board` (`--json`).
#[derive(Serialize)]
struct BoardJson {
    board: String,
    target: String,
    bitstream: Option<String>,
    fmax_mhz: f64,
    /// "routed", or "placement" with `--place-only` (an estimate, not a routed figure).
    fmax_source: &'static str,
    /// The clock nextpnr was asked to meet and the bitstream runs at (`--freq`: the
    /// board's oscillator, or a PLL's output), and whether the route meets it.
    clock_mhz: f64,
    timing_met: Option<bool>,
    cycles_per_token: f64,
    /// At the routed Fmax: what the route allows.
    tokens_per_s: f64,
    /// At `clock_mhz`, what the bitstream runs at; null when the route misses that
    /// clock (or was not made).
    clock_tokens_per_s: Option<f64>,
    cpu_tokens_per_s: f64,
    lanes: usize,
    columns: usize,
    lut_columns: usize,
    requantizers: usize,
    macs: usize,
    tokens: usize,
    utilization: std::collections::BTreeMap<String, etch_fpga::report::Use>,
    critical_path: std::collections::BTreeMap<String, etch_fpga::report::CriticalPath>,
    /// nextpnr's placer, router and seed.
    placer: Option<etch_fpga::Placer>,
    router: Option<etch_fpga::Router>,
    seed: Option<u64>,
    /// What `--fit` chose and why; null for a chip given by `--chip`.
    fit: Option<crate::fit::ChoiceJson>,
    design_hash: String,
    out: String,
}

/// Builds `choice` into `dir` unless `dir` already holds that design (so that its
/// netlist and routing are reused).
fn build_unless_current(
    ck: &Checkpoint,
    tok: &Tokenizer,
    options: &BuildOptions,
    dir: &Path,
) -> CliResult<Manifest> {
    let fresh = dir.with_extension("new");
    let _ = std::fs::remove_dir_all(&fresh);
    let manifest = build_chip(ck, tok, options, &fresh, &mut |_, _| {})?;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| CliError::Io {
            action: "write",
            path,
            source,
        }
    };
    match Manifest::load(dir) {
        Ok(old) if old.design_hash == manifest.design_hash => {
            std::fs::remove_dir_all(&fresh).map_err(io(&fresh))?;
            Ok(old)
        }
        _ => {
            if dir.exists() {
                std::fs::remove_dir_all(dir).map_err(io(dir))?;
            }
            std::fs::rename(&fresh, dir).map_err(io(dir))?;
            Ok(manifest)
        }
    }
}

/// The manifest of a chip given by `--chip`, which must have been built from `ck`
/// (else the float reference beside it would time another model).
fn given_chip(out: &Path, ck: &Checkpoint) -> CliResult<Manifest> {
    let manifest = Manifest::load(out)?;
    if etch_compiler::chip::model_identity(ck, &manifest.quant) != manifest.model_identity {
        return Err(CliError::Usage(format!(
            "--chip {}: built from {}, not from {} with its settings; pass that model \
             with --model and -z",
            out.display(),
            manifest.model_file,
            ck.path().display()
        )));
    }
    Ok(manifest)
}

fn board_bench(a: &BenchArgs, board: &str, ck: &Checkpoint, tok: &Tokenizer) -> CliResult {
    let (target, board) = crate::fit::part(board)?;
    let Some(board) = board else {
        return Err(CliError::Usage(format!(
            "--board {target}: name a board (ulx3s, orangecrab), not an FPGA"
        )));
    };
    let mut stages = crate::output::Stages::new(if a.chip.is_some() {
        "reading the chip"
    } else {
        "fitting"
    });
    let mut say = |m: &str| stages.say(m);
    let (dir, manifest, choice) = match &a.chip {
        Some(out) => {
            let manifest = given_chip(out, ck)?;
            (out.clone(), manifest, None)
        }
        None => {
            let choice = crate::fit::fit(ck, tok, target, &mut say)?;
            let dir = a.out.join(format!("board-{}", board.name()));
            say("building");
            std::fs::create_dir_all(&a.out).map_err(|source| CliError::Io {
                action: "write",
                path: a.out.clone(),
                source,
            })?;
            let manifest = build_unless_current(ck, tok, &choice.options, &dir)?;
            (dir, manifest, Some(choice))
        }
    };
    let datapath = manifest.datapath();
    let req = etch_fpga::Request {
        out: dir.clone(),
        target: None,
        board: Some(board),
        freq_mhz: a.freq,
        baud: 1_000_000,
        quick: false,
        synth_only: false,
        place_only: a.place_only,
        placer: a.placer,
        router: a.router,
        seed: a.seed,
        nextpnr_args: crate::synth::nextpnr_args_from_env(),
    };
    let report = etch_fpga::synthesize(&req, &mut |m| say(m))?;
    say("simulating the story");
    let row = measure(&dir, &manifest, tok, &a.prompt, a.steps, false)?;
    say("the float reference on this machine");
    let greedy = SamplingParams::from_cli(0.0, 0.9, 1);
    let cpu = software_speed(&mut || {
        let mut d = ReferenceDecoder::new(ck, greedy);
        Ok(generate(&mut d, tok, &a.prompt, a.steps, &mut |_| {})?
            .ids
            .len())
    })?;
    stages.finish();
    let fmax = report.fmax_mhz.unwrap_or(0.0);
    let json = BoardJson {
        board: board.name().to_string(),
        target: target.to_string(),
        bitstream: report.bitstream.clone(),
        fmax_mhz: fmax,
        fmax_source: if a.place_only { "placement" } else { "routed" },
        clock_mhz: report.freq_mhz,
        timing_met: report.timing_met,
        cycles_per_token: row.cycles_per_token,
        tokens_per_s: fmax * 1e6 / row.cycles_per_token,
        clock_tokens_per_s: (!a.place_only && report.timing_met == Some(true))
            .then(|| report.freq_mhz * 1e6 / row.cycles_per_token),
        cpu_tokens_per_s: cpu,
        lanes: manifest.lanes,
        columns: datapath.columns,
        lut_columns: datapath.lut_columns,
        requantizers: datapath.requantizers,
        macs: manifest.macs,
        tokens: row.tokens,
        utilization: report.utilization.clone(),
        critical_path: report.critical_path.clone(),
        placer: report.placer,
        router: report.router,
        seed: report.seed,
        fit: choice.as_ref().map(|c| c.json()),
        design_hash: manifest.design_hash.clone(),
        out: dir.display().to_string(),
    };
    let text =
        serde_json::to_string_pretty(&json).map_err(|e| CliError::Internal(e.to_string()))?;
    let _ = std::fs::write(dir.join("bench.json"), &text);
    if a.json {
        return print_json(&json);
    }
    match &choice {
        Some(c) => println!("{}", c.describe()),
        None => println!(
            "{} on the {target}: {}, {} pipeline, {} context(s) × {} positions",
            dir.display(),
            crate::chip::describe_datapath(manifest.lanes, &datapath),
            datapath.pipeline.name(),
            manifest.contexts,
            manifest.max_seq
        ),
    }
    let label = match a.place_only {
        true => "placed (est.)",
        false => "routed",
    };
    println!(
        "  {label:<12} {:.2} MHz; {:.0} cycles/token over {} tokens → {:.0} tokens/s",
        fmax, json.cycles_per_token, json.tokens, json.tokens_per_s
    );
    if let Some(met) = json.timing_met {
        println!(
            "  clock        {:.2} MHz asked of nextpnr: {}",
            json.clock_mhz,
            match (met, json.clock_tokens_per_s) {
                (true, Some(t)) => format!("met, {t:.0} tokens/s at it"),
                (true, None) => "met".into(),
                (false, _) => "missed".into(),
            }
        );
        if json.clock_tokens_per_s.is_some() && fmax > 1.2 * json.clock_mhz {
            println!(
                "               the bitstream runs at that clock; `--freq {:.0}` asks for one near the routed Fmax (a new route)",
                (0.95 * fmax).floor()
            );
        }
    }
    println!(
        "  software     float reference on this machine: {:.0} tokens/s",
        cpu
    );
    for key in ["luts", "ffs", "brams", "dsps"] {
        if let Some(u) = json.utilization.get(key) {
            println!(
                "  {key:<12} {:>7} / {:<7} {:>5.1} %",
                u.used, u.available, u.percent
            );
        }
    }
    for (clock, p) in &json.critical_path {
        println!(
            "  critical     {clock}: {:.2} ns ({:.2} logic, {:.2} routing), {} → {}",
            p.total_ns, p.logic_ns, p.routing_ns, p.from, p.to
        );
    }
    if let Some(b) = &json.bitstream {
        println!("  bitstream    {}", dir.join(b).display());
    }
    Ok(())
}
