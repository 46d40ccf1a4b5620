//! RGB frames and label maps, and their conversion to and from the network input
//! (methods.md §1.1–1.2): ImageNet normalisation, padding to a multiple of 16 and back,
//! and resizing with PyTorch's `F.interpolate` semantics (`align_corners = false`).

use ndarray::{Array2, Array3, ArrayView3, s};

use crate::error::{DataError, Result};

/// ImageNet mean of the RGB channels (applied after scaling to `[0, 1]`).
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet standard deviation of the RGB channels.
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];
/// Fill colour of training augmentation on the uint8 image (`im_mean` of the reference code).
pub const IM_MEAN_U8: [u8; 3] = [124, 116, 104];

/// An RGB video frame, `H × W × 3`, 8 bits per channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The pixels, `[H, W, 3]`.
    pub rgb: Array3<u8>,
}

/// A label map, `H × W`: 0 is background, 1..=254 object ids, 255 is "void" in DAVIS ground truth.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabelMap {
    /// The labels, `[H, W]`.
    pub labels: Array2<u8>,
}

impl Frame {
    /// Wraps an `H × W × 3` array.
    pub fn new(rgb: Array3<u8>) -> Result<Self> {
        if rgb.dim().2 != 3 {
            return Err(DataError::InvalidArgument(format!(
                "a frame needs 3 channels, got {}",
                rgb.dim().2
            )));
        }
        Ok(Frame { rgb })
    }

    /// Builds a frame from interleaved RGB bytes.
    pub fn from_raw(height: usize, width: usize, data: Vec<u8>) -> Result<Self> {
        let rgb = Array3::from_shape_vec((height, width, 3), data).map_err(|e| {
            DataError::InvalidArgument(format!("frame of {height}x{width}: {e}"))
        })?;
        Ok(Frame { rgb })
    }

    /// A frame filled with one colour.
    pub fn filled(height: usize, width: usize, colour: [u8; 3]) -> Self {
        Frame {
            rgb: Array3::from_shape_fn((height, width, 3), |(_, _, c)| colour[c]),
        }
    }

    /// Rows.
    pub fn height(&self) -> usize {
        self.rgb.dim().0
    }

    /// Columns.
    pub fn width(&self) -> usize {
        self.rgb.dim().1
    }

    /// The network input of methods.md §1.1: `(x / 255 − mean) / std` per channel, in float32,
    /// laid out `3 × H × W` (what `ToTensor` + `Normalize` produce).
    pub fn to_normalized(&self) -> Array3<f32> {
        let (h, w, _) = self.rgb.dim();
        let mut out = Array3::<f32>::zeros((3, h, w));
        for c in 0..3 {
            let (m, sd) = (IMAGENET_MEAN[c], IMAGENET_STD[c]);
            let src = self.rgb.slice(s![.., .., c]);
            out.slice_mut(s![c, .., ..])
                .zip_mut_with(&src, |o, &v| *o = (v as f32 / 255.0 - m) / sd);
        }
        out
    }

    /// The frame as `3 × H × W` floats in `[0, 1]` (no normalisation).
    pub fn to_unit_chw(&self) -> Array3<f32> {
        let (h, w, _) = self.rgb.dim();
        Array3::from_shape_fn((3, h, w), |(c, y, x)| self.rgb[[y, x, c]] as f32 / 255.0)
    }

    /// Inverse of [`Frame::to_unit_chw`], rounding and clamping to `[0, 255]`.
    pub fn from_unit_chw(chw: ArrayView3<f32>) -> Result<Self> {
        let (c, h, w) = chw.dim();
        if c != 3 {
            return Err(DataError::InvalidArgument(format!("expected 3 channels, got {c}")));
        }
        Ok(Frame {
            rgb: Array3::from_shape_fn((h, w, 3), |(y, x, c)| {
                (chw[[c, y, x]] * 255.0).round().clamp(0.0, 255.0) as u8
            }),
        })
    }
}

impl LabelMap {
    /// Wraps an `H × W` array of labels.
    pub fn new(labels: Array2<u8>) -> Self {
        LabelMap { labels }
    }

    /// An all-background map.
    pub fn zeros(height: usize, width: usize) -> Self {
        LabelMap {
            labels: Array2::zeros((height, width)),
        }
    }

    /// Rows.
    pub fn height(&self) -> usize {
        self.labels.dim().0
    }

    /// Columns.
    pub fn width(&self) -> usize {
        self.labels.dim().1
    }

    /// The object ids present (non-zero, excluding void 255), sorted.
    pub fn object_ids(&self) -> Vec<u8> {
        let mut seen = [false; 256];
        for &v in self.labels.iter() {
            seen[v as usize] = true;
        }
        (1..255u16)
            .filter(|&i| seen[i as usize])
            .map(|i| i as u8)
            .collect()
    }

    /// The largest label present, with void (255) counted as background.
    pub fn max_object_id(&self) -> u8 {
        self.labels
            .iter()
            .copied()
            .filter(|&v| v != 255)
            .max()
            .unwrap_or(0)
    }

    /// One-hot float masks `K × H × W` for the given object ids, in that order.
    pub fn one_hot(&self, ids: &[u8]) -> Array3<f32> {
        let (h, w) = self.labels.dim();
        let mut out = Array3::<f32>::zeros((ids.len(), h, w));
        for (k, &id) in ids.iter().enumerate() {
            out.slice_mut(s![k, .., ..])
                .zip_mut_with(&self.labels, |o, &v| *o = (v == id) as u8 as f32);
        }
        out
    }

    /// Label map from per-class scores `C × H × W`: the argmax over classes, mapped through
    /// `ids` (class `c` gets label `ids[c]`). Ties go to the lower class, as `torch.argmax` does.
    pub fn from_argmax(scores: ArrayView3<f32>, ids: &[u8]) -> Result<Self> {
        let (c, h, w) = scores.dim();
        if c != ids.len() || c == 0 {
            return Err(DataError::InvalidArgument(format!(
                "argmax over {c} channels with {} ids",
                ids.len()
            )));
        }
        let mut labels = Array2::<u8>::zeros((h, w));
        for y in 0..h {
            for x in 0..w {
                let mut best = 0;
                let mut best_v = scores[[0, y, x]];
                for k in 1..c {
                    let v = scores[[k, y, x]];
                    if v > best_v {
                        best_v = v;
                        best = k;
                    }
                }
                labels[[y, x]] = ids[best];
            }
        }
        Ok(LabelMap { labels })
    }

    /// Checks that this map is `height × width`; `path` names the file in the error.
    pub fn expect_size(&self, height: usize, width: usize, path: &std::path::Path) -> Result<()> {
        if self.height() != height || self.width() != width {
            return Err(DataError::SizeMismatch {
                path: path.to_path_buf(),
                got_w: self.width(),
                got_h: self.height(),
                want_w: width,
                want_h: height,
            });
        }
        Ok(())
    }
}

/// Padding that brings `H × W` up to a multiple of `divisor` (methods.md §1.2: left = ⌊d/2⌋,
/// right = d − left; the same for top/bottom).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Pad {
    /// Rows added above.
    pub top: usize,
    /// Rows added below.
    pub bottom: usize,
    /// Columns added on the left.
    pub left: usize,
    /// Columns added on the right.
    pub right: usize,
}

impl Pad {
    /// The padding of STCN's `pad_divide_by(img, divisor)` for an image of `height × width`.
    /// A divisor of 0 is an error.
    pub fn to_multiple(height: usize, width: usize, divisor: usize) -> crate::Result<Self> {
        if divisor == 0 {
            return Err(crate::DataError::InvalidArgument("padding to a multiple of 0".into()));
        }
        let split = |n: usize| {
            let d = (divisor - n % divisor) % divisor;
            (d / 2, d - d / 2)
        };
        let (top, bottom) = split(height);
        let (left, right) = split(width);
        Ok(Pad {
            top,
            bottom,
            left,
            right,
        })
    }

    /// The size of an `height × width` map after this padding.
    pub fn padded_size(&self, height: usize, width: usize) -> (usize, usize) {
        (height + self.top + self.bottom, width + self.left + self.right)
    }
}

/// Zero-pads a `C × H × W` array (zeros on the normalised image are the mean colour).
pub fn pad_chw(x: ArrayView3<f32>, pad: Pad) -> Array3<f32> {
    let (c, h, w) = x.dim();
    let (ph, pw) = pad.padded_size(h, w);
    let mut out = Array3::<f32>::zeros((c, ph, pw));
    out.slice_mut(s![.., pad.top..pad.top + h, pad.left..pad.left + w])
        .assign(&x);
    out
}

/// Crops the padding of [`pad_chw`] away again.
pub fn unpad_chw(x: ArrayView3<f32>, pad: Pad) -> Array3<f32> {
    let (_, h, w) = x.dim();
    x.slice(s![.., pad.top..h - pad.bottom, pad.left..w - pad.right])
        .to_owned()
}

/// Source index and weight for linear interpolation along one axis, PyTorch's
/// `area_pixel_compute_source_index` with `align_corners = false`.
fn linear_taps(out_len: usize, in_len: usize) -> Vec<(usize, usize, f32)> {
    let scale = in_len as f32 / out_len as f32;
    (0..out_len)
        .map(|o| {
            let src = ((o as f32 + 0.5) * scale - 0.5).max(0.0);
            let i0 = (src.floor() as usize).min(in_len - 1);
            let i1 = (i0 + 1).min(in_len - 1);
            (i0, i1, src - i0 as f32)
        })
        .collect()
}

/// Bilinear resize of `C × H × W` with `align_corners = false` (PyTorch's default).
pub fn resize_bilinear(x: ArrayView3<f32>, out_h: usize, out_w: usize) -> Array3<f32> {
    let (c, h, w) = x.dim();
    if (h, w) == (out_h, out_w) {
        return x.to_owned();
    }
    let ty = linear_taps(out_h, h);
    let tx = linear_taps(out_w, w);
    Array3::from_shape_fn((c, out_h, out_w), |(k, oy, ox)| {
        let (y0, y1, ly) = ty[oy];
        let (x0, x1, lx) = tx[ox];
        let top = (1.0 - lx) * x[[k, y0, x0]] + lx * x[[k, y0, x1]];
        let bot = (1.0 - lx) * x[[k, y1, x0]] + lx * x[[k, y1, x1]];
        (1.0 - ly) * top + ly * bot
    })
}

/// Keys cubic convolution weights with `A = −0.75` (PyTorch's bicubic).
fn cubic_weights(t: f32) -> [f32; 4] {
    const A: f32 = -0.75;
    let near = |x: f32| ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    let far = |x: f32| ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A;
    [far(t + 1.0), near(t), near(1.0 - t), far(2.0 - t)]
}

fn cubic_taps(out_len: usize, in_len: usize) -> Vec<([usize; 4], [f32; 4])> {
    let scale = in_len as f32 / out_len as f32;
    (0..out_len)
        .map(|o| {
            let src = (o as f32 + 0.5) * scale - 0.5;
            let i = src.floor();
            let t = src - i;
            let idx = |d: isize| (i as isize + d).clamp(0, in_len as isize - 1) as usize;
            ([idx(-1), idx(0), idx(1), idx(2)], cubic_weights(t))
        })
        .collect()
}

/// Bicubic resize of `C × H × W` with `align_corners = false` (PyTorch's `mode="bicubic"`),
/// used for YouTube-VOS frames (methods.md §1.2). Values may overshoot the input range.
pub fn resize_bicubic(x: ArrayView3<f32>, out_h: usize, out_w: usize) -> Array3<f32> {
    let (c, h, w) = x.dim();
    if (h, w) == (out_h, out_w) {
        return x.to_owned();
    }
    let ty = cubic_taps(out_h, h);
    let tx = cubic_taps(out_w, w);
    // Separable: rows first, then columns.
    let mut tmp = Array3::<f32>::zeros((c, h, out_w));
    for k in 0..c {
        for y in 0..h {
            for (ox, (ix, wx)) in tx.iter().enumerate() {
                tmp[[k, y, ox]] = (0..4).map(|j| wx[j] * x[[k, y, ix[j]]]).sum();
            }
        }
    }
    Array3::from_shape_fn((c, out_h, out_w), |(k, oy, ox)| {
        let (iy, wy) = &ty[oy];
        (0..4).map(|j| wy[j] * tmp[[k, iy[j], ox]]).sum()
    })
}

/// Nearest-neighbour resize of a label map (PyTorch's `mode="nearest"`:
/// source index `⌊dst · in / out⌋`).
pub fn resize_nearest(labels: &LabelMap, out_h: usize, out_w: usize) -> LabelMap {
    let (h, w) = labels.labels.dim();
    let iy: Vec<usize> = (0..out_h)
        .map(|o| ((o as f32 * (h as f32 / out_h as f32)).floor() as usize).min(h - 1))
        .collect();
    let ix: Vec<usize> = (0..out_w)
        .map(|o| ((o as f32 * (w as f32 / out_w as f32)).floor() as usize).min(w - 1))
        .collect();
    LabelMap {
        labels: Array2::from_shape_fn((out_h, out_w), |(y, x)| labels.labels[[iy[y], ix[x]]]),
    }
}

/// The size YouTube-VOS inference resizes a frame to: shorter side 480, longer side
/// `⌊480 · long / short⌋` (methods.md §1.2; 1280×720 → 853×480). Returns `(height, width)`.
pub fn youtube_inference_size(height: usize, width: usize, short_side: usize) -> (usize, usize) {
    if height <= width {
        (short_side, short_side * width / height)
    } else {
        (short_side * height / width, short_side)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;

    #[test]
    fn pad_matches_stcn_split() {
        let p = Pad::to_multiple(480, 854, 16).unwrap();
        assert_eq!(p, Pad { top: 0, bottom: 0, left: 5, right: 5 });
        let p = Pad::to_multiple(97, 131, 16).unwrap();
        assert_eq!(p.padded_size(97, 131), (112, 144));
        assert_eq!((p.top, p.bottom, p.left, p.right), (7, 8, 6, 7));
    }

    #[test]
    fn pad_then_unpad_is_identity() {
        let x = Array3::from_shape_fn((2, 5, 7), |(c, y, x)| (c * 100 + y * 10 + x) as f32);
        let p = Pad::to_multiple(5, 7, 16).unwrap();
        assert!(Pad::to_multiple(5, 7, 0).is_err());
        let padded = pad_chw(x.view(), p);
        assert_eq!(padded.dim(), (2, 16, 16));
        assert_eq!(padded[[0, 0, 0]], 0.0);
        assert_eq!(unpad_chw(padded.view(), p), x);
    }

    #[test]
    fn normalisation_matches_imagenet_formula() {
        let f = Frame::filled(2, 2, [255, 0, 128]);
        let n = f.to_normalized();
        assert!((n[[0, 0, 0]] - (1.0 - 0.485) / 0.229).abs() < 1e-6);
        assert!((n[[1, 1, 1]] - (0.0 - 0.456) / 0.224).abs() < 1e-6);
        assert!((n[[2, 0, 1]] - (128.0 / 255.0 - 0.406) / 0.225).abs() < 1e-6);
    }

    #[test]
    fn bilinear_matches_pytorch_on_a_small_case() {
        // torch.nn.functional.interpolate(torch.arange(4.).view(1,1,1,4), size=(1,8),
        // mode="bilinear", align_corners=False)
        let x = Array3::from_shape_fn((1, 1, 4), |(_, _, i)| i as f32);
        let y = resize_bilinear(x.view(), 1, 8);
        let want = [0.0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3.0];
        for (a, b) in y.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
        // Down-sampling by 2 averages pairs.
        let y = resize_bilinear(x.view(), 1, 2);
        assert_eq!(y.as_slice().unwrap(), &[0.5, 2.5]);
    }

    #[test]
    fn bicubic_matches_pytorch_on_a_small_case() {
        // Keys' kernel (A = -0.75) with PyTorch's source index (o + 0.5) / 2 - 0.5 and clamped
        // taps, evaluated by hand for [0, 1, 4, 9] -> 8 samples.
        let x = Array3::from_shape_vec((1, 1, 4), vec![0.0, 1.0, 4.0, 9.0]).unwrap();
        let y = resize_bicubic(x.view(), 1, 8);
        let want = [-0.10546875, 0.12109375, 0.45703125, 1.609375, 2.828125, 5.44921875, 7.97265625, 9.52734375];
        for (a, b) in y.iter().zip(want) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }

    #[test]
    fn nearest_picks_floor_of_scaled_index() {
        let l = LabelMap::new(Array2::from_shape_vec((1, 4), vec![1, 2, 3, 4]).unwrap());
        let up = resize_nearest(&l, 1, 8);
        assert_eq!(up.labels.as_slice().unwrap(), &[1, 1, 2, 2, 3, 3, 4, 4]);
        let down = resize_nearest(&l, 1, 3);
        assert_eq!(down.labels.as_slice().unwrap(), &[1, 2, 3]);
    }

    #[test]
    fn youtube_size_rule() {
        assert_eq!(youtube_inference_size(720, 1280, 480), (480, 853));
        assert_eq!(youtube_inference_size(1280, 720, 480), (853, 480));
    }

    #[test]
    fn argmax_and_one_hot_round_trip() {
        let l = LabelMap::new(Array2::from_shape_vec((2, 3), vec![0, 1, 3, 3, 0, 1]).unwrap());
        assert_eq!(l.object_ids(), vec![1, 3]);
        let ids = [0u8, 1, 3];
        let oh = l.one_hot(&ids);
        assert_eq!(LabelMap::from_argmax(oh.view(), &ids).unwrap(), l);
    }
}
