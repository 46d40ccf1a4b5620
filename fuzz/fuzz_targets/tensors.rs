#![no_main]
//! `cargo +nightly fuzz run tensors`: see memvos_model::fuzzing::tensors.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| memvos_model::fuzzing::tensors(data));
