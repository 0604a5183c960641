//! A camera's labels while the daemon runs: loaded from the labels file, or
//! from a labels file's text sent to the `labels/set` command topic, as the
//! matcher and the detector's labels in the same order, with where they came
//! from.

use std::path::PathBuf;
use std::sync::Arc;

use crate::labels::file;
use crate::labels::resolve::{resolve_labels, LabelOptions, ResolveReport};
use crate::model::bundle::Bundle;
use crate::pipeline::detect::DetectorLabel;
use crate::pipeline::matcher::Matcher;

/// The largest labels text accepted from the `labels/set` command topic:
/// thousands of labels, far below what would strain a board's memory.
pub const MAX_COMMAND_LABELS_BYTES: usize = 64 * 1024;

/// Where a camera's current labels came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelsOrigin {
    File(PathBuf),
    /// The `labels/set` command topic.
    Command(String),
}

impl std::fmt::Display for LabelsOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LabelsOrigin::File(p) => write!(f, "'{}'", p.display()),
            LabelsOrigin::Command(topic) => write!(f, "MQTT topic '{topic}'"),
        }
    }
}

/// A camera's label set: what frames are matched against and what the
/// detector tracks, in the same order.
#[derive(Debug)]
pub struct CameraLabels {
    pub matcher: Arc<Matcher>,
    pub detector: Vec<DetectorLabel>,
    pub origin: LabelsOrigin,
}

impl CameraLabels {
    /// Names of the labels that can fire (not the negative ones).
    pub fn positive_names(&self) -> impl Iterator<Item = &str> {
        self.detector.iter().filter(|l| !l.negative).map(|l| l.name.as_str())
    }

    /// Parses and embeds labels text; `default_threshold` applies to labels
    /// whose line sets none.
    pub fn load(
        bundle: &Bundle,
        origin: LabelsOrigin,
        text: &str,
        default_threshold: f32,
        options: &LabelOptions,
    ) -> anyhow::Result<(CameraLabels, ResolveReport)> {
        let name = match &origin {
            LabelsOrigin::File(p) => p.clone(),
            LabelsOrigin::Command(topic) => PathBuf::from(format!("mqtt:{topic}")),
        };
        let parsed = file::parse(&name, text)?;
        let detector = parsed
            .iter()
            .map(|l| DetectorLabel {
                name: l.name.clone(),
                threshold: l.threshold.unwrap_or(default_threshold),
                negative: l.negative,
            })
            .collect();
        let (embedded, report) = resolve_labels(bundle, &name, parsed, options)?;
        let matcher = Matcher::new(&embedded, bundle.embedding_dim, bundle.logit_scale)
            .map_err(|e| anyhow::anyhow!("labels from {origin}: {e}"))?;
        Ok((CameraLabels { matcher: Arc::new(matcher), detector, origin }, report))
    }
}
