//! Synthetic videos: our stand-in for BL30K and the data of demos and tests.
//!
//! Each video is a textured, slowly panning background with 1–K textured objects of random
//! star-convex shapes that move, bounce off the borders, rotate, scale, deform, occlude one
//! another by a fixed depth order, and may enter mid-video. Everything follows from the seed.
//!
//! With a folder of photographs (a [`PhotoSet`], given to [`SynthPlan::with_photos`],
//! [`generate_with`] or [`write_dataset_with`]) the background is a
//! drifting crop of a real photo and each object is cut out of a patch of another photo (its
//! colours jittered), with varied shapes: blobs, polygons, thin parts (arms that sway) and holes.
//! Without one, textures are procedural (stripes and value noise) and shapes star-convex blobs.
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
use crate::photos::{Photo, PhotoSet};
use std::sync::Arc;

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
struct Procedural {
    a: [f32; 3],
    b: [f32; 3],
    freq: f32,
    dir: (f32, f32),
    noise: Noise,
}

impl Procedural {
    fn random(rng: &mut ChaCha8Rng, extent: f32) -> Self {
        let mut colour = || [rng.random::<f32>() * 255.0, rng.random::<f32>() * 255.0, rng.random::<f32>() * 255.0];
        let (a, b) = (colour(), colour());
        let angle = rng.random::<f32>() * std::f32::consts::PI;
        let freq = rng.random_range(0.03..0.25);
        let cell = rng.random_range(6.0..30.0);
        let cells = (extent / cell) as usize + 2;
        Procedural {
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

/// A patch of a photograph: position `(y, x)` maps to `origin + scale · R(angle) · (y, x)` in
/// the photo, whose colour is multiplied by `gain`.
struct PhotoPatch {
    photo: Arc<Photo>,
    origin: (f32, f32),
    scale: f32,
    rotation: (f32, f32),
    gain: [f32; 3],
}

impl PhotoPatch {
    /// A patch of `photo` whose `extent` frame pixels cover `fraction` of the photo's shorter
    /// side, at a random place (inside the photo where the area `span` = `(from, to)` frame
    /// pixels on each axis fits), turn and colour gain.
    fn random(rng: &mut ChaCha8Rng, photo: &Arc<Photo>, extent: f32, fraction: f32, span: [(f32, f32); 2], turn: f32) -> Self {
        let short = photo.height().min(photo.width()) as f32;
        let scale = fraction * short / extent.max(1.0);
        let mut place = |(from, to): (f32, f32), size: usize| {
            let (lo, hi) = (-from * scale, size as f32 - 1.0 - to * scale);
            if lo < hi { rng.random_range(lo..hi) } else { (lo + hi) / 2.0 }
        };
        let origin = (place(span[0], photo.height()), place(span[1], photo.width()));
        let angle = rng.random_range(-turn..=turn);
        let brightness = rng.random_range(0.75..1.25f32);
        let gain = [0, 1, 2].map(|_| brightness * rng.random_range(0.9..1.1f32));
        PhotoPatch { photo: photo.clone(), origin, scale, rotation: (angle.cos(), angle.sin()), gain }
    }

    fn at(&self, y: f32, x: f32) -> [f32; 3] {
        let (c, s) = self.rotation;
        let py = self.origin.0 + self.scale * (c * y + s * x);
        let px = self.origin.1 + self.scale * (-s * y + c * x);
        let rgb = self.photo.sample(py, px);
        [0, 1, 2].map(|k| rgb[k] * self.gain[k])
    }
}

/// What a surface is painted with.
enum Texture {
    Procedural(Procedural),
    Photo(PhotoPatch),
}

impl Texture {
    fn at(&self, y: f32, x: f32) -> [f32; 3] {
        match self {
            Texture::Procedural(t) => t.at(y, x),
            Texture::Photo(p) => p.at(y, x),
        }
    }
}

/// An object's outline around its centre, in units of its radius.
enum Outline {
    /// Star-convex blob: `1 + Σ a·cos(k·φ + phase + speed·t)` over `(k, a, phase, speed)`.
    Blob(Vec<(f32, f32, f32, f32)>),
    /// A star-convex polygon through `(angle, radius)` vertices, sorted by angle.
    Polygon(Vec<(f32, f32)>),
}

impl Outline {
    /// The radius (in units of the object's radius) in direction `phi` at time `dt`.
    fn radius(&self, phi: f32, dt: f32) -> f32 {
        match self {
            Outline::Blob(h) => 1.0 + h.iter().map(|&(k, a, p, sp)| a * (k * phi + p + sp * dt).cos()).sum::<f32>(),
            Outline::Polygon(v) => {
                let phi = phi.rem_euclid(std::f32::consts::TAU);
                let n = v.len();
                let i = v.iter().rposition(|&(a, _)| a <= phi).unwrap_or(n - 1);
                let (a0, r0) = v[i];
                let (a1, r1) = v[(i + 1) % n];
                let (ax, ay) = (r0 * a0.cos(), r0 * a0.sin());
                let (bx, by) = (r1 * a1.cos(), r1 * a1.sin());
                let (ex, ey) = (bx - ax, by - ay);
                let (dx, dy) = (phi.cos(), phi.sin());
                let den = dx * ey - dy * ex;
                if den.abs() < 1e-6 { r0.max(r1) } else { (ax * ey - ay * ex) / den }
            }
        }
    }

    fn max_radius(&self) -> f32 {
        match self {
            Outline::Blob(h) => 1.0 + h.iter().map(|h| h.1).sum::<f32>(),
            Outline::Polygon(v) => v.iter().map(|v| v.1).fold(0.0, f32::max),
        }
    }
}

/// A thin part: a tapering bar from the centre out to `length` radii, `width` radii wide at
/// its root, its angle swaying by `sway · sin(freq · t)`.
struct Arm {
    angle: f32,
    length: f32,
    width: f32,
    sway: f32,
    freq: f32,
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
    outline: Outline,
    arms: Vec<Arm>,
    /// A hole through the body: centre (u, v) and radius, in radii.
    hole: Option<(f32, f32, f32)>,
    /// Brightness falloff from the centre to the rim (procedural objects look rounded).
    shading: f32,
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
        let arms = self.arms.iter().map(|a| a.length + a.width).fold(0.0, f32::max);
        self.radius * (1.0 + self.scale_amp) * self.outline.max_radius().max(arms)
    }

    /// Whether object-local position `(u, v)` (rotating with the object) is covered at time
    /// `dt` and `scale`, and its shade.
    fn covers(&self, u: f32, v: f32, dt: f32, scale: f32) -> Option<f32> {
        let rho = (u * u + v * v).sqrt();
        let phi = v.atan2(u);
        let r = self.radius * scale * self.outline.radius(phi, dt);
        let in_hole = self.hole.is_some_and(|(hu, hv, hr)| {
            let unit = self.radius * scale;
            (u - hu * unit).powi(2) + (v - hv * unit).powi(2) < (hr * unit).powi(2)
        });
        if rho <= r && !in_hole {
            return Some((1.0 - self.shading) + self.shading * (1.0 - rho / r.max(1e-3)));
        }
        // Thin parts lie over the body, holes included.
        let unit = self.radius * scale;
        self.arms.iter().find_map(|a| {
            let angle = a.angle + a.sway * (a.freq * dt).sin();
            let (dy, dx) = angle.sin_cos();
            let len = a.length * unit;
            let t = (u * dx + v * dy).clamp(0.0, len);
            let (ru, rv) = (u - t * dx, v - t * dy);
            let w = a.width * unit * (1.0 - 0.6 * t / len.max(1e-3));
            (ru * ru + rv * rv <= w * w).then_some(1.0 - self.shading)
        })
    }
}

/// The first frame of each of a video's objects, sorted (the first object is there from the
/// start; later ones may enter in the first half).
fn pick_entries(cfg: &SynthConfig, rng: &mut ChaCha8Rng) -> Vec<usize> {
    let n = rng.random_range(cfg.min_objects..=cfg.max_objects);
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
}

fn pick_sprites(cfg: &SynthConfig, rng: &mut ChaCha8Rng) -> Vec<Sprite> {
    let (h, w) = (cfg.height as f32, cfg.width as f32);
    let short = h.min(w);
    pick_entries(cfg, rng)
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
                outline: Outline::Blob(harmonics),
                arms: Vec::new(),
                hole: None,
                shading: 0.25,
                texture: Texture::Procedural(Procedural::random(rng, radius * 3.0)),
            }
        })
        .collect()
}

/// Objects of the photo mode: a patch of a photo (not the background's where there are
/// others) cut out as a blob, a polygon or an irregular blob with thin arms, some with a hole.
fn pick_photo_sprites(cfg: &SynthConfig, rng: &mut ChaCha8Rng, photos: &PhotoSet, background: usize) -> Vec<Sprite> {
    use std::f32::consts::{PI, TAU};
    let (h, w) = (cfg.height as f32, cfg.width as f32);
    let short = h.min(w);
    pick_entries(cfg, rng)
        .into_iter()
        .enumerate()
        .map(|(k, first_frame)| {
            let radius = short * rng.random_range(0.07..0.3);
            let speed = short * rng.random_range(0.002..0.03);
            let heading = rng.random::<f32>() * TAU;
            let outline = if rng.random::<f32>() < 0.4 {
                let n = rng.random_range(3..=8usize);
                let mut v: Vec<(f32, f32)> = (0..n)
                    .map(|i| ((i as f32 + rng.random_range(-0.3..0.3)) * TAU / n as f32, rng.random_range(0.55..1.0)))
                    .map(|(a, r)| (a.rem_euclid(TAU), r))
                    .collect();
                v.sort_by(|a, b| a.0.total_cmp(&b.0));
                Outline::Polygon(v)
            } else {
                Outline::Blob(
                    (2..=6)
                        .map(|k| (k as f32, rng.random_range(0.0..0.16), rng.random::<f32>() * TAU, rng.random_range(-0.08..0.08)))
                        .collect(),
                )
            };
            let arms = if rng.random::<f32>() < 0.35 {
                (0..rng.random_range(1..=4))
                    .map(|_| Arm {
                        angle: rng.random::<f32>() * TAU,
                        length: rng.random_range(1.2..2.2),
                        width: rng.random_range(0.07..0.2),
                        sway: rng.random_range(0.0..0.5),
                        freq: rng.random_range(0.05..0.4),
                    })
                    .collect()
            } else {
                Vec::new()
            };
            let hole = (rng.random::<f32>() < 0.2)
                .then(|| (rng.random_range(-0.25..0.25), rng.random_range(-0.25..0.25), rng.random_range(0.15..0.35)));
            let pick = if photos.len() > 1 { (background + rng.random_range(1..photos.len())) % photos.len() } else { 0 };
            let fraction = rng.random_range(0.1..0.5);
            let reach = radius * 2.5;
            let texture = PhotoPatch::random(rng, photos.get(pick), 2.0 * radius, fraction, [(-reach, reach); 2], PI);
            Sprite {
                id: (k + 1) as u8,
                first_frame,
                depth: rng.random::<f32>(),
                centre: (rng.random_range(0.15..0.85) * h, rng.random_range(0.15..0.85) * w),
                velocity: (speed * heading.sin(), speed * heading.cos()),
                angle: rng.random::<f32>() * TAU,
                spin: rng.random_range(-0.04..0.04),
                radius,
                scale_amp: rng.random_range(0.0..0.25),
                scale_freq: rng.random_range(0.02..0.15),
                outline,
                arms,
                hole,
                shading: rng.random_range(0.0..0.2),
                texture: Texture::Photo(texture),
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
    /// Draws video `index` of `cfg` with procedural textures (deterministic in `cfg.seed` and
    /// `index`).
    pub fn new(cfg: &SynthConfig, index: usize) -> Result<Self> {
        Self::with_photos(cfg, index, None)
    }

    /// Draws video `index` of `cfg` textured with `photos` (procedural textures when `None`).
    pub fn with_photos(cfg: &SynthConfig, index: usize, photos: Option<&PhotoSet>) -> Result<Self> {
        cfg.validate()?;
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ index as u64);
        let (h, w) = (cfg.height, cfg.width);
        let (background, pan, grain, mut sprites) = match photos {
            None => {
                let background = Texture::Procedural(Procedural::random(&mut rng, (h.max(w) * 2) as f32));
                let pan = (rng.random_range(-1.5..1.5f32), rng.random_range(-1.5..1.5f32));
                let grain = rng.random_range(2.0..6.0f32);
                (background, pan, grain, pick_sprites(cfg, &mut rng))
            }
            Some(photos) => {
                let index = rng.random_range(0..photos.len());
                let fraction = rng.random_range(0.35..0.95);
                let span = [(0.0, h as f32 + 3.0 * cfg.frames as f32), (0.0, w as f32 + 3.0 * cfg.frames as f32)];
                let background = Texture::Photo(PhotoPatch::random(&mut rng, photos.get(index), h.min(w) as f32, fraction, span, 0.1));
                let pan = (rng.random_range(-2.5..2.5f32), rng.random_range(-3.5..3.5f32));
                let grain = rng.random_range(1.0..4.0f32);
                (background, pan, grain, pick_photo_sprites(cfg, &mut rng, photos, index))
            }
        };
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
                    if let Some(shade) = s.covers(u, v, dt, scale) {
                        labels[[y, x]] = s.id;
                        let c = s.texture.at(v / scale, u / scale);
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
    generate_with(cfg, index, None)
}

/// [`generate_video`] textured with `photos` (procedural when `None`).
pub fn generate_with(cfg: &SynthConfig, index: usize, photos: Option<&PhotoSet>) -> Result<SynthVideo> {
    let plan = SynthPlan::with_photos(cfg, index, photos)?;
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
pub fn write_dataset(out: &Path, cfg: &SynthConfig, on_video: impl FnMut(&str)) -> Result<SynthSummary> {
    write_dataset_with(out, cfg, None, on_video)
}

/// [`write_dataset`] textured with `photos` (procedural when `None`).
pub fn write_dataset_with(out: &Path, cfg: &SynthConfig, photos: Option<&PhotoSet>, mut on_video: impl FnMut(&str)) -> Result<SynthSummary> {
    cfg.validate()?;
    let palette = Palette::davis();
    let mut names = Vec::new();
    let mut meta = serde_json::Map::new();
    let mut total = 0;
    for i in 0..cfg.videos {
        let video = generate_with(cfg, i, photos)?;
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

    fn fnv(bytes: impl Iterator<Item = u8>, mut h: u64) -> u64 {
        for b in bytes {
            h ^= b as u64;
            h = h.wrapping_mul(0x100000001b3);
        }
        h
    }

    /// The procedural videos are those of memvos before the photo mode (the held-out set of
    /// the README's scores is still the same videos).
    #[test]
    fn procedural_videos_are_unchanged() {
        let cfg = SynthConfig { videos: 1, frames: 6, height: 60, width: 100, seed: 7777, ..Default::default() };
        let mut h = 0xcbf29ce484222325u64;
        for i in 0..3 {
            let v = generate_video(&cfg, i).unwrap();
            for (f, m) in v.frames.iter().zip(&v.masks) {
                h = fnv(f.rgb.iter().copied(), h);
                h = fnv(m.labels.iter().copied(), h);
            }
        }
        assert_eq!(format!("{h:016x}"), "94b57f1665ca8232");
    }

    fn flat(name: &str, rgb: [u8; 3]) -> Photo {
        Photo { name: name.into(), rgb: Array3::from_shape_fn((64, 96, 3), |(_, _, c)| rgb[c]) }
    }

    fn two_photos() -> PhotoSet {
        PhotoSet::from_photos("flat", vec![flat("red", [200, 40, 40]), flat("blue", [40, 40, 200])]).unwrap()
    }

    #[test]
    fn photo_mode_paints_background_and_objects_from_different_photos() {
        let photos = two_photos();
        let cfg = SynthConfig { max_objects: 3, ..small() };
        let red = |p: &[u8]| p[0] > p[2];
        for i in 0..6 {
            let v = generate_with(&cfg, i, Some(&photos)).unwrap();
            for (f, m) in v.frames.iter().zip(&v.masks) {
                let (mut bg, mut obj) = ((0, 0), (0, 0));
                for y in 0..cfg.height {
                    for x in 0..cfg.width {
                        let px = [f.rgb[[y, x, 0]], f.rgb[[y, x, 1]], f.rgb[[y, x, 2]]];
                        let n = if m.labels[[y, x]] == 0 { &mut bg } else { &mut obj };
                        if red(&px) { n.0 += 1 } else { n.1 += 1 }
                    }
                }
                // The background is one photo, every object the other one.
                assert!(bg.0 == 0 || bg.1 == 0, "video {i}: background {bg:?}");
                assert!((bg.0 == 0) == (obj.1 == 0) || obj == (0, 0), "video {i}: background {bg:?}, objects {obj:?}");
            }
        }
        // Deterministic, and a plan renders any frame as the whole video does.
        let v = generate_with(&cfg, 2, Some(&photos)).unwrap();
        let plan = SynthPlan::with_photos(&cfg, 2, Some(&photos)).unwrap();
        assert_eq!(plan.render(5).unwrap(), (v.frames[5].clone(), v.masks[5].clone()));
        assert_eq!(generate_with(&cfg, 2, Some(&photos)).unwrap().frames, v.frames);
        assert_ne!(generate_video(&cfg, 2).unwrap().frames, v.frames);
    }

    #[test]
    fn photo_mode_cuts_blobs_polygons_thin_parts_and_holes() {
        let photos = two_photos();
        let cfg = SynthConfig { min_objects: 3, max_objects: 5, entry_probability: 0.9, frames: 20, ..small() };
        let sprites: Vec<Sprite> = (0..12).flat_map(|i| SynthPlan::with_photos(&cfg, i, Some(&photos)).unwrap().sprites).collect();
        let polygons = sprites.iter().filter(|s| matches!(s.outline, Outline::Polygon(_))).count();
        let blobs = sprites.iter().filter(|s| matches!(s.outline, Outline::Blob(_))).count();
        let armed = sprites.iter().filter(|s| !s.arms.is_empty()).count();
        let holed = sprites.iter().filter(|s| s.hole.is_some()).count();
        let late = sprites.iter().filter(|s| s.first_frame > 0).count();
        assert!(polygons > 0 && blobs > 0 && armed > 0 && holed > 0 && late > 0, "{polygons} {blobs} {armed} {holed} {late}");
        // What each part covers, in object-local coordinates.
        let mut s = sprites.into_iter().next().unwrap();
        s.outline = Outline::Polygon(vec![(0.0, 1.0), (std::f32::consts::FRAC_PI_2, 1.0), (std::f32::consts::PI, 1.0), (3.0 * std::f32::consts::FRAC_PI_2, 1.0)]);
        s.radius = 10.0;
        s.arms = vec![Arm { angle: 0.0, length: 2.0, width: 0.1, sway: 0.0, freq: 0.0 }];
        s.hole = Some((0.0, -0.4, 0.2));
        assert!(s.covers(0.0, -4.0, 0.0, 1.0).is_none(), "the hole");
        assert!(s.covers(0.0, -6.5, 0.0, 1.0).is_some(), "beyond the hole");
        assert!(s.covers(0.0, 4.0, 0.0, 1.0).is_some(), "the body");
        assert!(s.covers(6.0, 6.0, 0.0, 1.0).is_none(), "outside the diamond's edge");
        assert!(s.covers(4.8, 4.8, 0.0, 1.0).is_some(), "inside the diamond's edge");
        assert!(s.covers(18.0, 0.0, 0.0, 1.0).is_some(), "the arm's tip");
        assert!(s.covers(18.0, 1.5, 0.0, 1.0).is_none(), "beside the arm");
        assert!(s.covers(0.0, 18.0, 0.0, 1.0).is_none(), "no arm there");
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
