//! `[logging]`: how much the daemon logs, and whether it prints events.

use serde::Deserialize;
use toml::Spanned;

use super::{key, ConfigError, Ctx, Key};

const TABLE: &str = "logging";

/// A tracing filter: error, warn, info, debug or trace, or one such as
/// "info,edgeclip=debug". `info` logs what a person at the board wants to
/// know (start, connections, camera trouble) and nothing per frame.
const LEVEL: Key<&str> = Key { name: "level", default: "info" };
/// Also print each event as one line on stdout (the demo does).
const PRINT_EVENTS: Key<bool> = Key { name: "print_events", default: false };

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLogging {
    level: Option<Spanned<String>>,
    print_events: Option<bool>,
}

/// The `[logging]` table, checked.
pub(super) struct Logging {
    pub filter: String,
    pub print_events: bool,
}

pub(super) fn parse(cx: &Ctx<'_>, raw: Option<&RawLogging>) -> Result<Logging, ConfigError> {
    let none = RawLogging::default();
    let raw = raw.unwrap_or(&none);
    let filter = match &raw.level {
        Some(level) => {
            tracing_subscriber::EnvFilter::try_new(level.get_ref()).map_err(|e| {
                cx.invalid(&key(TABLE, LEVEL.name), level, format!("'{}' is not a log filter ({e}); accepted: error, warn, info, debug, trace, or e.g. 'info,edgeclip=debug'", level.get_ref()))
            })?;
            level.get_ref().clone()
        }
        None => LEVEL.default.to_string(),
    };
    Ok(Logging { filter, print_events: raw.print_events.unwrap_or(PRINT_EVENTS.default) })
}
