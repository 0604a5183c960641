//! The MQTT client and the embedded broker against real brokers: a
//! Mosquitto per test (`support::mosquitto`) on a free port, killed, stopped
//! and restarted as a real one would be, and rumqttd inside this process;
//! a real subscriber watches what arrives. Certificates are made here with
//! rcgen; a killed client is a real child process (this test binary run
//! again).

use std::io::BufRead;
#[cfg(feature = "tls")]
use std::path::PathBuf;
#[cfg(feature = "embedded-broker")]
use std::process::Command;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use edgeclip::config::{Broker, MqttConfig};
#[cfg(feature = "embedded-broker")]
use edgeclip::publish::broker::start_embedded_broker;
#[cfg(feature = "tls")]
use edgeclip::publish::mqtt::MqttError;
use edgeclip::publish::mqtt::{Message, MqttClient, INFLIGHT_WINDOW};

#[cfg(feature = "tls")]
use crate::support::mosquitto::TlsListener;
use crate::support::mosquitto::{free_port, Mosquitto, MosquittoOptions};
#[cfg(feature = "embedded-broker")]
use crate::support::process::installed;
use crate::support::process::{command_under_runner, test_runner, SpawnWatched};
use crate::support::subscriber::{retained, Subscriber, SubscriberOptions};
use crate::support::timing::wait_until;

fn config(broker: Broker, client_id: &str) -> MqttConfig {
    MqttConfig {
        broker,
        client_id: client_id.into(),
        username: None,
        password: None,
        ca_file: None,
        client_cert: None,
        client_key: None,
        topic_prefix: "edgeclip".into(),
        commands: true,
        qos: 1,
        keepalive: Duration::from_secs(5),
        offline_queue: 1000,
        stats_interval: Duration::from_secs(60),
        scores_interval: None,
    }
}

fn plain(port: u16) -> Broker {
    Broker::External { host: "127.0.0.1".into(), port, tls: false }
}

fn connected(client: &MqttClient) {
    wait_until("the client is connected", Duration::from_secs(10), || client.stats().connected);
}

fn event(topic: &str, i: u64) -> Message {
    Message::event(topic.into(), i.to_string().into_bytes())
}

/// A payload of `len` bytes that is not all the same.
fn snapshot(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

#[test]
fn events_and_states_reach_a_subscriber_and_availability_follows_the_client() {
    let broker = Mosquitto::start(MosquittoOptions::default());
    let sub = Subscriber::connect(broker.port(), "watcher", &["edgeclip/n/#"]);
    let availability = "edgeclip/n/availability";
    let client = MqttClient::start(
        &config(plain(broker.port()), "edgeclip-n"),
        availability.into(),
        vec!["edgeclip/n/+/+/set".into()],
    )
    .unwrap();
    sub.wait_for_payload(availability, "online", Duration::from_secs(10));

    for i in 0..10 {
        client.publish(event("edgeclip/n/cam/events", i));
    }
    client.publish(Message::retained("edgeclip/n/cam/cat/state".into(), b"ON".to_vec()));
    // Larger than rumqttc's default packet limit (10 KiB) by far.
    let jpeg = snapshot(3_000_000);
    client.publish(Message::retained("edgeclip/n/cam/cat/snapshot".into(), jpeg.clone()));
    client.publish(Message::latest("edgeclip/n/stats".into(), b"{\"fps\":2}".to_vec()));

    let mut got = Vec::new();
    while got.len() < 13 {
        let m = sub.next(Duration::from_secs(10)).expect("the messages within 10 s");
        got.push(m);
    }
    let events: Vec<String> = got[..10].iter().map(|m| m.text()).collect();
    assert_eq!(events, (0..10).map(|i| i.to_string()).collect::<Vec<_>>(), "events in order");
    assert_eq!((got[10].topic.as_str(), got[10].text().as_str()), ("edgeclip/n/cam/cat/state", "ON"));
    assert_eq!(got[11].topic, "edgeclip/n/cam/cat/snapshot");
    assert!(got[11].payload == jpeg, "the snapshot arrived changed ({} bytes)", got[11].payload.len());
    assert_eq!(got[12].text(), "{\"fps\":2}");
    wait_until("all 13 are acknowledged", Duration::from_secs(5), || client.stats().published == 13);
    assert_eq!(client.stats().queued, 0);

    // Commands on a subscribed filter reach the daemon, large ones too (a
    // labels file; rumqttc's default limit on incoming packets is 10 KiB).
    sub.publish("edgeclip/n/cam/enabled/set", b"OFF", false);
    let command = client.incoming().recv_timeout(Duration::from_secs(5)).expect("the command within 5 s");
    assert_eq!((command.topic.as_str(), command.payload.as_slice()), ("edgeclip/n/cam/enabled/set", &b"OFF"[..]));
    let labels = "a cat on the sofa\n".repeat(20_000).into_bytes();
    sub.publish("edgeclip/n/cam/labels/set", &labels, false);
    let command = client.incoming().recv_timeout(Duration::from_secs(5)).expect("the labels within 5 s");
    assert!(command.topic == "edgeclip/n/cam/labels/set" && command.payload == labels, "{}", command.topic);

    // Retained: what a subscriber that comes later gets.
    let kept = retained(broker.port(), "late-1", "edgeclip/n/#");
    assert_eq!(
        kept.keys().collect::<Vec<_>>(),
        [availability, "edgeclip/n/cam/cat/snapshot", "edgeclip/n/cam/cat/state"]
    );
    assert_eq!(kept[availability], b"online");
    assert_eq!(kept["edgeclip/n/cam/cat/state"], b"ON");
    assert!(kept["edgeclip/n/cam/cat/snapshot"] == jpeg);

    let started = Instant::now();
    let report = client.shutdown(Duration::from_secs(5));
    assert!(started.elapsed() < Duration::from_secs(5), "shutdown took {:?}", started.elapsed());
    assert!(report.clean && report.undelivered.is_empty(), "{report:?}");
    sub.wait_for_payload(availability, "offline", Duration::from_secs(5));
    assert_eq!(retained(broker.port(), "late-2", availability)[availability], b"offline");
    // A DISCONNECT, not a broken connection (whose will would also say offline).
    assert!(broker.log().contains("Received DISCONNECT from edgeclip-n"), "{}", broker.log());
}

#[test]
fn shutdown_gives_up_at_its_timeout_and_returns_what_was_not_delivered() {
    // Nobody listens there.
    let client =
        MqttClient::start(&config(plain(free_port()), "edgeclip-nobody"), "x/availability".into(), vec![]).unwrap();
    for i in 0..3 {
        client.publish(event("x/events", i));
    }
    client.publish(Message::retained("x/state".into(), b"ON".to_vec()));
    wait_until("the first attempt has failed", Duration::from_secs(5), || client.stats().last_error.is_some());
    let error = client.stats().last_error.unwrap();
    assert!(error.contains("connection refused") && error.contains("mqtt.broker"), "{error}");
    let started = Instant::now();
    let report = client.shutdown(Duration::from_secs(1));
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(1) && took < Duration::from_millis(1500), "shutdown took {took:?}");
    assert!(!report.clean);
    let left: Vec<String> =
        report.undelivered.iter().map(|m| format!("{}={}", m.topic, String::from_utf8_lossy(&m.payload))).collect();
    assert_eq!(left, ["x/events=0", "x/events=1", "x/events=2", "x/state=ON"], "the 'offline' is ours, not left over");
    assert!(report.to_string().contains("4 messages not delivered"), "{report}");
}

/// The child process of the last-will tests (ignored when run directly): a
/// client on the broker at $EDGECLIP_TEST_MQTT_CHILD_PORT that says when it
/// is connected and waits to be killed.
#[test]
#[ignore = "a child process of the last-will tests"]
fn child_process_client() {
    let Ok(port) = std::env::var("EDGECLIP_TEST_MQTT_CHILD_PORT") else { return };
    let port: u16 = port.parse().unwrap();
    let started = Instant::now();
    let client =
        MqttClient::start(&config(plain(port), "edgeclip-child"), "edgeclip/child/availability".into(), vec![])
            .unwrap();
    connected(&client);
    println!("CHILD CONNECTED");
    println!("after {:?}: {:?}", started.elapsed(), client.stats());
    std::thread::sleep(Duration::from_secs(60));
    drop(client);
}

/// Runs [`child_process_client`] against the broker on `port`, kills it
/// (SIGKILL: it says nothing more) and expects the broker to publish the
/// will, retained.
fn a_killed_client_leaves_offline(port: u16) {
    let sub = Subscriber::connect(port, "will-watcher", &["edgeclip/child/availability"]);
    // This test binary again (under qemu too, when the suite runs there).
    let test_binary = std::env::current_exe().unwrap();
    let mut child = command_under_runner(&test_binary, test_runner().as_deref())
        .args(["--exact", "mqtt::child_process_client", "--ignored", "--nocapture"])
        .env("EDGECLIP_TEST_MQTT_CHILD_PORT", port.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn_watched()
        .unwrap();
    let (tx, lines) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if line == "CHILD CONNECTED" => break,
            Ok(_) => {}
            Err(_) => {
                let _ = child.kill();
                panic!("the child client did not connect within 15 s");
            }
        }
    }
    // How long it took and what it met on the way, should what follows fail.
    let report = lines.recv_timeout(Duration::from_secs(5)).unwrap_or_default();
    eprintln!("child client connected {report}");
    sub.wait_for_payload("edgeclip/child/availability", "online", Duration::from_secs(5));
    child.kill().unwrap();
    child.wait().unwrap();
    sub.wait_for_payload("edgeclip/child/availability", "offline", Duration::from_secs(5));
    let kept = retained(port, "will-late", "edgeclip/child/availability");
    assert_eq!(kept["edgeclip/child/availability"], b"offline", "the will is retained");
}

#[test]
fn the_last_will_says_offline_when_the_process_is_killed() {
    let broker = Mosquitto::start(MosquittoOptions::default());
    a_killed_client_leaves_offline(broker.port());
    assert!(!broker.log().contains("Received DISCONNECT from edgeclip-child"), "{}", broker.log());
}

#[test]
fn dropping_the_client_without_shutdown_says_offline() {
    let broker = Mosquitto::start(MosquittoOptions::default());
    let sub = Subscriber::connect(broker.port(), "watcher", &["edgeclip/d/availability"]);
    let client =
        MqttClient::start(&config(plain(broker.port()), "edgeclip-d"), "edgeclip/d/availability".into(), vec![])
            .unwrap();
    sub.wait_for_payload("edgeclip/d/availability", "online", Duration::from_secs(10));
    drop(client);
    sub.wait_for_payload("edgeclip/d/availability", "offline", Duration::from_secs(5));
    // The thread closed the connection without a DISCONNECT.
    wait_until("Mosquitto notices the closed connection", Duration::from_secs(5), || {
        broker.log().contains("Client edgeclip-d closed its connection")
    });
    assert!(!broker.log().contains("Received DISCONNECT from edgeclip-d"), "{}", broker.log());
}

/// Checks `received` (event numbers as they arrived) against `n` events
/// published: each arrives, and in order. Duplicates are allowed only as
/// QoS 1 makes them: after a broken connection a sender re-sends what was
/// not acknowledged, from the oldest. Our client re-sends its in-flight
/// window (at most INFLIGHT_WINDOW), and Mosquitto re-sends to the reconnected
/// subscriber what it had not acknowledged (at most its 20 in flight). So the
/// sequence is 0..n with at most two restarts, each replaying a run of
/// already-seen numbers in order.
fn check_in_order(received: &[u64], n: u64) {
    let mut next = 0;
    let mut replays = 0;
    let mut duplicates = 0;
    for (i, &v) in received.iter().enumerate() {
        if v == next {
            next += 1;
            continue;
        }
        assert!(v < next, "event {v} arrived before event {next}: lost or out of order; received {received:?}");
        duplicates += 1;
        if i == 0 || received[i - 1] + 1 != v {
            replays += 1;
        }
    }
    assert_eq!(next, n, "events {next}.. never arrived; received {received:?}");
    assert!(replays <= 2, "{replays} replays (duplicates out of sequence); received {received:?}");
    assert!(duplicates <= INFLIGHT_WINDOW + 20, "{duplicates} duplicates; received {received:?}");
}

#[test]
fn events_published_while_mosquitto_is_killed_arrive_in_order_after_it_restarts() {
    // Events at a steady rate; Mosquitto hangs, is killed (SIGKILL) and is
    // away for 10 s, then restarts on the same port with what it had saved.
    let mut broker = Mosquitto::start(MosquittoOptions::default());
    let topic = "edgeclip/k/cam/events";
    let sub = Subscriber::connect(broker.port(), "watcher", &[topic]);
    let client =
        MqttClient::start(&config(plain(broker.port()), "edgeclip-k"), "edgeclip/k/availability".into(), vec![])
            .unwrap();
    connected(&client);
    // Mosquitto saves the subscriber's session within a second (autosave).
    std::thread::sleep(Duration::from_millis(1500));

    let stop = AtomicBool::new(false);
    let count = AtomicU64::new(0);
    let publisher = client.publisher();
    let killed_for = std::thread::scope(|s| {
        // Stops the publisher however this closure ends (a failed assertion
        // would otherwise leave the scope waiting for it forever).
        struct Stop<'a>(&'a AtomicBool);
        impl Drop for Stop<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Relaxed);
            }
        }
        let _stop = Stop(&stop);
        s.spawn(|| {
            // A steady 20 events a second, as a busy camera would.
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                publisher.publish(event(topic, i));
                i += 1;
                count.store(i, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        std::thread::sleep(Duration::from_secs(2));
        // Frozen first, so that events are in flight, written and not
        // acknowledged, when it dies: those are the ones a client loses if
        // it forgets what it had handed over.
        broker.freeze();
        let frozen = Instant::now();
        std::thread::sleep(Duration::from_secs(1));
        let in_flight = count.load(Ordering::Relaxed) - client.stats().published;
        assert!(in_flight > INFLIGHT_WINDOW as u64, "{in_flight} events unacknowledged");
        broker.kill();
        wait_until("the client notices", Duration::from_secs(5), || !client.stats().connected);
        std::thread::sleep(Duration::from_secs(10).saturating_sub(frozen.elapsed()));
        broker.restart();
        let killed_for = frozen.elapsed();
        // Still publishing while the client waits to reconnect.
        std::thread::sleep(Duration::from_secs(2));
        killed_for
    });
    let n = count.load(Ordering::Relaxed);
    assert!(killed_for >= Duration::from_secs(10));

    let mut received = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while (seen.len() as u64) < n {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(m) = sub.next(left) else {
            panic!("{} of {n} events within 20 s of the last; client: {:?}", seen.len(), client.stats())
        };
        let v: u64 = m.text().parse().unwrap();
        seen.insert(v);
        received.push(v);
    }
    // Anything re-sent late would come now.
    received.extend(sub.drain(Duration::from_millis(300)).iter().map(|m| m.text().parse::<u64>().unwrap()));
    check_in_order(&received, n);

    wait_until("every event is acknowledged", Duration::from_secs(5), || client.stats().queued == 0);
    let stats = client.stats();
    assert_eq!((stats.published, stats.overflowed, stats.reconnects), (n, 0, 1), "{stats:?}");
    assert!(stats.last_error.as_deref().is_some_and(|e| e.contains("connection refused")), "{stats:?}");
    eprintln!(
        "{n} events, {} received ({} duplicates), broker away {killed_for:?}",
        received.len(),
        received.len() as u64 - n
    );
}

#[test]
fn a_full_offline_queue_keeps_the_newest_and_counts_exactly_what_it_dropped() {
    let mut broker = Mosquitto::start(MosquittoOptions::default());
    let topic = "edgeclip/q/cam/events";
    let sub = Subscriber::connect(broker.port(), "watcher", &[topic]);
    let mut cfg = config(plain(broker.port()), "edgeclip-q");
    cfg.offline_queue = 5;
    let client = MqttClient::start(&cfg, "edgeclip/q/availability".into(), vec![]).unwrap();
    connected(&client);
    // SIGTERM: Mosquitto saves the sessions and goes away.
    broker.stop();
    wait_until("the client notices", Duration::from_secs(5), || !client.stats().connected);
    for i in 0..20 {
        client.publish(event(topic, i));
    }
    let stats = client.stats();
    assert_eq!((stats.queued, stats.overflowed), (5, 15), "{stats:?}");
    broker.restart();
    let got = sub.receive(topic, 5, Duration::from_secs(10));
    assert_eq!(got, ["15", "16", "17", "18", "19"]);
    assert!(sub.drain(Duration::from_millis(500)).is_empty(), "nothing else arrives");
    wait_until("the five are acknowledged", Duration::from_secs(5), || client.stats().published == 5);
    assert_eq!(client.stats().overflowed, 15);
}

#[test]
fn latest_only_messages_replace_older_ones_while_disconnected() {
    let mut broker = Mosquitto::start(MosquittoOptions::default());
    let sub = Subscriber::connect(broker.port(), "watcher", &["edgeclip/l/cam/#", "edgeclip/l/stats"]);
    let client =
        MqttClient::start(&config(plain(broker.port()), "edgeclip-l"), "edgeclip/l/availability".into(), vec![])
            .unwrap();
    connected(&client);
    broker.stop();
    wait_until("the client notices", Duration::from_secs(5), || !client.stats().connected);
    let state = |v: &str| Message::retained("edgeclip/l/cam/cat/state".into(), v.as_bytes().to_vec());
    let stats = |v: &str| Message::latest("edgeclip/l/stats".into(), v.as_bytes().to_vec());
    let events = |v: &str| Message::event("edgeclip/l/cam/events".into(), v.as_bytes().to_vec());
    for m in [
        state("ON"),
        events("e1"),
        stats("s1"),
        state("OFF"),
        stats("s2"),
        events("e2"),
        state("ON again"),
        stats("s3"),
    ] {
        client.publish(m);
    }
    assert_eq!(client.stats().queued, 4);
    assert_eq!(client.stats().overflowed, 0, "replacing is not dropping");
    broker.restart();
    let mut got = Vec::new();
    while got.len() < 4 {
        let m = sub.next(Duration::from_secs(10)).unwrap_or_else(|| panic!("only {got:?} within 10 s"));
        got.push(format!("{}={}", m.topic.rsplit('/').next().unwrap(), m.text()));
    }
    // Each survivor where its newest version was published.
    assert_eq!(got, ["events=e1", "events=e2", "state=ON again", "stats=s3"]);
    assert!(sub.drain(Duration::from_millis(500)).is_empty());
}

#[test]
fn a_broker_that_lost_its_store_gets_the_retained_states_and_subscriptions_again() {
    let mut broker = Mosquitto::start(MosquittoOptions::default());
    let state = "edgeclip/r/cam/cat/state";
    let client = MqttClient::start(
        &config(plain(broker.port()), "edgeclip-r"),
        "edgeclip/r/availability".into(),
        vec!["edgeclip/r/+/+/set".into()],
    )
    .unwrap();
    connected(&client);
    client.publish(Message::retained(state.into(), b"ON".to_vec()));
    client.publish(Message::retained("edgeclip/r/cam/dog/state".into(), b"OFF".to_vec()));
    wait_until("both are acknowledged", Duration::from_secs(5), || client.stats().published == 2);
    let sent = |broker: &Mosquitto| {
        broker.log().lines().filter(|l| l.contains("Received PUBLISH from edgeclip-r") && l.contains(state)).count()
    };
    assert_eq!(sent(&broker), 1);

    // Stopped cleanly, Mosquitto keeps sessions and retained messages: no
    // need to send the states again.
    broker.stop();
    wait_until("the client notices", Duration::from_secs(5), || !client.stats().connected);
    broker.restart();
    wait_until("the client is back", Duration::from_secs(10), || client.stats().reconnects == 1);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(sent(&broker), 1, "a resumed session does not get the states again");

    // Killed and its database gone: a new session, and the states again.
    broker.kill();
    std::fs::remove_file(broker.dir().join("mosquitto.db")).unwrap();
    broker.restart();
    wait_until("the client is back", Duration::from_secs(10), || client.stats().reconnects == 2);
    // Until they are acknowledged, a new subscriber could get them live
    // rather than retained.
    wait_until("online and the states are delivered", Duration::from_secs(5), || client.stats().queued == 0);
    let kept = retained(broker.port(), "late", "edgeclip/r/#");
    assert_eq!(kept.get(state).map(Vec::as_slice), Some(&b"ON"[..]), "{:?}", kept.keys());
    assert_eq!(kept.get("edgeclip/r/cam/dog/state").map(Vec::as_slice), Some(&b"OFF"[..]));
    assert_eq!(kept.get("edgeclip/r/availability").map(Vec::as_slice), Some(&b"online"[..]));
    assert_eq!(sent(&broker), 2);
    assert_eq!(client.stats().published, 2, "the daemon published two messages; the copies are ours");
    // And the subscriptions came back with the new session.
    let sub = Subscriber::connect(broker.port(), "commander", &[]);
    sub.publish("edgeclip/r/cam/enabled/set", b"OFF", false);
    let command = client.incoming().recv_timeout(Duration::from_secs(5)).expect("the command within 5 s");
    assert_eq!(command.topic, "edgeclip/r/cam/enabled/set");
}

#[test]
fn a_wrong_password_is_reported_and_retried_with_backoff_and_the_right_one_works() {
    let broker =
        Mosquitto::start(MosquittoOptions { users: vec![("edgeclip".into(), "s3cret".into())], ..Default::default() });
    let mut wrong = config(plain(broker.port()), "edgeclip-wrong");
    wrong.username = Some("edgeclip".into());
    wrong.password = Some("guess".into());
    let started = Instant::now();
    let client = MqttClient::start(&wrong, "edgeclip/w/availability".into(), vec![]).unwrap();
    wait_until("the refusal", Duration::from_secs(5), || client.stats().last_error.is_some());
    let error = client.stats().last_error.unwrap();
    for part in [
        format!("the MQTT broker at mqtt://127.0.0.1:{} refused the connection", broker.port()).as_str(),
        "user name 'edgeclip'",
        "mqtt.username",
        "mqtt.password_file",
        "mqtt.password_env",
    ] {
        assert!(error.contains(part), "'{part}' not in: {error}");
    }
    // Attempts at 0, 0.5, 1.5 and 3.5 s (the next at 7.5 s): 4 in 6.5 s.
    // rumqttc alone would retry at once, thousands of times. (Mosquitto names
    // a refused client by its address; this client is the only one refused.)
    std::thread::sleep(Duration::from_millis(6500).saturating_sub(started.elapsed()));
    let attempts = broker.log().matches("Sending CONNACK to 127.0.0.1 (0, 5)").count();
    assert!((3..=5).contains(&attempts), "{attempts} attempts in 6.5 s; log:\n{}", broker.log());
    let stats = client.stats();
    assert!(!stats.connected && stats.reconnects == 0, "{stats:?}");

    let mut options = SubscriberOptions::new(broker.port(), "watcher", &["edgeclip/w/#"]);
    options.credentials = Some(("edgeclip".into(), "s3cret".into()));
    let sub = Subscriber::start(options);
    let mut right = config(plain(broker.port()), "edgeclip-right");
    right.username = Some("edgeclip".into());
    right.password = Some("s3cret".into());
    let good = MqttClient::start(&right, "edgeclip/w/availability".into(), vec![]).unwrap();
    connected(&good);
    good.publish(event("edgeclip/w/cam/events", 1));
    assert_eq!(sub.receive("edgeclip/w/cam/events", 1, Duration::from_secs(5)), ["1"]);
    assert!(good.stats().last_error.is_none());
}

/// A CA, a server certificate for localhost and 127.0.0.1 and a client
/// certificate it signed, and an unrelated CA, as PEM files.
#[cfg(feature = "tls")]
struct Pki {
    _dir: tempfile::TempDir,
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
    other_ca: PathBuf,
}

/// Writes `text` to `dir/name` and returns the path.
#[cfg(feature = "tls")]
fn write_file(dir: &std::path::Path, name: &str, text: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[cfg(feature = "tls")]
fn pki() -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};
    let dir = tempfile::tempdir().unwrap();
    let ca = |name: &str| {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
    };
    let issuer = ca("edgeclip test CA");
    let leaf = |names: Vec<String>, usage: ExtendedKeyUsagePurpose, cn: &str| {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(names).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    };
    let (server_cert, server_key) =
        leaf(vec!["localhost".into(), "127.0.0.1".into()], ExtendedKeyUsagePurpose::ServerAuth, "localhost");
    let (client_cert, client_key) = leaf(vec![], ExtendedKeyUsagePurpose::ClientAuth, "edgeclip-tls");
    let d = dir.path();
    Pki {
        ca: write_file(d, "ca.crt", issuer.pem().as_bytes()),
        server_cert: write_file(d, "server.crt", server_cert.as_bytes()),
        server_key: write_file(d, "server.key", server_key.as_bytes()),
        client_cert: write_file(d, "client.crt", client_cert.as_bytes()),
        client_key: write_file(d, "client.key", client_key.as_bytes()),
        other_ca: write_file(d, "other-ca.crt", ca("someone else's CA").pem().as_bytes()),
        _dir: dir,
    }
}

#[cfg(feature = "tls")]
fn tls_config(pki: &Pki, port: u16, client_id: &str) -> MqttConfig {
    let mut cfg = config(Broker::External { host: "localhost".into(), port, tls: true }, client_id);
    cfg.ca_file = Some(pki.ca.clone());
    cfg.client_cert = Some(pki.client_cert.clone());
    cfg.client_key = Some(pki.client_key.clone());
    cfg
}

#[test]
#[cfg(feature = "tls")]
fn tls_with_a_client_certificate_connects_and_a_wrong_ca_is_named() {
    let pki = pki();
    let broker = Mosquitto::start(MosquittoOptions {
        tls: Some(TlsListener {
            ca_file: pki.ca.clone(),
            cert_file: pki.server_cert.clone(),
            key_file: pki.server_key.clone(),
            require_certificate: true,
        }),
        ..Default::default()
    });
    let mut options = SubscriberOptions::new(broker.port(), "watcher", &["edgeclip/t/#"]);
    options.tls = Some(rumqttc::TlsConfiguration::Simple {
        ca: std::fs::read(&pki.ca).unwrap(),
        alpn: None,
        client_auth: Some((std::fs::read(&pki.client_cert).unwrap(), std::fs::read(&pki.client_key).unwrap())),
    });
    let sub = Subscriber::start(options);

    let client =
        MqttClient::start(&tls_config(&pki, broker.port(), "edgeclip-t"), "edgeclip/t/availability".into(), vec![])
            .unwrap();
    sub.wait_for_payload("edgeclip/t/availability", "online", Duration::from_secs(10));
    client.publish(event("edgeclip/t/cam/events", 7));
    assert_eq!(sub.receive("edgeclip/t/cam/events", 1, Duration::from_secs(5)), ["7"]);

    let mut wrong = tls_config(&pki, broker.port(), "edgeclip-t2");
    wrong.ca_file = Some(pki.other_ca.clone());
    let refused = MqttClient::start(&wrong, "edgeclip/t2/availability".into(), vec![]).unwrap();
    wait_until("the TLS failure", Duration::from_secs(5), || refused.stats().last_error.is_some());
    let error = refused.stats().last_error.unwrap();
    let expected = format!("mqtt.ca_file '{}'", pki.other_ca.display());
    assert!(error.starts_with("TLS with the MQTT broker at mqtts://localhost:"), "{error}");
    assert!(error.contains("not signed by the CA in") && error.contains(&expected), "{error}");
    assert!(!refused.stats().connected);
}

#[test]
#[cfg(feature = "tls")]
fn unusable_tls_files_are_named_at_start() {
    let pki = pki();
    let dir = tempfile::tempdir().unwrap();
    let garbage = write_file(dir.path(), "garbage.pem", b"not a certificate\n");
    let start = |cfg: &MqttConfig| match MqttClient::start(cfg, "a/availability".into(), vec![]) {
        Err(e @ MqttError::TlsFile { .. }) => e.to_string(),
        Err(e) => panic!("another error: {e}"),
        Ok(_) => panic!("started with {cfg:?}"),
    };
    let mut cfg = tls_config(&pki, 8883, "c");
    cfg.ca_file = Some(garbage.clone());
    assert_eq!(
        start(&cfg),
        format!(
            "mqtt.ca_file '{}': holds no certificate; expected PEM text with '-----BEGIN CERTIFICATE-----' blocks",
            garbage.display()
        )
    );
    let mut cfg = tls_config(&pki, 8883, "c");
    cfg.client_key = Some(pki.client_cert.clone());
    assert!(start(&cfg).starts_with(&format!("mqtt.client_key '{}': holds no private key", pki.client_cert.display())));
    let mut cfg = tls_config(&pki, 8883, "c");
    cfg.client_cert = Some(dir.path().join("missing.crt"));
    assert!(start(&cfg).starts_with("mqtt.client_cert '"), "{}", start(&cfg));
    assert!(start(&cfg).contains("missing.crt': cannot be read: "), "{}", start(&cfg));
}

#[test]
#[cfg(feature = "embedded-broker")]
fn the_embedded_broker_delivers_states_events_commands_and_the_last_will() {
    let broker = start_embedded_broker("127.0.0.1:0".parse().unwrap(), None, None).unwrap();
    let addr = broker.local_addr();
    assert_ne!(addr.port(), 0);
    let availability = "edgeclip/e/availability";
    let sub = Subscriber::connect(addr.port(), "watcher", &["edgeclip/e/#"]);
    let client = MqttClient::start(
        &config(Broker::Embedded { listen: addr, users: None }, "edgeclip-e"),
        availability.into(),
        vec!["edgeclip/e/+/enabled/set".into()],
    )
    .unwrap();
    sub.wait_for_payload(availability, "online", Duration::from_secs(10));
    for i in 0..5 {
        client.publish(event("edgeclip/e/cam/events", i));
    }
    client.publish(Message::retained("edgeclip/e/cam/cat/state".into(), b"ON".to_vec()));
    let jpeg = snapshot(2_000_000);
    client.publish(Message::retained("edgeclip/e/cam/cat/snapshot".into(), jpeg.clone()));
    assert_eq!(sub.receive("edgeclip/e/cam/events", 5, Duration::from_secs(5)), ["0", "1", "2", "3", "4"]);
    wait_until("all 7 are acknowledged", Duration::from_secs(5), || client.stats().published == 7);

    let kept = retained(addr.port(), "late", "edgeclip/e/#");
    assert_eq!(kept.get(availability).map(Vec::as_slice), Some(&b"online"[..]), "{:?}", kept.keys());
    assert_eq!(kept.get("edgeclip/e/cam/cat/state").map(Vec::as_slice), Some(&b"ON"[..]));
    assert!(kept.get("edgeclip/e/cam/cat/snapshot") == Some(&jpeg), "the snapshot is retained unchanged");
    if installed("mosquitto_sub") {
        let out = Command::new("mosquitto_sub")
            .args(["-h", "127.0.0.1", "-p", &addr.port().to_string(), "-t", "edgeclip/e/cam/cat/state"])
            .args(["-C", "1", "-W", "5", "-i", "mosquitto-sub-e"])
            .output_watched()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "ON\n", "{}", String::from_utf8_lossy(&out.stderr));
    }

    sub.publish("edgeclip/e/cam/enabled/set", b"ON", false);
    let command = client.incoming().recv_timeout(Duration::from_secs(5)).expect("the command within 5 s");
    assert_eq!(command.topic, "edgeclip/e/cam/enabled/set");

    let report = client.shutdown(Duration::from_secs(5));
    assert!(report.clean, "{report:?}");
    sub.wait_for_payload(availability, "offline", Duration::from_secs(5));

    a_killed_client_leaves_offline(addr.port());
}

#[test]
#[cfg(feature = "embedded-broker")]
fn the_embedded_broker_says_when_its_address_is_in_use() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let error = start_embedded_broker(addr, None, None).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "cannot start the embedded MQTT broker: {addr} is in use — is Mosquitto already running? \
             set mqtt.listen or use broker = \"mqtt://...\""
        )
    );
}
