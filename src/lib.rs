//! edgeclip: zero-shot CLIP detections from a camera on ARM boards.
//!
//! The library holds every stage; the `edgeclip` binary only sets up logging
//! and calls [`cli`], which parses its command line and runs the subcommand
//! it names, one module each. Data flows one way through the modules:
//! [`capture`] (camera or recording to RGB frames) → [`preprocess`] (frame
//! to tensor) → [`encode`] (tensor to embedding, with tract, from the model
//! on disk, [`bundle`]) → [`matcher`] (embedding to label scores) →
//! [`detect`] (scores to events). On the text side, [`labels`] reads what
//! the camera looks for, [`tokenize`] turns a prompt into CLIP's token ids,
//! and [`labelset`] finds or computes the label embeddings (with
//! `encode::text`). [`classify`] strings the stages together for one frame,
//! [`evaluate`] measures accuracy on labelled images, and [`mjpeg`] splits
//! Motion-JPEG streams into frames. [`daemon`] is `edgeclip run`: it strings
//! capture, classification and detection together per camera, with
//! [`config`] for its settings, [`publish`] for MQTT and Home Assistant, and
//! [`gpio`] for relays, LEDs and motion sensors on the board's pins.

pub mod bundle;
pub mod capture;
pub mod classify;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod detect;
pub mod encode;
pub mod evaluate;
pub mod gpio;
pub mod labels;
pub mod labelset;
pub mod log_limit;
pub mod matcher;
pub mod mjpeg;
pub mod preprocess;
pub mod publish;
pub mod tokenize;
