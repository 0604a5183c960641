//! The web page (`[web]`), against the daemon replaying the demo clip to a
//! real Mosquitto: in a real browser (headless Chromium through
//! chromedriver), behind a reverse proxy at a sub-path, every page and the
//! changes it makes, a wrong password and a cross-site write; and over
//! plain HTTP, the rules a browser would
//! not show (limits, paths, a page without a password).
//!
//! With `EDGECLIP_UPDATE_SCREENSHOTS=1` the browser test also writes its
//! screenshots of each page to docs/web/, which the README shows.

use std::io::Write;
use std::net::TcpListener;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::browser::Browser;
use crate::support::daemon::{broker_at, config, looping_source, Daemon, EVENTS_TOPIC};
use crate::support::http;
use crate::support::mosquitto::{free_port, Mosquitto, MosquittoOptions};
use crate::support::paths::repo;
use crate::support::process::{edgeclip_command, SpawnWatched};
use crate::support::proxy::SubPathProxy;
use crate::support::subscriber::Subscriber;

const PASSWORD: &str = "correct horse battery";

/// `edgeclip hash-password` of `password`.
fn hash_password(password: &str) -> String {
    let mut child = edgeclip_command()
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn_watched()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// The `[web]` table on `port`, with the password's hash if any.
fn web_table(port: u16, hash: Option<&str>) -> String {
    let mut t = format!("[web]\nenabled = true\nlisten = \"127.0.0.1:{port}\"\nframe_interval_s = 0.5\n");
    if let Some(h) = hash {
        t.push_str(&format!("password_hash = '{h}'\n"));
    }
    t
}

/// A process's resident memory, in KiB.
fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn screenshot(browser: &Browser, name: &str) {
    let png = browser.screenshot();
    assert!(png.starts_with(b"\x89PNG"), "a screenshot is a PNG");
    if std::env::var_os("EDGECLIP_UPDATE_SCREENSHOTS").is_some() {
        let dir = repo().join("docs/web");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }
}

/// Goes to page `name` of the page and waits for it to show.
fn open(browser: &Browser, name: &str) {
    browser.run(&format!("location.hash = '#{name}'"), &[]);
    browser.wait_for(name, Duration::from_secs(10), &format!("return !document.getElementById('{name}').hidden"));
}

#[test]
fn the_page_in_a_real_browser() {
    let mosquitto = Mosquitto::start(MosquittoOptions::default());
    let subscriber = Subscriber::connect(mosquitto.port(), "web-test", &["edgeclip/test/#"]);
    let port = free_port();
    let hash = hash_password(PASSWORD);
    let daemon =
        Daemon::start(&config(&broker_at(mosquitto.port()), &looping_source(10), &web_table(port, Some(&hash))));
    daemon.wait_stderr(Duration::from_secs(30), "web page on http://127.0.0.1:");
    // Through a reverse proxy at a sub-path, as a user exposes it.
    let proxy = SubPathProxy::start("/edgeclip", port);
    let page = format!("http://127.0.0.1:{}/edgeclip/", proxy.port);
    let browser = Browser::start(1100, 820);

    // A wrong password is refused, and nothing behind the login shows.
    browser.goto(&page);
    browser.wait_for("the login form", Duration::from_secs(10), "return !document.getElementById('login').hidden");
    browser.run(
        "document.getElementById('password').value = 'not the password';
         document.getElementById('login-form').requestSubmit();",
        &[],
    );
    let why = browser.wait_for(
        "the refusal",
        Duration::from_secs(10),
        "return document.getElementById('login-error').textContent || null",
    );
    assert_eq!(why, "wrong password");
    let status = browser.run("return fetch('api/events').then(r => r.status)", &[]);
    assert_eq!(status, 401, "the API without a session");
    assert!(daemon.stderr_text().contains("refused: wrong password"), "a failed login is logged");
    assert!(!daemon.stderr_text().contains("not the password"), "the password tried is in no log line");

    // The right one opens the live page: scores that follow the clip.
    browser.run(
        &format!(
            "document.getElementById('password').value = '{PASSWORD}';
             document.getElementById('login-form').requestSubmit();"
        ),
        &[],
    );
    browser.wait_for("the navigation", Duration::from_secs(10), "return !document.getElementById('nav').hidden");
    let mut tops: Vec<String> = Vec::new();
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(40) && tops.len() < 3 {
        let top = browser.run(
            "const b = document.querySelector('#live .bar');
             return b && Number(b.dataset.score) > 0.9 ? b.dataset.label : null",
            &[],
        );
        if let Some(label) = top.as_str() {
            if tops.last().map(String::as_str) != Some(label) {
                tops.push(label.to_string());
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(tops.len() >= 3, "the live page's top label changes with the clip: {tops:?}");
    let width = browser.wait_for(
        "the live frame",
        Duration::from_secs(10),
        "const i = document.querySelector('#live img.frame'); return i && i.naturalWidth || null",
    );
    assert_eq!(width, 640, "the live frame is the clip's");
    let bars = browser.run("return document.querySelectorAll('#live .bar .threshold').length", &[]);
    assert!(bars.as_u64().unwrap() >= 16, "each label that can fire shows its threshold: {bars}");
    screenshot(&browser, "live");

    // An event published over MQTT is on the events page with its snapshot.
    let events = subscriber.wait_for(Duration::from_secs(60), "a start event", |m| {
        m.iter().any(|r| r.topic == EVENTS_TOPIC && r.text().contains("\"start\""))
    });
    let first: Value = events
        .iter()
        .find(|r| r.topic == EVENTS_TOPIC && r.text().contains("\"start\""))
        .map(|r| serde_json::from_str(&r.text()).unwrap())
        .unwrap();
    open(&browser, "events");
    let shown = browser.wait_for(
        "the event with its snapshot",
        Duration::from_secs(15),
        "const a = [...document.querySelectorAll('#events .event')].find(a => a.querySelector('img').naturalWidth > 0);
         return a ? a.querySelector('strong').textContent : null",
    );
    let labels_seen =
        browser.run("return [...document.querySelectorAll('#events .event strong')].map(s => s.textContent)", &[]);
    assert!(labels_seen.as_array().unwrap().contains(&first["label"]), "{labels_seen} lacks {}", first["label"]);
    assert!(shown.is_string());
    // A text search ranks the events.
    browser.run(
        "document.getElementById('events-text').value = 'a red circle';
         document.getElementById('events-form').requestSubmit();",
        &[],
    );
    browser.wait_for(
        "search results",
        Duration::from_secs(30),
        "return document.getElementById('events-note').textContent.includes('most like') || null",
    );
    screenshot(&browser, "events");

    // The scores over time, with their events shaded.
    open(&browser, "scores");
    browser.wait_for(
        "a chart with events",
        Duration::from_secs(15),
        "const c = document.getElementById('scores-chart'); return Number(c.dataset.points) > 10 && Number(c.dataset.events) > 0 || null",
    );
    screenshot(&browser, "scores");

    // Calibration on the last minute proposes a threshold per label; with
    // the minute's events ticked as right, between the scene and them; and
    // applies the checked ones to the file.
    subscriber.wait_for(Duration::from_secs(60), "two events ended", |m| {
        m.iter().filter(|r| r.topic == EVENTS_TOPIC && r.text().contains("\"end\"")).count() >= 2
    });
    open(&browser, "calibrate");
    browser.run(
        "document.getElementById('calibrate-minutes').value = 1;
         document.getElementById('calibrate-form').requestSubmit();",
        &[],
    );
    let rows = browser.wait_for(
        "the proposals",
        Duration::from_secs(30),
        "const n = document.querySelectorAll('#calibrate-table tr').length - 1; return n > 0 ? n : null",
    );
    assert_eq!(rows, 16, "a proposal per label that can fire");
    let ticked = browser.run(
        "const boxes = [...document.querySelectorAll('#calibrate-events input')];
         boxes.forEach(b => b.checked = true);
         document.getElementById('calibrate-again').click();
         return boxes.length",
        &[],
    );
    assert!(ticked.as_u64().unwrap() >= 2, "the minute's events are offered: {ticked}");
    let separated = browser.wait_for(
        "proposals with visits",
        Duration::from_secs(30),
        "return document.getElementById('calibrate-note').textContent.includes(' 0 events taken') ? null :
           [...document.querySelectorAll('#calibrate-table td')].filter(td => td.textContent === 'separated').length || null",
    );
    assert!(separated.as_u64().unwrap() >= 1, "{separated}");
    screenshot(&browser, "calibrate");
    browser.run(
        "document.querySelectorAll('#calibrate-table input').forEach(b => b.checked = true);
         document.getElementById('calibrate-apply').click()",
        &[],
    );
    browser.wait_for(
        "the thresholds written",
        Duration::from_secs(15),
        "return document.getElementById('calibrate-result').textContent.includes('thresholds into') || null",
    );
    let calibrated = std::fs::read_to_string(daemon.labels_file()).unwrap();
    assert_eq!(calibrated.lines().filter(|l| l.contains(" @0.")).count(), 16, "{calibrated}");

    // Labels: a mistake is shown with its line; an edit is previewed, saved,
    // and changes what the daemon publishes.
    open(&browser, "labels");
    browser.wait_for(
        "the labels file",
        Duration::from_secs(10),
        "return document.getElementById('labels-text').value.includes('red-circle') || null",
    );
    let original = std::fs::read_to_string(daemon.labels_file()).unwrap();
    assert!(original.contains("\nred-circle @0."), "the calibrated threshold is in the file:\n{original}");
    browser.run(
        "const t = document.getElementById('labels-text');
         t.value = t.value.replace(/^red-circle[^:]*: a red circle$/m, 'red-circle @1.5: a red circle');
         document.getElementById('labels-check').click();",
        &[],
    );
    let mistake = browser.wait_for(
        "the mistake",
        Duration::from_secs(30),
        "const r = document.getElementById('labels-result'); return r.className === 'error' ? r.textContent : null",
    );
    let line = original.lines().position(|l| l.starts_with("red-circle ")).unwrap() + 1;
    assert!(mistake.as_str().unwrap().contains(&format!(":{line}: threshold '@1.5'")), "{mistake}");
    browser.run(
        "const t = document.getElementById('labels-text');
         t.value = t.value.replace('red-circle @1.5: a red circle', 'a red thing: a red circle');
         document.getElementById('labels-check').click();",
        &[],
    );
    browser.wait_for(
        "the preview",
        Duration::from_secs(60),
        "return document.querySelector('#labels-preview .bar[data-label=\"a red thing\"]') && document.getElementById('labels-result').textContent === 'valid' || null",
    );
    screenshot(&browser, "labels");
    browser.run("document.getElementById('labels-save').click()", &[]);
    browser.wait_for(
        "the save",
        Duration::from_secs(60),
        "return document.getElementById('labels-result').textContent.startsWith('saved') || null",
    );
    assert!(std::fs::read_to_string(daemon.labels_file()).unwrap().contains("\na red thing: a red circle\n"));
    // The label no longer there has its retained state cleared, and the
    // new one fires when the red circle comes round again.
    subscriber.wait_for(Duration::from_secs(30), "the old label's state cleared", |m| {
        m.iter().any(|r| r.topic == "edgeclip/test/demo/red-circle/state" && r.payload.is_empty())
    });
    subscriber.wait_for(Duration::from_secs(60), "an event of the new label", |m| {
        m.iter().any(|r| r.topic == EVENTS_TOPIC && r.text().contains("\"label\":\"a red thing\""))
    });

    open(&browser, "status");
    browser.wait_for(
        "the status",
        Duration::from_secs(10),
        "return document.getElementById('status-body').textContent.includes('frame_to_publish') || null",
    );
    screenshot(&browser, "status");

    // A page of another origin (same site: 127.0.0.1 on another port, so
    // the session cookie goes along) posts to the API: refused, and the
    // labels file is untouched.
    let before = std::fs::read_to_string(daemon.labels_file()).unwrap();
    let evil = EvilPage::serve(&format!("{page}api/labels/save"));
    browser.goto(&format!("http://127.0.0.1:{}/", evil.port));
    browser.wait_for("the other page's attempts", Duration::from_secs(15), "return document.title === 'sent' || null");
    std::thread::sleep(Duration::from_millis(500));
    browser.goto(&page);
    browser.wait_for("the navigation", Duration::from_secs(10), "return !document.getElementById('nav').hidden");
    let web = browser.run("return fetch('api/status').then(r => r.json()).then(s => s.web)", &[]);
    assert!(web["refused_cross_site"].as_u64().unwrap() >= 2, "{web}");
    assert_eq!(std::fs::read_to_string(daemon.labels_file()).unwrap(), before, "a cross-site write changed nothing");
    assert!(daemon.stderr_text().contains("cross-site write"), "refusals are logged");
    assert!(!daemon.stderr_text().contains(PASSWORD), "the password is in no log line");

    // An open page (its live stream) does not hold up the daemon's stop.
    open(&browser, "live");
    browser.wait_for("live scores", Duration::from_secs(10), "return document.querySelector('#live .bar') || null");
    let mut daemon = daemon;
    let stopped = std::time::Instant::now();
    assert!(daemon.stop().success());
    assert!(stopped.elapsed() < Duration::from_secs(5), "the stop took {:?}", stopped.elapsed());
}

/// A page on another port (another origin of the same site) that tries two writes to the daemon's API the
/// ways another site could: a form post and a `no-cors` fetch.
struct EvilPage {
    port: u16,
}

impl EvilPage {
    fn serve(target: &str) -> EvilPage {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let body = json!({ "camera": "demo", "file": 0, "text": "pwned: a pwned label\n" }).to_string();
        let html = format!(
            r#"<!doctype html><title>evil</title>
<form id="f" method="POST" action="{target}" enctype="text/plain" target="sink">
<input type="hidden" name='{{"camera":"demo","file":0,"text":"pwned","x":"' value='"}}'></form>
<iframe name="sink"></iframe>
<script>
fetch("{target}", {{ method: "POST", mode: "no-cors", credentials: "include",
  headers: {{ "Content-Type": "text/plain" }}, body: {body:?} }})
  .finally(() => {{ document.getElementById("f").submit(); setTimeout(() => document.title = "sent", 1000); }});
</script>"#
        );
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut buf = [0u8; 4096];
                let _ = std::io::Read::read(&mut stream, &mut buf);
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{html}",
                    html.len()
                );
            }
        });
        EvilPage { port }
    }
}

#[test]
fn the_api_refuses_what_it_should() {
    let mosquitto = Mosquitto::start(MosquittoOptions::default());
    let port = free_port();
    let hash = hash_password(PASSWORD);
    let daemon =
        Daemon::start(&config(&broker_at(mosquitto.port()), &looping_source(10), &web_table(port, Some(&hash))));
    daemon.wait_stderr(Duration::from_secs(30), "web page on http://127.0.0.1:");
    let get = |target: &str, headers: &[(&str, &str)]| http::request(port, "GET", target, headers, b"");

    // The page itself is public and small; the API is not.
    let index = get("/", &[]);
    assert_eq!(index.status, 200);
    assert!(index.header("content-security-policy").unwrap().contains("default-src 'none'"));
    let weight: usize = ["/", "/app.js", "/style.css"].iter().map(|p| get(p, &[]).body.len()).sum();
    eprintln!("the page weighs {weight} bytes (HTML, script and style)");
    assert!(weight < 48 * 1024, "the page weighs {weight} bytes");
    assert_eq!(get("/api/events", &[]).status, 401);
    // No file outside the embedded page is reachable.
    for path in [
        "/../../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/app.js/../../Cargo.toml",
        "/api/events/..%2f1/snapshot.jpg",
    ] {
        let r = get(path, &[]);
        assert!(matches!(r.status, 400 | 401 | 404), "{path}: {}", r.status);
        assert!(!r.text().contains("root:"), "{path}");
    }

    // Log in.
    let login = |password: &str| {
        http::request(
            port,
            "POST",
            "/api/login",
            &[("Content-Type", "application/json")],
            json!({ "password": password }).to_string().as_bytes(),
        )
    };
    let ok = login(PASSWORD);
    assert_eq!(ok.status, 200);
    let cookie = ok.header("set-cookie").unwrap().split(';').next().unwrap().to_string();
    assert!(ok.header("set-cookie").unwrap().contains("HttpOnly; SameSite=Strict"));
    let csrf = ok.json()["csrf"].as_str().unwrap().to_string();
    let with = [("Cookie", cookie.as_str())];
    assert_eq!(get("/api/events", &with).status, 200);

    // A body beyond the limit is refused before it is read whole.
    let big = vec![b'a'; 400 * 1024];
    let r = http::request(
        port,
        "POST",
        "/api/labels/check",
        &[("Cookie", &cookie), ("Content-Type", "application/json"), ("X-Edgeclip-Csrf", &csrf)],
        &big,
    );
    assert_eq!(r.status, 413);
    // A labels text may not name example images its file does not.
    let sneaky = json!({ "camera": "demo", "file": 0, "text": "x: image:/etc/\n" }).to_string();
    let r = http::request(
        port,
        "POST",
        "/api/labels/save",
        &[("Cookie", &cookie), ("Content-Type", "application/json"), ("X-Edgeclip-Csrf", &csrf)],
        sneaky.as_bytes(),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("example image the file does not name"), "{}", r.text());
    // Nor ask the text encoder for more than a command may.
    let prompts: Vec<String> = (0..300).map(|i| format!("a thing number {i}")).collect();
    let greedy = json!({ "camera": "demo", "file": 0, "text": format!("many: {}\n", prompts.join("; ")) }).to_string();
    let r = http::request(
        port,
        "POST",
        "/api/labels/check",
        &[("Cookie", &cookie), ("Content-Type", "application/json"), ("X-Edgeclip-Csrf", &csrf)],
        greedy.as_bytes(),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("300 new prompts to embed"), "{}", r.text());
    // Without the CSRF token, or from another origin: refused.
    let r = http::request(
        port,
        "POST",
        "/api/enabled",
        &[("Cookie", &cookie), ("Content-Type", "application/json")],
        br#"{"camera":"demo","enabled":false}"#,
    );
    assert_eq!(r.status, 403);
    let r = http::request(
        port,
        "POST",
        "/api/enabled",
        &[
            ("Cookie", &cookie),
            ("Content-Type", "application/json"),
            ("X-Edgeclip-Csrf", &csrf),
            ("Origin", "http://evil.example"),
        ],
        br#"{"camera":"demo","enabled":false}"#,
    );
    assert_eq!(r.status, 403);

    // Five wrong passwords a minute, then none is even checked.
    for _ in 0..5 {
        assert_eq!(login("wrong password here").status, 401);
    }
    let r = login(PASSWORD);
    assert_eq!(r.status, 429, "{}", r.text());
    assert!(r.text().contains("failed logins in the last minute"), "{}", r.text());
    // Keeping every inferred frame's scores does not make the daemon grow by
    // the frame (it did by 1.4 MB a second, from heap fragmentation).
    // (After the daemon's first seconds, in which it settles.)
    std::thread::sleep(Duration::from_secs(3));
    let before = rss_kb(daemon.pid());
    std::thread::sleep(Duration::from_secs(5));
    let grown = rss_kb(daemon.pid()).saturating_sub(before);
    assert!(grown < 2048, "with the page on, the daemon grew by {grown} KiB in 5 s");
    drop(daemon);

    // Without a password (loopback only): the page shows, changes nothing,
    // and refuses what came through a proxy.
    let port = free_port();
    let daemon = Daemon::start(&config(&broker_at(mosquitto.port()), &looping_source(10), &web_table(port, None)));
    daemon.wait_stderr(Duration::from_secs(30), "web page on http://127.0.0.1:");
    let session = http::request(port, "GET", "/api/session", &[], b"").json();
    assert_eq!(session["changes"], false);
    assert_eq!(http::request(port, "GET", "/api/events", &[], b"").status, 200);
    let r = http::request(
        port,
        "POST",
        "/api/enabled",
        &[("Content-Type", "application/json")],
        br#"{"camera":"demo","enabled":false}"#,
    );
    assert_eq!(r.status, 403);
    assert!(r.text().contains("need a password"), "{}", r.text());
    let r = http::request(port, "GET", "/api/events", &[("X-Forwarded-For", "203.0.113.7")], b"");
    assert_eq!(r.status, 403, "{}", r.text());
}
