"""The stop signals of a training run: SIGTERM, SIGINT (Ctrl-C), SIGUSR1 and SIGUSR2 (SLURM's
`--signal` warning) ask the loop to save and exit at the next step boundary.

They may be sent to the whole process group (`timeout`, a terminal's Ctrl-C, SLURM at preemption
or at the time limit), so the DataLoader's worker processes ignore them and leave the shutdown to
the main process (`ignore_stop_signals`, installed with `start_workers`).

`palette train` installs StopSignals before anything slow (importing torch, reading the data,
building the model), so a signal in the first seconds also ends with RESUME_EXIT_CODE and an
unlocked work folder, not with the signal's own exit status (143 for SIGTERM). Torch-free.
"""

from __future__ import annotations

import signal

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2)
RESUME_EXIT_CODE = 75  # EX_TEMPFAIL: stopped by one of them (or the time budget) with what was trained saved; run again


def ignore_stop_signals(worker_id: int | None = None) -> None:
    """In a DataLoader worker: a signal to the process group must not kill it (the main process
    stops the run after saving; the workers end when it does). Unblocks what `start_workers` blocked."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def start_workers(loader):
    """iter(loader), with the stop signals blocked while its worker processes start, so that none
    can arrive in a worker before `ignore_stop_signals` has run there (a pending one stays pending
    in the main process, for StopSignals)."""
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        return iter(loader)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


class StopSignals:
    """STOP_SIGNALS set a flag; the loop saves and exits at the next step boundary. A second
    SIGINT raises KeyboardInterrupt (Ctrl-C twice: stop now)."""

    def __init__(self):
        self.received: str | None = None
        self._previous = {}

    def __enter__(self):
        for signum in STOP_SIGNALS:
            try:
                self._previous[signum] = signal.signal(signum, self._handle)
            except ValueError:  # not the main thread: leave handling to the caller
                pass
        return self

    def _handle(self, signum, frame):
        if signum == signal.SIGINT and self.received == "SIGINT":
            raise KeyboardInterrupt
        if self.received is None:
            self.received = signal.Signals(signum).name

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
