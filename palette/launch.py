"""One launcher for a training job, whatever its shape: the train rule's only way to start training.

Every path ends in the same worker, `palette train` (palette.train.run), so every path gets the
same exit codes: 0 done, 75 stopped after saving (run again to resume), 65 NaN/inf loss, 78 bad
config or incompatible checkpoint, 2 bad input; and a rank that died without an exit status
(killed, crashed) is named in a one-line message, exit 1.

    one process (CPU, one GPU)  python -m palette.launch worker -- train ...
    G GPUs on one node          torchrun --standalone --nproc_per_node=G -m palette.launch worker -- train ...
    N nodes x G GPUs (SLURM)    srun --nodes=N --ntasks-per-node=1 --kill-on-bad-exit=1
                                  torchrun --nnodes=N --nproc_per_node=G --rdzv_backend=c10d
                                  --rdzv_endpoint=FIRST_HOST:PORT --rdzv_id=JOB_ID -m palette.launch worker ...

Multi-node: one torchrun agent per node, started by srun, meeting at a c10d rendezvous on the first
host of SLURM_JOB_NODELIST (torchrun gives each node its rank; nothing but the node count and GPUs
per node is needed, and each agent watches its own GPUs' workers). The global batch is split
over all N x G processes by micro_batch_size exactly as on one node (palette.config.micro_batches).

Failures are bounded: torchrun runs with --max-restarts=0, so a worker that dies makes its agent
stop the node's other workers and exit; srun --kill-on-bad-exit then ends the other nodes'
agents, and ranks blocked in a collective see their peer's socket close. Each worker records its
pid and exit code in STATUS_DIR/rank{R}.pid / .exit, so the launcher can tell a clean stop (75 on
every rank) from a rank that died, and name it. The rule's `retries:` then resumes from the work
folder.

Signals: the trainer's stop signals (palette.signals: SIGTERM, SIGINT, SIGUSR1, SIGUSR2) reaching
the launcher are passed on (as SIGTERM to torchrun and srun, which handle neither SIGUSR), so the
workers save and exit 75; SLURM's `--signal=TERM@SECONDS` (profiles/slurm) reaches them this way.
Time limits: `time_budget_seconds` (palette.attempts) turns the job's remaining time (its real end time under SLURM,
else its `runtime`) into the trainer's budget.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

from palette.attempts import safety_margin_seconds, time_budget_seconds  # noqa: F401 (the launcher's API)
from palette.signals import STOP_SIGNALS

DIED_EXIT_CODE = 1  # a rank ended without an exit status of its own (killed by a signal, crashed)
RENDEZVOUS_PORT = 29431  # on the first host; PALETTE_RENDEZVOUS_PORT overrides it


def slurm_seconds_left(job_id: str | None = None) -> float | None:
    """Seconds until this SLURM job's end time (squeue %e), or None outside SLURM or unlimited."""
    job_id = job_id or os.environ.get("SLURM_JOB_ID")
    if not job_id or shutil.which("squeue") is None:
        return None
    try:
        end = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%e"], capture_output=True, text=True,
                             timeout=30).stdout.strip()
        return datetime.fromisoformat(end).timestamp() - time.time()
    except (subprocess.SubprocessError, ValueError, OSError):  # "N/A", "Unknown", no squeue answer
        return None


def first_host(nodelist: str) -> str:
    """The first host of a SLURM node list: 'gpu[003-005,9],cpu1' -> 'gpu003'."""
    if shutil.which("scontrol"):
        try:
            hosts = subprocess.run(["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True,
                                   timeout=30, check=True).stdout.split()
            if hosts:
                return hosts[0]
        except (subprocess.SubprocessError, OSError):
            pass
    match = re.match(r"([^,\[]+)(?:\[([^\]]+)\])?", nodelist)
    if not match:
        raise ValueError(f"cannot read the SLURM node list {nodelist!r}")
    prefix, ranges = match.groups()
    return prefix + (re.split(r"[-,]", ranges)[0] if ranges else "")


def worker_command(train_args: list[str], status_dir: Path) -> list[str]:
    return ["-m", "palette.launch", "worker", "--status-dir", str(status_dir), "--", "train", *train_args]


def build_command(train_args: list[str], status_dir: Path, gpus_per_node: int = 0, nodes: int = 1,
                  rendezvous: str | None = None, run_id: str = "palette", python: str = sys.executable) -> list[str]:
    """The command that starts training in the shape asked for (see the module docstring).

    `rendezvous` (HOST:PORT) is needed for nodes > 1; under SLURM `launch` takes it from the
    first host of SLURM_JOB_NODELIST and wraps the command in srun."""
    worker = worker_command(train_args, status_dir)
    if nodes < 1 or gpus_per_node < 0:
        raise ValueError(f"nodes must be >= 1 and GPUs per node >= 0, got nodes={nodes}, gpus={gpus_per_node}")
    if nodes == 1 and gpus_per_node <= 1:
        return [python, *worker]
    per_node = max(1, gpus_per_node)
    torchrun = [python, "-m", "torch.distributed.run", f"--nproc_per_node={per_node}", "--max-restarts=0"]
    if nodes == 1:
        return [*torchrun, "--standalone", "--nnodes=1", *worker]
    if not rendezvous:
        raise ValueError(f"{nodes} nodes need a rendezvous HOST:PORT")
    return [*torchrun, f"--nnodes={nodes}", "--rdzv_backend=c10d", f"--rdzv_endpoint={rendezvous}",
            f"--rdzv_id={run_id}", *worker]


def srun_prefix(nodes: int, gpus_per_node: int) -> list[str]:
    """One task (a torchrun agent) per node of this SLURM job, all killed when one fails."""
    command = ["srun", f"--nodes={nodes}", f"--ntasks={nodes}", "--ntasks-per-node=1", "--kill-on-bad-exit=1"]
    if gpus_per_node > 0:
        command.append(f"--gpus-per-node={gpus_per_node}")
    return command


def summarise_exit(returncode: int, status_dir: Path, world_size: int, stopped_by: str | None) -> tuple[int, str | None]:
    """(exit code, message) from the launcher's child and the ranks' status files."""
    if world_size == 1 and returncode >= 0 and (status_dir / "rank0.exit").exists():
        return returncode, None
    codes = {}
    for rank in range(world_size):
        path = status_dir / f"rank{rank}.exit"
        if path.exists():
            codes[rank] = int(path.read_text().strip() or DIED_EXIT_CODE)
    died = [rank for rank in range(world_size) if rank not in codes]
    if returncode == 0 and not died:
        return 0, None
    if died:
        started = [rank for rank in died if (status_dir / f"rank{rank}.pid").exists()]
        how = f"launcher exit status {returncode}" + (f" after {stopped_by}" if stopped_by else "")
        names = ", ".join(str(rank) for rank in died)
        if started:
            return DIED_EXIT_CODE, (f"rank {names} of {world_size} died without an exit status (killed or crashed; "
                                    f"{how}); the other ranks were stopped; a retry resumes from the last checkpoint")
        return DIED_EXIT_CODE, f"rank {names} of {world_size} never started ({how})"
    for code in (78, 65, 2):  # the most specific cause wins: config, data, input
        if code in codes.values():
            return code, None
    if all(code == 75 for code in codes.values()):
        return 75, None
    failed = {rank: code for rank, code in codes.items() if code != 0}
    return max(failed.values()), "; ".join(f"rank {rank} exited with {code}" for rank, code in failed.items())


def launch(train_args: list[str], status_dir: str | Path, gpus_per_node: int = 0, nodes: int = 1,
           threads: int | None = None, log=None, outcome: dict | None = None) -> int:
    """Run training (`palette train TRAIN_ARGS`) in the shape asked for; returns its exit code.
    `outcome`, if given, receives `stopped_by`: the stop signal passed on to the workers, or None."""
    status_dir = Path(status_dir)
    shutil.rmtree(status_dir, ignore_errors=True)
    status_dir.mkdir(parents=True)
    log = log or sys.stderr
    environment = dict(os.environ)
    processes_per_node = max(1, gpus_per_node)
    if threads:  # OpenMP threads per worker: the job's cores shared by the node's workers
        environment["OMP_NUM_THREADS"] = str(max(1, threads // processes_per_node))
    if nodes > 1:
        job_id, nodelist = os.environ.get("SLURM_JOB_ID"), os.environ.get("SLURM_JOB_NODELIST")
        if not job_id or not nodelist:
            raise ValueError(f"nodes={nodes} needs a SLURM allocation (SLURM_JOB_ID / SLURM_JOB_NODELIST unset)")
        port = int(os.environ.get("PALETTE_RENDEZVOUS_PORT", RENDEZVOUS_PORT))
        rendezvous = f"{first_host(nodelist)}:{port}"
        command = srun_prefix(nodes, gpus_per_node) + build_command(
            train_args, status_dir, gpus_per_node, nodes, rendezvous, run_id=f"palette-{job_id}")
    else:
        command = build_command(train_args, status_dir, gpus_per_node, nodes)
    print(" ".join(command), file=log, flush=True)
    single_process = nodes == 1 and gpus_per_node <= 1
    child = subprocess.Popen(command, env=environment, stdout=log, stderr=log)
    stopped_by = None

    def forward(signum, frame):
        nonlocal stopped_by
        stopped_by = signal.Signals(signum).name
        # torchrun and srun handle SIGTERM (they pass it on to the workers); torchrun dies of SIGUSR1/2
        child.send_signal(signum if single_process else signal.SIGTERM)

    previous = {}
    for signum in STOP_SIGNALS:
        try:
            previous[signum] = signal.signal(signum, forward)
        except ValueError:  # not the main thread: the caller handles signals
            pass
    try:
        returncode = child.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if outcome is not None:
        outcome["stopped_by"] = stopped_by
    code, message = summarise_exit(returncode, status_dir, nodes * processes_per_node, stopped_by)
    if message:
        print(f"palette launch: {message}", file=log, flush=True)
    return code


# ----------------------------------------------------------------------------- the worker
def worker(argv: list[str]) -> int:
    """One rank: record its pid, run `palette ARGV`, record its exit code."""
    parser = argparse.ArgumentParser(prog="python -m palette.launch worker")
    parser.add_argument("--status-dir", required=True)
    parser.add_argument("palette_args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    rank = os.environ.get("RANK", "0")
    status_dir = Path(args.status_dir)
    (status_dir / f"rank{rank}.pid").write_text(f"{os.getpid()} {socket.gethostname()}\n")
    palette_args = args.palette_args[1:] if args.palette_args[:1] == ["--"] else args.palette_args
    from palette.cli import main

    code = 1
    try:
        code = main(palette_args)
    except SystemExit as exit:
        code = exit.code if isinstance(exit.code, int) else 1
        raise
    finally:
        (status_dir / f"rank{rank}.exit").write_text(f"{code}\n")
    return code


if __name__ == "__main__":
    if sys.argv[1:2] != ["worker"]:
        sys.exit("usage: python -m palette.launch worker --status-dir DIR -- train ARGS")
    sys.exit(worker(sys.argv[2:]))
