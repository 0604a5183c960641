//! Publishing over MQTT: the topics edgeclip uses ([`topics`]), Home
//! Assistant's discovery messages ([`discovery`]), and the client that
//! delivers them ([`mqtt`]: one thread around rumqttc, with a bounded offline
//! queue so that what is published while the broker is away arrives in order
//! once it is back, TLS and credentials).

pub mod discovery;
pub mod mqtt;
pub mod topics;
