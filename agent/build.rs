//! Generates `include/etch_agent.h`, the C header of the system calls' C ABI, with
//! cbindgen.

include!("../build/c_header.rs");

fn main() {
    c_header("etch_agent.h", "ETCH_AGENT_H", "etch system calls C ABI");
}
