//! `edgeclip search`: the event history ranked against a text, an image or
//! a stored event ([`crate::search`]), on this board (`--config`: its store
//! and model) or across every board on a broker (`--broker`: each node
//! searches its own and the replies are merged by score).

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context};
use serde::Serialize;

use super::HistoryFilterArgs;
use crate::config::Config;
use crate::model::bundle::Bundle;
use crate::model::encode::EncoderOptions;
use crate::publish::topics::Topics;
use crate::search::fleet::{self, BrokerAddress};
use crate::search::request::{SearchRequest, DEFAULT_LIMIT, MAX_LIMIT};
use crate::search::{Hit, Query, Search, Searcher};
use crate::store::query::Kind;
use crate::store::Store;

/// `edgeclip search`'s arguments.
#[derive(clap::Args, Debug, Clone)]
pub struct SearchArgs {
    /// What to look for, in words ("a red van").
    #[arg(value_name = "TEXT", required_unless_present_any = ["like", "image"])]
    pub text: Option<String>,
    /// The daemon's configuration: search its store with its model.
    #[arg(long, value_name = "FILE", required_unless_present = "broker")]
    pub config: Option<PathBuf>,
    /// Search every node on this broker instead (`mqtt://HOST[:PORT]`); the
    /// password, if any, is read from $EDGECLIP_MQTT_PASSWORD.
    #[arg(long, value_name = "URL", conflicts_with_all = ["config", "like", "image"])]
    pub broker: Option<String>,
    /// With --broker: the login.
    #[arg(long, value_name = "NAME", requires = "broker")]
    pub username: Option<String>,
    /// With --broker: the nodes' mqtt.topic_prefix.
    #[arg(long, value_name = "PREFIX", default_value = "edgeclip", requires = "broker")]
    pub topic_prefix: String,
    /// With --broker: how long to wait for the nodes' answers, in seconds.
    #[arg(long, value_name = "S", default_value_t = crate::search::DEFAULT_DEADLINE.as_secs_f64(), requires = "broker")]
    pub deadline: f64,
    /// Events like this one (an event id, from `edgeclip events` or an
    /// event message).
    #[arg(long, value_name = "EVENT_ID", conflicts_with_all = ["text", "image"])]
    pub like: Option<i64>,
    /// Events and keyframes like this image (PNG or JPEG).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["text", "like"])]
    pub image: Option<PathBuf>,
    #[command(flatten)]
    pub filter: HistoryFilterArgs,
    /// How many results.
    #[arg(long, value_name = "K", default_value_t = DEFAULT_LIMIT)]
    pub limit: usize,
    /// Events only, no keyframes.
    #[arg(long)]
    pub events_only: bool,
    /// The results as JSON lines, one hit each (and, with --broker, a last
    /// line naming the nodes that did not answer).
    #[arg(long)]
    pub json: bool,
}

/// The last JSON line of a fleet search.
#[derive(Serialize)]
struct FleetSummary<'a> {
    answered: Vec<&'a str>,
    silent: &'a [String],
}

/// `edgeclip search`: see the module documentation.
pub fn search(args: &SearchArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    if args.limit == 0 || args.limit > MAX_LIMIT {
        bail!("--limit {} is out of range; accepted: 1 to {MAX_LIMIT}", args.limit);
    }
    // Checked here, also for --broker, where each node reads them again.
    let filter = args.filter.filter()?;
    if let Some(url) = &args.broker {
        return fleet_search(args, url, out);
    }
    let config_path = args.config.as_ref().expect("clap requires --config without --broker");
    let config = Config::load(config_path).map_err(|e| anyhow::anyhow!("{e}"))?;
    if !config.store.enabled {
        bail!("{}: store.enabled is false, so this node keeps no history to search", config_path.display());
    }
    let store = Store::open_read_only(&config.store.path)?;
    let bundle = Arc::new(
        Bundle::load(&config.model.path).with_context(|| format!("model.path '{}'", config.model.path.display()))?,
    );
    let query = match (&args.text, args.like, &args.image) {
        (_, Some(id), _) => Query::Like(Kind::Event, id),
        (_, _, Some(image)) => Query::Image(image.clone()),
        (Some(text), _, _) => Query::Text(text.clone()),
        _ => unreachable!("clap requires one of them"),
    };
    let topics = Topics::new(&config.mqtt.topic_prefix, &config.node);
    let options = EncoderOptions { threads: config.model.threads, fold_constants: true };
    let mut searcher = Searcher::new(bundle, options, &config.node, topics, None);
    let search = Search { query, filter, limit: args.limit, keyframes: !args.events_only };
    let (hits, searched) = searcher.search(&store, &search)?;
    print_hits(&hits, args.json, out)?;
    if !args.json {
        writeln!(out, "({} ranked: the events and keyframes of model '{}' in the store)", searched, searcher.model())?;
    }
    Ok(())
}

fn fleet_search(args: &SearchArgs, url: &str, out: &mut dyn Write) -> anyhow::Result<()> {
    let Some(text) = &args.text else { bail!("--broker searches by text only: give the text to look for") };
    let mut broker = BrokerAddress::parse(url).map_err(anyhow::Error::msg)?;
    broker.username = args.username.clone();
    broker.password = std::env::var("EDGECLIP_MQTT_PASSWORD").ok();
    if !(args.deadline > 0.0 && args.deadline <= 600.0) {
        bail!("--deadline {} is out of range; accepted: more than 0 to 600 seconds", args.deadline);
    }
    let request = SearchRequest {
        id: request_id(),
        text: Some(text.clone()),
        camera: args.filter.camera.clone(),
        zone: args.filter.zone.clone(),
        since: args.filter.since.clone(),
        until: args.filter.until.clone(),
        limit: Some(args.limit),
        keyframes: Some(!args.events_only),
        ..SearchRequest::default()
    };
    let result = fleet::search(&broker, &args.topic_prefix, &request, Duration::from_secs_f64(args.deadline))
        .map_err(anyhow::Error::msg)?;
    print_hits(&result.hits, args.json, out)?;
    let answered: Vec<&str> = result.replies.iter().map(|r| r.node.as_str()).collect();
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&FleetSummary { answered, silent: &result.silent })?)?;
    } else {
        writeln!(out, "answered: {}", if answered.is_empty() { "no node".to_string() } else { answered.join(", ") })?;
        for reply in result.replies.iter().filter(|r| r.error.is_some()) {
            writeln!(out, "node '{}' could not search: {}", reply.node, reply.error.as_deref().unwrap_or(""))?;
        }
        for node in &result.silent {
            writeln!(
                out,
                "no answer from node '{node}' within {} s (online, but busy, stopped, or not searchable)",
                args.deadline
            )?;
        }
    }
    Ok(())
}

/// A request id unique enough for one broker: the time and the process.
fn request_id() -> String {
    let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{:x}-{:x}", nanos, std::process::id())
}

fn print_hits(hits: &[Hit], json: bool, out: &mut dyn Write) -> anyhow::Result<()> {
    if json {
        for hit in hits {
            writeln!(out, "{}", serde_json::to_string(hit)?)?;
        }
        return Ok(());
    }
    if hits.is_empty() {
        writeln!(out, "nothing found")?;
        return Ok(());
    }
    writeln!(out, "{:>7}  {:<10} {:<9} {:>6}  {:<24} {:<16} label", "score", "node", "kind", "id", "time", "camera")?;
    for h in hits {
        let place = match &h.zone {
            Some(z) => format!("{}/{z}", h.camera),
            None => h.camera.clone(),
        };
        writeln!(
            out,
            "{:>7.4}  {:<10} {:<9} {:>6}  {:<24} {:<16} {}",
            h.score,
            h.node,
            h.kind.as_str(),
            h.id,
            h.time,
            place,
            h.label.as_deref().unwrap_or("-")
        )?;
    }
    Ok(())
}
