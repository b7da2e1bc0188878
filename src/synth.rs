//! `etch synth`: the flags of the FPGA flow (crate `etch-fpga`), a spinner while its
//! tools run, and the report printed.

use etch_fpga::{Board, Report, Request, Target};

use crate::error::CliResult;
use crate::output::{print_json, spinner, Stages};
use crate::SynthArgs;

/// `etch synth`.
pub fn synth(a: &SynthArgs) -> CliResult {
    if a.target.as_deref() == Some("asic-estimate") {
        return asic_estimate(a);
    }
    let req = Request {
        out: a.out.clone(),
        target: a.target.as_deref().map(str::parse::<Target>).transpose()?,
        board: a.board.as_deref().map(str::parse::<Board>).transpose()?,
        freq_mhz: a.freq,
        baud: a.baud,
        quick: a.quick,
        synth_only: a.synth_only,
        place_only: a.place_only,
        placer: a.placer,
        router: a.router,
        seed: a.seed,
        nextpnr_args: nextpnr_args_from_env(),
    };
    let plan = req.plan()?;
    let mut stages = Stages::new(&format!("synthesizing for {}", plan.target));
    let report = etch_fpga::synthesize(&req, &mut |msg| stages.say(msg));
    stages.finish();
    let report = report?;
    if a.json {
        return print_json(&report);
    }
    print_report(a, &report);
    Ok(())
}

/// Extra nextpnr options from the environment, for `etch synth` and `etch bench
/// --board` (`ETCH_NEXTPNR_ARGS="--placer-heap-beta 0.5"`; the seed is `--seed`'s).
pub fn nextpnr_args_from_env() -> Vec<String> {
    std::env::var("ETCH_NEXTPNR_ARGS")
        .map(|s| s.split_whitespace().map(String::from).collect())
        .unwrap_or_default()
}

fn print_report(a: &SynthArgs, report: &Report) {
    let out = &a.out;
    match &report.bitstream {
        Some(b) => println!("{} → {}", out.display(), out.join(b).display()),
        None if report.place_only => println!("{}: placed, not routed", out.display()),
        None => println!("{}: synthesized, not placed and routed", out.display()),
    }
    println!(
        "  target       {} ({}){}",
        report.target,
        report.package,
        report
            .board
            .map_or(String::new(), |b| format!(", board {}", b.name()))
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
        let kind = if report.place_only {
            ", the placer's estimate"
        } else {
            ""
        };
        println!(
            "  fmax         {fmax:.2} MHz ({verdict} at {} MHz{kind})",
            report.freq_mhz
        );
    }
    println!(
        "  link         {} baud (divisor {}): etch run --device serial:PORT,{}",
        report.baud, report.uart_divisor, report.baud
    );
    let router = match (report.placer, report.router, report.seed) {
        (Some(p), Some(r), Some(seed)) => {
            format!(" ({} placer, {}, seed {seed})", p.name(), r.name())
        }
        _ => String::new(),
    };
    println!(
        "  time         synth {:.0} s, place and route {:.0} s{router}, pack {:.0} s",
        report.seconds.synth, report.seconds.pnr, report.seconds.pack
    );
}

/// `etch synth OUT --target asic-estimate`: transistors of the logic, ROM and SRAM.
fn asic_estimate(a: &SynthArgs) -> CliResult {
    if a.board.is_some() || a.freq.is_some() || a.quick || a.synth_only || a.place_only {
        return Err(crate::error::CliError::Usage(
            "--target asic-estimate takes no --board, --freq, --quick, --synth-only or --place-only"
                .into(),
        ));
    }
    let bar = spinner("estimating the chip in silicon");
    let e = etch_fpga::asic::estimate(&a.out, &mut |msg| bar.set_message(msg.to_string()));
    bar.finish_and_clear();
    let e = e?;
    if a.json {
        return print_json(&e);
    }
    let m = |n: u64| n as f64 / 1e6;
    println!("{} lanes, {} parameters", e.lanes, e.parameters);
    println!(
        "  logic   {:>10.2} M transistors (yosys stat -tech cmos)",
        m(e.logic_transistors)
    );
    println!(
        "  ROM     {:>10.2} M transistors ({} bits, one each)",
        m(e.rom_bits),
        e.rom_bits
    );
    println!(
        "  SRAM    {:>10.2} M transistors ({} bits, six each)",
        m(6 * e.sram_bits),
        e.sram_bits
    );
    println!(
        "  total   {:>10.2} M transistors, {:.1} per parameter ({:.0} s of yosys)",
        m(e.total_transistors),
        e.transistors_per_parameter,
        e.seconds
    );
    Ok(())
}
