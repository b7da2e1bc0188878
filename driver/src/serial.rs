//! The serial backend: a chip on a bring-up board, behind the UART bridge of its board
//! top (`etch_board`, `docs/FPGA.md`), reached through a serial port — a USB-serial
//! adapter (`/dev/ttyUSB0`), or the pseudo-terminal of a board simulated by
//! `etch serve OUT --pty PATH`.
//!
//! The link carries frames (`etch_firmware::link`): MMIO reads and writes from the
//! host, each answered by the board; and from the board, DMA reads and writes of
//! 8-byte beats, which this backend answers from its own host-memory buffers, and
//! interrupt notices. DMA requests can arrive at any moment — while the host waits for
//! an MMIO reply, or for an interrupt — and are served on the spot, so the chip's DMA
//! port simply sees a slow memory. A beat outside every buffer is answered with an
//! error status, which the chip turns into a DMA_ERROR completion.
//!
//! Nothing here blocks without a limit: a reply that does not come within the reply
//! timeout is an error naming the port, and after a transport error every call says so.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use etch_firmware::link as frame;

use crate::device::{Device, DmaBuffer, Event};
use crate::error::{DriverError, Result};

/// The default line rate: the board tops' clocks (12, 25, 48 MHz) divide it exactly.
pub const DEFAULT_BAUD: u32 = 1_000_000;
/// Where the first buffer sits in the chip's address space.
const IOVA_BASE: u64 = 0x1_0000_0000;
/// How long one wait for an interrupt lasts.
const WAIT_SLICE: Duration = Duration::from_millis(10);

struct HostBuffer {
    iova: u64,
    mem: Vec<u8>,
}

/// A chip behind a serial port.
pub struct Serial {
    port: File,
    path: PathBuf,
    rx: Vec<u8>,
    buffers: Vec<Option<HostBuffer>>,
    next_iova: u64,
    irq_pending: u32,
    reply_timeout: Duration,
    broken: Option<String>,
    dma_errors: u64,
}

/// Baud rates a board's UART bridge and a USB-serial adapter agree on.
const BAUDS: [u32; 13] = [
    9600, 19200, 38400, 57600, 115_200, 230_400, 460_800, 500_000, 921_600, 1_000_000, 1_500_000,
    2_000_000, 3_000_000,
];

/// Puts a serial port in raw mode at `baud`: no echo, no line editing, no flow
/// control, reads that return what is there; pending bytes are dropped.
fn configure_raw(port: &std::fs::File, baud: u32) -> rustix::io::Result<()> {
    use rustix::termios::{self, ControlModes, OptionalActions, QueueSelector, SpecialCodeIndex};
    let mut t = termios::tcgetattr(port)?;
    t.make_raw();
    t.control_modes |= ControlModes::CLOCAL | ControlModes::CREAD;
    t.control_modes -= ControlModes::CRTSCTS;
    t.special_codes[SpecialCodeIndex::VMIN] = 0;
    t.special_codes[SpecialCodeIndex::VTIME] = 0;
    t.set_speed(baud)?;
    termios::tcsetattr(port, OptionalActions::Now, &t)?;
    termios::tcflush(port, QueueSelector::IOFlush)
}

/// Parses `PATH[,BAUD]` (the part of `--device serial:…` after the colon).
pub fn parse_spec(spec: &str) -> Result<(PathBuf, u32)> {
    let (path, baud) = match spec.rsplit_once(',') {
        Some((p, b)) => {
            let baud = b.parse::<u32>().map_err(|_| {
                DriverError::InvalidArgument(format!(
                    "serial:{spec}: the baud rate {b:?} is not a number"
                ))
            })?;
            (p, baud)
        }
        None => (spec, DEFAULT_BAUD),
    };
    if path.is_empty() {
        return Err(DriverError::InvalidArgument(
            "serial: needs a port, as in serial:/dev/ttyUSB0 or serial:/dev/ttyUSB0,1000000".into(),
        ));
    }
    if !BAUDS.contains(&baud) {
        return Err(DriverError::InvalidArgument(format!(
            "serial:{spec}: {baud} baud is not a rate this driver sets (9600 … 3000000)"
        )));
    }
    Ok((PathBuf::from(path), baud))
}

impl Serial {
    /// Opens the port at `path` in raw mode at `baud`, and resets the chip behind it.
    /// `reply_timeout` bounds every wait for a reply from the board.
    pub fn open(path: &Path, baud: u32, reply_timeout: Duration) -> Result<Self> {
        if !BAUDS.contains(&baud) {
            return Err(DriverError::InvalidArgument(format!(
                "{baud} baud is not supported"
            )));
        }
        let port = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags_noctty()
            .open(path)
            .map_err(|e| {
                DriverError::Transport(format!(
                    "cannot open the serial port {}: {e}",
                    path.display()
                ))
            })?;
        configure_raw(&port, baud).map_err(|e| {
            DriverError::Transport(format!(
                "{} is not a serial port this driver can configure: {e}",
                path.display()
            ))
        })?;
        let mut dev = Serial {
            port,
            path: path.to_path_buf(),
            rx: Vec::new(),
            buffers: Vec::new(),
            next_iova: IOVA_BASE,
            irq_pending: 0,
            reply_timeout,
            broken: None,
            dma_errors: 0,
        };
        dev.reset()?;
        Ok(dev)
    }

    /// DMA beats the board asked for outside every buffer.
    pub fn dma_errors(&self) -> u64 {
        self.dma_errors
    }

    fn fail(&mut self, msg: String) -> DriverError {
        let msg = format!("{}: {msg}", self.path.display());
        self.broken = Some(msg.clone());
        DriverError::Transport(msg)
    }

    fn check(&self) -> Result<()> {
        match &self.broken {
            Some(msg) => Err(DriverError::Transport(format!(
                "{msg} (the link is unusable)"
            ))),
            None => Ok(()),
        }
    }

    fn send(&mut self, mut bytes: &[u8]) -> Result<()> {
        let deadline = Instant::now() + self.reply_timeout;
        while !bytes.is_empty() {
            match self.port.write(bytes) {
                Ok(k) => bytes = &bytes[k..],
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::Interrupted =>
                {
                    if Instant::now() >= deadline {
                        return Err(self.fail("the port accepts no more bytes".into()));
                    }
                    let mut pfd = libc::pollfd {
                        fd: self.port.as_raw_fd(),
                        events: libc::POLLOUT,
                        revents: 0,
                    };
                    // SAFETY: `pfd` is one valid pollfd that outlives the call.
                    unsafe { libc::poll(&mut pfd, 1, 10) };
                }
                Err(e) => return Err(self.fail(format!("write failed: {e}"))),
            }
        }
        Ok(())
    }

    /// Reads whatever arrives within `timeout` into the receive buffer.
    fn fill(&mut self, timeout: Duration) -> Result<()> {
        let mut pfd = libc::pollfd {
            fd: self.port.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = timeout.as_millis().clamp(0, i32::MAX as u128) as i32;
        // SAFETY: `pfd` is one valid pollfd that outlives the call.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                return Ok(());
            }
            return Err(self.fail(format!("poll failed: {e}")));
        }
        if n == 0 {
            return Ok(());
        }
        if pfd.revents & (libc::POLLERR | libc::POLLNVAL) != 0 {
            return Err(self.fail("the port reported an error".into()));
        }
        let mut buf = [0u8; 4096];
        match self.port.read(&mut buf) {
            Ok(0) if pfd.revents & libc::POLLHUP != 0 => {
                Err(self.fail("the other end hung up".into()))
            }
            Ok(k) => {
                self.rx.extend_from_slice(&buf[..k]);
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => Ok(()),
            Err(e) => Err(self.fail(format!("read failed: {e}"))),
        }
    }

    /// The next whole frame in the receive buffer, skipping bytes that start none.
    fn take_frame(&mut self) -> Option<(u8, Vec<u8>)> {
        while let Some(&kind) = self.rx.first() {
            match frame::board_payload(kind) {
                Some(n) if self.rx.len() > n => {
                    let payload = self.rx[1..=n].to_vec();
                    self.rx.drain(..=n);
                    return Some((kind, payload));
                }
                Some(_) => return None,
                None => {
                    tracing::warn!(byte = kind, "serial: skipping a byte that starts no frame");
                    self.rx.remove(0);
                }
            }
        }
        None
    }

    fn find(&self, addr: u64) -> Option<(usize, usize)> {
        if addr % 8 != 0 {
            return None;
        }
        self.buffers.iter().enumerate().find_map(|(i, b)| {
            let b = b.as_ref()?;
            let off = addr.checked_sub(b.iova)? as usize;
            (off + 8 <= b.mem.len()).then_some((i, off))
        })
    }

    /// Serves a DMA request or notes interrupts; returns replies to MMIO and reset.
    fn handle(&mut self, kind: u8, payload: Vec<u8>) -> Result<Option<(u8, Vec<u8>)>> {
        let word =
            |p: &[u8], at: usize| u64::from_le_bytes(p[at..at + 8].try_into().unwrap_or([0; 8]));
        match kind {
            frame::DMA_READ => {
                let addr = word(&payload, 0);
                let mut reply = vec![frame::DMA_DATA, 0];
                match self.find(addr) {
                    Some((i, off)) => match &self.buffers[i] {
                        Some(b) => reply.extend_from_slice(&b.mem[off..off + 8]),
                        None => reply.extend_from_slice(&[0; 8]),
                    },
                    None => {
                        tracing::warn!(addr, "serial: DMA read outside the host's buffers");
                        self.dma_errors += 1;
                        reply[1] = 1;
                        reply.extend_from_slice(&[0; 8]);
                    }
                }
                self.send(&reply)?;
                Ok(None)
            }
            frame::DMA_WRITE => {
                let addr = word(&payload, 0);
                let mut status = 0u8;
                match self.find(addr) {
                    Some((i, off)) => {
                        if let Some(b) = self.buffers[i].as_mut() {
                            b.mem[off..off + 8].copy_from_slice(&payload[8..16]);
                        }
                    }
                    None => {
                        tracing::warn!(addr, "serial: DMA write outside the host's buffers");
                        self.dma_errors += 1;
                        status = 1;
                    }
                }
                self.send(&[frame::DMA_DONE, status])?;
                Ok(None)
            }
            frame::IRQ => {
                self.irq_pending |= payload[0] as u32;
                Ok(None)
            }
            _ => Ok(Some((kind, payload))),
        }
    }

    /// Sends `request` and waits for the reply of type `expect`, serving DMA meanwhile.
    fn request(&mut self, request: &[u8], expect: u8) -> Result<Vec<u8>> {
        self.check()?;
        self.send(request)?;
        let deadline = Instant::now() + self.reply_timeout;
        loop {
            while let Some((kind, payload)) = self.take_frame() {
                if let Some((kind, payload)) = self.handle(kind, payload)? {
                    if kind == expect {
                        return Ok(payload);
                    }
                    return Err(self.fail(format!(
                        "the board answered {:?} where {:?} was due: the link is out of step",
                        kind as char, expect as char
                    )));
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(self.fail(format!(
                    "no reply from the board within {:.1} s (is the bitstream loaded, or `etch serve --pty` running, at this baud rate?)",
                    self.reply_timeout.as_secs_f64()
                )));
            }
            self.fill(deadline - now)?;
        }
    }
}

/// `OpenOptions` with `O_NOCTTY`, so that opening a terminal never makes it ours.
trait NoCtty {
    fn custom_flags_noctty(&mut self) -> &mut Self;
}

impl NoCtty for std::fs::OpenOptions {
    fn custom_flags_noctty(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK)
    }
}

impl Device for Serial {
    fn read_reg(&mut self, index: u16) -> Result<u32> {
        let addr = (index as u32 * 4) as u16;
        let mut req = vec![frame::MMIO_READ];
        req.extend_from_slice(&addr.to_le_bytes());
        let data = self.request(&req, frame::READ_DATA)?;
        Ok(u32::from_le_bytes([data[0], data[1], data[2], data[3]]))
    }

    fn write_reg(&mut self, index: u16, value: u32) -> Result<()> {
        let addr = (index as u32 * 4) as u16;
        let mut req = vec![frame::MMIO_WRITE];
        req.extend_from_slice(&addr.to_le_bytes());
        req.extend_from_slice(&value.to_le_bytes());
        self.request(&req, frame::WRITE_ACK).map(|_| ())
    }

    fn dma_alloc(&mut self, len: usize) -> Result<DmaBuffer> {
        let bytes = len.div_ceil(8).max(1) * 8;
        let iova = self.next_iova;
        // A guard page between buffers: a beat past the end is an error, never another
        // buffer's data.
        self.next_iova += (bytes as u64).next_multiple_of(4096) + 4096;
        self.buffers.push(Some(HostBuffer {
            iova,
            mem: vec![0; bytes],
        }));
        Ok(DmaBuffer {
            id: self.buffers.len() - 1,
            iova,
            len,
        })
    }

    fn dma_free(&mut self, buf: DmaBuffer) -> Result<()> {
        if let Some(slot) = self.buffers.get_mut(buf.id) {
            *slot = None;
        }
        Ok(())
    }

    fn dma_read(&mut self, buf: &DmaBuffer, offset: usize, out: &mut [u8]) -> Result<()> {
        let b = self
            .buffers
            .get(buf.id)
            .and_then(|b| b.as_ref())
            .ok_or_else(|| DriverError::Dma(format!("buffer {} is not allocated", buf.id)))?;
        let src = b.mem.get(offset..offset + out.len()).ok_or_else(|| {
            DriverError::Dma(format!(
                "read of {} bytes at {offset} is outside the {}-byte buffer",
                out.len(),
                buf.len
            ))
        })?;
        out.copy_from_slice(src);
        Ok(())
    }

    fn dma_write(&mut self, buf: &DmaBuffer, offset: usize, data: &[u8]) -> Result<()> {
        let len = buf.len;
        let b = self
            .buffers
            .get_mut(buf.id)
            .and_then(|b| b.as_mut())
            .ok_or_else(|| DriverError::Dma(format!("buffer {} is not allocated", buf.id)))?;
        let dst = b.mem.get_mut(offset..offset + data.len()).ok_or_else(|| {
            DriverError::Dma(format!(
                "write of {} bytes at {offset} is outside the {len}-byte buffer",
                data.len()
            ))
        })?;
        dst.copy_from_slice(data);
        Ok(())
    }

    fn wait(&mut self, irq_mask: u32) -> Result<Event> {
        self.check()?;
        let deadline = Instant::now() + WAIT_SLICE;
        loop {
            while let Some((kind, payload)) = self.take_frame() {
                if let Some((kind, _)) = self.handle(kind, payload)? {
                    return Err(self.fail(format!(
                        "the board sent {:?} unasked: the link is out of step",
                        kind as char
                    )));
                }
            }
            let fired = self.irq_pending & irq_mask;
            if fired != 0 {
                self.irq_pending &= !irq_mask;
                return Ok(Event::Interrupt(fired));
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(Event::Slice);
            }
            self.fill(deadline - now)?;
        }
    }

    fn reset(&mut self) -> Result<()> {
        // A reset also brings a link that lost step back: forget what was half read.
        self.broken = None;
        self.rx.clear();
        self.send(&[frame::RESET])?;
        let deadline = Instant::now() + self.reply_timeout;
        loop {
            while let Some((kind, _)) = self.take_frame() {
                // DMA requests and interrupts from before the reset are void: the
                // bridge forgets them with the chip.
                if kind == frame::RESET_ACK {
                    self.irq_pending = 0;
                    return Ok(());
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(self.fail(format!(
                    "the board did not answer a reset within {:.1} s (is the bitstream loaded, or `etch serve --pty` running, at this baud rate?)",
                    self.reply_timeout.as_secs_f64()
                )));
            }
            self.fill(deadline - now)?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_with_and_without_a_baud_rate() {
        assert_eq!(
            parse_spec("/dev/ttyUSB0").unwrap(),
            (PathBuf::from("/dev/ttyUSB0"), DEFAULT_BAUD)
        );
        assert_eq!(
            parse_spec("/dev/ttyUSB0,115200").unwrap(),
            (PathBuf::from("/dev/ttyUSB0"), 115_200)
        );
        assert!(parse_spec("").is_err());
        assert!(parse_spec("/dev/ttyUSB0,fast").is_err());
        assert!(parse_spec("/dev/ttyUSB0,123").is_err());
    }

    #[test]
    fn a_missing_port_is_a_clear_error() {
        let e = Serial::open(
            Path::new("/nonexistent/tty"),
            DEFAULT_BAUD,
            Duration::from_millis(100),
        )
        .err()
        .unwrap();
        assert!(e.to_string().contains("cannot open the serial port"), "{e}");
    }

    #[test]
    fn a_file_that_is_not_a_terminal_is_refused() {
        let f = tempfile::NamedTempFile::new().unwrap();
        let e = Serial::open(f.path(), DEFAULT_BAUD, Duration::from_millis(100))
            .err()
            .unwrap();
        assert!(e.to_string().contains("not a serial port"), "{e}");
    }
}
