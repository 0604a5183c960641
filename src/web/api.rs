//! The page's API, under `api/`: JSON to read (cameras, live scores as
//! server-sent events, scores over time, events, search, labels,
//! calibration, status), JPEGs (the live frame, event snapshots), and the
//! changes (labels, thresholds, example images, a camera on or off), which
//! [`super::server`]'s guard has let through only for a logged-in page of
//! this origin.
//!
//! Nothing here takes a file path from a request: cameras are named, a
//! camera's labels files are numbered in the order of its zones, events
//! by their id, and a labels text may name no example image its file does
//! not already name.

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::server::{error, Web, WebCamera};
use super::{auth, WebCommand};
use crate::daemon::camera_labels::{CameraLabels, LabelsOrigin, MAX_COMMAND_LABELS_BYTES, MAX_COMMAND_PROMPTS};
use crate::daemon::examples;
use crate::daemon::live::ScoredFrame;
use crate::eval::calibrate::{propose, Series, MAX_THRESHOLD};
use crate::eval::truth::{Truth, Visit};
use crate::labels::examples::{FRAME_PREFIX, IMAGE_PREFIX};
use crate::labels::{file, LabelsError};
use crate::pipeline::matcher::Scores;
use crate::search::{Query as SearchQuery, Search};
use crate::store::query::{Filter, Kind};
use crate::store::{millis, time_of, Store};

/// How often the live stream sends the scores: twice a second shows a
/// bar move with the scene, and costs a board nothing worth counting.
const LIVE_EVERY: Duration = Duration::from_millis(500);
/// Live streams open at once: a few people with a few tabs each.
const MAX_LIVE_STREAMS: usize = 8;
/// The most points a scores chart gets per label, whatever its span: a
/// chart is a few hundred pixels wide.
const CHART_POINTS: usize = 600;
/// The most events a listing returns.
const MAX_LISTED: usize = 500;
/// How long the page waits for the camera's next frame as an example (the
/// daemon gives the camera 10 s).
const EXAMPLE_REPLY_WITHIN: Duration = Duration::from_secs(12);

/// A refusal as the API answers it: a JSON error (boxed: a response is
/// large, and most results are not refusals).
pub struct ApiError(Box<Response>);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        *self.0
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

fn fail(status: StatusCode, message: impl Into<String>) -> ApiError {
    ApiError(Box::new(error(status, message)))
}

fn bad(message: impl Into<String>) -> ApiError {
    fail(StatusCode::BAD_REQUEST, message)
}

fn camera<'a>(web: &'a Web, name: &str) -> ApiResult<&'a WebCamera> {
    web.camera(name).ok_or_else(|| {
        let names: Vec<&str> = web.cameras.iter().map(|c| c.config.name.as_str()).collect();
        fail(StatusCode::NOT_FOUND, format!("no camera '{name}' (cameras: {})", names.join(", ")))
    })
}

/// Runs blocking work on tokio's blocking threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> ApiResult<T> + Send + 'static) -> ApiResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| fail(StatusCode::INTERNAL_SERVER_ERROR, format!("the request's work failed: {e}")))?
}

// ---- session ---------------------------------------------------------------

pub async fn session(State(web): State<Arc<Web>>, headers: HeaderMap) -> Response {
    let csrf = auth::session_cookie(&headers).and_then(|t| web.guard.session(&t));
    let password = web.config.password_hash.is_some();
    Json(json!({
        "node": web.node,
        "model": web.bundle.name,
        "version": env!("CARGO_PKG_VERSION"),
        "password": password,
        "logged_in": csrf.is_some(),
        "csrf": csrf,
        "changes": password && web.config.changes,
        "score_history_min": web.config.score_history.as_secs_f64() / 60.0,
    }))
    .into_response()
}

#[derive(Deserialize)]
pub struct Login {
    password: String,
}

pub async fn login(
    State(web): State<Arc<Web>>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Json(body): Json<Login>,
) -> Response {
    let Some(hash) = web.config.password_hash.clone() else {
        return bad("this page has no password (web.password_hash); it only shows, and needs no login").into_response();
    };
    if let Some(wait) = web.guard.login_blocked() {
        return fail(
            StatusCode::TOO_MANY_REQUESTS,
            format!("{} failed logins in the last minute; try again in {wait} s", auth::FAILED_LOGINS),
        )
        .into_response();
    }
    let password = body.password;
    let right = tokio::task::spawn_blocking(move || super::password::verify(&hash, &password)).await.unwrap_or(false);
    if !right {
        web.guard.login_failed();
        web.refusals.failed_logins.fetch_add(1, Ordering::Relaxed);
        web.log_refused(from, "login", "wrong password");
        return fail(StatusCode::UNAUTHORIZED, "wrong password").into_response();
    }
    match web.guard.login() {
        Ok((token, csrf)) => {
            tracing::info!("web: logged in from {from}");
            ([(header::SET_COOKIE, auth::set_cookie(&token, &headers))], Json(json!({ "csrf": csrf }))).into_response()
        }
        Err(e) => fail(StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
    }
}

pub async fn logout(State(web): State<Arc<Web>>, headers: HeaderMap) -> Response {
    if let Some(token) = auth::session_cookie(&headers) {
        web.guard.logout(&token);
    }
    let expired = format!("{}=; HttpOnly; SameSite=Strict; Max-Age=0", auth::COOKIE);
    ([(header::SET_COOKIE, expired)], Json(json!({}))).into_response()
}

// ---- cameras and the live view --------------------------------------------

/// A camera's labels files: each distinct one, in the order of its zones.
fn label_files(c: &WebCamera) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = Vec::new();
    for z in &c.config.zones {
        if !files.contains(&z.labels) {
            files.push(z.labels.clone());
        }
    }
    files
}

pub async fn cameras(State(web): State<Arc<Web>>) -> Response {
    let list: Vec<Value> = web
        .cameras
        .iter()
        .map(|c| {
            let files = label_files(c);
            json!({
                "name": c.config.name,
                "source": c.shared.source,
                "enabled": c.shared.enabled.load(Ordering::Relaxed),
                "detector": {
                    "start_frames": c.config.detector.start_frames,
                    "end_frames": c.config.detector.end_frames,
                    "margin": c.config.detector.margin,
                },
                "zones": c.config.zones.iter().enumerate().map(|(i, z)| json!({
                    "index": i,
                    "name": z.name,
                    "rect": [z.rect.x0, z.rect.y0, z.rect.x1, z.rect.y1],
                    "file": files.iter().position(|f| *f == z.labels),
                })).collect::<Vec<_>>(),
                "files": files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>(),
            })
        })
        .collect();
    Json(json!({ "cameras": list })).into_response()
}

/// A scored frame as the page draws it: each label's score and, for those
/// that can fire, its threshold.
fn scored_json(s: &ScoredFrame) -> Value {
    let names = s.labels.matcher.names();
    let labels: Vec<Value> = names
        .iter()
        .zip(s.scores.iter())
        .map(|(name, &score)| {
            let d = s.labels.detector.iter().find(|d| d.name == *name);
            json!({
                "label": name,
                "score": (f64::from(score) * 1e4).round() / 1e4,
                "threshold": d.filter(|d| !d.negative).map(|d| d.threshold),
            })
        })
        .collect();
    json!({ "frame": s.frame, "time_ms": s.time_ms, "labels": labels })
}

fn live_json(web: &Web) -> Value {
    let cameras: Vec<Value> = web
        .cameras
        .iter()
        .map(|c| {
            let zones: Vec<Value> = (0..c.config.zones.len())
                .map(|i| {
                    json!({
                        "zone": c.config.zones[i].name,
                        "scores": c.shared.live.latest(i).as_ref().map(scored_json),
                    })
                })
                .collect();
            json!({
                "name": c.config.name,
                "enabled": c.shared.enabled.load(Ordering::Relaxed),
                "active": c.shared.active.lock().unwrap_or_else(|e| e.into_inner()).clone(),
                "zones": zones,
            })
        })
        .collect();
    json!({ "time_ms": millis(SystemTime::now()), "cameras": cameras })
}

/// Counts a live stream while it is open.
struct StreamSlot(Arc<Web>);

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.live_streams.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Server-sent events: the live scores of every camera, every `LIVE_EVERY`.
pub async fn live(State(web): State<Arc<Web>>) -> Response {
    if web.live_streams.fetch_add(1, Ordering::SeqCst) >= MAX_LIVE_STREAMS {
        web.live_streams.fetch_sub(1, Ordering::SeqCst);
        return fail(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{MAX_LIVE_STREAMS} live pages are open already; close one"),
        )
        .into_response();
    }
    let slot = StreamSlot(web);
    let stream = futures::stream::unfold((slot, true), |(slot, first)| async move {
        if !first {
            tokio::time::sleep(LIVE_EVERY).await;
        }
        let event = SseEvent::default().data(live_json(&slot.0).to_string());
        Some((Ok::<_, Infallible>(event), (slot, false)))
    });
    Sse::new(stream).keep_alive(KeepAlive::default()).into_response()
}

pub async fn frame(State(web): State<Arc<Web>>, Path(name): Path<String>) -> Response {
    let c = match camera(&web, &name) {
        Ok(c) => c,
        Err(r) => return r.into_response(),
    };
    match c.shared.live.frame() {
        Some(f) => (
            [
                (header::CONTENT_TYPE, "image/jpeg".to_string()),
                (header::CACHE_CONTROL, "no-store".to_string()),
                (header::HeaderName::from_static("x-frame"), f.frame.to_string()),
            ],
            f.jpeg.as_ref().clone(),
        )
            .into_response(),
        None => fail(StatusCode::NOT_FOUND, "no frame yet; the camera's next one comes within a second or two")
            .into_response(),
    }
}

// ---- scores over time --------------------------------------------------------

#[derive(Deserialize)]
pub struct ScoresQuery {
    camera: String,
    #[serde(default)]
    zone: usize,
    minutes: Option<f64>,
}

pub async fn scores(State(web): State<Arc<Web>>, Query(q): Query<ScoresQuery>) -> ApiResult<Response> {
    let c = camera(&web, &q.camera)?;
    if q.zone >= c.config.zones.len() {
        return Err(bad(format!(
            "camera '{}' has {} zone(s); zone {} is not one",
            q.camera,
            c.config.zones.len(),
            q.zone
        )));
    }
    let kept = web.config.score_history.as_secs_f64() / 60.0;
    let minutes = q.minutes.unwrap_or(10.0);
    if !(minutes > 0.0 && minutes <= kept) {
        return Err(bad(format!(
            "minutes {minutes} is out of range; accepted: more than 0, at most {kept} (web.score_history_min)"
        )));
    }
    let to_ms = millis(SystemTime::now());
    let since_ms = to_ms - (minutes * 60_000.0) as i64;
    let frames = c.shared.live.scores_since(q.zone, since_ms);
    // A history shorter than the span asked fills the chart.
    let from_ms = frames.first().map_or(since_ms, |f| f.time_ms.min(to_ms - 1000));
    // The labels of the newest frame name the columns.
    let labels: Vec<String> = frames.last().map(|f| f.labels.matcher.names().to_vec()).unwrap_or_default();
    let thresholds: BTreeMap<&str, f32> = frames
        .last()
        .map(|f| f.labels.detector.iter().filter(|d| !d.negative).map(|d| (d.name.as_str(), d.threshold)).collect())
        .unwrap_or_default();
    // The highest score of each label per bucket, so that a short peak is
    // never averaged away.
    let width = ((to_ms - from_ms) as f64 / CHART_POINTS as f64).max(1.0);
    let mut buckets: BTreeMap<i64, Vec<Option<f32>>> = BTreeMap::new();
    for f in &frames {
        let b = ((f.time_ms - from_ms) as f64 / width) as i64;
        let row = buckets.entry(b).or_insert_with(|| vec![None; labels.len()]);
        for (name, &score) in f.labels.matcher.names().iter().zip(f.scores.iter()) {
            if let Some(ix) = labels.iter().position(|l| l == name) {
                row[ix] = Some(row[ix].map_or(score, |s: f32| s.max(score)));
            }
        }
    }
    let points: Vec<Value> = buckets
        .into_iter()
        .map(|(b, row)| {
            let mut p = vec![json!(from_ms + (b as f64 * width) as i64)];
            p.extend(row.into_iter().map(|s| json!(s.map(|s| (f64::from(s) * 1e4).round() / 1e4))));
            Value::Array(p)
        })
        .collect();
    let zone = c.config.zones[q.zone].name.clone();
    let events: Vec<_> = web.view.events_since(&q.camera, from_ms).into_iter().filter(|e| e.zone == zone).collect();
    Ok(Json(json!({
        "camera": q.camera,
        "zone": zone,
        "from_ms": from_ms,
        "to_ms": to_ms,
        "frames": frames.len(),
        "labels": labels,
        "thresholds": thresholds,
        "points": points,
        "events": events,
    }))
    .into_response())
}

// ---- events and search ---------------------------------------------------------

/// The read-only store, opened on first use.
fn with_store<T>(web: &Web, f: impl FnOnce(&Store) -> ApiResult<T>) -> ApiResult<T> {
    let Some(path) = &web.store_path else {
        return Err(fail(StatusCode::NOT_FOUND, "no event history on this board (store.enabled = false)"));
    };
    let mut slot = web.store.lock().unwrap_or_else(|e| e.into_inner());
    if slot.is_none() {
        *slot = Some(Store::open_read_only(path).map_err(|e| fail(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?);
    }
    f(slot.as_ref().expect("opened above"))
}

#[derive(Deserialize, Clone)]
pub struct EventsQuery {
    camera: Option<String>,
    zone: Option<String>,
    label: Option<String>,
    limit: Option<usize>,
    /// Milliseconds since the Unix epoch: events that started before it
    /// (the next page of a listing).
    before_ms: Option<i64>,
}

fn filter_of(q: &EventsQuery) -> Filter {
    Filter {
        camera: q.camera.clone().filter(|s| !s.is_empty()),
        zone: q.zone.clone().filter(|s| !s.is_empty()),
        until: q.before_ms.map(time_of),
        ..Filter::default()
    }
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

pub async fn events(State(web): State<Arc<Web>>, Query(q): Query<EventsQuery>) -> ApiResult<Response> {
    let limit = q.limit.unwrap_or(50).clamp(1, MAX_LISTED);
    let w = Arc::clone(&web);
    let list = blocking(move || {
        with_store(&w, |store| {
            let label = q.label.clone().filter(|s| !s.is_empty());
            // A label is narrowed here: the store's filter is shared with
            // keyframes, which have none.
            let fetch = if label.is_some() { MAX_LISTED * 4 } else { limit };
            let found = store
                .events(&filter_of(&q), fetch)
                .map_err(|e| fail(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
            Ok(found
                .into_iter()
                .filter(|e| label.as_ref().is_none_or(|l| *l == e.label))
                .take(limit)
                .map(|e| {
                    json!({
                        "id": e.id,
                        "camera": e.camera,
                        "zone": e.zone,
                        "label": e.label,
                        "start": rfc3339(e.start),
                        "start_ms": millis(e.start),
                        "end": e.end.map(rfc3339),
                        "score": e.score,
                        "peak": e.peak,
                        "reason": e.reason,
                        "snapshot": e.snapshot,
                    })
                })
                .collect::<Vec<_>>())
        })
    })
    .await?;
    Ok(Json(json!({ "events": list })).into_response())
}

pub async fn snapshot(State(web): State<Arc<Web>>, Path(id): Path<i64>) -> ApiResult<Response> {
    let w = Arc::clone(&web);
    let jpeg = blocking(move || {
        with_store(&w, |store| {
            store.snapshot(Kind::Event, id).map_err(|e| fail(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
        })
    })
    .await?;
    match jpeg {
        Some(jpeg) => {
            Ok(([(header::CONTENT_TYPE, "image/jpeg"), (header::CACHE_CONTROL, "private, max-age=86400")], jpeg)
                .into_response())
        }
        None => Err(fail(StatusCode::NOT_FOUND, format!("event {id} has no snapshot (or is no longer kept)"))),
    }
}

// Not `#[serde(flatten)]` of an `EventsQuery`: a query string's numbers
// then arrive as text and no longer parse.
#[derive(Deserialize)]
pub struct SearchParams {
    q: Option<String>,
    like: Option<i64>,
    camera: Option<String>,
    zone: Option<String>,
    limit: Option<usize>,
}

pub async fn search(State(web): State<Arc<Web>>, Query(p): Query<SearchParams>) -> ApiResult<Response> {
    let query = match (p.q.as_deref().map(str::trim).filter(|s| !s.is_empty()), p.like) {
        (Some(text), None) => SearchQuery::Text(text.to_string()),
        (None, Some(id)) => SearchQuery::Like(Kind::Event, id),
        _ => return Err(bad("give a text to search for (q=...) or an event to find more like (like=ID), one of them")),
    };
    let limit = p.limit.unwrap_or(20).clamp(1, 100);
    let within = EventsQuery { camera: p.camera, zone: p.zone, label: None, limit: None, before_ms: None };
    let w = Arc::clone(&web);
    let hits = blocking(move || {
        with_store(&w, |store| {
            let mut filter = filter_of(&within);
            filter.model = Some(w.bundle.name.clone());
            let search = Search { query, filter, limit, keyframes: false };
            let mut searcher = w.searcher.lock().unwrap_or_else(|e| e.into_inner());
            searcher.search(store, &search).map(|(hits, _)| hits).map_err(|e| bad(e.to_string()))
        })
    })
    .await?;
    Ok(Json(json!({ "hits": hits })).into_response())
}

// ---- labels -------------------------------------------------------------------

#[derive(Deserialize)]
pub struct LabelsQuery {
    camera: String,
}

pub async fn labels(State(web): State<Arc<Web>>, Query(q): Query<LabelsQuery>) -> ApiResult<Response> {
    let c = camera(&web, &q.camera)?;
    let files: Vec<Value> = label_files(c)
        .iter()
        .enumerate()
        .map(|(i, path)| {
            let zones: Vec<usize> = (0..c.config.zones.len()).filter(|&z| c.config.zones[z].labels == *path).collect();
            let origin = zones.first().map(|&z| c.shared.labels(z).origin.to_string());
            let (text, error) = match file::read_text(path) {
                Ok(t) => (Some(t), None),
                Err(e) => (None, Some(e.to_string())),
            };
            json!({
                "index": i,
                "path": path.display().to_string(),
                "zones": zones.iter().map(|&z| c.config.zones[z].name.clone()).collect::<Vec<_>>(),
                "origin": origin,
                "text": text,
                "error": error,
            })
        })
        .collect();
    Ok(Json(json!({ "camera": q.camera, "files": files })).into_response())
}

#[derive(Deserialize)]
pub struct LabelsEdit {
    camera: String,
    file: usize,
    text: String,
    /// The text the page loaded: a save is refused when the file changed
    /// since (someone else's edit would be lost).
    base: Option<String>,
}

/// A labels text that does not load: the message, and its line when it has one.
fn labels_error(e: &anyhow::Error) -> ApiError {
    let line = e.chain().find_map(|c| match c.downcast_ref::<LabelsError>() {
        Some(LabelsError::Syntax { line, .. } | LabelsError::NotEmbedded { line, .. }) => Some(*line),
        _ => None,
    });
    ApiError(Box::new(
        (StatusCode::UNPROCESSABLE_ENTITY, Json(json!({ "error": format!("{e:#}"), "line": line }))).into_response(),
    ))
}

/// The example images labels name (their `image:` and `frame:` prompts).
fn example_prompts(labels: &[file::Label]) -> BTreeSet<&str> {
    labels
        .iter()
        .flat_map(|l| &l.prompts)
        .map(String::as_str)
        .filter(|p| p.starts_with(IMAGE_PREFIX) || p.starts_with(FRAME_PREFIX))
        .collect()
}

/// Loads `text` as every zone that reads file `file` would, and scores each
/// on its zone's latest frame: (zone name, label, score, threshold). Also
/// returns the file as it is now (read once, for the checks here and a
/// save's comparison).
fn check_labels(
    web: &Web,
    c: &WebCamera,
    file: usize,
    text: &str,
) -> ApiResult<(Vec<Value>, Result<String, LabelsError>)> {
    if text.len() > MAX_COMMAND_LABELS_BYTES {
        return Err(bad(format!(
            "{} bytes of labels; the page takes at most {MAX_COMMAND_LABELS_BYTES} (edit a larger file on the board)",
            text.len()
        )));
    }
    let files = label_files(c);
    let Some(path) = files.get(file) else {
        return Err(bad(format!(
            "camera '{}' has {} labels file(s); file {file} is not one",
            c.config.name,
            files.len()
        )));
    };
    let now = file::read_text(path);
    let known = now.as_ref().ok().and_then(|t| file::parse(path, t).ok()).unwrap_or_default();
    let edited = file::parse(path, text).unwrap_or_default();
    // Examples are read from disk: a text may keep the ones its file names,
    // but not name others (which could be any file the daemon can read).
    if let Some(new) = example_prompts(&edited).difference(&example_prompts(&known)).next() {
        return Err(bad(format!(
            "'{new}' is an example image the file does not name yet; the page may keep the file's example images but not add others (add them on the board, or with the page's 'add as example')"
        )));
    }
    // Prompts the file does not have yet are embedded by the text encoder
    // (the file's own are cached): as many as a `labels/set` command may ask.
    let templates = web.bundle.label_templates.len().max(1);
    let new_prompts: usize = edited
        .iter()
        .map(|l| match known.iter().find(|k| k.name == l.name) {
            Some(k) if l.explicit_prompts => l.prompts.iter().filter(|p| !k.prompts.contains(p)).count(),
            Some(_) => 0,
            None if l.explicit_prompts => l.prompts.len(),
            None => templates,
        })
        .sum();
    if new_prompts > MAX_COMMAND_PROMPTS {
        return Err(bad(format!(
            "{new_prompts} new prompts to embed; the page may ask for at most {MAX_COMMAND_PROMPTS} at once (save in steps, or edit the file on the board)"
        )));
    }
    // One check at a time: embedding takes the cores the cameras use.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut zones = Vec::new();
    for (z, zone) in c.config.zones.iter().enumerate().filter(|(_, zone)| zone.labels == *path) {
        let options = crate::labels::resolve::LabelOptions { zone: Some(zone.rect), ..web.label_options.clone() };
        let (labels, _) =
            CameraLabels::load(&web.bundle, LabelsOrigin::File(path.clone()), text, zone.threshold, &options)
                .map_err(|e| labels_error(&e))?;
        let scores = c.shared.live.embedding(z).map(|embedding| {
            let mut out = Scores::default();
            labels.matcher.score(&embedding, 0, &mut out);
            scored_json(&ScoredFrame {
                time_ms: 0,
                frame: 0,
                scores: out.probability.clone().into(),
                labels: Arc::new(labels),
            })
        });
        zones.push(json!({ "zone": zone.name, "scores": scores }));
    }
    Ok((zones, now))
}

pub async fn labels_check(State(web): State<Arc<Web>>, Json(edit): Json<LabelsEdit>) -> ApiResult<Response> {
    let w = Arc::clone(&web);
    let zones = blocking(move || {
        let c = camera(&w, &edit.camera)?;
        check_labels(&w, c, edit.file, &edit.text).map(|(zones, _)| zones)
    })
    .await?;
    Ok(Json(json!({ "ok": true, "zones": zones })).into_response())
}

pub async fn labels_save(
    State(web): State<Arc<Web>>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    Json(edit): Json<LabelsEdit>,
) -> ApiResult<Response> {
    let w = Arc::clone(&web);
    let path = blocking(move || {
        let c = camera(&w, &edit.camera)?;
        let (_, now) = check_labels(&w, c, edit.file, &edit.text)?;
        let path = label_files(c)[edit.file].clone();
        if let Some(base) = &edit.base {
            if now.map_err(|e| bad(e.to_string()))? != *base {
                return Err(fail(
                    StatusCode::CONFLICT,
                    format!("'{}' changed since the page loaded it; load it again and redo the edit", path.display()),
                ));
            }
        }
        // Through a rename: the daemon's watcher never reads half a file.
        crate::util::file::write_atomically(&path, edit.text.as_bytes()).map_err(|e| {
            fail(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!(
                    "cannot write '{}': {e}; the service may write only under /var/lib/edgeclip: move the labels file there (owned by the service) and point the camera's `labels` at it",
                    path.display()
                ),
            )
        })?;
        Ok(path)
    })
    .await?;
    tracing::info!("web: {from} saved '{}'; it loads within a second", path.display());
    Ok(Json(json!({ "saved": path.display().to_string() })).into_response())
}

#[derive(Deserialize)]
pub struct ExampleAsk {
    camera: String,
    zone: Option<String>,
    label: String,
    /// An event whose snapshot to add, instead of the camera's next frame.
    event: Option<i64>,
}

pub async fn example(State(web): State<Arc<Web>>, Json(ask): Json<ExampleAsk>) -> ApiResult<Response> {
    let c = camera(&web, &ask.camera)?;
    let zone = ask.zone.clone().filter(|z| !z.is_empty());
    let Some(event) = ask.event else {
        let (tx, rx) = std::sync::mpsc::channel();
        let command = WebCommand::Example { camera: ask.camera.clone(), zone, label: ask.label.clone(), reply: tx };
        send(&web, command)?;
        let (path, count) = blocking(move || {
            rx.recv_timeout(EXAMPLE_REPLY_WITHIN)
                .map_err(|_| fail(StatusCode::GATEWAY_TIMEOUT, "the daemon did not answer in time"))?
                .map_err(bad)
        })
        .await?;
        return Ok(Json(json!({ "saved": path.display().to_string(), "examples": count })).into_response());
    };
    let z = match &zone {
        None => 0,
        Some(name) => c
            .config
            .zones
            .iter()
            .position(|cz| cz.name.as_deref() == Some(name))
            .ok_or_else(|| bad(format!("camera '{}' has no zone '{name}'", ask.camera)))?,
    };
    let labels_file = c.config.zones[z].labels.clone();
    let rect = c.config.zones[z].rect;
    let w = Arc::clone(&web);
    let label = ask.label.clone();
    let (path, count) = blocking(move || {
        let (jpeg, start, frame) = with_store(&w, |store| {
            let e = store
                .entry(Kind::Event, event)
                .map_err(|e| fail(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
                .ok_or_else(|| fail(StatusCode::NOT_FOUND, format!("no event {event}")))?;
            let jpeg = store
                .snapshot(Kind::Event, event)
                .map_err(|e| fail(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
                .ok_or_else(|| bad(format!("event {event} has no snapshot")))?;
            // The event's id stands for the frame in the file's name.
            Ok((jpeg, e.time, event as u64))
        })?;
        let (folder, whole_frame) = examples::example_folder(&labels_file, &label).map_err(bad)?;
        // A zone's example is what the zone shows (a snapshot is the whole
        // frame with the zone outlined).
        let jpeg = if whole_frame || rect.is_whole() { jpeg } else { crop_jpeg(&jpeg, &rect).map_err(bad)? };
        examples::save(&folder, &jpeg, start, frame).map_err(bad)
    })
    .await?;
    send(&web, WebCommand::Reload { camera: ask.camera.clone(), labels_file: c.config.zones[z].labels.clone() })?;
    tracing::info!("web: event {event}'s snapshot saved as example {count} of '{}' in '{}'", ask.label, path.display());
    Ok(Json(json!({ "saved": path.display().to_string(), "examples": count })).into_response())
}

/// The part of a JPEG under `rect`, as a JPEG.
fn crop_jpeg(jpeg: &[u8], rect: &crate::pipeline::zone::Rect) -> Result<Vec<u8>, String> {
    let image = image::load_from_memory(jpeg).map_err(|e| format!("the snapshot does not decode: {e}"))?.to_rgb8();
    let (w, h) = (image.width() as f32, image.height() as f32);
    let (x0, y0) = ((rect.x0 * w) as u32, (rect.y0 * h) as u32);
    let (x1, y1) = (((rect.x1 * w) as u32).max(x0 + 1), ((rect.y1 * h) as u32).max(y0 + 1));
    let cut = image::imageops::crop_imm(&image, x0, y0, x1 - x0, y1 - y0).to_image();
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, crate::daemon::camera::EXAMPLE_JPEG_QUALITY)
        .encode(cut.as_raw(), cut.width(), cut.height(), image::ExtendedColorType::Rgb8)
        .map_err(|e| e.to_string())?;
    Ok(out)
}

fn send(web: &Web, command: WebCommand) -> ApiResult<()> {
    web.commands
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send(command)
        .map_err(|_| fail(StatusCode::SERVICE_UNAVAILABLE, "the daemon is stopping"))
}

#[derive(Deserialize)]
pub struct EnableAsk {
    camera: String,
    enabled: bool,
}

pub async fn enabled(State(web): State<Arc<Web>>, Json(ask): Json<EnableAsk>) -> ApiResult<Response> {
    camera(&web, &ask.camera)?;
    let (tx, rx) = std::sync::mpsc::channel();
    send(&web, WebCommand::Enable { camera: ask.camera, enabled: ask.enabled, reply: tx })?;
    blocking(move || {
        rx.recv_timeout(Duration::from_secs(5))
            .map_err(|_| fail(StatusCode::GATEWAY_TIMEOUT, "the daemon did not answer in time"))?
            .map_err(bad)
    })
    .await?;
    Ok(Json(json!({ "enabled": ask.enabled })).into_response())
}

// ---- calibration ----------------------------------------------------------------

#[derive(Deserialize)]
pub struct CalibrateQuery {
    camera: String,
    minutes: f64,
    margin: Option<f32>,
    /// JSON: the events of these minutes that were right (`[{"zone",
    /// "label", "start_ms", "end_ms"}]`); every other moment is scene.
    right: Option<String>,
}

/// An event the person says was right: a visit of its label.
#[derive(Deserialize)]
struct RightEvent {
    zone: Option<String>,
    label: String,
    start_ms: i64,
    end_ms: Option<i64>,
}

/// The right events as the visits of a truth, on the frames of `scored`
/// (from the event's first frame, and `lead` frames before it, where the
/// label was already in view, to its last).
fn truth_of(right: &[RightEvent], zone: &Option<String>, scored: &[ScoredFrame], lead: u64, fps: f64) -> Truth {
    let visits = right
        .iter()
        .filter(|r| r.zone == *zone)
        .filter_map(|r| {
            let end = r.end_ms.unwrap_or(i64::MAX);
            let inside: Vec<u64> =
                scored.iter().filter(|s| s.time_ms >= r.start_ms && s.time_ms <= end).map(|s| s.frame).collect();
            let (first, last) = (*inside.first()?, *inside.last()?);
            Some(Visit {
                zone: zone.clone(),
                label: r.label.clone(),
                first,
                last,
                in_view: (first.saturating_sub(lead), last),
            })
        })
        .collect();
    Truth { fps, frames: scored.last().map_or(0, |s| s.frame + 1), visits }
}

pub async fn calibrate(State(web): State<Arc<Web>>, Query(q): Query<CalibrateQuery>) -> ApiResult<Response> {
    let c = camera(&web, &q.camera)?;
    let kept = web.config.score_history.as_secs_f64() / 60.0;
    if !(q.minutes > 0.0 && q.minutes <= kept) {
        return Err(bad(format!(
            "minutes {} is out of range; accepted: more than 0, at most {kept} (web.score_history_min)",
            q.minutes
        )));
    }
    let margin = q.margin.unwrap_or(0.05);
    if !(0.0..=0.5).contains(&margin) {
        return Err(bad(format!("margin {margin} is out of range; accepted: 0 to 0.5 (a softmax probability)")));
    }
    let right: Vec<RightEvent> = match &q.right {
        Some(text) => serde_json::from_str(text)
            .map_err(|e| bad(format!("'right' is not a list of events ({{zone, label, start_ms, end_ms}}): {e}")))?,
        None => Vec::new(),
    };
    let since = millis(SystemTime::now()) - (q.minutes * 60_000.0) as i64;
    let mut proposals = Vec::new();
    let mut frames = 0;
    for (z, zone) in c.config.zones.iter().enumerate() {
        let current = c.shared.labels(z);
        // Only frames scored against the labels as they are now: a softmax
        // over other labels is another scale.
        let scored: Vec<ScoredFrame> = c
            .shared
            .live
            .scores_since(z, since)
            .into_iter()
            .filter(|s| s.labels.matcher.names() == current.matcher.names())
            .collect();
        frames += scored.len();
        if scored.len() < 2 {
            continue;
        }
        let span_s = (scored[scored.len() - 1].time_ms - scored[0].time_ms).max(1) as f64 / 1000.0;
        let fps = (scored.len() - 1) as f64 / span_s;
        let truth = truth_of(&right, &zone.name, &scored, u64::from(c.config.detector.start_frames), fps);
        for (ix, d) in current.detector.iter().enumerate().filter(|(_, d)| !d.negative) {
            let series = Series {
                zone: zone.name.clone(),
                label: d.name.clone(),
                threshold: d.threshold,
                scores: scored.iter().map(|s| (s.frame, s.scores[ix])).collect(),
            };
            proposals.push(propose(&series, Some(&truth), c.config.detector, margin, fps));
        }
    }
    if frames == 0 {
        return Err(bad(format!(
            "no frame of camera '{}' was inferred with its current labels in the last {} minutes; nothing to calibrate on",
            q.camera, q.minutes
        )));
    }
    let events: Vec<_> = web.view.events_since(&q.camera, since).into_iter().filter(|e| e.start_ms >= since).collect();
    Ok(Json(json!({
        "camera": q.camera,
        "frames": frames,
        "minutes": q.minutes,
        "right": right.len(),
        "labels": proposals,
        "events": events,
    }))
    .into_response())
}

#[derive(Deserialize, Serialize)]
pub struct Threshold {
    zone: Option<String>,
    label: String,
    threshold: f32,
}

#[derive(Deserialize)]
pub struct ApplyAsk {
    camera: String,
    thresholds: Vec<Threshold>,
}

/// Writes thresholds into the labels files, as `edgeclip calibrate --write`
/// does: a file several zones read takes the highest for a label.
pub async fn calibrate_apply(
    State(web): State<Arc<Web>>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    Json(ask): Json<ApplyAsk>,
) -> ApiResult<Response> {
    let w = Arc::clone(&web);
    let written = blocking(move || {
        let c = camera(&w, &ask.camera)?;
        let mut writes: BTreeMap<PathBuf, BTreeMap<usize, f32>> = BTreeMap::new();
        for t in &ask.thresholds {
            if !(t.threshold > 0.0 && t.threshold <= MAX_THRESHOLD) {
                return Err(bad(format!(
                    "threshold {} for '{}' is out of range; accepted: above 0, at most {MAX_THRESHOLD}",
                    t.threshold, t.label
                )));
            }
            let zone = c
                .config
                .zones
                .iter()
                .find(|z| z.name.as_deref() == t.zone.as_deref().filter(|s| !s.is_empty()))
                .ok_or_else(|| bad(format!("camera '{}' has no zone {:?}", ask.camera, t.zone)))?;
            let labels = file::read(&zone.labels).map_err(|e| bad(e.to_string()))?;
            let line =
                labels.iter().find(|l| l.name == t.label && !l.negative).map(|l| l.line).ok_or_else(|| {
                    bad(format!("no label '{}' that can fire in '{}'", t.label, zone.labels.display()))
                })?;
            let v = writes.entry(zone.labels.clone()).or_default().entry(line).or_insert(t.threshold);
            *v = v.max(t.threshold);
        }
        let mut written = Vec::new();
        for (path, thresholds) in &writes {
            file::write_thresholds(path, thresholds).map_err(|e| {
                // A file that cannot be written is the board's fault; one
                // that does not read or parse, the file's.
                let status = if e.root_cause().is::<std::io::Error>() {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::BAD_REQUEST
                };
                fail(status, format!("{e:#}"))
            })?;
            written.push(json!({ "file": path.display().to_string(), "thresholds": thresholds.len() }));
        }
        Ok(written)
    })
    .await?;
    tracing::info!("web: {from} applied calibrated thresholds ({} file(s))", written.len());
    Ok(Json(json!({ "written": written })).into_response())
}

// ---- status -----------------------------------------------------------------------

pub async fn status(State(web): State<Arc<Web>>) -> Response {
    let r = &web.refusals;
    Json(json!({
        "stats": web.view.stats(),
        "web": {
            "live_streams": web.live_streams.load(Ordering::Relaxed),
            "refused_not_logged_in": r.not_logged_in.load(Ordering::Relaxed),
            "refused_cross_site": r.cross_site.load(Ordering::Relaxed),
            "failed_logins": r.failed_logins.load(Ordering::Relaxed),
            "rate_limited": r.rate_limited.load(Ordering::Relaxed),
        },
    }))
    .into_response()
}
