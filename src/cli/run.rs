//! `edgeclip run`: the daemon, with its configuration file; see
//! [`crate::daemon`].

use std::path::{Path, PathBuf};

use crate::config::Config;

/// `edgeclip run`'s arguments.
#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// The configuration file (TOML; `edgeclip print-config` shows every key).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
}

/// `edgeclip run`: the configuration first, then logging at its level
/// (`init_logging`), then the daemon until a signal. `cache_dir`, from
/// `--cache-dir`, replaces the configured cache folder.
pub fn daemon(args: &RunArgs, cache_dir: Option<&Path>, init_logging: fn(&str)) -> anyhow::Result<()> {
    // The message names the file, line and key; it is printed as it is,
    // with no cause after it.
    let mut config = Config::load(&args.config).map_err(|e| anyhow::anyhow!("{e}"))?;
    if let Some(dir) = cache_dir {
        config.model.cache_dir = dir.to_path_buf();
    }
    init_logging(&config.log_filter);
    crate::daemon::run(config, Some(Box::new(std::io::stdout())))
}
