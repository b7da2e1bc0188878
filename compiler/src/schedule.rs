//! The scheduler: the firmware of a chip, as assembly.
//!
//! Two parts. The **command loop** fetches descriptors from the submission ring by DMA,
//! checks them, runs them, and posts a completion with the ring's phase bit and an
//! interrupt (`docs/registers.md`). The **per-token schedule** is one vector
//! operation per step of `forward()`, each with a row of the parameter table that
//! names the activation slots, ROM addresses and requantization constants of that
//! step; it reads like `run.c`'s forward pass.
//!
//! Register conventions: `r1` token, `r2` position, `r3` context, `r10` submission
//! head, `r11` completion tail, `r12` phase, `r13` command flags, `r15` link.

use std::fmt::Write;

use etch_firmware::descriptor::{flags, reason, Opcode, Status, SAVE_MAGIC, SAVE_VERSION};
use etch_firmware::isa::{Params, VKind};
use etch_firmware::{assemble, regs, Program};

use crate::error::{Error, Result};
use crate::layout::Layout;
use crate::quantize::QuantizedModel;

/// Version of the firmware the scheduler writes (FW_VERSION).
pub const FIRMWARE_VERSION: u32 = 1;

/// Scratchpad words used by the command loop.
mod spad {
    // Words 0..16: the command being executed.
    pub const CPL: u32 = 16; // 4 words: the completion
    pub const REC: u32 = 20; // 2 words: a token or score record
    pub const REASON: u32 = 22; // why a GENERATE stopped
    pub const CTX: u32 = 32; // 2 words per context: valid, position
    pub const TOK: u32 = 96; // 2 words: a beat of tokens
    pub const BLOCK: u32 = 128; // 32 words: identify block, save header
}

/// Parameter rows, numbered as they are added.
#[derive(Default)]
struct ParamTable {
    rows: Vec<(VKind, Params)>,
}

impl ParamTable {
    fn add(&mut self, kind: VKind, fields: &[i64]) -> usize {
        let mut row = [0u16; 16];
        for (slot, &v) in row.iter_mut().zip(fields) {
            *slot = v as u16;
        }
        self.rows.push((kind, row));
        self.rows.len() - 1
    }
}

/// The firmware of a chip: the program and its assembly source.
pub struct Firmware {
    /// Assembled program.
    pub program: Program,
    /// Assembly source (written to `OUT/firmware.s`).
    pub source: String,
}

fn split24(v: u64) -> (i64, i64) {
    ((v & 0xFFFF) as i64, (v >> 16) as i64)
}

/// Writes and assembles the firmware for `model` laid out as `layout`.
pub fn firmware(model: &QuantizedModel, layout: &Layout) -> Result<Firmware> {
    let c = model.config;
    let f = &model.formats;
    let l = layout;
    let mut pt = ParamTable::default();
    let mut s = String::new();
    let w = &mut s;

    // Parameter rows of the per-token schedule.
    let p_bist = pt.add(VKind::Bist, &[]);
    let p_embed = pt.add(VKind::Embed, &[l.x as i64, c.dim as i64]);
    let p_sincos = pt.add(VKind::Sincos, &[(c.head_size() / 2) as i64]);
    // RoPE over queries and keys: one pass when the keys follow the queries directly.
    let lanes = l.lanes;
    let rope_rows: Vec<usize> = if l.k_row == c.dim {
        vec![pt.add(VKind::Rope, &[l.qkv as i64, (c.dim + c.kv_dim()) as i64])]
    } else {
        vec![
            pt.add(VKind::Rope, &[l.qkv as i64, c.dim as i64]),
            pt.add(
                VKind::Rope,
                &[(l.qkv + l.k_row / lanes) as i64, c.kv_dim() as i64],
            ),
        ]
    };
    let segments = |row: usize| ((row % lanes) + c.kv_dim()).div_ceil(lanes) as i64;
    let p_kvs = pt.add(
        VKind::Kvstore,
        &[
            (l.qkv + l.k_row / lanes) as i64,
            (l.qkv + l.v_row / lanes) as i64,
            (l.k_row % lanes) as i64,
            (l.v_row % lanes) as i64,
            segments(l.k_row),
            segments(l.v_row),
        ],
    );
    let p_add = pt.add(VKind::Add, &[l.x as i64, l.y as i64, c.dim as i64]);
    let eps = model.rms_eps;
    let norm = |pt: &mut ParamTable, gain_base: usize, frac: u32, out: u32| {
        let adj = frac as i64 - out as i64;
        pt.add(
            VKind::Rmsnorm,
            &[
                l.x as i64,
                l.xn as i64,
                c.dim as i64,
                gain_base as i64,
                (eps & 0xFFFF) as i64,
                ((eps >> 16) & 0xFFFF) as i64,
                ((eps >> 32) & 0xFFFF) as i64,
                adj & 63,
            ],
        )
    };
    let matvec = |pt: &mut ParamTable, m: &crate::layout::MatrixPlace, input: usize, out: usize| {
        let (lo, hi) = split24(m.rom_base as u64);
        pt.add(
            VKind::Matvec,
            &[
                input as i64,
                out as i64,
                m.cols as i64,
                m.groups as i64,
                lo,
                hi,
                m.req_base as i64,
            ],
        )
    };
    struct LayerRows {
        att_norm: usize,
        wqkv: usize,
        attn: usize,
        wo: usize,
        ffn_norm: usize,
        w1: usize,
        w3: usize,
        swiglu: usize,
        w2: usize,
    }
    let mut layer_rows = Vec::new();
    for (i, (layer, lf)) in model.layers.iter().zip(&f.layers).enumerate() {
        let places = &l.layers[i];
        let sig = lf.h1 as i64 - 7;
        let (sig_mult, sig_shift) = if sig >= 0 {
            (1, sig)
        } else {
            (1i64 << (-sig), 0)
        };
        layer_rows.push(LayerRows {
            att_norm: norm(&mut pt, places.att_gain, layer.att_norm.frac, lf.xn_att),
            wqkv: matvec(&mut pt, &places.wqkv, l.xn, l.qkv),
            attn: pt.add(
                VKind::Attn,
                &[
                    l.qkv as i64,
                    l.att as i64,
                    layer.score_mult as i64,
                    layer.score_shift as i64,
                    (lf.v as i64 - lf.att as i64) & 63,
                ],
            ),
            wo: matvec(&mut pt, &places.wo, l.att, l.y),
            ffn_norm: norm(&mut pt, places.ffn_gain, layer.ffn_norm.frac, lf.xn_ffn),
            w1: matvec(&mut pt, &places.w1, l.xn, l.h1),
            w3: matvec(&mut pt, &places.w3, l.xn, l.h3),
            swiglu: pt.add(
                VKind::Swiglu,
                &[
                    l.h1 as i64,
                    l.h3 as i64,
                    l.hb as i64,
                    c.hidden_dim as i64,
                    sig_mult,
                    sig_shift,
                    (15 + lf.h1 + lf.h3 - lf.hb) as i64,
                ],
            ),
            w2: matvec(&mut pt, &places.w2, l.hb, l.y),
        });
    }
    let p_final = norm(&mut pt, l.final_gain, model.final_norm.frac, f.xn_final);
    let p_cls = matvec(&mut pt, &l.classifier, l.xn, l.logits);
    let sample_row = [
        l.logits as i64,
        c.vocab_size as i64,
        l.pbuf as i64,
        model.temp_mult as i64,
        model.temp_shift as i64,
    ];
    let p_sample = pt.add(VKind::Sample, &sample_row);
    let p_logprob = pt.add(VKind::Logprob, &sample_row);
    let p_dump = pt.add(VKind::DmaOut, &[l.logits as i64, c.vocab_size as i64]);
    let p_seed = pt.add(VKind::Seed, &[]);
    let kv = pt.add(VKind::KvSave, &[c.n_layers as i64, l.rows_per_layer as i64]);
    let p_kvload = pt.add(VKind::KvLoad, &[c.n_layers as i64, l.rows_per_layer as i64]);

    // Constants.
    let logit_bytes = c.vocab_size.div_ceil(4) * 8;
    let kv_row_bytes = l.kv_beats * 8;
    let _ = writeln!(
        w,
        "; etch firmware: {} lanes, {} contexts of {} positions",
        l.lanes, l.contexts, l.max_seq
    );
    for (name, v) in [
        ("VOCAB", c.vocab_size as i64),
        ("MAXSEQ", l.max_seq as i64),
        ("CONTEXTS", l.contexts as i64),
        ("LAYERS", c.n_layers as i64),
        ("CTX_STRIDE", (c.n_layers * l.rows_per_layer) as i64),
        ("LG", l.lanes.trailing_zeros() as i64),
        ("DIM", c.dim as i64),
        ("EMB_BASE", l.embedding.rom_base as i64),
        ("EMB_REQ", l.embed_req_base as i64),
        ("LOGIT_BYTES", logit_bytes as i64),
        ("SAVE_BYTES_PER_POS", (2 * c.n_layers * kv_row_bytes) as i64),
        ("CPL", spad::CPL as i64),
        ("REC", spad::REC as i64),
        ("CTX", spad::CTX as i64),
        ("TOK", spad::TOK as i64),
        ("BLOCK", spad::BLOCK as i64),
        ("ST_OPCODE", Status::InvalidOpcode as i64),
        ("ST_BADCTX", Status::InvalidContext as i64),
        ("ST_EXISTS", Status::ContextExists as i64),
        ("ST_NOCTX", Status::NoContext as i64),
        ("ST_FULL", Status::ContextFull as i64),
        ("ST_TOKEN", Status::InvalidToken as i64),
        ("ST_DMA", Status::DmaError as i64),
        ("ST_ABORTED", Status::Aborted as i64),
        ("ST_BADSAVE", Status::BadSaveImage as i64),
        ("RS_STOP", reason::STOP_TOKEN as i64),
        ("RS_FULL", reason::CONTEXT_FULL as i64),
        ("RS_ABORT", reason::ABORTED as i64),
        ("REASON", spad::REASON as i64),
        ("F_DEBUG", flags::DEBUG_LOGITS as i64),
        ("SAVE_MAGIC", SAVE_MAGIC as i64),
        ("SAVE_VERSION", SAVE_VERSION as i64),
    ] {
        let _ = writeln!(w, ".equ {name} {v}");
    }
    for (i, (kind, row)) in pt.rows.iter().enumerate() {
        let _ = write!(w, ".param {i} {}", kind.name());
        for v in row {
            let _ = write!(w, " {v}");
        }
        let _ = writeln!(w);
    }

    // ------------------------------------------------------------------ boot
    let _ = writeln!(
        w,
        "
; ---- boot: ROM self-test, empty context table, ready
boot:
    vop bist, {p_bist}
    csrr r4, VRES_LO
    csrw ROM_SIG_LO, r4
    csrr r4, VRES_HI
    csrw ROM_SIG_HI, r4
    call reset_contexts
    li r4, 1
    csrw STATUS, r4
    li r10, 0
    li r11, 0
    li r12, 1

; ---- the command loop
main:
    csrw SQ_HEAD, r10
    waitne r10, SQ_TAIL
    csrr r4, SQ_BASE_LO
    csrr r5, SQ_BASE_HI
    shli r5, r5, 32
    or r4, r4, r5
    shli r6, r10, 6
    add r4, r4, r6
    dmard r8, r0, r4, 16
    addi r10, r10, 1
    csrr r5, SQ_SIZE
    bne r10, r5, fetched
    li r10, 0
fetched:
    li r4, 3
    csrw STATUS, r4
    li r9, 0
    li r14, 0
    st r0, REASON(r0)
    li r2, 0
    beq r8, r0, decode
    li r9, ST_DMA
    jmp complete
decode:
    ld r4, 0(r0)
    andi r5, r4, 255
    shri r13, r4, 8
    andi r13, r13, 255
    shri r3, r4, 16
    andi r3, r3, 255"
    );
    for (op, label) in [
        (Opcode::Identify, "cmd_identify"),
        (Opcode::CreateContext, "cmd_create"),
        (Opcode::DestroyContext, "cmd_destroy"),
        (Opcode::Prefill, "cmd_prefill"),
        (Opcode::Generate, "cmd_generate"),
        (Opcode::Score, "cmd_score"),
        (Opcode::SaveContext, "cmd_save"),
        (Opcode::RestoreContext, "cmd_restore"),
        (Opcode::Abort, "complete"),
        (Opcode::Reset, "cmd_reset"),
    ] {
        let _ = writeln!(w, "    li r6, {}\n    beq r5, r6, {label}", op as u8);
    }
    let _ = writeln!(
        w,
        "    li r9, ST_OPCODE
    jmp complete

; ---- completion: id, status | phase << 16 | reason << 24, result (r14), position (r2)
;      (words 16..19 of the scratchpad; posted as two beats, the phase beat last)
complete:
    ld r4, 1(r0)
    st r4, CPL(r0)
    shli r5, r12, 16
    or r5, r5, r9
    ld r6, REASON(r0)
    shli r6, r6, 24
    or r5, r5, r6
    st r5, 17(r0)
    st r14, 18(r0)
    st r2, 19(r0)
    addi r6, r11, 1
    csrr r5, CQ_SIZE
    bne r6, r5, cq_room
    li r6, 0
cq_room:
    csrr r5, CQ_HEAD
    beq r5, r6, cq_room
    csrr r4, CQ_BASE_LO
    csrr r5, CQ_BASE_HI
    shli r5, r5, 32
    or r4, r4, r5
    shli r5, r11, 4
    add r4, r4, r5
    ; result and position first, the beat with the phase bit last: a host polling the
    ; ring never sees a new phase beside a stale result
    addi r9, r4, 8
    li r5, 18
    dmawr r8, r5, r9, 2
    li r5, CPL
    dmawr r8, r5, r4, 2
    bne r6, r0, cq_nowrap
    li r5, 1
    xor r12, r12, r5
cq_nowrap:
    add r11, r6, r0
    csrw CQ_TAIL, r11
    li r4, 1
    csrw STATUS, r4
    irq 0
    jmp main"
    );

    // ------------------------------------------------------------------ helpers
    let _ = writeln!(
        w,
        "
; ---- context helpers: r3 = context; r4 = its table address; r2 = its position
ctx_check:
    li r5, CONTEXTS
    bltu r3, r5, ctx_in_range
    li r9, ST_BADCTX
    jmp complete
ctx_in_range:
    shli r4, r3, 1
    addi r4, r4, CTX
    ld r2, 1(r4)
    jr r15

ctx_live:
    ld r5, 0(r4)
    bne r5, r0, ctx_is_live
    li r9, ST_NOCTX
    li r2, 0
    jmp complete
ctx_is_live:
    jr r15

reset_contexts:
    li r5, 0
    li r6, CONTEXTS
reset_loop:
    shli r4, r5, 1
    st r0, CTX(r4)
    st r0, 33(r4)
    addi r5, r5, 1
    bne r5, r6, reset_loop
    jr r15

; load token i (r6) of the array at command word 2 into r1 (a beat of two tokens)
load_token:
    ldd r4, 2(r0)
    andi r5, r6, 0xFFFFFFFE
    shli r5, r5, 2
    add r4, r4, r5
    li r5, TOK
    dmard r8, r5, r4, 2
    beq r8, r0, load_token_ok
    li r9, ST_DMA
    jmp complete
load_token_ok:
    andi r5, r6, 1
    ld r1, TOK(r5)
    li r5, VOCAB
    bltu r1, r5, load_token_in_vocab
    li r9, ST_TOKEN
    jmp complete
load_token_in_vocab:
    jr r15"
    );

    // ------------------------------------------------------------------ commands
    let _ = writeln!(
        w,
        "
; ---- IDENTIFY: 32 words to address A"
    );
    let _ = writeln!(w, "cmd_identify:");
    let idents: Vec<u16> = (0..24u16)
        .chain([regs::ROM_SIG_LO, regs::ROM_SIG_HI])
        .collect();
    for (k, reg) in idents.iter().enumerate() {
        let _ = writeln!(
            w,
            "    csrr r4, {reg}\n    st r4, {}(r0)",
            spad::BLOCK as usize + k
        );
    }
    for k in idents.len()..32 {
        let _ = writeln!(w, "    st r0, {}(r0)", spad::BLOCK as usize + k);
    }
    let _ = writeln!(
        w,
        "    ldd r4, 2(r0)
    li r5, BLOCK
    dmawr r8, r5, r4, 32
    beq r8, r0, complete
    li r9, ST_DMA
    jmp complete

; ---- RESET: every context freed
cmd_reset:
    call reset_contexts
    jmp complete

; ---- CREATE_CONTEXT / DESTROY_CONTEXT
cmd_create:
    call ctx_check
    ld r5, 0(r4)
    beq r5, r0, create_ok
    li r9, ST_EXISTS
    jmp complete
create_ok:
    li r5, 1
    st r5, 0(r4)
    st r0, 1(r4)
    li r2, 0
    jmp complete
cmd_destroy:
    call ctx_check
    call ctx_live
    st r0, 0(r4)
    st r0, 1(r4)
    li r2, 0
    jmp complete

; ---- the forward pass: r1 token, r2 position, r3 context
forward:
    shri r4, r1, LG
    muli r5, r4, DIM
    addi r5, r5, EMB_BASE
    addi r6, r4, EMB_REQ
    vop embed, {p_embed}, r1, r5, r6
    vop sincos, {p_sincos}, r2
    muli r7, r3, CTX_STRIDE"
    );
    for (i, rows) in layer_rows.iter().enumerate() {
        let _ = writeln!(
            w,
            "    ; layer {i}
    addi r8, r7, {base}
    vop rmsnorm, {an}
    vop matvec, {wqkv}
{rope}    vop kvstore, {p_kvs}, r2, r8
    vop attn, {at}, r2, r8
    vop matvec, {wo}
    vop add, {p_add}
    vop rmsnorm, {fnorm}
    vop matvec, {w1}
    vop matvec, {w3}
    vop swiglu, {sw}
    vop matvec, {w2}
    vop add, {p_add}",
            base = i * l.rows_per_layer,
            an = rows.att_norm,
            wqkv = rows.wqkv,
            rope = rope_rows
                .iter()
                .map(|r| format!("    vop rope, {r}\n"))
                .collect::<String>(),
            at = rows.attn,
            wo = rows.wo,
            fnorm = rows.ffn_norm,
            w1 = rows.w1,
            w3 = rows.w3,
            sw = rows.swiglu,
            w2 = rows.w2,
        );
    }
    let _ = writeln!(
        w,
        "    vop rmsnorm, {p_final}
    vop matvec, {p_cls}
    jr r15

; after a forward pass: logits to B + step · LOGIT_BYTES in debug mode (r14 = step)
debug_dump:
    andi r5, r13, F_DEBUG
    beq r5, r0, debug_done
    ldd r4, 10(r0)
    muli r5, r14, LOGIT_BYTES
    add r4, r4, r5
    vop dmaout, {p_dump}, r4
    csrr r5, VRES_LO
    beq r5, r0, debug_done
    li r9, ST_DMA
    jmp complete
debug_done:
    jr r15

; abort requested through CONTROL?
check_abort:
    csrr r5, CONTROL
    andi r5, r5, 1
    beq r5, r0, no_abort
    csrr r5, CONTROL
    andi r5, r5, 0xFFFFFFFE
    csrw CONTROL, r5
    li r9, ST_ABORTED
    li r6, RS_ABORT
    st r6, REASON(r0)
    jmp complete
no_abort:
    jr r15

; ---- PREFILL: N tokens from A
cmd_prefill:
    call ctx_check
    call ctx_live
    ld r6, 4(r0)
    add r5, r2, r6
    li r8, MAXSEQ
    bgeu r8, r5, prefill_fits
    li r9, ST_FULL
    jmp complete
prefill_fits:
    li r14, 0
prefill_loop:
    ld r6, 4(r0)
    beq r14, r6, complete
    add r6, r14, r0
    call load_token
    call forward
    call debug_dump
    addi r2, r2, 1
    shli r4, r3, 1
    st r2, 33(r4)
    addi r14, r14, 1
    call check_abort
    jmp prefill_loop

; ---- GENERATE: feed the token of word 5, then sample and feed back, N tokens to A
cmd_generate:
    call ctx_check
    call ctx_live
    ld r1, 5(r0)
    li r5, VOCAB
    bltu r1, r5, generate_token_ok
    li r9, ST_TOKEN
    jmp complete
generate_token_ok:
    ldd r4, 8(r0)
    vop seed, {p_seed}, r4
    li r14, 0
generate_loop:
    ld r6, 4(r0)
    beq r14, r6, complete
    li r5, MAXSEQ
    bltu r2, r5, generate_room
    li r9, ST_FULL
    li r6, RS_FULL
    st r6, REASON(r0)
    jmp complete
generate_room:
    call forward
    call debug_dump
    addi r2, r2, 1
    shli r4, r3, 1
    st r2, 33(r4)
    ld r4, 6(r0)
    andi r5, r4, 0xFFFF
    shri r6, r4, 16
    vop sample, {p_sample}, r5, r6
    csrr r1, VRES_LO
    st r1, REC(r0)
    csrr r5, CYCLE_LO
    st r5, 21(r0)
    ldd r4, 2(r0)
    shli r5, r14, 3
    add r4, r4, r5
    li r5, REC
    dmawr r8, r5, r4, 2
    beq r8, r0, generate_written
    li r9, ST_DMA
    jmp complete
generate_written:
    addi r14, r14, 1
    ld r4, 14(r0)
    andi r4, r4, 255
    li r5, 0
stop_loop:
    beq r5, r4, stop_none
    shri r6, r5, 1
    addi r6, r6, 12
    ld r6, 0(r6)
    andi r8, r5, 1
    beq r8, r0, stop_low
    shri r6, r6, 16
stop_low:
    andi r6, r6, 0xFFFF
    bne r6, r1, stop_next
    li r6, RS_STOP
    st r6, REASON(r0)
    jmp complete
stop_next:
    addi r5, r5, 1
    jmp stop_loop
stop_none:
    call check_abort
    jmp generate_loop

; ---- SCORE: N tokens from A; log-probabilities of tokens 1..N to B (8-byte records)
cmd_score:
    call ctx_check
    call ctx_live
    ld r6, 4(r0)
    add r5, r2, r6
    li r8, MAXSEQ
    bgeu r8, r5, score_fits
    li r9, ST_FULL
    jmp complete
score_fits:
    li r14, 0
    ld r6, 4(r0)
    beq r6, r0, complete
    li r6, 0
    call load_token
score_loop:
    call forward
    addi r2, r2, 1
    shli r4, r3, 1
    st r2, 33(r4)
    addi r14, r14, 1
    ld r6, 4(r0)
    beq r14, r6, complete
    add r6, r14, r0
    call load_token
    vop logprob, {p_logprob}, r1
    csrr r4, VRES_LO
    st r4, REC(r0)
    st r1, 21(r0)
    ldd r4, 10(r0)
    addi r5, r14, -1
    shli r5, r5, 3
    add r4, r4, r5
    li r5, REC
    dmawr r8, r5, r4, 2
    beq r8, r0, score_written
    li r9, ST_DMA
    jmp complete
score_written:
    call check_abort
    jmp score_loop

; ---- SAVE_CONTEXT: a 64-byte header (magic, version, position, layers, row bytes,
; model identity) and the KV rows, to A
cmd_save:
    call ctx_check
    call ctx_live
    li r4, SAVE_MAGIC
    st r4, BLOCK(r0)
    li r4, SAVE_VERSION
    st r4, 129(r0)
    st r2, 130(r0)
    li r4, LAYERS
    st r4, 131(r0)
    li r4, {kv_row_bytes}
    st r4, 132(r0)
    li r4, MAXSEQ
    st r4, 133(r0)
    st r0, 134(r0)
    st r0, 135(r0)",
    );
    for k in 0..8 {
        let _ = writeln!(
            w,
            "    csrr r4, {}\n    st r4, {}(r0)",
            regs::MODEL_ID0 + k,
            spad::BLOCK + 8 + k as u32
        );
    }
    let _ = writeln!(
        w,
        "    ldd r4, 2(r0)
    li r5, BLOCK
    dmawr r8, r5, r4, 16
    beq r8, r0, save_header_ok
    li r9, ST_DMA
    jmp complete
save_header_ok:
    addi r4, r4, 64
    muli r5, r3, CTX_STRIDE
    vop kvsave, {kv}, r4, r5, r2
    csrr r5, VRES_LO
    beq r5, r0, save_ok
    li r9, ST_DMA
    jmp complete
save_ok:
    muli r14, r2, SAVE_BYTES_PER_POS
    addi r14, r14, 64
    jmp complete

; ---- RESTORE_CONTEXT: the image written by SAVE_CONTEXT, from A
cmd_restore:
    call ctx_check
    ldd r4, 2(r0)
    li r5, BLOCK
    dmard r8, r5, r4, 16
    beq r8, r0, restore_header_ok
    li r9, ST_DMA
    jmp complete
restore_header_ok:
    li r9, ST_BADSAVE
    ld r5, BLOCK(r0)
    li r6, SAVE_MAGIC
    bne r5, r6, restore_fail
    ld r5, 129(r0)
    li r6, SAVE_VERSION
    bne r5, r6, restore_fail
    ld r5, 131(r0)
    li r6, LAYERS
    bne r5, r6, restore_fail
    ld r5, 132(r0)
    li r6, {kv_row_bytes}
    bne r5, r6, restore_fail
    ld r5, 130(r0)
    li r6, MAXSEQ
    bltu r6, r5, restore_fail"
    );
    for k in 0..8 {
        let _ = writeln!(
            w,
            "    ld r5, {}(r0)\n    csrr r6, {}\n    bne r5, r6, restore_fail",
            spad::BLOCK + 8 + k as u32,
            regs::MODEL_ID0 + k
        );
    }
    let _ = writeln!(
        w,
        "    li r9, 0
    ld r2, 130(r0)
    addi r4, r4, 64
    muli r5, r3, CTX_STRIDE
    vop kvload, {p_kvload}, r4, r5, r2
    csrr r5, VRES_LO
    beq r5, r0, restore_ok
    li r9, ST_DMA
    li r2, 0
    jmp complete
restore_ok:
    shli r4, r3, 1
    li r5, 1
    st r5, CTX(r4)
    st r2, 33(r4)
    jmp complete
restore_fail:
    li r2, 0
    jmp complete"
    );
    let source = s;
    let program =
        assemble(&source, FIRMWARE_VERSION).map_err(|e| Error::Firmware(e.to_string()))?;
    if program.code.len() > 4096 {
        return Err(Error::Firmware(format!(
            "the firmware needs {} instructions; the instruction ROM holds 4096",
            program.code.len()
        )));
    }
    Ok(Firmware { program, source })
}
