//! Overlays of label maps on frames, and animated GIFs of them, for a person to look at.

use std::path::Path;

use crate::error::{DataError, Result};
use crate::frame::{Frame, LabelMap};
use crate::io::{Palette, write_atomic};

/// Which overlay a runner writes beside the masks (`--overlay`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OverlayKind {
    /// `overlay.gif`: every frame in full colour (its own palette) with the masks blended in.
    #[default]
    Gif,
    /// None: masks only.
    None,
}

impl OverlayKind {
    /// The file it is written to, if any.
    pub fn file_name(self) -> Option<&'static str> {
        match self {
            OverlayKind::Gif => Some("overlay.gif"),
            OverlayKind::None => None,
        }
    }
}

impl std::str::FromStr for OverlayKind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "gif" => Ok(OverlayKind::Gif),
            "none" => Ok(OverlayKind::None),
            "mp4" | "webm" => Err(format!("--overlay {s}: memvos writes no MP4/WebM yet; use gif (full colour, a palette per frame) or none")),
            _ => Err(format!("--overlay {s}: expected gif or none")),
        }
    }
}

/// Writes the overlay of `kind` into `dir` from frames and their labels (nothing for
/// [`OverlayKind::None`]). Returns the file written.
pub fn write_overlay(kind: OverlayKind, dir: &Path, frames: &[(&Frame, &LabelMap)], palette: &Palette) -> Result<Option<std::path::PathBuf>> {
    let Some(name) = kind.file_name() else { return Ok(None) };
    if frames.is_empty() {
        return Ok(None);
    }
    let blended = frames.iter().map(|(f, l)| overlay(f, l, palette, 0.5)).collect::<Result<Vec<_>>>()?;
    let path = dir.join(name);
    write_gif(&path, &blended, 100, 480)?;
    Ok(Some(path))
}

/// Blends each object's palette colour over the frame with opacity `alpha` and draws its
/// outline (the object's pixels next to another label) in the full palette colour, so objects
/// stay readable on busy real frames and neighbouring objects stay apart. The frame keeps its
/// colours everywhere else.
pub fn overlay(frame: &Frame, labels: &LabelMap, palette: &Palette, alpha: f32) -> Result<Frame> {
    let (h, w) = (frame.height(), frame.width());
    labels.expect_size(h, w, Path::new("overlay"))?;
    let mut out = frame.clone();
    for y in 0..h {
        for x in 0..w {
            let l = labels.labels[[y, x]];
            if l == 0 {
                continue;
            }
            let contour = [(0i32, 1i32), (1, 0), (0, -1), (-1, 0)].iter().any(|&(dy, dx)| {
                let (yy, xx) = (y as i32 + dy, x as i32 + dx);
                yy < 0 || xx < 0 || yy >= h as i32 || xx >= w as i32 || labels.labels[[yy as usize, xx as usize]] != l
            });
            let c = palette.colour(l).unwrap_or([255, 255, 255]);
            for k in 0..3 {
                let v = out.rgb[[y, x, k]] as f32;
                let blended = if contour { c[k] as f32 } else { v * (1.0 - alpha) + c[k] as f32 * alpha };
                out.rgb[[y, x, k]] = blended.round().clamp(0.0, 255.0) as u8;
            }
        }
    }
    Ok(out)
}

/// The frame scaled down by `step` in each direction, each pixel the mean of its block (so thin
/// contours fade instead of vanishing), as packed RGB.
fn shrink(f: &Frame, step: usize) -> Vec<u8> {
    let (h, w) = (f.height(), f.width());
    let (oh, ow) = (h.div_ceil(step), w.div_ceil(step));
    let mut out = Vec::with_capacity(oh * ow * 3);
    for oy in 0..oh {
        for ox in 0..ow {
            let (y1, x1) = ((oy * step + step).min(h), (ox * step + step).min(w));
            let n = ((y1 - oy * step) * (x1 - ox * step)) as u32;
            for k in 0..3 {
                let mut sum = 0u32;
                for y in oy * step..y1 {
                    for x in ox * step..x1 {
                        sum += f.rgb[[y, x, k]] as u32;
                    }
                }
                out.push(((sum + n / 2) / n.max(1)) as u8);
            }
        }
    }
    out
}

/// Encodes frames as a looping GIF (`delay_ms` per frame), atomically. Frames wider than
/// `max_width` are scaled down (block means) to fit; each frame gets its own 256-colour palette
/// (NeuQuant), so real footage keeps its colours instead of being posterised.
pub fn write_gif(path: &Path, frames: &[Frame], delay_ms: u32, max_width: usize) -> Result<()> {
    let err = |e: gif::EncodingError| DataError::Encode { path: path.to_path_buf(), reason: e.to_string() };
    let Some(first) = frames.first() else {
        return Err(DataError::InvalidArgument("a GIF needs at least one frame".into()));
    };
    let step = first.width().div_ceil(max_width.max(1)).max(1);
    let (h, w) = (first.height().div_ceil(step), first.width().div_ceil(step));
    if h > u16::MAX as usize || w > u16::MAX as usize {
        return Err(DataError::InvalidArgument(format!("{w}x{h} is too large for a GIF")));
    }
    let mut bytes = Vec::new();
    {
        // No global palette: every frame carries its own.
        let mut enc = gif::Encoder::new(&mut bytes, w as u16, h as u16, &[]).map_err(err)?;
        enc.set_repeat(gif::Repeat::Infinite).map_err(err)?;
        for f in frames {
            if (f.height(), f.width()) != (first.height(), first.width()) {
                return Err(DataError::InvalidArgument("GIF frames must share one size".into()));
            }
            // Speed 10 of NeuQuant's 1 (best) to 30 (fastest): a few ms per 480p frame.
            let mut frame = gif::Frame::from_rgb_speed(w as u16, h as u16, &shrink(f, step), 10);
            frame.delay = (delay_ms / 10) as u16;
            enc.write_frame(&frame).map_err(err)?;
        }
    }
    write_atomic(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn overlay_colours_objects_and_gif_is_written() {
        let f = Frame::filled(8, 8, [100, 100, 100]);
        let l = LabelMap::new(Array2::from_shape_fn((8, 8), |(y, x)| (y > 1 && y < 6 && x > 1 && x < 6) as u8));
        let o = overlay(&f, &l, &Palette::davis(), 0.5).unwrap();
        assert_eq!(o.rgb[[0, 0, 0]], 100);
        assert_eq!(o.rgb[[3, 3, 0]], 114); // 100 * 0.5 + 128 * 0.5
        assert_eq!(o.rgb[[2, 2, 0]], 128, "the outline is the palette colour itself");
        assert!(overlay(&f, &LabelMap::zeros(7, 8), &Palette::davis(), 0.5).is_err());
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.gif");
        write_gif(&p, &[f.clone(), o], 100, 4).unwrap();
        assert!(write_gif(&p, &[], 100, 4).is_err());
        assert_eq!(&std::fs::read(&p).unwrap()[..3], b"GIF");
    }

    #[test]
    fn gif_frames_keep_real_colours_with_their_own_palettes() {
        // A smooth two-colour gradient (as real footage has) and a frame of other colours: each
        // decodes close to its source. The fixed 252-colour cube this replaced (steps of 51 and
        // 42) averaged about 12 levels of error on this gradient; 256 colours spread ideally over
        // it would average about 3.
        let (h, w) = (128, 256);
        let ramp = Frame::new(ndarray::Array3::from_shape_fn((h, w, 3), |(y, x, k)| [x as u8, (y * 2) as u8, 90][k])).unwrap();
        let other = Frame::filled(h, w, [17, 200, 233]);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("b.gif");
        write_gif(&p, &[ramp.clone(), other.clone()], 100, w).unwrap();
        let mut opts = gif::DecodeOptions::new();
        opts.set_color_output(gif::ColorOutput::RGBA);
        let mut dec = opts.read_info(std::fs::File::open(&p).unwrap()).unwrap();
        for src in [&ramp, &other] {
            let f = dec.read_next_frame().unwrap().unwrap();
            assert!(f.palette.is_some(), "a palette per frame");
            let errors: Vec<i32> = f.buffer.chunks_exact(4).enumerate().flat_map(|(i, px)| (0..3).map(move |k| (px[k] as i32 - src.rgb[[i / w, i % w, k]] as i32).abs())).collect();
            let mean = errors.iter().sum::<i32>() as f64 / errors.len() as f64;
            let worst = *errors.iter().max().unwrap();
            assert!(mean <= 5.0 && worst <= 32, "decoded colours: mean error {mean:.2}, worst {worst}");
        }
    }
}
