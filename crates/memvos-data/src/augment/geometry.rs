//! Geometric transforms on `H × W × C` float images: a general remap with nearest, bilinear
//! and bicubic sampling, torchvision's affine parameterisation, resizing, cropping, flipping.

use ndarray::{Array3, ArrayView3, s};
use rand::Rng;
use serde::{Deserialize, Serialize};

/// How a warp samples its source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Interp {
    /// Nearest neighbour (label maps).
    Nearest,
    /// Bilinear.
    Bilinear,
    /// Bicubic.
    Bicubic,
}

fn cubic(t: f32) -> [f32; 4] {
    const A: f32 = -0.75;
    let near = |x: f32| ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    let far = |x: f32| ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A;
    [far(t + 1.0), near(t), near(1.0 - t), far(2.0 - t)]
}

/// Builds an `out_h × out_w` image whose pixel `(x, y)` samples `src` at `map(x, y)` (pixel
/// index coordinates, pixel centres at integers). Taps outside the source read `fill`
/// (one value per channel), as OpenCV's constant border does.
pub fn remap(
    src: ArrayView3<f32>,
    out_h: usize,
    out_w: usize,
    interp: Interp,
    fill: &[f32],
    map: impl Fn(usize, usize) -> (f32, f32),
) -> Array3<f32> {
    let (h, w, c) = src.dim();
    let mut out = Array3::<f32>::zeros((out_h, out_w, c));
    let tap = |yy: isize, xx: isize, k: usize| -> f32 {
        if yy < 0 || xx < 0 || yy >= h as isize || xx >= w as isize {
            fill[k.min(fill.len() - 1)]
        } else {
            src[[yy as usize, xx as usize, k]]
        }
    };
    for y in 0..out_h {
        for x in 0..out_w {
            let (sx, sy) = map(x, y);
            match interp {
                Interp::Nearest => {
                    let (xx, yy) = ((sx + 0.5).floor() as isize, (sy + 0.5).floor() as isize);
                    for k in 0..c {
                        out[[y, x, k]] = tap(yy, xx, k);
                    }
                }
                Interp::Bilinear => {
                    let (x0, y0) = (sx.floor(), sy.floor());
                    let (tx, ty) = (sx - x0, sy - y0);
                    let (x0, y0) = (x0 as isize, y0 as isize);
                    for k in 0..c {
                        let top = tap(y0, x0, k) * (1.0 - tx) + tap(y0, x0 + 1, k) * tx;
                        let bot = tap(y0 + 1, x0, k) * (1.0 - tx) + tap(y0 + 1, x0 + 1, k) * tx;
                        out[[y, x, k]] = top * (1.0 - ty) + bot * ty;
                    }
                }
                Interp::Bicubic => {
                    let (x0, y0) = (sx.floor(), sy.floor());
                    let (wx, wy) = (cubic(sx - x0), cubic(sy - y0));
                    let (x0, y0) = (x0 as isize, y0 as isize);
                    for k in 0..c {
                        let mut acc = 0.0;
                        for (j, wyj) in wy.iter().enumerate() {
                            let mut row = 0.0;
                            for (i, wxi) in wx.iter().enumerate() {
                                row += wxi * tap(y0 - 1 + j as isize, x0 - 1 + i as isize, k);
                            }
                            acc += wyj * row;
                        }
                        out[[y, x, k]] = acc;
                    }
                }
            }
        }
    }
    out
}

/// An affine transform in torchvision's terms: rotation (degrees, counter-clockwise),
/// translation (pixels), scale, and shear (degrees, x then y), about the image centre.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Affine {
    /// Rotation in degrees, counter-clockwise.
    pub angle: f32,
    /// Translation in pixels (x, y).
    pub translate: (f32, f32),
    /// Scale factor.
    pub scale: f32,
    /// Shear in degrees (x, y).
    pub shear: (f32, f32),
}

impl Affine {
    /// The transform that changes nothing.
    pub const IDENTITY: Affine = Affine {
        angle: 0.0,
        translate: (0.0, 0.0),
        scale: 1.0,
        shear: (0.0, 0.0),
    };

    /// The output → input matrix `[a b c; d e f]` of torchvision's
    /// `_get_inverse_affine_matrix`, for centre `(cx, cy)`.
    pub fn inverse_matrix(&self, cx: f32, cy: f32) -> [f32; 6] {
        let rot = self.angle.to_radians();
        let (sx, sy) = (self.shear.0.to_radians(), self.shear.1.to_radians());
        let (tx, ty) = self.translate;
        let a = (rot - sy).cos() / sy.cos();
        let b = -(rot - sy).cos() * sx.tan() / sy.cos() - rot.sin();
        let c = (rot - sy).sin() / sy.cos();
        let d = -(rot - sy).sin() * sx.tan() / sy.cos() + rot.cos();
        let mut m = [d, -b, 0.0, -c, a, 0.0].map(|v| v / self.scale);
        m[2] += m[0] * (-cx - tx) + m[1] * (-cy - ty) + cx;
        m[5] += m[3] * (-cx - tx) + m[4] * (-cy - ty) + cy;
        m
    }

    /// Applies the transform to an image; pixels from outside read `fill`.
    pub fn warp(&self, img: ArrayView3<f32>, interp: Interp, fill: &[f32]) -> Array3<f32> {
        let (h, w, _) = img.dim();
        let m = self.inverse_matrix(w as f32 * 0.5, h as f32 * 0.5);
        remap(img, h, w, interp, fill, |x, y| {
            // Pixel centres sit at +0.5 in the continuous frame of the matrix.
            let (px, py) = (x as f32 + 0.5, y as f32 + 0.5);
            (m[0] * px + m[1] * py + m[2] - 0.5, m[3] * px + m[4] * py + m[5] - 0.5)
        })
    }
}

/// Ranges of `RandomAffine` (torchvision: degrees ±d, translate as fractions, scale range,
/// shear ±s on x).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct AffineRange {
    /// Rotation range: ±degrees.
    pub degrees: f32,
    /// Translation range as fractions of the width and height.
    pub translate: (f32, f32),
    /// Scale range.
    pub scale: (f32, f32),
    /// Shear range on x: ±degrees.
    pub shear: f32,
}

impl AffineRange {
    /// Draws a transform for an image of this size, as torchvision's `RandomAffine.get_params`.
    pub fn sample<R: Rng>(&self, rng: &mut R, height: usize, width: usize) -> Affine {
        let uni = |rng: &mut R, a: f32, b: f32| if b > a { rng.random_range(a..b) } else { a };
        let angle = uni(rng, -self.degrees, self.degrees);
        let mx = self.translate.0 * width as f32;
        let my = self.translate.1 * height as f32;
        let translate = (uni(rng, -mx, mx).round(), uni(rng, -my, my).round());
        let scale = uni(rng, self.scale.0, self.scale.1);
        let shear = (uni(rng, -self.shear, self.shear), 0.0);
        Affine {
            angle,
            translate,
            scale,
            shear,
        }
    }
}

/// Resizes an `H × W × C` image to `out_h × out_w` (half-pixel centres, like PIL/PyTorch).
pub fn resize(img: ArrayView3<f32>, out_h: usize, out_w: usize, interp: Interp) -> Array3<f32> {
    let (h, w, c) = img.dim();
    if (h, w) == (out_h, out_w) {
        return img.to_owned();
    }
    let (sy, sx) = (h as f32 / out_h as f32, w as f32 / out_w as f32);
    let edge: Vec<f32> = vec![0.0; c];
    // Clamp the sampling position so resizing never reads the fill.
    remap(img, out_h, out_w, interp, &edge, |x, y| {
        let fx = ((x as f32 + 0.5) * sx - 0.5).clamp(0.0, (w - 1) as f32);
        let fy = ((y as f32 + 0.5) * sy - 0.5).clamp(0.0, (h - 1) as f32);
        (fx, fy)
    })
}

/// Size with the shorter side set to `short` (torchvision `Resize(int)`); `(height, width)`.
pub fn shorter_side_to(height: usize, width: usize, short: usize) -> (usize, usize) {
    if height <= width {
        (short, (short as f64 * width as f64 / height as f64) as usize)
    } else {
        ((short as f64 * height as f64 / width as f64) as usize, short)
    }
}

/// Crops `h × w` at `(top, left)`; parts outside the image read `fill` (so it also pads).
pub fn crop(img: ArrayView3<f32>, top: isize, left: isize, h: usize, w: usize, fill: &[f32]) -> Array3<f32> {
    let (ih, iw, c) = img.dim();
    let mut out = Array3::from_shape_fn((h, w, c), |(_, _, k)| fill[k.min(fill.len() - 1)]);
    let y0 = top.max(0) as usize;
    let x0 = left.max(0) as usize;
    let y1 = ((top + h as isize).max(0) as usize).min(ih);
    let x1 = ((left + w as isize).max(0) as usize).min(iw);
    if y1 > y0 && x1 > x0 {
        let oy = (y0 as isize - top) as usize;
        let ox = (x0 as isize - left) as usize;
        out.slice_mut(s![oy..oy + (y1 - y0), ox..ox + (x1 - x0), ..])
            .assign(&img.slice(s![y0..y1, x0..x1, ..]));
    }
    out
}

/// Mirrors left-right.
pub fn hflip(img: ArrayView3<f32>) -> Array3<f32> {
    img.slice(s![.., ..;-1, ..]).to_owned()
}

/// `RandomResizedCrop.get_params` of torchvision: a crop box `(top, left, h, w)` with area
/// fraction in `scale` and aspect ratio in `ratio` (log-uniform), ten tries, then a centre crop.
pub fn random_resized_crop_box<R: Rng>(
    rng: &mut R,
    height: usize,
    width: usize,
    scale: (f32, f32),
    ratio: (f32, f32),
) -> (usize, usize, usize, usize) {
    let area = (height * width) as f32;
    let (lr0, lr1) = (ratio.0.ln(), ratio.1.ln());
    for _ in 0..10 {
        let target = area * rng.random_range(scale.0..=scale.1);
        let aspect = rng.random_range(lr0..=lr1).exp();
        let w = (target * aspect).sqrt().round() as usize;
        let h = (target / aspect).sqrt().round() as usize;
        if w > 0 && h > 0 && w <= width && h <= height {
            let top = rng.random_range(0..=height - h);
            let left = rng.random_range(0..=width - w);
            return (top, left, h, w);
        }
    }
    let in_ratio = width as f32 / height as f32;
    let (h, w) = if in_ratio < ratio.0 {
        ((width as f32 / ratio.0).round() as usize, width)
    } else if in_ratio > ratio.1 {
        (height, (height as f32 * ratio.1).round() as usize)
    } else {
        (height, width)
    };
    ((height - h) / 2, (width - w) / 2, h, w)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp() -> Array3<f32> {
        Array3::from_shape_fn((9, 11, 1), |(y, x, _)| (y * 11 + x) as f32)
    }

    #[test]
    fn identity_affine_is_identity() {
        let img = ramp();
        for interp in [Interp::Nearest, Interp::Bilinear, Interp::Bicubic] {
            let out = Affine::IDENTITY.warp(img.view(), interp, &[0.0]);
            for (a, b) in out.iter().zip(img.iter()) {
                assert!((a - b).abs() < 1e-4, "{interp:?}");
            }
        }
    }

    #[test]
    fn rotation_by_180_reverses_the_image() {
        let img = Array3::from_shape_fn((4, 6, 1), |(y, x, _)| (y * 6 + x) as f32);
        let rot = Affine { angle: 180.0, ..Affine::IDENTITY };
        let out = rot.warp(img.view(), Interp::Nearest, &[-1.0]);
        for y in 0..4 {
            for x in 0..6 {
                assert_eq!(out[[y, x, 0]], img[[3 - y, 5 - x, 0]]);
            }
        }
    }

    #[test]
    fn translation_shifts_and_fills() {
        let img = ramp();
        let t = Affine { translate: (2.0, 1.0), ..Affine::IDENTITY };
        let out = t.warp(img.view(), Interp::Nearest, &[-1.0]);
        assert_eq!(out[[0, 0, 0]], -1.0);
        assert_eq!(out[[3, 5, 0]], img[[2, 3, 0]]);
    }

    #[test]
    fn crop_pads_with_fill_and_flip_mirrors() {
        let img = ramp();
        let c = crop(img.view(), -1, -2, 4, 4, &[7.0]);
        assert_eq!(c[[0, 0, 0]], 7.0);
        assert_eq!(c[[1, 2, 0]], img[[0, 0, 0]]);
        let f = hflip(img.view());
        assert_eq!(f[[2, 0, 0]], img[[2, 10, 0]]);
    }

    #[test]
    fn resized_crop_box_is_inside() {
        use rand::SeedableRng;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        for _ in 0..100 {
            let (t, l, h, w) = random_resized_crop_box(&mut rng, 480, 854, (0.36, 1.0), (0.75, 4.0 / 3.0));
            assert!(t + h <= 480 && l + w <= 854 && h > 0 && w > 0);
        }
        assert_eq!(shorter_side_to(480, 854, 384), (384, 683));
    }
}
