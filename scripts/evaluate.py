"""Snakemake entry point: metrics of one experiment x task variant x sampler (or of the ground
truth itself, rule evaluate_ground_truth), as JSON plus the per-image .npz."""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from palette.errors import brief_script_errors

brief_script_errors(f"rule {snakemake.rule}")  # bad input: one line in the log, exit 2

from palette.lease import lease_for_job

device = snakemake.params.device
lease_for_job(snakemake.resources.get("gpu", 0), device)  # before CUDA starts

import json
from pathlib import Path

from palette.metrics import evaluate_folders
from palette.weights import check_staged, weights_for


def optional_input(name):
    value = getattr(snakemake.input, name, None)
    return str(value) if value else None


if snakemake.input.weights:  # staged on the login node: no download from here (one line if missing)
    check_staged(snakemake.input.weights[0], weights_for(snakemake.params.metrics))
subset = snakemake.params.subset
if snakemake.input.reference:  # the subset's own reference (docs/paper.md, "Which set and reference each table uses")
    from palette.metrics.fid import FeatureStatistics

    named = FeatureStatistics.load(snakemake.input.reference[0]).name
    if named != subset["fid_reference"]:
        raise SystemExit(f"{snakemake.input.reference[0]}: statistics of {named!r}, but {snakemake.wildcards.task} on "
                         f"{subset['name']} is scored against {subset['fid_reference']!r}")
evaluation_set = Path(snakemake.input.evaluation_set)
experiment = getattr(snakemake.wildcards, "experiment", None)
# The paper's "ground truth" rows score the evaluation targets themselves against the reference.
samples = snakemake.input.samples if experiment else evaluation_set / "target"
results = evaluate_folders(
    evaluation_set / "target",
    samples,
    metrics=list(snakemake.params.metrics),
    device=device,
    reference_stats=optional_input("reference"),
    labels=optional_input("labels"),
    batch_size=snakemake.params.batch_size,
    weights_dir=snakemake.params.weights_dir,
    per_image_path=snakemake.output.per_image,
    progress=False,
    mask_dir=evaluation_set / "mask" if (evaluation_set / "mask").is_dir() else None,
)
results["evaluation_set"] = {"name": subset["name"], "count": results["n_images"]}
if "fid" in results:
    # FID is biased upward at small n: only an FID over the paper's number of images, against a reference
    # of the paper's size (FID-5K: its own 5000; docs/paper.md), compares with the paper's number.
    paper_count, reference_count = subset["paper_count"], subset["fid_reference_paper_count"]
    results["fid_paper_count"] = paper_count
    results["fid_reference_paper_count"] = reference_count
    results["fid_comparable"] = (paper_count is not None and results["n_images"] >= paper_count
                                 and reference_count is not None
                                 and results["fid_reference"]["count"] >= reference_count)
results = {
    "experiment": experiment or "ground_truth",
    "task": snakemake.wildcards.task,
    "sampler": getattr(snakemake.wildcards, "sampler", None) or "none",
    **results,
}
Path(snakemake.output.json).write_text(json.dumps(results, indent=2, sort_keys=True, default=str) + "\n")
print(json.dumps(results, indent=2, default=str))
