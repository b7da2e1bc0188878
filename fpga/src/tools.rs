//! The open tools, from the YoWASP virtualenv: finding them, running them with their
//! output in a log, and following nextpnr's log for progress.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{FpgaError, Result};

/// A YoWASP tool: `$ETCH_VENV/bin`, then `.venv/bin` beside the executable or the
/// current directory or any of their ancestors, then `PATH`.
pub fn tool(name: &str) -> Result<PathBuf> {
    let exe = format!("yowasp-{name}");
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(v) = std::env::var_os("ETCH_VENV") {
        dirs.push(PathBuf::from(v).join("bin"));
    }
    let starts = [std::env::current_exe().ok(), std::env::current_dir().ok()];
    for s in starts.into_iter().flatten() {
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
            FpgaError::Tool(format!(
                "{exe} was not found: run scripts/setup (it installs the YoWASP tools into .venv), or set ETCH_VENV"
            ))
        })
}

/// Reads a tool's phase off one line of its log.
pub type Phase = fn(&str) -> Option<String>;

/// One run of a tool.
pub struct Run<'a> {
    /// The program.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Its working directory.
    pub dir: &'a Path,
    /// Where its standard output and error go.
    pub log: PathBuf,
    /// Its name in messages.
    pub what: &'a str,
}

impl Run<'_> {
    /// Runs the tool to its end; an error quotes the log's end. With `follow`, each
    /// newest log line that `phase` understands is passed to `progress` (every 250 ms).
    pub fn run(&self, follow: Option<Phase>, progress: &mut dyn FnMut(&str)) -> Result<()> {
        let file =
            std::fs::File::create(&self.log).map_err(|e| FpgaError::io("write", &self.log, e))?;
        let err = file
            .try_clone()
            .map_err(|e| FpgaError::io("write", &self.log, e))?;
        let mut child = Command::new(&self.program)
            .args(&self.args)
            .current_dir(self.dir)
            .stdout(file)
            .stderr(err)
            .spawn()
            .map_err(|e| FpgaError::Tool(format!("cannot run {}: {e}", self.program.display())))?;
        let mut tail = follow.and_then(|_| LogTail::open(&self.log).ok());
        let status = loop {
            let done = child
                .try_wait()
                .map_err(|e| FpgaError::Tool(format!("cannot wait for {}: {e}", self.what)))?;
            if let (Some(phase), Some(tail)) = (follow, tail.as_mut()) {
                if let Some(msg) = tail.read().iter().rev().find_map(|l| phase(l)) {
                    tracing::debug!("{}: {msg}", self.what);
                    progress(&format!("{}: {msg}", self.what));
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
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(12).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        Err(FpgaError::Tool(format!(
            "{} failed ({status}); the end of {}:\n{}",
            self.what,
            self.log.display(),
            tail.join("\n")
        )))
    }
}

/// The lines a log file gained since the last read (a line still being written waits
/// for its end): the open file keeps the place.
pub struct LogTail {
    file: std::fs::File,
    partial: Vec<u8>,
}

impl LogTail {
    /// Follows `log` from its start.
    pub fn open(log: &Path) -> std::io::Result<Self> {
        Ok(LogTail {
            file: std::fs::File::open(log)?,
            partial: Vec::new(),
        })
    }

    /// The whole lines written since the last call.
    pub fn read(&mut self) -> Vec<String> {
        use std::io::Read;
        // The log is the tool's; a read that fails only leaves the progress as it was.
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
/// iterations, router1's arcs still queued, router2's iterations with the wires still
/// overused.
pub fn nextpnr_phase(line: &str) -> Option<String> {
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
    } else if let Some(arcs) = line
        .strip_prefix("Routing ")
        .and_then(|r| r.strip_suffix(" arcs."))
    {
        Some(format!("routing {arcs} arcs"))
    } else if let Some(queued) = router1_queued(line) {
        Some(format!("routing: {queued} arcs still queued"))
    } else if line.starts_with("Running router1 to check") {
        Some("routing: checking the route".into())
    } else if line.starts_with("Routing complete") {
        Some("timing analysis".into())
    } else {
        None
    }
}

/// router1's progress line, `iterations | routed ripped | … | queued | time`: the arcs
/// still queued.
fn router1_queued(line: &str) -> Option<u64> {
    let fields: Vec<&str> = line.split('|').map(str::trim).collect();
    if fields.len() < 5 || fields[0].parse::<u64>().is_err() {
        return None;
    }
    fields[3].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

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
            "Info: Routing 116329 arcs.",
            "Info:      56000 |     9890      46109 |  189   811 |     78966|       0.92      40.05|",
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
            Some("routing 116329 arcs"),
            Some("routing: 78966 arcs still queued"),
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
