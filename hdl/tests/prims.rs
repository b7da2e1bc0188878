//! The primitives' simulation models against the golden model's arithmetic.

mod common;

use etch_compiler::numerics::requant;
use etch_contract::Pipeline;
use etch_hdl::prim::{Mul, Requant};
use rust_hdl::prelude::*;

/// A clocked harness so the multiplier runs inside the simulator.
#[derive(LogicBlock)]
struct MulHarness {
    clock: Signal<In, Clock>,
    a: Signal<In, Bits<18>>,
    b: Signal<In, Bits<18>>,
    p: Signal<Out, Bits<48>>,
    mul: Mul<18, 18, 48>,
}

impl Logic for MulHarness {
    #[hdl_gen]
    fn update(&mut self) {
        self.mul.a.next = self.a.val();
        self.mul.b.next = self.b.val();
        self.p.next = self.mul.p.val();
    }
}

#[test]
fn multiplier_model_matches_integer_multiplication() {
    let cases = [
        (-5i64, 7i64),
        (131071, 131071),
        (-131072, 3),
        (0, 9),
        (-1, 0x3FFFF),
    ];
    let mut sim = Simulation::new();
    sim.add_clock(5, |x: &mut Box<MulHarness>| x.clock.next = !x.clock.val());
    sim.add_testbench(move |mut sim: Sim<MulHarness>| {
        let mut x = sim.init()?;
        for &(a, b) in &cases {
            wait_clock_true!(sim, clock, x);
            x.a.next = ((a as u64) & 0x3FFFF).into();
            x.b.next = ((b as u64) & 0x3FFFF).into();
            wait_clock_false!(sim, clock, x);
            let p = x.p.val().to_u64() as i64;
            let p = (p << 16) >> 16; // sign-extend 48 bits
            sim_assert_eq!(sim, p, a * (b & 0x3FFFF), x);
        }
        sim.done(x)
    });
    let mut uut = MulHarness {
        clock: Default::default(),
        a: Default::default(),
        b: Default::default(),
        p: Default::default(),
        mul: Mul::new(true, false),
    };
    uut.connect_all();
    sim.run(Box::new(uut), 10_000).unwrap();
}

#[test]
fn requant_model_matches_golden_requant_after_two_cycles() {
    let mut sim = Simulation::new();
    sim.add_clock(5, |x: &mut Box<Requant<48>>| x.clock.next = !x.clock.val());
    let cases: Vec<(i64, i64, u32)> = vec![
        (1000, 3, 4),
        (-5, 1, 1),
        (1 << 40, 65535, 20),
        (-(1 << 45), 60000, 30),
        (123456789, -40000, 12),
        (7, 1, 0),
        (-32769, 1, 0),
    ];
    let expect: Vec<i16> = cases.iter().map(|&(x, m, s)| requant(x, m, s)).collect();
    sim.add_testbench(move |mut sim: Sim<Requant<48>>| {
        let mut x = sim.init()?;
        for (k, &(v, m, s)) in cases.iter().enumerate() {
            wait_clock_true!(sim, clock, x);
            x.x.next = ((v as u64) & ((1 << 48) - 1)).into();
            x.m.next = ((m as u64) & 0x1FFFF).into();
            x.s.next = (s as u64).into();
            wait_clock_false!(sim, clock, x);
            if k >= 2 {
                sim_assert_eq!(sim, x.y.val().to_u64() as u16 as i16, expect[k - 2], x);
            }
        }
        sim.done(x)
    });
    let mut uut = Requant::<48>::default();
    uut.connect_all();
    sim.run(Box::new(uut), 10_000).unwrap();
}

#[test]
fn emits_lintable_verilog() {
    let mut r: Requant<48> = Requant::<48>::default();
    r.connect_all();
    let v = etch_hdl::emit::block_verilog(&r, "etch_requant");
    let dir = std::env::temp_dir().join("etch_prim_lint");
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("etch_requant.v");
    std::fs::write(&f, &v).unwrap();
    let out = common::verilator_lint(&[&f], None);
    assert!(
        out.status.success(),
        "{}\n{v}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn lane_verilog_lints_with_every_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    for (name, pipe) in [("asic", Pipeline::ASIC), ("fpga", Pipeline::FPGA)] {
        // (tag bits, columns, columns in logic, their weight bits, head pairs)
        for (kw, columns, lut, bits, pairs) in [
            (1, 1, 0, 8, false),
            (3, 1, 0, 8, false),
            (1, 4, 2, 4, false),
            (1, 2, 1, 8, false),
            (1, 8, 0, 4, true),
        ] {
            let v = format!(
                "{}\n{}",
                etch_hdl::lane::verilog(&pipe, columns, lut, bits, pairs),
                etch_hdl::lane::requantizer_verilog(&pipe, kw)
            );
            let f = dir
                .path()
                .join(format!("etch_lane_{name}_{kw}_c{columns}_l{lut}_{pairs}.v"));
            std::fs::write(&f, &v).unwrap();
            for top in ["etch_lane", "etch_requant_bank"] {
                let out = common::verilator_lint(&[&f], Some(top));
                assert!(
                    out.status.success(),
                    "{name} {top}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }
}

/// Test vectors for the requantizer: `(x, m, s, golden requant)`, random magnitudes
/// of every size plus, for every shift, the values at and beside both saturation
/// edges and the rounding ties — only where the golden model's `i64` is defined.
fn requant_vectors() -> Vec<(i64, i64, u32, i16)> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut cases: Vec<(i64, i64, u32)> = Vec::new();
    for s in 0..64u32 {
        for m in [1i64, -1, 3, 65535, -65536] {
            for edge in [32767i64, -32768, 32768, -32769] {
                let centre = (edge << s.min(40)) / m.max(1);
                for d in -2..=2 {
                    cases.push((centre + d, m, s));
                }
            }
            // Ties: v = (2k + 1) · 2^(s-1).
            if s > 0 && s < 40 {
                cases.push((3i64 << (s - 1), m, s));
                cases.push((-(3i64 << (s - 1)), m, s));
            }
        }
    }
    for _ in 0..20_000 {
        let xb = next() % 48 + 1;
        let x = ((next() as i64) << (64 - xb)) >> (64 - xb);
        let mb = next() % 17 + 1;
        let m = ((next() as i64) << (64 - mb)) >> (64 - mb);
        cases.push((x, m, (next() % 64) as u32));
    }
    cases.push((-(1 << 47), -(1 << 16), 62));
    cases.push(((1 << 47) - 1, -(1 << 16), 63));
    cases
        .into_iter()
        .filter(|&(x, m, s)| {
            let x_ok = (-(1i64 << 47)..(1i64 << 47)).contains(&x);
            let m_ok = (-(1i64 << 16)..(1i64 << 16)).contains(&m);
            let defined = x
                .checked_mul(m)
                .and_then(|v| {
                    if s == 0 {
                        Some(v)
                    } else {
                        v.checked_add(1 << (s - 1))
                    }
                })
                .is_some();
            x_ok && m_ok && defined
        })
        .map(|(x, m, s)| (x, m, s, requant(x, m, s)))
        .collect()
}

/// The requantizer's Verilog (not only its model) run by Verilator on every vector:
/// the same 16 bits as the golden model's `requant`, two cycles later.
#[test]
fn requant_verilog_matches_golden_requant_on_edges_and_random_values() {
    let vectors = requant_vectors();
    assert!(vectors.len() > 20_000, "{}", vectors.len());
    // The model too, including the vectors past the golden model's i64.
    for &(x, m, s, want) in &vectors {
        let got = etch_hdl::prim::round_shift_sat16(x as i128 * m as i128, s);
        assert_eq!(got, want, "model: x {x} m {m} s {s}");
    }
    let mut r: Requant<48> = Requant::<48>::default();
    r.connect_all();
    let v = etch_hdl::emit::block_verilog(&r, "etch_requant");
    let dut = "etch_requant dut (.clock(clock), .x(x), .m(m), .s(s), .y(y));";
    run_requant_tb(&v, dut, 2, &vectors);
}

/// The 16-bit requantizer of the sigmoid units: the vectors whose value is an int16,
/// the same results as the golden model's.
#[test]
fn narrow_requant_verilog_matches_golden_requant() {
    let vectors: Vec<_> = requant_vectors()
        .into_iter()
        .filter(|&(x, _, _, _)| i16::try_from(x).is_ok())
        .collect();
    assert!(vectors.len() > 1_000, "{}", vectors.len());
    let mut r: Requant<16> = Requant::<16>::default();
    r.connect_all();
    let v = etch_hdl::emit::block_verilog(&r, "etch_requant");
    let dut = "etch_requant dut (.clock(clock), .x(x[15:0]), .m(m), .s(s), .y(y));
  wire unused_x = ^x[47:16];";
    run_requant_tb(&v, dut, 2, &vectors);
}

/// The lanes' shared requantizer, with and without its pipeline registers: the same
/// results, `2 + requant_input + requant_shift` cycles later, with the requesting
/// block's tag and the valid bit beside them.
#[test]
fn shared_requantizer_matches_golden_requant_with_every_pipeline() {
    let vectors = requant_vectors();
    for pipe in [Pipeline::ASIC, Pipeline::FPGA] {
        let v = etch_hdl::lane::requantizer_verilog(&pipe, 3);
        let dut = "wire y_v; wire [2:0] y_k;
  etch_requant_bank dut (.clock(clock), .reset(1'b0), .v(1'b1), .k(k), .x(x), .m(m), .s(s), .y_v(y_v), .y_k(y_k), .y(y_out));
  assign y = (y_v && y_k == 3'(i - LAT)) ? y_out : 16'hxxxx;
  wire [15:0] y_out;";
        let latency = 2 + pipe.requant_input as usize + pipe.requant_shift as usize;
        run_requant_tb(&v, dut, latency, &vectors);
    }
}

/// Runs `vectors` through `dut` (Verilog `module`s in `v`) in Verilator, one per
/// cycle, and checks `y` `latency` cycles later.
fn run_requant_tb(v: &str, dut: &str, latency: usize, vectors: &[(i64, i64, u32, i16)]) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("dut.v"), v).unwrap();
    let mut hex = String::new();
    for &(x, m, s, y) in vectors {
        let word: u128 = ((x as u128 & ((1 << 48) - 1)) << 39)
            | ((m as u128 & 0x1FFFF) << 22)
            | ((s as u128) << 16)
            | (y as u16 as u128);
        hex.push_str(&format!("{word:022x}\n"));
    }
    std::fs::write(dir.path().join("vectors.hex"), hex).unwrap();
    let n = vectors.len();
    let tb = format!(
        "module tb;
  localparam LAT = {latency};
  reg clock = 0;
  always #5 clock = ~clock;
  reg [47:0] x = 0; reg [16:0] m = 0; reg [5:0] s = 0; reg [2:0] k = 0;
  integer i, bad;
  wire [15:0] y;
  {dut}
  reg [86:0] vec [0:{last}];
  initial begin
    $readmemh(\"vectors.hex\", vec);
    bad = 0;
    for (i = 0; i < {n} + LAT; i = i + 1) begin
      @(negedge clock);
      if (i >= LAT && y !== vec[i - LAT][15:0]) begin
        bad = bad + 1;
        if (bad < 10) $display(\"MISMATCH x=%h m=%h s=%0d y=%h want %h\", vec[i-LAT][86:39], vec[i-LAT][38:22], vec[i-LAT][21:16], y, vec[i-LAT][15:0]);
      end
      if (i < {n}) begin
        x = vec[i][86:39]; m = vec[i][38:22]; s = vec[i][21:16]; k = 3'(i);
      end
    end
    $display(\"CHECKED %0d MISMATCHES %0d\", {n}, bad);
    $finish;
  end
endmodule
",
        last = n - 1
    );
    std::fs::write(dir.path().join("tb.v"), tb).unwrap();
    let build = std::process::Command::new("verilator")
        .current_dir(dir.path())
        .args([
            "--binary",
            "-Wno-fatal",
            "--top-module",
            "tb",
            "tb.v",
            "dut.v",
        ])
        .output()
        .unwrap();
    assert!(
        build.status.success(),
        "{}",
        String::from_utf8_lossy(&build.stderr)
    );
    let run = std::process::Command::new(dir.path().join("obj_dir/Vtb"))
        .current_dir(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&run.stdout);
    assert!(
        text.contains(&format!("CHECKED {n} MISMATCHES 0")),
        "{text}"
    );
}
