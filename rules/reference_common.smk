"""Helpers of the reference stage (rules/reference.smk), used by degrade, evaluate and report:
which reference set, which evaluation subset and FID reference per task variant (docs/paper.md,
"Which set and reference each table uses"), which inputs every evaluation shares. Torch-free,
like rules/common.smk."""

from palette.weights import MANIFEST_FILENAME, weights_for
from palette.reference_sets import (
    FID5K_REFERENCE_NAME,
    PAPER_REFERENCE_COUNTS,
    evaluation_subset_name,
    fid5k_reference_problem,
    fid_reference_name,
    paper_evaluation_count,
    reference_name,
    reference_split_problem,
)
from palette.tasks import IMAGENET_ONLY_TASKS

REFERENCE_NAME = reference_name(DATASET["kind"])
# Data sets whose FID reference is made of their own (prepared) splits.
SPLIT_REFERENCE_KINDS = ("demo_photos", "celebahq", "folder", "paired")
IMAGENET_LABELS = f"{RESULTS}/data/imagenet_labels.csv"
# The paper's ground-truth rows report FID, IS, CA (and PD = 0): the metrics that need no sample.
GROUND_TRUTH_METRICS = [
    m for m in EVALUATION["metrics"] if m in ("fid", "is", "pd", "ca")
]


def reference_splits():
    """Splits forming the reference of demo_photos / celebahq / folder / paired data
    (evaluation.reference.splits)."""
    chosen = EVALUATION["reference"]["splits"]
    if chosen is None:
        chosen = ["val"] if DATASET["kind"] == "demo_photos" else ["val", "test"]
    return list(chosen)


def evaluation_subset(task):
    """`test` (ctest10k, places10k, the demo's test crops) or `fid5k` for a task variant."""
    return EVALUATION["subsets"].get(task, "test")


def uses_fid5k():
    """Whether an evaluated task variant is scored on FID-5K (and so against its own reference)."""
    return any(evaluation_subset(task) == "fid5k" for task in used_tasks())


def reference_names():
    """The FID reference sets this configuration computes statistics of (RESULTS/reference/NAME.npz):
    the data set's and, when a variant is scored on FID-5K, FID-5K's own (rule list_fid5k_reference).
    """
    if "fid" not in EVALUATION["metrics"]:
        return []
    return [REFERENCE_NAME] + ([FID5K_REFERENCE_NAME] if uses_fid5k() else [])


def fid_reference_statistics(wildcards):
    """The FID reference statistics a task variant is scored against: FID-5K's disjoint reference
    for the fid5k subset, the data set's (full validation set, held-out splits) otherwise.
    """
    if "fid" not in EVALUATION["metrics"]:
        return []
    name = fid_reference_name(DATASET["kind"], evaluation_subset(wildcards.task))
    return [f"{RESULTS}/reference/{name}.npz"]


def evaluation_list(wildcards):
    """The image list an evaluation set is drawn from (its first dataset.evaluation_images)."""
    if evaluation_subset(wildcards.task) == "fid5k":
        return f"{RESULTS}/data/fid5k.txt"
    return f"{RESULTS}/data/prepared/test.txt"


def uses_imagenet_labels():
    return DATASET["kind"] == "imagenet" and "ca" in EVALUATION["metrics"]


# What the login node staged (rules/evaluate.smk, stage_weights): every job that runs a metric
# network checks it first, so a compute node never downloads (palette.weights.check_staged).
STAGED_WEIGHTS = f"{EVALUATION['weights_dir'].rstrip('/')}/{MANIFEST_FILENAME}"


def staged_weights_dir(wildcards, input):
    """The weights folder, read from the staged record's path (a params function: Snakemake's
    lint wants path prefixes derived from the inputs)."""
    return (
        str(Path(input.weights[0]).parent)
        if input.weights
        else EVALUATION["weights_dir"]
    )


def evaluation_references():
    """Inputs every evaluation shares: for CA on ImageNet, the labels; the record of the staged
    metric weights. (The FID reference depends on the task variant: fid_reference_statistics.)
    """
    return {
        "labels": [IMAGENET_LABELS] if uses_imagenet_labels() else [],
        "weights": [STAGED_WEIGHTS] if weights_for(EVALUATION["metrics"]) else [],
    }


def evaluation_subset_params(wildcards):
    """The evaluation set's name and paper count, and the FID reference's name: scripts/evaluate.py
    records them and checks that the reference statistics it was given are that reference.
    """
    subset = evaluation_subset(wildcards.task)
    reference = fid_reference_name(DATASET["kind"], subset)
    return {
        "name": evaluation_subset_name(DATASET["kind"], subset),
        "paper_count": paper_evaluation_count(DATASET["kind"], subset),
        "fid_reference": reference,
        "fid_reference_paper_count": PAPER_REFERENCE_COUNTS.get(reference),
    }


def ground_truth_metrics_files():
    if not GROUND_TRUTH_METRICS:
        return []
    return [f"{RESULTS}/metrics/ground_truth/{task}.json" for task in used_tasks()]


for _task, _subset in EVALUATION["subsets"].items():
    if _subset == "fid5k" and DATASET["kind"] != "imagenet":
        raise ValueError(
            f"evaluation.subsets.{_task}: fid5k is the first 5000 ImageNet validation images; "
            f"dataset.kind is {DATASET['kind']!r}"
        )
for _experiment, _settings in EXPERIMENTS.items():
    for _task in _settings["evaluate_on"]:
        if _task in IMAGENET_ONLY_TASKS and DATASET["kind"] != "imagenet":
            raise ValueError(
                f"experiments.{_experiment}.evaluate_on: {_task} is scored on ImageNet's ctest10k; "
                f"dataset.kind is {DATASET['kind']!r}: use colorization (the data set's test list)"
            )
if "fid" in EVALUATION["metrics"] and DATASET["kind"] == "imagenet" and uses_fid5k():
    _problem = fid5k_reference_problem(EXPECTED)
    if _problem:
        raise ValueError(_problem)
# A reference of the data set's own splits must hold images besides the test split's (docs/paper.md).
# The demo and CelebA-HQ are split by dataset.split here; a folder's or pairs' split sub-folders are
# only known to their listing rule, which refuses such a reference itself.
if "fid" in EVALUATION["metrics"] and DATASET["kind"] in ("demo_photos", "celebahq"):
    _problem = reference_split_problem(
        reference_splits(), DATASET["split"], DATASET["holdout"]
    )
    if _problem:
        raise ValueError(_problem)
