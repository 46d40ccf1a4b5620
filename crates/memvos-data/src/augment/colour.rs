//! Photometric augmentation on `H × W × 3` float images in `[0, 255]`: torchvision's
//! `ColorJitter` (brightness, contrast, saturation, hue, applied in a random order) and
//! `RandomGrayscale`.

use ndarray::{Array3, ArrayViewMut3, Axis};
use rand::Rng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

/// Jitter strengths: factors are drawn from `[max(0, 1 − s), 1 + s]`, the hue shift from
/// `[−hue, hue]` (fraction of a full turn, at most 0.5).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ColorJitter {
    /// Brightness strength.
    pub brightness: f32,
    /// Contrast strength.
    pub contrast: f32,
    /// Saturation strength.
    pub saturation: f32,
    /// Hue strength (fraction of a turn, at most 0.5).
    pub hue: f32,
}

/// The drawn factors of one jitter, applied identically wherever it is reused.
#[derive(Clone, Debug, PartialEq)]
pub struct JitterDraw {
    order: [usize; 4],
    factors: [Option<f32>; 4],
}

fn luma(r: f32, g: f32, b: f32) -> f32 {
    0.299 * r + 0.587 * g + 0.114 * b
}

impl ColorJitter {
    /// No jitter.
    pub const NONE: ColorJitter = ColorJitter {
        brightness: 0.0,
        contrast: 0.0,
        saturation: 0.0,
        hue: 0.0,
    };

    /// Draws the factors and their order (torchvision's `ColorJitter` applies the four in random order).
    pub fn draw<R: Rng>(&self, rng: &mut R) -> JitterDraw {
        let mut order = [0, 1, 2, 3];
        order.shuffle(rng);
        let mut factor = |s: f32| (s > 0.0).then(|| rng.random_range((1.0 - s).max(0.0)..=1.0 + s));
        let b = factor(self.brightness);
        let c = factor(self.contrast);
        let s = factor(self.saturation);
        let h = (self.hue > 0.0).then(|| rng.random_range(-self.hue..=self.hue));
        JitterDraw {
            order,
            factors: [b, c, s, h],
        }
    }
}

impl JitterDraw {
    /// Applies the drawn jitter to an `H × W × 3` image with values in `[0, 1]`.
    pub fn apply(&self, img: &mut Array3<f32>) {
        for &op in &self.order {
            let Some(f) = self.factors[op] else { continue };
            match op {
                0 => img.mapv_inplace(|v| (v * f).clamp(0.0, 255.0)),
                1 => {
                    let n = (img.len() / 3).max(1) as f32;
                    let mean = img
                        .lanes(Axis(2))
                        .into_iter()
                        .map(|p| luma(p[0], p[1], p[2]))
                        .sum::<f32>()
                        / n;
                    img.mapv_inplace(|v| (mean + f * (v - mean)).clamp(0.0, 255.0));
                }
                2 => {
                    for mut p in img.lanes_mut(Axis(2)) {
                        let g = luma(p[0], p[1], p[2]);
                        for k in 0..3 {
                            p[k] = (g + f * (p[k] - g)).clamp(0.0, 255.0);
                        }
                    }
                }
                _ => shift_hue(img.view_mut(), f),
            }
        }
    }
}

fn shift_hue(mut img: ArrayViewMut3<f32>, shift: f32) {
    for mut p in img.lanes_mut(Axis(2)) {
        let (r, g, b) = (p[0] / 255.0, p[1] / 255.0, p[2] / 255.0);
        let max = r.max(g).max(b);
        let min = r.min(g).min(b);
        let d = max - min;
        if d <= 0.0 {
            continue;
        }
        let mut h = if max == r {
            ((g - b) / d).rem_euclid(6.0)
        } else if max == g {
            (b - r) / d + 2.0
        } else {
            (r - g) / d + 4.0
        } / 6.0;
        h = (h + shift).rem_euclid(1.0);
        let (s, v) = (d / max, max);
        let i = (h * 6.0).floor();
        let f = h * 6.0 - i;
        let (pp, q, t) = (v * (1.0 - s), v * (1.0 - s * f), v * (1.0 - s * (1.0 - f)));
        let (nr, ng, nb) = match i as i32 % 6 {
            0 => (v, t, pp),
            1 => (q, v, pp),
            2 => (pp, v, t),
            3 => (pp, q, v),
            4 => (t, pp, v),
            _ => (v, pp, q),
        };
        p[0] = nr * 255.0;
        p[1] = ng * 255.0;
        p[2] = nb * 255.0;
    }
}

/// Replaces the colours by their luma (kept as 3 equal channels).
pub fn grayscale(img: &mut Array3<f32>) {
    for mut p in img.lanes_mut(Axis(2)) {
        let g = luma(p[0], p[1], p[2]);
        p.fill(g);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn zero_jitter_changes_nothing() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let img = Array3::from_shape_fn((4, 5, 3), |(y, x, c)| (y * 40 + x * 10 + c * 3) as f32);
        let mut out = img.clone();
        ColorJitter::NONE.draw(&mut rng).apply(&mut out);
        assert_eq!(out, img);
    }

    #[test]
    fn full_hue_turn_is_identity_and_grey_is_grey() {
        let img = Array3::from_shape_fn((3, 3, 3), |(y, x, c)| ((y * 70 + x * 30 + c * 50) % 256) as f32);
        let mut out = img.clone();
        shift_hue(out.view_mut(), 1.0);
        for (a, b) in out.iter().zip(img.iter()) {
            assert!((a - b).abs() < 1e-3);
        }
        let mut g = img.clone();
        grayscale(&mut g);
        assert!(g.lanes(Axis(2)).into_iter().all(|p| p[0] == p[1] && p[1] == p[2]));
    }

    #[test]
    fn jitter_stays_in_range() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let j = ColorJitter { brightness: 0.5, contrast: 0.5, saturation: 0.5, hue: 0.5 };
        let mut img = Array3::from_shape_fn((6, 6, 3), |(y, x, c)| ((y * 50 + x * 20 + c * 90) % 256) as f32);
        j.draw(&mut rng).apply(&mut img);
        assert!(img.iter().all(|&v| (0.0..=255.0).contains(&v)));
    }
}
