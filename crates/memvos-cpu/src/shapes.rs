//! The distinct convolutions of one STCN frame at 480p (854×480 padded to 864×480), with how
//! many times each runs per frame: the workload of the `conv_shapes` benchmark and of the
//! PyTorch script beside it (`benches/pytorch_reference.py` lists the same table).

use crate::{ConvSpec, Nhwc};

/// One convolution shape: its spec, its input map and how often a frame runs it.
#[derive(Clone, Copy, Debug)]
pub struct ConvShape {
    /// Where it runs (`key.layer3.3x3`, `decoder.compress`, ...).
    pub name: &'static str,
    /// The convolution.
    pub spec: ConvSpec,
    /// Input height and width.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Convolutions of this shape in one frame with one object (memory encoding counted once).
    pub count: usize,
}

const fn c(name: &'static str, cin: usize, cout: usize, k: usize, stride: usize, h: usize, w: usize, count: usize) -> ConvShape {
    ConvShape { name, spec: ConvSpec::new(cin, cout, k, stride, k / 2), h, w, count }
}

/// STCN's convolutions at 480p: ResNet-50 key encoder to layer3, the fused key projection and
/// compression, the ResNet-18 value encoder (5 input channels) with its fusion block, and the
/// decoder. Grouped by shape; `count` says how many of each a frame runs.
pub const STCN_480P: &[ConvShape] = &[
    c("key.conv1 7x7/2", 3, 64, 7, 2, 480, 864, 1),
    c("key.layer1 1x1 64-64", 64, 64, 1, 1, 120, 216, 1),
    c("key.layer1 3x3", 64, 64, 3, 1, 120, 216, 3),
    c("key.layer1 1x1 64-256", 64, 256, 1, 1, 120, 216, 4),
    c("key.layer1 1x1 256-64", 256, 64, 1, 1, 120, 216, 2),
    c("key.layer2 1x1 256-128", 256, 128, 1, 1, 120, 216, 1),
    c("key.layer2 3x3/2", 128, 128, 3, 2, 120, 216, 1),
    c("key.layer2 downsample 1x1/2", 256, 512, 1, 2, 120, 216, 1),
    c("key.layer2 1x1 128-512", 128, 512, 1, 1, 60, 108, 4),
    c("key.layer2 1x1 512-128", 512, 128, 1, 1, 60, 108, 3),
    c("key.layer2 3x3", 128, 128, 3, 1, 60, 108, 3),
    c("key.layer3 1x1 512-256", 512, 256, 1, 1, 60, 108, 1),
    c("key.layer3 3x3/2", 256, 256, 3, 2, 60, 108, 1),
    c("key.layer3 downsample 1x1/2", 512, 1024, 1, 2, 60, 108, 1),
    c("key.layer3 1x1 256-1024", 256, 1024, 1, 1, 30, 54, 6),
    c("key.layer3 1x1 1024-256", 1024, 256, 1, 1, 30, 54, 5),
    c("key.layer3 3x3", 256, 256, 3, 1, 30, 54, 5),
    c("key_proj+key_comp 3x3", 1024, 576, 3, 1, 30, 54, 1),
    c("value.conv1 7x7/2", 5, 64, 7, 2, 480, 864, 1),
    c("value.layer1 3x3", 64, 64, 3, 1, 120, 216, 4),
    c("value.layer2 3x3/2", 64, 128, 3, 2, 120, 216, 1),
    c("value.layer2 downsample 1x1/2", 64, 128, 1, 2, 120, 216, 1),
    c("value.layer2 3x3", 128, 128, 3, 1, 60, 108, 3),
    c("value.layer3 3x3/2", 128, 256, 3, 2, 60, 108, 1),
    c("value.layer3 downsample 1x1/2", 128, 256, 1, 2, 60, 108, 1),
    c("value.layer3 3x3", 256, 256, 3, 1, 30, 54, 3),
    c("value.fuser 3x3 1280-512", 1280, 512, 3, 1, 30, 54, 2),
    c("value.fuser 3x3 512-512", 512, 512, 3, 1, 30, 54, 3),
    c("decoder.compress 3x3 1024-512", 1024, 512, 3, 1, 30, 54, 2),
    c("decoder.compress 3x3 512-512", 512, 512, 3, 1, 30, 54, 1),
    c("decoder.up16_8 skip 3x3 512-512", 512, 512, 3, 1, 60, 108, 1),
    c("decoder.up16_8 3x3 512-256", 512, 256, 3, 1, 60, 108, 2),
    c("decoder.up16_8 3x3 256-256", 256, 256, 3, 1, 60, 108, 1),
    c("decoder.up8_4 3x3 256-256", 256, 256, 3, 1, 120, 216, 3),
    c("decoder.pred 3x3 256-1", 256, 1, 3, 1, 120, 216, 1),
];

impl ConvShape {
    /// Floating-point operations of one run (2 × multiply-adds of the direct method).
    pub fn flops(&self) -> f64 {
        self.spec.flops(1, self.h, self.w)
    }

    /// A deterministic input map (values in [-1, 1)).
    pub fn input(&self) -> Nhwc {
        let mut x = Nhwc::zeros(1, self.h, self.w, self.spec.cin);
        fill(&mut x.data, 1);
        x
    }

    /// Deterministic weights `[cout][cin][k][k]` and bias, scaled like a He initialisation.
    pub fn weights(&self) -> (Vec<f32>, Vec<f32>) {
        let s = self.spec;
        let mut w = vec![0.0; s.cout * s.cin * s.k * s.k];
        fill(&mut w, 2);
        let scale = (2.0 / (s.cin * s.k * s.k) as f32).sqrt();
        w.iter_mut().for_each(|v| *v *= scale);
        let mut b = vec![0.0; s.cout];
        fill(&mut b, 3);
        (w, b)
    }
}

/// The sum over [`STCN_480P`] of `count × flops`: one frame's convolution work.
pub fn stcn_480p_flops() -> f64 {
    STCN_480P.iter().map(|s| s.count as f64 * s.flops()).sum()
}

fn fill(v: &mut [f32], seed: u64) {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for x in v {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        *x = ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0;
    }
}
