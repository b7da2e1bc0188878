//! The host interface: the BAR0 register file (`docs/registers.md`), seen by the host
//! through MMIO and by the sequencer as CSRs, with the interrupt logic, the cycle
//! counter and the token counter.
//!
//! MMIO: a request (`mmio_req`, byte address, write flag and data) is answered in the
//! next cycle with `mmio_ack` and, for reads, `mmio_rdata`. Identity and configuration
//! words arrive on `ident` as constants of the generated design.

use rust_hdl::prelude::*;

use etch_firmware::regs;

/// The host interface.
#[derive(LogicBlock, Default)]
pub struct HostIf {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// Synchronous reset.
    pub reset: Signal<In, Bit>,
    /// MMIO request.
    pub mmio_req: Signal<In, Bit>,
    /// MMIO write.
    pub mmio_we: Signal<In, Bit>,
    /// MMIO byte address within BAR0.
    pub mmio_addr: Signal<In, Bits<12>>,
    /// MMIO write data.
    pub mmio_wdata: Signal<In, Bits<32>>,
    /// MMIO read data (with `mmio_ack`).
    pub mmio_rdata: Signal<Out, Bits<32>>,
    /// MMIO answered.
    pub mmio_ack: Signal<Out, Bit>,
    /// Sequencer CSR index.
    pub csr_addr: Signal<In, Bits<10>>,
    /// Sequencer CSR read data: the register at `csr_addr` of the previous cycle.
    pub csr_rdata: Signal<Out, Bits<32>>,
    /// Sequencer CSR write.
    pub csr_we: Signal<In, Bit>,
    /// Sequencer CSR write data.
    pub csr_wdata: Signal<In, Bits<32>>,
    /// Write the vector result registers.
    pub vres_we: Signal<In, Bit>,
    /// The vector result.
    pub vres: Signal<In, Bits<64>>,
    /// Raise an interrupt.
    pub irq_raise: Signal<In, Bit>,
    /// Its vector.
    pub irq_vec: Signal<In, Bits<4>>,
    /// A forward pass started.
    pub token_tick: Signal<In, Bit>,
    /// The sequencer's phase (0 own work, 1 vector operation, 2 DMA, 3 idle).
    pub seq_phase: Signal<In, Bits<2>>,
    /// The vector controller's phase (0 none, 1..7 as PERF_MATVEC..PERF_DMA).
    pub vec_phase: Signal<In, Bits<4>>,
    /// Identity words 0..24 (ID, VERSION, FW_VERSION, CONFIG0..3, MODEL_ID, FW_HASH).
    pub ident: Signal<In, Bits<768>>,
    /// The sequencer stopped on a fault (STATUS bit 2; raises vector 1 once).
    pub fault: Signal<In, Bit>,
    /// Interrupt pulses, one per vector.
    pub irq: Signal<Out, Bits<4>>,

    rom_sig_lo: DFF<Bits<32>>,
    rom_sig_hi: DFF<Bits<32>>,
    status: DFF<Bits<32>>,
    ctrl: DFF<Bits<32>>,
    irq_status: DFF<Bits<32>>,
    irq_mask: DFF<Bits<32>>,
    cycle: DFF<Bits<64>>,
    cycle_hi_latch: DFF<Bits<32>>,
    tokens: DFF<Bits<32>>,
    sq_base_lo: DFF<Bits<32>>,
    sq_base_hi: DFF<Bits<32>>,
    sq_size: DFF<Bits<32>>,
    sq_tail: DFF<Bits<32>>,
    sq_head: DFF<Bits<32>>,
    cq_base_lo: DFF<Bits<32>>,
    cq_base_hi: DFF<Bits<32>>,
    cq_size: DFF<Bits<32>>,
    cq_head: DFF<Bits<32>>,
    cq_tail: DFF<Bits<32>>,
    vres_lo: DFF<Bits<32>>,
    vres_hi: DFF<Bits<32>>,
    ack_q: DFF<Bit>,
    rdata_q: DFF<Bits<32>>,
    irq_q: DFF<Bits<4>>,
    fault_q: DFF<Bit>,
    csr_q: DFF<Bits<32>>,
    perf: [DFF<Bits<32>>; 9],
    perf_sel: Signal<Local, Bits<4>>,
    mmio_idx: Signal<Local, Bits<10>>,
    mmio_val: Signal<Local, Bits<32>>,
    csr_val: Signal<Local, Bits<32>>,
}

impl Logic for HostIf {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(
            self,
            clock,
            rom_sig_lo,
            rom_sig_hi,
            status,
            ctrl,
            irq_status,
            irq_mask,
            cycle,
            cycle_hi_latch,
            tokens,
            sq_base_lo,
            sq_base_hi,
            sq_size,
            sq_tail,
            sq_head,
            cq_base_lo,
            cq_base_hi,
            cq_size,
            cq_head,
            cq_tail,
            vres_lo,
            vres_hi,
            ack_q,
            rdata_q,
            irq_q,
            fault_q,
            csr_q
        );
        for i in 0..9 {
            self.perf[i].clock.next = self.clock.val();
            self.perf[i].d.next = self.perf[i].q.val();
        }
        self.mmio_idx.next = self.mmio_addr.val().get_bits::<10>(2);

        // Reads: identity words, then the register file.
        self.mmio_val.next = 0.into();
        if self.mmio_idx.val() < 24 {
            self.mmio_val.next = self
                .ident
                .val()
                .get_bits::<32>(self.mmio_idx.val().index() * 32);
        }
        match self.mmio_idx.val().index() {
            24 => self.mmio_val.next = self.rom_sig_lo.q.val(),
            25 => self.mmio_val.next = self.rom_sig_hi.q.val(),
            26 => {
                self.mmio_val.next =
                    self.status.q.val() | (bit_cast::<32, 1>(self.fault.val().into()) << 2)
            }
            27 => self.mmio_val.next = self.ctrl.q.val(),
            28 => self.mmio_val.next = self.irq_status.q.val(),
            29 => self.mmio_val.next = self.irq_mask.q.val(),
            32 => self.mmio_val.next = self.cycle.q.val().get_bits::<32>(0),
            33 => self.mmio_val.next = self.cycle_hi_latch.q.val(),
            34 => self.mmio_val.next = self.tokens.q.val(),
            64 => self.mmio_val.next = self.sq_base_lo.q.val(),
            65 => self.mmio_val.next = self.sq_base_hi.q.val(),
            66 => self.mmio_val.next = self.sq_size.q.val(),
            67 => self.mmio_val.next = self.sq_tail.q.val(),
            68 => self.mmio_val.next = self.sq_head.q.val(),
            72 => self.mmio_val.next = self.cq_base_lo.q.val(),
            73 => self.mmio_val.next = self.cq_base_hi.q.val(),
            74 => self.mmio_val.next = self.cq_size.q.val(),
            75 => self.mmio_val.next = self.cq_head.q.val(),
            76 => self.mmio_val.next = self.cq_tail.q.val(),
            96 => self.mmio_val.next = self.vres_lo.q.val(),
            97 => self.mmio_val.next = self.vres_hi.q.val(),
            _ => {}
        }
        for i in 0..9 {
            if self.mmio_idx.val().index() == 35 + i {
                self.mmio_val.next = self.perf[i].q.val();
            }
        }
        self.csr_val.next = 0.into();
        if self.csr_addr.val() < 24 {
            self.csr_val.next = self
                .ident
                .val()
                .get_bits::<32>(self.csr_addr.val().index() * 32);
        }
        match self.csr_addr.val().index() {
            24 => self.csr_val.next = self.rom_sig_lo.q.val(),
            25 => self.csr_val.next = self.rom_sig_hi.q.val(),
            26 => {
                self.csr_val.next =
                    self.status.q.val() | (bit_cast::<32, 1>(self.fault.val().into()) << 2)
            }
            27 => self.csr_val.next = self.ctrl.q.val(),
            28 => self.csr_val.next = self.irq_status.q.val(),
            29 => self.csr_val.next = self.irq_mask.q.val(),
            32 => self.csr_val.next = self.cycle.q.val().get_bits::<32>(0),
            33 => self.csr_val.next = self.cycle.q.val().get_bits::<32>(32),
            34 => self.csr_val.next = self.tokens.q.val(),
            64 => self.csr_val.next = self.sq_base_lo.q.val(),
            65 => self.csr_val.next = self.sq_base_hi.q.val(),
            66 => self.csr_val.next = self.sq_size.q.val(),
            67 => self.csr_val.next = self.sq_tail.q.val(),
            68 => self.csr_val.next = self.sq_head.q.val(),
            72 => self.csr_val.next = self.cq_base_lo.q.val(),
            73 => self.csr_val.next = self.cq_base_hi.q.val(),
            74 => self.csr_val.next = self.cq_size.q.val(),
            75 => self.csr_val.next = self.cq_head.q.val(),
            76 => self.csr_val.next = self.cq_tail.q.val(),
            96 => self.csr_val.next = self.vres_lo.q.val(),
            97 => self.csr_val.next = self.vres_hi.q.val(),
            _ => {}
        }
        for i in 0..9 {
            if self.csr_addr.val().index() == 35 + i {
                self.csr_val.next = self.perf[i].q.val();
            }
        }
        self.csr_q.d.next = self.csr_val.val();
        self.csr_rdata.next = self.csr_q.q.val();

        // Counters: the cycle, and where it went (index into PERF_MATVEC..PERF_IDLE).
        self.cycle.d.next = self.cycle.q.val() + 1;
        self.perf_sel.next = 7.into();
        match self.seq_phase.val().index() {
            1 => {
                self.perf_sel.next = self.vec_phase.val() - 1;
                if !self.vec_phase.val().any() {
                    self.perf_sel.next = 7.into();
                }
            }
            2 => self.perf_sel.next = 6.into(),
            3 => self.perf_sel.next = 8.into(),
            _ => self.perf_sel.next = 7.into(),
        }
        for i in 0..9 {
            if self.perf_sel.val().index() == i {
                self.perf[i].d.next = self.perf[i].q.val() + 1;
            }
        }
        if self.token_tick.val() {
            self.tokens.d.next = self.tokens.q.val() + 1;
        }

        // Firmware writes.
        if self.csr_we.val() {
            match self.csr_addr.val().index() {
                24 => self.rom_sig_lo.d.next = self.csr_wdata.val(),
                25 => self.rom_sig_hi.d.next = self.csr_wdata.val(),
                26 => self.status.d.next = self.csr_wdata.val(),
                27 => self.ctrl.d.next = self.csr_wdata.val(),
                68 => self.sq_head.d.next = self.csr_wdata.val(),
                76 => self.cq_tail.d.next = self.csr_wdata.val(),
                _ => {}
            }
        }
        if self.vres_we.val() {
            self.vres_lo.d.next = self.vres.val().get_bits::<32>(0);
            self.vres_hi.d.next = self.vres.val().get_bits::<32>(32);
        }

        // Host writes (and the CYCLE_HI latch on reads of CYCLE_LO).
        self.ack_q.d.next = self.mmio_req.val();
        self.rdata_q.d.next = self.mmio_val.val();
        if self.mmio_req.val() & !self.mmio_we.val() & (self.mmio_idx.val().index() == 0x20) {
            self.cycle_hi_latch.d.next = self.cycle.q.val().get_bits::<32>(32);
        }
        if self.mmio_req.val() & self.mmio_we.val() {
            match self.mmio_idx.val().index() {
                27 => self.ctrl.d.next = self.mmio_wdata.val(),
                28 => self.irq_status.d.next = self.irq_status.q.val() & !self.mmio_wdata.val(),
                29 => self.irq_mask.d.next = self.mmio_wdata.val(),
                64 => self.sq_base_lo.d.next = self.mmio_wdata.val(),
                65 => self.sq_base_hi.d.next = self.mmio_wdata.val(),
                66 => self.sq_size.d.next = self.mmio_wdata.val(),
                67 => self.sq_tail.d.next = self.mmio_wdata.val(),
                72 => self.cq_base_lo.d.next = self.mmio_wdata.val(),
                73 => self.cq_base_hi.d.next = self.mmio_wdata.val(),
                74 => self.cq_size.d.next = self.mmio_wdata.val(),
                75 => self.cq_head.d.next = self.mmio_wdata.val(),
                _ => {}
            }
        }
        self.mmio_ack.next = self.ack_q.q.val();
        self.mmio_rdata.next = self.rdata_q.q.val();

        // Interrupts: a cause bit per vector, a pulse where the mask allows it.
        self.irq_q.d.next = 0.into();
        if self.irq_raise.val() {
            self.irq_status.d.next =
                self.irq_status.q.val() | (bits::<32>(1) << self.irq_vec.val());
            if self.irq_mask.q.val().get_bit(self.irq_vec.val().index()) {
                self.irq_q.d.next = bits::<4>(1) << self.irq_vec.val();
            }
        }
        self.fault_q.d.next = self.fault.val();
        if self.fault.val() & !self.fault_q.q.val() {
            self.irq_status.d.next = self.irq_status.q.val() | 2;
            if self.irq_mask.q.val().get_bit(1) {
                self.irq_q.d.next = 2.into();
            }
        }
        self.irq.next = self.irq_q.q.val();

        if self.reset.val() {
            self.status.d.next = 0.into();
            self.ctrl.d.next = 0.into();
            self.irq_status.d.next = 0.into();
            self.irq_mask.d.next = 0.into();
            self.cycle.d.next = 0.into();
            self.tokens.d.next = 0.into();
            for i in 0..9 {
                self.perf[i].d.next = 0.into();
            }
            self.sq_base_lo.d.next = 0.into();
            self.sq_base_hi.d.next = 0.into();
            self.sq_size.d.next = 0.into();
            self.sq_tail.d.next = 0.into();
            self.sq_head.d.next = 0.into();
            self.cq_base_lo.d.next = 0.into();
            self.cq_base_hi.d.next = 0.into();
            self.cq_size.d.next = 0.into();
            self.cq_head.d.next = 0.into();
            self.cq_tail.d.next = 0.into();
            self.rom_sig_lo.d.next = 0.into();
            self.rom_sig_hi.d.next = 0.into();
            self.ack_q.d.next = false;
            self.irq_q.d.next = 0.into();
        }
    }
}

/// The register indices the host interface implements, for documentation tests.
pub const IMPLEMENTED: &[u16] = &[
    regs::ID,
    regs::VERSION,
    regs::FW_VERSION,
    regs::CONFIG0,
    regs::CONFIG1,
    regs::CONFIG2,
    regs::CONFIG3,
    regs::MODEL_ID0,
    regs::FW_HASH0,
    regs::ROM_SIG_LO,
    regs::ROM_SIG_HI,
    regs::STATUS,
    regs::CONTROL,
    regs::IRQ_STATUS,
    regs::IRQ_MASK,
    regs::CYCLE_LO,
    regs::CYCLE_HI,
    regs::TOKENS,
    regs::PERF_MATVEC,
    regs::PERF_ATTENTION,
    regs::PERF_SOFTMAX,
    regs::PERF_NORM,
    regs::PERF_ELEMENTWISE,
    regs::PERF_SAMPLING,
    regs::PERF_DMA,
    regs::PERF_CONTROL,
    regs::PERF_IDLE,
    regs::SQ_BASE_LO,
    regs::SQ_BASE_HI,
    regs::SQ_SIZE,
    regs::SQ_TAIL,
    regs::SQ_HEAD,
    regs::CQ_BASE_LO,
    regs::CQ_BASE_HI,
    regs::CQ_SIZE,
    regs::CQ_HEAD,
    regs::CQ_TAIL,
    regs::VRES_LO,
    regs::VRES_HI,
];
