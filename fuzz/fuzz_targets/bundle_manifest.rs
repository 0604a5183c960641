//! Fuzzes the model bundle manifest (`model.toml`) parser: no input may
//! panic, and a manifest that parses keeps the promises the encoders and
//! preprocessing rely on (sizes above zero, a positive standard deviation,
//! sums that are 64 hex digits, files inside the bundle's folder).
#![no_main]

use std::path::Path;

use edgeclip::model::bundle::Bundle;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let dir = Path::new("/nonexistent-fuzz-bundle");
    let Ok(bundle) = Bundle::from_manifest_str(dir, &dir.join("model.toml"), text) else { return };
    assert!(bundle.embedding_dim > 0);
    assert!(bundle.logit_scale.is_finite());
    let image = &bundle.image;
    assert!(image.size > 0 && image.resize_shortest_edge > 0);
    assert!(image.std.iter().all(|s| s.is_finite() && *s > 0.0), "{:?}", image.std);
    assert!(image.mean.iter().all(|m| m.is_finite()));
    let sha = |s: &str| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit());
    assert!(sha(&image.encoder.sha256));
    for file in [&image.encoder.path, &bundle.labels_file, &bundle.labels_embeddings] {
        assert!(file.starts_with(dir), "{}", file.display());
    }
    if let Some(text) = &bundle.text {
        assert!(sha(&text.encoder.sha256) && text.context_length > 0);
        assert!(text.encoder.path.starts_with(dir));
    }
});
