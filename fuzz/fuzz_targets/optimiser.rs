#![no_main]
//! `cargo +nightly fuzz run optimiser`: see memvos_train::fuzzing::optimiser.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| memvos_train::fuzzing::optimiser(data));
