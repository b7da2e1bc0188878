//! # etch-sim: the chip in Verilator, behind a PCIe endpoint model
//!
//! A generated design (`OUT/rtl/*.v`) is compiled by Verilator, together with a small
//! C++ harness (`harness.cpp`), into a shared library, cached by the design's hash so
//! that building the same design again is instant. The harness models only what a
//! PCIe endpoint sees — MMIO into BAR0, DMA into host memory, interrupt lines, the
//! clock — and never computes a model value: every number comes from the RTL.
//!
//! [`Simulator`] loads one such library and drives it: [`Simulator::mmio_read`] and
//! [`Simulator::mmio_write`] for BAR0, [`Simulator::map`] to let the chip's DMA reach a
//! buffer of host memory (accesses outside mapped regions complete with an error that
//! the chip reports), and [`Simulator::run`] to clock it until an interrupt, until it
//! is idle, or for a number of cycles. The ROM contents are read from `OUT/rom/` when
//! the simulator starts.
//!
//! [`board`] simulates the board top instead (the chip behind its UART bridge) and
//! serves it on a pseudo-terminal, for the driver's serial backend.

#![deny(missing_docs)]

pub mod board;
pub mod server;

use std::ffi::{c_char, c_int, c_void, CString};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The C++ harness compiled with every design.
pub const HARNESS_CPP: &str = include_str!("harness.cpp");

/// What can go wrong while building or running a simulator.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// Verilator is missing.
    #[error("verilator is not installed (run scripts/setup): {0}")]
    NoVerilator(std::io::Error),
    /// Verilator or the C++ compiler failed.
    #[error("building the simulator failed:\n{0}")]
    Build(String),
    /// A file could not be read or written.
    #[error("cannot use {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The simulator library could not be loaded.
    #[error("cannot load the simulator library {path}: {message}")]
    Load {
        /// The library.
        path: PathBuf,
        /// What the loader said.
        message: String,
    },
    /// The chip did not answer an MMIO access.
    #[error("the chip did not answer an MMIO access at BAR0 offset {0:#x}")]
    MmioTimeout(u32),
    /// The vfio-user server failed.
    #[error("vfio-user server: {0}")]
    Serve(String),
    /// A pseudo-terminal for the simulated board could not be set up.
    #[error("pseudo-terminal: {0}")]
    Pty(String),
    /// A path could not be passed to the harness.
    #[error("the path {0} contains a NUL byte")]
    BadPath(PathBuf),
}

/// Result alias for the simulator.
pub type Result<T> = std::result::Result<T, SimError>;

fn io(path: &Path, source: std::io::Error) -> SimError {
    SimError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Where compiled simulators are cached: `$ETCH_CACHE`, else `~/.cache/etch`.
pub fn cache_root() -> PathBuf {
    if let Some(p) = std::env::var_os("ETCH_CACHE") {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/tmp"), PathBuf::from);
    home.join(".cache").join("etch")
}

/// FNV-1a of a harness source: part of the cache key, so that a changed harness
/// never reuses a library built with the old one.
fn harness_hash(source: &str) -> u64 {
    source.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// What a simulator library is built around: the top module, the harness, Verilog
/// parameters of the top, its waveform format (part of the cache key), and a tag for
/// the cache key.
struct Variant<'a> {
    top: &'a str,
    harness: &'a str,
    params: Vec<String>,
    waveform: Waveform,
    tag: String,
}

/// The waveform format a simulator library writes ([`Simulator::trace`]): Verilator
/// compiles one format into a model, or none, so each is a library of its own in the
/// cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Waveform {
    /// No waveform: the model compiles in about a third of the time of a traced one
    /// (24 s against 74 s for stories260K's chip on 2 cores) and
    /// [`Simulator::trace`] refuses.
    #[default]
    Off,
    /// Value change dump, readable by every viewer.
    Vcd,
    /// GTKWave's compressed Fast Signal Trace (GTKWave, Surfer): a fraction of the size.
    Fst,
}

impl Waveform {
    /// The format a waveform file's name asks for: `.fst` is FST, anything else VCD.
    pub fn for_path(path: &Path) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("fst") => Waveform::Fst,
            _ => Waveform::Vcd,
        }
    }
}

/// The simulator library for the design in `out` (whose Verilog hashes to
/// `design_hash`), without waveforms, compiling it with Verilator unless it is cached.
pub fn build(out: &Path, design_hash: &str) -> Result<PathBuf> {
    build_with(out, design_hash, Waveform::Off)
}

/// [`build`], with the library writing `waveform` when traced.
pub fn build_with(out: &Path, design_hash: &str, waveform: Waveform) -> Result<PathBuf> {
    build_variant(
        out,
        design_hash,
        &Variant {
            top: "etch_chip",
            harness: HARNESS_CPP,
            params: Vec::new(),
            waveform,
            tag: String::new(),
        },
    )
}

/// The library of the design's board top (`etch_board` with `divisor` clock cycles
/// per UART bit) with the board harness, compiled unless cached.
pub fn build_board(out: &Path, design_hash: &str, divisor: u32) -> Result<PathBuf> {
    build_variant(
        out,
        design_hash,
        &Variant {
            top: "etch_board",
            harness: board::BOARD_HARNESS_CPP,
            params: vec![format!("-GDIVISOR=16'd{divisor}")],
            waveform: Waveform::Off,
            tag: format!("-board{divisor}"),
        },
    )
}

fn build_variant(out: &Path, design_hash: &str, v: &Variant) -> Result<PathBuf> {
    // One build at a time in this process (threads asking for the same design wait
    // and then find it cached); other processes are kept apart by their own temporary
    // directory and the atomic rename at the end.
    static BUILDING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = BUILDING.lock().unwrap_or_else(|e| e.into_inner());
    // The format's cache-key suffix, Verilator flag, and C++ compile and link flags.
    let (format, trace, cflags, ldflags) = match v.waveform {
        Waveform::Off => ("", None, "-fPIC -O2", "-shared"),
        Waveform::Vcd => ("-vcd", Some("--trace"), "-fPIC -O2 -DETCH_VCD", "-shared"),
        Waveform::Fst => (
            "-fst",
            Some("--trace-fst"),
            "-fPIC -O2 -DETCH_FST",
            "-shared -lz",
        ),
    };
    let key = format!(
        "{design_hash}-{:016x}{}{format}",
        harness_hash(v.harness),
        v.tag
    );
    let dir = cache_root().join("verilator").join(&key);
    let lib = dir.join("libetchsim.so");
    if lib.exists() {
        return Ok(lib);
    }
    let parent = cache_root().join("verilator");
    std::fs::create_dir_all(&parent).map_err(|e| io(&parent, e))?;
    let tmp = parent.join(format!("{key}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| io(&tmp, e))?;
    let harness = tmp.join("harness.cpp");
    std::fs::write(&harness, v.harness).map_err(|e| io(&harness, e))?;
    let rtl = out.join("rtl");
    let mut sources: Vec<PathBuf> = std::fs::read_dir(&rtl)
        .map_err(|e| io(&rtl, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "v"))
        .collect();
    sources.sort();
    let status = Command::new("verilator")
        .args([
            "--cc",
            "--exe",
            "--build",
            "-j",
            "2",
            "-O3",
            "--x-assign",
            "0",
            "--x-initial",
            "0",
            "--noassert",
            "-Wno-DECLFILENAME",
            "--top-module",
            v.top,
            "-CFLAGS",
            cflags,
            "-LDFLAGS",
            ldflags,
        ])
        .args(trace)
        .arg("-o")
        .arg(lib.file_name().unwrap_or_default())
        .args(&v.params)
        .arg("--Mdir")
        .arg(tmp.join("obj"))
        .args(&sources)
        .arg(&harness)
        .output()
        .map_err(SimError::NoVerilator)?;
    if !status.status.success() {
        let mut text = String::from_utf8_lossy(&status.stderr).into_owned();
        text.push_str(&String::from_utf8_lossy(&status.stdout));
        let tail: Vec<&str> = text.lines().rev().take(40).collect();
        return Err(SimError::Build(
            tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
        ));
    }
    let built = tmp.join("obj").join("libetchsim.so");
    let final_tmp = tmp.join("libetchsim.so");
    std::fs::rename(&built, &final_tmp).map_err(|e| io(&built, e))?;
    let _ = std::fs::remove_dir_all(tmp.join("obj"));
    // Another process may have finished the same design first: either copy is fine.
    if std::fs::rename(&tmp, &dir).is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    if lib.exists() {
        Ok(lib)
    } else {
        Err(SimError::Build(format!(
            "{} was not produced",
            lib.display()
        )))
    }
}

/// What `etch_sim_trace_open` returns from a library built without waveforms.
const NO_WAVEFORM: i32 = 2;

/// A harness library (chip or board), loaded once; its C functions looked up by name.
pub(crate) struct Harness {
    library: libloading::Library,
    path: PathBuf,
}

impl Harness {
    /// Loads the harness library at `lib`.
    pub(crate) fn load(lib: &Path) -> Result<Self> {
        // SAFETY: the library is one etch-sim built from a harness of this crate;
        // loading it runs only Verilator's static constructors.
        let library = unsafe { libloading::Library::new(lib) }.map_err(|e| SimError::Load {
            path: lib.to_path_buf(),
            message: e.to_string(),
        })?;
        Ok(Harness {
            library,
            path: lib.to_path_buf(),
        })
    }

    /// The C function `name` (NUL-terminated) as a function pointer of type `T`, valid
    /// while this harness is alive.
    ///
    /// # Safety
    /// `T` must be the function's exact C signature.
    pub(crate) unsafe fn get<T: Copy>(&self, name: &[u8]) -> Result<T> {
        // SAFETY: the caller vouches for the signature; the pointer is used only while
        // `self` (which owns the library) lives.
        let s: libloading::Symbol<T> =
            unsafe { self.library.get(name) }.map_err(|e| SimError::Load {
                path: self.path.clone(),
                message: e.to_string(),
            })?;
        Ok(*s)
    }
}

/// A path as a C string for a harness.
pub(crate) fn c_path(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_encoded_bytes()).map_err(|_| SimError::BadPath(p.to_path_buf()))
}

type NewFn = unsafe extern "C" fn(*const c_char) -> *mut c_void;
type FreeFn = unsafe extern "C" fn(*mut c_void);
type U32Fn = unsafe extern "C" fn(*mut c_void, u32);
type MapFn = unsafe extern "C" fn(*mut c_void, u64, *mut u8, u64);
type UnmapFn = unsafe extern "C" fn(*mut c_void, u64);
type MmioFn = unsafe extern "C" fn(*mut c_void, u32, c_int, u32, *mut u32) -> c_int;
type RunFn = unsafe extern "C" fn(*mut c_void, u64, u32, c_int, *mut u32, *mut u64) -> c_int;
type U64Fn = unsafe extern "C" fn(*mut c_void) -> u64;
type TraceFn = unsafe extern "C" fn(*mut c_void, *const c_char) -> c_int;

/// Why [`Simulator::run`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// Interrupts were raised (bit per vector).
    Interrupt(u32),
    /// The chip has nothing to do (its sequencer waits for a doorbell).
    Idle,
    /// The cycle budget ran out.
    Budget,
}

/// One simulated chip.
pub struct Simulator {
    handle: *mut c_void,
    free: FreeFn,
    reset: FreeFn,
    latency: U32Fn,
    map: MapFn,
    unmap: UnmapFn,
    mmio: MmioFn,
    run: RunFn,
    cycles: U64Fn,
    dma_errors: U64Fn,
    trace_open: TraceFn,
    trace_close: FreeFn,
    // Keeps the code behind the function pointers loaded; dropped last.
    _lib: Harness,
}

// SAFETY: the harness keeps all its state behind `handle` and has no thread-local or
// global state beyond Verilator's context (one per simulator); moving the simulator to
// another thread is safe as long as one thread uses it at a time, which `&mut self`
// on every entry point guarantees.
unsafe impl Send for Simulator {}

impl Simulator {
    /// Loads the library `lib` and starts the chip of build directory `out` (whose ROM
    /// files it reads), held in reset for four cycles.
    pub fn new(lib: &Path, out: &Path) -> Result<Self> {
        let library = Harness::load(lib)?;
        let out_c = c_path(out)?;
        // SAFETY: every name is a function of harness.cpp with exactly the C signature
        // of the field it fills.
        let (new, mut sim) = unsafe {
            let new: NewFn = library.get(b"etch_sim_new\0")?;
            let sim = Simulator {
                handle: std::ptr::null_mut(),
                free: library.get(b"etch_sim_free\0")?,
                reset: library.get(b"etch_sim_reset\0")?,
                latency: library.get(b"etch_sim_set_dma_latency\0")?,
                map: library.get(b"etch_sim_map\0")?,
                unmap: library.get(b"etch_sim_unmap\0")?,
                mmio: library.get(b"etch_sim_mmio\0")?,
                run: library.get(b"etch_sim_run\0")?,
                cycles: library.get(b"etch_sim_cycles\0")?,
                dma_errors: library.get(b"etch_sim_dma_errors\0")?,
                trace_open: library.get(b"etch_sim_trace_open\0")?,
                trace_close: library.get(b"etch_sim_trace_close\0")?,
                _lib: library,
            };
            (new, sim)
        };
        // SAFETY: `out_c` is a valid NUL-terminated string for the duration of the
        // call; the harness copies it.
        sim.handle = unsafe { new(out_c.as_ptr()) };
        Ok(sim)
    }

    /// Reads a BAR0 register (byte offset).
    pub fn mmio_read(&mut self, offset: u32) -> Result<u32> {
        let mut v = 0u32;
        // SAFETY: `handle` is live; `v` outlives the call.
        let rc = unsafe { (self.mmio)(self.handle, offset, 0, 0, &mut v) };
        if rc != 0 {
            return Err(SimError::MmioTimeout(offset));
        }
        Ok(v)
    }

    /// Writes a BAR0 register (byte offset).
    pub fn mmio_write(&mut self, offset: u32, value: u32) -> Result<()> {
        // SAFETY: `handle` is live; a null read pointer is allowed for writes.
        let rc = unsafe { (self.mmio)(self.handle, offset, 1, value, std::ptr::null_mut()) };
        if rc != 0 {
            return Err(SimError::MmioTimeout(offset));
        }
        Ok(())
    }

    /// Makes `len` bytes at `ptr` reachable by the chip's DMA at address `iova`.
    ///
    /// # Safety
    ///
    /// `ptr..ptr + len` must stay valid for reads and writes, and must not be accessed
    /// by Rust code while [`Simulator::run`] or an MMIO access runs, until
    /// [`Simulator::unmap`] is called with `iova` (or the simulator is dropped).
    pub unsafe fn map(&mut self, iova: u64, ptr: *mut u8, len: usize) {
        // SAFETY: forwarded to the caller's contract.
        unsafe { (self.map)(self.handle, iova, ptr, len as u64) }
    }

    /// Removes the mapping at `iova`.
    pub fn unmap(&mut self, iova: u64) {
        // SAFETY: `handle` is live.
        unsafe { (self.unmap)(self.handle, iova) }
    }

    /// Cycles of DMA latency (request to completion) the endpoint model adds.
    pub fn set_dma_latency(&mut self, cycles: u32) {
        // SAFETY: `handle` is live.
        unsafe { (self.latency)(self.handle, cycles) }
    }

    /// Clocks the chip for at most `max_cycles`, stopping early on an interrupt in
    /// `irq_mask` or (with `stop_on_idle`) when the chip is idle. Returns why it stopped
    /// and how many cycles ran.
    pub fn run(&mut self, max_cycles: u64, irq_mask: u32, stop_on_idle: bool) -> (Stop, u64) {
        let (mut irqs, mut ran) = (0u32, 0u64);
        // SAFETY: `handle` is live; the out-pointers outlive the call. Mapped buffers
        // are accessed by the harness only, as `map`'s contract requires.
        let why = unsafe {
            (self.run)(
                self.handle,
                max_cycles,
                irq_mask,
                stop_on_idle as c_int,
                &mut irqs,
                &mut ran,
            )
        };
        let stop = match why {
            1 => Stop::Interrupt(irqs),
            2 => Stop::Idle,
            _ => Stop::Budget,
        };
        (stop, ran)
    }

    /// Holds the chip in reset for four cycles (the host's view of a device reset).
    pub fn reset(&mut self) {
        // SAFETY: `handle` is live.
        unsafe { (self.reset)(self.handle) }
    }

    /// Cycles simulated since the simulator started.
    pub fn cycles(&self) -> u64 {
        // SAFETY: `handle` is live.
        unsafe { (self.cycles)(self.handle) }
    }

    /// DMA accesses that fell outside mapped memory.
    pub fn dma_errors(&self) -> u64 {
        // SAFETY: `handle` is live.
        unsafe { (self.dma_errors)(self.handle) }
    }

    /// Starts writing a waveform to `path`, in the format the library was built with
    /// ([`build_with`]); a library built without one ([`Waveform::Off`]) refuses.
    pub fn trace(&mut self, path: &Path) -> Result<()> {
        let c = c_path(path)?;
        // SAFETY: `handle` is live; the path string outlives the call.
        let rc = unsafe { (self.trace_open)(self.handle, c.as_ptr()) };
        match rc {
            0 => Ok(()),
            NO_WAVEFORM => Err(io(
                path,
                std::io::Error::other(
                    "this simulator was built without waveforms (build it with a Waveform other than Off)",
                ),
            )),
            _ => Err(io(
                path,
                std::io::Error::other("cannot open the waveform file"),
            )),
        }
    }

    /// Stops writing the waveform.
    pub fn trace_close(&mut self) {
        // SAFETY: `handle` is live.
        unsafe { (self.trace_close)(self.handle) }
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        if !self.handle.is_null() {
            // SAFETY: `handle` came from `etch_sim_new` and is freed once.
            unsafe { (self.free)(self.handle) }
        }
    }
}
