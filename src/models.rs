//! `etch info`, `reference`, `emulate` and `accuracy`: the model-level commands.

use std::path::{Path, PathBuf};
use std::time::Instant;

use etch_compiler::mix::MixChoice;
use etch_compiler::WeightFormat;
use etch_compiler::{
    generate, Checkpoint, ChipSampling, Decoder, Generation, GoldenDecoder, QuantizedModel,
    ReferenceDecoder, SamplingParams, Tokenizer,
};
use serde::Serialize;

use crate::error::{CliError, CliResult};
use crate::output::{print_json, progress, spinner, write_stdout};
use crate::{AccuracyArgs, EmulateArgs, GenerateArgs, ModelArgs, QuantArgs, SamplingArgs};

/// The tokenizer path: `-z`, or `tokenizer.bin` beside the model.
fn tokenizer_path(args: &ModelArgs) -> CliResult<PathBuf> {
    if let Some(p) = &args.tokenizer {
        return Ok(p.clone());
    }
    let beside = args
        .model
        .parent()
        .unwrap_or(Path::new("."))
        .join("tokenizer.bin");
    if beside.exists() {
        Ok(beside)
    } else {
        Err(CliError::Usage(format!(
            "no tokenizer given and {} does not exist: pass -z TOK",
            beside.display()
        )))
    }
}

/// Opens and validates a checkpoint and its tokenizer.
pub fn open_model(args: &ModelArgs) -> CliResult<(Checkpoint, Tokenizer)> {
    let checkpoint = Checkpoint::open(&args.model)?;
    let tokenizer = Tokenizer::open(tokenizer_path(args)?, checkpoint.config().vocab_size)?;
    Ok((checkpoint, tokenizer))
}

/// Quantizes with the command-line settings, with a spinner while it calibrates.
pub fn quantize(
    checkpoint: &Checkpoint,
    tokenizer: &Tokenizer,
    quant: &QuantArgs,
) -> CliResult<QuantizedModel> {
    let settings = quant.settings()?;
    let bar = spinner("calibrating and quantizing");
    let model = QuantizedModel::build(checkpoint, tokenizer, &settings);
    bar.finish_and_clear();
    Ok(model?)
}

/// The `--json` output of the generating commands.
#[derive(Serialize)]
struct GenerationJson<'a> {
    prompt_ids: &'a [u32],
    ids: &'a [u32],
    text: String,
}

/// Runs the generation loop and prints as run.c does (or JSON).
fn run_generation(
    decoder: &mut dyn Decoder,
    tokenizer: &Tokenizer,
    s: &SamplingArgs,
) -> CliResult<Generation> {
    let start = Instant::now();
    let json = s.json;
    let mut stream = |piece: &[u8]| {
        if !json {
            write_stdout(piece);
        }
    };
    let g = generate(decoder, tokenizer, &s.prompt, s.steps, &mut stream)?;
    let seconds = start.elapsed().as_secs_f64();
    if json {
        print_json(&GenerationJson {
            prompt_ids: &g.prompt_ids,
            ids: &g.ids,
            text: g.text_lossy(),
        })?;
    } else {
        write_stdout(b"\n");
        if seconds > 0.0 {
            eprintln!("achieved tok/s: {:.1}", g.ids.len() as f64 / seconds);
        }
    }
    Ok(g)
}

fn sampling_params(s: &SamplingArgs) -> SamplingParams {
    SamplingParams::from_cli(s.temperature, s.topp, s.seed)
}

/// `etch reference`.
pub fn reference(a: &GenerateArgs) -> CliResult {
    let (checkpoint, tokenizer) = open_model(&a.model)?;
    let mut decoder = ReferenceDecoder::new(&checkpoint, sampling_params(&a.sampling));
    run_generation(&mut decoder, &tokenizer, &a.sampling)?;
    Ok(())
}

/// `etch emulate`.
pub fn emulate(a: &EmulateArgs) -> CliResult {
    let (checkpoint, tokenizer) = open_model(&a.model)?;
    let model = quantize(&checkpoint, &tokenizer, &a.quant)?;
    let sampling = ChipSampling::from_params(&sampling_params(&a.sampling));
    let mut decoder = GoldenDecoder::new(&model, sampling);
    run_generation(&mut decoder, &tokenizer, &a.sampling)?;
    Ok(())
}

/// `etch accuracy --json`: the report, the format measured, and what was asked for.
#[derive(Serialize)]
struct AccuracyJson<'a> {
    #[serde(flatten)]
    report: &'a etch_compiler::AccuracyReport,
    weights: crate::chip::WeightsJson<'a>,
    /// Lanes whose layout `weights.rom_bits` counts.
    lanes: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    mix: Option<&'a MixChoice>,
    #[serde(skip_serializing_if = "Option::is_none")]
    per_matrix: Option<&'a [MatrixLoss]>,
}

/// What one matrix loses alone in its format, every other at 8 bits.
#[derive(Serialize)]
struct MatrixLoss {
    matrix: &'static str,
    bits: u32,
    group: usize,
    top1_agreement: f64,
    ppl_rel_diff: f64,
}

/// Each unit of precision alone in the format `settings` gives it, every other matrix
/// at 8 bits, scored on `sequences`.
fn per_matrix_losses(
    checkpoint: &Checkpoint,
    reference: &Checkpoint,
    settings: &etch_compiler::QuantSettings,
    calibration: &etch_compiler::Calibration,
    sequences: &[Vec<u32>],
) -> CliResult<Vec<MatrixLoss>> {
    let mut out = Vec::new();
    for unit in etch_compiler::mix::units(checkpoint) {
        let format = WeightFormat::for_unit(settings, unit);
        let model = QuantizedModel::with_formats(checkpoint, settings, calibration, &|id| {
            if id.kind.unit() == unit {
                format
            } else {
                WeightFormat::WIDE
            }
        })?;
        let s = etch_compiler::score(reference, &model, sequences, &mut |_, _| {});
        out.push(MatrixLoss {
            matrix: unit,
            bits: format.bits,
            group: format.group,
            top1_agreement: s.top1(),
            ppl_rel_diff: s.ppl_rel_diff(),
        });
    }
    Ok(out)
}

/// `etch accuracy`.
pub fn accuracy(a: &AccuracyArgs) -> CliResult {
    let (checkpoint, tokenizer) = open_model(&a.model)?;
    let text = std::fs::read_to_string(&a.text).map_err(|source| CliError::Io {
        action: "read",
        path: a.text.clone(),
        source,
    })?;
    if etch_compiler::paragraphs(&text).is_empty() {
        return Err(CliError::Usage(format!(
            "{} holds no text to evaluate",
            a.text.display()
        )));
    }
    let c = *checkpoint.config();
    let other_reference = match &a.reference {
        Some(path) => {
            let r = Checkpoint::open(path)?;
            let rc = r.config();
            if rc.vocab_size != c.vocab_size || rc.seq_len != c.seq_len {
                return Err(CliError::Usage(format!(
                    "the reference {} has a vocabulary of {} and a context of {}; the model \
                     has {} and {}",
                    path.display(),
                    rc.vocab_size,
                    rc.seq_len,
                    c.vocab_size,
                    c.seq_len
                )));
            }
            Some(r)
        }
        None => None,
    };
    let reference = other_reference.as_ref().unwrap_or(&checkpoint);
    let lanes = match a.lanes {
        Some(l) => l,
        None => etch_hdl::top::default_lanes(crate::chip::DEFAULT_LANES, c.dim, c.n_heads)
            .map_err(|e| CliError::Usage(format!("{e} (no lane count fits this model)")))?,
    };
    let settings = a.quant.settings()?;
    let mix = a
        .rom_budget
        .map(|budget| {
            crate::chip::choose_weights(
                &checkpoint,
                &tokenizer,
                &settings,
                budget,
                lanes,
                etch_compiler::chip::Datapath::per_lane(lanes),
            )
        })
        .transpose()?;
    let settings = mix.as_ref().map_or(settings, |m| m.settings.clone());
    let bar = spinner("calibrating and quantizing");
    let calibration = etch_compiler::calibrate(&checkpoint, &tokenizer, &settings);
    bar.finish_and_clear();
    let calibration = calibration?;
    let model = QuantizedModel::from_calibration(&checkpoint, &settings, &calibration)?;
    let bar = progress(0, "evaluating");
    let report = etch_compiler::accuracy(
        reference,
        &tokenizer,
        &model,
        &text,
        a.greedy_steps,
        &mut |done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        },
    )?;
    bar.finish_and_clear();
    let per_matrix = if a.per_matrix {
        let bar = spinner("measuring each matrix alone");
        let (sequences, _) = etch_compiler::text_sequences(&text, &tokenizer, c.seq_len);
        let losses = per_matrix_losses(&checkpoint, reference, &settings, &calibration, &sequences);
        bar.finish_and_clear();
        Some(losses?)
    } else {
        None
    };
    let rom_bits = etch_compiler::mix::weight_rom_bits(
        &model,
        lanes,
        &etch_compiler::chip::Datapath::per_lane(lanes),
    );
    if a.json {
        return print_json(&AccuracyJson {
            report: &report,
            weights: crate::chip::WeightsJson::new(&settings, rom_bits),
            lanes,
            mix: mix.as_ref(),
            per_matrix: per_matrix.as_deref(),
        });
    }
    println!(
        "weights              {} ({:.3} Mbit on {lanes} lanes)",
        crate::chip::describe_weights(&settings),
        rom_bits as f64 / 1e6
    );
    println!("sequences            {}", report.sequences);
    println!("predicted tokens     {}", report.tokens);
    println!("top-1 agreement      {:.4}", report.top1_agreement);
    println!("perplexity (float)   {:.4}", report.ppl_float);
    println!(
        "perplexity (chip)    {:.4}  ({:+.3}%)",
        report.ppl_quant,
        100.0 * report.ppl_rel_diff
    );
    println!("max |logit error|    {:.4}", report.max_abs_logit_err);
    println!("mean |logit error|   {:.4}", report.mean_abs_logit_err);
    match report.greedy_first_divergence {
        Some(i) => println!(
            "greedy story         golden leaves float at ids[{i}] of {}",
            report.greedy_steps
        ),
        None => println!(
            "greedy story         identical for all {} ids",
            report.greedy_steps
        ),
    }
    if let Some(losses) = &per_matrix {
        println!("each matrix alone in its format, the rest at 8 bits:");
        for m in losses {
            println!(
                "  {:<16} {}-bit{}  top-1 {:.4}  perplexity {:+.3}%",
                m.matrix,
                m.bits,
                if m.group == 0 {
                    String::new()
                } else {
                    format!(" g{}", m.group)
                },
                m.top1_agreement,
                100.0 * m.ppl_rel_diff
            );
        }
    }
    Ok(())
}

/// `etch info` as JSON.
#[derive(Serialize)]
struct InfoJson {
    model: String,
    dim: usize,
    hidden_dim: usize,
    n_layers: usize,
    n_heads: usize,
    n_kv_heads: usize,
    head_size: usize,
    vocab_size: usize,
    seq_len: usize,
    shared_classifier: bool,
    params: usize,
    file_bytes: u64,
    weight_bytes_f32: usize,
    weight_bytes_int8: usize,
    matvec_macs_per_token: usize,
    attention_macs_per_position: usize,
    kv_cache_bytes_int16: usize,
    tokenizer: Option<TokenizerJson>,
}

#[derive(Serialize)]
struct TokenizerJson {
    path: String,
    pieces: usize,
    max_token_length: usize,
}

/// `etch info`.
pub fn info(args: &ModelArgs, json: bool) -> CliResult {
    let checkpoint = Checkpoint::open(&args.model)?;
    let c = *checkpoint.config();
    let tokenizer = match &args.tokenizer {
        Some(p) => Some(Tokenizer::open(p, c.vocab_size)?),
        None => None,
    };
    let params = c.parameter_count();
    let (d, h, kv, l) = (c.dim, c.hidden_dim, c.kv_dim(), c.n_layers);
    let macs = l * (2 * d * d + 2 * kv * d + 3 * h * d) + c.vocab_size * d;
    let info = InfoJson {
        model: args.model.display().to_string(),
        dim: d,
        hidden_dim: h,
        n_layers: l,
        n_heads: c.n_heads,
        n_kv_heads: c.n_kv_heads,
        head_size: c.head_size(),
        vocab_size: c.vocab_size,
        seq_len: c.seq_len,
        shared_classifier: c.shared_classifier,
        params,
        file_bytes: c.file_bytes().unwrap_or(0),
        weight_bytes_f32: params * 4,
        weight_bytes_int8: params,
        matvec_macs_per_token: macs,
        attention_macs_per_position: l * c.n_heads * c.head_size() * 2,
        kv_cache_bytes_int16: l * c.seq_len * kv * 2 * 2,
        tokenizer: tokenizer.as_ref().map(|t| TokenizerJson {
            path: t.path().display().to_string(),
            pieces: t.vocab_size(),
            max_token_length: t.max_token_length(),
        }),
    };
    if json {
        return print_json(&info);
    }
    println!("model        {}", info.model);
    println!(
        "shapes       dim {}, hidden {}, {} layers, {} heads ({} kv heads, head size {}), vocab {}, context {}",
        d, h, l, c.n_heads, c.n_kv_heads, info.head_size, c.vocab_size, c.seq_len
    );
    println!(
        "classifier   {}",
        if c.shared_classifier {
            "shared with the token embedding"
        } else {
            "separate"
        }
    );
    println!("parameters   {params}");
    println!(
        "bytes        {} on disk, {} as float32 weights, {} as int8",
        info.file_bytes, info.weight_bytes_f32, info.weight_bytes_int8
    );
    println!(
        "work         {} weight MACs per token, {} attention MACs per position attended",
        macs, info.attention_macs_per_position
    );
    println!(
        "KV cache     {} bytes per context at int16",
        info.kv_cache_bytes_int16
    );
    if let Some(t) = &info.tokenizer {
        println!(
            "tokenizer    {}: {} pieces, longest {} bytes",
            t.path, t.pieces, t.max_token_length
        );
    }
    Ok(())
}
