#![no_main]
//! `cargo +nightly fuzz run safetensors`: see memvos_model::fuzzing::safetensors.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| memvos_model::fuzzing::safetensors(data));
