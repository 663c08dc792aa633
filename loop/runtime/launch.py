"""The training phase: in this process, or in child processes started through ``torchrun`` /
``accelerate launch`` across processes and machines (DeepSpeed ZeRO through
``train.launch.deepspeed`` or the accelerate config).

Every launched rank runs the child-process runner's entry (``starloop.loop.runtime.processes``)
on the same pickled job, :func:`train_phase`; the trainer's own distributed setup does the rest.
Rank 0 writes ``<kind>_stats.json`` next to the saved model, with the world size the process
group really had; the driver refuses a phase that ran with fewer processes than configured (a
launcher that silently falls back to one process is an error, not a slow run).

Process counts: ``train.launch.num_processes`` is processes per machine (one per GPU), and
``train.launch.num_machines`` the number of machines. More than one machine needs a Slurm
allocation: the phase command is started once per node with ``srun`` and meets at
``MASTER_ADDR:MASTER_PORT`` (``launch/slurm.sbatch`` sets both).

On a CPU-only machine the same launchers run real multi-process jobs on gloo: ``torchrun`` as is,
``accelerate launch`` without ``--cpu`` (accelerate's ``--cpu`` runs a single process whatever
``--num_processes`` says), DeepSpeed with the torch optimizer (see ``configs/deepspeed``).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shlex
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from starloop.loop.config import ConfigError, LaunchConfig, TrainConfig, config_file
from starloop.loop.fileio import read_jsonl, write_json, write_jsonl
from starloop.loop.runtime.models import LoadOptions
from starloop.loop.runtime.processes import ChildJob, Executor, run_job
from starloop.loop.runtime.samplers import cuda_available
from starloop.loop.runtime.trainers import train_dpo, train_sft

log = logging.getLogger(__name__)

TRAINERS = {"sft": train_sft, "dpo": train_dpo}


def world_size(launch: LaunchConfig) -> int:
    """Total training processes: per machine times machines."""
    return launch.num_processes * launch.num_machines


def check_launch(launch: LaunchConfig) -> None:
    """Reject launch settings that cannot give the configured process count."""
    if launch.num_processes < 1 or launch.num_machines < 1:
        raise ConfigError(f"train.launch.num_processes and train.launch.num_machines must be >= 1, got "
                          f"{launch.num_processes} and {launch.num_machines}")
    if world_size(launch) > 1 and launch.launcher in ("inprocess", "subprocess"):
        raise ConfigError(f"train.launch.launcher={launch.launcher} runs one process; use torchrun or accelerate "
                          f"for train.launch.num_processes={launch.num_processes}, "
                          f"train.launch.num_machines={launch.num_machines}")
    if launch.num_machines > 1:
        missing = [k for k in ("SLURM_JOB_ID", "MASTER_ADDR") if k not in os.environ]
        if missing:
            raise ConfigError(f"train.launch.num_machines={launch.num_machines} needs a Slurm allocation with "
                              f"MASTER_ADDR set (launch/slurm.sbatch); missing {missing}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch_command(launch: LaunchConfig, entry: list[str], *, accelerate_config: Path | None = None) -> list[str]:
    """The command line that runs ``entry`` (a python argv: ``-m module args``) with the configured
    launcher. ``accelerate_config`` is the resolved accelerate config file (:func:`accelerate_file`)."""
    port = os.environ.get("MASTER_PORT", "29500")
    if launch.launcher == "torchrun":
        cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={launch.num_processes}",
               f"--nnodes={launch.num_machines}"]
        if launch.num_machines == 1:
            cmd.append("--standalone")
        else:
            cmd += ["--rdzv_backend=c10d", f"--rdzv_endpoint={os.environ['MASTER_ADDR']}:{port}",
                    f"--rdzv_id={os.environ.get('SLURM_JOB_ID', 'starloop')}"]
        return _per_node(launch, cmd + entry)
    if launch.launcher == "accelerate":
        total = world_size(launch)
        cmd = [sys.executable, "-m", "accelerate.commands.launch", f"--num_processes={total}",
               f"--num_machines={launch.num_machines}"]
        if accelerate_config is not None:
            cmd.append(f"--config_file={accelerate_config}")
        elif total > 1:
            cmd.append("--multi_gpu")  # plain DDP; on CPU it runs gloo processes through torch's launcher
        if launch.num_machines == 1 and total > 1:
            # accelerate's fixed default port collides with any other job on the machine.
            cmd.append(f"--main_process_port={os.environ.get('MASTER_PORT') or _free_port()}")
        if launch.num_machines > 1:
            cmd += [f"--main_process_ip={os.environ['MASTER_ADDR']}", f"--main_process_port={port}"]
            # The machine rank differs per node: srun's shell on each node fills it in.
            cmd = ["bash", "-c", 'exec "$0" "$@" --machine_rank="$SLURM_NODEID" ' + shlex.join(entry), *cmd]
            return _per_node(launch, cmd)
        return cmd + entry
    return [sys.executable, *entry]


def _per_node(launch: LaunchConfig, cmd: list[str]) -> list[str]:
    """Start ``cmd`` once on every node of the Slurm allocation (multi-machine runs only)."""
    if launch.num_machines == 1:
        return cmd
    return ["srun", f"--nodes={launch.num_machines}", "--ntasks-per-node=1", "--overlap", "--kill-on-bad-exit=1",
            *cmd]


def accelerate_file(launch: LaunchConfig, out: Path) -> Path | None:
    """The accelerate config to launch with, its DeepSpeed file path made absolute.

    Shipped accelerate configs name their DeepSpeed file as ``configs/deepspeed/...``; the launched
    processes may run anywhere, so a resolved copy is written next to the phase's files.
    """
    if not launch.accelerate_config:
        return None
    data = yaml.safe_load(config_file(launch.accelerate_config, key="train.launch.accelerate_config").read_text()) or {}
    ds = data.get("deepspeed_config") or {}
    if ds.get("deepspeed_config_file"):
        ds["deepspeed_config_file"] = str(config_file(ds["deepspeed_config_file"], key="deepspeed_config_file"))
    dst = out / "accelerate.yaml"
    dst.write_text(yaml.safe_dump(data, sort_keys=False))
    return dst


def run_training(tcfg: TrainConfig, kind: str, init: str, out: Path, *, rows: list[dict[str, Any]],
                 report_to: Sequence[str] = (), isolate: bool = False,
                 executor: Executor | None = None, load: LoadOptions | None = None) -> dict[str, Any]:
    """Train ``init`` on ``rows`` (SFT rows or DPO pairs) into ``out/model``; return stats.

    With ``isolate`` (or any launcher but ``inprocess``) training runs in child processes, so the
    driver never holds accelerator memory. Raises if the phase fails or ran with fewer processes
    than configured.
    """
    launch = tcfg.launch
    check_launch(launch)
    if launch.deepspeed:  # resolved here, once, for every rank
        tcfg = dataclasses.replace(tcfg, launch=dataclasses.replace(launch, deepspeed=str(
            config_file(launch.deepspeed, key="train.launch.deepspeed"))))
    if launch.launcher == "inprocess" and not isolate:
        return {**TRAINERS[kind](init, rows, tcfg, out, report_to, load), "world_size": 1, "launcher": "inprocess"}
    out.mkdir(parents=True, exist_ok=True)
    data = out / f"{kind}_rows.jsonl"
    write_jsonl(data, rows)
    acc = accelerate_file(launch, out)
    job = ChildJob(train_phase, (kind, init, str(data), tcfg, str(out), list(report_to), load), out, kind,
                   command=lambda entry: launch_command(launch, entry, accelerate_config=acc))
    log.info("training phase (%d process%s): %s", world_size(launch), "es" * (world_size(launch) > 1),
             shlex.join(job.argv()))
    stats = run_job(job, executor)
    if stats.get("world_size") != world_size(launch):
        raise RuntimeError(f"training phase ran {stats.get('world_size')} process(es), configured "
                           f"{world_size(launch)} ({launch.launcher}): {shlex.join(job.argv())}")
    return stats


def _init_distributed(tcfg: TrainConfig) -> None:
    """Join the process group before the model is built.

    ZeRO-3 partitions parameters while ``from_pretrained`` builds the model, and DeepSpeed checks
    the batch size against the world size at that moment: the group must exist by then.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return
    if tcfg.launch.deepspeed or os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() == "true":
        import deepspeed  # heavy, optional: deferred

        deepspeed.init_distributed(dist_backend="nccl" if cuda_available() else "gloo", verbose=False)


def _group_size() -> int:
    import torch.distributed as dist  # heavy: deferred

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def train_phase(kind: str, init: str, data: str, tcfg: TrainConfig, out: str, report_to: list[str],
                load: LoadOptions | None = None) -> dict[str, Any]:
    """One rank of the training phase (what every launched process runs); rank 0 writes the stats."""
    _init_distributed(tcfg)
    stats = TRAINERS[kind](init, read_jsonl(data), tcfg, Path(out), report_to, load)
    if int(os.environ.get("RANK", "0")) == 0:
        # The size of the group the trainer really ran in, not what the launcher was asked for.
        path = tcfg.launch.deepspeed or os.environ.get("ACCELERATE_DEEPSPEED_CONFIG_FILE")
        stats.update(world_size=_group_size(), launcher=tcfg.launch.launcher, num_machines=tcfg.launch.num_machines,
                     deepspeed=Path(path).name if path else None)
        write_json(Path(out) / f"{kind}_stats.json", stats)
    return stats
