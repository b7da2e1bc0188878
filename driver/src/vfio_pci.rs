//! The VFIO backend: an etch board on PCIe, bound to `vfio-pci`, driven from user space.
//!
//! Opening follows the VFIO recipe (rust-vmm `vfio-ioctls`): a container
//! (`/dev/vfio/vfio`, type-1 IOMMU), the device's group (`/dev/vfio/<group>`), the device
//! itself. Then:
//!
//! * BAR0 is mapped into this process with memmap2 (from the VFIO device file at the
//!   region's offset) and the registers are read and written with volatile 32-bit
//!   accesses; a BAR that VFIO says cannot be mapped is reached with pread/pwrite;
//! * the command register gets memory-space and bus-master enable, without which the
//!   board cannot DMA;
//! * DMA memory is anonymous memory in 4 MiB chunks, each pinned and entered into the
//!   IOMMU with VFIO_IOMMU_MAP_DMA at an IOVA the driver chooses;
//! * the two MSI-X vectors signal eventfds, which `wait` polls.
//!
//! Without a board here, what is tested is discovery (a fake sysfs tree) and the BAR
//! mapping (a file-backed region); `docs/driver.md` says what remains untested.

use std::collections::BTreeSet;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use vfio_bindings::bindings::vfio::{
    VFIO_PCI_BAR0_REGION_INDEX, VFIO_PCI_CONFIG_REGION_INDEX, VFIO_REGION_INFO_FLAG_MMAP,
};
use vfio_ioctls::{VfioContainer, VfioDevice, VfioOps};
use vmm_sys_util::eventfd::EventFd;

use crate::device::{Device, DmaBuffer, Event};
use crate::dma::{Chunk, DmaPool};
use crate::error::{DriverError, Result};
use crate::sysfs::{etch_function, PciFunction};
use crate::vfio_user::new_eventfd;

/// How long one wait for an interrupt lasts.
const WAIT_SLICE: Duration = Duration::from_millis(5);
/// PCI command register: memory space enable and bus master enable.
const COMMAND_MEMORY_AND_MASTER: u16 = 0b110;

/// A device region mapped into this process, accessed with volatile 32-bit words.
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

    fn word(&self, offset: u64) -> Result<*mut u32> {
        if offset % 4 != 0 || offset + 4 > self.map.len() as u64 {
            return Err(DriverError::InvalidArgument(format!(
                "register offset {offset:#x} is not a word inside the {}-byte BAR",
                self.map.len()
            )));
        }
        // SAFETY: `offset + 4 <= len`, so the word lies inside the mapping; mappings are
        // page-aligned, so a multiple of 4 is 4-byte aligned.
        Ok(unsafe { self.ptr.add(offset as usize) } as *mut u32)
    }

    /// Reads the 32-bit little-endian word at byte `offset`.
    pub fn read32(&self, offset: u64) -> Result<u32> {
        let p = self.word(offset)?;
        // SAFETY: `p` is an aligned word inside the live mapping (`word`).
        Ok(u32::from_le(unsafe { std::ptr::read_volatile(p) }))
    }

    /// Writes the 32-bit little-endian word at byte `offset`.
    pub fn write32(&mut self, offset: u64, value: u32) -> Result<()> {
        let p = self.word(offset)?;
        // SAFETY: as in `read32`; the mapping is writable.
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

enum Bar {
    Mapped(MappedRegion),
    /// Through the device file (pread/pwrite by vfio-ioctls).
    Syscall,
}

/// An etch board bound to vfio-pci.
pub struct VfioPci {
    function: PciFunction,
    bar: Bar,
    irqs: Vec<EventFd>,
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

fn vfio_err(what: &str) -> impl Fn(vfio_ioctls::VfioError) -> DriverError + '_ {
    move |e| DriverError::Vfio(format!("{what}: {e}"))
}

impl VfioPci {
    /// Opens the etch board at PCI `address` (found under `sysfs`, normally `/sys`).
    pub fn open(address: &str, sysfs: &Path) -> Result<Self> {
        let function = etch_function(sysfs, address)?;
        if let Some(problem) = function.problem(Path::new("/dev/vfio")) {
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
        // vfio-ioctls keeps the device file to itself; the BAR mapping needs it, so take
        // a duplicate of the one VFIO file descriptor that just appeared.
        let new: Vec<i32> = vfio_device_fds().difference(&before).copied().collect();
        let bar0_flags = device.get_region_flags(VFIO_PCI_BAR0_REGION_INDEX);
        let bar0_size = device.get_region_size(VFIO_PCI_BAR0_REGION_INDEX);
        if bar0_size < 4 * etch_firmware::regs::COUNT as u64 {
            return Err(DriverError::NotEtchDevice(format!(
                "BAR0 of {} has {bar0_size} bytes, too few for the register file",
                function.address
            )));
        }
        let bar = match new.as_slice() {
            [fd] if bar0_flags & VFIO_REGION_INFO_FLAG_MMAP != 0 => {
                // SAFETY: `fd` is an open VFIO device file of this process (it was just
                // listed in /proc/self/fd); dup gives an independent descriptor.
                let dup = unsafe { libc::dup(*fd) };
                if dup < 0 {
                    Bar::Syscall
                } else {
                    // SAFETY: `dup` was just returned by dup(2) and is owned by nobody else.
                    let file = File::from(unsafe { OwnedFd::from_raw_fd(dup) });
                    let offset = device.get_region_offset(VFIO_PCI_BAR0_REGION_INDEX);
                    match MappedRegion::map(&file, offset, bar0_size as usize) {
                        Ok(m) => Bar::Mapped(m),
                        Err(e) => {
                            tracing::warn!("{e}; using pread/pwrite for BAR0");
                            Bar::Syscall
                        }
                    }
                }
            }
            _ => Bar::Syscall,
        };
        let mut irqs = Vec::new();
        for _ in 0..etch_firmware::regs::pci::VECTORS {
            irqs.push(new_eventfd()?);
        }
        let mut dev = VfioPci {
            function,
            bar,
            irqs,
            pool: DmaPool::default(),
            device,
            container,
        };
        dev.enable_bus_master();
        dev.device
            .enable_msix(dev.irqs.iter().collect())
            .map_err(vfio_err("cannot enable MSI-X"))?;
        tracing::info!(
            "opened etch board {} (BAR0 {})",
            dev.function.address,
            if matches!(dev.bar, Bar::Mapped(_)) {
                "mapped"
            } else {
                "through pread/pwrite"
            }
        );
        Ok(dev)
    }

    /// The PCI function.
    pub fn function(&self) -> &PciFunction {
        &self.function
    }

    fn enable_bus_master(&mut self) {
        let mut cmd = [0u8; 2];
        self.device
            .region_read(VFIO_PCI_CONFIG_REGION_INDEX, &mut cmd, 4);
        let v = u16::from_le_bytes(cmd) | COMMAND_MEMORY_AND_MASTER;
        self.device
            .region_write(VFIO_PCI_CONFIG_REGION_INDEX, &v.to_le_bytes(), 4);
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
}

impl Device for VfioPci {
    fn read_reg(&mut self, index: u16) -> Result<u32> {
        let offset = 4 * index as u64;
        match &self.bar {
            Bar::Mapped(m) => m.read32(offset),
            Bar::Syscall => {
                let mut b = [0u8; 4];
                self.device
                    .region_read(VFIO_PCI_BAR0_REGION_INDEX, &mut b, offset);
                Ok(u32::from_le_bytes(b))
            }
        }
    }

    fn write_reg(&mut self, index: u16, value: u32) -> Result<()> {
        let offset = 4 * index as u64;
        match &mut self.bar {
            Bar::Mapped(m) => m.write32(offset, value),
            Bar::Syscall => {
                self.device
                    .region_write(VFIO_PCI_BAR0_REGION_INDEX, &value.to_le_bytes(), offset);
                Ok(())
            }
        }
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
        let vectors: Vec<usize> = (0..self.irqs.len())
            .filter(|v| irq_mask & (1 << v) != 0)
            .collect();
        if vectors.is_empty() {
            std::thread::sleep(WAIT_SLICE);
            return Ok(Event::Slice);
        }
        let mut fds: Vec<libc::pollfd> = vectors
            .iter()
            .map(|&v| libc::pollfd {
                fd: self.irqs[v].as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
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
            return Ok(Event::Slice);
        }
        let mut fired = 0;
        for (k, &v) in vectors.iter().enumerate() {
            if fds[k].revents & libc::POLLIN != 0 {
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
        self.device.reset();
        // A function-level reset clears the command register and MSI-X enable.
        self.enable_bus_master();
        self.device
            .enable_msix(self.irqs.iter().collect())
            .map_err(vfio_err("cannot enable MSI-X after the reset"))?;
        for e in &self.irqs {
            while e.read().is_ok() {}
        }
        Ok(())
    }
}

impl Drop for VfioPci {
    fn drop(&mut self) {
        let _ = self.device.disable_msix();
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
        drop(r);
        let mut back = vec![0u8; 3 * page];
        use std::io::{Read, Seek};
        f.rewind().unwrap();
        f.read_exact(&mut back).unwrap();
        assert_eq!(&back[page + 8..page + 12], &0xDEAD_BEEFu32.to_le_bytes());
        let r = MappedRegion::map(&f, page as u64, 2 * page).unwrap();
        assert!(r.read32(2).is_err(), "unaligned");
        assert!(r.read32(2 * page as u64).is_err(), "outside");
    }
}
