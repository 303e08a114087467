# tailboard: `make demo` trains a few runs and serves them; `make test` runs the whole suite.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
LOGDIR ?= demo-logs
PORT   ?= 6007

.PHONY: venv chromium test test-py test-js test-containers demo bench lint clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

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

demo: venv
	$(PY) examples/demo.py --logdir $(LOGDIR) --port $(PORT)

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

lint: venv
	$(PY) -m ruff check writer sidecar tests bench examples
	$(PY) -m mypy writer sidecar

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
