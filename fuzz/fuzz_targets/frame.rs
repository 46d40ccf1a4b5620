#![no_main]
//! `cargo +nightly fuzz run frame`: see memvos_model::fuzzing::frame.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| memvos_model::fuzzing::frame(data));
