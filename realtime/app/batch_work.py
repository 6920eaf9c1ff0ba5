"""The work a batch worker does: one job, one chunk of a long video, or joining the chunks.

A :class:`BatchWorker` lives in one worker process for the whole batch (Ray makes it an actor;
nothing here imports Ray). It builds the pipeline once, so the models are loaded once per worker,
and resets it before each job: a job then writes exactly what the single file job
``run.py --input X --output Y`` writes, through the same source, loop and sinks.

A chunk (output frames ``start..end`` of a video) is run from ``start - warmup``: the warm-up
frames go through the pipeline so its temporal state at ``start`` is close to the one-pass state,
but only frames from ``start`` on reach the outputs. Video outputs of a chunk are written as
lossless PNG intermediates; :meth:`BatchWorker.join` encodes them once, through the same video
writer a single job uses.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import cv2
import numpy as np

from realtime.core.errors import PortraitCamError
from realtime.io.sinks import OutputFrame, PngFolderSink, Sink, VideoFileSink
from realtime.io.sources import ImageFolderSource, VideoFileSource

_PLANES = {"video": "frame", "png": "frame", "rgba": "rgba", "matte-video": "matte", "matte-png": "matte",
           "matte-side": "matte", "depth-side": "depth"}


class _FromIndex(Sink):
    """Passes frames from output index ``start`` on to ``inner`` (warm-up frames are not written)."""

    def __init__(self, inner: Sink, start: int) -> None:
        super().__init__()
        self.inner = inner
        self.start = start
        self.wants_matte = inner.wants_matte

    def open(self, width: int, height: int, fps: float) -> None:
        self.inner.open(width, height, fps)

    def write(self, out: OutputFrame) -> None:
        if out.index >= self.start:
            self.inner.write(out)
            self.written += 1

    def finish(self) -> None:
        self.inner.finish()

    def _release(self) -> None:
        self.inner.close()

    def describe(self) -> str:
        return self.inner.describe()


class _SkippingVideo(VideoFileSource):
    """A video file that can move past frames, decoding but not converting them (a decoder has
    to see every frame since the last key frame anyway)."""

    def skip(self, n: int) -> None:
        for _ in range(max(0, n)):
            if self._i > 0 and not self._cap.grab():
                self.ended = True
                return
            self._i += 1


class _SkippingImages(ImageFolderSource):
    """A folder of frames that can move past images without reading them."""

    def skip(self, n: int) -> None:
        self._i = min(self.total, self._i + max(0, n))


class _Progress:
    """Counts written frames and hands them to the driver's counter every half second."""

    def __init__(self, counter, start: int = 0) -> None:
        self.counter = counter
        self.start = start
        self.pending = 0
        self.total = 0
        self._last = time.monotonic()

    def __call__(self, sf, result) -> None:
        if sf.index < self.start:
            return
        self.pending += 1
        self.total += 1
        now = time.monotonic()
        if now - self._last >= 0.5:
            self.flush()
            self._last = now

    def flush(self) -> None:
        if self.pending and self.counter is not None:
            self.counter.add.remote(self.pending)
        self.pending = 0


def _sink_for(kind: str, path: str, fps: float | None) -> Sink:
    plane = _PLANES[kind]
    if kind.endswith("video"):
        return VideoFileSink(path, plane, fps)
    return PngFolderSink(path, plane, overwrite=True)   # a batch temporary: ours, shared by the chunks


def _fresh(path: str) -> None:
    """Remove a temporary left by an interrupted run (only ever a batch temporary)."""
    p = Path(path)
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p)
    elif p.exists() or p.is_symlink():
        p.unlink()


class BatchWorker:
    """One pipeline per worker process, reused for every job and chunk it is given."""

    def __init__(self, preset_spec: str, focus: str | None = None, size: tuple[int, int] | None = None,
                 counter=None, fit: str = "crop", stills: bool = False, quality: str | None = None) -> None:
        os.environ.setdefault("GLOG_minloglevel", "2")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        from realtime.app.overrides import apply_focus
        from realtime.core.config import load_preset
        from realtime.pipeline import Pipeline

        self.preset = load_preset(preset_spec)
        # without --quality a single file job runs the preset's quality (realtime.app.cli.FILE_QUALITY
        # is None; tests/test_batch.py holds the two in step)
        if quality:
            self.preset = self.preset.replace({"segmentation": {"quality": quality}})
        self.focus = focus
        self.size = size
        self.fit = fit
        self.stills = stills or None   # None: a folder's names decide (numbered frames or stills)
        self.counter = counter
        self._apply_focus = apply_focus
        self.pipeline = Pipeline(apply_focus(self.preset, focus) if focus and "," not in focus else self.preset)
        self._warm: tuple[int, int] | None = None
        self.jobs_done = 0

    def ping(self) -> int:
        return os.getpid()

    def _prepare(self, source) -> None:
        if self.focus and "," in self.focus:
            # a pixel focus depends on the frame size: the pipeline takes it per source
            self.pipeline.apply(self._apply_focus(self.preset, self.focus, source.size))
        self.pipeline.reset()
        if self._warm != source.size:
            self.pipeline.warmup(source.size)   # as a single job does before its first frame (ends in a reset)
            self._warm = source.size

    def run(self, job: dict, chunk: tuple[int, int] | None = None, warmup: int = 0,
            frames: int | None = None) -> dict:
        """Process ``job`` (or one chunk of it) into its temporary outputs.

        Returns ``{"frames": written}`` or ``{"error": reason}``; never raises for a bad input.
        """
        from realtime.app.loop import run_stream
        from realtime.io.sources import open_source

        progress = _Progress(self.counter, chunk[0] if chunk else 0)
        sinks: list[Sink] = []
        source = None
        try:
            from realtime.io.stills import require_one_size

            fps_in = self.preset.capture.fps   # what a single job gives a folder of frames
            if chunk is None:
                source = open_source(job["input"], size=self.size, fps=fps_in, fit=self.fit, stills=self.stills)
            elif job["source_kind"] == "video":
                source = _SkippingVideo(Path(job["input"]), size=self.size, fit=self.fit)
            else:
                source = _SkippingImages.from_folder(Path(job["input"]), size=self.size, fps=fps_in, fit=self.fit,
                                                     stills=self.stills)
            fps = source.fps
            # as a single job: differently sized stills cannot go into one video
            require_one_size(source, [VideoFileSink(t["tmp"]) for t in job["targets"]
                                      if t["spec_kind"].endswith("video")])
            first = 0
            limit = frames
            if chunk is not None:
                start, end = chunk
                first = max(0, start - warmup)
                if first:
                    source.skip(first)
                stop = end if end >= 0 else (frames if frames is not None else None)
                limit = None if stop is None else stop - first
                for i, t in enumerate(job["targets"]):
                    if t["spec_kind"].endswith("video"):
                        inner: Sink = PngFolderSink(Path(job["chunk_dir"]) / str(i), _PLANES[t["spec_kind"]],
                                                    overwrite=True)
                    else:
                        inner = _sink_for(t["spec_kind"], t["tmp"], None)
                    sinks.append(_FromIndex(inner, start))
            else:
                for t in job["targets"]:
                    _fresh(t["tmp"])
                    sinks.append(_sink_for(t["spec_kind"], t["tmp"], None))
            for s in sinks:
                s.open(source.width, source.height, fps)
            self._prepare(source)
            report = run_stream(self.pipeline, source, sinks, max_frames=limit, on_result=progress)
            progress.flush()
            if report.interrupted:
                return {"error": "interrupted"}
            if report.failed_sinks:
                return {"error": "; ".join(report.failed_sinks)}
            if report.failed_frames:
                reasons = ", ".join(f"{k} ({n} frames)" for k, n in report.failures.items())
                return {"error": f"processing failed on {report.failed_frames} frames: {reasons}"}
            for s in sinks:
                s.finish()
            written = progress.total
            if chunk is None and written == 0:
                return {"error": "no frames could be read"}
            self.jobs_done += 1
            return {"frames": written, "fps": fps}
        except PortraitCamError as e:
            return {"error": str(e)}
        except Exception as e:  # one bad file must not take the worker down
            return {"error": f"{type(e).__name__}: {e}"}
        finally:
            progress.flush()
            for s in reversed(sinks):
                s.close()
            if source is not None:
                source.close()

    def join(self, job: dict, fps: float) -> dict:
        """Encode the chunks' intermediate frames of each video output once, in frame order."""
        try:
            frames = 0
            for i, t in enumerate(job["targets"]):
                if not t["spec_kind"].endswith("video"):
                    continue
                folder = Path(job["chunk_dir"]) / str(i)
                names = sorted(p for p in folder.iterdir() if p.suffix == ".png" and not p.name.startswith("."))
                if not names:
                    return {"error": "no frames were written by the chunks"}
                _fresh(t["tmp"])
                sink = VideoFileSink(t["tmp"], _PLANES[t["spec_kind"]], fps)
                try:
                    frames = self._encode(sink, names, fps)
                    sink.finish()
                finally:
                    sink.close()
            shutil.rmtree(job["chunk_dir"], ignore_errors=True)
            return {"frames": frames}
        except PortraitCamError as e:
            return {"error": str(e)}
        except Exception as e:
            return {"error": f"joining the chunks failed: {type(e).__name__}: {e}"}

    @staticmethod
    def _encode(sink: VideoFileSink, names: list[Path], fps: float) -> int:
        n = 0
        for k, p in enumerate(names):
            img = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
            if img is None:
                raise PortraitCamError(f"intermediate frame {p} cannot be read")
            if n == 0:
                sink.open(img.shape[1], img.shape[0], fps)
            if img.ndim == 2:
                out = OutputFrame(np.empty(img.shape + (3,), np.uint8), img, None, p.stem, k, 0.0)
            else:
                out = OutputFrame(img, None, None, p.stem, k, 0.0)
            sink.write(out)
            n += 1
        return n

    def close(self) -> None:
        self.pipeline.close()
