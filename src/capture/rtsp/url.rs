//! The `rtsp://` source spec: the camera's URL with edgeclip's own settings,
//! and the user and password taken out of it.
//!
//! `rtsp://[user:password@]host[:port]/path[?transport=tcp|udp&fps=N]`. Any
//! other query parameters belong to the camera (Dahua's
//! `?channel=1&subtype=1`) and stay in the URL it is sent. The password is
//! kept apart from the URL from here on: what is logged, published in stats
//! or shown by `edgeclip check-config` is [`RtspOptions`]'s `Display`, which
//! writes `***` for it, and the RTSP client is given the URL without
//! credentials and the credentials separately (it uses them only to answer
//! the camera's digest or basic challenge).

use std::fmt;
use std::time::Duration;

use url::Url;

/// How RTP packets travel from the camera.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Interleaved in the RTSP connection: one TCP connection, through any
    /// NAT or firewall, and no packet is lost to a busy Wi-Fi link. The
    /// default, as in Frigate and go2rtc.
    Tcp,
    /// Separate UDP ports: a little less latency, but a lost packet is a
    /// broken frame and a NAT in between stops the stream.
    Udp,
}

/// No frame from a playing stream for this long means the camera or the
/// network is stuck: cameras send at least one frame a second, and a
/// keyframe every few seconds.
pub const DEFAULT_RTSP_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the camera is and how to read it.
#[derive(Clone, PartialEq)]
pub struct RtspOptions {
    /// The URL sent to the camera: no user or password, no edgeclip settings.
    pub url: Url,
    pub user: Option<String>,
    pub password: Option<String>,
    pub transport: Transport,
    /// Hand the pipeline at most this many frames a second (every frame
    /// when `None`); frames nothing refers to are then not even decoded.
    pub fps: Option<f64>,
    /// No frame within this long is a timeout, and a reconnect.
    pub timeout: Duration,
    /// Reconnection delays: first and longest.
    pub retry_first: Duration,
    pub retry_max: Duration,
}

impl fmt::Debug for RtspOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the password, even in a debug dump.
        write!(f, "RtspOptions({self})")
    }
}

impl RtspOptions {
    /// Parses an `rtsp://` spec; the error says what was wrong without
    /// repeating the password.
    pub fn parse(spec: &str) -> Result<RtspOptions, String> {
        let mut url = Url::parse(spec).map_err(|e| format!("not a valid URL ({e})"))?;
        if url.scheme() != "rtsp" {
            return Err(format!("scheme '{}' is not rtsp", url.scheme()));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err("the URL has no host".into());
        }
        let decode = |s: &str| {
            percent_decode(s).ok_or_else(|| "the user or password is not valid percent-encoded UTF-8".to_string())
        };
        let user = Some(url.username()).filter(|u| !u.is_empty()).map(decode).transpose()?;
        let password = url.password().map(decode).transpose()?;
        if password.is_some() && user.is_none() {
            return Err("a password needs a user name (rtsp://user:password@host/...)".into());
        }
        let mut options = RtspOptions {
            url: url.clone(),
            user,
            password,
            transport: Transport::Tcp,
            fps: None,
            timeout: DEFAULT_RTSP_TIMEOUT,
            retry_first: super::super::BACKOFF_FIRST,
            retry_max: super::super::BACKOFF_MAX,
        };
        let mut camera_query = Vec::new();
        for (key, value) in url.query_pairs() {
            match key.as_ref() {
                "transport" => {
                    options.transport = match value.as_ref() {
                        "tcp" => Transport::Tcp,
                        "udp" => Transport::Udp,
                        other => return Err(format!("transport '{other}' is not tcp or udp")),
                    }
                }
                "fps" => {
                    let fps: f64 = value
                        .parse()
                        .ok()
                        .filter(|f: &f64| f.is_finite() && *f > 0.0)
                        .ok_or_else(|| format!("fps '{value}' is not a number above 0"))?;
                    options.fps = Some(fps);
                }
                _ => camera_query.push((key.into_owned(), value.into_owned())),
            }
        }
        // The URL the camera gets: its own query, no credentials.
        let _ = url.set_username("");
        let _ = url.set_password(None);
        if camera_query.is_empty() {
            url.set_query(None);
        } else {
            url.query_pairs_mut().clear().extend_pairs(&camera_query);
        }
        options.url = url;
        Ok(options)
    }

    /// The URL as logs show it: the user, but `***` for a password.
    pub fn redacted_url(&self) -> String {
        let mut shown = self.url.clone();
        if let Some(user) = &self.user {
            let _ = shown.set_username(user);
            if self.password.is_some() {
                let _ = shown.set_password(Some("***"));
            }
        }
        shown.to_string()
    }
}

impl fmt::Display for RtspOptions {
    /// The one-line form, password redacted, with the settings that differ
    /// from the defaults.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut shown = self.redacted_url();
        let mut settings = Vec::new();
        if self.transport == Transport::Udp {
            settings.push("transport=udp".to_string());
        }
        if let Some(fps) = self.fps {
            settings.push(format!("fps={fps}"));
        }
        if !settings.is_empty() {
            shown.push(if self.url.query().is_some() { '&' } else { '?' });
            shown.push_str(&settings.join("&"));
        }
        f.write_str(&shown)
    }
}

/// `%XX` escapes decoded, as a URL's user and password are written.
fn percent_decode(s: &str) -> Option<String> {
    percent_encoding::percent_decode_str(s).decode_utf8().ok().map(|s| s.into_owned())
}

/// `spec` with the password of an `rtsp://` URL in it replaced by `***`,
/// for error messages about a spec that did not parse.
pub fn redact_spec(spec: &str) -> String {
    let Some(rest) = spec.strip_prefix("rtsp://") else { return spec.to_string() };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((credentials, host)) => match credentials.split_once(':') {
            Some((user, _)) => format!("rtsp://{user}:***@{host}{tail}"),
            None => spec.to_string(),
        },
        None => spec.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_and_credentials_come_out_of_the_url() {
        let o = RtspOptions::parse(
            "rtsp://admin:p%40ss:word@192.168.1.20:554/cam/realmonitor?channel=1&subtype=1&transport=udp&fps=2.5",
        )
        .unwrap();
        assert_eq!(o.url.as_str(), "rtsp://192.168.1.20:554/cam/realmonitor?channel=1&subtype=1");
        assert_eq!((o.user.as_deref(), o.password.as_deref()), (Some("admin"), Some("p@ss:word")));
        assert_eq!((o.transport, o.fps), (Transport::Udp, Some(2.5)));
        let shown = o.to_string();
        assert_eq!(
            shown,
            "rtsp://admin:***@192.168.1.20:554/cam/realmonitor?channel=1&subtype=1&transport=udp&fps=2.5"
        );
        assert!(!format!("{o:?}").contains("word"));

        let o = RtspOptions::parse("rtsp://127.0.0.1:8554/front").unwrap();
        assert_eq!((&o.user, &o.password, o.transport, o.fps), (&None, &None, Transport::Tcp, None));
        assert_eq!(o.to_string(), "rtsp://127.0.0.1:8554/front");
    }

    #[test]
    fn mistakes_are_named_without_the_password() {
        for (spec, problem) in [
            ("rtsp://cam/x?transport=quic", "transport 'quic' is not tcp or udp"),
            ("rtsp://cam/x?fps=0", "fps '0' is not a number above 0"),
            ("rtsp://:secret@cam/x", "a password needs a user name (rtsp://user:password@host/...)"),
            ("rtsp:///x", "the URL has no host"),
        ] {
            assert_eq!(RtspOptions::parse(spec).unwrap_err(), problem, "{spec}");
        }
        assert_eq!(redact_spec("rtsp://u:secret@cam:554/a?b=1"), "rtsp://u:***@cam:554/a?b=1");
        assert_eq!(redact_spec("rtsp://cam/a"), "rtsp://cam/a");
    }
}
