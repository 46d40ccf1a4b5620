//! # memvos-studio
//!
//! A page in the browser to segment a video by hand with a memvos [`Session`]: paint, erase or
//! outline objects on any frame, propagate forward, backward or both ways and watch the frames
//! arrive, correct a frame and propagate again, look where the network's affinity puts a point
//! (correspondence), and export palette PNGs and an overlay GIF.
//!
//! The server ([`start`]) binds to loopback unless told otherwise, answers only requests that
//! carry its random token (the printed URL holds it, as notebook servers do), serves frames by
//! index and writes only into its output folder (no path ever comes from a request), limits
//! request bodies, and answers bad requests with a 4xx and a message. The page is one embedded
//! HTML file (no CDN, works offline).

#![warn(missing_docs)]

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use burn::tensor::Device;
use memvos_data::frame::{Frame, LabelMap};
use memvos_data::Palette;
use memvos_model::correspond::{correspondence, heat_overlay};
use memvos_model::{Direction, Session, SharedNetwork, Until};
use serde::Deserialize;
use serde_json::json;

/// The page, embedded.
pub const PAGE: &str = include_str!("page.html");

/// What can go wrong starting the studio.
#[derive(Debug, thiserror::Error)]
pub enum StudioError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The system's error.
        source: std::io::Error,
    },
    /// The async runtime could not start.
    #[error("cannot start the server's runtime: {0}")]
    Runtime(std::io::Error),
}

/// How to serve.
#[derive(Clone, Debug)]
pub struct StudioOptions {
    /// Address to bind (default 127.0.0.1; anything else is reachable from other machines).
    pub host: IpAddr,
    /// Port (0: a free one).
    pub port: u16,
    /// Where exports go.
    pub out: PathBuf,
    /// The video's name (its folder's), for messages and the page title.
    pub name: String,
}

struct Running {
    direction: String,
    done: usize,
    total: usize,
    fps: f64,
}

struct Shared {
    session: Mutex<Session>,
    net: SharedNetwork,
    device: Device,
    token: String,
    out: PathBuf,
    name: String,
    palette: Palette,
    names: Mutex<BTreeMap<u8, String>>,
    running: Mutex<Option<Running>>,
    stop: AtomicBool,
    last_error: Mutex<Option<String>>,
}

type App = Arc<Shared>;

/// A running studio: its URL (with the token) and a handle that stops it when dropped.
pub struct Studio {
    /// `http://HOST:PORT/?token=…`
    pub url: String,
    /// The bound address.
    pub addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Studio {
    /// Serves until the process ends.
    pub fn wait(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Studio {
    fn drop(&mut self) {
        if let Some(s) = self.shutdown.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn random_token() -> String {
    use rand::Rng;
    let bytes: [u8; 16] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Starts serving `session` (segmented by `net` on `device`) in a thread of its own.
pub fn start(session: Session, net: SharedNetwork, device: Device, palette: Palette, options: StudioOptions) -> Result<Studio, StudioError> {
    let (h, w) = session.size();
    let app: App = Arc::new(Shared {
        session: Mutex::new(session),
        net,
        device,
        token: random_token(),
        out: options.out.clone(),
        name: options.name.clone(),
        palette,
        names: Mutex::new(BTreeMap::new()),
        running: Mutex::new(None),
        stop: AtomicBool::new(false),
        last_error: Mutex::new(None),
    });
    let addr = SocketAddr::new(options.host, options.port);
    let std_listener = std::net::TcpListener::bind(addr).map_err(|source| StudioError::Bind { addr, source })?;
    std_listener.set_nonblocking(true).map_err(|source| StudioError::Bind { addr, source })?;
    let bound = std_listener.local_addr().map_err(|source| StudioError::Bind { addr, source })?;
    let url = format!("http://{bound}/?token={}", app.token);
    // The largest body: a PNG import of an RGBA mask, or a raw label map, with room to spare.
    let limit = 4 * h * w + (1 << 20);
    let router = Router::new()
        .route("/", get(page))
        .route("/api/info", get(info))
        .route("/api/frame/{i}", get(frame_image))
        .route("/api/labels/{i}", get(labels).put(annotate).delete(clear))
        .route("/api/import/{i}", post(import))
        .route("/api/propagate", post(propagate))
        .route("/api/stop", post(stop))
        .route("/api/objects", post(name_object))
        .route("/api/objects/{id}", axum::routing::delete(delete_object))
        .route("/api/correspond", get(correspond))
        .route("/api/export", post(export))
        .layer(middleware::from_fn_with_state(app.clone(), require_token))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(app);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().map_err(StudioError::Runtime)?;
    let thread = std::thread::spawn(move || {
        runtime.block_on(async move {
            let Ok(listener) = tokio::net::TcpListener::from_std(std_listener) else { return };
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await;
        });
    });
    Ok(Studio { url, addr: bound, shutdown: Some(tx), thread: Some(thread) })
}

fn bad(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], msg.into()).into_response()
}

/// Every request carries the token: in the `X-Memvos-Token` header (the page's API calls) or
/// the `token` query parameter (the page itself). Compared in constant time.
async fn require_token(State(app): State<App>, req: Request, next: Next) -> Response {
    let from_header = req.headers().get("x-memvos-token").and_then(|v| v.to_str().ok()).map(str::to_string);
    let from_query = req.uri().query().and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("token=")).map(str::to_string));
    let given = from_header.or(from_query).unwrap_or_default();
    let ok = given.len() == app.token.len() && given.bytes().zip(app.token.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
    if !ok {
        return bad(StatusCode::FORBIDDEN, "forbidden: this studio answers only requests with its token (open the URL it printed)");
    }
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    resp
}

async fn page() -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CONTENT_SECURITY_POLICY, "default-src 'self'; img-src 'self' blob: data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'")], PAGE).into_response()
}

/// Runs blocking work (the session, the network) off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, Response> + Send + 'static) -> Result<T, Response> {
    tokio::task::spawn_blocking(f).await.map_err(|e| bad(StatusCode::INTERNAL_SERVER_ERROR, format!("worker failed: {e}")))?
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn frame_index(app: &App, i: &str) -> Result<usize, Response> {
    let n = lock(&app.session).len();
    match i.parse::<usize>() {
        Ok(i) if i < n => Ok(i),
        _ => Err(bad(StatusCode::BAD_REQUEST, format!("frame {i:?}: expected an index in 0..{n}"))),
    }
}

async fn info(State(app): State<App>) -> Response {
    // One lock at a time (the worker takes the session and the progress separately).
    let running = lock(&app.running).as_ref().map(|r| json!({"direction": r.direction, "done": r.done, "total": r.total, "fps": r.fps}));
    let error = lock(&app.last_error).clone();
    let object_names = lock(&app.names).clone();
    let s = lock(&app.session);
    let (h, w) = s.size();
    let names: Vec<&str> = (0..s.len()).map(|i| s.frame_name(i)).collect();
    let annotated = s.annotated();
    let labelled: Vec<usize> = (0..s.len()).filter(|&i| s.labels(i).is_some()).collect();
    let palette: Vec<[u8; 3]> = (0..=255u8).map(|i| app.palette.colour(i).unwrap_or([0, 0, 0])).collect();
    let mut objects: BTreeMap<u8, String> = s.objects().into_iter().map(|id| (id, format!("object {id}"))).collect();
    for (id, n) in object_names {
        objects.insert(id, n);
    }
    let body = json!({
        "video": app.name,
        "frames": s.len(),
        "width": w,
        "height": h,
        "names": names,
        "annotated": annotated,
        "labelled": labelled,
        "objects": objects.iter().map(|(id, n)| json!({"id": id, "name": n})).collect::<Vec<_>>(),
        "palette": palette,
        "running": running,
        "error": error,
        "method": app.net.method().name(),
    });
    axum::Json(body).into_response()
}

async fn frame_image(State(app): State<App>, Path(i): Path<String>) -> Response {
    let i = match frame_index(&app, &i) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let r = blocking(move || {
        let f = lock(&app.session).frame(i).map_err(|e| bad(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?;
        jpeg(&f).map_err(|e| bad(StatusCode::INTERNAL_SERVER_ERROR, e))
    })
    .await;
    match r {
        Ok(bytes) => ([(header::CONTENT_TYPE, "image/jpeg")], bytes).into_response(),
        Err(r) => r,
    }
}

fn jpeg(f: &Frame) -> Result<Vec<u8>, String> {
    let (h, w) = (f.height() as u32, f.width() as u32);
    let data = f.rgb.as_standard_layout().into_owned().into_raw_vec_and_offset().0;
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 92).encode(&data, w, h, image::ExtendedColorType::Rgb8).map_err(|e| e.to_string())?;
    Ok(out)
}

fn png(f: &Frame) -> Result<Vec<u8>, String> {
    use image::ImageEncoder;
    let (h, w) = (f.height() as u32, f.width() as u32);
    let data = f.rgb.as_standard_layout().into_owned().into_raw_vec_and_offset().0;
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out).write_image(&data, w, h, image::ExtendedColorType::Rgb8).map_err(|e| e.to_string())?;
    Ok(out)
}

/// A frame's labels as `H·W` bytes (row-major), with `X-Kind: annotated|propagated`; 204 when
/// nothing reached it.
async fn labels(State(app): State<App>, Path(i): Path<String>) -> Response {
    let i = match frame_index(&app, &i) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let s = lock(&app.session);
    let kind = if s.annotation(i).is_some() { "annotated" } else { "propagated" };
    match s.labels(i) {
        Some(l) => {
            let bytes = l.labels.as_standard_layout().into_owned().into_raw_vec_and_offset().0;
            ([(header::CONTENT_TYPE, "application/octet-stream"), (header::HeaderName::from_static("x-kind"), kind)], bytes).into_response()
        }
        None => StatusCode::NO_CONTENT.into_response(),
    }
}

fn label_map(app: &App, body: &[u8]) -> Result<LabelMap, Response> {
    let (h, w) = lock(&app.session).size();
    if body.len() != h * w {
        return Err(bad(StatusCode::BAD_REQUEST, format!("a label map of this video is {} bytes ({w}x{h}), got {}", h * w, body.len())));
    }
    let a = ndarray::Array2::from_shape_vec((h, w), body.to_vec()).map_err(|e| bad(StatusCode::BAD_REQUEST, e.to_string()))?;
    Ok(LabelMap::new(a))
}

fn refuse_while_running(app: &App) -> Result<(), Response> {
    if lock(&app.running).is_some() {
        return Err(bad(StatusCode::CONFLICT, "a propagation is running: stop it first"));
    }
    Ok(())
}

/// Sets a frame's complete annotation from `H·W` label bytes.
async fn annotate(State(app): State<App>, Path(i): Path<String>, body: Bytes) -> Response {
    let r = (|| {
        let i = frame_index(&app, &i)?;
        refuse_while_running(&app)?;
        let l = label_map(&app, &body)?;
        lock(&app.session).annotate(i, l).map_err(|e| bad(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?;
        Ok(StatusCode::NO_CONTENT.into_response())
    })();
    r.unwrap_or_else(|e| e)
}

async fn clear(State(app): State<App>, Path(i): Path<String>) -> Response {
    let r = (|| {
        let i = frame_index(&app, &i)?;
        refuse_while_running(&app)?;
        lock(&app.session).clear(i);
        Ok(StatusCode::NO_CONTENT.into_response())
    })();
    r.unwrap_or_else(|e: Response| e)
}

/// A mask PNG (palette, greyscale or RGB in the DAVIS palette) as the frame's annotation.
async fn import(State(app): State<App>, Path(i): Path<String>, body: Bytes) -> Response {
    let r = (|| {
        let i = frame_index(&app, &i)?;
        refuse_while_running(&app)?;
        let mask = memvos_data::io::decode_mask(&body, std::path::Path::new("uploaded mask"), memvos_data::MaskEncoding::Labels).map_err(|e| bad(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?;
        lock(&app.session).annotate(i, mask.labels).map_err(|e| bad(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?;
        Ok(StatusCode::NO_CONTENT.into_response())
    })();
    r.unwrap_or_else(|e: Response| e)
}

#[derive(Deserialize)]
struct PropagateRequest {
    from: usize,
    /// forward, backward or both
    direction: String,
}

/// Starts a propagation from a frame in a worker; the page polls `/api/info` for progress and
/// fetches frames as they arrive.
async fn propagate(State(app): State<App>, axum::Json(req): axum::Json<PropagateRequest>) -> Response {
    let directions = match req.direction.as_str() {
        "forward" => vec![Direction::Forward],
        "backward" => vec![Direction::Backward],
        "both" => vec![Direction::Backward, Direction::Forward],
        other => return bad(StatusCode::BAD_REQUEST, format!("direction {other:?}: expected forward, backward or both")),
    };
    let (len, has_mask) = {
        let s = lock(&app.session);
        (s.len(), req.from < s.len() && s.labels(req.from).is_some())
    };
    if req.from >= len {
        return bad(StatusCode::BAD_REQUEST, format!("frame {}: the video has {len} frames", req.from));
    }
    if !has_mask {
        return bad(StatusCode::UNPROCESSABLE_ENTITY, format!("frame {} has no mask to start from: paint or import one", req.from));
    }
    {
        // Never held together with the session's lock.
        let mut running = lock(&app.running);
        if running.is_some() {
            return bad(StatusCode::CONFLICT, "a propagation is already running");
        }
        *running = Some(Running { direction: req.direction.clone(), done: 0, total: 0, fps: 0.0 });
    }
    app.stop.store(false, Ordering::SeqCst);
    *lock(&app.last_error) = None;
    let worker = app.clone();
    std::thread::spawn(move || {
        let result = (|| -> Result<(), String> {
            for d in directions {
                let mut run = lock(&worker.session).start(req.from, d, Until::NextAnnotation).map_err(|e| e.to_string())?;
                loop {
                    if worker.stop.load(Ordering::SeqCst) {
                        return Ok(());
                    }
                    let step = {
                        let mut s = lock(&worker.session);
                        run.step(&mut s)
                    };
                    match step {
                        None => break,
                        Some(Err(e)) => return Err(e.to_string()),
                        Some(Ok(_)) => {
                            let p = run.progress();
                            if let Some(r) = lock(&worker.running).as_mut() {
                                r.done = p.done;
                                r.total = p.total;
                                r.fps = p.fps;
                            }
                        }
                    }
                }
            }
            Ok(())
        })();
        if let Err(e) = result {
            *lock(&worker.last_error) = Some(e);
        }
        *lock(&worker.running) = None;
    });
    StatusCode::ACCEPTED.into_response()
}

async fn stop(State(app): State<App>) -> Response {
    app.stop.store(true, Ordering::SeqCst);
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
struct NameRequest {
    id: u8,
    name: String,
}

/// Names (or renames) an object.
async fn name_object(State(app): State<App>, axum::Json(req): axum::Json<NameRequest>) -> Response {
    if req.id == 0 || req.id == 255 {
        return bad(StatusCode::BAD_REQUEST, "object ids are 1..=254");
    }
    let name: String = req.name.chars().filter(|c| !c.is_control()).take(64).collect();
    lock(&app.names).insert(req.id, name);
    StatusCode::NO_CONTENT.into_response()
}

/// Removes an object from every annotation and result.
async fn delete_object(State(app): State<App>, Path(id): Path<String>) -> Response {
    let r = (|| {
        refuse_while_running(&app)?;
        let id: u8 = id.parse().ok().filter(|&v| v != 0 && v != 255).ok_or_else(|| bad(StatusCode::BAD_REQUEST, format!("object {id:?}: ids are 1..=254")))?;
        lock(&app.session).remove_object(id);
        lock(&app.names).remove(&id);
        Ok(StatusCode::NO_CONTENT.into_response())
    })();
    r.unwrap_or_else(|e: Response| e)
}

#[derive(Deserialize)]
struct CorrespondRequest {
    from: usize,
    to: usize,
    x: usize,
    y: usize,
}

/// Frame `to` with the heat map of point `(x, y)` of frame `from` (PNG).
async fn correspond(State(app): State<App>, Query(q): Query<CorrespondRequest>) -> Response {
    let r = blocking(move || {
        let n = lock(&app.session).len();
        if q.from >= n || q.to >= n {
            return Err(bad(StatusCode::BAD_REQUEST, format!("frames {} and {}: the video has {n}", q.from, q.to)));
        }
        let (a, b) = {
            let mut s = lock(&app.session);
            (s.frame(q.from), s.frame(q.to))
        };
        let (a, b) = (a.map_err(|e| bad(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?, b.map_err(|e| bad(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?);
        let heat = correspondence(app.net.as_ref(), &a, &b, (q.x, q.y), &app.device).map_err(|e| bad(StatusCode::BAD_REQUEST, e.to_string()))?;
        let best = heat.indexed_iter().fold(((0, 0), f32::MIN), |m, (p, &v)| if v > m.1 { (p, v) } else { m }).0;
        png(&heat_overlay(&b, &heat, Some((best.1, best.0)))).map_err(|e| bad(StatusCode::INTERNAL_SERVER_ERROR, e))
    })
    .await;
    match r {
        Ok(bytes) => ([(header::CONTENT_TYPE, "image/png")], bytes).into_response(),
        Err(r) => r,
    }
}

/// Writes every labelled frame as a palette PNG (named like the frame) and `overlay.gif` into
/// the output folder.
async fn export(State(app): State<App>) -> Response {
    let r = blocking(move || {
        refuse_while_running(&app)?;
        let written = lock(&app.session).export(&app.out, &app.palette).map_err(|e| bad(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        if written == 0 {
            return Err(bad(StatusCode::UNPROCESSABLE_ENTITY, "nothing to export yet: annotate a frame first"));
        }
        Ok(json!({"written": written, "out": app.out.display().to_string()}))
    })
    .await;
    match r {
        Ok(v) => axum::Json(v).into_response(),
        Err(r) => r,
    }
}
