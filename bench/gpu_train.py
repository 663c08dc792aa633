"""Benchmark: the training phase (DeepSpeed, one GPU) and the samplers, in tokens/s and MFU.

    python bench/gpu_train.py [--layers 24] [--hidden 1024] [--seq-len 1024] [--batch-size 8]
                              [--deepspeed configs/deepspeed/zero2.json] [--steps 10 40]
                              [--peak-tflops AUTO] [--vllm] [--out bench/results/gpu_train.json]

Needs a CUDA GPU: on a machine without one it prints ``no CUDA device`` and exits 0.

The model is a Llama built locally (character tokenizer from ``loop/demo/tinymodel.py``, random
weights; ~310M parameters at the defaults), the data synthetic rows of exactly ``--seq-len``
tokens (one character = one token). Nothing is downloaded.

Training: the phase exactly as ``starloop run`` runs it — ``run_training`` with
``train.launch.launcher=torchrun``, ``train.launch.num_processes=1``, ``train.launch.deepspeed=<--deepspeed>``, bf16 —
run twice, for the two ``--steps`` counts. Throughput is the difference of the two runs
(tokens / seconds of the extra steps), so process start, model loading, tokenization and saving,
identical in both, cancel out; the phase's end-to-end wall time is reported too.

MFU = achieved model FLOP/s / the GPU's peak dense bf16 FLOP/s, with the usual
6 N + 12 L d s training FLOPs per token (N parameters, L layers, d hidden size, s sequence
length; attention counted in full, recomputation not counted). The peak is looked up from the
device name (H100 SXM / H200: 989 TFLOP/s, H100 PCIe: 756, A100: 312) or given with
``--peak-tflops``.

Sampling: the transformers backend (``TransformersSampler``) generating ``--sample-new-tokens``
tokens for ``--sample-prompts`` prompts x ``--sample-n`` samples (batch ``--sample-batch``);
``--vllm`` adds the vLLM backend on the same model. tokens/s counts generated tokens.

Results are printed as a table and merged into the JSON file under the device name.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results" / "gpu_train.json"
PEAK_TFLOPS = (("H200", 989.0), ("H100 PCIe", 756.0), ("H100", 989.0), ("A100", 312.0), ("L40S", 362.0))


def peak_tflops(name: str) -> float | None:
    for key, value in PEAK_TFLOPS:
        if key.lower() in name.lower():
            return value
    return None


def build_model(root: Path, *, layers: int, hidden: int, seq_len: int) -> tuple[str, int]:
    from starloop.loop.demo.tinymodel import TinyModelSpec, build_char_tokenizer, build_tiny_llama, save_model

    heads = max(1, hidden // 64)
    spec = TinyModelSpec(hidden_size=hidden, intermediate_size=int(hidden * 2.75) // 64 * 64,
                         num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
                         max_position_embeddings=max(2048, seq_len * 2))
    tok = build_char_tokenizer()
    model = build_tiny_llama(tok, spec, seed=0)
    params = sum(p.numel() for p in model.parameters())
    return str(save_model(model, tok, root / "model")), params


def make_rows(n: int, seq_len: int, seed: int = 0) -> list[dict[str, str]]:
    """Rows of ``seq_len`` tokens: a 64-token prompt and the rest completion (EOS included)."""
    rng = random.Random(seed)

    def text(k: int) -> str:
        return "".join(rng.choice("0123456789+-=*abcdef") for _ in range(k))

    return [{"prompt": "Q: " + text(58) + "\nA: ", "completion": text(seq_len - 65)} for _ in range(n)]


def train_phase(model: str, rows: list[dict], steps: int, args: argparse.Namespace, root: Path) -> dict[str, Any]:
    from starloop.loop.config import load_config
    from starloop.loop.runtime.launch import run_training

    cfg = load_config(None, [
        "train.launch.launcher=torchrun", "train.launch.num_processes=1", f"train.launch.deepspeed={args.deepspeed}",
        "train.sft.bf16=true", f"train.sft.per_device_train_batch_size={args.batch_size}",
        f"train.sft.max_steps={steps}", f"train.sft.max_length={args.seq_len}", "train.sft.learning_rate=0.0001",
        "train.sft.logging_steps=1000", "train.sft.lr_scheduler_type=constant", "train.sft.gradient_checkpointing=false",
    ])
    t0 = time.time()
    stats = run_training(cfg.train, "sft", model, root / f"train-{steps}", rows=rows)
    return {**stats, "wall": time.time() - t0}


def sample_throughput(backend: str, model: str, args: argparse.Namespace) -> dict[str, Any]:
    from starloop.loop.config import SamplingConfig
    from starloop.loop.records import GenParams
    from starloop.loop.runtime.samplers import BACKENDS

    cfg = SamplingConfig(backend=backend, batch_size=args.sample_batch, gpu_memory_utilization=0.6,
                         max_model_len=2048, enforce_eager=False)
    sampler = BACKENDS[backend](model, cfg, 0)
    prompts = [f"Q: {i * 7919 % 1000}+{i}\nA: " for i in range(args.sample_prompts)]
    params = GenParams(n=args.sample_n, temperature=1.0, max_tokens=args.sample_new_tokens, seed=0)
    try:
        sampler.generate(prompts[: min(4, len(prompts))], GenParams(n=1, max_tokens=8))  # warm-up
        t0 = time.time()
        gens = sampler.generate(prompts, params)
        seconds = time.time() - t0
    finally:
        sampler.close()
    tokens = sum(g.num_tokens for gs in gens for g in gs)
    return {"backend": backend, "prompts": len(prompts), "n": args.sample_n, "tokens": tokens,
            "seconds": round(seconds, 2), "tokens_per_s": round(tokens / seconds, 1)}


def main(argv: list[str] | None = None) -> int:
    import torch

    if not torch.cuda.is_available():
        print("no CUDA device: bench/gpu_train.py measures GPU training and sampling; nothing to do")
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--layers", type=int, default=24)
    p.add_argument("--hidden", type=int, default=1024)
    p.add_argument("--seq-len", type=int, default=1024)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--deepspeed", default="configs/deepspeed/zero2.json")
    p.add_argument("--steps", type=int, nargs=2, default=[10, 40])
    p.add_argument("--peak-tflops", type=float, default=None)
    p.add_argument("--sample-prompts", type=int, default=64)
    p.add_argument("--sample-n", type=int, default=4)
    p.add_argument("--sample-new-tokens", type=int, default=256)
    p.add_argument("--sample-batch", type=int, default=64)
    p.add_argument("--vllm", action="store_true", help="also measure the vLLM backend")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args(argv)

    device = torch.cuda.get_device_name(0)
    peak = args.peak_tflops or peak_tflops(device)
    short, long = sorted(args.steps)
    with tempfile.TemporaryDirectory(prefix="starloop-gpu-bench-") as tmp:
        root = Path(tmp)
        model, params = build_model(root, layers=args.layers, hidden=args.hidden, seq_len=args.seq_len)
        rows = make_rows(long * args.batch_size, args.seq_len)
        runs = [train_phase(model, rows, s, args, root) for s in (short, long)]
        d_tokens = runs[1]["tokens"] - runs[0]["tokens"]
        d_seconds = runs[1]["seconds"] - runs[0]["seconds"]
        tok_s = d_tokens / d_seconds
        flops_per_token = 6 * params + 12 * args.layers * args.hidden * args.seq_len
        mfu = tok_s * flops_per_token / (peak * 1e12) if peak else None
        sampling = [sample_throughput("transformers", model, args)]
        if args.vllm:
            sampling.append(sample_throughput("vllm", model, args))

    result = {
        "device": device, "torch": torch.__version__, "python": platform.python_version(),
        "model": {"params": params, "layers": args.layers, "hidden": args.hidden, "seq_len": args.seq_len},
        "train": {"deepspeed": Path(args.deepspeed).name, "batch_size": args.batch_size, "steps": [short, long],
                  "world_size": runs[1]["world_size"], "tokens_per_s": round(tok_s, 1),
                  "flops_per_token": flops_per_token, "peak_tflops": peak,
                  "mfu": round(mfu, 4) if mfu is not None else None,
                  "phase_wall_s": [round(r["wall"], 1) for r in runs]},
        "sampling": sampling,
    }
    print(f"\n{device}: Llama {params / 1e6:.0f}M params, seq {args.seq_len}, micro-batch {args.batch_size}, "
          f"{Path(args.deepspeed).name}, bf16")
    print(f"{'phase':<24}{'tokens/s':>12}{'MFU':>8}")
    print(f"{'train (steady state)':<24}{tok_s:>12,.0f}{(f'{mfu:.1%}' if mfu is not None else 'n/a'):>8}")
    for s in sampling:
        print(f"{'sample ' + s['backend']:<24}{s['tokens_per_s']:>12,.0f}{'':>8}")
    print(f"training phase wall time (start to checkpoint): {result['train']['phase_wall_s']} s")

    data = json.loads(args.out.read_text()) if args.out.exists() else {}
    data[device] = result
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
