"""Shared fixtures: tiny models built locally (no download), environment for CPU runs."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# A fresh datasets cache per test session: `load_dataset` of a local folder may otherwise reuse a
# cached build of an earlier session's folder at the same temporary path, with its old columns.
if "HF_DATASETS_CACHE" not in os.environ:
    os.environ["HF_DATASETS_CACHE"] = tempfile.mkdtemp(prefix="starloop-tests-datasets-")
    atexit.register(shutil.rmtree, os.environ["HF_DATASETS_CACHE"], True)

REPO = Path(__file__).resolve().parents[1]


def has_vllm() -> bool:
    try:
        import vllm  # noqa: F401
    except Exception:
        return False
    return True


require_vllm = pytest.mark.skipif(not has_vllm(), reason="vllm is not installed")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> str:
    """An untrained tiny Llama + character tokenizer, saved in Hugging Face format."""
    from starloop.loop.demo.tinymodel import build_random_tiny_model

    return str(build_random_tiny_model(tmp_path_factory.mktemp("models") / "tiny"))


@pytest.fixture(scope="session")
def starloop_cache(tmp_path_factory) -> Path:
    """A session-wide cache for built-in seed models (shared by the integration tests); with
    ``STARLOOP_TEST_CACHE`` set, that folder (a cache kept across sessions: the slow demo tests then
    skip the seed-model builds they have already done)."""
    kept = os.environ.get("STARLOOP_TEST_CACHE")
    path = Path(kept) if kept else tmp_path_factory.mktemp("cache")
    os.environ["STARLOOP_CACHE"] = str(path)
    return path


# A small but real loop config: a seed model trained briefly on 2-operand chains, which then
# samples, verifies, rationalizes, selects, trains and evaluates on the same level.
TINY_OVERRIDES = [
    "iterations=1",
    "model.builtin_options.seed_levels={'2': 400}",
    "model.builtin_options.hidden_size=64",
    "model.builtin_options.intermediate_size=128",
    "model.builtin_options.num_hidden_layers=2",
    "model.builtin_options.num_attention_heads=2",
    "model.builtin_options.epochs=1",
    "model.builtin_options.batch_size=32",
    "data.train.options={split: train, levels: [2], per_level: 24}",
    "data.eval.options={split: eval, levels: [2], per_level: 12}",
    "data.real.options={split: seed, levels: [2], per_level: 20}",
    "sampling.n=2",
    "sampling.max_tokens=24",
    "rationalize.n=1",
    "eval.n=2",
    "eval.k=[1, 2]",
    "train.sft.per_device_train_batch_size=8",
    "verify.workers=1",
    "runtime.progress=false",
]


@pytest.fixture
def tiny_overrides(starloop_cache) -> list[str]:
    return list(TINY_OVERRIDES)
