//! What a run of the flow reports (`OUT/fpga/<target>/report.json`, `etch synth
//! --json`): utilization, Fmax, the clock and link settings, the time of each tool;
//! and how the numbers are read from yosys's `stat` and nextpnr's `--report`.

use std::collections::BTreeMap;

use crate::board::{Board, Ecp5Pll};
use crate::target::{Family, Target};

/// One resource: used by the design, on the device.
#[derive(serde::Serialize, Clone, Debug, PartialEq)]
pub struct Use {
    /// Used by the design.
    pub used: u64,
    /// On the device.
    pub available: u64,
    /// `used / available` in percent.
    pub percent: f64,
}

impl Use {
    /// `used` of `available`.
    pub fn new(used: u64, available: u64) -> Self {
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

/// `report.json`.
#[derive(serde::Serialize, Debug)]
pub struct Report {
    /// The FPGA.
    pub target: Target,
    /// The board, if one was named.
    pub board: Option<Board>,
    /// FPGA package.
    pub package: String,
    /// The bitstream, relative to the build directory (none after synthesis only).
    pub bitstream: Option<String>,
    /// The chip's clock, MHz: the board's oscillator, or what its PLL makes of it.
    pub freq_mhz: f64,
    /// The PLL in the top, when the clock differs from the board's oscillator.
    pub pll: Option<Ecp5Pll>,
    /// Fmax of the chip's clock after routing, MHz (none after synthesis only).
    pub fmax_mhz: Option<f64>,
    /// Fmax per clock net, MHz.
    pub fmax_per_clock: BTreeMap<String, f64>,
    /// The worst path per clock after routing: what limits Fmax (docs/FPGA.md).
    pub critical_path: BTreeMap<String, CriticalPath>,
    /// Whether Fmax reaches the requested clock (none after synthesis only).
    pub timing_met: Option<bool>,
    /// Stopped after synthesis and the fit check: utilization from yosys.
    pub synth_only: bool,
    /// Placed, not routed: `fmax_mhz` is the placer's estimate (usually above what
    /// routing reaches), and there is no bitstream.
    pub place_only: bool,
    /// `luts`, `ffs`, `brams`, `dsps` (after placement) and every cell type nextpnr
    /// counted.
    pub utilization: BTreeMap<String, Use>,
    /// UART clock divisor built into the bridge.
    pub uart_divisor: u16,
    /// The link's baud rate.
    pub baud: u32,
    /// The design (from the manifest).
    pub design_hash: String,
    /// MAC lanes.
    pub lanes: usize,
    /// Placed without timing optimization (`--quick`).
    pub quick: bool,
    /// nextpnr's placer (`--placer`), absent after `--synth-only`.
    pub placer: Option<crate::Placer>,
    /// nextpnr's router (`--router`, `auto` resolved), absent after `--synth-only`.
    pub router: Option<crate::Router>,
    /// nextpnr's seed (`--seed`), absent after `--synth-only`.
    pub seed: Option<u64>,
    /// Seconds spent in each tool.
    pub seconds: Stages,
}

/// Wall-clock seconds per tool.
#[derive(serde::Serialize, Debug, Default, Clone)]
pub struct Stages {
    /// yosys.
    pub synth: f64,
    /// nextpnr.
    pub pnr: f64,
    /// ecppack / icepack.
    pub pack: f64,
}

/// Cell counts from yosys's `stat` text.
pub fn cell_counts(stat: &str) -> BTreeMap<String, u64> {
    let mut cells = BTreeMap::new();
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

/// A resource a synthesized design needs: its key in the report, its name in
/// messages, used, available.
#[derive(Clone, Debug, PartialEq)]
pub struct Need {
    /// `luts`, `ffs`, `brams` or `dsps`.
    pub key: &'static str,
    /// What a person calls it.
    pub name: &'static str,
    /// Used by the design.
    pub used: u64,
    /// On the part.
    pub available: u64,
}

/// The resources a synthesized design needs, before placement; LUTs count ECP5 carry
/// cells and distributed RAM as the two LUTs each occupies.
pub fn needs(t: Target, cells: &BTreeMap<String, u64>) -> [Need; 4] {
    let get = |n: &str| cells.get(n).copied().unwrap_or(0);
    let sum = |prefix: &str| {
        cells
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| *v)
            .sum::<u64>()
    };
    let r = t.resources();
    let need = |key, name, used, available| Need {
        key,
        name,
        used,
        available,
    };
    match t.family() {
        Family::Ecp5 => [
            need(
                "luts",
                "LUTs",
                get("LUT4") + 2 * get("CCU2C") + 2 * get("TRELLIS_DPR16X4"),
                r.luts,
            ),
            need("ffs", "flip-flops", get("TRELLIS_FF"), r.ffs),
            need(
                "brams",
                "block RAMs (DP16KD)",
                get("DP16KD") + get("PDPW16KD"),
                r.brams,
            ),
            need(
                "dsps",
                "DSP multipliers (MULT18X18D)",
                get("MULT18X18D"),
                r.dsps,
            ),
        ],
        Family::Ice40 => [
            need("luts", "LUTs", get("SB_LUT4"), r.luts),
            need("ffs", "flip-flops", sum("SB_DFF"), r.ffs),
            need(
                "brams",
                "block RAMs (SB_RAM40_4K)",
                get("SB_RAM40_4K"),
                r.brams,
            ),
            need(
                "dsps",
                "DSP multipliers (SB_MAC16)",
                get("SB_MAC16"),
                r.dsps,
            ),
        ],
    }
}

/// nextpnr's `--report` JSON: utilization per cell type and Fmax per clock.
#[derive(serde::Deserialize, Default)]
pub struct PnrReport {
    #[serde(default)]
    utilization: BTreeMap<String, PnrUse>,
    #[serde(default)]
    fmax: BTreeMap<String, PnrFmax>,
    #[serde(default)]
    critical_paths: Vec<PnrPath>,
}

#[derive(serde::Deserialize)]
struct PnrPath {
    from: String,
    to: String,
    #[serde(default)]
    path: Vec<PnrSegment>,
}

#[derive(serde::Deserialize)]
struct PnrSegment {
    #[serde(rename = "type")]
    kind: String,
    delay: f64,
    from: PnrPort,
    to: PnrPort,
    #[serde(default)]
    sources: Vec<String>,
}

#[derive(serde::Deserialize)]
struct PnrPort {
    cell: String,
    port: String,
}

/// The worst path of one clock after routing, as nextpnr timed it.
#[derive(serde::Serialize, Debug, Clone, PartialEq)]
pub struct CriticalPath {
    /// The cell and port where it starts (a flip-flop, a block RAM, a DSP).
    pub from: String,
    /// The cell and port where it ends.
    pub to: String,
    /// Its delay, ns (the clock period it allows).
    pub total_ns: f64,
    /// Delay in cells: clock to output, logic, setup.
    pub logic_ns: f64,
    /// Delay in wires between cells.
    pub routing_ns: f64,
    /// Cells along the path.
    pub cells: usize,
    /// The Verilog lines the path's nets come from (`file:line`), in path order,
    /// each once: where to look in `OUT/rtl/`.
    pub sources: Vec<String>,
}

#[derive(serde::Deserialize)]
struct PnrUse {
    used: u64,
    available: u64,
}

#[derive(serde::Deserialize)]
struct PnrFmax {
    achieved: f64,
}

impl PnrReport {
    /// Utilization as the report states it: the four families' cells, then every cell
    /// type that is used. On an iCE40 a logic cell holds a LUT and a flip-flop, so
    /// those two come from yosys's counts (`synthesized`).
    pub fn utilization(&self, t: Target, synthesized: &[Need; 4]) -> BTreeMap<String, Use> {
        let cells: [(&str, &str); 4] = match t.family() {
            Family::Ecp5 => [
                ("luts", "TRELLIS_COMB"),
                ("ffs", "TRELLIS_FF"),
                ("brams", "DP16KD"),
                ("dsps", "MULT18X18D"),
            ],
            Family::Ice40 => [
                ("luts", "ICESTORM_LC"),
                ("ffs", "ICESTORM_LC"),
                ("brams", "ICESTORM_RAM"),
                ("dsps", "ICESTORM_DSP"),
            ],
        };
        let mut out = BTreeMap::new();
        for (key, cell) in cells {
            let u = self.utilization.get(cell);
            out.insert(
                key.to_string(),
                Use::new(u.map_or(0, |u| u.used), u.map_or(0, |u| u.available)),
            );
        }
        if t.family() == Family::Ice40 {
            for n in &synthesized[..2] {
                out.insert(n.key.to_string(), Use::new(n.used, n.available));
            }
        }
        for (name, u) in &self.utilization {
            if u.used > 0 {
                out.insert(name.clone(), Use::new(u.used, u.available));
            }
        }
        out
    }

    /// The worst path of each clock (or pair of clocks, `from -> to`), keyed like
    /// nextpnr's clock events without the edge: `$glbnet$clk`.
    pub fn critical_paths(&self) -> BTreeMap<String, CriticalPath> {
        let round = |x: f64| (x * 1000.0).round() / 1000.0;
        let clock = |e: &str| {
            e.trim_start_matches("posedge ")
                .trim_start_matches("negedge ")
                .to_string()
        };
        let mut out = BTreeMap::new();
        for p in &self.critical_paths {
            let (Some(first), Some(last)) = (p.path.first(), p.path.last()) else {
                continue;
            };
            let key = if p.from == p.to {
                clock(&p.from)
            } else {
                format!("{} -> {}", clock(&p.from), clock(&p.to))
            };
            let routing: f64 = p
                .path
                .iter()
                .filter(|s| s.kind == "routing")
                .map(|s| s.delay)
                .sum();
            let total: f64 = p.path.iter().map(|s| s.delay).sum();
            let mut sources: Vec<String> = Vec::new();
            for s in p.path.iter().flat_map(|s| &s.sources) {
                let short = s.rsplit('/').next().unwrap_or(s).to_string();
                if !sources.contains(&short) {
                    sources.push(short);
                }
            }
            let mut cells: Vec<&str> = p.path.iter().map(|s| s.to.cell.as_str()).collect();
            cells.dedup();
            out.insert(
                key,
                CriticalPath {
                    from: format!("{}.{}", first.from.cell, first.from.port),
                    to: format!("{}.{}", last.to.cell, last.to.port),
                    total_ns: round(total),
                    logic_ns: round(total - routing),
                    routing_ns: round(routing),
                    cells: cells.len(),
                    sources,
                },
            );
        }
        out
    }

    /// Fmax per clock net, MHz, to two decimals.
    pub fn fmax_per_clock(&self) -> BTreeMap<String, f64> {
        self.fmax
            .iter()
            .map(|(k, v)| (k.clone(), (v.achieved * 100.0).round() / 100.0))
            .collect()
    }
}

/// The placer's Fmax per clock from nextpnr's log (`Info: Max frequency for clock
/// 'NAME': F MHz …`), the last estimate of each clock.
pub fn placed_fmax(log: &str) -> BTreeMap<String, f64> {
    let mut fmax = BTreeMap::new();
    for line in log.lines() {
        let Some(rest) = line.split("Max frequency for clock '").nth(1) else {
            continue;
        };
        let Some((clock, after)) = rest.split_once("': ") else {
            continue;
        };
        if let Some(mhz) = after
            .split_whitespace()
            .next()
            .and_then(|f| f.parse::<f64>().ok())
        {
            fmax.insert(clock.to_string(), mhz);
        }
    }
    fmax
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
        let c = cell_counts("LUT4 100\nCCU2C 10\nTRELLIS_FF 7\nDP16KD 300\n");
        let n = needs(Target::Ecp5_85k, &c);
        assert_eq!(
            (n[0].name, n[0].used, n[0].available),
            ("LUTs", 120, 83_640)
        );
        assert_eq!(n[2].used, 300);
    }

    #[test]
    fn nextpnr_reports_give_utilization_and_fmax() {
        let r: PnrReport = serde_json::from_str(
            r#"{"utilization":{"TRELLIS_COMB":{"used":10,"available":100},"DP16KD":{"used":2,"available":208},"EHXPLLL":{"used":0,"available":4}},
                "fmax":{"$glbnet$clk":{"achieved":31.4159,"constraint":25.0}}}"#,
        )
        .unwrap();
        let n = needs(Target::Ecp5_85k, &BTreeMap::new());
        let u = r.utilization(Target::Ecp5_85k, &n);
        assert_eq!(u["luts"], Use::new(10, 100));
        assert_eq!(u["brams"].used, 2);
        assert!(!u.contains_key("EHXPLLL"), "unused cell types are left out");
        assert_eq!(r.fmax_per_clock()["$glbnet$clk"], 31.42);
    }

    #[test]
    fn the_critical_path_splits_into_logic_and_routing() {
        let r: PnrReport = serde_json::from_str(
            r#"{"fmax":{"$glbnet$clk":{"achieved":40.0,"constraint":25.0}},
                "critical_paths":[{"from":"posedge $glbnet$clk","to":"posedge $glbnet$clk","path":[
                  {"type":"clk-to-q","delay":0.5,"from":{"cell":"u_rom.ram","port":"CLKA","loc":[1,2]},"to":{"cell":"u_rom.ram","port":"DOA0","loc":[1,2]}},
                  {"type":"routing","delay":3.25,"net":"wrom_data[3]","sources":["/x/out/rtl/etch_chip.v:120.5-120.9"],"from":{"cell":"u_rom.ram","port":"DOA0","loc":[1,2]},"to":{"cell":"lut_1","port":"A","loc":[9,9]}},
                  {"type":"logic","delay":0.25,"from":{"cell":"lut_1","port":"A","loc":[9,9]},"to":{"cell":"lut_1","port":"Z","loc":[9,9]}},
                  {"type":"routing","delay":1.0,"net":"n","sources":["etch_chip.v:120.5-120.9","etch_lane.v:7.1-7.4"],"from":{"cell":"lut_1","port":"Z","loc":[9,9]},"to":{"cell":"u_lane_0.acc","port":"DI","loc":[9,10]}},
                  {"type":"setup","delay":0.125,"from":{"cell":"u_lane_0.acc","port":"CLK","loc":[9,10]},"to":{"cell":"u_lane_0.acc","port":"DI","loc":[9,10]}}]}]}"#,
        )
        .unwrap();
        let p = &r.critical_paths()["$glbnet$clk"];
        assert_eq!(p.from, "u_rom.ram.CLKA");
        assert_eq!(p.to, "u_lane_0.acc.DI");
        assert_eq!((p.total_ns, p.routing_ns, p.logic_ns), (5.125, 4.25, 0.875));
        assert_eq!(p.cells, 3);
        assert_eq!(
            p.sources,
            ["etch_chip.v:120.5-120.9", "etch_lane.v:7.1-7.4"]
        );
        assert!(PnrReport::default().critical_paths().is_empty());
    }

    #[test]
    fn the_placers_fmax_is_read_off_the_log() {
        let log = "Info: Max frequency for clock '$glbnet$clk': 30.10 MHz (PASS at 25.00 MHz)\n\
                   Info: something else\n\
                   Info: Max frequency for clock '$glbnet$clk': 34.08 MHz (PASS at 25.00 MHz)\n";
        let f = placed_fmax(log);
        assert_eq!(f.len(), 1);
        assert_eq!(f["$glbnet$clk"], 34.08);
        assert!(placed_fmax("no timing here").is_empty());
    }
}
