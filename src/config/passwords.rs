//! Passwords kept out of the configuration file: read from a file of their
//! own (chmod 600) or from an environment variable (for a service, an
//! `Environment=` or `EnvironmentFile=` line of its unit), since the
//! configuration itself is readable by every user of the board. The MQTT
//! login and RTSP cameras' passwords come this way.

use std::path::Path;

use toml::Spanned;

use super::{ConfigError, Ctx};
use crate::util::file::read_small_file;

/// The largest password or users file: thousands of users' lines.
pub(super) const MAX_SECRET_FILE_BYTES: u64 = 1024 * 1024;

/// The password named by `<table>.password_file` or `<table>.password_env`
/// (at most one of them): a file's first line, or the variable's value.
pub(super) fn password(
    cx: &Ctx,
    table: &str,
    file: Option<&Spanned<String>>,
    env: Option<&Spanned<String>>,
) -> Result<Option<String>, ConfigError> {
    let (file_key, env_key) = (format!("{table}.password_file"), format!("{table}.password_env"));
    match (file, env) {
        (Some(f), Some(_)) => Err(cx.invalid(&file_key, f, format!("and '{env_key}' are both set; keep one"))),
        (Some(f), None) => {
            let path = cx.path_value(&file_key, f)?;
            let text = read_small_file(&path, MAX_SECRET_FILE_BYTES)
                .map_err(|e| cx.invalid(&file_key, f, format!("cannot read '{}': {e}", path.display())))?;
            warn_if_others_can_read(&path);
            Ok(Some(text.lines().next().unwrap_or("").to_string()))
        }
        (None, Some(v)) => Ok(Some(std::env::var(v.get_ref()).map_err(|_| {
            cx.invalid(
                &env_key,
                v,
                format!(
                    "the environment variable '{}' is not set (for a service: an Environment= or EnvironmentFile= line in its unit)",
                    v.get_ref()
                ),
            )
        })?)),
        (None, None) => Ok(None),
    }
}

/// A file of passwords that others than its owner and group can read is
/// logged as a warning (not refused: it may be on purpose, as for a demo).
pub(super) fn warn_if_others_can_read(file: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(file) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o007 != 0 {
            tracing::warn!(
                "'{}' holds passwords and can be read by every user of this machine (mode {mode:o}); \
                 chmod 600 it (or 640 with the service's group)",
                file.display()
            );
        }
    }
}
