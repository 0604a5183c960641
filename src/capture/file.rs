//! file source (PLACEHOLDER).
