"""``run.py --control``: the printed address, bad flags (one line, exit 2), a taken port,
``--control-bind`` and its warning, SIGTERM stopping the page with everything else."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

from conftest import DATA, ROOT, reaped

STILL = DATA / "stills" / "doctor-5871743_640.jpg"
URL_LINE = re.compile(r"^control page: http://127\.0\.0\.1:(\d+)/\?token=([A-Za-z0-9_-]{43,})$")


def run(*args: str, timeout: float = 240, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), **kw.pop("env", {})}
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout, **kw)


def test_bad_control_flags_are_one_line_and_exit_2():
    for args, says in ((["--control", "70000"], "allowed 0..65535"), (["--control", "web"], "not a whole number"),
                       (["--control-bind", "0.0.0.0"], "--control-bind needs --control")):
        r = run("--input", str(STILL), "--output", "null", *args, timeout=60)
        assert r.returncode == 2, r.stderr
        lines = [ln for ln in r.stderr.splitlines() if ln.startswith("portrait-cam")]
        assert len(lines) == 1 and says in lines[0], r.stderr
        assert "control page:" not in r.stdout


def test_a_taken_port_is_one_line_and_exit_2():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        r = run("--input", str(STILL), "--output", "null", "--frames", "3", "--control", str(port))
    assert r.returncode == 2, r.stderr
    assert f"port {port}" in r.stderr and "--control 0" in r.stderr and "Traceback" not in r.stderr
    assert "control page:" not in r.stdout


def test_prints_the_address_serves_it_and_sigterm_stops_it(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "XDG_CONFIG_HOME": str(tmp_path), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "--input", str(DATA / "talking" / "2.mp4"),
                             "--live", "--output", "null", "--control", "0", "--quiet"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with reaped(proc):
        line = proc.stdout.readline().rstrip("\n")
        m = URL_LINE.match(line)
        assert m, (line, proc.stderr.read() if proc.poll() is not None else "")
        port, token = int(m.group(1)), m.group(2)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/state?token={token}", timeout=10) as r:
            assert r.status == 200
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/state", timeout=10)
            raise AssertionError("served without the token")
        except urllib.error.HTTPError as e:
            assert e.code == 403
        # on ::1 too, when this machine has it
        try:
            with socket.create_connection(("::1", port), timeout=2):
                pass
        except OSError:
            pass
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=30)
    err = proc.stderr.read()
    assert rc in (0, 130), err
    assert "Traceback" not in err
    with socket.socket() as s:  # nothing listens any more
        assert s.connect_ex(("127.0.0.1", port)) != 0


def test_control_bind_warns_and_listens_there():
    r = run("--input", str(STILL), "--output", "null", "--frames", "5", "--control", "0",
            "--control-bind", "127.0.0.1")
    assert r.returncode == 0, r.stderr
    assert URL_LINE.match(r.stdout.splitlines()[0]), r.stdout
    assert "warning: the control page listens on 127.0.0.1" in r.stderr
