"""The workflow's import_checkpoint job (rules/train.smk): an external experiment's model brought
into RESULTS/checkpoints (palette.external defines the role; docs/import.md, "In the workflow: the
external role").

The model is converted (palette.import_public) or copied byte for byte, checked by loading it as
sampling will (the network its config describes, finite weights) and against the experiment (task,
objective, dataset.image_size), and described in NAME.external.json beside it: where it came from
and how it departs from the paper, which the report reads without torch.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from palette.checkpoint import load_checkpoint, load_model
from palette.departures import training_departures
from palette.external import CHECKPOINT_LABEL, IMPORTED_LABEL
from palette.files import atomic_write
from palette.import_public import import_checkpoint


def sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _mismatch(state: dict, expected: dict, where: str, shown: str) -> str | None:
    """How the model in `state` differs from what the experiment declares, or None."""
    config = state.get("config") or {}
    task, objective = config.get("task", state.get("task")), state.get("objective", config.get("objective"))
    if task != expected["task"]:
        return f"key '{where}.train.task' is {expected['task']!r}, but {shown} holds a model for {task!r}"
    if objective != expected["objective"]:
        return f"key '{where}.train.objective' is {expected['objective']!r}, but {shown} holds a {objective} model"
    size = config.get("image_size")
    if size != expected["image_size"]:
        return (f"{shown} holds a model trained at {size}x{size} (its config's image_size), but dataset.image_size "
                f"is {expected['image_size']}: a model is evaluated at the size it was trained at")
    return None


def bring_in(name: str, source: dict, expected: dict, output: str | Path, record_path: str | Path) -> dict:
    """The import_checkpoint job for experiment `name`: `source` is {"checkpoint": PATH} or
    {"import": {"network", "config", "ema"}}; `expected` holds the experiment's task and
    objective and dataset.image_size. Writes the checkpoint to `output` (a copy, byte for byte,
    or palette import's conversion) once it loads and fits, and the record to `record_path`;
    returns the record. The user's files are only read."""
    where, output = f"experiments.{name}", Path(output)
    if source.get("checkpoint"):
        given = Path(source["checkpoint"])
        state = load_checkpoint(given)  # CheckpointError: unreadable, corrupted, another format
        problem = _mismatch(state, expected, where, f"{where}.checkpoint {given}")
        if problem:
            raise ValueError(problem)
        load_model(given)  # its weights fit the network its config describes, and are finite
        with open(given, "rb") as handle, atomic_write(output) as copy:
            while block := handle.read(1 << 20):
                copy.write(block)
        files = {"checkpoint": {"name": str(given), "sha256": sha256(given)}}
    else:
        spec = source["import"]
        import_checkpoint(spec["config"], output, network=spec.get("network"), ema=spec.get("ema"))
        try:  # the converted file, checked by loading it as sampling will
            state = load_checkpoint(output)
            problem = _mismatch(state, expected, where, f"{where}.import ({spec['config']})")
            if problem:
                raise ValueError(problem)
            load_model(output)
        except BaseException:
            output.unlink(missing_ok=True)
            raise
        files = {role: {"name": str(spec[role]), "sha256": entry["sha256"]}
                 for role, entry in state["imported"]["files"].items()}
    imported = state.get("imported")
    config = state.get("config") or {}
    record = {
        "experiment": name,
        "label": IMPORTED_LABEL if imported else CHECKPOINT_LABEL,
        "source": dict(source),
        "files": files,
        "kind": state.get("kind"),
        "step": state.get("step"),
        "task": config.get("task"),
        "objective": state.get("objective", config.get("objective")),
        "image_size": config.get("image_size"),
        # an imported model's departures are palette import's; one of ours departs by its training settings
        "departures": list(imported["departures"]) if imported else training_departures(config),
        "sampler_departures": list(imported["sampler_departures"]) if imported else [],
        "imported": imported,
    }
    with atomic_write(record_path, "w") as handle:
        json.dump(record, handle, indent=2, default=str)
    return record
