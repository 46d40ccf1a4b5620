//! Memory policies: which frames are written into a [`crate::MemoryBank`], which are evicted,
//! and which are read (methods.md §1.8, §2.3, §2.5). A propagator asks its policy once per
//! segmented frame ([`MemoryPolicy::write`]) and once per query ([`MemoryPolicy::read`]);
//! swapping the policy swaps the memory strategy and nothing else.
//!
//! Capacities count permanent frames *including* the bank's first frame, which bounded
//! policies never evict (it holds the annotation).

use std::any::Any;
use std::collections::HashMap;
use std::fmt;

use rand::seq::index::sample;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// A permanently stored frame, as a policy sees it.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct StoredFrame {
    /// Frame index in the stream.
    pub frame: usize,
    /// Quality score given when it was written (QDMN), if any.
    pub quality: Option<f32>,
    /// How much the queries since it was written have read it (filled only for a policy whose
    /// [`MemoryPolicy::uses_usage`] is true; zero otherwise).
    pub usage: Usage,
}

impl StoredFrame {
    /// A stored frame that has not been read yet.
    pub fn new(frame: usize, quality: Option<f32>) -> Self {
        StoredFrame { frame, quality, usage: Usage::default() }
    }

    /// The same frame with a read history (for testing a policy).
    pub fn with_usage(self, usage: Usage) -> Self {
        StoredFrame { usage, ..self }
    }
}

/// The read weight a stored frame received: for each query, the share of the query's attention
/// (softmax weights over the memory read, averaged over the query's positions and objects) that
/// went to the frame's positions. The shares of one read sum to 1 over the frames read.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Usage {
    /// Queries that read the frame.
    pub reads: u32,
    /// Sum of its shares over those reads.
    pub total: f32,
    /// Its share in the latest read (0 when the latest query did not read it).
    pub last: f32,
}

impl Usage {
    /// Mean share per read (0 before the first read): XMem's "usage" of a memory element.
    pub fn mean(&self) -> f32 {
        if self.reads == 0 { 0.0 } else { self.total / self.reads as f32 }
    }

    /// Adds a read in which the frame got `share` of the attention.
    pub fn record(&mut self, share: f32) {
        self.reads = self.reads.saturating_add(1);
        self.total += share;
        self.last = share;
    }
}

/// A frame just segmented, offered to the memory.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Candidate {
    /// Frame index in the stream.
    pub frame: usize,
    /// Estimated segmentation quality in `[0, 1]` (QDMN's quality head, or a propagator's proxy).
    pub quality: Option<f32>,
    /// Objects were annotated on this frame: it must be stored (first frame of a bank).
    pub annotated: bool,
}

/// What to do with a candidate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Write {
    /// Not stored (any temporary entry is dropped).
    Skip,
    /// Read as the "previous frame" until the next write replaces it.
    Temporary,
    /// Stored, after removing the stored frames at these positions (indices into `stored`).
    Permanent {
        /// Positions (into `stored`) removed first.
        evict: Vec<usize>,
    },
}

impl Write {
    /// Stored, evicting nothing.
    pub fn keep() -> Self {
        Write::Permanent { evict: Vec::new() }
    }
}

/// Decides what a memory bank stores and reads. One instance per bank: policies may keep state,
/// which a caller inspects by downcasting (`(policy as &dyn Any).downcast_ref::<Fifo>()`).
///
/// A policy of your own needs `name` and `write`; a `Clone` one gets [`Fresh`] for free.
///
/// ```
/// use memvos_memory::{Candidate, MemoryPolicy, StoredFrame, Usage, Write};
///
/// /// Every 5th frame, at most 4 frames: the least-read one goes (XMem's eviction rule).
/// #[derive(Clone, Debug)]
/// struct LeastUsed;
///
/// impl MemoryPolicy for LeastUsed {
///     fn name(&self) -> &'static str {
///         "least-used"
///     }
///     fn write(&mut self, c: &Candidate, stored: &[StoredFrame]) -> Write {
///         if !c.annotated && c.frame % 5 != 0 {
///             return Write::Skip;
///         }
///         if stored.len() < 4 {
///             return Write::keep();
///         }
///         // Position 0 holds the annotation: never evicted.
///         let victim = (1..stored.len()).min_by(|&a, &b| stored[a].usage.mean().total_cmp(&stored[b].usage.mean())).unwrap();
///         Write::Permanent { evict: vec![victim] }
///     }
///     fn uses_usage(&self) -> bool {
///         true
///     }
/// }
///
/// let mut p = LeastUsed;
/// let read = |share| Usage { reads: 1, total: share, last: share };
/// let stored = [0, 5, 10, 15].map(|f| StoredFrame::new(f, None));
/// let stored = [stored[0], stored[1].with_usage(read(0.5)), stored[2].with_usage(read(0.1)), stored[3].with_usage(read(0.3))];
/// let c = Candidate { frame: 20, quality: None, annotated: false };
/// assert_eq!(p.write(&c, &stored), Write::Permanent { evict: vec![2] });
/// let _fresh: Box<dyn MemoryPolicy> = memvos_memory::Fresh::fresh(&p);
/// ```
pub trait MemoryPolicy: fmt::Debug + Send + Any + Fresh {
    /// Short name, as given to `--policy`.
    fn name(&self) -> &'static str;
    /// What to do with `candidate`, given the frames stored now (in storage order).
    fn write(&mut self, candidate: &Candidate, stored: &[StoredFrame]) -> Write;
    /// Positions of the stored frames a query at frame `query` reads (repeats count twice).
    /// The temporary entry, if any, is always read as well.
    fn read(&mut self, _query: usize, stored: &[StoredFrame]) -> Vec<usize> {
        (0..stored.len()).collect()
    }
    /// Whether [`Candidate::quality`] is used (the propagator computes it only then).
    fn uses_quality(&self) -> bool {
        false
    }
    /// Whether [`StoredFrame::usage`] is used (the propagator measures it only then: one more
    /// affinity per query).
    fn uses_usage(&self) -> bool {
        false
    }
    /// Forgets what the policy learnt of a stream and keeps its settings; called on the copy a
    /// new bank gets ([`Fresh::fresh`]). Policies with state (counters, a random generator)
    /// reset it here.
    fn reset(&mut self) {}
}

/// A fresh copy of a policy, with its settings and no state, for a new bank. Every `Clone`
/// policy has it (a clone, then [`MemoryPolicy::reset`]); a policy that is not `Clone`
/// implements it itself.
pub trait Fresh {
    /// The copy.
    fn fresh(&self) -> Box<dyn MemoryPolicy>;
}

impl<P: MemoryPolicy + Clone> Fresh for P {
    fn fresh(&self) -> Box<dyn MemoryPolicy> {
        let mut p = self.clone();
        p.reset();
        Box::new(p)
    }
}

/// How "every N-th frame" is counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FrameRule {
    /// `t mod N == 0` on the absolute frame index (STCN on DAVIS).
    #[default]
    Absolute,
    /// `t − last stored frame ≥ N` (STCN on YouTube-VOS, MiVOS, QDMN).
    Relative,
}

impl FrameRule {
    /// Whether frame `t` is due, `last` being the newest stored frame.
    pub fn due(self, every: usize, t: usize, last: Option<usize>) -> bool {
        match (self, last) {
            (_, None) => true,
            (FrameRule::Absolute, _) => t % every == 0,
            (FrameRule::Relative, Some(l)) => t.saturating_sub(l) >= every,
        }
    }
}

fn last(stored: &[StoredFrame]) -> Option<usize> {
    stored.iter().map(|s| s.frame).max()
}

/// Every N-th frame, unbounded (STCN); with `include_last`, the frames in between are read as
/// temporary memory until the next one. [`EveryN::mivos`] is MiVOS's schedule.
#[derive(Clone, Debug, PartialEq)]
pub struct EveryN {
    /// Write every `every`-th frame.
    pub every: usize,
    /// How "every N-th" is counted.
    pub rule: FrameRule,
    /// Hold the frames in between as temporary memory.
    pub include_last: bool,
    name: &'static str,
}

impl EveryN {
    /// Every `every`-th frame by `rule`; `include_last` as the field says.
    pub fn new(every: usize, rule: FrameRule, include_last: bool) -> Self {
        EveryN { every: every.max(1), rule, include_last, name: "every-n" }
    }

    /// MiVOS (methods.md §1.8): every N frames after the last stored one, plus the previous
    /// frame as temporary memory whenever it was not stored.
    pub fn mivos(every: usize) -> Self {
        EveryN { name: "mivos", ..Self::new(every, FrameRule::Relative, true) }
    }
}

impl MemoryPolicy for EveryN {
    fn name(&self) -> &'static str {
        self.name
    }

    fn write(&mut self, c: &Candidate, stored: &[StoredFrame]) -> Write {
        if c.annotated || self.rule.due(self.every, c.frame, last(stored)) {
            Write::keep()
        } else if self.include_last {
            Write::Temporary
        } else {
            Write::Skip
        }
    }
}

/// QDMN's quality-aware dynamic memory (methods.md §2.3). A frame is stored when it is at
/// least `every` frames after the last stored one and its quality, divided by the quality of
/// the bank's first frame, exceeds `threshold`; other frames are temporary memory. Stored
/// frames get an increasing counter `n` and keep their normalised quality `q`. When the bank
/// is full, the stored frame `m` (never the first) minimising `exp(−|n − m|) + q_m` is evicted
/// before the new one is appended.
///
/// Difference from the published code: QDMN deletes tensor slot `pos` where `pos` is the
/// candidate's position in a list that excludes frame 0, so it removes the frame one *earlier*
/// than the one it scored (frame 0 itself when `pos = 0`) and its list and tensors drift apart.
/// Here the scored frame is the one removed and frame 0 is never touched.
#[derive(Clone, Debug)]
pub struct Qdmn {
    /// Frames between writes (relative).
    pub every: usize,
    /// Normalised quality a frame needs to be stored.
    pub threshold: f32,
    /// Permanent frames including the first (published DAVIS: `memory_thr` 20 → 22).
    pub capacity: usize,
    reference: Option<f32>,
    counter: u64,
    counters: HashMap<usize, u64>,
}

impl Qdmn {
    /// A QDMN memory (capacity at least 2: the first frame and one more).
    pub fn new(every: usize, threshold: f32, capacity: usize) -> Self {
        Qdmn { every: every.max(1), threshold, capacity: capacity.max(2), reference: None, counter: 0, counters: HashMap::new() }
    }

    /// The published DAVIS setting: every 5, quality > 0.8, `memory_thr` 20.
    pub fn davis() -> Self {
        Self::new(5, 0.8, 22)
    }

    /// The published YouTube-VOS setting: every 5, quality > 0.75, `memory_thr` 10.
    pub fn youtube() -> Self {
        Self::new(5, 0.75, 12)
    }

    /// A frame's quality relative to the bank's first frame (what the threshold is compared
    /// with); `None` before the first frame is written.
    pub fn normalised(&self, quality: f32) -> Option<f32> {
        self.reference.map(|r| quality / r)
    }
}

impl MemoryPolicy for Qdmn {
    fn name(&self) -> &'static str {
        "qdmn"
    }

    fn uses_quality(&self) -> bool {
        true
    }

    fn write(&mut self, c: &Candidate, stored: &[StoredFrame]) -> Write {
        let q = c.quality.unwrap_or(1.0);
        if stored.is_empty() || c.annotated {
            if self.reference.is_none() {
                self.reference = Some(q.max(f32::MIN_POSITIVE));
            }
            self.counter += 1;
            self.counters.insert(c.frame, self.counter);
            return Write::keep();
        }
        let normalised = self.normalised(q).unwrap_or(q);
        if !FrameRule::Relative.due(self.every, c.frame, last(stored)) || normalised <= self.threshold {
            return Write::Temporary;
        }
        self.counter += 1;
        let n = self.counter;
        let mut evict = Vec::new();
        if stored.len() >= self.capacity {
            let reference = self.reference.unwrap_or(1.0) as f64;
            let score = |s: &StoredFrame| {
                let m = self.counters.get(&s.frame).copied().unwrap_or(0);
                (-((n as f64) - (m as f64)).abs()).exp() + s.quality.unwrap_or(0.0) as f64 / reference
            };
            let worst = (1..stored.len()).min_by(|&a, &b| score(&stored[a]).total_cmp(&score(&stored[b])));
            if let Some(w) = worst {
                self.counters.remove(&stored[w].frame);
                evict.push(w);
            }
        }
        self.counters.insert(c.frame, n);
        Write::Permanent { evict }
    }

    fn reset(&mut self) {
        *self = Qdmn::new(self.every, self.threshold, self.capacity);
    }
}

/// IMSFR's isogenous memory sampling (methods.md §2.5): frames are stored every N; a query
/// reads all `T` stored frames while `T ≤ t0`, otherwise a random `⌊ρ·T⌋` of positions
/// `0..T−1` (the newest excluded) plus fixed positions (duplicates kept: they count twice).
/// Seeded, so a run repeats exactly (the published sampling is unseeded).
#[derive(Clone, Debug)]
pub struct Imsfr {
    /// Write every `every`-th frame.
    pub every: usize,
    /// How "every N-th" is counted.
    pub rule: FrameRule,
    /// `T₀`: up to this many stored frames, all are read.
    pub t0: usize,
    /// ρ: the share of the older frames sampled beyond `T₀`.
    pub ratio: f64,
    /// Fixed positions: non-negative from the oldest (0 = first), negative from the newest
    /// (−2 = the second newest, as `T−2`).
    pub fixed: Vec<isize>,
    /// Also read the newest stored frame (IMSFR reads it in a separate branch; a network
    /// without that branch, such as STCN, should read it here).
    pub read_newest: bool,
    /// Seed of the sampling.
    pub seed: u64,
    rng: ChaCha8Rng,
}

impl Imsfr {
    /// IMSFR sampling with these settings (reads the newest frame too).
    pub fn new(every: usize, rule: FrameRule, t0: usize, ratio: f64, fixed: Vec<isize>, seed: u64) -> Self {
        Imsfr { every: every.max(1), rule, t0, ratio, fixed, read_newest: true, seed, rng: ChaCha8Rng::seed_from_u64(seed) }
    }

    /// DAVIS 2017 val / test-dev setting: every 6th frame, `T₀ = 10`, ρ = 0.6, fixed 1 and T−5…T−2.
    pub fn davis17(seed: u64) -> Self {
        Self::new(6, FrameRule::Absolute, 10, 0.6, vec![1, -5, -4, -3, -2], seed)
    }

    /// DAVIS 2016 setting: `T₀ = 8`, ρ = 0.1, fixed 0 and T−2.
    pub fn davis16(seed: u64) -> Self {
        Self::new(6, FrameRule::Absolute, 8, 0.1, vec![0, -2], seed)
    }

    /// YouTube-VOS setting: every 3 (relative), `T₀ = 10`, ρ = 0.6, fixed 0, 1 and T−5…T−2.
    pub fn youtube(seed: u64) -> Self {
        Self::new(3, FrameRule::Relative, 10, 0.6, vec![0, 1, -5, -4, -3, -2], seed)
    }
}

impl MemoryPolicy for Imsfr {
    fn name(&self) -> &'static str {
        "imsfr"
    }

    fn write(&mut self, c: &Candidate, stored: &[StoredFrame]) -> Write {
        if c.annotated || self.rule.due(self.every, c.frame, last(stored)) { Write::keep() } else { Write::Skip }
    }

    fn read(&mut self, _query: usize, stored: &[StoredFrame]) -> Vec<usize> {
        let t = stored.len();
        if t <= self.t0 {
            return (0..t).collect();
        }
        let amount = ((self.ratio * t as f64).floor() as usize).min(t - 1);
        let mut picked = sample(&mut self.rng, t - 1, amount).into_vec();
        picked.sort_unstable();
        for &f in &self.fixed {
            let p = if f >= 0 { f } else { t as isize + f };
            if (0..t as isize).contains(&p) {
                picked.push(p as usize);
            }
        }
        if self.read_newest {
            picked.push(t - 1);
        }
        picked
    }

    fn reset(&mut self) {
        self.rng = ChaCha8Rng::seed_from_u64(self.seed);
    }
}

/// A bounded first-in-first-out buffer for endless streams: every N-th frame (relative rule)
/// is stored, and when `capacity` frames are stored the oldest one after the first goes.
#[derive(Clone, Debug, PartialEq)]
pub struct Fifo {
    /// Write every `every`-th frame (relative).
    pub every: usize,
    /// Permanent frames including the first.
    pub capacity: usize,
}

impl Fifo {
    /// Stores a frame every `every` frames (relative rule), keeping at most `capacity` frames,
    /// the first included; capacity 1 keeps the first frame alone and reads each later due
    /// frame as temporary memory.
    pub fn new(every: usize, capacity: usize) -> Self {
        Fifo { every: every.max(1), capacity: capacity.max(1) }
    }
}

impl MemoryPolicy for Fifo {
    fn name(&self) -> &'static str {
        "fifo"
    }

    fn write(&mut self, c: &Candidate, stored: &[StoredFrame]) -> Write {
        if !(c.annotated || FrameRule::Relative.due(self.every, c.frame, last(stored))) {
            return Write::Skip;
        }
        if self.capacity == 1 && !stored.is_empty() {
            return Write::Temporary;
        }
        let evict = if stored.len() >= self.capacity { vec![1] } else { Vec::new() };
        Write::Permanent { evict }
    }
}

/// A bounded reservoir for endless streams: of the frames offered every N (relative rule),
/// each of the `c` seen so far stays with equal probability (`(capacity − 1) / c` once full,
/// Vitter's algorithm R), besides the first frame, which always stays. Seeded.
#[derive(Clone, Debug)]
pub struct Reservoir {
    /// Offer every `every`-th frame (relative).
    pub every: usize,
    /// Permanent frames including the first.
    pub capacity: usize,
    /// Seed of the draws.
    pub seed: u64,
    offered: u64,
    last_offered: Option<usize>,
    rng: ChaCha8Rng,
}

impl Reservoir {
    /// A reservoir (capacity at least 2).
    pub fn new(every: usize, capacity: usize, seed: u64) -> Self {
        Reservoir { every: every.max(1), capacity: capacity.max(2), seed, offered: 0, last_offered: None, rng: ChaCha8Rng::seed_from_u64(seed) }
    }
}

impl MemoryPolicy for Reservoir {
    fn name(&self) -> &'static str {
        "reservoir"
    }

    fn write(&mut self, c: &Candidate, stored: &[StoredFrame]) -> Write {
        if stored.is_empty() || c.annotated {
            return Write::keep();
        }
        // Offers are spaced by the relative rule on offered (not stored) frames.
        let since = self.last_offered.or(last(stored));
        if !FrameRule::Relative.due(self.every, c.frame, since) {
            return Write::Skip;
        }
        self.last_offered = Some(c.frame);
        self.offered += 1;
        let slots = self.capacity - 1;
        if stored.len() < self.capacity {
            return Write::keep();
        }
        let r = self.rng.random_range(0..self.offered);
        if (r as usize) < slots { Write::Permanent { evict: vec![1 + r as usize] } } else { Write::Skip }
    }

    fn reset(&mut self) {
        *self = Reservoir::new(self.every, self.capacity, self.seed);
    }
}

/// The policies by name, for configuration files and command lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PolicyKind {
    /// [`EveryN`] (STCN).
    EveryN,
    /// [`EveryN::mivos`].
    Mivos,
    /// [`Qdmn`].
    Qdmn,
    /// [`Imsfr`].
    Imsfr,
    /// [`Fifo`].
    Fifo,
    /// [`Reservoir`].
    Reservoir,
}

impl PolicyKind {
    /// Every kind.
    pub const ALL: [PolicyKind; 6] = [PolicyKind::EveryN, PolicyKind::Mivos, PolicyKind::Qdmn, PolicyKind::Imsfr, PolicyKind::Fifo, PolicyKind::Reservoir];

    /// The name on command lines (`--policy`).
    pub fn name(self) -> &'static str {
        match self {
            PolicyKind::EveryN => "every-n",
            PolicyKind::Mivos => "mivos",
            PolicyKind::Qdmn => "qdmn",
            PolicyKind::Imsfr => "imsfr",
            PolicyKind::Fifo => "fifo",
            PolicyKind::Reservoir => "reservoir",
        }
    }

    /// Whether the policy keeps a bounded number of frames.
    pub fn bounded(self) -> bool {
        matches!(self, PolicyKind::Qdmn | PolicyKind::Fifo | PolicyKind::Reservoir)
    }
}

impl std::str::FromStr for PolicyKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        PolicyKind::ALL.into_iter().find(|p| p.name() == s).ok_or_else(|| {
            let names: Vec<_> = PolicyKind::ALL.iter().map(|p| p.name()).collect();
            format!("unknown memory policy {s:?} (expected one of {})", names.join(", "))
        })
    }
}

impl fmt::Display for PolicyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A serde-loadable policy choice: kind plus the knobs a user sets; unset ones take the
/// method's schedule (`every`, `rule`, `include_last`) or the published defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PolicyConfig {
    /// Which policy.
    pub kind: PolicyKind,
    /// Frames between writes.
    pub every: usize,
    /// How "every N-th" is counted.
    pub rule: FrameRule,
    /// Hold the frames in between as temporary memory (every-n).
    pub include_last: bool,
    /// Bounded policies: permanent frames including the first (default: QDMN 22, others 16).
    pub capacity: Option<usize>,
    /// QDMN quality threshold (default 0.8).
    pub threshold: Option<f32>,
    /// Seed of the randomised policies.
    pub seed: u64,
    /// IMSFR's sampling (default: the DAVIS 2017 setting).
    pub sampling: ImsfrSampling,
}

/// IMSFR's isogenous memory sampling settings (methods.md §2.5).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ImsfrSampling {
    /// Read every stored frame while at most this many are stored.
    pub t0: usize,
    /// Fraction of the stored frames sampled beyond that.
    pub ratio: f64,
    /// Positions always read (negative: from the newest, −2 = `T−2`).
    pub fixed: Vec<isize>,
    /// Whether the sampled read includes the newest frame (IMSFR itself reads it in a branch of
    /// its own, so its preset says no; other networks should read it here).
    pub read_newest: bool,
}

impl Default for ImsfrSampling {
    fn default() -> Self {
        Self::davis17()
    }
}

impl ImsfrSampling {
    /// DAVIS 2017 val / test-dev: `T₀ = 10`, ρ = 0.6, fixed 1 and T−5…T−2.
    pub fn davis17() -> Self {
        ImsfrSampling { t0: 10, ratio: 0.6, fixed: vec![1, -5, -4, -3, -2], read_newest: true }
    }

    /// DAVIS 2016: `T₀ = 8`, ρ = 0.1, fixed 0 and T−2.
    pub fn davis16() -> Self {
        ImsfrSampling { t0: 8, ratio: 0.1, fixed: vec![0, -2], read_newest: true }
    }

    /// YouTube-VOS: `T₀ = 10`, ρ = 0.6, fixed 0, 1 and T−5…T−2.
    pub fn youtube() -> Self {
        ImsfrSampling { t0: 10, ratio: 0.6, fixed: vec![0, 1, -5, -4, -3, -2], read_newest: true }
    }
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            kind: PolicyKind::EveryN,
            every: 5,
            rule: FrameRule::Absolute,
            include_last: false,
            capacity: None,
            threshold: None,
            seed: 0,
            sampling: ImsfrSampling::default(),
        }
    }
}

impl PolicyConfig {
    /// Builds the policy. Errors name the bad setting.
    pub fn build(&self) -> Result<Box<dyn MemoryPolicy>, String> {
        if self.every == 0 {
            return Err("memory policy: every must be at least 1".into());
        }
        if let Some(t) = self.threshold {
            if !(t > 0.0 && t <= 1.0) {
                return Err(format!("memory policy {}: quality threshold {t} is outside (0, 1]", self.kind));
            }
            if self.kind != PolicyKind::Qdmn {
                return Err(format!("memory policy {} takes no quality threshold (only qdmn does)", self.kind));
            }
        }
        if let Some(c) = self.capacity {
            // FIFO of 1 keeps the first frame alone (later frames are read as the previous
            // frame only); the others need the first frame plus one.
            let least = if self.kind == PolicyKind::Fifo { 1 } else { 2 };
            if c < least {
                return Err(format!("memory policy {}: capacity {c} is below {least} (the first frame{})", self.kind, if least == 2 { " plus one" } else { "" }));
            }
            if !self.kind.bounded() {
                return Err(format!("memory policy {} is unbounded and takes no capacity", self.kind));
            }
        }
        let cap = |d: usize| self.capacity.unwrap_or(d);
        Ok(match self.kind {
            PolicyKind::EveryN => Box::new(EveryN::new(self.every, self.rule, self.include_last)),
            PolicyKind::Mivos => Box::new(EveryN::mivos(self.every)),
            PolicyKind::Qdmn => Box::new(Qdmn::new(self.every, self.threshold.unwrap_or(0.8), cap(22))),
            PolicyKind::Imsfr => {
                let sp = &self.sampling;
                if !(0.0..=1.0).contains(&sp.ratio) {
                    return Err(format!("memory policy imsfr: sampling ratio {} is outside [0, 1]", sp.ratio));
                }
                let mut p = Imsfr::new(self.every, self.rule, sp.t0, sp.ratio, sp.fixed.clone(), self.seed);
                p.read_newest = sp.read_newest;
                Box::new(p)
            }
            PolicyKind::Fifo => Box::new(Fifo::new(self.every, cap(16))),
            PolicyKind::Reservoir => Box::new(Reservoir::new(self.every, cap(16), self.seed)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a policy over `frames` frames (frame 0 annotated), applying its decisions to a
    /// list of stored frames; returns the stored frames after each step.
    fn simulate(policy: &mut dyn MemoryPolicy, frames: usize, quality: impl Fn(usize) -> f32) -> Vec<Vec<usize>> {
        let mut stored: Vec<StoredFrame> = Vec::new();
        let mut history = Vec::new();
        for t in 0..frames {
            let c = Candidate { frame: t, quality: Some(quality(t)), annotated: t == 0 };
            if let Write::Permanent { mut evict } = policy.write(&c, &stored) {
                evict.sort_unstable();
                for e in evict.into_iter().rev() {
                    stored.remove(e);
                }
                stored.push(StoredFrame::new(t, c.quality));
            }
            history.push(stored.iter().map(|s| s.frame).collect());
        }
        history
    }

    #[test]
    fn every_n_absolute_relative_and_mivos() {
        let h = simulate(&mut EveryN::new(5, FrameRule::Absolute, false), 12, |_| 1.0);
        assert_eq!(h[11], vec![0, 5, 10]);
        let mut p = EveryN::mivos(5);
        let stored = [StoredFrame::new(0, None)];
        assert_eq!(p.write(&Candidate { frame: 3, quality: None, annotated: false }, &stored), Write::Temporary);
        assert_eq!(p.write(&Candidate { frame: 5, quality: None, annotated: false }, &stored), Write::keep());
        let mut p = EveryN::new(5, FrameRule::Relative, false);
        let stored = [StoredFrame::new(0, None), StoredFrame::new(7, None)];
        assert_eq!(p.write(&Candidate { frame: 10, quality: None, annotated: false }, &stored), Write::Skip);
        assert_eq!(p.write(&Candidate { frame: 12, quality: None, annotated: false }, &stored), Write::keep());
        assert_eq!(p.write(&Candidate { frame: 8, quality: None, annotated: true }, &stored), Write::keep());
    }

    #[test]
    fn qdmn_thresholds_bounds_and_keeps_frame_zero() {
        // Quality 1.0 except a bad stretch; threshold relative to frame 0's quality.
        let mut p = Qdmn::new(5, 0.8, 4);
        let h = simulate(&mut p, 60, |t| if (20..30).contains(&t) { 0.5 } else { 1.0 });
        for s in &h {
            assert!(s.len() <= 4 && s[0] == 0, "{s:?}");
        }
        assert!(!h[59].iter().any(|f| (20..30).contains(f)), "low-quality frames are never stored: {:?}", h[59]);
        assert_eq!(h[19], vec![0, 5, 10, 15]);
        // Full at 15; frame 30 evicts the argmin of exp(−|n − m|) + q: all q equal, so the oldest.
        assert_eq!(h[30], vec![0, 10, 15, 30]);
        // Quality is relative to the first frame's.
        let h = simulate(&mut Qdmn::new(5, 0.8, 10), 11, |t| if t == 0 { 0.5 } else { 0.45 });
        assert_eq!(h[10], vec![0, 5, 10]);
    }

    #[test]
    fn qdmn_evicts_the_low_quality_frame() {
        let mut p = Qdmn::new(1, 0.0, 4);
        let q = [1.0, 0.9, 0.2, 0.9, 0.9];
        let h = simulate(&mut p, 5, |t| q[t]);
        assert_eq!(h[4], vec![0, 1, 3, 4], "frame 2 has the lowest quality");
    }

    #[test]
    fn imsfr_samples_seeded_with_fixed_frames() {
        let stored: Vec<StoredFrame> = (0..20).map(|i| StoredFrame::new(i * 6, None)).collect();
        let mut a = Imsfr::davis17(7);
        let mut b = Imsfr::davis17(7);
        let ra = a.read(200, &stored);
        assert_eq!(ra, b.read(200, &stored), "same seed, same sample");
        // ⌊0.6·20⌋ = 12 sampled from 0..19, plus 1, 15..18 and the newest.
        assert_eq!(ra.len(), 12 + 5 + 1);
        assert!(ra[..12].iter().all(|&i| i < 19));
        assert_eq!(&ra[12..], &[1, 15, 16, 17, 18, 19]);
        assert_ne!(a.read(200, &stored), ra, "the next query draws again");
        assert_eq!(a.read(10, &stored[..10]), (0..10).collect::<Vec<_>>(), "T ≤ T₀ reads all");
    }

    #[test]
    fn fifo_and_reservoir_are_bounded_and_keep_the_first_frame() {
        let h = simulate(&mut Fifo::new(1, 5), 100, |_| 1.0);
        assert_eq!(h[99], vec![0, 96, 97, 98, 99]);
        let h = simulate(&mut Reservoir::new(1, 5, 3), 1000, |_| 1.0);
        assert!(h.iter().all(|s| s.len() <= 5 && s[0] == 0));
        let last = &h[999];
        assert!(last.windows(2).all(|w| w[0] < w[1]));
        // Uniform: the kept frames are spread over the stream, not the newest few.
        assert!(last[1] < 800, "{last:?}");
        let again = simulate(&mut Reservoir::new(1, 5, 3), 1000, |_| 1.0);
        assert_eq!(&again[999], last, "seeded");
    }

    #[test]
    fn names_parse_and_configs_check_their_knobs() {
        for k in PolicyKind::ALL {
            assert_eq!(k.name().parse::<PolicyKind>().unwrap(), k);
            let p = PolicyConfig { kind: k, ..Default::default() }.build().unwrap();
            assert_eq!(p.name(), k.name());
        }
        assert!("lru".parse::<PolicyKind>().unwrap_err().contains("every-n"));
        assert!(PolicyConfig { kind: PolicyKind::Fifo, capacity: Some(0), ..Default::default() }.build().is_err());
        assert!(PolicyConfig { kind: PolicyKind::Reservoir, capacity: Some(1), ..Default::default() }.build().is_err());
        // FIFO of 1: the first frame alone, later frames temporary.
        let mut f = PolicyConfig { kind: PolicyKind::Fifo, capacity: Some(1), every: 1, ..Default::default() }.build().unwrap();
        let first = [StoredFrame::new(0, None)];
        assert_eq!(f.write(&Candidate { frame: 0, quality: None, annotated: true }, &[]), Write::Permanent { evict: vec![] });
        assert_eq!(f.write(&Candidate { frame: 3, quality: None, annotated: false }, &first), Write::Temporary);
        assert!(PolicyConfig { kind: PolicyKind::EveryN, capacity: Some(8), ..Default::default() }.build().is_err());
        let c: PolicyConfig = serde_json::from_str(r#"{"kind": "reservoir", "capacity": 8, "seed": 3}"#).unwrap();
        assert_eq!((c.kind, c.capacity, c.every), (PolicyKind::Reservoir, Some(8), 5));
    }
}
