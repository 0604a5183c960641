//! Fault injection for the tests that prove the daemon survives, or stops
//! visibly on, faults that working code never produces (a panic in a
//! camera's thread). Debug builds only: in a release build [`point`]
//! compiles to nothing, and no environment can change what it does.
//!
//! `EDGECLIP_FAULT` is a comma-separated list: `panic:SITE` makes [`point`]
//! panic at that site (e.g. `panic:inference` on the first frame inferred),
//! `hang:SITE` makes it block for ever there (a wedged thread),
//! `abort:SITE:N` aborts the process the `N`th time it gets there (a power
//! cut in the middle of a write, as near as a process can come),
//! `fail:SITE` makes [`fails`] say yes there (a disk that refuses writes),
//! and
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
        for fault in faults.split(',') {
            let Some((at, n)) = fault.trim().strip_prefix("abort:").and_then(|f| f.rsplit_once(':')) else { continue };
            if at == site && n.parse::<u64>().is_ok_and(|n| n == reached(site)) {
                eprintln!("fault injected at '{site}' (EDGECLIP_FAULT): aborting");
                std::process::abort();
            }
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

/// Whether the operation at `site` is to fail (`fail:SITE` in a debug
/// build); always false in a release build.
#[inline]
pub fn fails(site: &str) -> bool {
    #[cfg(debug_assertions)]
    if let Ok(faults) = std::env::var("EDGECLIP_FAULT") {
        return faults.split(',').any(|f| f.trim().strip_prefix("fail:") == Some(site));
    }
    #[cfg(not(debug_assertions))]
    let _ = site;
    false
}

/// How many times `site` has been reached, this time included.
#[cfg(debug_assertions)]
fn reached(site: &str) -> u64 {
    use std::collections::HashMap;
    use std::sync::Mutex;
    static COUNTS: Mutex<Option<HashMap<String, u64>>> = Mutex::new(None);
    let mut counts = COUNTS.lock().unwrap_or_else(|e| e.into_inner());
    let n = counts.get_or_insert_with(HashMap::new).entry(site.to_string()).or_insert(0);
    *n += 1;
    *n
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
