//! Dataset layouts as the datasets ship them (see `datasets-layout.md` at the repository root).
//! Listing a dataset reads folders and index files only; no image is decoded until asked for.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};
use crate::frame::{Frame, LabelMap};
use crate::io::{MaskEncoding, read_frame, read_mask_with};

pub mod davis;
pub mod folder;
pub mod shard;
pub mod static_images;
pub mod youtube;

pub use davis::{Davis, DavisResolution};
pub use folder::{bl30k, generic, video_folder};
pub use shard::{Shard, ShardError};
pub use static_images::{StaticImages, StaticSample};
pub use youtube::{YouTube, YouTubeMeta};

/// One frame of a listed video: its name (the file stem, e.g. `00000`), its image file and,
/// where one exists, its annotation file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameEntry {
    /// The frame's name.
    pub name: String,
    /// Its image file (absent in an annotations-only root).
    pub image: Option<PathBuf>,
    /// Its annotation file, if any.
    pub annotation: Option<PathBuf>,
}

/// Where an object first appears and on which frames it is annotated (YouTube-VOS `meta.json`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectEntry {
    /// The object's label.
    pub id: u8,
    /// The frame it first appears in.
    pub first_frame: String,
    /// The frames it is annotated on.
    pub frames: Vec<String>,
    /// Its category, where the index gives one.
    pub category: Option<String>,
}

/// A listed video.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Video {
    /// The video's name (its folder).
    pub name: String,
    /// Its frames in order.
    pub frames: Vec<FrameEntry>,
    /// Objects known from an index file (YouTube-VOS). Empty where only the masks tell.
    pub objects: Vec<ObjectEntry>,
    /// Frames a submission must contain (YouTube-VOS: the union of the objects' frames);
    /// `None` means every frame from the first annotation on.
    pub required_frames: Option<Vec<String>>,
    /// How the annotation files encode labels.
    pub mask_encoding: MaskEncoding,
}

impl Video {
    /// Frames.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Whether it has no frame.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Index of the frame with this name.
    pub fn position(&self, name: &str) -> Option<usize> {
        self.frames.iter().position(|f| f.name == name)
    }

    /// Indices of the frames that have an annotation file.
    pub fn annotated(&self) -> Vec<usize> {
        (0..self.frames.len())
            .filter(|&i| self.frames[i].annotation.is_some())
            .collect()
    }

    /// Decodes frame `i`.
    pub fn read_frame(&self, i: usize) -> Result<Frame> {
        let f = self.frame_entry(i)?;
        let path = f.image.as_ref().ok_or_else(|| DataError::NoImage { video: self.name.clone(), frame: f.name.clone() })?;
        read_frame(path)
    }

    /// Decodes the annotation of frame `i`, checking its size against `size` (height, width)
    /// when given. `Ok(None)` when the frame has no annotation.
    pub fn read_annotation(&self, i: usize, size: Option<(usize, usize)>) -> Result<Option<LabelMap>> {
        let f = self.frame_entry(i)?;
        let Some(path) = &f.annotation else {
            return Ok(None);
        };
        let mask = read_mask_with(path, self.mask_encoding)?;
        if let Some((h, w)) = size {
            mask.labels.expect_size(h, w, path)?;
        }
        Ok(Some(mask.labels))
    }

    /// Decodes frame `i` and its annotation, checking that their sizes agree.
    /// Checks that every frame has an image file (before any heavy work on a root that may be
    /// annotations-only).
    pub fn check_images(&self) -> Result<()> {
        match self.frames.iter().find(|f| f.image.is_none()) {
            Some(f) => Err(DataError::NoImage { video: self.name.clone(), frame: f.name.clone() }),
            None => Ok(()),
        }
    }

    /// Checks that every object of the index (`meta.json`) shows in the mask of the frame it
    /// first appears on; `masks[i]` is frame `i`'s mask where one was read.
    pub fn check_first_appearances(&self, masks: &[Option<LabelMap>]) -> Result<()> {
        for o in &self.objects {
            let Some(i) = self.position(&o.first_frame) else {
                return Err(DataError::MissingFirstMask { video: self.name.clone(), object: o.id, frame: o.first_frame.clone(), path: None });
            };
            let shows = masks.get(i).and_then(|m| m.as_ref()).is_some_and(|m| m.labels.iter().any(|&v| v == o.id));
            if !shows {
                let path = self.frames[i].annotation.clone();
                return Err(DataError::MissingFirstMask { video: self.name.clone(), object: o.id, frame: o.first_frame.clone(), path });
            }
        }
        Ok(())
    }

    /// Frame `i` and its annotation, if any (checked against the frame's size).
    pub fn read_pair(&self, i: usize) -> Result<(Frame, Option<LabelMap>)> {
        let frame = self.read_frame(i)?;
        let mask = self.read_annotation(i, Some((frame.height(), frame.width())))?;
        Ok((frame, mask))
    }

    fn frame_entry(&self, i: usize) -> Result<&FrameEntry> {
        self.frames.get(i).ok_or_else(|| {
            DataError::InvalidArgument(format!(
                "video {} has {} frames, frame {i} asked for",
                self.name,
                self.frames.len()
            ))
        })
    }
}

/// A listed dataset: a root and its videos in index order.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// The root folder.
    pub root: PathBuf,
    /// The videos.
    pub videos: Vec<Video>,
}

impl Dataset {
    /// The video of a name.
    pub fn video(&self, name: &str) -> Option<&Video> {
        self.videos.iter().find(|v| v.name == name)
    }

    /// Total number of frames over all videos.
    pub fn num_frames(&self) -> usize {
        self.videos.iter().map(Video::len).sum()
    }
}

pub(crate) fn require_dir(path: &Path, what: &'static str) -> Result<()> {
    if path.is_dir() {
        Ok(())
    } else {
        Err(DataError::MissingFolder {
            path: path.to_path_buf(),
            what,
        })
    }
}

/// Files in `dir` whose extension is one of `exts` (case-insensitive), as (stem, path), in
/// natural order of their stems (`2` before `10`); two files of one stem are an error. Hidden
/// files (e.g. our own temporary files) are skipped.
pub(crate) fn files_with_ext(dir: &Path, exts: &[&str]) -> Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| DataError::io(dir, e))? {
        let entry = entry.map_err(|e| DataError::io(dir, e))?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || !path.is_file() {
            continue;
        }
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        if exts.contains(&ext.as_str()) {
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            out.push((stem, path));
        }
    }
    crate::paths::sort_natural(&mut out, |(stem, _)| stem.as_str());
    // Two files of one stem (`00003.jpg` and `00003.png`, `a.png` and `a.PNG`) would both be
    // that frame: refuse rather than pick one.
    if let Some(w) = out.windows(2).find(|w| w[0].0 == w[1].0) {
        let (a, b) = (&w[0].1, &w[1].1);
        return Err(DataError::Ambiguous {
            path: dir.to_path_buf(),
            reason: format!(
                "{} and {} would both be frame {}; keep one",
                a.file_name().unwrap_or_default().to_string_lossy(),
                b.file_name().unwrap_or_default().to_string_lossy(),
                w[0].0
            ),
        });
    }
    Ok(out)
}

/// Sub-folders of `dir`, in natural order of their names.
pub(crate) fn subdirs(dir: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| DataError::io(dir, e))? {
        let entry = entry.map_err(|e| DataError::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') && entry.path().is_dir() {
            out.push(name);
        }
    }
    crate::paths::sort_natural(&mut out, |s| s.as_str());
    Ok(out)
}

pub(crate) const IMAGE_EXTS: &[&str] = &["jpg", "jpeg", "png"];

/// Lists one video from its frames folder and (optional) annotations folder: frames are image
/// files in natural name order (`2.jpg` before `10.jpg`); an annotation is the `.png` named like a frame. An annotation with no
/// frame of its name is ignored. `image_dir = None` lists an annotations-only video (for
/// evaluation), whose frames are the annotation files.
pub(crate) fn list_video(
    name: &str,
    image_dir: Option<&Path>,
    annotation_dir: Option<&Path>,
    mask_encoding: MaskEncoding,
) -> Result<Video> {
    let annotation_files = match annotation_dir {
        Some(d) if d.is_dir() => files_with_ext(d, &["png"])?,
        _ => Vec::new(),
    };
    let annotations: BTreeMap<String, PathBuf> = annotation_files.iter().cloned().collect();
    let frames: Vec<FrameEntry> = match image_dir {
        Some(d) => files_with_ext(d, IMAGE_EXTS)?
            .into_iter()
            .map(|(stem, path)| FrameEntry {
                annotation: annotations.get(&stem).cloned(),
                name: stem,
                image: Some(path),
            })
            .collect(),
        None => annotation_files
            .iter()
            .map(|(stem, path)| FrameEntry {
                name: stem.clone(),
                image: None,
                annotation: Some(path.clone()),
            })
            .collect(),
    };
    if frames.is_empty() {
        let path = image_dir.or(annotation_dir).unwrap_or(Path::new(name));
        return Err(DataError::EmptyVideo {
            video: name.to_string(),
            path: path.to_path_buf(),
        });
    }
    Ok(Video {
        name: name.to_string(),
        frames,
        objects: Vec::new(),
        required_frames: None,
        mask_encoding,
    })
}

/// What the annotations of a video hold: its size, and per object the frame it first appears in
/// and on how many annotated frames it is present.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VideoSummary {
    /// The video's name.
    pub name: String,
    /// Frames.
    pub frames: usize,
    /// Frames with an annotation.
    pub annotated: usize,
    /// Height of the frames.
    pub height: usize,
    /// Width of the frames.
    pub width: usize,
    /// `(id, first frame name, annotated frames present in)`, by id.
    pub objects: Vec<(u8, String, usize)>,
}

/// Reads every annotation of a video (checking each against the size of the first) and
/// summarises it. Frames are not decoded; their size comes from the first frame's header.
pub fn summarize(video: &Video) -> Result<VideoSummary> {
    let mut size: Option<(usize, usize)> = match video.frames.first().and_then(|f| f.image.as_ref()) {
        Some(p) => Some(crate::io::image_size(p)?),
        None => None,
    };
    let mut objects: BTreeMap<u8, (String, usize)> = BTreeMap::new();
    let annotated = video.annotated();
    for &i in &annotated {
        let Some(mask) = video.read_annotation(i, size)? else { continue };
        size.get_or_insert((mask.height(), mask.width()));
        for id in mask.object_ids() {
            objects
                .entry(id)
                .or_insert_with(|| (video.frames[i].name.clone(), 0))
                .1 += 1;
        }
    }
    let (height, width) = size.unwrap_or((0, 0));
    Ok(VideoSummary {
        name: video.name.clone(),
        frames: video.len(),
        annotated: annotated.len(),
        height,
        width,
        objects: objects.into_iter().map(|(id, (f, n))| (id, f, n)).collect(),
    })
}
