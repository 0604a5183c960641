//! The per-frame pipeline, in the order a frame goes through it:
//!
//! 1. [`convert`]: the camera's pixel format (MJPEG through [`jpeg`], YUYV,
//!    NV12, RGB24, GREY) to an RGB image, shrunk on the way when the frame is
//!    much larger than the encoder's input;
//! 2. [`motion`]: the motion gate, which skips frames whose scene has not
//!    changed since the last inferred one;
//! 3. [`classify`]: preprocessing, the image encoder and [`matcher`] (the
//!    embedding against every label's text embedding, as probabilities);
//! 4. [`detect`]: per label, scores over time become start and end events.
//!
//! [`inference`] strings the steps together for one camera, one frame at a
//! time ([`inference::Inference::step`]); the daemon runs one per camera
//! thread, and the `classify` and `eval` commands use [`classify`] alone.

pub mod classify;
pub mod convert;
pub mod detect;
pub mod inference;
pub mod jpeg;
pub mod matcher;
pub mod motion;
pub mod zone;
