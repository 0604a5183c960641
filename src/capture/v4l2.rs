//! V4L2 capture devices (PLACEHOLDER).
