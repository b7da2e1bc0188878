//! The serial link of the board tops: the frames that carry MMIO, DMA and interrupts
//! between a host and the UART bridge of `etch_board` (`docs/FPGA.md`).
//!
//! Every frame is a type byte and a fixed number of payload bytes, multi-byte fields
//! little-endian. The host has at most one MMIO request or reset outstanding; the board
//! has at most one DMA request outstanding, and the host answers it whenever it comes.

/// MMIO write (host → board): addr (2), data (4); answered by [`WRITE_ACK`].
pub const MMIO_WRITE: u8 = b'W';
/// MMIO read (host → board): addr (2); answered by [`READ_DATA`].
pub const MMIO_READ: u8 = b'R';
/// Chip reset (host → board); answered by [`RESET_ACK`].
pub const RESET: u8 = b'Z';
/// DMA read data (host → board): status (1, nonzero = error), data (8).
pub const DMA_DATA: u8 = b'D';
/// DMA write done (host → board): status (1, nonzero = error).
pub const DMA_DONE: u8 = b'K';
/// MMIO write acknowledged (board → host).
pub const WRITE_ACK: u8 = b'a';
/// MMIO read data (board → host): data (4).
pub const READ_DATA: u8 = b'r';
/// Reset done (board → host).
pub const RESET_ACK: u8 = b'z';
/// DMA read request of one 8-byte beat (board → host): addr (8).
pub const DMA_READ: u8 = b'Q';
/// DMA write request of one 8-byte beat (board → host): addr (8), data (8).
pub const DMA_WRITE: u8 = b'P';
/// Interrupt vectors that fired since the last notice (board → host): vectors (1).
pub const IRQ: u8 = b'I';

/// Payload bytes after a host → board type byte (`None`: not a frame type).
pub fn host_payload(kind: u8) -> Option<usize> {
    match kind {
        MMIO_WRITE => Some(6),
        MMIO_READ => Some(2),
        RESET => Some(0),
        DMA_DATA => Some(9),
        DMA_DONE => Some(1),
        _ => None,
    }
}

/// Payload bytes after a board → host type byte (`None`: not a frame type).
pub fn board_payload(kind: u8) -> Option<usize> {
    match kind {
        WRITE_ACK | RESET_ACK => Some(0),
        READ_DATA => Some(4),
        DMA_READ => Some(8),
        DMA_WRITE => Some(16),
        IRQ => Some(1),
        _ => None,
    }
}
