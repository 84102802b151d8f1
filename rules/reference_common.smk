"""Helpers of the reference stage (rules/reference.smk), used by degrade, evaluate and report:
which reference set, which evaluation subset per task variant, which inputs every evaluation
shares. Torch-free, like rules/common.smk."""

from palette.weights import MANIFEST_FILENAME, weights_for
from palette.reference_sets import (
    evaluation_subset_name,
    paper_evaluation_count,
    reference_name,
)

REFERENCE_NAME = reference_name(DATASET["kind"])
# Data sets whose FID reference is made of their own (prepared) splits.
SPLIT_REFERENCE_KINDS = ("demo_photos", "celebahq", "folder", "paired")
REFERENCE_STATISTICS = f"{RESULTS}/reference/{REFERENCE_NAME}.npz"
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
    """Inputs every evaluation shares: the FID reference and, for CA on ImageNet, the labels;
    the record of the staged metric weights."""
    return {
        "reference": [REFERENCE_STATISTICS] if "fid" in EVALUATION["metrics"] else [],
        "labels": [IMAGENET_LABELS] if uses_imagenet_labels() else [],
        "weights": [STAGED_WEIGHTS] if weights_for(EVALUATION["metrics"]) else [],
    }


def evaluation_subset_params(wildcards):
    subset = evaluation_subset(wildcards.task)
    return {
        "name": evaluation_subset_name(DATASET["kind"], subset),
        "paper_count": paper_evaluation_count(DATASET["kind"], subset),
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
