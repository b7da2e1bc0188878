//! The parameter rows of the vector operations, one type per kind: the contract
//! between the scheduler, which writes a row for every step of the model, and the
//! vector controller, which reads its fields.
//!
//! A row is 16 words of 16 bits (256 bits, word `k` is bits `16k..16k+16`). Each kind
//! names its fields once, here, as [`Field`]s — a name, a bit offset and a width —
//! and both sides use these constants: [`VParams::encode`] packs a row from them, the
//! hardware generator slices the row register with them. A field moved here moves on
//! both sides; nothing is positional anywhere else.
//!
//! Register operands (token, position, addresses) do not live in the row; they come
//! from the `vop`'s registers `ra`, `rb`, `rc` (`docs/isa.md`).

use crate::isa::{Params, VKind};

/// A field of a parameter row: `width` bits from bit `offset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    /// Its name (also in `docs/isa.md`).
    pub name: &'static str,
    /// First bit in the 256-bit row.
    pub offset: u32,
    /// Bits.
    pub width: u32,
}

impl Field {
    const fn new(name: &'static str, offset: u32, width: u32) -> Self {
        Field {
            name,
            offset,
            width,
        }
    }

    /// The largest value the field holds.
    pub fn max(&self) -> u64 {
        if self.width >= 64 {
            u64::MAX
        } else {
            (1u64 << self.width) - 1
        }
    }

    /// Writes `value` into `row`; an error when it does not fit.
    fn put(&self, row: &mut Params, value: u64) -> Result<(), ParamError> {
        if value > self.max() {
            return Err(ParamError {
                field: self.name,
                value,
                width: self.width,
            });
        }
        for bit in 0..self.width {
            if value >> bit & 1 == 1 {
                let at = self.offset + bit;
                row[(at / 16) as usize] |= 1 << (at % 16);
            }
        }
        Ok(())
    }

    /// Reads the field from `row`.
    pub fn get(&self, row: &Params) -> u64 {
        (0..self.width).fold(0u64, |v, bit| {
            let at = self.offset + bit;
            v | (((row[(at / 16) as usize] >> (at % 16)) & 1) as u64) << bit
        })
    }
}

/// A value that does not fit its field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParamError {
    /// The field.
    pub field: &'static str,
    /// The value.
    pub value: u64,
    /// The field's bits.
    pub width: u32,
}

impl core::fmt::Display for ParamError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "parameter {} = {} does not fit its {} bits",
            self.field, self.value, self.width
        )
    }
}

/// Declares one kind's parameter struct: its fields, their [`Field`] constants, and
/// its packing.
macro_rules! vparams {
    ($(#[$doc:meta])* $name:ident { $($(#[$fdoc:meta])* $field:ident: $konst:ident @ $offset:literal, $width:literal;)* }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct $name {
            $($(#[$fdoc])* pub $field: u64,)*
        }

        impl $name {
            $(
                #[doc = concat!("Where `", stringify!($field), "` sits in the row.")]
                pub const $konst: Field = Field::new(stringify!($field), $offset, $width);
            )*
            /// Every field, in row order.
            pub const FIELDS: &'static [Field] = &[$(Self::$konst),*];

            fn pack(&self, row: &mut Params) -> Result<(), ParamError> {
                $(Self::$konst.put(row, self.$field)?;)*
                let _ = row;
                Ok(())
            }

            fn unpack(row: &Params) -> Self {
                let _ = row;
                $name { $($field: Self::$konst.get(row),)* }
            }
        }
    };
}

vparams! {
    /// `embed`: the embedding row of token `ra` into slot `out` (ROM row `rb`,
    /// requantization word `rc`).
    Embed {
        /// First slot of the output vector.
        out: OUT @ 0, 16;
        /// Elements (the model's `dim`).
        dim: DIM @ 16, 16;
    }
}

vparams! {
    /// `matvec`: `y = requant(W · a)`, `L` rows at a time.
    Matvec {
        /// First slot of the input vector.
        input: INPUT @ 0, 16;
        /// First slot of the output vector.
        out: OUT @ 16, 16;
        /// Columns (input elements).
        cols: COLS @ 32, 16;
        /// Row groups (`ceil(rows / L)`).
        groups: GROUPS @ 48, 16;
        /// First weight ROM word.
        rom_base: ROM_BASE @ 64, 24;
        /// First requantization ROM word.
        requant_base: REQUANT_BASE @ 96, 16;
        /// The last block of requantizers the last row group needs: (its rows − 1) /
        /// requantizers (0 with a requantizer per lane). A chip whose lanes share
        /// requantizers skips the blocks beyond it.
        last_sub: LAST_SUB @ 112, 8;
    }
}

vparams! {
    /// `rmsnorm`: sum of squares, rsqrt, `requant(x · G, R, shift)`.
    Rmsnorm {
        /// First slot of the input vector.
        input: INPUT @ 0, 16;
        /// First slot of the output vector.
        out: OUT @ 16, 16;
        /// Elements.
        n: N @ 32, 16;
        /// First gain ROM word.
        gain_base: GAIN_BASE @ 48, 16;
        /// ε in the sum-of-squares format.
        eps: EPS @ 64, 48;
        /// Output shift adjustment (6-bit two's complement, added to rsqrt's shift).
        shift_adj: SHIFT_ADJ @ 112, 6;
    }
}

vparams! {
    /// `sincos`: the RoPE sines and cosines of position `ra`.
    Sincos {
        /// Pairs (half the head size).
        pairs: PAIRS @ 0, 16;
    }
}

vparams! {
    /// `rope`: rotate the pairs of a vector in place.
    Rope {
        /// First slot.
        slot: SLOT @ 0, 16;
        /// Elements.
        n: N @ 16, 16;
    }
}

vparams! {
    /// `kvstore`: the key and value rows of position `ra` into the KV cache (row base
    /// `rb`).
    Kvstore {
        /// Slot where the keys start.
        key_slot: KEY_SLOT @ 0, 16;
        /// Slot where the values start.
        value_slot: VALUE_SLOT @ 16, 16;
        /// Lane of `key_slot` where the keys start.
        key_offset: KEY_OFFSET @ 32, 16;
        /// Lane of `value_slot` where the values start.
        value_offset: VALUE_OFFSET @ 48, 16;
        /// Slots the key row spans.
        key_segments: KEY_SEGMENTS @ 64, 16;
        /// Slots the value row spans.
        value_segments: VALUE_SEGMENTS @ 80, 16;
    }
}

vparams! {
    /// `attn`: attention of the query over positions `0..=ra` (row base `rb`), per
    /// head group.
    Attn {
        /// First slot of the queries.
        query: QUERY @ 0, 16;
        /// First slot of the output.
        out: OUT @ 16, 16;
        /// Score multiplier.
        score_mult: SCORE_MULT @ 32, 16;
        /// Score shift.
        score_shift: SCORE_SHIFT @ 48, 6;
        /// Normalization shift adjustment (6-bit two's complement).
        norm_adj: NORM_ADJ @ 64, 6;
    }
}

vparams! {
    /// `add`: `x = sat16(x + y)`.
    Add {
        /// First slot of `x` (also the output).
        x: X @ 0, 16;
        /// First slot of `y`.
        y: Y @ 16, 16;
        /// Elements.
        n: N @ 32, 16;
    }
}

vparams! {
    /// `swiglu`: `hb = requant(h1 · σ(h1) · h3)`.
    Swiglu {
        /// First slot of `h1`.
        h1: H1 @ 0, 16;
        /// First slot of `h3`.
        h3: H3 @ 16, 16;
        /// First slot of the output.
        out: OUT @ 32, 16;
        /// Elements (the model's `hidden_dim`).
        n: N @ 48, 16;
        /// Sigmoid input pre-shift multiplier.
        sig_mult: SIG_MULT @ 64, 16;
        /// Sigmoid input pre-shift.
        sig_shift: SIG_SHIFT @ 80, 6;
        /// Output shift.
        out_shift: OUT_SHIFT @ 96, 6;
    }
}

vparams! {
    /// `sample` and `logprob`: the sampler over the logits (inverse temperature `ra`
    /// and top-p `rb`, or the target token `ra`).
    Sample {
        /// First slot of the logits.
        logits: LOGITS @ 0, 16;
        /// Vocabulary size.
        vocab: VOCAB @ 16, 16;
        /// First slot of the weight scratch.
        weights: WEIGHTS @ 32, 16;
        /// Temperature requantization multiplier.
        temp_mult: TEMP_MULT @ 48, 16;
        /// Temperature requantization shift.
        temp_shift: TEMP_SHIFT @ 64, 6;
    }
}

vparams! {
    /// `dmaout` and `dmain`: a vector to or from host address `ra`.
    DmaVector {
        /// First slot.
        slot: SLOT @ 0, 16;
        /// Elements.
        n: N @ 16, 16;
    }
}

vparams! {
    /// `kvsave` and `kvload`: the KV rows of `rc` positions of a context (row base
    /// `rb`) to or from host address `ra`.
    KvTransfer {
        /// Layers.
        layers: LAYERS @ 0, 16;
        /// KV rows per layer of a context.
        rows_per_layer: ROWS_PER_LAYER @ 16, 16;
    }
}

/// A parameter row, typed by its kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VParams {
    /// ROM self-test (no parameters).
    Bist,
    /// Embedding lookup.
    Embed(Embed),
    /// Matrix-vector product.
    Matvec(Matvec),
    /// RMSNorm.
    Rmsnorm(Rmsnorm),
    /// RoPE angles.
    Sincos(Sincos),
    /// RoPE rotation.
    Rope(Rope),
    /// KV store.
    Kvstore(Kvstore),
    /// Attention.
    Attn(Attn),
    /// Saturating add.
    Add(Add),
    /// SwiGLU.
    Swiglu(Swiglu),
    /// Sampler seed (no parameters).
    Seed,
    /// Sampling.
    Sample(Sample),
    /// Log-probability.
    Logprob(Sample),
    /// Vector to host memory.
    DmaOut(DmaVector),
    /// Vector from host memory.
    DmaIn(DmaVector),
    /// KV rows to host memory.
    KvSave(KvTransfer),
    /// KV rows from host memory.
    KvLoad(KvTransfer),
}

impl VParams {
    /// The operation kind.
    pub fn kind(&self) -> VKind {
        match self {
            VParams::Bist => VKind::Bist,
            VParams::Embed(_) => VKind::Embed,
            VParams::Matvec(_) => VKind::Matvec,
            VParams::Rmsnorm(_) => VKind::Rmsnorm,
            VParams::Sincos(_) => VKind::Sincos,
            VParams::Rope(_) => VKind::Rope,
            VParams::Kvstore(_) => VKind::Kvstore,
            VParams::Attn(_) => VKind::Attn,
            VParams::Add(_) => VKind::Add,
            VParams::Swiglu(_) => VKind::Swiglu,
            VParams::Seed => VKind::Seed,
            VParams::Sample(_) => VKind::Sample,
            VParams::Logprob(_) => VKind::Logprob,
            VParams::DmaOut(_) => VKind::DmaOut,
            VParams::DmaIn(_) => VKind::DmaIn,
            VParams::KvSave(_) => VKind::KvSave,
            VParams::KvLoad(_) => VKind::KvLoad,
        }
    }

    /// The row, or the field a value does not fit.
    pub fn encode(&self) -> Result<Params, ParamError> {
        let mut row = [0u16; 16];
        match self {
            VParams::Bist | VParams::Seed => {}
            VParams::Embed(p) => p.pack(&mut row)?,
            VParams::Matvec(p) => p.pack(&mut row)?,
            VParams::Rmsnorm(p) => p.pack(&mut row)?,
            VParams::Sincos(p) => p.pack(&mut row)?,
            VParams::Rope(p) => p.pack(&mut row)?,
            VParams::Kvstore(p) => p.pack(&mut row)?,
            VParams::Attn(p) => p.pack(&mut row)?,
            VParams::Add(p) => p.pack(&mut row)?,
            VParams::Swiglu(p) => p.pack(&mut row)?,
            VParams::Sample(p) | VParams::Logprob(p) => p.pack(&mut row)?,
            VParams::DmaOut(p) | VParams::DmaIn(p) => p.pack(&mut row)?,
            VParams::KvSave(p) | VParams::KvLoad(p) => p.pack(&mut row)?,
        }
        Ok(row)
    }

    /// A row read back as kind `kind`'s parameters.
    pub fn decode(kind: VKind, row: &Params) -> Self {
        match kind {
            VKind::Bist => VParams::Bist,
            VKind::Embed => VParams::Embed(Embed::unpack(row)),
            VKind::Matvec => VParams::Matvec(Matvec::unpack(row)),
            VKind::Rmsnorm => VParams::Rmsnorm(Rmsnorm::unpack(row)),
            VKind::Sincos => VParams::Sincos(Sincos::unpack(row)),
            VKind::Rope => VParams::Rope(Rope::unpack(row)),
            VKind::Kvstore => VParams::Kvstore(Kvstore::unpack(row)),
            VKind::Attn => VParams::Attn(Attn::unpack(row)),
            VKind::Add => VParams::Add(Add::unpack(row)),
            VKind::Swiglu => VParams::Swiglu(Swiglu::unpack(row)),
            VKind::Seed => VParams::Seed,
            VKind::Sample => VParams::Sample(Sample::unpack(row)),
            VKind::Logprob => VParams::Logprob(Sample::unpack(row)),
            VKind::DmaOut => VParams::DmaOut(DmaVector::unpack(row)),
            VKind::DmaIn => VParams::DmaIn(DmaVector::unpack(row)),
            VKind::KvSave => VParams::KvSave(KvTransfer::unpack(row)),
            VKind::KvLoad => VParams::KvLoad(KvTransfer::unpack(row)),
        }
    }

    /// The fields of kind `kind`, in row order.
    pub fn fields(kind: VKind) -> &'static [Field] {
        match kind {
            VKind::Bist | VKind::Seed => &[],
            VKind::Embed => Embed::FIELDS,
            VKind::Matvec => Matvec::FIELDS,
            VKind::Rmsnorm => Rmsnorm::FIELDS,
            VKind::Sincos => Sincos::FIELDS,
            VKind::Rope => Rope::FIELDS,
            VKind::Kvstore => Kvstore::FIELDS,
            VKind::Attn => Attn::FIELDS,
            VKind::Add => Add::FIELDS,
            VKind::Swiglu => Swiglu::FIELDS,
            VKind::Sample | VKind::Logprob => Sample::FIELDS,
            VKind::DmaOut | VKind::DmaIn => DmaVector::FIELDS,
            VKind::KvSave | VKind::KvLoad => KvTransfer::FIELDS,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_and_fields_never_overlap() {
        let m = VParams::Matvec(Matvec {
            input: 3,
            out: 9,
            cols: 64,
            groups: 2,
            rom_base: 0xAB_CDEF,
            requant_base: 17,
            last_sub: 3,
        });
        let row = m.encode().unwrap();
        assert_eq!(row[..7], [3, 9, 64, 2, 0xCDEF, 0xAB, 17]);
        assert_eq!(VParams::decode(VKind::Matvec, &row), m);
        for kind in VKind::ALL {
            let fields = VParams::fields(kind);
            for (i, a) in fields.iter().enumerate() {
                assert!(a.offset + a.width <= 256, "{kind:?} {}", a.name);
                for b in &fields[i + 1..] {
                    assert!(
                        a.offset + a.width <= b.offset,
                        "{kind:?}: {} and {} overlap or are out of order",
                        a.name,
                        b.name
                    );
                }
            }
        }
    }

    #[test]
    fn a_value_too_wide_for_its_field_is_refused() {
        let a = VParams::Attn(Attn {
            score_shift: 64,
            ..Attn::default()
        });
        let e = a.encode().unwrap_err();
        assert_eq!((e.field, e.width), ("score_shift", 6));
        let r = VParams::Rmsnorm(Rmsnorm {
            eps: (1 << 48) - 1,
            shift_adj: 63,
            ..Rmsnorm::default()
        });
        let row = r.encode().unwrap();
        assert_eq!(row[4..8], [0xFFFF, 0xFFFF, 0xFFFF, 63]);
    }
}
