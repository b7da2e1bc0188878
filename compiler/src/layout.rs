//! Placement: where every activation lives in the lanes' activation RAM, and the ROM
//! images — every weight, requantization constant and gain at the address the
//! schedule names.
//!
//! Vectors are striped across the lanes: element `e` of a vector that starts at slot
//! `s` sits in lane `e % L` at slot `s + e / L`. A matrix `[rows][cols]` is stored in
//! row groups of `L`: ROM word `base + g·cols + j` holds, in lane `i`, the weight
//! `W[g·L + i][j]`, so that every lane reads its own row's weight for input element
//! `j` in the same cycle. A chip whose lanes take `C` columns per cycle has words `C`
//! times as wide: word `base + g·(cols/C) + j` holds, in lane `i`, the weights
//! `W[g·L + i][j·C + k]` for `k < C` (lane-major, column `k` at the lane's `k`-th
//! field), columns beyond the matrix zero. The requantization ROM holds, per row group, one word per
//! block of `R` lanes (the requantizers): word `(base + g)·(L/R) + k`, in its field
//! `i`, the multiplier and shift of row `g·L + k·R + i`; the gain ROM likewise per
//! slot of each RMSNorm's gains. The schedule names row groups and slots; the chip
//! adds the block.

pub use etch_contract::{LayerPlaces, Layout, MatrixPlace};

use crate::quantize::{QMatrix, QuantizedModel, Requant, GROUP_SCALE_BITS};

/// A model placed on a chip: the layout the manifest records and the ROM images the
/// build writes.
#[derive(Clone, Debug)]
pub struct Placement {
    /// Where every activation and matrix lives.
    pub layout: Layout,
    /// Weight ROM image: the codes.
    pub weights: RomImage,
    /// Group scale ROM image: word `a / (G/C)` holds the scales of weight word `a`'s
    /// group, 4 bits per lane (no words without group scales).
    pub scales: RomImage,
    /// Weight ROM words per group scale, `G / C` (0: no group scales).
    pub group: usize,
    /// The wide weight ROM of a 4-bit model: 8-bit codes of the matrices kept at 8
    /// bits, at weight addresses from [`WIDE_ROM_BASE`] (no words when none are).
    pub wide: RomImage,
    /// Requantization ROM image.
    pub requant: RomImage,
    /// Gain ROM image.
    pub gains: RomImage,
}

/// Weight address of the wide ROM's first word: address bit 23 selects it.
pub const WIDE_ROM_BASE: usize = 1 << 23;

/// A ROM image: `words` of `width` bits, each as little-endian 64-bit limbs.
#[derive(Clone, Debug, Default)]
pub struct RomImage {
    /// Bits per word.
    pub width: usize,
    /// The words.
    pub words: Vec<Vec<u64>>,
}

impl RomImage {
    fn new(width: usize) -> Self {
        RomImage {
            width,
            words: Vec::new(),
        }
    }

    /// A word from `(value, bits)` fields, lane 0 in the low bits.
    fn push_fields(&mut self, fields: impl Iterator<Item = (u64, usize)>) {
        let mut limbs = vec![0u64; self.width.div_ceil(64)];
        let mut at = 0;
        for (v, bits) in fields {
            let v = if bits == 64 {
                v
            } else {
                v & ((1u64 << bits) - 1)
            };
            limbs[at / 64] |= v << (at % 64);
            if at % 64 + bits > 64 {
                limbs[at / 64 + 1] |= v >> (64 - at % 64);
            }
            at += bits;
        }
        self.words.push(limbs);
    }

    /// `$readmemh` text: one word per line, most significant digit first.
    pub fn to_hex(&self) -> String {
        self.words_hex(&self.words)
    }

    /// `$readmemh` text of each of the banks the chip builds this ROM from
    /// (`etch_hdl::prim::rom_banks`), in address order.
    pub fn banks_hex(&self) -> Vec<String> {
        let mut at = 0;
        etch_hdl::prim::rom_banks(self.depth())
            .into_iter()
            .map(|d| {
                let end = (at + d).min(self.words.len());
                let text = self.words_hex(&self.words[at.min(end)..end]);
                at += d;
                text
            })
            .collect()
    }

    fn words_hex(&self, words: &[Vec<u64>]) -> String {
        let digits = self.width.div_ceil(4);
        let mut out = String::with_capacity(words.len() * (digits + 1));
        for word in words {
            for d in (0..digits).rev() {
                let bit = 4 * d;
                let nib = (word[bit / 64] >> (bit % 64)) & 0xF;
                out.push(char::from_digit(nib as u32, 16).unwrap_or('0'));
            }
            out.push('\n');
        }
        if words.is_empty() {
            out.push_str(&"0".repeat(digits));
            out.push('\n');
        }
        out
    }

    /// The 64-bit fold of a word (XOR of its limbs), as the chip's self-test computes it.
    pub fn fold(word: &[u64]) -> u64 {
        word.iter().fold(0, |a, b| a ^ b)
    }

    /// Words, at least one (an empty ROM still has a word of zeros).
    pub fn depth(&self) -> usize {
        self.words.len().max(1)
    }
}

struct Builder {
    lanes: usize,
    /// Weights per lane in a weight word.
    columns: usize,
    /// Requantizers: lanes per word of the requantization and gain ROMs.
    requantizers: usize,
    /// Bits per weight in the ROM (4 or 8): int4 weights are stored packed.
    weight_bits: usize,
    /// Weight ROM words per group scale (0: no group scales).
    group: usize,
    /// Weights per group scale (0: none).
    group_weights: usize,
    weights: RomImage,
    scales: RomImage,
    wide: RomImage,
    requant: RomImage,
    gains: RomImage,
}

/// Where a block of `len` rows goes after `at` rows: right there if it stays within one
/// slot (or fills whole slots from a slot boundary), otherwise at the next boundary.
fn block_start(at: usize, len: usize, lanes: usize) -> usize {
    let off = at % lanes;
    if off == 0 || off + len <= lanes {
        at
    } else {
        at.next_multiple_of(lanes)
    }
}

/// `[wq; wk; wv]` as one matrix with zero rows where the layout needs them, its
/// requantization rows, and where `wk` and `wv` start.
fn fuse_qkv(layer: &crate::quantize::QLayer, lanes: usize) -> (QMatrix, Requant, usize, usize) {
    let (q, k, v) = (&layer.wq.matrix, &layer.wk.matrix, &layer.wv.matrix);
    let k_row = block_start(q.rows, k.rows, lanes);
    let v_row = block_start(k_row + k.rows, v.rows, lanes);
    let rows = v_row + v.rows;
    let cols = q.cols;
    let gpr = q.groups_per_row();
    let mut weights = vec![0i8; rows * cols];
    let mut codes = vec![0i8; rows * cols];
    let mut group_scales = vec![0u8; rows * gpr];
    let mut scales = vec![0f32; rows];
    let mut mult = vec![0u16; rows];
    let mut shift = vec![1u8; rows];
    for (lin, start) in [(&layer.wq, 0), (&layer.wk, k_row), (&layer.wv, v_row)] {
        let m = &lin.matrix;
        weights[start * cols..(start + m.rows) * cols].copy_from_slice(&m.weights);
        codes[start * cols..(start + m.rows) * cols].copy_from_slice(&m.codes);
        group_scales[start * gpr..(start + m.rows) * gpr].copy_from_slice(&m.group_scales);
        scales[start..start + m.rows].copy_from_slice(&m.scales);
        mult[start..start + m.rows].copy_from_slice(&lin.requant.mult);
        shift[start..start + m.rows].copy_from_slice(&lin.requant.shift);
    }
    (
        QMatrix {
            rows,
            cols,
            bits: q.bits,
            weights,
            scales,
            group: q.group,
            codes,
            group_scales,
        },
        Requant { mult, shift },
        k_row,
        v_row,
    )
}

impl Builder {
    /// Appends a word of `codes`, `columns` per lane: to the wide ROM (8 bits each) for a
    /// matrix kept wide, otherwise to the weight ROM (`weight_bits` each) with, when the
    /// word starts a group, the scale ROM word of `scales`.
    fn push_weight_word(
        &mut self,
        wide: bool,
        codes: impl Iterator<Item = i8>,
        scales: impl Iterator<Item = u64>,
    ) {
        if wide {
            self.wide.push_fields(codes.map(|c| (c as u8 as u64, 8)));
            return;
        }
        if self.group != 0 && self.weights.words.len() % self.group == 0 {
            let bits = GROUP_SCALE_BITS as usize;
            self.scales.push_fields(scales.map(|s| (s, bits)));
        }
        let bits = self.weight_bits;
        self.weights
            .push_fields(codes.map(|c| (c as u8 as u64, bits)));
    }

    /// Zero words up to the next group boundary of the weight ROM, or of the wide ROM
    /// (every matrix starts on one, in both, so that one address step serves both).
    fn align_to_group(&mut self, wide: bool) {
        let l = self.lanes;
        let c = self.columns;
        loop {
            let len = if wide { &self.wide } else { &self.weights }.words.len();
            if self.group == 0 || len % self.group == 0 {
                break;
            }
            self.push_weight_word(wide, (0..l * c).map(|_| 0), (0..l).map(|_| 0));
        }
    }

    fn matrix(&mut self, m: &QMatrix) -> MatrixPlace {
        let (l, c) = (self.lanes, self.columns);
        let groups = m.rows.div_ceil(l);
        let (group, gpr) = (self.group_weights, m.groups_per_row());
        // Columns per row group, padded to whole words and whole scale groups.
        let padded = if group == 0 {
            m.cols.next_multiple_of(c)
        } else {
            m.cols.next_multiple_of(group)
        };
        let stride = padded / c;
        // A matrix kept at 8 bits in a 4-bit model lives in the wide ROM.
        let wide = m.bits == 8 && self.weight_bits == 4;
        self.align_to_group(wide);
        let rom_base = if wide {
            WIDE_ROM_BASE + self.wide.words.len()
        } else {
            self.weights.words.len()
        };
        for g in 0..groups {
            for word in 0..stride {
                let row = |i: usize| Some(g * l + i).filter(|&r| r < m.rows);
                // Field `f` of the word: lane `f / C`, column `word·C + f % C`.
                let code = |f: usize| {
                    let j = word * c + f % c;
                    match row(f / c) {
                        Some(r) if j < m.cols => m.codes[r * m.cols + j],
                        _ => 0,
                    }
                };
                let scale = |i| match row(i) {
                    Some(r) if gpr != 0 => m.group_scales[r * gpr + word * c / group] as u64,
                    _ => 0,
                };
                self.push_weight_word(wide, (0..l * c).map(code), (0..l).map(scale));
            }
        }
        MatrixPlace {
            rom_base,
            req_base: 0,
            rows: m.rows,
            cols: m.cols,
            groups,
            stride,
        }
    }

    /// Appends a requantization row group per `L` rows; returns the first group's index.
    fn requant(&mut self, r: &Requant) -> usize {
        let (l, rq) = (self.lanes, self.requantizers);
        let base = self.requant.words.len() / (l / rq);
        for g in 0..r.mult.len().div_ceil(l) {
            for k in 0..l / rq {
                self.requant.push_fields((0..rq).flat_map(|i| {
                    let row = g * l + k * rq + i;
                    let (m, s) = if row < r.mult.len() {
                        (r.mult[row] as u64, r.shift[row] as u64)
                    } else {
                        (0, 1)
                    };
                    [(m, 16), (s, 6)]
                }));
            }
        }
        base
    }

    /// Appends a gain slot per `L` elements; returns the first slot's index.
    fn gains(&mut self, g: &[i16]) -> usize {
        let (l, rq) = (self.lanes, self.requantizers);
        let base = self.gains.words.len() / (l / rq);
        for s in 0..g.len().div_ceil(l) {
            for k in 0..l / rq {
                self.gains.push_fields((0..rq).map(|i| {
                    let e = s * l + k * rq + i;
                    let v = g.get(e).copied().unwrap_or(0);
                    (v as u16 as u64, 16)
                }));
            }
        }
        base
    }

    fn linear(&mut self, lin: &crate::quantize::QLinear) -> MatrixPlace {
        let mut place = self.matrix(&lin.matrix);
        place.req_base = self.requant(&lin.requant);
        place
    }
}

impl Placement {
    /// Places `model` on `lanes` lanes with `datapath` (shared requantizers, input
    /// columns, the queue), with `contexts` contexts of `max_seq` positions.
    pub fn new(
        model: &QuantizedModel,
        lanes: usize,
        datapath: &etch_contract::Datapath,
        contexts: usize,
        max_seq: usize,
    ) -> Self {
        let (requantizers, columns) = (datapath.requantizers, datapath.columns);
        let c = model.config;
        let slots = |n: usize| n.div_ceil(lanes);
        let mut at = 0usize;
        let mut take = |n: usize| {
            let s = at;
            at += slots(n).max(1);
            s
        };
        let x = take(c.dim);
        let xn = take(c.dim);
        let k_row = block_start(c.dim, c.kv_dim(), lanes);
        let v_row = block_start(k_row + c.kv_dim(), c.kv_dim(), lanes);
        let qkv = take(v_row + c.kv_dim());
        let att = take(c.dim);
        let y = take(c.dim);
        let h1 = take(c.hidden_dim);
        let h3 = take(c.hidden_dim);
        let hb = take(c.hidden_dim);
        let logits = take(c.vocab_size);
        let pbuf = take(c.vocab_size);
        let ar_depth = at;

        let weight_bits = model.settings.weight_bits as usize;
        let group_weights = model.settings.group as usize;
        let columns = columns.max(1);
        let group = group_weights / columns;
        let mut b = Builder {
            lanes,
            columns,
            requantizers,
            weight_bits,
            group,
            group_weights,
            weights: RomImage::new(weight_bits * lanes * columns),
            scales: RomImage::new(GROUP_SCALE_BITS as usize * lanes),
            wide: RomImage::new(8 * lanes * columns),
            requant: RomImage::new(22 * requantizers),
            gains: RomImage::new(16 * requantizers),
        };
        let mut layers = Vec::with_capacity(c.n_layers);
        for layer in &model.layers {
            let (fused, requant, _, _) = fuse_qkv(layer, lanes);
            let mut wqkv = b.matrix(&fused);
            wqkv.req_base = b.requant(&requant);
            layers.push(LayerPlaces {
                wqkv,
                wo: b.linear(&layer.wo),
                w1: b.linear(&layer.w1),
                w3: b.linear(&layer.w3),
                w2: b.linear(&layer.w2),
                att_gain: b.gains(&layer.att_norm.gain),
                ffn_gain: b.gains(&layer.ffn_norm.gain),
            });
        }
        let final_gain = b.gains(&model.final_norm.gain);
        let mut embedding = b.matrix(&model.token_embedding);
        let embed_req_base = b.requant(&model.embed_requant);
        embedding.req_base = embed_req_base;
        let mut classifier = match &model.classifier {
            Some(m) => b.matrix(m),
            None => embedding.clone(),
        };
        classifier.req_base = b.requant(&model.classifier_requant);
        b.align_to_group(false);
        let positions = (lanes / c.dim).max(1);
        let layout = Layout {
            lanes,
            columns,
            requantizers,
            vop_queue: datapath.vop_queue,
            contexts,
            max_seq,
            positions,
            rows_per_layer: max_seq.div_ceil(positions),
            kv_beats: c.kv_dim().div_ceil(4),
            x,
            xn,
            qkv,
            k_row,
            v_row,
            att,
            y,
            h1,
            h3,
            hb,
            logits,
            pbuf,
            ar_depth,
            layers,
            embedding,
            classifier,
            embed_req_base,
            final_gain,
        };
        Placement {
            layout,
            weights: b.weights,
            scales: b.scales,
            wide: b.wide,
            group,
            requant: b.requant,
            gains: b.gains,
        }
    }

    /// The ROM self-test signature the chip must report: over every word of the
    /// weight, requantization and gain ROMs in that order,
    /// `sig = rotl(sig, 1) ^ fold64(word)`, where a weight word's fold also takes in
    /// the fold of its group's scale word (every scale word is read with each of the
    /// `G` weight words of its group), and the wide ROM's words follow the weight
    /// ROM's.
    pub fn rom_signature(&self) -> u64 {
        let mut sig = 0u64;
        for (a, w) in self.weights.words.iter().enumerate() {
            let scale = self
                .scales
                .words
                .get(a / self.group.max(1))
                .map_or(0, |s| RomImage::fold(s));
            sig = sig.rotate_left(1) ^ RomImage::fold(w) ^ scale;
        }
        if self.weights.words.is_empty() {
            sig = sig.rotate_left(1);
        }
        for w in &self.wide.words {
            sig = sig.rotate_left(1) ^ RomImage::fold(w);
        }
        for rom in [&self.requant, &self.gains] {
            let zero = vec![0u64; rom.width.div_ceil(64)];
            let words: Box<dyn Iterator<Item = &Vec<u64>>> = if rom.words.is_empty() {
                Box::new(std::iter::once(&zero))
            } else {
                Box::new(rom.words.iter())
            };
            for w in words {
                sig = sig.rotate_left(1) ^ RomImage::fold(w);
            }
        }
        sig
    }
}
