"""Benchmark: SFT and DPO training throughput (tokens/s) of starloop's trainers (TRL underneath).

    python bench/train.py [--size tiny|small|medium|large] [--steps 8] [--repeats 3]
                          [--batch-size 8] [--prompt-len 32] [--completion-len 96]
                          [--threads N] [--out bench/results/train.json]

The model is a Llama built locally with ``loop/demo/tinymodel.py`` (character tokenizer, random
weights: throughput does not depend on what the weights are). The data is synthetic: every row
has a ``--prompt-len`` character prompt and ``--completion-len`` character completions (one
character = one token), so every step processes the same number of tokens.

Measured: ``train_runtime`` of the trainer (model loading, tokenization and saving excluded)
over exactly one epoch of ``--steps`` x ``--batch-size`` rows; the median of ``--repeats`` runs,
each a fresh training from the same starting model. Tokens counted:

- SFT: prompt + completion tokens per row (the loss is on the completion only).
- DPO: prompt + chosen and prompt + rejected tokens per pair (both sequences go through the
  policy forward and backward pass; the reference model's forward pass comes on top).

On a machine with CUDA the GPU is used (bf16) and the default size is ``medium``; on CPU, fp32
and ``tiny``. Results are merged into the JSON file under a ``cuda-<size>`` or
``cpu-<size>-t<threads>`` key, so CPU and GPU numbers live side by side. On a busy CPU machine
use ``--threads 1``: two OpenMP threads competing with other processes for two cores wait on
each other and can run many times slower than one. The machine's load average is recorded with them: on a
shared machine other work slows every number.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results" / "train.json"

SIZES: dict[str, dict[str, int]] = {
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                 num_key_value_heads=2),
    "small": dict(hidden_size=256, intermediate_size=688, num_hidden_layers=4, num_attention_heads=4,
                  num_key_value_heads=4),
    "medium": dict(hidden_size=768, intermediate_size=2048, num_hidden_layers=12, num_attention_heads=12,
                   num_key_value_heads=4),
    "large": dict(hidden_size=2048, intermediate_size=5632, num_hidden_layers=16, num_attention_heads=16,
                  num_key_value_heads=8),
}


def build_model(size: str, root: Path, max_len: int) -> tuple[str, int]:
    from starloop.loop.demo.tinymodel import TinyModelSpec, build_char_tokenizer, build_tiny_llama, save_model

    tok = build_char_tokenizer()
    model = build_tiny_llama(tok, TinyModelSpec(**SIZES[size], max_position_embeddings=max(512, max_len)), seed=0)
    params = sum(p.numel() for p in model.parameters())
    return str(save_model(model, tok, root / f"model-{size}")), params


def _text(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789+-=*") for _ in range(n))


def make_rows(n: int, prompt_len: int, completion_len: int, seed: int = 0) -> tuple[list[dict], list[dict]]:
    rng = random.Random(seed)
    sft, dpo = [], []
    for _ in range(n):
        prompt = "Q: " + _text(rng, prompt_len - 6) + "\nA: "
        sft.append({"prompt": prompt, "completion": _text(rng, completion_len)})
        dpo.append({"prompt": prompt, "chosen": _text(rng, completion_len), "rejected": _text(rng, completion_len)})
    return sft, dpo


def run_once(kind: str, model: str, rows: list[dict], args: argparse.Namespace, cuda: bool, root: Path) -> dict[str, Any]:
    from starloop.loop.config import DPOSection, SFTSection, TrainConfig
    from starloop.loop.runtime.trainers import train_dpo, train_sft

    common = {"num_train_epochs": 1.0, "per_device_train_batch_size": args.batch_size,
              "max_length": args.prompt_len + args.completion_len + 8, "bf16": cuda, "logging_steps": max(1, args.steps),
              "lr_scheduler_type": "constant_with_warmup", "seed": 0, "data_seed": 0, "gradient_checkpointing": False}
    cfg = TrainConfig(sft=SFTSection(True, {**common, "learning_rate": 1e-4}),
                      dpo=DPOSection(True, {**common, "learning_rate": 1e-6}))
    with tempfile.TemporaryDirectory(dir=root) as out:
        fn = train_sft if kind == "sft" else train_dpo
        stats = fn(model, rows, cfg, out)
    return {"tokens": stats["tokens"], "train_seconds": stats["train_seconds"], "steps": stats["steps"],
            "tokens_per_s": stats["tokens"] / stats["train_seconds"]}


def main(argv: list[str] | None = None) -> int:
    import torch

    cuda = torch.cuda.is_available()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", choices=sorted(SIZES), default="medium" if cuda else "tiny")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--prompt-len", type=int, default=32)
    p.add_argument("--completion-len", type=int, default=96)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own choice)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    import logging

    import transformers

    transformers.logging.set_verbosity_error()
    logging.getLogger("starloop").setLevel(logging.WARNING)
    device = torch.cuda.get_device_name(0) if cuda else f"cpu ({os.cpu_count()} cores, {torch.get_num_threads()} threads)"
    load_before = os.getloadavg()[0]
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="starloop-bench-train-") as tmp:
        root = Path(tmp)
        model, params = build_model(args.size, root, args.prompt_len + args.completion_len + 8)
        sft_rows, dpo_rows = make_rows(args.steps * args.batch_size, args.prompt_len, args.completion_len)
        settings = {"size": args.size, "params": params, **SIZES[args.size], "device": device,
                    "dtype": "bf16" if cuda else "fp32", "batch_size": args.batch_size, "steps": args.steps,
                    "prompt_tokens": args.prompt_len, "completion_tokens": args.completion_len,
                    "repeats": args.repeats}
        print(f"model: Llama {args.size}, {params / 1e6:.2f}M parameters; " + ", ".join(
            f"{k}={v}" for k, v in settings.items() if k not in ("size", "params")), flush=True)
        for kind, rows in (("sft", sft_rows), ("dpo", dpo_rows)):
            runs = []
            for r in range(args.repeats):
                t0 = time.time()
                runs.append(run_once(kind, model, rows, args, cuda, root))
                print(f"  {kind} run {r + 1}/{args.repeats}: {runs[-1]['tokens_per_s']:.0f} tokens/s "
                      f"({time.time() - t0:.1f}s with load and save)", flush=True)
            rates = [x["tokens_per_s"] for x in runs]
            results[kind] = {"tokens_per_s": statistics.median(rates), "min": min(rates), "max": max(rates),
                             "tokens_per_run": runs[0]["tokens"], "steps_per_run": runs[0]["steps"],
                             "train_seconds_median": statistics.median(x["train_seconds"] for x in runs)}

    print()
    print(f"{'phase':6s} {'tokens/s (median)':>18s} {'min':>10s} {'max':>10s} {'tokens/run':>11s} {'s/run':>7s}")
    for kind, r in results.items():
        print(f"{kind:6s} {r['tokens_per_s']:18.0f} {r['min']:10.0f} {r['max']:10.0f} {r['tokens_per_run']:11d} "
              f"{r['train_seconds_median']:7.2f}")
    record = {"settings": settings, "results": results, "machine": {
        "platform": platform.platform(), "python": sys.version.split()[0], "torch": torch.__version__,
        "transformers": transformers.__version__, "trl": __import__("trl").__version__,
        # The 1-minute load average before and after: other work on a shared machine slows every number.
        "load_avg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)]},
        "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(args.out.read_text()) if args.out.exists() else {}
    data[f"cuda-{args.size}" if cuda else f"cpu-{args.size}-t{torch.get_num_threads()}"] = record
    args.out.write_text(json.dumps(data, indent=2) + "\n")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
