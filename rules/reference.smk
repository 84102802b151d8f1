"""Reference: what the evaluation measures against (docs/paper.md, evaluation protocol).

- FID reference statistics (float64 mean and covariance of pool3 features, image count, digests
  of the file list and of the Inception weights) of the paper's reference set, computed once and
  reused by every evaluation: ImageNet's 50,000 validation images, Places2's 36,500, CelebA-HQ's
  held-out images, the demo's validation crops; never the evaluation targets alone. Reference
  images get the evaluation targets' preprocessing (centre square at dataset.image_size).
- FID-5K: the first 5000 ImageNet validation images by file name, the evaluation set of the
  paper's colorization and JPEG tables (evaluation.subsets).
- The ILSVRC2012 validation labels for the paper's CA, checked (fails with instructions): a
  placed label file, or the folder names of a val/<wnid>/ layout.
- The paper's "ground truth" rows: the evaluation targets scored against the same reference.
"""


include: "reference_common.smk"


rule list_reference_images:
    input:
        # demo / CelebA-HQ / a folder / pairs: the chosen splits, prepared (checked, centre
        # squares); ImageNet: the checked lists (the data rule has verified and, if needed,
        # extracted the validation folder); Places2: its validation folder.
        splits=(
            expand(f"{RESULTS}/data/prepared/{{split}}.txt", split=reference_splits())
            if DATASET["kind"] in SPLIT_REFERENCE_KINDS
            else []
        ),
        checked=(
            [f"{RESULTS}/data/split/test.txt"] if DATASET["kind"] == "imagenet" else []
        ),
        val_images=(
            [f"{DATA_ROOT}/places2/val_256"] if DATASET["kind"] == "places2" else []
        ),
    output:
        f"{RESULTS}/reference/{REFERENCE_NAME}.txt",
    log:
        f"{RESULTS}/logs/reference/list_reference_images.log",
    benchmark:
        f"{RESULTS}/benchmarks/reference/list_reference_images.tsv"
    conda:
        "../envs/workflow.yaml"
    params:
        kind=DATASET["kind"],
        imagenet_val=f"{DATA_ROOT}/imagenet/val",
        expected={
            "imagenet": EXPECTED["imagenet_validation"],
            "places2": EXPECTED["places2_validation"],
        }.get(DATASET["kind"]),
    script:
        "../scripts/list_reference_images.py"


rule reference_statistics:
    input:
        files=f"{RESULTS}/reference/{REFERENCE_NAME}.txt",
        weights=evaluation_references()["weights"],
    output:
        REFERENCE_STATISTICS,
    log:
        f"{RESULTS}/logs/reference/reference_statistics.log",
    benchmark:
        f"{RESULTS}/benchmarks/reference/reference_statistics.tsv"
    conda:
        "../envs/palette.yaml"
    resources:
        gpu=1,
    params:
        name=REFERENCE_NAME,
        image_size=DATASET["image_size"],
        batch_size=EVALUATION["batch_size"],
        device=EVALUATION["device"],
        weights_dir=staged_weights_dir,
    script:
        "../scripts/reference_statistics.py"


if DATASET["kind"] == "imagenet":

    rule list_fid5k:
        input:
            checked=f"{RESULTS}/data/split/test.txt",
        output:
            f"{RESULTS}/data/fid5k.txt",
        log:
            f"{RESULTS}/logs/data/list_fid5k.log",
        benchmark:
            f"{RESULTS}/benchmarks/data/list_fid5k.tsv"
        conda:
            "../envs/workflow.yaml"
        params:
            imagenet_val=f"{DATA_ROOT}/imagenet/val",
            images=EXPECTED["fid5k"],
        script:
            "../scripts/list_fid5k.py"

    rule imagenet_labels:
        input:
            # the data rule has checked the layout (and extracted a placed validation archive)
            checked=f"{RESULTS}/data/split/test.txt",
        output:
            IMAGENET_LABELS,
        log:
            f"{RESULTS}/logs/data/imagenet_labels.log",
        benchmark:
            f"{RESULTS}/benchmarks/data/imagenet_labels.tsv"
        conda:
            "../envs/workflow.yaml"
        params:
            path=EVALUATION["imagenet_labels"] or f"{DATA_ROOT}/imagenet",
            imagenet_val=f"{DATA_ROOT}/imagenet/val",
            classes=EXPECTED["imagenet_classes"],
            expected=EXPECTED["imagenet_validation"],
        script:
            "../scripts/imagenet_labels.py"


rule evaluate_ground_truth:
    input:
        evaluation_set=f"{RESULTS}/evaluation_sets/{{task}}",
        reference=evaluation_references()["reference"],
        labels=evaluation_references()["labels"],
        weights=evaluation_references()["weights"],
    output:
        json=f"{RESULTS}/metrics/ground_truth/{{task}}.json",
        per_image=f"{RESULTS}/metrics/ground_truth/{{task}}.npz",
    log:
        f"{RESULTS}/logs/evaluate/ground_truth/{{task}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/evaluate/ground_truth/{{task}}.tsv"
    conda:
        "../envs/palette.yaml"
    resources:
        gpu=1,
    params:
        metrics=GROUND_TRUTH_METRICS,
        subset=evaluation_subset_params,
        batch_size=EVALUATION["batch_size"],
        device=EVALUATION["device"],
        weights_dir=staged_weights_dir,
    script:
        "../scripts/evaluate.py"
