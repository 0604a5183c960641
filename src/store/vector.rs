//! Embeddings as the store keeps them, and the brute-force ranking that
//! search runs over them.
//!
//! A frame's embedding (512 floats for a ViT-B/32) is kept as one signed
//! byte per dimension and a scale: the vector is normalized, its largest
//! component mapped to ±127, and the scale chosen so that the bytes times
//! the scale have length 1 again. Four times smaller than f32, and a cosine
//! is then an integer dot product times two scales; the rounding moves a
//! cosine by about 0.002 (a test below bounds it), far less than what
//! separates a match from a miss.
//!
//! Ranking is a full scan: one integer dot product per stored vector, the
//! best `k` kept in a heap. No index to build or keep in step with
//! retention, and `benches/search.rs` times 100 000 vectors.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// The largest magnitude of a quantized component.
const LEVELS: f32 = 127.0;

/// An embedding as stored: `values[i] * scale` is the normalized vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Quantized {
    pub values: Vec<i8>,
    pub scale: f32,
}

impl Quantized {
    /// `v`, normalized and quantized. `None` for a vector of zeros (or with
    /// a NaN), which has no direction to compare.
    pub fn new(v: &[f32]) -> Option<Quantized> {
        let max = v.iter().fold(0f32, |m, x| m.max(x.abs()));
        if !(max > 0.0 && v.iter().all(|x| x.is_finite())) {
            return None;
        }
        let values: Vec<i8> = v.iter().map(|x| (x / max * LEVELS).round() as i8).collect();
        let norm = values.iter().map(|&q| f64::from(q) * f64::from(q)).sum::<f64>().sqrt();
        Some(Quantized { values, scale: (1.0 / norm) as f32 })
    }

    /// The bytes as stored (each `i8` as its two's-complement byte).
    pub fn bytes(&self) -> Vec<u8> {
        self.values.iter().map(|&q| q as u8).collect()
    }

    /// From stored bytes and scale.
    pub fn from_bytes(bytes: &[u8], scale: f32) -> Quantized {
        Quantized { values: bytes.iter().map(|&b| b as i8).collect(), scale }
    }

    /// The cosine of the two vectors.
    pub fn cosine(&self, other: &Quantized) -> f32 {
        dot(&self.values, &other.values) as f32 * self.scale * other.scale
    }
}

/// The integer dot product. Written over fixed chunks with `i32` lanes so
/// that the compiler turns it into SIMD multiply-adds (NEON on the boards).
pub fn dot(a: &[i8], b: &[i8]) -> i32 {
    const LANES: usize = 16;
    let mut acc = [0i32; LANES];
    let (a_chunks, b_chunks) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: i32 =
        a_chunks.remainder().iter().zip(b_chunks.remainder()).map(|(&x, &y)| i32::from(x) * i32::from(y)).sum();
    for (x, y) in a_chunks.zip(b_chunks) {
        for i in 0..LANES {
            acc[i] += i32::from(x[i]) * i32::from(y[i]);
        }
    }
    acc.iter().sum::<i32>() + tail
}

/// One ranked candidate: what names it (its index in the input for
/// [`rank`]), and its cosine.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ranked<K = usize> {
    pub index: K,
    pub score: f32,
}

/// Ordered by score, worst first at the top of the heap.
struct Worst<K>(Ranked<K>, u64);

impl<K> PartialEq for Worst<K> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl<K> Eq for Worst<K> {}

impl<K> PartialOrd for Worst<K> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<K> Ord for Worst<K> {
    fn cmp(&self, other: &Self) -> Ordering {
        // A lower score is "greater": the heap's top is the one to drop; of
        // equal scores, the later offered.
        other.0.score.total_cmp(&self.0.score).then(self.1.cmp(&other.1))
    }
}

/// The best `k` of a stream of scored candidates.
pub struct TopK<K> {
    k: usize,
    heap: BinaryHeap<Worst<K>>,
    offered: u64,
}

impl<K> TopK<K> {
    pub fn new(k: usize) -> TopK<K> {
        TopK { k, heap: BinaryHeap::with_capacity(k + 1), offered: 0 }
    }

    /// One candidate; kept if it is among the best `k` so far (ties: the
    /// earlier one).
    pub fn offer(&mut self, index: K, score: f32) {
        self.offered += 1;
        if self.k == 0 {
            return;
        }
        if self.heap.len() < self.k {
            self.heap.push(Worst(Ranked { index, score }, self.offered));
        } else if self.heap.peek().is_some_and(|w| score > w.0.score) {
            self.heap.pop();
            self.heap.push(Worst(Ranked { index, score }, self.offered));
        }
    }

    /// How many candidates were offered.
    pub fn offered(&self) -> u64 {
        self.offered
    }

    /// The best, best first.
    pub fn into_sorted(self) -> Vec<Ranked<K>> {
        let mut best: Vec<Worst<K>> = self.heap.into_vec();
        best.sort_by(|a, b| b.0.score.total_cmp(&a.0.score).then(a.1.cmp(&b.1)));
        best.into_iter().map(|w| w.0).collect()
    }
}

/// The `k` candidates closest to `query`, best first (ties: the earlier
/// index first). Candidates of another length than the query are skipped
/// (a vector stored by a model with another width).
pub fn rank<'a>(query: &Quantized, candidates: impl IntoIterator<Item = &'a Quantized>, k: usize) -> Vec<Ranked> {
    let mut top = TopK::new(k);
    for (index, c) in candidates.into_iter().enumerate() {
        if c.values.len() == query.values.len() {
            top.offer(index, query.cosine(c));
        }
    }
    top.into_sorted()
}

/// A stored embedding's bytes as the signed values they are.
pub fn as_i8(bytes: &[u8]) -> &[i8] {
    // SAFETY: i8 and u8 have the same size and alignment, and every bit
    // pattern is valid for both.
    unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<i8>(), bytes.len()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic pseudo-random unit vector.
    fn vector(seed: u64, dim: usize) -> Vec<f32> {
        let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let v: Vec<f32> = (0..dim)
            .map(|_| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((x >> 33) as f32 / (1u64 << 31) as f32) - 0.5
            })
            .collect();
        let n = v.iter().map(|a| a * a).sum::<f32>().sqrt();
        v.iter().map(|a| a / n).collect()
    }

    fn cosine(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn quantized_cosines_are_within_0_005_of_the_exact_ones() {
        let mut worst = 0f32;
        for seed in 0..200 {
            let (a, b) = (vector(seed, 512), vector(seed + 1000, 512));
            // Mixed with a shared part, so that the cosines spread over -1..1.
            let w = (seed % 21) as f32 / 10.0 - 1.0;
            let b: Vec<f32> = a.iter().zip(&b).map(|(x, y)| w * x + (1.0 - w.abs()) * y).collect();
            let exact = cosine(&a, &b) / cosine(&b, &b).sqrt();
            let q = Quantized::new(&a).unwrap().cosine(&Quantized::new(&b).unwrap());
            worst = worst.max((q - exact).abs());
        }
        assert!(worst < 0.005, "largest error {worst}");
        let a = Quantized::new(&vector(1, 512)).unwrap();
        assert!((a.cosine(&a) - 1.0).abs() < 1e-5, "a stored vector has length 1");
        assert_eq!(Quantized::from_bytes(&a.bytes(), a.scale), a);
        assert_eq!(Quantized::new(&[0.0; 4]), None);
        assert_eq!(Quantized::new(&[f32::NAN, 1.0]), None);
    }

    #[test]
    fn the_dot_product_is_exact_at_every_length() {
        for len in [0, 1, 15, 16, 17, 128, 513] {
            let a: Vec<i8> = (0..len).map(|i| (i * 37 % 255) as i8).collect();
            let b: Vec<i8> = (0..len).map(|i| (i * 11 % 256) as u8 as i8).collect();
            let naive: i32 = a.iter().zip(&b).map(|(&x, &y)| i32::from(x) * i32::from(y)).sum();
            assert_eq!(dot(&a, &b), naive, "length {len}");
        }
        // The extreme: every product is 128 * 128.
        assert_eq!(dot(&[-128; 512], &[-128; 512]), 128 * 128 * 512);
    }

    #[test]
    fn ranking_keeps_the_best_k_in_order() {
        let stored: Vec<Quantized> = (0..1000).map(|s| Quantized::new(&vector(s, 64)).unwrap()).collect();
        let query = stored[417].clone();
        let best = rank(&query, &stored, 5);
        assert_eq!(best.len(), 5);
        assert_eq!(best[0].index, 417);
        assert!(best.windows(2).all(|w| w[0].score >= w[1].score));
        // The same as sorting everything.
        let mut all: Vec<(usize, f32)> = stored.iter().enumerate().map(|(i, c)| (i, query.cosine(c))).collect();
        all.sort_by(|a, b| b.1.total_cmp(&a.1));
        assert_eq!(best.iter().map(|r| r.index).collect::<Vec<_>>(), all[..5].iter().map(|a| a.0).collect::<Vec<_>>());
        // Another width is skipped; k = 0 and k beyond the count work.
        let other = Quantized::new(&vector(3, 32)).unwrap();
        assert!(rank(&other, &stored, 3).is_empty());
        assert!(rank(&query, &stored, 0).is_empty());
        assert_eq!(rank(&query, &stored[..3], 10).len(), 3);
    }
}
