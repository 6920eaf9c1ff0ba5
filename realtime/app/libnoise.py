"""Keep the libraries' own log lines off the user's terminal unless ``--debug``.

MediaPipe, TFLite/LiteRT, absl/glog, onnxruntime and FFmpeg (inside OpenCV) write straight to
file descriptor 2 from C++, at import, model load, first inference and shutdown, whatever
Python's logging says; environment variables silence only some of them. So for the length of a
command, fd 2 is a pipe read by a filter thread: a line that matches a known library pattern is
dropped, every other line (a crash report, anything unexpected) passes through unchanged.
Python's own ``sys.stderr`` is pointed at the real terminal, so the project's lines and the
progress bar never wait behind the filter.
"""

from __future__ import annotations

import io
import os
import re
import sys
import threading

# Environment read by the libraries when they load (before the first import of mediapipe/ORT).
QUIET_ENV = {"GLOG_minloglevel": "2", "TF_CPP_MIN_LOG_LEVEL": "3", "ABSL_MIN_LOG_LEVEL": "3",
             "ORT_LOGGING_LEVEL": "3", "OPENCV_LOG_LEVEL": "ERROR", "OPENCV_FFMPEG_LOGLEVEL": "-8"}

NOISE = re.compile(
    r"^(INFO: |WARNING: Logging before InitGoogle|WARNING: All log messages before absl"
    r"|[IWE]\d{4} [\d:.]+ +\d+ [\w./-]+:\d+\]"            # absl/glog: W0000 00:00:1796.2 123 file.cc:12]
    r"|\[[\w,]+ @ 0x[0-9a-f]+\]"                          # FFmpeg: [mov,mp4,m4a,3gp,3g2,mj2 @ 0x55...]
    r"|\[ ?(WARN|INFO|ERROR):\d+@[\d.]+\]"                 # OpenCV: [ WARN:0@0.1] global cap_ffmpeg...
    r"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ \[[WI]:onnxruntime"  # onnxruntime
    r"|WARNING: Created TensorFlow Lite|Created TensorFlow Lite)")


def quiet_environment() -> None:
    """Set the libraries' log levels in the environment (kept where the user set them)."""
    for k, v in QUIET_ENV.items():
        os.environ.setdefault(k, v)


class LibraryNoiseFilter:
    """Context manager: fd 2 through the filter thread; no-op when disabled (``--debug``)."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.dropped: list[str] = []
        self._saved_fd: int | None = None
        self._thread: threading.Thread | None = None
        self._old_stderr = None
        self._real_stderr = None

    def __enter__(self) -> "LibraryNoiseFilter":
        if not self.enabled:
            return self
        try:
            sys.stderr.flush()
            self._saved_fd = os.dup(2)
        except (OSError, ValueError, AttributeError):
            return self
        r, w = os.pipe()
        os.dup2(w, 2)
        os.close(w)
        try:
            python_on_fd2 = sys.stderr.fileno() == 2
        except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
            python_on_fd2 = False
        if python_on_fd2:  # our own lines go straight to the terminal, not through the pipe
            self._old_stderr = sys.stderr
            self._real_stderr = io.TextIOWrapper(io.FileIO(os.dup(self._saved_fd), "w"), encoding=sys.stderr.encoding,
                                                 errors="backslashreplace", line_buffering=True, write_through=True)
            sys.stderr = self._real_stderr
        self._thread = threading.Thread(target=self._pump, args=(r,), name="portrait-cam-libnoise", daemon=True)
        self._thread.start()
        return self

    def _pump(self, r: int) -> None:
        buf = b""
        try:
            while True:
                chunk = os.read(r, 65536)
                if not chunk:
                    break
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    self._line(line + b"\n")
            if buf:
                self._line(buf)
        finally:
            os.close(r)

    def _line(self, raw: bytes) -> None:
        text = raw.decode("utf-8", "replace").rstrip("\r\n")
        if NOISE.match(text.lstrip("\r")):
            self.dropped.append(text)
            return
        try:
            os.write(self._saved_fd, raw)  # type: ignore[arg-type]
        except (OSError, TypeError):
            pass  # the terminal is gone (or the filter is closing): nothing to show it on

    def __exit__(self, *exc) -> None:
        if self._saved_fd is None:
            return
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        if self._old_stderr is not None:
            sys.stderr = self._old_stderr
            self._real_stderr.close()  # type: ignore[union-attr]
        os.dup2(self._saved_fd, 2)  # closes the pipe's write end: the filter reads to its end
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        os.close(self._saved_fd)
        self._saved_fd = None
