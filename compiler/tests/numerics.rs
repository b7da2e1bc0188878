//! The chip's integer primitives and special-function tables: exact rounding rules,
//! error bounds and monotonicity, and table contents pinned by hash.

use etch_compiler::numerics::{
    requant, rope_phase, rope_phase_steps, round_shift, sat16, shift_signed, Tables,
};
use proptest::prelude::*;
use sha2::{Digest, Sha256};

fn tables() -> &'static Tables {
    static T: std::sync::OnceLock<Tables> = std::sync::OnceLock::new();
    T.get_or_init(Tables::generate)
}

#[test]
fn rounding_is_half_up_and_saturates() {
    assert_eq!(round_shift(5, 1), 3); //  2.5 →  3
    assert_eq!(round_shift(-5, 1), -2); // -2.5 → -2
    assert_eq!(round_shift(-7, 2), -2); // -1.75 → -2
    assert_eq!(round_shift(7, 0), 7);
    assert_eq!(shift_signed(3, -2), 12);
    assert_eq!(sat16(40_000), 32767);
    assert_eq!(sat16(-40_000), -32768);
    assert_eq!(requant(1000, 3, 4), 188); // 3000 / 16 = 187.5 → 188
    assert_eq!(requant(1 << 40, 1, 1), 32767);
}

#[test]
fn table_sizes_and_endpoints() {
    let t = tables();
    assert_eq!(t.rsqrt.len(), 1536);
    assert_eq!(t.recip.len(), 1024);
    assert_eq!(t.exp2.len(), 1024);
    assert_eq!(t.sigmoid.len(), 2048);
    assert_eq!(t.sine.len(), 2049);
    assert_eq!(t.exp2[0], 32768);
    assert_eq!(t.sine[0], 0);
    assert_eq!(t.sine[2048], 16384);
    assert_eq!(t.sigmoid[1024], 16384);
    assert_eq!(t.exp2(0), 32768);
    assert_eq!(t.exp2(-1024), 16384);
    assert_eq!(t.exp2(-16 * 1024), 0);
}

/// The tables are ROM contents: a different libm must not change them silently.
#[test]
fn table_contents_are_pinned() {
    let t = tables();
    let mut h = Sha256::new();
    for v in [&t.rsqrt, &t.recip, &t.exp2, &t.sigmoid] {
        for x in v.iter() {
            h.update(x.to_le_bytes());
        }
    }
    for x in &t.sine {
        h.update(x.to_le_bytes());
    }
    for x in &t.log2 {
        h.update(x.to_le_bytes());
    }
    for x in rope_phase_steps(8) {
        h.update(x.to_le_bytes());
    }
    let digest = hex::encode(h.finalize());
    assert_eq!(digest, PINNED, "special-function tables changed");
}

const PINNED: &str = "6323a9ddca2b706753c49ca792ec9f0b53dfd80a6d13493bc4666c5415beb335";

#[test]
fn rope_phase_matches_the_float_angle() {
    let steps = rope_phase_steps(8);
    for (k, &step) in steps.iter().enumerate() {
        let freq = 1.0 / 10000f64.powf((2 * k) as f64 / 8.0);
        for pos in [0usize, 1, 7, 100, 511, 4095] {
            let phase = rope_phase(step, pos) as f64 / 4294967296.0;
            let want = (pos as f64 * freq / std::f64::consts::TAU).fract();
            let err = (phase - want).abs().min(1.0 - (phase - want).abs());
            assert!(err < 1e-6, "k {k} pos {pos}: {phase} vs {want}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn rsqrt_is_within_6e_4_and_non_increasing(s in 1u64..(1u64 << 50), d in 0u64..1000) {
        let t = tables();
        let val = |s: u64| { let (r, sh) = t.rsqrt(s); r as f64 / 2f64.powi(sh as i32) };
        let rel = (val(s) * (s as f64).sqrt() - 1.0).abs();
        prop_assert!(rel < 6e-4, "s {} rel {}", s, rel);
        prop_assert!(val(s + d) <= val(s));
    }

    #[test]
    fn recip_is_within_6e_4_and_non_increasing(p in 1u64..(1u64 << 50), d in 0u64..1000) {
        let t = tables();
        let val = |p: u64| { let (r, sh) = t.recip(p); r as f64 / 2f64.powi(sh as i32) };
        let rel = (val(p) * p as f64 - 1.0).abs();
        prop_assert!(rel < 6e-4, "p {} rel {}", p, rel);
        prop_assert!(val(p + d) <= val(p));
    }

    #[test]
    fn exp2_is_within_1_5_ulp_and_non_decreasing(z in -(40i64 << 10)..=0, d in 0i64..3000) {
        let t = tables();
        let got = t.exp2(z) as f64 / 32768.0;
        let want = (z as f64 / 1024.0).exp2();
        prop_assert!((got - want).abs() <= 1.5 / 32768.0, "z {} got {} want {}", z, got, want);
        prop_assert!(t.exp2((z - d).max(-(40 << 10))) <= t.exp2(z));
    }

    #[test]
    fn sigmoid_is_within_bounds_and_non_decreasing(x in -3000i64..3000, d in 0i64..100) {
        let t = tables();
        let got = t.sigmoid(x) as f64 / 32768.0;
        let want = 1.0 / (1.0 + (-(x as f64) / 128.0).exp());
        let bound = if (-1024..1024).contains(&x) { 2e-5 } else { 3.5e-4 };
        prop_assert!((got - want).abs() <= bound, "x {} got {} want {}", x, got, want);
        prop_assert!(t.sigmoid(x + d) >= t.sigmoid(x));
    }

    #[test]
    fn log2_is_within_1_5e_3_and_non_decreasing(p in 1u64..(1u64 << 50), d in 0u64..1000) {
        let t = tables();
        let got = t.log2(p) as f64 / 1024.0;
        prop_assert!((got - (p as f64).log2()).abs() < 1.5e-3, "p {} got {}", p, got);
        prop_assert!(t.log2(p + d) >= t.log2(p));
    }

    #[test]
    fn sincos_is_within_4_2e_4(phase in any::<u32>()) {
        let t = tables();
        let (s, c) = t.sincos(phase);
        let angle = phase as f64 / 4294967296.0 * std::f64::consts::TAU;
        prop_assert!((s as f64 / 16384.0 - angle.sin()).abs() < 4.2e-4);
        prop_assert!((c as f64 / 16384.0 - angle.cos()).abs() < 4.2e-4);
    }
}

#[test]
fn every_table_is_monotonic() {
    let t = tables();
    assert!(t.sine.windows(2).all(|w| w[0] <= w[1]));
    assert!(t.rsqrt.windows(2).all(|w| w[0] >= w[1]));
    assert!(t.recip.windows(2).all(|w| w[0] >= w[1]));
    assert!(t.exp2.windows(2).all(|w| w[0] >= w[1]));
    assert!(t.sigmoid.windows(2).all(|w| w[0] <= w[1]));
    assert!(t.log2.windows(2).all(|w| w[0] <= w[1]));
}
