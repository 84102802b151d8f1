"""The attempt log of a long, resumable job: one row when an attempt begins, one when it ends.

Snakemake retries a failed job a fixed number of times and deletes the job's log before each
attempt, so the history of a training run cut by time limits lives in its work folder, as
`attempts.tsv`. Each row names the job (a training segment, the final part, a sampling shard),
Snakemake's attempt number, SLURM's job id and restart count (a requeued job keeps its attempt
number), the host, the time and the progress (the step, or the images written) at that moment,
and at the end the exit code and what stopped the attempt early, if anything.

It answers one question before an attempt starts: did the attempt before it make progress?
An attempt that starts where the previous attempt of the same job started (a step longer than
the time limit, a job that dies at start-up) would fail the same way again: `stalled` says so in
one line, and the job stops instead of using up its retries.

`time_budget_seconds` turns a job's time limit into the budget after which an attempt saves and
exits 75 (training, sampling), keeping `safety_margin_seconds` free before the limit.

Rows are appended and flushed one at a time; a kill loses at most the row being written (an
attempt killed by SIGKILL has a begin row and no end row, which is enough: progress is measured
between the begin rows of consecutive attempts).
"""

from __future__ import annotations

import csv
import os
import socket
import time
from pathlib import Path

# The workflow's resumable rules and the retries each job of theirs gets (rules/common.smk):
# enough for preemptions and node failures when each job fits one attempt (palette plan).
RESUMABLE_RULES = ("train_segment", "train", "sample")
RESUME_RETRIES = 3
# The most train_segment jobs one model may be cut into. Each segment needs the one before it, and
# Snakemake builds its DAG recursively: a chain of about 500 jobs exceeds Python's recursion limit
# (measured with Snakemake 9.27: 300 build, 500 fail). 200 keeps a margin; a paper model needs ~70.
MAX_SEGMENTS = 200

COLUMNS = ("event", "job", "attempt", "slurm_job", "slurm_restart", "host", "time", "progress", "exit", "stopped_by")


def safety_margin_seconds(limit_seconds: float) -> float:
    """Seconds kept free before a time limit for start-up, the last save and leaving the job.

    5 % + 5 minutes on long limits (a day: 77 minutes), but never more than a quarter of the
    limit, so that a 2-minute limit still trains for 90 seconds instead of not at all.
    """
    return min(0.05 * limit_seconds + 300.0, 0.25 * limit_seconds)


def time_budget_seconds(runtime_minutes: float | None, seconds_left: float | None = None) -> float | None:
    """The trainer's time budget for a job limited to `runtime_minutes` (None: no limit).

    Under SLURM the job's own end time (`seconds_left`) is used, so time spent queued for a
    start-up or before this process started counts; the margin scales with the limit."""
    if not isinstance(runtime_minutes, (int, float)) or runtime_minutes <= 0:
        return None
    limit = runtime_minutes * 60.0
    left = limit if seconds_left is None else min(limit, seconds_left)
    return max(10.0, left - safety_margin_seconds(limit))


class AttemptLog:
    """`attempts.tsv` of one work folder (training) or shard folder (sampling)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def rows(self) -> list[dict]:
        if not self.path.is_file():
            return []
        with open(self.path, newline="") as handle:
            return [row for row in csv.DictReader(handle, delimiter="\t")  # rows cut by a kill are skipped
                    if row.get("event") in ("begin", "end") and (row.get("attempt") or "").isdigit()
                    and (row.get("progress") or "").isdigit()]

    def _append(self, event: str, job: str, attempt: int, progress: int, exit_code: int | None = None,
                stopped_by: str | None = None) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        size = self.path.stat().st_size if self.path.is_file() else 0
        cut = False
        if size:
            with open(self.path, "rb") as existing:
                existing.seek(-1, os.SEEK_END)
                cut = existing.read(1) != b"\n"  # the last row was cut by a kill
        with open(self.path, "a", newline="") as handle:
            writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
            if cut:
                handle.write("\n")
            if not size:
                writer.writerow(COLUMNS)
            writer.writerow([event, job, attempt, os.environ.get("SLURM_JOB_ID", ""),
                             os.environ.get("SLURM_RESTART_COUNT", "0"), socket.gethostname(),
                             time.strftime("%Y-%m-%dT%H:%M:%S"), progress, "" if exit_code is None else exit_code,
                             stopped_by or ""])
            handle.flush()
            os.fsync(handle.fileno())

    def begin(self, job: str, attempt: int, progress: int) -> None:
        self._append("begin", job, attempt, progress)

    def end(self, job: str, attempt: int, progress: int, exit_code: int, stopped_by: str | None = None) -> None:
        """`stopped_by`: what stopped an attempt early (a signal: SLURM's time-limit warning, a
        preemption; or "time budget"), for the record."""
        self._append("end", job, attempt, progress, exit_code, stopped_by)

    def attempts(self, job: str) -> list[dict]:
        """The begin rows of `job`, oldest first (every start: attempts, and SLURM requeues)."""
        return [row for row in self.rows() if row["event"] == "begin" and row["job"] == job]

    def stalled(self, job: str, attempt: int, progress: int, unit: str = "step") -> str | None:
        """Why this attempt should not run, or None: the previous attempt (Snakemake's attempt
        number minus one, in this invocation: attempt 1 never stops) began at the same progress
        as this one, so it made none. A SLURM requeue keeps the attempt number and is not judged.
        """
        if attempt <= 1:
            return None
        previous = [row for row in self.attempts(job) if int(row["attempt"]) == attempt - 1]
        if not previous or int(previous[-1]["progress"]) < progress:
            return None
        ended = [row for row in self.rows() if row["event"] == "end" and row["job"] == job
                 and int(row["attempt"]) == attempt - 1]
        how = f"it ended with exit {ended[-1]['exit']}" if ended else "it was killed before it could record its end"
        where = f" (SLURM job {previous[-1]['slurm_job']})" if previous[-1]["slurm_job"] else ""
        return (f"attempt {attempt - 1}{where} made no progress: it began at {unit} {progress}, where this attempt "
                f"begins too, and {how}; stopping instead of retrying (raise the job's runtime, or see the "
                f"attempt's log; {self.path} has every attempt)")
