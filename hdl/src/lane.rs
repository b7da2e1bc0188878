//! One MAC lane of the vector unit.
//!
//! Every lane executes the same micro-operation each cycle on its own operands: a
//! signed 18×18 multiply with an optional addend, a 48-bit accumulator, a requantizer,
//! and a running argmax. The controller issues a micro-operation in cycle `c`
//! (addresses to the memories); the lane sees the memory data and the micro-operation
//! in `E = c+1`, accumulates in `A = c+2`, requantizes in `c+3`, and presents the
//! result for the activation RAM write in `W = c+4`.
//!
//! ```text
//!          E                     A                       R            W
//!  a_sel ─┐                 ┌─ acc_op: hold/load/add/add_other
//!  b_sel ─┼─► a·b (+rd1) ─► pre_q ─► acc_q
//!         │                 └─► x ─► requant(x, m, s) ─► (reg) ─► wdata
//!  argmax (signed, first maximum) on rd0
//! ```

use rust_hdl::prelude::*;

use crate::prim::{Mul, Requant};

/// Operand A selections (`u_a`).
pub mod opa {
    /// 0.
    pub const ZERO: u64 = 0;
    /// AR read port 0, signed.
    pub const RD0: u64 = 1;
    /// The RoPE partner lane's read port 0, signed.
    pub const NBR: u64 = 2;
    /// The lane's query register, signed.
    pub const QREG: u64 = 3;
    /// The attention weight of the lane's head, unsigned.
    pub const PW: u64 = 4;
    /// The signed broadcast bus.
    pub const BC: u64 = 5;
    /// AR read port 0, unsigned (probabilities).
    pub const RD0U: u64 = 6;
}

/// Operand B selections (`u_b`).
pub mod opb {
    /// 1.
    pub const ONE: u64 = 0;
    /// The lane's weight byte, signed.
    pub const W8: u64 = 1;
    /// AR read port 0.
    pub const RD0: u64 = 2;
    /// AR read port 1.
    pub const RD1: u64 = 3;
    /// RMSNorm gain.
    pub const GAIN: u64 = 4;
    /// The lane's KV element.
    pub const KV: u64 = 5;
    /// RoPE cosine.
    pub const COS: u64 = 6;
    /// RoPE sine (negated for even lanes by the wiring).
    pub const SIN: u64 = 7;
    /// 1 if read port 0 (unsigned) is at least `tau`, else 0.
    pub const MASK: u64 = 8;
    /// The unsigned broadcast bus.
    pub const BC2: u64 = 9;
}

/// Accumulator operations (`u_acc`).
pub mod accop {
    /// Keep.
    pub const HOLD: u64 = 0;
    /// `acc = pre`.
    pub const LOAD: u64 = 1;
    /// `acc += pre`.
    pub const ADD: u64 = 2;
    /// `acc += acc_other` (partial sums of other attention positions).
    pub const ADD_OTHER: u64 = 3;
}

/// Requantizer multiplier/shift sources (`u_msel`).
pub mod msel {
    /// The lane's requantization ROM word (per-row multiplier and shift).
    pub const QROM: u64 = 0;
    /// The broadcast multiplier and shift.
    pub const BCAST: u64 = 1;
    /// The lane's head multiplier and shift (attention normalization).
    pub const HEAD: u64 = 2;
    /// Multiplier 1, broadcast shift.
    pub const ONE: u64 = 3;
    /// Read port 1 as a signed multiplier, broadcast shift (SwiGLU's `h3`).
    pub const RD1: u64 = 4;
}

/// Raw write sources (`u_raw`): values written without requantization.
pub mod raw {
    /// Write the requantizer output.
    pub const NONE: u64 = 0;
    /// Write the unsigned broadcast bus.
    pub const BC2: u64 = 1;
    /// Write the lane's DMA word.
    pub const DMA: u64 = 2;
}

/// One lane.
#[derive(LogicBlock)]
pub struct Lane {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// Synchronous reset.
    pub reset: Signal<In, Bit>,
    /// E: AR read port 0.
    pub rd0: Signal<In, Bits<16>>,
    /// E: AR read port 1.
    pub rd1: Signal<In, Bits<16>>,
    /// E: the RoPE partner's read port 0.
    pub nbr: Signal<In, Bits<16>>,
    /// E: the value the query register loads.
    pub qsrc: Signal<In, Bits<16>>,
    /// E: weight byte.
    pub w8: Signal<In, Bits<8>>,
    /// E: RMSNorm gain.
    pub gain: Signal<In, Bits<16>>,
    /// E: KV element.
    pub kv: Signal<In, Bits<16>>,
    /// E: attention weight (unsigned).
    pub pw: Signal<In, Bits<16>>,
    /// E: RoPE cosine.
    pub cosv: Signal<In, Bits<16>>,
    /// E: RoPE sine.
    pub sinv: Signal<In, Bits<16>>,
    /// E: signed broadcast.
    pub bc: Signal<In, Bits<16>>,
    /// E: unsigned broadcast.
    pub bc2: Signal<In, Bits<16>>,
    /// E: DMA word for this lane.
    pub dmaw: Signal<In, Bits<16>>,
    /// E: sampler threshold.
    pub tau: Signal<In, Bits<16>>,
    /// E: requantization ROM multiplier.
    pub qm: Signal<In, Bits<16>>,
    /// E: requantization ROM shift.
    pub qs: Signal<In, Bits<6>>,
    /// A: broadcast multiplier (signed).
    pub bmult: Signal<In, Bits<17>>,
    /// A: broadcast shift.
    pub bshift: Signal<In, Bits<6>>,
    /// A: head multiplier.
    pub hmult: Signal<In, Bits<16>>,
    /// A: head shift.
    pub hshift: Signal<In, Bits<6>>,
    /// A: accumulators of the other positions of this lane's column.
    pub acc_other: Signal<In, Bits<48>>,
    /// E: operand A select.
    pub u_a: Signal<In, Bits<3>>,
    /// E: operand B select.
    pub u_b: Signal<In, Bits<4>>,
    /// E: add read port 1 to the product.
    pub u_cadd: Signal<In, Bit>,
    /// E: accumulator operation.
    pub u_acc: Signal<In, Bits<2>>,
    /// E: requantize and write.
    pub u_rq: Signal<In, Bit>,
    /// E: requantize the accumulator (0) or the product (1).
    pub u_rqin: Signal<In, Bit>,
    /// E: multiplier/shift source.
    pub u_msel: Signal<In, Bits<3>>,
    /// E: raw write source.
    pub u_raw: Signal<In, Bits<2>>,
    /// E: update the argmax.
    pub u_am: Signal<In, Bit>,
    /// E: restart the argmax.
    pub u_amfirst: Signal<In, Bit>,
    /// E: load the query register.
    pub u_qload: Signal<In, Bit>,
    /// E: the lane takes part in this micro-operation.
    pub u_active: Signal<In, Bit>,
    /// E: slot index (for the argmax position).
    pub u_slot: Signal<In, Bits<12>>,
    /// The product register (for the adder tree).
    pub pre: Signal<Out, Bits<48>>,
    /// The accumulator.
    pub acc: Signal<Out, Bits<48>>,
    /// W: write enable.
    pub we: Signal<Out, Bit>,
    /// W: write data.
    pub wdata: Signal<Out, Bits<16>>,
    /// The argmax holds a value.
    pub am_valid: Signal<Out, Bit>,
    /// Largest value seen.
    pub am_val: Signal<Out, Bits<16>>,
    /// Its slot.
    pub am_slot: Signal<Out, Bits<12>>,

    amux: Signal<Local, Bits<16>>,
    a_sgn: Signal<Local, Bit>,
    bmux: Signal<Local, Bits<16>>,
    b_sgn: Signal<Local, Bit>,
    a18: Signal<Local, Bits<18>>,
    b18: Signal<Local, Bits<18>>,
    addend: Signal<Local, Bits<48>>,
    acc_next: Signal<Local, Bits<48>>,
    am_better: Signal<Local, Bit>,
    mul: Mul<18, 18, 48>,
    rq: Requant,
    pre_q: DFF<Bits<48>>,
    acc_q: DFF<Bits<48>>,
    qreg: DFF<Bits<16>>,
    a_rq: DFF<Bit>,
    a_rqin: DFF<Bit>,
    a_msel: DFF<Bits<3>>,
    a_raw: DFF<Bits<2>>,
    a_acc: DFF<Bits<2>>,
    a_qm: DFF<Bits<16>>,
    a_qs: DFF<Bits<6>>,
    a_rd1: DFF<Bits<16>>,
    a_rawv: DFF<Bits<16>>,
    r_valid: DFF<Bit>,
    r_raw: DFF<Bit>,
    r_rawv: DFF<Bits<16>>,
    w_valid: DFF<Bit>,
    w_raw: DFF<Bit>,
    w_rawv: DFF<Bits<16>>,
    am_v: DFF<Bit>,
    am_x: DFF<Bits<16>>,
    am_s: DFF<Bits<12>>,
}

impl Default for Lane {
    fn default() -> Self {
        Lane {
            clock: Default::default(),
            reset: Default::default(),
            rd0: Default::default(),
            rd1: Default::default(),
            nbr: Default::default(),
            qsrc: Default::default(),
            w8: Default::default(),
            gain: Default::default(),
            kv: Default::default(),
            pw: Default::default(),
            cosv: Default::default(),
            sinv: Default::default(),
            bc: Default::default(),
            bc2: Default::default(),
            dmaw: Default::default(),
            tau: Default::default(),
            qm: Default::default(),
            qs: Default::default(),
            bmult: Default::default(),
            bshift: Default::default(),
            hmult: Default::default(),
            hshift: Default::default(),
            acc_other: Default::default(),
            u_a: Default::default(),
            u_b: Default::default(),
            u_cadd: Default::default(),
            u_acc: Default::default(),
            u_rq: Default::default(),
            u_rqin: Default::default(),
            u_msel: Default::default(),
            u_raw: Default::default(),
            u_am: Default::default(),
            u_amfirst: Default::default(),
            u_qload: Default::default(),
            u_active: Default::default(),
            u_slot: Default::default(),
            pre: Default::default(),
            acc: Default::default(),
            we: Default::default(),
            wdata: Default::default(),
            am_valid: Default::default(),
            am_val: Default::default(),
            am_slot: Default::default(),
            amux: Default::default(),
            a_sgn: Default::default(),
            bmux: Default::default(),
            b_sgn: Default::default(),
            a18: Default::default(),
            b18: Default::default(),
            addend: Default::default(),
            acc_next: Default::default(),
            am_better: Default::default(),
            mul: Mul::new(true, true),
            rq: Default::default(),
            pre_q: Default::default(),
            acc_q: Default::default(),
            qreg: Default::default(),
            a_rq: Default::default(),
            a_rqin: Default::default(),
            a_msel: Default::default(),
            a_raw: Default::default(),
            a_acc: Default::default(),
            a_qm: Default::default(),
            a_qs: Default::default(),
            a_rd1: Default::default(),
            a_rawv: Default::default(),
            r_valid: Default::default(),
            r_raw: Default::default(),
            r_rawv: Default::default(),
            w_valid: Default::default(),
            w_raw: Default::default(),
            w_rawv: Default::default(),
            am_v: Default::default(),
            am_x: Default::default(),
            am_s: Default::default(),
        }
    }
}

impl Logic for Lane {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(
            self, clock, pre_q, acc_q, qreg, a_rq, a_rqin, a_msel, a_raw, a_acc, a_qm, a_qs, a_rd1,
            a_rawv, r_valid, r_raw, r_rawv, w_valid, w_raw, w_rawv, am_v, am_x, am_s
        );
        self.rq.clock.next = self.clock.val();

        // E: operand A (zero when the lane sits this micro-operation out).
        self.amux.next = 0.into();
        self.a_sgn.next = true;
        match self.u_a.val().index() {
            1 => self.amux.next = self.rd0.val(),
            2 => self.amux.next = self.nbr.val(),
            3 => self.amux.next = self.qreg.q.val(),
            4 => {
                self.amux.next = self.pw.val();
                self.a_sgn.next = false;
            }
            5 => self.amux.next = self.bc.val(),
            6 => {
                self.amux.next = self.rd0.val();
                self.a_sgn.next = false;
            }
            _ => self.amux.next = 0.into(),
        }
        if !self.u_active.val() {
            self.amux.next = 0.into();
        }
        // E: operand B.
        self.bmux.next = 1.into();
        self.b_sgn.next = true;
        match self.u_b.val().index() {
            1 => {
                self.bmux.next = bit_cast::<16, 8>(self.w8.val());
                if self.w8.val().get_bit(7) {
                    self.bmux.next = bit_cast::<16, 8>(self.w8.val()) | 0xFF00;
                }
            }
            2 => self.bmux.next = self.rd0.val(),
            3 => self.bmux.next = self.rd1.val(),
            4 => self.bmux.next = self.gain.val(),
            5 => self.bmux.next = self.kv.val(),
            6 => self.bmux.next = self.cosv.val(),
            7 => self.bmux.next = self.sinv.val(),
            8 => {
                self.bmux.next = 0.into();
                if self.rd0.val() >= self.tau.val() {
                    self.bmux.next = 1.into();
                }
            }
            9 => {
                self.bmux.next = self.bc2.val();
                self.b_sgn.next = false;
            }
            _ => self.bmux.next = 1.into(),
        }
        // Sign- or zero-extend both operands to 18 bits.
        self.a18.next = bit_cast::<18, 16>(self.amux.val());
        if self.a_sgn.val() & self.amux.val().get_bit(15) {
            self.a18.next = bit_cast::<18, 16>(self.amux.val()) | 0x30000;
        }
        self.b18.next = bit_cast::<18, 16>(self.bmux.val());
        if self.b_sgn.val() & self.bmux.val().get_bit(15) {
            self.b18.next = bit_cast::<18, 16>(self.bmux.val()) | 0x30000;
        }
        self.mul.a.next = self.a18.val();
        self.mul.b.next = self.b18.val();
        // The addend: read port 1, sign-extended, for saturating adds.
        self.addend.next = 0.into();
        if self.u_cadd.val() & self.u_active.val() {
            self.addend.next = bit_cast::<48, 16>(self.rd1.val());
            if self.rd1.val().get_bit(15) {
                self.addend.next = bit_cast::<48, 16>(self.rd1.val()) | 0xFFFF_FFFF_0000_u64;
            }
        }
        self.pre_q.d.next = self.mul.p.val() + self.addend.val();

        // E: the query register.
        if self.u_qload.val() {
            self.qreg.d.next = self.qsrc.val();
        }

        // E: argmax on read port 0 (signed; the first maximum wins).
        self.am_better.next = (self.rd0.val() ^ 0x8000) > (self.am_x.q.val() ^ 0x8000);
        if self.u_am.val() {
            if self.u_amfirst.val() {
                self.am_v.d.next = self.u_active.val();
                self.am_x.d.next = self.rd0.val();
                self.am_s.d.next = self.u_slot.val();
            } else if self.u_active.val() & (!self.am_v.q.val() | self.am_better.val()) {
                self.am_v.d.next = true;
                self.am_x.d.next = self.rd0.val();
                self.am_s.d.next = self.u_slot.val();
            }
        }

        // E → A: the micro-operation's later fields.
        self.a_rq.d.next = self.u_rq.val() & self.u_active.val();
        self.a_rqin.d.next = self.u_rqin.val();
        self.a_msel.d.next = self.u_msel.val();
        self.a_acc.d.next = self.u_acc.val();
        self.a_qm.d.next = self.qm.val();
        self.a_qs.d.next = self.qs.val();
        self.a_rd1.d.next = self.rd1.val();
        self.a_raw.d.next = 0.into();
        if self.u_active.val() {
            self.a_raw.d.next = self.u_raw.val();
        }
        self.a_rawv.d.next = self.bc2.val();
        if self.u_raw.val().index() == 2 {
            self.a_rawv.d.next = self.dmaw.val();
        }

        // A: accumulate.
        self.acc_next.next = self.acc_q.q.val();
        match self.a_acc.q.val().index() {
            1 => self.acc_next.next = self.pre_q.q.val(),
            2 => self.acc_next.next = self.acc_q.q.val() + self.pre_q.q.val(),
            3 => self.acc_next.next = self.acc_q.q.val() + self.acc_other.val(),
            _ => self.acc_next.next = self.acc_q.q.val(),
        }
        self.acc_q.d.next = self.acc_next.val();

        // A: requantizer operands.
        self.rq.x.next = self.acc_next.val();
        if self.a_rqin.q.val() {
            self.rq.x.next = self.pre_q.q.val();
        }
        self.rq.m.next = bit_cast::<17, 16>(self.a_qm.q.val());
        self.rq.s.next = self.a_qs.q.val();
        match self.a_msel.q.val().index() {
            1 => {
                self.rq.m.next = self.bmult.val();
                self.rq.s.next = self.bshift.val();
            }
            2 => {
                self.rq.m.next = bit_cast::<17, 16>(self.hmult.val());
                self.rq.s.next = self.hshift.val();
            }
            3 => {
                self.rq.m.next = 1.into();
                self.rq.s.next = self.bshift.val();
            }
            4 => {
                self.rq.m.next = bit_cast::<17, 16>(self.a_rd1.q.val());
                if self.a_rd1.q.val().get_bit(15) {
                    self.rq.m.next = bit_cast::<17, 16>(self.a_rd1.q.val()) | 0x10000;
                }
                self.rq.s.next = self.bshift.val();
            }
            _ => {
                self.rq.m.next = bit_cast::<17, 16>(self.a_qm.q.val());
                self.rq.s.next = self.a_qs.q.val();
            }
        }
        self.r_valid.d.next = self.a_rq.q.val();
        self.r_raw.d.next = self.a_raw.q.val().any();
        self.r_rawv.d.next = self.a_rawv.q.val();
        self.w_valid.d.next = self.r_valid.q.val();
        self.w_raw.d.next = self.r_raw.q.val();
        self.w_rawv.d.next = self.r_rawv.q.val();

        // W: the write.
        self.we.next = self.w_valid.q.val() | self.w_raw.q.val();
        self.wdata.next = self.rq.y.val();
        if self.w_raw.q.val() {
            self.wdata.next = self.w_rawv.q.val();
        }

        self.pre.next = self.pre_q.q.val();
        self.acc.next = self.acc_q.q.val();
        self.am_valid.next = self.am_v.q.val();
        self.am_val.next = self.am_x.q.val();
        self.am_slot.next = self.am_s.q.val();

        if self.reset.val() {
            self.r_valid.d.next = false;
            self.w_valid.d.next = false;
            self.r_raw.d.next = false;
            self.w_raw.d.next = false;
            self.a_rq.d.next = false;
            self.a_raw.d.next = 0.into();
            self.am_v.d.next = false;
        }
    }
}
