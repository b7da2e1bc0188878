//! A hostile board on the serial link: the driver (`etch_driver::Serial`) talks to a
//! pseudo-terminal behind which the fuzzer's bytes are the board's whole answer
//! (after the reset acknowledgement): any frames, DMA requests at any address,
//! interrupts, bytes that start no frame, replies out of step. Every operation returns
//! a value or an error within its deadline, and never panics; DMA never touches memory
//! outside the buffers the host allocated.
#![no_main]

use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::time::Duration;

use etch_driver::{Device, Serial};
use libfuzzer_sys::fuzz_target;

/// A pseudo-terminal: the master's file and the slave's path.
fn pty() -> (std::fs::File, std::path::PathBuf) {
    // SAFETY: plain libc calls on a descriptor this function owns; `ptsname_r` writes
    // at most `buf.len()` bytes.
    unsafe {
        let fd = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY);
        assert!(fd >= 0, "posix_openpt");
        let master = OwnedFd::from_raw_fd(fd);
        assert_eq!(libc::grantpt(fd), 0);
        assert_eq!(libc::unlockpt(fd), 0);
        let mut buf = [0 as libc::c_char; 128];
        assert_eq!(libc::ptsname_r(fd, buf.as_mut_ptr(), buf.len()), 0);
        let name = std::ffi::CStr::from_ptr(buf.as_ptr())
            .to_string_lossy()
            .into_owned();
        (std::fs::File::from(master), name.into())
    }
}

fuzz_target!(|data: &[u8]| {
    let (mut master, slave) = pty();
    let mut answer = vec![b'z'];
    answer.extend_from_slice(data);
    let mut reader = master.try_clone().expect("the master again");
    // The board: its whole answer at once, then it drains what the host sends.
    let board = std::thread::spawn(move || {
        let mut sink = [0u8; 256];
        let _ = reader.read(&mut sink);
        let _ = master.write_all(&answer);
        drop(master);
        while matches!(reader.read(&mut sink), Ok(n) if n > 0) {}
    });
    if let Ok(mut dev) = Serial::open(&slave, 115_200, Duration::from_millis(5)) {
        let buf = dev.dma_alloc(24);
        let _ = dev.read_reg(0);
        let _ = dev.write_reg(1, 0x5a5a);
        let _ = dev.wait(0xffff_ffff);
        let _ = dev.read_reg(2);
        if let Ok(b) = buf {
            let mut out = [0u8; 24];
            dev.dma_read(&b, 0, &mut out)
                .expect("the host's own buffer reads");
        }
        let _ = dev.reset();
        drop(dev);
    }
    let _ = board.join();
});
