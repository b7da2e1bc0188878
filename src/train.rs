//! `etch train`: a small llama2.c-format model trained on the CPU.

use std::fmt::Write as _;
use std::time::Instant;

use etch_compiler::{Checkpoint, Config, Tokenizer};
use etch_train::{
    calibrate_logit_scale, evaluate, Corpus, FakeQuant, LogitCalibration, Model, Settings,
};
use serde::Serialize;

use crate::error::{CliError, CliResult};
use crate::output::{print_json, progress, spinner};
use crate::TrainArgs;

/// `train.json` and `etch train --json`.
#[derive(Serialize)]
struct TrainReport {
    model: String,
    tokenizer: String,
    config: Config,
    params: usize,
    corpus: String,
    /// The checkpoint training started from, if any.
    init: Option<String>,
    /// Targets: the corpus's next tokens, or the teacher's distributions.
    distilled: bool,
    /// The weight format of quantization-aware training, if any.
    qat: Option<FakeQuant>,
    sequences: usize,
    tokens: usize,
    validation_sequences: usize,
    settings: Settings,
    /// Cross-entropy on the held-out validation sequences, nats per token.
    validation_loss_before: f64,
    validation_loss_after: f64,
    /// Temperature scaling after training (`--calibrate-logits`): the factor on every
    /// logit and the validation loss it gave.
    logit_calibration: Option<LogitCalibration>,
    /// Mean loss of the last tenth of the steps.
    final_train_loss: f64,
    seconds: f64,
}

fn write(path: std::path::PathBuf, bytes: impl AsRef<[u8]>) -> CliResult {
    std::fs::write(&path, bytes).map_err(|source| CliError::Io {
        action: "write",
        path,
        source,
    })
}

/// The loss curve as a PNG: the loss of every step and its running mean over 50.
fn plot_loss(curve: &[etch_train::StepLoss], path: &std::path::Path) -> Result<(), String> {
    use plotters::prelude::*;
    crate::bench::font()?;
    let root = BitMapBackend::new(path, (800, 480)).into_drawing_area();
    let max = curve.iter().map(|s| s.loss as f64).fold(0.0, f64::max) * 1.05;
    let steps = curve.len().max(1);
    let draw = || -> Result<(), Box<dyn std::error::Error>> {
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption("etch train: loss per step", ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0..steps, 0f64..max.max(1e-3))?;
        chart
            .configure_mesh()
            .x_desc("step")
            .y_desc("cross-entropy (nats/token)")
            .draw()?;
        chart.draw_series(LineSeries::new(
            curve.iter().map(|s| (s.step, s.loss as f64)),
            RGBColor(160, 180, 230),
        ))?;
        let mean: Vec<(usize, f64)> = curve
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let w = &curve[i.saturating_sub(49)..=i];
                (
                    s.step,
                    w.iter().map(|x| x.loss as f64).sum::<f64>() / w.len() as f64,
                )
            })
            .collect();
        chart.draw_series(LineSeries::new(mean, BLUE.stroke_width(2)))?;
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| e.to_string())
}

/// `etch train`.
pub fn train(a: &TrainArgs) -> CliResult {
    let started = Instant::now();
    etch_train::keep_freed_memory();
    let (Some(out), Some(tokenizer_path)) = (&a.out, &a.tokenizer) else {
        return Err(CliError::Usage(
            "etch train needs -o DIR and -z TOK (or a job: etch train syscall)".into(),
        ));
    };
    let init = a.init.as_ref().map(Checkpoint::open).transpose()?;
    let config = init.as_ref().map(|c| *c.config()).unwrap_or(Config {
        dim: a.shape.dim,
        hidden_dim: a.shape.hidden,
        n_layers: a.shape.layers,
        n_heads: a.shape.heads,
        n_kv_heads: a.kv_heads.unwrap_or(a.shape.heads),
        vocab_size: 0,
        seq_len: a.seq_len,
        shared_classifier: true,
    });
    let tok_bytes = std::fs::read(tokenizer_path).map_err(|source| CliError::Io {
        action: "read",
        path: tokenizer_path.clone(),
        source,
    })?;
    let tokenizer = Tokenizer::parse_any(&tok_bytes, tokenizer_path)?;
    let vocab = tokenizer.vocab_size();
    if init.is_some() && config.vocab_size != vocab {
        return Err(CliError::Usage(format!(
            "the --init model's vocabulary ({}) is not the tokenizer's ({vocab})",
            config.vocab_size
        )));
    }
    let config = Config {
        vocab_size: vocab,
        ..config
    };
    config.validate(&out.join("model.bin"))?;
    let qat = a
        .qat
        .map(|bits| -> CliResult<FakeQuant> {
            let mut q = etch_compiler::QuantSettings::for_bits(bits);
            if let Some(g) = a.qat_group {
                q.group = g;
            }
            q.check_format().map_err(|e| {
                CliError::Usage(format!("--qat {bits} --qat-group {}: {e}", q.group))
            })?;
            Ok(FakeQuant {
                bits,
                group: q.group as usize,
            })
        })
        .transpose()?;
    let mut teacher_model = None;
    let (mut corpus, what) = match (&a.text, &a.teacher) {
        (Some(text), _) => {
            let t = std::fs::read_to_string(text).map_err(|source| CliError::Io {
                action: "read",
                path: text.clone(),
                source,
            })?;
            (
                Corpus::from_text(&t, &tokenizer),
                format!("text {}", text.display()),
            )
        }
        (None, Some(teacher)) => {
            let ck = Checkpoint::open(teacher)?;
            if ck.config().vocab_size != vocab {
                return Err(CliError::Usage(format!(
                    "the teacher's vocabulary ({}) is not the tokenizer's ({vocab})",
                    ck.config().vocab_size
                )));
            }
            let bar = progress(a.teacher_stories as u64, "the teacher writes");
            let c = Corpus::from_teacher(
                &ck,
                &tokenizer,
                a.teacher_stories,
                config.seq_len,
                10_000 + a.seed,
                &mut |done, _| bar.set_position(done as u64),
            );
            bar.finish_and_clear();
            if a.distill {
                teacher_model = Some(Model::from_checkpoint(&ck)?);
            }
            (
                c?,
                format!("{} stories by {}", a.teacher_stories, teacher.display()),
            )
        }
        (None, None) => {
            return Err(CliError::Usage(
                "give --text FILE or --teacher MODEL".into(),
            ))
        }
    };
    if corpus.sequences.len() < 2 {
        return Err(CliError::Usage(format!(
            "the corpus ({what}) has fewer than two sequences to train and validate on"
        )));
    }
    let validation = corpus.split_validation(20);
    let settings = Settings {
        steps: a.steps,
        batch: a.batch,
        window: a.window.unwrap_or(config.seq_len),
        lr: a.lr,
        seed: a.seed,
        from_start: a.from_start,
        distill_temperature: a.distill_temperature,
        shards: a.shards,
        ..Settings::default()
    };
    let mut model = match &init {
        Some(ck) => Model::from_checkpoint(ck)?,
        None => Model::new(config, a.seed)?,
    };
    model.fake_quant = qat;
    let window = settings.window;
    let before = evaluate(&model, &validation, window)?;
    let bar = progress(settings.steps as u64, "training");
    let curve = etch_train::train(
        &mut model,
        &corpus,
        &settings,
        teacher_model.as_ref(),
        &mut |s| {
            bar.set_position(s.step as u64);
            bar.set_message(format!("loss {:.3}", s.loss));
        },
    );
    bar.finish_and_clear();
    let curve = curve?;
    let after = evaluate(&model, &validation, window)?;
    let calibration = if a.calibrate_logits {
        let spinner = spinner("calibrating the logits");
        let c = calibrate_logit_scale(&mut model, &validation, window);
        spinner.finish_and_clear();
        Some(c?)
    } else {
        None
    };
    std::fs::create_dir_all(out).map_err(|source| CliError::Io {
        action: "write",
        path: out.clone(),
        source,
    })?;
    let checkpoint = model.checkpoint("model.bin")?;
    write(out.join("model.bin"), checkpoint.file_bytes())?;
    write(out.join("tokenizer.bin"), &tok_bytes)?;
    let mut csv = String::from("step,loss,lr\n");
    for s in &curve {
        let _ = writeln!(csv, "{},{},{}", s.step, s.loss, s.lr);
    }
    write(out.join("loss.csv"), csv)?;
    let plotted = plot_loss(&curve, &out.join("loss.png"));
    if let Err(why) = &plotted {
        if !a.json {
            eprintln!("no loss.png ({why}); loss.csv has the curve");
        }
    }
    let tail = &curve[curve.len() - (curve.len() / 10).max(1)..];
    let report = TrainReport {
        model: out.join("model.bin").display().to_string(),
        tokenizer: out.join("tokenizer.bin").display().to_string(),
        config,
        params: config.parameter_count(),
        corpus: what,
        init: a.init.as_ref().map(|p| p.display().to_string()),
        distilled: teacher_model.is_some(),
        qat,
        sequences: corpus.sequences.len(),
        tokens: corpus.tokens(),
        validation_sequences: validation.sequences.len(),
        settings,
        validation_loss_before: before,
        validation_loss_after: after,
        logit_calibration: calibration,
        final_train_loss: tail.iter().map(|s| s.loss as f64).sum::<f64>() / tail.len() as f64,
        seconds: started.elapsed().as_secs_f64(),
    };
    let text =
        serde_json::to_string_pretty(&report).map_err(|e| CliError::Internal(e.to_string()))?;
    write(out.join("train.json"), &text)?;
    if a.json {
        return print_json(&report);
    }
    println!(
        "trained {} parameters on {} ({} tokens) in {:.0} s",
        report.params, report.corpus, report.tokens, report.seconds
    );
    println!(
        "  validation   {:.3} → {:.3} nats/token ({} sequences held out)",
        before, after, report.validation_sequences
    );
    if let Some(c) = &calibration {
        println!(
            "  calibrated   logits × {} → {:.3} nats/token",
            c.scale, c.loss_after
        );
    }
    println!("  model        {}", report.model);
    println!(
        "  next         etch accuracy {} -z {} --text FILE",
        report.model, report.tokenizer
    );
    Ok(())
}

/// `train.json` of `etch train syscall`.
#[derive(Serialize)]
struct SyscallTrainReport {
    model: String,
    tokenizer: String,
    config: Config,
    params: usize,
    examples: usize,
    /// Pairs left out because request and call do not fit the context.
    too_long: usize,
    tokens: usize,
    validation_pairs: usize,
    settings: Settings,
    /// Cross-entropy of the call lines of the validation pairs, nats per token.
    validation_loss_before: f64,
    validation_loss_after: f64,
    final_train_loss: f64,
    /// Held-out requests understood exactly (float model, constrained decoding).
    heldout_accuracy: f64,
    heldout_cases: usize,
    /// With `--average-last`: the last step's own weights, measured the same way, to
    /// show what the average changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    last_step: Option<LastStepReport>,
    seconds: f64,
}

/// The syscall model's last training step's own weights, beside the average it ships.
#[derive(serde::Serialize)]
struct LastStepReport {
    validation_loss: f64,
    heldout_accuracy: f64,
}

/// Measures a syscall checkpoint on `cases` with constrained decoding on the float
/// model, with a progress bar.
pub fn heldout_report(
    registry: &etch_agent::Registry,
    checkpoint: &Checkpoint,
    tokenizer: &Tokenizer,
    cases: &[etch_agent::understand::eval::Case],
    quiet: bool,
) -> CliResult<etch_agent::understand::eval::Report> {
    let vocabulary = etch_agent::understand::Vocabulary::of(tokenizer);
    let mut logits = crate::understand::float(checkpoint);
    let bar = progress(
        if quiet { 0 } else { cases.len() as u64 },
        "held-out requests",
    );
    let report = etch_agent::understand::eval::evaluate(registry, cases, &mut |request| {
        bar.inc(1);
        let prompt = etch_agent::understand::prompt(tokenizer, request);
        let u = etch_agent::understand::understand(
            registry,
            &vocabulary,
            &mut logits,
            request,
            &prompt,
        )?;
        Ok((u.line, u.call))
    })?;
    bar.finish_and_clear();
    Ok(report)
}

/// Validation loss and held-out accuracy of `model` with the `last` step's weights in
/// place of the average it holds; the average is put back after.
fn measure_last_step(
    model: &Model,
    last: &etch_train::Weights,
    validation: &etch_train::Corpus,
    window: usize,
    (registry, tokenizer, cases): (
        &etch_agent::Registry,
        &Tokenizer,
        &[etch_agent::understand::eval::Case],
    ),
    quiet: bool,
) -> CliResult<LastStepReport> {
    let average = model.weights()?;
    model.set_weights(last)?;
    let validation_loss = evaluate(model, validation, window)?;
    let checkpoint = model.checkpoint("model.bin")?;
    let heldout = heldout_report(registry, &checkpoint, tokenizer, cases, quiet)?;
    model.set_weights(&average)?;
    Ok(LastStepReport {
        validation_loss,
        heldout_accuracy: heldout.accuracy,
    })
}

/// `etch train syscall`.
pub fn train_syscall(a: &crate::SyscallTrainArgs) -> CliResult {
    use etch_agent::understand::{corpus, eval};
    let started = Instant::now();
    etch_train::keep_freed_memory();
    let registry = match &a.state {
        Some(state) => etch_agent::Syscalls::open(state)?.registry().clone(),
        None => etch_agent::Registry::default(),
    };
    let examples = corpus::generate(&registry, a.examples, a.seed);
    // The tokenizer: the one given, or one learned from the corpus itself.
    let tok_bytes = match &a.tokenizer {
        Some(p) => std::fs::read(p).map_err(|source| CliError::Io {
            action: "read",
            path: p.clone(),
            source,
        })?,
        None => {
            let texts: Vec<String> = examples
                .iter()
                .map(|e| {
                    format!(
                        "{} {}\n",
                        etch_agent::understand::prompt_text(&e.request),
                        e.call
                    )
                })
                .collect();
            etch_train::bpe::learn(&texts, a.vocab)?
        }
    };
    let tokenizer_path = a
        .tokenizer
        .clone()
        .unwrap_or_else(|| a.out.join("tokenizer.bin"));
    let tokenizer = Tokenizer::parse_any(&tok_bytes, &tokenizer_path)?;
    let config = Config {
        dim: a.shape.dim,
        hidden_dim: a.shape.hidden,
        n_layers: a.shape.layers,
        n_heads: a.shape.heads,
        n_kv_heads: a.kv_heads,
        vocab_size: tokenizer.vocab_size(),
        seq_len: a.seq_len,
        shared_classifier: true,
    };
    config.validate(&a.out.join("model.bin"))?;
    if config.parameter_count() > 500_000 && !a.json {
        eprintln!(
            "note: {} parameters; the FPGA fit assumes at most 500,000",
            config.parameter_count()
        );
    }
    let heldout_text = match &a.eval {
        Some(p) => std::fs::read_to_string(p).map_err(|source| CliError::Io {
            action: "read",
            path: p.clone(),
            source,
        })?,
        None => eval::HELDOUT.to_string(),
    };
    let cases = eval::read_cases(&heldout_text, &registry)?;
    let mut too_long = 0;
    let pairs: Vec<(Vec<u32>, Vec<u32>)> = examples
        .iter()
        .filter_map(|e| {
            let prompt = etch_agent::understand::prompt(&tokenizer, &e.request);
            let call = etch_agent::understand::completion(&tokenizer, &e.call);
            if prompt.len() + call.len() > config.seq_len {
                too_long += 1;
                None
            } else {
                Some((prompt, call))
            }
        })
        .collect();
    let mut corpus = etch_train::Corpus::from_pairs(pairs);
    if corpus.sequences.len() < 2 {
        return Err(CliError::Usage(
            "the corpus has fewer than two pairs that fit the context".into(),
        ));
    }
    let validation = corpus.split_validation(20);
    let longest = corpus.sequences.iter().map(Vec::len).max().unwrap_or(2);
    let settings = Settings {
        steps: a.steps,
        batch: a.batch,
        window: (longest - 1).min(config.seq_len),
        lr: a.lr,
        seed: a.seed,
        from_start: true,
        shards: a.shards,
        average_last: a.average_last,
        ..Settings::default()
    };
    let mut model = Model::new(config, a.seed)?;
    let before = evaluate(&model, &validation, settings.window)?;
    let bar = progress(settings.steps as u64, "training the syscall model");
    let trained =
        etch_train::train_keeping_last_step(&mut model, &corpus, &settings, None, &mut |s| {
            bar.set_position(s.step as u64);
            bar.set_message(format!("loss {:.3}", s.loss));
        });
    bar.finish_and_clear();
    let (curve, last_weights) = trained?;
    let after = evaluate(&model, &validation, settings.window)?;
    let last_step = match last_weights {
        Some(weights) => Some(measure_last_step(
            &model,
            &weights,
            &validation,
            settings.window,
            (&registry, &tokenizer, &cases),
            a.json,
        )?),
        None => None,
    };
    std::fs::create_dir_all(&a.out).map_err(|source| CliError::Io {
        action: "write",
        path: a.out.clone(),
        source,
    })?;
    let checkpoint = model.checkpoint("model.bin")?;
    write(a.out.join("model.bin"), checkpoint.file_bytes())?;
    write(a.out.join("tokenizer.bin"), &tok_bytes)?;
    let mut lines = String::new();
    for e in &examples {
        let _ = writeln!(
            lines,
            "{}",
            serde_json::json!({ "request": e.request, "call": e.call })
        );
    }
    write(a.out.join("corpus.jsonl"), lines)?;
    let mut csv = String::from("step,loss,lr\n");
    for s in &curve {
        let _ = writeln!(csv, "{},{},{}", s.step, s.loss, s.lr);
    }
    write(a.out.join("loss.csv"), csv)?;
    if let Err(why) = plot_loss(&curve, &a.out.join("loss.png")) {
        if !a.json {
            eprintln!("no loss.png ({why}); loss.csv has the curve");
        }
    }
    let reloaded = Checkpoint::open(a.out.join("model.bin"))?;
    let heldout = heldout_report(&registry, &reloaded, &tokenizer, &cases, a.json)?;
    let text =
        serde_json::to_string_pretty(&heldout).map_err(|e| CliError::Internal(e.to_string()))?;
    write(a.out.join("heldout.json"), &text)?;
    let tail = &curve[curve.len() - (curve.len() / 10).max(1)..];
    let report = SyscallTrainReport {
        model: a.out.join("model.bin").display().to_string(),
        tokenizer: a.out.join("tokenizer.bin").display().to_string(),
        config,
        params: config.parameter_count(),
        examples: examples.len(),
        too_long,
        tokens: corpus.tokens(),
        validation_pairs: validation.sequences.len(),
        settings,
        validation_loss_before: before,
        validation_loss_after: after,
        final_train_loss: tail.iter().map(|s| s.loss as f64).sum::<f64>() / tail.len() as f64,
        heldout_accuracy: heldout.accuracy,
        heldout_cases: heldout.cases,
        last_step,
        seconds: started.elapsed().as_secs_f64(),
    };
    let text =
        serde_json::to_string_pretty(&report).map_err(|e| CliError::Internal(e.to_string()))?;
    write(a.out.join("train.json"), &text)?;
    if a.json {
        return print_json(&report);
    }
    println!(
        "trained the syscall model ({} parameters) on {} pairs ({} tokens) in {:.0} s",
        report.params,
        corpus.sequences.len(),
        report.tokens,
        report.seconds
    );
    println!(
        "  validation   {before:.3} → {after:.3} nats per call token ({} pairs held out)",
        report.validation_pairs
    );
    println!(
        "  held-out     {} of {} requests understood exactly ({:.1} %), float model",
        heldout.correct,
        heldout.cases,
        100.0 * heldout.accuracy
    );
    for (tool, s) in &heldout.per_tool {
        println!("    {tool:<10} {:>3} / {:<3}", s.correct, s.cases);
    }
    println!("  model        {}", report.model);
    Ok(())
}
