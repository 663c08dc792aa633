"""Sampler replicas on a real two-node Ray cluster, started by the test on this machine, on loopback only.

The module's fixture starts a Ray head and a second node (``ray start``: ``--node-ip-address 127.0.0.1``,
one CPU and a resource naming each node, dashboard and usage stats off) inside a network namespace of
its own that holds nothing but the loopback interface, and joins it as the driver (this process's main
thread moves into the namespace for the module, and back at its end). The cluster's processes are the
namespace's processes: the fixture kills exactly those. The namespace is what keeps Ray on loopback:
Ray turns a loopback ``--node-ip-address`` into the machine's outward address whenever the machine has
one (its ``resolve_ip_for_localhost``); in the namespace there is none, and the tests check that every
socket there, listening or connected, is on 127.0.0.1.

Checked on that cluster, with the transformers backend and a tiny model: 2 replicas, one per node, give
the samples of 1 local replica (sampled, then greedy); a rerun samples only a missing shard; a replica
killed mid-shard is retried and the result is still the same; an address without a cluster is a
one-line error. Needs Ray (``pip install 'starloop[ray]'``, in the dev extra) and root (a namespace).
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import fcntl
import ipaddress
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import psutil
import pytest

from starloop.loop.config import ConfigError, RuntimeConfig, load_config
from starloop.loop.records import GenParams, SampleRequest, sample_to_row
from starloop.loop.runtime.processes import LOCAL, ChildFailed
from starloop.loop.runtime.ray_executor import RayExecutor, executor_for
from starloop.loop.runtime.rundir import Parts, RunDir
from starloop.loop.runtime.sampling import Sampling, sample_here, sample_shard
from starloop.loop.runtime.shards import ShardError, sample_sharded
from starloop.verifiers.records import Problem

CPU_ENV = {"CUDA_VISIBLE_DEVICES": "", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1",
           "RAY_USAGE_STATS_ENABLED": "0"}
PROBLEMS = [Problem(id=f"p{i}", task="math", prompt=f"{i * 7 % 23}+{i}{'-1' * (i % 4)}", answer="0") for i in range(10)]
PROMPTS = [f"Q: {p.prompt}\nA: " for p in PROBLEMS]
CLONE_NEWNET, SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x40000000, 0x8913, 0x8914, 0x1


@pytest.fixture(autouse=True)
def _cpu_env(monkeypatch):
    for k, v in CPU_ENV.items():
        monkeypatch.setenv(k, v)


# ---------------------------------------------------------------------------------------------- the cluster


def _enter_loopback_namespace() -> int:
    """Move this (the main) thread, and so every process it starts from now on, into a new network namespace
    with its loopback interface up; returns a handle on the namespace it leaves."""
    libc = ctypes.CDLL(None, use_errno=True)
    old = os.open("/proc/self/ns/net", os.O_RDONLY)
    if libc.unshare(CLONE_NEWNET) != 0:
        os.close(old)
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET)")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        flags = struct.unpack("16sH22x", fcntl.ioctl(s, SIOCGIFFLAGS, struct.pack("16sH22x", b"lo", 0)))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH22x", b"lo", flags | IFF_UP))
    return old


def _leave_namespace(old: int) -> None:
    if ctypes.CDLL(None, use_errno=True).setns(old, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "setns")
    os.close(old)


def _namespace_processes(ns: str) -> list[psutil.Process]:
    out = []
    for p in psutil.process_iter():
        with contextlib.suppress(OSError):
            if p.pid != os.getpid() and os.readlink(f"/proc/{p.pid}/ns/net") == ns:
                out.append(p)
    return out


def _ray_cli(env: dict[str, str], *args: str) -> None:
    ray = shutil.which("ray", path=str(Path(sys.executable).parent)) or shutil.which("ray")
    res = subprocess.run([ray, *args], env=env, capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, f"ray {' '.join(args)}:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"


@dataclasses.dataclass
class Cluster:
    address: str
    executor: RayExecutor
    nodes: dict[str, str]
    """Node id -> the resource naming it (node_a: the head, node_b: the second node)."""
    namespace: str


@pytest.fixture(scope="module")
def cluster():
    pytest.importorskip("ray")
    if os.geteuid() != 0:
        pytest.skip("the cluster runs in a network namespace of its own, which needs root")
    old = _enter_loopback_namespace()
    ns = os.readlink("/proc/self/ns/net")
    temp = tempfile.mkdtemp(prefix="slray-", dir="/tmp")  # short: Ray's socket paths must fit in 107 characters
    try:
        assert [name for _, name in socket.if_nameindex()] == ["lo"]
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = {**os.environ, **CPU_ENV}
        node = ["--node-ip-address", "127.0.0.1", "--num-cpus", "1", "--object-store-memory", str(100 * 2**20),
                "--disable-usage-stats", "--temp-dir", temp]
        _ray_cli(env, "start", "--head", "--port", str(port), "--include-dashboard=false",
                 "--resources", '{"node_a": 1}', *node)
        _ray_cli(env, "start", "--address", f"127.0.0.1:{port}", "--resources", '{"node_b": 1}', *node)
        import ray

        executor = RayExecutor(f"127.0.0.1:{port}")
        executor.connect()
        nodes = {n["NodeID"]: next(r for r in n["Resources"] if r in ("node_a", "node_b"))
                 for n in ray.nodes() if n["Alive"]}
        assert sorted(nodes.values()) == ["node_a", "node_b"]
        assert {n["NodeManagerAddress"] for n in ray.nodes()} == {"127.0.0.1"}
        yield Cluster(f"127.0.0.1:{port}", executor, nodes, ns)
    finally:
        if "ray" in sys.modules:
            sys.modules["ray"].shutdown()
        procs = _namespace_processes(ns)
        for p in procs:
            with contextlib.suppress(psutil.Error):
                p.kill()
        psutil.wait_procs(procs, timeout=30)
        _leave_namespace(old)
        shutil.rmtree(temp, ignore_errors=True)


def _assert_loopback_only(ns: str) -> None:
    """Every TCP/UDP socket in the namespace (the cluster's, the driver's, the replicas') is on 127.0.0.1."""
    assert os.readlink("/proc/self/ns/net") == ns
    conns = psutil.net_connections(kind="inet")
    listening = [c for c in conns if c.status == psutil.CONN_LISTEN]
    assert listening and conns
    for c in conns:
        for addr in filter(None, (c.laddr, c.raddr)):
            ip = ipaddress.ip_address(addr.ip)
            ip = getattr(ip, "ipv4_mapped", None) or ip
            assert ip == ipaddress.ip_address("127.0.0.1"), c
    assert {c.pid for c in listening} <= {p.pid for p in _namespace_processes(ns)} | {os.getpid()}


def _request(model: str, params: GenParams, seed: int = 11) -> SampleRequest:
    return SampleRequest(model, PROBLEMS, PROMPTS, dataclasses.replace(params, seed=seed), iteration=1)


def _configs():
    base = ["sampling.backend=transformers", "sampling.batch_size=4", "runtime.progress=false"]
    return load_config(None, base).sampling, load_config(None, [*base, "sampling.data_parallel_size=2"]).sampling


def _rows(samples) -> list[dict]:
    return [sample_to_row(s) for s in samples]


def _runs(log: Path) -> list[tuple[str, str]]:
    """(node id, node address) of each run of a replica, from the headers of its log."""
    heads = [line.split(" on node ", 1)[1].split(":", 1)[0] for line in log.read_text().splitlines()
             if line.startswith("=== ")]
    return [(h.split(" (")[0], h.split(" (")[1].split(",")[0]) for h in heads]


# ---------------------------------------------------------------------------------------------- on the cluster


def test_two_nodes_sample_what_one_replica_samples_and_a_rerun_only_the_missing_shard(cluster, tiny_model, tmp_path):
    one, two = _configs()
    params = GenParams(n=2, temperature=1.0, max_tokens=8)
    want = _rows(sample_here(one, 0, _request(tiny_model, params), False))
    rd = RunDir(tmp_path / "run")
    with Sampling(two, engine_seed=0, parts=lambda key: rd.parts("shards", key), executor=cluster.executor) as s:
        assert _rows(s.sample(_request(tiny_model, params))) == want
    _assert_loopback_only(cluster.namespace)
    (work,) = (tmp_path / "run" / "shards").iterdir()
    runs = {name: _runs(work / f"{name}.log") for name in ("shard-00", "shard-01")}
    assert all(len(r) == 1 for r in runs.values())
    # One replica per node: each ran on its own node of the cluster, at 127.0.0.1.
    assert sorted(cluster.nodes[node] for (node, _), in runs.values()) == ["node_a", "node_b"]
    assert {ip for (_, ip), in runs.values()} == {"127.0.0.1"}

    (work / "shard-01.jsonl").unlink()
    kept = (work / "shard-00.jsonl").stat().st_mtime_ns
    with Sampling(two, engine_seed=0, parts=lambda key: rd.parts("shards", key), executor=cluster.executor) as s:
        assert _rows(s.sample(_request(tiny_model, params))) == want
    assert (work / "shard-00.jsonl").stat().st_mtime_ns == kept
    assert (len(_runs(work / "shard-00.log")), len(_runs(work / "shard-01.log"))) == (1, 2)


HELD = '''
import os
import time
from pathlib import Path

from starloop.loop.fileio import write_jsonl
from starloop.loop.records import sample_to_row
from starloop.loop.runtime.sampling import sample_here


def sample(cfg, engine_seed, request, out, load=None):
    """The real replica, held mid-shard on the shard of p0 while HOLD_FLAG exists: its samples drawn, its
    pid written beside its shard, its rows not yet written."""
    samples = sample_here(cfg, engine_seed, request, False, load)
    Path(out).with_suffix(".pid").write_text(str(os.getpid()))
    while any(p.id == "p0" for p in request.problems) and Path(os.environ["HOLD_FLAG"]).exists():
        time.sleep(0.1)
    return write_jsonl(out, (sample_to_row(s) for s in samples))
'''


def test_a_replica_killed_mid_shard_is_retried_and_the_samples_are_the_same(cluster, tiny_model, tmp_path,
                                                                          monkeypatch):
    import importlib

    (tmp_path / "held_sampler.py").write_text(textwrap.dedent(HELD))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])))
    monkeypatch.syspath_prepend(str(tmp_path))
    hold = tmp_path / "hold"
    hold.touch()
    monkeypatch.setenv("HOLD_FLAG", str(hold))
    shard_fn = importlib.import_module("held_sampler").sample

    one, two = _configs()
    params = GenParams(n=1, temperature=0.0, max_tokens=8)
    want = _rows(sample_here(one, 0, _request(tiny_model, params), False))
    killed: dict[str, object] = {}

    def kill_the_held_replica() -> None:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not list((tmp_path / "run" / "shards").glob("*/shard-00.pid")):
            time.sleep(0.1)
        (pid_file,) = (tmp_path / "run" / "shards").glob("*/shard-00.pid")
        proc = psutil.Process(int(pid_file.read_text()))
        killed.update(pid=proc.pid, parent=" ".join(proc.parent().cmdline()),
                      namespace=os.readlink(f"/proc/{proc.pid}/ns/net"))
        os.kill(proc.pid, signal.SIGKILL)
        hold.unlink()

    killer = threading.Thread(target=kill_the_held_replica, daemon=True)
    killer.start()
    rd = RunDir(tmp_path / "run")
    with Sampling(two, engine_seed=0, parts=lambda key: rd.parts("shards", key), executor=cluster.executor,
                  shard_fn=shard_fn) as s:
        got = _rows(s.sample(_request(tiny_model, params)))
    killer.join(timeout=10)
    assert killed["namespace"] == cluster.namespace and "ray::" in killed["parent"]  # a Ray task's child
    assert got == want  # greedy, killed and retried: still the samples of one local replica
    (work,) = (tmp_path / "run" / "shards").iterdir()
    first, retry = _runs(work / "shard-00.log")
    (other,) = _runs(work / "shard-01.log")
    assert first[0] != other[0]  # the two replicas ran on the two nodes
    assert {first[0], retry[0], other[0]} <= set(cluster.nodes)
    _assert_loopback_only(cluster.namespace)


def test_killing_a_handle_ends_its_command(cluster, tmp_path):
    """What an interrupted run does to the replicas still running: their tasks are cancelled and their
    commands killed."""
    import pickle

    from starloop.loop.runtime.processes import ChildJob
    from starloop.loop.runtime.ray_executor import FAILED

    job = ChildJob(time.sleep, (600,), tmp_path, "sleeper", log=True)
    job.spec.write_bytes(pickle.dumps((job.fn, job.args)))
    handle = cluster.executor.start(job)
    deadline, child = time.monotonic() + 120, None
    while child is None and time.monotonic() < deadline:
        child = next((p for p in _namespace_processes(cluster.namespace)
                      if str(job.spec) in " ".join(p.cmdline())), None)
        time.sleep(0.2)
    assert child is not None and handle.poll() is None
    handle.kill()
    assert handle.wait() == FAILED
    psutil.wait_procs([child], timeout=10)
    assert not child.is_running()
    assert "TaskCancelledError" in job.log_file.read_text()


def test_an_address_without_a_cluster_is_a_one_line_error(cluster, tiny_model, tmp_path):
    with socket.socket() as s:  # a port of the namespace that nothing listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    res = subprocess.run([sys.executable, "-m", "starloop.loop.cli", "sample", "--model", tiny_model,
                          "--output", str(tmp_path / "out.jsonl"), "--set", "runtime.executor=ray",
                          "--set", f"runtime.ray_address=127.0.0.1:{closed}"],
                         capture_output=True, text=True, timeout=180)
    assert res.returncode == 2, res.stderr[-3000:]
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: runtime.ray_address=127.0.0.1:{closed}: no Ray cluster answers there"), last
    assert not (tmp_path / "out.jsonl").exists()


def test_every_socket_of_the_cluster_is_on_loopback(cluster):
    _assert_loopback_only(cluster.namespace)


# ---------------------------------------------------------------------------------------------- without one


def test_ray_settings_are_checked():
    assert executor_for(RuntimeConfig()) is LOCAL
    cfg = load_config(None, ["runtime.executor=ray", "runtime.ray_address=10.0.0.7:6379"]).runtime
    assert (cfg.executor, cfg.ray_address) == ("ray", "10.0.0.7:6379")
    with pytest.raises(ConfigError, match="runtime.ray_address=h:1 is set but runtime.executor=local"):
        load_config(None, ["runtime.ray_address=h:1"])
    with pytest.raises(ConfigError, match="runtime.ray_address: expected auto or HOST:PORT"):
        load_config(None, ["runtime.executor=ray", "runtime.ray_address=ray://h:1"])
    with pytest.raises(ConfigError, match="runtime.executor: expected one of"):
        load_config(None, ["runtime.executor=slurm"])


class _Refused:
    def wait(self) -> int:
        return 1

    def poll(self) -> int:
        return 1

    def kill(self) -> None:
        pass


class _Remote:
    """An executor whose jobs may run elsewhere: records them and runs none."""

    remote = True

    def __init__(self):
        self.jobs = []

    def start(self, job):
        self.jobs.append(job)
        return _Refused()


def test_a_remote_executor_places_the_replicas_devices(tmp_path, monkeypatch):
    """Replicas of a remote executor carry their GPU count, not this machine's CUDA_VISIBLE_DEVICES; jobs outside
    a run go to a folder of the working directory (shared with the nodes), not this machine's /tmp."""
    cfg = load_config(None, ["sampling.data_parallel_size=2", "sampling.tensor_parallel_size=2"]).sampling
    remote = _Remote()
    with pytest.raises(ShardError):
        sample_sharded(_request("m", GenParams(n=1)), cfg, 0, Parts(tmp_path / "parts"), sample_shard,
                       executor=remote, retries=0)
    assert [(j.env, j.gpus) for j in remote.jobs] == [({}, 2), ({}, 2)]

    monkeypatch.chdir(tmp_path)
    single = load_config(None, ["sampling.tensor_parallel_size=2"]).sampling
    with pytest.raises(ChildFailed), Sampling(single, engine_seed=0, isolate=True, executor=remote) as s:
        s.sample(_request("m", GenParams(n=1)))
    job = remote.jobs[-1]
    assert job.gpus == 2 and Path(job.dir).parent == tmp_path
