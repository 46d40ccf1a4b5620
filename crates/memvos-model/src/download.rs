//! Fetching a published checkpoint ([`crate::published`]) into a folder: over HTTP(S) from the
//! URL its repository's download script uses, past Google Drive's "can't scan this file for
//! viruses" confirmation page (as gdown does: the page's download form, or its
//! `download_warning` cookie), resumable with HTTP Range after an interruption, and kept only
//! once it imports strictly as its method and matches the size and SHA-256 recorded for it.
//! (Feature `download` of memvos-model.)
//!
//! The file is written as `NAME.download.EXT` beside its final name and renamed into place when
//! it checks out, so a folder never holds a half-downloaded `stcn.pth`. The size and SHA-256 of
//! the first good download are recorded in `published.json` in the folder; later downloads must
//! match them (as they must match the values compiled in, where known).

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use burn::tensor::Device;
use sha2::{Digest, Sha256};

use crate::load_network;
use crate::published::Published;

/// The largest confirmation page read (Google Drive's is a few KiB).
const MAX_PAGE: u64 = 1 << 20;
/// The largest checkpoint accepted (the published ones are 200–400 MB).
pub const MAX_CHECKPOINT: u64 = 4 << 30;
/// Confirmation pages followed before giving up.
const MAX_CONFIRMATIONS: usize = 3;
/// The file of recorded sizes and hashes in a download folder.
pub const RECORD_FILE: &str = "published.json";

/// What went wrong fetching a checkpoint.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// The request failed (connection, TLS, DNS) or the server answered with an error.
    #[error("downloading {name} from {url}: {reason}")]
    Http {
        /// The checkpoint's name.
        name: String,
        /// The URL asked.
        url: String,
        /// What happened.
        reason: String,
    },
    /// The connection ended before the whole file came; the part is kept.
    #[error("downloading {name}: the connection ended after {got} of {} bytes; run the same command again to resume", .expected.map(|e| e.to_string()).unwrap_or_else(|| "?".into()))]
    Interrupted {
        /// The checkpoint's name.
        name: String,
        /// Bytes on disk.
        got: u64,
        /// Bytes announced.
        expected: Option<u64>,
    },
    /// A page came instead of the file and it has no download link.
    #[error("downloading {name} from {url}: the server sent a web page without a download link (Google Drive's daily quota for the file may be used up; try again later or download it in a browser into {})", .dir.display())]
    NoLink {
        /// The checkpoint's name.
        name: String,
        /// The URL asked.
        url: String,
        /// The download folder.
        dir: PathBuf,
    },
    /// The file came but is not the checkpoint: removed, not kept.
    #[error("downloaded {name}, but it is not the published checkpoint ({reason}); it was not kept")]
    Rejected {
        /// The checkpoint's name.
        name: String,
        /// Why.
        reason: String,
    },
    /// A file in the download folder could not be read or written.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The system's error.
        source: std::io::Error,
    },
}

/// Where a download stands, for a progress bar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Bytes on disk (a resumed part counts from its start).
    pub done: u64,
    /// The file's size, once the server says it.
    pub total: Option<u64>,
}

/// A checkpoint in place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Downloaded {
    /// Its path.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-256, hex.
    pub sha256: String,
    /// Whether the size and hash were recorded by this download (the first good one).
    pub recorded_now: bool,
    /// Bytes that were already on disk from an interrupted download.
    pub resumed_from: u64,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DownloadError + '_ {
    move |source| DownloadError::Io { path: path.to_path_buf(), source }
}

/// The recorded `(size, sha256)` of each name in a download folder.
pub fn recorded(dir: &Path) -> BTreeMap<String, (u64, String)> {
    std::fs::read(dir.join(RECORD_FILE)).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
}

fn record(dir: &Path, name: &str, size: u64, sha: &str) -> Result<(), DownloadError> {
    let mut all = recorded(dir);
    all.insert(name.to_string(), (size, sha.to_string()));
    let path = dir.join(RECORD_FILE);
    let tmp = dir.join(format!(".{RECORD_FILE}.tmp"));
    let json = serde_json::to_vec_pretty(&all).unwrap_or_default();
    std::fs::write(&tmp, json).map_err(io(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(io(&path))
}

/// The partial file of a checkpoint: its final name with `.download` before the extension, so
/// the weight readers still know its format.
pub fn partial_path(dir: &Path, entry: &Published) -> PathBuf {
    let p = Path::new(entry.file);
    let stem = p.file_stem().and_then(|s| s.to_str()).unwrap_or(entry.name);
    match p.extension().and_then(|e| e.to_str()) {
        Some(ext) => dir.join(format!("{stem}.download.{ext}")),
        None => dir.join(format!("{stem}.download")),
    }
}

/// Downloads `entry` into `dir` from its own URLs (primary, then mirrors).
pub fn fetch(entry: &Published, dir: &Path, progress: &mut dyn FnMut(Progress)) -> Result<Downloaded, DownloadError> {
    fetch_from(entry, &entry.urls(), dir, progress)
}

/// Downloads `entry` into `dir` from `urls`, tried in order until one gives a file (a mirror
/// after a failed primary). An interrupted download resumes from its part; the file is kept
/// only after it imports strictly as `entry.method` and matches what is recorded for it.
pub fn fetch_from(entry: &Published, urls: &[String], dir: &Path, progress: &mut dyn FnMut(Progress)) -> Result<Downloaded, DownloadError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let part = partial_path(dir, entry);
    let mut last = None;
    let mut resumed_from = 0;
    for url in urls {
        resumed_from = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
        match transfer(entry, url, dir, &part, progress) {
            Ok(()) => {
                last = None;
                break;
            }
            // An interruption keeps its part for the next run; other failures try a mirror.
            Err(e @ DownloadError::Interrupted { .. }) => return Err(e),
            Err(e) => last = Some(e),
        }
    }
    if let Some(e) = last {
        return Err(e);
    }
    verify_and_keep(entry, dir, &part, resumed_from)
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        .max_redirects(10)
        .user_agent(concat!("memvos/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

fn transfer(entry: &Published, url: &str, dir: &Path, part: &Path, progress: &mut dyn FnMut(Progress)) -> Result<(), DownloadError> {
    let agent = agent();
    let http = |url: &str, reason: String| DownloadError::Http { name: entry.name.to_string(), url: url.to_string(), reason };
    let mut url = url.to_string();
    for _ in 0..=MAX_CONFIRMATIONS {
        let have = std::fs::metadata(part).map(|m| m.len()).unwrap_or(0);
        let mut req = agent.get(&url);
        if have > 0 {
            req = req.header("Range", format!("bytes={have}-"));
        }
        let resp = req.call().map_err(|e| http(&url, e.to_string()))?;
        let status = resp.status().as_u16();
        let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        if status == 416 && have > 0 {
            // The part already holds the whole file.
            return Ok(());
        }
        if !(200..300).contains(&status) {
            return Err(http(&url, format!("the server answered {status}")));
        }
        let html = header("content-type").is_some_and(|t| t.starts_with("text/html"));
        if html {
            let cookies: Vec<String> = resp.headers().get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).map(str::to_string).collect();
            let page = resp.into_body().with_config().limit(MAX_PAGE).read_to_string().map_err(|e| http(&url, e.to_string()))?;
            url = confirmed_url(&url, &page, &cookies).ok_or_else(|| DownloadError::NoLink { name: entry.name.to_string(), url: url.clone(), dir: dir.to_path_buf() })?;
            continue;
        }
        let resuming = status == 206 && have > 0;
        let length = header("content-length").and_then(|l| l.parse::<u64>().ok());
        let total = match (resuming, header("content-range").and_then(|r| r.rsplit('/').next().and_then(|t| t.parse::<u64>().ok()))) {
            (true, Some(t)) => Some(t),
            (true, None) => length.map(|l| l + have),
            (false, _) => length,
        };
        if total.is_some_and(|t| t > MAX_CHECKPOINT) {
            return Err(http(&url, format!("the file is {} bytes, more than any published checkpoint ({MAX_CHECKPOINT})", total.unwrap_or(0))));
        }
        let mut file = if resuming { OpenOptions::new().append(true).open(part) } else { File::create(part) }.map_err(io(part))?;
        let mut done = if resuming { have } else { 0 };
        progress(Progress { done, total });
        let mut body = resp.into_body().into_reader();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = match body.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(_) => {
                    file.flush().map_err(io(part))?;
                    return Err(DownloadError::Interrupted { name: entry.name.to_string(), got: done, expected: total });
                }
            };
            file.write_all(&buf[..n]).map_err(io(part))?;
            done += n as u64;
            if done > MAX_CHECKPOINT {
                return Err(http(&url, format!("more than {MAX_CHECKPOINT} bytes came; stopped")));
            }
            progress(Progress { done, total });
        }
        file.sync_all().map_err(io(part))?;
        if total.is_some_and(|t| done < t) {
            return Err(DownloadError::Interrupted { name: entry.name.to_string(), got: done, expected: total });
        }
        return Ok(());
    }
    Err(http(&url, format!("more than {MAX_CONFIRMATIONS} confirmation pages")))
}

/// The URL a Google Drive confirmation page leads to: its download form (action and hidden
/// inputs), a `download_warning` cookie's token, or a `confirm=` link on the page.
pub fn confirmed_url(url: &str, page: &str, cookies: &[String]) -> Option<String> {
    // The form Drive shows today: <form id="download-form" action="…"> with hidden inputs.
    if let Some(form_at) = page.find("id=\"download-form\"") {
        let form = &page[page[..form_at].rfind("<form").unwrap_or(form_at)..];
        let form = &form[..form.find("</form>").unwrap_or(form.len())];
        if let Some(action) = attr(form, "action") {
            let mut query = Vec::new();
            let mut rest = form;
            while let Some(i) = rest.find("<input") {
                let tag = &rest[i..rest[i..].find('>').map(|e| i + e).unwrap_or(rest.len())];
                if attr(tag, "type").as_deref() == Some("hidden")
                    && let (Some(n), Some(v)) = (attr(tag, "name"), attr(tag, "value"))
                {
                    query.push(format!("{}={}", encode(&n), encode(&v)));
                }
                rest = &rest[i + 6..];
            }
            let action = absolute(url, &html_unescape(&action));
            let sep = if action.contains('?') { '&' } else { '?' };
            return Some(if query.is_empty() { action } else { format!("{action}{sep}{}", query.join("&")) });
        }
    }
    // The older flow: a cookie download_warning_…=TOKEN.
    for c in cookies {
        if let Some(rest) = c.strip_prefix("download_warning")
            && let Some(eq) = rest.find('=')
        {
            let token = rest[eq + 1..].split(';').next().unwrap_or("");
            if !token.is_empty() {
                let sep = if url.contains('?') { '&' } else { '?' };
                return Some(format!("{url}{sep}confirm={}", encode(token)));
            }
        }
    }
    // A link carrying confirm=.
    let mut rest = page;
    while let Some(i) = rest.find("href=\"") {
        let start = i + 6;
        let end = rest[start..].find('"').map(|e| start + e)?;
        let href = html_unescape(&rest[start..end]);
        if href.contains("confirm=") && (href.contains("export=download") || href.contains("/uc?")) {
            return Some(absolute(url, &href));
        }
        rest = &rest[end..];
    }
    None
}

fn attr(tag: &str, name: &str) -> Option<String> {
    let key = format!("{name}=\"");
    let mut from = 0;
    while let Some(i) = tag[from..].find(&key) {
        let at = from + i;
        // A whole attribute name: preceded by a space.
        if at > 0 && tag.as_bytes()[at - 1].is_ascii_whitespace() {
            let start = at + key.len();
            let end = tag[start..].find('"')? + start;
            return Some(html_unescape(&tag[start..end]));
        }
        from = at + key.len();
    }
    None
}

fn html_unescape(s: &str) -> String {
    s.replace("&amp;", "&").replace("&quot;", "\"").replace("&#39;", "'").replace("&lt;", "<").replace("&gt;", ">")
}

fn encode(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

/// `href` made absolute against `base` (scheme and host of `base` for a path).
fn absolute(base: &str, href: &str) -> String {
    if href.starts_with("http://") || href.starts_with("https://") {
        return href.to_string();
    }
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_end = base[scheme_end..].find('/').map(|i| scheme_end + i).unwrap_or(base.len());
    if href.starts_with('/') { format!("{}{href}", &base[..host_end]) } else { format!("{}/{href}", &base[..host_end]) }
}

fn sha256_of(path: &Path) -> Result<(u64, String), DownloadError> {
    let mut f = File::open(path).map_err(io(path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(io(path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        size += n as u64;
    }
    Ok((size, format!("{:x}", h.finalize())))
}

fn verify_and_keep(entry: &Published, dir: &Path, part: &Path, resumed_from: u64) -> Result<Downloaded, DownloadError> {
    let reject = |reason: String| {
        let _ = std::fs::remove_file(part);
        DownloadError::Rejected { name: entry.name.to_string(), reason }
    };
    let (size, sha) = sha256_of(part)?;
    let known = recorded(dir).remove(entry.name).or_else(|| entry.size.zip(entry.sha256).map(|(s, h)| (s, h.to_string())));
    if let Some((want_size, want_sha)) = &known
        && (*want_size != size || *want_sha != sha)
    {
        return Err(reject(format!("{size} bytes with SHA-256 {sha}, but {want_size} bytes with SHA-256 {want_sha} are recorded for it")));
    }
    if let Err(e) = load_network(part, Some(entry.method), &Device::flex()) {
        return Err(reject(format!("it does not import as {}: {e}", entry.method)));
    }
    let path = dir.join(entry.file);
    std::fs::rename(part, &path).map_err(io(&path))?;
    let recorded_now = known.is_none();
    if recorded_now {
        record(dir, entry.name, size, &sha)?;
    }
    Ok(Downloaded { path, size, sha256: sha, recorded_now, resumed_from })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confirmation_pages_lead_to_the_file() {
        let form = r#"<html><body><form id="download-form" action="https://drive.usercontent.google.com/download" method="get">
            <input type="submit" value="Download anyway"/><input type="hidden" name="id" value="ABC"><input type="hidden" name="export" value="download">
            <input type="hidden" name="confirm" value="t"><input type="hidden" name="uuid" value="u-1&amp;2"></form></body></html>"#;
        assert_eq!(
            confirmed_url("https://drive.google.com/uc?id=ABC", form, &[]).unwrap(),
            "https://drive.usercontent.google.com/download?id=ABC&export=download&confirm=t&uuid=u-1%262"
        );
        let cookie = ["download_warning_13058876669334088843_ABC=Xy_z; Path=/uc; Secure".to_string()];
        assert_eq!(confirmed_url("https://drive.google.com/uc?id=ABC", "<html></html>", &cookie).unwrap(), "https://drive.google.com/uc?id=ABC&confirm=Xy_z");
        let link = r#"<a id="uc-download-link" href="/uc?export=download&amp;confirm=QQ&amp;id=ABC">Download anyway</a>"#;
        assert_eq!(confirmed_url("http://127.0.0.1:9/uc?id=ABC", link, &[]).unwrap(), "http://127.0.0.1:9/uc?export=download&confirm=QQ&id=ABC");
        assert_eq!(confirmed_url("https://drive.google.com/uc?id=ABC", "<html>Quota exceeded</html>", &[]), None);
    }
}
