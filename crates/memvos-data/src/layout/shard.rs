//! Splitting a dataset's videos over several machines: `--shard I/N` keeps the I-th of N
//! deterministic parts (1-based), so N runs of the same command with I = 1..N, on N machines,
//! together segment every video once; their result folders merged are scored as one.

use std::fmt;
use std::str::FromStr;

use super::Dataset;

/// One part of N of a dataset's videos.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// 1-based index of this part.
    pub index: usize,
    /// Parts in all.
    pub count: usize,
}

/// Why a `--shard` value was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ShardError {
    #[error("{0:?}: expected I/N with 1 <= I <= N, e.g. 2/4")]
    /// Not of the form `I/N`.
    Syntax(String),
    #[error("{index}/{count}: the index must be in 1..={count}")]
    /// An index outside `1..=count`.
    Range {
        /// The part asked for.
        index: usize,
        /// Parts in all.
        count: usize,
    },
}

impl Shard {
    /// The whole dataset as one part.
    pub const ALL: Shard = Shard { index: 1, count: 1 };

    /// Part `index` (1-based) of `count`.
    pub fn new(index: usize, count: usize) -> Result<Self, ShardError> {
        if count == 0 || index == 0 || index > count {
            return Err(ShardError::Range { index, count });
        }
        Ok(Shard { index, count })
    }

    /// Whether the video at `position` of the name-sorted list belongs to this part: videos are
    /// dealt round-robin by name, which balances long and short videos across parts and does not
    /// depend on the order a list file gives them in.
    pub fn holds(&self, position: usize) -> bool {
        position % self.count == self.index - 1
    }

    /// The names of `names` in this part, in their given order.
    pub fn select<'a>(&self, names: &[&'a str]) -> Vec<&'a str> {
        let mut sorted: Vec<&str> = names.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let keep: Vec<&str> = sorted.into_iter().enumerate().filter(|(i, _)| self.holds(*i)).map(|(_, n)| n).collect();
        names.iter().copied().filter(|n| keep.binary_search(n).is_ok()).collect()
    }
}

impl FromStr for Shard {
    type Err = ShardError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let syntax = || ShardError::Syntax(s.to_string());
        let (i, n) = s.split_once('/').ok_or_else(syntax)?;
        let index = i.trim().parse().map_err(|_| syntax())?;
        let count = n.trim().parse().map_err(|_| syntax())?;
        Shard::new(index, count)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Dataset {
    /// The videos of `shard`, in the dataset's order.
    pub fn shard(mut self, shard: Shard) -> Dataset {
        let names: Vec<&str> = self.videos.iter().map(|v| v.name.as_str()).collect();
        let keep: Vec<String> = shard.select(&names).into_iter().map(str::to_string).collect();
        self.videos.retain(|v| keep.contains(&v.name));
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_cover_every_video_once_whatever_the_order() {
        let names = ["e", "a", "d", "c", "b", "f", "g"];
        let mut reversed = names;
        reversed.reverse();
        let mut seen = Vec::new();
        for i in 1..=3 {
            let s: Shard = format!("{i}/3").parse().unwrap();
            let part = s.select(&names);
            let mut other = s.select(&reversed);
            other.reverse();
            assert_eq!(part, other, "the part does not depend on the list's order");
            seen.extend(part);
        }
        seen.sort_unstable();
        assert_eq!(seen, ["a", "b", "c", "d", "e", "f", "g"]);
        assert_eq!("1/3".parse::<Shard>().unwrap().select(&names), ["a", "d", "g"]);
        assert_eq!(Shard::ALL.select(&names), names);
    }

    #[test]
    fn bad_values_are_refused() {
        for bad in ["", "3", "0/2", "3/2", "1/0", "a/b", "1/2/3", "-1/2"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad:?}");
        }
        assert_eq!("3/2".parse::<Shard>().unwrap_err().to_string(), "3/2: the index must be in 1..=2");
    }
}
