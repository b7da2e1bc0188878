//! A hostile host against the chip's queues (issue: hardening, device side).
//!
//! The host owns the submission ring, the doorbells and every address in a command;
//! the chip must survive whatever it writes there: never hang, never reach memory
//! outside the buffers the command names (or outside its rings), complete every
//! command with a status, and keep serving. The in-process simulator maps each DMA
//! buffer with an unmapped gap after it and counts every access outside a mapping
//! (`dma_errors`), so a stray read or write cannot go unnoticed.

mod common;

use common::{open_chip, small_chip, GREEDY};
use etch_driver::{Chip, Device, DmaBuffer, DriverError, InProcess};
use etch_firmware::{regs, Command, Opcode, Status};

/// A small deterministic generator (xorshift64*), so a failure replays exactly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// The data buffer the in-window commands point into: A in its first half, B in its
/// second, each with room for anything a tiny chip's command can move (a full
/// context's save image, 64 steps of debug logits).
const DATA_BYTES: usize = 1 << 20;
const HALF: u64 = DATA_BYTES as u64 / 2;
const ROOM: u64 = 256 << 10;

fn dma_errors(chip: &Chip<InProcess>) -> u64 {
    chip.with_device(|d| d.simulator().dma_errors())
}

/// A random command. Its addresses lie in the data buffer unless `wild`.
fn command(rng: &mut Rng, data: &DmaBuffer, wild: bool) -> Command {
    let opcode = if rng.chance(90) {
        1 + rng.below(10) as u8
    } else {
        rng.next() as u8
    };
    let count = match rng.below(4) {
        0 => 0,
        1 => 1,
        2 => rng.below(80) as u32,
        _ => rng.next() as u32,
    };
    let token = if rng.chance(80) {
        rng.below(320) as u32
    } else {
        rng.next() as u32
    };
    let mut addr = |base: u64| {
        if wild {
            match rng.below(3) {
                0 => rng.next(),
                1 => data.iova + DATA_BYTES as u64 + rng.below(1 << 16),
                _ => (data.iova + base + rng.below(ROOM)) | (1 + rng.below(7)),
            }
        } else {
            data.iova + base + rng.below(ROOM) / 8 * 8
        }
    };
    let (addr_a, addr_b) = (addr(0), addr(HALF));
    let mut stop = [0u16; 4];
    for s in &mut stop {
        *s = rng.below(320) as u16;
    }
    Command {
        opcode,
        flags: if rng.chance(30) { rng.next() as u8 } else { 0 },
        context: if rng.chance(85) {
            rng.below(3) as u8
        } else {
            rng.next() as u8
        },
        id: 0,
        addr_a,
        count,
        token,
        inv_temp: if rng.chance(50) { 0 } else { rng.next() as u16 },
        topp: if rng.chance(50) { 0 } else { rng.next() as u16 },
        seed: rng.next(),
        addr_b,
        stop,
        stop_count: rng.below(8) as u8,
    }
}

/// The same greedy generation from a fresh context 0.
fn story(chip: &Chip<InProcess>) -> Vec<u32> {
    chip.reset_contexts().unwrap();
    chip.create_context(0).unwrap();
    chip.prefill(0, &[1, 7, 42], false).unwrap();
    chip.generate(0, 9, 12, GREEDY, &[], false, &mut |_| {})
        .unwrap()
        .tokens
}

#[test]
fn random_commands_complete_with_a_status_and_touch_only_their_buffers() {
    let dir = tempfile::tempdir().unwrap();
    let (out, m) = small_chip(dir.path());
    let chip = open_chip(&out, &m);
    let before = story(&chip);
    let data = chip.with_device(|d| d.dma_alloc(DATA_BYTES)).unwrap();
    // A command that hangs the chip fails here instead of holding the test.
    chip.set_timeout_slices(400);
    let mut rng = Rng(0x005E_ED0F_E7C4);
    let mut statuses = [0usize; 16];
    let mut wild_errors = 0;
    for i in 0..400 {
        if rng.chance(10) {
            // Garbage where tokens and save images are read from.
            let junk: Vec<u8> = (0..4096).map(|_| rng.next() as u8).collect();
            let at = rng.below(ROOM - 4096) as usize;
            chip.with_device(|d| d.dma_write(&data, at, &junk)).unwrap();
        }
        let wild = rng.chance(20);
        let cmd = command(&mut rng, &data, wild);
        let errors = dma_errors(&chip);
        let done = chip
            .submit_raw(cmd, &mut |_| Ok(false), &mut || {})
            .unwrap_or_else(|e| panic!("command {i} ({cmd:?}) did not complete: {e}"));
        let stray = dma_errors(&chip) - errors;
        statuses[(done.status as usize).min(15)] += 1;
        assert!(
            done.status <= Status::BadSaveImage as u16,
            "command {i} ({cmd:?}): unknown status {}",
            done.status
        );
        if wild {
            if stray > 0 {
                assert_eq!(
                    done.status,
                    Status::DmaError as u16,
                    "command {i} ({cmd:?}) reached unmapped memory without saying so"
                );
                wild_errors += 1;
            }
        } else {
            assert_eq!(
                stray, 0,
                "command {i} ({cmd:?}) reached outside the buffers it names (status {})",
                done.status
            );
            assert_ne!(
                done.status,
                Status::DmaError as u16,
                "command {i} ({cmd:?})"
            );
        }
    }
    // The fuzz reached the commands' work, not only their checks.
    assert!(statuses[Status::Ok as usize] > 20, "{statuses:?}");
    assert!(wild_errors > 5, "{statuses:?}");
    assert_eq!(
        chip.with_device(|d| d.read_reg(regs::STATUS)).unwrap() & regs::status::FAULT,
        0
    );
    chip.set_timeout_slices(100_000);
    assert_eq!(story(&chip), before);
}

#[test]
fn hostile_doorbells_and_ring_sizes_neither_hang_the_chip_nor_reach_past_the_rings() {
    let dir = tempfile::tempdir().unwrap();
    let (out, m) = small_chip(dir.path());
    let chip = open_chip(&out, &m);
    let before = story(&chip);
    let reg = |i: u16| chip.with_device(|d| d.read_reg(i)).unwrap();
    let set = |i: u16, v: u32| chip.with_device(|d| d.write_reg(i, v)).unwrap();
    let run = |slices: usize| {
        for _ in 0..slices {
            chip.with_device(|d| d.wait(0)).unwrap();
        }
    };
    let ring = reg(regs::SQ_SIZE);
    let errors = dma_errors(&chip);

    // A tail past the end of the ring, an empty ring, a ring shrunk under the head:
    // the chip fetches nothing (every fetch would land in the unmapped gap after it).
    let head = reg(regs::SQ_HEAD);
    for (size, tail) in [
        (ring, ring + 3),
        (ring, u32::MAX),
        (0, head + 1),
        (head.max(1), head.max(1) + 1),
    ] {
        set(regs::SQ_SIZE, size);
        set(regs::SQ_TAIL, tail);
        run(20);
        assert_eq!(dma_errors(&chip), errors, "SQ_SIZE {size}, SQ_TAIL {tail}");
        assert_eq!(reg(regs::STATUS) & regs::status::FAULT, 0);
    }

    // An empty completion ring: the chip holds the completion rather than write it
    // anywhere; the driver times out and resets the chip.
    chip.recover().unwrap();
    let tail = reg(regs::CQ_TAIL);
    set(regs::CQ_SIZE, 0);
    chip.set_timeout_slices(20);
    // A command that moves no data (ABORT of nothing).
    let abort = Command {
        opcode: Opcode::Abort as u8,
        ..Command::default()
    };
    let mut tails = Vec::new();
    let r = chip.submit_raw(
        abort,
        &mut |d| {
            tails.push(d.read_reg(regs::CQ_TAIL)?);
            Ok(false)
        },
        &mut || {},
    );
    assert!(matches!(r, Err(DriverError::Timeout { .. })), "{r:?}");
    assert!(
        tails.len() >= 20 && tails.iter().all(|&t| t == tail),
        "{tails:?}"
    );
    assert_eq!(dma_errors(&chip), errors);

    // After all of it (and the driver's reset), the chip serves as before.
    chip.set_timeout_slices(100_000);
    assert_eq!(story(&chip), before);
}
