//! Publishing over MQTT: the topics edgeclip uses and Home Assistant's
//! discovery messages.
//!
//! (The client thread with its offline queue, the embedded broker and the
//! command topics come with the daemon.)

pub mod discovery;
pub mod topics;
