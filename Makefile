# Loupe: make setup | build | test | bench | demo | fixtures
SHELL := /bin/bash
APT_PACKAGES := pkg-config ocl-icd-opencl-dev opencl-headers pocl-opencl-icd clinfo libpng-dev binutils
SWIFT ?= swift
LOUPE := .build/release/loupe

.PHONY: setup build test bench demo fixtures clean

# Installs the system packages the project needs (idempotent: apt runs only when one is missing).
setup:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	else echo "setup: system packages present"; fi

build: setup
	$(SWIFT) build -c release --product loupe

# All tests. Under CI (CI=true) or LOUPE_REQUIRE_OPENCL=1, OpenCL tests fail instead of skipping
# when no OpenCL device exists.
test: setup
	@if [ "$$CI" = "true" ]; then export LOUPE_REQUIRE_OPENCL=1; fi; \
	$(SWIFT) build --build-tests && $(SWIFT) test --skip-build

# Kernel microbenchmarks on the layer shapes of VGG16, ResNet18 and MobileNetV2 (batch 1 and 8).
bench: build
	$(LOUPE) devices
	$(LOUPE) bench $(BENCH_ARGS)

demo: build
	$(LOUPE) devices
	$(LOUPE) bench --filter "conv 3x3 64->64 56x56,relu6,softmax" --batch 1

# Regenerates the PyTorch golden fixtures (needs `pip install torch`; tests never run Python).
fixtures:
	python3 tools/make_fixtures.py

clean:
	rm -rf .build
