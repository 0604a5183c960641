//! A camera's labels while the daemon runs: loaded from the labels file, or
//! from a labels file's text sent to the `labels/set` command topic, as the
//! matcher and the detector's labels in the same order, with where they came
//! from.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::labels::file::{self, Label};
use crate::labels::resolve::{resolve_labels, LabelOptions, ResolveReport};
use crate::model::bundle::Bundle;
use crate::pipeline::detect::DetectorLabel;
use crate::pipeline::matcher::Matcher;
use crate::publish::topics::slug;

/// The largest labels text accepted from the `labels/set` command topic:
/// thousands of labels, far below what would strain a board's memory.
pub const MAX_COMMAND_LABELS_BYTES: usize = 64 * 1024;

/// The most labels a camera may have. Every label that can fire is an MQTT
/// state topic and a Home Assistant entity: 256 is far beyond any dashboard,
/// while a flood of thousands would swamp Home Assistant and the broker.
/// (Offline evaluation, `edgeclip eval`, takes larger sets such as
/// ImageNet's 1000 classes: this limit is the daemon's.)
pub const MAX_CAMERA_LABELS: usize = 256;

/// The most prompts a `labels/set` command may ask for, counting each
/// label's prompts (its templates' when it gives none): the upper bound of
/// text-encoder runs one command costs. A ViT-B/32 prompt takes about 0.3 s
/// on a Pi 4, so 256 are over a minute of a core there; anyone on the
/// broker may send commands, and a set this large belongs in the file.
pub const MAX_COMMAND_PROMPTS: usize = 256;

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
        check_for_camera(&origin, &parsed, &bundle.label_templates, options)?;
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

/// What a camera's label set must be beyond a valid labels file: not too
/// large, with a label that can fire, with names that stay apart in Home
/// Assistant, and for a command, within the embedding work one may cost.
pub fn check_for_camera(
    origin: &LabelsOrigin,
    labels: &[Label],
    bundle_templates: &[String],
    options: &LabelOptions,
) -> anyhow::Result<()> {
    if labels.len() > MAX_CAMERA_LABELS {
        anyhow::bail!(
            "labels from {origin}: {} labels; a camera takes at most {MAX_CAMERA_LABELS} (each one that can fire is an MQTT topic and a Home Assistant entity)",
            labels.len()
        );
    }
    if labels.iter().all(|l| l.negative) {
        anyhow::bail!(
            "labels from {origin}: every label is a background label ('!'), so nothing can ever fire; add a label without '!'"
        );
    }
    let mut slugs: BTreeMap<String, &Label> = BTreeMap::new();
    for label in labels.iter().filter(|l| !l.negative) {
        if let Some(other) = slugs.insert(slug(&label.name), label) {
            anyhow::bail!(
                "labels from {origin}: '{}' (line {}) and '{}' (line {}) would share one Home Assistant entity '{}'; rename one",
                other.name,
                other.line,
                label.name,
                label.line,
                slug(&label.name)
            );
        }
    }
    if let LabelsOrigin::Command(_) = origin {
        if let Some(label) = labels.iter().find(|l| crate::labels::examples::has_examples(l)) {
            anyhow::bail!(
                "labels from {origin}: label '{}' (line {}) names example images; a command may not make the daemon read files, so they go in the camera's labels file, and the example/set command adds the current frame to a label's example folder",
                label.name,
                label.line
            );
        }
        let templates = options.templates.as_deref().unwrap_or(bundle_templates).len().max(1);
        let prompts: usize = labels.iter().map(|l| if l.explicit_prompts { l.prompts.len() } else { templates }).sum();
        if prompts > MAX_COMMAND_PROMPTS {
            anyhow::bail!(
                "labels from {origin}: {prompts} prompts to embed; a command may ask for at most {MAX_COMMAND_PROMPTS} (a larger set belongs in the camera's labels file)"
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn check(origin: &LabelsOrigin, text: &str) -> Result<(), String> {
        let labels = file::parse(Path::new("labels.txt"), text).map_err(|e| e.to_string())?;
        let options =
            LabelOptions { cache_dir: None, encoder: Default::default(), templates: None, ..Default::default() };
        check_for_camera(origin, &labels, &["a photo of a {}.".to_string()], &options).map_err(|e| e.to_string())
    }

    #[test]
    fn a_camera_label_set_is_bounded_can_fire_and_keeps_its_entities_apart() {
        let file = LabelsOrigin::File("labels.txt".into());
        let command = LabelsOrigin::Command("edgeclip/n/cam/labels/set".into());
        let many = |n: usize| (0..n).map(|i| format!("label {i}\n")).collect::<String>();
        assert_eq!(check(&file, &many(256)), Ok(()));
        let e = check(&file, &many(257)).unwrap_err();
        assert!(e.contains("257 labels; a camera takes at most 256"), "{e}");

        let e = check(&file, "!sky\n!grass\n").unwrap_err();
        assert!(e.contains("every label is a background label"), "{e}");

        let e = check(&file, "Red Circle\nred-circle\n").unwrap_err();
        assert!(
            e.contains(
                "'Red Circle' (line 1) and 'red-circle' (line 2) would share one Home Assistant entity 'red_circle'"
            ),
            "{e}"
        );
        // A background label has no entity.
        assert_eq!(check(&file, "Red Circle\n!red-circle\n"), Ok(()));

        // The embedding work of one command: each label's prompts, or one
        // per template for a label that gives none.
        let prompts =
            |n: usize| format!("van: {}\n", (0..n).map(|i| format!("van {i}")).collect::<Vec<_>>().join("; "));
        assert_eq!(check(&command, &prompts(256)), Ok(()));
        let e = check(&command, &prompts(257)).unwrap_err();
        assert!(e.contains("257 prompts to embed; a command may ask for at most 256"), "{e}");
        assert_eq!(check(&file, &prompts(257)), Ok(()), "a file may take longer to embed");

        // Example images are read from the board's files: a command may not name them.
        let e = check(&command, "cat\nmy car: a car; image:/etc/edgeclip/cars/\n").unwrap_err();
        assert!(
            e.contains("label 'my car' (line 2) names example images; a command may not make the daemon read files"),
            "{e}"
        );
        assert_eq!(check(&file, "cat\nmy car: a car; image:/etc/edgeclip/cars/\n"), Ok(()));
    }

    #[test]
    fn more_prompts_than_an_embeddings_file_holds_are_a_syntax_error() {
        let text = format!("van: {}\n", (0..1025).map(|i| format!("van {i}")).collect::<Vec<_>>().join("; "));
        let e = check(&LabelsOrigin::File("labels.txt".into()), &text).unwrap_err();
        assert!(e.contains("label 'van' has 1025 prompts; at most 1024 are accepted"), "{e}");
    }
}
