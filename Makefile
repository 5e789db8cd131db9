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

.PHONY: setup setup-audio setup-text setup-ray setup-tensorboard test reproduce bench docs

# Accelerators: `make setup GPU=cuda` (Linux x86_64) adds the CUDA libraries of the pinned TensorFlow. On macOS arm64
# the pinned TensorFlow installs from requirements.txt and runs on the CPU: no tensorflow-metal release supports it
# (the newest, 1.2.0, documents TensorFlow 2.18 at most), so GPU=metal is refused rather than installing a plugin
# that fails to load. `mser env` shows what TensorFlow sees.
GPU ?=
TF_PIN := $(shell sed -n 's/^tensorflow==\([^ ]*\).*/\1/p' requirements.txt)

setup: $(VENV)/.installed $(if $(filter cuda,$(GPU)),$(VENV)/.installed-cuda,)
ifneq ($(filter-out cuda,$(GPU)),)
	@echo "error: GPU=$(GPU) is not supported: use GPU=cuda on Linux x86_64; on a Mac the pinned TensorFlow $(TF_PIN) runs on the CPU, as no tensorflow-metal release supports it (README, 'Platforms')" >&2; exit 2
endif

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -r requirements.txt
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

reproduce: setup
	$(BIN)/mser reproduce $(if $(QUICK),--quick,)

bench: setup
	$(BIN)/mser bench multimodal-seed multimodal --repeats 3

# docs/results.md from reports/results.md (what `make reproduce` wrote): the published tables never drift.
docs: setup
	$(BIN)/mser docs results
