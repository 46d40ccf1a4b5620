//! Results writers: the DAVIS layout (`<out>/<video>/<frame>.png`) and the YouTube-VOS
//! submission layout (`<out>/Annotations/<video>/<frame>.png`, only the frames `meta.json`
//! asks for unless told otherwise). Every file is written atomically.

use std::path::PathBuf;

use crate::error::Result;
use crate::frame::LabelMap;
use crate::io::{Palette, write_binary_mask, write_mask};
use crate::layout::Video;

/// Writes DAVIS results: palette PNGs (2017) or greyscale 0/255 PNGs (2016).
#[derive(Clone, Debug)]
pub struct DavisWriter {
    /// The results folder.
    pub out: PathBuf,
    /// 2016 (binary greyscale) or 2017 (palette).
    pub year: u16,
    /// The palette of the PNGs (DAVIS's by default).
    pub palette: Palette,
}

impl DavisWriter {
    /// A writer into `out` for year `year`.
    pub fn new(out: impl Into<PathBuf>, year: u16) -> Self {
        DavisWriter {
            out: out.into(),
            year,
            palette: Palette::davis(),
        }
    }

    /// The same writer with another palette (the ground truth's, say).
    pub fn with_palette(mut self, palette: Palette) -> Self {
        self.palette = palette;
        self
    }

    /// Where a frame's result goes (`out/video/frame.png`).
    pub fn path(&self, video: &str, frame: &str) -> PathBuf {
        self.out.join(video).join(format!("{frame}.png"))
    }

    /// Writes a frame's result atomically; returns its path.
    pub fn write(&self, video: &str, frame: &str, labels: &LabelMap) -> Result<PathBuf> {
        let path = self.path(video, frame);
        if self.year == 2016 {
            write_binary_mask(&path, labels)?;
        } else {
            write_mask(&path, labels, &self.palette)?;
        }
        Ok(path)
    }
}

/// Writes a YouTube-VOS submission folder.
#[derive(Clone, Debug)]
pub struct YouTubeWriter {
    /// The submission folder.
    pub out: PathBuf,
    /// The palette of the PNGs.
    pub palette: Palette,
    /// Write every frame from the first annotation on, not only the required ones.
    pub write_all: bool,
}

impl YouTubeWriter {
    /// A writer into `out`, required frames only.
    pub fn new(out: impl Into<PathBuf>) -> Self {
        YouTubeWriter {
            out: out.into(),
            palette: Palette::davis(),
            write_all: false,
        }
    }

    /// Whether to write every frame from the first annotation on.
    pub fn write_all(mut self, yes: bool) -> Self {
        self.write_all = yes;
        self
    }

    /// Whether frame `frame` of `video` belongs in the submission.
    pub fn wants(&self, video: &Video, frame: &str) -> bool {
        self.write_all
            || match &video.required_frames {
                Some(req) => req.binary_search_by(|f| f.as_str().cmp(frame)).is_ok(),
                None => true,
            }
    }

    /// Where a frame's mask goes (`out/Annotations/video/frame.png`).
    pub fn path(&self, video: &str, frame: &str) -> PathBuf {
        self.out
            .join("Annotations")
            .join(video)
            .join(format!("{frame}.png"))
    }

    /// Writes the frame if the submission wants it; returns the path written, if any.
    pub fn write(&self, video: &Video, frame: &str, labels: &LabelMap) -> Result<Option<PathBuf>> {
        if !self.wants(video, frame) {
            return Ok(None);
        }
        let path = self.path(&video.name, frame);
        write_mask(&path, labels, &self.palette)?;
        Ok(Some(path))
    }

    /// `out/Annotations`.
    pub fn annotations_dir(&self) -> PathBuf {
        self.out.join("Annotations")
    }
}
