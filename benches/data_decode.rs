//! Decoded 480p frame + mask pairs per second (JPEG frame, palette PNG mask).
//! Uses `../shared/data/davis-real` where present, otherwise synthetic 480p videos.

use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use memvos::data::layout::Davis;
use memvos::data::synth::{SynthConfig, write_dataset};

fn bench(c: &mut Criterion) {
    let real = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/davis-real");
    let tmp = tempfile::tempdir().unwrap();
    let (root, source) = if real.is_dir() {
        (real, "davis-real")
    } else {
        let cfg = SynthConfig { videos: 1, frames: 10, ..Default::default() };
        write_dataset(tmp.path(), &cfg, |_| {}).unwrap();
        (tmp.path().to_path_buf(), "synthetic")
    };
    let ds = Davis::new(&root, 2017, "val").open().unwrap();
    let video = &ds.videos[0];
    let n = video.len().min(10);
    let mut g = c.benchmark_group(format!("decode_480p_pairs/{source}"));
    g.throughput(Throughput::Elements(n as u64));
    g.sample_size(10);
    g.bench_function("frame+mask", |b| {
        b.iter(|| {
            for i in 0..n {
                let (f, m) = video.read_pair(i).unwrap();
                std::hint::black_box((f, m));
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
