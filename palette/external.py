"""The workflow's `external` role: an experiment that names a model instead of training one
(docs/import.md, "In the workflow: the external role").

An external experiment gives either `checkpoint: PATH` (a checkpoint of ours, trained elsewhere or
converted by `palette import`) or `import: {network, config, ema}` (the public reproduction's own
files, converted by the workflow). Its `train` mapping declares only what the DAG must know before
any job runs: the model's task (which evaluation variants and paper rows apply) and objective,
and optionally a preset for `palette plan`'s pricing; the model itself says the rest. The rule
`import_checkpoint` (rules/train.smk) then writes RESULTS/checkpoints/NAME.pt like a trained one,
and everything downstream (sampling, evaluation, tables, report) treats it like any model.

- `external_problem`: what is wrong with an experiment's external settings, in one line, when the
  DAG is built. Torch-free and quick (only the small JSON config of an `import` is read), so a
  typo fails `snakemake -n`, not a job.
- The import_checkpoint job itself (torch) is palette.external_model, a layer above.
- `load_records`, `external_label`, `reported_numbers`, `reported_text`: what the report and the
  verdicts show of an external experiment.
"""

from __future__ import annotations

import json
from pathlib import Path

from palette.public_config import NETWORK_PATH, TASKS, lookup, read_public_config

EXTERNAL_ROLE = "external"
IMPORTED_LABEL = "public reproduction (imported)"  # a model `palette import` converted
CHECKPOINT_LABEL = "external checkpoint"  # one of ours, trained outside this run
# What an external experiment's `train` may declare: it is not trained here. Task and objective
# say what the model does; preset and model_overrides only price its sampling (palette plan).
EXTERNAL_TRAIN_KEYS = ("task", "objective", "preset", "model_overrides")
IMPORT_KEYS = ("network", "config", "ema")


def is_external(settings: dict) -> bool:
    return settings.get("role", "task_model") == EXTERNAL_ROLE


def _file_problem(key: str, value) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return f"key '{key}' is {value!r}: name a file"
    path = Path(value)
    if path.is_dir():
        return f"key '{key}' is {value!r}, a folder: name the file"
    if not path.is_file():
        shown = repr(value) if path.is_absolute() else f"{value!r} ({path.absolute()})"
        return f"key '{key}' is {shown}, which does not exist"
    return None


def external_problem(name: str, settings: dict, image_size: int, output: str | Path) -> str | None:
    """Why experiment `name` cannot be evaluated as configured, in one line naming the key; None
    when it can (or when it is not external and names no external model). `output` is the
    checkpoint the workflow writes for it; `image_size` is dataset.image_size."""
    where = f"experiments.{name}"
    given = [key for key in ("checkpoint", "import") if settings.get(key) is not None]
    if not is_external(settings):
        for key in ("checkpoint", "import", "reported", "reported_note"):
            if settings.get(key) not in (None, ""):
                return (f"key '{where}.{key}' is for an experiment with role external (a model evaluated, not "
                        f"trained here); this one has role {settings.get('role', 'task_model')}")
        return None
    if not given:
        return (f"{where}: role external evaluates a model it names: give 'checkpoint' (a checkpoint of ours "
                "or one palette import converted) or 'import' (the public reproduction's files)")
    if len(given) > 1:
        return f"{where}: gives both 'checkpoint' and 'import'; name the model once"
    extra = sorted(set(settings["train"]) - set(EXTERNAL_TRAIN_KEYS))
    if extra:
        return (f"key '{where}.train.{extra[0]}': an external experiment is not trained here; its train names only "
                f"{', '.join(EXTERNAL_TRAIN_KEYS)} (its model's task and objective; a preset prices its sampling)")
    if settings.get("segment_steps") is not None:
        return f"key '{where}.segment_steps': an external experiment is not trained here"
    if "checkpoint" in given:
        problem = _file_problem(f"{where}.checkpoint", settings["checkpoint"])
        if problem:
            return problem
        if Path(settings["checkpoint"]).resolve() == Path(output).resolve():
            return (f"key '{where}.checkpoint' is the workflow's own output for it ({output}): keep your "
                    "checkpoint elsewhere, the workflow copies it there")
    else:
        problem = _import_problem(where, settings, image_size)
        if problem:
            return problem
    for task in settings.get("reported") or {}:
        if task not in settings["evaluate_on"]:
            return (f"key '{where}.reported.{task}': not in {where}.evaluate_on, so no number of ours would "
                    "stand beside it")
    return None


def _import_problem(where: str, settings: dict, image_size: int) -> str | None:
    """The `import` mapping: its files exist, and its JSON config describes a model of the
    experiment's task at the run's image size (the conversion checks everything else)."""
    spec = settings["import"]
    for key in IMPORT_KEYS:
        if key in spec:
            problem = _file_problem(f"{where}.import.{key}", spec[key])
            if problem:
                return problem
    if "network" not in spec and "ema" not in spec:
        return (f"key '{where}.import': give 'network' (its N_Network.pth), 'ema' (its N_Network_ema.pth) or "
                "both; 'config' alone holds no weights")
    key = f"{where}.import.config"
    try:
        config = read_public_config(spec["config"])
        task = lookup(config, "model.which_model.args.task", f"config {spec['config']}")
        size = lookup(config, f"{NETWORK_PATH}.unet.image_size", f"config {spec['config']}")
    except (ValueError, OSError) as error:
        return f"key '{key}': {error}"
    declared = settings["train"]["task"]
    if TASKS.get(task) != declared:
        return (f"key '{where}.train.task' is {declared!r}, but {spec['config']} is a model for {task!r} "
                "(its model.which_model.args.task)")
    if settings["train"].get("objective", "diffusion") != "diffusion":
        return f"key '{where}.train.objective': the public reproduction's models are diffusion models"
    if size != image_size:
        return (f"key '{key}': {spec['config']} describes a {size}x{size} network ({NETWORK_PATH}.unet.image_size), "
                f"but dataset.image_size is {image_size}: a model is evaluated at the size it was trained at")
    return None


# ---------------------------------------------------------------------------------------------
# The report's view


def load_records(paths) -> dict[str, dict]:
    """The records the import_checkpoint jobs wrote, by experiment name."""
    records = {}
    for path in paths or []:
        path = Path(path)
        try:
            record = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: not the JSON record import_checkpoint writes ({error.msg})") from None
        name = record.get("experiment") if isinstance(record, dict) else None
        if not isinstance(name, str):
            raise ValueError(f"{path}: no 'experiment' key (not the record import_checkpoint writes)")
        records[name] = record
    return records


def external_label(settings: dict, record: dict | None = None) -> str:
    """What the report calls an external model: "public reproduction (imported)" for one palette
    import converted, "external checkpoint" for one of ours."""
    if record and isinstance(record.get("label"), str):
        return record["label"]
    return IMPORTED_LABEL if settings.get("import") is not None else CHECKPOINT_LABEL


def reported_numbers(settings: dict, task: str) -> dict:
    """The numbers the model's own project reports for one task variant (config `reported`)."""
    return dict((settings.get("reported") or {}).get(task) or {})


def reported_text(settings: dict, task: str) -> str:
    """One sentence for the verdicts' notes: what its project reports for this variant."""
    numbers = reported_numbers(settings, task)
    if not numbers:
        return ""
    shown = ", ".join(f"{metric.upper() if metric in ('fid', 'is', 'ca', 'pd') else metric} {value:g}"
                      for metric, value in numbers.items())
    note = settings.get("reported_note") or ""
    return f"Its own project reports {shown}" + (f" ({note})" if note else "") + "."
