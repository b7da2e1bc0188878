//! The VFIO backend: an etch board on PCIe, bound to `vfio-pci`, driven from user space.
//!
//! It is the generic VFIO layer ([`VfioFunction`]: container, group, device, BAR0
//! mapping, IOMMU-mapped DMA memory, eventfd interrupts, reset) opened on a function
//! whose IDs are etch's, whose BAR0 holds the register file, with the board's two MSI-X
//! vectors. That layer runs against a real kernel's VFIO in `driver/tests/kvm_vfio.rs`
//! (a QEMU guest, QEMU's `edu` device); what only a board would prove is in
//! `docs/driver.md`.

use std::path::Path;
use std::time::Duration;

use crate::device::{Device, DmaBuffer, Event};
use crate::error::{DriverError, Result};
use crate::sysfs::{etch_function, PciFunction};
use crate::vfio::{Interrupts, VfioFunction};

/// How long one wait for an interrupt lasts.
const WAIT_SLICE: Duration = Duration::from_millis(5);

/// An etch board bound to vfio-pci.
pub struct VfioPci {
    function: VfioFunction,
}

impl VfioPci {
    /// Opens the etch board at PCI `address` (found under `sysfs`, normally `/sys`).
    pub fn open(address: &str, sysfs: &Path) -> Result<Self> {
        let function = VfioFunction::open(etch_function(sysfs, address)?, Path::new("/dev/vfio"))?;
        let bar0_len = function.bar0_len();
        if bar0_len < 4 * etch_firmware::regs::COUNT as u64 {
            return Err(DriverError::NotEtchDevice(format!(
                "BAR0 of {} has {bar0_len} bytes, too few for the register file",
                function.function().address
            )));
        }
        let mut dev = VfioPci { function };
        dev.function
            .enable_interrupts(Interrupts::MsiX, etch_firmware::regs::pci::VECTORS as usize)?;
        tracing::info!(
            "opened etch board {} (BAR0 {})",
            dev.function.function().address,
            if dev.function.bar0_mapped() {
                "mapped"
            } else {
                "through pread/pwrite"
            }
        );
        Ok(dev)
    }

    /// The PCI function.
    pub fn function(&self) -> &PciFunction {
        self.function.function()
    }
}

impl Device for VfioPci {
    fn read_reg(&mut self, index: u16) -> Result<u32> {
        self.function.read32(4 * index as u64)
    }

    fn write_reg(&mut self, index: u16, value: u32) -> Result<()> {
        self.function.write32(4 * index as u64, value)
    }

    fn dma_alloc(&mut self, len: usize) -> Result<DmaBuffer> {
        self.function.dma_alloc(len)
    }

    fn dma_free(&mut self, buf: DmaBuffer) -> Result<()> {
        self.function.dma_free(buf)
    }

    fn dma_read(&mut self, buf: &DmaBuffer, offset: usize, out: &mut [u8]) -> Result<()> {
        self.function.dma_read(buf, offset, out)
    }

    fn dma_write(&mut self, buf: &DmaBuffer, offset: usize, data: &[u8]) -> Result<()> {
        self.function.dma_write(buf, offset, data)
    }

    fn wait(&mut self, irq_mask: u32) -> Result<Event> {
        Ok(match self.function.wait_interrupts(irq_mask, WAIT_SLICE)? {
            0 => Event::Slice,
            fired => Event::Interrupt(fired),
        })
    }

    fn reset(&mut self) -> Result<()> {
        self.function.reset()
    }
}
