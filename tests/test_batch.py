"""``run.py batch`` on a real local Ray (2 CPUs here), the real models and real footage.

Every batch runs as the user runs it: the CLI in a subprocess. Outputs are compared with the
single file jobs (``run.py --input X --output Y``) they must equal. Without Ray installed these
tests skip, except under CI (``CI=true``), where Ray is part of the install and they must run.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import DATA, ROOT, reaped

HAVE_RAY = importlib.util.find_spec("ray") is not None
needs_ray = pytest.mark.skipif(not HAVE_RAY and os.environ.get("CI") != "true",
                               reason="Ray is not installed (pip install -e '.[batch]')")


def _env(**extra) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def _run(args: list[str], cwd: Path, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *args], cwd=cwd, env=env or _env(),
                          capture_output=True, text=True, timeout=timeout)


def _copy_frames(seq: str, dest: Path, count: int) -> None:
    dest.mkdir(parents=True)
    for p in sorted((DATA / "people" / seq / "frames").glob("*.jpg"))[:count]:
        shutil.copy(p, dest / p.name)


def _pngs(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.png"))


def _partials(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if ".pcam-partial" in p.name or ".partial" in p.name
            or p.name.startswith(".portrait-cam-")]


def _video_frames(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    out = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        out.append(f)
    cap.release()
    return out


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a >= 128, b >= 128
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else 1.0


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean())
    return 99.0 if mse == 0 else 10.0 * np.log10(255.0 ** 2 / mse)


# -- without Ray ------------------------------------------------------------------------------

def test_without_ray_batch_says_what_to_install(tmp_path):
    fake = tmp_path / "noray"
    (fake / "ray").mkdir(parents=True)
    (fake / "ray" / "__init__.py").write_text("raise ImportError('No module named ray')\n")
    env = _env()
    env["PYTHONPATH"] = f"{fake}{os.pathsep}{env['PYTHONPATH']}"
    clip = tmp_path / "clip.mp4"
    shutil.copy(DATA / "talking" / "5.mp4", clip)
    r = _run(["batch", "--input", "clip.mp4", "--output", "out/"], tmp_path, env=env, timeout=120)
    assert r.returncode == 2, r.stderr
    assert "pip install -e '.[batch]'" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "out").exists()


def test_product_does_not_import_ray():
    """Only realtime/app/batch.py may import Ray, and only when ``run.py batch`` runs."""
    offenders = []
    for p in list((ROOT / "realtime").rglob("*.py")) + list((ROOT / "shaders").rglob("*.py")):
        text = p.read_text()
        if ("import ray" in text or "from ray" in text) and p.name != "batch.py":
            offenders.append(str(p.relative_to(ROOT)))
    assert offenders == []
    code = ("import sys, realtime, realtime.app.cli, realtime.app.batch, realtime.app.batch_work, "
            "realtime.pipeline, realtime.io.sinks; print('ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr


def test_batch_default_quality_is_the_single_file_jobs():
    """Without --quality a batch worker runs the preset's matte quality: so must a file job."""
    from realtime.app import cli

    assert cli.FILE_QUALITY is None, "file jobs got a default --quality: give run.py batch the same default"


def test_batch_bad_arguments_exit_2(tmp_path):
    r = _run(["batch", "--input", "x.mp4", "--output", "out/", "--output-kind", "gif"], tmp_path, timeout=120)
    assert r.returncode == 2
    assert not (tmp_path / "out").exists()
    r = _run(["batch", "--input", "x.mp4", "--output", "out/", "--quality", "best"], tmp_path, timeout=120)
    assert r.returncode == 2
    assert "mp4|png|rgba|matte" in r.stderr or "invalid choice" in r.stderr
    assert not (tmp_path / "out").exists()


# -- a batch of clips, frame folders and a corrupt file ----------------------------------------

FRAMES = 16


@pytest.fixture(scope="module")
def png_batch(tmp_path_factory):
    if not HAVE_RAY:
        if os.environ.get("CI") == "true":
            pytest.fail("Ray must be installed under CI (pip install -e '.[batch]')")
        pytest.skip("Ray is not installed")
    root = tmp_path_factory.mktemp("batch")
    src = root / "in"
    (src / "talking").mkdir(parents=True)
    for clip in ("5.mp4", "3.mp4"):
        os.symlink(DATA / "talking" / clip, src / "talking" / clip)
    _copy_frames("dance-twirl", src / "people" / "dance-twirl", 10)
    _copy_frames("breakdance", src / "people" / "breakdance", 8)
    (src / "broken.mp4").write_bytes(os.urandom(4096))
    r = _run(["batch", "--input", "in", "--output", "out/", "--output-kind", "png", "--save-matte",
              "--frames", str(FRAMES), "--chunk-frames", "0"], root, env=_env(PCAM_BATCH_TEST_MARK=str(root)))
    singles = {}
    for rel in ("in/talking/5.mp4", "in/talking/3.mp4", "in/people/dance-twirl", "in/people/breakdance"):
        name = rel[:-4] if rel.endswith(".mp4") else rel
        s = _run(["--input", rel, "--output", f"single/{name}/", "--save-matte", f"single/{name}.matte/",
                  "--frames", str(FRAMES), "-q"], root)
        assert s.returncode == 0, s.stderr
        singles[name] = root / "single" / name
    return root, r, singles


@needs_ray
def test_batch_equals_single_jobs_bit_for_bit(png_batch):
    root, r, singles = png_batch
    assert r.returncode == 1, r.stderr   # the corrupt file failed, the others completed
    for name, single in singles.items():
        out = root / "out" / name
        for a_dir, b_dir in ((single, out), (Path(f"{single}.matte"), Path(f"{out}.matte"))):
            a, b = _pngs(a_dir), _pngs(b_dir)
            assert [p.name for p in a] == [p.name for p in b], (a_dir, b_dir)
            assert len(a) == (10 if "dance-twirl" in name else 8 if "breakdance" in name else FRAMES)
            differ = []
            for pa, pb in zip(a, b):
                ia, ib = cv2.imread(str(pa), cv2.IMREAD_UNCHANGED), cv2.imread(str(pb), cv2.IMREAD_UNCHANGED)
                if not np.array_equal(ia, ib):
                    d = np.abs(ia.astype(int) - ib)
                    differ.append(f"{pb}: {int((d > 0).sum())} values differ, max {int(d.max())}")
            assert differ == [], "\n".join(differ) + "\n" + r.stderr


@needs_ray
def test_batch_reports_the_corrupt_file_and_finishes_the_rest(png_batch):
    root, r, singles = png_batch
    failed = [ln for ln in r.stderr.splitlines() if ln.startswith("  ")]
    assert len(failed) == 1 and "broken.mp4" in failed[0] and "cannot be decoded" in failed[0], r.stderr
    assert "4 file(s) done" in r.stderr
    assert not (root / "out" / "in" / "broken").exists()
    assert _partials(root / "out") == []
    manifest = json.loads((root / "out" / ".pcam-batch.json").read_text())["outputs"]
    assert sorted(manifest) == ["in/people/breakdance", "in/people/dance-twirl", "in/talking/3.mp4",
                                "in/talking/5.mp4"]
    assert "node(s)" in r.stderr and "files 4/4" in r.stderr
    assert _processes_marked(str(root)) == [], "the local Ray of the batch is still running"


def _processes_marked(mark: str) -> list[str]:
    """Processes running now that inherited ``PCAM_BATCH_TEST_MARK=mark``: the batch's own Ray
    (GCS, raylet, workers), not one another test run on this machine started."""
    needle = f"PCAM_BATCH_TEST_MARK={mark}".encode() + b"\0"
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            if needle in (d / "environ").read_bytes():
                found.append((d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:120])
        except OSError:
            continue
    return found


# -- long videos in chunks ---------------------------------------------------------------------

@needs_ray
def test_chunked_video_matches_one_pass(tmp_path):
    """150 frames in three chunks of 50 after 30 warm-up frames each, encoded once: the matte at
    the joins and the output after the warm-up match a one-pass single job."""
    os.symlink(DATA / "talking" / "4.mp4", tmp_path / "4.mp4")
    n = 150
    r = _run(["batch", "--input", "4.mp4", "--output", "out/", "--save-matte", "--frames", str(n),
              "--chunk-frames", "50", "--warmup-frames", "30"], tmp_path)
    assert r.returncode == 0, r.stderr
    s = _run(["--input", "4.mp4", "--output", "single.mp4", "--save-matte", "single.matte/", "--frames", str(n),
              "-q"], tmp_path)
    assert s.returncode == 0, s.stderr
    assert _partials(tmp_path / "out") == []
    mattes_a, mattes_b = _pngs(tmp_path / "single.matte"), _pngs(tmp_path / "out" / "4.matte")
    assert [p.name for p in mattes_a] == [p.name for p in mattes_b] and len(mattes_a) == n
    ious = [_iou(cv2.imread(str(a), 0), cv2.imread(str(b), 0)) for a, b in zip(mattes_a, mattes_b)]
    for join in (50, 100):
        assert min(ious[join:join + 5]) >= 0.99, (join, ious[join:join + 5])
    assert min(ious) >= 0.99
    va, vb = _video_frames(tmp_path / "single.mp4"), _video_frames(tmp_path / "out" / "4.mp4")
    assert len(va) == len(vb) == n
    psnr = [_psnr(a, b) for a, b in zip(va, vb)]
    assert min(psnr) >= 40.0, (int(np.argmin(psnr)), min(psnr))


# -- interrupted and resumed -------------------------------------------------------------------

@needs_ray
def test_interrupted_batch_resumes_without_redoing_finished_files(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for clip in ("1.mp4", "2.mp4", "3.mp4", "5.mp4"):
        os.symlink(DATA / "talking" / clip, src / clip)
    args = ["batch", "--input", "in", "--output", "out/", "--frames", "40", "--workers", "1", "--chunk-frames", "0"]
    manifest = tmp_path / "out" / ".pcam-batch.json"
    proc = subprocess.Popen([sys.executable, str(ROOT / "run.py"), *args], cwd=tmp_path, env=_env(),
                            stderr=subprocess.PIPE, text=True)
    with reaped(proc):
        deadline = time.monotonic() + 400
        while time.monotonic() < deadline and proc.poll() is None:
            if manifest.exists() and json.loads(manifest.read_text())["outputs"]:
                break
            time.sleep(0.1)
        assert proc.poll() is None, "the batch ended before it could be interrupted"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "run the same command again" in err
    assert _partials(tmp_path / "out") == [], _partials(tmp_path / "out")
    done = json.loads(manifest.read_text())["outputs"]
    assert 1 <= len(done) < 4
    outputs = sorted((tmp_path / "out" / "in").glob("*.mp4"))
    assert [p.name for p in outputs] == sorted(Path(k).name for k in done)   # only complete outputs
    stamps = {p.name: p.stat().st_mtime_ns for p in outputs}
    for p in outputs:
        assert len(_video_frames(p)) == 40
    r = _run(args, tmp_path)
    assert r.returncode == 0, r.stderr
    assert f"{len(done)} file(s) already complete" in r.stderr
    assert f"{4 - len(done)} file(s) done" in r.stderr
    after = sorted((tmp_path / "out" / "in").glob("*.mp4"))
    assert len(after) == 4
    for p in after:
        if p.name in stamps:
            assert p.stat().st_mtime_ns == stamps[p.name], f"{p.name} was redone"
        assert len(_video_frames(p)) == 40


# -- an existing cluster of two nodes ----------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@needs_ray
def test_batch_on_an_existing_two_node_cluster(tmp_path):
    ray_cli = str(Path(sys.executable).parent / "ray")
    port = _free_port()
    env = _env(RAY_AUTH_MODE="token")
    try:
        head = subprocess.run([ray_cli, "start", "--head", f"--port={port}", "--num-cpus=1",
                               "--include-dashboard=false", "--disable-usage-stats"],
                              env=env, capture_output=True, text=True, timeout=180)
        assert head.returncode == 0, head.stderr[-2000:]
        found = re.search(r"ray start --address='([^']+)'", head.stdout + head.stderr)
        assert found, head.stdout[-2000:]
        address = found.group(1)
        node = subprocess.run([ray_cli, "start", f"--address={address}", "--num-cpus=1", "--disable-usage-stats"],
                              env=env, capture_output=True, text=True, timeout=180)
        assert node.returncode == 0, node.stderr[-2000:]
        _copy_frames("dance-twirl", tmp_path / "seq", 6)
        os.symlink(DATA / "talking" / "5.mp4", tmp_path / "5.mp4")
        r = _run(["batch", "--input", "seq", "5.mp4", "--output", "out/", "--output-kind", "png", "--frames", "6",
                  "--address", address], tmp_path, env=env)
        assert r.returncode == 0, r.stderr
        assert "2 node(s), 2 CPU(s); 2 worker(s)" in r.stderr, r.stderr
        for rel in ("seq", "5"):
            s = _run(["--input", "5.mp4" if rel == "5" else rel, "--output", f"single/{rel}/", "--frames", "6", "-q"],
                     tmp_path)
            assert s.returncode == 0, s.stderr
            a, b = _pngs(tmp_path / "single" / rel), _pngs(tmp_path / "out" / rel)
            assert [p.name for p in a] == [p.name for p in b] and len(a) == 6
            for pa, pb in zip(a, b):
                assert np.array_equal(cv2.imread(str(pa)), cv2.imread(str(pb)))
    finally:
        subprocess.run([ray_cli, "stop", "--force"], env=env, capture_output=True, timeout=120)


@needs_ray
def test_no_output_overwrites_an_input(tmp_path):
    """``--output .`` would put clip.mp4's output on clip.mp4 itself, and seq/'s on seq/: both
    are refused by name, before any work, and the inputs stay as they were."""
    clip = tmp_path / "clip.mp4"
    shutil.copy(DATA / "talking" / "5.mp4", clip)
    _copy_frames("dance-twirl", tmp_path / "seq", 3)
    before = {p: p.read_bytes() for p in [clip, *sorted((tmp_path / "seq").iterdir())]}
    r = _run(["batch", "--input", "clip.mp4", "seq", "--output", "."], tmp_path, timeout=300)
    assert r.returncode == 1, r.stderr
    failed = [ln for ln in r.stderr.splitlines() if ln.startswith("  ")]
    assert len(failed) == 2 and all("would overwrite the input" in ln for ln in failed), r.stderr
    assert {p: p.read_bytes() for p in before} == before
    assert sorted(p.name for p in (tmp_path / "seq").iterdir()) == sorted(p.name for p in before if p != clip)
    assert _partials(tmp_path) == []


def test_manifest_is_written_through_an_exclusive_temporary(tmp_path):
    """A symlink planted where the manifest's temporary used to be (a predictable name) is never
    followed: the victim keeps its bytes, the manifest is a regular file with the entry."""
    from realtime.app.batch_plan import MANIFEST, PARTIAL, Job, Manifest

    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("important")
    (out / f"{PARTIAL}{MANIFEST}").symlink_to(victim)
    clip = tmp_path / "a.mp4"
    clip.write_bytes(b"not really a video")
    m = Manifest(out)
    m.record(Job(str(clip), "a.mp4", "video"), "digest", 3)
    assert victim.read_text() == "important"
    assert (out / MANIFEST).is_file() and not (out / MANIFEST).is_symlink()
    assert Manifest(out).entries["a.mp4"]["frames"] == 3
    assert not [p.name for p in out.iterdir() if p.name.startswith(".portrait-cam-")]
