# The two commands of the README:
#   make lab    install into .venv and open JupyterLab on notebooks/
#   make test   install into .venv and run the whole test suite (what .ci/run calls)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: lab test lint unit notebooks bench

$(STAMP): pyproject.toml constraints.txt labextension/package.json $(wildcard labextension/src/*.ts labextension/style/*)
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -c constraints.txt torch==2.13.0
	$(PY) -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[lab,test]"
	touch $(STAMP)

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/

test: lint unit notebooks

# ruff (lint rules and formatting), mypy (types) and lint-imports (the layering): pyproject.toml
lint: $(STAMP)
	$(VENV)/bin/ruff check workbench tests bench
	$(VENV)/bin/ruff format --check workbench tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

unit: $(STAMP)
	bash tests/browser/ensure_chromium.sh
	$(PY) -m pytest tests -p no:cacheprovider --durations=15

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
