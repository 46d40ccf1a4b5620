//! Progress of the long runners, counted in frames: a bar on a terminal, and when the output is
//! redirected (a log file, CI) a line every ten seconds instead.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// How often a line is logged when not on a terminal.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// Progress of a run in frames.
pub struct Progress {
    bar: Option<ProgressBar>,
    total: u64,
    done: u64,
    video: String,
    start: Instant,
    last_log: Instant,
}

impl Progress {
    /// A reporter of `total` frames.
    pub fn frames(total: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = ProgressBar::new(total);
            let style = ProgressStyle::with_template("{msg:<16} [{bar:30}] {pos}/{len} frames ({per_sec}, {elapsed}, eta {eta})").unwrap_or_else(|_| ProgressStyle::default_bar());
            b.set_style(style);
            b
        });
        let now = Instant::now();
        Progress { bar, total, done: 0, video: String::new(), start: now, last_log: now }
    }

    /// The video being worked on.
    pub fn video(&mut self, name: &str) {
        self.video = name.to_string();
        if let Some(b) = &self.bar {
            b.set_message(name.to_string());
        }
    }

    /// `n` more frames done.
    pub fn inc(&mut self, n: u64) {
        self.done += n;
        match &self.bar {
            Some(b) => b.inc(n),
            None if self.last_log.elapsed() >= LOG_EVERY => {
                let secs = self.start.elapsed().as_secs_f64();
                let rate = self.done as f64 / secs.max(1e-9);
                let left = (self.total.saturating_sub(self.done)) as f64 / rate.max(1e-9);
                eprintln!("{}/{} frames ({:.1}%), video {}, {:.2} frames/s, {:.0} s elapsed, about {:.0} s left", self.done, self.total, 100.0 * self.done as f64 / self.total.max(1) as f64, self.video, rate, secs, left);
                self.last_log = Instant::now();
            }
            None => {}
        }
    }

    /// Removes the bar.
    pub fn finish(self) {
        if let Some(b) = self.bar {
            b.finish_and_clear();
        }
    }
}

/// Progress of a download, counted in bytes: a bar on a terminal, a line every ten seconds
/// otherwise. Feed it [`memvos_model::download::Progress`] updates.
pub struct Bytes {
    bar: Option<ProgressBar>,
    last_log: Instant,
}

impl Default for Bytes {
    fn default() -> Self {
        Self::new()
    }
}

impl Bytes {
    /// A reporter with no size known yet.
    pub fn new() -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = ProgressBar::no_length();
            let style = ProgressStyle::with_template("[{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta})").unwrap_or_else(|_| ProgressStyle::default_bar());
            b.set_style(style);
            b
        });
        Bytes { bar, last_log: Instant::now() }
    }

    /// Bytes on disk now, of `total` where known.
    pub fn update(&mut self, p: memvos_model::download::Progress) {
        match &self.bar {
            Some(b) => {
                if let Some(t) = p.total {
                    b.set_length(t);
                }
                b.set_position(p.done);
            }
            None if self.last_log.elapsed() >= LOG_EVERY => {
                let total = p.total.map(|t| format!(" of {:.1} MB", t as f64 / 1e6)).unwrap_or_default();
                eprintln!("{:.1} MB{total} downloaded", p.done as f64 / 1e6);
                self.last_log = Instant::now();
            }
            None => {}
        }
    }

    /// Removes the bar.
    pub fn finish(self) {
        if let Some(b) = self.bar {
            b.finish_and_clear();
        }
    }
}
