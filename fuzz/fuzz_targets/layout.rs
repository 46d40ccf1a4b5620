#![no_main]
//! `cargo +nightly fuzz run layout`: see memvos_model::fuzzing::layout.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| memvos_model::fuzzing::layout(data));
