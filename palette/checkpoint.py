"""Checkpoints: atomic, self-checking, loadable with `torch.load(weights_only=True)`.

A checkpoint is a plain dict of tensors, dicts, lists, numbers and strings (no pickled classes),
so it loads with `weights_only=True` on any torch >= 2.4. Every file carries a SHA-256 digest
of its own contents; a file that fails to load or whose digest does not match is refused with
an error naming it, because a flipped byte inside a tensor loads silently otherwise.

Writes are atomic: a temporary file in the same folder, flushed and fsync'ed, then renamed over
the target (and the folder fsync'ed), so a kill at any instant leaves either the old or the new
file, never half of one.

A work folder (`CheckpointFolder`) holds
    last.pt            the newest resumable state
    previous.pt        the one before it (the fallback when last.pt is damaged)
    damaged.pt         a last.pt that failed its check, moved aside instead of being rotated
    step_NNNNNNN.pt    permanent copies every `keep_every` steps (hard links where possible)

Training checkpoints hold: format, kind, step, samples_seen, config, objective, task, model,
ema, optimizer, and `ranks`: per process, its RNG states and its part of the log row in
progress (see palette.train). Final checkpoints (kind "final") drop the optimizer and
RNG state. `load_model` rebuilds the network from the stored config for sampling/evaluation.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from palette.errors import InputError

FORMAT_VERSION = 1
DIGEST_KEY = "sha256"

log = logging.getLogger(__name__)


class CheckpointError(InputError, RuntimeError):
    """A checkpoint that cannot be used (unreadable, damaged, or from an incompatible run)."""


# ----------------------------------------------------------------------------- digest
def content_digest(obj: Any) -> str:
    """SHA-256 over a canonical walk of a checkpoint's contents (keys sorted, tensors as bytes)."""
    hasher = hashlib.sha256()
    _feed(hasher, obj)
    return hasher.hexdigest()


def _feed(hasher, obj: Any) -> None:
    if isinstance(obj, torch.Tensor):
        tensor = obj.detach().cpu().contiguous().reshape(-1)
        hasher.update(f"T{tensor.dtype}{tuple(obj.shape)}".encode())
        if tensor.numel():
            hasher.update(tensor.view(torch.uint8).numpy())
    elif isinstance(obj, dict):
        hasher.update(f"D{len(obj)}".encode())
        for key in sorted(obj, key=repr):
            hasher.update(repr(key).encode())
            _feed(hasher, obj[key])
    elif isinstance(obj, (list, tuple)):
        hasher.update(f"L{len(obj)}".encode())
        for item in obj:
            _feed(hasher, item)
    else:
        hasher.update(f"V{obj!r}".encode())


# ----------------------------------------------------------------------------- one file
def save_checkpoint(state: dict, path: str | Path) -> Path:
    """Write `state` (plus its digest) to `path` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = _to_cpu(state)  # one device-to-host copy, shared by the digest and the file
    state[DIGEST_KEY] = content_digest(state)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_folder(path.parent)
    return path


def _to_cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {key: _to_cpu(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(value) for value in obj)
    return obj


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Load and verify a checkpoint; `CheckpointError` names the file if it is unusable."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a folder, not a checkpoint file")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is an empty file")
    try:
        with warnings.catch_warnings():  # a foreign pickle's protocol is not news; its refusal below is
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises RuntimeError, EOFError, UnpicklingError, ...
        raise CheckpointError(f"checkpoint {path} is unreadable (truncated, corrupted, or a pickle that "
                              f"weights_only loading refuses): {_torch_load_reason(error)}") from error
    if not isinstance(state, dict) or DIGEST_KEY not in state:
        raise CheckpointError(f"checkpoint {path} is not a palette checkpoint (no {DIGEST_KEY} digest)")
    stored = state.pop(DIGEST_KEY)
    if content_digest(state) != stored:
        raise CheckpointError(f"checkpoint {path} is corrupted: its contents do not match their SHA-256 digest")
    if state.get("format") != FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {path} has format {state.get('format')!r}, expected {FORMAT_VERSION}")
    return state


def _torch_load_reason(error: Exception) -> str:
    """The informative line of torch.load's error; its weights_only refusal is a page of advice
    (including to load with weights_only=False, which would run the file's code)."""
    boilerplate = ("Weights only load failed", "In PyTorch 2.6", "Re-running", "Please file an issue",
                   "Check the documentation", "WeightsUnpickler error:")
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    useful = [line for line in lines if not any(phrase in line for phrase in boilerplate)]
    return " ".join(useful) or (lines[0] if lines else type(error).__name__)


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ----------------------------------------------------------------------------- work folder
class CheckpointFolder:
    """last.pt / previous.pt / step_NNNNNNN.pt in one folder, with fallback on damage."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.last = self.folder / "last.pt"
        self.previous = self.folder / "previous.pt"
        self.damaged = self.folder / "damaged.pt"
        # file identities (inode, size, mtime) this process wrote or loaded, and ones it refused:
        # rotation must never demote a damaged last.pt over a good previous.pt
        self._known_good: set[tuple] = set()
        self._known_bad: set[tuple] = set()

    def permanent(self, step: int) -> Path:
        return self.folder / f"step_{step:07d}.pt"

    def save(self, state: dict, keep: bool = False) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        for stale in self.folder.glob(".*.tmp*"):  # left by a process killed mid-write
            stale.unlink(missing_ok=True)
        if self.last.exists():
            if self._passes_check(self.last):
                os.replace(self.last, self.previous)
            else:  # keep the good previous.pt; the damaged file is kept aside for a look
                log.error("%s failed its check: moved to %s, %s kept", self.last, self.damaged.name,
                          self.previous.name)
                os.replace(self.last, self.damaged)
        save_checkpoint(state, self.last)
        self._known_good.add(_identity(self.last))
        if keep:
            target = self.permanent(state["step"])
            target.unlink(missing_ok=True)
            try:
                os.link(self.last, target)
            except OSError:
                save_checkpoint(state, target)
        return self.last

    def _passes_check(self, path: Path) -> bool:
        """Whether `path` is a good checkpoint: known from this process, else loaded and verified."""
        identity = _identity(path)
        if identity in self._known_good or identity in self._known_bad:
            return identity in self._known_good
        try:
            load_checkpoint(path)
        except CheckpointError:
            self._known_bad.add(identity)
            return False
        self._known_good.add(identity)
        return True

    def candidates(self) -> list[Path]:
        """Files to try on resume, newest first."""
        permanent = sorted(self.folder.glob("step_*.pt"), reverse=True)
        return [p for p in (self.last, self.previous, *permanent) if p.is_file()]

    def load_latest(self, map_location="cpu") -> tuple[dict, Path] | None:
        """The newest checkpoint that loads and verifies; damaged ones are reported and skipped.

        Returns None when the folder holds no checkpoint at all; raises CheckpointError when
        it holds some but none is usable (never silently restarts from scratch).
        """
        refused = []
        for path in self.candidates():
            try:
                state = load_checkpoint(path, map_location)
            except CheckpointError as error:
                log.error("%s; trying the previous checkpoint", error)
                refused.append(str(error))
                self._known_bad.add(_identity(path))
                continue
            self._known_good.add(_identity(path))
            if refused:
                log.warning("resuming from %s (step %d) instead", path, state["step"])
            return state, path
        if refused:
            raise CheckpointError("no usable checkpoint in " + str(self.folder) + ":\n  " + "\n  ".join(refused))
        return None

    def latest_step(self) -> int:
        """The step of the newest checkpoint that opens (0 for none), read without loading the
        tensors or checking the digest: a progress reading between attempts, not a resume."""
        for path in self.candidates():
            try:
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", message="Detected pickle protocol")
                    return int(torch.load(path, map_location="cpu", weights_only=True, mmap=True)["step"])
            except Exception:  # damaged, cut off, not a checkpoint: the next candidate
                continue
        return 0


def _identity(path: Path) -> tuple:
    """Which file `path` is now: a rewrite or damage in place changes its size or mtime."""
    stat = path.stat()
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


# ----------------------------------------------------------------------------- RNG state as tensors
def capture_rng_state(generators: dict[str, torch.Generator] | None = None) -> dict:
    """Every RNG the training touches, as tensors and plain values (weights_only-safe)."""
    numpy_state = np.random.get_state()
    python_version, python_internal, python_gauss = random.getstate()
    state = {
        "torch_cpu": torch.get_rng_state(),
        "torch_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
        "numpy": {
            "kind": numpy_state[0],
            "keys": torch.from_numpy(numpy_state[1].astype(np.int64)),
            "pos": int(numpy_state[2]),
            "has_gauss": int(numpy_state[3]),
            "cached_gaussian": float(numpy_state[4]),
        },
        "python": {
            "version": python_version,
            "internal": torch.tensor(python_internal, dtype=torch.int64),
            "gauss": python_gauss,
        },
        "generators": {name: g.get_state() for name, g in (generators or {}).items()},
    }
    return state


def restore_rng_state(state: dict, generators: dict[str, torch.Generator] | None = None) -> None:
    torch.set_rng_state(state["torch_cpu"])
    if state["torch_cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["torch_cuda"][: torch.cuda.device_count()])
    numpy_state = state["numpy"]
    np.random.set_state((
        numpy_state["kind"], numpy_state["keys"].numpy().astype(np.uint32), numpy_state["pos"],
        numpy_state["has_gauss"], numpy_state["cached_gaussian"],
    ))
    python = state["python"]
    random.setstate((python["version"], tuple(int(v) for v in python["internal"].tolist()), python["gauss"]))
    for name, generator in (generators or {}).items():
        generator.set_state(state["generators"][name])


# ----------------------------------------------------------------------------- inference
def check_finite(weights: dict, path: str | Path, part: str) -> None:
    """Refuse weights holding a NaN or inf (a diverged run, an EMA decay of NaN): its digest is
    intact, so it would load, and every image sampled from it would be garbage. Names the file
    and the first bad tensor."""
    for name, tensor in weights.items():
        if isinstance(tensor, torch.Tensor) and tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise CheckpointError(f"checkpoint {path} has non-finite weights: {part} tensor {name!r} holds "
                                  f"{bad} NaN/inf values of {tensor.numel()} (a diverged or broken run; "
                                  f"use an earlier checkpoint)")


def load_model(path: str | Path, device: str | torch.device = "cpu", ema: bool = True):
    """Rebuild the U-Net from a checkpoint's stored config and load its EMA (or raw) weights.

    Returns (model in eval mode, TrainConfig). The checkpoint's `objective` ("diffusion" or
    "regression") and `task` are in the config.
    """
    from palette.config import load_config
    from palette.models import build_model

    state = load_checkpoint(path)
    config = load_config(state["config"])
    model = build_model(config)
    weights = state["ema" if ema else "model"]
    check_finite(weights, path, "ema" if ema else "model")
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as error:
        raise CheckpointError(f"checkpoint {path} does not match the network its config describes: {error}") from error
    return model.to(device).eval(), config
