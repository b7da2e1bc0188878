//! vfio-user messages as the server receives them from a client: the header is framed
//! (a size the guard refuses ends the connection before any body is read), the body
//! read to the announced length, and the guard accepts or refuses the whole message
//! without panicking.
#![no_main]

use etch_sim::server::guard::{check, Header, HEADER_BYTES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < HEADER_BYTES + 1 {
        return;
    }
    // The first byte: file descriptors received with the message (low bits), and
    // whether the header's size is the fuzzer's or the body's own (top bit), so that
    // both framing and the commands' checks are reached.
    let fds = (data[0] & 0x7) as usize;
    let mut header = Header::decode(data[1..=HEADER_BYTES].try_into().expect("16 bytes"));
    let body = &data[HEADER_BYTES + 1..];
    if data[0] & 0x80 != 0 {
        header.size = (HEADER_BYTES + body.len()) as u32;
    }
    if let Ok(len) = header.body_len() {
        if len == body.len() {
            if let Ok(cmd) = check(&header, body, fds) {
                assert_eq!(cmd as u16, header.command);
            }
        }
    }
});
