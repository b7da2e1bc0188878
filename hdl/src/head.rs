//! The attention head unit: one per (position lane group, head) of the vector unit.
//!
//! Pass 1 receives the head's raw scores `q·k` from the adder tree, keeps the running
//! maximum over valid positions and stores every score in its score RAM. Pass 2 reads
//! the scores back and turns each into an attention weight
//! `p = exp2(requant(s − max, score_mult, score_shift))` (Q15), which the lanes of the
//! head multiply into the values, while the unit sums the weights. Finally the
//! reciprocal of the sum becomes the head's requantization multiplier and shift.
//!
//! Latencies: a score read issued in cycle `X` gives its weight in `X + 5`, or
//! `X + 6` with `dreg` (the difference `s − max` registered before the requantizer's
//! multiply, for an FPGA: the score RAM's output otherwise runs through the 48-bit
//! subtraction into the multiplier in one cycle); a reciprocal started in `Y` is
//! ready in `Y + 3`.

use rust_hdl::prelude::*;

use crate::prim::{Ram, Requant};
use crate::sfu::{Exp2Unit, RecipUnit, TableData};

/// Address width of the score RAM (positions per position lane group).
pub const SCORE_AW: usize = 14;

/// One head unit.
#[derive(LogicBlock)]
pub struct HeadUnit {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// Synchronous reset.
    pub reset: Signal<In, Bit>,
    /// Which position lane group this unit serves (`t % P`).
    pub my_p: Signal<In, Bits<3>>,
    /// Positions `0..=pos` are valid.
    pub pos: Signal<In, Bits<16>>,
    /// Pass 1: a raw score from the tree.
    pub score: Signal<In, Bits<48>>,
    /// Pass 1: `score` is valid.
    pub s_valid: Signal<In, Bit>,
    /// Pass 1: its score RAM address (`t / P`).
    pub s_addr: Signal<In, Bits<SCORE_AW>>,
    /// Pass 1: its position group base `t − t % P`.
    pub s_tbase: Signal<In, Bits<16>>,
    /// Forget the maximum (before pass 1).
    pub max_clear: Signal<In, Bit>,
    /// Take `max_all` as the maximum (positions in parallel).
    pub combine: Signal<In, Bit>,
    /// The maximum over all units of this head.
    pub max_all: Signal<In, Bits<48>>,
    /// Pass 2: read a score.
    pub r_go: Signal<In, Bit>,
    /// Pass 2: its address.
    pub r_addr: Signal<In, Bits<SCORE_AW>>,
    /// Pass 2: its position group base.
    pub r_tbase: Signal<In, Bits<16>>,
    /// Score scaling multiplier (`log2(e)/sqrt(head_size)` and formats).
    pub score_mult: Signal<In, Bits<16>>,
    /// Score scaling shift.
    pub score_shift: Signal<In, Bits<6>>,
    /// Pass 2: register `s − max` before the requantizer (one cycle more).
    pub dreg: Signal<In, Bit>,
    /// Clear the weight sum (before pass 2).
    pub sum_clear: Signal<In, Bit>,
    /// Start the reciprocal of `sum_all`.
    pub recip_go: Signal<In, Bit>,
    /// The weight sum over all units of this head.
    pub sum_all: Signal<In, Bits<32>>,
    /// Added to the reciprocal's shift (`F_v − F_att`), two's complement.
    pub radj: Signal<In, Bits<6>>,
    /// The maximum (valid when `have`).
    pub max: Signal<Out, Bits<48>>,
    /// A valid score was seen.
    pub have: Signal<Out, Bit>,
    /// Pass 2: the attention weight (0 for invalid positions).
    pub pw: Signal<Out, Bits<16>>,
    /// The weight sum.
    pub sum: Signal<Out, Bits<32>>,
    /// Normalization multiplier.
    pub rmult: Signal<Out, Bits<16>>,
    /// Normalization shift.
    pub rshift: Signal<Out, Bits<6>>,

    s_ok: Signal<Local, Bit>,
    r_ok: Signal<Local, Bit>,
    better: Signal<Local, Bit>,
    /// Pass 2's difference `s − max`, into the requantizer or `diff_q`.
    diff: Signal<Local, Bits<48>>,
    ram: Ram<SCORE_AW, 48>,
    rq: Requant<48>,
    exp: Exp2Unit,
    recip: RecipUnit,
    max_q: DFF<Bits<48>>,
    have_q: DFF<Bit>,
    diff_q: DFF<Bits<48>>,
    ok1: DFF<Bit>,
    okd: DFF<Bit>,
    ok2: DFF<Bit>,
    ok3: DFF<Bit>,
    ok4: DFF<Bit>,
    ok5: DFF<Bit>,
    sum_q: DFF<Bits<32>>,
    rgo1: DFF<Bit>,
    rgo2: DFF<Bit>,
    rmult_q: DFF<Bits<16>>,
    rshift_q: DFF<Bits<6>>,
}

impl HeadUnit {
    /// A head unit whose score RAM holds `depth` positions.
    pub fn new(t: &TableData, depth: usize) -> Self {
        HeadUnit {
            clock: Default::default(),
            reset: Default::default(),
            my_p: Default::default(),
            pos: Default::default(),
            score: Default::default(),
            s_valid: Default::default(),
            s_addr: Default::default(),
            s_tbase: Default::default(),
            max_clear: Default::default(),
            combine: Default::default(),
            max_all: Default::default(),
            r_go: Default::default(),
            r_addr: Default::default(),
            r_tbase: Default::default(),
            score_mult: Default::default(),
            score_shift: Default::default(),
            dreg: Default::default(),
            sum_clear: Default::default(),
            recip_go: Default::default(),
            sum_all: Default::default(),
            radj: Default::default(),
            max: Default::default(),
            have: Default::default(),
            pw: Default::default(),
            sum: Default::default(),
            rmult: Default::default(),
            rshift: Default::default(),
            s_ok: Default::default(),
            r_ok: Default::default(),
            better: Default::default(),
            diff: Default::default(),
            ram: Ram::new(depth),
            rq: Default::default(),
            exp: Exp2Unit::new(t),
            recip: RecipUnit::recip(t),
            max_q: Default::default(),
            have_q: Default::default(),
            diff_q: Default::default(),
            ok1: Default::default(),
            okd: Default::default(),
            ok2: Default::default(),
            ok3: Default::default(),
            ok4: Default::default(),
            ok5: Default::default(),
            sum_q: Default::default(),
            rgo1: Default::default(),
            rgo2: Default::default(),
            rmult_q: Default::default(),
            rshift_q: Default::default(),
        }
    }
}

impl Logic for HeadUnit {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(
            self, clock, max_q, have_q, diff_q, ok1, okd, ok2, ok3, ok4, ok5, sum_q, rgo1, rgo2,
            rmult_q, rshift_q
        );
        self.ram.clock.next = self.clock.val();
        self.rq.clock.next = self.clock.val();
        self.exp.clock.next = self.clock.val();
        self.recip.clock.next = self.clock.val();

        // Pass 1: store every score; track the maximum of valid positions (signed).
        self.ram.we.next = self.s_valid.val();
        self.ram.waddr.next = self.s_addr.val();
        self.ram.wdata.next = self.score.val();
        self.s_ok.next =
            (self.s_tbase.val() + bit_cast::<16, 3>(self.my_p.val())) <= self.pos.val();
        self.better.next =
            (self.score.val() ^ 0x8000_0000_0000_u64) > (self.max_q.q.val() ^ 0x8000_0000_0000_u64);
        if self.s_valid.val() & self.s_ok.val() & (!self.have_q.q.val() | self.better.val()) {
            self.max_q.d.next = self.score.val();
            self.have_q.d.next = true;
        }
        if self.max_clear.val() {
            self.have_q.d.next = false;
        }
        if self.combine.val() {
            self.max_q.d.next = self.max_all.val();
        }

        // Pass 2: score → weight, five cycles (six with `dreg`).
        self.ram.raddr.next = self.r_addr.val();
        self.r_ok.next =
            (self.r_tbase.val() + bit_cast::<16, 3>(self.my_p.val())) <= self.pos.val();
        self.ok1.d.next = self.r_go.val() & self.r_ok.val();
        self.diff.next = self.ram.rdata.val() - self.max_q.q.val();
        self.diff_q.d.next = self.diff.val();
        self.okd.d.next = self.ok1.q.val();
        self.rq.x.next = self.diff.val();
        self.ok2.d.next = self.ok1.q.val();
        if self.dreg.val() {
            self.rq.x.next = self.diff_q.q.val();
            self.ok2.d.next = self.okd.q.val();
        }
        self.rq.m.next = bit_cast::<17, 16>(self.score_mult.val());
        self.rq.s.next = self.score_shift.val();
        self.ok3.d.next = self.ok2.q.val();
        self.exp.z.next = self.rq.y.val();
        self.ok4.d.next = self.ok3.q.val();
        self.ok5.d.next = self.ok4.q.val();
        self.pw.next = 0.into();
        if self.ok5.q.val() {
            self.pw.next = self.exp.p.val();
            self.sum_q.d.next = self.sum_q.q.val() + bit_cast::<32, 16>(self.exp.p.val());
        }
        if self.sum_clear.val() {
            self.sum_q.d.next = 0.into();
        }

        // The reciprocal of the weight sum becomes the normalization.
        self.recip.p.next = self.sum_all.val();
        self.rgo1.d.next = self.recip_go.val();
        self.rgo2.d.next = self.rgo1.q.val();
        if self.rgo2.q.val() {
            self.rmult_q.d.next = self.recip.r.val();
            self.rshift_q.d.next = self.recip.shift.val() + self.radj.val();
        }

        self.max.next = self.max_q.q.val();
        self.have.next = self.have_q.q.val();
        self.sum.next = self.sum_q.q.val();
        self.rmult.next = self.rmult_q.q.val();
        self.rshift.next = self.rshift_q.q.val();

        if self.reset.val() {
            self.have_q.d.next = false;
            self.ok1.d.next = false;
            self.okd.d.next = false;
            self.ok2.d.next = false;
            self.ok3.d.next = false;
            self.ok4.d.next = false;
            self.ok5.d.next = false;
            self.rgo1.d.next = false;
            self.rgo2.d.next = false;
        }
    }
}
