//! The scheduler: the firmware of a chip, as assembly.
//!
//! Two parts. The **command loop** fetches descriptors from the submission ring by DMA,
//! checks them, runs them, and posts a completion with the ring's phase bit and an
//! interrupt (`docs/registers.md`). The **per-token schedule** is one vector
//! operation per step of `forward()`, each with a row of the parameter table that
//! names the activation slots, ROM addresses and requantization constants of that
//! step; it reads like `run.c`'s forward pass.
//!
//! The source is written one routine at a time — [`boot_and_dispatch`],
//! [`completion`], [`context_helpers`], [`cmd_identify`], [`cmd_contexts`],
//! [`forward`], [`classify`], [`per_token_helpers`], [`cmd_prefill`], [`cmd_generate`],
//! [`cmd_score`], [`cmd_save`], [`cmd_restore`] — after the constants and the
//! parameter table ([`Rows`], typed by `etch_firmware::vparams`).
//!
//! Register conventions: `r1` token, `r2` position, `r3` context, `r10` submission
//! head, `r11` completion tail, `r12` phase, `r13` command flags, `r15` link.

use std::fmt::Write;

use etch_firmware::descriptor::{
    command_word, completion_word, flags, reason, save_word, Opcode, Status, SAVE_MAGIC,
    SAVE_VERSION,
};
use etch_firmware::vparams::{self as vp, VParams};
use etch_firmware::{assemble, regs, Program};

use crate::error::{Error, Result};
use crate::layout::{Layout, MatrixPlace};
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

/// The firmware of a chip: the program and its assembly source.
pub struct Firmware {
    /// Assembled program.
    pub program: Program,
    /// Assembly source (written to `OUT/firmware.s`).
    pub source: String,
}

/// Writes and assembles the firmware for `model` laid out as `layout`.
pub fn firmware(model: &QuantizedModel, layout: &Layout) -> Result<Firmware> {
    let rows = Rows::new(model, layout)?;
    let kv_row_bytes = layout.kv_beats * 8;
    let mut w = String::new();
    constants(&mut w, model, layout);
    rows.write_table(&mut w);
    boot_and_dispatch(&mut w, &rows);
    completion(&mut w);
    context_helpers(&mut w);
    cmd_identify(&mut w);
    cmd_contexts(&mut w);
    forward(&mut w, &rows, layout);
    classify(&mut w, &rows);
    per_token_helpers(&mut w, &rows);
    cmd_prefill(&mut w);
    cmd_generate(&mut w, &rows);
    cmd_score(&mut w, &rows);
    cmd_save(&mut w, &rows, kv_row_bytes);
    cmd_restore(&mut w, &rows, kv_row_bytes);
    let program = assemble(&w, FIRMWARE_VERSION).map_err(|e| Error::Firmware(e.to_string()))?;
    if program.code.len() > 4096 {
        return Err(Error::Firmware(format!(
            "the firmware needs {} instructions; the instruction ROM holds 4096",
            program.code.len()
        )));
    }
    Ok(Firmware { program, source: w })
}

/// Appends lines of assembly (writing to a String cannot fail).
fn emit(w: &mut String, text: &str) {
    let _ = writeln!(w, "{text}");
}

/// The parameter rows of one layer's steps.
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

/// The parameter table, numbered as rows are added, and the row of every step.
struct Rows {
    table: Vec<VParams>,
    bist: usize,
    embed: usize,
    sincos: usize,
    rope: Vec<usize>,
    kvstore: usize,
    add: usize,
    layers: Vec<LayerRows>,
    final_norm: usize,
    classifier: usize,
    sample: usize,
    logprob: usize,
    dump: usize,
    seed: usize,
    kvsave: usize,
    kvload: usize,
}

/// Fields read back as `u64`.
fn u(v: usize) -> u64 {
    v as u64
}

impl Rows {
    fn new(model: &QuantizedModel, l: &Layout) -> Result<Self> {
        let c = model.config;
        let mut table = Vec::new();
        let mut add = |p: VParams| -> Result<usize> {
            p.encode().map_err(|e| {
                Error::Firmware(format!("a {} parameter row: {e}", p.kind().name()))
            })?;
            table.push(p);
            Ok(table.len() - 1)
        };
        let bist = add(VParams::Bist)?;
        let embed = add(VParams::Embed(vp::Embed {
            out: u(l.x),
            dim: u(c.dim),
        }))?;
        let sincos = add(VParams::Sincos(vp::Sincos {
            pairs: u(c.head_size() / 2),
        }))?;
        // RoPE over queries and keys: one pass when the keys follow the queries
        // directly.
        let lanes = l.lanes;
        let rope_pass = |slot: usize, n: usize| {
            VParams::Rope(vp::Rope {
                slot: u(slot),
                n: u(n),
            })
        };
        let rope = if l.k_row == c.dim {
            vec![add(rope_pass(l.qkv, c.dim + c.kv_dim()))?]
        } else {
            vec![
                add(rope_pass(l.qkv, c.dim))?,
                add(rope_pass(l.qkv + l.k_row / lanes, c.kv_dim()))?,
            ]
        };
        let segments = |row: usize| u(((row % lanes) + c.kv_dim()).div_ceil(lanes));
        let kvstore = add(VParams::Kvstore(vp::Kvstore {
            key_slot: u(l.qkv + l.k_row / lanes),
            value_slot: u(l.qkv + l.v_row / lanes),
            key_offset: u(l.k_row % lanes),
            value_offset: u(l.v_row % lanes),
            key_segments: segments(l.k_row),
            value_segments: segments(l.v_row),
        }))?;
        let residual_add = add(VParams::Add(vp::Add {
            x: u(l.x),
            y: u(l.y),
            n: u(c.dim),
        }))?;
        let norm = |gain_base: usize, frac: u32, out: u32| {
            VParams::Rmsnorm(vp::Rmsnorm {
                input: u(l.x),
                out: u(l.xn),
                n: u(c.dim),
                gain_base: u(gain_base),
                eps: model.rms_eps & vp::Rmsnorm::EPS.max(),
                // A 6-bit two's complement adjustment.
                shift_adj: (frac as i64 - out as i64) as u64 & 63,
            })
        };
        let matvec = |m: &MatrixPlace, input: usize, out: usize| {
            VParams::Matvec(vp::Matvec {
                input: u(input),
                out: u(out),
                // Weight words per row: the controller steps one word, `columns`
                // input elements, per cycle.
                cols: u(m.cols.div_ceil(l.columns)),
                groups: u(m.groups),
                rom_base: u(m.rom_base),
                requant_base: u(m.req_base),
                last_sub: u((m.rows - (m.groups.max(1) - 1) * l.lanes).saturating_sub(1)
                    / match l.requantizers {
                        0 => l.lanes,
                        r => r,
                    }),
            })
        };
        let mut layers = Vec::new();
        for (i, (layer, lf)) in model.layers.iter().zip(&model.formats.layers).enumerate() {
            let places = &l.layers[i];
            let sig = lf.h1 as i64 - 7;
            let (sig_mult, sig_shift) = if sig >= 0 {
                (1, sig)
            } else {
                (1i64 << (-sig), 0)
            };
            layers.push(LayerRows {
                att_norm: add(norm(places.att_gain, layer.att_norm.frac, lf.xn_att))?,
                wqkv: add(matvec(&places.wqkv, l.xn, l.qkv))?,
                attn: add(VParams::Attn(vp::Attn {
                    query: u(l.qkv),
                    out: u(l.att),
                    score_mult: layer.score_mult as u64,
                    score_shift: layer.score_shift as u64,
                    norm_adj: (lf.v as i64 - lf.att as i64) as u64 & 63,
                }))?,
                wo: add(matvec(&places.wo, l.att, l.y))?,
                ffn_norm: add(norm(places.ffn_gain, layer.ffn_norm.frac, lf.xn_ffn))?,
                w1: add(matvec(&places.w1, l.xn, l.h1))?,
                w3: add(matvec(&places.w3, l.xn, l.h3))?,
                swiglu: add(VParams::Swiglu(vp::Swiglu {
                    h1: u(l.h1),
                    h3: u(l.h3),
                    out: u(l.hb),
                    n: u(c.hidden_dim),
                    sig_mult: sig_mult as u64,
                    sig_shift: sig_shift as u64,
                    out_shift: (15 + lf.h1 + lf.h3 - lf.hb) as u64,
                }))?,
                w2: add(matvec(&places.w2, l.hb, l.y))?,
            });
        }
        let final_norm = add(norm(
            l.final_gain,
            model.final_norm.frac,
            model.formats.xn_final,
        ))?;
        let classifier = add(matvec(&l.classifier, l.xn, l.logits))?;
        let sampler = vp::Sample {
            logits: u(l.logits),
            vocab: u(c.vocab_size),
            weights: u(l.pbuf),
            temp_mult: model.temp_mult as u64,
            temp_shift: model.temp_shift as u64,
        };
        let sample = add(VParams::Sample(sampler))?;
        let logprob = add(VParams::Logprob(sampler))?;
        let dump = add(VParams::DmaOut(vp::DmaVector {
            slot: u(l.logits),
            n: u(c.vocab_size),
        }))?;
        let seed = add(VParams::Seed)?;
        let transfer = vp::KvTransfer {
            layers: u(c.n_layers),
            rows_per_layer: u(l.rows_per_layer),
        };
        let kvsave = add(VParams::KvSave(transfer))?;
        let kvload = add(VParams::KvLoad(transfer))?;
        Ok(Rows {
            table,
            bist,
            embed,
            sincos,
            rope,
            kvstore,
            add: residual_add,
            layers,
            final_norm,
            classifier,
            sample,
            logprob,
            dump,
            seed,
            kvsave,
            kvload,
        })
    }

    /// The `.param` directives of the table.
    fn write_table(&self, w: &mut String) {
        for (i, p) in self.table.iter().enumerate() {
            // Checked when the row was added.
            let row = p.encode().unwrap_or_default();
            let _ = write!(w, ".param {i} {}", p.kind().name());
            for v in row {
                let _ = write!(w, " {v}");
            }
            let _ = writeln!(w);
        }
    }
}

/// The `.equ` constants: shapes, scratchpad words, descriptor words, status codes.
fn constants(w: &mut String, model: &QuantizedModel, l: &Layout) {
    let c = model.config;
    let logit_bytes = c.vocab_size.div_ceil(4) * 8;
    let kv_row_bytes = l.kv_beats * 8;
    let _ = writeln!(
        w,
        "; etch firmware: {} lanes, {} contexts of {} positions",
        l.lanes, l.contexts, l.max_seq
    );
    let shapes = [
        ("VOCAB", c.vocab_size as i64),
        ("MAXSEQ", l.max_seq as i64),
        ("CONTEXTS", l.contexts as i64),
        ("LAYERS", c.n_layers as i64),
        ("CTX_STRIDE", (c.n_layers * l.rows_per_layer) as i64),
        ("LG", l.lanes.trailing_zeros() as i64),
        ("EMB_STRIDE", l.embedding.stride as i64),
        ("EMB_BASE", l.embedding.rom_base as i64),
        ("EMB_REQ", l.embed_req_base as i64),
        ("LOGIT_BYTES", logit_bytes as i64),
        ("SAVE_BYTES_PER_POS", (2 * c.n_layers * kv_row_bytes) as i64),
    ];
    let scratchpad = [
        ("CPL", spad::CPL as i64),
        ("REC", spad::REC as i64),
        ("CTX", spad::CTX as i64),
        ("TOK", spad::TOK as i64),
        ("BLOCK", spad::BLOCK as i64),
    ];
    let codes = [
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
        ("F_LAST", flags::LAST_LOGITS as i64),
        ("SAVE_MAGIC", SAVE_MAGIC as i64),
        ("SAVE_VERSION", SAVE_VERSION as i64),
    ];
    // Words of the command (scratchpad 0..16), the completion, a context's table
    // entry, a token record and a saved context's header.
    let words = [
        ("C_HEAD", command_word::HEAD as i64),
        ("C_ID", command_word::ID as i64),
        ("C_ADDR_A", command_word::ADDR_A as i64),
        ("C_COUNT", command_word::COUNT as i64),
        ("C_TOKEN", command_word::TOKEN as i64),
        ("C_SAMPLING", command_word::SAMPLING as i64),
        ("C_SEED", command_word::SEED as i64),
        ("C_ADDR_B", command_word::ADDR_B as i64),
        ("C_STOPS", command_word::STOPS as i64),
        ("C_STOP_COUNT", command_word::STOP_COUNT as i64),
        ("CPL_STATUS", (spad::CPL + completion_word::STATUS) as i64),
        ("CPL_RESULT", (spad::CPL + completion_word::RESULT) as i64),
        (
            "CPL_POSITION",
            (spad::CPL + completion_word::POSITION) as i64,
        ),
        ("CTX_POS", (spad::CTX + 1) as i64),
        ("REC_AUX", (spad::REC + 1) as i64),
        ("SAVE_W_VERSION", (spad::BLOCK + save_word::VERSION) as i64),
        ("SAVE_W_POS", (spad::BLOCK + save_word::POSITION) as i64),
        ("SAVE_W_LAYERS", (spad::BLOCK + save_word::LAYERS) as i64),
        (
            "SAVE_W_ROW_BYTES",
            (spad::BLOCK + save_word::ROW_BYTES) as i64,
        ),
        ("SAVE_W_MAXSEQ", (spad::BLOCK + save_word::MAX_SEQ) as i64),
    ];
    for (name, v) in shapes
        .into_iter()
        .chain(scratchpad)
        .chain(codes)
        .chain(words)
    {
        let _ = writeln!(w, ".equ {name} {v}");
    }
}

/// Boot (ROM self-test, empty context table, ready) and the command loop up to the
/// dispatch on the opcode.
fn boot_and_dispatch(w: &mut String, rows: &Rows) {
    let _ = writeln!(
        w,
        "
; ---- boot: ROM self-test, empty context table, ready
boot:
    vop bist, {bist}
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
    ; a hostile host: a tail outside the ring (or an empty ring) is no work, and a
    ; ring shrunk under the head starts over at 0; the chip never fetches past the ring
    csrr r5, SQ_SIZE
    csrr r6, SQ_TAIL
    bgeu r6, r5, main
    bltu r10, r5, sq_fetch
    li r10, 0
    jmp main
sq_fetch:
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
    ld r4, C_HEAD(r0)
    andi r5, r4, 255
    shri r13, r4, 8
    andi r13, r13, 255
    shri r3, r4, 16
    andi r3, r3, 255",
        bist = rows.bist
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
    emit(w, "    li r9, ST_OPCODE\n    jmp complete");
}

/// The completion: posted as two beats, the phase beat last, then an interrupt.
fn completion(w: &mut String) {
    emit(
        w,
        "
; ---- completion: id, status | phase << 16 | reason << 24, result (r14), position (r2)
;      (words 16..19 of the scratchpad; posted as two beats, the phase beat last)
complete:
    ld r4, C_ID(r0)
    st r4, CPL(r0)
    shli r5, r12, 16
    or r5, r5, r9
    ld r6, REASON(r0)
    shli r6, r6, 24
    or r5, r5, r6
    st r5, CPL_STATUS(r0)
    st r14, CPL_RESULT(r0)
    st r2, CPL_POSITION(r0)
    ; the completion ring's size as the host programmed it: an empty ring holds the
    ; completion until the host gives it room, a ring shrunk under the tail starts over
    ; at 0; the chip never writes past the ring
cq_size:
    csrr r5, CQ_SIZE
    beq r5, r0, cq_size
    bltu r11, r5, cq_next
    li r11, 0
cq_next:
    addi r6, r11, 1
    bltu r6, r5, cq_room
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
    li r5, CPL_RESULT
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
    jmp main",
    );
}

/// Context checks, the context table's reset, and the token loader.
fn context_helpers(w: &mut String) {
    emit(
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
    st r0, CTX_POS(r4)
    addi r5, r5, 1
    bne r5, r6, reset_loop
    jr r15

; load token i (r6) of the array at command word 2 into r1 (a beat of two tokens)
load_token:
    ldd r4, C_ADDR_A(r0)
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
    jr r15",
    );
}

/// IDENTIFY: the identity registers and the ROM signature, 32 words to address A.
fn cmd_identify(w: &mut String) {
    emit(w, "\n; ---- IDENTIFY: 32 words to address A\ncmd_identify:");
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
    emit(
        w,
        "    ldd r4, C_ADDR_A(r0)
    li r5, BLOCK
    dmawr r8, r5, r4, 32
    beq r8, r0, complete
    li r9, ST_DMA
    jmp complete",
    );
}

/// RESET, CREATE_CONTEXT and DESTROY_CONTEXT.
fn cmd_contexts(w: &mut String) {
    emit(
        w,
        "
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
    jmp complete",
    );
}

/// The forward pass, `run.c`'s `forward()` up to the logits: embedding, RoPE angles,
/// every layer. Two routines: `forward`, the whole pass, and
/// `forward_keys`, the same pass stopped at the last layer's keys and values, for a
/// PREFILL token whose logits nobody reads (the rest of the last layer feeds only the
/// final norm and the classifier). Two copies of the code rather than a flag, so that
/// the whole pass spends no instruction on the choice.
fn forward(w: &mut String, rows: &Rows, l: &Layout) {
    emit(
        w,
        "\n; ---- the forward pass: r1 token, r2 position, r3 context\nforward:",
    );
    forward_pass(w, rows, l, false);
    emit(
        w,
        "\n; ---- the same pass stopped at the last layer's keys and values\nforward_keys:",
    );
    forward_pass(w, rows, l, true);
}

/// One forward pass's instructions, ending in `jr r15`; with `keys_only`, stopped after
/// the last layer's key/value store.
fn forward_pass(w: &mut String, rows: &Rows, l: &Layout, keys_only: bool) {
    // With the queue, operations that read nothing the one before writes say so:
    // the angles after the embedding, w3 after w1 (both read the normed x).
    let indep = if l.vop_queue { ", indep" } else { "" };
    let _ = writeln!(
        w,
        "    shri r4, r1, LG
    muli r5, r4, EMB_STRIDE
    addi r5, r5, EMB_BASE
    addi r6, r4, EMB_REQ
    vop embed, {embed}, r1, r5, r6
    vop sincos, {sincos}, r2{indep}
    muli r7, r3, CTX_STRIDE",
        embed = rows.embed,
        sincos = rows.sincos,
    );
    let rope: String = rows
        .rope
        .iter()
        .map(|r| format!("    vop rope, {r}\n"))
        .collect();
    let last = rows.layers.len().saturating_sub(1);
    for (i, r) in rows.layers.iter().enumerate() {
        let _ = writeln!(
            w,
            "    ; layer {i}
    addi r8, r7, {base}
    vop rmsnorm, {an}
    vop matvec, {wqkv}
{rope}    vop kvstore, {kvs}, r2, r8",
            base = i * l.rows_per_layer,
            an = r.att_norm,
            wqkv = r.wqkv,
            kvs = rows.kvstore,
        );
        if keys_only && i == last {
            break;
        }
        let _ = writeln!(
            w,
            "    vop attn, {at}, r2, r8
    vop matvec, {wo}
    vop add, {add}
    vop rmsnorm, {fnorm}
    vop matvec, {w1}
    vop matvec, {w3}{indep}
    vop swiglu, {sw}
    vop matvec, {w2}
    vop add, {add}",
            at = r.attn,
            wo = r.wo,
            add = rows.add,
            fnorm = r.ffn_norm,
            w1 = r.w1,
            w3 = r.w3,
            sw = r.swiglu,
            w2 = r.w2,
        );
    }
    emit(w, "    jr r15");
}

/// The final norm and the classifier, after a forward pass.
fn classify(w: &mut String, rows: &Rows) {
    let _ = writeln!(
        w,
        "
; ---- the logits of the forward pass just run: the final norm and the classifier
classify:
    vop rmsnorm, {}
    vop matvec, {}
    jr r15",
        rows.final_norm, rows.classifier
    );
}

/// After a forward pass: the debug dump of the logits; the abort check.
fn per_token_helpers(w: &mut String, rows: &Rows) {
    let _ = writeln!(
        w,
        "
; after a forward pass: logits to B + step · LOGIT_BYTES in debug mode (r14 = step)
debug_dump:
    andi r5, r13, F_DEBUG
    beq r5, r0, debug_done
    ldd r4, C_ADDR_B(r0)
    muli r5, r14, LOGIT_BYTES
    add r4, r4, r5
; the logits to r4
dump_at:
    vop dmaout, {dump}, r4
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
    jr r15",
        dump = rows.dump
    );
}

/// PREFILL: N tokens from address A through the model, no sampling.
fn cmd_prefill(w: &mut String) {
    emit(
        w,
        "
; ---- PREFILL: N tokens from A
cmd_prefill:
    call ctx_check
    call ctx_live
    ld r6, C_COUNT(r0)
    add r5, r2, r6
    li r8, MAXSEQ
    bgeu r8, r5, prefill_fits
    li r9, ST_FULL
    jmp complete
prefill_fits:
    li r14, 0
prefill_loop:
    ld r6, C_COUNT(r0)
    beq r14, r6, complete
    add r6, r14, r0
    call load_token
; the logits only where they are asked for: every step in debug mode, the last one
; with F_LAST (to B); the other tokens only fill the context, so their forward pass
; stops at the last layer's keys and values (no final norm, no classifier)
    andi r5, r13, F_DEBUG
    bne r5, r0, prefill_debug
    andi r5, r13, F_LAST
    beq r5, r0, prefill_keys
    addi r5, r14, 1
    ld r6, C_COUNT(r0)
    beq r5, r6, prefill_last
prefill_keys:
    call forward_keys
    jmp prefill_next
prefill_last:
    call forward
    call classify
    ldd r4, C_ADDR_B(r0)
    call dump_at
    jmp prefill_next
prefill_debug:
    call forward
    call classify
    call debug_dump
prefill_next:
    addi r2, r2, 1
    shli r4, r3, 1
    st r2, CTX_POS(r4)
    addi r14, r14, 1
    call check_abort
    jmp prefill_loop",
    );
}

/// GENERATE: feed the command's token, then sample and feed back, streaming each
/// token to address A, until the count, a stop token, a full context or an abort.
fn cmd_generate(w: &mut String, rows: &Rows) {
    let _ = writeln!(
        w,
        "
; ---- GENERATE: feed the token of word 5, then sample and feed back, N tokens to A
cmd_generate:
    call ctx_check
    call ctx_live
    ld r1, C_TOKEN(r0)
    li r5, VOCAB
    bltu r1, r5, generate_token_ok
    li r9, ST_TOKEN
    jmp complete
generate_token_ok:
    ldd r4, C_SEED(r0)
    vop seed, {seed}, r4
    li r14, 0
generate_loop:
    ld r6, C_COUNT(r0)
    beq r14, r6, complete
    li r5, MAXSEQ
    bltu r2, r5, generate_room
    li r9, ST_FULL
    li r6, RS_FULL
    st r6, REASON(r0)
    jmp complete
generate_room:
    call forward
    call classify
    call debug_dump
    addi r2, r2, 1
    shli r4, r3, 1
    st r2, CTX_POS(r4)
    ld r4, C_SAMPLING(r0)
    andi r5, r4, 0xFFFF
    shri r6, r4, 16
    vop sample, {sample}, r5, r6
    csrr r1, VRES_LO
    st r1, REC(r0)
    csrr r5, CYCLE_LO
    st r5, REC_AUX(r0)
    ldd r4, C_ADDR_A(r0)
    shli r5, r14, 3
    add r4, r4, r5
    li r5, REC
    dmawr r8, r5, r4, 2
    beq r8, r0, generate_written
    li r9, ST_DMA
    jmp complete
generate_written:
    addi r14, r14, 1
    ld r4, C_STOP_COUNT(r0)
    andi r4, r4, 255
    li r5, 0
stop_loop:
    beq r5, r4, stop_none
    shri r6, r5, 1
    addi r6, r6, C_STOPS
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
    jmp generate_loop",
        seed = rows.seed,
        sample = rows.sample
    );
}

/// SCORE: N tokens from address A; the log-probability of each token after the
/// first to address B.
fn cmd_score(w: &mut String, rows: &Rows) {
    let _ = writeln!(
        w,
        "
; ---- SCORE: N tokens from A; log-probabilities of tokens 1..N to B (8-byte records)
cmd_score:
    call ctx_check
    call ctx_live
    ld r6, C_COUNT(r0)
    add r5, r2, r6
    li r8, MAXSEQ
    bgeu r8, r5, score_fits
    li r9, ST_FULL
    jmp complete
score_fits:
    li r14, 0
    ld r6, C_COUNT(r0)
    beq r6, r0, complete
    li r6, 0
    call load_token
score_loop:
    call forward
    call classify
    addi r2, r2, 1
    shli r4, r3, 1
    st r2, CTX_POS(r4)
    addi r14, r14, 1
    ld r6, C_COUNT(r0)
    beq r14, r6, complete
    add r6, r14, r0
    call load_token
    vop logprob, {logprob}, r1
    csrr r4, VRES_LO
    st r4, REC(r0)
    st r1, REC_AUX(r0)
    ldd r4, C_ADDR_B(r0)
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
    jmp score_loop",
        logprob = rows.logprob
    );
}

/// SAVE_CONTEXT: the header (magic, version, position, layers, row bytes, positions,
/// model identity) and the KV rows, to address A.
fn cmd_save(w: &mut String, rows: &Rows, kv_row_bytes: usize) {
    let _ = writeln!(
        w,
        "
; ---- SAVE_CONTEXT: a 64-byte header (magic, version, position, layers, row bytes,
; model identity) and the KV rows, to A
cmd_save:
    call ctx_check
    call ctx_live
    li r4, SAVE_MAGIC
    st r4, BLOCK(r0)
    li r4, SAVE_VERSION
    st r4, SAVE_W_VERSION(r0)
    st r2, SAVE_W_POS(r0)
    li r4, LAYERS
    st r4, SAVE_W_LAYERS(r0)
    li r4, {kv_row_bytes}
    st r4, SAVE_W_ROW_BYTES(r0)
    li r4, MAXSEQ
    st r4, SAVE_W_MAXSEQ(r0)
    st r0, {w6}(r0)
    st r0, {w7}(r0)",
        w6 = spad::BLOCK + 6,
        w7 = spad::BLOCK + 7,
    );
    for k in 0..8 {
        let _ = writeln!(
            w,
            "    csrr r4, {}\n    st r4, {}(r0)",
            regs::MODEL_ID0 + k,
            spad::BLOCK + save_word::MODEL_ID + k as u32
        );
    }
    let _ = writeln!(
        w,
        "    ldd r4, C_ADDR_A(r0)
    li r5, BLOCK
    dmawr r8, r5, r4, 16
    beq r8, r0, save_header_ok
    li r9, ST_DMA
    jmp complete
save_header_ok:
    addi r4, r4, 64
    muli r5, r3, CTX_STRIDE
    vop kvsave, {kvsave}, r4, r5, r2
    csrr r5, VRES_LO
    beq r5, r0, save_ok
    li r9, ST_DMA
    jmp complete
save_ok:
    muli r14, r2, SAVE_BYTES_PER_POS
    addi r14, r14, 64
    jmp complete",
        kvsave = rows.kvsave
    );
}

/// RESTORE_CONTEXT: checks the header against this chip, then the KV rows, from
/// address A.
fn cmd_restore(w: &mut String, rows: &Rows, kv_row_bytes: usize) {
    let _ = writeln!(
        w,
        "
; ---- RESTORE_CONTEXT: the image written by SAVE_CONTEXT, from A
cmd_restore:
    call ctx_check
    ldd r4, C_ADDR_A(r0)
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
    ld r5, SAVE_W_VERSION(r0)
    li r6, SAVE_VERSION
    bne r5, r6, restore_fail
    ld r5, SAVE_W_LAYERS(r0)
    li r6, LAYERS
    bne r5, r6, restore_fail
    ld r5, SAVE_W_ROW_BYTES(r0)
    li r6, {kv_row_bytes}
    bne r5, r6, restore_fail
    ld r5, SAVE_W_POS(r0)
    li r6, MAXSEQ
    bltu r6, r5, restore_fail"
    );
    for k in 0..8 {
        let _ = writeln!(
            w,
            "    ld r5, {}(r0)\n    csrr r6, {}\n    bne r5, r6, restore_fail",
            spad::BLOCK + save_word::MODEL_ID + k as u32,
            regs::MODEL_ID0 + k
        );
    }
    let _ = writeln!(
        w,
        "    li r9, 0
    ld r2, SAVE_W_POS(r0)
    addi r4, r4, 64
    muli r5, r3, CTX_STRIDE
    vop kvload, {kvload}, r4, r5, r2
    csrr r5, VRES_LO
    beq r5, r0, restore_ok
    li r9, ST_DMA
    li r2, 0
    jmp complete
restore_ok:
    shli r4, r3, 1
    li r5, 1
    st r5, CTX(r4)
    st r2, CTX_POS(r4)
    jmp complete
restore_fail:
    li r2, 0
    jmp complete",
        kvload = rows.kvload
    );
}
