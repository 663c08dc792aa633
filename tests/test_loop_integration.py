"""One full iteration of the loop on a tiny locally built model, with each sampler backend."""

import json
import subprocess
import sys

import pytest

from starloop.loop.config import load_config
from starloop.loop.driver import STAGES, Driver

from .conftest import require_vllm


def _run(tmp_path, overrides):
    driver = Driver(load_config(None, overrides), tmp_path / "run")
    return driver, driver.run()


def _check_run(loop, metrics, expect_training: bool):
    assert [m["iteration"] for m in metrics] == [0, 1]
    for m in metrics:
        assert 0.0 <= m["pass@1"] <= 1.0 and set(m["pass@k"]) == {"1", "2"}
    stages = loop.rd.manifest()["stages"]
    assert all(f"iter-001/{s.name}" in stages for s in STAGES if s.when is None) and "iter-000/evaluate" in stages
    assert [s.name for s in STAGES] == ["synthesize", "sample", "label", "verify", "rationalize", "select", "pairs", "train",
                                       "evaluate"]
    assert "iter-001/label" not in stages  # only with label.enabled
    samples = [json.loads(x) for x in (loop.rd.root / "iter-001/verify/verified.jsonl").read_text().splitlines()]
    assert len(samples) == 24 * 2
    for s in samples:
        assert s["verdict"]["reason"] in ("ok", "wrong", "unparseable", "truncated")
        assert s["finish_reason"] in ("stop", "length") and s["model"] and s["iteration"] == 1
        assert s["verdict"]["verifier"] == "arithmetic" and s["verdict"]["verifier_version"] == "1"
        if s["verdict"]["reason"] == "truncated":
            assert s["finish_reason"] == "length"
    model_dir = loop.rd.root / "iter-001/train/model"
    assert (model_dir / "config.json").exists() and (model_dir / "tokenizer_config.json").exists()
    if expect_training:
        assert stages["iter-001/train"]["sft"]["steps"] > 0 and stages["iter-001/select"]["rows"] > 0
    assert (loop.rd.root / "iter-001/pairs/pairs.jsonl").exists() and "pairs" in stages["iter-001/pairs"]


@require_vllm
def test_one_iteration_vllm(tmp_path, tiny_overrides):
    # Selecting unverified samples too guarantees a non-empty SFT set, so training really runs.
    loop, metrics = _run(tmp_path, [*tiny_overrides, "sampling.backend=vllm", "select.include_unverified=true"])
    _check_run(loop, metrics, expect_training=True)


def test_one_iteration_transformers(tmp_path, tiny_overrides):
    loop, metrics = _run(tmp_path, [*tiny_overrides, "sampling.backend=transformers", "select.real_fraction=0.5",
                                    "select.include_unverified=true"])
    _check_run(loop, metrics, expect_training=True)
    sft = [json.loads(x) for x in (loop.rd.root / "iter-001/select/sft.jsonl").read_text().splitlines()]
    assert {r["source"] for r in sft} == {"selfgen", "real"}


def test_rerun_does_nothing(tmp_path, tiny_overrides):
    """`starloop run` twice on one run dir: the second run does no work and says it is complete."""
    args = [sys.executable, "-m", "starloop.loop.cli", "run", "--run-dir", str(tmp_path / "run"),
            "--iterations", "1", *sum((["--set", o] for o in tiny_overrides), []),
            "--set", "sampling.backend=transformers"]
    first = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    manifest = (tmp_path / "run/manifest.json").read_text()
    second = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "is complete" in second.stdout + second.stderr
    assert "running" not in second.stdout + second.stderr
    assert (tmp_path / "run/manifest.json").read_text() == manifest


def test_changed_config_refused(tmp_path, tiny_overrides):
    from starloop.loop.runtime.rundir import RunDirMismatch

    cfg = load_config(None, [*tiny_overrides, "iterations=0", "sampling.backend=transformers"])
    Driver(cfg, tmp_path / "run").run()
    with pytest.raises(RunDirMismatch, match="sampling.temperature"):
        Driver(load_config(None, [*tiny_overrides, "iterations=0", "sampling.backend=transformers",
                                  "sampling.temperature=0.3"]), tmp_path / "run").run()


def _completions(root, key):
    """(problem, completion) of every row of every JSONL file of stage ``key``, file by file."""
    return {f.name: [(r["problem_id"], r["completion"]) for r in map(json.loads, f.read_text().splitlines())]
            for f in sorted((root / key).glob("*.jsonl"))}


@require_vllm
def test_a_resumed_run_draws_what_the_uninterrupted_run_draws(tmp_path, tiny_overrides):
    """On CPU, vLLM's engine draws from one random stream across the stages that sample one checkpoint (iteration
    0's evaluation, then iteration 1's sampling and rationalization). A run stopped after any of them, or after the
    verify stage between them, and resumed in a fresh engine continues that stream: every draw equals the
    uninterrupted run's."""
    from starloop.loop.runtime.rundir import RunDir

    overrides = [*tiny_overrides, "sampling.backend=vllm", "select.include_unverified=true", "sampling.temperature=1.0",
                 "rationalize.n=2"]
    Driver(load_config(None, overrides), tmp_path / "whole").run()

    class StopAfter(Driver):
        def __init__(self, key, *args):
            super().__init__(*args)
            self.stop_key = key

        def plan(self):
            full = super().plan()
            keys = [RunDir.key(it, s.name) for it, s in full]
            return full[:keys.index(self.stop_key) + 1]

    stops = ["iter-000/evaluate", "iter-001/sample", "iter-001/verify"]
    for key in stops:
        StopAfter(key, load_config(None, overrides), tmp_path / "resumed").run()
    Driver(load_config(None, overrides), tmp_path / "resumed").run()

    for key in ["iter-000/evaluate", "iter-001/sample", "iter-001/rationalize", "iter-001/evaluate"]:
        whole, resumed = _completions(tmp_path / "whole", key), _completions(tmp_path / "resumed", key)
        assert whole and any(whole.values()), key
        assert resumed == whole, key
    assert (tmp_path / "resumed/iter-001/sample/sampler_stream.json").exists()
    assert not (tmp_path / "resumed/iter-001/train/sampler_stream.json").exists()  # training ends the engine
