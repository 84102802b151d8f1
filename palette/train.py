"""Training: Palette (Algorithm 1) or the regression baseline, resumable to the bit.

Read `Trainer` top to bottom: `__init__` builds (model, EMA, optimizer, stream, logs) and resumes;
`run` is the loop, one `run_step` at a time:
    forward_backward over the micro-batches -> Adam step -> EMA update
    -> `log` (loss, lr, images/s, MFU) -> `stop_reason` / `save` checks.
What the loop changes lives in a small `RunState` (step, loss sums, last finite step).

Paper settings (docs/paper.md, Training): Adam lr 1e-4 after a 10k-step linear warmup, EMA 0.9999,
batch 1024, 1M steps, L2. Speed switches are one config key each: bf16 autocast, TF32,
channels_last, fused Adam, torch.compile. Under `torchrun` (WORLD_SIZE > 1) it runs DDP.

Resume. The work folder holds last.pt / previous.pt / step_N.pt (palette.checkpoint). A checkpoint
holds the weights, EMA, Adam state, step and every RNG state (torch CPU/CUDA, numpy, python). The
data and the diffusion noise need nothing more: sample n of the run has a fixed item, crop,
degradation, gamma and noise (the training stream, palette.data), so after step s the stream
restarts at sample s x batch_size, and how a step is split over GPUs and micro-batches changes
only float rounding (and dropout masks, where the model has dropout). On the CPU an interrupted
and resumed run ends bitwise equal to an uninterrupted one.

Safety. Losses are summed on the device (no host sync per step) and checked at every log row and
before every save, so a NaN/inf never reaches a checkpoint. A lock file keeps a second trainer out
of a work folder. Hardware helpers (DDP, TF32, the channels_last probe, MFU peaks) live in
palette.distributed.

Signals (palette.signals). SIGTERM, SIGINT (Ctrl-C), SIGUSR1 and SIGUSR2 (SLURM's `--signal`
warning) stop the loop at the next step boundary with a checkpoint; a second Ctrl-C aborts at once
(the last checkpoint stays: writes are atomic). They may be sent to the whole process group
(`timeout`, Ctrl-C, SLURM): the DataLoader workers ignore them and leave the shutdown to the main
process. The handlers are in place from the start (`palette train` installs them before it
imports torch): a signal during the set-up ends it before the first step with the same exit
code, and the work folder's lock file is removed whenever a run ends.

Exit codes (`palette train`, palette.train_cli): 0 done; RESUME_EXIT_CODE (75, EX_TEMPFAIL) when one of those signals or
the time budget stopped it after saving a checkpoint (run it again to resume);
NONFINITE_LOSS_EXIT_CODE (65) when the loss became NaN/inf (the last good checkpoint is kept);
CONFIG_EXIT_CODE (78) for a bad config or a checkpoint from an incompatible config. Under
torchrun every worker exits with these codes, but torchrun's own exit status is 1 after a
forwarded SIGTERM: still non-zero, so a Snakemake `retries:` job resumes either way.
"""

from __future__ import annotations

import csv
import math
import os
import random
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from palette.checkpoint import (
    FORMAT_VERSION, CheckpointError, CheckpointFolder, capture_rng_state, restore_rng_state, save_checkpoint,
)
from palette.config import (  # noqa: F401 (PAPER_SCALE_PARAMETERS: re-exported)
    PAPER_SCALE_PARAMETERS, ConfigError, TrainConfig, config_differences, load_config, micro_batches,
)
from palette.data import make_loader, noise_generator
from palette.distributed import (
    all_reduce, arithmetic_of, barrier, device_peak_flops, gather_objects, group_norm_keeps_channels_last, set_tf32,
    setup_distributed,
)
from palette.ema import EMA
from palette.files import atomic_write
from palette.models import build_model, parameter_count, regression_loss
from palette.signals import RESUME_EXIT_CODE, StopSignals, start_workers

# RESUME_EXIT_CODE (75, EX_TEMPFAIL: checkpoint saved, run again to resume) is palette.signals', and
# PAPER_SCALE_PARAMETERS palette.config's: `palette train` reads both before it imports torch.
NONFINITE_LOSS_EXIT_CODE = 65  # EX_DATAERR: loss became NaN/inf; last good checkpoint kept
CONFIG_EXIT_CODE = 78  # EX_CONFIG: bad config, or a checkpoint from an incompatible config


class TrainingPreempted(SystemExit):
    """Stopped early with a checkpoint saved; exits with RESUME_EXIT_CODE if not caught."""

    def __init__(self, reason: str, checkpoint: Path | None):
        super().__init__(RESUME_EXIT_CODE)
        self.reason, self.checkpoint = reason, checkpoint

    def __str__(self) -> str:
        if self.checkpoint is None:  # stopped during set-up, before anything was trained or saved
            return f"training stopped ({self.reason}) before its first step; nothing to save; run again to start"
        return f"training stopped ({self.reason}); checkpoint {self.checkpoint}; run again to resume"


def stop_if_signalled(signals: StopSignals | None, checkpoint: Path | None = None) -> None:
    """Between the slow steps of the set-up: a stop signal received so far ends the run now
    (TrainingPreempted; nothing new to save, `checkpoint` is where a rerun resumes from)."""
    if signals is not None and signals.received:
        raise TrainingPreempted(f"{signals.received} during set-up", checkpoint)


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or inf."""


def learning_rate(step: int, config: TrainConfig) -> float:
    """Linear warmup to `lr` over `warmup_steps`, then constant (docs/paper.md)."""
    if config.warmup_steps and step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    return config.lr


def build_optimizer(model: nn.Module, config: TrainConfig, device: torch.device, fused: bool | None = None) -> torch.optim.Adam:
    fused = (config.fused_adam and device.type == "cuda") if fused is None else fused
    return torch.optim.Adam(
        model.parameters(), lr=config.lr, betas=tuple(config.adam_betas), eps=config.adam_eps,
        weight_decay=config.weight_decay, fused=fused or None,
    )


class WorkdirLock:
    """WORKDIR/train.lock, locked (flock) while a trainer uses the folder. The OS drops the lock
    when the process dies; `close` also removes the file, so a run that ends, fails or is stopped
    leaves none behind (only SIGKILL leaves the file, unlocked, which the next trainer takes)."""

    def __init__(self, path: Path, handle):
        self.path, self.handle = path, handle

    def close(self) -> None:
        if self.handle is None:
            return
        try:
            self.path.unlink()  # while still locked: see lock_workdir for why that is safe
        except FileNotFoundError:
            pass
        self.handle.close()
        self.handle = None


def lock_workdir(workdir: Path) -> WorkdirLock:
    """Refuse a second trainer on the same work folder."""
    import fcntl

    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "train.lock"
    while True:
        lock = open(path, "a+")
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "?"
            lock.close()
            raise CheckpointError(f"another trainer (pid {holder}) is using the work folder {workdir}") from None
        # The holder removes the file before it lets go of the lock: if that happened between our
        # open and our lock, we hold a removed file that guards nothing; try again with the new one.
        try:
            if os.stat(path).st_ino == os.fstat(lock.fileno()).st_ino:
                break
        except FileNotFoundError:
            pass
        lock.close()
    lock.seek(0)
    lock.truncate()
    lock.write(f"{os.getpid()}\n")
    lock.flush()
    return WorkdirLock(path, lock)


LOG_COLUMNS = ["step", "loss", "lr", "images_per_s", "mfu", "elapsed_s"]


def open_csv_log(path: Path, resume_step: int):
    """Append to the CSV log, dropping rows written after the checkpoint we resume from."""
    rows = []
    if path.exists() and resume_step > 0:
        with open(path, newline="") as f:
            rows = [row for row in csv.DictReader(f) if row.get("step", "").isdigit() and int(row["step"]) <= resume_step]
    f = open(path, "w", newline="")
    writer = csv.DictWriter(f, fieldnames=LOG_COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    f.flush()
    return f, writer


def check_network(config: TrainConfig) -> None:
    """Build the config's network on the meta device (no memory, a fraction of a second), so that a
    model_overrides value the U-Net refuses is a bad config (CONFIG_EXIT_CODE) in one line."""
    try:
        with torch.device("meta"):
            build_model(config)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"train config: key 'model_overrides' has value {config.model_overrides!r}, which preset "
                          f"{config.preset!r} cannot take: {error}") from None


def refuse_paper_scale_on_cpu(config: TrainConfig) -> None:
    """A network of PAPER_SCALE_PARAMETERS or more would take years on a CPU: say so, unless meant."""
    parameters = parameter_count(config)
    if parameters >= PAPER_SCALE_PARAMETERS:
        raise ConfigError(
            f"train config: preset {config.preset!r} ({parameters / 1e6:.1f} M parameters, batch "
            f"{config.batch_size}, {config.steps} steps) would train on a CPU; pass --allow-cpu-paper-scale "
            "if that is meant, or choose a smaller preset (tiny, small) or a GPU")


def forward_flops_of(config: TrainConfig, workdir: Path) -> int:
    """FLOPs of one forward pass of the config's network, counted once per work folder (counting on
    the meta device imports torch's compiler stack: seconds, at the start of every resumed job) and
    kept in WORKDIR/flops.json beside the settings that shape the network."""
    import json

    from palette.files import atomic_write
    from palette.unet import forward_flops

    shape = {key: config.to_dict()[key] for key in ("preset", "model_overrides", "image_size", "task",
                                                    "objective", "conditioning")}
    record = workdir / "flops.json"
    try:
        stored = json.loads(record.read_text())
        if stored["network"] == shape:
            return int(stored["forward_flops"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    with torch.device("meta"):
        flops = int(forward_flops(build_model(config), config.image_size))
    if os.environ.get("RANK", "0") == "0":
        workdir.mkdir(parents=True, exist_ok=True)
        with atomic_write(record, "w") as handle:
            json.dump({"network": shape, "forward_flops": flops}, handle)
    return flops


@dataclass
class RunState:
    """What the loop changes as it goes; everything else of a run is fixed at its start."""

    step: int
    loss_sum: torch.Tensor  # losses since the last log row, summed on the device (no host sync per step)
    loss_count: int = 0  # optimizer steps in loss_sum
    finite_until: int = 0  # the last step at which the summed loss was checked finite
    step_seconds: float = 0.0  # the longest recent step, for the time budget
    save_seconds: float = 0.0  # the last periodic save
    log_time: float = 0.0  # when the last log row (or the first, warm-up step) ended
    log_step: int = 0


class Trainer:
    """One training run: everything built and resumed in `__init__`, the loop in `run`."""

    def __init__(self, config: TrainConfig, workdir: Path, final_checkpoint: Path | None, started: float,
                 allow_cpu_paper_scale: bool = False, signals: StopSignals | None = None):
        self.config, self.workdir, self.final_checkpoint, self.started = config, workdir, final_checkpoint, started
        self.segment = final_checkpoint is None  # a segment: stop at `steps` with a resumable checkpoint only
        self.signals = signals  # installed by the caller before the set-up; `run` keeps listening to them
        self.workdir_lock = None
        try:
            self._set_up(allow_cpu_paper_scale)
        except BaseException:  # a bad config, a damaged checkpoint, a stop signal: unlock the work folder
            self.close()
            raise

    def _set_up(self, allow_cpu_paper_scale: bool) -> None:
        config, workdir = self.config, self.workdir
        self.rank, self.world_size, self.device = setup_distributed(config.device)
        self.is_main = self.rank == 0
        # A signal during the set-up stops a single process between its steps. Under DDP every rank
        # must stop at the same step, so there it is left to the loop's first stop check.
        signals = self.signals if self.world_size == 1 else None
        self.accumulation = micro_batches(config, self.world_size)  # micro-batches per step on each process
        check_network(config)
        if self.device.type == "cpu" and not allow_cpu_paper_scale:  # before the work folder is made
            refuse_paper_scale_on_cpu(config)
        stop_if_signalled(signals)
        self.workdir_lock = lock_workdir(workdir) if self.is_main else None  # held until close()
        self.checkpoints = CheckpointFolder(workdir / "checkpoints")
        latest = self.checkpoints.last if self.checkpoints.last.exists() else None
        self._speed_switches()
        stop_if_signalled(signals, latest)
        self._model_and_optimizer()
        self.state = RunState(step=0, loss_sum=torch.zeros((), device=self.device))
        self.resumed_from = self._resume()
        stop_if_signalled(signals, latest)
        self.model = self._wrap(self.raw_model)
        from palette.degradations import task_uses_mask

        self.uses_mask = task_uses_mask(config.task)
        self.loader = make_loader(config, self.state.step * config.batch_size, self.accumulation, self.rank,
                                  self.world_size, pin_memory=self.device.type == "cuda")
        stop_if_signalled(signals, latest)
        self._open_logs()

    # --- set-up
    def _speed_switches(self) -> None:
        config, device = self.config, self.device
        self.use_bf16 = config.precision == "bf16" or (config.precision == "auto" and device.type == "cuda")
        if device.type == "cuda":
            set_tf32(config.tf32)
            torch.backends.cudnn.benchmark = True
        self.channels_last = config.channels_last is True or (
            config.channels_last == "auto" and device.type == "cuda"
            and (config.compile or group_norm_keeps_channels_last(device)))  # compiled GroupNorm keeps the layout
        self.memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        # analytic FLOPs for MFU: 3 x forward (forward + backward) per image (before any RNG is set)
        self.flops_per_image = 3 * forward_flops_of(config, self.workdir)
        self.peak = device_peak_flops(device, arithmetic_of(device, self.use_bf16, config.tf32))

    def _model_and_optimizer(self) -> None:
        torch.manual_seed(self.config.seed)  # the seed fixes the initial weights
        self.raw_model = build_model(self.config).to(self.device, memory_format=self.memory_format)
        self.ema = EMA(self.raw_model, self.config.ema_decay)
        self.optimizer = build_optimizer(self.raw_model, self.config, self.device)

    def _resume(self) -> Path | None:
        """Load the newest usable checkpoint of the work folder, or seed a fresh run."""
        config, rank = self.config, self.rank
        found = self.checkpoints.load_latest()
        if found is None:
            torch.manual_seed(config.seed + 1 + rank)  # dropout streams differ per rank
            np.random.seed(config.seed + rank)
            random.seed(config.seed + rank)
            return None
        state, path = found
        differences = config_differences(state["config"], config)
        if differences:
            raise CheckpointError(f"checkpoint {path} comes from an incompatible config:\n  "
                                  + "\n  ".join(differences) + "\nuse a new work folder, or restore these values")
        if state["step"] > config.steps and not self.segment:  # a segment already passed is simply done
            raise CheckpointError(f"checkpoint {path} is at step {state['step']}, past this config's "
                                  f"steps={config.steps}; raise steps, or use a new work folder to train afresh")
        self.raw_model.load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        for group in self.optimizer.param_groups:  # the implementation is this machine's choice, not the checkpoint's
            group["fused"] = self.optimizer.defaults["fused"]
            group["foreach"] = self.optimizer.defaults["foreach"]
        self.state.step = state["step"]
        if len(state["ranks"]) == self.world_size:
            restore_rng_state(state["ranks"][rank]["rng"])
            self.state.loss_sum.fill_(state["ranks"][rank]["loss_sum"])  # the log row in progress
            self.state.loss_count = state["ranks"][rank]["loss_count"]
        else:  # a different number of GPUs: fresh, seeded dropout streams (data and noise need none)
            torch.manual_seed(config.seed + 1 + rank + 7919 * self.state.step)
        return path

    def _wrap(self, model: nn.Module) -> nn.Module:
        model = torch.compile(model) if self.config.compile else model
        if self.world_size > 1:
            from torch.nn.parallel import DistributedDataParallel

            model = DistributedDataParallel(model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        return model

    def _open_logs(self) -> None:
        config, step = self.config, self.state.step
        self.csv_file = self.csv_writer = self.tensorboard = None
        if self.is_main:
            self.workdir.mkdir(parents=True, exist_ok=True)
            self.csv_file, self.csv_writer = open_csv_log(self.workdir / "log.csv", step)
            if config.tensorboard:
                from torch.utils.tensorboard import SummaryWriter

                self.tensorboard = SummaryWriter(str(self.workdir / "tensorboard"), purge_step=step if step else None)
        from tqdm import tqdm

        self.progress = tqdm(total=config.steps, initial=step, disable=not (self.is_main and config.progress_bar),
                             dynamic_ncols=True, desc=config.name)

    def say(self, message: str) -> None:
        if self.is_main:
            self.progress.write(message, file=sys.stderr)

    # --- one step
    def network(self, x: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
        """The U-Net under bf16 autocast (if on) and in the chosen memory layout."""
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.use_bf16):
            return self.model(x.contiguous(memory_format=self.memory_format), gamma)

    def loss_of(self, batch: dict) -> torch.Tensor:
        config, device = self.config, self.device
        source = batch["source"].to(device, non_blocking=True)
        target = batch["target"].to(device, non_blocking=True)
        mask = batch["mask"].to(device, non_blocking=True) if self.uses_mask else None
        if config.objective == "regression":
            return regression_loss(self.network, source, target, mask)
        from palette.diffusion import diffusion_loss, without_source

        generators = [noise_generator(config.seed, n, device) for n in batch["sample"].tolist()]
        if config.conditioning == "none":  # the imputation baseline models the targets alone, every pixel
            return diffusion_loss(without_source(self.network), target, target, None, loss_type=config.loss,
                                  generator=generators, prediction=config.prediction)
        return diffusion_loss(self.network, source, target, mask, loss_type=config.loss, generator=generators,
                              prediction=config.prediction, residual=config.residual)

    def forward_backward(self, batches) -> None:
        """One optimizer step's gradients over the micro-batches; DDP syncs them on the last one."""
        for micro_step in range(self.accumulation):
            last_micro = micro_step == self.accumulation - 1
            sync = nullcontext() if (self.world_size == 1 or last_micro) else self.model.no_sync()
            with sync:
                loss = self.loss_of(next(batches)) / self.accumulation
                loss.backward()
            self.state.loss_sum += loss.detach()

    def run_step(self, batches) -> float:
        """forward_backward, then the Adam step and the EMA update; returns the step's lr."""
        lr = learning_rate(self.state.step, self.config)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.forward_backward(batches)
        self.state.loss_count += 1
        if self.config.grad_clip_norm:
            torch.nn.utils.clip_grad_norm_(self.raw_model.parameters(), self.config.grad_clip_norm)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.ema.update()
        self.state.step += 1
        self.progress.update(1)
        return lr

    # --- logs, checks, checkpoints
    def mean_loss_or_stop(self) -> float:
        """Mean loss over the steps since the last log row; stops on NaN/inf (one host sync)."""
        state = self.state
        total = all_reduce(state.loss_sum.clone(), self.world_size).item() / self.world_size
        if not math.isfinite(total):
            good = self.checkpoints.last if self.checkpoints.last.exists() else None
            raise NonFiniteLossError(
                f"loss became {total} between step {state.finite_until} and step {state.step}; training stopped. "
                f"Last good checkpoint: {good or 'none'} (resume from it with a lower lr or after checking the data)")
        state.finite_until = state.step
        return total / max(state.loss_count, 1)

    def log(self, lr: float) -> None:
        """One row: mean loss, lr, images/s and MFU since the last row (timed after a host sync)."""
        state, config = self.state, self.config
        mean_loss = self.mean_loss_or_stop()  # syncs, so the timing below is honest
        state.loss_sum.zero_()
        state.loss_count = 0
        now = time.monotonic()
        timed_steps = state.step - state.log_step  # 0 on the first step of this process
        images_per_s = timed_steps * config.batch_size / (now - state.log_time) if timed_steps else None
        mfu = self.flops_per_image * images_per_s / self.world_size / self.peak if self.peak and images_per_s else None
        if timed_steps:
            state.step_seconds = (now - state.log_time) / timed_steps  # synchronised timing
        state.log_time, state.log_step = now, state.step
        if not self.is_main:
            return
        row = {"step": state.step, "loss": f"{mean_loss:.6g}", "lr": f"{lr:.6g}",
               "images_per_s": "" if images_per_s is None else f"{images_per_s:.4g}",
               "mfu": "" if mfu is None else f"{mfu:.4f}", "elapsed_s": f"{now - self.started:.1f}"}
        self.csv_writer.writerow(row)
        self.csv_file.flush()
        if self.tensorboard is not None:
            for key in ("loss", "lr", "images_per_s", "mfu"):
                if row[key]:
                    self.tensorboard.add_scalar(f"train/{key}", float(row[key]), state.step)
        self.progress.set_postfix(loss=f"{mean_loss:.4f}", img_s=row["images_per_s"] or "-",
                                  mfu="-" if mfu is None else f"{100 * mfu:.1f}%")

    def save(self, keep: bool = False) -> Path | None:
        """Checkpoint the full training state (after checking the loss is still finite)."""
        state, config = self.state, self.config
        self.mean_loss_or_stop()
        ranks = gather_objects({"rng": capture_rng_state(), "loss_sum": state.loss_sum.item(),
                                "loss_count": state.loss_count}, self.world_size)
        if not self.is_main:
            return None
        return self.checkpoints.save({
            "format": FORMAT_VERSION, "kind": "training", "step": state.step,
            "samples_seen": state.step * config.batch_size, "config": config.to_dict(),
            "objective": config.objective, "task": config.task,
            "model": self.raw_model.state_dict(), "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(), "ranks": ranks,
        }, keep=keep)

    def stop_reason(self, signals: StopSignals, step_started: float) -> str | None:
        """A signal, or the time budget about to run out (with room to save); the same on every rank."""
        state, config = self.state, self.config
        state.step_seconds = max(state.step_seconds, time.monotonic() - step_started)
        stop = signals.received
        if stop is None and config.time_budget is not None:
            remaining = config.time_budget - (time.monotonic() - self.started)
            if 2 * state.step_seconds + 2 * state.save_seconds + 5 > remaining:
                stop = "time budget"
        if self.world_size > 1:  # every rank must stop at the same step
            flag = all_reduce(torch.tensor(float(stop is not None), device=self.device), self.world_size, "max")
            stop = stop or ("another rank stopped" if flag.item() else None)
        return stop

    def save_final(self) -> None:
        """Weights and EMA only, atomically at the final path, with the CSV log beside it."""
        config = self.config
        save_checkpoint({
            "format": FORMAT_VERSION, "kind": "final", "step": self.state.step, "config": config.to_dict(),
            "objective": config.objective, "task": config.task,
            "model": self.raw_model.state_dict(), "ema": self.ema.state_dict(),
        }, self.final_checkpoint)
        self.csv_file.flush()
        with atomic_write(self.final_checkpoint.with_suffix(".csv")) as handle:
            handle.write((self.workdir / "log.csv").read_bytes())
        self.say(f"done: {self.state.step} steps; final EMA checkpoint {self.final_checkpoint}")

    # --- the loop
    def run(self) -> Path | None:
        config, state = self.config, self.state
        if self.resumed_from is not None:
            self.say(f"resumed from {self.resumed_from} at step {state.step}")
        if self.segment and state.step >= config.steps:
            self.say(f"segment to step {config.steps}: the work folder is already at step {state.step}")
            return None
        self.say(f"{config.objective} {config.task} | preset {config.preset} | {self.device} x{self.world_size} | "
                 f"{'bf16' if self.use_bf16 else 'fp32'}{' channels_last' if self.channels_last else ''}"
                 f"{' compiled' if config.compile else ''} | batch {config.batch_size} = "
                 f"{self.accumulation} x {self.world_size} x {config.batch_size // (self.accumulation * self.world_size)}")
        state.finite_until = first_step = state.step
        state.log_time, state.log_step = time.monotonic(), state.step
        self.raw_model.train()
        with nullcontext(self.signals) if self.signals is not None else StopSignals() as signals:
            batches = start_workers(self.loader)  # under StopSignals: a signal from here on saves and stops
            while state.step < config.steps:
                step_started = time.monotonic()
                lr = self.run_step(batches)
                if state.step == first_step + 1:  # speed is timed from here: the first step compiles, warms up
                    if self.device.type == "cuda":
                        torch.cuda.synchronize(self.device)
                    state.log_time, state.log_step = time.monotonic(), state.step
                if state.step % config.log_every == 0 or state.step == config.steps:
                    self.log(lr)
                stop = self.stop_reason(signals, step_started)
                if stop is not None and state.step < config.steps:
                    path = self.save()
                    barrier(self.world_size)  # no rank exits (and so ends the job) before rank 0 has written
                    raise TrainingPreempted(stop, path)
                if state.step % config.checkpoint_every == 0 or state.step == config.steps:
                    save_started = time.monotonic()
                    self.save(keep=bool(config.keep_every) and state.step % config.keep_every == 0)
                    state.save_seconds = time.monotonic() - save_started
                    state.log_time += state.save_seconds  # images/s measures training, not saving
        if self.is_main and not self.segment:
            self.save_final()
        barrier(self.world_size)
        if self.segment:
            self.say(f"segment done: step {state.step}; resumable checkpoint {self.checkpoints.last}")
        return self.final_checkpoint

    def close(self) -> None:
        """Close the logs and unlock the work folder (also after a set-up cut short)."""
        for handle in (getattr(self, "progress", None), getattr(self, "csv_file", None),
                       getattr(self, "tensorboard", None), self.workdir_lock):
            if handle is not None:
                handle.close()


def train(config: dict | TrainConfig | str | Path, workdir: str | Path, final_checkpoint: str | Path | None = None,
          allow_cpu_paper_scale: bool = False, segment: bool = False,
          signals: StopSignals | None = None) -> Path | None:
    """Train to `config.steps`, resuming from `workdir`; write the final EMA checkpoint.

    `segment=True` trains one segment of a longer run (the workflow's train_segment jobs): it
    stops at `config.steps` with a resumable checkpoint, writes no final checkpoint and returns
    None; a work folder already at or past `steps` is done at once.

    A network of PAPER_SCALE_PARAMETERS or more on a CPU is refused (ConfigError) unless
    `allow_cpu_paper_scale` (`palette train --allow-cpu-paper-scale`) says it is meant.

    The final checkpoint (default WORKDIR/final.pt) is written atomically, with the CSV log
    beside it (same name, .csv). Raises TrainingPreempted (a SystemExit with RESUME_EXIT_CODE)
    after saving when stopped by a signal or the time budget, NonFiniteLossError on NaN/inf,
    CheckpointError when the work folder holds only unusable or incompatible checkpoints.

    `signals`: the caller's StopSignals, entered before its own slow set-up (`palette train`
    enters them before importing torch); by default train() listens from its start. A signal
    during the set-up stops it before the first step (TrainingPreempted, nothing saved), with the
    work folder unlocked.
    """
    started = time.monotonic()
    config = load_config(config)
    workdir = Path(workdir)
    if segment:
        final_checkpoint = None
    else:
        final_checkpoint = Path(final_checkpoint) if final_checkpoint is not None else workdir / "final.pt"
    with nullcontext(signals) if signals is not None else StopSignals() as signals:
        trainer = Trainer(config, workdir, final_checkpoint, started, allow_cpu_paper_scale, signals)
        try:
            return trainer.run()
        finally:
            trainer.close()
