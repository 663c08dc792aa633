"""The training phase runner: in process, in a child process, or across processes and machines
through ``torchrun`` / ``accelerate launch`` (DeepSpeed ZeRO via the accelerate config).

The driver writes a small JSON spec (model, data file, train config, output dir); every launched
rank runs ``python -m starloop.loop.phase SPEC`` and the trainer's own distributed setup does the
rest. Rank 0 writes ``train_stats.json`` next to the saved model.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from starloop.loop.config import RunConfig, TrainConfig, build
from starloop.loop.io import read_jsonl, write_json, write_jsonl

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parent.parent


def launch_command(tcfg: TrainConfig, spec_path: Path) -> list[str]:
    """The command line that runs the training phase with the configured launcher."""
    entry = ["-m", "starloop.loop.phase", str(spec_path)]
    if tcfg.launcher == "torchrun":
        nnodes = os.environ.get("STARLOOP_NNODES", str(tcfg.num_machines))
        cmd = ["torchrun", f"--nproc_per_node={tcfg.num_processes}", f"--nnodes={nnodes}"]
        if int(nnodes) == 1:
            cmd.append("--standalone")
        else:
            cmd += ["--rdzv_backend=c10d", f"--rdzv_endpoint={os.environ['MASTER_ADDR']}:{os.environ.get('MASTER_PORT', '29500')}",
                    f"--rdzv_id={os.environ.get('SLURM_JOB_ID', 'starloop')}"]
        return cmd + entry
    if tcfg.launcher == "accelerate":
        cmd = ["accelerate", "launch", f"--num_processes={tcfg.num_processes * tcfg.num_machines}",
               f"--num_machines={tcfg.num_machines}"]
        if tcfg.accelerate_config:
            cmd.append(f"--config_file={_resolve(tcfg.accelerate_config)}")
        if tcfg.num_machines > 1:
            cmd += [f"--machine_rank={os.environ.get('SLURM_NODEID', os.environ.get('MACHINE_RANK', '0'))}",
                    f"--main_process_ip={os.environ['MASTER_ADDR']}",
                    f"--main_process_port={os.environ.get('MASTER_PORT', '29500')}"]
        if not _cuda():
            cmd.append("--cpu")
        return cmd + entry
    return [sys.executable, *entry]


def _resolve(path: str) -> str:
    p = Path(path)
    return str(p if p.is_absolute() or p.exists() else REPO / p)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def run_training(cfg: RunConfig, kind: str, init: str, out: Path, *, rows: list[dict[str, Any]],
                 isolate: bool = False) -> dict[str, Any]:
    """Train ``init`` on ``rows`` (SFT rows or DPO pairs) into ``out/model``; return stats."""
    tcfg = cfg.train
    if tcfg.deepspeed:
        tcfg = dataclasses.replace(tcfg, deepspeed=_resolve(tcfg.deepspeed))
    if tcfg.launcher == "inprocess" and not isolate:
        return train_kind(kind, init, rows, tcfg, out)
    data = out / f"{kind}_rows.jsonl"
    write_jsonl(data, rows)
    spec = out / f"{kind}_spec.json"
    write_json(spec, {"kind": kind, "model": init, "data": str(data), "train": dataclasses.asdict(tcfg),
                      "out": str(out)})
    cmd = launch_command(tcfg, spec)
    log.info("training phase: %s", shlex.join(cmd))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(cmd, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"training phase failed (exit {proc.returncode}): {shlex.join(cmd)}")
    return json.loads((out / f"{kind}_stats.json").read_text())


def train_kind(kind: str, init: str, rows: list[dict[str, Any]], tcfg: TrainConfig, out: Path) -> dict[str, Any]:
    from starloop.loop import train

    if kind == "sft":
        return train.train_sft(init, rows, tcfg, out)
    if kind == "dpo":
        return train.train_dpo(init, rows, tcfg, out)
    raise ValueError(f"unknown training kind {kind!r}")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    spec = json.loads(Path(argv[0]).read_text())
    tcfg = build(TrainConfig, spec["train"])
    out = Path(spec["out"])
    stats = train_kind(spec["kind"], spec["model"], read_jsonl(spec["data"]), tcfg, out)
    if int(os.environ.get("RANK", "0")) == 0:
        stats["world_size"] = int(os.environ.get("WORLD_SIZE", "1"))
        write_json(out / f"{spec['kind']}_stats.json", stats)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    main()
