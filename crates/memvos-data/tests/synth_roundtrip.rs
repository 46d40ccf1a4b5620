//! The synthetic generator writes a DAVIS root that the DAVIS reader reads back intact.

use memvos_data::layout::Davis;
use memvos_data::synth::{SynthConfig, generate_video, write_dataset};

#[test]
fn synthetic_dataset_reads_back_as_davis() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = SynthConfig { videos: 2, frames: 6, height: 64, width: 96, seed: 3, ..Default::default() };
    let mut seen = Vec::new();
    let summary = write_dataset(dir.path(), &cfg, |n| seen.push(n.to_string())).unwrap();
    assert_eq!(summary.videos, seen);
    assert_eq!(summary.frames, 12);
    let ds = Davis::new(dir.path(), 2017, "val").open().unwrap();
    assert_eq!(ds.videos.len(), 2);
    for (i, v) in ds.videos.iter().enumerate() {
        let expected = generate_video(&cfg, i).unwrap();
        assert_eq!(v.len(), 6);
        for t in 0..6 {
            let (frame, mask) = v.read_pair(t).unwrap();
            assert_eq!(mask.unwrap(), expected.masks[t], "masks are lossless");
            // JPEG is lossy, but close.
            let err: f64 = frame.rgb.iter().zip(expected.frames[t].rgb.iter()).map(|(&a, &b)| (a as f64 - b as f64).abs()).sum::<f64>()
                / frame.rgb.len() as f64;
            assert!(err < 8.0, "mean abs JPEG error {err}");
        }
    }
    assert!(dir.path().join("meta.json").is_file());
}
