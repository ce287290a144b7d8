"""A looping RTSP test server: serves the H.264 video of a clip at rtsp://127.0.0.1:PORT/PATH.

Run with the *system* Python, where the GStreamer gi bindings live (not in the venv)::

    /usr/bin/python3 tests/rtsp_server.py --port 8554 --clip samples/vtest.mp4 [--path /cam]
        [--cache clip.ts]

An mp4 clip's H.264 track is copied once, unchanged, into MPEG-TS (kept at ``--cache`` when
given); a ``.ts`` clip is served as it is. One shared GstRtspServer media reads it in a loop,
forever, at the clip's frame rate, with continuous RTP timestamps across the loops. Prints
``READY <url>`` on stdout once the server listens; exits cleanly on SIGTERM or SIGINT.

Why MPEG-TS rather than a bare H.264 elementary stream (``multifilesrc loop=true ! h264parse``):
an elementary stream has no timestamps; h264parse then sets DTS only, so the media is paced
but every RTP packet carries the same timestamp (clients see pts 0 for every frame). MPEG-TS
keeps each frame's PTS/DTS, and tsdemux turns the jump back at each loop into continuous
time.

The media is made non-seekable, as a camera's is, by publishing its clock and offset (the one
setting that makes GstRtspServer 1.22 treat a media as unseekable): otherwise, since tsdemux
says it can seek, a client joining the shared media with a PLAY ``Range: npt=0.000-`` (as FFmpeg
sends) has the server rewind the stream of everyone else, and as that seek fails in tsdemux,
the server answers 503 and the media is broken.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
from pathlib import Path

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

HOST = "127.0.0.1"
EXTRACT_TIMEOUT_S = 60


def extract_h264(clip: Path, out: Path) -> None:
    """Copy the mp4 clip's H.264 track, with its timestamps, into MPEG-TS at ``out``.

    Writes to a temporary file beside ``out`` and renames it, so a concurrent reader of the
    cache never sees a partial file.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=out.name + ".", suffix=".part", dir=out.parent)
    os.close(fd)
    try:
        pipeline = Gst.parse_launch(
            f"filesrc location={quote(clip)} ! qtdemux ! h264parse"
            " ! mpegtsmux"
            f" ! filesink location={quote(Path(tmp))}"
        )
        pipeline.set_state(Gst.State.PLAYING)
        msg = pipeline.get_bus().timed_pop_filtered(
            EXTRACT_TIMEOUT_S * Gst.SECOND, Gst.MessageType.EOS | Gst.MessageType.ERROR
        )
        pipeline.set_state(Gst.State.NULL)
        if msg is None:
            raise RuntimeError(f"extracting H.264 from {clip} took over {EXTRACT_TIMEOUT_S}s")
        if msg.type == Gst.MessageType.ERROR:
            err, debug = msg.parse_error()
            raise RuntimeError(f"extracting H.264 from {clip}: {err.message} ({debug})")
        if os.path.getsize(tmp) == 0:
            raise RuntimeError(f"{clip} has no H.264 video track")
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def quote(path: Path) -> str:
    """``path`` as a quoted gst-launch property value."""
    text = str(path.resolve())
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def launch_line(stream: Path) -> str:
    """The media pipeline: the MPEG-TS, looped; the server's sinks pace it by its timestamps."""
    return (
        f"( multifilesrc location={quote(stream)} loop=true ! tsdemux"
        " ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=1 )"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--clip",
        type=Path,
        required=True,
        help="an mp4 with H.264 video, or an MPEG-TS (.ts) with H.264 video",
    )
    parser.add_argument("--path", default="/cam", help="mount point (default /cam)")
    parser.add_argument(
        "--cache",
        "--h264",
        dest="cache",
        type=Path,
        help="where to keep an mp4's H.264 copied into MPEG-TS; reused while newer than the clip",
    )
    args = parser.parse_args(argv)
    path = args.path if args.path.startswith("/") else "/" + args.path
    if not args.clip.is_file():
        parser.error(f"no such clip: {args.clip}")

    Gst.init(None)
    tmpdir: tempfile.TemporaryDirectory[str] | None = None
    stream: Path = args.cache
    if args.clip.suffix.lower() == ".ts":
        stream = args.clip
    elif stream is None:
        tmpdir = tempfile.TemporaryDirectory(prefix="rtsp-server-")
        stream = Path(tmpdir.name) / "clip.ts"
    try:
        if stream != args.clip and (
            not stream.exists() or stream.stat().st_mtime < args.clip.stat().st_mtime
        ):
            extract_h264(args.clip, stream)

        server = GstRtspServer.RTSPServer()
        server.set_address(HOST)
        server.set_service(str(args.port))
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(launch_line(stream))
        factory.set_shared(True)
        # Not seekable (see the module's docstring); adds RFC 7273 clock lines to the SDP.
        factory.set_publish_clock_mode(GstRtspServer.RTSPPublishClockMode.CLOCK_AND_OFFSET)
        server.get_mount_points().add_factory(path, factory)

        loop = GLib.MainLoop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            GLib.unix_signal_add(GLib.PRIORITY_HIGH, sig, _quit, loop)
        if server.attach(None) == 0:
            print(f"cannot listen on {HOST}:{args.port}", file=sys.stderr, flush=True)
            return 1
        print(f"READY rtsp://{HOST}:{args.port}{path}", flush=True)
        loop.run()
        # Close the clients' connections (and with them the media) before exiting.
        server.client_filter(lambda _server, _client: GstRtspServer.RTSPFilterResult.REMOVE)
        return 0
    finally:
        if tmpdir is not None:
            tmpdir.cleanup()


def _quit(loop: GLib.MainLoop) -> bool:
    loop.quit()
    return GLib.SOURCE_REMOVE


if __name__ == "__main__":
    sys.exit(main())
