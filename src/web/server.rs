//! The HTTP server: axum on a current-thread tokio runtime on a thread of
//! its own (the rest of the daemon is threads and blocking calls), the
//! routes, and the guard every request passes first ([`super::auth`]).
//! Work that blocks (the store, embedding labels, searching) runs on
//! tokio's blocking threads, so the server keeps answering meanwhile.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use super::auth::{self, Guard};
use super::{api, assets, DaemonView, WebCommand};
use crate::config::{CameraConfig, WebConfig};
use crate::daemon::camera::CameraShared;
use crate::labels::resolve::LabelOptions;
use crate::model::bundle::Bundle;
use crate::search::Searcher;
use crate::store::Store;
use crate::util::log_limit::{also, LogLimit};
use crate::util::untrusted::untrusted;

/// The largest request body: a labels file being edited (the page takes
/// the same 64 KiB as the `labels/set` command) with its JSON around it.
const MAX_BODY_BYTES: usize = 160 * 1024;

/// A camera as the page sees it.
pub struct WebCamera {
    pub config: CameraConfig,
    pub shared: Arc<CameraShared>,
}

/// Requests the page refused, for its status.
#[derive(Default)]
pub struct Refusals {
    pub not_logged_in: AtomicU64,
    pub cross_site: AtomicU64,
    pub failed_logins: AtomicU64,
    pub rate_limited: AtomicU64,
}

/// Everything a request may need.
pub struct Web {
    pub config: WebConfig,
    pub node: String,
    pub bundle: Arc<Bundle>,
    pub label_options: LabelOptions,
    pub cameras: Vec<WebCamera>,
    pub view: Arc<DaemonView>,
    pub commands: Mutex<Sender<WebCommand>>,
    pub guard: Guard,
    pub refusals: Refusals,
    /// The event history, opened read-only on first use; `None` without a store.
    pub store_path: Option<PathBuf>,
    pub store: Mutex<Option<Store>>,
    pub searcher: Mutex<Searcher>,
    /// Live streams open now (each costs a little every half second).
    pub live_streams: AtomicUsize,
    /// Refused requests, logged at a bounded rate.
    pub log: Mutex<LogLimit>,
}

impl Web {
    pub fn camera(&self, name: &str) -> Option<&WebCamera> {
        self.cameras.iter().find(|c| c.config.name == name)
    }

    /// Logs a refused request (its path escaped), at a bounded rate.
    pub fn log_refused(&self, from: SocketAddr, what: &str, why: &str) {
        if let Some(n) = self.log.lock().unwrap_or_else(|e| e.into_inner()).check() {
            tracing::warn!("web: {} from {from} refused: {why}{}", untrusted(what), also(n));
        }
    }
}

/// The running server; stops when dropped.
pub struct WebServer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    pub address: SocketAddr,
}

impl Drop for WebServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// How often a stopping server looks at its flag.
const STOP_POLL: Duration = Duration::from_millis(100);

/// Binds `web.listen` (a taken address stops the daemon's start with it)
/// and serves on a thread of its own.
pub fn start(web: Web) -> anyhow::Result<WebServer> {
    let listen = web.config.listen;
    let listener = std::net::TcpListener::bind(listen)
        .with_context(|| format!("web.listen: cannot listen on {listen} for the web page"))?;
    listener.set_nonblocking(true).context("web.listen: cannot make the socket non-blocking")?;
    let address = listener.local_addr().context("web.listen: the socket has no address")?;
    let web = Arc::new(web);
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = Arc::clone(&stop);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        // Store queries and label embedding: a few at once is plenty on a
        // board, and each holds the store's or the searcher's lock anyway.
        .max_blocking_threads(4)
        .build()
        .context("cannot start the web page's runtime")?;
    let thread = std::thread::Builder::new()
        .name("web".into())
        .spawn(move || {
            runtime.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => return tracing::error!("web: cannot serve on {address}: {e}"),
                };
                let app = router(web).into_make_service_with_connect_info::<SocketAddr>();
                let stopped = async move {
                    while !stopping.load(Ordering::SeqCst) {
                        tokio::time::sleep(STOP_POLL).await;
                    }
                };
                // Not a graceful shutdown: live streams never end by
                // themselves, and would hold the daemon's stop.
                let serve = std::future::IntoFuture::into_future(axum::serve(listener, app));
                if let futures::future::Either::Left((Err(e), _)) =
                    futures::future::select(Box::pin(serve), Box::pin(stopped)).await
                {
                    tracing::error!("web: the server stopped: {e}");
                }
            });
            // The connections still open are cancelled with the runtime.
            runtime.shutdown_timeout(Duration::from_millis(500));
        })
        .context("cannot start the web page's thread")?;
    tracing::info!("web page on http://{address}/");
    Ok(WebServer { stop, thread: Some(thread), address })
}

fn router(web: Arc<Web>) -> Router {
    Router::new()
        .route("/", get(assets::index))
        .route("/app.js", get(assets::script))
        .route("/style.css", get(assets::style))
        .route("/api/session", get(api::session))
        .route("/api/login", post(api::login))
        .route("/api/logout", post(api::logout))
        .route("/api/cameras", get(api::cameras))
        .route("/api/live", get(api::live))
        .route("/api/cameras/:camera/frame.jpg", get(api::frame))
        .route("/api/scores", get(api::scores))
        .route("/api/events", get(api::events))
        .route("/api/events/:id/snapshot.jpg", get(api::snapshot))
        .route("/api/search", get(api::search))
        .route("/api/labels", get(api::labels))
        .route("/api/labels/check", post(api::labels_check))
        .route("/api/labels/save", post(api::labels_save))
        .route("/api/example", post(api::example))
        .route("/api/enabled", post(api::enabled))
        .route("/api/calibrate", get(api::calibrate))
        .route("/api/calibrate/apply", post(api::calibrate_apply))
        .route("/api/status", get(api::status))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(Arc::clone(&web), guard))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(web)
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "no such page")
}

/// A JSON error, as every refusal is answered.
pub fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({ "error": message.into() }))).into_response()
}

/// The rules of [`super::auth`], before any route.
async fn guard(
    State(web): State<Arc<Web>>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path().to_string();
    if !web.guard.take_request() {
        web.refusals.rate_limited.fetch_add(1, Ordering::Relaxed);
        return error(StatusCode::TOO_MANY_REQUESTS, "too many requests; try again in a second");
    }
    let open = matches!(path.as_str(), "/" | "/app.js" | "/style.css" | "/api/session" | "/api/login" | "/api/logout");
    let headers = req.headers();
    let session = auth::session_cookie(headers).and_then(|t| web.guard.session(&t));
    let password = web.config.password_hash.is_some();
    if !open && path.starts_with("/api/") {
        if password && session.is_none() {
            web.refusals.not_logged_in.fetch_add(1, Ordering::Relaxed);
            return error(StatusCode::UNAUTHORIZED, "log in first");
        }
        if !password && auth::forwarded(headers) {
            web.log_refused(from, &path, "it came through a proxy and web.password_hash is not set");
            return error(
                StatusCode::FORBIDDEN,
                "this page was reached through a proxy, so from beyond the board: set web.password_hash first",
            );
        }
    }
    let method = req.method().clone();
    if method != Method::GET && method != Method::HEAD {
        if let Some(why) = auth::cross_site(&method, headers) {
            web.refusals.cross_site.fetch_add(1, Ordering::Relaxed);
            web.log_refused(from, &format!("{method} {path}"), &format!("cross-site write: {why}"));
            return error(StatusCode::FORBIDDEN, format!("refused as a cross-site write: {why}"));
        }
        if !open {
            if !password {
                return error(
                    StatusCode::FORBIDDEN,
                    "changes from the page need a password: set web.password_hash (`edgeclip hash-password`)",
                );
            }
            if !web.config.changes {
                return error(StatusCode::FORBIDDEN, "changes from the page are off (web.changes = false)");
            }
            let sent = headers.get(auth::CSRF_HEADER).and_then(|v| v.to_str().ok());
            if sent.is_none() || sent != session.as_deref() {
                web.refusals.cross_site.fetch_add(1, Ordering::Relaxed);
                web.log_refused(from, &format!("{method} {path}"), "cross-site write: no or a wrong CSRF token");
                return error(StatusCode::FORBIDDEN, "refused as a cross-site write: no or a wrong CSRF token");
            }
        }
    }
    let mut response = next.run(req).await;
    let h = response.headers_mut();
    // Nothing of the page may be framed by another site, nor guess types.
    h.insert("x-frame-options", axum::http::HeaderValue::from_static("DENY"));
    h.insert("x-content-type-options", axum::http::HeaderValue::from_static("nosniff"));
    h.insert("referrer-policy", axum::http::HeaderValue::from_static("same-origin"));
    response
}
