"""The local GPU lease: distinct GPUs per job, released when a job dies, a no-op under SLURM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from palette.lease import LeaseError, lease_gpus

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def no_visible_devices(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return monkeypatch


def test_concurrent_leases_get_distinct_gpus(tmp_path, no_visible_devices):
    first = lease_gpus(1, tmp_path, total=3)
    assert first.devices == [0] and os.environ["CUDA_VISIBLE_DEVICES"] == "0"
    no_visible_devices.delenv("CUDA_VISIBLE_DEVICES")  # as in a second job
    second = lease_gpus(2, tmp_path, total=3)
    assert second.devices == [1, 2] and os.environ["CUDA_VISIBLE_DEVICES"] == "1,2"
    no_visible_devices.delenv("CUDA_VISIBLE_DEVICES")
    with pytest.raises(LeaseError, match=str(tmp_path)):
        lease_gpus(1, tmp_path, total=3)
    first.release()
    assert lease_gpus(1, tmp_path, total=3).devices == [0]
    second.release()


def test_no_op_when_devices_are_already_chosen(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    lease = lease_gpus(2, tmp_path, total=8)
    assert lease.devices == [3, 5] and not lease.active and not list(tmp_path.iterdir())
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "3,5"


def test_too_many_gpus_requested(tmp_path, no_visible_devices):
    with pytest.raises(LeaseError, match="has 2"):
        lease_gpus(3, tmp_path, total=2)


def test_a_killed_job_releases_its_gpu_and_commands_inherit_the_lease(tmp_path, no_visible_devices):
    env = dict(os.environ, PALETTE_GPU_COUNT="2", PALETTE_GPU_LOCK_DIR=str(tmp_path), PYTHONPATH=str(REPO))
    env.pop("CUDA_VISIBLE_DEVICES", None)
    # a job holding a GPU through `python -m palette.lease -- COMMAND`
    holder = subprocess.Popen(
        [sys.executable, "-m", "palette.lease", "--gpus", "1", "--",
         sys.executable, "-c", "import os, time; print(os.environ['CUDA_VISIBLE_DEVICES'], flush=True); time.sleep(60)"],
        env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "0"
        other = subprocess.run([sys.executable, "-m", "palette.lease", "--gpus", "1", "--", sys.executable, "-c",
                                "import os; print(os.environ['CUDA_VISIBLE_DEVICES'])"],
                               env=env, capture_output=True, text=True)
        assert other.stdout.strip() == "1"  # gpu0 is held by the sleeping command
        assert lease_gpus(1, tmp_path, total=2).devices == [1]  # gpu1 is free again after `other` ended
        no_visible_devices.delenv("CUDA_VISIBLE_DEVICES")
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    deadline = time.monotonic() + 10
    while True:  # the OS releases the killed job's lock
        try:
            assert lease_gpus(1, tmp_path, total=1).devices == [0]
            break
        except LeaseError:
            assert time.monotonic() < deadline
            time.sleep(0.05)


def test_lease_for_job_is_a_no_op_on_the_cpu_or_without_gpus(monkeypatch):
    from palette import lease as lease_module

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(lease_module, "count_gpus", lambda: 0)
    assert lease_module.lease_for_job(2) is None
    monkeypatch.setattr(lease_module, "count_gpus", lambda: 4)
    assert lease_module.lease_for_job(1, device="cpu") is None
    assert lease_module.lease_for_job(0) is None
    assert "CUDA_VISIBLE_DEVICES" not in lease_module.os.environ
