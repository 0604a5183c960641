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

/// "machine: CPU model, ARCH": the first line of every benchmark's report,
/// since the machines differ between runs.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("machine: {cpu}, {}", std::env::consts::ARCH)
}
