//! `etch synth`: a built chip to an FPGA bitstream with the open tools — yosys
//! (`synth_ecp5` / `synth_ice40`), nextpnr and ecppack / icepack, all from the YoWASP
//! virtualenv that `scripts/setup` installs.
//!
//! The synthesized top is `etch_board` (the chip, a power-on reset and the UART bridge)
//! with the board's clock divisor for the link, so that the bitstream can be driven by
//! `etch run --device serial:PORT`. Everything lands in `OUT/fpga/<target>/`:
//! `etch_top.v`, the constraint file, `netlist.json` (yosys), `pnr.json` (nextpnr's
//! report), the bitstream (`etch.bit` / `etch.bin`), the tools' logs and `report.json`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use etch_hdl::board::{self, Board, Family};
use indicatif::ProgressBar;
use serde::Serialize;

use crate::error::{CliError, CliResult};
use crate::output::{print_json, spinner};
use crate::SynthArgs;

/// An FPGA the flow targets.
#[derive(Clone, Copy, Debug)]
pub struct Target {
    /// Name on the command line.
    pub name: &'static str,
    /// Family.
    pub family: Family,
    /// nextpnr's device flag.
    pub device_flag: &'static str,
    /// Package when no board names one.
    pub package: &'static str,
    /// LUT4s (logic cells).
    pub luts: u64,
    /// Flip-flops.
    pub ffs: u64,
    /// Block RAMs (DP16KD 18 Kbit / SB_RAM40_4K 4 Kbit).
    pub brams: u64,
    /// Multipliers (MULT18X18D / SB_MAC16).
    pub dsps: u64,
}

/// The targets.
pub const TARGETS: [Target; 3] = [
    Target {
        name: "ecp5-85k",
        family: Family::Ecp5,
        device_flag: "--85k",
        package: "CABGA381",
        luts: 83_640,
        ffs: 83_640,
        brams: 208,
        dsps: 156,
    },
    Target {
        name: "ecp5-25k",
        family: Family::Ecp5,
        device_flag: "--25k",
        package: "CABGA381",
        luts: 24_288,
        ffs: 24_288,
        brams: 56,
        dsps: 28,
    },
    Target {
        name: "ice40-up5k",
        family: Family::Ice40,
        device_flag: "--up5k",
        package: "SG48",
        luts: 5_280,
        ffs: 5_280,
        brams: 30,
        dsps: 8,
    },
];

fn target_named(name: &str) -> CliResult<Target> {
    TARGETS.into_iter().find(|t| t.name == name).ok_or_else(|| {
        let names: Vec<&str> = TARGETS.iter().map(|t| t.name).collect();
        CliError::Usage(format!(
            "unknown target {name:?}: choose one of {}",
            names.join(", ")
        ))
    })
}

/// One resource of the report.
#[derive(Serialize, Clone, Debug)]
pub struct Use {
    /// Used by the design.
    pub used: u64,
    /// On the device.
    pub available: u64,
    /// `used / available` in percent.
    pub percent: f64,
}

impl Use {
    fn new(used: u64, available: u64) -> Self {
        Use {
            used,
            available,
            percent: if available == 0 {
                0.0
            } else {
                (1000.0 * used as f64 / available as f64).round() / 10.0
            },
        }
    }
}

/// `report.json` and `etch synth --json`.
#[derive(Serialize, Debug)]
pub struct Report {
    /// Target name.
    pub target: String,
    /// Board, if one was named.
    pub board: Option<String>,
    /// FPGA package.
    pub package: String,
    /// The bitstream, relative to the build directory (none with `--synth-only`).
    pub bitstream: Option<String>,
    /// The chip's clock, MHz: the board's oscillator, or what its PLL makes of it.
    pub freq_mhz: f64,
    /// The PLL in the top, when `--freq` differs from the board's oscillator.
    pub pll: Option<board::Ecp5Pll>,
    /// Fmax of the chip's clock after routing, MHz (none with `--synth-only`).
    pub fmax_mhz: Option<f64>,
    /// Fmax per clock net, MHz.
    pub fmax_per_clock: std::collections::BTreeMap<String, f64>,
    /// Whether Fmax reaches the requested clock (none with `--synth-only`).
    pub timing_met: Option<bool>,
    /// Stopped after synthesis and the fit check: utilization from yosys.
    pub synth_only: bool,
    /// LUTs, flip-flops, block RAMs, DSPs (after placement) and every cell type nextpnr
    /// counted.
    pub utilization: std::collections::BTreeMap<String, Use>,
    /// UART clock divisor built into the bridge, and the baud rate it gives.
    pub uart_divisor: u16,
    /// The link's baud rate.
    pub baud: u32,
    /// The design (from the manifest).
    pub design_hash: String,
    /// MAC lanes.
    pub lanes: usize,
    /// Placed without timing optimization (`--quick`).
    pub quick: bool,
    /// Seconds spent in synthesis, place and route, packing.
    pub seconds: Stages,
}

/// Wall-clock seconds per tool.
#[derive(Serialize, Debug, Default)]
pub struct Stages {
    /// yosys.
    pub synth: f64,
    /// nextpnr.
    pub pnr: f64,
    /// ecppack / icepack.
    pub pack: f64,
}

/// A YoWASP tool: `$ETCH_VENV/bin`, then `.venv/bin` beside the executable or the
/// current directory or any of their ancestors, then `PATH`.
pub fn tool(name: &str) -> CliResult<PathBuf> {
    let exe = format!("yowasp-{name}");
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(v) = std::env::var_os("ETCH_VENV") {
        dirs.push(PathBuf::from(v).join("bin"));
    }
    let mut starts = Vec::new();
    if let Ok(p) = std::env::current_exe() {
        starts.push(p);
    }
    if let Ok(p) = std::env::current_dir() {
        starts.push(p);
    }
    for s in starts {
        for a in s.ancestors() {
            dirs.push(a.join(".venv/bin"));
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    dirs.into_iter()
        .map(|d| d.join(&exe))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            CliError::Tool(format!(
                "{exe} was not found: run scripts/setup (it installs the YoWASP tools into .venv), or set ETCH_VENV"
            ))
        })
}

/// Reads a tool's phase off one line of its log, for the spinner.
type Phase = fn(&str) -> Option<String>;

/// Runs `program` in `dir`, its output to `log`; an error quotes the log's end. With
/// `follow`, each poll's newest line that `Phase` understands becomes `bar`'s message.
fn run_logged(
    program: &Path,
    args: &[String],
    dir: &Path,
    log: &Path,
    what: &str,
    follow: Option<(&ProgressBar, Phase)>,
) -> CliResult {
    let file = std::fs::File::create(log).map_err(|e| CliError::Io {
        action: "write",
        path: log.to_path_buf(),
        source: e,
    })?;
    let err = file
        .try_clone()
        .map_err(|e| CliError::Internal(e.to_string()))?;
    let mut child = Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdout(file)
        .stderr(err)
        .spawn()
        .map_err(|e| CliError::Tool(format!("cannot run {}: {e}", program.display())))?;
    let mut tail = match follow {
        Some(_) => LogTail::open(log).ok(),
        None => None,
    };
    let status = loop {
        let done = child
            .try_wait()
            .map_err(|e| CliError::Tool(format!("cannot wait for {what}: {e}")))?;
        if let (Some((bar, phase)), Some(tail)) = (follow, tail.as_mut()) {
            if let Some(msg) = tail.read().iter().rev().find_map(|l| phase(l)) {
                tracing::debug!("{what}: {msg}");
                bar.set_message(format!("{what}: {msg}"));
            }
        }
        match done {
            Some(status) => break status,
            None => std::thread::sleep(std::time::Duration::from_millis(250)),
        }
    };
    if status.success() {
        return Ok(());
    }
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let tail: Vec<&str> = text.lines().rev().take(12).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    Err(CliError::Tool(format!(
        "{what} failed ({status}); the end of {}:\n{}",
        log.display(),
        tail.join("\n")
    )))
}

/// The lines a log file gained since the last read (a line still being written waits
/// for its end): the open file keeps the place.
struct LogTail {
    file: std::fs::File,
    partial: Vec<u8>,
}

impl LogTail {
    fn open(log: &Path) -> std::io::Result<Self> {
        Ok(LogTail {
            file: std::fs::File::open(log)?,
            partial: Vec::new(),
        })
    }

    fn read(&mut self) -> Vec<String> {
        use std::io::Read;
        // The log is the tool's; a read that fails only leaves the spinner as it was.
        if self.file.read_to_end(&mut self.partial).is_err() {
            return Vec::new();
        }
        let Some(end) = self.partial.iter().rposition(|&b| b == b'\n') else {
            return Vec::new();
        };
        let rest = self.partial.split_off(end + 1);
        let done = std::mem::replace(&mut self.partial, rest);
        String::from_utf8_lossy(&done)
            .lines()
            .map(str::to_string)
            .collect()
    }
}

/// nextpnr's phase from one log line: the analytical placer's and the annealer's
/// iterations, router2's iterations with the wires still overused.
fn nextpnr_phase(line: &str) -> Option<String> {
    let line = line.trim_start_matches("Info:").trim();
    let field = |key: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .map(|v| v.trim_end_matches(','))
    };
    if line.starts_with("Packing") {
        Some("packing".into())
    } else if line.starts_with("Running Static placer") {
        Some("placing (analytical)".into())
    } else if let (Some(iter), Some(_)) = (field("iter="), field("steplen=")) {
        Some(format!("placing (analytical), iteration {iter}"))
    } else if line.starts_with("Running simulated annealing placer") {
        Some("placing (annealing)".into())
    } else if let Some(rest) = line.strip_prefix("at iteration #") {
        let iter = rest.split(':').next()?;
        let wirelen = line.rsplit("wirelen = ").next()?.trim();
        Some(format!(
            "placing (annealing), iteration {iter}, wirelength {wirelen}"
        ))
    } else if line.starts_with("Running router2") || line.starts_with("Routing globals") {
        Some("routing".into())
    } else if let (Some(iter), Some(over)) = (field("iter="), field("overused=")) {
        Some(format!("routing, iteration {iter}: {over} wires overused"))
    } else if line.starts_with("Running router1 to check") {
        Some("routing: checking the route".into())
    } else if line.starts_with("Routing complete") {
        Some("timing analysis".into())
    } else {
        None
    }
}

/// Cell counts from yosys's `stat` text.
fn cell_counts(stat: &str) -> std::collections::BTreeMap<String, u64> {
    let mut cells = std::collections::BTreeMap::new();
    for line in stat.lines() {
        let mut words = line.split_whitespace();
        let (Some(a), Some(b), None) = (words.next(), words.next(), words.next()) else {
            continue;
        };
        // yosys prints "  <count>   <cell>" (newer) or "  <cell>   <count>" (older).
        let (count, cell) = match (a.parse::<u64>(), b.parse::<u64>()) {
            (Ok(n), Err(_)) => (n, b),
            (Err(_), Ok(n)) => (n, a),
            _ => continue,
        };
        if cell.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            cells.insert(cell.to_string(), count);
        }
    }
    cells
}

/// The resources a synthesized design needs, before placement, as `(name, used,
/// available)`; LUTs count ECP5 carry cells as the two LUTs they occupy.
fn needs(
    t: &Target,
    cells: &std::collections::BTreeMap<String, u64>,
) -> Vec<(&'static str, u64, u64)> {
    let get = |n: &str| cells.get(n).copied().unwrap_or(0);
    let sum = |prefix: &str| {
        cells
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| *v)
            .sum::<u64>()
    };
    match t.family {
        Family::Ecp5 => vec![
            (
                "LUTs",
                get("LUT4") + 2 * get("CCU2C") + 2 * get("TRELLIS_DPR16X4"),
                t.luts,
            ),
            ("flip-flops", get("TRELLIS_FF"), t.ffs),
            (
                "block RAMs (DP16KD)",
                get("DP16KD") + get("PDPW16KD"),
                t.brams,
            ),
            ("DSP multipliers (MULT18X18D)", get("MULT18X18D"), t.dsps),
        ],
        Family::Ice40 => vec![
            ("LUTs", get("SB_LUT4"), t.luts),
            ("flip-flops", sum("SB_DFF"), t.ffs),
            ("block RAMs (SB_RAM40_4K)", get("SB_RAM40_4K"), t.brams),
            ("DSP multipliers (SB_MAC16)", get("SB_MAC16"), t.dsps),
        ],
    }
}

/// nextpnr's `--report` JSON: utilization per cell type and Fmax per clock.
#[derive(serde::Deserialize, Default)]
struct PnrReport {
    #[serde(default)]
    utilization: std::collections::BTreeMap<String, PnrUse>,
    #[serde(default)]
    fmax: std::collections::BTreeMap<String, PnrFmax>,
}

#[derive(serde::Deserialize)]
struct PnrUse {
    used: u64,
    available: u64,
}

#[derive(serde::Deserialize)]
struct PnrFmax {
    achieved: f64,
    #[allow(dead_code)]
    constraint: f64,
}

fn read_text(path: &Path) -> CliResult<String> {
    std::fs::read_to_string(path).map_err(|e| CliError::Io {
        action: "read",
        path: path.to_path_buf(),
        source: e,
    })
}

fn write_text(path: &Path, text: &str) -> CliResult {
    std::fs::write(path, text).map_err(|e| CliError::Io {
        action: "write",
        path: path.to_path_buf(),
        source: e,
    })
}

/// Whether `dir` holds a netlist made by the same script from sources no newer than it
/// (so that a second run, e.g. after a failed place and route, skips yosys).
fn synthesis_is_current(out: &Path, dir: &Path, script: &str, sources: &[String]) -> bool {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let Some(netlist) = modified(&dir.join("netlist.json")) else {
        return false;
    };
    if !dir.join("stat.txt").exists()
        || std::fs::read_to_string(dir.join("synth.ys"))
            .ok()
            .as_deref()
            != Some(script)
    {
        return false;
    }
    sources
        .iter()
        .map(|s| out.join(s))
        .chain([dir.join("etch_top.v")])
        .chain(
            std::fs::read_dir(out.join("rom"))
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path()),
        )
        .all(|p| modified(&p).is_some_and(|m| m <= netlist))
}

/// `etch synth`.
pub fn synth(a: &SynthArgs) -> CliResult {
    let board = match &a.board {
        Some(name) => Some(Board::from_name(name).ok_or_else(|| {
            let names: Vec<&str> = Board::ALL.iter().map(|b| b.name()).collect();
            CliError::Usage(format!(
                "unknown board {name:?}: choose one of {}",
                names.join(", ")
            ))
        })?),
        None => None,
    };
    let target = match (&a.target, board) {
        (Some(t), Some(b)) if t != b.target() => {
            return Err(CliError::Usage(format!(
                "the {} carries an {}, not an {t}: drop --target or choose another board",
                b.name(),
                b.target()
            )))
        }
        (Some(t), _) => target_named(t)?,
        (None, Some(b)) => target_named(b.target())?,
        (None, None) => {
            return Err(CliError::Usage(
                "name a --target (ecp5-85k, ecp5-25k, ice40-up5k) or a --board (ulx3s, orangecrab, icebreaker)".into(),
            ))
        }
    };
    let clock_mhz = board.map_or(25.0, |b| b.clock_mhz());
    let freq = a.freq.unwrap_or(clock_mhz);
    if !(freq > 0.0 && freq <= 1000.0) {
        return Err(CliError::Usage(format!(
            "--freq {freq} MHz is not a clock this flow can aim for (0 < MHz ≤ 1000)"
        )));
    }
    // A board clocked other than by its oscillator gets a PLL in its top (ECP5).
    let pll = match board {
        Some(b) if (freq - clock_mhz).abs() > 1e-9 => {
            if target.family != Family::Ecp5 {
                return Err(CliError::Usage(format!(
                    "the {} top runs at its {clock_mhz} MHz oscillator; --freq {freq} would need an iCE40 PLL, which its top does not have yet",
                    b.name()
                )));
            }
            Some(board::ecp5_pll(clock_mhz, freq).map_err(|e| CliError::Usage(e.to_string()))?)
        }
        _ => None,
    };
    let freq = pll.map_or(freq, |p| p.output_mhz);
    let divisor = board::uart_divisor(freq, a.baud).map_err(|e| CliError::Usage(e.to_string()))?;

    let out = &a.out;
    let manifest_path = out.join("manifest.json");
    let manifest: serde_json::Value =
        serde_json::from_str(&read_text(&manifest_path)?).map_err(|e| {
            CliError::Usage(format!(
                "{} is not an etch build manifest: {e}",
                manifest_path.display()
            ))
        })?;
    let design_hash = manifest["design_hash"].as_str().unwrap_or("").to_string();
    let lanes = manifest["lanes"].as_u64().unwrap_or(0) as usize;
    let rtl = out.join("rtl");
    let mut sources: Vec<String> = std::fs::read_dir(&rtl)
        .map_err(|e| CliError::Io {
            action: "read",
            path: rtl.clone(),
            source: e,
        })?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".v"))
        .map(|n| format!("rtl/{n}"))
        .collect();
    sources.sort();
    if !sources.iter().any(|s| s == "rtl/etch_board.v") {
        return Err(CliError::Usage(format!(
            "{} has no board top (rtl/etch_board.v): rebuild it with this etch (`etch build`)",
            out.display()
        )));
    }

    let rel = format!("fpga/{}", target.name);
    let dir = out.join(&rel);
    std::fs::create_dir_all(&dir).map_err(|e| CliError::Io {
        action: "write",
        path: dir.clone(),
        source: e,
    })?;
    let header = format!(
        "// Generated by etch {} — do not edit.\n// Top for {} ({}), {freq} MHz, UART {} baud (divisor {divisor}).\n// Regenerate: etch synth {} --target {}{}",
        env!("CARGO_PKG_VERSION"),
        target.name,
        board.map_or("no board", |b| b.name()),
        a.baud,
        out.display(),
        target.name,
        board.map_or(String::new(), |b| format!(" --board {}", b.name())),
    );
    let top = board::top_verilog(
        &header,
        divisor,
        board.is_some_and(|b| b.led_active_low()),
        pll.as_ref(),
    );
    // Rewritten only when it changes, so that an unchanged design skips synthesis.
    if std::fs::read_to_string(dir.join("etch_top.v"))
        .ok()
        .as_deref()
        != Some(top.as_str())
    {
        write_text(&dir.join("etch_top.v"), &top)?;
    }
    let constraints = match board {
        Some(b) => {
            let (file, text) = b.constraints();
            write_text(&dir.join(file), &text)?;
            Some(file)
        }
        None => None,
    };
    let mut stages = Stages::default();

    // Synthesis.
    let bar = spinner(&format!("yosys: synthesizing for {}", target.name));
    let synth_cmd = match target.family {
        Family::Ecp5 => "synth_ecp5",
        Family::Ice40 => "synth_ice40 -dsp",
    };
    let script = format!(
        "read_verilog -defer -sv {} {rel}/etch_top.v\n{synth_cmd} -top etch_top -json {rel}/netlist.json\ntee -o {rel}/stat.txt stat\n",
        sources.join(" ")
    );
    let t0 = Instant::now();
    if synthesis_is_current(out, &dir, &script, &sources) {
        tracing::info!("synthesis is current: reusing {rel}/netlist.json");
    } else {
        let _ = std::fs::remove_file(dir.join("netlist.json"));
        write_text(&dir.join("synth.ys"), &script)?;
        let res = run_logged(
            &tool("yosys")?,
            &["-q".into(), format!("{rel}/synth.ys")],
            out,
            &dir.join("yosys.log"),
            "yosys",
            None,
        );
        bar.finish_and_clear();
        res?;
    }
    bar.finish_and_clear();
    stages.synth = t0.elapsed().as_secs_f64();
    let cells = cell_counts(&read_text(&dir.join("stat.txt"))?);
    let over: Vec<String> = needs(&target, &cells)
        .into_iter()
        .filter(|(_, used, avail)| used > avail)
        .map(|(name, used, avail)| {
            format!(
                "{name}: needs {used}, the {} has {avail} ({:.0} %, {} too many)",
                target.name,
                100.0 * used as f64 / avail as f64,
                used - avail
            )
        })
        .collect();
    if !over.is_empty() {
        return Err(CliError::DoesNotFit(format!(
            "the design does not fit the {}:\n  {}\n(see {}/stat.txt; fewer lanes, contexts or positions, or --weight-bits 4, make a chip smaller)",
            target.name,
            over.join("\n  "),
            dir.display()
        )));
    }

    let package = board.map_or(target.package, |b| b.package());
    let mut report = Report {
        target: target.name.into(),
        board: board.map(|b| b.name().to_string()),
        package: package.into(),
        bitstream: None,
        freq_mhz: freq,
        pll,
        fmax_mhz: None,
        fmax_per_clock: Default::default(),
        timing_met: None,
        synth_only: a.synth_only,
        utilization: needs(&target, &cells)
            .into_iter()
            .zip(["luts", "ffs", "brams", "dsps"])
            .map(|((_, used, available), key)| (key.to_string(), Use::new(used, available)))
            .collect(),
        uart_divisor: divisor,
        baud: a.baud,
        design_hash,
        lanes,
        quick: a.quick,
        seconds: stages,
    };
    if a.synth_only {
        return finish(a, &report, &dir, out, &target, board);
    }

    // Place and route.
    let bar = spinner(&format!("nextpnr: placing and routing on {}", target.name));
    let mut args: Vec<String> = vec![
        target.device_flag.into(),
        "--package".into(),
        package.into(),
        "--json".into(),
        format!("{rel}/netlist.json"),
        "--freq".into(),
        format!("{freq}"),
        "--report".into(),
        format!("{rel}/pnr.json"),
        "--timing-allow-fail".into(),
        "--seed".into(),
        "1".into(),
        // The analytical "static" placer spreads the design so that router2 converges:
        // the tiny CI chip routed in minutes where heap placement left router2 with
        // thousands of overused wires after three quarters of an hour.
        "--placer".into(),
        "static".into(),
        "--router".into(),
        "router2".into(),
    ];
    let (pnr, pack, placed, bitstream) = match target.family {
        Family::Ecp5 => ("nextpnr-ecp5", "ecppack", "etch.config", "etch.bit"),
        Family::Ice40 => ("nextpnr-ice40", "icepack", "etch.asc", "etch.bin"),
    };
    match (target.family, constraints) {
        (Family::Ecp5, Some(f)) => args.extend(["--lpf".into(), format!("{rel}/{f}")]),
        (Family::Ecp5, None) => args.push("--lpf-allow-unconstrained".into()),
        (Family::Ice40, Some(f)) => args.extend(["--pcf".into(), format!("{rel}/{f}")]),
        (Family::Ice40, None) => args.push("--pcf-allow-unconstrained".into()),
    }
    if a.quick {
        args.push("--no-tmdriv".into());
    }
    // Extra nextpnr options from the environment (e.g. "--seed 7").
    if let Ok(extra) = std::env::var("ETCH_NEXTPNR_ARGS") {
        args.extend(extra.split_whitespace().map(String::from));
    }
    match target.family {
        Family::Ecp5 => args.extend(["--textcfg".into(), format!("{rel}/{placed}")]),
        Family::Ice40 => args.extend(["--asc".into(), format!("{rel}/{placed}")]),
    }
    let t0 = Instant::now();
    let res = run_logged(
        &tool(pnr)?,
        &args,
        out,
        &dir.join("nextpnr.log"),
        "nextpnr",
        Some((&bar, nextpnr_phase)),
    );
    bar.finish_and_clear();
    if let Err(CliError::Tool(msg)) = &res {
        if msg.contains("no BELs remaining") || msg.contains("too many") || msg.contains("only has")
        {
            return Err(CliError::DoesNotFit(format!(
                "the design does not fit the {} after packing: {msg}",
                target.name
            )));
        }
    }
    res?;
    report.seconds.pnr = t0.elapsed().as_secs_f64();

    // Bitstream.
    let bar = spinner(&format!("{pack}: writing the bitstream"));
    let t0 = Instant::now();
    let mut pack_args: Vec<String> = Vec::new();
    if target.family == Family::Ecp5 {
        pack_args.push("--compress".into());
    }
    pack_args.push(format!("{rel}/{placed}"));
    pack_args.push(format!("{rel}/{bitstream}"));
    let res = run_logged(
        &tool(pack)?,
        &pack_args,
        out,
        &dir.join("pack.log"),
        pack,
        None,
    );
    bar.finish_and_clear();
    res?;
    report.seconds.pack = t0.elapsed().as_secs_f64();

    let pnr_report: PnrReport = serde_json::from_str(&read_text(&dir.join("pnr.json"))?)
        .map_err(|e| CliError::Tool(format!("nextpnr's report is not the JSON expected: {e}")))?;
    let mut utilization = std::collections::BTreeMap::new();
    let logic = |names: &[&str]| {
        names
            .iter()
            .filter_map(|n| pnr_report.utilization.get(*n))
            .map(|u| (u.used, u.available))
            .next()
    };
    let families: &[(&str, &[&str])] = match target.family {
        Family::Ecp5 => &[
            ("luts", &["TRELLIS_COMB"]),
            ("ffs", &["TRELLIS_FF"]),
            ("brams", &["DP16KD"]),
            ("dsps", &["MULT18X18D"]),
        ],
        Family::Ice40 => &[
            ("luts", &["ICESTORM_LC"]),
            ("ffs", &["ICESTORM_LC"]),
            ("brams", &["ICESTORM_RAM"]),
            ("dsps", &["ICESTORM_DSP"]),
        ],
    };
    for (key, names) in families {
        let (used, available) = logic(names).unwrap_or((0, 0));
        utilization.insert(key.to_string(), Use::new(used, available));
    }
    if target.family == Family::Ice40 {
        // A logic cell holds a LUT and a flip-flop: count each from yosys's cells.
        let n = needs(&target, &cells);
        utilization.insert("luts".into(), Use::new(n[0].1, target.luts));
        utilization.insert("ffs".into(), Use::new(n[1].1, target.ffs));
    }
    for (name, u) in &pnr_report.utilization {
        if u.used > 0 {
            utilization.insert(name.clone(), Use::new(u.used, u.available));
        }
    }
    let fmax_per_clock: std::collections::BTreeMap<String, f64> = pnr_report
        .fmax
        .iter()
        .map(|(k, v)| (k.clone(), (v.achieved * 100.0).round() / 100.0))
        .collect();
    let fmax = fmax_per_clock
        .values()
        .copied()
        .fold(f64::INFINITY, f64::min);
    let fmax = if fmax.is_finite() { fmax } else { 0.0 };
    report.bitstream = Some(format!("{rel}/{bitstream}"));
    report.fmax_mhz = Some(fmax);
    report.fmax_per_clock = fmax_per_clock;
    report.timing_met = Some(fmax >= freq);
    report.utilization = utilization;
    finish(a, &report, &dir, out, &target, board)
}

/// Writes `report.json` and prints the report.
fn finish(
    a: &SynthArgs,
    report: &Report,
    dir: &Path,
    out: &Path,
    target: &Target,
    board: Option<Board>,
) -> CliResult {
    let freq = report.freq_mhz;
    let divisor = report.uart_divisor;
    let package = &report.package;
    let text =
        serde_json::to_string_pretty(report).map_err(|e| CliError::Internal(e.to_string()))?;
    write_text(&dir.join("report.json"), &text)?;
    if a.json {
        return print_json(report);
    }
    match &report.bitstream {
        Some(b) => println!("{} → {}", out.display(), out.join(b).display()),
        None => println!("{}: synthesized, not placed and routed", out.display()),
    }
    println!(
        "  target       {} ({}){}",
        target.name,
        package,
        board.map_or(String::new(), |b| format!(", board {}", b.name()))
    );
    for key in ["luts", "ffs", "brams", "dsps"] {
        if let Some(u) = report.utilization.get(key) {
            println!(
                "  {key:<12} {:>7} / {:<7} {:>5.1} %",
                u.used, u.available, u.percent
            );
        }
    }
    if let (Some(fmax), Some(met)) = (report.fmax_mhz, report.timing_met) {
        let verdict = if met { "meets timing" } else { "FAILS timing" };
        println!("  fmax         {fmax:.2} MHz ({verdict} at {freq} MHz)");
    }
    println!(
        "  link         {} baud (divisor {divisor}): etch run --device serial:PORT,{}",
        a.baud, a.baud
    );
    println!(
        "  time         synth {:.0} s, place and route {:.0} s, pack {:.0} s",
        report.seconds.synth, report.seconds.pnr, report.seconds.pack
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yosys_stat_counts_parse_in_both_layouts() {
        let c = cell_counts(
            "   Number of cells:  10\n     LUT4      1234\n   56   DP16KD\n  $_DFF_P_ 3\n",
        );
        assert_eq!(c.get("LUT4"), Some(&1234));
        assert_eq!(c.get("DP16KD"), Some(&56));
        assert!(!c.contains_key("$_DFF_P_"));
    }

    #[test]
    fn needs_count_carry_cells_as_two_luts() {
        let t = target_named("ecp5-85k").unwrap();
        let c = cell_counts("LUT4 100\nCCU2C 10\nTRELLIS_FF 7\nDP16KD 300\n");
        let n = needs(&t, &c);
        assert_eq!(n[0], ("LUTs", 120, 83_640));
        assert_eq!(n[2].1, 300);
        assert!(target_named("virtex").is_err());
    }

    #[test]
    fn nextpnr_phases_come_from_its_log_lines() {
        let phases: Vec<Option<String>> = [
            "Info: Packing LUTs...",
            "Info: Running Static placer...",
            "Info: iter=79 steplen=0.648277 a=41.427502 penalty=[0.00, 0.00, 0.00, 0.00]",
            "Info: Running simulated annealing placer for refinement.",
            "Info:   at iteration #15: temp = 0.000000, timing cost = 2008, wirelen = 319120",
            "Info: Running router2...",
            "Info:     iter=34 wires=597883 overused=859 overuse=880 archfail=NA",
            "Info: Running router1 to check that route is legal...",
            "Info: Routing complete.",
            "Info: ⌁ initialising bels...",
        ]
        .iter()
        .map(|l| nextpnr_phase(l))
        .collect();
        let want = [
            Some("packing"),
            Some("placing (analytical)"),
            Some("placing (analytical), iteration 79"),
            Some("placing (annealing)"),
            Some("placing (annealing), iteration 15, wirelength 319120"),
            Some("routing"),
            Some("routing, iteration 34: 859 wires overused"),
            Some("routing: checking the route"),
            Some("timing analysis"),
            None,
        ];
        assert_eq!(phases, want.map(|w| w.map(String::from)));
    }

    #[test]
    fn a_log_tail_returns_whole_lines_once() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("tool.log");
        let mut f = std::fs::File::create(&log).unwrap();
        let mut tail = LogTail::open(&log).unwrap();
        assert!(tail.read().is_empty(), "a log not yet written");
        f.write_all(b"one\ntw").unwrap();
        assert_eq!(tail.read(), ["one"]);
        assert!(tail.read().is_empty());
        f.write_all("o \u{2301}\nthree\n".as_bytes()).unwrap();
        assert_eq!(tail.read(), ["two \u{2301}", "three"]);
    }
}
