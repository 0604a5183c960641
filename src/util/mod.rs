//! Small pieces that several stages share and that belong to none of them.

pub mod log_limit;
