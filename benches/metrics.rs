//! Per-frame J and F at 480p (object-frames per second), single-threaded, and the whole
//! `davis-real` evaluation (PNG decoding included, sequences and frames in parallel), which the
//! Python toolkit does in about 8.4 s (17 object-frames/s) on this machine.

use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use memvos::data::layout::Davis;
use memvos::data::read_mask;
use memvos::eval::metrics::{boundary_radius, frame_scores};
use memvos::eval::{EvalOptions, evaluate};
use ndarray::Array2;

fn synthetic_pair() -> (Array2<u8>, Array2<u8>) {
    // A blob with a wavy outline and a shifted, slightly different prediction.
    let blob = |dy: f64, dx: f64, wob: f64| {
        Array2::from_shape_fn((480, 854), |(y, x)| {
            let (u, v) = (x as f64 - 427.0 - dx, y as f64 - 240.0 - dy);
            let r = (u * u + v * v).sqrt();
            let a = v.atan2(u);
            (r < 150.0 + 20.0 * (5.0 * a + wob).sin()) as u8
        })
    };
    (blob(0.0, 0.0, 0.0), blob(4.0, 6.0, 0.3))
}

fn bench(c: &mut Criterion) {
    let real = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/davis-real");
    let (gt, pred, source) = if real.is_dir() {
        let gt = read_mask(&real.join("Annotations/480p/dog/00030.png")).unwrap().labels.labels;
        let pred = read_mask(&real.join("results/osvos/dog/00030.png")).unwrap().labels.labels;
        (gt, pred, "davis-real dog/00030")
    } else {
        let (g, p) = synthetic_pair();
        (g, p, "synthetic blob")
    };
    let r = boundary_radius(480, 854, 0.008).unwrap();
    let mut g = c.benchmark_group(format!("per_frame_j_f_480p/{source}"));
    g.throughput(Throughput::Elements(1));
    g.bench_function("one object-frame", |b| b.iter(|| frame_scores(gt.view(), pred.view(), 1, r)));
    g.finish();

    if real.is_dir() {
        let ds = Davis::new(&real, 2017, "val").open().unwrap();
        let mut g = c.benchmark_group("evaluate_davis_real");
        g.throughput(Throughput::Elements(144)); // scored object-frames
        g.sample_size(10);
        g.bench_function("144 object-frames, PNG decoding included", |b| {
            b.iter(|| evaluate(&ds, &real.join("results/osvos"), &EvalOptions::default(), |_| {}).unwrap())
        });
        g.finish();
    } else {
        eprintln!("SKIPPED evaluate_davis_real: ../shared/data/davis-real is absent");
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
