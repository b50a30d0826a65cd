//! Any input: the parser never panics, and what parses formats stably.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(src) = std::str::from_utf8(data) {
        if let Err(problem) = mesh_lang::format::check_round_trip(src) {
            panic!("{problem}");
        }
    }
});
