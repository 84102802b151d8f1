"""Shared test set-up: one torch thread per pytest-xdist worker, so parallel workers do not fight."""

import os

import torch

_workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
torch.set_num_threads(max(1, (os.cpu_count() or 1) // _workers))


def unavailable(reason: str, asked: bool = False):
    """A tool a test needs (SLURM, a browser) cannot be installed or started: under CI (CI=true),
    or where the test was asked for explicitly (ASKED: PALETTE_TEST_SLURM=1, PALETTE_TEST_BROWSER=1),
    that is a failure with its reason, never a quiet skip; elsewhere the test is skipped with the
    reason. A test that needs hardware the machine lacks (CUDA on the CPU CI) is no such tool: it
    stays a skipif, and benchmarks/gpu_check.sh fails where CUDA is absent."""
    import pytest

    if asked or os.environ.get("CI", "").lower() in ("true", "1", "yes"):
        pytest.fail(f"needed but unavailable: {reason}", pytrace=False)
    pytest.skip(reason)
