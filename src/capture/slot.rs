//! A latest-value slot between a producer thread and a consumer thread.
//!
//! It holds one value: a value put while another waits replaces it, so a
//! slow consumer drops values instead of building a backlog (the latest
//! frame wins). Replaced and consumed values come back to the
//! producer through a small pool, so that frame buffers are reused instead
//! of allocated.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Spare values kept for the producer: one being filled, one waiting in the
/// slot, one held by the consumer is all a steady state needs.
const POOL_SIZE: usize = 3;

/// Why [`Latest::take`] returned nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TakeError {
    /// Nothing arrived within the timeout.
    Timeout,
    /// The producer closed the slot and it is empty.
    Closed,
}

pub struct Latest<T> {
    state: Mutex<State<T>>,
    ready: Condvar,
    /// Signalled when the consumer takes the value (for [`Latest::wait_taken`]).
    taken: Condvar,
}

struct State<T> {
    value: Option<T>,
    pool: Vec<T>,
    closed: bool,
    /// Values replaced before the consumer took them.
    dropped: u64,
}

impl<T> Default for Latest<T> {
    fn default() -> Self {
        Latest::new()
    }
}

impl<T> Latest<T> {
    pub fn new() -> Latest<T> {
        Latest {
            state: Mutex::new(State { value: None, pool: Vec::new(), closed: false, dropped: 0 }),
            ready: Condvar::new(),
            taken: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // A panicked holder left plain data behind; it is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Puts a value, replacing (and counting as dropped) one not yet taken.
    pub fn put(&self, value: T) {
        let mut s = self.lock();
        if let Some(old) = s.value.replace(value) {
            s.dropped += 1;
            if s.pool.len() < POOL_SIZE {
                s.pool.push(old);
            }
        }
        drop(s);
        self.ready.notify_one();
    }

    /// Waits up to `timeout` for a value.
    pub fn take(&self, timeout: Duration) -> Result<T, TakeError> {
        let deadline = Instant::now() + timeout;
        let mut s = self.lock();
        loop {
            if let Some(v) = s.value.take() {
                drop(s);
                self.taken.notify_all();
                return Ok(v);
            }
            if s.closed {
                return Err(TakeError::Closed);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(TakeError::Timeout);
            }
            s = self.ready.wait_timeout(s, left).unwrap_or_else(|e| e.into_inner()).0;
        }
    }

    /// Waits up to `timeout` until the slot is empty (the consumer took the
    /// last value, or there was none); returns whether it is. A producer
    /// that must not drop values (a recording replayed as fast as it is
    /// inferred) calls it before each `put`.
    pub fn wait_taken(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut s = self.lock();
        while s.value.is_some() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || s.closed {
                return false;
            }
            s = self.taken.wait_timeout(s, left).unwrap_or_else(|e| e.into_inner()).0;
        }
        true
    }

    /// Gives a value back for reuse.
    pub fn recycle(&self, value: T) {
        let mut s = self.lock();
        if s.pool.len() < POOL_SIZE {
            s.pool.push(value);
        }
    }

    /// A value to fill, if one was given back.
    pub fn spare(&self) -> Option<T> {
        self.lock().pool.pop()
    }

    /// No more values will come; a waiting `take` returns `Closed` once the
    /// slot is empty.
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }

    /// Values replaced before they were taken, since the slot was made.
    pub fn dropped(&self) -> u64 {
        self.lock().dropped
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn the_latest_value_wins_and_replaced_ones_are_counted_and_pooled() {
        let slot = Latest::new();
        slot.put(vec![1]);
        slot.put(vec![2]);
        slot.put(vec![3]);
        assert_eq!(slot.take(Duration::ZERO), Ok(vec![3]));
        assert_eq!(slot.dropped(), 2);
        assert_eq!(slot.spare(), Some(vec![2]));
        assert_eq!(slot.take(Duration::from_millis(5)), Err(TakeError::Timeout));
        slot.recycle(vec![3]);
        assert_eq!(slot.spare(), Some(vec![3]));
    }

    #[test]
    fn a_waiting_take_wakes_for_a_value_and_for_closing() {
        let slot = Arc::new(Latest::new());
        let producer = {
            let slot = Arc::clone(&slot);
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                slot.put(7);
                std::thread::sleep(Duration::from_millis(20));
                slot.close();
            })
        };
        assert_eq!(slot.take(Duration::from_secs(10)), Ok(7));
        assert_eq!(slot.take(Duration::from_secs(10)), Err(TakeError::Closed));
        producer.join().unwrap();
    }

    #[test]
    fn a_producer_can_wait_for_the_consumer_instead_of_dropping() {
        let slot = Arc::new(Latest::new());
        assert!(slot.wait_taken(Duration::ZERO), "an empty slot needs no wait");
        slot.put(1);
        assert!(!slot.wait_taken(Duration::from_millis(10)), "nobody took it");
        let consumer = {
            let slot = Arc::clone(&slot);
            std::thread::spawn(move || (0..3).map(|_| slot.take(Duration::from_secs(10)).unwrap()).collect::<Vec<_>>())
        };
        for v in [2, 3] {
            assert!(slot.wait_taken(Duration::from_secs(10)));
            slot.put(v);
        }
        assert_eq!(consumer.join().unwrap(), [1, 2, 3]);
        assert_eq!(slot.dropped(), 0);
    }
}
