//! Read kernels (burn's tensor kernels and memvos's CPU top-k read, one `ReadKernel` interface)
//! at 480p (1,620 query positions), C_k 64 and 128, memories of 1, 4, 16 and
//! 64 frames; throughput in memory positions. `cargo bench --bench affinity [-- FILTER]`.
//! The `kernel_table` example prints the same kernels with GFLOP/s against the machine's
//! matrix-product peak.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use memvos::burn::tensor::Device;
use memvos::memory::bench::Workload;
use memvos::model::cpu::read_kernels;

fn bench(c: &mut Criterion) {
    let device = Device::flex();
    for ck in [64, 128] {
        for frames in [1, 4, 16, 64] {
            let w = Workload::new(ck, frames, &device);
            let mut g = c.benchmark_group(format!("affinity_480p/ck{ck}/mem{frames}"));
            g.sample_size(10);
            g.throughput(Throughput::Elements(w.n() as u64));
            for k in read_kernels() {
                let mut call = k.prepare(&w).expect("benchmark workloads are well-formed");
                g.bench_function(BenchmarkId::from_parameter(k.name()), |b| b.iter(&mut call));
            }
            g.finish();
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
