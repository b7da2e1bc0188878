//! The primitives' simulation models against the golden model's arithmetic.

use etch_compiler::numerics::requant;
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
    sim.add_clock(5, |x: &mut Box<Requant>| x.clock.next = !x.clock.val());
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
    sim.add_testbench(move |mut sim: Sim<Requant>| {
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
    let mut uut = Requant::default();
    uut.connect_all();
    sim.run(Box::new(uut), 10_000).unwrap();
}

#[test]
fn emits_lintable_verilog() {
    let mut r: Requant = Requant::default();
    r.connect_all();
    let v = etch_hdl::emit::block_verilog(&r, "etch_requant");
    let dir = std::env::temp_dir().join("etch_prim_lint");
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("etch_requant.v");
    std::fs::write(&f, &v).unwrap();
    let out = std::process::Command::new("verilator")
        .args(["--lint-only", "-Wall"])
        .arg(&f)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{v}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn lane_verilog_lints() {
    let mut l = etch_hdl::lane::Lane::default();
    l.connect_all();
    let v = etch_hdl::emit::block_verilog(&l, "etch_lane");
    let dir = std::env::temp_dir().join("etch_lane_lint");
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("etch_lane.v");
    std::fs::write(&f, format!("{}{v}", etch_hdl::emit::RUST_HDL_WAIVERS)).unwrap();
    let out = std::process::Command::new("verilator")
        .args(["--lint-only", "-Wall", "-Wno-DECLFILENAME"])
        .arg(&f)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
