//! Generates `include/etch.h`, the C header of the runtime's C ABI, with cbindgen.

include!("../build/c_header.rs");

fn main() {
    c_header("etch.h", "ETCH_H", "etch runtime C ABI");
}
