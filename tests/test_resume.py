"""SIGKILL a run mid-stage; the rerun resumes at the first unfinished stage without redoing
finished ones, and nothing finished is corrupted."""

import json
import os
import signal
import subprocess
import sys
import time


def _manifest(run):
    p = run / "manifest.json"
    return json.loads(p.read_text())["stages"] if p.exists() else {}


def test_sigkill_mid_run_then_resume(tmp_path, tiny_overrides):
    run = tmp_path / "run"
    args = [sys.executable, "-m", "starloop.loop.cli", "run", "--run-dir", str(run),
            *sum((["--set", o] for o in tiny_overrides), []),
            "--set", "sampling.backend=transformers", "--set", "select.include_unverified=true"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                            start_new_session=True)
    # Kill as soon as the sample stage is recorded: the next stages are then in flight.
    deadline = time.time() + 400
    while "iter-001/sample" not in _manifest(run):
        assert proc.poll() is None, "run ended before it could be killed"
        assert time.time() < deadline
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = _manifest(run)
    assert "iter-001/train" not in before
    sample_file = run / "iter-001/sample/samples.jsonl"
    sample_bytes = sample_file.read_bytes()

    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    after = _manifest(run)
    for key, info in before.items():  # finished stages were not redone
        assert after[key]["completed_at"] == info["completed_at"], key
    assert "iter-001/evaluate" in after
    assert sample_file.read_bytes() == sample_bytes
    assert not list(run.glob("iter-*/.*.partial"))
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == [0, 1]
