"""The loop's machinery on its own: the child-process runner, the one sampling path in and out of a
child process, seeds, built-in models."""

from __future__ import annotations

import math
import os

import pytest

from starloop.loop.config import ConfigError, ModelConfig, PromptConfig, load_config
from starloop.loop.errors import InputError
from starloop.loop.records import GenParams, SampleRequest, sample_to_row
from starloop.loop.runtime.models import resolve_model
from starloop.loop.runtime.processes import ChildFailed, ChildJob, run_job, run_jobs
from starloop.loop.runtime.sampling import Sampling
from starloop.loop.runtime.seeds import stage_seed
from starloop.verifiers.records import Problem


def test_child_job_returns_its_value_and_reports_its_error(tmp_path):
    assert run_job(ChildJob(math.factorial, (6,), tmp_path, "ok")) == 720
    assert (tmp_path / "ok.result.pkl").exists() and (tmp_path / "ok.spec.pkl").exists()
    missing = str(tmp_path / "nowhere")
    with pytest.raises(ChildFailed, match=r"bad failed in a child process .*FileNotFoundError.*nowhere") as exc:
        run_job(ChildJob(os.stat, (missing,), tmp_path, "bad", log=True))
    assert "[log: " in str(exc.value) and "Traceback" in (tmp_path / "bad.error").read_text()
    outs = run_jobs([ChildJob(math.factorial, (3,), tmp_path, "a"), ChildJob(os.stat, (missing,), tmp_path, "b")])
    assert [o.ok for o in outs] == [True, False] and outs[0].value == 6


def test_sampling_in_a_child_process_gives_what_this_process_gives(tiny_model):
    """runtime.stage_processes: the same function runs in a fresh process (transformers: per-row seeds)."""
    cfg = load_config(None, ["sampling.backend=transformers", "sampling.batch_size=4"]).sampling
    problems = [Problem(id=f"p{i}", task="math", prompt=f"{i}+{i}", answer=str(2 * i)) for i in range(5)]
    request = SampleRequest(tiny_model, problems, [f"Q: {p.prompt}\nA: " for p in problems],
                            GenParams(n=2, temperature=1.0, max_tokens=6, seed=3), iteration=2)
    with Sampling(cfg, engine_seed=0) as here:
        want = here.sample(request)
        assert here.engine(tiny_model) is here.engine(tiny_model)  # one engine while the model stays the same
    with Sampling(cfg, engine_seed=0, isolate=True) as child:
        got = child.sample(request)
    assert [sample_to_row(s) for s in got] == [sample_to_row(s) for s in want]
    assert len(got) == 10 and {s.iteration for s in got} == {2} and {s.seed for s in got} == {3}


def test_stage_seeds_are_the_documented_ones():
    """These values made the published demo curves: changing one changes every curve."""
    assert [stage_seed(5, p, 2) for p in ("subset", "sample", "rationalize", "select", "pairs", "evaluate")] == [
        "5-2", 7, 1007, 7, 7, 5 + 7919 * 3]
    with pytest.raises(ValueError, match="unknown seed purpose"):
        stage_seed(0, "train", 1)  # type: ignore[arg-type]


def test_unknown_builtin_model_lists_the_known_ones():
    with pytest.raises(ConfigError, match=r"unknown built-in model 'builtin:nope'; known: \['builtin:addition', 'builtin:arithmetic', 'builtin:listfn'\]"):
        resolve_model(ModelConfig(path="builtin:nope"), PromptConfig(), 0)
    assert resolve_model(ModelConfig(path="Qwen/Qwen2.5-Math-1.5B"), PromptConfig(), 0) == "Qwen/Qwen2.5-Math-1.5B"
    with pytest.raises(InputError, match="model.path: no such model folder: /models/x"):
        resolve_model(ModelConfig(path="/models/x"), PromptConfig(), 0)


def test_stages_run_after_what_they_read():
    from starloop.loop.driver import STAGES, check_order
    from starloop.loop.runtime.context import Stage

    check_order(STAGES)
    assert {s.name: s.needs for s in STAGES}["train"] == ("select", "pairs")
    with pytest.raises(ValueError, match="stage 'train' reads \\['pairs'\\]"):
        check_order((Stage("select", print), Stage("train", print, needs=("select", "pairs"))))
