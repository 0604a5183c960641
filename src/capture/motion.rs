//! motion source (PLACEHOLDER).
