//! The `edgeclip` binary: parses the command line, sets up logging and calls
//! the library ([`edgeclip::cli`]). Everything worth testing lives in the
//! library.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use edgeclip::cli::Cli;

/// Logs go to stderr (the journal, under systemd). `EDGECLIP_LOG` overrides
/// the level; without it, commands log warnings and `run` what its
/// configuration's `logging.level` says (`default`).
fn init_logging(default: &str) {
    use std::io::IsTerminal;
    let filter = std::env::var("EDGECLIP_LOG").ok().filter(|f| !f.trim().is_empty()).unwrap_or_else(|| default.into());
    let filter = edgeclip::publish::broker::quiet_broker_logs(&filter);
    // Colours for a person at a terminal, plain text for the journal.
    let ansi = std::io::stderr().is_terminal();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&filter).unwrap_or_else(|_| default.into()))
        // One line per record, whatever text from outside a record quotes.
        .with_writer(edgeclip::util::untrusted::SafeLog { ansi })
        .with_ansi(ansi)
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Not locked: the daemon's threads write their events to stdout too.
    let mut out = std::io::stdout();
    let result = edgeclip::cli::run(cli, init_logging, &mut out, &mut std::io::stderr());
    let _ = out.flush();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
