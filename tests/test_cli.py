import json
import os
import subprocess
import sys

import pytest

from starloop.loop.cli.main import main


def _write(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))


def test_verify_cli_roundtrip(tmp_path):
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    _write(inp, [
        {"completion": "so \\boxed{4}", "answer": "4", "id": "a", "extra": [1, 2]},
        {"completion": "it is 5 #### 5", "answer": "4", "id": "b"},
        {"completion": "I am not sure", "answer": "4"},
        {"completion": "2+2 is", "answer": "4", "finish_reason": "length"},
    ])
    assert main(["verify", "--verifier", "math", "--input", str(inp), "--output", str(out)]) == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["verdict"]["reason"] for r in rows] == ["ok", "wrong", "unparseable", "truncated"]
    assert rows[0]["extra"] == [1, 2] and rows[0]["id"] == "a"  # other fields pass through
    assert set(rows[0]["verdict"]) == {"correct", "score", "reason", "extracted", "detail", "verifier", "verifier_version"}
    assert rows[0]["verdict"]["verifier"] == "math" and rows[0]["verdict"]["verifier_version"]


@pytest.mark.parametrize(
    "rows, needle",
    [
        (['{"completion": "x", "answer": "1"}', "{not json"], "in.jsonl:2"),
        ([{"answer": "1"}], "missing field 'completion'"),
        ([{"completion": 3, "answer": "1"}], "'completion' must be a string"),
        ([{"completion": "x"}], "needs 'answer'"),
        ([], "no rows"),
    ],
)
def test_verify_cli_bad_input(tmp_path, capsys, rows, needle):
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    _write(inp, rows)
    assert main(["verify", "--verifier", "math", "--input", str(inp), "--output", str(out)]) == 2
    assert needle in capsys.readouterr().err
    assert not out.exists()


def test_verify_cli_unknown_verifier_and_option(tmp_path, capsys):
    inp = tmp_path / "in.jsonl"
    _write(inp, [{"completion": "x", "answer": "1"}])
    assert main(["verify", "--verifier", "nope", "--input", str(inp), "--output", str(tmp_path / "o")]) == 2
    assert "no verifier named 'nope'" in capsys.readouterr().err
    assert main(["verify", "--verifier", "math", "--option", "bogus=1", "--input", str(inp),
                 "--output", str(tmp_path / "o")]) == 2
    assert "bogus" in capsys.readouterr().err


def test_verify_cli_honours_each_rows_task(tmp_path, capsys):
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    code_tests = "assert add(1, 2) == 3\n"
    _write(inp, [
        {"completion": "so \\boxed{4}", "answer": "4", "task": "math"},
        {"completion": "def add(a, b):\n    return a + b\n", "tests": code_tests, "task": "code"},
        {"completion": "so \\boxed{5}", "answer": "4"},  # no task: --verifier's
        {"completion": "def add(a, b):\n    return a * b\n", "tests": code_tests, "task": "code"},
    ])
    assert main(["verify", "--verifier", "math", "--input", str(inp), "--output", str(out)]) == 0
    verdicts = [json.loads(x)["verdict"] for x in out.read_text().splitlines()]
    assert [(v["verifier"], v["reason"]) for v in verdicts] == [("math", "ok"), ("code", "ok"), ("math", "wrong"),
                                                               ("code", "wrong")]
    assert main(["verify", "--input", str(inp), "--output", str(tmp_path / "o2")]) == 2  # row 3 has no task
    assert "in.jsonl row 3: no 'task' field and no --verifier" in capsys.readouterr().err
    _write(inp, [{"completion": "x", "answer": "1", "task": "nope"}])
    assert main(["verify", "--input", str(inp), "--output", str(tmp_path / "o3")]) == 2
    assert "in.jsonl row 1: no verifier named 'nope'" in capsys.readouterr().err


def test_run_bad_config_fails_before_work(tmp_path, capsys):
    assert main(["run", "--run-dir", str(tmp_path / "r"), "--set", "train.lrate=1"]) == 2
    assert "train.lrate" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_verifiers_listed():
    out = subprocess.run([sys.executable, "-m", "starloop.loop.cli", "verifiers"], capture_output=True, text=True)
    assert out.returncode == 0
    for name in ("math", "code", "arithmetic"):  # arithmetic comes in through the entry-point group
        assert name in out.stdout


def test_report_on_missing_run(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2


def test_version_verbose_after_the_command_and_help_everywhere(capsys):
    from starloop.loop.cli.main import build_parser

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.startswith("starloop ")
    parser = build_parser()
    assert parser.parse_args(["verifiers", "-v"]).verbose is True
    assert parser.parse_args(["-v", "verifiers"]).verbose is True
    assert parser.parse_args(["verifiers"]).verbose is False
    sub = next(a for a in parser._actions if a.dest == "command")
    missing = [f"{name} {a.option_strings or a.dest}" for name, p in sub.choices.items() for a in p._actions
               if not a.help]
    assert missing == []
    for name, p in sub.choices.items():
        if name not in ("report", "verifiers"):
            assert {"--config", "--set"} <= {o for a in p._actions for o in a.option_strings}, name


def test_run_takes_its_config_once(tmp_path, capsys):
    assert main(["run", "configs/demo.yaml", "--config", "configs/demo.yaml", "--run-dir", str(tmp_path / "r")]) == 2
    assert "give the config once" in capsys.readouterr().err


def test_verify_option_is_short_for_set(tmp_path, capsys):
    inp = tmp_path / "in.jsonl"
    _write(inp, [{"completion": "so \\boxed{0.3333}", "answer": "1/3"}])
    for extra in (["--option", "float_rounding=3"], ["--set", "verify.options.math.float_rounding=3"]):
        assert main(["verify", "--verifier", "math", "--input", str(inp), "--output", str(tmp_path / "o"),
                     *extra]) == 0
        assert json.loads((tmp_path / "o").read_text())["verdict"]["reason"] == "ok"
    assert main(["verify", "--verifier", "math", "--input", str(inp), "--output", str(tmp_path / "o")]) == 0
    assert json.loads((tmp_path / "o").read_text())["verdict"]["reason"] == "wrong"
    assert main(["verify", "--verifier", "math", "--input", str(inp), "--output", str(tmp_path / "o"), "--set",
                 "sampling.n=2"]) == 2
    assert "reads only the verify section" in capsys.readouterr().err


def test_openmp_threads_wait_passively_unless_told_otherwise():
    """OMP_WAIT_POLICY is read once, when torch loads: the command line sets it before anything imports torch."""
    code = ("import os, sys; from starloop.loop.cli.main import _env_defaults; loaded = 'torch' in sys.modules; "
            "_env_defaults(); print(loaded, os.environ['OMP_WAIT_POLICY'])")
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert run.stdout.split() == ["False", "PASSIVE"]
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**env, "OMP_WAIT_POLICY": "ACTIVE"})
    assert run.stdout.split() == ["False", "ACTIVE"]
