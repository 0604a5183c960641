//! `edgeclip check-config` and `edgeclip print-config`: the daemon's
//! configuration file, checked with what it would run, or its documented
//! default.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;

use crate::config::{Broker, Config, DEFAULT_CONFIG};
use crate::daemon::camera_labels::{check_for_camera, LabelsOrigin};
use crate::labels::resolve::LabelOptions;
use crate::model::bundle::Bundle;
use crate::model::encode::EncoderOptions;

/// `edgeclip check-config`'s arguments.
#[derive(clap::Args, Debug, Clone)]
pub struct CheckConfigArgs {
    /// The configuration file (TOML).
    pub file: PathBuf,
    /// Check the file alone, not the model and labels files it names: for a
    /// configuration written for another machine.
    #[arg(long)]
    pub file_only: bool,
}

/// `edgeclip check-config`: validates a configuration file, the model
/// bundle it names (its manifest and files, with their sums) and every
/// camera's (and zone's) labels file, and summarizes what the daemon would run; the
/// error names the file, line and key.
pub fn check_config(args: &CheckConfigArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let path = &args.file;
    let config = Config::load(path)?;
    if !args.file_only {
        let bundle = Bundle::load(&config.model.path)
            .with_context(|| format!("model.path '{}'", config.model.path.display()))?;
        let options =
            LabelOptions { cache_dir: None, encoder: EncoderOptions::default(), templates: None, ..Default::default() };
        for c in &config.cameras {
            for zone in &c.zones {
                let place = match &zone.name {
                    Some(z) => format!("camera '{}', zone '{z}'", c.name),
                    None => format!("camera '{}'", c.name),
                };
                let mut labels = crate::labels::file::read(&zone.labels).with_context(|| place.clone())?;
                check_for_camera(&LabelsOrigin::File(zone.labels.clone()), &labels, &bundle.label_templates, &options)
                    .with_context(|| place.clone())?;
                // Every example image is there and readable (decoding waits
                // for the daemon's embedding).
                crate::labels::examples::expand(&mut labels, &zone.labels, Some(zone.rect)).with_context(|| place)?;
            }
        }
    }
    let broker = match &config.mqtt.broker {
        Broker::Embedded { listen, users: None } => format!("embedded broker on {listen}, open to anyone there"),
        Broker::Embedded { listen, users: Some(users) } => {
            format!("embedded broker on {listen}, {} user(s) with passwords", users.len())
        }
        Broker::External { host, port, tls } => format!("{}://{host}:{port}", if *tls { "mqtts" } else { "mqtt" }),
    };
    writeln!(out, "{}: ok", path.display())?;
    writeln!(out, "  node      {} (topics under {}/{}/)", config.node, config.mqtt.topic_prefix, config.node)?;
    writeln!(out, "  model     {} ({} threads)", config.model.path.display(), config.model.threads)?;
    writeln!(
        out,
        "  mqtt      {broker}, client id '{}', QoS {}, command topics {}",
        config.mqtt.client_id,
        config.mqtt.qos,
        if config.mqtt.commands { "on" } else { "off" }
    )?;
    for c in &config.cameras {
        let motion = if c.motion.is_some() { "motion gate on" } else { "motion gate off" };
        let rate = c.max_fps.map_or("every frame".to_string(), |f| format!("at most {f} inferences/s"));
        let state = if c.enabled { "" } else { " (disabled)" };
        writeln!(out, "  camera    {}{state}: {}, labels {}, {rate}, {motion}", c.name, c.source, c.labels.display())?;
        for zone in c.zones.iter().filter(|z| z.name.is_some()) {
            let r = zone.rect;
            writeln!(
                out,
                "    zone    {}: [{}, {}, {}, {}], labels {}, threshold {}",
                zone.name.as_deref().unwrap_or_default(),
                r.x0,
                r.y0,
                r.x1,
                r.y1,
                zone.labels.display(),
                zone.threshold
            )?;
        }
    }
    Ok(())
}

/// `edgeclip print-config`: the documented default configuration, as shipped
/// (boards/edgeclip.toml).
pub fn print_config(out: &mut dyn Write) -> anyhow::Result<()> {
    out.write_all(DEFAULT_CONFIG.as_bytes())?;
    Ok(())
}

/// `edgeclip hash-password`: the Argon2id hash of the password on the
/// first line of `input`, for `web.password_hash`. Read from standard input
/// so that the password is in no shell history or process list:
/// `edgeclip hash-password` and type it, or pipe it from a password manager.
pub fn hash_password(input: &mut dyn std::io::BufRead, out: &mut dyn Write) -> anyhow::Result<()> {
    let mut line = String::new();
    input.read_line(&mut line)?;
    let password = line.trim_end_matches(['\r', '\n']);
    if password.chars().count() < MIN_PASSWORD_CHARS {
        anyhow::bail!(
            "the password is {} characters long; the page's password needs at least {MIN_PASSWORD_CHARS}",
            password.chars().count()
        );
    }
    let hash = crate::web::password::hash(password).map_err(|e| anyhow::anyhow!("{e}"))?;
    writeln!(out, "{hash}")?;
    Ok(())
}

/// The shortest password `hash-password` takes: the page may face a
/// network, and guessing is limited but not stopped (5 tries a minute).
const MIN_PASSWORD_CHARS: usize = 10;
