"""Training: Palette (Algorithm 1) or the regression baseline, resumable to the bit.

Read `train()` top to bottom: build, resume, then one loop of
    forward/backward over grad_accumulation micro-batches -> Adam step -> EMA update
    -> log (loss, lr, images/s, MFU) -> checkpoint / stop checks.

Paper settings (docs/paper.md, Training): Adam lr 1e-4 after a 10k-step linear warmup, EMA 0.9999,
batch 1024, 1M steps, L2. Speed switches are one config key each: bf16 autocast, TF32,
channels_last, fused Adam, torch.compile. Under `torchrun` (WORLD_SIZE > 1) it runs DDP.

Resume. The work folder holds last.pt / previous.pt / step_N.pt (palette.checkpoint). A checkpoint
holds the weights, EMA, Adam state, step and every RNG state (torch CPU/CUDA, numpy, python). The
data and the diffusion noise need nothing more: sample n of the run is item perm(seed, epoch)[n mod N]
of epoch n // N, an item's crop and degradation depend only on (seed, epoch, index)
(palette.data.PairedDataset), and its gamma and noise come from a generator seeded by (seed, n)
(`noise_generator`). So after step s the stream restarts at sample s x batch_size, and how a step
is split over GPUs and micro-batches changes only float rounding (and dropout masks, where the
model has dropout). On the CPU an interrupted and resumed run ends bitwise equal to an
uninterrupted one.

Safety. Losses are summed on the device (no host sync per step) and checked at every log row and
before every save, so a NaN/inf never reaches a checkpoint. A lock file keeps a second trainer out
of a work folder. Hardware helpers (DDP, TF32, the channels_last probe, MFU peaks) live in
palette.distributed.

Signals. SIGTERM, SIGINT (Ctrl-C), SIGUSR1 and SIGUSR2 (SLURM's `--signal` warning) stop the loop at
the next step boundary with a checkpoint; a second Ctrl-C aborts at once (the last checkpoint stays:
writes are atomic). They may be sent to the whole process group (`timeout`, Ctrl-C, SLURM): the
DataLoader workers ignore them and leave the shutdown to the main process.

Exit codes (`palette train`): 0 done; RESUME_EXIT_CODE (75, EX_TEMPFAIL) when one of those signals or
the time budget stopped it after saving a checkpoint (run it again to resume);
NONFINITE_LOSS_EXIT_CODE (65) when the loss became NaN/inf (the last good checkpoint is kept);
CONFIG_EXIT_CODE (78) for a bad config or a checkpoint from an incompatible config. Under
torchrun every worker exits with these codes, but torchrun's own exit status is 1 after a
forwarded SIGTERM: still non-zero, so a Snakemake `retries:` job resumes either way.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import random
import signal
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from torch import nn

from palette.checkpoint import (
    FORMAT_VERSION, CheckpointError, CheckpointFolder, capture_rng_state, restore_rng_state, save_checkpoint,
)
from palette.config import ConfigError, TrainConfig, config_differences, load_config, micro_batches
from palette.distributed import (
    all_reduce, arithmetic_of, barrier, device_peak_flops, gather_objects, group_norm_keeps_channels_last, set_tf32,
    setup_distributed,
)
from palette.ema import EMA
from palette.files import atomic_write

RESUME_EXIT_CODE = 75  # EX_TEMPFAIL: checkpoint saved, run again to resume
NONFINITE_LOSS_EXIT_CODE = 65  # EX_DATAERR: loss became NaN/inf; last good checkpoint kept
CONFIG_EXIT_CODE = 78  # EX_CONFIG: bad config, or a checkpoint from an incompatible config
PAPER_SCALE_PARAMETERS = 100_000_000  # the paper's U-Net has 552 M; `public` 68 M, `small` 1.5 M


class TrainingPreempted(SystemExit):
    """Stopped early with a checkpoint saved; exits with RESUME_EXIT_CODE if not caught."""

    def __init__(self, reason: str, checkpoint: Path | None):
        super().__init__(RESUME_EXIT_CODE)
        self.reason, self.checkpoint = reason, checkpoint

    def __str__(self) -> str:
        return f"training stopped ({self.reason}); checkpoint {self.checkpoint}; run again to resume"


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or inf."""


# ----------------------------------------------------------------------------- model and losses
def build_model(config: TrainConfig) -> nn.Module:
    """The U-Net of `config.preset`; the regression baseline sees the source only and the
    unconditional model (conditioning: none) the noisy target only (3 channels each)."""
    from palette.unet import build_unet

    overrides = dict(config.model_overrides)
    if config.objective == "regression" or config.conditioning == "none":
        overrides["in_channels"] = 3
    return build_unet(config.preset, **overrides)


def regression_loss(model, source: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """The paper's regression baseline: ||f(x) - y||^2, over the pixels the model must produce."""
    from palette.diffusion import generated_pixel_mean

    gamma = torch.ones(source.shape[0], device=source.device)  # unused by the task; kept constant
    return generated_pixel_mean((model(source, gamma).float() - target).pow(2), mask)


@torch.no_grad()
def regression_predict(model: nn.Module, source: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """One forward pass of a regression model; known pixels of masked tasks are kept from the source."""
    from palette.diffusion import keep_known_pixels

    gamma = torch.ones(source.shape[0], device=source.device)
    return keep_known_pixels(model(source, gamma).float().clamp(-1, 1), source, mask)


def learning_rate(step: int, config: TrainConfig) -> float:
    """Linear warmup to `lr` over `warmup_steps`, then constant (docs/paper.md)."""
    if config.warmup_steps and step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    return config.lr


# ----------------------------------------------------------------------------- optimizer
def build_optimizer(model: nn.Module, config: TrainConfig, device: torch.device, fused: bool | None = None) -> torch.optim.Adam:
    fused = (config.fused_adam and device.type == "cuda") if fused is None else fused
    return torch.optim.Adam(
        model.parameters(), lr=config.lr, betas=tuple(config.adam_betas), eps=config.adam_eps,
        weight_decay=config.weight_decay, fused=fused or None,
    )


# ----------------------------------------------------------------------------- data
def training_files(config: TrainConfig) -> list[Path]:
    """config.train_files: a file list, a folder of images, or None for the installed photos."""
    from palette import data

    if config.train_files is None:
        files = list(data.demo_photo_paths())
    else:
        location = Path(config.train_files)
        if location.is_dir():
            from palette.imageio import list_images

            files = list_images(location, recursive=True)
        elif location.is_file():  # relative entries: from the working folder, else from the list's folder
            files = [f if Path(f).is_absolute() or Path(f).exists() else location.parent / f
                     for f in data.read_file_list(location)]
        else:
            raise ConfigError(f"train config: key 'train_files' has value {config.train_files!r}: no such file or folder")
    if not files:
        raise ConfigError(f"train config: key 'train_files' has value {config.train_files!r}: no images found")
    return [Path(f) for f in files]


def epoch_permutation(length: int, seed: int, epoch: int) -> torch.Tensor:
    """The data order of one epoch: a function of (seed, epoch) only."""
    generator = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0]))
    return torch.randperm(length, generator=generator)


NOISE_STREAM = 1  # keeps the noise seeds apart from the data-order seeds (seed, epoch)


def noise_generator(seed: int, sample: int, device: torch.device) -> torch.Generator:
    """The generator of sample `sample`'s gamma and noise: a function of (seed, sample) only."""
    value = int(np.random.SeedSequence([seed, NOISE_STREAM, sample]).generate_state(1, np.uint64)[0])
    return torch.Generator(device=device).manual_seed(value)


class SampleStream(torch.utils.data.Sampler):
    """Endless batches of (epoch, index, n) for this rank, starting at global sample `start`.

    Global sample n is index perm(seed, n // N)[n % N] of epoch n // N. An optimizer step takes
    `batch_size` consecutive samples; micro-batch k of rank r is its slice (k * world + r).
    """

    def __init__(self, length, seed, batch_size, grad_accumulation, rank, world_size, start):
        self.length, self.seed, self.start = length, seed, start
        self.batch_size, self.rank, self.world_size = batch_size, rank, world_size
        self.micro_batches = grad_accumulation
        self.micro_batch_size = batch_size // (grad_accumulation * world_size)
        self._epoch, self._permutation = None, None

    def _sample(self, n: int) -> tuple[int, int, int]:
        epoch = n // self.length
        if epoch != self._epoch:
            self._epoch, self._permutation = epoch, epoch_permutation(self.length, self.seed, epoch)
        return epoch, int(self._permutation[n % self.length]), n

    def __iter__(self):
        step_start = self.start
        while True:
            for k in range(self.micro_batches):
                first = step_start + (k * self.world_size + self.rank) * self.micro_batch_size
                yield [self._sample(n) for n in range(first, first + self.micro_batch_size)]
            step_start += self.batch_size


class EpochIndexed(torch.utils.data.Dataset):
    """dataset[(epoch, index, n)] = the item `index` of `epoch` (PairedDataset items depend on
    both), with "sample": n, its number in the run (it seeds the item's diffusion noise)."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, key):
        epoch, index, sample = key
        self.dataset.set_epoch(epoch)
        return {**self.dataset[index], "sample": sample}


def make_loader(config: TrainConfig, start_sample: int, accumulation: int, rank: int, world_size: int, pin_memory: bool):
    from palette.data import PairedDataset

    dataset = PairedDataset(training_files(config), config.task, config.image_size, seed=config.seed, train=True)
    stream = SampleStream(len(dataset), config.seed, config.batch_size, accumulation, rank, world_size, start_sample)
    return torch.utils.data.DataLoader(
        EpochIndexed(dataset), batch_sampler=stream, num_workers=config.num_workers, pin_memory=pin_memory,
        generator=torch.Generator().manual_seed(config.seed),  # its base seed must not draw from the global RNG
        worker_init_fn=ignore_stop_signals,
    )


# ----------------------------------------------------------------------------- signals
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2)


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


def lock_workdir(workdir: Path):
    """Refuse a second trainer on the same work folder (the OS drops the lock if we die)."""
    import fcntl

    workdir.mkdir(parents=True, exist_ok=True)
    lock = open(workdir / "train.lock", "a+")
    try:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip() or "?"
        lock.close()
        raise CheckpointError(f"another trainer (pid {holder}) is using the work folder {workdir}") from None
    lock.seek(0)
    lock.truncate()
    lock.write(f"{os.getpid()}\n")
    lock.flush()
    return lock


# ----------------------------------------------------------------------------- logs
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


# ----------------------------------------------------------------------------- the loop
def train(config: dict | TrainConfig | str | Path, workdir: str | Path, final_checkpoint: str | Path | None = None,
          allow_cpu_paper_scale: bool = False) -> Path:
    """Train to `config.steps`, resuming from `workdir`; write the final EMA checkpoint.

    A network of PAPER_SCALE_PARAMETERS or more on a CPU is refused (ConfigError) unless
    `allow_cpu_paper_scale` (`palette train --allow-cpu-paper-scale`) says it is meant.

    The final checkpoint (default WORKDIR/final.pt) is written atomically, with the CSV log
    beside it (same name, .csv). Raises TrainingPreempted (a SystemExit with RESUME_EXIT_CODE)
    after saving when stopped by a signal or the time budget, NonFiniteLossError on NaN/inf,
    CheckpointError when the work folder holds only unusable or incompatible checkpoints.
    """
    started = time.monotonic()
    config = load_config(config)
    workdir = Path(workdir)
    final_checkpoint = Path(final_checkpoint) if final_checkpoint is not None else workdir / "final.pt"
    rank, world_size, device = setup_distributed(config.device)
    is_main = rank == 0
    accumulation = micro_batches(config, world_size)  # micro-batches per step on each process
    if device.type == "cpu" and not allow_cpu_paper_scale:  # before the work folder is made
        with torch.device("meta"):
            parameters = sum(p.numel() for p in build_model(config).parameters())
        if parameters >= PAPER_SCALE_PARAMETERS:
            raise ConfigError(
                f"train config: preset {config.preset!r} ({parameters / 1e6:.1f} M parameters, batch "
                f"{config.batch_size}, {config.steps} steps) would train on a CPU; pass --allow-cpu-paper-scale "
                "if that is meant, or choose a smaller preset (tiny, small) or a GPU")
    workdir_lock = lock_workdir(workdir) if is_main else None  # held until this function returns

    # --- speed switches
    use_bf16 = config.precision == "bf16" or (config.precision == "auto" and device.type == "cuda")
    if device.type == "cuda":
        set_tf32(config.tf32)
        torch.backends.cudnn.benchmark = True
    channels_last = config.channels_last is True or (config.channels_last == "auto" and device.type == "cuda" and (
        config.compile or group_norm_keeps_channels_last(device)))  # compiled GroupNorm keeps the layout
    memory_format = torch.channels_last if channels_last else torch.contiguous_format

    # --- analytic FLOPs for MFU: 3 x forward (forward + backward) per image (before any RNG is set)
    from palette.unet import forward_flops

    with torch.device("meta"):
        flops_per_image = 3 * forward_flops(build_model(config), config.image_size)
    peak = device_peak_flops(device, arithmetic_of(device, use_bf16, config.tf32))

    # --- model, EMA, optimizer (the seed fixes the initial weights)
    torch.manual_seed(config.seed)
    raw_model = build_model(config).to(device, memory_format=memory_format)
    ema = EMA(raw_model, config.ema_decay)
    optimizer = build_optimizer(raw_model, config, device)

    # --- resume
    checkpoints = CheckpointFolder(workdir / "checkpoints")
    step, resumed_from = 0, None
    loss_sum = torch.zeros((), device=device)  # losses since the last log row, summed on the device (no sync per step)
    loss_count = 0
    found = checkpoints.load_latest()
    if found is None:
        torch.manual_seed(config.seed + 1 + rank)  # dropout streams differ per rank
        np.random.seed(config.seed + rank)
        random.seed(config.seed + rank)
    else:
        state, resumed_from = found
        differences = config_differences(state["config"], config)
        if differences:
            raise CheckpointError(f"checkpoint {resumed_from} comes from an incompatible config:\n  "
                                  + "\n  ".join(differences) + "\nuse a new work folder, or restore these values")
        if state["step"] > config.steps:
            raise CheckpointError(f"checkpoint {resumed_from} is at step {state['step']}, past this config's "
                                  f"steps={config.steps}; raise steps, or use a new work folder to train afresh")
        raw_model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        for group in optimizer.param_groups:  # the implementation is this machine's choice, not the checkpoint's
            group["fused"] = optimizer.defaults["fused"]
            group["foreach"] = optimizer.defaults["foreach"]
        step = state["step"]
        if len(state["ranks"]) == world_size:
            restore_rng_state(state["ranks"][rank]["rng"])
            loss_sum.fill_(state["ranks"][rank]["loss_sum"])  # the log row in progress
            loss_count = state["ranks"][rank]["loss_count"]
        else:  # a different number of GPUs: fresh, seeded dropout streams (data and noise need none)
            torch.manual_seed(config.seed + 1 + rank + 7919 * step)
        del state

    model = torch.compile(raw_model) if config.compile else raw_model
    if world_size > 1:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    def network(x, gamma):
        """The U-Net under bf16 autocast (if on) and in the chosen memory layout."""
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
            return model(x.contiguous(memory_format=memory_format), gamma)

    from palette.degradations import task_uses_mask

    uses_mask = task_uses_mask(config.task)

    def loss_of(batch) -> torch.Tensor:
        source = batch["source"].to(device, non_blocking=True)
        target = batch["target"].to(device, non_blocking=True)
        mask = batch["mask"].to(device, non_blocking=True) if uses_mask else None
        if config.objective == "regression":
            return regression_loss(network, source, target, mask)
        from palette.diffusion import diffusion_loss, without_source

        generators = [noise_generator(config.seed, n, device) for n in batch["sample"].tolist()]
        if config.conditioning == "none":  # the imputation baseline models the targets alone, every pixel
            return diffusion_loss(without_source(network), target, target, None, loss_type=config.loss, generator=generators)
        return diffusion_loss(network, source, target, mask, loss_type=config.loss, generator=generators)

    # --- logs (rank 0)
    loader = make_loader(config, step * config.batch_size, accumulation, rank, world_size, pin_memory=device.type == "cuda")
    csv_file = csv_writer = tensorboard = None
    if is_main:
        workdir.mkdir(parents=True, exist_ok=True)
        csv_file, csv_writer = open_csv_log(workdir / "log.csv", step)
        if config.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            tensorboard = SummaryWriter(str(workdir / "tensorboard"), purge_step=step if step else None)
    from tqdm import tqdm

    progress = tqdm(total=config.steps, initial=step, disable=not (is_main and config.progress_bar),
                    dynamic_ncols=True, desc=config.name)

    def say(message: str) -> None:
        if is_main:
            progress.write(message, file=sys.stderr)

    if resumed_from is not None:
        say(f"resumed from {resumed_from} at step {step}")
    say(f"{config.objective} {config.task} | preset {config.preset} | {device} x{world_size} | "
        f"{'bf16' if use_bf16 else 'fp32'}{' channels_last' if channels_last else ''}"
        f"{' compiled' if config.compile else ''} | batch {config.batch_size} = "
        f"{accumulation} x {world_size} x {config.batch_size // (accumulation * world_size)}")

    def save(keep: bool = False) -> Path | None:
        """Checkpoint the full training state (after checking the loss is still finite)."""
        mean_loss_or_stop()
        ranks = gather_objects({"rng": capture_rng_state(), "loss_sum": loss_sum.item(),
                                "loss_count": loss_count}, world_size)
        path = None
        if is_main:
            path = checkpoints.save({
                "format": FORMAT_VERSION, "kind": "training", "step": step,
                "samples_seen": step * config.batch_size, "config": config.to_dict(),
                "objective": config.objective, "task": config.task,
                "model": raw_model.state_dict(), "ema": ema.state_dict(),
                "optimizer": optimizer.state_dict(), "ranks": ranks,
            }, keep=keep)
        return path

    def mean_loss_or_stop() -> float:
        """Mean loss over the steps since the last log row; stops on NaN/inf (one host sync)."""
        nonlocal finite_until
        total = all_reduce(loss_sum.clone(), world_size).item() / world_size
        if not math.isfinite(total):
            good = checkpoints.last if checkpoints.last.exists() else None
            raise NonFiniteLossError(
                f"loss became {total} between step {finite_until} and step {step}; training stopped. "
                f"Last good checkpoint: {good or 'none'} (resume from it with a lower lr or after checking the data)")
        finite_until = step
        return total / max(loss_count, 1)

    finite_until = first_step = step
    last_log_time, last_log_step = time.monotonic(), step
    step_seconds, save_seconds = 0.0, 0.0
    raw_model.train()
    try:
        with StopSignals() as signals:
            batches = start_workers(loader)  # under StopSignals: a signal from here on saves and stops
            while step < config.steps:
                step_started = time.monotonic()
                lr = learning_rate(step, config)
                for group in optimizer.param_groups:
                    group["lr"] = lr

                # forward / backward over the micro-batches; DDP syncs gradients on the last one
                for micro_step in range(accumulation):
                    last_micro = micro_step == accumulation - 1
                    sync = nullcontext() if (world_size == 1 or last_micro) else model.no_sync()
                    with sync:
                        loss = loss_of(next(batches)) / accumulation
                        loss.backward()
                    loss_sum += loss.detach()
                loss_count += 1
                if config.grad_clip_norm:
                    torch.nn.utils.clip_grad_norm_(raw_model.parameters(), config.grad_clip_norm)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                ema.update()
                step += 1
                progress.update(1)
                if step == first_step + 1:  # speed is timed from here: the first step compiles, autotunes, warms up
                    if device.type == "cuda":
                        torch.cuda.synchronize(device)
                    last_log_time, last_log_step = time.monotonic(), step

                if step % config.log_every == 0 or step == config.steps:
                    mean_loss = mean_loss_or_stop()  # syncs, so the timing below is honest
                    loss_sum.zero_()
                    loss_count = 0
                    now = time.monotonic()
                    timed_steps = step - last_log_step  # 0 on the first step of this process
                    images_per_s = timed_steps * config.batch_size / (now - last_log_time) if timed_steps else None
                    mfu = flops_per_image * images_per_s / world_size / peak if peak and images_per_s else None
                    if timed_steps:
                        step_seconds = (now - last_log_time) / timed_steps  # synchronised timing
                    last_log_time, last_log_step = now, step
                    if is_main:
                        row = {"step": step, "loss": f"{mean_loss:.6g}", "lr": f"{lr:.6g}",
                               "images_per_s": "" if images_per_s is None else f"{images_per_s:.4g}",
                               "mfu": "" if mfu is None else f"{mfu:.4f}", "elapsed_s": f"{now - started:.1f}"}
                        csv_writer.writerow(row)
                        csv_file.flush()
                        if tensorboard is not None:
                            for key in ("loss", "lr", "images_per_s", "mfu"):
                                if row[key]:
                                    tensorboard.add_scalar(f"train/{key}", float(row[key]), step)
                        progress.set_postfix(loss=f"{mean_loss:.4f}", img_s=row["images_per_s"] or "-",
                                             mfu="-" if mfu is None else f"{100 * mfu:.1f}%")

                # stop checks: a signal, or the time budget about to run out (with room to save)
                step_seconds = max(step_seconds, time.monotonic() - step_started)
                stop = signals.received
                if stop is None and config.time_budget is not None:
                    if time.monotonic() - started + 2 * step_seconds + 2 * save_seconds + 5 > config.time_budget:
                        stop = "time budget"
                if world_size > 1:  # every rank must stop at the same step
                    flag = all_reduce(torch.tensor(float(stop is not None), device=device), world_size, "max")
                    stop = stop or ("another rank stopped" if flag.item() else None)
                if stop is not None and step < config.steps:
                    path = save()
                    barrier(world_size)  # no rank exits (and so ends the job) before rank 0 has written
                    raise TrainingPreempted(stop, path)
                if step % config.checkpoint_every == 0 or step == config.steps:
                    save_started = time.monotonic()
                    save(keep=bool(config.keep_every) and step % config.keep_every == 0)
                    save_seconds = time.monotonic() - save_started
                    last_log_time += save_seconds  # images/s measures training, not saving

        # --- the final checkpoint: weights and EMA only, atomically at the rule's output path
        if is_main:
            save_checkpoint({
                "format": FORMAT_VERSION, "kind": "final", "step": step, "config": config.to_dict(),
                "objective": config.objective, "task": config.task,
                "model": raw_model.state_dict(), "ema": ema.state_dict(),
            }, final_checkpoint)
            csv_file.flush()
            with atomic_write(final_checkpoint.with_suffix(".csv")) as handle:
                handle.write((workdir / "log.csv").read_bytes())
            say(f"done: {step} steps; final EMA checkpoint {final_checkpoint}")
        barrier(world_size)
        return final_checkpoint
    finally:
        progress.close()
        if workdir_lock is not None:
            workdir_lock.close()
        if csv_file is not None:
            csv_file.close()
        if tensorboard is not None:
            tensorboard.close()


# ----------------------------------------------------------------------------- command line
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="training config YAML (schema: palette/schemas/train.schema.yaml)")
    parser.add_argument("--workdir", required=True, help="work folder: checkpoints, logs; resumed from if it holds a checkpoint")
    parser.add_argument("--final", default=None, help="where to write the final EMA checkpoint (default WORKDIR/final.pt)")
    parser.add_argument("--steps", type=int, default=None, help="override config 'steps'")
    parser.add_argument("--time-budget", type=float, default=None,
                        help=f"seconds this run may take; it saves and exits with code {RESUME_EXIT_CODE} before then")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override any config key (VALUE parsed as YAML), e.g. --set lr=2e-4")
    parser.add_argument("--allow-cpu-paper-scale", action="store_true",
                        help=f"train a network of {PAPER_SCALE_PARAMETERS // 10**6} M parameters or more on a CPU "
                             "(refused otherwise: the paper's U-Net would take years there)")
    parser.add_argument("--no-lease", action="store_true",
                        help="do not lease a GPU through palette.lease (it is skipped anyway when CUDA_VISIBLE_DEVICES is set)")
    parser.add_argument("--lease-wait", type=float, default=0.0,
                        help=f"seconds to wait for a free GPU; none free -> exit code {RESUME_EXIT_CODE} (try again later)")


def run(args: argparse.Namespace) -> int:
    import yaml

    overrides = {}
    for item in args.set:
        key, separator, value = item.partition("=")
        if not separator:
            print(f"palette train: --set expects KEY=VALUE, got {item!r}", file=sys.stderr)
            return CONFIG_EXIT_CODE
        try:
            overrides[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as error:
            print(f"palette train: --set {item!r}: the value is not YAML ({getattr(error, 'problem', error)})",
                  file=sys.stderr)
            return CONFIG_EXIT_CODE
    if args.steps is not None:
        overrides["steps"] = args.steps
    if args.time_budget is not None:
        overrides["time_budget"] = args.time_budget
    try:
        config = load_config(args.config, **overrides)
        if not args.no_lease and "WORLD_SIZE" not in os.environ and config.device != "cpu":
            from palette.lease import LeaseError, lease_for_job

            try:
                lease_for_job(1, config.device, wait_seconds=args.lease_wait)
            except LeaseError as error:
                print(f"palette train: {error}; try again later", file=sys.stderr)
                return RESUME_EXIT_CODE
        train(config, args.workdir, args.final, allow_cpu_paper_scale=args.allow_cpu_paper_scale)
    except (ConfigError, CheckpointError) as error:
        print(f"palette train: {error}", file=sys.stderr)
        return CONFIG_EXIT_CODE
    except NonFiniteLossError as error:
        print(f"palette train: {error}", file=sys.stderr)
        return NONFINITE_LOSS_EXIT_CODE
    except TrainingPreempted as stopped:
        if os.environ.get("RANK", "0") == "0":
            print(f"palette train: {stopped}", file=sys.stderr)
        return RESUME_EXIT_CODE
    finally:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    return 0
