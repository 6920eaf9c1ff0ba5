"""How a file job ends: which outputs are made final, what is said, and the exit code.

Exit codes (see the README's "Safety" section): 0 = every output complete; 1 = the job ran but
an output failed (disk full, encoder error, an output that cannot be read back) or, in a file
job, a frame's processing failed and ``--failed-frames keep`` was not given; 2 = bad input or
options (one line, before anything is written); 130 = interrupted.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Callable, Iterator, Sequence

from realtime.core.errors import SinkError
from realtime.app.loop import RunReport
from realtime.io.sinks import Sink

log = logging.getLogger("realtime")


def finish_outputs(sinks: Sequence[Sink], *, complete: bool) -> list[str]:
    """Finish every sink the run did not stop; returns one line per failed output.

    ``complete`` is false when frames are missing from the job (failed frames not written):
    file outputs are then not made final (a video is discarded when the sinks close).
    """
    failures = [f"{s.describe()}: {s.failed}" for s in sinks if s.failed]
    for s in sinks:
        if s.failed or (not complete and not s.live_view):
            continue
        try:
            s.finish()
        except (SinkError, OSError) as e:
            s.failed = str(e)
            failures.append(f"{s.describe()}: {e}")
    return failures


def exit_code(report: RunReport, failures: Sequence[str], *, live: bool, keep_failed: bool,
              damaged: Sequence = ()) -> int:
    """Log what went wrong (one line each) and return the job's exit code. ``damaged`` inputs
    (truncated pictures, each already warned about) are counted, not failed."""
    code = 0
    if damaged:
        names = ", ".join(str(p) for p in list(damaged)[:3]) + (" ..." if len(damaged) > 3 else "")
        log.warning("%d input picture(s) were truncated and are incomplete in the output: %s", len(damaged), names)
    if report.failed_frames and not live:
        reasons = "; ".join(f"{k} ({n})" for k, n in report.failures.items())
        of = f"{report.failed_frames} of {report.frames} frames"
        if keep_failed:
            log.warning("%s failed and were written fail-closed (blurred or last good frame): %s", of, reasons)
        else:
            log.error("%s failed: %s; they were not written and the job failed (a video is not saved); "
                      "--failed-frames keep writes fail-closed frames instead", of, reasons)
            code = 1
    for line in failures:
        log.error("output failed: %s", line)
        code = 1
    return code


@contextlib.contextmanager
def closed_when_idle(pipeline, report_of: Callable[[], RunReport | None]) -> Iterator:
    """Yield ``pipeline``; close it on the way out unless the run's worker thread may still be
    inside one of its stages (closing MediaPipe under a running stage crashes the process)."""
    try:
        yield pipeline
    finally:
        report = report_of()
        if report is None or report.worker_stopped:
            pipeline.close()
        else:
            log.warning("a stage was still running at exit; its models are left to the process's end")
