//! The `edgeclip` command line: its parser and one module per subcommand.
//!
//! - `classify` ([`classify`]): the most likely labels of images or MJPEG frames.
//! - `eval` ([`eval`]): zero-shot top-1 accuracy on a labelled folder.
//! - `eval-events` ([`eval_events`]): a recording's events against its ground truth.
//! - `calibrate` ([`calibrate`](mod@calibrate)): thresholds from the scores a camera's scene gives its labels.
//! - `info` ([`info`]): what a model bundle holds and how tract runs it here.
//! - `bench` ([`bench`](mod@bench)): timings of preprocessing and the image encoder.
//! - `embed-labels` ([`embed_labels`]): a labels file to a `labels.emb`.
//! - `add-example` ([`add_example`]): a camera's current frame as a label's example image.
//! - `capture` ([`capture`]): frames from a source written as image files.
//! - `run` ([`run`](mod@run)): the daemon.
//! - `events` ([`events`](mod@events)): the event history of a board's store.
//! - `search` ([`search`](mod@search)): the history ranked against a text, an image or an event, on a board or a fleet.
//! - `check-config`, `print-config` ([`config`]): the daemon's configuration.
//! - `devices` ([`devices`]): the V4L2 cameras.
//! - `tokenize` ([`tokenize`]): CLIP token ids of texts.
//!
//! Each module declares its arguments with clap's derive, so that the help
//! text is the doc comment beside the field, and has a function that takes
//! them and writers for its output: the binary only parses and calls [`run()`],
//! and tests call the same functions. Options that several subcommands share
//! are declared once ([`ModelArgs`]) and flattened where they are used.
//! Errors carry the cause in one line; the binary prints them with `{:#}`.

pub mod add_example;
pub mod bench;
pub mod calibrate;
pub mod capture;
pub mod classify;
pub mod config;
pub mod devices;
pub mod embed_labels;
pub mod eval;
pub mod eval_events;
pub mod events;
pub mod info;
pub mod run;
pub mod search;
pub mod tokenize;

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::model::bundle::Bundle;
use crate::model::encode::{EncoderOptions, ImageEncoder};

/// Where `--model` points when it is not given: the bundled demo model,
/// relative to the working directory, so that it is found both in the
/// repository and in /usr/share/edgeclip, where the package installs it. The
/// daemon's configuration has its own default, an absolute path: a service
/// does not choose its working directory.
pub const DEMO_MODEL_RELATIVE: &str = "models/tiny-shapes";

/// Level of the logs on stderr for every subcommand but `run`, whose
/// configuration sets it: warnings only, so that a command's output stays
/// its own.
const COMMAND_LOG_FILTER: &str = "warn";

/// The `edgeclip` command line.
#[derive(Parser)]
#[command(name = "edgeclip", version, about = "Zero-shot CLIP detections from a camera, published over MQTT")]
pub struct Cli {
    /// Where label embeddings computed on this machine are cached (default:
    /// $EDGECLIP_CACHE_DIR, else $XDG_CACHE_HOME/edgeclip, else ~/.cache/edgeclip).
    #[arg(long, global = true, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands; each variant's doc comment is its line in `edgeclip --help`.
#[derive(Subcommand)]
pub enum Command {
    /// Print the most likely labels for each image.
    Classify(classify::ClassifyArgs),
    // Not a doc comment: rustdoc would read `<label>` as an HTML tag.
    #[command(about = "Zero-shot top-1 accuracy on a labelled folder (DATA/<label>/<image>.png)")]
    Eval(eval::EvalArgs),
    /// Replay a recording through a configured camera's pipeline and score its events against the truth.
    EvalEvents(eval_events::EvalEventsArgs),
    /// Replay footage of a camera's scene and propose each label's threshold from its scores.
    Calibrate(calibrate::CalibrateArgs),
    /// Describe a model bundle and how tract runs it on this CPU.
    Info(info::InfoArgs),
    /// Time preprocessing of a 640x480 frame and the image encoder (JSON lines).
    Bench(bench::BenchArgs),
    /// Embed a labels file (its texts and example images) and write a labels.emb.
    EmbedLabels(embed_labels::EmbedLabelsArgs),
    /// Ask the running daemon to save a camera's current frame as an example image of a label.
    AddExample(add_example::AddExampleArgs),
    /// Write frames from a camera or a recording as image files, for checking a source.
    Capture(capture::CaptureArgs),
    /// Run the daemon: watch the configured cameras and publish detections over MQTT.
    Run(run::RunArgs),
    /// The event history of a board's store, newest first (or exported)
    Events(events::EventsArgs),
    /// The event history ranked by likeness to a text, an image or an event
    Search(search::SearchArgs),
    /// Check a configuration file: every mistake is reported with its file, line and key.
    CheckConfig(config::CheckConfigArgs),
    /// Print the documented default configuration (boards/edgeclip.toml).
    PrintConfig,
    /// Hash a password for web.password_hash (read from the first line of standard input).
    HashPassword,
    /// List the V4L2 capture devices (cameras): stable names, driver, formats, sizes, rates.
    Devices,
    /// Print the CLIP token ids of each text, as the text encoder reads them.
    Tokenize(tokenize::TokenizeArgs),
}

/// A configured camera and footage of its scene, for the subcommands that
/// replay footage through the camera's pipeline (`eval-events`, `calibrate`).
#[derive(clap::Args, Debug, Clone)]
pub struct CameraFootageArgs {
    /// The daemon's configuration file.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// The camera whose zones, labels and settings are used.
    #[arg(long, value_name = "NAME")]
    pub camera: String,
    /// The footage: a recording, a Motion-JPEG file or a folder of images
    /// ('file:PATH' or a path; `calibrate --minutes` takes any source);
    /// default: the camera's own source.
    #[arg(long, value_name = "SPEC")]
    pub source: Option<String>,
}

/// The model options of every subcommand that loads a bundle.
/// Which part of a store's history `events` and `search` look at.
#[derive(clap::Args, Debug, Clone)]
pub struct HistoryFilterArgs {
    /// Only this camera's.
    #[arg(long, value_name = "NAME")]
    pub camera: Option<String>,
    /// Only this zone's.
    #[arg(long, value_name = "NAME")]
    pub zone: Option<String>,
    /// Only from this time on (RFC 3339, e.g. 2026-12-07T08:00:00Z).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only before this time.
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
}

impl HistoryFilterArgs {
    /// The store's filter (any model); an unreadable time is an error
    /// naming its option.
    pub fn filter(&self) -> anyhow::Result<crate::store::query::Filter> {
        let time = |key: &str, t: &Option<String>| {
            t.as_deref()
                .map(|t| crate::search::request::parse_time(&format!("--{key}"), t))
                .transpose()
                .map_err(anyhow::Error::msg)
        };
        Ok(crate::store::query::Filter {
            camera: self.camera.clone(),
            zone: self.zone.clone(),
            since: time("since", &self.since)?,
            until: time("until", &self.until)?,
            model: None,
        })
    }
}

#[derive(clap::Args, Debug, Clone)]
pub struct ModelArgs {
    /// Model bundle directory.
    #[arg(long = "model", value_name = "MODEL", default_value = DEMO_MODEL_RELATIVE)]
    pub bundle: PathBuf,
    /// Threads for matrix multiplication.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
}

impl ModelArgs {
    /// How to load the encoders: these threads, constant chains folded.
    pub fn encoder_options(&self) -> EncoderOptions {
        EncoderOptions { threads: self.threads, ..Default::default() }
    }

    /// The bundle and its image encoder, loaded with `options`.
    fn load_image_encoder(&self, options: &EncoderOptions) -> anyhow::Result<(Bundle, Arc<ImageEncoder>)> {
        let bundle = Bundle::load(&self.bundle)?;
        let encoder = ImageEncoder::load(&bundle, options)?;
        Ok((bundle, Arc::new(encoder)))
    }
}

/// Runs the parsed command line, writing its output to `out` and per-input
/// errors to `err`. `init_logging` sets up the logs at the level it is given:
/// at once for a one-shot command, and for `run` once its configuration has
/// said which.
pub fn run(cli: Cli, init_logging: fn(&str), out: &mut dyn Write, err: &mut dyn Write) -> anyhow::Result<()> {
    if let Command::Run(args) = &cli.command {
        return run::daemon(args, cli.cache_dir.as_deref(), init_logging);
    }
    init_logging(COMMAND_LOG_FILTER);
    if let Some(dir) = &cli.cache_dir {
        // One source of truth for the cache location (labelset::default_cache_dir);
        // set before any thread starts.
        std::env::set_var("EDGECLIP_CACHE_DIR", dir);
    }
    match &cli.command {
        Command::Classify(args) => classify::classify(args, out, err),
        Command::Eval(args) => eval::eval(args, out, err),
        Command::EvalEvents(args) => eval_events::eval_events(args, out),
        Command::Calibrate(args) => calibrate::calibrate(args, out),
        Command::Info(args) => info::info(args, out),
        Command::Bench(args) => bench::bench(args, out),
        Command::EmbedLabels(args) => embed_labels::embed_labels(args, out, err),
        Command::AddExample(args) => add_example::add_example(args, out),
        Command::Capture(args) => capture::capture(args, out),
        Command::Run(_) => unreachable!("handled above"),
        Command::Events(args) => events::events(args, out),
        Command::Search(args) => search::search(args, out),
        Command::CheckConfig(args) => config::check_config(args, out),
        Command::PrintConfig => config::print_config(out),
        Command::HashPassword => config::hash_password(&mut std::io::stdin().lock(), out),
        Command::Devices => devices::devices(out),
        Command::Tokenize(args) => tokenize::tokenize(args, out),
    }
}

/// A duration in milliseconds, as the commands print them.
fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    /// clap's own checks of the declarations (no two options with one name,
    /// defaults that parse), which otherwise run only when a subcommand is used.
    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn model_options_default_to_the_demo_model_on_one_thread() {
        let cli = Cli::try_parse_from(["edgeclip", "info"]).unwrap();
        let Command::Info(info) = cli.command else { panic!("not info") };
        assert_eq!(info.model.bundle, PathBuf::from(DEMO_MODEL_RELATIVE));
        assert_eq!(info.model.threads, 1);
    }
}
