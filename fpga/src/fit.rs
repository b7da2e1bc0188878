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
    /// A second weight ROM of 8-bit words beside the 4-bit one (matrices kept at 8
    /// bits), and each lane column's choice between the two.
    pub wide_rom: bool,
    /// Memories block RAM may hold: `(name, bits per word, words)`.
    pub memories: Vec<(&'static str, usize, usize)>,
}

/// ECP5 LUT4s (carry cells and LUT RAM counted as the two LUTs they occupy) of the
/// control around the datapath (sequencer, vector controller, host interface, UART
/// bridge, the chip's trees and selects), of one lane with its share of the adder and
/// argmax trees and its activation RAM, of one requantizer, of each column beyond the
/// first per lane (its input element's select, operand registers, share of the column
/// sum), and of a column that multiplies in LUTs per lane and bit of its weight (a
/// selected copy of the element and its share of the adders).
///
/// A weighted least-squares fit (relative residuals) to eleven `etch synth
/// --synth-only` runs of stories260K (one context of 128 positions, 4-bit weights
/// with one scale per row, `fpga` pipeline; `docs/FPGA.md`, "The resource model"),
/// with the head and sigmoid units' costs held at their hierarchical syntheses': 8
/// lanes × 1, 4 and 8 columns, 16 × 2 and × 4, 8 × 8 with head pairs, with the queue
/// too, and with the token embedding at 8 bits as well (all 8 requantizers); 64 × 1
/// (R 8), 32 × 1 (R 16) and 32 × 4 with one column in LUTs (R 8). Every one within
/// 0.3 %. The head pairs', the queue's, the 8-bit ROM's and the LUT multiplier's terms
/// each rest on one pair of those chips.
const LUT_BASE: f64 = 8_570.0;
const LUT_PER_LANE: f64 = 795.0;
const LUT_PER_REQUANTIZER: f64 = 1_250.0;
const LUT_PER_COLUMN: f64 = 42.0;
const LUT_PER_LUT_MULTIPLIER_BIT: f64 = 69.0;
/// A head unit (from a hierarchical synthesis of the 64-lane chip).
const LUT_PER_HEAD: f64 = 1_230.0;
/// A sigmoid unit with its 16 × 17 requantizer: 145 LUTs fewer than with the 48 × 17
/// one (the unit alone: 396 against 779 LUTs before flattening).
const LUT_PER_SIGMOID: f64 = 255.0;
/// With group scales, each lane's (and column's) 4-bit code times its scale, in shifts
/// and adds, and the scale ROM's select: 32 lanes, 16 requantizers, a scale per 16
/// weights (62,287 LUTs) against one per row (60,952).
const LUT_PER_GROUP_SCALED_LANE: f64 = 42.0;
/// The vector-operation queue: its entry, the parameter row it holds and the
/// controller's second way into its states (8 × 8 with head pairs: 35,822 LUTs and
/// 20,123 flip-flops with it, 33,846 and 19,753 without).
const LUT_VOP_QUEUE: f64 = 1_980.0;
const FF_VOP_QUEUE: f64 = 370.0;
/// Head pairs, per lane: the second accumulator and its adder, operand select and
/// registers, the lane's share of the second adder tree; and its multiplier (8 × 8:
/// 33,846 LUTs, 19,753 flip-flops and 125 multipliers with them, a second head unit
/// among them; 30,583, 17,331 and 114 without).
const LUT_PER_PAIR_LANE: f64 = 260.0;
const FF_PER_PAIR_LANE: f64 = 277.0;
const DSP_PER_PAIR_LANE: u64 = 1;
/// A second, 8-bit weight ROM, per lane and column: the choice of its word or the
/// 4-bit ROM's (8 × 8 with the queue and head pairs, the token embedding at 8 bits:
/// 36,617 LUTs and 20,466 flip-flops, against 35,822 and 20,123).
const LUT_PER_WIDE_LANE_COLUMN: f64 = 12.0;
const FF_PER_WIDE_LANE_COLUMN: f64 = 5.0;
/// Flip-flops, fitted likewise (every one of the eleven within 0.9 %; a column in LUTs
/// keeps its registers in the column's count). The `asic` pipeline has about 90 fewer
/// per lane.
const FF_BASE: f64 = 5_750.0;
const FF_PER_LANE: f64 = 585.0;
const FF_PER_REQUANTIZER: f64 = 360.0;
const FF_PER_COLUMN: f64 = 49.0;
const FF_PER_HEAD: f64 = 350.0;
const FF_PER_SIGMOID: f64 = 98.0;
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

/// The DP16KD's shapes: (bits per word, words), 16K × 1 … 512 × 36.
const BRAM_SHAPES: [(usize, usize); 6] = [
    (1, 16_384),
    (2, 8_192),
    (4, 4_096),
    (9, 2_048),
    (18, 1_024),
    (36, 512),
];

/// Block RAMs (DP16KD) for a `width` × `depth` memory, as yosys maps it: the word's
/// bits in columns of one shape and what is left of them in another (stories260K's
/// 256-bit weight ROM of 4K words: 28 columns of 2K × 9 and one of 4K × 4, 57 blocks),
/// or the words split into a power-of-two part and the rest, each mapped so (a KV
/// bank of 2,560 words of 128 bits: 2K words in 15 blocks of 2K × 9, 512 in 4 of
/// 512 × 36, 19 blocks). A ROM a little deeper than a power of two comes as two
/// memories (`etch_hdl::prim::rom_banks`).
pub fn ecp5_brams(width: usize, depth: usize) -> u64 {
    if width * depth == 0 {
        return 0;
    }
    let (_, deepest) = BRAM_SHAPES[0];
    let (_, shallowest) = BRAM_SHAPES[BRAM_SHAPES.len() - 1];
    let whole = bram_columns(width, depth);
    if depth <= shallowest || depth > deepest {
        return whole;
    }
    let low = 1usize << (usize::BITS - 1 - depth.leading_zeros());
    if low == depth {
        return whole;
    }
    whole.min(bram_columns(width, low) + ecp5_brams(width, depth - low))
}

/// Block RAMs for `width` × `depth` in columns of one shape, the bits left over in
/// columns of another.
fn bram_columns(width: usize, depth: usize) -> u64 {
    let blocks = |(w, d): (usize, usize), bits: usize| bits.div_ceil(w) * depth.div_ceil(d);
    BRAM_SHAPES
        .iter()
        .flat_map(|&main| {
            BRAM_SHAPES.iter().map(move |&rest| {
                let full = width / main.0 * main.0;
                (blocks(main, full) + blocks(rest, width - full)) as u64
            })
        })
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
        }
        + if d.wide_rom {
            LUT_PER_WIDE_LANE_COLUMN * l * d.columns.max(1) as f64
        } else {
            0.0
        };
    let mut ffs = FF_BASE
        + FF_PER_LANE * l
        + FF_PER_REQUANTIZER * r
        + FF_PER_HEAD * h
        + FF_PER_SIGMOID * s
        + FF_PER_COLUMN * l * extra_columns as f64
        + if d.vop_queue { FF_VOP_QUEUE } else { 0.0 }
        + if d.head_pairs {
            FF_PER_PAIR_LANE * l
        } else {
            0.0
        }
        + if d.wide_rom {
            FF_PER_WIDE_LANE_COLUMN * l * d.columns.max(1) as f64
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

/// The share of a part's LUTs a chosen design may use: what nextpnr routes in about an
/// hour on two cores. Measured on stories260K chips: routed at 35 % (8 lanes, 34 min),
/// the CI's chip at 36 % (router1 in 260 s) and 8 lanes × 8 columns with head pairs
/// at 43.8 % (router1, 3,750–4,600 s at seeds 1 and 3); not routed after 18–37 minutes
/// of router1 at 69 %, 71 % and 73 % (a quarter of the arcs or less), where the router
/// slows to tens of arcs a second; above about 90 % the static placer fails. Between
/// 44 and 69 % nothing has been shown to route, so `--fit` stays on the side it knows.
/// `docs/FPGA.md`, "Fullness".
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
        // A KV bank of 2,560 planes' words of 128 bits: 2K words in 2K × 9, fifteen wide,
        // and 512 in 512 × 36, four wide (yosys: 19 for each of the 8-lane chips' banks).
        assert_eq!(ecp5_memory_brams("kv", 128, 2560), 19);
        // stories260K's weight ROM on 8 lanes × 8 columns of 4-bit weights: 28 columns
        // of 2K × 9 and one of 4K × 4 (yosys: 57).
        assert_eq!(ecp5_memory_brams("weights", 256, 4096), 57);
        // Its token embedding at 8 bits: 512 words of 512 bits (yosys: 15).
        assert_eq!(ecp5_memory_brams("weights", 512, 512), 15);
    }

    /// A stories260K chip of one context × 128 positions, 4-bit weights with one scale
    /// per row, the `fpga` pipeline: lanes, columns (of them in LUTs), requantizers,
    /// head units.
    fn stories260k(lanes: usize, columns: usize, lut_columns: usize, rq: usize) -> DesignShape {
        DesignShape {
            lanes,
            columns,
            lut_columns,
            lut_weight_bits: 4,
            requantizers: rq,
            head_units: (lanes / 8).min(8),
            sigmoid_units: 8,
            pipeline: Pipeline::FPGA,
            vop_queue: false,
            head_pairs: false,
            wide_rom: false,
            memories: vec![],
        }
    }

    #[test]
    fn the_model_reproduces_its_calibration_chips() {
        let pairs = |d: DesignShape| DesignShape {
            head_units: 2,
            head_pairs: true,
            ..d
        };
        let queue = |d: DesignShape| DesignShape {
            vop_queue: true,
            ..d
        };
        let wide = |d: DesignShape| DesignShape {
            wide_rom: true,
            ..d
        };
        // `etch synth OUT --board ulx3s --synth-only --json` of each (docs/FPGA.md,
        // "The resource model"): LUTs, flip-flops, multipliers.
        let chips = [
            (stories260k(8, 1, 0, 8), 28_189, 14_430, 58),
            (stories260k(8, 4, 0, 8), 29_218, 15_621, 82),
            (stories260k(8, 8, 0, 8), 30_583, 17_331, 114),
            (stories260k(16, 2, 0, 8), 36_414, 20_165, 85),
            (stories260k(16, 4, 0, 8), 37_695, 21_765, 117),
            (pairs(stories260k(8, 8, 0, 8)), 33_846, 19_753, 125),
            (queue(pairs(stories260k(8, 8, 0, 8))), 35_822, 20_123, 125),
            (
                wide(queue(pairs(stories260k(8, 8, 0, 8)))),
                36_617,
                20_466,
                125,
            ),
            (stories260k(64, 1, 0, 8), 81_413, 49_965, 135),
            (stories260k(32, 1, 0, 16), 60_952, 32_415, 115),
            (stories260k(32, 4, 1, 8), 63_782, 34_044, 155),
        ];
        let close = |got: u64, measured: u64| got.abs_diff(measured) * 100 < measured;
        for (d, luts, ffs, dsps) in chips {
            let e = estimate(&d);
            assert!(close(e.luts, luts) && close(e.ffs, ffs), "{d:?}: {e:?}");
            assert_eq!(e.dsps, dsps, "{d:?}");
        }
        // A scale per 16 weights on the 32-lane, 16-requantizer chip: 62,287 LUTs.
        let g32 = estimate(&DesignShape {
            memories: vec![("scales", 4 * 32, 8_504 / 16)],
            ..stories260k(32, 1, 0, 16)
        });
        assert!(close(g32.luts, 62_287), "{g32:?}");
        // The chip the ULX3S routes at 59.68 MHz (the last above) fits the model's
        // limits, and its block RAMs are yosys's 174 within one: the 4-bit weight ROM
        // (two banks: 4K words and 16 in logic), the 8-bit token embedding, two KV
        // banks, the tables, the head units' score RAMs, the lanes' activation RAMs.
        let d = DesignShape {
            memories: [
                ("weights", 256, 4096),
                ("weights", 256, 16),
                ("weights", 512, 512),
                ("requant", 22 * 8, 508),
                ("gains", 16 * 8, 88),
                ("imem", 64, 643),
                ("params", 256, 59),
                ("scratchpad", 32, 512),
                ("scratchpad", 32, 512),
                ("rsqrt", 16, 1536),
                ("sine", 16, 2049),
                ("sine", 16, 2049),
                ("exp2", 16, 1024),
                ("log2", 16, 1024),
                ("kv", 128, 2560),
                ("kv", 128, 2560),
            ]
            .into_iter()
            .chain([("scores", 48, 128), ("exp2", 16, 1024), ("recip", 16, 1024)].repeat(2))
            .chain([("sigmoid", 16, 2048)].repeat(8))
            .chain([("activations", 16, 242)].repeat(16))
            .collect(),
            ..wide(queue(pairs(stories260k(8, 8, 0, 8))))
        };
        let e = estimate(&d);
        assert!(e.brams.abs_diff(174) <= 1, "{e:?}");
        within(Target::Ecp5_85k, &e).unwrap();
        assert!(within(Target::Ecp5_25k, &e).unwrap_err().contains("LUTs"));
    }
}
