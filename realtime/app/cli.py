"""Command line: ``python run.py [--input SRC] [--output DST ...] [options]`` and subcommands.

    python run.py                                   camera 0 -> virtual camera
    python run.py --input SRC --output DST [--output DST2] [--preset NAME|FILE.toml]
                  [--size WxH [--fit crop|pad]] [--stills] [--fps N] [--save-matte DIR] [--save-depth DIR]
    python run.py models list|fetch|verify
    python run.py bench [--size WxH ...] [--frames N] [--soak N] [--json FILE]
    python run.py doctor
    python run.py batch --input PATH [PATH...] --output DIR/ [options]   (needs the 'batch' extra: Ray)

Bad input gives one line on stderr saying what was wrong and how to fix it, and exit code 2
(``--debug`` shows the traceback instead). Outputs are checked against the input and each other
before anything is written (:mod:`realtime.io.paths`); the libraries' own log lines stay off the
terminal unless ``--debug`` (:mod:`realtime.app.libnoise`).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from typing import Callable, Sequence

# MediaPipe/TFLite log from C++ at import and model load; keep the terminal for our status.
os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from realtime.app.overrides import apply_focus  # noqa: E402,F401 (also used by run.py batch)
from realtime.core.errors import ConfigError, PortraitCamError, VirtualCameraUnavailableError  # noqa: E402
from realtime.core.threads import set_process_policy  # noqa: E402

PROG = "portrait-cam"
# The matte quality file jobs get unless --quality says otherwise; None = the preset's (fast in
# the shipped presets). "high" helps the mean over our sets but costs one of them more than the
# keep rule allows, so it is not the default (docs/matte.md, Quality mode).
FILE_QUALITY: str | None = None
log = logging.getLogger("realtime")
SUBCOMMANDS = ("models", "bench", "doctor", "batch")


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (what was wrong, where to look) and exit code 2."""

    def error(self, message: str):  # type: ignore[override]
        raise ConfigError(f"{message} (see '{self.prog} --help')")


def _size(text: str) -> tuple[int, int]:
    from realtime.io.sources import parse_size

    try:
        return parse_size(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _fps(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"fps '{text}' is not a number") from None
    if not 1.0 <= v <= 240.0:
        raise argparse.ArgumentTypeError(f"fps {text} is out of range; allowed 1..240")
    return v


def _frame_count(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--frames '{text}' is not a whole number") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"--frames {text} would process nothing; give N >= 1, or leave --frames "
                                         "out to process every frame")
    return v


def _port(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"port '{text}' is not a whole number") from None
    if not 0 <= v <= 65535:
        raise argparse.ArgumentTypeError(f"port {text} is out of range; allowed 0..65535 (0 = a free port)")
    return v


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="run.py", description="Real-time portrait mode: person matte, monocular depth and lens "
                "bokeh, sent to a virtual camera, a preview window or files.",
                epilog="Subcommands: 'models list|fetch|verify', 'bench', 'doctor', 'batch' (each has --help).")
    p.add_argument("--input", "-i", default="0", metavar="SRC",
                   help="camera index or /dev/videoN, video file, image file or folder of images (default: 0)")
    p.add_argument("--output", "-o", action="append", metavar="DST",
                   help="virtualcam[:DEVICE], pipewire[:NAME], preview, FILE.mp4, FILE.png|.jpg (one picture: an "
                        "image input or --frames 1), DIR/ (PNG frames), rgba:DIR/|FILE.png, matte:FILE.mp4|DIR/|FILE.png "
                        "or null; repeat for several (default: the PipeWire camera when a "
                        "PipeWire session runs, else v4l2loopback, else preview)")
    p.add_argument("--preset", "-p", default="portrait", metavar="NAME|FILE.toml",
                   help="preset name from configs/ or a TOML file (default: portrait)")
    p.add_argument("--size", type=_size, metavar="WxH",
                   help="size to fit file inputs to and to ask of the camera (default: camera 1280x720, files as "
                        "they are); the picture is scaled uniformly, never stretched (see --fit)")
    p.add_argument("--fit", choices=("crop", "pad"), default="crop",
                   help="how --size is met when the aspect differs: crop (default) fills it and cuts the centre out, "
                        "like phone and call apps; pad keeps the whole picture with black bars")
    p.add_argument("--stills", action="store_true",
                   help="a folder input holds separate photos: process each on its own, at its own size (default: "
                        "only when the names are not a numbered sequence like 00000.jpg 00001.jpg)")
    p.add_argument("--fps", type=_fps, metavar="N", help="camera and virtual camera frame rate (default: preset, 30)")
    p.add_argument("--save-matte", metavar="DIR", help="also write the final matte as 8-bit PNGs into DIR")
    p.add_argument("--save-depth", metavar="DIR", help="also write the final disparity (0..255, larger = nearer) as PNGs")
    p.add_argument("--focus", metavar="F",
                   help="focus override: 'face', 'person', a disparity 0..1 (e.g. 0.7) or a pixel X,Y (e.g. 640,360)")
    p.add_argument("--vcam-format", default="i420", metavar="FMT",
                   help="virtual camera pixel format: i420 (default), nv12, yuyv, uyvy, rgb, bgr (PipeWire: the "
                        "format offered first, what an app that takes any gets; the app may ask for another)")
    p.add_argument("--vcam-backend", metavar="NAME", help=argparse.SUPPRESS)  # tests: a registered pyvirtualcam backend
    p.add_argument("--live", action="store_true",
                   help="play a video file in real time as if it were a camera (demos, testing a call setup); "
                        "it LOOPS: the clip starts again at its end until Ctrl-C or --frames N")
    p.add_argument("--privacy", choices=("on", "off"),
                   help="on (default): when processing fails, show a blurred frame, never the raw camera; "
                        "off: show the raw frame (debugging only)")
    p.add_argument("--auto-quality", choices=("on", "off"), default="on",
                   help="live sources: step quality down when falling behind the frame rate, back up with headroom "
                        "(default on)")
    p.add_argument("--control", nargs="?", const=8765, type=_port, metavar="PORT",
                   help="serve the browser control page (live preview, knobs, click to focus; for OBS docks) on "
                        "127.0.0.1:PORT (default 8765; 0 = a free port) and print its address")
    p.add_argument("--control-bind", metavar="ADDR",
                   help="listen on ADDR instead of 127.0.0.1 and ::1 (reachable by others: use with care)")
    p.add_argument("--quality", choices=("fast", "high"),
                   help="matte quality: fast = one model run per frame on a window around the people; high = also "
                        "the other selfie model and the mirrored window, averaged, about three times the model's "
                        "time (default: the preset's segmentation.quality, fast in the shipped presets)")
    p.add_argument("--always-on", action="store_true",
                   help="live sources: keep camera and models running when no app reads the virtual camera "
                        "(by default they stop then, and start again within a second when an app opens it)")
    p.add_argument("--first-frame-marker", action="store_true", help=argparse.SUPPRESS)  # bench: startup time
    p.add_argument("--debug-strip", action="store_true",
                   help="write one picture to --output FILE.png instead of frames: input | output | matte | disparity | "
                        "CoC of the last frame processed (a still image is processed a few times so filters settle)")
    p.add_argument("--frames", type=_frame_count, metavar="N",
                   help="stop after N frames (N >= 1; leave it out to process every frame; stops a --live loop)")
    p.add_argument("--overwrite", action="store_true",
                   help="write PNG frames into a folder that already holds files (files of the same name are "
                        "replaced, others kept); without it such a folder is refused")
    p.add_argument("--failed-frames", choices=("fail", "keep"), default="fail",
                   help="file jobs: fail (default) = a frame whose processing failed is not written and the job "
                        "exits 1; keep = write the fail-closed frame (blurred or last good) and warn")
    p.add_argument("--quiet", "-q", action="store_true", help="no status line or progress bar")
    p.add_argument("--verbose", "-v", action="store_true", help="log more")
    p.add_argument("--debug", action="store_true", help="show Python tracebacks on errors")
    return p


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is now (the library noise filter repoints it)."""

    @property  # type: ignore[override]
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def _setup_logging(verbose: bool) -> None:
    root = logging.getLogger("realtime")
    if not root.handlers:
        h = _StderrHandler()
        h.setFormatter(logging.Formatter(f"{PROG}: %(message)s"))
        root.addHandler(h)
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    root.propagate = False


def run(args: argparse.Namespace) -> int:
    from realtime.io import sinks as sk
    from realtime.core.config import load_preset
    from realtime.app.loop import run_stream
    from realtime.pipeline import Pipeline
    from realtime.io.sources import open_source
    from realtime.app.status import StatusLine

    quality = [args.quality]  # set once the source is known (FILE_QUALITY for file jobs)

    def overrides(p, size=None):
        """Command-line overrides, applied to the preset at start and to every reloaded one."""
        if quality[0]:
            p = p.replace({"segmentation": {"quality": quality[0]}})
        if args.privacy:
            p = p.replace({"safety": {"privacy": args.privacy == "on"}})
        if args.focus and ("," not in args.focus or size is not None):
            p = apply_focus(p, args.focus, size)
        return p

    from realtime.app import outcome
    from realtime.app.interrupts import interrupt_guard
    from realtime.io.paths import check_job_paths, kept_summary

    check_job_paths(args.input, [] if args.debug_strip else list(args.output or []), save_matte=args.save_matte,
                    save_depth=args.save_depth)
    preset = overrides(load_preset(args.preset))
    if args.control_bind and args.control is None:
        raise ConfigError("--control-bind needs --control (the page's port)")
    if args.control is not None:
        from realtime.app.control.server import _aiohttp

        _aiohttp()  # a missing web library is said now, before the camera opens
    if args.debug_strip:
        return debug_strip(args, preset, overrides)
    fps = args.fps or preset.capture.fps
    backend = args.vcam_backend or os.environ.get(sk.VCAM_BACKEND_ENV)
    if args.output:
        outputs = list(args.output)
    else:
        choice, why = default_output(backend)
        outputs = [choice]
        if not args.quiet:
            print(f"{PROG}: no --output given: using {choice} ({why})", file=sys.stderr)

    # A missing loopback device is the most common setup problem: say so before opening the camera.
    for spec in outputs:
        if spec.lower().split(":")[0] == "virtualcam" and not backend and sys.platform.startswith("linux"):
            if not sk.loopback_devices():
                raise VirtualCameraUnavailableError(
                    f"no v4l2loopback virtual camera found; load it with: {sk.MODPROBE_FIX} "
                    "('python run.py doctor' checks the whole setup)")
    sinks = [sk.make_sink(o, vcam_format=args.vcam_format, vcam_backend=backend, fps=args.fps,
                          overwrite=args.overwrite) for o in outputs]
    if args.save_matte:
        sinks.append(sk.PngFolderSink(args.save_matte, "matte", args.overwrite))
    if args.save_depth:
        sinks.append(sk.PngFolderSink(args.save_depth, "depth", args.overwrite))

    opened: list = []  # the outputs opened so far
    report = None
    ok = False

    def say_what_was_kept() -> None:
        if not ok and any(getattr(s, "folder", None) and s.written for s in opened):
            print(f"{PROG}: the job did not finish; {kept_summary(opened)}", file=sys.stderr)

    # Everything opened here is closed in the reverse order on the way out, whatever happens:
    # the SIGTERM handler restored first, then the pipeline (its threads), the outputs (an
    # unfinished file output is discarded) and the source; last, what a failed job kept.
    with contextlib.ExitStack() as stack:
        stack.callback(say_what_was_kept)
        source = stack.enter_context(open_source(args.input, size=args.size, fps=fps, fourcc=preset.capture.fourcc,
                                                 camera_size=(preset.capture.width, preset.capture.height),
                                                 live=args.live, fit=args.fit, stills=args.stills or None))
        from realtime.io.stills import require_one_picture, require_one_size

        require_one_size(source, sinks)
        require_one_picture(source, sinks, args.frames)
        with interrupt_guard() as guard:  # the first SIGINT/SIGTERM stops the job, later ones only count
            if quality[0] is None and not source.live:
                quality[0] = FILE_QUALITY
            preset = overrides(preset, source.size)
            say = (lambda *a: None) if args.quiet else (lambda text: print(f"{PROG}: {text}", file=sys.stderr))
            out_fps = fps if source.live else (args.fps or source.fps)
            for s in sinks:
                stack.enter_context(s).open(source.width, source.height, out_fps)
                opened.append(s)
            say(f"input: {source.describe()}")  # for a camera: what it actually gave, next to what was asked
            for s in opened:
                say(f"output: {s.describe()}")
            status = StatusLine(quiet=args.quiet)
            from realtime.app import kernels

            def tell(text: str) -> None:  # said even with --quiet: a first start must not look hung
                status.done()
                print(f"{PROG}: {text}", file=sys.stderr, flush=True)

            # A first start compiles the kernels (in parallel child processes, saying so): a file
            # job waits for them (every frame of it is the lens's); a live source's frames take
            # the quick portrait meanwhile and the lens takes over when they are cached.
            cold = kernels.missing_modules()
            job = None
            if cold and source.live:
                job = stack.enter_context(kernels.CompileJob(cold))
                tell(f"compiling kernels, once ({', '.join(cold)} not in the Numba cache yet; about a minute "
                     "on 2 cores): a simple blur until then")
            elif cold:
                kernels.prepare(tell, status.update)
            status.done()
            # closed only once no worker thread can be inside one of its stages
            pipeline = stack.enter_context(outcome.closed_when_idle(Pipeline(preset), lambda: report))
            processor = pipeline
            if job is not None:
                from realtime.app.firststart import LensWhenReady

                processor = stack.enter_context(LensWhenReady(pipeline, job, source.size, tell))
            else:
                pipeline.warmup(source.size)
            on_result = _first_frame_marker(processor) if args.first_frame_marker else None
            from realtime.app.controls import Controller
            from realtime.app.session import Session

            # The one owner of the live settings: keys, file reload and the governor submit to it.
            with contextlib.closing(Session(pipeline, adjust=lambda p: overrides(p, source.size),
                                            live_reload=source.live)) as session, contextlib.ExitStack() as page:
                governor = session.governor(source.fps) if source.live and args.auto_quality == "on" else None
                controller = Controller(pipeline, session=session)
                for s in opened:
                    if isinstance(s, sk.PreviewSink):
                        controller.bind(s)
                # the control page (server, then its preview feed) is closed before the session
                feed = _start_control(args, session, controller, page) if args.control is not None else None
                outputs = [*opened, *([feed] if feed else [])]
                idle = None
                if source.live and not args.always_on:
                    from realtime.app.idle import IdleGate

                    idle = IdleGate(outputs, source, pipeline)
                with guard.deferred():  # signals set a flag the loop polls
                    report = run_stream(processor, source, outputs, status=status,
                                        max_frames=args.frames, on_result=on_result, governor=governor,
                                        session=session, write_failed=source.live or args.failed_frames == "keep",
                                        stop=guard, idle=idle)
            if report.interrupted and not source.live:
                ok = True  # stopped, not failed: this line says what was kept
                print(f"{PROG}: interrupted after {report.frames} frames; {kept_summary(opened)}", file=sys.stderr)
                return 130
            keep_failed = source.live or args.failed_frames == "keep"
            failures = outcome.finish_outputs(opened, complete=keep_failed or not report.failed_frames)
            code = outcome.exit_code(report, failures, live=source.live, keep_failed=keep_failed,
                                     damaged=getattr(source, "damaged", ()))
            ok = code == 0
            if not args.quiet and ok:
                where = ", ".join(s.describe() for s in opened)
                print(f"{PROG}: {report.frames} frames in {report.seconds:.1f} s ({report.fps:.1f} fps) -> {where}",
                      file=sys.stderr)
            return code


def _start_control(args: argparse.Namespace, session, controller, stack: contextlib.ExitStack):
    """Start the browser control page for this run (closed by ``stack``), print its address and
    return its preview sink."""
    import platformdirs

    from realtime.app.control.preview import PreviewFeed
    from realtime.app.control.server import ControlServer

    feed = stack.enter_context(PreviewFeed(session))
    server = stack.enter_context(ControlServer(session, feed, port=args.control, bind=args.control_bind,
                                               keys=controller.handle_key,
                                               presets_folder=platformdirs.user_config_path("portrait-cam") / "presets"))
    url = server.start()
    if args.control_bind:
        log.warning("warning: the control page listens on %s: anyone who can reach that address and has the link "
                    "controls the camera", args.control_bind)
    print(f"control page: {url}", flush=True)
    return feed


def default_output(vcam_backend: str | None = None) -> tuple[str, str]:
    """What ``python run.py`` with no ``--output`` sends to, and why: the PipeWire camera when a
    PipeWire session runs and its bindings are installed, else the v4l2loopback camera, else the
    preview window. Raises with both setup commands when none of them can work."""
    from realtime.io import pipewire
    from realtime.io import sinks as sk

    if vcam_backend:
        return "virtualcam", f"pyvirtualcam backend '{vcam_backend}'"
    if not sys.platform.startswith("linux"):
        return "virtualcam", "the OBS virtual camera"
    ok, why_not_pw = pipewire.available()
    if ok:
        return "pipewire", why_not_pw
    devices = sk.loopback_devices()
    if devices:
        return "virtualcam", f"v4l2loopback at {devices[0]}; no PipeWire camera: {why_not_pw}"
    if sk.has_display():
        log.warning("no virtual camera: no v4l2loopback device (load it with: %s) and no PipeWire camera (%s); "
                    "showing a preview window instead", sk.MODPROBE_FIX, why_not_pw)
        return "preview", "no virtual camera is available"
    raise VirtualCameraUnavailableError(
        f"no virtual camera: no v4l2loopback device (load it with: {sk.MODPROBE_FIX}) and no PipeWire camera "
        f"({why_not_pw}); 'python run.py doctor' checks the whole setup")


def debug_strip(args: argparse.Namespace, preset, overrides) -> int:
    """``--debug-strip``: run the pipeline on the input and write one labelled strip picture."""
    from realtime.app.debugviews import debug_strip as make_strip
    from realtime.io import safefiles
    from realtime.pipeline import Pipeline
    from realtime.io.sources import open_source

    outs = args.output or []
    if len(outs) != 1 or not outs[0].lower().endswith((".png", ".jpg", ".jpeg")):
        raise ConfigError("--debug-strip writes one picture: give exactly one --output FILE.png")
    target = outs[0]
    from realtime.io.paths import check_job_paths

    check_job_paths(args.input, [], picture=target)
    with open_source(args.input, size=args.size, fps=args.fps or preset.capture.fps, fourcc=preset.capture.fourcc,
                     camera_size=(preset.capture.width, preset.capture.height), fit=args.fit) as source:
        preset = overrides(preset, source.size)
        with Pipeline(preset) as pipe:
            pipe.warmup(source.size)
            limit = args.frames or (12 if source.total == 1 else 30)
            last, result, ts, n = None, None, 0, 0
            while n < limit:
                sf = source.read(timeout=2.0)
                if sf is None:
                    if source.ended and last is not None and source.total == 1:
                        sf_frame = last  # a still image: process it again so temporal filters settle
                    elif source.ended or source.live is False:
                        break
                    else:
                        continue
                else:
                    sf_frame = sf.frame
                last = sf_frame
                ts += 33
                result = pipe.process(sf_frame, ts)
                n += 1
            if result is None:
                raise ConfigError(f"--debug-strip: no frame could be read from {args.input}")
            strip = make_strip(last, result)
    safefiles.write_image(target, strip)
    if not args.quiet:
        print(f"{PROG}: wrote {target} ({strip.shape[1]}x{strip.shape[0]}, frame {n})", file=sys.stderr)
    return 0


def _guarded(fn: Callable[[], int], debug: bool) -> int:
    try:
        return fn()
    except PortraitCamError as e:
        if debug:
            raise
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


def _first_frame_marker(processor):
    """A per-frame hook that prints ``first-frame`` once (for launch-to-first-frame timing), and
    on a first start ``lens-frame`` once the lens rendered a frame."""
    done = set()

    def on_result(sf, result) -> None:
        if "first" not in done:
            done.add("first")
            print("first-frame", flush=True, file=sys.stderr)
        if "lens" not in done and result is not None and getattr(processor, "lens", True):
            done.add("lens")
            print("lens-frame", flush=True, file=sys.stderr)
    return on_result


def main(argv: Sequence[str] | None = None) -> int:
    """The program; ``argv`` None = this process's command line (then, once interrupted, late
    SIGINT/SIGTERM are ignored until the process has exited: its exit code stays 130)."""
    rc = _main(list(sys.argv[1:] if argv is None else argv))
    if argv is None and rc == 130:
        from realtime.app.interrupts import ignore_until_exit

        ignore_until_exit()
    return rc


def _main(argv: list[str]) -> int:
    debug = "--debug" in argv
    set_process_policy()
    _setup_logging("--verbose" in argv or "-v" in argv)
    from realtime.app.libnoise import LibraryNoiseFilter, quiet_environment

    if not debug:
        quiet_environment()
    with LibraryNoiseFilter(enabled=not debug):  # MediaPipe/TFLite/absl/FFmpeg lines only with --debug
        return _dispatch(argv, debug)


def _dispatch(argv: list[str], debug: bool) -> int:
    if argv and argv[0] in SUBCOMMANDS:
        cmd, rest = argv[0], [a for a in argv[1:] if a != "--debug"]
        if cmd == "models":
            from realtime.core import models

            return _guarded(lambda: models.main(rest), debug)
        if cmd == "bench":
            from realtime.devtools import bench

            return _guarded(lambda: bench.main(rest), debug)
        if cmd == "batch":
            from realtime.app import batch

            return _guarded(lambda: batch.main(rest), debug)
        from realtime.app import doctor

        return _guarded(lambda: doctor.main(rest), debug)

    def go() -> int:
        args = build_parser().parse_args(argv)
        return run(args)

    return _guarded(go, debug)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
