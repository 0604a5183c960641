//! Rate-limited logging of one kind of problem: a camera that sends garbage
//! at 30 fps, or a GPIO line that fails on every frame, must not flood the
//! journal. The first occurrence is logged, later ones at most every
//! [`LOG_EVERY`], each saying how many were suppressed since the last.

use std::time::{Duration, Instant};

/// One kind of problem is logged at most this often; the rest are counted.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// Rate-limits one kind of log line.
#[derive(Debug)]
pub struct LogLimit {
    last: Option<Instant>,
    suppressed: u64,
}

impl Default for LogLimit {
    fn default() -> Self {
        LogLimit::new()
    }
}

impl LogLimit {
    pub fn new() -> LogLimit {
        LogLimit { last: None, suppressed: 0 }
    }

    /// Whether to log now; if so, how many were suppressed since the last.
    pub fn check(&mut self) -> Option<u64> {
        let now = Instant::now();
        if self.last.is_some_and(|t| now.duration_since(t) < LOG_EVERY) {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

/// " (N more like it since the last report)", or nothing for N = 0.
pub fn also(suppressed: u64) -> String {
    if suppressed == 0 {
        String::new()
    } else {
        format!(" ({suppressed} more like it since the last report)")
    }
}
