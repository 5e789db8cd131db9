# Two commands do everything on a fresh clone: `make reproduce` (the main job) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The test modules run in $(TEST_WORKERS) processes (pytest-xdist); each module stays in one process, so its
# module-scoped fixtures are built once. TEST_WORKERS=0 runs everything in this process.
TEST_WORKERS ?= 2
PYTEST_ARGS ?=

export TF_CPP_MIN_LOG_LEVEL ?= 3
export TF_ENABLE_ONEDNN_OPTS := 1
export PYTHONHASHSEED ?= 0

.PHONY: setup setup-audio setup-text setup-ray setup-tensorboard test test-metal-stack reproduce bench docs

# Accelerators: `make setup GPU=cuda` (Linux x86_64) adds the CUDA libraries of the pinned TensorFlow.
# `make setup GPU=metal` (macOS arm64 only) builds $(VENV) from requirements-metal.txt instead: the newest TensorFlow
# the last tensorflow-metal release loads on, with the plugin. Later `make` commands keep that stack (its stamp says
# so); `make setup GPU=` goes back to requirements.txt. `mser env --check-device` compares the GPU with the CPU.
GPU ?= $(if $(wildcard $(VENV)/.installed-metal),metal,)
TF_PIN := $(shell sed -n 's/^tensorflow==\([^ ]*\).*/\1/p' requirements.txt)
METAL_TF_PIN := $(shell sed -n 's/^tensorflow==\([^ ]*\).*/\1/p' requirements-metal.txt)
ifeq ($(GPU),metal)
ifneq ($(shell uname -sm),Darwin arm64)
$(error GPU=metal needs macOS on Apple silicon, and this is $(shell uname -sm): tensorflow-metal has no wheel here; use `make setup` (CPU) or, on Linux x86_64 with an NVIDIA GPU, GPU=cuda)
endif
endif
STACK := $(VENV)/$(if $(filter metal,$(GPU)),.installed-metal,.installed)

setup: $(STACK) $(if $(filter cuda,$(GPU)),$(VENV)/.installed-cuda,)
ifneq ($(filter-out cuda metal,$(GPU)),)
	@echo "error: GPU=$(GPU) is not supported: use GPU=cuda on Linux x86_64 or GPU=metal on macOS arm64 (README, 'Platforms')" >&2; exit 2
endif

# Each stack clears the other's packages: the two pin different TensorFlow, numpy and tensorflow-metal.
$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(if $(wildcard $(VENV)/.installed-metal),--clear,) $(VENV)
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

$(VENV)/.installed-metal: requirements-metal.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(not (3, 9) <= sys.version_info[:2] <= (3, 12))' || { echo "error: GPU=metal \
	needs Python 3.9 to 3.12 (tensorflow-metal 1.2.0 has wheels for no other): e.g. PYTHON=python3.11" >&2; exit 2; }
	$(PYTHON) -m venv $(if $(wildcard $(VENV)/.installed),--clear,) $(VENV)
	$(BIN)/pip install --quiet -r requirements-metal.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

$(VENV)/.installed-cuda: $(VENV)/.installed
	@if [ "$$(uname -s)" != Linux ]; then echo "error: GPU=cuda needs Linux (this is $$(uname -s))" >&2; exit 2; fi
	$(BIN)/pip install --quiet -c requirements.txt "tensorflow[and-cuda]==$(TF_PIN)"
	touch $@

# Optional: openSMILE audio features (`mser features audio`) and the tests that use them.
setup-audio: setup
	$(BIN)/pip install --quiet -r requirements-audio.txt

# Optional: sentence-transformer text features (`mser features text --encoder sentence-transformer`). torch comes
# first, pinned to the local CPU build; the constraints keep every pin of requirements.txt.
setup-text: setup
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -c requirements.txt -r requirements-text.txt

# Optional: run experiments on a Ray cluster (`mser run --ray ADDRESS`, `run_many(..., backend="ray")`).
setup-ray: setup
	$(BIN)/pip install --quiet -c requirements.txt -r requirements-ray.txt

# Optional: TensorBoard logs of training (`mser run --tensorboard DIR`, `run_many(..., tensorboard=DIR)`); then
# `$(BIN)/tensorboard --logdir DIR` shows them.
setup-tensorboard: setup
	$(BIN)/pip install --quiet -c requirements.txt -r requirements-tensorboard.txt

# pytest exits 5 when it collects nothing: that is a broken suite, not a pass.
test: setup
	@$(BIN)/python -m pytest $(if $(filter-out 0,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadscope,) $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests" >&2; exit 1; fi; exit $$rc

# The TensorFlow test modules on the GPU=metal stack without the plugin (Linux has no tensorflow-metal wheel), in
# their own environment $(METAL_VENV): the suite must work on TensorFlow $(METAL_TF_PIN) too. .ci/run runs it.
METAL_VENV ?= .venv-metal
METAL_TESTS ?= tests/test_layers.py tests/test_architectures.py tests/test_training.py tests/test_experiments.py \
	tests/test_traced_models.py tests/test_notebooks.py tests/test_device_check.py

$(METAL_VENV)/.installed: requirements-metal.txt pyproject.toml
	$(PYTHON) -m venv $(METAL_VENV)
	grep -v '^tensorflow-metal==' requirements-metal.txt > $(METAL_VENV)/requirements.txt
	$(METAL_VENV)/bin/pip install --quiet -r $(METAL_VENV)/requirements.txt
	$(METAL_VENV)/bin/pip install --quiet --no-deps -e .
	touch $@

test-metal-stack: $(METAL_VENV)/.installed
	@$(METAL_VENV)/bin/python -c 'import tensorflow as tf; print(f"TensorFlow {tf.__version__} (requirements-metal.txt, without tensorflow-metal)")'
	@$(METAL_VENV)/bin/python -m pytest $(if $(filter-out 0,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadscope,) \
	  $(PYTEST_ARGS) $(METAL_TESTS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests" >&2; exit 1; fi; exit $$rc

reproduce: setup
	$(BIN)/mser reproduce $(if $(QUICK),--quick,)

bench: setup
	$(BIN)/mser bench multimodal-seed multimodal --repeats 3

# docs/results.md from reports/results.md (what `make reproduce` wrote): the published tables never drift.
docs: setup
	$(BIN)/mser docs results
