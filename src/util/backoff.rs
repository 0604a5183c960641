//! Exponential backoff: how long to wait before the next attempt at
//! something that keeps failing (reopening a camera, restarting a camera
//! command, reconnecting to the MQTT broker).
//!
//! The delay starts at `first` and doubles with every failure up to `max`.
//! Two things bring it back to `first`: a success ([`Backoff::succeeded`],
//! e.g. a good frame), and, for a site that sets a stable-run time
//! ([`Backoff::with_stable_run`]), a run that lasted that long before it
//! ended ([`Backoff::run_started`], [`Backoff::run_ended`]): a connection or
//! a process that worked for a while and then broke is retried quickly,
//! while one that breaks at once keeps backing off. Each site picks its own
//! numbers and says why next to them.

use std::time::{Duration, Instant};

/// Waiting times between attempts: doubling from `first` up to `max`, back
/// to `first` after a success or a stable run.
#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    /// The delay the next failure waits.
    next: Duration,
    /// When the next attempt is due, after a failure.
    not_before: Option<Instant>,
    /// A run that lasted this long was a working one (none: only a success
    /// resets the delay).
    stable_run: Option<Duration>,
    /// When the current run started, while one is going.
    run_since: Option<Instant>,
}

impl Backoff {
    /// Delays from `first` doubling up to `max`; only [`Backoff::succeeded`]
    /// resets them.
    pub fn new(first: Duration, max: Duration) -> Backoff {
        Backoff { first, max, next: first, not_before: None, stable_run: None, run_since: None }
    }

    /// Adds the stable-run rule: a run that lasted at least `stable` before
    /// it ended resets the delay to `first`.
    pub fn with_stable_run(mut self, stable: Duration) -> Backoff {
        self.stable_run = Some(stable);
        self
    }

    /// Records a failure: the next attempt is due one delay from now, and
    /// the delay after it doubles. Returns the delay.
    pub fn failed(&mut self) -> Duration {
        self.failed_at(Instant::now())
    }

    fn failed_at(&mut self, now: Instant) -> Duration {
        let delay = self.next;
        self.not_before = Some(now + delay);
        self.next = (self.next * 2).min(self.max);
        delay
    }

    /// Records a success: the next failure waits `first` again.
    pub fn succeeded(&mut self) {
        self.next = self.first;
        self.not_before = None;
    }

    /// A run begins now: a connection was accepted, a process started.
    pub fn run_started(&mut self) {
        self.run_started_at(Instant::now());
    }

    fn run_started_at(&mut self, now: Instant) {
        self.run_since = Some(now);
    }

    /// The run ends now (call it before [`Backoff::failed`]): one that
    /// lasted the stable-run time counts as a success. Returns whether a run
    /// was going.
    pub fn run_ended(&mut self) -> bool {
        self.run_ended_at(Instant::now())
    }

    fn run_ended_at(&mut self, now: Instant) -> bool {
        let Some(since) = self.run_since.take() else { return false };
        if self.stable_run.is_some_and(|stable| now.saturating_duration_since(since) >= stable) {
            self.succeeded();
        }
        true
    }

    /// Time left before the next attempt is due (zero when it is).
    pub fn remaining(&self) -> Duration {
        self.not_before.map_or(Duration::ZERO, |t| t.saturating_duration_since(Instant::now()))
    }

    /// Sleeps until the next attempt is due, at most `limit`; returns
    /// whether it is due now.
    pub fn wait(&self, limit: Duration) -> bool {
        let left = self.remaining();
        std::thread::sleep(left.min(limit));
        left <= limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn backoff_doubles_to_its_cap_and_resets() {
        let mut b = Backoff::new(ms(100), ms(350));
        let delays: Vec<u128> = (0..4).map(|_| b.failed().as_millis()).collect();
        assert_eq!(delays, [100, 200, 350, 350]);
        assert!(b.remaining() > ms(300));
        b.succeeded();
        assert_eq!(b.remaining(), Duration::ZERO);
        assert_eq!(b.failed(), ms(100));
    }

    #[test]
    fn a_stable_run_resets_the_delay_and_a_short_one_does_not() {
        let t0 = Instant::now();
        let mut b = Backoff::new(ms(500), ms(30_000)).with_stable_run(ms(10_000));
        assert!(!b.run_ended_at(t0), "no run was going");
        assert_eq!(b.failed_at(t0), ms(500));
        assert_eq!(b.failed_at(t0), ms(1000));
        // A run that breaks at once: the delay keeps doubling.
        b.run_started_at(t0);
        assert!(b.run_ended_at(t0 + ms(9_999)));
        assert_eq!(b.failed_at(t0), ms(2000));
        // A run that lasted the stable time: back to the first delay.
        b.run_started_at(t0);
        assert!(b.run_ended_at(t0 + ms(10_000)));
        assert_eq!(b.failed_at(t0), ms(500));
        // Ending it took the run: a second end finds none.
        assert!(!b.run_ended_at(t0 + ms(20_000)));
        assert_eq!(b.failed_at(t0), ms(1000));
    }

    #[test]
    fn without_a_stable_run_time_only_a_success_resets() {
        let t0 = Instant::now();
        let mut b = Backoff::new(ms(100), ms(5_000));
        b.failed_at(t0);
        b.run_started_at(t0);
        assert!(b.run_ended_at(t0 + Duration::from_secs(3600)));
        assert_eq!(b.failed_at(t0), ms(200));
    }

    #[test]
    fn waiting_is_limited_and_says_whether_the_attempt_is_due() {
        let mut b = Backoff::new(ms(10_000), ms(10_000));
        assert!(b.wait(ms(1)), "nothing failed yet: due at once");
        b.failed();
        assert!(!b.wait(ms(1)), "10 s to go after 1 ms");
        let mut b = Backoff::new(ms(20), ms(20));
        b.failed();
        assert!(b.wait(ms(1_000)));
        assert_eq!(b.remaining(), Duration::ZERO);
    }
}
