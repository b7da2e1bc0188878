//! `etch chat`: a conversation with a chip that remembers — the runtime's contexts,
//! kept under a state directory across runs.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::time::Duration;

use etch_runtime::{DeviceSpec, Engine, GenOptions};

use crate::chip::{report, RunReport};
use crate::error::{CliError, CliResult};
use crate::output::write_stdout;

/// `etch chat`.
pub fn chat(a: &crate::ChatArgs) -> CliResult {
    crate::run::init_logging("warn");
    let engine = open_engine(
        &a.device,
        a.manifest.as_deref(),
        a.timeout,
        &a.sysfs,
        Some(&a.state),
    )?;
    let s = &a.sampling;
    if !s.json {
        engine.on_event(|e| eprintln!("etch: {}", e.describe()));
    }
    if let Some(system) = &a.system {
        if engine.context_tokens(&a.agent, &a.context)?.is_none() {
            engine.set_system(&a.agent, &a.context, system)?;
        }
    }
    let opts = GenOptions {
        max_tokens: s.steps.max(1),
        temperature: s.temperature,
        topp: s.topp,
        seed: s.seed,
        stop: a.stop.clone(),
    };
    let result = if s.prompt.is_empty() {
        repl(&engine, a, &opts)
    } else {
        turn(&engine, a, &opts, &s.prompt, s.json)
    };
    // Whatever happened, the conversation so far is kept.
    let kept = engine.persist();
    result?;
    kept?;
    Ok(())
}

/// Opens an engine on a device given as on the command line: `out` is the build
/// directory of `sim:` devices unless `manifest` names one (required for the others);
/// `state` persists contexts.
pub fn open_engine(
    device: &str,
    manifest: Option<&Path>,
    timeout_s: f64,
    sysfs: &Path,
    state: Option<&Path>,
) -> CliResult<Engine<Box<dyn etch_driver::Device>>> {
    let spec = DeviceSpec::parse(device)?;
    let out = match (spec.build_dir(), manifest) {
        (_, Some(m)) => m.to_path_buf(),
        (Some(out), None) => out.to_path_buf(),
        _ => {
            return Err(CliError::Usage(
                "--manifest OUT is required with vfio-user:, vfio: and serial: devices".into(),
            ))
        }
    };
    let timeout = Duration::from_secs_f64(timeout_s.max(0.001));
    let bar = crate::output::spinner("opening the device");
    let opened = spec.open(timeout, sysfs);
    bar.finish_and_clear();
    let (dev, timeout) = opened?;
    Ok(Engine::open(dev, &out, state, timeout)?)
}

fn turn<D: etch_driver::Device>(
    engine: &Engine<D>,
    a: &crate::ChatArgs,
    opts: &GenOptions,
    text: &str,
    json: bool,
) -> CliResult {
    let c0 = engine.chip().cycles()?;
    let reply = engine.chat(&a.agent, &a.context, text, opts, &mut |t| {
        if !json {
            write_stdout(t.as_bytes());
        }
    })?;
    let cycles = engine.chip().cycles()? - c0;
    let g = etch_compiler::Generation {
        prompt_ids: reply.fed.clone(),
        ids: reply.ids.clone(),
        text: reply.text.clone().into_bytes(),
    };
    report(
        &RunReport {
            generation: &g,
            cycles,
            lanes: engine.manifest().lanes,
            profile: None,
            limit: None,
            wall: None,
        },
        json,
    )
}

fn repl<D: etch_driver::Device>(
    engine: &Engine<D>,
    a: &crate::ChatArgs,
    opts: &GenOptions,
) -> CliResult {
    let tty = std::io::stdin().is_terminal();
    let held = engine
        .context_tokens(&a.agent, &a.context)?
        .map_or(0, |t| t.len());
    eprintln!(
        "etch chat: context {}/{} ({held} tokens so far) on {}; /quit or end of input to stop, /forget to start over",
        a.agent, a.context, a.device
    );
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    loop {
        if tty {
            eprint!("> ");
            let _ = std::io::stderr().flush();
        }
        let Some(line) = lines.next() else { break };
        let line = line.map_err(|e| CliError::Io {
            action: "read",
            path: "standard input".into(),
            source: e,
        })?;
        match line.trim() {
            "" => continue,
            "/quit" => break,
            "/forget" => {
                engine.forget(&a.agent, &a.context)?;
                eprintln!("etch: forgot context {}/{}", a.agent, a.context);
                continue;
            }
            _ => {}
        }
        match engine.chat(&a.agent, &a.context, &line, opts, &mut |t| {
            write_stdout(t.as_bytes())
        }) {
            Ok(_) => write_stdout(b"\n"),
            // A refused turn (too long, …) is reported and the conversation goes on.
            Err(etch_runtime::RuntimeError::InvalidArgument(msg)) => eprintln!("etch: {msg}"),
            Err(e) => return Err(e.into()),
        }
        engine.persist()?;
    }
    Ok(())
}
