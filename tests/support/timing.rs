//! How long the tests wait: natively, or longer under an emulator, and a
//! poll for a condition with a deadline.

use std::time::{Duration, Instant};

use super::process::test_runner;

/// Whether the suite runs under an emulator (qemu-user, see
/// [`super::process::edgeclip_command`]).
pub fn emulated() -> bool {
    test_runner().is_some()
}

/// How much longer than natively the tests wait under an emulator. qemu-user
/// runs our NEON inference about 70 times slower than this machine runs its
/// AVX code (the tiny model's image encoder: 1.2 s a frame instead of
/// 18 ms), and the plain logic (MQTT, signals, files) several times slower.
const EMULATED_PATIENCE: u32 = 20;

/// A timeout, or a bound on how long something may take: as given natively,
/// `EMULATED_PATIENCE` times longer under an emulator. The bounds the
/// daemon promises (a labels edit within 2 s, exit within 5 s of SIGTERM)
/// are held natively; under qemu they only catch a hang.
pub fn patience(natively: Duration) -> Duration {
    if emulated() {
        natively * EMULATED_PATIENCE
    } else {
        natively
    }
}

/// How often [`wait_until`] asks again.
const POLL_PERIOD: Duration = Duration::from_millis(10);

/// Polls `done` every 10 ms; panics with `what` after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting until {what}");
        std::thread::sleep(POLL_PERIOD);
    }
}
