// etch board harness: the board top (`etch_board`: chip, power-on reset, UART bridge)
// in Verilator, with what sits across the board's serial pins — a USB-serial adapter
// that turns host bytes into bit times on uart_rx and bit times on uart_tx back into
// bytes. It never computes a model value and never touches the chip's ports: every
// MMIO, DMA beat and interrupt crosses the simulated wire. Built by etch-sim into a
// shared library per design (cached by design hash) and driven through the C ABI below.

#include <cstdint>
#include <cstring>
#include <deque>
#include <string>

#include "Vetch_board.h"
#include "verilated.h"

namespace {

struct Board {
    VerilatedContext* ctx = nullptr;
    Vetch_board* top = nullptr;
    uint64_t cycles = 0;
    uint32_t divisor = 8;
    // Host → board: bytes waiting, and the one on the wire (start, 8 data, stop).
    std::deque<uint8_t> in;
    int rx_bit = -1;
    uint32_t rx_frame = 0;
    uint32_t rx_count = 0;
    // Board → host: the byte being sampled.
    int tx_bit = -1;
    uint32_t tx_count = 0;
    uint32_t tx_byte = 0;
    // Cycles without traffic while the chip is not busy.
    uint64_t quiet_run = 0;
};

void tick(Board* b, uint8_t* out, size_t cap, size_t* got) {
    Vetch_board* t = b->top;
    // The adapter drives uart_rx: idle high, then each queued byte at `divisor`
    // cycles per bit.
    if (b->rx_bit < 0 && !b->in.empty()) {
        b->rx_frame = (1u << 9) | (uint32_t(b->in.front()) << 1);
        b->in.pop_front();
        b->rx_bit = 0;
        b->rx_count = b->divisor;
    }
    t->uart_rx = b->rx_bit < 0 ? 1 : (b->rx_frame >> b->rx_bit) & 1;
    t->clk = 0;
    t->eval();
    t->clk = 1;
    t->eval();
    b->cycles++;
    if (b->rx_bit >= 0 && --b->rx_count == 0) {
        b->rx_count = b->divisor;
        if (++b->rx_bit == 10) b->rx_bit = -1;
    }
    // The adapter samples uart_tx in the middle of every bit.
    bool line = t->uart_tx;
    if (b->tx_bit < 0) {
        if (!line && b->cycles > 32) {
            b->tx_bit = 0;
            b->tx_byte = 0;
            b->tx_count = b->divisor + b->divisor / 2;
        }
    } else if (--b->tx_count == 0) {
        b->tx_count = b->divisor;
        if (b->tx_bit < 8) {
            b->tx_byte |= uint32_t(line) << b->tx_bit;
            b->tx_bit++;
        } else {
            // Stop bit: a byte without one is a framing error and is dropped, as a
            // real adapter would.
            if (line && *got < cap) out[(*got)++] = uint8_t(b->tx_byte);
            b->tx_bit = -1;
        }
    }
    bool busy = (t->led & 1) != 0;
    bool traffic = b->rx_bit >= 0 || b->tx_bit >= 0 || !b->in.empty() || !line;
    b->quiet_run = (busy || traffic) ? 0 : b->quiet_run + 1;
}

}  // namespace

extern "C" {

void* etch_board_new(const char* out_dir, uint32_t divisor) {
    Board* b = new Board();
    b->divisor = divisor < 4 ? 4 : divisor;
    b->ctx = new VerilatedContext();
    std::string arg = std::string("+etch_out=") + out_dir;
    const char* argv[] = {"etch-board", arg.c_str()};
    b->ctx->commandArgs(2, argv);
    b->top = new Vetch_board(b->ctx);
    b->top->uart_rx = 1;
    return b;
}

void etch_board_free(void* h) {
    Board* b = static_cast<Board*>(h);
    b->top->final();
    delete b->top;
    delete b->ctx;
    delete b;
}

// Queues bytes from the host for uart_rx.
void etch_board_push(void* h, const uint8_t* data, size_t n) {
    Board* b = static_cast<Board*>(h);
    b->in.insert(b->in.end(), data, data + n);
}

// Runs up to `cycles` clock cycles, stopping early when `cap` bytes from uart_tx have
// been collected into `out`. Returns the number of bytes collected.
size_t etch_board_run(void* h, uint64_t cycles, uint8_t* out, size_t cap) {
    Board* b = static_cast<Board*>(h);
    size_t got = 0;
    for (uint64_t i = 0; i < cycles && got < cap; i++) tick(b, out, cap, &got);
    return got;
}

// 1 when nothing is on either wire, nothing is queued, and the chip has not been busy
// for a whole frame's time: the simulation may sleep until the host sends.
int etch_board_quiet(void* h) {
    Board* b = static_cast<Board*>(h);
    return b->quiet_run > uint64_t(b->divisor) * 12 * 20 ? 1 : 0;
}

uint64_t etch_board_cycles(void* h) { return static_cast<Board*>(h)->cycles; }

}  // extern "C"
