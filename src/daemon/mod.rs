//! `edgeclip run`: the daemon. It loads the model once, starts a capture
//! and an inference thread per camera ([`camera`]), the MQTT client (and,
//! with `broker = "embedded"`, a broker), and then runs the main loop on the
//! calling thread:
//!
//! - events from the inference threads are committed to the event history
//!   ([`history`], `[store]`) and become MQTT messages
//!   ([`crate::publish::publisher`]); the history's outbox feeds the MQTT
//!   client and hears of each acknowledgement, and a thread of its own
//!   answers searches over MQTT;
//! - command topics switch cameras on and off, replace their labels, and
//!   save the current frame as a label's example image ([`examples`]);
//! - labels files are watched, and SIGHUP reloads them
//!   ([`crate::labels::watch`]); a camera's labels become its matcher and
//!   its detector's labels ([`camera_labels`]);
//! - stats are published every `mqtt.stats_interval_s` ([`stats`]);
//! - GPIO outputs follow their camera's events ([`crate::gpio`]), set to their
//!   safe level before any camera starts and again at the end;
//! - SIGTERM or SIGINT ([`signals`]), or every recording having ended with
//!   `exit_when_done`, stops it: active events end and are published,
//!   `offline` is published, the MQTT queue is flushed for a bounded time,
//!   and `run` returns (exit status 0);
//! - a panic on any thread ([`panics`]) stops it the same way, and `run`
//!   returns an error (exit status 1), so that systemd restarts it.
//!
//! Nothing on this thread waits on a camera or the network: the MQTT client
//! queues, and label sets are embedded on threads of their own.

pub mod camera;
pub mod camera_labels;
pub mod examples;
pub mod history;
pub mod live;
pub mod notify;
pub mod panics;
pub mod signals;
pub mod stats;

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::capture::SourceSpec;
use crate::config::{Broker, CameraConfig, Config};
use crate::gpio::input::InputGate;
use crate::gpio::output::EventOutput;
use crate::gpio::{AnyInputPin, AnyOutputPin, LabelFilter};
use crate::labels::resolve::{LabelOptions, ResolveReport};
use crate::labels::watch::{self, FileWatch};
use crate::model::bundle::Bundle;
use crate::model::encode::{EncoderOptions, ImageEncoder};
use crate::pipeline::inference::InferenceOptions;
use crate::publish::discovery::Discovery;
use crate::publish::mqtt::{Incoming, MqttClient};
use crate::publish::payloads::{ExampleResultPayload, Switch};
use crate::publish::publisher::Publisher;
use crate::publish::topics::{CommandTopic, Topics};
use camera_labels::{CameraLabels, LabelsOrigin, MAX_COMMAND_LABELS_BYTES};

use crate::util::log_limit::{also, LogLimit};
use crate::util::untrusted::untrusted;
use camera::{camera_span, Camera, CameraReport, InferenceSetup};
use examples::{ExampleRequest, PendingExample};
use stats::{CameraView, CommandCounts, StatsReporter};

/// How long the main loop waits for an event before it does its periodic
/// work; bounds how late a signal or a command is acted on.
const TICK: Duration = Duration::from_millis(50);

/// At shutdown, the inference threads finish the frame they are inferring
/// and report their last events (an active event ends with reason
/// `stopped`; a camera that has not finished loses that end, and its state
/// stays ON). A frame takes milliseconds with a small model, but seconds
/// with a ViT-B/32 on a Pi Zero 2 W or under an emulator: after
/// `STOP_CAMERAS_NOTICE` the wait is logged, and it is given up after
/// `STOP_CAMERAS_AT_MOST`. Then the MQTT client gets `FLUSH_MQTT_WITHIN` to
/// deliver what is queued. With a fast model that is well under the 5 s
/// that `docker stop` waits before it kills; boards/edgeclip.service gives
/// systemd's stop 15 s, above the worst case (12.5 s).
const STOP_CAMERAS_NOTICE: Duration = Duration::from_millis(2000);
const STOP_CAMERAS_AT_MOST: Duration = Duration::from_millis(10_000);
const FLUSH_MQTT_WITHIN: Duration = Duration::from_millis(2500);

/// How often the web page's stats are made: its status page refreshes
/// this often, and the rates in it are over this interval.
const WEB_STATS_EVERY: Duration = Duration::from_secs(2);

/// A camera whose inference thread has not gone round its loop for this
/// long is stalled, and the systemd watchdog is no longer fed. The longest
/// legitimate pause is one frame's inference: seconds for a ViT-B/32 on a Pi
/// Zero 2 W; a minute is far beyond it and still brings a wedged board back
/// within two (the unit's `WatchdogSec=60s` on top).
pub const STALLED_AFTER: Duration = Duration::from_secs(60);

/// Where `run` prints events when `logging.print_events` is set.
pub type EventSink = Box<dyn Write + Send>;

/// One camera as the main loop manages it.
struct Managed {
    config: CameraConfig,
    camera: Camera,
    /// GPIO lines following this camera's events (driven from the main
    /// loop, which sees every event in order).
    gpio_outputs: Vec<EventOutput<AnyOutputPin>>,
    /// Per zone, in the configuration's order, its labels file's watch and
    /// loading state.
    zones: Vec<ZoneLabels>,
    finished: bool,
}

/// A zone's label set as the main loop keeps it current.
struct ZoneLabels {
    watch: FileWatch,
    /// A label set being embedded now, and the newest request that came
    /// meanwhile (it starts when the current one is done; older ones are
    /// superseded).
    loading: bool,
    next_load: Option<(LabelsOrigin, String)>,
}

/// A label set embedded on a worker thread, for a camera's zone (its index).
struct Loaded {
    camera: String,
    zone: usize,
    result: anyhow::Result<(CameraLabels, ResolveReport)>,
}

struct Daemon {
    config: Config,
    bundle: Arc<Bundle>,
    label_options: LabelOptions,
    mqtt: MqttClient,
    publisher: Publisher,
    cameras: BTreeMap<String, Managed>,
    loaded_tx: Sender<Loaded>,
    loaded_rx: Receiver<Loaded>,
    stats: StatsReporter,
    notifier: notify::Notifier,
    /// When the watchdog was last fed, and the camera found stalled (logged
    /// once per stall).
    watchdog_fed: Instant,
    stalled: Option<String>,
    commands: CommandCounts,
    /// `example/set` commands waiting for their camera's next frame.
    pending_examples: Vec<PendingExample>,
    next_example_id: u64,
    /// Refused commands, logged at a bounded rate.
    command_log: LogLimit,
    /// The event history (`[store]`), and the thread that answers searches.
    history: Option<history::History>,
    search: Option<history::SearchService>,
    /// The web page (`[web]`): what it is told, what it asks, and the stats
    /// made for it (apart from the MQTT ones, whose intervals they would
    /// change).
    web_view: Arc<crate::web::DaemonView>,
    web_commands: Option<Receiver<crate::web::WebCommand>>,
    web_stats: Option<(StatsReporter, Instant)>,
}

/// Runs the daemon until a signal (or the end of every recording with
/// `exit_when_done`). Errors are start-up failures: a model that does not
/// load, a labels file with a mistake, a camera setting, a TLS file, a
/// taken broker address.
pub fn run(config: Config, print: Option<EventSink>) -> anyhow::Result<()> {
    let signals = signals::Signals::install().context("cannot install the signal handlers")?;
    panics::install();
    let started = Instant::now();

    // GPIO first: outputs go to their safe level as early as possible, and
    // a line that cannot be had stops the start before the model loads.
    let mut gpio = Vec::new();
    for cam in &config.cameras {
        let _span = camera_span(&cam.name).entered();
        gpio.push(open_gpio(cam).with_context(|| format!("camera '{}'", cam.name))?);
    }

    let encoder_options = EncoderOptions { threads: config.model.threads, fold_constants: true };
    let bundle = Arc::new(
        Bundle::load(&config.model.path).with_context(|| format!("model.path '{}'", config.model.path.display()))?,
    );
    let encoder = Arc::new(ImageEncoder::load(&bundle, &encoder_options)?);
    let label_options = LabelOptions {
        cache_dir: Some(config.model.cache_dir.clone()),
        encoder: encoder_options.clone(),
        templates: None,
        zone: None,
        image_encoder: Some(Arc::clone(&encoder)),
    };
    tracing::info!(
        "edgeclip {}: node '{}', model '{}' ({}), {} camera(s)",
        env!("CARGO_PKG_VERSION"),
        config.node,
        bundle.name,
        bundle.dir.display(),
        config.cameras.len()
    );

    // The history before anything can happen that it should keep: a store
    // that cannot be opened stops the start with its path.
    let history = if config.store.enabled {
        let h = history::History::open(&config.store, &bundle.name)?;
        tracing::info!("event history in '{}'", h.path().display());
        Some(h)
    } else {
        None
    };

    // Every camera's (and zone's) labels before anything is published: a
    // mistake in one stops the start with its file and line.
    let mut initial = Vec::new();
    for cam in &config.cameras {
        let mut zones = Vec::new();
        for zone in &cam.zones {
            let place = match &zone.name {
                Some(z) => format!("camera '{}', zone '{z}'", cam.name),
                None => format!("camera '{}'", cam.name),
            };
            let (text, hash) = watch::read_with_hash(&zone.labels).with_context(|| place.clone())?;
            let origin = LabelsOrigin::File(zone.labels.clone());
            let options = LabelOptions { zone: Some(zone.rect), ..label_options.clone() };
            let (active, report) =
                CameraLabels::load(&bundle, origin, &text, zone.threshold, &options).with_context(|| place)?;
            let _span = camera_span(&cam.name).entered();
            log_loaded(zone.name.as_deref(), &active, &report);
            zones.push((active, hash));
        }
        initial.push(zones);
    }
    for ((cam, (outputs, _)), zones) in config.cameras.iter().zip(&gpio).zip(&initial) {
        let _span = camera_span(&cam.name).entered();
        let sets: Vec<&CameraLabels> = zones.iter().map(|(active, _)| active).collect();
        warn_unfollowed_labels(outputs, &sets);
    }

    // Runs until the process exits. With users, the daemon logs in to it as
    // one more, made at random for this run.
    let mut mqtt_config = config.mqtt.clone();
    let _broker = match &config.mqtt.broker {
        Broker::Embedded { listen, users } => {
            let mut users = users.clone();
            let mut own = None;
            if let Some(users) = &mut users {
                let login = (format!("edgeclip-daemon-{}", random_hex(4)?), random_hex(16)?);
                users.push(login.clone());
                (mqtt_config.username, mqtt_config.password) = (Some(login.0.clone()), Some(login.1.clone()));
                own = Some(login);
            }
            Some(crate::publish::broker::start_embedded_broker(*listen, users.as_deref(), own.as_ref())?)
        }
        Broker::External { .. } => None,
    };
    let topics = Topics::new(&config.mqtt.topic_prefix, &config.node);
    let discovery = config.homeassistant.enabled.then(|| {
        let mut d = Discovery::new(&config.homeassistant.discovery_prefix, &config.node, &bundle.name, topics.clone());
        d.score_sensors = config.homeassistant.score_sensors;
        d
    });
    let mut subscriptions = Vec::new();
    if config.mqtt.commands {
        subscriptions.push(topics.commands_filter());
    }
    if let Some(d) = &discovery {
        subscriptions.push(d.status_topic());
    }
    let searchable = history.is_some() && config.store.mqtt_search;
    if searchable {
        subscriptions.extend([topics.search_fleet(), topics.search_node(), topics.snapshot_get()]);
    }
    let mqtt = MqttClient::start(&mqtt_config, topics.availability(), subscriptions)?;
    let search = match &history {
        Some(h) if searchable => Some(history::SearchService::start(
            h.path(),
            Arc::clone(&bundle),
            encoder_options,
            Arc::clone(&encoder),
            &config.node,
            topics.clone(),
            mqtt.publisher(),
        )?),
        _ => None,
    };
    let publisher =
        Publisher::new(topics, discovery, &config.node, &bundle.name, if config.print_events { print } else { None });

    let (report_tx, report_rx) = mpsc::channel();
    let (loaded_tx, loaded_rx) = mpsc::channel();
    let mut daemon = Daemon {
        bundle: Arc::clone(&bundle),
        label_options,
        mqtt,
        publisher,
        cameras: BTreeMap::new(),
        loaded_tx,
        loaded_rx,
        stats: StatsReporter::new(&config.node, &bundle.name, started),
        notifier: notify::Notifier::from_env(),
        watchdog_fed: Instant::now(),
        stalled: None,
        commands: CommandCounts::default(),
        pending_examples: Vec::new(),
        next_example_id: 0,
        // A person trying commands sees each of a few; a flood is counted.
        command_log: LogLimit::with_burst(5),
        history,
        search,
        web_view: Arc::new(crate::web::DaemonView::default()),
        web_commands: None,
        web_stats: config
            .web
            .enabled
            .then(|| (StatsReporter::for_page(&config.node, &bundle.name, started), Instant::now())),
        config: config.clone(),
    };
    // `report_tx` lives as long as the main loop: cameras whose recordings
    // ended do not stop a daemon that still serves MQTT commands.
    for ((cam, zones), lines) in config.cameras.iter().zip(initial).zip(gpio) {
        daemon.start_camera(cam, zones, lines, &encoder, &report_tx)?;
    }

    // The page once the cameras run: it shows them.
    let _web = if config.web.enabled { Some(daemon.start_web(&encoder)?) } else { None };

    daemon.notifier.notify(&format!("READY=1\nSTATUS=running {} camera(s)", daemon.cameras.len()));
    daemon.main_loop(&signals, &report_rx);
    daemon.notifier.notify("STOPPING=1");
    drop(report_tx);
    daemon.shutdown(&report_rx);
    match panics::first() {
        Some(panic) => Err(anyhow::anyhow!("{panic}; stopped so that the service manager restarts edgeclip")),
        None => Ok(()),
    }
}

/// A stats message from `reporter` (the MQTT one, or the web page's).
fn stats_of(
    reporter: &mut StatsReporter,
    cameras: &BTreeMap<String, Managed>,
    mqtt: &MqttClient,
    commands: &CommandCounts,
    search: Option<&history::SearchService>,
    history: Option<&history::History>,
) -> crate::publish::payloads::Stats {
    let views = cameras.iter().map(|(name, c)| CameraView {
        name,
        shared: &c.camera.shared,
        running: !c.finished,
        outputs: &c.gpio_outputs,
        input: c.config.input.as_ref(),
    });
    let mut stats = reporter.report(&mqtt.stats(), commands, views);
    let searches = search.map_or(0, history::SearchService::answered);
    stats.store = history.map(|h| h.stats(searches));
    stats
}

/// `bytes` random bytes from the kernel, as hex.
fn random_hex(bytes: usize) -> anyhow::Result<String> {
    let mut buf = vec![0u8; bytes];
    crate::util::file::random_bytes(&mut buf)
        .context("cannot read /dev/urandom for the embedded broker's own login")?;
    Ok(crate::model::bundle::hex(&buf))
}

/// A camera's GPIO lines: its outputs, at their safe level, and its input.
type CameraGpio = (Vec<EventOutput<AnyOutputPin>>, Option<InputGate<AnyInputPin>>);

fn open_gpio(cam: &CameraConfig) -> anyhow::Result<CameraGpio> {
    let mut outputs = Vec::new();
    for (i, output) in cam.outputs.iter().enumerate() {
        let what = format!("outputs[{i}] ({})", output.line);
        // Requested at its inactive level: electrically high when active is low.
        let pin = crate::gpio::open_output(&output.line, output.active_low).context(what.clone())?;
        let name = format!("GPIO output {}", output.line);
        let output = EventOutput::new(pin, output.clone(), name)
            .map_err(|e| anyhow::anyhow!("{what}: cannot set its inactive level: {e}"))?;
        tracing::info!(
            "{}: follows {} ({}{})",
            output.name(),
            describe_labels(&output.config().labels),
            output.config().mode,
            if output.config().active_low { ", active low" } else { "" }
        );
        outputs.push(output);
    }
    let input = match &cam.input {
        Some(input) => {
            let pin = crate::gpio::open_input(&input.line).with_context(|| format!("input ({})", input.line))?;
            let name = format!("GPIO input {}", input.line);
            tracing::info!(
                "{name}: gates inference (hold {} s{})",
                input.hold.as_secs_f64(),
                if input.active_low { ", active low" } else { "" }
            );
            Some(InputGate::new(pin, input, name))
        }
        None => None,
    };
    Ok((outputs, input))
}

fn describe_labels(labels: &LabelFilter) -> String {
    match labels {
        LabelFilter::Any => "every label".to_string(),
        LabelFilter::Only(names) => names.iter().map(|n| format!("'{n}'")).collect::<Vec<_>>().join(", "),
    }
}

/// Warns about output labels that none of the camera's label sets (one per
/// zone) has (a typo, or a label since removed): such an output never goes
/// active.
fn warn_unfollowed_labels(outputs: &[EventOutput<AnyOutputPin>], sets: &[&CameraLabels]) {
    let positive: Vec<&str> = sets.iter().flat_map(|s| s.positive_names()).collect();
    let origins: Vec<String> = sets.iter().map(|s| s.origin.to_string()).collect();
    for output in outputs {
        let LabelFilter::Only(names) = &output.config().labels else { continue };
        for name in names.iter().filter(|n| !positive.contains(&n.as_str())) {
            tracing::warn!(
                "its GPIO output {} follows '{name}', which is not one of its labels that \
                 can fire ({}; a '!' label never does); it will not go active for it",
                output.config().line,
                origins.join(", ")
            );
        }
    }
}

fn log_loaded(zone: Option<&str>, active: &CameraLabels, report: &ResolveReport) {
    tracing::info!(
        "{}{} labels from {} ({} from the bundle, {} from the cache, {} embedded now){}",
        zone.map(|z| format!("zone '{z}': ")).unwrap_or_default(),
        active.detector.len(),
        active.origin,
        report.from_bundle,
        report.from_cache,
        report.embedded,
        match report.example_images {
            0 => String::new(),
            n => format!(", with {n} example images"),
        }
    );
}

impl Daemon {
    fn start_camera(
        &mut self,
        cam: &CameraConfig,
        zones: Vec<(CameraLabels, [u8; 32])>,
        (outputs, input): CameraGpio,
        encoder: &Arc<ImageEncoder>,
        out: &Sender<CameraReport>,
    ) -> anyhow::Result<()> {
        let source = cam.source.open_lazy().with_context(|| format!("camera '{}': source {}", cam.name, cam.source))?;
        // A recording without a frame rate is replayed as fast as it is
        // inferred, every frame of it.
        let wait_for_inference = matches!(&cam.source, SourceSpec::File(f) if f.fps.is_none());
        let positive: Vec<Vec<String>> =
            zones.iter().map(|(active, _)| active.positive_names().map(String::from).collect()).collect();
        let (actives, hashes): (Vec<CameraLabels>, Vec<[u8; 32]>) = zones.into_iter().unzip();
        let setup = InferenceSetup {
            bundle: Arc::clone(&self.bundle),
            encoder: Arc::clone(encoder),
            options: InferenceOptions { detector: cam.detector, motion: cam.motion, max_fps: cam.max_fps },
            zones: cam.zones.clone(),
            input,
            scores_interval: self.config.mqtt.scores_interval,
            keyframes: match &self.history {
                Some(_) => self.config.store.keyframe_interval.map(|every| (every, self.config.store.snapshots)),
                None => None,
            },
            live: self.config.web.enabled.then_some((self.config.web.score_history, self.config.web.frame_interval)),
            out: out.clone(),
        };
        let camera =
            Camera::start(&cam.name, source, cam.source.to_string(), cam.enabled, actives, setup, wait_for_inference)?;
        let p = &self.publisher;
        p.enabled(&self.mqtt, &cam.name, cam.enabled);
        for (zone, positive) in cam.zones.iter().zip(&positive) {
            let z = zone.name.as_deref();
            p.all_off(&self.mqtt, &cam.name, z, positive.iter().map(String::as_str));
            p.discovery_for(&self.mqtt, &cam.name, z, positive.iter().map(String::as_str));
        }
        camera_span(&cam.name)
            .in_scope(|| tracing::info!("{} ({})", cam.source, if cam.enabled { "enabled" } else { "disabled" }));
        self.cameras.insert(
            cam.name.clone(),
            Managed {
                config: cam.clone(),
                camera,
                gpio_outputs: outputs,
                zones: cam
                    .zones
                    .iter()
                    .zip(hashes)
                    .map(|(zone, hash)| ZoneLabels {
                        watch: FileWatch::new(zone.labels.clone(), hash),
                        loading: false,
                        next_load: None,
                    })
                    .collect(),
                finished: false,
            },
        );
        Ok(())
    }

    fn main_loop(&mut self, signals: &signals::Signals, reports: &Receiver<CameraReport>) {
        let mut next_poll = Instant::now() + watch::POLL_INTERVAL;
        loop {
            if signals.stop_requested() {
                tracing::info!("stopping: signal received");
                return;
            }
            if let Some(panic) = panics::first() {
                tracing::error!("stopping: {panic}");
                return;
            }
            if self.config.exit_when_done && self.cameras.values().all(|c| c.finished) {
                tracing::info!("stopping: every camera's source has ended (exit_when_done)");
                return;
            }
            match reports.recv_timeout(TICK) {
                Ok(report) => self.handle_camera_report(report),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {}
            }
            while let Ok(report) = reports.try_recv() {
                self.handle_camera_report(report);
            }
            while let Ok(loaded) = self.loaded_rx.try_recv() {
                self.apply_loaded(loaded);
            }
            while let Ok(msg) = self.mqtt.incoming().try_recv() {
                self.handle_incoming(msg);
            }
            let web: Vec<crate::web::WebCommand> =
                self.web_commands.as_ref().map(|rx| rx.try_iter().collect()).unwrap_or_default();
            for command in web {
                self.handle_web(command);
            }
            self.web_stats();
            let now = Instant::now();
            for (name, c) in &mut self.cameras {
                let _span = camera_span(name).entered();
                c.gpio_outputs.iter_mut().for_each(|o| o.tick(now));
            }
            let reload_all = signals.take_reload();
            if reload_all {
                tracing::info!("SIGHUP: reloading every labels file");
            }
            if reload_all || Instant::now() >= next_poll {
                next_poll = Instant::now() + watch::POLL_INTERVAL;
                self.poll_labels_files(reload_all);
            }
            self.expire_examples();
            if let Some(h) = &mut self.history {
                h.delivered(&self.mqtt.take_delivered());
                h.feed(|m| self.mqtt.publish(m));
                h.tick();
            }
            if self.stats.since_last() >= self.config.mqtt.stats_interval {
                self.publish_stats();
            }
            self.feed_watchdog();
        }
    }

    /// Feeds systemd's watchdog, when it is on and due, if every running
    /// camera's inference thread is alive; a stalled one is logged (once)
    /// and the watchdog starves, so that systemd restarts the daemon.
    fn feed_watchdog(&mut self) {
        let Some(every) = self.notifier.watchdog_every() else { return };
        if self.watchdog_fed.elapsed() < every {
            return;
        }
        let stalled = self.cameras.iter().find_map(|(name, c)| {
            let quiet = c.camera.shared.heartbeat.lock().unwrap_or_else(|e| e.into_inner()).elapsed();
            (!c.finished && quiet >= crate::util::fault::stall_limit(STALLED_AFTER)).then(|| (name.clone(), quiet))
        });
        match stalled {
            None => {
                self.notifier.notify("WATCHDOG=1");
                self.watchdog_fed = Instant::now();
                self.stalled = None;
            }
            Some((name, quiet)) => {
                if self.stalled.as_ref() != Some(&name) {
                    camera_span(&name).in_scope(|| {
                        tracing::error!(
                            "its inference thread has made no progress for {} s; no longer feeding the systemd watchdog, which will restart edgeclip",
                            quiet.as_secs()
                        )
                    });
                    self.notifier.notify(&format!("STATUS=camera '{name}' stalled"));
                    self.stalled = Some(name);
                }
            }
        }
    }

    /// Publishes a camera's events and drives its GPIO outputs with them, or
    /// notes that its inference thread has ended.
    fn handle_camera_report(&mut self, report: CameraReport) {
        match report {
            CameraReport::Events { camera, events, snapshots, embeddings, frame_time } => {
                let _span = camera_span(&camera).entered();
                for e in &events {
                    let snapshot = snapshots.iter().find(|(zone, _)| *zone == e.zone).map(|(_, jpeg)| jpeg.as_slice());
                    let embedding = embeddings.iter().find(|(zone, _)| *zone == e.zone).map(|(_, v)| v.as_slice());
                    // Committed to the store first, then published.
                    let message = match &mut self.history {
                        Some(h) => h.record(&self.publisher, &camera, e, snapshot, embedding, frame_time),
                        None => Some(self.publisher.unstored_event(&camera, e, frame_time)),
                    };
                    self.publisher.event(&self.mqtt, &camera, e, snapshot, frame_time, message);
                    self.web_view.event(&camera, e, frame_time);
                }
                if let Some(c) = self.cameras.get_mut(&camera) {
                    let now = Instant::now();
                    for line in &mut c.gpio_outputs {
                        events.iter().for_each(|e| line.event(e, now));
                    }
                }
            }
            CameraReport::Keyframe { camera, zone, frame, frame_time, embedding, snapshot } => {
                if let Some(h) = &mut self.history {
                    h.keyframe(&camera, zone.as_deref(), frame, frame_time, &embedding, snapshot.as_deref());
                }
            }
            CameraReport::Scores(scores) => self.publisher.scores(&self.mqtt, &scores),
            CameraReport::Example { camera, id, frame, frame_time, jpeg } => {
                let Some(ix) = self.pending_examples.iter().position(|p| p.id == id) else { return };
                let pending = self.pending_examples.remove(ix);
                let _span = camera_span(&camera).entered();
                let saved = jpeg.and_then(|jpeg| examples::save(&pending.folder, &jpeg, frame_time, frame));
                let result = match saved {
                    Ok((path, count)) => {
                        tracing::info!(
                            "saved frame {frame} as example {count} of label '{}' in '{}'",
                            pending.label,
                            path.display()
                        );
                        self.reload_labels_file(&camera, &pending.labels_file);
                        Ok((path, count))
                    }
                    Err(e) => {
                        tracing::warn!("example/set for label '{}': {e}", pending.label);
                        Err(e)
                    }
                };
                if let Some(reply) = &pending.reply {
                    let _ = reply.send(result.clone());
                }
                self.publish_example_result(&pending.camera, pending.zone_name, &pending.label, result);
            }
            CameraReport::Finished { camera, source_ended } => {
                if let Some(c) = self.cameras.get_mut(&camera) {
                    c.finished = true;
                }
                if source_ended {
                    camera_span(&camera).in_scope(|| tracing::info!("its source has ended"));
                }
            }
        }
    }

    fn poll_labels_files(&mut self, force: bool) {
        let mut requests = Vec::new();
        for (name, c) in &mut self.cameras {
            for (i, zone) in c.zones.iter_mut().enumerate() {
                match zone.watch.poll(force) {
                    Some(Ok(text)) => {
                        requests.push((name.clone(), i, LabelsOrigin::File(zone.watch.path.clone()), text));
                    }
                    Some(Err(e)) => camera_span(name).in_scope(|| tracing::error!("{e}; keeping the current labels")),
                    None => {}
                }
            }
        }
        for (camera, zone, origin, text) in requests {
            self.request_load(&camera, zone, origin, text);
        }
    }

    /// Embeds a label set for a camera's zone on a worker thread (one at a
    /// time per zone).
    fn request_load(&mut self, camera: &str, zone: usize, origin: LabelsOrigin, text: String) {
        let Some(c) = self.cameras.get_mut(camera) else { return };
        let z = &mut c.zones[zone];
        if z.loading {
            z.next_load = Some((origin, text));
            return;
        }
        z.loading = true;
        let options = LabelOptions { zone: Some(c.config.zones[zone].rect), ..self.label_options.clone() };
        let (bundle, tx) = (Arc::clone(&self.bundle), self.loaded_tx.clone());
        let (name, threshold) = (camera.to_string(), c.config.zones[zone].threshold);
        let spawned = std::thread::Builder::new().name(format!("labels-{camera}")).spawn(move || {
            let result = CameraLabels::load(&bundle, origin, &text, threshold, &options);
            let _ = tx.send(Loaded { camera: name, zone, result });
        });
        if let Err(e) = spawned {
            camera_span(camera).in_scope(|| tracing::error!("cannot start loading labels: {e}"));
            z.loading = false;
        }
    }

    fn apply_loaded(&mut self, loaded: Loaded) {
        let Some(c) = self.cameras.get_mut(&loaded.camera) else { return };
        let z = &mut c.zones[loaded.zone];
        z.loading = false;
        let next = z.next_load.take();
        let zone_name = c.config.zones[loaded.zone].name.clone();
        let span = camera_span(&loaded.camera).entered();
        match loaded.result {
            Ok((active, report)) => {
                log_loaded(zone_name.as_deref(), &active, &report);
                let new: Vec<String> = active.positive_names().map(String::from).collect();
                let old = c.camera.shared.set_labels(loaded.zone, active);
                let sets: Vec<Arc<CameraLabels>> = (0..c.zones.len()).map(|i| c.camera.shared.labels(i)).collect();
                warn_unfollowed_labels(&c.gpio_outputs, &sets.iter().map(Arc::as_ref).collect::<Vec<_>>());
                let new_refs: Vec<&str> = new.iter().map(String::as_str).collect();
                self.publisher.labels_changed(
                    &self.mqtt,
                    &loaded.camera,
                    zone_name.as_deref(),
                    old.positive_names(),
                    &new_refs,
                );
            }
            Err(e) => {
                tracing::error!("{e:#}; keeping the labels from {}", c.camera.shared.labels(loaded.zone).origin)
            }
        }
        drop(span);
        if let Some((origin, text)) = next {
            self.request_load(&loaded.camera, loaded.zone, origin, text);
        }
    }

    fn handle_incoming(&mut self, msg: Incoming) {
        if let Some(d) = &self.publisher.discovery {
            if msg.topic == d.status_topic() {
                if msg.payload.trim_ascii().eq_ignore_ascii_case(b"online") {
                    tracing::info!("Home Assistant is online: publishing discovery again");
                    for (name, c) in &self.cameras {
                        for (i, zone) in c.config.zones.iter().enumerate() {
                            let labels = c.camera.shared.labels(i);
                            self.publisher.discovery_for(
                                &self.mqtt,
                                name,
                                zone.name.as_deref(),
                                labels.positive_names(),
                            );
                        }
                    }
                }
                return;
            }
        }
        if let Some(search) = &self.search {
            let t = &self.publisher.topics;
            if msg.topic == t.search_fleet() || msg.topic == t.search_node() || msg.topic == t.snapshot_get() {
                if let Err(why) = search.submit(t, &self.mqtt, &msg.topic, &msg.payload) {
                    self.commands.refused += 1;
                    if let Some(n) = self.command_log.check() {
                        tracing::warn!("MQTT request on '{}' refused: {why}{}", untrusted(&msg.topic), also(n));
                    }
                }
                return;
            }
        }
        let Some(command) = self.publisher.topics.parse_command(&msg.topic) else { return };
        match self.command(command, msg.payload) {
            Ok(()) => self.commands.accepted += 1,
            Err(why) => {
                self.commands.refused += 1;
                // Anyone on the broker can send these: a flood of bad ones
                // is counted in full and logged at a bounded rate.
                if let Some(n) = self.command_log.check() {
                    tracing::warn!("MQTT command on '{}' refused: {why}{}", untrusted(&msg.topic), also(n));
                }
            }
        }
    }

    /// Carries out one command, or says why not (for the log).
    fn command(&mut self, command: CommandTopic, payload: Vec<u8>) -> Result<(), String> {
        let camera = match &command {
            CommandTopic::Enabled { camera } | CommandTopic::Labels { camera } | CommandTopic::Example { camera } => {
                camera.clone()
            }
        };
        if !self.cameras.contains_key(&camera) {
            let names: Vec<&str> = self.cameras.keys().map(String::as_str).collect();
            return Err(format!("no camera named '{}' here (cameras: {})", untrusted(&camera), names.join(", ")));
        }
        match command {
            CommandTopic::Enabled { .. } => {
                let text = String::from_utf8_lossy(&payload);
                let Some(switch) = Switch::from_command(&text) else {
                    return Err(format!("'{}' is not a switch value; accepted: ON or OFF", untrusted(text.trim())));
                };
                self.set_enabled(&camera, switch == Switch::On, "MQTT command");
            }
            CommandTopic::Labels { .. } => {
                if payload.len() > MAX_COMMAND_LABELS_BYTES {
                    return Err(format!(
                        "{} bytes of labels; at most {MAX_COMMAND_LABELS_BYTES} are accepted",
                        payload.len()
                    ));
                }
                let Ok(text) = String::from_utf8(payload) else {
                    return Err("the labels are not UTF-8 text".to_string());
                };
                // The zones that read the camera's labels file take the new
                // labels; a zone with a file of its own keeps it.
                let c = &self.cameras[&camera];
                let zones: Vec<usize> =
                    (0..c.config.zones.len()).filter(|&i| c.config.zones[i].labels == c.config.labels).collect();
                if zones.is_empty() {
                    return Err(format!(
                        "every zone of camera '{camera}' has a labels file of its own; edit those files instead"
                    ));
                }
                let topic = self.publisher.topics.labels_set(&camera);
                camera_span(&camera).in_scope(|| tracing::info!("new labels by MQTT command on '{topic}'"));
                for zone in zones {
                    self.request_load(&camera, zone, LabelsOrigin::Command(topic.clone()), text.clone());
                }
            }
            CommandTopic::Example { .. } => {
                let (zone, label) = examples::parse_payload(&payload)?;
                if let Err(e) = self.request_example(&camera, zone.as_deref(), &label, None) {
                    self.publish_example_result(&camera, zone, &label, Err(e.clone()));
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Asks camera `camera`'s inference thread for its next frame as an
    /// example of `label` in `zone`, once the label's example folder is
    /// known; the answer comes as [`CameraReport::Example`].
    fn request_example(
        &mut self,
        camera: &str,
        zone: Option<&str>,
        label: &str,
        reply: Option<std::sync::mpsc::Sender<Result<(std::path::PathBuf, usize), String>>>,
    ) -> Result<(), String> {
        let c = &self.cameras[camera];
        let zone_names: Vec<&str> = c.config.zones.iter().filter_map(|z| z.name.as_deref()).collect();
        let zone_ix = match zone {
            None if zone_names.is_empty() => 0,
            None => return Err(format!("camera '{camera}' has zones ({}): send ZONE/LABEL", zone_names.join(", "))),
            Some(z) => c.config.zones.iter().position(|cz| cz.name.as_deref() == Some(z)).ok_or_else(|| {
                if zone_names.is_empty() {
                    format!("camera '{camera}' has no zones: send the label's name alone")
                } else {
                    format!("camera '{camera}' has no zone '{}' (zones: {})", untrusted(z), zone_names.join(", "))
                }
            })?,
        };
        let labels_file = match &c.camera.shared.labels(zone_ix).origin {
            LabelsOrigin::File(path) => path.clone(),
            LabelsOrigin::Command(topic) => {
                return Err(format!(
                    "the labels came by the command topic '{topic}'; examples go to the folders a labels file names, so load the file again first (SIGHUP)"
                ))
            }
        };
        let (folder, whole_frame) = examples::example_folder(&labels_file, label)?;
        if !c.camera.shared.enabled.load(Ordering::Relaxed) {
            // The frames still flow while a camera is off, but a person who
            // switched it off may not expect it to be saved.
            tracing::info!("example/set on camera '{camera}' while it is switched off");
        }
        let id = self.next_example_id;
        self.next_example_id += 1;
        *c.camera.shared.example_request.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(ExampleRequest { id, zone: zone_ix, whole_frame });
        // A newer request for the camera replaces an older one, which then
        // has no frame coming.
        let superseded: Vec<PendingExample> = {
            let (old, kept) = std::mem::take(&mut self.pending_examples).into_iter().partition(|p| p.camera == camera);
            self.pending_examples = kept;
            old
        };
        for p in superseded {
            if let Some(reply) = &p.reply {
                let _ = reply.send(Err("superseded by a newer example request on the camera".into()));
            }
            self.publish_example_result(
                &p.camera,
                p.zone_name,
                &p.label,
                Err("superseded by a newer example/set on the camera".into()),
            );
        }
        self.pending_examples.push(PendingExample {
            id,
            camera: camera.to_string(),
            zone: zone_ix,
            zone_name: zone.map(String::from),
            label: label.to_string(),
            folder,
            labels_file,
            deadline: Instant::now() + examples::EXAMPLE_FRAME_WITHIN,
            reply,
        });
        Ok(())
    }

    /// Fails the `example/set` commands whose camera sent no frame in time.
    fn expire_examples(&mut self) {
        let now = Instant::now();
        let (late, waiting): (Vec<PendingExample>, Vec<PendingExample>) =
            std::mem::take(&mut self.pending_examples).into_iter().partition(|p| now >= p.deadline);
        self.pending_examples = waiting;
        for p in late {
            if let Some(c) = self.cameras.get(&p.camera) {
                let mut request = c.camera.shared.example_request.lock().unwrap_or_else(|e| e.into_inner());
                if request.is_some_and(|r| r.id == p.id) {
                    *request = None;
                }
            }
            let why = format!(
                "no frame from camera '{}' within {} s; is its source delivering (see the stats topic)?",
                p.camera,
                examples::EXAMPLE_FRAME_WITHIN.as_secs()
            );
            camera_span(&p.camera).in_scope(|| tracing::warn!("example/set for label '{}': {why}", p.label));
            if let Some(reply) = &p.reply {
                let _ = reply.send(Err(why.clone()));
            }
            self.publish_example_result(&p.camera, p.zone_name, &p.label, Err(why));
        }
    }

    fn publish_example_result(
        &self,
        camera: &str,
        zone: Option<String>,
        label: &str,
        result: Result<(std::path::PathBuf, usize), String>,
    ) {
        let (saved, examples, error) = match result {
            Ok((path, count)) => (Some(path.display().to_string()), Some(count), None),
            Err(e) => (None, None, Some(e)),
        };
        let payload =
            ExampleResultPayload { camera: camera.to_string(), error, examples, label: label.to_string(), saved, zone };
        self.publisher.example_result(&self.mqtt, &payload);
    }

    /// Loads again every zone of `camera` that reads `labels_file` (an
    /// example image was added to one of its folders).
    fn reload_labels_file(&mut self, camera: &str, labels_file: &std::path::Path) {
        let Some(c) = self.cameras.get(camera) else { return };
        let zones: Vec<usize> =
            (0..c.config.zones.len()).filter(|&i| c.config.zones[i].labels == labels_file).collect();
        match watch::read_with_hash(labels_file) {
            Ok((text, _)) => {
                for zone in zones {
                    self.request_load(camera, zone, LabelsOrigin::File(labels_file.to_path_buf()), text.clone());
                }
            }
            Err(e) => tracing::error!("{e}; the new example takes effect when the labels file loads again"),
        }
    }

    /// Switches a camera on or off; `by` names who asked, for the log.
    fn set_enabled(&mut self, camera: &str, enabled: bool, by: &str) {
        let c = &self.cameras[camera];
        c.camera.shared.enabled.store(enabled, Ordering::SeqCst);
        self.publisher.enabled(&self.mqtt, camera, enabled);
        camera_span(camera).in_scope(|| tracing::info!("{} by {by}", if enabled { "enabled" } else { "disabled" }));
    }

    /// Starts the web page's server, which gets the cameras' shared state
    /// and a way to ask the main loop for changes.
    #[cfg(feature = "web")]
    fn start_web(&mut self, encoder: &Arc<ImageEncoder>) -> anyhow::Result<crate::web::server::WebServer> {
        use crate::web::server::{Web, WebCamera};
        let (tx, rx) = mpsc::channel();
        self.web_commands = Some(rx);
        let options = EncoderOptions { threads: self.config.model.threads, fold_constants: true };
        let web = Web {
            config: self.config.web.clone(),
            node: self.config.node.clone(),
            bundle: Arc::clone(&self.bundle),
            label_options: self.label_options.clone(),
            cameras: self
                .cameras
                .values()
                .map(|c| WebCamera { config: c.config.clone(), shared: Arc::clone(&c.camera.shared) })
                .collect(),
            view: Arc::clone(&self.web_view),
            commands: std::sync::Mutex::new(tx),
            guard: Default::default(),
            refusals: Default::default(),
            store_path: self.history.as_ref().map(|h| h.path().to_path_buf()),
            store: std::sync::Mutex::new(None),
            searcher: std::sync::Mutex::new(crate::search::Searcher::new(
                Arc::clone(&self.bundle),
                options,
                &self.config.node,
                self.publisher.topics.clone(),
                Some(Arc::clone(encoder)),
            )),
            live_streams: Default::default(),
            log: std::sync::Mutex::new(LogLimit::with_burst(5)),
        };
        crate::web::server::start(web)
    }

    #[cfg(not(feature = "web"))]
    fn start_web(&mut self, _encoder: &Arc<ImageEncoder>) -> anyhow::Result<()> {
        anyhow::bail!("[web] enabled = true, but this edgeclip was built without the web page (the `web` feature)")
    }

    /// Carries out what the web page asked.
    fn handle_web(&mut self, command: crate::web::WebCommand) {
        use crate::web::WebCommand;
        match command {
            WebCommand::Enable { camera, enabled, reply } => {
                let result = if self.cameras.contains_key(&camera) {
                    self.set_enabled(&camera, enabled, "the web page");
                    Ok(())
                } else {
                    Err(format!("no camera '{camera}'"))
                };
                let _ = reply.send(result);
            }
            WebCommand::Example { camera, zone, label, reply } => {
                if !self.cameras.contains_key(&camera) {
                    let _ = reply.send(Err(format!("no camera '{camera}'")));
                    return;
                }
                let asked = self.request_example(&camera, zone.as_deref(), &label, Some(reply.clone()));
                if let Err(e) = asked {
                    camera_span(&camera)
                        .in_scope(|| tracing::warn!("example from the web page for label '{label}': {e}"));
                    self.publish_example_result(&camera, zone, &label, Err(e.clone()));
                    let _ = reply.send(Err(e));
                }
            }
            WebCommand::Reload { camera, labels_file } => self.reload_labels_file(&camera, &labels_file),
        }
    }

    /// The stats the web page shows, made every [`WEB_STATS_EVERY`].
    fn web_stats(&mut self) {
        let Some((reporter, last)) = &mut self.web_stats else { return };
        if last.elapsed() < WEB_STATS_EVERY {
            return;
        }
        *last = Instant::now();
        let stats =
            stats_of(reporter, &self.cameras, &self.mqtt, &self.commands, self.search.as_ref(), self.history.as_ref());
        if let Ok(value) = serde_json::to_value(&stats) {
            self.web_view.set_stats(value);
        }
    }

    fn publish_stats(&mut self) {
        let stats = stats_of(
            &mut self.stats,
            &self.cameras,
            &self.mqtt,
            &self.commands,
            self.search.as_ref(),
            self.history.as_ref(),
        );
        self.publisher.stats(&self.mqtt, &stats);
    }

    /// Ends every camera (their last events are published), publishes the
    /// final stats and `offline`, and flushes the MQTT queue, all within
    /// [`STOP_CAMERAS_AT_MOST`] + [`FLUSH_MQTT_WITHIN`].
    fn shutdown(mut self, reports: &Receiver<CameraReport>) {
        for c in self.cameras.values() {
            c.camera.request_stop();
        }
        let started = Instant::now();
        let deadline = started + STOP_CAMERAS_AT_MOST;
        let mut noticed = false;
        // A camera whose inference thread panicked reports nothing more.
        while self.cameras.values().any(|c| !c.finished && !c.camera.inference_ended()) {
            if !noticed && started.elapsed() >= STOP_CAMERAS_NOTICE {
                noticed = true;
                let busy: Vec<&str> =
                    self.cameras.iter().filter(|(_, c)| !c.finished).map(|(n, _)| n.as_str()).collect();
                tracing::info!(
                    "stopping: waiting for camera(s) {} to finish the frame being inferred (at most {} s)",
                    busy.join(", "),
                    STOP_CAMERAS_AT_MOST.as_secs()
                );
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match reports.recv_timeout(left.min(TICK)) {
                Ok(report) => self.handle_camera_report(report),
                Err(RecvTimeoutError::Timeout) if left.is_zero() => break,
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        while let Ok(report) = reports.try_recv() {
            self.handle_camera_report(report);
        }
        for (name, c) in &mut self.cameras {
            let _span = camera_span(name).entered();
            if !c.camera.join(deadline) {
                tracing::warn!("its inference thread did not stop in time; its last events may be missing");
            }
            // The safe level, whatever the events said last.
            c.gpio_outputs.iter_mut().for_each(EventOutput::shutdown);
        }
        if let Some(h) = &mut self.history {
            h.delivered(&self.mqtt.take_delivered());
            h.feed(|m| self.mqtt.publish(m));
        }
        self.publish_stats();
        let report = self.mqtt.shutdown(FLUSH_MQTT_WITHIN);
        if let Some(h) = &mut self.history {
            h.delivered(&report.receipts);
        }
        let stored = report.undelivered.iter().filter(|m| m.receipt.is_some()).count();
        if report.undelivered.is_empty() {
            tracing::info!("stopped: {report}");
        } else if stored > 0 {
            tracing::warn!("stopped: {report}; {stored} of them wait in the store and go out first at the next start");
        } else {
            tracing::warn!("stopped: {report}");
        }
    }
}
