//! Special-function units: exp2, rsqrt, recip, log2, sigmoid and sin/cos, each a short
//! pipeline around a table ROM, computing exactly the functions of the golden model's
//! `numerics::Tables` (see `docs/numerics.md`).
//!
//! Latencies (operands in cycle `X`, result valid in cycle `X + latency`):
//! exp2 2, rsqrt 2, recip 2, log2 2, sigmoid 3, sincos 2.

use rust_hdl::prelude::*;

use crate::prim::{Requant, Rom};

/// The contents of the special-function tables (the compiler fills them from the
/// golden model's tables, so the two cannot disagree).
#[derive(Clone, Debug, Default)]
pub struct TableData {
    /// 1536 × u16.
    pub rsqrt: Vec<u16>,
    /// 1024 × u16.
    pub recip: Vec<u16>,
    /// 1024 × u16.
    pub exp2: Vec<u16>,
    /// 2048 × u16.
    pub sigmoid: Vec<u16>,
    /// 2049 × i16.
    pub sine: Vec<i16>,
    /// 1024 × u16.
    pub log2: Vec<u16>,
}

fn words(v: &[u16]) -> Vec<u64> {
    v.iter().map(|&x| x as u64).collect()
}

/// Position of the leading one of a 48-bit value (0 for 0), as combinational logic.
#[derive(LogicBlock, Default)]
pub struct LeadingOne48 {
    /// Value.
    pub x: Signal<In, Bits<48>>,
    /// `floor(log2 x)`.
    pub pos: Signal<Out, Bits<6>>,
}

impl Logic for LeadingOne48 {
    #[hdl_gen]
    fn update(&mut self) {
        self.pos.next = 0.into();
        for i in 0..48 {
            if self.x.val().get_bit(i) {
                self.pos.next = i.to_bits();
            }
        }
    }
}

/// `p = exp2(z)` for `z ≤ 0` in Q10 (int16), `p` in Q15 (`0..=32768`).
#[derive(LogicBlock)]
pub struct Exp2Unit {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// `z`, signed.
    pub z: Signal<In, Bits<16>>,
    /// `p`, two cycles later.
    pub p: Signal<Out, Bits<16>>,
    u: Signal<Local, Bits<16>>,
    rom: Rom<10, 16>,
    n_q: DFF<Bits<6>>,
    p_q: DFF<Bits<16>>,
    t17: Signal<Local, Bits<17>>,
}

impl Exp2Unit {
    /// The unit with its table.
    pub fn new(t: &TableData) -> Self {
        Exp2Unit {
            clock: Default::default(),
            z: Default::default(),
            p: Default::default(),
            u: Default::default(),
            rom: Rom::new(words(&t.exp2), "exp2.hex"),
            n_q: Default::default(),
            p_q: Default::default(),
            t17: Default::default(),
        }
    }
}

impl Logic for Exp2Unit {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, n_q, p_q);
        self.rom.clock.next = self.clock.val();
        // u = −z for negative z, else 0.
        self.u.next = 0.into();
        if self.z.val().get_bit(15) {
            self.u.next = bits::<16>(0) - self.z.val();
        }
        self.rom.address.next = self.u.val().get_bits::<10>(0);
        self.n_q.d.next = self.u.val().get_bits::<6>(10);
        // Stage 2: round_shift(table, n), or 0 beyond 15 halvings.
        self.t17.next = bit_cast::<17, 16>(self.rom.data.val());
        if self.n_q.q.val() > 15 {
            self.p_q.d.next = 0.into();
        } else if self.n_q.q.val() == 0 {
            self.p_q.d.next = self.rom.data.val();
        } else {
            self.p_q.d.next = bit_cast::<16, 17>(
                (self.t17.val() + (bits::<17>(1) << (self.n_q.q.val() - 1))) >> self.n_q.q.val(),
            );
        }
        self.p.next = self.p_q.q.val();
    }
}

/// `1/sqrt(s) ≈ r · 2^-shift`.
#[derive(LogicBlock)]
pub struct RsqrtUnit {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// `s` (a sum of squares plus epsilon; 0 is treated as 1).
    pub s: Signal<In, Bits<48>>,
    /// Mantissa, two cycles later.
    pub r: Signal<Out, Bits<16>>,
    /// Shift, two cycles later.
    pub shift: Signal<Out, Bits<6>>,
    lo: LeadingOne48,
    e: Signal<Local, Bits<6>>,
    scaled: Signal<Local, Bits<48>>,
    rom: Rom<11, 16>,
    e_q: DFF<Bits<6>>,
    r_q: DFF<Bits<16>>,
    sh_q: DFF<Bits<6>>,
}

impl RsqrtUnit {
    /// The unit with its table.
    pub fn new(t: &TableData) -> Self {
        RsqrtUnit {
            clock: Default::default(),
            s: Default::default(),
            r: Default::default(),
            shift: Default::default(),
            lo: Default::default(),
            e: Default::default(),
            scaled: Default::default(),
            rom: Rom::new(words(&t.rsqrt), "rsqrt.hex"),
            e_q: Default::default(),
            r_q: Default::default(),
            sh_q: Default::default(),
        }
    }
}

impl Logic for RsqrtUnit {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, e_q, r_q, sh_q);
        self.rom.clock.next = self.clock.val();
        self.lo.x.next = self.s.val();
        // e = leading one rounded down to even; scaled = s · 2^(9 − e) ∈ [512, 2048).
        self.e.next = self.lo.pos.val() & 0x3E;
        if self.e.val() > 9 {
            self.scaled.next = self.s.val() >> (self.e.val() - 9);
        } else {
            self.scaled.next = self.s.val() << (bits::<6>(9) - self.e.val());
        }
        if !self.s.val().any() {
            self.scaled.next = bits::<48>(512);
        }
        self.rom.address.next = self.scaled.val().get_bits::<11>(0) - 512;
        self.e_q.d.next = self.e.val();
        self.r_q.d.next = self.rom.data.val();
        self.sh_q.d.next = bits::<6>(16) + (self.e_q.q.val() >> 1);
        self.r.next = self.r_q.q.val();
        self.shift.next = self.sh_q.q.val();
    }
}

/// `1/p ≈ r · 2^-shift` (and, with `log2` tables, `log2 p`), for 32-bit `p`.
#[derive(LogicBlock)]
pub struct RecipUnit {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// `p` (0 is treated as 1).
    pub p: Signal<In, Bits<32>>,
    /// Mantissa, two cycles later.
    pub r: Signal<Out, Bits<16>>,
    /// Shift `16 + b`, two cycles later.
    pub shift: Signal<Out, Bits<6>>,
    /// `log2 p` in Q10, two cycles later (when built with the log2 table).
    pub log2: Signal<Out, Bits<16>>,
    lo: LeadingOne48,
    b: Signal<Local, Bits<6>>,
    scaled: Signal<Local, Bits<48>>,
    rom: Rom<10, 16>,
    b_q: DFF<Bits<6>>,
    r_q: DFF<Bits<16>>,
    sh_q: DFF<Bits<6>>,
    lg_q: DFF<Bits<16>>,
}

impl RecipUnit {
    /// A reciprocal unit.
    pub fn recip(t: &TableData) -> Self {
        Self::with_table(words(&t.recip), "recip.hex")
    }

    /// A log2 unit (same datapath, the log2 table).
    pub fn log2(t: &TableData) -> Self {
        Self::with_table(words(&t.log2), "log2.hex")
    }

    fn with_table(table: Vec<u64>, file: &str) -> Self {
        RecipUnit {
            clock: Default::default(),
            p: Default::default(),
            r: Default::default(),
            shift: Default::default(),
            log2: Default::default(),
            lo: Default::default(),
            b: Default::default(),
            scaled: Default::default(),
            rom: Rom::new(table, file),
            b_q: Default::default(),
            r_q: Default::default(),
            sh_q: Default::default(),
            lg_q: Default::default(),
        }
    }
}

impl Logic for RecipUnit {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, b_q, r_q, sh_q, lg_q);
        self.rom.clock.next = self.clock.val();
        self.lo.x.next = bit_cast::<48, 32>(self.p.val());
        self.b.next = self.lo.pos.val();
        if self.b.val() > 10 {
            self.scaled.next = bit_cast::<48, 32>(self.p.val()) >> (self.b.val() - 10);
        } else {
            self.scaled.next = bit_cast::<48, 32>(self.p.val()) << (bits::<6>(10) - self.b.val());
        }
        if !self.p.val().any() {
            self.scaled.next = bits::<48>(1024);
        }
        self.rom.address.next = self.scaled.val().get_bits::<10>(0);
        self.b_q.d.next = self.b.val();
        self.r_q.d.next = self.rom.data.val();
        self.sh_q.d.next = bits::<6>(16) + self.b_q.q.val();
        self.lg_q.d.next = (bit_cast::<16, 6>(self.b_q.q.val()) << 10) + self.rom.data.val();
        self.r.next = self.r_q.q.val();
        self.shift.next = self.sh_q.q.val();
        self.log2.next = self.lg_q.q.val();
    }
}

/// `σ = sigmoid(requant(h, m, s))` (the pre-shift puts `h` into Q7), with `h` delayed
/// alongside for the lanes.
#[derive(LogicBlock)]
pub struct SigmoidUnit {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// `h1`, signed.
    pub h: Signal<In, Bits<16>>,
    /// Pre-shift multiplier.
    pub m: Signal<In, Bits<17>>,
    /// Pre-shift.
    pub s: Signal<In, Bits<6>>,
    /// `σ`, three cycles later (Q15).
    pub sigma: Signal<Out, Bits<16>>,
    /// `h`, three cycles later.
    pub h_out: Signal<Out, Bits<16>>,
    rq: Requant<16>,
    index: Signal<Local, Bits<16>>,
    rom: Rom<11, 16>,
    h1: DFF<Bits<16>>,
    h2: DFF<Bits<16>>,
    h3: DFF<Bits<16>>,
}

impl SigmoidUnit {
    /// The unit with its table.
    pub fn new(t: &TableData) -> Self {
        SigmoidUnit {
            clock: Default::default(),
            h: Default::default(),
            m: Default::default(),
            s: Default::default(),
            sigma: Default::default(),
            h_out: Default::default(),
            rq: Default::default(),
            index: Default::default(),
            rom: Rom::new(words(&t.sigmoid), "sigmoid.hex"),
            h1: Default::default(),
            h2: Default::default(),
            h3: Default::default(),
        }
    }
}

impl Logic for SigmoidUnit {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, h1, h2, h3);
        self.rq.clock.next = self.clock.val();
        self.rom.clock.next = self.clock.val();
        self.rq.x.next = self.h.val();
        self.rq.m.next = self.m.val();
        self.rq.s.next = self.s.val();
        // index = clamp(t + 1024, 0, 2047), t signed.
        self.index.next = self.rq.y.val() + 1024;
        if (self.rq.y.val() ^ 0x8000) < (bits::<16>(0x8000) - 1024) {
            self.index.next = 0.into();
        }
        if (self.rq.y.val() ^ 0x8000) > (bits::<16>(0x8000) + 1023) {
            self.index.next = 2047.into();
        }
        self.rom.address.next = self.index.val().get_bits::<11>(0);
        self.h1.d.next = self.h.val();
        self.h2.d.next = self.h1.q.val();
        self.h3.d.next = self.h2.q.val();
        self.sigma.next = self.rom.data.val();
        self.h_out.next = self.h3.q.val();
    }
}

/// Sine and cosine (Q14) of a u32 phase.
#[derive(LogicBlock)]
pub struct SinCosUnit {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// Phase (a fraction of a turn).
    pub phase: Signal<In, Bits<32>>,
    /// Sine, two cycles later.
    pub sin: Signal<Out, Bits<16>>,
    /// Cosine, two cycles later.
    pub cos: Signal<Out, Bits<16>>,
    k: Signal<Local, Bits<32>>,
    up: Rom<12, 16>,
    down: Rom<12, 16>,
    quad_q: DFF<Bits<2>>,
    sin_q: DFF<Bits<16>>,
    cos_q: DFF<Bits<16>>,
}

impl SinCosUnit {
    /// The unit with its quarter-wave table (read forward and backward).
    pub fn new(t: &TableData) -> Self {
        let table: Vec<u64> = t.sine.iter().map(|&v| v as u16 as u64).collect();
        SinCosUnit {
            clock: Default::default(),
            phase: Default::default(),
            sin: Default::default(),
            cos: Default::default(),
            k: Default::default(),
            up: Rom::new(table.clone(), "sine.hex"),
            down: Rom::new(table, "sine.hex"),
            quad_q: Default::default(),
            sin_q: Default::default(),
            cos_q: Default::default(),
        }
    }
}

impl Logic for SinCosUnit {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, quad_q, sin_q, cos_q);
        self.up.clock.next = self.clock.val();
        self.down.clock.next = self.clock.val();
        // k: the nearest of 8192 points; quadrant = k[12:11], j = k[10:0].
        self.k.next = (self.phase.val() + 0x40000) >> 19;
        self.up.address.next = bit_cast::<12, 11>(self.k.val().get_bits::<11>(0));
        self.down.address.next =
            bits::<12>(2048) - bit_cast::<12, 11>(self.k.val().get_bits::<11>(0));
        self.quad_q.d.next = self.k.val().get_bits::<2>(11);
        match self.quad_q.q.val().index() {
            0 => {
                self.sin_q.d.next = self.up.data.val();
                self.cos_q.d.next = self.down.data.val();
            }
            1 => {
                self.sin_q.d.next = self.down.data.val();
                self.cos_q.d.next = bits::<16>(0) - self.up.data.val();
            }
            2 => {
                self.sin_q.d.next = bits::<16>(0) - self.up.data.val();
                self.cos_q.d.next = bits::<16>(0) - self.down.data.val();
            }
            _ => {
                self.sin_q.d.next = bits::<16>(0) - self.down.data.val();
                self.cos_q.d.next = self.up.data.val();
            }
        }
        self.sin.next = self.sin_q.q.val();
        self.cos.next = self.cos_q.q.val();
    }
}
