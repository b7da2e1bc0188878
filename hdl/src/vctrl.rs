//! The vector controller: turns one vector operation (a `vop` of the sequencer) into
//! the cycle-by-cycle micro-operations of the lanes, the addresses of the memories,
//! and the control of the head units and special-function units.
//!
//! It is generic: every model-dependent quantity (lane count, head groups, ROM depths,
//! KV row size) arrives on a `cfg_*` input tied to a constant by the generated top
//! level, and every operand of an operation comes from its parameter row or from the
//! sequencer's registers (`docs/isa.md` lists them per kind). Issue timing follows
//! the lane pipeline: memory addresses and the micro-operation in cycle `c`, operand
//! data (`E`) in `c+1`, the AR write of a result in `c+4`.

use rust_hdl::prelude::*;

use crate::prim::{Mul, Requant};
use crate::sfu::{Exp2Unit, RecipUnit, RsqrtUnit, SinCosUnit, TableData};

/// Controller states, grouped by operation.
#[derive(Copy, Clone, Debug, PartialEq, LogicState)]
pub enum VState {
    /// State `Idle`.
    Idle,
    /// State `Load`.
    Load,
    /// State `Dispatch`.
    Dispatch,
    /// State `BistW`.
    BistW,
    /// State `BistQ`.
    BistQ,
    /// State `BistG`.
    BistG,
    /// State `BistEnd`.
    BistEnd,
    /// State `BistRes`.
    BistRes,
    /// State `EmbQ`.
    EmbQ,
    /// State `EmbL`.
    EmbL,
    /// State `Mv`.
    Mv,
    /// State `RnSq`.
    RnSq,
    /// State `RnRed`.
    RnRed,
    /// State `RnWait`.
    RnWait,
    /// State `RnRsq`.
    RnRsq,
    /// State `RnSc`.
    RnSc,
    /// State `Sc`.
    Sc,
    /// State `RopeA`.
    RopeA,
    /// State `RopeB`.
    RopeB,
    /// State `KvsRd`.
    KvsRd,
    /// State `KvsWt`.
    KvsWt,
    /// State `KvsWr`.
    KvsWr,
    /// State `AtQ`.
    AtQ,
    /// State `AtP1`.
    AtP1,
    /// State `AtMx`.
    AtMx,
    /// State `AtP2`.
    AtP2,
    /// State `AtFin`.
    AtFin,
    /// State `AtRc`.
    AtRc,
    /// State `AtOut`.
    AtOut,
    /// State `AddS`.
    AddS,
    /// State `Swi`.
    Swi,
    /// State `SaArg`.
    SaArg,
    /// State `SaAw`.
    SaAw,
    /// State `SaEx`.
    SaEx,
    /// State `SaNp`.
    SaNp,
    /// State `SaNr`.
    SaNr,
    /// State `SaNw`.
    SaNw,
    /// State `SaDraw`.
    SaDraw,
    /// State `SaDp`.
    SaDp,
    /// State `SaDw`.
    SaDw,
    /// State `SaSc`.
    SaSc,
    /// State `LpLog`.
    LpLog,
    /// State `DoRd`.
    DoRd,
    /// State `DoLt`.
    DoLt,
    /// State `DoReq`.
    DoReq,
    /// State `DiReq`.
    DiReq,
    /// State `DiWr`.
    DiWr,
    /// State `KsRd`.
    KsRd,
    /// State `KsLt`.
    KsLt,
    /// State `KsReq`.
    KsReq,
    /// State `KsNext`.
    KsNext,
    /// State `KlReq`.
    KlReq,
    /// State `KlBw`.
    KlBw,
    /// State `KlWr`.
    KlWr,
    /// State `Drain`.
    Drain,
    /// State `Fin`.
    Fin,
}

/// The vector controller.
#[derive(LogicBlock)]
pub struct VectorControl {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// Synchronous reset.
    pub reset: Signal<In, Bit>,
    /// Start the operation described by `kind`, `prow` and the registers.
    pub start: Signal<In, Bit>,
    /// Vector operation kind (`VKind`).
    pub kind: Signal<In, Bits<8>>,
    /// Parameter table row.
    pub prow_in: Signal<In, Bits<16>>,
    /// Register operand a.
    pub ra: Signal<In, Bits<64>>,
    /// Register operand b.
    pub rb: Signal<In, Bits<64>>,
    /// Register operand c.
    pub rc: Signal<In, Bits<64>>,
    /// Parameter row (one cycle after `prow`).
    pub params: Signal<In, Bits<256>>,
    /// log2 of the lane count.
    pub cfg_lg: Signal<In, Bits<4>>,
    /// log2 of the attention positions per cycle.
    pub cfg_plg: Signal<In, Bits<2>>,
    /// Head groups (passes of attention per layer).
    pub cfg_ngroups: Signal<In, Bits<8>>,
    /// log2 of the number of sigmoid units (SwiGLU elements per cycle).
    pub cfg_slg: Signal<In, Bits<3>>,
    /// 64-bit beats per KV row.
    pub cfg_kvbeats: Signal<In, Bits<10>>,
    /// Lanes of one attention position group (`min(L, dim)`).
    pub cfg_deff: Signal<In, Bits<9>>,
    /// Weight ROM words.
    pub cfg_wdepth: Signal<In, Bits<24>>,
    /// Requantization ROM words.
    pub cfg_qdepth: Signal<In, Bits<16>>,
    /// Gain ROM words.
    pub cfg_gdepth: Signal<In, Bits<16>>,
    /// E: read port 0 of lane `arsel_lane`.
    pub arsel: Signal<In, Bits<16>>,
    /// E: weight byte of lane `arsel_lane`.
    pub wsel: Signal<In, Bits<8>>,
    /// E: requantization multiplier of lane `arsel_lane`.
    pub qsel_m: Signal<In, Bits<16>>,
    /// E: requantization shift of lane `arsel_lane`.
    pub qsel_s: Signal<In, Bits<6>>,
    /// E: weight ROM word folded to 64 bits.
    pub fold_w: Signal<In, Bits<64>>,
    /// E: requantization ROM word folded to 64 bits.
    pub fold_q: Signal<In, Bits<64>>,
    /// E: gain ROM word folded to 64 bits.
    pub fold_g: Signal<In, Bits<64>>,
    /// Sum over all lanes.
    pub tree_top: Signal<In, Bits<48>>,
    /// `tree_top` is the sum of a micro-operation with `u_sum`.
    pub tree_valid: Signal<In, Bit>,
    /// That micro-operation's `u_saddr`.
    pub tree_tag: Signal<In, Bits<14>>,
    /// The argmax over lanes holds a value.
    pub am_valid: Signal<In, Bit>,
    /// The largest value.
    pub am_val: Signal<In, Bits<16>>,
    /// Its element index.
    pub am_idx: Signal<In, Bits<20>>,
    /// E: RoPE phase step.
    pub step_data: Signal<In, Bits<32>>,
    /// E: four consecutive lanes' read port 0 (`grp4`).
    pub dma4: Signal<In, Bits<64>>,
    /// E: beat `kv_beat` of the KV row read.
    pub kv_beat_data: Signal<In, Bits<64>>,
    /// DMA request done.
    pub dma_ack: Signal<In, Bit>,
    /// DMA request failed.
    pub dma_err: Signal<In, Bit>,
    /// DMA read data (with `dma_ack`).
    pub dma_rdata: Signal<In, Bits<64>>,
    /// An operation is running.
    pub busy: Signal<Out, Bit>,
    /// The operation finished (one cycle).
    pub done: Signal<Out, Bit>,
    /// Result of the last operation.
    pub result: Signal<Out, Bits<64>>,
    /// Parameter ROM address.
    pub prow: Signal<Out, Bits<16>>,
    /// AR read address, port 0.
    pub ar_ra0: Signal<Out, Bits<12>>,
    /// AR read address, port 1.
    pub ar_ra1: Signal<Out, Bits<12>>,
    /// AR write address (delayed to W by the wiring).
    pub ar_wa: Signal<Out, Bits<12>>,
    /// Weight ROM address.
    pub wrom_addr: Signal<Out, Bits<24>>,
    /// Requantization ROM address.
    pub qrom_addr: Signal<Out, Bits<16>>,
    /// Gain ROM address.
    pub grom_addr: Signal<Out, Bits<16>>,
    /// RoPE step ROM address.
    pub step_addr: Signal<Out, Bits<8>>,
    /// Micro-operation: operand A.
    pub u_a: Signal<Out, Bits<3>>,
    /// Micro-operation: operand B.
    pub u_b: Signal<Out, Bits<4>>,
    /// Micro-operation: add read port 1.
    pub u_cadd: Signal<Out, Bit>,
    /// Micro-operation: accumulator.
    pub u_acc: Signal<Out, Bits<2>>,
    /// Micro-operation: requantize and write.
    pub u_rq: Signal<Out, Bit>,
    /// Micro-operation: requantize the product.
    pub u_rqin: Signal<Out, Bit>,
    /// Micro-operation: multiplier source.
    pub u_msel: Signal<Out, Bits<3>>,
    /// Micro-operation: raw write.
    pub u_raw: Signal<Out, Bits<2>>,
    /// Micro-operation: argmax update.
    pub u_am: Signal<Out, Bit>,
    /// Micro-operation: argmax restart.
    pub u_amfirst: Signal<Out, Bit>,
    /// Micro-operation: load query registers.
    pub u_qload: Signal<Out, Bit>,
    /// Micro-operation: slot index.
    pub u_slot: Signal<Out, Bits<12>>,
    /// Micro-operation: products are attention scores for the head units.
    pub u_score: Signal<Out, Bit>,
    /// Micro-operation: the tree's full sum goes back to the controller.
    pub u_sum: Signal<Out, Bit>,
    /// Micro-operation: tree input is the accumulator (1) or the product (0).
    pub u_tsrc: Signal<Out, Bit>,
    /// Micro-operation: score RAM address / tree tag.
    pub u_saddr: Signal<Out, Bits<14>>,
    /// Micro-operation: position group base of the scores.
    pub u_tbase: Signal<Out, Bits<16>>,
    /// Active lanes: 0 the first `act_n`, 1 lane `act_idx`, 2 lanes `4·act_idx..+4`.
    pub act_mode: Signal<Out, Bits<2>>,
    /// Active lane count.
    pub act_n: Signal<Out, Bits<9>>,
    /// Active lane or lane group.
    pub act_idx: Signal<Out, Bits<8>>,
    /// Lane whose read port 0, weight byte and requantization word are selected.
    pub arsel_lane: Signal<Out, Bits<8>>,
    /// Lane group of `dma4`.
    pub grp4: Signal<Out, Bits<6>>,
    /// E: signed broadcast to the lanes.
    pub bc: Signal<Out, Bits<16>>,
    /// E: unsigned broadcast to the lanes.
    pub bc2: Signal<Out, Bits<16>>,
    /// Broadcast multiplier.
    pub bmult: Signal<Out, Bits<17>>,
    /// Broadcast shift.
    pub bshift: Signal<Out, Bits<6>>,
    /// Sampler threshold.
    pub tau: Signal<Out, Bits<16>>,
    /// DMA word for the lanes and the KV row buffer.
    pub dmaw: Signal<Out, Bits<64>>,
    /// Attention: last valid position.
    pub h_pos: Signal<Out, Bits<16>>,
    /// Attention: forget maxima.
    pub h_max_clear: Signal<Out, Bit>,
    /// Attention: combine maxima across position groups.
    pub h_combine: Signal<Out, Bit>,
    /// Attention: read a score.
    pub h_r_go: Signal<Out, Bit>,
    /// Attention: its address.
    pub h_r_addr: Signal<Out, Bits<14>>,
    /// Attention: its position group base.
    pub h_r_tbase: Signal<Out, Bits<16>>,
    /// Attention: clear weight sums.
    pub h_sum_clear: Signal<Out, Bit>,
    /// Attention: start reciprocals.
    pub h_recip_go: Signal<Out, Bit>,
    /// Attention: score multiplier.
    pub score_mult: Signal<Out, Bits<16>>,
    /// Attention: score shift.
    pub score_shift: Signal<Out, Bits<6>>,
    /// Attention: normalization shift adjustment.
    pub radj: Signal<Out, Bits<6>>,
    /// Attention: current head group.
    pub g: Signal<Out, Bits<8>>,
    /// KV read row address (all banks).
    pub kv_raddr: Signal<Out, Bits<20>>,
    /// KV read: values (1) or keys (0).
    pub kv_rsel: Signal<Out, Bit>,
    /// KV bank whose row `kv_beat_data` takes.
    pub kv_rbank: Signal<Out, Bits<2>>,
    /// Beat of the KV row for `kv_beat_data`.
    pub kv_beat: Signal<Out, Bits<10>>,
    /// KV write row address.
    pub kv_waddr: Signal<Out, Bits<20>>,
    /// Lane offset of the row in the row buffer (keys and values of the fused
    /// projection share slots).
    pub kv_woff: Signal<Out, Bits<8>>,
    /// SwiGLU: lane group whose read port 0 feeds the sigmoid units.
    pub sgrp: Signal<Out, Bits<8>>,
    /// E: the lanes take their broadcast values from their sigmoid unit.
    pub bcl: Signal<Out, Bit>,
    /// Sigmoid pre-shift multiplier.
    pub sig_m: Signal<Out, Bits<17>>,
    /// Sigmoid pre-shift.
    pub sig_s: Signal<Out, Bits<6>>,
    /// KV write bank.
    pub kv_wbank: Signal<Out, Bits<2>>,
    /// Write the row buffer into the keys.
    pub kv_we_k: Signal<Out, Bit>,
    /// Write the row buffer into the values.
    pub kv_we_v: Signal<Out, Bit>,
    /// Row buffer: take AR read port 0 of all lanes as segment `rb_seg`.
    pub rb_seg_we: Signal<Out, Bit>,
    /// Row buffer segment.
    pub rb_seg: Signal<Out, Bits<4>>,
    /// Row buffer: take `dmaw` as beat `rb_beat`.
    pub rb_beat_we: Signal<Out, Bit>,
    /// Row buffer beat.
    pub rb_beat: Signal<Out, Bits<10>>,
    /// RoPE: write sine and cosine of pair `sc_idx`.
    pub sc_we: Signal<Out, Bit>,
    /// RoPE pair.
    pub sc_idx: Signal<Out, Bits<6>>,
    /// RoPE sine.
    pub sc_sin: Signal<Out, Bits<16>>,
    /// RoPE cosine.
    pub sc_cos: Signal<Out, Bits<16>>,
    /// DMA request (held until `dma_ack`).
    pub dma_req: Signal<Out, Bit>,
    /// Phase of the current operation: 0 none, 1 matvec, 2 attention, 3 softmax,
    /// 4 normalization, 5 element-wise, 6 sampling, 7 DMA.
    pub phase: Signal<Out, Bits<4>>,
    /// DMA write.
    pub dma_we: Signal<Out, Bit>,
    /// DMA host address.
    pub dma_addr: Signal<Out, Bits<64>>,
    /// DMA write data.
    pub dma_wdata: Signal<Out, Bits<64>>,

    state: DFF<VState>,
    kind_q: DFF<Bits<8>>,
    ra_q: DFF<Bits<64>>,
    rb_q: DFF<Bits<64>>,
    rc_q: DFF<Bits<64>>,
    p: DFF<Bits<256>>,
    ci: DFF<Bits<16>>,
    cj: DFF<Bits<16>>,
    ck: DFF<Bits<16>>,
    rem: DFF<Bits<16>>,
    addr: DFF<Bits<24>>,
    cd: DFF<Bits<4>>,
    sig: DFF<Bits<64>>,
    bist_v: DFF<Bit>,
    bist_src: DFF<Bits<2>>,
    bmult_q: DFF<Bits<17>>,
    bshift_q: DFF<Bits<6>>,
    result_q: DFF<Bits<64>>,
    bc_src_e: DFF<Bits<2>>,
    bc2_src_e: DFF<Bits<2>>,
    sv1: DFF<Bit>,
    sv2: DFF<Bit>,
    sv3: DFF<Bit>,
    si1: DFF<Bits<6>>,
    si2: DFF<Bits<6>>,
    si3: DFF<Bits<6>>,
    mx: DFF<Bits<16>>,
    tot: DFF<Bits<32>>,
    tau_q: DFF<Bits<16>>,
    mass: DFF<Bits<32>>,
    target: DFF<Bits<32>>,
    rdraw: DFF<Bits<32>>,
    cum: DFF<Bits<32>>,
    found: DFF<Bit>,
    fslot: DFF<Bits<12>>,
    arrivals: DFF<Bits<16>>,
    rng: DFF<Bits<64>>,
    zt: DFF<Bits<16>>,
    is_lp: DFF<Bit>,
    itemp: DFF<Bits<16>>,
    xv1: DFF<Bit>,
    xv2: DFF<Bit>,
    xv3: DFF<Bit>,
    xv4: DFF<Bit>,
    xv5: DFF<Bit>,
    xv6: DFF<Bit>,
    xe1: DFF<Bits<16>>,
    xe2: DFF<Bits<16>>,
    xe3: DFF<Bits<16>>,
    xe4: DFF<Bits<16>>,
    x_q: DFF<Bits<48>>,
    wd: DFF<Bits<64>>,
    dmaw_q: DFF<Bits<64>>,
    lbase: DFF<Bits<20>>,
    npg: DFF<Bits<16>>,
    scan_v: DFF<Bit>,
    scan_i: DFF<Bits<16>>,
    hoff: DFF<Bits<32>>,
    p0: Signal<Local, Bits<16>>,
    p1: Signal<Local, Bits<16>>,
    p2: Signal<Local, Bits<16>>,
    p3: Signal<Local, Bits<16>>,
    p4: Signal<Local, Bits<16>>,
    p5: Signal<Local, Bits<16>>,
    p6: Signal<Local, Bits<16>>,
    p7: Signal<Local, Bits<16>>,
    lanes: Signal<Local, Bits<16>>,
    lmask: Signal<Local, Bits<16>>,
    pmask: Signal<Local, Bits<16>>,
    act_cnt: Signal<Local, Bits<16>>,
    slots: Signal<Local, Bits<16>>,
    e_lead: Signal<Local, Bits<16>>,
    e_follow: Signal<Local, Bits<16>>,
    smask: Signal<Local, Bits<16>>,
    pos16: Signal<Local, Bits<16>>,
    dsx: Signal<Local, Bits<17>>,
    rng_next: Signal<Local, Bits<64>>,
    rng_t1: Signal<Local, Bits<64>>,
    rng_t2: Signal<Local, Bits<64>>,
    masked: Signal<Local, Bits<32>>,
    cum_next: Signal<Local, Bits<32>>,
    rsqrt: RsqrtUnit,
    sincos: SinCosUnit,
    sexp: Exp2Unit,
    slog: RecipUnit,
    srq: Requant,
    mul_temp: Mul<17, 16, 48>,
    mul_step: Mul<32, 16, 32>,
    mul_topp: Mul<32, 16, 48>,
    mul_coin: Mul<24, 32, 56>,
}

impl VectorControl {
    /// A controller whose scalar special-function units use tables `t`.
    pub fn new(t: &TableData) -> Self {
        VectorControl {
            clock: Default::default(),
            reset: Default::default(),
            start: Default::default(),
            kind: Default::default(),
            prow_in: Default::default(),
            ra: Default::default(),
            rb: Default::default(),
            rc: Default::default(),
            params: Default::default(),
            cfg_lg: Default::default(),
            cfg_plg: Default::default(),
            cfg_ngroups: Default::default(),
            cfg_slg: Default::default(),
            cfg_kvbeats: Default::default(),
            cfg_deff: Default::default(),
            cfg_wdepth: Default::default(),
            cfg_qdepth: Default::default(),
            cfg_gdepth: Default::default(),
            arsel: Default::default(),
            wsel: Default::default(),
            qsel_m: Default::default(),
            qsel_s: Default::default(),
            fold_w: Default::default(),
            fold_q: Default::default(),
            fold_g: Default::default(),
            tree_top: Default::default(),
            tree_valid: Default::default(),
            tree_tag: Default::default(),
            am_valid: Default::default(),
            am_val: Default::default(),
            am_idx: Default::default(),
            step_data: Default::default(),
            dma4: Default::default(),
            kv_beat_data: Default::default(),
            dma_ack: Default::default(),
            dma_err: Default::default(),
            dma_rdata: Default::default(),
            busy: Default::default(),
            done: Default::default(),
            result: Default::default(),
            prow: Default::default(),
            ar_ra0: Default::default(),
            ar_ra1: Default::default(),
            ar_wa: Default::default(),
            wrom_addr: Default::default(),
            qrom_addr: Default::default(),
            grom_addr: Default::default(),
            step_addr: Default::default(),
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
            u_slot: Default::default(),
            u_score: Default::default(),
            u_sum: Default::default(),
            u_tsrc: Default::default(),
            u_saddr: Default::default(),
            u_tbase: Default::default(),
            act_mode: Default::default(),
            act_n: Default::default(),
            act_idx: Default::default(),
            arsel_lane: Default::default(),
            grp4: Default::default(),
            bc: Default::default(),
            bc2: Default::default(),
            bmult: Default::default(),
            bshift: Default::default(),
            tau: Default::default(),
            dmaw: Default::default(),
            h_pos: Default::default(),
            h_max_clear: Default::default(),
            h_combine: Default::default(),
            h_r_go: Default::default(),
            h_r_addr: Default::default(),
            h_r_tbase: Default::default(),
            h_sum_clear: Default::default(),
            h_recip_go: Default::default(),
            score_mult: Default::default(),
            score_shift: Default::default(),
            radj: Default::default(),
            g: Default::default(),
            kv_raddr: Default::default(),
            kv_rsel: Default::default(),
            kv_rbank: Default::default(),
            kv_beat: Default::default(),
            kv_waddr: Default::default(),
            kv_woff: Default::default(),
            sgrp: Default::default(),
            bcl: Default::default(),
            sig_m: Default::default(),
            sig_s: Default::default(),
            kv_wbank: Default::default(),
            kv_we_k: Default::default(),
            kv_we_v: Default::default(),
            rb_seg_we: Default::default(),
            rb_seg: Default::default(),
            rb_beat_we: Default::default(),
            rb_beat: Default::default(),
            sc_we: Default::default(),
            sc_idx: Default::default(),
            sc_sin: Default::default(),
            sc_cos: Default::default(),
            dma_req: Default::default(),
            phase: Default::default(),
            dma_we: Default::default(),
            dma_addr: Default::default(),
            dma_wdata: Default::default(),
            state: Default::default(),
            kind_q: Default::default(),
            ra_q: Default::default(),
            rb_q: Default::default(),
            rc_q: Default::default(),
            p: Default::default(),
            ci: Default::default(),
            cj: Default::default(),
            ck: Default::default(),
            rem: Default::default(),
            addr: Default::default(),
            cd: Default::default(),
            sig: Default::default(),
            bist_v: Default::default(),
            bist_src: Default::default(),
            bmult_q: Default::default(),
            bshift_q: Default::default(),
            result_q: Default::default(),
            bc_src_e: Default::default(),
            bc2_src_e: Default::default(),
            sv1: Default::default(),
            sv2: Default::default(),
            sv3: Default::default(),
            si1: Default::default(),
            si2: Default::default(),
            si3: Default::default(),
            mx: Default::default(),
            tot: Default::default(),
            tau_q: Default::default(),
            mass: Default::default(),
            target: Default::default(),
            rdraw: Default::default(),
            cum: Default::default(),
            found: Default::default(),
            fslot: Default::default(),
            arrivals: Default::default(),
            rng: Default::default(),
            zt: Default::default(),
            is_lp: Default::default(),
            itemp: Default::default(),
            xv1: Default::default(),
            xv2: Default::default(),
            xv3: Default::default(),
            xv4: Default::default(),
            xv5: Default::default(),
            xv6: Default::default(),
            xe1: Default::default(),
            xe2: Default::default(),
            xe3: Default::default(),
            xe4: Default::default(),
            x_q: Default::default(),
            wd: Default::default(),
            dmaw_q: Default::default(),
            lbase: Default::default(),
            npg: Default::default(),
            scan_v: Default::default(),
            scan_i: Default::default(),
            hoff: Default::default(),
            p0: Default::default(),
            p1: Default::default(),
            p2: Default::default(),
            p3: Default::default(),
            p4: Default::default(),
            p5: Default::default(),
            p6: Default::default(),
            p7: Default::default(),
            lanes: Default::default(),
            lmask: Default::default(),
            pmask: Default::default(),
            act_cnt: Default::default(),
            slots: Default::default(),
            e_lead: Default::default(),
            e_follow: Default::default(),
            smask: Default::default(),
            pos16: Default::default(),
            dsx: Default::default(),
            rng_next: Default::default(),
            rng_t1: Default::default(),
            rng_t2: Default::default(),
            masked: Default::default(),
            cum_next: Default::default(),
            rsqrt: RsqrtUnit::new(t),
            sincos: SinCosUnit::new(t),
            sexp: Exp2Unit::new(t),
            slog: RecipUnit::log2(t),
            srq: Requant::default(),
            mul_temp: Mul::new(true, false),
            mul_step: Mul::new(false, false),
            mul_topp: Mul::new(false, false),
            mul_coin: Mul::new(false, false),
        }
    }
}

impl Logic for VectorControl {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(
            self, clock, state, kind_q, ra_q, rb_q, rc_q, p, ci, cj, ck, rem, addr, cd, sig,
            bist_v, bist_src, bmult_q, bshift_q, result_q, bc_src_e, bc2_src_e, sv1, sv2, sv3, si1,
            si2, si3, mx, tot, tau_q, mass, target, rdraw, cum, found, fslot, arrivals, rng, zt,
            is_lp, itemp, xv1, xv2, xv3, xv4, xv5, xv6, xe1, xe2, xe3, xe4, x_q, wd, dmaw_q, lbase,
            npg, scan_v, scan_i, hoff
        );
        self.rsqrt.clock.next = self.clock.val();
        self.sincos.clock.next = self.clock.val();
        self.sexp.clock.next = self.clock.val();
        self.slog.clock.next = self.clock.val();
        self.srq.clock.next = self.clock.val();

        // Parameter fields and lane geometry.
        self.p0.next = self.p.q.val().get_bits::<16>(0);
        self.p1.next = self.p.q.val().get_bits::<16>(16);
        self.p2.next = self.p.q.val().get_bits::<16>(32);
        self.p3.next = self.p.q.val().get_bits::<16>(48);
        self.p4.next = self.p.q.val().get_bits::<16>(64);
        self.p5.next = self.p.q.val().get_bits::<16>(80);
        self.p6.next = self.p.q.val().get_bits::<16>(96);
        self.p7.next = self.p.q.val().get_bits::<16>(112);
        self.lanes.next = bits::<16>(1) << self.cfg_lg.val();
        self.lmask.next = self.lanes.val() - 1;
        self.pmask.next = (bits::<16>(1) << self.cfg_plg.val()) - 1;
        self.pos16.next = self.ra_q.q.val().get_bits::<16>(0);
        self.act_cnt.next = self.rem.q.val();
        if self.rem.q.val() > self.lanes.val() {
            self.act_cnt.next = self.lanes.val();
        }
        self.slots.next = (self.rem.q.val() + self.lmask.val()) >> self.cfg_lg.val();
        self.smask.next = (bits::<16>(1) << self.cfg_slg.val()) - 1;
        self.e_lead.next = self.ci.q.val();
        self.e_follow.next = self.ci.q.val() - 3;
        if self.state.q.val() == VState::Swi {
            self.e_lead.next = self.ci.q.val() << self.cfg_slg.val();
            self.e_follow.next = (self.ci.q.val() - 3) << self.cfg_slg.val();
        }

        // Defaults: nothing issued this cycle.
        self.busy.next = true;
        self.done.next = false;
        self.result.next = self.result_q.q.val();
        self.prow.next = self.prow_in.val();
        self.ar_ra0.next = 0.into();
        self.ar_ra1.next = 0.into();
        self.ar_wa.next = 0.into();
        self.wrom_addr.next = 0.into();
        self.qrom_addr.next = 0.into();
        self.grom_addr.next = 0.into();
        self.step_addr.next = self.ci.q.val().get_bits::<8>(0);
        self.u_a.next = 0.into();
        self.u_b.next = 0.into();
        self.u_cadd.next = false;
        self.u_acc.next = 0.into();
        self.u_rq.next = false;
        self.u_rqin.next = false;
        self.u_msel.next = 0.into();
        self.u_raw.next = 0.into();
        self.u_am.next = false;
        self.u_amfirst.next = false;
        self.u_qload.next = false;
        self.u_slot.next = self.ci.q.val().get_bits::<12>(0);
        self.u_score.next = false;
        self.u_sum.next = false;
        self.u_tsrc.next = false;
        self.u_saddr.next = self.ci.q.val().get_bits::<14>(0);
        self.u_tbase.next = self.ci.q.val() << self.cfg_plg.val();
        self.act_mode.next = 0.into();
        self.act_n.next = 0.into();
        self.act_idx.next = 0.into();
        self.arsel_lane.next = bit_cast::<8, 16>(self.ci.q.val() & self.lmask.val());
        self.grp4.next = bit_cast::<6, 16>(((self.ci.q.val() << 2) & self.lmask.val()) >> 2);
        self.bmult.next = self.bmult_q.q.val();
        self.bshift.next = self.bshift_q.q.val();
        self.tau.next = self.tau_q.q.val();
        self.dmaw.next = self.dmaw_q.q.val();
        self.h_pos.next = self.pos16.val();
        self.h_max_clear.next = false;
        self.h_combine.next = false;
        self.h_r_go.next = false;
        self.h_r_addr.next = self.ci.q.val().get_bits::<14>(0);
        self.h_r_tbase.next = self.ci.q.val() << self.cfg_plg.val();
        self.h_sum_clear.next = false;
        self.h_recip_go.next = false;
        self.score_mult.next = self.p2.val();
        self.score_shift.next = self.p3.val().get_bits::<6>(0);
        self.radj.next = self.p4.val().get_bits::<6>(0);
        self.g.next = self.cj.q.val().get_bits::<8>(0);
        self.kv_raddr.next =
            self.lbase.q.val() + (bit_cast::<20, 16>(self.ci.q.val()) >> self.cfg_plg.val());
        self.kv_rsel.next = self.ck.q.val().get_bit(0);
        self.kv_rbank.next = bit_cast::<2, 16>(self.ci.q.val() & self.pmask.val());
        self.kv_beat.next = self.rem.q.val().get_bits::<10>(0);
        self.kv_waddr.next =
            self.lbase.q.val() + (bit_cast::<20, 16>(self.ci.q.val()) >> self.cfg_plg.val());
        self.kv_wbank.next = bit_cast::<2, 16>(self.ci.q.val() & self.pmask.val());
        self.kv_we_k.next = false;
        self.kv_we_v.next = false;
        self.rb_seg_we.next = self.sv1.q.val();
        self.rb_seg.next = self.si1.q.val().get_bits::<4>(0);
        self.rb_beat_we.next = false;
        self.rb_beat.next = self.rem.q.val().get_bits::<10>(0);
        self.sc_we.next = self.sv3.q.val();
        self.sc_idx.next = self.si3.q.val();
        self.sc_sin.next = self.sincos.sin.val();
        self.sc_cos.next = self.sincos.cos.val();
        self.dma_req.next = false;
        self.dma_we.next = false;
        self.dma_addr.next = self.ra_q.q.val() + (bit_cast::<64, 32>(self.hoff.q.val()));
        self.dma_wdata.next = self.wd.q.val();

        // What the vector unit is doing, for the performance counters.
        self.phase.next = 0.into();
        match self.state.q.val() {
            VState::EmbQ => self.phase.next = 1.into(),
            VState::EmbL => self.phase.next = 1.into(),
            VState::Mv => self.phase.next = 1.into(),
            VState::KvsRd => self.phase.next = 2.into(),
            VState::KvsWt => self.phase.next = 2.into(),
            VState::KvsWr => self.phase.next = 2.into(),
            VState::AtQ => self.phase.next = 2.into(),
            VState::AtP1 => self.phase.next = 2.into(),
            VState::AtMx => self.phase.next = 2.into(),
            VState::AtP2 => self.phase.next = 3.into(),
            VState::AtFin => self.phase.next = 3.into(),
            VState::AtRc => self.phase.next = 3.into(),
            VState::AtOut => self.phase.next = 3.into(),
            VState::RnSq => self.phase.next = 4.into(),
            VState::RnRed => self.phase.next = 4.into(),
            VState::RnWait => self.phase.next = 4.into(),
            VState::RnRsq => self.phase.next = 4.into(),
            VState::RnSc => self.phase.next = 4.into(),
            VState::Sc => self.phase.next = 5.into(),
            VState::RopeA => self.phase.next = 5.into(),
            VState::RopeB => self.phase.next = 5.into(),
            VState::AddS => self.phase.next = 5.into(),
            VState::Swi => self.phase.next = 5.into(),
            VState::SaArg => self.phase.next = 6.into(),
            VState::SaAw => self.phase.next = 6.into(),
            VState::SaEx => self.phase.next = 6.into(),
            VState::SaNp => self.phase.next = 6.into(),
            VState::SaNr => self.phase.next = 6.into(),
            VState::SaNw => self.phase.next = 6.into(),
            VState::SaDraw => self.phase.next = 6.into(),
            VState::SaDp => self.phase.next = 6.into(),
            VState::SaDw => self.phase.next = 6.into(),
            VState::SaSc => self.phase.next = 6.into(),
            VState::LpLog => self.phase.next = 6.into(),
            VState::DoRd => self.phase.next = 7.into(),
            VState::DoLt => self.phase.next = 7.into(),
            VState::DoReq => self.phase.next = 7.into(),
            VState::DiReq => self.phase.next = 7.into(),
            VState::DiWr => self.phase.next = 7.into(),
            VState::KsRd => self.phase.next = 7.into(),
            VState::KsLt => self.phase.next = 7.into(),
            VState::KsReq => self.phase.next = 7.into(),
            VState::KsNext => self.phase.next = 7.into(),
            VState::KlReq => self.phase.next = 7.into(),
            VState::KlBw => self.phase.next = 7.into(),
            VState::KlWr => self.phase.next = 7.into(),
            _ => self.phase.next = 0.into(),
        }

        // Pipelines that carry a valid bit default to empty.
        self.bist_v.d.next = false;
        self.sv1.d.next = false;
        self.sv2.d.next = self.sv1.q.val();
        self.sv3.d.next = self.sv2.q.val();
        self.si2.d.next = self.si1.q.val();
        self.si3.d.next = self.si2.q.val();
        self.xv1.d.next = false;
        self.xv2.d.next = self.xv1.q.val();
        self.xv3.d.next = self.xv2.q.val();
        self.xv4.d.next = self.xv3.q.val();
        self.xv5.d.next = self.xv4.q.val();
        self.xv6.d.next = self.xv5.q.val();
        self.xe2.d.next = self.xe1.q.val();
        self.xe3.d.next = self.xe2.q.val();
        self.xe4.d.next = self.xe3.q.val();
        self.scan_v.d.next = false;
        self.bc_src_e.d.next = 0.into();
        self.bc2_src_e.d.next = 0.into();

        // Scalar special-function units.
        self.rsqrt.s.next = self.tree_top.val() + self.p.q.val().get_bits::<48>(64);
        self.sig_m.next = bit_cast::<17, 16>(self.p4.val());
        self.sig_s.next = self.p5.val().get_bits::<6>(0);
        self.kv_woff.next = 0.into();
        self.sgrp.next =
            bit_cast::<8, 16>((self.e_lead.val() & self.lmask.val()) >> self.cfg_slg.val());
        self.bcl.next = self.bc_src_e.q.val().index() == 2;
        self.mul_step.a.next = self.step_data.val();
        self.mul_step.b.next = self.pos16.val();
        self.sincos.phase.next = self.mul_step.p.val();
        // Sampler: x = (logit − max) · inv_temp, z = requant(x, temp_mult, temp_shift).
        self.dsx.next = bit_cast::<17, 16>(self.arsel.val()) - bit_cast::<17, 16>(self.mx.q.val());
        if self.arsel.val().get_bit(15) {
            self.dsx.next = (bit_cast::<17, 16>(self.arsel.val()) | 0x10000)
                - bit_cast::<17, 16>(self.mx.q.val());
        }
        if self.mx.q.val().get_bit(15) {
            self.dsx.next = self.dsx.val() - 0x10000;
        }
        self.mul_temp.a.next = self.dsx.val();
        self.mul_temp.b.next = self.itemp.q.val();
        self.x_q.d.next = self.mul_temp.p.val();
        self.srq.x.next = self.x_q.q.val();
        self.srq.m.next = bit_cast::<17, 16>(self.p3.val());
        self.srq.s.next = self.p4.val().get_bits::<6>(0);
        self.sexp.z.next = self.srq.y.val();
        self.slog.p.next = self.tot.q.val();
        self.mul_topp.a.next = self.tot.q.val();
        self.mul_topp.b.next = self.rb_q.q.val().get_bits::<16>(0);
        // xorshift64 (13, 7, 17).
        self.rng_t1.next = self.rng.q.val() ^ (self.rng.q.val() << 13);
        self.rng_t2.next = self.rng_t1.val() ^ (self.rng_t1.val() >> 7);
        self.rng_next.next = self.rng_t2.val() ^ (self.rng_t2.val() << 17);
        self.mul_coin.a.next = self.rng_next.val().get_bits::<24>(40);
        self.mul_coin.b.next = self.mass.q.val();
        // Sampler scan: the masked weight of the lane read last cycle.
        self.masked.next = 0.into();
        if (self.arsel.val() >= self.tau_q.q.val())
            & (((bit_cast::<16, 12>(self.fslot.q.val()) << self.cfg_lg.val())
                + self.scan_i.q.val())
                < self.p1.val())
        {
            self.masked.next = bit_cast::<32, 16>(self.arsel.val());
        }
        self.cum_next.next = self.cum.q.val() + self.tree_top.val().get_bits::<32>(0);

        // Broadcast buses (E timing).
        self.bc.next = self.arsel.val();
        if self.bc_src_e.q.val().index() == 1 {
            self.bc.next = bit_cast::<16, 8>(self.wsel.val());
            if self.wsel.val().get_bit(7) {
                self.bc.next = bit_cast::<16, 8>(self.wsel.val()) | 0xFF00;
            }
        }
        self.bc2.next = self.sexp.p.val();

        // ROM self-test signature: rotate left, xor the folded word.
        if self.bist_v.q.val() {
            match self.bist_src.q.val().index() {
                0 => {
                    self.sig.d.next =
                        ((self.sig.q.val() << 1) | (self.sig.q.val() >> 63)) ^ self.fold_w.val()
                }
                1 => {
                    self.sig.d.next =
                        ((self.sig.q.val() << 1) | (self.sig.q.val() >> 63)) ^ self.fold_q.val()
                }
                _ => {
                    self.sig.d.next =
                        ((self.sig.q.val() << 1) | (self.sig.q.val() >> 63)) ^ self.fold_g.val()
                }
            }
        }

        // Sampler exp stream: accumulate weights, remember the target's z.
        if self.xv6.q.val() {
            self.tot.d.next = self.tot.q.val() + bit_cast::<32, 16>(self.sexp.p.val());
        }
        if self.xv4.q.val()
            & self.is_lp.q.val()
            & (self.xe4.q.val() == self.rb_q.q.val().get_bits::<16>(0))
        {
            self.zt.d.next = self.srq.y.val();
        }

        match self.state.q.val() {
            VState::Idle => {
                self.busy.next = false;
                if self.start.val() {
                    self.kind_q.d.next = self.kind.val();
                    self.ra_q.d.next = self.ra.val();
                    self.rb_q.d.next = self.rb.val();
                    self.rc_q.d.next = self.rc.val();
                    self.state.d.next = VState::Load;
                }
            }
            VState::Load => {
                self.p.d.next = self.params.val();
                self.state.d.next = VState::Dispatch;
            }
            VState::Dispatch => {
                self.ci.d.next = 0.into();
                self.cj.d.next = 0.into();
                self.ck.d.next = 0.into();
                self.hoff.d.next = 0.into();
                self.result_q.d.next = 0.into();
                self.state.d.next = VState::Fin;
                match self.kind_q.q.val().index() {
                    1 => {
                        self.addr.d.next = 0.into();
                        self.sig.d.next = 0.into();
                        self.state.d.next = VState::BistW;
                    }
                    2 => self.state.d.next = VState::EmbQ,
                    3 => {
                        self.addr.d.next = bit_cast::<24, 16>(self.p4.val())
                            | (bit_cast::<24, 16>(self.p5.val()) << 16);
                        self.state.d.next = VState::Mv;
                    }
                    4 => {
                        self.rem.d.next = self.p2.val();
                        self.state.d.next = VState::RnSq;
                    }
                    5 => self.state.d.next = VState::Sc,
                    6 => {
                        self.rem.d.next = self.p1.val();
                        self.bshift_q.d.next = 14.into();
                        self.state.d.next = VState::RopeA;
                    }
                    7 => {
                        self.lbase.d.next = self.rb_q.q.val().get_bits::<20>(0);
                        self.state.d.next = VState::KvsRd;
                    }
                    8 => {
                        self.lbase.d.next = self.rb_q.q.val().get_bits::<20>(0);
                        self.npg.d.next = (self.pos16.val() >> self.cfg_plg.val()) + 1;
                        self.state.d.next = VState::AtQ;
                    }
                    9 => {
                        self.rem.d.next = self.p2.val();
                        self.bshift_q.d.next = 0.into();
                        self.state.d.next = VState::AddS;
                    }
                    10 => {
                        self.bshift_q.d.next = self.p6.val().get_bits::<6>(0);
                        self.state.d.next = VState::Swi;
                    }
                    11 => {
                        self.rng.d.next = self.ra_q.q.val();
                        self.state.d.next = VState::Fin;
                    }
                    12 => {
                        self.rem.d.next = self.p1.val();
                        self.is_lp.d.next = false;
                        self.itemp.d.next = self.ra_q.q.val().get_bits::<16>(0);
                        self.tau_q.d.next = 0.into();
                        self.state.d.next = VState::SaArg;
                    }
                    13 => {
                        self.rem.d.next = self.p1.val();
                        self.is_lp.d.next = true;
                        self.itemp.d.next = 256.into();
                        self.rb_q.d.next = self.ra_q.q.val();
                        self.state.d.next = VState::SaArg;
                    }
                    14 => self.state.d.next = VState::DoRd,
                    15 => self.state.d.next = VState::DiReq,
                    16 => {
                        self.lbase.d.next = self.rb_q.q.val().get_bits::<20>(0);
                        self.rem.d.next = 0.into();
                        if self.rc_q.q.val().any() {
                            self.state.d.next = VState::KsRd;
                        }
                    }
                    17 => {
                        self.lbase.d.next = self.rb_q.q.val().get_bits::<20>(0);
                        self.rem.d.next = 0.into();
                        if self.rc_q.q.val().any() {
                            self.state.d.next = VState::KlReq;
                        }
                    }
                    _ => {
                        self.result_q.d.next = 0xFFFF_FFFF_FFFF_FFFF_u64.into();
                        self.state.d.next = VState::Fin;
                    }
                }
            }
            // ROM self-test: every word of the weight, requantization and gain ROMs.
            VState::BistW => {
                self.wrom_addr.next = self.addr.q.val();
                self.bist_v.d.next = true;
                self.bist_src.d.next = 0.into();
                self.addr.d.next = self.addr.q.val() + 1;
                if self.addr.q.val() == self.cfg_wdepth.val() - 1 {
                    self.addr.d.next = 0.into();
                    self.state.d.next = VState::BistQ;
                }
            }
            VState::BistQ => {
                self.qrom_addr.next = self.addr.q.val().get_bits::<16>(0);
                self.bist_v.d.next = true;
                self.bist_src.d.next = 1.into();
                self.addr.d.next = self.addr.q.val() + 1;
                if self.addr.q.val().get_bits::<16>(0) == self.cfg_qdepth.val() - 1 {
                    self.addr.d.next = 0.into();
                    self.state.d.next = VState::BistG;
                }
            }
            VState::BistG => {
                self.grom_addr.next = self.addr.q.val().get_bits::<16>(0);
                self.bist_v.d.next = true;
                self.bist_src.d.next = 2.into();
                self.addr.d.next = self.addr.q.val() + 1;
                if self.addr.q.val().get_bits::<16>(0) == self.cfg_gdepth.val() - 1 {
                    self.state.d.next = VState::BistEnd;
                }
            }
            VState::BistEnd => {
                self.state.d.next = VState::BistRes;
            }
            VState::BistRes => {
                self.result_q.d.next = self.sig.q.val();
                self.state.d.next = VState::Fin;
            }
            // Embedding: the row of token ra (ROM address rb, requant word rc) is read
            // through lane ra % L and written element by element.
            VState::EmbQ => {
                self.qrom_addr.next = self.rc_q.q.val().get_bits::<16>(0);
                self.arsel_lane.next =
                    bit_cast::<8, 16>(self.ra_q.q.val().get_bits::<16>(0) & self.lmask.val());
                self.ci.d.next = self.ci.q.val() + 1;
                if self.ci.q.val() == 1 {
                    self.bmult_q.d.next = bit_cast::<17, 16>(self.qsel_m.val());
                    self.bshift_q.d.next = self.qsel_s.val();
                    self.ci.d.next = 0.into();
                    self.state.d.next = VState::EmbL;
                }
            }
            VState::EmbL => {
                self.wrom_addr.next =
                    self.rb_q.q.val().get_bits::<24>(0) + bit_cast::<24, 16>(self.ci.q.val());
                self.arsel_lane.next =
                    bit_cast::<8, 16>(self.ra_q.q.val().get_bits::<16>(0) & self.lmask.val());
                self.bc_src_e.d.next = 1.into();
                self.u_a.next = 5.into();
                self.u_b.next = 0.into();
                self.u_rq.next = true;
                self.u_rqin.next = true;
                self.u_msel.next = 1.into();
                self.act_mode.next = 1.into();
                self.act_idx.next = bit_cast::<8, 16>(self.ci.q.val() & self.lmask.val());
                self.ar_wa.next =
                    bit_cast::<12, 16>(self.p0.val() + (self.ci.q.val() >> self.cfg_lg.val()));
                self.ci.d.next = self.ci.q.val() + 1;
                if self.ci.q.val() == self.p1.val() - 1 {
                    self.cd.d.next = 0.into();
                    self.state.d.next = VState::Drain;
                }
            }
            // Matrix-vector product: one input element per cycle to all lanes.
            VState::Mv => {
                self.ar_ra0.next =
                    bit_cast::<12, 16>(self.p0.val() + (self.ci.q.val() >> self.cfg_lg.val()));
                self.wrom_addr.next = self.addr.q.val();
                self.qrom_addr.next = self.p6.val() + self.cj.q.val();
                self.u_a.next = 5.into();
                self.u_b.next = 1.into();
                self.u_acc.next = 2.into();
                if !self.ci.q.val().any() {
                    self.u_acc.next = 1.into();
                }
                self.u_rq.next = self.ci.q.val() == self.p2.val() - 1;
                self.act_n.next = bit_cast::<9, 16>(self.lanes.val());
                self.ar_wa.next = bit_cast::<12, 16>(self.p1.val() + self.cj.q.val());
                self.addr.d.next = self.addr.q.val() + 1;
                self.ci.d.next = self.ci.q.val() + 1;
                if self.ci.q.val() == self.p2.val() - 1 {
                    self.ci.d.next = 0.into();
                    self.cj.d.next = self.cj.q.val() + 1;
                    if self.cj.q.val() == self.p3.val() - 1 {
                        self.cd.d.next = 0.into();
                        self.state.d.next = VState::Drain;
                    }
                }
            }
            // RMSNorm: sum of squares, rsqrt, scale by gain.
            VState::RnSq => {
                self.ar_ra0.next = bit_cast::<12, 16>(self.p0.val() + self.ci.q.val());
                self.u_a.next = 1.into();
                self.u_b.next = 2.into();
                self.u_acc.next = 2.into();
                if !self.ci.q.val().any() {
                    self.u_acc.next = 1.into();
                }
                self.act_n.next = bit_cast::<9, 16>(self.act_cnt.val());
                self.ci.d.next = self.ci.q.val() + 1;
                self.rem.d.next = self.rem.q.val() - self.lanes.val();
                if self.rem.q.val() <= self.lanes.val() {
                    self.state.d.next = VState::RnRed;
                }
            }
            VState::RnRed => {
                self.u_sum.next = true;
                self.u_tsrc.next = true;
                self.state.d.next = VState::RnWait;
            }
            VState::RnWait => {
                if self.tree_valid.val() {
                    self.ck.d.next = 0.into();
                    self.state.d.next = VState::RnRsq;
                }
            }
            VState::RnRsq => {
                self.ck.d.next = self.ck.q.val() + 1;
                if self.ck.q.val() == 1 {
                    self.bmult_q.d.next = bit_cast::<17, 16>(self.rsqrt.r.val());
                    self.bshift_q.d.next = self.rsqrt.shift.val() + self.p7.val().get_bits::<6>(0);
                    self.ci.d.next = 0.into();
                    self.rem.d.next = self.p2.val();
                    self.state.d.next = VState::RnSc;
                }
            }
            VState::RnSc => {
                self.ar_ra0.next = bit_cast::<12, 16>(self.p0.val() + self.ci.q.val());
                self.grom_addr.next = self.p3.val() + self.ci.q.val();
                self.u_a.next = 1.into();
                self.u_b.next = 4.into();
                self.u_rq.next = true;
                self.u_rqin.next = true;
                self.u_msel.next = 1.into();
                self.act_n.next = bit_cast::<9, 16>(self.act_cnt.val());
                self.ar_wa.next = bit_cast::<12, 16>(self.p1.val() + self.ci.q.val());
                self.ci.d.next = self.ci.q.val() + 1;
                self.rem.d.next = self.rem.q.val() - self.lanes.val();
                if self.rem.q.val() <= self.lanes.val() {
                    self.cd.d.next = 0.into();
                    self.state.d.next = VState::Drain;
                }
            }
            // RoPE angles of position ra, one pair per cycle into the rope registers.
            VState::Sc => {
                self.sv1.d.next = self.ci.q.val() < self.p0.val();
                self.si1.d.next = self.ci.q.val().get_bits::<6>(0);
                self.ci.d.next = self.ci.q.val() + 1;
                if self.ci.q.val() == self.p0.val() + 3 {
                    self.state.d.next = VState::Fin;
                }
            }
            // RoPE: two micro-operations per slot (v·cos, then ± partner·sin).
            VState::RopeA => {
                self.ar_ra0.next = bit_cast::<12, 16>(self.p0.val() + self.ci.q.val());
                self.u_a.next = 1.into();
                self.u_b.next = 6.into();
                self.u_acc.next = 1.into();
                self.act_n.next = bit_cast::<9, 16>(self.act_cnt.val());
                self.state.d.next = VState::RopeB;
            }
            VState::RopeB => {
                self.ar_ra0.next = bit_cast::<12, 16>(self.p0.val() + self.ci.q.val());
                self.u_a.next = 2.into();
                self.u_b.next = 7.into();
                self.u_acc.next = 2.into();
                self.u_rq.next = true;
                self.u_msel.next = 3.into();
                self.act_n.next = bit_cast::<9, 16>(self.act_cnt.val());
                self.ar_wa.next = bit_cast::<12, 16>(self.p0.val() + self.ci.q.val());
                self.ci.d.next = self.ci.q.val() + 1;
                self.rem.d.next = self.rem.q.val() - self.lanes.val();
                self.state.d.next = VState::RopeA;
                if self.rem.q.val() <= self.lanes.val() {
                    self.cd.d.next = 0.into();
                    self.state.d.next = VState::Drain;
                }
            }
            // KV store: gather the K (then V) row from AR slots into the row buffer,
            // then write it at position ra.
            VState::KvsRd => {
                self.ar_ra0.next = bit_cast::<12, 16>(self.p0.val() + self.ci.q.val());
                if self.ck.q.val().any() {
                    self.ar_ra0.next = bit_cast::<12, 16>(self.p1.val() + self.ci.q.val());
                }
                self.sv1.d.next = true;
                self.si1.d.next = self.ci.q.val().get_bits::<6>(0);
                self.ci.d.next = self.ci.q.val() + 1;
                if (!self.ck.q.val().any() & (self.ci.q.val() == self.p4.val() - 1))
                    | (self.ck.q.val().any() & (self.ci.q.val() == self.p5.val() - 1))
                {
                    self.state.d.next = VState::KvsWt;
                }
            }
            VState::KvsWt => {
                self.state.d.next = VState::KvsWr;
            }
            VState::KvsWr => {
                self.kv_woff.next = bit_cast::<8, 16>(self.p2.val());
                if self.ck.q.val().any() {
                    self.kv_woff.next = bit_cast::<8, 16>(self.p3.val());
                }
                self.kv_waddr.next = self.lbase.q.val()
                    + (bit_cast::<20, 16>(self.pos16.val()) >> self.cfg_plg.val());
                self.kv_wbank.next = bit_cast::<2, 16>(self.pos16.val() & self.pmask.val());
                self.kv_we_k.next = !self.ck.q.val().any();
                self.kv_we_v.next = self.ck.q.val().any();
                self.ci.d.next = 0.into();
                self.ck.d.next = 1.into();
                self.state.d.next = VState::KvsRd;
                if self.ck.q.val().any() {
                    self.state.d.next = VState::Fin;
                }
            }
            // Attention, per head group: query, scores (pass 1), weights and values
            // (pass 2), normalization.
            VState::AtQ => {
                self.ar_ra0.next = bit_cast::<12, 16>(self.p0.val() + self.cj.q.val());
                self.u_qload.next = true;
                self.act_n.next = bit_cast::<9, 16>(self.lanes.val());
                self.h_max_clear.next = true;
                self.ci.d.next = 0.into();
                self.state.d.next = VState::AtP1;
            }
            VState::AtP1 => {
                self.kv_rsel.next = false;
                self.kv_raddr.next = self.lbase.q.val() + bit_cast::<20, 16>(self.ci.q.val());
                self.u_a.next = 3.into();
                self.u_b.next = 5.into();
                self.u_score.next = true;
                self.act_n.next = bit_cast::<9, 16>(self.lanes.val());
                self.ci.d.next = self.ci.q.val() + 1;
                if self.ci.q.val() == self.npg.q.val() - 1 {
                    self.ck.d.next = 0.into();
                    self.state.d.next = VState::AtMx;
                }
            }
            VState::AtMx => {
                self.ck.d.next = self.ck.q.val() + 1;
                if self.ck.q.val() == 12 {
                    self.h_combine.next = true;
                    self.h_sum_clear.next = true;
                    self.ci.d.next = 0.into();
                    self.state.d.next = VState::AtP2;
                }
            }
            VState::AtP2 => {
                self.h_r_go.next = self.ci.q.val() < self.npg.q.val();
                self.kv_rsel.next = true;
                self.kv_raddr.next = self.lbase.q.val() + (bit_cast::<20, 16>(self.ci.q.val()) - 4);
                if self.ci.q.val() >= 4 {
                    self.u_a.next = 4.into();
                    self.u_b.next = 5.into();
                    self.u_acc.next = 2.into();
                    if self.ci.q.val() == 4 {
                        self.u_acc.next = 1.into();
                    }
                    self.act_n.next = bit_cast::<9, 16>(self.lanes.val());
                }
                self.ci.d.next = self.ci.q.val() + 1;
                if self.ci.q.val() == self.npg.q.val() + 3 {
                    self.state.d.next = VState::AtFin;
                }
            }
            VState::AtFin => {
                self.u_acc.next = 3.into();
                self.act_n.next = bit_cast::<9, 16>(self.lanes.val());
                self.ck.d.next = 0.into();
                self.state.d.next = VState::AtRc;
            }
            VState::AtRc => {
                self.h_recip_go.next = !self.ck.q.val().any();
                self.ck.d.next = self.ck.q.val() + 1;
                if self.ck.q.val() == 3 {
                    self.state.d.next = VState::AtOut;
                }
            }
            VState::AtOut => {
                self.u_rq.next = true;
                self.u_msel.next = 2.into();
                self.act_n.next = self.cfg_deff.val();
                self.ar_wa.next = bit_cast::<12, 16>(self.p1.val() + self.cj.q.val());
                self.cj.d.next = self.cj.q.val() + 1;
                self.state.d.next = VState::AtQ;
                if self.cj.q.val() == bit_cast::<16, 8>(self.cfg_ngroups.val()) - 1 {
                    self.cd.d.next = 0.into();
                    self.state.d.next = VState::Drain;
                }
            }
            // Saturating add x += y.
            VState::AddS => {
                self.ar_ra0.next = bit_cast::<12, 16>(self.p0.val() + self.ci.q.val());
                self.ar_ra1.next = bit_cast::<12, 16>(self.p1.val() + self.ci.q.val());
                self.u_a.next = 1.into();
                self.u_b.next = 0.into();
                self.u_cadd.next = true;
                self.u_rq.next = true;
                self.u_rqin.next = true;
                self.u_msel.next = 3.into();
                self.act_n.next = bit_cast::<9, 16>(self.act_cnt.val());
                self.ar_wa.next = bit_cast::<12, 16>(self.p0.val() + self.ci.q.val());
                self.ci.d.next = self.ci.q.val() + 1;
                self.rem.d.next = self.rem.q.val() - self.lanes.val();
                if self.rem.q.val() <= self.lanes.val() {
                    self.cd.d.next = 0.into();
                    self.state.d.next = VState::Drain;
                }
            }
            // SwiGLU: groups of S elements of h1 stream through the S sigmoid units;
            // three cycles later each lane of the group multiplies h1·σ·h3.
            VState::Swi => {
                self.ar_ra0.next =
                    bit_cast::<12, 16>(self.p0.val() + (self.e_lead.val() >> self.cfg_lg.val()));
                self.bc_src_e.d.next = 2.into();
                if self.ci.q.val() >= 3 {
                    self.ar_ra1.next = bit_cast::<12, 16>(
                        self.p1.val() + (self.e_follow.val() >> self.cfg_lg.val()),
                    );
                    self.u_a.next = 5.into();
                    self.u_b.next = 9.into();
                    self.u_rq.next = true;
                    self.u_rqin.next = true;
                    self.u_msel.next = 4.into();
                    self.act_mode.next = 3.into();
                    self.act_idx.next = bit_cast::<8, 16>(
                        (self.e_follow.val() & self.lmask.val()) >> self.cfg_slg.val(),
                    );
                    self.ar_wa.next = bit_cast::<12, 16>(
                        self.p2.val() + (self.e_follow.val() >> self.cfg_lg.val()),
                    );
                }
                self.ci.d.next = self.ci.q.val() + 1;
                if self.ci.q.val() == ((self.p3.val() + self.smask.val()) >> self.cfg_slg.val()) + 2
                {
                    self.cd.d.next = 0.into();
                    self.state.d.next = VState::Drain;
                }
            }
            // Sampling and log-probabilities: argmax over the logits first.
            VState::SaArg => {
                self.ar_ra0.next = bit_cast::<12, 16>(self.p0.val() + self.ci.q.val());
                self.u_am.next = true;
                self.u_amfirst.next = !self.ci.q.val().any();
                self.act_n.next = bit_cast::<9, 16>(self.act_cnt.val());
                self.ci.d.next = self.ci.q.val() + 1;
                self.rem.d.next = self.rem.q.val() - self.lanes.val();
                if self.rem.q.val() <= self.lanes.val() {
                    self.ck.d.next = 0.into();
                    self.state.d.next = VState::SaAw;
                }
            }
            VState::SaAw => {
                self.ck.d.next = self.ck.q.val() + 1;
                if self.ck.q.val() == bit_cast::<16, 4>(self.cfg_lg.val()) + 3 {
                    self.mx.d.next = self.am_val.val();
                    self.ci.d.next = 0.into();
                    self.tot.d.next = 0.into();
                    self.state.d.next = VState::SaEx;
                    if !self.is_lp.q.val() & !self.itemp.q.val().any() {
                        self.result_q.d.next = bit_cast::<64, 20>(self.am_idx.val());
                        self.state.d.next = VState::Fin;
                    }
                }
            }
            VState::SaEx => {
                self.ar_ra0.next =
                    bit_cast::<12, 16>(self.p0.val() + (self.e_lead.val() >> self.cfg_lg.val()));
                self.xv1.d.next = self.ci.q.val() < self.p1.val();
                self.xe1.d.next = self.ci.q.val();
                if (self.ci.q.val() >= 5)
                    & !self.is_lp.q.val()
                    & (self.ci.q.val() - 5 < self.p1.val())
                {
                    self.bc2_src_e.d.next = 1.into();
                    self.u_raw.next = 1.into();
                    self.act_mode.next = 1.into();
                    self.act_idx.next = bit_cast::<8, 16>((self.ci.q.val() - 5) & self.lmask.val());
                    self.ar_wa.next = bit_cast::<12, 16>(
                        self.p2.val() + ((self.ci.q.val() - 5) >> self.cfg_lg.val()),
                    );
                }
                self.ci.d.next = self.ci.q.val() + 1;
                if self.ci.q.val() == self.p1.val() + 6 {
                    self.ck.d.next = 0.into();
                    self.mass.d.next = self.tot.q.val();
                    self.tau_q.d.next = 0.into();
                    if self.is_lp.q.val() {
                        self.state.d.next = VState::LpLog;
                    } else if self.rb_q.q.val().get_bits::<16>(0).any() {
                        self.target.d.next = self.mul_topp.p.val().get_bits::<32>(16);
                        self.ck.d.next = 15.into();
                        self.ci.d.next = 0.into();
                        self.rem.d.next = self.p1.val();
                        self.state.d.next = VState::SaNp;
                    } else {
                        self.state.d.next = VState::SaDraw;
                    }
                }
            }
            // Nucleus: binary search for the largest threshold whose mass exceeds top-p.
            VState::SaNp => {
                self.tau.next = self.tau_q.q.val() | (bits::<16>(1) << self.ck.q.val());
                self.ar_ra0.next = bit_cast::<12, 16>(self.p2.val() + self.ci.q.val());
                self.u_a.next = 6.into();
                self.u_b.next = 8.into();
                self.u_acc.next = 2.into();
                if !self.ci.q.val().any() {
                    self.u_acc.next = 1.into();
                }
                self.act_n.next = bit_cast::<9, 16>(self.act_cnt.val());
                self.ci.d.next = self.ci.q.val() + 1;
                self.rem.d.next = self.rem.q.val() - self.lanes.val();
                if self.rem.q.val() <= self.lanes.val() {
                    self.state.d.next = VState::SaNr;
                }
            }
            VState::SaNr => {
                self.tau.next = self.tau_q.q.val() | (bits::<16>(1) << self.ck.q.val());
                self.u_sum.next = true;
                self.u_tsrc.next = true;
                self.state.d.next = VState::SaNw;
            }
            VState::SaNw => {
                self.tau.next = self.tau_q.q.val() | (bits::<16>(1) << self.ck.q.val());
                if self.tree_valid.val() {
                    if self.tree_top.val().get_bits::<32>(0) > self.target.q.val() {
                        self.tau_q.d.next = self.tau_q.q.val() | (bits::<16>(1) << self.ck.q.val());
                        self.mass.d.next = self.tree_top.val().get_bits::<32>(0);
                    }
                    self.ci.d.next = 0.into();
                    self.rem.d.next = self.p1.val();
                    self.ck.d.next = self.ck.q.val() - 1;
                    self.state.d.next = VState::SaNp;
                    if !self.ck.q.val().any() {
                        self.state.d.next = VState::SaDraw;
                    }
                }
            }
            // Draw: one RNG step, a target in [0, mass), per-slot sums through the tree,
            // then a scan of the lanes of the slot where the cumulative sum passes it.
            VState::SaDraw => {
                self.rng.d.next = self.rng_next.val();
                self.rdraw.d.next = self.mul_coin.p.val().get_bits::<32>(24);
                self.cum.d.next = 0.into();
                self.found.d.next = false;
                self.arrivals.d.next = 0.into();
                self.ci.d.next = 0.into();
                self.rem.d.next = self.p1.val();
                self.state.d.next = VState::SaDp;
            }
            VState::SaDp => {
                self.ar_ra0.next = bit_cast::<12, 16>(self.p2.val() + self.ci.q.val());
                self.u_a.next = 6.into();
                self.u_b.next = 8.into();
                self.u_sum.next = true;
                self.act_n.next = bit_cast::<9, 16>(self.act_cnt.val());
                self.ci.d.next = self.ci.q.val() + 1;
                self.rem.d.next = self.rem.q.val() - self.lanes.val();
                if self.rem.q.val() <= self.lanes.val() {
                    self.state.d.next = VState::SaDw;
                }
            }
            VState::SaDw => {
                if self.arrivals.q.val()
                    == ((self.p1.val() + self.lmask.val()) >> self.cfg_lg.val())
                {
                    self.ci.d.next = 0.into();
                    if !self.found.q.val() {
                        self.fslot.d.next = bit_cast::<12, 16>(
                            ((self.p1.val() + self.lmask.val()) >> self.cfg_lg.val()) - 1,
                        );
                    }
                    self.state.d.next = VState::SaSc;
                }
            }
            VState::SaSc => {
                self.ar_ra0.next =
                    bit_cast::<12, 16>(self.p2.val() + bit_cast::<16, 12>(self.fslot.q.val()));
                self.scan_v.d.next = true;
                self.scan_i.d.next = self.ci.q.val();
                self.ci.d.next = self.ci.q.val() + 1;
                if self.scan_v.q.val() {
                    self.cum.d.next = self.cum.q.val() + self.masked.val();
                    if (self.rdraw.q.val() < self.cum.q.val() + self.masked.val())
                        | (self.scan_i.q.val() == self.lmask.val())
                    {
                        self.result_q.d.next = bit_cast::<64, 16>(
                            (bit_cast::<16, 12>(self.fslot.q.val()) << self.cfg_lg.val())
                                + self.scan_i.q.val(),
                        );
                        self.state.d.next = VState::Fin;
                    }
                }
            }
            VState::LpLog => {
                self.ck.d.next = self.ck.q.val() + 1;
                if self.ck.q.val() == 2 {
                    self.result_q.d.next = bit_cast::<64, 16>(self.zt.q.val()) + 15360
                        - bit_cast::<64, 16>(self.slog.log2.val());
                    if self.zt.q.val().get_bit(15) {
                        self.result_q.d.next = (bit_cast::<64, 16>(self.zt.q.val())
                            | 0xFFFF_FFFF_FFFF_0000_u64)
                            + 15360
                            - bit_cast::<64, 16>(self.slog.log2.val());
                    }
                    self.state.d.next = VState::Fin;
                }
            }
            // Vector to host memory, four int16 per 64-bit beat.
            VState::DoRd => {
                self.ar_ra0.next = bit_cast::<12, 16>(
                    self.p0.val() + ((self.ci.q.val() << 2) >> self.cfg_lg.val()),
                );
                self.state.d.next = VState::DoLt;
            }
            VState::DoLt => {
                self.wd.d.next = self.dma4.val();
                self.state.d.next = VState::DoReq;
            }
            VState::DoReq => {
                self.dma_req.next = true;
                self.dma_we.next = true;
                self.dma_addr.next = self.ra_q.q.val() + (bit_cast::<64, 16>(self.ci.q.val()) << 3);
                if self.dma_ack.val() {
                    self.ci.d.next = self.ci.q.val() + 1;
                    self.state.d.next = VState::DoRd;
                    if self.dma_err.val() {
                        self.result_q.d.next = 1.into();
                        self.state.d.next = VState::Fin;
                    } else if self.ci.q.val() == ((self.p1.val() + 3) >> 2) - 1 {
                        self.state.d.next = VState::Fin;
                    }
                }
            }
            // Host memory to vector.
            VState::DiReq => {
                self.dma_req.next = true;
                self.dma_addr.next = self.ra_q.q.val() + (bit_cast::<64, 16>(self.ci.q.val()) << 3);
                if self.dma_ack.val() {
                    self.dmaw_q.d.next = self.dma_rdata.val();
                    self.state.d.next = VState::DiWr;
                    if self.dma_err.val() {
                        self.result_q.d.next = 1.into();
                        self.state.d.next = VState::Fin;
                    }
                }
            }
            VState::DiWr => {
                self.u_raw.next = 2.into();
                self.act_mode.next = 2.into();
                self.act_idx.next =
                    bit_cast::<8, 16>(((self.ci.q.val() << 2) & self.lmask.val()) >> 2);
                self.ar_wa.next = bit_cast::<12, 16>(
                    self.p0.val() + ((self.ci.q.val() << 2) >> self.cfg_lg.val()),
                );
                self.ci.d.next = self.ci.q.val() + 1;
                self.state.d.next = VState::DiReq;
                if self.ci.q.val() == ((self.p1.val() + 3) >> 2) - 1 {
                    self.cd.d.next = 0.into();
                    self.state.d.next = VState::Drain;
                }
            }
            // KV rows to host memory: per layer, per position, K then V.
            VState::KsRd => {
                self.state.d.next = VState::KsLt;
            }
            VState::KsLt => {
                self.wd.d.next = self.kv_beat_data.val();
                self.state.d.next = VState::KsReq;
            }
            VState::KsReq => {
                self.dma_req.next = true;
                self.dma_we.next = true;
                if self.dma_ack.val() {
                    self.hoff.d.next = self.hoff.q.val() + 8;
                    self.rem.d.next = self.rem.q.val() + 1;
                    // Through KsRd: the beat select is registered beside the row's
                    // read, so it needs a cycle to follow `rem` to the next beat.
                    self.state.d.next = VState::KsRd;
                    if self.dma_err.val() {
                        self.result_q.d.next = 1.into();
                        self.state.d.next = VState::Fin;
                    } else if self.rem.q.val() == bit_cast::<16, 10>(self.cfg_kvbeats.val()) - 1 {
                        self.rem.d.next = 0.into();
                        self.state.d.next = VState::KsNext;
                    }
                }
            }
            VState::KsNext => {
                self.state.d.next = VState::KsRd;
                self.ck.d.next = 1.into();
                if self.ck.q.val().any() {
                    self.ck.d.next = 0.into();
                    self.ci.d.next = self.ci.q.val() + 1;
                    if self.ci.q.val() == self.rc_q.q.val().get_bits::<16>(0) - 1 {
                        self.ci.d.next = 0.into();
                        self.cj.d.next = self.cj.q.val() + 1;
                        self.lbase.d.next = self.lbase.q.val() + bit_cast::<20, 16>(self.p1.val());
                        if self.cj.q.val() == self.p0.val() - 1 {
                            self.state.d.next = VState::Fin;
                        }
                    }
                }
            }
            // Host memory to KV rows.
            VState::KlReq => {
                self.dma_req.next = true;
                if self.dma_ack.val() {
                    self.dmaw_q.d.next = self.dma_rdata.val();
                    self.hoff.d.next = self.hoff.q.val() + 8;
                    self.state.d.next = VState::KlBw;
                    if self.dma_err.val() {
                        self.result_q.d.next = 1.into();
                        self.state.d.next = VState::Fin;
                    }
                }
            }
            VState::KlBw => {
                self.rb_beat_we.next = true;
                self.rem.d.next = self.rem.q.val() + 1;
                self.state.d.next = VState::KlReq;
                if self.rem.q.val() == bit_cast::<16, 10>(self.cfg_kvbeats.val()) - 1 {
                    self.rem.d.next = 0.into();
                    self.state.d.next = VState::KlWr;
                }
            }
            VState::KlWr => {
                self.kv_we_k.next = !self.ck.q.val().any();
                self.kv_we_v.next = self.ck.q.val().any();
                self.state.d.next = VState::KlReq;
                self.ck.d.next = 1.into();
                if self.ck.q.val().any() {
                    self.ck.d.next = 0.into();
                    self.ci.d.next = self.ci.q.val() + 1;
                    if self.ci.q.val() == self.rc_q.q.val().get_bits::<16>(0) - 1 {
                        self.ci.d.next = 0.into();
                        self.cj.d.next = self.cj.q.val() + 1;
                        self.lbase.d.next = self.lbase.q.val() + bit_cast::<20, 16>(self.p1.val());
                        if self.cj.q.val() == self.p0.val() - 1 {
                            self.state.d.next = VState::Fin;
                        }
                    }
                }
            }
            VState::Drain => {
                self.cd.d.next = self.cd.q.val() - 1;
                if !self.cd.q.val().any() {
                    self.state.d.next = VState::Fin;
                }
            }
            VState::Fin => {
                self.done.next = true;
                self.state.d.next = VState::Idle;
            }
        }

        // Draw: per-slot sums arrive from the tree, tagged with their slot.
        if self.tree_valid.val()
            & ((self.state.q.val() == VState::SaDp) | (self.state.q.val() == VState::SaDw))
        {
            self.arrivals.d.next = self.arrivals.q.val() + 1;
            if !self.found.q.val() {
                if self.rdraw.q.val() < self.cum_next.val() {
                    self.found.d.next = true;
                    self.fslot.d.next = self.tree_tag.val().get_bits::<12>(0);
                } else {
                    self.cum.d.next = self.cum_next.val();
                }
            }
        }

        if self.reset.val() {
            self.state.d.next = VState::Idle;
            self.bist_v.d.next = false;
            self.sv1.d.next = false;
            self.xv1.d.next = false;
            self.scan_v.d.next = false;
        }
    }
}
