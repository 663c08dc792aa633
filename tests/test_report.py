"""Run reports (table, report.md, PNG plots) and per-iteration metrics sent to experiment trackers."""

import io
import json
import sys
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
                   "| iterations, seed | 2 done of 5, seed 0 |", "| wall time |", "pass@1 greedy | pass@4 sampled | "
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


# ---------------------------------------------------------------------------------------------- trackers
# The real packages: TensorBoard's event files and W&B's offline run files are read back.

_CONNECTS: list = []
_WATCH = [False]


def _audit(event, args):
    if event == "socket.connect" and _WATCH[0]:
        _CONNECTS.append(args[1])


sys.addaudithook(_audit)


def _tensorboard_scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def _wandb_records(path: Path):
    """The records of a W&B offline run file (``run-ID.wandb``: W&B's LevelDB-style log of protobuf
    records: a 7-byte file header, then 32 KiB blocks of records, each with a 7-byte header
    (CRC-32, length, type: full / first / middle / last))."""
    import struct

    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    ident, magic, version = struct.unpack("<4sHB", data[:7])
    assert ident == b":W&B" and version == 0, (ident, magic, version)
    pos, parts = 7, []
    while pos + 7 <= len(data):
        left = 32768 - pos % 32768
        if left < 7:
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0 and length == 0:
            pos += left  # the block's zero padding
            continue
        parts.append(data[pos + 7:pos + 7 + length])
        pos += 7 + length
        if kind in (1, 4):  # full or last
            record = wandb_internal_pb2.Record()
            record.ParseFromString(b"".join(parts))
            parts = []
            yield record


def test_trackers_get_one_run_with_the_iteration_as_step(tmp_path, monkeypatch):
    import json as _json

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_ERROR_REPORTING", "false")
    cfg = RunConfig()
    assert log_iteration(cfg, tmp_path, {"iteration": 0, "pass@1": 0.1}) == []  # off by default
    cfg.runtime.report_to = ["tensorboard", "wandb"]
    _CONNECTS.clear()
    _WATCH[0] = True
    try:
        for it in range(3):
            row = {"iteration": it, "pass@1": 0.1 * (it + 1), "pass@k": {"4": 0.2 * (it + 1)}}
            stages = {"train": {"sft": {"train_loss": 1.0 / (it + 1), "rows": 10 * it}}} if it else {}
            assert log_iteration(cfg, tmp_path, row, stages) == ["tensorboard", "wandb"]
    finally:
        _WATCH[0] = False
    tb = _tensorboard_scalars(tmp_path / "tensorboard")
    assert [(st, round(v, 3)) for st, v in tb["starloop/pass@1"]] == [(0, 0.1), (1, 0.2), (2, 0.3)]
    assert [st for st, _ in tb["starloop/pass@k/4"]] == [0, 1, 2]
    assert [(st, round(v, 3)) for st, v in tb["starloop/stages/train/sft/train_loss"]] == [(1, 0.5), (2, 0.333)]
    runs = sorted((tmp_path / "wandb").glob("offline-run-*/run-*.wandb"))
    assert runs, list((tmp_path / "wandb").iterdir())
    ids, history = set(), []
    for path in runs:
        for record in _wandb_records(path):
            kind = record.WhichOneof("record_type")
            if kind == "run":
                ids.add(record.run.run_id)
            elif kind == "history":
                history.append({item.key or "/".join(item.nested_key): _json.loads(item.value_json)
                                for item in record.history.item})
    assert len(ids) == 1 and next(iter(ids)).startswith("starloop-")  # one W&B run for the starloop run
    assert [h["starloop/iteration"] for h in history] == [0, 1, 2]
    assert [round(h["starloop/pass@1"], 3) for h in history] == [0.1, 0.2, 0.3]
    assert round(history[2]["starloop/stages/train/sft/train_loss"], 3) == 0.333
    # Nothing connected anywhere but local sockets: W&B's own service over a Unix socket or loopback.
    for address in _CONNECTS:
        assert isinstance(address, str) or (isinstance(address, tuple) and address[0] in ("127.0.0.1", "::1",
                                                                                           "localhost")), address


def test_log_iteration_tracker_not_installed(tmp_path, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb raises ImportError
    cfg = RunConfig()
    cfg.runtime.report_to = ["wandb"]
    assert log_iteration(cfg, tmp_path, {"iteration": 0, "pass@1": 0.0}) == []
    assert "wandb" in caplog.text and "not installed" in caplog.text


def test_log_iteration_tracker_failure_is_reported_not_raised(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    (tmp_path / "wandb").write_text("a file where W&B wants its folder")  # so wandb.init fails
    cfg = RunConfig()
    cfg.runtime.report_to = ["wandb", "tensorboard"]
    assert log_iteration(cfg, tmp_path, {"iteration": 1, "pass@1": 0.5}) == ["tensorboard"]
    assert "could not log iteration 1 to wandb" in caplog.text


def test_loop_logs_each_evaluation(tmp_path, tiny_model):
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
    tb = _tensorboard_scalars(tmp_path / "run" / "tensorboard")
    assert tb["starloop/pass@1"] == [(0, 0.0)] and "starloop/pass@k/1" in tb  # step = iteration 0
