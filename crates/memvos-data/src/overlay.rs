//! Overlays of label maps on frames, and animated GIFs of them, for a person to look at.

use std::path::Path;

use crate::error::{DataError, Result};
use crate::frame::{Frame, LabelMap};
use crate::io::{Palette, write_atomic};

/// Blends each object's palette colour over the frame with opacity `alpha`, and darkens
/// object borders so neighbouring objects stay distinguishable.
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
            let border = [(0i32, 1i32), (1, 0), (0, -1), (-1, 0)].iter().any(|&(dy, dx)| {
                let (yy, xx) = (y as i32 + dy, x as i32 + dx);
                yy < 0 || xx < 0 || yy >= h as i32 || xx >= w as i32 || labels.labels[[yy as usize, xx as usize]] != l
            });
            let c = palette.colour(l).unwrap_or([255, 255, 255]);
            for k in 0..3 {
                let v = out.rgb[[y, x, k]] as f32;
                let blended = if border { c[k] as f32 * 0.6 } else { v * (1.0 - alpha) + c[k] as f32 * alpha };
                out.rgb[[y, x, k]] = blended.round().clamp(0.0, 255.0) as u8;
            }
        }
    }
    Ok(out)
}

/// The fixed GIF palette: 6 levels of red, 7 of green, 6 of blue (252 colours), so frames are
/// quantised by integer arithmetic instead of a per-frame colour search.
fn cube_palette() -> Vec<u8> {
    let mut p = Vec::with_capacity(256 * 3);
    for r in 0..6u32 {
        for g in 0..7u32 {
            for b in 0..6u32 {
                p.extend([(r * 255 / 5) as u8, (g * 255 / 6) as u8, (b * 255 / 5) as u8]);
            }
        }
    }
    p.resize(256 * 3, 0);
    p
}

fn cube_index(c: [u8; 3]) -> u8 {
    let q = |v: u8, levels: u32| ((v as u32 * (levels - 1) + 127) / 255) as u8;
    q(c[0], 6) * 42 + q(c[1], 7) * 6 + q(c[2], 6)
}

/// Encodes frames as a looping GIF (`delay_ms` per frame), atomically. Frames wider than
/// `max_width` are subsampled to fit; colours use a fixed 252-colour cube.
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
        let mut enc = gif::Encoder::new(&mut bytes, w as u16, h as u16, &cube_palette()).map_err(err)?;
        enc.set_repeat(gif::Repeat::Infinite).map_err(err)?;
        for f in frames {
            if (f.height(), f.width()) != (first.height(), first.width()) {
                return Err(DataError::InvalidArgument("GIF frames must share one size".into()));
            }
            let mut buffer = Vec::with_capacity(h * w);
            for y in (0..f.height()).step_by(step) {
                for x in (0..f.width()).step_by(step) {
                    buffer.push(cube_index([f.rgb[[y, x, 0]], f.rgb[[y, x, 1]], f.rgb[[y, x, 2]]]));
                }
            }
            let mut frame = gif::Frame { width: w as u16, height: h as u16, delay: (delay_ms / 10) as u16, ..Default::default() };
            frame.buffer = std::borrow::Cow::Owned(buffer);
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
        assert!(overlay(&f, &LabelMap::zeros(7, 8), &Palette::davis(), 0.5).is_err());
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.gif");
        write_gif(&p, &[f.clone(), o], 100, 4).unwrap();
        assert!(write_gif(&p, &[], 100, 4).is_err());
        assert_eq!(cube_index([255, 255, 255]), 251);
        assert_eq!(&std::fs::read(&p).unwrap()[..3], b"GIF");
    }
}
