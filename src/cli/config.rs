//! `edgeclip check-config` and `edgeclip print-config`: the daemon's
//! configuration file, checked with what it would run, or its documented
//! default.

use std::io::Write;
use std::path::PathBuf;

use crate::config::{Broker, Config, DEFAULT_CONFIG};

/// `edgeclip check-config`'s arguments.
#[derive(clap::Args, Debug, Clone)]
pub struct CheckConfigArgs {
    /// The configuration file (TOML).
    pub file: PathBuf,
}

/// `edgeclip check-config`: validates a configuration file and summarizes
/// what the daemon would run; the error names the file, line and key.
pub fn check_config(args: &CheckConfigArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let path = &args.file;
    let config = Config::load(path)?;
    let broker = match &config.mqtt.broker {
        Broker::Embedded { listen } => format!("embedded broker on {listen}"),
        Broker::External { host, port, tls } => format!("{}://{host}:{port}", if *tls { "mqtts" } else { "mqtt" }),
    };
    writeln!(out, "{}: ok", path.display())?;
    writeln!(out, "  node      {} (topics under {}/{}/)", config.node, config.mqtt.topic_prefix, config.node)?;
    writeln!(out, "  model     {} ({} threads)", config.model.path.display(), config.model.threads)?;
    writeln!(out, "  mqtt      {broker}, client id '{}', QoS {}", config.mqtt.client_id, config.mqtt.qos)?;
    for c in &config.cameras {
        let motion = if c.motion.is_some() { "motion gate on" } else { "motion gate off" };
        let rate = c.max_fps.map_or("every frame".to_string(), |f| format!("at most {f} inferences/s"));
        let state = if c.enabled { "" } else { " (disabled)" };
        writeln!(out, "  camera    {}{state}: {}, labels {}, {rate}, {motion}", c.name, c.source, c.labels.display())?;
    }
    Ok(())
}

/// `edgeclip print-config`: the documented default configuration, as shipped
/// (boards/edgeclip.toml).
pub fn print_config(out: &mut dyn Write) -> anyhow::Result<()> {
    out.write_all(DEFAULT_CONFIG.as_bytes())?;
    Ok(())
}
