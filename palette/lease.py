"""A local GPU lease, so that concurrent jobs on one machine get distinct GPUs.

Snakemake's `gpu` resource is only a counter locally: it never sets CUDA_VISIBLE_DEVICES
(docs/snakemake.md). A job takes non-blocking `flock` locks on `gpu0.lock .. gpu{N-1}.lock`
in a shared lock folder, sets CUDA_VISIBLE_DEVICES to the GPUs it holds, and keeps the lock
files open for its lifetime; the OS releases them when the process exits or is killed, so a
crashed job never leaves a GPU taken. Where CUDA_VISIBLE_DEVICES is already set (SLURM, a user
choice) the lease does nothing.

    from palette.lease import lease_gpus
    lease = lease_gpus(2)             # before CUDA is initialised; keeps the locks until exit

or, around another command (the locks are inherited by it through exec):

    python -m palette.lease --gpus 2 -- torchrun --standalone --nproc_per_node=2 ...

No torch import here: counting GPUs reads /proc/driver/nvidia/gpus or `nvidia-smi -L`.
"""

from __future__ import annotations

import argparse
import fcntl
import getpass
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

LOCK_DIR_ENV = "PALETTE_GPU_LOCK_DIR"
GPU_COUNT_ENV = "PALETTE_GPU_COUNT"


class LeaseError(RuntimeError):
    """Not enough free GPUs within the waiting time."""


@dataclass
class Lease:
    devices: list[int]
    lock_dir: Path | None = None
    files: list = field(default_factory=list)  # open lock files; closing them releases the GPUs

    @property
    def active(self) -> bool:
        return bool(self.files)

    def release(self) -> None:
        for f in self.files:
            f.close()
        self.files.clear()

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


# Leases must outlive the call that made them: keep a reference for the process's lifetime.
_HELD: list[Lease] = []


def default_lock_dir() -> Path:
    if os.environ.get(LOCK_DIR_ENV):
        return Path(os.environ[LOCK_DIR_ENV])
    return Path(tempfile.gettempdir()) / f"palette-gpu-locks-{getpass.getuser()}"


def count_gpus() -> int:
    """NVIDIA GPUs on this machine, without initialising CUDA (0 when there are none)."""
    if os.environ.get(GPU_COUNT_ENV):
        return int(os.environ[GPU_COUNT_ENV])
    proc = Path("/proc/driver/nvidia/gpus")
    if proc.is_dir():
        return len(list(proc.iterdir()))
    try:
        listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(line.startswith("GPU ") for line in listing.stdout.splitlines())


def lease_gpus(
    count: int = 1,
    lock_dir: str | Path | None = None,
    total: int | None = None,
    wait_seconds: float = 0.0,
    poll_seconds: float = 2.0,
    stopped: Callable[[], str | None] | None = None,
) -> Lease:
    """Lock `count` free GPUs and export CUDA_VISIBLE_DEVICES; a no-op if it is already set.

    Waits up to `wait_seconds` (polling) for GPUs to free up, then raises LeaseError naming the
    lock folder. `total` defaults to the GPUs on this machine. `stopped` (e.g. a StopSignals'
    `received`) ends the wait early: a stop signal must not wait out the lease's time.
    """
    if "CUDA_VISIBLE_DEVICES" in os.environ:
        visible = [v for v in os.environ["CUDA_VISIBLE_DEVICES"].split(",") if v.strip()]
        return Lease(devices=[int(v) if v.strip().isdigit() else -1 for v in visible])
    total = count_gpus() if total is None else total
    if count > total:
        raise LeaseError(f"asked for {count} GPU(s) but this machine has {total}")
    if count <= 0:
        return Lease(devices=[])
    lock_dir = Path(lock_dir) if lock_dir is not None else default_lock_dir()
    lock_dir.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait_seconds
    while True:
        held = _try_lock(lock_dir, count, total)
        if held is not None:
            break
        reason = stopped() if stopped is not None else None
        if reason:
            raise LeaseError(f"stopped by {reason} while waiting for {count} free GPU(s) of {total}")
        if time.monotonic() >= deadline:
            raise LeaseError(
                f"no {count} free GPU(s) of {total}: all locked in {lock_dir} "
                f"(locks are released when their jobs exit; limit concurrent jobs with --resources gpu={total})"
            )
        time.sleep(poll_seconds)
    lease = Lease(devices=[gpu for gpu, _ in held], lock_dir=lock_dir, files=[f for _, f in held])
    os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(str(gpu) for gpu in lease.devices)
    _HELD.append(lease)
    return lease


def lease_for_job(gpus: int, device: str = "auto", wait_seconds: float = 600.0,
                  stopped: Callable[[], str | None] | None = None) -> Lease | None:
    """A workflow job's lease: `gpus` GPUs (its `gpu` resource) unless it runs on the CPU or the
    machine has none. Call before CUDA starts; a no-op under SLURM (CUDA_VISIBLE_DEVICES set)."""
    if device == "cpu" or not gpus:
        return None
    total = count_gpus()
    if not total:
        return None
    lease = lease_gpus(gpus, total=total, wait_seconds=wait_seconds, stopped=stopped)
    print(f"GPU lease: {lease.devices}")
    return lease


def _try_lock(lock_dir: Path, count: int, total: int):
    held = []
    for gpu in range(total):
        f = open(lock_dir / f"gpu{gpu}.lock", "a+")
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            continue
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        held.append((gpu, f))
        if len(held) == count:
            return held
    for _, f in held:  # not enough: give back what we took
        f.close()
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m palette.lease",
        description="Lease GPUs, then exec COMMAND with CUDA_VISIBLE_DEVICES set (locks held until it exits).",
    )
    parser.add_argument("--gpus", type=int, default=1, help="number of GPUs to lease")
    parser.add_argument("--lock-dir", default=None, help=f"lock folder (default ${LOCK_DIR_ENV} or {default_lock_dir()})")
    parser.add_argument("--wait", type=float, default=0.0, help="seconds to wait for free GPUs")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give a command after --")
    lease = lease_gpus(args.gpus, args.lock_dir, wait_seconds=args.wait)
    for f in lease.files:  # the exec'd command inherits the locked descriptors, and so the locks
        os.set_inheritable(f.fileno(), True)
    print(f"palette.lease: CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '')}", file=sys.stderr)
    os.execvp(command[0], command)
    return 127  # not reached


if __name__ == "__main__":
    sys.exit(main())
