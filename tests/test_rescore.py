"""``bench/rescore.py``: every checkpoint of a finished run scored again on a larger held-out set, with the
run's own config, by the loop's own evaluation (a real run of the tiny loop, real sampling)."""

import importlib.util
import json
from pathlib import Path

from starloop.loop.config import load_config
from starloop.loop.driver import Driver

REPO = Path(__file__).resolve().parents[1]


def _rescore_module():
    spec = importlib.util.spec_from_file_location("bench_rescore", REPO / "bench" / "rescore.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_rescoring_a_run_at_its_own_size_repeats_its_curve_and_a_larger_set_adds_problems(tmp_path, tiny_overrides,
                                                                                          capsys):
    rescore = _rescore_module()
    # The seed model of tests/test_label.py (cached once per test session): it solves some held-out chains.
    overrides = [*tiny_overrides, "model.builtin_options.epochs=10", "model.builtin_options.max_operand=9",
                 "model.builtin_options.seed_levels={'2': 28, '3': 400}", "model.builtin_options.target_accuracy=null",
                 "data.train.options={split: train, levels: [3], per_level: 24, max_operand: 9}",
                 "data.real.options={split: seed, levels: [3], per_level: 20, max_operand: 9}",
                 "data.eval.options={split: eval, levels: [2, 3], per_level: 12, max_operand: 9}",
                 "sampling.backend=transformers", "eval.n=0", "eval.k=[]"]
    run = tmp_path / "variant" / "seed-0"
    Driver(load_config(None, overrides), run).run()
    metrics = {r["iteration"]: r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())}
    assert metrics[0]["pass@1"] > 0  # so that equal numbers below say something
    assert set(rescore.checkpoints(run)) == {0, 1}
    assert rescore.checkpoints(run)[1] == str(run / "iter-001/train/model")

    out = tmp_path / "rescore.json"
    assert rescore.main([str(run), "--per-level", "12", "--out", str(out)]) == 0  # the run's own held-out size
    rows = json.loads(out.read_text())[str(run.resolve())]["12"]
    assert [r["iteration"] for r in rows] == [0, 1]
    for r in rows:  # greedy decoding, the same problems: the run's own numbers
        assert r["problems"] == metrics[r["iteration"]]["problems"] == 24
        assert r["pass@1"] == metrics[r["iteration"]]["pass@1"]
        assert r["per_level"] == {lv: {k: b[k] for k in ("pass@1", "problems")}
                                  for lv, b in metrics[r["iteration"]]["per_level"].items()}

    assert rescore.main([str(run), "--per-level", "30", "--out", str(out)]) == 0
    data = json.loads(out.read_text())[str(run.resolve())]
    assert set(data) == {"12", "30"} and [r["problems"] for r in data["30"]] == [60, 60]
    assert data["30"][0]["per_level"]["3"]["problems"] == 30
    printed = capsys.readouterr().out
    assert "| variant/seed-0 | 3 |" in printed and "| variant/seed-0 | all |" in printed

    capsys.readouterr()
    md = tmp_path / "rescore.md"
    assert rescore.main([str(run), "--per-level", "30", "--out", str(out), "--markdown", str(md)]) == 0
    assert json.loads(out.read_text())[str(run.resolve())]["30"] == data["30"]  # all there: nothing rescored
    assert "| variant/seed-0 | 2 |" in md.read_text()


def test_paired_differences_and_gains_use_the_last_three_iterations_both_runs_have():
    rescore = _rescore_module()

    def rows(values):
        return [{"iteration": i, "pass@1": v, "per_level": {"6": {"pass@1": v, "problems": 10}}}
                for i, v in enumerate(values)]

    a, b = rows([0.5, 0.6, 0.7, 0.8, 0.9]), rows([0.5, 0.5, 0.5, 0.6])
    s = rescore.summary(a)["6"]
    assert s["start"] == 50 and abs(s["last3"] - 80) < 1e-9 and abs(s["gain"] - 30) < 1e-9
    d = rescore.paired(a, b)  # iterations 1-3 only: 70 vs 53.3
    assert abs(d["6"] - (70 - 160 / 3)) < 1e-9 and d["all"] == d["6"]
    table = rescore.report({Path("/r/a/seed-0"): a, Path("/r/b/seed-0"): b}, 10, "a")
    assert "| a/seed-0 | 6 | 50.0 60.0 70.0 80.0 90.0 | 50.0 | 80.0 | +30.0 |" in table
    assert f"| b/seed-0 | {-d['all']:+.1f} | {-d['6']:+.1f} |" in table
