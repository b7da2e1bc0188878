//! DMA memory for backends whose chip is outside this process: host memory in chunks
//! that are each mapped for the device once (vfio-user: a memfd passed with DMA_MAP;
//! VFIO: anonymous memory pinned by VFIO_IOMMU_MAP_DMA), carved into buffers by a
//! first-fit allocator. Buffers are reached only through raw pointers with volatile
//! accesses, never through Rust references: the device writes them at any time.

use std::sync::atomic::{fence, Ordering};

use crate::device::DmaBuffer;
use crate::error::{DriverError, Result};

/// Where the first chunk sits in the chip's address space (above 4 GiB, so that 64-bit
/// DMA addressing is exercised).
pub(crate) const IOVA_BASE: u64 = 0x1_0000_0000;
/// Bytes of a chunk unless a buffer needs more.
pub(crate) const CHUNK_BYTES: usize = 4 << 20;
/// Alignment of every buffer.
const ALIGN: usize = 64;

/// Host memory mapped for the device as one piece.
pub(crate) struct Chunk {
    /// Address the chip uses for the first byte.
    pub iova: u64,
    /// The mapping (kept alive for as long as the device may touch it).
    pub map: memmap2::MmapMut,
    /// Its first byte, taken once with write permission.
    ptr: *mut u8,
}

impl Chunk {
    /// A chunk at `iova` over `map`.
    pub fn new(iova: u64, mut map: memmap2::MmapMut) -> Self {
        let ptr = map.as_mut_ptr();
        Chunk { iova, map, ptr }
    }

    /// Its first byte.
    pub fn ptr(&self) -> *mut u8 {
        self.ptr
    }
}

// SAFETY: `ptr` points into `map`, which the chunk owns; moving the chunk to another
// thread moves the mapping with it, and every access goes through `&DmaPool`/`&mut
// DmaPool`, so the usual borrow rules serialize the host's side.
unsafe impl Send for Chunk {}

/// Buffers carved out of chunks.
#[derive(Default)]
pub(crate) struct DmaPool {
    chunks: Vec<Chunk>,
    /// Free `(offset, len)` ranges of each chunk, sorted by offset.
    free: Vec<Vec<(usize, usize)>>,
    /// `(chunk, offset, len)` of each live buffer, by `DmaBuffer::id`.
    live: Vec<Option<(usize, usize, usize)>>,
}

impl DmaPool {
    /// The address the next new chunk of `len` bytes gets.
    pub fn next_iova(&self) -> u64 {
        self.chunks.last().map_or(IOVA_BASE, |c| {
            (c.iova + c.map.len() as u64).next_multiple_of(1 << 21)
        })
    }

    /// How many bytes a new chunk must have to hold a `len`-byte buffer.
    pub fn chunk_len(len: usize) -> usize {
        len.next_multiple_of(ALIGN)
            .max(CHUNK_BYTES)
            .next_multiple_of(page_size())
    }

    /// Allocates `len` zeroed bytes; `grow(iova, bytes)` maps a new chunk when none has room.
    pub fn alloc(
        &mut self,
        len: usize,
        grow: &mut dyn FnMut(u64, usize) -> Result<Chunk>,
    ) -> Result<DmaBuffer> {
        let want = len.max(1).next_multiple_of(ALIGN);
        let found =
            self.free.iter().enumerate().find_map(|(c, ranges)| {
                ranges.iter().position(|&(_, n)| n >= want).map(|r| (c, r))
            });
        let (c, r) = match found {
            Some(x) => x,
            None => {
                let bytes = Self::chunk_len(want);
                let chunk = grow(self.next_iova(), bytes)?;
                if chunk.map.len() < want {
                    return Err(DriverError::Dma(format!(
                        "a new DMA chunk has {} bytes, {want} needed",
                        chunk.map.len()
                    )));
                }
                self.free.push(vec![(0, chunk.map.len())]);
                self.chunks.push(chunk);
                (self.chunks.len() - 1, 0)
            }
        };
        let (off, n) = self.free[c][r];
        if n == want {
            self.free[c].remove(r);
        } else {
            self.free[c][r] = (off + want, n - want);
        }
        let id = match self.live.iter().position(Option::is_none) {
            Some(i) => {
                self.live[i] = Some((c, off, len));
                i
            }
            None => {
                self.live.push(Some((c, off, len)));
                self.live.len() - 1
            }
        };
        let buf = DmaBuffer {
            id,
            iova: self.chunks[c].iova + off as u64,
            len,
        };
        self.write(&buf, 0, &vec![0u8; len])?;
        Ok(buf)
    }

    /// Returns a buffer's memory to its chunk.
    pub fn free(&mut self, buf: DmaBuffer) -> Result<()> {
        let (c, off, len) = self.lookup(&buf)?;
        self.live[buf.id] = None;
        let len = len.max(1).next_multiple_of(ALIGN);
        let ranges = &mut self.free[c];
        let at = ranges.partition_point(|&(o, _)| o < off);
        ranges.insert(at, (off, len));
        // Merge with the neighbours.
        if at + 1 < ranges.len() && ranges[at].0 + ranges[at].1 == ranges[at + 1].0 {
            ranges[at].1 += ranges[at + 1].1;
            ranges.remove(at + 1);
        }
        if at > 0 && ranges[at - 1].0 + ranges[at - 1].1 == ranges[at].0 {
            ranges[at - 1].1 += ranges[at].1;
            ranges.remove(at);
        }
        Ok(())
    }

    fn lookup(&self, buf: &DmaBuffer) -> Result<(usize, usize, usize)> {
        let (c, off, len) = self
            .live
            .get(buf.id)
            .copied()
            .flatten()
            .ok_or_else(|| DriverError::Dma(format!("buffer {} is not allocated", buf.id)))?;
        if self.chunks[c].iova + off as u64 != buf.iova {
            return Err(DriverError::Dma(format!(
                "buffer {} does not live at {:#x}",
                buf.id, buf.iova
            )));
        }
        Ok((c, off, len))
    }

    fn span(&self, buf: &DmaBuffer, offset: usize, n: usize) -> Result<*mut u8> {
        let (c, off, len) = self.lookup(buf)?;
        if offset.checked_add(n).map_or(true, |end| end > len) {
            return Err(DriverError::Dma(format!(
                "{offset}+{n} is outside a {len}-byte buffer"
            )));
        }
        // SAFETY: `off + offset + n <= off + len`, inside the chunk's mapping (the
        // allocator hands out ranges within it).
        Ok(unsafe { self.chunks[c].ptr.add(off + offset) })
    }

    /// Copies bytes the device wrote out of a buffer.
    pub fn read(&self, buf: &DmaBuffer, offset: usize, out: &mut [u8]) -> Result<()> {
        let src = self.span(buf, offset, out.len())?;
        for (k, o) in out.iter_mut().enumerate() {
            // SAFETY: `src..src + out.len()` is inside a live mapping (checked by
            // `span`); a volatile byte read has no alignment requirement and tolerates
            // the device writing concurrently.
            *o = unsafe { std::ptr::read_volatile(src.add(k)) };
        }
        fence(Ordering::Acquire);
        Ok(())
    }

    /// Copies bytes into a buffer for the device.
    pub fn write(&self, buf: &DmaBuffer, offset: usize, data: &[u8]) -> Result<()> {
        let dst = self.span(buf, offset, data.len())?;
        for (k, &b) in data.iter().enumerate() {
            // SAFETY: as in `read`; the range is inside a live writable mapping.
            unsafe { std::ptr::write_volatile(dst.add(k), b) };
        }
        fence(Ordering::Release);
        Ok(())
    }

    /// The chunks, for unmapping them from the device.
    pub fn chunks(&self) -> &[Chunk] {
        &self.chunks
    }
}

/// The system's page size.
pub(crate) fn page_size() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as usize
    } else {
        4096
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn anon(iova: u64, bytes: usize) -> Result<Chunk> {
        let map = memmap2::MmapMut::map_anon(bytes).map_err(|e| DriverError::Dma(e.to_string()))?;
        Ok(Chunk::new(iova, map))
    }

    #[test]
    fn buffers_do_not_overlap_and_freed_memory_is_reused_zeroed() {
        let mut pool = DmaPool::default();
        let a = pool.alloc(100, &mut anon).unwrap();
        let b = pool.alloc(5000, &mut anon).unwrap();
        assert_eq!(a.iova, IOVA_BASE);
        assert!(b.iova >= a.iova + 100 && b.iova % ALIGN as u64 == 0);
        pool.write(&a, 0, &[7; 100]).unwrap();
        pool.free(a).unwrap();
        let c = pool.alloc(64, &mut anon).unwrap();
        assert_eq!(c.iova, IOVA_BASE, "first fit reuses the freed range");
        let mut out = [1u8; 64];
        pool.read(&c, 0, &mut out).unwrap();
        assert_eq!(out, [0; 64], "new buffers are zeroed");
        assert!(
            pool.read(&c, 60, &mut [0; 8]).is_err(),
            "reads past the end fail"
        );
        assert!(pool.read(&a, 0, &mut [0; 1]).is_err() || a.id == c.id);
        pool.free(b).unwrap();
        pool.free(c).unwrap();
        assert_eq!(
            pool.free[0],
            vec![(0, CHUNK_BYTES)],
            "free ranges merge back"
        );
        assert!(pool.free(c).is_err(), "double free is an error");
    }

    #[test]
    fn a_big_buffer_gets_its_own_chunk() {
        let mut pool = DmaPool::default();
        let _small = pool.alloc(8, &mut anon).unwrap();
        let big = pool.alloc(CHUNK_BYTES + 1, &mut anon).unwrap();
        assert_eq!(pool.chunks().len(), 2);
        assert!(big.iova >= IOVA_BASE + CHUNK_BYTES as u64);
        pool.write(&big, CHUNK_BYTES, &[9]).unwrap();
    }
}
