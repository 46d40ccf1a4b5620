//! Overlays of label maps on frames, and animated GIFs or MP4 videos of them, for a person to
//! look at.

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
    /// `overlay.mp4`: AV1 in MP4 at full resolution (up to 1920 wide), 24 frames a second; plays
    /// in current browsers and players. Needs memvos-data's `mp4` feature (on in the memvos
    /// binaries).
    Mp4,
    /// None: masks only.
    None,
}

impl OverlayKind {
    /// The file it is written to, if any.
    pub fn file_name(self) -> Option<&'static str> {
        match self {
            OverlayKind::Gif => Some("overlay.gif"),
            OverlayKind::Mp4 => Some("overlay.mp4"),
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
            "mp4" if cfg!(feature = "mp4") => Ok(OverlayKind::Mp4),
            "mp4" => Err(format!("--overlay {s}: this build has no MP4 writer (memvos-data's `mp4` feature is off); use gif or none")),
            "webm" => Err(format!("--overlay {s}: memvos writes no WebM; use mp4 (AV1, plays where WebM does), gif or none")),
            _ => Err(format!("--overlay {s}: expected gif, mp4 or none")),
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
    match kind {
        OverlayKind::Gif => write_gif(&path, &blended, 100, 480)?,
        OverlayKind::Mp4 => write_mp4(&path, &blended, 24, 1920)?,
        OverlayKind::None => unreachable!("no file name"),
    }
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

/// Encodes frames as an MP4 video (AV1 by rav1e at its fastest preset, in an MP4 container by
/// muxide), `fps` frames a second, atomically. Frames wider than `max_width` are scaled down
/// (block means). Colours are converted to BT.709 full-range YCbCr 4:2:0 and tagged so, which
/// browsers honour. About 10 frames a second at 480p on one core.
#[cfg(feature = "mp4")]
pub fn write_mp4(path: &Path, frames: &[Frame], fps: u32, max_width: usize) -> Result<()> {
    use rav1e::prelude::*;
    let fail = |reason: String| DataError::Encode { path: path.to_path_buf(), reason };
    let Some(first) = frames.first() else {
        return Err(DataError::InvalidArgument("a video needs at least one frame".into()));
    };
    if fps == 0 || fps > 240 {
        return Err(DataError::InvalidArgument(format!("{fps} frames a second: expected 1 to 240")));
    }
    let step = first.width().div_ceil(max_width.max(1)).max(1);
    let (h, w) = (first.height().div_ceil(step), first.width().div_ceil(step));
    if h > 8192 || w > 8192 || h < 16 || w < 16 {
        return Err(DataError::InvalidArgument(format!("{w}x{h}: an MP4 overlay is 16 to 8192 pixels a side")));
    }
    let mut enc = EncoderConfig::with_speed_preset(10);
    enc.width = w;
    enc.height = h;
    enc.time_base = Rational::new(1, fps as u64);
    enc.bit_depth = 8;
    enc.chroma_sampling = ChromaSampling::Cs420;
    enc.pixel_range = PixelRange::Full;
    enc.color_description = Some(ColorDescription {
        color_primaries: ColorPrimaries::BT709,
        transfer_characteristics: TransferCharacteristics::SRGB,
        matrix_coefficients: MatrixCoefficients::BT709,
    });
    // No reordering: one packet per frame, in order, so timestamps are the frame numbers.
    enc.low_latency = true;
    enc.min_key_frame_interval = 0;
    enc.max_key_frame_interval = 10 * fps as u64;
    // 0 (lossless) to 255: thin contours and real textures stay sharp at about 0.1 bit a pixel.
    enc.quantizer = 60;
    let mut ctx: Context<u8> = Config::new().with_encoder_config(enc).with_threads(1).new_context().map_err(|e| fail(e.to_string()))?;
    let mut bytes = Vec::new();
    let mut mux = muxide::api::MuxerBuilder::new(&mut bytes)
        .video(muxide::api::VideoCodec::Av1, w as u32, h as u32, fps as f64)
        .build()
        .map_err(|e| fail(e.to_string()))?;
    let drain = |ctx: &mut Context<u8>, mux: &mut muxide::api::Muxer<&mut Vec<u8>>| -> Result<()> {
        loop {
            match ctx.receive_packet() {
                Ok(p) => {
                    let pts = p.input_frameno as f64 / fps as f64;
                    mux.write_video(pts, &p.data, p.frame_type == FrameType::KEY).map_err(|e| fail(e.to_string()))?;
                }
                Err(EncoderStatus::Encoded) => {}
                Err(EncoderStatus::NeedMoreData | EncoderStatus::LimitReached) => return Ok(()),
                Err(e) => return Err(fail(e.to_string())),
            }
        }
    };
    for f in frames {
        if (f.height(), f.width()) != (first.height(), first.width()) {
            return Err(DataError::InvalidArgument("video frames must share one size".into()));
        }
        let mut frame = ctx.new_frame();
        let planes = ycbcr_420(&shrink(f, step), h, w);
        for (plane, data) in frame.planes.iter_mut().zip(&planes) {
            let stride = plane.cfg.width;
            plane.copy_from_raw_u8(data, stride, 1);
        }
        ctx.send_frame(frame).map_err(|e| fail(e.to_string()))?;
        drain(&mut ctx, &mut mux)?;
    }
    ctx.flush();
    drain(&mut ctx, &mut mux)?;
    mux.finish().map_err(|e| fail(e.to_string()))?;
    write_atomic(path, &bytes)
}

/// Packed RGB (`h × w`) as BT.709 full-range Y, Cb, Cr planes, the chroma planes averaged over
/// 2×2 blocks (`⌈h/2⌉ × ⌈w/2⌉`).
#[cfg(feature = "mp4")]
fn ycbcr_420(rgb: &[u8], h: usize, w: usize) -> [Vec<u8>; 3] {
    let (kr, kb) = (0.2126f32, 0.0722f32);
    let kg = 1.0 - kr - kb;
    let to_u8 = |v: f32| v.round().clamp(0.0, 255.0) as u8;
    let px = |y: usize, x: usize| {
        let i = (y * w + x) * 3;
        (rgb[i] as f32, rgb[i + 1] as f32, rgb[i + 2] as f32)
    };
    let luma: Vec<u8> = (0..h * w).map(|i| {
        let (r, g, b) = px(i / w, i % w);
        to_u8(kr * r + kg * g + kb * b)
    }).collect();
    let (ch, cw) = (h.div_ceil(2), w.div_ceil(2));
    let (mut cb, mut cr) = (Vec::with_capacity(ch * cw), Vec::with_capacity(ch * cw));
    for cy in 0..ch {
        for cx in 0..cw {
            let (mut r, mut g, mut b, mut n) = (0.0, 0.0, 0.0, 0.0);
            for y in 2 * cy..(2 * cy + 2).min(h) {
                for x in 2 * cx..(2 * cx + 2).min(w) {
                    let p = px(y, x);
                    (r, g, b, n) = (r + p.0, g + p.1, b + p.2, n + 1.0);
                }
            }
            let (r, g, b) = (r / n, g / n, b / n);
            let y = kr * r + kg * g + kb * b;
            cb.push(to_u8(128.0 + (b - y) / (2.0 * (1.0 - kb))));
            cr.push(to_u8(128.0 + (r - y) / (2.0 * (1.0 - kr))));
        }
    }
    [luma, cb, cr]
}

#[cfg(not(feature = "mp4"))]
fn write_mp4(_path: &Path, _frames: &[Frame], _fps: u32, _max_width: usize) -> Result<()> {
    Err(DataError::InvalidArgument("this build has no MP4 writer (memvos-data's `mp4` feature is off)".into()))
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

    /// The payload of the first box of type `name` at any depth of MP4's container boxes.
    #[cfg(feature = "mp4")]
    fn mp4_box<'a>(data: &'a [u8], name: &[u8; 4]) -> Option<&'a [u8]> {
        let mut at = 0;
        while at + 8 <= data.len() {
            let size = u32::from_be_bytes(data[at..at + 4].try_into().unwrap()) as usize;
            let kind = &data[at + 4..at + 8];
            if size < 8 || at + size > data.len() {
                return None;
            }
            let body = &data[at + 8..at + size];
            if kind == name {
                return Some(body);
            }
            if [&b"moov"[..], b"trak", b"mdia", b"minf", b"stbl"].contains(&kind) {
                if let Some(found) = mp4_box(body, name) {
                    return Some(found);
                }
            }
            at += size;
        }
        None
    }

    #[cfg(feature = "mp4")]
    #[test]
    fn mp4_holds_every_frame_as_av1() {
        // Odd sizes on purpose (chroma planes round up); decoding is checked in a real browser by
        // memvos-studio's browser test.
        let frames: Vec<Frame> = (0..7).map(|i| Frame::new(ndarray::Array3::from_shape_fn((37, 51, 3), |(y, x, k)| ((x * 5 + y * 3 + i * 20 + k * 70) % 256) as u8)).unwrap()).collect();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("o.mp4");
        write_mp4(&p, &frames, 24, 1920).unwrap();
        let data = std::fs::read(&p).unwrap();
        assert_eq!(&data[4..8], b"ftyp");
        assert!(mp4_box(&data, b"mdat").is_some());
        let stsd = mp4_box(&data, b"stsd").expect("a sample description");
        assert_eq!(&stsd[12..16], b"av01", "AV1 samples");
        let stsz = mp4_box(&data, b"stsz").unwrap();
        assert_eq!(u32::from_be_bytes(stsz[8..12].try_into().unwrap()), 7, "one sample per frame");
        let tkhd = mp4_box(&data, b"tkhd").unwrap();
        let n = tkhd.len();
        assert_eq!((u32::from_be_bytes(tkhd[n - 8..n - 4].try_into().unwrap()) >> 16, u32::from_be_bytes(tkhd[n - 4..].try_into().unwrap()) >> 16), (51, 37));
        // Scaled down to fit, and refused: no frame, mixed sizes, no frame rate.
        write_mp4(&p, &frames, 24, 30).unwrap();
        let tkhd = mp4_box(&std::fs::read(&p).unwrap(), b"tkhd").unwrap().to_vec();
        assert_eq!(u32::from_be_bytes(tkhd[tkhd.len() - 8..tkhd.len() - 4].try_into().unwrap()) >> 16, 26);
        assert!(write_mp4(&p, &frames, 24, 20).unwrap_err().to_string().contains("16 to 8192"));
        assert!(write_mp4(&p, &[], 24, 1920).is_err());
        assert!(write_mp4(&p, &[frames[0].clone(), Frame::filled(8, 8, [0, 0, 0])], 24, 1920).is_err());
        assert!(write_mp4(&p, &frames, 0, 1920).is_err());
        assert_eq!("MP4".parse::<OverlayKind>().unwrap(), OverlayKind::Mp4);
        assert!("webm".parse::<OverlayKind>().unwrap_err().contains("mp4"));
    }
}
