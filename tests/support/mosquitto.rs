//! A real Mosquitto for the tests.
//!
//! [`Mosquitto::start`] runs `mosquitto` on a free port of 127.0.0.1 with
//! its own configuration, log, password file and persistence directory in a
//! temporary directory, and waits until it listens; [`Mosquitto::kill`]
//! (SIGKILL), [`Mosquitto::freeze`] (SIGSTOP), [`Mosquitto::stop`] (SIGTERM,
//! which saves the persistence file) and [`Mosquitto::restart`] (same port, same files) simulate a broker
//! that goes away. Persistence is on and saved every second, so that a
//! persistent subscriber session and retained messages survive a restart.
//! [`super::subscriber::Subscriber`] watches what it delivers.
//!
//! The Debian package `mosquitto` provides the broker (tools/test.sh installs
//! it). The service it starts listens on 1883; nothing here uses that port.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::process::{installed, SpawnWatched};

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
    /// Starts Mosquitto on a free port. Panics (with its log) if it does not
    /// come up.
    pub fn start(options: MosquittoOptions) -> Mosquitto {
        assert!(installed("mosquitto"), "mosquitto is not installed: apt-get install mosquitto (tools/test.sh does)");
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
