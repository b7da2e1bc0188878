//! The bridge's UARTs in rust-hdl simulation: what the transmitter sends, the receiver
//! gets, byte for byte, at the smallest divisor the bridge allows; and the line idles
//! high.

use etch_hdl::bridge::{UartRx, UartTx};
use rust_hdl::prelude::*;

#[derive(LogicBlock, Default)]
struct Loopback {
    clock: Signal<In, Clock>,
    data: Signal<In, Bits<8>>,
    start: Signal<In, Bit>,
    busy: Signal<Out, Bit>,
    line: Signal<Out, Bit>,
    got: Signal<Out, Bits<8>>,
    valid: Signal<Out, Bit>,
    tx: UartTx,
    rx: UartRx,
}

impl Logic for Loopback {
    #[hdl_gen]
    fn update(&mut self) {
        self.tx.clock.next = self.clock.val();
        self.rx.clock.next = self.clock.val();
        self.tx.reset.next = false;
        self.rx.reset.next = false;
        self.tx.divisor.next = 4.into();
        self.rx.divisor.next = 4.into();
        self.tx.data.next = self.data.val();
        self.tx.start.next = self.start.val();
        self.rx.rx.next = self.tx.tx.val();
        self.busy.next = self.tx.busy.val();
        self.line.next = self.tx.tx.val();
        self.got.next = self.rx.data.val();
        self.valid.next = self.rx.valid.val();
    }
}

#[test]
fn what_the_transmitter_sends_the_receiver_gets() {
    let bytes: Vec<u8> = vec![0x00, 0xFF, 0x55, 0xA3, b'W', b'z', 0x80, 0x01];
    let mut sim = Simulation::new();
    sim.add_clock(5, |x: &mut Box<Loopback>| x.clock.next = !x.clock.val());
    let want = bytes.clone();
    sim.add_testbench(move |mut sim: Sim<Loopback>| {
        let mut x = sim.init()?;
        let mut got: Vec<u8> = Vec::new();
        let mut next = 0usize;
        let mut cycles = 0;
        while got.len() < want.len() && cycles < 2000 {
            wait_clock_true!(sim, clock, x);
            if x.valid.val() {
                got.push(x.got.val().to_u8());
            }
            x.start.next = false;
            if next < want.len() && !x.busy.val() && cycles > 8 {
                x.data.next = (want[next] as u64).into();
                x.start.next = true;
                next += 1;
            }
            wait_clock_false!(sim, clock, x);
            cycles += 1;
        }
        sim_assert_eq!(sim, got, want, x);
        // Idle line after the last stop bit.
        for _ in 0..50 {
            wait_clock_true!(sim, clock, x);
            sim_assert!(sim, x.line.val(), x);
            wait_clock_false!(sim, clock, x);
        }
        sim.done(x)
    });
    let mut uut = Loopback::default();
    uut.connect_all();
    sim.run(Box::new(uut), 100_000).unwrap();
}
