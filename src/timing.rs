//! Wall-clock timing of device work for the benchmark examples: a warm-up run, then the median
//! of several, each waiting for the device before the clock stops.

use std::time::Instant;

use burn::tensor::Device;

/// Median wall time in seconds of `repeats` runs of `f` (at least one) after one warm-up run.
pub fn median_seconds<T>(device: &Device, repeats: usize, mut f: impl FnMut() -> T) -> f64 {
    drop(f());
    let _ = device.sync();
    let mut t: Vec<f64> = (0..repeats.max(1))
        .map(|_| {
            let start = Instant::now();
            let out = f();
            let _ = device.sync();
            drop(out);
            start.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

/// This process's page faults that mapped a page (minor faults: mostly memory touched for the
/// first time since it was allocated) and its time spent in the kernel, from `/proc/self/stat`
/// (Linux; `None` elsewhere): what allocating fresh memory costs beyond the allocator itself.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Faults {
    /// Minor page faults.
    pub minor: u64,
    /// Seconds of system (kernel) time, all threads.
    pub system_seconds: f64,
}

impl std::ops::Sub for Faults {
    type Output = Faults;
    fn sub(self, o: Faults) -> Faults {
        Faults { minor: self.minor.saturating_sub(o.minor), system_seconds: self.system_seconds - o.system_seconds }
    }
}

/// The counts so far ([`Faults`]).
pub fn faults() -> Option<Faults> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The fields after the command name, which is in parentheses and may hold spaces: the
    // first is field 3 (state), so minflt (field 10) is the 8th and stime (field 15) the 13th.
    let fields: Vec<&str> = stat.get(stat.rfind(')')? + 1..)?.split_whitespace().collect();
    // stime is in clock ticks of USER_HZ, which Linux fixes at 100 for user space.
    Some(Faults { minor: fields.get(7)?.parse().ok()?, system_seconds: fields.get(12)?.parse::<f64>().ok()? / 100.0 })
}

#[cfg(test)]
mod tests {
    #[test]
    fn faults_count_fresh_memory_on_linux() {
        let Some(before) = super::faults() else {
            assert!(!cfg!(target_os = "linux"), "/proc/self/stat unreadable on Linux");
            return;
        };
        // 64 MiB touched for the first time: about 16 K pages of 4 KiB (fewer with huge pages).
        let mut v = vec![0u8; 64 << 20];
        v.iter_mut().step_by(4096).for_each(|b| *b = 1);
        std::hint::black_box(&v);
        let d = super::faults().unwrap() - before;
        assert!(d.minor >= 1 && d.system_seconds >= 0.0, "{d:?}");
    }
}
