"""starloop as an installed package: a wheel built from this tree, installed without dependencies into a
fresh venv that sees the project's dependencies but neither the source tree nor the editable install,
runs the demo's code paths with its shipped configs (found through package data, not the source tree)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SKIP = {".git", ".venv", "runs", "build", "dist", "__pycache__", ".pytest_cache", ".ruff_cache", "bench"}
TINY_MODEL = ["model.builtin_options.seed_levels={'2': 200}", "model.builtin_options.hidden_size=32",
              "model.builtin_options.intermediate_size=64", "model.builtin_options.num_hidden_layers=1",
              "model.builtin_options.num_attention_heads=2", "model.builtin_options.epochs=1",
              "model.builtin_options.batch_size=32", "data.eval.options={split: eval, levels: [2], per_level: 6}",
              "data.train.options={split: train, levels: [2], per_level: 6}", "sampling.backend=transformers",
              "sampling.max_tokens=16", "eval.n=2", "eval.k=[1, 2]", "runtime.progress=false"]


def _deps_view(dst: Path) -> Path:
    """This environment's installed packages, without starloop's own (editable) install."""
    dst.mkdir(parents=True)
    site = Path(sysconfig.get_paths()["purelib"])
    for entry in site.iterdir():
        name = entry.name.lower()
        if name.startswith(("starloop", "__editable__")) or name.endswith(".pth"):
            continue
        (dst / entry.name).symlink_to(entry)
    return dst


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    shutil.copytree(REPO, src, ignore=lambda d, names: [n for n in names if n in SKIP or n.endswith(".egg-info")])
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp / "dist"), str(src)], check=True, capture_output=True, text=True)
    (wheel,) = (tmp / "dist").glob("starloop-*.whl")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    # Inside the venv's prefix and named site-packages, as installed packages are (dill, which datasets uses
    # to fingerprint, pickles classes of modules elsewhere by value).
    (site / "project-deps.pth").write_text(str(_deps_view(venv / "deps" / "site-packages")) + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)],
                   check=True, capture_output=True, text=True)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env['PATH']}", STARLOOP_CACHE=str(tmp / "cache"),
               HF_HUB_OFFLINE="1", CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1")
    work = tmp / "work"  # not the source tree: nothing of it is on the path or in the working directory
    work.mkdir()
    return venv, {**env, "_CWD": str(work)}


def _run(installed, *argv: str) -> subprocess.CompletedProcess:
    venv, env = installed
    out = subprocess.run(list(argv), cwd=env["_CWD"], env={k: v for k, v in env.items() if k != "_CWD"},
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    return out


def test_wheel_imports_from_the_venv_and_ships_its_configs(installed):
    venv, _ = installed
    code = ("import starloop.loop, starloop.verifiers, starloop.sandbox, starloop.configs;"
            "from starloop.loop.config import config_file, load_config;"
            "print(starloop.loop.__file__); print(config_file('configs/deepspeed/zero3.json'));"
            "print(config_file('configs/accelerate/zero2.yaml')); print(load_config('configs/ablations/control.yaml').name);"
            "from starloop.verifiers import metrics; import os; s = metrics.evaluate_script();"
            "print(s if os.path.isfile(s) else 'missing: ' + s);"
            "import starloop, importlib.resources as r; print(starloop.__file__, starloop.__version__,"
            " r.files('starloop').joinpath('py.typed').is_file())")
    lines = _run(installed, str(venv / "bin" / "python"), "-c", code).stdout.split()
    assert all(line.startswith(str(venv)) for line in lines[:3]), lines
    assert lines[3] == "demo-control"
    assert lines[4].startswith(str(venv)) and lines[4].endswith("starloop_verifier.py"), lines  # the evaluate metric
    assert lines[5].startswith(str(venv)) and lines[6] != "0+unknown" and lines[7] == "True", lines  # the API
    out = _run(installed, "starloop", "--version").stdout
    assert out.startswith("starloop ")


def test_wheel_runs_verifiers_and_a_tiny_demo(installed):
    out = _run(installed, "starloop", "verifiers").stdout
    for name in ("math", "code", "arithmetic"):  # arithmetic comes in through the entry-point group
        assert name in out
    sets = [a for o in TINY_MODEL for a in ("--set", o)]
    _run(installed, "starloop", "run", "--iterations", "0", "--run-dir", "run", *sets)
    _, env = installed
    run = Path(env["_CWD"]) / "run"
    assert (run / "metrics.jsonl").read_text().count("\n") == 1 and (run / "report.md").exists()
    # A shipped config by name, extending another shipped config, from a directory without configs/.
    _run(installed, "starloop", "run", "configs/ablations/no_rationalization.yaml", "--iterations", "0", "--run-dir",
         "run-abl", *sets)
    assert (Path(env["_CWD"]) / "run-abl" / "config.yaml").read_text().startswith("name: demo-no-rationalization")
