"""``import starloop``: the library API (lazy exports, version, typing marker) and one call of each."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata, resources

import starloop


def test_exports_are_lazy_and_the_verifiers_stand_alone():
    code = ("import sys, starloop, starloop.verifiers; "
            "print(sorted(m for m in sys.modules if m.startswith(('starloop.loop', 'trl', 'vllm', 'torch')))); "
            "starloop.make_reward_func; print(any(m.startswith('starloop.loop') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == "[]" and out[1] == "False"


def test_version_names_and_typing_marker():
    assert starloop.__version__ == metadata.version("starloop")
    assert set(starloop.__all__) == {"__version__", "run", "evaluate_model", "build_pairs", "load_config", "verify",
                                     "make_reward_func"}
    assert all(callable(getattr(starloop, name)) for name in starloop.__all__ if name != "__version__")
    assert resources.files("starloop").joinpath("py.typed").is_file()
    out = subprocess.run([sys.executable, "-m", "starloop.loop.cli", "--version"], capture_output=True, text=True)
    assert out.stdout.strip() == f"starloop {starloop.__version__}"


def test_verify_and_build_pairs():
    from starloop.verifiers import Problem, VerifyItem

    problem = Problem(id="p", task="math", prompt="2+2?", answer="4")
    verdicts = starloop.verify("math", [VerifyItem(r"\boxed{4}", problem), VerifyItem(r"\boxed{5}", problem)])
    assert [v.reason for v in verdicts] == ["ok", "wrong"]
    rows = [{"id": "p", "prompt": "2+2?", "completion": c, "verdict": v.to_dict()}
            for c, v in zip([r"\boxed{4}", r"\boxed{5}"], verdicts, strict=True)]
    pairs, stats = starloop.build_pairs(rows)
    assert stats["pairs"] == 1 and (pairs[0]["chosen"], pairs[0]["rejected"]) == (r"\boxed{4}", r"\boxed{5}")


def test_run_and_evaluate_from_python(tmp_path, tiny_overrides):
    run_dir = starloop.run(overrides=tiny_overrides, run_dir=tmp_path / "run", iterations=0)
    row = json.loads((run_dir / "metrics.jsonl").read_text())
    assert row["iteration"] == 0 and (run_dir / "report.md").exists()
    cfg = starloop.load_config(None, tiny_overrides)
    assert cfg.sampling.n == 2
    result = starloop.evaluate_model(overrides=tiny_overrides)  # the config's model: the same seed model
    assert result["pass@1"] == row["pass@1"]  # the same greedy evaluation of the same seed model
