#!/usr/bin/env python3
"""A real RTSP server for the tests: GStreamer's gst-rtsp-server (Debian's
gir1.2-gst-rtsp-server-1.0), serving one recording at rtsp://127.0.0.1:PORT/PATH.

    rtsp_server.py PORT PATH FILE [USER PASSWORD]

FILE is a Matroska file holding H.264 (made by the test from the demo clip
with ffmpeg), sent at its own pace (10 fps for the demo clip), each client
from its first frame, as a camera would send it live; or an MJPEG stream
(`.mjpeg`, the demo clip itself), re-encoded by GStreamer's jpegenc as RTP
JPEG (RFC 2435) needs, and sent as fast as it is encoded. With USER and
PASSWORD, clients must log in with digest authentication, as IP cameras ask.
Prints "listening PORT" once the port is bound; runs until killed.
"""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402


def main():
    port, path, clip = sys.argv[1], sys.argv[2], sys.argv[3]
    login = sys.argv[4:6]
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    if clip.endswith(".mjpeg"):
        factory.set_launch(
            f"( filesrc location={clip} ! jpegparse ! jpegdec ! videoconvert "
            f"! video/x-raw,format=I420 ! jpegenc ! rtpjpegpay name=pay0 pt=26 )"
        )
    else:
        # config-interval=-1: SPS and PPS before every keyframe, as cameras send.
        factory.set_launch(
            f"( filesrc location={clip} ! matroskademux ! h264parse "
            f"! rtph264pay name=pay0 pt=96 config-interval=-1 )"
        )
    factory.set_shared(False)
    if login:
        user, password = login
        auth = GstRtspServer.RTSPAuth()
        auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
        token = GstRtspServer.RTSPToken()
        token.set_string("media.factory.role", user)
        auth.add_digest(user, password, token)
        server.set_auth(auth)
        permissions = GstRtspServer.RTSPPermissions()
        permissions.add_permission_for_role(user, "media.factory.access", True)
        permissions.add_permission_for_role(user, "media.factory.construct", True)
        factory.set_permissions(permissions)
    server.get_mount_points().add_factory("/" + path, factory)
    if server.attach(None) == 0:
        sys.exit(f"cannot listen on port {port}")
    print(f"listening {server.get_bound_port()}", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
