//! The vector controller: turns one vector operation (a `vop` of the sequencer) into
//! the cycle-by-cycle micro-operations of the lanes, the addresses of the memories,
//! and the control of the head units and special-function units.
//!
//! It is generic: every model-dependent quantity (lane count, head groups, ROM depths,
//! KV row size) arrives on a `cfg_*` input tied to a constant by the generated top
//! level, and every operand of an operation comes from its parameter row — decoded
//! into named wires with the field positions of `etch_firmware::vparams`, the same
//! constants the scheduler packs the rows with — or from the sequencer's registers.
//! Issue timing follows the lane pipeline: memory addresses and the micro-operation
//! in cycle `c`, operand data (`E`) in `c+1`, the AR write of a result in `c+4`.
//!
//! The controller is generated as Verilog rather than written as one rust-hdl block:
//! a state machine of this size reads best as named parts. The module ([`verilog`])
//! is assembled from [`PORTS`], the registers ([`REGISTERS`], each a `_q` register
//! and its `_d` next value), named constants (states, operation kinds, the lanes'
//! operand selects, phases), the datapath that runs whatever the state
//! (`datapath`), and the state machine, one function per operation family (`fsm`).
//! The special-function units it drives (rsqrt, sines and cosines, exp2, log2, a
//! requantizer) are rust-hdl blocks emitted as modules of their own.

mod fsm;

pub use fsm::wide_embedding;

use std::fmt::Write;

use etch_firmware::isa::VKind;
use etch_firmware::vparams::VParams;
use rust_hdl::prelude::*;

use crate::emit::block_verilog;
use crate::lane::select_localparams;
use crate::prim::Requant;
use crate::sfu::{Exp2Unit, RecipUnit, RsqrtUnit, SinCosUnit, TableData};

/// A port's direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// Driven from outside.
    In,
    /// Driven by the controller.
    Out,
}

/// The controller's ports: name, direction, bits. The top level wires them by name.
pub const PORTS: &[(&str, Dir, u32)] = {
    use Dir::*;
    &[
        ("clock", In, 1),
        ("reset", In, 1),
        // The operation: start, kind, parameter row, register operands.
        ("start", In, 1),
        ("kind", In, 8),
        ("prow_in", In, 16),
        ("ra", In, 64),
        ("rb", In, 64),
        ("rc", In, 64),
        ("params", In, 256),
        // Geometry of the chip, tied to constants.
        ("cfg_lg", In, 4),
        ("cfg_plg", In, 2),
        ("cfg_ngroups", In, 8),
        ("cfg_slg", In, 3),
        ("cfg_kvbeats", In, 10),
        // A KV row's planes, the words between planes, the 64-bit beats of a word,
        // head groups per plane (`ChipParams::kv_planes`).
        ("cfg_kvplanes", In, 8),
        ("cfg_kvdepth", In, 20),
        ("cfg_kvbpw", In, 10),
        ("cfg_kvgpp", In, 8),
        // Head pairs (`Datapath::head_pairs`): a head group's queries and outputs
        // take two slots, the second head's in the lanes' second column.
        ("cfg_hpairs", In, 1),
        // log2 of the head size: the adder tree's level that feeds the head units.
        ("cfg_hlg", In, 3),
        ("cfg_deff", In, 9),
        ("cfg_wdepth", In, 24),
        ("cfg_gmask", In, 6),
        ("cfg_widedepth", In, 24),
        ("cfg_qdepth", In, 16),
        ("cfg_gdepth", In, 16),
        // log2 of the lanes per requantizer; the pipeline's shifts of E, A and W.
        ("cfg_sublg", In, 4),
        ("cfg_elat", In, 4),
        ("cfg_alat", In, 4),
        ("cfg_wlat", In, 4),
        // Cycles from a sigmoid unit's input to its output (3 or 4).
        ("cfg_siglat", In, 3),
        // 1 when the scalar units take registered inputs: the sampler's `logit − max`
        // before its temperature multiply, RMSNorm's `sum + eps` before the rsqrt
        // table, RoPE's phase before the sine table, the sampler scan's weight before
        // its mask (one cycle more for each).
        ("cfg_sureg", In, 1),
        // 1 when the head units register `s − max` in pass 2 (their weights one
        // cycle later).
        ("cfg_hdreg", In, 1),
        // E-stage data selected from the lanes and the ROMs.
        ("arsel", In, 16),
        ("qsel_m", In, 16),
        ("qsel_s", In, 6),
        ("fold_w", In, 64),
        ("fold_q", In, 64),
        ("fold_g", In, 64),
        // The adder tree's top, the argmax tree.
        ("tree_top", In, 48),
        ("tree_valid", In, 1),
        ("tree_tag", In, 14),
        ("am_valid", In, 1),
        ("am_val", In, 16),
        ("am_idx", In, 20),
        ("step_data", In, 32),
        ("dma4", In, 64),
        ("kv_beat_data", In, 64),
        ("dma_ack", In, 1),
        ("dma_err", In, 1),
        ("dma_rdata", In, 64),
        // Writes into the activation RAMs still on their way that the operation
        // about to start could read before they land (the top level compares them
        // with its read streams, `rd_*`).
        ("wr_hazard", In, 1),
        // To the sequencer.
        ("busy", Out, 1),
        ("done", Out, 1),
        ("result", Out, 64),
        ("prow", Out, 16),
        // The operation about to start reads its operands as streams (`rd_stream`):
        // from AR slot `rd_base0` (and `rd_base1`), slot `base + j` no earlier than
        // `j` cycles into its first state, and no slot below the base. Registered:
        // they follow `kind_q` and `p_q` (valid from Dispatch on).
        ("rd_stream", Out, 1),
        ("rd_base0", Out, 12),
        ("rd_base1", Out, 12),
        // Memory addresses.
        ("ar_ra0", Out, 12),
        ("ar_ra1", Out, 12),
        ("ar_wa", Out, 12),
        ("wrom_addr", Out, 24),
        ("qrom_addr", Out, 16),
        ("grom_addr", Out, 16),
        ("step_addr", Out, 8),
        // The lanes' micro-operation.
        ("u_a", Out, 3),
        ("u_b", Out, 4),
        ("u_cadd", Out, 1),
        ("u_acc", Out, 2),
        ("u_rq", Out, 1),
        ("u_rqin", Out, 1),
        ("u_msel", Out, 3),
        ("u_raw", Out, 2),
        ("u_am", Out, 1),
        ("u_amfirst", Out, 1),
        ("u_qload", Out, 1),
        // requantize the lanes' second accumulator (head pairs' second head)
        ("u_c1", Out, 1),
        ("u_slot", Out, 12),
        ("u_score", Out, 1),
        ("u_sum", Out, 1),
        ("u_saddr", Out, 14),
        ("u_tbase", Out, 16),
        ("act_mode", Out, 2),
        ("act_n", Out, 9),
        ("act_idx", Out, 8),
        // Which block of lanes requantizes (all of them unless sub_en).
        ("sub_en", Out, 1),
        ("sub", Out, 8),
        ("arsel_lane", Out, 8),
        ("grp4", Out, 6),
        // Broadcast buses.
        ("bc", Out, 16),
        ("bc2", Out, 16),
        ("bmult", Out, 17),
        ("bshift", Out, 6),
        ("tau", Out, 16),
        ("dmaw", Out, 64),
        // Head units (attention).
        ("h_pos", Out, 16),
        ("h_max_clear", Out, 1),
        ("h_combine", Out, 1),
        ("h_r_go", Out, 1),
        ("h_r_addr", Out, 14),
        ("h_r_tbase", Out, 16),
        ("h_sum_clear", Out, 1),
        ("h_recip_go", Out, 1),
        ("score_mult", Out, 16),
        ("score_shift", Out, 6),
        ("radj", Out, 6),
        ("g", Out, 8),
        // KV cache and its row buffer.
        ("kv_raddr", Out, 20),
        ("kv_rsel", Out, 1),
        ("kv_rbank", Out, 2),
        ("kv_beat", Out, 10),
        ("kv_waddr", Out, 20),
        ("kv_woff", Out, 8),
        ("kv_wplane", Out, 8),
        // SwiGLU's sigmoid units.
        ("sgrp", Out, 8),
        ("bcl", Out, 1),
        ("sig_m", Out, 17),
        ("sig_s", Out, 6),
        ("kv_wbank", Out, 2),
        ("kv_we_k", Out, 1),
        ("kv_we_v", Out, 1),
        ("rb_seg_we", Out, 1),
        ("rb_seg", Out, 4),
        ("rb_beat_we", Out, 1),
        ("rb_beat", Out, 10),
        // RoPE registers.
        ("sc_we", Out, 1),
        ("sc_idx", Out, 6),
        ("sc_sin", Out, 16),
        ("sc_cos", Out, 16),
        // DMA and the performance counters.
        ("dma_req", Out, 1),
        ("phase", Out, 4),
        ("dma_we", Out, 1),
        ("dma_addr", Out, 64),
        ("dma_wdata", Out, 64),
    ]
};

/// The controller's ports on a chip of `columns` input columns per lane, with or
/// without the vector-operation queue: [`PORTS`], then the queue's, then the
/// embedding's.
pub fn ports(
    columns: usize,
    queue: bool,
) -> impl Iterator<Item = &'static (&'static str, Dir, u32)> {
    let embedding = if wide_embedding(columns).is_some() {
        WIDE_EMBEDDING_PORTS
    } else {
        BYTE_EMBEDDING_PORTS
    };
    PORTS
        .iter()
        .chain(if queue { QUEUE_PORTS } else { &[] })
        .chain(embedding)
}

/// The ports of the vector-operation queue (`Datapath::vop_queue`): the vector unit
/// is busy (an operation runs or waits), the queue is full.
const QUEUE_PORTS: &[(&str, Dir, u32)] = &[
    ("q_busy", Dir::Out, 1),
    ("q_full", Dir::Out, 1),
    ("indep", Dir::In, 1),
];

/// The port of an embedding that writes several elements per cycle (lanes of 4 or 8
/// columns): the lanes take their column of the weight word instead of the broadcast.
const WIDE_EMBEDDING_PORTS: &[(&str, Dir, u32)] = &[("bcw", Dir::Out, 1)];

/// The port of an embedding that writes an element per cycle (lanes of 1 or 2
/// columns): the weight byte it broadcasts, which the top level selects from the
/// weight word (E timing).
const BYTE_EMBEDDING_PORTS: &[(&str, Dir, u32)] = &[("wsel", Dir::In, 8)];

/// The controller's registers: name and bits. Each is `name_q`, with its next value
/// `name_d` (which holds `name_q` unless the logic says otherwise); all start at 0.
pub const REGISTERS: &[(&str, u32)] = &[
    // The operation.
    ("state", 6),
    ("kind", 8),
    ("ra", 64),
    ("rb", 64),
    ("rc", 64),
    ("p", 256),
    // Counters: inner, outer, auxiliary; elements remaining; ROM address.
    ("ci", 16),
    ("cj", 16),
    ("ck", 16),
    ("rem", 16),
    ("addr", 24),
    // The block of lanes requantizing now.
    ("sub", 8),
    // ROM self-test.
    ("sig", 64),
    ("bist_v", 1),
    ("bist_src", 2),
    // Broadcast multiplier and shift, the result.
    ("bmult", 17),
    ("bshift", 6),
    ("result", 64),
    ("bc_src_e", 2),
    // RoPE angle pipeline: valid and pair index per stage.
    ("sv1", 1),
    ("sv2", 1),
    ("sv3", 1),
    ("sv4", 1),
    ("si1", 6),
    ("si2", 6),
    ("si3", 6),
    ("si4", 6),
    // Sampler: maximum, total weight, threshold, mass, target, draw, running sum.
    ("mx", 16),
    ("tot", 32),
    ("tau", 16),
    ("mass", 32),
    ("target", 32),
    ("rdraw", 32),
    ("cum", 32),
    ("found", 1),
    ("fslot", 12),
    ("arrivals", 16),
    ("rng", 64),
    ("zt", 16),
    ("is_lp", 1),
    ("itemp", 16),
    // Sampler exp stream: valid and element per stage.
    ("xv1", 1),
    ("xv2", 1),
    ("xv3", 1),
    ("xv4", 1),
    ("xv5", 1),
    ("xv6", 1),
    ("xv7", 1),
    ("xe1", 16),
    ("xe2", 16),
    ("xe3", 16),
    ("xe4", 16),
    ("xe5", 16),
    // `logit − max`, RMSNorm's `sum + eps` and RoPE's phase `step · pos`, registered
    // before the temperature multiply, the rsqrt table and the sine table when
    // cfg_sureg is 1.
    ("dx", 17),
    ("rs", 48),
    ("ph", 32),
    ("x", 48),
    // DMA words, KV layer base, attention position groups, the scan, host offset.
    ("wd", 64),
    ("dmaw", 64),
    ("lbase", 20),
    // KV planes: the plane (or beat of a word, or head group of a plane) and the
    // plane's first word.
    ("kvc", 10),
    ("kvp", 20),
    // attention's output: the second head of a pair
    ("oc", 1),
    ("npg", 16),
    ("scan_v", 1),
    ("scan_i", 16),
    // the scan's second stage: the lane's weight registered (with cfg_sureg), then
    // its third: the masked weight registered
    ("scan_v2", 1),
    ("scan_i2", 16),
    ("scan_w", 16),
    ("scan_v3", 1),
    ("scan_i3", 16),
    ("masked", 32),
    ("hoff", 32),
];

/// The registers of the vector-operation queue (`Datapath::vop_queue`), like
/// [`REGISTERS`]: the running operation's independence (`vop …, indep`), and the one
/// entry — independence, valid, kind, operands, parameter row and whether it is being
/// read.
const QUEUE_REGISTERS: &[(&str, u32)] = &[
    ("indep", 1),
    ("pend_indep", 1),
    ("pend_v", 1),
    ("pend_kind", 8),
    ("pend_ra", 64),
    ("pend_rb", 64),
    ("pend_rc", 64),
    ("pend_p", 256),
    ("pend_pload", 1),
];

/// Controller states, grouped by operation family (their codes are their positions).
pub const STATES: &[&str] = &[
    "IDLE", "LOAD", "DISPATCH", // taking an operation
    "BIST_W", "BIST_Q", "BIST_G", "BIST_END", "BIST_RES", // ROM self-test
    "EMB_Q", "EMB_L", // embedding
    "MV", "MV_RQ", // matrix-vector product
    "RN_SQ", "RN_RED", "RN_WAIT", "RN_RSQ", "RN_SC", // RMSNorm
    "SC", "ROPE_A", "ROPE_B", // RoPE
    "KVS_RD", "KVS_WT", "KVS_WR", // KV store
    "AT_Q", "AT_P1", "AT_MX", "AT_P2", "AT_FIN", "AT_RC", "AT_OUT", // attention
    "ADD_S",  // saturating add
    "SWI",    // SwiGLU
    "SA_ARG", "SA_AW", "SA_EX", "SA_NP", "SA_NR", "SA_NW", "SA_DRAW", "SA_COIN", "SA_DP", "SA_DW",
    "SA_SC", "LP_LOG", // sampler, log-probability
    "DO_RD", "DO_LT", "DO_REQ", "DI_REQ", "DI_WR", // vectors to and from host memory
    "KS_RD", "KS_RG", "KS_LT", "KS_REQ", "KS_NEXT", // a context's KV rows out
    "KL_REQ", "KL_BW", "KL_WR", // and in
    "FIN",
];

/// The phase counters' codes (`phase`, PERF_* in `docs/registers.md`).
const PHASES: [(&str, u32); 8] = [
    ("PH_NONE", 0),
    ("PH_MATVEC", 1),
    ("PH_ATTENTION", 2),
    ("PH_SOFTMAX", 3),
    ("PH_NORM", 4),
    ("PH_ELEMENTWISE", 5),
    ("PH_SAMPLING", 6),
    ("PH_DMA", 7),
];

/// The prefix of each parameterized kind's field wires (`mv_cols`, `rn_eps`, …).
fn field_prefix(kind: VKind) -> Option<&'static str> {
    use VKind::*;
    Some(match kind {
        Embed => "emb",
        Matvec => "mv",
        Rmsnorm => "rn",
        Sincos => "sc",
        Rope => "rope",
        Kvstore => "kvs",
        Attn => "at",
        Add => "add",
        Swiglu => "swi",
        Sample => "sa",
        DmaOut => "dv",
        KvSave => "kt",
        Bist | Seed | Logprob | DmaIn | KvLoad => return None,
    })
}

/// The controller's Verilog (module `etch_vctrl`) and its special-function units
/// (`etch_vctrl_rsqrt`, `etch_vctrl_sincos`, `etch_vctrl_exp2`, `etch_vctrl_log2`,
/// `etch_vctrl_requant`, rust-hdl blocks with the model's tables).
pub fn verilog(t: &TableData, columns: usize, queue: bool, skip_blocks: bool) -> (String, String) {
    let mut m = String::new();
    let _ = writeln!(m, "module etch_vctrl (");
    let ports: Vec<String> = ports(columns, queue)
        .map(|&(name, dir, bits)| {
            let d = match dir {
                Dir::In => "input  wire",
                Dir::Out => "output reg ",
            };
            format!("    {d} {} {name}", width(bits))
        })
        .collect();
    let _ = writeln!(m, "{}\n);", ports.join(",\n"));
    m += &constants();
    m += &registers("registers", REGISTERS);
    if queue {
        m += &registers("the vector-operation queue: one entry", QUEUE_REGISTERS);
    }
    m += &param_fields(skip_blocks);
    m += &datapath();
    m += &read_streams();
    if skip_blocks {
        m += "    // the last block of lanes holding an element of this slot, or of the first
    // position group
    wire [7:0] act_last_sub = 8'((act_cnt - 16'(1)) >> rlg);
    wire [7:0] deff_last_sub = 8'((16'(cfg_deff) - 16'(1)) >> rlg);
    // the last block of a matrix's row group: all of them but in its last group
    wire [7:0] mv_blocks = (cj_q == mv_groups - 1) ? mv_last_sub : last_sub;
";
    }
    m += &units();
    m += "\n    // ---- the state machine: outputs and next values\n    always @(*) begin\n";
    let queued: &[(&str, u32)] = if queue { QUEUE_REGISTERS } else { &[] };
    for (name, _) in REGISTERS.iter().chain(queued) {
        let _ = writeln!(m, "        {name}_d = {name}_q;");
    }
    if queue {
        m += &fsm::queue_defaults();
    }
    m += &fsm::defaults();
    m += &fsm::pipelines(columns);
    m += "        case (state_q)\n";
    m += &fsm::arms(columns, queue, skip_blocks);
    m += "            default: ;\n        endcase\n";
    if queue {
        m += &fsm::queue_after_states();
    }
    if wide_embedding(columns).is_some() {
        m += "        // the embedding's columns go to their lane groups (E timing)\n        bcw = bc_src_e_q == BC_WEIGHT;\n";
    }
    m += &fsm::after_states();
    m += "    end\nendmodule\n";
    (m, sfu_modules(t))
}

/// The operations that read their operands as streams, and the parameter fields
/// where each stream starts: the matrix's input (`C` elements per cycle, at most a
/// slot), RMSNorm's input (a slot per cycle, read again for the scale), RoPE's vector
/// (a slot per two or more cycles), the key and then the value slots of a KV store,
/// both vectors of an add (a slot per cycle), SwiGLU's `h1` (`S` elements per cycle)
/// and `h3` (behind it), the sampler's logits (a slot per cycle for the argmax;
/// whatever it reads after that, it reads long after any write on its way has
/// landed). Each begins in the operation's first state, the cycle after Dispatch, and
/// never reads below its base. Any other kind waits for every write on its way.
const READ_STREAMS: &[(&[VKind], &str, &str)] = &[
    (&[VKind::Matvec], "input", "input"),
    (&[VKind::Rmsnorm], "input", "input"),
    (&[VKind::Rope], "slot", "slot"),
    (&[VKind::Kvstore], "key_slot", "value_slot"),
    (&[VKind::Add], "x", "y"),
    (&[VKind::Swiglu], "h1", "h3"),
    (&[VKind::Sample, VKind::Logprob], "logits", "logits"),
];

/// The read streams of the operation about to start (`rd_*`), registered: computed
/// from the operation's next kind and parameter row (`kind_d`, `p_d`), so that in
/// Dispatch they come from flip-flops and the write-hazard comparison does not sit
/// behind the kind's decode and the field multiplexer.
fn read_streams() -> String {
    let field = |kind: VKind, name: &str| {
        let f = VParams::fields(kind)
            .iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("{kind:?} has no field {name}"));
        format!("12'(p_d[{}:{}])", f.offset + f.width - 1, f.offset)
    };
    let mut s = String::from(
        "
    // ---- the operation about to start: where its read streams begin (registered)
    reg rd_stream_d;
    reg [11:0] rd_base0_d, rd_base1_d;
    always @(*) begin
        rd_stream_d = 1'b1;
        rd_base0_d = 0;
        rd_base1_d = 0;
        case (kind_d)
",
    );
    for (kinds, f0, f1) in READ_STREAMS {
        let labels: Vec<String> = kinds
            .iter()
            .map(|k| format!("VK_{}", k.name().to_uppercase()))
            .collect();
        let _ = writeln!(
            s,
            "            {}: begin rd_base0_d = {}; rd_base1_d = {}; end",
            labels.join(", "),
            field(kinds[0], f0),
            field(kinds[0], f1)
        );
    }
    s += "            default: rd_stream_d = 1'b0;
        endcase
    end
    always @(posedge clock) begin
        rd_stream <= rd_stream_d;
        rd_base0 <= rd_base0_d;
        rd_base1 <= rd_base1_d;
    end
";
    s
}

/// `[n-1:0]`, or nothing for one bit.
fn width(bits: u32) -> String {
    if bits == 1 {
        "      ".to_string()
    } else {
        format!("[{}:0]", bits - 1)
    }
}

/// Named constants: states, kinds, lane operand selects, phases.
fn constants() -> String {
    let mut s = String::from(
        "\n    // Named constants, some kept for the reader of waveforms only.\n    /* verilator lint_off UNUSEDPARAM */\n    // ---- states\n",
    );
    for (i, name) in STATES.iter().enumerate() {
        let _ = writeln!(s, "    localparam [5:0] S_{name} = 6'd{i};");
    }
    s += "    // ---- vector operation kinds (etch_firmware::isa::VKind)\n";
    for k in VKind::ALL {
        let _ = writeln!(
            s,
            "    localparam [7:0] VK_{} = 8'd{};",
            k.name().to_uppercase(),
            k as u8
        );
    }
    s += "    // ---- lane micro-operation selects (etch_hdl::lane)\n";
    s += &select_localparams();
    s += "    // active lanes: the first act_n, lane act_idx, four lanes from 4*act_idx,\n";
    s += "    // the sigmoid group act_idx\n";
    for (i, name) in ["ACT_FIRST_N", "ACT_ONE", "ACT_GROUP4", "ACT_SIG_GROUP"]
        .iter()
        .enumerate()
    {
        let _ = writeln!(s, "    localparam [1:0] {name} = 2'd{i};");
    }
    s += "    // broadcast sources (E stage): read port 0, the weight byte, the sigmoid\n";
    for (i, name) in ["BC_RD0", "BC_WEIGHT", "BC_SIGMOID"].iter().enumerate() {
        let _ = writeln!(s, "    localparam [1:0] {name} = 2'd{i};");
    }
    s += "    // ROM self-test sources\n";
    for (i, name) in ["BIST_WEIGHTS", "BIST_REQUANT", "BIST_GAINS"]
        .iter()
        .enumerate()
    {
        let _ = writeln!(s, "    localparam [1:0] {name} = 2'd{i};");
    }
    s += "    // what the vector unit is doing, for the performance counters\n";
    for (name, v) in PHASES {
        let _ = writeln!(s, "    localparam [3:0] {name} = 4'd{v};");
    }
    s += "    /* verilator lint_on UNUSEDPARAM */\n";
    s
}

/// `name_q` registers (initially 0) clocked from `name_d`.
fn registers(title: &str, list: &[(&str, u32)]) -> String {
    let mut s = format!("\n    // ---- {title}\n");
    for (name, bits) in list {
        let w = width(*bits);
        let _ = writeln!(s, "    reg {w} {name}_q = 0;");
        let _ = writeln!(s, "    reg {w} {name}_d;");
    }
    s += "    always @(posedge clock) begin\n";
    for (name, _) in list {
        let _ = writeln!(s, "        {name}_q <= {name}_d;");
    }
    s += "    end\n";
    s
}

/// The parameter row's fields as named wires, positions from `etch_firmware::vparams`.
fn param_fields(skip_blocks: bool) -> String {
    let mut s = String::from(
        "\n    // ---- the parameter row's fields (etch_firmware::vparams)\n    /* verilator lint_off UNUSEDSIGNAL */\n",
    );
    for kind in VKind::ALL {
        let Some(prefix) = field_prefix(kind) else {
            continue;
        };
        for f in VParams::fields(kind) {
            // only a chip that skips requantizer blocks reads a matrix's last block
            if f.name == "last_sub" && !skip_blocks {
                continue;
            }
            let _ = writeln!(
                s,
                "    wire {} {prefix}_{} = p_q[{}:{}];",
                width(f.width),
                f.name,
                f.offset + f.width - 1,
                f.offset
            );
        }
    }
    s += "    /* verilator lint_on UNUSEDSIGNAL */\n";
    s
}

/// The datapath that runs whatever the state: lane geometry, the scalar units'
/// inputs, the sampler's arithmetic.
fn datapath() -> String {
    "
    // ---- lane geometry
    wire [15:0] lanes = 16'(1) << cfg_lg;
    wire [15:0] lmask = lanes - 1;
    wire [15:0] pmask = (16'(1) << cfg_plg) - 1;
    wire [15:0] smask = (16'(1) << cfg_slg) - 1;
    wire [15:0] pos16 = ra_q[15:0];
    // lanes active in this slot of a vector of rem_q elements
    wire [15:0] act_cnt = rem_q > lanes ? lanes : rem_q;
    // the last block of lanes to requantize (0 with a requantizer per lane)
    wire [7:0] last_sub = 8'((16'(1) << 16'(cfg_sublg)) - 16'(1));
    // log2 of the requantizers: the requantization and gain ROMs hold one word per
    // block of that many lanes
    wire [3:0] rlg = cfg_lg - cfg_sublg;
    // SwiGLU streams groups of sigmoid units; its lanes follow the units' latency
    // (cfg_siglat cycles) behind
    wire [15:0] e_lead = state_q == S_SWI ? ci_q << cfg_slg : ci_q;
    wire [15:0] e_follow = (ci_q - 16'(cfg_siglat)) << cfg_slg;

    // ---- scalar units' inputs
    wire [47:0] rsqrt_s = tree_top + rn_eps;
    wire [31:0] mul_step_p = 32'({1'b0, step_data} * {1'b0, pos16});
    wire [15:0] rsqrt_r, sincos_sin, sincos_cos, sexp_p, slog_log2, srq_y;
    wire [5:0] rsqrt_shift;

    // ---- sampler: x = (logit - max) * inv_temp, z = requant(x, temp_mult, temp_shift)
    wire [16:0] dsx = {arsel[15], arsel} - {mx_q[15], mx_q};
    wire [16:0] dsx_m = cfg_sureg ? dx_q : dsx;
    wire signed [34:0] mul_temp_full = $signed({dsx_m[16], dsx_m}) * $signed({1'b0, itemp_q});
    // the exp stream's stages, one later when `logit − max` is registered
    wire xv_tot = cfg_sureg ? xv7_q : xv6_q;
    wire xv_z = cfg_sureg ? xv5_q : xv4_q;
    wire [15:0] xe_z = cfg_sureg ? xe5_q : xe4_q;
    wire [15:0] su_lat = 16'(cfg_sureg);
    wire [47:0] mul_temp_p = {{13{mul_temp_full[34]}}, mul_temp_full};
    wire [47:0] mul_topp_p = 48'({1'b0, tot_q} * {1'b0, rb_q[15:0]});
    // xorshift64 (13, 7, 17), and a coin in [0, mass) from its top 24 bits: the
    // product registered every cycle (its multipliers and their sum in a cycle of their
    // own), taken by S_SA_COIN a cycle after S_SA_DRAW, when `rng` and `mass` are steady
    wire [63:0] rng_t1 = rng_q ^ (rng_q << 13);
    wire [63:0] rng_t2 = rng_t1 ^ (rng_t1 >> 7);
    wire [63:0] rng_next = rng_t2 ^ (rng_t2 << 17);
    wire [55:0] mul_coin_p = 56'({1'b0, rng_next[63:40]} * {1'b0, mass_q});
    reg [31:0] coin_q;
    always @(posedge clock) coin_q <= mul_coin_p[55:24];
    // the scan: the masked weight of the lane read last cycle, or (cfg_sureg) of the
    // lane registered a cycle before that, its index and validity one stage later
    wire [15:0] scan_w = cfg_sureg ? scan_w_q : arsel;
    wire [15:0] scan_wi = cfg_sureg ? scan_i2_q : scan_i_q;
    wire [31:0] masked_now = (scan_w >= tau_q) & (((16'(fslot_q) << cfg_lg) + scan_wi) < sa_vocab)
        ? 32'(scan_w) : 0;
    wire scan_m_v = cfg_sureg ? scan_v3_q : scan_v2_q;
    wire [15:0] scan_m_i = cfg_sureg ? scan_i3_q : scan_i2_q;
    wire [31:0] cum_next = cum_q + tree_top[31:0];

    // Inputs and bits the controller does not use: the argmax's valid bit (its value
    // is read at a fixed time), the tree tag's high bits (slot tags fit 12), the
    // products' low bits.
    /* verilator lint_off UNUSEDSIGNAL */
    wire unused = &{1'b0, am_valid, tree_tag[13:12], act_cnt[15:9], mul_topp_p[15:0],
        mul_coin_p[23:0]};
    /* verilator lint_on UNUSEDSIGNAL */
"
    .to_string()
}

/// The special-function units' instances.
fn units() -> String {
    "
    // ---- special-function units
    etch_vctrl_rsqrt rsqrt (.clock(clock), .s(cfg_sureg ? rs_q : rsqrt_s), .r(rsqrt_r),
        .shift(rsqrt_shift));
    etch_vctrl_sincos sincos (.clock(clock), .phase(cfg_sureg ? ph_q : mul_step_p),
        .sin(sincos_sin), .cos(sincos_cos));
    etch_vctrl_requant srq (.clock(clock), .x(x_q), .m(17'(sa_temp_mult)),
        .s(sa_temp_shift), .y(srq_y));
    etch_vctrl_exp2 sexp (.clock(clock), .z(srq_y), .p(sexp_p));
    /* verilator lint_off PINCONNECTEMPTY */
    etch_vctrl_log2 slog (.clock(clock), .p(tot_q), .r(), .shift(), .log2(slog_log2));
    /* verilator lint_on PINCONNECTEMPTY */
"
    .to_string()
}

/// The special-function units as modules (rust-hdl blocks with the model's tables).
fn sfu_modules(t: &TableData) -> String {
    let mut rsqrt = RsqrtUnit::new(t);
    rsqrt.connect_all();
    let mut sincos = SinCosUnit::new(t);
    sincos.connect_all();
    let mut exp2 = Exp2Unit::new(t);
    exp2.connect_all();
    let mut log2 = RecipUnit::log2(t);
    log2.connect_all();
    let mut requant = Requant::<48>::default();
    requant.connect_all();
    [
        block_verilog(&rsqrt, "etch_vctrl_rsqrt"),
        block_verilog(&sincos, "etch_vctrl_sincos"),
        block_verilog(&exp2, "etch_vctrl_exp2"),
        block_verilog(&log2, "etch_vctrl_log2"),
        block_verilog(&requant, "etch_vctrl_requant"),
    ]
    .join("\n")
}
