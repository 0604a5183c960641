//! `edgeclip add-example`: asks the running daemon, over its MQTT broker, to
//! save a camera's current frame (or a zone of it) as an example image of a
//! label, and prints what it did. It sends the same `example/set` command
//! anyone on the broker may send, so the daemon must listen to commands
//! (`mqtt.commands = true`); the label's line must name an example folder.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

use crate::config::Config;
use crate::eval::pipeline::find_camera;
use crate::publish::mqtt::request::request;
use crate::publish::payloads::ExampleResultPayload;
use crate::publish::topics::Topics;

/// `edgeclip add-example`'s arguments.
#[derive(clap::Args, Debug, Clone)]
pub struct AddExampleArgs {
    /// The daemon's configuration file (TOML): its broker, login and topics.
    #[arg(long)]
    pub config: PathBuf,
    /// The camera (default: the configuration's only camera).
    #[arg(long)]
    pub camera: Option<String>,
    /// The zone of the camera the label belongs to (required on a camera
    /// with zones).
    #[arg(long)]
    pub zone: Option<String>,
    /// Seconds to wait for the daemon's answer.
    #[arg(long, default_value_t = 30)]
    pub timeout: u64,
    /// The label the frame is an example of.
    pub label: String,
}

/// `edgeclip add-example`: sends `example/set` and waits for the daemon's
/// answer on `<camera>/example`; an error if no example was saved.
pub fn add_example(args: &AddExampleArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let config = Config::load(&args.config)?;
    if !config.mqtt.commands {
        anyhow::bail!(
            "'{}' has mqtt.commands = false, so the daemon does not listen to commands; set it to true (and restart the daemon) to add examples",
            args.config.display()
        );
    }
    let camera = match &args.camera {
        Some(name) => find_camera(&config, name, &args.config)?,
        None => match &config.cameras[..] {
            [only] => only,
            cameras => anyhow::bail!(
                "'{}' has {} cameras; say which with --camera ({})",
                args.config.display(),
                cameras.len(),
                cameras.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
            ),
        },
    };
    let topics = Topics::new(&config.mqtt.topic_prefix, &config.node);
    let payload = match &args.zone {
        Some(zone) => format!("{zone}/{}", args.label),
        None => args.label.clone(),
    };
    let client_id = format!("{}-add-example-{}", config.mqtt.client_id, std::process::id());
    let reply = request(
        &config.mqtt,
        &client_id,
        &topics.example_set(&camera.name),
        payload.into_bytes(),
        &topics.example_result(&camera.name),
        Duration::from_secs(args.timeout),
        |bytes| {
            serde_json::from_slice::<ExampleResultPayload>(bytes)
                .is_ok_and(|r| r.label == args.label && r.zone == args.zone)
        },
    )
    .map_err(|e| anyhow::anyhow!(e))
    .context("add-example")?;
    let result: ExampleResultPayload = serde_json::from_slice(&reply)?;
    let place = match &result.zone {
        Some(zone) => format!("camera '{}', zone '{zone}'", result.camera),
        None => format!("camera '{}'", result.camera),
    };
    match (result.error, result.saved) {
        (None, Some(saved)) => {
            writeln!(
                out,
                "{place}: saved '{saved}', example {} of label '{}'; the labels are embedded again now",
                result.examples.unwrap_or_default(),
                result.label
            )?;
            Ok(())
        }
        (error, _) => anyhow::bail!("{place}: {}", error.unwrap_or_else(|| "no example saved".into())),
    }
}
