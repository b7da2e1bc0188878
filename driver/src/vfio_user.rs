//! The vfio-user backend: a chip served by another process (`etch serve`, or any
//! vfio-user server presenting an etch device) over a UNIX socket.
//!
//! This is a client of the vfio-user protocol written for the driver's needs: every
//! message is a 16-byte header (`message_id`, `command`, `message_size`, `flags`,
//! `error`) and a command-specific body, each command gets exactly one reply with the
//! same ID, and file descriptors travel as `SCM_RIGHTS`. Unlike a general client, it
//! never blocks without a limit: the socket has read and write timeouts, a reply that
//! is late, malformed or an error ends the call with an error, and a server that goes
//! away is noticed even while the driver is only waiting for an interrupt (the socket
//! is polled with the interrupt eventfds). After a transport error the connection is
//! unusable and every call says so.
//!
//! DMA memory is `memfd` chunks shared with the server by DMA_MAP; interrupts are two
//! eventfds registered with SET_IRQS for the MSI-X vectors.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use etch_firmware::regs::pci;
use vmm_sys_util::sock_ctrl_msg::ScmSocket;

use crate::device::{Device, DmaBuffer, Event};
use crate::dma::{Chunk, DmaPool};
use crate::error::{DriverError, Result};
use vmm_sys_util::eventfd::EventFd;

/// vfio-user command numbers (the protocol's `vfio_user_command`).
mod command {
    pub const VERSION: u16 = 1;
    pub const DMA_MAP: u16 = 2;
    pub const DMA_UNMAP: u16 = 3;
    pub const DEVICE_GET_INFO: u16 = 4;
    pub const DEVICE_GET_REGION_INFO: u16 = 5;
    pub const SET_IRQS: u16 = 8;
    pub const REGION_READ: u16 = 9;
    pub const REGION_WRITE: u16 = 10;
    pub const DEVICE_RESET: u16 = 13;

    /// The command's name in the protocol, for messages.
    pub fn name(command: u16) -> &'static str {
        match command {
            VERSION => "VERSION",
            DMA_MAP => "DMA_MAP",
            DMA_UNMAP => "DMA_UNMAP",
            DEVICE_GET_INFO => "DEVICE_GET_INFO",
            DEVICE_GET_REGION_INFO => "DEVICE_GET_REGION_INFO",
            SET_IRQS => "SET_IRQS",
            REGION_READ => "REGION_READ",
            REGION_WRITE => "REGION_WRITE",
            DEVICE_RESET => "DEVICE_RESET",
            _ => "an unknown command",
        }
    }
}

/// Header flag bits.
const FLAG_REPLY: u32 = 1;
const FLAG_ERROR: u32 = 1 << 5;
/// Bytes of the message header.
const HEADER: usize = 16;

/// VFIO constants used on the wire (from linux/vfio.h).
const PCI_BAR0_REGION: u32 = 0;
const PCI_CONFIG_REGION: u32 = 7;
const PCI_MSIX_IRQ: u32 = 2;
const IRQ_SET_DATA_EVENTFD: u32 = 1 << 2;
const IRQ_SET_ACTION_TRIGGER: u32 = 1 << 5;
const DEVICE_FLAGS_PCI: u32 = 1 << 1;
const DMA_READ_WRITE: u32 = 0b11;

/// How long one wait for an interrupt lasts.
const WAIT_SLICE: Duration = Duration::from_millis(5);

/// A chip behind a vfio-user socket.
pub struct VfioUser {
    sock: UnixStream,
    path: PathBuf,
    next_id: u16,
    broken: Option<String>,
    irqs: Vec<EventFd>,
    pool: DmaPool,
}

/// A nonblocking eventfd for an interrupt vector.
pub(crate) fn new_eventfd() -> Result<EventFd> {
    EventFd::new(libc::EFD_NONBLOCK | libc::EFD_CLOEXEC)
        .map_err(|e| DriverError::Transport(format!("cannot create an eventfd: {e}")))
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap_or([0; 8]))
}

impl VfioUser {
    /// Connects to the server on `path`, checks that it presents an etch device, and
    /// registers the interrupt eventfds. `timeout` bounds every exchange with the server.
    pub fn connect(path: &Path, timeout: Duration) -> Result<Self> {
        let sock = UnixStream::connect(path).map_err(|e| {
            DriverError::Transport(format!(
                "cannot connect to the vfio-user server at {}: {e} (is `etch serve` running?)",
                path.display()
            ))
        })?;
        let io_err = |e: std::io::Error| DriverError::Transport(e.to_string());
        sock.set_read_timeout(Some(timeout)).map_err(io_err)?;
        sock.set_write_timeout(Some(timeout)).map_err(io_err)?;
        let mut dev = VfioUser {
            sock,
            path: path.to_path_buf(),
            next_id: 0,
            broken: None,
            irqs: Vec::new(),
            pool: DmaPool::default(),
        };
        dev.negotiate()?;
        dev.check_device()?;
        let mut irqs = Vec::new();
        for _ in 0..pci::VECTORS {
            irqs.push(new_eventfd()?);
        }
        let fds: Vec<i32> = irqs.iter().map(|e| e.as_raw_fd()).collect();
        let mut body = Vec::with_capacity(20);
        body.extend_from_slice(&20u32.to_le_bytes());
        body.extend_from_slice(&(IRQ_SET_DATA_EVENTFD | IRQ_SET_ACTION_TRIGGER).to_le_bytes());
        body.extend_from_slice(&PCI_MSIX_IRQ.to_le_bytes());
        body.extend_from_slice(&0u32.to_le_bytes());
        body.extend_from_slice(&pci::VECTORS.to_le_bytes());
        dev.call(command::SET_IRQS, &body, &[], &fds)?;
        dev.irqs = irqs;
        tracing::info!("connected to the etch device at {}", path.display());
        Ok(dev)
    }

    /// The socket this backend talks to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn fail(&mut self, what: String) -> DriverError {
        let msg = format!("vfio-user server at {}: {what}", self.path.display());
        self.broken = Some(msg.clone());
        DriverError::Transport(msg)
    }

    /// One exchange: sends `command` with `body` then `payload` (and `fds`), returns the
    /// reply's body.
    fn call(&mut self, command: u16, body: &[u8], payload: &[u8], fds: &[i32]) -> Result<Vec<u8>> {
        if let Some(msg) = &self.broken {
            return Err(DriverError::Transport(format!("{msg} (connection lost)")));
        }
        let name = command::name(command);
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let size = (HEADER + body.len() + payload.len()) as u32;
        let mut msg = Vec::with_capacity(size as usize);
        msg.extend_from_slice(&id.to_le_bytes());
        msg.extend_from_slice(&command.to_le_bytes());
        msg.extend_from_slice(&size.to_le_bytes());
        msg.extend_from_slice(&0u32.to_le_bytes());
        msg.extend_from_slice(&0u32.to_le_bytes());
        msg.extend_from_slice(body);
        msg.extend_from_slice(payload);
        let sent = if fds.is_empty() {
            self.sock.write_all(&msg).map_err(|e| e.to_string())
        } else {
            self.sock
                .send_with_fds(&[&msg[..]], fds)
                .map_err(|e| e.to_string())
                .and_then(|n| {
                    if n == msg.len() {
                        Ok(())
                    } else {
                        Err(format!("sent {n} of {} bytes", msg.len()))
                    }
                })
        };
        if let Err(e) = sent {
            return Err(self.fail(format!("sending {name}: {e}")));
        }
        let mut header = [0u8; HEADER];
        if let Err(e) = self.sock.read_exact(&mut header) {
            let why = match e.kind() {
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                    "no reply within the timeout".to_string()
                }
                std::io::ErrorKind::UnexpectedEof => "the server closed the connection".to_string(),
                _ => e.to_string(),
            };
            return Err(self.fail(format!("{name}: {why}")));
        }
        let (rid, rcmd, rsize, rflags, rerr) = (
            le16(&header, 0),
            le16(&header, 2),
            le32(&header, 4) as usize,
            le32(&header, 8),
            le32(&header, 12),
        );
        if rid != id || rcmd != command || rflags & FLAG_REPLY == 0 || rsize < HEADER {
            return Err(self.fail(format!(
                "malformed reply to {name} (id {rid}, command {rcmd}, size {rsize}, flags {rflags:#x})"
            )));
        }
        if rsize > HEADER + (16 << 20) {
            return Err(self.fail(format!("a {rsize}-byte reply is too large")));
        }
        let mut reply = vec![0u8; rsize - HEADER];
        if let Err(e) = self.sock.read_exact(&mut reply) {
            return Err(self.fail(format!("reading the reply to {name}: {e}")));
        }
        if rflags & FLAG_ERROR != 0 {
            return Err(DriverError::Transport(format!(
                "vfio-user server at {} refused {name}: {}",
                self.path.display(),
                if rerr == 0 {
                    "the server's log says why".to_string()
                } else {
                    std::io::Error::from_raw_os_error(rerr as i32).to_string()
                }
            )));
        }
        Ok(reply)
    }

    fn negotiate(&mut self) -> Result<()> {
        let caps = b"{\"capabilities\":{\"max_msg_fds\":8,\"max_data_xfer_size\":1048576}}\0";
        let mut body = Vec::new();
        body.extend_from_slice(&0u16.to_le_bytes());
        body.extend_from_slice(&1u16.to_le_bytes());
        let reply = self.call(command::VERSION, &body, caps, &[])?;
        if reply.len() < 4 || le16(&reply, 0) != 0 {
            return Err(self.fail("the server speaks another vfio-user version".into()));
        }
        Ok(())
    }

    fn region_size(&mut self, index: u32) -> Result<u64> {
        let mut body = Vec::with_capacity(32);
        body.extend_from_slice(&32u32.to_le_bytes()); // argsz
        body.extend_from_slice(&0u32.to_le_bytes()); // flags
        body.extend_from_slice(&index.to_le_bytes());
        body.extend_from_slice(&[0; 20]); // cap_offset, size, offset
        let reply = self.call(command::DEVICE_GET_REGION_INFO, &body, &[], &[])?;
        if reply.len() < 32 {
            return Err(self.fail("short region info".into()));
        }
        Ok(le64(&reply, 16))
    }

    fn check_device(&mut self) -> Result<()> {
        let mut body = [0u8; 16];
        body[..4].copy_from_slice(&16u32.to_le_bytes());
        let info = self.call(command::DEVICE_GET_INFO, &body, &[], &[])?;
        if info.len() < 16 || le32(&info, 4) & DEVICE_FLAGS_PCI == 0 {
            return Err(DriverError::NotEtchDevice(format!(
                "{} is not a PCI device",
                self.path.display()
            )));
        }
        if le32(&info, 8) <= PCI_CONFIG_REGION || le32(&info, 12) <= PCI_MSIX_IRQ {
            return Err(DriverError::NotEtchDevice(format!(
                "{} lacks the PCI regions or MSI-X interrupts of an etch device",
                self.path.display()
            )));
        }
        let mut ids = [0u8; 4];
        self.region_read(PCI_CONFIG_REGION, 0, &mut ids)?;
        let (vendor, device) = (le16(&ids, 0), le16(&ids, 2));
        if (vendor, device) != (pci::VENDOR_ID, pci::DEVICE_ID) {
            return Err(DriverError::NotEtchDevice(format!(
                "{} presents PCI device {vendor:04x}:{device:04x}, not an etch chip ({:04x}:{:04x})",
                self.path.display(),
                pci::VENDOR_ID,
                pci::DEVICE_ID
            )));
        }
        let bar0 = self.region_size(PCI_BAR0_REGION)?;
        if bar0 < 4 * etch_firmware::regs::COUNT as u64 {
            return Err(DriverError::NotEtchDevice(format!(
                "BAR0 of {} has {bar0} bytes, too few for the register file",
                self.path.display()
            )));
        }
        Ok(())
    }

    fn region_read(&mut self, region: u32, offset: u64, out: &mut [u8]) -> Result<()> {
        let mut body = Vec::with_capacity(16);
        body.extend_from_slice(&offset.to_le_bytes());
        body.extend_from_slice(&region.to_le_bytes());
        body.extend_from_slice(&(out.len() as u32).to_le_bytes());
        let reply = self.call(command::REGION_READ, &body, &[], &[])?;
        if reply.len() != 16 + out.len() {
            return Err(self.fail(format!(
                "a read of {} bytes came back with {}",
                out.len(),
                reply.len().saturating_sub(16)
            )));
        }
        out.copy_from_slice(&reply[16..]);
        Ok(())
    }

    fn region_write(&mut self, region: u32, offset: u64, data: &[u8]) -> Result<()> {
        let mut body = Vec::with_capacity(16);
        body.extend_from_slice(&offset.to_le_bytes());
        body.extend_from_slice(&region.to_le_bytes());
        body.extend_from_slice(&(data.len() as u32).to_le_bytes());
        self.call(command::REGION_WRITE, &body, data, &[])?;
        Ok(())
    }

    /// A new memfd chunk of `bytes`, mapped here and shared with the server at `iova`.
    fn new_chunk(&mut self, iova: u64, bytes: usize) -> Result<Chunk> {
        let name = c"etch-dma";
        // SAFETY: `name` is a valid NUL-terminated string; memfd_create has no other
        // preconditions.
        let fd = unsafe {
            libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING)
        };
        if fd < 0 {
            return Err(DriverError::Dma(format!(
                "memfd_create: {}",
                std::io::Error::last_os_error()
            )));
        }
        // SAFETY: `fd` was just returned by memfd_create and is owned by nobody else.
        let file = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
        file.set_len(bytes as u64)
            .map_err(|e| DriverError::Dma(format!("sizing DMA memory: {e}")))?;
        // The server maps this memory for the chip's DMA and refuses memory that could
        // shrink under it (a shrunk file faults the mapping): seal its size.
        // SAFETY: fcntl on an fd this File owns; F_ADD_SEALS takes an int.
        let sealed = unsafe {
            libc::fcntl(
                file.as_raw_fd(),
                libc::F_ADD_SEALS,
                libc::F_SEAL_SHRINK | libc::F_SEAL_GROW,
            )
        };
        if sealed != 0 {
            return Err(DriverError::Dma(format!(
                "sealing DMA memory: {}",
                std::io::Error::last_os_error()
            )));
        }
        // SAFETY: the memfd is private to this process and the server, which uses it
        // only as the device's DMA memory; the host reaches it only through `DmaPool`'s
        // volatile accesses, never through references.
        let map = unsafe { memmap2::MmapMut::map_mut(&file) }
            .map_err(|e| DriverError::Dma(format!("mapping DMA memory: {e}")))?;
        let mut body = Vec::with_capacity(32);
        body.extend_from_slice(&32u32.to_le_bytes());
        body.extend_from_slice(&DMA_READ_WRITE.to_le_bytes());
        body.extend_from_slice(&0u64.to_le_bytes());
        body.extend_from_slice(&iova.to_le_bytes());
        body.extend_from_slice(&(bytes as u64).to_le_bytes());
        self.call(command::DMA_MAP, &body, &[], &[file.as_raw_fd()])?;
        tracing::debug!("shared {bytes} bytes of DMA memory at {iova:#x}");
        Ok(Chunk::new(iova, map))
    }
}

impl Device for VfioUser {
    fn read_reg(&mut self, index: u16) -> Result<u32> {
        let mut b = [0u8; 4];
        self.region_read(PCI_BAR0_REGION, 4 * index as u64, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn write_reg(&mut self, index: u16, value: u32) -> Result<()> {
        self.region_write(PCI_BAR0_REGION, 4 * index as u64, &value.to_le_bytes())
    }

    fn dma_alloc(&mut self, len: usize) -> Result<DmaBuffer> {
        let mut pool = std::mem::take(&mut self.pool);
        let r = pool.alloc(len, &mut |iova, bytes| self.new_chunk(iova, bytes));
        self.pool = pool;
        r
    }

    fn dma_free(&mut self, buf: DmaBuffer) -> Result<()> {
        self.pool.free(buf)
    }

    fn dma_read(&mut self, buf: &DmaBuffer, offset: usize, out: &mut [u8]) -> Result<()> {
        self.pool.read(buf, offset, out)
    }

    fn dma_write(&mut self, buf: &DmaBuffer, offset: usize, data: &[u8]) -> Result<()> {
        self.pool.write(buf, offset, data)
    }

    fn wait(&mut self, irq_mask: u32) -> Result<Event> {
        if let Some(msg) = &self.broken {
            return Err(DriverError::Transport(format!("{msg} (connection lost)")));
        }
        let mut fds = vec![libc::pollfd {
            fd: self.sock.as_raw_fd(),
            events: libc::POLLIN | libc::POLLRDHUP,
            revents: 0,
        }];
        let vectors: Vec<usize> = (0..self.irqs.len())
            .filter(|v| irq_mask & (1 << v) != 0)
            .collect();
        for &v in &vectors {
            fds.push(libc::pollfd {
                fd: self.irqs[v].as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        // SAFETY: `fds` is a valid array of `fds.len()` pollfd structures that outlives
        // the call.
        let n = unsafe {
            libc::poll(
                fds.as_mut_ptr(),
                fds.len() as libc::nfds_t,
                WAIT_SLICE.as_millis() as i32,
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                return Ok(Event::Slice);
            }
            return Err(DriverError::Transport(format!("poll: {e}")));
        }
        if fds[0].revents != 0 {
            // The server never speaks unprompted: anything readable is the end.
            return Err(self.fail("the server closed the connection".into()));
        }
        let mut fired = 0u32;
        for (k, &v) in vectors.iter().enumerate() {
            if fds[k + 1].revents & libc::POLLIN != 0 {
                // Nonblocking: the count may already have been taken by a reset.
                let _ = self.irqs[v].read();
                fired |= 1 << v;
            }
        }
        Ok(if fired != 0 {
            Event::Interrupt(fired)
        } else {
            Event::Slice
        })
    }

    fn reset(&mut self) -> Result<()> {
        self.call(command::DEVICE_RESET, &[], &[], &[])?;
        for e in &self.irqs {
            while e.read().is_ok() {}
        }
        Ok(())
    }
}

impl Drop for VfioUser {
    fn drop(&mut self) {
        if self.broken.is_none() {
            let iovas: Vec<(u64, u64)> = self
                .pool
                .chunks()
                .iter()
                .map(|c| (c.iova, c.map.len() as u64))
                .collect();
            for (iova, len) in iovas {
                let mut body = Vec::with_capacity(24);
                body.extend_from_slice(&24u32.to_le_bytes());
                body.extend_from_slice(&0u32.to_le_bytes());
                body.extend_from_slice(&iova.to_le_bytes());
                body.extend_from_slice(&len.to_le_bytes());
                if self.call(command::DMA_UNMAP, &body, &[], &[]).is_err() {
                    break;
                }
            }
        }
        let _ = self.sock.shutdown(std::net::Shutdown::Both);
    }
}
