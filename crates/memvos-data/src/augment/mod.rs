//! Training augmentation (methods.md §4): random affine, thin-plate-spline warps, colour
//! jitter, greyscale, random (resized) crops and flips, applied identically to a frame and
//! its mask; [`StaticToVideo`] turns one static image into a 3-frame pseudo-video (stage 0),
//! [`VideoAugment`] augments a sampled video clip (stages 1–3).

pub mod colour;
pub mod geometry;
pub mod tps;

use ndarray::{Array2, Array3, Axis};
use rand::Rng;
use serde::{Deserialize, Serialize};

pub use colour::{ColorJitter, grayscale};
pub use geometry::{Affine, AffineRange, Interp, crop, hflip, random_resized_crop_box, remap, resize};
pub use tps::{ThinPlateSpline, random_control_points, tps_warp};

use crate::error::{DataError, Result};
use crate::frame::{Frame, IM_MEAN_U8, LabelMap};

/// A standard normal sample (Box–Muller).
pub(crate) fn normal<R: Rng>(rng: &mut R) -> f64 {
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

const IM_FILL: [f32; 3] = [IM_MEAN_U8[0] as f32, IM_MEAN_U8[1] as f32, IM_MEAN_U8[2] as f32];

fn frame_to_f32(f: &Frame) -> Array3<f32> {
    f.rgb.mapv(|v| v as f32)
}

fn f32_to_frame(a: &Array3<f32>) -> Frame {
    Frame {
        rgb: a.mapv(|v| v.round().clamp(0.0, 255.0) as u8),
    }
}

fn check_prob(name: &str, p: f32) -> Result<()> {
    if (0.0..=1.0).contains(&p) {
        Ok(())
    } else {
        Err(DataError::InvalidArgument(format!("{name} must be a probability, got {p}")))
    }
}

/// Thin-plate-spline warp settings (methods.md §4.2).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct TpsConfig {
    /// Probability that a frame is warped.
    pub probability: f32,
    /// Control points per side of the grid.
    pub control_points: usize,
    /// Standard deviation of the target jitter, in normalised units.
    pub sigma: f64,
}

/// Stage-0 pseudo-video settings; defaults are methods.md §4.1.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StaticToVideo {
    /// Frames of the pseudo-video.
    pub frames: usize,
    /// Output side (square).
    pub size: usize,
    /// The affine transform shared by all frames.
    pub shared_affine: AffineRange,
    /// Probability of a horizontal flip (all frames).
    pub hflip_probability: f32,
    /// Colour jitter shared by all frames.
    pub shared_jitter: ColorJitter,
    /// Probability of turning the frames grey.
    pub grayscale_probability: f32,
    /// Each frame's own affine transform.
    pub frame_affine: AffineRange,
    /// Each frame's own colour jitter.
    pub frame_jitter: ColorJitter,
    /// The thin-plate-spline warp.
    pub tps: TpsConfig,
}

impl Default for StaticToVideo {
    fn default() -> Self {
        StaticToVideo {
            frames: 3,
            size: 384,
            shared_affine: AffineRange { degrees: 0.0, translate: (0.0, 0.0), scale: (0.8, 1.5), shear: 0.0 },
            hflip_probability: 0.5,
            shared_jitter: ColorJitter { brightness: 0.1, contrast: 0.05, saturation: 0.05, hue: 0.05 },
            grayscale_probability: 0.05,
            frame_affine: AffineRange { degrees: 20.0, translate: (0.0, 0.0), scale: (0.9, 1.1), shear: 10.0 },
            frame_jitter: ColorJitter { brightness: 0.1, contrast: 0.05, saturation: 0.05, hue: 0.0 },
            tps: TpsConfig { probability: 0.33, control_points: 12, sigma: 0.02 },
        }
    }
}

/// Frames and soft masks (values in `[0, 1]`; the class map is `mask > 0.5`).
#[derive(Clone, Debug)]
pub struct PseudoVideo {
    /// The frames.
    pub frames: Vec<Frame>,
    /// Each frame's soft mask.
    pub masks: Vec<Array2<f32>>,
}

impl StaticToVideo {
    fn validate(&self) -> Result<()> {
        if self.frames == 0 || self.size == 0 {
            return Err(DataError::InvalidArgument("frames and size must be positive".into()));
        }
        check_prob("hflip_probability", self.hflip_probability)?;
        check_prob("grayscale_probability", self.grayscale_probability)?;
        check_prob("tps.probability", self.tps.probability)
    }

    /// Turns an image and its mask (8-bit, soft) into a pseudo-video.
    pub fn apply<R: Rng>(&self, frame: &Frame, mask: &Array2<u8>, rng: &mut R) -> Result<PseudoVideo> {
        self.validate()?;
        let (h, w) = (frame.height(), frame.width());
        if mask.dim() != (h, w) {
            return Err(DataError::InvalidArgument(format!(
                "mask {}x{} does not match image {h}x{w}",
                mask.dim().0,
                mask.dim().1
            )));
        }
        let img0 = frame_to_f32(frame);
        let msk0 = mask.mapv(|v| v as f32 / 255.0).insert_axis(Axis(2));
        // Shared draws.
        let shared = self.shared_affine.sample(rng, h, w);
        let flip = rng.random::<f32>() < self.hflip_probability;
        let jitter = self.shared_jitter.draw(rng);
        let gray = rng.random::<f32>() < self.grayscale_probability;

        let mut out = PseudoVideo { frames: Vec::new(), masks: Vec::new() };
        for _ in 0..self.frames {
            let mut img = shared.warp(img0.view(), Interp::Nearest, &IM_FILL);
            let mut msk = shared.warp(msk0.view(), Interp::Nearest, &[0.0]);
            if flip {
                img = hflip(img.view());
                msk = hflip(msk.view());
            }
            jitter.apply(&mut img);
            if gray {
                grayscale(&mut img);
            }
            let a = self.frame_affine.sample(rng, h, w);
            img = a.warp(img.view(), Interp::Bicubic, &IM_FILL);
            msk = a.warp(msk.view(), Interp::Bicubic, &[0.0]);
            let (rh, rw) = geometry::shorter_side_to(h, w, self.size);
            img = resize(img.view(), rh, rw, Interp::Bicubic);
            msk = resize(msk.view(), rh, rw, Interp::Nearest);
            let top = rng.random_range(0..=rh.saturating_sub(self.size)) as isize;
            let left = rng.random_range(0..=rw.saturating_sub(self.size)) as isize;
            img = crop(img.view(), top, left, self.size, self.size, &IM_FILL);
            msk = crop(msk.view(), top, left, self.size, self.size, &[0.0]);
            img.mapv_inplace(|v| v.clamp(0.0, 255.0));
            self.frame_jitter.draw(rng).apply(&mut img);
            if rng.random::<f32>() < self.tps.probability {
                let (p, t) = random_control_points(rng, self.size, self.size, self.tps.control_points, self.tps.sigma)?;
                img = tps_warp(img.view(), &p, &t, Interp::Bilinear, &[0.0])?;
                msk = tps_warp(msk.view(), &p, &t, Interp::Nearest, &[0.0])?;
            }
            out.frames.push(f32_to_frame(&img));
            out.masks.push(msk.index_axis(Axis(2), 0).mapv(|v| v.clamp(0.0, 1.0)));
        }
        Ok(out)
    }
}

/// Video-clip settings (stages 1–3); defaults are methods.md §4.3 (DAVIS / YouTube-VOS; BL30K
/// uses `crop_scale = (0.25, 1.0)`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct VideoAugment {
    /// Output side (square crop).
    pub size: usize,
    /// Probability of a horizontal flip (all frames).
    pub hflip_probability: f32,
    /// Area range of the random resized crop, as fractions of the frame.
    pub crop_scale: (f32, f32),
    /// Aspect-ratio range of the crop.
    pub crop_ratio: (f32, f32),
    /// Colour jitter shared by all frames.
    pub shared_jitter: ColorJitter,
    /// Probability of turning the frames grey.
    pub grayscale_probability: f32,
    /// Each frame's own affine transform.
    pub frame_affine: AffineRange,
    /// Each frame's own colour jitter.
    pub frame_jitter: ColorJitter,
}

impl Default for VideoAugment {
    fn default() -> Self {
        VideoAugment {
            size: 384,
            hflip_probability: 0.5,
            crop_scale: (0.36, 1.0),
            crop_ratio: (3.0 / 4.0, 4.0 / 3.0),
            shared_jitter: ColorJitter { brightness: 0.1, contrast: 0.03, saturation: 0.03, hue: 0.0 },
            grayscale_probability: 0.05,
            frame_affine: AffineRange { degrees: 15.0, translate: (0.0, 0.0), scale: (1.0, 1.0), shear: 10.0 },
            frame_jitter: ColorJitter { brightness: 0.01, contrast: 0.01, saturation: 0.01, hue: 0.0 },
        }
    }
}

impl VideoAugment {
    /// BL30K's wider crop range.
    pub fn bl30k() -> Self {
        VideoAugment { crop_scale: (0.25, 1.0), ..Default::default() }
    }

    /// Augments a clip; frames and masks must pair up and share one size.
    pub fn apply<R: Rng>(&self, frames: &[Frame], masks: &[LabelMap], rng: &mut R) -> Result<(Vec<Frame>, Vec<LabelMap>)> {
        check_prob("hflip_probability", self.hflip_probability)?;
        check_prob("grayscale_probability", self.grayscale_probability)?;
        if frames.is_empty() || frames.len() != masks.len() {
            return Err(DataError::InvalidArgument(format!(
                "a clip needs as many masks as frames, and at least one (got {} and {})",
                frames.len(),
                masks.len()
            )));
        }
        let (h, w) = (frames[0].height(), frames[0].width());
        for (i, (f, m)) in frames.iter().zip(masks).enumerate() {
            if (f.height(), f.width()) != (h, w) || (m.height(), m.width()) != (h, w) {
                return Err(DataError::InvalidArgument(format!("clip frame {i} or its mask differs in size from frame 0")));
            }
        }
        let flip = rng.random::<f32>() < self.hflip_probability;
        let (top, left, ch, cw) = random_resized_crop_box(rng, h, w, self.crop_scale, self.crop_ratio);
        let jitter = self.shared_jitter.draw(rng);
        let gray = rng.random::<f32>() < self.grayscale_probability;
        let s = self.size;
        let mut out_f = Vec::with_capacity(frames.len());
        let mut out_m = Vec::with_capacity(frames.len());
        for (f, m) in frames.iter().zip(masks) {
            let mut img = frame_to_f32(f);
            let mut msk = m.labels.mapv(|v| v as f32).insert_axis(Axis(2));
            if flip {
                img = hflip(img.view());
                msk = hflip(msk.view());
            }
            img = crop(img.view(), top as isize, left as isize, ch, cw, &IM_FILL);
            msk = crop(msk.view(), top as isize, left as isize, ch, cw, &[0.0]);
            img = resize(img.view(), s, s, Interp::Bicubic);
            msk = resize(msk.view(), s, s, Interp::Nearest);
            img.mapv_inplace(|v| v.clamp(0.0, 255.0));
            jitter.apply(&mut img);
            if gray {
                grayscale(&mut img);
            }
            let a = self.frame_affine.sample(rng, s, s);
            img = a.warp(img.view(), Interp::Bicubic, &IM_FILL);
            msk = a.warp(msk.view(), Interp::Nearest, &[0.0]);
            img.mapv_inplace(|v| v.clamp(0.0, 255.0));
            self.frame_jitter.draw(rng).apply(&mut img);
            out_f.push(f32_to_frame(&img));
            out_m.push(LabelMap::new(msk.index_axis(Axis(2), 0).mapv(|v| v as u8)));
        }
        Ok((out_f, out_m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn sample() -> (Frame, Array2<u8>) {
        let f = Frame { rgb: Array3::from_shape_fn((120, 160, 3), |(y, x, c)| ((y + 2 * x + 50 * c) % 256) as u8) };
        let m = Array2::from_shape_fn((120, 160), |(y, x)| if (40..80).contains(&y) && (50..110).contains(&x) { 255 } else { 0 });
        (f, m)
    }

    #[test]
    fn pseudo_video_has_three_frames_of_the_crop_size() {
        let (f, m) = sample();
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let cfg = StaticToVideo { size: 96, ..Default::default() };
        let v = cfg.apply(&f, &m, &mut rng).unwrap();
        assert_eq!(v.frames.len(), 3);
        for (fr, mk) in v.frames.iter().zip(&v.masks) {
            assert_eq!((fr.height(), fr.width()), (96, 96));
            assert_eq!(mk.dim(), (96, 96));
            assert!(mk.iter().all(|&x| (0.0..=1.0).contains(&x)));
            assert!(mk.iter().any(|&x| x > 0.5), "the object survives augmentation");
        }
        // Frames differ from one another (per-frame affine).
        assert_ne!(v.frames[0], v.frames[1]);
    }

    #[test]
    fn same_seed_same_clip() {
        let (f, m) = sample();
        let cfg = StaticToVideo { size: 64, ..Default::default() };
        let a = cfg.apply(&f, &m, &mut ChaCha8Rng::seed_from_u64(4)).unwrap();
        let b = cfg.apply(&f, &m, &mut ChaCha8Rng::seed_from_u64(4)).unwrap();
        assert_eq!(a.frames, b.frames);
        assert_eq!(a.masks, b.masks);
    }

    #[test]
    fn identical_geometry_for_frame_and_mask() {
        // With colour augmentation off, a frame whose colour encodes the mask must stay
        // consistent with the warped mask (same geometric transform on both).
        let m = Array2::from_shape_fn((100, 100), |(y, x)| if (30..70).contains(&y) && (20..60).contains(&x) { 1u8 } else { 0 });
        let f = Frame { rgb: Array3::from_shape_fn((100, 100, 3), |(y, x, _)| if m[[y, x]] == 1 { 250 } else { 5 }) };
        let labels = LabelMap::new(m.clone());
        let cfg = VideoAugment {
            size: 64,
            shared_jitter: ColorJitter::NONE,
            frame_jitter: ColorJitter::NONE,
            grayscale_probability: 0.0,
            ..Default::default()
        };
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let (fs, ms) = cfg.apply(&[f.clone(), f], &[labels.clone(), labels], &mut rng).unwrap();
        for (fr, mk) in fs.iter().zip(&ms) {
            let agree = fr
                .rgb
                .index_axis(Axis(2), 0)
                .iter()
                .zip(mk.labels.iter())
                .filter(|&(&c, &l)| (c > 128) == (l == 1))
                .count();
            assert!(agree as f32 / (64.0 * 64.0) > 0.97, "agreement {agree}");
            assert!(mk.labels.iter().all(|&v| v <= 1));
        }
    }

    #[test]
    fn mismatched_clip_is_an_error() {
        let (f, _) = sample();
        let cfg = VideoAugment::default();
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        assert!(cfg.apply(&[f.clone()], &[], &mut rng).is_err());
        assert!(cfg.apply(&[f], &[LabelMap::zeros(10, 10)], &mut rng).is_err());
        let bad = StaticToVideo { hflip_probability: 2.0, ..Default::default() };
        let (f, m) = sample();
        assert!(bad.apply(&f, &m, &mut rng).is_err());
    }
}
