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
	$(VENV)/bin/spatialvid run "$$($(PY) -c 'from services.samples import bikes_path; print(bikes_path())')" \
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

$(VENV)/.installed: pyproject.toml
	[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# torch is pinned to the local CPU build; an unpinned torch pulls GBs of CUDA.
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[service,models,dev]'
	# rapidocr pulls opencv-python, which shadows the contrib build (cv2.quality for BRISQUE).
	$(PIP) uninstall -q -y opencv-python opencv-python-headless || true
	$(PIP) install -q --force-reinstall --no-deps "$$($(PIP) show opencv-contrib-python-headless | sed -n 's/^Version: /opencv-contrib-python-headless==/p')"
	touch $@

# Extra things tests need beyond the venv (servers' own environments); the
# files in mk/ add their prerequisites to this target.
test-deps:

clean:
	rm -rf $(VENV) output .pytest_cache

-include mk/*.mk
