#![no_main]
//! `cargo +nightly fuzz run burnpack`: see memvos_model::fuzzing::burnpack.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| memvos_model::fuzzing::burnpack(data));
