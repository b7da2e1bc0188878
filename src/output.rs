//! Printing for people and for scripts: JSON on stdout, progress on stderr.

use std::io::Write;

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
