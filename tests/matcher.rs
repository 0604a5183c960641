//! The matcher on cases small enough to compute by hand.

use edgeclip::labels::EmbeddedLabel;
use edgeclip::pipeline::matcher::{Matcher, MAX_TOP_K};

fn label(name: &str, v: &[f32]) -> EmbeddedLabel {
    EmbeddedLabel { name: name.into(), prompts: vec![name.into()], vector: v.to_vec() }
}

#[test]
fn cosine_softmax_and_top_k_by_hand() {
    // Three orthogonal-ish labels in 2D; the image points at 45° between a and b.
    let labels = [label("a", &[1.0, 0.0]), label("b", &[0.0, 2.0]), label("c", &[-1.0, 0.0])];
    let m = Matcher::new(&labels, 2, 10.0).unwrap();
    let mut s = m.new_scores();
    m.score(&[3.0, 3.0], 2, &mut s);
    let h = std::f32::consts::FRAC_1_SQRT_2;
    // cos = (0.7071, 0.7071, -0.7071); b's vector is normalized first.
    for (got, want) in s.cosine.iter().zip([h, h, -h]) {
        assert!((got - want).abs() < 1e-6, "{:?}", s.cosine);
    }
    // softmax(10·cos): e^{10h} / (2e^{10h} + e^{-10h})
    let (big, small) = ((10.0 * h).exp(), (-10.0 * h).exp());
    let p_ab = big / (2.0 * big + small);
    let p_c = small / (2.0 * big + small);
    assert!((s.probability[0] - p_ab).abs() < 1e-6 && (s.probability[1] - p_ab).abs() < 1e-6);
    assert!((s.probability[2] - p_c).abs() < 1e-7, "{} vs {p_c}", s.probability[2]);
    assert!((s.probability.iter().sum::<f32>() - 1.0).abs() < 1e-6);
    // Top 2: a and b tie; ties keep label order.
    assert_eq!(s.top.iter().map(|t| t.label).collect::<Vec<_>>(), vec![0, 1]);
}

#[test]
fn top_k_is_sorted_and_capped() {
    let labels: Vec<EmbeddedLabel> =
        (0..40).map(|i| label(&format!("l{i}"), &[(i as f32 * 0.1).cos(), (i as f32 * 0.1).sin()])).collect();
    let m = Matcher::new(&labels, 2, 100.0).unwrap();
    let mut s = m.new_scores();
    // The image points at label 7's direction.
    m.score(&[(0.7f32).cos(), (0.7f32).sin()], 100, &mut s);
    assert_eq!(s.top.len(), MAX_TOP_K);
    assert_eq!(s.top[0].label, 7);
    assert!((s.top[0].cosine - 1.0).abs() < 1e-6);
    assert!(s.top.windows(2).all(|w| w[0].probability >= w[1].probability));
    // Its neighbours come next, nearest first.
    let next: Vec<usize> = s.top[1..3].iter().map(|t| t.label).collect();
    assert!(next.contains(&6) && next.contains(&8), "{next:?}");
    m.score(&[1.0, 0.0], 3, &mut s);
    assert_eq!(s.top.iter().map(|t| t.label).collect::<Vec<_>>(), vec![0, 1, 2]);
}

#[test]
fn zero_image_embedding_scores_uniformly() {
    let labels = [label("a", &[1.0, 0.0, 0.0]), label("b", &[0.0, 1.0, 0.0])];
    let m = Matcher::new(&labels, 3, 100.0).unwrap();
    let mut s = m.new_scores();
    m.score(&[0.0, 0.0, 0.0], 2, &mut s);
    assert_eq!(s.cosine, vec![0.0, 0.0]);
    assert_eq!(s.probability, vec![0.5, 0.5]);
}

#[test]
fn bad_label_vectors_are_refused_by_name() {
    let e = Matcher::new(&[label("short", &[1.0])], 2, 100.0).unwrap_err();
    assert_eq!(e.to_string(), "label 'short' has a 1-dimensional embedding but the model's are 2-dimensional");
    let e = Matcher::new(&[label("zero", &[0.0, 0.0])], 2, 100.0).unwrap_err();
    assert_eq!(e.to_string(), "label 'zero' has a zero or non-finite embedding");
    assert!(Matcher::new(&[], 2, 100.0).is_err());
}

#[test]
fn scoring_does_not_allocate_once_warm() {
    // Capacity is reserved by new_scores(); scoring must keep the buffers.
    let labels: Vec<EmbeddedLabel> = (0..20).map(|i| label(&format!("l{i}"), &[1.0, i as f32])).collect();
    let m = Matcher::new(&labels, 2, 100.0).unwrap();
    let mut s = m.new_scores();
    m.score(&[1.0, 2.0], 5, &mut s);
    let ptrs = (s.cosine.as_ptr(), s.probability.as_ptr());
    for i in 0..10 {
        m.score(&[1.0, i as f32], 5, &mut s);
    }
    assert_eq!(ptrs, (s.cosine.as_ptr(), s.probability.as_ptr()));
}
