//! DAVIS 2016 and 2017 roots (trainval, test-dev; 480p and Full-Resolution):
//! `JPEGImages/<res>/<video>/%05d.jpg`, `Annotations/<res>/<video>/%05d.png`,
//! `ImageSets/<year>/<split>.txt`.

use std::fs;
use std::path::{Path, PathBuf};

use super::{Dataset, list_video, require_dir};
use crate::error::{DataError, Result};
use crate::io::MaskEncoding;

/// The two resolutions DAVIS ships.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum DavisResolution {
    #[default]
    #[serde(rename = "480p")]
    /// `480p`.
    P480,
    #[serde(rename = "Full-Resolution")]
    /// `Full-Resolution`.
    Full,
}

impl DavisResolution {
    /// The folder name under `JPEGImages` and `Annotations`.
    pub fn folder(self) -> &'static str {
        match self {
            DavisResolution::P480 => "480p",
            DavisResolution::Full => "Full-Resolution",
        }
    }
}

/// Reader of a DAVIS root.
#[derive(Clone, Debug)]
pub struct Davis {
    /// The root (holding `JPEGImages`, `Annotations`, `ImageSets`).
    pub root: PathBuf,
    /// 2016 or 2017 (which `ImageSets` list).
    pub year: u16,
    /// The image set (`train`, `val`, `test-dev`, …).
    pub split: String,
    /// Which resolution's folders.
    pub resolution: DavisResolution,
}

impl Davis {
    /// A reader of image set `split` of year `year` at 480p.
    pub fn new(root: impl Into<PathBuf>, year: u16, split: &str) -> Self {
        Davis {
            root: root.into(),
            year,
            split: split.to_string(),
            resolution: DavisResolution::P480,
        }
    }

    /// The same reader at another resolution.
    pub fn resolution(mut self, resolution: DavisResolution) -> Self {
        self.resolution = resolution;
        self
    }

    /// The index file naming the videos of this year and split.
    pub fn image_set(&self) -> Result<PathBuf> {
        let modern = self
            .root
            .join("ImageSets")
            .join(self.year.to_string())
            .join(format!("{}.txt", self.split));
        if modern.is_file() {
            return Ok(modern);
        }
        // The original DAVIS-2016 release: `ImageSets/480p/val.txt` with lines of frame paths.
        let legacy = self
            .root
            .join("ImageSets")
            .join(self.resolution.folder())
            .join(format!("{}.txt", self.split));
        if self.year == 2016 && legacy.is_file() {
            return Ok(legacy);
        }
        Err(DataError::MissingFile {
            path: modern,
            what: "DAVIS image set listing the videos",
        })
    }

    /// The video names of the image set, in file order.
    pub fn video_names(&self) -> Result<Vec<String>> {
        let path = self.image_set()?;
        let text = fs::read_to_string(&path).map_err(|e| DataError::io(&path, e))?;
        parse_image_set(&text, &path)
    }
}

/// The video names of an image set's text (`path` names it in errors): one name per line, or
/// the legacy DAVIS-2016 lines of frame paths.
pub fn parse_image_set(text: &str, path: &Path) -> Result<Vec<String>> {
    let path = path.to_path_buf();
    {
        let mut names: Vec<String> = Vec::new();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            // Legacy lines look like "/JPEGImages/480p/bear/00000.jpg /Annotations/...".
            let name = if line.contains('/') {
                let first = line.split_whitespace().next().unwrap_or(line);
                let parts: Vec<&str> = first.split('/').filter(|p| !p.is_empty()).collect();
                match parts.len() {
                    n if n >= 2 => parts[n - 2].to_string(),
                    _ => {
                        return Err(DataError::Parse {
                            path,
                            reason: format!("cannot read a video name from line {line:?}"),
                        });
                    }
                }
            } else {
                line.to_string()
            };
            if !names.contains(&name) {
                names.push(name);
            }
        }
        Ok(names)
    }
}

impl Davis {
    /// Lists the videos. Frames come from `JPEGImages/<res>` when that folder exists, otherwise
    /// from the annotations alone (an annotations-only root, enough for evaluation).
    pub fn open(&self) -> Result<Dataset> {
        let res = self.resolution.folder();
        let ann_root = self.root.join("Annotations").join(res);
        let img_root = self.root.join("JPEGImages").join(res);
        require_dir(&self.root, "DAVIS root")?;
        require_dir(&ann_root, "DAVIS annotations")?;
        let index = self.image_set()?;
        let has_images = img_root.is_dir();
        let encoding = if self.year == 2016 {
            MaskEncoding::Binary
        } else {
            MaskEncoding::Labels
        };
        let mut videos = Vec::new();
        for name in self.video_names()? {
            let ann = ann_root.join(&name);
            let img = img_root.join(&name);
            let listed = if has_images { &img } else { &ann };
            if !listed.is_dir() {
                return Err(DataError::ListedVideoMissing {
                    path: index.clone(),
                    video: name,
                    folder: listed.clone(),
                });
            }
            videos.push(list_video(
                &name,
                has_images.then_some(img.as_path()),
                Some(&ann),
                encoding,
            )?);
        }
        Ok(Dataset {
            root: self.root.clone(),
            videos,
        })
    }
}

/// Path of the first-frame palette PNG of a DAVIS root, whose palette results copy.
pub fn reference_palette_file(root: &Path) -> PathBuf {
    root.join("Annotations/480p/blackswan/00000.png")
}
