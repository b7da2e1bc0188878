//! The lane in rust-hdl simulation against the golden model's arithmetic: a row of a
//! matrix-vector product with its per-row requantization, a RoPE rotation, the
//! saturating add, and the argmax.

use etch_compiler::numerics::{requant, sat16};
use etch_hdl::lane::{accop, msel, opa, opb, Lane};
use rust_hdl::prelude::*;

/// One micro-operation as the lane sees it in its E stage.
#[derive(Clone, Copy, Default)]
struct Uop {
    a: u64,
    b: u64,
    cadd: bool,
    acc: u64,
    rq: bool,
    rqin: bool,
    msel: u64,
    rd0: i16,
    rd1: i16,
    nbr: i16,
    w8: i8,
    bc: i16,
    cosv: i16,
    sinv: i16,
    qm: u16,
    qs: u8,
    am: bool,
    amfirst: bool,
    slot: u16,
}

fn drive(x: &mut Box<Lane>, u: &Uop, bshift: u8) {
    x.u_a.next = u.a.into();
    x.u_b.next = u.b.into();
    x.u_cadd.next = u.cadd;
    x.u_acc.next = u.acc.into();
    x.u_rq.next = u.rq;
    x.u_rqin.next = u.rqin;
    x.u_msel.next = u.msel.into();
    x.u_raw.next = 0.into();
    x.u_am.next = u.am;
    x.u_amfirst.next = u.amfirst;
    x.u_qload.next = false;
    x.u_active.next = true;
    x.u_slot.next = (u.slot as u64).into();
    x.rd0.next = (u.rd0 as u16 as u64).into();
    x.rd1.next = (u.rd1 as u16 as u64).into();
    x.nbr.next = (u.nbr as u16 as u64).into();
    x.w8.next = (u.w8 as u8 as u64).into();
    x.bc.next = (u.bc as u16 as u64).into();
    x.cosv.next = (u.cosv as u16 as u64).into();
    x.sinv.next = (u.sinv as u16 as u64).into();
    x.qm.next = (u.qm as u64).into();
    x.qs.next = (u.qs as u64).into();
    x.bshift.next = (bshift as u64).into();
}

/// Runs the micro-operations one per cycle and returns every (cycle, wdata) write, and
/// the final argmax (valid, value, slot).
fn run(uops: Vec<Uop>, bshift: u8) -> (Vec<(usize, i16)>, (bool, i16, u16)) {
    let mut sim = Simulation::new();
    sim.add_clock(5, |x: &mut Box<Lane>| x.clock.next = !x.clock.val());
    let writes = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let am = std::sync::Arc::new(std::sync::Mutex::new((false, 0i16, 0u16)));
    let (w2, am2) = (writes.clone(), am.clone());
    sim.add_testbench(move |mut sim: Sim<Lane>| {
        let mut x = sim.init()?;
        x.reset.next = true;
        wait_clock_true!(sim, clock, x);
        wait_clock_false!(sim, clock, x);
        x.reset.next = false;
        let idle = Uop::default();
        for cycle in 0..uops.len() + 6 {
            // Inputs change after the falling edge and are sampled at the rising edge.
            drive(&mut x, uops.get(cycle).unwrap_or(&idle), bshift);
            wait_clock_true!(sim, clock, x);
            wait_clock_false!(sim, clock, x);
            if x.we.val() {
                w2.lock()
                    .unwrap()
                    .push((cycle, x.wdata.val().to_u64() as u16 as i16));
            }
        }
        *am2.lock().unwrap() = (
            x.am_valid.val(),
            x.am_val.val().to_u64() as u16 as i16,
            x.am_slot.val().to_u64() as u16,
        );
        sim.done(x)
    });
    let mut uut = Lane::default();
    uut.connect_all();
    sim.run(Box::new(uut), 100_000).unwrap();
    let w = writes.lock().unwrap().clone();
    let a = *am.lock().unwrap();
    (w, a)
}

#[test]
fn matvec_row_requantizes_like_the_golden_model() {
    let x: Vec<i16> = vec![1200, -32768, 32767, 5, -77, 30000, -1, 999];
    let w: Vec<i8> = vec![127, -128, 3, -1, 100, -127, 64, 0];
    let (mult, shift) = (51234u16, 23u8);
    let mut uops = Vec::new();
    for j in 0..x.len() {
        uops.push(Uop {
            a: opa::BC,
            b: opb::W8,
            acc: if j == 0 { accop::LOAD } else { accop::ADD },
            rq: j == x.len() - 1,
            msel: msel::QROM,
            bc: x[j],
            w8: w[j],
            qm: mult,
            qs: shift,
            ..Default::default()
        });
    }
    let acc: i64 = x.iter().zip(&w).map(|(&a, &b)| a as i64 * b as i64).sum();
    let (writes, _) = run(uops, 0);
    // Written in W: observed two cycles after the last E cycle.
    assert_eq!(
        writes,
        vec![(x.len() - 1 + 2, requant(acc, mult as i64, shift as u32))]
    );
}

#[test]
fn rope_rotation_and_saturating_add() {
    // Even lane of a RoPE pair: v0·cos − v1·sin over two micro-operations.
    let (v0, v1, c, s) = (12345i16, -23456i16, 11585i16, -11585i16);
    let uops = vec![
        Uop {
            a: opa::RD0,
            b: opb::COS,
            acc: accop::LOAD,
            rd0: v0,
            cosv: c,
            ..Default::default()
        },
        Uop {
            a: opa::NBR,
            b: opb::SIN,
            acc: accop::ADD,
            rq: true,
            msel: msel::ONE,
            nbr: v1,
            sinv: -s,
            ..Default::default()
        },
    ];
    let (writes, _) = run(uops, 14);
    let want = requant(v0 as i64 * c as i64 - v1 as i64 * s as i64, 1, 14);
    assert_eq!(writes, vec![(3, want)]);
    // x + y with saturation: rd0·1 + rd1, requantized with multiplier 1, shift 0.
    let add = |x: i16, y: i16| Uop {
        a: opa::RD0,
        b: opb::ONE,
        cadd: true,
        rq: true,
        rqin: true,
        msel: msel::ONE,
        rd0: x,
        rd1: y,
        ..Default::default()
    };
    let (writes, _) = run(vec![add(30000, 5000), add(-100, 50), add(-30000, -5000)], 0);
    let got: Vec<i16> = writes.iter().map(|w| w.1).collect();
    assert_eq!(got, vec![sat16(35000), -50, sat16(-35000)]);
}

#[test]
fn argmax_keeps_the_first_maximum() {
    let vals = [-5i16, 700, -32768, 700, 699, 12];
    let uops = vals
        .iter()
        .enumerate()
        .map(|(k, &v)| Uop {
            am: true,
            amfirst: k == 0,
            rd0: v,
            slot: k as u16,
            ..Default::default()
        })
        .collect();
    let (_, am) = run(uops, 0);
    assert_eq!(am, (true, 700, 1));
}
