"""The streaming loop: source -> pipeline -> sinks, with timing, status and clean shutdown.

Fail closed (see :mod:`realtime.app.failsafe`): the pipeline runs under a watchdog; when it fails
or stalls, sinks get the last good rendered frame for a short gap, then a fully blurred frame,
never the raw camera frame (unless ``privacy`` is off, for debugging). When a live camera is
lost, live outputs (virtual camera, preview) show a "camera unavailable" card while the source
reconnects. A sink that fails is reported and stopped; the others keep running.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from realtime.core.errors import SinkError
from realtime.app.failsafe import Watchdog, privacy_frame, unavailable_card
from realtime.app.idle import IdleGate
from realtime.pipeline import Pipeline, Result
from realtime.app.scaling import QualityGovernor
from realtime.app.session import Session
from realtime.io.sinks import OutputFrame, Sink
from realtime.io.sources import Source, SourceFrame
from realtime.app.status import Stats, StatusLine, format_progress, format_status, status_fields

log = logging.getLogger(__name__)


@dataclass
class RunReport:
    frames: int = 0
    seconds: float = 0.0
    dropped: int = 0
    failed_frames: int = 0           # frames answered fail-closed
    failures: dict[str, int] = field(default_factory=dict)  # reason -> frames
    interrupted: bool = False
    quit_by_user: bool = False
    failed_sinks: list[str] = field(default_factory=list)
    camera_lost_s: float = 0.0
    idle_s: float = 0.0              # time spent idle (nobody read the outputs)
    stats: Stats | None = None
    worker_stopped: bool = True      # false while the pipeline's worker may still be inside a stage

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


class _AllOutputsFailed(Exception):
    """Every sink has failed: nothing more can be written."""


def _reason_key(reason: str) -> str:
    """A failure reason without its changing numbers ("... after 340 ms"), for counting/logging once."""
    return reason.split(" after ")[0]


class _FailClosed:
    """Decides what viewers see when the pipeline gave no result for a frame."""

    def __init__(self, privacy: bool, short_gap_s: float) -> None:
        self.privacy = privacy
        self.short_gap_s = short_gap_s
        self.last_good: np.ndarray | None = None
        self.last_good_t = 0.0
        self.failing_since: float | None = None
        self.reason: str | None = None
        self._buf: np.ndarray | None = None
        self._copy: np.ndarray | None = None  # last_good when the pipeline cannot hold its frame

    def good(self, frame: np.ndarray, now: float, held: bool = False) -> None:
        """``frame`` went through; ``held``: its producer writes into it no more (the pipeline's
        ``hold_output``), so it is kept as it is, else copied."""
        if self.failing_since is not None:
            log.warning("recovered after %.1f s (%s)", now - self.failing_since, self.reason)
        self.failing_since = None
        self.reason = None
        if held:
            self.last_good = frame
        else:
            if self._copy is None or self._copy.shape != frame.shape:
                self._copy = np.empty_like(frame)
            np.copyto(self._copy, frame)
            self.last_good = self._copy
        self.last_good_t = now

    def bad(self, raw: np.ndarray, reason: str, now: float) -> np.ndarray:
        key = _reason_key(reason)
        if self.failing_since is None:
            self.failing_since = now
            log.error("processing failed, output %s: %s",
                      "shows the raw frame (privacy off)" if not self.privacy else "fails closed", reason)
        elif key != _reason_key(self.reason or ""):
            log.error("processing still failing: %s", reason)
        self.reason = reason
        if not self.privacy:
            return raw
        if self.last_good is not None and self.last_good.shape == raw.shape and now - self.last_good_t < self.short_gap_s:
            return self.last_good
        if self._buf is None or self._buf.shape != raw.shape:
            self._buf = np.empty_like(raw)
        return privacy_frame(raw, out=self._buf)


def run_stream(pipeline: Pipeline, source: Source, sinks: list[Sink], *, status: StatusLine | None = None,
               max_frames: int | None = None, stats: Stats | None = None, privacy: bool | None = None,
               deadline_ms: float | None = None, short_gap_s: float = 0.3,
               hooks: list[Callable[[], None]] | None = None,
               on_result: Callable[[SourceFrame, Result | None], None] | None = None,
               governor: QualityGovernor | None = None, session: Session | None = None,
               status_interval_s: float = 0.25, write_failed: bool = True,
               stop: Callable[[], bool] | None = None, idle: IdleGate | None = None) -> RunReport:
    """Run until the source ends, a sink asks to quit, ``max_frames`` or Ctrl-C.

    Sinks must already be open; the caller finishes and closes them. ``session`` (the owner of
    the live settings) is polled between two frames, the one moment its submitted changes may
    touch the pipeline, sees every result and gets the status every ``status_interval_s``.
    ``hooks`` run once per loop turn in this thread too. A ``governor`` (live sources only)
    steps quality down when processing falls behind the frame rate and back up with headroom.
    When every sink has failed the run stops (``report.failed_sinks`` says why). With
    ``write_failed`` false a frame whose processing failed goes to live views only (file outputs
    skip it; counted in the report). ``stop`` (a signal flag) is polled between frames and while
    waiting for the pipeline: true ends the run as interrupted. The caller may close the
    pipeline only when ``report.worker_stopped``. With an ``idle`` gate (live sources) the loop
    releases camera and models while nobody reads the outputs.
    """
    status = status or StatusLine(quiet=True)
    stats = stats or Stats()
    safety = pipeline.preset.safety
    privacy = safety.privacy if privacy is None else privacy
    deadline_s = (safety.stage_deadline_ms if deadline_ms is None else deadline_ms) / 1000.0
    if not source.live:
        # A file job is not real time: a slow frame is waited for, only a hung stage fails closed.
        deadline_s = max(deadline_s, 30.0)
    report = RunReport(stats=stats)
    live = source.live
    total = source.total if max_frames is None else min(source.total or max_frames, max_frames)
    active = list(sinks)
    fail = _FailClosed(privacy, short_gap_s)
    generation = None
    lost_since: float | None = None
    note = ""
    published = -1e9

    def publish(now: float) -> None:
        nonlocal published
        if session is None or now - published < status_interval_s:
            return
        published = now
        st = status_fields(stats, source.dropped)
        first = getattr(pipeline, "note", "")
        st.update(live=live, total=source.total, note=" | ".join(x for x in (note, first) if x),
                  fail_closed=fail.failing_since is not None, fail_reason=fail.reason or "",
                  camera_lost=lost_since is not None,
                  quality=governor.status() if governor is not None else "")
        session.publish_status(st)

    def describe_busy() -> str:
        return f"{pipeline.current_stage or 'pipeline'} stage"

    watchdog = Watchdog(pipeline.process, deadline_s, describe_busy)

    def deliver(out: OutputFrame, only_live: bool = False) -> None:
        for sink in list(active):
            if only_live and not sink.live_view:
                continue
            try:
                sink.write(out)
            except Exception as e:  # one broken output must not take the others down
                active.remove(sink)
                msg = str(e) if isinstance(e, SinkError) else f"{type(e).__name__}: {e}"
                sink.failed = msg
                report.failed_sinks.append(f"{sink.describe()}: {msg}")
                log.error("output %s failed and was stopped: %s", sink.describe(), msg)
                if not active:
                    raise _AllOutputsFailed from e

    warming = getattr(pipeline, "warming", None) or threading.Lock()

    def _idle_turn() -> bool:
        """Sleep while nobody reads the outputs; False when the run is to end."""
        if watchdog.busy:  # a frame still in the stages (a stall): it finishes first
            time.sleep(0.01)
            return True
        idle_hooks = ([session.poll] if session is not None else []) + list(hooks or ())
        signalled = (lambda: stop()) if stop is not None else (lambda: False)
        if not idle.sleep(status, lambda: signalled() or any(s.quit_requested for s in active), idle_hooks):
            if signalled():
                raise KeyboardInterrupt
            report.quit_by_user = True
            return False
        return True

    source.dropped = 0  # frames a live source dropped while models loaded are not the loop's
    # frames come at the source's rate: the kernels' threads follow the headroom (a caller who
    # paced the pipeline already keeps it paced, with what it learnt, after this run)
    paced_here = live and pipeline.pace(source.fps)
    t_start = time.perf_counter()
    try:
        while max_frames is None or report.frames < max_frames:
            if stop is not None and stop():
                raise KeyboardInterrupt  # raised here, in our own code, never inside a library's
            # hooks may change the pipeline: never under a stalled frame, nor while a first
            # start warms it up in the background (the lock is free again within a second)
            if not watchdog.busy and warming.acquire(blocking=False):
                try:
                    if session is not None:
                        session.poll()
                    for hook in hooks or ():
                        hook()
                finally:
                    warming.release()
            if idle is not None and idle.due() and warming.acquire(blocking=False):
                try:
                    if not _idle_turn():
                        break
                finally:
                    warming.release()
                continue
            lost = getattr(source, "lost", False)
            sf = source.read(timeout=0.1 if lost else 1.0)
            if sf is None:
                if source.ended:
                    break
                if getattr(source, "lost", False):
                    now = time.perf_counter()
                    if lost_since is None:
                        lost_since = now
                        log.warning("camera lost: %s", getattr(source, "error", "no frames"))
                    card = unavailable_card(fail.last_good, source.size)
                    deliver(OutputFrame(card, None, None, "", -1, now), only_live=True)
                    note = f"CAMERA LOST {now - lost_since:.0f} s: reconnecting"
                    status.update(format_status(stats, source.dropped, note))
                    publish(now)
                    if any(s.quit_requested for s in active):
                        report.quit_by_user = True
                        break
                continue
            if lost_since is not None:
                report.camera_lost_s += time.perf_counter() - lost_since
                lost_since = None
                note = ""
            if generation is not None and sf.generation != generation:
                pipeline.reset()  # the camera reconnected: old temporal state is stale
            generation = sf.generation
            t_call = time.perf_counter()
            result, reason = watchdog.call(sf.frame, sf.timestamp_ms, stop=stop)
            if stop is not None and stop():
                raise KeyboardInterrupt  # the frame is not counted: no output got it
            now = time.perf_counter()
            # a first start's quick portrait says nothing of what the lens will cost, nor does a
            # frame the kernels ran on one thread only because it was early (they go back to every
            # thread before the frames are late)
            if (governor is not None and live and result is not None and getattr(pipeline, "lens", True)
                    and result.kernel_threads != 1):
                governor.observe((now - t_call) * 1000.0)
            if result is not None:
                # the pipeline renders the next frames elsewhere while this one is the last good
                fail.good(result.frame, now, held=pipeline.hold_output(result.frame))
                out = OutputFrame(result.frame, result.matte, result.disparity, sf.name, sf.index, sf.captured_at,
                                  result=result, input=sf.frame)
                note = ""
            else:
                report.failed_frames += 1
                key = _reason_key(reason)
                report.failures[key] = report.failures.get(key, 0) + 1
                shown = fail.bad(sf.frame, reason, now)
                out = OutputFrame(shown, None, None, sf.name, sf.index, sf.captured_at, input=sf.frame)
                note = f"FAIL-CLOSED: {reason}"
            if session is not None:
                session.observe(sf.frame, result)
            if on_result is not None:
                on_result(sf, result)
            deliver(out, only_live=result is None and not write_failed)
            now = time.perf_counter()
            stats.record(result.timings_ms if result is not None else {}, (now - sf.captured_at) * 1000.0, now)
            report.frames += 1
            publish(now)
            if live:
                gov = governor.status() if governor is not None else ""
                first = getattr(pipeline, "note", "")  # a first start: what happens while kernels compile
                extra = " | ".join(x for x in (note, gov, first) if x)
                status.update(lambda: format_status(stats, source.dropped, extra))
            else:
                status.update(format_progress(report.frames, total, stats.fps) + (f" | {note}" if note else ""))
            if any(s.quit_requested for s in active):
                report.quit_by_user = True
                break
    except KeyboardInterrupt:
        report.interrupted = True
    except _AllOutputsFailed:
        log.error("every output failed; the job stopped after %d frames", report.frames)
    finally:
        report.worker_stopped = watchdog.close(timeout=max(2.0, 2 * deadline_s))
        if paced_here and report.worker_stopped:
            pipeline.pace(None)
        report.seconds = time.perf_counter() - t_start
        report.dropped = source.dropped
        report.idle_s = idle.idle_s if idle is not None else 0.0
        if lost_since is not None:
            report.camera_lost_s += time.perf_counter() - lost_since
        if not live and report.frames:
            status.update(format_progress(report.frames, total, stats.fps), force=True)
        status.done()
    return report
