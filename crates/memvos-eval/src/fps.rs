//! Frames-per-second with the papers' accounting (methods.md §5.2): the clock runs from when a
//! video's frames are in memory (on the device) to when its label maps are back on the host,
//! I/O excluded, and FPS = total frames / total processing time over the dataset, every frame
//! counted once whatever the number of objects. Synchronise the device before `start` and
//! before `stop` so asynchronous backends are timed honestly.

use std::time::{Duration, Instant};

/// Accumulates processing time and frame counts over many videos.
#[derive(Clone, Debug, Default)]
pub struct FpsMeter {
    frames: u64,
    busy: Duration,
    started: Option<Instant>,
}

impl FpsMeter {
    /// A meter with nothing counted.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts timing (a second `start` restarts the running interval).
    pub fn start(&mut self) {
        self.started = Some(Instant::now());
    }

    /// Stops timing and credits `frames` processed frames to the interval; returns its length.
    pub fn stop(&mut self, frames: u64) -> Duration {
        let d = self.started.take().map(|s| s.elapsed()).unwrap_or_default();
        self.add(frames, d);
        d
    }

    /// Credits an interval measured elsewhere.
    pub fn add(&mut self, frames: u64, busy: Duration) {
        self.frames += frames;
        self.busy += busy;
    }

    /// Times `work`, which processes `frames` frames.
    pub fn time<T>(&mut self, frames: u64, work: impl FnOnce() -> T) -> T {
        self.start();
        let out = work();
        self.stop(frames);
        out
    }

    /// Frames counted.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Seconds of processing counted.
    pub fn seconds(&self) -> f64 {
        self.busy.as_secs_f64()
    }

    /// Frames per second; 0 before anything was timed.
    pub fn fps(&self) -> f64 {
        if self.busy.is_zero() { 0.0 } else { self.frames as f64 / self.seconds() }
    }

    /// `FPS: 12.34 (1234 frames in 100.0 s, I/O excluded)`.
    pub fn summary(&self) -> String {
        format!("FPS: {:.2} ({} frames in {:.1} s, I/O excluded)", self.fps(), self.frames, self.seconds())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_total_frames_over_total_time() {
        let mut m = FpsMeter::new();
        m.add(30, Duration::from_secs(2));
        m.add(10, Duration::from_secs(2));
        assert_eq!(m.frames(), 40);
        assert!((m.fps() - 10.0).abs() < 1e-12);
        let v = m.time(5, || 7);
        assert_eq!((v, m.frames()), (7, 45));
        assert!(FpsMeter::new().fps() == 0.0);
        assert!(m.summary().starts_with("FPS: "));
    }
}
