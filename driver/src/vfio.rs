//! The VFIO layer: any PCI function bound to `vfio-pci`, driven from user space.
//!
//! Opening follows the VFIO recipe (rust-vmm `vfio-ioctls`): a container
//! (`/dev/vfio/vfio`, type-1 IOMMU), the function's group (`/dev/vfio/<group>`), the
//! function itself. Then:
//!
//! * BAR0 is mapped into this process with memmap2 (from the VFIO device file at the
//!   region's offset) and read and written with volatile 32- and 64-bit accesses; a BAR
//!   that VFIO says cannot be mapped is reached with pread/pwrite;
//! * the command register gets memory-space and bus-master enable, without which the
//!   function cannot DMA;
//! * DMA memory is anonymous memory in 4 MiB chunks, each pinned and entered into the
//!   IOMMU with VFIO_IOMMU_MAP_DMA at an IOVA the driver chooses (from 4 GiB up, so that
//!   64-bit addressing is exercised);
//! * MSI or MSI-X vectors signal eventfds, which [`VfioFunction::wait_interrupts`] polls;
//! * a reset is VFIO_DEVICE_RESET (function-level, power-management or bus reset,
//!   whichever the kernel found), after which bus mastering and the vectors are enabled
//!   again.
//!
//! [`crate::VfioPci`] is this layer plus an etch board's identity and its two MSI-X
//! vectors. The layer itself knows no device: `driver/tests/kvm_vfio.rs` runs it inside a
//! QEMU guest against QEMU's `edu` teaching device behind a virtual IOMMU.

use std::collections::BTreeSet;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use vfio_bindings::bindings::vfio::{
    VFIO_PCI_BAR0_REGION_INDEX, VFIO_PCI_CONFIG_REGION_INDEX, VFIO_PCI_MSIX_IRQ_INDEX,
    VFIO_PCI_MSI_IRQ_INDEX, VFIO_REGION_INFO_FLAG_MMAP,
};
use vfio_ioctls::{VfioContainer, VfioDevice, VfioOps};
use vmm_sys_util::eventfd::EventFd;

use crate::device::DmaBuffer;
use crate::dma::{Chunk, DmaPool};
use crate::error::{DriverError, Result};
use crate::sysfs::PciFunction;
use crate::vfio_user::new_eventfd;

/// PCI command register: memory space enable and bus master enable.
const COMMAND_MEMORY_AND_MASTER: u16 = 0b110;
/// Offset of the command register in configuration space.
const CONFIG_COMMAND: u64 = 4;
/// `VFIO_DEVICE_RESET`: `_IO(VFIO_TYPE, VFIO_BASE + 11)` from `<linux/vfio.h>`.
const VFIO_DEVICE_RESET: libc::c_ulong = ((b';' as libc::c_ulong) << 8) | (100 + 11);

/// A device region mapped into this process, accessed with volatile 32- and 64-bit words.
pub struct MappedRegion {
    map: memmap2::MmapMut,
    ptr: *mut u8,
}

// SAFETY: the region is owned by this value; accesses are volatile and go through
// `&self`/`&mut self`, so moving it to another thread is sound.
unsafe impl Send for MappedRegion {}

impl MappedRegion {
    /// Maps `len` bytes of `file` at `offset` (a VFIO device file at a region's offset,
    /// or any file in tests).
    pub fn map(file: &File, offset: u64, len: usize) -> Result<Self> {
        // SAFETY: the mapping is of device registers (or a test file) that no other
        // code in this process maps; it is accessed only with volatile reads and writes
        // through `ptr`, never through references.
        let mut map = unsafe {
            memmap2::MmapOptions::new()
                .offset(offset)
                .len(len)
                .map_mut(file)
        }
        .map_err(|e| DriverError::Vfio(format!("cannot map the BAR: {e}")))?;
        let ptr = map.as_mut_ptr();
        Ok(MappedRegion { map, ptr })
    }

    /// The address of the `width`-byte word at byte `offset`, checked.
    fn word(&self, offset: u64, width: u64) -> Result<*mut u8> {
        if offset % width != 0 || offset + width > self.map.len() as u64 {
            return Err(DriverError::InvalidArgument(format!(
                "register offset {offset:#x} is not a {width}-byte word inside the {}-byte BAR",
                self.map.len()
            )));
        }
        // SAFETY: `offset + width <= len`, so the word lies inside the mapping; mappings
        // are page-aligned, so a multiple of `width` is `width`-aligned.
        Ok(unsafe { self.ptr.add(offset as usize) })
    }

    /// Reads the 32-bit little-endian word at byte `offset`.
    pub fn read32(&self, offset: u64) -> Result<u32> {
        let p = self.word(offset, 4)? as *const u32;
        // SAFETY: `p` is an aligned word inside the live mapping (`word`).
        Ok(u32::from_le(unsafe { std::ptr::read_volatile(p) }))
    }

    /// Writes the 32-bit little-endian word at byte `offset`.
    pub fn write32(&mut self, offset: u64, value: u32) -> Result<()> {
        let p = self.word(offset, 4)? as *mut u32;
        // SAFETY: as in `read32`; the mapping is writable.
        unsafe { std::ptr::write_volatile(p, value.to_le()) };
        Ok(())
    }

    /// Reads the 64-bit little-endian word at byte `offset` (one 8-byte access).
    pub fn read64(&self, offset: u64) -> Result<u64> {
        let p = self.word(offset, 8)? as *const u64;
        // SAFETY: `p` is an aligned 8-byte word inside the live mapping (`word`).
        Ok(u64::from_le(unsafe { std::ptr::read_volatile(p) }))
    }

    /// Writes the 64-bit little-endian word at byte `offset` (one 8-byte access).
    pub fn write64(&mut self, offset: u64, value: u64) -> Result<()> {
        let p = self.word(offset, 8)? as *mut u64;
        // SAFETY: as in `read64`; the mapping is writable.
        unsafe { std::ptr::write_volatile(p, value.to_le()) };
        Ok(())
    }

    /// Bytes mapped.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether nothing is mapped.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// How a function signals interrupts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interrupts {
    /// Message-signalled interrupts (one or a power of two of vectors).
    Msi,
    /// MSI-X (a table of vectors in a BAR).
    MsiX,
}

impl Interrupts {
    fn index(self) -> u32 {
        match self {
            Interrupts::Msi => VFIO_PCI_MSI_IRQ_INDEX,
            Interrupts::MsiX => VFIO_PCI_MSIX_IRQ_INDEX,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Interrupts::Msi => "MSI",
            Interrupts::MsiX => "MSI-X",
        }
    }
}

enum Bar {
    Mapped(MappedRegion),
    /// Through the device file (pread/pwrite by vfio-ioctls).
    Syscall,
}

/// A PCI function bound to vfio-pci, opened through its IOMMU group.
pub struct VfioFunction {
    function: PciFunction,
    bar0: Bar,
    bar0_len: u64,
    /// A duplicate of the VFIO device file (for the BAR mapping and the reset ioctl).
    device_file: Option<File>,
    irqs: Vec<EventFd>,
    interrupts: Option<Interrupts>,
    pool: DmaPool,
    // Dropped after everything that uses it.
    device: VfioDevice,
    container: Arc<VfioContainer>,
}

/// The process's open VFIO device files (`anon_inode:[vfio-device]`).
fn vfio_device_fds() -> BTreeSet<i32> {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return BTreeSet::new();
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| {
            let fd: i32 = e.file_name().to_str()?.parse().ok()?;
            let target = std::fs::read_link(e.path()).ok()?;
            (target.to_string_lossy() == "anon_inode:[vfio-device]").then_some(fd)
        })
        .collect()
}

/// A duplicate of open file descriptor `fd`.
fn duplicate(fd: i32) -> Option<File> {
    // SAFETY: `fd` is an open VFIO device file of this process (it was just listed in
    // /proc/self/fd); dup gives an independent descriptor.
    let dup = unsafe { libc::dup(fd) };
    // SAFETY: `dup` was just returned by dup(2) and is owned by nobody else.
    (dup >= 0).then(|| File::from(unsafe { OwnedFd::from_raw_fd(dup) }))
}

fn vfio_err(what: &str) -> impl Fn(vfio_ioctls::VfioError) -> DriverError + '_ {
    move |e| DriverError::Vfio(format!("{what}: {e}"))
}

impl VfioFunction {
    /// Opens `function` (found with [`crate::sysfs`]); `dev_vfio` is normally
    /// `/dev/vfio`. Fails with the reason when it is not bound to vfio-pci, has no IOMMU
    /// group, or its group file cannot be opened.
    pub fn open(function: PciFunction, dev_vfio: &Path) -> Result<Self> {
        if let Some(problem) = function.problem(dev_vfio) {
            return Err(DriverError::Vfio(format!(
                "{}: {problem}",
                function.address
            )));
        }
        let container =
            Arc::new(VfioContainer::new(None).map_err(vfio_err("cannot open the VFIO container"))?);
        let before = vfio_device_fds();
        let device = VfioDevice::new(&function.path, container.clone() as Arc<dyn VfioOps>, false)
            .map_err(vfio_err("cannot open the device through VFIO"))?;
        // vfio-ioctls keeps the device file to itself; the BAR mapping and the reset need
        // it, so take a duplicate of the one VFIO file descriptor that just appeared.
        let new: Vec<i32> = vfio_device_fds().difference(&before).copied().collect();
        let device_file = match new.as_slice() {
            [fd] => duplicate(*fd),
            _ => None,
        };
        let bar0_len = device.get_region_size(VFIO_PCI_BAR0_REGION_INDEX);
        let mappable =
            device.get_region_flags(VFIO_PCI_BAR0_REGION_INDEX) & VFIO_REGION_INFO_FLAG_MMAP != 0;
        let bar0 = match &device_file {
            Some(file) if mappable && bar0_len > 0 => {
                let offset = device.get_region_offset(VFIO_PCI_BAR0_REGION_INDEX);
                match MappedRegion::map(file, offset, bar0_len as usize) {
                    Ok(m) => Bar::Mapped(m),
                    Err(e) => {
                        tracing::warn!("{e}; using pread/pwrite for BAR0");
                        Bar::Syscall
                    }
                }
            }
            _ => Bar::Syscall,
        };
        let mut f = VfioFunction {
            function,
            bar0,
            bar0_len,
            device_file,
            irqs: Vec::new(),
            interrupts: None,
            pool: DmaPool::default(),
            device,
            container,
        };
        f.enable_bus_master();
        Ok(f)
    }

    /// The PCI function.
    pub fn function(&self) -> &PciFunction {
        &self.function
    }

    /// Bytes of BAR0.
    pub fn bar0_len(&self) -> u64 {
        self.bar0_len
    }

    /// Whether BAR0 is mapped into this process (otherwise it is reached with
    /// pread/pwrite on the device file).
    pub fn bar0_mapped(&self) -> bool {
        matches!(self.bar0, Bar::Mapped(_))
    }

    fn check_bar0(&self, offset: u64, width: u64) -> Result<()> {
        if offset % width != 0 || offset + width > self.bar0_len {
            return Err(DriverError::InvalidArgument(format!(
                "register offset {offset:#x} is not a {width}-byte word inside the {}-byte BAR0",
                self.bar0_len
            )));
        }
        Ok(())
    }

    /// Reads the 32-bit word at byte `offset` of BAR0.
    pub fn read32(&self, offset: u64) -> Result<u32> {
        match &self.bar0 {
            Bar::Mapped(m) => m.read32(offset),
            Bar::Syscall => {
                self.check_bar0(offset, 4)?;
                let mut b = [0u8; 4];
                self.device
                    .region_read(VFIO_PCI_BAR0_REGION_INDEX, &mut b, offset);
                Ok(u32::from_le_bytes(b))
            }
        }
    }

    /// Writes the 32-bit word at byte `offset` of BAR0.
    pub fn write32(&mut self, offset: u64, value: u32) -> Result<()> {
        match &mut self.bar0 {
            Bar::Mapped(m) => m.write32(offset, value),
            Bar::Syscall => {
                self.check_bar0(offset, 4)?;
                self.device
                    .region_write(VFIO_PCI_BAR0_REGION_INDEX, &value.to_le_bytes(), offset);
                Ok(())
            }
        }
    }

    /// Reads the 64-bit word at byte `offset` of BAR0 in one access.
    pub fn read64(&self, offset: u64) -> Result<u64> {
        match &self.bar0 {
            Bar::Mapped(m) => m.read64(offset),
            Bar::Syscall => {
                self.check_bar0(offset, 8)?;
                let mut b = [0u8; 8];
                self.device
                    .region_read(VFIO_PCI_BAR0_REGION_INDEX, &mut b, offset);
                Ok(u64::from_le_bytes(b))
            }
        }
    }

    /// Writes the 64-bit word at byte `offset` of BAR0 in one access.
    pub fn write64(&mut self, offset: u64, value: u64) -> Result<()> {
        match &mut self.bar0 {
            Bar::Mapped(m) => m.write64(offset, value),
            Bar::Syscall => {
                self.check_bar0(offset, 8)?;
                self.device
                    .region_write(VFIO_PCI_BAR0_REGION_INDEX, &value.to_le_bytes(), offset);
                Ok(())
            }
        }
    }

    /// The PCI command register.
    pub fn command(&self) -> u16 {
        let mut cmd = [0u8; 2];
        self.device
            .region_read(VFIO_PCI_CONFIG_REGION_INDEX, &mut cmd, CONFIG_COMMAND);
        u16::from_le_bytes(cmd)
    }

    fn enable_bus_master(&mut self) {
        let v = self.command() | COMMAND_MEMORY_AND_MASTER;
        self.device.region_write(
            VFIO_PCI_CONFIG_REGION_INDEX,
            &v.to_le_bytes(),
            CONFIG_COMMAND,
        );
    }

    /// Routes `vectors` interrupt vectors of kind `kind` to eventfds (vector `v` is bit
    /// `v` of what [`VfioFunction::wait_interrupts`] returns).
    pub fn enable_interrupts(&mut self, kind: Interrupts, vectors: usize) -> Result<()> {
        let have = self
            .device
            .get_irq_info(kind.index())
            .map_or(0, |i| i.count as usize);
        if vectors == 0 || vectors > have || vectors > 32 {
            return Err(DriverError::Vfio(format!(
                "{} has {have} {} vectors; {vectors} wanted",
                self.function.address,
                kind.name()
            )));
        }
        if let Some(old) = self.interrupts.take() {
            let _ = self.device.disable_irq(old.index());
        }
        let mut irqs = Vec::with_capacity(vectors);
        for _ in 0..vectors {
            irqs.push(new_eventfd()?);
        }
        self.device
            .enable_irq(kind.index(), irqs.iter().collect())
            .map_err(|e| DriverError::Vfio(format!("cannot enable {}: {e}", kind.name())))?;
        self.irqs = irqs;
        self.interrupts = Some(kind);
        Ok(())
    }

    /// Waits up to `timeout` for any vector in `mask`; returns the vectors that fired
    /// (bit per vector, 0 when none did). Each eventfd that fired is consumed.
    pub fn wait_interrupts(&mut self, mask: u32, timeout: Duration) -> Result<u32> {
        let vectors: Vec<usize> = (0..self.irqs.len())
            .filter(|v| mask & (1 << v) != 0)
            .collect();
        if vectors.is_empty() {
            std::thread::sleep(timeout);
            return Ok(0);
        }
        let mut fds: Vec<libc::pollfd> = vectors
            .iter()
            .map(|&v| libc::pollfd {
                fd: self.irqs[v].as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            // SAFETY: `fds` is a valid array of `fds.len()` pollfd structures that
            // outlives the call.
            let n = unsafe {
                libc::poll(
                    fds.as_mut_ptr(),
                    fds.len() as libc::nfds_t,
                    left.as_millis().min(i32::MAX as u128) as i32,
                )
            };
            if n > 0 || left.is_zero() {
                break;
            }
            if n < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
                return Err(DriverError::Vfio(format!(
                    "poll on the interrupt eventfds: {}",
                    std::io::Error::last_os_error()
                )));
            }
        }
        let mut fired = 0;
        for (k, &v) in vectors.iter().enumerate() {
            if fds[k].revents & libc::POLLIN != 0 {
                let _ = self.irqs[v].read();
                fired |= 1 << v;
            }
        }
        Ok(fired)
    }

    /// Allocates `len` zeroed bytes of DMA memory, mapped in the IOMMU.
    pub fn dma_alloc(&mut self, len: usize) -> Result<DmaBuffer> {
        let mut pool = std::mem::take(&mut self.pool);
        let r = pool.alloc(len, &mut |iova, bytes| self.new_chunk(iova, bytes));
        self.pool = pool;
        r
    }

    /// Frees a DMA buffer (its chunk stays mapped for the next one).
    pub fn dma_free(&mut self, buf: DmaBuffer) -> Result<()> {
        self.pool.free(buf)
    }

    /// Copies what the device wrote out of a DMA buffer.
    pub fn dma_read(&self, buf: &DmaBuffer, offset: usize, out: &mut [u8]) -> Result<()> {
        self.pool.read(buf, offset, out)
    }

    /// Copies `data` into a DMA buffer for the device.
    pub fn dma_write(&self, buf: &DmaBuffer, offset: usize, data: &[u8]) -> Result<()> {
        self.pool.write(buf, offset, data)
    }

    fn new_chunk(&mut self, iova: u64, bytes: usize) -> Result<Chunk> {
        let map = memmap2::MmapMut::map_anon(bytes)
            .map_err(|e| DriverError::Dma(format!("cannot allocate DMA memory: {e}")))?;
        let chunk = Chunk::new(iova, map);
        // SAFETY: the chunk's memory stays mapped until `Drop` unmaps it from the IOMMU
        // first; the host touches it only through `DmaPool`'s volatile accesses, never
        // through references, as vfio_dma_map's contract requires.
        unsafe { self.container.vfio_dma_map(iova, bytes, chunk.ptr()) }.map_err(vfio_err(
            "cannot map DMA memory into the IOMMU (locked-memory limit? see docs/driver.md)",
        ))?;
        Ok(chunk)
    }

    /// Resets the function (VFIO_DEVICE_RESET), then enables bus mastering and the
    /// interrupt vectors again and drops interrupts signalled before the reset. Fails
    /// when the kernel found no way to reset it.
    pub fn reset(&mut self) -> Result<()> {
        let Some(file) = &self.device_file else {
            return Err(DriverError::Vfio(format!(
                "{}: cannot reset: the VFIO device file was not found",
                self.function.address
            )));
        };
        // SAFETY: `file` is an open VFIO device file; VFIO_DEVICE_RESET takes no argument.
        let r = unsafe { libc::ioctl(file.as_raw_fd(), VFIO_DEVICE_RESET as _) };
        if r < 0 {
            return Err(DriverError::Vfio(format!(
                "{}: VFIO_DEVICE_RESET failed: {} (the kernel found no reset method?)",
                self.function.address,
                std::io::Error::last_os_error()
            )));
        }
        // A reset clears the command register and the MSI/MSI-X enables.
        self.enable_bus_master();
        if let Some(kind) = self.interrupts {
            self.device
                .enable_irq(kind.index(), self.irqs.iter().collect())
                .map_err(|e| {
                    DriverError::Vfio(format!(
                        "cannot enable {} after the reset: {e}",
                        kind.name()
                    ))
                })?;
        }
        for e in &self.irqs {
            while e.read().is_ok() {}
        }
        Ok(())
    }
}

impl Drop for VfioFunction {
    fn drop(&mut self) {
        if let Some(kind) = self.interrupts {
            let _ = self.device.disable_irq(kind.index());
        }
        for c in self.pool.chunks() {
            if let Err(e) = self.container.vfio_dma_unmap(c.iova, c.map.len()) {
                tracing::warn!("cannot unmap DMA memory at {:#x}: {e}", c.iova);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_file_backed_region_reads_and_writes_words_at_an_offset() {
        let page = crate::dma::page_size();
        let mut f = tempfile::tempfile().unwrap();
        let mut image = vec![0u8; 3 * page];
        image[page..page + 4].copy_from_slice(&0x4554_4348u32.to_le_bytes());
        f.write_all(&image).unwrap();
        let mut r = MappedRegion::map(&f, page as u64, 2 * page).unwrap();
        assert_eq!(r.len(), 2 * page);
        assert_eq!(r.read32(0).unwrap(), 0x4554_4348);
        r.write32(8, 0xDEAD_BEEF).unwrap();
        assert_eq!(r.read32(8).unwrap(), 0xDEAD_BEEF);
        r.write64(16, 0x0123_4567_89AB_CDEF).unwrap();
        assert_eq!(r.read64(16).unwrap(), 0x0123_4567_89AB_CDEF);
        assert_eq!(r.read32(20).unwrap(), 0x0123_4567, "little-endian halves");
        drop(r);
        let mut back = vec![0u8; 3 * page];
        use std::io::{Read, Seek};
        f.rewind().unwrap();
        f.read_exact(&mut back).unwrap();
        assert_eq!(&back[page + 8..page + 12], &0xDEAD_BEEFu32.to_le_bytes());
        let r = MappedRegion::map(&f, page as u64, 2 * page).unwrap();
        assert!(r.read32(2).is_err(), "unaligned");
        assert!(r.read64(4).is_err(), "unaligned 64-bit");
        assert!(r.read32(2 * page as u64).is_err(), "outside");
        assert!(r.read64(2 * page as u64 - 4).is_err(), "straddles the end");
    }

    #[test]
    fn the_reset_ioctl_number_is_linux_vfio_device_reset() {
        // <linux/vfio.h>: VFIO_TYPE ';' (0x3b), VFIO_BASE 100, VFIO_DEVICE_RESET = +11.
        assert_eq!(VFIO_DEVICE_RESET, 0x3b6f);
    }
}
