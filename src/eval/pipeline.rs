//! The daemon's per-frame pipeline for one camera of a configuration, built
//! as the daemon builds it (its zones, their labels and thresholds, the
//! detector, the motion gate and `max_fps`), for the commands that replay
//! footage through it: `eval-events` and `calibrate`.

use std::path::PathBuf;
use std::sync::Arc;

use crate::config::{CameraConfig, Config};
use crate::daemon::camera_labels::{CameraLabels, LabelsOrigin};
use crate::labels::resolve::LabelOptions;
use crate::model::bundle::Bundle;
use crate::model::encode::{EncoderOptions, ImageEncoder};
use crate::pipeline::classify::Classifier;
use crate::pipeline::inference::{Inference, InferenceOptions, ZoneSetup};

/// One zone's labels as loaded (the whole frame's for a camera without zones).
pub struct ZoneLabels {
    pub name: Option<String>,
    pub labels_file: PathBuf,
    pub labels: CameraLabels,
}

/// A camera's pipeline and what it was built from.
pub struct CameraPipeline {
    pub bundle: Bundle,
    pub inference: Inference,
    /// In the configuration's zone order, as [`Inference::inferred_scores`] numbers them.
    pub zones: Vec<ZoneLabels>,
}

/// Builds `cam`'s pipeline: the model of `config`, each zone's labels
/// embedded (the label cache is `$EDGECLIP_CACHE_DIR`, else the model's
/// `cache_dir`), no GPIO input (footage has no sensor beside it).
pub fn camera_pipeline(config: &Config, cam: &CameraConfig) -> anyhow::Result<CameraPipeline> {
    let encoder_options = EncoderOptions { threads: config.model.threads, fold_constants: true };
    let bundle = Bundle::load(&config.model.path)
        .map_err(|e| anyhow::anyhow!("model.path '{}': {e}", config.model.path.display()))?;
    let encoder = Arc::new(ImageEncoder::load(&bundle, &encoder_options)?);
    let cache_dir = std::env::var_os("EDGECLIP_CACHE_DIR").map(PathBuf::from).unwrap_or(config.model.cache_dir.clone());
    let label_options = LabelOptions {
        cache_dir: Some(cache_dir),
        encoder: encoder_options,
        templates: None,
        zone: None,
        image_encoder: Some(Arc::clone(&encoder)),
    };
    let mut zones = Vec::new();
    let mut setups = Vec::new();
    for zone in &cam.zones {
        let text = crate::labels::file::read_text(&zone.labels)?;
        let origin = LabelsOrigin::File(zone.labels.clone());
        let options = LabelOptions { zone: Some(zone.rect), ..label_options.clone() };
        let (labels, _) = CameraLabels::load(&bundle, origin, &text, zone.threshold, &options)?;
        setups.push(ZoneSetup {
            name: zone.name.clone(),
            rect: zone.rect,
            matcher: labels.matcher.clone(),
            labels: labels.detector.clone(),
        });
        zones.push(ZoneLabels { name: zone.name.clone(), labels_file: zone.labels.clone(), labels });
    }
    let classifier = Classifier::new(&bundle, &encoder, setups[0].matcher.clone())?;
    let options = InferenceOptions { detector: cam.detector, motion: cam.motion, max_fps: cam.max_fps };
    let inference = Inference::new(classifier, setups, options, None, bundle.image.size);
    Ok(CameraPipeline { bundle, inference, zones })
}

/// The camera named `name` in `config`, or an error listing its cameras.
pub fn find_camera<'a>(config: &'a Config, name: &str, file: &std::path::Path) -> anyhow::Result<&'a CameraConfig> {
    config.cameras.iter().find(|c| c.name == name).ok_or_else(|| {
        let names: Vec<&str> = config.cameras.iter().map(|c| c.name.as_str()).collect();
        anyhow::anyhow!("no camera '{name}' in '{}'; its cameras: {}", file.display(), names.join(", "))
    })
}
