//! Printing for people and for scripts: JSON on stdout, progress on stderr.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::error::{CliError, CliResult};

/// Prints one JSON object on stdout.
pub fn print_json(value: &impl Serialize) -> CliResult {
    let text = serde_json::to_string(value).map_err(|e| CliError::Internal(e.to_string()))?;
    println!("{text}");
    Ok(())
}

/// Writes raw bytes to stdout and flushes (streamed generation, as run.c prints).
pub fn write_stdout(bytes: &[u8]) {
    let mut out = std::io::stdout().lock();
    // A closed pipe is not worth a panic: the text is also kept in the result.
    let _ = out.write_all(bytes);
    let _ = out.flush();
}

/// A progress bar on stderr (invisible when stderr is not a terminal).
pub fn progress(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template("{msg:>12} [{bar:30}] {pos}/{len} {elapsed}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_string());
    bar
}

/// A spinner on stderr for work of unknown length.
pub fn spinner(what: &str) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
        bar.set_style(style);
    }
    bar.set_message(what.to_string());
    bar.enable_steady_tick(std::time::Duration::from_millis(100));
    bar
}

/// Progress of a long run of stages — synthesis, placement, routing — on stderr: a
/// spinner on a terminal; elsewhere (nohup, CI, a pipe) one line per stage with the
/// seconds since the start, and at most one a minute while a stage only counts (the
/// router's queued arcs), so that an hour-long route says where it is.
pub struct Stages {
    bar: Option<ProgressBar>,
    start: Instant,
    /// The last printed message without its numbers, and when it was printed.
    stage: String,
    printed: Instant,
}

impl Stages {
    /// Starts with `what` (on the spinner only: a line waits for the first stage, so
    /// that a request refused before any work is still one line of error).
    pub fn new(what: &str) -> Self {
        Stages {
            bar: std::io::stderr().is_terminal().then(|| spinner(what)),
            start: Instant::now(),
            stage: String::new(),
            printed: Instant::now(),
        }
    }

    /// The current stage.
    pub fn say(&mut self, msg: &str) {
        if let Some(bar) = &self.bar {
            bar.set_message(msg.to_string());
            return;
        }
        let stage = stage_of(msg);
        let due = self.printed.elapsed() >= Duration::from_secs(60);
        if stage != self.stage || due {
            eprintln!("etch: [{:>5} s] {msg}", self.start.elapsed().as_secs());
            self.stage = stage;
            self.printed = Instant::now();
        }
    }

    /// Clears the spinner.
    pub fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}

/// A progress message without its numbers: what stays the same while a stage counts
/// (`routing: 60,863 arcs still queued` and `routing: 59,120 arcs still queued` are
/// one stage).
fn stage_of(msg: &str) -> String {
    msg.chars()
        .filter(|c| !c.is_ascii_digit() && *c != ',' && *c != '.')
        .collect()
}

#[cfg(test)]
mod tests {
    use super::stage_of;

    #[test]
    fn a_stage_is_its_message_without_numbers() {
        assert_eq!(
            stage_of("nextpnr: routing: 60,863 arcs still queued"),
            stage_of("nextpnr: routing: 59120 arcs still queued")
        );
        assert_eq!(
            stage_of("nextpnr: placing (annealing), iteration 1, wirelength 396727"),
            stage_of("nextpnr: placing (annealing), iteration 15, wirelength 370663")
        );
        assert_ne!(
            stage_of("nextpnr: placing (analytical), iteration 81"),
            stage_of("nextpnr: placing (annealing), iteration 1, wirelength 396727")
        );
        assert_ne!(
            stage_of("yosys: synthesizing for ecp5-85k"),
            stage_of("nextpnr: placing and routing on ecp5-85k")
        );
    }
}
