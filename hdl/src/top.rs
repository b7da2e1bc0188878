//! The top level of a generated chip: `etch_chip`, structural Verilog that instantiates
//! the rust-hdl blocks (sequencer, host interface, vector controller, lanes, head units)
//! for one model and wires them to the memories, the adder and argmax trees, the KV
//! banks and the static permutations that depend on the model's shapes (which lane
//! reads which key element, which head a lane belongs to, RoPE partners).
//!
//! Everything here is wiring, registers and adders; the arithmetic lives in the
//! blocks. The generated text is written for people reading waveforms: one section
//! per structure, names after the model (`lane_rd0_17`, `kv_k_bank0`, `tree_l3_5`).

use std::fmt::Write;

use etch_contract::{Datapath, Pipeline};

use crate::error::HdlError;
use crate::prim::{rom_banks, rom_verilog};
use crate::sfu::TableData;

/// Everything that shapes one chip.
#[derive(Clone, Debug)]
pub struct ChipParams {
    /// MAC lanes (a power of two, at least 8).
    pub lanes: usize,
    /// Bits per weight in the weight ROM: 8, or 4 (packed, sign-extended at the lanes).
    pub weight_bits: usize,
    /// Weight ROM words per group scale (a group of 8, 16, 32 or 64 weights over the
    /// datapath's columns; 4-bit weights only), or 0 without group scales. With them,
    /// the scale ROM's word `a / weight_group` holds a 4-bit unsigned scale per lane
    /// for weight word `a`, and each lane multiplies its weights by `code · scale`
    /// (within int8); a matrix-vector product skips to the next group boundary after
    /// each row group's last word.
    pub weight_group: usize,
    /// Words of the wide weight ROM (8-bit codes, `8 · lanes · columns` bits) of a 4-bit chip
    /// whose listed matrices are kept at 8 bits, or 0. Weight address bit 23 selects
    /// it; its words are read as 8-bit weights, without group scales.
    pub wide_depth: usize,
    /// Residual width.
    pub dim: usize,
    /// Query heads.
    pub n_heads: usize,
    /// Key/value heads.
    pub n_kv_heads: usize,
    /// Layers.
    pub n_layers: usize,
    /// Positions per context.
    pub max_seq: usize,
    /// Context slots.
    pub contexts: usize,
    /// Activation RAM slots per lane.
    pub ar_depth: usize,
    /// Weight ROM words (each `weight_bits · lanes · columns` bits).
    pub wrom_depth: usize,
    /// Requantization ROM words (each `22 · requantizers` bits: a row group's
    /// words are `lanes / requantizers` consecutive words).
    pub qrom_depth: usize,
    /// Gain ROM words (each `16 · requantizers` bits, like the requantization ROM).
    pub grom_depth: usize,
    /// Firmware instructions.
    pub imem_depth: usize,
    /// Parameter rows.
    pub param_depth: usize,
    /// BAR0 identity words 0..24 (ID, VERSION, FW_VERSION, CONFIG0..3, reserved,
    /// MODEL_ID0..7, FW_HASH0..7).
    pub ident: [u32; 24],
    /// Special-function tables.
    pub tables: TableData,
    /// Shared requantizers and pipeline registers.
    pub datapath: Datapath,
    /// Where the key and the value rows start in the fused q/k/v projection's output
    /// (elements from its first slot): their lane offsets are the only shifts the KV
    /// row buffer needs.
    pub kv_rows: [usize; 2],
}

/// The lane counts the wiring supports: a power of two from 8 to 256.
pub fn check_lanes(lanes: usize) -> Result<(), HdlError> {
    if lanes.is_power_of_two() && (8..=256).contains(&lanes) {
        Ok(())
    } else {
        Err(HdlError::Params(format!(
            "lanes must be a power of two from 8 to 256, not {lanes}"
        )))
    }
}

/// Whether `lanes` lanes can carry a model of width `dim` with `n_heads` heads: a
/// power of two from 8 to 256, a multiple of the head size (itself a power of two),
/// dividing `dim` or a multiple of it, and at most 4 attention positions per cycle.
pub fn check_lanes_for_shape(lanes: usize, dim: usize, n_heads: usize) -> Result<(), HdlError> {
    let l = lanes;
    check_lanes(l)?;
    let hs = dim.checked_div(n_heads).unwrap_or(0);
    if hs == 0 || l % hs != 0 || !hs.is_power_of_two() {
        return Err(HdlError::Params(format!(
            "lanes ({l}) must be a multiple of the head size ({hs}), a power of two"
        )));
    }
    if dim % l != 0 && l % dim != 0 {
        return Err(HdlError::Params(format!(
            "lanes ({l}) must divide dim ({dim}) or be a multiple of it"
        )));
    }
    let positions = (l / dim).max(1);
    if positions > 4 {
        return Err(HdlError::Params(format!(
            "lanes ({l}) give {positions} attention positions per cycle; at most 4 are supported"
        )));
    }
    Ok(())
}

/// The most lanes, at most `preferred`, that carry a model of width `dim` with
/// `n_heads` heads (`etch build` without `--lanes`), or the reason none does.
pub fn default_lanes(preferred: usize, dim: usize, n_heads: usize) -> Result<usize, HdlError> {
    let mut l = preferred.next_power_of_two().min(256);
    if l > preferred {
        l /= 2;
    }
    while l >= 8 {
        if check_lanes_for_shape(l, dim, n_heads).is_ok() {
            return Ok(l);
        }
        l /= 2;
    }
    // None fits: the reason the smallest gives.
    check_lanes_for_shape(8, dim, n_heads).map(|()| 8)
}

/// The column counts the lanes support: 1, 2, 4 or 8 input columns per cycle (at most
/// the smallest weight group, 8, so that a word's weights share one group scale).
pub fn check_columns(columns: usize) -> Result<(), HdlError> {
    if columns.is_power_of_two() && columns <= 8 {
        Ok(())
    } else {
        Err(HdlError::Params(format!(
            "columns must be 1, 2, 4 or 8, not {columns}"
        )))
    }
}

/// How many of a lane's `columns` may multiply in logic: any of columns 1.. (column
/// 0 is the lane's general-purpose multiplier, 18 × 18, and keeps its own).
pub fn check_lut_columns(columns: usize, lut_columns: usize) -> Result<(), HdlError> {
    if lut_columns < columns.max(1) {
        Ok(())
    } else {
        Err(HdlError::Params(format!(
            "at most {} of {columns} column{} can multiply in logic (column 0 keeps its \
             multiplier), not {lut_columns}",
            columns - 1,
            if columns == 1 { "" } else { "s" }
        )))
    }
}

/// The requantizer counts the wiring supports for `lanes` lanes: a power of two from
/// the sigmoid units (`min(lanes, 8)`: SwiGLU requantizes one group of them per cycle)
/// to the lanes.
pub fn check_requantizers(lanes: usize, requantizers: usize) -> Result<(), HdlError> {
    let su = lanes.min(8);
    if requantizers.is_power_of_two() && (su..=lanes).contains(&requantizers) {
        Ok(())
    } else {
        Err(HdlError::Params(format!(
            "requantizers must be a power of two from {su} to the lanes ({lanes}), not {requantizers}"
        )))
    }
}

impl ChipParams {
    /// Width of one attention head.
    pub fn head_size(&self) -> usize {
        self.dim / self.n_heads
    }
    /// Width of one key or value row.
    pub fn kv_dim(&self) -> usize {
        self.n_kv_heads * self.head_size()
    }
    /// Attention positions processed in parallel (`P`).
    pub fn positions(&self) -> usize {
        (self.lanes / self.dim).max(1)
    }
    /// Lanes of one position group (`min(L, dim)`).
    pub fn deff(&self) -> usize {
        self.lanes.min(self.dim)
    }
    /// Heads per head group (`G`).
    pub fn heads_per_group(&self) -> usize {
        self.deff() / self.head_size()
    }
    /// Heads a lane computes at once (`H`): 2 with head pairs
    /// ([`Datapath::head_pairs`](etch_contract::Datapath::head_pairs)), else 1.
    pub fn head_columns(&self) -> usize {
        if self.datapath.head_pairs {
            2
        } else {
            1
        }
    }
    /// Heads one head group computes: those its lanes span, times the heads a lane
    /// computes at once (`G · H`).
    pub fn group_heads(&self) -> usize {
        self.heads_per_group() * self.head_columns()
    }
    /// Head groups per layer.
    pub fn head_groups(&self) -> usize {
        self.n_heads / self.group_heads()
    }
    /// AR slots a KV row spans (it may start mid-slot in the fused projection).
    pub fn kv_segments(&self) -> usize {
        self.kv_rows
            .iter()
            .map(|r| (r % self.lanes + self.kv_dim()).div_ceil(self.lanes))
            .max()
            .unwrap_or(1)
    }
    /// The lane offsets at which key and value rows start in their slots, and 0
    /// (rows loaded from host memory start there).
    pub fn kv_offsets(&self) -> Vec<usize> {
        let mut o: Vec<usize> = self.kv_rows.iter().map(|r| r % self.lanes).collect();
        o.push(0);
        o.sort_unstable();
        o.dedup();
        o
    }
    /// Significant bits of a matrix-vector weight as the lanes receive it: a 4-bit
    /// code when every matrix has 4-bit weights and one scale per row (the scale
    /// applies in the requantizer), else 8 (8-bit weights, or a code times its group
    /// scale, or a matrix kept at 8 bits in the wide ROM). A column that multiplies
    /// in logic needs one partial product per bit.
    pub fn matvec_weight_bits(&self) -> usize {
        if self.weight_bits == 4 && self.weight_group == 0 && self.wide_depth == 0 {
            4
        } else {
            8
        }
    }
    /// Sigmoid units: SwiGLU elements per cycle.
    pub fn sigmoid_units(&self) -> usize {
        self.lanes.min(8)
    }
    /// 64-bit beats per KV row.
    pub fn kv_beats(&self) -> usize {
        self.kv_dim().div_ceil(4)
    }
    /// Rows per KV bank per (context, layer).
    pub fn rows_per_layer(&self) -> usize {
        self.max_seq.div_ceil(self.positions())
    }
    /// Rows per KV bank.
    pub fn kv_depth(&self) -> usize {
        self.contexts * self.n_layers * self.rows_per_layer()
    }
    /// Key/value heads in one word of a KV bank: those one head group reads. A chip
    /// whose head group is every head keeps the whole row in a word; one with fewer
    /// lanes than the model's width reads one or a few key/value heads per position,
    /// so a row is stored as [`kv_planes`](Self::kv_planes) words of one plane each,
    /// and a lane takes its element from a fixed place in the word. A shape whose
    /// head groups straddle key/value heads, or whose word would not be a whole number
    /// of 64-bit beats, keeps whole rows.
    pub fn kv_heads_per_word(&self) -> usize {
        let (g, m, kvh) = (
            self.group_heads(),
            self.n_heads / self.n_kv_heads,
            self.n_kv_heads,
        );
        let k = if g % m == 0 {
            g / m
        } else if m % g == 0 {
            1
        } else {
            kvh
        };
        if kvh % k == 0 && (k * self.head_size()) % 4 == 0 {
            k
        } else {
            kvh
        }
    }
    /// Words of one KV row, each in its own plane of the bank (`kv_depth` words apart).
    pub fn kv_planes(&self) -> usize {
        self.n_kv_heads / self.kv_heads_per_word()
    }
    /// Bits of a KV bank's word.
    pub fn kv_word_bits(&self) -> usize {
        self.kv_heads_per_word() * self.head_size() * 16
    }
    /// Words per KV bank: every plane of every row.
    pub fn kv_words(&self) -> usize {
        self.kv_planes() * self.kv_depth()
    }
    /// Attention head units (`P · G · H`).
    pub fn head_units(&self) -> usize {
        self.positions() * self.group_heads()
    }
    /// Scale ROM words (0 without group scales).
    pub fn srom_depth(&self) -> usize {
        self.wrom_depth.checked_div(self.weight_group).unwrap_or(0)
    }
    /// The chip's memories that block RAM can hold: `(name, bits per word, words)`,
    /// one entry per instance and per bank of a ROM ([`rom_banks`]), and the lanes'
    /// activation RAMs, two copies each (two read ports).
    pub fn memories(&self) -> Vec<(&'static str, usize, usize)> {
        let t = &self.tables;
        let rq = self.datapath.requantizers;
        let mut m: Vec<(&'static str, usize, usize)> = rom_banks(self.wrom_depth.max(1))
            .into_iter()
            .map(|d| {
                (
                    "weights",
                    self.weight_bits * self.lanes * self.datapath.columns,
                    d,
                )
            })
            .collect();
        m.extend([
            ("requant", 22 * rq, self.qrom_depth.max(1)),
            ("gains", 16 * rq, self.grom_depth.max(1)),
            ("imem", 64, self.imem_depth.max(1)),
            ("params", 256, self.param_depth.max(1)),
            ("scratchpad", 32, 512),
            ("scratchpad", 32, 512),
            ("rsqrt", 16, t.rsqrt.len()),
            ("sine", 16, t.sine.len()),
            ("sine", 16, t.sine.len()),
            ("exp2", 16, t.exp2.len()),
            ("log2", 16, t.log2.len()),
        ]);
        if self.weight_group != 0 {
            for d in rom_banks(self.srom_depth()) {
                m.push(("scales", 4 * self.lanes, d));
            }
        }
        if self.wide_depth != 0 {
            for d in rom_banks(self.wide_depth) {
                m.push(("weights", 8 * self.lanes * self.datapath.columns, d));
            }
        }
        for _ in 0..2 * self.positions() {
            m.push(("kv", self.kv_word_bits(), self.kv_words().max(1)));
        }
        for _ in 0..self.head_units() {
            m.push(("scores", 48, self.rows_per_layer()));
            m.push(("exp2", 16, t.exp2.len()));
            m.push(("recip", 16, t.recip.len()));
        }
        for _ in 0..self.sigmoid_units() {
            m.push(("sigmoid", 16, t.sigmoid.len()));
        }
        for _ in 0..2 * self.lanes {
            m.push(("activations", 16, self.ar_depth.max(1)));
        }
        m
    }
    /// Checks the structural constraints the wiring relies on.
    pub fn validate(&self) -> Result<(), HdlError> {
        let l = self.lanes;
        if !matches!(self.weight_bits, 4 | 8) {
            return Err(HdlError::Params(format!(
                "weights must be 4 or 8 bits wide, not {}",
                self.weight_bits
            )));
        }
        check_columns(self.datapath.columns)?;
        check_lut_columns(self.datapath.columns, self.datapath.lut_columns)?;
        match (self.weight_bits, self.weight_group * self.datapath.columns) {
            (_, 0) | (4, 8 | 16 | 32 | 64) => {}
            (bits, group) => {
                return Err(HdlError::Params(format!(
                    "group scales of {group} weights need 4-bit weights and a group of 8, \
                     16, 32 or 64 (weights are {bits} bits)"
                )))
            }
        }
        if self.wide_depth != 0 && (self.weight_bits != 4 || self.wide_depth > 1 << 23) {
            return Err(HdlError::Params(
                "a wide weight ROM belongs to a 4-bit chip and holds at most 2^23 words".into(),
            ));
        }
        if self.weight_group != 0 && self.wrom_depth % self.weight_group != 0 {
            return Err(HdlError::Params(format!(
                "the weight ROM ({} words) is not a whole number of groups of {}",
                self.wrom_depth, self.weight_group
            )));
        }
        check_lanes_for_shape(l, self.dim, self.n_heads)?;
        if self.ar_depth > 4096 || self.rows_per_layer() > 1 << 14 {
            return Err(HdlError::Params(
                "the activation RAM or the context is too large for the address widths".into(),
            ));
        }
        if self.kv_words() > 1 << 20
            || self.kv_planes() > 255
            || self.wrom_depth > 1 << 23
            || self.qrom_depth > 1 << 16
        {
            return Err(HdlError::Params(
                "the ROMs or the KV cache exceed the address widths".into(),
            ));
        }
        check_requantizers(l, self.datapath.requantizers)?;
        if self.datapath.head_pairs {
            let (m, g) = (self.n_heads / self.n_kv_heads, self.heads_per_group());
            if self.positions() != 1 {
                return Err(HdlError::Params(format!(
                    "head pairs need a chip of at most the model's width ({} lanes), not {l}: \
                     a wider chip computes several positions at once instead",
                    self.dim
                )));
            }
            if m % (2 * g) != 0 {
                return Err(HdlError::Params(format!(
                    "head pairs need each key/value head to serve twice the heads of a head \
                     group: {m} head(s) per key/value head, {g} per head group of {l} lanes \
                     (fewer lanes make smaller head groups)"
                )));
            }
        }
        if self.imem_depth > 4096 || self.param_depth > 1 << 16 || self.kv_segments() > 15 {
            return Err(HdlError::Params(
                "the firmware or the KV rows exceed the address widths".into(),
            ));
        }
        Ok(())
    }
}

fn clog2(n: usize) -> usize {
    let mut b = 0;
    while (1usize << b) < n {
        b += 1;
    }
    b
}

/// The numbers every section of `etch_chip` is drawn from.
#[derive(Clone, Copy)]
struct Shape {
    /// Lanes.
    l: usize,
    /// Bits per weight.
    wbits: usize,
    /// log2 of the lanes.
    lg: usize,
    /// Head size.
    hs: usize,
    /// log2 of the head size.
    hl: usize,
    /// Attention positions per cycle.
    np: usize,
    /// Lanes of one position group.
    deff: usize,
    /// Heads the lanes of a head group span.
    g: usize,
    /// Heads a lane computes at once (2 with head pairs).
    hc: usize,
    /// Head groups.
    ngroups: usize,
    /// Bits of a KV row.
    kvw: usize,
    /// Bits of the row buffer.
    rbw: usize,
    /// RoPE pairs of a head.
    pairs: usize,
    /// Query heads per key/value head.
    kv_mul: usize,
    /// Requantizers.
    r: usize,
    /// log2 of the lanes per requantizer (the blocks an operation that requantizes
    /// every lane takes one after another).
    sublg: usize,
    /// Pipeline registers.
    pipe: Pipeline,
    /// Input columns per lane per cycle of a matrix-vector product.
    c: usize,
}

impl Shape {
    fn new(p: &ChipParams) -> Self {
        let l = p.lanes;
        let hs = p.head_size();
        let kvw = p.kv_dim() * 16;
        Shape {
            l,
            wbits: p.weight_bits,
            c: p.datapath.columns,
            lg: clog2(l),
            hs,
            hl: clog2(hs),
            np: p.positions(),
            deff: p.deff(),
            g: p.heads_per_group(),
            hc: p.head_columns(),
            ngroups: p.head_groups(),
            kvw,
            rbw: (p.kv_segments() * l * 16).max(p.kv_beats() * 64),
            pairs: hs / 2,
            kv_mul: p.n_heads / p.n_kv_heads,
            r: p.datapath.requantizers,
            sublg: clog2(l / p.datapath.requantizers),
            pipe: p.datapath.pipeline,
        }
    }
}

/// Emits `etch_chip`, section by section.
pub fn chip_verilog(p: &ChipParams, header: &str) -> String {
    let s = Shape::new(p);
    let mut w = String::new();
    ports(&mut w, p, &s, header);
    sequencer(&mut w, p, &s);
    host_interface(&mut w, p, &s);
    vector_controller(&mut w, p, &s);
    dma_port(&mut w, p, &s);
    e_stage(&mut w, p, &s);
    roms(&mut w, p, &s);
    rope_registers(&mut w, p, &s);
    sigmoid_units(&mut w, p, &s);
    lanes(&mut w, p, &s);
    requantizers(&mut w, p, &s);
    kv_cache(&mut w, p, &s);
    adder_tree(&mut w, p, &s);
    argmax_tree(&mut w, p, &s);
    head_units(&mut w, p, &s);
    w
}

/// The module's header comment and ports.
fn ports(w: &mut String, p: &ChipParams, s: &Shape, header: &str) {
    let Shape {
        l,
        np,
        g,
        ngroups,
        kvw,
        ..
    } = *s;
    let _ = writeln!(w, "{header}");
    let _ = writeln!(
        w,
        "// etch_chip: {l} lanes, {np} attention position(s) per cycle, {ngroups} head group(s) of {} head(s),",
        g * s.hc
    );
    let _ = writeln!(
        w,
        "// {} context(s) of {} positions, KV rows of {} bits.\n",
        p.contexts, p.max_seq, kvw
    );
    let _ = writeln!(
        w,
        "module etch_chip (
    input  wire        clk,
    input  wire        rst,
    input  wire        mmio_req,
    input  wire        mmio_we,
    input  wire [11:0] mmio_addr,
    input  wire [31:0] mmio_wdata,
    output wire [31:0] mmio_rdata,
    output wire        mmio_ack,
    output wire        dma_req,
    output wire        dma_we,
    output wire [63:0] dma_addr,
    output wire [63:0] dma_wdata,
    input  wire        dma_ack,
    input  wire        dma_err,
    input  wire [63:0] dma_rdata,
    output wire [3:0]  irq,
    output wire        idle
);"
    );
}

/// The sequencer and its instruction and parameter ROMs.
fn sequencer(w: &mut String, p: &ChipParams, _s: &Shape) {
    let _ = writeln!(w, "    // Sequencer, its instruction and parameter ROMs.");
    for (n, width) in [
        ("seq_imem_addr", 12),
        ("imem_data", 64),
        ("seq_csr_addr", 10),
        ("csr_rdata", 32),
        ("seq_csr_wdata", 32),
        ("seq_dma_addr", 64),
        ("seq_dma_wdata", 64),
        ("seq_v_kind", 8),
        ("seq_v_prow", 16),
        ("seq_v_ra", 64),
        ("seq_v_rb", 64),
        ("seq_v_rc", 64),
        ("seq_irq_vec", 4),
        ("seq_phase", 2),
        ("vc_result", 64),
        ("vc_prow", 16),
        ("params", 256),
    ] {
        let _ = writeln!(w, "    wire [{}:0] {n};", width - 1);
    }
    for n in [
        "seq_csr_we",
        "seq_dma_req",
        "seq_dma_we",
        "seq_dma_ack",
        "seq_v_start",
        "vc_done",
        "seq_vres_we",
        "seq_irq_raise",
        "seq_idle",
        "seq_fault",
    ] {
        let _ = writeln!(w, "    wire {n};");
    }
    if p.datapath.vop_queue {
        let _ = writeln!(w, "    wire vc_q_busy, vc_q_full, seq_v_indep;");
    }
    let _ = writeln!(
        w,
        "    etch_seq u_seq (
        .clock(clk), .reset(rst),
        .imem_addr(seq_imem_addr), .imem_data(imem_data),
        .csr_addr(seq_csr_addr), .csr_rdata(csr_rdata), .csr_we(seq_csr_we), .csr_wdata(seq_csr_wdata),
        .dma_req(seq_dma_req), .dma_we(seq_dma_we), .dma_addr(seq_dma_addr), .dma_wdata(seq_dma_wdata),
        .dma_ack(seq_dma_ack), .dma_err(dma_err), .dma_rdata(dma_rdata),
        .v_start(seq_v_start), .v_kind(seq_v_kind), .v_prow(seq_v_prow),
        .v_ra(seq_v_ra), .v_rb(seq_v_rb), .v_rc(seq_v_rc), .v_done(vc_done),
        .vres_we(seq_vres_we), .irq_raise(seq_irq_raise), .irq_vec(seq_irq_vec),
        .idle(seq_idle), .fault(seq_fault), .phase(seq_phase){queue}
    );
    etch_rom #(.W(64), .A(12), .D({imem}), .INIT(\"rom/imem.hex\")) u_imem (.clk(clk), .addr(seq_imem_addr), .data(imem_data));
    etch_rom #(.W(256), .A(16), .D({params}), .INIT(\"rom/params.hex\")) u_params (.clk(clk), .addr(vc_prow), .data(params));
",
        imem = p.imem_depth.max(1),
        params = p.param_depth.max(1),
        queue = if p.datapath.vop_queue {
            ",\n        .v_busy(vc_q_busy), .v_full(vc_q_full), .v_indep(seq_v_indep)"
        } else {
            ""
        }
    );
}

/// The host interface: BAR0 registers, interrupts, counters.
fn host_interface(w: &mut String, p: &ChipParams, _s: &Shape) {
    let mut ident = String::new();
    for word in p.ident.iter().rev() {
        let _ = write!(ident, "{word:08x}");
    }
    let _ = writeln!(
        w,
        "    // Host interface: BAR0 registers, interrupts, counters.
    wire token_tick = seq_v_start & (seq_v_kind == 8'd{embed});
    etch_hostif u_hostif (
        .clock(clk), .reset(rst),
        .mmio_req(mmio_req), .mmio_we(mmio_we), .mmio_addr(mmio_addr), .mmio_wdata(mmio_wdata),
        .mmio_rdata(mmio_rdata), .mmio_ack(mmio_ack),
        .csr_addr(seq_csr_addr), .csr_rdata(csr_rdata), .csr_we(seq_csr_we), .csr_wdata(seq_csr_wdata),
        .vres_we(seq_vres_we), .vres(vc_result), .irq_raise(seq_irq_raise), .irq_vec(seq_irq_vec),
        .token_tick(token_tick), .seq_phase(seq_phase), .vec_phase(vc_phase),
        .ident(768'h{ident}), .fault(seq_fault), .irq(irq)
    );
",
        embed = etch_firmware::VKind::Embed as u8
    );
}

/// The vector controller. Its wires and their widths come from its port list
/// ([`crate::vctrl::ports`]): `vc_NAME` for its outputs, `NAME` for the data it reads
/// from the lanes, the trees and the ROMs; the geometry inputs are tied to constants.
fn vector_controller(w: &mut String, p: &ChipParams, s: &Shape) {
    use crate::vctrl::{ports, Dir};
    let Shape {
        lg,
        np,
        deff,
        ngroups,
        ..
    } = *s;
    let constant = |name: &str| -> Option<String> {
        Some(match name {
            "cfg_lg" => format!("4'd{lg}"),
            "cfg_plg" => format!("2'd{}", clog2(np)),
            "cfg_ngroups" => format!("8'd{ngroups}"),
            "cfg_slg" => format!("3'd{}", clog2(p.sigmoid_units())),
            "cfg_kvbeats" => format!("10'd{}", p.kv_beats()),
            "cfg_kvplanes" => format!("8'd{}", p.kv_planes()),
            "cfg_kvdepth" => format!("20'd{}", p.kv_depth()),
            "cfg_kvbpw" => format!("10'd{}", p.kv_word_bits().div_ceil(64)),
            "cfg_kvgpp" => format!("8'd{}", ngroups / p.kv_planes()),
            "cfg_hpairs" => format!("1'd{}", u8::from(s.hc == 2)),
            "cfg_hlg" => format!("3'd{}", s.hl),
            "cfg_deff" => format!("9'd{deff}"),
            "cfg_wdepth" => format!("24'd{}", p.wrom_depth.max(1)),
            "cfg_gmask" => format!("6'd{}", p.weight_group.saturating_sub(1)),
            "cfg_widedepth" => format!("24'd{}", p.wide_depth),
            "cfg_qdepth" => format!("16'd{}", p.qrom_depth.max(1)),
            "cfg_gdepth" => format!("16'd{}", p.grom_depth.max(1)),
            "cfg_sublg" => format!("4'd{}", s.sublg),
            "cfg_elat" => format!("4'd{}", s.pipe.e_shift()),
            "cfg_alat" => format!("4'd{}", s.pipe.a_shift()),
            "cfg_wlat" => format!("4'd{}", s.pipe.w_shift()),
            "cfg_siglat" => format!("3'd{}", s.pipe.sigmoid_latency()),
            "cfg_sureg" => format!("1'd{}", s.pipe.scalar_inputs_registered() as u8),
            "cfg_hdreg" => format!("1'd{}", s.pipe.score_difference_registered() as u8),
            _ => return None,
        })
    };
    // Ports wired to the sequencer's signals or the chip's own.
    let fixed = |name: &str| -> Option<&'static str> {
        Some(match name {
            "clock" => "clk",
            "reset" => "rst",
            "start" => "seq_v_start",
            "kind" => "seq_v_kind",
            "prow_in" => "seq_v_prow",
            "ra" => "seq_v_ra",
            "rb" => "seq_v_rb",
            "rc" => "seq_v_rc",
            "params" => "params",
            "dma_ack" => "vc_dma_ack",
            "dma_err" => "dma_err",
            "dma_rdata" => "dma_rdata",
            "done" => "vc_done",
            "q_busy" => "vc_q_busy",
            "q_full" => "vc_q_full",
            "indep" => "seq_v_indep",
            "result" => "vc_result",
            "prow" => "vc_prow",
            _ => return None,
        })
    };
    let decl = |bits: u32, name: &str| {
        if bits == 1 {
            format!("    wire {name};")
        } else {
            format!("    wire [{}:0] {name};", bits - 1)
        }
    };
    let _ = writeln!(w, "    // Vector controller.");
    let mut connections = Vec::new();
    for &(name, dir, bits) in ports(s.c, p.datapath.vop_queue) {
        let net = match (constant(name), fixed(name), dir) {
            (Some(c), _, _) => c,
            (None, Some(f), _) => f.to_string(),
            (None, None, Dir::Out) => {
                let _ = writeln!(w, "{}", decl(bits, &format!("vc_{name}")));
                format!("vc_{name}")
            }
            (None, None, Dir::In) => {
                let _ = writeln!(w, "{}", decl(bits, name));
                name.to_string()
            }
        };
        connections.push(format!(".{name}({net})"));
    }
    let _ = writeln!(w, "    wire vc_dma_ack;");
    let _ = writeln!(
        w,
        "    etch_vctrl u_vc (\n        {}\n    );\n",
        connections.join(",\n        ")
    );
}

/// The one DMA port, shared by the sequencer and the vector controller.
fn dma_port(w: &mut String, _p: &ChipParams, _s: &Shape) {
    let _ = writeln!(
        w,
        "    // One DMA port, shared: the sequencer and the vector controller never request at once.
    assign dma_req = seq_dma_req | vc_dma_req;
    assign dma_we = vc_dma_req ? vc_dma_we : seq_dma_we;
    assign dma_addr = vc_dma_req ? vc_dma_addr : seq_dma_addr;
    assign dma_wdata = vc_dma_req ? vc_dma_wdata : seq_dma_wdata;
    assign seq_dma_ack = dma_ack & ~vc_dma_req;
    assign vc_dma_ack = dma_ack & vc_dma_req;
    assign idle = seq_idle & ~dma_req;
"
    );
}

/// Micro-operation fields one cycle after issue (the lanes' E stage without input
/// registers), each lane's active bit and its requantizer request: all lanes, or only
/// block `sub` of an operation that requantizes every lane one block at a time.
fn e_stage(w: &mut String, p: &ChipParams, s: &Shape) {
    let Shape { l, sublg, .. } = *s;
    let _ = writeln!(
        w,
        "    // Micro-operation fields, one cycle after issue (the lanes' E stage).
    reg [2:0] u_a_e;
    reg [3:0] u_b_e;
    reg [1:0] u_acc_e, u_raw_e;
    reg [2:0] u_msel_e;
    reg [11:0] u_slot_e;
    reg [15:0] tau_e;
    reg [7:0] arsel_lane_e, g_e;
    reg [5:0] grp4_e;
    reg u_cadd_e, u_rqin_e, u_am_e, u_amfirst_e, u_qload_e, kv_rsel_e;
    reg [1:0] kv_rbank_e;
    reg [9:0] kv_beat_e;
    reg [{lm}:0] act_e, rqen_e;
    always @(posedge clk) begin
        u_a_e <= vc_u_a; u_b_e <= vc_u_b; u_acc_e <= vc_u_acc; u_raw_e <= vc_u_raw;
        u_msel_e <= vc_u_msel; u_slot_e <= vc_u_slot; tau_e <= vc_tau;
        arsel_lane_e <= vc_arsel_lane; g_e <= vc_g; grp4_e <= vc_grp4;
        u_cadd_e <= vc_u_cadd; u_rqin_e <= vc_u_rqin; u_am_e <= vc_u_am;
        u_amfirst_e <= vc_u_amfirst; u_qload_e <= vc_u_qload; kv_rsel_e <= vc_kv_rsel;
        kv_rbank_e <= vc_kv_rbank; kv_beat_e <= vc_kv_beat;",
        lm = l - 1
    );
    for i in 0..l {
        let _ = writeln!(
            w,
            "        act_e[{i}] <= (vc_act_mode == 2'd0) ? (9'd{i} < vc_act_n) : (vc_act_mode == 2'd1) ? (vc_act_idx == 8'd{i}) : (vc_act_mode == 2'd2) ? (vc_act_idx == 8'd{q}) : (vc_act_idx == 8'd{sg});",
            q = i / 4,
            sg = i / p.sigmoid_units()
        );
        let _ = writeln!(
            w,
            "        rqen_e[{i}] <= vc_u_rq & (~vc_sub_en | (vc_sub == 8'd{}));",
            i >> (clog2(l) - sublg)
        );
    }
    let _ = writeln!(w, "    end\n");
    if s.hc == 2 {
        let _ = writeln!(
            w,
            "    reg u_c1_e;\n    always @(posedge clk) u_c1_e <= vc_u_c1;"
        );
    }
}

/// Weight, requantization, gain and RoPE step ROMs, the E-stage selects from them, and the folds of their words for the self-test signature.
fn roms(w: &mut String, p: &ChipParams, s: &Shape) {
    let Shape {
        l, wbits, pairs, ..
    } = *s;
    let grouped = p.weight_group != 0;
    let _ = writeln!(
        w,
        "    // Weight, requantization and gain ROMs: one word feeds every lane.
    wire [{wb}:0] wrom_data;
    wire [{qb}:0] qrom_data;
    wire [{gb}:0] grom_data;
{wrom}    etch_rom #(.W({qw}), .A(16), .D({qd}), .INIT(\"rom/requant.hex\")) u_qrom (.clk(clk), .addr(vc_qrom_addr), .data(qrom_data));
    etch_rom #(.W({gw}), .A(16), .D({gd}), .INIT(\"rom/gains.hex\")) u_grom (.clk(clk), .addr(vc_grom_addr), .data(grom_data));
    etch_rom #(.W(32), .A(8), .D({pairs}), .INIT(\"rom/rope_steps.hex\")) u_steps (.clk(clk), .addr(vc_step_addr), .data(step_data));
{wsel}    assign qsel_m = qrom_data[22 * (arsel_lane_e & 8'd{rmask}) +: 16];
    assign qsel_s = qrom_data[22 * (arsel_lane_e & 8'd{rmask}) + 16 +: 6];",
        rmask = s.r - 1,
        // with several columns the embedding's weights go out on the `bcw` buses
        wsel = if wide_embedding(s) {
            String::new()
        } else {
            format!(
                "    assign wsel = {};\n",
                lane_weight(p, "arsel_lane_e", &embed_column(s))
            )
        },
        wb = wbits * l * s.c - 1,
        qb = 22 * s.r - 1,
        gb = 16 * s.r - 1,
        wrom = rom_verilog(
            "u_wrom",
            wbits * l * s.c,
            24,
            p.wrom_depth.max(1),
            "weights",
            "vc_wrom_addr",
            "wrom_data"
        ),
        qw = 22 * s.r,
        gw = 16 * s.r,
        qd = p.qrom_depth.max(1),
        gd = p.grom_depth.max(1),
    );
    if p.wide_depth != 0 {
        let _ = writeln!(
            w,
            "    // The wide ROM: 8-bit weights of the matrices kept at 8 bits, at addresses with bit 23 set.
    wire [{wb}:0] wide_data;
    reg wide_e;
    always @(posedge clk) wide_e <= vc_wrom_addr[23];",
            wb = 8 * l * s.c - 1,
        );
        w.push_str(&rom_verilog(
            "u_wide",
            8 * l * s.c,
            24,
            p.wide_depth,
            "wide",
            "vc_wrom_addr",
            "wide_data",
        ));
    }
    if grouped {
        let _ = writeln!(
            w,
            "    // Group scales: word a / {g} holds the 4-bit scale of every lane for weight word a.
    wire [{sb}:0] srom_data;",
            g = p.weight_group,
            sb = 4 * l - 1,
        );
        w.push_str(&rom_verilog(
            "u_srom",
            4 * l,
            24,
            p.srom_depth(),
            "scales",
            &format!("vc_wrom_addr >> {}", clog2(p.weight_group)),
            "srom_data",
        ));
    }
    // Folds of ROM words for the self-test signature (a weight word's fold takes in its
    // group's scale word).
    let fold_terms = |src: &str, bits: usize| -> Vec<String> {
        (0..bits.div_ceil(64))
            .map(|c| {
                let lo = 64 * c;
                let hi = (lo + 63).min(bits - 1);
                if hi - lo == 63 {
                    format!("{src}[{hi}:{lo}]")
                } else {
                    format!("{{{}'d0, {src}[{hi}:{lo}]}}", 63 - (hi - lo))
                }
            })
            .collect()
    };
    let mut fold_w = fold_terms("wrom_data", wbits * l * s.c);
    if grouped {
        fold_w.extend(fold_terms("srom_data", 4 * l));
    }
    let fold_w = fold_w.join(" ^ ");
    if p.wide_depth != 0 {
        let fold_wide = fold_terms("wide_data", 8 * l * s.c).join(" ^ ");
        let _ = writeln!(w, "    assign fold_w = wide_e ? {fold_wide} : {fold_w};");
    } else {
        let _ = writeln!(w, "    assign fold_w = {fold_w};");
    }
    for (name, src, bits) in [("q", "qrom_data", 22 * s.r), ("g", "grom_data", 16 * s.r)] {
        let _ = writeln!(
            w,
            "    assign fold_{name} = {};",
            fold_terms(src, bits).join(" ^ ")
        );
    }
}

/// Whether the embedding writes `columns` elements per cycle (lanes of 4 or 8 columns).
fn wide_embedding(s: &Shape) -> bool {
    crate::vctrl::wide_embedding(s.c).is_some()
}

/// The column of the weight word the embedding reads (its element index's low bits,
/// `u_slot` in the E stage), or "0" with one column per word.
fn embed_column(s: &Shape) -> String {
    if s.c == 1 {
        "0".into()
    } else {
        format!("32'(u_slot_e[{}:0])", clog2(s.c) - 1)
    }
}

/// The 8-bit weight operand of lane `lane` for column `col` of the word (constants or
/// signals): its field of the weight word, or its sign-extended 4-bit code, times its
/// 4-bit group scale when the weights have group scales (`|code · scale| ≤ 8 · 15`,
/// within int8; in logic, not a multiplier), or its byte of the wide ROM's word when the
/// address selected that.
fn lane_weight(p: &ChipParams, lane: &str, col: &str) -> String {
    let c = p.datapath.columns;
    // The field index: lane-major, `columns` fields per lane.
    let f = if c == 1 {
        lane.to_string()
    } else if let (Ok(l), Ok(k)) = (lane.parse::<usize>(), col.parse::<usize>()) {
        (l * c + k).to_string()
    } else {
        format!("({c} * {lane} + {col})")
    };
    if p.weight_bits == 8 {
        return format!("wrom_data[8 * {f} +: 8]");
    }
    let code = format!("{{{{4{{wrom_data[4 * {f} + 3]}}}}, wrom_data[4 * {f} +: 4]}}");
    let narrow = if p.weight_group != 0 {
        // Shifts and adds, not `*`: a product yosys would give a DSP of its own
        // (a lane's worth of them over the part's 156 on a grouped 32-lane chip).
        // Modulo 256 the partial products add up to the product, which fits int8.
        let terms: Vec<String> = (0..4)
            .map(|b| format!("(srom_data[4 * {lane} + {b}] ? {code} << {b} : 8'd0)"))
            .collect();
        format!("8'({})", terms.join(" + "))
    } else {
        code
    };
    if p.wide_depth != 0 {
        format!("(wide_e ? wide_data[8 * {f} +: 8] : {narrow})")
    } else {
        narrow
    }
}

/// RoPE sines and cosines of the current position, and the lanes' wires.
fn rope_registers(w: &mut String, _p: &ChipParams, s: &Shape) {
    let Shape {
        l, pairs, np, deff, ..
    } = *s;
    let _ = writeln!(
        w,
        "    // RoPE sines and cosines of the current position, one pair per rotation frequency."
    );
    let _ = writeln!(
        w,
        "    reg [15:0] rope_sin [0:{}];\n    reg [15:0] rope_cos [0:{}];",
        pairs - 1,
        pairs - 1
    );
    let _ = writeln!(
        w,
        "    always @(posedge clk) if (vc_sc_we) begin rope_sin[vc_sc_idx[{b}:0]] <= vc_sc_sin; rope_cos[vc_sc_idx[{b}:0]] <= vc_sc_cos; end",
        b = clog2(pairs).max(1) - 1
    );
    if clog2(pairs).max(1) < 6 {
        let _ = writeln!(
            w,
            "    wire unused_sc_idx = ^vc_sc_idx[5:{}];",
            clog2(pairs).max(1)
        );
    }
    let _ = writeln!(w);

    for i in 0..l {
        let _ = writeln!(
            w,
            "    wire [15:0] lane_rd0_{i}, lane_rd1_{i}, lane_amx_{i}, lane_kv_{i};
    reg [15:0] lane_wdata_{i};
    wire [47:0] lane_sum_{i}, lane_other_{i}, lane_rqx_{i};
    wire [15:0] lane_rqrd1_{i};
    wire [11:0] lane_ams_{i};
    wire [1:0] lane_raw_{i};
    reg lane_we_{i};
    wire lane_amv_{i}, lane_rqv_{i};"
        );
        if s.hc == 2 {
            let _ = writeln!(w, "    wire [47:0] lane_sum1_{i};\n    wire lane_rqc1_{i};");
        }
    }
    for i in deff..l {
        if np > 1 {
            let _ = writeln!(w, "    wire [47:0] lane_acc_{i};");
        }
    }
}

/// SwiGLU's sigmoid units, fed from a group of lanes.
fn sigmoid_units(w: &mut String, p: &ChipParams, s: &Shape) {
    let Shape { l, .. } = *s;
    let su = p.sigmoid_units();
    let _ = writeln!(w, "    // SwiGLU's sigmoid units: {su} elements of h1 per cycle, from lane group sgrp.\n    reg [7:0] sgrp_e;\n    always @(posedge clk) sgrp_e <= vc_sgrp;");
    for k in 0..su {
        let _ = writeln!(w, "    reg [15:0] sig_in_{k};\n    wire [15:0] sig_h_{k}, sig_sigma_{k};\n    always @(*) begin\n        sig_in_{k} = lane_rd0_{k};\n        case (sgrp_e)");
        for grp in 0..l / su {
            let _ = writeln!(
                w,
                "            8'd{grp}: sig_in_{k} = lane_rd0_{};",
                grp * su + k
            );
        }
        let _ = writeln!(
            w,
            "            default: sig_in_{k} = lane_rd0_{k};\n        endcase\n    end"
        );
        // With the operand register, the selected element is registered before the
        // unit's pre-shift multiply (`Pipeline::sigmoid_latency`).
        stage(
            w,
            s.pipe.operands,
            16,
            &format!("sig_in_q_{k}"),
            &format!("sig_in_{k}"),
        );
        let _ = writeln!(w, "    etch_sigmoid u_sigmoid_{k} (.clock(clk), .h(sig_in_q_{k}), .m(vc_sig_m), .s(vc_sig_s), .sigma(sig_sigma_{k}), .h_out(sig_h_{k}));");
    }
    let _ = writeln!(w);
}

/// A register stage named `name` on `expr` when `registered`, else a wire of that
/// name: the lanes' input registers, written once for every input.
fn stage(w: &mut String, registered: bool, bits: usize, name: &str, expr: &str) {
    let range = if bits == 1 {
        String::new()
    } else {
        format!("[{}:0] ", bits - 1)
    };
    if registered {
        let _ = writeln!(
            w,
            "    reg {range}{name} = 0;\n    always @(posedge clk) {name} <= {expr};"
        );
    } else {
        let _ = writeln!(w, "    wire {range}{name} = {expr};");
    }
}

/// The micro-operation's fields that every lane takes, `(name, bits)`.
const LANE_MICRO_OP: &[(&str, usize)] = &[
    ("u_a_e", 3),
    ("u_b_e", 4),
    ("u_acc_e", 2),
    ("u_raw_e", 2),
    ("u_slot_e", 12),
    ("tau_e", 16),
    ("u_cadd_e", 1),
    ("u_rqin_e", 1),
    ("u_am_e", 1),
    ("u_amfirst_e", 1),
    ("u_qload_e", 1),
];

/// Lane `i`'s copy of the micro-operation, `li_<field>_<i>`: with the lane-input
/// register (`registered`) a register of its own, which synthesis must keep (`keep`)
/// rather than merge with the other lanes' equal copies, so that each lane's operand
/// selects and accumulator read a flip-flop placed beside them instead of one that
/// fans out across the die; without it, wires.
fn lane_micro_op(w: &mut String, registered: bool, i: usize, s: &Shape) {
    let pair = [("u_c1_e", 1)];
    let fields = LANE_MICRO_OP
        .iter()
        .chain(if s.hc == 2 { &pair[..] } else { &[] });
    if !registered {
        for &(name, bits) in fields {
            stage(w, false, bits, &format!("li_{name}_{i}"), name);
        }
        return;
    }
    let mut body = String::new();
    for &(name, bits) in fields {
        let range = if bits == 1 {
            String::new()
        } else {
            format!("[{}:0] ", bits - 1)
        };
        let _ = writeln!(w, "    reg {range}li_{name}_{i} = 0;");
        let _ = writeln!(body, "        li_{name}_{i} <= {name};");
    }
    let _ = writeln!(
        w,
        "    (* keep *) always @(posedge clk) begin\n{body}    end"
    );
}

/// A chain of `n` registers from `src`; returns the name of its end (`src` for none).
fn delay(w: &mut String, bits: usize, src: &str, name: &str, n: usize) -> String {
    let mut prev = src.to_string();
    for k in 1..=n {
        let cur = format!("{name}_d{k}");
        stage(w, true, bits, &cur, &prev);
        prev = cur;
    }
    prev
}

/// The lanes and their activation RAMs, with the pipeline's input registers; the
/// attention partial sums across position groups; the lanes the controller selects.
fn lanes(w: &mut String, p: &ChipParams, s: &Shape) {
    let Shape {
        l,
        hs,
        np,
        deff,
        pairs,
        pipe,
        ..
    } = *s;
    let reg = pipe.lane_inputs;
    let _ = writeln!(
        w,
        "    // Lane inputs{}: the micro-operation, broadcast buses, per-lane memory data.",
        if reg { ", registered" } else { "" }
    );
    for (name, bits) in [
        ("u_msel_e", 3),
        ("act_e", l),
        ("rqen_e", l),
        ("vc_bc", 16),
        ("vc_bc2", 16),
        ("vc_bcl", 1),
        ("vc_dmaw", 64),
    ] {
        stage(w, reg, bits, &format!("li_{name}"), name);
    }
    if wide_embedding(s) {
        // the token's weights of every column, sign-extended, for the embedding
        stage(w, reg, 1, "li_vc_bcw", "vc_bcw");
        for k in 0..s.c {
            let wk = lane_weight(p, "arsel_lane_e", &k.to_string());
            let _ = writeln!(w, "    wire [7:0] wcol_{k} = {wk};");
            stage(
                w,
                reg,
                16,
                &format!("li_wcol_{k}"),
                &format!("{{{{8{{wcol_{k}[7]}}}}, wcol_{k}}}"),
            );
        }
    }
    for k in 0..p.sigmoid_units() {
        stage(w, reg, 16, &format!("li_sig_h_{k}"), &format!("sig_h_{k}"));
        stage(
            w,
            reg,
            16,
            &format!("li_sig_sigma_{k}"),
            &format!("sig_sigma_{k}"),
        );
        // the broadcast buses of lane group k: sigmoid unit k's, the embedding's column
        // k mod C (lanes of 4 or 8 columns), or the controller's
        let common = if wide_embedding(s) {
            format!("li_vc_bcw ? li_wcol_{} : li_vc_bc", k % s.c)
        } else {
            "li_vc_bc".to_string()
        };
        let _ = writeln!(
            w,
            "    wire [15:0] bc_{k} = li_vc_bcl ? li_sig_h_{k} : {common};\n    wire [15:0] bc2_{k} = li_vc_bcl ? li_sig_sigma_{k} : li_vc_bc2;"
        );
    }
    for k in 0..pairs {
        stage(
            w,
            reg,
            16,
            &format!("li_cos_{k}"),
            &format!("rope_cos[{k}]"),
        );
        stage(
            w,
            reg,
            16,
            &format!("li_sin_{k}"),
            &format!("rope_sin[{k}]"),
        );
        stage(
            w,
            reg,
            16,
            &format!("li_nsin_{k}"),
            &format!("16'd0 - rope_sin[{k}]"),
        );
    }
    for pp in 0..np {
        for h in 0..s.g * s.hc {
            stage(
                w,
                reg,
                16,
                &format!("li_pw_{pp}_{h}"),
                &format!("head_pw_{pp}_{h}"),
            );
        }
    }
    column_inputs(w, s);
    let _ = writeln!(w, "\n    // Lanes and their activation RAMs.");
    for i in 0..l {
        let k = (i % hs) / 2;
        let w8 = lane_weight(p, &i.to_string(), "0");
        let _ = writeln!(
            w,
            "    etch_ram_2r1w #(.W(16), .A(12), .D({ar})) u_ar_{i} (.clk(clk), .raddr0(vc_ar_ra0), .rdata0(lane_rd0_{i}), .raddr1(vc_ar_ra1), .rdata1(lane_rd1_{i}), .we(lane_we_{i}), .waddr(ar_wa_w), .wdata(lane_wdata_{i}));",
            ar = p.ar_depth.max(1)
        );
        stage(w, reg, 16, &format!("li_rd0_{i}"), &format!("lane_rd0_{i}"));
        stage(w, reg, 16, &format!("li_rd1_{i}"), &format!("lane_rd1_{i}"));
        stage(w, reg, 8, &format!("li_w8_{i}"), &w8);
        if s.c > 1 {
            let extra: Vec<String> = (1..s.c)
                .rev()
                .map(|k| lane_weight(p, &i.to_string(), &k.to_string()))
                .collect();
            stage(
                w,
                reg,
                8 * (s.c - 1),
                &format!("li_w8x_{i}"),
                &format!("{{{}}}", extra.join(", ")),
            );
        }
        stage(
            w,
            reg,
            16,
            &format!("li_gain_{i}"),
            &format!("grom_data[{}:{}]", 16 * (i % s.r) + 15, 16 * (i % s.r)),
        );
        stage(w, reg, 16, &format!("li_kv_{i}"), &format!("lane_kv_{i}"));
        lane_micro_op(w, reg, i, s);
        let pp = i / deff;
        let h = (i % deff) / hs;
        let _ = writeln!(
            w,
            "    etch_lane u_lane_{i} (
        .clock(clk), .reset(rst),
        .rd0(li_rd0_{i}), .rd1(li_rd1_{i}), .nbr(li_rd0_{nb}), .qsrc(li_rd0_{qs}),
        .w8(li_w8_{i}),{columns} .gain(li_gain_{i}), .kv(li_kv_{i}), .pw(li_pw_{pp}_{h}),
        .cosv(li_cos_{k}), .sinv({sin}), .bc(bc_{sk}), .bc2(bc2_{sk}),
        .tau(li_tau_e_{i}), .acc_other(lane_other_{i}),
        .u_a(li_u_a_e_{i}), .u_b(li_u_b_e_{i}), .u_cadd(li_u_cadd_e_{i}), .u_acc(li_u_acc_e_{i}), .u_rq(li_rqen_e[{i}]), .u_rqin(li_u_rqin_e_{i}),
        .u_raw(li_u_raw_e_{i}), .u_am(li_u_am_e_{i}), .u_amfirst(li_u_amfirst_e_{i}), .u_qload(li_u_qload_e_{i}),
        .u_active(li_act_e[{i}]), .u_slot(li_u_slot_e_{i}),
        .sum(lane_sum_{i}), {acc},{pair}
        .rq_v(lane_rqv_{i}), .rq_x(lane_rqx_{i}), .rq_rd1(lane_rqrd1_{i}), .raw(lane_raw_{i}),
        .am_valid(lane_amv_{i}), .am_val(lane_amx_{i}), .am_slot(lane_ams_{i})
    );",
            sk = i % p.sigmoid_units(),
            // head pairs: the second head's weight, query (read port 1) and sums
            pair = if s.hc == 2 {
                format!(
                    "\n        .pw1(li_pw_0_{}), .qsrc1(li_rd1_{i}), .u_c1(li_u_c1_e_{i}), .sum1(lane_sum1_{i}), .rq_c1(lane_rqc1_{i}),",
                    s.g + h
                )
            } else {
                String::new()
            },
            columns = if s.c > 1 {
                format!(" .w8x(li_w8x_{i}), .bcx(li_bcx),")
            } else {
                String::new()
            },
            nb = i ^ 1,
            qs = i % deff,
            sin = if i % 2 == 0 {
                format!("li_nsin_{k}")
            } else {
                format!("li_sin_{k}")
            },
            // only the other position groups' accumulators are read (attention's sums)
            acc = if np > 1 && i >= deff {
                format!(".acc(lane_acc_{i})")
            } else {
                "/* verilator lint_off PINCONNECTEMPTY */ .acc() /* verilator lint_on PINCONNECTEMPTY */".to_string()
            },
        );
    }
    // Partial attention sums of the other positions of a lane's column.
    for i in 0..l {
        if i < deff && np > 1 {
            let terms: Vec<String> = (1..np)
                .map(|q| format!("lane_acc_{}", i + q * deff))
                .collect();
            let _ = writeln!(w, "    assign lane_other_{i} = {};", terms.join(" + "));
        } else {
            let _ = writeln!(w, "    assign lane_other_{i} = 48'd0;");
        }
    }
    lane_selects(w, s);
}

/// The inputs of columns 1.. of a matrix-vector product, each a select among the lanes
/// of its column, registered as the lanes' inputs are.
fn column_inputs(w: &mut String, s: &Shape) {
    if s.c < 2 {
        return;
    }
    let (l, reg) = (s.l, s.pipe.lane_inputs);
    // The other columns' input elements: element `j·C + k` of a matrix-vector
    // product's input lives in lane `(j·C + k) mod L`, beside column 0's lane
    // (`arsel_lane`, a multiple of C): a select among the L/C lanes of column k.
    let clg = clog2(s.c);
    let _ = writeln!(
        w,
        "    // Matrix-vector inputs of columns 1..{}: lane arsel_lane + k.",
        s.c - 1
    );
    for k in 1..s.c {
        let _ = writeln!(
            w,
            "    reg [15:0] bcx_{k};\n    always @(*) begin\n        bcx_{k} = lane_rd0_{k};\n        case (arsel_lane_e >> {clg})"
        );
        for grp in 0..l / s.c {
            let _ = writeln!(
                w,
                "            8'd{grp}: bcx_{k} = lane_rd0_{};",
                grp * s.c + k
            );
        }
        let _ = writeln!(
            w,
            "            default: bcx_{k} = lane_rd0_{k};\n        endcase\n    end"
        );
        stage(w, reg, 16, &format!("li_bcx_{k}"), &format!("bcx_{k}"));
    }
    let all: Vec<String> = (1..s.c).rev().map(|k| format!("li_bcx_{k}")).collect();
    let _ = writeln!(
        w,
        "    wire [{}:0] li_bcx = {{{}}};",
        16 * (s.c - 1) - 1,
        all.join(", ")
    );
}

/// The lanes the controller reads through a select: one lane's read port 0 (`arsel`),
/// and four lanes' for a DMA beat (`dma4`).
fn lane_selects(w: &mut String, s: &Shape) {
    let l = s.l;
    // Selected lanes for the controller.
    let _ = writeln!(w, "    reg [15:0] arsel_r;\n    always @(*) begin\n        arsel_r = lane_rd0_0;\n        case (arsel_lane_e)");
    for i in 0..l {
        let _ = writeln!(w, "            8'd{i}: arsel_r = lane_rd0_{i};");
    }
    let _ = writeln!(w, "            default: arsel_r = lane_rd0_0;\n        endcase\n    end\n    assign arsel = arsel_r;");
    let _ = writeln!(w, "    reg [63:0] dma4_r;\n    always @(*) begin\n        dma4_r = {{lane_rd0_3, lane_rd0_2, lane_rd0_1, lane_rd0_0}};\n        case (grp4_e)");
    for q in 0..l / 4 {
        let _ = writeln!(
            w,
            "            6'd{q}: dma4_r = {{lane_rd0_{}, lane_rd0_{}, lane_rd0_{}, lane_rd0_{}}};",
            4 * q + 3,
            4 * q + 2,
            4 * q + 1,
            4 * q
        );
    }
    let _ = writeln!(w, "            default: dma4_r = {{lane_rd0_3, lane_rd0_2, lane_rd0_1, lane_rd0_0}};\n        endcase\n    end\n    assign dma4 = dma4_r;\n");
}

/// Writes still on their way that the operation about to start could read first.
/// A write issued `k` cycles ago (`1 ≤ k ≤ pending`) lands `pending + 1 − k` cycles
/// from now; until then the controller starts no operation — unless that operation
/// reads its operands as streams (`vc_rd_stream`), which reach slot `base + j` no
/// earlier than `j + 1` cycles from now and never read below their base: then only a
/// write to a slot `base + j` with `j ≤ pending − k` holds it back. A matrix, say,
/// starts while the one before it still writes its last row group, whose slot it
/// reads last. (The write address's chain is `ar_wa_d*`, one stage longer.)
fn write_hazard(w: &mut String, pending: usize) {
    let _ = writeln!(w, "    wire wr_issue = vc_u_rq | (|vc_u_raw);");
    delay(w, 1, "wr_issue", "wr_issue", pending);
    let stages: Vec<String> = (1..=pending)
        .map(|k| {
            let lands = pending + 1 - k;
            format!(
                "wr_issue_d{k} & (~vc_rd_stream | (12'(ar_wa_d{k} - vc_rd_base0) < 12'd{lands}) | (12'(ar_wa_d{k} - vc_rd_base1) < 12'd{lands}))"
            )
        })
        .collect();
    let _ = writeln!(
        w,
        "    assign wr_hazard =\n        {};",
        stages.join("\n        | ")
    );
}

/// The requantizers the lanes share, and the writes into the activation RAMs:
/// requantizer `r` takes the request of whichever of lanes `r, r+R, …` made one (the
/// controller lets at most one of them ask at a time) and returns its result, tagged
/// with that lane's block, `2 + requant_input + requant_shift` cycles later; raw
/// writes (the broadcast, a DMA word) take the same time, so that every write lands
/// `4 + w_shift` cycles after its micro-operation was issued.
fn requantizers(w: &mut String, _p: &ChipParams, s: &Shape) {
    let Shape {
        l, r, sublg, pipe, ..
    } = *s;
    let kw = sublg.max(1);
    let rlg = clog2(r);
    let _ = writeln!(
        w,
        "    // Requantizers: {r}, each shared by {} lane(s); the write address and raw values delayed to W.",
        l / r
    );
    let wa = delay(w, 12, "vc_ar_wa", "ar_wa", 4 + pipe.w_shift());
    let _ = writeln!(w, "    wire [11:0] ar_wa_w = {wa};");
    write_hazard(w, 3 + pipe.w_shift());
    let e_to_w = 3 + pipe.w_shift() - pipe.e_shift();
    let a_to_w = 2 + pipe.w_shift() - pipe.a_shift();
    let bc2_w = delay(w, 16, "li_vc_bc2", "raw_bc2", e_to_w);
    let dmaw_w = delay(w, 64, "li_vc_dmaw", "raw_dmaw", e_to_w);
    // What the multiplier and shift come from, in A: the micro-operation's select,
    // the requantization ROM word (a block of R lanes), the broadcast, the heads'.
    let a_shift = pipe.a_shift();
    let msel = delay(w, 3, "li_u_msel_e", "msel_a", 1 + a_shift - pipe.e_shift());
    let qword = delay(w, 22 * r, "qrom_data", "qword_a", 1 + a_shift);
    let bmult = delay(w, 17, "vc_bmult", "bmult_a", a_shift);
    let bshift = delay(w, 6, "vc_bshift", "bshift_a", a_shift);
    let hmult: Vec<String> = (0..s.g * s.hc)
        .map(|h| {
            delay(
                w,
                16,
                &format!("head_rmult_0_{h}"),
                &format!("hmult_a_{h}"),
                a_shift,
            )
        })
        .collect();
    let hshift: Vec<String> = (0..s.g * s.hc)
        .map(|h| {
            delay(
                w,
                6,
                &format!("head_rshift_0_{h}"),
                &format!("hshift_a_{h}"),
                a_shift,
            )
        })
        .collect();
    let head_of = |i: usize| (i % s.deff) / s.hs;
    // the head whose reciprocal lane `i`'s request takes: its head, or with head pairs
    // the pair's second head when it requantizes its second accumulator
    let head_term = |i: usize, of: &[String]| {
        if s.hc == 2 {
            format!(
                "(lane_rqc1_{i} ? {} : {})",
                of[s.g + head_of(i)],
                of[head_of(i)]
            )
        } else {
            of[head_of(i)].clone()
        }
    };
    for q in 0..r {
        let members: Vec<usize> = (0..l / r).map(|k| q + k * r).collect();
        let or_of = |f: &dyn Fn(usize) -> String| {
            members
                .iter()
                .map(|&i| f(i))
                .collect::<Vec<_>>()
                .join(" | ")
        };
        let _ = writeln!(
            w,
            "    wire rqsel_v_{q} = {};
    wire [47:0] rqsel_x_{q} = {};
    wire [15:0] rqsel_rd1_{q} = {};
    wire [15:0] rqsel_hm_{q} = {};
    wire [5:0] rqsel_hs_{q} = {};
    wire [{km}:0] rqsel_k_{q} = {};
    reg [16:0] rqsel_m_{q};
    reg [5:0] rqsel_s_{q};
    always @(*) begin
        rqsel_s_{q} = {bshift};
        case ({msel})
            3'd{bcast}: rqsel_m_{q} = {bmult};
            3'd{head}: begin
                rqsel_m_{q} = {{1'b0, rqsel_hm_{q}}};
                rqsel_s_{q} = rqsel_hs_{q};
            end
            3'd{one}: rqsel_m_{q} = 17'd1;
            3'd{rd1}: rqsel_m_{q} = {{rqsel_rd1_{q}[15], rqsel_rd1_{q}}};
            default: begin
                rqsel_m_{q} = {{1'b0, {qword}[{mh}:{ml}]}};
                rqsel_s_{q} = {qword}[{sh}:{sl}];
            end
        endcase
    end
    wire rqy_v_{q};
    wire [{km}:0] rqy_k_{q};
    wire [15:0] rqy_{q};
    etch_requant_bank u_rq_{q} (.clock(clk), .reset(rst), .v(rqsel_v_{q}), .k(rqsel_k_{q}), .x(rqsel_x_{q}), .m(rqsel_m_{q}), .s(rqsel_s_{q}), .y_v(rqy_v_{q}), .y_k(rqy_k_{q}), .y(rqy_{q}));",
            or_of(&|i| format!("lane_rqv_{i}")),
            or_of(&|i| format!("({{48{{lane_rqv_{i}}}}} & lane_rqx_{i})")),
            or_of(&|i| format!("({{16{{lane_rqv_{i}}}}} & lane_rqrd1_{i})")),
            or_of(&|i| format!("({{16{{lane_rqv_{i}}}}} & {})", head_term(i, &hmult))),
            or_of(&|i| format!("({{6{{lane_rqv_{i}}}}} & {})", head_term(i, &hshift))),
            or_of(&|i| format!("(lane_rqv_{i} ? {kw}'d{} : {kw}'d0)", i >> rlg)),
            km = kw - 1,
            bcast = crate::lane::msel::BCAST,
            head = crate::lane::msel::HEAD,
            one = crate::lane::msel::ONE,
            rd1 = crate::lane::msel::RD1,
            mh = 22 * q + 15,
            ml = 22 * q,
            sh = 22 * q + 21,
            sl = 22 * q + 16,
        );
    }
    for i in 0..l {
        let q = i % r;
        let mut raw = format!("lane_raw_{i}");
        for k in 1..=a_to_w {
            let cur = format!("raw_{i}_d{k}");
            let _ = writeln!(
                w,
                "    reg [1:0] {cur} = 0;\n    always @(posedge clk) {cur} <= rst ? 2'd0 : {raw};"
            );
            raw = cur;
        }
        let _ = writeln!(
            w,
            "    always @(*) begin
        lane_we_{i} = (|{raw}) | (rqy_v_{q} & (rqy_k_{q} == {kw}'d{k}));
        case ({raw})
            2'd1: lane_wdata_{i} = {bc2_w};
            2'd2: lane_wdata_{i} = {dmaw_w}[{dh}:{dl}];
            default: lane_wdata_{i} = rqy_{q};
        endcase
    end",
            k = i >> rlg,
            dh = 16 * (i % 4) + 15,
            dl = 16 * (i % 4),
        );
    }
    let _ = writeln!(w);
}

/// The KV cache: banks of keys and values (a word per plane of a row), the row
/// buffer, the beats of a word, each lane's element.
fn kv_cache(w: &mut String, p: &ChipParams, s: &Shape) {
    let Shape {
        l,
        np,
        deff,
        ngroups,
        kvw,
        rbw,
        ..
    } = *s;
    let _ =
        writeln!(
        w,
        "    // KV cache: {np} bank(s) of keys and of values, one row ({kvw} bits) per position in {planes} plane(s).
    reg [{rb}:0] rowbuf;
    always @(posedge clk) begin
        if (vc_rb_seg_we) rowbuf[vc_rb_seg * {seg} +: {seg}] <= {{{lanes_rd0}}};
        if (vc_rb_beat_we) rowbuf[vc_rb_beat * 64 +: 64] <= vc_dmaw;
    end",
        rb = rbw - 1,
        planes = p.kv_planes(),
        seg = l * 16,
        lanes_rd0 = (0..l).rev().map(|i| format!("lane_rd0_{i}")).collect::<Vec<_>>().join(", ")
    );
    // One word per plane of a row: the key/value heads one head group reads
    // (`ChipParams::kv_planes`); a row is written a plane at a time.
    let (planes, word) = (p.kv_planes(), p.kv_word_bits());
    for b in 0..np {
        let _ = writeln!(
            w,
            "    wire [{kb}:0] kv_k_word{b}, kv_v_word{b};
    etch_ram_1r1w #(.W({word}), .A(20), .D({kd})) u_kv_k_bank{b} (.clk(clk), .raddr(vc_kv_raddr), .rdata(kv_k_word{b}), .we(vc_kv_we_k & (vc_kv_wbank == 2'd{b})), .waddr(vc_kv_waddr), .wdata(rowbuf_word));
    etch_ram_1r1w #(.W({word}), .A(20), .D({kd})) u_kv_v_bank{b} (.clk(clk), .raddr(vc_kv_raddr), .rdata(kv_v_word{b}), .we(vc_kv_we_v & (vc_kv_wbank == 2'd{b})), .waddr(vc_kv_waddr), .wdata(rowbuf_word));
    wire [{kb}:0] kv_word{b} = kv_rsel_e ? kv_v_word{b} : kv_k_word{b};",
            kb = word - 1,
            kd = p.kv_words().max(1)
        );
    }
    if planes == 1 {
        let _ = writeln!(w, "    wire [{}:0] rowbuf_word = rowbuf_row;", word - 1);
    } else {
        let _ = writeln!(
            w,
            "    reg [{}:0] rowbuf_word;\n    always @(*) begin\n        case (vc_kv_wplane)",
            word - 1
        );
        for k in 0..planes {
            let _ = writeln!(
                w,
                "            8'd{k}: rowbuf_word = rowbuf_row[{}:{}];",
                word * (k + 1) - 1,
                word * k
            );
        }
        let _ = writeln!(
            w,
            "            default: rowbuf_word = rowbuf_row[{}:0];\n        endcase\n    end",
            word - 1
        );
    }
    // The row starts at one of the few lane offsets the layout uses.
    let offsets = p.kv_offsets();
    let _ = writeln!(
        w,
        "    reg [{kb}:0] rowbuf_row;\n    always @(*) begin\n        case (vc_kv_woff)",
        kb = kvw - 1
    );
    for o in &offsets {
        let _ = writeln!(
            w,
            "            8'd{o}: rowbuf_row = rowbuf[{}:{}];",
            16 * o + kvw - 1,
            16 * o
        );
    }
    let _ = writeln!(
        w,
        "            default: rowbuf_row = rowbuf[{}:{}];\n        endcase\n    end",
        16 * offsets[0] + kvw - 1,
        16 * offsets[0]
    );
    // Bits of the row buffer no offset reads (written by whole slots or beats).
    let mut gaps = Vec::new();
    let mut next = 0;
    for o in &offsets {
        if 16 * o > next {
            gaps.push(format!("rowbuf[{}:{}]", 16 * o - 1, next));
        }
        next = next.max(16 * o + kvw);
    }
    if rbw > next {
        gaps.push(format!("rowbuf[{}:{}]", rbw - 1, next));
    }
    if !gaps.is_empty() {
        let _ = writeln!(w, "    wire unused_rowbuf = ^{{{}}};", gaps.join(", "));
    }
    // Beats of a word for saving contexts.
    let wordp = word.div_ceil(64) * 64;
    let padded = |b: usize| {
        if wordp > word {
            format!("{{{}'d0, kv_word{b}}}", wordp - word)
        } else {
            format!("kv_word{b}")
        }
    };
    let _ = writeln!(w, "    reg [{}:0] kv_sel_word;\n    always @(*) begin\n        kv_sel_word = {};\n        case (kv_rbank_e)", wordp - 1, padded(0));
    for b in 0..np {
        let _ = writeln!(w, "            2'd{b}: kv_sel_word = {};", padded(b));
    }
    let _ = writeln!(w, "            default: kv_sel_word = {};\n        endcase\n    end\n    // registered: the bank's output crosses the die to the controller's DMA data\n    reg [63:0] kv_beat_q;\n    always @(posedge clk) kv_beat_q <= kv_sel_word[kv_beat_e * 64 +: 64];\n    assign kv_beat_data = kv_beat_q;", padded(0));
    // Each lane's key/value element: bank by position group, element by head group
    // (its place in the head group's plane).
    let fixed = kv_elements_fixed(p, s);
    for i in 0..l {
        let bank = i / deff;
        let elem = |grp: usize| kv_lane_element(p, s, i, grp);
        if fixed {
            let e = elem(0);
            let _ = writeln!(
                w,
                "    assign lane_kv_{i} = kv_word{bank}[{}:{}];",
                16 * e + 15,
                16 * e
            );
        } else {
            let _ = writeln!(
                w,
                "    reg [15:0] lane_kv_r{i};\n    always @(*) begin\n        case (g_e)"
            );
            for grp in 0..ngroups {
                let e = elem(grp);
                let _ = writeln!(
                    w,
                    "            8'd{grp}: lane_kv_r{i} = kv_word{bank}[{}:{}];",
                    16 * e + 15,
                    16 * e
                );
            }
            let e = elem(0);
            let _ = writeln!(w, "            default: lane_kv_r{i} = kv_word{bank}[{}:{}];\n        endcase\n    end\n    assign lane_kv_{i} = lane_kv_r{i};", 16 * e + 15, 16 * e);
        }
    }
    let _ = writeln!(w);
}

/// Where lane `i` finds its key/value element in the word head group `grp` reads: its
/// key/value head's place in the plane, then its place in the head.
fn kv_lane_element(p: &ChipParams, s: &Shape, i: usize, grp: usize) -> usize {
    let Shape {
        hs,
        deff,
        g,
        kv_mul,
        ..
    } = *s;
    let c = i % deff;
    // the group's first head (column 0's; head pairs read the same key/value head)
    let first = grp * g * s.hc;
    let kv_head = (first + c / hs) / kv_mul;
    let plane = (first / kv_mul) / p.kv_heads_per_word();
    (kv_head - plane * p.kv_heads_per_word()) * hs + c % hs
}

/// Every lane finds its key/value element at the same place whatever the head group
/// (one head group, or planes of one key/value head): no select by the head group.
fn kv_elements_fixed(p: &ChipParams, s: &Shape) -> bool {
    (0..s.l).all(|i| {
        (0..s.ngroups).all(|grp| kv_lane_element(p, s, i, grp) == kv_lane_element(p, s, i, 0))
    })
}

/// The adder tree over the lanes, with its sideband.
fn adder_tree(w: &mut String, _p: &ChipParams, s: &Shape) {
    let Shape {
        l, lg, hl, pipe, ..
    } = *s;
    let _ = writeln!(
        w,
        "    // Adder tree over the lanes' accumulators (as they are written), with its sideband:
    // level {hl} feeds the head units (sums over one head), level {lg} the controller."
    );
    // The sideband travels with the micro-operation to the accumulators (A).
    let sb = delay(
        w,
        32,
        "{vc_u_score, vc_u_sum, vc_u_saddr, vc_u_tbase}",
        "sb_a",
        2 + pipe.a_shift(),
    );
    for level in 0..=lg {
        let n = l >> level;
        for j in 0..n {
            let _ = writeln!(w, "    reg [47:0] tree_l{level}_{j};");
        }
        let _ = writeln!(w, "    reg [31:0] tree_sb{level};");
        if s.hc == 2 && level <= hl {
            for j in 0..n {
                let _ = writeln!(w, "    reg [47:0] tree1_l{level}_{j};");
            }
        }
    }
    let _ = writeln!(
        w,
        "    always @(posedge clk) begin\n        tree_sb0 <= {sb};"
    );
    for i in 0..l {
        let _ = writeln!(w, "        tree_l0_{i} <= lane_sum_{i};");
    }
    for level in 1..=lg {
        let _ = writeln!(w, "        tree_sb{level} <= tree_sb{};", level - 1);
        tree_level(w, "tree", level, l >> level);
    }
    if s.hc == 2 {
        // head pairs: the lanes' second products, summed over a head
        for i in 0..l {
            let _ = writeln!(w, "        tree1_l0_{i} <= lane_sum1_{i};");
        }
        for level in 1..=hl {
            tree_level(w, "tree1", level, l >> level);
        }
    }
    let _ = writeln!(
        w,
        "    end
    assign tree_top = tree_l{lg}_0;
    assign tree_valid = tree_sb{lg}[30];
    assign tree_tag = tree_sb{lg}[29:16];
    wire unused_tree_sb = ^{{tree_sb{lg}[31], tree_sb{lg}[15:0], tree_sb{hl}[30]}};
"
    );
}

/// Level `level` of adder tree `tree`: its `n` sums of two of the level below.
fn tree_level(w: &mut String, tree: &str, level: usize, n: usize) {
    for j in 0..n {
        let _ = writeln!(
            w,
            "        {tree}_l{level}_{j} <= {tree}_l{}_{} + {tree}_l{}_{};",
            level - 1,
            2 * j,
            level - 1,
            2 * j + 1
        );
    }
}

/// The argmax tree over the lanes.
fn argmax_tree(w: &mut String, _p: &ChipParams, s: &Shape) {
    let Shape { l, lg, .. } = *s;
    let _ = writeln!(
        w,
        "    // Argmax over the lanes: the largest value, the first index on ties."
    );
    for level in 0..=lg {
        let n = l >> level;
        let kind = if level == 0 { "wire" } else { "reg" };
        for j in 0..n {
            let _ = writeln!(w, "    {kind} am_v{level}_{j};\n    {kind} [15:0] am_x{level}_{j};\n    {kind} [19:0] am_i{level}_{j};");
        }
    }
    // The index: slot (12 bits) and lane, zero-extended to 20 bits (256 lanes fill them).
    let pad = match 20 - 12 - lg {
        0 => String::new(),
        bits => format!("{bits}'d0, "),
    };
    for i in 0..l {
        let _ = writeln!(
            w,
            "    assign am_v0_{i} = lane_amv_{i};\n    assign am_x0_{i} = lane_amx_{i};\n    assign am_i0_{i} = {{{pad}lane_ams_{i}, {lg}'d{i}}};"
        );
    }
    let _ = writeln!(w, "    always @(posedge clk) begin");
    for level in 1..=lg {
        for j in 0..(l >> level) {
            let (a, b) = (2 * j, 2 * j + 1);
            let pl = level - 1;
            let _ = writeln!(
                w,
                "        if (am_v{pl}_{a} && (!am_v{pl}_{b} || $signed(am_x{pl}_{a}) > $signed(am_x{pl}_{b}) || (am_x{pl}_{a} == am_x{pl}_{b} && am_i{pl}_{a} < am_i{pl}_{b}))) begin
            am_v{level}_{j} <= am_v{pl}_{a}; am_x{level}_{j} <= am_x{pl}_{a}; am_i{level}_{j} <= am_i{pl}_{a};
        end else begin
            am_v{level}_{j} <= am_v{pl}_{b}; am_x{level}_{j} <= am_x{pl}_{b}; am_i{level}_{j} <= am_i{pl}_{b};
        end"
            );
        }
    }
    let _ = writeln!(
        w,
        "    end
    assign am_valid = am_v{lg}_0;
    assign am_val = am_x{lg}_0;
    assign am_idx = am_i{lg}_0;
"
    );
}

/// The attention head units, and the outputs nobody reads.
fn head_units(w: &mut String, p: &ChipParams, s: &Shape) {
    let Shape { hl, np, .. } = *s;
    let dreg = s.pipe.score_difference_registered() as u8;
    // with head pairs, units g.. take the second heads (the second adder tree)
    let g = s.g * s.hc;
    let _ = writeln!(
        w,
        "    // Attention head units: {np} position group(s) × {g} head(s)."
    );
    for pp in 0..np {
        for h in 0..g {
            let _ = writeln!(
                w,
                "    wire [47:0] head_max_{pp}_{h};\n    wire head_have_{pp}_{h};\n    wire [15:0] head_pw_{pp}_{h}, head_rmult_{pp}_{h};\n    wire [31:0] head_sum_{pp}_{h};\n    wire [5:0] head_rshift_{pp}_{h};"
            );
        }
    }
    for h in 0..g {
        // The maximum over position groups (signed, among groups that saw a score).
        let _ = writeln!(w, "    reg [47:0] head_maxall_{h};\n    always @(*) begin\n        head_maxall_{h} = head_max_0_{h};");
        for pp in 1..np {
            let _ = writeln!(
                w,
                "        if (head_have_{pp}_{h} && $signed(head_max_{pp}_{h}) > $signed(head_maxall_{h})) head_maxall_{h} = head_max_{pp}_{h};"
            );
        }
        let _ = writeln!(w, "    end");
        let sums: Vec<String> = (0..np).map(|pp| format!("head_sum_{pp}_{h}")).collect();
        let _ = writeln!(w, "    wire [31:0] head_sumall_{h} = {};", sums.join(" + "));
    }
    for pp in 0..np {
        for h in 0..g {
            let score = if h < s.g {
                format!("tree_l{hl}_{}", pp * s.g + h)
            } else {
                format!("tree1_l{hl}_{}", h - s.g)
            };
            let _ = writeln!(
                w,
                "    etch_head u_head_{pp}_{h} (
        .clock(clk), .reset(rst), .my_p(3'd{pp}), .pos(vc_h_pos),
        .score({score}), .s_valid(tree_sb{hl}[31]), .s_addr(tree_sb{hl}[29:16]), .s_tbase(tree_sb{hl}[15:0]),
        .max_clear(vc_h_max_clear), .combine(vc_h_combine), .max_all(head_maxall_{h}),
        .r_go(vc_h_r_go), .r_addr(vc_h_r_addr), .r_tbase(vc_h_r_tbase),
        .score_mult(vc_score_mult), .score_shift(vc_score_shift), .dreg(1'd{dreg}),
        .sum_clear(vc_h_sum_clear), .recip_go(vc_h_recip_go), .sum_all(head_sumall_{h}), .radj(vc_radj),
        .max(head_max_{pp}_{h}), .have(head_have_{pp}_{h}), .pw(head_pw_{pp}_{h}), .sum(head_sum_{pp}_{h}),
        .rmult(head_rmult_{pp}_{h}), .rshift(head_rshift_{pp}_{h})
    );"
            );
        }
    }
    // Outputs nobody reads, gathered so that lint sees them used on purpose.
    let mut unused = vec!["vc_busy".to_string()];
    if kv_elements_fixed(p, s) {
        unused.push("g_e".to_string());
    }
    if p.kv_planes() == 1 {
        unused.push("vc_kv_wplane".to_string());
    }
    if s.hc == 1 {
        unused.push("vc_u_c1".to_string());
    }
    for pp in 0..np {
        for h in 0..g {
            if pp > 0 {
                unused.push(format!("head_rmult_{pp}_{h}"));
                unused.push(format!("head_rshift_{pp}_{h}"));
            } else {
                unused.push(format!("head_have_{pp}_{h}"));
            }
        }
    }
    let _ = writeln!(w, "    wire unused_outputs = ^{{{}}};", unused.join(", "));
    let _ = writeln!(w, "\nendmodule");
}
