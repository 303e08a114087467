# tailboard: `make demo` trains a few runs and serves them; `make test` runs the whole suite.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# Two stamps: `make demo` installs what the demo runs (the demo extra), `make test` adds the rest (the
# dev extra) on top, so that neither installs again what the other did.
DEMO_STAMP := $(VENV)/.installed-demo
STAMP      := $(VENV)/.installed
# torch's CPU wheels, for a machine where pip's own places (find-links, indexes) hold no pinned torch:
# PyPI's Linux torch is the CUDA build, several GB.
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
LOGDIR ?= demo-logs
PORT   ?= 6007

.PHONY: venv chromium test test-py test-js test-containers demo bench lint fuzz clean screenshots

venv: $(STAMP)

# A current pip: the one a venv starts with installs the demo's set about three times as slowly.
$(PY):
	@echo "creating $(VENV) ($(PYTHON) -m venv) and upgrading its pip..."
	@$(PYTHON) -m venv $(VENV)
	@$(PIP) install -q --upgrade pip

# torch first and alone, from a local CPU wheel when pip can find one, else from the CPU index: left
# to the resolver with the rest, an unpinned torch is the CUDA build. --no-compile: byte-compiling
# all of torch and scipy at install took 40 s of the demo's first minute; Python compiles the modules
# the demo imports when it first imports them. The build backend's deprecation notices are for
# maintainers (`make test` shows them), not for a first run.
DEMO_PIP := $(PIP) install -q --no-compile -c constraints.txt
$(DEMO_STAMP): pyproject.toml constraints.txt | $(PY)
	@echo "installing torch (CPU wheel, version from constraints.txt, about 190 MB)..."
	@$(DEMO_PIP) --no-deps --no-index torch 2>/dev/null \
		|| $(DEMO_PIP) --extra-index-url $(TORCH_CPU_INDEX) torch
	@echo "installing tailboard (editable) with the sidecar extra, and scikit-learn for the demo..."
	@PYTHONWARNINGS=ignore $(DEMO_PIP) -e '.[demo]'
	@touch $@

$(STAMP): $(DEMO_STAMP)
	@echo "installing the test set (dev extra: tensorboard, lightning, transformers, playwright, mypy...)..."
	@$(PIP) install -q -c constraints.txt -e '.[dev]'
	@touch $@

# Debian's Chromium for the browser tests (Playwright's own download does not work everywhere).
chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium >/dev/null; \
	fi

test: venv chromium test-js test-py test-containers

test-py: venv
	$(PY) -m pytest -q -m "not containers"

# The images, compose file and manifests run for real with podman (docs/deploy.md); minutes.
test-containers: venv
	@if ! command -v podman >/dev/null 2>&1; then \
		echo "test-containers: skipped: no podman on this machine (docker/ is still checked by test-py)"; \
	elif [ -z "$$CTR_BASE" ] && ! podman image exists docker.io/library/python:3.11-slim 2>/dev/null; then \
		echo "test-containers: skipped: no base image (set CTR_BASE to a local Python base image, or pull python:3.11-slim)"; \
	else \
		$(PY) -m pytest -q -m containers tests/test_deploy.py; \
	fi

test-js:
	node --test viewer/tests/

# Only the demo extra: the test set (dev extra) is `make test`'s.
demo: $(DEMO_STAMP)
	@$(PY) examples/demo.py --logdir $(LOGDIR) --port $(PORT)

# docs/img/*.png made again from real logs, the sidecar and Chromium (docs/screenshots.py).
screenshots: venv chromium
	$(PY) docs/screenshots.py

# Benchmarks: each runs tailboard beside the peer it is compared with and prints ratios
# (figures in docs/benchmarks.md). Loopback only; each stops by itself.
bench: venv
	$(PY) bench/writer.py
	$(PY) bench/latency_follow.py
	$(PY) bench/tail_read.py
	$(PY) bench/ingest.py
	$(PY) bench/jsonl_decode.py
	$(PY) bench/query.py
	$(PY) bench/latency.py
	$(PY) bench/latency_inputs.py
	$(PY) bench/fanout.py
	$(PY) bench/hostile.py
	$(PY) bench/loop_stall.py
	$(PY) bench/viewer.py
	$(PY) bench/gpu.py

# The property tests with fresh random cases (make test draws fixed ones): run it now and then, and
# keep any case it finds as an @example of its test.
fuzz: venv
	TAILBOARD_HYPOTHESIS=fuzz $(PY) -m pytest -q $$(grep -l "@given" tests/test_*.py)

lint: venv
	$(PY) -m ruff check writer sidecar tests bench examples
	$(PY) -m mypy writer sidecar

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
