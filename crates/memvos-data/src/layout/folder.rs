//! Folder layouts without an index file: one video (frames folder + masks folder), a generic
//! root (`JPEGImages/<video>/` + `Annotations/<video>/`), and BL30K (the same layout).

use std::path::Path;

use super::{Dataset, Video, list_video, require_dir, subdirs};
use crate::error::Result;
use crate::io::MaskEncoding;

/// One video: frames are the image files (JPEG or PNG) of `frames_dir` in natural name order; masks are
/// the palette PNGs of `masks_dir` named like the frame they annotate.
pub fn video_folder(name: &str, frames_dir: &Path, masks_dir: Option<&Path>) -> Result<Video> {
    require_dir(frames_dir, "frames folder")?;
    if let Some(m) = masks_dir {
        require_dir(m, "masks folder")?;
        crate::paths::check_distinct(("--masks", m), ("--frames", frames_dir))?;
    }
    list_video(name, Some(frames_dir), masks_dir, MaskEncoding::Labels)
}

/// A generic root: `<root>/JPEGImages/<video>/<frame>.jpg|png` and
/// `<root>/Annotations/<video>/<frame>.png` (first-frame masks, or any frames' masks).
pub fn generic(root: &Path) -> Result<Dataset> {
    require_dir(root, "dataset root")?;
    let img_root = root.join("JPEGImages");
    let ann_root = root.join("Annotations");
    require_dir(&img_root, "JPEGImages folder")?;
    require_dir(&ann_root, "Annotations folder")?;
    let videos = subdirs(&img_root)?
        .into_iter()
        .map(|name| {
            list_video(
                &name,
                Some(&img_root.join(&name)),
                Some(&ann_root.join(&name)),
                MaskEncoding::Labels,
            )
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Dataset {
        root: root.to_path_buf(),
        videos,
    })
}

/// BL30K: `BL30K/JPEGImages/<video>/<frame>.jpg` and `BL30K/Annotations/<video>/<frame>.png`
/// (palette indices, every frame annotated).
pub fn bl30k(root: &Path) -> Result<Dataset> {
    generic(root)
}
