//! Who may read and who may change, decided for every request before it
//! reaches the API:
//!
//! - **Reading** needs a session when `web.password_hash` is set, and is
//!   open otherwise, which the configuration allows only on a loopback
//!   address. A request that came through a proxy (it carries
//!   `X-Forwarded-For` or `Forwarded`) is from beyond loopback whatever
//!   address it came from, so without a password it is refused.
//! - **Changing** always needs a session (so a password), `web.changes`,
//!   and a write that cannot come from another site: a JSON body (a form
//!   cannot send one without the browser asking first), the session's
//!   CSRF token in a header (another page cannot read it), and no `Origin`
//!   or `Sec-Fetch-Site` header naming another origin.
//! - **Logging in** is limited to [`FAILED_LOGINS`] failures a minute, for
//!   everyone together; each failure is logged with the address (never
//!   the password tried).
//! - **Every request** counts against a budget of [`REQUESTS_PER_SECOND`],
//!   so that no client can keep a small board's cores busy.
//!
//! A session is a random 256-bit token in an `HttpOnly`, `SameSite=Strict`
//! cookie with no `Path`, so that it belongs to the API's folder wherever a
//! reverse proxy mounts the page.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, Method};

/// The session cookie's name.
pub const COOKIE: &str = "edgeclip_session";
/// The header that carries a session's CSRF token on a change.
pub const CSRF_HEADER: &str = "x-edgeclip-csrf";

/// A session lasts this long after its login: a working day.
const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// The most sessions at once; a new login beyond them ends the oldest. A
/// board has a few people looking at it, not hundreds.
const MAX_SESSIONS: usize = 32;
/// Failed logins allowed per minute, everyone together: a person mistyping
/// gets a few tries, a guesser gets 7 200 a day (and each costs an Argon2
/// hash, about 30 ms on a desktop core and half a second on a Zero 2 W).
pub const FAILED_LOGINS: u32 = 5;
const FAILED_LOGINS_WINDOW: Duration = Duration::from_secs(60);
/// Requests per second, everyone together, with bursts of twice as many: a
/// page open in three tabs makes about 5 a second (the live stream counts
/// once); a client beyond it is answered 429 at no cost.
pub const REQUESTS_PER_SECOND: f64 = 50.0;

/// A logged-in browser.
struct Session {
    csrf: String,
    expires: Instant,
}

/// Sessions, the login limit and the request budget.
pub struct Guard {
    sessions: Mutex<HashMap<String, Session>>,
    failures: Mutex<(Instant, u32)>,
    budget: Mutex<(Instant, f64)>,
}

impl Default for Guard {
    fn default() -> Self {
        Guard {
            sessions: Mutex::new(HashMap::new()),
            failures: Mutex::new((Instant::now(), 0)),
            budget: Mutex::new((Instant::now(), 2.0 * REQUESTS_PER_SECOND)),
        }
    }
}

impl Guard {
    /// Spends one request of the budget; `false` when it is spent.
    pub fn take_request(&self) -> bool {
        let mut b = self.budget.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let refill = now.duration_since(b.0).as_secs_f64() * REQUESTS_PER_SECOND;
        *b = (now, (b.1 + refill).min(2.0 * REQUESTS_PER_SECOND));
        if b.1 >= 1.0 {
            b.1 -= 1.0;
            true
        } else {
            false
        }
    }

    /// Seconds until a login may be tried again, when the failures of the
    /// last minute are used up.
    pub fn login_blocked(&self) -> Option<u64> {
        let f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let left = FAILED_LOGINS_WINDOW.saturating_sub(f.0.elapsed());
        (f.1 >= FAILED_LOGINS && !left.is_zero()).then(|| left.as_secs().max(1))
    }

    /// Counts a failed login.
    pub fn login_failed(&self) {
        let mut f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if f.0.elapsed() >= FAILED_LOGINS_WINDOW {
            *f = (Instant::now(), 0);
        }
        f.1 += 1;
    }

    /// A new session: its token (for the cookie) and its CSRF token.
    pub fn login(&self) -> Result<(String, String), String> {
        let (token, csrf) = (random_token()?, random_token()?);
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        sessions.retain(|_, s| s.expires > now);
        if sessions.len() >= MAX_SESSIONS {
            let oldest = sessions.iter().min_by_key(|(_, s)| s.expires).map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                sessions.remove(&k);
            }
        }
        sessions.insert(token.clone(), Session { csrf: csrf.clone(), expires: now + SESSION_LIFETIME });
        Ok((token, csrf))
    }

    pub fn logout(&self, token: &str) {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner()).remove(token);
    }

    /// The CSRF token of the live session `token`.
    pub fn session(&self, token: &str) -> Option<String> {
        let sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        sessions.get(token).filter(|s| s.expires > Instant::now()).map(|s| s.csrf.clone())
    }
}

/// 32 random bytes from the kernel, as hex.
fn random_token() -> Result<String, String> {
    let mut buf = [0u8; 32];
    crate::util::file::random_bytes(&mut buf).map_err(|e| format!("cannot read /dev/urandom for a session: {e}"))?;
    Ok(crate::model::bundle::hex(&buf))
}

/// The session token in the request's cookies.
pub fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

/// Whether the request came through a proxy.
pub fn forwarded(headers: &HeaderMap) -> bool {
    headers.contains_key("x-forwarded-for") || headers.contains_key("forwarded")
}

/// The cookie that sets a session (`Secure` when the proxy in front says
/// the page is on HTTPS).
pub fn set_cookie(token: &str, headers: &HeaderMap) -> String {
    let secure = headers.get("x-forwarded-proto").is_some_and(|p| p.as_bytes().eq_ignore_ascii_case(b"https"));
    format!(
        "{COOKIE}={token}; HttpOnly; SameSite=Strict; Max-Age={}{}",
        SESSION_LIFETIME.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// Why a write is not from this page, or `None` when nothing says it is
/// from elsewhere. The CSRF token is checked besides.
pub fn cross_site(method: &Method, headers: &HeaderMap) -> Option<String> {
    if method == Method::GET || method == Method::HEAD {
        return None;
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = header("sec-fetch-site") {
        if site != "same-origin" && site != "none" {
            return Some(format!("the browser says it comes from a {site} page"));
        }
    }
    if let Some(origin) = header("origin") {
        // The host the browser addressed: the proxy's, when there is one.
        let host = header("x-forwarded-host").or_else(|| header("host")).unwrap_or("");
        let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
        if origin_host != host {
            return Some(format!("it comes from the page of another origin ({origin})"));
        }
    }
    let json = header("content-type").is_some_and(|t| t.split(';').next().unwrap_or("").trim() == "application/json");
    if !json {
        return Some("it is not a JSON request (a form or a plain request from another page)".into());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn writes_from_other_origins_are_told_apart() {
        let post = Method::POST;
        let json = ("content-type", "application/json");
        assert_eq!(cross_site(&post, &headers(&[json, ("host", "pi:8077"), ("origin", "http://pi:8077")])), None);
        assert!(cross_site(&post, &headers(&[json, ("host", "pi:8077"), ("origin", "http://pi:9000")])).is_some());
        assert!(cross_site(&post, &headers(&[json, ("sec-fetch-site", "same-site")])).is_some());
        assert!(cross_site(&post, &headers(&[("content-type", "text/plain")])).is_some());
        assert!(cross_site(&post, &headers(&[("content-type", "application/x-www-form-urlencoded")])).is_some());
        // Behind a proxy, the host the browser saw.
        let proxied = [
            json,
            ("host", "127.0.0.1:8077"),
            ("x-forwarded-host", "home.example"),
            ("origin", "https://home.example"),
        ];
        assert_eq!(cross_site(&post, &headers(&proxied)), None);
        assert_eq!(cross_site(&Method::GET, &headers(&[("origin", "http://evil")])), None);
    }

    #[test]
    fn sessions_and_the_login_limit() {
        let g = Guard::default();
        let (token, csrf) = g.login().unwrap();
        assert_eq!(token.len(), 64);
        assert_eq!(g.session(&token), Some(csrf));
        assert_eq!(g.session("0"), None);
        g.logout(&token);
        assert_eq!(g.session(&token), None);
        for _ in 0..FAILED_LOGINS {
            assert_eq!(g.login_blocked(), None);
            g.login_failed();
        }
        assert!(g.login_blocked().is_some_and(|s| (1..=60).contains(&s)));
        let cookie = headers(&[("cookie", "a=1; edgeclip_session=abc; b=2")]);
        assert_eq!(session_cookie(&cookie).as_deref(), Some("abc"));
    }
}
