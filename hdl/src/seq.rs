//! The sequencer: a small in-order core that runs the firmware (`docs/isa.md`).
//!
//! Two cycles per instruction in a straight line (Decode registers the instruction
//! ROM's word, Exec executes it while the ROM already reads the next one; a state that
//! finishes a longer instruction does the same), three after a taken branch (Fetch
//! sends the new address first), more for scratchpad loads, CSR reads,
//! products, DMA transfers and vector operations, which it hands to the vector
//! controller and waits for. Sixteen 64-bit registers (`r0` reads 0; the
//! `etch_regfile_3r1w` primitive, read asynchronously), a scratchpad of 1024 32-bit
//! words in two banks (even and odd words, so that a 64-bit DMA beat or an `ldd`/`std`
//! touches both at once), the BAR0 registers as CSRs.
//!
//! Generated as Verilog in named parts: decode, the defaults, the opcode cases of
//! Exec (ALU, control flow, memory and CSRs, DMA and vector operations, each its own
//! function), the multi-cycle states, write-back. Opcodes are the `OP_*` localparams of
//! `etch_firmware::isa::Op`.

use std::fmt::Write;

use etch_firmware::isa::Op;

use crate::vctrl::Dir;

/// The sequencer's ports: name, direction, bits.
pub const PORTS: &[(&str, Dir, u32)] = {
    use Dir::*;
    &[
        ("clock", In, 1),
        ("reset", In, 1),
        ("imem_addr", Out, 12),
        ("imem_data", In, 64),
        ("csr_addr", Out, 10),
        ("csr_rdata", In, 32),
        ("csr_we", Out, 1),
        ("csr_wdata", Out, 32),
        ("dma_req", Out, 1),
        ("dma_we", Out, 1),
        ("dma_addr", Out, 64),
        ("dma_wdata", Out, 64),
        ("dma_ack", In, 1),
        ("dma_err", In, 1),
        ("dma_rdata", In, 64),
        ("v_start", Out, 1),
        ("v_kind", Out, 8),
        ("v_prow", Out, 16),
        ("v_ra", Out, 64),
        ("v_rb", Out, 64),
        ("v_rc", Out, 64),
        ("v_done", In, 1),
        ("vres_we", Out, 1),
        ("irq_raise", Out, 1),
        ("irq_vec", Out, 4),
        ("idle", Out, 1),
        ("fault", Out, 1),
        ("phase", Out, 2),
    ]
};

/// Registers: `name_q`, next value `name_d`, all starting at 0.
const REGISTERS: &[(&str, u32)] = &[
    ("state", 4),
    ("pc", 12),
    ("ir", 64),
    ("beat", 16),
    ("words", 16),
    ("waiting", 1),
];

/// States: Boot (reset just released), Fetch (instruction address out), Decode (the
/// word in, registered), Exec (execute; the next address out), Load (scratchpad read in flight), CsrRd (`csrr`,
/// `waitne`), MulP (`muli`'s registered operands in the multiplier, with
/// `registered_product`), MulW (product in flight), DmaRd (a beat from host memory in flight),
/// DmaWrRead (the scratchpad read for a write beat), DmaWr (a beat to host memory in
/// flight), VWait (the vector controller at work), Fault (`halt` or an invalid
/// instruction).
const STATES: &[&str] = &[
    "BOOT",
    "FETCH",
    "DECODE",
    "EXEC",
    "LOAD",
    "CSR_RD",
    "MUL_P",
    "MUL_W",
    "DMA_RD",
    "DMA_WR_READ",
    "DMA_WR",
    "V_WAIT",
    "FAULT",
];

/// The ports of the vector-operation queue (`Datapath::vop_queue`): the vector unit
/// is busy, its queue is full.
const QUEUE_PORTS: &[(&str, Dir, u32)] = &[
    ("v_busy", Dir::In, 1),
    ("v_full", Dir::In, 1),
    ("v_indep", Dir::Out, 1),
];

/// The sequencer's Verilog (module `etch_seq`). With the vector-operation `queue`, a
/// `vop` does not wait: it is handed over (Exec holds it while the queue is full) and
/// the next instruction runs; arithmetic, branches and further `vop`s go on beside
/// the vector unit (and so do scratchpad loads and stores: the vector unit never
/// touches the scratchpad); every other instruction — CSRs (the result register
/// `VRES`, the counters), DMA, interrupts — waits in Exec until the vector unit is
/// idle. Every operation's result is written to `VRES` as it finishes, and a `vop`'s
/// `rd` (1: `indep`) tells the controller not to wait for the previous operation's
/// writes. With `registered_product` (`Pipeline::scalar_product_registered`), `muli`
/// registers its operands and multiplies them in a state of its own (MulP).
pub fn verilog(queue: bool, registered_product: bool) -> String {
    let mut m = String::from("module etch_seq (\n");
    let ports: Vec<String> = PORTS
        .iter()
        .chain(if queue { QUEUE_PORTS } else { &[] })
        .map(|&(name, dir, bits)| {
            let d = match dir {
                Dir::In => "input  wire",
                Dir::Out => "output reg ",
            };
            let w = if bits == 1 {
                "      ".to_string()
            } else {
                format!("[{}:0]", bits - 1)
            };
            format!("    {d} {w} {name}")
        })
        .collect();
    let _ = writeln!(m, "{}\n);", ports.join(",\n"));
    m += &constants();
    m += &registers();
    m += &decode(registered_product);
    if queue {
        m += QUEUE_DECODE;
    }
    m += "\n    always @(*) begin\n";
    for (name, _) in REGISTERS {
        let _ = writeln!(m, "        {name}_d = {name}_q;");
    }
    m += &defaults();
    m += "        case (state_q)\n";
    m += "            SQ_BOOT: begin\n                pc_d = 0;\n                state_d = SQ_FETCH;\n            end\n";
    m += "            SQ_FETCH: state_d = SQ_DECODE;\n";
    m += "            SQ_DECODE: begin\n                ir_d = imem_data;\n                state_d = SQ_EXEC;\n            end\n";
    m += "            SQ_EXEC: begin\n                state_d = SQ_FETCH;\n";
    if queue {
        m += "                if (v_stall) begin\n                    next_pc = pc_q;\n                    state_d = SQ_EXEC;\n                end else\n";
    }
    m += "                case (op)\n";
    m += &if registered_product {
        exec_alu().replace("SQ_MUL_W", "SQ_MUL_P")
    } else {
        exec_alu()
    };
    m += &exec_control();
    m += &exec_memory();
    m += &if queue {
        exec_transfers().replace(
            "                        v_start = 1'b1;\n                        next_pc = pc_q;\n                        state_d = SQ_V_WAIT;\n",
            "                        v_start = 1'b1;\n",
        )
    } else {
        exec_transfers()
    };
    m += "                    default: begin\n                        next_pc = pc_q;\n                        state_d = SQ_FAULT;\n                    end\n                endcase\n                pc_d = next_pc;\n            end\n";
    m += &multicycle_states();
    m += "        endcase\n";
    m += "        // Past Fetch the ROM reads the next word: going straight on, it is decoded next.\n";
    m += "        if (state_q != SQ_FETCH && state_q != SQ_BOOT) imem_addr = pc_q + 12'd1;\n";
    m += "        if (state_d == SQ_FETCH && state_q != SQ_FETCH && state_q != SQ_BOOT && pc_d == pc_q + 12'd1)\n            state_d = SQ_DECODE;\n";
    m += &write_back();
    if queue {
        m += "        // results land as operations finish; the vector unit's time is its own
        vres_we = v_done;
        // a vop's rd: it reads nothing the operation before it writes
        v_indep = |rd;
        if (phase == 2'd0 && v_busy) phase = 2'd1;
";
    }
    m += "    end\nendmodule\n";
    m
}

fn constants() -> String {
    let mut s = String::from("\n    /* verilator lint_off UNUSEDPARAM */\n");
    for (i, name) in STATES.iter().enumerate() {
        let _ = writeln!(s, "    localparam [3:0] SQ_{name} = 4'd{i};");
    }
    for op in Op::ALL {
        let _ = writeln!(
            s,
            "    localparam [7:0] OP_{} = 8'h{:02x};",
            op.mnemonic().to_uppercase(),
            op as u8
        );
    }
    s += "    /* verilator lint_on UNUSEDPARAM */\n";
    s
}

fn registers() -> String {
    let mut s = String::new();
    for (name, bits) in REGISTERS {
        let w = if *bits == 1 {
            String::new()
        } else {
            format!("[{}:0] ", bits - 1)
        };
        let _ = writeln!(s, "    reg {w}{name}_q = 0;\n    reg {w}{name}_d;");
    }
    s += "    always @(posedge clock) begin\n";
    for (name, _) in REGISTERS {
        let _ = writeln!(s, "        {name}_q <= {name}_d;");
    }
    s += "    end\n";
    s
}

/// Decode (the instruction register, loaded in Decode), the register file, the
/// scratchpad banks, the multiplier (its operands registered with `registered_product`).
fn decode(registered_product: bool) -> String {
    let mut s = String::from(
        "
    // ---- decode
    wire [63:0] inst = ir_q;
    wire [7:0] op = inst[63:56];
    wire [3:0] rd = inst[55:52];
    wire [31:0] imm = inst[31:0];
    wire [63:0] simm = {{32{imm[31]}}, imm};
    wire [63:0] va, vb, vc;
    reg wen;
    reg [63:0] wval;
    etch_regfile_3r1w #(.W(64)) u_regs (.clk(clock), .ra(inst[51:48]), .rb(inst[47:44]),
        .rc(inst[43:40]), .da(va), .db(vb), .dc(vc), .we(wen & |rd), .wa(rd), .wd(wval));
    // scratchpad word address for ld/st: ra + imm (32-bit words)
    wire [9:0] waddr = 10'(va + simm);
    // the word pair of a DMA beat: ra / 2 + beat (ra + 2 * beat in words)
    wire [8:0] dma_pair = va[9:1] + 9'(beat_q);
    wire dma_last = dma_err | ((18'(beat_q) << 1) + 18'd2 >= 18'(words_q));
    reg [8:0] spad_even_raddr, spad_odd_raddr, spad_even_waddr, spad_odd_waddr;
    reg spad_even_we, spad_odd_we;
    reg [31:0] spad_even_wdata, spad_odd_wdata;
    wire [31:0] spad_even_rdata, spad_odd_rdata;
    etch_ram_1r1w #(.W(32), .A(9), .D(512)) spad_even (.clk(clock), .raddr(spad_even_raddr),
        .rdata(spad_even_rdata), .we(spad_even_we), .waddr(spad_even_waddr),
        .wdata(spad_even_wdata));
    etch_ram_1r1w #(.W(32), .A(9), .D(512)) spad_odd (.clk(clock), .raddr(spad_odd_raddr),
        .rdata(spad_odd_rdata), .we(spad_odd_we), .waddr(spad_odd_waddr),
        .wdata(spad_odd_wdata));
    wire [63:0] spad_pair = {spad_odd_rdata, spad_even_rdata};
    wire [63:0] ldval = waddr[0] ? 64'(spad_odd_rdata) : 64'(spad_even_rdata);
",
    );
    s += if registered_product {
        "    // muli: registered operands, registered product
    reg [31:0] mul_a = 0, mul_b = 0;
    reg [63:0] mul_p = 0;
    always @(posedge clock) begin
        mul_a <= va[31:0];
        mul_b <= imm;
        mul_p <= 64'(mul_a) * 64'(mul_b);
    end
"
    } else {
        "    // muli: registered product
    reg [63:0] mul_p = 0;
    always @(posedge clock) mul_p <= 64'(va[31:0]) * 64'(imm);
"
    };
    s += "    reg [11:0] next_pc;\n";
    s
}

/// With the queue: which instructions go on beside the vector unit, and when Exec
/// holds one.
const QUEUE_DECODE: &str = "
    // ---- the vector-operation queue: arithmetic, branches, the scratchpad (the vector
    // unit never touches it) and vops run beside the vector unit; anything else waits
    // until it is idle
    wire beside = (op == OP_LD) | (op == OP_LDD) | (op == OP_ST) | (op == OP_STD)
        | (op == OP_NOP) | (op == OP_LI) | (op == OP_LIH) | (op == OP_ADD)
        | (op == OP_ADDI) | (op == OP_SUB) | (op == OP_AND) | (op == OP_OR) | (op == OP_XOR)
        | (op == OP_SHLI) | (op == OP_SHRI) | (op == OP_MULI) | (op == OP_ANDI)
        | (op == OP_BEQ) | (op == OP_BNE) | (op == OP_BLTU) | (op == OP_BGEU)
        | (op == OP_JMP) | (op == OP_CALL) | (op == OP_JR);
    wire v_stall = (op == OP_VOP) ? v_full : (~beside & v_busy);
";

/// Outputs when nothing happens.
fn defaults() -> String {
    "        imem_addr = pc_q;
        csr_addr = imm[9:0];
        csr_we = 1'b0;
        csr_wdata = va[31:0];
        dma_req = 1'b0;
        dma_we = 1'b0;
        dma_addr = vb + (64'(beat_q) << 3);
        dma_wdata = spad_pair;
        v_start = 1'b0;
        v_kind = inst[39:32];
        v_prow = imm[15:0];
        v_ra = va;
        v_rb = vb;
        v_rc = vc;
        vres_we = 1'b0;
        irq_raise = 1'b0;
        irq_vec = imm[3:0];
        idle = waiting_q;
        fault = 1'b0;
        spad_even_raddr = waddr[9:1];
        spad_odd_raddr = waddr[9:1];
        spad_even_we = 1'b0;
        spad_odd_we = 1'b0;
        spad_even_waddr = waddr[9:1];
        spad_odd_waddr = waddr[9:1];
        spad_even_wdata = vb[31:0];
        spad_odd_wdata = vb[31:0];
        wen = 1'b0;
        wval = 0;
        next_pc = pc_q + 1;
"
    .to_string()
}

/// Exec: register arithmetic, one cycle (`muli` waits for its product).
fn exec_alu() -> String {
    "                    OP_NOP: ;
                    OP_LI: begin
                        wen = 1'b1;
                        wval = simm;
                    end
                    OP_LIH: begin
                        wen = 1'b1;
                        wval = {imm, va[31:0]};
                    end
                    OP_ADD: begin
                        wen = 1'b1;
                        wval = va + vb;
                    end
                    OP_ADDI: begin
                        wen = 1'b1;
                        wval = va + simm;
                    end
                    OP_SUB: begin
                        wen = 1'b1;
                        wval = va - vb;
                    end
                    OP_AND: begin
                        wen = 1'b1;
                        wval = va & vb;
                    end
                    OP_OR: begin
                        wen = 1'b1;
                        wval = va | vb;
                    end
                    OP_XOR: begin
                        wen = 1'b1;
                        wval = va ^ vb;
                    end
                    OP_SHLI: begin
                        wen = 1'b1;
                        wval = va << imm[5:0];
                    end
                    OP_SHRI: begin
                        wen = 1'b1;
                        wval = va >> imm[5:0];
                    end
                    OP_MULI: begin
                        next_pc = pc_q;
                        state_d = SQ_MUL_W;
                    end
                    OP_ANDI: begin
                        wen = 1'b1;
                        wval = va & 64'(imm);
                    end
"
    .to_string()
}

/// Exec: branches, jumps, calls.
fn exec_control() -> String {
    "                    OP_BEQ: if (va == vb) next_pc = imm[11:0];
                    OP_BNE: if (va != vb) next_pc = imm[11:0];
                    OP_BLTU: if (va < vb) next_pc = imm[11:0];
                    OP_BGEU: if (va >= vb) next_pc = imm[11:0];
                    OP_JMP: next_pc = imm[11:0];
                    OP_CALL: begin
                        wen = 1'b1;
                        wval = {52'd0, pc_q} + 64'd1;
                        next_pc = imm[11:0];
                    end
                    OP_JR: next_pc = va[11:0];
"
    .to_string()
}

/// Exec: scratchpad loads and stores, CSRs, interrupts.
fn exec_memory() -> String {
    "                    OP_LD, OP_LDD: begin
                        next_pc = pc_q;
                        state_d = SQ_LOAD;
                    end
                    OP_ST: begin
                        spad_even_we = ~waddr[0];
                        spad_odd_we = waddr[0];
                    end
                    OP_STD: begin
                        spad_even_we = 1'b1;
                        spad_odd_we = 1'b1;
                        spad_odd_wdata = vb[63:32];
                    end
                    OP_CSRR, OP_WAITNE: begin
                        next_pc = pc_q;
                        state_d = SQ_CSR_RD;
                    end
                    OP_CSRW: csr_we = 1'b1;
                    OP_IRQ: irq_raise = 1'b1;
"
    .to_string()
}

/// Exec: DMA transfers and vector operations start here and finish in their states.
fn exec_transfers() -> String {
    "                    OP_DMARD: begin
                        beat_d = 0;
                        words_d = imm[15:0];
                        next_pc = pc_q;
                        state_d = SQ_DMA_RD;
                    end
                    OP_DMAWR: begin
                        beat_d = 0;
                        words_d = imm[15:0];
                        next_pc = pc_q;
                        state_d = SQ_DMA_WR_READ;
                    end
                    OP_VOP: begin
                        v_start = 1'b1;
                        next_pc = pc_q;
                        state_d = SQ_V_WAIT;
                    end
"
    .to_string()
}

/// The states after Exec: a load's data, a CSR's value (or `waitne`'s poll), the
/// product, DMA beats, the vector operation, a fault.
fn multicycle_states() -> String {
    "            SQ_LOAD: begin
                wen = 1'b1;
                wval = op == OP_LDD ? spad_pair : ldval;
                pc_d = pc_q + 1;
                state_d = SQ_FETCH;
            end
            SQ_CSR_RD: begin
                // csrr: the value; waitne: fetch this instruction again while equal.
                pc_d = pc_q + 1;
                state_d = SQ_FETCH;
                if (op == OP_CSRR) begin
                    wen = 1'b1;
                    wval = 64'(csr_rdata);
                end else begin
                    // Idle while the doorbell shows nothing new; busy again once it does.
                    waiting_d = 1'b0;
                    if (csr_rdata == va[31:0]) begin
                        waiting_d = 1'b1;
                        pc_d = pc_q;
                    end
                end
            end
            SQ_MUL_P: state_d = SQ_MUL_W;
            SQ_MUL_W: begin
                wen = 1'b1;
                wval = mul_p;
                pc_d = pc_q + 1;
                state_d = SQ_FETCH;
            end
            SQ_DMA_RD: begin
                // Beat k of words / 2 from host address rb + 8k into spad word ra + 2k.
                dma_req = 1'b1;
                spad_even_waddr = dma_pair;
                spad_odd_waddr = dma_pair;
                spad_even_wdata = dma_rdata[31:0];
                spad_odd_wdata = dma_rdata[63:32];
                if (dma_ack) begin
                    spad_even_we = ~dma_err;
                    spad_odd_we = ~dma_err;
                    beat_d = beat_q + 1;
                    if (dma_last) begin
                        wen = 1'b1;
                        wval = 64'(dma_err);
                        pc_d = pc_q + 1;
                        state_d = SQ_FETCH;
                    end
                end
            end
            SQ_DMA_WR_READ: begin
                spad_even_raddr = dma_pair;
                spad_odd_raddr = dma_pair;
                state_d = SQ_DMA_WR;
            end
            SQ_DMA_WR: begin
                dma_req = 1'b1;
                dma_we = 1'b1;
                spad_even_raddr = dma_pair;
                spad_odd_raddr = dma_pair;
                if (dma_ack) begin
                    beat_d = beat_q + 1;
                    state_d = SQ_DMA_WR_READ;
                    if (dma_last) begin
                        wen = 1'b1;
                        wval = 64'(dma_err);
                        pc_d = pc_q + 1;
                        state_d = SQ_FETCH;
                    end
                end
            end
            SQ_V_WAIT: begin
                if (v_done) begin
                    vres_we = 1'b1;
                    pc_d = pc_q + 1;
                    state_d = SQ_FETCH;
                end
            end
            SQ_FAULT: fault = 1'b1;
            default: ;
"
    .to_string()
}

/// The phase for the performance counters, reset. (Write-back is the register file's
/// port: `wen` and `wval` for register `rd`, never `r0`.)
fn write_back() -> String {
    "        case (state_q)
            SQ_V_WAIT: phase = 2'd1;
            SQ_DMA_RD, SQ_DMA_WR_READ, SQ_DMA_WR: phase = 2'd2;
            default: phase = 2'd0;
        endcase
        if (waiting_q) phase = 2'd3;
        if (reset) begin
            state_d = SQ_BOOT;
            pc_d = 0;
            waiting_d = 1'b0;
        end
"
    .to_string()
}
