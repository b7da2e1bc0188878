//! The board top in Verilator, reachable as a serial port: `etch serve OUT --pty PATH`.
//!
//! [`BoardSim`] is `etch_board` (the chip behind its UART bridge) with a model of the
//! USB-serial adapter on its pins (`board_harness.cpp`). [`serve_pty`] connects that
//! adapter to a pseudo-terminal, so that the serial backend of the driver reaches the
//! simulated board exactly as it reaches a real one: through a tty, with termios, one
//! byte at a time. Baud rates set on the pty are ignored; the simulated link runs at
//! [`SIM_DIVISOR`] clock cycles per bit.

use std::ffi::{c_char, c_void};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::{c_path, io, Harness, Result, SimError};

/// The board harness compiled with the board top.
pub const BOARD_HARNESS_CPP: &str = include_str!("board_harness.cpp");

/// Clock cycles per UART bit of the simulated board.
pub const SIM_DIVISOR: u32 = 8;

type NewFn = unsafe extern "C" fn(*const c_char, u32) -> *mut c_void;
type FreeFn = unsafe extern "C" fn(*mut c_void);
type PushFn = unsafe extern "C" fn(*mut c_void, *const u8, usize);
type RunFn = unsafe extern "C" fn(*mut c_void, u64, *mut u8, usize) -> usize;
type QuietFn = unsafe extern "C" fn(*mut c_void) -> i32;
type CyclesFn = unsafe extern "C" fn(*mut c_void) -> u64;

/// One simulated board.
pub struct BoardSim {
    handle: *mut c_void,
    free: FreeFn,
    push: PushFn,
    run: RunFn,
    quiet: QuietFn,
    cycles: CyclesFn,
    _lib: Harness,
}

// SAFETY: the harness keeps all its state behind `handle`; `&mut self` on every entry
// point means one thread uses it at a time.
unsafe impl Send for BoardSim {}

impl BoardSim {
    /// Loads the board library `lib` (from [`crate::build_board`]) and powers up the
    /// board of build directory `out`.
    pub fn new(lib: &Path, out: &Path, divisor: u32) -> Result<Self> {
        let library = Harness::load(lib)?;
        let out_c = c_path(out)?;
        // SAFETY: every name is a function of board_harness.cpp with exactly the C
        // signature of the field it fills.
        let (new, mut b) = unsafe {
            let new: NewFn = library.get(b"etch_board_new\0")?;
            let b = BoardSim {
                handle: std::ptr::null_mut(),
                free: library.get(b"etch_board_free\0")?,
                push: library.get(b"etch_board_push\0")?,
                run: library.get(b"etch_board_run\0")?,
                quiet: library.get(b"etch_board_quiet\0")?,
                cycles: library.get(b"etch_board_cycles\0")?,
                _lib: library,
            };
            (new, b)
        };
        // SAFETY: `out_c` is a valid NUL-terminated string for the call; the harness
        // copies it.
        b.handle = unsafe { new(out_c.as_ptr(), divisor) };
        Ok(b)
    }

    /// Queues bytes from the host for the board's `uart_rx`.
    pub fn push(&mut self, bytes: &[u8]) {
        // SAFETY: `bytes` is valid for `bytes.len()` reads during the call; the
        // harness copies them.
        unsafe { (self.push)(self.handle, bytes.as_ptr(), bytes.len()) }
    }

    /// Runs up to `cycles` cycles; appends the bytes the board sent to `out`.
    pub fn run(&mut self, cycles: u64, out: &mut Vec<u8>) {
        let mut buf = [0u8; 1024];
        // SAFETY: `buf` is valid for `buf.len()` writes during the call, and the
        // harness writes at most that many bytes.
        let n = unsafe { (self.run)(self.handle, cycles, buf.as_mut_ptr(), buf.len()) };
        out.extend_from_slice(&buf[..n.min(buf.len())]);
    }

    /// Nothing on the wires and the chip not busy for a while.
    pub fn quiet(&mut self) -> bool {
        // SAFETY: `handle` is the live board.
        unsafe { (self.quiet)(self.handle) != 0 }
    }

    /// Cycles simulated.
    pub fn cycles(&mut self) -> u64 {
        // SAFETY: `handle` is the live board.
        unsafe { (self.cycles)(self.handle) }
    }
}

impl Drop for BoardSim {
    fn drop(&mut self) {
        // SAFETY: `handle` came from etch_board_new and is freed exactly once.
        unsafe { (self.free)(self.handle) }
    }
}

/// A pseudo-terminal: the master end for the simulation, the slave end's path for the
/// client (held open here too, so that a client closing it is no hang-up).
struct Pty {
    master: OwnedFd,
    _slave: OwnedFd,
    slave_path: PathBuf,
}

fn pty_err(what: &str, e: rustix::io::Errno) -> SimError {
    SimError::Pty(format!("{what}: {e}"))
}

fn open_pty() -> Result<Pty> {
    use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
    use rustix::termios::{tcgetattr, tcsetattr, OptionalActions};
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)
        .map_err(|e| pty_err("posix_openpt", e))?;
    rustix::fs::fcntl_setfl(&master, rustix::fs::OFlags::NONBLOCK)
        .map_err(|e| pty_err("fcntl", e))?;
    grantpt(&master).map_err(|e| pty_err("grantpt", e))?;
    unlockpt(&master).map_err(|e| pty_err("unlockpt", e))?;
    let name = ptsname(&master, Vec::new()).map_err(|e| pty_err("ptsname", e))?;
    let slave_path = PathBuf::from(std::ffi::OsString::from_vec(name.into_bytes()));
    let slave = rustix::fs::open(
        slave_path.as_path(),
        rustix::fs::OFlags::RDWR | rustix::fs::OFlags::NOCTTY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| pty_err("open the pty's slave end", e))?;
    // Raw mode until a client sets its own: no echo, no line editing, no CR/LF games.
    let mut tio = tcgetattr(&slave).map_err(|e| pty_err("tcgetattr", e))?;
    tio.make_raw();
    tcsetattr(&slave, OptionalActions::Now, &tio).map_err(|e| pty_err("tcsetattr", e))?;
    Ok(Pty {
        master,
        _slave: slave,
        slave_path,
    })
}

/// Serves the board of build directory `out` (library `lib`) on a pseudo-terminal
/// whose slave end is linked at `link`, until `stop` is set.
pub fn serve_pty(
    out: &Path,
    lib: &Path,
    link: &Path,
    divisor: u32,
    stop: &AtomicBool,
    ready: &mut dyn FnMut(&Path),
) -> Result<()> {
    let pty = open_pty()?;
    if let Ok(meta) = std::fs::symlink_metadata(link) {
        if meta.file_type().is_symlink() {
            std::fs::remove_file(link).map_err(|e| io(link, e))?;
        } else {
            return Err(SimError::Pty(format!(
                "{} exists and is not a link left by an earlier `etch serve --pty`; refusing to replace it",
                link.display()
            )));
        }
    }
    std::os::unix::fs::symlink(&pty.slave_path, link).map_err(|e| io(link, e))?;
    let mut board = BoardSim::new(lib, out, divisor)?;
    ready(&pty.slave_path);
    tracing::info!(pty = %pty.slave_path.display(), link = %link.display(), "board serving");
    let fd = pty.master.as_raw_fd();
    let mut sent = Vec::new();
    let mut buf = [0u8; 4096];
    let mut active = 0u32;
    while !stop.load(Ordering::Relaxed) {
        // SAFETY: `buf` is writable for its length; `fd` is the open master.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr() as *mut c_void, buf.len()) };
        if n > 0 {
            board.push(&buf[..n as usize]);
            active = 64;
        }
        // Short slices while bytes move, so that the host's answers come in promptly.
        let slice = if active > 0 {
            64 * divisor as u64
        } else {
            4096
        };
        active = active.saturating_sub(1);
        board.run(slice, &mut sent);
        if !sent.is_empty() {
            active = 64;
            let mut rest: &[u8] = &sent;
            while !rest.is_empty() {
                // SAFETY: `rest` is readable for its length; `fd` is the open master.
                let k = unsafe { libc::write(fd, rest.as_ptr() as *const c_void, rest.len()) };
                if k > 0 {
                    rest = &rest[k as usize..];
                } else {
                    // A full pty (nobody reading): the bytes would only be flushed by
                    // the next client's open. Drop them.
                    break;
                }
            }
            sent.clear();
        }
        if n <= 0 && active == 0 && board.quiet() {
            let mut pfd = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: `pfd` is one valid pollfd for the call.
            unsafe { libc::poll(&mut pfd, 1, 5) };
        }
    }
    let _ = std::fs::remove_file(link);
    tracing::info!(cycles = board.cycles(), "board stopped");
    Ok(())
}
