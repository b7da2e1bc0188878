//! The sequencer: a small in-order core that runs the firmware (`docs/isa.md`).
//!
//! Two cycles per instruction (the address goes to the instruction ROM in Fetch, the
//! word comes back and executes in Exec), more for
//! scratchpad loads, DMA transfers and vector operations, which it hands to the vector
//! controller and waits for. Sixteen 64-bit registers (`r0` reads 0), a scratchpad of
//! 1024 32-bit words in two banks (even and odd words, so that a 64-bit DMA beat or an
//! `ldd`/`std` touches both at once), the BAR0 registers as CSRs.

use rust_hdl::prelude::*;

use crate::prim::{MulReg, Ram, RegFile};

/// Sequencer states.
#[derive(Copy, Clone, Debug, PartialEq, LogicState)]
pub enum SeqState {
    /// Reset just released.
    Boot,
    /// Instruction address out.
    Fetch,
    /// Instruction in: execute.
    Exec,
    /// Scratchpad read in flight.
    Load,
    /// CSR read in flight (`csrr`, `waitne`).
    CsrRd,
    /// Product in flight (`muli`).
    MulW,
    /// DMA beat from host memory in flight.
    DmaRd,
    /// Scratchpad read for a DMA write beat.
    DmaWrRead,
    /// DMA beat to host memory in flight.
    DmaWr,
    /// Waiting for the vector controller.
    VWait,
    /// Stopped on `halt` or an invalid instruction.
    Fault,
}

/// The sequencer.
#[derive(LogicBlock)]
pub struct Sequencer {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// Synchronous reset.
    pub reset: Signal<In, Bit>,
    /// Instruction ROM address.
    pub imem_addr: Signal<Out, Bits<12>>,
    /// Instruction ROM word (one cycle after its address).
    pub imem_data: Signal<In, Bits<64>>,
    /// CSR index.
    pub csr_addr: Signal<Out, Bits<10>>,
    /// CSR value at `csr_addr` (combinational).
    pub csr_rdata: Signal<In, Bits<32>>,
    /// CSR write.
    pub csr_we: Signal<Out, Bit>,
    /// CSR write value.
    pub csr_wdata: Signal<Out, Bits<32>>,
    /// DMA request (held until `dma_ack`).
    pub dma_req: Signal<Out, Bit>,
    /// DMA write.
    pub dma_we: Signal<Out, Bit>,
    /// DMA host address.
    pub dma_addr: Signal<Out, Bits<64>>,
    /// DMA write data.
    pub dma_wdata: Signal<Out, Bits<64>>,
    /// DMA done.
    pub dma_ack: Signal<In, Bit>,
    /// DMA failed.
    pub dma_err: Signal<In, Bit>,
    /// DMA read data.
    pub dma_rdata: Signal<In, Bits<64>>,
    /// Start a vector operation.
    pub v_start: Signal<Out, Bit>,
    /// Its kind.
    pub v_kind: Signal<Out, Bits<8>>,
    /// Its parameter row.
    pub v_prow: Signal<Out, Bits<16>>,
    /// Operand a.
    pub v_ra: Signal<Out, Bits<64>>,
    /// Operand b.
    pub v_rb: Signal<Out, Bits<64>>,
    /// Operand c.
    pub v_rc: Signal<Out, Bits<64>>,
    /// The vector operation finished.
    pub v_done: Signal<In, Bit>,
    /// Its result.
    pub v_result: Signal<In, Bits<64>>,
    /// Write `v_result` to VRES.
    pub vres_we: Signal<Out, Bit>,
    /// Raise an interrupt.
    pub irq_raise: Signal<Out, Bit>,
    /// Its vector.
    pub irq_vec: Signal<Out, Bits<4>>,
    /// Waiting for a doorbell (nothing to do).
    pub idle: Signal<Out, Bit>,
    /// Stopped on a fault.
    pub fault: Signal<Out, Bit>,
    /// What the sequencer does this cycle: 0 its own instructions, 1 waits for a vector
    /// operation, 2 DMA, 3 waits for a doorbell.
    pub phase: Signal<Out, Bits<2>>,

    state: DFF<SeqState>,
    pc: DFF<Bits<12>>,
    ir: DFF<Bits<64>>,
    regs: RegFile<64>,
    beat: DFF<Bits<16>>,
    words: DFF<Bits<16>>,
    spad_even: Ram<9, 32>,
    spad_odd: Ram<9, 32>,
    mul: MulReg<32, 32, 64>,
    op: Signal<Local, Bits<8>>,
    rd: Signal<Local, Bits<4>>,
    va: Signal<Local, Bits<64>>,
    vb: Signal<Local, Bits<64>>,
    vc: Signal<Local, Bits<64>>,
    imm: Signal<Local, Bits<32>>,
    simm: Signal<Local, Bits<64>>,
    wval: Signal<Local, Bits<64>>,
    wen: Signal<Local, Bit>,
    waddr: Signal<Local, Bits<10>>,
    next_pc: Signal<Local, Bits<12>>,
    ldval: Signal<Local, Bits<64>>,
    dma_word: Signal<Local, Bits<10>>,
    inst: Signal<Local, Bits<64>>,
    waiting: DFF<Bit>,
}

impl Default for Sequencer {
    fn default() -> Self {
        Sequencer {
            clock: Default::default(),
            reset: Default::default(),
            imem_addr: Default::default(),
            imem_data: Default::default(),
            csr_addr: Default::default(),
            csr_rdata: Default::default(),
            csr_we: Default::default(),
            csr_wdata: Default::default(),
            dma_req: Default::default(),
            dma_we: Default::default(),
            dma_addr: Default::default(),
            dma_wdata: Default::default(),
            dma_ack: Default::default(),
            dma_err: Default::default(),
            dma_rdata: Default::default(),
            v_start: Default::default(),
            v_kind: Default::default(),
            v_prow: Default::default(),
            v_ra: Default::default(),
            v_rb: Default::default(),
            v_rc: Default::default(),
            v_done: Default::default(),
            v_result: Default::default(),
            vres_we: Default::default(),
            irq_raise: Default::default(),
            irq_vec: Default::default(),
            idle: Default::default(),
            fault: Default::default(),
            phase: Default::default(),
            state: Default::default(),
            pc: Default::default(),
            ir: Default::default(),
            regs: Default::default(),
            beat: Default::default(),
            words: Default::default(),
            spad_even: Ram::new(512),
            spad_odd: Ram::new(512),
            mul: MulReg::new(false, false),
            op: Default::default(),
            rd: Default::default(),
            va: Default::default(),
            vb: Default::default(),
            vc: Default::default(),
            imm: Default::default(),
            simm: Default::default(),
            wval: Default::default(),
            wen: Default::default(),
            waddr: Default::default(),
            next_pc: Default::default(),
            ldval: Default::default(),
            dma_word: Default::default(),
            inst: Default::default(),
            waiting: Default::default(),
        }
    }
}

impl Logic for Sequencer {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, state, pc, ir, beat, words, waiting);
        self.regs.clock.next = self.clock.val();
        self.spad_even.clock.next = self.clock.val();
        self.spad_odd.clock.next = self.clock.val();
        self.mul.clock.next = self.clock.val();

        // Decode: the instruction ROM's word in Exec (its address went out in Fetch),
        // the instruction register in the states after it.
        self.inst.next = self.ir.q.val();
        if self.state.q.val() == SeqState::Exec {
            self.inst.next = self.imem_data.val();
        }
        self.op.next = self.inst.val().get_bits::<8>(56);
        self.rd.next = self.inst.val().get_bits::<4>(52);
        self.imm.next = self.inst.val().get_bits::<32>(0);
        self.simm.next = bit_cast::<64, 32>(self.imm.val());
        if self.imm.val().get_bit(31) {
            self.simm.next = bit_cast::<64, 32>(self.imm.val()) | 0xFFFF_FFFF_0000_0000_u64;
        }
        self.regs.ra.next = self.inst.val().get_bits::<4>(48);
        self.regs.rb.next = self.inst.val().get_bits::<4>(44);
        self.regs.rc.next = self.inst.val().get_bits::<4>(40);
        self.va.next = self.regs.da.val();
        self.vb.next = self.regs.db.val();
        self.vc.next = self.regs.dc.val();
        self.mul.a.next = self.va.val().get_bits::<32>(0);
        self.mul.b.next = self.imm.val();
        // Scratchpad word address for ld/st: ra + imm (32-bit words).
        self.waddr.next = bit_cast::<10, 64>(self.va.val() + self.simm.val());

        // Defaults.
        self.imem_addr.next = self.pc.q.val();
        self.csr_addr.next = self.imm.val().get_bits::<10>(0);
        self.csr_we.next = false;
        self.csr_wdata.next = self.va.val().get_bits::<32>(0);
        self.dma_req.next = false;
        self.dma_we.next = false;
        self.dma_addr.next = self.vb.val() + (bit_cast::<64, 16>(self.beat.q.val()) << 3);
        self.dma_wdata.next = (bit_cast::<64, 32>(self.spad_odd.rdata.val()) << 32)
            | bit_cast::<64, 32>(self.spad_even.rdata.val());
        self.v_start.next = false;
        self.v_kind.next = self.inst.val().get_bits::<8>(32);
        self.v_prow.next = self.imm.val().get_bits::<16>(0);
        self.v_ra.next = self.va.val();
        self.v_rb.next = self.vb.val();
        self.v_rc.next = self.vc.val();
        self.vres_we.next = false;
        self.irq_raise.next = false;
        self.irq_vec.next = self.imm.val().get_bits::<4>(0);
        self.idle.next = self.waiting.q.val();
        self.fault.next = false;
        self.spad_even.raddr.next = self.waddr.val().get_bits::<9>(1);
        self.spad_odd.raddr.next = self.waddr.val().get_bits::<9>(1);
        self.spad_even.we.next = false;
        self.spad_odd.we.next = false;
        self.spad_even.waddr.next = self.waddr.val().get_bits::<9>(1);
        self.spad_odd.waddr.next = self.waddr.val().get_bits::<9>(1);
        self.spad_even.wdata.next = self.vb.val().get_bits::<32>(0);
        self.spad_odd.wdata.next = self.vb.val().get_bits::<32>(0);
        self.wen.next = false;
        self.wval.next = 0.into();
        self.next_pc.next = self.pc.q.val() + 1;
        self.dma_word.next =
            self.va.val().get_bits::<10>(0) + bit_cast::<10, 16>(self.beat.q.val() << 1);
        self.ldval.next = bit_cast::<64, 32>(self.spad_even.rdata.val());
        if self.waddr.val().get_bit(0) {
            self.ldval.next = bit_cast::<64, 32>(self.spad_odd.rdata.val());
        }

        match self.state.q.val() {
            SeqState::Boot => {
                self.pc.d.next = 0.into();
                self.state.d.next = SeqState::Fetch;
            }
            SeqState::Fetch => {
                self.state.d.next = SeqState::Exec;
            }
            SeqState::Exec => {
                self.ir.d.next = self.imem_data.val();
                self.state.d.next = SeqState::Fetch;
                match self.op.val().index() {
                    0 => {}
                    2 => {
                        self.wen.next = true;
                        self.wval.next = self.simm.val();
                    }
                    3 => {
                        self.wen.next = true;
                        self.wval.next = (bit_cast::<64, 32>(self.imm.val()) << 32)
                            | bit_cast::<64, 32>(self.va.val().get_bits::<32>(0));
                    }
                    4 => {
                        self.wen.next = true;
                        self.wval.next = self.va.val() + self.vb.val();
                    }
                    5 => {
                        self.wen.next = true;
                        self.wval.next = self.va.val() + self.simm.val();
                    }
                    6 => {
                        self.wen.next = true;
                        self.wval.next = self.va.val() - self.vb.val();
                    }
                    7 => {
                        self.wen.next = true;
                        self.wval.next = self.va.val() & self.vb.val();
                    }
                    8 => {
                        self.wen.next = true;
                        self.wval.next = self.va.val() | self.vb.val();
                    }
                    9 => {
                        self.wen.next = true;
                        self.wval.next = self.va.val() ^ self.vb.val();
                    }
                    10 => {
                        self.wen.next = true;
                        self.wval.next = self.va.val() << self.imm.val().get_bits::<6>(0);
                    }
                    11 => {
                        self.wen.next = true;
                        self.wval.next = self.va.val() >> self.imm.val().get_bits::<6>(0);
                    }
                    12 => {
                        self.next_pc.next = self.pc.q.val();
                        self.state.d.next = SeqState::MulW;
                    }
                    13 => {
                        self.wen.next = true;
                        self.wval.next = self.va.val() & bit_cast::<64, 32>(self.imm.val());
                    }
                    16 => {
                        if self.va.val() == self.vb.val() {
                            self.next_pc.next = self.imm.val().get_bits::<12>(0);
                        }
                    }
                    17 => {
                        if self.va.val() != self.vb.val() {
                            self.next_pc.next = self.imm.val().get_bits::<12>(0);
                        }
                    }
                    18 => {
                        if self.va.val() < self.vb.val() {
                            self.next_pc.next = self.imm.val().get_bits::<12>(0);
                        }
                    }
                    19 => {
                        if self.va.val() >= self.vb.val() {
                            self.next_pc.next = self.imm.val().get_bits::<12>(0);
                        }
                    }
                    20 => self.next_pc.next = self.imm.val().get_bits::<12>(0),
                    21 => {
                        self.wen.next = true;
                        self.wval.next = bit_cast::<64, 12>(self.pc.q.val() + 1);
                        self.next_pc.next = self.imm.val().get_bits::<12>(0);
                    }
                    22 => self.next_pc.next = self.va.val().get_bits::<12>(0),
                    24 => {
                        self.next_pc.next = self.pc.q.val();
                        self.state.d.next = SeqState::Load;
                    }
                    25 => {
                        self.next_pc.next = self.pc.q.val();
                        self.state.d.next = SeqState::Load;
                    }
                    26 => {
                        self.spad_even.we.next = !self.waddr.val().get_bit(0);
                        self.spad_odd.we.next = self.waddr.val().get_bit(0);
                    }
                    27 => {
                        self.spad_even.we.next = true;
                        self.spad_odd.we.next = true;
                        self.spad_odd.wdata.next = self.vb.val().get_bits::<32>(32);
                    }
                    32 => {
                        self.next_pc.next = self.pc.q.val();
                        self.state.d.next = SeqState::CsrRd;
                    }
                    33 => self.csr_we.next = true,
                    34 => {
                        self.next_pc.next = self.pc.q.val();
                        self.state.d.next = SeqState::CsrRd;
                    }
                    35 => self.irq_raise.next = true,
                    40 => {
                        self.beat.d.next = 0.into();
                        self.words.d.next = self.imm.val().get_bits::<16>(0);
                        self.next_pc.next = self.pc.q.val();
                        self.state.d.next = SeqState::DmaRd;
                    }
                    41 => {
                        self.beat.d.next = 0.into();
                        self.words.d.next = self.imm.val().get_bits::<16>(0);
                        self.next_pc.next = self.pc.q.val();
                        self.state.d.next = SeqState::DmaWrRead;
                    }
                    48 => {
                        self.v_start.next = true;
                        self.next_pc.next = self.pc.q.val();
                        self.state.d.next = SeqState::VWait;
                    }
                    _ => {
                        self.next_pc.next = self.pc.q.val();
                        self.state.d.next = SeqState::Fault;
                    }
                }
                self.pc.d.next = self.next_pc.val();
            }
            SeqState::Load => {
                self.wen.next = true;
                self.wval.next = self.ldval.val();
                if self.op.val().index() == 0x19 {
                    self.wval.next = (bit_cast::<64, 32>(self.spad_odd.rdata.val()) << 32)
                        | bit_cast::<64, 32>(self.spad_even.rdata.val());
                }
                self.pc.d.next = self.pc.q.val() + 1;
                self.state.d.next = SeqState::Fetch;
            }
            SeqState::CsrRd => {
                // csrr: the value; waitne: fetch this instruction again while equal.
                self.pc.d.next = self.pc.q.val() + 1;
                self.state.d.next = SeqState::Fetch;
                if self.op.val().index() == 32 {
                    self.wen.next = true;
                    self.wval.next = bit_cast::<64, 32>(self.csr_rdata.val());
                } else {
                    // Idle while the doorbell shows nothing new; busy again once it does.
                    self.waiting.d.next = false;
                    if self.csr_rdata.val() == self.va.val().get_bits::<32>(0) {
                        self.waiting.d.next = true;
                        self.pc.d.next = self.pc.q.val();
                    }
                }
            }
            SeqState::MulW => {
                self.wen.next = true;
                self.wval.next = self.mul.p.val();
                self.pc.d.next = self.pc.q.val() + 1;
                self.state.d.next = SeqState::Fetch;
            }
            SeqState::DmaRd => {
                // Beat k of `words / 2` from host address rb + 8k into spad word ra + 2k.
                self.dma_req.next = true;
                self.spad_even.waddr.next = self.dma_word.val().get_bits::<9>(1);
                self.spad_odd.waddr.next = self.dma_word.val().get_bits::<9>(1);
                self.spad_even.wdata.next = self.dma_rdata.val().get_bits::<32>(0);
                self.spad_odd.wdata.next = self.dma_rdata.val().get_bits::<32>(32);
                if self.dma_ack.val() {
                    self.spad_even.we.next = !self.dma_err.val();
                    self.spad_odd.we.next = !self.dma_err.val();
                    self.beat.d.next = self.beat.q.val() + 1;
                    if self.dma_err.val() | ((self.beat.q.val() << 1) + 2 >= self.words.q.val()) {
                        self.wen.next = true;
                        self.wval.next = bit_cast::<64, 1>(self.dma_err.val().into());
                        self.pc.d.next = self.pc.q.val() + 1;
                        self.state.d.next = SeqState::Fetch;
                    }
                }
            }
            SeqState::DmaWrRead => {
                self.spad_even.raddr.next = self.dma_word.val().get_bits::<9>(1);
                self.spad_odd.raddr.next = self.dma_word.val().get_bits::<9>(1);
                self.state.d.next = SeqState::DmaWr;
            }
            SeqState::DmaWr => {
                self.dma_req.next = true;
                self.dma_we.next = true;
                self.spad_even.raddr.next = self.dma_word.val().get_bits::<9>(1);
                self.spad_odd.raddr.next = self.dma_word.val().get_bits::<9>(1);
                if self.dma_ack.val() {
                    self.beat.d.next = self.beat.q.val() + 1;
                    self.state.d.next = SeqState::DmaWrRead;
                    if self.dma_err.val() | ((self.beat.q.val() << 1) + 2 >= self.words.q.val()) {
                        self.wen.next = true;
                        self.wval.next = bit_cast::<64, 1>(self.dma_err.val().into());
                        self.pc.d.next = self.pc.q.val() + 1;
                        self.state.d.next = SeqState::Fetch;
                    }
                }
            }
            SeqState::VWait => {
                if self.v_done.val() {
                    self.vres_we.next = true;
                    self.pc.d.next = self.pc.q.val() + 1;
                    self.state.d.next = SeqState::Fetch;
                }
            }
            SeqState::Fault => {
                self.fault.next = true;
            }
        }

        // Phase for the performance counters.
        self.phase.next = 0.into();
        match self.state.q.val() {
            SeqState::VWait => self.phase.next = 1.into(),
            SeqState::DmaRd => self.phase.next = 2.into(),
            SeqState::DmaWrRead => self.phase.next = 2.into(),
            SeqState::DmaWr => self.phase.next = 2.into(),
            _ => self.phase.next = 0.into(),
        }
        if self.waiting.q.val() {
            self.phase.next = 3.into();
        }

        // Register write-back (r0 stays 0).
        self.regs.we.next = self.wen.val() & self.rd.val().any();
        self.regs.wa.next = self.rd.val();
        self.regs.wd.next = self.wval.val();

        if self.reset.val() {
            self.state.d.next = SeqState::Boot;
            self.pc.d.next = 0.into();
            self.waiting.d.next = false;
        }
    }
}
