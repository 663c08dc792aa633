"""Benchmark: sampling throughput (samples/s) of starloop's sampling routes, and adaptive vs fixed
sampling on the demo.

    python bench/sampling.py [--rows engine,server,replicas] [--problems 256] [--n 4] [--max-tokens 80]
                             [--repeats 3] [--adaptive FIXED_RUN_DIR ADAPTIVE_RUN_DIR]
                             [--out bench/results/sampling.json]

The model is the demo's seed model (``builtin:arithmetic`` with configs/demo.yaml's options; built
once and cached under ``$STARLOOP_CACHE``), the prompts are the first ``--problems`` problems of the
demo's train pool, ``--n`` samples each at the demo's temperature. Rows:

- ``engine``: the in-process engines (``sampling.backend`` vllm and transformers), one warm engine,
  the sampling call timed (engine start-up reported apart).
- ``server``: ``sampling.backend: openai`` against a vLLM OpenAI-compatible server of the same model
  started by the benchmark on 127.0.0.1 (``python -m vllm.entrypoints.openai.api_server``), with 1 and
  4 requests in flight (``sampling.server.concurrency``).
- ``replicas``: ``sampling.data_parallel_size`` 1 vs 2 (vLLM), each replica a fresh process: the time
  includes every replica's engine start-up, as a stage pays it.
- ``--adaptive FIXED ADAPTIVE``: two demo run directories (``starloop run`` and ``starloop run --set
  sampling.adaptive.enabled=true``, same seed): per iteration, samples drawn (sample + rationalize
  stages), sample-stage seconds and held-out pass@1.

Each timed row is the median of ``--repeats`` calls. The machine's load average is printed and
recorded: on a shared 2-core machine every number moves with other work.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results" / "sampling.json"


def _setup(problems: int, n: int, max_tokens: int):
    from starloop.loop.config import load_config
    from starloop.loop.records import GenParams
    from starloop.loop.runtime.models import load_tokenizer, resolve_model
    from starloop.loop.runtime.prompts import problem_prompts
    from starloop.loop.tasks import load_problems

    cfg = load_config(None, ["runtime.progress=false"])
    model = resolve_model(cfg.model, cfg.prompt, cfg.seed)
    pool = load_problems(cfg.data.train, cfg.seed)[:problems]
    prompts = problem_prompts(load_tokenizer(model), pool, cfg.prompt)
    params = GenParams(n, cfg.sampling.temperature, cfg.sampling.top_p, max_tokens, tuple(cfg.sampling.stop), seed=0)
    return cfg, model, pool, prompts, params


def _timed(sampling, request, repeats: int) -> dict[str, Any]:
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = sampling.sample(request)
        dt = time.perf_counter() - t0
        runs.append({"seconds": dt, "samples": len(out), "tokens": sum(s.num_tokens or 0 for s in out)})
    sec = statistics.median(r["seconds"] for r in runs)
    return {"seconds": round(sec, 2), "samples": runs[0]["samples"], "samples_per_s": round(runs[0]["samples"] / sec, 1),
            "tokens_per_s": round(runs[0]["tokens"] / sec, 1), "repeats": repeats}


def _sampling_cfg(cfg, sets: list[str]):
    from starloop.loop.config import load_config

    return load_config(None, ["runtime.progress=false", *sets]).sampling


def row_engine(ctx, repeats: int) -> list[dict[str, Any]]:
    from starloop.loop.records import SampleRequest
    from starloop.loop.runtime.sampling import Sampling

    cfg, model, pool, prompts, params = ctx
    rows = []
    for backend in ("vllm", "transformers"):
        with Sampling(_sampling_cfg(cfg, [f"sampling.backend={backend}"]), engine_seed=0) as sampling:
            t0 = time.perf_counter()
            sampling.engine(model)
            startup = time.perf_counter() - t0
            r = _timed(sampling, SampleRequest(model, pool, prompts, params, iteration=1), repeats)
        rows.append({"route": f"in-process {backend}", "startup_s": round(startup, 1), **r})
        print(rows[-1], flush=True)
    return rows


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(model: str, name: str) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model, "--served-model-name", name,
           "--host", "127.0.0.1", "--port", str(port), "--enforce-eager", "--max-model-len", "256", "--seed", "0"]
    log = open(HERE / "results" / "sampling-server.log", "w")  # noqa: SIM115 - kept open while the server runs
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"})
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 300
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the vLLM server exited ({proc.returncode}); see {log.name}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:
                if r.status == 200:
                    return proc, url + "/v1"
        except OSError:
            time.sleep(1)
    proc.kill()
    raise SystemExit(f"the vLLM server did not come up in 300 s; see {log.name}")


def row_server(ctx, repeats: int) -> list[dict[str, Any]]:
    from starloop.loop.records import SampleRequest
    from starloop.loop.runtime.sampling import Sampling

    cfg, model, pool, prompts, params = ctx
    name = "seed-model"
    proc, base_url = _serve(model, name)
    rows = []
    try:
        for streams in (1, 4):
            scfg = _sampling_cfg(cfg, ["sampling.backend=openai", f"sampling.base_url={base_url}",
                                       f"sampling.server.concurrency={streams}", "sampling.server.request_seed=false"])
            with Sampling(scfg, engine_seed=0) as sampling:
                r = _timed(sampling, SampleRequest(name, pool, prompts, params, iteration=1), repeats)
            rows.append({"route": f"server (openai backend), {streams} stream(s)", **r})
            print(rows[-1], flush=True)
    finally:
        proc.terminate()
        proc.wait(30)
    return rows


def row_replicas(ctx, repeats: int) -> list[dict[str, Any]]:
    import tempfile

    from starloop.loop.records import SampleRequest
    from starloop.loop.runtime.rundir import Parts
    from starloop.loop.runtime.sampling import Sampling

    cfg, model, pool, prompts, params = ctx
    rows = []
    for replicas in (1, 2):
        scfg = _sampling_cfg(cfg, ["sampling.backend=vllm", f"sampling.data_parallel_size={replicas}"])
        runs = []
        for _ in range(repeats):
            with tempfile.TemporaryDirectory() as tmp:
                # A fresh parts folder per call: every call samples (nothing is reused).
                sampling = Sampling(scfg, engine_seed=0, isolate=True, parts=lambda key, tmp=tmp: Parts(tmp))
                t0 = time.perf_counter()
                out = sampling.sample(SampleRequest(model, pool, prompts, params, iteration=1))
                runs.append(time.perf_counter() - t0)
        sec = statistics.median(runs)
        rows.append({"route": f"{replicas} replica(s), fresh processes (start-up included)", "seconds": round(sec, 2),
                     "samples": len(out), "samples_per_s": round(len(out) / sec, 1), "repeats": repeats})
        print(rows[-1], flush=True)
    return rows


def adaptive_table(fixed: Path, adaptive: Path) -> list[dict[str, Any]]:
    """Per iteration of two demo runs: samples drawn, sample-stage seconds, held-out pass@1."""

    def per_iteration(run: Path) -> dict[int, dict[str, Any]]:
        stages = json.loads((run / "manifest.json").read_text())["stages"]
        metrics = {m["iteration"]: m for m in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())}
        out = {}
        for it, m in metrics.items():
            s, r = stages.get(f"iter-{it:03d}/sample", {}), stages.get(f"iter-{it:03d}/rationalize", {})
            out[it] = {"samples": s.get("samples"), "hinted": r.get("hinted_samples"), "sample_s": s.get("seconds"),
                       "pass@1": round(100 * m["pass@1"], 1)}
        return out

    a, b = per_iteration(fixed), per_iteration(adaptive)
    return [{"iteration": it, "fixed": a[it], "adaptive": b[it]} for it in sorted(set(a) & set(b))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", default="engine,server,replicas")
    ap.add_argument("--problems", type=int, default=256)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=80)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--adaptive", nargs=2, type=Path, metavar=("FIXED_RUN", "ADAPTIVE_RUN"))
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    result: dict[str, Any] = {"machine": platform.platform(), "cpus": os.cpu_count(), "problems": args.problems,
                              "n": args.n, "max_tokens": args.max_tokens, "rows": []}
    rows = [r for r in args.rows.split(",") if r]
    if rows:
        ctx = _setup(args.problems, args.n, args.max_tokens)
        for name in rows:
            result["rows"] += {"engine": row_engine, "server": row_server, "replicas": row_replicas}[name](ctx, args.repeats)
    if args.adaptive:
        result["adaptive"] = adaptive_table(*args.adaptive)
    result["load_before"], result["load_after"] = load_before, os.getloadavg()
    print(f"\nsampling throughput: {args.problems} problems x n={args.n}, max_tokens={args.max_tokens}, "
          f"medians of {args.repeats}; load {load_before[0]:.2f} -> {result['load_after'][0]:.2f}")
    print(f"{'route':<58} {'seconds':>8} {'samples/s':>10}")
    for r in result["rows"]:
        print(f"{r['route']:<58} {r['seconds']:>8.2f} {r['samples_per_s']:>10.1f}")
    if args.adaptive:
        print("\nadaptive vs fixed sampling on the demo (samples drawn: sample stage + rationalization)")
        print(f"{'iter':>4} {'fixed samples':>14} {'adaptive samples':>17} {'fixed s':>8} {'adaptive s':>11} "
              f"{'fixed pass@1':>13} {'adaptive pass@1':>16}")
        for r in result["adaptive"]:
            f, a = r["fixed"], r["adaptive"]
            drawn_f = (f["samples"] or 0) + (f["hinted"] or 0)
            drawn_a = (a["samples"] or 0) + (a["hinted"] or 0)
            print(f"{r['iteration']:>4} {drawn_f:>14} {drawn_a:>17} {f['sample_s'] or 0:>8.0f} {a['sample_s'] or 0:>11.0f} "
                  f"{f['pass@1']:>13.1f} {a['pass@1']:>16.1f}")
    args.out.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
