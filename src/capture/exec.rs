//! exec source (PLACEHOLDER).
