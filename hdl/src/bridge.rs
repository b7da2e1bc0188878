//! The UART bridge of the board tops: the chip's PCIe-shaped host interface (MMIO into
//! BAR0, DMA into host memory, interrupt vectors) carried over a serial line, so that
//! the same driver and the same firmware run a chip on a bring-up board.
//!
//! The link is 8N1. Every frame is a type byte and a fixed number of payload bytes,
//! multi-byte fields little-endian (`docs/FPGA.md`):
//!
//! | direction | frame | payload | meaning |
//! |---|---|---|---|
//! | host → board | `W` | addr (2), data (4) | MMIO write; answered by `a` |
//! | host → board | `R` | addr (2) | MMIO read; answered by `r` data (4) |
//! | host → board | `Z` | — | reset the chip (16 cycles); answered by `z` |
//! | host → board | `D` | status (1), data (8) | the host memory word for the pending `Q` |
//! | host → board | `K` | status (1) | the pending `P` is done |
//! | board → host | `Q` | addr (8) | DMA read of one 8-byte beat |
//! | board → host | `P` | addr (8), data (8) | DMA write of one 8-byte beat |
//! | board → host | `I` | vectors (1) | interrupt vectors that fired since the last `I` |
//!
//! DMA goes over the link ("DMA over the link"): the chip's DMA port is held until the
//! host answers, so host memory stays on the host and the driver's buffers need no
//! copy on the board. The host has at most one MMIO request outstanding and answers
//! `Q`/`P` while it waits for its own replies; the bridge serves both directions at
//! once, so neither side can deadlock the other. A nonzero status in `D`/`K` is a DMA
//! error (an address outside the host's buffers), which the chip reports in the
//! command's completion.

use rust_hdl::prelude::*;

/// UART receiver, 8N1: `valid` pulses for one cycle with each byte whose stop bit was
/// seen. `divisor` is clock cycles per bit.
#[derive(LogicBlock, Default)]
pub struct UartRx {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// Synchronous reset.
    pub reset: Signal<In, Bit>,
    /// The serial line (idle high).
    pub rx: Signal<In, Bit>,
    /// Clock cycles per bit (at least 4).
    pub divisor: Signal<In, Bits<16>>,
    /// The byte received.
    pub data: Signal<Out, Bits<8>>,
    /// A byte arrived (one cycle).
    pub valid: Signal<Out, Bit>,
    sync1: DFF<Bit>,
    sync2: DFF<Bit>,
    busy: DFF<Bit>,
    count: DFF<Bits<16>>,
    index: DFF<Bits<4>>,
    shift: DFF<Bits<8>>,
    held: DFF<Bits<8>>,
    strobe: DFF<Bit>,
}

impl Logic for UartRx {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, sync1, sync2, busy, count, index, shift, held, strobe);
        // Two flip-flops bring the asynchronous line into the clock domain.
        self.sync1.d.next = self.rx.val();
        self.sync2.d.next = self.sync1.q.val();
        self.strobe.d.next = false;
        self.data.next = self.held.q.val();
        self.valid.next = self.strobe.q.val();
        if !self.busy.q.val() {
            if !self.sync2.q.val() {
                // A falling edge: wait half a bit to the middle of the start bit.
                self.busy.d.next = true;
                self.count.d.next = self.divisor.val() >> 1;
                self.index.d.next = 0.into();
            }
        } else if self.count.q.val().any() {
            self.count.d.next = self.count.q.val() - 1;
        } else {
            self.count.d.next = self.divisor.val() - 1;
            self.index.d.next = self.index.q.val() + 1;
            if self.index.q.val() == 0 {
                // Middle of the start bit: a glitch if the line is high again.
                if self.sync2.q.val() {
                    self.busy.d.next = false;
                }
            } else if self.index.q.val() == 9 {
                self.busy.d.next = false;
                if self.sync2.q.val() {
                    self.held.d.next = self.shift.q.val();
                    self.strobe.d.next = true;
                }
            } else {
                // Data bits, least significant first.
                self.shift.d.next = self.shift.q.val() >> 1;
                if self.sync2.q.val() {
                    self.shift.d.next = (self.shift.q.val() >> 1) | 0x80;
                }
            }
        }
        if self.reset.val() {
            self.busy.d.next = false;
            self.strobe.d.next = false;
        }
    }
}

/// UART transmitter, 8N1: `start` with `data` while not `busy` sends a byte.
#[derive(LogicBlock, Default)]
pub struct UartTx {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// Synchronous reset.
    pub reset: Signal<In, Bit>,
    /// Clock cycles per bit (at least 4).
    pub divisor: Signal<In, Bits<16>>,
    /// The byte to send.
    pub data: Signal<In, Bits<8>>,
    /// Send `data` (ignored while busy).
    pub start: Signal<In, Bit>,
    /// A byte is on the line.
    pub busy: Signal<Out, Bit>,
    /// The serial line (idle high).
    pub tx: Signal<Out, Bit>,
    line: DFF<Bit>,
    shift: DFF<Bits<9>>,
    count: DFF<Bits<16>>,
    left: DFF<Bits<4>>,
}

impl Logic for UartTx {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, line, shift, count, left);
        self.tx.next = self.line.q.val();
        self.busy.next = self.left.q.val().any();
        if !self.left.q.val().any() {
            self.line.d.next = true;
            if self.start.val() {
                // The start bit goes out now; then eight data bits and the stop bit.
                self.line.d.next = false;
                self.shift.d.next = bit_cast::<9, 8>(self.data.val()) | 0x100;
                self.left.d.next = 10.into();
                self.count.d.next = self.divisor.val() - 1;
            }
        } else if self.count.q.val().any() {
            self.count.d.next = self.count.q.val() - 1;
        } else {
            self.count.d.next = self.divisor.val() - 1;
            self.left.d.next = self.left.q.val() - 1;
            if self.left.q.val() == 1 {
                self.line.d.next = true;
            } else {
                self.line.d.next = self.shift.q.val().get_bit(0);
                self.shift.d.next = self.shift.q.val() >> 1;
            }
        }
        if self.reset.val() {
            self.line.d.next = true;
            self.left.d.next = 0.into();
        }
    }
}

/// The bridge between the serial line and the chip's host interface.
#[derive(LogicBlock, Default)]
pub struct Bridge {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// Synchronous reset (power-on).
    pub reset: Signal<In, Bit>,
    /// Clock cycles per bit.
    pub divisor: Signal<In, Bits<16>>,
    /// Serial line from the host.
    pub rx: Signal<In, Bit>,
    /// Serial line to the host.
    pub tx: Signal<Out, Bit>,
    /// MMIO request to the chip (one cycle).
    pub mmio_req: Signal<Out, Bit>,
    /// MMIO write.
    pub mmio_we: Signal<Out, Bit>,
    /// MMIO byte address.
    pub mmio_addr: Signal<Out, Bits<12>>,
    /// MMIO write data.
    pub mmio_wdata: Signal<Out, Bits<32>>,
    /// MMIO read data from the chip.
    pub mmio_rdata: Signal<In, Bits<32>>,
    /// The chip answered the MMIO request.
    pub mmio_ack: Signal<In, Bit>,
    /// The chip's DMA request (held until `dma_ack`).
    pub dma_req: Signal<In, Bit>,
    /// DMA write.
    pub dma_we: Signal<In, Bit>,
    /// DMA address.
    pub dma_addr: Signal<In, Bits<64>>,
    /// DMA write data.
    pub dma_wdata: Signal<In, Bits<64>>,
    /// DMA done (one cycle).
    pub dma_ack: Signal<Out, Bit>,
    /// DMA failed (with `dma_ack`).
    pub dma_err: Signal<Out, Bit>,
    /// DMA read data (with `dma_ack`).
    pub dma_rdata: Signal<Out, Bits<64>>,
    /// The chip's interrupt pulses.
    pub irq: Signal<In, Bits<4>>,
    /// Holds the chip in reset (after a `Z` frame).
    pub chip_reset: Signal<Out, Bit>,
    urx: UartRx,
    utx: UartTx,
    rx_kind: DFF<Bits<8>>,
    rx_left: DFF<Bits<4>>,
    rx_buf: DFF<Bits<72>>,
    rx_next: Signal<Local, Bits<72>>,
    mmio_req_q: DFF<Bit>,
    mmio_we_q: DFF<Bit>,
    mmio_addr_q: DFF<Bits<12>>,
    mmio_wdata_q: DFF<Bits<32>>,
    mmio_wait: DFF<Bit>,
    reply_valid: DFF<Bit>,
    reply: DFF<Bits<40>>,
    reply_len: DFF<Bits<5>>,
    dma_state: DFF<Bits<2>>,
    dma_ack_q: DFF<Bit>,
    dma_err_q: DFF<Bit>,
    dma_rdata_q: DFF<Bits<64>>,
    irq_pend: DFF<Bits<4>>,
    reset_count: DFF<Bits<5>>,
    tx_buf: DFF<Bits<136>>,
    tx_left: DFF<Bits<5>>,
}

impl Logic for Bridge {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(
            self,
            clock,
            rx_kind,
            rx_left,
            rx_buf,
            mmio_req_q,
            mmio_we_q,
            mmio_addr_q,
            mmio_wdata_q,
            mmio_wait,
            reply_valid,
            reply,
            reply_len,
            dma_state,
            dma_ack_q,
            dma_err_q,
            dma_rdata_q,
            irq_pend,
            reset_count,
            tx_buf,
            tx_left
        );
        self.urx.clock.next = self.clock.val();
        self.urx.reset.next = self.reset.val();
        self.utx.clock.next = self.clock.val();
        self.utx.reset.next = self.reset.val();
        self.urx.rx.next = self.rx.val();
        self.urx.divisor.next = self.divisor.val();
        self.utx.divisor.next = self.divisor.val();
        self.tx.next = self.utx.tx.val();

        self.mmio_req.next = self.mmio_req_q.q.val();
        self.mmio_we.next = self.mmio_we_q.q.val();
        self.mmio_addr.next = self.mmio_addr_q.q.val();
        self.mmio_wdata.next = self.mmio_wdata_q.q.val();
        self.dma_ack.next = self.dma_ack_q.q.val();
        self.dma_err.next = self.dma_err_q.q.val();
        self.dma_rdata.next = self.dma_rdata_q.q.val();
        self.chip_reset.next = self.reset_count.q.val().any();

        self.mmio_req_q.d.next = false;
        self.dma_ack_q.d.next = false;
        self.irq_pend.d.next = self.irq_pend.q.val() | self.irq.val();
        if self.reset_count.q.val().any() {
            self.reset_count.d.next = self.reset_count.q.val() - 1;
            if self.reset_count.q.val() == 1 {
                self.reply_valid.d.next = true;
                self.reply.d.next = 0x7A.into(); // 'z'
                self.reply_len.d.next = 1.into();
            }
        }

        // Frames from the host. A payload byte enters at the top of the buffer, so
        // that after n of them payload byte k sits at bit 8·(9 − n + k).
        self.rx_next.next =
            (self.rx_buf.q.val() >> 8) | (bit_cast::<72, 8>(self.urx.data.val()) << 64);
        if self.urx.valid.val() {
            if !self.rx_left.q.val().any() {
                self.rx_kind.d.next = self.urx.data.val();
                if self.urx.data.val() == 0x57 {
                    self.rx_left.d.next = 6.into(); // W
                } else if self.urx.data.val() == 0x52 {
                    self.rx_left.d.next = 2.into(); // R
                } else if self.urx.data.val() == 0x44 {
                    self.rx_left.d.next = 9.into(); // D
                } else if self.urx.data.val() == 0x4B {
                    self.rx_left.d.next = 1.into(); // K
                } else if self.urx.data.val() == 0x5A {
                    // Z: reset the chip and forget its DMA and interrupts.
                    self.reset_count.d.next = 16.into();
                    self.dma_state.d.next = 0.into();
                    self.mmio_wait.d.next = false;
                    self.irq_pend.d.next = 0.into();
                }
            } else {
                self.rx_buf.d.next = self.rx_next.val();
                self.rx_left.d.next = self.rx_left.q.val() - 1;
                if self.rx_left.q.val() == 1 {
                    if self.rx_kind.q.val() == 0x57 {
                        self.mmio_req_q.d.next = true;
                        self.mmio_we_q.d.next = true;
                        self.mmio_addr_q.d.next = self.rx_next.val().get_bits::<12>(24);
                        self.mmio_wdata_q.d.next = self.rx_next.val().get_bits::<32>(40);
                        self.mmio_wait.d.next = true;
                    } else if self.rx_kind.q.val() == 0x52 {
                        self.mmio_req_q.d.next = true;
                        self.mmio_we_q.d.next = false;
                        self.mmio_addr_q.d.next = self.rx_next.val().get_bits::<12>(56);
                        self.mmio_wait.d.next = true;
                    } else if self.rx_kind.q.val() == 0x44 {
                        if self.dma_state.q.val() == 2 {
                            self.dma_ack_q.d.next = true;
                            self.dma_err_q.d.next = self.rx_next.val().get_bits::<8>(0).any();
                            self.dma_rdata_q.d.next = self.rx_next.val().get_bits::<64>(8);
                            self.dma_state.d.next = 0.into();
                        }
                    } else if self.dma_state.q.val() == 2 {
                        self.dma_ack_q.d.next = true;
                        self.dma_err_q.d.next = self.rx_next.val().get_bits::<8>(64).any();
                        self.dma_rdata_q.d.next = 0.into();
                        self.dma_state.d.next = 0.into();
                    }
                }
            }
        }

        // The chip answers MMIO in the next cycle; its answer becomes the reply frame.
        if self.mmio_wait.q.val() & self.mmio_ack.val() {
            self.mmio_wait.d.next = false;
            self.reply_valid.d.next = true;
            if self.mmio_we_q.q.val() {
                self.reply.d.next = 0x61.into(); // 'a'
                self.reply_len.d.next = 1.into();
            } else {
                self.reply.d.next =
                    (bit_cast::<40, 32>(self.mmio_rdata.val()) << 8) | bits::<40>(0x72); // 'r'
                self.reply_len.d.next = 5.into();
            }
        }

        // A new DMA request (the cycle of an ack still shows the old one).
        if (self.dma_state.q.val() == 0) & self.dma_req.val() & !self.dma_ack_q.q.val() {
            self.dma_state.d.next = 1.into();
        }

        // Frames to the host: the next frame loads when the last one is out, replies
        // first, then the DMA request, then interrupts.
        self.utx.data.next = self.tx_buf.q.val().get_bits::<8>(0);
        self.utx.start.next = false;
        if self.tx_left.q.val().any() {
            if !self.utx.busy.val() {
                self.utx.start.next = true;
                self.tx_buf.d.next = self.tx_buf.q.val() >> 8;
                self.tx_left.d.next = self.tx_left.q.val() - 1;
            }
        } else if self.reply_valid.q.val() {
            self.reply_valid.d.next = false;
            self.tx_buf.d.next = bit_cast::<136, 40>(self.reply.q.val());
            self.tx_left.d.next = self.reply_len.q.val();
        } else if self.dma_state.q.val() == 1 {
            self.dma_state.d.next = 2.into();
            if self.dma_we.val() {
                self.tx_buf.d.next = (bit_cast::<136, 64>(self.dma_wdata.val()) << 72)
                    | (bit_cast::<136, 64>(self.dma_addr.val()) << 8)
                    | bits::<136>(0x50); // 'P'
                self.tx_left.d.next = 17.into();
            } else {
                self.tx_buf.d.next =
                    (bit_cast::<136, 64>(self.dma_addr.val()) << 8) | bits::<136>(0x51); // 'Q'
                self.tx_left.d.next = 9.into();
            }
        } else if self.irq_pend.q.val().any() {
            self.tx_buf.d.next =
                (bit_cast::<136, 4>(self.irq_pend.q.val()) << 8) | bits::<136>(0x49); // 'I'
            self.tx_left.d.next = 2.into();
            self.irq_pend.d.next = self.irq.val();
        }

        if self.reset.val() {
            self.rx_left.d.next = 0.into();
            self.mmio_wait.d.next = false;
            self.reply_valid.d.next = false;
            self.dma_state.d.next = 0.into();
            self.irq_pend.d.next = 0.into();
            self.reset_count.d.next = 0.into();
            self.tx_left.d.next = 0.into();
        }
    }
}
