"""Training configuration: one flat set of keys, validated against `schemas/train.schema.yaml`.

The schema is the single source of truth for names, types, defaults and descriptions;
`TrainConfig` mirrors it as a dataclass so the loop reads `config.lr` instead of string lookups
(a test keeps the two in step). Errors name the key and the offending value:

    >>> load_config({"lr": "fast"})
    ConfigError: train config: key 'lr' has value 'fast': 'fast' is not of type 'number'

`COMPATIBILITY_KEYS` lists the keys a checkpoint must agree on to be resumed (they shape the
weights, the optimizer state or the data stream); the others (steps, logging, speed switches)
may change between attempts.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from palette.tasks import UNMASKED_TRAINING_TASKS

SCHEMA_PATH = Path(__file__).parent / "schemas" / "train.schema.yaml"


class ConfigError(ValueError):
    """A training config that does not match the schema."""


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """See schemas/train.schema.yaml for what each key means and its default."""

    name: str
    task: str
    objective: str
    conditioning: str
    prediction: str
    residual: bool
    loss: str
    preset: str
    model_overrides: dict
    train_files: str | None
    image_size: int
    seed: int
    steps: int
    batch_size: int
    grad_accumulation: int
    micro_batch_size: int | None
    num_workers: int
    lr: float
    warmup_steps: int
    adam_betas: list
    adam_eps: float
    weight_decay: float
    grad_clip_norm: float | None
    ema_decay: float
    device: str
    precision: str
    tf32: bool
    channels_last: str | bool
    fused_adam: bool
    compile: bool
    log_every: int
    checkpoint_every: int
    keep_every: int | None
    time_budget: float | None
    tensorboard: bool
    progress_bar: bool

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> TrainConfig:
        return load_config({**self.to_dict(), **changes})


# Keys a resumed run must share with its checkpoint; everything else may change between attempts.
# The split of a step into GPUs and micro-batches may change too: each sample's data and diffusion
# noise are seeded by its number in the run (palette.train), so the split changes only float
# rounding and, where the model has dropout, the dropout masks.
COMPATIBILITY_KEYS = (
    "task", "objective", "loss", "preset", "model_overrides", "train_files", "image_size", "seed",
    "batch_size", "lr", "warmup_steps", "adam_betas", "adam_eps", "weight_decay", "grad_clip_norm",
    "ema_decay", "conditioning", "prediction", "residual",
)
# Keys added after runs existed: at their default they stay out of `work_key`'s digest, so adding
# them did not rename (and retrain) the work folders of existing runs.
LATER_KEYS = {"conditioning": "source", "prediction": "eps", "residual": False}


def deep_merge(base: dict, override: dict) -> dict:
    """`override` merged over `base`; nested mappings merged key by key, others replaced (copies:
    neither input is changed). How a workflow experiment's `train:` is laid over `train_defaults`."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


@lru_cache(maxsize=1)
def schema() -> dict:
    with open(SCHEMA_PATH) as f:
        return yaml.safe_load(f)


def defaults() -> dict[str, Any]:
    return {key: spec["default"] for key, spec in schema()["properties"].items()}


def load_config(source: str | Path | dict | TrainConfig | None = None, **overrides: Any) -> TrainConfig:
    """Read a YAML file (or take a dict), apply `overrides`, check it, fill defaults."""
    if isinstance(source, TrainConfig):
        values = source.to_dict()
    elif isinstance(source, (str, Path)):
        values = _read_yaml(Path(source))
    else:
        values = dict(source or {})
    values.update(overrides)
    _validate(values, origin=str(source) if isinstance(source, (str, Path)) else "train config")
    if isinstance(source, (str, Path)):  # a user's file: the defaults are the paper's 552 M-parameter run
        missing = [key for key in REQUIRED_IN_FILES if key not in values]
        if missing:
            raise ConfigError(f"train config {source}: names no {' and no '.join(repr(k) for k in missing)}; a config "
                              f"must name at least its task and model (e.g. task: inpainting, preset: tiny; "
                              f"see config/train/)")
    filled = {**defaults(), **values}
    _check_consistency(filled)
    return TrainConfig(**filled)


# Keys a config file must set: without them an empty file would start the paper's full-scale run.
REQUIRED_IN_FILES = ("task", "preset")


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise ConfigError(f"train config {path}: {'is a folder' if path.is_dir() else 'no such file'}")
    try:
        with open(path, encoding="utf-8") as f:
            values = yaml.safe_load(f)
    except yaml.YAMLError as error:  # one line: FILE line L column C: the problem
        from palette.errors import one_line

        where = "" if getattr(error, "problem_mark", None) else f"{path}: "
        raise ConfigError(f"train config {where}{one_line(error)}") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"train config {path}: not a UTF-8 text file ({error.reason})") from None
    if values is None:  # an empty file: the check for task and preset says what is missing
        return {}
    if not isinstance(values, dict):
        raise ConfigError(f"train config {path}: expected a mapping of keys to values, got {type(values).__name__}")
    return values


def _validate(values: dict, origin: str) -> None:
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema())
    known = list(schema()["properties"])
    for key in values:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else f"; known keys: {', '.join(known)}"
            raise ConfigError(f"{origin}: unknown key '{key}' (value {values[key]!r}){hint}")
    errors = sorted(validator.iter_errors(values), key=lambda e: list(e.absolute_path))
    if errors:
        error = errors[0]
        path = list(error.absolute_path)
        key = path[0] if path else "?"
        raise ConfigError(f"{origin}: key '{key}' has value {values.get(key)!r}: {error.message}")


def _check_consistency(values: dict) -> None:
    if values["conditioning"] == "none" and values["objective"] != "diffusion":
        raise ConfigError(f"train config: key 'conditioning' has value 'none', which needs objective 'diffusion' "
                          f"(got {values['objective']!r}): the unconditional model is used by diffusion imputation")
    if values["prediction"] != "eps" and values["objective"] != "diffusion":
        raise ConfigError(f"train config: key 'prediction' has value {values['prediction']!r}, which needs objective "
                          f"'diffusion' (got {values['objective']!r}): the regression baseline predicts the target")
    if values["residual"]:
        if (values["objective"] != "diffusion" or values["conditioning"] != "source"
                or values["task"] not in UNMASKED_TRAINING_TASKS):
            raise ConfigError(
                f"train config: key 'residual' is true, which needs objective 'diffusion' (got {values['objective']!r}), "
                f"conditioning 'source' (got {values['conditioning']!r}) and a task without a mask (got "
                f"{values['task']!r}): the source must be a degraded copy of the whole target"
            )
    batch, accumulation, micro = values["batch_size"], values["grad_accumulation"], values["micro_batch_size"]
    if micro is not None and accumulation != 1:
        raise ConfigError(
            f"train config: keys 'micro_batch_size' ({micro}) and 'grad_accumulation' ({accumulation}) are both "
            "set; set one (micro_batch_size derives grad_accumulation from the number of GPUs)"
        )
    if batch % (micro or accumulation):
        which = f"micro_batch_size={micro}" if micro is not None else f"grad_accumulation={accumulation}"
        raise ConfigError(f"train config: key 'batch_size' has value {batch}, which does not divide by {which}")


def micro_batches(config: TrainConfig, world_size: int) -> int:
    """Micro-batches per optimizer step on each of `world_size` processes (grad_accumulation, or
    derived from micro_batch_size); a ConfigError when the batch does not split evenly."""
    batch = config.batch_size
    if config.micro_batch_size is None:
        if batch % (config.grad_accumulation * world_size):
            raise ConfigError(f"train config: key 'batch_size' has value {batch}, which does not divide "
                              f"by grad_accumulation x GPUs = {config.grad_accumulation} x {world_size}")
        return config.grad_accumulation
    per_step = config.micro_batch_size * world_size
    if batch % per_step:
        raise ConfigError(f"train config: key 'batch_size' has value {batch}, which does not divide "
                          f"by micro_batch_size x GPUs = {config.micro_batch_size} x {world_size}")
    return batch // per_step


def work_key(values: dict) -> str:
    """A short digest of a config's COMPATIBILITY_KEYS (defaults filled in): two configs with the
    same key can resume each other's checkpoints, so a workflow can name work folders by it."""
    import hashlib
    import json

    filled = {**defaults(), **values}
    shared = {key: _normalise(filled[key]) for key in COMPATIBILITY_KEYS
              if not (key in LATER_KEYS and filled[key] == LATER_KEYS[key])}
    return hashlib.sha256(json.dumps(shared, sort_keys=True).encode()).hexdigest()[:12]


def config_differences(stored: dict, current: TrainConfig, keys=COMPATIBILITY_KEYS) -> list[str]:
    """Human-readable list of compatibility keys whose values differ ("lr: 0.0001 -> 0.0002")."""
    current_values = current.to_dict()
    stored = {**defaults(), **stored}
    return [
        f"{key}: checkpoint has {stored.get(key)!r}, config has {current_values[key]!r}"
        for key in keys
        if _normalise(stored.get(key)) != _normalise(current_values[key])
    ]


def _normalise(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_normalise(v) for v in value]
    if isinstance(value, dict):
        return {k: _normalise(v) for k, v in value.items()}
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value
