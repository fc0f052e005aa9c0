# spatialvid: `make demo` sets everything up and runs the main job on real
# footage; `make test` runs the test suite. Both work on a fresh Debian machine.

SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEMO_OUT ?= output/demo
PYTEST_ARGS ?=

.PHONY: demo test setup system-deps venv test-deps clean

demo: setup
	$(VENV)/bin/spatialvid run "$$($(PY) -c 'from samples import bikes_path; print(bikes_path())')" \
		--out $(DEMO_OUT) --config configs/demo.yaml
	@echo "dataset written to $(DEMO_OUT) (metadata.csv, clips/, annotations/)"

test: setup test-deps
	$(PY) -m pytest $(PYTEST_ARGS)

setup: system-deps venv

# Debian packages: ffmpeg (cutting, probing, VMAF motion), opencv-doc (sample
# footage vtest.avi / Megamind.avi), opencv-data (BRISQUE model files), redis,
# chromium (the viewer's browser tests drive it through Playwright).
system-deps:
	@missing=""; \
	command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || missing="$$missing ffmpeg"; \
	[ -f /usr/share/doc/opencv-doc/examples/data/vtest.avi ] || missing="$$missing opencv-doc"; \
	[ -d /usr/share/opencv4 ] || missing="$$missing opencv-data"; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

venv: $(VENV)/.installed

# Installs come from the lock (requirements/main.lock: every package pinned with its hashes, generated from
# pyproject.toml by `make lock`), never from whatever PyPI serves today. --no-deps: the lock is complete, and
# it leaves out opencv-python, which rapidocr asks for and which would shadow the contrib build (cv2.quality).
$(VENV)/.installed: requirements/main.lock pyproject.toml
	[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q --require-hashes --no-deps -r requirements/main.lock
	$(PIP) install -q --no-deps -e .
	touch $@

# The lock files, from pyproject.toml and requirements/triton.in. Versions already locked are kept;
# `make lock UPGRADE=1` moves every package to the newest version its bounds allow (run `make test-latest`
# first to see that they pass). torch stays on the local CPU build (requirements/overrides.txt).
TORCH_WHEELS ?= /opt/wheels
LOCK_FLAGS = --generate-hashes --python-version 3.11 --find-links $(TORCH_WHEELS) \
	--override requirements/overrides.txt --no-emit-package opencv-python $(if $(UPGRADE),--upgrade)
.PHONY: lock test-latest
lock: $(VENV)/.installed
	$(VENV)/bin/uv pip compile pyproject.toml --extra service --extra models --extra dev --extra triton \
		$(LOCK_FLAGS) -o requirements/main.lock
	$(VENV)/bin/uv pip compile requirements/triton.in $(LOCK_FLAGS) -o requirements/triton.lock

# Dependency drift, found before users find it: a throwaway venv with the newest versions pyproject.toml
# allows (not the lock), and the whole suite in it. Not part of CI; run it before `make lock UPGRADE=1`.
LATEST_VENV := .venv-latest
test-latest: system-deps test-deps
	rm -rf $(LATEST_VENV)
	$(PYTHON) -m venv $(LATEST_VENV)
	$(LATEST_VENV)/bin/pip install -q --upgrade pip
	$(LATEST_VENV)/bin/pip install -q torch==2.13.0
	$(LATEST_VENV)/bin/pip install -q --upgrade --upgrade-strategy eager -e '.[service,models,dev,triton]'
	$(LATEST_VENV)/bin/pip uninstall -q -y opencv-python opencv-python-headless || true
	$(LATEST_VENV)/bin/pip install -q --force-reinstall --no-deps "$$($(LATEST_VENV)/bin/pip show opencv-contrib-python-headless | sed -n 's/^Version: /opencv-contrib-python-headless==/p')"
	$(LATEST_VENV)/bin/pip freeze --exclude-editable > $(LATEST_VENV)/versions.txt
	@echo "newest versions: $(LATEST_VENV)/versions.txt"
	$(LATEST_VENV)/bin/python -m pytest $(PYTEST_ARGS)

# Extra things tests need beyond the venv (servers' own environments); the
# files in mk/ add their prerequisites to this target.
test-deps:

clean:
	rm -rf $(VENV) output .pytest_cache

-include mk/*.mk
