//! systemd's service notifications (`sd_notify`), without libsystemd: a
//! datagram to the socket named by `$NOTIFY_SOCKET`. The unit is
//! `Type=notify`, so systemd counts the daemon as started once the model is
//! loaded and every camera runs (`READY=1`), shows its state in `systemctl
//! status` (`STATUS=...`), and with `WatchdogSec=` restarts it when the
//! main loop stops feeding the watchdog (`WATCHDOG=1`). The main loop feeds
//! it only while every camera's inference thread goes round its loop (see
//! [`STALLED_AFTER`](super::STALLED_AFTER)): a wedged camera is a fault systemd
//! sees, not a healthy face with a dead thread behind it.
//!
//! Outside systemd (no `$NOTIFY_SOCKET`) every call does nothing.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// The connection to systemd's notification socket, if there is one.
pub struct Notifier {
    socket: Option<(UnixDatagram, std::os::unix::net::SocketAddr)>,
    /// Half of `WatchdogSec=`: how often to feed the watchdog, if it is on.
    watchdog_every: Option<Duration>,
}

impl Notifier {
    /// From the environment systemd sets: `$NOTIFY_SOCKET` (a path, or an
    /// abstract name written with a leading '@') and `$WATCHDOG_USEC`.
    pub fn from_env() -> Notifier {
        let socket = std::env::var_os("NOTIFY_SOCKET").and_then(|name| {
            let address = address(name.as_encoded_bytes())?;
            let socket = UnixDatagram::unbound().ok()?;
            Some((socket, address))
        });
        // systemd sets WATCHDOG_PID too; a value for another process (a
        // shell script that started us) is not ours to feed.
        let for_us = std::env::var("WATCHDOG_PID").ok().is_none_or(|pid| pid == std::process::id().to_string());
        let watchdog_every = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|usec| usec.parse::<u64>().ok())
            .filter(|usec| *usec > 0 && for_us && socket.is_some())
            .map(|usec| Duration::from_micros(usec / 2));
        Notifier { socket, watchdog_every }
    }

    /// How often the watchdog wants feeding; `None` when it is off.
    pub fn watchdog_every(&self) -> Option<Duration> {
        self.watchdog_every
    }

    /// Sends `state` (lines such as `READY=1`); a failure is logged once at
    /// debug level, since the daemon works the same without systemd.
    pub fn notify(&self, state: &str) {
        if let Some((socket, address)) = &self.socket {
            if let Err(e) = socket.send_to_addr(state.as_bytes(), address) {
                tracing::debug!("cannot notify systemd ({state:?}): {e}");
            }
        }
    }
}

/// `$NOTIFY_SOCKET` as a socket address: a path, or an abstract name.
fn address(name: &[u8]) -> Option<std::os::unix::net::SocketAddr> {
    match name.strip_prefix(b"@") {
        Some(abstract_name) => {
            use std::os::linux::net::SocketAddrExt;
            std::os::unix::net::SocketAddr::from_abstract_name(abstract_name).ok()
        }
        None => {
            use std::os::unix::ffi::OsStrExt;
            std::os::unix::net::SocketAddr::from_pathname(std::ffi::OsStr::from_bytes(name)).ok()
        }
    }
}
