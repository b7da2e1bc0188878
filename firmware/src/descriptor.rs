//! Command and completion descriptors: what travels through the submission and
//! completion rings in host memory (`docs/registers.md`, "Queues").
//!
//! A command is 64 bytes (16 little-endian words); a completion is 16 bytes. The chip
//! flips the completion's phase bit each time the completion ring wraps, as NVMe does,
//! so the host recognizes new entries without reading a register.

/// Bytes in a command descriptor.
pub const COMMAND_BYTES: usize = 64;
/// Bytes in a completion descriptor.
pub const COMPLETION_BYTES: usize = 16;
/// Bytes of the IDENTIFY block.
pub const IDENTIFY_BYTES: usize = 128;
/// Bytes of a saved context's header (the KV rows follow).
pub const SAVE_HEADER_BYTES: usize = 64;
/// `'EKVC'`: first word of a saved context.
pub const SAVE_MAGIC: u32 = 0x454B_5643;
/// Version of the saved-context layout.
pub const SAVE_VERSION: u32 = 1;
/// Stop tokens a GENERATE command can carry.
pub const MAX_STOP_TOKENS: usize = 4;

/// Command opcodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Opcode {
    /// Write the IDENTIFY block (128 bytes) to `addr_a`.
    Identify = 1,
    /// Make context slot `context` live at position 0.
    CreateContext = 2,
    /// Free context slot `context`.
    DestroyContext = 3,
    /// Run `count` tokens (u32 each, at `addr_a`) through the model without sampling.
    Prefill = 4,
    /// Feed `token`, then sample and feed back up to `count` tokens, writing each
    /// (u32) to `addr_a` as it is produced.
    Generate = 5,
    /// Feed `count` tokens from `addr_a`; write the log-probability (i32, Q10 log2
    /// units) of each token after the first to `addr_b`.
    Score = 6,
    /// Write the context (header and KV rows) to `addr_a`.
    SaveContext = 7,
    /// Read a context written by SAVE_CONTEXT from `addr_a`.
    RestoreContext = 8,
    /// Abort the running command with id `token` (a no-op when it is not running).
    Abort = 9,
    /// Free every context.
    Reset = 10,
}

impl Opcode {
    /// The opcode for a byte, if it names one.
    pub fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => Opcode::Identify,
            2 => Opcode::CreateContext,
            3 => Opcode::DestroyContext,
            4 => Opcode::Prefill,
            5 => Opcode::Generate,
            6 => Opcode::Score,
            7 => Opcode::SaveContext,
            8 => Opcode::RestoreContext,
            9 => Opcode::Abort,
            10 => Opcode::Reset,
            _ => return None,
        })
    }
}

/// Command flags.
pub mod flags {
    /// Write the int16 logits of every forward pass to `addr_b` (PREFILL, GENERATE):
    /// `vocab_size` values per step, each step padded to a multiple of 4 values.
    pub const DEBUG_LOGITS: u8 = 1 << 0;
    /// PREFILL: write the int16 logits of the last token only, to `addr_b` (one step of
    /// the same layout). Without this flag or DEBUG_LOGITS a PREFILL skips the final
    /// norm and the classifier: it only fills the context.
    pub const LAST_LOGITS: u8 = 1 << 1;
}

/// Completion status codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum Status {
    /// Success.
    Ok = 0,
    /// The opcode names no command.
    InvalidOpcode = 1,
    /// The context index is not below the chip's context count.
    InvalidContext = 2,
    /// CREATE_CONTEXT on a live context.
    ContextExists = 3,
    /// The context was not created.
    NoContext = 4,
    /// The tokens do not fit the context's remaining positions.
    ContextFull = 5,
    /// A token id is not below the vocabulary size.
    InvalidToken = 6,
    /// A DMA transfer touched memory the host did not map (or was misaligned).
    DmaError = 7,
    /// The command was aborted.
    Aborted = 8,
    /// A count or field is out of range.
    BadArgument = 9,
    /// RESTORE_CONTEXT found an image of another model or layout.
    BadSaveImage = 10,
}

impl Status {
    /// The status for a code, if it names one.
    pub fn from_u16(v: u16) -> Option<Self> {
        Some(match v {
            0 => Status::Ok,
            1 => Status::InvalidOpcode,
            2 => Status::InvalidContext,
            3 => Status::ContextExists,
            4 => Status::NoContext,
            5 => Status::ContextFull,
            6 => Status::InvalidToken,
            7 => Status::DmaError,
            8 => Status::Aborted,
            9 => Status::BadArgument,
            10 => Status::BadSaveImage,
            _ => return None,
        })
    }

    /// A short English description.
    pub fn describe(self) -> &'static str {
        match self {
            Status::Ok => "success",
            Status::InvalidOpcode => "invalid opcode",
            Status::InvalidContext => "context index out of range",
            Status::ContextExists => "context already exists",
            Status::NoContext => "context does not exist",
            Status::ContextFull => "context is full",
            Status::InvalidToken => "token id outside the vocabulary",
            Status::DmaError => "DMA outside mapped host memory",
            Status::Aborted => "aborted",
            Status::BadArgument => "argument out of range",
            Status::BadSaveImage => "saved context does not match this chip",
        }
    }
}

/// Why a GENERATE stopped (completion word 1, bits 24..32).
pub mod reason {
    /// `count` tokens were produced.
    pub const COUNT: u8 = 0;
    /// A stop token was produced (it is the last token written).
    pub const STOP_TOKEN: u8 = 1;
    /// The context reached its maximum length.
    pub const CONTEXT_FULL: u8 = 2;
    /// Aborted.
    pub const ABORTED: u8 = 3;
}

/// Where each field of a command sits: 32-bit word indices of the 64-byte descriptor
/// (the firmware reads them from the scratchpad at these words).
pub mod command_word {
    /// Opcode (bits 0..8), flags (8..16), context (16..24).
    pub const HEAD: u32 = 0;
    /// The id echoed in the completion.
    pub const ID: u32 = 1;
    /// `addr_a`, low word then high word.
    pub const ADDR_A: u32 = 2;
    /// `count`.
    pub const COUNT: u32 = 4;
    /// `token`.
    pub const TOKEN: u32 = 5;
    /// `inv_temp` (bits 0..16), `topp` (16..32).
    pub const SAMPLING: u32 = 6;
    /// `seed`, low word then high word.
    pub const SEED: u32 = 8;
    /// `addr_b`, low word then high word.
    pub const ADDR_B: u32 = 10;
    /// Stop tokens, two per word.
    pub const STOPS: u32 = 12;
    /// `stop_count`.
    pub const STOP_COUNT: u32 = 14;
}

/// Where each field of a completion sits (32-bit word indices).
pub mod completion_word {
    /// The command's id.
    pub const ID: u32 = 0;
    /// Status (bits 0..16), phase (16), reason (24..32).
    pub const STATUS: u32 = 1;
    /// Result.
    pub const RESULT: u32 = 2;
    /// Position.
    pub const POSITION: u32 = 3;
}

/// The words of a saved context's 64-byte header.
pub mod save_word {
    /// [`super::SAVE_MAGIC`].
    pub const MAGIC: u32 = 0;
    /// [`super::SAVE_VERSION`].
    pub const VERSION: u32 = 1;
    /// The context's position.
    pub const POSITION: u32 = 2;
    /// Layers.
    pub const LAYERS: u32 = 3;
    /// Bytes per KV row.
    pub const ROW_BYTES: u32 = 4;
    /// Positions per context of the chip that saved it.
    pub const MAX_SEQ: u32 = 5;
    /// Words 8..16: the model identity.
    pub const MODEL_ID: u32 = 8;
}

/// A command descriptor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Command {
    /// [`Opcode`] as a byte (kept raw so malformed commands can be built).
    pub opcode: u8,
    /// [`flags`].
    pub flags: u8,
    /// Context slot.
    pub context: u8,
    /// Echoed in the completion.
    pub id: u32,
    /// First host address (tokens in or out, save image, identify block).
    pub addr_a: u64,
    /// Token count.
    pub count: u32,
    /// GENERATE: the token fed first. ABORT: the id of the command to abort.
    pub token: u32,
    /// GENERATE: `round(256 / temperature)`, 0 for greedy.
    pub inv_temp: u16,
    /// GENERATE: `round(top_p · 65536)`, 0 for no nucleus.
    pub topp: u16,
    /// GENERATE: initial RNG state.
    pub seed: u64,
    /// Second host address (SCORE results, debug logits).
    pub addr_b: u64,
    /// GENERATE: stop tokens (the first `stop_count` are used).
    pub stop: [u16; MAX_STOP_TOKENS],
    /// GENERATE: how many of `stop` are used.
    pub stop_count: u8,
}

fn word(b: &[u8], i: u32) -> u32 {
    let i = i as usize;
    u32::from_le_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]])
}

fn put(b: &mut [u8], i: u32, v: u32) {
    let i = i as usize;
    b[4 * i..4 * i + 4].copy_from_slice(&v.to_le_bytes());
}

impl Command {
    /// The 64 bytes of the descriptor.
    pub fn to_bytes(&self) -> [u8; COMMAND_BYTES] {
        use command_word as w;
        let mut b = [0u8; COMMAND_BYTES];
        put(
            &mut b,
            w::HEAD,
            self.opcode as u32 | (self.flags as u32) << 8 | (self.context as u32) << 16,
        );
        put(&mut b, w::ID, self.id);
        put(&mut b, w::ADDR_A, self.addr_a as u32);
        put(&mut b, w::ADDR_A + 1, (self.addr_a >> 32) as u32);
        put(&mut b, w::COUNT, self.count);
        put(&mut b, w::TOKEN, self.token);
        put(
            &mut b,
            w::SAMPLING,
            self.inv_temp as u32 | (self.topp as u32) << 16,
        );
        put(&mut b, w::SEED, self.seed as u32);
        put(&mut b, w::SEED + 1, (self.seed >> 32) as u32);
        put(&mut b, w::ADDR_B, self.addr_b as u32);
        put(&mut b, w::ADDR_B + 1, (self.addr_b >> 32) as u32);
        put(
            &mut b,
            w::STOPS,
            self.stop[0] as u32 | (self.stop[1] as u32) << 16,
        );
        put(
            &mut b,
            w::STOPS + 1,
            self.stop[2] as u32 | (self.stop[3] as u32) << 16,
        );
        put(&mut b, w::STOP_COUNT, self.stop_count as u32);
        b
    }

    /// Parses 64 bytes.
    pub fn from_bytes(b: &[u8; COMMAND_BYTES]) -> Self {
        use command_word as w;
        let head = word(b, w::HEAD);
        let pair = |i: u32| word(b, i) as u64 | (word(b, i + 1) as u64) << 32;
        Command {
            opcode: head as u8,
            flags: (head >> 8) as u8,
            context: (head >> 16) as u8,
            id: word(b, w::ID),
            addr_a: pair(w::ADDR_A),
            count: word(b, w::COUNT),
            token: word(b, w::TOKEN),
            inv_temp: word(b, w::SAMPLING) as u16,
            topp: (word(b, w::SAMPLING) >> 16) as u16,
            seed: pair(w::SEED),
            addr_b: pair(w::ADDR_B),
            stop: [
                word(b, w::STOPS) as u16,
                (word(b, w::STOPS) >> 16) as u16,
                word(b, w::STOPS + 1) as u16,
                (word(b, w::STOPS + 1) >> 16) as u16,
            ],
            stop_count: word(b, w::STOP_COUNT) as u8,
        }
    }
}

/// A completion descriptor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Completion {
    /// The command's id.
    pub id: u32,
    /// [`Status`] code.
    pub status: u16,
    /// Phase bit: flips each time the ring wraps.
    pub phase: bool,
    /// GENERATE: [`reason`].
    pub reason: u8,
    /// Tokens produced or processed; bytes for SAVE_CONTEXT.
    pub result: u32,
    /// The context's position after the command.
    pub position: u32,
}

impl Completion {
    /// The 16 bytes of the descriptor.
    pub fn to_bytes(&self) -> [u8; COMPLETION_BYTES] {
        use completion_word as w;
        let mut b = [0u8; COMPLETION_BYTES];
        put(&mut b, w::ID, self.id);
        put(
            &mut b,
            w::STATUS,
            self.status as u32 | (self.phase as u32) << 16 | (self.reason as u32) << 24,
        );
        put(&mut b, w::RESULT, self.result);
        put(&mut b, w::POSITION, self.position);
        b
    }

    /// Parses 16 bytes.
    pub fn from_bytes(b: &[u8; COMPLETION_BYTES]) -> Self {
        use completion_word as w;
        let status = word(b, w::STATUS);
        Completion {
            id: word(b, w::ID),
            status: status as u16,
            phase: (status >> 16) & 1 == 1,
            reason: (status >> 24) as u8,
            result: word(b, w::RESULT),
            position: word(b, w::POSITION),
        }
    }
}

/// Layout of the IDENTIFY block (32 little-endian words).
pub mod identify {
    /// Word 0: [`crate::regs::ID_MAGIC`].
    pub const MAGIC: usize = 0;
    /// Word 1: hardware version.
    pub const HW_VERSION: usize = 1;
    /// Word 2: firmware version.
    pub const FW_VERSION: usize = 2;
    /// Words 3..7: CONFIG0..CONFIG3.
    pub const CONFIG0: usize = 3;
    /// Words 8..16: model identity (as the MODEL_ID registers).
    pub const MODEL_ID: usize = 8;
    /// Words 16..24: firmware hash.
    pub const FW_HASH: usize = 16;
    /// Words 24, 25: ROM signature (low, high).
    pub const ROM_SIG: usize = 24;
}
