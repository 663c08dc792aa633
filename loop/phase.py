"""The training phase runner: in process, in a child process, or across processes and machines
through ``torchrun`` / ``accelerate launch`` (DeepSpeed ZeRO through ``train.deepspeed`` or the
accelerate config).

The driver writes a small JSON spec (model, data file, train config, output dir); every launched
rank runs ``python -m starloop.loop.phase SPEC`` and the trainer's own distributed setup does the
rest. Rank 0 writes ``<kind>_stats.json`` next to the saved model, with the world size the process
group really had; the driver refuses a phase that ran with fewer processes than configured (a
launcher that silently falls back to one process is an error, not a slow run).

Process counts: ``train.num_processes`` is processes per machine (one per GPU), and
``train.num_machines`` the number of machines. More than one machine needs a Slurm allocation:
the phase command is started once per node with ``srun`` and meets at ``MASTER_ADDR:MASTER_PORT``
(``launch/slurm.sbatch`` sets both).

On a CPU-only machine the same launchers run real multi-process jobs on gloo: ``torchrun`` as is,
``accelerate launch`` without ``--cpu`` (accelerate's ``--cpu`` runs a single process whatever
``--num_processes`` says), DeepSpeed with the torch optimizer (see ``configs/deepspeed``).
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

import yaml

from starloop.loop.config import ConfigError, RunConfig, TrainConfig, build
from starloop.loop.io import read_jsonl, write_json, write_jsonl

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parent.parent
ENTRY = ["-m", "starloop.loop.phase"]


def world_size(tcfg: TrainConfig) -> int:
    """Total training processes: per machine times machines."""
    return tcfg.num_processes * tcfg.num_machines


def check_launch(tcfg: TrainConfig) -> None:
    """Reject launch settings that cannot give the configured process count."""
    if tcfg.num_processes < 1 or tcfg.num_machines < 1:
        raise ConfigError(f"train.num_processes and train.num_machines must be >= 1, got "
                          f"{tcfg.num_processes} and {tcfg.num_machines}")
    if world_size(tcfg) > 1 and tcfg.launcher in ("inprocess", "subprocess"):
        raise ConfigError(f"train.launcher={tcfg.launcher} runs one process; use torchrun or accelerate "
                          f"for train.num_processes={tcfg.num_processes}, train.num_machines={tcfg.num_machines}")
    if tcfg.num_machines > 1:
        missing = [k for k in ("SLURM_JOB_ID", "MASTER_ADDR") if k not in os.environ]
        if missing:
            raise ConfigError(f"train.num_machines={tcfg.num_machines} needs a Slurm allocation with MASTER_ADDR set "
                              f"(launch/slurm.sbatch); missing {missing}")


def launch_command(tcfg: TrainConfig, spec_path: Path, *, accelerate_config: Path | None = None) -> list[str]:
    """The command line that runs the training phase with the configured launcher.

    ``accelerate_config`` is the (resolved) accelerate config file to pass; see :func:`accelerate_file`.
    """
    entry = [*ENTRY, str(spec_path)]
    port = os.environ.get("MASTER_PORT", "29500")
    if tcfg.launcher == "torchrun":
        cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={tcfg.num_processes}",
               f"--nnodes={tcfg.num_machines}"]
        if tcfg.num_machines == 1:
            cmd.append("--standalone")
        else:
            cmd += ["--rdzv_backend=c10d", f"--rdzv_endpoint={os.environ['MASTER_ADDR']}:{port}",
                    f"--rdzv_id={os.environ.get('SLURM_JOB_ID', 'starloop')}"]
        return _per_node(tcfg, cmd + entry)
    if tcfg.launcher == "accelerate":
        total = world_size(tcfg)
        cmd = [sys.executable, "-m", "accelerate.commands.launch", f"--num_processes={total}",
               f"--num_machines={tcfg.num_machines}"]
        if accelerate_config is not None:
            cmd.append(f"--config_file={accelerate_config}")
        elif total > 1:
            cmd.append("--multi_gpu")  # plain DDP; on CPU it runs gloo processes through torch's launcher
        if tcfg.num_machines == 1 and total > 1:
            # accelerate's fixed default port collides with any other job on the machine.
            cmd.append(f"--main_process_port={os.environ.get('MASTER_PORT') or _free_port()}")
        if tcfg.num_machines > 1:
            cmd += [f"--main_process_ip={os.environ['MASTER_ADDR']}", f"--main_process_port={port}"]
            # The machine rank differs per node: srun's shell on each node fills it in.
            cmd = ["bash", "-c", 'exec "$0" "$@" --machine_rank="$SLURM_NODEID" ' + shlex.join(entry), *cmd]
            return _per_node(tcfg, cmd)
        return cmd + entry
    return [sys.executable, *entry]


def _per_node(tcfg: TrainConfig, cmd: list[str]) -> list[str]:
    """Start ``cmd`` once on every node of the Slurm allocation (multi-machine runs only)."""
    if tcfg.num_machines == 1:
        return cmd
    return ["srun", f"--nodes={tcfg.num_machines}", "--ntasks-per-node=1", "--overlap", "--kill-on-bad-exit=1",
            *cmd]


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _resolve(path: str) -> Path:
    p = Path(path).expanduser()
    return (p if p.is_absolute() or p.exists() else REPO / p).resolve()


def accelerate_file(tcfg: TrainConfig, out: Path) -> Path | None:
    """The accelerate config to launch with, its DeepSpeed file path made absolute.

    Configs in ``configs/accelerate`` name their DeepSpeed file relative to the repository; the
    launched processes may run elsewhere, so a resolved copy is written next to the phase's spec.
    """
    if not tcfg.accelerate_config:
        return None
    src = _resolve(tcfg.accelerate_config)
    if not src.is_file():
        raise ConfigError(f"train.accelerate_config: file not found: {tcfg.accelerate_config}")
    data = yaml.safe_load(src.read_text()) or {}
    ds = data.get("deepspeed_config") or {}
    if ds.get("deepspeed_config_file"):
        ds["deepspeed_config_file"] = str(_resolve(ds["deepspeed_config_file"]))
    dst = out / "accelerate.yaml"
    dst.write_text(yaml.safe_dump(data, sort_keys=False))
    return dst


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def run_training(cfg: RunConfig, kind: str, init: str, out: Path, *, rows: list[dict[str, Any]],
                 isolate: bool = False) -> dict[str, Any]:
    """Train ``init`` on ``rows`` (SFT rows or DPO pairs) into ``out/model``; return stats.

    With ``isolate`` (or any launcher but ``inprocess``) training runs in child processes, so the
    driver never holds accelerator memory. Raises if the phase fails or ran with fewer processes
    than configured.
    """
    tcfg = cfg.train
    check_launch(tcfg)
    if tcfg.deepspeed:
        path = _resolve(tcfg.deepspeed)
        if not path.is_file():
            raise ConfigError(f"train.deepspeed: file not found: {tcfg.deepspeed}")
        tcfg = dataclasses.replace(tcfg, deepspeed=str(path))
    if tcfg.launcher == "inprocess" and not isolate:
        return {**train_kind(kind, init, rows, tcfg, out), "world_size": 1, "launcher": "inprocess"}
    out.mkdir(parents=True, exist_ok=True)
    data = out / f"{kind}_rows.jsonl"
    write_jsonl(data, rows)
    spec = out / f"{kind}_spec.json"
    write_json(spec, {"kind": kind, "model": init, "data": str(data), "train": dataclasses.asdict(tcfg),
                      "out": str(out)})
    cmd = launch_command(tcfg, spec, accelerate_config=accelerate_file(tcfg, out))
    log.info("training phase (%d process%s): %s", world_size(tcfg), "es" * (world_size(tcfg) > 1), shlex.join(cmd))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(cmd, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"training phase failed (exit {proc.returncode}): {shlex.join(cmd)}")
    stats_path = out / f"{kind}_stats.json"
    if not stats_path.is_file():
        raise RuntimeError(f"training phase exited 0 but wrote no {stats_path.name}: {shlex.join(cmd)}")
    stats = json.loads(stats_path.read_text())
    if stats.get("world_size") != world_size(tcfg):
        raise RuntimeError(f"training phase ran {stats.get('world_size')} process(es), configured "
                           f"{world_size(tcfg)} ({tcfg.launcher}): {shlex.join(cmd)}")
    return stats


def train_kind(kind: str, init: str, rows: list[dict[str, Any]], tcfg: TrainConfig, out: Path) -> dict[str, Any]:
    from starloop.loop import train

    if kind == "sft":
        return train.train_sft(init, rows, tcfg, out)
    if kind == "dpo":
        return train.train_dpo(init, rows, tcfg, out)
    raise ValueError(f"unknown training kind {kind!r}")


def _init_distributed(tcfg: TrainConfig) -> None:
    """Join the process group before the model is built.

    ZeRO-3 partitions parameters while ``from_pretrained`` builds the model, and DeepSpeed checks
    the batch size against the world size at that moment: the group must exist by then.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return
    if tcfg.deepspeed or os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() == "true":
        import deepspeed

        deepspeed.init_distributed(dist_backend="nccl" if _cuda() else "gloo", verbose=False)


def _deepspeed_name(tcfg: TrainConfig) -> str | None:
    """The DeepSpeed config the phase ran with (from train.deepspeed or the accelerate config)."""
    path = tcfg.deepspeed or os.environ.get("ACCELERATE_DEEPSPEED_CONFIG_FILE")
    return Path(path).name if path else None


def _group_size() -> int:
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    spec = json.loads(Path(argv[0]).read_text())
    tcfg = build(TrainConfig, spec["train"])
    out = Path(spec["out"])
    _init_distributed(tcfg)
    stats = train_kind(spec["kind"], spec["model"], read_jsonl(spec["data"]), tcfg, out)
    if int(os.environ.get("RANK", "0")) == 0:
        # The size of the group the trainer really ran in, not what the launcher was asked for.
        stats.update(world_size=_group_size(), launcher=tcfg.launcher, num_machines=tcfg.num_machines,
                     deepspeed=_deepspeed_name(tcfg))
        write_json(out / f"{spec['kind']}_stats.json", stats)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    main()
