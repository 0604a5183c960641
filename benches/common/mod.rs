//! The timing loop the benchmarks share.

use std::time::Instant;

/// Median milliseconds per call of `f`: `rounds` measurements of `frames`
/// calls each, so that one slow moment on a shared machine moves one
/// measurement, not the result.
pub fn median_ms(frames: usize, rounds: usize, mut f: impl FnMut()) -> f64 {
    let mut times: Vec<f64> = (0..rounds)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..frames {
                f();
            }
            t.elapsed().as_secs_f64() * 1000.0 / frames as f64
        })
        .collect();
    times.sort_by(|a, b| a.total_cmp(b));
    times[rounds / 2]
}
