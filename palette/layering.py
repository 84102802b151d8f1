"""A user's workflow config layered over the defaults (config.yaml), and typed nested overrides.

Snakemake's `--configfile my.yaml` alone would replace config.yaml (the Snakefile reads config.yaml
only when no --configfile is given), so a short file holding just a `dataset:` block would be an
incomplete config. The workflow therefore layers every config file it is given over config.yaml,
one top-level key at a time:

- a top-level key the files give replaces config.yaml's whole value (a file that names its own
  `experiments` gets exactly those, never the demo's added to them; `study: {}` turns the demo's
  study off), and keys given by several files are merged, later files winning, as Snakemake does;
- a top-level key no file gives comes from config.yaml (the demo's recipe: its experiments,
  samplers and training settings, now on the user's data);
- results and work go to folders of their own: when the files give a `dataset` of another name
  than config.yaml's and no `results_dir` / `work_dir`, those become `results/NAME` and
  `work/NAME`, so a run on one's own photos never overwrites the demo's results.

The paper presets give every top-level key they use, so layering leaves them as they are.

Nested overrides on the command line: `--config 'train_defaults={steps: 10}'` is merged key by key
(Snakemake's own behaviour), but Snakemake reads the values inside braces as text ('10'); the
workflow reads them again as YAML (`typed`), so `steps: 10` is the integer 10.

Torch-free (the Snakefile and `palette plan` import it).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

RESULTS_ROOT, WORK_ROOT = "results", "work"


def deep_merge(base: dict, override: dict) -> dict:
    """`override` merged over `base`; nested mappings merged key by key, others replaced (copies:
    neither input is changed). Snakemake's update_config, and how a workflow experiment's `train:`
    is laid over `train_defaults` (palette.config re-exports it)."""
    result = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = deep_merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def layered(defaults: dict, given: dict) -> dict:
    """`given` (the config files, merged in order) layered over `defaults` one top-level key at a
    time, with results and work in folders named after a data set of its own (module docstring)."""
    result = {key: copy.deepcopy(value) for key, value in defaults.items() if key not in given}
    result.update(copy.deepcopy(given))
    name = (given.get("dataset") or {}).get("name")
    if name and name != (defaults.get("dataset") or {}).get("name"):
        if "results_dir" not in given:
            result["results_dir"] = f"{RESULTS_ROOT}/{name}"
        if "work_dir" not in given:
            result["work_dir"] = f"{WORK_ROOT}/{name}"
    return result


def typed(value: Any) -> Any:
    """A `--config` value with the text Snakemake left inside mappings and lists read as YAML
    ('10' -> 10, 'true' -> True, 'null' -> None); text that is not a YAML scalar stays text."""
    if isinstance(value, dict):
        return {key: typed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [typed(item) for item in value]
    if isinstance(value, str):
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            return value
        return parsed if parsed is None or isinstance(parsed, (bool, int, float, str)) else value
    return value


def workflow_config(defaults_file: Path, config_files: list[dict], command_line: dict) -> dict:
    """The workflow's config: the files layered over `defaults_file`, then the command line's
    `--config` values merged key by key (typed)."""
    defaults = yaml.safe_load(Path(defaults_file).read_text()) or {}
    given: dict = {}
    for values in config_files:
        given = deep_merge(given, values or {})
    return deep_merge(layered(defaults, given), typed(dict(command_line)))


def layer_workflow_config(workflow, config: dict) -> None:
    """Replace the Snakefile's `config` (in place) by `workflow_config` of what Snakemake was given:
    the --configfile files, the --config values, over config.yaml beside the Snakefile."""
    from snakemake.common.configfile import load_configfile

    files = [load_configfile(path) for path in workflow.overwrite_configfiles]
    layered = workflow_config(Path(workflow.basedir) / "config.yaml", files, dict(workflow.config_settings.config))
    config.clear()
    config.update(layered)
