//! Each special-function unit in rust-hdl simulation against the golden model's
//! definition (`numerics::Tables`), over sweeps that cover every table entry region,
//! and its Verilog linted by Verilator.

mod common;

use etch_compiler::numerics::{requant, Tables};
use etch_hdl::sfu::{Exp2Unit, RecipUnit, RsqrtUnit, SigmoidUnit, SinCosUnit, TableData};
use rust_hdl::prelude::*;

fn table_data() -> TableData {
    let t = Tables::generate();
    TableData {
        rsqrt: t.rsqrt,
        recip: t.recip,
        exp2: t.exp2,
        sigmoid: t.sigmoid,
        sine: t.sine,
        log2: t.log2,
    }
}

/// Feeds one input per cycle and collects one output per cycle after `latency`.
macro_rules! stream {
    ($uut:expr, $ty:ty, $inputs:expr, $latency:expr, |$x:ident, $v:ident| $drive:block, |$y:ident| $read:expr) => {{
        let inputs = $inputs;
        let n = inputs.len();
        let out = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let out2 = out.clone();
        let mut sim = Simulation::new();
        sim.add_clock(5, |x: &mut Box<$ty>| x.clock.next = !x.clock.val());
        sim.add_testbench(move |mut sim: Sim<$ty>| {
            let mut $x = sim.init()?;
            for k in 0..n + $latency {
                if let Some(&$v) = inputs.get(k) $drive
                wait_clock_true!(sim, clock, $x);
                wait_clock_false!(sim, clock, $x);
                if k + 1 >= $latency {
                    let $y = &$x;
                    out2.lock().unwrap().push($read);
                }
            }
            sim.done($x)
        });
        let mut uut = $uut;
        uut.connect_all();
        sim.run(Box::new(uut), 10_000_000).unwrap();
        let v = out.lock().unwrap().clone();
        v[..n].to_vec()
    }};
}

#[test]
fn exp2_matches_golden() {
    let t = Tables::generate();
    let zs: Vec<i64> = (0..2978)
        .map(|k| -(k * 11) as i64)
        .chain([-32768, -16384, -15359, 0])
        .collect();
    let got = stream!(
        Exp2Unit::new(&table_data()),
        Exp2Unit,
        zs.clone(),
        2,
        |x, z| {
            x.z.next = ((z as i16 as u16) as u64).into();
        },
        |y| y.p.val().to_u64()
    );
    for (z, p) in zs.iter().zip(got) {
        assert_eq!(p, t.exp2(*z) as u64, "z = {z}");
    }
}

#[test]
fn rsqrt_matches_golden() {
    let t = Tables::generate();
    let mut ss: Vec<u64> = vec![
        0,
        1,
        2,
        3,
        4,
        511,
        512,
        513,
        1023,
        1024,
        65535,
        1 << 46,
        (1 << 47) + 12345,
    ];
    let mut v = 7u64;
    for _ in 0..2000 {
        v = v
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ss.push((v >> 16) >> (v % 40));
    }
    let got = stream!(
        RsqrtUnit::new(&table_data()),
        RsqrtUnit,
        ss.clone(),
        2,
        |x, s| {
            x.s.next = s.into();
        },
        |y| (y.r.val().to_u64() as u16, y.shift.val().to_u64() as u32)
    );
    for (s, rs) in ss.iter().zip(got) {
        assert_eq!(rs, t.rsqrt(*s), "s = {s}");
    }
}

#[test]
fn recip_and_log2_match_golden() {
    let t = Tables::generate();
    let mut ps: Vec<u64> = vec![0, 1, 2, 1023, 1024, 1025, 2047, 32768, 0xFFFF_FFFF];
    let mut v = 3u64;
    for _ in 0..2000 {
        v = v
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ps.push((v >> 32) >> (v % 31));
    }
    let got = stream!(
        RecipUnit::recip(&table_data()),
        RecipUnit,
        ps.clone(),
        2,
        |x, p| {
            x.p.next = p.into();
        },
        |y| (y.r.val().to_u64() as u16, y.shift.val().to_u64() as u32)
    );
    for (p, rs) in ps.iter().zip(got) {
        assert_eq!(rs, t.recip(*p), "p = {p}");
    }
    let got = stream!(
        RecipUnit::log2(&table_data()),
        RecipUnit,
        ps.clone(),
        2,
        |x, p| {
            x.p.next = p.into();
        },
        |y| y.log2.val().to_u64() as i64
    );
    for (p, l) in ps.iter().zip(got) {
        assert_eq!(l, t.log2(*p), "p = {p}");
    }
}

#[test]
fn sigmoid_matches_golden() {
    let t = Tables::generate();
    // (h, multiplier, shift): shifts right (F_h1 > 7) and left (F_h1 < 7).
    let mut cases = Vec::new();
    for h in (-32768i64..32768).step_by(97) {
        cases.push((h, 1i64, 4u32));
        cases.push((h, 4, 0));
    }
    let got = stream!(
        SigmoidUnit::new(&table_data()),
        SigmoidUnit,
        cases.clone(),
        3,
        |x, c| {
            x.h.next = ((c.0 as i16 as u16) as u64).into();
            x.m.next = (c.1 as u64).into();
            x.s.next = (c.2 as u64).into();
        },
        |y| (
            y.sigma.val().to_u64() as u16,
            y.h_out.val().to_u64() as u16 as i16
        )
    );
    for (&(h, m, s), (sigma, h_out)) in cases.iter().zip(got) {
        assert_eq!(
            sigma,
            t.sigmoid(requant(h, m, s) as i64),
            "h {h} m {m} s {s}"
        );
        assert_eq!(h_out as i64, h);
    }
}

#[test]
fn sincos_matches_golden() {
    let t = Tables::generate();
    let phases: Vec<u32> = (0..4000u64)
        .map(|k| (k * 1_073_741 + k * k * 7) as u32)
        .chain([0, u32::MAX, 1 << 30, 3 << 30])
        .collect();
    let got = stream!(
        SinCosUnit::new(&table_data()),
        SinCosUnit,
        phases.clone(),
        2,
        |x, p| {
            x.phase.next = (p as u64).into();
        },
        |y| (
            y.sin.val().to_u64() as u16 as i16,
            y.cos.val().to_u64() as u16 as i16
        )
    );
    for (p, sc) in phases.iter().zip(got) {
        assert_eq!(sc, t.sincos(*p), "phase {p}");
    }
}

#[test]
fn units_lint_clean_apart_from_rust_hdl_widths() {
    let td = table_data();
    let dir = std::env::temp_dir().join("etch_sfu_lint");
    std::fs::create_dir_all(&dir).unwrap();
    let prims = dir.join("etch_prims.v");
    std::fs::write(&prims, etch_hdl::prim::PRIMITIVES_V).unwrap();
    let mut texts = Vec::new();
    let mut e = Exp2Unit::new(&td);
    e.connect_all();
    texts.push(("etch_exp2", etch_hdl::emit::block_verilog(&e, "etch_exp2")));
    let mut r = RsqrtUnit::new(&td);
    r.connect_all();
    texts.push((
        "etch_rsqrt",
        etch_hdl::emit::block_verilog(&r, "etch_rsqrt"),
    ));
    let mut s = SigmoidUnit::new(&td);
    s.connect_all();
    texts.push((
        "etch_sigmoid",
        etch_hdl::emit::block_verilog(&s, "etch_sigmoid"),
    ));
    let mut c = SinCosUnit::new(&td);
    c.connect_all();
    texts.push((
        "etch_sincos",
        etch_hdl::emit::block_verilog(&c, "etch_sincos"),
    ));
    for (name, v) in texts {
        let f = dir.join(format!("{name}.v"));
        std::fs::write(&f, format!("{}{v}", etch_hdl::emit::RUST_HDL_WAIVERS)).unwrap();
        let out = common::verilator_lint(&[&prims, &f], Some(name));
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn controller_lints_clean_and_head_apart_from_rust_hdl_widths() {
    let td = table_data();
    let dir = std::env::temp_dir().join("etch_vctrl_lint");
    std::fs::create_dir_all(&dir).unwrap();
    let prims = dir.join("etch_prims.v");
    std::fs::write(&prims, etch_hdl::prim::PRIMITIVES_V).unwrap();
    let mut h = etch_hdl::head::HeadUnit::new(&td, 64);
    h.connect_all();
    let waivers = etch_hdl::emit::RUST_HDL_WAIVERS;
    let (vctrl, units) = etch_hdl::vctrl::verilog(&td, 1, false, false);
    let units_file = dir.join("etch_vctrl_units.v");
    std::fs::write(&units_file, format!("{waivers}{units}")).unwrap();
    // The controller itself needs no waiver; its units and the head are rust-hdl's.
    for (name, text, extra) in [
        ("etch_vctrl", vctrl, Some(&units_file)),
        (
            "etch_head",
            format!(
                "{waivers}{}",
                etch_hdl::emit::block_verilog(&h, "etch_head")
            ),
            None,
        ),
    ] {
        let f = dir.join(format!("{name}.v"));
        std::fs::write(&f, text).unwrap();
        let mut files = vec![prims.clone()];
        files.extend(extra.iter().map(std::path::PathBuf::from));
        files.push(f.clone());
        let out = common::verilator_lint(&files, Some(name));
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
