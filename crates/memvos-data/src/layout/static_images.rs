//! Static image sets for stage-0 training (methods.md §4.1): FSS-1000
//! (`fss/<class>/<n>.jpg` + `.png`), DUTS-TR/TE, ECSSD, BIG_small, HRSOD_small
//! (`<set>/<name>.jpg` + `<name>.png`). Any folder tree of image + mask pairs works.

use std::path::{Path, PathBuf};

use ndarray::Array2;

use super::{files_with_ext, require_dir, subdirs};
use crate::error::{DataError, Result};
use crate::frame::Frame;
use crate::io::read_frame;

/// One image and its (possibly soft, 0..=255) mask.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaticSample {
    /// The image.
    pub image: PathBuf,
    /// Its mask.
    pub mask: PathBuf,
}

impl StaticSample {
    /// Decodes the image and the mask as 8-bit greyscale (values are soft; > 127 is object).
    pub fn read(&self) -> Result<(Frame, Array2<u8>)> {
        let frame = read_frame(&self.image)?;
        let bytes = std::fs::read(&self.mask).map_err(|e| DataError::io(&self.mask, e))?;
        let img = image::load_from_memory(&bytes).map_err(|e| DataError::Decode {
            path: self.mask.clone(),
            reason: e.to_string(),
        })?;
        let gray = img.into_luma8();
        let (w, h) = (gray.width() as usize, gray.height() as usize);
        if (h, w) != (frame.height(), frame.width()) {
            return Err(DataError::SizeMismatch {
                path: self.mask.clone(),
                got_w: w,
                got_h: h,
                want_w: frame.width(),
                want_h: frame.height(),
            });
        }
        let mask = Array2::from_shape_vec((h, w), gray.into_raw())
            .map_err(|e| DataError::InvalidArgument(e.to_string()))?;
        Ok((frame, mask))
    }
}

/// The image + mask pairs below a folder: a `.jpg`/`.jpeg` with a `.png` of the same stem
/// beside it. Listed recursively, sorted by path; nothing is decoded.
#[derive(Clone, Debug)]
pub struct StaticImages {
    /// The folder listed.
    pub root: PathBuf,
    /// The pairs, sorted by path.
    pub samples: Vec<StaticSample>,
}

impl StaticImages {
    /// Lists the pairs below `root` (an error when there is none).
    pub fn open(root: &Path) -> Result<Self> {
        require_dir(root, "static image set")?;
        let mut samples = Vec::new();
        collect(root, &mut samples)?;
        if samples.is_empty() {
            return Err(DataError::EmptyVideo {
                video: "static image set".into(),
                path: root.to_path_buf(),
            });
        }
        Ok(StaticImages {
            root: root.to_path_buf(),
            samples,
        })
    }
}

fn collect(dir: &Path, out: &mut Vec<StaticSample>) -> Result<()> {
    let pngs: std::collections::BTreeMap<String, PathBuf> =
        files_with_ext(dir, &["png"])?.into_iter().collect();
    for (stem, image) in files_with_ext(dir, &["jpg", "jpeg"])? {
        if let Some(mask) = pngs.get(&stem) {
            out.push(StaticSample {
                image,
                mask: mask.clone(),
            });
        }
    }
    for sub in subdirs(dir)? {
        collect(&dir.join(sub), out)?;
    }
    Ok(())
}
