//! How a chip's datapath is built: how many requantizers the lanes share and where
//! the pipeline registers sit. Neither changes what the chip computes — the golden
//! model knows nothing of them — only its clock and its cycles.

/// Pipeline registers of the datapath. Each cuts a combinational path that a clock
/// cycle must otherwise cover, at the price of one cycle of latency on every
/// vector operation that waits for it (`docs/FPGA.md`, "What limits the clock").
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Pipeline {
    /// A register on every input of the lanes: memory data, broadcast buses and the
    /// micro-operation, so that block-RAM outputs and broadcast wires end in a
    /// flip-flop instead of running on into the multiplier.
    pub lane_inputs: bool,
    /// A register after the lanes' operand selects (the multiplier's input register).
    pub operands: bool,
    /// A register after the multiplier (its output register), before the addend.
    pub product: bool,
    /// A register between the accumulators and the requantizers: the requantizer
    /// starts from registered operands, not from the accumulator's adder.
    pub requant_input: bool,
    /// The requantizer's shift and its rounding and saturation in separate cycles.
    pub requant_shift: bool,
}

impl Pipeline {
    /// No registers beyond the architecture's own: the fewest cycles, for a clock
    /// that a custom chip's short wires allow.
    pub const ASIC: Pipeline = Pipeline {
        lane_inputs: false,
        operands: false,
        product: false,
        requant_input: false,
        requant_shift: false,
    };
    /// Every register: for an FPGA's slow block-RAM outputs, long routes and DSP blocks.
    pub const FPGA: Pipeline = Pipeline {
        lane_inputs: true,
        operands: true,
        product: true,
        requant_input: true,
        requant_shift: true,
    };

    /// Cycles by which the lanes' E stage (operands meet the micro-operation) comes
    /// later than without pipeline registers.
    pub fn e_shift(&self) -> usize {
        self.lane_inputs as usize
    }

    /// Cycles by which the accumulators (and the adder tree) come later.
    pub fn a_shift(&self) -> usize {
        self.e_shift() + self.operands as usize + self.product as usize
    }

    /// Cycles by which the writes of results into the activation RAM come later.
    pub fn w_shift(&self) -> usize {
        self.a_shift() + self.requant_input as usize + self.requant_shift as usize
    }

    /// Cycles from a sigmoid unit's input (an element of `h1` read from a lane's
    /// activation RAM) to its `σ`: 3, and one more with the operand register, which
    /// also stands between the lane's read and the unit's pre-shift multiplier.
    pub fn sigmoid_latency(&self) -> usize {
        3 + self.operands as usize
    }

    /// Whether the vector controller's scalar units (the sampler's temperature
    /// multiply, the rsqrt and sine tables, the sampler scan's mask) take registered
    /// inputs, one cycle later:
    /// with the operand register.
    pub fn scalar_inputs_registered(&self) -> bool {
        self.operands
    }

    /// Whether the attention head units register pass 2's difference `s − max`
    /// before their requantizer's multiply, one cycle later: with the requantizer's
    /// input register, whose job this is for the head units' requantizers.
    pub fn score_difference_registered(&self) -> bool {
        self.requant_input
    }

    /// Whether the sequencer's `muli` registers its operands (the register file's
    /// output and the immediate) before its 32 × 32 multiply, a cycle more per `muli`:
    /// with the operand register, whose job this is for the lanes' multipliers.
    pub fn scalar_product_registered(&self) -> bool {
        self.operands
    }

    /// The name of a preset (`asic`, `fpga`), or `custom`.
    pub fn name(&self) -> &'static str {
        match *self {
            Pipeline::ASIC => "asic",
            Pipeline::FPGA => "fpga",
            _ => "custom",
        }
    }
}

impl std::str::FromStr for Pipeline {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "asic" => Ok(Pipeline::ASIC),
            "fpga" => Ok(Pipeline::FPGA),
            _ => Err(format!("unknown pipeline {s:?}: choose asic or fpga")),
        }
    }
}

/// The datapath of a built chip, as its manifest records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Datapath {
    /// Requantizers the lanes share: lane `i` uses requantizer `i % requantizers`,
    /// and an operation that requantizes every lane takes `lanes / requantizers`
    /// cycles per slot.
    pub requantizers: usize,
    /// Pipeline registers.
    pub pipeline: Pipeline,
    /// Input columns a lane takes per cycle in a matrix-vector product: `columns`
    /// products (its row's weights for `columns` consecutive input elements, each with
    /// its element) summed into the accumulator. 1, 2, 4 or 8; the weight ROM's word is
    /// `columns` times as wide. Absent in manifests of chips with one column.
    #[serde(default = "one_column", skip_serializing_if = "is_one_column")]
    pub columns: usize,
    /// A one-entry queue of vector operations: the sequencer hands the vector unit its
    /// next operation while the current one runs (and waits for the vector unit only
    /// before an instruction that reads or writes what it shares with it), and the
    /// controller starts the queued operation from its finishing state, its parameter
    /// row already read. Absent in manifests of chips without it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub vop_queue: bool,
    /// Of each lane's columns 1.., how many (the last ones) multiply in logic —
    /// shifts and adds — instead of in a hard multiplier (an FPGA's DSP block): the
    /// product is the same, it costs LUTs instead of a DSP. Column 0, the lane's
    /// general-purpose multiplier, always has its own. Absent in manifests of chips
    /// without any.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub lut_columns: usize,
    /// Attention on two heads at once: each lane has a second query register,
    /// multiplier and accumulator, a second adder tree sums their products and a
    /// second set of head units takes the sums, so a head group is twice the heads its
    /// lanes span. The two heads read the same key/value head (grouped-query attention
    /// with at least twice a head group's heads per key/value head), so the key/value
    /// banks keep their width. Absent in manifests of chips without it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub head_pairs: bool,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

fn one_column() -> usize {
    1
}

fn is_one_column(c: &usize) -> bool {
    *c == 1
}

impl Datapath {
    /// One requantizer per lane, no pipeline registers, one column: every chip before
    /// the datapath was configurable.
    pub fn per_lane(lanes: usize) -> Self {
        Datapath {
            requantizers: lanes,
            pipeline: Pipeline::ASIC,
            columns: 1,
            vop_queue: false,
            lut_columns: 0,
            head_pairs: false,
        }
    }

    /// Multipliers of the lanes' matrix-vector products (products per cycle).
    pub fn lane_multipliers(&self, lanes: usize) -> usize {
        lanes * self.columns
    }

    /// Of [`Datapath::lane_multipliers`], those with a hard multiplier of their own.
    pub fn lane_hard_multipliers(&self, lanes: usize) -> usize {
        let in_luts = self.lut_columns.min(self.columns.saturating_sub(1));
        lanes * (self.columns - in_luts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shifts_add_up_stage_by_stage() {
        assert_eq!(
            (
                Pipeline::ASIC.e_shift(),
                Pipeline::ASIC.a_shift(),
                Pipeline::ASIC.w_shift()
            ),
            (0, 0, 0)
        );
        assert_eq!(
            (
                Pipeline::FPGA.e_shift(),
                Pipeline::FPGA.a_shift(),
                Pipeline::FPGA.w_shift()
            ),
            (1, 3, 5)
        );
        let p = Pipeline {
            product: true,
            ..Pipeline::ASIC
        };
        assert_eq!(
            (p.e_shift(), p.a_shift(), p.w_shift(), p.name()),
            (0, 1, 1, "custom")
        );
        assert_eq!("fpga".parse::<Pipeline>(), Ok(Pipeline::FPGA));
        // Products per cycle, and those with a hard multiplier of their own.
        let d = Datapath {
            columns: 4,
            lut_columns: 1,
            ..Datapath::per_lane(32)
        };
        assert_eq!(
            (d.lane_multipliers(32), d.lane_hard_multipliers(32)),
            (128, 96)
        );
        assert!("fast"
            .parse::<Pipeline>()
            .unwrap_err()
            .contains("asic or fpga"));
    }
}
