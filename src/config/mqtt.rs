//! `[mqtt]` and `[homeassistant]`: where events go, how the daemon logs in,
//! and what its topics look like.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::{is_name, key, passwords, ConfigError, Ctx, Key, Number};
use crate::util::file::read_small_file;

const TABLE: &str = "mqtt";

/// `"mqtt://HOST[:PORT]"`, `"mqtts://HOST[:PORT]"` (TLS), or `"embedded"`: a
/// broker inside edgeclip, for a board without one. By default the broker
/// on the board itself, where one is usually installed next to Home
/// Assistant or Mosquitto.
const BROKER: Key<&str> = Key { name: "broker", default: "mqtt://localhost:1883" };
/// Where the embedded broker listens (`broker = "embedded"` only): this
/// board alone, until someone opens it on purpose.
const LISTEN: Key<&str> = Key { name: "listen", default: "127.0.0.1:1883" };
/// Listen to the command topics (`enabled/set`, `labels/set`). Whoever may
/// publish to them on the broker can switch cameras off and replace their
/// labels, so they are off until someone turns them on (and locks the
/// broker down: the README's Security section).
const COMMANDS: Key<bool> = Key { name: "commands", default: false };
/// First level of every topic.
const TOPIC_PREFIX: Key<&str> = Key { name: "topic_prefix", default: "edgeclip" };
/// QoS of events and states: 1 (at least once) survives a broker restart;
/// MQTT has the levels 0 to 2.
const QOS: Number<i64> = Number { name: "qos", default: 1, range: 0..=2 };
/// Seconds between the client's pings. The broker drops a client silent for
/// 1.5 of them and publishes its "offline" will, so 30 s shows a dead board
/// within a minute; under 5 s pings crowd a slow link, over an hour a dead
/// board goes unnoticed for hours.
const KEEPALIVE_S: Number<i64> = Number { name: "keepalive_s", default: 30, range: 5..=3600 };
/// Events kept while the broker is unreachable, delivered in order once it
/// is back; beyond this many the oldest are dropped, counted and logged.
/// A queue beyond 100 000 holds more events than a day of a busy camera;
/// more would only eat a small board's memory.
const OFFLINE_QUEUE: Number<i64> = Number { name: "offline_queue", default: 1000, range: 1..=100_000 };
/// Seconds between messages on the stats topic: every minute by default, at
/// most every second and at least daily.
const STATS_INTERVAL_S: Number<i64> = Number { name: "stats_interval_s", default: 60, range: 1..=86_400 };
/// Seconds between messages on a camera's scores topic, at most (0: none).
/// Once a second shows a person what the model sees as it changes, costs a
/// few hundred bytes a second per camera, and is never faster than the
/// camera is inferred; an hour is the slowest rate that still shows anything.
const SCORES_INTERVAL_S: Number<f64> = Number { name: "scores_interval_s", default: 1.0, range: 0.0..=3600.0 };
/// The longest client id: MQTT's strings are at most 65 535 bytes.
const MAX_CLIENT_ID_LEN: usize = 65_535;
/// The broker ports when the URL names none: MQTT's registered ports.
const MQTT_PORT: u16 = 1883;
const MQTTS_PORT: u16 = 8883;

const HOME_ASSISTANT_TABLE: &str = "homeassistant";

/// Publish MQTT discovery, so that Home Assistant creates one binary sensor
/// per label on its own.
const DISCOVERY_ENABLED: Key<bool> = Key { name: "enabled", default: true };
/// The topic prefix Home Assistant listens on for discovery (its default).
const DISCOVERY_PREFIX: Key<&str> = Key { name: "discovery_prefix", default: "homeassistant" };
/// Also a sensor per label with its live score (from the scores topic).
/// Off: a label's score changes with every inferred frame, and Home
/// Assistant records every change in its database.
const SCORE_SENSORS: Key<bool> = Key { name: "score_sensors", default: false };

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMqtt {
    broker: Option<Spanned<String>>,
    listen: Option<Spanned<String>>,
    /// Default: "edgeclip-" and the node name.
    client_id: Option<Spanned<String>>,
    username: Option<Spanned<String>>,
    /// The password is never in the file: it is read from a file (its first
    /// line) or from an environment variable, whichever is set.
    password_file: Option<Spanned<String>>,
    password_env: Option<Spanned<String>>,
    /// TLS (mqtts://): the CA that signed the broker's certificate, and a
    /// client certificate and key if the broker asks for one (PEM files).
    ca_file: Option<Spanned<String>>,
    client_cert: Option<Spanned<String>>,
    client_key: Option<Spanned<String>>,
    /// The embedded broker's users: a file of `name:password` lines.
    users_file: Option<Spanned<String>>,
    commands: Option<bool>,
    topic_prefix: Option<Spanned<String>>,
    qos: Option<Spanned<i64>>,
    keepalive_s: Option<Spanned<i64>>,
    offline_queue: Option<Spanned<i64>>,
    stats_interval_s: Option<Spanned<i64>>,
    scores_interval_s: Option<Spanned<f64>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHomeAssistant {
    enabled: Option<bool>,
    discovery_prefix: Option<Spanned<String>>,
    score_sensors: Option<Spanned<bool>>,
}

/// Where events go.
#[derive(Debug, Clone, PartialEq)]
pub enum Broker {
    /// A broker inside the daemon, listening here, for these users (name,
    /// password); `None`: anyone on `listen`, which must then be loopback.
    Embedded { listen: SocketAddr, users: Option<Vec<(String, String)>> },
    /// An external broker.
    External { host: String, port: u16, tls: bool },
}

#[derive(Debug, Clone, PartialEq)]
pub struct MqttConfig {
    pub broker: Broker,
    pub client_id: String,
    pub username: Option<String>,
    /// Read from `password_file` or `password_env` when the file is parsed.
    pub password: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    pub topic_prefix: String,
    /// Listen to the command topics.
    pub commands: bool,
    pub qos: u8,
    pub keepalive: Duration,
    pub offline_queue: usize,
    pub stats_interval: Duration,
    /// `None`: no scores topic.
    pub scores_interval: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HomeAssistantConfig {
    pub enabled: bool,
    pub discovery_prefix: String,
    /// Also a sensor per label with its score (needs the scores topic).
    pub score_sensors: bool,
}

pub(super) fn parse(cx: &Ctx<'_>, raw: Option<&RawMqtt>, node: &str) -> Result<MqttConfig, ConfigError> {
    let none = RawMqtt::default();
    let raw = raw.unwrap_or(&none);
    let broker = match &raw.broker {
        Some(b) if b.get_ref() == "embedded" => {
            let listen = LISTEN.address(cx, TABLE, raw.listen.as_ref(), "0.0.0.0:1883")?;
            let users = match &raw.users_file {
                Some(f) => Some(read_users(cx, f)?),
                None => None,
            };
            if users.is_none() && !listen.ip().is_loopback() {
                let at = raw.listen.as_ref().expect("only a configured address is not loopback");
                return Err(cx.invalid(
                    &key(TABLE, LISTEN.name),
                    at,
                    format!(
                        "{listen} lets other machines use the embedded broker, which then needs passwords: \
                         set mqtt.users_file to a file of 'name:password' lines, or listen on 127.0.0.1"
                    ),
                ));
            }
            Broker::Embedded { listen, users }
        }
        Some(b) => parse_broker_url(b.get_ref()).map_err(|problem| cx.invalid(&key(TABLE, BROKER.name), b, problem))?,
        None => parse_broker_url(BROKER.default).expect("the default broker parses"),
    };
    if let (Broker::External { .. }, Some(f)) = (&broker, &raw.users_file) {
        return Err(cx.invalid(
            "mqtt.users_file",
            f,
            "is for broker = \"embedded\"; an external broker keeps its own users",
        ));
    }
    let client_id = match &raw.client_id {
        Some(c) if !c.get_ref().is_empty() && c.get_ref().len() <= MAX_CLIENT_ID_LEN => c.get_ref().clone(),
        Some(c) => return Err(cx.invalid("mqtt.client_id", c, "is empty; leave the key out for 'edgeclip-<node>'")),
        None => format!("edgeclip-{node}"),
    };
    let password = passwords::password(cx, "mqtt", raw.password_file.as_ref(), raw.password_env.as_ref())?;
    let username = raw.username.as_ref().map(|u| u.get_ref().clone());
    if password.is_some() && username.is_none() {
        let set = raw.password_file.as_ref().or(raw.password_env.as_ref()).expect("one is set");
        return Err(cx.invalid(
            "mqtt.username",
            set,
            "is missing: a password is set, but MQTT sends one only with a user name",
        ));
    }
    let file = |key: &str, v: Option<&Spanned<String>>| -> Result<Option<PathBuf>, ConfigError> {
        let Some(v) = v else { return Ok(None) };
        let p = cx.path_value(key, v)?;
        if !p.is_file() {
            return Err(cx.invalid(key, v, format!("'{}' is not a readable file", p.display())));
        }
        Ok(Some(p))
    };
    let ca_file = file("mqtt.ca_file", raw.ca_file.as_ref())?;
    let client_cert = file("mqtt.client_cert", raw.client_cert.as_ref())?;
    let client_key = file("mqtt.client_key", raw.client_key.as_ref())?;
    if client_cert.is_some() != client_key.is_some() {
        let v = raw.client_cert.as_ref().or(raw.client_key.as_ref()).expect("one is set");
        return Err(cx.invalid("mqtt.client_cert", v, "and 'mqtt.client_key' go together; set both or neither"));
    }
    let tls = matches!(broker, Broker::External { tls: true, .. });
    if !tls {
        if let Some(v) = raw.ca_file.as_ref().or(raw.client_cert.as_ref()) {
            return Err(cx.invalid("mqtt.ca_file", v, "TLS files are set but the broker is not 'mqtts://...'"));
        }
    }
    let topic_prefix = match &raw.topic_prefix {
        Some(p) => topic_levels(cx, &key(TABLE, TOPIC_PREFIX.name), p)?,
        None => TOPIC_PREFIX.default.to_string(),
    };
    Ok(MqttConfig {
        broker,
        client_id,
        username,
        password,
        ca_file,
        client_cert,
        client_key,
        topic_prefix,
        commands: raw.commands.unwrap_or(COMMANDS.default),
        qos: QOS.read(cx, TABLE, raw.qos.as_ref())? as u8,
        keepalive: Duration::from_secs(KEEPALIVE_S.read(cx, TABLE, raw.keepalive_s.as_ref())? as u64),
        offline_queue: OFFLINE_QUEUE.read(cx, TABLE, raw.offline_queue.as_ref())? as usize,
        stats_interval: Duration::from_secs(STATS_INTERVAL_S.read(cx, TABLE, raw.stats_interval_s.as_ref())? as u64),
        scores_interval: Some(SCORES_INTERVAL_S.read(cx, TABLE, raw.scores_interval_s.as_ref())?)
            .filter(|s| *s > 0.0)
            .map(Duration::from_secs_f64),
    })
}

/// `[homeassistant]`; `mqtt` is the parsed `[mqtt]`, whose scores topic the
/// score sensors read.
pub(super) fn parse_home_assistant(
    cx: &Ctx<'_>,
    raw: Option<&RawHomeAssistant>,
    mqtt: &MqttConfig,
) -> Result<HomeAssistantConfig, ConfigError> {
    let none = RawHomeAssistant::default();
    let raw = raw.unwrap_or(&none);
    let discovery_prefix = match &raw.discovery_prefix {
        Some(p) => topic_levels(cx, &key(HOME_ASSISTANT_TABLE, DISCOVERY_PREFIX.name), p)?,
        None => DISCOVERY_PREFIX.default.to_string(),
    };
    Ok(HomeAssistantConfig {
        enabled: raw.enabled.unwrap_or(DISCOVERY_ENABLED.default),
        discovery_prefix,
        score_sensors: match &raw.score_sensors {
            Some(on) if *on.get_ref() && mqtt.scores_interval.is_none() => {
                return Err(cx.invalid(
                    &key(HOME_ASSISTANT_TABLE, SCORE_SENSORS.name),
                    on,
                    "the score sensors read the scores topic, which mqtt.scores_interval_s = 0 turns off; \
                     set mqtt.scores_interval_s above 0, or score_sensors = false",
                ))
            }
            Some(on) => *on.get_ref(),
            None => SCORE_SENSORS.default,
        },
    })
}

/// The embedded broker's users file: `name:password` a line, `#` comments.
fn read_users(cx: &Ctx<'_>, f: &Spanned<String>) -> Result<Vec<(String, String)>, ConfigError> {
    let file = cx.path_value("mqtt.users_file", f)?;
    let text = read_small_file(&file, passwords::MAX_SECRET_FILE_BYTES)
        .map_err(|e| cx.invalid("mqtt.users_file", f, format!("cannot read '{}': {e}", file.display())))?;
    passwords::warn_if_others_can_read(&file);
    let mut users = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.split_once(':') {
            Some((name, password)) if !name.trim().is_empty() && !password.is_empty() => {
                users.push((name.trim().to_string(), password.to_string()))
            }
            // The line is not shown: it may hold a password.
            _ => {
                return Err(cx.invalid(
                    "mqtt.users_file",
                    f,
                    format!("'{}' line {}: not 'name:password'", file.display(), i + 1),
                ))
            }
        }
    }
    if users.is_empty() {
        return Err(cx.invalid(
            "mqtt.users_file",
            f,
            format!("'{}' names no user ('name:password' lines)", file.display()),
        ));
    }
    Ok(users)
}

/// "mqtt://host[:port]" or "mqtts://host[:port]".
fn parse_broker_url(url: &str) -> Result<Broker, String> {
    const ACCEPTED: &str = "accepted: 'mqtt://HOST[:PORT]', 'mqtts://HOST[:PORT]' or 'embedded'";
    let (tls, rest) = if let Some(rest) = url.strip_prefix("mqtts://") {
        (true, rest)
    } else if let Some(rest) = url.strip_prefix("mqtt://") {
        (false, rest)
    } else {
        return Err(format!("'{url}' is not a broker; {ACCEPTED}"));
    };
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        // An IPv6 address is written in brackets: [::1]:1883.
        Some((host, port)) if !host.ends_with(':') => (
            host,
            port.parse::<u16>().map_err(|_| format!("port '{port}' in '{url}' is not a port number; {ACCEPTED}"))?,
        ),
        _ => (rest, if tls { MQTTS_PORT } else { MQTT_PORT }),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || host.contains(['/', '@', '?']) {
        return Err(format!("'{url}' has no usable host name; {ACCEPTED}"));
    }
    Ok(Broker::External { host: host.to_string(), port, tls })
}

/// Topic levels joined by '/', each a name (`homeassistant`, `home/edgeclip`).
fn topic_levels(cx: &Ctx<'_>, key: &str, value: &Spanned<String>) -> Result<String, ConfigError> {
    let s = value.get_ref();
    if !s.split('/').all(is_name) {
        return Err(cx.invalid(
            key,
            value,
            format!("'{s}' is not a topic prefix; accepted: names of letters, digits, '-' and '_' joined by '/'"),
        ));
    }
    Ok(s.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn external(host: &str, port: u16, tls: bool) -> Result<Broker, String> {
        Ok(Broker::External { host: host.into(), port, tls })
    }

    #[test]
    fn broker_urls() {
        assert_eq!(parse_broker_url("mqtt://localhost"), external("localhost", 1883, false));
        assert_eq!(parse_broker_url("mqtts://broker.lan:8884/"), external("broker.lan", 8884, true));
        assert_eq!(parse_broker_url("mqtts://[::1]"), external("::1", 8883, true));
        assert_eq!(parse_broker_url("mqtt://[fe80::1]:1884"), external("fe80::1", 1884, false));
        assert!(parse_broker_url("tcp://localhost").unwrap_err().starts_with("'tcp://localhost' is not a broker;"));
        assert!(parse_broker_url("mqtt://host:http").unwrap_err().starts_with("port 'http' in 'mqtt://host:http'"));
        assert!(parse_broker_url("mqtt://user@host").unwrap_err().contains("has no usable host name"));
    }
}
