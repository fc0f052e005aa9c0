# Triton Inference Server for model serving (issue 8), included from the Makefile.
# nvidia-pytriton ships tritonserver and its Python backend but pins numpy<2,
# so the server runs from its own virtualenv. The model.py files run the
# repository's own loaders there (services/models, services/scoring: onnxruntime,
# torch, transformers, OpenCV); rapidocr_onnxruntime comes without its
# dependencies, only for the PP-OCR detector ONNX that its wheel carries.

TRITON_VENV := .venv-triton
TRITON_PIP := $(TRITON_VENV)/bin/pip

.PHONY: triton-venv

triton-venv: $(TRITON_VENV)/.installed

# From its own lock (requirements/triton.lock, made by `make lock` from requirements/triton.in); --no-deps
# leaves out the opencv-python that rapidocr asks for (only its ONNX file is used here).
$(TRITON_VENV)/.installed: requirements/triton.lock
	[ -x $(TRITON_VENV)/bin/python ] || $(PYTHON) -m venv $(TRITON_VENV)
	$(TRITON_PIP) install -q --upgrade pip
	$(TRITON_PIP) install -q --require-hashes --no-deps -r requirements/triton.lock
	touch $@

test-deps: triton-venv
