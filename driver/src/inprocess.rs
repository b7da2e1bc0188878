//! The in-process backend: the Verilated chip inside this process (tests, benches,
//! `etch sim`).

use std::path::Path;

use etch_sim::{Simulator, Stop};

use crate::device::{Device, DmaBuffer, Event};
use crate::error::{DriverError, Result};

/// Where the in-process backend puts DMA buffers in the chip's address space.
const IOVA_BASE: u64 = 0x1_0000_0000;

/// The simulated chip in this process.
pub struct InProcess {
    sim: Simulator,
    buffers: Vec<Option<Box<[u64]>>>,
    next_iova: u64,
    slice: u64,
}

impl InProcess {
    /// Builds (or finds cached) and starts the simulator of build directory `out`,
    /// without waveforms.
    pub fn open(out: &Path, design_hash: &str) -> Result<Self> {
        Self::open_with(out, design_hash, etch_sim::Waveform::Off)
    }

    /// [`InProcess::open`] with a simulator that writes `waveform` when traced.
    pub fn open_with(out: &Path, design_hash: &str, waveform: etch_sim::Waveform) -> Result<Self> {
        let lib = etch_sim::build_with(out, design_hash, waveform)?;
        Ok(InProcess {
            sim: Simulator::new(&lib, out)?,
            buffers: Vec::new(),
            next_iova: IOVA_BASE,
            slice: 50_000,
        })
    }

    /// Cycles per wait slice (how often streaming callbacks can run).
    pub fn set_slice(&mut self, cycles: u64) {
        self.slice = cycles.max(1);
    }

    /// The simulator itself (waveforms, DMA latency).
    pub fn simulator(&mut self) -> &mut Simulator {
        &mut self.sim
    }

    fn buffer(&mut self, buf: &DmaBuffer, offset: usize, len: usize) -> Result<&mut [u8]> {
        let mem = self
            .buffers
            .get_mut(buf.id)
            .and_then(Option::as_mut)
            .ok_or_else(|| DriverError::Dma(format!("buffer {} is not allocated", buf.id)))?;
        // SAFETY: the boxed slice of u64 is `len.div_ceil(8)` words, so its bytes are
        // valid for reads and writes of at least `buf.len` bytes; u8 has no alignment
        // requirement; the simulator only touches it inside `wait`, not while this
        // borrow lives.
        let bytes =
            unsafe { std::slice::from_raw_parts_mut(mem.as_mut_ptr() as *mut u8, mem.len() * 8) };
        bytes.get_mut(offset..offset + len).ok_or_else(|| {
            DriverError::Dma(format!(
                "{offset}+{len} is outside a {}-byte buffer",
                buf.len
            ))
        })
    }
}

impl Device for InProcess {
    fn read_reg(&mut self, index: u16) -> Result<u32> {
        Ok(self.sim.mmio_read(4 * index as u32)?)
    }

    fn write_reg(&mut self, index: u16, value: u32) -> Result<()> {
        Ok(self.sim.mmio_write(4 * index as u32, value)?)
    }

    fn dma_alloc(&mut self, len: usize) -> Result<DmaBuffer> {
        let words = len.div_ceil(8).max(1);
        let mut mem = vec![0u64; words].into_boxed_slice();
        let iova = self.next_iova;
        self.next_iova += (words as u64 * 8).next_multiple_of(4096) + 4096;
        // SAFETY: the boxed slice lives in `self.buffers` until `dma_free` unmaps it
        // first (or the device is dropped, which drops the simulator first: fields drop
        // in declaration order). Rust code touches it only through `buffer`, never while
        // the simulator runs.
        unsafe { self.sim.map(iova, mem.as_mut_ptr() as *mut u8, words * 8) };
        self.buffers.push(Some(mem));
        Ok(DmaBuffer {
            id: self.buffers.len() - 1,
            iova,
            len,
        })
    }

    fn dma_free(&mut self, buf: DmaBuffer) -> Result<()> {
        self.sim.unmap(buf.iova);
        if let Some(slot) = self.buffers.get_mut(buf.id) {
            *slot = None;
        }
        Ok(())
    }

    fn dma_read(&mut self, buf: &DmaBuffer, offset: usize, out: &mut [u8]) -> Result<()> {
        let src = self.buffer(buf, offset, out.len())?;
        out.copy_from_slice(src);
        Ok(())
    }

    fn dma_write(&mut self, buf: &DmaBuffer, offset: usize, data: &[u8]) -> Result<()> {
        self.buffer(buf, offset, data.len())?.copy_from_slice(data);
        Ok(())
    }

    fn wait(&mut self, irq_mask: u32) -> Result<Event> {
        let (stop, _) = self.sim.run(self.slice, irq_mask, true);
        Ok(match stop {
            Stop::Interrupt(v) => Event::Interrupt(v),
            Stop::Idle => Event::Idle,
            Stop::Budget => Event::Slice,
        })
    }

    fn reset(&mut self) -> Result<()> {
        self.sim.reset();
        Ok(())
    }

    fn simulated_cycles(&self) -> u64 {
        self.sim.cycles()
    }
}
