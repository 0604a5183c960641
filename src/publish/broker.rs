//! The embedded MQTT broker (`broker = "embedded"`): rumqttd inside the
//! daemon, for the demo and for a board with no Mosquitto. It listens on
//! `mqtt.listen` without TLS; with `mqtt.users_file` it accepts only those
//! users (and the daemon itself, under a name and password made at random
//! for this run), without it anyone who reaches the address, which the
//! configuration therefore allows only on loopback. It keeps retained
//! messages, QoS 1, last wills and persistent sessions in memory, and
//! accepts packets as large as the client sends ([`MAX_PACKET_SIZE`]).
//! Nothing survives the process.
//!
//! rumqttd binds its listener on a thread of its own and only logs a
//! failure, and cannot report the port it got for port 0. So we bind the
//! address first ourselves, to find the port and to tell a person clearly
//! that the address is taken, release it, start rumqttd on that exact
//! address, and wait until it answers an MQTT CONNECT there. rumqttd has no
//! way to stop: the broker runs until the process ends, whatever happens to
//! the [`EmbeddedBroker`].
//!
//! rumqttd logs every connection at info level, and a client leaving as an
//! error; [`quiet_broker_logs`] adds the directive that silences it in the
//! daemon's log filter (this module logs what matters about the broker).

use std::net::SocketAddr;

#[cfg(feature = "embedded-broker")]
use crate::publish::mqtt::MAX_PACKET_SIZE;

/// The most bytes the broker keeps as retained messages, topics included.
/// The daemon's own are a state, a discovery message and a snapshot per
/// label: mostly the snapshot, one JPEG frame (tens of kB at 640×480, a few
/// hundred at 1080p, estimates), so 32 MiB holds a hundred labels' at 1080p;
/// and it is as much as someone with a login can make a Pi Zero 2 W
/// (512 MB) hold. A retained message beyond it is delivered but not kept,
/// and logged.
#[cfg(feature = "embedded-broker")]
pub const RETAINED_BYTES_MAX: usize = 32 * 1024 * 1024;

/// How long rumqttd may take to listen and answer; it takes milliseconds.
#[cfg(feature = "embedded-broker")]
const START_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The embedded broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error(
        "cannot start the embedded MQTT broker: {listen} is in use — is Mosquitto already running? \
         set mqtt.listen or use broker = \"mqtt://...\""
    )]
    InUse { listen: SocketAddr },
    #[error(
        "cannot start the embedded MQTT broker on {listen}: {source}; set mqtt.listen to an address of \
         this machine (a port below 1024 needs root), or use broker = \"mqtt://...\""
    )]
    Listen {
        listen: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the embedded MQTT broker did not start on {listen}: {problem}")]
    Start { listen: SocketAddr, problem: String },
    #[error(
        "broker = \"embedded\" needs the embedded MQTT broker, but this edgeclip was built without it \
         (cargo feature 'embedded-broker'); use broker = \"mqtt://HOST:PORT\" with a broker such as Mosquitto"
    )]
    NotBuilt,
}

/// The running broker.
#[derive(Debug)]
pub struct EmbeddedBroker {
    local_addr: SocketAddr,
}

impl EmbeddedBroker {
    /// Where it listens (the port it got, if `listen` asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

/// The log filter `filter` with rumqttd's own messages off, unless `filter`
/// says something about rumqttd itself. Off, not warnings: rumqttd logs an
/// ordinary client disconnect as an ERROR ("router-drop"), which would send
/// someone reading the journal looking for a problem that is not there.
pub fn quiet_broker_logs(filter: &str) -> String {
    // Except retained messages it does not keep (`RETAINED_BYTES_MAX`),
    // which rumqttd logs at most every 10 s.
    const QUIET: &str = "rumqttd=off,rumqttd::retained=warn";
    if filter.contains("rumqttd") {
        filter.to_string()
    } else if filter.trim().is_empty() {
        QUIET.to_string()
    } else {
        format!("{filter},{QUIET}")
    }
}

/// A user of the broker: name and password.
pub type Login = (String, String);

/// Starts the broker on `listen` and returns once it answers there. With
/// `users`, only they may connect; `probe` is one of them, which this
/// function logs in as to see that the broker answers.
#[cfg(feature = "embedded-broker")]
pub fn start_embedded_broker(
    listen: SocketAddr,
    users: Option<&[Login]>,
    probe: Option<&Login>,
) -> Result<EmbeddedBroker, BrokerError> {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    let local_addr = {
        let probe = std::net::TcpListener::bind(listen).map_err(|source| match source.kind() {
            std::io::ErrorKind::AddrInUse => BrokerError::InUse { listen },
            _ => BrokerError::Listen { listen, source },
        })?;
        probe.local_addr().map_err(|source| BrokerError::Listen { listen, source })?
    };

    let connections = rumqttd::ConnectionSettings {
        // From accepting a TCP connection to its CONNECT.
        connection_timeout_ms: 10_000,
        max_payload_size: MAX_PACKET_SIZE,
        // QoS 1 messages on their way to one subscriber before it acknowledges
        // (rumqttd's own default).
        max_inflight_count: 100,
        auth: users.map(|users| users.iter().cloned().collect()),
        external_auth: None,
        // Subscriptions to any filter, created as they come.
        dynamic_filters: true,
    };
    let server = rumqttd::ServerSettings {
        name: "edgeclip-embedded".into(),
        listen: local_addr,
        tls: None,
        // rumqttd pauses this long after accepting a connection (its default).
        next_connection_delay_ms: 1,
        connections,
    };
    let config = rumqttd::Config {
        id: 0,
        router: rumqttd::RouterConfig {
            // The daemon, Home Assistant, a few people with mosquitto_sub.
            max_connections: 100,
            max_retained_bytes: Some(RETAINED_BYTES_MAX),
            // Packets written to one connection per round of the router
            // (rumqttd's default).
            max_outgoing_packet_count: 200,
            // rumqttd keeps recent messages per subscribed filter in memory, in
            // segments: 4 of 1 MiB, plus the message that overflowed the last
            // one. A subscriber that falls further behind skips ahead; for a
            // few subscribers of a camera's events that is far more than
            // needed, and a small board keeps its memory.
            max_segment_size: 1024 * 1024,
            max_segment_count: 4,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
        },
        v4: Some(HashMap::from([("edgeclip".to_string(), server)])),
        ..Default::default()
    };

    let ended: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
    {
        let ended = Arc::clone(&ended);
        std::thread::Builder::new()
            .name("mqtt-broker".into())
            .spawn(move || {
                let mut broker = rumqttd::Broker::new(config);
                // Returns only when its listener thread has ended: binding failed.
                let why = match broker.start() {
                    Ok(()) => "its listener stopped (rumqttd logged why)".to_string(),
                    Err(e) => e.to_string(),
                };
                *ended.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
            })
            .map_err(|e| BrokerError::Start { listen: local_addr, problem: format!("cannot start its thread: {e}") })?;
    }

    let deadline = std::time::Instant::now() + START_TIMEOUT;
    let reachable = reachable(local_addr);
    loop {
        if let Some(why) = ended.lock().unwrap_or_else(|e| e.into_inner()).clone() {
            return Err(if std::net::TcpListener::bind(local_addr).is_err() {
                // Someone took the address between our probe and rumqttd.
                BrokerError::InUse { listen }
            } else {
                BrokerError::Start { listen: local_addr, problem: why }
            });
        }
        if answers(reachable, probe) {
            // A broker answered; make sure it is ours and not someone who took
            // the address in the meantime (rumqttd's thread ends at once then).
            std::thread::sleep(std::time::Duration::from_millis(20));
            if ended.lock().unwrap_or_else(|e| e.into_inner()).is_none() {
                tracing::info!("embedded MQTT broker listening on {local_addr}");
                return Ok(EmbeddedBroker { local_addr });
            }
            continue;
        }
        if std::time::Instant::now() >= deadline {
            return Err(BrokerError::Start {
                listen: local_addr,
                problem: format!("no MQTT answer within {} s", START_TIMEOUT.as_secs()),
            });
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[cfg(not(feature = "embedded-broker"))]
pub fn start_embedded_broker(
    _listen: SocketAddr,
    _users: Option<&[Login]>,
    _probe: Option<&Login>,
) -> Result<EmbeddedBroker, BrokerError> {
    Err(BrokerError::NotBuilt)
}

/// The address to reach a listener on: loopback for an unspecified one.
#[cfg(feature = "embedded-broker")]
fn reachable(addr: SocketAddr) -> SocketAddr {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port()),
        IpAddr::V6(ip) if ip.is_unspecified() => SocketAddr::new(Ipv6Addr::LOCALHOST.into(), addr.port()),
        _ => addr,
    }
}

/// Whether an MQTT 3.1.1 broker accepts a CONNECT at `addr` (then
/// disconnects cleanly), logging in as `login` if given.
#[cfg(feature = "embedded-broker")]
fn answers(addr: SocketAddr, login: Option<&Login>) -> bool {
    use std::io::{Read, Write};
    let timeout = std::time::Duration::from_secs(2);
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(&addr, timeout) else { return false };
    let _ = stream.set_read_timeout(Some(timeout));
    let accepted = stream.write_all(&connect_packet(b"edgeclip-probe", login)).is_ok() && {
        let mut connack = [0u8; 4];
        stream.read_exact(&mut connack).is_ok() && connack[0] == 0x20 && connack[3] == 0
    };
    // DISCONNECT.
    let _ = stream.write_all(&[0xe0, 0]);
    accepted
}

/// An MQTT 3.1.1 CONNECT: protocol "MQTT" level 4, clean session, a
/// keep-alive of 10 s (rumqttd drops a client that asks for none, 0), the
/// client id, and the user name and password if given.
#[cfg(feature = "embedded-broker")]
fn connect_packet(id: &[u8], login: Option<&Login>) -> Vec<u8> {
    let string = |out: &mut Vec<u8>, s: &[u8]| {
        out.extend_from_slice(&(s.len() as u16).to_be_bytes());
        out.extend_from_slice(s);
    };
    let flags = if login.is_some() { 0xc2 } else { 0x02 };
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 4, flags, 0, 10];
    string(&mut body, id);
    if let Some((user, password)) = login {
        string(&mut body, user.as_bytes());
        string(&mut body, password.as_bytes());
    }
    let mut packet = vec![0x10];
    // The remaining length, 7 bits a byte, the low ones first.
    let mut len = body.len();
    loop {
        let byte = (len % 128) as u8;
        len /= 128;
        packet.push(if len > 0 { byte | 0x80 } else { byte });
        if len == 0 {
            break;
        }
    }
    packet.extend_from_slice(&body);
    packet
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "embedded-broker")]
    #[test]
    fn a_connect_packet_has_its_remaining_length_in_7_bit_groups() {
        assert_eq!(connect_packet(b"p", None), [0x10, 13, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 10, 0, 1, b'p']);
        let login = ("u".to_string(), "x".repeat(200));
        let packet = connect_packet(b"p", Some(&login));
        // 10 + 3 + 3 + 202 = 218 bytes after the header: 0xda 0x01.
        assert_eq!(&packet[..3], [0x10, 0xda, 0x01]);
        assert_eq!(packet[3 + 7], 0xc2);
        assert_eq!(packet.len(), 3 + 218);
    }

    #[cfg(not(feature = "embedded-broker"))]
    #[test]
    fn without_the_feature_the_embedded_broker_is_a_clear_error() {
        let e = start_embedded_broker("127.0.0.1:0".parse().unwrap(), None, None).unwrap_err();
        assert!(
            e.to_string().starts_with(
                "broker = \"embedded\" needs the embedded MQTT broker, but this edgeclip was built without it"
            ),
            "{e}"
        );
    }

    #[test]
    fn quiet_logs() {
        assert_eq!(quiet_broker_logs("info"), "info,rumqttd=off,rumqttd::retained=warn");
        assert_eq!(quiet_broker_logs(""), "rumqttd=off,rumqttd::retained=warn");
        assert_eq!(quiet_broker_logs("info,rumqttd=debug"), "info,rumqttd=debug");
    }
}
