//! The `Device` trait: what every backend provides.

use crate::error::Result;

/// A DMA buffer: host memory the chip can reach at `iova`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DmaBuffer {
    /// Backend-specific handle.
    pub id: usize,
    /// Address the chip uses.
    pub iova: u64,
    /// Bytes.
    pub len: usize,
}

/// What a wait ended with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// Interrupt vectors that fired (bit per vector).
    Interrupt(u32),
    /// The chip has nothing to do.
    Idle,
    /// The wait's slice ran out (the chip may still be working).
    Slice,
}

/// A chip reachable from the host: BAR0 registers, DMA memory, interrupts.
pub trait Device: Send {
    /// Reads BAR0 register `index` (byte offset `4 · index`).
    fn read_reg(&mut self, index: u16) -> Result<u32>;
    /// Writes BAR0 register `index`.
    fn write_reg(&mut self, index: u16, value: u32) -> Result<()>;
    /// Allocates `len` bytes of DMA memory (zeroed, 8-byte aligned, mapped for the chip).
    fn dma_alloc(&mut self, len: usize) -> Result<DmaBuffer>;
    /// Frees a DMA buffer.
    fn dma_free(&mut self, buf: DmaBuffer) -> Result<()>;
    /// Copies from a DMA buffer into `out`.
    fn dma_read(&mut self, buf: &DmaBuffer, offset: usize, out: &mut [u8]) -> Result<()>;
    /// Copies `data` into a DMA buffer.
    fn dma_write(&mut self, buf: &DmaBuffer, offset: usize, data: &[u8]) -> Result<()>;
    /// Waits for an interrupt in `irq_mask` for at most one slice (backend-defined: a
    /// number of cycles for a simulator, a few milliseconds for hardware).
    fn wait(&mut self, irq_mask: u32) -> Result<Event>;
    /// Resets the device.
    fn reset(&mut self) -> Result<()>;
    /// Cycles the backend has simulated (0 for hardware).
    fn simulated_cycles(&self) -> u64 {
        0
    }
}

/// A boxed device is a device: backends chosen at run time (`Box<dyn Device>`).
impl<T: Device + ?Sized> Device for Box<T> {
    fn read_reg(&mut self, index: u16) -> Result<u32> {
        (**self).read_reg(index)
    }
    fn write_reg(&mut self, index: u16, value: u32) -> Result<()> {
        (**self).write_reg(index, value)
    }
    fn dma_alloc(&mut self, len: usize) -> Result<DmaBuffer> {
        (**self).dma_alloc(len)
    }
    fn dma_free(&mut self, buf: DmaBuffer) -> Result<()> {
        (**self).dma_free(buf)
    }
    fn dma_read(&mut self, buf: &DmaBuffer, offset: usize, out: &mut [u8]) -> Result<()> {
        (**self).dma_read(buf, offset, out)
    }
    fn dma_write(&mut self, buf: &DmaBuffer, offset: usize, data: &[u8]) -> Result<()> {
        (**self).dma_write(buf, offset, data)
    }
    fn wait(&mut self, irq_mask: u32) -> Result<Event> {
        (**self).wait(irq_mask)
    }
    fn reset(&mut self) -> Result<()> {
        (**self).reset()
    }
    fn simulated_cycles(&self) -> u64 {
        (**self).simulated_cycles()
    }
}
