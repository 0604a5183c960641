//! edgeclip: zero-shot CLIP detections from a camera on ARM boards.
//!
//! The library holds every stage; the `edgeclip` binary only parses its
//! command line and calls into [`cli`]. A frame's path through the modules,
//! which is also the tree's:
//!
//! - [`capture`]: cameras and recordings hand out frames (V4L2, a camera
//!   command's MJPEG, a file, an RTSP camera's H.264 decoded to NV12),
//!   copied once into a latest-frame slot;
//! - [`pipeline`]: per frame, conversion to RGB, the motion gate,
//!   classification (preprocessing, the image encoder, matching against the
//!   labels) and detection (scores over time to start and end events);
//! - [`store`]: the event history on disk (SQLite): each event with its
//!   snapshot and embedding, committed before it is published, and the
//!   outbox of messages the broker has not acknowledged;
//! - [`publish`]: events, states, snapshots, stats and Home Assistant
//!   discovery over MQTT (and the embedded broker);
//! - [`daemon`]: `edgeclip run`, which runs the above per camera and owns the
//!   main loop;
//! - [`web`]: the page the daemon serves, which shows the scores live and
//!   over time, the history, and edits labels and thresholds.
//!
//! Beside the frame's path: [`model`] is the model bundle and everything
//! that turns pixels or text into embeddings (preprocessing, the encoders,
//! the tokenizer); [`labels`] is what the camera looks for, from the labels
//! file to the label embeddings the matcher uses; [`config`] reads the
//! daemon's configuration file; [`gpio`] drives relays and LEDs from events
//! and gates inference on a motion sensor; [`cli`] is one file per
//! subcommand; [`search`] ranks the history against a text, an image or
//! another event, on the board or across every board on a broker; [`util`] holds what several stages share.

pub mod capture;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod eval;
pub mod gpio;
pub mod labels;
pub mod model;
pub mod pipeline;
pub mod publish;
pub mod search;
pub mod store;
pub mod util;
pub mod web;
