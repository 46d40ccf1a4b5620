//! Folders of real photographs, the textures of the synthetic generator's photo mode.
//!
//! [`PhotoSet::load`] reads every JPEG/PNG under a folder (sub-folders too, in natural order, so
//! the same folder gives the same set), each downscaled so its longer side is at most
//! [`PHOTO_SIDE`]: a frame samples a crop of one photo as its background, and each object is
//! cut out of a patch of another (see [`crate::synth`]). Where the photos come from is the
//! user's choice; `scripts/fetch-photos.sh` fetches the set the shipped model was trained on.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ndarray::Array3;

use crate::error::{DataError, Result};
use crate::io::read_frame;

/// The longer side of a loaded photo (larger photos are downscaled to it; a 240×432 frame's
/// background crop then still has more photo pixels than frame pixels).
pub const PHOTO_SIDE: usize = 1024;
/// The shorter side a photo needs at least.
pub const MIN_PHOTO_SIDE: usize = 32;
/// The most photos one set may hold (each takes up to 3 MiB once decoded).
pub const MAX_PHOTOS: usize = 4096;
/// How deep sub-folders are searched.
const MAX_DEPTH: usize = 8;

/// One decoded photograph (`rgb` is height × width × 3).
#[derive(Clone, Debug, PartialEq)]
pub struct Photo {
    /// Its path relative to the set's folder.
    pub name: String,
    /// Its pixels.
    pub rgb: Array3<u8>,
}

impl Photo {
    /// Height in pixels.
    pub fn height(&self) -> usize {
        self.rgb.dim().0
    }

    /// Width in pixels.
    pub fn width(&self) -> usize {
        self.rgb.dim().1
    }

    /// The colour at a real-valued position, bilinear, mirrored past the borders (so every
    /// position has a colour and a crop may drift off the photo).
    pub fn sample(&self, y: f32, x: f32) -> [f32; 3] {
        let (h, w, _) = self.rgb.dim();
        let mirror = |p: f32, n: usize| {
            let last = (n - 1) as f32;
            if last <= 0.0 {
                return 0.0;
            }
            let m = p.rem_euclid(2.0 * last);
            if m > last { 2.0 * last - m } else { m }
        };
        let (fy, fx) = (mirror(y, h), mirror(x, w));
        let (y0, x0) = (fy as usize, fx as usize);
        let (y1, x1) = ((y0 + 1).min(h - 1), (x0 + 1).min(w - 1));
        let (ty, tx) = (fy - y0 as f32, fx - x0 as f32);
        let px = |yy: usize, xx: usize, c: usize| self.rgb[[yy, xx, c]] as f32;
        [0, 1, 2].map(|c| {
            let top = px(y0, x0, c) * (1.0 - tx) + px(y0, x1, c) * tx;
            let bottom = px(y1, x0, c) * (1.0 - tx) + px(y1, x1, c) * tx;
            top * (1.0 - ty) + bottom * ty
        })
    }
}

/// A set of photographs, shared cheaply (`Arc`) between the plans that sample it.
#[derive(Clone, Debug)]
pub struct PhotoSet {
    root: PathBuf,
    photos: Vec<Arc<Photo>>,
}

fn is_photo(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "jpg" | "jpeg" | "png"))
}

fn collect(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) -> Result<()> {
    let io = |source| DataError::Io { path: dir.to_path_buf(), source };
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir).map_err(io)?.map(|e| e.map(|e| e.path())).collect::<std::io::Result<_>>().map_err(io)?;
    entries.sort_by(|a, b| natord::compare(&a.to_string_lossy(), &b.to_string_lossy()));
    for path in entries {
        if path.is_dir() {
            if depth < MAX_DEPTH {
                collect(&path, depth + 1, out)?;
            }
        } else if is_photo(&path) {
            if out.len() == MAX_PHOTOS {
                return Err(DataError::InvalidArgument(format!("{}: more than {MAX_PHOTOS} photos; use a smaller folder", dir.display())));
            }
            out.push(path);
        }
    }
    Ok(())
}

/// Downscales `rgb` (box filter) so that its longer side is at most `side`.
fn fit(rgb: Array3<u8>, side: usize) -> Array3<u8> {
    let (h, w, _) = rgb.dim();
    let long = h.max(w);
    if long <= side {
        return rgb;
    }
    let (nh, nw) = ((h * side).div_ceil(long).max(1), (w * side).div_ceil(long).max(1));
    let (raw, _) = rgb.into_raw_vec_and_offset();
    let img = image::RgbImage::from_raw(w as u32, h as u32, raw).expect("an h×w×3 array holds h·w·3 bytes");
    let small = image::imageops::resize(&img, nw as u32, nh as u32, image::imageops::FilterType::Triangle);
    Array3::from_shape_vec((nh, nw, 3), small.into_raw()).expect("the resized image is nh×nw×3")
}

impl PhotoSet {
    /// Reads every `.jpg`/`.jpeg`/`.png` under `dir` (sub-folders too). An error names the
    /// folder (missing, or without a photo) or the file (undecodable, or smaller than
    /// [`MIN_PHOTO_SIDE`] on a side).
    pub fn load(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            return Err(DataError::MissingFolder { path: dir.to_path_buf(), what: "photographs (.jpg/.png)" });
        }
        let mut paths = Vec::new();
        collect(dir, 0, &mut paths)?;
        if paths.is_empty() {
            return Err(DataError::InvalidArgument(format!("{}: no .jpg, .jpeg or .png photo in this folder or below it", dir.display())));
        }
        let mut photos = Vec::with_capacity(paths.len());
        for path in paths {
            let frame = read_frame(&path)?;
            let (h, w) = (frame.height(), frame.width());
            if h.min(w) < MIN_PHOTO_SIDE {
                return Err(DataError::InvalidArgument(format!("{}: a {w}x{h} photo; photos need at least {MIN_PHOTO_SIDE} pixels on each side", path.display())));
            }
            let name = path.strip_prefix(dir).unwrap_or(&path).to_string_lossy().into_owned();
            photos.push(Arc::new(Photo { name, rgb: fit(frame.rgb, PHOTO_SIDE) }));
        }
        Ok(PhotoSet { root: dir.to_path_buf(), photos })
    }

    /// A set of photos already in memory (`root` only names it).
    pub fn from_photos(root: impl Into<PathBuf>, photos: Vec<Photo>) -> Result<Self> {
        if photos.is_empty() || photos.len() > MAX_PHOTOS {
            return Err(DataError::InvalidArgument(format!("a photo set holds 1 to {MAX_PHOTOS} photos (got {})", photos.len())));
        }
        if let Some(p) = photos.iter().find(|p| p.rgb.dim().2 != 3 || p.height().min(p.width()) < MIN_PHOTO_SIDE) {
            return Err(DataError::InvalidArgument(format!("photo {}: {:?} (height, width, channels); photos are RGB with at least {MIN_PHOTO_SIDE} pixels a side", p.name, p.rgb.dim())));
        }
        let photos = photos.into_iter().map(|p| Arc::new(Photo { name: p.name, rgb: fit(p.rgb, PHOTO_SIDE) })).collect();
        Ok(PhotoSet { root: root.into(), photos })
    }

    /// The folder the photos came from.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Number of photos.
    pub fn len(&self) -> usize {
        self.photos.len()
    }

    /// Whether it holds no photo (never, once loaded).
    pub fn is_empty(&self) -> bool {
        self.photos.is_empty()
    }

    /// Photo `i` (wrapping around).
    pub fn get(&self, i: usize) -> &Arc<Photo> {
        &self.photos[i % self.photos.len()]
    }

    /// The photos' names, in the set's order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.photos.iter().map(|p| p.name.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Frame;
    use crate::io::write_frame;

    fn gradient(h: usize, w: usize) -> Frame {
        Frame { rgb: Array3::from_shape_fn((h, w, 3), |(y, x, c)| ((y * 3 + x * 5 + c * 70) % 256) as u8) }
    }

    #[test]
    fn loads_a_folder_with_sub_folders_in_natural_order_and_downscales() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("b")).unwrap();
        write_frame(&dir.path().join("p10.jpg"), &gradient(40, 60), 90).unwrap();
        write_frame(&dir.path().join("p2.png"), &gradient(2000, 1500), 90).unwrap();
        write_frame(&dir.path().join("b/inner.jpeg"), &gradient(64, 64), 90).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not a photo").unwrap();
        let set = PhotoSet::load(dir.path()).unwrap();
        let names: Vec<_> = set.names().collect();
        assert_eq!(names, ["b/inner.jpeg", "p2.png", "p10.jpg"]);
        assert_eq!((set.get(1).height(), set.get(1).width()), (PHOTO_SIDE, 768));
        assert_eq!((set.get(2).height(), set.get(2).width()), (40, 60));
    }

    #[test]
    fn errors_name_the_folder_or_file() {
        let dir = tempfile::tempdir().unwrap();
        let e = PhotoSet::load(&dir.path().join("nope")).unwrap_err().to_string();
        assert!(e.contains("nope") && e.contains("missing folder"), "{e}");
        let e = PhotoSet::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("no .jpg"), "{e}");
        std::fs::write(dir.path().join("broken.jpg"), b"\xff\xd8\xff garbage").unwrap();
        let e = PhotoSet::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("broken.jpg"), "{e}");
        std::fs::remove_file(dir.path().join("broken.jpg")).unwrap();
        write_frame(&dir.path().join("tiny.png"), &gradient(8, 100), 90).unwrap();
        let e = PhotoSet::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("tiny.png") && e.contains("at least 32"), "{e}");
    }

    #[test]
    fn sampling_is_bilinear_and_mirrored() {
        let p = Photo { name: "g".into(), rgb: gradient(40, 60).rgb };
        assert_eq!(p.sample(3.0, 4.0), [0, 1, 2].map(|c| p.rgb[[3, 4, c]] as f32));
        let mid = p.sample(3.0, 4.5);
        assert!((mid[0] - (p.rgb[[3, 4, 0]] as f32 + p.rgb[[3, 5, 0]] as f32) / 2.0).abs() < 1e-4);
        assert_eq!(p.sample(-3.0, -4.0), p.sample(3.0, 4.0));
        assert_eq!(p.sample(39.0 + 2.0, 59.0 + 1.0), p.sample(37.0, 58.0));
    }
}
