import json
import subprocess
import sys

import pytest

from starloop.loop.cli import main


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
    assert set(rows[0]["verdict"]) == {"correct", "score", "reason", "extracted", "detail"}


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
