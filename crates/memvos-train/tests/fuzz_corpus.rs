//! Replays the committed `optimiser` fuzz corpus (`fuzz/corpus/optimiser/`) through the entry
//! point the fuzz target drives, on stable, so a change that breaks on one of those inputs fails CI.

use std::path::Path;

#[test]
fn every_optimiser_corpus_input_returns() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/optimiser");
    let mut inputs: Vec<_> = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())).flatten().map(|e| e.path()).collect();
    inputs.sort();
    assert!(!inputs.is_empty(), "no corpus for optimiser");
    for p in &inputs {
        memvos_train::fuzzing::optimiser(&std::fs::read(p).unwrap());
    }
    eprintln!("optimiser: {} inputs replayed", inputs.len());
}
