//! `etch serve`, `etch run` and `etch devices`: the chip as a device outside the
//! command that uses it.

use std::time::{Duration, Instant};

use etch_driver::{Chip, Completions, Device, Timeout};
use serde::Serialize;

use crate::chip::{chip_generate, expected, report, RunReport};
use crate::error::{CliError, CliResult};
use crate::output::print_json;

/// Sends `tracing` output to stderr: `ETCH_LOG` (e.g. `debug`, `etch_sim=trace`) or
/// `default`.
pub fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ETCH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// `etch serve`.
pub fn serve(a: &crate::ServeArgs) -> CliResult {
    init_logging("info");
    let manifest = etch_compiler::chip::Manifest::load(&a.out)?;
    match (&a.socket, &a.pty) {
        (Some(socket), None) => {
            let bar = crate::output::spinner("building the simulator (cached per design)");
            let lib = etch_sim::build(&a.out, &manifest.design_hash);
            bar.finish_and_clear();
            let lib = lib.map_err(etch_driver::DriverError::from)?;
            eprintln!(
                "etch: serving the chip of {} on {} (vfio-user; Ctrl-C stops)",
                a.out.display(),
                socket.display()
            );
            etch_sim::server::serve(&lib, &a.out, socket, a.once)
                .map_err(|e| CliError::Driver(e.into()))
        }
        (None, Some(link)) => {
            if a.once {
                return Err(CliError::Usage(
                    "--once needs --socket: a pseudo-terminal has no connections to count"
                        .into(),
                ));
            }
            let divisor = etch_sim::board::SIM_DIVISOR;
            let bar = crate::output::spinner("building the board simulator (cached per design)");
            let lib = etch_sim::build_board(&a.out, &manifest.design_hash, divisor);
            bar.finish_and_clear();
            let lib = lib.map_err(etch_driver::DriverError::from)?;
            let stop = std::sync::atomic::AtomicBool::new(false);
            etch_sim::board::serve_pty(&a.out, &lib, link, divisor, &stop, &mut |pty| {
                eprintln!(
                    "etch: serving the board top of {} on {} → {} (UART bridge, {divisor} cycles per bit; Ctrl-C stops)",
                    a.out.display(),
                    link.display(),
                    pty.display()
                );
            })
            .map_err(|e| CliError::Driver(e.into()))
        }
        _ => Err(CliError::Usage(
            "name exactly one of --socket PATH (vfio-user) and --pty PATH (the board top over a serial line)".into(),
        )),
    }
}

/// `etch run`.
pub fn run(a: &crate::RunArgs) -> CliResult {
    init_logging("warn");
    let spec = etch_runtime::DeviceSpec::parse(&a.device)?;
    let out = match (spec.build_dir(), &a.manifest) {
        (_, Some(m)) => m.clone(),
        (Some(out), None) => out.to_path_buf(),
        _ => return Err(CliError::Usage(
            "--manifest OUT is required with vfio-user:, vfio: and serial: devices (it names the \
                 tokenizer and the model identity to check)"
                .into(),
        )),
    };
    let manifest = etch_compiler::chip::Manifest::load(&out)?;
    let tokenizer =
        etch_compiler::Tokenizer::open(out.join(&manifest.tokenizer), manifest.config.vocab_size)?;
    let exp = expected(&manifest)?;
    let timeout = Duration::from_secs_f64(a.timeout.max(0.001));
    let bar = crate::output::spinner("opening the device");
    let opened = spec.open(timeout, &a.sysfs);
    bar.finish_and_clear();
    let (dev, timeout) = opened?;
    drive(a, dev, &exp, timeout, &manifest, &tokenizer)
}

fn drive<D: Device>(
    a: &crate::RunArgs,
    dev: D,
    exp: &etch_driver::Expected,
    timeout: Timeout,
    manifest: &etch_compiler::chip::Manifest,
    tokenizer: &etch_compiler::Tokenizer,
) -> CliResult {
    let chip = Chip::open_with(dev, Some(exp), timeout)?;
    if a.polled {
        chip.set_completions(Completions::Polled);
    }
    let json = a.sampling.json;
    let start = Instant::now();
    let (g, cycles) = chip_generate(&chip, tokenizer, &a.sampling, &mut |piece| {
        if !json {
            crate::output::write_stdout(piece);
        }
    })?;
    let secs = start.elapsed().as_secs_f64();
    report(
        &RunReport {
            generation: &g,
            cycles,
            lanes: manifest.lanes,
            profile: None,
            limit: None,
            wall: Some((&a.device, secs)),
        },
        json,
    )
}

#[derive(Serialize)]
struct DeviceJson<'a> {
    #[serde(flatten)]
    function: &'a etch_driver::sysfs::PciFunction,
    usable: bool,
    problem: Option<String>,
}

/// `etch devices`.
pub fn devices(a: &crate::DevicesArgs) -> CliResult {
    let found = etch_driver::sysfs::etch_devices(&a.sysfs)?;
    let dev_vfio = a.dev_vfio.clone();
    let rows: Vec<DeviceJson> = found
        .iter()
        .map(|f| {
            let problem = f.problem(&dev_vfio);
            DeviceJson {
                function: f,
                usable: problem.is_none(),
                problem,
            }
        })
        .collect();
    if a.json {
        return print_json(&rows);
    }
    if rows.is_empty() {
        println!(
            "no etch devices ({:04x}:{:04x}) under {}",
            etch_firmware::regs::pci::VENDOR_ID,
            etch_firmware::regs::pci::DEVICE_ID,
            a.sysfs.display()
        );
        return Ok(());
    }
    println!("{:<14} {:<10} {:>6}  status", "address", "driver", "group");
    for r in &rows {
        let f = r.function;
        println!(
            "{:<14} {:<10} {:>6}  {}",
            f.address,
            f.driver.as_deref().unwrap_or("-"),
            f.iommu_group.map_or("-".to_string(), |g| g.to_string()),
            match &r.problem {
                None => format!("ready: etch run --device vfio:{}", f.address),
                Some(p) => p.clone(),
            }
        );
    }
    Ok(())
}
