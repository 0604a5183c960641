//! TLS for the broker connection (`mqtts://` brokers): the rustls
//! configuration from `mqtt.ca_file` (or the system's CA certificates) and an
//! optional client certificate, checked when the client starts so that a
//! wrong file is reported at once, and the words for a failed handshake.
//! Without the cargo feature `tls` only a stub is left, which refuses a TLS
//! broker with an error that says how to get one.

#[cfg(feature = "tls")]
use std::path::Path;
#[cfg(feature = "tls")]
use std::sync::Arc;

use rumqttc::Transport;

use super::{MqttError, Target};
use crate::config::MqttConfig;

/// The TLS transport for `target`, with the files `config` names.
#[cfg(feature = "tls")]
pub(super) fn transport(config: &MqttConfig, target: &Target) -> Result<Transport, MqttError> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    fn open(key: &'static str, path: &Path) -> Result<std::io::BufReader<std::fs::File>, MqttError> {
        std::fs::File::open(path).map(std::io::BufReader::new).map_err(|e| MqttError::TlsFile {
            key,
            path: path.into(),
            problem: format!("cannot be read: {e}"),
        })
    }
    fn certificates(key: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, MqttError> {
        let certs = rustls_pemfile::certs(&mut open(key, path)?)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| MqttError::TlsFile { key, path: path.into(), problem: format!("is not a PEM file: {e}") })?;
        if certs.is_empty() {
            return Err(MqttError::TlsFile {
                key,
                path: path.into(),
                problem: "holds no certificate; expected PEM text with '-----BEGIN CERTIFICATE-----' blocks".into(),
            });
        }
        Ok(certs)
    }
    fn private_key(key: &'static str, path: &Path) -> Result<PrivateKeyDer<'static>, MqttError> {
        rustls_pemfile::private_key(&mut open(key, path)?)
            .map_err(|e| MqttError::TlsFile { key, path: path.into(), problem: format!("is not a PEM file: {e}") })?
            .ok_or_else(|| MqttError::TlsFile {
                key,
                path: path.into(),
                problem: "holds no private key; expected PEM text with a '-----BEGIN PRIVATE KEY-----' \
                          (or RSA / EC PRIVATE KEY) block"
                    .into(),
            })
    }

    let mut roots = rustls::RootCertStore::empty();
    match &config.ca_file {
        Some(path) => {
            for cert in certificates("mqtt.ca_file", path)? {
                roots.add(cert).map_err(|e| MqttError::TlsFile {
                    key: "mqtt.ca_file",
                    path: path.clone(),
                    problem: format!("holds a certificate that cannot be a CA: {e}"),
                })?;
            }
        }
        None => {
            let problem = |problem: String| MqttError::NoSystemCertificates { broker: target.display.clone(), problem };
            let certs = rustls_native_certs::load_native_certs().map_err(|e| problem(e.to_string()))?;
            let (added, _ignored) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(problem("none found; Debian's are in the package ca-certificates".into()));
            }
        }
    }
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    let tls = match (&config.client_cert, &config.client_key) {
        (Some(cert), Some(key)) => {
            let chain = certificates("mqtt.client_cert", cert)?;
            let private = private_key("mqtt.client_key", key)?;
            builder.with_client_auth_cert(chain, private).map_err(|e| MqttError::TlsFile {
                key: "mqtt.client_key",
                path: key.clone(),
                problem: format!("cannot be used with mqtt.client_cert '{}': {e}", cert.display()),
            })?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Transport::tls_with_config(rumqttc::TlsConfiguration::Rustls(Arc::new(tls))))
}

/// Built without TLS: a TLS broker cannot be used.
#[cfg(not(feature = "tls"))]
pub(super) fn transport(_config: &MqttConfig, target: &Target) -> Result<Transport, MqttError> {
    Err(MqttError::TlsNotBuilt { broker: target.display.clone() })
}

/// What a failed TLS handshake means, for the person at the board: the
/// error with a hint at the configuration key to check.
#[cfg(feature = "tls")]
pub(super) fn describe_error(error: &rumqttc::TlsError, target: &Target, ca_file: Option<&Path>) -> String {
    let broker = &target.display;
    // Without the "I/O: " that rumqttc puts before a handshake's error.
    let text = match error {
        rumqttc::TlsError::Io(e) => e.to_string(),
        e => e.to_string(),
    };
    let hint = if text.contains("UnknownIssuer") || text.contains("BadSignature") {
        match ca_file {
            Some(ca) => format!(
                "; the broker's certificate is not signed by the CA in mqtt.ca_file '{}': is it the right file?",
                ca.display()
            ),
            None => "; the broker's certificate is not signed by a CA this system trusts: set mqtt.ca_file to \
                         the CA that signed it"
                .to_string(),
        }
    } else if text.contains("NotValidForName") {
        format!(
            "; the broker's certificate is not issued for '{}': use a name it is issued for in mqtt.broker",
            target.host
        )
    } else if text.contains("Expired") || text.contains("NotValidYet") {
        "; is this board's clock right?".to_string()
    } else if text.contains("CertificateRequired") || text.contains("HandshakeFailure") {
        "; does the broker want a client certificate (mqtt.client_cert, mqtt.client_key)?".to_string()
    } else {
        String::new()
    };
    format!("TLS with the MQTT broker at {broker} failed: {text}{hint}")
}

#[cfg(all(test, not(feature = "tls")))]
mod tests {
    #[test]
    fn without_tls_an_mqtts_broker_is_a_clear_error() {
        use std::time::Duration;

        use crate::config::{Broker, MqttConfig};
        use crate::publish::mqtt::MqttClient;

        let config = MqttConfig {
            broker: Broker::External { host: "mqtt.lan".into(), port: 8883, tls: true },
            client_id: "c".into(),
            username: None,
            password: None,
            ca_file: None,
            client_cert: None,
            client_key: None,
            topic_prefix: "edgeclip".into(),
            commands: false,
            qos: 1,
            keepalive: Duration::from_secs(30),
            offline_queue: 10,
            stats_interval: Duration::from_secs(60),
            scores_interval: None,
        };
        let Err(e) = MqttClient::start(&config, "a".into(), vec![]) else { panic!("started without TLS") };
        assert!(
            e.to_string()
                .starts_with("mqtt.broker 'mqtts://mqtt.lan:8883' needs TLS, but this edgeclip was built without it"),
            "{e}"
        );
    }
}
