//! The driver stack: the simulated chip served over vfio-user behaves exactly as the
//! in-process one; faults (a killed server, a killed client, a descriptor pointing
//! outside mapped memory) end in clear errors and a device that keeps serving; SAVE and
//! RESTORE of a context, and contexts interleaved on one chip (also from two threads),
//! give the tokens each context gets alone.

mod common;

use std::io::Read;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::serve::{connect, etch, socket_in, spawn_server};
use common::{
    expected, open_chip, prefill_outside_host_memory, sampled, session, small_chip, GREEDY,
};
use etch_driver::{Chip, Device, Timeout, VfioUser};
use etch_firmware::Status;

#[test]
fn vfio_user_gives_what_the_in_process_chip_gives() {
    let dir = tempfile::tempdir().unwrap();
    let (out, m) = small_chip(dir.path());
    let want = session(&open_chip(&out, &m));

    let socket = socket_in(dir.path());
    let lib = etch_sim::build(&out, &m.design_hash).unwrap();
    let (o, s) = (out.clone(), socket.clone());
    let server = std::thread::spawn(move || etch_sim::server::serve(&lib, &o, &s, true));
    let start = Instant::now();
    while !socket.exists() {
        assert!(start.elapsed() < Duration::from_secs(30));
        std::thread::sleep(Duration::from_millis(20));
    }
    let chip = connect(&socket, &m);
    let got = session(&chip);
    assert_eq!(got.0, want.0, "greedy tokens");
    assert_eq!(got.1, want.1, "logits, bit for bit");
    assert_eq!(got.2, want.2, "sampled tokens");
    assert_eq!(got.3, want.3, "identify block");

    // A descriptor pointing outside the mapped memory completes with an error, and
    // the chip keeps serving.
    assert_eq!(prefill_outside_host_memory(&chip), Status::DmaError as u16);
    assert_eq!(
        session(&chip).0,
        want.0,
        "still serving after the DMA error"
    );

    drop(chip);
    server.join().unwrap().unwrap();
    assert!(!socket.exists(), "the server removes its socket");
}

#[test]
fn a_killed_server_fails_the_client_within_its_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let (out, m) = small_chip(dir.path());
    let socket = socket_in(dir.path());
    let mut server = spawn_server(&out, &socket);
    let chip = connect(&socket, &m);
    chip.set_timeout(Timeout::Wall(Duration::from_secs(10)));
    chip.create_context(0).unwrap();
    let mut seen = 0;
    let start = Instant::now();
    let err = chip
        .generate(0, 1, 60, GREEDY, &[], false, &mut |_| {
            seen += 1;
            if seen == 3 {
                server.kill().unwrap();
            }
        })
        .unwrap_err();
    let _ = server.wait();
    assert!(seen >= 3, "the server died mid-generation");
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "noticed within the timeout ({:?})",
        start.elapsed()
    );
    let msg = err.to_string();
    assert!(
        msg.contains("vfio-user server") && msg.contains("closed the connection"),
        "clear error: {msg}"
    );
    // Every later call says the connection is gone, at once.
    let again = chip.identify().unwrap_err().to_string();
    assert!(again.contains("connection lost"), "{again}");
}

#[test]
fn a_server_that_stops_answering_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let (out, m) = small_chip(dir.path());
    let socket = socket_in(dir.path());
    let mut server = spawn_server(&out, &socket);
    let dev = VfioUser::connect(&socket, Duration::from_secs(2)).unwrap();
    let chip = Chip::open_with(
        dev,
        Some(&expected(&m)),
        Timeout::Wall(Duration::from_secs(2)),
    )
    .unwrap();
    let pid = server.id() as i32;
    // SAFETY: sending a signal to our own child process has no memory-safety effect.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
    let start = Instant::now();
    let err = chip.identify().unwrap_err().to_string();
    let waited = start.elapsed();
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGCONT) };
    server.kill().unwrap();
    let _ = server.wait();
    assert!(err.contains("no reply within the timeout"), "{err}");
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(8),
        "{waited:?}"
    );
}

#[test]
fn a_killed_client_leaves_the_server_reset_and_serving() {
    let dir = tempfile::tempdir().unwrap();
    let (out, m) = small_chip(dir.path());
    let want = {
        let chip = open_chip(&out, &m);
        chip.create_context(0).unwrap();
        chip.generate(0, 1, 20, GREEDY, &[], false, &mut |_| {})
            .unwrap()
            .tokens
    };
    let socket = socket_in(dir.path());
    let mut server = spawn_server(&out, &socket);

    // A client that dies mid-generation, holding context 0 (and 1: both taken).
    let mut client = etch()
        .arg("run")
        .arg("--device")
        .arg(format!("vfio-user:{}", socket.display()))
        .arg("--manifest")
        .arg(&out)
        .args(["-n", "60", "-t", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = [0u8; 4];
    client
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut first)
        .unwrap();
    client.kill().unwrap();
    client.wait().unwrap();

    // The next client finds a freshly reset chip: context 0 is free again and the
    // tokens are those of a chip that never saw the first client.
    let chip = connect(&socket, &m);
    chip.create_context(0).unwrap();
    let got = chip
        .generate(0, 1, 20, GREEDY, &[], false, &mut |_| {})
        .unwrap();
    assert_eq!(got.tokens, want);
    drop(chip);
    assert!(
        server.try_wait().unwrap().is_none(),
        "the server is still running"
    );
    server.kill().unwrap();
    let _ = server.wait();
}

#[test]
fn save_then_restore_continues_as_if_never_saved() {
    let dir = tempfile::tempdir().unwrap();
    let (out, m) = small_chip(dir.path());
    let chip = open_chip(&out, &m);
    let prompt = [1, 50, 51, 52, 53];

    // Never saved.
    chip.create_context(0).unwrap();
    chip.prefill(0, &prompt[..4], false).unwrap();
    let a = chip
        .generate(0, prompt[4], 10, sampled(5), &[], false, &mut |_| {})
        .unwrap();
    let b = chip
        .generate(
            0,
            *a.tokens.last().unwrap(),
            10,
            sampled(6),
            &[],
            true,
            &mut |_| {},
        )
        .unwrap();
    chip.destroy_context(0).unwrap();

    // Saved after the first part, context destroyed and overwritten by another story,
    // restored into the other slot, continued.
    chip.create_context(0).unwrap();
    chip.prefill(0, &prompt[..4], false).unwrap();
    let a2 = chip
        .generate(0, prompt[4], 10, sampled(5), &[], false, &mut |_| {})
        .unwrap();
    assert_eq!(a2.tokens, a.tokens);
    let image = chip.save_context(0, 1 << 20).unwrap();
    assert!(image.len() > 64, "the image holds the KV cache");
    chip.destroy_context(0).unwrap();
    chip.create_context(0).unwrap();
    chip.prefill(0, &[1, 9, 9, 9, 9, 9, 9], false).unwrap();
    chip.create_context(1).unwrap();
    let position = chip.restore_context(1, &image).unwrap();
    assert_eq!(
        position, 14,
        "4 prefilled + 10 generated positions restored"
    );
    let b2 = chip
        .generate(
            1,
            *a2.tokens.last().unwrap(),
            10,
            sampled(6),
            &[],
            true,
            &mut |_| {},
        )
        .unwrap();
    assert_eq!(b2.tokens, b.tokens, "tokens after the restore");
    assert_eq!(b2.logits, b.logits, "logits after the restore, bit for bit");

    // A corrupted image is refused, not executed.
    let mut bad = image.clone();
    bad[0] ^= 0xFF;
    chip.destroy_context(1).unwrap();
    chip.create_context(1).unwrap();
    let err = chip.restore_context(1, &bad).unwrap_err();
    assert!(err.status().is_some(), "an error completion: {err}");
}

/// One context's work: a prompt, then four GENERATE commands of six sampled tokens.
fn script<D: Device>(chip: &Chip<D>, ctx: u8, interleave: &dyn Fn()) -> Vec<u32> {
    let prompt: Vec<u32> = vec![1, 60 + ctx as u32, 61, 62];
    chip.prefill(ctx, &prompt[..3], false).unwrap();
    interleave();
    let mut last = prompt[3];
    let mut tokens = Vec::new();
    for part in 0..4u64 {
        let g = chip
            .generate(
                ctx,
                last,
                6,
                sampled(100 * ctx as u64 + part),
                &[],
                false,
                &mut |_| {},
            )
            .unwrap();
        last = *g.tokens.last().unwrap();
        tokens.extend(g.tokens);
        interleave();
    }
    tokens
}

#[test]
fn contexts_interleaved_or_in_two_threads_match_each_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (out, m) = small_chip(dir.path());
    let chip = Arc::new(open_chip(&out, &m));
    let alone: Vec<Vec<u32>> = (0..2u8)
        .map(|ctx| {
            chip.create_context(ctx).unwrap();
            let t = script(&*chip, ctx, &|| {});
            chip.destroy_context(ctx).unwrap();
            t
        })
        .collect();

    // Interleaved from one thread: context 1's prefill runs between context 0's
    // commands, and so on.
    chip.create_context(0).unwrap();
    chip.create_context(1).unwrap();
    let other = std::cell::RefCell::new((None::<u32>, Vec::<u32>::new()));
    let c1 = chip.clone();
    let t0 = script(&*chip, 0, &|| {
        // Each of context 0's steps is followed by one step of context 1's script.
        let mut o = other.borrow_mut();
        match o.0 {
            None => {
                c1.prefill(1, &[1, 61, 61], false).unwrap();
                o.0 = Some(62);
            }
            Some(last) => {
                let part = o.1.len() as u64 / 6;
                let g = c1
                    .generate(1, last, 6, sampled(100 + part), &[], false, &mut |_| {})
                    .unwrap();
                o.0 = g.tokens.last().copied();
                o.1.extend(g.tokens);
            }
        }
    });
    assert_eq!(t0, alone[0], "context 0 interleaved with context 1");
    assert_eq!(
        other.borrow().1,
        alone[1],
        "context 1 interleaved with context 0"
    );
    chip.destroy_context(0).unwrap();
    chip.destroy_context(1).unwrap();

    // From two threads at once, each with its own context.
    for ctx in 0..2u8 {
        chip.create_context(ctx).unwrap();
    }
    let threads: Vec<_> = (0..2u8)
        .map(|ctx| {
            let chip = chip.clone();
            std::thread::spawn(move || script(&*chip, ctx, &|| {}))
        })
        .collect();
    let both: Vec<Vec<u32>> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(both, alone, "two threads, one context each");
}
