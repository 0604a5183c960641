//! `edgeclip events`: the event history of a board's store, newest first,
//! as a table or JSON lines, and exported with its snapshots (`--export`).

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context};
use serde::Serialize;

use super::HistoryFilterArgs;
use crate::config::Config;
use crate::search::request::format_time;
use crate::store::query::{Kind, StoredEvent};
use crate::store::Store;

/// `edgeclip events`' arguments.
#[derive(clap::Args, Debug, Clone)]
pub struct EventsArgs {
    /// The daemon's configuration: its store is read.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    #[command(flatten)]
    pub filter: HistoryFilterArgs,
    /// At most this many (the newest).
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub limit: usize,
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
    /// Write the events (events.jsonl) and their snapshots
    /// (event-ID.jpg) into this folder.
    #[arg(long, value_name = "DIR")]
    pub export: Option<PathBuf>,
}

/// One event as `--json` and `--export` write it.
#[derive(Serialize)]
struct EventLine<'a> {
    id: i64,
    camera: &'a str,
    zone: Option<&'a str>,
    label: &'a str,
    model: &'a str,
    start_time: String,
    end_time: Option<String>,
    start_frame: u64,
    end_frame: Option<u64>,
    score: f64,
    peak: f64,
    reason: Option<&'a str>,
    snapshot: bool,
    delivered: bool,
}

impl<'a> From<&'a StoredEvent> for EventLine<'a> {
    fn from(e: &'a StoredEvent) -> EventLine<'a> {
        let four = |x: f32| (f64::from(x) * 1e4).round() / 1e4;
        EventLine {
            id: e.id,
            camera: &e.camera,
            zone: e.zone.as_deref(),
            label: &e.label,
            model: &e.model,
            start_time: format_time(e.start),
            end_time: e.end.map(format_time),
            start_frame: e.start_frame,
            end_frame: e.end_frame,
            score: four(e.score),
            peak: four(e.peak),
            reason: e.reason.as_deref(),
            snapshot: e.snapshot,
            delivered: e.delivered,
        }
    }
}

/// `edgeclip events`: see the module documentation.
pub fn events(args: &EventsArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let config = Config::load(&args.config).map_err(|e| anyhow::anyhow!("{e}"))?;
    if !config.store.enabled {
        bail!("{}: store.enabled is false, so this node keeps no history", args.config.display());
    }
    let store = Store::open_read_only(&config.store.path)?;
    let events = store.events(&args.filter.filter()?, args.limit)?;
    if let Some(dir) = &args.export {
        std::fs::create_dir_all(dir).with_context(|| format!("--export '{}'", dir.display()))?;
        let mut lines = String::new();
        let mut pictures = 0;
        for e in &events {
            lines.push_str(&serde_json::to_string(&EventLine::from(e))?);
            lines.push('\n');
            if let Some(jpeg) = store.snapshot(Kind::Event, e.id)? {
                let path = dir.join(format!("event-{}.jpg", e.id));
                std::fs::write(&path, jpeg).with_context(|| format!("cannot write '{}'", path.display()))?;
                pictures += 1;
            }
        }
        let path = dir.join("events.jsonl");
        std::fs::write(&path, lines).with_context(|| format!("cannot write '{}'", path.display()))?;
        writeln!(out, "exported {} event(s) and {pictures} snapshot(s) to '{}'", events.len(), dir.display())?;
        return Ok(());
    }
    if args.json {
        for e in &events {
            writeln!(out, "{}", serde_json::to_string(&EventLine::from(e))?)?;
        }
        return Ok(());
    }
    writeln!(
        out,
        "{:>6}  {:<24} {:>8}  {:<16} {:<24} {:>6}  end",
        "id", "start", "seconds", "camera", "label", "peak"
    )?;
    for e in &events {
        let place = match &e.zone {
            Some(z) => format!("{}/{z}", e.camera),
            None => e.camera.clone(),
        };
        let seconds = e
            .end
            .and_then(|end| end.duration_since(e.start).ok())
            .map_or("-".into(), |d| format!("{:.1}", d.as_secs_f64()));
        let end = match (&e.reason, e.delivered) {
            (Some(r), true) => r.clone(),
            (Some(r), false) => format!("{r}, not delivered yet"),
            (None, _) => "active".into(),
        };
        writeln!(
            out,
            "{:>6}  {:<24} {:>8}  {:<16} {:<24} {:>6.3}  {end}",
            e.id,
            format_time(e.start),
            seconds,
            place,
            e.label,
            e.peak
        )?;
    }
    let (total, keyframes) = store.counts()?;
    writeln!(
        out,
        "({} shown; {total} events and {keyframes} keyframes in '{}')",
        events.len(),
        store.path().display()
    )?;
    Ok(())
}
