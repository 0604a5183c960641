//! JPEG decoding for MJPEG frames (PLACEHOLDER; see `convert`).
