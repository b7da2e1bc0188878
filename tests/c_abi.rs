//! The runtime's C ABI: the example in `host-runtime/examples/story.c`, compiled with
//! the system C compiler against the cbindgen header and the cdylib, opens the
//! simulated chip over vfio-user (`etch serve`), tells a story and scores a sentence —
//! the ids `etch sim` gives and the score the Rust API gives. And the system calls'
//! C ABI: `agent/examples/syscall.c` stages, approves and verifies. Both are built twice:
//! against the workspace's `target/release`, and as an agent OS would, against a prefix
//! that `cargo cinstall` (cargo-c) installed, with `cc $(pkg-config --cflags --libs …)`
//! and nothing else.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::small_chip;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Holds the only cargo build this test process runs at a time (the machine has 2 cores).
fn one_cargo_build() -> std::sync::MutexGuard<'static, ()> {
    static CARGO: std::sync::Mutex<()> = std::sync::Mutex::new(());
    CARGO.lock().unwrap_or_else(|e| e.into_inner())
}

/// `libetch_runtime.so` or `libetch_agent.so`: `cargo test` builds only the rlib of a
/// dependency, so the cdylibs are built here, once per test process, by the build
/// scripts/setup runs (the same packages, so the same features: what setup built is
/// fresh and reused), libraries only: building the `etch` binary too would put setup's
/// in place of the one the tests run, which has the test hooks.
fn cdylib(package: &str) -> PathBuf {
    static BUILT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ok = *BUILT.get_or_init(|| {
        let _one_build = one_cargo_build();
        Command::new(env!("CARGO"))
            .args([
                "build",
                "--release",
                "-j",
                "2",
                "--quiet",
                "-p",
                "etch",
                "-p",
                "etch-runtime",
                "-p",
                "etch-agent",
                "--lib",
            ])
            .current_dir(root())
            .status()
            .unwrap()
            .success()
    });
    assert!(ok, "cargo build of the C libraries failed");
    let lib = root().join(format!(
        "target/release/lib{}.so",
        package.replace('-', "_")
    ));
    assert!(lib.exists(), "{} was not built", lib.display());
    lib
}

/// How a C program is built against the library: include flags and link flags.
struct Linkage {
    cflags: Vec<String>,
    libs: Vec<String>,
}

/// The workspace's header and `target/release` cdylib of `package` (in `krate/`).
fn workspace(krate: &str, package: &str) -> Linkage {
    let lib = cdylib(package);
    Linkage {
        cflags: vec![format!(
            "-I{}",
            root().join(krate).join("include").display()
        )],
        libs: vec![
            format!("-L{}", lib.parent().unwrap().display()),
            format!("-l{}", package.replace('-', "_")),
        ],
    }
}

/// A prefix holding both libraries as `cargo cinstall` installs them, once per test
/// process: `PREFIX/lib/lib*.so*` and `.a`, `PREFIX/include/*.h`,
/// `PREFIX/lib/pkgconfig/*.pc`.
fn installed_prefix() -> &'static Path {
    static PREFIX: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    PREFIX
        .get_or_init(|| {
            let prefix = tempfile::tempdir().unwrap();
            let _one_build = one_cargo_build();
            // One package per run: cargo-c turns a package it builds into a C library
            // only, so etch-agent could not link etch-runtime's rlib in the same run.
            for package in ["etch-runtime", "etch-agent"] {
                let out = Command::new(env!("CARGO"))
                    .args(["cinstall", "--release", "-j", "2", "-p", package, "--prefix"])
                    .arg(prefix.path())
                    .arg("--libdir")
                    .arg(prefix.path().join("lib"))
                    .current_dir(root())
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "cargo cinstall -p {package} failed (cargo-c is installed by scripts/setup):\n{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            prefix
        })
        .path()
}

/// `pkg-config` for `package` in the installed prefix.
fn pkg_config(package: &str) -> Linkage {
    let prefix = installed_prefix();
    let query = |flag: &str| -> Vec<String> {
        let out = Command::new("pkg-config")
            .arg(flag)
            .arg(package)
            .env("PKG_CONFIG_PATH", prefix.join("lib/pkgconfig"))
            .output()
            .expect("pkg-config runs");
        assert!(
            out.status.success(),
            "pkg-config {flag} {package}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .split_whitespace()
            .map(String::from)
            .collect()
    };
    Linkage {
        cflags: query("--cflags"),
        libs: query("--libs"),
    }
}

/// Compiles `CRATE/examples/NAME.c` with `link`'s flags only.
fn compile(dir: &Path, krate: &str, name: &str, link: &Linkage) -> PathBuf {
    let exe = dir.join(name);
    let out = Command::new("cc")
        .arg("-std=c99")
        .arg("-Wall")
        .arg("-Werror")
        .args(&link.cflags)
        .arg(
            root()
                .join(krate)
                .join("examples")
                .join(format!("{name}.c")),
        )
        .args(&link.libs)
        .arg("-o")
        .arg(&exe)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cc failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    exe
}

fn compile_example(dir: &Path) -> PathBuf {
    compile(
        dir,
        "host-runtime",
        "story",
        &workspace("host-runtime", "etch-runtime"),
    )
}

#[test]
fn the_c_example_tells_the_story_etch_sim_tells() {
    let dir = tempfile::tempdir().unwrap();
    let exe = compile_example(dir.path());
    tells_the_story(dir.path(), &exe, cdylib("etch-runtime").parent().unwrap());
}

#[test]
fn the_c_examples_build_against_an_installed_prefix_with_pkg_config_only() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = installed_prefix();
    for file in [
        "include/etch.h",
        "include/etch_agent.h",
        "lib/libetch_runtime.a",
        "lib/libetch_agent.a",
        "lib/pkgconfig/etch-runtime.pc",
        "lib/pkgconfig/etch-agent.pc",
    ] {
        assert!(
            prefix.join(file).is_file(),
            "cargo cinstall installed {file}"
        );
    }
    for (package, soname) in [
        ("etch-runtime", "libetch_runtime.so.0.1"),
        ("etch-agent", "libetch_agent.so.0.1"),
    ] {
        let version = Command::new("pkg-config")
            .args(["--modversion", package])
            .env("PKG_CONFIG_PATH", prefix.join("lib/pkgconfig"))
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&version.stdout).trim(),
            env!("CARGO_PKG_VERSION")
        );
        let elf = Command::new("readelf")
            .arg("-d")
            .arg(prefix.join("lib").join(soname))
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&elf.stdout).contains(&format!("Library soname: [{soname}]")),
            "{package}'s shared library carries its soname"
        );
    }
    let story = compile(
        dir.path(),
        "host-runtime",
        "story",
        &pkg_config("etch-runtime"),
    );
    tells_the_story(dir.path(), &story, &prefix.join("lib"));
    let syscall = compile(dir.path(), "agent", "syscall", &pkg_config("etch-agent"));
    makes_a_system_call(dir.path(), &syscall, &prefix.join("lib"));
}

/// Runs the story example (built against the library in `libdir`) on a served chip and
/// checks it against `etch sim` and the Rust API.
fn tells_the_story(dir: &Path, exe: &Path, libdir: &Path) {
    let (out, m) = small_chip(dir);

    let socket = dir.join("chip.sock");
    let mut server = Command::new(env!("CARGO_BIN_EXE_etch"))
        .args(["serve", out.to_str().unwrap(), "--socket"])
        .arg(&socket)
        .env("ETCH_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while std::os::unix::net::UnixStream::connect(&socket).is_err() {
        assert!(matches!(server.try_wait(), Ok(None)), "etch serve exited");
        assert!(start.elapsed() < Duration::from_secs(300));
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(200));

    let run = Command::new(exe)
        .arg(format!("vfio-user:{}", socket.display()))
        .arg(&out)
        .arg("the cat")
        .arg("24")
        .env("LD_LIBRARY_PATH", libdir)
        .output()
        .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    assert!(
        run.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );

    let sim = Command::new(env!("CARGO_BIN_EXE_etch"))
        .args([
            "sim",
            out.to_str().unwrap(),
            "-i",
            "the cat",
            "-n",
            "24",
            "-t",
            "0",
            "--json",
        ])
        .output()
        .unwrap();
    let sim: serde_json::Value = serde_json::from_slice(&sim.stdout).unwrap();
    let want: Vec<String> = sim["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.to_string())
        .collect();
    let ids_line = stdout
        .lines()
        .find(|l| l.starts_with("ids:"))
        .expect("an ids line");
    let got: Vec<String> = ids_line[4..].split_whitespace().map(String::from).collect();
    assert_eq!(got, want);
    assert!(
        stdout.starts_with(sim["text"].as_str().unwrap()),
        "{stdout}"
    );

    // The score the Rust API computes for the same text.
    let dev = etch_driver::InProcess::open(&out, &m.design_hash).unwrap();
    let e =
        etch_runtime::Engine::open(dev, &out, None, etch_driver::Timeout::Slices(2000)).unwrap();
    let want = e.score("the cat").unwrap().total;
    let line = stdout.lines().find(|l| l.starts_with("score:")).unwrap();
    let got: f64 = line[6..].trim().parse().unwrap();
    assert!((got - want).abs() < 1e-5, "{got} vs {want}");
}

#[test]
fn the_c_abi_reports_errors_in_english() {
    let dir = tempfile::tempdir().unwrap();
    let exe = compile_example(dir.path());
    let run = Command::new(&exe)
        .args(["usb:nothing", "/nonexistent", "x", "4"])
        .env("LD_LIBRARY_PATH", cdylib("etch-runtime").parent().unwrap())
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(1));
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(err.contains("expected sim:OUT"), "{err}");
}

#[test]
fn the_c_example_makes_a_system_call_and_approves_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let exe = compile(
        dir.path(),
        "agent",
        "syscall",
        &workspace("agent", "etch-agent"),
    );
    makes_a_system_call(dir.path(), &exe, cdylib("etch-agent").parent().unwrap());
}

/// Runs the system-call example (built against the library in `libdir`): stage, approve,
/// verify the audit log, a denial, an English error.
fn makes_a_system_call(dir: &Path, exe: &Path, libdir: &Path) {
    let ws = dir.join("ws");
    std::fs::create_dir_all(&ws).unwrap();
    let state = dir.join("state");
    let mint = Command::new(env!("CARGO_BIN_EXE_etch"))
        .args(["cap", "mint", "--agent", "alice", "--workspace"])
        .arg(&ws)
        .env("ETCH_STATE", &state)
        .output()
        .unwrap();
    assert!(mint.status.success());
    let token = String::from_utf8(mint.stdout).unwrap();
    let run = |request: &str| {
        Command::new(exe)
            .arg(&state)
            .arg("alice")
            .arg(token.trim())
            .arg(&ws)
            .arg(request)
            .arg("approve")
            .env("LD_LIBRARY_PATH", libdir)
            .output()
            .unwrap()
    };
    let o = run("send a message to bob saying hello from C");
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    let staged: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(staged["status"], "staged");
    let done: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
    assert_eq!(done["status"], "executed");
    assert!(lines[2].contains("not waiting for approval"), "{stdout}");
    assert_eq!(lines[3], "audit: intact");
    assert_eq!(std::fs::read_dir(state.join("outbox")).unwrap().count(), 1);
    // A denial is an answer, not a failure.
    let o = run("run rm -rf /");
    let v: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&o.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(v["status"], "denied");
    // A bad state directory is an English error.
    let o = Command::new(exe)
        .args(["/proc/nonexistent/state", "alice", "t", "/", "list files"])
        .env("LD_LIBRARY_PATH", libdir)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot create /proc/nonexistent/state"));
}
