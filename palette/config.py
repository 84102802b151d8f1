"""Training configuration: one flat set of keys, validated against `schemas/train.schema.yaml`.

The schema is the single source of truth for names, types, defaults and descriptions;
`TrainConfig` mirrors it as a dataclass so the loop reads `config.lr` instead of string lookups
(a test keeps the two in step). Errors name the key and the offending value:

    >>> load_config({"lr": "fast"})
    ConfigError: train config: key 'lr' has value 'fast': 'fast' is not of type 'number'

Every number must be finite (YAML's .nan and .inf pass a JSON schema's ranges), the preset must
exist and the crop size must suit its U-Net (palette.unet_presets). Files are read by `read_yaml`,
which refuses a key given twice and anchors/aliases that expand past MAX_YAML_VALUES; the workflow
uses the same checks on its own config (rules/common.smk).

`COMPATIBILITY_KEYS` lists the keys a checkpoint must agree on to be resumed (they shape the
weights, the optimizer state or the data stream); the others (steps, logging, speed switches)
may change between attempts.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from palette.layering import deep_merge  # noqa: F401 (how a workflow experiment's train: is laid over train_defaults)

from palette.tasks import UNMASKED_TRAINING_TASKS
from palette.unet_presets import network_problem

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
    _check_consistency(filled, origin=str(source) if isinstance(source, (str, Path)) else "train config")
    return TrainConfig(**filled)


# A network this large trains on a CPU only when asked (palette train --allow-cpu-paper-scale): the
# paper's U-Net has 552 M parameters, `public` 68 M, `small` 1.5 M.
PAPER_SCALE_PARAMETERS = 100_000_000

# Keys a config file must set: without them an empty file would start the paper's full-scale run.
REQUIRED_IN_FILES = ("task", "preset")


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise ConfigError(f"train config {path}: {'is a folder' if path.is_dir() else 'no such file'}")
    try:
        values = read_yaml(path)
    except yaml.YAMLError as error:  # one line: FILE line L column C: the problem
        from palette.errors import one_line

        where = "" if getattr(error, "problem_mark", None) or isinstance(error, YAMLRefused) else f"{path}: "
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
    problem = non_finite(values)
    if problem:
        raise ConfigError(f"{origin}: {problem}")
    errors = sorted(validator.iter_errors(values), key=lambda e: list(e.absolute_path))
    if errors:
        error = errors[0]
        path = list(error.absolute_path)
        key = path[0] if path else "?"
        raise ConfigError(f"{origin}: key '{key}' has value {values.get(key)!r}: {error.message}")


def _check_consistency(values: dict, origin: str = "train config") -> None:
    problem = network_problem(values["preset"], values["model_overrides"], values["image_size"])
    if problem:
        raise ConfigError(f"{origin}: {problem}")
    if values["conditioning"] == "none" and values["objective"] != "diffusion":
        raise ConfigError(f"{origin}: key 'conditioning' has value 'none', which needs objective 'diffusion' "
                          f"(got {values['objective']!r}): the unconditional model is used by diffusion imputation")
    if values["prediction"] != "eps" and values["objective"] != "diffusion":
        raise ConfigError(f"{origin}: key 'prediction' has value {values['prediction']!r}, which needs objective "
                          f"'diffusion' (got {values['objective']!r}): the regression baseline predicts the target")
    if values["residual"]:
        if (values["objective"] != "diffusion" or values["conditioning"] != "source"
                or values["task"] not in UNMASKED_TRAINING_TASKS):
            raise ConfigError(
                f"{origin}: key 'residual' is true, which needs objective 'diffusion' (got {values['objective']!r}), "
                f"conditioning 'source' (got {values['conditioning']!r}) and a task without a mask (got "
                f"{values['task']!r}): the source must be a degraded copy of the whole target"
            )
    batch, accumulation, micro = values["batch_size"], values["grad_accumulation"], values["micro_batch_size"]
    if micro is not None and accumulation != 1:
        raise ConfigError(
            f"{origin}: keys 'micro_batch_size' ({micro}) and 'grad_accumulation' ({accumulation}) are both "
            "set; set one (micro_batch_size derives grad_accumulation from the number of GPUs)"
        )
    if batch % (micro or accumulation):
        which = f"micro_batch_size={micro}" if micro is not None else f"grad_accumulation={accumulation}"
        raise ConfigError(f"{origin}: key 'batch_size' has value {batch}, which does not divide by {which}")


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


# --- Checks shared with the workflow's config (rules/common.smk): a user's YAML, numbers, folders

# Values a config may hold once its anchors and aliases are expanded. A trainer config has about
# 50, the workflow's largest preset about 500; a "billion laughs" document of nine levels holds
# 10^9, which a schema validator (and Snakemake's merging) would expand in memory.
MAX_YAML_VALUES = 100_000


class YAMLRefused(yaml.YAMLError):
    """A YAML document `load_yaml` refuses: a key given twice, or aliases that expand too far.
    str() is 'FILE line L: PROBLEM'; `problem` alone is the text after the colon."""

    def __init__(self, mark, problem: str):
        super().__init__(f"{mark.name} line {mark.line + 1}: {problem}")
        self.problem = problem


class _CheckedLoader(yaml.SafeLoader):
    """yaml.SafeLoader that counts the values of the document as if every alias were written out,
    and refuses a mapping key given twice (YAML's parsers keep the last one silently)."""

    def __init__(self, stream, limit: int):
        super().__init__(stream)
        self.limit = limit
        self.values = 0  # values composed so far, aliases counted at their expanded size
        self.sizes: dict[int, int] = {}  # expanded size of each aliased node, by id
        self.open_anchors: set[str] = set()  # anchors of the nodes being composed

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            if event.anchor in self.open_anchors:  # &a [*a]: a document that contains itself
                raise YAMLRefused(event.start_mark, f"alias *{event.anchor} refers to the node that contains it; "
                                  "write the values out instead")
            node = super().compose_node(parent, index)
            self.values += self._expanded_size(node)
        else:
            anchor = getattr(event, "anchor", None)
            if anchor is not None:
                self.open_anchors.add(anchor)
            node = super().compose_node(parent, index)
            self.open_anchors.discard(anchor)
            self.values += 1
        if self.values > self.limit:
            raise YAMLRefused(event.start_mark, f"the document's anchors and aliases expand it past {self.limit:,} "
                              "values (a 'billion laughs' document?); write the values out instead")
        return node

    def _expanded_size(self, node) -> int:
        if id(node) not in self.sizes:
            if isinstance(node, yaml.SequenceNode):
                children = node.value
            elif isinstance(node, yaml.MappingNode):
                children = [child for pair in node.value for child in pair]
            else:
                children = []
            self.sizes[id(node)] = 1 + sum(self._expanded_size(child) for child in children)
        return self.sizes[id(node)]

    def compose_mapping_node(self, anchor):
        node = super().compose_mapping_node(anchor)
        node.written = list(node.value)  # the pairs as written: merging `<<` keys rewrites node.value
        return node

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            first_seen = {}
            for key_node, _ in getattr(node, "written", node.value):
                if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *defaults` is meant to be overridden
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = first_seen.setdefault(key, key_node)
                except TypeError:  # an unhashable key: PyYAML's own error says so
                    continue
                if first is not key_node:
                    raise YAMLRefused(key_node.start_mark, f"key {key!r} given twice (first at line "
                                      f"{first.start_mark.line + 1}); YAML would keep the second silently: remove one")
        return super().construct_mapping(node, deep)


def load_yaml(stream, limit: int = MAX_YAML_VALUES):
    """yaml.safe_load of a user's YAML (text or an open file), but a mapping key given twice, or
    anchors and aliases that expand the document past `limit` values or into itself, raise
    YAMLRefused naming the file (or '<unicode string>') and line."""
    loader = _CheckedLoader(stream, limit)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def read_yaml(path: str | Path, limit: int = MAX_YAML_VALUES):
    """`load_yaml` of the file at `path`."""
    with open(path, encoding="utf-8") as handle:
        return load_yaml(handle, limit)


def expanded_size(value, limit: int = MAX_YAML_VALUES) -> int:
    """Values in `value` (nested mappings and lists) counted as if written out: an object shared
    by YAML aliases counts at each place it appears (counted once each, so this stays quick); a
    structure that contains itself counts as `limit + 1`. For configs that Snakemake loaded."""
    sizes: dict[int, int] = {}

    def size(item) -> int:
        if not isinstance(item, (dict, list, tuple)):
            return 1
        if id(item) in sizes:
            return sizes[id(item)] if sizes[id(item)] is not None else limit + 1
        sizes[id(item)] = None  # being counted: meeting it again means it contains itself
        children = [part for pair in item.items() for part in pair] if isinstance(item, dict) else item
        sizes[id(item)] = min(1 + sum(size(child) for child in children), limit + 1)
        return sizes[id(item)]

    return size(value)


def non_finite(values, prefix: str = "") -> str | None:
    """The first NaN or infinite number in `values` (nested mappings and lists), as one line
    naming its key ('a.b[1]'); None when every number is finite. YAML reads .nan and .inf as
    floats, and NaN passes every minimum and maximum of a JSON schema."""
    if isinstance(values, dict):
        items = [(f"{prefix}.{key}" if prefix else str(key), value) for key, value in values.items()]
    elif isinstance(values, (list, tuple)):
        items = [(f"{prefix}[{index}]", value) for index, value in enumerate(values)]
    else:
        return None
    for where, value in items:
        if isinstance(value, float) and not math.isfinite(value):
            return f"key '{where}' has value {value}: not a finite number"
        problem = non_finite(value, where)
        if problem:
            return problem
    return None


def folder_problem(key: str, value: str, repository: Path) -> str | None:
    """Why `value` cannot be the folder a run writes into under config key `key`, in one line;
    None when it can. Refused: empty, the filesystem root, the repository or a folder above it
    (outputs would land among the project's own files, or a clean-up would take them), a file."""
    if not str(value).strip():
        return f"key '{key}' is empty: name a folder (relative to the working directory, or absolute)"
    folder = Path(os.path.abspath(value))
    repository = Path(os.path.abspath(repository))
    shown = repr(value) if str(folder) == value else f"{value!r} ({folder})"
    if folder == Path(folder.anchor):
        return f"key '{key}' is {value!r}, the filesystem root: name a folder of its own"
    if folder == repository:
        return f"key '{key}' is {value!r}, the repository itself ({repository}): name a folder inside it or elsewhere"
    if repository.is_relative_to(folder):
        return f"key '{key}' is {shown}, a folder above the repository: name a folder of its own"
    if folder.exists() and not folder.is_dir():
        return f"key '{key}' is {shown}, which is a file, not a folder"
    return None
