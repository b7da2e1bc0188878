//! `etch agent`, `etch cap`, `etch approvals`, `etch undo`, `etch audit`: the
//! natural-language system calls and the people's side of them (etch-agent).

use std::io::Read;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use etch_agent::cap::{Attenuation, Grant, Token};
use etch_agent::text::{one_line, printable};
use etch_agent::{audit, Model, Syscalls};
use etch_runtime::Engine;

use crate::error::{CliError, CliResult};
use crate::output::print_json;

/// The state directory shared by these commands.
#[derive(Args, Debug, Clone)]
pub struct StateArgs {
    /// State directory: database, root key, audit log, outbox, trash.
    #[arg(long, env = "ETCH_STATE", default_value = ".etch", value_name = "DIR")]
    pub state: PathBuf,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `etch agent`.
#[derive(Subcommand, Debug)]
pub enum AgentCmd {
    /// Make a system call in English: template match or the chip's choice, the
    /// capability check, then execute, stage or deny. Exit code 0 executed or staged,
    /// 4 denied, 5 failed.
    Syscall(SyscallArgs),
    /// Show which registry call the chip would choose for a request (SCORE ranking of
    /// the candidates; nothing is checked or run), or measure its choices on a file of
    /// `tool<TAB>request` lines with --eval.
    Propose(ProposeArgs),
    /// Show the call a syscall model writes for a request (constrained decoding; nothing
    /// is checked or run), on the float model, its golden integer model, or its chip;
    /// or measure it on a JSON Lines file of {"request", "call"} pairs (--eval, or
    /// --heldout for the hand-written held-out requests).
    Understand(UnderstandArgs),
    /// List the tool registry, export it as MCP descriptors, or import some.
    Tools(ToolsArgs),
    /// Show an agent's trust state; --clear takes it out of observe mode.
    Trust(TrustArgs),
}

/// `etch agent syscall`.
#[derive(Args, Debug)]
pub struct SyscallArgs {
    #[command(flatten)]
    state: StateArgs,
    /// Workspace root; relative paths in the request are taken from here.
    #[arg(long, value_name = "DIR")]
    workspace: PathBuf,
    /// The agent making the call.
    #[arg(long)]
    agent: String,
    /// File holding the agent's capability token (`-` for stdin).
    #[arg(long, value_name = "FILE")]
    cap: PathBuf,
    /// The chip of the syscall model (`etch build models/syscall.bin -z
    /// models/syscall-tok.bin -o OUT`), which writes the call for requests no template
    /// understands unambiguously: sim:OUT, vfio-user:PATH, vfio:BDF or serial:PORT.
    /// Without it, such requests are denied.
    #[arg(long, value_name = "DEV")]
    device: Option<String>,
    /// Build directory of the chip (required for devices other than sim:).
    #[arg(long, value_name = "OUT")]
    manifest: Option<PathBuf>,
    /// Seconds without progress before the device is given up.
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
    /// The chip's model ranks the registry's candidates (SCORE) instead of writing the
    /// call: for a chip of a language model that is not a syscall model.
    #[arg(long, requires = "device")]
    ranker: bool,
    /// The request, in English.
    request: String,
}

/// The chip a command ranks with.
#[derive(Args, Debug)]
pub struct DeviceArgs {
    /// sim:OUT, vfio-user:PATH, vfio:BDF or serial:PORT.
    #[arg(long, value_name = "DEV")]
    device: String,
    /// Build directory of the chip (required for devices other than sim:).
    #[arg(long, value_name = "OUT")]
    manifest: Option<PathBuf>,
    /// Seconds without progress before the device is given up.
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
}

/// `etch agent propose`.
#[derive(Args, Debug)]
pub struct ProposeArgs {
    #[command(flatten)]
    state: StateArgs,
    #[command(flatten)]
    device: DeviceArgs,
    /// A file of `tool<TAB>request` lines: print how often the chip's first choice is
    /// the intended tool.
    #[arg(long, value_name = "FILE", conflicts_with = "request")]
    eval: Option<PathBuf>,
    /// The request.
    #[arg(required_unless_present = "eval")]
    request: Option<String>,
}

/// `etch agent understand`.
#[derive(Args, Debug)]
pub struct UnderstandArgs {
    /// The syscall model's checkpoint (float), e.g. models/syscall.bin.
    #[arg(
        long,
        value_name = "MODEL",
        required_unless_present = "device",
        conflicts_with = "device"
    )]
    model: Option<PathBuf>,
    /// Its tokenizer [default: tokenizer.bin, or syscall-tok.bin, beside MODEL].
    #[arg(
        short = 'z',
        long = "tokenizer",
        value_name = "TOK",
        requires = "model"
    )]
    tokenizer: Option<PathBuf>,
    /// Run the golden model (the chip's integer arithmetic at `etch build`'s default
    /// settings) instead of the float model.
    #[arg(long, requires = "model")]
    golden: bool,
    /// A chip of the syscall model: sim:OUT, vfio-user:PATH, vfio:BDF or serial:PORT.
    #[arg(long, value_name = "DEV")]
    device: Option<String>,
    /// Build directory of the chip (required for devices other than sim:).
    #[arg(long, value_name = "OUT", requires = "device")]
    manifest: Option<PathBuf>,
    /// Seconds without progress before the device is given up.
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
    /// A JSON Lines file of {"request": …, "call": …} pairs to measure on.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["request", "heldout"])]
    eval: Option<PathBuf>,
    /// Measure on the hand-written held-out requests (agent/eval/syscall-heldout.jsonl).
    #[arg(long, conflicts_with = "request")]
    heldout: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// The request.
    #[arg(required_unless_present_any = ["eval", "heldout"])]
    request: Option<String>,
}

/// `etch agent tools`.
#[derive(Args, Debug)]
pub struct ToolsArgs {
    #[command(flatten)]
    state: StateArgs,
    /// Print the registry as MCP tool descriptors.
    #[arg(long)]
    mcp: bool,
    /// Import MCP tool descriptors from FILE into the state directory.
    #[arg(long, value_name = "FILE")]
    import: Option<PathBuf>,
}

/// `etch agent trust`.
#[derive(Args, Debug)]
pub struct TrustArgs {
    #[command(flatten)]
    state: StateArgs,
    /// The agent.
    agent: String,
    /// Take it out of observe mode (a person's decision, recorded).
    #[arg(long)]
    clear: bool,
    /// Who decides.
    #[arg(long, env = "USER", default_value = "supervisor")]
    by: String,
}

/// `etch cap`.
#[derive(Subcommand, Debug)]
pub enum CapCmd {
    /// Mint a capability for an agent and a workspace; prints the token on stdout.
    Mint(MintArgs),
    /// Narrow a capability (delegation to a child agent, fewer tools or paths, a
    /// budget, an expiry); prints the new token.
    Attenuate(AttenuateArgs),
    /// Show what a capability says and whether it is valid here.
    Inspect(CapFileArgs),
    /// Revoke a capability and every token delegated from it.
    Revoke(CapFileArgs),
}

/// Limits shared by mint and attenuate.
#[derive(Args, Debug)]
pub struct Limits {
    /// Allowed tools: a name, prefix.* or * (repeatable).
    #[arg(long = "tool", value_name = "PATTERN")]
    tools: Vec<String>,
    /// Allowed message recipients (repeatable).
    #[arg(long = "recipient", value_name = "NAME")]
    recipients: Vec<String>,
    /// Lifetime: 30s, 15m, 2h, 7d.
    #[arg(long, value_name = "DURATION")]
    expires: Option<String>,
    /// At most this many calls.
    #[arg(long)]
    calls: Option<u64>,
    /// At most this much estimated cost.
    #[arg(long)]
    cost: Option<u64>,
}

/// `etch cap mint`.
#[derive(Args, Debug)]
pub struct MintArgs {
    #[command(flatten)]
    state: StateArgs,
    /// The agent it is for.
    #[arg(long)]
    agent: String,
    /// The workspace root every path must lie in.
    #[arg(long, value_name = "DIR")]
    workspace: PathBuf,
    #[command(flatten)]
    limits: Limits,
    /// Who mints it (for the audit log).
    #[arg(long, env = "USER", default_value = "supervisor")]
    by: String,
}

/// `etch cap attenuate`.
#[derive(Args, Debug)]
pub struct AttenuateArgs {
    #[command(flatten)]
    state: StateArgs,
    /// The capability to narrow (file, `-` for stdin).
    #[arg(long, value_name = "FILE")]
    cap: PathBuf,
    /// Delegate to this child agent (parent/child).
    #[arg(long)]
    agent: Option<String>,
    /// Only paths under these (relative to the workspace; repeatable).
    #[arg(long = "path", value_name = "PATH")]
    paths: Vec<PathBuf>,
    #[command(flatten)]
    limits: Limits,
    /// Who delegates (for the audit log).
    #[arg(long, env = "USER", default_value = "supervisor")]
    by: String,
}

/// A capability file.
#[derive(Args, Debug)]
pub struct CapFileArgs {
    #[command(flatten)]
    state: StateArgs,
    /// The capability (file, `-` for stdin).
    #[arg(long, value_name = "FILE")]
    cap: PathBuf,
    /// Who acts (for the audit log).
    #[arg(long, env = "USER", default_value = "supervisor")]
    by: String,
}

/// `etch approvals`.
#[derive(Subcommand, Debug)]
pub enum ApprovalsCmd {
    /// Actions waiting for a person (--all: every action, newest first).
    List {
        #[command(flatten)]
        state: StateArgs,
        /// Every action, not only staged ones.
        #[arg(long)]
        all: bool,
    },
    /// One action in full.
    Show {
        #[command(flatten)]
        state: StateArgs,
        /// Action number.
        id: i64,
    },
    /// Approve a staged action; it executes now, exactly once.
    Approve {
        #[command(flatten)]
        state: StateArgs,
        /// Action number.
        id: i64,
        /// Who approves.
        #[arg(long, env = "USER", default_value = "supervisor")]
        by: String,
    },
    /// Deny a staged action.
    Deny {
        #[command(flatten)]
        state: StateArgs,
        /// Action number.
        id: i64,
        /// Why (recorded).
        #[arg(long, default_value = "")]
        reason: String,
        /// Who denies.
        #[arg(long, env = "USER", default_value = "supervisor")]
        by: String,
    },
}

/// `etch undo`.
#[derive(Args, Debug)]
pub struct UndoArgs {
    #[command(flatten)]
    state: StateArgs,
    /// Action number.
    id: i64,
    /// Who undoes it.
    #[arg(long, env = "USER", default_value = "supervisor")]
    by: String,
}

/// `etch audit`.
#[derive(Subcommand, Debug)]
pub enum AuditCmd {
    /// The last entries, one English line each.
    Tail {
        #[command(flatten)]
        state: StateArgs,
        /// How many.
        #[arg(short = 'n', default_value_t = 20)]
        n: usize,
    },
    /// Check the hash chain and its anchor; exit code 0 only for an intact log, 4 for
    /// a damaged one.
    Verify {
        #[command(flatten)]
        state: StateArgs,
    },
}

/// Opens an existing state directory. Only `etch cap mint` and `etch agent tools` make
/// one: a mistyped `--state` must not show an empty approval queue or an "intact"
/// empty audit log as though they were the real ones.
fn open(state: &StateArgs) -> CliResult<Syscalls> {
    exists(state)?;
    create(state)
}

/// Refuses a state directory that holds no state.
fn exists(state: &StateArgs) -> CliResult {
    if !Syscalls::exists(&state.state) {
        return Err(CliError::Usage(format!(
            "there is no etch state at {}: name it with --state or ETCH_STATE, or make one with `etch cap mint`",
            state.state.display()
        )));
    }
    Ok(())
}

/// Opens the state directory, making it on first use.
fn create(state: &StateArgs) -> CliResult<Syscalls> {
    Ok(Syscalls::open(&state.state)?)
}

fn read_cap(path: &Path) -> CliResult<String> {
    let text = if path == Path::new("-") {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| CliError::Io {
                action: "read",
                path: "stdin".into(),
                source: e,
            })?;
        s
    } else {
        std::fs::read_to_string(path).map_err(|e| CliError::Io {
            action: "read",
            path: path.into(),
            source: e,
        })?
    };
    Ok(text.trim().to_string())
}

impl Limits {
    /// The capability's limits, the lifetime counted from now.
    fn to_cap(&self) -> CliResult<etch_agent::cap::Limits> {
        let expires = match &self.expires {
            None => None,
            Some(d) => Some(etch_agent::time::now() + etch_agent::time::parse_duration(d)?),
        };
        Ok(etch_agent::cap::Limits {
            tools: self.tools.clone(),
            recipients: self.recipients.clone(),
            expires,
            calls: self.calls,
            cost: self.cost,
        })
    }
}

/// `etch agent …`.
pub fn agent(cmd: &AgentCmd) -> CliResult {
    match cmd {
        AgentCmd::Syscall(a) => syscall(a),
        AgentCmd::Propose(a) => propose(a),
        AgentCmd::Understand(a) => understand(a),
        AgentCmd::Tools(a) => {
            let mut s = create(&a.state)?;
            if let Some(f) = &a.import {
                let text = std::fs::read_to_string(f).map_err(|e| CliError::Io {
                    action: "read",
                    path: f.clone(),
                    source: e,
                })?;
                let v: serde_json::Value = serde_json::from_str(&text)
                    .map_err(|e| CliError::Usage(format!("{} is not JSON: {e}", f.display())))?;
                let by = std::env::var("USER").unwrap_or_else(|_| "supervisor".into());
                let added = s.import_tools(&v, &by)?;
                if a.state.json {
                    return print_json(&serde_json::json!({ "imported": added }));
                }
                println!("imported {}", added.join(", "));
                return Ok(());
            }
            if a.mcp || a.state.json {
                return print_json(&s.registry().export_mcp());
            }
            for t in s.registry().tools() {
                println!(
                    "{:<10} {:<13} cost {:>2}  {}",
                    t.name,
                    t.reversibility.name(),
                    t.cost,
                    t.description
                );
                for tpl in &t.templates {
                    println!("{:<10}   \"{tpl}\"", "");
                }
            }
            Ok(())
        }
        AgentCmd::Trust(a) => {
            let s = open(&a.state)?;
            if a.clear {
                s.trust_again(&a.agent, &a.by)?;
            }
            let observe = s.observing(&a.agent)?;
            if a.state.json {
                return print_json(
                    &serde_json::json!({ "agent": a.agent, "observe": observe.is_some(), "reason": observe }),
                );
            }
            match observe {
                Some(why) => println!("{} is in observe mode: {why}", a.agent),
                None => println!("{} is trusted as far as its capabilities go", a.agent),
            }
            Ok(())
        }
    }
}

fn open_engine(d: &DeviceArgs) -> CliResult<Engine<Box<dyn etch_driver::Device>>> {
    crate::chat::open_engine(
        &d.device,
        d.manifest.as_deref(),
        d.timeout,
        Path::new("/sys"),
        None,
    )
}

fn propose(a: &ProposeArgs) -> CliResult {
    crate::run::init_logging("warn");
    let s = open(&a.state)?;
    let engine = open_engine(&a.device)?;
    if let Some(request) = &a.request {
        let ranked = s.ranked(&engine, request)?;
        if a.state.json {
            let v: Vec<_> = ranked
                .iter()
                .map(|(c, e, score)| serde_json::json!({ "tool": c.tool, "args": c.args, "english": e, "score": score }))
                .collect();
            return print_json(&v);
        }
        if ranked.is_empty() {
            println!("no registry call can be made from the words of this request");
        }
        for (i, (_, e, score)) in ranked.iter().enumerate() {
            println!("{} {score:>8.3}  {e}", if i == 0 { "→" } else { " " });
        }
        return Ok(());
    }
    let file = a
        .eval
        .as_ref()
        .ok_or_else(|| CliError::Usage("a request or --eval FILE".into()))?;
    let text = std::fs::read_to_string(file).map_err(|e| CliError::Io {
        action: "read",
        path: file.clone(),
        source: e,
    })?;
    let mut rows = Vec::new();
    let bar = crate::output::progress(
        text.lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .count() as u64,
        "ranking",
    );
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let (want, request) = line.split_once('\t').ok_or_else(|| {
            CliError::Usage(format!(
                "{}:{}: expected tool<TAB>request",
                file.display(),
                n + 1
            ))
        })?;
        let ranked = s.ranked(&engine, request)?;
        let got = ranked
            .first()
            .map(|(c, _, _)| c.tool.clone())
            .unwrap_or_default();
        let offered = ranked.iter().any(|(c, _, _)| c.tool == want);
        rows.push(serde_json::json!({
            "request": request, "intended": want, "chosen": got, "correct": got == want,
            "offered": offered, "candidates": ranked.len(),
        }));
        bar.inc(1);
    }
    bar.finish_and_clear();
    let correct = rows.iter().filter(|r| r["correct"] == true).count();
    let offered = rows.iter().filter(|r| r["offered"] == true).count();
    let chance: f64 = rows
        .iter()
        .map(|r| {
            if r["offered"] == true {
                1.0 / r["candidates"].as_u64().unwrap_or(1).max(1) as f64
            } else {
                0.0
            }
        })
        .sum();
    let summary = serde_json::json!({
        "requests": rows.len(), "correct": correct, "intended_offered": offered,
        "chance_expected": chance, "rows": rows,
    });
    if a.state.json {
        return print_json(&summary);
    }
    for r in summary["rows"].as_array().into_iter().flatten() {
        println!(
            "{} {:<10} (intended {:<10}) {}",
            if r["correct"] == true { "✓" } else { "✗" },
            r["chosen"].as_str().unwrap_or(""),
            r["intended"].as_str().unwrap_or(""),
            r["request"].as_str().unwrap_or("")
        );
    }
    println!(
        "{correct} of {} first choices are the intended tool (the intended tool was among the candidates {offered} times; picking at random would get {chance:.1})",
        rows.len()
    );
    Ok(())
}

/// The tokenizer beside a syscall model: `-z`, else tokenizer.bin or syscall-tok.bin in
/// its directory.
fn syscall_tokenizer(model: &Path, given: Option<&Path>) -> CliResult<PathBuf> {
    if let Some(p) = given {
        return Ok(p.to_path_buf());
    }
    let dir = model.parent().unwrap_or(Path::new("."));
    ["tokenizer.bin", "syscall-tok.bin"]
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.exists())
        .ok_or_else(|| {
            CliError::Usage(format!(
                "no tokenizer.bin or syscall-tok.bin beside {}: pass -z TOK",
                model.display()
            ))
        })
}

/// One request understood, with the chip's cycles when a chip did it.
struct Reading {
    understood: etch_agent::understand::Understood,
    cycles: Option<u64>,
}

/// A request in, what the model understood out.
type Understander<'a> = Box<dyn FnMut(&str) -> etch_agent::Result<Reading> + 'a>;

fn understand(a: &UnderstandArgs) -> CliResult {
    use etch_agent::understand::{eval, prompt, understand as decode, Vocabulary};
    crate::run::init_logging("warn");
    let registry = etch_agent::Registry::default();
    let cases = match (&a.eval, a.heldout) {
        (Some(f), _) => {
            let text = std::fs::read_to_string(f).map_err(|e| CliError::Io {
                action: "read",
                path: f.clone(),
                source: e,
            })?;
            Some(eval::read_cases(&text, &registry)?)
        }
        (None, true) => Some(eval::read_cases(eval::HELDOUT, &registry)?),
        (None, false) => None,
    };
    // Where the logits come from.
    let checkpoint;
    let tokenizer;
    let quantized;
    let engine;
    let mut run: Understander = match (&a.model, &a.device) {
        (Some(m), _) => {
            checkpoint = etch_compiler::Checkpoint::open(m)?;
            let tok = syscall_tokenizer(m, a.tokenizer.as_deref())?;
            tokenizer = etch_compiler::Tokenizer::open(&tok, checkpoint.config().vocab_size)?;
            let vocabulary = Vocabulary::of(&tokenizer);
            let mut logits: Box<dyn etch_agent::understand::Logits> = if a.golden {
                quantized = etch_compiler::QuantizedModel::build(
                    &checkpoint,
                    &tokenizer,
                    &etch_compiler::QuantSettings::default(),
                )?;
                Box::new(crate::understand::golden(&quantized))
            } else {
                Box::new(crate::understand::float(&checkpoint))
            };
            let (registry, tokenizer) = (&registry, &tokenizer);
            Box::new(move |request| {
                let p = prompt(tokenizer, request);
                Ok(Reading {
                    understood: decode(registry, &vocabulary, logits.as_mut(), request, &p)?,
                    cycles: None,
                })
            })
        }
        (None, Some(dev)) => {
            engine = crate::chat::open_engine(
                dev,
                a.manifest.as_deref(),
                a.timeout,
                Path::new("/sys"),
                None,
            )?;
            let model = etch_agent::SyscallModel::new(&engine);
            let registry = &registry;
            Box::new(move |request| {
                let understood = model.understand(registry, request).unwrap_or_else(|| {
                    Err(etch_agent::AgentError::Invalid(
                        "not a syscall model".into(),
                    ))
                })?;
                Ok(Reading {
                    understood,
                    cycles: model.last_cycles(),
                })
            })
        }
        (None, None) => return Err(CliError::Usage("give --model MODEL or --device DEV".into())),
    };
    let Some(cases) = cases else {
        let request = a.request.as_deref().unwrap_or_default();
        let r = run(request)?;
        let u = &r.understood;
        if a.json {
            return print_json(&serde_json::json!({
                "request": request, "line": u.line, "call": u.call,
                "prompt_tokens": u.prompt_tokens, "call_tokens": u.call_tokens,
                "chip_passes": u.choices, "cycles": r.cycles,
            }));
        }
        println!("{}", u.line);
        match &u.call {
            Some(c) => println!("  = {}", registry.render(c)),
            None => println!("  = no tool call: refused"),
        }
        print!(
            "  {} prompt tokens, {} call tokens, {} model passes",
            u.prompt_tokens, u.call_tokens, u.choices
        );
        match r.cycles {
            Some(c) => println!(", {c} chip cycles ({:.3} ms at 100 MHz)", c as f64 / 1e5),
            None => println!(),
        }
        return Ok(());
    };
    let bar = crate::output::progress(if a.json { 0 } else { cases.len() as u64 }, "understanding");
    let mut cycles = Vec::new();
    let report = eval::evaluate(&registry, &cases, &mut |request| {
        bar.inc(1);
        let r = run(request)?;
        cycles.extend(r.cycles);
        Ok((r.understood.line, r.understood.call))
    })?;
    bar.finish_and_clear();
    let mean_cycles =
        (!cycles.is_empty()).then(|| cycles.iter().sum::<u64>() as f64 / cycles.len() as f64);
    if a.json {
        return print_json(
            &serde_json::json!({ "report": report, "mean_cycles_per_call": mean_cycles }),
        );
    }
    for o in &report.outcomes {
        if !o.correct {
            println!(
                "✗ {}\n    expected {}\n    got      {}",
                printable(&o.request),
                o.expected,
                o.got
            );
        }
    }
    println!("| tool | requests | exactly right | right tool |");
    println!("|---|---|---|---|");
    for (tool, t) in &report.per_tool {
        println!(
            "| {tool} | {} | {} | {} |",
            t.cases, t.correct, t.right_tool
        );
    }
    println!(
        "{} of {} requests understood exactly ({:.1} %)",
        report.correct,
        report.cases,
        100.0 * report.accuracy
    );
    if let Some(c) = mean_cycles {
        println!(
            "{c:.0} chip cycles per request on average (prefill and decoding; {:.3} ms at 100 MHz)",
            c / 1e5
        );
    }
    Ok(())
}

fn syscall(a: &SyscallArgs) -> CliResult {
    crate::run::init_logging("warn");
    let s = open(&a.state)?;
    let token = read_cap(&a.cap)?;
    let req = etch_agent::Request {
        agent: &a.agent,
        token: &token,
        workspace: &a.workspace,
        text: &a.request,
    };
    // The chip is opened only when no template understands the request (for a
    // syscall model: unambiguously).
    let needs_model = match s.registry().match_template(&a.request) {
        None => true,
        Some(c) => !a.ranker && !etch_agent::syscall_template_is_unambiguous(s.registry(), &c),
    };
    let mut cycles = None;
    let answer = match (&a.device, needs_model) {
        (Some(dev), true) => {
            let engine = crate::chat::open_engine(
                dev,
                a.manifest.as_deref(),
                a.timeout,
                Path::new("/sys"),
                None,
            )?;
            if a.ranker {
                s.syscall(&req, Some(&engine as &dyn Model))?
            } else {
                let model = etch_agent::SyscallModel::new(&engine);
                let answer = s.syscall(&req, Some(&model as &dyn Model))?;
                cycles = model.last_cycles();
                answer
            }
        }
        _ => s.syscall(&req, None)?,
    };
    if let (Some(c), false) = (cycles, a.state.json) {
        eprintln!("etch: the syscall model's chip took {c} cycles for this request");
    }
    if a.state.json {
        print_json(&answer)?;
    } else {
        println!("{}", printable(&answer.english));
        if let Some(o) = &answer.output {
            print!("{}", printable(o));
            if !o.ends_with('\n') && !o.is_empty() {
                println!();
            }
        }
        eprintln!(
            "etch: action {} {}",
            answer.action,
            status_word(answer.status)
        );
    }
    match answer.status {
        etch_agent::Status::Executed | etch_agent::Status::Staged => Ok(()),
        etch_agent::Status::Denied => Err(CliError::Exit(4)),
        etch_agent::Status::Failed => Err(CliError::Exit(5)),
    }
}

fn status_word(s: etch_agent::Status) -> &'static str {
    match s {
        etch_agent::Status::Executed => "executed",
        etch_agent::Status::Staged => "staged",
        etch_agent::Status::Denied => "denied",
        etch_agent::Status::Failed => "failed",
    }
}

/// `etch cap …`.
pub fn cap(cmd: &CapCmd) -> CliResult {
    match cmd {
        CapCmd::Mint(a) => {
            let s = create(&a.state)?;
            let workspace = a.workspace.canonicalize().map_err(|e| CliError::Io {
                action: "open the workspace",
                path: a.workspace.clone(),
                source: e,
            })?;
            let g = Grant {
                agent: a.agent.clone(),
                workspace,
                limits: a.limits.to_cap()?,
            };
            let token = s.mint(&g, &a.by)?;
            if a.state.json {
                return print_json(&serde_json::json!({ "token": token }));
            }
            println!("{token}");
            Ok(())
        }
        CapCmd::Attenuate(a) => {
            let s = open(&a.state)?;
            let token = read_cap(&a.cap)?;
            let att = Attenuation {
                agent: a.agent.clone(),
                paths: a.paths.clone(),
                limits: a.limits.to_cap()?,
            };
            let child = s.attenuate(&token, &att, &a.by)?;
            if a.state.json {
                return print_json(&serde_json::json!({ "token": child }));
            }
            println!("{child}");
            Ok(())
        }
        CapCmd::Inspect(a) => {
            let s = open(&a.state)?;
            let text = read_cap(&a.cap)?;
            let t = Token::parse(&text, s.public_key())?;
            let info = serde_json::json!({
                "valid": true,
                "agent": t.agent()?,
                "workspace": t.workspace()?,
                "blocks": t.sources(),
                "revocation_ids": t.revocation_ids(),
                "confined_to": etch_agent::confinement(&t, &t.workspace()?)?,
            });
            if a.state.json {
                return print_json(&info);
            }
            println!(
                "a valid capability of {} for {}",
                t.agent()?,
                t.workspace()?.display()
            );
            for (i, src) in t.sources().iter().enumerate() {
                println!(
                    "block {i} ({}):",
                    if i == 0 {
                        "authority".to_string()
                    } else {
                        format!("delegation {i}")
                    }
                );
                for l in src.lines() {
                    println!("  {l}");
                }
            }
            Ok(())
        }
        CapCmd::Revoke(a) => {
            let s = open(&a.state)?;
            let id = s.revoke(&read_cap(&a.cap)?, &a.by)?;
            if a.state.json {
                return print_json(&serde_json::json!({ "revoked": id }));
            }
            println!("revoked {id}");
            Ok(())
        }
    }
}

/// `etch approvals …`.
pub fn approvals(cmd: &ApprovalsCmd) -> CliResult {
    match cmd {
        ApprovalsCmd::List { state, all } => {
            let s = open(state)?;
            let list = s.list(*all)?;
            if state.json {
                return print_json(&list);
            }
            if list.is_empty() {
                println!("nothing waits for approval");
            }
            for a in list {
                println!(
                    "{:>5}  {:<9} {:<10} {}  (asked {}{})",
                    a.id,
                    a.status,
                    one_line(&a.agent),
                    one_line(&a.english),
                    a.created,
                    a.expires
                        .map(|e| format!(", lapses {e}"))
                        .unwrap_or_default()
                );
            }
            Ok(())
        }
        ApprovalsCmd::Show { state, id } => {
            let s = open(state)?;
            let a = s.show(*id)?;
            if state.json {
                return print_json(&a);
            }
            println!("action {}: {}", a.id, one_line(&a.english));
            println!(
                "  asked by {} at {}: \"{}\"",
                one_line(&a.agent),
                a.created,
                one_line(&a.request)
            );
            println!(
                "  tool {} ({}), status {}",
                one_line(&a.tool),
                a.reversibility,
                a.status
            );
            for (k, v) in &a.args {
                println!("  {} = {v:?}", one_line(k));
            }
            for (label, v) in [
                ("reason", &a.reason),
                ("result", &a.result),
                ("decided by", &a.decided_by),
                ("lapses", &a.expires),
            ] {
                if let Some(v) = v {
                    println!("  {label}: {}", one_line(v));
                }
            }
            if a.undoable {
                println!("  undo with: etch undo {}", a.id);
            }
            Ok(())
        }
        ApprovalsCmd::Approve { state, id, by } => {
            let s = open(state)?;
            let answer = s.approve(*id, by)?;
            if state.json {
                print_json(&answer)?;
            } else {
                println!("{}", printable(&answer.english));
            }
            match answer.status {
                etch_agent::Status::Failed => Err(CliError::Exit(5)),
                _ => Ok(()),
            }
        }
        ApprovalsCmd::Deny {
            state,
            id,
            reason,
            by,
        } => {
            let s = open(state)?;
            s.deny(*id, by, reason)?;
            if state.json {
                return print_json(&s.show(*id)?);
            }
            println!("denied action {id}");
            Ok(())
        }
    }
}

/// `etch undo`.
pub fn undo(a: &UndoArgs) -> CliResult {
    let s = open(&a.state)?;
    let english = s.undo(a.id, &a.by)?;
    if a.state.json {
        return print_json(
            &serde_json::json!({ "action": a.id, "undone": true, "english": english }),
        );
    }
    println!("{}", printable(&english));
    Ok(())
}

/// `etch audit …`.
pub fn audit(cmd: &AuditCmd) -> CliResult {
    match cmd {
        AuditCmd::Tail { state, n } => {
            // Reading only: no crash recovery, nothing written.
            exists(state)?;
            for e in audit::tail(&state.state, *n)? {
                if state.json {
                    print_json(&e)?;
                } else {
                    println!(
                        "{:06} {} {}: {}",
                        e.seq,
                        etch_agent::time::rfc3339(e.time),
                        one_line(&e.agent),
                        one_line(&e.english)
                    );
                }
            }
            Ok(())
        }
        AuditCmd::Verify { state } => {
            // Reading only: a forged tail is reported, never adopted by recovery.
            exists(state)?;
            let v = Syscalls::verify_audit_at(&state.state)?;
            if state.json {
                print_json(&v)?;
            } else if v.intact {
                println!(
                    "the audit log is intact: {} entries, each chained to the one before",
                    v.entries
                );
            } else {
                println!(
                    "the audit log is damaged: {}",
                    one_line(&v.problem.clone().unwrap_or_default())
                );
            }
            if v.intact {
                Ok(())
            } else {
                Err(CliError::Exit(4))
            }
        }
    }
}
