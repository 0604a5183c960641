//! Small tools that several stages share and that belong to none of them:
//! [`backoff`], the waiting between attempts that cameras, camera commands
//! and the MQTT connection make after a failure, and [`log_limit`], logging
//! of a repeated problem at a bounded rate.

pub mod backoff;
pub mod log_limit;
