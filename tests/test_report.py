"""Run reports (table, report.md, PNG plots) and per-iteration metrics sent to experiment trackers."""

import io
import json
import sys
import types
from pathlib import Path

import pytest

from starloop.loop.cli.main import main
from starloop.loop.config import RunConfig, dump_config, load_config
from starloop.loop.runtime.report import iteration_rows, print_table, write_report
from starloop.loop.runtime.rundir import RunDir
from starloop.loop.runtime.trackers import flatten_metrics, log_iteration

FIX = Path(__file__).parent / "fixtures"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _stats(n, ok, unparseable=0.0, truncated=0.0):
    wrong = 1.0 - ok - unparseable - truncated
    return {"n": n, "pass_rate": ok, "ok_rate": ok, "wrong_rate": wrong, "unparseable_rate": unparseable,
            "truncated_rate": truncated, "timeout_rate": 0.0, "error_rate": 0.0}


def fake_run(root: Path, iterations: int = 2) -> RunDir:
    """A run directory as the loop writes it: manifest stage stats, metrics rows, SFT sets."""
    root.mkdir(parents=True)
    stages = {"iter-000/evaluate": {"pass@1": 0.1, "seconds": 3.0}}
    metrics = [{"iteration": 0, "pass@1": 0.1, "pass@k": {"1": 0.1, "4": 0.3}, "maj@k": {"1": 0.1, "4": 0.2},
                "reasons": {"ok": 0.1, "wrong": 0.5, "truncated": 0.4},
                "per_task": {"math": {"pass@1": 0.2}, "code": {"pass@1": 0.0}}}]
    for it in range(1, iterations + 1):
        stages[f"iter-{it:03d}/sample"] = {"samples": 40, "seconds": 5.0}
        stages[f"iter-{it:03d}/verify"] = {"verified": 8, "per_verifier": {
            "math": _stats(10, 0.5, unparseable=0.2), "code": _stats(30, 0.1, truncated=0.3)}, "seconds": 1.0}
        stages[f"iter-{it:03d}/rationalize"] = {"rationalized": 2, "seconds": 2.0}
        stages[f"iter-{it:03d}/select"] = {"rows": 12, "selfgen_rows": 8, "real_rows": 3, "replay_rows": 1,
                                           "distinct_2": 0.5 + 0.1 * it, "seconds": 0.1}
        stages[f"iter-{it:03d}/pairs"] = {"pairs": 4, "seconds": 0.2}
        stages[f"iter-{it:03d}/train"] = {"init": "m", "sft": {"steps": 3}, "seconds": 9.0}
        stages[f"iter-{it:03d}/evaluate"] = {"seconds": 3.0}
        metrics.append({"iteration": it, "pass@1": 0.1 + 0.2 * it, "pass@k": {"1": 0.2, "4": 0.5},
                        "maj@k": {"1": 0.2, "4": 0.4}, "reasons": {"ok": 0.3, "wrong": 0.7},
                        "per_task": {"math": {"pass@1": 0.4}, "code": {"pass@1": 0.1}}})
        sft = root / f"iter-{it:03d}/select/sft.jsonl"
        sft.parent.mkdir(parents=True)
        sources = ["selfgen"] * 6 + ["rationalized"] * 2 + ["real"] * 3 + ["replay"]
        sft.write_text("".join(json.dumps({"prompt": "p", "completion": "c", "source": s}) + "\n" for s in sources))
    (root / "manifest.json").write_text(json.dumps({"layout": 2, "stages": stages}))
    (root / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics))
    return RunDir(root)


def check_png(path: Path) -> None:
    """A valid PNG: the signature, and both PIL and matplotlib decode it."""
    import matplotlib.image
    from PIL import Image

    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, path
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] > 100 and im.size[1] > 100
    assert matplotlib.image.imread(str(path)).ndim == 3


def test_iteration_rows_from_run_dir(tmp_path):
    rows = iteration_rows(fake_run(tmp_path / "run"))
    assert [r["iteration"] for r in rows] == [0, 1, 2]
    r = rows[1]
    # train reasons: verifiers weighted by their sample counts (math 10 at 0.5 ok, code 30 at 0.1 ok)
    assert r["train_reasons"]["ok"] == pytest.approx((10 * 0.5 + 30 * 0.1) / 40)
    assert r["train_reasons"]["truncated"] == pytest.approx(30 * 0.3 / 40)
    assert r["sources"] == {"selfgen": 6, "rationalized": 2, "real": 3, "replay": 1}
    assert r["distinct_2"] == pytest.approx(0.6) and r["per_task"] == {"math": 0.4, "code": 0.1}
    assert rows[0]["sources"] == {} and rows[0]["train_reasons"] == {} and rows[0]["eval_reasons"]["truncated"] == 0.4
    assert r["pass@k"] == ("4", 0.5) and r["maj@k"] == 0.4
    assert r["seconds"]["pairs"] == 0.2 and r["seconds"]["train"] == 9.0  # every stage's wall time, pairs included


def test_write_report_markdown_and_pngs(tmp_path):
    rd = fake_run(tmp_path / "run")
    (rd.root / "config.yaml").write_text(dump_config(load_config()))
    path = write_report(rd)
    md = path.read_text()
    for needle in ("## Per iteration", "## Held-out pass@1 per task", "## Verdict reasons", "## SFT data",
                   "(accuracy.png)", "(reasons.png)", "(data.png)", "| iteration | selfgen | rationalized | real | replay",
                   # what was run, and columns that say what they are
                   "| model | builtin:arithmetic |", "| SFT | learning_rate=0.0003, max_steps=60", "| DPO | off |",
                   "| iterations, seed | 2 done of 10, seed 0 |", "| wall time |", "pass@1 greedy | pass@4 sampled | "
                   "maj@4 sampled", "rationales kept", "SFT loss", "## Seconds per stage",
                   "| iteration | sample | verify | rationalize | select | pairs | train | evaluate | total |"):
        assert needle in md, needle
    for name in ("accuracy.png", "reasons.png", "data.png"):
        check_png(rd.root / name)
    buf = io.StringIO()
    from rich.console import Console

    print_table(rd, Console(file=buf, width=200))
    text = buf.getvalue()
    assert "verdict reasons" in text and "distinct-2" in text and "per task" in text and "0.200 / 0.300" in text and "- / 0.400" in text


def test_report_cli_and_a_run_with_only_iteration_0(tmp_path, capsys):
    rd = fake_run(tmp_path / "run", iterations=0)
    assert main(["report", str(rd.root)]) == 0
    assert "wrote" in capsys.readouterr().out
    for name in ("accuracy.png", "reasons.png", "data.png"):
        check_png(rd.root / name)


def test_flatten_metrics():
    flat = flatten_metrics({"iteration": 2, "pass@1": 0.5, "pass@k": {"4": 0.75}, "per_task": {"math": {"pass@1": 1}},
                            "note": "x", "flag": True})
    assert flat == {"starloop/pass@1": 0.5, "starloop/pass@k/4": 0.75, "starloop/per_task/math/pass@1": 1.0}


@pytest.fixture
def fake_trackers(monkeypatch):
    """Stand-ins for torch.utils.tensorboard and wandb that record what they are given."""
    calls = {"tb": [], "wandb": []}

    class Writer:
        def __init__(self, log_dir):
            calls["tb"].append(("open", log_dir))

        def add_scalar(self, key, value, global_step):
            calls["tb"].append((key, value, global_step))

        def close(self):
            calls["tb"].append("close")

    class Run:
        def define_metric(self, *a, **k):
            pass

        def log(self, data):
            calls["wandb"].append(("log", data))

        def finish(self):
            calls["wandb"].append("finish")

    tb = types.ModuleType("torch.utils.tensorboard")
    tb.SummaryWriter = Writer
    wandb = types.ModuleType("wandb")
    wandb.run = None
    wandb.init = lambda **kw: calls["wandb"].append(("init", kw)) or Run()
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", tb)
    monkeypatch.setitem(sys.modules, "wandb", wandb)
    return calls


def test_log_iteration_to_trackers(tmp_path, fake_trackers):
    row = {"iteration": 3, "pass@1": 0.5, "pass@k": {"4": 0.75}}
    cfg = RunConfig()
    assert log_iteration(cfg, tmp_path, row) == []  # off by default
    assert fake_trackers == {"tb": [], "wandb": []}
    cfg.runtime.report_to = ["tensorboard", "wandb"]
    assert log_iteration(cfg, tmp_path, row) == ["tensorboard", "wandb"]
    assert fake_trackers["tb"] == [("open", str(tmp_path / "tensorboard")), ("starloop/pass@1", 0.5, 3),
                                   ("starloop/pass@k/4", 0.75, 3), "close"]
    (_, init), (_, logged), finish = fake_trackers["wandb"]
    assert init["name"] == "demo" and init["resume"] == "allow" and init["id"].startswith("starloop-")
    assert logged == {"starloop/pass@1": 0.5, "starloop/pass@k/4": 0.75, "starloop/iteration": 3}
    assert finish == "finish"


def test_log_iteration_tracker_not_installed(tmp_path, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb raises ImportError
    cfg = RunConfig()
    cfg.runtime.report_to = ["wandb"]
    assert log_iteration(cfg, tmp_path, {"iteration": 0, "pass@1": 0.0}) == []
    assert "wandb" in caplog.text and "not installed" in caplog.text


def test_log_iteration_tracker_failure_is_reported_not_raised(tmp_path, fake_trackers, caplog):
    def broken_init(**kw):
        raise ConnectionError("api.wandb.ai unreachable")

    sys.modules["wandb"].init = broken_init
    cfg = RunConfig()
    cfg.runtime.report_to = ["wandb", "tensorboard"]
    assert log_iteration(cfg, tmp_path, {"iteration": 1, "pass@1": 0.5}) == ["tensorboard"]
    assert "could not log iteration 1 to wandb: ConnectionError" in caplog.text


def test_loop_logs_each_evaluation(tmp_path, tiny_model, fake_trackers):
    """The loop's evaluate stage sends its metrics row to the configured trackers."""
    from starloop.loop.driver import Driver

    path = FIX / "gsm8k.jsonl"
    cfg = load_config(None, [
        "iterations=0", f"model.path={tiny_model}", "data.real=null", "select.real_fraction=0",
        f"data.train={{source: gsm8k, path: '{path}', split: 'train[:4]'}}",
        f"data.eval={{source: gsm8k, path: '{path}', split: 'train[4:]'}}",
        "sampling.backend=transformers", "sampling.max_tokens=8", "eval.n=1", "eval.k=[1]",
        "runtime.report_to=[tensorboard]", "runtime.progress=false"])
    Driver(cfg, tmp_path / "run").run()
    scalars = {c[0]: c[2] for c in fake_trackers["tb"] if isinstance(c, tuple) and c[0] != "open"}
    assert fake_trackers["tb"][0] == ("open", str(tmp_path / "run" / "tensorboard"))
    assert scalars["starloop/pass@1"] == 0 and "starloop/pass@k/1" in scalars  # step = iteration 0
