//! A label set that one thread matches frames against while another
//! replaces it (the daemon swaps it when a labels file changes).

use std::sync::{Arc, RwLock};

use crate::pipeline::matcher::Matcher;

/// The labels a camera matches against, replaceable while frames are being
/// matched: a matching thread takes the current [`Matcher`] for each frame
/// (`current`, a read lock and a reference count, no allocation), and a
/// swap (`replace`) is seen from the next frame on. The old matcher lives
/// until the last frame using it is done.
pub struct LabelSet {
    current: RwLock<Arc<Matcher>>,
}

impl LabelSet {
    pub fn new(matcher: Matcher) -> LabelSet {
        LabelSet { current: RwLock::new(Arc::new(matcher)) }
    }

    pub fn current(&self) -> Arc<Matcher> {
        // A poisoned lock only means a writer panicked between two whole
        // assignments; the Arc inside is intact.
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Installs a new label set; returns the previous one.
    pub fn replace(&self, matcher: Matcher) -> Arc<Matcher> {
        let mut slot = self.current.write().unwrap_or_else(|e| e.into_inner());
        std::mem::replace(&mut *slot, Arc::new(matcher))
    }
}
