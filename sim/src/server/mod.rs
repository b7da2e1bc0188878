//! The simulated chip as a vfio-user PCI device.
//!
//! vfio-user is the protocol QEMU and others use to talk to a PCI device emulated in
//! another process, over a UNIX socket: the client reads and writes the device's
//! regions (PCI configuration space, BARs), maps its own memory for the device's DMA
//! by passing file descriptors, and hands over eventfds for interrupts. This server
//! (built on the rust-vmm `vfio_user` crate) presents the Verilated chip that way:
//!
//! * region 7 (config space): an emulated PCI header — vendor/device IDs, class
//!   "processing accelerator", BAR0 (4 KiB memory), and an MSI-X capability whose
//!   table lives in BAR0 above the chip's registers;
//! * region 0 (BAR0, 8 KiB): the first 4 KiB are MMIO on the chip's register file;
//!   0x1000.. is the MSI-X table and 0x1800.. its pending-bit array, both kept by the
//!   endpoint model;
//! * DMA_MAP: the client's file descriptor is mapped (memmap2) and the chip's DMA goes
//!   straight into it; anything outside the mapped regions completes with an error
//!   that the chip reports;
//! * SET_IRQS (MSI-X): eventfds that the clock thread signals when the chip raises an
//!   interrupt vector.
//!
//! A clock thread runs the chip whenever it has work (after any register write, until
//! it is idle); MMIO is served between its slices. One client at a time: when a client
//! disconnects, the device is reset, its mappings dropped, and the next client served.
//!
//! A client is hostile until checked. The crate never reads the client's socket: the
//! [`relay`] reads every message whole, under a size bound and a deadline, and the
//! [`guard`] lets through only messages whose sizes, indices, counts and file
//! descriptors are exactly what the crate expects; anything else gets an error reply
//! or ends the connection. The backend checks what only it can: DMA memory must be a
//! file sealed against shrinking and as long as the mapping, mappings may not
//! overlap, interrupt descriptors must be eventfds. A panic while serving one client
//! is contained to that connection.

pub mod guard;
pub mod relay;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::mem::size_of;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use vfio_bindings::bindings::vfio::{
    vfio_region_info, VFIO_IRQ_INFO_EVENTFD, VFIO_IRQ_SET_ACTION_TRIGGER,
    VFIO_IRQ_SET_DATA_EVENTFD, VFIO_PCI_BAR0_REGION_INDEX, VFIO_PCI_CONFIG_REGION_INDEX,
    VFIO_PCI_MSIX_IRQ_INDEX, VFIO_PCI_NUM_IRQS, VFIO_PCI_NUM_REGIONS, VFIO_REGION_INFO_FLAG_READ,
    VFIO_REGION_INFO_FLAG_WRITE,
};
use vfio_user::{DmaMapFlags, DmaUnmapFlags, IrqInfo, Server, ServerBackend, ServerRegion};

use crate::{SimError, Simulator, Stop};

use etch_firmware::regs::pci::{
    BAR0_BYTES as BAR0_SIZE, DEVICE_ID, MSIX_PBA, MSIX_TABLE, VENDOR_ID,
};

/// Interrupt vectors the chip has.
const VECTORS: usize = etch_firmware::regs::pci::VECTORS as usize;
/// Bytes of the register file at the start of BAR0.
const REGISTERS: u64 = 4 * etch_firmware::regs::COUNT as u64;
const _: () = assert!(REGISTERS <= MSIX_TABLE && MSIX_TABLE < MSIX_PBA && MSIX_PBA < BAR0_SIZE);
/// Cycles the clock thread runs at a time: an MMIO access waits at most this long.
const SLICE: u64 = 500;

struct Chip {
    sim: Simulator,
    /// DMA errors already reported.
    dma_errors: u64,
    maps: BTreeMap<u64, memmap2::MmapMut>,
    irqs: Vec<Option<File>>,
    busy: bool,
    shutdown: bool,
}

/// The chip, shared by the socket thread (MMIO, DMA maps) and the clock thread.
struct State {
    chip: Mutex<Chip>,
    /// Wakes the clock thread when the chip has work.
    work: Condvar,
    /// Socket-thread accesses waiting for the lock: the clock thread steps aside for
    /// them between slices (a mutex alone would let it take the lock straight back).
    waiting: AtomicUsize,
}

type Shared = Arc<State>;

fn lock(shared: &Shared) -> MutexGuard<'_, Chip> {
    shared.waiting.fetch_add(1, Ordering::SeqCst);
    let guard = shared.chip.lock().unwrap_or_else(|e| e.into_inner());
    shared.waiting.fetch_sub(1, Ordering::SeqCst);
    guard
}

/// Runs the chip while it has work; signals interrupts on the client's eventfds.
fn clock(shared: Shared) {
    loop {
        while shared.waiting.load(Ordering::SeqCst) > 0 {
            std::thread::yield_now();
        }
        let mut chip = shared.chip.lock().unwrap_or_else(|e| e.into_inner());
        while !chip.busy && !chip.shutdown {
            chip = shared.work.wait(chip).unwrap_or_else(|e| e.into_inner());
        }
        if chip.shutdown {
            return;
        }
        let (stop, _) = chip.sim.run(SLICE, (1 << VECTORS) - 1, true);
        let errors = chip.sim.dma_errors();
        if errors > chip.dma_errors {
            tracing::warn!(
                "the chip's DMA reached outside the client's mapped memory ({} access(es)); \
                 the chip completes the command with an error",
                errors - chip.dma_errors
            );
            chip.dma_errors = errors;
        }
        match stop {
            Stop::Interrupt(bits) => {
                for v in 0..VECTORS {
                    if bits & (1 << v) != 0 {
                        if let Some(Some(fd)) = chip.irqs.get_mut(v) {
                            if let Err(e) = fd.write_all(&1u64.to_ne_bytes()) {
                                tracing::warn!("cannot signal interrupt vector {v}: {e}");
                            }
                        }
                    }
                }
            }
            Stop::Idle => chip.busy = false,
            Stop::Budget => {}
        }
    }
}

/// The PCI configuration space of the endpoint.
fn config_space() -> [u8; 256] {
    let mut c = [0u8; 256];
    let put16 =
        |c: &mut [u8; 256], at: usize, v: u16| c[at..at + 2].copy_from_slice(&v.to_le_bytes());
    let put32 =
        |c: &mut [u8; 256], at: usize, v: u32| c[at..at + 4].copy_from_slice(&v.to_le_bytes());
    put16(&mut c, 0x00, VENDOR_ID);
    put16(&mut c, 0x02, DEVICE_ID);
    put16(&mut c, 0x06, 1 << 4); // status: capabilities list
    c[0x08] = 1; // revision
    c[0x09..0x0C].copy_from_slice(&etch_firmware::regs::pci::CLASS.to_le_bytes()[..3]);
    put32(&mut c, 0x10, 0); // BAR0: 32-bit memory, non-prefetchable
    put16(&mut c, 0x2C, VENDOR_ID);
    put16(&mut c, 0x2E, DEVICE_ID);
    c[0x34] = 0x40; // capabilities pointer
                    // MSI-X capability: two vectors, table and PBA in BAR0.
    c[0x40] = 0x11;
    c[0x41] = 0;
    put16(&mut c, 0x42, (VECTORS - 1) as u16);
    put32(&mut c, 0x44, MSIX_TABLE as u32);
    put32(&mut c, 0x48, MSIX_PBA as u32);
    c
}

struct Backend {
    shared: Shared,
    config: [u8; 256],
    msix: [u8; 16 * VECTORS],
}

fn invalid(what: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, what)
}

/// DMA mappings one client may hold at once.
const MAX_MAPPINGS: usize = 1024;

/// DMA memory must stay as long as its mapping for as long as the server uses it: a
/// file that shrank would fault the simulator on its next access. So it must be
/// sealed against shrinking (a memfd with `F_SEAL_SHRINK`) and hold `offset + size`
/// bytes. Returns where the mapping ends in the file.
fn check_dma_memory(fd: &File, offset: u64, size: u64) -> std::io::Result<u64> {
    // SAFETY: fcntl(F_GET_SEALS) on a descriptor owned by `fd`; no memory is passed.
    let seals = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) };
    if seals < 0 || seals & libc::F_SEAL_SHRINK == 0 {
        return Err(invalid(
            "DMA_MAP of memory that is not sealed against shrinking: share a memfd with F_SEAL_SHRINK".into(),
        ));
    }
    let len = fd.metadata()?.len();
    let end = offset
        .checked_add(size)
        .filter(|&e| e <= len)
        .ok_or_else(|| {
            invalid(format!(
                "DMA_MAP of {size} bytes at offset {offset} of a file of {len} bytes"
            ))
        })?;
    if size == 0 || usize::try_from(size).is_err() {
        return Err(invalid(format!("DMA_MAP of {size} bytes")));
    }
    Ok(end)
}

/// Interrupts are signalled by writing to the client's descriptors from the clock
/// thread: anything but an eventfd (a pipe nobody reads) could block it forever.
fn check_eventfd(fd: &File) -> std::io::Result<()> {
    let link = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))?;
    if link.as_os_str() == "anon_inode:[eventfd]" {
        Ok(())
    } else {
        Err(invalid(format!(
            "SET_IRQS with a descriptor that is not an eventfd ({})",
            link.display()
        )))
    }
}

impl Backend {
    fn reset_chip(&mut self, drop_mappings: bool) {
        let mut chip = lock(&self.shared);
        chip.sim.reset();
        if drop_mappings {
            let iovas: Vec<u64> = chip.maps.keys().copied().collect();
            for iova in iovas {
                chip.sim.unmap(iova);
            }
            chip.maps.clear();
            chip.irqs.clear();
        }
        // Boot (the ROM self-test) needs the clock.
        chip.busy = true;
        self.shared.work.notify_all();
    }
}

impl ServerBackend for Backend {
    fn region_read(&mut self, region: u32, offset: u64, data: &mut [u8]) -> std::io::Result<()> {
        let end = offset.saturating_add(data.len() as u64);
        if region == VFIO_PCI_CONFIG_REGION_INDEX && end <= 256 {
            data.copy_from_slice(&self.config[offset as usize..end as usize]);
            return Ok(());
        }
        if region != VFIO_PCI_BAR0_REGION_INDEX || end > BAR0_SIZE {
            return Err(invalid(format!(
                "read of {} bytes at {offset:#x} of region {region}",
                data.len()
            )));
        }
        if offset >= MSIX_PBA {
            data.fill(0);
        } else if offset >= MSIX_TABLE {
            let at = (offset - MSIX_TABLE) as usize;
            let n = data.len().min(self.msix.len().saturating_sub(at));
            data[..n].copy_from_slice(&self.msix[at..at + n]);
        } else {
            if data.len() != 4 || offset % 4 != 0 {
                return Err(invalid(format!(
                    "BAR0 registers are 32-bit aligned words ({} bytes at {offset:#x})",
                    data.len()
                )));
            }
            let v = lock(&self.shared)
                .sim
                .mmio_read(offset as u32)
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            tracing::trace!("BAR0 read {offset:#05x} = {v:#010x}");
            data.copy_from_slice(&v.to_le_bytes());
        }
        Ok(())
    }

    fn region_write(&mut self, region: u32, offset: u64, data: &[u8]) -> std::io::Result<()> {
        let end = offset.saturating_add(data.len() as u64);
        if region == VFIO_PCI_CONFIG_REGION_INDEX && end <= 256 {
            let at = offset as usize;
            if at == 0x10 && data.len() == 4 {
                // BAR sizing: writing all ones reads back the size mask.
                let v = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
                let v = if v == u32::MAX {
                    !(BAR0_SIZE as u32 - 1)
                } else {
                    v & !(BAR0_SIZE as u32 - 1)
                };
                self.config[0x10..0x14].copy_from_slice(&v.to_le_bytes());
            } else if (0x04..0x06).contains(&at) || (0x42..0x44).contains(&at) {
                self.config[at..end as usize].copy_from_slice(data);
            }
            return Ok(());
        }
        if region != VFIO_PCI_BAR0_REGION_INDEX || end > BAR0_SIZE {
            return Err(invalid(format!(
                "write of {} bytes at {offset:#x} of region {region}",
                data.len()
            )));
        }
        if offset >= MSIX_PBA {
            return Ok(());
        }
        if offset >= MSIX_TABLE {
            let at = (offset - MSIX_TABLE) as usize;
            let n = data.len().min(self.msix.len().saturating_sub(at));
            self.msix[at..at + n].copy_from_slice(&data[..n]);
            return Ok(());
        }
        if data.len() != 4 || offset % 4 != 0 {
            return Err(invalid(format!(
                "BAR0 registers are 32-bit aligned words ({} bytes at {offset:#x})",
                data.len()
            )));
        }
        let v = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
        tracing::trace!("BAR0 write {offset:#05x} = {v:#010x}");
        let mut chip = lock(&self.shared);
        chip.sim
            .mmio_write(offset as u32, v)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        chip.busy = true;
        self.shared.work.notify_all();
        Ok(())
    }

    fn dma_map(
        &mut self,
        _flags: DmaMapFlags,
        offset: u64,
        address: u64,
        size: u64,
        fd: Option<File>,
    ) -> std::io::Result<()> {
        let fd = fd.ok_or_else(|| invalid("DMA_MAP without a file descriptor".into()))?;
        let end = check_dma_memory(&fd, offset, size)?;
        let mut chip = lock(&self.shared);
        if chip.maps.len() >= MAX_MAPPINGS {
            return Err(invalid(format!(
                "DMA_MAP: the client already shares {MAX_MAPPINGS} mappings"
            )));
        }
        let last = address
            .checked_add(size - 1)
            .ok_or_else(|| invalid(format!("DMA_MAP of {size} bytes at {address:#x}")))?;
        if let Some((&at, m)) = chip.maps.range(..=last).next_back() {
            if at + (m.len() as u64 - 1) >= address {
                return Err(invalid(format!(
                    "DMA_MAP of {size} bytes at {address:#x} overlaps the mapping at {at:#x}"
                )));
            }
        }
        tracing::trace!("DMA memory file ends at {end}");
        // SAFETY: the client shares this memory with the device on purpose, as DMA
        // memory. It cannot shrink under the mapping (checked above: sealed, and at
        // least offset + size long). The mapping is kept in `maps` (and so outlives the
        // simulator's use of it) until DMA_UNMAP or reset, which unmap it from the
        // simulator first; it overlaps no other mapping, so the simulator never holds
        // a pointer into memory already unmapped.
        let mut map = unsafe {
            memmap2::MmapOptions::new()
                .offset(offset)
                .len(size as usize)
                .map_mut(&fd)
        }?;
        // SAFETY: `map` stays in `chip.maps` until `sim.unmap(address)` is called.
        unsafe { chip.sim.map(address, map.as_mut_ptr(), size as usize) };
        chip.maps.insert(address, map);
        tracing::debug!("mapped {size} bytes of DMA memory at {address:#x}");
        Ok(())
    }

    fn dma_unmap(
        &mut self,
        _flags: DmaUnmapFlags,
        address: u64,
        _size: u64,
    ) -> std::io::Result<()> {
        let mut chip = lock(&self.shared);
        chip.sim.unmap(address);
        chip.maps.remove(&address);
        Ok(())
    }

    fn reset(&mut self) -> std::io::Result<()> {
        tracing::info!("device reset requested by the client");
        self.reset_chip(false);
        Ok(())
    }

    fn set_irqs(
        &mut self,
        index: u32,
        flags: u32,
        start: u32,
        count: u32,
        fds: Vec<File>,
    ) -> std::io::Result<()> {
        if index != VFIO_PCI_MSIX_IRQ_INDEX {
            return Err(invalid(format!(
                "only MSI-X interrupts (index {VFIO_PCI_MSIX_IRQ_INDEX}) exist, not {index}"
            )));
        }
        for f in &fds {
            check_eventfd(f)?;
        }
        let mut chip = lock(&self.shared);
        chip.irqs.resize_with(VECTORS, || None);
        let eventfds = flags & (VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER)
            == (VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER);
        let mut fds = fds.into_iter();
        for v in start..start.saturating_add(count) {
            if let Some(slot) = chip.irqs.get_mut(v as usize) {
                *slot = if eventfds { fds.next() } else { None };
            }
        }
        Ok(())
    }
}

fn regions() -> Vec<ServerRegion> {
    (0..VFIO_PCI_NUM_REGIONS)
        .map(|index| {
            let size = match index {
                VFIO_PCI_BAR0_REGION_INDEX => BAR0_SIZE,
                VFIO_PCI_CONFIG_REGION_INDEX => 256,
                _ => 0,
            };
            let flags = if size > 0 {
                VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE
            } else {
                0
            };
            ServerRegion {
                region_info: vfio_region_info {
                    argsz: size_of::<vfio_region_info>() as u32,
                    flags,
                    index,
                    cap_offset: 0,
                    size,
                    offset: 0,
                },
                sparse_areas: Vec::new(),
                mmap_fd: None,
            }
        })
        .collect()
}

fn irqs() -> Vec<IrqInfo> {
    (0..VFIO_PCI_NUM_IRQS)
        .map(|index| IrqInfo {
            index,
            flags: if index == VFIO_PCI_MSIX_IRQ_INDEX {
                VFIO_IRQ_INFO_EVENTFD
            } else {
                0
            },
            count: if index == VFIO_PCI_MSIX_IRQ_INDEX {
                VECTORS as u32
            } else {
                0
            },
        })
        .collect()
}

/// Serves the chip of build directory `out` (simulator library `lib`) on `socket`,
/// one client after another; returns after the first client when `once`.
pub fn serve(lib: &Path, out: &Path, socket: &Path, once: bool) -> Result<(), SimError> {
    remove_stale_socket(socket)?;
    let public = Bound::listen(socket.to_path_buf())?;
    // The crate listens on a socket of its own in a directory only this user can
    // enter; the only connection it gets is the relay's.
    let private = PrivateDir::new()?;
    let inner = Bound::listen(private.0.join("crate.sock"))?;
    let inner_path = inner.path.clone();
    let listener = inner
        .listener
        .try_clone()
        .map_err(|e| SimError::Serve(format!("cannot share the relay socket: {e}")))?;
    let server = Server::from_owned_fd(OwnedFd::from(listener), true, irqs(), regions());
    let sim = Simulator::new(lib, out)?;
    let shared: Shared = Arc::new(State {
        chip: Mutex::new(Chip {
            sim,
            maps: BTreeMap::new(),
            irqs: Vec::new(),
            busy: true,
            shutdown: false,
            dma_errors: 0,
        }),
        work: Condvar::new(),
        waiting: AtomicUsize::new(0),
    });
    let clock_shared = shared.clone();
    let clock_thread = std::thread::spawn(move || clock(clock_shared));
    let mut backend = Backend {
        shared: shared.clone(),
        config: config_space(),
        msix: [0; 16 * VECTORS],
    };
    tracing::info!("serving {} on {}", out.display(), socket.display());
    let result = loop {
        let client = match public.listener.accept() {
            Ok((c, _)) => c,
            Err(e) => break Err(SimError::Serve(format!("cannot accept a client: {e}"))),
        };
        let r = serve_client(&server, &mut backend, client, &inner_path);
        match &r {
            Ok(()) => tracing::info!("client disconnected: resetting the device"),
            Err(e) => tracing::warn!("client connection ended: {e}; resetting the device"),
        }
        backend.reset_chip(true);
        backend.config = config_space();
        backend.msix = [0; 16 * VECTORS];
        if once {
            break r.map_err(SimError::Serve);
        }
    };
    lock(&shared).shutdown = true;
    shared.work.notify_all();
    let _ = clock_thread.join();
    result
}

/// One client, relayed through the guard to the crate's server until either side
/// ends; a panic inside the crate or the backend ends only this connection.
fn serve_client(
    server: &Server,
    backend: &mut Backend,
    client: UnixStream,
    inner: &Path,
) -> Result<(), String> {
    let crate_side =
        UnixStream::connect(inner).map_err(|e| format!("cannot reach the protocol server: {e}"))?;
    let clone = |s: &UnixStream| {
        s.try_clone()
            .map_err(|e| format!("cannot share a socket: {e}"))
    };
    let writer = relay::Writer::new(clone(&client)?)
        .map_err(|e| format!("cannot set the client's write deadline: {e}"))?;
    let (req_client, req_crate, req_writer) =
        (clone(&client)?, clone(&crate_side)?, writer.clone());
    let requests = std::thread::spawn(move || {
        let end = relay::requests(&req_client, &req_crate, &req_writer);
        // The crate sees the end of its stream and returns from `run`.
        let _ = req_crate.shutdown(std::net::Shutdown::Both);
        end
    });
    let (rep_crate, rep_client) = (clone(&crate_side)?, clone(&client)?);
    let replies = std::thread::spawn(move || {
        relay::replies(&rep_crate, &writer);
        let _ = rep_crate.shutdown(std::net::Shutdown::Both);
        let _ = rep_client.shutdown(std::net::Shutdown::Both);
    });
    let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| server.run(backend)));
    let _ = crate_side.shutdown(std::net::Shutdown::Both);
    let _ = client.shutdown(std::net::Shutdown::Both);
    let end = requests.join();
    let _ = replies.join();
    match (ran, end) {
        (Err(_), _) => Err("the protocol server panicked on this client's input".into()),
        (_, Ok(relay::End::Broken(why))) => Err(why),
        (Ok(Err(e)), _) => Err(e.to_string()),
        _ => Ok(()),
    }
}

/// A listening socket whose file is removed when it is dropped.
struct Bound {
    listener: UnixListener,
    path: PathBuf,
}

impl Bound {
    fn listen(path: PathBuf) -> Result<Self, SimError> {
        let listener = UnixListener::bind(&path)
            .map_err(|e| SimError::Serve(format!("cannot listen on {}: {e}", path.display())))?;
        Ok(Bound { listener, path })
    }
}

impl Drop for Bound {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A directory only this user can enter, removed when dropped.
struct PrivateDir(PathBuf);

impl PrivateDir {
    fn new() -> Result<Self, SimError> {
        use std::os::unix::fs::DirBuilderExt;
        let base = std::env::temp_dir();
        for n in 0..100u32 {
            let stamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            let p = base.join(format!("etch-serve-{}-{stamp:x}-{n}", std::process::id()));
            match std::fs::DirBuilder::new().mode(0o700).create(&p) {
                Ok(()) => return Ok(PrivateDir(p)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(source) => return Err(SimError::Io { path: p, source }),
            }
        }
        Err(SimError::Serve(format!(
            "cannot make a private directory in {}",
            base.display()
        )))
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A socket left behind by a server that was killed is removed; a live one (something
/// answers on it) or a path that is not a socket is an error.
fn remove_stale_socket(socket: &Path) -> Result<(), SimError> {
    use std::os::unix::fs::FileTypeExt;
    let Ok(meta) = std::fs::symlink_metadata(socket) else {
        return Ok(());
    };
    if !meta.file_type().is_socket() {
        return Err(SimError::Serve(format!(
            "{} exists and is not a socket; refusing to replace it",
            socket.display()
        )));
    }
    if std::os::unix::net::UnixStream::connect(socket).is_ok() {
        return Err(SimError::Serve(format!(
            "another server is listening on {}",
            socket.display()
        )));
    }
    tracing::info!("removing the stale socket {}", socket.display());
    std::fs::remove_file(socket).map_err(|source| SimError::Io {
        path: socket.to_path_buf(),
        source,
    })
}
