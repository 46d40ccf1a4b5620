//! Long-video runs: a synthetic clip played back and forth for thousands of frames through a
//! [`Propagator`], with peak memory and time per frame read at checkpoints, to see whether a
//! memory policy keeps a stream's cost flat.

use std::time::Instant;

use burn::tensor::Device;
use memvos_data::synth::{SynthConfig, SynthVideo, generate_video};
use memvos_model::{Propagator, PropagatorConfig, SharedNetwork};

use crate::runner::RunError;

/// Measurements at one frame.
#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    /// Frames processed so far.
    pub frame: usize,
    /// Peak resident memory of the process so far (VmHWM), in MiB; `None` where `/proc` is absent.
    pub rss_mb: Option<f64>,
    /// Mean wall time per frame over the `window` frames before the checkpoint.
    pub ms_per_frame: f64,
    /// Permanent memory frames held then.
    pub memory_frames: usize,
}

/// Peak resident set size of this process (VmHWM in `/proc/self/status`), in MiB.
pub fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// A clip of `clip` frames with two objects present from the first frame.
pub fn synthetic_clip(height: usize, width: usize, clip: usize, seed: u64) -> Result<SynthVideo, RunError> {
    let cfg = SynthConfig { videos: 1, frames: clip, height, width, min_objects: 2, max_objects: 2, seed, entry_probability: 0.0, ..Default::default() };
    Ok(generate_video(&cfg, 0)?)
}

/// Index into a clip of `len` frames played forwards, backwards, forwards…
pub fn ping_pong(t: usize, len: usize) -> usize {
    if len < 2 {
        return 0;
    }
    let period = 2 * (len - 1);
    let i = t % period;
    if i < len { i } else { period - i }
}

/// Streams `frames` frames of `clip` (played back and forth; objects from its first mask) and
/// measures at each of `checkpoints` (frame counts), averaging time over the `window` frames
/// before each. `on_frame` is called after every frame (progress bars).
pub fn run_long_video(
    net: SharedNetwork,
    cfg: PropagatorConfig,
    device: &Device,
    clip: &SynthVideo,
    frames: usize,
    checkpoints: &[usize],
    window: usize,
    mut on_frame: impl FnMut(usize),
) -> Result<Vec<Checkpoint>, RunError> {
    let perr = |e| crate::runner::propagate_error("long synthetic video", e);
    let mut prop = Propagator::new(net, cfg, device).map_err(perr)?;
    let mut times = Vec::with_capacity(frames);
    let mut out = Vec::new();
    for t in 0..frames {
        let i = ping_pong(t, clip.frames.len());
        let start = Instant::now();
        let step = prop.step(&clip.frames[i], (t == 0).then_some(&clip.masks[0])).map_err(perr)?;
        drop(step);
        let _ = device.sync();
        times.push(start.elapsed().as_secs_f64() * 1e3);
        on_frame(t + 1);
        if checkpoints.contains(&(t + 1)) {
            let w = &times[times.len().saturating_sub(window.max(1))..];
            out.push(Checkpoint {
                frame: t + 1,
                rss_mb: peak_rss_mb(),
                ms_per_frame: w.iter().sum::<f64>() / w.len() as f64,
                memory_frames: prop.memory_frames(),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_pong_turns_at_the_ends() {
        let seq: Vec<usize> = (0..9).map(|t| ping_pong(t, 4)).collect();
        assert_eq!(seq, vec![0, 1, 2, 3, 2, 1, 0, 1, 2]);
        assert_eq!(ping_pong(5, 1), 0);
    }
}
