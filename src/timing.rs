//! Wall-clock timing of device work for the benchmark examples: a warm-up run, then the median
//! of several, each waiting for the device before the clock stops.

use std::time::Instant;

use burn::tensor::Device;

/// Median wall time in seconds of `repeats` runs of `f` (at least one) after one warm-up run.
pub fn median_seconds<T>(device: &Device, repeats: usize, mut f: impl FnMut() -> T) -> f64 {
    drop(f());
    let _ = device.sync();
    let mut t: Vec<f64> = (0..repeats.max(1))
        .map(|_| {
            let start = Instant::now();
            let out = f();
            let _ = device.sync();
            drop(out);
            start.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}
