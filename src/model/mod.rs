//! The model: everything that turns pixels or text into CLIP embeddings.
//!
//! A model is a directory with a manifest ([`bundle`]) that states every
//! number the other steps need. [`preprocess`] turns an RGB frame into the
//! image encoder's input tensor exactly as CLIP's Python preprocessing does;
//! [`encode`] runs the image and text encoders with tract; [`tokenize`] turns
//! a prompt into CLIP's token ids for the text encoder. [`evaluate`] measures
//! a model's zero-shot accuracy on a labelled folder of images.

pub mod bundle;
pub mod encode;
pub mod evaluate;
pub mod preprocess;
pub mod tokenize;
