//! The studio in a real browser (headless Chromium driven through chromedriver by WebDriver):
//! paint the object of frame 0 of a synthetic video with mouse strokes, propagate forward, wait
//! for the last frame, export, and score the exported masks (J&F ≥ 0.7 with the shipped model);
//! plus the server's guards: no token → 403, path traversal → 4xx, oversized bodies → 413. And
//! memvos's MP4 overlay (`--overlay mp4`) played by the browser's own decoder, frame by frame.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them); fails, saying so,
//! where they are missing.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::actions::{InputSource, MOUSE_BUTTON_LEFT, MouseActions, PointerAction};
use fantoccini::{ClientBuilder, Locator};
use memvos_data::layout::Davis;
use memvos_data::synth::{SynthConfig, write_dataset};
use memvos_eval::{EvalOptions, Protocol, evaluate};
use memvos_model::{Benchmark, Frames, MemoryNetwork, Model, ModelOptions, ModelSource, PropagatorConfig, Session};
use memvos_studio::{StudioOptions, start};

/// A raw HTTP/1.1 request; returns (status, body).
fn http(addr: SocketAddr, method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let _ = s.write_all(body);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, text.split("\r\n\r\n").nth(1).unwrap_or("").to_string())
}

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn chromedriver(tmp: &Path) -> (Driver, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let runtime = tmp.join("xdg");
    std::fs::create_dir_all(&runtime).unwrap();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .env("XDG_RUNTIME_DIR", &runtime)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("chromedriver cannot start ({e}): install Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)"));
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(start.elapsed() < Duration::from_secs(30), "chromedriver did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    (Driver(child), port)
}

/// Where the test leaves its screenshot.
fn output_dir() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("studio");
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paint_propagate_export_in_a_real_browser() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("davis");
    let cfg = SynthConfig { videos: 1, frames: 12, height: 240, width: 432, min_objects: 1, max_objects: 1, entry_probability: 0.0, seed: 31, ..Default::default() };
    write_dataset(&root, &cfg, |_| {}).unwrap();
    let frames = root.join("JPEGImages/480p/synth-0000");
    let gt0 = memvos_data::read_mask(&root.join("Annotations/480p/synth-0000/00000.png")).unwrap().labels;
    let results = dir.path().join("results");
    let out = results.join("synth-0000");

    let model = Model::load(ModelSource::Default, &ModelOptions::default()).unwrap();
    let session = Session::new(model.shared(), PropagatorConfig::for_method(model.method(), Benchmark::YouTube), Box::new(Frames::folder(&frames).unwrap()), model.device()).unwrap();
    let studio = start(session, model.shared(), model.device().clone(), Default::default(), StudioOptions { host: [127, 0, 0, 1].into(), port: 0, out: out.clone(), name: "synth-0000".into() }).unwrap();
    let token = studio.url.split("token=").nth(1).unwrap().to_string();
    assert!(studio.addr.ip().is_loopback());

    // Guards, on the raw socket.
    let auth = [("X-Memvos-Token", token.as_str())];
    assert_eq!(http(studio.addr, "GET", "/", &[], b"").0, 403, "the page without its token");
    assert_eq!(http(studio.addr, "GET", "/api/info", &[("X-Memvos-Token", "0123")], b"").0, 403);
    assert_eq!(http(studio.addr, "GET", "/api/info", &auth, b"").0, 200);
    for target in ["/../../etc/passwd", "/api/frame/..%2F..%2Fetc%2Fpasswd", "/api/frame/../../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd"] {
        let (status, body) = http(studio.addr, "GET", target, &auth, b"");
        assert!((400..500).contains(&status), "{target}: {status} {body}");
        assert!(!body.contains("root:"), "{target} served a file");
    }
    let (status, body) = http(studio.addr, "PUT", "/api/labels/0", &auth, b"too short");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("bytes"), "{body}");
    assert_eq!(http(studio.addr, "PUT", "/api/labels/0", &auth, &vec![0u8; 5 << 20]).0, 413);

    // The browser.
    let (_driver, port) = chromedriver(dir.path());
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({"binary": "/usr/bin/chromium", "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1200,800"]}),
    );
    let c = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new()).capabilities(caps).connect(&format!("http://127.0.0.1:{port}")).await.expect("a WebDriver session");
    c.goto(&studio.url).await.unwrap();
    let wait = |js: &'static str, secs: u64| {
        let c = c.clone();
        async move {
            let start = Instant::now();
            loop {
                if c.execute(js, vec![]).await.unwrap() == serde_json::json!(true) {
                    return;
                }
                assert!(start.elapsed() < Duration::from_secs(secs), "timed out waiting for: {js}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    wait("return document.body.dataset.ready === 'yes'", 30).await;

    // Paint frame 0's object: horizontal strokes every 5 rows over the ground truth, a brush
    // of radius 3, each stroke kept 3 pixels inside the object's run.
    c.execute("document.getElementById('size').value = 3; document.getElementById('size').dispatchEvent(new Event('input'));", vec![]).await.unwrap();
    let rect = c.execute("const r = document.getElementById('view').getBoundingClientRect(); return [r.left, r.top];", vec![]).await.unwrap();
    let (left, top) = (rect[0].as_f64().unwrap(), rect[1].as_f64().unwrap());
    let mut mouse = MouseActions::new("mouse".into());
    let (h, w) = (gt0.height(), gt0.width());
    let mut strokes = 0;
    for y in (0..h).step_by(5) {
        let mut x = 0;
        while x < w {
            if gt0.labels[[y, x]] == 0 {
                x += 1;
                continue;
            }
            let x0 = x;
            while x < w && gt0.labels[[y, x]] != 0 {
                x += 1;
            }
            let (a, b) = (x0 + 3, x.saturating_sub(4));
            if b > a {
                mouse = mouse
                    .then(PointerAction::MoveTo { duration: None, x: left + a as f64 + 0.5, y: top + y as f64 + 0.5 })
                    .then(PointerAction::Down { button: MOUSE_BUTTON_LEFT })
                    .then(PointerAction::MoveTo { duration: Some(Duration::from_millis(20)), x: left + b as f64 + 0.5, y: top + y as f64 + 0.5 })
                    .then(PointerAction::Up { button: MOUSE_BUTTON_LEFT });
                strokes += 1;
            }
        }
    }
    assert!(strokes > 5, "the object is too small to paint ({strokes} strokes)");
    c.perform_actions(mouse).await.unwrap();
    wait("return document.getElementById('frame-kind').textContent === 'annotated'", 20).await;

    // Propagate forward and wait for the last frame.
    c.find(Locator::Id("prop-forward")).await.unwrap().click().await.unwrap();
    wait("return document.body.dataset.running === 'no' && document.body.dataset.labelled === '12'", 240).await;
    // Look at a propagated frame, and where frame 6 puts frame 0's object centre in frame 9.
    let (mut sy, mut sx, mut n) = (0usize, 0usize, 0usize);
    for ((y, x), &v) in gt0.labels.indexed_iter() {
        if v != 0 {
            (sy, sx, n) = (sy + y, sx + x, n + 1);
        }
    }
    c.execute("document.querySelectorAll('#timeline div')[6].click();", vec![]).await.unwrap();
    wait("return document.getElementById('frame-no').textContent === '6' && document.getElementById('frame-kind').textContent === 'propagated'", 20).await;
    c.find(Locator::Id("tool-correspond")).await.unwrap().click().await.unwrap();
    c.execute("document.getElementById('corr-to').value = 9;", vec![]).await.unwrap();
    let click = MouseActions::new("mouse".into())
        .then(PointerAction::MoveTo { duration: None, x: left + (sx / n) as f64 + 0.5, y: top + (sy / n) as f64 + 0.5 })
        .then(PointerAction::Down { button: MOUSE_BUTTON_LEFT })
        .then(PointerAction::Up { button: MOUSE_BUTTON_LEFT });
    c.perform_actions(click).await.unwrap();
    wait("const h = document.getElementById('heat'); return h.complete && h.naturalWidth === 432", 30).await;
    let shot = c.screenshot().await.unwrap();
    let shot_path = output_dir().join("studio-after-propagation.png");
    std::fs::write(&shot_path, &shot).unwrap();
    eprintln!("screenshot: {}", shot_path.display());
    assert!(image::load_from_memory(&shot).is_ok());

    // Export, then score the exported masks against the ground truth.
    c.find(Locator::Id("export")).await.unwrap().click().await.unwrap();
    wait("return document.body.dataset.exported === '12'", 60).await;
    c.close().await.unwrap();
    assert!(out.join("overlay.gif").is_file());
    let ds = Davis::new(&root, 2017, "val").open().unwrap();
    let eval = evaluate(&ds, &results, &EvalOptions { protocol: Protocol::from_year(2017).unwrap(), bound_th: memvos_eval::metrics::BOUND_TH }, |_| {}).unwrap();
    let jf = eval.global.jf_mean;
    eprintln!("J&F of the painted and propagated video: {jf:.3}");
    assert!(jf >= 0.7, "J&F {jf:.3} below 0.7");
}

/// `--overlay mp4` as a person sees it: the browser decodes memvos's AV1/MP4, and each frame's
/// pixels (seeked one by one) show the blended object where memvos drew it, in its colours.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mp4_overlay_plays_in_a_real_browser() {
    use memvos_data::overlay::{OverlayKind, overlay, write_overlay};
    use memvos_data::{Frame, LabelMap, Palette};
    let dir = tempfile::tempdir().unwrap();
    let (h, w, n) = (64usize, 96usize, 12usize);
    let square_x = |k: usize| 8 + 5 * k;
    let frames: Vec<Frame> = (0..n)
        .map(|k| Frame::new(ndarray::Array3::from_shape_fn((h, w, 3), |(y, x, c)| if (20..44).contains(&y) && (square_x(k)..square_x(k) + 24).contains(&x) { [220, 40, 30][c] } else { [90 + (x / 12) as u8 * 10, 120, 150][c] })).unwrap())
        .collect();
    let labels: Vec<LabelMap> = (0..n).map(|k| LabelMap::new(ndarray::Array2::from_shape_fn((h, w), |(y, x)| ((22..42).contains(&y) && (square_x(k) + 2..square_x(k) + 22).contains(&x)) as u8))).collect();
    let pairs: Vec<(&Frame, &LabelMap)> = frames.iter().zip(&labels).collect();
    let path = write_overlay(OverlayKind::Mp4, dir.path(), &pairs, &Palette::davis()).unwrap().unwrap();
    assert_eq!(path.file_name().unwrap(), "overlay.mp4");
    let bytes = std::fs::read(&path).unwrap();
    let expected: Vec<Frame> = pairs.iter().map(|(f, l)| overlay(f, l, &Palette::davis(), 0.5).unwrap()).collect();

    // Points: inside each frame's object (away from its contour), where the object was on frame
    // 0 but no longer is from frame 6 on, and plain background.
    let checks = [0usize, 3, 6, 11];
    let points = |k: usize| vec![(square_x(k) + 12, 32), (square_x(k) + 6, 27), (20, 32), (85, 8), (5, 55)];
    let (_driver, port) = chromedriver(dir.path());
    let mut caps = serde_json::Map::new();
    caps.insert("goog:chromeOptions".into(), serde_json::json!({"binary": "/usr/bin/chromium", "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]}));
    let c = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new()).capabilities(caps).connect(&format!("http://127.0.0.1:{port}")).await.expect("a WebDriver session");
    let js = r#"
        const [bytes, times, points, want, tolerance, done] = arguments;
        const v = document.createElement('video');
        v.muted = true;
        document.body.appendChild(v);
        v.onerror = () => done({error: 'the video does not decode: ' + (v.error && v.error.code)});
        v.onloadeddata = async () => {
            const c = document.createElement('canvas');
            c.width = v.videoWidth; c.height = v.videoHeight;
            const g = c.getContext('2d', {willReadFrequently: true});
            const sample = i => {
                g.drawImage(v, 0, 0);
                return points[i].map(([x, y]) => Array.from(g.getImageData(x, y, 1, 1).data.slice(0, 3)));
            };
            const close = (got, i) => got.every((p, j) => p.every((q, k) => Math.abs(q - want[i][j][k]) <= tolerance));
            const pixels = [];
            for (let i = 0; i < times.length; i++) {
                await new Promise(r => { v.onseeked = r; v.currentTime = times[i]; });
                // 'seeked' can come before the seeked frame is decoded and shown (Chromium under
                // load drew the previous one): sample again until memvos's pixels appear or 5 s
                // pass, and report the last sample either way (the test asserts on it).
                let got = sample(i);
                for (const start = Date.now(); !close(got, i) && Date.now() - start < 5000; got = sample(i)) {
                    await new Promise(r => setTimeout(r, 50));
                }
                pixels.push(got);
            }
            done({w: v.videoWidth, h: v.videoHeight, duration: v.duration, pixels});
        };
        v.src = URL.createObjectURL(new Blob([new Uint8Array(bytes)], {type: 'video/mp4'}));
    "#;
    let times: Vec<f64> = checks.iter().map(|&k| (k as f64 + 0.5) / 24.0).collect();
    let pts: Vec<Vec<(usize, usize)>> = checks.iter().map(|&k| points(k)).collect();
    let tolerance = 12i64;
    let want: Vec<Vec<Vec<i64>>> = checks.iter().zip(&pts).map(|(&k, p)| p.iter().map(|&(x, y)| (0..3).map(|c| expected[k].rgb[[y, x, c]] as i64).collect()).collect()).collect();
    let got = c.execute_async(js, vec![serde_json::json!(bytes), serde_json::json!(times), serde_json::json!(pts), serde_json::json!(want), serde_json::json!(tolerance)]).await.unwrap();
    c.close().await.unwrap();
    assert!(got.get("error").is_none(), "{got}");
    assert_eq!((got["w"].as_u64(), got["h"].as_u64()), (Some(w as u64), Some(h as u64)), "{got}");
    assert!((got["duration"].as_f64().unwrap() - n as f64 / 24.0).abs() < 0.05, "{got}");
    for (i, &k) in checks.iter().enumerate() {
        for (j, &(x, y)) in pts[i].iter().enumerate() {
            let px: Vec<i64> = got["pixels"][i][j].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
            let want = &want[i][j];
            let err = (0..3).map(|c| (px[c] - want[c]).abs()).max().unwrap();
            assert!(err <= tolerance, "frame {k} pixel ({x}, {y}): the browser shows {px:?}, memvos drew {want:?}");
        }
    }
}
