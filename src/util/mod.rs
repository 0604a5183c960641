//! Small tools that several stages share and that belong to none of them:
//! [`backoff`], the waiting between attempts that cameras, camera commands
//! and the MQTT connection make after a failure; [`log_limit`], logging of a
//! repeated problem at a bounded rate; [`untrusted`], outside text made safe
//! for a log line; [`file`](mod@file), reading files that someone names, with care;
//! and [`fault`], the points where tests of a debug build inject faults.

pub mod backoff;
pub mod fault;
pub mod file;
pub mod log_limit;
pub mod untrusted;
