"""Helpers shared by the stage files: paths, the experiment table, sampler choices, merged configs.

Kept free of torch (and of anything slow to import) so that `snakemake -n` stays fast.
"""

import hashlib
import json
from pathlib import Path

import yaml
from snakemake.utils import validate

from palette.attempts import MAX_SEGMENTS, RESUME_RETRIES as ATTEMPT_RETRIES
from palette.config import (
    MAX_YAML_VALUES,
    ConfigError,
    YAMLRefused,
    deep_merge,
    expanded_size,
    folder_problem,
    load_config,
    non_finite,
    read_yaml,
    schema as train_schema,
    work_key,
)
from palette.errors import schema_problem
from palette.external import external_problem, is_external
from palette.sampler_presets import resolve_sampler, sampler_problem
from palette.shards import shard_count
from palette.tasks import EVALUATION_TASKS, PAIRED_TASK
from palette.workflow_data import PLACES365_ARCHIVES


def check_config_input():
    """What must hold before the schema validator walks the config: the config files read again
    with our own YAML reader (Snakemake's keeps the last of two equal keys silently and expands
    aliases without a bound), the values counted as if every alias were written out (a 'billion
    laughs' config would take the validator minutes and gigabytes), and every number finite
    (YAML's .nan and .inf pass every minimum and maximum of a schema)."""
    if workflow.is_main_process:  # a job step re-reads the checked config
        for path in workflow.configfiles:
            try:
                read_yaml(path)
            except YAMLRefused as error:
                raise ValueError(f"config file {error}") from None
    if expanded_size(config) > MAX_YAML_VALUES:
        raise ValueError(
            f"config: more than {MAX_YAML_VALUES:,} values once its YAML aliases are expanded; "
            "write the values out instead"
        )
    problem = non_finite(config)
    if problem:
        raise ValueError(f"config: {problem}")


check_config_input()

# Our one-line message first: snakemake's validate prints the whole schema after it.
_problem = schema_problem(
    config,
    yaml.safe_load((Path(workflow.basedir) / "config" / "schema.yaml").read_text()),
)
if _problem:
    raise ValueError(_problem)
validate(config, "../config/schema.yaml")

RESULTS = config["results_dir"].rstrip("/")
WORK = config["work_dir"].rstrip("/")
DATASET = config["dataset"]
EXPERIMENTS = config["experiments"]
# Each sampler entry merged over its preset (palette.sampler_presets), so every job and the
# report see the complete settings.
SAMPLERS = {name: resolve_sampler(entry) for name, entry in config["samplers"].items()}
SAMPLING = config["sampling"]
TRAINING = config["training"]
EVALUATION = config["evaluation"]

# Retries of the long, resumable jobs (training, sampling): the main process resubmits them. A job
# step re-reading this file on a compute node must not retry by itself (a rule's `retries` would
# override the `--retries 0` Snakemake gives it), or it would resume past its time limit.
RESUME_RETRIES = ATTEMPT_RETRIES if workflow.is_main_process else 0

# The regression baselines are one forward pass: no sampler, one "sample" per input.
REGRESSION_SAMPLER = "regression"

# Experiments with role external name a model instead of training one (palette.external): the rule
# import_checkpoint writes their checkpoint, and the training rules never match them.
EXTERNAL_EXPERIMENTS = [
    name for name, settings in EXPERIMENTS.items() if is_external(settings)
]
TRAINED_EXPERIMENTS = [name for name in EXPERIMENTS if name not in EXTERNAL_EXPERIMENTS]


def experiment_pattern(names):
    """A wildcard constraint that matches exactly these experiments ("(?!)": none at all)."""
    return "|".join(names) if names else "(?!)"


def canonical(value):
    """`value` with every mapping's keys sorted, recursively. Snakemake compares params by their
    text, so two orderings of one mapping would otherwise count as a change and rerun jobs.
    """
    if isinstance(value, dict):
        return {key: canonical(value[key]) for key in sorted(value)}
    if isinstance(value, (list, tuple)):
        return [canonical(item) for item in value]
    return value


def is_regression(experiment):
    return train_config(experiment).get("objective") == "regression"


def train_config(experiment):
    """The trainer's config for one experiment: train_defaults, the experiment's own settings,
    the image size and a seed. Everything here goes through `params:`, so a change reruns
    exactly this experiment's training and what depends on it.

    An external experiment is not trained here: its config is what it declares of its model
    (task, objective, preset), without train_defaults, which describe this run's training.
    """
    if is_external(EXPERIMENTS[experiment]):
        merged = {"objective": "diffusion", **EXPERIMENTS[experiment]["train"]}
    else:
        merged = deep_merge(config["train_defaults"], EXPERIMENTS[experiment]["train"])
    merged["name"] = experiment
    merged.setdefault("image_size", DATASET["image_size"])
    merged.setdefault("seed", config["seed"])
    return canonical(merged)


def check_train_configs():
    """Check every experiment's trainer config as the trainer will (its schema, then its own
    checks: the U-Net preset, a crop size the network can take, keys that go together) now, so a
    typo fails the dry run with the experiment's name instead of a training job hours later.
    """
    import jsonschema

    validator = jsonschema.Draft202012Validator(train_schema())
    # an external experiment's model is checked by check_external and its import job
    for experiment in TRAINED_EXPERIMENTS:
        where = f"experiments.{experiment}.train (merged over train_defaults)"
        candidate = dict(train_config(experiment), train_files="train.txt")
        errors = sorted(
            validator.iter_errors(candidate), key=lambda error: list(error.path)
        )
        if errors:
            details = "; ".join(
                f"{'.'.join(map(str, e.path)) or '(top)'}: {e.message}" for e in errors
            )
            raise ValueError(f"{where}: {details}")
        try:
            load_config(candidate)
        except ConfigError as error:
            message = str(error).removeprefix("train config: ")
            given = deep_merge(
                config["train_defaults"], EXPERIMENTS[experiment]["train"]
            )
            if "image_size" not in given and message.startswith("key 'image_size'"):
                where = f"experiments.{experiment}.train (image_size from dataset.image_size)"
            raise ValueError(f"{where}: {message}") from None


def check_folders():
    """The folders a run writes into, and a folder or pairs data set's own folder: never empty,
    the filesystem root, the repository or a folder above it (outputs would land among the
    project's files, a data listing would take in the results); the data's folder must exist.
    """
    repository = Path(workflow.basedir)
    # evaluation.weights_dir receives the staged weights (rule stage_weights)
    folders = {
        "results_dir": config["results_dir"],
        "work_dir": config["work_dir"],
        "evaluation.weights_dir": EVALUATION["weights_dir"],
    }
    for key, folder in folders.items():
        problem = folder_problem(key, folder, repository)
        if problem:
            raise ValueError(f"config: {problem}")
    if DATASET["kind"] in ("folder", "paired"):
        root = DATASET["root"]
        problem = folder_problem("dataset.root", root, repository)
        if not problem and not Path(root).is_dir():
            shown = (
                repr(root)
                if Path(root).is_absolute()
                else f"{root!r} ({Path(root).absolute()})"
            )
            problem = (
                f"key 'dataset.root' is {shown}, which does not exist: "
                f"dataset.kind {DATASET['kind']} reads your images from it"
            )
        if problem:
            raise ValueError(f"config: {problem}")


def check_config():
    """Cross-key checks that a JSON schema cannot express, with messages that name the key."""

    def check_samplers(names, key):
        for sampler in names:
            if sampler not in SAMPLERS:
                raise ValueError(f"{key} names {sampler!r}, not defined under samplers")

    for name, settings in config["samplers"].items():
        problem = sampler_problem(settings)
        if problem:
            raise ValueError(f"samplers.{name}: {problem}")
    for name, experiment in EXPERIMENTS.items():
        check_samplers(experiment.get("samplers") or [], f"experiments.{name}.samplers")
        segments = len(segment_ends(name))
        if segments > MAX_SEGMENTS:
            key = (
                "segment_steps"
                if experiment["segment_steps"]
                else "training.segment_steps"
            )
            raise ValueError(
                f"experiments.{name}: {key} cuts {train_config(name)['steps']} steps into {segments} "
                f"train_segment jobs, more than the {MAX_SEGMENTS} one chain may have: raise {key}"
            )
        unconditional = train_config(name).get("conditioning") == "none"
        if unconditional != (experiment.get("role") == "unconditional_imputation"):
            raise ValueError(
                f"experiments.{name}: role 'unconditional_imputation' and train.conditioning 'none' go together"
            )
        if unconditional and not all(
            t.startswith(("inpainting", "uncropping"))
            for t in experiment["evaluate_on"]
        ):
            raise ValueError(
                f"experiments.{name}.evaluate_on: the unconditional model imputes masked pixels; "
                "it can only be evaluated on inpainting and uncropping variants"
            )
    check_samplers(SAMPLING["samplers"], "sampling.samplers")
    sweep = SAMPLING.get("sweep")
    if sweep:
        if sweep["experiment"] not in EXPERIMENTS:
            raise ValueError(
                f"sampling.sweep.experiment {sweep['experiment']!r} is not an experiment"
            )
        if sweep["task"] not in EXPERIMENTS[sweep["experiment"]]["evaluate_on"]:
            raise ValueError(
                f"sampling.sweep.task {sweep['task']!r} is not in experiments.{sweep['experiment']}.evaluate_on"
            )
        check_samplers(sweep["samplers"], "sampling.sweep.samplers")
    if REGRESSION_SAMPLER in SAMPLERS:
        raise ValueError(
            f"samplers: the name {REGRESSION_SAMPLER!r} is reserved for the regression baselines"
        )
    split = DATASET["split"]
    if abs(split["train"] + split["val"] + split["test"] - 1.0) > 1e-6:
        raise ValueError("dataset.split fractions must sum to 1")
    # The user's pairs carry their own degradation: `paired` and only `paired` applies to them.
    paired_data = DATASET["kind"] == "paired"
    for name, experiment in EXPERIMENTS.items():
        tasks = {"train.task": train_config(name)["task"]}
        tasks.update(
            {
                f"evaluate_on[{i}]": task
                for i, task in enumerate(experiment["evaluate_on"])
            }
        )
        for key, task in tasks.items():
            if paired_data and task != PAIRED_TASK:
                raise ValueError(
                    f"experiments.{name}.{key} is {task!r}: dataset.kind paired takes task {PAIRED_TASK!r} only"
                )
            if task == PAIRED_TASK and not paired_data:
                raise ValueError(
                    f"experiments.{name}.{key} is {task!r}: that task needs dataset.kind paired"
                )


def samplers_for(experiment, task=None):
    """Sampler names used for one experiment (and task variant: the sweep adds its samplers)."""
    if is_regression(experiment):
        return [REGRESSION_SAMPLER]
    names = list(EXPERIMENTS[experiment].get("samplers") or SAMPLING["samplers"])
    sweep = SAMPLING.get("sweep")
    if sweep and sweep["experiment"] == experiment and task in (None, sweep["task"]):
        names += [name for name in sweep["samplers"] if name not in names]
    return names


def evaluation_runs():
    """Every (experiment, task variant, sampler) the configuration asks for."""
    return [
        (experiment, task, sampler)
        for experiment, settings in EXPERIMENTS.items()
        for task in settings["evaluate_on"]
        for sampler in samplers_for(experiment, task)
    ]


def used_tasks():
    return sorted(
        {task for _, task, _ in evaluation_runs()}, key=EVALUATION_TASKS.index
    )


def sampler_settings(name):
    if name == REGRESSION_SAMPLER:
        return {"name": REGRESSION_SAMPLER, "steps": 1}
    return canonical(SAMPLERS[name])


def samples_per_input(experiment):
    return 1 if is_regression(experiment) else SAMPLING["samples_per_input"]


def config_hash():
    """A short digest of the validated configuration (shown in the report's run metadata)."""
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def metrics_files():
    return [f"{RESULTS}/metrics/{e}/{t}/{s}.json" for e, t, s in evaluation_runs()]


def table_files():
    return [f"{RESULTS}/tables/{experiment}.tsv" for experiment in EXPERIMENTS]


def train_work_dir(experiment):
    """Named by the settings a checkpoint must share to be resumed (palette.config.work_key):
    raising `steps` or changing a speed switch resumes the run, changing the lr starts afresh.
    """
    return f"{WORK}/train/{experiment}-{work_key(train_config(experiment))}"


def segment_ends(experiment):
    """The steps at which the train_segment jobs of an experiment end (training.segment_steps
    apart); the train job takes the rest. None set, a run no longer than one segment, or an
    external experiment (not trained here): [].
    """
    if is_external(EXPERIMENTS[experiment]):
        return []
    size = EXPERIMENTS[experiment]["segment_steps"] or TRAINING["segment_steps"]
    steps = train_config(experiment)["steps"]
    return list(range(size, steps, size)) if size else []


def previous_segment(wildcards):
    """The segment before a train_segment job's: segments run in order, each resuming where the
    last stopped; [] for the first."""
    ends = segment_ends(wildcards.experiment)
    end = int(wildcards.end)
    earlier = [step for step in ends if step < end]
    return [segment_file(wildcards.experiment, earlier[-1])] if earlier else []


def segment_file(experiment, end):
    """What a finished segment leaves: a small record inside the work folder, so deleting the
    folder (the training state) also forgets which segments were done."""
    return f"{train_work_dir(experiment)}/segments/{end}.json"


def segment_config(experiment, end):
    """The trainer's config for the segment ending at `end`: the experiment's, with `steps` = end.
    The run's total steps are not in it, so raising them leaves finished segments alone.
    """
    return dict(train_config(experiment), steps=end)


def last_segment(experiment):
    """The segment the train job (the last part) starts after: [] when there is none."""
    ends = segment_ends(experiment)
    return [segment_file(experiment, ends[-1])] if ends else []


def shown_sampler(experiment, task):
    """The sampler whose samples the grids show: the experiment's first."""
    return samplers_for(experiment, task)[0]


def sample_figure_files():
    return [
        f"{RESULTS}/figures/samples/{experiment}/{task}.png"
        for experiment, settings in EXPERIMENTS.items()
        for task in settings["evaluate_on"]
    ]


def sweep_metrics_files():
    sweep = SAMPLING.get("sweep")
    if not sweep:
        return []
    return [
        f"{RESULTS}/metrics/{sweep['experiment']}/{sweep['task']}/{s}.json"
        for s in sweep["samplers"]
    ]


def benchmark_files():
    """The benchmark files of every job this configuration runs (the report's wall times); files
    left by jobs of an earlier configuration are not counted. Called when report.smk is read,
    after the reference rules (rules/reference_common.smk) have defined what it uses."""
    data_rules = {
        "demo_photos": ["cut_demo_crops", "split_dataset"],
        "celebahq": ["list_celebahq", "split_dataset"],
        "places2": [f"download_places2_archive/{name}" for name in PLACES365_ARCHIVES]
        + [f"extract_places2_archive/{Path(name).stem}" for name in PLACES365_ARCHIVES]
        + ["list_places2"],
        "imagenet": ["download_ctest10k_list", "list_imagenet"],
        "folder": ["list_folder"],
        "paired": ["list_pairs"],
    }[DATASET["kind"]]
    prepared = ["train", "test"]
    if "fid" in EVALUATION["metrics"] and DATASET["kind"] in SPLIT_REFERENCE_KINDS:
        prepared += [split for split in reference_splits() if split not in prepared]
    data_rules += ["check_data"] + [f"prepare_split/{split}" for split in prepared]
    if DATASET["kind"] == "imagenet":
        data_rules += ["list_fid5k"] if uses_fid5k() else []
        data_rules += ["imagenet_labels"] if uses_imagenet_labels() else []
    files = [f"{RESULTS}/benchmarks/data/{name}.tsv" for name in data_rules]
    if "fid" in EVALUATION["metrics"]:
        reference_rules = ["list_reference_images"]
        reference_rules += ["list_fid5k_reference"] if uses_fid5k() else []
        reference_rules += [
            f"reference_statistics/{name}" for name in reference_names()
        ]
        files += [
            f"{RESULTS}/benchmarks/reference/{name}.tsv" for name in reference_rules
        ]
    files += [f"{RESULTS}/benchmarks/degrade/{task}.tsv" for task in used_tasks()]
    files += [
        f"{RESULTS}/benchmarks/import/{name}.tsv" for name in EXTERNAL_EXPERIMENTS
    ]
    for experiment in TRAINED_EXPERIMENTS:
        files.append(f"{RESULTS}/benchmarks/train/{experiment}.tsv")
        key = work_key(train_config(experiment))
        files += [
            f"{RESULTS}/benchmarks/train/{experiment}/segment_{end}-{key}.tsv"
            for end in segment_ends(experiment)
        ]
    for e, t, s in evaluation_runs():
        files += [
            path.replace(f"{WORK}/samples/", f"{RESULTS}/benchmarks/sample/")[
                : -len(".json")
            ]
            + ".tsv"
            for path in shard_files(e, t, s)
        ]
        files.append(f"{RESULTS}/benchmarks/evaluate/{e}/{t}/{s}.tsv")
    files += [
        f"{RESULTS}/benchmarks/evaluate/ground_truth/{Path(path).stem}.tsv"
        for path in ground_truth_metrics_files()
    ]
    return files


def per_image_files():
    """What the "Does it reproduce?" section resamples (palette.verdict): the per-image values
    beside every metrics JSON, and the ground-truth rows (the paper's "original images" cells).
    Only paths the workflow can make are listed; without them the section says "not measured".
    """
    paths = [f"{RESULTS}/metrics/{e}/{t}/{s}.npz" for e, t, s in evaluation_runs()]
    paths += [f"{RESULTS}/metrics/ground_truth/{task}.npz" for task in used_tasks()]
    return [
        path for path in paths if any(job.is_producer(path) for job in workflow.rules)
    ]


def evaluation_set_size(task):
    """Inputs in the evaluation set of a task variant, as far as the configuration tells before
    the set is written (dataset.evaluation_images, capped by the list's known size); None when
    neither says (the demo's crops, a folder: their count is known only once listed)."""
    expected = DATASET.get("expected", {})
    if DATASET["kind"] == "imagenet":
        listed = (
            expected.get("fid5k", 5000)
            if evaluation_subset(task) == "fid5k"
            else DATASET["test_list"]["expected_count"]
        )
    elif DATASET["kind"] == "places2":
        listed = expected.get("places2_classes", 365) * expected.get(
            "places10k_per_class", 30
        )
    elif (
        DATASET["kind"] == "celebahq"
    ):  # about this many: the seeded split is exact to one image
        listed = round(expected.get("celebahq", 30000) * DATASET["split"]["test"])
    else:
        listed = None
    chosen = DATASET["evaluation_images"]
    return min(chosen, listed) if chosen and listed else (chosen or listed)


def shard_files(experiment, task, sampler):
    """The records of a sampling run's shards (rules/sample.smk): sampling.shard_size inputs each."""
    count = shard_count(evaluation_set_size(task), SAMPLING["shard_size"])
    return [
        f"{WORK}/samples/{experiment}/{task}/{sampler}/shard_{index}_of_{count}.json"
        for index in range(count)
    ]


def check_external():
    """Each experiment's external settings (palette.external): a role external names exactly one
    model, its files exist, an import's config describes the declared task at dataset.image_size;
    other roles name none. One line naming the key."""
    for name, settings in EXPERIMENTS.items():
        problem = external_problem(
            name, settings, DATASET["image_size"], f"{RESULTS}/checkpoints/{name}.pt"
        )
        if problem:
            raise ValueError(problem)


def external_source(experiment):
    """Where an external experiment's model comes from: {"checkpoint": PATH} or {"import": {...}}."""
    settings = EXPERIMENTS[experiment]
    if settings.get("checkpoint") is not None:
        return {"checkpoint": settings["checkpoint"]}
    return {"import": canonical(settings["import"])}


def external_inputs(wildcards):
    """The user's files behind an external experiment's model (rule import_checkpoint)."""
    source = external_source(wildcards.experiment)
    return source.get("import") or source


def pair_list(wildcards=None):
    """The pair list (target, source) of a paired data set; nothing for the other kinds."""
    return [f"{RESULTS}/data/pairs.tsv"] if DATASET["kind"] == "paired" else []


# The human 2AFC study (rules/study.smk), or None.
STUDY = config["study"] if config["study"]["experiment"] else None


def study_samples_dir():
    """The samples the study judges: its experiment's first sampler on its task (the report's grids)."""
    experiment, task = STUDY["experiment"], STUDY["task"]
    return f"{RESULTS}/samples/{experiment}/{task}/{shown_sampler(experiment, task)}"


def study_report_files():
    """The study (when configured) and, once answers exist, their score: people answer between
    workflow runs, so the score joins the report on the first run after the answers appear.
    """
    if not STUDY:
        return []
    files = [f"{RESULTS}/study/study.json"]
    if Path(f"{RESULTS}/study/answers.csv").exists():
        files.append(f"{RESULTS}/study/score.json")
    return files


if STUDY:
    if STUDY["experiment"] not in EXPERIMENTS:
        raise ValueError(
            f"study.experiment {STUDY['experiment']!r} is not an experiment"
        )
    STUDY["task"] = STUDY["task"] or EXPERIMENTS[STUDY["experiment"]]["evaluate_on"][0]
    if STUDY["task"] not in EXPERIMENTS[STUDY["experiment"]]["evaluate_on"]:
        raise ValueError(
            f"study.task {STUDY['task']!r} is not in experiments.{STUDY['experiment']}.evaluate_on"
        )
    if STUDY["catch_trials"] >= STUDY["trials_per_rater"]:
        raise ValueError("study.catch_trials must be below study.trials_per_rater")


if (
    workflow.is_main_process
):  # a job step on a compute node re-reads the checked config: no need again
    check_folders()
    check_config()
    check_train_configs()
    check_external()
