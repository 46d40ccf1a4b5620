#![no_main]
//! `cargo +nightly fuzz run mask`: see memvos_model::fuzzing::mask.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| memvos_model::fuzzing::mask(data));
