//! Will a chip fit a part? An estimate before synthesis, from the chip's shape.
//!
//! Synthesis takes minutes and place and route tens of minutes, so `etch build --fit`
//! chooses a configuration from this model instead, and `etch synth` then checks the
//! choice on yosys's real counts. The model is linear in the units the chip repeats —
//! lanes, requantizers, attention head units, sigmoid units — plus the block RAMs its
//! memories need and a base for the control (sequencer, vector controller, host
//! interface, UART bridge). Its coefficients come from syntheses of stories260K
//! chips for the ECP5-85F (`docs/FPGA.md`, "The resource model"), so it is an
//! ECP5 model; the iCE40UP5K has no room for any chip of this architecture anyway.

use etch_contract::Pipeline;

use crate::target::{Resources, Target};

/// What a chip is made of, as far as resources go.
#[derive(Clone, Debug)]
pub struct DesignShape {
    /// MAC lanes.
    pub lanes: usize,
    /// Input columns per lane and cycle: multipliers per lane.
    pub columns: usize,
    /// Of columns 1.., how many multiply in LUTs instead of a DSP block.
    pub lut_columns: usize,
    /// The bits of the weight a LUT column multiplies by (4 for 4-bit codes with one
    /// scale per row, else 8): one partial product each.
    pub lut_weight_bits: usize,
    /// Shared requantizers.
    pub requantizers: usize,
    /// Attention head units.
    pub head_units: usize,
    /// SwiGLU's sigmoid units.
    pub sigmoid_units: usize,
    /// Pipeline registers.
    pub pipeline: Pipeline,
    /// The vector-operation queue.
    pub vop_queue: bool,
    /// Head pairs: a second query register, multiplier and accumulator per lane, and
    /// a second adder tree (the second head units are among `head_units`).
    pub head_pairs: bool,
    /// Memories block RAM may hold: `(name, bits per word, words)`.
    pub memories: Vec<(&'static str, usize, usize)>,
}

/// ECP5 LUT4s (carry cells and LUT RAM counted as the two LUTs they occupy) of the
/// control around the datapath, of one lane with its share of the adder and argmax
/// trees and its activation RAM, of one requantizer, head unit and sigmoid unit.
/// Calibrated on `etch synth --synth-only` of stories260K (one context of 128
/// positions, int4, `fpga` pipeline) with 64 lanes and 8 requantizers (76,536 LUTs,
/// 45,871 flip-flops) and 32 lanes and 16 requantizers (58,728 and 30,751); the head
/// and requantizer figures from a hierarchical synthesis of the 64-lane chip.
/// (Both with one scale per weight row, and with the sigmoid units' requantizer
/// before it was narrowed to their 16-bit input: then 400 LUTs and 130 flip-flops a
/// unit.)
const LUT_BASE: f64 = 14_040.0;
const LUT_PER_LANE: f64 = 649.0;
const LUT_PER_REQUANTIZER: f64 = 990.0;
const LUT_PER_HEAD: f64 = 1_230.0;
/// A sigmoid unit with its 16 × 17 requantizer: 145 LUTs fewer than with the 48 × 17
/// one, from 32 lanes × 4 columns (one in LUTs), R 8 — 59,114 LUTs, 32,150
/// flip-flops — against the same chip with two columns in LUTs before the change
/// (64,016), less the column (the unit alone: 396 against 779 LUTs before flattening).
const LUT_PER_SIGMOID: f64 = 255.0;
/// With group scales, each lane's (and column's) 4-bit code times its scale, in shifts
/// and adds, and the scale ROM's select: calibrated on the 32-lane, 16-requantizer
/// chip with a scale per 16 weights (60,892 LUTs).
const LUT_PER_GROUP_SCALED_LANE: f64 = 66.0;
/// Each column beyond the first, per lane: its input element's select from the
/// activation RAM's lanes, its operand registers and its share of the column sum; and
/// a column that multiplies in LUTs, per bit of its weight (a selected copy of the
/// element and its share of the adders: 117 LUTs for a 4-bit code). Both from the two
/// 32 × 4 syntheses above (one and two columns in LUTs).
const LUT_PER_COLUMN: f64 = 59.0;
const LUT_PER_LUT_MULTIPLIER_BIT: f64 = 29.0;
/// The vector-operation queue: its entry, the parameter row it holds and the
/// controller's second way into its states (32 lanes × 2 columns, R 8: 57,635 LUTs and
/// 29,957 flip-flops with it, 54,733 and 29,606 without).
const LUT_VOP_QUEUE: f64 = 2_900.0;
const FF_VOP_QUEUE: f64 = 350.0;
/// Head pairs, per lane: the second accumulator and its adder, operand select and
/// registers, the lane's share of the second adder tree; and its multiplier. From
/// stories260K on 8 lanes × 8 columns with and without them (3,503 LUTs, 2,340
/// flip-flops and 11 multipliers more, of which a head unit's share is the second
/// head unit's).
const LUT_PER_PAIR_LANE: f64 = 284.0;
const FF_PER_PAIR_LANE: f64 = 249.0;
const DSP_PER_PAIR_LANE: u64 = 1;
/// Flip-flops, likewise (the `asic` pipeline has about 90 fewer per lane).
const FF_BASE: f64 = 10_050.0;
const FF_PER_LANE: f64 = 476.0;
const FF_PER_REQUANTIZER: f64 = 190.0;
const FF_PER_HEAD: f64 = 350.0;
const FF_PER_SIGMOID: f64 = 98.0;
/// A column beyond the first, per lane (its registers mostly go into the DSP block's
/// own), and one in LUTs (its operand and product registers: 66).
const FF_PER_COLUMN: f64 = 11.0;
const FF_PER_LUT_COLUMN: f64 = 66.0;
const FF_ASIC_SAVING_PER_LANE: f64 = 90.0;
/// Multipliers outside the lanes, requantizers, heads and sigmoid units: the
/// controller's (the sampler's products, the RoPE angle, its own requantizer) and
/// the sequencer's.
const DSP_BASE: u64 = 15;
/// A 48 × 17 requantization product takes three 18 × 18 multipliers (the lanes',
/// the head units'); a sigmoid unit's 16 × 17 one, one.
const DSP_PER_REQUANT: u64 = 3;
const DSP_PER_SIGMOID: u64 = 1;

/// ROMs of at most this many bits stay in logic (yosys built the 16 × 256-bit
/// second bank of stories260K's weight ROM from LUTs).
const BRAM_MAX_LOGIC_BITS: usize = 4096;
/// ROMs of at most this many words stay in logic however wide (the parameter ROM,
/// 59 × 256 bits for stories260K).
const BRAM_MAX_LOGIC_WORDS: usize = 64;

/// The chip's RAMs, by their name in `ChipParams::memories`; the others are ROMs.
const RAMS: [&str; 4] = ["kv", "scores", "scratchpad", "activations"];
/// RAMs of at most this many bits are LUT RAM: yosys built the CI chip's score RAM
/// (32 × 48 bits) from TRELLIS_DPR16X4 but its activation RAMs (118 × 16 bits, two read
/// ports) from block RAM, two each, and those of stories260K's 8-lane chips (242 × 16)
/// likewise.
const RAM_MAX_LOGIC_BITS: usize = 1536;

/// Block RAMs for memory `name` of `width` × `depth`: [`ecp5_brams`], but a memory
/// small enough for logic takes none.
pub fn ecp5_memory_brams(name: &str, width: usize, depth: usize) -> u64 {
    let in_logic = if RAMS.contains(&name) {
        width * depth <= RAM_MAX_LOGIC_BITS
    } else {
        width * depth <= BRAM_MAX_LOGIC_BITS || depth <= BRAM_MAX_LOGIC_WORDS
    };
    if in_logic {
        0
    } else {
        ecp5_brams(width, depth)
    }
}

/// Block RAMs (DP16KD) for a `width` × `depth` memory: the cheapest of the
/// primitive's shapes (16K × 1 … 512 × 36). A ROM a little deeper than a power of two
/// comes as two memories (`etch_hdl::prim::rom_banks`).
pub fn ecp5_brams(width: usize, depth: usize) -> u64 {
    if width * depth == 0 {
        return 0;
    }
    const SHAPES: [(usize, usize); 6] = [
        (1, 16_384),
        (2, 8_192),
        (4, 4_096),
        (9, 2_048),
        (18, 1_024),
        (36, 512),
    ];
    SHAPES
        .iter()
        .map(|&(w, d)| (width.div_ceil(w) * depth.div_ceil(d)) as u64)
        .min()
        .unwrap_or(0)
}

/// The estimate for `d` on an ECP5 (an iCE40 would need more LUTs still, and has no
/// room for any chip of this architecture: `docs/FPGA.md`).
pub fn estimate(d: &DesignShape) -> Resources {
    let (l, r, h, s) = (
        d.lanes as f64,
        d.requantizers as f64,
        d.head_units as f64,
        d.sigmoid_units as f64,
    );
    let grouped = d.memories.iter().any(|&(name, _, _)| name == "scales");
    let extra_columns = d.columns.max(1) - 1;
    let lut_columns = d.lut_columns.min(extra_columns);
    let luts = LUT_BASE
        + LUT_PER_LANE * l
        + LUT_PER_REQUANTIZER * r
        + LUT_PER_HEAD * h
        + LUT_PER_SIGMOID * s
        + if grouped {
            LUT_PER_GROUP_SCALED_LANE * l * d.columns.max(1) as f64
        } else {
            0.0
        }
        + LUT_PER_COLUMN * l * extra_columns as f64
        + LUT_PER_LUT_MULTIPLIER_BIT * l * (lut_columns * d.lut_weight_bits) as f64
        + if d.vop_queue { LUT_VOP_QUEUE } else { 0.0 }
        + if d.head_pairs {
            LUT_PER_PAIR_LANE * l
        } else {
            0.0
        };
    let mut ffs = FF_BASE
        + FF_PER_LANE * l
        + FF_PER_REQUANTIZER * r
        + FF_PER_HEAD * h
        + FF_PER_SIGMOID * s
        + FF_PER_COLUMN * l * extra_columns as f64
        + FF_PER_LUT_COLUMN * l * lut_columns as f64
        + if d.vop_queue { FF_VOP_QUEUE } else { 0.0 }
        + if d.head_pairs {
            FF_PER_PAIR_LANE * l
        } else {
            0.0
        };
    if d.pipeline == Pipeline::ASIC {
        ffs -= FF_ASIC_SAVING_PER_LANE * l;
    }
    let brams = d
        .memories
        .iter()
        .map(|&(name, w, depth)| ecp5_memory_brams(name, w, depth))
        .sum();
    let dsps = (d.lanes * (d.columns.max(1) - lut_columns)) as u64
        + DSP_PER_REQUANT * (d.requantizers + d.head_units) as u64
        + DSP_PER_SIGMOID * d.sigmoid_units as u64
        + if d.head_pairs {
            DSP_PER_PAIR_LANE * d.lanes as u64
        } else {
            0
        }
        + DSP_BASE;
    Resources {
        luts: luts.round() as u64,
        ffs: ffs.round() as u64,
        brams,
        dsps,
    }
}

/// The share of a part's LUTs a chosen design may use: what nextpnr routes in under an
/// hour on two cores. Measured on stories260K chips: routed at 35 % (8 lanes, 34 min)
/// and the CI's chip at 36 % (router1 in 260 s); not routed after 18–37 minutes of
/// router1 at 69 %, 71 % and 73 % (a quarter of the arcs or less), where the router
/// slows to tens of arcs a second; above about 90 % the static placer fails. Between
/// 36 and 69 % nothing has routed yet (8 lanes × 8 columns, 39 % of the LUTs and 88 %
/// of the block RAMs, was 43 % routed after 27 minutes beside other work), so `--fit`
/// stays near the side it knows. `docs/FPGA.md`, "Fullness".
pub const ROUTABLE_LUTS: f64 = 0.45;
/// Likewise for block RAMs: the 8-lane chip routes with 175 of the 208 in use (84 %),
/// not with 203 (98 %, router2 and router1 both stopped after 35–40 minutes).
pub const ROUTABLE_BRAMS: f64 = 0.85;

/// How full a part may be and still place and route in under an hour: LUTs to
/// [`ROUTABLE_LUTS`], block RAMs to [`ROUTABLE_BRAMS`], flip-flops to 90 %, every
/// multiplier.
pub fn within(t: Target, need: &Resources) -> Result<(), String> {
    let have = t.resources();
    let mut over = Vec::new();
    let mut check = |what: &str, need: u64, have: u64, limit: f64| {
        if need as f64 > have as f64 * limit {
            over.push(format!(
                "{need} {what} of {have} ({:.0} %)",
                100.0 * need as f64 / have as f64
            ));
        }
    };
    check("LUTs", need.luts, have.luts, ROUTABLE_LUTS);
    check("flip-flops", need.ffs, have.ffs, 0.9);
    check("block RAMs", need.brams, have.brams, ROUTABLE_BRAMS);
    check("multipliers", need.dsps, have.dsps, 1.0);
    if over.is_empty() {
        Ok(())
    } else {
        Err(over.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_ram_shapes_take_the_cheapest() {
        // A KV bank of 640 rows of 512 bits: 29 blocks of 1K × 18.
        assert_eq!(ecp5_brams(512, 640), 29);
        // A 1K-entry table of 16 bits: one block.
        assert_eq!(ecp5_brams(16, 1024), 1);
        // The sine table, one entry over 2K: 1K × 18 three times.
        assert_eq!(ecp5_brams(16, 2049), 3);
        // Tiny ROMs stay in logic, and so do shallow ones however wide; RAMs do not.
        assert_eq!(ecp5_memory_brams("sine", 32, 4), 0);
        assert_eq!(ecp5_memory_brams("params", 256, 59), 0);
        assert_eq!(ecp5_memory_brams("weights", 256, 16), 0);
        assert_eq!(ecp5_memory_brams("activations", 16, 242), 1);
        assert_eq!(ecp5_memory_brams("activations", 16, 118), 1);
        assert_eq!(ecp5_memory_brams("scores", 48, 32), 0);
        // A KV bank of 2,560 planes' words of 128 bits: 512 × 36, four wide, five deep.
        assert_eq!(ecp5_memory_brams("kv", 128, 2560), 20);
    }

    #[test]
    fn the_model_reproduces_its_calibration_chips() {
        // stories260K, 64 lanes, 8 requantizers, fpga pipeline, one context of 128.
        let d = DesignShape {
            lanes: 64,
            columns: 1,
            lut_columns: 0,
            lut_weight_bits: 8,
            requantizers: 8,
            head_units: 8,
            sigmoid_units: 8,
            pipeline: Pipeline::FPGA,
            vop_queue: false,
            head_pairs: false,
            memories: vec![("kv", 512, 640), ("kv", 512, 640)],
        };
        let e = estimate(&d);
        assert_eq!(e.dsps, 64 + 3 * 16 + 8 + 15);
        assert_eq!(e.brams, 58);
        assert!(within(Target::Ecp5_25k, &e).unwrap_err().contains("LUTs"));
        // The two calibration syntheses, LUTs and flip-flops within 1 % — measured
        // with the sigmoid units' wide requantizer, 145 LUTs and 32 flip-flops more
        // a unit than today's.
        let close = |got: u64, measured: f64| (got as f64 - measured).abs() < measured / 100.0;
        let (sig_luts, sig_ffs) = (8.0 * 145.0, 8.0 * 32.0);
        assert!(
            close(e.luts, 76_536.0 - sig_luts) && close(e.ffs, 45_871.0 - sig_ffs),
            "{e:?}"
        );
        let d32 = DesignShape {
            lanes: 32,
            requantizers: 16,
            head_units: 4,
            ..d
        };
        let e32 = estimate(&d32);
        assert!(
            close(e32.luts, 58_728.0 - sig_luts) && close(e32.ffs, 30_751.0 - sig_ffs),
            "{e32:?}"
        );
        // The same chip with a scale per 16 weights: each lane's code times its scale
        // in logic, 131 multipliers then (115 with today's sigmoid units).
        let mut scaled = d32.memories.clone();
        scaled.push(("scales", 4 * 32, 8_504 / 16));
        let g32 = estimate(&DesignShape {
            memories: scaled,
            ..d32.clone()
        });
        assert!(close(g32.luts, 60_892.0 - sig_luts), "{g32:?}");
        assert_eq!(g32.dsps, 131 - 16);
        // Today's RTL: 32 lanes × 4 columns, one multiplying its 4-bit codes in LUTs,
        // 8 requantizers (`etch synth --synth-only`: 59,114 LUTs, 32,150 flip-flops,
        // 155 multipliers).
        let c4 = estimate(&DesignShape {
            columns: 4,
            lut_columns: 1,
            lut_weight_bits: 4,
            requantizers: 8,
            ..d32
        });
        assert!(
            close(c4.luts, 59_114.0) && close(c4.ffs, 32_150.0),
            "{c4:?}"
        );
        assert_eq!(c4.dsps, 155);
        // Head pairs on 8 lanes × 8 columns (stories260K, R 8, the queue, the token
        // embedding at 8 bits): 32,545 LUTs, 17,325 flip-flops and 114 multipliers
        // without, 36,048, 19,665 and 125 with (a second head unit among them).
        let l8 = DesignShape {
            lanes: 8,
            columns: 8,
            lut_columns: 0,
            lut_weight_bits: 8,
            requantizers: 8,
            head_units: 1,
            sigmoid_units: 8,
            pipeline: Pipeline::FPGA,
            vop_queue: true,
            head_pairs: false,
            memories: vec![],
        };
        let pairs = DesignShape {
            head_units: 2,
            head_pairs: true,
            ..l8.clone()
        };
        let (a, b) = (estimate(&l8), estimate(&pairs));
        let delta = |x: u64, y: u64, measured: f64| ((y - x) as f64 - measured).abs() < 10.0;
        assert!(
            delta(a.luts, b.luts, 3_503.0) && delta(a.ffs, b.ffs, 2_340.0),
            "{a:?} {b:?}"
        );
        assert_eq!(b.dsps - a.dsps, 125 - 114);
    }
}
