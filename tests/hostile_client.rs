//! A hostile vfio-user client: the messages that used to kill or hold the server
//! (a VERSION string without its NUL, a header announcing 4 GiB, a message cut short,
//! memory that can shrink, two mappings at one address, a pipe for an interrupt), then
//! ten thousand random and mutated messages — and after all of it a real client gets
//! exactly the tokens of the in-process chip.

mod common;

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use common::serve::{connect, socket_in, spawn_server};
use common::{open_chip, session, small_chip};
use vmm_sys_util::sock_ctrl_msg::ScmSocket;

const VERSION: u16 = 1;
const DMA_MAP: u16 = 2;
const DMA_UNMAP: u16 = 3;
const DEVICE_GET_INFO: u16 = 4;
const GET_REGION_INFO: u16 = 5;
const GET_IRQ_INFO: u16 = 7;
const SET_IRQS: u16 = 8;
const REGION_READ: u16 = 9;
const REGION_WRITE: u16 = 10;
const DEVICE_RESET: u16 = 13;
const FLAG_ERROR: u32 = 1 << 5;
const MSIX: u32 = 4;
/// SET_IRQS flags: eventfd data, trigger action.
const EVENTFD_TRIGGER: u32 = 4 | 32;

fn message(id: u16, command: u16, body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(16 + body.len());
    m.extend_from_slice(&id.to_le_bytes());
    m.extend_from_slice(&command.to_le_bytes());
    m.extend_from_slice(&(16 + body.len() as u32).to_le_bytes());
    m.extend_from_slice(&0u32.to_le_bytes());
    m.extend_from_slice(&0u32.to_le_bytes());
    m.extend_from_slice(body);
    m
}

fn words(ws: &[u64], sizes: &[usize]) -> Vec<u8> {
    let mut b = Vec::new();
    for (w, n) in ws.iter().zip(sizes) {
        b.extend_from_slice(&w.to_le_bytes()[..*n]);
    }
    b
}

fn version(json: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0, 0, 0];
    b.extend_from_slice(json);
    b
}

fn region_access(region: u32, offset: u64, count: u32, data: &[u8]) -> Vec<u8> {
    let mut b = words(&[offset, region as u64, count as u64], &[8, 4, 4]);
    b.extend_from_slice(data);
    b
}

fn dma_map(address: u64, size: u64) -> Vec<u8> {
    words(&[32, 3, 0, address, size], &[4, 4, 8, 8, 8])
}

fn set_irqs(flags: u32, start: u32, count: u32) -> Vec<u8> {
    words(
        &[20, flags as u64, MSIX as u64, start as u64, count as u64],
        &[4, 4, 4, 4, 4],
    )
}

/// A memfd of `len` bytes, sealed against shrinking when `sealed`.
fn memfd(len: u64, sealed: bool) -> File {
    // SAFETY: a valid C string; no other preconditions.
    let fd = unsafe { libc::memfd_create(c"hostile".as_ptr(), libc::MFD_ALLOW_SEALING) };
    assert!(fd >= 0);
    // SAFETY: a fresh descriptor owned by nobody else.
    let f = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    f.set_len(len).unwrap();
    if sealed {
        // SAFETY: fcntl on an fd this File owns.
        assert_eq!(
            unsafe { libc::fcntl(f.as_raw_fd(), libc::F_ADD_SEALS, libc::F_SEAL_SHRINK) },
            0
        );
    }
    f
}

/// Sends a message with descriptors and reads its one reply: (error flag, errno).
fn call(s: &UnixStream, msg: &[u8], fds: &[RawFd]) -> (bool, u32) {
    if fds.is_empty() {
        (&*s).write_all(msg).unwrap();
    } else {
        let n = s.send_with_fds(&[msg], fds).unwrap();
        (&*s).write_all(&msg[n..]).unwrap();
    }
    let mut head = [0u8; 16];
    (&*s).read_exact(&mut head).unwrap();
    let size = u32::from_le_bytes(head[4..8].try_into().unwrap()) as usize;
    let mut rest = vec![0u8; size - 16];
    (&*s).read_exact(&mut rest).unwrap();
    let flags = u32::from_le_bytes(head[8..12].try_into().unwrap());
    let errno = u32::from_le_bytes(head[12..16].try_into().unwrap());
    (flags & FLAG_ERROR != 0, errno)
}

/// Waits for the server to close the connection; how long that took.
fn closed_within(s: &UnixStream, limit: Duration) -> Duration {
    let start = Instant::now();
    s.set_read_timeout(Some(limit)).unwrap();
    let mut sink = [0u8; 256];
    loop {
        match (&*s).read(&mut sink) {
            Ok(0) => return start.elapsed(),
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return start.elapsed(),
            Err(e) => panic!("the server kept the connection open for {limit:?}: {e}"),
        }
    }
}

/// A tiny deterministic generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// A well-formed message of a random kind, then (usually) mutated.
fn hostile_message(r: &mut Rng, id: u16) -> Vec<u8> {
    let body = match r.below(10) {
        0 => version(b"{\"capabilities\":{\"max_msg_fds\":16}}\0"),
        1 => vec![],
        2 => words(&[32, 0, r.below(12)], &[4, 4, 4])
            .into_iter()
            .chain([0u8; 20])
            .collect(),
        3 => words(&[16, 0, r.below(8), 0], &[4, 4, 4, 4]),
        4 => region_access(r.below(9) as u32, r.below(0x2100), 4, &[]),
        5 => {
            let data = (r.next() as u32).to_le_bytes();
            region_access(
                if r.below(2) == 0 { 7 } else { 0 },
                r.below(0x2000) & !3,
                4,
                &data,
            )
        }
        6 => set_irqs(1 | 32, 0, r.below(3) as u32),
        7 => words(&[24, 0, r.next(), r.below(1 << 20)], &[4, 4, 8, 8]),
        8 => dma_map(r.next(), r.below(1 << 40)),
        _ => (0..r.below(64)).map(|_| r.next() as u8).collect(),
    };
    let commands = [
        VERSION,
        DEVICE_RESET,
        GET_REGION_INFO,
        GET_IRQ_INFO,
        REGION_READ,
        REGION_WRITE,
        SET_IRQS,
        DMA_UNMAP,
        DMA_MAP,
        DEVICE_GET_INFO,
    ];
    let command = commands[r.below(commands.len() as u64) as usize];
    let mut m = message(id, command, &body);
    match r.below(6) {
        0 => {} // as it is
        1 => {
            for _ in 0..=r.below(4) {
                let at = r.below(m.len() as u64) as usize;
                m[at] ^= 1 << r.below(8);
            }
        }
        2 => {
            let at = 4 + r.below(4) as usize;
            m[at] = r.next() as u8;
        }
        3 => m.truncate(r.below(m.len() as u64) as usize),
        4 => m.extend((0..r.below(40)).map(|_| r.next() as u8)),
        _ => {
            let at = 2 + r.below(2) as usize;
            m[at] = r.next() as u8;
        }
    }
    m
}

#[test]
fn the_server_survives_a_hostile_client_and_then_serves_a_real_one() {
    let dir = tempfile::tempdir().unwrap();
    let (out, m) = small_chip(dir.path());
    let want = session(&open_chip(&out, &m));
    let socket = socket_in(dir.path());
    let mut server = spawn_server(&out, &socket);
    let alive = |server: &mut std::process::Child| {
        assert!(
            server.try_wait().unwrap().is_none(),
            "the server died: {:?}",
            server.try_wait()
        );
    };

    // 1. VERSION whose capabilities lack their NUL: an error reply, not a panic; the
    // connection goes on.
    let s = UnixStream::connect(&socket).unwrap();
    let (err, errno) = call(
        &s,
        &message(1, VERSION, &version(b"{\"capabilities\":{}}")),
        &[],
    );
    assert!(err, "the malformed VERSION was accepted");
    assert_eq!(errno, libc::EINVAL as u32);
    let (err, _) = call(
        &s,
        &message(2, VERSION, &version(b"{\"capabilities\":{}}\0")),
        &[],
    );
    assert!(!err, "a proper VERSION after it is answered");
    alive(&mut server);

    // 2. Memory that could shrink under the chip's DMA, memory shorter than the
    // mapping, two mappings at one address, a pipe for an interrupt: refused.
    let (err, _) = call(
        &s,
        &message(3, DMA_MAP, &dma_map(0x10000, 4096)),
        &[memfd(4096, false).as_raw_fd()],
    );
    assert!(err, "unsealed DMA memory was mapped");
    let (err, _) = call(
        &s,
        &message(4, DMA_MAP, &dma_map(0x10000, 1 << 30)),
        &[memfd(4096, true).as_raw_fd()],
    );
    assert!(err, "a mapping longer than its file was accepted");
    let sealed = memfd(8192, true);
    let (err, _) = call(
        &s,
        &message(5, DMA_MAP, &dma_map(0x10000, 8192)),
        &[sealed.as_raw_fd()],
    );
    assert!(!err, "sealed DMA memory is mapped");
    let (err, _) = call(
        &s,
        &message(6, DMA_MAP, &dma_map(0x11000, 8192)),
        &[sealed.as_raw_fd()],
    );
    assert!(err, "an overlapping mapping was accepted");
    let (rd, wr) = {
        let mut p = [0; 2];
        // SAFETY: a valid two-int buffer.
        assert_eq!(unsafe { libc::pipe(p.as_mut_ptr()) }, 0);
        // SAFETY: fresh descriptors owned by these Files only.
        unsafe { (File::from_raw_fd(p[0]), File::from_raw_fd(p[1])) }
    };
    let (err, _) = call(
        &s,
        &message(7, SET_IRQS, &set_irqs(EVENTFD_TRIGGER, 0, 1)),
        &[wr.as_raw_fd()],
    );
    assert!(err, "a pipe was taken for an interrupt eventfd");
    drop((rd, wr, s));
    alive(&mut server);

    // 3. A header announcing 4 GiB ends the connection at once; a message cut short
    // ends it after the server's deadline.
    let s = UnixStream::connect(&socket).unwrap();
    let mut huge = message(8, REGION_WRITE, &[]);
    huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    (&s).write_all(&huge).unwrap();
    assert!(closed_within(&s, Duration::from_secs(5)) < Duration::from_secs(2));
    let s = UnixStream::connect(&socket).unwrap();
    (&s).write_all(&message(9, DEVICE_GET_INFO, &[0; 16])[..5])
        .unwrap();
    let t = closed_within(&s, Duration::from_secs(30));
    assert!(t >= Duration::from_secs(4), "closed after {t:?}");
    alive(&mut server);

    // 4. Ten thousand random and mutated messages, on as many connections as they
    // take (a message the server cannot frame ends its connection).
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let (mut sent, mut connections) = (0u32, 0u32);
    while sent < 10_000 {
        let s = UnixStream::connect(&socket).unwrap();
        connections += 1;
        let drain = {
            let mut r = s.try_clone().unwrap();
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut r, &mut std::io::sink());
            })
        };
        while sent < 10_000 {
            let m = hostile_message(&mut rng, sent as u16);
            sent += 1;
            let extra: Option<File> = (rng.below(8) == 0).then(|| memfd(4096, rng.below(2) == 0));
            let r = match &extra {
                Some(f) => s
                    .send_with_fds(&[&m[..]], &[f.as_raw_fd()])
                    .map(|_| ())
                    .map_err(|e| std::io::Error::from_raw_os_error(e.errno())),
                None => (&s).write_all(&m),
            };
            if r.is_err() || rng.below(64) == 0 {
                break;
            }
        }
        let _ = s.shutdown(std::net::Shutdown::Both);
        drain.join().unwrap();
        alive(&mut server);
    }
    eprintln!("sent {sent} hostile messages on {connections} connections");

    // 5. A real client, on the chip the server reset for it.
    let chip = connect(&socket, &m);
    let got = session(&chip);
    assert_eq!(
        got, want,
        "tokens, logits and IDENTIFY after the hostile client"
    );
    drop(chip);
    alive(&mut server);
    server.kill().unwrap();
    server.wait().unwrap();
}
