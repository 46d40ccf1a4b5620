//! Bilinear resizing (PyTorch's `align_corners = False`) and the ResNet stem's max pooling, on
//! NHWC maps: coordinates computed once per output row and column, channels as the vector.

use rayon::prelude::*;

use crate::Nhwc;

/// Bilinear taps (`align_corners = False`) of a resize from `inp` to `out` positions along one
/// axis (`inp ≥ 1`): for each output index, the two source indices and the weight of the second.
pub fn bilinear_taps(inp: usize, out: usize) -> Vec<(usize, usize, f32)> {
    let scale = inp as f64 / out as f64;
    (0..out)
        .map(|d| {
            let src = ((d as f64 + 0.5) * scale - 0.5).max(0.0);
            let i0 = (src as usize).min(inp - 1);
            let i1 = (i0 + 1).min(inp - 1);
            (i0, i1, (src - i0 as f64) as f32)
        })
        .collect()
}

/// Resizes `x` to `h × w` (`F.interpolate(mode="bilinear", align_corners=False)` with an output
/// size, or an integer scale factor, which maps coordinates the same way).
pub fn bilinear(x: &Nhwc, h: usize, w: usize) -> Nhwc {
    let c = x.c;
    // Every output value is written below (when the input has any).
    let mut out = if x.h == 0 || x.w == 0 { Nhwc::zeros(x.n, h, w, c) } else { Nhwc::for_overwrite(x.n, h, w, c) };
    if x.h == 0 || x.w == 0 || out.data.is_empty() {
        return out;
    }
    let (ty, tx) = (bilinear_taps(x.h, h), bilinear_taps(x.w, w));
    out.data.par_chunks_mut(w * c).enumerate().for_each(|(row, dst)| {
        let (b, oy) = (row / h, row % h);
        let (y0, y1, ly) = ty[oy];
        let plane = &x.data[b * x.h * x.w * c..(b + 1) * x.h * x.w * c];
        let r0 = &plane[y0 * x.w * c..(y0 + 1) * x.w * c];
        let r1 = &plane[y1 * x.w * c..(y1 + 1) * x.w * c];
        for (ox, o) in dst.chunks_mut(c).enumerate() {
            let (x0, x1, lx) = tx[ox];
            let (a, bb) = (&r0[x0 * c..(x0 + 1) * c], &r0[x1 * c..(x1 + 1) * c]);
            let (cc, d) = (&r1[x0 * c..(x0 + 1) * c], &r1[x1 * c..(x1 + 1) * c]);
            let (w00, w01, w10, w11) = ((1.0 - ly) * (1.0 - lx), (1.0 - ly) * lx, ly * (1.0 - lx), ly * lx);
            for i in 0..c {
                o[i] = w00 * a[i] + w01 * bb[i] + w10 * cc[i] + w11 * d[i];
            }
        }
    });
    out
}

/// 3×3 max pooling, stride 2, padding 1 (padding never wins), the ResNet stem's.
pub fn max_pool_3x3_s2(x: &Nhwc) -> Nhwc {
    let (ho, wo) = ((x.h + 2 - 3) / 2 + 1, (x.w + 2 - 3) / 2 + 1);
    let c = x.c;
    // Every output value is set (to −∞, then the window's maximum).
    let mut out = Nhwc::for_overwrite(x.n, ho, wo, c);
    out.data.par_chunks_mut(wo * c).enumerate().for_each(|(row, dst)| {
        let (b, oy) = (row / ho, row % ho);
        for (ox, o) in dst.chunks_mut(c).enumerate() {
            o.fill(f32::NEG_INFINITY);
            for iy in (2 * oy).saturating_sub(1)..(2 * oy + 2).min(x.h) {
                for ix in (2 * ox).saturating_sub(1)..(2 * ox + 2).min(x.w) {
                    let src = &x.data[((b * x.h + iy) * x.w + ix) * c..][..c];
                    o.iter_mut().zip(src).for_each(|(m, &v)| *m = m.max(v));
                }
            }
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bilinear_matches_pytorch_on_a_known_case() {
        // F.interpolate(torch.arange(6.).view(1,1,2,3), size=(4,6), mode="bilinear", align_corners=False)
        let x = Nhwc::from_nchw(&[0., 1., 2., 3., 4., 5.], 1, 1, 2, 3);
        let y = bilinear(&x, 4, 6).to_nchw();
        let want = [
            0.0, 0.25, 0.75, 1.25, 1.75, 2.0, //
            0.75, 1.0, 1.5, 2.0, 2.5, 2.75, //
            2.25, 2.5, 3.0, 3.5, 4.0, 4.25, //
            3.0, 3.25, 3.75, 4.25, 4.75, 5.0,
        ];
        for (g, w) in y.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{y:?}");
        }
        // Downsampling by 2 averages the two middle taps.
        let z = bilinear(&Nhwc::from_nchw(&[0., 1., 2., 3.], 1, 1, 1, 4), 1, 2).to_nchw();
        assert_eq!(z, vec![0.5, 2.5]);
    }

    #[test]
    fn max_pool_takes_the_window_maximum() {
        let vals: Vec<f32> = (0..25).map(|i| ((i * 7) % 11) as f32 - 5.0).collect();
        let y = max_pool_3x3_s2(&Nhwc::from_nchw(&vals, 1, 1, 5, 5));
        assert_eq!((y.h, y.w), (3, 3));
        for oy in 0..3 {
            for ox in 0..3 {
                let mut m = f32::NEG_INFINITY;
                for iy in (2 * oy) as isize - 1..=(2 * oy + 1) as isize {
                    for ix in (2 * ox) as isize - 1..=(2 * ox + 1) as isize {
                        if (0..5).contains(&iy) && (0..5).contains(&ix) {
                            m = m.max(vals[(iy * 5 + ix) as usize]);
                        }
                    }
                }
                assert_eq!(y.data[oy * 3 + ox], m);
            }
        }
    }
}
