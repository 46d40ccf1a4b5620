//! Synthetic videos: our stand-in for BL30K and the data of demos and tests.
//!
//! Each video is a textured, slowly panning background with 1–K textured objects of random
//! star-convex shapes that move, bounce off the borders, rotate, scale, deform, occlude one
//! another by a fixed depth order, and may enter mid-video. Everything follows from the seed.
//! [`write_dataset`] writes a DAVIS root (`JPEGImages/480p`, `Annotations/480p`,
//! `ImageSets/2017/val.txt`) so every DAVIS tool reads it, plus a YouTube-VOS style
//! `meta.json` that records each object's frames.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ndarray::{Array2, Array3};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use crate::frame::{Frame, LabelMap};
use crate::io::{Palette, write_atomic, write_frame, write_mask};

/// The largest side of a synthetic frame (8K video is 7680 wide).
pub const MAX_SIDE: usize = 8192;
/// The most frames of a synthetic video.
pub const MAX_FRAMES: usize = 100_000;
/// The most synthetic videos of one configuration.
pub const MAX_VIDEOS: usize = 1_000_000;
/// The most memory one generated video may take (its frames and masks are held together:
/// 4 bytes a pixel a frame), checked before anything is drawn.
pub const MAX_VIDEO_BYTES: u64 = 4 << 30;

/// What to generate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SynthConfig {
    /// Videos to generate.
    pub videos: usize,
    /// Frames per video.
    pub frames: usize,
    /// Frame height.
    pub height: usize,
    /// Frame width.
    pub width: usize,
    /// Fewest objects per video.
    pub min_objects: usize,
    /// Most objects per video.
    pub max_objects: usize,
    /// Seed: the same seed gives the same videos.
    pub seed: u64,
    /// Probability that an object after the first enters mid-video.
    pub entry_probability: f32,
    /// Quality of the written JPEG frames.
    pub jpeg_quality: u8,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            videos: 3,
            frames: 30,
            height: 480,
            width: 854,
            min_objects: 1,
            max_objects: 5,
            seed: 0,
            entry_probability: 0.3,
            jpeg_quality: 92,
        }
    }
}

impl SynthConfig {
    /// Checks the sizes and counts (bounded, so nothing huge is allocated).
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(DataError::InvalidArgument(m.to_string()));
        if self.frames == 0 {
            return bad("a synthetic video needs at least one frame");
        }
        if self.height < 16 || self.width < 16 {
            return bad("synthetic frames must be at least 16x16");
        }
        if self.height > MAX_SIDE || self.width > MAX_SIDE {
            return Err(DataError::InvalidArgument(format!("synthetic frames of {}x{} (HxW): each side at most {MAX_SIDE}", self.height, self.width)));
        }
        if self.frames > MAX_FRAMES || self.videos > MAX_VIDEOS {
            return Err(DataError::InvalidArgument(format!("at most {MAX_VIDEOS} synthetic videos of at most {MAX_FRAMES} frames (got {} of {})", self.videos, self.frames)));
        }
        let bytes = self.frames as u64 * self.height as u64 * self.width as u64 * 4;
        if bytes > MAX_VIDEO_BYTES {
            return Err(DataError::InvalidArgument(format!(
                "{} frames of {}x{} (HxW) need {} MiB per video, more than the {} MiB budget: fewer frames or smaller frames",
                self.frames,
                self.height,
                self.width,
                bytes >> 20,
                MAX_VIDEO_BYTES >> 20
            )));
        }
        if self.min_objects == 0 || self.min_objects > self.max_objects || self.max_objects > 254 {
            return bad("objects per video must satisfy 1 <= min <= max <= 254");
        }
        Ok(())
    }
}

/// One generated video: frames, full masks, and when each object first appears.
#[derive(Clone, Debug)]
pub struct SynthVideo {
    /// The video's name (`synth-0000`, …).
    pub name: String,
    /// Its frames.
    pub frames: Vec<Frame>,
    /// The full masks of every frame.
    pub masks: Vec<LabelMap>,
    /// `(object id, index of the first frame it is visible in)`, by id.
    pub objects: Vec<(u8, usize)>,
}

/// Value noise on a lattice, smooth in between (bilinear with smoothstep).
struct Noise {
    cell: f32,
    grid: Array2<f32>,
}

impl Noise {
    fn new(rng: &mut ChaCha8Rng, cell: f32, cells_y: usize, cells_x: usize) -> Self {
        Noise {
            cell,
            grid: Array2::from_shape_fn((cells_y + 2, cells_x + 2), |_| rng.random::<f32>()),
        }
    }

    fn at(&self, y: f32, x: f32) -> f32 {
        let (gy, gx) = self.grid.dim();
        let fy = (y / self.cell).rem_euclid((gy - 1) as f32);
        let fx = (x / self.cell).rem_euclid((gx - 1) as f32);
        let (y0, x0) = (fy as usize, fx as usize);
        let (y1, x1) = ((y0 + 1).min(gy - 1), (x0 + 1).min(gx - 1));
        let s = |t: f32| t * t * (3.0 - 2.0 * t);
        let (ty, tx) = (s(fy - y0 as f32), s(fx - x0 as f32));
        let top = self.grid[[y0, x0]] * (1.0 - tx) + self.grid[[y0, x1]] * tx;
        let bot = self.grid[[y1, x0]] * (1.0 - tx) + self.grid[[y1, x1]] * tx;
        top * (1.0 - ty) + bot * ty
    }
}

/// A two-colour texture: stripes at an angle modulated by value noise.
struct Texture {
    a: [f32; 3],
    b: [f32; 3],
    freq: f32,
    dir: (f32, f32),
    noise: Noise,
}

impl Texture {
    fn random(rng: &mut ChaCha8Rng, extent: f32) -> Self {
        let mut colour = || [rng.random::<f32>() * 255.0, rng.random::<f32>() * 255.0, rng.random::<f32>() * 255.0];
        let (a, b) = (colour(), colour());
        let angle = rng.random::<f32>() * std::f32::consts::PI;
        let freq = rng.random_range(0.03..0.25);
        let cell = rng.random_range(6.0..30.0);
        let cells = (extent / cell) as usize + 2;
        Texture {
            a,
            b,
            freq,
            dir: (angle.cos(), angle.sin()),
            noise: Noise::new(rng, cell, cells, cells),
        }
    }

    fn at(&self, y: f32, x: f32) -> [f32; 3] {
        let stripe = 0.5 + 0.5 * ((x * self.dir.0 + y * self.dir.1) * self.freq).sin();
        let t = 0.6 * stripe + 0.4 * self.noise.at(y, x);
        [0, 1, 2].map(|c| self.a[c] * (1.0 - t) + self.b[c] * t)
    }
}

/// One moving object.
struct Sprite {
    id: u8,
    first_frame: usize,
    depth: f32,
    centre: (f32, f32),
    velocity: (f32, f32),
    angle: f32,
    spin: f32,
    radius: f32,
    scale_amp: f32,
    scale_freq: f32,
    harmonics: Vec<(f32, f32, f32, f32)>, // (k, amplitude, phase, phase speed)
    texture: Texture,
}

impl Sprite {
    fn state(&self, t: usize, h: f32, w: f32) -> ((f32, f32), f32, f32) {
        let dt = (t - self.first_frame) as f32;
        // Bounce inside the frame: reflect the free motion into [0, extent].
        let reflect = |p: f32, extent: f32| {
            let period = 2.0 * extent;
            let m = p.rem_euclid(period);
            if m > extent { period - m } else { m }
        };
        let cy = reflect(self.centre.0 + self.velocity.0 * dt, h - 1.0);
        let cx = reflect(self.centre.1 + self.velocity.1 * dt, w - 1.0);
        let angle = self.angle + self.spin * dt;
        let scale = 1.0 + self.scale_amp * (self.scale_freq * dt).sin();
        ((cy, cx), angle, scale)
    }

    fn max_extent(&self) -> f32 {
        self.radius * (1.0 + self.scale_amp) * (1.0 + self.harmonics.iter().map(|h| h.1).sum::<f32>())
    }
}

fn pick_sprites(cfg: &SynthConfig, rng: &mut ChaCha8Rng) -> Vec<Sprite> {
    let (h, w) = (cfg.height as f32, cfg.width as f32);
    let n = rng.random_range(cfg.min_objects..=cfg.max_objects);
    let short = h.min(w);
    let mut entries: Vec<usize> = (0..n)
        .map(|k| {
            if k > 0 && cfg.frames > 2 && rng.random::<f32>() < cfg.entry_probability {
                rng.random_range(1..=cfg.frames.div_ceil(2))
            } else {
                0
            }
        })
        .collect();
    entries.sort_unstable();
    entries
        .into_iter()
        .enumerate()
        .map(|(k, first_frame)| {
            let radius = short * rng.random_range(0.08..0.2);
            let speed = short * rng.random_range(0.002..0.02);
            let heading = rng.random::<f32>() * std::f32::consts::TAU;
            let harmonics = (2..=5)
                .map(|k| {
                    (
                        k as f32,
                        rng.random_range(0.0..0.18),
                        rng.random::<f32>() * std::f32::consts::TAU,
                        rng.random_range(-0.08..0.08),
                    )
                })
                .collect();
            Sprite {
                id: (k + 1) as u8,
                first_frame,
                depth: rng.random::<f32>(),
                centre: (rng.random_range(0.2..0.8) * h, rng.random_range(0.2..0.8) * w),
                velocity: (speed * heading.sin(), speed * heading.cos()),
                angle: rng.random::<f32>() * std::f32::consts::TAU,
                spin: rng.random_range(-0.05..0.05),
                radius,
                scale_amp: rng.random_range(0.0..0.25),
                scale_freq: rng.random_range(0.02..0.15),
                harmonics,
                texture: Texture::random(rng, radius * 3.0),
            }
        })
        .collect()
}

/// Video `index` of a configuration, ready to render any of its frames: everything random is
/// drawn here, so [`SynthPlan::render`] of frame `t` gives exactly the frame `t` of
/// [`generate_video`] without rendering the others (a training sample needs three).
pub struct SynthPlan {
    height: usize,
    width: usize,
    frames: usize,
    background: Texture,
    pan: (f32, f32),
    grain: f32,
    sprites: Vec<Sprite>,
    /// Seed of each frame's sensor grain.
    grain_seeds: Vec<u64>,
    /// The video's name.
    pub name: String,
}

impl SynthPlan {
    /// Draws video `index` of `cfg` (deterministic in `cfg.seed` and `index`).
    pub fn new(cfg: &SynthConfig, index: usize) -> Result<Self> {
        cfg.validate()?;
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ index as u64);
        let (h, w) = (cfg.height, cfg.width);
        let background = Texture::random(&mut rng, (h.max(w) * 2) as f32);
        let pan = (rng.random_range(-1.5..1.5f32), rng.random_range(-1.5..1.5f32));
        let grain = rng.random_range(2.0..6.0f32);
        let mut sprites = pick_sprites(cfg, &mut rng);
        sprites.sort_by(|a, b| a.depth.total_cmp(&b.depth)); // painter's order: far to near
        let grain_seeds = (0..cfg.frames).map(|_| rng.random()).collect();
        Ok(SynthPlan { height: h, width: w, frames: cfg.frames, background, pan, grain, sprites, grain_seeds, name: format!("synth-{index:04}") })
    }

    /// Number of frames.
    pub fn len(&self) -> usize {
        self.frames
    }

    /// Whether it has no frame.
    pub fn is_empty(&self) -> bool {
        self.frames == 0
    }

    /// Frame `t` and its full label map (an error past the last frame).
    pub fn render(&self, t: usize) -> Result<(Frame, LabelMap)> {
        if t >= self.frames {
            return Err(DataError::InvalidArgument(format!("frame {t} of a {}-frame synthetic video", self.frames)));
        }
        let (h, w) = (self.height, self.width);
        let mut rgb = Array3::<f32>::zeros((h, w, 3));
        let (oy, ox) = (self.pan.0 * t as f32, self.pan.1 * t as f32);
        for y in 0..h {
            for x in 0..w {
                let c = self.background.at(y as f32 + oy, x as f32 + ox);
                for k in 0..3 {
                    rgb[[y, x, k]] = c[k];
                }
            }
        }
        let mut labels = Array2::<u8>::zeros((h, w));
        for s in self.sprites.iter().filter(|s| t >= s.first_frame) {
            let ((cy, cx), angle, scale) = s.state(t, h as f32, w as f32);
            let ext = s.max_extent() * scale.max(1.0);
            let y0 = (cy - ext).floor().max(0.0) as usize;
            let y1 = ((cy + ext).ceil() as usize).min(h - 1);
            let x0 = (cx - ext).floor().max(0.0) as usize;
            let x1 = ((cx + ext).ceil() as usize).min(w - 1);
            let (sa, ca) = angle.sin_cos();
            let dt = (t - s.first_frame) as f32;
            for y in y0..=y1 {
                for x in x0..=x1 {
                    let (dy, dx) = (y as f32 - cy, x as f32 - cx);
                    // Object-local coordinates (rotating with the object).
                    let u = ca * dx + sa * dy;
                    let v = -sa * dx + ca * dy;
                    let rho = (u * u + v * v).sqrt();
                    let phi = v.atan2(u);
                    let r = s.radius
                        * scale
                        * (1.0
                            + s.harmonics
                                .iter()
                                .map(|&(k, a, p, sp)| a * (k * phi + p + sp * dt).cos())
                                .sum::<f32>());
                    if rho <= r {
                        labels[[y, x]] = s.id;
                        let c = s.texture.at(v / scale, u / scale);
                        let shade = 0.75 + 0.25 * (1.0 - rho / r.max(1e-3));
                        for k in 0..3 {
                            rgb[[y, x, k]] = c[k] * shade;
                        }
                    }
                }
            }
        }
        // Sensor grain, deterministic per pixel and frame.
        let mut grain_rng = ChaCha8Rng::seed_from_u64(self.grain_seeds[t]);
        let grain = self.grain;
        let frame = Array3::from_shape_fn((h, w, 3), |(y, x, k)| {
            (rgb[[y, x, k]] + grain * (grain_rng.random::<f32>() - 0.5) * 2.0).round().clamp(0.0, 255.0) as u8
        });
        Ok((Frame { rgb: frame }, LabelMap::new(labels)))
    }
}

/// Generates video `index` of the configuration (deterministic in `cfg.seed` and `index`).
pub fn generate_video(cfg: &SynthConfig, index: usize) -> Result<SynthVideo> {
    let plan = SynthPlan::new(cfg, index)?;
    let mut frames = Vec::with_capacity(cfg.frames);
    let mut masks = Vec::with_capacity(cfg.frames);
    let mut first_seen: BTreeMap<u8, usize> = BTreeMap::new();
    for t in 0..cfg.frames {
        let (frame, mask) = plan.render(t)?;
        for id in mask.object_ids() {
            first_seen.entry(id).or_insert(t);
        }
        frames.push(frame);
        masks.push(mask);
    }
    Ok(SynthVideo { name: plan.name, frames, masks, objects: first_seen.into_iter().collect() })
}

/// What [`write_dataset`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SynthSummary {
    /// The root written.
    pub root: PathBuf,
    /// The videos' names.
    pub videos: Vec<String>,
    /// Frames written in all.
    pub frames: usize,
}

/// Generates `cfg.videos` videos and writes them as a DAVIS-2017 style root at `out`.
/// `on_video` is called after each video (for progress bars).
pub fn write_dataset(out: &Path, cfg: &SynthConfig, mut on_video: impl FnMut(&str)) -> Result<SynthSummary> {
    cfg.validate()?;
    let palette = Palette::davis();
    let mut names = Vec::new();
    let mut meta = serde_json::Map::new();
    let mut total = 0;
    for i in 0..cfg.videos {
        let video = generate_video(cfg, i)?;
        let img_dir = out.join("JPEGImages/480p").join(&video.name);
        let ann_dir = out.join("Annotations/480p").join(&video.name);
        let mut frames_of: BTreeMap<u8, Vec<String>> = BTreeMap::new();
        for (t, (frame, mask)) in video.frames.iter().zip(&video.masks).enumerate() {
            let stem = format!("{t:05}");
            write_frame(&img_dir.join(format!("{stem}.jpg")), frame, cfg.jpeg_quality)?;
            write_mask(&ann_dir.join(format!("{stem}.png")), mask, &palette)?;
            for id in mask.object_ids() {
                frames_of.entry(id).or_default().push(stem.clone());
            }
        }
        let objects: serde_json::Map<String, serde_json::Value> = frames_of
            .into_iter()
            .map(|(id, frames)| (id.to_string(), serde_json::json!({ "frames": frames })))
            .collect();
        meta.insert(video.name.clone(), serde_json::json!({ "objects": objects }));
        total += video.frames.len();
        on_video(&video.name);
        names.push(video.name);
    }
    let list = names.iter().map(|n| format!("{n}\n")).collect::<String>();
    write_atomic(&out.join("ImageSets/2017/val.txt"), list.as_bytes())?;
    let meta = serde_json::to_vec_pretty(&serde_json::json!({ "videos": meta }))
        .map_err(|e| DataError::InvalidArgument(e.to_string()))?;
    write_atomic(&out.join("meta.json"), &meta)?;
    Ok(SynthSummary {
        root: out.to_path_buf(),
        videos: names,
        frames: total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> SynthConfig {
        SynthConfig {
            videos: 1,
            frames: 12,
            height: 48,
            width: 80,
            max_objects: 5,
            seed: 7,
            ..Default::default()
        }
    }

    #[test]
    fn deterministic_in_seed() {
        let a = generate_video(&small(), 0).unwrap();
        let b = generate_video(&small(), 0).unwrap();
        assert_eq!(a.frames, b.frames);
        assert_eq!(a.masks, b.masks);
        let c = generate_video(&SynthConfig { seed: 8, ..small() }, 0).unwrap();
        assert_ne!(a.frames, c.frames);
    }

    #[test]
    fn objects_move_and_stay_in_range() {
        let cfg = SynthConfig { frames: 20, ..small() };
        for i in 0..6 {
            let v = generate_video(&cfg, i).unwrap();
            assert!(!v.objects.is_empty() && v.objects.len() <= 5);
            assert!(v.masks.iter().all(|m| m.max_object_id() as usize <= 5));
            // The first object is there from frame 0, and masks change over time.
            assert!(v.masks[0].object_ids().contains(&1));
            assert_ne!(v.masks[0], v.masks[19]);
        }
    }

    #[test]
    fn some_objects_enter_mid_video() {
        let cfg = SynthConfig { frames: 20, min_objects: 3, entry_probability: 0.9, ..small() };
        let late = (0..8)
            .flat_map(|i| generate_video(&cfg, i).unwrap().objects)
            .filter(|&(_, first)| first > 0)
            .count();
        assert!(late > 0);
    }

    #[test]
    fn a_plan_renders_any_frame_as_the_whole_video_does() {
        let v = generate_video(&small(), 3).unwrap();
        let plan = SynthPlan::new(&small(), 3).unwrap();
        for t in [7, 0, 11] {
            let (f, m) = plan.render(t).unwrap();
            assert_eq!((f, m), (v.frames[t].clone(), v.masks[t].clone()), "frame {t}");
        }
        assert!(plan.render(12).is_err());
    }

    #[test]
    fn rejects_bad_configs() {
        assert!(generate_video(&SynthConfig { frames: 0, ..small() }, 0).is_err());
        assert!(generate_video(&SynthConfig { min_objects: 0, ..small() }, 0).is_err());
        assert!(generate_video(&SynthConfig { height: 4, ..small() }, 0).is_err());
        for (h, w) in [(99_999_999_999, 99_999_999_999), (16, 200_000), (100_000, 100_000)] {
            let e = generate_video(&SynthConfig { height: h, width: w, ..small() }, 0).unwrap_err().to_string();
            assert!(e.contains("at most 8192"), "{e}");
        }
    }
}
