//! The `edgeclip` binary: parses the command line, sets up logging and calls
//! the library. Everything worth testing lives in the library.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use edgeclip::commands;

/// Where `--model` points when it is not given: the bundled demo model,
/// relative to the working directory (the repository, or /usr/share/edgeclip
/// once packaged).
const DEFAULT_MODEL: &str = "models/tiny-shapes";

#[derive(Parser)]
#[command(name = "edgeclip", version, about = "Zero-shot CLIP detections from a camera, published over MQTT")]
struct Cli {
    /// Where label embeddings computed on this machine are cached (default:
    /// $EDGECLIP_CACHE_DIR, else $XDG_CACHE_HOME/edgeclip, else ~/.cache/edgeclip).
    #[arg(long, global = true, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the most likely labels for each image.
    Classify {
        /// Model bundle directory.
        #[arg(long, default_value = DEFAULT_MODEL)]
        model: PathBuf,
        /// Labels file or a .emb file. Default: the bundle's own labels. Labels not in the
        /// bundle's labels.emb are embedded with its text encoder and cached.
        #[arg(long)]
        labels: Option<PathBuf>,
        /// How many labels to print per image (1 to 16).
        #[arg(long, default_value_t = 5)]
        top: usize,
        /// One JSON object per image instead of text.
        #[arg(long)]
        json: bool,
        /// Also print the L2-normalized image embedding.
        #[arg(long)]
        embedding: bool,
        /// Threads for matrix multiplication.
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// Skip folding the constant chains tract leaves unfolded (slower; for checking).
        #[arg(long)]
        no_fold: bool,
        /// Of an MJPEG stream, classify every Nth frame (frames 0, N, 2N, ...).
        #[arg(long, default_value_t = 1)]
        every: usize,
        /// Images to classify (PNG or JPEG), or Motion-JPEG streams (.mjpeg, .mjpg), whose
        /// frames are reported as FILE#FRAME.
        #[arg(required = true)]
        images: Vec<PathBuf>,
    },
    /// Zero-shot top-1 accuracy on a labelled folder (DATA/<label>/<image>.png).
    Eval {
        #[arg(long, default_value = DEFAULT_MODEL)]
        model: PathBuf,
        /// Labels file or .emb file; default: DATA/labels.txt if there is one, else the
        /// bundle's own labels.
        #[arg(long)]
        labels: Option<PathBuf>,
        /// The labelled folder: one sub-folder per label, named as the label.
        #[arg(long)]
        data: PathBuf,
        /// The report as one JSON object.
        #[arg(long)]
        json: bool,
        #[arg(long, default_value_t = 1)]
        threads: usize,
    },
    /// Describe a model bundle and how tract runs it on this CPU.
    Info {
        #[arg(long, default_value = DEFAULT_MODEL)]
        model: PathBuf,
        #[arg(long, default_value_t = 1)]
        threads: usize,
    },
    /// Time preprocessing of a 640x480 frame and the image encoder (JSON lines).
    Bench {
        #[arg(long, default_value = DEFAULT_MODEL)]
        model: PathBuf,
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// Skip folding the constant chains tract leaves unfolded (for comparison).
        #[arg(long)]
        no_fold: bool,
        #[arg(long, default_value_t = 20)]
        iters: usize,
        #[arg(long, default_value_t = 3)]
        warmup: usize,
        /// Also print the encoder's time per operator (lines starting with #).
        #[arg(long)]
        profile: bool,
    },
    /// Embed a labels file with the bundle's text encoder and write a labels.emb.
    EmbedLabels {
        #[arg(long, default_value = DEFAULT_MODEL)]
        model: PathBuf,
        /// The labels file.
        labels: PathBuf,
        /// Where to write (default: the labels file with the extension .emb).
        #[arg(short, long)]
        output: Option<PathBuf>,
        #[arg(long, default_value_t = 1)]
        threads: usize,
    },
    /// Write frames from a camera or a recording as image files, for checking a source.
    Capture {
        /// v4l2:/dev/video0[?format=MJPG,YUYV&size=1280x720&fps=15], exec:COMMAND,
        /// file:PATH[?fps=10&loop], or a path to a device, MJPEG file or image folder.
        #[arg(long, value_name = "SPEC")]
        source: edgeclip::capture::SourceSpec,
        /// How many frames to write.
        #[arg(long, default_value_t = 10)]
        frames: u64,
        /// Folder to write frame-NNNNNN.jpg (a camera's JPEG as it came) or .png files to.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Write every frame as the RGB image edgeclip converts it to (PNG).
        #[arg(long)]
        rgb: bool,
    },
    /// Run the daemon: watch the configured cameras and publish detections over MQTT.
    Run {
        /// The configuration file (TOML; `edgeclip print-config` shows every key).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Check a configuration file: every mistake is reported with its file, line and key.
    CheckConfig {
        /// The configuration file (TOML).
        file: PathBuf,
    },
    /// Print the documented default configuration (boards/edgeclip.toml).
    PrintConfig,
    /// List the V4L2 capture devices (cameras): stable names, driver, formats, sizes, rates.
    Devices,
    /// Print the CLIP token ids of each text, as the text encoder reads them.
    Tokenize {
        /// One JSON object per text (with the cleaned text and the padded ids).
        #[arg(long)]
        json: bool,
        /// The texts (quote each prompt).
        #[arg(required = true)]
        texts: Vec<String>,
    },
}

/// Logs go to stderr (the journal, under systemd). `EDGECLIP_LOG` overrides
/// the level; without it, commands log warnings and `run` what its
/// configuration's `logging.level` says.
fn init_logging(default: &str) {
    use std::io::IsTerminal;
    let filter = std::env::var("EDGECLIP_LOG").ok().filter(|f| !f.trim().is_empty()).unwrap_or_else(|| default.into());
    let filter = edgeclip::publish::broker::quiet_broker_logs(&filter);
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&filter).unwrap_or_else(|_| default.into()))
        .with_writer(std::io::stderr)
        // Colours for a person at a terminal, plain text for the journal.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Run { config } = &cli.command {
        return run(config, cli.cache_dir.as_deref());
    }
    init_logging("warn");
    if let Some(dir) = &cli.cache_dir {
        // One source of truth for the cache location (labelset::default_cache_dir);
        // set before any thread starts.
        std::env::set_var("EDGECLIP_CACHE_DIR", dir);
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let result = match cli.command {
        Command::Classify { model, labels, top, json, embedding, threads, no_fold, every, images } => {
            let args = commands::ClassifyArgs { model, labels, top, json, embedding, threads, no_fold, every, images };
            commands::classify(&args, &mut out, &mut std::io::stderr())
        }
        Command::Eval { model, labels, data, json, threads } => {
            let args = commands::EvalArgs { model, labels, data, json, threads };
            commands::eval(&args, &mut out, &mut std::io::stderr())
        }
        Command::Info { model, threads } => commands::info(&model, threads, &mut out),
        Command::Bench { model, threads, no_fold, iters, warmup, profile } => {
            let args = commands::BenchArgs { model, threads, fold: !no_fold, iters, warmup, profile };
            commands::bench(&args, &mut out)
        }
        Command::EmbedLabels { model, labels, output, threads } => {
            commands::embed_labels(&model, &labels, output.as_deref(), threads, &mut out, &mut std::io::stderr())
        }
        Command::Devices => edgeclip::capture::v4l2::list_devices(&mut out),
        Command::Tokenize { json, texts } => commands::tokenize(&texts, json, &mut out),
        Command::CheckConfig { file } => commands::check_config(&file, &mut out),
        Command::Run { .. } => unreachable!("handled above"),
        Command::PrintConfig => out.write_all(edgeclip::config::DEFAULT_CONFIG.as_bytes()).map_err(Into::into),
        Command::Capture { source, frames, out: out_dir, rgb } => {
            commands::capture(&commands::CaptureArgs { source, frames, out_dir, rgb }, &mut out)
        }
    };
    let _ = out.flush();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `edgeclip run`: the configuration first (its errors name file, line and
/// key), then logging at its level, then the daemon until a signal.
fn run(path: &std::path::Path, cache_dir: Option<&std::path::Path>) -> ExitCode {
    let mut config = match edgeclip::config::Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(dir) = cache_dir {
        config.model.cache_dir = dir.to_path_buf();
    }
    init_logging(&config.log_filter);
    match edgeclip::daemon::run(config, Some(Box::new(std::io::stdout()))) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
