//! Ring entries as a hostile peer writes them: any 64 command bytes and any 16
//! completion bytes decode, and what decodes encodes to a value that decodes the same.
#![no_main]

use etch_firmware::descriptor::{COMMAND_BYTES, COMPLETION_BYTES};
use etch_firmware::{Command, Completion};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut c = [0u8; COMMAND_BYTES];
    let n = data.len().min(COMMAND_BYTES);
    c[..n].copy_from_slice(&data[..n]);
    let cmd = Command::from_bytes(&c);
    assert_eq!(Command::from_bytes(&cmd.to_bytes()), cmd);
    let mut d = [0u8; COMPLETION_BYTES];
    let rest = &data[n..];
    let m = rest.len().min(COMPLETION_BYTES);
    d[..m].copy_from_slice(&rest[..m]);
    let done = Completion::from_bytes(&d);
    assert_eq!(Completion::from_bytes(&done.to_bytes()), done);
});
