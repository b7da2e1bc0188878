//! Board tops: the chip on a bring-up board, reached over a serial line.
//!
//! `etch_board` holds the chip, a power-on reset (the chip's reset registered, and
//! on an ECP5 carried by a global buffer) and the [`crate::bridge::Bridge`]
//! that carries MMIO, DMA and interrupts over a UART, plus two status LEDs (busy, and
//! one that toggles with every interrupt). Its ports are the same on every board —
//! `clk`, `uart_rx`, `uart_tx`, `led[1:0]` — and each board's constraint file (LPF for
//! ECP5, PCF for iCE40) puts them on that board's pins. Two parameters: `DIVISOR`,
//! clock cycles per UART bit, and `LED_ACTIVE_LOW`. The boards, their pins and clocks
//! and the FPGA-specific top around `etch_board` (a PLL, a clock gate) belong to the
//! FPGA flow (crate `etch-fpga`).

use std::fmt::Write;

/// The bridge's Verilog (module `etch_bridge` and its UARTs).
pub fn bridge_verilog() -> String {
    let mut bridge = crate::bridge::Bridge::default();
    rust_hdl::prelude::Block::connect_all(&mut bridge);
    crate::emit::block_verilog(&bridge, "etch_bridge")
}

/// `etch_board`: chip, power-on reset, UART bridge, LEDs.
pub fn board_verilog(header: &str) -> String {
    let mut v = String::new();
    let _ = writeln!(v, "{header}");
    v.push_str(
        "// etch_board: the chip behind a UART bridge (docs/FPGA.md), for bring-up boards.
module etch_board #(
    parameter [15:0] DIVISOR = 16'd25,  // clock cycles per UART bit
    parameter LED_ACTIVE_LOW = 0
) (
    input  wire       clk,
    input  wire       uart_rx,
    output wire       uart_tx,
    output wire [1:0] led
);
    // Power-on reset: 16 cycles, from flip-flops that start at zero.
    reg [4:0] por = 5'd0;
    always @(posedge clk) if (!por[4]) por <= por + 5'd1;
    wire por_rst = !por[4];

    wire        mmio_req, mmio_we, mmio_ack;
    wire [11:0] mmio_addr;
    wire [31:0] mmio_wdata, mmio_rdata;
    wire        dma_req, dma_we, dma_ack, dma_err;
    wire [63:0] dma_addr, dma_wdata, dma_rdata;
    wire [3:0]  irq;
    wire        idle, chip_reset;
    wire [15:0] divisor = DIVISOR;

    // The chip's reset, registered (a cycle after the power-on or the bridge's reset):
    // on an ECP5 (the FPGA flow defines ETCH_ECP5) it reaches the chip's thousand-odd
    // flip-flops over a global network (DCCA) instead of the fabric's wires.
    reg chip_rst_q = 1'b1;
    always @(posedge clk) chip_rst_q <= por_rst | chip_reset;
    wire chip_rst;
`ifdef ETCH_ECP5
    DCCA u_reset_buffer (.CLKI(chip_rst_q), .CE(1'b1), .CLKO(chip_rst));
`else
    assign chip_rst = chip_rst_q;
`endif

    etch_chip u_chip (
        .clk(clk), .rst(chip_rst),
        .mmio_req(mmio_req), .mmio_we(mmio_we), .mmio_addr(mmio_addr), .mmio_wdata(mmio_wdata),
        .mmio_rdata(mmio_rdata), .mmio_ack(mmio_ack),
        .dma_req(dma_req), .dma_we(dma_we), .dma_addr(dma_addr), .dma_wdata(dma_wdata),
        .dma_ack(dma_ack), .dma_err(dma_err), .dma_rdata(dma_rdata),
        .irq(irq), .idle(idle)
    );

    etch_bridge u_bridge (
        .clock(clk), .reset(por_rst), .divisor(divisor), .rx(uart_rx), .tx(uart_tx),
        .mmio_req(mmio_req), .mmio_we(mmio_we), .mmio_addr(mmio_addr), .mmio_wdata(mmio_wdata),
        .mmio_rdata(mmio_rdata), .mmio_ack(mmio_ack),
        .dma_req(dma_req), .dma_we(dma_we), .dma_addr(dma_addr), .dma_wdata(dma_wdata),
        .dma_ack(dma_ack), .dma_err(dma_err), .dma_rdata(dma_rdata),
        .irq(irq), .chip_reset(chip_reset)
    );

    // LEDs: the chip is working; an interrupt fired (toggles).
    reg irq_toggle = 1'b0;
    always @(posedge clk) if (|irq) irq_toggle <= !irq_toggle;
    wire [1:0] led_on = {irq_toggle, !idle};
    assign led = LED_ACTIVE_LOW ? ~led_on : led_on;
endmodule
",
    );
    v
}
