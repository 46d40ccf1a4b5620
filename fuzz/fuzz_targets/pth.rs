#![no_main]
//! `cargo +nightly fuzz run pth`: see memvos_model::fuzzing::pth.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| memvos_model::fuzzing::pth(data));
