import json

import pytest

from starloop.loop.config import load_config
from starloop.loop.runtime.rundir import RunDir, RunDirMismatch


def test_stage_atomic_and_manifest(tmp_path):
    rd = RunDir(tmp_path / "run")
    rd.init(load_config())
    key = RunDir.key(1, "sample")
    with pytest.raises(RuntimeError):
        with rd.stage(key) as out:
            (out / "x.txt").write_text("partial")
            raise RuntimeError("killed")
    assert not rd.path(key).exists() and not rd.is_done(key)
    with rd.stage(key) as out:
        (out / "x.txt").write_text("done")
    assert not rd.is_done(key)  # renamed but not recorded yet: counts as unfinished
    rd.record(key, {"n": 1})
    assert rd.is_done(key) and (rd.path(key) / "x.txt").read_text() == "done"
    # A leftover partial dir from a killed attempt is replaced on the next attempt.
    key2 = RunDir.key(1, "verify")
    stale = rd.path(key2).with_name(".verify.partial")
    stale.mkdir(parents=True)
    (stale / "junk").write_text("junk")
    with rd.stage(key2) as out:
        assert not (out / "junk").exists()


def test_config_mismatch_refused(tmp_path):
    rd = RunDir(tmp_path / "run")
    rd.init(load_config())
    rd.init(load_config(None, ["iterations=9"]))  # iterations may change (extend a run)
    with pytest.raises(RunDirMismatch) as exc:
        rd.init(load_config(None, ["train.sft.learning_rate=0.5"]))
    assert "train.sft.learning_rate" in str(exc.value) and "--run-dir" in str(exc.value)


def test_run_recorded_before_a_key_existed_resumes(tmp_path):
    import yaml

    rd = RunDir(tmp_path / "run")
    rd.init(load_config())
    path = tmp_path / "run" / "config.yaml"
    old = yaml.safe_load(path.read_text())
    del old["hub"], old["sampling"]["adaptive"], old["model"]["dtype"]  # keys a later version added
    path.write_text(yaml.safe_dump(old))
    assert rd.check(load_config())  # the new keys at their defaults: the same run
    with pytest.raises(RunDirMismatch, match="sampling.adaptive.enabled"):
        rd.check(load_config(None, ["sampling.adaptive.enabled=true"]))


def test_metrics_one_row_per_iteration(tmp_path):
    rd = RunDir(tmp_path / "run")
    rd.init(load_config())
    rd.write_metrics_row({"iteration": 1, "pass@1": 0.2})
    rd.write_metrics_row({"iteration": 0, "pass@1": 0.1})
    rd.write_metrics_row({"iteration": 1, "pass@1": 0.3})
    rows = [json.loads(x) for x in rd.metrics_path.read_text().splitlines()]
    assert [r["iteration"] for r in rows] == [0, 1] and rows[1]["pass@1"] == 0.3


def test_run_dir_of_an_older_layout_is_refused(tmp_path):
    """A run dir written before the train sections and the pairs stage (manifest without a layout)."""
    rd = RunDir(tmp_path / "run")
    rd.init(load_config())
    (tmp_path / "run" / "manifest.json").write_text(json.dumps({"stages": {"iter-000/evaluate": {}}}))
    with pytest.raises(RunDirMismatch, match="older version of starloop.*new --run-dir"):
        rd.init(load_config())


def test_parts_keep_finished_work_by_digest(tmp_path):
    rd = RunDir(tmp_path / "run")
    parts = rd.parts("shards", {"model": "m", "prompts": ["a", "b"]})
    assert parts.dir.parent == tmp_path / "run" / "shards"
    assert parts.dir == rd.parts("shards", {"prompts": ["a", "b"], "model": "m"}).dir  # same key, same folder
    assert parts.dir != rd.parts("shards", {"model": "m", "prompts": ["a"]}).dir
    assert not parts.done("shard-00")
    parts.write("shard-00", [{"x": 1}])
    assert parts.done("shard-00") and parts.read("shard-00") == [{"x": 1}]
    assert parts.discard("shard-00").name == "shard-00.bad" and not parts.done("shard-00")
