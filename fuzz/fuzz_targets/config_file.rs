//! Fuzzes the daemon's configuration parser: no input may panic, an error
//! names a line of the file, and a configuration that parses keeps the
//! promises the daemon relies on (names usable as MQTT topic levels and
//! within the length cap, numbers in their ranges, rates a clock can hold,
//! an embedded broker beyond loopback only with users).
#![no_main]

use std::path::Path;

use edgeclip::config::{Broker, Config};
use libfuzzer_sys::fuzz_target;

fn is_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // A folder that does not exist: relative paths in the file resolve
    // into it, so no file of this machine is read.
    let path = Path::new("/nonexistent-fuzz-dir/edgeclip.toml");
    let config = match Config::parse(path, text) {
        Ok(config) => config,
        Err(e) => {
            assert!(e.line <= text.lines().count() + 1, "line {} of {}", e.line, text.lines().count());
            assert!(!e.message.is_empty());
            return;
        }
    };
    assert!(is_name(&config.node), "{:?}", config.node);
    assert!(config.mqtt.qos <= 2);
    assert!(config.mqtt.keepalive.as_secs() >= 5 && config.mqtt.offline_queue >= 1);
    assert!(config.mqtt.topic_prefix.split('/').all(is_name));
    if let Broker::Embedded { listen, users } = &config.mqtt.broker {
        assert!(listen.ip().is_loopback() || users.as_ref().is_some_and(|u| !u.is_empty()));
    }
    for camera in &config.cameras {
        assert!(is_name(&camera.name), "{:?}", camera.name);
        assert!(camera.max_fps.is_none_or(|f| (0.001..=1000.0).contains(&f)), "{:?}", camera.max_fps);
        assert!((0.0..=1.0).contains(&camera.threshold));
        // What the daemon builds from the rates: must not panic.
        if let Some(f) = camera.max_fps {
            let _ = std::time::Duration::from_secs_f64(1.0 / f);
        }
    }
});
