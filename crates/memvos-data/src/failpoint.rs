//! Pause points for crash-safety tests: a long-running tool calls [`pause`] at the moments a
//! kill would hurt most (between two files of a checkpoint, between two masks of a video). With
//! `MEMVOS_PAUSE_AT` set to that point's label, the process writes the file named by
//! `MEMVOS_PAUSE_MARKER` and sleeps (at most two minutes), so a test can SIGKILL it exactly
//! there. Without the variable a pause point does nothing.

use std::time::{Duration, Instant};

/// Pauses here when `MEMVOS_PAUSE_AT` equals `label` (see the module documentation).
pub fn pause(label: &str) {
    let Some(at) = std::env::var_os("MEMVOS_PAUSE_AT") else { return };
    if at.to_string_lossy() != label {
        return;
    }
    if let Some(marker) = std::env::var_os("MEMVOS_PAUSE_MARKER") {
        let _ = std::fs::write(marker, label);
    }
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(20));
    }
}
