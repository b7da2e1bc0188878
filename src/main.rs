//! `etch`: compile a transformer checkpoint into a chip, simulate it, and drive it.
//!
//! Exit codes: 0 success, 1 internal failure, 2 bad input (a one-line message on
//! stderr names the file and the problem), 3 a design that does not fit its FPGA;
//! `etch agent syscall`: 4 denied, 5 failed; `etch audit verify`: 4 a damaged log.

mod agent;
mod bench;
mod chat;
mod chip;
mod error;
mod fit;
mod flash;
mod models;
mod output;
mod run;
mod synth;
mod train;
mod understand;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use etch_compiler::chip::Pipeline;

use crate::error::CliResult;

/// etch — a transformer minted into silicon, and the stack that drives it.
///
/// Start with `etch info MODEL`, compare the float reference with the chip's
/// arithmetic using `etch reference` and `etch emulate`, and measure the difference
/// with `etch accuracy`.
#[derive(Parser, Debug)]
#[command(name = "etch", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print a checkpoint's shapes, parameter count and sizes.
    Info(InfoArgs),
    /// Generate with the float reference (llama2.c run.c, token for token).
    Reference(GenerateArgs),
    /// Generate with the golden model: the chip's integer arithmetic, bit for bit.
    Emulate(EmulateArgs),
    /// Measure the golden model against the float reference on a text.
    Accuracy(AccuracyArgs),
    /// Compile a checkpoint into a chip: Verilog, ROM images, firmware, manifest.
    Build(BuildArgs),
    /// Train a small llama2.c-format model on the CPU: on a text, or on the stories a
    /// teacher model writes (a model of another shape to mint).
    Train(Box<TrainArgs>),
    /// Simulate a built chip cycle-accurately (Verilator) and generate with it.
    Sim(SimArgs),
    /// Measure chips of several lane counts on the greedy story: cycles per token,
    /// utilization, sizes, simulation speed; tables and plots.
    Bench(BenchArgs),
    /// Serve a built chip's simulator as a vfio-user PCI device on a UNIX socket, or its
    /// board top as a serial line on a pseudo-terminal.
    Serve(ServeArgs),
    /// Generate on a chip reached through a device: the in-process simulator, a
    /// vfio-user server, a board bound to vfio-pci, or a board on a serial line.
    Run(RunArgs),
    /// List etch boards on the PCI bus and whether they are ready for VFIO.
    Devices(DevicesArgs),
    /// Talk with a chip that remembers: an agent's named context, kept under a state
    /// directory across runs (evicted, restored and compacted by the runtime).
    Chat(ChatArgs),
    /// Synthesize, place and route a built chip for an FPGA (yosys, nextpnr) and write
    /// its bitstream and a utilization and timing report.
    Synth(SynthArgs),
    /// Load the bitstream of `etch synth` onto a board (openFPGALoader), then check
    /// the chip answers over its serial link.
    Flash(FlashArgs),
    /// Natural-language system calls: `etch agent syscall` turns an English request
    /// into a checked tool call; also the tool registry and the trust monitor.
    #[command(subcommand)]
    Agent(agent::AgentCmd),
    /// Capabilities: mint, attenuate (delegate), inspect, revoke.
    #[command(subcommand)]
    Cap(agent::CapCmd),
    /// The staging area: actions waiting for a person (list, show, approve, deny).
    #[command(subcommand)]
    Approvals(agent::ApprovalsCmd),
    /// Undo an executed reversible action.
    Undo(agent::UndoArgs),
    /// The audit log: tail it, verify its hash chain.
    #[command(subcommand)]
    Audit(agent::AuditCmd),
}

/// A model and its tokenizer.
#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// llama2.c checkpoint (legacy float32 format).
    #[arg(value_name = "MODEL")]
    pub model: PathBuf,
    /// llama2.c tokenizer file [default: tokenizer.bin beside MODEL].
    #[arg(short = 'z', long = "tokenizer", value_name = "TOK")]
    pub tokenizer: Option<PathBuf>,
}

/// The run.c flags shared by every generating command.
#[derive(Args, Debug, Clone)]
pub struct SamplingArgs {
    /// Prompt text.
    #[arg(
        short = 'i',
        long = "prompt",
        default_value = "",
        value_name = "PROMPT"
    )]
    pub prompt: String,
    /// Forward passes (prompt included); 0 or more than the context means the context.
    #[arg(
        short = 'n',
        long = "steps",
        default_value_t = 256,
        value_name = "STEPS"
    )]
    pub steps: usize,
    /// Temperature; 0 is greedy, negative values become 0 (as in run.c).
    #[arg(
        short = 't',
        long = "temperature",
        default_value_t = 1.0,
        allow_negative_numbers = true,
        value_name = "TEMP"
    )]
    pub temperature: f64,
    /// Top-p (nucleus) mass; values outside [0, 1] become 0.9, 0 or 1 disable it.
    #[arg(
        short = 'p',
        long = "topp",
        default_value_t = 0.9,
        allow_negative_numbers = true,
        value_name = "TOPP"
    )]
    pub topp: f64,
    /// RNG seed; 0 uses the current time (as in run.c).
    #[arg(short = 's', long = "seed", default_value_t = 0, value_name = "SEED")]
    pub seed: u64,
    /// Print one JSON object {"prompt_ids", "ids", "text"} instead of the text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
struct InfoArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// `etch reference` arguments.
#[derive(Args, Debug)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub sampling: SamplingArgs,
}

/// Quantization choices.
#[derive(Args, Debug, Clone)]
pub struct QuantArgs {
    /// Bits per weight (8, or 4 to fit small FPGAs).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(4..=8))]
    pub weight_bits: u32,
    /// Weights per group scale with 4-bit weights: 8, 16, 32 or 64, or 0 for one scale
    /// per row [default: 8 with --weight-bits 4, 0 with 8]
    #[arg(long, value_name = "G")]
    pub group: Option<u32>,
    /// How weights are rounded to their codes: error-compensating (GPTQ-style, against
    /// the calibration stories) or to the nearest code.
    #[arg(long, default_value = "error-compensating", value_parser = ["error-compensating", "nearest"])]
    pub rounding: String,
    /// Matrices a 4-bit model keeps at 8 bits, comma-separated: token_embedding, wqkv,
    /// wo, w1, w3, w2, wcls (an unshared classifier).
    #[arg(long, value_name = "UNITS", value_delimiter = ',')]
    pub wide: Vec<String>,
}

/// A number of bits, with an optional k, M or G (decimal) suffix.
fn parse_bits(s: &str) -> Result<u64, String> {
    let (digits, mult) = match s.trim().chars().last() {
        Some('k' | 'K') => (&s[..s.len() - 1], 1e3),
        Some('M') => (&s[..s.len() - 1], 1e6),
        Some('G') => (&s[..s.len() - 1], 1e9),
        _ => (s, 1.0),
    };
    let v: f64 = digits
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number of bits (e.g. 1500000 or 1.5M)"))?;
    if !(v.is_finite() && v > 0.0) {
        return Err(format!("{s:?} is not a positive number of bits"));
    }
    Ok((v * mult).round() as u64)
}

impl QuantArgs {
    /// The quantization settings these arguments name, checked.
    pub fn settings(&self) -> Result<etch_compiler::QuantSettings, error::CliError> {
        let mut s = etch_compiler::QuantSettings::for_bits(self.weight_bits);
        if let Some(g) = self.group {
            s.group = g;
        }
        s.wide = self.wide.clone();
        s.rounding = if self.rounding == "nearest" {
            etch_compiler::Rounding::Nearest
        } else {
            etch_compiler::Rounding::ErrorCompensating
        };
        s.check_format().map_err(|e| {
            error::CliError::Usage(format!(
                "--weight-bits {} --group {}: {e}",
                s.weight_bits, s.group
            ))
        })?;
        Ok(s)
    }
}

/// `etch emulate` arguments.
#[derive(Args, Debug)]
pub struct EmulateArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    #[command(flatten)]
    pub quant: QuantArgs,
}

/// `etch accuracy` arguments.
#[derive(Args, Debug)]
pub struct AccuracyArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Evaluation text: paragraphs separated by blank lines, each one sequence.
    #[arg(long, value_name = "FILE")]
    pub text: PathBuf,
    /// Length of the greedy stories compared for their first divergence.
    #[arg(long, default_value_t = 256)]
    pub greedy_steps: usize,
    #[command(flatten)]
    pub quant: QuantArgs,
    /// Evaluate the format `etch build --rom-budget BITS` would choose (weight ROM
    /// bits, with k/M/G suffixes), reporting what it measured to choose it.
    #[arg(long, value_name = "BITS", value_parser = parse_bits, conflicts_with_all = ["weight_bits", "group", "wide"])]
    pub rom_budget: Option<u64>,
    /// Lanes whose layout the ROM bits are counted for [default: as `etch build`].
    #[arg(long)]
    pub lanes: Option<usize>,
    /// Also measure each matrix alone in the chosen format, every other at 8 bits:
    /// which matrices lose the most.
    #[arg(long)]
    pub per_matrix: bool,
    /// The float model the chip is compared with [default: the model itself], e.g. the
    /// original of a model fine-tuned by `etch train --init ORIGINAL --qat 4`; it must
    /// have the model's vocabulary and context.
    #[arg(long, value_name = "MODEL")]
    pub reference: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// The shape of a model to train (its key/value heads and context are set apart:
/// their defaults differ between jobs).
#[derive(Args, Debug)]
pub struct ShapeArgs {
    /// Residual width.
    #[arg(long, default_value_t = 64)]
    pub dim: usize,
    /// Feed-forward width.
    #[arg(long, default_value_t = 172)]
    pub hidden: usize,
    /// Layers.
    #[arg(long, default_value_t = 4)]
    pub layers: usize,
    /// Query heads.
    #[arg(long, default_value_t = 8)]
    pub heads: usize,
}

/// Named build configurations (`etch build --preset`, `etch bench --preset`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Preset {
    /// The fastest stories260K chip with at most 1,100 multipliers.
    Fast,
}

impl Preset {
    /// Lanes and datapath.
    pub fn datapath(self) -> (usize, etch_compiler::chip::Datapath) {
        match self {
            Preset::Fast => etch_compiler::chip::fast_preset(),
        }
    }
}

/// `etch train` arguments.
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct TrainArgs {
    /// Train a model made for one job instead.
    #[command(subcommand)]
    pub job: Option<TrainJob>,
    /// Output directory: model.bin, tokenizer.bin, loss.csv, loss.png, train.json.
    #[arg(short = 'o', long = "out", value_name = "DIR", required = true)]
    pub out: Option<PathBuf>,
    /// Tokenizer (llama2.c format); its vocabulary is the model's.
    #[arg(short = 'z', long = "tokenizer", value_name = "TOK", required = true)]
    pub tokenizer: Option<PathBuf>,
    /// Train on this text: paragraphs separated by blank lines.
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with = "teacher",
        required_unless_present = "teacher"
    )]
    pub text: Option<PathBuf>,
    /// Train on stories this checkpoint writes itself (float reference, temperature 1,
    /// top-p 0.9).
    #[arg(long, value_name = "MODEL")]
    pub teacher: Option<PathBuf>,
    /// Stories the teacher writes.
    #[arg(long, default_value_t = 400)]
    pub teacher_stories: usize,
    /// Train towards the teacher's whole next-token distribution at every position
    /// (distillation) rather than the next token of its stories.
    #[arg(long, requires = "teacher")]
    pub distill: bool,
    /// Temperature of the teacher's distributions under --distill: below 1 sharpens
    /// them towards the teacher's first choice.
    #[arg(long, default_value_t = 1.0, requires = "distill")]
    pub distill_temperature: f64,
    /// Start from this checkpoint (fine-tuning): its shape replaces --dim, --hidden,
    /// --layers, --heads, --kv-heads and --seq-len.
    #[arg(long, value_name = "MODEL", conflicts_with_all = ["dim", "hidden", "layers", "heads", "kv_heads", "seq_len"])]
    pub init: Option<PathBuf>,
    /// Quantization-aware training: the forward pass rounds every weight matrix to
    /// BITS-bit codes with group scales, as the chip stores them.
    #[arg(long, value_name = "BITS", value_parser = clap::value_parser!(u32).range(4..=8))]
    pub qat: Option<u32>,
    /// Weights per group scale under --qat: 8, 16, 32 or 64, or 0 for one scale per row
    /// [default: as `etch build --weight-bits BITS`].
    #[arg(long, value_name = "G", requires = "qat")]
    pub qat_group: Option<u32>,
    /// Start every window at its sequence's first token (BOS at position 0), as
    /// generation does, rather than anywhere in the sequence.
    #[arg(long)]
    pub from_start: bool,
    /// After training, scale every logit by the factor that minimizes the validation
    /// sequences' cross-entropy (temperature scaling, folded into the final norm's
    /// weights): the ranking of the logits, hence every greedy choice, stays; an
    /// over- or under-confident model (e.g. distilled from a sharpened teacher) gets
    /// its perplexity back.
    #[arg(long)]
    pub calibrate_logits: bool,
    #[command(flatten)]
    pub shape: ShapeArgs,
    /// Key/value heads [default: the query heads].
    #[arg(long)]
    pub kv_heads: Option<usize>,
    /// Context length.
    #[arg(long, default_value_t = 256)]
    pub seq_len: usize,
    /// Optimizer steps.
    #[arg(long, default_value_t = 2000)]
    pub steps: usize,
    /// Windows per step.
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    /// Shards of every batch, trained on threads of their own (the weights depend on
    /// this number, not on the machine's cores; 1 is the arithmetic of the whole batch)
    #[arg(long, default_value_t = 1)]
    pub shards: usize,
    /// Positions per window [default: the context].
    #[arg(long)]
    pub window: Option<usize>,
    /// Peak learning rate.
    #[arg(long, default_value_t = 3e-3)]
    pub lr: f64,
    /// Seed of the initial weights, the windows and the teacher's stories.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print the training report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// The models `etch train` makes for one job.
#[derive(Subcommand, Debug)]
pub enum TrainJob {
    /// The syscall model: a small model that writes the call line for an English
    /// request (`fs.move src="a.txt" dst="b.txt"`, or `none`), trained on pairs the
    /// registry's paraphrase grammar writes; evaluated on the hand-written held-out
    /// requests (agent/eval/syscall-heldout.jsonl) with constrained decoding.
    Syscall(SyscallTrainArgs),
}

/// `etch train syscall` arguments.
#[derive(Args, Debug)]
pub struct SyscallTrainArgs {
    /// Output directory: model.bin, tokenizer.bin, corpus.jsonl, loss.csv, loss.png,
    /// train.json, heldout.json.
    #[arg(short = 'o', long = "out", value_name = "DIR")]
    pub out: PathBuf,
    /// A tokenizer to use [default: one of --vocab pieces learned from the corpus,
    /// written to DIR/tokenizer.bin].
    #[arg(short = 'z', long = "tokenizer", value_name = "TOK")]
    pub tokenizer: Option<PathBuf>,
    /// Pieces of the tokenizer learned from the corpus (byte-pair merges; without -z).
    #[arg(long, default_value_t = 1024, conflicts_with = "tokenizer")]
    pub vocab: usize,
    /// Seed of the corpus, the initial weights and the batches.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Optimizer steps.
    #[arg(long, default_value_t = 4500)]
    pub steps: usize,
    /// (request, call) pairs the grammar writes.
    #[arg(long, default_value_t = 50_000)]
    pub examples: usize,
    /// Pairs per step.
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Shards of every batch, trained on threads of their own (the weights depend on
    /// this number, not on the machine's cores)
    #[arg(long, default_value_t = 2)]
    pub shards: usize,
    /// The model is the mean of the weights after each of the last N steps (0: the
    /// last step's own); train.json also measures the last step's.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub average_last: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = 3e-3)]
    pub lr: f64,
    #[command(flatten)]
    pub shape: ShapeArgs,
    /// Key/value heads.
    #[arg(long, default_value_t = 4)]
    pub kv_heads: usize,
    /// Context length (a request and its call must fit).
    #[arg(long, default_value_t = 128)]
    pub seq_len: usize,
    /// Held-out requests to measure on [default: agent/eval/syscall-heldout.jsonl].
    #[arg(long, value_name = "FILE")]
    pub eval: Option<PathBuf>,
    /// Also train on the tools imported (MCP) into this state directory, from their
    /// templates.
    #[arg(long, value_name = "DIR")]
    pub state: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `etch build` arguments.
#[derive(Args, Debug)]
pub struct BuildArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Output directory (created; existing files are replaced).
    #[arg(short = 'o', long = "out", value_name = "OUT")]
    pub out: PathBuf,
    /// MAC lanes: a power of two from 8 to 256, a multiple of the head size, that
    /// divides dim or is a multiple of it [default: 64, or the most below 64 that the
    /// model's shape allows].
    #[arg(long)]
    pub lanes: Option<usize>,
    /// A named configuration: `fast` is the fastest stories260K chip with at most 1,100
    /// multipliers (128 lanes of 8 columns, 32 requantizers, the vector-operation queue).
    #[arg(long, value_name = "NAME", conflicts_with_all = ["lanes", "columns", "lut_columns", "vop_queue", "head_pairs", "requantizers", "pipeline", "fit"])]
    pub preset: Option<Preset>,
    /// Choose the fastest configuration that fits this board or FPGA (ulx3s,
    /// orangecrab, ecp5-85k, ecp5-25k): lanes, input columns (some in LUTs),
    /// requantizers, the vector-operation queue, positions and weight bits, one
    /// context, the fpga pipeline; says what it chose and why.
    #[arg(long, value_name = "PART", conflicts_with_all = ["lanes", "requantizers", "columns", "lut_columns", "vop_queue", "head_pairs", "pipeline", "contexts", "max_seq", "weight_bits", "group", "wide", "rom_budget"])]
    pub fit: Option<String>,
    /// Choose the weight format under this many weight ROM bits (k/M/G suffixes): 8-bit
    /// weights if they fit, otherwise 4-bit with the group size and the matrices kept
    /// at 8 bits that measure best on the float model's own stories.
    #[arg(long, value_name = "BITS", value_parser = parse_bits, conflicts_with_all = ["weight_bits", "group", "wide"])]
    pub rom_budget: Option<u64>,
    /// Requantizers the lanes share: a power of two from min(lanes, 8) to the lanes
    /// [default: one per lane]. Fewer save multipliers; an operation that requantizes
    /// every lane then takes lanes/requantizers cycles per slot.
    #[arg(long, value_name = "R")]
    pub requantizers: Option<usize>,
    /// Input columns each lane takes per cycle in a matrix-vector product: 1, 2, 4 or
    /// 8 products summed into its accumulator (a weight ROM word as many times as
    /// wide); the matrices then take that many times fewer cycles.
    #[arg(long, value_name = "C", default_value_t = 1)]
    pub columns: usize,
    /// Of each lane's columns 1.., how many (at most C − 1) multiply in LUTs — shifts
    /// and adds — instead of a DSP block: for an FPGA whose DSPs run out. Cheapest with
    /// 4-bit weights and one scale per row (`--weight-bits 4 --group 0`), where a
    /// weight is a 4-bit code.
    #[arg(long, value_name = "K", default_value_t = 0)]
    pub lut_columns: usize,
    /// Queue vector operations: the sequencer issues the next one while the vector unit
    /// runs the current one (a few cycles fewer between operations).
    #[arg(long)]
    pub vop_queue: bool,
    /// Attention on two heads at once (a second query register, multiplier and
    /// accumulator per lane, a second adder tree and head units): half the attention
    /// cycles, for a chip of at most the model's width whose key/value heads each serve
    /// at least twice a head group's heads (stories260K on 8 lanes: 2 heads per
    /// key/value head, 1 per head group).
    #[arg(long)]
    pub head_pairs: bool,
    /// Pipeline registers: `asic` (none, the fewest cycles) or `fpga` (registered
    /// lane inputs, multiplier and requantizer: a faster clock on an FPGA, a few more
    /// cycles per operation).
    #[arg(long, value_name = "KIND", default_value = "asic")]
    pub pipeline: Pipeline,
    /// Context slots (agents resident on the chip at once).
    #[arg(long, default_value_t = 4)]
    pub contexts: usize,
    /// Positions per context [default: the model's context].
    #[arg(long, value_name = "S")]
    pub max_seq: Option<usize>,
    #[command(flatten)]
    pub quant: QuantArgs,
    /// Print the manifest summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `etch sim` arguments.
#[derive(Args, Debug)]
pub struct SimArgs {
    /// Build directory written by `etch build`.
    #[arg(value_name = "OUT")]
    pub out: PathBuf,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// Write a waveform of the whole run: FST when FILE ends in `.fst` (GTKWave,
    /// Surfer), VCD otherwise. Each format is a simulator of its own, built once per
    /// design (the plain one has no trace code and compiles three times faster).
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,
    /// Print where the cycles went, from the chip's performance counters.
    #[arg(long)]
    pub profile: bool,
}

/// `etch bench` arguments.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// llama2.c checkpoint [default: stories260K.bin in $ETCH_MODELS or ../shared/models].
    #[arg(long = "model", value_name = "MODEL")]
    pub model: Option<PathBuf>,
    /// Tokenizer [default: tok512.bin beside the default model, or tokenizer.bin beside MODEL].
    #[arg(short = 'z', long = "tokenizer", value_name = "TOK")]
    pub tokenizer: Option<PathBuf>,
    /// Lane counts to build and measure.
    #[arg(long, value_delimiter = ',', default_values_t = vec![8, 16, 32, 64, 128])]
    pub lanes: Vec<usize>,
    /// Measure a named configuration instead of the lane counts (`fast`: 128 lanes of
    /// 8 columns, 32 requantizers; `etch build --preset`).
    #[arg(long, value_name = "NAME", conflicts_with_all = ["lanes", "board"])]
    pub preset: Option<Preset>,
    /// On a board instead: the fastest chip that fits it (`etch build --fit`),
    /// synthesized, placed and routed, its cycles simulated; tokens/s at the routed
    /// Fmax beside the float reference on this machine.
    #[arg(long, value_name = "BOARD", conflicts_with = "lanes")]
    pub board: Option<String>,
    /// Also fill a context to the chip's last position after the story and time its
    /// SAVE_CONTEXT and RESTORE_CONTEXT (an agent's resume) by the chip's counter.
    #[arg(long, conflicts_with = "board")]
    pub swap: bool,
    /// With --board: measure this chip, built by `etch build` from the model given by
    /// --model and -z (stories260K by default), instead of the fastest chip that fits
    /// the board. An unchanged design reuses its netlist and routing.
    #[arg(long, value_name = "OUT", requires = "board")]
    pub chip: Option<PathBuf>,
    /// With --board: place but do not route; tokens/s at the placer's Fmax estimate
    /// (`fmax_source: "placement"`), in minutes where routing may take hours.
    #[arg(long, requires = "board")]
    pub place_only: bool,
    /// With --board: nextpnr's placer, static or heap (`etch synth --placer`).
    #[arg(
        long,
        value_name = "PLACER",
        default_value = "static",
        requires = "board"
    )]
    pub placer: etch_fpga::Placer,
    /// With --board: nextpnr's router, auto, router1 or router2 (`etch synth --router`).
    #[arg(
        long,
        value_name = "ROUTER",
        default_value = "auto",
        requires = "board"
    )]
    pub router: etch_fpga::Router,
    /// With --board: nextpnr's seed (`etch synth --seed`).
    #[arg(long, value_name = "N", default_value_t = 1, requires = "board")]
    pub seed: u64,
    /// With --board: the clock nextpnr is asked to meet and the bitstream runs at, MHz
    /// (`etch synth --freq`: a PLL in the top) [default: the board's oscillator].
    /// tokens/s stays at the routed Fmax; the report says whether the clock is met.
    #[arg(long, value_name = "MHZ", requires = "board")]
    pub freq: Option<f64>,
    /// Forward passes of the greedy story.
    #[arg(short = 'n', long = "steps", default_value_t = 256)]
    pub steps: usize,
    /// Prompt of the greedy story.
    #[arg(short = 'i', long = "prompt", default_value = "Once upon a time")]
    pub prompt: String,
    /// Where builds, the table and the plots go.
    #[arg(long, default_value = "out/bench")]
    pub out: PathBuf,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// `etch serve` arguments.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Build directory written by `etch build`.
    #[arg(value_name = "OUT")]
    pub out: PathBuf,
    /// UNIX socket to listen on as a vfio-user server (a stale socket left by a killed
    /// server is replaced).
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Simulate the board top instead (the chip behind its UART bridge) and serve its
    /// serial line on a pseudo-terminal linked at PATH, for `etch run --device
    /// serial:PATH`.
    #[arg(long, value_name = "PATH", conflicts_with = "socket")]
    pub pty: Option<PathBuf>,
    /// Exit after the first client disconnects.
    #[arg(long)]
    pub once: bool,
}

/// `etch chat` arguments.
#[derive(Args, Debug)]
pub struct ChatArgs {
    /// The chip, as for `etch run`: sim:OUT, vfio-user:SOCKET, vfio:BDF, serial:PORT.
    #[arg(long, value_name = "DEVICE")]
    pub device: String,
    /// Build directory of the chip's design [default: OUT of sim:OUT].
    #[arg(long, value_name = "OUT")]
    pub manifest: Option<PathBuf>,
    /// Where contexts are kept between runs.
    #[arg(long, value_name = "DIR")]
    pub state: PathBuf,
    /// The context to talk in.
    #[arg(long, default_value = "main", value_name = "NAME")]
    pub context: String,
    /// The agent that owns the context.
    #[arg(long, default_value = "user", value_name = "NAME")]
    pub agent: String,
    /// System prompt of a new context (kept by every compaction).
    #[arg(long, value_name = "TEXT")]
    pub system: Option<String>,
    /// End a reply before this text (repeatable).
    #[arg(long, value_name = "TEXT")]
    pub stop: Vec<String>,
    /// With -i: one turn (the reply on stdout, or --json with `etch sim`'s fields);
    /// without: a conversation on standard input. -n is the reply's length at most.
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// Seconds a command may go without progress.
    #[arg(long, default_value_t = 30.0, value_name = "SECS")]
    pub timeout: f64,
    /// Root of the sysfs tree where vfio: devices are looked up.
    #[arg(long, default_value = "/sys", value_name = "DIR", hide = true)]
    pub sysfs: PathBuf,
}

/// `etch synth` arguments.
#[derive(Args, Debug)]
pub struct SynthArgs {
    /// Build directory written by `etch build`.
    #[arg(value_name = "OUT")]
    pub out: PathBuf,
    /// FPGA: ecp5-85k, ecp5-25k or ice40-up5k [default: the board's]; or
    /// asic-estimate: transistors of the logic (generic yosys synthesis), ROM and SRAM,
    /// per model parameter.
    #[arg(long, value_name = "TARGET")]
    pub target: Option<String>,
    /// Board whose pins and clock the top uses: ulx3s (ecp5-85k), orangecrab
    /// (ecp5-25k) or icebreaker (ice40-up5k). Without one, pins are left to nextpnr.
    #[arg(long, value_name = "BOARD")]
    pub board: Option<String>,
    /// The chip's clock, MHz [default: the board's oscillator, else 25]. On an ECP5
    /// board a clock other than the oscillator's comes from a PLL in the top.
    #[arg(long, value_name = "MHZ")]
    pub freq: Option<f64>,
    /// Baud rate of the UART link built into the top.
    #[arg(long, default_value_t = 1_000_000)]
    pub baud: u32,
    /// Place without timing optimization: about twice as fast, lower Fmax (smoke tests).
    #[arg(long)]
    pub quick: bool,
    /// Stop after synthesis and the fit check (minutes, where place and route takes tens
    /// of minutes); the report's utilization then comes from yosys.
    #[arg(long, conflicts_with = "quick")]
    pub synth_only: bool,
    /// Place but do not route: Fmax is the placer's estimate and there is no bitstream
    /// (minutes, where routing a nearly full part can take hours).
    #[arg(long, conflicts_with = "synth_only")]
    pub place_only: bool,
    /// nextpnr's placer: static (electrostatic spreading; the chips route best from
    /// it) or heap (its density bounded by `--placer-heap-beta` in ETCH_NEXTPNR_ARGS,
    /// 0.9 by default), to compare.
    #[arg(long, value_name = "PLACER", default_value = "static")]
    pub placer: etch_fpga::Placer,
    /// nextpnr's router: router1 (arc by arc; it routed the chips router2 stalled or
    /// diverged on), router2 (fast when it converges, which depends on the netlist),
    /// or auto: router1.
    #[arg(long, value_name = "ROUTER", default_value = "auto")]
    pub router: etch_fpga::Router,
    /// nextpnr's seed: the same netlist and seed route the same; a congested chip can
    /// route in minutes at one seed and not in hours at another (`docs/FPGA.md`).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub seed: u64,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `etch flash` arguments.
#[derive(Args, Debug)]
pub struct FlashArgs {
    /// Build directory, synthesized for the board (`etch synth OUT --board BOARD`).
    #[arg(value_name = "OUT")]
    pub out: PathBuf,
    /// The board: ulx3s, orangecrab or icebreaker.
    #[arg(long, value_name = "BOARD")]
    pub board: String,
    /// Into the FPGA's configuration memory, until power-off (the default).
    #[arg(long, conflicts_with = "flash")]
    pub sram: bool,
    /// Into the board's SPI flash, loaded at every power-on (the OrangeCrab's only way).
    #[arg(long)]
    pub flash: bool,
    /// After loading, open the chip on this serial port (e.g. /dev/ttyUSB0) and check
    /// its IDENTIFY against the manifest.
    #[arg(long, value_name = "PORT")]
    pub serial: Option<PathBuf>,
    /// Baud rate of the link built into the top.
    #[arg(long, default_value_t = 1_000_000)]
    pub baud: u32,
    /// The openFPGALoader executable.
    #[arg(long, value_name = "PATH", default_value = "openFPGALoader")]
    pub loader: PathBuf,
    /// Print the command without running it.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `etch run` arguments.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// The chip: sim:OUT (in-process simulator), vfio-user:SOCKET (`etch serve`),
    /// vfio:DDDD:BB:DD.F (a board bound to vfio-pci) or serial:PORT[,BAUD] (a board top
    /// behind its UART bridge; 1000000 baud by default).
    #[arg(long, value_name = "DEVICE")]
    pub device: String,
    /// Build directory of the chip's design: tokenizer and expected identity [default:
    /// OUT of sim:OUT; required otherwise].
    #[arg(long, value_name = "OUT")]
    pub manifest: Option<PathBuf>,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// Seconds a command may go without progress before the device is reset and the
    /// command fails (vfio-user, vfio and serial devices).
    #[arg(long, default_value_t = 30.0, value_name = "SECS")]
    pub timeout: f64,
    /// Poll the completion ring instead of waiting for interrupts.
    #[arg(long)]
    pub polled: bool,
    /// Root of the sysfs tree where vfio: devices are looked up.
    #[arg(long, default_value = "/sys", value_name = "DIR", hide = true)]
    pub sysfs: PathBuf,
}

/// `etch devices` arguments.
#[derive(Args, Debug)]
pub struct DevicesArgs {
    /// Root of the sysfs tree to search.
    #[arg(long, default_value = "/sys", value_name = "DIR")]
    pub sysfs: PathBuf,
    /// Where the VFIO group nodes are.
    #[arg(long, default_value = "/dev/vfio", value_name = "DIR", hide = true)]
    pub dev_vfio: PathBuf,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

fn run(cli: Cli) -> CliResult {
    match cli.command {
        Command::Info(a) => models::info(&a.model, a.json),
        Command::Reference(a) => models::reference(&a),
        Command::Emulate(a) => models::emulate(&a),
        Command::Accuracy(a) => models::accuracy(&a),
        Command::Train(a) => match &a.job {
            Some(TrainJob::Syscall(s)) => train::train_syscall(s),
            None => train::train(&a),
        },
        Command::Build(a) => chip::build(&a),
        Command::Sim(a) => chip::sim(&a),
        Command::Bench(a) => bench::bench(&a),
        Command::Serve(a) => run::serve(&a),
        Command::Run(a) => run::run(&a),
        Command::Devices(a) => run::devices(&a),
        Command::Synth(a) => synth::synth(&a),
        Command::Flash(a) => flash::flash(&a),
        Command::Chat(a) => chat::chat(&a),
        Command::Agent(c) => agent::agent(&c),
        Command::Cap(c) => agent::cap(&c),
        Command::Approvals(c) => agent::approvals(&c),
        Command::Undo(a) => agent::undo(&a),
        Command::Audit(c) => agent::audit(&c),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error::CliError::Exit(code)) => ExitCode::from(code),
        Err(e) => {
            eprintln!("etch: error: {e}");
            ExitCode::from(e.exit_code() as u8)
        }
    }
}
