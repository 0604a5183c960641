//! A panic on any of the daemon's threads stops the daemon with a failure.
//!
//! Without this, a panicking camera thread simply ended: the main loop kept
//! publishing `online` and `"running": true` for a camera that inferred
//! nothing, and the process exited 0 on the next SIGTERM, so systemd never
//! restarted it. Now [`install`] adds a panic hook that records the first
//! panic (thread, place, message) after the standard hook has printed it;
//! the main loop reads it with [`first`] at its next tick and stops the
//! daemon in order (the other cameras' events end and are published,
//! `offline` is published), and `run` returns an error, so the process
//! exits with status 1 and `Restart=on-failure` brings it back.
//!
//! A panic on the main thread itself unwinds out of `run`, and Rust exits
//! with status 101: a failure as well.

use std::sync::{Mutex, Once};

/// The first panic of the process, described for the log.
static FIRST: Mutex<Option<String>> = Mutex::new(None);
static INSTALL: Once = Once::new();

/// Adds the recording hook (once per process; later calls do nothing).
pub fn install() {
    INSTALL.call_once(|| {
        let standard = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            standard(info);
            let thread = std::thread::current().name().unwrap_or("unnamed").to_string();
            let message = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(no message)".to_string());
            let place = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
            let mut first = FIRST.lock().unwrap_or_else(|e| e.into_inner());
            if first.is_none() {
                *first = Some(format!("thread '{thread}' panicked{place}: {message}"));
            }
        }));
    });
}

/// The first panic since the process started, if any thread panicked. It
/// stays recorded: every later call returns it too.
pub fn first() -> Option<String> {
    FIRST.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    // The only panic in the library's unit tests (no other one panics unless
    // it fails), so the first recorded is this one.
    #[test]
    fn a_panic_on_another_thread_is_recorded_with_its_thread_and_message() {
        install();
        let handle =
            std::thread::Builder::new().name("infer-test".into()).spawn(|| panic!("a test panic {}", 42)).unwrap();
        assert!(handle.join().is_err());
        let first = first().expect("the panic is recorded");
        assert!(first.starts_with("thread 'infer-test' panicked at src/daemon/panics.rs:"), "{first}");
        assert!(first.ends_with(": a test panic 42"), "{first}");
    }
}
