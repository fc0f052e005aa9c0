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

$(TRITON_VENV)/.installed: mk/triton.mk
	[ -x $(TRITON_VENV)/bin/python ] || $(PYTHON) -m venv $(TRITON_VENV)
	$(TRITON_PIP) install -q --upgrade pip
	$(TRITON_PIP) install -q "nvidia-pytriton>=0.5" "numpy<2" onnxruntime torch==2.13.0 \
		transformers safetensors opencv-python-headless pyyaml
	$(TRITON_PIP) install -q --no-deps "rapidocr_onnxruntime==1.4.4"
	touch $@

test-deps: triton-venv

# The client library in the main virtualenv (the `triton` extra of pyproject.toml).
.PHONY: triton-client
triton-client: $(VENV)/.triton-client

$(VENV)/.triton-client: $(VENV)/.installed
	$(PIP) install -q "tritonclient[http,grpc]>=2.40"
	touch $@

test-deps: triton-client
