//! `[web]`: the page the daemon serves (src/web/): whether it is on, where
//! it listens, the password that guards it, and whether it may change
//! anything.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::{key, ConfigError, Ctx, Key, Number};

const TABLE: &str = "web";

/// Serve the page. Off by default: a board that nobody looks at has no port
/// open for it.
const ENABLED: Key<bool> = Key { name: "enabled", default: false };
/// Where the page listens. Loopback by default: reach it through an SSH
/// tunnel or a reverse proxy. Any other address needs `password_hash`.
const LISTEN: Key<&str> = Key { name: "listen", default: "127.0.0.1:8077" };
/// Allow changes from the page (labels, thresholds, example images,
/// switching a camera on and off), after logging in with the password. Off,
/// the page only shows; MQTT commands are governed by `mqtt.commands`.
const CHANGES: Key<bool> = Key { name: "changes", default: true };
/// Minutes of every inferred frame's scores kept in memory per camera zone,
/// for the scores chart and for calibrating on what the camera saw. An hour
/// at 5 inferred frames a second and 16 labels is about 1.4 MB a zone.
const SCORE_HISTORY_MIN: Number<f64> = Number { name: "score_history_min", default: 60.0, range: 1.0..=1440.0 };
/// Seconds between the frames the live page shows, while a page is open (no
/// frame is encoded for it otherwise). One a second costs a board a JPEG
/// encode a second; the scores come with every inferred frame regardless.
const FRAME_INTERVAL_S: Number<f64> = Number { name: "frame_interval_s", default: 1.0, range: 0.2..=60.0 };

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWeb {
    enabled: Option<bool>,
    listen: Option<Spanned<String>>,
    password_hash: Option<Spanned<String>>,
    changes: Option<bool>,
    score_history_min: Option<Spanned<f64>>,
    frame_interval_s: Option<Spanned<f64>>,
}

/// The `[web]` table, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct WebConfig {
    pub enabled: bool,
    pub listen: SocketAddr,
    /// An Argon2 hash in the PHC format (`edgeclip hash-password` makes
    /// one); `None`: no password, which only a loopback address may have,
    /// and then the page only shows.
    pub password_hash: Option<String>,
    pub changes: bool,
    pub score_history: Duration,
    pub frame_interval: Duration,
}

impl Default for WebConfig {
    fn default() -> WebConfig {
        WebConfig {
            enabled: ENABLED.default,
            listen: LISTEN.default.parse().expect("the default address parses"),
            password_hash: None,
            changes: CHANGES.default,
            score_history: Duration::from_secs_f64(SCORE_HISTORY_MIN.default * 60.0),
            frame_interval: Duration::from_secs_f64(FRAME_INTERVAL_S.default),
        }
    }
}

pub(super) fn parse(cx: &Ctx<'_>, raw: Option<&RawWeb>) -> Result<WebConfig, ConfigError> {
    let none = RawWeb::default();
    let raw = raw.unwrap_or(&none);
    let listen = LISTEN.address(cx, TABLE, raw.listen.as_ref(), "127.0.0.1:8077")?;
    let password_hash = match &raw.password_hash {
        Some(h) => {
            crate::web::password::check_hash(h.get_ref()).map_err(|problem| {
                cx.invalid(
                    &key(TABLE, "password_hash"),
                    h,
                    format!("{problem}; make one with `edgeclip hash-password`"),
                )
            })?;
            Some(h.get_ref().clone())
        }
        None => None,
    };
    let enabled = raw.enabled.unwrap_or(ENABLED.default);
    if enabled && password_hash.is_none() && !listen.ip().is_loopback() {
        let at = raw.listen.as_ref().expect("only a configured address is not loopback");
        return Err(cx.invalid(
            &key(TABLE, LISTEN.name),
            at,
            format!(
                "{listen} lets other machines open the page, which then needs a password: \
                 set web.password_hash (`edgeclip hash-password` makes one), or listen on 127.0.0.1"
            ),
        ));
    }
    let minutes = SCORE_HISTORY_MIN.read(cx, TABLE, raw.score_history_min.as_ref())?;
    let frame_s = FRAME_INTERVAL_S.read(cx, TABLE, raw.frame_interval_s.as_ref())?;
    Ok(WebConfig {
        enabled,
        listen,
        password_hash,
        changes: raw.changes.unwrap_or(CHANGES.default),
        score_history: Duration::from_secs_f64(minutes * 60.0),
        frame_interval: Duration::from_secs_f64(frame_s),
    })
}
