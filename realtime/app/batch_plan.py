"""Planning a batch: which files, where their outputs go, how long videos are cut, what is done.

No Ray here: this is plain bookkeeping the driver does before and after the cluster works.

- Discovery: every video and image given, and every folder searched recursively. A folder that
  holds images directly is one frame sequence (as ``run.py --input FOLDER/`` reads it); each
  video in any folder is one job; each subfolder is searched in turn.
- Output paths: the input's path as given on the command line, under the output folder
  (``--input talking/1.mp4 --output out/`` writes ``out/talking/1.mp4``: the single job
  ``run.py --input X --output out/X``). An absolute input outside the current folder keeps its
  last component only.
- Chunks: a video longer than ``chunk_frames`` is cut into spans of that many output frames;
  each span is processed after ``warmup`` earlier frames that are run but not written, so the
  temporal state at the join is close to the one-pass state.
- Manifest: ``.pcam-batch.json`` in the output folder records each completed output with
  its input's size, mtime and the options hash; a rerun skips entries that still match.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from realtime.io.safefiles import write_bytes
from realtime.io.sinks import VIDEO_EXTENSIONS
from realtime.io.sources import IMAGE_EXTENSIONS

MANIFEST = ".pcam-batch.json"
PARTIAL = ".pcam-partial."      # prefix of every temporary name the batch writes
KINDS = ("mp4", "png", "rgba", "matte")
INPUT_VIDEO_EXTENSIONS = VIDEO_EXTENSIONS + (".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".ts", ".3gp")


@dataclass(frozen=True)
class Target:
    """One output of a job: ``spec`` is the ``--output`` spec of the single job writing ``tmp``;
    ``final`` is where it goes when the job is complete."""

    spec_kind: str   # "video" | "png" | "rgba" | "matte-video" | "matte-png" | "matte-side" | "depth-side"
    final: str
    tmp: str
    single: bool = False   # one image: written as a folder of one PNG, which becomes ``final``

    @property
    def is_folder(self) -> bool:
        return not self.spec_kind.endswith("video")


@dataclass
class Job:
    """One input (a video, an image or a folder of frames) and what it becomes."""

    input: str                 # absolute path
    rel: str                   # output path relative to the output folder (as given)
    source_kind: str           # "video" | "images" | "image"
    targets: list[Target] = field(default_factory=list)
    frames: int = 0            # frames to process (after --frames), 0 when unknown
    fps: float = 30.0
    chunks: list[tuple[int, int]] = field(default_factory=list)  # (start, end) output frames; [] = one pass
    error: str | None = None

    @property
    def chunk_dir(self) -> str:
        """Lossless intermediate frames of a chunked video output, encoded once when joined."""
        first = self.targets[0].final
        return str(Path(first).with_name(f"{PARTIAL}{Path(first).name}.chunks"))


@dataclass(frozen=True)
class Options:
    """Everything that changes what a job writes: its hash decides whether an output is current."""

    preset: str
    kind: str | None
    save_matte: bool
    save_depth: bool
    frames: int | None
    size: tuple[int, int] | None
    focus: str | None
    quality: str | None
    preset_digest: str = ""
    fit: str = "crop"
    stills: bool = False

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True, default=str).encode()).hexdigest()[:16]


def preset_digest(preset) -> str:
    """A stable hash of a resolved preset (its values, not its file name)."""
    return hashlib.sha256(repr(preset).encode()).hexdigest()[:16]


def _is_video(p: Path) -> bool:
    return p.suffix.lower() in INPUT_VIDEO_EXTENSIONS


def _is_image(p: Path) -> bool:
    return p.suffix.lower() in IMAGE_EXTENSIONS


def output_rel(given: str, cwd: Path) -> Path:
    """Where an input given as ``given`` goes under the output folder."""
    p = Path(given)
    if not p.is_absolute() and ".." not in p.parts:
        return Path(os.path.normpath(p))
    absolute = Path(os.path.abspath(p))
    try:
        return absolute.relative_to(cwd)
    except ValueError:
        return Path(absolute.name)


def discover(inputs: list[str], out_dir: Path, cwd: Path) -> tuple[list[Job], list[Job]]:
    """Jobs for every input (folders searched recursively), and jobs that failed already (missing
    inputs, nothing to process). The output folder itself is never searched."""
    jobs: list[Job] = []
    bad: list[Job] = []
    out_abs = Path(os.path.abspath(out_dir))
    for given in inputs:
        p = Path(given).expanduser()
        rel = output_rel(given, cwd)
        if p.is_dir():
            found = _walk(Path(os.path.abspath(p)), rel, out_abs)
            if not found:
                bad.append(Job(str(p), str(rel), "images", error="folder holds no videos or images"))
            jobs.extend(found)
        elif p.is_file():
            kind = "image" if _is_image(p) else "video"
            jobs.append(Job(os.path.abspath(p), str(rel), kind))
        else:
            bad.append(Job(str(p), str(rel), "video", error="does not exist"))
    return jobs, bad


def _walk(folder: Path, rel: Path, out_abs: Path) -> list[Job]:
    if folder == out_abs:
        return []
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return [Job(str(folder), str(rel), "images", error="cannot be listed (permission?)")]
    jobs: list[Job] = []
    if any(e.is_file() and _is_image(e) for e in entries):
        jobs.append(Job(str(folder), str(rel), "images"))
    for e in entries:
        if e.name.startswith(".") or e.name == MANIFEST:
            continue
        if e.is_dir():
            jobs.extend(_walk(e, rel / e.name, out_abs))
        elif e.is_file() and _is_video(e):
            jobs.append(Job(str(e), str(rel / e.name), "video"))
    return jobs


def _tmp(final: Path) -> str:
    return str(final.with_name(f"{PARTIAL}{final.name}"))


def assign_targets(job: Job, out_dir: Path, opts: Options) -> None:
    """Fill ``job.targets``: the main output, then the matte and depth folders when asked.

    ``--output-kind`` decides the main output; the default keeps each input's nature (a video
    gives ``name.mp4``, a frame folder a PNG folder of the same name, an image ``name.png``):

    ======== ================== ==================== ====================
    kind     video ``a.mov``    frame folder ``f/``  image ``p.jpg``
    ======== ================== ==================== ====================
    default  ``a.mp4``          ``f/`` PNGs          ``p.png``
    mp4      ``a.mp4``          ``f.mp4``            ``p.png``
    png      ``a/`` PNGs        ``f/`` PNGs          ``p.png``
    rgba     ``a/`` RGBA PNGs   ``f/`` RGBA PNGs     ``p.png`` RGBA
    matte    ``a.mp4`` grey     ``f/`` grey PNGs     ``p.png`` grey
    ======== ================== ==================== ====================

    ``--save-matte`` / ``--save-depth`` add PNG folders ``<output>.matte/`` and ``<output>.depth/``
    beside it (named like the frames, as ``--save-matte DIR`` of a single job).
    """
    base = out_dir / Path(job.rel)
    kind = opts.kind or ""
    src = job.source_kind
    plane = {"rgba": "rgba", "matte": "matte-png"}.get(kind, "png")
    if src == "image":
        final = base.with_suffix(".png")
        main = Target(plane, str(final), _tmp(final), single=True)
    elif src == "video" and kind in ("", "mp4", "matte"):
        final = base.with_suffix(".mp4")
        main = Target("matte-video" if kind == "matte" else "video", str(final), _tmp(final))
    elif src == "images" and kind == "mp4":
        final = base.with_name(base.name + ".mp4")
        main = Target("video", str(final), _tmp(final))
    else:
        final = base if src == "images" else base.with_suffix("")
        main = Target(plane, str(final), _tmp(final))
    targets = [main]
    stem = Path(main.final).with_suffix("") if (main.single or not main.is_folder) else Path(main.final)
    for wanted, what in ((opts.save_matte, "matte"), (opts.save_depth, "depth")):
        if wanted:
            f = stem.with_name(f"{stem.name}.{what}")
            targets.append(Target(f"{what}-side", str(f), _tmp(f)))
    job.targets = targets


def plan_chunks(total: int, chunk_frames: int) -> list[tuple[int, int]]:
    """Output spans of at most ``chunk_frames`` frames; [] when the video fits in one (or the
    count is unknown). The last span runs to the end of the video, whatever its real length."""
    if chunk_frames <= 0 or total <= chunk_frames * 1.5:
        return []
    n = max(2, round(total / chunk_frames))
    bounds = [round(k * total / n) for k in range(n + 1)]
    spans = [(bounds[k], bounds[k + 1]) for k in range(n)]
    spans[-1] = (spans[-1][0], -1)
    return spans


# -- safety: outputs never overwrite inputs -----------------------------------------------------

class InputIndex:
    """Every input of a batch, for the question "would this output overwrite an input?".

    A thousand files meet a thousand outputs: real paths and their folders go into sets (one
    lookup per output), and an output that already exists is compared by device and inode, then
    confirmed with :func:`realtime.io.paths.same_place` (hard links, bind mounts).
    """

    def __init__(self, inputs: list[str]) -> None:
        self.real: dict[str, str] = {}
        self.holders: dict[str, str] = {}
        self.inodes: dict[tuple[int, int], str] = {}
        for given in inputs:
            real = os.path.realpath(given)
            self.real[real] = given
            for parent in Path(real).parents:
                self.holders.setdefault(str(parent), given)
            try:
                st = os.stat(real)
                self.inodes[(st.st_dev, st.st_ino)] = given
            except OSError:
                pass

    def clash(self, output: str) -> str | None:
        """The input that ``output`` is, or holds; None when it is safe."""
        from realtime.io.paths import same_place

        real = os.path.realpath(output)
        hit = self.real.get(real) or self.holders.get(real)
        if hit:
            return hit
        try:
            st = os.stat(real)
        except OSError:
            return None
        other = self.inodes.get((st.st_dev, st.st_ino))
        return other if other and same_place(Path(output), Path(other)) else None


def clash_with_inputs(job: Job, index: InputIndex) -> str | None:
    """Why one of the job's outputs would overwrite or replace an input, or None.

    An output (or its temporary) may not be an input, nor a folder holding one (a folder output
    is replaced when complete).
    """
    for t in job.targets:
        for path in (t.final, t.tmp):
            inp = index.clash(path)
            if inp:
                return f"its output {t.final} would overwrite the input {inp}; choose another --output folder"
    return None


def clash_between_jobs(jobs: list[Job]) -> None:
    """Two inputs that map to the same output (``a.mov`` and ``a.mp4``): the later one fails."""
    seen: dict[str, str] = {}
    for job in jobs:
        if job.error:
            continue
        for t in job.targets:
            key = os.path.normcase(os.path.abspath(t.final))
            if key in seen and seen[key] != job.input:
                job.error = f"its output {t.final} is also the output of {seen[key]}; rename one of them"
                break
        else:
            for t in job.targets:
                seen[os.path.normcase(os.path.abspath(t.final))] = job.input


# -- manifest -----------------------------------------------------------------------------------

def input_stamp(path: str) -> dict:
    """Size and mtime of an input (a folder: the count, total size and newest mtime of its images)."""
    p = Path(path)
    if p.is_dir():
        files = [e for e in p.iterdir() if e.is_file() and _is_image(e)]
        stats = [e.stat() for e in files]
        return {"size": sum(s.st_size for s in stats), "files": len(stats),
                "mtime_ns": max((s.st_mtime_ns for s in stats), default=0)}
    st = p.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


class Manifest:
    """Completed outputs of earlier runs into this folder (written atomically after each file)."""

    def __init__(self, out_dir: Path) -> None:
        self.path = out_dir / MANIFEST
        self.entries: dict[str, dict] = {}
        try:
            data = json.loads(self.path.read_text())
            if isinstance(data, dict) and isinstance(data.get("outputs"), dict):
                self.entries = data["outputs"]
        except (OSError, ValueError):
            pass

    def is_done(self, job: Job, digest: str) -> bool:
        e = self.entries.get(job.rel)
        if not e or e.get("options") != digest or e.get("input") != job.input:
            return False
        try:
            if e.get("stamp") != input_stamp(job.input):
                return False
        except OSError:
            return False
        return all(os.path.exists(t.final) for t in job.targets)

    def record(self, job: Job, digest: str, frames: int) -> None:
        self.entries[job.rel] = {"input": job.input, "stamp": input_stamp(job.input), "options": digest,
                                 "frames": frames, "outputs": [t.final for t in job.targets]}
        self._save()

    def forget(self, job: Job) -> None:
        if self.entries.pop(job.rel, None) is not None:
            self._save()

    def _save(self) -> None:
        # Through an exclusive temporary like every other writer: a name planted in the output
        # folder (a symlink) is never followed.
        text = json.dumps({"version": 1, "outputs": self.entries}, indent=1, sort_keys=True)
        write_bytes(self.path, text.encode("utf-8"))
