//! `[model]`: which model bundle the daemon runs, on how many threads, and
//! where it caches label embeddings.

use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Ctx, Key, Number};

const TABLE: &str = "model";

/// `path`: the model bundle folder the daemon runs (`models/FORMAT.md` in
/// the source tree), by default the demo model as packaged. Not the CLI's
/// `--model` default, which is relative to the working directory.
const MODEL_PATH: Key<&str> = Key { name: "path", default: "/usr/share/edgeclip/models/tiny-shapes" };
/// Threads for the image encoder's matrix multiplications, shared by all
/// cameras. 2 suits the smallest boards and leaves a core of a Pi 4 or 5 for
/// the rest; at least one, and 64 is more cores than any board it runs on.
const THREADS: Number<i64> = Number { name: "threads", default: 2, range: 1..=64 };
/// Where label embeddings computed on this board are cached, so that a
/// restart does not embed the same labels again.
const CACHE_DIR: Key<&str> = Key { name: "cache_dir", default: "/var/cache/edgeclip" };

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawModel {
    path: Option<Spanned<String>>,
    threads: Option<Spanned<i64>>,
    cache_dir: Option<Spanned<String>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    pub path: PathBuf,
    pub threads: usize,
    pub cache_dir: PathBuf,
}

pub(super) fn parse(cx: &Ctx<'_>, raw: Option<&RawModel>) -> Result<ModelConfig, ConfigError> {
    let none = RawModel::default();
    let raw = raw.unwrap_or(&none);
    let path = |key: &Key<&str>, value: Option<&Spanned<String>>| match value {
        Some(p) => cx.path_value(&super::key(TABLE, key.name), p),
        None => Ok(PathBuf::from(key.default)),
    };
    Ok(ModelConfig {
        path: path(&MODEL_PATH, raw.path.as_ref())?,
        threads: THREADS.read(cx, TABLE, raw.threads.as_ref())? as usize,
        cache_dir: path(&CACHE_DIR, raw.cache_dir.as_ref())?,
    })
}
