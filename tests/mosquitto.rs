//! A real Mosquitto for the tests, and a subscriber to watch it.
//!
//! [`Mosquitto::start`] runs `mosquitto` on a free port of 127.0.0.1 with
//! its own configuration, log, password file and persistence directory in a
//! temporary directory, and waits until it listens; [`Mosquitto::kill`]
//! (SIGKILL), [`Mosquitto::freeze`] (SIGSTOP), [`Mosquitto::stop`] (SIGTERM,
//! which saves the persistence file) and [`Mosquitto::restart`] (same port, same files) simulate a broker
//! that goes away. Persistence is on and saved every second, so that a
//! persistent subscriber session and retained messages survive a restart.
//! [`Subscriber`] is an MQTT client (rumqttc, persistent session, QoS 1) that
//! records everything it receives and reconnects on its own.
//!
//! The Debian package `mosquitto` provides the broker (tools/test.sh installs
//! it). The service it starts listens on 1883; nothing here uses that port.

#![allow(dead_code)] // a harness: each test uses a part of it

use crate::util::SpawnWatched;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long Mosquitto may take to listen after starting.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// What the broker asks of its clients.
#[derive(Debug, Clone, Default)]
pub struct MosquittoOptions {
    /// User names and passwords; when not empty, anonymous clients are
    /// refused.
    pub users: Vec<(String, String)>,
    /// A TLS listener instead of plain TCP.
    pub tls: Option<TlsListener>,
    /// Lines added to the configuration as they are.
    pub extra: Vec<String>,
}

/// The files of a TLS listener (PEM).
#[derive(Debug, Clone)]
pub struct TlsListener {
    /// The CA that signed the clients' certificates (also sent to clients).
    pub ca_file: PathBuf,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// Refuse clients without a certificate signed by `ca_file`.
    pub require_certificate: bool,
}

/// A running (or stopped) Mosquitto. Killed when dropped.
pub struct Mosquitto {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl Mosquitto {
    /// Whether the `mosquitto` binary is installed.
    pub fn installed() -> bool {
        Command::new("mosquitto").arg("-h").stdout(Stdio::null()).stderr(Stdio::null()).output_watched().is_ok()
    }

    /// Starts Mosquitto on a free port. Panics (with its log) if it does not
    /// come up.
    pub fn start(options: MosquittoOptions) -> Mosquitto {
        assert!(Mosquitto::installed(), "mosquitto is not installed: apt-get install mosquitto (tools/test.sh does)");
        let dir = tempfile::tempdir().unwrap();
        let mut config = vec![
            // Mosquitto run by root changes to the user 'mosquitto', who cannot
            // read our temporary directory; 'root' means stay who we are.
            "user root".to_string(),
            format!("persistence true\npersistence_location {}/", dir.path().display()),
            // Saved every second rather than on every change or at exit only,
            // so that a SIGKILL loses at most the last second.
            "autosave_interval 1".to_string(),
            format!("log_dest file {}", dir.path().join("mosquitto.log").display()),
            "log_type all".to_string(),
            "log_timestamp_format %H:%M:%S".to_string(),
        ];
        if options.users.is_empty() {
            config.push("allow_anonymous true".into());
        } else {
            let passwords = dir.path().join("passwords");
            for (i, (user, password)) in options.users.iter().enumerate() {
                let mut cmd = Command::new("mosquitto_passwd");
                if i == 0 {
                    cmd.arg("-c");
                }
                let status = cmd.arg("-b").arg(&passwords).arg(user).arg(password).output_watched().unwrap().status;
                assert!(status.success(), "mosquitto_passwd failed for '{user}'");
            }
            config.push(format!("allow_anonymous false\npassword_file {}", passwords.display()));
        }
        config.extend(options.extra.iter().cloned());
        // The listener comes last: its options apply to it.
        let tail = match &options.tls {
            None => String::new(),
            Some(tls) => format!(
                "cafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate {}\n",
                tls.ca_file.display(),
                tls.cert_file.display(),
                tls.key_file.display(),
                tls.require_certificate
            ),
        };
        std::fs::write(dir.path().join("base.conf"), config.join("\n") + "\n").unwrap();
        std::fs::write(dir.path().join("listener.conf"), tail).unwrap();
        // A free port is only free until someone takes it: try a few.
        Mosquitto::start_in(dir, 5)
    }

    /// Starts it in `dir` (configured) on a free port, trying others if the
    /// port is taken before Mosquitto binds it.
    fn start_in(dir: tempfile::TempDir, tries: usize) -> Mosquitto {
        for _ in 0..tries {
            let port = free_port();
            if let Some(child) = launch(dir.path(), port) {
                return Mosquitto { dir, port, child: Some(child) };
            }
            let log = read_log(dir.path());
            if !log.contains("Address already in use") {
                panic!("mosquitto did not start; its log:\n{log}");
            }
        }
        panic!("mosquitto found no free port in {tries} tries; its log:\n{}", read_log(dir.path()));
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `mqtt://127.0.0.1:PORT` (`mqtts://` for a TLS listener is the
    /// caller's business).
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// SIGSTOP: it hangs, connections stay open, nothing is read or
    /// answered (until `kill` or `stop`, which end it).
    pub fn freeze(&mut self) {
        if let Some(child) = &self.child {
            unsafe { libc::kill(child.id() as i32, libc::SIGSTOP) };
        }
    }

    /// SIGKILL: no goodbye, no saving.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM: Mosquitto saves its persistence file and exits.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            unsafe { libc::kill(child.id() as i32, libc::SIGCONT) };
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port with the same files (after `kill` or
    /// `stop`; a running one is killed first).
    pub fn restart(&mut self) {
        self.kill();
        // The port was ours a moment ago; someone may grab it, rarely: retry.
        for _ in 0..50 {
            if let Some(child) = launch(self.dir.path(), self.port) {
                self.child = Some(child);
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("mosquitto did not restart on port {}; log:\n{}", self.port, self.log());
    }

    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        read_log(self.dir.path())
    }
}

/// Writes the configuration for `port`, starts Mosquitto and waits until it
/// accepts connections; None if it ended instead.
fn launch(dir: &Path, port: u16) -> Option<Child> {
    let base = std::fs::read_to_string(dir.join("base.conf")).unwrap();
    let listener = std::fs::read_to_string(dir.join("listener.conf")).unwrap();
    let conf = dir.join("mosquitto.conf");
    std::fs::write(&conf, format!("{base}listener {port} 127.0.0.1\n{listener}")).unwrap();
    let stderr = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("stderr")).unwrap();
    let mut child = Command::new("mosquitto")
        .arg("-c")
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn_watched()
        .expect("cannot run mosquitto");
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            eprintln!("mosquitto on port {port} ended: {status}");
            return None;
        }
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some(child);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("mosquitto did not listen within {START_TIMEOUT:?}; log:\n{}", read_log(dir));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn read_log(dir: &Path) -> String {
    let mut text = std::fs::read_to_string(dir.join("mosquitto.log")).unwrap_or_default();
    if let Ok(stderr) = std::fs::read_to_string(dir.join("stderr")) {
        text.push_str(&stderr);
    }
    text
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// One message a [`Subscriber`] received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
}

impl Received {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.payload).into_owned()
    }
}

/// An MQTT client that subscribes and records what arrives: rumqttc with a
/// persistent session (QoS 1), so that it misses nothing while it or the
/// broker is away, reconnecting every 100 ms.
pub struct Subscriber {
    client: rumqttc::Client,
    messages: Receiver<Received>,
    connects: Arc<Mutex<Vec<bool>>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Tells the thread to end.
    stop: Arc<std::sync::atomic::AtomicBool>,
}

/// Where a [`Subscriber`] connects.
#[derive(Debug, Clone)]
pub struct SubscriberOptions {
    pub host: String,
    pub port: u16,
    pub client_id: String,
    pub filters: Vec<String>,
    pub credentials: Option<(String, String)>,
    /// TLS to the broker (only with the `tls` feature, as rumqttc's own).
    #[cfg(feature = "tls")]
    pub tls: Option<rumqttc::TlsConfiguration>,
}

impl SubscriberOptions {
    pub fn new(port: u16, client_id: &str, filters: &[&str]) -> SubscriberOptions {
        SubscriberOptions {
            host: "127.0.0.1".into(),
            port,
            client_id: client_id.into(),
            filters: filters.iter().map(|f| f.to_string()).collect(),
            credentials: None,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

impl Subscriber {
    /// Connects and subscribes; returns once the broker acknowledged the
    /// subscription.
    pub fn start(options: SubscriberOptions) -> Subscriber {
        let mut mqtt = rumqttc::MqttOptions::new(options.client_id.clone(), options.host.clone(), options.port);
        mqtt.set_clean_session(false).set_keep_alive(Duration::from_secs(5)).set_max_packet_size(16 << 20, 16 << 20);
        if let Some((user, password)) = &options.credentials {
            mqtt.set_credentials(user.clone(), password.clone());
        }
        #[cfg(feature = "tls")]
        if let Some(tls) = &options.tls {
            mqtt.set_transport(rumqttc::Transport::tls_with_config(tls.clone()));
        }
        let (client, mut connection) = rumqttc::Client::new(mqtt, 100);
        let (tx, messages) = std::sync::mpsc::channel();
        let (subscribed_tx, subscribed) = std::sync::mpsc::channel();
        let connects = Arc::new(Mutex::new(Vec::new()));
        let filters = options.filters.clone();
        let sub_client = client.clone();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let thread = {
            let (connects, stop) = (Arc::clone(&connects), Arc::clone(&stop));
            std::thread::spawn(move || {
                for event in connection.iter() {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        return;
                    }
                    match event {
                        Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(ack))) => {
                            connects.lock().unwrap().push(ack.session_present);
                            // Every time: a session the broker says it kept
                            // may still lack a subscription whose SUBACK was
                            // lost with the connection.
                            for f in &filters {
                                let _ = sub_client.try_subscribe(f.clone(), rumqttc::QoS::AtLeastOnce);
                            }
                        }
                        Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_))) => {
                            let _ = subscribed_tx.send(());
                        }
                        Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                            let _ = tx.send(Received { topic: p.topic, payload: p.payload.to_vec(), retain: p.retain });
                        }
                        Ok(rumqttc::Event::Outgoing(rumqttc::Outgoing::Disconnect)) => break,
                        Ok(_) => {}
                        Err(_) => std::thread::sleep(Duration::from_millis(100)),
                    }
                }
            })
        };
        let subscriber = Subscriber { client, messages, connects, thread: Some(thread), stop };
        if !options.filters.is_empty() {
            subscribed.recv_timeout(Duration::from_secs(10)).expect("no SUBACK within 10 s");
        }
        subscriber
    }

    /// The next message, or None after `timeout`.
    pub fn next(&self, timeout: Duration) -> Option<Received> {
        match self.messages.recv_timeout(timeout) {
            Ok(m) => Some(m),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => None,
        }
    }

    /// The next message on `topic` (others are skipped), or a panic after
    /// `timeout`.
    pub fn expect_on(&self, topic: &str, timeout: Duration) -> Received {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left) {
                Some(m) if m.topic == topic => return m,
                Some(_) => {}
                None => panic!("nothing on '{topic}' within {timeout:?} (connections: {:?})", self.connects()),
            }
        }
    }

    /// Waits until a message on `topic` with `payload` arrives (others are
    /// skipped); panics after `timeout`.
    pub fn wait_for(&self, topic: &str, payload: &str, timeout: Duration) -> Received {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left) {
                Some(m) if m.topic == topic && m.payload == payload.as_bytes() => return m,
                Some(_) => {}
                None => {
                    panic!("no '{payload}' on '{topic}' within {timeout:?} (connections: {:?})", self.connects())
                }
            }
        }
    }

    /// Everything that arrives until nothing more has come for `quiet`.
    pub fn drain(&self, quiet: Duration) -> Vec<Received> {
        let mut all = Vec::new();
        while let Some(m) = self.next(quiet) {
            all.push(m);
        }
        all
    }

    /// `session_present` of each CONNACK so far (for failure messages).
    pub fn connects(&self) -> Vec<bool> {
        self.connects.lock().unwrap().clone()
    }

    /// Publishes (for tests that need a second publisher).
    pub fn publish(&self, topic: &str, payload: &[u8], retain: bool) {
        self.client.publish(topic, rumqttc::QoS::AtLeastOnce, retain, payload.to_vec()).unwrap();
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        // A clean DISCONNECT ends the thread; if it is not connected, the
        // flag does at its next reconnect attempt (a thread left retrying
        // for the rest of the run makes qemu-user's fork, and so every
        // later spawn under emulation, likelier to deadlock).
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if self.client.try_disconnect().is_ok() {
            if let Some(thread) = self.thread.take() {
                let deadline = Instant::now() + Duration::from_secs(2);
                while !thread.is_finished() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
    }
}

/// Writes `text` to `dir/name` and returns the path.
pub fn write_file(dir: &Path, name: &str, text: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::File::create(&path).unwrap().write_all(text).unwrap();
    path
}
