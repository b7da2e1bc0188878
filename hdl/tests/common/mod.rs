//! What the hardware tests share: Verilator's lint over generated Verilog.

use std::path::Path;
use std::process::{Command, Output};

/// `verilator --lint-only -Wall -Wno-DECLFILENAME [--top-module TOP] FILES…`.
pub fn verilator_lint<P: AsRef<Path>>(files: &[P], top: Option<&str>) -> Output {
    let mut cmd = Command::new("verilator");
    cmd.args(["--lint-only", "-Wall", "-Wno-DECLFILENAME"]);
    if let Some(top) = top {
        cmd.args(["--top-module", top]);
    }
    for f in files {
        cmd.arg(f.as_ref());
    }
    cmd.output()
        .expect("run verilator (scripts/setup installs it)")
}
