//! The flow, step by step: the top for the board, synthesis (reused when the design
//! is unchanged), the fit check, place and route, the bitstream, the report.

use std::path::{Path, PathBuf};
use std::time::Instant;

use etch_contract::Manifest;

use crate::board::{self, Board, Ecp5Pll};
use crate::error::{FpgaError, Result};
use crate::report::{cell_counts, needs, placed_fmax, Need, PnrReport, Report, Stages, Use};
use crate::target::{Family, Target};
use crate::tools::{nextpnr_phase, tool, Run};

/// Where yosys writes its netlist, beside the `netlist.json` it may replace.
const NEW_NETLIST: &str = "netlist.new.json";

/// What to make: a build directory on a target, perhaps a board, at a clock.
#[derive(Clone, Debug)]
pub struct Request {
    /// The build directory (`etch build`'s output).
    pub out: PathBuf,
    /// The FPGA (the board's when `None`).
    pub target: Option<Target>,
    /// The board whose pins and clock the top uses.
    pub board: Option<Board>,
    /// The chip's clock, MHz (the board's oscillator, else 25, when `None`).
    pub freq_mhz: Option<f64>,
    /// The UART link's baud rate.
    pub baud: u32,
    /// Place without timing optimization.
    pub quick: bool,
    /// Stop after synthesis and the fit check.
    pub synth_only: bool,
    /// Place but do not route: Fmax is the placer's estimate, no bitstream (a figure
    /// in minutes where routing a full part takes hours).
    pub place_only: bool,
    /// nextpnr's placer.
    pub placer: Placer,
    /// nextpnr's router.
    pub router: Router,
    /// nextpnr's seed. The same netlist, options and seed place and route the same; a
    /// congested chip may route at one seed and not at another (`docs/FPGA.md`).
    pub seed: u64,
    /// Extra nextpnr arguments (e.g. `--placer-heap-beta 0.5`); not the seed.
    pub nextpnr_args: Vec<String>,
}

/// nextpnr's router. `router2` negotiates all nets' congestion at once and is fast
/// when it converges, but whether it does depends on the netlist: it stalls at
/// thousands of overused wires on the stories260K chips, and on the CI's small chip it
/// converged on one netlist and diverged on the next (1,445 overused wires at its 26th
/// iteration, 4,045 at its 47th). `router1`, which routes one arc at a time and rips
/// up what is in its way, routed those (that CI chip in 260 s). `auto` is router1
/// (`docs/FPGA.md`, "What limits Fmax").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Router {
    /// router1, which routed the chips router2 stalled or diverged on.
    #[default]
    Auto,
    /// Arc by arc, ripping up what is in the way.
    Router1,
    /// Negotiated congestion over all nets at once.
    Router2,
}

impl Router {
    /// The name `--router` takes.
    pub fn name(self) -> &'static str {
        match self {
            Router::Auto => "auto",
            Router::Router1 => "router1",
            Router::Router2 => "router2",
        }
    }

    /// The router nextpnr runs.
    pub fn resolve(self) -> Router {
        match self {
            Router::Auto => Router::Router1,
            chosen => chosen,
        }
    }
}

impl std::str::FromStr for Router {
    type Err = FpgaError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(Router::Auto),
            "router1" => Ok(Router::Router1),
            "router2" => Ok(Router::Router2),
            other => Err(FpgaError::Request(format!(
                "no router {other:?}: auto, router1 or router2"
            ))),
        }
    }
}

/// nextpnr's placer. The analytical `static` placer spreads the design evenly: on
/// the tiny CI chip heap placement left router2 with thousands of overused wires after
/// three quarters of an hour where the static placement routed in minutes, and on the
/// 8 × 4 stories260K chip heap placement spread to at most half of each region
/// (`--placer-heap-beta 0.5` in `ETCH_NEXTPNR_ARGS`) had 48 % more wire and left
/// router1 118,454 arcs after 1,147 s where the static placement left about 76,000
/// (`docs/FPGA.md`). `heap` is there to compare.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Placer {
    /// Electrostatic spreading.
    #[default]
    Static,
    /// Analytical placement with bounded density (HeAP).
    Heap,
}

impl Placer {
    /// The name `--placer` takes.
    pub fn name(self) -> &'static str {
        match self {
            Placer::Static => "static",
            Placer::Heap => "heap",
        }
    }
}

impl std::str::FromStr for Placer {
    type Err = FpgaError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "static" => Ok(Placer::Static),
            "heap" => Ok(Placer::Heap),
            other => Err(FpgaError::Request(format!(
                "no placer {other:?}: static or heap"
            ))),
        }
    }
}

/// The clock and link of a request, checked: the target, the clock the chip gets (from
/// a PLL when it is not the board's oscillator), the UART divisor.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The FPGA.
    pub target: Target,
    /// The board, if any.
    pub board: Option<Board>,
    /// The chip's clock, MHz.
    pub freq_mhz: f64,
    /// The PLL that makes it, if any.
    pub pll: Option<Ecp5Pll>,
    /// Clock cycles per UART bit.
    pub divisor: u16,
}

impl Request {
    /// Checks the target, board, clock and baud rate together.
    pub fn plan(&self) -> Result<Plan> {
        if let Some(a) = self.nextpnr_args.iter().find(|a| chooses_seed(a)) {
            return Err(FpgaError::Request(format!(
                "the extra nextpnr options choose a seed ({a}): choose it with --seed N, which the report records"
            )));
        }
        let target = match (self.target, self.board) {
            (Some(t), Some(b)) if t != b.target() => {
                return Err(FpgaError::Request(format!(
                    "the {} carries an {}, not an {t}: drop --target or choose another board",
                    b.name(),
                    b.target()
                )))
            }
            (Some(t), _) => t,
            (None, Some(b)) => b.target(),
            (None, None) => {
                return Err(FpgaError::Request(format!(
                    "name a --target ({}) or a --board ({})",
                    Target::names(),
                    Board::names()
                )))
            }
        };
        let oscillator = self.board.map_or(25.0, |b| b.clock_mhz());
        let freq = self.freq_mhz.unwrap_or(oscillator);
        if !(freq > 0.0 && freq <= 1000.0) {
            return Err(FpgaError::Request(format!(
                "--freq {freq} MHz is not a clock this flow can aim for (0 < MHz ≤ 1000)"
            )));
        }
        // A board clocked other than by its oscillator gets a PLL in its top (ECP5).
        let pll = match self.board {
            Some(b) if (freq - oscillator).abs() > 1e-9 => {
                if target.family() != Family::Ecp5 {
                    return Err(FpgaError::Request(format!(
                        "the {} top runs at its {oscillator} MHz oscillator; --freq {freq} would need an iCE40 PLL, which its top does not have yet",
                        b.name()
                    )));
                }
                Some(board::ecp5_pll(oscillator, freq)?)
            }
            _ => None,
        };
        let freq_mhz = pll.map_or(freq, |p| p.output_mhz);
        let divisor = board::uart_divisor(freq_mhz, self.baud)?;
        Ok(Plan {
            target,
            board: self.board,
            freq_mhz,
            pll,
            divisor,
        })
    }
}

/// Runs the flow; `progress` hears what is happening (a tool's phase) as it happens.
pub fn synthesize(req: &Request, progress: &mut dyn FnMut(&str)) -> Result<Report> {
    let plan = req.plan()?;
    let manifest = Manifest::load(&req.out)?;
    let sources = rtl_sources(&req.out)?;
    let work = Workspace::new(&req.out, plan.target)?;
    work.write_top(req, &plan)?;
    let constraints = work.write_constraints(plan.board)?;
    let mut seconds = Stages::default();

    progress(&format!("yosys: synthesizing for {}", plan.target));
    let t0 = Instant::now();
    work.synthesize(&sources)?;
    seconds.synth = t0.elapsed().as_secs_f64();
    let cells = cell_counts(&work.read("stat.txt")?);
    let synthesized = needs(plan.target, &cells);
    check_fit(plan.target, &synthesized, &work.dir)?;

    let package = plan
        .board
        .map_or(plan.target.package(), |b| b.package())
        .to_string();
    let router = req.router.resolve();
    let mut report = Report {
        target: plan.target,
        board: plan.board,
        package,
        bitstream: None,
        freq_mhz: plan.freq_mhz,
        pll: plan.pll,
        fmax_mhz: None,
        fmax_per_clock: Default::default(),
        critical_path: Default::default(),
        timing_met: None,
        synth_only: req.synth_only,
        place_only: req.place_only,
        utilization: synthesized
            .iter()
            .map(|n| (n.key.to_string(), Use::new(n.used, n.available)))
            .collect(),
        uart_divisor: plan.divisor,
        baud: req.baud,
        design_hash: manifest.design_hash.clone(),
        lanes: manifest.lanes,
        quick: req.quick,
        placer: (!req.synth_only).then_some(req.placer),
        router: (!req.synth_only).then_some(router),
        seed: (!req.synth_only).then_some(req.seed),
        seconds: seconds.clone(),
    };
    if !req.synth_only {
        progress(&format!("nextpnr: placing and routing on {}", plan.target));
        let t0 = Instant::now();
        work.place_and_route(req, &plan, router, &report.package, constraints, progress)?;
        report.seconds.pnr = t0.elapsed().as_secs_f64();
        if !req.place_only {
            progress("writing the bitstream");
            let t0 = Instant::now();
            report.bitstream = Some(work.pack()?);
            report.seconds.pack = t0.elapsed().as_secs_f64();
        }
        let pnr: PnrReport = serde_json::from_str(&work.read("pnr.json")?).map_err(|e| {
            FpgaError::Tool(format!("nextpnr's report is not the JSON expected: {e}"))
        })?;
        report.utilization = pnr.utilization(plan.target, &synthesized);
        report.fmax_per_clock = match req.place_only {
            // Unrouted, nextpnr's report has no timing: its log has the placer's.
            true => placed_fmax(&work.read("nextpnr.log")?),
            false => pnr.fmax_per_clock(),
        };
        report.critical_path = pnr.critical_paths();
        let fmax = report
            .fmax_per_clock
            .values()
            .copied()
            .fold(f64::INFINITY, f64::min);
        let fmax = if fmax.is_finite() { fmax } else { 0.0 };
        report.fmax_mhz = Some(fmax);
        report.timing_met = Some(fmax >= plan.freq_mhz);
    }
    let text = serde_json::to_string_pretty(&report)
        .map_err(|e| FpgaError::Tool(format!("cannot write the report: {e}")))?;
    work.write("report.json", &text)?;
    Ok(report)
}

/// The design's Verilog files, relative to the build directory; the board top must be
/// among them.
fn rtl_sources(out: &Path) -> Result<Vec<String>> {
    let rtl = out.join("rtl");
    let mut sources: Vec<String> = std::fs::read_dir(&rtl)
        .map_err(|e| FpgaError::io("read", &rtl, e))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".v"))
        .map(|n| format!("rtl/{n}"))
        .collect();
    sources.sort();
    if !sources.iter().any(|s| s == "rtl/etch_board.v") {
        return Err(FpgaError::Request(format!(
            "{} has no board top (rtl/etch_board.v): rebuild it with this etch (`etch build`)",
            out.display()
        )));
    }
    Ok(sources)
}

/// Refuses a design that needs more than the part has, saying by how much.
fn check_fit(target: Target, synthesized: &[Need; 4], dir: &Path) -> Result<()> {
    let over: Vec<String> = synthesized
        .iter()
        .filter(|n| n.used > n.available)
        .map(|n| {
            format!(
                "{}: needs {}, the {target} has {} ({:.0} %, {} too many)",
                n.name,
                n.used,
                n.available,
                100.0 * n.used as f64 / n.available as f64,
                n.used - n.available
            )
        })
        .collect();
    if over.is_empty() {
        return Ok(());
    }
    Err(FpgaError::DoesNotFit(format!(
        "the design does not fit the {target}:\n  {}\n(see {}/stat.txt; fewer lanes, contexts or positions, or --weight-bits 4, make a chip smaller)",
        over.join("\n  "),
        dir.display()
    )))
}

/// `OUT/fpga/<target>/`: where the flow writes, named relative to `OUT` (the tools
/// run there).
struct Workspace<'a> {
    out: &'a Path,
    target: Target,
    rel: String,
    dir: PathBuf,
}

impl<'a> Workspace<'a> {
    fn new(out: &'a Path, target: Target) -> Result<Self> {
        let rel = format!("fpga/{target}");
        let dir = out.join(&rel);
        std::fs::create_dir_all(&dir).map_err(|e| FpgaError::io("write", &dir, e))?;
        Ok(Workspace {
            out,
            target,
            rel,
            dir,
        })
    }

    fn read(&self, name: &str) -> Result<String> {
        let p = self.dir.join(name);
        std::fs::read_to_string(&p).map_err(|e| FpgaError::io("read", &p, e))
    }

    fn write(&self, name: &str, text: &str) -> Result<()> {
        let p = self.dir.join(name);
        std::fs::write(&p, text).map_err(|e| FpgaError::io("write", &p, e))
    }

    /// `etch_top.v`, rewritten only when it changes so that an unchanged design skips
    /// synthesis. Nothing in it names the chip's directory: a copied or moved chip
    /// keeps its netlist and routing.
    fn write_top(&self, req: &Request, plan: &Plan) -> Result<()> {
        let header = format!(
            "// Generated by etch {} — do not edit.\n// Top for {} ({}), {} MHz, UART {} baud (divisor {}).\n// Regenerate: etch synth OUT --target {}{}",
            env!("CARGO_PKG_VERSION"),
            plan.target,
            plan.board.map_or("no board", |b| b.name()),
            plan.freq_mhz,
            req.baud,
            plan.divisor,
            plan.target,
            plan.board
                .map_or(String::new(), |b| format!(" --board {}", b.name())),
        );
        let top = board::top_verilog(
            &header,
            plan.divisor,
            plan.board.is_some_and(|b| b.led_active_low()),
            plan.pll.as_ref(),
        );
        if self.read("etch_top.v").ok().as_deref() != Some(top.as_str()) {
            self.write("etch_top.v", &top)?;
        }
        Ok(())
    }

    /// The board's constraint file, if there is a board.
    fn write_constraints(&self, board: Option<Board>) -> Result<Option<&'static str>> {
        let Some(b) = board else {
            return Ok(None);
        };
        let (file, text) = b.constraints();
        self.write(file, &text)?;
        Ok(Some(file))
    }

    /// yosys, unless `netlist.json` is current.
    fn synthesize(&self, sources: &[String]) -> Result<()> {
        let rel = &self.rel;
        // ETCH_ECP5: the board top's reset goes over a global buffer (`etch_board`)
        let (defines, synth_cmd) = match self.target.family() {
            Family::Ecp5 => ("-DETCH_ECP5 ", "synth_ecp5"),
            Family::Ice40 => ("", "synth_ice40 -dsp"),
        };
        let script = format!(
            "read_verilog -defer -sv {defines}{} {rel}/etch_top.v\n{synth_cmd} -top etch_top -json {rel}/{NEW_NETLIST}\ntee -o {rel}/stat.txt stat\n",
            sources.join(" ")
        );
        if self.synthesis_is_current(&script, sources) {
            tracing::info!("synthesis is current: reusing {rel}/netlist.json");
            return Ok(());
        }
        for stale in [NEW_NETLIST, "stat.txt"] {
            let _ = std::fs::remove_file(self.dir.join(stale));
        }
        self.write("synth.ys", &script)?;
        Run {
            program: tool("yosys")?,
            args: vec!["-q".into(), format!("{rel}/synth.ys")],
            dir: self.out,
            log: self.dir.join("yosys.log"),
            what: "yosys",
        }
        .run(None, &mut |_| {})?;
        self.keep_unchanged_netlist()
    }

    /// Moves yosys's new netlist over `netlist.json`, unless the two are the same bytes:
    /// then the old one stays, with its time, so that its placement and routing stay
    /// current (a design synthesized again — a copied chip, a new etch whose top reads
    /// the same — is not routed again).
    fn keep_unchanged_netlist(&self) -> Result<()> {
        let (new, old) = (self.dir.join(NEW_NETLIST), self.dir.join("netlist.json"));
        let same = match (std::fs::read(&new), std::fs::read(&old)) {
            (Ok(a), Ok(b)) => a == b,
            (Err(e), _) => return Err(FpgaError::io("read", &new, e)),
            _ => false,
        };
        if same {
            tracing::info!("yosys made the same netlist: keeping its placement and routing");
            std::fs::remove_file(&new).map_err(|e| FpgaError::io("remove", &new, e))
        } else {
            std::fs::rename(&new, &old).map_err(|e| FpgaError::io("write", &old, e))
        }
    }

    /// Whether the directory holds a netlist made by the same script from sources no
    /// newer than that run's statistics (so that a second run, e.g. after a failed
    /// place and route, skips yosys).
    fn synthesis_is_current(&self, script: &str, sources: &[String]) -> bool {
        let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        let Some(made) = modified(&self.dir.join("stat.txt")) else {
            return false;
        };
        if !self.dir.join("netlist.json").exists()
            || self.read("synth.ys").ok().as_deref() != Some(script)
        {
            return false;
        }
        sources
            .iter()
            .map(|s| self.out.join(s))
            .chain([self.dir.join("etch_top.v")])
            .chain(
                std::fs::read_dir(self.out.join("rom"))
                    .into_iter()
                    .flatten()
                    .flatten()
                    .map(|e| e.path()),
            )
            .all(|p| modified(&p).is_some_and(|m| m <= made))
    }

    /// nextpnr with the request's placer and `router`, the report in `pnr.json`.
    fn place_and_route(
        &self,
        req: &Request,
        plan: &Plan,
        router: Router,
        package: &str,
        constraints: Option<&str>,
        progress: &mut dyn FnMut(&str),
    ) -> Result<()> {
        let rel = &self.rel;
        let mut args: Vec<String> = vec![
            self.target.device_flag().into(),
            "--package".into(),
            package.into(),
            "--json".into(),
            format!("{rel}/netlist.json"),
            "--freq".into(),
            format!("{}", plan.freq_mhz),
            "--report".into(),
            format!("{rel}/pnr.json"),
            "--timing-allow-fail".into(),
            "--placer".into(),
            req.placer.name().into(),
            "--router".into(),
            router.name().into(),
        ];
        let family = self.target.family();
        let (ext, flag, allow) = match family {
            Family::Ecp5 => ("lpf", "--lpf", "--lpf-allow-unconstrained"),
            Family::Ice40 => ("pcf", "--pcf", "--pcf-allow-unconstrained"),
        };
        match constraints {
            Some(f) => {
                debug_assert!(f.ends_with(ext));
                args.extend([flag.into(), format!("{rel}/{f}")]);
            }
            None => args.push(allow.into()),
        }
        if req.quick {
            args.push("--no-tmdriv".into());
        }
        if req.place_only {
            args.push("--no-route".into());
        }
        args.extend(["--seed".into(), req.seed.to_string()]);
        args.extend(req.nextpnr_args.iter().cloned());
        let (pnr, placed_flag) = match family {
            Family::Ecp5 => ("nextpnr-ecp5", "--textcfg"),
            Family::Ice40 => ("nextpnr-ice40", "--asc"),
        };
        args.extend([placed_flag.into(), format!("{rel}/{}", self.placed())]);
        // The same netlist placed and routed with the same arguments: reuse it.
        let recorded = args.join("\n");
        if self.routing_is_current(&recorded) {
            tracing::info!("place and route is current: reusing {rel}/pnr.json");
            progress("nextpnr: reusing the placed and routed design");
            return Ok(());
        }
        let _ = std::fs::remove_file(self.dir.join("pnr.args"));
        let res = Run {
            program: tool(pnr)?,
            args,
            dir: self.out,
            log: self.dir.join("nextpnr.log"),
            what: "nextpnr",
        }
        .run(Some(nextpnr_phase), progress);
        match res {
            Err(FpgaError::Tool(msg))
                if msg.contains("no BELs remaining")
                    || msg.contains("too many")
                    || msg.contains("only has") =>
            {
                Err(FpgaError::DoesNotFit(format!(
                    "the design does not fit the {} after packing: {msg}",
                    self.target
                )))
            }
            Ok(()) => self.write("pnr.args", &recorded),
            other => other,
        }
    }

    /// Whether `pnr.json` and the placed design come from this netlist and these
    /// nextpnr arguments.
    fn routing_is_current(&self, args: &str) -> bool {
        let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        let Some(netlist) = modified(&self.dir.join("netlist.json")) else {
            return false;
        };
        self.read("pnr.args").ok().as_deref() == Some(args)
            && [self.placed(), "pnr.json"]
                .iter()
                .all(|f| modified(&self.dir.join(f)).is_some_and(|m| m >= netlist))
    }

    /// nextpnr's placed-and-routed output.
    fn placed(&self) -> &'static str {
        match self.target.family() {
            Family::Ecp5 => "etch.config",
            Family::Ice40 => "etch.asc",
        }
    }

    /// ecppack / icepack; the bitstream's path relative to the build directory.
    fn pack(&self) -> Result<String> {
        let rel = &self.rel;
        let (pack, bitstream) = match self.target.family() {
            Family::Ecp5 => ("ecppack", "etch.bit"),
            Family::Ice40 => ("icepack", "etch.bin"),
        };
        let mut args: Vec<String> = Vec::new();
        if self.target.family() == Family::Ecp5 {
            args.push("--compress".into());
        }
        args.push(format!("{rel}/{}", self.placed()));
        args.push(format!("{rel}/{bitstream}"));
        Run {
            program: tool(pack)?,
            args,
            dir: self.out,
            log: self.dir.join("pack.log"),
            what: pack,
        }
        .run(None, &mut |_| {})?;
        Ok(format!("{rel}/{bitstream}"))
    }
}

/// Whether an extra nextpnr option chooses its seed (`Request::seed` does).
fn chooses_seed(arg: &str) -> bool {
    arg == "--seed" || arg.starts_with("--seed=") || arg == "--randomize-seed" || arg == "-r"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(target: Option<Target>, board: Option<Board>, freq: Option<f64>) -> Request {
        Request {
            out: PathBuf::from("/nonexistent"),
            target,
            board,
            freq_mhz: freq,
            baud: 1_000_000,
            quick: false,
            synth_only: false,
            place_only: false,
            placer: Placer::default(),
            router: Router::default(),
            seed: 1,
            nextpnr_args: vec![],
        }
    }

    #[test]
    fn the_seed_is_chosen_by_its_own_option_and_not_the_extra_ones() {
        for extra in [
            &["--seed", "7"][..],
            &["--seed=7"],
            &["--randomize-seed"],
            &["-r"],
        ] {
            let mut req = request(None, Some(Board::Ulx3s), None);
            req.nextpnr_args = extra.iter().map(|a| a.to_string()).collect();
            let e = req.plan().unwrap_err().to_string();
            assert!(e.contains("--seed N"), "{e}");
        }
        let mut req = request(None, Some(Board::Ulx3s), None);
        req.nextpnr_args = vec!["--placer-heap-beta".into(), "0.5".into()];
        assert!(req.plan().is_ok());
    }

    #[test]
    fn routers_are_named_as_nextpnr_names_them_and_auto_is_router1() {
        for r in [Router::Auto, Router::Router1, Router::Router2] {
            assert_eq!(r.name().parse::<Router>().unwrap(), r);
        }
        assert_eq!(Router::default(), Router::Auto);
        let err = "router3".parse::<Router>().unwrap_err().to_string();
        assert!(err.contains("auto, router1 or router2"), "{err}");
        assert_eq!(Router::Auto.resolve(), Router::Router1);
        assert_eq!(Router::Router2.resolve(), Router::Router2);
        assert_eq!(Router::Router1.resolve(), Router::Router1);
    }

    #[test]
    fn placers_are_named_as_nextpnr_names_them_and_static_is_the_default() {
        for p in [Placer::Static, Placer::Heap] {
            assert_eq!(p.name().parse::<Placer>().unwrap(), p);
        }
        assert_eq!(Placer::default(), Placer::Static);
        let err = "sa".parse::<Placer>().unwrap_err().to_string();
        assert!(err.contains("static or heap"), "{err}");
    }

    #[test]
    fn plans_check_target_board_clock_and_link_together() {
        let p = request(None, Some(Board::Ulx3s), None).plan().unwrap();
        assert_eq!(
            (p.target, p.freq_mhz, p.divisor),
            (Target::Ecp5_85k, 25.0, 25)
        );
        assert!(p.pll.is_none());
        let p = request(None, Some(Board::Ulx3s), Some(50.0))
            .plan()
            .unwrap();
        assert_eq!((p.freq_mhz, p.divisor), (50.0, 50));
        assert!(p.pll.is_some());
        let e = request(Some(Target::Ecp5_25k), Some(Board::Ulx3s), None)
            .plan()
            .unwrap_err()
            .to_string();
        assert!(e.contains("carries an ecp5-85k"), "{e}");
        let e = request(None, None, None).plan().unwrap_err().to_string();
        assert!(
            e.contains("ecp5-85k, ecp5-25k, ice40-up5k") && e.contains("ulx3s"),
            "{e}"
        );
        assert!(request(None, Some(Board::IceBreaker), Some(20.0))
            .plan()
            .is_err());
        assert!(request(Some(Target::Ecp5_85k), None, Some(0.0))
            .plan()
            .is_err());
    }
}
