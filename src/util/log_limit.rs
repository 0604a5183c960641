//! Rate-limited logging of one kind of problem: a camera that sends garbage
//! at 30 fps, a GPIO line that fails on every frame, or someone on the
//! broker sending bad commands in a loop must not flood the journal. The
//! first occurrences are logged (one, or a burst of a few), later ones at
//! most that many every [`LOG_EVERY`], each saying how many were suppressed
//! since the last.

use std::time::{Duration, Instant};

/// One kind of problem is logged at most a burst's worth this often; the
/// rest are counted.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// Rate-limits one kind of log line.
#[derive(Debug)]
pub struct LogLimit {
    /// Lines logged per [`LOG_EVERY`].
    burst: u32,
    /// When the current window began (at its first line).
    window: Option<Instant>,
    logged: u32,
    suppressed: u64,
}

impl Default for LogLimit {
    fn default() -> Self {
        LogLimit::new()
    }
}

impl LogLimit {
    /// One line per [`LOG_EVERY`].
    pub fn new() -> LogLimit {
        LogLimit::with_burst(1)
    }

    /// Up to `burst` lines per [`LOG_EVERY`]: for problems a person causes
    /// and wants to see each of (a few mistyped commands), where a flood is
    /// still cut.
    pub fn with_burst(burst: u32) -> LogLimit {
        LogLimit { burst: burst.max(1), window: None, logged: 0, suppressed: 0 }
    }

    /// Whether to log now; if so, how many were suppressed since the last.
    pub fn check(&mut self) -> Option<u64> {
        self.check_at(Instant::now())
    }

    fn check_at(&mut self, now: Instant) -> Option<u64> {
        if self.window.is_none_or(|t| now.duration_since(t) >= LOG_EVERY) {
            self.window = Some(now);
            self.logged = 0;
        }
        if self.logged == self.burst {
            self.suppressed += 1;
            return None;
        }
        self.logged += 1;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_per_window_then_a_count_of_the_rest() {
        let t0 = Instant::now();
        let mut one = LogLimit::new();
        assert_eq!(one.check_at(t0), Some(0));
        assert_eq!(one.check_at(t0 + Duration::from_secs(9)), None);
        assert_eq!(one.check_at(t0 + Duration::from_secs(9)), None);
        assert_eq!(one.check_at(t0 + LOG_EVERY), Some(2));

        let mut three = LogLimit::with_burst(3);
        let logged: Vec<Option<u64>> = (0..5).map(|_| three.check_at(t0)).collect();
        assert_eq!(logged, [Some(0), Some(0), Some(0), None, None]);
        assert_eq!(three.check_at(t0 + LOG_EVERY), Some(2));
        assert_eq!(three.check_at(t0 + LOG_EVERY), Some(0));
    }
}
