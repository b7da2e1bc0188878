//! The BAR0 register map (`docs/registers.md`): 32-bit registers at byte offsets
//! `4 · index`. The sequencer sees the same registers as CSRs by index.

/// `'ETCH'`, the value of [`ID`].
pub const ID_MAGIC: u32 = 0x4554_4348;
/// Hardware interface version (major << 16 | minor).
pub const HW_VERSION: u32 = 0x0001_0000;

macro_rules! regs {
    ($($(#[$m:meta])* $name:ident = $idx:expr;)*) => {
        $($(#[$m])* pub const $name: u16 = $idx;)*
        /// Every register with its name, for dumps and documentation.
        pub const ALL: &[(&str, u16)] = &[$((stringify!($name), $idx)),*];
    };
}

regs! {
    /// RO: [`ID_MAGIC`].
    ID = 0x00;
    /// RO: [`HW_VERSION`].
    VERSION = 0x01;
    /// RO: firmware version (from the firmware image header).
    FW_VERSION = 0x02;
    /// RO: `lanes | contexts << 16`.
    CONFIG0 = 0x03;
    /// RO: `max_seq | vocab_size << 16`.
    CONFIG1 = 0x04;
    /// RO: `dim | n_layers << 16`.
    CONFIG2 = 0x05;
    /// RO: `n_heads | n_kv_heads << 8 | hidden_dim << 16`.
    CONFIG3 = 0x06;
    /// RO: eight words, SHA-256 of checkpoint and quantization settings (big-endian
    /// words: `MODEL_ID0` holds the first four bytes).
    MODEL_ID0 = 0x08;
    /// RO: eight words, SHA-256 of the firmware image.
    FW_HASH0 = 0x10;
    /// RO (written by firmware): ROM signature, low word, valid when STATUS.ready.
    ROM_SIG_LO = 0x18;
    /// RO (written by firmware): ROM signature, high word.
    ROM_SIG_HI = 0x19;
    /// RO (written by firmware): bit 0 ready, bit 1 busy, bit 2 fault.
    STATUS = 0x1A;
    /// RW: bit 0 abort the running command, bit 1 debug (logits to host).
    CONTROL = 0x1B;
    /// RW1C: pending interrupt causes, one bit per vector.
    IRQ_STATUS = 0x1C;
    /// RW: bit set = vector enabled.
    IRQ_MASK = 0x1D;
    /// RO: cycle counter, low word (reading it latches the high word).
    CYCLE_LO = 0x20;
    /// RO: cycle counter, high word as latched by the last read of CYCLE_LO.
    CYCLE_HI = 0x21;
    /// RO: tokens processed (forward passes) since reset.
    TOKENS = 0x22;
    /// RO: cycles the vector unit spent in matrix-vector products (and the embedding).
    PERF_MATVEC = 0x23;
    /// RO: cycles in attention scores and KV-cache writes.
    PERF_ATTENTION = 0x24;
    /// RO: cycles in attention weights, weighted sums and their normalization.
    PERF_SOFTMAX = 0x25;
    /// RO: cycles in RMSNorm.
    PERF_NORM = 0x26;
    /// RO: cycles in element-wise steps (RoPE, SwiGLU, residual adds, sines).
    PERF_ELEMENTWISE = 0x27;
    /// RO: cycles in sampling and log-probabilities.
    PERF_SAMPLING = 0x28;
    /// RO: cycles moving data to or from host memory (DMA by sequencer or vector unit).
    PERF_DMA = 0x29;
    /// RO: cycles of the sequencer's own work between vector operations (stall).
    PERF_CONTROL = 0x2A;
    /// RO: cycles the chip waited for a doorbell.
    PERF_IDLE = 0x2B;
    /// RW: submission queue base address, low word (64-byte aligned).
    SQ_BASE_LO = 0x40;
    /// RW: submission queue base address, high word.
    SQ_BASE_HI = 0x41;
    /// RW: submission queue entries (power of two, at most 4096).
    SQ_SIZE = 0x42;
    /// RW (doorbell): submission queue tail, written by the host.
    SQ_TAIL = 0x43;
    /// RO (written by firmware): submission queue head.
    SQ_HEAD = 0x44;
    /// RW: completion queue base address, low word (16-byte aligned).
    CQ_BASE_LO = 0x48;
    /// RW: completion queue base address, high word.
    CQ_BASE_HI = 0x49;
    /// RW: completion queue entries (power of two, at most 4096).
    CQ_SIZE = 0x4A;
    /// RW (doorbell): completion queue head, written by the host as it consumes.
    CQ_HEAD = 0x4B;
    /// RO (written by firmware): completion queue tail.
    CQ_TAIL = 0x4C;
    /// Firmware scratch: result of the last vector operation, low word.
    VRES_LO = 0x60;
    /// Firmware scratch: result of the last vector operation, high word.
    VRES_HI = 0x61;
}

/// Number of 32-bit registers in BAR0 (4 KiB).
pub const COUNT: u16 = 1024;

/// STATUS bits.
pub mod status {
    /// Boot finished (ROM self-test done, queues may be used).
    pub const READY: u32 = 1 << 0;
    /// A command is executing.
    pub const BUSY: u32 = 1 << 1;
    /// The sequencer stopped on a fault (bad instruction); reset needed.
    pub const FAULT: u32 = 1 << 2;
}

/// CONTROL bits.
pub mod control {
    /// Ask the running GENERATE, PREFILL or SCORE to stop after the current token.
    pub const ABORT: u32 = 1 << 0;
}

/// The performance counters in order (PERF_MATVEC ..= PERF_IDLE), with their names.
pub const PERF: [(&str, u16); 9] = [
    ("matvec", PERF_MATVEC),
    ("attention", PERF_ATTENTION),
    ("softmax", PERF_SOFTMAX),
    ("normalization", PERF_NORM),
    ("elementwise", PERF_ELEMENTWISE),
    ("sampling", PERF_SAMPLING),
    ("host/DMA", PERF_DMA),
    ("control", PERF_CONTROL),
    ("idle", PERF_IDLE),
];

/// Interrupt vectors.
pub mod irq {
    /// A completion was posted.
    pub const COMPLETION: u32 = 0;
    /// The sequencer faulted.
    pub const FAULT: u32 = 1;
}

/// How the chip presents itself on PCIe (`docs/driver.md`).
pub mod pci {
    /// PCI vendor ID of etch devices (experimental, not assigned by the PCI-SIG).
    pub const VENDOR_ID: u16 = 0x1DEC;
    /// PCI device ID of an etch chip.
    pub const DEVICE_ID: u16 = 0xE7C1;
    /// PCI class code: processing accelerator (0x12), no programming interface.
    pub const CLASS: u32 = 0x12_0000;
    /// Bytes of BAR0: the 4 KiB register file, then the MSI-X structures.
    pub const BAR0_BYTES: u64 = 8192;
    /// BAR0 byte offset of the MSI-X table (one 16-byte entry per vector).
    pub const MSIX_TABLE: u64 = 0x1000;
    /// BAR0 byte offset of the MSI-X pending-bit array.
    pub const MSIX_PBA: u64 = 0x1800;
    /// Interrupt vectors ([`super::irq`]).
    pub const VECTORS: u32 = 2;
}
