"""The hub section: checkpoints laid out for a model repository with a model card, pushed by one call.

No Hub is reachable from the tests: ``push`` (one ``huggingface_hub`` upload of a folder) is the only
part replaced here, by a recorder; everything it would upload is real and checked: the folder loads
with transformers and its card states the run's config, data and held-out metrics.
"""

from __future__ import annotations

import pytest
import yaml

from starloop.loop.config import ConfigError, load_config, to_plain
from starloop.loop.driver import Driver
from starloop.loop.runtime import hub


def test_trainer_push_to_hub_is_refused_for_the_hub_section():
    for kind in ("sft", "dpo"):
        with pytest.raises(ConfigError, match="top-level hub section"):
            load_config(None, [f"train.{kind}.push_to_hub=true"])
    cfg = load_config(None, ["hub.repo_id=me/model", "hub.push=each"])
    assert (cfg.hub.repo_id, cfg.hub.push, cfg.hub.private) == ("me/model", "each", True)
    with pytest.raises(ConfigError, match="hub.push"):
        load_config(None, ["hub.push=sometimes"])


def test_run_pushes_each_checkpoint_with_a_model_card(tmp_path, tiny_overrides, monkeypatch):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    pushed = []
    monkeypatch.setattr(hub, "push", lambda folder, cfg, it: pushed.append((folder, cfg.repo_id, it)) or "url")
    cfg = load_config(None, [*tiny_overrides, "hub.repo_id=me/tiny-arithmetic", "hub.push=each"])
    driver = Driver(cfg, tmp_path / "run")
    driver.run()
    assert [(p[1], p[2]) for p in pushed] == [("me/tiny-arithmetic", 1)]
    folder = pushed[0][0]
    assert folder == tmp_path / "run" / "hub" / "iter-001"
    AutoModelForCausalLM.from_pretrained(folder)
    AutoTokenizer.from_pretrained(folder)
    card = (folder / "README.md").read_text()
    config_yaml = card.split("```yaml\n", 1)[1].split("```", 1)[0]
    expected = to_plain(cfg)
    expected.pop("hub")
    assert yaml.safe_load(config_yaml) == expected
    metrics = driver.rd.metrics()
    for m in metrics:  # every iteration's held-out pass@1, in percent
        assert f"| {m['iteration']} | {100 * m['pass@1']:.1f} |" in card
    assert "- train: `arithmetic`" in card and "| 1 |" in card.split("## Data", 1)[1]
    # A rerun of the complete run pushes nothing more with push=each; with push=final it (re)pushes the last.
    Driver(cfg, tmp_path / "run").run()
    assert len(pushed) == 1
    Driver(load_config(None, [*tiny_overrides, "hub.repo_id=me/tiny-arithmetic"]), tmp_path / "run").run()
    assert [p[2] for p in pushed] == [1, 1]
