//! YouTube-VOS 2018/2019 roots: `<split>/JPEGImages/<video>/<frame>.jpg`,
//! `<split>/Annotations/<video>/<frame>.png`, `<split>/meta.json`, and the dense frames in
//! `all_frames/<split>_all_frames/JPEGImages/<video>/`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{Dataset, ObjectEntry, Video, list_video, require_dir};
use crate::error::{DataError, Result};
use crate::io::MaskEncoding;
use crate::paths::{natural_cmp, sort_natural};

/// `meta.json` as YouTube-VOS ships it.
#[derive(Clone, Debug, Deserialize)]
pub struct YouTubeMeta {
    /// The videos by name.
    pub videos: BTreeMap<String, MetaVideo>,
}

#[derive(Clone, Debug, Deserialize)]
/// One video of `meta.json`.
pub struct MetaVideo {
    /// Its objects by id (as a string).
    pub objects: BTreeMap<String, MetaObject>,
}

#[derive(Clone, Debug, Deserialize)]
/// One object of `meta.json`.
pub struct MetaObject {
    #[serde(default)]
    /// Its category (in the training split).
    pub category: Option<String>,
    /// The frames it is annotated on.
    pub frames: Vec<String>,
}

impl YouTubeMeta {
    /// Reads a `meta.json` file.
    pub fn read(path: &Path) -> Result<Self> {
        let text = fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
        Self::parse(&text, path)
    }

    /// Parses the text of a `meta.json` (`path` names it in errors).
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        serde_json::from_str(text).map_err(|e| DataError::Parse {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    }
}

/// Reader of a YouTube-VOS root (2018 or 2019: the layouts are the same).
#[derive(Clone, Debug)]
pub struct YouTube {
    /// The root (holding `train`, `valid`, …).
    pub root: PathBuf,
    /// The split folder.
    pub split: String,
    /// Read frames from `all_frames/<split>_all_frames` (30 fps) instead of `<split>` (every 5th).
    pub all_frames: bool,
}

impl YouTube {
    /// A reader of split `split`.
    pub fn new(root: impl Into<PathBuf>, split: &str) -> Self {
        YouTube {
            root: root.into(),
            split: split.to_string(),
            all_frames: false,
        }
    }

    /// Reads the dense frames (`all_frames`) instead of every 5th.
    pub fn all_frames(mut self, yes: bool) -> Self {
        self.all_frames = yes;
        self
    }

    /// The split's `meta.json`.
    pub fn meta_path(&self) -> PathBuf {
        self.root.join(&self.split).join("meta.json")
    }

    /// The folder the frames are read from.
    pub fn image_root(&self) -> PathBuf {
        if self.all_frames {
            self.root
                .join("all_frames")
                .join(format!("{}_all_frames", self.split))
                .join("JPEGImages")
        } else {
            self.root.join(&self.split).join("JPEGImages")
        }
    }

    /// Lists the split's videos with their objects and required frames.
    pub fn open(&self) -> Result<Dataset> {
        require_dir(&self.root, "YouTube-VOS root")?;
        let meta_path = self.meta_path();
        if !meta_path.is_file() {
            return Err(DataError::MissingFile {
                path: meta_path,
                what: "YouTube-VOS meta.json",
            });
        }
        let meta = YouTubeMeta::read(&meta_path)?;
        let img_root = self.image_root();
        let ann_root = self.root.join(&self.split).join("Annotations");
        require_dir(&img_root, "YouTube-VOS frames")?;
        require_dir(&ann_root, "YouTube-VOS annotations")?;
        let mut videos = Vec::new();
        for (name, mv) in &meta.videos {
            let img = img_root.join(name);
            if !img.is_dir() {
                return Err(DataError::ListedVideoMissing {
                    path: meta_path.clone(),
                    video: name.clone(),
                    folder: img,
                });
            }
            let mut video: Video =
                list_video(name, Some(&img), Some(&ann_root.join(name)), MaskEncoding::Labels)?;
            let mut required = BTreeSet::new();
            for (id, obj) in &mv.objects {
                let id: u8 = id.parse().map_err(|_| DataError::Parse {
                    path: meta_path.clone(),
                    reason: format!("video {name}: object id {id:?} is not a number in 1..=255"),
                })?;
                let first = obj.frames.iter().min_by(|a, b| natural_cmp(a, b)).cloned().ok_or_else(|| DataError::Parse {
                    path: meta_path.clone(),
                    reason: format!("video {name}: object {id} lists no frames"),
                })?;
                required.extend(obj.frames.iter().cloned());
                video.objects.push(ObjectEntry {
                    id,
                    first_frame: first,
                    frames: obj.frames.clone(),
                    category: obj.category.clone(),
                });
            }
            video.objects.sort_by(|a, b| natural_cmp(&a.first_frame, &b.first_frame).then(a.id.cmp(&b.id)));
            let mut required: Vec<String> = required.into_iter().collect();
            sort_natural(&mut required, |s| s.as_str());
            video.required_frames = Some(required);
            videos.push(video);
        }
        Ok(Dataset {
            root: self.root.clone(),
            videos,
        })
    }
}
