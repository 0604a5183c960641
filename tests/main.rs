//! The integration tests, in one binary (one link, one run).
//!
//! Numerical tests compare against golden files in `tests/data/golden/` that
//! independent implementations produced (Pillow and transformers'
//! `CLIPImageProcessor` for preprocessing, onnxruntime for embeddings);
//! `tools/testdata/make_test_data.sh` regenerates them.
//!
//! The MQTT tests run a real Mosquitto per test (`mosquitto`, the Debian
//! package that tools/test.sh installs) on a free port. `support/` holds
//! what the test modules share: the data paths, process spawning, the
//! Mosquitto harness, the recording subscriber and the daemon harness.

mod support;

mod boards;
mod bundle_errors;
mod calibrate;
mod capture;
mod cli;
mod config;
mod convert;
mod daemon;
mod demo_model;
mod encoder;
mod eval;
mod eval_events;
mod examples;
mod faults;
mod fold;
mod gpio;
mod h264;
mod hard_clip;
mod history;
mod kernels;
mod labels_emb;
mod labelset;
mod matcher;
mod mqtt;
mod payloads;
mod preprocess;
mod rtsp;
mod text_encoder;
mod tokenize;
mod v4l2;
mod web;
mod zones;
