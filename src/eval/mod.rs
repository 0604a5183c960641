//! Event-level evaluation: a recording replayed through the daemon's
//! pipeline ([`replay`]) and its events scored against the recording's
//! ground truth ([`truth`], [`score`]): precision, recall, false events per
//! hour, start and end latency. `edgeclip eval-events` is the command.
//! [`calibrate`] sets each label's threshold from the scores a replay gave
//! it (`edgeclip calibrate`); [`pipeline`] builds a configured camera's
//! pipeline for both.

pub mod calibrate;
pub mod pipeline;
pub mod replay;
pub mod score;
pub mod truth;
