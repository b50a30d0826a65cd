//! Any input: loading, checking, linting and every output format never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(src) = std::str::from_utf8(data) {
        mesh_compiler::fuzz_check(src);
    }
});
