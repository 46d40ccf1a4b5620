//! The published checkpoints by name (`stcn`, `mivos`, `qdmn`): where their repositories'
//! download scripts fetch them from, and where memvos keeps them once fetched (the platform
//! cache folder, `~/.cache/memvos/weights` on Linux, or `$MEMVOS_CACHE`).
//! [`crate::Model::load`] takes a name ([`crate::ModelSource::Published`]) and finds the file
//! there; the `weights download NAME` command puts it there.

use std::path::PathBuf;

use crate::network::Method;

/// One published checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Published {
    /// The name on command lines (`--weights stcn`).
    pub name: &'static str,
    /// The method its weights are.
    pub method: Method,
    /// The file name its repository uses.
    pub file: &'static str,
    /// The Google Drive file id its repository's download script uses.
    pub drive_id: &'static str,
    /// The repository that publishes it.
    pub repository: &'static str,
    /// Other URLs serving the same file (tried after the primary one), where the repository
    /// lists any.
    pub mirrors: &'static [&'static str],
    /// Its size in bytes, where known.
    pub size: Option<u64>,
    /// Its SHA-256 (hex), where known.
    pub sha256: Option<&'static str>,
}

impl Published {
    /// The download URL (Google Drive's, as gdown requests it).
    pub fn url(&self) -> String {
        format!("https://drive.google.com/uc?id={}", self.drive_id)
    }

    /// The primary URL, then the mirrors.
    pub fn urls(&self) -> Vec<String> {
        std::iter::once(self.url()).chain(self.mirrors.iter().map(|m| m.to_string())).collect()
    }

    /// Where the file lives once downloaded.
    pub fn cached_path(&self) -> Option<PathBuf> {
        cache_dir().map(|d| d.join(self.file))
    }
}

/// Every published checkpoint memvos knows: the one table of their URLs (also in the README).
/// Their sizes and hashes are recorded at the first good download (`published.json` in the
/// download folder); none of the repositories publishes a checksum and none lists a mirror.
pub const PUBLISHED: [Published; 3] = [
    Published { name: "stcn", method: Method::Stcn, file: "stcn.pth", drive_id: "1mRrE0uCI2ktdWlUgapJI_KmgeIiF2eOm", repository: "hkchengrex/STCN", mirrors: &[], size: None, sha256: None },
    Published { name: "mivos", method: Method::Mivos, file: "propagation_model.pth", drive_id: "19dfbVDndFkboGLHESi8DGtuxF1B21Nm8", repository: "hkchengrex/Mask-Propagation", mirrors: &[], size: None, sha256: None },
    Published { name: "qdmn", method: Method::Qdmn, file: "qdmn.pth", drive_id: "1fdiGFGol1ecVowPe6gfRHsRs9zCThFXB", repository: "yongliu20/QDMN", mirrors: &[], size: None, sha256: None },
];

/// The published checkpoint of a name (case-insensitive).
pub fn find(name: &str) -> Option<&'static Published> {
    PUBLISHED.iter().find(|p| p.name.eq_ignore_ascii_case(name))
}

/// The folder downloaded checkpoints live in: `$MEMVOS_CACHE` when set, else `memvos/weights`
/// in the platform cache folder (`None` when the platform has none).
pub fn cache_dir() -> Option<PathBuf> {
    match std::env::var_os("MEMVOS_CACHE") {
        Some(d) if !d.is_empty() => Some(PathBuf::from(d)),
        _ => dirs::cache_dir().map(|d| d.join("memvos").join("weights")),
    }
}

/// Why a published name could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PublishedError {
    /// The name is not one of [`PUBLISHED`].
    #[error("unknown published weights {name:?} (known: {})", PUBLISHED.iter().map(|p| p.name).collect::<Vec<_>>().join(", "))]
    Unknown {
        /// The name given.
        name: String,
    },
    /// Not downloaded yet.
    #[error("the published {name} weights are not downloaded yet ({}): run `cargo run --release --example weights -- download {name}`", .path.display())]
    NotDownloaded {
        /// The name.
        name: String,
        /// Where the file was looked for.
        path: PathBuf,
    },
    /// No cache folder.
    #[error("no cache folder for the published {name} weights on this platform: set MEMVOS_CACHE to a folder")]
    NoCache {
        /// The name.
        name: String,
    },
}

/// The downloaded file of a published name.
pub fn locate(name: &str) -> Result<(&'static Published, PathBuf), PublishedError> {
    let p = find(name).ok_or_else(|| PublishedError::Unknown { name: name.to_string() })?;
    let path = p.cached_path().ok_or_else(|| PublishedError::NoCache { name: p.name.to_string() })?;
    if !path.is_file() {
        return Err(PublishedError::NotDownloaded { name: p.name.to_string(), path });
    }
    Ok((p, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_in_the_cache_folder_or_say_what_to_run() {
        for p in &PUBLISHED {
            assert_eq!(find(&p.name.to_uppercase()), Some(p));
            assert!(p.url().ends_with(p.drive_id));
        }
        assert!(matches!(locate("stm"), Err(PublishedError::Unknown { .. })));
        let dir = tempfile::tempdir().unwrap();
        // SAFETY: this test is the only one in this crate that reads or writes MEMVOS_CACHE.
        unsafe { std::env::set_var("MEMVOS_CACHE", dir.path()) };
        let err = locate("stcn").unwrap_err().to_string();
        assert!(err.contains("weights -- download stcn") && err.contains("stcn.pth"), "{err}");
        std::fs::write(dir.path().join("stcn.pth"), b"x").unwrap();
        assert_eq!(locate("stcn").unwrap().1, dir.path().join("stcn.pth"));
        unsafe { std::env::remove_var("MEMVOS_CACHE") };
    }
}
