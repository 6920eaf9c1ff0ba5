"""The streaming loop: source -> pipeline -> sinks, with timing, status and clean shutdown."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from .errors import SinkError
from .pipeline import Pipeline
from .sinks import OutputFrame, Sink
from .sources import Source
from .status import Stats, StatusLine, format_progress, format_status

log = logging.getLogger(__name__)


@dataclass
class RunReport:
    frames: int = 0
    seconds: float = 0.0
    dropped: int = 0
    interrupted: bool = False
    quit_by_user: bool = False
    failed_sinks: list[str] = field(default_factory=list)
    stats: Stats | None = None

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def run_stream(pipeline: Pipeline, source: Source, sinks: list[Sink], *, status: StatusLine | None = None,
               max_frames: int | None = None, stats: Stats | None = None) -> RunReport:
    """Run until the source ends, a sink asks to quit, ``max_frames`` or Ctrl-C.

    Sinks must already be open. Returns a report; the caller finishes/closes sinks.
    A sink that fails is reported and dropped; the others keep running. When every sink has
    failed the run stops with the last sink's error.
    """
    status = status or StatusLine(quiet=True)
    stats = stats or Stats()
    report = RunReport(stats=stats)
    live = source.live
    active = list(sinks)
    generation = None
    t_start = time.perf_counter()
    try:
        while max_frames is None or report.frames < max_frames:
            sf = source.read(timeout=1.0)
            if sf is None:
                if source.ended:
                    break
                continue  # live source had nothing new within the timeout
            if generation is not None and sf.generation != generation:
                pipeline.reset()  # the camera reconnected: old temporal state is stale
            generation = sf.generation
            result = pipeline.process(sf.frame, sf.timestamp_ms)
            out = OutputFrame(result.frame, result.matte, result.disparity, sf.name, sf.index, sf.captured_at)
            for sink in list(active):
                try:
                    sink.write(out)
                except SinkError as e:
                    active.remove(sink)
                    report.failed_sinks.append(f"{sink.describe()}: {e}")
                    log.error("output %s failed and was stopped: %s", sink.describe(), e)
                    if not active:
                        raise
            now = time.perf_counter()
            stats.record(result.timings_ms, (now - sf.captured_at) * 1000.0, now)
            report.frames += 1
            if live:
                status.update(format_status(stats, source.dropped))
            else:
                status.update(format_progress(report.frames, source.total, stats.fps))
            if any(s.quit_requested for s in active):
                report.quit_by_user = True
                break
    except KeyboardInterrupt:
        report.interrupted = True
    finally:
        report.seconds = time.perf_counter() - t_start
        report.dropped = source.dropped
        if not live and report.frames:
            status.update(format_progress(report.frames, source.total, stats.fps), force=True)
        status.done()
    return report
