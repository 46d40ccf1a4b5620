//! Downloads of published checkpoints against a loopback HTTP server this test starts itself
//! (no internet here): Google Drive's confirmation-page flow, a connection dropped mid-file and
//! resumed with Range, a truncated or wrong file refused and not kept, a server error as one line.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};

use memvos_model::download::{DownloadError, RECORD_FILE, fetch_from, partial_path, recorded};
use memvos_model::published::Published;
use memvos_model::{DEFAULT_MODEL, Method};

const ENTRY: Published = Published { name: "tiny", method: Method::Stcn, file: "tiny.safetensors", drive_id: "ID", repository: "test", mirrors: &[], size: None, sha256: None };

/// What the server does with a file request.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// Serve the payload (honouring Range).
    Good,
    /// Announce the whole payload, send half, close.
    DropHalf,
    /// Answer 500.
    Error,
}

struct Server {
    base: String,
    /// Request lines and Range headers seen.
    log: Arc<Mutex<Vec<String>>>,
    mode: Arc<Mutex<Mode>>,
}

fn respond(mut s: TcpStream, payload: &[u8], mode: Mode, log: &Mutex<Vec<String>>) {
    let mut reader = BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let mut range = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
            break;
        }
        if let Some(v) = h.to_ascii_lowercase().strip_prefix("range: bytes=") {
            range = v.trim().trim_end_matches('-').parse::<usize>().ok();
        }
    }
    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
    log.lock().unwrap().push(format!("{path} range={range:?}"));
    if path.starts_with("/uc?") {
        // Drive's page for files too large to scan, with its download form.
        let page = r#"<!DOCTYPE html><html><body><p>Google Drive can't scan this file for viruses.</p><form id="download-form" action="/download" method="get"><input type="submit" value="Download anyway"/><input type="hidden" name="id" value="ID"><input type="hidden" name="export" value="download"><input type="hidden" name="confirm" value="t"></form></body></html>"#;
        let _ = write!(s, "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}", page.len());
        return;
    }
    if path.starts_with("/quota") {
        let page = "<html><body>Too many users have viewed or downloaded this file recently.</body></html>";
        let _ = write!(s, "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}", page.len());
        return;
    }
    match mode {
        Mode::Error => {
            let _ = write!(s, "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
        Mode::DropHalf => {
            let _ = write!(s, "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", payload.len());
            let _ = s.write_all(&payload[..payload.len() / 2]);
            let _ = s.flush();
            // Dropping the stream closes the connection mid-file.
        }
        Mode::Good => match range {
            Some(from) if from < payload.len() => {
                let body = &payload[from..];
                let _ = write!(s, "HTTP/1.1 206 Partial Content\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nContent-Range: bytes {from}-{}/{}\r\nConnection: close\r\n\r\n", body.len(), payload.len() - 1, payload.len());
                let _ = s.write_all(body);
            }
            _ => {
                let _ = write!(s, "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", payload.len());
                let _ = s.write_all(payload);
            }
        },
    }
}

fn serve(payload: Vec<u8>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let log = Arc::new(Mutex::new(Vec::new()));
    let mode = Arc::new(Mutex::new(Mode::Good));
    let (l, m) = (log.clone(), mode.clone());
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            let mode = *m.lock().unwrap();
            respond(s, &payload, mode, &l);
        }
    });
    Server { base, log, mode }
}

impl Server {
    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }
    fn drive_url(&self) -> Vec<String> {
        vec![format!("{}/uc?id=ID", self.base)]
    }
}

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir).map(|r| r.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect()).unwrap_or_default();
    v.sort();
    v
}

#[test]
fn confirmation_page_then_the_file_which_is_recorded() {
    let server = serve(DEFAULT_MODEL.to_vec());
    let dir = tempfile::tempdir().unwrap();
    let mut updates = 0;
    let got = fetch_from(&ENTRY, &server.drive_url(), dir.path(), &mut |_| updates += 1).unwrap();
    assert_eq!(std::fs::read(&got.path).unwrap(), DEFAULT_MODEL);
    assert_eq!(got.path, dir.path().join("tiny.safetensors"));
    assert!(got.recorded_now && updates > 0 && got.resumed_from == 0);
    let log = server.log.lock().unwrap().clone();
    assert_eq!(log, ["/uc?id=ID range=None", "/download?id=ID&export=download&confirm=t range=None"], "the page's form was followed");
    assert_eq!(recorded(dir.path())["tiny"], (DEFAULT_MODEL.len() as u64, got.sha256.clone()));
    assert_eq!(files(dir.path()), [RECORD_FILE, "tiny.safetensors"]);
    // Again: matches the record.
    let again = fetch_from(&ENTRY, &server.drive_url(), dir.path(), &mut |_| ()).unwrap();
    assert!(!again.recorded_now);
}

#[test]
fn a_dropped_connection_resumes_with_range() {
    let server = serve(DEFAULT_MODEL.to_vec());
    let dir = tempfile::tempdir().unwrap();
    server.set(Mode::DropHalf);
    let err = fetch_from(&ENTRY, &server.drive_url(), dir.path(), &mut |_| ()).unwrap_err();
    assert!(matches!(err, DownloadError::Interrupted { got, .. } if got == (DEFAULT_MODEL.len() / 2) as u64), "{err}");
    assert!(err.to_string().contains("run the same command again to resume"), "{err}");
    let part = partial_path(dir.path(), &ENTRY);
    assert_eq!(std::fs::metadata(&part).unwrap().len(), (DEFAULT_MODEL.len() / 2) as u64, "the part is kept");
    assert!(!dir.path().join("tiny.safetensors").exists());
    server.set(Mode::Good);
    let got = fetch_from(&ENTRY, &server.drive_url(), dir.path(), &mut |_| ()).unwrap();
    assert_eq!(got.resumed_from, (DEFAULT_MODEL.len() / 2) as u64);
    assert_eq!(std::fs::read(&got.path).unwrap(), DEFAULT_MODEL, "resumed byte for byte");
    let log = server.log.lock().unwrap().clone();
    assert!(log.last().unwrap().ends_with(&format!("range=Some({})", DEFAULT_MODEL.len() / 2)), "{log:?}");
    assert!(!part.exists());
}

#[test]
fn truncated_or_wrong_files_are_refused_and_not_kept() {
    let dir = tempfile::tempdir().unwrap();
    for (what, payload) in [("truncated", DEFAULT_MODEL[..DEFAULT_MODEL.len() - 100].to_vec()), ("wrong", b"<not a checkpoint>".repeat(100))] {
        let server = serve(payload);
        let err = fetch_from(&ENTRY, &server.drive_url(), dir.path(), &mut |_| ()).unwrap_err();
        assert!(matches!(err, DownloadError::Rejected { .. }), "{what}: {err}");
        assert!(err.to_string().contains("it was not kept"), "{err}");
        assert!(files(dir.path()).is_empty(), "{what}: nothing kept: {:?}", files(dir.path()));
    }
    // A good file whose bytes differ from the recorded ones is refused too.
    let server = serve(DEFAULT_MODEL.to_vec());
    let sha = "0".repeat(64);
    std::fs::write(dir.path().join(RECORD_FILE), format!("{{\"tiny\": [{}, \"{sha}\"]}}", DEFAULT_MODEL.len())).unwrap();
    let err = fetch_from(&ENTRY, &server.drive_url(), dir.path(), &mut |_| ()).unwrap_err().to_string();
    assert!(err.contains("are recorded for it") && err.contains(&sha), "{err}");
    assert!(!dir.path().join("tiny.safetensors").exists());
}

#[test]
fn server_errors_and_quota_pages_are_one_line() {
    let server = serve(DEFAULT_MODEL.to_vec());
    let dir = tempfile::tempdir().unwrap();
    server.set(Mode::Error);
    let err = fetch_from(&ENTRY, &[format!("{}/file", server.base)], dir.path(), &mut |_| ()).unwrap_err().to_string();
    assert!(err.contains("500") && err.contains("tiny") && !err.contains('\n'), "{err}");
    let err = fetch_from(&ENTRY, &[format!("{}/quota", server.base)], dir.path(), &mut |_| ()).unwrap_err().to_string();
    assert!(err.contains("without a download link") && !err.contains('\n'), "{err}");
    // Nothing listens here: a connection error, one line; then the mirror serves the file.
    let dead = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/uc?id=ID", l.local_addr().unwrap())
    };
    let err = fetch_from(&ENTRY, std::slice::from_ref(&dead), dir.path(), &mut |_| ()).unwrap_err().to_string();
    assert!(err.contains(&dead) && !err.contains('\n'), "{err}");
    server.set(Mode::Good);
    let got = fetch_from(&ENTRY, &[dead, format!("{}/uc?id=ID", server.base)], dir.path(), &mut |_| ()).unwrap();
    assert_eq!(std::fs::read(got.path).unwrap(), DEFAULT_MODEL, "the mirror after a failed primary");
    assert!(files(dir.path()).iter().all(|f| !f.contains(".download")));
}
