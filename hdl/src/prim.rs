//! Primitives: the few operations rust-hdl cannot express (signed multiplication,
//! arithmetic shifts, memories initialized from hex files), each a small piece of
//! Verilog paired with a rust-hdl simulation model of exactly the same behaviour.

use rust_hdl::prelude::*;

/// Sign- or zero-extends the low `n` bits of `v` to i128.
pub fn extend(v: u128, n: usize, signed: bool) -> i128 {
    let v = if n >= 128 { v } else { v & ((1u128 << n) - 1) };
    if signed && n < 128 && (v >> (n - 1)) & 1 == 1 {
        (v | !((1u128 << n) - 1)) as i128
    } else {
        v as i128
    }
}

/// Combinational multiplier: `p = a · b`, each operand signed or unsigned, the product
/// truncated or sign-extended to `P` bits.
#[derive(LogicBlock)]
pub struct Mul<const A: usize, const B: usize, const P: usize> {
    /// First operand.
    pub a: Signal<In, Bits<A>>,
    /// Second operand.
    pub b: Signal<In, Bits<B>>,
    /// Product.
    pub p: Signal<Out, Bits<P>>,
    _a_signed: bool,
    _b_signed: bool,
}

impl<const A: usize, const B: usize, const P: usize> Mul<A, B, P> {
    /// A multiplier with the given operand signedness.
    pub fn new(a_signed: bool, b_signed: bool) -> Self {
        Mul {
            a: Default::default(),
            b: Default::default(),
            p: Default::default(),
            _a_signed: a_signed,
            _b_signed: b_signed,
        }
    }
}

/// The low `P` bits of an i128.
pub fn to_bits<const P: usize>(v: i128) -> Bits<P> {
    let mut out = Bits::<P>::default();
    let raw = v as u128;
    let mut i = 0;
    while i < P {
        let take = (P - i).min(64);
        let chunk = if i >= 128 {
            if v < 0 {
                u64::MAX
            } else {
                0
            }
        } else {
            (raw >> i) as u64
        };
        let mask = if take == 64 {
            u64::MAX
        } else {
            (1u64 << take) - 1
        };
        for k in 0..take {
            if (chunk & mask) >> k & 1 == 1 {
                out = out.replace_bit(i + k, true);
            }
        }
        i += take;
    }
    out
}

/// The value of a `Bits` as u128 (low 128 bits).
pub fn to_u128<const N: usize>(b: Bits<N>) -> u128 {
    if N <= 64 {
        b.to_u64() as u128
    } else {
        b.to_u128()
    }
}

impl<const A: usize, const B: usize, const P: usize> Logic for Mul<A, B, P> {
    fn update(&mut self) {
        let a = extend(to_u128(self.a.val()), A, self._a_signed);
        let b = extend(to_u128(self.b.val()), B, self._b_signed);
        self.p.next = to_bits::<P>(a.wrapping_mul(b));
    }
    fn connect(&mut self) {
        self.p.connect();
    }
    fn hdl(&self) -> Verilog {
        let ext = |n: usize, signed: bool, name: &str| {
            if signed {
                format!("{{{name}[{}], {name}}}", n - 1)
            } else {
                format!("{{1'b0, {name}}}")
            }
        };
        let full = A + B + 2;
        let take = if P <= full {
            format!("p_full[{}:0]", P - 1)
        } else {
            format!("{{{{{}{{p_full[{}]}}}}, p_full}}", P - full, full - 1)
        };
        Verilog::Custom(format!(
            "wire signed [{a}:0] a_x = {ea};\nwire signed [{b}:0] b_x = {eb};\n\
             wire signed [{f}:0] p_full = a_x * b_x;\nalways @(*) p = {take};",
            a = A,
            b = B,
            f = full - 1,
            ea = ext(A, self._a_signed, "a"),
            eb = ext(B, self._b_signed, "b"),
        ))
    }
}

/// The requantizer, pipelined over two cycles:
/// `y = sat16(round_shift(x · m, s))` with `x` a signed `X`-bit value (48 for an
/// accumulator or a score, 16 for an activation), `m` a signed 17-bit multiplier and
/// `s` a shift of 0..=63 (rounding half up), computed exactly: the golden model's
/// `i64` arithmetic never overflows on the values the quantizer produces, and on
/// those the two agree bit for bit.
///
/// The first stage registers the exact `X + 17`-bit product `v`. The second uses
/// `round_shift(v, s) = ((2v >>> s) + 1) >>> 1` (for every `s`, also 0), so only the
/// low 17 bits of `w = 2v >>> s` are shifted out, and whether `w` fits in 17 bits —
/// `v[X+16:15+s]` all equal to its sign — decides saturation. No wide adder, rounding
/// constant or full-width shifter: about a third of the logic of the direct form,
/// which mattered because there is one requantizer per lane and per sigmoid unit.
/// A 16-bit `x` takes one 18 × 18 multiplier where 48 bits take three, and a third
/// of the shifter.
#[derive(LogicBlock, Default)]
pub struct Requant<const X: usize> {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// Value (signed).
    pub x: Signal<In, Bits<X>>,
    /// Multiplier (signed; the unsigned 16-bit multipliers are zero-extended).
    pub m: Signal<In, Bits<17>>,
    /// Right shift.
    pub s: Signal<In, Bits<6>>,
    /// Result, two cycles after the operands.
    pub y: Signal<Out, Bits<16>>,
    _prod: i128,
    _shift: u32,
}

/// `sat16(round_shift(v, s))` without overflow: the model of the requantizer's
/// second stage, and the golden model's `requant` wherever that one is defined.
pub fn round_shift_sat16(v: i128, s: u32) -> i16 {
    let r = if s == 0 {
        v
    } else {
        (v + (1i128 << (s - 1))) >> s
    };
    r.clamp(i16::MIN as i128, i16::MAX as i128) as i16
}

impl<const X: usize> Logic for Requant<X> {
    fn update(&mut self) {
        if self.clock.pos_edge() {
            self.y.next = (round_shift_sat16(self._prod, self._shift) as u16 as u64).into();
            let x = extend(to_u128(self.x.val()), X, true);
            let m = extend(to_u128(self.m.val()), 17, true);
            self._prod = x * m;
            self._shift = self.s.val().to_u64() as u32;
        }
    }
    fn connect(&mut self) {
        self.y.connect();
    }
    fn hdl(&self) -> Verilog {
        // v: X + 17 bits; 2v: one more.
        let v = X + 17;
        Verilog::Custom(format!(
            "reg signed [{v1}:0] prod_q;\nreg [5:0] s_q;\n\
             wire signed [{v}:0] two = {{prod_q, 1'b0}};\n\
             /* verilator lint_off UNUSEDSIGNAL */\n\
             wire signed [{v}:0] w = two >>> s_q;\n\
             wire [17:0] w1 = {{w[16], w[16:0]}} + 18'd1;\n\
             /* verilator lint_on UNUSEDSIGNAL */\n\
             wire [{v1}:0] differs = prod_q ^ {{{v}{{prod_q[{v1}]}}}};\n\
             wire [{v1}:0] above = {{{v}{{1'b1}}}} << (7'd15 + {{1'b0, s_q}});\n\
             wire fits = ~|(differs & above);\n\
             wire signed [16:0] r = w1[17:1];\n\
             (* keep *) always @(posedge clock) begin\n    prod_q <= $signed(x) * $signed(m);\n    s_q <= s;\n\
             \x20   if (!fits) y <= prod_q[{v1}] ? 16'h8000 : 16'h7fff;\n\
             \x20   else if (r > 17'sd32767) y <= 16'h7fff;\n\
             \x20   else y <= r[15:0];\nend",
            v1 = v - 1,
        ))
    }
}

/// A synchronous-read ROM of `W`-bit words whose contents come from a hex file in the
/// build's `rom/` directory (`$readmemh`), instantiated as the `etch_rom` primitive.
#[derive(LogicBlock)]
pub struct Rom<const AW: usize, const W: usize> {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// Word address.
    pub address: Signal<In, Bits<AW>>,
    /// The word, one cycle after its address.
    pub data: Signal<Out, Bits<W>>,
    _contents: Vec<u64>,
    _file: String,
}

impl<const AW: usize, const W: usize> Rom<AW, W> {
    /// A ROM holding `contents`, initialized in Verilog from `rom/<file>`.
    pub fn new(contents: Vec<u64>, file: &str) -> Self {
        Rom {
            clock: Default::default(),
            address: Default::default(),
            data: Default::default(),
            _contents: contents,
            _file: file.to_string(),
        }
    }
}

impl<const AW: usize, const W: usize> Logic for Rom<AW, W> {
    fn update(&mut self) {
        if self.clock.pos_edge() {
            let a = self.address.val().to_u64() as usize;
            self.data.next = self._contents.get(a).copied().unwrap_or(0).into();
        }
    }
    fn connect(&mut self) {
        self.data.connect();
    }
    fn hdl(&self) -> Verilog {
        Verilog::Wrapper(Wrapper {
            code: format!(
                "etch_rom #(.W({W}), .A({AW}), .D({d}), .INIT(\"rom/{f}\")) rom_i (.clk(clock), .addr(address), .data(data));",
                d = self._contents.len().max(1),
                f = self._file
            ),
            cores: String::new(),
        })
    }
}

/// The banks a ROM of `depth` words is built from, as word counts in address order.
///
/// A ROM a few words deeper than a power of two of at least 4,096 (at most an eighth
/// more) is split there. Left whole, yosys keeps the power of two in block RAMs of
/// that depth (4K × 4 on the ECP5) and builds every bit of the last few words from
/// LUTs and wide multiplexers: stories260K's 4,112 × 256-bit weight ROM took
/// 64 DP16KD, 2,304 LUT4s and 1,024 multiplexer cells; as banks of 4,096 and 16
/// words, 57 DP16KD, 721 LUT4s and 255 multiplexer cells (`docs/FPGA.md`). The
/// second bank reads the low address bits of its own depth (`etch_rom` truncates).
pub fn rom_banks(depth: usize) -> Vec<usize> {
    if depth > 4096 && !depth.is_power_of_two() {
        let low = 1usize << (usize::BITS - 1 - depth.leading_zeros());
        if depth - low <= low / 8 {
            return vec![low, depth - low];
        }
    }
    vec![depth.max(1)]
}

/// The image file of bank `bank` of the ROM whose first bank is `rom/{stem}.hex`.
pub fn rom_bank_file(stem: &str, bank: usize) -> String {
    match bank {
        0 => format!("{stem}.hex"),
        b => format!("{stem}.{b}.hex"),
    }
}

/// Verilog for instance `inst` of a ROM of `depth` words of `width` bits (address port
/// `addr_width` bits), read at `addr` into the declared wire `data` one cycle later,
/// from [`rom_bank_file`]s named after `stem`. With two [`rom_banks`], the address
/// bit between them is registered beside the banks' reads and selects the word.
pub fn rom_verilog(
    inst: &str,
    width: usize,
    addr_width: usize,
    depth: usize,
    stem: &str,
    addr: &str,
    data: &str,
) -> String {
    let banks = rom_banks(depth);
    let bank = |b: usize, d: usize, a: &str, q: &str| {
        format!(
            "    etch_rom #(.W({width}), .A({addr_width}), .D({d}), .INIT(\"rom/{f}\")) {inst}{sfx} (.clk(clk), .addr({a}), .data({q}));\n",
            f = rom_bank_file(stem, b),
            sfx = if banks.len() == 1 { String::new() } else { format!("_{b}") },
        )
    };
    if let [d] = banks[..] {
        return bank(0, d, addr, data);
    }
    let low = banks[0];
    let mut v = format!(
        "    // {depth} words as banks of {low} and {tail}: the last words apart from the block RAMs.
    wire [{aw}:0] {inst}_a = {addr};
    wire [{wb}:0] {inst}_q0, {inst}_q1;
    reg {inst}_hi;
    always @(posedge clk) {inst}_hi <= {inst}_a[{k}];
",
        tail = banks[1],
        aw = addr_width - 1,
        wb = width - 1,
        k = low.trailing_zeros(),
    );
    v += &bank(0, low, &format!("{inst}_a"), &format!("{inst}_q0"));
    v += &bank(1, banks[1], &format!("{inst}_a"), &format!("{inst}_q1"));
    v += &format!("    assign {data} = {inst}_hi ? {inst}_q1 : {inst}_q0;\n");
    v
}

/// The Verilog of the memory primitives every generated design includes.
pub const PRIMITIVES_V: &str = r#"// etch memory primitives: synchronous-read ROM and RAMs.
//
// ROM contents come from hex files ($readmemh). Under Verilator the build directory
// is taken from the plusarg +etch_out=DIR so that one compiled model serves any copy
// of the design; synthesis reads the path relative to the working directory.
// Address ports may be wider than the memory needs (A bits for D words); only the low
// $clog2(D) bits index the array, and the upper bits are deliberately unused.

module etch_rom #(
    parameter W = 8,            // word width
    parameter A = 10,           // address port width
    parameter D = 1024,         // words
    parameter INIT = "rom/x.hex"
) (
    input  wire         clk,
    /* verilator lint_off UNUSEDSIGNAL */
    input  wire [A-1:0] addr,
    /* verilator lint_on UNUSEDSIGNAL */
    output reg  [W-1:0] data
);
    localparam AI = (D > 1) ? $clog2(D) : 1;
    reg [W-1:0] words [0:D-1];
`ifdef VERILATOR
    string dir;
    initial begin
        if (!$value$plusargs("etch_out=%s", dir)) dir = ".";
        $readmemh($sformatf("%0s/%0s", dir, INIT), words);
    end
`else
    initial $readmemh(INIT, words);
`endif
    always @(posedge clk) data <= words[addr[AI-1:0]];
endmodule

module etch_ram_1r1w #(
    parameter W = 16,
    parameter A = 10,
    parameter D = 1024
) (
    input  wire         clk,
    /* verilator lint_off UNUSEDSIGNAL */
    input  wire [A-1:0] raddr,
    /* verilator lint_on UNUSEDSIGNAL */
    output reg  [W-1:0] rdata,
    input  wire         we,
    /* verilator lint_off UNUSEDSIGNAL */
    input  wire [A-1:0] waddr,
    /* verilator lint_on UNUSEDSIGNAL */
    input  wire [W-1:0] wdata
);
    localparam AI = (D > 1) ? $clog2(D) : 1;
    reg [W-1:0] words [0:D-1];
    always @(posedge clk) begin
        if (we) words[waddr[AI-1:0]] <= wdata;
        rdata <= words[raddr[AI-1:0]];
    end
endmodule

module etch_ram_2r1w #(
    parameter W = 16,
    parameter A = 10,
    parameter D = 1024
) (
    input  wire         clk,
    /* verilator lint_off UNUSEDSIGNAL */
    input  wire [A-1:0] raddr0,
    input  wire [A-1:0] raddr1,
    input  wire [A-1:0] waddr,
    /* verilator lint_on UNUSEDSIGNAL */
    output reg  [W-1:0] rdata0,
    output reg  [W-1:0] rdata1,
    input  wire         we,
    input  wire [W-1:0] wdata
);
    localparam AI = (D > 1) ? $clog2(D) : 1;
    reg [W-1:0] words [0:D-1];
    always @(posedge clk) begin
        if (we) words[waddr[AI-1:0]] <= wdata;
        rdata0 <= words[raddr0[AI-1:0]];
        rdata1 <= words[raddr1[AI-1:0]];
    end
endmodule

// Sixteen registers, three asynchronous read ports, one write port; register 0 reads
// as zero. Asynchronous reads let FPGA tools build it from LUT RAM (one copy per read
// port) instead of flip-flops and wide read multiplexers.
module etch_regfile_3r1w #(
    parameter W = 64
) (
    input  wire         clk,
    input  wire [3:0]   ra,
    input  wire [3:0]   rb,
    input  wire [3:0]   rc,
    output wire [W-1:0] da,
    output wire [W-1:0] db,
    output wire [W-1:0] dc,
    input  wire         we,
    input  wire [3:0]   wa,
    input  wire [W-1:0] wd
);
    reg [W-1:0] regs [0:15];
    integer i;
    initial for (i = 0; i < 16; i = i + 1) regs[i] = {W{1'b0}};
    always @(posedge clk) if (we) regs[wa] <= wd;
    assign da = (ra == 4'd0) ? {W{1'b0}} : regs[ra];
    assign db = (rb == 4'd0) ? {W{1'b0}} : regs[rb];
    assign dc = (rc == 4'd0) ? {W{1'b0}} : regs[rc];
endmodule
"#;

/// A simple dual-port RAM (one synchronous read port, one write port), the
/// `etch_ram_1r1w` primitive; reads return the old word on a same-address write.
#[derive(LogicBlock)]
pub struct Ram<const AW: usize, const W: usize> {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// Read address.
    pub raddr: Signal<In, Bits<AW>>,
    /// Read data, one cycle after its address.
    pub rdata: Signal<Out, Bits<W>>,
    /// Write enable.
    pub we: Signal<In, Bit>,
    /// Write address.
    pub waddr: Signal<In, Bits<AW>>,
    /// Write data.
    pub wdata: Signal<In, Bits<W>>,
    _mem: Vec<Bits<W>>,
}

impl<const AW: usize, const W: usize> Ram<AW, W> {
    /// A RAM of `depth` words.
    pub fn new(depth: usize) -> Self {
        Ram {
            clock: Default::default(),
            raddr: Default::default(),
            rdata: Default::default(),
            we: Default::default(),
            waddr: Default::default(),
            wdata: Default::default(),
            _mem: vec![Bits::<W>::default(); depth.max(1)],
        }
    }
}

impl<const AW: usize, const W: usize> Logic for Ram<AW, W> {
    fn update(&mut self) {
        if self.clock.pos_edge() {
            let r = self.raddr.val().to_u64() as usize;
            self.rdata.next = self._mem.get(r).copied().unwrap_or_default();
            if self.we.val() {
                let w = self.waddr.val().to_u64() as usize;
                if let Some(slot) = self._mem.get_mut(w) {
                    *slot = self.wdata.val();
                }
            }
        }
    }
    fn connect(&mut self) {
        self.rdata.connect();
    }
    fn hdl(&self) -> Verilog {
        Verilog::Wrapper(Wrapper {
            code: format!(
                "etch_ram_1r1w #(.W({W}), .A({AW}), .D({d})) ram_i (.clk(clock), .raddr(raddr), .rdata(rdata), .we(we), .waddr(waddr), .wdata(wdata));",
                d = self._mem.len()
            ),
            cores: String::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roms_just_past_a_power_of_two_split_there() {
        // stories260K on 8 lanes × 8 columns: 4,096 words and 16.
        assert_eq!(rom_banks(4112), [4096, 16]);
        assert_eq!(rom_banks(4096 + 512), [4096, 512]);
        // Further past, or small, or a power of two: one bank.
        assert_eq!(rom_banks(4096 + 513), [4609]);
        assert_eq!(rom_banks(1000), [1000]);
        assert_eq!(rom_banks(2160), [2160]);
        assert_eq!(rom_banks(8192), [8192]);
        assert_eq!(rom_banks(0), [1]);
        assert_eq!(rom_bank_file("weights", 0), "weights.hex");
        assert_eq!(rom_bank_file("weights", 1), "weights.1.hex");
    }

    #[test]
    fn a_split_rom_registers_the_bank_select() {
        let v = rom_verilog(
            "u_wrom",
            256,
            24,
            4112,
            "weights",
            "vc_wrom_addr",
            "wrom_data",
        );
        assert!(v.contains("u_wrom_hi <= u_wrom_a[12];"), "{v}");
        assert!(v.contains(".D(4096), .INIT(\"rom/weights.hex\")"), "{v}");
        assert!(v.contains(".D(16), .INIT(\"rom/weights.1.hex\")"), "{v}");
        assert!(v.contains("assign wrom_data = u_wrom_hi ? u_wrom_q1 : u_wrom_q0;"));
        let one = rom_verilog(
            "u_wrom",
            256,
            24,
            4000,
            "weights",
            "vc_wrom_addr",
            "wrom_data",
        );
        assert_eq!(one.matches("etch_rom").count(), 1, "{one}");
        assert!(one.contains("u_wrom (.clk(clk), .addr(vc_wrom_addr), .data(wrom_data));"));
    }
}
