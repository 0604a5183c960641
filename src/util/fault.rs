//! Fault injection for the tests that prove the daemon survives, or stops
//! visibly on, faults that working code never produces (a panic in a
//! camera's thread). Debug builds only: in a release build [`point`]
//! compiles to nothing, and no environment can change what it does.
//!
//! `EDGECLIP_FAULT` is a comma-separated list: `panic:SITE` makes [`point`]
//! panic at that site (e.g. `panic:inference` on the first frame inferred),
//! `hang:SITE` makes it block for ever there (a wedged thread), and
//! `stalled-after-ms:N` shortens the daemon's stall limit ([`stall_limit`])
//! so that a test of the watchdog takes seconds.

/// A place in the code where a test may inject a fault.
#[inline]
pub fn point(site: &str) {
    #[cfg(debug_assertions)]
    if let Ok(faults) = std::env::var("EDGECLIP_FAULT") {
        if faults.split(',').any(|f| f.trim().strip_prefix("panic:") == Some(site)) {
            panic!("fault injected at '{site}' (EDGECLIP_FAULT)");
        }
        if faults.split(',').any(|f| f.trim().strip_prefix("hang:") == Some(site)) {
            tracing::warn!("fault injected at '{site}' (EDGECLIP_FAULT): hanging");
            loop {
                std::thread::sleep(std::time::Duration::from_secs(3600));
            }
        }
    }
    #[cfg(not(debug_assertions))]
    let _ = site;
}

/// `default`, or in a debug build the `stalled-after-ms:N` of
/// `EDGECLIP_FAULT`.
pub fn stall_limit(default: std::time::Duration) -> std::time::Duration {
    #[cfg(debug_assertions)]
    if let Ok(faults) = std::env::var("EDGECLIP_FAULT") {
        for fault in faults.split(',') {
            if let Some(ms) = fault.trim().strip_prefix("stalled-after-ms:").and_then(|ms| ms.parse().ok()) {
                return std::time::Duration::from_millis(ms);
            }
        }
    }
    default
}
