"""Fault injection with real processes: concurrent runs on one run dir, SIGKILL at every stage (in the
middle of a stage, between a stage's rename and its record, in the middle of a checkpoint save),
SIGTERM and SIGINT, a full disk (a small tmpfs in an unprivileged mount namespace), damaged or
deleted run-dir files, and bad input to every command. Each case asserts that nothing finished is
lost, and that the message is one clear line with its documented exit status."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from .conftest import TINY_OVERRIDES

SETS = [a for o in [*TINY_OVERRIDES, "sampling.backend=transformers", "select.include_unverified=true"]
        for a in ("--set", o)]
ALL = ["iter-000/evaluate"] + [f"iter-001/{s}" for s in
                               ("sample", "verify", "rationalize", "select", "pairs", "train", "evaluate")]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}


def _cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "starloop.loop.cli", *args]


def _run(run_dir: Path, *extra: str, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(_cmd("run", "--run-dir", str(run_dir), *SETS, *extra), capture_output=True, text=True,
                          env=env or ENV, timeout=timeout)


def _stages(run_dir: Path) -> dict:
    path = run_dir / "manifest.json"
    return json.loads(path.read_text())["stages"] if path.exists() else {}


def _done_at(run_dir: Path) -> dict[str, str]:
    return {k: v["completed_at"] for k, v in _stages(run_dir).items()}


def _said(out: subprocess.CompletedProcess) -> str:
    """Everything a command printed, as one line (log lines are wrapped at the terminal width)."""
    return " ".join((out.stdout + out.stderr).split())


def _error_line(out: subprocess.CompletedProcess) -> str:
    lines = [x for x in out.stderr.splitlines() if x.startswith("error:") or "interrupted;" in x]
    assert lines, out.stderr[-3000:]
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    return lines[-1]


@pytest.fixture(scope="module")
def finished(tmp_path_factory, starloop_cache) -> Path:
    """A finished one-iteration run, copied by the tests that damage it."""
    run = tmp_path_factory.mktemp("finished") / "run"
    out = _run(run)
    assert out.returncode == 0, out.stderr[-3000:]
    assert sorted(_stages(run)) == sorted(ALL)
    return run


def _copy(finished: Path, tmp_path: Path) -> Path:
    shutil.copytree(finished, tmp_path / "run")
    return tmp_path / "run"


# ---------------------------------------------------------------------------------------------- the lock


def test_a_second_run_on_a_busy_run_dir_is_refused(tmp_path, starloop_cache):
    run = tmp_path / "run"
    first = subprocess.Popen(_cmd("run", "--run-dir", str(run), *SETS), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, env=ENV)
    deadline = time.time() + 300
    while not (run / ".lock").exists() or not (run / "config.yaml").exists():
        assert first.poll() is None and time.time() < deadline, "the first run ended before it could be raced"
        time.sleep(0.02)
    first.send_signal(signal.SIGSTOP)  # holds the lock, mid-run, for as long as the test needs
    try:
        second = _run(run)
    finally:
        first.send_signal(signal.SIGCONT)
    assert second.returncode == 3, second.stderr[-3000:]
    line = _error_line(second)
    assert f"in use by another starloop run (pid {first.pid} on host {socket.gethostname()}" in line
    assert first.wait(timeout=600) == 0
    assert sorted(_stages(run)) == sorted(ALL) and not (run / ".lock").exists()


def test_two_runs_started_together_one_works_one_is_refused(tmp_path, starloop_cache):
    run = tmp_path / "run"
    procs = [subprocess.Popen(_cmd("run", "--run-dir", str(run), *SETS), stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True, env=ENV) for _ in range(2)]
    codes = [p.wait(timeout=600) for p in procs]
    errors = [p.stderr.read() for p in procs]
    assert sorted(codes) == [0, 3], errors
    assert "in use by another starloop run" in errors[codes.index(3)] and "Traceback" not in "".join(errors)
    assert sorted(_stages(run)) == sorted(ALL)


def test_a_stale_lock_is_taken_over_and_a_live_one_from_another_host_is_not(finished, tmp_path):
    run = _copy(finished, tmp_path)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lock = run / ".lock"
    lock.write_text(json.dumps({"pid": int(dead.stdout), "host": socket.gethostname(), "token": "x"}))
    out = _run(run)  # the holder died on this host: taken over at once
    assert out.returncode == 0 and "is complete" in _said(out), out.stderr[-2000:]
    lock.write_text(json.dumps({"pid": 1, "host": "other-node", "token": "y", "since": "yesterday"}))
    out = _run(run)  # another host's lock with a fresh heartbeat: its pid cannot be checked
    assert out.returncode == 3 and "pid 1 on host other-node" in _error_line(out)
    old = time.time() - 600
    os.utime(lock, (old, old))  # no heartbeat for 10 minutes: its holder is gone
    out = _run(run)
    assert out.returncode == 0, out.stderr[-2000:]
    assert not lock.exists() and not list(run.glob(".lock.stale.*"))


# ---------------------------------------------------------------------------------------------- kills


def test_sigkill_at_every_stage_loses_nothing_finished(tmp_path, starloop_cache):
    """A run killed (SIGKILL) at one point after another, each rerun resuming where the last stopped:
    inside each stage, between a stage's rename and its record, in the middle of a checkpoint save."""
    run = tmp_path / "run"
    points = ["renamed:iter-000/evaluate", "running:iter-001/sample", "renamed:iter-001/sample",
              "running:iter-001/verify", "running:iter-001/rationalize", "renamed:iter-001/select",
              "running:iter-001/pairs", "checkpoint-save", "renamed:iter-001/train", "running:iter-001/evaluate"]
    for point in points:
        before = _done_at(run)
        out = _run(run, env={**ENV, "STARLOOP_FAILPOINT": point})
        assert out.returncode == -signal.SIGKILL, (point, out.stderr[-3000:])
        after = _done_at(run)
        assert {k: after[k] for k in before} == before, point  # nothing finished was redone or lost
        key = point.split(":", 1)[1] if ":" in point else "iter-001/train"
        assert key not in after, point  # the interrupted stage counts as unfinished
        assert len(after) >= len(before)
    out = _run(run)
    assert out.returncode == 0, out.stderr[-3000:]
    assert sorted(_stages(run)) == sorted(ALL)
    assert not list(run.glob("iter-*/.*.partial")) and not (run / ".lock").exists()
    assert (run / "iter-001/train/model/tokenizer_config.json").exists()  # the half-saved checkpoint was redone
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == [0, 1]


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_sigterm_and_sigint_stop_within_seconds_and_keep_finished_stages(tmp_path, starloop_cache, sig, code):
    run = tmp_path / "run"
    proc = subprocess.Popen(_cmd("run", "--run-dir", str(run), *SETS), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=ENV)
    deadline = time.time() + 300
    while "iter-001/sample" not in _stages(run):
        assert proc.poll() is None and time.time() < deadline
        time.sleep(0.05)
    done = _done_at(run)
    t0 = time.time()
    proc.send_signal(sig)
    assert proc.wait(timeout=30) == code
    assert time.time() - t0 < 15
    err = proc.stderr.read()
    assert "interrupted; finished stages are kept" in err and "Traceback" not in err, err[-3000:]
    assert not (run / ".lock").exists()
    after = _done_at(run)
    assert {k: after[k] for k in done} == done
    out = _run(run)
    assert out.returncode == 0 and sorted(_stages(run)) == sorted(ALL)


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
@pytest.mark.parametrize("failure", ["child", "other"])
def test_a_failure_while_unwinding_a_signal_still_ends_as_the_interruption(monkeypatch, capsys, sig, code, failure):
    """The race: a signal arrives, and on the way out a child or server that the signal stopped raises its own
    error, which replaces the interruption. The run still ends with the signal's status, not 1."""
    import argparse

    from starloop.loop.cli import main as cli
    from starloop.loop.runtime.processes import ChildFailed

    def command(args):
        try:
            os.kill(os.getpid(), sig)  # the handler raises the interruption here
            time.sleep(5)
        finally:
            if failure == "child":
                raise ChildFailed("sample child exited with status -15")
            raise RuntimeError("the server's socket closed on the way out")

    parser = argparse.ArgumentParser()
    parser.add_argument("-v", "--verbose", action="count", default=0)
    parser.set_defaults(func=command)
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    before = signal.getsignal(sig)
    assert cli.main([]) == code
    err = capsys.readouterr().err
    assert "interrupted; finished stages are kept" in err and "Traceback" not in err, err
    assert signal.getsignal(sig) is before  # the command's handlers are put back


# ---------------------------------------------------------------------------------------------- damage


def test_damaged_manifest_is_an_error_naming_it(finished, tmp_path):
    run = _copy(finished, tmp_path)
    manifest = run / "manifest.json"
    text = manifest.read_text()
    manifest.write_text(text[: len(text) // 2])
    out = _run(run)
    assert out.returncode == 2 and f"{manifest} is damaged" in _error_line(out)
    manifest.write_text("{}")
    out = _run(run)
    assert out.returncode == 2 and f"{manifest} has no 'stages' record" in _error_line(out)


def test_damaged_metrics_row_is_restored_from_its_stage(finished, tmp_path):
    run = _copy(finished, tmp_path)
    metrics = run / "metrics.jsonl"
    good = metrics.read_text()
    lines = good.splitlines()
    metrics.write_text("{oops\n" + "\n".join(lines[1:]) + "\n")
    report = subprocess.run(_cmd("report", str(run)), capture_output=True, text=True, env=ENV)
    assert report.returncode == 2 and f"{metrics}:1: not valid JSON" in _error_line(report)
    out = _run(run)
    assert out.returncode == 0 and "rows of iteration(s) [0] restored from their evaluate stages" in _said(out)
    assert metrics.read_text() == good


@pytest.mark.parametrize("damage, first", [("cut samples", "iter-001/sample"), ("delete weights", "iter-001/train")])
def test_changed_stage_outputs_are_redone_with_everything_after_them(finished, tmp_path, damage, first):
    run = _copy(finished, tmp_path)
    before = _done_at(run)
    if damage == "cut samples":  # and delete the verify stage, as a user cleaning up might
        samples = run / "iter-001/sample/samples.jsonl"
        lines = samples.read_text().splitlines()
        samples.write_text("\n".join(lines[: len(lines) // 2]) + "\n")
        shutil.rmtree(run / "iter-001/verify")
    else:
        (run / "iter-001/train/model/model.safetensors").unlink()
    out = _run(run)
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"{first}: its outputs changed since it finished" in _said(out)
    after = _done_at(run)
    redone = ALL[ALL.index(first):]
    assert all(after[k] != before[k] for k in redone) and all(after[k] == before[k] for k in ALL if k not in redone)
    assert len((run / "iter-001/sample/samples.jsonl").read_text().splitlines()) == 24 * 2
    assert (run / "iter-001/train/model/model.safetensors").exists()


# ---------------------------------------------------------------------------------------------- bad input


def test_bad_run_inputs_are_clear_and_do_not_tie_the_run_dir(tmp_path, starloop_cache):
    run = tmp_path / "run"
    out = _run(run, "--set", "data.train={source: jsonl, path: /no/such/train.jsonl}")
    assert out.returncode == 2 and "/no/such/train.jsonl" in _error_line(out)
    assert not (run / "config.yaml").exists()  # a failed start leaves nothing that blocks the fix
    overlap = ["--set", "data.eval.options={split: train, levels: [2], per_level: 12}"]
    out = _run(run, *overlap)
    assert out.returncode == 2 and "eval problems also appear in the train pool" in _error_line(out)
    out = _run(run, "--set", "model.path=/no/such/model")
    assert out.returncode == 2 and "model.path: no such model folder: /no/such/model" in _error_line(out)
    out = _run(run, "--set", "eval.k=[1,")
    assert out.returncode == 2 and "--set eval.k: the value '[1,' is not valid YAML" in _error_line(out)
    bad = tmp_path / "train.jsonl"
    bad.write_text('{"prompt": "1+1", "answer": "2"}\n{"prompt": "2+2", "answer": \n')
    out = _run(run, "--set", f"data.train={{source: jsonl, path: {bad}, task: math}}")
    assert out.returncode == 2 and f"{bad}:2: not valid JSON" in _error_line(out)
    afile = tmp_path / "a-file"
    afile.write_text("x")
    out = _run(afile)
    assert out.returncode == 2 and "is a file, not a folder" in _error_line(out)
    out = _run(run, "--iterations", "0")  # the corrected start runs
    assert out.returncode == 0, out.stderr[-3000:]


def _verify(tmp_path: Path, verifier: str, rows: list | bytes) -> subprocess.CompletedProcess:
    inp = tmp_path / "in.jsonl"
    if isinstance(rows, bytes):
        inp.write_bytes(rows)
    else:
        inp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return subprocess.run(_cmd("verify", "--verifier", verifier, "--input", str(inp), "--output",
                               str(tmp_path / "out.jsonl")), capture_output=True, text=True, env=ENV)


def test_verify_input_is_checked_before_any_work(tmp_path):
    out = _verify(tmp_path, "math", b'{"completion": "x", "answer": "1"}\n\xff\xfe\x00binary\n')
    assert out.returncode == 2 and "in.jsonl:2: not UTF-8 text" in _error_line(out)
    out = _verify(tmp_path, "math", [{"completion": ["so", "4"], "answer": "4"}])
    assert out.returncode == 2 and "row 1: 'completion' must be a string, got list" in _error_line(out)
    out = _verify(tmp_path, "code", [{"completion": "```python\nx = 1\n```", "tests": "assert x == 1"},
                                     {"completion": "```python\nx = 1\n```", "tests": []}])
    assert out.returncode == 2 and "row 2: code problem '2' has no tests" in _error_line(out)
    assert not (tmp_path / "out.jsonl").exists()
    out = _verify(tmp_path, "code", [{"completion": "```python\ndef f(x):\n    return x + 1\n```",
                                      "tests": ["assert f(1) == 2", "assert f(2) == 3"]}])
    assert out.returncode == 0, out.stderr[-2000:]  # MBPP's test_list form: a list of assert strings
    assert json.loads((tmp_path / "out.jsonl").read_text())["verdict"]["reason"] == "ok"


def test_a_lone_surrogate_is_written_back_not_lost(tmp_path):
    inp = tmp_path / "in.jsonl"
    inp.write_text('{"completion": "so \\\\boxed{4} \\ud800", "answer": "4", "note": "\\udc00"}\n')
    out = subprocess.run(_cmd("verify", "--verifier", "math", "--input", str(inp), "--output",
                              str(tmp_path / "out.jsonl")), capture_output=True, text=True, env=ENV)
    assert out.returncode == 0, out.stderr[-2000:]
    row = json.loads((tmp_path / "out.jsonl").read_text())
    assert row["verdict"]["reason"] == "ok" and row["note"] == "\udc00" and row["completion"].endswith("\ud800")


def test_outputs_that_cannot_be_written_and_checkpoints_without_tokenizer(tmp_path, tiny_model):
    verified = tmp_path / "verified.jsonl"
    ok = {"correct": True, "score": 1.0, "reason": "ok"}
    bad = {"correct": False, "score": 0.0, "reason": "wrong"}
    verified.write_text("".join(json.dumps({"id": "p", "prompt": "q", "completion": c, "verdict": v}) + "\n"
                                for c, v in (("a", ok), ("b", bad))))
    (tmp_path / "file").write_text("x")
    out = subprocess.run(_cmd("pairs", "--input", str(verified), "--output", str(tmp_path / "file" / "pairs")),
                         capture_output=True, text=True, env=ENV)
    assert out.returncode == 2 and f"cannot write {tmp_path / 'file' / 'pairs'}" in _error_line(out)
    bare = tmp_path / "bare"
    shutil.copytree(tiny_model, bare, ignore=lambda d, names: [n for n in names if "token" in n])
    out = subprocess.run(_cmd("eval", "--model", str(bare), "--set", "runtime.progress=false"), capture_output=True,
                         text=True, env=ENV)
    assert out.returncode == 2 and f"{bare}: no tokenizer files" in _error_line(out)


# ---------------------------------------------------------------------------------------------- full disk

UNSHARE = shutil.which("unshare")


def _in_mount_namespace(script: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """``script`` (bash) in a private mount namespace, where it may mount tmpfs file systems."""
    if UNSHARE is None or subprocess.run([UNSHARE, "-rm", "true"], capture_output=True).returncode != 0:
        pytest.skip("no unprivileged mount namespaces here (unshare -rm): cannot make a small file system")
    return subprocess.run([UNSHARE, "-rm", "bash", "-c", script], capture_output=True, text=True, env=ENV,
                          cwd=tmp_path, timeout=900)


def test_full_disk_names_the_path_and_the_rerun_resumes(tmp_path, starloop_cache):
    """The run dir on a tmpfs too small for the checkpoint: the train stage fails with exit 4 naming the
    path; the same command, once there is room, resumes at the train stage."""
    disk = tmp_path / "disk"
    disk.mkdir()
    run = disk / "run"
    cmd = " ".join(f"'{a}'" for a in _cmd("run", "--run-dir", str(run), *SETS))
    script = textwrap.dedent(f"""
        mount -t tmpfs -o size=320k tmpfs {disk}
        {cmd} > first.out 2> first.err; echo "first=$?"
        cp {run}/manifest.json manifest-after-first.json
        mount -o remount,size=64m {disk}
        {cmd} > second.out 2> second.err; echo "second=$?"
        cp {run}/manifest.json manifest-after-second.json
    """)
    out = _in_mount_namespace(script, tmp_path)
    assert "first=4" in out.stdout, out.stdout + (tmp_path / "first.err").read_text()[-3000:]
    err = (tmp_path / "first.err").read_text()
    assert "no space left on device writing" in err and "rerun the same command to resume" in err
    assert "Traceback" not in err
    assert "second=0" in out.stdout, (tmp_path / "second.err").read_text()[-3000:]
    first = json.loads((tmp_path / "manifest-after-first.json").read_text())["stages"]
    second = json.loads((tmp_path / "manifest-after-second.json").read_text())["stages"]
    assert first and all(second[k]["completed_at"] == v["completed_at"] for k, v in first.items())
    assert sorted(second) == sorted(ALL)


def test_verify_on_a_full_disk_keeps_its_verdicts(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    inp = tmp_path / "in.jsonl"
    inp.write_text("".join(json.dumps({"completion": f"so \\boxed{{{i}}} " + "x" * 2000, "answer": str(i)}) + "\n"
                           for i in range(600)))
    cmd = " ".join(f"'{a}'" for a in _cmd("verify", "--verifier", "math", "--input", str(inp), "--output",
                                          str(disk / "out.jsonl")))
    script = textwrap.dedent(f"""
        mount -t tmpfs -o size=600k tmpfs {disk}
        {cmd} > first.out 2> first.err; echo "first=$?"
        ls {disk}/out.jsonl.parts/*/ | wc -l > kept.txt
        mount -o remount,size=64m {disk}
        {cmd} > second.out 2> second.err; echo "second=$?"
        wc -l < {disk}/out.jsonl > lines.txt
        ls {disk} > listing.txt
    """)
    out = _in_mount_namespace(script, tmp_path)
    err = (tmp_path / "first.err").read_text()
    assert "first=4" in out.stdout and "no space left on device writing" in err and "Traceback" not in err, err
    assert int((tmp_path / "kept.txt").read_text()) >= 1  # finished chunks of verdicts stayed on disk
    assert "second=0" in out.stdout, (tmp_path / "second.err").read_text()[-3000:]
    said = " ".join(((tmp_path / "second.out").read_text() + (tmp_path / "second.err").read_text()).split())
    kept = re.search(r"(\d+) of 600 verdicts kept from an interrupted attempt", said)
    # The disk filled up writing the output, after every verdict was made: none is made twice.
    assert kept and int(kept.group(1)) == 600, said[-2000:]
    assert int((tmp_path / "lines.txt").read_text()) == 600
    assert (tmp_path / "listing.txt").read_text().split() == ["out.jsonl"]  # the kept chunks are cleaned up


def test_pairs_into_a_read_only_file_system(tmp_path):
    verified = tmp_path / "verified.jsonl"
    verified.write_text("".join(json.dumps({"id": "p", "prompt": "q", "completion": c, "verdict": {
        "correct": c == "a", "score": float(c == "a"), "reason": "ok" if c == "a" else "wrong"}}) + "\n" for c in "ab"))
    ro = tmp_path / "ro"
    ro.mkdir()
    cmd = " ".join(f"'{a}'" for a in _cmd("pairs", "--input", str(verified), "--output", str(ro / "pairs")))
    out = _in_mount_namespace(f"mount -t tmpfs -o ro,size=1m tmpfs {ro}\n{cmd} 2> err.txt; echo rc=$?", tmp_path)
    err = (tmp_path / "err.txt").read_text()
    assert "rc=2" in out.stdout and f"cannot write {ro / 'pairs'}: Read-only file system" in err, out.stdout + err


def test_a_signal_swallowed_where_it_was_raised_still_interrupts():
    """CPython ignores an exception raised inside a finalizer: a SIGINT that lands there is not lost."""
    import signal as _signal

    from starloop.loop import errors

    class Finalized:
        def __del__(self):
            errors.on_signal(_signal.SIGINT, None)  # as if the signal arrived during this __del__

    errors.forget_signals()
    Finalized()  # "Exception ignored in ... KeyboardInterrupt": swallowed
    with pytest.raises(KeyboardInterrupt):
        errors.raise_if_signalled()  # the driver's check at the next stage boundary
    errors.forget_signals()
    errors.raise_if_signalled()  # nothing remembered: nothing raised
