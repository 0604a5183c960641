//! `edgeclip devices`: the V4L2 capture devices (cameras) under `/dev`, with
//! the stable names, formats, sizes and rates a `v4l2:` source can ask for.

use std::io::Write;

/// `edgeclip devices`: lists the cameras (see [`crate::capture::v4l2::list_devices`]).
pub fn devices(out: &mut dyn Write) -> anyhow::Result<()> {
    crate::capture::v4l2::list_devices(out)
}
