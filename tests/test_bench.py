"""``python run.py bench``: the JSON contract other tools read, and a peak RSS that is the user's
command's own (not the benchmark process's memory it was forked from)."""

from __future__ import annotations

import json
import math

import numpy as np

from realtime.devtools import bench
from realtime.app.cli import main


def test_bench_json_has_every_reported_figure(tmp_path):
    out = tmp_path / "bench.json"
    assert main(["bench", "--size", "320x240", "--frames", "30", "--no-micro", "--soak", "0", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["date"] and r["machine"] and r["preset"] == "portrait"
    (row,) = r["sizes"]
    assert row["size"] == "320x240" and row["frames"] >= 30
    for key in ("fps", "ms_per_frame_median", "ms_per_frame_p95", "baseline_ms_median", "ratio_pipeline_baseline",
                "cpu_cores", "latency_ms_p50", "latency_ms_p95", "peak_rss_mb"):
        assert math.isfinite(row[key]) and row[key] > 0, key
    assert row["ms_per_frame_p95"] >= row["ms_per_frame_median"]
    assert math.isclose(row["ratio_pipeline_baseline"], row["ms_per_frame_median"] / row["baseline_ms_median"])
    assert {"segmentation", "depth", "render"} <= set(row["stages"])


def test_child_peak_rss_is_not_inflated_by_the_parent():
    frames = [np.full((120, 160, 3), 90 + i, np.uint8) for i in range(4)]
    ballast = np.ones(1500 * 2**20, np.uint8)  # 1.5 GB resident here, never touched by the child
    r = bench.child_rss("portrait", frames, n_frames=10)
    del ballast
    assert r["exit_code"] == 0
    assert 50 < r["peak_rss_mb"] < 1200


def test_frames_bounds_the_run_soak_is_opt_in_and_memory_says_whose(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "--size", "160x120", "--frames", "30", "--no-micro", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert "soak" not in r  # only with --soak N
    assert r["sizes"][0]["frames"] == 30
    assert r["bench_process_peak_rss_mb"] > 0
    printed = capsys.readouterr().out
    assert "soak" not in printed
    assert "peak RSS MB of run.py" in printed and "This bench process" in printed


def test_a_json_file_in_a_missing_folder_is_refused_before_measuring(tmp_path, capsys):
    """``--json`` into a folder that is not there fails at once with what to do, not after the
    run; the folder is not created and nothing is written."""
    target = tmp_path / "missing" / "bench.json"
    for live in ([], ["--live"]):
        assert main(["bench", *live, "--size", "160x120", "--frames", "30", "--json", str(target)]) == 2
        err = capsys.readouterr().err
        assert "does not exist or is not writable" in err and str(target.parent) in err
    assert main(["bench", "--size", "160x120", "--frames", "30", "--json", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
    assert not target.parent.exists() and list(tmp_path.iterdir()) == []


def test_bench_live_shows_each_round_side_by_side():
    """The medians hide drift: each round's pair (ours, the recipe's, back to back) is printed with
    its own ratio, in the order they ran."""
    from realtime.devtools.livebench import round_table

    row = {"size": "1280x720", "runs": {"pipeline": [{"cpu_ms_per_frame": 20.0}, {"cpu_ms_per_frame": 24.0}],
                                        "recipe": [{"cpu_ms_per_frame": 50.0}, {"cpu_ms_per_frame": 60.0}]}}
    assert round_table([row]) == "1280x720: 20.0 / 50.0 (0.40), 24.0 / 60.0 (0.40)"
    row["runs"]["recipe"][1]["cpu_ms_per_frame"] = 0.0  # a recipe round that measured nothing
    assert round_table([row]).endswith("24.0 / - (-)")


def test_bench_live_alternates_which_side_goes_first(monkeypatch):
    """Pipeline then recipe, then recipe then pipeline: over two rounds a drifting machine weighs
    on both alike. (The children are recorded here, not run: the next test runs them.)"""
    from realtime.devtools import livebench

    order = []

    def child(kind, size, n_frames, preset="portrait", auto_quality=False):
        order.append(kind)
        return {"cpu_ms_per_frame": 20.0 if kind == "pipeline" else 50.0, "cores": 0.6, "fps": 30.0, "dropped": 0,
                "quality_level": 0, "latency_ms_p95": 30.0}

    monkeypatch.setattr(livebench, "run_child", child)
    rows = livebench.bench_live([(160, 120)], 30, 3, with_quality=False, say=lambda *_: None)
    assert order == ["pipeline", "recipe", "recipe", "pipeline", "pipeline", "recipe"]
    assert rows[0]["ratio"] == 0.4 and len(rows[0]["runs"]["pipeline"]) == 3


def test_bench_live_runs_both_children_paced(capsys):
    """``bench --live`` for real, small: each side in its own process at 30 fps, CPU counted over
    every thread, a ratio, the rounds printed in the order they ran."""
    assert main(["bench", "--live", "--size", "160x120", "--frames", "45", "--rounds", "2", "--no-quality"]) == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.startswith("| 160x120 |"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    ours, fps, recipe, ratio = float(cells[1]), float(cells[3]), float(cells[5]), float(cells[9])
    assert ours > 0 and recipe > 0 and abs(ratio - ours / recipe) < 0.02, line
    assert 25.0 <= fps <= 31.0, line
    rounds = next(ln for ln in out.splitlines() if ln.startswith("160x120: "))
    assert rounds.count("/") == 2, rounds


def test_default_bench_runs_every_micro_benchmark_and_the_model_ones_run_the_model(tmp_path):
    """``python run.py bench`` as a user types it (micro-benchmarks on), tiny: every section
    finishes, and the depth benchmarks that compare model variants do run the model (the stage's
    still check must not skip it on their repeated frames and leave them timing nothing)."""
    out = tmp_path / "bench.json"
    assert main(["bench", "--size", "160x120", "--frames", "30", "--micro-repeats", "3", "--soak", "0",
                 "--json", str(out)]) == 0
    micro = {m["name"]: m for m in json.loads(out.read_text())["micro"]}
    assert {"depth overlapped (pipeline), caller, model split", "temporal", "render_bokeh"} <= set(micro)
    model_alone = micro["depth (model every frame, synchronous)"]["baseline_median_ms"]
    for name in ("depth (model every frame, synchronous)", "depth synchronous, model split",
                 "depth synchronous (default)"):
        assert micro[name]["median_ms"] > 0.5 * model_alone, (name, micro[name]["median_ms"], model_alone)
