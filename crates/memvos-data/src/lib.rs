//! # memvos-data
//!
//! Everything memvos reads and writes before and after the network: RGB frames and label maps
//! and their conversion to network input ([`frame`]), JPEG/PNG frames and palette PNG masks
//! ([`io`]), the DAVIS, YouTube-VOS, BL30K, static-image and generic-folder layouts
//! ([`layout`]), results writers ([`writer`]), synthetic videos ([`synth`]; procedural, or cut
//! from a folder of real photographs, [`photos`]), training augmentation with thin-plate-spline
//! warps ([`augment`]) and overlays for a person to look at ([`overlay`]: GIF, or AV1 in MP4
//! with the `mp4` feature).
//!
//! Library code never panics on user data: every failure is a [`DataError`] naming the file,
//! folder or video at fault.

#![warn(missing_docs)]

pub mod augment;
pub mod error;
pub mod failpoint;
pub mod frame;
pub mod io;
pub mod layout;
pub mod overlay;
pub mod paths;
pub mod photos;
pub mod synth;
pub mod writer;

pub use error::{DataError, Result};
pub use frame::{Frame, LabelMap, Pad};
pub use io::{Mask, MaskEncoding, Palette, read_frame, read_mask, write_atomic, write_mask};
pub use layout::{Dataset, FrameEntry, ObjectEntry, Video};
