// etch simulator harness: the PCIe endpoint around the Verilated chip.
//
// It models only what a PCIe endpoint sees: MMIO into BAR0, DMA into host memory
// (bounds-checked against the regions the host mapped), interrupt lines and the clock.
// It never computes a model value. Built by etch-sim into a shared library per design
// (cached by design hash) and driven through the C ABI below.

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "Vetch_chip.h"
#include "verilated.h"
// One waveform format per library (Verilator supports one per model), or none: FST
// when compiled with -DETCH_FST (and verilator --trace-fst), VCD with -DETCH_VCD (and
// --trace), otherwise none (a model without trace code compiles in a third of the time).
#if defined(ETCH_FST)
#include "verilated_fst_c.h"
typedef VerilatedFstC Waveform;
#define ETCH_WAVEFORM 1
#elif defined(ETCH_VCD)
#include "verilated_vcd_c.h"
typedef VerilatedVcdC Waveform;
#define ETCH_WAVEFORM 1
#else
struct Waveform;
#endif

namespace {

struct Region {
    uint64_t iova;
    uint8_t* ptr;
    uint64_t len;
};

struct Sim {
    VerilatedContext* ctx = nullptr;
    Vetch_chip* top = nullptr;
    Waveform* vcd = nullptr;
    uint64_t cycles = 0;
    std::vector<Region> regions;
    bool dma_busy = false;
    bool dma_acked = false;
    uint32_t dma_countdown = 0;
    uint32_t dma_latency = 0;
    uint32_t irq_pending = 0;
    uint64_t dma_errors = 0;
    uint32_t idle_run = 0;
};

uint8_t* lookup(Sim* s, uint64_t addr, uint64_t len) {
    if (addr % 8 != 0) return nullptr;
    for (const Region& r : s->regions) {
        if (addr >= r.iova && addr - r.iova <= r.len && len <= r.len - (addr - r.iova)) {
            return r.ptr + (addr - r.iova);
        }
    }
    return nullptr;
}

void dump(Sim* s) {
#ifdef ETCH_WAVEFORM
    if (s->vcd) s->vcd->dump(s->ctx->time());
#else
    (void)s;
#endif
}

// Services the DMA port after a rising edge; the chip samples dma_ack at the next one.
void service_dma(Sim* s) {
    Vetch_chip* t = s->top;
    if (s->dma_acked) {
        t->dma_ack = 0;
        t->dma_err = 0;
        s->dma_acked = false;
    }
    if (t->dma_req && !s->dma_busy) {
        s->dma_busy = true;
        s->dma_countdown = s->dma_latency;
    }
    if (!s->dma_busy) return;
    if (s->dma_countdown > 0) {
        s->dma_countdown--;
        return;
    }
    uint8_t* p = lookup(s, t->dma_addr, 8);
    if (p == nullptr) {
        t->dma_err = 1;
        t->dma_rdata = 0;
        s->dma_errors++;
    } else if (t->dma_we) {
        uint64_t v = t->dma_wdata;
        std::memcpy(p, &v, 8);
    } else {
        uint64_t v;
        std::memcpy(&v, p, 8);
        t->dma_rdata = v;
    }
    t->dma_ack = 1;
    s->dma_busy = false;
    s->dma_acked = true;
}

void tick(Sim* s) {
    Vetch_chip* t = s->top;
    t->clk = 0;
    t->eval();
    s->ctx->timeInc(1);
    dump(s);
    t->clk = 1;
    t->eval();
    s->ctx->timeInc(1);
    dump(s);
    s->cycles++;
    s->irq_pending |= t->irq;
    s->idle_run = t->idle ? s->idle_run + 1 : 0;
    service_dma(s);
}

}  // namespace

extern "C" {

void* etch_sim_new(const char* out_dir) {
    Sim* s = new Sim();
    s->ctx = new VerilatedContext();
    std::string arg = std::string("+etch_out=") + out_dir;
    const char* argv[] = {"etch-sim", arg.c_str()};
    s->ctx->commandArgs(2, argv);
#ifdef ETCH_WAVEFORM
    s->ctx->traceEverOn(true);
#endif
    s->top = new Vetch_chip(s->ctx);
    s->top->rst = 1;
    for (int i = 0; i < 4; i++) tick(s);
    s->top->rst = 0;
    return s;
}

void etch_sim_free(void* h) {
    Sim* s = static_cast<Sim*>(h);
#ifdef ETCH_WAVEFORM
    if (s->vcd) {
        s->vcd->close();
        delete s->vcd;
    }
#endif
    s->top->final();
    delete s->top;
    delete s->ctx;
    delete s;
}

void etch_sim_reset(void* h) {
    Sim* s = static_cast<Sim*>(h);
    s->top->rst = 1;
    s->top->dma_ack = 0;
    s->top->dma_err = 0;
    s->top->mmio_req = 0;
    s->dma_busy = false;
    s->dma_acked = false;
    for (int i = 0; i < 4; i++) tick(s);
    s->top->rst = 0;
    s->irq_pending = 0;
}

void etch_sim_set_dma_latency(void* h, uint32_t cycles) {
    static_cast<Sim*>(h)->dma_latency = cycles;
}

void etch_sim_map(void* h, uint64_t iova, uint8_t* ptr, uint64_t len) {
    static_cast<Sim*>(h)->regions.push_back(Region{iova, ptr, len});
}

void etch_sim_unmap(void* h, uint64_t iova) {
    Sim* s = static_cast<Sim*>(h);
    for (size_t i = 0; i < s->regions.size(); i++) {
        if (s->regions[i].iova == iova) {
            s->regions.erase(s->regions.begin() + i);
            return;
        }
    }
}

// One MMIO access: request for a cycle, answer in the next. Returns 0 on success.
int etch_sim_mmio(void* h, uint32_t addr, int write, uint32_t wdata, uint32_t* rdata) {
    Sim* s = static_cast<Sim*>(h);
    Vetch_chip* t = s->top;
    t->mmio_req = 1;
    t->mmio_we = write ? 1 : 0;
    t->mmio_addr = addr & 0xFFF;
    t->mmio_wdata = wdata;
    tick(s);
    t->mmio_req = 0;
    for (int i = 0; i < 4; i++) {
        if (t->mmio_ack) {
            if (rdata) *rdata = t->mmio_rdata;
            // A register write may have given the chip work (a doorbell): idleness is
            // counted again from here, so that a run stopping on idle lets it start.
            if (write) s->idle_run = 0;
            return 0;
        }
        tick(s);
    }
    return 1;
}

// Runs up to max_cycles. Returns 1 when an interrupt in irq_mask is pending (and
// clears those bits into *irqs), 2 when the chip has been idle for 16 cycles, 0 when
// the cycles ran out.
int etch_sim_run(void* h, uint64_t max_cycles, uint32_t irq_mask, int stop_on_idle,
                 uint32_t* irqs, uint64_t* ran) {
    Sim* s = static_cast<Sim*>(h);
    uint64_t start = s->cycles;
    int why = 0;
    while (s->cycles - start < max_cycles) {
        tick(s);
        if (s->irq_pending & irq_mask) {
            why = 1;
            break;
        }
        if (stop_on_idle && s->idle_run >= 16) {
            why = 2;
            break;
        }
    }
    if (irqs) *irqs = s->irq_pending & irq_mask;
    s->irq_pending &= ~irq_mask;
    if (ran) *ran = s->cycles - start;
    return why;
}

uint64_t etch_sim_cycles(void* h) { return static_cast<Sim*>(h)->cycles; }

uint64_t etch_sim_dma_errors(void* h) { return static_cast<Sim*>(h)->dma_errors; }

// 0: tracing; 1: the file did not open; 2: this library was built without waveforms.
int etch_sim_trace_open(void* h, const char* path) {
#ifdef ETCH_WAVEFORM
    Sim* s = static_cast<Sim*>(h);
    if (s->vcd) return 0;
    s->vcd = new Waveform();
    s->top->trace(s->vcd, 99);
    s->vcd->open(path);
    return s->vcd->isOpen() ? 0 : 1;
#else
    (void)h;
    (void)path;
    return 2;
#endif
}

void etch_sim_trace_close(void* h) {
#ifdef ETCH_WAVEFORM
    Sim* s = static_cast<Sim*>(h);
    if (s->vcd) {
        s->vcd->close();
        delete s->vcd;
        s->vcd = nullptr;
    }
#else
    (void)h;
#endif
}

}  // extern "C"
