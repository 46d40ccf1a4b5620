//! Every distinct convolution of one STCN frame at 480p (`memvos::cpu::shapes::STCN_480P`) on
//! memvos's CPU kernels and on burn's `conv2d`, throughput in FLOP (criterion's "elem/s" are
//! FLOP/s), beside the machine's matrix-product peak (`matmul_peak`, a 2048³ float32 product
//! on every thread). `cargo bench --bench conv_shapes [-- FILTER]`;
//! `benches/pytorch_reference.py --convs` times the same shapes with PyTorch.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use memvos::burn::tensor::module::conv2d;
use memvos::burn::tensor::ops::ConvOptions;
use memvos::burn::tensor::{Device, Tensor, TensorData};
use memvos::cpu::shapes::STCN_480P;
use memvos::cpu::{Fuse, PackedConv, Winograd};

fn bench(c: &mut Criterion) {
    let device = Device::flex();
    let n = 2048;
    let a = Tensor::<2>::ones([n, n], &device);
    let b = Tensor::<2>::ones([n, n], &device);
    let mut g = c.benchmark_group("matmul_peak");
    g.sample_size(10);
    g.throughput(Throughput::Elements(2 * (n as u64).pow(3)));
    g.bench_function("2048", |bch| bch.iter(|| a.clone().matmul(b.clone()).into_data()));
    g.finish();

    for shape in STCN_480P {
        let s = shape.spec;
        let x = shape.input();
        let (w, bias) = shape.weights();
        let mut g = c.benchmark_group(format!("stcn_480p_conv/{}", shape.name));
        g.sample_size(10);
        g.throughput(Throughput::Elements(shape.flops() as u64));
        let memvos = PackedConv::new(s, &w, Some(&bias), None, Some(Winograd::F4));
        g.bench_function(BenchmarkId::from_parameter("memvos"), |bch| bch.iter(|| memvos.forward(&x, Fuse { relu: true, ..Fuse::default() })));
        let xt = Tensor::<4>::from_data(TensorData::new(x.to_nchw(), [1, s.cin, shape.h, shape.w]), &device);
        let wt = Tensor::<4>::from_data(TensorData::new(w.clone(), [s.cout, s.cin, s.k, s.k]), &device);
        let bt = Tensor::<1>::from_data(TensorData::new(bias.clone(), [s.cout]), &device);
        let opts = ConvOptions::new([s.stride; 2], [s.pad; 2], [1, 1], 1);
        g.bench_function(BenchmarkId::from_parameter("burn"), |bch| {
            bch.iter(|| memvos::burn::tensor::activation::relu(conv2d(xt.clone(), wt.clone(), Some(bt.clone()), opts.clone())).into_data())
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
