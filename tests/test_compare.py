"""Several runs in one plot (``starloop report --compare``) and the learning benchmark's summaries
(``bench/learning.py``), on run directories written as the loop writes them (no training)."""

import argparse
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from starloop.loop.cli.main import main
from starloop.loop.config import dump_config, load_config
from starloop.loop.errors import InputError
from starloop.loop.runtime.compare import experiment_key, group_runs, plot_compare, read_curve, read_groups

REPO = Path(__file__).resolve().parents[1]
DEMO, CONTROL = REPO / "configs/demo.yaml", REPO / "configs/ablations/control.yaml"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def fake_run(root: Path, curve: list[float], config: Path = DEMO, overrides: tuple[str, ...] = (),
             samples: int = 100, levels: dict[str, list[float]] | None = None) -> Path:
    """A run directory as the loop writes it: the resolved config.yaml, manifest.json with stage stats,
    metrics.jsonl with one row per evaluated iteration (pass@1 a fraction; per level with ``levels``)."""
    root.mkdir(parents=True)
    (root / "config.yaml").write_text(dump_config(load_config(config, list(overrides))))
    stages, rows = {}, []
    for it, p1 in enumerate(curve):
        if it:
            stages[f"iter-{it:03d}/sample"] = {"problems": 10, "samples": samples, "seconds": 5.0}
            stages[f"iter-{it:03d}/rationalize"] = {"hinted_samples": 7, "rationalized": 1, "rationalized_problems": it,
                                                    "seconds": 1.0}
            verify = root / f"iter-{it:03d}" / "verify"
            verify.mkdir(parents=True)
            rows_v = [{"problem_id": f"p{it}", "verdict": {"correct": True}, "hinted": False},
                      {"problem_id": "p1", "verdict": {"correct": True}, "hinted": False},
                      {"problem_id": "never", "verdict": {"correct": False}, "hinted": False},
                      {"problem_id": "hinted-only", "verdict": {"correct": True}, "hinted": True}]
            (verify / "verified.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows_v))
        stages[f"iter-{it:03d}/evaluate"] = {"pass@1": p1, "pass@k": {"1": p1, "2": p1}, "seconds": 2.0}
        rows.append({"iteration": it, "problems": 200, "pass@1": p1, "pass@k": {"1": p1, "2": p1},
                     "maj@k": {"1": p1, "2": p1}, "reasons": {"ok": p1, "wrong": 1 - p1}})
        if levels:
            rows[-1]["per_level"] = {lv: {"problems": 100, "pass@1": c[it]} for lv, c in levels.items()}
    (root / "manifest.json").write_text(json.dumps({"layout": 2, "stages": stages}))
    (root / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def check_png(path: Path) -> None:
    from PIL import Image

    assert path.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] > 300 and im.size[1] > 200


@pytest.fixture
def runs(tmp_path):
    """Three seeds of the demo and one of the control."""
    return [fake_run(tmp_path / "demo-s0", [0.2, 0.4, 0.6], overrides=("seed=0",)),
            fake_run(tmp_path / "demo-s1", [0.1, 0.3, 0.5], overrides=("seed=1",)),
            fake_run(tmp_path / "demo-s2", [0.3, 0.5, 0.7], overrides=("seed=2",)),
            fake_run(tmp_path / "control-s0", [0.2, 0.25, 0.3], CONTROL, overrides=("seed=0",))]


def test_runs_of_one_config_are_grouped_with_mean_and_range(runs):
    groups = read_groups(runs)
    assert [(g.label, len(g.runs)) for g in groups] == [("demo", 3), ("demo-control", 1)]
    assert [r.seed for r in groups[0].runs] == [0, 1, 2]
    st = groups[0].stats()
    assert [s["iteration"] for s in st] == [0, 1, 2] and all(s["n"] == 3 for s in st)
    assert st[2]["mean"] == pytest.approx(0.6) and st[2]["min"] == 0.5 and st[2]["max"] == 0.7
    assert st[2]["sd"] == pytest.approx(0.1)
    assert groups[1].stats()[1] == {"iteration": 1, "n": 1, "mean": 0.25, "min": 0.25, "max": 0.25, "sd": 0.0}


def test_per_run_keys_do_not_split_an_experiment(tmp_path):
    base = load_config(DEMO, []).to_dict()
    other = load_config(DEMO, ["seed=3", "name=demo-seed3", "runs_dir=elsewhere", "iterations=4",
                               "verify.workers=1"]).to_dict()
    assert experiment_key(base) == experiment_key(other)
    assert experiment_key(base) != experiment_key(load_config(DEMO, ["sampling.n=4"]).to_dict())
    a = fake_run(tmp_path / "a", [0.1, 0.2])
    b = fake_run(tmp_path / "b", [0.3], overrides=("sampling.n=4",))  # same name, another experiment
    c = fake_run(tmp_path / "c", [0.5, 0.6], overrides=("seed=5", "iterations=1"))
    groups = read_groups([a, b, c])
    assert [(g.label, [r.root.name for r in g.runs]) for g in groups] == [("demo", ["a", "c"]), ("demo #2", ["b"])]
    # runs of different lengths: each iteration's mean is over the runs that have it
    assert [(s["iteration"], s["n"]) for s in groups[0].stats()] == [(0, 2), (1, 2)]


def test_a_run_made_before_a_setting_existed_groups_with_its_seeds(tmp_path):
    """A run's config.yaml without a setting added since (here pairs.cut_rejected) counts it at its
    default, as the run would resume today; a non-default value still splits the experiment."""
    import yaml

    old = fake_run(tmp_path / "old", [0.1, 0.2], overrides=("seed=0",))
    data = yaml.safe_load((old / "config.yaml").read_text())
    del data["pairs"]["cut_rejected"]
    (old / "config.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    new = fake_run(tmp_path / "new", [0.3, 0.4], overrides=("seed=1",))
    cut = fake_run(tmp_path / "cut", [0.5, 0.6], overrides=("seed=2", "pairs.cut_rejected=word"))
    groups = read_groups([old, new, cut])
    assert [(g.label, [r.root.name for r in g.runs]) for g in groups] == [("demo", ["old", "new"]), ("demo #2", ["cut"])]
    data["pairs"]["no_such_setting"] = 1  # not today's schema: compared as written, so its own experiment
    (old / "config.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    assert len(read_groups([old, new])) == 2


def test_labels_name_each_run_and_split_but_never_merge_experiments(runs):
    groups = read_groups(runs, ["sft", "sft", "other", "control"])
    assert [(g.label, len(g.runs)) for g in groups] == [("sft", 2), ("other", 1), ("control", 1)]
    # one label over two experiments: kept apart
    assert [g.label for g in group_runs([read_curve(runs[0], "x"), read_curve(runs[3], "x")])] == ["x", "x #2"]
    with pytest.raises(InputError, match="2 labels for 4 run directories"):
        read_groups(runs, ["a", "b"])


def test_plot_compare_writes_a_png(runs, tmp_path):
    path = plot_compare(read_groups(runs), tmp_path / "out" / "cmp.png")
    check_png(path)


def test_compare_per_level_curves(tmp_path, capsys):
    """``--levels``: one curve per run and level, from the evaluation's per_level; a run without them is one line."""
    a = fake_run(tmp_path / "a", [0.3, 0.5], overrides=("seed=0",), levels={"6": [0.2, 0.6], "7": [0.0, 0.3]})
    b = fake_run(tmp_path / "b", [0.3, 0.5], overrides=("seed=1",), levels={"6": [0.4, 0.8], "7": [0.0, 0.1]})
    groups = read_groups([a, b], levels=["6", "7"])
    assert [g.label for g in groups] == ["demo, level 6", "demo, level 7"]
    assert [s["mean"] for s in groups[0].stats()] == pytest.approx([0.3, 0.7])
    assert read_curve(b, level="7").points == {0: 0.0, 1: 0.1}
    out = tmp_path / "levels.png"
    assert main(["report", "--compare", str(a), str(b), "--levels", "6", "7", "--output", str(out)]) == 0
    check_png(out)
    assert "demo, level 7" in capsys.readouterr().out
    plain = fake_run(tmp_path / "plain", [0.1, 0.2])
    assert main(["report", "--compare", str(plain), "--levels", "6", "--output", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "level 6" in err and str(plain) in err
    assert main(["report", str(a), "--levels", "6"]) == 2


def test_report_compare_cli(runs, tmp_path, capsys):
    out = tmp_path / "cmp.png"
    assert main(["report", "--compare", *map(str, runs), "--output", str(out), "--labels", "sft", "sft", "sft",
                 "control"]) == 0
    check_png(out)
    text = capsys.readouterr().out
    assert "sft" in text and "control" in text and "60.0 (50.0-70.0)" in text and f"wrote {out}" in text


@pytest.mark.parametrize("case", ["no_metrics", "empty_metrics", "no_pass1", "not_a_dir"])
def test_report_compare_bad_run_dir_is_one_line(runs, tmp_path, capsys, case):
    bad = tmp_path / "bad"
    if case != "not_a_dir":
        bad.mkdir()
    if case == "empty_metrics":
        (bad / "metrics.jsonl").write_text("")
    if case == "no_pass1":
        (bad / "metrics.jsonl").write_text(json.dumps({"iteration": 0}) + "\n")
    assert main(["report", "--compare", str(runs[0]), str(bad), "--output", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and str(bad) in err
    assert not (tmp_path / "x.png").exists()


def test_report_arguments_go_together(runs, tmp_path, capsys):
    assert main(["report", str(runs[0]), "--compare", str(runs[1])]) == 2
    assert main(["report", str(runs[0]), "--labels", "a"]) == 2
    assert main(["report"]) == 2
    assert "--compare" in capsys.readouterr().err


def test_report_compare_command_no_traceback(runs, tmp_path):
    out = subprocess.run([sys.executable, "-m", "starloop.loop.cli", "report", "--compare", str(runs[0]),
                          str(tmp_path / "missing"), "--output", str(tmp_path / "x.png")],
                         capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "Traceback" not in out.stderr and "missing" in out.stderr


# ----------------------------------------------------------------------------------------------
# bench/learning.py


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_learning", REPO / "bench" / "learning.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up by name
    spec.loader.exec_module(mod)
    return mod


def bench_run(bench, out: Path, variant: str, seed: int, curve: list[float], config: Path = DEMO) -> Path:
    return fake_run(bench.run_dir(out, "demo", variant, seed), curve, config, overrides=(f"seed={seed}",))


def test_run_state_and_statistics(bench, tmp_path):
    done = bench_run(bench, tmp_path, "sft", 0, [0.1, 0.2, 0.3, 0.4, 0.5])
    partial = bench_run(bench, tmp_path, "sft", 1, [0.1, 0.2])
    assert bench.run_state(done, 4) == "done" and bench.run_state(partial, 4) == "partial"
    assert bench.run_state(done, 5) == "partial" and bench.run_state(tmp_path / "nothing", 4) == "new"
    assert bench.last_mean({0: 0.1, 1: 0.2, 2: 0.3, 3: 0.4, 4: 0.5}) == pytest.approx(0.4)
    assert bench.last_mean({0: 0.1, 1: 0.2}) == pytest.approx(0.2)  # fewer iterations: what there is
    assert bench.last_mean({0: 0.1}) is None
    assert bench.samples_drawn(done) == 4 * (100 + 7)
    r = bench.summarise_run(done, 4, [{"seconds": 10.0}, {"seconds": 5.5}])
    assert r["complete"] and r["final"] == 50.0 and r["last3_mean"] == 40.0 and r["wall_s"] == 15.5
    assert r["curve"] == {"0": 10.0, "1": 20.0, "2": 30.0, "3": 40.0, "4": 50.0} and r["invocations"] == 2
    # distinct train problems solved unhinted over all iterations (p1..p4), STaR's rescues per iteration
    assert r["solved_train"] == 4 and r["rescued"] == {"1": 1, "2": 2, "3": 3, "4": 4}


def test_paired_differences(bench):
    def run(last3, complete=True, solved=100):
        return {"last3_mean": last3, "complete": complete, "solved_train": solved}

    ref = {"0": run(60.0), "1": run(50.0), "2": run(55.0), "3": run(40.0, complete=False)}
    var = {"0": run(30.0, solved=150), "1": run(35.0), "2": run(20.0, solved=50), "3": run(10.0), "4": run(1.0)}
    d = bench.paired_differences(var, ref)
    assert d["per_seed"] == {"0": -30.0, "1": -15.0, "2": -35.0}  # seed 3 incomplete, seed 4 unpaired
    assert d["n"] == 3 and d["mean"] == pytest.approx(-26.67) and d["min"] == -35.0 and d["max"] == -15.0
    assert d["solved_train_ratio"] == 1.0  # mean of 1.5, 1.0, 0.5
    assert bench.paired_differences({}, ref) == {"per_seed": {}, "n": 0, "mean": None, "min": None, "max": None,
                                                 "solved_train_ratio": None}


def test_paired_differences_compare_runs_over_the_iterations_both_have(bench):
    """A variant benched with 6 iterations against a reference that now runs 8: both at iterations 4-6."""
    ref = {"0": {"complete": True, "last3_mean": 75.0, "curve": {str(i): 10.0 * i for i in range(9)}}}
    var = {"0": {"complete": True, "last3_mean": 52.0, "curve": {str(i): 10.0 * i + 2 for i in range(7)}}}
    assert bench.paired_differences(var, ref)["per_seed"] == {"0": 2.0}  # not 52 - 70
    assert bench.paired_differences(ref, var)["per_seed"] == {"0": -2.0}


def test_finished_runs_are_skipped_and_partial_ones_resumed(bench, tmp_path, monkeypatch, capsys):
    bench_run(bench, tmp_path, "sft", 0, [0.1, 0.2, 0.3])
    bench_run(bench, tmp_path, "sft", 1, [0.1])
    calls = []

    def fake_execute(cmd, log_path):
        calls.append(cmd)
        return 0, 1.5, False

    monkeypatch.setattr(bench, "execute", fake_execute)
    args = argparse.Namespace(out=tmp_path, iterations=2, eval_size=300)
    suite = bench.SUITES["demo"]
    assert bench.run_all(suite, [suite.variants[0]], [0, 1, 2], args) == 0
    assert [c[c.index("--run-dir") + 1] for c in calls] == [str(bench.run_dir(tmp_path, "demo", "sft", s))
                                                            for s in (1, 2)]
    cmd = calls[0]
    assert cmd[cmd.index("run") + 1] == str(REPO / "configs/demo.yaml")
    assert "seed=1" in cmd and "data.eval.options.per_level=300" in cmd and cmd[-2:] == ["--iterations", "2"]
    logged = bench.invocations(tmp_path, "demo")
    assert [(c["seed"], c["resumed"], c["rc"]) for c in logged] == [(1, True, 0), (2, False, 0)]
    assert "sft seed 0: complete, skipped" in capsys.readouterr().out


def test_report_only_writes_json_markdown_and_figure(bench, tmp_path, capsys):
    for seed, (a, b) in enumerate([(0.6, 0.3), (0.5, 0.35), (0.7, 0.2)]):
        bench_run(bench, tmp_path, "sft", seed, [0.2, 0.4, a])
        bench_run(bench, tmp_path, "control", seed, [0.2, 0.25, b], CONTROL)
    rc = bench.main(["--suite", "demo", "--variants", "sft,control", "--iterations", "2", "--report-only",
                     "--out", str(tmp_path)])
    assert rc == 0
    data = json.loads((tmp_path / "learning.json").read_text())["demo"]
    # last-3 means over iterations 1-2: sft 50, 45, 55; control 27.5, 30, 22.5
    cmp = data["comparisons"]["control"]
    assert cmp["per_seed"] == {"0": -22.5, "1": -15.0, "2": -32.5} and cmp["mean"] == pytest.approx(-23.33)
    assert data["variants"]["sft"]["seeds"]["1"]["final"] == 50.0
    assert "control" in (tmp_path / "learning.md").read_text()
    check_png(tmp_path / "learning.png")
    out = capsys.readouterr().out
    assert "-23.3" in out and "load average" in out


def test_suite_without_its_config_says_so(bench, tmp_path, capsys, monkeypatch):
    suite = bench.Suite("nope", "sft", (bench.Variant("sft", "configs/does-not-exist.yaml"),), None)
    monkeypatch.setitem(bench.SUITES, "nope", suite)
    assert bench.main(["--suite", "nope", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "suite nope: configs/does-not-exist.yaml does not exist (yet); nothing to run"
    assert not (tmp_path / "learning.json").exists()
    assert bench.main(["--suite", "demo", "--variants", "sft,bogus", "--out", str(tmp_path)]) == 2
    assert "no variant bogus" in capsys.readouterr().err


def test_unlabeled_suite_compares_per_level(bench, tmp_path, capsys):
    """A suite with levels: per-level curves in the runs' summaries, per-level paired differences, a column each."""
    config = REPO / "configs/demo-unlabeled.yaml"
    for seed in (0, 1):
        for variant, six in (("majority", [0.3, 0.6, 0.7]), ("own_vote", [0.3, 0.2, 0.1])):
            fake_run(bench.run_dir(tmp_path, "unlabeled", variant, seed), [0.4, 0.5, 0.5], config,
                     overrides=(f"seed={seed}",), levels={"5": [0.9] * 3, "6": six, "7": [0.0, 0.1, 0.2]})
    assert bench.main(["--suite", "unlabeled", "--seeds", "0,1", "--iterations", "2", "--report-only",
                       "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "learning.json").read_text())["unlabeled"]
    six = data["variants"]["majority"]["seeds"]["1"]["levels"]["6"]
    assert six["start"] == 30.0 and six["final"] == 70.0 and six["last3_mean"] == 65.0
    cmp = data["comparisons"]["own_vote"]
    assert cmp["levels"]["6"]["mean"] == -50.0 and cmp["levels"]["7"]["mean"] == 0.0 and cmp["mean"] == 0.0
    md = (tmp_path / "learning.md").read_text()
    assert "6: 30.0 -> 70.0" in md and "6: -50.0" in md
    check_png(tmp_path / "learning-unlabeled.png")
