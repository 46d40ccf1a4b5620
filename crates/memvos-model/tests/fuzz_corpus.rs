//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`, minimised after the coverage-
//! guided runs recorded in the README) through the same entry points the fuzz targets drive, on
//! stable, so a reader change that breaks on one of those inputs fails CI.

use std::path::Path;

use memvos_model::fuzzing::TARGETS;

#[test]
fn every_corpus_input_returns() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    for (name, run) in TARGETS {
        let dir = corpus.join(name);
        let mut inputs: Vec<_> = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())).flatten().map(|e| e.path()).collect();
        inputs.sort();
        assert!(!inputs.is_empty(), "no corpus for {name}");
        for p in &inputs {
            let data = std::fs::read(p).unwrap();
            run(&data);
        }
        eprintln!("{name}: {} inputs replayed", inputs.len());
    }
}
