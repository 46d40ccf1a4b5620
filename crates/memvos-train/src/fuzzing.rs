//! The entry point the `optimiser` fuzz target drives (`fuzz/fuzz_targets/optimiser.rs`), also
//! replayed over the committed corpus on stable by `tests/fuzz_corpus.rs`.

/// The optimiser-state reader a training resume uses: the burnpack optimiser record, its
/// parameter ids, and loading it into Adam. Must return on any input, never panic.
pub fn optimiser(data: &[u8]) {
    // As a resume does: checked first, loaded into Adam only when the check passes.
    if memvos_model::weights::check_optimizer_state(data).is_ok() {
        let _ = burn::optim::AdamConfig::new().init().from_bytes(burn::tensor::Bytes::from_bytes_vec(data.to_vec()));
    }
}
