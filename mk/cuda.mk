# CUDA kernels (issue 10), included from the Makefile: `make test` compiles every .cu file of
# cuda_kernels/ with this machine's nvcc (syntax and type checks; no GPU needed). Without nvcc it
# says so and goes on (tests/kernels skips its nvcc tests with the same message).
NVCC ?= $(shell command -v nvcc || { [ -x /usr/local/cuda/bin/nvcc ] && echo /usr/local/cuda/bin/nvcc; })
CUDA_SOURCES := $(wildcard cuda_kernels/*.cu)
CUDA_CHECK_DIR := $(or $(TMPDIR),/tmp)/spatialvid-cuda-check

.PHONY: cuda-compile-check
cuda-compile-check:
	@if [ -z "$(NVCC)" ]; then echo "cuda-compile-check: nvcc not found, .cu files not compiled"; exit 0; fi; \
	mkdir -p $(CUDA_CHECK_DIR); \
	for f in $(CUDA_SOURCES); do \
		echo "nvcc -c $$f"; \
		$(NVCC) -std=c++17 -arch=sm_80 --Werror all-warnings -Xcompiler -Wall -c $$f \
			-o $(CUDA_CHECK_DIR)/$$(basename $$f .cu).o || exit 1; \
	done

test-deps: cuda-compile-check
